"""Glimpse environments: look at a digit canvas, a photo, a video or Catch through a moving multi-scale retina.

One implementation: :class:`GlimpseVectorEnv` steps ``N`` episodes at once as torch tensors (CPU or CUDA),
taking every glimpse through :class:`glimpse.GlimpseSensor` / :func:`glimpse.extract_glimpses`.
:class:`GlimpseEnv` is its ``N = 1`` case with numpy in and out, for ``gymnasium.make`` and checkers.

## Description
The task is data: a :class:`envs.TaskSpec` of :data:`envs.TASKS` (see :mod:`envs.specs`) says what kind of
episode it is, what decision ends it, its options and how its scenes are built. Still tasks (``mnist``,
``translated``, ``cluttered``, ``small``, ``folder`` and their presets such as ``cluttered-60``) show one
canvas per episode; the agent moves its glimpse ``num_glimpses`` times and names the class at the last
step (RAM's reward, Mnih et al. 2014). ``small`` puts a shrunk digit (14 px by default) on a large canvas
(100 px), so that a glimpse must zoom in to read it; ``folder`` shows the pictures of a user's
ImageFolder-style directory (``data_dir``, e.g. CUB-200), resized to ``canvas x canvas`` RGB. Video tasks
(``moving-mnist``, ``video``) glimpse frame ``t`` at step ``t`` and name the target at the end. ``catch``
is RAM's dynamic game (:mod:`envs.catch`): each action moves the paddle and the glimpse together. What an
agent needs to know about the task it reads from the env's typed properties (``task_spec``, ``is_still``,
``decision``, ``start_mode``, ``action_mode``), never from its name.

## Action Space
``action_mode="continuous"`` (default): ``Box(-1, 1, (2 + D,), float32)``. ``action[:2]`` is the next
glimpse centre ``(x, y)``, normalized (the convention of :mod:`glimpse`; values outside ``[-1, 1]`` are
clipped to the canvas). ``action[2:]`` are ``D`` decision scores whose argmax is the decision: the class (``D`` = number
of classes) or, in Catch, the paddle move (``D = 3``: left, stay, right).

``action_mode="discrete"``: ``MultiDiscrete([grid, grid, D])``: the glimpse moves to the centre of grid
cell ``(column, row)`` of a ``grid x grid`` partition of the canvas (these cells are the "items" of
item-wise hard attention), and the third entry is the decision.

## Observation Space
``Dict(glimpse=Box(0, 1, (S, C, g, g), float32), location=Box(-1, 1, (2,), float32))``: the retina's
``S`` scales of ``g x g`` pixels (scale ``k`` covers ``g * factor**k`` canvas pixels, area-averaged) and
the centre it was taken at. With ``gist=G`` (still tasks) also ``gist=Box(0, 1, (C, G, G), float32)``: the
whole canvas area-averaged to ``G x G`` (:func:`glimpse.coarse_view`), the same at every step of an episode --
the low-resolution view of DRAM's context network (Ba et al. 2015).

## Rewards
``reward_mode="final"`` (default). Classification and video: 1 at the last step if the decision equals the
label, else 0 (0 at every other step; decisions before the last step are ignored). Catch: 1 when the ball
reaches the bottom row on the paddle, else 0.

Per-step prediction (classification and video; Catch has no label and refuses them): every step's decision
scores are the logits of a prediction (a discrete decision ``d`` stands for the box's corner whose argmax it
is: +1 at ``d``, -1 elsewhere), and step ``t`` is rewarded by what :mod:`glimpse.rewards` defines (shared
with agents that predict at every step), from ``log p_t(y)``, the log-probability the prediction gives the
label ``y``:

- ``reward_mode="log_prob"``: ``log p_t(y)``, the negative cross-entropy (Active Perception Gym's reward,
  there divided by ``log D``): the return rewards knowing the class early and all along.
- ``reward_mode="log_prob_gain"``: ``log p_t(y) - log p_{t-1}(y)``, with ``log p_0(y) = -log D``: each step is
  credited with what it added; the undiscounted return telescopes to ``log p_T(y) + log D``.

The box bounds the logits (scores outside it are clipped to it, as locations are; the decision is still the
argmax of the scores given): its corner on the right class and its corner on a wrong one differ by 2 nats
(10 classes: ``log p_t(y)`` -0.80 and -2.80; the uniform guess -2.30), the same order as the final 1. Scores
scaled up to near-sure predictions (logits ``5 * scores``: -0.0004 and -10.0) made SB3's PPO learn far more
slowly on MNIST, its value loss (on features shared with the policy) hundreds of times the final mode's
(docs/results.md, per-step prediction rewards with Stable-Baselines3).

Both keep the final mode's 1 for a right decision at the last step: accuracy at the end is the task, and the
dense terms shape the way there rather than replace it (log-probability and accuracy can disagree: the first
pays for hedging between likely classes); the per-step return is the final mode's plus the dense terms. The
label is in every step's info (``info["label"]``; in the vector env ``infos["label"]`` masked by
``infos["_label"]`` for the envs that played the step; in ``SAME_STEP`` mode an ended episode's in
``infos["final_info"]``, as always).

## Starting State
A new canvas/video/game drawn from the env's seed; the first glimpse at the canvas centre
(``start="center"``) or uniformly random in ``[-1, 1]^2`` (``start="random"``, default).

## Episode End
Termination: after ``num_glimpses`` steps (classification: the observation after ``reset`` is the first
glimpse, so the agent has seen ``num_glimpses`` glimpses when it decides; the last step's location only
produces the final observation), after ``frames`` steps (video), or when the ball reaches the bottom
row (Catch, ``canvas - 1`` steps). Truncation: at ``max_episode_steps`` if given. The label (or
``caught``) is in the step's info when an episode ends (``info["label"]``, ``info["caught"]``), and whether
the episode succeeded (the right class, or the ball caught) as ``info["is_success"]``, in every reward mode:
Stable-Baselines3 logs its mean as ``rollout/success_rate``.

``gym.make(id, max_episode_steps=T)`` is not the env's argument: Gymnasium keeps it for its ``TimeLimit``
wrapper, outside the env, so the env never sees that truncation and the step's info has no ``label`` or
``is_success`` (SB3's success rate, through ``DummyVecEnv``, then leaves those episodes out, where the vector
env counts them as failures). ``GlimpseEnv(task=..., max_episode_steps=T)`` truncates in the env and writes both.

## Autoreset (the vector env)
``gym.make_vec(id, num_envs=N, autoreset_mode=AutoresetMode.X)`` picks Gymnasium's mode, declared in
``metadata["autoreset_mode"]``; each has Gymnasium's exact semantics (https://farama.org/Vector-Autoreset-Mode):

- ``NEXT_STEP`` (default, as in Gymnasium): the step that ends env ``i``'s episode returns its final
  observation, and the label in the top-level infos (``infos["label"]`` with mask ``infos["_label"]``). The
  next step is the reset step: its action for env ``i`` is ignored, and it returns the first observation of
  the next episode with reward 0, ``terminated`` and ``truncated`` False and no label.
- ``SAME_STEP``: the step that ends env ``i``'s episode already returns the next episode's first
  observation; the final observation is in ``infos["final_obs"]`` and the label in
  ``infos["final_info"]["label"]`` (each with its ``_`` mask). Stable-Baselines3 (``envs.sb3``) and the
  agents of :mod:`agents` need this mode: every step is a real transition.
- ``DISABLED``: an ended env must be reset (``reset(options={"reset_mask": mask})`` resets only the envs of
  the ``(N,)`` bool mask, which needs a True entry, as in Gymnasium) before it is stepped again.

Both modes play the same episodes from the same seed; only where the reset shows differs. A single env has
no autoreset: ``gym.make(id, autoreset_mode=...)`` is refused (it is a vector-env option).

## Arrays (the vector env)
``arrays="torch"`` (default, the fast path: no copies, on ``device``): observations, rewards,
terminations and infos are torch tensors. ``arrays="numpy"``: the same values as numpy arrays, with
infos exactly as Gymnasium's own vector envs write them (in ``SAME_STEP`` mode ``infos["final_obs"]`` is
an object array of per-env observations), so every Gymnasium vector wrapper that applies to a Dict
observation works on it (``RecordEpisodeStatistics``, ``NormalizeReward``, ``FlattenObservation``,
``DictInfoToList``, ...). For torch episode statistics, see :class:`envs.wrappers.RecordEpisodeStatistics`.
A single env is numpy in and out, its step infos numpy scalars (``np.int64`` labels, ``np.bool_`` ``caught``);
it takes ``arrays="numpy"`` (as ``gym.make_vec(id, vectorization_mode="sync", arrays="numpy")`` passes it on)
and refuses ``arrays="torch"``.

## Seeding
Every random number is a counter-based hash of (seed, episode, draw): env ``i`` of
``make_vec(num_envs=N)`` reset with seed ``s`` plays exactly the episodes of a single env reset with
seed ``s + i``, on any device. In ``split="test"`` the canvases form a fixed test set: episode ``e`` of
env ``i`` shows test example ``j = (s + i + e * N) mod M`` (``M`` = test digits, pictures or user videos): test
digit ``j`` (for ``folder``: test picture ``j``, ``files[j]`` of :func:`envs.data.load_image_folder`) on a
canvas (position, clutter, motion) drawn from ``j`` alone, the same whatever the seed or device, so ``N``
envs over ``ceil(M / N)`` episodes each see every test example exactly once. ``split="val"`` (with
``val_size``: items held out of the training split, ``envs.data.hold_out``) is a fixed set the same way, its
canvases drawn from a key of its own.

Seeds follow Gymnasium's rules: ``reset(seed=...)`` takes ``None``, an int, or (the vector env) a list of
``N`` ints or ``None`` entries, where ``None`` leaves that env unseeded (it plays on; at the first reset it gets
a random key). An int may be a numpy integer; it must lie in ``[0, 2**64)`` (the keys are 64-bit), and for the
vector env so must ``s + N - 1``. Negative seeds, bools, floats, strings, tensors and arrays are refused with a
``TypeError`` or ``ValueError`` naming what arrived.

## Arguments
See :class:`GlimpseVectorEnv` (the retina, modes, ``reward_mode``, data source and device) and the task's
options dataclass in
:mod:`envs.specs` (``canvas``, ``num_glimpses``, ``distractors``, ``frames``, ...).

The retina is one value, a :class:`glimpse.RetinaSpec` (``retina=``, or built from ``glimpse_size``,
``scales`` and ``factor``), which the env exposes as ``env.retina`` and hands unchanged to its scene and sensor.

Two limits are checked when an env is made, before anything large is allocated. The retina must fit the
canvas (:meth:`glimpse.RetinaSpec.check_canvas`), checked before any data are loaded (for a user's videos,
whose frames set the canvas, once they are read): a glimpse no larger than the canvas, and no scale beyond
the first whose window covers the whole canvas from any glimpse centre (a side of ``2 * max(H, W)``): the
scales above it would add only padding (on the 28 px MNIST canvas, 8 px glimpses allow up to 4 scales,
8 to 64 px). Its refusal is a :class:`glimpse.RetinaError` (a ``ValueError``) whose ``field`` names the
argument. And the env's buffers, estimated (pictures or videos, the retina's planes or windows, a batch of
glimpses; :meth:`GlimpseVectorEnv.item_glimpses` is checked when called), must fit in the memory available
on its device now (CPU: Linux's ``MemAvailable``, else the physical memory; CUDA: the free memory). Either
refusal is a one-line ``ValueError`` that says what it would take.

## Version History
- v0: initial release.
- v0 (same episodes): the task is a :class:`envs.TaskSpec` with its own options; each preset the scripts
  take (``translated-60``, ``cluttered-60``, ``cluttered-100``, ``small-100``) and ``video`` got an id.
- v0 (same episodes): the vector env takes ``autoreset_mode`` (default ``NEXT_STEP``, Gymnasium's; it was
  always ``SAME_STEP`` before, so pass ``autoreset_mode=AutoresetMode.SAME_STEP`` for the old behaviour) and
  ``arrays`` (``"torch"`` or ``"numpy"``).
- v0 (same episodes, same rewards by default): ``reward_mode`` (``"final"``, default, as before;
  ``"log_prob"``, ``"log_prob_gain"``: per-step prediction rewards with the label in every step's info).
- v0 (same episodes): the retina is a :class:`glimpse.RetinaSpec`, ``env.retina`` (a dict before), and the env
  takes it as ``retina=`` beside the keywords; its fit to the canvas is checked before the data are loaded.
- v0 (fixes): per-step rewards clip the decision scores to the box (a score beyond it counted in full); the
  fixed splits show example ``seed mod M`` also for seeds from ``2**63`` (another example before).
"""

from __future__ import annotations

import math
import os
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from gymnasium import spaces
from gymnasium.utils import seeding
from gymnasium.vector import AutoresetMode, VectorEnv
from gymnasium.vector.utils import batch_space
from torch import Tensor

from envs import rng
from envs.render import render_glimpse
from envs.specs import TASKS, SceneContext, TaskSpec, task_of
from glimpse import RetinaError, RetinaSpec, coarse_view, grid_cell_centers, retina_spec
from glimpse.checks import ArgumentError, check_device, check_int
from glimpse.modes import outside_inference_mode
from glimpse.rewards import PREDICTION_REWARDS, label_log_prob, prediction_reward, uniform_log_prob

__all__ = ["GlimpseVectorEnv", "GlimpseEnv", "TEST_KEY", "VAL_KEY", "SPLITS", "ACTION_MODES", "START_MODES", "ARRAYS", "REWARD_MODES"]

ACTION_MODES = ("continuous", "discrete")
REWARD_MODES = ("final", *PREDICTION_REWARDS)
START_MODES = ("random", "center")
ARRAYS = ("torch", "numpy")
# The env's keyword argument for each field of glimpse.RetinaSpec (the names its errors use).
_RETINA_KEYWORDS = {"size": "glimpse_size", "scales": "scales", "factor": "factor"}
SPLITS = ("train", "val", "test")
# The keys that draw the test and validation splits' canvases: fixed, so they are the same for every seed.
TEST_KEY = 0x7E57
VAL_KEY = 0x7A1
# Streams of the env's own draws, apart from the task generators' (envs.tasks uses 100-199): sharing one
# would tie the draws together (stream 101 is the target's corner, so the start would point at the digit).
_STREAM_START = 1000


class GlimpseVectorEnv(VectorEnv):
    r"""``N`` glimpse episodes stepped together as torch tensors; see the module docstring.

    Observations, rewards, terminations and infos are torch tensors on ``device`` (numpy arrays with
    ``arrays="numpy"``); actions may be torch tensors or numpy arrays ``(N, ...)``.

    Autoreset is Gymnasium's ``NEXT_STEP`` unless ``autoreset_mode`` says otherwise: it is Gymnasium's
    default, the mode its vector wrappers assume when nothing is declared and the only one some of them
    take (``NormalizeObservation``), so a Gymnasium user gets what ``gym.make_vec("CartPole-v1")`` gives.
    Code that treats every step as a transition (SB3 through ``envs.sb3``, the agents of :mod:`agents`)
    asks for ``SAME_STEP`` explicitly. See the module docstring for both modes.

    The env's own arguments are the retina, the action and start modes, where the data come from and the
    device; everything else is the task's: ``task`` names a :class:`envs.TaskSpec` of :data:`envs.TASKS`
    (or is one), and its options come as a ready options dataclass (``options``) and/or as keyword
    arguments (``**task_options``), validated by that dataclass. ``gym.make(id, ...)`` and
    ``gym.make_vec(id, num_envs=N, ...)`` pass both kinds of keyword argument here.

    Args:
        num_envs: number of parallel episodes ``N``.
        task: a task's short name, registered id, or :class:`envs.TaskSpec`.
        options: the task's options (an instance of the type of ``task.options``); default: the task's.
        retina: the retina, a :class:`glimpse.RetinaSpec` (exposed as ``env.retina``); or its fields by
            keyword, not both:
        glimpse_size: retina side ``g`` in pixels (default 8).
        scales: retina scales ``S`` (default 1).
        factor: window growth per scale (default 2).
        action_mode: ``"continuous"`` or ``"discrete"``.
        grid: cells per axis in discrete mode (default ``max(2, ceil(canvas / glimpse_size))``).
        start: ``"random"`` or ``"center"``: where the first glimpse is taken.
        gist: also observe the whole canvas at ``gist x gist`` (``obs["gist"]``, :func:`glimpse.coarse_view`; still
            tasks, ``gist`` dividing the canvas); 0 (default): no such view.
        split: ``"train"``, ``"val"`` (with ``val_size``) or ``"test"``.
        val_size: hold this many items of the training split out as a validation split (a fixed choice,
            the same for every seed: ``envs.data.hold_out``): ``split="train"`` then plays the others and
            ``split="val"``, like ``"test"``, a fixed set of the held-out ones. 0 (default): none.
        dataset: ``"mnist"`` or ``"fashion-mnist"`` (see ``envs.data.load_digits``), for the digit tasks.
        data_dir: folder with IDX files (else ``$GLIMPSE_DATA_DIR`` and the default sources); for
            ``task="folder"`` (required) the root of the image folder (see ``envs.data.load_image_folder``).
        device: torch device of every tensor: ``cpu``, ``cuda[:N]`` or ``mps``, present on this machine.
        render_mode: ``None`` or ``"rgb_array"``.
        max_episode_steps: truncate episodes at this many steps.
        autoreset_mode: Gymnasium's ``AutoresetMode`` (or its value, e.g. ``"SameStep"``): ``NEXT_STEP``
            (default), ``SAME_STEP`` or ``DISABLED``.
        arrays: ``"torch"`` (default: tensors on ``device``) or ``"numpy"`` (numpy arrays and Gymnasium's
            own info layout, for numpy-based wrappers and tools).
        reward_mode: ``"final"`` (default: 0/1 at the last step) or a per-step prediction reward,
            ``"log_prob"`` or ``"log_prob_gain"`` (classification tasks only); see the module's Rewards.
        **task_options: the task's options by name (``canvas``, ``num_glimpses``, ``distractors``,
            ``frames``, ...: the fields of the task's options dataclass, e.g. :class:`envs.ClutteredOptions`);
            ``None`` means the task's default. An option of another task is a ``ValueError`` that names the
            tasks taking it.
    """

    # The class's default; each instance declares its own mode in self.metadata.
    metadata = {"render_modes": ["rgb_array"], "autoreset_mode": AutoresetMode.NEXT_STEP, "render_fps": 4}

    def __init__(
        self,
        num_envs: int = 1,
        *,
        task: str | TaskSpec = "cluttered",
        options: Any = None,
        retina: RetinaSpec | None = None,
        glimpse_size: int | None = None,
        scales: int | None = None,
        factor: int | None = None,
        action_mode: str = "continuous",
        grid: int | None = None,
        start: str = "random",
        gist: int = 0,
        split: str = "train",
        val_size: int = 0,
        dataset: str = "mnist",
        data_dir: str | None = None,
        device: str | torch.device = "cpu",
        render_mode: str | None = None,
        max_episode_steps: int | None = None,
        autoreset_mode: AutoresetMode | str = AutoresetMode.NEXT_STEP,
        arrays: str = "torch",
        reward_mode: str = "final",
        **task_options: Any,
    ) -> None:
        spec = task_of(task)
        _require(reward_mode in REWARD_MODES, f"reward_mode must be one of {REWARD_MODES}; got {reward_mode!r}")
        _require(reward_mode == "final" or spec.decision == "classify",
                 f"reward_mode={reward_mode!r} scores a class prediction at every step; task {spec.name!r} has no "
                 f"label (its decision is {spec.decision!r}): use reward_mode='final'")
        autoreset_mode = _autoreset_mode(autoreset_mode)
        _require(arrays in ARRAYS, f"arrays must be one of {ARRAYS}; got {arrays!r}")
        _require(action_mode in ACTION_MODES, f"action_mode must be one of {ACTION_MODES}; got {action_mode!r}")
        _require(start in START_MODES, f"start must be 'random' or 'center'; got {start!r}")
        _require(render_mode in (None, "rgb_array"), f"render_mode must be None or 'rgb_array'; got {render_mode!r}")
        _require(split in SPLITS, f"split must be one of {SPLITS}; got {split!r}")
        check_int(val_size, "val_size", minimum=0)
        check_int(gist, "gist", minimum=0)
        _require(not gist or spec.is_still, f"gist={gist}: a coarse view of the whole canvas is for still-image tasks; "
                                            f"task {spec.name!r} is a {spec.kind}")
        _require(split != "val" or val_size > 0, "split='val' is held out of the training split: pass val_size > 0")
        check_int(num_envs, "num_envs")
        retina, retina_names = _retina_of(retina, glimpse_size, scales, factor)
        if max_episode_steps is not None:
            check_int(max_episode_steps, "max_episode_steps")
        self._spec, self._options = spec, spec.configure(options, **task_options)
        # The retina must fit the canvas: checked before any data are loaded wherever the options say the
        # canvas (every task but a user's videos, whose frames say it).
        side = getattr(self._options, "canvas", None)
        if side is not None:
            _check_fit(retina, retina_names, side, side)
            _check_gist(gist, side, side)

        self.num_envs = num_envs
        self.split, self._start_mode, self._action_mode = split, start, action_mode
        self.device = check_device(device)
        self.render_mode = render_mode
        self.max_episode_steps = max_episode_steps
        self.autoreset_mode = autoreset_mode
        self.metadata = {**type(self).metadata, "autoreset_mode": self.autoreset_mode}
        self.arrays = arrays
        self._reward_mode = reward_mode
        self.retina = retina
        context = SceneContext(retina, self.device, split, dataset, data_dir, val_size=val_size)
        from envs.data.records import recording  # here: Catch and user videos load no data set

        with recording() as loaded:
            self._scene = spec.build(self._options, context)
        if val_size and split != "test" and not any(d.split == split for d in loaded):
            raise ArgumentError("val_size", f"{{name}}{{=}}{val_size}: task {spec.name!r} loads no training split to "
                                            f"hold items out of")
        channels, height, width = self._scene.shape
        if (height, width) != (side, side):  # the frames' own size (user videos), or a task of another shape
            _check_fit(retina, retina_names, height, width)
            _check_gist(gist, height, width)
        self.gist = gist
        glimpse_size, scales = retina.size, retina.scales
        # Refuse now, in one line, what could not fit: the scene's buffers are made at the first reset. Beside
        # them, a copy of the observations (numpy, clones) and the batched observation space's bounds (float32
        # low and high, and two bool masks, per glimpse entry).
        glimpses = num_envs * scales * channels * glimpse_size**2 * (4 + 2 * 4 + 2)
        need = self._scene.memory_bytes(num_envs, self.device) + glimpses
        _check_memory(need, self.device, f"this env ({num_envs} envs x {need / num_envs / 2**20:.2f} MiB: pictures, "
                                         f"the retina's buffers, glimpses)")
        self.canvas_shape = self._scene.shape
        self.grid = grid if grid is not None else max(2, math.ceil(max(height, width) / glimpse_size))
        check_int(self.grid, "grid")

        decisions = self._scene.num_decisions
        if action_mode == "continuous":
            self.single_action_space = spaces.Box(-1.0, 1.0, (2 + decisions,), np.float32)
        else:
            self.single_action_space = spaces.MultiDiscrete([self.grid, self.grid, decisions])
        self.single_observation_space = spaces.Dict(
            glimpse=spaces.Box(0.0, 1.0, (scales, channels, glimpse_size, glimpse_size), np.float32),
            location=spaces.Box(-1.0, 1.0, (2,), np.float32),
            **({"gist": spaces.Box(0.0, 1.0, (channels, gist, gist), np.float32)} if gist else {}),
        )
        self.action_space = batch_space(self.single_action_space, num_envs)
        self.observation_space = batch_space(self.single_observation_space, num_envs)

        self._keys: Tensor | None = None
        self._episodes = torch.zeros(num_envs, dtype=torch.int64, device=self.device)
        self._steps = torch.zeros(num_envs, dtype=torch.int64, device=self.device)
        self._locations = torch.zeros(num_envs, 2, dtype=torch.float32, device=self.device)
        self._gists = torch.zeros(num_envs, channels, gist, gist, dtype=torch.float32, device=self.device)
        # The envs whose episode has ended and not restarted yet (NEXT_STEP: restarted at the next step;
        # DISABLED: at reset), and whether there are any, known without another device sync.
        self._done = torch.zeros(num_envs, dtype=torch.bool, device=self.device)
        self._any_done = False
        # Per-step reward modes: log p(label) of each env's last prediction (read at step 2 on: step 1's
        # previous prediction is the uniform one).
        self._log_prob = torch.zeros(num_envs, dtype=torch.float32, device=self.device)

    # ------------------------------------------------------------------ what agents read
    @property
    def task_spec(self) -> TaskSpec:
        """The task this env runs (its kind, decision, options' defaults; see :class:`envs.TaskSpec`)."""
        return self._spec

    @property
    def task_options(self) -> Any:
        """The task's options in effect (an instance of the type of ``task_spec.options``)."""
        return self._options

    @property
    def is_still(self) -> bool:
        """Whether each episode shows one still, labelled picture (``env.scene()`` gives ``(N, C, H, W)``)."""
        return self._spec.is_still

    @property
    def decision(self) -> str:
        """What the last action's decision scores choose: ``"classify"`` (a class) or ``"paddle"`` (Catch)."""
        return self._spec.decision

    @property
    def start_mode(self) -> str:
        """Where each episode's first glimpse is: ``"random"`` or ``"center"``."""
        return self._start_mode

    @property
    def action_mode(self) -> str:
        """``"continuous"`` (locations in ``[-1, 1]``) or ``"discrete"`` (grid cells)."""
        return self._action_mode

    @property
    def reward_mode(self) -> str:
        """``"final"`` (0/1 at the last step) or a per-step prediction reward (``"log_prob"``, ``"log_prob_gain"``)."""
        return self._reward_mode

    # ------------------------------------------------------------------ gymnasium API
    # The env's state (pictures, steps, locations) is updated in place from call to call, so reset and
    # step always make it as normal tensors, also when called under torch.inference_mode.
    @outside_inference_mode
    def reset(self, *, seed: int | list[int | None] | None = None, options: dict | None = None):
        """Start new episodes in every env. ``seed`` follows Gymnasium's vector envs:

        - ``None``: the envs play on from their keys (their next episodes); at the first reset, random keys.
        - an int ``s`` (or numpy integer): env ``i`` gets the key ``s + i`` and plays the episodes of a single
          env seeded ``s + i``; ``s + N - 1`` must be below ``2**64`` (the keys are 64-bit).
        - a list (or tuple) of ``N`` entries, each an int in ``[0, 2**64)`` (env ``i``'s key) or ``None``
          (env ``i`` is not re-seeded: it plays on from its key; at the first reset, a random key).

        Anything else (negative or too large ints, bools, floats, strings, tensors, lists of another length) is
        refused with a ``TypeError`` or ``ValueError`` that names what arrived.

        ``options={"reset_mask": mask}`` (``(N,)`` bool, numpy or torch, with at least one True entry, as
        Gymnasium requires) starts new episodes in the envs of ``mask`` only (Gymnasium's partial reset, for
        ``DISABLED`` autoreset); the other envs play on.
        """
        mask = None if options is None else options.get("reset_mask")
        if mask is not None:
            mask = torch.as_tensor(np.asarray(mask) if not isinstance(mask, Tensor) else mask, device=self.device)
            _require(mask.dtype == torch.bool and tuple(mask.shape) == (self.num_envs,),
                     f"options['reset_mask'] must be a ({self.num_envs},) bool array; "
                     f"got {mask.dtype} {tuple(mask.shape)}")
            _require(seed is None, "reset with options['reset_mask'] takes no seed: the masked envs play on from theirs")
            _require(self._keys is not None, "the first reset() resets every env: call it without reset_mask")
            rows = mask.nonzero().flatten()
            _require(len(rows) > 0, "options['reset_mask'] must have at least one True entry (as in Gymnasium's "
                                    "vector envs); got all False")
            self._episodes[rows] += 1
            self._start(rows)
            self._any_done = bool(self._done.any())
            return self._output(self._observe(), {})
        if seed is None:
            if self._keys is None:
                self._np_random, drawn = seeding.np_random(None)
                self._keys = rng.keys_from_seed(int(drawn) % 2**62, self.num_envs, self.device)
            else:
                self._episodes += 1
        elif isinstance(seed, (list, tuple)):
            self._reseed([None if s is None else rng.check_seed(s, f"seed[{i}]") for i, s in enumerate(seed)])
        else:
            seed = rng.check_seed(seed, expected=f"an int, None or a list of {self.num_envs} ints/None (numpy integers "
                                                 f"too)")
            self._keys = rng.keys_from_seed(seed, self.num_envs, self.device)
            self._np_random, _ = seeding.np_random(seed)
            self._episodes.zero_()
        rows = torch.arange(self.num_envs, device=self.device)
        self._start(rows)
        self._any_done = False
        return self._output(self._observe(), {})

    @outside_inference_mode
    def step(self, actions):
        if self._keys is None:
            raise RuntimeError("call reset() before step()")
        mode = self.autoreset_mode
        if mode == AutoresetMode.DISABLED and self._any_done:
            raise RuntimeError("the episode has ended: call reset() before step() (autoreset is disabled; "
                               "reset(options={'reset_mask': mask}) restarts only the envs of mask)")
        locations, decisions = self._parse_actions(actions)
        # NEXT_STEP: the envs that ended at the last step spend this step on their reset.
        resetting = self._done.clone() if mode == AutoresetMode.NEXT_STEP and self._any_done else None
        self._steps += 1
        if resetting is None:
            rewards, terminated = self._scene.advance(decisions, self._steps)
        else:
            rewards, terminated = self._scene.advance(decisions, self._steps, active=~resetting)
        outcome, labels = rewards, None  # outcome: the task's own reward, whether the episode succeeded
        if self.reward_mode != "final":  # this step's prediction, scored before a reset replaces the labels
            gains, labels = self._prediction_rewards(actions, decisions)
            rewards = rewards + gains
        self._locations = locations
        if resetting is not None:
            rows = resetting.nonzero().flatten()
            self._episodes[rows] += 1
            self._start(rows)  # steps 0, the start location, the next episode's picture
            rewards, terminated = rewards.masked_fill(resetting, 0.0), terminated & ~resetting
        obs = self._observe()
        truncated = torch.zeros_like(terminated)
        if self.max_episode_steps is not None:
            truncated = (self._steps >= self.max_episode_steps) & ~terminated
        done = terminated | truncated
        infos: dict[str, Any] = {}
        self._any_done = bool(done.any())
        if self._any_done:
            # is_success: Stable-Baselines3's name (its rollout/success_rate), right in every reward mode.
            info = {**self._scene.final_info(outcome), "is_success": outcome > 0}
            info.update({f"_{k}": done for k in list(info)})
            if mode == AutoresetMode.SAME_STEP:
                infos = {"final_obs": {k: v.clone() for k, v in obs.items()}, "_final_obs": done,
                         "final_info": info, "_final_info": done}
                rows = done.nonzero().flatten()
                self._episodes[rows] += 1
                self._start(rows)
                fresh = self._observe(rows)
                for key in obs:
                    obs[key][rows] = fresh[key]
                self._any_done = False
            else:
                infos = info
                self._done = done
        if labels is not None:  # per-step rewards: the label of every step played (in SAME_STEP an ended
            # episode's is in final_info, as the top level holds the next episode's reset info)
            played = torch.ones_like(done) if resetting is None else ~resetting
            infos.update(label=labels, _label=played & ~done if mode == AutoresetMode.SAME_STEP else played)
        return self._output(obs, infos, rewards, terminated, truncated)

    def scene(self) -> tuple[Tensor, Tensor | None]:
        """What the current episodes show, without a retina: for full-image baselines and plots.

        Returns ``(pictures, labels)``: canvases ``(N, C, H, W)`` (uint8 for the digit and folder tasks) for
        classification, the videos ``(N, T, C, H, W)`` for video tasks, the current screens for Catch
        (``labels`` None there). These are the env's own tensors, overwritten in place when episodes
        restart: clone what must outlive the current episodes.
        """
        return self._scene.contents()

    def item_centers(self) -> Tensor:
        """``(K, 2)`` the centres ``(x, y)`` in ``[-1, 1]`` of the ``K = grid * grid`` cells of the discrete
        action mode, the items of item-wise attention: item ``k`` is cell ``(column, row) = (k % grid,
        k // grid)`` (row-major), the discrete action ``[k % grid, k // grid, decision]``."""
        return grid_cell_centers(self.grid, device=self.device)

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
        # One glimpse per item and env: float32 means and their int64 entries (as the observations' retina).
        s, c, g = self.single_observation_space["glimpse"].shape[:3]
        _check_memory(n * items * s * g * g * (4 * c + 8 * (1 + c)), self.device,
                      f"item_glimpses() ({n} envs x {items} items x {s} scales of {c} x {g} x {g})")
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
        for name, value in (("keys", keys), ("episodes", episodes)):
            # A cast would silently turn float keys into other episodes (and the 64-bit keys lose bits as floats).
            _require(isinstance(value, Tensor) and value.dtype == torch.int64,
                     f"state[{name!r}] must be an int64 tensor, as state_dict() gives; got "
                     f"{value.dtype if isinstance(value, Tensor) else type(value).__name__}")
        _require(tuple(keys.shape) == (self.num_envs,) and tuple(episodes.shape) == (self.num_envs,),
                 f"state is for {tuple(keys.shape)} envs; this env has {self.num_envs}")
        _require(bool((episodes >= 0).all()), "state['episodes'] must be >= 0 (episode counts); got negative values")
        self._keys = keys.to(self.device).clone()
        self._episodes = episodes.to(self.device).clone()
        self._start(torch.arange(self.num_envs, device=self.device))
        # The saved state is between episodes: none has ended, whatever this env played since.
        self._any_done = False
        return self._observe()

    def render(self) -> np.ndarray | None:
        """``(N, H', W', 3)`` uint8: each env's current picture, magnified, with its glimpse windows drawn."""
        if self.render_mode != "rgb_array":
            return None
        return np.stack([self._render_row(i) for i in range(self.num_envs)])

    # ------------------------------------------------------------------ internals
    def _output(self, obs: dict[str, Tensor], infos: dict[str, Any], *step: Tensor) -> tuple:
        """``reset``'s ``(obs, infos)`` or ``step``'s ``(obs, *step, infos)``, as tensors or numpy arrays."""
        if self.arrays == "torch":
            return (obs, *step, infos)
        obs = _numpy(obs)
        infos = _numpy(infos)
        if "final_obs" in infos:  # Gymnasium's layout: an object array of per-env observations (None elsewhere)
            batch, per_env = infos["final_obs"], np.full(self.num_envs, None, dtype=object)
            for i in np.flatnonzero(infos["_final_obs"]):
                per_env[i] = {k: v[i] for k, v in batch.items()}
            infos["final_obs"] = per_env
        return (obs, *(_numpy(x) for x in step), infos)

    def _reseed(self, seeds: list[int | None]) -> None:
        """Keys from a checked seed list: env ``i`` gets key ``seeds[i]`` (episode 0), or with ``None`` plays on
        from its key (its next episode; at the first reset, a random key, as Gymnasium's unseeded envs)."""
        _require(len(seeds) == self.num_envs, f"seed list must have {self.num_envs} entries; got {len(seeds)}")
        old = None if self._keys is None else self._keys.tolist()
        keys = [rng._signed(s if s is not None else old[i] if old is not None else int(seeding.np_random(None)[1]))
                for i, s in enumerate(seeds)]
        if seeds[0] is not None:
            self._np_random, _ = seeding.np_random(seeds[0])
        reseeded = torch.tensor([s is not None or old is None for s in seeds], device=self.device)
        self._keys = torch.tensor(keys, dtype=torch.int64, device=self.device)
        self._episodes = torch.where(reseeded, 0, self._episodes + 1)

    def _start(self, rows: Tensor) -> None:
        keys, episodes = self._keys[rows], self._episodes[rows]
        if self._scene.test_set_size is not None and self.split != "train":
            # Fixed test (validation) set: example j is drawn from (TEST_KEY (VAL_KEY), j) whatever the seed.
            size = self._scene.test_set_size
            example = torch.remainder(_unsigned_remainder(keys, size) + torch.remainder(episodes * self.num_envs, size),
                                      size)
            key = TEST_KEY if self.split == "test" else VAL_KEY
            self._scene.start(rows, torch.full_like(keys, key), example, target=example)
        else:
            self._scene.start(rows, keys, episodes)
        self._steps[rows] = 0
        self._done[rows] = False
        if self.gist:
            self._gists[rows] = coarse_view(self._scene.contents()[0][rows], self.gist).to(torch.float32)
        if self.start_mode == "center":
            self._locations[rows] = 0.0
        else:
            self._locations[rows] = (rng.uniform(keys, episodes, _STREAM_START, (2,)) * 2 - 1).to(torch.float32)

    def _observe(self, rows: Tensor | None = None) -> dict[str, Tensor]:
        glimpses = self._scene.glimpse(self._locations, self._steps)
        obs = {"glimpse": glimpses, "location": self._locations.clone()}
        if self.gist:
            obs["gist"] = self._gists.clone()
        if rows is not None:
            return {key: value[rows] for key, value in obs.items()}
        return obs

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
        return grid_cell_centers(self.grid, cells=actions[:, :2]), actions[:, 2].long()

    def _prediction_rewards(self, actions, decisions: Tensor) -> tuple[Tensor, Tensor]:
        """Per-step reward modes: this step's prediction reward ``(N,)`` float32 and the labels ``(N,)`` it
        scores, from the decision scores of ``actions`` (already checked by :meth:`_parse_actions`)."""
        labels = self._scene.labels.clone()
        if self.action_mode == "continuous":
            actions = actions if isinstance(actions, Tensor) else torch.as_tensor(np.asarray(actions))
            # Clipped to the box, as the locations are: the box bounds the logits (see the module's Rewards).
            box = self.single_action_space
            low, high = (torch.as_tensor(bound[2:], device=self.device) for bound in (box.low, box.high))
            scores = torch.clamp(actions.to(self.device)[:, 2:].to(torch.float32), low, high)
        else:  # the decision d stands for the box's corner whose argmax it is: +1 at d, -1 elsewhere
            scores = 2.0 * torch.nn.functional.one_hot(decisions, self.num_decisions).to(torch.float32) - 1.0
        log_prob = label_log_prob(scores, labels)  # the scores are the logits: see the module's Rewards
        previous = torch.where(self._steps == 1, uniform_log_prob(self.num_decisions), self._log_prob)
        self._log_prob = log_prob
        return prediction_reward(log_prob, previous, self.reward_mode), labels

    def _render_row(self, row: int) -> np.ndarray:
        picture = self._scene.frame(row, int(self._steps[row]))
        return render_glimpse(picture, self._locations[row], retina=self.retina)


def _forwarded(name: str) -> property:
    """A read-only property of :class:`GlimpseEnv` that reads the same one of its :class:`GlimpseVectorEnv`."""
    return property(lambda self: getattr(self._vec, name), doc=f"See :attr:`GlimpseVectorEnv.{name}`.")


class GlimpseEnv(gym.Env):
    """A single glimpse episode: the ``N = 1`` case of :class:`GlimpseVectorEnv`, numpy in and out.

    Takes the same keyword arguments as :class:`GlimpseVectorEnv` (but ``num_envs``). See the module
    docstring for the spaces, rewards and episode end.
    """

    metadata = {"render_modes": ["rgb_array"], "render_fps": 4}

    def __init__(self, **kwargs: Any) -> None:
        _require("num_envs" not in kwargs, "GlimpseEnv is a single env; use gymnasium.make_vec for num_envs")
        _require("autoreset_mode" not in kwargs,
                 f"a single env has no autoreset (its episodes end; call reset()): autoreset_mode is an option of the "
                 f"vector env, gymnasium.make_vec(id, num_envs=N, autoreset_mode=...); got "
                 f"autoreset_mode={kwargs.get('autoreset_mode')!r}")
        # A single env always speaks numpy: arrays="numpy" says so (and reaches it through make_vec's sync and
        # async modes); arrays="torch" is the vector env's.
        arrays = kwargs.pop("arrays", "numpy")
        _require(arrays == "numpy", f"a single env returns numpy arrays: arrays={arrays!r} is an option of the vector "
                                    f"env, gymnasium.make_vec(id, num_envs=N, arrays=...)")
        self._vec = GlimpseVectorEnv(1, autoreset_mode=AutoresetMode.DISABLED, **kwargs)
        self.render_mode = self._vec.render_mode
        self.observation_space = self._vec.single_observation_space
        self.action_space = self._vec.single_action_space

    # What agents read, as on the vector env (read-only).
    retina = _forwarded("retina")
    task_spec = _forwarded("task_spec")
    task_options = _forwarded("task_options")
    is_still = _forwarded("is_still")
    decision = _forwarded("decision")
    start_mode = _forwarded("start_mode")
    action_mode = _forwarded("action_mode")
    reward_mode = _forwarded("reward_mode")

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        """Start a new episode; ``seed``: ``None`` or an int (or numpy integer) in ``[0, 2**64)``."""
        if seed is not None:
            seed = rng.check_seed(seed)
        super().reset(seed=seed)
        if seed is None and self._vec._keys is None:
            # First reset without a seed: draw the key from this env's np_random.
            seed = int(self.np_random.integers(2**62))
        obs, _ = self._vec.reset(seed=seed, options=options)
        return _unbatch(obs), {}

    def step(self, action):
        action = np.asarray(action)
        obs, reward, terminated, truncated, info = self._vec.step(action[None])
        # numpy scalars (np.int64 labels, np.bool_ caught), as libraries that stack infos into arrays expect.
        info = {k: v[0].cpu().numpy()[()] for k, v in info.items() if not k.startswith("_") and bool(info[f"_{k}"][0])}
        return _unbatch(obs), float(reward[0]), bool(terminated[0]), bool(truncated[0]), info

    def render(self) -> np.ndarray | None:
        frames = self._vec.render()
        return None if frames is None else frames[0]

    def close(self) -> None:
        self._vec.close()


def _unbatch(obs: dict[str, Tensor]) -> dict[str, np.ndarray]:
    return {k: v[0].detach().cpu().numpy().astype(np.float32, copy=True) for k, v in obs.items()}


def _unsigned_remainder(keys: Tensor, modulus: int) -> Tensor:
    """``keys mod modulus`` of the seeds the int64 ``keys`` hold: seeds from ``2**63`` are stored negative."""
    wrapped = torch.where(keys < 0, 2**64 % modulus, 0)
    return torch.remainder(torch.remainder(keys, modulus) + wrapped, modulus)


def _numpy(x: Any) -> Any:
    """Tensors (also inside dicts) as fresh numpy arrays on the CPU; anything else as it is."""
    if isinstance(x, Tensor):
        return x.detach().cpu().numpy().copy() if x.device.type == "cpu" else x.detach().cpu().numpy()
    if isinstance(x, dict):
        return {k: _numpy(v) for k, v in x.items()}
    return x


def _autoreset_mode(mode: Any) -> AutoresetMode:
    """Gymnasium's ``AutoresetMode`` from itself or its value (``"NextStep"``, ``"SameStep"``, ``"Disabled"``)."""
    try:
        return AutoresetMode(mode)
    except ValueError:
        values = tuple(m.value for m in AutoresetMode)
        raise ValueError(f"autoreset_mode must be a gymnasium.vector.AutoresetMode (or one of {values}); "
                         f"got {mode!r}") from None


def _retina_of(retina: RetinaSpec | None, glimpse_size: int | None, scales: int | None,
               factor: int | None) -> tuple[RetinaSpec, dict[str, str]]:
    """The env's retina, from ``retina`` or (the one place they become one) its keyword arguments, default
    8 px, 1 scale, factor 2; and the names its errors give the fields: the keywords' when it was built
    from them (``glimpse_size`` for the spec's ``size``)."""
    if retina is not None:
        given = [f"{k}={v!r}" for k, v in (("glimpse_size", glimpse_size), ("scales", scales), ("factor", factor))
                 if v is not None]
        _require(not given, f"pass the retina as retina= or as glimpse_size/scales/factor, not both; got "
                            f"retina={retina} and {', '.join(given)}")
        return retina_spec(retina), {}
    try:
        return RetinaSpec(8 if glimpse_size is None else glimpse_size, 1 if scales is None else scales,
                          2 if factor is None else factor), _RETINA_KEYWORDS
    except RetinaError as error:
        raise error.renamed(_RETINA_KEYWORDS) from None


def _check_fit(retina: RetinaSpec, names: dict[str, str], height: int, width: int) -> None:
    """:meth:`glimpse.RetinaSpec.check_canvas`, its error in the words the retina was given in."""
    try:
        retina.check_canvas(height, width)
    except RetinaError as error:
        raise error.renamed(names) from None


def _check_gist(gist: int, height: int, width: int) -> None:
    _require(height % gist == 0 and width % gist == 0 if gist else True,
             f"gist={gist} must divide the canvas ({height}x{width}): the coarse view averages whole blocks of it")


def _available_memory(device: torch.device) -> int | None:
    """Bytes that new tensors on ``device`` can take now: CUDA's free memory plus what torch's allocator holds
    unused; on the CPU the kernel's ``MemAvailable`` (Linux), else the physical memory (POSIX); None where
    unknown."""
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return free + torch.cuda.memory_reserved(device) - torch.cuda.memory_allocated(device)
    if device.type != "cpu":
        return None
    try:
        with open("/proc/meminfo") as meminfo:
            for line in meminfo:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (AttributeError, OSError, ValueError):
        return None


def _check_memory(need: int, device: torch.device, what: str) -> None:
    """Refuse ``what`` if it would take ``need`` bytes (estimated) beyond the memory available on ``device``."""
    limit = _available_memory(device)
    _require(limit is None or need <= limit,
             f"{what} would take about {need / 2**30:.1f} GiB but {(limit or 0) / 2**30:.1f} GiB is available on "
             f"{device}: use fewer envs, fewer scales or a smaller glimpse_size or canvas")


def _require(condition: bool, message: str) -> None:
    if not condition:
        raise ValueError(message)
