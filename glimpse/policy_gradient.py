"""Actor-critic and PPO building blocks: GAE, advantage normalisation, the clipped losses and diagnostics.

Shapes: every per-step tensor is ``(B, T)``: batch of rollouts by steps (time is the last dimension),
as in :mod:`glimpse.reinforce`. An optional bool ``mask`` ``(B, T)`` marks valid steps (``True`` = the
step happened); invalid steps contribute nothing, and a NaN or infinity stored there never reaches a
result or a gradient through them (``where``, not a product).

Reductions: every loss is a **mean over the valid entries** (all ``B * T`` of them when ``mask`` is
``None``), as in PPO's reference code, not :func:`glimpse.reinforce.reinforce_loss`'s sum over ``T``;
a batch without a valid entry gives 0, not NaN.

Sign convention: every ``loss_*`` / ``*_loss`` / :func:`entropy_bonus` is a scalar to **minimise**
(add them with their weights and call ``backward``). Diagnostics (``approx_kl``, ``clip_fraction``,
:func:`explained_variance`) are detached.

Checks: shapes must be equal (no silent broadcasting), and rewards, values, returns and advantages
must be finite: a NaN or infinity raises ``ValueError`` naming the argument, so a trainer stops
instead of training on it.

References: Schulman et al., "High-Dimensional Continuous Control Using Generalized Advantage
Estimation" (2016); Schulman et al., "Proximal Policy Optimization Algorithms" (2017); the clipped
value loss and the diagnostics as in OpenAI Baselines' PPO2 and CleanRL's ``ppo.py``.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor

from glimpse._steps import check_mask, check_number, check_unit_interval, masked_mean, masked_standardize
from glimpse.checks import check_finite, check_shape

__all__ = [
    "generalized_advantages",
    "normalize_advantages",
    "PPOLosses",
    "ppo_clip_loss",
    "value_loss",
    "explained_variance",
    "entropy_bonus",
]


def _check_float(tensor: Tensor, name: str) -> None:
    if not tensor.is_floating_point():
        raise TypeError(f"{name} must be a floating-point tensor (call .float()); got {tensor.dtype}")


def _check_clip(clip: object, name: str) -> float:
    if isinstance(clip, bool) or not isinstance(clip, (int, float)) or not 0.0 < clip < float("inf"):
        raise ValueError(f"{name} must be > 0 (a ratio or value range such as 0.2); got {clip!r}")
    return float(clip)


@torch.no_grad()
def generalized_advantages(
    rewards: Tensor,
    values: Tensor,
    dones: Tensor,
    gamma: float = 0.99,
    lam: float = 0.95,
    next_value: Tensor | None = None,
) -> tuple[Tensor, Tensor]:
    r"""Generalized advantage estimates (GAE, Schulman et al. 2016) and the matching value targets.

    Convention:
        ``rewards``, ``values`` and ``dones`` are ``(B, T)``, time last; ``values[:, t]`` is
        :math:`V(s_t)`, the value of the state in which action :math:`a_t` was taken. ``dones`` is
        bool: ``True`` where the episode **ended at step t** (terminated: the ``terminated`` flag
        returned by the ``step`` that took :math:`a_t`), so nothing is bootstrapped past it; the next
        column, if any, starts a new episode. (CleanRL stores the flag one step later, on the first
        observation of the next episode: its ``dones[t + 1]`` is this ``dones[:, t]``.)
        ``next_value`` ``(B,)`` is the value of the state after step ``T - 1``, bootstrapped where the
        last step is not done; ``None`` means zeros (every rollout ends with its episode). With
        :math:`m_t = 1 - \mathrm{done}_t` and :math:`V_T` = ``next_value``:

        .. math::
            \delta_t = r_t + \gamma V_{t+1} m_t - V_t, \qquad
            A_t = \delta_t + \gamma \lambda m_t A_{t+1}, \qquad R_t = A_t + V_t.

        ``lam=1`` gives the discounted return (bootstrapped with ``next_value``) minus :math:`V_t`;
        ``lam=0`` gives the one-step TD error :math:`\delta_t`. One loop over ``T`` (never over
        ``B``). Both outputs are ``(B, T)`` in the promoted dtype of ``rewards`` and ``values``, and
        detached (computed under ``no_grad`` from detached inputs), ready to be targets.

    Truncation and padding:
        A time-limit truncation is not a termination: add :math:`\gamma V(s_{\text{final}})` to that
        step's reward (as Stable-Baselines3 does) and mark it done, so the next episode's value is not
        used. Steps after an episode ended (padding) are independent of the valid ones when the last
        valid step is marked done; give them finite rewards and values (e.g. 0) and drop them with
        the losses' ``mask``.

    Args:
        rewards: per-step rewards, ``(B, T)``, finite.
        values: critic values :math:`V(s_t)`, ``(B, T)``, finite (detached here).
        dones: bool ``(B, T)``, ``True`` where the episode terminated at step ``t``.
        gamma: discount in ``[0, 1]``.
        lam: GAE's :math:`\lambda` in ``[0, 1]``: 0 = one-step TD error (low variance, biased by the
            critic), 1 = Monte-Carlo return minus the value (unbiased, high variance).
        next_value: optional ``(B,)`` value of the state after the last step; ``None`` = zeros.

    Returns:
        ``(advantages, returns)``, both ``(B, T)``, detached, with ``returns = advantages + values``.

    Raises:
        ValueError: wrong shapes, ``dones`` not bool, ``gamma`` or ``lam`` outside ``[0, 1]``, or a
            NaN/infinity in ``rewards``, ``values`` or ``next_value``.
        TypeError: ``rewards`` or ``values`` not floating point.

    Example:
        >>> rewards = torch.tensor([[1.0, 0.0, 1.0]])
        >>> values = torch.tensor([[0.5, 0.5, 0.5]])
        >>> dones = torch.tensor([[False, True, False]])  # the first episode ends at step 1
        >>> adv, ret = generalized_advantages(rewards, values, dones, gamma=0.5, lam=1.0,
        ...                                   next_value=torch.tensor([1.0]))
        >>> adv
        tensor([[ 0.5000, -0.5000,  1.0000]])
        >>> ret  # 1 + 0.5 * 0, then 0, then 1 + 0.5 * next_value
        tensor([[1.0000, 0.0000, 1.5000]])
    """
    check_shape(rewards, "rewards", "(B, T)")
    like = tuple(rewards.shape)
    check_shape(values, "values", "(B, T)", dims=like)
    check_shape(dones, "dones", "(B, T)", dims=like)
    if dones.dtype != torch.bool:
        raise ValueError(f"dones must be a bool tensor (True = the episode ended at step t); got dtype {dones.dtype}")
    gamma = check_unit_interval(gamma, "gamma")
    lam = check_unit_interval(lam, "lam")
    _check_float(rewards, "rewards")
    _check_float(values, "values")
    check_finite(rewards, "rewards")
    check_finite(values, "values")
    B, T = like
    dtype = torch.promote_types(rewards.dtype, values.dtype)
    rewards, values = rewards.detach().to(dtype), values.detach().to(dtype)
    if next_value is None:
        next_value = values.new_zeros(B)
    else:
        check_shape(next_value, "next_value", "(B,)", dims=(B,))
        _check_float(next_value, "next_value")
        check_finite(next_value, "next_value")
        next_value = next_value.detach().to(dtype)
    not_done = (~dones).to(dtype)  # (B, T)

    advantages = torch.empty_like(values)  # (B, T)
    running = values.new_zeros(B)  # A_{t+1}, (B,)
    for t in range(T - 1, -1, -1):
        value_next = next_value if t == T - 1 else values[:, t + 1]  # (B,)
        delta = rewards[:, t] + gamma * value_next * not_done[:, t] - values[:, t]
        running = delta + gamma * lam * not_done[:, t] * running
        advantages[:, t] = running
    return advantages, advantages + values


def normalize_advantages(advantages: Tensor, mask: Tensor | None = None, eps: float = 1e-8) -> Tensor:
    r"""Standardise advantages over the valid entries of the batch: ``(A - mean) / (std + eps)``.

    Convention:
        ``advantages`` is ``(B, T)``; ``mask`` an optional bool ``(B, T)``, ``True`` = valid. The mean
        and the **population** standard deviation (``unbiased=False``: divide by the number of valid
        entries ``n``, not ``n - 1``) are taken over the valid entries only; invalid entries are set
        to 0. One valid entry (std 0) gives 0; no valid entry gives all zeros. The output is
        ``(B, T)``, differentiable as the input is (advantages are usually detached already).

    Args:
        advantages: ``(B, T)``, finite.
        mask: optional bool ``(B, T)``; ``True`` = valid step.
        eps: added to the std, ``> 0``, so a constant batch does not divide by zero.

    Returns:
        ``(B, T)``: zero mean and (up to ``eps``) unit population std over the valid entries.

    Example:
        >>> normalize_advantages(torch.tensor([[1.0, 2.0, 3.0]]))  # std sqrt(2/3), not 1
        tensor([[-1.2247,  0.0000,  1.2247]])
        >>> normalize_advantages(torch.tensor([[1.0, 3.0, 100.0]]), mask=torch.tensor([[True, True, False]]))
        tensor([[-1.,  1.,  0.]])
    """
    check_shape(advantages, "advantages", "(B, T)")
    check_finite(advantages, "advantages")
    check_mask(mask, advantages, "advantages")
    eps = check_number(eps, "eps", strictly_positive=True)
    normalized = masked_standardize(advantages, mask, eps=eps)
    return normalized if mask is None else torch.where(mask, normalized, 0.0)


class PPOLosses(NamedTuple):
    """The outputs of :func:`ppo_clip_loss`: the loss to minimise and two detached diagnostics."""

    loss_policy: Tensor
    """Scalar: minus the clipped surrogate, averaged over the valid entries (to minimise)."""
    approx_kl: Tensor
    """Scalar, detached: mean over valid entries of ``(ratio - 1) - log(ratio)`` (Schulman's k3
    estimator of KL(old || new): non-negative, unbiased for samples of the old policy)."""
    clip_fraction: Tensor
    """Scalar, detached: the fraction of valid entries with ``|ratio - 1| > clip``."""


def ppo_clip_loss(
    log_probs: Tensor,
    old_log_probs: Tensor,
    advantages: Tensor,
    clip: float = 0.2,
    mask: Tensor | None = None,
) -> PPOLosses:
    r"""PPO's clipped surrogate policy loss (Schulman et al. 2017), with its KL and clip diagnostics.

    Convention:
        All inputs are ``(B, T)`` with the same shape (no broadcasting). ``log_probs`` are
        :math:`\log \pi_\theta(a_t)` of the taken actions under the current policy (differentiable);
        ``old_log_probs`` those recorded when acting (detached here); ``advantages`` (detached here)
        e.g. from :func:`generalized_advantages`, optionally :func:`normalize_advantages`. With
        :math:`\rho_t = \exp(\log\pi_\theta(a_t) - \log\pi_{\text{old}}(a_t))` and :math:`\epsilon` =
        ``clip``:

        .. math::
            L = -\operatorname{mean}_{\text{valid}} \min\big(\rho_t A_t,\
                \operatorname{clamp}(\rho_t, 1 - \epsilon, 1 + \epsilon) A_t\big).

        The mean is over the valid entries (a masked mean over ``B`` and ``T``, not a sum over
        ``T``). The gradient is the plain surrogate's where :math:`\rho_t` is inside
        :math:`[1 - \epsilon, 1 + \epsilon]`, and zero where the ratio is already past the clip in
        the direction the advantage favours (:math:`\rho_t > 1 + \epsilon` with :math:`A_t > 0`,
        :math:`\rho_t < 1 - \epsilon` with :math:`A_t < 0`); on the other side it is not clipped.
        Invalid entries get ratio 1 before the ``exp``, so a ``-inf`` log-prob there is harmless.

    Args:
        log_probs: ``(B, T)`` log-probabilities of the taken actions under the current policy.
        old_log_probs: ``(B, T)`` the same under the policy that acted.
        advantages: ``(B, T)``, finite.
        clip: the clip range :math:`\epsilon`, ``> 0``.
        mask: optional bool ``(B, T)``; ``True`` = valid step.

    Returns:
        :class:`PPOLosses` ``(loss_policy, approx_kl, clip_fraction)``, all scalars.

    Raises:
        ValueError: shapes differ, ``clip <= 0``, a bad ``mask``, or a NaN/infinity in
            ``advantages``.

    Example:
        >>> log_probs = torch.log(torch.tensor([[0.5, 1.1, 1.5]]))  # ratios 0.5, 1.1, 1.5
        >>> out = ppo_clip_loss(log_probs, torch.zeros(1, 3), torch.ones(1, 3), clip=0.2)
        >>> out.loss_policy  # -(0.5 + 1.1 + 1.2) / 3
        tensor(-0.9333)
        >>> out.clip_fraction, out.approx_kl
        (tensor(0.6667), tensor(0.0975))
    """
    check_shape(log_probs, "log_probs", "(B, T)")
    like = tuple(log_probs.shape)
    check_shape(old_log_probs, "old_log_probs", "(B, T)", dims=like)
    check_shape(advantages, "advantages", "(B, T)", dims=like)
    check_finite(advantages, "advantages")
    check_mask(mask, log_probs, "log_probs")
    clip = _check_clip(clip, "clip")

    log_ratio = log_probs - old_log_probs.detach()  # (B, T)
    if mask is not None:
        log_ratio = torch.where(mask, log_ratio, 0.0)
    ratio = log_ratio.exp()
    advantages = advantages.detach()
    surrogate = torch.min(ratio * advantages, ratio.clamp(1.0 - clip, 1.0 + clip) * advantages)
    loss_policy = -masked_mean(surrogate, mask)

    with torch.no_grad():
        approx_kl = masked_mean((ratio - 1.0) - log_ratio, mask)
        clip_fraction = masked_mean(((ratio - 1.0).abs() > clip).to(ratio.dtype), mask)
    return PPOLosses(loss_policy, approx_kl, clip_fraction)


def value_loss(
    values: Tensor,
    returns: Tensor,
    old_values: Tensor | None = None,
    clip: float | None = None,
    mask: Tensor | None = None,
) -> Tensor:
    r"""Critic regression loss, plain or clipped around the values recorded when acting (PPO2/CleanRL).

    Convention:
        All inputs are ``(B, T)`` with the same shape. ``values`` are the critic's current
        predictions (differentiable); ``returns`` the targets (e.g. from
        :func:`generalized_advantages`) and ``old_values`` the predictions recorded when acting, both
        detached here. Means are over the valid entries.

        * ``clip=None``: :math:`L = \tfrac12 \operatorname{mean}_{\text{valid}} (V_t - R_t)^2`
          (``old_values`` is then only shape-checked, so a trainer can pass it either way).
        * ``clip`` given (needs ``old_values``): with
          :math:`V^{\text{clip}}_t = V^{\text{old}}_t + \operatorname{clamp}(V_t - V^{\text{old}}_t, -\epsilon, \epsilon)`,
          :math:`L = \tfrac12 \operatorname{mean}_{\text{valid}} \max\big((V_t - R_t)^2, (V^{\text{clip}}_t - R_t)^2\big)`,
          the pessimistic value loss of OpenAI Baselines' PPO2 and CleanRL's ``clip_vloss``.
          ``clip`` is in the units of the values (not a ratio).

    Args:
        values: ``(B, T)`` current value predictions, finite.
        returns: ``(B, T)`` regression targets, finite.
        old_values: optional ``(B, T)`` values recorded when acting, finite; required with ``clip``.
        clip: optional clip range :math:`\epsilon` ``> 0``; ``None`` = no clipping.
        mask: optional bool ``(B, T)``; ``True`` = valid step.

    Returns:
        The scalar loss.

    Raises:
        ValueError: shapes differ, ``clip`` given without ``old_values`` or not ``> 0``, a bad
            ``mask``, or a NaN/infinity in ``values``, ``returns`` or ``old_values``.

    Example:
        >>> values, returns = torch.tensor([[1.0, 2.0]]), torch.tensor([[0.0, 0.0]])
        >>> value_loss(values, returns)  # 0.5 * (1 + 4) / 2
        tensor(1.2500)
        >>> value_loss(values, returns, old_values=torch.tensor([[0.5, 2.5]]), clip=0.2)  # 0.5 * (1 + 2.3**2) / 2
        tensor(1.5725)
    """
    check_shape(values, "values", "(B, T)")
    like = tuple(values.shape)
    check_shape(returns, "returns", "(B, T)", dims=like)
    if old_values is not None:
        check_shape(old_values, "old_values", "(B, T)", dims=like)
    check_mask(mask, values, "values")
    if clip is not None:
        clip = _check_clip(clip, "clip")
        if old_values is None:
            raise ValueError("value_loss: clip needs old_values (the values recorded when acting); pass them or clip=None")
    check_finite(values, "values")
    check_finite(returns, "returns")
    if old_values is not None:
        check_finite(old_values, "old_values")

    target = returns.detach()
    squared = (values - target) ** 2  # (B, T)
    if clip is not None:
        old = old_values.detach()
        clipped = old + (values - old).clamp(-clip, clip)
        squared = torch.max(squared, (clipped - target) ** 2)
    return 0.5 * masked_mean(squared, mask)


@torch.no_grad()
def explained_variance(values: Tensor, returns: Tensor, mask: Tensor | None = None) -> Tensor:
    r"""How much of the returns' variance the critic explains: :math:`1 - \mathrm{Var}[R - V] / \mathrm{Var}[R]`.

    Convention:
        ``values`` and ``returns`` are ``(B, T)`` with the same shape; both variances are taken over
        the valid entries (population variances; their ratio is the same with ``n - 1``). 1 means
        perfect predictions, 0 predictions no better than the returns' mean, negative worse than it.
        As in Stable-Baselines3's ``explained_variance``, the result is **NaN when**
        :math:`\mathrm{Var}[R] = 0` (constant returns, one valid entry, or none), where the ratio is
        undefined. Returns a detached 0-d tensor in the dtype of ``values`` and ``returns``; no host
        synchronisation.

    Args:
        values: ``(B, T)`` value predictions.
        returns: ``(B, T)`` the targets they predict.
        mask: optional bool ``(B, T)``; ``True`` = valid step.

    Returns:
        A 0-d tensor, detached; NaN when the returns have zero variance.

    Example:
        >>> returns = torch.tensor([[1.0, 2.0, 3.0, 4.0]])
        >>> explained_variance(returns, returns), explained_variance(torch.full((1, 4), 2.5), returns)
        (tensor(1.), tensor(0.))
        >>> explained_variance(returns, torch.ones(1, 4))
        tensor(nan)
    """
    check_shape(values, "values", "(B, T)")
    check_shape(returns, "returns", "(B, T)", dims=tuple(values.shape))
    check_mask(mask, values, "values")
    values, returns = values.detach(), returns.detach()

    def variance(x: Tensor) -> Tensor:
        return masked_mean((x - masked_mean(x, mask)) ** 2, mask)

    var_returns = variance(returns)
    ratio = variance(returns - values) / var_returns
    return torch.where(var_returns == 0, torch.full_like(ratio, float("nan")), 1.0 - ratio)


def entropy_bonus(entropy: Tensor, coef: float, mask: Tensor | None = None) -> Tensor:
    r"""The entropy bonus as a loss to minimise: ``-coef * mean_valid(entropy)``.

    Convention:
        ``entropy`` is ``(B, T)``, the policy's entropy at each step (differentiable); the mean is
        over the valid entries. Minimising the result raises the entropy. ``coef == 0`` returns a 0-d
        zero tensor (no graph), so a disabled bonus costs nothing.

    Args:
        entropy: ``(B, T)`` per-step policy entropy.
        coef: the bonus weight, ``>= 0``.
        mask: optional bool ``(B, T)``; ``True`` = valid step.

    Returns:
        The scalar loss term.

    Example:
        >>> entropy_bonus(torch.tensor([[1.0, 2.0]]), coef=0.01)
        tensor(-0.0150)
    """
    check_shape(entropy, "entropy", "(B, T)")
    check_mask(mask, entropy, "entropy")
    coef = check_number(coef, "coef", strictly_positive=False)
    if coef == 0:
        return entropy.new_zeros(())
    return -coef * masked_mean(entropy, mask)
