"""Full-image classifiers: the non-attentive baselines of RAM's tables (Mnih et al., "Recurrent Models of
Visual Attention", NIPS 2014, Tables 1-2).

Both see the whole canvas at once, so their cost grows with its pixels; RAM's grows with its glimpses
(compare them with :func:`agents.flops.flops_per_image`).

* :class:`FCClassifier` -- the tables' "FC, 2 layers (256 hiddens each)": two ReLU layers of 256 units
  and a linear softmax layer.
* :class:`ConvClassifier` -- the tables' "Convolutional, 2 layers". We read the paper's text as one
  convolutional layer of 8 filters of 10x10 pixels with stride 5, then a fully connected layer of 256
  ReLU units, then the softmax layer (a public reimplementation that reproduces the tables' numbers,
  slundqui/tfRAM, uses the same). Padding is not specified; we use none. On a 60x60 canvas the conv
  map is 8 x 11 x 11, so this network is *cheaper* than the FC one; ``channels``, ``kernel_size``,
  ``stride`` and ``hidden`` build deeper variants, e.g. ``channels=(10, 10), kernel_size=5, stride=1,
  hidden=None`` for two stride-1 conv layers straight into the classifier.

Inputs are ``(N, C, H, W)`` float images in ``[0, 1]``; outputs are ``(N, num_classes)`` logits. Both are
:class:`agents.common.SceneClassifier` s: the scripts train them on the env's canvases by cross-entropy.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from agents.common import SceneClassifier, check_canvas_shape
from glimpse.checks import check_canvas

__all__ = ["FCClassifier", "ConvClassifier"]


class FCClassifier(SceneClassifier):
    """Two fully connected ReLU layers of ``hidden`` units and a linear classifier on the flattened canvas.

    Args:
        canvas_shape: ``(C, H, W)``.
        num_classes: number of classes.
        hidden: units per hidden layer (256 in the paper; it also reports 64).
    """

    def __init__(self, canvas_shape: Sequence[int], num_classes: int, hidden: int = 256) -> None:
        super().__init__()
        self.canvas_shape = check_canvas_shape(canvas_shape)
        channels, height, width = self.canvas_shape
        self.net = nn.Sequential(
            nn.Flatten(),
            nn.Linear(channels * height * width, hidden), nn.ReLU(),
            nn.Linear(hidden, hidden), nn.ReLU(),
            nn.Linear(hidden, num_classes),
        )

    def forward(self, images: Tensor) -> Tensor:
        check_canvas(images, shape=self.canvas_shape)
        return self.net(images)  # (N, num_classes)


class ConvClassifier(SceneClassifier):
    """Convolutional layers (ReLU, no pooling), an optional fully connected ReLU layer, a linear classifier.

    Defaults are the paper's conv baseline as we read it (see the module docstring): one layer of 8
    filters 10x10 with stride 5, then 256 hidden units.

    Args:
        canvas_shape: ``(C, H, W)``.
        num_classes: number of classes.
        channels: output channels of each conv layer, in order.
        kernel_size: side of every filter.
        stride: stride of every conv layer.
        hidden: units of the fully connected layer before the classifier; ``None`` for none.
    """

    def __init__(self, canvas_shape: Sequence[int], num_classes: int, *, channels: Sequence[int] = (8,),
                 kernel_size: int = 10, stride: int = 5, hidden: int | None = 256) -> None:
        super().__init__()
        self.canvas_shape = check_canvas_shape(canvas_shape)
        layers: list[nn.Module] = []
        previous = self.canvas_shape[0]
        for out in channels:
            layers += [nn.Conv2d(previous, out, kernel_size, stride=stride), nn.ReLU()]
            previous = out
        self.features = nn.Sequential(*layers, nn.Flatten())
        with torch.no_grad():  # the flattened size, from one dummy pass
            flat = self.features(torch.zeros(1, *self.canvas_shape)).shape[1]
        head: list[nn.Module] = [] if hidden is None else [nn.Linear(flat, hidden), nn.ReLU()]
        self.head = nn.Sequential(*head, nn.Linear(flat if hidden is None else hidden, num_classes))

    def forward(self, images: Tensor) -> Tensor:
        check_canvas(images, shape=self.canvas_shape)
        return self.head(self.features(images))  # (N, num_classes)
