"""Tests for glimpse.policies: tanh-squashed location policy and masked item policy."""

from __future__ import annotations

import pytest
import torch
from torch.distributions import Normal

from glimpse.policies import (
    CategoricalItemPolicy,
    GaussianLocationPolicy,
    masked_categorical,
    masked_softmax,
    tanh_normal,
)

# ------------------------------------------------------------------------------------------------
# GaussianLocationPolicy
# ------------------------------------------------------------------------------------------------


def _policy_with_bias(bias: float, hidden_size: int = 4, **kwargs) -> GaussianLocationPolicy:
    policy = GaussianLocationPolicy(hidden_size, **kwargs)
    with torch.no_grad():
        policy.mean_head.bias.fill_(bias)
    return policy


def _reference_log_prob(u: torch.Tensor, mu: torch.Tensor, std: float) -> torch.Tensor:
    """Change of variables in float64: log N(u; mu, std) - log(1 - tanh(u)^2), summed over coords."""
    u, mu = u.double(), mu.double()
    log_jac = -2.0 * torch.log(torch.cosh(u))  # log(1 - tanh(u)^2) = -2 log cosh(u), no cancellation
    return (Normal(mu, std).log_prob(u) - log_jac).sum(-1)


@pytest.mark.parametrize("bias", [0.0, 0.3, -2.0, 30.0, -1e4])
def test_gaussian_samples_in_range(bias):
    torch.manual_seed(0)
    policy = _policy_with_bias(bias)
    loc, log_prob = policy.sample(torch.randn(5000, 4))
    assert loc.shape == (5000, 2) and log_prob.shape == (5000,)
    assert bool(((loc >= -1) & (loc <= 1)).all())
    assert bool(torch.isfinite(log_prob).all())


@pytest.mark.parametrize("bias", [0.0, 0.8, 12.0])
def test_gaussian_log_prob_is_change_of_variables_of_the_pre_tanh_draw(bias):
    torch.manual_seed(1)
    policy = _policy_with_bias(bias, std=0.3)
    hidden = torch.randn(64, 4)
    mu = policy.mean(hidden).detach()

    torch.manual_seed(123)
    u = Normal(mu, 0.3).sample()  # the pre-tanh draw, reproduced independently
    torch.manual_seed(123)
    dist = policy(hidden)
    loc = dist.sample()

    torch.testing.assert_close(loc, torch.tanh(u))
    expected = _reference_log_prob(u, mu, 0.3)
    torch.testing.assert_close(dist.log_prob(loc).double(), expected, rtol=1e-5, atol=1e-3)
    if bias == 12.0:  # saturated: tanh rounds to exactly 1 in float32; the log-prob must not be inf
        assert bool((loc == 1).any())
        assert bool(torch.isfinite(dist.log_prob(loc)).all())


def test_gaussian_log_prob_gradient_reaches_mean_head():
    torch.manual_seed(2)
    policy = GaussianLocationPolicy(6)
    _, log_prob = policy.sample(torch.randn(8, 6))
    log_prob.sum().backward()
    assert policy.mean_head.weight.grad is not None
    assert policy.mean_head.weight.grad.abs().sum() > 0


def test_gaussian_fixed_std_is_not_a_parameter():
    policy = GaussianLocationPolicy(4, std=0.17)
    names = {name for name, _ in policy.named_parameters()}
    assert names == {"mean_head.weight", "mean_head.bias"}
    assert "log_std" in policy.state_dict()
    torch.testing.assert_close(policy.std, torch.full((2,), 0.17))


def test_gaussian_learned_std_gets_gradient():
    torch.manual_seed(3)
    policy = GaussianLocationPolicy(4, std=0.5, learn_std=True)
    assert any(p is policy.log_std for p in policy.parameters())
    torch.testing.assert_close(policy.std, torch.full((2,), 0.5))
    hidden = torch.randn(16, 4)
    _, log_prob = policy.sample(hidden)
    (log_prob.sum() + policy.entropy(hidden).sum()).backward()
    assert policy.log_std.grad is not None and policy.log_std.grad.abs().sum() > 0


def test_gaussian_mode_is_tanh_of_mean_head():
    torch.manual_seed(4)
    policy = _policy_with_bias(0.7, hidden_size=5)
    hidden = torch.randn(3, 5)
    expected = torch.tanh(hidden @ policy.mean_head.weight.T + policy.mean_head.bias)
    torch.testing.assert_close(policy.mode(hidden), expected)


def test_gaussian_initial_locations_near_centre():
    torch.manual_seed(5)
    policy = GaussianLocationPolicy(256)
    assert policy.mode(torch.randn(32, 256)).abs().max() < 0.05


def test_gaussian_entropy_is_pre_squash_gaussian_entropy():
    policy = GaussianLocationPolicy(4, std=0.2, loc_dims=3)
    expected = Normal(torch.zeros(3), 0.2).entropy().sum()
    ent = policy.entropy(torch.zeros(7, 4))
    assert ent.shape == (7,)
    torch.testing.assert_close(ent, expected.expand(7))


def test_gaussian_input_checks():
    policy = GaussianLocationPolicy(4)
    with pytest.raises(ValueError, match=r"\(3, 5\)"):
        policy(torch.zeros(3, 5))
    with pytest.raises(ValueError, match="std"):
        GaussianLocationPolicy(4, std=0.0)
    with pytest.raises(ValueError, match="hidden_size"):
        GaussianLocationPolicy(0)


def test_tanh_normal_rsample_is_differentiable():
    mean = torch.zeros(4, 2, requires_grad=True)
    y = tanh_normal(mean, torch.tensor(0.5)).rsample()
    y.sum().backward()
    assert mean.grad is not None and bool((mean.grad > 0).all())


# ------------------------------------------------------------------------------------------------
# CategoricalItemPolicy / masked_categorical / masked_softmax
# ------------------------------------------------------------------------------------------------


def test_categorical_forbidden_items_never_sampled():
    torch.manual_seed(6)
    policy = CategoricalItemPolicy(hidden_size=4, num_items=5)
    with torch.no_grad():
        policy.logits_head.bias.copy_(torch.tensor([10.0, 0.0, 0.0, 0.0, 0.0]))  # item 0 is tempting
    forbidden = torch.tensor([[True, False, True, False, False], [False, True, True, True, True]])
    dist = policy(torch.randn(2, 4), mask=forbidden)
    assert bool((dist.probs[forbidden] == 0).all())
    torch.testing.assert_close(dist.probs.sum(-1), torch.ones(2))
    samples = dist.sample((10_000,))  # (10000, 2)
    assert not bool(forbidden[0, samples[:, 0]].any())
    assert bool((samples[:, 1] == 0).all())
    assert bool(torch.isneginf(dist.log_prob(torch.tensor([0, 1]))).all())


def test_categorical_all_forbidden_raises():
    policy = CategoricalItemPolicy(4, 3)
    forbidden = torch.tensor([[False, True, True], [True, True, True]])
    with pytest.raises(ValueError, match=r"row\(s\) \[1\]"):
        policy(torch.zeros(2, 4), mask=forbidden)


def test_categorical_mask_checks():
    logits = torch.zeros(2, 3)
    with pytest.raises(ValueError, match="bool"):
        masked_categorical(logits, torch.zeros(2, 3, dtype=torch.long))
    with pytest.raises(ValueError, match=r"\(2, 4\)"):
        masked_categorical(logits, torch.zeros(2, 4, dtype=torch.bool))


def test_masked_softmax_matches_categorical_probs_and_renormalises():
    torch.manual_seed(7)
    logits = torch.randn(4, 6)
    forbidden = torch.rand(4, 6) < 0.5
    forbidden[:, 0] = False
    probs = masked_softmax(logits, forbidden)
    torch.testing.assert_close(probs, masked_categorical(logits, forbidden).probs)
    torch.testing.assert_close(probs.sum(-1), torch.ones(4))
    assert bool((probs[forbidden] == 0).all())
    # allowed items keep their relative odds
    expected = torch.where(forbidden, 0.0, logits.exp())
    torch.testing.assert_close(probs, expected / expected.sum(-1, keepdim=True))


def test_masked_categorical_gradients_are_finite_and_zero_on_forbidden():
    logits = torch.randn(3, 4, dtype=torch.float64, requires_grad=True)
    forbidden = torch.tensor([[False, True, False, False], [True, True, False, False], [False] * 4])
    dist = masked_categorical(logits, forbidden)
    (dist.log_prob(torch.tensor([0, 2, 3])).sum() + dist.entropy().sum()).backward()
    assert bool(torch.isfinite(logits.grad).all())
    assert bool((logits.grad[forbidden] == 0).all())


def test_masked_softmax_gradcheck():
    logits = torch.randn(2, 4, dtype=torch.float64, requires_grad=True)
    forbidden = torch.tensor([[False, True, False, False], [True, False, False, True]])
    assert torch.autograd.gradcheck(lambda x: masked_softmax(x, forbidden), (logits,))


def test_categorical_without_mask_is_plain_softmax():
    torch.manual_seed(8)
    policy = CategoricalItemPolicy(3, 4)
    hidden = torch.randn(5, 3)
    torch.testing.assert_close(policy(hidden).probs, torch.softmax(policy.logits(hidden), -1))
