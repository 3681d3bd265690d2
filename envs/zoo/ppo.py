"""rl-zoo3 hyperparameters for PPO on every still classification id (``--algo ppo --conf-file envs.zoo.ppo``).

``scripts/sb3_ppo.py``'s defaults (:data:`envs.zoo.SB3_DEFAULTS`) for each of them: 2 glimpses of an 8 px x 3
retina per episode, rollouts of whole episodes (16 steps: 8 episodes per env), 32 envs. See :mod:`envs.zoo`.
"""

from __future__ import annotations

from typing import Any

from envs.specs import TASKS
from envs.zoo import SB3_DEFAULTS, fresh_copy, zoo_hyperparams

# Episodes of 2 glimpses: whole episodes of at least 16 steps per rollout, as sb3_ppo.py's rollout_steps.
N_STEPS = 16

_HYPERPARAMS = {
    spec.env_id: zoo_hyperparams(SB3_DEFAULTS, N_STEPS, recurrent=False, still=True)
    for spec in TASKS.values()
    if spec.is_still and spec.decision == "classify"
}


def __getattr__(name: str) -> Any:
    if name == "hyperparams":  # a fresh copy at every read: rl-zoo3 edits the entry it reads in place
        return fresh_copy(_HYPERPARAMS)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
