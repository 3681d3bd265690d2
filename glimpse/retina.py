r"""The multi-scale retina: exact area-averaged glimpses, batched, on any device.

A glimpse at scale ``k`` (0-based) covers a square window of side ``size * factor**k`` pixels and
reduces it to ``size x size`` by the **mean of each** ``factor**k x factor**k`` **block** — an area
average, so coarse scales do not alias the way a point sample (``grid_sample``) does. Pixels outside
the image count as 0.

Conventions: images are ``(B, C, H, W)``; glimpses are ``(B, S, C, size, size)`` with ``S`` scales, finest
first; locations are ``(x, y)`` in the project's normalized frame (stated once, in :mod:`glimpse`).

Rounding. Windows are snapped to the pixel grid: the top-left corner of the scale-``k`` window is
``floor(c_px - side_k / 2 + 1/2)`` per axis (the exact corner rounded to the nearest integer, halves
rounding up — a corner within 1e-3 px below a half counts as the half, so that float32 round-off of a
centre cannot flip a tie), each scale independently. When the exact corner is already an integer the glimpse is
exactly the naive pad-crop-block-average; otherwise it is that of the window shifted by less than half
a pixel. Nothing is interpolated.

How. Two exact algorithms, one per use, both float32 sums of [0, 1] pixels (float64 for float64 images):

- :func:`extract_glimpses` (one call): each sample's largest window is copied out in two look-ups (its
  rows, then its columns) and reduced to a pyramid of block means, each level the mean of ``factor``
  strided copies of the one below per axis; every scale is a central crop of its level. Its cost
  follows the window size, not the image size. (The windows nest on the block grid whenever ``size`` is
  even or ``factor`` odd; otherwise each scale gets its own window.) On the CPU its intermediates go to
  per-thread buffers kept between calls (up to 256 MiB per thread), so repeated calls touch no fresh pages.
- :class:`GlimpseSensor` (one batch of images, glimpsed many times, as in an episode): preparing
  computes, for every scale, the mean of the block at *every* block start of the zero-padded images
  (planes of block means, each from the one below); a glimpse is then a single gather of
  ``S * size**2`` means, whatever ``factor``.
"""

from __future__ import annotations

import functools
import math
import numbers
import threading
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from glimpse import _fused
from glimpse.checks import ArgumentError, check_finite, check_positive_int, check_shape
from glimpse.modes import outside_inference_mode

__all__ = ["RetinaSpec", "RetinaError", "retina_spec", "extract_glimpses", "GlimpseSensor", "window_corners_px",
           "centers_from_corners_px", "grid_cell_centers", "scale_gains", "coarse_view"]

# A corner this close below a half-pixel still rounds up: float32 centres cannot hold most ties exactly,
# and a tie must not flip with the last bit of a centre. Integer corners are unaffected.
_TIE_PX = 1e-3

_FLOAT_DTYPES = (torch.float16, torch.bfloat16, torch.float32, torch.float64)


def _check_images(images: Tensor) -> None:
    check_shape(images, "images", "(B, C, H, W)")
    if images.dtype != torch.uint8 and images.dtype not in _FLOAT_DTYPES:
        raise TypeError(f"images must be uint8 or floating point; got {images.dtype}")
    if images.shape[0] == 0 or images.shape[1] == 0 or images.shape[2] == 0 or images.shape[3] == 0:
        raise ValueError(f"images must have no empty dimension; got {tuple(images.shape)}")


class RetinaError(ArgumentError):
    """A retina that cannot work; ``field`` is the one of :class:`RetinaSpec` it concerns (``"size"``,
    ``"scales"`` or ``"factor"``), so that a caller naming them otherwise (an env's ``glimpse_size``, a
    script's ``--glimpse-size``) re-words the message with :meth:`~glimpse.checks.ArgumentError.renamed` or
    :meth:`~glimpse.checks.ArgumentError.worded`."""

    FIELDS = ("size", "scales", "factor")


@dataclass(frozen=True)
class RetinaSpec:
    r"""The retina as one value: ``scales`` glimpses of ``size x size`` pixels at each centre, scale ``k``
    covering ``size * factor**k`` pixels (area-averaged down to ``size``).

    Validated once, here: each field must be an integer ``>= 1`` (NumPy integers pass and are kept as
    ``int``; ``bool`` and floats do not), else a :class:`RetinaError` naming it. Frozen, so that whoever
    is handed it (an env, its scene, a :class:`GlimpseSensor`, the pictures) reads the same retina.

    Example:
        >>> RetinaSpec(12, scales=3).sides
        (12, 24, 48)
        >>> RetinaSpec(0)
        Traceback (most recent call last):
        ...
        glimpse.retina.RetinaError: size must be an integer >= 1; got 0
    """

    size: int
    """glimpse side in pixels (every scale's output is ``size x size``)"""
    scales: int = 1
    """number of scales ``S``"""
    factor: int = 2
    """ratio of window sides between consecutive scales"""

    def __post_init__(self) -> None:
        for field in RetinaError.FIELDS:
            try:
                value = check_positive_int(getattr(self, field), "{name}")
            except ValueError as error:
                raise RetinaError(field, str(error)) from None
            object.__setattr__(self, field, value)

    @property
    def sides(self) -> tuple[int, ...]:
        """Each scale's window side in pixels, finest first: ``size * factor**k``."""
        return tuple(self.size * self.factor**k for k in range(self.scales))

    def check_canvas(self, height: int, width: int) -> None:
        """Refuse (:class:`RetinaError`) a retina that does not fit an ``height x width`` canvas: a glimpse
        larger than the canvas, or scales beyond the first whose window covers the whole canvas from any
        centre (a side of twice the canvas: centred on a corner, it still reaches the far one), which would
        add only padding while their planes grow with the square of their windows."""
        if self.size > min(height, width):
            raise RetinaError("size", f"{{name}} {self.size} is larger than the {height}x{width} canvas")
        side = max(height, width)
        covering = next((k for k, window in enumerate(self.sides) if window >= 2 * side), self.scales - 1)
        if covering < self.scales - 1:
            raise RetinaError(
                "scales", f"{{name}}{{=}}{self.scales} is too many for the {height}x{width} canvas: the "
                          f"scale-{covering} window ({self.sides[covering]} px) already covers the whole canvas from "
                          f"any glimpse centre (>= 2 x {side} px), so the scales above it add only padding; use "
                          f"{{scales}} <= {covering + 1} (or a smaller {{size}} or {{factor}})")


def retina_spec(retina: RetinaSpec | None = None, size: int | None = None, scales: int | None = None,
                factor: int | None = None) -> RetinaSpec:
    """The retina a function was handed: ``retina`` itself, else ``RetinaSpec(size, scales, factor)``
    (``scales`` 1 and ``factor`` 2 by default); a ``ValueError`` if it was handed both."""
    if retina is None:
        return RetinaSpec(size, 1 if scales is None else scales, 2 if factor is None else factor)
    if not isinstance(retina, RetinaSpec):
        raise TypeError(f"retina must be a glimpse.RetinaSpec; got {type(retina).__name__}")
    given = {k: v for k, v in dict(size=size, scales=scales, factor=factor).items() if v is not None}
    if given:
        raise ValueError(f"pass the retina as retina= or as size/scales/factor, not both; got retina={retina} and "
                         f"{', '.join(f'{k}={v!r}' for k, v in given.items())}")
    return retina


def _check_centers(centers: Tensor, batch: int | None = None, validate: bool = True) -> None:
    """Shape and dtype always (free); finiteness only with ``validate`` (it reads the values: on CUDA a
    host synchronisation)."""
    check_shape(centers, "centers", "(B, 2)", (batch, 2))
    if not centers.is_floating_point():
        raise TypeError(f"centers must be floating point (x, y) in [-1, 1]; got {centers.dtype}")
    if validate:
        check_finite(centers, "centers")


def window_corners_px(
    centers: Tensor, height: int, width: int, *, size: int | None = None, scales: int | None = None,
    factor: int | None = None, retina: RetinaSpec | None = None,
) -> Tensor:
    r"""Integer top-left corners of every scale's window, in pixels.

    Conventions: ``centers`` is ``(B, 2)`` as normalized ``(x, y)`` (see :mod:`glimpse`); corners are
    ``(x0, y0)`` pixel indices (column, row), possibly outside the
    image. The scale-``k`` window spans ``[x0, x0 + size * factor**k)`` and its corner is
    ``floor(c_px - side / 2 + 1/2)``: the exact corner rounded to nearest, halves up.

    Args:
        centers: ``(B, 2)`` window centres.
        height: image height ``H`` in pixels.
        width: image width ``W`` in pixels.
        size: glimpse side in pixels at scale 0.
        scales: number of scales ``S`` (default 1).
        factor: ratio of window sides between consecutive scales (default 2).
        retina: the retina as one :class:`RetinaSpec`, instead of ``size``, ``scales``, ``factor``.

    Returns:
        ``(B, S, 2)`` int64 corners ``(x0, y0)``.

    Example:
        >>> window_corners_px(torch.tensor([[0.0, 0.0]]), 8, 8, size=2, scales=2).tolist()
        [[[3, 3], [2, 2]]]
    """
    retina = retina_spec(retina, size, scales, factor)
    _check_centers(centers)
    return _corners(centers, *_corner_constants(height, width, retina.size, retina.scales, retina.factor,
                                                centers.device))


@functools.lru_cache(maxsize=64)
@outside_inference_mode
def _corner_constants(height: int, width: int, size: int, scales: int, factor: int, device) -> tuple[Tensor, Tensor]:
    """``half_extent`` ``(2,)`` = ``(W/2, H/2)`` and ``shift`` ``(1, S, 1)`` = ``side_k / 2 - 1/2 - tie``, float64.

    Cached (read-only): building them costs as many small ops as a glimpse of a small batch."""
    half_extent = torch.tensor([width / 2.0, height / 2.0], dtype=torch.float64, device=device)
    half_sides = size * factor ** torch.arange(scales, dtype=torch.float64, device=device) / 2.0
    return half_extent, (half_sides - (0.5 + _TIE_PX)).view(1, -1, 1)


def _corners(centers: Tensor, half_extent: Tensor, shift: Tensor) -> Tensor:
    """``(B, S, 2)`` int64 corners ``floor((c + 1) * extent / 2 - side / 2 + 1/2 + tie)``: the one rounding rule."""
    # float64 so that pixel positions of large images round the same way on every device.
    c_px = (centers.detach().to(device=shift.device, dtype=torch.float64) + 1.0) * half_extent  # (B, 2)
    return torch.floor(c_px[:, None, :] - shift).long()


def centers_from_corners_px(corners: Tensor, height: int, width: int, *, size: int) -> Tensor:
    r"""Normalized centres whose ``size x size`` scale-0 window has the given integer top-left corners.

    The inverse of :func:`window_corners_px` at scale 0, so that an exact crop (or, with a window larger
    than the image, an exact paste onto a zero canvas) at pixel ``(x0, y0)`` goes through the retina.

    Args:
        corners: ``(B, 2)`` integer ``(x0, y0)`` in pixels.
        height: image height ``H``; width: image width ``W``.
        size: the window side in pixels.

    Returns:
        ``(B, 2)`` float32 centres ``(x, y)`` in ``[-1, 1]`` units (outside it when the window is).

    Example:
        >>> c = centers_from_corners_px(torch.tensor([[5, 0]]), 10, 20, size=4)
        >>> window_corners_px(c, 10, 20, size=4).tolist()
        [[[5, 0]]]
    """
    check_shape(corners, "corners", "(B, 2)", (None, 2))
    size = check_positive_int(size, "size")
    c_px = corners.to(torch.float64) + size / 2.0
    extent = torch.tensor([width, height], dtype=torch.float64, device=corners.device)
    return (2.0 * c_px / extent - 1.0).to(torch.float32)


def grid_cell_centers(grid: int, cells: Tensor | None = None, *, device: torch.device | str | None = None) -> Tensor:
    r"""Normalized centres of the cells of a ``grid x grid`` partition of an image (the "items" of item-wise
    attention, and the discrete actions of :class:`envs.GlimpseVectorEnv`).

    Conventions: the project's frame (see :mod:`glimpse`). Cell ``(column, row)`` spans
    ``[2 column / grid - 1, 2 (column + 1) / grid - 1]`` in ``x`` (likewise ``row`` in ``y``), so its
    centre is ``((2 column + 1) / grid - 1, (2 row + 1) / grid - 1)``, the same for any image size.

    Args:
        grid: cells per axis.
        cells: ``(..., 2)`` integer ``(column, row)`` of the cells wanted; ``None`` for every cell, row-major:
            item ``k`` is cell ``(k % grid, k // grid)``.
        device: where the result is made when ``cells`` is ``None`` (else ``cells.device``).

    Returns:
        float32 centres ``(x, y)``: ``(..., 2)`` for ``cells``, else ``(grid * grid, 2)``.

    Example:
        >>> grid_cell_centers(2)
        tensor([[-0.5000, -0.5000],
                [ 0.5000, -0.5000],
                [-0.5000,  0.5000],
                [ 0.5000,  0.5000]])
        >>> grid_cell_centers(4, torch.tensor([[3, 0]]))
        tensor([[ 0.7500, -0.7500]])
    """
    grid = check_positive_int(grid, "grid")
    if cells is None:
        index = torch.arange(grid, device=device)
        row, column = torch.meshgrid(index, index, indexing="ij")
        cells = torch.stack([column.flatten(), row.flatten()], dim=1)  # (K, 2)
    elif not isinstance(cells, Tensor) or cells.shape[-1:] != (2,):
        raise ValueError(f"cells must be a (..., 2) tensor of (column, row); got {getattr(cells, 'shape', cells)!r}")
    return (2 * cells.to(torch.float32) + 1) / grid - 1


def scale_gains(scales: int, gain: float, *, device: torch.device | str | None = None) -> Tensor:
    r"""Per-scale factors ``gain**k`` that turn the retina's block means into weighted block sums.

    Scale ``k`` is a mean over ``factor**k x factor**k`` pixels, so an isolated object of one pixel reads
    ``1 / factor**(2k)`` there (1/16 at the third scale of a factor-2 retina: Catch's ball and paddle).
    Multiplying scale ``k`` by ``gain**k`` with ``gain = factor**2`` makes every scale a sum over its block,
    so that pixel reads 1 at every scale; ``gain = 1`` leaves the glimpse as it is. A network fed the means
    needs weights ``factor**(2k)`` times larger to see a small object at a coarse scale, which Adam's
    bounded steps reach only slowly.

    Args:
        scales: ``S``, the retina's number of scales.
        gain: the factor between neighbouring scales, positive and finite.
        device: where the result is made.

    Returns:
        float32 ``(S, 1, 1, 1)``, broadcasting against glimpses ``(..., S, C, size, size)``.

    Example:
        >>> scale_gains(3, 4.0).flatten()
        tensor([ 1.,  4., 16.])
    """
    scales = check_positive_int(scales, "scales")
    if isinstance(gain, bool) or not isinstance(gain, numbers.Real) or not 0 < gain < math.inf:
        raise ValueError(f"scale_gain must be a positive finite number (4 = sums over 2x2 blocks per scale); "
                         f"got {gain!r}")
    exponents = torch.arange(scales, dtype=torch.float64, device=device)
    return (float(gain) ** exponents).to(torch.float32).view(scales, 1, 1, 1)


def coarse_view(images: Tensor, size: int) -> Tensor:
    r"""The whole image at ``size x size``: the mean of each of its ``size x size`` blocks (a "gist", Ba et al. 2015).

    The same area average as the retina's coarse scales, over the whole image instead of a window around a
    centre: with ``H = W = size * f`` it is exactly :func:`extract_glimpses`'s scale 1 at the centre with ``factor=f``.
    Blocks are ``H / size`` by ``W / size`` pixels, so ``size`` must divide both sides (nothing is interpolated).

    Args:
        images: ``(B, C, H, W)``, uint8 or floating point.
        size: the view's side in pixels; divides ``H`` and ``W``.

    Returns:
        ``(B, C, size, size)``: float32 in ``[0, 1]`` for uint8 images, else the images' dtype.

    Example:
        >>> coarse_view(torch.arange(16.0).view(1, 1, 4, 4), 2)[0, 0]
        tensor([[ 2.5000,  4.5000],
                [10.5000, 12.5000]])
    """
    _check_images(images)
    size = check_positive_int(size, "size")
    height, width = images.shape[-2:]
    if height % size or width % size:
        raise ArgumentError("size", f"{{name}}{{=}}{size} must divide the image's sides ({height}x{width}): a coarse view "
                                    f"averages whole blocks of pixels")
    blocks = F.avg_pool2d(images.to(_plane_dtype(images)), (height // size, width // size))  # (B, C, size, size)
    return (blocks / _pixel_scale(images)).to(_output_dtype(images))


def _output_dtype(images: Tensor) -> torch.dtype:
    """uint8 images give float32 in [0, 1]; floating images keep their dtype."""
    return torch.float32 if images.dtype == torch.uint8 else images.dtype


def _pixel_scale(images: Tensor) -> float:
    """What a pixel value of 1.0 is stored as: 255 for uint8 images."""
    return 255.0 if images.dtype == torch.uint8 else 1.0


def _plane_dtype(images: Tensor) -> torch.dtype:
    """The working dtype of windows and planes: float32, or float64 for float64 images."""
    return torch.float64 if images.dtype == torch.float64 else torch.float32


class _PlaneLayout:
    """Where each scale's plane of block means lies in a sensor's flat ``(N, C, total)`` buffer.

    All planes share the zero-padded canvas of margin ``P = factor**(scales - 1)`` (the largest block).
    Plane ``k`` is ``(H + 2P - b + 1, W + 2P - b + 1)`` with ``b = factor**k``; its entry ``[i, j]`` is the
    mean of the ``b x b`` block of the padded image whose top-left pixel is ``(i - P, j - P)`` in image
    pixels. Its first and last rows and columns are blocks wholly off the image (0), so clamping a block
    start into the plane is exact: any start beyond them is also a block of zeros.
    """

    def __init__(self, height: int, width: int, scales: int, factor: int) -> None:
        self.height, self.width, self.factor = height, width, factor
        self.blocks = [factor**k for k in range(scales)]
        self.margin = self.blocks[-1]
        self.padded = (height + 2 * self.margin, width + 2 * self.margin)
        self.shapes = [(self.padded[0] - b + 1, self.padded[1] - b + 1) for b in self.blocks]
        sizes = [h * w for h, w in self.shapes]
        self.offsets = [sum(sizes[:k]) for k in range(scales)]
        self.total = sum(sizes)
        # The largest x-mean while building plane k from plane k - 1: (H_{k-1}, W_k).
        self.scratch = max([self.shapes[k - 1][0] * self.shapes[k][1] for k in range(1, scales)], default=0)

    def plane(self, buffer: Tensor, k: int) -> Tensor:
        """Plane ``k`` of ``buffer`` ``(N, C, total)`` as an ``(N, C, H_k, W_k)`` view."""
        h, w = self.shapes[k]
        return buffer[..., self.offsets[k] : self.offsets[k] + h * w].unflatten(-1, (h, w))

    def zero_margins(self, buffer: Tensor) -> None:
        """Zero plane 0's margins, the only entries that preparing does not write."""
        plane, m = self.plane(buffer, 0), self.margin
        plane[..., :m, :] = 0
        plane[..., m + self.height :, :] = 0
        plane[..., :, :m] = 0
        plane[..., :, m + self.width :] = 0


def _mean(parts: list[Tensor], out: Tensor | None = None) -> Tensor:
    """Elementwise mean of equally shaped ``parts``, into ``out`` when given (one pass for two parts)."""
    if out is None:
        if len(parts) == 2:
            return torch.lerp(parts[0], parts[1], 0.5)
        return sum(parts[1:], parts[0]) / len(parts) if len(parts) > 1 else parts[0]
    if len(parts) == 1:
        return out.copy_(parts[0])
    if len(parts) == 2:
        return torch.lerp(parts[0], parts[1], 0.5, out=out)
    torch.add(parts[0], parts[1], out=out)
    for part in parts[2:]:
        out.add_(part)
    return out.mul_(1.0 / len(parts))


def _block_mean_planes(
    images: Tensor, layout: _PlaneLayout, out: Tensor | None = None, scratch: Tensor | None = None
) -> Tensor:
    """Every scale's block means at every block start, ``(N, C, layout.total)`` (see :class:`_PlaneLayout`).

    Plane ``k`` is the mean of ``factor`` shifted copies of plane ``k - 1`` along x, then along y: two
    passes per plane when ``factor`` is 2, whatever its block size. Pixels are scaled to ``[0, 1]``
    (``uint8``) on the way in. ``out``, when given (a previous buffer of the same shape whose margins are
    still zero), is filled in place, with the x-means in ``scratch`` (at least ``N * C * layout.scratch``
    entries): nothing is allocated, so there are no fresh pages to fault in. With autograd recording, a
    new differentiable buffer is built instead.
    """
    n, c, h, w = images.shape
    m, factor = layout.margin, layout.factor
    in_place = out is not None and not (images.requires_grad and torch.is_grad_enabled())
    if in_place:
        planes = [layout.plane(out, 0)]
        # The margins of a reused buffer are still zero; only the image's own pixels are rewritten.
        torch.mul(images, 1.0 / _pixel_scale(images), out=planes[0][..., m : m + h, m : m + w])
    else:
        planes = [F.pad(images.to(_plane_dtype(images)) * (1.0 / _pixel_scale(images)), (m, m, m, m))]
    for k in range(1, len(layout.blocks)):
        below, step = planes[-1], layout.blocks[k - 1]
        hk, wk = layout.shapes[k]
        across = [below[..., :, j * step : j * step + wk] for j in range(factor)]
        rows = below.shape[-2]
        x_means = _mean(across, scratch[: n * c * rows * wk].view(n, c, rows, wk) if in_place else None)
        down = [x_means[..., j * step : j * step + hk, :] for j in range(factor)]
        planes.append(_mean(down, layout.plane(out, k) if in_place else None))
    if in_place:
        return out
    return torch.cat([p.flatten(-2) for p in planes], dim=-1)


def _clamped_block_entries(layout: _PlaneLayout, k: int, size: int, axis: int, device) -> Tensor:
    """For every window corner ``c`` in ``[-L, E]`` along ``axis`` (0: x, 1: y; ``E`` the image extent),
    the entries of its ``size`` blocks in plane ``k``: ``(E + L + 1, size)`` int64.

    Block ``i`` starts at ``c + b * i``, index ``c + b * i + P`` in the plane, clamped onto its zero
    border; along y that is a row, counted in entries (times the plane's width) from the buffer's start
    (the plane's offset added), along x a column.
    """
    b, extent = layout.blocks[k], (layout.width, layout.height)[axis]
    height, width = layout.shapes[k]
    corners = torch.arange(-size * b, extent + 1, device=device)
    starts = (corners[:, None] + b * torch.arange(size, device=device) + layout.margin).clamp(0, (width, height)[axis] - 1)
    return starts if axis == 0 else starts * width + layout.offsets[k]


class GlimpseSensor:
    r"""A multi-scale retina prepared once for a batch of images, then glimpsed many times.

    With ``method="planes"``, preparing computes, for every scale, the mean of every
    ``factor**k x factor**k`` block of the zero-padded images (each scale's plane from the one below:
    two passes over the images per scale when ``factor`` is 2); every glimpse after that is a single
    gather of ``S * size**2`` means per sample, whatever ``factor``. Memory: about
    ``S * C * (H + 2 * factor**(S-1)) * (W + 2 * factor**(S-1))`` means per image. With
    ``method="windows"`` the sensor keeps a copy of the images and glimpses them as
    :func:`extract_glimpses` does, which is cheaper where the windows cover little of a large image.
    With ``method="fused"`` (CUDA, where Triton imports) the sensor keeps a copy of the images and one
    Triton kernel per scale averages each block straight from them: nothing is prepared, and a glimpse
    moves little more than its own bytes. ``"auto"`` takes ``"fused"`` on CUDA where it can, else planes
    when ``H * W <= 8 * (size * factor**(S-1))**2``, else windows. All give the same glimpses (up to
    float32 rounding); under autograd the fused sensor glimpses by windows (the kernel has no backward).
    Use a sensor where the same images are glimpsed several times (an episode); :func:`extract_glimpses`
    is the one-shot form.

    Conventions: as :func:`extract_glimpses`. ``images`` ``(N, C, H, W)`` uint8 or float; glimpses
    ``(B, S, C, size, size)``, float32 in ``[0, 1]`` for uint8 images, else the images' dtype. Means are
    float32 (float64 for float64 images). Gradients flow to ``images`` when they require grad.

    Args:
        images: ``(N, C, H, W)`` images to glimpse.
        size: glimpse side in pixels (every scale's output is ``size x size``).
        scales: number of scales ``S`` (default 1); scale ``k`` covers ``size * factor**k`` pixels.
        factor: ratio of window sides between consecutive scales (default 2).
        retina: the retina as one :class:`RetinaSpec` (kept in ``sensor.retina``), instead of ``size``,
            ``scales`` and ``factor``.
        method: ``"auto"``, ``"planes"``, ``"windows"`` or ``"fused"`` (see above); the choice is kept in
            ``sensor.method``.
        validate: check every call's centres for NaN/inf and its ``index`` for range, as
            ``torch.distributions`` does with ``validate_args``. Each check reads the values, which on CUDA
            is a host synchronisation per glimpse; a caller whose centres and rows are valid by
            construction (the envs, which validate actions once per step) passes ``False``.

    Example:
        >>> img = torch.arange(16.0).view(1, 1, 4, 4)
        >>> sensor = GlimpseSensor(img, size=2, scales=2)
        >>> sensor(torch.tensor([[0.0, 0.0]]))[0, :, 0]
        tensor([[[ 5.0000,  6.0000],
                 [ 9.0000, 10.0000]],
        <BLANKLINE>
                [[ 2.5000,  4.5000],
                 [10.5000, 12.5000]]])
    """

    def __init__(
        self, images: Tensor, *, size: int | None = None, scales: int | None = None, factor: int | None = None,
        retina: RetinaSpec | None = None, method: str = "auto", validate: bool = True,
    ) -> None:
        _check_images(images)
        self.validate = bool(validate)
        self.retina = retina_spec(retina, size, scales, factor)
        self.size, self.scales, self.factor = self.retina.size, self.retina.scales, self.retina.factor
        self.height, self.width = int(images.shape[-2]), int(images.shape[-1])
        self.channels = int(images.shape[1])
        self.input_dtype = images.dtype
        self.out_dtype = _output_dtype(images)
        self.num_images = int(images.shape[0])
        device = images.device
        self.method = _sensor_method(method, images, self.size, self.scales, self.factor)
        self.images: Tensor | None = None  # the images themselves, when glimpsed by windows or fused
        self.planes: Tensor | None = None
        if self.uses_planes:
            self._init_planes(_plane_dtype(images), device)
        self.prepare(images)
        self._half_extent, self._shift = _corner_constants(self.height, self.width, self.size, self.scales,
                                                           self.factor, device)

    @staticmethod
    def memory_bytes(
        shape: tuple[int, int, int, int], dtype: torch.dtype = torch.uint8, *, size: int | None = None,
        scales: int | None = None, factor: int | None = None, retina: RetinaSpec | None = None, method: str = "auto",
        device: torch.device | str = "cpu", batch: int | None = None,
    ) -> int:
        """Bytes a sensor on images of ``shape`` ``(N, C, H, W)`` and ``dtype`` would take, without making one.

        What it keeps (the planes and their scratch, or its copy of the images), plus what one glimpse of
        ``batch`` rows (default ``N``) allocates; an estimate to refuse a size that cannot fit before
        allocating it (the small look-up tables are not counted). Arguments as for the sensor.
        """
        n, channels, height, width = (int(d) for d in shape)
        retina = retina_spec(retina, size, scales, factor)
        size, scales, factor = retina.size, retina.scales, retina.factor
        probe = torch.empty(0, dtype=dtype, device=device)  # what the method choice reads: dtype and device
        method = _sensor_method(method, probe, size, scales, factor, (height, width))
        batch = n if batch is None else batch
        pixel, work, out = dtype.itemsize, _plane_dtype(probe).itemsize, _output_dtype(probe).itemsize
        glimpses = batch * scales * channels * size * size * out
        if method == "planes":
            layout = _PlaneLayout(height, width, scales, factor)
            # The planes and x-mean scratch; a glimpse's int64 entries (per block, and per mean with channels)
            # and its output.
            entries = batch * scales * size * size * 8 * (1 + (channels if channels > 1 else 0))
            return n * channels * (layout.total + layout.scratch) * work + entries + glimpses
        kept = n * channels * height * width * pixel
        if method == "fused":
            return kept + glimpses
        side = size * factor ** (scales - 1)  # the largest window, copied out row strip first
        window = batch * channels * (side * width * pixel + side * side * (pixel + work))
        levels, h = 0, side
        for _ in range(scales - 1):  # its block-mean pyramid: the x-means and the level of each step
            levels, h = levels + batch * channels * (h * (h // factor) + (h // factor) ** 2) * work, h // factor
        return kept + window + levels + glimpses

    @property
    def uses_planes(self) -> bool:
        """Whether this sensor glimpses from planes of block means (``method == "planes"``)."""
        return self.method == "planes"

    @outside_inference_mode
    def _init_planes(self, dtype: torch.dtype, device: torch.device) -> None:
        """The planes buffer (margins zeroed once), the x-mean scratch and the look-up tables."""
        size, scales, num_images = self.size, self.scales, self.num_images
        layout = self._layout = _PlaneLayout(self.height, self.width, scales, self.factor)
        self.planes = torch.empty((num_images, self.channels, layout.total), dtype=dtype, device=device)
        layout.zero_margins(self.planes)
        self._scratch = torch.empty(num_images * self.channels * layout.scratch, dtype=dtype, device=device)
        # Per scale and axis, a table from the window's corner to its blocks' (clamped) entries; see
        # _clamped_block_entries. Corners clamp into [-L, W] x [-L, H] first: beyond that a window is
        # wholly off the image, all zeros, and so is the clamped corner's.
        sides = [size * b for b in layout.blocks]
        self._corner_min = torch.tensor([[-L, -L] for L in sides], device=device).view(1, scales, 2)
        self._corner_max = torch.tensor([[self.width, self.height]] * scales, device=device).view(1, scales, 2)
        tables = [_clamped_block_entries(layout, k, size, axis, device) for axis in (0, 1) for k in range(scales)]
        rows_per_table = [len(t) for t in tables]
        starts = torch.tensor([sum(rows_per_table[:i]) for i in range(len(tables))], device=device)
        self._entry_table = torch.cat(tables)  # (rows, size)
        # Row of the table for corner c of scale k and axis a: c + L_k + first row of that table.
        self._table_row = (starts.view(2, scales).T + torch.tensor(sides, device=device)[:, None]).view(1, scales, 2)
        # Entry offsets of each channel, so that the gathered means come out as (B, S, C, size * size).
        self._channel_offsets = (torch.arange(self.channels, device=device) * layout.total).view(1, 1, -1, 1)
        self._work: Tensor | None = None

    def prepare(self, images: Tensor) -> None:
        """Re-prepare every row for new ``images`` ``(N, C, H, W)`` in place (a new episode of all envs).

        Same result as a new sensor, without allocating new planes.
        """
        self._check_replacement(images)
        if images.shape[0] != self.num_images:
            raise ValueError(f"prepare() takes all {self.num_images} images; got {images.shape[0]} (use replace)")
        differentiable = images.requires_grad and torch.is_grad_enabled()
        if not self.uses_planes:
            # The sensor's own copy (the caller may reuse its tensor), or, with autograd, the images themselves.
            if differentiable or self.images is None or self.images.requires_grad:
                self.images = images if differentiable else outside_inference_mode(torch.clone)(images)
            else:
                self.images.copy_(images)
            return
        if differentiable:
            self.planes = _block_mean_planes(images, self._layout)
            return
        if self.planes.requires_grad:  # the last images required grad: back to the reused buffer
            self.planes = self.planes.detach()
        _block_mean_planes(images, self._layout, out=self.planes, scratch=self._scratch)

    def replace(self, index: Tensor, images: Tensor) -> None:
        """Re-prepare the rows ``index`` ``(K,)`` with new ``images`` ``(K, C, H, W)`` (an env's reset).

        One image per row (nothing is broadcast); ``index`` holds integer rows, checked as a call's ``index``
        (in ``[0, N)`` and, here, each row once, when ``validate``). When ``index`` is every row in order (all
        envs restart together) this is :meth:`prepare`.
        """
        self._check_replacement(images)
        check_shape(index, "index", "(K,)", (None,))
        if index.shape[0] != images.shape[0]:
            raise ValueError(f"replace() takes one image per row of index: got {index.shape[0]} rows and "
                             f"{images.shape[0]} images")
        self._check_index(index, index.shape[0])
        if self.validate and len(torch.unique(index)) != len(index):
            raise ValueError(f"index must name each row once; got {index.tolist() if len(index) <= 16 else 'repeats'}")
        if len(index) == self.num_images and torch.equal(index, torch.arange(len(index), device=index.device)):
            self.prepare(images)
        elif not self.uses_planes and self.images.requires_grad:
            self.images = self.images.index_put((index,), images)  # out of place: that is the caller's tensor
        elif not self.uses_planes:
            self.images[index] = images
        else:
            self.planes[index] = _block_mean_planes(images, self._layout)

    def _check_replacement(self, images: Tensor) -> None:
        _check_images(images)
        if images.shape[1:] != (self.channels, self.height, self.width) or images.dtype != self.input_dtype:
            raise ValueError(
                f"replacement images must be {self.input_dtype} (K, {self.channels}, {self.height}, "
                f"{self.width}); got {images.dtype} {tuple(images.shape)}"
            )

    def __call__(self, centers: Tensor, index: Tensor | None = None) -> Tensor:
        """Glimpse at ``centers`` ``(B, 2)``; ``index`` ``(B,)`` picks the prepared image of each row.

        Without ``index``, row ``b`` glimpses image ``b`` (and ``B`` must equal ``N``).
        """
        if index is None:
            _check_centers(centers, self.num_images, self.validate)
        else:
            _check_centers(centers, validate=self.validate)
            self._check_index(index, centers.shape[0])
        batch, c, size = centers.shape[0], self.channels, self.size
        corners = _corners(centers, self._half_extent, self._shift)  # (B, S, 2) as (x0, y0)
        if self.method == "fused" and not (self.images.requires_grad and torch.is_grad_enabled()):
            return _fused.fused_glimpses(self.images, corners, size, self.scales, self.factor, index, self.out_dtype,
                                         1.0 / _pixel_scale(self.images))
        if not self.uses_planes:
            return _pyramid_glimpses(self.images, corners, size, self.scales, self.factor, index)
        torch.clamp(corners, min=self._corner_min, max=self._corner_max, out=corners)
        entries = self._entry_table.index_select(0, corners.add_(self._table_row).view(-1)).view(batch, self.scales, 2, size)
        row_firsts = entries[:, :, 1]  # (B, S, size): each block row's first entry; plus the column below
        if index is not None:  # entries counted from the start of the whole buffer
            row_firsts = row_firsts + (index.to(row_firsts.device) * (c * self._layout.total)).view(-1, 1, 1)
        differentiable = self.planes.requires_grad and torch.is_grad_enabled()
        # Without autograd the index goes to a buffer kept between calls: a fresh allocation of this size
        # costs more in page faults than the arithmetic on it (measured on a 2-core VM).
        flat = torch.add(row_firsts[..., :, None], entries[:, :, 0, None, :],
                         out=None if differentiable else self._workspace(batch)).view(batch, self.scales, 1, size * size)
        if c > 1:
            flat = flat + self._channel_offsets  # (B, S, C, size * size)
        shape = (batch, self.scales, c, size, size)
        # Straight into the output when the planes already hold its dtype (no second pass).
        direct = not differentiable and self.planes.dtype == self.out_dtype
        out = torch.empty(shape, dtype=self.out_dtype, device=self.planes.device) if direct else None
        if index is None:  # row b of the output gathers from image b: the fastest gather
            means = torch.gather(self.planes.view(batch, -1), 1, flat.reshape(batch, -1),
                                 out=None if out is None else out.view(batch, -1))
        else:
            means = torch.index_select(self.planes.view(-1), 0, flat.reshape(-1),
                                       out=None if out is None else out.view(-1))
        return means.view(shape) if direct else means.view(shape).to(self.out_dtype)

    def _check_index(self, index: Tensor, batch: int) -> None:
        check_shape(index, "index", "(B,)", (batch,))
        if index.is_floating_point() or index.dtype == torch.bool:
            raise TypeError(f"index must hold integer image rows; got {index.dtype}")
        if self.validate and len(index) and not bool(((index >= 0) & (index < self.num_images)).all()):
            raise IndexError(
                f"index must be in [0, {self.num_images}); got values from {int(index.min())} to {int(index.max())}"
            )

    def _workspace(self, batch: int) -> Tensor:
        """The ``(B, S, size, size)`` index buffer for ``batch`` glimpses, kept for the last batch size."""
        if self._work is None or self._work.shape[0] != batch:
            shape = (batch, self.scales, self.size, self.size)
            self._work = _kept_empty(shape, torch.long, self.planes.device)
        return self._work


def _sensor_method(method: str, images: Tensor, size: int, scales: int, factor: int,
                   extent: tuple[int, int] | None = None) -> str:
    """The sensor's method for ``images`` (their dtype and device; ``extent`` ``(H, W)`` when they are a probe):
    ``method`` checked, ``"auto"`` resolved."""
    if method not in ("auto", "planes", "windows", "fused"):
        raise ValueError(f"method must be 'auto', 'planes', 'windows' or 'fused'; got {method!r}")
    largest_block = factor ** (scales - 1)
    fused = method in ("auto", "fused") and _fused.available(images, largest_block)
    if method == "fused" and not fused:
        raise ValueError(f"method='fused' needs Triton, images on a CUDA device in one of {_fused.DTYPES} and "
                         f"blocks of at most {_fused.MAX_BLOCK_SIDE} px; got {images.dtype} images on "
                         f"{images.device}, blocks of {largest_block} px")
    if method != "auto":
        return method
    # The fused kernel wherever it runs natively (CUDA with Triton); docs/benchmarks.md has the measured
    # comparison with planes and windows.
    if fused and images.device.type == "cuda":
        return "fused"
    # Planes pay when the windows cover much of the image (measured on the 2-core VM: at 60x60 and 100x100
    # with 48 px windows an 8-glimpse episode is faster on planes, at 224x224 on windows).
    height, width = extent if extent is not None else images.shape[-2:]
    return "planes" if height * width <= 8 * (size * largest_block) ** 2 else "windows"


def extract_glimpses(
    images: Tensor, centers: Tensor, *, size: int | None = None, scales: int | None = None, factor: int | None = None,
    retina: RetinaSpec | None = None, validate: bool = True,
) -> Tensor:
    r"""Multi-scale, area-averaged glimpses of a batch of images, one centre per image.

    Conventions:

    - ``images``: ``(B, C, H, W)``, uint8 or floating point, any device; the output is on the same device.
      uint8 gives float32 in ``[0, 1]``; a floating input gives the same dtype.
    - ``centers``: ``(B, 2)`` as normalized ``(x, y)`` (see :mod:`glimpse`: ``-1`` / ``+1`` the outer image
      edges). Centres outside ``[-1, 1]`` are allowed; off-image pixels count as 0.
    - Scale ``k`` covers a ``size * factor**k`` square and returns the mean of each
      ``factor**k x factor**k`` block. Corners snap to the pixel grid by rounding to nearest (halves up),
      per scale; an integer corner gives exactly the naive pad-crop-average.
    - Output: ``(B, scales, C, size, size)``, finest scale first. Gradients flow to ``images``.

    Args:
        images: the batch of images.
        centers: one glimpse centre per image.
        size: output side in pixels; scale 0 is a plain ``size x size`` crop.
        scales: number of scales (>= 1; default 1).
        factor: ratio of window sides between consecutive scales (>= 1; default 2).
        retina: the retina as one :class:`RetinaSpec`, instead of ``size``, ``scales`` and ``factor``.
        validate: check ``centers`` for NaN/inf (reads them: a host synchronisation on CUDA); pass
            ``False`` only for centres that are finite by construction.

    Returns:
        The glimpses, ``(B, scales, C, size, size)``.

    Example:
        >>> img = torch.arange(16.0).view(1, 1, 4, 4)
        >>> extract_glimpses(img, torch.tensor([[-0.5, -0.5]]), size=2, scales=2)[0, :, 0]
        tensor([[[0.0000, 1.0000],
                 [4.0000, 5.0000]],
        <BLANKLINE>
                [[0.0000, 0.7500],
                 [3.0000, 7.5000]]])
    """
    _check_images(images)
    retina = retina_spec(retina, size, scales, factor)
    size, scales, factor = retina.size, retina.scales, retina.factor
    batch, channels, height, width = images.shape
    _check_centers(centers, batch, validate)
    corners = _corners(centers, *_corner_constants(height, width, size, scales, factor, images.device))  # (B, S, 2)
    return _pyramid_glimpses(images, corners, size, scales, factor)


def _pyramid_glimpses(
    images: Tensor, corners: Tensor, size: int, scales: int, factor: int, index: Tensor | None = None
) -> Tensor:
    """Glimpses ``(B, S, C, size, size)`` at integer corners ``(B, S, 2)`` of ``images[index]`` (of
    ``images`` when ``index`` is None) by each sample's window and its block-mean pyramid."""
    batch, channels = corners.shape[0], images.shape[1]
    sides = [size * factor**k for k in range(scales)]
    # Windows nest on the block grid when every scale's offset inside the largest window,
    # (L_top - L_k) / 2, is a whole number of its blocks: then one window and its block-mean pyramid give
    # every scale. Otherwise (an odd size with an even factor) each scale gets its own window.
    nested = size % 2 == 0 or factor % 2 == 1
    groups = [(scales - 1, range(scales))] if nested else [(k, [k]) for k in range(scales)]
    # Intermediates go to reused buffers, except under autograd (out= does not record it).
    scratch = None if images.requires_grad and torch.is_grad_enabled() else _scratch(images.device)
    out = images.new_empty((batch, scales, channels, size, size), dtype=_output_dtype(images))
    for top, members in groups:
        levels = _block_mean_pyramid(_window(images, corners[:, top], sides[top], index, scratch), factor, top, scratch)
        for k in members:
            # Whole blocks: corners derive from the top one by the same offset, exactly, when nested.
            first = (sides[top] - sides[k]) // 2 // factor**k
            out[:, k] = levels[k][..., first : first + size, first : first + size]
    return out


def _window(
    images: Tensor, corners: Tensor, side: int, index: Tensor | None = None, scratch: _Scratch | None = None
) -> Tensor:
    """The ``side x side`` window at integer corners ``(B, 2)`` ``(x0, y0)`` of each image (of image
    ``index[b]`` for row ``b`` when given), zero off the image, pixels scaled to ``[0, 1]`` for ``uint8``:
    ``(B, C, side, side)`` float (float64 stays).

    Two look-ups, each a copy of what it keeps: the window's rows (clamped onto the image), then its
    columns; rows and columns off the image are zeroed afterwards.
    """
    batch, (_, channels, height, width) = corners.shape[0], images.shape
    device = images.device
    offsets, first, last = _window_constants(side, height, width, device)
    wanted = corners[:, :, None] + offsets  # (B, 2, side): columns, then rows
    clamped = torch.clamp(wanted, min=first, max=last)
    work = _plane_dtype(images)
    inside = (clamped == wanted).to(work)  # (B, 2, side): 1 where the column / row lies on the image
    if index is None:  # the first row of every (image, channel) in the (N * C * H, W) view
        first_rows = torch.arange(0, batch * channels * height, height, device=device).view(batch, channels, 1)
    else:
        first_rows = ((index.to(device)[:, None] * channels + torch.arange(channels, device=device)) * height)[..., None]
    rows = (clamped[:, None, 1] + first_rows).view(-1)  # (B * C * side,)
    strip = torch.index_select(images.reshape(-1, width), 0, rows, out=_take(scratch, "strip", (len(rows), width), images.dtype))
    cols = clamped[:, 0] if channels == 1 else clamped[:, 0].repeat_interleave(channels, dim=0)  # (B * C, side)
    shape = (batch, channels, side, side)
    window = torch.gather(strip.view(batch * channels, side, width), 2, cols[:, None, :].expand(-1, side, -1),
                          out=_take(scratch, "window", (batch * channels, side, side), images.dtype)).view(shape)
    # Two passes that zero what lies off the image, the first also to the working dtype when needed.
    row_inside = inside[:, None, 1, :, None]
    if window.dtype == work:
        window.mul_(row_inside)
    else:
        window = torch.mul(window, row_inside, out=_take(scratch, "window", shape, work))
    return window.mul_(inside[:, None, None, 0, :] * (1.0 / _pixel_scale(images)))


@functools.lru_cache(maxsize=64)
@outside_inference_mode
def _window_constants(side: int, height: int, width: int, device) -> tuple[Tensor, Tensor, Tensor]:
    """``offsets`` ``(side,)`` = ``0..side-1``, and the first and last pixel ``(1, 2, 1)`` per axis ``(x, y)``:
    int64, cached (read-only)."""
    first = torch.zeros((1, 2, 1), dtype=torch.long, device=device)
    return torch.arange(side, device=device), first, torch.tensor([width - 1, height - 1], device=device).view(1, 2, 1)


def _block_mean_pyramid(window: Tensor, factor: int, top: int, scratch: _Scratch | None = None) -> list[Tensor]:
    """Means of the ``factor**j``-pixel blocks of ``window`` ``(B, C, L, L)`` for ``j = 0..top``, each level
    from the one below by ``factor`` strided copies per axis (``L`` a multiple of ``factor**top``)."""
    levels = [window]
    for j in range(top):
        below = levels[-1]
        n, c, h, w = below.shape
        across = _mean([below[..., i::factor] for i in range(factor)], _take(scratch, f"across{j}", (n, c, h, w // factor), below.dtype))
        level = _take(scratch, f"level{j}", (n, c, h // factor, w // factor), below.dtype)
        levels.append(_mean([across[..., i::factor, :] for i in range(factor)], level))
    return levels


# Intermediates of the one-shot call are reused between calls on the CPU: a fresh tensor of a few MB gets
# fresh pages, which glibc returns to the kernel after each call, so every call re-faults all of them
# (measured on the 2-core VM at B=256, 1x60x60, 3 scales of 12 px: ~1,400 page faults and about 3x the
# call's own time, until other allocations happen to raise glibc's thresholds). Per thread, so that
# concurrent calls never share; capped, so that one huge call does not pin its intermediates.
_SCRATCH_MAX_BYTES = 256 * 2**20


class _Scratch(threading.local):
    """This thread's reusable CPU buffers, one per role and dtype, grown on demand up to the cap."""

    def __init__(self) -> None:
        self.buffers: dict[tuple[str, torch.dtype], Tensor] = {}
        self.nbytes = 0

    def take(self, role: str, shape: tuple[int, ...], dtype: torch.dtype) -> Tensor:
        numel = math.prod(shape)
        buffer = self.buffers.get((role, dtype))
        if buffer is None or buffer.numel() < numel:
            held = 0 if buffer is None else buffer.numel() * buffer.element_size()
            wanted = numel * dtype.itemsize
            if self.nbytes - held + wanted > _SCRATCH_MAX_BYTES:
                return torch.empty(shape, dtype=dtype)
            buffer = self.buffers[(role, dtype)] = _kept_empty((numel,), dtype, torch.device("cpu"))
            self.nbytes += wanted - held
        return buffer[:numel].view(shape)


_CPU_SCRATCH = _Scratch()


@outside_inference_mode
def _kept_empty(shape: tuple[int, ...], dtype: torch.dtype, device: torch.device) -> Tensor:
    """An uninitialised buffer that later calls write into: only its making leaves inference mode, so the
    calls that merely reuse it pay nothing for the switch."""
    return torch.empty(shape, dtype=dtype, device=device)


def _scratch(device: torch.device) -> _Scratch | None:
    """The reusable buffers for ``device``: only on the CPU (CUDA's caching allocator already reuses)."""
    return _CPU_SCRATCH if device.type == "cpu" else None


def _take(scratch: _Scratch | None, role: str, shape: tuple[int, ...], dtype: torch.dtype) -> Tensor | None:
    """A buffer to write ``out=`` into, or None (let the op allocate) without scratch."""
    return None if scratch is None else scratch.take(role, shape, dtype)
