"""The policy-gradient trainers: one update of any agent, by REINFORCE, A2C or PPO (``--algo``).

A trainer owns what one update does with a batch: it draws the batch from the env, computes the losses,
steps the optimizer, and returns the values to log. :func:`trainer_for` picks it by name:

* ``reinforce`` (:class:`ReinforceTrainer`): the agent's own losses (:meth:`agents.contract.Agent.train_losses`)
  -- for the hard agents the papers' REINFORCE with a learned baseline (Williams, 1992; Mnih et al., 2014),
  for every other agent plain backpropagation -- and one gradient step per batch.
* ``ppo`` (:class:`PPOTrainer`): Proximal Policy Optimisation (Schulman et al., 2017) with generalised
  advantage estimation (Schulman et al., 2016). The agent plays a batch of whole episodes without gradient
  (:meth:`PolicyAgent.collect`), the per-step critic's values give every step its own advantage, and
  ``ppo_epochs`` passes of ``minibatches`` minibatches of whole episodes each replay the stored
  observations and choices through the current networks (:meth:`PolicyAgent.replay`: no second pass through
  the env) to maximise the clipped surrogate, regress the critic and keep the agent's supervised loss (the
  classifier's cross-entropy), with an entropy bonus and gradient-norm clipping.
* ``a2c``: synchronous advantage actor-critic (Mnih et al., 2016): the same update with one epoch of one
  minibatch, so the ratio is exactly 1 and the surrogate's gradient is ``A_t grad log pi``.

Time is the last dimension of every per-step tensor, ``(N, T)``, as in :mod:`glimpse.reinforce`.
"""

from __future__ import annotations

from collections.abc import Callable
import typing
from dataclasses import dataclass, fields, replace
from typing import Annotated, Any, Literal

import torch
from torch import Tensor, nn

from agents.distributed import all_reduce_mean
from agents.contract import PolicyAgent
from agents.episodes import Episodes, Replayed
from agents.ranges import Range
from glimpse.policy_gradient import (
    entropy_bonus,
    explained_variance,
    generalized_advantages,
    normalize_advantages,
    ppo_clip_loss,
    value_loss,
)

__all__ = ["Algo", "ALGOS", "Episodes", "Replayed", "PolicyAgent", "ReinforceOptions", "PPOOptions",
           "AlgorithmOptions", "OPTIONS_USED", "ReinforceTrainer", "PPOTrainer", "trainer_for"]

#: The trainers by name (``--algo``): declared once, here.
Algo = Literal["reinforce", "a2c", "ppo"]
ALGOS: tuple[str, ...] = typing.get_args(Algo)


@dataclass
class ReinforceOptions:
    """What every trainer has: the entropy bonus on the hard agents' policies and its schedule."""

    entropy_coef: Annotated[float, Range(0)] = 0.0
    """entropy bonus of the hard agents' policies (0: none)"""
    entropy_coef_final: Annotated[float | None, Range(0)] = None
    """a2c/ppo: anneal the entropy bonus linearly from --entropy-coef to this over --train-images (none: constant)"""

    def entropy_coef_at(self, progress: float) -> float:
        """The entropy bonus at ``progress`` (done fraction of the budget): linear to ``entropy_coef_final``."""
        start, final = self.entropy_coef, self.entropy_coef_final
        return start if final is None else start + (final - start) * min(max(progress, 0.0), 1.0)


@dataclass
class PPOOptions(ReinforceOptions):
    """PPO's settings (:class:`PPOTrainer`); A2C is their preset :meth:`a2c`."""

    gamma: Annotated[float, Range(0, 1)] = 0.99
    """a2c/ppo: discount of the per-step rewards"""
    gae_lambda: Annotated[float, Range(0, 1)] = 0.95
    """a2c/ppo: GAE's lambda (1: Monte-Carlo returns minus the critic; 0: one-step TD errors)"""
    ppo_epochs: Annotated[int, Range(1)] = 4
    """ppo: passes over each batch of episodes"""
    minibatches: Annotated[int, Range(1)] = 4
    """ppo: minibatches (of whole episodes) per pass"""
    clip_coef: Annotated[float, Range(0, open_low=True)] = 0.2
    """ppo: the surrogate's ratio is clipped to [1 - clip, 1 + clip]"""
    value_clip: Annotated[float | None, Range(0, open_low=True)] = None
    """ppo: clip the critic's change per batch to this much in its loss (none: no clipping)"""
    value_coef: Annotated[float, Range(0)] = 0.5
    """a2c/ppo: weight of the critic's squared error"""
    max_grad_norm: Annotated[float | None, Range(0, open_low=True)] = 0.5
    """a2c/ppo: clip the gradients' total norm to this (none: no clipping)"""
    normalize_advantages: bool = True
    """a2c/ppo: standardise each minibatch's advantages"""
    target_kl: Annotated[float | None, Range(0, open_low=True)] = None
    """ppo: stop a batch's epochs at the first minibatch whose approximate KL from the batch's policy exceeds
    1.5 x this (none: always every epoch)"""

    def a2c(self) -> PPOOptions:
        """A2C: these options with one epoch of one minibatch (the ratio is then exactly 1)."""
        return replace(self, ppo_epochs=1, minibatches=1)


@dataclass
class AlgorithmOptions(PPOOptions):
    """How the hard agents learn their policies: ``--algo`` and every trainer's options (one flag each)."""

    algo: Algo = "reinforce"
    """how the hard agents (ram, item-hard, racnn-hard) learn their policies: reinforce (the papers' REINFORCE
    with a learned baseline, one gradient step per batch), a2c (advantage actor-critic: a per-step critic and
    GAE, one step per batch) or ppo (PPO: --ppo-epochs passes of --minibatches minibatches of whole episodes
    per batch, replayed through the current networks); the other agents train by backpropagation (reinforce)"""

    def __post_init__(self) -> None:
        if self.algo not in ALGOS:  # the one check of --algo (the command line's choices are the same names)
            raise ValueError(f"--algo must be one of {', '.join(ALGOS)}; got {self.algo!r}")


#: The trainer options each ``--algo`` reads (A2C is PPO with one epoch of one minibatch); it ignores the others.
OPTIONS_USED: dict[str, frozenset[str]] = {
    "reinforce": frozenset({"entropy_coef"}),
    "a2c": frozenset({"entropy_coef", "entropy_coef_final", "gamma", "gae_lambda", "value_coef", "max_grad_norm",
                      "normalize_advantages"}),
    "ppo": frozenset(f.name for f in fields(PPOOptions)),
}


Check = Callable[[dict[str, Tensor], nn.Module, int], dict[str, float]]


class ReinforceTrainer:
    """One gradient step per batch on the agent's own losses (:meth:`~agents.contract.Agent.train_losses`).

    Args:
        model: the agent.
        optimizer: its optimizer.
        check: ``(losses, model, update) -> logged floats``, called after ``backward()`` and before the step
            (:func:`agents.health.check_update`: it stops a run on a non-finite loss or gradient).
        sync_gradients: called after every ``backward()`` (data-parallel training averages the gradients
            over the ranks there); none on one process.
    """

    def __init__(self, model: nn.Module, optimizer: torch.optim.Optimizer, check: Check,
                 sync_gradients: Callable[[nn.Module], None] | None = None) -> None:
        self.model, self.optimizer, self.check, self.sync_gradients = model, optimizer, check, sync_gradients

    def update(self, env, obs: Any, update: int, progress: float = 0.0) -> tuple[dict[str, float], Any]:
        """One batch: ``(logged values, next observation)``; ``progress`` (done fraction of the budget) goes to the
        agent's schedules (:func:`set_progress`)."""
        set_progress(self.model, progress)
        losses, obs = self.model.train_losses(env, obs)
        self.optimizer.zero_grad(set_to_none=True)  # parameters a loss does not reach get no update at all
        losses["loss"].backward()
        if self.sync_gradients is not None:
            self.sync_gradients(self.model)
        logged = self.check(losses, self.model, update)  # one host sync: the logged values and the check
        self.optimizer.step()
        return logged, obs


class PPOTrainer:
    """PPO, or A2C (options :meth:`PPOOptions.a2c`: one epoch, one minibatch), on a :class:`PolicyAgent`.

    Per batch of ``N`` episodes: ``A_t, R_t = GAE(r, V, gamma, lambda)`` from the values the batch was
    played with; then for each of ``E`` epochs a fresh permutation of the episodes is cut into ``M``
    minibatches, and each minibatch makes one optimizer step on::

        loss = supervised + PPO-clip(log pi / log pi_old, normalise(A)) + c_v * value_loss(V, R) - c_e * H

    with the gradients' total norm clipped to ``max_grad_norm``. With ``target_kl``, the update stops early
    (as Stable-Baselines3's PPO does) at the first minibatch whose approximate KL divergence from the policy
    that played the batch exceeds ``1.5 * target_kl``, before its step: a policy whose every choice is a
    narrow Gaussian moves far from the data in a few Adam steps, and its ratios are then all clipped.

    Logged: ``policy_loss``, ``value_loss``, ``entropy``, each policy's ``<name>_entropy`` and the agent's
    ``loss_supervised`` (means over the optimizer steps made); ``approx_kl`` and ``clip_fraction`` of the
    last minibatch looked at (how far the policy got from the one that played the batch);
    ``explained_variance`` of the collected values, ``advantage_std`` (before normalisation),
    ``entropy_coef``, the batch's ``accuracy`` and ``reward``, and ``optimizer_steps`` (fewer than
    ``E x M`` when the KL target stopped the update early). Under torchrun each is the mean over the processes.
    """

    def __init__(self, model: nn.Module, optimizer: torch.optim.Optimizer, check: Check, options: PPOOptions,
                 sync_gradients: Callable[[nn.Module], None] | None = None) -> None:
        if not isinstance(model, PolicyAgent):
            raise ValueError(f"--algo ppo/a2c: {type(model).__name__} has no policy to train (use --algo reinforce)")
        self.model, self.optimizer, self.check, self.sync_gradients = model, optimizer, check, sync_gradients
        self.options = options
        self.epochs, self.minibatches = options.ppo_epochs, options.minibatches

    def update(self, env, obs: Any, update: int, progress: float = 0.0) -> tuple[dict[str, float], Any]:
        """One batch (collect, then ``E x M`` optimizer steps): ``(logged values, next observation)``."""
        o = self.options
        set_progress(self.model, progress)  # before collecting: the batch is played and replayed under one schedule
        episodes, obs = self.model.collect(env, obs)
        dones = torch.zeros_like(episodes.mask)
        dones[:, -1] = True  # whole episodes: nothing to bootstrap after the last step
        advantages, returns = generalized_advantages(episodes.rewards, episodes.values, dones, o.gamma, o.gae_lambda)
        entropy_coef = o.entropy_coef_at(progress)
        n = episodes.rewards.shape[0]
        per_epoch = min(self.minibatches, n)  # never an empty minibatch
        sums: dict[str, float] = {}
        steps = 0
        last: dict[str, float] = {}
        for epoch in range(self.epochs):
            order = torch.randperm(n, device=episodes.rewards.device)
            for index in order.tensor_split(per_epoch):  # exactly per_epoch minibatches, sizes differing by <= 1
                batch = episodes.rows(index)
                replayed = self.model.replay(batch)
                adv = advantages[index]
                if o.normalize_advantages:
                    adv = normalize_advantages(adv, batch.mask)
                surrogate = ppo_clip_loss(replayed.log_probs, batch.log_probs, adv, o.clip_coef, batch.mask)
                critic = value_loss(replayed.values, returns[index], batch.values if o.value_clip else None,
                                    o.value_clip)
                bonus = entropy_bonus(replayed.entropy, entropy_coef, batch.mask)
                losses = {
                    "loss": replayed.loss_supervised + surrogate.loss_policy + o.value_coef * critic + bonus,
                    "loss_supervised": replayed.loss_supervised, "policy_loss": surrogate.loss_policy,
                    "value_loss": critic, "entropy": masked_mean(replayed.entropy, batch.mask),
                    "approx_kl": surrogate.approx_kl, "clip_fraction": surrogate.clip_fraction,
                    **{f"{name}_entropy": value.mean() for name, value in replayed.entropies.items()},
                }
                if o.target_kl is not None and steps > 0:
                    # Averaged over the ranks under torchrun, so that every rank stops at the same step.
                    kl = float(all_reduce_mean(surrogate.approx_kl.detach().clone()))
                    if kl > 1.5 * o.target_kl:
                        last = {"approx_kl": kl, "clip_fraction": float(surrogate.clip_fraction)}
                        break  # the policy has moved far enough from the batch's: no more steps on it
                self.optimizer.zero_grad(set_to_none=True)
                losses["loss"].backward()
                if self.sync_gradients is not None:
                    self.sync_gradients(self.model)
                logged = self.check(losses, self.model, update)
                if o.max_grad_norm is not None:
                    nn.utils.clip_grad_norm_(self.model.parameters(), o.max_grad_norm)
                self.optimizer.step()
                for name, value in logged.items():
                    sums[name] = sums.get(name, 0.0) + value
                last = {name: logged[name] for name in ("approx_kl", "clip_fraction")}
                steps += 1
            else:
                continue
            break  # the KL target stopped the update
        # Means over the steps made; approx_kl and clip_fraction of the last minibatch looked at: how far the
        # policy got from the one that played the batch.
        logged = {name: value / steps for name, value in sums.items()}
        logged.update(last, optimizer_steps=float(steps), entropy_coef=entropy_coef)
        batch = {"explained_variance": float(explained_variance(episodes.values, returns)),
                 "advantage_std": float(advantages.std()),
                 **{name: float(value) for name, value in episodes.stats.items()}}
        # Each process played its own rows: the mean over the processes, as self.check gives for the losses.
        averaged = all_reduce_mean(torch.tensor(list(batch.values()), dtype=torch.float64))
        logged.update(zip(batch, averaged.tolist()))
        return logged, obs


def set_progress(model: nn.Module, progress: float) -> None:
    """Tell an agent with schedules (a ``set_progress`` method, e.g. a scheduled location std) how far training is;
    ``progress`` is a function of the images seen, so a resumed run follows the same schedule."""
    schedule = getattr(model, "set_progress", None)
    if schedule is not None:
        schedule(progress)


def masked_mean(x: Tensor, mask: Tensor) -> Tensor:
    """Mean of ``x`` over the ``True`` entries of ``mask`` (0 if none), detached."""
    return (torch.where(mask, x, 0.0).sum() / mask.sum().clamp(min=1)).detach()


def trainer_for(algorithm: AlgorithmOptions, model: nn.Module, optimizer: torch.optim.Optimizer, check: Check,
                sync_gradients: Callable[[nn.Module], None] | None = None) -> ReinforceTrainer | PPOTrainer:
    """The trainer of ``algorithm.algo``: REINFORCE, PPO with ``algorithm``'s options, or A2C (their
    :meth:`~PPOOptions.a2c` preset)."""
    if algorithm.algo == "reinforce":
        return ReinforceTrainer(model, optimizer, check, sync_gradients)
    return PPOTrainer(model, optimizer, check, algorithm.a2c() if algorithm.algo == "a2c" else algorithm, sync_gradients)
