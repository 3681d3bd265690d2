"""Catch rates of the scripted reference policies (envs.catch_reference) on Catch's test games.

    python scripts/catch_reference.py --games 2048

Plays ``--games`` games of ``glimpse/Catch-v0`` at once (one episode of each env of a vector env, test
split, reset with ``--seed``: game ``i`` is the first episode of a Catch env seeded ``seed + i``, so the
first ``E`` games are those of train.py's test evaluation with ``--eval-images E``) with each policy, which
reads the whole screen through the env's public ``scene()``:

* ``predict``: move toward the ball's landing column, predicted from its last two screens;
* ``follow``: move toward the ball's current column;
* ``random``: uniformly random moves (chance);
* ``still``: never move (chance: the balls that land on the paddle's starting columns).

Prints one line per policy, ``policy: catch rate (caught / games)``, and, as JSON on the last line, all
rates.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Annotated

import gymnasium as gym
import torch

import envs  # noqa: F401  (registers glimpse/Catch-v0)
from agents.scripting import in_flag_words
from agents.training import ConfigError, cli, run_script
from agents.ranges import MAX_SEED, Range
from envs.catch_reference import (follow_ball_policy, play_catch, predict_landing_policy, random_policy,
                                  still_policy)


@dataclass
class Config:
    games: Annotated[int, Range(1)] = 2048
    """test games, played at once (one env each)"""
    seed: Annotated[int, Range(0, MAX_SEED)] = 0
    """game i is the first episode of a Catch env seeded seed + i (train.py's evaluation: 0)"""
    device: str = "cpu"
    """torch device of the env"""
    torch_threads: Annotated[int, Range(1)] = 1
    """torch's CPU threads (the games are cheap)"""


def main() -> None:
    cfg = cli(Config, description=__doc__.split("\n\n")[0])
    torch.set_num_threads(cfg.torch_threads)
    try:
        env = gym.make_vec("glimpse/Catch-v0", num_envs=cfg.games, split="test", device=cfg.device)
    except ValueError as error:  # the env's own checks (more games than memory holds): its message, flag-worded
        flags = {"num_envs": "--games", "device": "--device"}
        raise ConfigError(f"--games {cfg.games}: {in_flag_words(error, flags)}") from None
    policies = {"predict": predict_landing_policy, "follow": follow_ball_policy,
                "random": random_policy(torch.Generator().manual_seed(cfg.seed)), "still": still_policy}
    rates = {}
    for name, policy in policies.items():
        caught = play_catch(env, policy, seed=cfg.seed)
        rates[name] = float(caught.double().mean())
        print(f"{name}: {rates[name]:.4f} ({int(caught.sum())} / {cfg.games})")
    print(json.dumps({"games": cfg.games, "seed": cfg.seed, "catch_rate": rates}))


if __name__ == "__main__":
    run_script(main)
