"""rl-zoo3 hyperparameters for PPO on every still classification id (``--algo ppo --conf-file envs.zoo.ppo``).

``scripts/sb3_ppo.py``'s defaults (:data:`envs.zoo.SB3_DEFAULTS`) for each of them: 2 glimpses of an 8 px x 3
retina per episode, rollouts of whole episodes (16 steps: 8 episodes per env), 32 envs. See :mod:`envs.zoo`.
"""

from __future__ import annotations

from envs.specs import TASKS
from envs.zoo import SB3_DEFAULTS, hyperparams_attribute, rollout_steps, zoo_hyperparams

# Whole episodes of num_glimpses steps, as sb3_ppo.py takes them (16 steps for 2 glimpses).
N_STEPS = rollout_steps(None, SB3_DEFAULTS["num_glimpses"])

_HYPERPARAMS = {
    spec.env_id: zoo_hyperparams(SB3_DEFAULTS, N_STEPS, recurrent=False, still=True)
    for spec in TASKS.values()
    if spec.is_still and spec.decision == "classify"
}

# `hyperparams`, what rl-zoo3 reads: a fresh copy of the table at every read (the zoo edits its entry in place).
__getattr__ = hyperparams_attribute(_HYPERPARAMS, __name__)
