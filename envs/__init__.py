"""Glimpse environments: datasets, batched task generators, Gymnasium envs and the SB3 bridge.

Tasks are data: :data:`TASKS` maps each short name to a :class:`TaskSpec` (kind, decision, options,
builder, registered id), and importing ``envs`` registers every id with Gymnasium::

    import gymnasium as gym
    import envs  # noqa: F401  (registers glimpse/...)

    env = gym.make("glimpse/ClutteredMNIST-v0", glimpse_size=12, scales=3)
    vec = gym.make_vec("glimpse/ClutteredMNIST60-v0", num_envs=256, device="cpu")   # the cluttered-60 preset
    birds = gym.make("glimpse/ImageFolder-v0", data_dir="CUB_200_2011/images")  # any root/<class>/*.jpg
    envs.task_of("cluttered-100").env_id  # 'glimpse/ClutteredMNIST100-v0'

Modules: :mod:`envs.specs` (the task table), :mod:`envs.glimpse_env` (the envs), :mod:`envs.scenes` and
:mod:`envs.catch` (what the glimpses look at), :mod:`envs.tasks` (pure episode generators),
:mod:`envs.data` (MNIST, Fashion-MNIST, image folders), :mod:`envs.render` (pictures of glimpses),
:mod:`envs.rng` (counter-based random numbers), :mod:`envs.sb3` (the Stable-Baselines3 bridge).
Coordinates follow the project's convention, stated once in :mod:`glimpse`.
"""

from envs.glimpse_env import GlimpseEnv, GlimpseVectorEnv
from envs.specs import (
    TASKS,
    CatchOptions,
    ClutteredOptions,
    FolderOptions,
    MNISTOptions,
    MovingMNISTOptions,
    SceneContext,
    SmallOptions,
    TaskSpec,
    TranslatedOptions,
    VideoOptions,
    register_task,
    task_of,
)

__all__ = [
    "GlimpseEnv",
    "GlimpseVectorEnv",
    "TASKS",
    "TaskSpec",
    "SceneContext",
    "task_of",
    "register_task",
    "MNISTOptions",
    "TranslatedOptions",
    "ClutteredOptions",
    "SmallOptions",
    "FolderOptions",
    "MovingMNISTOptions",
    "VideoOptions",
    "CatchOptions",
    "ENV_IDS",
    "PRESETS",
    "STILL_TASKS",
]

# shim for issue 12 migration: the generic ids and their task names; read TASKS / task_of instead.
ENV_IDS = {TASKS[name].env_id: name
           for name in ("mnist", "translated", "cluttered", "small", "folder", "moving-mnist", "catch")}

# shim for issue 12 migration: presets as (generic id, keyword arguments); each preset is now its own
# TaskSpec with its own id (TASKS[name].env_id), to be made with no extra arguments.
PRESETS = {
    "mnist": ("glimpse/MNIST-v0", {}),
    "translated-60": ("glimpse/TranslatedMNIST-v0", {"canvas": 60}),
    "cluttered-60": ("glimpse/ClutteredMNIST-v0", {"canvas": 60, "distractors": 4}),
    "cluttered-100": ("glimpse/ClutteredMNIST-v0", {"canvas": 100, "distractors": 8}),
    "small-100": ("glimpse/SmallMNIST-v0", {"canvas": 100, "digit_size": 14}),
    "folder": ("glimpse/ImageFolder-v0", {"canvas": 112}),
    "moving-mnist": ("glimpse/MovingMNIST-v0", {}),
    "catch": ("glimpse/Catch-v0", {}),
}

# shim for issue 12 migration: the names of the still tasks; read env.is_still / TaskSpec.is_still instead.
STILL_TASKS = tuple(name for name, spec in TASKS.items() if spec.is_still)
