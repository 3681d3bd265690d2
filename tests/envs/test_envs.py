"""envs/glimpse_env.py through the registry: every id, single env and batched env, against the module docstring.

Every test runs on small settings (4-5 px glimpses, 2 scales, short episodes) so the file stays fast on a shared
CPU. ``KWARGS`` holds them per id and ``episode_length`` the length the docstring promises for them.
``glimpse/ImageFolder-v0`` reads a directory: ``image_folder`` (a module fixture, autouse) writes a tiny one
and puts its ``data_dir`` into ``REQUIRED`` (what an id needs to be made at all) and ``KWARGS``.
"""

from __future__ import annotations

import json
import math
import os
import resource
import subprocess
import sys
import warnings
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium.utils.env_checker import check_env as gym_check_env
from gymnasium.vector import AutoresetMode
from stable_baselines3 import PPO
from stable_baselines3.common.env_checker import check_env as sb3_check_env
from stable_baselines3.common.vec_env import VecMonitor

import envs
from envs import GlimpseEnv, GlimpseVectorEnv, task_of
from envs.data import OfflineSubsetWarning
from envs.sb3 import GlimpseExtractor, to_sb3
from glimpse import RetinaError, RetinaSpec, extract_glimpses, window_corners_px

pytestmark = [
    pytest.mark.filterwarnings("ignore::envs.data.OfflineSubsetWarning"),
    # SB3's checker suggests flattening (S, C, g, g) glimpses; GlimpseExtractor reads them as they are.
    pytest.mark.filterwarnings("ignore:Your observation glimpse has an unconventional shape:UserWarning"),
]

# The generic ids, one per kind of scene (the presets are these with other defaults: test_presets_*).
GENERIC = ("mnist", "translated", "cluttered", "small", "folder", "moving-mnist", "catch")
IDS = [envs.TASKS[name].env_id for name in GENERIC]
MODES = ("continuous", "discrete")
RETINA = dict(glimpse_size=5, scales=2)
# The tests of the same-step contract (final_obs, the next episode at once) ask for it; NEXT_STEP is the default.
SAME_STEP = AutoresetMode.SAME_STEP
# Small, fast settings per id; the episode lengths they give are in episode_length().
KWARGS = {
    "glimpse/MNIST-v0": dict(RETINA, num_glimpses=3),
    "glimpse/TranslatedMNIST-v0": dict(RETINA, num_glimpses=3),
    "glimpse/ClutteredMNIST-v0": dict(RETINA, num_glimpses=4, distractors=2),
    "glimpse/SmallMNIST-v0": dict(RETINA, num_glimpses=3, canvas=40, distractors=2),
    "glimpse/ImageFolder-v0": dict(RETINA, num_glimpses=3, canvas=24),  # + data_dir, from image_folder
    "glimpse/MovingMNIST-v0": dict(RETINA, frames=4),
    "glimpse/Catch-v0": dict(RETINA, canvas=9),
}
# What each id needs to be made at all, on top of its registered defaults.
REQUIRED: dict[str, dict] = {env_id: {} for env_id in IDS}
FOLDER = "glimpse/ImageFolder-v0"
# The tiny image folder: class -> (number of files, colour). Per class, every 5th file by name is a test image.
FOLDER_CLASSES = {"heron": (6, (40, 90, 200)), "crow": (7, (20, 20, 20)), "finch": (5, (230, 180, 30))}


def write_image_folder(root: Path) -> Path:
    """``root/<class>/<i>.png|.jpg``: noisy pictures of each class's colour, of assorted shapes."""
    from PIL import Image

    generator = np.random.default_rng(0)
    for c, (count, colour) in FOLDER_CLASSES.items():
        (root / c).mkdir(parents=True)
        for i in range(count):
            height, width = 10 + 3 * i, 16 + i
            noise = generator.integers(-30, 31, (height, width, 3))
            pixels = np.clip(np.array(colour) + noise, 0, 255).astype(np.uint8)
            Image.fromarray(pixels).save(root / c / f"{i:02d}{'.png' if i % 2 else '.jpg'}")
    return root


@pytest.fixture(scope="module", autouse=True)
def image_folder(tmp_path_factory) -> Path:
    root = write_image_folder(tmp_path_factory.mktemp("image-folder"))
    REQUIRED[FOLDER]["data_dir"] = KWARGS[FOLDER]["data_dir"] = str(root)
    return root



def test_every_task_has_an_id():
    assert set(GENERIC) < set(envs.TASKS)
    for name, task in envs.TASKS.items():
        assert task.name == name and task_of(name) is task and task_of(task.env_id) is task
        spec = gym.spec(task.env_id)
        assert spec.entry_point == "envs.glimpse_env:GlimpseEnv"
        assert spec.vector_entry_point == "envs.glimpse_env:GlimpseVectorEnv"
        assert spec.kwargs == {"task": name}


# ------------------------------------------------------------------------------------------------------------
# Helpers
# ------------------------------------------------------------------------------------------------------------


def num_decisions(env_id: str) -> int:
    """Classes (10 digits, or the image folder's), or Catch's 3 paddle moves."""
    return {"catch": 3, "folder": len(FOLDER_CLASSES)}.get(task_of(env_id).name, 10)


def episode_length(env_id: str, kwargs: dict) -> int:
    """The documented length: num_glimpses (classification), frames (moving-mnist), canvas - 1 (catch)."""
    task = task_of(env_id).name
    if task_of(env_id).is_still:
        return kwargs.get("num_glimpses", 6)
    if task == "moving-mnist":
        return kwargs.get("frames", 20)
    return kwargs.get("canvas", 24) - 1


def fixed_actions(space: gym.Space, count: int, seed: int, *, spread: float = 1.0) -> np.ndarray:
    """``count`` actions of ``space`` (single or batched) from ``seed``; float Box actions in ``[-spread, spread]``."""
    rng = np.random.default_rng(seed)
    if isinstance(space, gym.spaces.MultiDiscrete):
        return rng.integers(0, space.nvec, (count, *space.shape)).astype(np.int64)
    if np.issubdtype(space.dtype, np.integer):  # gymnasium batches MultiDiscrete as an integer Box
        return rng.integers(space.low, space.high, (count, *space.shape), endpoint=True).astype(np.int64)
    return rng.uniform(-spread, spread, (count, *space.shape)).astype(np.float32)


def decision_of(action: np.ndarray, mode: str) -> int:
    return int(np.argmax(action[2:])) if mode == "continuous" else int(action[2])


def action_for(location_cell_or_xy, decision: int, mode: str, num_decisions: int) -> np.ndarray:
    """A single action that looks at ``location_cell_or_xy`` (x, y) or (column, row) and decides ``decision``."""
    if mode == "continuous":
        scores = np.zeros(num_decisions, np.float32)
        scores[decision] = 1.0
        return np.concatenate([np.asarray(location_cell_or_xy, np.float32), scores])
    return np.array([*location_cell_or_xy, decision], np.int64)


def pictures(vec: GlimpseVectorEnv) -> torch.Tensor:
    """``(N, C, H, W)`` what each env shows now, read from the scene's data (canvases, video, game state)."""
    if vec.is_still:
        return vec.scene()[0]
    if vec.task_spec.kind == "video":
        video = vec.scene()[0]
        t = vec._steps.clamp(max=video.shape[1] - 1)
        return video[torch.arange(vec.num_envs), t]
    # Catch, drawn here from the documented state: the ball pixel and the 2-pixel paddle on the bottom row.
    state, screen = vec._scene.state, vec.canvas_shape[-1]
    image = torch.zeros(vec.num_envs, 1, screen, screen, dtype=torch.uint8)
    rows = torch.arange(vec.num_envs)
    image[rows, 0, state.ball_y, torch.floor(state.ball_x + 0.5).long()] = 255
    image[rows, 0, screen - 1, state.paddle_x] = 255
    image[rows, 0, screen - 1, state.paddle_x + 1] = 255
    return image


def expected_glimpses(vec: GlimpseVectorEnv, locations: torch.Tensor) -> torch.Tensor:
    """The core retina's glimpses of what each env shows, at ``locations``."""
    return extract_glimpses(pictures(vec), locations.to(torch.float32), retina=vec.retina).to(torch.float32)


def assert_obs_equal(batched: dict, row: int, single: dict) -> None:
    for key in ("glimpse", "location"):
        got = np.asarray(batched[key][row].cpu() if isinstance(batched[key], torch.Tensor) else batched[key][row])
        np.testing.assert_array_equal(got, single[key], err_msg=key)


# ------------------------------------------------------------------------------------------------------------
# Checkers, spaces and a full rollout
# ------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("env_id", IDS)
def test_check_env(env_id, mode):
    """Gymnasium's checker (render included) and SB3's pass, on the registered defaults."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        gym_check_env(gym.make(env_id, action_mode=mode, render_mode="rgb_array", **REQUIRED[env_id]).unwrapped)
    assert [str(w.message) for w in caught if not issubclass(w.category, OfflineSubsetWarning)] == []
    sb3_check_env(gym.make(env_id, action_mode=mode, **REQUIRED[env_id]))


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("env_id", IDS)
def test_spaces(env_id, mode):
    env = gym.make(env_id, action_mode=mode, **KWARGS[env_id]).unwrapped
    vec = gym.make_vec(env_id, num_envs=3, action_mode=mode, **KWARGS[env_id])
    channels, height, width = vec.canvas_shape
    assert env.observation_space["glimpse"].shape == (2, channels, 5, 5)
    assert env.observation_space["location"].shape == (2,)
    decisions = num_decisions(env_id)
    if mode == "continuous":
        assert env.action_space == gym.spaces.Box(-1.0, 1.0, (2 + decisions,), np.float32)
    else:
        grid = max(2, math.ceil(max(height, width) / 5))
        assert env.action_space == gym.spaces.MultiDiscrete([grid, grid, decisions])
    assert vec.single_observation_space == env.observation_space
    assert vec.single_action_space == env.action_space
    assert vec.observation_space == gym.vector.utils.batch_space(env.observation_space, 3)
    assert vec.action_space == gym.vector.utils.batch_space(env.action_space, 3)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("env_id", IDS)
def test_rollout(env_id, mode):
    """An episode lasts the documented number of steps, rewards only at the last, with the label or ``caught``."""
    kwargs = KWARGS[env_id]
    length = episode_length(env_id, kwargs)
    env = gym.make(env_id, action_mode=mode, **kwargs)
    env.action_space.seed(0)
    obs, info = env.reset(seed=0)
    assert info == {} and env.observation_space.contains(obs)
    for t in range(1, length + 1):
        action = env.action_space.sample()
        label = env.unwrapped._vec._scene.labels  # before the step: what the decision is judged against
        obs, reward, terminated, truncated, info = env.step(action)
        assert env.observation_space.contains(obs)
        assert isinstance(reward, float) and not truncated
        if t < length:
            assert (reward, terminated, info) == (0.0, False, {})
    assert terminated
    if task_of(env_id).name == "catch":
        # numpy scalars, as the vector env's infos hold them (libraries such as TorchRL stack them as arrays)
        assert set(info) == {"caught", "is_success"} and type(info["caught"]) is np.bool_
        assert reward == float(info["caught"]) and info["is_success"] == info["caught"]
    else:
        assert set(info) == {"label", "is_success"} and type(info["label"]) is np.int64
        assert info["label"] == int(label[0]) and type(info["is_success"]) is np.bool_
        assert reward == float(decision_of(action, mode) == info["label"]) == float(info["is_success"])


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("env_id", [i for i in IDS if task_of(i).name != "catch"])
def test_reward_is_for_the_right_decision_at_the_last_step(env_id, mode):
    kwargs = KWARGS[env_id]
    length = episode_length(env_id, kwargs)
    env = GlimpseEnv(task=task_of(env_id).name, action_mode=mode, **kwargs)
    classes = num_decisions(env_id)
    for correct in (True, False):
        env.reset(seed=3)
        label = int(env._vec._scene.labels[0])
        for t in range(1, length + 1):
            # Right answers before the last step earn nothing; only the last decision counts.
            decision = label if (correct or t < length) else (label + 1) % classes
            _, reward, terminated, _, info = env.step(action_for((0, 0), decision, mode, classes))
            assert reward == (float(correct) if t == length else 0.0)
        assert terminated and info == {"label": label, "is_success": correct}
    # Under per-step rewards the return is no longer 0/1; is_success still says whether the last decision was right.
    env = GlimpseEnv(task=task_of(env_id).name, action_mode=mode, reward_mode="log_prob", **kwargs)
    for correct in (True, False):
        env.reset(seed=3)
        label = int(env._vec._scene.labels[0])
        for t in range(1, length + 1):
            decision = label if correct else (label + 1) % classes
            _, reward, terminated, _, info = env.step(action_for((0, 0), decision, mode, classes))
        assert terminated and info["label"] == label and info["is_success"] == correct and reward != float(correct)


# ------------------------------------------------------------------------------------------------------------
# Seeding
# ------------------------------------------------------------------------------------------------------------


def _play(env: gym.Env, seed: int | None, actions: np.ndarray, episodes: int) -> list:
    """Observations and rewards of ``episodes`` episodes: reset(seed) first, then reset() after each end."""
    record = []
    obs, _ = env.reset(seed=seed)
    record.append(obs)
    steps = iter(actions)
    for _ in range(episodes):
        done = False
        while not done:
            obs, reward, terminated, truncated, _ = env.step(next(steps))
            record += [obs, reward]
            done = terminated or truncated
        obs, _ = env.reset()
        record.append(obs)
    return record


def _same(a: list, b: list) -> bool:
    for x, y in zip(a, b, strict=True):
        if isinstance(x, dict):
            if not all(np.array_equal(x[k], y[k]) for k in x):
                return False
        elif x != y:
            return False
    return True


@pytest.mark.parametrize("env_id", IDS)
def test_seeding(env_id):
    kwargs = KWARGS[env_id]
    env = gym.make(env_id, **kwargs)
    actions = fixed_actions(env.action_space, 2 * episode_length(env_id, kwargs), seed=1)
    first = _play(env, 5, actions, episodes=2)
    assert _same(first, _play(gym.make(env_id, **kwargs), 5, actions, episodes=2)), "same seed, other episodes"
    assert _same(first, _play(env, 5, actions, episodes=2)), "re-seeding the same env did not restart it"
    other = _play(env, 6, actions, episodes=2)
    assert not np.array_equal(first[0]["location"], other[0]["location"]), "different seeds, same start"
    assert not _same(first, other)
    # reset() without a seed goes on to new episodes: the second episode's start is not the first's.
    second_start = first[2 * episode_length(env_id, kwargs) + 1]
    assert not np.array_equal(first[0]["location"], second_start["location"])


def test_start_location_is_independent_of_the_target():
    """The random first glimpse is drawn from its own stream: it must not point at the digit."""
    vec = GlimpseVectorEnv(400, task="translated", glimpse_size=4)
    obs, _ = vec.reset(seed=0)
    canvas = vec.scene()[0][:, 0].float()  # (N, H, W)
    xs = torch.arange(canvas.shape[-1], dtype=torch.float32)
    mass = canvas.sum((1, 2))
    digit_x = (canvas.sum(1) * xs).sum(1) / mass
    digit_y = (canvas.sum(2) * xs).sum(1) / mass
    for start, digit in ((obs["location"][:, 0], digit_x), (obs["location"][:, 1], digit_y)):
        correlation = torch.corrcoef(torch.stack([start, digit]))[0, 1]
        assert abs(float(correlation)) < 0.2, f"start location correlates with the digit's position ({correlation})"


# ------------------------------------------------------------------------------------------------------------
# The batched env: the same episodes as N single envs, same-step autoreset
# ------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("env_id", IDS)
def test_make_vec_matches_single_envs(env_id, mode):
    """Vector env seeded s, env i == single env seeded s + i, step by step over 2.5 episodes (autoreset)."""
    n, seed, kwargs = 3, 11, KWARGS[env_id]
    length = episode_length(env_id, kwargs)
    vec = gym.make_vec(env_id, num_envs=n, action_mode=mode, autoreset_mode=SAME_STEP, **kwargs)
    singles = [gym.make(env_id, action_mode=mode, **kwargs) for _ in range(n)]
    assert vec.metadata["autoreset_mode"] == AutoresetMode.SAME_STEP
    # Continuous locations up to 1.5 also exercise the clipping.
    actions = fixed_actions(vec.action_space, 2 * length + length // 2 + 1, seed=2, spread=1.5)

    obs, _ = vec.reset(seed=seed)
    for i, env in enumerate(singles):
        assert_obs_equal(obs, i, env.reset(seed=seed + i)[0])
    ended = 0
    for batch in actions:
        obs, rewards, terminated, truncated, infos = vec.step(batch)
        steps = [env.step(batch[i]) for i, env in enumerate(singles)]
        done = [s[2] or s[3] for s in steps]
        np.testing.assert_array_equal(rewards.numpy(), [s[1] for s in steps])
        np.testing.assert_array_equal(terminated.numpy(), [s[2] for s in steps])
        np.testing.assert_array_equal(truncated.numpy(), [s[3] for s in steps])
        if not any(done):
            assert infos == {}
            for i, s in enumerate(steps):
                assert_obs_equal(obs, i, s[0])
            continue
        ended += 1
        np.testing.assert_array_equal(infos["_final_obs"].numpy(), done)
        np.testing.assert_array_equal(infos["_final_info"].numpy(), done)
        for i, (single_obs, _, _, _, single_info) in enumerate(steps):
            assert_obs_equal(infos["final_obs"], i, single_obs)
            for key, value in single_info.items():
                assert infos["final_info"][f"_{key}"][i]
                assert infos["final_info"][key][i].item() == value
            assert_obs_equal(obs, i, singles[i].reset()[0])  # the next episode's first observation
    assert ended == 2


@pytest.mark.parametrize("env_id", IDS)
def test_inference_mode_then_normal_mode_plays_the_same_episodes(env_id):
    """Evaluating under torch.inference_mode and then training on the same env: its state is kept as
    normal tensors, so it plays on, exactly as an env never put in inference mode."""
    n, kwargs = 3, KWARGS[env_id]
    length = episode_length(env_id, kwargs)
    reference, mixed = (gym.make_vec(env_id, num_envs=n, **kwargs) for _ in range(2))
    actions = fixed_actions(reference.action_space, 2 * length + 1, seed=3)
    expected = [reference.reset(seed=5)[0]] + [reference.step(batch)[0] for batch in actions]
    with torch.inference_mode():
        played = [mixed.reset(seed=5)[0]] + [mixed.step(batch)[0] for batch in actions[:length]]
    played += [mixed.step(batch)[0] for batch in actions[length:]]  # autoresets outside inference mode
    for want, got in zip(expected, played):
        for key in want:
            torch.testing.assert_close(got[key], want[key], rtol=0, atol=0)


@pytest.mark.parametrize("env_id", IDS)
def test_make_vec_matches_gymnasium_sync_vector_env(env_id):
    """gymnasium's SyncVectorEnv over the single env, in SAME_STEP mode, plays the batched env's episodes."""
    n, kwargs = 2, KWARGS[env_id]
    length = episode_length(env_id, kwargs)
    batched = gym.make_vec(env_id, num_envs=n, autoreset_mode=SAME_STEP, **kwargs)
    sync = gym.make_vec(
        env_id, num_envs=n, vectorization_mode="sync",
        vector_kwargs={"autoreset_mode": AutoresetMode.SAME_STEP}, **kwargs,
    )
    obs_b, _ = batched.reset(seed=4)
    obs_s, _ = sync.reset(seed=4)
    for actions in fixed_actions(batched.action_space, length + 2, seed=3):
        for key in obs_s:
            np.testing.assert_array_equal(obs_b[key].numpy(), obs_s[key])
        obs_b, r_b, term_b, trunc_b, info_b = batched.step(actions)
        obs_s, r_s, term_s, trunc_s, info_s = sync.step(actions)
        np.testing.assert_array_equal(r_b.numpy(), r_s)
        np.testing.assert_array_equal(term_b.numpy(), term_s)
        np.testing.assert_array_equal(trunc_b.numpy(), trunc_s)
        assert ("final_obs" in info_b) == ("final_obs" in info_s)
        if "final_obs" in info_s:
            for i in range(n):
                assert_obs_equal(info_b["final_obs"], i, info_s["final_obs"][i])


@pytest.mark.parametrize("env_id", ["glimpse/ClutteredMNIST-v0", "glimpse/Catch-v0"])
def test_same_step_autoreset_contract(env_id):
    n, kwargs = 3, KWARGS[env_id]
    length = episode_length(env_id, kwargs)
    vec = gym.make_vec(env_id, num_envs=n, start="center", autoreset_mode=SAME_STEP, **kwargs)
    assert vec.metadata["autoreset_mode"] == AutoresetMode.SAME_STEP
    vec.reset(seed=0)
    look = torch.tensor([0.3, -0.4])
    actions = torch.cat([look.expand(n, 2), torch.zeros(n, vec.single_action_space.shape[0] - 2)], dim=1)
    for _ in range(length - 1):
        vec.step(actions)
    old = pictures(vec).clone()
    obs, _, terminated, truncated, infos = vec.step(actions)
    assert terminated.all() and not truncated.any()
    assert set(infos) == {"final_obs", "_final_obs", "final_info", "_final_info"}
    assert infos["_final_obs"].dtype == torch.bool and infos["_final_obs"].all()
    assert infos["_final_info"].dtype == torch.bool and infos["_final_info"].all()
    # final_obs is the last observation of the finished episodes: the glimpse where the last action looked.
    final = infos["final_obs"]
    assert set(final) == {"glimpse", "location"} and final["glimpse"].shape == obs["glimpse"].shape
    torch.testing.assert_close(final["location"], look.expand(n, 2))
    if task_of(env_id).name != "catch":  # Catch's picture moved on with the step; checked in test_observation_glimpse
        torch.testing.assert_close(final["glimpse"], extract_glimpses(old, final["location"], retina=vec.retina))
    key = "caught" if task_of(env_id).name == "catch" else "label"
    assert infos["final_info"][f"_{key}"].all() and infos["final_info"][key].shape == (n,)
    # The observation rows of the ended envs are already the next episodes' first observations.
    fresh = gym.make_vec(env_id, num_envs=n, start="center", autoreset_mode=SAME_STEP, **kwargs)
    fresh.reset(seed=0)
    first_of_next, _ = fresh.reset()  # episode 1 of every env
    for k in obs:
        torch.testing.assert_close(obs[k], first_of_next[k], rtol=0, atol=0)
    torch.testing.assert_close(obs["location"], torch.zeros(n, 2))  # start="center"


@pytest.mark.parametrize("mode", MODES)
def test_ppo_trains_through_to_sb3(mode):
    """to_sb3 on the batched env runs SB3's PPO (MultiInputPolicy + GlimpseExtractor) under VecMonitor."""
    vec = gym.make_vec("glimpse/MNIST-v0", num_envs=4, action_mode=mode, glimpse_size=4, scales=2, num_glimpses=3,
                       autoreset_mode=SAME_STEP)
    venv = VecMonitor(to_sb3(vec))
    model = PPO(
        "MultiInputPolicy", venv, n_steps=6, batch_size=24, n_epochs=1, seed=0, device="cpu",
        policy_kwargs=dict(
            net_arch=[16],
            features_extractor_class=GlimpseExtractor,
            features_extractor_kwargs=dict(features_dim=16, hidden=16, channels=4),
        ),
    )
    model.learn(total_timesteps=48)
    assert model.num_timesteps == 48  # two rollouts of 6 steps in 4 envs
    assert len(model.ep_info_buffer) == 4 * 12 // 3  # 12 steps per env, in episodes of 3 steps
    assert all(ep["l"] == 3 and ep["r"] in (0.0, 1.0) for ep in model.ep_info_buffer)


# ------------------------------------------------------------------------------------------------------------
# The observation is the core retina's glimpse
# ------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("env_id", IDS)
def test_observation_glimpse_is_the_retina_glimpse(env_id):
    kwargs = KWARGS[env_id]
    vec = gym.make_vec(env_id, num_envs=3, **kwargs)
    obs, _ = vec.reset(seed=8)
    torch.testing.assert_close(obs["glimpse"], expected_glimpses(vec, obs["location"]), rtol=0, atol=1e-6)
    for actions in fixed_actions(vec.action_space, episode_length(env_id, kwargs) - 1, seed=4):
        obs, *_ = vec.step(actions)
        np.testing.assert_array_equal(obs["location"].numpy(), actions[:, :2])
        torch.testing.assert_close(obs["glimpse"], expected_glimpses(vec, obs["location"]), rtol=0, atol=1e-6)


@pytest.mark.parametrize("env_id", IDS)
def test_discrete_actions_look_at_grid_cell_centres(env_id):
    """Cell (column, row) of the grid x grid partition: centre ((2c + 1) / grid - 1, (2r + 1) / grid - 1)."""
    kwargs = dict(KWARGS[env_id], action_mode="discrete")
    vec = gym.make_vec(env_id, num_envs=1, **kwargs)
    vec.reset(seed=0)
    grid = vec.grid
    _, height, width = vec.canvas_shape
    cells = [(0, 0), (grid - 1, 0), (1, grid - 1), (grid // 2, grid // 2)]
    for column, row in cells:
        obs, *_ = vec.step(np.array([[column, row, 0]]))
        expected = torch.tensor([[(2 * column + 1) / grid - 1, (2 * row + 1) / grid - 1]])
        torch.testing.assert_close(obs["location"], expected)
        torch.testing.assert_close(obs["glimpse"], expected_glimpses(vec, expected), rtol=0, atol=1e-6)
        vec.reset(seed=0)


def test_discrete_cells_tile_the_canvas():
    """With the glimpse side dividing the canvas, the default grid's cells are exactly the scale-0 windows."""
    vec = GlimpseVectorEnv(1, task="translated", canvas=60, glimpse_size=12, action_mode="discrete")
    assert vec.grid == 5
    vec.reset(seed=0)
    for column in range(5):
        for row in range(5):
            obs, *_ = vec.step(np.array([[column, row, 0]]))
            corner = window_corners_px(obs["location"], 60, 60, size=12)[0, 0].tolist()
            assert corner == [12 * column, 12 * row]
            vec.reset(seed=0)


def test_continuous_locations_are_clipped_to_the_canvas():
    vec = GlimpseVectorEnv(3, task="translated", **RETINA)
    vec.reset(seed=0)
    scores = np.zeros((3, 10), np.float32)
    where = np.array([[3.0, -7.5], [-1.2, 0.25], [0.5, 1.0000001]], np.float32)
    obs, *_ = vec.step(np.concatenate([where, scores], axis=1))
    clipped = torch.tensor([[1.0, -1.0], [-1.0, 0.25], [0.5, 1.0]])
    torch.testing.assert_close(obs["location"], clipped, rtol=0, atol=0)
    torch.testing.assert_close(obs["glimpse"], expected_glimpses(vec, clipped), rtol=0, atol=1e-6)


# ------------------------------------------------------------------------------------------------------------
# The test split: a fixed set of canvases
# ------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("env_id", [i for i in IDS if task_of(i).name != "catch"])
def test_test_split_is_a_fixed_set(env_id):
    """Episode e of env i (N envs, seed s) shows test example (s + i + e * N) mod M, whatever the seed."""
    kwargs = KWARGS[env_id]
    length = episode_length(env_id, kwargs)

    def shown(num_envs: int, seed: int, episodes: int = 0, split: str = "test") -> tuple[torch.Tensor, torch.Tensor]:
        vec = gym.make_vec(env_id, num_envs=num_envs, split=split, autoreset_mode=SAME_STEP, **kwargs)
        vec.reset(seed=seed)
        for _ in range(episodes * length):
            vec.step(vec.action_space.sample())
        data, labels = vec.scene()
        return data.clone(), labels.clone()

    data, labels = shown(3, seed=10, episodes=1)  # examples 13, 14, 15
    for i, example in enumerate((13, 14, 15)):
        other_data, other_labels = shown(1, seed=example)  # a single env's first episode, another seed
        torch.testing.assert_close(data[i], other_data[0], rtol=0, atol=0)
        assert labels[i] == other_labels[0]
    # The index wraps around the test set: example M + 13 is example 13.
    if task_of(env_id).name == "folder":
        size = len(envs.data.load_image_folder(kwargs["data_dir"], "test", size=kwargs["canvas"]))
    else:
        size = envs.data.load_digits("mnist", "test").labels.shape[0]
    torch.testing.assert_close(shown(1, seed=size + 13)[0][0], data[0], rtol=0, atol=0)
    # The train split draws other canvases for the same seeds.
    train, _ = shown(3, seed=10, episodes=1, split="train")
    assert not torch.equal(train, data)


# ------------------------------------------------------------------------------------------------------------
# Truncation
# ------------------------------------------------------------------------------------------------------------


def test_max_episode_steps_truncates_single_env():
    env = gym.make("glimpse/MNIST-v0", max_episode_steps=2, **KWARGS["glimpse/MNIST-v0"])  # TimeLimit
    env.reset(seed=0)
    action = env.action_space.sample()
    assert env.step(action)[2:4] == (False, False)
    assert env.step(action)[2:4] == (False, True)
    # The env's own argument: the info carries the label at the end, and the episode is over.
    raw = GlimpseEnv(task="mnist", max_episode_steps=2, **KWARGS["glimpse/MNIST-v0"])
    raw.reset(seed=0)
    raw.step(action)
    _, reward, terminated, truncated, info = raw.step(action)
    assert (reward, terminated, truncated) == (0.0, False, True)
    assert info == {"label": info["label"], "is_success": False}  # truncated: no decision was made
    with pytest.raises(RuntimeError, match="reset"):
        raw.step(action)


def test_max_episode_steps_truncates_vector_env_and_sb3():
    kwargs = KWARGS["glimpse/TranslatedMNIST-v0"]
    vec = gym.make_vec("glimpse/TranslatedMNIST-v0", num_envs=2, max_episode_steps=2, autoreset_mode=SAME_STEP,
                       **kwargs)
    vec.reset(seed=0)
    actions = vec.action_space.sample()
    _, _, terminated, truncated, infos = vec.step(actions)
    assert not (terminated.any() or truncated.any()) and infos == {}
    _, rewards, terminated, truncated, infos = vec.step(actions)
    assert truncated.all() and not terminated.any() and (rewards == 0).all()
    assert infos["_final_obs"].all() and infos["final_info"]["_label"].all()

    venv = to_sb3(gym.make_vec("glimpse/TranslatedMNIST-v0", num_envs=2, max_episode_steps=2, autoreset_mode=SAME_STEP,
                               **kwargs))
    venv.reset()
    venv.step(actions)
    _, _, dones, infos = venv.step(actions)
    assert dones.all()
    for info in infos:
        assert info["TimeLimit.truncated"] is True
        assert set(info["terminal_observation"]) == {"glimpse", "location"}


def test_termination_wins_over_truncation_at_the_same_step():
    kwargs = KWARGS["glimpse/Catch-v0"]
    length = episode_length("glimpse/Catch-v0", kwargs)
    vec = gym.make_vec("glimpse/Catch-v0", num_envs=2, max_episode_steps=length, autoreset_mode=SAME_STEP, **kwargs)
    vec.reset(seed=0)
    for _ in range(length):
        _, _, terminated, truncated, infos = vec.step(vec.action_space.sample())
    assert terminated.all() and not truncated.any() and infos["final_info"]["_caught"].all()


# ------------------------------------------------------------------------------------------------------------
# Bad input
# ------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        (dict(colour="red"), TypeError, "colour"),
        (dict(glimpse_size=61), ValueError, "glimpse_size 61 is larger than the 60x60 canvas"),
        (dict(task="catch", glimpse_size=25), ValueError, "larger than the 24x24 canvas"),
        (dict(scales=0), ValueError, "scales must be an integer >= 1; got 0"),
        (dict(glimpse_size=2.5), ValueError, "glimpse_size must be an integer"),
        (dict(num_glimpses=0), ValueError, "num_glimpses must be an integer >= 1; got 0"),
        (dict(task="catch", num_glimpses=4), ValueError, "num_glimpses does not apply to task 'catch'"),
        (dict(task="moving-mnist", num_glimpses=4), ValueError, "num_glimpses does not apply to task 'moving-mnist'"),
        (dict(task="pong"), ValueError, "task must be one of .*'pong'"),
        (dict(action_mode="hybrid"), ValueError, "action_mode must be one of .*'hybrid'"),
        (dict(dataset="cifar10"), ValueError, "dataset must be one of .*'cifar10'"),
        (dict(split="validation"), ValueError, r"split must be one of \('train', 'val', 'test'\); got 'validation'"),
        (dict(start="corner"), ValueError, "start must be"),
        (dict(render_mode="human"), ValueError, "render_mode"),
        (dict(max_episode_steps=0), ValueError, "max_episode_steps must be an integer >= 1"),
        (dict(grid=0), ValueError, "grid must be an integer >= 1"),
        (dict(task="video"), ValueError, "needs video="),
        (dict(task="mnist", canvas=60), ValueError, "plain 28x28"),
        (dict(task="catch", canvas=2), ValueError, "canvas must be an integer >= 3"),
        (dict(task="folder"), ValueError, "task='folder' needs data_dir=<root>"),
        (dict(digit_size=14), ValueError, "digit_size applies to task='small' only; got task 'cluttered'"),
        (dict(channels=3), ValueError, "channels applies to task='folder' only; got task 'cluttered'"),
        (dict(task="small", digit_size=13), ValueError, "digit_size must divide the digit side 28"),
        (dict(task="small", canvas=10), ValueError, r"canvas must be >= digit_size \(14\)"),
        (dict(task="small", digit_size=7, distractors=1, distractor_size=8), ValueError, r"distractor_size .*\[1, 7\]"),
    ],
)
def test_bad_arguments_raise_clear_errors(kwargs, error, match):
    with pytest.raises(error, match=match):
        GlimpseVectorEnv(2, **kwargs)
    # gym.make handles render_mode and max_episode_steps itself (HumanRendering, TimeLimit).
    if not set(kwargs) & {"task", "render_mode", "max_episode_steps"}:
        with pytest.raises(error, match=match):
            gym.make("glimpse/ClutteredMNIST-v0", **kwargs)


@pytest.mark.parametrize(
    "mode, action, error, match",
    [
        ("continuous", np.zeros(11, np.float32), ValueError, r"actions must be \(1, 12\); got \(1, 11\)"),
        ("continuous", np.zeros((2, 12), np.float32), ValueError, r"actions must be \(1, 12\)"),
        ("continuous", np.zeros(12, np.int64), TypeError, "continuous actions must be floating point; got torch.int64"),
        ("continuous", np.full(12, np.nan, np.float32), ValueError, "NaN"),
        ("continuous", np.r_[np.inf, np.zeros(11)].astype(np.float32), ValueError, "finite"),
        ("discrete", np.zeros(2, np.int64), ValueError, r"actions must be \(1, 3\); got \(1, 2\)"),
        ("discrete", np.zeros(3, np.float32), TypeError, "discrete actions must be integers; got torch.float32"),
        ("discrete", np.array([0, 0, 10]), ValueError, "out-of-range"),
        ("discrete", np.array([-1, 0, 0]), ValueError, "out-of-range"),
        ("discrete", np.array([6, 0, 0]), ValueError, "out-of-range"),
    ],
)
def test_bad_actions_raise_clear_errors(mode, action, error, match):
    env = GlimpseEnv(task="mnist", action_mode=mode, glimpse_size=5)  # 28 px canvas: a 6 x 6 grid
    env.reset(seed=0)
    with pytest.raises(error, match=match):
        env.step(action)


def test_bad_vector_actions_and_seeds_raise():
    vec = GlimpseVectorEnv(3, task="mnist", **RETINA)
    with pytest.raises(RuntimeError, match="reset"):
        vec.step(np.zeros((3, 12), np.float32))
    vec.reset(seed=0)
    with pytest.raises(ValueError, match=r"actions must be \(3, 12\); got \(12,\)"):
        vec.step(np.zeros(12, np.float32))
    with pytest.raises(ValueError, match="seed list must have 3 entries"):
        vec.reset(seed=[1, 2])
    with pytest.raises(ValueError, match=r"seed must be an int in \[0, 2\*\*64\); got -1"):
        vec.reset(seed=-1)


# Gymnasium's vector seeds are an int, None or a list of num_envs ints/None; each entry must be a seed that
# gymnasium.utils.seeding.np_random takes (a non-negative int; numpy integers too here). The last column: whether
# Gymnasium's own SyncVectorEnv refuses it too. It takes bools (as ints) and seeds of 2**64 and more; the env's
# keys are 64-bit, so such a seed would alias a smaller one, and a bool seed is a mistake.
BAD_SEEDS = [
    ("123", TypeError, r"seed must be an int, None or a list of 3 ints/None .*; got str '123'", True),
    (1.5, TypeError, r"seed must be an int, None or a list .*; got float 1.5", True),
    (torch.tensor(3), TypeError, r"seed must be .*; got Tensor tensor\(3\)", True),
    (np.array([1, 2, 3]), TypeError, r"seed must be .*; got ndarray array\(\[1, 2, 3\]\)", True),
    ([1.7, 2.2, 3.9], TypeError, r"seed\[0\] must be an int \(or a numpy integer\); got float 1.7", True),
    ([0, "1", 2], TypeError, r"seed\[1\] must be .*; got str '1'", True),
    ([0, -1, 2], ValueError, r"seed\[1\] must be an int in \[0, 2\*\*64\); got -1", True),
    (-1, ValueError, r"seed must be an int in \[0, 2\*\*64\); got -1", True),
    ([1, 2], ValueError, "seed list must have 3 entries; got 2", True),
    (True, TypeError, r"seed must be .*; got bool True", False),
    ([0, 1, 2**64], ValueError, r"seed\[2\] must be an int in \[0, 2\*\*64\); got 18446744073709551616", False),
    (2**64, ValueError, r"seed must be an int in \[0, 2\*\*64\); got 18446744073709551616", False),
    (2**64 - 2, ValueError, r"seed \+ num_envs - 1 \(the last env's seed\) must be below 2\*\*64", False),
]


@pytest.mark.parametrize("seed, error, match, gymnasium_refuses", BAD_SEEDS, ids=[repr(s)[:20] for s, *_ in BAD_SEEDS])
def test_bad_vector_seeds_raise_one_line(seed, error, match, gymnasium_refuses):
    vec = GlimpseVectorEnv(3, task="mnist", **RETINA)
    with pytest.raises(error, match=match) as caught:
        vec.reset(seed=seed)
    assert "\n" not in str(caught.value)
    sync = gym.make_vec("CartPole-v1", num_envs=3, vectorization_mode="sync")
    if gymnasium_refuses:
        with pytest.raises((TypeError, ValueError, gym.error.Error)):
            sync.reset(seed=seed)
    else:
        sync.reset(seed=seed)


@pytest.mark.parametrize("seed", ["123", 1.5, np.float64(2.0), torch.tensor(3), True, -1, 2**64, [1]])
def test_bad_single_env_seeds_raise_one_line(seed):
    env = GlimpseEnv(task="mnist", **RETINA)
    with pytest.raises((TypeError, ValueError), match=r"seed must be an int") as caught:
        env.reset(seed=seed)
    assert "\n" not in str(caught.value)


def _first_obs(env_or_vec, seed) -> dict:
    obs, _ = env_or_vec.reset(seed=seed)
    return {k: np.asarray(v) for k, v in obs.items()}


def test_accepted_vector_seeds_give_the_documented_episodes():
    """An int ``s`` plays single envs seeded ``s + i``; list entries seed each env; numpy integers are ints."""
    kwargs = dict(task="cluttered", distractors=2, **RETINA)
    single = GlimpseEnv(**kwargs)
    expected = {s: _first_obs(single, s) for s in (5, 6, 7, 9, 40, 2**64 - 1)}
    vec = GlimpseVectorEnv(3, **kwargs)
    for seed, per_env in [(5, (5, 6, 7)), (np.int64(5), (5, 6, 7)), (np.uint64(5), (5, 6, 7)),
                          ([9, 40, 6], (9, 40, 6)), ((np.int32(7), 2**64 - 1, 5), (7, 2**64 - 1, 5))]:
        obs = _first_obs(vec, seed)
        for i, s in enumerate(per_env):
            for key in obs:
                np.testing.assert_array_equal(obs[key][i], expected[s][key], err_msg=f"seed {seed!r}, env {i}")
    # The single env takes numpy integers as the ints they are.
    for key, value in _first_obs(single, np.int64(40)).items():
        np.testing.assert_array_equal(value, expected[40][key])


def test_none_seed_entries_leave_those_envs_unseeded():
    """As in Gymnasium's vector envs, a None entry does not re-seed its env: at the first reset it gets a random
    key, later it plays on to its next episode; the int entries are seeded."""
    kwargs = dict(task="cluttered", distractors=2, **RETINA)
    single = GlimpseEnv(**kwargs)
    seeded = {s: _first_obs(single, s) for s in (1, 2)}
    fresh = [_first_obs(GlimpseVectorEnv(3, **kwargs), [1, None, 2]) for _ in range(2)]
    for obs in fresh:
        for key in obs:
            np.testing.assert_array_equal(obs[key][0], seeded[1][key])
            np.testing.assert_array_equal(obs[key][2], seeded[2][key])
    assert not np.array_equal(fresh[0]["location"][1], fresh[1]["location"][1]), "a None entry was not random"
    # Later: env 1 goes on to its next episode, as reset() without a seed would take it.
    vec, twin = GlimpseVectorEnv(3, **kwargs), GlimpseVectorEnv(3, **kwargs)
    vec.reset(seed=[3, 4, 5])
    twin.reset(seed=[3, 4, 5])
    obs = _first_obs(vec, [1, None, 2])
    after = _first_obs(twin, None)
    for key in obs:
        np.testing.assert_array_equal(obs[key][1], after[key][1])
        np.testing.assert_array_equal(obs[key][0], seeded[1][key])


def test_reset_mask_without_true_entries_raises_one_line():
    """Gymnasium's SyncVectorEnv refuses an all-False reset_mask with a ValueError; so does the env."""
    vec = GlimpseVectorEnv(3, task="mnist", autoreset_mode=AutoresetMode.DISABLED, **RETINA)
    vec.reset(seed=0)
    for mask in (np.zeros(3, bool), torch.zeros(3, dtype=torch.bool)):
        with pytest.raises(ValueError, match="reset_mask'] must have at least one True entry") as caught:
            vec.reset(options={"reset_mask": mask})
        assert "\n" not in str(caught.value)
    sync = gym.make_vec("CartPole-v1", num_envs=3, vectorization_mode="sync",
                        vector_kwargs={"autoreset_mode": AutoresetMode.DISABLED})
    sync.reset(seed=0)
    with pytest.raises(ValueError, match="at least one True"):
        sync.reset(options={"reset_mask": np.zeros(3, bool)})


def test_single_env_takes_arrays_numpy_and_refuses_vector_options():
    """``arrays`` and ``autoreset_mode`` are vector-env options: ``arrays="numpy"`` is what a single env is already
    (so make_vec's sync mode, which passes it to every single env, works), anything else is one line."""
    env = gym.make("glimpse/MNIST-v0", arrays="numpy", **RETINA)
    obs, _ = env.reset(seed=0)
    np.testing.assert_array_equal(obs["glimpse"], _first_obs(gym.make("glimpse/MNIST-v0", **RETINA), 0)["glimpse"])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        warnings.filterwarnings("ignore", ".*Not able to test alternative render modes", UserWarning)
        gym_check_env(env.unwrapped)
    sync = gym.make_vec("glimpse/MNIST-v0", num_envs=2, vectorization_mode="sync", arrays="numpy", **RETINA)
    obs, _ = sync.reset(seed=0)
    batched, _ = GlimpseVectorEnv(2, task="mnist", arrays="numpy", **RETINA).reset(seed=0)
    for key in obs:
        np.testing.assert_array_equal(obs[key], batched[key])
    sync.step(sync.action_space.sample())
    with pytest.raises(ValueError, match=r"a single env returns numpy arrays: arrays='torch' is an option of the"):
        gym.make("glimpse/MNIST-v0", arrays="torch")
    for mode in (AutoresetMode.SAME_STEP, "NextStep"):
        with pytest.raises(ValueError, match="a single env has no autoreset.*make_vec") as caught:
            gym.make("glimpse/MNIST-v0", autoreset_mode=mode)
        assert "\n" not in str(caught.value)


# ------------------------------------------------------------------------------------------------------------
# Limits checked before allocating: the coarsest scale, the memory
# ------------------------------------------------------------------------------------------------------------


# The retinas of the README's and docs' commands and of the tests' envs: (task, glimpse_size, scales, task options).
RECIPES = [
    ("mnist", 8, 3, {}), ("mnist", 8, 4, {}), ("cluttered-60", 12, 3, {}), ("translated-60", 12, 3, {}),
    ("small-100", 12, 4, {}), ("moving-mnist", 12, 3, {}), ("catch", 6, 3, {}), ("catch", 24, 1, {}),
    ("catch", 5, 2, dict(canvas=9)),
]


@pytest.mark.parametrize("task, size, scales, options", RECIPES)
def test_recipes_retinas_are_allowed(task, size, scales, options):
    vec = GlimpseVectorEnv(2, task=task, glimpse_size=size, scales=scales, **options)
    assert vec.single_observation_space["glimpse"].shape[:1] == (scales,)


@pytest.mark.parametrize("size, factor, allowed", [(8, 2, 4), (5, 2, 5), (8, 3, 3), (28, 2, 2), (8, 100, 2), (3, 1, 9)])
def test_scales_beyond_the_whole_canvas_are_refused(size, factor, allowed):
    """A scale whose window already covers the whole canvas from any centre (a corner) is the last one allowed."""
    vec = GlimpseVectorEnv(1, task="mnist", glimpse_size=size, scales=allowed, factor=factor)
    if factor > 1:  # independently: the coarsest window, centred on either corner, holds the whole 28 px canvas
        corners = window_corners_px(torch.tensor([[-1.0, -1.0], [1.0, 1.0]]), 28, 28, size=size, scales=allowed,
                                    factor=factor)[:, -1]
        side = size * factor ** (allowed - 1)
        assert bool((corners <= 0).all() and (corners + side >= 28).all())
        # ... which the scale below does not, from a corner: that scale was still useful.
        below = window_corners_px(torch.tensor([[-1.0, -1.0]]), 28, 28, size=size, scales=allowed - 1, factor=factor)
        assert int(below[0, -1, 0]) + size * factor ** (allowed - 2) < 28
        with pytest.raises(ValueError, match=rf"scales={allowed + 1} is too many for the 28x28 canvas: .* use scales "
                                             rf"<= {allowed}") as caught:
            GlimpseVectorEnv(1, task="mnist", glimpse_size=size, scales=allowed + 1, factor=factor)
        assert "\n" not in str(caught.value)
    assert vec.retina.scales == allowed


def test_the_env_exposes_the_retina_it_was_given_and_builds_one_from_its_keywords():
    spec = RetinaSpec(6, 2, 3)
    vec = GlimpseVectorEnv(2, task="mnist", retina=spec)
    assert vec.retina is spec and vec.single_observation_space["glimpse"].shape == (2, 1, 6, 6)
    single = gym.make("glimpse/MNIST-v0", retina=spec)
    assert single.unwrapped.retina is spec
    assert gym.make_vec("glimpse/MNIST-v0", num_envs=2, glimpse_size=6, scales=2, factor=3).retina == spec
    assert GlimpseVectorEnv(1, task="mnist").retina == RetinaSpec(8, 1, 2)  # the defaults
    with pytest.raises(ValueError, match=r"^pass the retina as retina= or as glimpse_size/scales/factor, not both; "
                                         r"got retina=RetinaSpec\(size=6, scales=2, factor=3\) and glimpse_size=6$"):
        GlimpseVectorEnv(1, task="mnist", retina=spec, glimpse_size=6)


@pytest.mark.parametrize("task, kwargs, field", [
    ("mnist", dict(glimpse_size=8, scales=10), "scales"),
    ("cluttered-60", dict(glimpse_size=61), "size"),
    ("small-100", dict(glimpse_size=14, scales=6), "scales"),
    ("moving-mnist", dict(glimpse_size=65), "size"),
    ("folder", dict(glimpse_size=113, data_dir="/nowhere"), "size"),
])
def test_the_retina_is_fitted_to_the_canvas_before_any_data_are_loaded(monkeypatch, task, kwargs, field):
    import envs.data

    def no_loading(*args, **kwargs):
        raise AssertionError("data loaded before the retina was checked against the canvas")

    monkeypatch.setattr(envs.data, "load_digits", no_loading)
    monkeypatch.setattr(envs.data, "load_image_folder", no_loading)
    with pytest.raises(RetinaError) as caught:
        GlimpseVectorEnv(1, task=task, **kwargs)
    assert caught.value.field == field and caught.value.name == {"size": "glimpse_size"}.get(field, field)
    assert str(caught.value).startswith(f"{caught.value.name}{'=' if field == 'scales' else ' '}")


def _peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def test_scales_10_on_mnist_fails_fast_without_allocating():
    """The issue's case: --scales 10 on 28x28 MNIST allocated 4.9 GB; now one line, at once."""
    peak = _peak_rss_mib()
    with pytest.raises(ValueError, match="scales=10 is too many for the 28x28 canvas.*use scales <= 4"):
        gym.make_vec("glimpse/MNIST-v0", num_envs=16, glimpse_size=8, scales=10)
    assert _peak_rss_mib() - peak < 200


def test_env_larger_than_the_memory_is_refused_before_allocating(monkeypatch):
    """The issue's case on its 8 GiB machine: 100,000 SmallMNIST100 envs of 4 scales of 12 px (over 8 GB)."""
    import envs.glimpse_env as module

    monkeypatch.setattr(module, "_available_memory", lambda device: 8 * 2**30)
    peak = _peak_rss_mib()
    with pytest.raises(ValueError, match=r"this env \(100000 envs x [0-9.]+ MiB: .*\) would take about [0-9.]+ GiB "
                                         r"but 8.0 GiB is available on cpu: use fewer envs") as caught:
        gym.make_vec("glimpse/SmallMNIST100-v0", num_envs=100000, glimpse_size=12, scales=4)
    assert _peak_rss_mib() - peak < 200, "it allocated before refusing"
    # Independently: the 4 planes of block means alone, each at least (100 + 2 * 8 - 8 + 1)^2 float32 per
    # canvas, take 17.7 GiB.
    need = float(str(caught.value).split("about ")[1].split(" GiB")[0])
    assert need >= 100000 * 4 * 109**2 * 4 / 2**30
    # A machine never has this much (2.6 TB): refused by the real limit too, CPU or CUDA.
    monkeypatch.undo()
    device = "cuda" if torch.cuda.is_available() else "cpu"
    with pytest.raises(ValueError, match=rf"this env .* would take about .* GiB is available on {device}") as caught:
        gym.make_vec("glimpse/SmallMNIST100-v0", num_envs=10**7, glimpse_size=12, scales=4, device=device)
    assert _peak_rss_mib() - peak < 200
    if device == "cpu":  # what the machine has now: some, and no more than its physical memory
        available = float(str(caught.value).split("but ")[1].split(" GiB")[0]) * 2**30
        assert 0 < available <= os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    # A fitting env is made, and what it allocates is what was estimated (within 25%).
    vec = GlimpseVectorEnv(64, task="small-100", glimpse_size=12, scales=4)
    vec.reset(seed=0)
    scene = vec._scene
    made = sum(t.numel() * t.element_size() for t in (scene.pictures, scene.sensor.planes, scene.sensor._scratch,
                                                       scene.sensor.images) if t is not None)
    assert made <= scene.memory_bytes(64, vec.device) <= 1.25 * made


def test_item_glimpses_larger_than_the_memory_are_refused(monkeypatch):
    import envs.glimpse_env as module

    vec = GlimpseVectorEnv(4, task="mnist", glimpse_size=2, scales=2)  # 14 x 14 items
    vec.reset(seed=0)
    assert vec.item_glimpses().shape == (4, 196, 2, 1, 2, 2)
    monkeypatch.setattr(module, "_available_memory", lambda device: 10_000)
    with pytest.raises(ValueError, match=r"item_glimpses\(\) \(4 envs x 196 items x 2 scales of 1 x 2 x 2\) would "
                                         r"take about .* available on cpu"):
        vec.item_glimpses()


def test_stepping_after_the_end_needs_reset():
    env = GlimpseEnv(task="catch", canvas=6, glimpse_size=3)
    with pytest.raises(RuntimeError, match="reset"):
        env.step(env.action_space.sample())
    env.reset(seed=0)
    for _ in range(5):
        *_, terminated, _, _ = env.step(env.action_space.sample())
    assert terminated
    with pytest.raises(RuntimeError, match="call reset"):
        env.step(env.action_space.sample())
    env.reset()
    env.step(env.action_space.sample())  # fine again


@pytest.mark.parametrize("mode", [AutoresetMode.DISABLED, AutoresetMode.NEXT_STEP, SAME_STEP])
def test_load_state_dict_after_the_end_plays_the_saved_episodes_again(mode):
    """Restoring a state saved between episodes starts them afresh, even after the episodes have ended."""
    kwargs = dict(task="mnist", num_glimpses=2, glimpse_size=4, autoreset_mode=mode)
    actions = fixed_actions(gym.spaces.Box(-1, 1, (2, 12), np.float32), 2, seed=0)
    fresh = GlimpseVectorEnv(2, **kwargs)
    expected = [fresh.reset(seed=7)[0]] + [fresh.step(a) for a in actions]
    vec = GlimpseVectorEnv(2, **kwargs)
    vec.reset(seed=7)
    state = vec.state_dict()
    for a in actions:
        *_, terminated, _, _ = vec.step(a)
    assert terminated.all()  # both episodes have ended
    obs = vec.load_state_dict(state)
    torch.testing.assert_close(obs, expected[0], rtol=0, atol=0)
    for a, (obs, rewards, terminated, truncated, infos) in zip(actions, expected[1:], strict=True):
        got = vec.step(a)
        torch.testing.assert_close(got[:4], (obs, rewards, terminated, truncated), rtol=0, atol=0)
        torch.testing.assert_close(got[4], infos, rtol=0, atol=0)


def test_load_state_dict_refuses_non_integer_state():
    vec = GlimpseVectorEnv(2, task="mnist", num_glimpses=2, glimpse_size=4)
    vec.reset(seed=0)
    state = vec.state_dict()
    bad = [
        (dict(state, keys=state["keys"].double()), r"state\['keys'\] must be an int64 tensor.*; got torch.float64"),
        (dict(state, episodes=state["episodes"].float()), r"state\['episodes'\] must be an int64 .*torch.float32"),
        (dict(state, keys=state["keys"].numpy()), r"state\['keys'\] must be an int64 tensor.*; got ndarray"),
        (dict(state, episodes=state["episodes"] - 1), r"state\['episodes'\] must be >= 0"),
    ]
    for given, match in bad:
        with pytest.raises(ValueError, match=match) as error:
            vec.load_state_dict(given)
        assert "\n" not in str(error.value)


@pytest.mark.parametrize("device", ["meta", "gpu"] + ([] if torch.cuda.is_available() else ["cuda", "cuda:0"]))
def test_devices_this_machine_cannot_hold_are_refused_in_one_line(device):
    with pytest.raises(ValueError, match=f"device (must be .*; got )?'{device}'") as error:
        GlimpseVectorEnv(1, task="mnist", device=device)
    assert "\n" not in str(error.value)
    with pytest.raises(ValueError, match=f"'{device}'"):
        gym.make("glimpse/MNIST-v0", device=device)


# ------------------------------------------------------------------------------------------------------------
# Rendering
# ------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("env_id", IDS)
def test_render_rgb_array_draws_the_windows(env_id):
    env = gym.make(env_id, render_mode="rgb_array", start="center", **KWARGS[env_id])
    env.reset(seed=0)
    frame = env.render()
    assert frame.ndim == 3 and frame.shape[2] == 3 and frame.dtype == np.uint8
    _, height, width = env.unwrapped._vec.canvas_shape
    assert frame.shape[0] % height == 0 and frame.shape[1] % width == 0 and frame.shape[0] >= 2 * height
    # The picture is grey; coloured pixels are the outlines: green at scale 0, amber at scale 1.
    for colour in ((0, 255, 0), (255, 200, 0)):
        assert (frame == colour).all(-1).any(), f"no {colour} outline"
    coloured = (frame[..., 0] != frame[..., 1]) | (frame[..., 1] != frame[..., 2])
    assert coloured.any()
    vec = gym.make_vec(env_id, num_envs=2, render_mode="rgb_array", **KWARGS[env_id])
    vec.reset(seed=0)
    frames = vec.render()
    assert frames.shape == (2, *frame.shape) and frames.dtype == np.uint8
    plain = gym.make(env_id, **KWARGS[env_id]).unwrapped
    plain.reset(seed=0)
    assert plain.render() is None


# ------------------------------------------------------------------------------------------------------------
# User videos
# ------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("layout", ["MTHW-uint8", "MTHWC-float"])
def test_video_task_with_user_frames(layout):
    m, t, h, w = 5, 4, 12, 14
    generator = torch.Generator().manual_seed(0)
    if layout == "MTHW-uint8":
        frames = torch.randint(0, 256, (m, t, h, w), dtype=torch.uint8, generator=generator)
        channels, as_chw = 1, lambda x: x[None]
    else:
        frames = torch.rand(m, t, h, w, 3, dtype=torch.float64, generator=generator)
        channels, as_chw = 3, lambda x: x.permute(2, 0, 1)
    labels = torch.arange(m)  # the label names the video, so the test knows which one is shown
    vec = GlimpseVectorEnv(3, task="video", video=(frames, labels), glimpse_size=4, scales=2, autoreset_mode=SAME_STEP)
    assert vec.single_observation_space["glimpse"].shape == (2, channels, 4, 4)
    assert vec.single_action_space.shape == (2 + m,)
    obs, _ = vec.reset(seed=0)
    shown = vec._scene.labels.clone()
    actions = fixed_actions(vec.action_space, t, seed=0)
    for step in range(t):
        assert vec.observation_space.contains({k: v.numpy() for k, v in obs.items()})
        picture = torch.stack([as_chw(frames[int(v), step]).float() for v in shown])
        if frames.dtype == torch.uint8:
            picture = picture.to(torch.uint8)
        expected = extract_glimpses(picture, obs["location"], size=4, scales=2).float()
        torch.testing.assert_close(obs["glimpse"], expected, rtol=0, atol=1e-6)
        obs, rewards, terminated, _, infos = vec.step(actions[step])
        assert bool(terminated.all()) == (step == t - 1)
    torch.testing.assert_close(infos["final_info"]["label"], shown)
    decisions = torch.as_tensor(actions[-1][:, 2:]).argmax(1)
    torch.testing.assert_close(rewards, (decisions == shown).float())
    # The single env over user videos passes gymnasium's checker.
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        warnings.filterwarnings("ignore", ".*Not able to test alternative render modes", UserWarning)  # no spec
        gym_check_env(GlimpseEnv(task="video", video=(frames, labels), glimpse_size=4))


def test_video_labels_are_int64_whatever_the_users_dtype():
    frames = torch.zeros(3, 2, 8, 8, dtype=torch.uint8)
    labels = torch.tensor([2, 0, 1], dtype=torch.uint8)
    vec = GlimpseVectorEnv(3, task="video", video=(frames, labels), glimpse_size=4, reward_mode="log_prob")
    vec.reset(seed=0)
    assert vec.scene()[1].dtype == torch.int64
    *_, infos = vec.step(np.zeros(vec.action_space.shape, np.float32))
    assert infos["label"].dtype == torch.int64
    env = GlimpseEnv(task="video", video=(frames, labels), glimpse_size=4)
    env.reset(seed=0)
    env.step(np.zeros(env.action_space.shape, np.float32))
    assert type(env.step(np.zeros(env.action_space.shape, np.float32))[4]["label"]) is np.int64


# ------------------------------------------------------------------------------------------------------------
# scripts/bench_env.py, end to end
# ------------------------------------------------------------------------------------------------------------


@pytest.mark.e2e  # the script in a subprocess
def test_bench_env_script_runs():
    script = Path(__file__).resolve().parents[2] / "scripts" / "bench_env.py"
    args = ["--num-envs", "1,3", "--glimpse-size", "4", "--scales", "1", "--steps", "2", "--budget", "0.01", "--json"]
    done = subprocess.run([sys.executable, str(script), *args], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert [row["num_envs"] for row in report["rows"]] == [1, 3]
    for row in report["rows"]:
        assert row["batched_steps_per_s"] > 0 and row["sync_steps_per_s"] > 0 and row["blocks"] >= 3
        assert row["ratio"] == pytest.approx(row["batched_steps_per_s"] / row["sync_steps_per_s"])


# ------------------------------------------------------------------------------------------------------------
# CUDA
# ------------------------------------------------------------------------------------------------------------


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("split", ["train", "test"])
@pytest.mark.parametrize("env_id", IDS)
def test_cuda_plays_the_cpu_episodes(env_id, split):
    kwargs = KWARGS[env_id]
    length = episode_length(env_id, kwargs)
    cpu = gym.make_vec(env_id, num_envs=4, split=split, **kwargs)
    cuda = gym.make_vec(env_id, num_envs=4, split=split, device="cuda", **kwargs)
    obs_cpu, _ = cpu.reset(seed=9)
    obs_cuda, _ = cuda.reset(seed=9)
    for actions in fixed_actions(cpu.action_space, 2 * length + 1, seed=5, spread=1.2):
        for key in obs_cpu:
            assert obs_cuda[key].device.type == "cuda"
            torch.testing.assert_close(obs_cuda[key].cpu(), obs_cpu[key], rtol=0, atol=1e-6)
        obs_cpu, r_cpu, term_cpu, trunc_cpu, info_cpu = cpu.step(actions)
        obs_cuda, r_cuda, term_cuda, trunc_cuda, info_cuda = cuda.step(torch.as_tensor(actions, device="cuda"))
        torch.testing.assert_close(r_cuda.cpu(), r_cpu)
        assert torch.equal(term_cuda.cpu(), term_cpu) and torch.equal(trunc_cuda.cpu(), trunc_cpu)
        if "final_obs" in info_cpu:
            for key in info_cpu["final_obs"]:
                got = info_cuda["final_obs"][key].cpu()
                torch.testing.assert_close(got, info_cpu["final_obs"][key], rtol=0, atol=1e-6)


@pytest.mark.parametrize("task", ["mnist", "cluttered", "small", "moving-mnist"])
def test_test_split_shows_every_test_digit_exactly_once(task):
    """N envs over M/N episodes see test digits 0..M-1, each once, whatever the seed."""
    from envs.data import load_digits

    test_labels = load_digits("mnist", "test").labels
    num_envs = 200
    kwargs = dict(frames=2) if task == "moving-mnist" else dict(num_glimpses=1)
    env = GlimpseVectorEnv(num_envs, task=task, split="test", glimpse_size=4, **kwargs)
    env.reset(seed=0)
    labels = []
    for _ in range(len(test_labels) // num_envs):
        labels.append(env.scene()[1].clone())
        for _ in range(env.episode_steps):
            env.step(torch.zeros(env.action_space.shape))
    assert torch.equal(torch.cat(labels), test_labels)


# ------------------------------------------------------------------------------------------------------------
# Small digits and image folders
# ------------------------------------------------------------------------------------------------------------


def test_small_env_serves_scaled_digits():
    """The env's canvases are envs.tasks.scaled_digits of its keys: 14 px digits, 4 px fragments by default."""
    from envs.tasks import scaled_digits

    vec = GlimpseVectorEnv(3, task="small", canvas=40, distractors=2, **RETINA)
    vec.reset(seed=21)
    data = envs.data.load_digits("mnist", "train")
    expected, labels = scaled_digits(data.images, data.labels, vec._keys, vec._episodes, canvas=40, digit_size=14,
                                     distractors=2, distractor_size=4)
    torch.testing.assert_close(vec.scene()[0], expected, rtol=0, atol=0)
    assert torch.equal(vec.scene()[1], labels)
    seven = GlimpseVectorEnv(1, task="small", canvas=20, digit_size=7, **RETINA)
    seven.reset(seed=0)
    canvas = seven.scene()[0][0, 0]
    rows, cols = canvas.nonzero().unbind(1)
    assert int(rows.max() - rows.min()) < 7 and int(cols.max() - cols.min()) < 7  # a 7 px digit


def test_small_env_takes_fashion_mnist(tmp_path):
    """dataset="fashion-mnist" from IDX files in data_dir: the small task shrinks those pictures."""
    from envs.tasks import scaled_digits

    generator = np.random.default_rng(0)
    images = generator.integers(0, 256, (6, 28, 28), dtype=np.uint8)
    labels = np.arange(6, dtype=np.uint8)
    for base, array in zip(envs.data.FILES["train"], (images, labels)):
        header = bytes([0, 0, 0x08, array.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in array.shape)
        (tmp_path / base).write_bytes(header + array.tobytes())
    vec = GlimpseVectorEnv(3, task="small", dataset="fashion-mnist", data_dir=str(tmp_path), canvas=30, **RETINA)
    vec.reset(seed=0)
    expected, expected_labels = scaled_digits(torch.from_numpy(images), torch.from_numpy(labels).long(), vec._keys,
                                              vec._episodes, canvas=30)
    torch.testing.assert_close(vec.scene()[0], expected, rtol=0, atol=0)
    assert torch.equal(vec.scene()[1], expected_labels)


@pytest.mark.parametrize("channels", [3, 1])
def test_folder_env_shows_the_folders_pictures_with_their_labels(image_folder, channels):
    vec = GlimpseVectorEnv(4, task="folder", data_dir=str(image_folder), canvas=24, channels=channels, **RETINA)
    assert vec.canvas_shape == (channels, 24, 24)
    assert vec.single_observation_space["glimpse"].shape == (2, channels, 5, 5)
    assert vec.single_action_space.shape == (2 + len(FOLDER_CLASSES),)
    data = envs.data.load_image_folder(image_folder, "train", size=24, channels=channels)
    assert data.classes == ("crow", "finch", "heron")
    obs, _ = vec.reset(seed=2)
    shown, labels = vec.scene()
    assert shown.dtype == torch.uint8
    for picture, label in zip(shown, labels):
        match = [j for j in range(len(data)) if torch.equal(data.images[j], picture)]
        assert match and all(int(data.labels[j]) == int(label) for j in match)
    torch.testing.assert_close(obs["glimpse"], expected_glimpses(vec, obs["location"]), rtol=0, atol=1e-6)


def test_folder_test_split_shows_every_picture_once_in_order(image_folder):
    """Test example j is picture j of load_image_folder(root, "test"): N envs over ceil(M / N) episodes see all."""
    test = envs.data.load_image_folder(image_folder, "test", size=24)
    assert len(test) == 3  # one of the 5 to 7 files per class
    vec = GlimpseVectorEnv(2, task="folder", data_dir=str(image_folder), canvas=24, split="test", num_glimpses=1,
                           autoreset_mode=SAME_STEP, **RETINA)
    vec.reset(seed=0)
    seen = []
    for _ in range(2):
        seen.append(vec.scene()[0].clone())
        vec.step(np.zeros(vec.action_space.shape, np.float32))
    order = torch.cat(seen)[: len(test)]  # episode e of env i shows example i + 2 e: 0, 1, then 2, 3 = 0
    torch.testing.assert_close(order, test.images, rtol=0, atol=0)


def test_fixed_split_index_is_the_seed_mod_m_for_seeds_from_2_63():
    """Seeds in [2**63, 2**64) (stored as negative int64 keys) show example (s + i + e * N) mod M, too."""
    test = envs.data.load_digits("mnist", "test")
    size, num_envs = len(test.labels), 200
    seed = 2**64 - num_envs  # env i's seed s + i: from 2**64 - 200 to 2**64 - 1
    vec = GlimpseVectorEnv(num_envs, task="mnist", split="test", num_glimpses=1, glimpse_size=4,
                           autoreset_mode=SAME_STEP)
    vec.reset(seed=seed)
    seen = []
    for e in range(math.ceil(size / num_envs)):
        shown = [(seed + i + e * num_envs) % size for i in range(num_envs)]
        torch.testing.assert_close(vec.scene()[0][:, 0], test.images[shown], rtol=0, atol=0)
        seen += shown
        vec.step(np.zeros(vec.action_space.shape, np.float32))
    assert sorted(set(seen)) == list(range(size))  # every test digit
    single = GlimpseVectorEnv(1, task="mnist", split="test", num_glimpses=1, glimpse_size=4)
    single.reset(seed=2**63)
    torch.testing.assert_close(single.scene()[0][0, 0], test.images[2**63 % size], rtol=0, atol=0)


@pytest.mark.parametrize("reward_mode", ["log_prob", "log_prob_gain"])
def test_per_step_rewards_clip_the_scores_to_the_box(reward_mode):
    """The scores are the logits only within the box [-1, 1], as the locations are clipped to it."""
    env = GlimpseEnv(task="mnist", reward_mode=reward_mode, num_glimpses=3, glimpse_size=4)
    env.reset(seed=0)
    label = int(env._vec._scene.labels[0])
    wrong = (label + 1) % 10
    scores = np.full(10, 0.5, np.float32)
    scores[wrong], scores[label] = 1000.0, -3.0  # seen as 1 and -1
    clipped = np.full(10, 0.5)
    clipped[wrong], clipped[label] = 1.0, -1.0
    log_p = -1.0 - math.log(np.exp(clipped).sum())
    _, reward, terminated, _, info = env.step(np.concatenate([[0.0, 0.0], scores]).astype(np.float32))
    expected = log_p if reward_mode == "log_prob" else log_p + math.log(10)  # the gain over the uniform guess
    assert not terminated and info["label"] == label
    assert reward == pytest.approx(expected, abs=1e-5)


@pytest.mark.parametrize("env_id", ["glimpse/SmallMNIST-v0", FOLDER])
def test_item_glimpses_are_the_retina_at_every_grid_cell(env_id):
    """item_glimpses (N, K, S, C, g, g) is what a discrete action at cell k would observe, for C = 1 and 3."""
    vec = gym.make_vec(env_id, num_envs=2, action_mode="discrete", **KWARGS[env_id])
    vec.reset(seed=1)
    items = vec.item_glimpses()
    grid, (channels, _, _) = vec.grid, vec.canvas_shape
    assert items.shape == (2, grid * grid, 2, channels, 5, 5)
    centers = vec.item_centers()
    for k in (0, grid + 1, grid * grid - 1):
        expected = extract_glimpses(pictures(vec), centers[k].expand(2, 2), retina=vec.retina)
        torch.testing.assert_close(items[:, k], expected, rtol=0, atol=1e-6)
        obs, *_ = vec.step(np.array([[k % grid, k // grid, 0]] * 2))
        torch.testing.assert_close(obs["glimpse"], items[:, k], rtol=0, atol=1e-6)
        vec.reset(seed=1)


def test_render_shows_colour_pictures_in_colour(image_folder):
    env = GlimpseEnv(task="folder", data_dir=str(image_folder), canvas=24, render_mode="rgb_array", start="center",
                     **RETINA)
    env.reset(seed=0)
    frame = env.render()
    zoom = frame.shape[0] // 24
    picture = env._vec.scene()[0][0]  # (3, 24, 24)
    # Away from the windows (centred, at most 10 px wide), each magnified pixel is the picture's RGB.
    for y, x in ((0, 0), (23, 2), (3, 21)):
        assert frame[y * zoom, x * zoom].tolist() == picture[:, y, x].tolist()
