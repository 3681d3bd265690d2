"""Tests for glimpse.reinforce: returns, baseline, and the REINFORCE estimator against analytic answers."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn
from torch.distributions import Normal

from glimpse.policies import GaussianLocationPolicy, masked_categorical
from glimpse.reinforce import MovingAverageBaseline, discounted_returns, reinforce_loss

# ------------------------------------------------------------------------------------------------
# discounted_returns
# ------------------------------------------------------------------------------------------------


def _slow_returns(rewards, gamma, mask):
    B, T = rewards.shape
    out = torch.zeros(B, T, dtype=rewards.dtype)
    for b in range(B):
        for t in range(T):
            if not mask[b, t]:
                continue
            total = 0.0
            for k in range(t, T):
                if mask[b, k]:
                    total += gamma ** (k - t) * float(rewards[b, k])
            out[b, t] = total
    return out


@pytest.mark.parametrize("gamma", [1.0, 0.9])
@pytest.mark.parametrize("mask_kind", ["none", "prefix", "random"])
def test_discounted_returns_matches_double_loop(gamma, mask_kind):
    gen = torch.Generator().manual_seed(0)
    rewards = torch.randn(5, 7, generator=gen, dtype=torch.float64)
    if mask_kind == "none":
        mask = None
    elif mask_kind == "prefix":
        lengths = torch.tensor([7, 1, 4, 0, 6])
        mask = torch.arange(7)[None, :] < lengths[:, None]
    else:
        mask = torch.rand(5, 7, generator=gen) < 0.6
    expected = _slow_returns(rewards, gamma, torch.ones(5, 7, dtype=torch.bool) if mask is None else mask)
    torch.testing.assert_close(discounted_returns(rewards, gamma, mask), expected)


def test_discounted_returns_ignore_non_finite_rewards_on_invalid_steps_and_take_integers():
    mask = torch.tensor([[True, True, False]])
    for garbage in (float("inf"), float("nan")):
        torch.testing.assert_close(discounted_returns(torch.tensor([[1.0, 1.0, garbage]]), mask=mask),
                                   torch.tensor([[2.0, 1.0, 0.0]]))
    torch.testing.assert_close(discounted_returns(torch.tensor([[0, 1]]), gamma=0.5), torch.tensor([[0.5, 1.0]]))
    assert discounted_returns(torch.zeros(2, 0)).shape == (2, 0)


def test_discounted_returns_checks():
    with pytest.raises(ValueError, match="gamma"):
        discounted_returns(torch.zeros(2, 3), gamma=1.5)
    with pytest.raises(ValueError, match=r"\(2, 3, 1\)"):
        discounted_returns(torch.zeros(2, 3, 1))
    with pytest.raises(ValueError, match="bool"):
        discounted_returns(torch.zeros(2, 3), mask=torch.ones(2, 3))
    with pytest.raises(ValueError, match=r"\(2, 4\)"):
        discounted_returns(torch.zeros(2, 3), mask=torch.ones(2, 4, dtype=torch.bool))


# ------------------------------------------------------------------------------------------------
# MovingAverageBaseline
# ------------------------------------------------------------------------------------------------


def test_moving_average_matches_hand_ema():
    torch.manual_seed(0)
    baseline = MovingAverageBaseline(momentum=0.9)
    expected = None
    for _ in range(5):
        returns = torch.randn(8, 3)
        before = baseline()
        baseline.update(returns)
        batch_mean = float(returns.mean())
        expected = batch_mean if expected is None else 0.9 * expected + 0.1 * batch_mean
        assert baseline().shape == ()
        assert abs(float(baseline()) - expected) < 1e-6
        assert not before.requires_grad


def test_moving_average_per_step_with_mask():
    baseline = MovingAverageBaseline(momentum=0.5, shape=(3,))
    mask = torch.tensor([[True, True, False], [True, False, False]])
    baseline.update(torch.tensor([[1.0, 2.0, 99.0], [3.0, 99.0, 99.0]]), mask)
    torch.testing.assert_close(baseline(), torch.tensor([2.0, 2.0, 0.0]))  # step 2: never seen, stays 0
    baseline.update(torch.tensor([[4.0, 4.0, 6.0], [6.0, 6.0, 8.0]]))
    torch.testing.assert_close(baseline(), torch.tensor([3.5, 3.5, 7.0]))  # step 2's first data set it, unbiased
    with pytest.raises(ValueError, match=r"\(B, 3\)"):
        baseline.update(torch.zeros(2, 4))


def test_moving_average_starts_at_the_first_batch_with_data_not_at_zero():
    """A batch with no valid entry changes nothing, not even whether the average has started."""
    baseline = MovingAverageBaseline(momentum=0.9)
    baseline.update(torch.tensor([[3.0]]), mask=torch.tensor([[False]]))
    baseline.update(torch.tensor([[10.0]]))
    torch.testing.assert_close(baseline(), torch.tensor(10.0))


def test_moving_average_loads_a_state_saved_with_one_flag_for_all_steps():
    restored = MovingAverageBaseline(momentum=0.5, shape=(2,))
    restored.load_state_dict({"value": torch.tensor([1.0, 2.0]), "initialized": torch.tensor(True)})
    restored.update(torch.tensor([[3.0, 4.0]]))
    torch.testing.assert_close(restored(), torch.tensor([2.0, 3.0]))  # blended: both steps had started


def test_moving_average_state_dict_and_copy_semantics():
    baseline = MovingAverageBaseline(momentum=0.8, shape=(2,))
    baseline.update(torch.tensor([[1.0, 2.0]]))
    state = baseline.state_dict()
    assert set(state) == {"value", "initialized"}
    held = baseline()
    baseline.update(torch.tensor([[11.0, 12.0]]))
    torch.testing.assert_close(held, torch.tensor([1.0, 2.0]))  # a value in use is never mutated
    restored = MovingAverageBaseline(momentum=0.8, shape=(2,))
    restored.load_state_dict(baseline.state_dict())
    torch.testing.assert_close(restored(), torch.tensor([3.0, 4.0]))
    assert list(restored.parameters()) == []


# ------------------------------------------------------------------------------------------------
# reinforce_loss: bookkeeping
# ------------------------------------------------------------------------------------------------


def test_detachment_between_policy_and_baseline():
    torch.manual_seed(1)
    B, T, F, N = 6, 4, 5, 3
    policy, value = nn.Linear(F, N), nn.Linear(F, 1)
    features = torch.randn(B, T, F)
    dist = masked_categorical(policy(features).reshape(B * T, N))
    log_probs = dist.log_prob(dist.sample()).reshape(B, T)
    reward_scale = torch.tensor(2.0, requires_grad=True)  # returns that (wrongly) carry a graph
    returns = discounted_returns(reward_scale * torch.randn(B, T), gamma=0.9)
    baseline = value(features).squeeze(-1)  # (B, T), learned
    out = reinforce_loss(log_probs, returns, baseline)
    assert not out.advantages.requires_grad

    out.loss_policy.backward(retain_graph=True)
    assert all(p.grad is None or not p.grad.any() for p in value.parameters())
    assert all(p.grad is not None and p.grad.any() for p in policy.parameters())
    assert reward_scale.grad is None

    policy.zero_grad(set_to_none=True)
    out.loss_baseline.backward()
    assert all(p.grad is None or not p.grad.any() for p in policy.parameters())
    assert all(p.grad is not None and p.grad.any() for p in value.parameters())
    assert reward_scale.grad is None


def test_loss_values_and_signs():
    log_probs = torch.tensor([[-1.0, -2.0], [-0.5, -0.1]], requires_grad=True)
    returns = torch.tensor([[3.0, 1.0], [0.0, 2.0]])
    baseline = torch.tensor([[1.0, 1.0], [1.0, 1.0]], requires_grad=True)
    entropy = torch.tensor([[0.2, 0.4], [0.6, 0.8]], requires_grad=True)
    out = reinforce_loss(log_probs, returns, baseline, entropy, entropy_coef=0.1)
    adv = returns - baseline.detach()
    torch.testing.assert_close(out.advantages, adv)
    torch.testing.assert_close(out.loss_policy, -(log_probs * adv).sum(1).mean())
    torch.testing.assert_close(out.loss_baseline, ((baseline - returns) ** 2).mean())
    torch.testing.assert_close(out.loss_entropy, torch.tensor(-0.1 * 0.5))
    out.loss_entropy.backward()
    assert bool((entropy.grad < 0).all())  # minimising the loss raises the entropy


def test_zero_terms_when_unused():
    log_probs = torch.zeros(2, 3, requires_grad=True)
    returns = torch.ones(2, 3)
    out = reinforce_loss(log_probs, returns, baseline=torch.ones(2, 3))  # constant baseline: no regression
    assert float(out.loss_baseline) == 0.0 and float(out.loss_entropy) == 0.0
    out = reinforce_loss(log_probs, returns, entropy=torch.ones(2, 3))  # coef 0: no bonus
    assert float(out.loss_entropy) == 0.0
    torch.testing.assert_close(out.advantages, returns)


def test_mask_drops_padded_steps_even_with_inf_log_probs():
    torch.manual_seed(2)
    log_probs = torch.randn(3, 4, requires_grad=True)
    returns, baseline = torch.randn(3, 4), torch.randn(3, 4, requires_grad=True)
    mask = torch.tensor([[True, True, True, True], [True, True, False, False], [True, False, False, False]])
    padded = torch.where(mask, log_probs, torch.tensor(float("-inf")))
    out = reinforce_loss(padded, returns, baseline, entropy=torch.ones(3, 4), entropy_coef=1.0, mask=mask)
    adv = (returns - baseline.detach()) * mask
    torch.testing.assert_close(out.advantages, adv)
    torch.testing.assert_close(out.loss_policy, -(log_probs * adv).sum(1).mean())
    torch.testing.assert_close(out.loss_baseline, ((baseline - returns) ** 2)[mask].mean())
    torch.testing.assert_close(out.loss_entropy, torch.tensor(-1.0))
    (out.loss_policy + out.loss_baseline).backward()
    assert bool(torch.isfinite(log_probs.grad).all()) and bool(torch.isfinite(baseline.grad).all())
    assert not log_probs.grad[~mask].any()


@pytest.mark.parametrize("normalize", [False, True])
def test_a_non_finite_baseline_on_a_padded_step_changes_nothing(normalize):
    log_probs = torch.tensor([[-0.5, -1.0]], requires_grad=True)
    mask = torch.tensor([[True, False]])
    clean = reinforce_loss(log_probs, torch.tensor([[1.0, 0.0]]), torch.tensor([[0.5, 0.0]]), mask=mask,
                           normalize_advantages=normalize)
    for garbage in (float("nan"), float("inf")):
        out = reinforce_loss(log_probs, torch.tensor([[1.0, 0.0]]), torch.tensor([[0.5, garbage]]), mask=mask,
                             normalize_advantages=normalize)
        torch.testing.assert_close(out.loss_policy, clean.loss_policy)
        torch.testing.assert_close(out.advantages, clean.advantages)


def test_normalize_advantages():
    torch.manual_seed(3)
    mask = torch.rand(8, 5) < 0.7
    out = reinforce_loss(torch.zeros(8, 5), 10 + 5 * torch.randn(8, 5), mask=mask, normalize_advantages=True)
    valid = out.advantages[mask]
    assert abs(float(valid.mean())) < 1e-5
    assert abs(float(valid.std(unbiased=False)) - 1) < 1e-4
    assert not out.advantages[~mask].any()


def test_reinforce_loss_checks():
    x = torch.zeros(2, 3)
    with pytest.raises(ValueError, match=r"baseline must be \(B, T\); got \(3,\)"):
        reinforce_loss(x, x, baseline=torch.zeros(3))  # no silent broadcasting
    with pytest.raises(ValueError, match="entropy_coef"):
        reinforce_loss(x, x, entropy_coef=-1.0)
    with pytest.raises(ValueError, match="finite"):
        reinforce_loss(x, torch.full((2, 3), float("nan")))


# ------------------------------------------------------------------------------------------------
# The estimator against analytic gradients
# ------------------------------------------------------------------------------------------------


def _per_sample_grads(loss, params):
    """d loss / d params, rescaled so row i is sample i's estimate of the ascent direction d E[r]."""
    (grad,) = torch.autograd.grad(loss, params, retain_graph=True)
    return -grad * params.shape[0]  # loss_policy = -(1/B) sum_i A_i score_i


def test_gaussian_estimator_is_unbiased_and_baseline_reduces_variance():
    gen = torch.Generator().manual_seed(0)
    n, mu, sigma, a_star = 200_000, 0.3, 1.0, 1.0
    analytic = -2.0 * (mu - a_star)
    mu_per_sample = torch.full((n, 1), mu, dtype=torch.float64, requires_grad=True)
    actions = mu + sigma * torch.randn(n, 1, generator=gen, dtype=torch.float64)
    log_probs = Normal(mu_per_sample, sigma).log_prob(actions)  # (n, 1): B = n, T = 1
    returns = -((actions - a_star) ** 2)

    estimates = {}
    expected_reward = -(sigma**2 + (mu - a_star) ** 2)
    for name, baseline in [("none", None), ("const", torch.full_like(returns, expected_reward))]:
        loss = reinforce_loss(log_probs, returns, baseline).loss_policy
        g = _per_sample_grads(loss, mu_per_sample)[:, 0]
        se = float(g.std()) / n**0.5
        assert abs(float(g.mean()) - analytic) < 4 * se, (name, float(g.mean()), analytic, se)
        estimates[name] = g
    assert estimates["const"].var() < 0.8 * estimates["none"].var()  # about 14 vs 22 here


def test_bandit_estimator_matches_softmax_gradient():
    gen = torch.Generator().manual_seed(1)
    n = 200_000
    theta = torch.tensor([0.2, -0.1, 0.4], dtype=torch.float64)
    arm_means = torch.tensor([0.2, 0.5, 0.8], dtype=torch.float64)  # Bernoulli rewards
    p = torch.softmax(theta, 0)
    analytic = p * (arm_means - (p * arm_means).sum())

    logits = theta.expand(n, 3).clone().requires_grad_(True)
    dist = masked_categorical(logits)
    arms = torch.multinomial(p, n, replacement=True, generator=gen)
    rewards = torch.bernoulli(arm_means[arms], generator=gen)
    loss = reinforce_loss(dist.log_prob(arms)[:, None], rewards[:, None]).loss_policy
    g = _per_sample_grads(loss, logits)  # (n, 3)
    se = g.std(0) / n**0.5
    assert bool(((g.mean(0) - analytic).abs() < 4 * se).all()), (g.mean(0), analytic, se)


def test_training_on_bandit_reaches_best_arm():
    torch.manual_seed(2)
    arm_means = torch.tensor([0.2, 0.5, 0.8])
    logits = torch.zeros(3, requires_grad=True)
    opt = torch.optim.Adam([logits], lr=0.05)
    baseline = MovingAverageBaseline(momentum=0.9)
    for _ in range(300):
        dist = masked_categorical(logits.expand(64, 3))
        arms = dist.sample()
        returns = torch.bernoulli(arm_means[arms])[:, None]  # (B, 1)
        out = reinforce_loss(dist.log_prob(arms)[:, None], returns, baseline().expand_as(returns))
        baseline.update(returns)
        opt.zero_grad()
        out.loss_policy.backward()
        opt.step()
    assert float(torch.softmax(logits.detach(), 0)[2]) > 0.95


def test_training_on_quadratic_moves_mean_to_optimum():
    torch.manual_seed(3)
    a_star, sigma = 0.6, 0.3
    mu = torch.zeros(1, requires_grad=True)
    opt = torch.optim.SGD([mu], lr=0.1)
    baseline = MovingAverageBaseline(momentum=0.9)
    for _ in range(300):
        dist = Normal(mu.expand(256, 1), sigma)
        actions = dist.sample()
        returns = -((actions - a_star) ** 2)
        out = reinforce_loss(dist.log_prob(actions), returns, baseline().expand_as(returns))
        baseline.update(returns)
        opt.zero_grad()
        out.loss_policy.backward()
        opt.step()
    assert abs(mu.item() - a_star) < 0.05


def _squashed_optimum(target: float, std: float) -> float:
    """argmax over tanh(mu) of E[-(tanh(mu + std z) - target)^2], by Gauss-Hermite quadrature and a grid.

    Squashing moves the optimum slightly past the target (tanh shrinks the spread near the edges),
    so the learned mode is compared with this, not with the target itself.
    """
    z, w = np.polynomial.hermite_e.hermegauss(80)
    mus = np.linspace(-3.0, 3.0, 60001)
    objective = ((np.tanh(mus[:, None] + std * z[None, :]) - target) ** 2) @ (w / w.sum())
    return float(np.tanh(mus[objective.argmin()]))


def test_training_location_policy_finds_target():
    torch.manual_seed(4)
    target = torch.tensor([0.5, -0.3])
    optimum = torch.tensor([_squashed_optimum(0.5, 0.17), _squashed_optimum(-0.3, 0.17)])
    assert float((optimum - target).abs().max()) < 0.05  # about 0.03: small, but not zero
    policy = GaussianLocationPolicy(hidden_size=4)
    steps = 300
    opt = torch.optim.Adam(policy.parameters(), lr=0.05)
    sched = torch.optim.lr_scheduler.LinearLR(opt, start_factor=1.0, end_factor=0.0, total_iters=steps)
    baseline = MovingAverageBaseline(momentum=0.9)
    hidden = torch.ones(128, 4)
    for _ in range(steps):
        loc, log_prob = policy.sample(hidden)
        returns = -((loc - target) ** 2).sum(-1, keepdim=True)  # (B, 1)
        out = reinforce_loss(log_prob[:, None], returns, baseline().expand_as(returns))
        baseline.update(returns)
        opt.zero_grad()
        out.loss_policy.backward()
        opt.step()
        sched.step()
    assert float((policy.mode(hidden[:1]).detach()[0] - optimum).abs().max()) < 0.04
