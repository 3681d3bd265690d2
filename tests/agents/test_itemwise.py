"""agents/itemwise.py and the env's items: hard (REINFORCE over grid cells) and soft (SAT) item-wise attention."""

from __future__ import annotations

import pytest
import torch
from gymnasium.vector import AutoresetMode

from agents.common import RecurrentSoftAttention, soft_attention_losses
from agents.flops import flops_per_image
from agents.itemwise import HardItemAttention, SoftItemAttention
from envs import GlimpseVectorEnv
from glimpse import extract_glimpses

# The agents take every step as a transition: same-step autoreset, as agents.training.make_env asks.
SAME_STEP = AutoresetMode.SAME_STEP

pytestmark = pytest.mark.filterwarnings("ignore::envs.data.OfflineSubsetWarning")

RETINA = dict(task="mnist", glimpse_size=8, scales=2, num_glimpses=3)  # 28x28: grid 4, K = 16


def grads(module: torch.nn.Module) -> list[torch.Tensor]:
    """The non-zero gradients of ``module``'s parameters."""
    return [p.grad for p in module.parameters() if p.grad is not None and bool(p.grad.abs().sum() > 0)]


def hard_setup(num_envs: int = 8, seed: int = 0, **kwargs):
    torch.manual_seed(seed)
    env = GlimpseVectorEnv(num_envs, autoreset_mode=SAME_STEP, action_mode="discrete", **RETINA)
    obs, _ = env.reset(seed=seed)
    return env, HardItemAttention.from_env(env, **kwargs), obs


# ------------------------------------------------------------------------------------------------ items


@pytest.mark.parametrize("task", [dict(task="cluttered", canvas=40), dict(task="moving-mnist", frames=3)])
def test_item_glimpses_are_the_retina_at_the_grid_cell_centres(task):
    env = GlimpseVectorEnv(3, autoreset_mode=SAME_STEP, glimpse_size=8, scales=2, action_mode="discrete", **task)
    env.reset(seed=1)
    env.step(torch.tensor([[0, 0, 0]] * 3))  # video: the items of frame 1
    centers = env.item_centers()
    grid = env.grid
    assert centers.shape == (grid * grid, 2)
    cell = 2 / grid  # item k is cell (k % grid, k // grid), row-major
    torch.testing.assert_close(centers[grid + 2], torch.tensor([-1 + 2.5 * cell, -1 + 1.5 * cell]))
    items = env.item_glimpses()
    pictures = env.scene()[0]
    frames = pictures if pictures.dim() == 4 else pictures[:, 1]
    for k in (0, grid + 2, grid * grid - 1):  # an independent reference: the one-shot retina on the frame
        expected = extract_glimpses(frames, centers[k].expand(3, 2), size=8, scales=2)
        torch.testing.assert_close(items[:, k], expected)
    obs, *_ = env.step(torch.tensor([[2, 1, 0]] * 3))  # the discrete action of item grid + 2
    torch.testing.assert_close(obs["glimpse"], env.item_glimpses()[:, grid + 2])


# ------------------------------------------------------------------------------------------------ hard


def test_hard_rollout_shapes_and_discrete_env():
    env, model, obs = hard_setup()
    trajectory, _ = model.rollout(env, obs)
    assert trajectory.log_probs.shape == (8, 2) and trajectory.logits.shape == (8, 10)
    assert trajectory.locations.shape == (8, 4, 2)
    # every chosen location is a grid cell centre
    chosen = trajectory.locations[:, 1:].reshape(-1, 1, 2)
    assert bool((chosen - model.item_centers).abs().sum(-1).min(-1).values.lt(1e-6).all())
    with pytest.raises(ValueError, match="discrete"):
        continuous = GlimpseVectorEnv(8, autoreset_mode=SAME_STEP, **RETINA)
        model.rollout(continuous, continuous.reset(seed=0)[0])
    with pytest.raises(ValueError, match="items"):
        other = GlimpseVectorEnv(8, autoreset_mode=SAME_STEP, action_mode="discrete", grid=3, **RETINA)
        model.rollout(other, other.reset(seed=0)[0])


def test_hard_policy_gets_only_reinforce_gradient_and_the_classifier_none():
    env, model, obs = hard_setup()
    losses, _ = model.train_losses(env, obs)
    model.zero_grad()
    losses["loss_classifier"].backward(retain_graph=True)
    assert not grads(model.locator)  # cross-entropy never reaches the where-policy
    assert grads(model.decider) and grads(model.core)
    model.zero_grad()
    losses["loss_policy"].backward()
    assert grads(model.locator)
    assert not grads(model.decider) and not grads(model.core) and not grads(model.baseline)


def test_expected_context_minibatch_trains_the_policy_by_backprop():
    env, model, obs = hard_setup(expected_context_prob=1.0)
    trajectory, _ = model.rollout(env, obs)
    assert bool((trajectory.log_probs == 0).all())  # no REINFORCE terms in an expected-context minibatch
    model.zero_grad()
    torch.nn.functional.cross_entropy(trajectory.logits, trajectory.labels).backward()
    assert grads(model.locator)
    # expected context = the policy-weighted mean of every item's encoding (check at uniform weights)
    items = env.item_glimpses()
    uniform = torch.full((8, len(model.item_centers)), 1 / len(model.item_centers))
    encodings = torch.stack([model.glimpse_net(items[:, k], model.item_centers[k].expand(8, 2))
                             for k in range(len(model.item_centers))], dim=1)
    torch.testing.assert_close(model.expected_context(env, uniform), encodings.mean(dim=1))


def test_hard_evaluate_and_flops():
    env, model, _ = hard_setup()
    torch.manual_seed(9)
    result = model.evaluate(env, 2, mc_samples=2)
    assert {"accuracy", "accuracy_mc", "reward", "examples"} <= set(result) and result["examples"] == 16
    # rebuilt by hand: round e resets with e * N, played with the most likely cells, then twice with sampled
    # cells from the same reset (the same torch RNG state and call order draw the same cells); softmax averaged
    torch.manual_seed(9)
    model.eval()
    hits_mode = hits_mc = 0
    with torch.no_grad():
        for e in range(2):
            obs, _ = env.reset(seed=e * 8)
            mode, _ = model.rollout(env, obs, deterministic=True)
            hits_mode += int((mode.logits.argmax(dim=1) == mode.labels).sum())
            probs = 0
            for _ in range(2):
                obs, _ = env.reset(seed=e * 8)
                probs = probs + model.rollout(env, obs)[0].logits.softmax(dim=1)
            hits_mc += int((probs.argmax(dim=1) == mode.labels).sum())
    model.train()
    assert result["accuracy"] == pytest.approx(hits_mode / 16)
    assert result["accuracy_mc"] == pytest.approx(hits_mc / 16)
    # a RAM step with a K-way linear head instead of a 2-d one: count the difference by hand
    from agents.ram import RAM
    ram = RAM.from_env(GlimpseVectorEnv(2, autoreset_mode=SAME_STEP, **RETINA))
    ram.load_state_dict({k: v for k, v in model.state_dict().items() if not k.startswith(("locator", "item_"))},
                        strict=False)
    steps, k, hidden = 3, len(model.item_centers), 256
    assert flops_per_image(model, env) - flops_per_image(ram, 3) == 2 * hidden * (k - 2) * (steps - 1)


def test_hard_short_training_beats_chance():
    torch.manual_seed(0)
    env = GlimpseVectorEnv(64, autoreset_mode=SAME_STEP, action_mode="discrete", **{**RETINA, "scales": 3})
    test_env = GlimpseVectorEnv(250, autoreset_mode=SAME_STEP, split="test", action_mode="discrete",
                                **{**RETINA, "scales": 3})
    model = HardItemAttention.from_env(env, entropy_coef=0.01)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    obs, _ = env.reset(seed=0)
    before = model.evaluate(test_env, 2)["accuracy"]
    for _ in range(200):
        losses, obs = model.train_losses(env, obs)
        optimizer.zero_grad(set_to_none=True)
        losses["loss"].backward()
        optimizer.step()
    assert before < 0.25 and model.evaluate(test_env, 2)["accuracy"] > 0.4  # chance: 0.1


# ------------------------------------------------------------------------------------------------ soft


def soft_setup(num_envs: int = 8, **kwargs):
    torch.manual_seed(0)
    env = GlimpseVectorEnv(num_envs, autoreset_mode=SAME_STEP, **RETINA)
    env.reset(seed=0)
    return env, SoftItemAttention.from_env(env, **kwargs)


def test_soft_shapes_and_backprop_into_the_attention():
    env, model = soft_setup()
    items = model.scene_inputs(env)
    assert items.shape == (8, 16, 2, 1, 8, 8)
    logits, alpha = model.attend(items)
    assert logits.shape == (8, 10) and alpha.shape == (8, 3, 16)
    torch.testing.assert_close(alpha.sum(-1), torch.ones(8, 3))
    labels = env.scene()[1]
    model.losses(items, labels)["loss"].backward()
    for layer in (model.reader.query, model.reader.key, model.reader.score, model.glimpse_net.what):
        assert grads(layer), layer
    with pytest.raises(ValueError, match="items must be"):
        model(items[:, :5])
    with pytest.raises(ValueError, match="still canvases"):
        SoftItemAttention.from_env(GlimpseVectorEnv(2, autoreset_mode=SAME_STEP, task="moving-mnist", frames=2,
                                                    glimpse_size=8))


def test_soft_reader_is_invariant_to_the_order_of_its_values():
    torch.manual_seed(0)
    reader = RecurrentSoftAttention(5, 3, steps=4, hidden=16, attention_hidden=8)
    values = torch.randn(2, 7, 5)
    order = torch.randperm(7)
    logits, alpha = reader(values)
    logits_p, alpha_p = reader(values[:, order])
    torch.testing.assert_close(logits_p, logits)
    torch.testing.assert_close(alpha_p, alpha[:, :, order])


def test_doubly_stochastic_regulariser_matches_the_formula():
    logits, labels = torch.zeros(2, 3), torch.tensor([0, 1])
    steps, items = 2, 4
    uniform = torch.full((2, steps, items), 1 / items)  # covers every item T/K: regulariser 0
    assert float(soft_attention_losses(logits, uniform, labels, 1.0)["loss_attention"]) == 0.0
    stuck = torch.zeros(2, steps, items)
    stuck[:, :, 0] = 1.0  # item 0 twice: (0.5 - 2)^2 + 3 * 0.5^2 = 3.0
    out = soft_attention_losses(logits, stuck, labels, 0.5)
    assert float(out["loss_attention"]) == pytest.approx(0.5 * 3.0)
    assert float(out["loss"]) == pytest.approx(float(out["loss_classifier"]) + 1.5)


def test_soft_evaluate_counts_the_argmax_over_every_seeded_round():
    """evaluate(): round e resets with seed + e * N and scores argmax(model(items)) against the labels; the
    accuracy is the hits of every round over all of them, rebuilt here from the env's own item glimpses."""
    env, model = soft_setup()
    model.train()
    result = model.evaluate(env, 3, seed=0)
    assert model.training  # put back in its mode
    model.eval()
    hits, hits_argmin = [], 0
    with torch.no_grad():
        for e in range(3):
            env.reset(seed=e * 8)
            labels = env.scene()[1]
            logits = model(env.item_glimpses())
            hits.append(int((logits.argmax(dim=1) == labels).sum()))
            hits_argmin += int((logits.argmin(dim=1) == labels).sum())
    assert result == {"accuracy": pytest.approx(sum(hits) / 24), "examples": 24}
    # the check discriminates: the least likely class, or the last round alone, would score otherwise
    assert hits_argmin != sum(hits) and hits[-1] != sum(hits)


def test_soft_evaluate_and_flops_grow_with_the_items():
    env, model = soft_setup()
    assert set(model.evaluate(env, 2)) == {"accuracy", "examples"}
    fine = GlimpseVectorEnv(2, autoreset_mode=SAME_STEP, grid=7, **RETINA)
    coarse_flops = flops_per_image(model, env)
    fine_flops = flops_per_image(SoftItemAttention.from_env(fine), fine)
    assert fine_flops > 2.5 * coarse_flops  # 49 items against 16: the encodings dominate
