"""The episode types the hard agents and the trainers share (the agent module never imports a trainer's).

* :class:`Rollout`: one batched episode of a hard recurrent agent, with gradient, what :func:`agents.recurrent.rollout`
  returns and the REINFORCE loss reads.
* :class:`Episodes`: a batch of whole episodes played without gradient and kept for replay, what an agent's
  ``collect`` gives the actor-critic trainers (:class:`agents.trainers.PolicyAgent`).
* :class:`Replayed`: what the agent's current networks make of stored episodes (its ``replay``).

Time is the second dimension of every per-step tensor, ``(N, T, ...)``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

from glimpse.reinforce import discounted_returns

__all__ = ["Rollout", "Episodes", "Replayed"]


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
    labels: Tensor | None = None
    """``(N,)`` true labels, from ``infos["final_info"]["label"]`` (``decision="classify"``)."""
    paddle_log_probs: Tensor | None = None
    """``(N, T)`` log pi(a_t | h_t) of a per-step decision policy's moves, Catch's paddle (0 if deterministic)."""
    paddle_entropies: Tensor | None = None
    """``(N, T)`` entropy of that policy (Catch)."""
    record: dict[str, Tensor] | None = None
    """``rollout(record=True)``: what a replay needs (:meth:`HardRecurrentAgent.replay`): ``glimpses``
    ``(N, T, S, C, g, g)`` the observation each step read, ``looks`` ``(N, T', ...)`` the where head's raw
    choices (:attr:`Look.raw`; absent if it chooses nothing), ``moves`` ``(N, T)`` the paddle's (Catch)."""

    @classmethod
    def from_steps(cls, log_probs: list[Tensor], entropies: list[Tensor], baselines: list[Tensor],
                   rewards: list[Tensor], locations: list[Tensor], **decisions: Any) -> Rollout:
        """Stack the per-step ``(N,)`` / ``(N, 2)`` lists of an episode into a :class:`Rollout`; the
        undiscounted returns-to-go are computed here. ``decisions``: ``logits``, ``labels``, ``states``
        and the paddle's per-step lists ``paddle_log_probs`` / ``paddle_entropies`` (Catch)."""
        rewards_t = torch.stack(rewards, dim=1)  # (N, T)
        empty = rewards_t.new_zeros(rewards_t.shape[0], 0)
        stacked = {k: torch.stack(v, dim=1) for k in ("paddle_log_probs", "paddle_entropies", "states")
                   if (v := decisions.pop(k, None)) is not None}  # (N, T, ...) each
        return cls(
            log_probs=torch.stack(log_probs, dim=1) if log_probs else empty,  # (N, T')
            entropies=torch.stack(entropies, dim=1) if entropies else empty,  # (N, T')
            baselines=torch.stack(baselines, dim=1),  # (N, T)
            rewards=rewards_t,
            returns=discounted_returns(rewards_t, gamma=1.0),  # (N, T)
            locations=torch.stack(locations, dim=1),  # (N, T + 1, 2)
            **decisions, **stacked,
        )


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
