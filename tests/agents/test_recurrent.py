"""agents/recurrent.py's contract: the head protocols, the fixed decision-head name (and old checkpoints), the
expected-context hook, one encoding path, the env checked once.

``data/hard_agents_before_decider.pt`` was written by the code before the decision head had a fixed name (it
kept it under ``classifier`` or ``paddle``): three tiny agents' state dicts (seed 0) and their deterministic
rollouts of four rows of the env reset with seed 3.
"""

from __future__ import annotations

import pickle
from pathlib import Path

import pytest
import torch
from gymnasium.vector import AutoresetMode

from agents.itemwise import HardItemAttention
from agents.ram import RAM
from agents.recurrent import (
    ExpectedContext,
    GaussianLocationHead,
    HardRecurrentAgent,
    Looking,
    rollout,
)
from envs import GlimpseVectorEnv

pytestmark = pytest.mark.filterwarnings("ignore::envs.data.OfflineSubsetWarning")

SAME_STEP = AutoresetMode.SAME_STEP
BEFORE_DECIDER = Path(__file__).parent / "data" / "hard_agents_before_decider.pt"
SIZES = dict(hidden=16, glimpse_hidden=8)
CASES = {  # as the fixture was written
    "ram-classify": (RAM, dict(task="mnist", num_glimpses=3, glimpse_size=6, scales=2), "classifier."),
    "ram-catch": (RAM, dict(task="catch", canvas=8, glimpse_size=6, scales=2), "paddle."),
    "item-hard": (HardItemAttention, dict(task="mnist", num_glimpses=3, glimpse_size=8, scales=2,
                                          action_mode="discrete"), "classifier."),
}


def make(name: str, seed: int, num_envs: int = 4):
    cls, env_kwargs, _ = CASES[name]
    torch.manual_seed(seed)
    env = GlimpseVectorEnv(num_envs, autoreset_mode=SAME_STEP, **env_kwargs)
    return env, cls.from_env(env, **SIZES)


@pytest.mark.parametrize("name", list(CASES))
def test_a_checkpoint_from_before_the_fixed_decider_name_loads_with_identical_outputs(name):
    saved = torch.load(BEFORE_DECIDER, weights_only=True)[name]
    old_prefix = CASES[name][2]
    assert any(key.startswith(old_prefix) for key in saved["state_dict"])  # the old layout, really
    env, model = make(name, seed=1)  # other initial weights than the checkpoint's
    model.load_state_dict(saved["state_dict"])  # strict: every key placed
    assert not any(key.startswith(old_prefix) for key in model.state_dict())
    assert any(key.startswith("decider.") for key in model.state_dict())
    obs, _ = env.reset(seed=3)
    with torch.no_grad():
        ro, _ = model.eval().rollout(env, obs, deterministic=True)
    for field in ("states", "baselines", "locations", "rewards", "logits"):
        if field in saved:
            torch.testing.assert_close(getattr(ro, field), saved[field], msg=field)


def test_the_new_layout_round_trips():
    env, model = make("ram-catch", seed=0)
    _, other = make("ram-catch", seed=1)
    other.load_state_dict(model.state_dict())
    for a, b in zip(model.state_dict().values(), other.state_dict().values()):
        assert torch.equal(a, b)


class NoScore(GaussianLocationHead):
    score = None  # type: ignore[assignment]


class Blind(torch.nn.Module):  # a where head that only knows its action mode
    action_mode = "continuous"
    policy = None

    def __init__(self, hidden: int) -> None:
        super().__init__()


def test_a_where_head_must_satisfy_the_protocol():
    with pytest.raises(TypeError, match="Blind is not a WhereHead: it lacks begin_episode, check_env, inference, "
                                        "look, score, stats"):
        HardRecurrentAgent((1, 1, 4, 4), 10, where=Blind)
    with pytest.raises(TypeError, match="NoScore is not a WhereHead: it lacks score$"):
        HardRecurrentAgent((1, 1, 4, 4), 10, where=NoScore)


def test_the_env_is_checked_once_and_another_env_again(monkeypatch):
    env, model = make("item-hard", seed=0)
    calls = []
    check = model.locator.check_env
    monkeypatch.setattr(model.locator, "check_env", lambda *args: calls.append(args) or check(*args))
    obs, _ = env.reset(seed=0)
    for _ in range(3):
        _, obs = rollout(model, env, obs)
    assert len(calls) == 1
    other, _ = make("item-hard", seed=0)
    rollout(model, other, other.reset(seed=0)[0])
    assert len(calls) == 2
    catch = GlimpseVectorEnv(4, autoreset_mode=SAME_STEP, task="catch", canvas=8, glimpse_size=8, scales=2,
                             action_mode="discrete")  # an env this agent cannot play, after good ones
    with pytest.raises(ValueError, match="built for 16 items; the env has 4"):
        rollout(model, catch, catch.reset(seed=0)[0])
    with pytest.raises(ValueError, match="built for 16 items"):  # refused again: a refused env is not remembered
        rollout(model, catch, catch.reset(seed=0)[0])


def test_an_agent_that_checked_an_env_still_pickles_and_its_copy_checks_again():
    env, model = make("ram-classify", seed=0)
    obs, _ = env.reset(seed=0)
    rollout(model, env, obs)
    copy = pickle.loads(pickle.dumps(model))
    assert copy._checked_env is None and model._checked_env() is env
    for a, b in zip(model.parameters(), copy.parameters()):
        assert torch.equal(a, b)


def test_the_expected_context_is_the_where_heads_episode_hook():
    _, model = make("item-hard", seed=0)
    model.locator.expected_context_prob = 1.0
    assert type(model.locator.begin_episode(training=True, deterministic=False)) is ExpectedContext
    assert type(model.locator.begin_episode(training=False, deterministic=False)) is Looking
    assert type(model.locator.begin_episode(training=True, deterministic=True)) is Looking
    model.locator.expected_context_prob = 0.0
    assert type(model.locator.begin_episode(training=True, deterministic=False)) is Looking
    _, ram = make("ram-classify", seed=0)
    assert type(ram.locator.begin_episode(training=True, deterministic=False)) is Looking


def test_an_expected_context_episode_cannot_be_recorded_for_replay():
    env, model = make("item-hard", seed=0)
    model.locator.expected_context_prob = 1.0
    with pytest.raises(ValueError, match="ExpectedContext episode has no sampled choices to replay"):
        rollout(model.train(), env, env.reset(seed=0)[0], record=True)


def test_encode_reads_any_leading_dims_as_the_glimpse_network_reads_rows():
    _, model = make("ram-classify", seed=0)
    glimpses, locations = torch.rand(3, 5, *model.glimpse_shape), torch.rand(3, 5, 2) * 2 - 1
    rows = torch.stack([model.glimpse_net(glimpses[:, t], locations[:, t]) for t in range(5)], dim=1)
    torch.testing.assert_close(model.encode(glimpses, locations), rows)
    torch.testing.assert_close(model.encode(glimpses[:, 2], locations[:, 2]), rows[:, 2])


def test_replay_reproduces_the_rollouts_states_through_the_same_encoding():
    env, model = make("ram-catch", seed=0)
    with torch.no_grad():
        ro, _ = rollout(model, env, env.reset(seed=0)[0], record=True)
        g = model.encode(ro.record["glimpses"], ro.locations[:, :-1])
        h, _ = model.recur(g, model.initial_state(4))
    torch.testing.assert_close(h, ro.states)
