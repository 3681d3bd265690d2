"""Tests for glimpse.samplers: known values, conventions, gradients and input checks."""

from __future__ import annotations

import math

import pytest
import torch

from glimpse.samplers import ALIGN_CORNERS, affine_sample, box_theta, boxcar_mask, crop_boxes


def _theta(rows: list[list[float]], batch: int = 1, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    return torch.tensor(rows, dtype=dtype).expand(batch, 2, 3).clone()


IDENTITY = [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]]


def _pattern(h: int, w: int) -> torch.Tensor:
    """A (1, 1, h, w) image whose every pixel differs: value = 10 * row + col + 1."""
    rows = torch.arange(h, dtype=torch.float32)[:, None]
    cols = torch.arange(w, dtype=torch.float32)[None, :]
    return (10 * rows + cols + 1)[None, None]


def _box_from_px(x0: int, x1: int, y0: int, y1: int, h: int, w: int) -> tuple[list[float], list[float]]:
    """Centre (x, y) and half-sides (sx, sy), normalized, of the pixel box [x0, x1) x [y0, y1)."""
    center = [(x0 + x1) / w - 1.0, (y0 + y1) / h - 1.0]
    half = [(x1 - x0) / w, (y1 - y0) / h]
    return center, half


def test_align_corners_constant():
    assert ALIGN_CORNERS is False


# --------------------------------------------------------------------------------------- affine_sample


def test_identity_reproduces_image():
    g = torch.Generator().manual_seed(0)
    img = torch.rand(2, 3, 5, 7, generator=g)
    out = affine_sample(img, _theta(IDENTITY, batch=2), (5, 7))
    assert out.shape == (2, 3, 5, 7)
    assert out.dtype == torch.float32
    torch.testing.assert_close(out, img, atol=1e-6, rtol=0)


def test_translation_by_one_pixel_in_x():
    h, w = 3, 5
    img = _pattern(h, w)
    out = affine_sample(img, _theta([[1.0, 0.0, 2.0 / w], [0.0, 1.0, 0.0]]), (h, w))
    # Output pixel j reads input pixel j + 1: the image moves one pixel left, a zero column enters.
    torch.testing.assert_close(out[..., :-1], img[..., 1:], atol=1e-5, rtol=0)
    torch.testing.assert_close(out[..., -1], torch.zeros(1, 1, h), atol=1e-6, rtol=0)


def test_translation_by_one_pixel_in_y():
    h, w = 3, 5
    img = _pattern(h, w)
    out = affine_sample(img, _theta([[1.0, 0.0, 0.0], [0.0, 1.0, 2.0 / h]]), (h, w))
    # +y is down (rows): the image moves one row up and a zero row enters at the bottom.
    torch.testing.assert_close(out[..., :-1, :], img[..., 1:, :], atol=1e-5, rtol=0)
    torch.testing.assert_close(out[..., -1, :], torch.zeros(1, 1, w), atol=1e-6, rtol=0)


def test_flips():
    img = _pattern(3, 5)
    out_x = affine_sample(img, _theta([[-1.0, 0.0, 0.0], [0.0, 1.0, 0.0]]), (3, 5))
    torch.testing.assert_close(out_x, img.flip(-1), atol=1e-5, rtol=0)
    out_y = affine_sample(img, _theta([[1.0, 0.0, 0.0], [0.0, -1.0, 0.0]]), (3, 5))
    torch.testing.assert_close(out_y, img.flip(-2), atol=1e-5, rtol=0)


def test_x_and_y_not_swapped():
    # Non-square image, zoom into the left half: theta's first row (x) must act on columns only.
    h, w = 4, 6
    img = _pattern(h, w)
    left_half = affine_sample(img, _theta([[0.5, 0.0, -0.5], [0.0, 1.0, 0.0]]), (h, w // 2))
    torch.testing.assert_close(left_half, img[..., :, : w // 2], atol=1e-5, rtol=0)
    top_half = affine_sample(img, _theta([[1.0, 0.0, 0.0], [0.0, 0.5, -0.5]]), (h // 2, w))
    torch.testing.assert_close(top_half, img[..., : h // 2, :], atol=1e-5, rtol=0)


def test_int_size_is_square_and_batch_items_independent():
    img = torch.stack([_pattern(4, 4)[0], -_pattern(4, 4)[0]])  # (2, 1, 4, 4)
    theta = torch.stack([_theta(IDENTITY)[0], _theta([[-1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])[0]])
    out = affine_sample(img, theta, 4)
    assert out.shape == (2, 1, 4, 4)
    torch.testing.assert_close(out[0], img[0], atol=1e-5, rtol=0)
    torch.testing.assert_close(out[1], img[1].flip(-1), atol=1e-5, rtol=0)


def test_outside_reads_zero():
    img = torch.ones(1, 1, 4, 4)
    out = affine_sample(img, _theta([[1.0, 0.0, 5.0], [0.0, 1.0, 0.0]]), 4)
    assert torch.equal(out, torch.zeros_like(out))


# -------------------------------------------------------------------------------- box_theta, crop_boxes


def test_box_theta_values_and_square_form():
    centers = torch.tensor([[0.25, -0.5], [0.0, 0.0]])
    theta = box_theta(centers, torch.tensor([0.5, 1.0]))
    expected = torch.tensor([[[0.5, 0.0, 0.25], [0.0, 0.5, -0.5]], [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]]])
    torch.testing.assert_close(theta, expected)
    theta_pair = box_theta(centers, torch.tensor([[0.5, 0.5], [1.0, 1.0]]))
    torch.testing.assert_close(theta_pair, expected)
    rect = box_theta(centers[:1], torch.tensor([[0.3, 0.7]]))
    torch.testing.assert_close(rect, torch.tensor([[[0.3, 0.0, 0.25], [0.0, 0.7, -0.5]]]))


def test_crop_equals_slice_on_pixel_boundaries():
    h, w = 6, 8
    g = torch.Generator().manual_seed(1)
    img = torch.rand(2, 3, h, w, generator=g)
    # Item 0: x in [2, 5), y in [1, 5); item 1: x in [4, 7), y in [0, 4). Both 3 wide by 4 tall.
    boxes = [(2, 5, 1, 5), (4, 7, 0, 4)]
    centers, halves = zip(*(_box_from_px(*b, h=h, w=w) for b in boxes))
    out = crop_boxes(img, torch.tensor(centers), torch.tensor(halves), (4, 3))
    assert out.shape == (2, 3, 4, 3)
    for i, (x0, x1, y0, y1) in enumerate(boxes):
        torch.testing.assert_close(out[i], img[i, :, y0:y1, x0:x1], atol=1e-6, rtol=0)


def test_crop_square_half_side_whole_image_and_quadrant():
    img = _pattern(4, 4)
    whole = crop_boxes(img, torch.zeros(1, 2), torch.ones(1), 4)
    torch.testing.assert_close(whole, img, atol=1e-5, rtol=0)
    # Bottom-right quadrant: centre (+0.5, +0.5) is right (x) and down (y).
    quad = crop_boxes(img, torch.tensor([[0.5, 0.5]]), torch.tensor([0.5]), 2)
    torch.testing.assert_close(quad, img[..., 2:, 2:], atol=1e-5, rtol=0)


def test_crop_matches_affine_sample_of_box_theta():
    g = torch.Generator().manual_seed(2)
    img = torch.rand(3, 2, 7, 9, generator=g)
    centers = torch.rand(3, 2, generator=g) - 0.5
    halves = torch.rand(3, 2, generator=g) * 0.5 + 0.2
    out = crop_boxes(img, centers, halves, (5, 4))
    torch.testing.assert_close(out, affine_sample(img, box_theta(centers, halves), (5, 4)))


# ---------------------------------------------------------------------------------------- boxcar_mask


def test_boxcar_inside_and_outside():
    mask = boxcar_mask(torch.tensor([[0.0, 0.0, 0.5]]), 16, 16)  # pixel edges at 4 and 12
    assert mask.shape == (1, 1, 16, 16)
    assert bool((mask[..., 5:11, 5:11] > 0.99).all())
    outside = torch.ones(16, 16, dtype=torch.bool)
    outside[3:13, 3:13] = False
    assert bool((mask[0, 0][outside] < 1e-3).all())
    assert bool(((mask >= 0) & (mask <= 1)).all())
    # Symmetric box, symmetric mask: far right/below is as accurate as far left/above (no 1 - 1 cancellation).
    torch.testing.assert_close(mask, mask.flip(-1), atol=0, rtol=1e-5)
    torch.testing.assert_close(mask, mask.flip(-2), atol=0, rtol=1e-5)


def test_boxcar_hand_computed_non_square():
    h, w, k = 6, 10, 2.0
    tx, ty, tl = 0.1, -0.2, 0.4
    mask = boxcar_mask(torch.tensor([[tx, ty, tl]], dtype=torch.float64), h, w, steepness=k)
    assert mask.shape == (1, 1, h, w)
    # Pixel edges: x in [3.5, 7.5] (tl * W / 2 = 2 px half-side), y in [1.2, 3.6] (tl * H / 2 = 1.2 px).
    x_left, x_right, y_top, y_bottom = 3.5, 7.5, 1.2, 3.6

    def sig(z: float) -> float:
        return 1.0 / (1.0 + math.exp(-z))

    for row, col in [(2, 4), (0, 0), (3, 7), (5, 9), (1, 3)]:
        x, y = col + 0.5, row + 0.5
        along_x = sig(k * (x - x_left)) - sig(k * (x - x_right))
        along_y = sig(k * (y - y_top)) - sig(k * (y - y_bottom))
        want = along_x * along_y
        assert mask[0, 0, row, col].item() == pytest.approx(want, abs=1e-12)


def test_boxcar_gradient_signs():
    h, w = 12, 16
    boxes = torch.tensor([[0.1, -0.15, 0.45]], requires_grad=True)

    def grad_of(select) -> torch.Tensor:
        mask = boxcar_mask(boxes, h, w)[0, 0]
        (g,) = torch.autograd.grad(select(mask).sum(), boxes)
        return g[0]

    # Box centre in pixels: x = (0.1 + 1) / 2 * 16 = 8.8, y = (-0.15 + 1) / 2 * 12 = 5.1.
    g_all = grad_of(lambda m: m)
    assert g_all[2] > 0  # a larger half-side covers more
    g_right = grad_of(lambda m: m[:, 9:])
    g_left = grad_of(lambda m: m[:, :8])
    assert g_right[0] > 0 and g_left[0] < 0  # moving right (+x) moves mass right
    g_below = grad_of(lambda m: m[6:, :])
    g_above = grad_of(lambda m: m[:5, :])
    assert g_below[1] > 0 and g_above[1] < 0  # +y is down (rows increase)
    assert bool((g_right != 0).all()) and bool((g_below != 0).all())
    assert abs(g_all[2].item()) > 1e-3


def test_boxcar_batch_items_independent():
    boxes = torch.tensor([[0.0, 0.0, 0.5], [-0.5, 0.5, 0.25]])
    both = boxcar_mask(boxes, 8, 6)
    assert both.shape == (2, 1, 8, 6)
    torch.testing.assert_close(both[1:], boxcar_mask(boxes[1:], 8, 6))


# ------------------------------------------------------------------------------------------- gradcheck


def test_gradcheck_affine_sample():
    g = torch.Generator().manual_seed(3)
    img = torch.rand(2, 2, 4, 5, generator=g, dtype=torch.float64, requires_grad=True)
    # A small rotation and scale plus an off-grid shift: sample points avoid pixel centres exactly.
    theta = torch.tensor(
        [[[0.83, 0.11, 0.071], [-0.09, 0.77, -0.043]], [[0.61, -0.05, -0.13], [0.07, 0.93, 0.09]]],
        dtype=torch.float64,
        requires_grad=True,
    )
    assert torch.autograd.gradcheck(lambda i, t: affine_sample(i, t, (3, 4)), (img, theta))


def test_gradcheck_crop_boxes():
    g = torch.Generator().manual_seed(4)
    img = torch.rand(2, 1, 5, 6, generator=g, dtype=torch.float64, requires_grad=True)
    centers = torch.tensor([[0.123, -0.217], [-0.311, 0.057]], dtype=torch.float64, requires_grad=True)
    halves = torch.tensor([[0.437, 0.389], [0.513, 0.291]], dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda i, c, s: crop_boxes(i, c, s, (3, 3)), (img, centers, halves))
    square = torch.tensor([0.437, 0.513], dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda c, s: crop_boxes(img.detach(), c, s, 2), (centers, square))


def test_gradcheck_boxcar_mask():
    boxes = torch.tensor([[0.13, -0.21, 0.37], [-0.27, 0.19, 0.52]], dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda b: boxcar_mask(b, 5, 7, steepness=1.5), (boxes,))


# ------------------------------------------------------------------------------------------ bad inputs


def test_affine_sample_errors():
    img = torch.rand(2, 1, 4, 4)
    theta = _theta(IDENTITY, batch=2)
    with pytest.raises(ValueError, match=r"images must be \(B, C, H, W\); got \(1, 4, 4\)"):
        affine_sample(img[0], theta, 4)
    with pytest.raises(ValueError, match=r"theta must be \(B, 2, 3\); got \(2, 3, 3\)"):
        affine_sample(img, torch.zeros(2, 3, 3), 4)
    with pytest.raises(ValueError, match=r"theta must be \(B, 2, 3\); got \(2, 3\)"):
        affine_sample(img, theta[0], 4)
    with pytest.raises(ValueError, match=r"same batch size.*\(2, 1, 4, 4\).*\(3, 2, 3\)"):
        affine_sample(img, _theta(IDENTITY, batch=3), 4)
    bad = theta.clone()
    bad[1, 0, 2] = float("nan")
    with pytest.raises(ValueError, match="theta must be finite"):
        affine_sample(img, bad, 4)
    with pytest.raises(TypeError, match=r"torch\.uint8.*convert"):
        affine_sample(torch.zeros(2, 1, 4, 4, dtype=torch.uint8), theta, 4)
    with pytest.raises(TypeError, match="same dtype"):
        affine_sample(img.double(), theta, 4)
    with pytest.raises(TypeError, match="images must be a torch.Tensor"):
        affine_sample([[1.0]], theta, 4)
    for size in (0, (2,), (2, 0), 2.5, (2, 3, 4)):
        with pytest.raises(ValueError, match="size"):
            affine_sample(img, theta, size)


def test_box_theta_and_crop_errors():
    centers = torch.zeros(2, 2)
    halves = torch.full((2,), 0.5)
    with pytest.raises(ValueError, match=r"centers must be \(B, 2\); got \(2, 3\)"):
        box_theta(torch.zeros(2, 3), halves)
    with pytest.raises(ValueError, match=r"half_sides must be \(B,\) or \(B, 2\); got \(2, 3\)"):
        box_theta(centers, torch.ones(2, 3))
    with pytest.raises(ValueError, match=r"half_sides must be \(B,\) or \(B, 2\); got \(1, 2, 2\)"):
        box_theta(centers, torch.ones(1, 2, 2))
    with pytest.raises(ValueError, match=r"same batch size.*\(2, 2\).*\(3,\)"):
        box_theta(centers, torch.full((3,), 0.5))
    with pytest.raises(ValueError, match="centers must be finite"):
        box_theta(torch.tensor([[0.0, float("nan")], [0.0, 0.0]]), halves)
    with pytest.raises(ValueError, match="half_sides must be finite"):
        box_theta(centers, torch.tensor([0.5, float("inf")]))
    for bad in (torch.tensor([0.5, 0.0]), torch.tensor([[0.5, 0.5], [0.5, -0.1]])):
        with pytest.raises(ValueError, match="half_sides must be > 0"):
            box_theta(centers, bad)
    with pytest.raises(ValueError, match=r"images must be \(B, C, H, W\)"):
        crop_boxes(torch.rand(4, 4), centers, halves, 2)
    with pytest.raises(TypeError, match="uint8"):
        crop_boxes(torch.zeros(2, 1, 4, 4, dtype=torch.uint8), centers, halves, 2)
    with pytest.raises(ValueError, match="same batch size"):
        crop_boxes(torch.rand(3, 1, 4, 4), centers, halves, 2)


def test_boxcar_errors():
    with pytest.raises(ValueError, match=r"boxes must be \(B, 3\).*; got \(3,\)"):
        boxcar_mask(torch.tensor([0.0, 0.0, 0.5]), 4, 4)
    with pytest.raises(ValueError, match="boxes must be finite"):
        boxcar_mask(torch.tensor([[float("nan"), 0.0, 0.5]]), 4, 4)
    with pytest.raises(ValueError, match=r"tl, the half-side\) must be > 0"):
        boxcar_mask(torch.tensor([[0.0, 0.0, 0.0]]), 4, 4)
    with pytest.raises(ValueError, match="height"):
        boxcar_mask(torch.tensor([[0.0, 0.0, 0.5]]), 0, 4)
    with pytest.raises(ValueError, match="steepness"):
        boxcar_mask(torch.tensor([[0.0, 0.0, 0.5]]), 4, 4, steepness=0.0)
    with pytest.raises(ValueError, match="steepness must be a finite number > 0; got inf"):  # a NaN mask otherwise
        boxcar_mask(torch.tensor([[0.0, 0.0, 0.5]]), 4, 4, steepness=float("inf"))
    with pytest.raises(TypeError, match="boxes must be a floating-point"):
        boxcar_mask(torch.tensor([[0, 0, 1]]), 4, 4)


def test_supersampled_zoom_out_is_the_exact_block_mean():
    # Shrinking a 6x9 image 3x with 3x3 samples per output pixel: the fine grid's centres are the
    # input's pixel centres, so each output pixel is exactly its 3x3 block's mean; a point sample reads
    # only the block's centre pixel (it aliases).
    torch.manual_seed(0)
    img = torch.rand(2, 3, 6, 9, dtype=torch.float64)
    identity = torch.tensor([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]], dtype=torch.float64).expand(2, 2, 3)
    block_means = img.view(2, 3, 2, 3, 3, 3).mean(dim=(3, 5))
    torch.testing.assert_close(affine_sample(img, identity, (2, 3), supersample=3), block_means)
    torch.testing.assert_close(affine_sample(img, identity, (2, 3)), img[..., 1::3, 1::3])
    box = crop_boxes(img, torch.zeros(2, 2, dtype=torch.float64), torch.ones(2, dtype=torch.float64), (2, 3),
                     supersample=3)
    torch.testing.assert_close(box, block_means)


def test_gradcheck_supersampled_affine_sample():
    torch.manual_seed(1)
    img = torch.rand(1, 1, 5, 5, dtype=torch.float64, requires_grad=True)
    theta = torch.tensor([[[0.7, 0.1, 0.05], [-0.1, 0.6, -0.1]]], dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda i, t: affine_sample(i, t, 3, supersample=2), (img, theta))
    with pytest.raises(ValueError, match="supersample"):
        affine_sample(img.detach(), theta.detach(), 3, supersample=0)
