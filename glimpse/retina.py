r"""The multi-scale retina: exact area-averaged glimpses, batched, on any device.

A glimpse at scale ``k`` (0-based) covers a square window of side ``size * factor**k`` pixels and
reduces it to ``size x size`` by the **mean of each** ``factor**k x factor**k`` **block** — an area
average, so coarse scales do not alias the way a point sample (``grid_sample``) does. Pixels outside
the image count as 0.

Conventions (shared by the whole project):

- images are ``(B, C, H, W)``; glimpses are ``(B, S, C, size, size)`` with ``S`` scales, finest first;
- a location is ``(x, y)`` normalized to ``[-1, 1]``, where ``-1`` and ``+1`` are the *outer edges* of
  the image (the ``align_corners=False`` convention): in pixel units the centre is
  ``x_px = (x + 1) / 2 * W`` and ``y_px = (y + 1) / 2 * H``, and pixel ``i`` covers ``[i, i + 1)``;
- +x is right (columns), +y is down (rows).

Rounding. Windows are snapped to the pixel grid: the top-left corner of the scale-``k`` window is
``floor(c_px - side_k / 2 + 1/2)`` per axis (the exact corner rounded to the nearest integer, halves
rounding up — a corner within 1e-3 px below a half counts as the half, so that float32 round-off of a
centre cannot flip a tie), each scale independently. When the exact corner is already an integer the glimpse is
exactly the naive pad-crop-block-average; otherwise it is that of the window shifted by less than half
a pixel. Nothing is interpolated.

How. Block sums come from an integral image (summed-area table): each block is four look-ups, so the
cost of a glimpse does not grow with ``factor**k``. Sums accumulate in ``int32``/``int64`` for ``uint8``
images (exact) and in ``float64`` for floating images (exact to rounding of the output dtype).
:class:`GlimpseSensor` builds the table once for a batch of images and then glimpses it many times (an
episode); :func:`extract_glimpses`, a one-shot call, does the same on small images, and on large ones
crops per sample the one region its windows cover, prefix-sums it along x and sums each block's rows
directly, so its cost follows the window size rather than the image size.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from glimpse._checks import check_finite, check_positive_int, check_shape

__all__ = ["extract_glimpses", "GlimpseSensor", "window_corners_px", "centers_from_corners_px"]

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


def _check_retina(size: int, scales: int, factor: int) -> tuple[int, int, int]:
    return (
        check_positive_int(size, "size"),
        check_positive_int(scales, "scales"),
        check_positive_int(factor, "factor"),
    )


def _check_centers(centers: Tensor, batch: int | None = None) -> None:
    check_shape(centers, "centers", "(B, 2)", (batch, 2))
    if not centers.is_floating_point():
        raise TypeError(f"centers must be floating point (x, y) in [-1, 1]; got {centers.dtype}")
    check_finite(centers, "centers")


def window_corners_px(
    centers: Tensor, height: int, width: int, *, size: int, scales: int = 1, factor: int = 2
) -> Tensor:
    r"""Integer top-left corners of every scale's window, in pixels.

    Conventions: ``centers`` is ``(B, 2)`` as ``(x, y)`` normalized to ``[-1, 1]`` (outer image edges,
    ``align_corners=False``); corners are ``(x0, y0)`` pixel indices (column, row), possibly outside the
    image. The scale-``k`` window spans ``[x0, x0 + size * factor**k)`` and its corner is
    ``floor(c_px - side / 2 + 1/2)``: the exact corner rounded to nearest, halves up.

    Args:
        centers: ``(B, 2)`` window centres.
        height: image height ``H`` in pixels.
        width: image width ``W`` in pixels.
        size: glimpse side in pixels at scale 0.
        scales: number of scales ``S``.
        factor: ratio of window sides between consecutive scales.

    Returns:
        ``(B, S, 2)`` int64 corners ``(x0, y0)``.

    Example:
        >>> window_corners_px(torch.tensor([[0.0, 0.0]]), 8, 8, size=2, scales=2).tolist()
        [[[3, 3], [2, 2]]]
    """
    size, scales, factor = _check_retina(size, scales, factor)
    _check_centers(centers)
    return _corners(centers, *_corner_constants(height, width, size, scales, factor, centers.device))


def _corner_constants(height: int, width: int, size: int, scales: int, factor: int, device) -> tuple[Tensor, Tensor]:
    """``half_extent`` ``(2,)`` = ``(W/2, H/2)`` and ``shift`` ``(1, S, 1)`` = ``side_k / 2 - 1/2 - tie``, float64."""
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


def _output_dtype(images: Tensor) -> torch.dtype:
    """uint8 images give float32 in [0, 1]; floating images keep their dtype."""
    return torch.float32 if images.dtype == torch.uint8 else images.dtype


def _pixel_scale(images: Tensor) -> float:
    """What a pixel value of 1.0 is stored as: 255 for uint8 images."""
    return 255.0 if images.dtype == torch.uint8 else 1.0


def _accumulator_dtype(images: Tensor) -> torch.dtype:
    if images.dtype == torch.uint8:
        # int32 holds 255 * H * W exactly up to about 8.4 megapixels per channel.
        return torch.int32 if 255 * images.shape[-1] * images.shape[-2] < 2**31 else torch.int64
    return torch.float64


def _integral_table(images: Tensor, out: Tensor | None = None) -> Tensor:
    """Exclusive 2-D prefix sums ``(N, C, H + 1, W + 1)``: ``out[..., y, x] = images[..., :y, :x].sum()``.

    The zero top row and left column make every block sum four plain look-ups, with no masking.
    ``out``, when given (a previous table of the same shape), is filled in place: no new allocation.
    """
    n, c, h, w = images.shape
    acc = _accumulator_dtype(images)
    if images.requires_grad and torch.is_grad_enabled():
        return F.pad(images.cumsum(-1, dtype=acc).cumsum(-2), (1, 0, 1, 0))
    # Without autograd, accumulate in place in the bordered buffer: a third less memory traffic.
    table = torch.empty((n, c, h + 1, w + 1), dtype=acc, device=images.device) if out is None else out
    table[..., 0, :] = 0
    table[..., 1:, 0] = 0
    inner = table[..., 1:, 1:]
    inner.copy_(images)
    inner.cumsum_(-1)
    inner.cumsum_(-2)
    return table


class GlimpseSensor:
    r"""A multi-scale retina prepared once for a batch of images, then glimpsed many times.

    Building the integral image costs about one pass over the images; every glimpse after that is
    ``S * (size + 1)**2`` look-ups per sample, whatever ``factor``. Use it where the same images are
    glimpsed several times (an episode); :func:`extract_glimpses` is the one-shot form.

    Conventions: as :func:`extract_glimpses`. ``images`` ``(N, C, H, W)`` uint8 or float; glimpses
    ``(B, S, C, size, size)``, float32 in ``[0, 1]`` for uint8 images, else the images' dtype. Gradients
    flow to ``images`` when they require grad.

    Args:
        images: ``(N, C, H, W)`` images to glimpse.
        size: glimpse side in pixels (every scale's output is ``size x size``).
        scales: number of scales ``S``; scale ``k`` covers ``size * factor**k`` pixels.
        factor: ratio of window sides between consecutive scales.

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

    def __init__(self, images: Tensor, *, size: int, scales: int = 1, factor: int = 2) -> None:
        _check_images(images)
        self.size, self.scales, self.factor = _check_retina(size, scales, factor)
        self.height, self.width = int(images.shape[-2]), int(images.shape[-1])
        self.channels = int(images.shape[1])
        self.input_dtype = images.dtype
        self.out_dtype = _output_dtype(images)
        self.table = _integral_table(images)  # (N, C, H + 1, W + 1)
        device = images.device
        blocks = factor ** torch.arange(scales, device=device)  # (S,)
        # Offsets of each block boundary from the window corner: (S, size + 1).
        self._boundaries = blocks[:, None] * torch.arange(size + 1, device=device)
        self._extent = torch.tensor([self.width, self.height], device=device).view(1, 1, 2, 1)
        self._channel_ids = torch.arange(self.channels, device=device)
        self._half_extent, self._shift = _corner_constants(self.height, self.width, size, scales, factor, device)
        inv_area = 1.0 / (_pixel_scale(images) * blocks.to(torch.float64) ** 2)
        # Block sums are exact in the table's dtype; scaled in it (float64) or in float32 (integer tables).
        scale_dtype = self.table.dtype if self.table.is_floating_point() else torch.float32
        self._inv_area = inv_area.to(scale_dtype).view(1, 1, scales, 1, 1)

    @property
    def num_images(self) -> int:
        return int(self.table.shape[0])

    def prepare(self, images: Tensor) -> None:
        """Re-prepare every row for new ``images`` ``(N, C, H, W)`` in place (a new episode of all envs).

        Same result as a new sensor, without allocating a new table.
        """
        self._check_replacement(images)
        if images.shape[0] != self.num_images:
            raise ValueError(f"prepare() takes all {self.num_images} images; got {images.shape[0]} (use replace)")
        if images.requires_grad and torch.is_grad_enabled():
            self.table = _integral_table(images)
        else:
            _integral_table(images, out=self.table)

    def replace(self, index: Tensor, images: Tensor) -> None:
        """Re-prepare the rows ``index`` ``(K,)`` with new ``images`` ``(K, C, H, W)`` (an env's reset).

        When ``index`` is every row in order (all envs restart together) this is :meth:`prepare`.
        """
        self._check_replacement(images)
        if len(index) == self.num_images and torch.equal(index, torch.arange(len(index), device=index.device)):
            self.prepare(images)
        else:
            self.table[index] = _integral_table(images)

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
            _check_centers(centers, self.num_images)
        else:
            _check_centers(centers)
            check_shape(index, "index", "(B,)", (centers.shape[0],))
        corners = _corners(centers, self._half_extent, self._shift)  # (B, S, 2)
        # Clamping every block edge to [0, W] x [0, H] clips each block to the image: off-image pixels
        # count 0 (the table's first row and column are 0).
        edges = torch.minimum(corners[..., None] + self._boundaries[:, None, :], self._extent).clamp_(min=0)
        return self._glimpse_at_edges(edges, index)

    def _glimpse_at_edges(self, edges: Tensor, index: Tensor | None) -> Tensor:
        """Block means from block edges ``(B, S, 2, size + 1)`` already clamped to ``[0, W] x [0, H]``."""
        batch = edges.shape[0]
        c, n = self.channels, self.size + 1
        flat = edges[:, :, 1, :, None] * (self.width + 1) + edges[:, :, 0, None, :]  # (B, S, n, n)
        plane = (self.height + 1) * (self.width + 1)
        if index is None:
            index_bc = flat.view(batch, 1, -1) if c == 1 else flat.view(batch, 1, -1).expand(batch, c, -1)
            looked_up = self.table.view(batch, c, plane).gather(2, index_bc)
        else:
            first = (index.to(flat.device)[:, None] * c + self._channel_ids) * plane  # (B, C)
            looked_up = self.table.view(-1)[first[:, :, None] + flat.view(batch, 1, -1)]
        at = looked_up.view(batch, c, self.scales, n, n)
        rows = at[..., 1:, :] - at[..., :-1, :]  # (B, C, S, size, n): sums of each block row, cumulated in x
        sums = rows[..., 1:] - rows[..., :-1]  # (B, C, S, size, size)
        # One pass from the sums to the output dtype: the scale's multiply writes (and rounds) into it;
        # out= does not take autograd, so the gradient path multiplies, then casts.
        if sums.requires_grad:
            means = (sums * self._inv_area).to(self.out_dtype)
        else:
            means = torch.empty(sums.shape, dtype=self.out_dtype, device=sums.device)
            torch.mul(sums, self._inv_area, out=means)
        return means.transpose(1, 2).contiguous()


def extract_glimpses(
    images: Tensor, centers: Tensor, *, size: int, scales: int = 1, factor: int = 2
) -> Tensor:
    r"""Multi-scale, area-averaged glimpses of a batch of images, one centre per image.

    Conventions:

    - ``images``: ``(B, C, H, W)``, uint8 or floating point, any device; the output is on the same device.
      uint8 gives float32 in ``[0, 1]``; a floating input gives the same dtype.
    - ``centers``: ``(B, 2)`` as ``(x, y)`` in ``[-1, 1]`` where ``-1`` and ``+1`` are the outer image
      edges (``align_corners=False``): the centre in pixels is ``((x + 1) / 2 * W, (y + 1) / 2 * H)``.
      Centres outside ``[-1, 1]`` are allowed; off-image pixels count as 0.
    - Scale ``k`` covers a ``size * factor**k`` square and returns the mean of each
      ``factor**k x factor**k`` block. Corners snap to the pixel grid by rounding to nearest (halves up),
      per scale; an integer corner gives exactly the naive pad-crop-average.
    - Output: ``(B, scales, C, size, size)``, finest scale first. Gradients flow to ``images``.

    Args:
        images: the batch of images.
        centers: one glimpse centre per image.
        size: output side in pixels; scale 0 is a plain ``size x size`` crop.
        scales: number of scales (>= 1).
        factor: ratio of window sides between consecutive scales (>= 1).

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
    size, scales, factor = _check_retina(size, scales, factor)
    batch, channels, height, width = images.shape
    _check_centers(centers, batch)
    if _uses_table(size, scales, factor, height, width):
        # The windows cover much of the image: a full integral table, glimpsed once, is the cheaper way.
        return GlimpseSensor(images, size=size, scales=scales, factor=factor)(centers)
    corners = _corners(centers, *_corner_constants(height, width, size, scales, factor, images.device))
    return _block_means_from_region(images, corners, size, scales, factor)


def _uses_table(size: int, scales: int, factor: int, height: int, width: int) -> bool:
    """Whether a whole-image integral table beats cropping each glimpse's region (small images)."""
    side = size * factor ** (scales - 1)
    return 4 * side * side >= height * width


def _block_means_from_region(images: Tensor, corners: Tensor, size: int, scales: int, factor: int) -> Tensor:
    """Block means without a whole-image table, for images much larger than the glimpse.

    Each sample's windows all lie in one ``side x side`` region (``side`` = the largest window:
    rounding moves a corner by under half a pixel). That region is gathered in one indexing op (zero off
    the image), prefix-summed along x, and each block's ``factor**k`` rows are summed directly, so the
    cost follows the window size, not the image size.
    """
    batch = corners.shape[0]
    height, width = images.shape[-2:]
    device = images.device
    side = size * factor ** (scales - 1)
    origin = corners.min(dim=1).values  # (B, 2): top-left of the region holding every window
    steps = torch.arange(side, device=device)
    ys, xs = origin[:, 1, None] + steps, origin[:, 0, None] + steps  # (B, side)
    which = torch.arange(batch, device=device)
    region = images[which[:, None, None], :, ys.clamp(0, height - 1)[:, :, None], xs.clamp(0, width - 1)[:, None, :]]
    off_image = ((ys < 0) | (ys >= height))[:, :, None] | ((xs < 0) | (xs >= width))[:, None, :]  # (B, side, side)
    region = region.masked_fill(off_image[..., None], 0)  # (B, side, side, C)
    prefix = region.permute(0, 3, 1, 2).cumsum(-1, dtype=_accumulator_dtype(images))  # (B, C, side, side)
    channels = prefix.shape[1]
    prefix = prefix.reshape(batch, channels, side * side)
    work = torch.float64 if images.dtype == torch.float64 else torch.float32
    pixel_scale = _pixel_scale(images)
    boundaries = torch.arange(size + 1, device=device)
    means = []
    for k in range(scales):
        block = factor**k
        local = corners[:, k] - origin  # (B, 2), inside [0, side - window side]
        rows = local[:, 1, None] + steps[: size * block]  # (B, s)
        cols = local[:, 0, None] + block * boundaries  # (B, n): block edges; the exclusive prefix at 0 is 0
        flat = rows[:, :, None] * side + (cols - 1).clamp(min=0)[:, None, :]  # (B, s, n)
        at = prefix.gather(2, flat.view(batch, 1, -1).expand(batch, channels, -1))
        at = at.view(batch, channels, size, block, size + 1) * (cols > 0)[:, None, None, None, :]
        bands = at.sum(3) if block > 1 else at[:, :, :, 0]  # (B, C, size, n): each block row, cumulated in x
        means.append((bands[..., 1:] - bands[..., :-1]).to(work) * (1.0 / (pixel_scale * block * block)))
    return torch.stack(means, dim=1).to(_output_dtype(images))  # (B, S, C, size, size)
