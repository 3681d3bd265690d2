"""envs.render's glimpse-path pictures, checked pixel by pixel, and the training library's paths picture."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image, ImageDraw, ImageFont

from agents.recurrent import Rollout
from agents.training import paths_picture
from envs.render import (BACKGROUND, FRAME, GAP, RIGHT_COLOUR, WRONG_COLOUR, render_path, render_paths,
                         step_colour, tile_grid)
from glimpse import RetinaSpec, window_corners_px

SIZE, SIDE, ZOOM = 4, 30, 8  # a 4 px retina on 30 x 30 black pictures drawn 8x: the default 240 x 240 tiles
RETINA = dict(size=SIZE, scales=2, factor=2)


def black(n: int = 1) -> torch.Tensor:
    return torch.zeros(n, 1, SIDE, SIDE, dtype=torch.uint8)


def window_centre_px(center: tuple[float, float]) -> tuple[int, int]:
    """Where the finest window at ``center`` has its centre in the magnified tile (independently of render)."""
    x0, y0 = window_corners_px(torch.tensor([center]), SIDE, SIDE, size=SIZE)[0, 0].tolist()
    return (x0 * ZOOM + SIZE * ZOOM // 2, y0 * ZOOM + SIZE * ZOOM // 2)


def text_at(tile: np.ndarray, centre: tuple[int, int], candidates: list[str]) -> str:
    """Which of ``candidates`` is written in black at ``centre``: the best overlap with each string as
    Pillow's default font (the only font the pictures use) draws it, at the sizes a label could use,
    compared within the string's own bounding box (inside a label, around its text, all is its fill)."""
    x, y = centre
    patch = tile[y - 12 : y + 13, x - 24 : x + 25].max(-1) < 100  # dark: the text, antialiased
    best, best_score = None, -1.0
    for text in candidates:
        for px in range(10, 17):
            reference = Image.new("L", (49, 25), 0)
            ImageDraw.Draw(reference).text((24, 12), text, fill=255, font=ImageFont.load_default(size=px),
                                           anchor="mm")
            mask = np.asarray(reference) > 155
            rows, cols = np.flatnonzero(mask.any(1)), np.flatnonzero(mask.any(0))
            box = (slice(rows[0] - 1, rows[-1] + 2), slice(cols[0] - 1, cols[-1] + 2))
            score = (mask[box] & patch[box]).sum() / max((mask[box] | patch[box]).sum(), 1)
            if score > best_score:
                best, best_score = text, score
    assert best_score > 0.6, f"no clear text at {centre} (best {best!r}: {best_score:.2f})"
    return best


def frames_of(picture: np.ndarray, colour: tuple[int, int, int]) -> list[tuple[int, int, int, int]]:
    """Boxes ``(x0, y0, x1, y1)`` of the tile frames in ``colour``: top-left corners from which runs of
    the colour at least a tile long go right and down."""
    mask = np.pad((picture == colour).all(-1), ((1, 1), (1, 1)))
    boxes = []
    for y, x in zip(*np.nonzero(mask[1:-1, 1:-1] & ~mask[:-2, 1:-1] & ~mask[1:-1, :-2])):
        right, down = np.argmin(mask[y + 1, x + 1 :]), np.argmin(mask[y + 1 :, x + 1])  # run lengths
        if right >= SIDE * ZOOM and down >= SIDE * ZOOM:
            boxes.append((int(x), int(y), int(x + right - 1), int(y + down - 1)))
    return boxes


def test_numbers_are_drawn_in_step_order_in_their_colours():
    centers = torch.tensor([[-0.6, -0.6], [0.6, -0.6], [0.6, 0.6], [-0.6, 0.6]])
    tile = render_path(black()[0], centers, **RETINA, height_px=SIDE * ZOOM)
    assert tile.shape == (SIDE * ZOOM, SIDE * ZOOM, 3)
    for t, center in enumerate(centers.tolist()):
        x, y = window_centre_px(center)
        assert text_at(tile, (x, y), ["1", "2", "3", "4"]) == str(t + 1)
        assert tuple(tile[y - 7, x]) == step_colour(t, 4)  # the disc's fill, above its number
    # The finest window is outlined in its step's colour; the first and last steps differ.
    x0, y0 = window_corners_px(centers[:1], SIDE, SIDE, size=SIZE)[0, 0].tolist()
    assert tuple(tile[y0 * ZOOM, x0 * ZOOM + 3]) == step_colour(0, 4) != step_colour(3, 4)
    # An arrow from each label to the next, in the colour of the step it leads to.
    (xa, ya), (xb, yb) = window_centre_px(centers[0].tolist()), window_centre_px(centers[1].tolist())
    assert tuple(tile[ya, (xa + xb) // 2]) == step_colour(1, 4)


def test_repeated_looks_share_one_label():
    a, b = [-0.5, 0.0], [0.5, 0.0]
    tile = render_path(black()[0], torch.tensor([a, b, a, a]), **RETINA, height_px=SIDE * ZOOM)
    assert text_at(tile, window_centre_px(a), ["1", "1,3", "1,3,4", "1,3-4", "1-4"]) == "1,3,4"
    assert text_at(tile, window_centre_px(b), ["2", "1", "3"]) == "2"


def test_coarser_windows_only_with_all_scales():
    center = torch.tensor([[0.0, 0.0]])
    x0, y0 = window_corners_px(center, SIDE, SIDE, size=SIZE, scales=2)[0, 1].tolist()  # the coarser window
    finest = render_path(black()[0], center, **RETINA, height_px=SIDE * ZOOM)
    every = render_path(black()[0], center, **RETINA, height_px=SIDE * ZOOM, all_scales=True)
    assert (finest[y0 * ZOOM, x0 * ZOOM : x0 * ZOOM + 10] == 0).all()
    faint = every[y0 * ZOOM, x0 * ZOOM + 5].astype(int)
    assert 0 < faint.max() < max(step_colour(0, 1))  # blended onto the black picture: fainter than the colour


def test_grid_has_gaps_frames_and_a_legend():
    pictures, n, columns = black(5), 5, 3
    centers = torch.zeros(n, 2, 2)
    correct = [True, False, True, True, False]
    picture = render_paths(pictures, centers, **RETINA, captions=[f"tile {i}" for i in range(n)],
                           correct=correct, columns=columns, height_px=SIDE * ZOOM)
    cell = SIDE * ZOOM + 2 * FRAME
    assert picture.shape[1] == GAP + columns * (cell + GAP)
    boxes = sorted(frames_of(picture, RIGHT_COLOUR) + frames_of(picture, WRONG_COLOUR), key=lambda b: (b[1], b[0]))
    assert len(boxes) == n
    assert all(x1 - x0 + 1 == cell and y1 - y0 + 1 == cell for x0, y0, x1, y1 in boxes)
    assert [b[0] for b in boxes] == [GAP + c * (cell + GAP) for c in (0, 1, 2, 0, 1)]
    for (x0, y0, x1, y1), right in zip(boxes, correct):
        assert tuple(picture[y0 + 1, x0 + 1]) == (RIGHT_COLOUR if right else WRONG_COLOUR)
        # The caption's mark under the tile: a check in green or a cross in red, never the other colour.
        strip = picture[y1 + 1 : y1 + 23, x0 : x0 + 20]
        assert (strip == (RIGHT_COLOUR if right else WRONG_COLOUR)).all(-1).sum() > 10
        assert not (strip == (WRONG_COLOUR if right else RIGHT_COLOUR)).all(-1).any()
    # Gaps: the columns between tiles and the rows between tile rows are background, all the way.
    top = boxes[0][1]
    for x0, _, x1, _ in boxes[:columns]:
        assert (picture[top:, x1 + 1 : x1 + 1 + GAP] == BACKGROUND).all()
    assert (picture[top:, :GAP] == BACKGROUND).all()
    first_row_bottom = boxes[0][3]
    assert (picture[first_row_bottom + 23 : boxes[columns][1]] == BACKGROUND).all()  # under the captions
    # The legend above the tiles: the order's colours and both verdicts' swatches.
    legend = picture[:top]
    for colour in (step_colour(0, 2), step_colour(1, 2), RIGHT_COLOUR, WRONG_COLOUR):
        assert (legend == colour).all(-1).any(), f"no {colour} in the legend"
    plain = render_paths(pictures, centers, **RETINA, columns=columns, height_px=SIDE * ZOOM)
    plain_legend = plain[: top - 10]
    assert not (plain == RIGHT_COLOUR).all(-1).any() and not (plain == WRONG_COLOUR).all(-1).any()
    assert (plain_legend == step_colour(0, 2)).all(-1).any()


def test_paths_picture_reads_the_decision_and_draws_only_the_looks_read():
    # Two classified episodes of T = 2 looks; row 0 decides its label (3), row 1 decides 5 for a 7. The
    # rollout's last location, in a corner, only produced the final observation: it must not be drawn.
    locations = torch.tensor([[[-0.5, -0.5], [0.5, 0.5], [-0.9, 0.9]]] * 2)
    logits = torch.zeros(2, 10)
    logits[0, 3], logits[1, 5] = 1.0, 1.0
    zeros = torch.zeros(2, 2)
    trajectory = Rollout(log_probs=zeros[:, :1], entropies=zeros[:, :1], baselines=zeros, rewards=zeros,
                         returns=zeros, locations=locations, logits=logits, labels=torch.tensor([3, 7]))
    picture = paths_picture(RetinaSpec(**RETINA), black(2), trajectory, 8)
    boxes = sorted(frames_of(picture, RIGHT_COLOUR) + frames_of(picture, WRONG_COLOUR))
    assert [tuple(picture[y0 + 1, x0 + 1]) for x0, y0, _, _ in boxes] == [RIGHT_COLOUR, WRONG_COLOUR]
    x0, y0, _, y1 = boxes[1]
    tile = picture[y0 + FRAME : y1 - FRAME + 1, x0 + FRAME : x0 + FRAME + SIDE * ZOOM]
    corner = window_corners_px(locations[0, 2:], SIDE, SIDE, size=SIZE)[0, 0] * ZOOM
    assert (tile[corner[1] : corner[1] + SIZE * ZOOM, max(corner[0], 0) : corner[0] + SIZE * ZOOM] == 0).all()
    # Catch: no labels, the last step's reward says caught (1) or missed (0).
    rewards = torch.tensor([[0.0, 0.0], [0.0, 1.0]])
    catch = Rollout(log_probs=zeros[:, :1], entropies=zeros[:, :1], baselines=zeros, rewards=rewards,
                    returns=rewards, locations=locations, decision_log_probs=zeros, decision_entropies=zeros)
    picture = paths_picture(RetinaSpec(**RETINA), black(2), catch, 8)
    boxes = sorted(frames_of(picture, RIGHT_COLOUR) + frames_of(picture, WRONG_COLOUR))
    assert [tuple(picture[y0 + 1, x0 + 1]) for x0, y0, _, _ in boxes] == [WRONG_COLOUR, RIGHT_COLOUR]


@pytest.mark.parametrize("call, message", [
    (lambda: render_paths(black(2), torch.zeros(3, 2, 2), **RETINA), "centers must be (N, T, 2)"),
    (lambda: render_paths(black(2), torch.zeros(2, 2), **RETINA), "centers must be (N, T, 2)"),
    (lambda: render_paths(black(2), torch.zeros(2, 1, 2), **RETINA, captions=["a"]), "captions must have one"),
    (lambda: tile_grid([np.zeros((4, 4, 3), np.uint8)], correct=[True, False]), "correct must have one"),
    (lambda: tile_grid([]), "at least one tile"),
])
def test_bad_input_is_named(call, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        call()


def test_a_legend_wider_than_the_tiles_widens_the_picture_and_a_long_caption_stops_at_its_cell():
    text = "a legend line far longer than one small tile"
    tile = np.zeros((8, 8, 3), np.uint8)
    picture = tile_grid([tile, tile], captions=["a caption far longer than its tile", "b"], columns=2,
                        legend=[(None, text)])
    width = round(ImageFont.load_default(size=14).getlength(text))
    assert picture.shape[1] >= width + 2 * GAP  # the whole legend text, with the margins
    dark = np.flatnonzero((picture.max(-1) < 128).any(0))
    assert dark.max() < picture.shape[1] - GAP + 1
    # Tile 0's caption is cut at its cell, so the gap after the cell stays background below the legend.
    cell = 8 + 2 * FRAME
    top = picture.shape[0] - (GAP + cell + 14 + 8)
    assert (picture[top:, GAP + cell : 2 * GAP + cell] == BACKGROUND).all()
