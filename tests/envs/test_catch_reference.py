"""envs.catch_reference and scripts/catch_reference.py: the scripted Catch policies against what the game
itself says (envs.catch's reset and step, stepped without moves to find where each ball lands)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import gymnasium as gym
import pytest
import torch

import envs  # noqa: F401  (registers glimpse/Catch-v0)
from envs import rng
from envs.catch import CatchState, catch_render, catch_reset, catch_step
from envs.catch_reference import (follow_ball_policy, landing_column, play_catch, predict_landing_policy,
                                  random_policy, read_screens, still_policy)

ROOT = Path(__file__).resolve().parents[2]
SCREEN = 24
START_PADDLE = (SCREEN - 2) // 2  # 11: the paddle covers columns 11 and 12


def landing_by_stepping(state: CatchState) -> torch.Tensor:
    """Where each ball lands, by playing the game on without moving: the game's own answer."""
    done = state.ball_y >= SCREEN - 1
    while not bool(done.all()):
        state, done, _ = catch_step(state, torch.zeros_like(state.paddle_x))
    return torch.floor(state.ball_x + 0.5).long()


def test_landing_column_is_where_the_game_lands_the_ball():
    # Hand-computed, from catch_step's docstring: from column 20 with dx = +1 the ball goes 21, 22, 23, 22, 21, 20.
    assert landing_column(torch.tensor([20.0]), torch.tensor([1.0]), torch.tensor([4])).tolist() == [22]
    assert landing_column(torch.tensor([20.0]), torch.tensor([1.0]), torch.tensor([6])).tolist() == [20]
    assert landing_column(torch.tensor([2.0]), torch.tensor([-1.0]), torch.tensor([5])).tolist() == [3]  # 1, 0, 1, 2, 3
    # Every game of a batch, from its start, against the game stepped 23 times.
    keys = rng.keys_from_seed(0, 4096)
    start = catch_reset(keys, torch.zeros_like(keys))
    expected = landing_by_stepping(start)
    got = landing_column(start.ball_x, start.ball_dx, torch.full_like(keys, SCREEN - 1))
    assert torch.equal(got, expected)
    assert len(expected.unique()) == SCREEN  # every column occurs: walls and bounces are exercised


def test_read_screens_finds_ball_and_paddle_and_refuses_a_finished_game():
    state = CatchState(torch.tensor([0.0, 23.0, 7.4]), torch.tensor([0, 22, 5]), torch.zeros(3, dtype=torch.float64),
                       torch.tensor([0, 22, 11]))
    ball, row, paddle = read_screens(catch_render(state))
    assert ball.tolist() == [0, 23, 7] and row.tolist() == [0, 22, 5] and paddle.tolist() == [0, 22, 11]
    ended = CatchState(torch.tensor([3.0]), torch.tensor([23]), torch.zeros(1, dtype=torch.float64), torch.tensor([11]))
    with pytest.raises(ValueError, match="one ball pixel above the bottom row"):
        read_screens(catch_render(ended))
    with pytest.raises(ValueError, match=r"screens must be \(N, 1, H, W\)"):
        read_screens(torch.zeros(2, 24, 24, dtype=torch.uint8))


def play_from(policy, previous: CatchState, state: CatchState) -> torch.Tensor:
    """Play games of the pure game from ``state`` (one step after ``previous``); which were caught."""
    last, caught = catch_render(previous), torch.zeros(len(state.ball_x), dtype=torch.bool)
    while True:
        screens = catch_render(state)
        state, done, reward = catch_step(state, policy(screens, last))
        caught |= reward > 0
        last = screens
        if bool(done.all()):
            return caught


@pytest.mark.parametrize("dxs", [(-1.0, 0.0, 1.0), (0.0,)])
def test_predictive_policy_catches_exactly_the_reachable_balls_when_the_screen_shows_the_speed(dxs):
    # With a whole number of columns per row, two screens show the ball's speed exactly, so the prediction is
    # the true landing column L and the paddle catches the ball iff it can get there in the rows left:
    # |moves needed| <= rows left. A ball falling straight down (dx = 0) is the follower's case too.
    policies = [predict_landing_policy] if len(dxs) > 1 else [predict_landing_policy, follow_ball_policy]
    outcomes = set()
    for row in range(SCREEN - 2):  # the previous screen's row; the game goes on from row + 1
        grid = torch.cartesian_prod(torch.arange(SCREEN, dtype=torch.float64), torch.tensor(dxs, dtype=torch.float64),
                                    torch.tensor([0.0, 4.0, 11.0, 18.0, 22.0], dtype=torch.float64))
        x, dx, paddle = grid.unbind(1)
        previous = CatchState(x, torch.full_like(paddle, row).long(), dx, paddle.long())
        state, _, _ = catch_step(previous, torch.zeros_like(previous.paddle_x))
        landing = landing_by_stepping(state)
        needed = (landing - (state.paddle_x + 1)).clamp(min=0) + (state.paddle_x - landing).clamp(min=0)
        reachable = needed <= SCREEN - 1 - state.ball_y
        outcomes |= set(reachable.tolist())
        for policy in policies:
            assert torch.equal(play_from(policy, previous, state), reachable), (policy.__name__, row)
    assert outcomes == {True, False}  # both kinds of ball occur


def test_never_moving_paddle_catches_the_balls_landing_on_its_two_columns():
    env = gym.make_vec("glimpse/Catch-v0", num_envs=2048, split="test", action_mode="discrete")
    caught = play_catch(env, still_policy, seed=0)
    # Game i is a single env seeded i: its key, episode 0.
    keys = rng.keys_from_seed(0, 2048)
    landing = landing_by_stepping(catch_reset(keys, torch.zeros_like(keys)))
    assert torch.equal(caught, (landing == START_PADDLE) | (landing == START_PADDLE + 1))


def test_catch_rates_on_2048_test_games():
    torch.manual_seed(0)
    env = gym.make_vec("glimpse/Catch-v0", num_envs=2048, split="test")
    caught = {name: play_catch(env, policy) for name, policy in
              (("predict", predict_landing_policy), ("follow", follow_ball_policy), ("still", still_policy))}
    rates = {name: float(games.float().mean()) for name, games in caught.items()}
    # No policy catches a ball the paddle cannot reach from its start in the rows there are (game i: seed i).
    start = catch_reset(rng.keys_from_seed(0, 2048), torch.zeros(2048, dtype=torch.long))
    landing = landing_by_stepping(start)
    needed = (landing - (START_PADDLE + 1)).clamp(min=0) + (START_PADDLE - landing).clamp(min=0)
    reachable = needed <= SCREEN - 1
    for name, games in caught.items():
        assert not (games & ~reachable).any(), name
    # The predictor reads the speed off two screens, exact for whole columns per row (the test above); with
    # fractional speeds it can land a column off, so it catches most, not all, of the reachable balls.
    assert 0.9 * float(reachable.float().mean()) < rates["predict"] <= float(reachable.float().mean())
    assert rates["predict"] > rates["follow"] > 4 * rates["still"]
    # The same games through the other action mode and in several envs' seeds' order give the same catches.
    discrete = gym.make_vec("glimpse/Catch-v0", num_envs=1024, split="test", action_mode="discrete")
    halves = [play_catch(discrete, predict_landing_policy, seed=s) for s in (0, 1024)]
    assert float(torch.cat(halves).float().mean()) == rates["predict"]


def test_random_policy_moves_uniformly_and_reproducibly():
    screens = torch.zeros(30_000, 1, SCREEN, SCREEN, dtype=torch.uint8)
    moves = random_policy(torch.Generator().manual_seed(3))(screens, None)
    counts = torch.bincount(moves + 1, minlength=3).float() / len(moves)
    assert torch.allclose(counts, torch.full((3,), 1 / 3), atol=0.01)
    assert torch.equal(moves, random_policy(torch.Generator().manual_seed(3))(screens, None))


@pytest.mark.filterwarnings("ignore::envs.data.OfflineSubsetWarning")
def test_play_catch_refuses_a_task_without_a_paddle():
    env = gym.make_vec("glimpse/MNIST-v0", num_envs=2)
    with pytest.raises(ValueError, match="play_catch needs a Catch env"):
        play_catch(env, still_policy)


@pytest.mark.e2e  # the script in a subprocess
def test_script_prints_the_rates():
    env = {**os.environ, "PYTHONWARNINGS": "ignore", "OMP_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, str(ROOT / "scripts" / "catch_reference.py"), "--games", "64"],
                          env=env, capture_output=True, text=True, timeout=120, check=True)
    lines = done.stdout.strip().splitlines()
    assert [line.split(":")[0] for line in lines[:4]] == ["predict", "follow", "random", "still"]
    result = json.loads(lines[-1])
    assert result["games"] == 64 and set(result["catch_rate"]) == {"predict", "follow", "random", "still"}
    # The still paddle's rate over the first 64 games, from the game itself.
    keys = rng.keys_from_seed(0, 64)
    landing = landing_by_stepping(catch_reset(keys, torch.zeros_like(keys)))
    assert result["catch_rate"]["still"] == float(((landing == 11) | (landing == 12)).float().mean())
    bad = subprocess.run([sys.executable, str(ROOT / "scripts" / "catch_reference.py"), "--games", "0"],
                         env=env, capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2 and bad.stderr.strip().splitlines()[-1] == "error: --games must be >= 1; got 0"
