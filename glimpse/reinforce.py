"""REINFORCE for hard attention: discounted returns, a running-mean baseline and the loss terms.

Shapes: every per-step tensor is ``(B, T)``: batch of episodes by glimpse steps (time is the last
dimension). An optional bool ``mask`` ``(B, T)`` marks valid steps (``True`` = the step happened);
steps after an episode ended are ``False`` and contribute nothing.

Sign convention: every ``loss_*`` is a quantity to **minimise** (add them and call ``backward``).
The score-function estimator of :math:`\\nabla_\\theta E[G]` is
:math:`E[\\sum_t \\nabla_\\theta \\log \\pi(a_t) (G_t - b_t)]`, so the policy loss is its negative.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple

import torch
from torch import Tensor, nn

from glimpse._steps import check_mask, check_unit_interval, masked_mean, masked_standardize
from glimpse.checks import check_finite, check_shape

__all__ = [
    "discounted_returns",
    "MovingAverageBaseline",
    "ReinforceLosses",
    "reinforce_loss",
]


def discounted_returns(rewards: Tensor, gamma: float = 1.0, mask: Tensor | None = None) -> Tensor:
    r"""Reward-to-go of every step: :math:`G_t = \sum_{k \ge t} \gamma^{k-t} m_k r_k`, zeroed where :math:`m_t = 0`.

    Convention:
        ``rewards`` is ``(B, T)``, time last. ``mask`` is an optional bool ``(B, T)``, ``True`` for
        steps that happened; invalid steps add no reward and get return 0. For the usual prefix
        mask (an episode that ended early) this is the return of the truncated episode. Computed
        with one loop over ``T`` (never over ``B``); the output is ``(B, T)``, the rewards' floating dtype
        (integer rewards: the default float dtype).

    Args:
        rewards: per-step rewards, ``(B, T)``.
        gamma: discount in ``[0, 1]``; 1 gives undiscounted sums.
        mask: optional bool ``(B, T)``; ``True`` = valid step.

    Returns:
        Returns ``(B, T)``.

    Example:
        >>> discounted_returns(torch.tensor([[0.0, 0.0, 1.0]]), gamma=0.5)
        tensor([[0.2500, 0.5000, 1.0000]])
        >>> discounted_returns(torch.tensor([[1.0, 1.0, 5.0]]), mask=torch.tensor([[True, True, False]]))
        tensor([[2., 1., 0.]])
    """
    check_shape(rewards, "rewards", "(B, T)")
    gamma = check_unit_interval(gamma, "gamma")
    check_mask(mask, rewards, "rewards")
    if not rewards.is_floating_point():  # integer rewards (0/1 hits): returns discount into fractions
        rewards = rewards.to(torch.get_default_dtype())
    if rewards.shape[1] == 0:
        return rewards.clone()
    if mask is not None:  # where(), not multiply: a NaN or inf on an invalid step must add nothing
        rewards = torch.where(mask, rewards, 0.0)
    running = torch.zeros_like(rewards[:, 0])  # (B,)
    out = []
    for t in range(rewards.shape[1] - 1, -1, -1):
        running = rewards[:, t] + gamma * running
        out.append(running)
    returns = torch.stack(out[::-1], dim=1)  # (B, T)
    if mask is not None:
        returns = torch.where(mask, returns, 0.0)
    return returns


class MovingAverageBaseline(nn.Module):
    """A baseline that is an exponential moving average of observed returns (no parameters).

    Convention:
        The average lives in the buffer ``value`` of shape ``shape``: ``()`` for one scalar shared by
        all steps, or ``(T,)`` for one value per glimpse step. It is part of ``state_dict`` and moves
        with ``.to(device)``. Each :meth:`update` does
        ``value <- momentum * value + (1 - momentum) * batch_mean(returns)``, except the first that has
        valid entries for it, which sets it to the batch mean (so no entry starts biased towards 0).

    Order of use (keeps the advantage unbiased): call :meth:`forward` to read the baseline, compute
    the advantages/loss with it, then :meth:`update` with this batch's returns. Updating first would
    let this batch's own returns leak into its baseline, correlating ``b`` with the sampled actions.
    :meth:`forward` returns a copy, so a later :meth:`update` never changes a value already in use.

    Args:
        momentum: EMA decay in ``[0, 1)``; larger = slower.
        shape: ``()`` or ``(T,)``.

    Example:
        >>> baseline = MovingAverageBaseline(momentum=0.5)
        >>> baseline.update(torch.tensor([[2.0], [4.0]]))
        >>> baseline.update(torch.tensor([[5.0], [7.0]]))
        >>> baseline()
        tensor(4.5000)
    """

    value: Tensor
    initialized: Tensor

    def __init__(self, momentum: float = 0.9, shape: Sequence[int] = ()) -> None:
        super().__init__()
        if isinstance(momentum, bool) or not isinstance(momentum, (int, float)) or not 0.0 <= momentum < 1.0:
            raise ValueError(f"momentum must be a number in [0, 1); got {momentum!r}")
        shape = tuple(shape)
        if len(shape) > 1 or any(isinstance(s, bool) or not isinstance(s, int) or s < 1 for s in shape):
            raise ValueError(f"shape must be () or (T,) with T >= 1; got {shape!r}")
        self.momentum = float(momentum)
        self.shape = shape
        self.register_buffer("value", torch.zeros(shape))
        self.register_buffer("initialized", torch.zeros(shape, dtype=torch.bool))  # per entry: set by data

    def forward(self) -> Tensor:
        """The current baseline, shape ``shape``, without gradient (a copy of the buffer).

        Broadcast it to ``(B, T)`` yourself, e.g. ``baseline().expand_as(returns)``.
        """
        return self.value.detach().clone()

    @torch.no_grad()
    def update(self, returns: Tensor, mask: Tensor | None = None) -> None:
        """Fold a batch of returns into the average (call *after* using :meth:`forward`).

        Args:
            returns: ``(B, T)``. With ``shape=()`` every valid entry is averaged into one number;
                with ``shape=(T,)`` the average is over ``B`` for each step.
            mask: optional bool ``(B, T)``, ``True`` = valid. With ``shape=(T,)``, steps with no valid
                entry keep their value; a batch with no valid entry changes nothing.
        """
        check_shape(returns, "returns", "(B, T)")
        check_finite(returns, "returns")
        if self.shape and returns.shape[1] != self.shape[0]:
            raise ValueError(f"returns must be (B, {self.shape[0]}) for shape={self.shape}; got {tuple(returns.shape)}")
        check_mask(mask, returns, "returns")
        returns = returns.detach().to(self.value.dtype)
        weight = torch.ones_like(returns) if mask is None else mask.to(returns.dtype)
        dims = (0, 1) if not self.shape else (0,)
        count = weight.sum(dim=dims)
        batch_mean = (returns * weight).sum(dim=dims) / count.clamp(min=1)
        blended = torch.where(self.initialized, self.momentum * self.value + (1 - self.momentum) * batch_mean, batch_mean)
        self.value.copy_(torch.where(count > 0, blended, self.value))
        self.initialized |= count > 0

    def _load_from_state_dict(self, state_dict: dict, prefix: str, *args: Any, **kwargs: Any) -> None:
        key = prefix + "initialized"
        if self.shape and key in state_dict and state_dict[key].dim() == 0:  # saved when one flag served all steps
            state_dict[key] = state_dict[key].expand(self.shape).clone()
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def extra_repr(self) -> str:
        return f"momentum={self.momentum}, shape={self.shape}"


class ReinforceLosses(NamedTuple):
    """The loss terms of :func:`reinforce_loss`, each a scalar to minimise, and the advantages used."""

    loss_policy: Tensor
    """``-(log_probs * advantages)`` summed over ``T``, mean over ``B``; gradient to the policy only."""
    loss_baseline: Tensor
    """MSE of the baseline against the detached returns; gradient to the baseline only (0 if none)."""
    loss_entropy: Tensor
    """``-entropy_coef * mean(entropy)``: minimising it raises the entropy (0 if unused)."""
    advantages: Tensor
    """``(B, T)``, detached ``returns - baseline`` (normalised if asked), zero on invalid steps."""


def reinforce_loss(
    log_probs: Tensor,
    returns: Tensor,
    baseline: Tensor | None = None,
    entropy: Tensor | None = None,
    entropy_coef: float = 0.0,
    mask: Tensor | None = None,
    normalize_advantages: bool = False,
) -> ReinforceLosses:
    r"""Score-function (REINFORCE) loss with an optional learned or running baseline and entropy bonus.

    Convention:
        All inputs are ``(B, T)`` with the same shape (no broadcasting: expand a ``(T,)`` or scalar
        baseline yourself). ``log_probs[b, t]`` is :math:`\log \pi(a_t)` of the action actually taken
        (summed over a location's coordinates), differentiable w.r.t. the policy. ``returns`` are the
        rewards-to-go (:func:`discounted_returns`). ``mask`` is an optional bool ``(B, T)``,
        ``True`` = valid step. Every output loss is a scalar to **minimise**.

    What is detached and why:
        * ``advantages = (returns - baseline).detach()``: the policy term must not push gradient into
          the baseline (a baseline that lowered the policy loss would be biased, not a baseline).
        * ``returns.detach()`` is the regression target: returns are data, not something to move.
        * ``loss_baseline = MSE(baseline, returns.detach())`` only reaches the baseline, because
          ``returns`` is detached and ``log_probs`` does not enter it. It is a zero tensor when
          ``baseline`` is ``None`` or does not require grad (e.g. :class:`MovingAverageBaseline`).

    Terms:
        * ``loss_policy = -mean_B(sum_T mask * log_probs * advantages)``.
        * ``loss_baseline = mean over valid entries of (baseline - returns)^2``.
        * ``loss_entropy = -entropy_coef * mean over valid entries of entropy`` (a bonus).

    Args:
        log_probs: ``(B, T)`` log-probabilities of the taken actions.
        returns: ``(B, T)`` returns to go.
        baseline: optional ``(B, T)`` baseline; may require grad (a learned value head).
        entropy: optional ``(B, T)`` policy entropy per step.
        entropy_coef: weight of the entropy bonus, >= 0.
        mask: optional bool ``(B, T)``, ``True`` = valid step.
        normalize_advantages: standardise the advantages over the valid entries of the batch
            (zero mean, unit std) before the policy term. Reduces the step-size sensitivity to the
            reward scale, at the price of a (small) bias.

    Returns:
        :class:`ReinforceLosses` ``(loss_policy, loss_baseline, loss_entropy, advantages)``.

    Example:
        >>> logits = torch.zeros(1, 2, requires_grad=True)
        >>> log_probs = torch.log_softmax(logits, -1)[:, :1]  # (B=1, T=1): action 0 was taken
        >>> out = reinforce_loss(log_probs, returns=torch.tensor([[1.0]]), baseline=torch.tensor([[0.5]]))
        >>> out.advantages
        tensor([[0.5000]])
        >>> out.loss_policy.backward()
        >>> logits.grad  # minimising raises the logit of the rewarded action
        tensor([[-0.2500,  0.2500]])
    """
    check_shape(log_probs, "log_probs", "(B, T)")
    like = tuple(log_probs.shape)
    check_shape(returns, "returns", "(B, T)", dims=like)
    check_finite(returns, "returns")
    if baseline is not None:
        check_shape(baseline, "baseline", "(B, T)", dims=like)
    if entropy is not None:
        check_shape(entropy, "entropy", "(B, T)", dims=like)
    check_mask(mask, log_probs, "log_probs")
    if isinstance(entropy_coef, bool) or not isinstance(entropy_coef, (int, float)) or entropy_coef < 0:
        raise ValueError(f"entropy_coef must be a number >= 0; got {entropy_coef!r}")

    zero = log_probs.new_zeros(())
    target = returns.detach()
    advantages = target if baseline is None else target - baseline.detach()  # (B, T)
    if normalize_advantages:
        advantages = masked_standardize(advantages, mask, eps=1e-8)
    if mask is not None:
        # where(), not multiply: a -inf log-prob or a NaN baseline on a padded step must not become NaN.
        advantages = torch.where(mask, advantages, zero)
        log_probs = torch.where(mask, log_probs, zero)

    loss_policy = -(log_probs * advantages).sum(dim=1).mean()

    if baseline is not None and baseline.requires_grad:
        loss_baseline = masked_mean((baseline - target) ** 2, mask)
    else:
        loss_baseline = zero

    if entropy is not None and entropy_coef > 0:
        loss_entropy = -entropy_coef * masked_mean(entropy, mask)
    else:
        loss_entropy = zero

    return ReinforceLosses(loss_policy, loss_baseline, loss_entropy, advantages)
