r"""Episode generators for the glimpse tasks: digit canvases, moving digits and user videos.

Every generator is a pure function of ``(keys, episodes)``: row ``i`` of the output depends only on
``keys[i]`` and ``episodes[i]`` (through :mod:`envs.rng`), so ``N`` batched envs play exactly the
episodes of ``N`` single envs, on CPU or CUDA, in one tensor op with no Python loop over the batch.

Conventions (the project's, stated in :mod:`glimpse`; here in pixels):

- images are ``(N, C, H, W)``, videos ``(N, T, C, H, W)``; canvases are square, ``canvas x canvas``;
- a pixel position is ``(x, y)`` = (column, row), +x right, +y down; a *corner* is the integer top-left
  pixel of a patch on the canvas, so a patch at corner ``(x0, y0)`` covers columns ``[x0, x0 + w)`` and
  rows ``[y0, y0 + h)``;
- ``keys`` and ``episodes`` are ``(N,)`` int64 on the target device; every output is on ``keys.device``
  and the digit tensors you pass must already be there;
- digit images are ``uint8`` ``(M, H, W)`` (``28 x 28`` for MNIST) with ``(M,)`` integer labels;
  canvases come back ``uint8`` ``(N, 1, canvas, canvas)``; still pictures of any channel count (an image
  folder) are ``uint8`` ``(M, C, H, W)``.

Compositing. Every pixel placed on a canvas goes through the retina (:func:`glimpse.extract_glimpses`):
pasting patch ``p`` at corner ``(x0, y0)`` is the glimpse of ``p`` by a ``canvas x canvas`` window
whose corner is ``(-x0, -y0)``, which (zeros outside the patch, integer corners) is an exact paste onto
a zero canvas. Layers are **summed** in ``[0, 255]`` units, rounded to nearest and **clipped** to 255.
Shrinking a digit (:func:`scaled_digits`) is the retina's coarse scale too: the glimpse of the whole
digit at ``factor = H / digit_size``, the exact mean of each ``factor x factor`` block.

Random streams. Each kind of draw has its own stream number (the ``STREAM_*`` constants below), so
adding a draw never changes the others, and tasks that share a draw agree on it: with the same key and
episode, :func:`plain_digits`, :func:`translated_digits`, :func:`cluttered_digits` and
:func:`moving_digits` pick the same target digit, and :func:`translated_digits` and
:func:`cluttered_digits` the same target position (:func:`moving_digits` draws its start from its own
stream; :func:`scaled_digits` draws its corner from the same stream over its own, larger range).

Version History:
    * v0: plain, translated, cluttered and moving digits, user videos, and Catch.
    * v0 (added): scaled (small) digits on a large canvas, and plain still pictures of ``C`` channels.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from envs import rng
from glimpse.checks import check_int, check_number, check_positive_int, check_shape
from glimpse.retina import centers_from_corners_px, extract_glimpses

__all__ = [
    "paste_patches",
    "plain_digits",
    "digits_on_canvas",
    "translated_digits",
    "cluttered_digits",
    "scaled_digits",
    "plain_images",
    "moving_positions",
    "moving_digits",
    "VideoSource",
    "as_video_source",
    "video_frames",
]

# One stream per kind of draw (see envs/rng.py). Never renumber: that would change every seeded episode.
STREAM_TARGET_DIGIT = 100  # index of the target digit in the set
STREAM_TARGET_CORNER = 101  # the target's corner on a static canvas, (x0, y0)
STREAM_DISTRACTOR_SOURCE = 102  # which other digit each distractor is cut from
STREAM_DISTRACTOR_CROP = 103  # corner of each distractor's crop inside its source digit
STREAM_DISTRACTOR_CORNER = 104  # corner of each distractor on the canvas
STREAM_SECOND_DIGIT = 105  # index of the moving distractor digit (moving_digits with digits=2)
STREAM_MOVING_START = 106  # start position of each moving digit, a fraction of its range per axis
STREAM_MOVING_ANGLE = 107  # direction of each moving digit, a fraction of a full turn
STREAM_VIDEO = 108  # index of the video in a user video source
STREAM_CATCH_COLUMN = 109  # Catch (envs.catch): the ball's starting column
STREAM_CATCH_SLOPE = 110  # Catch (envs.catch): the ball's columns per row

_FLOAT_DTYPES = (torch.float16, torch.bfloat16, torch.float32, torch.float64)
#: The most channels a channels-last user video may have: a longer last axis is almost surely a frame's width.
_MAX_VIDEO_CHANNELS = 4

# Canvas pixels per block of rows sent to the retina at once when pasting (x64 on GPUs).
_CHUNK_PIXELS = 2**18


# ----------------------------------------------------------------------------------------------------
# Argument checks
# ----------------------------------------------------------------------------------------------------


def _check_digits(images: Tensor, labels: Tensor, keys: Tensor) -> None:
    check_shape(images, "images", "(M, H, W)")
    check_shape(labels, "labels", "(M,)", (images.shape[0],))
    if images.dtype != torch.uint8:
        raise TypeError(f"images must be uint8 (M, H, W); got {images.dtype}")
    if labels.dtype.is_floating_point or labels.dtype.is_complex or labels.dtype == torch.bool:
        raise TypeError(f"labels must be an integer tensor (M,); got {labels.dtype}")
    if images.shape[0] == 0 or images.shape[1] == 0 or images.shape[2] == 0:
        raise ValueError(f"images must hold at least one non-empty digit; got {tuple(images.shape)}")
    if images.device != keys.device or labels.device != keys.device:
        raise ValueError(
            f"images and labels must be on keys.device ({keys.device}); got {images.device} and "
            f"{labels.device}: move the digit set once with .to(device), not every episode"
        )


def _check_canvas(canvas: object, images: Tensor) -> int:
    canvas = check_positive_int(canvas, "canvas")
    height, width = int(images.shape[1]), int(images.shape[2])
    if canvas < max(height, width):
        raise ValueError(f"canvas must be >= the digit size ({height}x{width}) so a digit fits inside; got {canvas}")
    return canvas


def _check_distractors(
    distractors: object, distractor_size: object, images: Tensor, side: int | None = None
) -> tuple[int, int]:
    """``side``: the side of the digits fragments are cut from (default: the set's; scaled digits' own)."""
    check_int(distractors, "distractors", minimum=0)
    side = min(int(images.shape[1]), int(images.shape[2])) if side is None else side
    if isinstance(distractor_size, bool) or not isinstance(distractor_size, int) or not 1 <= distractor_size <= side:
        raise ValueError(f"distractor_size must be an integer in [1, {side}] (the digit side); got {distractor_size!r}")
    if distractors > 0 and images.shape[0] < 2:
        raise ValueError(
            f"distractors are cut from digits other than the target, so the set needs >= 2 digits; "
            f"got {images.shape[0]}"
        )
    return distractors, distractor_size


# ----------------------------------------------------------------------------------------------------
# Compositing through the retina
# ----------------------------------------------------------------------------------------------------


def _paste_sum(patches: Tensor, corners: Tensor, canvas: int) -> Tensor:
    """Sum of the pasted patches, float32 ``(B, canvas, canvas)`` in ``[0, 255]`` units, unclipped.

    ``patches`` ``(B, K, h, w)`` uint8, or float in ``[0, 1]``; ``corners`` ``(B, K, 2)`` integer ``(x0, y0)``.
    """
    batch, count, height, width = patches.shape
    out = torch.zeros(batch, canvas, canvas, dtype=torch.float32, device=patches.device)
    if batch * count == 0:
        return out
    # The canvas-sized window of the patch whose corner is (-x0, -y0) is the patch pasted at (x0, y0).
    centers = centers_from_corners_px(-corners.reshape(batch * count, 2), height, width, size=canvas)
    centers = centers.to(patches.device).view(batch, count, 2)
    # Rows go through the retina in blocks of about _CHUNK_PIXELS canvas pixels: the same result, but
    # the retina's per-pixel temporaries stay cache-sized (twice as fast on CPU) and peak memory bounded.
    budget = _CHUNK_PIXELS if patches.device.type == "cpu" else 64 * _CHUNK_PIXELS
    rows = max(1, budget // (count * canvas * canvas))
    for start in range(0, batch, rows):
        block = patches[start : start + rows]
        b = block.shape[0]
        pasted = extract_glimpses(  # centres of integer corners: finite, no need to re-read them
            block.reshape(b * count, 1, height, width), centers[start : start + rows].reshape(b * count, 2), size=canvas,
            validate=False,
        )  # (b*K, 1, 1, canvas, canvas) in [0, 1]
        out[start : start + b] = pasted.view(b, count, canvas, canvas).to(torch.float32).sum(dim=1) * 255.0
    return out


def _to_uint8(layers: Tensor) -> Tensor:
    """Round a float sum in ``[0, 255]`` units to nearest and clip it to ``[0, 255]`` as uint8."""
    return layers.round().clamp_(0.0, 255.0).to(torch.uint8)


def paste_patches(patches: Tensor, corners: Tensor, canvas: int) -> Tensor:
    r"""Paste ``K`` patches per row onto a zero canvas, summed and clipped to 255.

    Conventions:

    - ``patches``: ``(B, K, h, w)``, uint8, or floating point in ``[0, 1]`` (read as ``255 * value``).
    - ``corners``: ``(B, K, 2)`` integer ``(x0, y0)`` = (column, row) of each patch's top-left pixel on the
      canvas; patch ``k`` covers columns ``[x0, x0 + w)`` and rows ``[y0, y0 + h)``. Corners may put a
      patch partly or wholly off the canvas: the part outside is dropped.
    - Output: uint8 ``(B, 1, canvas, canvas)``: the sum of the pasted patches in ``[0, 255]`` units,
      rounded to nearest and clipped to 255. A uint8 patch at an integer corner is reproduced exactly.

    The paste goes through the retina: the ``canvas x canvas`` glimpse of the patch whose window
    corner is ``(-x0, -y0)`` (zeros outside the patch).

    Args:
        patches: the patches, ``K`` per row.
        corners: where each patch goes.
        canvas: side of the square canvas in pixels.

    Returns:
        ``(B, 1, canvas, canvas)`` uint8 canvases.

    Example:
        >>> p = torch.full((1, 2, 2, 2), 200, dtype=torch.uint8)
        >>> paste_patches(p, torch.tensor([[[0, 0], [1, 1]]]), 3)[0, 0]
        tensor([[200, 200,   0],
                [200, 255, 200],
                [  0, 200, 200]], dtype=torch.uint8)
    """
    check_shape(patches, "patches", "(B, K, h, w)")
    check_shape(corners, "corners", "(B, K, 2)", (patches.shape[0], patches.shape[1], 2))
    canvas = check_positive_int(canvas, "canvas")
    if patches.dtype != torch.uint8 and patches.dtype not in _FLOAT_DTYPES:
        raise TypeError(f"patches must be uint8 or floating point in [0, 1]; got {patches.dtype}")
    if corners.dtype.is_floating_point or corners.dtype.is_complex or corners.dtype == torch.bool:
        raise TypeError(f"corners must be integer (x0, y0) pixels; got {corners.dtype}")
    if patches.shape[2] == 0 or patches.shape[3] == 0:
        raise ValueError(f"patches must not be empty; got {tuple(patches.shape)}")
    if patches.is_floating_point() and patches.numel() > 0:
        low, high = float(patches.min()), float(patches.max())
        if not (0.0 <= low and high <= 1.0):  # also catches NaN
            raise ValueError(f"float patches must lie in [0, 1]; got values in [{low}, {high}]")
    return _to_uint8(_paste_sum(patches, corners.to(torch.int64), canvas))[:, None]


def _inside_corners(
    keys: Tensor, episodes: Tensor, stream: int, shape: tuple[int, ...], room: tuple[int, int]
) -> Tensor:
    """Uniform integer corners ``(N, *shape, 2)`` with ``x0 in [0, room_x]`` and ``y0 in [0, room_y]``."""
    high = torch.tensor([room[0] + 1, room[1] + 1], device=keys.device)
    return rng.integers(keys, episodes, stream, high, (*shape, 2))


def _distractor_layer(
    images: Tensor, target: Tensor, keys: Tensor, episodes: Tensor, count: int, size: int, canvas: int,
    digit_size: int | None = None,
) -> Tensor:
    """``count`` ``size x size`` fragments of digits other than ``target`` ``(N,)``, pasted fully inside.

    With ``digit_size``, each source digit is first shrunk to ``digit_size x digit_size`` (:func:`_shrink`)
    and the fragment is cut from the shrunk digit. Returns the float32 ``(N, canvas, canvas)`` sum in
    ``[0, 255]`` units (unclipped).
    """
    n = keys.shape[0]
    num, height, width = (int(s) for s in images.shape)
    if count == 0 or n == 0:
        return torch.zeros(n, canvas, canvas, dtype=torch.float32, device=keys.device)
    # Uniform over the other M - 1 digits: draw from M - 1 and skip the target's index.
    source = rng.integers(keys, episodes, STREAM_DISTRACTOR_SOURCE, num - 1, (count,))  # (N, D)
    source = source + (source >= target[:, None]).long()
    sources = images[source.reshape(-1)][:, None]  # (N*D, 1, H, W)
    if digit_size is not None:
        sources, height, width = _shrink(sources, digit_size), digit_size, digit_size
    crop = _inside_corners(keys, episodes, STREAM_DISTRACTOR_CROP, (count,), (width - size, height - size))
    fragments = extract_glimpses(
        sources,
        centers_from_corners_px(crop.reshape(-1, 2), height, width, size=size),
        size=size,
        validate=False,  # centres of integer corners
    ).view(n, count, size, size)  # float32 in [0, 1]
    where = _inside_corners(keys, episodes, STREAM_DISTRACTOR_CORNER, (count,), (canvas - size, canvas - size))
    return _paste_sum(fragments, where, canvas)


# ----------------------------------------------------------------------------------------------------
# Static digit canvases
# ----------------------------------------------------------------------------------------------------


def _target_index(keys: Tensor, episodes: Tensor, num: int, target: Tensor | None) -> Tensor:
    """Each row's target digit: ``target`` ``(N,)`` when given (a fixed test set), else drawn."""
    if target is None:
        return rng.integers(keys, episodes, STREAM_TARGET_DIGIT, num)  # (N,)
    if tuple(target.shape) != tuple(keys.shape) or target.dtype != torch.int64:
        raise ValueError(f"target must be int64 {tuple(keys.shape)}; got {target.dtype} {tuple(target.shape)}")
    if bool(((target < 0) | (target >= num)).any()):
        raise ValueError(f"target indices must lie in [0, {num}); got {target.min().item()}..{target.max().item()}")
    return target.to(keys.device)


def plain_digits(
    images: Tensor, labels: Tensor, keys: Tensor, episodes: Tensor, *, target: Tensor | None = None
) -> tuple[Tensor, Tensor]:
    r"""A uniformly random digit of the set per row, as it is (MNIST: ``28 x 28``).

    Conventions: ``images`` uint8 ``(M, H, W)``, ``labels`` ``(M,)``, ``keys``/``episodes`` ``(N,)``
    int64, all on one device. Draws: the digit index from ``STREAM_TARGET_DIGIT``. Every digit task takes
    ``target``: ``(N,)`` int64 indices of each row's digit in the set, instead of drawing them (a fixed
    test set shows test digit ``j`` as its example ``j``).

    Returns:
        ``(canvases, labels)``: uint8 ``(N, 1, H, W)`` and ``(N,)`` (the labels' dtype).

    Example:
        >>> imgs, labs = torch.zeros(3, 28, 28, dtype=torch.uint8), torch.tensor([4, 7, 9])
        >>> x, y = plain_digits(imgs, labs, torch.tensor([0, 1]), torch.tensor([0, 0]))
        >>> x.shape, x.dtype
        (torch.Size([2, 1, 28, 28]), torch.uint8)
    """
    rng.check_keys(keys, episodes)
    _check_digits(images, labels, keys)
    index = _target_index(keys, episodes, int(images.shape[0]), target)  # (N,)
    return images[index][:, None], labels[index]


def digits_on_canvas(
    images: Tensor,
    labels: Tensor,
    keys: Tensor,
    episodes: Tensor,
    *,
    canvas: int,
    digit_size: int | None = None,
    distractors: int = 0,
    distractor_size: int | None = 8,
    target: Tensor | None = None,
) -> tuple[Tensor, Tensor]:
    r"""The one recipe of the still digit tasks: a digit, whole, at a random position on a canvas, with clutter.

    :func:`translated_digits`, :func:`cluttered_digits` and :func:`scaled_digits` are this function with
    some arguments fixed; their docstrings state each recipe.

    - The target digit (``target``, or drawn from ``STREAM_TARGET_DIGIT``) is shrunk to
      ``digit_size x digit_size`` when ``digit_size`` is given (:func:`scaled_digits`), else kept as it is,
      and pasted at a uniformly random integer corner (``STREAM_TARGET_CORNER``) that keeps it whole.
    - ``distractors`` ``distractor_size`` fragments of other digits of the set (shrunk the same way), each
      whole inside the canvas (:func:`cluttered_digits` describes the draws).
    - Layers are summed in ``[0, 255]`` units, rounded to nearest and clipped to 255.

    Args:
        canvas: side of the square canvas; at least the (shrunk) digit's size.
        digit_size: side of the shrunk digit (it must divide the digit side), or ``None`` for full size.
        distractors: number of fragments, >= 0 (>= 1 needs at least two digits in the set).
        distractor_size: fragment side in canvas pixels, in ``[1, digit side]``; ``None`` (shrunk digits
            only): ``max(1, 8 * digit_size // H)``.

    Returns:
        ``(canvases, labels)``: uint8 ``(N, 1, canvas, canvas)`` and ``(N,)`` (the target's label).
    """
    rng.check_keys(keys, episodes)
    _check_digits(images, labels, keys)
    height, width = int(images.shape[1]), int(images.shape[2])
    if digit_size is None:
        canvas = _check_canvas(canvas, images)
    else:
        digit_size = _check_digit_size(digit_size, images)
        canvas = check_positive_int(canvas, "canvas")
        if canvas < digit_size:
            raise ValueError(f"canvas must be >= digit_size ({digit_size}) so a digit fits inside; got {canvas}")
        height = width = digit_size
        if distractor_size is None:
            distractor_size = max(1, 8 * digit_size // int(images.shape[1]))
    distractors, distractor_size = _check_distractors(distractors, distractor_size, images, side=digit_size)
    index = _target_index(keys, episodes, int(images.shape[0]), target)  # (N,)
    corner = _inside_corners(keys, episodes, STREAM_TARGET_CORNER, (), (canvas - width, canvas - height))
    digit = images[index][:, None]  # (N, 1, H, W) uint8
    if digit_size is not None:
        digit = _shrink(digit, digit_size)  # (N, 1, d, d) float32 in [0, 1]
    layers = _paste_sum(digit, corner[:, None], canvas)
    layers += _distractor_layer(images, index, keys, episodes, distractors, distractor_size, canvas, digit_size)
    return _to_uint8(layers)[:, None], labels[index]


def translated_digits(
    images: Tensor, labels: Tensor, keys: Tensor, episodes: Tensor, *, canvas: int = 60,
    target: Tensor | None = None,
) -> tuple[Tensor, Tensor]:
    r"""Translated MNIST: a random digit at a uniformly random position fully inside a zero canvas.

    Conventions: as :func:`plain_digits`. The corner ``(x0, y0)`` is uniform over the
    ``(canvas - W + 1) x (canvas - H + 1)`` positions that keep the whole digit inside.
    Draws: the digit from ``STREAM_TARGET_DIGIT``, the corner from ``STREAM_TARGET_CORNER``.

    Args:
        canvas: side of the square canvas; at least the digit size. 60 as in RAM (Mnih et al., 2014).

    Returns:
        ``(canvases, labels)``: uint8 ``(N, 1, canvas, canvas)`` and ``(N,)``.
    """
    # No fragments: distractor_size 1 fits any digit and is never used.
    return digits_on_canvas(images, labels, keys, episodes, canvas=canvas, distractors=0, distractor_size=1,
                            target=target)


def cluttered_digits(
    images: Tensor,
    labels: Tensor,
    keys: Tensor,
    episodes: Tensor,
    *,
    canvas: int = 60,
    distractors: int = 4,
    distractor_size: int = 8,
    target: Tensor | None = None,
) -> tuple[Tensor, Tensor]:
    r"""Cluttered MNIST after DeepMind's mnist-cluttered: a digit among fragments of other digits.

    The usual settings are ``canvas=60, distractors=4`` and ``canvas=100, distractors=8``, with
    ``8 x 8`` fragments.

    - The target digit sits at a uniformly random corner that keeps it fully inside the canvas.
    - Each distractor is a ``distractor_size x distractor_size`` crop, at a uniformly random position
      fully inside a uniformly random **other** digit of the set (the index is drawn among the
      ``M - 1`` indices that are not the target's, so a fragment never comes from the target image;
      it may come from another image of the same class), pasted at a uniformly random position
      **fully inside** the canvas (fragments never hang off the edge, so every distractor is whole).
    - Everything is summed and clipped to 255 (see :func:`paste_patches`); fragments may overlap the
      target and each other.

    Conventions: as :func:`plain_digits`. Draws: the target as :func:`translated_digits` (the same digit
    and position for the same key and episode); fragments from ``STREAM_DISTRACTOR_SOURCE``,
    ``STREAM_DISTRACTOR_CROP`` and ``STREAM_DISTRACTOR_CORNER``, each ``(N, distractors)``.

    Args:
        canvas: side of the square canvas; at least the digit size.
        distractors: number of fragments, >= 0 (>= 1 needs at least two digits in the set).
        distractor_size: fragment side in pixels, in ``[1, digit side]``.

    Returns:
        ``(canvases, labels)``: uint8 ``(N, 1, canvas, canvas)`` and ``(N,)`` (the target's label).
    """
    return digits_on_canvas(images, labels, keys, episodes, canvas=canvas, distractors=distractors,
                            distractor_size=distractor_size, target=target)


def _shrink(images: Tensor, side: int) -> Tensor:
    """Square ``(B, C, H, H)`` pictures shrunk to ``(B, C, side, side)`` float32 in ``[0, 1]``: the retina's
    glimpse of the whole picture at ``factor = H / side`` (``side`` divides ``H``), i.e. the exact mean of
    each ``factor x factor`` block."""
    factor = int(images.shape[-1]) // side
    if images.shape[0] == 0:  # the retina refuses an empty batch
        return torch.zeros(0, images.shape[1], side, side, dtype=torch.float32, device=images.device)
    centers = torch.zeros(images.shape[0], 2, dtype=torch.float32, device=images.device)  # the picture's centre
    # Scale 1 covers side * factor = H pixels: the whole picture (its corner is exactly (0, 0)).
    return extract_glimpses(images, centers, size=side, scales=2, factor=factor, validate=False)[:, 1].to(torch.float32)


def _check_digit_size(digit_size: object, images: Tensor) -> int:
    height, width = int(images.shape[1]), int(images.shape[2])
    if height != width:
        raise ValueError(f"scaled_digits needs square digits to shrink by whole blocks; got {height}x{width}")
    sizes = [d for d in range(1, height + 1) if height % d == 0]
    if isinstance(digit_size, bool) or not isinstance(digit_size, int) or digit_size not in sizes:
        raise ValueError(
            f"digit_size must divide the digit side {height}, so that shrinking is an exact mean of whole "
            f"{height}/digit_size blocks: one of {sizes}; got {digit_size!r}"
        )
    return digit_size


def scaled_digits(
    images: Tensor,
    labels: Tensor,
    keys: Tensor,
    episodes: Tensor,
    *,
    canvas: int = 100,
    digit_size: int = 14,
    distractors: int = 0,
    distractor_size: int | None = None,
    target: Tensor | None = None,
) -> tuple[Tensor, Tensor]:
    r"""Small digits on a large canvas, where zooming matters: a shrunk digit at a random position.

    - The target digit is shrunk from ``H x H`` to ``digit_size x digit_size`` by the exact mean of each
      ``f x f`` block, ``f = H / digit_size`` (the retina's scale-1 glimpse of the whole digit at factor
      ``f``; for MNIST's 28 px, ``digit_size`` is one of 1, 2, 4, 7, 14, 28). So a 14 px digit is its
      28 px original averaged over 2 x 2 blocks: a retina whose finest scale is a canvas crop reads it at
      full detail, while a coarse scale at factor 2 sees it 7 px wide.
    - It is pasted at a uniformly random integer corner that keeps it whole inside the canvas.
    - ``distractors`` fragments as in :func:`cluttered_digits` (of other digits, whole inside the canvas),
      but cut from the other digits **shrunk the same way**, so clutter has the digit's stroke width and
      cannot be told apart by scale. ``distractor_size`` is in canvas pixels, in ``[1, digit_size]``;
      by default ``max(1, 8 * digit_size // 28)``, cluttered MNIST's 8 of 28 (4 px for 14 px digits).
    - Everything is summed in ``[0, 255]`` units, rounded to nearest and clipped to 255 (a shrunk pixel
      is its block mean rounded to nearest: a block mean ending in exactly .5 may round either way).

    Conventions: as :func:`plain_digits`. Draws: the target from ``STREAM_TARGET_DIGIT`` (the digit the
    other static tasks pick for this key and episode), its corner from ``STREAM_TARGET_CORNER`` over
    ``[0, canvas - digit_size]`` per axis, fragments from ``STREAM_DISTRACTOR_SOURCE``,
    ``STREAM_DISTRACTOR_CROP`` (corner inside the shrunk digit) and ``STREAM_DISTRACTOR_CORNER``.

    Args:
        canvas: side of the square canvas; at least ``digit_size``. 100 by default: a 14 px digit then
            covers 2% of the canvas (a 28 px digit on cluttered MNIST's 60 px canvas covers 22%).
        digit_size: side of the shrunk digit in pixels; must divide the digit side.
        distractors: number of fragments, >= 0 (>= 1 needs at least two digits in the set).
        distractor_size: fragment side in canvas pixels, in ``[1, digit_size]``; ``None`` for the default.

    Returns:
        ``(canvases, labels)``: uint8 ``(N, 1, canvas, canvas)`` and ``(N,)`` (the target's label).

    Example:
        >>> imgs = torch.full((2, 28, 28), 100, dtype=torch.uint8)
        >>> x, y = scaled_digits(imgs, torch.tensor([3, 5]), torch.tensor([0]), torch.tensor([0]), canvas=30)
        >>> x.shape, int((x > 0).sum())  # a 14 x 14 square of 100s
        (torch.Size([1, 1, 30, 30]), 196)
    """
    if digit_size is None:  # None means "not shrunk" to digits_on_canvas: refuse it as before
        _check_digit_size(digit_size, images)
    return digits_on_canvas(images, labels, keys, episodes, canvas=canvas, digit_size=digit_size,
                            distractors=distractors, distractor_size=distractor_size, target=target)


def plain_images(
    images: Tensor, labels: Tensor, keys: Tensor, episodes: Tensor, *, target: Tensor | None = None
) -> tuple[Tensor, Tensor]:
    r"""A uniformly random still picture of the set per row, as it is: :func:`plain_digits` for ``C`` channels.

    Conventions: ``images`` uint8 ``(M, C, H, W)`` (e.g. an image folder loaded by
    :func:`envs.data.load_image_folder`), ``labels`` ``(M,)`` integers, ``keys``/``episodes`` ``(N,)``
    int64, all on one device. Draws: the index from ``STREAM_TARGET_DIGIT``, or ``target`` ``(N,)``.

    Returns:
        ``(pictures, labels)``: uint8 ``(N, C, H, W)`` and ``(N,)``.

    Example:
        >>> imgs, labs = torch.zeros(3, 3, 8, 8, dtype=torch.uint8), torch.tensor([0, 1, 2])
        >>> plain_images(imgs, labs, torch.tensor([0, 1]), torch.tensor([0, 0]))[0].shape
        torch.Size([2, 3, 8, 8])
    """
    rng.check_keys(keys, episodes)
    check_shape(images, "images", "(M, C, H, W)")
    if images.dtype != torch.uint8:
        raise TypeError(f"images must be uint8 (M, C, H, W); got {images.dtype}")
    if images.shape[1] == 0:
        raise ValueError(f"images must have at least one channel; got {tuple(images.shape)}")
    _check_digits(images[:, 0], labels, keys)  # labels, sizes and devices, as for digits
    index = _target_index(keys, episodes, int(images.shape[0]), target)  # (N,)
    return images[index], labels[index]


# ----------------------------------------------------------------------------------------------------
# Moving MNIST
# ----------------------------------------------------------------------------------------------------


def _bounce(unfolded: Tensor, room: Tensor) -> Tensor:
    """Fold free motion ``unfolded`` into ``[0, room]`` by reflecting at both ends (a triangle wave)."""
    period = 2.0 * room
    folded = room - (torch.remainder(unfolded, period.clamp(min=1.0)) - room).abs()
    return torch.where(room > 0, folded, torch.zeros_like(folded))


def moving_positions(
    keys: Tensor,
    episodes: Tensor,
    *,
    frames: int = 20,
    canvas: int = 64,
    digits: int = 1,
    speed: float = 3.0,
    digit_size: int | tuple[int, int] = 28,
) -> Tensor:
    r"""The continuous top-left positions of the digits of :func:`moving_digits`, every frame.

    Conventions:

    - Output ``(N, frames, digits, 2)`` float64 ``(x, y)`` in pixels; digit ``d`` at frame ``t`` is
      drawn at the integer corner ``floor(p + 1/2)`` (nearest, halves up) of its position ``p``.
    - Each axis ranges over ``[0, room]`` with ``room = canvas - digit extent`` on that axis, so a digit
      is always fully inside the canvas.
    - Frame 0: ``p`` uniform in ``[0, room)`` per axis (``STREAM_MOVING_START``); direction
      ``theta`` uniform in ``[0, 2 pi)`` (``STREAM_MOVING_ANGLE``); velocity
      ``speed * (cos theta, sin theta)`` pixels per frame (+y down).
    - Motion: ``p += v`` each frame; at an edge the position is reflected about it and that component of
      ``v`` flips (``p > room`` becomes ``2 room - p``, ``p < 0`` becomes ``-p``), so ``|v_x|`` and ``|v_y|``
      never change. Computed in closed form (a triangle wave), exact for any speed. Along an axis with
      no room (the digit spans the canvas) the position stays 0.

    Args:
        frames: number of frames ``T`` (>= 1).
        canvas: side of the square canvas.
        digits: number of moving digits (>= 1).
        speed: pixels per frame (>= 0), 3.0 by default (Srivastava et al. 2015 move digits a few pixels
            per frame; 3 crosses a 64 - 28 = 36 px range in 12 frames).
        digit_size: the digit's side, or ``(height, width)``; at most ``canvas``.
    """
    rng.check_keys(keys, episodes)
    frames = check_positive_int(frames, "frames")
    canvas = check_positive_int(canvas, "canvas")
    digits = check_positive_int(digits, "digits")
    height, width = (digit_size, digit_size) if isinstance(digit_size, int) else tuple(digit_size)
    if not (1 <= height <= canvas and 1 <= width <= canvas):
        raise ValueError(f"digit_size must be in [1, canvas={canvas}]; got {digit_size!r}")
    check_number(speed, "speed", why="(pixels per frame)")
    room = torch.tensor([canvas - width, canvas - height], dtype=torch.float64, device=keys.device)  # (2,)
    start = rng.uniform(keys, episodes, STREAM_MOVING_START, (digits, 2)) * room  # (N, D, 2)
    theta = rng.uniform(keys, episodes, STREAM_MOVING_ANGLE, (digits,)) * (2.0 * math.pi)  # (N, D)
    velocity = float(speed) * torch.stack([torch.cos(theta), torch.sin(theta)], dim=-1)  # (N, D, 2)
    t = torch.arange(frames, dtype=torch.float64, device=keys.device)[None, :, None, None]  # (1, T, 1, 1)
    unfolded = start[:, None] + velocity[:, None] * t  # (N, T, D, 2)
    return _bounce(unfolded, room)


def moving_digits(
    images: Tensor,
    labels: Tensor,
    keys: Tensor,
    episodes: Tensor,
    *,
    frames: int = 20,
    canvas: int = 64,
    digits: int = 1,
    distractors: int = 0,
    distractor_size: int = 8,
    speed: float = 3.0,
    target: Tensor | None = None,
) -> tuple[Tensor, Tensor]:
    r"""Moving MNIST (Srivastava et al., 2015): digits bouncing inside a canvas, optionally on clutter.

    - ``digits`` (1 or 2) digits move as :func:`moving_positions` describes: a random start fully
      inside, a random direction, a fixed ``speed`` in pixels per frame, reflection off the edges, drawn
      at the rounded integer corner each frame.
    - The first digit is the **target**: the label is its class. With ``digits=2`` the second digit is
      a moving distractor, a different image of the set (its index is never the target's; its class may
      coincide) drawn from ``STREAM_SECOND_DIGIT``.
    - ``distractors`` static ``distractor_size`` fragments, cut and placed as in
      :func:`cluttered_digits` (fully inside, never from the target image), are the same in every frame.
    - Each frame is the sum of its layers, clipped to 255.

    Memory: the video is ``N * T * canvas**2`` bytes (256 episodes of 20 64x64 frames: 21 MB).

    Conventions: as :func:`plain_digits`; the target digit is the same one the static tasks pick for
    this key and episode.

    Returns:
        ``(video, labels)``: uint8 ``(N, frames, 1, canvas, canvas)`` and ``(N,)``.
    """
    rng.check_keys(keys, episodes)
    _check_digits(images, labels, keys)
    canvas = _check_canvas(canvas, images)
    if isinstance(digits, bool) or digits not in (1, 2):
        raise ValueError(f"digits must be 1 or 2; got {digits!r}")
    if digits == 2 and images.shape[0] < 2:
        raise ValueError(f"a second moving digit must be another image, so the set needs >= 2; got {images.shape[0]}")
    distractors, distractor_size = _check_distractors(distractors, distractor_size, images)
    n, num, height, width = keys.shape[0], int(images.shape[0]), int(images.shape[1]), int(images.shape[2])
    index = _target_index(keys, episodes, num, target)[:, None]  # (N, 1)
    if digits == 2:
        other = rng.integers(keys, episodes, STREAM_SECOND_DIGIT, num - 1)
        index = torch.cat([index, (other + (other >= index[:, 0]).long())[:, None]], dim=1)  # (N, 2)
    positions = moving_positions(
        keys, episodes, frames=frames, canvas=canvas, digits=digits, speed=speed, digit_size=(height, width)
    )
    corners = torch.floor(positions + 0.5).long()  # (N, T, D, 2)
    patches = images[index][:, None].expand(n, frames, digits, height, width)  # (N, T, D, H, W), a view
    layers = _paste_sum(
        patches.reshape(n * frames, digits, height, width), corners.reshape(n * frames, digits, 2), canvas
    ).view(n, frames, canvas, canvas)
    if distractors > 0:
        layers += _distractor_layer(images, index[:, 0], keys, episodes, distractors, distractor_size, canvas)[:, None]
    return _to_uint8(layers)[:, :, None], labels[index[:, 0]]


# ----------------------------------------------------------------------------------------------------
# User videos
# ----------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class VideoSource:
    """A validated set of ``M`` labelled videos in the layout the env serves: build with :func:`as_video_source`.

    Attributes:
        frames: ``(M, T, C, H, W)`` uint8, or floating point in ``[0, 1]``.
        labels: ``(M,)`` integer labels.
    """

    frames: Tensor
    labels: Tensor

    def __post_init__(self) -> None:  # cheap checks only; the value range is checked by as_video_source
        check_shape(self.frames, "frames", "(M, T, C, H, W)")
        check_shape(self.labels, "labels", "(M,)", (self.frames.shape[0],))
        if self.frames.dtype != torch.uint8 and self.frames.dtype not in _FLOAT_DTYPES:
            raise TypeError(f"frames must be uint8 or floating point in [0, 1]; got {self.frames.dtype}")
        if self.labels.dtype.is_floating_point or self.labels.dtype.is_complex or self.labels.dtype == torch.bool:
            raise TypeError(f"labels must be an integer tensor (M,); got {self.labels.dtype}")
        if any(s == 0 for s in self.frames.shape):
            raise ValueError(f"frames must hold at least one non-empty video; got {tuple(self.frames.shape)}")
        if self.labels.device != self.frames.device:
            raise ValueError(
                f"frames and labels must be on one device; got {self.frames.device} and {self.labels.device}"
            )


def as_video_source(frames: Tensor, labels: Tensor) -> VideoSource:
    r"""Validate a user's labelled videos once and lay them out as ``(M, T, C, H, W)``.

    Conventions:

    - ``frames``: ``(M, T, H, W)`` (one channel) or channels-last ``(M, T, H, W, C)`` with ``C <= 4``
      channels (grey, RGB, RGBA, ...), uint8 or floating point in ``[0, 1]``; the dtype is kept. Channels-first
      input is not accepted here: a 5-D tensor whose last axis is longer than 4 is refused (it is most likely
      ``(M, T, C, H, W)``; pass ``frames.permute(0, 1, 3, 4, 2)``, or wrap it directly in :class:`VideoSource`).
    - ``labels``: ``(M,)`` integers ``>= 0``, one per video, on the frames' device (the classes are
      ``0 .. max(labels)``).

    Returns:
        A :class:`VideoSource` with contiguous ``(M, T, C, H, W)`` frames, to pass to :func:`video_frames`.
    """
    if not isinstance(frames, Tensor):
        raise TypeError(f"frames must be a torch.Tensor (M, T, H, W) or (M, T, H, W, C); got {type(frames).__name__}")
    if frames.dim() == 4:
        laid_out = frames[:, :, None]
    elif frames.dim() == 5:
        if frames.shape[-1] > _MAX_VIDEO_CHANNELS:
            hint = (f" (it looks channels-first (M, T, C, H, W) with C = {frames.shape[2]}: pass "
                    f"frames.permute(0, 1, 3, 4, 2))" if frames.shape[2] <= _MAX_VIDEO_CHANNELS else "")
            raise ValueError(f"5-D frames must be channels-last (M, T, H, W, C) with C <= {_MAX_VIDEO_CHANNELS}; got "
                             f"{tuple(frames.shape)}, whose last axis has {frames.shape[-1]} entries{hint}")
        laid_out = frames.permute(0, 1, 4, 2, 3)
    else:
        raise ValueError(f"frames must be (M, T, H, W) or (M, T, H, W, C); got {tuple(frames.shape)}")
    if isinstance(labels, Tensor) and labels.dim() == 1 and labels.shape[0] != frames.shape[0]:
        raise ValueError(f"labels must have one entry per video: {frames.shape[0]} videos, {labels.shape[0]} labels")
    source = VideoSource(laid_out.contiguous(), labels)
    if int(source.labels.min()) < 0:  # a video with a negative label could never be named: no reward, ever
        raise ValueError(f"labels must be integers >= 0 (the classes are 0 .. max(labels)); got a label "
                         f"{int(source.labels.min())}")
    if source.frames.is_floating_point():
        low, high = float(source.frames.min()), float(source.frames.max())
        if not (0.0 <= low and high <= 1.0):  # also catches NaN
            raise ValueError(f"float frames must lie in [0, 1]; got values in [{low}, {high}]")
    return source


def video_frames(
    frames: Tensor | VideoSource, labels: Tensor | None, keys: Tensor, episodes: Tensor, *,
    target: Tensor | None = None,
) -> tuple[Tensor, Tensor]:
    r"""A uniformly random labelled video of a user's source per row.

    Conventions:

    - ``frames``: a :class:`VideoSource` from :func:`as_video_source` (validated once; pass
      ``labels=None``) — the way to use it in an env — or raw ``(M, T, H, W)`` / ``(M, T, H, W, C)``
      frames with their ``(M,)`` ``labels``, validated and converted on every call.
    - ``keys``/``episodes``: ``(N,)`` int64 on the source's device. The video index is drawn from
      ``STREAM_VIDEO``.

    Returns:
        ``(video, labels)``: ``(N, T, C, H, W)`` in the source's dtype, and ``(N,)``.
    """
    rng.check_keys(keys, episodes)
    if isinstance(frames, VideoSource):
        if labels is not None:
            raise ValueError("a VideoSource carries its labels: pass labels=None")
        source = frames
    else:
        if labels is None:
            raise ValueError("labels are required with raw frames (or pass a VideoSource from as_video_source)")
        source = as_video_source(frames, labels)
    if source.frames.device != keys.device:
        raise ValueError(f"the video source must be on keys.device ({keys.device}); got {source.frames.device}")
    num = int(source.frames.shape[0])
    index = rng.integers(keys, episodes, STREAM_VIDEO, num) if target is None else _target_index(keys, episodes, num, target)
    return source.frames[index], source.labels[index]
