"""Differentiable samplers: affine warps, crop-and-resize, and RA-CNN's boxcar mask.

These are the soft counterparts of the hard glimpse: a Spatial Transformer samples the image through an
affine map, an attention box crops and resizes, and RA-CNN multiplies the image by a smooth box mask.
Everything here is differentiable with respect to the image *and* the location parameters.

Conventions: images are ``(B, C, H, W)``, floating point; points are ``(x, y)`` in the project's normalized
frame (stated once, in :mod:`glimpse`). :data:`ALIGN_CORNERS` is passed explicitly to every
``F.affine_grid`` / ``F.grid_sample`` call; the rest of the project imports it from here so that no call
site falls back to a default.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from glimpse.checks import check_finite, check_positive_int, check_shape

__all__ = ["ALIGN_CORNERS", "affine_sample", "box_theta", "crop_boxes", "boxcar_mask"]

#: The project-wide normalized-coordinate convention: ``-1`` / ``+1`` are the outer image edges.
ALIGN_CORNERS = False


def _check_images(images: object) -> None:
    check_shape(images, "images", "(B, C, H, W)")
    assert isinstance(images, Tensor)
    if not images.is_floating_point():
        raise TypeError(
            f"images must be a floating-point tensor; got {images.dtype} "
            "(convert first, e.g. images.float() / 255 for uint8)"
        )


def _check_float(tensor: Tensor, name: str) -> None:
    if not tensor.is_floating_point():
        raise TypeError(f"{name} must be a floating-point tensor; got {tensor.dtype}")


def _check_same_batch(a: Tensor, a_name: str, b: Tensor, b_name: str) -> None:
    if a.shape[0] != b.shape[0]:
        raise ValueError(
            f"{a_name} and {b_name} must have the same batch size B; "
            f"got {a_name} {tuple(a.shape)} and {b_name} {tuple(b.shape)}"
        )


def _check_same_dtype(a: Tensor, a_name: str, b: Tensor, b_name: str) -> None:
    if a.dtype != b.dtype:
        raise TypeError(
            f"{a_name} and {b_name} must have the same dtype; got {a.dtype} and {b.dtype} "
            f"(cast one, e.g. {b_name}.to({a_name}.dtype))"
        )


def _size_hw(size: int | Sequence[int]) -> tuple[int, int]:
    if isinstance(size, Sequence) and not isinstance(size, str):
        if len(size) != 2:
            raise ValueError(f"size must be an int or a pair (h, w); got {size!r}")
        return check_positive_int(size[0], "size[0] (h)"), check_positive_int(size[1], "size[1] (w)")
    side = check_positive_int(size, "size")
    return side, side


def affine_sample(images: Tensor, theta: Tensor, size: int | Sequence[int], *, supersample: int = 1) -> Tensor:
    r"""Sample ``images`` on an affinely transformed ``h x w`` grid (a Spatial Transformer).

    Conventions:
        - ``images``: ``(B, C, H, W)``, floating point (convert ``uint8`` first).
        - ``theta``: ``(B, 2, 3)``, ``img_from_out``: it maps an output point ``(x, y, 1)`` in normalized
          coordinates to the input point it reads, also normalized: ``[x_in, y_in] = theta @ [x, y, 1]``.
          Order is ``(x, y)``; ``+y`` is down.
        - Normalized ``[-1, 1]`` as in :mod:`glimpse` (:data:`ALIGN_CORNERS`).
          The output samples sit at the centres of its ``h x w`` pixels.
        - Bilinear interpolation; points outside the image read zeros (``padding_mode="zeros"``).
        - Output: ``(B, C, h, w)``, same dtype and device as ``images``.

    With ``supersample=1`` the output is a *point* sample of the bilinear image at each output pixel
    centre, not an average over the area the output pixel covers: when the grid is coarser than the input
    (zooming out) it skips pixels and aliases. ``supersample=k`` samples a ``k`` times finer grid and
    averages each ``k x k`` block of it, i.e. the mean of ``k**2`` bilinear samples evenly spread over the
    output pixel's footprint: an approximate area average, exact in the limit, differentiable in
    ``theta`` like the point sample. Pick ``k`` near the input/output pixel ratio. For the exact
    area-average retina use ``glimpse.extract_glimpses``.

    Args:
        images: the images to sample, ``(B, C, H, W)``.
        theta: ``(B, 2, 3)`` affine maps from output to input normalized coordinates.
        size: the output size, an int (square) or ``(h, w)``.
        supersample: samples per output pixel along each axis (``>= 1``).

    Returns:
        The sampled images, ``(B, C, h, w)``.

    Example:
        >>> img = torch.arange(6.0).reshape(1, 1, 2, 3)
        >>> identity = torch.tensor([[[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]]])
        >>> affine_sample(img, identity, (2, 3))
        tensor([[[[0., 1., 2.],
                  [3., 4., 5.]]]])
        >>> flip_x = torch.tensor([[[-1.0, 0.0, 0.0], [0.0, 1.0, 0.0]]])
        >>> affine_sample(img, flip_x, (2, 3))
        tensor([[[[2., 1., 0.],
                  [5., 4., 3.]]]])
    """
    _check_images(images)
    check_shape(theta, "theta", "(B, 2, 3)", (None, 2, 3))
    _check_float(theta, "theta")
    _check_same_batch(images, "images", theta, "theta")
    _check_same_dtype(images, "images", theta, "theta")
    check_finite(theta, "theta")
    h, w = _size_hw(size)
    k = check_positive_int(supersample, "supersample")
    b, c = images.shape[:2]
    # The k-times finer grid's pixel centres split each output pixel into k x k equal sub-pixels.
    grid = F.affine_grid(theta, [b, c, h * k, w * k], align_corners=ALIGN_CORNERS)  # (B, hk, wk, 2) as (x, y)
    sampled = F.grid_sample(images, grid, mode="bilinear", padding_mode="zeros", align_corners=ALIGN_CORNERS)
    return sampled if k == 1 else F.avg_pool2d(sampled, k)


def box_theta(centers: Tensor, half_sides: Tensor) -> Tensor:
    r"""Build the attention-box affine map ``[[sx, 0, tx], [0, sy, ty]]`` for :func:`affine_sample`.

    Conventions:
        - ``centers``: ``(B, 2)`` as normalized ``(x, y)`` (see :mod:`glimpse`).
        - ``half_sides``: ``(B,)`` for a box square in normalized units, or ``(B, 2)`` as ``(sx, sy)``;
          normalized units (a fraction of the image half-extent), strictly positive. A centre of ``0`` with
          half-side ``1`` is the whole image. On a non-square image a box square in normalized units is
          ``sx * W / 2`` by ``sy * H / 2`` pixels of half-side, i.e. not square in pixels.
        - Output: ``(B, 2, 3)``, ``img_from_out``: the output's edges ``-1`` / ``+1`` land on the box
          edges ``center -/+ half_side``. Same dtype as ``centers``.

    Differentiable with respect to ``centers`` and ``half_sides``.

    Args:
        centers: box centres, ``(B, 2)``.
        half_sides: box half-sides, ``(B,)`` or ``(B, 2)``.

    Returns:
        The affine maps, ``(B, 2, 3)``.

    Example:
        >>> box_theta(torch.tensor([[0.25, -0.5]]), torch.tensor([0.5]))
        tensor([[[ 0.5000,  0.0000,  0.2500],
                 [ 0.0000,  0.5000, -0.5000]]])
    """
    check_shape(centers, "centers", "(B, 2)", (None, 2))
    _check_float(centers, "centers")
    if not isinstance(half_sides, Tensor):
        raise TypeError(f"half_sides must be a torch.Tensor (B,) or (B, 2); got {type(half_sides).__name__}")
    if half_sides.dim() not in (1, 2) or (half_sides.dim() == 2 and half_sides.shape[1] != 2):
        raise ValueError(f"half_sides must be (B,) or (B, 2); got {tuple(half_sides.shape)}")
    _check_float(half_sides, "half_sides")
    _check_same_batch(centers, "centers", half_sides, "half_sides")
    _check_same_dtype(centers, "centers", half_sides, "half_sides")
    check_finite(centers, "centers")
    check_finite(half_sides, "half_sides")
    if not bool((half_sides > 0).all()):
        raise ValueError(
            f"half_sides must be > 0; got min {half_sides.min().item():.4g} "
            "(parameterize them positively, e.g. softplus or sigmoid)"
        )
    if half_sides.dim() == 1:
        sx = sy = half_sides  # (B,)
    else:
        sx, sy = half_sides.unbind(-1)  # (B,), (B,)
    tx, ty = centers.unbind(-1)  # (B,), (B,)
    zero = torch.zeros_like(tx)
    row_x = torch.stack([sx, zero, tx], dim=-1)  # (B, 3)
    row_y = torch.stack([zero, sy, ty], dim=-1)  # (B, 3)
    return torch.stack([row_x, row_y], dim=-2)  # (B, 2, 3)


def crop_boxes(
    images: Tensor, centers: Tensor, half_sides: Tensor, size: int | Sequence[int], *, supersample: int = 1
) -> Tensor:
    r"""Crop axis-aligned boxes and resize them to ``size`` (differentiable crop-and-resize).

    Equal to ``affine_sample(images, box_theta(centers, half_sides), size, supersample=supersample)``.

    Conventions:
        - ``images``: ``(B, C, H, W)``, floating point.
        - ``centers``: ``(B, 2)`` as normalized ``(x, y)`` (see :mod:`glimpse`).
        - ``half_sides``: ``(B,)`` (square in normalized units) or ``(B, 2)`` as ``(sx, sy)``, normalized
          units, ``> 0``. The box spans ``x_px in [(cx - sx + 1) / 2 * W, (cx + sx + 1) / 2 * W]`` and
          likewise in ``y`` with ``H``.
        - Bilinear, point-sampled at the output pixel centres (aliases when shrinking; see
          :func:`affine_sample`); the part of a box outside the image reads zeros.
        - Output: ``(B, C, h, w)``.

    A box whose pixel edges fall on pixel boundaries, resized to exactly its pixel size, reproduces the
    plain slice ``images[..., y0:y1, x0:x1]``. Differentiable with respect to ``images``, ``centers`` and
    ``half_sides``.

    Args:
        images: the images, ``(B, C, H, W)``.
        centers: box centres, ``(B, 2)``.
        half_sides: box half-sides, ``(B,)`` or ``(B, 2)``.
        size: the output size, an int (square) or ``(h, w)``.
        supersample: bilinear samples per output pixel along each axis, averaged (see
            :func:`affine_sample`; ``1``: a point sample).

    Returns:
        The resized crops, ``(B, C, h, w)``.

    Example:
        >>> img = torch.arange(16.0).reshape(1, 1, 4, 4)
        >>> crop_boxes(img, torch.tensor([[-0.5, -0.5]]), torch.tensor([0.5]), 2)  # top-left quadrant
        tensor([[[[0., 1.],
                  [4., 5.]]]])
    """
    _check_images(images)
    return affine_sample(images, box_theta(centers, half_sides), size, supersample=supersample)


def _sigmoid_difference(a: Tensor, b: Tensor) -> Tensor:
    """``sigmoid(a) - sigmoid(b)`` for ``a >= b``, without cancellation where both are near 1.

    Uses the identity ``sigmoid(a) - sigmoid(b) = sigmoid(a) * sigmoid(-b) * (1 - exp(b - a))``.
    """
    return torch.sigmoid(a) * torch.sigmoid(-b) * -torch.expm1(b - a)


def boxcar_mask(boxes: Tensor, height: int, width: int, steepness: float = 10.0) -> Tensor:
    r"""RA-CNN's differentiable boxcar mask for square attention boxes (Fu et al., CVPR 2017).

    ``M(x, y) = [h(x - x_left) - h(x - x_right)] * [h(y - y_top) - h(y - y_bottom)]`` with
    ``h(z) = sigmoid(steepness * z)``, evaluated at the pixel centres ``(j + 0.5, i + 0.5)``, all in
    pixel units.

    Conventions:
        - ``boxes``: ``(B, 3)`` as ``(tx, ty, tl)``: the centre ``(tx, ty)`` as normalized ``(x, y)`` (see :mod:`glimpse`) and
          the half-side ``tl > 0`` in normalized units (a fraction of the image half-extent, as in
          :func:`box_theta`).
        - Edges in pixel units: ``x_left = (tx - tl + 1) / 2 * W``, ``x_right = (tx + tl + 1) / 2 * W``,
          ``y_top = (ty - tl + 1) / 2 * H``, ``y_bottom = (ty + tl + 1) / 2 * H``. The box is square in
          normalized units, so on a non-square image its pixel half-sides differ: ``tl * W / 2`` in ``x``
          and ``tl * H / 2`` in ``y``.
        - ``steepness``: ``k`` per pixel (the paper's default ``k = 10``); larger is closer to a hard box.
        - Output: ``(B, 1, H, W)`` in ``[0, 1]``, dtype of ``boxes``; about ``1`` inside, ``0`` outside,
          ``0.5`` along an edge (``0.25`` at a corner).

    Differentiable with respect to ``tx``, ``ty`` and ``tl``; the gradient lives within a few
    ``1 / steepness`` pixels of the edges. Each factor is computed in a form equal to the difference of
    sigmoids that avoids cancellation to the right of / below the box, so far-away values are accurate
    (and never negative) instead of rounding to ``1 - 1``.

    Args:
        boxes: ``(B, 3)`` boxes ``(tx, ty, tl)``.
        height: the mask height ``H`` in pixels.
        width: the mask width ``W`` in pixels.
        steepness: the sigmoid slope ``k`` per pixel, ``> 0``.

    Returns:
        The masks, ``(B, 1, H, W)``.

    Example:
        >>> m = boxcar_mask(torch.tensor([[0.0, 0.0, 0.5]]), 4, 4)  # the central 2 x 2 pixels
        >>> m.round(decimals=4)
        tensor([[[[0.0000, 0.0066, 0.0066, 0.0000],
                  [0.0066, 0.9867, 0.9867, 0.0066],
                  [0.0066, 0.9867, 0.9867, 0.0066],
                  [0.0000, 0.0066, 0.0066, 0.0000]]]])
    """
    check_shape(boxes, "boxes", "(B, 3) as (tx, ty, tl)", (None, 3))
    _check_float(boxes, "boxes")
    check_finite(boxes, "boxes")
    height = check_positive_int(height, "height")
    width = check_positive_int(width, "width")
    if isinstance(steepness, bool) or not isinstance(steepness, (int, float)) or not 0 < steepness < math.inf:
        raise ValueError(f"steepness must be a finite number > 0; got {steepness!r}")
    tx, ty, tl = boxes.unbind(-1)  # (B,) each
    if not bool((tl > 0).all()):
        raise ValueError(
            f"boxes[:, 2] (tl, the half-side) must be > 0; got min {tl.min().item():.4g} "
            "(parameterize it positively, e.g. softplus or sigmoid)"
        )
    x_left = ((tx - tl + 1) / 2 * width)[:, None]  # (B, 1) pixels
    x_right = ((tx + tl + 1) / 2 * width)[:, None]
    y_top = ((ty - tl + 1) / 2 * height)[:, None]
    y_bottom = ((ty + tl + 1) / 2 * height)[:, None]
    xs = torch.arange(width, dtype=boxes.dtype, device=boxes.device) + 0.5  # (W,) pixel centres
    ys = torch.arange(height, dtype=boxes.dtype, device=boxes.device) + 0.5  # (H,)
    k = float(steepness)
    mask_x = _sigmoid_difference(k * (xs - x_left), k * (xs - x_right))  # (B, W)
    mask_y = _sigmoid_difference(k * (ys - y_top), k * (ys - y_bottom))  # (B, H)
    return (mask_y[:, :, None] * mask_x[:, None, :])[:, None]  # (B, 1, H, W)
