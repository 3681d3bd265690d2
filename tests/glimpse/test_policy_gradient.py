"""Tests for glimpse.policy_gradient: GAE, advantage normalisation, PPO's clipped losses and diagnostics,
against hand-computed values (the arithmetic is in the comments) and slow pure-Python references."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from glimpse.policies import masked_categorical
from glimpse.policy_gradient import (
    PPOLosses,
    entropy_bonus,
    explained_variance,
    generalized_advantages,
    normalize_advantages,
    ppo_clip_loss,
    value_loss,
)
from glimpse.reinforce import discounted_returns

F64 = torch.float64

# ------------------------------------------------------------------------------------------------
# generalized_advantages
# ------------------------------------------------------------------------------------------------


def _slow_gae(rewards, values, dones, gamma, lam, next_value):
    """GAE from its definition A_t = sum_l (gamma lam)^l delta_{t+l}, the sum cut after the first done step,
    one (b, t) at a time in Python floats."""
    B, T = rewards.shape
    r, v, d, nv = rewards.tolist(), values.tolist(), dones.tolist(), next_value.tolist()
    adv = [[0.0] * T for _ in range(B)]
    for b in range(B):
        deltas = []
        for t in range(T):
            v_next = nv[b] if t == T - 1 else v[b][t + 1]
            deltas.append(r[b][t] + (0.0 if d[b][t] else gamma * v_next) - v[b][t])
        for t in range(T):
            total, weight = 0.0, 1.0
            for k in range(t, T):
                total += weight * deltas[k]
                if d[b][k]:
                    break
                weight *= gamma * lam
            adv[b][t] = total
    return torch.tensor(adv, dtype=F64)


def test_gae_by_hand():
    rewards = torch.tensor([[1.0, 2.0, 3.0]], dtype=F64)
    values = torch.tensor([[0.5, 1.0, 1.5]], dtype=F64)
    no_dones = torch.zeros(1, 3, dtype=torch.bool)
    adv, ret = generalized_advantages(rewards, values, no_dones, gamma=0.9, lam=0.8, next_value=torch.tensor([2.0], dtype=F64))
    # gamma * lam = 0.72
    # t=2: delta = 3 + 0.9 * 2.0 - 1.5 = 3.3;   A = 3.3
    # t=1: delta = 2 + 0.9 * 1.5 - 1.0 = 2.35;  A = 2.35 + 0.72 * 3.3 = 4.726
    # t=0: delta = 1 + 0.9 * 1.0 - 0.5 = 1.4;   A = 1.4 + 0.72 * 4.726 = 4.80272
    torch.testing.assert_close(adv, torch.tensor([[4.80272, 4.726, 3.3]], dtype=F64))
    torch.testing.assert_close(ret, torch.tensor([[4.80272 + 0.5, 4.726 + 1.0, 3.3 + 1.5]], dtype=F64))

    dones = torch.tensor([[False, True, False]])  # the episode ends at step 1; step 2 starts a new one
    adv, _ = generalized_advantages(rewards, values, dones, gamma=0.9, lam=0.8, next_value=torch.tensor([2.0], dtype=F64))
    # t=2: 3.3 as above (bootstrapped with next_value)
    # t=1: done: delta = 2 - 1.0 = 1.0, nothing carried from t=2;  A = 1.0
    # t=0: delta = 1.4;  A = 1.4 + 0.72 * 1.0 = 2.12
    torch.testing.assert_close(adv, torch.tensor([[2.12, 1.0, 3.3]], dtype=F64))


@pytest.mark.parametrize("gamma, lam", [(0.99, 0.95), (0.9, 0.0), (0.8, 1.0), (1.0, 1.0), (0.0, 0.5)])
def test_gae_matches_slow_reference_with_random_dones(gamma, lam):
    gen = torch.Generator().manual_seed(0)
    B, T = 6, 9
    rewards = torch.randn(B, T, generator=gen, dtype=F64)
    values = torch.randn(B, T, generator=gen, dtype=F64)
    dones = torch.rand(B, T, generator=gen) < 0.3
    dones[0] = False  # one rollout with no episode end at all
    dones[1, -1] = True  # one that ends exactly at the last step (next_value unused)
    next_value = torch.randn(B, generator=gen, dtype=F64)
    adv, ret = generalized_advantages(rewards, values, dones, gamma, lam, next_value)
    torch.testing.assert_close(adv, _slow_gae(rewards, values, dones, gamma, lam, next_value))
    torch.testing.assert_close(ret, adv + values)


def test_gae_lambda_one_is_discounted_return_minus_value():
    gen = torch.Generator().manual_seed(1)
    B, T, gamma = 4, 6, 0.9
    rewards, values = torch.randn(B, T, generator=gen, dtype=F64), torch.randn(B, T, generator=gen, dtype=F64)
    no_dones = torch.zeros(B, T, dtype=torch.bool)
    adv, ret = generalized_advantages(rewards, values, no_dones, gamma=gamma, lam=1.0)  # next_value None = 0
    torch.testing.assert_close(adv, discounted_returns(rewards, gamma) - values)
    torch.testing.assert_close(ret, discounted_returns(rewards, gamma))
    # With a bootstrap: R_t = G_t + gamma^(T - t) * next_value.
    next_value = torch.randn(B, generator=gen, dtype=F64)
    _, ret = generalized_advantages(rewards, values, no_dones, gamma=gamma, lam=1.0, next_value=next_value)
    powers = gamma ** torch.arange(T, 0, -1, dtype=F64)  # gamma^(T - t), t = 0 .. T-1
    torch.testing.assert_close(ret, discounted_returns(rewards, gamma) + powers * next_value[:, None])


def test_gae_lambda_zero_is_one_step_td_error():
    gen = torch.Generator().manual_seed(2)
    B, T, gamma = 5, 7, 0.95
    rewards, values = torch.randn(B, T, generator=gen, dtype=F64), torch.randn(B, T, generator=gen, dtype=F64)
    dones = torch.rand(B, T, generator=gen) < 0.4
    next_value = torch.randn(B, generator=gen, dtype=F64)
    adv, _ = generalized_advantages(rewards, values, dones, gamma=gamma, lam=0.0, next_value=next_value)
    v_next = torch.cat([values[:, 1:], next_value[:, None]], dim=1)
    torch.testing.assert_close(adv, rewards + gamma * v_next * (~dones) - values)


def test_gae_outputs_are_detached_and_promoted():
    values = torch.zeros(2, 3, requires_grad=True)
    rewards = torch.ones(2, 3, dtype=F64, requires_grad=True)
    next_value = torch.ones(2, requires_grad=True)
    adv, ret = generalized_advantages(rewards, values, torch.zeros(2, 3, dtype=torch.bool), next_value=next_value)
    assert not adv.requires_grad and not ret.requires_grad
    assert adv.dtype == ret.dtype == F64 and adv.shape == ret.shape == (2, 3)
    empty = generalized_advantages(torch.zeros(2, 0), torch.zeros(2, 0), torch.zeros(2, 0, dtype=torch.bool))
    assert empty[0].shape == empty[1].shape == (2, 0)


def test_gae_bad_inputs_name_the_argument():
    r, v, d = torch.zeros(2, 3), torch.zeros(2, 3), torch.zeros(2, 3, dtype=torch.bool)
    with pytest.raises(ValueError, match=r"gamma must be a number in \[0, 1\]; got 1.5"):
        generalized_advantages(r, v, d, gamma=1.5)
    with pytest.raises(ValueError, match=r"lam must be a number in \[0, 1\]; got -0.1"):
        generalized_advantages(r, v, d, lam=-0.1)
    with pytest.raises(ValueError, match=r"values must be \(B, T\); got \(2, 4\)"):
        generalized_advantages(r, torch.zeros(2, 4), d)
    with pytest.raises(ValueError, match=r"dones must be \(B, T\); got \(3,\)"):
        generalized_advantages(r, v, torch.zeros(3, dtype=torch.bool))
    with pytest.raises(ValueError, match="dones must be a bool tensor"):
        generalized_advantages(r, v, torch.zeros(2, 3))
    with pytest.raises(ValueError, match=r"next_value must be \(B,\); got \(2, 1\)"):
        generalized_advantages(r, v, d, next_value=torch.zeros(2, 1))
    with pytest.raises(ValueError, match="rewards must be finite"):
        generalized_advantages(torch.tensor([[0.0, float("nan"), 0.0]] * 2), v, d)
    with pytest.raises(ValueError, match="values must be finite"):
        generalized_advantages(r, torch.tensor([[0.0, float("inf"), 0.0]] * 2), d)
    with pytest.raises(ValueError, match="next_value must be finite"):
        generalized_advantages(r, v, d, next_value=torch.tensor([0.0, float("nan")]))
    with pytest.raises(TypeError, match="rewards must be a floating-point tensor"):
        generalized_advantages(torch.zeros(2, 3, dtype=torch.long), v, d)


# ------------------------------------------------------------------------------------------------
# normalize_advantages
# ------------------------------------------------------------------------------------------------


def test_normalize_advantages_by_hand_population_std():
    # [1, 2, 3, 6]: mean 3; squared deviations 4, 1, 0, 9 -> population var 14 / 4 = 3.5 (not 14 / 3)
    out = normalize_advantages(torch.tensor([[1.0, 2.0], [3.0, 6.0]], dtype=F64), eps=1e-12)
    std = math.sqrt(3.5)
    torch.testing.assert_close(out, torch.tensor([[-2 / std, -1 / std], [0.0, 3 / std]], dtype=F64))


def test_normalize_advantages_masked_equals_valid_subset():
    gen = torch.Generator().manual_seed(3)
    adv = 10 + 5 * torch.randn(6, 5, generator=gen, dtype=F64)
    mask = torch.rand(6, 5, generator=gen) < 0.6
    out = normalize_advantages(adv, mask)
    subset = normalize_advantages(adv[mask][None, :])  # the valid entries alone, as one row
    torch.testing.assert_close(out[mask], subset[0])
    assert not out[~mask].any()
    valid = out[mask]
    assert abs(float(valid.mean())) < 1e-12 and abs(float(valid.std(unbiased=False)) - 1) < 1e-8


def test_normalize_advantages_degenerate_batches_give_zeros():
    one = torch.tensor([[5.0, 7.0]])
    torch.testing.assert_close(normalize_advantages(one, torch.tensor([[True, False]])), torch.zeros(1, 2))
    torch.testing.assert_close(normalize_advantages(one, torch.zeros(1, 2, dtype=torch.bool)), torch.zeros(1, 2))
    torch.testing.assert_close(normalize_advantages(torch.full((2, 3), 4.0)), torch.zeros(2, 3))


def test_normalize_advantages_bad_inputs():
    with pytest.raises(ValueError, match="advantages must be finite"):
        normalize_advantages(torch.tensor([[1.0, float("nan")]]))
    with pytest.raises(ValueError, match=r"advantages must be \(B, T\); got \(3,\)"):
        normalize_advantages(torch.zeros(3))
    with pytest.raises(ValueError, match="mask must be a bool tensor"):
        normalize_advantages(torch.zeros(2, 3), torch.ones(2, 3))
    with pytest.raises(ValueError, match="eps must be a number > 0"):
        normalize_advantages(torch.zeros(2, 3), eps=0.0)


# ------------------------------------------------------------------------------------------------
# ppo_clip_loss
# ------------------------------------------------------------------------------------------------


def _log(*ratios):
    return torch.log(torch.tensor([ratios], dtype=F64))


def test_ppo_by_hand_inside_and_outside_the_clip():
    log_probs = _log(0.5, 1.1, 1.5).requires_grad_(True)  # old log-probs 0: ratios 0.5, 1.1, 1.5
    out = ppo_clip_loss(log_probs, torch.zeros(1, 3, dtype=F64), torch.ones(1, 3, dtype=F64), clip=0.2)
    assert isinstance(out, PPOLosses)
    # A = 1: min(r, clamp(r, 0.8, 1.2)) = min(0.5, 0.8), min(1.1, 1.1), min(1.5, 1.2) = 0.5, 1.1, 1.2
    torch.testing.assert_close(out.loss_policy, torch.tensor(-(0.5 + 1.1 + 1.2) / 3, dtype=F64))
    # |r - 1| = 0.5, 0.1, 0.5 > 0.2 for two of three
    torch.testing.assert_close(out.clip_fraction, torch.tensor(2 / 3, dtype=F64))
    # k3: (r - 1) - log r = (-0.5 + ln 2) + (0.1 - ln 1.1) + (0.5 - ln 1.5), averaged
    kl = ((-0.5 + math.log(2)) + (0.1 - math.log(1.1)) + (0.5 - math.log(1.5))) / 3
    torch.testing.assert_close(out.approx_kl, torch.tensor(kl, dtype=F64))
    out.loss_policy.backward()
    # d/dlogp of -(1/3) r A = -(1/3) r where the unclipped term is the min; 0 at the clipped 1.5 (A > 0)
    torch.testing.assert_close(log_probs.grad, torch.tensor([[-0.5 / 3, -1.1 / 3, 0.0]], dtype=F64))


def test_ppo_clip_gives_zero_gradient_only_on_the_favoured_side():
    # ratio, advantage:  1.5, +1 | 0.5, -1 | 0.5, +2 | 1.5, -2   (clip 0.2, so every ratio is outside)
    log_probs = _log(1.5, 0.5, 0.5, 1.5).requires_grad_(True)
    advantages = torch.tensor([[1.0, -1.0, 2.0, -2.0]], dtype=F64)
    out = ppo_clip_loss(log_probs, torch.zeros(1, 4, dtype=F64), advantages, clip=0.2)
    # min(1.5, 1.2) = 1.2 (clipped) | min(-0.5, -0.8) = -0.8 (clipped) | min(1.0, 1.6) = 1.0 | min(-3, -2.4) = -3
    torch.testing.assert_close(out.loss_policy, torch.tensor(-(1.2 - 0.8 + 1.0 - 3.0) / 4, dtype=F64))  # 0.4
    out.loss_policy.backward()
    # favoured side (ratio already moved the way A wants): no gradient; the other side: -(1/4) r A
    torch.testing.assert_close(log_probs.grad, torch.tensor([[0.0, 0.0, -1.0 / 4, 3.0 / 4]], dtype=F64))
    torch.testing.assert_close(out.clip_fraction, torch.tensor(1.0, dtype=F64))
    kl = (2 * (0.5 - math.log(1.5)) + 2 * (-0.5 + math.log(2))) / 4
    torch.testing.assert_close(out.approx_kl, torch.tensor(kl, dtype=F64))


def test_ppo_gradient_inside_clip_equals_unclipped_surrogate():
    gen = torch.Generator().manual_seed(4)
    old = torch.randn(5, 6, generator=gen, dtype=F64)
    log_probs = (old + 0.1 * (2 * torch.rand(5, 6, generator=gen, dtype=F64) - 1)).requires_grad_(True)  # r in [0.905, 1.106]
    advantages = torch.randn(5, 6, generator=gen, dtype=F64)
    out = ppo_clip_loss(log_probs, old, advantages, clip=0.2)
    (grad,) = torch.autograd.grad(out.loss_policy, log_probs)
    surrogate = -(torch.exp(log_probs - old) * advantages).mean()
    (expected,) = torch.autograd.grad(surrogate, log_probs)
    torch.testing.assert_close(out.loss_policy, surrogate)
    torch.testing.assert_close(grad, expected)
    assert float(out.clip_fraction) == 0.0
    assert torch.autograd.gradcheck(lambda lp: ppo_clip_loss(lp, old, advantages, clip=0.2).loss_policy, (log_probs,))


def test_ppo_diagnostics_on_hand_ratios_with_mask():
    log_probs = _log(0.7, 0.9, 1.0, 1.1, 1.3)
    zeros, adv = torch.zeros(1, 5, dtype=F64), torch.ones(1, 5, dtype=F64)
    out = ppo_clip_loss(log_probs, zeros, adv, clip=0.2)
    torch.testing.assert_close(out.clip_fraction, torch.tensor(2 / 5, dtype=F64))  # 0.7 and 1.3 are outside
    mask = torch.tensor([[True, True, True, True, False]])
    out = ppo_clip_loss(log_probs, zeros, adv, clip=0.2, mask=mask)
    torch.testing.assert_close(out.clip_fraction, torch.tensor(1 / 4, dtype=F64))  # only 0.7 of the 4 valid
    kl = sum((r - 1) - math.log(r) for r in (0.7, 0.9, 1.0, 1.1)) / 4
    torch.testing.assert_close(out.approx_kl, torch.tensor(kl, dtype=F64))
    assert not out.approx_kl.requires_grad and not out.clip_fraction.requires_grad
    same = ppo_clip_loss(zeros, zeros, adv)  # same policy: KL 0, nothing clipped, loss -mean(A)
    assert float(same.approx_kl) == 0.0 and float(same.clip_fraction) == 0.0 and float(same.loss_policy) == -1.0


def test_ppo_masked_equals_valid_subset_and_ignores_garbage():
    gen = torch.Generator().manual_seed(5)
    B, T = 4, 6
    mask = torch.rand(B, T, generator=gen) < 0.6
    raw, old = torch.randn(B, T, generator=gen, dtype=F64), torch.randn(B, T, generator=gen, dtype=F64)
    adv = torch.randn(B, T, generator=gen, dtype=F64)
    inf = torch.tensor(float("-inf"), dtype=F64)
    padded = torch.where(mask, raw, inf).requires_grad_(True)  # -inf log-probs on padded steps, old and new
    out = ppo_clip_loss(padded, torch.where(mask, old, inf), adv, clip=0.2, mask=mask)
    subset = ppo_clip_loss(raw[mask][None], old[mask][None], adv[mask][None], clip=0.2)
    for got, want in zip(out, subset):
        torch.testing.assert_close(got, want)
    out.loss_policy.backward()  # -inf - -inf is NaN: it must be dropped before the exp, not after
    assert bool(torch.isfinite(padded.grad).all()) and not padded.grad[~mask].any()


def test_ppo_detaches_old_log_probs_and_advantages():
    log_probs = torch.randn(2, 3, requires_grad=True)
    old = torch.randn(2, 3, requires_grad=True)
    adv = torch.randn(2, 3, requires_grad=True)
    ppo_clip_loss(log_probs, old, adv).loss_policy.backward()
    assert log_probs.grad is not None and old.grad is None and adv.grad is None


def test_ppo_bad_inputs_name_the_argument():
    x = torch.zeros(2, 3)
    with pytest.raises(ValueError, match="clip must be > 0"):
        ppo_clip_loss(x, x, x, clip=0.0)
    with pytest.raises(ValueError, match="clip must be > 0"):
        ppo_clip_loss(x, x, x, clip=-0.2)
    with pytest.raises(ValueError, match="advantages must be finite"):
        ppo_clip_loss(x, x, torch.tensor([[0.0, float("nan"), 0.0]] * 2))
    with pytest.raises(ValueError, match="advantages must be finite"):
        ppo_clip_loss(x, x, torch.full((2, 3), float("inf")))
    with pytest.raises(ValueError, match=r"old_log_probs must be \(B, T\); got \(2, 4\)"):
        ppo_clip_loss(x, torch.zeros(2, 4), x)
    with pytest.raises(ValueError, match=r"advantages must be \(B, T\); got \(3,\)"):
        ppo_clip_loss(x, x, torch.zeros(3))  # no silent broadcasting
    with pytest.raises(ValueError, match=r"mask must be \(B, T\); got \(2, 4\)"):
        ppo_clip_loss(x, x, x, mask=torch.ones(2, 4, dtype=torch.bool))


def test_ppo_with_gae_learns_a_bandit():
    torch.manual_seed(6)
    arm_means = torch.tensor([0.2, 0.5, 0.8])
    logits = torch.zeros(3, requires_grad=True)
    opt = torch.optim.Adam([logits], lr=0.1)
    chance = float(torch.softmax(logits.detach(), 0)[2])  # 1/3: the untrained policy picks the best arm by chance
    for _ in range(30):
        with torch.no_grad():
            dist = masked_categorical(logits.expand(64, 3))
            arms = dist.sample()
            old_log_probs = dist.log_prob(arms)[:, None]  # (B, T=1)
        rewards = torch.bernoulli(arm_means[arms])[:, None]
        adv, _ = generalized_advantages(rewards, torch.zeros_like(rewards), torch.ones_like(rewards, dtype=torch.bool))
        adv = normalize_advantages(adv)
        for _ in range(4):  # several epochs on one batch: what the clip is for
            log_probs = masked_categorical(logits.expand(64, 3)).log_prob(arms)[:, None]
            out = ppo_clip_loss(log_probs, old_log_probs, adv)
            opt.zero_grad()
            out.loss_policy.backward()
            opt.step()
    assert chance == pytest.approx(1 / 3) and float(torch.softmax(logits.detach(), 0)[2]) > 0.9


# ------------------------------------------------------------------------------------------------
# value_loss
# ------------------------------------------------------------------------------------------------


def test_value_loss_unclipped_by_hand():
    values = torch.tensor([[1.0, 2.0], [3.0, 4.0]], dtype=F64, requires_grad=True)
    returns = torch.tensor([[0.0, 1.0], [3.0, 6.0]], dtype=F64)
    loss = value_loss(values, returns)
    # V - R = 1, 1, 0, -2; squares 1, 1, 0, 4; mean 1.5; times 0.5
    torch.testing.assert_close(loss, torch.tensor(0.75, dtype=F64))
    loss.backward()
    torch.testing.assert_close(values.grad, torch.tensor([[0.25, 0.25], [0.0, -0.5]], dtype=F64))  # (V - R) / 4


def test_value_loss_clipped_by_hand():
    values = torch.tensor([[1.0, 2.0], [3.0, 4.0]], dtype=F64, requires_grad=True)
    returns = torch.tensor([[0.0, 1.0], [3.0, 6.0]], dtype=F64)
    old = torch.tensor([[0.5, 2.5], [2.0, 4.0]], dtype=F64)
    loss = value_loss(values, returns, old_values=old, clip=0.2)
    # V - old = 0.5, -0.5, 1.0, 0 -> clamped 0.2, -0.2, 0.2, 0 -> V_clip = 0.7, 2.3, 2.2, 4.0
    # (V - R)^2 = 1, 1, 0, 4;  (V_clip - R)^2 = 0.49, 1.69, 0.64, 4
    # max = 1, 1.69, 0.64, 4 -> mean 7.33 / 4 = 1.8325 -> times 0.5 = 0.91625
    torch.testing.assert_close(loss, torch.tensor(0.91625, dtype=F64))
    loss.backward()
    # entry 0: the unclipped term wins: (V - R) / 4 = 0.25; entries 1, 2: the clipped term wins with its
    # clamp active: 0; entry 3: both terms equal with the clamp inactive: (V - R) / 4 = -0.5
    torch.testing.assert_close(values.grad, torch.tensor([[0.25, 0.0], [0.0, -0.5]], dtype=F64))


def test_value_loss_without_clip_ignores_old_values_and_detaches_targets():
    gen = torch.Generator().manual_seed(7)
    values = torch.randn(3, 4, generator=gen, dtype=F64, requires_grad=True)
    returns = torch.randn(3, 4, generator=gen, dtype=F64, requires_grad=True)
    old = torch.randn(3, 4, generator=gen, dtype=F64, requires_grad=True)
    plain = value_loss(values, returns)
    torch.testing.assert_close(value_loss(values, returns, old_values=old), plain)
    torch.testing.assert_close(plain, 0.5 * ((values - returns) ** 2).mean())
    value_loss(values, returns, old_values=old, clip=0.1).backward()
    assert values.grad is not None and returns.grad is None and old.grad is None
    assert torch.autograd.gradcheck(lambda v: value_loss(v, returns.detach()), (values.detach().requires_grad_(True),))


def test_value_loss_masked_equals_valid_subset():
    gen = torch.Generator().manual_seed(8)
    mask = torch.rand(4, 5, generator=gen) < 0.5
    values, returns, old = (torch.randn(4, 5, generator=gen, dtype=F64) for _ in range(3))
    garbage = torch.where(mask, values, torch.tensor(float("nan"), dtype=F64).expand(4, 5))
    for clip in (None, 0.3):
        got = value_loss(values, returns, old, clip=clip, mask=mask)
        want = value_loss(values[mask][None], returns[mask][None], old[mask][None], clip=clip)
        torch.testing.assert_close(got, want)
    with pytest.raises(ValueError, match="values must be finite"):
        value_loss(garbage, returns, mask=mask)  # NaN predictions are a bug even on padded steps


def test_value_loss_bad_inputs_name_the_argument():
    x = torch.zeros(2, 3)
    with pytest.raises(ValueError, match="clip needs old_values"):
        value_loss(x, x, clip=0.2)
    with pytest.raises(ValueError, match="clip must be > 0"):
        value_loss(x, x, old_values=x, clip=0.0)
    with pytest.raises(ValueError, match="returns must be finite"):
        value_loss(x, torch.full((2, 3), float("nan")))
    with pytest.raises(ValueError, match="old_values must be finite"):
        value_loss(x, x, old_values=torch.full((2, 3), float("inf")), clip=0.2)
    with pytest.raises(ValueError, match=r"returns must be \(B, T\); got \(2, 1\)"):
        value_loss(x, torch.zeros(2, 1))
    with pytest.raises(ValueError, match=r"old_values must be \(B, T\); got \(3,\)"):
        value_loss(x, x, old_values=torch.zeros(3))


# ------------------------------------------------------------------------------------------------
# explained_variance
# ------------------------------------------------------------------------------------------------


def test_explained_variance_by_hand_and_limits():
    returns = torch.tensor([[1.0, 2.0], [3.0, 4.0]], dtype=F64)
    assert float(explained_variance(returns, returns)) == 1.0  # perfect values
    assert float(explained_variance(torch.full((2, 2), 2.5, dtype=F64), returns)) == 0.0  # the returns' mean
    # V = 1, 2, 3, 5: R - V = 0, 0, 0, -1 (mean -0.25, var (3 * 0.0625 + 0.5625) / 4 = 0.1875);
    # Var R = 1.25 -> 1 - 0.1875 / 1.25 = 0.85
    values = torch.tensor([[1.0, 2.0], [3.0, 5.0]], dtype=F64)
    torch.testing.assert_close(explained_variance(values, returns), torch.tensor(0.85, dtype=F64))


def test_explained_variance_matches_sb3_formula_with_mask():
    gen = torch.Generator().manual_seed(9)
    values, returns = torch.randn(5, 6, generator=gen, dtype=F64), torch.randn(5, 6, generator=gen, dtype=F64)
    mask = torch.rand(5, 6, generator=gen) < 0.7
    v, r = values[mask].numpy(), returns[mask].numpy()
    expected = 1 - np.var(r - v) / np.var(r)  # stable_baselines3.common.utils.explained_variance
    torch.testing.assert_close(explained_variance(values, returns, mask), torch.tensor(expected, dtype=F64))
    v, r = values.flatten().numpy(), returns.flatten().numpy()
    torch.testing.assert_close(explained_variance(values, returns), torch.tensor(1 - np.var(r - v) / np.var(r), dtype=F64))


def test_explained_variance_nan_when_returns_are_constant_and_detached():
    values = torch.randn(2, 3, requires_grad=True)
    assert math.isnan(float(explained_variance(values, torch.full((2, 3), 3.0))))
    assert math.isnan(float(explained_variance(values, torch.randn(2, 3), torch.zeros(2, 3, dtype=torch.bool))))
    out = explained_variance(values, torch.randn(2, 3))
    assert out.shape == () and not out.requires_grad and math.isfinite(float(out))
    with pytest.raises(ValueError, match=r"returns must be \(B, T\); got \(3,\)"):
        explained_variance(values, torch.zeros(3))


# ------------------------------------------------------------------------------------------------
# entropy_bonus
# ------------------------------------------------------------------------------------------------


def test_entropy_bonus_by_hand():
    entropy = torch.tensor([[1.0, 2.0], [3.0, 4.0]], requires_grad=True)
    torch.testing.assert_close(entropy_bonus(entropy, 0.1), torch.tensor(-0.25))  # -0.1 * 10 / 4
    mask = torch.tensor([[True, False], [True, True]])
    bonus = entropy_bonus(entropy, 0.1, mask)
    torch.testing.assert_close(bonus, torch.tensor(-0.1 * (1 + 3 + 4) / 3))
    bonus.backward()
    torch.testing.assert_close(entropy.grad, torch.tensor([[-0.1 / 3, 0.0], [-0.1 / 3, -0.1 / 3]]))  # raises entropy


def test_entropy_bonus_zero_coef_and_bad_inputs():
    zero = entropy_bonus(torch.ones(2, 3, requires_grad=True), 0.0)
    assert zero.shape == () and float(zero) == 0.0 and not zero.requires_grad
    with pytest.raises(ValueError, match="coef must be a number >= 0; got -0.01"):
        entropy_bonus(torch.ones(2, 3), -0.01)
    with pytest.raises(ValueError, match=r"entropy must be \(B, T\); got \(2, 3, 1\)"):
        entropy_bonus(torch.ones(2, 3, 1), 0.01)
