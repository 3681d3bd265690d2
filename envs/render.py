"""Pictures of what an agent looked at: glimpse windows, glimpse paths and soft attention, as RGB arrays.

:func:`render_glimpse`, :func:`render_path` and :func:`render_attention` take one picture ``(C, H, W)``
(uint8, or float in ``[0, 1]``; ``C = 3`` is drawn in colour, any other ``C`` as the grey mean of its
channels), magnify it by an integer zoom (nearest neighbour) to about ``height_px`` rows, draw on it and
return ``(H * zoom, W * zoom, 3)`` uint8. Locations are ``(x, y)`` in the project's normalized frame (see
:mod:`glimpse`); windows are snapped to pixels exactly as the retina snaps them
(:func:`glimpse.window_corners_px`). :meth:`envs.GlimpseVectorEnv.render` uses :func:`render_glimpse`; the
training scripts draw paths and attention maps with the others.

Several pictures make one to read at a glance with :func:`tile_grid`: tiles apart on a white background,
each framed green (right) or red (wrong) with a caption and a check or a cross, under a legend.
:func:`render_paths` lays out glimpse paths this way (numbered looks, the finest window of each) and
:func:`render_glimpses` one step of several episodes (a frame of an animation). Text is
Pillow's default font, so nothing is installed for it.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFont
from torch import Tensor

from glimpse import RetinaSpec, retina_spec, window_corners_px

__all__ = ["render_glimpse", "render_glimpses", "render_path", "render_paths", "render_attention", "tile_grid",
           "step_colour", "WINDOW_COLOURS", "FIRST_COLOUR", "LAST_COLOUR", "RIGHT_COLOUR", "WRONG_COLOUR",
           "BACKGROUND", "GAP", "FRAME"]

WINDOW_COLOURS = ((0, 255, 0), (255, 200, 0), (255, 60, 60), (80, 160, 255))
"""A glimpse's scales in :func:`render_glimpse`, finest first."""
FIRST_COLOUR, LAST_COLOUR = (0, 220, 255), (255, 40, 220)
"""A path's first and last steps (cyan to magenta, clear of the verdicts' green and red)."""
RIGHT_COLOUR, WRONG_COLOUR = (0, 170, 60), (225, 30, 30)
"""Frames and marks of right and wrong decisions."""
BACKGROUND, TEXT_COLOUR = (255, 255, 255), (0, 0, 0)
GAP, FRAME = 12, 4
"""Pixels between tiles (and around the grid), and the width of a tile's verdict frame."""
TEXT_PX, DISC_TEXT_PX, LEGEND_SPACE = 14, 13, 18
"""Pixels: captions' and the legend's text, step numbers, room between legend items."""


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


def render_glimpse(picture: Tensor, center: Tensor, *, size: int | None = None, scales: int | None = None,
                   factor: int | None = None, retina: RetinaSpec | None = None, height_px: int = 256) -> np.ndarray:
    """An RGB picture of ``picture`` with the retina's windows at ``center`` outlined, finest in green.

    Args:
        picture: ``(C, H, W)`` uint8 or float in [0, 1] (a canvas or video frame); ``C = 3`` is shown in
            colour, any other ``C`` as the grey mean of its channels.
        center: ``(2,)`` normalized glimpse centre ``(x, y)`` (see :mod:`glimpse`).
        size, scales, factor, retina: the retina, as in :func:`glimpse.extract_glimpses` (``retina`` a
            :class:`glimpse.RetinaSpec`, such as an env's ``env.retina``, instead of the other three).
        height_px: about how tall the returned picture is (nearest-neighbour magnified, integer zoom).

    Returns:
        ``(H * zoom, W * zoom, 3)`` uint8.
    """
    retina = retina_spec(retina, size, scales, factor)
    image, zoom = _magnified_rgb(picture, height_px)
    height, width = picture.shape[-2:]
    corners = window_corners_px(center.detach().cpu().view(1, 2).float(), height, width, retina=retina)[0]
    for k, ((x0, y0), side) in enumerate(zip(corners.tolist(), retina.sides)):
        _draw_box(image, x0 * zoom, y0 * zoom, side * zoom, WINDOW_COLOURS[k % len(WINDOW_COLOURS)])
    return image


def render_path(picture: Tensor, centers: Tensor, *, size: int | None = None, scales: int | None = None,
                factor: int | None = None, retina: RetinaSpec | None = None, height_px: int = 256,
                all_scales: bool = False) -> np.ndarray:
    """An RGB picture of ``picture`` with a glimpse path: each step's finest window outlined in its step's
    colour (:func:`step_colour`, cyan first to magenta last), the step numbers ``1..T`` on labels at the
    windows' centres, and arrows from each label to the next. Looks at (nearly) one place share a label
    (``"2-5"``, ``"3,5"``); a label that would cover another moves beside it.

    Args:
        picture: ``(C, H, W)`` uint8 or float in [0, 1].
        centers: ``(T, 2)`` glimpse centres ``(x, y)`` in ``[-1, 1]``, in the order they were taken.
        size, scales, factor, retina: the retina, as in :func:`glimpse.extract_glimpses` (``retina`` a
            :class:`glimpse.RetinaSpec`, such as an env's ``env.retina``, instead of the other three).
        height_px: about how tall the returned picture is.
        all_scales: also outline every step's coarser windows, faint (by default only the finest).

    Returns:
        ``(H * zoom, W * zoom, 3)`` uint8.
    """
    retina = retina_spec(retina, size, scales, factor)
    size, scales = retina.size, retina.scales
    centers = centers.detach().cpu().float().view(-1, 2)
    image, zoom = _magnified_rgb(picture, height_px)
    height, width = picture.shape[-2:]
    steps = len(centers)
    corners = window_corners_px(centers, height, width, retina=retina) * zoom  # (T, S, 2)
    colours = [step_colour(t, steps) for t in range(steps)]
    canvas = Image.fromarray(image)
    if all_scales and scales > 1:  # faint: blended onto the picture
        overlay = Image.new("RGBA", canvas.size, (0, 0, 0, 0))
        faint = ImageDraw.Draw(overlay)
        for t in range(steps):
            for k in range(1, scales):
                x0, y0 = corners[t, k].tolist()
                side = retina.sides[k] * zoom
                faint.rectangle((x0, y0, x0 + side - 1, y0 + side - 1), outline=(*colours[t], 110), width=1)
        canvas = Image.alpha_composite(canvas.convert("RGBA"), overlay).convert("RGB")
    draw = ImageDraw.Draw(canvas)
    side = size * zoom
    line = 2
    for t in range(steps):
        x0, y0 = corners[t, 0].tolist()
        draw.rectangle((x0, y0, x0 + side - 1, y0 + side - 1), outline=colours[t], width=line)
    points = [(x0 + side / 2, y0 + side / 2) for x0, y0 in corners[:, 0].tolist()]
    radius = _disc_radius(steps)
    # Looks at (nearly) one place share one label, "2-5" or "3,5": one disc per step would hide the others.
    groups: list[list[int]] = []
    for t, (x, y) in enumerate(points):
        near = [g for g in groups if math.hypot(x - points[g[0]][0], y - points[g[0]][1]) <= radius]
        near[0].append(t) if near else groups.append([t])
    group_of = {t: g for g, members in enumerate(groups) for t in members}
    texts = [_step_list([t + 1 for t in members]) for members in groups]
    halves = [_label_half_width(text, radius) for text in texts]
    spots: list[tuple[float, float, float]] = []  # (x, y, half width) of each group's label
    for members, half in zip(groups, halves):
        spots.append((*_free_spot(points[members[0]], spots, half, radius, canvas.size), half))
    drawn = set()
    for t in range(1, steps):
        pair = (group_of[t - 1], group_of[t])
        if pair[0] != pair[1] and pair not in drawn:
            drawn.add(pair)
            _arrow(draw, spots[pair[0]], spots[pair[1]], colours[t], width=line, radius=radius)
    for members, text, (x, y, half) in zip(groups, texts, spots):
        _label(draw, (x, y), half, radius, colours[members[0]], text)
    return np.asarray(canvas).copy()


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


def render_paths(pictures: Sequence[Tensor] | Tensor, centers: Tensor, *, size: int | None = None,
                 scales: int | None = None, factor: int | None = None, retina: RetinaSpec | None = None,
                 captions: Sequence[str] | None = None, correct: Sequence[bool] | None = None, columns: int = 4,
                 height_px: int = 240, all_scales: bool = False) -> np.ndarray:
    """Several glimpse paths (:func:`render_path`) as one picture to read at a glance: the tiles in a grid
    with gaps, each framed green if its decision was right and red if wrong, captioned (label and
    decision) with a check or a cross, under a legend of what the numbers, colours and frames mean.

    Args:
        pictures: ``N`` pictures ``(C, H, W)`` (a list, or one ``(N, C, H, W)`` tensor).
        centers: ``(N, T, 2)`` each picture's glimpse centres ``(x, y)`` in ``[-1, 1]``, in order.
        size, scales, factor, retina: the retina, as in :func:`glimpse.extract_glimpses` (``retina`` a
            :class:`glimpse.RetinaSpec`, such as an env's ``env.retina``, instead of the other three).
        captions: ``N`` lines under the tiles (none: no captions).
        correct: ``N`` flags, whether each decision was right (none: no frames, marks or their legend).
        columns: tiles per row.
        height_px: about how tall each tile's picture is.
        all_scales: also outline every step's coarser windows, faint.

    Returns:
        ``(height, width, 3)`` uint8 (see :func:`tile_grid`).
    """
    if centers.dim() != 3 or centers.shape[-1] != 2 or len(centers) != len(pictures):
        raise ValueError(f"centers must be (N, T, 2) for the {len(pictures)} pictures; got {tuple(centers.shape)}")
    retina = retina_spec(retina, size, scales, factor)
    size, scales = retina.size, retina.scales
    tiles = [render_path(picture, path, retina=retina, height_px=height_px, all_scales=all_scales)
             for picture, path in zip(pictures, centers)]
    steps = centers.shape[1]
    legend = [(_order_swatch(steps), "glimpse order"),
              (_box_swatch(step_colour(0, 2), 2, 255), f"finest window ({size} px)" + (
                  f" of {scales} scales" if scales > 1 and not all_scales else ""))]
    if all_scales and scales > 1:
        sides = ", ".join(str(side) for side in retina.sides[1:])
        legend.append((_box_swatch(step_colour(0, 2), 1, 110), f"faint: coarser windows ({sides} px)"))
    if correct is not None:
        legend += [(_mark_swatch(True), "right"), (_mark_swatch(False), "wrong")]
    return tile_grid(tiles, captions=captions, correct=correct, columns=columns, legend=legend)


def tile_grid(tiles: Sequence[np.ndarray], *, captions: Sequence[str] | None = None,
              correct: Sequence[bool | None] | None = None, columns: int = 4,
              legend: Sequence[tuple[np.ndarray | None, str]] = ()) -> np.ndarray:
    """RGB tiles laid out in rows of ``columns`` on a white background, :data:`GAP` pixels apart.

    Each tile sits in a :data:`FRAME`-pixel frame: :data:`RIGHT_COLOUR` where ``correct[i]`` is true,
    :data:`WRONG_COLOUR` where false, background where None or ``correct`` is absent; its caption goes
    under it, after a check or a cross where ``correct[i]`` is set. ``legend`` items (a small RGB swatch
    or None, then a text) run left to right above the tiles, wrapping to the grid's width.

    Args:
        tiles: ``(h_i, w_i, 3)`` uint8 pictures (cells are as large as the largest).
        captions, correct: one per tile, or None.
        columns: tiles per row.
        legend: ``(swatch, text)`` items.

    Returns:
        ``(height, width, 3)`` uint8.
    """
    count = len(tiles)
    if count == 0 or columns < 1:
        raise ValueError(f"tile_grid needs at least one tile and one column; got {count} tiles, {columns} columns")
    for name, values in (("captions", captions), ("correct", correct)):
        if values is not None and len(values) != count:
            raise ValueError(f"{name} must have one entry per tile ({count}); got {len(values)}")
    tile_h = max(tile.shape[0] for tile in tiles)
    tile_w = max(tile.shape[1] for tile in tiles)
    caption_h = TEXT_PX + 8 if captions is not None else 0
    cell_w, cell_h = tile_w + 2 * FRAME, tile_h + 2 * FRAME + caption_h
    cols, rows = min(count, columns), -(-count // columns)
    grid_w = GAP + cols * (cell_w + GAP)
    legend_lines = _wrap_legend(legend, grid_w - 2 * GAP)
    legend_h = sum(h for h, _, _ in legend_lines) + (GAP if legend_lines else 0)
    width = max([grid_w] + [line_w + 2 * GAP for _, _, line_w in legend_lines])  # a legend item is never cut
    canvas = Image.new("RGB", (width, GAP + legend_h + rows * (cell_h + GAP)), BACKGROUND)
    draw = ImageDraw.Draw(canvas)
    font = _font(TEXT_PX)
    y = GAP
    for line_h, items, _ in legend_lines:
        for x, swatch, text in items:
            if swatch is not None:
                canvas.paste(Image.fromarray(swatch), (GAP + x, y + (line_h - swatch.shape[0]) // 2))
                x += swatch.shape[1] + 4
            draw.text((GAP + x, y + line_h // 2), text, fill=TEXT_COLOUR, font=font, anchor="lm")
        y += line_h
    top = GAP + legend_h
    for i, tile in enumerate(tiles):
        x0 = GAP + (i % columns) * (cell_w + GAP)
        y0 = top + (i // columns) * (cell_h + GAP)
        verdict = correct[i] if correct is not None else None
        if verdict is not None:
            draw.rectangle((x0, y0, x0 + tile.shape[1] + 2 * FRAME - 1, y0 + tile.shape[0] + 2 * FRAME - 1),
                           fill=RIGHT_COLOUR if verdict else WRONG_COLOUR)
        canvas.paste(Image.fromarray(tile), (x0 + FRAME, y0 + FRAME))
        if captions is not None:  # drawn on its own strip, so that a long caption stops at its cell's edge
            strip, strip_draw = _swatch(cell_w, caption_h)
            x = 0
            if verdict is not None:
                _mark(strip_draw, 1, (caption_h - TEXT_PX) // 2, TEXT_PX, bool(verdict))
                x += TEXT_PX + 6
            strip_draw.text((x, caption_h // 2), captions[i], fill=TEXT_COLOUR, font=font, anchor="lm")
            canvas.paste(strip, (x0, y0 + tile_h + 2 * FRAME))
    return np.asarray(canvas).copy()


def step_colour(t: int, steps: int) -> tuple[int, int, int]:
    """The colour of step ``t`` of ``steps`` (from 0) in a path: :data:`FIRST_COLOUR` to :data:`LAST_COLOUR`."""
    mix = t / max(steps - 1, 1)
    r, g, b = (round(first * (1 - mix) + last * mix) for first, last in zip(FIRST_COLOUR, LAST_COLOUR))
    return r, g, b


@functools.lru_cache(maxsize=8)
def _font(px: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    """Pillow's own font at ``px`` pixels (no font file to ship or find)."""
    return ImageFont.load_default(size=px)


def _disc_radius(steps: int) -> int:
    """A step label's half height (a one-number label is a disc): room for the longest number."""
    return max(8, (round(_font(DISC_TEXT_PX).getlength(str(steps))) + 7) // 2)


def _step_list(steps: Sequence[int]) -> str:
    """``[2, 3, 4, 7]`` as ``"2-4,7"``: runs of consecutive steps shortened."""
    runs: list[list[int]] = []
    for step in steps:
        if runs and step == runs[-1][1] + 1:
            runs[-1][1] = step
        else:
            runs.append([step, step])
    return ",".join(str(a) if a == b else f"{a},{b}" if b == a + 1 else f"{a}-{b}" for a, b in runs)


def _label_half_width(text: str, radius: int) -> float:
    return max(radius, (_font(DISC_TEXT_PX).getlength(text) + 8) / 2)


def _label(draw: ImageDraw.ImageDraw, centre: tuple[float, float], half: float, radius: int,
           fill: tuple[int, int, int], text: str) -> None:
    """``text`` in black on a filled pill (a disc for one number) outlined in black, ``half`` wide each side."""
    x, y = centre
    draw.rounded_rectangle((x - half, y - radius, x + half, y + radius), radius=radius, fill=fill,
                           outline=TEXT_COLOUR, width=1)
    draw.text((x, y), text, fill=TEXT_COLOUR, font=_font(DISC_TEXT_PX), anchor="mm")


def _free_spot(point: tuple[float, float], taken: Sequence[tuple[float, float, float]], half: float, radius: int,
               size: tuple[int, int]) -> tuple[float, float]:
    """Where a label ``half`` wide and ``radius`` high each side goes: at ``point`` if it overlaps none of
    the labels ``taken`` (``(x, y, half width)``, as tall), else the nearest free place on rings around
    it; always inside the ``(width, height)`` image."""
    width, height = size

    def inside(x: float, y: float) -> tuple[float, float]:
        return min(max(x, half), width - 1 - half), min(max(y, radius), height - 1 - radius)

    candidates = [inside(*point)]
    for ring in (1, 2, 3):
        for k in range(8 * ring):
            angle = 2 * math.pi * k / (8 * ring) - math.pi / 2  # start above the point
            candidates.append(inside(point[0] + (half + radius) * ring * math.cos(angle),
                                     point[1] + 2 * radius * ring * math.sin(angle)))
    for x, y in candidates:
        if all(abs(x - a) >= half + other or abs(y - b) >= 2 * radius for a, b, other in taken):
            return x, y
    return candidates[0]


def _arrow(draw: ImageDraw.ImageDraw, start: tuple[float, float, float], end: tuple[float, float, float],
           colour: tuple[int, int, int], *, width: int, radius: int) -> None:
    """A line from label ``start`` to label ``end`` (each ``(x, y, half width)``, ``radius`` high each
    side) with its head at ``end``, from edge to edge; none between labels that (nearly) touch."""
    (xa, ya, half_a), (xb, yb, half_b) = start, end
    length = math.hypot(xb - xa, yb - ya)
    ux, uy = (xb - xa) / max(length, 1e-9), (yb - ya) / max(length, 1e-9)

    def edge(half: float) -> float:  # from a label's centre to its border along (ux, uy)
        return min(half / max(abs(ux), 1e-9), radius / max(abs(uy), 1e-9))

    gap_a, gap_b = edge(half_a), edge(half_b)
    if length <= gap_a + gap_b + 4:  # neighbouring labels: the numbers alone say the order
        return
    xa, ya, xb, yb = xa + ux * gap_a, ya + uy * gap_a, xb - ux * gap_b, yb - uy * gap_b
    head = min(2.5 * width + 4, length - gap_a - gap_b)
    base = (xb - ux * head, yb - uy * head)
    draw.line((xa, ya, *base), fill=colour, width=width)
    draw.polygon([(xb, yb), (base[0] + uy * head * 0.6, base[1] - ux * head * 0.6),
                  (base[0] - uy * head * 0.6, base[1] + ux * head * 0.6)], fill=colour, outline=TEXT_COLOUR)


def _mark(draw: ImageDraw.ImageDraw, x: float, y: float, side: int, right: bool) -> None:
    """A check (right) or a cross (wrong) in the ``side``-pixel square at ``(x, y)``."""
    if right:
        draw.line([(x, y + 0.55 * side), (x + 0.4 * side, y + side - 1), (x + side - 1, y)], fill=RIGHT_COLOUR,
                  width=3, joint="curve")
    else:
        draw.line([(x, y), (x + side - 1, y + side - 1)], fill=WRONG_COLOUR, width=3)
        draw.line([(x, y + side - 1), (x + side - 1, y)], fill=WRONG_COLOUR, width=3)


def _swatch(width: int, height: int = 18) -> tuple[Image.Image, ImageDraw.ImageDraw]:
    image = Image.new("RGB", (width, height), BACKGROUND)
    return image, ImageDraw.Draw(image)


def _order_swatch(steps: int) -> np.ndarray:
    """Legend: the first step's disc, an arrow through the steps' colours, the last step's disc."""
    radius = _disc_radius(steps)
    image, draw = _swatch(2 * radius + (64 if steps > 1 else 0) + 2, 2 * radius + 2)
    middle = radius
    if steps > 1:
        span = image.width - 4 * radius - 2
        for i in range(span):
            colour = step_colour(i * (steps - 1) // span, steps)
            draw.line((2 * radius + i, middle - 1, 2 * radius + i, middle + 1), fill=colour)
        _label(draw, (image.width - radius - 1, middle), radius, radius, step_colour(steps - 1, steps), str(steps))
    _label(draw, (radius, middle), radius, radius, step_colour(0, steps), "1")
    return np.asarray(image).copy()


def _box_swatch(colour: tuple[int, int, int], width: int, alpha: int) -> np.ndarray:
    """Legend: a window outline, at ``alpha`` (0-255) over the background."""
    faded = tuple(round(c * alpha / 255 + b * (1 - alpha / 255)) for c, b in zip(colour, BACKGROUND))
    image, draw = _swatch(18)
    draw.rectangle((1, 1, 16, 16), outline=faded, width=width)
    return np.asarray(image).copy()


def _mark_swatch(right: bool) -> np.ndarray:
    """Legend: a frame in the verdict's colour with its check or cross beside it."""
    image, draw = _swatch(18 + 6 + TEXT_PX)
    draw.rectangle((0, 0, 17, 17), outline=RIGHT_COLOUR if right else WRONG_COLOUR, width=FRAME)
    _mark(draw, 24, (18 - TEXT_PX) // 2, TEXT_PX, right)
    return np.asarray(image).copy()


def _wrap_legend(items: Sequence[tuple[np.ndarray | None, str]], width: int) -> list[tuple[int, list]]:
    """Legend items in lines no wider than ``width`` (but one item each at least):
    ``[(line height, [(x, swatch, text), ...], line width), ...]``."""
    font = _font(TEXT_PX)
    lines: list[tuple[int, list]] = []
    x, line_h, line = 0, 0, []
    for swatch, text in items:
        item_w = (swatch.shape[1] + 4 if swatch is not None else 0) + round(font.getlength(text))
        item_h = max(swatch.shape[0] if swatch is not None else 0, TEXT_PX + 6)
        if line and x + item_w > width:
            lines.append((line_h, line, x - LEGEND_SPACE))
            x, line_h, line = 0, 0, []
        line.append((x, swatch, text))
        x, line_h = x + item_w + LEGEND_SPACE, max(line_h, item_h)
    if line:
        lines.append((line_h, line, x - LEGEND_SPACE))
    return lines


def render_glimpses(pictures: Sequence[Tensor] | Tensor, centers: Tensor, *, size: int | None = None,
                    scales: int | None = None, factor: int | None = None, retina: RetinaSpec | None = None,
                    step: int = 0, steps: int = 1, columns: int = 4, height_px: int = 240) -> np.ndarray:
    """One step of several episodes as one picture (a frame of an animation): each picture with the
    retina's windows at its centre (:func:`render_glimpse`), in a :func:`tile_grid` under a legend that
    names the step (``step`` from 0, of ``steps``) and each scale's colour and side.

    Args:
        pictures: ``N`` pictures ``(C, H, W)`` (a list, or one ``(N, C, H, W)`` tensor).
        centers: ``(N, 2)`` each picture's glimpse centre ``(x, y)`` in ``[-1, 1]``.
        size, scales, factor, retina: the retina, as in :func:`glimpse.extract_glimpses` (``retina`` a
            :class:`glimpse.RetinaSpec`, such as an env's ``env.retina``, instead of the other three).
        step, steps: which step this is, and how many there are.
        columns, height_px: as in :func:`render_paths`.

    Returns:
        ``(height, width, 3)`` uint8.
    """
    if centers.dim() != 2 or centers.shape[-1] != 2 or len(centers) != len(pictures):
        raise ValueError(f"centers must be (N, 2) for the {len(pictures)} pictures; got {tuple(centers.shape)}")
    retina = retina_spec(retina, size, scales, factor)
    tiles = [render_glimpse(picture, center, retina=retina, height_px=height_px)
             for picture, center in zip(pictures, centers)]
    radius = _disc_radius(steps)
    image, draw = _swatch(2 * radius + 2, 2 * radius + 2)
    _label(draw, (radius, radius), radius, radius, step_colour(step, steps), str(step + 1))
    legend = [(np.asarray(image).copy(), f"glimpse {step + 1} of {steps}")]
    legend += [(_box_swatch(WINDOW_COLOURS[k % len(WINDOW_COLOURS)], 2, 255),
                f"{'finest ' if k == 0 and retina.scales > 1 else ''}{side} px") for k, side in enumerate(retina.sides)]
    return tile_grid(tiles, columns=columns, legend=legend)
