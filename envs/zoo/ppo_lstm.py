"""rl-zoo3 hyperparameters for RecurrentPPO on Catch (``--algo ppo_lstm --conf-file envs.zoo.ppo_lstm``).

``scripts/sb3_ppo.py --env catch --algo recurrent-ppo``'s recipe (:data:`envs.zoo.SB3_RECIPES` ``["catch"]``):
RAM's 6 px x 3 retina with scale gain 4, 256 games per rollout of one whole 23-step game, LSTMs of 128.
Needs sb3-contrib. See :mod:`envs.zoo`.
"""

from __future__ import annotations

from envs.specs import task_of
from envs.zoo import SB3_DEFAULTS, SB3_RECIPES, hyperparams_attribute, rollout_steps, zoo_hyperparams

# One whole game per rollout, as sb3_ppo.py takes them: a game is canvas - 1 steps (23 on the 24 px screen),
# the ball falling from the top row to the bottom one.
N_STEPS = rollout_steps(None, task_of("catch").options.canvas - 1)

_HYPERPARAMS = {
    task_of("catch").env_id: zoo_hyperparams({**SB3_DEFAULTS, **SB3_RECIPES["catch"]}, N_STEPS, recurrent=True,
                                             still=False),
}

# `hyperparams`, what rl-zoo3 reads: a fresh copy of the table at every read (the zoo edits its entry in place).
__getattr__ = hyperparams_attribute(_HYPERPARAMS, __name__)
