"""Episode generators of envs/tasks.py (exact compositing, the documented recipes, batching) and Catch's physics
(envs/catch.py)."""

import math
import time
import warnings

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from envs import GlimpseVectorEnv, rng, tasks
from envs.catch import CatchState, catch_render, catch_reset, catch_step
from envs.tasks import (
    VideoSource,
    as_video_source,
    cluttered_digits,
    moving_digits,
    moving_positions,
    paste_patches,
    plain_digits,
    plain_images,
    scaled_digits,
    translated_digits,
    video_frames,
)

# --------------------------------------------------------------------------------------------------
# Helpers: synthetic digit sets and a slow, obviously correct numpy paste
# --------------------------------------------------------------------------------------------------


def solid_digits(values, side=28):
    """One solid side x side square per value (every pixel nonzero), labels 0..M-1."""
    values = torch.as_tensor(values, dtype=torch.uint8)
    images = values[:, None, None].expand(-1, side, side).contiguous()
    return images, torch.arange(len(values), dtype=torch.int64)


def random_digits(m, side=28, seed=0):
    g = torch.Generator().manual_seed(seed)
    images = torch.randint(0, 256, (m, side, side), dtype=torch.uint8, generator=g)
    images[torch.rand(images.shape, generator=g) < 0.6] = 0  # mostly background, like a digit
    return images, torch.randint(0, 10, (m,), generator=g)


def batch(seed, n, episode=0):
    return rng.keys_from_seed(seed, n), torch.full((n,), episode, dtype=torch.int64)


def ref_paste_into(canvas: np.ndarray, patch: np.ndarray, x0: int, y0: int) -> None:
    """Add ``patch`` at corner (x0, y0), dropping what falls outside (pure numpy, float)."""
    h, w = patch.shape
    side = canvas.shape[0]
    ys, xs = slice(max(y0, 0), min(y0 + h, side)), slice(max(x0, 0), min(x0 + w, side))
    if ys.start < ys.stop and xs.start < xs.stop:
        canvas[ys, xs] += patch[ys.start - y0 : ys.stop - y0, xs.start - x0 : xs.stop - x0]


def ref_finish(canvas: np.ndarray) -> np.ndarray:
    return np.clip(np.round(canvas), 0, 255).astype(np.uint8)


def footprints(mask: torch.Tensor):
    """Bounding boxes of nonempty masks ``(..., H, W)``: ``x0, y0, width, height, count``, each ``(...)``."""
    cols, rows = mask.any(-2).long(), mask.any(-1).long()  # (..., W), (..., H)
    x0, y0 = cols.argmax(-1), rows.argmax(-1)  # first True
    x1 = cols.shape[-1] - 1 - cols.flip(-1).argmax(-1)
    y1 = rows.shape[-1] - 1 - rows.flip(-1).argmax(-1)
    return x0, y0, x1 - x0 + 1, y1 - y0 + 1, mask.sum((-2, -1))


# --------------------------------------------------------------------------------------------------
# paste_patches
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "corner", [(0, 0), (5, 17), (32, 32), (-3, 4), (40, 50), (-27, -27), (59, 0), (60, 3), (-28, 0)]
)
def test_paste_one_digit_reproduces_its_pixels_and_drops_the_outside(corner):
    images, _ = random_digits(1)
    x0, y0 = corner
    out = paste_patches(images[None], torch.tensor([[corner]]), 60)
    assert out.shape == (1, 1, 60, 60) and out.dtype == torch.uint8
    expected = np.zeros((60, 60))
    ref_paste_into(expected, images[0].numpy().astype(np.float64), x0, y0)
    assert np.array_equal(out[0, 0].numpy(), ref_finish(expected))
    if 0 <= x0 <= 32 and 0 <= y0 <= 32:  # fully inside: exactly the digit, zeros elsewhere
        assert torch.equal(out[0, 0, y0 : y0 + 28, x0 : x0 + 28], images[0])
        assert int(out.long().sum()) == int(images.long().sum())


def test_paste_sums_overlaps_and_clips_at_255():
    patches = torch.tensor([[[[100, 200]], [[100, 100]]]], dtype=torch.uint8)  # (1, 2, 1, 2)
    out = paste_patches(patches, torch.tensor([[[0, 0], [1, 0]]]), 3)
    assert out[0, 0, 0].tolist() == [100, 255, 100]  # 200 + 100 clipped
    assert out[0, 0, 1:].sum() == 0


@settings(max_examples=40, deadline=None)
@given(
    b=st.integers(1, 3),
    k=st.integers(0, 4),
    h=st.integers(1, 9),
    w=st.integers(1, 9),
    canvas=st.integers(1, 16),
    floating=st.booleans(),
    seed=st.integers(0, 2**31 - 1),
)
def test_paste_matches_numpy_reference(b, k, h, w, canvas, floating, seed):
    g = torch.Generator().manual_seed(seed)
    patches = torch.randint(0, 256, (b, k, h, w), dtype=torch.uint8, generator=g)
    if floating:
        patches = torch.rand(b, k, h, w, generator=g, dtype=torch.float64)
    corners = torch.randint(-10, canvas + 3, (b, k, 2), generator=g)
    out = paste_patches(patches, corners, canvas)
    scale = 255.0 if floating else 1.0
    for i in range(b):
        expected = np.zeros((canvas, canvas))
        for j in range(k):
            ref_paste_into(expected, patches[i, j].double().numpy() * scale, *corners[i, j].tolist())
        assert np.array_equal(out[i, 0].numpy(), ref_finish(expected))


def test_paste_validates_its_arguments():
    p = torch.zeros(1, 1, 2, 2, dtype=torch.uint8)
    c = torch.zeros(1, 1, 2, dtype=torch.int64)
    with pytest.raises(ValueError, match="float patches must lie in"):
        paste_patches(torch.full((1, 1, 2, 2), 1.5), c, 4)
    with pytest.raises(TypeError, match="corners must be integer"):
        paste_patches(p, c.float(), 4)
    with pytest.raises(TypeError, match="patches must be uint8"):
        paste_patches(p.int(), c, 4)
    with pytest.raises(ValueError, match=r"corners must be \(B, K, 2\)"):
        paste_patches(p, torch.zeros(1, 2, 2, dtype=torch.int64), 4)
    with pytest.raises(ValueError, match="canvas"):
        paste_patches(p, c, 0)


# --------------------------------------------------------------------------------------------------
# plain / translated / cluttered
# --------------------------------------------------------------------------------------------------


def test_plain_digits_returns_a_digit_of_the_set_with_its_label():
    images, labels = solid_digits([10 + j for j in range(7)])
    keys, episodes = batch(3, 200)
    x, y = plain_digits(images, labels, keys, episodes)
    assert x.shape == (200, 1, 28, 28) and x.dtype == torch.uint8
    assert torch.equal(x[:, 0, 0, 0].long() - 10, y)  # the pixel value names the digit drawn
    assert set(y.tolist()) == set(range(7))


def test_translated_digit_is_whole_inside_and_positions_cover_the_range():
    images, labels = solid_digits([10 + j for j in range(5)])
    keys, episodes = batch(0, 1500)
    x, y = translated_digits(images, labels, keys, episodes, canvas=60)
    assert x.shape == (1500, 1, 60, 60) and x.dtype == torch.uint8
    x0, y0, w, h, count = footprints(x[:, 0] > 0)
    assert bool((w == 28).all() & (h == 28).all() & (count == 784).all())  # one whole square, so inside
    assert torch.equal(x[torch.arange(1500), 0, y0, x0].long(), 10 + y)  # with its own label
    assert int(x0.min()) == 0 and int(x0.max()) == 32 and int(y0.min()) == 0 and int(y0.max()) == 32
    # Uniform over 33 positions per axis: the mean corner is near 16 (standard error 0.25).
    assert abs(x0.double().mean() - 16) < 1.0 and abs(y0.double().mean() - 16) < 1.0


@pytest.mark.parametrize("canvas,distractors", [(60, 4), (100, 8), (40, 1), (28, 0)])
def test_cluttered_target_whole_and_every_fragment_counted(canvas, distractors):
    """Two solid digits, values 1 and 20: every pixel decodes as target bit + 20 * fragment count, or the reverse.

    Fragments never exceed 8 layers (< 20) and nothing reaches 255, so the sum decodes exactly: the
    target must be one whole 28x28 square, and the fragment layers must add up to ``distractors * 64``
    pixels, all cut from the *other* digit.
    """
    images, labels = solid_digits([1, 20])
    keys, episodes = batch(11, 300)
    x, y = cluttered_digits(images, labels, keys, episodes, canvas=canvas, distractors=distractors)
    assert x.shape == (300, 1, canvas, canvas) and x.dtype == torch.uint8
    assert set(y.tolist()) == {0, 1}
    v = x[:, 0].long()
    target_is_one = (y == 0)[:, None, None]
    target = torch.where(target_is_one, v % 20, v // 20)
    fragments = torch.where(target_is_one, v // 20, v % 20)
    assert int(target.max()) == 1
    _, _, w, h, count = footprints(target > 0)
    assert bool((w == 28).all() & (h == 28).all() & (count == 784).all())
    assert bool((fragments.sum((1, 2)) == distractors * 64).all())


def test_cluttered_fragments_are_contiguous_crops_fully_inside_their_source():
    """One fragment from a digit whose rows (or columns) are numbered: it shows 8 consecutive numbers."""
    for axis in (0, 1):
        ramp = 30 + 2 * torch.arange(28)  # even values, so the target's +1 decodes as the parity
        source = (ramp[:, None] if axis == 0 else ramp[None, :]).expand(28, 28).to(torch.uint8)
        images = torch.stack([torch.ones(28, 28, dtype=torch.uint8), source])
        labels = torch.tensor([0, 1])
        keys, episodes = batch(5, 400)
        x, y = cluttered_digits(images, labels, keys, episodes, canvas=60, distractors=1)
        starts = set()
        for i in torch.nonzero(y == 0).flatten().tolist():
            frag = x[i, 0].long() - x[i, 0].long() % 2
            x0, y0, w, h, count = (int(v) for v in footprints(frag > 0))
            assert (w, h, count) == (8, 8, 64)
            block = frag[y0 : y0 + 8, x0 : x0 + 8]
            along = block[:, 0] if axis == 0 else block[0, :]
            start = (int(along[0]) - 30) // 2
            assert 0 <= start <= 20  # the crop lies inside the 28-pixel source
            assert torch.equal(along, 30 + 2 * (start + torch.arange(8)))
            assert torch.equal(block, along[:, None].expand(8, 8) if axis == 0 else along[None, :].expand(8, 8))
            starts.add(start)
        assert starts == set(range(21))  # every crop offset occurs


def test_cluttered_clips_at_255():
    images, labels = solid_digits([200, 200])
    keys, episodes = batch(2, 64)
    x, _ = cluttered_digits(images, labels, keys, episodes, canvas=28, distractors=4)
    assert int(x.max()) == 255 and x.dtype == torch.uint8  # a fragment always lands on the whole-canvas target
    assert set(torch.unique(x).tolist()) <= {0, 200, 255}


def ref_fragments_into(canvas, images, k, e, target, count, size):
    """Add the documented distractor fragments of one env (key ``k``, episode ``e``) to a numpy canvas."""
    if count == 0:
        return
    m, h, w = images.shape
    side = canvas.shape[0]
    src = rng.integers(k, e, tasks.STREAM_DISTRACTOR_SOURCE, m - 1, (count,))[0].tolist()
    crop = rng.integers(k, e, tasks.STREAM_DISTRACTOR_CROP, torch.tensor([w - size + 1, h - size + 1]), (count, 2))[0]
    at = rng.integers(k, e, tasks.STREAM_DISTRACTOR_CORNER, side - size + 1, (count, 2))[0]
    for d in range(count):
        j = src[d] + (src[d] >= target)  # never the target's index
        cx, cy = crop[d].tolist()
        ref_paste_into(canvas, images[j, cy : cy + size, cx : cx + size].double().numpy(), *at[d].tolist())


def ref_static(images, labels, key, episode, canvas, distractors, size):
    """The documented recipe of translated/cluttered digits for one env, in numpy."""
    k, e = torch.tensor([key]), torch.tensor([episode])
    m, h, w = images.shape
    index = int(rng.integers(k, e, tasks.STREAM_TARGET_DIGIT, m)[0])
    room = torch.tensor([canvas - w + 1, canvas - h + 1])
    x0, y0 = rng.integers(k, e, tasks.STREAM_TARGET_CORNER, room, (2,))[0].tolist()
    out = np.zeros((canvas, canvas))
    ref_paste_into(out, images[index].double().numpy(), x0, y0)
    ref_fragments_into(out, images, k, e, index, distractors, size)
    return ref_finish(out), int(labels[index])


@pytest.mark.parametrize("canvas,distractors,size", [(60, 0, 8), (60, 4, 8), (100, 8, 8), (40, 3, 28), (30, 2, 1)])
def test_static_tasks_match_the_documented_recipe(canvas, distractors, size):
    images, labels = random_digits(9)
    keys, episodes = rng.keys_from_seed(40, 6), torch.tensor([0, 1, 2, 3, 7, 100])
    if distractors == 0:
        x, y = translated_digits(images, labels, keys, episodes, canvas=canvas)
    else:
        x, y = cluttered_digits(
            images, labels, keys, episodes, canvas=canvas, distractors=distractors, distractor_size=size
        )
    for i in range(len(keys)):
        expected, label = ref_static(images, labels, int(keys[i]), int(episodes[i]), canvas, distractors, size)
        assert np.array_equal(x[i, 0].numpy(), expected)
        assert int(y[i]) == label


def test_static_tasks_validate_their_arguments():
    images, labels = solid_digits([1, 2])
    keys, episodes = batch(0, 2)
    with pytest.raises(ValueError, match="canvas must be >= the digit size"):
        translated_digits(images, labels, keys, episodes, canvas=27)
    with pytest.raises(ValueError, match="distractor_size must be an integer in"):
        cluttered_digits(images, labels, keys, episodes, distractor_size=29)
    with pytest.raises(ValueError, match="distractor_size must be an integer in"):
        cluttered_digits(images, labels, keys, episodes, distractor_size=0)
    with pytest.raises(ValueError, match="distractors must be an integer >= 0"):
        cluttered_digits(images, labels, keys, episodes, distractors=-1)
    with pytest.raises(ValueError, match="needs >= 2 digits"):
        cluttered_digits(images[:1], labels[:1], keys, episodes)
    with pytest.raises(TypeError, match="images must be uint8"):
        plain_digits(images.float(), labels, keys, episodes)
    with pytest.raises(ValueError, match=r"labels must be \(M,\)"):
        plain_digits(images, labels[:1], keys, episodes)
    with pytest.raises(TypeError, match="int64"):
        plain_digits(images, labels, keys.int(), episodes)


# --------------------------------------------------------------------------------------------------
# Scaled (small) digits on a large canvas
# --------------------------------------------------------------------------------------------------


def ref_block_mean(digit: torch.Tensor, side: int) -> np.ndarray:
    """The naive area average: the mean of each (H / side) x (H / side) block, float64."""
    h = digit.shape[-1]
    f = h // side
    return digit.double().numpy().reshape(side, f, side, f).mean(axis=(1, 3))


def ref_scaled(images, labels, key, episode, canvas, digit_size, distractors, size, target=None):
    """The documented recipe of scaled_digits for one env, in numpy, unrounded (float64 in [0, 255] units)."""
    k, e = torch.tensor([key]), torch.tensor([episode])
    m = images.shape[0]
    index = int(rng.integers(k, e, tasks.STREAM_TARGET_DIGIT, m)[0]) if target is None else target
    x0, y0 = rng.integers(k, e, tasks.STREAM_TARGET_CORNER, canvas - digit_size + 1, (2,))[0].tolist()
    out = np.zeros((canvas, canvas))
    ref_paste_into(out, ref_block_mean(images[index], digit_size), x0, y0)
    if distractors:
        src = rng.integers(k, e, tasks.STREAM_DISTRACTOR_SOURCE, m - 1, (distractors,))[0].tolist()
        crop = rng.integers(k, e, tasks.STREAM_DISTRACTOR_CROP, digit_size - size + 1, (distractors, 2))[0]
        at = rng.integers(k, e, tasks.STREAM_DISTRACTOR_CORNER, canvas - size + 1, (distractors, 2))[0]
        for d in range(distractors):
            small = ref_block_mean(images[src[d] + (src[d] >= index)], digit_size)  # never the target's index
            cx, cy = crop[d].tolist()
            ref_paste_into(out, small[cy : cy + size, cx : cx + size], *at[d].tolist())
    return out, int(labels[index]), (x0, y0)


def assert_rounds(got: torch.Tensor, exact: np.ndarray) -> None:
    """``got`` (uint8) is ``exact`` clipped to [0, 255] and rounded to nearest; a tie (.5) may go either way."""
    exact = np.clip(exact, 0, 255)
    got = got.double().numpy()
    assert np.abs(got - exact).max() <= 0.5 + 1e-6
    tie = np.abs(exact - np.floor(exact) - 0.5) < 1e-6
    assert np.array_equal(got[~tie], np.round(exact[~tie]))


@pytest.mark.parametrize("canvas,digit_size", [(100, 14), (60, 7), (30, 4), (28, 28), (9, 2)])
def test_scaled_digit_is_the_block_mean_pasted_at_the_drawn_corner(canvas, digit_size):
    images, labels = random_digits(9)
    keys, episodes = rng.keys_from_seed(12, 6), torch.tensor([0, 1, 2, 3, 7, 100])
    x, y = scaled_digits(images, labels, keys, episodes, canvas=canvas, digit_size=digit_size)
    assert x.shape == (6, 1, canvas, canvas) and x.dtype == torch.uint8
    for i in range(len(keys)):
        exact, label, (x0, y0) = ref_scaled(images, labels, int(keys[i]), int(episodes[i]), canvas, digit_size, 0, 1)
        assert_rounds(x[i, 0], exact)
        outside = torch.ones(canvas, canvas, dtype=torch.bool)
        outside[y0 : y0 + digit_size, x0 : x0 + digit_size] = False
        assert not x[i, 0][outside].any()  # nothing but the digit, whole inside the canvas
        assert int(y[i]) == label


def test_scaled_digits_with_clutter_match_the_documented_recipe():
    images, labels = random_digits(11, seed=3)
    keys, episodes = rng.keys_from_seed(5, 5), torch.tensor([0, 4, 9, 2, 1])
    for digit_size, distractors, size in [(14, 4, None), (14, 3, 14), (7, 6, 3)]:
        x, y = scaled_digits(images, labels, keys, episodes, canvas=50, digit_size=digit_size,
                             distractors=distractors, distractor_size=size)
        expected_size = max(1, 8 * digit_size // 28) if size is None else size  # the documented default
        for i in range(len(keys)):
            exact, label, _ = ref_scaled(
                images, labels, int(keys[i]), int(episodes[i]), 50, digit_size, distractors, expected_size
            )
            assert_rounds(x[i, 0], exact)
            assert int(y[i]) == label


def test_scaled_digits_pick_the_static_tasks_digit_and_cover_the_positions():
    images, labels = solid_digits([10 + j for j in range(5)])
    keys, episodes = batch(2, 1500)
    x, y = scaled_digits(images, labels, keys, episodes, canvas=40, digit_size=14)
    _, plain_y = plain_digits(images, labels, keys, episodes)
    assert torch.equal(y, plain_y)  # the same target digit as the other static tasks
    x0, y0, w, h, count = footprints(x[:, 0] > 0)
    assert bool((w == 14).all() & (h == 14).all() & (count == 196).all())  # one whole 14 x 14 square
    assert torch.equal(x[torch.arange(1500), 0, y0, x0].long(), 10 + y)  # a solid digit's block mean is its value
    assert int(x0.min()) == 0 and int(x0.max()) == 26 and int(y0.min()) == 0 and int(y0.max()) == 26


def test_scaled_digits_target_fixes_the_digit_and_the_canvas_depends_on_the_example_alone():
    """The env's test split: canvas j is drawn from (TEST_KEY, j) with target j, whatever else is in the batch."""
    images, labels = random_digits(10, seed=4)
    j = torch.arange(10)
    key = torch.full((10,), 0x7E57, dtype=torch.int64)
    x, y = scaled_digits(images, labels, key, j, canvas=40, distractors=2, target=j)
    assert torch.equal(y, labels)  # every example exactly once, example j is digit j
    for i in (0, 3, 9):
        exact, label, _ = ref_scaled(images, labels, 0x7E57, i, 40, 14, 2, 4, target=i)
        assert_rounds(x[i, 0], exact)
        alone, _ = scaled_digits(images, labels, key[i : i + 1], j[i : i + 1], canvas=40, distractors=2,
                                 target=j[i : i + 1])
        assert torch.equal(alone[0], x[i])


def test_scaled_digits_validate_their_arguments():
    images, labels = solid_digits([1, 2])
    keys, episodes = batch(0, 2)
    with pytest.raises(ValueError, match=r"digit_size must divide the digit side 28.*\[1, 2, 4, 7, 14, 28\]; got 13"):
        scaled_digits(images, labels, keys, episodes, digit_size=13)
    with pytest.raises(ValueError, match="digit_size must divide"):
        scaled_digits(images, labels, keys, episodes, digit_size=0)
    with pytest.raises(ValueError, match="square digits"):
        scaled_digits(images[:, :, :14], labels, keys, episodes)
    with pytest.raises(ValueError, match=r"canvas must be >= digit_size \(14\)"):
        scaled_digits(images, labels, keys, episodes, canvas=13)
    with pytest.raises(ValueError, match=r"distractor_size must be an integer in \[1, 7\]"):
        scaled_digits(images, labels, keys, episodes, digit_size=7, distractors=1, distractor_size=8)
    with pytest.raises(ValueError, match="needs >= 2 digits"):
        scaled_digits(images[:1], labels[:1], keys, episodes, distractors=1)
    with pytest.raises(ValueError, match=r"target must be int64"):
        scaled_digits(images, labels, keys, episodes, target=torch.tensor([0, 1], dtype=torch.int32))


def test_plain_images_return_a_picture_of_the_set_with_its_label():
    g = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (6, 3, 5, 7), dtype=torch.uint8, generator=g)
    labels = torch.tensor([2, 0, 1, 1, 0, 2])
    keys, episodes = batch(1, 50)
    x, y = plain_images(images, labels, keys, episodes)
    index = rng.integers(keys, episodes, tasks.STREAM_TARGET_DIGIT, 6)  # the stream plain_digits draws from
    assert x.shape == (50, 3, 5, 7) and torch.equal(x, images[index]) and torch.equal(y, labels[index])
    x, y = plain_images(images, labels, keys[:6], episodes[:6], target=torch.arange(6))
    assert torch.equal(x, images) and torch.equal(y, labels)
    with pytest.raises(TypeError, match="images must be uint8"):
        plain_images(images.float(), labels, keys, episodes)
    with pytest.raises(ValueError, match=r"images must be \(M, C, H, W\)"):
        plain_images(images[:, 0], labels, keys, episodes)
    with pytest.raises(ValueError, match=r"labels must be \(M,\)"):
        plain_images(images, labels[:2], keys, episodes)


# --------------------------------------------------------------------------------------------------
# Moving MNIST
# --------------------------------------------------------------------------------------------------


def test_moving_digit_stays_whole_inside_at_the_documented_corners():
    images, labels = solid_digits([10 + j for j in range(4)])
    keys, episodes = batch(8, 64)
    video, y = moving_digits(images, labels, keys, episodes, frames=20, canvas=64)
    assert video.shape == (64, 20, 1, 64, 64) and video.dtype == torch.uint8
    corners = torch.floor(moving_positions(keys, episodes, frames=20, canvas=64) + 0.5).long()  # (N, T, 1, 2)
    x0, y0, w, h, count = footprints(video[:, :, 0] > 0)  # (N, T) each
    assert bool((w == 28).all() & (h == 28).all() & (count == 784).all())  # whole, so fully inside
    assert torch.equal(torch.stack([x0, y0], -1), corners[:, :, 0])
    assert torch.equal(video[:, :, 0].amax((-2, -1)).long(), (10 + y)[:, None].expand(64, 20))


def reference_path(start, velocity, room, frames):
    """Step-by-step bouncing in plain Python: p += v, reflect about an edge that was crossed."""
    p, v, out = list(start), list(velocity), []
    for _ in range(frames):
        out.append(list(p))
        for a in range(2):
            if room[a] == 0:  # a digit as wide as the canvas cannot move along that axis
                continue
            p[a] += v[a]
            if p[a] > room[a]:
                p[a], v[a] = 2 * room[a] - p[a], -v[a]
            elif p[a] < 0:
                p[a], v[a] = -p[a], -v[a]
    return out


@pytest.mark.parametrize(
    "speed,canvas,size", [(3.0, 64, 28), (2.0, 64, 28), (7.5, 40, 28), (3.0, 28, 28), (1.0, 36, (28, 20))]
)
def test_moving_positions_bounce_off_the_edges_at_constant_speed(speed, canvas, size):
    keys, episodes = batch(1, 50, episode=3)
    frames, digits = 40, 2
    pos = moving_positions(keys, episodes, frames=frames, canvas=canvas, digits=digits, speed=speed, digit_size=size)
    assert pos.shape == (50, frames, digits, 2) and pos.dtype == torch.float64
    h, w = (size, size) if isinstance(size, int) else size
    room = (canvas - w, canvas - h)
    assert bool((pos >= 0).all()) and bool((pos[..., 0] <= room[0]).all()) and bool((pos[..., 1] <= room[1]).all())
    theta = rng.uniform(keys, episodes, tasks.STREAM_MOVING_ANGLE, (digits,)) * 2 * math.pi
    for i in range(50):
        for d in range(digits):
            v = (speed * math.cos(float(theta[i, d])), speed * math.sin(float(theta[i, d])))
            ref = reference_path(pos[i, 0, d].tolist(), v, room, frames)
            assert np.allclose(pos[i, :, d].numpy(), np.array(ref), atol=1e-9)
    if room[0] == 0 or speed == 0:
        return
    # A step that ends more than `speed` from every edge cannot have bounced: it moves exactly `speed`.
    step = pos[:, 1:] - pos[:, :-1]  # (N, T-1, D, 2)
    far = ((pos[:, 1:] > speed) & (pos[:, 1:] < torch.tensor(room, dtype=torch.float64) - speed)).all(-1)
    assert torch.allclose(step.norm(dim=-1)[far], torch.full((int(far.sum()),), speed, dtype=torch.float64))
    # The x-direction flips (between steps t-1 -> t and t -> t+1) only next to an edge.
    reversal = (step[:, 1:, :, 0] * step[:, :-1, :, 0]) < 0
    assert int(reversal.sum()) > 0
    x = pos[:, 1:-1, :, 0]
    assert bool((torch.minimum(x, room[0] - x) <= speed)[reversal].all())


def test_moving_digit_heading_for_an_edge_reverses():
    """Digits moving right reach the right edge and come back at the same speed."""
    keys, episodes = batch(21, 200)
    pos = moving_positions(keys, episodes, frames=30, canvas=64, speed=3.0)[:, :, 0, 0]  # x, (N, T)
    vx = 3.0 * torch.cos(rng.uniform(keys, episodes, tasks.STREAM_MOVING_ANGLE, (1,))[:, 0] * 2 * math.pi)
    dx = pos[:, 1:] - pos[:, :-1]
    rightward = torch.nonzero(vx > 1.0).flatten()
    assert len(rightward) > 20
    for i in rightward.tolist():
        flip = torch.nonzero(dx[i] < 0).flatten()
        assert len(flip) > 0  # 36 px of room at > 1 px/frame: it must have bounced within 30 frames
        t = int(flip[0])
        assert torch.allclose(dx[i, : max(t - 1, 0)], vx[i].expand(max(t - 1, 0)))  # full steps right until the edge
        assert float(pos[i, : t + 1].max()) > 36 - 3.0  # it turned at the right edge
        after = dx[i, t : t + 2]
        assert bool(((after + vx[i]).abs() < 1e-9).any())  # then full steps left: same speed, reversed


def test_moving_digits_label_is_the_first_digit_and_the_second_is_another_image():
    values = [1, 2, 4, 8, 16, 32, 64, 128]  # one bit per image: a sum of two distinct images decodes
    images, labels = solid_digits(values)
    keys, episodes = batch(4, 100)
    video, y = moving_digits(images, labels, keys, episodes, frames=6, canvas=50, digits=2)
    corners = torch.floor(moving_positions(keys, episodes, frames=6, canvas=50, digits=2) + 0.5).long()
    for i in range(100):
        target_bit = 1 << int(y[i])
        for t in range(6):
            frame = video[i, t, 0].long()
            x0, y0 = corners[i, t, 0].tolist()
            x1, y1 = corners[i, t, 1].tolist()
            first, second = frame[y0 : y0 + 28, x0 : x0 + 28], frame[y1 : y1 + 28, x1 : x1 + 28]
            common_first = int(np.bitwise_and.reduce(first.flatten().numpy()))
            common_second = int(np.bitwise_and.reduce(second.flatten().numpy()))
            assert common_first & target_bit  # the labelled digit is the first one
            assert common_second & ~target_bit  # the second is another image, with another bit
            assert int(frame.sum()) == 784 * (target_bit + (common_second & ~target_bit))  # nothing else


def ref_moving(images, labels, key, episode, frames, canvas, digits, distractors, size, speed):
    k, e = torch.tensor([key]), torch.tensor([episode])
    m, h, w = images.shape
    index = [int(rng.integers(k, e, tasks.STREAM_TARGET_DIGIT, m)[0])]
    if digits == 2:
        other = int(rng.integers(k, e, tasks.STREAM_SECOND_DIGIT, m - 1)[0])
        index.append(other + (other >= index[0]))
    static = np.zeros((canvas, canvas))
    ref_fragments_into(static, images, k, e, index[0], distractors, size)
    start = rng.uniform(k, e, tasks.STREAM_MOVING_START, (digits, 2))[0]
    theta = rng.uniform(k, e, tasks.STREAM_MOVING_ANGLE, (digits,))[0] * 2 * math.pi
    paths = [
        reference_path(
            (float(start[d, 0]) * (canvas - w), float(start[d, 1]) * (canvas - h)),
            (speed * math.cos(float(theta[d])), speed * math.sin(float(theta[d]))),
            (canvas - w, canvas - h),
            frames,
        )
        for d in range(digits)
    ]
    video = []
    for t in range(frames):
        frame = static.copy()
        for d in range(digits):
            px, py = paths[d][t]
            ref_paste_into(frame, images[index[d]].double().numpy(), math.floor(px + 0.5), math.floor(py + 0.5))
        video.append(ref_finish(frame))
    return np.stack(video), int(labels[index[0]])


@pytest.mark.parametrize(
    "digits,distractors,canvas,speed", [(1, 0, 64, 3.0), (2, 0, 64, 2.0), (2, 6, 64, 3.0), (1, 3, 40, 5.5)]
)
def test_moving_digits_match_the_documented_recipe(digits, distractors, canvas, speed):
    images, labels = random_digits(7, seed=3)
    keys, episodes = rng.keys_from_seed(9, 4), torch.tensor([0, 5, 1, 2])
    video, y = moving_digits(
        images, labels, keys, episodes, frames=12, canvas=canvas, digits=digits, distractors=distractors, speed=speed
    )
    assert video.shape == (4, 12, 1, canvas, canvas)
    for i in range(4):
        expected, label = ref_moving(
            images, labels, int(keys[i]), int(episodes[i]), 12, canvas, digits, distractors, 8, speed
        )
        assert np.array_equal(video[i, :, 0].numpy(), expected)
        assert int(y[i]) == label


def test_moving_digits_validate_their_arguments():
    images, labels = solid_digits([1, 2])
    keys, episodes = batch(0, 2)
    with pytest.raises(ValueError, match="digits must be 1 or 2"):
        moving_digits(images, labels, keys, episodes, digits=3)
    with pytest.raises(ValueError, match="speed must be"):
        moving_digits(images, labels, keys, episodes, speed=-1.0)
    with pytest.raises(ValueError, match="frames"):
        moving_digits(images, labels, keys, episodes, frames=0)
    with pytest.raises(ValueError, match="canvas must be >= the digit size"):
        moving_digits(images, labels, keys, episodes, canvas=20)
    with pytest.raises(ValueError, match="needs >= 2"):
        moving_digits(images[:1], labels[:1], keys, episodes, digits=2)


# --------------------------------------------------------------------------------------------------
# User videos
# --------------------------------------------------------------------------------------------------


def test_video_frames_layouts():
    m, t, h, w, c = 5, 3, 4, 6, 2
    frames = torch.arange(m * t * h * w * c, dtype=torch.int64).remainder(251).to(torch.uint8).view(m, t, h, w, c)
    frames[:, 0, 0, 0, 0] = torch.arange(m, dtype=torch.uint8)  # the video's index, for checking
    labels = torch.arange(m) * 3
    keys, episodes = batch(0, 40)
    source = as_video_source(frames, labels)
    assert source.frames.shape == (m, t, c, h, w) and source.frames.is_contiguous()
    video, y = video_frames(source, None, keys, episodes)
    assert video.shape == (40, t, c, h, w) and video.dtype == torch.uint8
    index = video[:, 0, 0, 0, 0].long()
    assert torch.equal(y, index * 3)
    assert torch.equal(video, frames[index].permute(0, 1, 4, 2, 3))
    assert set(index.tolist()) == set(range(m))
    raw, raw_y = video_frames(frames, labels, keys, episodes)  # raw frames: converted on the fly, same draw
    assert torch.equal(raw, video) and torch.equal(raw_y, y)
    gray = torch.rand(m, t, h, w, dtype=torch.float32)
    video, _ = video_frames(as_video_source(gray, labels), None, keys, episodes)
    assert video.shape == (40, t, 1, h, w) and video.dtype == torch.float32


def test_video_frames_validate():
    frames = torch.zeros(3, 2, 4, 4, dtype=torch.uint8)
    labels = torch.arange(3)
    keys, episodes = batch(0, 2)
    with pytest.raises(TypeError, match="uint8 or floating"):
        as_video_source(frames.int(), labels)
    with pytest.raises(ValueError, match=r"in \[0, 1\]"):
        as_video_source(torch.full((3, 2, 4, 4), 2.0), labels)
    with pytest.raises(ValueError, match=r"in \[0, 1\]"):
        as_video_source(torch.full((3, 2, 4, 4), float("nan")), labels)
    with pytest.raises(ValueError, match="one entry per video"):
        as_video_source(frames, torch.arange(4))
    with pytest.raises(ValueError, match=r"\(M, T, H, W\) or \(M, T, H, W, C\)"):
        as_video_source(frames[0], labels)
    with pytest.raises(TypeError, match="labels must be an integer"):
        as_video_source(frames, labels.float())
    with pytest.raises(ValueError, match="labels=None"):
        video_frames(as_video_source(frames, labels), labels, keys, episodes)
    with pytest.raises(ValueError, match="labels are required"):
        video_frames(frames, None, keys, episodes)
    with pytest.raises(ValueError, match=r"frames must be \(M, T, C, H, W\)"):
        VideoSource(frames, labels)


def test_video_source_refuses_channels_first_frames_and_negative_labels():
    """Channels-first (M, T, 3, H, W) would be read as a 3-pixel-high canvas with W channels; a negative label
    names no class, so its video could never be rewarded."""
    labels = torch.arange(2)
    rgb_first = torch.zeros(2, 3, 3, 10, 12, dtype=torch.uint8)
    with pytest.raises(ValueError, match=r"channels-last \(M, T, H, W, C\) with C <= 4; got \(2, 3, 3, 10, 12\), "
                                         r"whose last axis has 12 entries \(it looks channels-first \(M, T, C, H, W\) "
                                         r"with C = 3: pass frames.permute\(0, 1, 3, 4, 2\)\)") as caught:
        as_video_source(rgb_first, labels)
    assert "\n" not in str(caught.value)
    with pytest.raises(ValueError, match=r"whose last axis has 9 entries$"):  # no channels-first hint: neither fits
        as_video_source(torch.zeros(2, 3, 8, 10, 9), labels)
    # The same frames channels-last are the documented layout: the permuted source is exactly the input.
    source = as_video_source(rgb_first.permute(0, 1, 3, 4, 2), labels)
    assert torch.equal(source.frames, rgb_first)
    for channels in (1, 2, 4):
        assert as_video_source(torch.zeros(2, 3, 5, 6, channels), labels).frames.shape == (2, 3, channels, 5, 6)
    with pytest.raises(ValueError, match=r"labels must be integers >= 0 .*; got a label -1"):
        as_video_source(torch.zeros(2, 3, 5, 6), torch.tensor([0, -1]))
    with pytest.raises(ValueError, match=r"labels must be integers >= 0"):
        GlimpseVectorEnv(2, task="video", video=(torch.zeros(2, 3, 5, 6), [-2, 1]), glimpse_size=2)
    with pytest.raises(ValueError, match="channels-first"):
        GlimpseVectorEnv(2, task="video", video=(rgb_first, labels), glimpse_size=2)


# --------------------------------------------------------------------------------------------------
# Catch
# --------------------------------------------------------------------------------------------------


def one_ball(x, dx, paddle=11):
    return CatchState(
        ball_x=torch.tensor([float(x)], dtype=torch.float64),
        ball_y=torch.tensor([0]),
        ball_dx=torch.tensor([float(dx)], dtype=torch.float64),
        paddle_x=torch.tensor([paddle]),
    )


def test_catch_ball_bounces_off_the_right_wall_as_documented():
    state, stay = one_ball(20, +1), torch.zeros(1, dtype=torch.int64)
    columns, slopes = [], []
    for _ in range(6):
        state, _, _ = catch_step(state, stay)
        columns.append(float(state.ball_x))
        slopes.append(float(state.ball_dx))
    assert columns == [21, 22, 23, 22, 21, 20]
    assert slopes == [1, 1, 1, -1, -1, -1]  # dx flips on step 4, when the ball would pass column 23


def test_catch_ball_bounces_off_the_left_wall_and_reflects_fractions():
    state, stay = one_ball(2, -1), torch.zeros(1, dtype=torch.int64)
    cols = []
    for _ in range(4):
        state, _, _ = catch_step(state, stay)
        cols.append(float(state.ball_x))
    assert cols == [1, 0, 1, 2]
    state, _, _ = catch_step(one_ball(22.5, 0.75), stay)
    assert float(state.ball_x) == 22.75 and float(state.ball_dx) == -0.75  # 23.25 reflected about 23
    state, _, _ = catch_step(one_ball(0.25, -0.5), stay)
    assert float(state.ball_x) == 0.25 and float(state.ball_dx) == 0.5


def reference_landing_column(x, dx, screen=24):
    """Independent scalar simulation of the ball to the bottom row; returns its rounded column."""
    wall = screen - 1
    for _ in range(screen - 1):
        x += dx
        if x > wall:
            x, dx = 2 * wall - x, -dx
        elif x < 0:
            x, dx = -x, -dx
    return math.floor(x + 0.5)


def play(state, policy, screen=24):
    rewards, dones = [], []
    for _ in range(screen - 1):
        state, done, reward = catch_step(state, policy(state), screen=screen)
        rewards.append(reward)
        dones.append(done)
    return state, torch.stack(rewards, 1), torch.stack(dones, 1)


def test_catch_episode_length_rewards_and_policies():
    n = 2000
    keys, episodes = batch(0, n)
    start = catch_reset(keys, episodes)
    assert bool((start.ball_y == 0).all()) and bool((start.paddle_x == 11).all())
    assert set(start.ball_x.long().tolist()) == set(range(24)) and bool((start.ball_x == start.ball_x.round()).all())
    assert float(start.ball_dx.min()) >= -1 and float(start.ball_dx.max()) < 1
    assert float(start.ball_dx.abs().mean()) > 0.4  # uniform in [-1, 1): mean |dx| is 1/2

    def tracker(s):  # chase where the ball will be next step
        col = torch.floor(s.ball_x + s.ball_dx + 0.5).long()
        return (col > s.paddle_x + 1).long() - (col < s.paddle_x).long()

    final, rewards, dones = play(start, tracker)
    assert bool(dones[:, -1].all()) and not bool(dones[:, :-1].any())  # done after exactly 23 steps
    assert bool((rewards[:, :-1] == 0).all()) and set(rewards[:, -1].tolist()) <= {0.0, 1.0}
    assert rewards.dtype == torch.float32
    assert float(rewards[:, -1].mean()) >= 0.99
    assert bool((final.ball_y == 23).all())
    with pytest.raises(ValueError, match="already ended"):
        catch_step(final, torch.zeros(n, dtype=torch.int64))

    final, rewards, _ = play(start, lambda s: torch.zeros(n, dtype=torch.int64))
    pairs = zip(start.ball_x.tolist(), start.ball_dx.tolist())
    landing = torch.tensor([reference_landing_column(x, dx) for x, dx in pairs])
    assert torch.equal(torch.floor(final.ball_x + 0.5).long(), landing)
    assert torch.equal(rewards[:, -1], ((landing == 11) | (landing == 12)).float())
    assert 0.03 < float(rewards[:, -1].mean()) < 0.2


def test_catch_paddle_is_clamped_and_move_is_validated():
    state = catch_reset(*batch(0, 2))
    for _ in range(15):
        state, _, _ = catch_step(state, torch.tensor([-1, 1]))
    assert state.paddle_x.tolist() == [0, 22]
    with pytest.raises(ValueError, match=r"-1, 0 or \+1"):
        catch_step(state, torch.tensor([2, 0]))
    with pytest.raises(TypeError, match="int64"):
        catch_step(state, torch.tensor([1.0, 0.0]))
    with pytest.raises(ValueError, match="screen"):
        catch_reset(*batch(0, 2), screen=2)


def test_catch_render_draws_ball_and_paddle():
    state = CatchState(
        ball_x=torch.tensor([3.4, 12.6, 0.0], dtype=torch.float64),
        ball_y=torch.tensor([5, 23, 0]),
        ball_dx=torch.zeros(3, dtype=torch.float64),
        paddle_x=torch.tensor([11, 12, 0]),
    )
    img = catch_render(state)
    assert img.shape == (3, 1, 24, 24) and img.dtype == torch.uint8
    assert torch.nonzero(img[0, 0]).tolist() == [[5, 3], [23, 11], [23, 12]]
    assert torch.nonzero(img[1, 0]).tolist() == [[23, 12], [23, 13]]  # the ball is on the paddle
    assert torch.nonzero(img[2, 0]).tolist() == [[0, 0], [23, 0], [23, 1]]
    assert set(torch.unique(img).tolist()) == {0, 255}


# --------------------------------------------------------------------------------------------------
# Determinism and the batching property, for every generator
# --------------------------------------------------------------------------------------------------

DIGITS = random_digits(12, seed=7)
PICTURES = torch.randint(0, 256, (5, 3, 9, 9), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
VIDEOS = as_video_source(torch.randint(0, 256, (6, 3, 5, 5, 3), dtype=torch.uint8), torch.arange(6))


def catch_rollout(keys, episodes):
    """Reset, three steps with a seeded-looking move, and a render: every Catch function at once."""
    state = catch_reset(keys, episodes)
    frames = [catch_render(state)]
    for t in range(3):
        move = ((keys + episodes + t) % 3 - 1).long()
        state, _, _ = catch_step(state, move)
        frames.append(catch_render(state))
    return torch.stack(frames, 1), state.ball_x


GENERATORS = {
    "plain": lambda k, e: plain_digits(*DIGITS, k, e),
    "translated": lambda k, e: translated_digits(*DIGITS, k, e),
    "cluttered60": lambda k, e: cluttered_digits(*DIGITS, k, e),
    "cluttered100": lambda k, e: cluttered_digits(*DIGITS, k, e, canvas=100, distractors=8),
    "small100": lambda k, e: scaled_digits(*DIGITS, k, e),
    "small100_clutter": lambda k, e: scaled_digits(*DIGITS, k, e, distractors=8),
    "pictures": lambda k, e: plain_images(PICTURES, torch.arange(5), k, e),
    "moving": lambda k, e: moving_digits(*DIGITS, k, e, frames=5),
    "moving2_clutter": lambda k, e: moving_digits(*DIGITS, k, e, frames=5, digits=2, distractors=3),
    "video": lambda k, e: video_frames(VIDEOS, None, k, e),
    "catch": catch_rollout,
}


@pytest.mark.parametrize("name", list(GENERATORS))
def test_every_generator_is_deterministic_and_batches_like_single_envs(name):
    gen = GENERATORS[name]
    keys, episodes = rng.keys_from_seed(100, 7), torch.tensor([0, 1, 2, 0, 5, 9, 1])
    first = gen(keys, episodes)
    again = gen(keys.clone(), episodes.clone())
    for a, b in zip(first, again):
        assert torch.equal(a, b)
    for i in range(len(keys)):
        single = gen(keys[i : i + 1], episodes[i : i + 1])
        for a, b in zip(first, single):
            assert torch.equal(a[i], b[0])
    # A new episode is a new draw: every row changes within a few episodes (tiny sets repeat by chance).
    changed = torch.zeros(len(keys), dtype=torch.bool)
    for later in range(1, 6):
        changed |= (first[0] != gen(keys, episodes + later)[0]).reshape(len(keys), -1).any(1)
    assert bool(changed.all())


@pytest.mark.parametrize("name", list(GENERATORS))
def test_every_generator_handles_an_empty_batch(name):
    keys, episodes = rng.keys_from_seed(0, 0), torch.zeros(0, dtype=torch.int64)
    for out in GENERATORS[name](keys, episodes):
        assert out.shape[0] == 0


@pytest.mark.parametrize("name", list(GENERATORS))
def test_every_generator_is_fast_on_a_batch_of_256(name):
    gen = GENERATORS[name]
    if name.startswith("moving"):
        gen = {
            "moving": lambda k, e: moving_digits(*DIGITS, k, e, frames=20),
            "moving2_clutter": lambda k, e: moving_digits(*DIGITS, k, e, frames=20, digits=2, distractors=4),
        }[name]
    keys, episodes = batch(0, 256)
    # CPU seconds on one thread, best of three: robust to other jobs sharing the machine, which make wall
    # time (and the spin-waiting of idle worker threads) swing tenfold.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        best = math.inf
        for _ in range(3):
            begin = time.process_time()
            gen(keys, episodes)
            best = min(best, time.process_time() - begin)
    finally:
        torch.set_num_threads(threads)
    assert best < 1.0, f"{name} took {best:.3f} CPU seconds for 256 episodes"


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_episodes_equal_cpu_episodes():
    cuda = torch.device("cuda")
    images, labels = DIGITS
    gpu_images, gpu_labels = images.to(cuda), labels.to(cuda)
    keys, episodes = rng.keys_from_seed(100, 33), torch.arange(33)
    runs = [
        lambda i, y, k, e: cluttered_digits(i, y, k, e, canvas=100, distractors=8),
        lambda i, y, k, e: moving_digits(i, y, k, e, frames=6, digits=2, distractors=3),
        lambda i, y, k, e: translated_digits(i, y, k, e),
    ]
    for run in runs:
        cpu = run(images, labels, keys, episodes)
        gpu = run(gpu_images, gpu_labels, keys.to(cuda), episodes.to(cuda))
        for a, b in zip(cpu, gpu):
            assert b.device.type == "cuda" and torch.equal(a, b.cpu())
    cpu, _ = catch_rollout(keys, episodes)
    gpu, _ = catch_rollout(keys.to(cuda), episodes.to(cuda))
    assert torch.equal(cpu, gpu.cpu())


# --------------------------------------------------------------------------------------------------
# Real digits, when the dataset module is ready
# --------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def real_digits():
    data = pytest.importorskip("envs.data")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            dataset = data.load_digits("mnist", "test")
        except Exception as exc:  # no data available offline: not this module's concern
            pytest.skip(f"no MNIST available: {exc}")
    return dataset.images[:500], dataset.labels[:500]


def test_real_digits_through_every_static_task(real_digits):
    images, labels = real_digits
    keys, episodes = rng.keys_from_seed(3, 8), torch.arange(8)
    for canvas, distractors in [(60, 4), (100, 8)]:
        x, y = cluttered_digits(images, labels, keys, episodes, canvas=canvas, distractors=distractors)
        for i in range(8):
            expected, label = ref_static(images, labels, int(keys[i]), int(episodes[i]), canvas, distractors, 8)
            assert np.array_equal(x[i, 0].numpy(), expected) and int(y[i]) == label
    x, y = plain_digits(images, labels, keys, episodes)
    index = rng.integers(keys, episodes, tasks.STREAM_TARGET_DIGIT, len(images))
    assert torch.equal(x[:, 0], images[index]) and torch.equal(y, labels[index])
    video, y = moving_digits(images, labels, keys, episodes, digits=2, distractors=2)
    assert video.shape == (8, 20, 1, 64, 64) and torch.equal(y, labels[index])
