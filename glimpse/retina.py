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
episode); :func:`extract_glimpses` first crops, per sample, the one region that holds all of a glimpse's
windows, so its cost follows the window size rather than the image size.
"""

from __future__ import annotations

import torch
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
    # float64 so that pixel positions of large images round the same way on every device.
    c = centers.detach().to(torch.float64)
    c_px = (c + 1.0) / 2.0 * torch.tensor([width, height], dtype=torch.float64, device=c.device)
    sides = size * factor ** torch.arange(scales, dtype=torch.float64, device=c.device)
    return torch.floor(c_px[:, None, :] - sides[None, :, None] / 2.0 + 0.5 + _TIE_PX).long()


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


def _accumulator_dtype(images: Tensor) -> torch.dtype:
    if images.dtype == torch.uint8:
        # int32 holds 255 * H * W exactly up to about 8.4 megapixels per channel.
        return torch.int32 if 255 * images.shape[-1] * images.shape[-2] < 2**31 else torch.int64
    return torch.float64


def _integral_image(images: Tensor) -> Tensor:
    """Inclusive 2-D prefix sums ``(B, C, H, W)``: ``out[..., y, x] = images[..., :y+1, :x+1].sum()``."""
    return images.cumsum(-1, dtype=_accumulator_dtype(images)).cumsum(-2)


class GlimpseSensor:
    r"""A multi-scale retina prepared once for a batch of images, then glimpsed many times.

    Building the integral image costs about one pass over the images; every glimpse after that is
    ``S * (size + 1)**2`` look-ups per sample, whatever the image size or ``factor``. Use it where the
    same images are glimpsed several times (an episode); :func:`extract_glimpses` is the one-shot form.

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
        self.out_dtype = torch.float32 if images.dtype == torch.uint8 else images.dtype
        self.integral = _integral_image(images)  # (N, C, H, W)
        device = images.device
        blocks = factor ** torch.arange(scales, device=device)  # (S,)
        # Offsets of each block boundary from the window corner: (S, size + 1).
        self._boundaries = blocks[:, None] * torch.arange(size + 1, device=device)
        scale = 255.0 if images.dtype == torch.uint8 else 1.0
        self._inv_area = (1.0 / (scale * blocks.to(torch.float64) ** 2)).to(self.integral.dtype
                                                                            if self.integral.is_floating_point()
                                                                            else torch.float64)

    @property
    def num_images(self) -> int:
        return int(self.integral.shape[0])

    def replace(self, index: Tensor, images: Tensor) -> None:
        """Re-prepare the rows ``index`` ``(K,)`` with new ``images`` ``(K, C, H, W)`` (an env's reset)."""
        _check_images(images)
        if images.shape[1:] != (self.channels, self.height, self.width) or images.dtype != self.input_dtype:
            raise ValueError(
                f"replacement images must be {self.input_dtype} (K, {self.channels}, {self.height}, "
                f"{self.width}); got {images.dtype} {tuple(images.shape)}"
            )
        self.integral[index] = _integral_image(images)

    def __call__(self, centers: Tensor, index: Tensor | None = None) -> Tensor:
        """Glimpse at ``centers`` ``(B, 2)``; ``index`` ``(B,)`` picks the prepared image of each row.

        Without ``index``, row ``b`` glimpses image ``b`` (and ``B`` must equal ``N``).
        """
        if index is None:
            _check_centers(centers, self.num_images)
        else:
            _check_centers(centers)
            check_shape(index, "index", "(B,)", (centers.shape[0],))
        corners = window_corners_px(
            centers, self.height, self.width, size=self.size, scales=self.scales, factor=self.factor
        ).to(self.integral.device)
        return self._glimpse_at(corners, index)

    def _glimpse_at(self, corners: Tensor, index: Tensor | None) -> Tensor:
        """Block means for integer ``corners`` ``(B, S, 2)``; see the class docstring."""
        batch = corners.shape[0]
        h, w, c, n = self.height, self.width, self.channels, self.size + 1
        # The exclusive table at boundary (y, x) is the inclusive one at (y - 1, x - 1), and 0 on the
        # top row and left column; clamping the far side to H, W clips windows to the image exactly.
        xs = (corners[:, :, 0, None] + self._boundaries).clamp(0, w) - 1  # (B, S, n)
        ys = (corners[:, :, 1, None] + self._boundaries).clamp(0, h) - 1
        inside = (ys >= 0)[:, :, :, None] & (xs >= 0)[:, :, None, :]  # (B, S, n, n)
        flat = ys.clamp(min=0)[:, :, :, None] * w + xs.clamp(min=0)[:, :, None, :]  # (B, S, n, n)
        if index is None:
            table = self.integral.reshape(batch, c, h * w)
            looked_up = table.gather(2, flat.view(batch, 1, -1).expand(batch, c, -1))
        else:
            rows = (index.to(flat.device)[:, None] * c + torch.arange(c, device=flat.device)) * (h * w)
            looked_up = self.integral.reshape(-1)[rows[:, :, None] + flat.view(batch, 1, -1)]
        table_at = looked_up.view(batch, c, self.scales, n, n) * inside[:, None]
        sums = table_at[..., 1:, 1:] - table_at[..., :-1, 1:] - table_at[..., 1:, :-1] + table_at[..., :-1, :-1]
        means = sums.to(self._inv_area.dtype) * self._inv_area[:, None, None]  # (B, C, S, size, size)
        return means.transpose(1, 2).to(self.out_dtype).contiguous()


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
    corners = window_corners_px(centers, height, width, size=size, scales=scales, factor=factor)
    corners = corners.to(images.device)
    # Every scale's window lies within [min corner, min corner + largest side): rounding moves a corner
    # by under half a pixel, so the union spans fewer than side_max + 1 pixels.
    side = size * factor ** (scales - 1)
    if side * side >= height * width:
        sensor = GlimpseSensor(images, size=size, scales=scales, factor=factor)
        return sensor._glimpse_at(corners, None)
    origin = corners.min(dim=1).values  # (B, 2)
    region = _crop_zero_padded(images, origin, side)  # (B, C, side, side)
    sensor = GlimpseSensor(region, size=size, scales=scales, factor=factor)
    return sensor._glimpse_at(corners - origin[:, None, :], None)


def _crop_zero_padded(images: Tensor, origin: Tensor, side: int) -> Tensor:
    """``(B, C, side, side)`` windows at integer top-left ``origin`` ``(B, 2)``, zero outside the image."""
    batch, channels, height, width = images.shape
    steps = torch.arange(side, device=images.device)
    xs = origin[:, 0, None] + steps  # (B, side)
    ys = origin[:, 1, None] + steps
    inside = ((ys >= 0) & (ys < height))[:, :, None] & ((xs >= 0) & (xs < width))[:, None, :]
    flat = ys.clamp(0, height - 1)[:, :, None] * width + xs.clamp(0, width - 1)[:, None, :]  # (B, side, side)
    crops = images.reshape(batch, channels, height * width).gather(
        2, flat.view(batch, 1, -1).expand(batch, channels, -1)
    )
    return (crops.view(batch, channels, side, side) * inside[:, None]).to(images.dtype)
