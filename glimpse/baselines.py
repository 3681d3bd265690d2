r"""Other implementations' retinas, for benchmarks: what :mod:`glimpse.retina` is measured against.

Both return exactly the core's glimpses (same window rounding, :func:`~glimpse.retina.window_corners_px`;
zeros outside the image; block means), so a benchmark can check its baselines before timing them.
Neither is meant for training: they are slow on purpose or need an optional dependency.

Conventions: as :mod:`glimpse.retina`: images ``(B, C, H, W)`` (uint8 read as ``/ 255``, or floating),
centres ``(B, 2)`` ``(x, y)`` in the project's normalized frame, glimpses ``(B, S, C, size, size)``, finest
scale first. Unlike the core, the baselines take centres on the image only (``[-1, 1]^2``, as benchmarks
draw them): they pad each image by the largest window's side, which covers every window centred on it.

- :func:`loop_glimpses`: the retina of popular RAM implementations, a Python loop over the samples that
  zero-pads each image, slices each scale's window and ``avg_pool2d``-s each scale's stack.
- :func:`roi_align_glimpses`: ``torchvision.ops.roi_align``, one call per scale (only where
  :func:`has_roi_align`).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from glimpse.retina import window_corners_px

__all__ = ["loop_glimpses", "roi_align_glimpses", "has_roi_align"]


def _check_on_image(centers: Tensor) -> None:
    if not bool((centers.abs() <= 1).all()):
        raise ValueError("the baseline retinas take centres on the image, (x, y) in [-1, 1]; "
                         "glimpse.extract_glimpses takes any centre")


def _as_float(images: Tensor) -> Tensor:
    """uint8 images as float32 in [0, 1], as the core reads them; floating images as they are."""
    return images.float() / 255 if images.dtype == torch.uint8 else images


def loop_glimpses(images: Tensor, centers: Tensor, size: int, scales: int, factor: int) -> Tensor:
    """The per-sample loop retina: for each sample, pad, slice every scale's window, then pool each scale.

    Args:
        images: ``(B, C, H, W)``.
        centers: ``(B, 2)`` normalized ``(x, y)`` in ``[-1, 1]`` (else a ValueError).
        size, scales, factor: the retina (scale ``k`` covers ``size * factor**k`` pixels).

    Returns:
        ``(B, S, C, size, size)``, float (float32 for uint8 images).
    """
    _check_on_image(centers)
    corners = window_corners_px(centers, images.shape[-2], images.shape[-1], size=size, scales=scales, factor=factor)
    corners = corners.tolist()
    pad = size * factor ** (scales - 1)
    images = _as_float(images)  # avg_pool2d needs floats
    per_scale: list[list[Tensor]] = [[] for _ in range(scales)]
    for i in range(images.shape[0]):
        padded = F.pad(images[i], (pad, pad, pad, pad))
        for k in range(scales):
            side = size * factor**k
            x0, y0 = corners[i][k][0] + pad, corners[i][k][1] + pad
            per_scale[k].append(padded[:, y0 : y0 + side, x0 : x0 + side])
    return torch.stack([F.avg_pool2d(torch.stack(p), factor**k) for k, p in enumerate(per_scale)], dim=1)


def roi_align_glimpses(images: Tensor, centers: Tensor, size: int, scales: int, factor: int) -> Tensor:
    """The same glimpses from ``torchvision.ops.roi_align``: one call per scale on the zero-padded images.

    With ``aligned=True`` a box ``[x0, x0 + side)`` in pixel units and ``factor**k`` samples per bin put
    every bilinear sample exactly on a pixel centre, so each output is the mean of its block. roi_align
    clamps samples within a pixel of the border instead of reading zeros, hence the zero padding.

    Args and returns: as :func:`loop_glimpses`. Needs torchvision (:func:`has_roi_align`).
    """
    from torchvision.ops import roi_align

    _check_on_image(centers)
    corners = window_corners_px(centers, images.shape[-2], images.shape[-1], size=size, scales=scales, factor=factor)
    pad = size * factor ** (scales - 1)
    padded = F.pad(_as_float(images), (pad, pad, pad, pad))
    rows = torch.arange(images.shape[0], device=images.device, dtype=padded.dtype)[:, None]
    out = []
    for k in range(scales):
        side = size * factor**k
        x0y0 = (corners[:, k] + pad).to(padded.dtype)
        boxes = torch.cat([rows, x0y0, x0y0 + side], dim=1)  # (B, 5): image, x1, y1, x2, y2
        out.append(roi_align(padded, boxes, output_size=size, spatial_scale=1.0, sampling_ratio=factor**k, aligned=True))
    return torch.stack(out, dim=1)


def has_roi_align() -> bool:
    """Whether ``torchvision.ops.roi_align`` imports here (torchvision installed, built for this torch)."""
    try:
        from torchvision.ops import roi_align  # noqa: F401
    except Exception:  # not installed, or a build that does not match this torch
        return False
    return True
