"""Per-step prediction rewards: glimpse.rewards, and the envs' ``reward_mode`` against an independent reference
(``torch.nn.functional.cross_entropy`` of the scores the test feeds), per-step labels in the infos, the gain's
telescoping sum, the final mode unchanged, SB3's bridge, and the bad-input lines."""

from __future__ import annotations

import math
import warnings

import gymnasium as gym
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from gymnasium.utils.env_checker import check_env as gym_check_env
from gymnasium.vector import AutoresetMode

import envs
from envs import GlimpseEnv, GlimpseVectorEnv
from envs.data import OfflineSubsetWarning
from envs.sb3 import to_sb3
from glimpse.rewards import PREDICTION_REWARDS, label_log_prob, prediction_reward, uniform_log_prob

pytestmark = pytest.mark.filterwarnings("ignore::envs.data.OfflineSubsetWarning")

MNIST = "glimpse/MNIST-v0"
SMALL = dict(glimpse_size=5, scales=2, num_glimpses=3)
ACTION_MODES = ("continuous", "discrete")


# ------------------------------------------------------------------------------------------------------------
# glimpse.rewards
# ------------------------------------------------------------------------------------------------------------


def test_label_log_prob_is_minus_cross_entropy():
    gen = torch.Generator().manual_seed(0)
    logits, labels = torch.randn(4, 6, 10, generator=gen) * 3, torch.randint(0, 10, (4, 6), generator=gen)
    expected = -F.cross_entropy(logits.reshape(-1, 10), labels.reshape(-1), reduction="none").reshape(4, 6)
    torch.testing.assert_close(label_log_prob(logits, labels), expected)
    # Analytic: equal logits give 1/D; logits (log 3, 0) give 3/4 to class 0.
    assert label_log_prob(torch.zeros(1, 7), torch.tensor([2])).item() == pytest.approx(-math.log(7))
    assert label_log_prob(torch.tensor([math.log(3.0), 0.0]), torch.tensor(0)).item() == pytest.approx(math.log(0.75))


def test_label_log_prob_gradient():
    logits = torch.randn(3, 5, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda x: label_log_prob(x, torch.tensor([0, 4, 2])), (logits,))


def test_gain_telescopes_to_the_last_log_prob_over_the_uniform_one():
    log_probs = -torch.rand(5, 7, dtype=torch.float64) * 4  # (B, T) log p_t(y) of 5 episodes of 7 steps
    previous = torch.cat([torch.full((5, 1), uniform_log_prob(10), dtype=torch.float64), log_probs[:, :-1]], dim=1)
    gains = prediction_reward(log_probs, previous, "log_prob_gain")
    torch.testing.assert_close(gains.sum(dim=1), log_probs[:, -1] + math.log(10))
    torch.testing.assert_close(prediction_reward(log_probs, previous, "log_prob"), log_probs)


@pytest.mark.parametrize(("call", "message"), [
    (lambda: prediction_reward(torch.zeros(3), torch.zeros(3), "gain"),
     "mode must be one of ('log_prob', 'log_prob_gain'); got 'gain'"),
    (lambda: prediction_reward(torch.zeros(3), torch.zeros(1), "log_prob"),
     "log_prob and previous_log_prob must have equal shapes; got (3,) and (1,)"),
    (lambda: label_log_prob(torch.zeros(4, 10), torch.zeros(5, dtype=torch.long)),
     "logits must be (*, D) for labels (*); got (4, 10) and (5,)"),
    (lambda: label_log_prob(torch.zeros(2, 3), torch.tensor([0, 3])),
     "labels must lie in [0, 3) for 3 classes; got values from 0 to 3"),
    (lambda: label_log_prob(torch.zeros(2, 3), torch.tensor([-1, 2])),
     "labels must lie in [0, 3) for 3 classes; got values from -1 to 2"),
])
def test_bad_reward_input_is_one_line(call, message):
    with pytest.raises(ValueError) as error:
        call()
    assert str(error.value) == message


def test_label_log_prob_types():
    with pytest.raises(TypeError, match="labels must be an integer tensor; got torch.float32"):
        label_log_prob(torch.zeros(2, 3), torch.zeros(2))
    with pytest.raises(TypeError, match="logits must be a floating-point tensor; got torch.int64"):
        label_log_prob(torch.zeros(2, 3, dtype=torch.long), torch.zeros(2, dtype=torch.long))


# ------------------------------------------------------------------------------------------------------------
# The envs' reward_mode, against a reference
# ------------------------------------------------------------------------------------------------------------


def random_actions(vec: GlimpseVectorEnv, count: int, seed: int) -> list[torch.Tensor]:
    """``count`` batched actions; continuous scores anywhere in the box, so that predictions differ per step."""
    space = vec.single_action_space
    rng = np.random.default_rng(seed)
    if isinstance(space, gym.spaces.MultiDiscrete):
        return [torch.as_tensor(rng.integers(0, space.nvec, (vec.num_envs, 3))) for _ in range(count)]
    return [torch.as_tensor(rng.uniform(-1, 1, (vec.num_envs, *space.shape)).astype(np.float32)) for _ in range(count)]


def reference_log_prob(action: torch.Tensor, labels: torch.Tensor, action_mode: str, classes: int) -> torch.Tensor:
    """The documented prediction: the scores are the logits; a discrete decision d is the box corner (+1 at d, -1
    else)."""
    if action_mode == "continuous":
        scores = action[:, 2:].double()
    else:
        scores = torch.full((len(action), classes), -1.0, dtype=torch.float64)
        scores[torch.arange(len(action)), action[:, 2]] = 1.0
    return -F.cross_entropy(scores, labels, reduction="none")


@pytest.mark.parametrize("autoreset", [AutoresetMode.NEXT_STEP, AutoresetMode.SAME_STEP, AutoresetMode.DISABLED])
@pytest.mark.parametrize("action_mode", ACTION_MODES)
@pytest.mark.parametrize("reward_mode", PREDICTION_REWARDS)
def test_per_step_reward_and_labels_match_a_reference(reward_mode, action_mode, autoreset):
    """Three envs play 3 episodes of 3 steps on random actions: every reward is the reference's, and every played
    step's info holds the label it was scored against (SAME_STEP: an ended episode's in final_info)."""
    n, length, classes = 3, SMALL["num_glimpses"], 10
    vec = gym.make_vec(MNIST, num_envs=n, action_mode=action_mode, reward_mode=reward_mode,
                       autoreset_mode=autoreset, **SMALL)
    vec.reset(seed=5)
    steps = 3 * length + (3 if autoreset == AutoresetMode.NEXT_STEP else 0)
    t, previous = 0, torch.full((n,), -math.log(classes), dtype=torch.float64)  # steps played of each episode
    seen = []
    for action in random_actions(vec, steps, seed=1):
        resetting = t == length  # NEXT_STEP: this step restarts the ended episodes
        if resetting:
            t, previous = 0, torch.full((n,), -math.log(classes), dtype=torch.float64)
        labels = vec.unwrapped.scene()[1].clone()  # what this step's prediction is scored against
        _, reward, terminated, _, infos = vec.step(action)
        if resetting:
            assert (reward == 0).all() and not terminated.any() and not infos["_label"].any()
            continue
        t += 1
        log_prob = reference_log_prob(action, labels, action_mode, classes)
        expected = log_prob if reward_mode == "log_prob" else log_prob - previous
        if t == length:  # the final 0/1 reward is kept at the last step
            decisions = action[:, 2:].argmax(1) if action_mode == "continuous" else action[:, 2]
            expected = expected + (decisions == labels).double()
        torch.testing.assert_close(reward, expected.float(), rtol=0, atol=1e-5)
        previous = log_prob
        assert bool(terminated.all()) == (t == length)
        if autoreset == AutoresetMode.SAME_STEP and t == length:
            assert not infos["_label"].any()
            assert infos["_final_info"].all() and torch.equal(infos["final_info"]["label"], labels)
        else:
            assert infos["_label"].all() and torch.equal(infos["label"], labels)
        seen.append(labels)
        if t == length and autoreset != AutoresetMode.NEXT_STEP:
            t, previous = 0, torch.full((n,), -math.log(classes), dtype=torch.float64)
            if autoreset == AutoresetMode.DISABLED:
                vec.reset(options={"reset_mask": np.ones(n, bool)})
    assert len(seen) == 3 * length and len({tuple(x.tolist()) for x in seen}) == 3  # three episodes' labels


@pytest.mark.parametrize("action_mode", ACTION_MODES)
def test_gain_returns_telescope_in_the_single_env(action_mode):
    """Episode return of log_prob_gain = log p_T(y) + log D + [right at the end], whatever the steps between."""
    env = gym.make(MNIST, action_mode=action_mode, reward_mode="log_prob_gain", **SMALL)
    env.action_space.seed(3)
    for episode in range(4):
        env.reset(seed=episode)
        total, terminated = 0.0, False
        while not terminated:
            action = env.action_space.sample()
            _, reward, terminated, _, info = env.step(action)
            total += reward
        label = torch.tensor([info["label"]])
        last = reference_log_prob(torch.as_tensor(action)[None], label, action_mode, 10).item()
        decision = int(np.argmax(action[2:])) if action_mode == "continuous" else int(action[2])
        assert total == pytest.approx(last + math.log(10) + (decision == info["label"]), abs=1e-4)


@pytest.mark.parametrize("reward_mode", PREDICTION_REWARDS)
@pytest.mark.parametrize("action_mode", ACTION_MODES)
def test_single_env_per_step_passes_gymnasium_checker_with_label_at_every_step(action_mode, reward_mode):
    for env_id in (MNIST, "glimpse/MovingMNIST-v0"):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            gym_check_env(gym.make(env_id, action_mode=action_mode, reward_mode=reward_mode).unwrapped)
        assert [str(w.message) for w in caught if not issubclass(w.category, OfflineSubsetWarning)] == []
    env = GlimpseEnv(task="mnist", action_mode=action_mode, reward_mode=reward_mode, **SMALL)
    assert env.reward_mode == reward_mode
    env.reset(seed=0)
    env.action_space.seed(0)
    label = int(env.unwrapped._vec.scene()[1][0])
    for t in range(1, SMALL["num_glimpses"] + 1):
        action = env.action_space.sample()
        _, reward, terminated, _, info = env.step(action)
        decision = int(np.argmax(action[2:])) if action_mode == "continuous" else int(action[2])
        # the label at every step; whether the last decision was right at the end
        assert info == ({"label": label, "is_success": decision == label} if terminated else {"label": label})
        assert isinstance(reward, float)
        if reward_mode == "log_prob":  # log p(y) < 0 (a gain may be 0: the same guess twice), + 1 if right at the end
            assert reward - (t == SMALL["num_glimpses"] and decision == label) < 0.0


@pytest.mark.parametrize("action_mode", ACTION_MODES)
def test_final_mode_is_unchanged(action_mode):
    """reward_mode="final" (the default) pays [argmax == label] at the last step only and shows the label there
    only, and plays bit-identically to an env made without the argument."""
    n, length = 4, SMALL["num_glimpses"]
    made = [gym.make_vec(MNIST, num_envs=n, action_mode=action_mode, autoreset_mode=AutoresetMode.SAME_STEP,
                         **SMALL, **extra) for extra in ({}, {"reward_mode": "final"})]
    for vec in made:
        vec.reset(seed=2)
    for t, action in enumerate(random_actions(made[0], 3 * length, seed=4)):
        labels = made[0].unwrapped.scene()[1].clone()
        (obs, reward, terminated, truncated, infos), other = (vec.step(action) for vec in made)
        for a, b in zip((obs["glimpse"], obs["location"], reward, terminated, truncated),
                        (other[0]["glimpse"], other[0]["location"], *other[1:4])):
            assert torch.equal(a, b)
        decisions = action[:, 2:].argmax(1) if action_mode == "continuous" else action[:, 2]
        last = (t + 1) % length == 0
        assert torch.equal(reward, (decisions == labels).float() if last else torch.zeros(n))
        assert set(infos) == ({"final_obs", "_final_obs", "final_info", "_final_info"} if last else set())
        if last:
            assert torch.equal(infos["final_info"]["label"], labels)


def test_sb3_bridge_passes_the_per_step_reward_and_label():
    n, length = 3, SMALL["num_glimpses"]
    venv = to_sb3(MNIST, num_envs=n, action_mode="discrete", reward_mode="log_prob", **SMALL)
    venv.seed(7)
    venv.reset()
    for t, action in enumerate(random_actions(venv.vector_env.unwrapped, 2 * length, seed=2)):
        labels = venv.vector_env.unwrapped.scene()[1].clone()
        _, rewards, dones, infos = venv.step(action.numpy())
        expected = reference_log_prob(action, labels, "discrete", 10)
        if (t + 1) % length == 0:
            expected = expected + (action[:, 2] == labels).double()
        np.testing.assert_allclose(rewards, expected.numpy(), atol=1e-5)
        assert [info["label"] for info in infos] == labels.tolist()
        assert dones.all() == ((t + 1) % length == 0)


def test_torchrl_env_passes_the_per_step_reward_and_label():
    pytest.importorskip("torchrl")
    from envs.torchrl_env import GlimpseTorchRLEnv

    n, length = 3, SMALL["num_glimpses"]
    env = GlimpseTorchRLEnv(MNIST, num_envs=n, reward_mode="log_prob", **SMALL)
    vec = gym.make_vec(MNIST, num_envs=n, reward_mode="log_prob", autoreset_mode=AutoresetMode.DISABLED, **SMALL)
    env.set_seed(4)
    vec.reset(seed=4)
    rollout = env.rollout(length, break_when_any_done=False)
    for t in range(length):
        labels = vec.unwrapped.scene()[1].clone()
        _, reward, _, _, _ = vec.step(rollout["action"][:, t])
        torch.testing.assert_close(rollout["next", "reward"][:, t, 0], reward)
        assert torch.equal(rollout["next", "label"][:, t], labels)


# ------------------------------------------------------------------------------------------------------------
# Bad input
# ------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("make", [
    lambda **kw: GlimpseEnv(task="mnist", **kw),
    lambda **kw: gym.make_vec(MNIST, num_envs=2, **kw),
])
def test_misspelt_reward_mode_is_one_line_naming_the_modes(make):
    with pytest.raises(ValueError) as error:
        make(reward_mode="logprob")
    assert str(error.value) == "reward_mode must be one of ('final', 'log_prob', 'log_prob_gain'); got 'logprob'"


@pytest.mark.parametrize("reward_mode", PREDICTION_REWARDS)
def test_catch_refuses_per_step_rewards(reward_mode):
    with pytest.raises(ValueError) as error:
        gym.make("glimpse/Catch-v0", reward_mode=reward_mode)
    message = str(error.value)
    assert "\n" not in message and "'catch' has no label" in message and "reward_mode='final'" in message
    assert gym.make_vec("glimpse/Catch-v0", num_envs=2, reward_mode="final").unwrapped.reward_mode == "final"
