r"""RAM's Catch (Mnih et al., 2014, the dynamic environment): the game, batched, and its scene for the env.

The game is three pure functions of a :class:`CatchState` of ``N`` games: :func:`catch_reset`,
:func:`catch_step` and :func:`catch_render`; randomness comes from :mod:`envs.rng` (streams
``STREAM_CATCH_*`` of :mod:`envs.tasks`' stream table), so ``N`` batched games are ``N`` single ones.
:class:`CatchScene` is what :class:`envs.GlimpseVectorEnv` glimpses when its task is ``catch``.

Conventions: pixel positions are ``(x, y)`` = (column, row), +y down; screens are ``(N, 1, screen, screen)``
uint8. Normalized glimpse locations follow the project's convention (see :mod:`glimpse`).
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import torch
from torch import Tensor

from envs import rng
from envs.scenes import Scene
from envs.tasks import STREAM_CATCH_COLUMN, STREAM_CATCH_SLOPE
from glimpse.checks import check_int, check_shape
from glimpse.retina import GlimpseSensor, RetinaSpec, extract_glimpses

__all__ = ["CatchState", "catch_reset", "catch_step", "catch_render", "CatchScene"]


@dataclass(frozen=True)
class CatchState:
    """The state of ``N`` games of Catch; all fields ``(N,)`` on one device.

    Attributes:
        ball_x: float64 column of the ball's centre, in ``[0, screen - 1]`` (drawn at ``floor(x + 1/2)``).
        ball_y: int64 row of the ball, 0 (top) to ``screen - 1`` (bottom, the last step).
        ball_dx: float64 columns the ball moves per row, in ``[-1, 1]``.
        paddle_x: int64 left column of the 2-pixel paddle on the bottom row, in ``[0, screen - 2]``.
    """

    ball_x: Tensor
    ball_y: Tensor
    ball_dx: Tensor
    paddle_x: Tensor


def _check_screen(screen: object) -> int:
    return check_int(screen, "screen", minimum=3, why="(a 2-pixel paddle and room to move)")


def catch_reset(keys: Tensor, episodes: Tensor, *, screen: int = 24) -> CatchState:
    r"""Start ``N`` games of RAM's Catch (Mnih et al., 2014, the dynamic environment).

    Starting State:
        The ball is on the top row (``ball_y = 0``) at a uniformly random integer column in
        ``[0, screen - 1]`` (``STREAM_CATCH_COLUMN``), with ``ball_dx`` uniform in ``[-1, 1)`` columns per
        row (``STREAM_CATCH_SLOPE``), i.e. up to 45 degrees either side of straight down. The paddle is
        centred on the bottom row: ``paddle_x = (screen - 2) // 2`` (columns 11 and 12 of 24).

    Args:
        keys, episodes: ``(N,)`` int64; the state is on their device.
        screen: side of the square screen in pixels (24 in the paper).
    """
    rng.check_keys(keys, episodes)
    screen = _check_screen(screen)
    column = rng.integers(keys, episodes, STREAM_CATCH_COLUMN, screen).to(torch.float64)
    slope = rng.uniform(keys, episodes, STREAM_CATCH_SLOPE) * 2.0 - 1.0
    return CatchState(
        ball_x=column,
        ball_y=torch.zeros_like(keys),
        ball_dx=slope,
        paddle_x=torch.full_like(keys, (screen - 2) // 2),
    )


def catch_step(state: CatchState, move: Tensor, *, screen: int = 24) -> tuple[CatchState, Tensor, Tensor]:
    r"""Advance ``N`` games of Catch by one step.

    Action Space:
        ``move`` ``(N,)`` int64 in ``{-1, 0, +1}``: move the paddle one column left, stay, or right. The
        paddle is clamped to the screen (``paddle_x`` in ``[0, screen - 2]``).

    Ball motion:
        Each step the ball moves down one row and ``ball_dx`` columns: ``x' = x + dx``. It bounces off
        the side walls, which are the centre lines of columns 0 and ``screen - 1``: if
        ``x' > screen - 1`` then ``x' = 2 (screen - 1) - x'`` and ``dx = -dx``; if ``x' < 0`` then
        ``x' = -x'`` and ``dx = -dx``. A ball that lands exactly on a wall keeps its ``dx`` and reflects
        on the next step, so either way it retraces its path: from column 20 with ``dx = +1`` on a
        24-wide screen the columns are 20, 21, 22, 23, 22, 21, ... (the ``dx`` flips on step 4). Since
        ``|dx| <= 1 <= screen - 1`` one reflection always suffices, so ``x`` stays in ``[0, screen - 1]``.

    Rewards:
        On the step the ball reaches the bottom row: 1 if its column ``floor(x + 1/2)`` is one of the
        paddle's two columns (after this step's move), else 0. Every other step: 0.

    Episode End:
        Terminates when the ball reaches the bottom row, ``screen - 1`` steps after the reset. No
        truncation. Stepping a finished game is an error: reset it first.

    Returns:
        ``(state, done, reward)``: the new :class:`CatchState`, ``(N,)`` bool, ``(N,)`` float32.
    """
    screen = _check_screen(screen)
    check_shape(move, "move", "(N,)", (state.ball_x.shape[0],))
    if move.dtype != torch.int64:
        raise TypeError(f"move must be int64 in {{-1, 0, +1}}; got {move.dtype}")
    bad_move, ended = ((move < -1) | (move > 1)).any(), (state.ball_y >= screen - 1).any()
    if bool(bad_move | ended):  # one device sync per step for both checks
        if bool(bad_move):
            raise ValueError(f"move must be -1, 0 or +1; got values {sorted(set(move.unique().tolist()))}")
        raise ValueError("some games have already ended (ball on the bottom row): reset them before stepping")
    wall = float(screen - 1)
    paddle_x = (state.paddle_x + move.to(state.paddle_x.device)).clamp(0, screen - 2)
    x = state.ball_x + state.ball_dx
    right, left = x > wall, x < 0.0
    x = torch.where(right, 2.0 * wall - x, torch.where(left, -x, x))
    dx = torch.where(right | left, -state.ball_dx, state.ball_dx)
    y = state.ball_y + 1
    done = y == screen - 1
    column = torch.floor(x + 0.5).long()
    caught = (column == paddle_x) | (column == paddle_x + 1)
    reward = (done & caught).to(torch.float32)
    return CatchState(ball_x=x, ball_y=y, ball_dx=dx, paddle_x=paddle_x), done, reward


def catch_render(state: CatchState, *, screen: int = 24) -> Tensor:
    r"""Draw ``N`` games of Catch: ``(N, 1, screen, screen)`` uint8, ball and paddle pixels 255, else 0.

    The ball is the pixel at column ``floor(ball_x + 1/2)``, row ``ball_y``; the paddle the pixels at
    columns ``paddle_x`` and ``paddle_x + 1`` of the bottom row (they may coincide with the ball).
    """
    screen = _check_screen(screen)
    n = state.ball_x.shape[0]
    ball = state.ball_y * screen + torch.floor(state.ball_x + 0.5).long()  # (N,) flat pixel index
    bottom = (screen - 1) * screen + state.paddle_x
    where = torch.stack([ball, bottom, bottom + 1], dim=1)  # (N, 3)
    image = torch.zeros(n, screen * screen, dtype=torch.uint8, device=state.ball_x.device)
    image.scatter_(1, where, 255)
    return image.view(n, 1, screen, screen)


class CatchScene(Scene):
    """``N`` games of Catch for :class:`envs.GlimpseVectorEnv`: the screen changes every step, so each glimpse
    is a one-shot retina call (:func:`glimpse.extract_glimpses`) on the current screens.

    Decisions are the paddle moves ``0, 1, 2`` = left, stay, right; an episode lasts ``screen - 1`` steps.
    """

    num_decisions = 3  # paddle: left, stay, right

    def __init__(self, screen: int, retina: RetinaSpec) -> None:
        self.screen, self._retina = _check_screen(screen), retina
        self.episode_steps, self.shape = self.screen - 1, (1, self.screen, self.screen)
        self.state: CatchState | None = None

    def start(self, rows, keys, episodes, target=None):
        new = catch_reset(keys, episodes, screen=self.screen)
        if self.state is None:
            self.state = new
            return
        for f in fields(new):
            getattr(self.state, f.name)[rows] = getattr(new, f.name)

    def advance(self, decisions, steps, active=None):
        if active is None:
            self.state, done, reward = catch_step(self.state, decisions - 1, screen=self.screen)
            return reward.to(torch.float32), done
        # Only the active games move (the others are finished and restart at this step).
        rows = active.nonzero().flatten()
        part = CatchState(**{f.name: getattr(self.state, f.name)[rows] for f in fields(self.state)})
        part, part_done, part_reward = catch_step(part, decisions[rows] - 1, screen=self.screen)
        for f in fields(part):
            getattr(self.state, f.name)[rows] = getattr(part, f.name)
        done = torch.zeros_like(active)
        done[rows] = part_done
        reward = torch.zeros(len(active), dtype=torch.float32, device=active.device)
        reward[rows] = part_reward.to(torch.float32)
        return reward, done

    def memory_bytes(self, num_envs, device):
        # Each glimpse draws the screens (uint8) and takes the one-shot retina of them: the sensor's windows
        # method, whose kept copy stands for the drawn screens.
        return GlimpseSensor.memory_bytes((num_envs, *self.shape), torch.uint8, retina=self._retina, method="windows",
                                          device=device)

    def glimpse(self, centers, steps, rows=None):
        screens = catch_render(self.state, screen=self.screen)
        # Centres are the env's locations, finite by its action check: no second read (a sync on CUDA).
        return extract_glimpses(screens if rows is None else screens[rows], centers, retina=self._retina, validate=False)

    def frame(self, row, step):
        return catch_render(self.state, screen=self.screen)[row]

    def contents(self):
        return catch_render(self.state, screen=self.screen), None

    def final_info(self, rewards):
        return {"caught": rewards > 0}
