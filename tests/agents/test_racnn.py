"""agents/racnn.py: RA-CNN's boxes, zoom, gradients, detachment rules, schedule and a short training run."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from gymnasium.vector import AutoresetMode

from agents.flops import flops_per_image
from agents.racnn import (
    PHASES,
    RACNN,
    attend,
    boxes_from_unit,
    compose_boxes,
    ranking_loss,
    strongest_response_boxes,
)
from glimpse.samplers import boxcar_mask

# The agents take every step as a transition: same-step autoreset, as agents.training.make_env asks.
SAME_STEP = AutoresetMode.SAME_STEP

pytestmark = pytest.mark.filterwarnings("ignore::envs.data.OfflineSubsetWarning")

SMALL = dict(channels=(4, 8), feature_dim=16, apn_hidden=16)


def _model(shape=(1, 24, 24), classes=3, **kwargs) -> RACNN:
    torch.manual_seed(kwargs.pop("seed", 0))
    return RACNN(shape, classes, **{**SMALL, **kwargs})


def _force_unit(model: RACNN, s: int, unit: list[float]) -> None:
    """Make APN ``s`` output the mean ``u = unit`` for every image (zero weights, bias atanh(u))."""
    head = model.apns[s].policy.mean_head
    with torch.no_grad():
        head.weight.zero_()
        head.bias.copy_(torch.atanh(torch.tensor(unit)))


def _grads(params) -> list[torch.Tensor | None]:
    return [p.grad for p in params]


def _all_none(params) -> bool:
    return all(p.grad is None for p in params)


def _some_nonzero(params) -> bool:
    return any(p.grad is not None and bool(p.grad.abs().sum() > 0) for p in params)


class FakeEnv:
    """The two calls SceneClassifier.train_losses makes: ``scene()`` and ``reset()``, over a fixed set."""

    is_still = True  # the env surface agents read (agents.contract.EnvSurface)

    def __init__(self, canvases: torch.Tensor, labels: torch.Tensor, batch: int) -> None:
        self.canvases, self.labels, self.batch, self.start = canvases, labels, batch, 0

    def scene(self):
        rows = (torch.arange(self.batch) + self.start) % len(self.labels)
        return self.canvases[rows], self.labels[rows]

    def reset(self, *, seed=None):
        self.start += self.batch
        return None, {}


def _bars(count: int, side: int = 24, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """An easy 3-class set: a horizontal bar, a vertical bar or a square, at a random place; uint8."""
    g = torch.Generator().manual_seed(seed)
    images = torch.zeros(count, 1, side, side, dtype=torch.uint8)
    labels = torch.randint(0, 3, (count,), generator=g)
    for i in range(count):
        y, x = (int(v) for v in torch.randint(2, side - 10, (2,), generator=g))
        h, w = [(2, 8), (8, 2), (5, 5)][int(labels[i])]
        images[i, 0, y:y + h, x:x + w] = 255
    return images, labels


# ----------------------------------------------------------------------------------------- shapes and API


@pytest.mark.parametrize("attention", ["soft", "hard"])
@pytest.mark.parametrize("shape", [(1, 24, 24), (3, 16, 20)])
def test_shapes_and_eval_keys(attention, shape):
    model = _model(shape, 5, attention=attention)
    images = torch.rand(4, *shape)
    assert model(images).shape == (4, 5)
    assert model.boxes(images).shape == (4, 2, 3) and model.boxes(images, frame="local").shape == (4, 2, 3)
    with torch.no_grad():
        logits = model.eval_logits(images)
    assert set(logits) == {"accuracy", "accuracy_scale1", "accuracy_scale2", "accuracy_scale3"}
    assert all(v.shape == (4, 5) for v in logits.values())
    assert set(_model(shape, 5, attention=attention, scales=2).eval_logits(images)) == {
        "accuracy", "accuracy_scale1", "accuracy_scale2"}
    result = model.run(images)
    assert [tuple(x.shape) for x in result.inputs] == [(4, *shape)] * 3


def test_inputs_and_arguments_are_checked():
    model = _model()
    with pytest.raises(ValueError, match=r"images must be \(N, 1, 24, 24\)"):
        model(torch.rand(2, 1, 20, 20))
    with pytest.raises(TypeError, match="divide uint8"):
        model(torch.zeros(2, 1, 24, 24, dtype=torch.uint8))
    with pytest.raises(ValueError, match="attention"):
        RACNN((1, 24, 24), 3, attention="medium")
    with pytest.raises(ValueError, match="scales"):
        RACNN((1, 24, 24), 3, scales=1)
    with pytest.raises(ValueError, match="min_half_side"):
        RACNN((1, 24, 24), 3, min_half_side=0.0)
    with pytest.raises(ValueError, match="at least 8 pixels"):
        RACNN((1, 24, 24), 3, input_size=6)
    with pytest.raises(ValueError, match="phase"):
        model.loss_terms(torch.rand(2, 1, 24, 24), torch.zeros(2, dtype=torch.long), "joint")
    with pytest.raises(ValueError, match="phase"):
        _model(attention="hard").loss_terms(torch.rand(2, 1, 24, 24), torch.zeros(2, dtype=torch.long), "apn")


# ----------------------------------------------------------------------------------------- boxes in range


def test_boxes_from_unit_and_compose_known_values():
    unit = torch.tensor([[0.0, 0.0, -1.0], [0.0, 0.0, 1.0], [1.0, -1.0, -1.0], [-1.0, 0.5, 0.0]])
    boxes = boxes_from_unit(unit, 1 / 3, 1.0)
    expected = torch.tensor([[0.0, 0.0, 1 / 3], [0.0, 0.0, 1.0], [2 / 3, -2 / 3, 1 / 3], [-1 / 3, 1 / 6, 2 / 3]])
    torch.testing.assert_close(boxes, expected)
    # a box touching the right edge of the right half, inside the right half: its right edge is x = 1
    composed = compose_boxes(torch.tensor([[0.5, 0.0, 0.5]]), torch.tensor([[0.5, -0.5, 0.5]]))
    torch.testing.assert_close(composed, torch.tensor([[0.75, -0.25, 0.25]]))
    # random inner boxes from boxes_from_unit always stay inside their outer box
    g = torch.Generator().manual_seed(0)
    outer = boxes_from_unit(torch.rand(200, 3, generator=g) * 2 - 1)
    inner = compose_boxes(outer, boxes_from_unit(torch.rand(200, 3, generator=g) * 2 - 1))
    slack = outer[:, 2:] - inner[:, 2:] - (inner[:, :2] - outer[:, :2]).abs()  # (200, 2)
    assert bool((slack >= -1e-6).all())


@pytest.mark.parametrize("attention", ["soft", "hard"])
@pytest.mark.parametrize("bounds", [(1 / 3, 1.0), (0.25, 0.75)])
def test_half_side_stays_in_range_for_extreme_apn_outputs(attention, bounds):
    lo, hi = bounds
    model = _model(attention=attention, min_half_side=lo, max_half_side=hi)
    images = torch.rand(6, 1, 24, 24)
    for sign in (1.0, -1.0):
        with torch.no_grad():
            for apn in model.apns:
                apn.policy.mean_head.weight.normal_(0.0, 1e3)
                apn.policy.mean_head.bias.fill_(sign * 1e4)
        for result in (model.run(images), *( [model.run(images, sample=True)] if attention == "hard" else [])):
            tl = result.boxes[..., 2]
            assert bool(((tl >= lo) & (tl <= hi)).all()), tl
            assert bool((result.boxes[..., :2].abs() <= (1 - tl)[..., None] + 1e-6).all())
            assert bool(torch.isfinite(result.fused).all())
        # the bias saturates u_l at +-1: tl sits exactly on the bound
        torch.testing.assert_close(model.run(images).boxes[:, 0, 2], torch.full((6,), hi if sign > 0 else lo))
    labels = torch.randint(0, 3, (6,))
    phase = "joint" if attention == "hard" else "apn"
    assert bool(torch.isfinite(model.loss_terms(images, labels, phase)["loss"]))


def test_initial_boxes_are_centred_and_not_saturated():
    model = _model((1, 60, 60), channels=(16, 32, 32), feature_dim=128, apn_hidden=128)
    images = torch.rand(8, 1, 60, 60)
    local = model.boxes(images, frame="local")
    torch.testing.assert_close(local[..., :2], torch.zeros(8, 2, 2), atol=0.02, rtol=0)
    torch.testing.assert_close(local[..., 2], torch.full((8, 2), 2 / 3), atol=0.02, rtol=0)
    with torch.no_grad():
        result = model.run(images)
        unit = torch.tanh(model.apns[0].policy.mean(model.apns[0](model.cnns[0](images)[1].flatten(1))))
    assert float(unit.abs().max()) < 0.1  # tanh far from saturation: d tanh / d a > 0.99
    torch.testing.assert_close(result.image_boxes[:, 1, 2], result.boxes[:, 0, 2] * result.boxes[:, 1, 2])


# ----------------------------------------------------------------------------------------- x and y


def _bright_square() -> torch.Tensor:
    """A 1 x 1 x 40 x 40 canvas, zero but for an 8 x 8 square at columns 26..33, rows 6..13: centre
    (x, y) = (30 / 20 - 1, 10 / 20 - 1) = (0.5, -0.5), half-side 4 px = 0.2."""
    image = torch.zeros(1, 1, 40, 40)
    image[..., 6:14, 26:34] = 1.0
    return image


@pytest.mark.parametrize("steepness", [10.0, None])
def test_crop_lands_where_the_box_says(steepness):
    image = _bright_square()
    at = attend(image, torch.tensor([[0.5, -0.5, 0.2]]), 16, steepness=steepness)
    swapped = attend(image, torch.tensor([[-0.5, 0.5, 0.2]]), 16, steepness=steepness)
    assert float(at.mean()) > 0.9 and float(swapped.max()) < 0.01


@pytest.mark.parametrize("attention", ["soft", "hard"])
def test_model_zooms_where_its_box_says(attention):
    # tl fixed at 0.2; u = (0.625, -0.625) puts the centre at (0.8 * 0.625, -0.8 * 0.625) = (0.5, -0.5)
    model = _model((1, 40, 40), attention=attention, scales=2, min_half_side=0.2, max_half_side=0.2)
    _force_unit(model, 0, [0.625, -0.625, 0.0])
    with torch.no_grad():
        result = model.run(_bright_square())
    torch.testing.assert_close(result.image_boxes[0, 0], torch.tensor([0.5, -0.5, 0.2]))
    assert float(result.inputs[1].mean()) > 0.8
    _force_unit(model, 0, [-0.625, 0.625, 0.0])  # x and y swapped: nothing there
    with torch.no_grad():
        assert float(model.run(_bright_square()).inputs[1].max()) < 0.01


@pytest.mark.parametrize("attention", ["soft", "hard"])
def test_an_image_varying_along_x_only_zooms_along_x(attention):
    # value = the pixel centre's normalized x; a box at tx = +-0.5 with tl = 0.25 covers x in tx +- 0.25
    side = 40
    ramp = ((torch.arange(side) + 0.5) / side * 2 - 1).expand(1, 1, side, side).clone()
    model = _model((1, side, side), attention=attention, scales=2, min_half_side=0.25, max_half_side=0.25)
    for ux in (2 / 3, -2 / 3):  # tx = (1 - 0.25) * ux = +-0.5
        _force_unit(model, 0, [ux, 0.0, 0.0])
        with torch.no_grad():
            zoom = model.run(ramp).inputs[1][0, 0]  # (40, 40)
        inside = zoom[2:-2, 2:-2]  # away from the soft mask's edges
        torch.testing.assert_close(inside.mean(), torch.tensor(0.5 * math.copysign(1, ux)), atol=0.02, rtol=0)
        assert float(inside.std(dim=0).max()) < (1e-5 if attention == "hard" else 0.01)  # constant down columns
        assert float((zoom[2:-2, -3] - zoom[2:-2, 2]).min()) > 0.4  # rises left to right, as x does


# ----------------------------------------------------------------------------------------- mask gradients


def _masked_sum_grad(box: torch.Tensor, image: torch.Tensor) -> torch.Tensor:
    box = box.detach().clone().requires_grad_(True)
    (image * boxcar_mask(box, image.shape[-2], image.shape[-1], 10.0)).sum().backward()
    return box.grad[0]  # (3,) d/d(tx, ty, tl)


def test_mask_gradient_signs_at_the_initial_box():
    model = _model((1, 60, 60), attention="soft")
    with torch.no_grad():
        box = model.boxes(torch.zeros(1, 1, 60, 60), frame="local")[:, 0]  # (1, 3), about (0, 0, 2/3)
    assert abs(float(box[0, 2]) - 2 / 3) < 0.01
    # its pixel edges: x, y in [10, 50]; a bright pixel just outside each edge, at mid-height/width
    def spot(row, col):
        image = torch.zeros(1, 1, 60, 60)
        image[..., row, col] = 1.0
        return image
    right, left, below, above = spot(30, 50), spot(30, 9), spot(50, 30), spot(9, 30)
    g = _masked_sum_grad(box, right)
    assert g[0] > 0.01 and g[2] > 0.01 and abs(g[1]) < 0.1 * g[0]  # move right / grow: more of the spot
    g = _masked_sum_grad(box, left)
    assert g[0] < -0.01 and g[2] > 0.01 and abs(g[1]) < 0.1 * abs(g[0])
    g = _masked_sum_grad(box, below)
    assert g[1] > 0.01 and g[2] > 0.01 and abs(g[0]) < 0.1 * g[1]  # +y is down
    g = _masked_sum_grad(box, above)
    assert g[1] < -0.01 and g[2] > 0.01


def test_logistic_does_not_saturate_the_gradient_at_the_initial_box():
    # On an all-ones image the masked sum is about the box's area in pixels, (tl W)(tl H), so a hard
    # box's d/dtl is 2 tl W H. The logistic mask is sampled at pixel centres: an edge moving by 1 px
    # changes the sum by rho = sum_i k sigmoid'(k (c_i - e)) per pixel of edge length, which averages 1 over
    # the edge's sub-pixel position but is smallest, 2 k sigmoid'(k / 2), when the edge lies on a pixel
    # boundary -- as the initial box's edges do here (x, y in [10, 50] px): 0.133 for k = 10. Alive, and
    # exactly as predicted; a saturated mask (k -> inf) would give 0.
    model = _model((1, 60, 60), attention="soft")
    box = model.boxes(torch.zeros(1, 1, 60, 60), frame="local")[:, 0].double()
    torch.testing.assert_close(box, torch.tensor([[0.0, 0.0, 2 / 3]], dtype=torch.float64), atol=1e-3, rtol=0)
    box[0, 2] = 2 / 3
    ones = torch.ones(1, 1, 60, 60, dtype=torch.float64)
    g = _masked_sum_grad(box, ones)
    k = 10.0
    rho = 2 * k * torch.sigmoid(torch.tensor(k / 2)) * torch.sigmoid(torch.tensor(-k / 2))
    ideal = 2 * (2 / 3) * 60 * 60
    torch.testing.assert_close(g[2], (rho * ideal).double(), rtol=1e-3, atol=0)
    assert float(g[2]) > 0.1 * ideal
    assert abs(float(g[0])) < 1e-6 and abs(float(g[1])) < 1e-6  # symmetric: no pull
    # averaged over sub-pixel edge positions the mask's gradient is the hard box's
    sweep = [float(_masked_sum_grad(torch.tensor([[0.0, 0.0, 2 / 3 + d / 30]], dtype=torch.float64), ones)[2])
             / (2 * (2 / 3 + d / 30) * 60 * 60) for d in torch.arange(16).double() / 16]
    assert abs(sum(sweep) / len(sweep) - 1) < 0.02 and min(sweep) > 0.1


# ----------------------------------------------------------------------------------------- what gets gradient


def _batch(n=8, shape=(1, 24, 24), classes=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, *shape, generator=g), torch.randint(0, classes, (n,), generator=g)


def test_soft_ranking_gradient_reaches_every_box_coordinate_of_every_apn():
    model = _model()
    images, labels = _batch()
    terms = model.loss_terms(images, labels, "apn")
    assert float(terms["loss"].detach()) > 0  # the hinge is active at initialisation
    terms["loss"].backward()
    for apn in model.apns:
        bias_grad = apn.policy.mean_head.bias.grad  # (3,): d loss / d (a_x, a_y, a_l)
        assert bias_grad is not None and bool((bias_grad.abs() > 0).all()), bias_grad
        assert _some_nonzero(apn.trunk.parameters())


def test_soft_classifier_phase_leaves_the_apn_alone_and_the_apn_phase_the_classifiers():
    model = _model()
    images, labels = _batch()
    model.loss_terms(images, labels, "classifier")["loss"].backward()
    assert _all_none(model.apn_parameters())
    assert all(p.grad is not None for p in model.classifier_parameters())
    model.zero_grad(set_to_none=True)
    model.loss_terms(images, labels, "apn")["loss"].backward()
    assert _all_none(model.classifier_parameters())
    assert _some_nonzero(model.apn_parameters())


def test_adam_moves_only_the_trained_part():
    model = _model()
    images, labels = _batch()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    for phase, moved, kept in (("classifier", model.classifier_parameters, model.apn_parameters),
                               ("apn", model.apn_parameters, model.classifier_parameters)):
        before_moved = [p.detach().clone() for p in moved()]
        before_kept = [p.detach().clone() for p in kept()]
        optimizer.zero_grad(set_to_none=True)
        model.loss_terms(images, labels, phase)["loss"].backward()
        optimizer.step()
        assert all(torch.equal(a, p) for a, p in zip(before_kept, kept()))
        assert any(not torch.equal(a, p) for a, p in zip(before_moved, moved()))


def test_pretraining_regression_reaches_only_the_apn_and_pulls_it_to_the_target():
    model = _model(attention="soft")
    images, labels = _batch()
    terms = model.loss_terms(images, labels, "pretrain")
    terms["loss_pretrain"].backward()
    assert _all_none(model.classifier_parameters()) and _some_nonzero(model.apn_parameters())
    model.zero_grad(set_to_none=True)
    terms = model.loss_terms(images, labels, "pretrain")
    torch.testing.assert_close(terms["loss"], terms["loss_classifier"] + terms["loss_pretrain"])
    optimizer = torch.optim.Adam(model.apn_parameters(), lr=1e-2)
    first = float(model.apn_pretrain_loss(images).detach())
    for _ in range(20):
        optimizer.zero_grad(set_to_none=True)
        model.apn_pretrain_loss(images).backward()
        optimizer.step()
    assert float(model.apn_pretrain_loss(images).detach()) < 0.5 * first


def test_strongest_response_boxes():
    maps = torch.zeros(3, 2, 5, 5)
    maps[0, 1, 2, 2] = 3.0  # centre cell
    maps[1, 0, 0, 4] = 1.0  # top-right cell: x = 0.8, y = -0.8, clamped to +-0.5 for tl = 0.5
    maps[2, :, 3, 1] = 1.0  # channel sum wins over a single stronger channel elsewhere
    maps[2, 0, 1, 3] = 1.5
    boxes = strongest_response_boxes(maps)
    torch.testing.assert_close(boxes, torch.tensor([[0.0, 0.0, 0.5], [0.5, -0.5, 0.5], [-0.4, 0.4, 0.5]]))
    # a half-side below the range is raised to min_half_side
    assert float(strongest_response_boxes(maps, half_side=0.1, min_half_side=0.3)[0, 2]) == pytest.approx(0.3)


def test_hard_cross_entropy_misses_the_apn_and_reinforce_misses_the_classifiers():
    model = _model(attention="hard")
    images, labels = _batch()
    terms = model.loss_terms(images, labels, "joint")
    terms["loss_classifier"].backward(retain_graph=True)
    assert _all_none(model.apn_parameters()) and _all_none(model.baseline_parameters())
    assert _some_nonzero(model.classifier_parameters())
    model.zero_grad(set_to_none=True)
    terms["loss_policy"].backward(retain_graph=True)
    assert _all_none(model.classifier_parameters()) and _all_none(model.baseline_parameters())
    assert _some_nonzero(model.apn_parameters())
    model.zero_grad(set_to_none=True)
    terms["loss_baseline"].backward()
    assert _all_none(model.classifier_parameters()) and _all_none(model.apn_parameters())
    assert _some_nonzero(model.baseline_parameters())


def test_hard_reinforce_credits_each_box_with_the_later_probability_gain():
    model = _model(attention="hard")
    images, labels = _batch(16)
    torch.manual_seed(5)
    terms = model.loss_terms(images, labels, "joint")
    torch.manual_seed(5)  # the same samples again
    result = model.run(images, sample=True)
    p = torch.stack([F.softmax(y, dim=1)[torch.arange(16), labels] for y in result.logits], dim=1)  # (16, 3)
    returns = torch.stack([p[:, 2] - p[:, 0], p[:, 2] - p[:, 1]], dim=1).detach()  # G_s = p_S - p_s
    expected_policy = -(result.log_probs * (returns - result.baselines.detach())).sum(dim=1).mean()
    torch.testing.assert_close(terms["loss_policy"], expected_policy)
    torch.testing.assert_close(terms["loss_baseline"], ((result.baselines - returns) ** 2).mean())
    torch.testing.assert_close(terms["prob_gain"], (p[:, 2] - p[:, 0]).mean())


def _spread_apns(model: RACNN, std: float = 1.0) -> None:
    """Give the APNs' mean heads large weights, so that each image gets a box of its own (the initial ones are
    near zero: every box the centred square)."""
    g = torch.Generator().manual_seed(7)
    with torch.no_grad():
        for apn in model.apns:
            head = apn.policy.mean_head
            head.weight.copy_(torch.randn(head.weight.shape, generator=g) * std)
            head.bias.copy_(torch.randn(head.bias.shape, generator=g) * 0.3)


def _mean_box_pass(model: RACNN, images: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """RA-CNN's inference rebuilt by hand (canvas = input size): scale 1 sees the canvas; each APN's box is the
    mode tanh(mean_head(trunk(features))) of its Gaussian, mapped by boxes_from_unit and composed into the
    canvas frame; the next scale sees that zoom (masked when soft); the fusion reads the L2-normalised
    descriptors. Returns the fused logits and each scale's."""
    x, outer, descriptors, logits = images, None, [], []
    for s in range(model.scales):
        _, pooled, descriptor, y = model.cnns[s](x)
        logits.append(y)
        descriptors.append(descriptor / descriptor.norm(dim=1, keepdim=True).clamp_min(1e-12))
        if s == model.scales - 1:
            break
        hidden = model.apns[s].trunk(pooled.flatten(1))
        unit = torch.tanh(model.apns[s].policy.mean_head(hidden))  # the mode: no draw
        box = boxes_from_unit(unit, model.min_half_side, model.max_half_side)
        outer = box if outer is None else compose_boxes(outer, box)
        x = attend(images, outer, model.input_hw, steepness=model.steepness if model.attention == "soft" else None)
    return model.fusion(torch.cat(descriptors, dim=1)), logits


def test_hard_evaluation_uses_the_mean_box():
    """forward and eval_logits (what evaluate() scores) use the APNs' mean boxes, in training mode too: the same
    logits under two different torch seeds, and those of the mean-box pass rebuilt by hand."""
    model = _model(attention="hard")
    _spread_apns(model)
    images, _ = _batch()
    model.train()
    seen = []
    with torch.no_grad():
        for seed in (1, 2):
            torch.manual_seed(seed)
            seen.append((model(images), model.eval_logits(images)))
        fused, scales = _mean_box_pass(model, images)
    expected = {"accuracy": fused, **{f"accuracy_scale{s}": y for s, y in enumerate(scales, start=1)}}
    for forward, logits in seen:
        torch.testing.assert_close(forward, fused, rtol=0, atol=1e-6)
        assert set(logits) == set(expected)
        for name, y in expected.items():
            torch.testing.assert_close(logits[name], y, rtol=0, atol=1e-6, msg=name)
    for name in expected:
        assert torch.equal(seen[0][1][name], seen[1][1][name]), name
    result = model.run(images)
    torch.testing.assert_close(result.boxes, result.means)
    assert float(result.boxes[..., :2].abs().max()) > 5e-2  # off-centre boxes: the APNs' heads matter
    sampled = model.run(images, sample=True)
    assert float((sampled.boxes - sampled.means).detach().abs().max()) > 1e-3
    with torch.no_grad():  # and a sampled pass scores differently: the checks above can tell them apart
        assert float((sampled.fused - fused).abs().max()) > 1e-4


# ----------------------------------------------------------------------------------------- schedule


def test_schedule_phases_and_resume_from_state_dict():
    model = _model(pretrain_steps=2, alternate_every=3)
    expected = ["pretrain"] * 2 + ["classifier"] * 3 + ["apn"] * 3 + ["classifier"] * 3 + ["apn"]
    assert [model.phase_at(u) for u in range(12)] == expected
    assert [_model(attention="hard", pretrain_steps=1).phase_at(u) for u in range(3)] == ["pretrain", "joint", "joint"]
    assert _model().pretrain_steps == 200 and _model(attention="hard").pretrain_steps == 0

    images, labels = _bars(16)
    env = FakeEnv(images, labels, 8)
    logged = [model.train_losses(env)[0]["phase"] for _ in range(5)]
    assert [PHASES[int(v)] for v in logged] == expected[:5]
    assert "updates" in model.state_dict() and int(model.updates) == 5

    resumed = _model(pretrain_steps=2, alternate_every=3, seed=1)
    assert resumed.phase == "pretrain"
    resumed.load_state_dict(model.state_dict())
    assert resumed.phase == model.phase == "apn"
    env_a, env_b = FakeEnv(images, labels, 8), FakeEnv(images, labels, 8)
    for want in expected[5:9]:
        a, b = model.train_losses(env_a)[0], resumed.train_losses(env_b)[0]
        assert PHASES[int(a["phase"])] == PHASES[int(b["phase"])] == want
        torch.testing.assert_close(a["loss"], b["loss"])


def test_train_losses_logs_detached_scalars():
    images, labels = _bars(16)
    for attention, keys in (("soft", {"loss_rank"}), ("hard", {"loss_policy", "loss_baseline", "prob_gain"})):
        model = _model(attention=attention, pretrain_steps=0)
        losses, obs = model.train_losses(FakeEnv(images, labels, 8), "obs")
        assert obs == "obs"
        want = {"loss", "loss_classifier", "loss_pretrain", "accuracy", "reward", "box_half_side", "phase",
                "accuracy_scale1", "accuracy_scale2", "accuracy_scale3"} | keys
        assert set(losses) == want
        assert losses["loss"].requires_grad
        assert all(not v.requires_grad and v.dim() == 0 for k, v in losses.items() if k != "loss")
        assert float(losses["reward"]) == float(losses["accuracy"])


def test_ranking_loss_values():
    probs = torch.tensor([[0.2, 0.5, 0.9], [0.6, 0.5, 0.58]])
    # row 0: both pairs improve by more than the margin -> 0; row 1: 0.6-0.5+0.05 = 0.15, 0.5-0.58+0.05 < 0
    torch.testing.assert_close(ranking_loss(probs, 0.05), torch.tensor(0.15 / 2))


# ----------------------------------------------------------------------------------------- resampling


def test_an_input_smaller_than_the_canvas_does_not_alias():
    # a one-pixel checkerboard shrunk 3x: each output pixel covers a 3 x 3 block and must be its mean
    # (4/9 or 5/9); a point sample lands on one pixel centre per block and reads 0 or 1 (aliasing)
    rows, cols = torch.meshgrid(torch.arange(48), torch.arange(48), indexing="ij")
    board = ((rows + cols) % 2).float().expand(2, 1, 48, 48)
    block_means = board.reshape(2, 1, 16, 3, 16, 3).mean(dim=(3, 5))
    model = _model((1, 48, 48), input_size=16)
    assert model.supersample == 3
    with torch.no_grad():
        result = model.run(board)
    torch.testing.assert_close(result.inputs[0], block_means)
    point = attend(board, torch.tensor([[0.0, 0.0, 1.0]] * 2), 16)
    assert float((point - block_means).abs().min()) > 0.4


# ----------------------------------------------------------------------------------------- training, env


@pytest.mark.parametrize("attention", ["soft", "hard"])
def test_a_few_dozen_updates_reduce_the_loss(attention):
    images, labels = _bars(64)
    model = _model(attention=attention, pretrain_steps=5, alternate_every=10, channels=(8, 16), feature_dim=32)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    inputs = images.float() / 255
    with torch.no_grad():
        first = float(model.loss_terms(inputs, labels, "pretrain")["loss_classifier"])
    env = FakeEnv(images, labels, 32)
    for _ in range(40):  # 5 pretraining, 10 classifier, 10 APN, 10 classifier, 5 APN updates (soft)
        losses, _ = model.train_losses(env)
        optimizer.zero_grad(set_to_none=True)
        losses["loss"].backward()
        optimizer.step()
    with torch.no_grad():
        after = model.loss_terms(inputs, labels, "pretrain")
    assert float(after["loss_classifier"]) < 0.6 * first  # the sum of 4 cross-entropies, from 4 ln 3
    assert float(after["accuracy"]) > 0.8


@pytest.mark.parametrize("attention", ["soft", "hard"])
def test_evaluate_scores_the_argmax_of_the_mean_box_pass_over_every_seeded_round(attention):
    """evaluate(): round e resets with seed + e * N, and each metric counts argmax == label of its logits from the
    mean-box pass (rebuilt by hand) on canvases / 255, over every round; the same under any torch seed."""
    from envs import GlimpseVectorEnv

    env = GlimpseVectorEnv(16, autoreset_mode=SAME_STEP, task="translated", canvas=60, glimpse_size=12,
                           num_glimpses=6, split="test")
    torch.manual_seed(0)
    model = RACNN(env.canvas_shape, env.num_decisions, attention=attention, **SMALL)
    _spread_apns(model)
    model.train()
    results = []
    for torch_seed in (0, 1):
        torch.manual_seed(torch_seed)
        results.append(model.evaluate(env, 3, seed=2))
        assert model.training  # put back in its mode
    assert results[0] == results[1]
    hits = {name: [] for name in ("accuracy", "accuracy_scale1", "accuracy_scale2", "accuracy_scale3")}
    argmin_hits = 0
    model.eval()
    with torch.no_grad():
        for e in range(3):
            env.reset(seed=2 + e * 16)
            canvases, labels = env.scene()
            fused, scales = _mean_box_pass(model, canvases.float() / 255)
            for name, y in zip(hits, [fused, *scales]):
                hits[name].append(int((y.argmax(dim=1) == labels).sum()))
            argmin_hits += int((fused.argmin(dim=1) == labels).sum())
    assert results[0] == {"examples": 48, **{name: pytest.approx(sum(h) / 48) for name, h in hits.items()}}
    # the check discriminates: the least likely class, or the last round alone, would score otherwise
    assert argmin_hits != sum(hits["accuracy"]) and hits["accuracy"][-1] != sum(hits["accuracy"])


def test_evaluate_and_flops_on_the_env():
    from envs import GlimpseVectorEnv

    env = GlimpseVectorEnv(4, autoreset_mode=SAME_STEP, task="translated", canvas=60, glimpse_size=12, num_glimpses=6,
                           split="test")
    model = RACNN(env.canvas_shape, env.num_decisions, **SMALL)
    metrics = model.evaluate(env, 2)
    assert set(metrics) == {"accuracy", "accuracy_scale1", "accuracy_scale2", "accuracy_scale3", "examples"}
    assert metrics["examples"] == 8
    # three CNNs, two APNs and the fusion layer; the samplers are not counted
    env.reset(seed=0)
    flops = flops_per_image(model, env)
    one_cnn = flops_per_image(model.cnns[0], (1, 60, 60))
    apn = 2 * (model.apns[0].trunk[0].in_features * 16 + 16 * 3)
    assert flops == 3 * one_cnn + 2 * apn + 2 * (3 * 16 * 10)
    # The hard twin's baselines serve training only: its inference costs what the soft one's does.
    hard = RACNN(env.canvas_shape, env.num_decisions, attention="hard", **SMALL)
    env.reset(seed=0)
    assert flops_per_image(hard, env) == flops
