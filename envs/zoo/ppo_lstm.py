"""rl-zoo3 hyperparameters for RecurrentPPO on Catch (``--algo ppo_lstm --conf-file envs.zoo.ppo_lstm``).

``scripts/sb3_ppo.py --env catch --algo recurrent-ppo``'s recipe (:data:`envs.zoo.SB3_RECIPES` ``["catch"]``):
RAM's 6 px x 3 retina with scale gain 4, 256 games per rollout of one whole 23-step game, LSTMs of 128.
Needs sb3-contrib. See :mod:`envs.zoo`.
"""

from __future__ import annotations

from envs.specs import task_of
from envs.zoo import SB3_DEFAULTS, SB3_RECIPES, hyperparams_attribute, zoo_hyperparams

# Catch's 23-step games (a 24 px screen): one whole game per rollout, as sb3_ppo.py's rollout_steps.
N_STEPS = 23

_HYPERPARAMS = {
    task_of("catch").env_id: zoo_hyperparams({**SB3_DEFAULTS, **SB3_RECIPES["catch"]}, N_STEPS, recurrent=True,
                                             still=False),
}

# `hyperparams`, what rl-zoo3 reads: a fresh copy of the table at every read (the zoo edits its entry in place).
__getattr__ = hyperparams_attribute(_HYPERPARAMS, __name__)
