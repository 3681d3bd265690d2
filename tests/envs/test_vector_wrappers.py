"""The batched env under Gymnasium's own vector wrappers: both autoreset modes, numpy and torch.

Every registered id, on small settings (4 px glimpses, short episodes, small canvases where the id allows):
Gymnasium's vector wrappers run 100 random steps on the numpy path (``arrays="numpy"``) in each autoreset
mode they take; :class:`envs.wrappers.RecordEpisodeStatistics` on the torch path; the recorded returns are
the sums of the rewards; NEXT_STEP and SAME_STEP play the same episodes.
"""

from __future__ import annotations

from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium.vector import AutoresetMode
from gymnasium.wrappers import vector as gv

import envs
from envs import task_of
from envs.wrappers import RecordEpisodeStatistics

pytestmark = pytest.mark.filterwarnings("ignore::envs.data.OfflineSubsetWarning")

IDS = sorted(task.env_id for task in envs.TASKS.values())
NEXT, SAME = AutoresetMode.NEXT_STEP, AutoresetMode.SAME_STEP
N, STEPS = 3, 100
RETINA = dict(glimpse_size=4, scales=2)
# Small settings per task: a few steps per episode, small canvases where the task lets them be set.
SMALL = {
    "mnist": dict(num_glimpses=3),
    "translated": dict(canvas=28, num_glimpses=3),
    "translated-60": dict(canvas=28, num_glimpses=3),
    "cluttered": dict(canvas=28, distractors=2, num_glimpses=3),
    "cluttered-60": dict(canvas=28, distractors=2, num_glimpses=3),
    "cluttered-100": dict(canvas=28, distractors=2, num_glimpses=3),
    "small": dict(canvas=20, num_glimpses=3),
    "small-100": dict(canvas=20, num_glimpses=3),
    "folder": dict(canvas=8, num_glimpses=3),  # + data_dir, from image_folder
    "moving-mnist": dict(canvas=32, frames=3),
    "video": dict(video=(torch.randint(0, 256, (5, 3, 8, 8), generator=torch.Generator().manual_seed(0),
                                       dtype=torch.uint8), torch.tensor([0, 1, 2, 1, 0]))),
    "catch": dict(canvas=5),
}


@pytest.fixture(scope="module", autouse=True)
def image_folder(tmp_path_factory) -> Path:
    """A tiny image folder for glimpse/ImageFolder-v0: two classes of three flat pictures."""
    from PIL import Image

    root = tmp_path_factory.mktemp("folder")
    for c, colour in enumerate(((200, 40, 40), (40, 40, 200))):
        (root / f"class{c}").mkdir()
        for i in range(3):
            Image.fromarray(np.full((8 + i, 9, 3), colour, np.uint8)).save(root / f"class{c}" / f"{i}.png")
    SMALL["folder"]["data_dir"] = str(root)
    return root


def make(env_id: str, mode: AutoresetMode, arrays: str = "numpy", action_mode: str = "continuous", n: int = N):
    kwargs = {**RETINA, **SMALL[task_of(env_id).name]}
    return gym.make_vec(env_id, num_envs=n, autoreset_mode=mode, arrays=arrays, action_mode=action_mode, **kwargs)


def random_actions(space: gym.Space, count: int, seed: int) -> np.ndarray:
    space.seed(seed)
    return np.stack([space.sample() for _ in range(count)])


def test_every_task_is_covered():
    # IDS is read at collection, before other tests register tasks of their own (test_specs, the README).
    assert {task_of(env_id).name for env_id in IDS} == set(SMALL)


# ------------------------------------------------------------------------------------------------------------
# Gymnasium's vector wrappers on the numpy path
# ------------------------------------------------------------------------------------------------------------


def _rescale(env):
    return gv.RescaleAction(env, min_action=np.float32(0.0), max_action=np.float32(1.0))


# name: (build, the autoreset modes the wrapper takes, continuous actions only)
WRAPPERS = {
    "RecordEpisodeStatistics": (gv.RecordEpisodeStatistics, (NEXT, SAME), False),
    "NormalizeReward": (gv.NormalizeReward, (NEXT, SAME), False),
    # NormalizeObservation takes a Box observation (so, flattened) and NEXT_STEP only.
    "NormalizeObservation": (lambda env: gv.NormalizeObservation(gv.FlattenObservation(env)), (NEXT,), False),
    "FlattenObservation": (gv.FlattenObservation, (NEXT,), False),  # a VectorObservationWrapper: no SAME_STEP
    "ClipAction": (gv.ClipAction, (NEXT, SAME), True),
    "RescaleAction": (_rescale, (NEXT, SAME), True),
    "DictInfoToList": (gv.DictInfoToList, (NEXT, SAME), False),
    "TransformReward": (lambda env: gv.TransformReward(env, lambda r: 2 * r), (NEXT, SAME), False),
}
CASES = [(name, mode) for name, (_, modes, _) in WRAPPERS.items() for mode in modes]


@pytest.mark.parametrize("name, mode", CASES, ids=[f"{n}-{m.name}" for n, m in CASES])
@pytest.mark.parametrize("env_id", IDS)
def test_gymnasium_vector_wrappers_run_on_the_numpy_path(env_id, name, mode):
    build, _, continuous_only = WRAPPERS[name]
    # Discrete actions on every other id, so both action spaces meet the wrappers that take them.
    action_mode = "discrete" if not continuous_only and IDS.index(env_id) % 2 else "continuous"
    env = build(make(env_id, mode, action_mode=action_mode))
    obs, infos = env.reset(seed=0)
    assert env.observation_space.contains(obs)
    ended = 0
    for actions in random_actions(env.action_space, STEPS, seed=1):
        obs, rewards, terminated, truncated, infos = env.step(actions)
        assert all(isinstance(x, np.ndarray) for x in (rewards, terminated, truncated))
        assert rewards.shape == terminated.shape == truncated.shape == (N,)
        assert env.observation_space.contains(obs) or name == "NormalizeObservation"
        ended += int(terminated.sum() + truncated.sum())
        if name == "DictInfoToList":
            assert isinstance(infos, list) and len(infos) == N
            for i in np.flatnonzero(terminated | truncated):
                final = infos[i]["final_info"] if mode == SAME else infos[i]
                assert set(final) == {"caught" if task_of(env_id).decision == "paddle" else "label", "is_success"}
                if mode == SAME:
                    assert set(infos[i]["final_obs"]) == {"glimpse", "location"}
    assert ended > 0


@pytest.mark.parametrize("mode", [NEXT, SAME])
@pytest.mark.parametrize("env_id", IDS)
def test_recorded_returns_are_the_sums_of_the_rewards(env_id, mode):
    """Gymnasium's RecordEpisodeStatistics (numpy) and ours (torch) record the same episodes: each return the
    sum of the rewards the env gave in it, each length the task's episode length."""
    numpy_env = gv.RecordEpisodeStatistics(make(env_id, mode, "numpy"))
    torch_env = RecordEpisodeStatistics(make(env_id, mode, "torch"))
    length = numpy_env.unwrapped.episode_steps
    numpy_env.reset(seed=3)
    torch_env.reset(seed=3)
    running, sums, recorded = np.zeros(N), [], {"numpy": [], "torch": []}
    reset_step = np.zeros(N, bool)
    for actions in random_actions(numpy_env.action_space, STEPS, seed=4):
        _, rewards, terminated, truncated, infos = numpy_env.step(actions)
        _, t_rewards, t_terminated, t_truncated, t_infos = torch_env.step(torch.as_tensor(actions))
        np.testing.assert_array_equal(t_rewards.numpy(), rewards)
        np.testing.assert_array_equal(t_terminated.numpy(), terminated)
        assert isinstance(t_rewards, torch.Tensor) and ("episode" in t_infos) == ("episode" in infos)
        running = np.where(reset_step, 0.0, running + rewards)  # NEXT_STEP's reset step is in no episode
        done = terminated | truncated
        sums += running[done].tolist()
        if done.any():
            for kind, info in (("numpy", infos), ("torch", {k: _np(v) for k, v in t_infos.items()})):
                np.testing.assert_array_equal(info["_episode"], done)
                recorded[kind] += list(zip(info["episode"]["r"][done].tolist(), info["episode"]["l"][done].tolist()))
                assert (info["episode"]["t"][done] >= 0).all()
        running[done] = 0.0
        reset_step = done if mode == NEXT else np.zeros(N, bool)
    assert len(sums) >= N * (STEPS // (length + 1))
    assert recorded["numpy"] == recorded["torch"] == [(r, length) for r in sums]
    assert list(torch_env.return_queue) == list(numpy_env.return_queue) == sums[-100:]
    assert torch_env.episode_count == numpy_env.episode_count == len(sums)


def _np(value):
    return {k: _np(v) for k, v in value.items()} if isinstance(value, dict) else value.cpu().numpy()


def test_torch_record_episode_statistics_keeps_gymnasiums_layout_on_the_env_device():
    env = RecordEpisodeStatistics(make("glimpse/MNIST-v0", NEXT, "torch"), buffer_length=2, stats_key="stats")
    env.reset(seed=0)
    actions = torch.zeros(N, *env.single_action_space.shape)
    for _ in range(3):
        _, _, _, _, infos = env.step(actions)
    assert set(infos) == {"label", "_label", "is_success", "_is_success", "stats", "_stats"}
    assert infos["_stats"].dtype == torch.bool and infos["_stats"].all()
    stats = infos["stats"]
    assert set(stats) == {"r", "l", "t"} and all(isinstance(v, torch.Tensor) and v.shape == (N,) for v in stats.values())
    assert (stats["r"].dtype, stats["l"].dtype, stats["t"].dtype) == (torch.float32, torch.int64, torch.float32)
    assert stats["l"].tolist() == [3] * N and len(env.return_queue) == 2  # buffer_length
    _, rewards, terminated, _, infos = env.step(actions)  # the reset step: in no episode
    assert not terminated.any() and (rewards == 0).all() and "stats" not in infos


# ------------------------------------------------------------------------------------------------------------
# The two autoreset modes: Gymnasium's semantics, the same episodes
# ------------------------------------------------------------------------------------------------------------


def policy(obs: dict, num_decisions: int, action_mode: str, grid: int) -> np.ndarray:
    """A deterministic action of each observation, so both modes act alike in the same episode states."""
    glimpse, location = np.asarray(obs["glimpse"]), np.asarray(obs["location"])
    mass = glimpse.reshape(len(glimpse), -1).sum(axis=1)
    decision = (np.floor(mass * 7.3) % num_decisions).astype(np.int64)
    if action_mode == "discrete":
        cells = np.floor((location + 1) / 2 * grid).clip(0, grid - 1).astype(np.int64)
        return np.stack([(cells[:, 1] + 1) % grid, cells[:, 0], decision], axis=1)
    scores = np.eye(num_decisions, dtype=np.float32)[decision]
    return np.concatenate([-0.7 * location[:, ::-1], scores], axis=1).astype(np.float32)


def play(env, mode: AutoresetMode, steps: int) -> list[list[tuple]]:
    """Each env's episodes: a list, per episode, of (observation, reward) per step, and the final info."""
    vec = env.unwrapped
    obs, _ = env.reset(seed=5)
    episodes: list[list] = [[[]] for _ in range(vec.num_envs)]
    resetting = np.zeros(vec.num_envs, bool)
    for _ in range(steps):
        before = obs
        obs, rewards, terminated, truncated, infos = env.step(policy(obs, vec.num_decisions, vec.action_mode, vec.grid))
        done = terminated | truncated
        for i in range(vec.num_envs):
            if resetting[i]:  # NEXT_STEP's reset step: reward 0, no termination, no final info
                assert (rewards[i], terminated[i], truncated[i]) == (0, False, False)
                assert not any(k.startswith("_") and v[i] for k, v in infos.items())
                episodes[i].append([])
                continue
            final_obs = {k: v[i] for k, v in obs.items()}
            if done[i] and mode == SAME:
                final_obs = infos["final_obs"][i]
            episodes[i][-1].append(({k: v[i] for k, v in before.items()}, float(rewards[i]), bool(done[i]),
                                    {k: np.asarray(v) for k, v in final_obs.items()}))
            if done[i]:
                final = infos["final_info"] if mode == SAME else infos
                key = "caught" if vec.decision == "paddle" else "label"
                assert final[f"_{key}"][i]
                episodes[i][-1].append(int(final[key][i]))
                if mode == SAME:
                    episodes[i].append([])
        resetting = done if mode == NEXT else np.zeros(vec.num_envs, bool)
        if mode == NEXT:
            assert "final_obs" not in infos and "final_info" not in infos
    return [e[:-1] for e in episodes]  # whole episodes only


@pytest.mark.parametrize("action_mode", ["continuous", "discrete"])
@pytest.mark.parametrize("env_id", IDS)
def test_next_step_and_same_step_play_the_same_episodes(env_id, action_mode):
    """Same seed, same policy: the same episodes, observation by observation, with the same rewards."""
    next_step = play(make(env_id, NEXT, action_mode=action_mode), NEXT, 40)
    same_step = play(make(env_id, SAME, action_mode=action_mode), SAME, 40)
    for a, b in zip(next_step, same_step):
        count = min(len(a), len(b))
        assert count >= 3
        for ep_a, ep_b in zip(a[:count], b[:count]):
            assert len(ep_a) == len(ep_b) and ep_a[-1] == ep_b[-1]  # steps, and the final label
            for (obs_a, r_a, d_a, next_a), (obs_b, r_b, d_b, next_b) in zip(ep_a[:-1], ep_b[:-1]):
                assert (r_a, d_a) == (r_b, d_b)
                for key in obs_a:
                    np.testing.assert_array_equal(obs_a[key], obs_b[key])
                    np.testing.assert_array_equal(next_a[key], next_b[key])


@pytest.mark.parametrize("env_id", ["glimpse/ClutteredMNIST-v0", "glimpse/Catch-v0"])
def test_next_step_reset_step_shows_the_next_episode_and_ignores_the_action(env_id):
    """The reset step returns what SAME_STEP returned at the ending step, whatever its action."""
    next_env, same_env = make(env_id, NEXT, "torch"), make(env_id, SAME, "torch")
    length = next_env.episode_steps
    next_env.reset(seed=2)
    same_env.reset(seed=2)
    actions = torch.zeros(N, *next_env.single_action_space.shape)
    for _ in range(length):
        obs_n, _, term_n, _, info_n = next_env.step(actions)
        obs_s, _, term_s, _, info_s = same_env.step(actions)
    assert term_n.all() and term_s.all()
    assert set(info_s) == {"final_obs", "_final_obs", "final_info", "_final_info"}
    assert set(info_n) == set(info_s["final_info"])  # the final info at the top level, with its masks
    for key in obs_n:
        torch.testing.assert_close(obs_n[key], info_s["final_obs"][key], rtol=0, atol=0)
    other = torch.rand(N, *next_env.single_action_space.shape) * 2 - 1
    reset_obs, rewards, terminated, truncated, infos = next_env.step(other)
    assert (rewards == 0).all() and not (terminated | truncated).any() and infos == {}
    for key in reset_obs:
        torch.testing.assert_close(reset_obs[key], obs_s[key], rtol=0, atol=0)


def test_autoreset_mode_is_declared_and_validated():
    assert make("glimpse/MNIST-v0", NEXT).metadata["autoreset_mode"] == NEXT
    default = gym.make_vec("glimpse/MNIST-v0", num_envs=2, **RETINA)
    assert default.metadata["autoreset_mode"] == NEXT  # Gymnasium's default
    same = gym.make_vec("glimpse/MNIST-v0", num_envs=2, autoreset_mode="SameStep", **RETINA)
    assert same.metadata["autoreset_mode"] == SAME and default.metadata["autoreset_mode"] == NEXT
    assert envs.GlimpseVectorEnv.metadata["autoreset_mode"] == NEXT
    with pytest.raises(ValueError, match="autoreset_mode must be a gymnasium.vector.AutoresetMode"):
        gym.make_vec("glimpse/MNIST-v0", num_envs=2, autoreset_mode="sometimes")
    with pytest.raises(ValueError, match="arrays must be one of"):
        gym.make_vec("glimpse/MNIST-v0", num_envs=2, arrays="jax")


def test_disabled_autoreset_resets_the_masked_envs_only():
    env = make("glimpse/MNIST-v0", AutoresetMode.DISABLED, "torch")
    first, _ = env.reset(seed=0)
    actions = torch.zeros(N, *env.single_action_space.shape)
    for _ in range(env.episode_steps):
        obs, _, terminated, _, infos = env.step(actions)
    assert terminated.all() and infos["_label"].all()
    with pytest.raises(RuntimeError, match="reset"):
        env.step(actions)
    mask = np.array([True, False, True])
    obs, _ = env.reset(options={"reset_mask": mask})
    twin = make("glimpse/MNIST-v0", SAME, "torch")
    twin.reset(seed=0)
    second, _ = twin.reset()  # episode 1 of every env
    torch.testing.assert_close(obs["glimpse"][mask], second["glimpse"][mask], rtol=0, atol=0)
    with pytest.raises(RuntimeError, match="reset"):
        env.step(actions)  # env 1 has still ended
    env.reset(options={"reset_mask": ~mask})
    env.step(actions)


def test_numpy_path_returns_the_torch_paths_values_in_gymnasiums_layout():
    torch_env, numpy_env = make("glimpse/Catch-v0", SAME, "torch"), make("glimpse/Catch-v0", SAME, "numpy")
    obs_t, _ = torch_env.reset(seed=1)
    obs_n, _ = numpy_env.reset(seed=1)
    for actions in random_actions(torch_env.action_space, 2 * torch_env.episode_steps, seed=2):
        for key in obs_t:
            assert isinstance(obs_n[key], np.ndarray) and obs_n[key].dtype == np.float32
            np.testing.assert_array_equal(obs_n[key], obs_t[key].numpy())
        obs_t, r_t, *_, info_t = torch_env.step(actions)
        obs_n, r_n, *_, info_n = numpy_env.step(actions)
        np.testing.assert_array_equal(r_n, r_t.numpy())
        if "final_obs" in info_n:  # as gymnasium's SyncVectorEnv writes it: an object array of observations
            assert info_n["final_obs"].dtype == object and info_n["final_obs"].shape == (N,)
            for i in range(N):
                for key in obs_t:
                    np.testing.assert_array_equal(info_n["final_obs"][i][key], info_t["final_obs"][key][i].numpy())
            assert info_n["final_info"]["_caught"].dtype == bool
