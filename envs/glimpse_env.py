"""Glimpse environments: look at a digit canvas, a photo, a video or Catch through a moving multi-scale retina.

One implementation: :class:`GlimpseVectorEnv` steps ``N`` episodes at once as torch tensors (CPU or CUDA),
taking every glimpse through :class:`glimpse.GlimpseSensor` / :func:`glimpse.extract_glimpses`.
:class:`GlimpseEnv` is its ``N = 1`` case with numpy in and out, for ``gymnasium.make`` and checkers.

## Description
Classification tasks (``mnist``, ``translated``, ``cluttered``, ``small``, ``folder``) show one canvas per
episode; the agent moves its glimpse ``num_glimpses`` times and names the class at the last step (RAM's
reward, Mnih et al. 2014). ``small`` puts a shrunk digit (14 px by default) on a large canvas (100 px), so
that a glimpse must zoom in to read it; ``folder`` shows the pictures of a user's ImageFolder-style
directory (``data_dir``, e.g. CUB-200), resized to ``canvas x canvas`` RGB. Video tasks (``moving-mnist``,
``video``) glimpse frame ``t`` at step ``t`` and name the target at the end. ``catch`` is RAM's dynamic
game: each action moves the paddle and the glimpse together.

## Action Space
``action_mode="continuous"`` (default): ``Box(-1, 1, (2 + D,), float32)``. ``action[:2]`` is the next
glimpse centre ``(x, y)`` in ``[-1, 1]`` (outer canvas edges, +y down; values outside are clipped to the
canvas). ``action[2:]`` are ``D`` decision scores whose argmax is the decision: the class (``D`` = number
of classes) or, in Catch, the paddle move (``D = 3``: left, stay, right).

``action_mode="discrete"``: ``MultiDiscrete([grid, grid, D])``: the glimpse moves to the centre of grid
cell ``(column, row)`` of a ``grid x grid`` partition of the canvas (these cells are the "items" of
item-wise hard attention), and the third entry is the decision.

## Observation Space
``Dict(glimpse=Box(0, 1, (S, C, g, g), float32), location=Box(-1, 1, (2,), float32))``: the retina's
``S`` scales of ``g x g`` pixels (scale ``k`` covers ``g * factor**k`` canvas pixels, area-averaged) and
the centre it was taken at.

## Rewards
Classification and video: 1 at the last step if the decision equals the label, else 0 (0 at every other
step; decisions before the last step are ignored). Catch: 1 when the ball reaches the bottom row on the
paddle, else 0.

## Starting State
A new canvas/video/game drawn from the env's seed; the first glimpse at the canvas centre
(``start="center"``) or uniformly random in ``[-1, 1]^2`` (``start="random"``, default).

## Episode End
Termination: after ``num_glimpses`` steps (classification: the observation after ``reset`` is the first
glimpse, so the agent has seen ``num_glimpses`` glimpses when it decides; the last step's location only
produces the final observation), after ``frames`` steps (video), or when the ball reaches the bottom
row (Catch, ``canvas - 1`` steps). Truncation: at ``max_episode_steps`` if given. The label (or
``caught``) is in the step's info when an episode ends; in the vector env it is in
``infos["final_info"]`` with the final observation in ``infos["final_obs"]`` (same-step autoreset).

## Seeding
Every random number is a counter-based hash of (seed, episode, draw): env ``i`` of
``make_vec(num_envs=N)`` reset with seed ``s`` plays exactly the episodes of a single env reset with
seed ``s + i``, on any device. In ``split="test"`` the canvases form a fixed test set: episode ``e`` of
env ``i`` shows test example ``j = (s + i + e * N) mod M`` (``M`` = test digits, pictures or user videos): test
digit ``j`` (for ``folder``: test picture ``j``, ``files[j]`` of :func:`envs.data.load_image_folder`) on a
canvas (position, clutter, motion) drawn from ``j`` alone, the same whatever the seed or device, so ``N``
envs over ``ceil(M / N)`` episodes each see every test example exactly once.

## Arguments
See :class:`GlimpseVectorEnv`.

## Version History
- v0: initial release.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import fields
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from gymnasium import spaces
from gymnasium.utils import seeding
from gymnasium.vector import AutoresetMode, VectorEnv
from gymnasium.vector.utils import batch_space
from torch import Tensor

from envs import rng, tasks
from glimpse import GlimpseSensor, extract_glimpses, window_corners_px
from glimpse._modes import outside_inference_mode

__all__ = ["GlimpseVectorEnv", "GlimpseEnv", "TASKS", "STILL_TASKS", "TEST_KEY", "render_glimpse", "render_path",
           "render_attention"]

TASKS = ("mnist", "translated", "cluttered", "small", "folder", "moving-mnist", "video", "catch")
#: The tasks that show one still, labelled picture per episode (``num_glimpses`` applies to them).
STILL_TASKS = ("mnist", "translated", "cluttered", "small", "folder")
ACTION_MODES = ("continuous", "discrete")
# The key that draws the test split's canvases: fixed, so the test set is the same for every seed.
TEST_KEY = 0x7E57
# Streams of the env's own draws, apart from the task generators' (envs.tasks uses 100-199): sharing one
# would tie the draws together (stream 101 is the target's corner, so the start would point at the digit).
_STREAM_START = 1000

# small: a 14 px digit covers 2% of 100 x 100 (a 28 px one 22% of cluttered MNIST's 60 x 60), so zooming
# matters; folder: 112 = 224 / 2, big enough for fine-grained detail, small enough for a 2-core CPU.
_DEFAULT_CANVAS = {"mnist": 28, "translated": 60, "cluttered": 60, "small": 100, "folder": 112, "moving-mnist": 64,
                   "catch": 24}


class _Scene:
    """What the glimpses look at, for all ``N`` envs: one subclass per kind of task."""

    num_decisions: int
    episode_steps: int
    shape: tuple[int, int, int]  # (C, H, W)
    labels: Tensor | None = None

    def start(self, rows: Tensor, keys: Tensor, episodes: Tensor, target: Tensor | None = None) -> None:
        """Begin new episodes in ``rows`` ``(K,)``, drawn from ``keys``/``episodes`` ``(K,)``; ``target``
        ``(K,)`` fixes which example of the data set each row shows (the test split)."""
        raise NotImplementedError

    def advance(self, decisions: Tensor, steps: Tensor) -> tuple[Tensor, Tensor]:
        """Apply the decisions of step ``steps`` (1-based); return ``(reward (N,) float32, terminated (N,))``."""
        raise NotImplementedError

    def glimpse(self, centers: Tensor, steps: Tensor, rows: Tensor | None = None) -> Tensor:
        """Glimpses ``(B, S, C, g, g)`` at ``centers`` ``(B, 2)`` of what env ``rows[b]`` (default ``b``,
        with ``B = N``) shows at ``steps[b]``."""
        raise NotImplementedError

    def frame(self, row: int, step: int) -> Tensor:
        """The ``(C, H, W)`` picture env ``row`` shows at ``step``, for rendering."""
        raise NotImplementedError

    def final_info(self, rewards: Tensor) -> dict[str, Tensor]:
        return {"label": self.labels.clone()}


class _PictureScene(_Scene):
    """Still canvases ``(N, C, H, W)`` (classification) or videos ``(N, T, C, H, W)``, whose step ``t``
    glimpses frame ``t``. The sensor is prepared at reset (for videos, all ``N * T`` frames): on
    canvases this size, planes of block means, so every glimpse of the episode is one gather."""

    def __init__(self, generate: Callable, steps: int, retina: dict, shape, num_classes: int):
        self._generate, self._retina = generate, retina
        self.episode_steps, self.shape, self.num_decisions = steps, shape, num_classes
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
            self.sensor = GlimpseSensor(pictures.reshape(-1, *self.shape), **self._retina, validate=False)
            return
        self.pictures[rows], self.labels[rows] = pictures, labels
        t = self._frames
        frame_rows = (rows[:, None] * t + torch.arange(t, device=rows.device)).flatten()
        self.sensor.replace(frame_rows, pictures.reshape(-1, *self.shape))

    def advance(self, decisions, steps):
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


class _CatchScene(_Scene):
    """RAM's Catch: the screen changes every step, so each glimpse is a one-shot retina call."""

    num_decisions = 3  # paddle: left, stay, right

    def __init__(self, screen: int, retina: dict):
        self.screen, self._retina = screen, retina
        self.episode_steps, self.shape = screen - 1, (1, screen, screen)
        self.state: tasks.CatchState | None = None
        self._caught: Tensor | None = None

    def start(self, rows, keys, episodes, target=None):
        new = tasks.catch_reset(keys, episodes, screen=self.screen)
        if self.state is None:
            self.state = new
            return
        for f in fields(new):
            getattr(self.state, f.name)[rows] = getattr(new, f.name)

    def advance(self, decisions, steps):
        self.state, done, reward = tasks.catch_step(self.state, decisions - 1, screen=self.screen)
        return reward.to(torch.float32), done

    def glimpse(self, centers, steps, rows=None):
        screens = tasks.catch_render(self.state, screen=self.screen)
        return extract_glimpses(screens if rows is None else screens[rows], centers, **self._retina, validate=False)

    def frame(self, row, step):
        return tasks.catch_render(self.state, screen=self.screen)[row]

    def final_info(self, rewards):
        return {"caught": rewards > 0}


class GlimpseVectorEnv(VectorEnv):
    r"""``N`` glimpse episodes stepped together as torch tensors; see the module docstring.

    Observations, rewards, terminations and infos are torch tensors on ``device``; actions may be torch
    tensors or numpy arrays ``(N, ...)``. Autoreset is same-step (what SB3 expects; see ``envs.sb3``).

    Args:
        num_envs: number of parallel episodes ``N``.
        task: one of ``TASKS``.
        canvas: canvas side in pixels (default: 28 mnist, 60 translated/cluttered, 100 small, 112 folder
            (the pictures are resized to it), 64 moving-mnist, 24 catch; the user video's own size for
            ``video``).
        distractors: clutter fragments (cluttered: 4, or 8 on a canvas of 100 or more; small and
            moving-mnist: 0).
        distractor_size: side of each clutter fragment in pixels (default 8; small: ``8 * digit_size // 28``,
            cut from shrunk digits, see :func:`envs.tasks.scaled_digits`).
        digit_size: side of the shrunk digit for ``task="small"`` (default 14; must divide 28).
        channels: 3 (RGB, default) or 1 (grey), for ``task="folder"``.
        glimpse_size: retina side ``g`` in pixels.
        scales: retina scales ``S``.
        factor: window growth per scale.
        num_glimpses: glimpses per classification episode (default 6); video and Catch have one per frame.
        action_mode: ``"continuous"`` or ``"discrete"``.
        grid: cells per axis in discrete mode (default ``ceil(canvas / glimpse_size)``).
        dataset: ``"mnist"`` or ``"fashion-mnist"`` (see ``envs.data.load_digits``), for the digit tasks.
        split: ``"train"`` or ``"test"``.
        data_dir: folder with IDX files (else ``$GLIMPSE_DATA_DIR`` and the default sources); for
            ``task="folder"`` (required) the root of the image folder (see ``envs.data.load_image_folder``).
        frames: frames per video episode (moving-mnist).
        digits: moving digits per video (moving-mnist: 1 or 2; the first is the target).
        video: ``(frames, labels)`` for ``task="video"``: ``(M, T, H, W[, C])`` uint8 or float in [0, 1].
        start: ``"random"`` or ``"center"``: where the first glimpse is taken.
        device: torch device of every tensor.
        render_mode: ``None`` or ``"rgb_array"``.
        max_episode_steps: truncate episodes at this many steps.
    """

    metadata = {"render_modes": ["rgb_array"], "autoreset_mode": AutoresetMode.SAME_STEP, "render_fps": 4}

    def __init__(
        self,
        num_envs: int = 1,
        *,
        task: str = "cluttered",
        canvas: int | None = None,
        distractors: int | None = None,
        distractor_size: int | None = None,
        digit_size: int | None = None,
        channels: int | None = None,
        glimpse_size: int = 8,
        scales: int = 1,
        factor: int = 2,
        num_glimpses: int | None = None,
        action_mode: str = "continuous",
        grid: int | None = None,
        dataset: str = "mnist",
        split: str = "train",
        data_dir: str | None = None,
        frames: int = 20,
        digits: int = 1,
        video: tuple[Any, Any] | None = None,
        start: str = "random",
        device: str | torch.device = "cpu",
        render_mode: str | None = None,
        max_episode_steps: int | None = None,
        _autoreset: bool = True,
    ) -> None:
        _require(task in TASKS, f"task must be one of {TASKS}; got {task!r}")
        _require(action_mode in ACTION_MODES, f"action_mode must be one of {ACTION_MODES}; got {action_mode!r}")
        _require(start in ("random", "center"), f"start must be 'random' or 'center'; got {start!r}")
        _require(render_mode in (None, "rgb_array"), f"render_mode must be None or 'rgb_array'; got {render_mode!r}")
        _require(split in ("train", "test"), f"split must be 'train' or 'test'; got {split!r}")
        for name, value in (("num_envs", num_envs), ("glimpse_size", glimpse_size), ("scales", scales),
                            ("factor", factor), ("frames", frames)):
            _require(_is_positive_int(value), f"{name} must be an integer >= 1; got {value!r}")
        if num_glimpses is not None:
            _require(task not in ("moving-mnist", "video", "catch"),
                     f"num_glimpses does not apply to task {task!r}: it takes one glimpse per frame")
            _require(_is_positive_int(num_glimpses), f"num_glimpses must be an integer >= 1; got {num_glimpses!r}")
        _require(digit_size is None or task == "small", f"digit_size applies to task='small' only; got task {task!r}")
        _require(channels is None or task == "folder", f"channels applies to task='folder' only; got task {task!r}")
        if max_episode_steps is not None:
            _require(_is_positive_int(max_episode_steps),
                     f"max_episode_steps must be an integer >= 1; got {max_episode_steps!r}")

        self.num_envs = num_envs
        self.task, self.split, self.start_mode = task, split, start
        self.device = torch.device(device)
        self.render_mode = render_mode
        self.max_episode_steps = max_episode_steps
        self._autoreset = _autoreset
        self.retina = dict(size=glimpse_size, scales=scales, factor=factor)
        self._scene, self._test_set_size = self._make_scene(
            task, canvas, distractors, distractor_size, num_glimpses or 6, dataset, split, data_dir, frames,
            digits, video, digit_size, channels,
        )
        channels, height, width = self._scene.shape
        _require(glimpse_size <= min(height, width),
                 f"glimpse_size {glimpse_size} is larger than the {height}x{width} canvas")
        self.canvas_shape = self._scene.shape
        self.action_mode = action_mode
        self.grid = grid if grid is not None else max(2, math.ceil(max(height, width) / glimpse_size))
        _require(_is_positive_int(self.grid), f"grid must be an integer >= 1; got {grid!r}")

        decisions = self._scene.num_decisions
        if action_mode == "continuous":
            self.single_action_space = spaces.Box(-1.0, 1.0, (2 + decisions,), np.float32)
        else:
            self.single_action_space = spaces.MultiDiscrete([self.grid, self.grid, decisions])
        self.single_observation_space = spaces.Dict(
            glimpse=spaces.Box(0.0, 1.0, (scales, channels, glimpse_size, glimpse_size), np.float32),
            location=spaces.Box(-1.0, 1.0, (2,), np.float32),
        )
        self.action_space = batch_space(self.single_action_space, num_envs)
        self.observation_space = batch_space(self.single_observation_space, num_envs)

        self._keys: Tensor | None = None
        self._episodes = torch.zeros(num_envs, dtype=torch.int64, device=self.device)
        self._steps = torch.zeros(num_envs, dtype=torch.int64, device=self.device)
        self._locations = torch.zeros(num_envs, 2, dtype=torch.float32, device=self.device)
        self._done = torch.zeros(num_envs, dtype=torch.bool, device=self.device)

    # ------------------------------------------------------------------ scenes
    def _make_scene(self, task, canvas, distractors, distractor_size, num_glimpses, dataset, split, data_dir,
                    frames, digits, video, digit_size, channels) -> tuple[_Scene, int | None]:
        retina = self.retina
        if task == "catch":
            screen = canvas if canvas is not None else _DEFAULT_CANVAS["catch"]
            _require(_is_positive_int(screen) and screen >= 3, f"canvas must be an integer >= 3; got {screen!r}")
            return _CatchScene(screen, retina), None
        if task == "video":
            _require(video is not None, "task='video' needs video=(frames, labels)")
            source = tasks.as_video_source(*[torch.as_tensor(v) for v in video])
            clips = source.frames.to(self.device)
            if clips.is_floating_point():  # observations are float32 whatever the frames' float dtype
                clips = clips.to(torch.float32)
            source = tasks.VideoSource(clips, source.labels.to(self.device))
            _require(canvas is None, "canvas does not apply to task='video': the frames set the size")
            shape = tuple(source.frames.shape[-3:])
            # The validated (M, T, C, H, W) source itself: raw 5-D frames would be read as channels-last again.
            generate = lambda k, e, t: tasks.video_frames(source, None, k, e, target=t)  # noqa: E731
            classes = int(source.labels.max()) + 1
            return _PictureScene(generate, source.frames.shape[1], retina, shape, classes), len(source.labels)

        from envs.data import NAMES, load_digits, load_image_folder  # imported here: Catch needs no dataset

        side = canvas if canvas is not None else _DEFAULT_CANVAS[task]
        if task == "folder":
            _require(data_dir is not None,
                     "task='folder' needs data_dir=<root>: a folder of class folders of JPEG/PNG images "
                     "(root/<class>/<image>, or root/train/<class>/... and root/test/<class>/...)")
            _require(_is_positive_int(side), f"canvas must be an integer >= 1; got {side!r}")
            folder = load_image_folder(data_dir, split, size=side, channels=3 if channels is None else channels)
            pictures, classes = folder.images.to(self.device), folder.labels.to(self.device)
            generate = lambda k, e, t: tasks.plain_images(pictures, classes, k, e, target=t)  # noqa: E731
            shape = tuple(folder.images.shape[1:])
            return _PictureScene(generate, num_glimpses, retina, shape, folder.num_classes), len(folder)

        _require(dataset in NAMES, f"dataset must be one of {NAMES}; got {dataset!r}")
        data = load_digits(dataset, split, data_dir=data_dir)
        images, labels = data.images.to(self.device), data.labels.to(self.device)
        if task == "mnist":
            _require(canvas in (None, 28), f"task='mnist' shows the plain 28x28 digit; got canvas={canvas!r}")
            generate = lambda k, e, t: tasks.plain_digits(images, labels, k, e, target=t)  # noqa: E731
        elif task == "translated":
            generate = lambda k, e, t: tasks.translated_digits(images, labels, k, e, canvas=side, target=t)  # noqa: E731
        elif task == "cluttered":
            count = distractors if distractors is not None else (8 if side >= 100 else 4)
            generate = lambda k, e, t: tasks.cluttered_digits(  # noqa: E731
                images, labels, k, e, canvas=side, distractors=count,
                distractor_size=8 if distractor_size is None else distractor_size, target=t)
        elif task == "small":
            small = 14 if digit_size is None else digit_size
            generate = lambda k, e, t: tasks.scaled_digits(  # noqa: E731
                images, labels, k, e, canvas=side, digit_size=small, distractors=distractors or 0,
                distractor_size=distractor_size, target=t)
            empty = torch.zeros(0, dtype=torch.int64, device=self.device)
            generate(empty, empty, None)  # a bad digit_size or distractor_size raises now, not at the first reset
        else:  # moving-mnist
            generate = lambda k, e, t: tasks.moving_digits(  # noqa: E731
                images, labels, k, e, frames=frames, canvas=side, digits=digits,
                distractors=distractors or 0, distractor_size=8 if distractor_size is None else distractor_size,
                target=t)
            return _PictureScene(generate, frames, retina, (1, side, side), data.num_classes), len(labels)
        return _PictureScene(generate, num_glimpses, retina, (1, side, side), data.num_classes), len(labels)

    # ------------------------------------------------------------------ gymnasium API
    # The env's state (pictures, steps, locations) is updated in place from call to call, so reset and
    # step always make it as normal tensors, also when called under torch.inference_mode.
    @outside_inference_mode
    def reset(self, *, seed: int | list[int] | None = None, options: dict | None = None):
        """Start new episodes in every env. ``seed`` ``s`` gives env ``i`` the key ``s + i``."""
        if seed is not None:
            if isinstance(seed, int):
                self._keys = rng.keys_from_seed(seed, self.num_envs, self.device)
            else:
                _require(len(seed) == self.num_envs, f"seed list must have {self.num_envs} entries; got {len(seed)}")
                self._keys = torch.tensor([rng._signed(int(s)) for s in seed], dtype=torch.int64, device=self.device)
            self._np_random, _ = seeding.np_random(seed if isinstance(seed, int) else int(seed[0]))
            self._episodes.zero_()
        elif self._keys is None:
            self._np_random, drawn = seeding.np_random(None)
            self._keys = rng.keys_from_seed(int(drawn) % 2**62, self.num_envs, self.device)
        else:
            self._episodes += 1
        rows = torch.arange(self.num_envs, device=self.device)
        self._start(rows)
        return self._observe(), {}

    @outside_inference_mode
    def step(self, actions):
        if not self._autoreset and bool(self._done.any()):
            raise RuntimeError("the episode has ended: call reset() before step()")
        if self._keys is None:
            raise RuntimeError("call reset() before step()")
        locations, decisions = self._parse_actions(actions)
        self._steps += 1
        rewards, terminated = self._scene.advance(decisions, self._steps)
        self._locations = locations
        obs = self._observe()
        truncated = torch.zeros_like(terminated)
        if self.max_episode_steps is not None:
            truncated = (self._steps >= self.max_episode_steps) & ~terminated
        done = terminated | truncated
        infos: dict[str, Any] = {}
        if bool(done.any()):
            info = self._scene.final_info(rewards)
            info.update({f"_{k}": done for k in list(info)})
            if self._autoreset:
                infos = {"final_obs": {k: v.clone() for k, v in obs.items()}, "_final_obs": done,
                         "final_info": info, "_final_info": done}
                rows = done.nonzero().flatten()
                self._episodes[rows] += 1
                self._start(rows)
                fresh = self._observe(rows)
                for key in obs:
                    obs[key][rows] = fresh[key]
            else:
                infos = info
                self._done = done
        return obs, rewards, terminated, truncated, infos

    def scene(self) -> tuple[Tensor, Tensor | None]:
        """What the current episodes show, without a retina: for full-image baselines and plots.

        Returns ``(pictures, labels)``: canvases ``(N, C, H, W)`` (uint8 for the digit and folder tasks) for
        classification, the videos ``(N, T, C, H, W)`` for video tasks, the current screens for Catch
        (``labels`` None there). These are the env's own tensors, overwritten in place when episodes
        restart: clone what must outlive the current episodes.
        """
        if isinstance(self._scene, _CatchScene):
            return tasks.catch_render(self._scene.state, screen=self._scene.screen), None
        return self._scene.pictures, self._scene.labels

    def item_centers(self) -> Tensor:
        """``(K, 2)`` the centres ``(x, y)`` in ``[-1, 1]`` of the ``K = grid * grid`` cells of the discrete
        action mode, the items of item-wise attention: item ``k`` is cell ``(column, row) = (k % grid,
        k // grid)`` (row-major), the discrete action ``[k % grid, k // grid, decision]``."""
        cells = (2 * torch.arange(self.grid, dtype=torch.float32, device=self.device) + 1) / self.grid - 1
        y, x = torch.meshgrid(cells, cells, indexing="ij")
        return torch.stack([x.flatten(), y.flatten()], dim=1)

    def item_glimpses(self) -> Tensor:
        """Every item's glimpse of what each env shows now: ``(N, K, S, C, g, g)``.

        The retina of the observations, taken at every :meth:`item_centers` of the current canvas (for
        video, the current frame; for Catch, the current screen). Soft item-wise attention reads all of
        them; hard item-wise attention sees only the one its action picks.
        """
        if self._keys is None:
            raise RuntimeError("call reset() before item_glimpses()")
        centers = self.item_centers()
        items, n = len(centers), self.num_envs
        rows = torch.arange(n, device=self.device).repeat_interleave(items)
        glimpses = self._scene.glimpse(centers.repeat(n, 1), self._steps[rows], rows)
        return glimpses.view(n, items, *glimpses.shape[1:])

    @property
    def num_decisions(self) -> int:
        """``D``: the decisions an episode ends with (classes; Catch: the 3 paddle moves)."""
        return self._scene.num_decisions

    @property
    def episode_steps(self) -> int:
        """Steps of every episode (they all end together unless ``max_episode_steps`` truncates)."""
        return self._scene.episode_steps

    def state_dict(self) -> dict[str, Tensor]:
        """The random state between episodes: each env's key and episode count (for exact resumption)."""
        if self._keys is None:
            raise RuntimeError("call reset() before state_dict()")
        if bool((self._steps != 0).any()):
            raise RuntimeError("state_dict() is defined between episodes; finish the current episodes first")
        return {"keys": self._keys.cpu().clone(), "episodes": self._episodes.cpu().clone()}

    def load_state_dict(self, state: dict[str, Tensor]) -> dict[str, Tensor]:
        """Restore :meth:`state_dict` and start those episodes again; returns their first observations."""
        keys, episodes = state["keys"], state["episodes"]
        _require(tuple(keys.shape) == (self.num_envs,) and tuple(episodes.shape) == (self.num_envs,),
                 f"state is for {tuple(keys.shape)} envs; this env has {self.num_envs}")
        self._keys = keys.to(self.device, torch.int64).clone()
        self._episodes = episodes.to(self.device, torch.int64).clone()
        self._start(torch.arange(self.num_envs, device=self.device))
        return self._observe()

    def render(self) -> np.ndarray | None:
        """``(N, H', W', 3)`` uint8: each env's current picture, magnified, with its glimpse windows drawn."""
        if self.render_mode != "rgb_array":
            return None
        return np.stack([self._render_row(i) for i in range(self.num_envs)])

    # ------------------------------------------------------------------ internals
    def _start(self, rows: Tensor) -> None:
        keys, episodes = self._keys[rows], self._episodes[rows]
        if self._test_set_size is not None and self.split == "test":
            # Fixed test set: example j is drawn from (TEST_KEY, j) whatever the seed.
            example = torch.remainder(keys + episodes * self.num_envs, self._test_set_size)
            self._scene.start(rows, torch.full_like(keys, TEST_KEY), example, target=example)
        else:
            self._scene.start(rows, keys, episodes)
        self._steps[rows] = 0
        self._done[rows] = False
        if self.start_mode == "center":
            self._locations[rows] = 0.0
        else:
            self._locations[rows] = (rng.uniform(keys, episodes, _STREAM_START, (2,)) * 2 - 1).to(torch.float32)

    def _observe(self, rows: Tensor | None = None) -> dict[str, Tensor]:
        glimpses = self._scene.glimpse(self._locations, self._steps)
        if rows is not None:
            glimpses = glimpses[rows]
            return {"glimpse": glimpses, "location": self._locations[rows].clone()}
        return {"glimpse": glimpses, "location": self._locations.clone()}

    def _parse_actions(self, actions) -> tuple[Tensor, Tensor]:
        shape = (self.num_envs, *self.single_action_space.shape)
        if isinstance(actions, np.ndarray) or not isinstance(actions, Tensor):
            actions = torch.as_tensor(np.asarray(actions))
        _require(tuple(actions.shape) == shape, f"actions must be {shape}; got {tuple(actions.shape)}")
        actions = actions.to(self.device)
        if self.action_mode == "continuous":
            if not actions.is_floating_point():
                raise TypeError(f"continuous actions must be floating point; got {actions.dtype}")
            _require(bool(torch.isfinite(actions).all()), "actions must be finite; got NaN or inf")
            # Out-of-range locations are clipped to the canvas (documented).
            return actions[:, :2].clamp(-1.0, 1.0).to(torch.float32), actions[:, 2:].argmax(dim=1)
        if actions.is_floating_point() or actions.dtype == torch.bool:
            raise TypeError(f"discrete actions must be integers; got {actions.dtype}")
        high = torch.as_tensor(self.single_action_space.nvec, device=self.device)
        _require(bool(((actions >= 0) & (actions < high)).all()),
                 f"discrete actions must lie in [0, {self.single_action_space.nvec.tolist()}); got out-of-range values")
        cells = actions[:, :2].to(torch.float32)
        return (2 * cells + 1) / self.grid - 1, actions[:, 2].long()

    def _render_row(self, row: int) -> np.ndarray:
        picture = self._scene.frame(row, int(self._steps[row]))
        return render_glimpse(picture, self._locations[row], **self.retina)


WINDOW_COLOURS = ((0, 255, 0), (255, 200, 0), (255, 60, 60), (80, 160, 255))


def _magnified_rgb(picture: Tensor, height_px: int) -> tuple[np.ndarray, int]:
    """``(picture as (H * zoom, W * zoom, 3) uint8, zoom)``: C = 3 in colour, else the channels' grey mean."""
    picture = picture.detach().cpu().float()
    if picture.max() > 1.0:
        picture = picture / 255.0
    zoom = max(1, height_px // picture.shape[-2])
    rgb = picture.permute(1, 2, 0) if picture.shape[0] == 3 else picture.mean(0)[..., None].expand(-1, -1, 3)
    return (np.repeat(np.repeat(rgb.numpy(), zoom, 0), zoom, 1) * 255).astype(np.uint8), zoom


def render_attention(picture: Tensor, *, heat: Tensor | None = None, quads: Tensor | None = None,
                     height_px: int = 160) -> np.ndarray:
    """An RGB picture of ``picture`` with a soft agent's attention: a heat map and/or sampled regions.

    Args:
        picture: ``(C, H, W)`` uint8 or float in [0, 1].
        heat: ``(h, w)`` weights over a grid laid over the whole picture (a spatial attention map, item
            weights), tinted red from clear at its minimum to strongest at its maximum (a uniform map
            shows nothing).
        quads: ``(Q, 4, 2)`` regions the agent sampled, each as its 4 corners ``(x, y)`` in ``[-1, 1]``
            (outer edges, ``align_corners=False``) in drawing order; outlined, blue (first) to red (last).
        height_px: about how tall the returned picture is.

    Returns:
        ``(H * zoom, W * zoom, 3)`` uint8.
    """
    image, zoom = _magnified_rgb(picture, height_px)
    rows, cols = image.shape[:2]
    if heat is not None:
        heat = heat.detach().cpu().float()
        weights = ((heat - heat.min()) / (heat.max() - heat.min()).clamp_min(1e-12)).numpy()
        ys = np.arange(rows) * heat.shape[0] // rows
        xs = np.arange(cols) * heat.shape[1] // cols
        overlay = 0.7 * weights[ys][:, xs, None]  # nearest cell of each output pixel
        red = np.array([255.0, 0.0, 0.0])
        image = (image * (1 - overlay) + red * overlay).round().astype(np.uint8)
    if quads is not None:
        quads = quads.detach().cpu().float().view(-1, 4, 2)
        scale = torch.tensor([cols, rows], dtype=torch.float32)
        for q, corners in enumerate((quads + 1) / 2 * scale):
            mix = q / max(len(quads) - 1, 1)
            colour = (int(255 * mix), 200, int(255 * (1 - mix)))
            for a, b in zip(corners, corners.roll(-1, dims=0)):
                for t in np.linspace(0, 1, 4 * max(rows, cols)):
                    x, y = (a * (1 - t) + b * t).long().tolist()
                    if 0 <= y < rows and 0 <= x < cols:
                        image[y, x] = colour
    return image


def render_glimpse(picture: Tensor, center: Tensor, *, size: int, scales: int = 1, factor: int = 2,
                   height_px: int = 256) -> np.ndarray:
    """An RGB picture of ``picture`` with the retina's windows at ``center`` outlined, finest in green.

    Args:
        picture: ``(C, H, W)`` uint8 or float in [0, 1] (a canvas or video frame); ``C = 3`` is shown in
            colour, any other ``C`` as the grey mean of its channels.
        center: ``(2,)`` glimpse centre ``(x, y)`` in ``[-1, 1]`` (outer edges, ``align_corners=False``).
        size, scales, factor: the retina, as in :func:`glimpse.extract_glimpses`.
        height_px: about how tall the returned picture is (nearest-neighbour magnified, integer zoom).

    Returns:
        ``(H * zoom, W * zoom, 3)`` uint8.
    """
    image, zoom = _magnified_rgb(picture, height_px)
    height, width = picture.shape[-2:]
    corners = window_corners_px(center.detach().cpu().view(1, 2).float(), height, width, size=size,
                                scales=scales, factor=factor)[0]
    for k, (x0, y0) in enumerate(corners.tolist()):
        _draw_box(image, x0 * zoom, y0 * zoom, size * factor**k * zoom, WINDOW_COLOURS[k % len(WINDOW_COLOURS)])
    return image


def render_path(picture: Tensor, centers: Tensor, *, size: int, scales: int = 1, factor: int = 2,
                height_px: int = 256) -> np.ndarray:
    """An RGB picture of ``picture`` with a glimpse path: each step's finest window, blue (first) to red (last),
    joined centre to centre; the last step's coarser windows are outlined too.

    Args:
        picture: ``(C, H, W)`` uint8 or float in [0, 1].
        centers: ``(T, 2)`` glimpse centres ``(x, y)`` in ``[-1, 1]``, in the order they were taken.
        size, scales, factor: the retina, as in :func:`glimpse.extract_glimpses`.
        height_px: about how tall the returned picture is.

    Returns:
        ``(H * zoom, W * zoom, 3)`` uint8.
    """
    centers = centers.detach().cpu().float().view(-1, 2)
    image = render_glimpse(picture, centers[-1], size=size, scales=scales, factor=factor, height_px=height_px)
    height, width = picture.shape[-2:]
    zoom = image.shape[0] // height
    corners = window_corners_px(centers, height, width, size=size)[:, 0]  # (T, 2)
    points = ((centers + 1) / 2 * torch.tensor([width, height]) * zoom).numpy()
    steps = len(centers)
    for t in range(steps):
        mix = t / max(steps - 1, 1)
        colour = (int(255 * mix), 80, int(255 * (1 - mix)))
        x0, y0 = corners[t].tolist()
        _draw_box(image, x0 * zoom, y0 * zoom, size * zoom, colour)
        if t > 0:  # the saccade from the previous centre, as dots
            for a in np.linspace(0, 1, 2 * zoom * 8):
                x, y = (points[t - 1] * (1 - a) + points[t] * a).astype(int)
                if 0 <= y < image.shape[0] and 0 <= x < image.shape[1]:
                    image[y, x] = colour
    return image


def _draw_box(image: np.ndarray, x0: int, y0: int, side: int, colour: tuple[int, int, int]) -> None:
    """Outline a square in place, clipped to the image (part of a window may lie off the canvas)."""
    height, width = image.shape[:2]
    x1, y1 = x0 + side - 1, y0 + side - 1
    xa, xb, ya, yb = max(x0, 0), min(x1, width - 1), max(y0, 0), min(y1, height - 1)
    if xa > xb or ya > yb:
        return
    for y in (y0, y1):
        if 0 <= y < height:
            image[y, xa : xb + 1] = colour
    for x in (x0, x1):
        if 0 <= x < width:
            image[ya : yb + 1, x] = colour


class GlimpseEnv(gym.Env):
    """A single glimpse episode: the ``N = 1`` case of :class:`GlimpseVectorEnv`, numpy in and out.

    Takes the same keyword arguments as :class:`GlimpseVectorEnv` (but ``num_envs``). See the module
    docstring for the spaces, rewards and episode end.
    """

    metadata = {"render_modes": ["rgb_array"], "render_fps": 4}

    def __init__(self, **kwargs: Any) -> None:
        _require("num_envs" not in kwargs, "GlimpseEnv is a single env; use gymnasium.make_vec for num_envs")
        self._vec = GlimpseVectorEnv(1, _autoreset=False, **kwargs)
        self.render_mode = self._vec.render_mode
        self.observation_space = self._vec.single_observation_space
        self.action_space = self._vec.single_action_space

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        if seed is None and self._vec._keys is None:
            # First reset without a seed: draw the key from this env's np_random.
            seed = int(self.np_random.integers(2**62))
        obs, _ = self._vec.reset(seed=seed, options=options)
        return _unbatch(obs), {}

    def step(self, action):
        action = np.asarray(action)
        obs, reward, terminated, truncated, info = self._vec.step(action[None])
        info = {k: v[0].item() for k, v in info.items() if not k.startswith("_") and bool(info[f"_{k}"][0])}
        return _unbatch(obs), float(reward[0]), bool(terminated[0]), bool(truncated[0]), info

    def render(self) -> np.ndarray | None:
        frames = self._vec.render()
        return None if frames is None else frames[0]

    def close(self) -> None:
        self._vec.close()


def _unbatch(obs: dict[str, Tensor]) -> dict[str, np.ndarray]:
    return {k: v[0].detach().cpu().numpy().astype(np.float32, copy=True) for k, v in obs.items()}


def _require(condition: bool, message: str) -> None:
    if not condition:
        raise ValueError(message)


def _is_positive_int(value: object) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool) and value >= 1
