"""What an env's glimpses look at: the scene of every kind of task, for all ``N`` envs at once.

A task's builder (:attr:`envs.TaskSpec.build`) returns a :class:`Scene`; :class:`envs.GlimpseVectorEnv`
owns the retina's locations, the step counters and the random keys, and asks its scene to start episodes,
apply decisions and take glimpses. :class:`PictureScene` serves still canvases and videos;
:class:`envs.catch.CatchScene` serves RAM's Catch. A new kind of task is a new :class:`Scene` subclass
plus a :class:`envs.TaskSpec`.

Conventions: pictures are ``(N, C, H, W)``, videos ``(N, T, C, H, W)``; glimpse centres are ``(x, y)`` in
the project's normalized frame (see :mod:`glimpse`); glimpses are ``(B, S, C, g, g)`` as
:func:`glimpse.extract_glimpses` returns them.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import Tensor

from glimpse import GlimpseSensor, RetinaSpec

__all__ = ["Scene", "PictureScene"]


class Scene:
    """What the glimpses look at, for all ``N`` envs: one subclass per kind of task.

    Attributes:
        num_decisions: ``D``, the decisions an episode ends with (classes; Catch: 3 paddle moves).
        episode_steps: steps of every episode.
        shape: ``(C, H, W)`` of one picture.
        labels: ``(N,)`` each env's label, or ``None`` where the task has none (Catch).
        test_set_size: ``M``, the examples of the fixed test split, or ``None`` where there is no data set.
    """

    num_decisions: int
    episode_steps: int
    shape: tuple[int, int, int]  # (C, H, W)
    labels: Tensor | None = None
    test_set_size: int | None = None

    def start(self, rows: Tensor, keys: Tensor, episodes: Tensor, target: Tensor | None = None) -> None:
        """Begin new episodes in ``rows`` ``(K,)``, drawn from ``keys``/``episodes`` ``(K,)``; ``target``
        ``(K,)`` fixes which example of the data set each row shows (the test split)."""
        raise NotImplementedError

    def advance(self, decisions: Tensor, steps: Tensor, active: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """Apply the decisions of step ``steps`` (1-based); return ``(reward (N,) float32, terminated (N,))``.

        ``active`` ``(N,)`` bool, where given, says which envs to advance: the others ended at the last step
        and restart at this one (``NEXT_STEP`` autoreset), so their state must not change (it may be a
        finished game) and their reward and termination are ignored. A scene whose ``advance`` changes no
        state (a picture or a video) may ignore it.
        """
        raise NotImplementedError

    def glimpse(self, centers: Tensor, steps: Tensor, rows: Tensor | None = None) -> Tensor:
        """Glimpses ``(B, S, C, g, g)`` at ``centers`` ``(B, 2)`` of what env ``rows[b]`` (default ``b``,
        with ``B = N``) shows at ``steps[b]``."""
        raise NotImplementedError

    def frame(self, row: int, step: int) -> Tensor:
        """The ``(C, H, W)`` picture env ``row`` shows at ``step``, for rendering."""
        raise NotImplementedError

    def contents(self) -> tuple[Tensor, Tensor | None]:
        """``(pictures, labels)`` of the current episodes: see :meth:`envs.GlimpseVectorEnv.scene`."""
        raise NotImplementedError

    def final_info(self, rewards: Tensor) -> dict[str, Tensor]:
        """The info of an episode's last step, for every env (the env masks the ones that ended)."""
        return {"label": self.labels.clone()}

    def memory_bytes(self, num_envs: int, device: torch.device) -> int:
        """About how many bytes the scene's buffers for ``num_envs`` envs on ``device`` will take (its pictures,
        the retina's, one batch of glimpses), before they exist; 0 where a scene does not say."""
        return 0


class PictureScene(Scene):
    """Still canvases ``(N, C, H, W)`` (classification) or videos ``(N, T, C, H, W)``, whose step ``t``
    glimpses frame ``t``. The sensor is prepared at reset (for videos, all ``N * T`` frames): on the CPU
    and canvases this size, planes of block means, so every glimpse of the episode is one gather; on CUDA,
    the fused kernel over a copy of the pictures (see :class:`glimpse.GlimpseSensor`).

    Args:
        generate: ``(keys, episodes, target) -> (pictures, labels)``, a generator of :mod:`envs.tasks`
            with its data and options bound.
        steps: steps per episode (glimpses of a still picture, or frames of a video).
        retina: the env's retina (:class:`glimpse.RetinaSpec`), handed to :class:`glimpse.GlimpseSensor`.
        shape: ``(C, H, W)`` of one picture or frame.
        num_classes: ``D``.
        test_set_size: ``M``, the examples ``target`` may index (the fixed test split).
        frames: pictures per episode: 1 for a still, ``T`` for a video (for :meth:`memory_bytes`).
        dtype: the pictures' dtype (for :meth:`memory_bytes`).
    """

    def __init__(self, generate: Callable, steps: int, retina: RetinaSpec, shape, num_classes: int,
                 test_set_size: int | None = None, *, frames: int = 1, dtype: torch.dtype = torch.uint8) -> None:
        self._generate, self._retina = generate, retina
        self._frames_per_episode, self._dtype = frames, dtype
        self.episode_steps, self.shape, self.num_decisions = steps, tuple(shape), num_classes
        self.test_set_size = test_set_size
        self.pictures: Tensor | None = None
        self.sensor: GlimpseSensor | None = None

    @property
    def _frames(self) -> int:
        return self.pictures.shape[1] if self.pictures.dim() == 5 else 1

    def start(self, rows, keys, episodes, target=None):
        pictures, labels = self._generate(keys, episodes, target)
        if self.pictures is None:  # the first reset covers every row
            self.pictures, self.labels = pictures, labels
            # The env validates its actions once per step, so the sensor need not re-read every centre.
            self.sensor = GlimpseSensor(pictures.reshape(-1, *self.shape), retina=self._retina, validate=False)
            return
        self.pictures[rows], self.labels[rows] = pictures, labels
        t = self._frames
        frame_rows = (rows[:, None] * t + torch.arange(t, device=rows.device)).flatten()
        self.sensor.replace(frame_rows, pictures.reshape(-1, *self.shape))

    def advance(self, decisions, steps, active=None):  # changes no state: ``active`` needs no care
        terminated = steps >= self.episode_steps
        return (terminated & (decisions == self.labels)).to(torch.float32), terminated

    def glimpse(self, centers, steps, rows=None):
        if self.pictures.dim() == 4:  # a still canvas: row n glimpses canvas n
            return self.sensor(centers, index=rows)
        t = self._frames
        rows = torch.arange(len(centers), device=centers.device) if rows is None else rows
        return self.sensor(centers, index=rows * t + steps.clamp(max=t - 1))

    def frame(self, row, step):
        return self.pictures[row] if self.pictures.dim() == 4 else self.pictures[row, min(step, self._frames - 1)]

    def contents(self):
        return self.pictures, self.labels

    def memory_bytes(self, num_envs, device):
        images = num_envs * self._frames_per_episode
        pictures = images * math.prod(self.shape) * self._dtype.itemsize + num_envs * 8  # and the labels
        return pictures + GlimpseSensor.memory_bytes((images, *self.shape), self._dtype, retina=self._retina, device=device,
                                                     batch=num_envs)
