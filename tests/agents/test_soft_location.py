"""agents/spatial.py and agents/stn.py: location-wise soft attention, trained by backpropagation."""

from __future__ import annotations

import pytest
import torch
from gymnasium.vector import AutoresetMode

from agents.baselines import ConvClassifier
from agents.flops import flops_per_image
from agents.spatial import SpatialSoftAttention, cell_centers
from agents.stn import SpatialTransformerClassifier
from envs import GlimpseVectorEnv

# The agents take every step as a transition: same-step autoreset, as agents.training.make_env asks.
SAME_STEP = AutoresetMode.SAME_STEP

pytestmark = pytest.mark.filterwarnings("ignore::envs.data.OfflineSubsetWarning")


def grads(module: torch.nn.Module) -> list[torch.Tensor]:
    return [p.grad for p in module.parameters() if p.grad is not None and bool(p.grad.abs().sum() > 0)]


# ------------------------------------------------------------------------------------------------ spatial


def test_spatial_attention_maps_shapes_and_backprop():
    torch.manual_seed(0)
    model = SpatialSoftAttention((1, 60, 60), 10, steps=3)
    images, labels = torch.rand(4, 1, 60, 60), torch.randint(0, 10, (4,))
    logits, maps = model.attend(images)
    assert logits.shape == (4, 10) and maps.shape == (4, 3, 15, 15)
    torch.testing.assert_close(maps.sum(dim=(2, 3)), torch.ones(4, 3))
    model.losses(images, labels)["loss"].backward()
    for layer in (model.features, model.reader.query, model.reader.key, model.reader.score):
        assert grads(layer), layer
    with pytest.raises(ValueError, match="images must be"):
        model(torch.rand(4, 1, 28, 28))


def test_cell_centres_follow_the_edges_convention():
    centers = cell_centers(3, 2)  # row-major: x varies fastest
    torch.testing.assert_close(centers[:2], torch.tensor([[-0.5, -2 / 3], [0.5, -2 / 3]]))
    torch.testing.assert_close(centers[-1], torch.tensor([0.5, 2 / 3]))


def test_spatial_attention_map_is_laid_out_like_the_canvas():
    """With scores set by hand to follow the feature map, the map peaks at the bright cell, and the context's
    "where" part is that cell's centre: the cells, the map and the coordinates are in one layout."""
    model = SpatialSoftAttention((1, 16, 16), 4, steps=1, channels=(1, 1), hidden=8)
    with torch.no_grad():
        for conv in (model.features[0], model.features[2]):  # each stride-2 layer passes its centre tap:
            conv.weight.zero_()  # cell (p, q) of the map reads pixel (4p, 4q), inside the cell
            conv.weight[0, 0, conv.kernel_size[0] // 2, conv.kernel_size[1] // 2] = 1.0
            conv.bias.zero_()
        model.reader.key.weight.zero_()
        model.reader.key.weight[0, 0] = 1.0  # key_0 = feature; score = 100 * tanh(feature)
        model.reader.key.bias.zero_()
        model.reader.score.weight.zero_()
        model.reader.score.weight[0, 0] = 100.0
    images = torch.zeros(1, 1, 16, 16)
    images[0, 0, 4, 8] = 1.0  # row 4, column 8: cell (row 1, column 2) of the 4x4 map
    with torch.no_grad():
        _, maps = model.attend(images)
    assert maps.shape == (1, 1, 4, 4) and tuple((maps[0, 0] == maps.max()).nonzero()[0].tolist()) == (1, 2)
    assert float(maps[0, 0, 1, 2]) > 0.99
    torch.testing.assert_close(model.cells[1 * 4 + 2], torch.tensor([0.25, -0.25]))  # its centre, (x, y)


# ------------------------------------------------------------------------------------------------ STN


@pytest.mark.parametrize("transform", ["affine", "attention"])
def test_stn_at_identity_initialisation_reproduces_its_input(transform):
    torch.manual_seed(0)
    images = torch.rand(3, 1, 20, 20)
    model = SpatialTransformerClassifier((1, 20, 20), 10, transform=transform, size=20)
    thetas, samples = model.transform(images)
    torch.testing.assert_close(thetas[:, 0], torch.tensor([[1.0, 0, 0], [0, 1.0, 0]]).expand(3, 2, 3))
    torch.testing.assert_close(samples[:, 0], images, atol=1e-5, rtol=0)


def test_stn_attention_form_and_its_gradient_reaches_the_localisation_net():
    torch.manual_seed(0)
    model = SpatialTransformerClassifier((1, 28, 28), 10, transform="attention", size=14)
    theta = model.theta(torch.tensor([[0.5, 0.2, -0.3]]))  # (log s, tx, ty)
    s = torch.tensor(0.5).exp()
    torch.testing.assert_close(theta, torch.tensor([[[s, 0, 0.2], [0, s, -0.3]]]))
    images, labels = torch.rand(4, 1, 28, 28), torch.randint(0, 10, (4,))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    model.losses(images, labels)["loss"].backward()
    assert grads(model.theta_head)  # backprop through the sampler reaches theta
    assert not grads(model.localisation)  # the head's zero initial weights stop it there, at first
    optimizer.step()
    model.zero_grad()
    model.losses(images, labels)["loss"].backward()
    assert grads(model.localisation)
    assert isinstance(model.classifier, ConvClassifier) and model.supersample == 2


def test_stn_zooms_where_theta_says():
    images = torch.zeros(1, 1, 20, 20)
    images[0, 0, 0:10, 10:20] = 1.0  # the top-right quadrant: x in [0, 1], y in [-1, 0]
    model = SpatialTransformerClassifier((1, 20, 20), 10, size=10, supersample=1)  # pixel centres exactly
    with torch.no_grad():
        model.theta_head.bias.copy_(torch.tensor([torch.tensor(0.5).log(), 0.5, -0.5]))
    _, samples = model.transform(images)
    torch.testing.assert_close(samples[0, 0], torch.ones(1, 10, 10))


def test_recurrent_stn_takes_steps_transforms():
    torch.manual_seed(0)
    model = SpatialTransformerClassifier((1, 60, 60), 10, transform="affine", size=12, steps=4)
    images, labels = torch.rand(2, 1, 60, 60), torch.randint(0, 10, (2,))
    thetas, samples = model.transform(images)
    assert thetas.shape == (2, 4, 2, 3) and samples.shape == (2, 4, 1, 12, 12)
    model.losses(images, labels)["loss"].backward()
    assert grads(model.theta_head) and grads(model.core) and grads(model.glimpse_net)


def test_soft_location_models_on_the_env():
    env = GlimpseVectorEnv(8, autoreset_mode=SAME_STEP, task="cluttered", glimpse_size=12, scales=3, num_glimpses=3)
    env.reset(seed=0)
    for model in (SpatialSoftAttention(env.canvas_shape, 10, steps=3), SpatialTransformerClassifier(env.canvas_shape, 10)):
        losses, _ = model.train_losses(env, None)
        assert {"loss", "loss_classifier", "accuracy", "reward"} <= set(losses)
        assert set(model.evaluate(env, 1)) >= {"accuracy", "examples"}
        assert flops_per_image(model, env) > 0
    with pytest.raises(ValueError, match="still canvases"):
        video = GlimpseVectorEnv(2, autoreset_mode=SAME_STEP, task="moving-mnist", frames=2, glimpse_size=8)
        video.reset(seed=0)
        SpatialSoftAttention(video.canvas_shape, 10).train_losses(video, None)


def test_spatial_evaluate_counts_the_argmax_over_every_seeded_round():
    """SceneClassifier.evaluate(): round e resets with seed + e * N and scores argmax(model(canvases / 255))
    against the labels; the accuracy is the hits of every round over all of them, rebuilt here by hand."""
    torch.manual_seed(2)
    env = GlimpseVectorEnv(8, autoreset_mode=SAME_STEP, task="mnist", glimpse_size=8, scales=2, num_glimpses=3)
    model = SpatialSoftAttention.from_env(env)
    model.train()
    seed = 3
    result = model.evaluate(env, 3, seed=seed)
    assert model.training  # put back in its mode
    model.eval()
    hits, hits_argmin = [], 0
    with torch.no_grad():
        for e in range(3):
            env.reset(seed=seed + e * 8)
            canvases, labels = env.scene()
            assert canvases.dtype == torch.uint8
            logits = model(canvases.float() / 255)
            hits.append(int((logits.argmax(dim=1) == labels).sum()))
            hits_argmin += int((logits.argmin(dim=1) == labels).sum())
    assert result == {"accuracy": pytest.approx(sum(hits) / 24), "examples": 24}
    # the check discriminates: the least likely class, or the last round alone, would score otherwise
    assert hits_argmin != sum(hits) and hits[-1] != sum(hits)


def test_attention_pictures_show_where_the_soft_agents_look():
    from agents.common import box_corners
    from envs.render import render_attention

    theta = torch.tensor([[0.5, 0.0, 0.5], [0.0, 0.5, -0.5]])  # the top-right quadrant
    torch.testing.assert_close(box_corners(theta), torch.tensor([[0.0, -1.0], [1.0, -1.0], [1.0, 0.0], [0.0, 0.0]]))
    picture = torch.zeros(1, 8, 8)
    drawn = render_attention(picture, quads=box_corners(theta)[None], height_px=8)  # zoom 1
    assert drawn.shape == (8, 8, 3)
    assert drawn[0, 4:].any() and not drawn[:, :3].any() and not drawn[5:].any()  # outline in that quadrant only
    heat = torch.tensor([[0.0, 1.0], [0.0, 0.0]])  # all weight on the top-right cell
    hot = render_attention(picture, heat=heat, height_px=8)
    assert hot[:4, 4:, 0].min() > 150 and hot[:4, 4:, 1:].max() == 0  # red where the weight is
    assert not hot[:, :4].any() and not hot[4:].any()  # the black picture untouched elsewhere
    model = SpatialTransformerClassifier((1, 20, 20), 10, size=10)
    quads = model.attention_maps(torch.rand(2, 1, 20, 20))["quads"]
    torch.testing.assert_close(quads[:, 0], torch.tensor([[-1.0, -1], [1, -1], [1, 1], [-1, 1]]).expand(2, 4, 2))
