"""Glimpse environments: datasets, batched task generators, Gymnasium envs, the SB3 and TorchRL bridges.

Tasks are data: :data:`TASKS` maps each short name to a :class:`TaskSpec` (kind, decision, options,
builder, registered id), and importing ``envs`` registers every id with Gymnasium::

    import gymnasium as gym
    import envs  # noqa: F401  (registers glimpse/...)

    env = gym.make("glimpse/ClutteredMNIST-v0", glimpse_size=12, scales=3)
    vec = gym.make_vec("glimpse/ClutteredMNIST60-v0", num_envs=256, device="cpu")   # the cluttered-60 preset
    birds = gym.make("glimpse/ImageFolder-v0", data_dir="CUB_200_2011/images")  # any root/<class>/*.jpg
    envs.task_of("cluttered-100").env_id  # 'glimpse/ClutteredMNIST100-v0'

Modules: :mod:`envs.specs` (the task table), :mod:`envs.glimpse_env` (the envs), :mod:`envs.scenes` and
:mod:`envs.catch` (what the glimpses look at), :mod:`envs.catch_reference` (scripted Catch policies on the
whole screen), :mod:`envs.tasks` (pure episode generators), :mod:`envs.data` (MNIST, Fashion-MNIST, image
folders), :mod:`envs.render` (pictures of glimpses),
:mod:`envs.rng` (counter-based random numbers), :mod:`envs.sb3` (the Stable-Baselines3 bridge),
:mod:`envs.zoo` (its rl-zoo3 hyperparameter files), :mod:`envs.torchrl_env` (a native TorchRL env; the
optional ``torchrl`` extra, not imported here), :mod:`envs.wrappers` (torch equivalents of Gymnasium's
numpy-only vector wrappers).
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
]
