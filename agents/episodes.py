"""The episode types the hard agents and the trainers share (the agent module never imports a trainer's).

* :class:`Rollout`: one batched episode of a hard recurrent agent, with gradient, what :func:`agents.recurrent.rollout`
  returns and the REINFORCE loss reads.
* :class:`EpisodeBuffer`: a :class:`Rollout` filled step by step, preallocated.
* :class:`Episodes`: a batch of whole episodes played without gradient and kept for replay, what an agent's
  ``collect`` gives the actor-critic trainers (:class:`agents.contract.PolicyAgent`).
* :class:`Replayed`: what the agent's current networks make of stored episodes (its ``replay``).

Time is the second dimension of every per-step tensor, ``(N, T, ...)``.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import torch
from torch import Tensor

from glimpse.reinforce import discounted_returns

__all__ = ["Rollout", "EpisodeBuffer", "Episodes", "Replayed"]


@dataclass
class Rollout:
    """One batched episode. ``N`` rows, ``T`` steps, ``T' = T - 1`` scored looks, ``D`` decisions."""

    log_probs: Tensor
    """``(N, T')`` log pi of the looks ``l_1..l_{T-1}`` that chose a glimpse (0 if deterministic)."""
    entropies: Tensor
    """``(N, T')`` entropy of the where-policy at those steps (Gaussian: pre-squash)."""
    baselines: Tensor
    """``(N, T)`` ``b_t = b(h_t)``, the learned estimate of the return-to-go from step ``t``."""
    rewards: Tensor
    """``(N, T)`` the env's rewards (classification and Catch: 1 at the last step on success)."""
    returns: Tensor
    """``(N, T)`` undiscounted reward-to-go ``G_t = r_t + ... + r_T`` (data: no gradient)."""
    locations: Tensor
    """``(N, T + 1, 2)`` every glimpse centre: the env's start ``l_0``, then ``l_1..l_T`` (for plots)."""
    states: Tensor | None = None
    """``(N, T, hidden)`` the recurrent state ``h_t`` each step's actions were chosen from (with its graph)."""
    logits: Tensor | None = None
    """``(N, D)`` classifier logits at the last step (``decision="classify"``)."""
    step_logits: Tensor | None = None
    """``(N, T, D)`` the classifier's logits at every step (an agent that predicts at every glimpse), else None."""
    labels: Tensor | None = None
    """``(N,)`` true labels, from ``infos["final_info"]["label"]`` (``decision="classify"``)."""
    decision_log_probs: Tensor | None = None
    """``(N, T)`` log pi(a_t | h_t) of a per-step decision policy's choices, e.g. Catch's paddle (0 if deterministic)."""
    decision_entropies: Tensor | None = None
    """``(N, T)`` entropy of that policy."""
    record: dict[str, Tensor] | None = None
    """``rollout(record=True)``: what a replay needs (:meth:`HardRecurrentAgent.replay`): ``glimpses``
    ``(N, T, S, C, g, g)`` the observation each step read, ``looks`` ``(N, T', ...)`` the where head's raw
    choices (:attr:`Look.raw`; absent if it chooses nothing), ``decisions`` ``(N, T)`` a per-step decision
    policy's (Catch's paddle moves), ``gist`` ``(N, C, G, G)`` the episode's coarse view (an env with a gist)."""

    def with_rewards(self, rewards: Tensor) -> Rollout:
        """This episode credited with other ``rewards`` ``(N, T)`` (data), and their undiscounted returns-to-go."""
        return replace(self, rewards=rewards, returns=discounted_returns(rewards, gamma=1.0))


class EpisodeBuffer:
    """One batched episode of ``N`` rows and ``T`` steps, filled step by step: one :meth:`add` per step, one :meth:`get`.

    Each per-step quantity without a graph (rewards, locations, what a replay needs; everything under
    ``torch.no_grad``) is written into an ``(N, T, ...)`` tensor allocated at its first step (its shape and
    dtype are the first value's). A quantity whose first step carries a graph (a log-probability, a baseline, the
    state) keeps its steps and is stacked once by :meth:`get`, so that its gradient reaches each step as a view
    of the loss's gradient, exactly as ``torch.stack``'s does (a write into a preallocated tensor would hand
    each step a copy, and the backward matrix products would round differently). The looks are scored at steps
    ``1..T-1`` only (``T' = T - 1``); the locations hold the start ``l_0`` and ``T`` more. Observations are
    copied as they arrive (an env may reuse its buffers).

    Args:
        steps: ``T``.
        obs: the episodes' first observation: ``location`` ``(N, 2)`` the start ``l_0``, ``glimpse``
            ``(N, S, C, g, g)``.
        record: also keep what a replay needs (:attr:`Rollout.record`).
    """

    def __init__(self, steps: int, obs: dict[str, Tensor], *, record: bool = False) -> None:
        self.steps, self.record, self.t = steps, record, 0
        self.data: dict[str, Tensor] = {}  # preallocated (N, length, ...)
        self.steps_of: dict[str, list[Tensor]] = {}  # graph-carrying values, step by step
        self._put("locations", obs["location"], steps + 1)
        if record:
            self._put("glimpses", obs["glimpse"], steps)
            if "gist" in obs:  # the episode's coarse view (the same at every step)
                self.data["gist"] = obs["gist"].clone()

    def _put(self, name: str, value: Tensor, length: int) -> None:
        """Write ``value`` ``(N, ...)`` at step ``self.t`` of ``name``'s ``(N, length, ...)`` tensor."""
        if name in self.steps_of or (name not in self.data and value.requires_grad):
            self.steps_of.setdefault(name, []).append(value)
            return
        buffer = self.data.get(name)
        if buffer is None:
            buffer = self.data[name] = value.new_empty(value.shape[0], length, *value.shape[1:])
        buffer[:, self.t] = value

    def add(self, *, state: Tensor, baseline: Tensor, reward: Tensor, location: Tensor, obs: dict[str, Tensor],
            look_log_prob: Tensor | None = None, look_entropy: Tensor | None = None, look_raw: Tensor | None = None,
            decision_log_prob: Tensor | None = None, decision_entropy: Tensor | None = None,
            decision_raw: Tensor | None = None, step_logits: Tensor | None = None) -> None:
        """Step ``t``: ``h_t`` ``(N, hidden)``, ``b_t`` and ``r_t`` ``(N,)``, the next centre ``l_t`` ``(N, 2)`` and the
        observation the env returned (read by step ``t + 1``); the look's ``log pi``, entropy and raw choice (at
        ``t < T``; ``(N,)`` each, the raw choice any shape), a per-step decision policy's, and the step's class
        logits ``(N, D)`` (an agent that predicts at every glimpse)."""
        steps, looks = self.steps, self.steps - 1
        for name, value, length in (("states", state, steps), ("baselines", baseline, steps),
                                    ("rewards", reward, steps), ("log_probs", look_log_prob, looks),
                                    ("entropies", look_entropy, looks), ("decision_log_probs", decision_log_prob, steps),
                                    ("decision_entropies", decision_entropy, steps), ("step_logits", step_logits, steps)):
            if value is not None:
                self._put(name, value, length)
        if self.record and look_raw is not None:
            self._put("looks", look_raw, looks)
        if self.record and decision_raw is not None:
            self._put("decisions", decision_raw, steps)
        self.t += 1
        self._put("locations", location, steps + 1)
        if self.record and self.t < steps:  # the last step's observation is the next episode's first
            self._put("glimpses", obs["glimpse"], steps)

    def get(self, *, logits: Tensor | None = None, labels: Tensor | None = None) -> Rollout:
        """The episode as a :class:`Rollout` (with the undiscounted returns-to-go), with the last step's class
        ``logits`` ``(N, D)`` and the ``labels`` ``(N,)`` (classification)."""
        if self.t != self.steps:
            raise RuntimeError(f"the episode has {self.t} of its {self.steps} steps")
        data = self.data | {name: torch.stack(values, dim=1) for name, values in self.steps_of.items()}
        rewards = data["rewards"]  # (N, T)
        empty = rewards.new_zeros(rewards.shape[0], 0)
        record = ({name: data[name] for name in ("glimpses", "looks", "decisions", "gist") if name in data}
                  if self.record else None)
        return Rollout(log_probs=data.get("log_probs", empty), entropies=data.get("entropies", empty),
                       baselines=data["baselines"], rewards=rewards, returns=discounted_returns(rewards, gamma=1.0),
                       locations=data["locations"], states=data["states"], logits=logits,
                       step_logits=data.get("step_logits"), labels=labels,
                       decision_log_probs=data.get("decision_log_probs"),
                       decision_entropies=data.get("decision_entropies"), record=record)


@dataclass
class Episodes:
    """A batch of ``N`` whole episodes of ``T`` steps, played without gradient and kept for replay.

    Step ``t`` is one env step: the state ``s_t`` (the agent's recurrent state after reading the step's
    observation), the choices sampled from it, the env's reward ``r_t``. Every row's episode ends at step ``T``.
    """

    rewards: Tensor
    """``(N, T)`` the env's rewards."""
    values: Tensor
    """``(N, T)`` the critic's ``V(s_t)`` when the batch was played."""
    log_probs: Tensor
    """``(N, T)`` ``log pi(a_t | s_t)`` of the step's sampled choices (summed over the step's policies: a
    location and a paddle move are one joint action) when the batch was played; 0 where ``mask`` is False."""
    mask: Tensor
    """``(N, T)`` bool: the step sampled a choice (a classifier's last step chooses no location)."""
    inputs: dict[str, Tensor]
    """what :meth:`PolicyAgent.replay` reads, every tensor with ``N`` leading rows."""
    stats: dict[str, Tensor] = field(default_factory=dict)
    """scalars of the batch to log (``accuracy``, ``reward``)."""

    def rows(self, index: Tensor) -> Episodes:
        """The episodes ``index`` ``(n,)`` (a minibatch): every per-row tensor indexed, ``stats`` kept."""
        return Episodes(self.rewards[index], self.values[index], self.log_probs[index], self.mask[index],
                        {k: v[index] for k, v in self.inputs.items()}, self.stats)


@dataclass
class Replayed:
    """What the current networks make of stored episodes (:meth:`PolicyAgent.replay`), with gradient."""

    log_probs: Tensor
    """``(n, T)`` ``log pi(a_t | s_t)`` of the stored choices, summed over the step's policies."""
    values: Tensor
    """``(n, T)`` ``V(s_t)``."""
    entropy: Tensor
    """``(n, T)`` the step's policy entropy (summed over its policies; 0 where none chose)."""
    entropies: dict[str, Tensor]
    """per policy (``location``, ``item``, ``paddle``, ``box``): its entropy at the steps it chose, any shape."""
    loss_supervised: Tensor
    """scalar: the agent's own supervised loss on these episodes (the classifier's cross-entropy; 0 for Catch)."""
