"""RAM, the Recurrent Attention Model: Mnih, Heess, Graves & Kavukcuoglu, "Recurrent Models of Visual
Attention", NIPS 2014.

The agent never sees the whole image. At step ``t`` it receives a retina glimpse ``x_t`` taken at the
location ``l_{t-1}`` it chose at the previous step, folds it into a recurrent state ``h_t``, and from ``h_t``
picks where to look next (``l_t``) and, at the end, a decision (a class, or in Catch a paddle move at
every step). The module follows the paper's Section 3 (Figure 1) top to bottom:

1. :class:`GlimpseNetwork` ``f_g`` (Fig. 1B): ``g_t = f_g(x_t, l_{t-1})``. The retina ``rho(x, l)`` itself is
   the env's: a hard agent takes its glimpses from :class:`envs.GlimpseVectorEnv`, it never crops.
2. :class:`CoreNetwork` ``f_h``: ``h_t = f_h(h_{t-1}, g_t)``, the paper's rectifier RNN or an LSTM.
3. Action networks on ``h_t``: the location policy ``f_l`` (:class:`glimpse.policies.GaussianLocationPolicy`),
   the classifier ``f_a`` (a linear softmax layer) or, for Catch, a categorical paddle policy
   (:class:`glimpse.policies.CategoricalItemPolicy`), and a learned baseline ``b_t``.
4. :func:`rollout`: one episode of the batched env, all ``N`` rows in lockstep.
5. :func:`ram_losses`: the paper's hybrid loss -- cross-entropy for the classifier, REINFORCE
   (Williams, 1992) with the learned baseline for the locations (and Catch's paddle), and the baseline's
   squared error.
6. :func:`evaluate`: accuracy with the mean locations, and with the softmax averaged over ``K`` sampled
   rollouts of the same examples.

Time indexing: the observation after ``reset`` is the glimpse at the env's start location ``l_0``. Step
``t = 1..T`` computes ``h_t`` from that glimpse, samples ``l_t`` and sends ``(l_t, decision scores)`` to the
env, whose reward ``r_t`` and next glimpse (at ``l_t``) come back. ``l_T`` only produces the episode's
final observation, which nothing reads, so REINFORCE scores ``l_1..l_{T-1}`` (``T' = T - 1`` terms).
``T`` is the env's episode length (classification: ``num_glimpses``; video: ``frames``; Catch:
``canvas - 1``).

What carries gradient (the detachment rules, each tested in ``tests/test_ram.py``):

* The location sent to the env and fed back to the glimpse network is a **constant**: a sample (drawn
  without gradient) or, deterministically, ``tanh(mu).detach()``. Feeding ``mu + noise`` with ``mu``
  attached, a known bug of popular reimplementations, would let the classifier's loss train the location
  network by backpropagation through the location input, which is not the model's gradient (the glimpse
  content does not depend differentiably on ``l``). The glimpse network reads the env's copy of ``l``.
* REINFORCE reaches the location network (and the paddle policy) only through ``log pi``; the advantages
  ``R - b`` are detached, so it never reaches the baseline, and the classifier is not on its path.
* The baseline regression reaches only the baseline head (and, with ``reinforce_into_core=True``, the
  core), never the policies.
* ``reinforce_into_core`` (default ``False``): whether the location network and the baseline read ``h_t``
  or ``h_t.detach()``. The paper trains every parameter with the hybrid objective, so its REINFORCE
  gradient also trains the core and glimpse networks (``True``). The default follows the widely used
  reimplementations and detaches: the core is then trained by the low-variance supervised signal alone,
  and the location policy learns to read it. The decision head (classifier, or Catch's paddle policy)
  always reads the attached ``h_t``: it is what trains the core -- in Catch, where there is no
  classifier, the paddle's REINFORCE gradient is the core's only training signal.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from glimpse.policies import CategoricalItemPolicy, GaussianLocationPolicy
from glimpse.reinforce import discounted_returns, reinforce_loss

__all__ = [
    "GlimpseNetwork",
    "CoreNetwork",
    "RAM",
    "Rollout",
    "rollout",
    "ram_losses",
    "evaluate",
    "episode_steps",
    "check_lockstep",
]

CORES = ("rnn", "lstm")
DECISIONS = ("classify", "catch")
# "center": an ablation without attention -- every glimpse at the image centre (the env must start there
# too, GlimpseVectorEnv(start="center")), no location policy: what the retina alone is worth.
LOCATIONS = ("learned", "center")


# ------------------------------------------------------------------------------------------------
# 1. Glimpse network f_g (Fig. 1B)
# ------------------------------------------------------------------------------------------------


class GlimpseNetwork(nn.Module):
    r"""``g_t = ReLU(Linear(h_g) + Linear(h_l))`` with ``h_g = ReLU(Linear(rho(x_t, l_{t-1})))``, ``h_l = ReLU(Linear(l_{t-1}))``.

    Convention:
        ``glimpse`` is the env's ``(N, S, C, g, g)`` retina output in ``[0, 1]``, flattened per row;
        ``location`` is ``(N, 2)``, ``(x, y)`` in ``[-1, 1]`` (the centre the glimpse was taken at).
        Output ``(N, out_size)``. The paper's sizes: 128 for ``h_g`` and ``h_l``, 256 for ``g``.

    Args:
        glimpse_numel: ``S * C * g * g``.
        glimpse_hidden: width of ``h_g``.
        location_hidden: width of ``h_l``.
        out_size: width of ``g_t``.
    """

    def __init__(self, glimpse_numel: int, glimpse_hidden: int = 128, location_hidden: int = 128,
                 out_size: int = 256) -> None:
        super().__init__()
        self.what = nn.Linear(glimpse_numel, glimpse_hidden)  # theta_g^0
        self.where = nn.Linear(2, location_hidden)  # theta_g^1
        self.what_out = nn.Linear(glimpse_hidden, out_size)  # theta_g^2, the h_g half
        self.where_out = nn.Linear(location_hidden, out_size, bias=False)  # theta_g^2, the h_l half
        self.out_size = out_size

    def forward(self, glimpse: Tensor, location: Tensor) -> Tensor:
        h_g = F.relu(self.what(glimpse.flatten(1)))  # (N, glimpse_hidden)
        h_l = F.relu(self.where(location))  # (N, location_hidden)
        return F.relu(self.what_out(h_g) + self.where_out(h_l))  # (N, out_size)


# ------------------------------------------------------------------------------------------------
# 2. Core network f_h
# ------------------------------------------------------------------------------------------------


class CoreNetwork(nn.Module):
    r"""``h_t = f_h(h_{t-1}, g_t)``: the paper's rectifier RNN ``ReLU(Linear(h_{t-1}) + Linear(g_t))``, or an LSTM.

    Convention:
        ``g`` is ``(N, input_size)``; the state is ``h`` ``(N, hidden_size)`` for ``"rnn"`` and the pair
        ``(h, c)`` for ``"lstm"`` (``nn.LSTMCell``; bounded ``h``, steadier under REINFORCE alone). Both
        start at zero (:meth:`initial_state`). ``forward`` returns ``(h_t, state_t)``.

    Args:
        input_size: width of ``g_t``.
        hidden_size: width of ``h_t`` (256 in the paper).
        kind: ``"rnn"`` or ``"lstm"``.
    """

    def __init__(self, input_size: int = 256, hidden_size: int = 256, kind: str = "rnn") -> None:
        super().__init__()
        if kind not in CORES:
            raise ValueError(f"core must be one of {CORES}; got {kind!r}")
        self.kind, self.hidden_size = kind, hidden_size
        if kind == "rnn":
            self.from_input = nn.Linear(input_size, hidden_size)
            self.from_hidden = nn.Linear(hidden_size, hidden_size, bias=False)
        else:
            self.cell = nn.LSTMCell(input_size, hidden_size)

    def initial_state(self, batch_size: int, device: torch.device | str = "cpu") -> Any:
        h = torch.zeros(batch_size, self.hidden_size, device=device)
        return h if self.kind == "rnn" else (h, torch.zeros_like(h))

    def forward(self, g: Tensor, state: Any) -> tuple[Tensor, Any]:
        if self.kind == "rnn":
            h = F.relu(self.from_hidden(state) + self.from_input(g))  # (N, hidden)
            return h, h
        h, c = self.cell(g, state)  # (N, hidden) each
        return h, (h, c)


# ------------------------------------------------------------------------------------------------
# 3. The model: glimpse + core + action networks + baseline
# ------------------------------------------------------------------------------------------------


class RAM(nn.Module):
    """The Recurrent Attention Model: :class:`GlimpseNetwork`, :class:`CoreNetwork` and its action heads.

    Heads on ``h_t`` (``(N, hidden)``):

    * ``locator``: :class:`~glimpse.policies.GaussianLocationPolicy`, ``l_t = tanh(u)``, ``u ~ N(W h_t, std^2)``.
    * ``classifier`` (``decision="classify"``): ``Linear(hidden, num_classes)``, read at the last step.
    * ``paddle`` (``decision="catch"``): :class:`~glimpse.policies.CategoricalItemPolicy` over the
      ``num_classes`` moves (3 in Catch: left, stay, right), sampled at every step.
    * ``baseline``: ``Linear(hidden, 1)``, ``b_t``, regressed on the return-to-go.

    Args:
        glimpse_shape: ``(S, C, g, g)``, the env's glimpse observation shape.
        num_classes: number of decision scores ``D`` (classes; 3 for Catch).
        hidden: width of ``g_t`` and ``h_t`` (256 in the paper).
        glimpse_hidden: width of ``h_g`` and ``h_l`` (128 in the paper).
        core: ``"rnn"`` (the paper's classification core) or ``"lstm"``.
        std: the location policy's (pre-tanh) standard deviation; see ``GaussianLocationPolicy``.
        learn_std: learn the location std instead of fixing it (the paper fixes it).
        decision: ``"classify"`` (classifier, trained by cross-entropy) or ``"catch"`` (paddle policy,
            trained by REINFORCE with the game's reward; no classifier loss).
        reinforce_into_core: let the REINFORCE and baseline gradients reach the core and glimpse
            networks (the paper's hybrid objective) instead of stopping them at ``h_t`` (default).
        entropy_coef: entropy bonus of the policies in :meth:`train_losses` (see :func:`ram_losses`).

    The scripts drive it through the contract of :mod:`agents.common`: :meth:`train_losses`,
    :meth:`evaluate`, :meth:`inference`; it steps the env with continuous actions.
    """

    action_mode = "continuous"

    def __init__(self, glimpse_shape: tuple[int, int, int, int], num_classes: int, *, hidden: int = 256,
                 glimpse_hidden: int = 128, core: str = "rnn", std: float = 0.17, learn_std: bool = False,
                 decision: str = "classify", reinforce_into_core: bool = False, entropy_coef: float = 0.0,
                 location: str = "learned") -> None:
        super().__init__()
        self.entropy_coef = float(entropy_coef)
        if location not in LOCATIONS:
            raise ValueError(f"location must be one of {LOCATIONS}; got {location!r}")
        self.location = location
        if len(glimpse_shape) != 4 or any(not isinstance(s, int) or s < 1 for s in glimpse_shape):
            raise ValueError(f"glimpse_shape must be (S, C, g, g) positive ints; got {glimpse_shape!r}")
        if decision not in DECISIONS:
            raise ValueError(f"decision must be one of {DECISIONS}; got {decision!r}")
        self.glimpse_shape, self.num_classes = tuple(glimpse_shape), num_classes
        self.decision, self.reinforce_into_core = decision, bool(reinforce_into_core)
        self.glimpse_net = GlimpseNetwork(math.prod(glimpse_shape), glimpse_hidden, glimpse_hidden, hidden)
        self.core = CoreNetwork(hidden, hidden, core)
        self.locator = GaussianLocationPolicy(hidden, std=std, learn_std=learn_std)
        if decision == "classify":
            self.classifier = nn.Linear(hidden, num_classes)
        else:
            self.paddle = CategoricalItemPolicy(hidden, num_classes)
        self.baseline = nn.Linear(hidden, 1)

    @classmethod
    def from_env(cls, env, **kwargs: Any) -> RAM:
        """A RAM sized for ``env`` (a continuous-action :class:`envs.GlimpseVectorEnv`); Catch gets ``decision="catch"``."""
        glimpse_shape = tuple(int(s) for s in env.single_observation_space["glimpse"].shape)
        kwargs.setdefault("decision", "catch" if getattr(env, "task", None) == "catch" else "classify")
        return cls(glimpse_shape, env.num_decisions, **kwargs)

    def initial_state(self, batch_size: int, device: torch.device | str = "cpu") -> Any:
        return self.core.initial_state(batch_size, device)

    def step(self, obs: dict[str, Tensor], state: Any) -> tuple[Tensor, Any]:
        """Fold one observation into the state: ``h_t = f_h(h_{t-1}, f_g(x_t, l_{t-1}))``; returns ``(h_t, state)``."""
        g = self.glimpse_net(obs["glimpse"], obs["location"])  # (N, hidden)
        return self.core(g, state)

    def head_input(self, h: Tensor) -> Tensor:
        """What the location policy and the baseline read: ``h_t``, or ``h_t.detach()`` (the default)."""
        return h if self.reinforce_into_core else h.detach()

    # The scripts' contract (agents.common).
    def rollout(self, env, obs: dict[str, Tensor], *, deterministic: bool = False) -> tuple[Rollout, dict]:
        """One batched episode: :func:`rollout`."""
        return rollout(self, env, obs, deterministic=deterministic)

    def train_losses(self, env, obs: dict[str, Tensor]) -> tuple[dict[str, Tensor], dict[str, Tensor]]:
        """One batch of episodes and :func:`ram_losses`, plus the policies' std and entropies to log."""
        trajectory, obs = self.rollout(env, obs)
        losses = ram_losses(trajectory, entropy_coef=self.entropy_coef)
        if hasattr(self.locator, "std"):
            losses["policy_std"] = self.locator.std.mean().detach()
        losses["policy_entropy"] = trajectory.entropies.mean().detach()
        if trajectory.paddle_entropies is not None:  # Catch: the paddle policy's entropy (max ln 3)
            losses["paddle_entropy"] = trajectory.paddle_entropies.mean().detach()
        return losses, obs

    def evaluate(self, env, episodes: int, *, mc_samples: int = 1, seed: int = 0) -> dict[str, float]:
        """:func:`evaluate`: ``accuracy`` with the mean locations, ``accuracy_mc`` over ``mc_samples``."""
        result = evaluate(self, env, episodes, mc_samples=mc_samples, seed=seed)
        metrics = {"accuracy": result["accuracy_mode"], "reward": result["reward"], "examples": result["examples"]}
        if mc_samples > 1:
            metrics["accuracy_mc"] = result["accuracy_mc"]
        return metrics

    @torch.no_grad()
    def inference(self, env_or_steps) -> None:
        """One image's inference for ``T`` glimpses (an env's episode length, or ``T`` itself), as
        :func:`rollout` runs it minus the training-only parts: ``T`` glimpse and core steps, ``T - 1``
        location decisions (``l_T`` would only produce an unused observation), the classifier once at
        the end (Catch: the paddle policy at every step). The baseline is not run."""
        steps = env_or_steps if isinstance(env_or_steps, int) else episode_steps(env_or_steps)
        obs = {"glimpse": torch.zeros(1, *self.glimpse_shape), "location": torch.zeros(1, 2)}
        state = self.initial_state(1)
        for t in range(1, steps + 1):
            h, state = self.step(obs, state)  # (1, hidden)
            if t < steps:
                self.locator(h)  # the location distribution's parameters
            if self.decision == "catch":
                self.paddle.logits(h)
        if self.decision == "classify":
            self.classifier(h)


# ------------------------------------------------------------------------------------------------
# 4. One episode of the batched env
# ------------------------------------------------------------------------------------------------


@dataclass
class Rollout:
    """One batched episode. ``N`` rows, ``T`` steps, ``T' = T - 1`` scored locations, ``D`` decisions."""

    log_probs: Tensor
    """``(N, T')`` log pi(l_t | h_t) of the locations ``l_1..l_{T-1}`` that chose a glimpse (0 if deterministic)."""
    entropies: Tensor
    """``(N, T')`` entropy of the location policy at those steps (pre-squash; see ``GaussianLocationPolicy``)."""
    baselines: Tensor
    """``(N, T)`` ``b_t = b(h_t)``, the learned estimate of the return-to-go from step ``t``."""
    rewards: Tensor
    """``(N, T)`` the env's rewards (classification and Catch: 1 at the last step on success)."""
    returns: Tensor
    """``(N, T)`` undiscounted reward-to-go ``G_t = r_t + ... + r_T`` (data: no gradient)."""
    locations: Tensor
    """``(N, T + 1, 2)`` every glimpse centre: the env's start ``l_0``, then ``l_1..l_T`` (for plots)."""
    logits: Tensor | None = None
    """``(N, D)`` classifier logits at the last step (``decision="classify"``)."""
    labels: Tensor | None = None
    """``(N,)`` true labels, from ``infos["final_info"]["label"]`` (``decision="classify"``)."""
    paddle_log_probs: Tensor | None = None
    """``(N, T)`` log pi(a_t | h_t) of Catch's paddle moves (0 if deterministic)."""
    paddle_entropies: Tensor | None = None
    """``(N, T)`` entropy of the paddle policy (Catch)."""

    @classmethod
    def from_steps(cls, log_probs: list[Tensor], entropies: list[Tensor], baselines: list[Tensor],
                   rewards: list[Tensor], locations: list[Tensor], **decisions: Tensor | None) -> Rollout:
        """Stack the per-step ``(N,)`` / ``(N, 2)`` lists of an episode into a :class:`Rollout`; the
        undiscounted returns-to-go are computed here. ``decisions``: ``logits``, ``labels``, and the
        paddle's per-step lists ``paddle_log_probs`` / ``paddle_entropies`` (Catch)."""
        rewards_t = torch.stack(rewards, dim=1)  # (N, T)
        empty = rewards_t.new_zeros(rewards_t.shape[0], 0)
        paddle = {k: torch.stack(v, dim=1) for k in ("paddle_log_probs", "paddle_entropies")
                  if (v := decisions.pop(k, None)) is not None}  # (N, T) each
        return cls(
            log_probs=torch.stack(log_probs, dim=1) if log_probs else empty,  # (N, T')
            entropies=torch.stack(entropies, dim=1) if entropies else empty,  # (N, T')
            baselines=torch.stack(baselines, dim=1),  # (N, T)
            rewards=rewards_t,
            returns=discounted_returns(rewards_t, gamma=1.0),  # (N, T)
            locations=torch.stack(locations, dim=1),  # (N, T + 1, 2)
            **decisions, **paddle,
        )


def episode_steps(env) -> int:
    """The env's episode length ``T`` (every row's episode ends together)."""
    steps = env.episode_steps
    limit = getattr(env, "max_episode_steps", None)
    if limit is not None and limit < steps:
        raise ValueError(f"env truncates episodes at {limit} steps, before the decision at step "
                         f"{steps}: build it with max_episode_steps=None")
    return int(steps)


def check_lockstep(terminated: Tensor, truncated: Tensor, t: int, steps: int) -> None:
    """Every row's episode must end exactly at step ``steps``: a rollout plays whole episodes in lockstep."""
    done = terminated | truncated
    if bool(done.any()) != (t == steps) or (t == steps and not bool(terminated.all())):
        raise RuntimeError(f"env rows ended out of lockstep at step {t} of {steps}: start rollout() right "
                           f"after env.reset() or after a previous rollout()")


def rollout(model: RAM, env, obs: dict[str, Tensor], *, deterministic: bool = False) -> tuple[Rollout, dict]:
    """Run one episode of every row of ``env`` in lockstep, from ``obs`` (the episodes' first glimpses).

    Convention:
        ``env`` is a :class:`envs.GlimpseVectorEnv` in ``action_mode="continuous"`` with same-step
        autoreset, every row at the start of an episode (just reset, or just returned by a previous
        ``rollout``). Each step sends ``(N, 2 + D)`` actions: ``l_t`` then ``D`` decision scores -- zeros
        before the last step and the classifier's logits at it, or for Catch a one-hot of the paddle
        move at every step. ``deterministic`` takes ``tanh(mu)`` for locations and the most likely paddle
        move; its log-probabilities are zeros (it is for evaluation).

    Returns:
        ``(rollout, next_obs)``: the :class:`Rollout`, and the observation the last step returned, which
        (same-step autoreset) is already the next episodes' first glimpses, so training just continues.
    """
    steps = episode_steps(env)
    num_envs, device = obs["location"].shape[0], obs["location"].device
    want = 2 + model.num_classes
    if getattr(env, "action_mode", "continuous") != "continuous" or tuple(env.single_action_space.shape) != (want,):
        raise ValueError(f"env takes actions {tuple(env.single_action_space.shape)}, RAM sends ({want},): "
                         f"use action_mode='continuous' and num_classes = the env's decisions")
    catch = model.decision == "catch"
    if catch != (getattr(env, "task", None) == "catch"):
        raise ValueError(f"RAM(decision={model.decision!r}) cannot play task {getattr(env, 'task', None)!r}: "
                         f"use decision='catch' for Catch and 'classify' otherwise (RAM.from_env does this)")
    centered = model.location == "center"
    if centered and getattr(env, "start_mode", None) != "center":
        raise ValueError("RAM(location='center') glimpses only the centre: make the env with start='center' "
                         "so that its first glimpse is there too")

    state = model.initial_state(num_envs, device)
    log_probs, entropies, baselines, rewards, locations = [], [], [], [], [obs["location"].clone()]
    paddle_log_probs, paddle_entropies, logits, labels = [], [], None, None
    for t in range(1, steps + 1):
        h, state = model.step(obs, state)  # (N, hidden)
        h_head = model.head_input(h)

        # Where to look next: l_t, a constant (sampled without gradient, or a detached mode).
        if centered:  # the no-attention ablation: nothing to choose, nothing to score
            loc, log_prob = h.new_zeros(num_envs, 2), h.new_zeros(num_envs)
        elif deterministic:
            loc, log_prob = model.locator.mode(h_head).detach(), h.new_zeros(num_envs)  # (N, 2), (N,)
        else:
            loc, log_prob = model.locator.sample(h_head)  # (N, 2) no grad, (N,)
        if t < steps:  # l_T only produces the final observation: nothing to score
            log_probs.append(log_prob)
            entropies.append(h.new_zeros(num_envs) if centered else model.locator.entropy(h_head))
        baselines.append(model.baseline(h_head).squeeze(1))  # (N,)

        # The decision: class scores at the last step, or a paddle move at every step (Catch).
        scores = h.new_zeros(num_envs, model.num_classes)  # (N, D)
        if catch:
            dist = model.paddle(h)
            move = dist.probs.argmax(dim=1) if deterministic else dist.sample()  # (N,)
            paddle_log_probs.append(dist.log_prob(move) if not deterministic else h.new_zeros(num_envs))
            paddle_entropies.append(dist.entropy())
            scores = F.one_hot(move, model.num_classes).to(h.dtype)
        elif t == steps:
            logits = model.classifier(h)  # (N, D)
            scores = logits.detach()

        obs, reward, terminated, truncated, infos = env.step(torch.cat([loc, scores], dim=1))
        check_lockstep(terminated, truncated, t, steps)
        rewards.append(reward.to(h.dtype))
        locations.append(loc)
        if t == steps and not catch:
            labels = infos["final_info"]["label"]

    return Rollout.from_steps(log_probs, entropies, baselines, rewards, locations, logits=logits, labels=labels,
                              paddle_log_probs=paddle_log_probs if catch else None,
                              paddle_entropies=paddle_entropies if catch else None), obs


# ------------------------------------------------------------------------------------------------
# 5. The hybrid loss
# ------------------------------------------------------------------------------------------------


def ram_losses(rollout: Rollout, *, entropy_coef: float = 0.0) -> dict[str, Tensor]:
    """The paper's hybrid loss: supervised cross-entropy + REINFORCE with a learned baseline.

    Terms (every ``loss_*`` is to be minimised; ``loss`` is their sum):

    * ``loss_classifier``: cross-entropy of the last step's logits against the labels (0 for Catch).
    * ``loss_policy``: REINFORCE (:func:`glimpse.reinforce.reinforce_loss`) for the locations
      ``l_1..l_{T-1}``, each credited with the return that follows it, ``G_{t+1} - b_t`` (the env's reward:
      1 for a correct final decision); for Catch plus REINFORCE for the paddle moves with ``G_t - b_t``.
      The advantages are detached.
    * ``loss_baseline``: mean squared error of ``b_t`` against ``G_t`` (the returns are detached).
    * ``loss_entropy``: ``-entropy_coef`` times the policies' mean entropy (0 when ``entropy_coef=0``).

    Also returned (no gradient): ``accuracy`` (classification: argmax == label; Catch: the catch rate)
    and ``reward`` (mean episode return).
    """
    returns, baselines = rollout.returns, rollout.baselines  # (N, T) each
    zero = baselines.new_zeros(())
    loss_policy, loss_entropy = zero, zero
    if rollout.log_probs.shape[1] > 0:
        where = reinforce_loss(rollout.log_probs, returns[:, 1:], baselines[:, :-1], rollout.entropies,
                               entropy_coef=entropy_coef)
        loss_policy, loss_entropy = where.loss_policy, where.loss_entropy
    if rollout.paddle_log_probs is not None:
        move = reinforce_loss(rollout.paddle_log_probs, returns, baselines, rollout.paddle_entropies,
                              entropy_coef=entropy_coef)
        loss_policy, loss_entropy = loss_policy + move.loss_policy, loss_entropy + move.loss_entropy
    loss_baseline = F.mse_loss(baselines, returns.detach())

    episode_return = rollout.rewards.sum(dim=1)  # (N,)
    if rollout.logits is not None:
        loss_classifier = F.cross_entropy(rollout.logits, rollout.labels)
        accuracy = (rollout.logits.argmax(dim=1) == rollout.labels).float().mean()
    else:
        loss_classifier = zero
        accuracy = (episode_return > 0).float().mean()
    return {
        "loss": loss_classifier + loss_policy + loss_baseline + loss_entropy,
        "loss_classifier": loss_classifier,
        "loss_policy": loss_policy,
        "loss_baseline": loss_baseline,
        "loss_entropy": loss_entropy,
        "accuracy": accuracy.detach(),
        "reward": episode_return.mean().detach(),
    }


# ------------------------------------------------------------------------------------------------
# 6. Evaluation
# ------------------------------------------------------------------------------------------------


@torch.no_grad()
def evaluate(model: nn.Module, env, episodes: int, *, mc_samples: int = 1, seed: int = 0) -> dict[str, float]:
    """Accuracy over ``episodes`` batched episodes (``episodes * N`` examples) of ``env``.

    ``model`` is any agent with a ``rollout(env, obs, deterministic=...)`` method that returns a
    :class:`Rollout` (RAM, and item-wise hard attention).

    Convention:
        Round ``e`` resets ``env`` with seed ``seed + e * N``. In ``split="test"`` that shows test examples
        ``(seed + e * N + i) mod M`` in row ``i`` -- exactly episode ``e`` of a single reset with ``seed`` --
        so ``episodes = ceil(M / N)`` covers the ``M`` test examples once. Every round is first played
        with the mean locations (``deterministic=True``); with ``mc_samples = K > 1`` it is replayed ``K``
        times with sampled locations by resetting with the same seed, which shows the same canvases (and
        start locations) again, and the classifier's softmax is averaged over the ``K`` replays (Catch:
        the ``K`` catch rates are averaged). The env is left reset; ``model`` is put back in its mode.

    Returns:
        ``accuracy`` (``accuracy_mc`` if ``K > 1``, else ``accuracy_mode``), ``accuracy_mode``, ``reward``
        (mean return with the mean locations), ``examples``, ``mc_samples``, and with ``K > 1`` also
        ``accuracy_mc`` and ``reward_mc`` (mean return of the sampled replays).
    """
    if isinstance(episodes, bool) or not isinstance(episodes, int) or episodes < 1:
        raise ValueError(f"episodes must be an integer >= 1; got {episodes!r}")
    if isinstance(mc_samples, bool) or not isinstance(mc_samples, int) or mc_samples < 1:
        raise ValueError(f"mc_samples must be an integer >= 1; got {mc_samples!r}")
    was_training = model.training
    model.eval()
    num_envs = env.num_envs
    hits_mode = hits_mc = return_mode = return_mc = 0.0
    for e in range(episodes):
        round_seed = seed + e * num_envs
        obs, _ = env.reset(seed=round_seed)
        mode, _ = model.rollout(env, obs, deterministic=True)
        return_mode += float(mode.rewards.sum())
        hits_mode += float(_hits(mode, mode.logits))
        if mc_samples == 1:
            continue
        probs = 0.0
        for _ in range(mc_samples):
            obs, _ = env.reset(seed=round_seed)
            sampled, _ = model.rollout(env, obs)
            return_mc += float(sampled.rewards.sum()) / mc_samples
            if sampled.logits is None:  # Catch: average the catch rate
                hits_mc += float(_hits(sampled, None)) / mc_samples
                continue
            if not torch.equal(sampled.labels, mode.labels):
                raise RuntimeError("re-seeding the env did not replay the same examples: cannot average over them")
            probs = probs + sampled.logits.softmax(dim=1)  # (N, D)
        if mode.logits is not None:
            hits_mc += float((probs.argmax(dim=1) == mode.labels).sum())
    model.train(was_training)

    examples = episodes * num_envs
    out = {"accuracy_mode": hits_mode / examples, "reward": return_mode / examples, "examples": examples,
           "mc_samples": mc_samples}
    if mc_samples > 1:
        out.update(accuracy_mc=hits_mc / examples, reward_mc=return_mc / examples)
    out["accuracy"] = out.get("accuracy_mc", out["accuracy_mode"])
    return out


def _hits(episode: Rollout, logits: Tensor | None) -> Tensor:
    """Number of successes in a batch: correct classes, or (Catch) episodes with a positive return."""
    if logits is None:
        return (episode.rewards.sum(dim=1) > 0).sum()
    return (logits.argmax(dim=1) == episode.labels).sum()
