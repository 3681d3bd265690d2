"""agents/ram.py: shapes on every kind of task, the detachment rules, lockstep rollouts, evaluation, learning.

Small envs (6 px glimpses, 2 scales, short episodes) keep every test but the training run well under a second.
"""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch
from gymnasium.vector import AutoresetMode

from agents.flops import flops_per_image
from agents.ram import RAM, CoreNetwork, GlimpseNetwork, episode_steps, evaluate_rollouts, ram_losses, rollout
from envs import GlimpseVectorEnv

# The agents take every step as a transition: same-step autoreset, as agents.training.make_env asks.
SAME_STEP = AutoresetMode.SAME_STEP

pytestmark = pytest.mark.filterwarnings("ignore::envs.data.OfflineSubsetWarning")

RETINA = dict(glimpse_size=6, scales=2)
TASKS = {
    "mnist": dict(task="mnist", num_glimpses=4),
    "moving-mnist": dict(task="moving-mnist", frames=3),
    "catch": dict(task="catch", canvas=8),
}



def make_env(name: str = "mnist", num_envs: int = 8, **kwargs) -> GlimpseVectorEnv:
    return GlimpseVectorEnv(num_envs, autoreset_mode=SAME_STEP, **{**RETINA, **TASKS[name], **kwargs})


def start(name: str = "mnist", seed: int = 0, **model_kwargs):
    torch.manual_seed(seed)
    env = make_env(name)
    model = RAM.from_env(env, **model_kwargs)
    obs, _ = env.reset(seed=seed)
    return env, model, obs


def grads(module: torch.nn.Module) -> list[torch.Tensor]:
    """The non-zero gradients of ``module``'s parameters (None and all-zero ones left out)."""
    return [p.grad for p in module.parameters() if p.grad is not None and bool(p.grad.abs().sum() > 0)]


# ------------------------------------------------------------------------------------------------ networks


def test_glimpse_network_and_core_shapes():
    g = GlimpseNetwork(2 * 1 * 6 * 6)(torch.rand(5, 2, 1, 6, 6), torch.rand(5, 2) * 2 - 1)
    assert g.shape == (5, 256) and bool((g >= 0).all())
    for cell in ("rnn", "lstm"):
        core = CoreNetwork(256, 32, cell)
        h, state = core(g, core.initial_state(5))
        h2, _ = core(g, state)
        assert h.shape == h2.shape == (5, 32)
    with pytest.raises(ValueError, match="core must be one of"):
        CoreNetwork(core="gru")


def test_scale_gain_multiplies_each_retina_scale_into_the_glimpse_network():
    glimpse, location = torch.rand(5, 3, 1, 6, 6), torch.rand(5, 2) * 2 - 1
    torch.manual_seed(0)
    plain = GlimpseNetwork(3 * 6 * 6)
    torch.manual_seed(0)
    summed = GlimpseNetwork(3 * 6 * 6, scales=3, scale_gain=4.0)
    by_hand = glimpse * torch.tensor([1.0, 4.0, 16.0]).view(1, 3, 1, 1, 1)
    torch.testing.assert_close(summed(glimpse, location), plain(by_hand, location))
    assert summed.state_dict().keys() == plain.state_dict().keys()  # checkpoints load either way
    env = make_env("catch")
    model = RAM.from_env(env, hidden=32, scale_gain=4.0)
    assert torch.equal(model.glimpse_net.scale_gains.flatten(), torch.tensor([1.0, 4.0]))  # RETINA: 2 scales
    with pytest.raises(ValueError, match="scale_gain"):
        RAM.from_env(env, scale_gain=0.0)


def test_from_env_sizes_the_model():
    env = make_env("catch")
    model = RAM.from_env(env, hidden=32, glimpse_hidden=16)
    assert model.glimpse_shape == (2, 1, 6, 6) and model.num_classes == 3 and model.decision == "catch"
    assert RAM.from_env(make_env("mnist")).decision == "classify"


# ------------------------------------------------------------------------------------------------ rollout


@pytest.mark.parametrize("core", ["rnn", "lstm"])
@pytest.mark.parametrize("name", list(TASKS))
def test_rollout_shapes_and_backward(name, core):
    env, model, obs = start(name, core=core)
    n, steps = env.num_envs, episode_steps(env)
    assert steps == {"mnist": 4, "moving-mnist": 3, "catch": 7}[name]
    ro, _ = rollout(model, env, obs)
    assert ro.log_probs.shape == ro.entropies.shape == (n, steps - 1)
    assert ro.baselines.shape == ro.rewards.shape == ro.returns.shape == (n, steps)
    assert ro.locations.shape == (n, steps + 1, 2) and bool((ro.locations.abs() <= 1).all())
    assert torch.equal(ro.locations[:, 0], obs["location"])
    if name == "catch":
        assert ro.logits is None and ro.labels is None
        assert ro.decision_log_probs.shape == ro.decision_entropies.shape == (n, steps)
    else:
        assert ro.logits.shape == (n, 10) and ro.labels.shape == (n,)
        # the env rewarded exactly the argmax of the logits RAM sent at the last step
        assert torch.equal(ro.rewards[:, -1], (ro.logits.argmax(1) == ro.labels).float())
        assert bool((ro.rewards[:, :-1] == 0).all())
    assert torch.equal(ro.returns[:, 0], ro.rewards.sum(1))

    out = ram_losses(ro, entropy_coef=0.01)
    assert set(out) == {"loss", "loss_classifier", "loss_policy", "loss_baseline", "loss_entropy", "accuracy",
                        "reward"}
    assert all(bool(torch.isfinite(v)) and v.dim() == 0 for v in out.values())
    assert float(out["reward"]) == pytest.approx(float(ro.rewards.sum(1).mean()))
    out["loss"].backward()
    missing = [name for name, p in model.named_parameters() if p.grad is None]
    assert missing == []


def test_rollout_returns_the_next_episodes_first_glimpses():
    env, model, obs = start("mnist")
    _, next_obs = rollout(model, env, obs)
    twin = make_env("mnist")
    twin.reset(seed=0)
    expected, _ = twin.reset()  # no seed: every row starts its episode 1, as autoreset did
    assert torch.equal(next_obs["glimpse"], expected["glimpse"])
    assert torch.equal(next_obs["location"], expected["location"])
    ro, _ = rollout(model, env, next_obs)  # and the loop simply continues
    assert ro.rewards.shape == (8, 4)


def test_deterministic_rollout_replays_exactly():
    env, model, obs = start("mnist")
    first, _ = rollout(model, env, obs, deterministic=True)
    obs, _ = env.reset(seed=0)
    second, _ = rollout(model, env, obs, deterministic=True)
    assert torch.equal(first.locations, second.locations) and torch.equal(first.logits, second.logits)
    assert bool((first.log_probs == 0).all())


def test_rollout_rejects_envs_it_cannot_drive():
    env, model, obs = start("mnist")
    with pytest.raises(ValueError, match="decision='catch'"):
        rollout(RAM.from_env(env, decision="catch"), env, obs)
    discrete = make_env("mnist", action_mode="discrete")
    with pytest.raises(ValueError, match="action_mode='continuous'"):
        rollout(model, discrete, discrete.reset(seed=0)[0])
    short = make_env("mnist", max_episode_steps=2)
    with pytest.raises(ValueError, match="max_episode_steps=None"):
        rollout(model, short, short.reset(seed=0)[0])
    env.step(torch.zeros(8, 12))  # one step in: the rows are no longer at an episode start
    with pytest.raises(RuntimeError, match="lockstep"):
        rollout(model, env, obs)


def test_center_location_ablation_glimpses_only_the_centre_and_has_no_location_policy():
    env = make_env("catch", start="center")
    torch.manual_seed(0)
    model = RAM.from_env(env, location="center")
    obs, _ = env.reset(seed=0)
    trajectory, _ = rollout(model, env, obs)
    assert trajectory.locations.abs().max() == 0  # l_0 from the env and every l_t chosen: the centre
    out = ram_losses(trajectory)
    out["loss"].backward()
    assert grads(model.locator) == []  # nothing to learn about where to look
    assert len(grads(model.decider)) > 0 and len(grads(model.core)) > 0
    with pytest.raises(ValueError, match="start='center'"):
        rollout(model, make_env("catch"), make_env("catch").reset(seed=0)[0])
    with pytest.raises(ValueError, match="location must be one of"):
        RAM.from_env(env, location="edge")
    for std_option in (dict(learn_std=True), dict(std_final=0.1)):  # no location policy to shape: refused, not ignored
        with pytest.raises(ValueError, match="location='center' has none"):
            RAM.from_env(env, location="center", **std_option)


# ------------------------------------------------------------------------------------------------ detachment


@pytest.mark.parametrize("into_core", [False, True])
def test_reinforce_never_reaches_the_classifier_or_the_baseline(into_core):
    env, model, obs = start("mnist", reinforce_into_core=into_core)
    out = ram_losses(rollout(model, env, obs)[0])
    out["loss_policy"].backward()
    assert model.decider.weight.grad is None and model.baseline.weight.grad is None
    assert len(grads(model.locator)) > 0


@pytest.mark.parametrize("name", ["mnist", "catch"])
@pytest.mark.parametrize("into_core", [False, True])
def test_baseline_regression_never_reaches_the_policies(name, into_core):
    env, model, obs = start(name, reinforce_into_core=into_core)
    out = ram_losses(rollout(model, env, obs)[0])
    out["loss_baseline"].backward()
    assert model.locator.mean_head.weight.grad is None
    if name == "catch":
        assert model.decider.logits_head.weight.grad is None
    assert len(grads(model.baseline)) > 0
    assert (len(grads(model.core)) > 0) == into_core


@pytest.mark.parametrize("into_core", [False, True])
def test_reinforce_into_core_switch(into_core):
    env, model, obs = start("mnist", reinforce_into_core=into_core)
    ram_losses(rollout(model, env, obs)[0])["loss_policy"].backward()
    assert (len(grads(model.core)) > 0) == into_core
    assert (len(grads(model.glimpse_net)) > 0) == into_core


def test_catch_paddle_reinforce_trains_the_core_even_when_detached():
    env, model, obs = start("catch", reinforce_into_core=False)
    out = ram_losses(rollout(model, env, obs)[0])
    assert float(out["loss_classifier"]) == 0.0
    out["loss_policy"].backward()
    assert len(grads(model.decider)) > 0 and len(grads(model.core)) > 0


def _buggy_sample(locator):
    """The reimplementation bug: ``tanh(mu + noise)`` with ``mu`` still attached to the graph."""

    def sample_pre_squash(hidden):
        mu = locator.mean(hidden)
        u = mu + locator.std * torch.randn_like(mu)
        return torch.tanh(u), u, torch.zeros(hidden.shape[0])

    return sample_pre_squash


@pytest.mark.parametrize("deterministic", [False, True])
@pytest.mark.parametrize("into_core", [False, True])
def test_classifier_loss_does_not_flow_through_the_sampled_location(into_core, deterministic):
    """The location fed to the env and the glimpse network is a constant: with the classifier's loss only,
    no gradient passes through the location network. The same check fires on the known bug (control)."""
    env, model, obs = start("mnist", reinforce_into_core=into_core)
    reached = []

    def watch(module, args, out):  # record any gradient that reaches the location network's output
        if out.requires_grad:
            out.register_hook(reached.append)

    model.locator.mean_head.register_forward_hook(watch)
    ro, _ = rollout(model, env, obs, deterministic=deterministic)
    ro_loss = ram_losses(ro)["loss_classifier"]
    ro_loss.backward()
    assert reached == [] and model.locator.mean_head.weight.grad is None
    assert len(grads(model.glimpse_net.where)) > 0  # the location input itself is used, as data

    if deterministic or into_core:  # control once: the check is sensitive to the bug
        return
    model.zero_grad(set_to_none=True)
    model.locator.sample_pre_squash = _buggy_sample(model.locator)
    obs, _ = env.reset(seed=0)
    ram_losses(rollout(model, env, obs)[0])["loss_classifier"].backward()
    assert len(reached) > 0 and len(grads(model.locator.mean_head)) > 0


# ------------------------------------------------------------------------------------------------ evaluation


def test_reseeding_replays_the_same_examples_and_the_test_split_rule():
    env = make_env("mnist", split="test")
    model = RAM.from_env(env)
    labels = []
    for _ in range(2):
        obs, _ = env.reset(seed=3)
        ro, _ = rollout(model, env, obs)  # sampled: different locations, same examples
        labels.append(ro.labels)
    assert torch.equal(labels[0], labels[1])
    # test split: resetting with seed + e * N shows episode e of seed (what evaluate_rollouts() relies on)
    obs, _ = env.reset(seed=3)
    _, obs = rollout(model, env, obs)
    episode_1, _ = rollout(model, env, obs)
    obs, _ = env.reset(seed=3 + 8)
    assert torch.equal(rollout(model, env, obs)[0].labels, episode_1.labels)


@pytest.mark.parametrize("name", ["mnist", "catch"])
def test_evaluate_mean_locations_and_monte_carlo(name):
    env = make_env(name, **({"split": "test"} if name == "mnist" else {}))
    model = RAM.from_env(env)
    model.train()
    one = evaluate_rollouts(model, env, 2, mc_samples=1)
    assert model.training
    assert set(one) == {"accuracy", "accuracy_mode", "reward", "examples", "mc_samples"}
    assert one["examples"] == 16 and one["accuracy"] == one["accuracy_mode"]
    assert 0.0 <= one["accuracy"] <= 1.0
    three = evaluate_rollouts(model, env, 2, mc_samples=3)
    assert {"accuracy_mc", "reward_mc"} <= set(three) and three["accuracy"] == three["accuracy_mc"]
    assert three["accuracy_mode"] == one["accuracy_mode"]  # the mean-location pass replays exactly
    with pytest.raises(ValueError, match="mc_samples"):
        evaluate_rollouts(model, env, 1, mc_samples=0)


def _hand_replay(model, env, episodes: int, mc_samples: int, seed: int = 0):
    """evaluate_rollouts() rebuilt from its docstring: round e resets with seed + e * N and is played with the mean
    locations, then replayed K times from the same reset with sampled locations; softmaxes averaged over the K."""
    n = env.num_envs
    hits_mode = hits_mc = hits_last = return_mode = return_mc = 0.0
    with torch.no_grad():
        for e in range(episodes):
            obs, _ = env.reset(seed=seed + e * n)
            mode, _ = rollout(model, env, obs, deterministic=True)
            hits_mode += float((mode.logits.argmax(1) == mode.labels).sum())
            return_mode += float(mode.rewards.sum())
            probs = torch.zeros_like(mode.logits)
            for _ in range(mc_samples):
                obs, _ = env.reset(seed=seed + e * n)
                sampled, _ = rollout(model, env, obs)
                assert torch.equal(sampled.labels, mode.labels)  # the same examples again
                probs += sampled.logits.softmax(dim=1)
                return_mc += float(sampled.rewards.sum())
            hits_mc += float((probs.argmax(1) == mode.labels).sum())
            hits_last += float((sampled.logits.argmax(1) == mode.labels).sum())
    examples = episodes * n
    return dict(accuracy_mode=hits_mode / examples, reward=return_mode / examples, accuracy_mc=hits_mc / examples,
                reward_mc=return_mc / mc_samples / examples, last_only=hits_last / examples)


def test_evaluate_equals_a_hand_replay_of_the_seeded_rounds():
    """The numbers evaluate_rollouts() reports, rebuilt by hand on a real RAM: the same resets and the same call
    order from the same torch RNG state draw the same sampled locations, so every metric must match exactly."""
    env = make_env("mnist", split="test")
    torch.manual_seed(4)
    model = RAM.from_env(env, std=1.0)  # a wide location policy: the K replays look at different places
    model.train()
    torch.manual_seed(11)
    result = evaluate_rollouts(model, env, 2, mc_samples=3, seed=5)
    assert model.training
    torch.manual_seed(11)
    model.eval()
    expected = _hand_replay(model, env, 2, 3, seed=5)
    assert result["examples"] == 16 and result["mc_samples"] == 3
    for key in ("accuracy_mode", "reward", "accuracy_mc", "reward_mc"):
        assert result[key] == pytest.approx(expected[key], abs=1e-9), key
    assert result["accuracy"] == result["accuracy_mc"]
    assert expected["reward_mc"] > 0  # so that a sum of the K replays' returns (not their mean) would differ
    assert expected["last_only"] != expected["accuracy_mc"]  # and scoring the last replay alone would too


def test_monte_carlo_accuracy_averages_the_softmax_over_the_replays():
    """The K sampled replays' logits are replaced by hand-made ones whose averaged softmax, last replay and mean
    of logits disagree: accuracy_mc must be the averaged softmax's (hand-counted), reward_mc the mean return."""
    env = make_env("mnist", split="test")
    torch.manual_seed(0)
    model = RAM.from_env(env)
    original = model.rollout
    calls = []

    def crafted(env_, obs, *, deterministic=False):
        episode, obs = original(env_, obs, deterministic=deterministic)
        if deterministic:
            calls.append("mode")
            return episode, obs
        replay = len(calls) - 1 - max(i for i, c in enumerate(calls) if c == "mode")  # 0, 1, 2 in each round
        calls.append("mc")
        y = episode.labels
        wrong = (y + 1) % 10
        # Replay 0 is sure of one class, replays 1 and 2 lean to another; softmax probabilities, by hand:
        # rows 0-4: label 10 then wrong 2 -> label (0.9996 + 2 * 0.061) / 3 = 0.374 > wrong 2 * 0.451 / 3 = 0.301:
        #   right (the last replay and a vote: wrong)
        # rows 5-6: label 30 then wrong 5 -> label (1 + 2 * 0.006) / 3 = 0.338 < wrong 2 * 0.943 / 3 = 0.629:
        #   wrong (a mean of the logits, 10 against 3.3: right)
        # row 7: wrong 10 then label 2 -> wrong (the last replay: right)
        first = torch.tensor([10.0] * 5 + [30.0] * 2 + [10.0])
        later = torch.tensor([2.0] * 5 + [5.0] * 2 + [2.0])
        label_first = torch.arange(8) < 7
        target = torch.where((replay == 0) == label_first, y, wrong)
        logits = torch.zeros(8, 10)
        logits[torch.arange(8), target] = first if replay == 0 else later
        rewards = torch.zeros_like(episode.rewards)
        rewards[:, -1] = float(replay + 1)  # returns 1, 2, 3: their mean is 2
        return dataclasses.replace(episode, logits=logits, rewards=rewards), obs

    model.rollout = crafted
    result = evaluate_rollouts(model, env, 2, mc_samples=3)
    assert calls == ["mode", "mc", "mc", "mc"] * 2
    assert result["accuracy_mc"] == pytest.approx(5 / 8)  # hand count: rows 0-4 of each round
    assert result["accuracy"] == result["accuracy_mc"]
    assert result["reward_mc"] == pytest.approx(2.0)  # (1 + 2 + 3) / 3 per example


def test_accuracy_after_each_glimpse_of_an_agent_that_predicts_at_every_step():
    """accuracy_glimpse_t: the classifier on h_t over the same rounds, counted here from the states the rollouts
    chose from; only agents that predict at every step report it (others' classifier reads h_T alone)."""
    env = make_env("mnist", split="test")
    model = RAM.from_env(env, step_ce=1.0)
    result = evaluate_rollouts(model, env, 2, mc_samples=2)
    steps = episode_steps(env)
    hits = torch.zeros(steps)
    with torch.no_grad():
        for e in range(2):
            obs, _ = env.reset(seed=e * env.num_envs)
            episode, _ = rollout(model, env, obs, deterministic=True)
            hits += (model.decider(episode.states).argmax(-1) == episode.labels[:, None]).sum(0)
    assert [result[f"accuracy_glimpse_{t}"] for t in range(1, steps + 1)] == (hits / 16).tolist()
    assert result[f"accuracy_glimpse_{steps}"] == result["accuracy_mode"]
    glimpses = {f"accuracy_glimpse_{t}" for t in range(1, steps + 1)}
    assert set(model.evaluate(env, 2)) == {"accuracy", "reward", "examples", *glimpses}
    plain = evaluate_rollouts(RAM.from_env(env), env, 2)
    assert not any(name.startswith("accuracy_glimpse_") for name in plain)


# ------------------------------------------------------------------------------------------------ FLOPs


@pytest.mark.parametrize("core", ["rnn", "lstm"])
def test_flops_grow_linearly_with_glimpses_and_match_a_hand_count(core):
    model = RAM((3, 1, 8, 8), 10, core=core)
    counts = [flops_per_image(model, t) for t in (1, 2, 3, 4)]
    assert counts[1] - counts[0] == counts[2] - counts[1] == counts[3] - counts[2] > 0
    glimpse = 192 * 128 + 2 * 128 + 2 * 128 * 256
    core_macs = 2 * 256 * 256 * (4 if core == "lstm" else 1)
    per_step = glimpse + core_macs + 256 * 2  # + the location head (T - 1 of them)
    assert counts[0] == 2 * (glimpse + core_macs + 256 * 10)  # one glimpse, then the classifier
    assert counts[1] - counts[0] == 2 * per_step
    assert flops_per_image(model, make_env("mnist", glimpse_size=8, scales=3)) == counts[3]


# ------------------------------------------------------------------------------------------------ learning


def test_short_training_run_learns_mnist_well_above_chance():
    """A few hundred hybrid-loss updates take test accuracy from chance (10%) to well over 50%."""
    torch.manual_seed(0)
    retina = dict(task="mnist", glimpse_size=8, scales=3, num_glimpses=4)  # the coarsest scale sees the digit
    env = GlimpseVectorEnv(64, autoreset_mode=SAME_STEP, **retina)
    test_env = GlimpseVectorEnv(250, autoreset_mode=SAME_STEP, split="test", **retina)
    model = RAM.from_env(env)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    before = evaluate_rollouts(model, test_env, 2)["accuracy"]
    obs, _ = env.reset(seed=0)
    for _ in range(300):
        ro, obs = rollout(model, env, obs)
        loss = ram_losses(ro)["loss"]
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    after = evaluate_rollouts(model, test_env, 2, mc_samples=2)
    assert before < 0.3
    assert after["accuracy_mode"] > 0.6 and after["accuracy_mc"] > 0.6, after
    assert math.isfinite(after["reward"])


def test_rollout_refuses_an_env_without_same_step_autoreset():
    """The rollout reads each label at the ending step (final_info): a NEXT_STEP env, Gymnasium's default,
    is refused with the argument that fixes it, not a KeyError deep inside."""
    env = GlimpseVectorEnv(4, task="mnist", glimpse_size=8, scales=1, num_glimpses=2,
                           autoreset_mode=AutoresetMode.NEXT_STEP)
    model = RAM.from_env(env)
    obs, _ = env.reset(seed=0)
    with pytest.raises(ValueError, match="autoreset_mode=AutoresetMode.SAME_STEP"):
        rollout(model, env, obs)
