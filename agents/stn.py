"""The Spatial Transformer: Jaderberg, Simonyan, Zisserman & Kavukcuoglu, "Spatial Transformer Networks",
NIPS 2015 -- soft, location-wise attention by a differentiable affine sampler.

1. **Localisation net** ``f_loc``: a small CNN on the whole canvas regresses the transformation's
   parameters. Its last layer starts at zero weights and the identity's bias, so training starts from
   ``theta = identity`` (the paper's initialisation): the transformer first shows the whole canvas.
2. **Transformation** ``T_theta``: the full affine ``theta`` ``(2, 3)`` (6 parameters), or the paper's
   attention form ``[[s, 0, tx], [0, s, ty]]`` (3 parameters; ``s = exp(.)`` keeps the scale positive,
   :func:`glimpse.samplers.box_theta`). ``theta`` maps output to input normalized coordinates
   (the project's convention, see :mod:`glimpse`).
3. **Sampler**: :func:`glimpse.samplers.affine_sample` to ``size x size`` pixels. Zooming out with a
   point sample aliases, so each output pixel averages ``supersample**2`` bilinear samples over its
   footprint (default: the canvas/output pixel ratio, rounded up).
4. **Classifier**: the paper's conv baseline (:class:`agents.baselines.ConvClassifier`) on the
   transformer's output -- ST-CNN is then exactly "the CNN, with a transformer in front".

**Recurrent variant** (``steps = T > 1``, to match RAM's glimpse budget): the localisation net's features
and the recurrent state ``h_{t-1}`` give ``theta_t``; the ``size x size`` sample ``x_t`` and its centre
enter RAM's glimpse network, ``h_t = f_h(h_{t-1}, f_g(x_t, (tx, ty)_t))``; the classifier reads ``h_T``.
All of it trains by backpropagation through the sampler, where RAM needs REINFORCE.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Annotated, Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from agents.baselines import ConvClassifier
from agents.common import SceneClassifier, box_corners, check_canvas_shape
from agents.recurrent import CoreNetwork, GlimpseNetwork
from glimpse.checks import check_canvas, check_positive_int
from glimpse.samplers import affine_sample, box_theta
from agents.ranges import Range

__all__ = ["SpatialTransformerClassifier", "STNOptions"]

TRANSFORMS = ("affine", "attention")


@dataclass
class STNOptions:
    """The Spatial Transformer's options (``--agent stn`` flags); :meth:`kwargs` gives the constructor's."""

    stn_steps: Annotated[int, Range(1)] = 1
    """stn: transforms per image (1: the feed-forward ST-CNN; T > 1: recurrent, T glimpses like RAM)"""
    stn_transform: Literal["affine", "attention"] = "attention"
    """stn: full affine theta, or the attention form [[s, 0, tx], [0, s, ty]]"""
    stn_size: Annotated[int, Range(1)] = 28
    """stn: side of each transformer output in pixels (one step: what the classifier CNN sees)"""
    core: Literal["rnn", "lstm"] = "rnn"
    """the recurrent variant's core network"""

    def kwargs(self) -> dict:
        return dict(transform=self.stn_transform, size=self.stn_size, steps=self.stn_steps, core=self.core)


class SpatialTransformerClassifier(SceneClassifier):
    """Localisation net -> theta -> sampler -> classifier (ST-CNN), or its recurrent form with ``steps`` transforms.

    Convention:
        Input ``(N, C, H, W)`` float in ``[0, 1]``; ``forward`` returns logits ``(N, D)``;
        :meth:`transform` returns the thetas ``(N, T, 2, 3)`` and the samples ``(N, T, C, size, size)``.

    Args:
        canvas_shape: ``(C, H, W)``.
        num_classes: ``D``.
        transform: ``"affine"`` or ``"attention"``.
        size: side of each sample in pixels.
        steps: transforms per image (1: ST-CNN).
        supersample: bilinear samples per output pixel along each axis; none: ``ceil(max(H, W) / size)``.
        localisation: width of the localisation net's feature layer.
        core: the recurrent variant's core, ``"rnn"`` or ``"lstm"``.
        hidden: the recurrent variant's state width (RAM's 256).
    """

    def __init__(self, canvas_shape: Sequence[int], num_classes: int, *, transform: str = "attention",
                 size: int = 28, steps: int = 1, supersample: int | None = None, localisation: int = 64,
                 core: str = "rnn", hidden: int = 256) -> None:
        super().__init__()
        shape = check_canvas_shape(canvas_shape)
        if transform not in TRANSFORMS:
            raise ValueError(f"transform must be one of {TRANSFORMS}; got {transform!r}")
        check_positive_int(size, "size")
        check_positive_int(steps, "steps")
        self.canvas_shape, self.transform_kind, self.size, self.steps = shape, transform, size, steps
        self.supersample = supersample if supersample is not None else math.ceil(max(shape[1:]) / size)
        channels = shape[0]
        self.localisation = nn.Sequential(
            nn.Conv2d(channels, 8, 5, stride=2, padding=2), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(8, 16, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
        )
        with torch.no_grad():
            flat = self.localisation(torch.zeros(1, *shape)).shape[1]
        self.localisation_fc = nn.Linear(flat, localisation)
        recurrent = steps > 1
        self.core = CoreNetwork(hidden, hidden, core) if recurrent else None
        identity = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0] if transform == "affine" else [0.0, 0.0, 0.0]  # log s, tx, ty
        self.theta_head = nn.Linear(localisation + (hidden if recurrent else 0), len(identity))
        nn.init.zeros_(self.theta_head.weight)
        with torch.no_grad():
            self.theta_head.bias.copy_(torch.tensor(identity))
        if recurrent:
            self.glimpse_net = GlimpseNetwork(channels * size * size, 128, 128, hidden)
            self.classifier = nn.Linear(hidden, num_classes)
        else:
            self.classifier = ConvClassifier((channels, size, size), num_classes)

    def theta(self, params: Tensor) -> Tensor:
        """``(N, 2, 3)`` from the head's output ``(N, 6)`` (affine) or ``(N, 3)`` = ``(log s, tx, ty)``."""
        if self.transform_kind == "affine":
            return params.view(-1, 2, 3)
        return box_theta(params[:, 1:], params[:, 0].exp())

    def transform(self, images: Tensor) -> tuple[Tensor, Tensor]:
        """``(thetas (N, T, 2, 3), samples (N, T, C, size, size))``; the recurrent variant also runs its core."""
        return self._run(images)[1:]

    def _run(self, images: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        check_canvas(images, shape=self.canvas_shape)
        n = images.shape[0]
        where = F.relu(self.localisation_fc(self.localisation(images)))  # (N, localisation)
        if self.core is None:
            theta = self.theta(self.theta_head(where))  # (N, 2, 3)
            sample = affine_sample(images, theta, self.size, supersample=self.supersample)
            return self.classifier(sample), theta[:, None], sample[:, None]
        state = self.core.initial_state(n, images.device)
        h = images.new_zeros(n, self.core.hidden_size)
        thetas, samples = [], []
        for _ in range(self.steps):
            theta = self.theta(self.theta_head(torch.cat([where, h], dim=1)))
            sample = affine_sample(images, theta, self.size, supersample=self.supersample)  # (N, C, size, size)
            h, state = self.core(self.glimpse_net(sample, theta[:, :, 2]), state)
            thetas.append(theta)
            samples.append(sample)
        return self.classifier(h), torch.stack(thetas, dim=1), torch.stack(samples, dim=1)

    def forward(self, images: Tensor) -> Tensor:
        return self._run(images)[0]

    def attention_maps(self, images: Tensor) -> dict[str, Tensor]:
        """``quads``: the region each transform samples, ``(N, T, 4, 2)`` corners in the canvas."""
        return {"quads": box_corners(self.transform(images)[0])}
