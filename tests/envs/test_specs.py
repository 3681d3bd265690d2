"""envs/specs.py: the task table, its registered ids, the env's typed properties, and adding a task as one spec."""

from __future__ import annotations

import dataclasses
import math

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium.utils.env_checker import check_env as gym_check_env

import envs
from envs import GlimpseVectorEnv, TaskSpec, register_task, task_of
from envs import rng as env_rng
from envs.scenes import PictureScene

pytestmark = pytest.mark.filterwarnings("ignore::envs.data.OfflineSubsetWarning")

RETINA = dict(glimpse_size=5, scales=2)
SCRIPT_PRESETS = ("mnist", "translated-60", "cluttered-60", "cluttered-100", "small-100", "folder", "moving-mnist",
                  "catch")


def test_the_table_holds_every_preset_with_its_facts():
    assert set(SCRIPT_PRESETS) <= set(envs.TASKS)
    expected = {  # name: (kind, decision, default canvas)
        "mnist": ("still", "classify", 28), "translated-60": ("still", "classify", 60),
        "cluttered-60": ("still", "classify", 60), "cluttered-100": ("still", "classify", 100),
        "small-100": ("still", "classify", 100), "folder": ("still", "classify", 112),
        "moving-mnist": ("video", "classify", 64), "catch": ("game", "paddle", 24),
    }
    for name, (kind, decision, canvas) in expected.items():
        spec = task_of(name)
        assert (spec.kind, spec.decision, spec.default_canvas) == (kind, decision, canvas)
        assert spec.is_still == (kind == "still")
        assert dataclasses.is_dataclass(spec.options) and spec.options.__dataclass_params__.frozen
    assert task_of("video").default_canvas is None


def test_task_of_takes_names_and_ids_and_lists_the_names_otherwise():
    assert task_of("cluttered-100") is task_of("glimpse/ClutteredMNIST100-v0")
    assert task_of("glimpse/ClutteredMNIST-v0").name == "cluttered"
    with pytest.raises(ValueError, match=r"task must be one of \(.*'cluttered-60'.*\).*got 'pong'"):
        task_of("pong")


# Presets as the scripts used to pass them before each preset had its own id: (generic id, keyword arguments).
PRESET_ARGUMENTS = {
    "translated-60": ("glimpse/TranslatedMNIST-v0", {"canvas": 60}),
    "cluttered-60": ("glimpse/ClutteredMNIST-v0", {"canvas": 60, "distractors": 4}),
    "cluttered-100": ("glimpse/ClutteredMNIST-v0", {"canvas": 100, "distractors": 8}),
    "small-100": ("glimpse/SmallMNIST-v0", {"canvas": 100, "digit_size": 14}),
}


@pytest.mark.parametrize("preset", sorted(PRESET_ARGUMENTS))
def test_presets_play_the_episodes_of_the_generic_id_with_their_arguments(preset):
    """Each preset id is the generic id with the keyword arguments the scripts used to pass."""
    generic_id, kwargs = PRESET_ARGUMENTS[preset]
    a = gym.make_vec(task_of(preset).env_id, num_envs=3, **RETINA)
    b = gym.make_vec(generic_id, num_envs=3, **RETINA, **kwargs)
    assert a.canvas_shape == b.canvas_shape and a.task_options == b.task_options
    obs_a, _ = a.reset(seed=7)
    obs_b, _ = b.reset(seed=7)
    for actions in np.random.default_rng(0).uniform(-1, 1, (8, *a.action_space.shape)).astype(np.float32):
        for key in obs_a:
            torch.testing.assert_close(obs_a[key], obs_b[key], rtol=0, atol=0)
        obs_a, r_a, *_ = a.step(actions)
        obs_b, r_b, *_ = b.step(actions)
        torch.testing.assert_close(r_a, r_b, rtol=0, atol=0)


@pytest.mark.parametrize("env_id, kwargs, still, decision", [
    ("glimpse/MNIST-v0", {}, True, "classify"),
    ("glimpse/MovingMNIST-v0", {"frames": 3}, False, "classify"),
    ("glimpse/Catch-v0", {"canvas": 8}, False, "paddle"),
])
@pytest.mark.parametrize("start", ["random", "center"])
@pytest.mark.parametrize("mode", ["continuous", "discrete"])
def test_typed_properties_of_both_envs(env_id, kwargs, still, decision, start, mode):
    vec = gym.make_vec(env_id, num_envs=2, start=start, action_mode=mode, **RETINA, **kwargs)
    single = gym.make(env_id, start=start, action_mode=mode, **RETINA, **kwargs).unwrapped
    for env in (vec, single):
        assert env.task_spec is task_of(env_id)
        assert (env.is_still, env.decision, env.start_mode, env.action_mode) == (still, decision, start, mode)
        with pytest.raises(AttributeError):
            env.start_mode = "center"  # read-only


def test_options_of_another_task_name_the_tasks_that_take_them():
    with pytest.raises(ValueError, match=r"frames applies to task='moving-mnist' only; got task 'mnist'"):
        GlimpseVectorEnv(2, task="mnist", frames=4)
    with pytest.raises(ValueError, match=r"distractors applies to tasks .*cluttered.*; got task 'translated'"):
        GlimpseVectorEnv(2, task="translated", distractors=3)
    GlimpseVectorEnv(2, task="translated", distractors=None, **RETINA)  # None is "the default", as before
    with pytest.raises(TypeError, match="options of task 'mnist' must be MNISTOptions; got CatchOptions"):
        GlimpseVectorEnv(2, task="mnist", options=envs.CatchOptions())


def test_an_options_instance_and_keywords_compose():
    options = envs.ClutteredOptions(canvas=40, distractors=1)
    vec = GlimpseVectorEnv(2, task="cluttered", options=options, num_glimpses=2, **RETINA)
    assert vec.task_options == envs.ClutteredOptions(canvas=40, distractors=1, num_glimpses=2)
    assert vec.canvas_shape == (1, 40, 40) and vec.episode_steps == 2


# ------------------------------------------------------------------------------------------------------------
# Adding a task is one spec
# ------------------------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class DotOptions:
    """A bright dot on a dark canvas; the label is the quadrant it is in."""

    canvas: int = 12
    """canvas side in pixels"""
    num_glimpses: int = 3
    """glimpses per episode"""

    def __post_init__(self) -> None:
        if self.canvas < 2 or self.canvas % 2:
            raise ValueError(f"canvas must be an even integer >= 2; got {self.canvas!r}")


def build_dots(options: DotOptions, context: envs.SceneContext) -> PictureScene:
    side = options.canvas

    def generate(keys, episodes, target):
        where = env_rng.integers(keys, episodes, 500, side, (2,))  # (N, 2) pixel (x, y); stream 500: this task's
        pictures = torch.zeros(len(keys), 1, side, side, dtype=torch.uint8, device=keys.device)
        pictures[torch.arange(len(keys)), 0, where[:, 1], where[:, 0]] = 255
        labels = (where[:, 0] >= side // 2).long() + 2 * (where[:, 1] >= side // 2).long()
        return pictures, labels

    return PictureScene(generate, options.num_glimpses, context.retina, (1, side, side), num_classes=4)


@pytest.fixture
def dots():
    spec = TaskSpec(name="dots", env_id="glimpse/Dots-v0", kind="still", decision="classify", options=DotOptions(),
                    build=build_dots, summary="a dot; which quadrant?")
    register_task(spec)
    yield spec
    del envs.TASKS["dots"]
    del gym.registry["glimpse/Dots-v0"]


def test_a_new_task_is_one_spec_and_one_call(dots):
    assert task_of("dots") is dots and task_of("glimpse/Dots-v0") is dots
    assert register_task(dots) is dots  # registering the same spec again is a no-op
    with pytest.raises(ValueError, match="already registered"):
        register_task(dataclasses.replace(dots, summary="another"))
    vec = gym.make_vec("glimpse/Dots-v0", num_envs=4, glimpse_size=4, scales=2, canvas=8,
                       autoreset_mode=gym.vector.AutoresetMode.SAME_STEP)
    assert vec.task_spec is dots and vec.is_still and vec.decision == "classify"
    assert vec.single_action_space.shape == (2 + 4,) and vec.canvas_shape == (1, 8, 8)
    obs, _ = vec.reset(seed=0)
    for t in range(1, 4):
        obs, rewards, terminated, truncated, infos = vec.step(vec.action_space.sample())
        assert bool(terminated.all()) == (t == 3) and not truncated.any()
    assert set(infos["final_info"]) == {"label", "_label", "is_success", "_is_success"} and rewards.shape == (4,)
    # The single env of the same id passes gymnasium's checker.
    gym_check_env(gym.make("glimpse/Dots-v0", glimpse_size=4).unwrapped)
    with pytest.raises(ValueError, match="canvas must be an even integer"):
        gym.make_vec("glimpse/Dots-v0", num_envs=2, canvas=7)
    with pytest.raises(ValueError, match="frames applies to task='moving-mnist' only; got task 'dots'"):
        gym.make("glimpse/Dots-v0", frames=3)
    assert math.isclose(float(vec.item_centers()[0, 0]), -1 + 1 / vec.grid)


def test_the_video_id_plays_the_users_clips():
    frames, labels = torch.randint(0, 256, (3, 2, 8, 8), dtype=torch.uint8), torch.arange(3)
    vec = gym.make_vec("glimpse/Video-v0", num_envs=2, video=(frames, labels), glimpse_size=4,
                       autoreset_mode=gym.vector.AutoresetMode.SAME_STEP)
    assert (vec.task_spec.kind, vec.is_still, vec.episode_steps, vec.canvas_shape) == ("video", False, 2, (1, 8, 8))
    vec.reset(seed=0)
    _, _, terminated, _, infos = vec.step(vec.action_space.sample())
    assert not terminated.any()
    _, _, terminated, _, infos = vec.step(vec.action_space.sample())
    assert terminated.all() and infos["final_info"]["_label"].all()
    with pytest.raises(ValueError, match="needs video="):
        gym.make_vec("glimpse/Video-v0", num_envs=2)
