"""agents/baselines.py and agents/flops.py: full-image classifiers, their losses and their FLOP counts."""

from __future__ import annotations

import pytest
import torch
from gymnasium.vector import AutoresetMode

from agents.baselines import ConvClassifier, FCClassifier
from agents.flops import flops_per_image
from agents.ram import RAM
from envs import GlimpseVectorEnv

# The agents take every step as a transition: same-step autoreset, as agents.training.make_env asks.
SAME_STEP = AutoresetMode.SAME_STEP

pytestmark = pytest.mark.filterwarnings("ignore::envs.data.OfflineSubsetWarning")

MODELS = {
    "fc": lambda shape: FCClassifier(shape, 10),
    "conv": lambda shape: ConvClassifier(shape, 10),
    "conv-2x5x5": lambda shape: ConvClassifier(shape, 10, channels=(10, 10), kernel_size=5, stride=1, hidden=None),
}



@pytest.mark.parametrize("shape", [(1, 28, 28), (1, 60, 60), (3, 32, 40)])
@pytest.mark.parametrize("kind", list(MODELS))
def test_shapes(kind, shape):
    model = MODELS[kind](shape)
    assert model(torch.rand(4, *shape)).shape == (4, 10)


def test_paper_conv_architecture():
    model = ConvClassifier((1, 60, 60), 10)
    conv, fc = model.features[0], model.head[0]
    assert (conv.out_channels, conv.kernel_size, conv.stride) == (8, (10, 10), (5, 5))
    assert (fc.in_features, fc.out_features) == (8 * 11 * 11, 256)


def test_inputs_are_checked():
    model = FCClassifier((1, 28, 28), 10)
    with pytest.raises(ValueError, match=r"images must be \(N, 1, 28, 28\); got \(4, 1, 60, 60\)"):
        model(torch.rand(4, 1, 60, 60))
    with pytest.raises(TypeError, match="divide uint8"):
        model(torch.zeros(4, 1, 28, 28, dtype=torch.uint8))
    with pytest.raises(ValueError, match="canvas_shape"):
        ConvClassifier((28, 28), 10)


@pytest.mark.parametrize("kind", list(MODELS))
def test_a_few_sgd_steps_reduce_the_loss(kind):
    torch.manual_seed(0)
    images, labels = torch.rand(32, 1, 28, 28), torch.randint(0, 10, (32,))
    model = MODELS[kind]((1, 28, 28))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    first = model.losses(images, labels)
    assert {"loss", "accuracy", "loss_classifier", "reward"} <= set(first) and 0.0 <= float(first["accuracy"]) <= 1.0
    for _ in range(20):
        loss = model.losses(images, labels)["loss"]
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    after = model.losses(images, labels)["loss"].detach()
    assert float(after) < 0.8 * float(first["loss"].detach())


def test_flops_match_a_hand_count():
    # 2 FLOPs per multiply-accumulate of every matmul; biases and ReLUs are not counted
    assert flops_per_image(FCClassifier((1, 4, 4), 3, hidden=5), (1, 4, 4)) == 2 * (16 * 5 + 5 * 5 + 5 * 3)
    conv = 8 * 11 * 11 * (10 * 10)  # 8 maps of 11 x 11 outputs, 10 x 10 x 1 MACs each
    assert flops_per_image(ConvClassifier((1, 60, 60), 10), (1, 60, 60)) == 2 * (conv + 968 * 256 + 256 * 10)


def test_flops_on_60x60_canvases():
    fc, paper_conv, deep_conv = (flops_per_image(make((1, 60, 60)), (1, 60, 60)) for make in MODELS.values())
    assert deep_conv > fc > paper_conv  # the paper's stride-5 conv is cheaper than its FC net

    # RAM's cost does not depend on the canvas; a full-image network's grows with its pixels
    small, large = (GlimpseVectorEnv(2, autoreset_mode=SAME_STEP, task="translated", canvas=side, glimpse_size=12,
                                     scales=3, num_glimpses=6)
                    for side in (60, 100))
    assert flops_per_image(FCClassifier(small.canvas_shape, 10), small) == fc
    assert flops_per_image(FCClassifier(large.canvas_shape, 10), large) > 2.5 * fc
    ram = RAM.from_env(small)
    assert flops_per_image(ram, small) == flops_per_image(ram, large)
    with pytest.raises(TypeError, match="canvas shape"):
        flops_per_image(FCClassifier((1, 60, 60), 10), 6)
