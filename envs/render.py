"""Pictures of what an agent looked at: glimpse windows, glimpse paths and soft attention, as RGB arrays.

Every function takes one picture ``(C, H, W)`` (uint8, or float in ``[0, 1]``; ``C = 3`` is drawn in colour,
any other ``C`` as the grey mean of its channels), magnifies it by an integer zoom (nearest neighbour) to
about ``height_px`` rows, draws on it and returns ``(H * zoom, W * zoom, 3)`` uint8. Locations are
``(x, y)`` in the project's normalized frame (see :mod:`glimpse`); windows are snapped to pixels exactly as
the retina snaps them (:func:`glimpse.window_corners_px`). :meth:`envs.GlimpseVectorEnv.render` uses
:func:`render_glimpse`; the training scripts draw paths and attention maps with the other two.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from glimpse import window_corners_px

__all__ = ["render_glimpse", "render_path", "render_attention", "WINDOW_COLOURS"]

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
            (normalized, see :mod:`glimpse`) in drawing order; outlined, blue (first) to red (last).
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
        center: ``(2,)`` normalized glimpse centre ``(x, y)`` (see :mod:`glimpse`).
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
