"""Location-wise soft attention: a spatial softmax map over a CNN feature map, conditioned on a recurrent
state -- the soft counterpart of RAM's glimpse location (Xu et al., "Show, Attend and Tell", ICML 2015,
Section 4.2, whose annotation vectors are exactly the cells of a conv feature map).

1. **Features.** A small CNN turns the whole canvas ``(N, C, H, W)`` into a map ``(N, F, H/4, W/4)``
   (two stride-2 conv layers). Each cell ``(i, j)`` becomes one annotation vector ``a_ij``: its ``F``
   features and its normalized centre ``(x, y)`` (the project's convention, see :mod:`glimpse`), so that
   the context can say *where* as well as *what*.
2. **Attention.** For ``t = 1..T`` an additive score over every cell, a softmax over the whole map
   (the spatial attention map ``alpha_t``, ``(H/4, W/4)``) and the context ``z_t = sum_ij alpha_tij a_ij``
   feed a recurrent core; the classifier reads ``h_T`` (:class:`agents.common.RecurrentSoftAttention`).
3. **Training** by backpropagation alone: cross-entropy, optionally SAT's doubly stochastic regulariser.

Where RAM *chooses* one location per step and pays for one glimpse, this model weighs every location
of a map computed from every pixel: it is differentiable, and its cost grows with the canvas.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import torch
from torch import Tensor, nn

from agents.common import RecurrentSoftAttention, SceneClassifier, check_canvas_shape, soft_attention_losses
from glimpse.checks import check_canvas

__all__ = ["SpatialSoftAttention", "SpatialOptions", "cell_centers"]


@dataclass
class SpatialOptions:
    """Spatial soft attention's options (``--agent spatial-soft`` flags), :meth:`SpatialSoftAttention.from_env`'s keywords."""

    core: Literal["rnn", "lstm"] = "rnn"
    """the core network"""


def cell_centers(height: int, width: int, device: torch.device | str = "cpu") -> Tensor:
    """``(height * width, 2)`` the centres ``(x, y)`` in ``[-1, 1]`` of a ``height x width`` map's cells, row-major.

    Example:
        >>> cell_centers(1, 2).tolist()
        [[-0.5, 0.0], [0.5, 0.0]]
    """
    ys = (2 * torch.arange(height, dtype=torch.float32, device=device) + 1) / height - 1
    xs = (2 * torch.arange(width, dtype=torch.float32, device=device) + 1) / width - 1
    y, x = torch.meshgrid(ys, xs, indexing="ij")
    return torch.stack([x.flatten(), y.flatten()], dim=1)


class SpatialSoftAttention(SceneClassifier):
    """Recurrent soft attention over the cells of a CNN feature map of the canvas.

    Convention:
        Input ``(N, C, H, W)`` float in ``[0, 1]``; ``forward`` returns logits ``(N, D)``;
        :meth:`attend` also returns the attention maps ``(N, T, H', W')`` (each sums to 1 over the map).

    Args:
        canvas_shape: ``(C, H, W)``.
        num_classes: ``D``.
        steps: attention steps ``T`` (the hard agents' glimpses per image).
        channels: output channels of the two conv layers (5x5 then 3x3, stride 2 each, padded).
        hidden: width of the recurrent state.
        core: ``"rnn"`` or ``"lstm"``.
        doubly_stochastic: weight of SAT's doubly stochastic regulariser (0: off).
    """

    def __init__(self, canvas_shape: Sequence[int], num_classes: int, *, steps: int = 6,
                 channels: tuple[int, int] = (16, 32), hidden: int = 256, core: str = "rnn",
                 doubly_stochastic: float = 0.0) -> None:
        super().__init__()
        shape = check_canvas_shape(canvas_shape)
        self.canvas_shape, self.doubly_stochastic = shape, float(doubly_stochastic)
        self.features = nn.Sequential(
            nn.Conv2d(shape[0], channels[0], 5, stride=2, padding=2), nn.ReLU(),
            nn.Conv2d(channels[0], channels[1], 3, stride=2, padding=1), nn.ReLU(),
        )
        with torch.no_grad():  # the map's size, from one dummy pass
            self.map_size = tuple(self.features(torch.zeros(1, *shape)).shape[2:])
        self.register_buffer("cells", cell_centers(*self.map_size))  # (K, 2)
        self.reader = RecurrentSoftAttention(channels[1] + 2, num_classes, steps=steps, hidden=hidden, core=core)

    @classmethod
    def from_env(cls, env, **kwargs: Any) -> SpatialSoftAttention:
        """Sized for ``env``'s canvases and classes; ``steps`` its glimpses per episode."""
        kwargs.setdefault("steps", env.episode_steps)
        return super().from_env(env, **kwargs)

    def attend(self, images: Tensor) -> tuple[Tensor, Tensor]:
        """``(logits (N, D), attention maps (N, T, H', W'))``."""
        check_canvas(images, shape=self.canvas_shape)
        n = images.shape[0]
        cells = self.features(images).flatten(2).transpose(1, 2)  # (N, K, F)
        values = torch.cat([cells, self.cells.expand(n, -1, -1)], dim=2)  # (N, K, F + 2): what and where
        logits, alpha = self.reader(values)
        return logits, alpha.view(n, -1, *self.map_size)

    def forward(self, images: Tensor) -> Tensor:
        return self.attend(images)[0]

    def attention_maps(self, images: Tensor) -> dict[str, Tensor]:
        """``heat``: the attention maps averaged over the steps, ``(N, H', W')``."""
        return {"heat": self.attend(images)[1].mean(dim=1)}

    def losses(self, images: Tensor, labels: Tensor) -> dict[str, Tensor]:
        logits, maps = self.attend(images)
        return soft_attention_losses(logits, maps.flatten(2), labels, self.doubly_stochastic)
