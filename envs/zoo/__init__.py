"""rl-zoo3 hyperparameter files for the glimpse ids, and the SB3 recipes they share with ``scripts/sb3_ppo.py``.

rl-zoo3 (``pip install -e '.[zoo]'``) reads one hyperparameter file per algorithm. Ours are Python modules,
named to ``--conf-file`` by their import path, one per zoo algorithm as the zoo's own ``ppo.yml`` and
``ppo_lstm.yml`` are:

- :mod:`envs.zoo.ppo`: ``--algo ppo`` on every still classification id (``glimpse/MNIST-v0``,
  ``glimpse/ClutteredMNIST60-v0``, ...);
- :mod:`envs.zoo.ppo_lstm`: ``--algo ppo_lstm`` (sb3-contrib's RecurrentPPO) on ``glimpse/Catch-v0``.

::

    python -m rl_zoo3.train --algo ppo --env glimpse/MNIST-v0 --gym-packages envs --conf-file envs.zoo.ppo \\
        --eval-env-kwargs glimpse_size:8 scales:3 action_mode:"'discrete'" num_glimpses:2 split:"'test'"

Modules, not YAML: the policy needs :class:`envs.sb3.GlimpseExtractor` as its features extractor, and a YAML
file can name a class only as a string that the zoo ``eval``-s in its own namespace, where our class is not;
a module holds the class itself, ships with the package, and imports wherever ``--gym-packages envs`` does.

Each entry is a recipe of ``scripts/sb3_ppo.py`` in its flag names (a task's :data:`SB3_RECIPES` entry over
:data:`SB3_DEFAULTS`, its ``Config``'s defaults) translated by :func:`zoo_hyperparams`: the retina and the
task options go to ``env_kwargs``, the extractor's to ``policy_kwargs``, the rest to the algorithm.
``sb3_ppo.py`` reads :data:`SB3_RECIPES` as its per-task defaults, so the script and the zoo agree.

The zoo changes the entry it reads in place (it pops ``env_kwargs``, ``n_envs``, ...), so each module hands
out a fresh copy of its ``hyperparams`` at every access: a second run in the same process reads the file
as written.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from copy import deepcopy
from typing import Any

from envs.sb3 import GlimpseExtractor

__all__ = ["SB3_DEFAULTS", "SB3_RECIPES", "MIN_ROLLOUT_STEPS", "rollout_steps", "zoo_hyperparams",
           "hyperparams_attribute"]

#: ``scripts/sb3_ppo.py``'s ``Config`` defaults that a zoo entry needs (its fields read them from here):
#: MNIST's recipe, 8 px x 3 retina (8, 16 and 32 px windows, all of a 28x28 digit), 2 glimpses, discrete cells.
SB3_DEFAULTS: dict[str, Any] = dict(
    glimpse_size=8, scales=3, num_glimpses=2, action_mode="discrete", scale_gain=1.0, features_dim=256,
    lstm_hidden=256, num_envs=32, learning_rate=1e-3, batch_size=512, n_epochs=8, gamma=0.99, ent_coef=0.01,
    total_timesteps=300_000,
)

#: Per task, what its SB3 recipe changes in :data:`SB3_DEFAULTS` (``scripts/sb3_ppo.py``'s per-task defaults).
SB3_RECIPES: dict[str, dict[str, Any]] = {
    # RAM's Catch (Mnih et al. 2014): their retina, 6 px at 3 scales (6, 12 and 24 px windows), so the coarsest
    # scale averages 4x4 blocks and the 1-px ball would read 1/16 there without scale_gain 4. Updates as our
    # own PPO recipe for RAM makes them (train.py's ram-catch recipe): 256 games per rollout, 4 epochs of
    # minibatches of 64 whole games (64 x 23 steps), Adam 3e-4, LSTMs of 128. With 64 games, minibatches of
    # 512 steps, 8 epochs and Adam 1e-3 (the MNIST values) half of PPO's ratios were clipped and Catch stayed
    # at chance through 600k steps (docs/results.md). A run of 3M steps is ~130k games.
    "catch": dict(glimpse_size=6, scales=3, scale_gain=4.0, num_envs=256, batch_size=64 * 23, n_epochs=4,
                  learning_rate=3e-4, lstm_hidden=128, total_timesteps=3_000_000),
}


MIN_ROLLOUT_STEPS = 16  # n_steps=None: whole episodes, at least this many steps per env per rollout


def rollout_steps(n_steps: int | None, episode_steps: int) -> int:
    """Steps per env per rollout: ``n_steps``, or (``None``) the smallest multiple of ``episode_steps`` that is ``>= MIN_ROLLOUT_STEPS``.

    The SB3 envs start together and every episode of a glimpse task has the same length, so they stay in
    lockstep: with whole episodes every rollout ends exactly where all episodes end, holds every episode's
    reward and never bootstraps from the value function (and RecurrentPPO trains its LSTM on whole episodes).

    >>> rollout_steps(None, 23), rollout_steps(None, 2), rollout_steps(None, 6), rollout_steps(40, 23)
    (23, 16, 18, 40)
    """
    if n_steps is not None:
        return n_steps
    return episode_steps * math.ceil(MIN_ROLLOUT_STEPS / episode_steps)


def zoo_hyperparams(recipe: Mapping[str, Any], n_steps: int, recurrent: bool, still: bool) -> dict[str, Any]:
    """One rl-zoo3 entry from a complete ``scripts/sb3_ppo.py`` recipe (its flag names, as :data:`SB3_DEFAULTS`).

    Arguments:
        recipe: every key of :data:`SB3_DEFAULTS`.
        n_steps: steps per env per rollout (``sb3_ppo.py`` takes whole episodes: ``rollout_steps(None, T)``).
        recurrent: RecurrentPPO's ``MultiInputLstmPolicy`` (with ``lstm_hidden``) instead of PPO's ``MultiInputPolicy``.
        still: a still picture (the env takes ``num_glimpses``); video and game tasks take one glimpse per frame.
    """
    env_kwargs = {key: recipe[key] for key in ("glimpse_size", "scales", "action_mode")}
    if still:
        env_kwargs["num_glimpses"] = recipe["num_glimpses"]
    policy_kwargs = dict(features_extractor_class=GlimpseExtractor,
                         features_extractor_kwargs=dict(features_dim=recipe["features_dim"],
                                                        scale_gain=recipe["scale_gain"]))
    if recurrent:
        policy_kwargs["lstm_hidden_size"] = recipe["lstm_hidden"]
    return dict(
        policy="MultiInputLstmPolicy" if recurrent else "MultiInputPolicy",
        n_envs=recipe["num_envs"],
        n_timesteps=recipe["total_timesteps"],
        n_steps=n_steps,
        batch_size=recipe["batch_size"],
        n_epochs=recipe["n_epochs"],
        learning_rate=recipe["learning_rate"],
        gamma=recipe["gamma"],
        ent_coef=recipe["ent_coef"],
        env_kwargs=env_kwargs,
        policy_kwargs=policy_kwargs,
    )


def hyperparams_attribute(table: Mapping[str, dict[str, Any]], module: str) -> Callable[[str], Any]:
    """A module's ``__getattr__`` (PEP 562) whose ``hyperparams`` is a fresh deep copy of ``table`` at every read.

    rl-zoo3 reads ``importlib.import_module(conf_file).hyperparams[env_id]`` and edits that entry in place;
    a copy per read leaves the module's table as written. Classes in it are kept, not copied.
    """

    def __getattr__(name: str) -> Any:
        if name == "hyperparams":
            return deepcopy(dict(table))
        raise AttributeError(f"module {module!r} has no attribute {name!r}")

    return __getattr__
