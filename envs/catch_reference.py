r"""Scripted reference policies for Catch: what a player that sees the whole screen achieves.

They read only what any user of the env can read, the current screen (:meth:`envs.GlimpseVectorEnv.scene`),
and return paddle moves; they are yardsticks for the learned agents, which see the screen through a retina:

* :func:`still_policy`: never move (the paddle stays on columns 11 and 12 of 24): chance level;
* :func:`follow_ball_policy`: move the paddle toward the ball's current column;
* :func:`predict_landing_policy`: estimate the ball's horizontal speed from the last two screens, fold
  its straight path at the walls as :func:`envs.catch.catch_step` does (:func:`landing_column`), and move
  toward where it will land.

:func:`play_catch` plays one episode of every env of a Catch vector env with a policy and returns which
games it caught; ``python scripts/catch_reference.py`` prints the catch rates on the test games.

Conventions: screens are ``(N, 1, H, W)`` uint8 as :func:`envs.catch.catch_render` draws them (the ball one
lit pixel above the bottom row during play, the 2-pixel paddle on the bottom row); columns are pixel
``x`` (0 = left); a move is ``-1`` (left), ``0`` (stay) or ``+1`` (right), the ``move`` of
:func:`envs.catch.catch_step` (the env's paddle decision is ``move + 1``). A policy is a function
``policy(screens, previous) -> moves (N,) int64`` of the current screens and those one step earlier
(``None`` at an episode's first step).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from torch import Tensor

from glimpse.checks import check_shape

__all__ = ["read_screens", "landing_column", "move_toward", "still_policy", "follow_ball_policy",
           "predict_landing_policy", "random_policy", "play_catch", "Policy"]

Policy = Callable[[Tensor, "Tensor | None"], Tensor]


def read_screens(screens: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    r"""Where the ball and the paddle are on Catch screens.

    Convention:
        ``screens`` ``(N, 1, H, W)``, as :func:`envs.catch.catch_render` draws them during play: one lit
        pixel (the ball) in rows ``0 .. H - 2``, and the paddle's two lit pixels on the bottom row.

    Returns:
        ``(ball_column, ball_row, paddle_x)``, each ``(N,)`` int64: the ball's pixel ``(x, y)`` and the left
        column of the paddle.

    Example:
        >>> from envs.catch import CatchState, catch_render
        >>> state = CatchState(torch.tensor([5.0]), torch.tensor([3]), torch.tensor([0.5]), torch.tensor([11]))
        >>> read_screens(catch_render(state))
        (tensor([5]), tensor([3]), tensor([11]))
    """
    check_shape(screens, "screens", "(N, 1, H, W)", (None, 1, None, None))
    n, _, height, width = screens.shape
    ball = screens[:, 0, :-1].reshape(n, -1) > 0  # (N, (H - 1) * W)
    counts = ball.sum(dim=1)
    if bool((counts != 1).any()):
        bad = int((counts != 1).nonzero()[0])
        raise ValueError(f"screens must show one ball pixel above the bottom row; screen {bad} shows "
                         f"{int(counts[bad])} (a finished game's ball is on the bottom row: reset it first)")
    flat = ball.to(torch.uint8).argmax(dim=1)
    paddle_x = (screens[:, 0, -1] > 0).to(torch.uint8).argmax(dim=1)
    return flat % width, flat // width, paddle_x


def landing_column(column: Tensor, dx: Tensor, rows: Tensor, screen: int = 24) -> Tensor:
    r"""The column a ball lands on after ``rows`` more rows, bouncing off the side walls.

    Convention:
        As :func:`envs.catch.catch_step` moves the ball: ``dx`` columns per row, the walls the centre lines
        of columns ``0`` and ``W = screen - 1``, each bounce a mirror reflection; so the path is the
        straight line ``u = column + dx * rows`` folded into ``[0, W]`` (period ``2 W``), drawn at column
        ``floor(u + 1/2)``. All arguments ``(N,)`` (or broadcastable); ``column`` and ``dx`` may be
        fractional (the game's own ``ball_x``, ``ball_dx``) or pixel columns and an estimate.

    Returns:
        ``(N,)`` int64 landing columns in ``[0, W]``.

    Example:
        >>> landing_column(torch.tensor([20.0, 5.0]), torch.tensor([1.0, -0.5]), torch.tensor([4, 20]))
        tensor([22,  5])
        >>> landing_column(torch.tensor([20.0]), torch.tensor([1.0]), torch.tensor([6]))  # 21, 22, 23, 22, 21, 20
        tensor([20])
    """
    wall = float(screen - 1)
    u = torch.remainder(column.to(torch.float64) + dx.to(torch.float64) * rows.to(torch.float64), 2.0 * wall)
    u = torch.where(u > wall, 2.0 * wall - u, u)
    return torch.floor(u + 0.5).long()


def move_toward(paddle_x: Tensor, column: Tensor) -> Tensor:
    """``(N,)`` int64 moves that bring ``column`` onto the paddle (columns ``paddle_x``, ``paddle_x + 1``):
    ``-1`` if it is left of the paddle, ``+1`` if right of it, else ``0``."""
    return (column > paddle_x + 1).long() - (column < paddle_x).long()


def still_policy(screens: Tensor, previous: Tensor | None = None) -> Tensor:
    """Never move: catches the balls that land on the paddle's starting columns (chance level)."""
    check_shape(screens, "screens", "(N, 1, H, W)", (None, 1, None, None))
    return torch.zeros(screens.shape[0], dtype=torch.int64, device=screens.device)


def follow_ball_policy(screens: Tensor, previous: Tensor | None = None) -> Tensor:
    """Move the paddle toward the ball's current column (``previous`` is not used)."""
    ball_column, _, paddle_x = read_screens(screens)
    return move_toward(paddle_x, ball_column)


def predict_landing_policy(screens: Tensor, previous: Tensor | None = None) -> Tensor:
    """Move the paddle toward the ball's predicted landing column.

    The ball's speed is estimated as the change of its pixel column between ``previous`` and ``screens``
    (an integer: the screens show pixels, so a speed of 0.4 columns per row reads as 0 or 1), 0 at an
    episode's first step (``previous`` None, or not one row earlier); the landing column is then
    :func:`landing_column` from the current pixel over the rows left.
    """
    ball_column, ball_row, paddle_x = read_screens(screens)
    dx = torch.zeros_like(ball_column)
    if previous is not None:
        check_shape(previous, "previous", "(N, 1, H, W)", tuple(screens.shape))
        last_column, last_row, _ = read_screens(previous)
        dx = torch.where(last_row == ball_row - 1, ball_column - last_column, dx)
    screen = screens.shape[-1]
    target = landing_column(ball_column, dx, screens.shape[-2] - 1 - ball_row, screen)
    return move_toward(paddle_x, target)


def random_policy(generator: torch.Generator) -> Policy:
    """A policy of uniformly random moves, drawn from ``generator`` (a CPU generator)."""
    def policy(screens: Tensor, previous: Tensor | None = None) -> Tensor:
        check_shape(screens, "screens", "(N, 1, H, W)", (None, 1, None, None))
        return torch.randint(-1, 2, (screens.shape[0],), generator=generator).to(screens.device)
    return policy


def play_catch(env, policy: Policy, seed: int = 0) -> Tensor:
    """Play one episode of each of ``env``'s ``N`` games with ``policy``; ``(N,)`` bool: which were caught.

    ``env`` is a Catch :class:`envs.GlimpseVectorEnv` (e.g. ``gym.make_vec("glimpse/Catch-v0", num_envs=N,
    split="test")``), any action mode, autoreset mode and arrays. It is reset with ``seed``, so game ``i`` is
    the first episode of a single env seeded ``seed + i``. At each of its ``env.episode_steps`` steps the
    policy sees the current screens (:meth:`envs.GlimpseVectorEnv.scene`) and those of the step before; the
    glimpse is not steered (these policies do not look through the retina). A game is caught when its last
    step's reward is 1.
    """
    if getattr(env, "decision", None) != "paddle":
        raise ValueError(f"play_catch needs a Catch env (decision 'paddle'); got decision {getattr(env, 'decision', None)!r}")
    if env.max_episode_steps is not None and env.max_episode_steps < env.episode_steps:
        raise ValueError(f"max_episode_steps {env.max_episode_steps} truncates Catch's {env.episode_steps}-step games")
    env.reset(seed=seed)
    n, previous, total = env.num_envs, None, torch.zeros(env.num_envs, dtype=torch.float64)
    for _ in range(env.episode_steps):
        screens = env.scene()[0].clone()  # the env's own tensor: kept for the next step
        moves = policy(screens, previous).to(torch.int64).cpu()
        if moves.shape != (n,) or bool(((moves < -1) | (moves > 1)).any()):
            raise ValueError(f"the policy must return ({n},) moves in {{-1, 0, +1}}; got {tuple(moves.shape)}")
        if env.action_mode == "discrete":
            actions = torch.zeros(n, 3, dtype=torch.int64)
            actions[:, 2] = moves + 1
        else:
            actions = torch.zeros(n, 2 + env.num_decisions, dtype=torch.float32)
            actions[torch.arange(n), 2 + moves + 1] = 1.0
        _, rewards, _, _, _ = env.step(actions)
        total += torch.as_tensor(np.asarray(rewards.cpu() if isinstance(rewards, Tensor) else rewards),
                                 dtype=torch.float64)
        previous = screens
    return total > 0
