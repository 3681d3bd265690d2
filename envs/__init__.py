"""Glimpse environments: datasets, batched task generators, Gymnasium envs and the SB3 bridge.

Importing ``envs`` registers the environment ids with Gymnasium::

    import gymnasium as gym
    import envs  # noqa: F401  (registers glimpse/...)

    env = gym.make("glimpse/ClutteredMNIST-v0", glimpse_size=12, scales=3)
    vec = gym.make_vec("glimpse/ClutteredMNIST-v0", num_envs=256, device="cpu")
    birds = gym.make("glimpse/ImageFolder-v0", data_dir="CUB_200_2011/images")  # any root/<class>/*.jpg
"""

import gymnasium as gym

from envs.glimpse_env import STILL_TASKS, TASKS, GlimpseEnv, GlimpseVectorEnv

__all__ = ["GlimpseEnv", "GlimpseVectorEnv", "TASKS", "STILL_TASKS", "ENV_IDS", "PRESETS"]

#: Registered ids and the task each one runs.
ENV_IDS = {
    "glimpse/MNIST-v0": "mnist",
    "glimpse/TranslatedMNIST-v0": "translated",
    "glimpse/ClutteredMNIST-v0": "cluttered",
    "glimpse/SmallMNIST-v0": "small",
    "glimpse/ImageFolder-v0": "folder",
    "glimpse/MovingMNIST-v0": "moving-mnist",
    "glimpse/Catch-v0": "catch",
}

#: The RAM paper's settings, and the RA-CNN-style ones after them, by short name (what the scripts' ``--env``
#: takes): registered id and its keyword arguments.
PRESETS = {
    "mnist": ("glimpse/MNIST-v0", {}),
    "translated-60": ("glimpse/TranslatedMNIST-v0", {"canvas": 60}),
    "cluttered-60": ("glimpse/ClutteredMNIST-v0", {"canvas": 60, "distractors": 4}),
    "cluttered-100": ("glimpse/ClutteredMNIST-v0", {"canvas": 100, "distractors": 8}),
    # Zooming matters: a 14 px digit (28 px averaged over 2 x 2 blocks) on a 100 px canvas covers 2% of it, so
    # a coarse scale can find it but only a fine glimpse (14 px or so) can read it.
    "small-100": ("glimpse/SmallMNIST-v0", {"canvas": 100, "digit_size": 14}),
    # A user's ImageFolder directory (CUB-200 or similar) at 112 x 112 RGB; it needs data_dir=<root> as well.
    "folder": ("glimpse/ImageFolder-v0", {"canvas": 112}),
    "moving-mnist": ("glimpse/MovingMNIST-v0", {}),
    "catch": ("glimpse/Catch-v0", {}),
}

for _id, _task in ENV_IDS.items():
    if _id not in gym.registry:
        # No max_episode_steps: episodes end by termination at a length set by the env's own arguments;
        # pass max_episode_steps to make/make_vec to truncate earlier.
        gym.register(
            id=_id,
            entry_point="envs.glimpse_env:GlimpseEnv",
            vector_entry_point="envs.glimpse_env:GlimpseVectorEnv",
            kwargs={"task": _task},
        )
