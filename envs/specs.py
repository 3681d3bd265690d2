"""The glimpse tasks as data: one table, :data:`TASKS`, of :class:`TaskSpec`, each a registered Gymnasium id.

A task is everything :class:`envs.GlimpseVectorEnv` needs besides the retina: what kind of episode it is
(a still picture, a video, a game), what decision ends it, its own options (a frozen dataclass that
validates them, with the task's defaults) and a builder that turns those options into a
:class:`envs.scenes.Scene`. Adding a task is one spec and one call::

    import envs

    spec = envs.TaskSpec(name="tiny", env_id="glimpse/Tiny-v0", kind="still", decision="classify",
                         options=TinyOptions(), build=build_tiny, summary="...")
    envs.register_task(spec)  # TASKS["tiny"] and gym.make("glimpse/Tiny-v0", ...) / gym.make_vec(...)

Names are read at the edge only (a script's ``--env``, ``gym.make``'s id): :func:`task_of` turns either
into the spec, and everything after it reads the spec's fields, never its name.

The table holds the RAM paper's settings and the RA-CNN-style ones by the short names the scripts'
``--env`` takes (``mnist``, ``translated-60``, ``cluttered-60``, ``cluttered-100``, ``small-100``,
``folder``, ``moving-mnist``, ``catch``), the generic digit tasks whose canvas and clutter are free
(``translated``, ``cluttered``, ``small``; ``glimpse/TranslatedMNIST-v0`` etc.), and ``video``, a user's
own labelled videos (``video=(frames, labels)``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, fields, replace
from typing import Any, Literal

import gymnasium as gym
import torch

from envs import tasks
from envs.catch import CatchScene
from envs.scenes import PictureScene, Scene
from glimpse import RetinaSpec
from glimpse.checks import ArgumentError, check_int

__all__ = [
    "TaskSpec",
    "SceneContext",
    "TASKS",
    "task_of",
    "register_task",
    "MNISTOptions",
    "TranslatedOptions",
    "ClutteredOptions",
    "SmallOptions",
    "FolderOptions",
    "MovingMNISTOptions",
    "VideoOptions",
    "CatchOptions",
]

Kind = Literal["still", "video", "game"]
Decision = Literal["classify", "paddle"]
KINDS = ("still", "video", "game")
DECISIONS = ("classify", "paddle")


@dataclass(frozen=True)
class SceneContext:
    """What the env hands a task's builder besides the task's options.

    Attributes:
        retina: the env's retina (:class:`glimpse.RetinaSpec`), already checked against the canvas wherever
            the options say the canvas.
        device: where every tensor of the scene lives.
        split: ``"train"``, ``"val"`` or ``"test"``: which split of the data set the scene draws from.
        dataset: the digit set of the digit tasks (``envs.data.NAMES``); other tasks ignore it.
        data_dir: where the data are (IDX files for digits, the image folder's root for ``folder``);
            ``None`` for the default sources.
        val_size: items of the training split held out as the ``"val"`` split (``envs.data.hold_out``);
            with 0, none, and ``"train"`` is the whole training split.
    """

    retina: RetinaSpec
    device: torch.device
    split: str = "train"
    dataset: str = "mnist"
    data_dir: str | None = None
    val_size: int = 0

    def training_part(self, dataset):
        """The part of a loaded split this scene draws from: with a validation split (``val_size``), the
        training split's items trained on (``"train"``) or held out (``"val"``); else ``dataset`` itself."""
        if self.split == "test" or not self.val_size:
            return dataset
        from envs.data import hold_out

        return hold_out(dataset, self.val_size, self.split)

    @property
    def loaded_split(self) -> str:
        """The data set's split to load: the validation split is held out of ``"train"``."""
        return "train" if self.split == "val" else self.split


@dataclass(frozen=True)
class TaskSpec:
    """One task: its names, what kind of episode it is, its options and how its scenes are built.

    Attributes:
        name: the short name (a script's ``--env``; the key in :data:`TASKS`).
        env_id: its registered Gymnasium id (``gym.make(env_id)`` / ``gym.make_vec(env_id, num_envs=N)``).
        kind: ``"still"`` (one labelled picture per episode, ``num_glimpses`` glimpses of it),
            ``"video"`` (step ``t`` glimpses frame ``t``) or ``"game"`` (the scene reacts to the decisions).
        decision: ``"classify"`` (the class, judged at the last step) or ``"paddle"`` (Catch's move).
        options: the task's options with its defaults: an instance of a frozen dataclass that validates
            its fields in ``__post_init__``. :meth:`configure` overrides them.
        build: ``(options, context) -> Scene``: the scene of ``N`` envs for these options.
        summary: one line for listings and ``--help``.
    """

    name: str
    env_id: str
    kind: Kind
    decision: Decision
    options: Any
    build: Callable[[Any, SceneContext], Scene] = field(repr=False)
    summary: str = ""

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"kind must be one of {KINDS}; got {self.kind!r}")
        if self.decision not in DECISIONS:
            raise ValueError(f"decision must be one of {DECISIONS}; got {self.decision!r}")
        if not hasattr(self.options, "__dataclass_fields__"):
            raise TypeError(f"options must be a dataclass instance (the task's defaults); got {self.options!r}")

    @property
    def is_still(self) -> bool:
        """Whether an episode shows one still, labelled picture (``num_glimpses`` applies)."""
        return self.kind == "still"

    @property
    def default_canvas(self) -> int | None:
        """The canvas side by default, in pixels (``None`` for ``video``: the user's frames set it)."""
        return getattr(self.options, "canvas", None)

    @property
    def option_names(self) -> tuple[str, ...]:
        """The keyword arguments this task takes on top of the env's own."""
        return tuple(f.name for f in fields(self.options))

    def configure(self, options: Any = None, **overrides: Any) -> Any:
        """This task's options: ``options`` (default: the spec's) with ``overrides`` applied and validated.

        An override of ``None`` means "the default" and is dropped, whichever task it names (as for the
        env's own ``None`` arguments).

        Raises:
            ValueError: an option of another task (naming the tasks that take it), or a bad value.
            TypeError: an option no task takes, or ``options`` of another task's type.
        """
        base = self.options if options is None else options
        if type(base) is not type(self.options):
            raise TypeError(f"options of task {self.name!r} must be {type(self.options).__name__}; "
                            f"got {type(base).__name__}")
        mine = set(self.option_names)
        for key, value in overrides.items():
            if key not in mine and value is not None:
                raise _not_an_option(key, self)
        return replace(base, **{k: v for k, v in overrides.items() if k in mine and v is not None})


def _not_an_option(key: str, spec: TaskSpec) -> Exception:
    if key == "num_glimpses" and not spec.is_still:
        return ValueError(f"num_glimpses does not apply to task {spec.name!r}: it takes one glimpse per frame")
    owners = [s for s in TASKS.values() if key in s.option_names]
    if not owners:
        return TypeError(f"task {spec.name!r} got an unexpected keyword argument {key!r}; "
                         f"its options are {spec.option_names}")
    families = {type(s.options) for s in owners}
    names = ", ".join(s.name for s in owners)
    if len(families) == 1:  # one options class: name its first (generic) task
        return ValueError(f"{key} applies to task={owners[0].name!r} only; got task {spec.name!r} "
                          f"(the tasks that take it: {names})")
    return ValueError(f"{key} applies to tasks {names} only; got task {spec.name!r}")


# ------------------------------------------------------------------------------------------------------------
# Options, one frozen dataclass per task; each field's comment says why its default is what it is
# ------------------------------------------------------------------------------------------------------------


def _check_glimpses(num_glimpses: object) -> None:
    check_int(num_glimpses, "num_glimpses")


@dataclass(frozen=True)
class MNISTOptions:
    """The plain 28x28 digit (Mnih et al. 2014's first task)."""

    canvas: int = 28
    """canvas side: the digit as it is, so always 28"""
    num_glimpses: int = 6
    """glimpses per episode (RAM's 6 on 28x28 MNIST)"""

    def __post_init__(self) -> None:
        if self.canvas != 28:
            raise ValueError(f"task='mnist' shows the plain 28x28 digit; got canvas={self.canvas!r}")
        _check_glimpses(self.num_glimpses)


@dataclass(frozen=True)
class TranslatedOptions:
    """A digit at a random position fully inside an empty canvas."""

    canvas: int = 60
    """canvas side in pixels (60 in RAM)"""
    num_glimpses: int = 6
    """glimpses per episode"""

    def __post_init__(self) -> None:
        check_int(self.canvas, "canvas")
        _check_glimpses(self.num_glimpses)


@dataclass(frozen=True)
class ClutteredOptions:
    """A digit among fragments of other digits (DeepMind's mnist-cluttered)."""

    canvas: int = 60
    """canvas side in pixels (RAM: 60 and 100)"""
    distractors: int | None = None
    """clutter fragments; None: 4, or 8 on a canvas of 100 or more (RAM's two settings)"""
    distractor_size: int = 8
    """side of each fragment in pixels (mnist-cluttered's 8)"""
    num_glimpses: int = 6
    """glimpses per episode"""

    def __post_init__(self) -> None:
        check_int(self.canvas, "canvas")
        _check_glimpses(self.num_glimpses)

    @property
    def fragments(self) -> int:
        """The number of fragments, ``distractors`` or its canvas-dependent default."""
        return self.distractors if self.distractors is not None else (8 if self.canvas >= 100 else 4)


@dataclass(frozen=True)
class SmallOptions:
    """A shrunk digit on a large canvas, where zooming matters (see :func:`envs.tasks.scaled_digits`)."""

    canvas: int = 100
    """canvas side: a 14 px digit covers 2% of 100 x 100 (a 28 px one 22% of cluttered MNIST's 60 x 60)"""
    digit_size: int = 14
    """side of the shrunk digit; must divide 28 (14: the digit averaged over 2 x 2 blocks)"""
    distractors: int = 0
    """clutter fragments, cut from digits shrunk the same way"""
    distractor_size: int | None = None
    """fragment side in canvas pixels; None: 8 * digit_size // 28 (mnist-cluttered's 8 of 28)"""
    num_glimpses: int = 6
    """glimpses per episode"""

    def __post_init__(self) -> None:
        check_int(self.canvas, "canvas")
        _check_glimpses(self.num_glimpses)


@dataclass(frozen=True)
class FolderOptions:
    """The pictures of a user's ImageFolder-style directory (``data_dir=<root>``, e.g. CUB-200)."""

    canvas: int = 112
    """side the pictures are resized to: 224 / 2, fine detail that a 2-core CPU still trains on"""
    channels: int = 3
    """3 (RGB) or 1 (grey)"""
    num_glimpses: int = 6
    """glimpses per episode"""

    def __post_init__(self) -> None:
        check_int(self.canvas, "canvas")
        _check_glimpses(self.num_glimpses)


@dataclass(frozen=True)
class MovingMNISTOptions:
    """Moving MNIST (Srivastava et al. 2015): digits bouncing in a canvas, one glimpse per frame."""

    canvas: int = 64
    """canvas side in pixels (Srivastava et al.'s 64)"""
    frames: int = 20
    """frames (and steps) per episode (Srivastava et al.'s 20)"""
    digits: int = 1
    """moving digits, 1 or 2; the first is the target"""
    distractors: int = 0
    """static clutter fragments, the same in every frame"""
    distractor_size: int = 8
    """side of each fragment in pixels"""

    def __post_init__(self) -> None:
        check_int(self.canvas, "canvas")
        check_int(self.frames, "frames")


@dataclass(frozen=True)
class VideoOptions:
    """A user's labelled videos."""

    video: tuple[Any, Any] | None = None
    """(frames, labels): (M, T, H, W) or channels-last (M, T, H, W, C) with C <= 4, uint8 or float in [0, 1],
    and (M,) integer labels >= 0 (see envs.tasks.as_video_source); required"""



@dataclass(frozen=True)
class CatchOptions:
    """RAM's Catch: a ball falls, the paddle on the bottom row must catch it."""

    canvas: int = 24
    """screen side in pixels (24 in the paper); an episode lasts canvas - 1 steps"""

    def __post_init__(self) -> None:
        check_int(self.canvas, "canvas", minimum=3)


# ------------------------------------------------------------------------------------------------------------
# Builders: options and context in, a Scene out
# ------------------------------------------------------------------------------------------------------------


def _load_digits(ctx: SceneContext):
    from envs.data import NAMES, load_digits  # imported here: Catch and user videos need no data set

    if ctx.dataset not in NAMES:
        raise ValueError(f"dataset must be one of {NAMES}; got {ctx.dataset!r}")
    data = ctx.training_part(load_digits(ctx.dataset, ctx.loaded_split, data_dir=ctx.data_dir))
    return data.images.to(ctx.device), data.labels.to(ctx.device), data.num_classes


def _still_digits(options, ctx: SceneContext, generator: Callable, **kwargs) -> PictureScene:
    """Still canvases of one digit generator of :mod:`envs.tasks` with its keyword arguments bound."""
    images, labels, classes = _load_digits(ctx)
    generate = lambda k, e, t: generator(images, labels, k, e, target=t, **kwargs)  # noqa: E731
    empty = torch.zeros(0, dtype=torch.int64, device=ctx.device)
    generate(empty, empty, None)  # bad options raise now, not at the first reset
    side = options.canvas
    return PictureScene(generate, options.num_glimpses, ctx.retina, (1, side, side), classes, len(labels))


def build_mnist(options: MNISTOptions, ctx: SceneContext) -> PictureScene:
    return _still_digits(options, ctx, tasks.plain_digits)


def build_translated(options: TranslatedOptions, ctx: SceneContext) -> PictureScene:
    return _still_digits(options, ctx, tasks.translated_digits, canvas=options.canvas)


def build_cluttered(options: ClutteredOptions, ctx: SceneContext) -> PictureScene:
    return _still_digits(options, ctx, tasks.cluttered_digits, canvas=options.canvas, distractors=options.fragments,
                         distractor_size=options.distractor_size)


def build_small(options: SmallOptions, ctx: SceneContext) -> PictureScene:
    return _still_digits(options, ctx, tasks.scaled_digits, canvas=options.canvas, digit_size=options.digit_size,
                         distractors=options.distractors, distractor_size=options.distractor_size)


def build_folder(options: FolderOptions, ctx: SceneContext) -> PictureScene:
    from envs.data import load_image_folder

    if ctx.data_dir is None:
        raise ArgumentError("data_dir", "task='folder' needs {name}{=}<root>: a folder of class folders of JPEG/PNG "
                                        "images (root/<class>/<image>, or root/train/<class>/... and "
                                        "root/test/<class>/...)")
    folder = ctx.training_part(load_image_folder(ctx.data_dir, ctx.loaded_split, size=options.canvas,
                                                 channels=options.channels))
    pictures, classes = folder.images.to(ctx.device), folder.labels.to(ctx.device)
    generate = lambda k, e, t: tasks.plain_images(pictures, classes, k, e, target=t)  # noqa: E731
    return PictureScene(generate, options.num_glimpses, ctx.retina, tuple(folder.images.shape[1:]),
                        folder.num_classes, len(folder), dtype=folder.images.dtype)


def build_moving_mnist(options: MovingMNISTOptions, ctx: SceneContext) -> PictureScene:
    images, labels, classes = _load_digits(ctx)
    side = options.canvas
    generate = lambda k, e, t: tasks.moving_digits(  # noqa: E731
        images, labels, k, e, frames=options.frames, canvas=side, digits=options.digits,
        distractors=options.distractors, distractor_size=options.distractor_size, target=t)
    return PictureScene(generate, options.frames, ctx.retina, (1, side, side), classes, len(labels),
                        frames=options.frames)


def build_video(options: VideoOptions, ctx: SceneContext) -> PictureScene:
    if options.video is None:
        raise ValueError("task='video' needs video=(frames, labels)")
    source = tasks.as_video_source(*[torch.as_tensor(v) for v in options.video])
    clips = source.frames.to(ctx.device)
    if clips.is_floating_point():  # observations are float32 whatever the frames' float dtype
        clips = clips.to(torch.float32)
    # Labels are int64 whatever the user's integer dtype: the env's infos and TorchRL's label spec say so.
    source = tasks.VideoSource(clips, source.labels.to(ctx.device, torch.int64))
    # The validated (M, T, C, H, W) source itself: raw 5-D frames would be read as channels-last again.
    generate = lambda k, e, t: tasks.video_frames(source, None, k, e, target=t)  # noqa: E731
    classes = int(source.labels.max()) + 1
    frames = source.frames.shape[1]
    return PictureScene(generate, frames, ctx.retina, tuple(source.frames.shape[-3:]), classes, len(source.labels),
                        frames=frames, dtype=clips.dtype)


def build_catch(options: CatchOptions, ctx: SceneContext) -> CatchScene:
    return CatchScene(options.canvas, ctx.retina)


# ------------------------------------------------------------------------------------------------------------
# The table
# ------------------------------------------------------------------------------------------------------------

#: Every task by short name. Read it through :func:`task_of`; extend it with :func:`register_task`.
TASKS: dict[str, TaskSpec] = {}


def register_task(spec: TaskSpec) -> TaskSpec:
    """Add ``spec`` to :data:`TASKS` and register its Gymnasium id; returns ``spec``.

    The id gets ``entry_point`` :class:`envs.GlimpseEnv` and ``vector_entry_point``
    :class:`envs.GlimpseVectorEnv` with ``task=spec.name``, and no ``max_episode_steps`` (episodes end by
    termination at a length the task's options set; pass ``max_episode_steps`` to ``make`` to truncate).
    Registering the same spec again does nothing; another spec under a taken name or id is an error.
    """
    if not isinstance(spec, TaskSpec):
        raise TypeError(f"spec must be a TaskSpec; got {type(spec).__name__}")
    old = TASKS.get(spec.name)
    if old is not None and old != spec:
        raise ValueError(f"task {spec.name!r} is already registered (as {old.env_id})")
    clash = [s.name for s in TASKS.values() if s.env_id == spec.env_id and s.name != spec.name]
    if clash or (old is None and spec.env_id in gym.registry):
        raise ValueError(f"id {spec.env_id!r} is already registered{f' (task {clash[0]!r})' if clash else ''}")
    TASKS[spec.name] = spec
    if spec.env_id not in gym.registry:
        gym.register(
            id=spec.env_id,
            entry_point="envs.glimpse_env:GlimpseEnv",
            vector_entry_point="envs.glimpse_env:GlimpseVectorEnv",
            kwargs={"task": spec.name},
        )
    return spec


def task_of(name_or_id: str) -> TaskSpec:
    """The :class:`TaskSpec` of a short name (``"cluttered-60"``) or a registered id
    (``"glimpse/ClutteredMNIST60-v0"``); a ``ValueError`` lists the valid names otherwise."""
    if isinstance(name_or_id, TaskSpec):
        return name_or_id
    if name_or_id in TASKS:
        return TASKS[name_or_id]
    for spec in TASKS.values():
        if spec.env_id == name_or_id:
            return spec
    raise ValueError(f"task must be one of {tuple(TASKS)} (or their ids, e.g. {next(iter(TASKS.values())).env_id!r}); "
                     f"got {name_or_id!r}")


def _builtin(name: str, env_id: str, kind: Kind, decision: Decision, options, build, summary: str) -> TaskSpec:
    return register_task(TaskSpec(name, env_id, kind, decision, options, build, summary))


# The generic digit tasks first: an error about an option names the first task that takes it.
_builtin("mnist", "glimpse/MNIST-v0", "still", "classify", MNISTOptions(), build_mnist,
         "the plain 28x28 digit")
_builtin("translated", "glimpse/TranslatedMNIST-v0", "still", "classify", TranslatedOptions(), build_translated,
         "a digit at a random position on an empty canvas (default 60x60)")
_builtin("cluttered", "glimpse/ClutteredMNIST-v0", "still", "classify", ClutteredOptions(), build_cluttered,
         "a digit among fragments of other digits (default 60x60, 4 fragments)")
_builtin("small", "glimpse/SmallMNIST-v0", "still", "classify", SmallOptions(), build_small,
         "a 14 px digit on a 100x100 canvas: zooming matters")
_builtin("translated-60", "glimpse/TranslatedMNIST60-v0", "still", "classify", TranslatedOptions(canvas=60),
         build_translated, "RAM's translated MNIST: a digit on a 60x60 canvas")
_builtin("cluttered-60", "glimpse/ClutteredMNIST60-v0", "still", "classify",
         ClutteredOptions(canvas=60, distractors=4), build_cluttered,
         "RAM's cluttered MNIST: 60x60, 4 fragments")
_builtin("cluttered-100", "glimpse/ClutteredMNIST100-v0", "still", "classify",
         ClutteredOptions(canvas=100, distractors=8), build_cluttered,
         "RAM's cluttered MNIST: 100x100, 8 fragments")
# Zooming matters: a 14 px digit (28 px averaged over 2 x 2 blocks) on a 100 px canvas covers 2% of it, so
# a coarse scale can find it but only a fine glimpse (14 px or so) can read it.
_builtin("small-100", "glimpse/SmallMNIST100-v0", "still", "classify", SmallOptions(canvas=100, digit_size=14),
         build_small, "a 14 px digit on a 100x100 canvas: zooming matters")
# A user's ImageFolder directory (CUB-200 or similar) at 112 x 112 RGB; it needs data_dir=<root> as well.
_builtin("folder", "glimpse/ImageFolder-v0", "still", "classify", FolderOptions(), build_folder,
         "your own class folders of JPEG/PNG pictures (data_dir=<root>), 112x112 RGB")
_builtin("moving-mnist", "glimpse/MovingMNIST-v0", "video", "classify", MovingMNISTOptions(), build_moving_mnist,
         "Moving MNIST: 20 frames of 64x64, one glimpse per frame")
_builtin("video", "glimpse/Video-v0", "video", "classify", VideoOptions(), build_video,
         "your own labelled videos (video=(frames, labels)), one glimpse per frame")
_builtin("catch", "glimpse/Catch-v0", "game", "paddle", CatchOptions(), build_catch,
         "RAM's Catch on a 24x24 screen: the paddle is the decision")
