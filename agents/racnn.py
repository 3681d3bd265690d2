"""RA-CNN, the Recurrent Attention Convolutional Neural Network: Fu, Zheng & Mei, "Look Closer to See
Better: Recurrent Attention Convolutional Neural Network for Fine-grained Image Recognition", CVPR 2017.

The network looks at the image at ``S`` scales (``scales``, 3 in the paper), each one a zoom into a region
of the previous one. Scale ``s`` has its own classification CNN; at every scale but the last an attention
proposal network (APN) reads that CNN's last conv features and proposes the square the next scale zooms
into. The answer fuses the features of all scales. The module follows the paper top to bottom:

1. **Model** (paper Sec. 3.1, Fig. 2). Scale ``s`` sees ``X_s``, ``(N, C, h, w)``: ``X_1`` is the canvas
   (resized to ``input_size`` if one is given), ``X_{s+1}`` is the proposed region zoomed to ``h x w``.

   * Classification CNN ``cnn_s`` (:class:`ScaleCNN`; small, for CPUs): ``len(channels)`` blocks of a
     3x3 conv (padding 1) + ReLU + 2x2 max-pool, so a ``(C, h, w)`` input leaves a ``(c_L, h / 2**L,
     w / 2**L)`` map; its flattening feeds a ``feature_dim`` ReLU layer, the scale's descriptor ``f_s``,
     and a linear classifier gives the scale's logits ``Y(s)``. Defaults: ``channels=(16, 32, 32)``,
     ``feature_dim=128``; on a 60 x 60 canvas the pooled map is 32 x 7 x 7, on 100 x 100 32 x 12 x 12,
     on 112 x 112 32 x 14 x 14. The "last conv map" (before its pool; 15 x 15, 25 x 25, 28 x 28) is
     what APN pretraining reads.
   * APN (:class:`AttentionProposalNetwork`): two fully connected layers on the flattened pooled map of
     scale ``s`` (``apn_hidden`` ReLU units, then a linear layer to 3 numbers ``a``) give a square
     ``(tx, ty, tl)`` *in the frame of* ``X_s``: ``u = tanh(a)`` in ``[-1, 1]^3`` and (:func:`boxes_from_unit`)

         ``tl = min_half_side + (max_half_side - min_half_side) * (u_l + 1) / 2``,
         ``tx = (1 - tl) * u_x``,  ``ty = (1 - tl) * u_y``.

     Boxes are in the project's convention (see :mod:`glimpse`): ``(tx, ty)`` a normalized centre, ``tl`` a
     normalized half-side (``tl = 1``: the whole of ``X_s``). So ``tl`` lies in ``[min_half_side,
     max_half_side]`` (default ``[1/3, 1]``: the paper's lower bound, a side of at least a third of the
     previous scale's, so the box cannot collapse; the tanh makes the whole image an asymptote the APN can
     only approach by saturating, and pretraining starts it at half the side), and the box always lies inside
     ``X_s`` (the centre moves at most ``1 - tl`` from the middle), so no zoom ever reads outside the canvas.
     The APN's last layer starts at tiny weights and zero bias: every first box is the centred square
     of half-side ``(min_half_side + max_half_side) / 2``.
   * Zoom (:func:`attend`): the boxes compose (:func:`compose_boxes`) into the canvas frame,
     ``B_s = (c_{s-1} + tl_{s-1} * c_s, tl_{s-1} * tl_s)``, and ``X_{s+1}`` is ``B_s`` cropped *from the
     canvas* with :func:`glimpse.samplers.crop_boxes` (bilinear) -- one interpolation per scale, at the
     canvas's full resolution, instead of a zoom of a zoom. A zoom never shrinks unless ``input_size``
     is smaller than the canvas; then every crop averages ``supersample**2`` bilinear samples per output
     pixel (``ceil`` of the canvas/input pixel ratio) so that it does not alias.
   * Fusion: the descriptors are L2-normalised and concatenated, ``[f_1 / |f_1|, ..., f_S / |f_S|]``, and a
     linear layer gives the fused logits, the model's answer (``forward``).

2. **Soft attention** (``attention="soft"``, the paper's, Sec. 3.2-3.3). The region is cut out by the
   boxcar mask ``M = [h(x - x_l) - h(x - x_r)] [h(y - y_t) - h(y - y_b)]``, ``h(z) = sigmoid(k z)`` per
   canvas pixel with ``k = steepness = 10`` (:func:`glimpse.samplers.boxcar_mask`), so
   ``X_{s+1} = zoom(canvas * M(B_s), B_s)`` depends differentiably on ``(tx, ty, tl)`` through the mask
   and through the bilinear zoom. Loss (:func:`ranking_loss`):

       ``L = sum_s CE(Y(s), y) + CE(Y_fused, y) + sum_{s<S} max(0, p_t(s) - p_t(s+1) + margin)``

   with ``p_t(s)`` the softmax probability of the true class at scale ``s`` and ``margin = 0.05``: each
   scale must be more confident than the one before. The paper trains the two parts in turn:

   * *classifier phase*: the APN is fixed and the CNNs and the fusion layer learn from the
     cross-entropies; the boxes are detached, so the APN gets no gradient at all;
   * *APN phase*: the CNNs and the fusion layer are fixed and the APNs learn from the ranking loss. The
     fixed networks run on *detached copies* of their parameters (``torch.func.functional_call``), so
     the gradient reaches the boxes through them but their ``.grad`` stays ``None`` and Adam (zeroed with
     ``set_to_none=True``, as ``scripts/train.py`` does) leaves them alone. The APN reads the attached
     features, so the ranking gradient also flows from a later box back through ``X_s`` to earlier ones.

   *APN pretraining* (the paper's initialisation, :meth:`RACNN.apn_pretrain_loss`): each APN regresses
   (mean squared error on ``(tx, ty, tl)``) onto the square of half the side (``tl = 1/2``, clamped into
   the APN's range) centred on the strongest response (channel sum) of its scale's last conv map
   (:func:`strongest_response_boxes`). The APN reads detached features, so this trains the APN alone.

   Schedule, by the update counter ``updates`` (a registered buffer: it is in ``state_dict``, so a
   checkpoint and resume continue the same schedule; one :meth:`RACNN.train_losses` call is one update):
   updates ``[0, pretrain_steps)`` are *pretraining* (the cross-entropies with detached APN boxes, plus
   the APN regression: disjoint parameters, trained together); after that, blocks of
   ``alternate_every`` updates alternate *classifier*, *APN*, *classifier*, ... (:meth:`RACNN.phase_at`).

3. **Hard attention** (``attention="hard"``, the framework's counterpart). The APN's 3 numbers are the
   pre-tanh mean of a Gaussian (:class:`glimpse.policies.GaussianLocationPolicy` with ``loc_dims=3``,
   fixed ``std``): ``u = tanh(z)``, ``z ~ N(a, std^2)``, sampled *without gradient* (exact log-probability
   of the tanh-squashed sample), mapped to a box as above (a fixed bijection: its Jacobian does not
   depend on the parameters, so ``log pi(u)`` is the box's log-probability up to a constant). The box is
   cropped with ``crop_boxes`` and no mask. Losses, summed:

   * ``loss_classifier``: the same cross-entropies (scales and fused);
   * ``loss_policy``: REINFORCE (:func:`glimpse.reinforce.reinforce_loss`) for the ``S - 1`` boxes, with
     the per-step reward the gain in true-class probability ``r_s = p_t(s+1) - p_t(s)`` (detached) and
     its return-to-go ``G_s = p_t(S) - p_t(s)`` (a box also decides what the later scales see), minus a
     learned baseline ``b_s`` (a linear head per APN on its detached hidden layer);
   * ``loss_baseline``: the baselines' squared error against ``G_s``.

   Detachment: the APN reads ``features.detach()`` and the sampled box is a constant, so the
   cross-entropies never reach the APN and REINFORCE never reaches the CNNs; the baseline reads the APN's
   hidden layer detached, so its regression reaches the baseline heads alone. Hard mode always trains
   both parts at once (phase *joint*), after ``pretrain_steps`` (default 0) of the same pretraining.
   Evaluation, :meth:`RACNN.forward` and :meth:`RACNN.boxes` use the mean box ``u = tanh(a)``.

4. **Guards** (``tests/agents/test_racnn.py``): ``tl`` stays in range for extreme APN outputs; ``x`` / ``y`` are
   not swapped; the mask's gradient in ``tx``, ``ty``, ``tl`` has the right sign and is alive at the
   initial boxes; the soft backward reaches the APN; the hard APN gets only REINFORCE and the CNNs none
   of it; each soft phase leaves the other part's ``.grad`` at ``None``; the schedule survives a
   ``state_dict`` round trip; a few dozen updates lower the loss.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Annotated, Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.func import functional_call

from agents.common import SceneClassifier, check_canvas_shape
from agents.episodes import Episodes, Replayed
from glimpse.checks import check_canvas, check_int, check_shape
from glimpse.policies import GaussianLocationPolicy
from glimpse.reinforce import discounted_returns, reinforce_loss
from glimpse.samplers import boxcar_mask, crop_boxes
from agents.ranges import Range

__all__ = [
    "ATTENTIONS",
    "PHASES",
    "boxes_from_unit",
    "compose_boxes",
    "attend",
    "ScaleCNN",
    "AttentionProposalNetwork",
    "ranking_loss",
    "strongest_response_boxes",
    "RACNN",
    "RACNNOptions",
]

ATTENTIONS = ("soft", "hard")
#: Training phases, logged as ``train/phase`` by their index: 0 pretrain, 1 classifier, 2 apn, 3 joint.
PHASES = ("pretrain", "classifier", "apn", "joint")


# ------------------------------------------------------------------------------------------------
# 1. Model: boxes, the zoom, the per-scale CNN, the APN
# ------------------------------------------------------------------------------------------------


def boxes_from_unit(unit: Tensor, min_half_side: float = 1 / 3, max_half_side: float = 1.0) -> Tensor:
    """Map ``u`` in ``[-1, 1]^3`` (the APN's tanh output) to a square ``(tx, ty, tl)`` inside the image.

    Convention:
        ``unit`` is ``(N, 3)`` as ``(u_x, u_y, u_l)``. Output ``(N, 3)`` as ``(tx, ty, tl)``: a normalized
        centre and half-side in the project's convention (see :mod:`glimpse`).
        ``tl = min + (max - min) * (u_l + 1) / 2`` lies in ``[min_half_side, max_half_side]``;
        ``tx = (1 - tl) u_x`` and ``ty = (1 - tl) u_y`` keep ``[t - tl, t + tl]`` inside ``[-1, 1]``. Monotone in each input, differentiable.

    Example:
        >>> boxes_from_unit(torch.tensor([[0.0, 0.0, -1.0], [1.0, -1.0, 0.0]]), 0.25, 0.75)
        tensor([[ 0.0000,  0.0000,  0.2500],
                [ 0.5000, -0.5000,  0.5000]])
    """
    check_shape(unit, "unit", "(N, 3) as (u_x, u_y, u_l)", (None, 3))
    ux, uy, ul = unit.unbind(-1)  # (N,) each
    tl = min_half_side + (max_half_side - min_half_side) * (ul + 1) / 2
    return torch.stack([(1 - tl) * ux, (1 - tl) * uy, tl], dim=-1)  # (N, 3)


def compose_boxes(outer: Tensor, inner: Tensor) -> Tensor:
    """The box ``inner``, given in the frame of the crop ``outer``, in ``outer``'s own frame.

    Convention:
        Both ``(N, 3)`` as ``(tx, ty, tl)``; ``inner`` is normalized to the crop of ``outer`` (its ``-1`` /
        ``+1`` are ``outer``'s edges). Output ``(N, 3)``: ``(tx_o + tl_o tx_i, ty_o + tl_o ty_i, tl_o tl_i)``.

    Example:
        >>> compose_boxes(torch.tensor([[0.5, -0.5, 0.5]]), torch.tensor([[1.0, 0.0, 0.5]]))
        tensor([[ 1.0000, -0.5000,  0.2500]])
    """
    check_shape(outer, "outer", "(N, 3) as (tx, ty, tl)", (None, 3))
    check_shape(inner, "inner", "(N, 3) as (tx, ty, tl)", (outer.shape[0], 3))
    centre = outer[:, :2] + outer[:, 2:] * inner[:, :2]  # (N, 2)
    return torch.cat([centre, outer[:, 2:] * inner[:, 2:]], dim=1)  # (N, 3)


def attend(images: Tensor, boxes: Tensor, size: int | Sequence[int], *, steepness: float | None = None,
           supersample: int = 1) -> Tensor:
    """Zoom into square boxes: RA-CNN's masked crop (soft) or a plain crop (hard).

    Convention:
        ``images`` ``(N, C, H, W)`` float; ``boxes`` ``(N, 3)`` as ``(tx, ty, tl)`` in the images' frame
        (normalized centre and half-side ``tl > 0``, the project's convention: see :mod:`glimpse`). With
        ``steepness`` (soft) the images are first multiplied by :func:`glimpse.samplers.boxcar_mask` (``k``
        per pixel); without it (hard) they are not. Then :func:`glimpse.samplers.crop_boxes` resizes the box
        to ``size`` (bilinear, averaging ``supersample**2`` samples per output pixel). Output
        ``(N, C, h, w)``. Differentiable with respect to ``images`` and ``boxes``.
    """
    check_shape(boxes, "boxes", "(N, 3) as (tx, ty, tl)", (images.shape[0], 3))
    if steepness is not None:
        images = images * boxcar_mask(boxes, images.shape[-2], images.shape[-1], steepness)  # (N, C, H, W)
    return crop_boxes(images, boxes[:, :2], boxes[:, 2], size, supersample=supersample)  # (N, C, h, w)


class ScaleCNN(nn.Module):
    """One scale's classification CNN: ``[3x3 conv + ReLU + 2x2 max-pool] * L``, a ReLU descriptor layer, a linear classifier.

    Convention:
        Input ``(N, C, h, w)`` with ``h, w >= 2**L``. :meth:`forward` returns ``(last_map, pooled,
        descriptor, logits)``: the last conv layer's ReLU output before its pool ``(N, c_L, h', w')``
        (``h' = h // 2**(L-1)``, its cells ``2**(L-1)`` input pixels wide), the pooled map ``(N, c_L, h'//2,
        w'//2)``, ``f = ReLU(Linear(flatten(pooled)))`` ``(N, feature_dim)`` and ``Linear(f)`` ``(N, D)``.

    Args:
        input_shape: ``(C, h, w)``.
        num_classes: ``D``.
        channels: output channels of the conv layers, in order.
        feature_dim: width of the descriptor.
    """

    def __init__(self, input_shape: Sequence[int], num_classes: int, channels: Sequence[int] = (16, 32, 32),
                 feature_dim: int = 128) -> None:
        super().__init__()
        c, h, w = input_shape
        if min(h, w) < 2 ** len(channels):
            raise ValueError(f"a {len(channels)}-block CNN needs inputs of at least {2 ** len(channels)} pixels "
                             f"a side; got {h} x {w} (use fewer channels entries or a larger input_size)")
        previous, convs = c, []
        for out in channels:
            convs.append(nn.Conv2d(previous, out, 3, padding=1))
            previous = out
        self.convs = nn.ModuleList(convs)
        self.pooled_shape = (previous, h // 2 ** len(channels), w // 2 ** len(channels))
        self.descriptor = nn.Linear(math.prod(self.pooled_shape), feature_dim)
        self.classifier = nn.Linear(feature_dim, num_classes)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        for conv in self.convs:
            last_map = F.relu(conv(x))  # (N, c, h_l, w_l)
            x = F.max_pool2d(last_map, 2)  # (N, c, h_l / 2, w_l / 2)
        descriptor = F.relu(self.descriptor(x.flatten(1)))  # (N, feature_dim)
        return last_map, x, descriptor, self.classifier(descriptor)


class AttentionProposalNetwork(nn.Module):
    """The APN: ``hidden = ReLU(Linear(features))``, then the pre-tanh box ``a = Linear(hidden)`` ``(N, 3)``.

    The second layer is a :class:`glimpse.policies.GaussianLocationPolicy` with ``loc_dims=3``: soft
    attention uses its deterministic ``mode(hidden) = tanh(a)``, hard attention samples it. Its tiny
    initial weights and zero bias start every box at ``u = 0``, the centred square. Map ``u`` to a box with
    :func:`boxes_from_unit`.

    Args:
        in_features: the flattened pooled map of the scale's CNN.
        hidden: ``apn_hidden``.
        std: the hard policy's pre-tanh standard deviation (fixed; unused by soft attention).
    """

    def __init__(self, in_features: int, hidden: int = 128, std: float = 0.17) -> None:
        super().__init__()
        self.trunk = nn.Sequential(nn.Linear(in_features, hidden), nn.ReLU())
        self.policy = GaussianLocationPolicy(hidden, std=std, loc_dims=3)

    def forward(self, features: Tensor) -> Tensor:
        """The hidden layer, ``(N, hidden)``; the box comes from ``self.policy`` on it."""
        return self.trunk(features)


# ------------------------------------------------------------------------------------------------
# 2. Losses of the soft model and the pretraining target
# ------------------------------------------------------------------------------------------------


def ranking_loss(true_probs: Tensor, margin: float = 0.05) -> Tensor:
    """RA-CNN's pairwise ranking loss ``sum_{s<S} mean_N max(0, p_t(s) - p_t(s+1) + margin)``.

    Convention:
        ``true_probs`` is ``(N, S)``, the true class's softmax probability at each scale, coarse to fine.
        Output: a scalar to minimise; it is zero once every scale beats the previous one by ``margin``.

    Example:
        >>> ranking_loss(torch.tensor([[0.5, 0.6, 0.5]]), margin=0.05)  # 0 + (0.6 - 0.5 + 0.05)
        tensor(0.1500)
    """
    check_shape(true_probs, "true_probs", "(N, S)")
    return F.relu(true_probs[:, :-1] - true_probs[:, 1:] + margin).mean(dim=0).sum()


def strongest_response_boxes(last_map: Tensor, half_side: float = 0.5, min_half_side: float = 1 / 3,
                             max_half_side: float = 1.0) -> Tensor:
    """APN pretraining targets: a square of half the side centred on the strongest conv response.

    Convention:
        ``last_map`` is ``(N, c, h, w)`` (a conv map whose cells tile the scale's input) or its channel
        sum ``(N, h, w)``; the cell with the largest channel sum (first on ties) gives the centre, at the
        cell's centre ``((j + 0.5) / w * 2 - 1, (i + 0.5) / h * 2 - 1)`` as ``(x, y)``. ``tl`` is
        ``half_side`` clamped into ``[min_half_side, max_half_side]``, and the centre is clamped into
        ``[-(1 - tl), 1 - tl]`` so that the box is one the APN can reach. Output ``(N, 3)``, no gradient.

    Example:
        >>> response = torch.zeros(1, 4, 4)
        >>> response[0, 1, 3] = 1.0  # row 1, column 3: x right, y upper half
        >>> strongest_response_boxes(response)
        tensor([[ 0.5000, -0.2500,  0.5000]])
    """
    response = last_map.detach()
    if response.dim() == 4:
        response = response.sum(dim=1)  # (N, h, w)
    check_shape(response, "last_map (or its channel sum)", "(N, h, w)")
    n, h, w = response.shape
    flat = response.flatten(1).argmax(dim=1)  # (N,)
    row, col = flat // w, flat % w
    tl = min(max(half_side, min_half_side), max_half_side)
    x = ((col.to(response.dtype) + 0.5) / w * 2 - 1).clamp(-(1 - tl), 1 - tl)
    y = ((row.to(response.dtype) + 0.5) / h * 2 - 1).clamp(-(1 - tl), 1 - tl)
    return torch.stack([x, y, torch.full_like(x, tl)], dim=1)  # (N, 3)


@dataclass
class Pass:
    """One pass through the ``S`` scales. ``N`` images, ``S`` scales, ``D`` classes."""

    inputs: list[Tensor]
    """``S`` tensors ``(N, C, h, w)``: what each scale saw, coarse to fine."""
    logits: list[Tensor]
    """``S`` tensors ``(N, D)``, coarse to fine."""
    fused: Tensor
    """``(N, D)`` the fused classifier's logits."""
    boxes: Tensor
    """``(N, S-1, 3)`` the boxes the zooms used, each in the frame of its scale's input (local)."""
    image_boxes: Tensor
    """``(N, S-1, 3)`` the same, composed into the canvas frame."""
    means: Tensor
    """``(N, S-1, 3)`` the APNs' mean boxes (local frames), attached to the APNs."""
    last_maps: list[Tensor]
    """``S-1`` detached last conv maps ``(N, c, h', w')`` of the scales with an APN."""
    log_probs: Tensor | None = None
    """``(N, S-1)`` log pi of the sampled boxes (hard, sampled passes only)."""
    baselines: Tensor | None = None
    """``(N, S-1)`` learned baselines (hard only)."""
    draws: Tensor | None = None
    """``(N, S-1, 3)`` the sampled boxes' pre-tanh draws ``z`` (hard, sampled passes only), for a replay."""


# ------------------------------------------------------------------------------------------------
# 3. The model
# ------------------------------------------------------------------------------------------------


@dataclass
class RACNNOptions:
    """RA-CNN's options (``--agent racnn-soft`` / ``racnn-hard`` flags); :meth:`kwargs` gives the constructor's."""

    racnn_input_size: Annotated[int | None, Range(1)] = None
    """racnn-*: side of what each scale's CNN sees (none: the canvas's own; smaller is much cheaper)"""

    def kwargs(self) -> dict:
        return dict(input_size=self.racnn_input_size)


class RACNN(SceneClassifier):
    """RA-CNN with soft (the paper's, boxcar mask) or hard (sampled box, REINFORCE) attention.

    Convention:
        Input ``(N, C, H, W)`` float in ``[0, 1]`` (the canvas); :meth:`forward` returns the fused logits
        ``(N, D)`` with the APNs' mean boxes; :meth:`boxes` returns those boxes ``(N, S-1, 3)``.

    Args:
        canvas_shape: ``(C, H, W)``.
        num_classes: ``D``.
        attention: ``"soft"`` or ``"hard"``.
        scales: ``S >= 2`` (the paper: 3).
        input_size: side of every scale's input in pixels; none: the canvas's ``(H, W)``.
        channels: conv channels of each scale's CNN (one 3x3 conv + pool block per entry).
        feature_dim: width of each scale's descriptor.
        apn_hidden: width of the APN's hidden layer.
        margin: the ranking loss's margin (the paper: 0.05).
        steepness: the boxcar mask's ``k`` per canvas pixel (the paper: 10); soft only.
        min_half_side: smallest ``tl`` (the paper: a third of the previous scale's side).
        max_half_side: largest ``tl``, ``<= 1`` (1: the whole previous scale).
        std: the hard APN's pre-tanh standard deviation (fixed).
        alternate_every: soft: updates per classifier / APN phase.
        pretrain_steps: updates of APN pretraining at the start; none: 200 for soft, 0 for hard.
    """

    updates: Tensor

    def __init__(self, canvas_shape: Sequence[int], num_classes: int, *, attention: str = "soft", scales: int = 3,
                 input_size: int | None = None, channels: Sequence[int] = (16, 32, 32), feature_dim: int = 128,
                 apn_hidden: int = 128, margin: float = 0.05, steepness: float = 10.0,
                 min_half_side: float = 1 / 3, max_half_side: float = 1.0, std: float = 0.17,
                 alternate_every: int = 100, pretrain_steps: int | None = None) -> None:
        super().__init__()
        shape = check_canvas_shape(canvas_shape)
        if attention not in ATTENTIONS:
            raise ValueError(f"attention must be one of {ATTENTIONS}; got {attention!r}")
        check_int(num_classes, "num_classes", minimum=2)
        check_int(scales, "scales", minimum=2, why="(one APN between each pair of scales)")
        check_int(alternate_every, "alternate_every")
        if input_size is not None:
            check_int(input_size, "input_size")
        if not 0 < min_half_side <= max_half_side <= 1:
            raise ValueError(f"need 0 < min_half_side <= max_half_side <= 1; got {min_half_side!r}, {max_half_side!r}")
        if not margin >= 0 or not steepness > 0:
            raise ValueError(f"margin must be >= 0 and steepness > 0; got {margin!r}, {steepness!r}")
        if pretrain_steps is None:
            pretrain_steps = 200 if attention == "soft" else 0
        check_int(pretrain_steps, "pretrain_steps", minimum=0)

        self.canvas_shape, self.num_classes, self.attention, self.scales = shape, num_classes, attention, scales
        c, height, width = shape
        self.input_hw = (height, width) if input_size is None else (input_size, input_size)
        # Crops shrink only when the input is smaller than the canvas: average that many samples a side.
        self.supersample = max(1, math.ceil(max(height / self.input_hw[0], width / self.input_hw[1])))
        self.margin, self.steepness = float(margin), float(steepness)
        self.min_half_side, self.max_half_side = float(min_half_side), float(max_half_side)
        self.alternate_every, self.pretrain_steps = alternate_every, pretrain_steps

        self.cnns = nn.ModuleList(ScaleCNN((c, *self.input_hw), num_classes, channels, feature_dim)
                                  for _ in range(scales))
        apn_in = math.prod(self.cnns[0].pooled_shape)
        self.apns = nn.ModuleList(AttentionProposalNetwork(apn_in, apn_hidden, std) for _ in range(scales - 1))
        self.fusion = nn.Linear(scales * feature_dim, num_classes)
        if attention == "hard":
            self.baselines = nn.ModuleList(nn.Linear(apn_hidden, 1) for _ in range(scales - 1))
        # The schedule's clock: in state_dict, so a resumed run continues the same phases.
        self.register_buffer("updates", torch.zeros((), dtype=torch.long))

    # -- parameter groups (what each phase trains) --------------------------------------------------

    def classifier_parameters(self) -> list[nn.Parameter]:
        """The CNNs' and the fusion layer's parameters (trained by cross-entropy)."""
        return [*self.cnns.parameters(), *self.fusion.parameters()]

    def apn_parameters(self) -> list[nn.Parameter]:
        """The APNs' parameters (soft: the ranking loss; hard: REINFORCE; both: pretraining)."""
        return list(self.apns.parameters())

    def baseline_parameters(self) -> list[nn.Parameter]:
        """The hard model's baseline heads (none for soft)."""
        return list(self.baselines.parameters()) if self.attention == "hard" else []

    # -- the schedule -----------------------------------------------------------------------------

    def phase_at(self, update: int) -> str:
        """The phase of update ``update`` (0-based): pretrain, then soft: classifier / apn blocks; hard: joint."""
        if update < self.pretrain_steps:
            return "pretrain"
        if self.attention == "hard":
            return "joint"
        block = (update - self.pretrain_steps) // self.alternate_every
        return "classifier" if block % 2 == 0 else "apn"

    @property
    def phase(self) -> str:
        """The phase of the next update, from the ``updates`` buffer."""
        return self.phase_at(int(self.updates))

    # -- one pass ---------------------------------------------------------------------------------

    def _first_input(self, images: Tensor) -> Tensor:
        if tuple(images.shape[-2:]) == self.input_hw:
            return images  # (N, C, H, W)
        whole = images.new_tensor([[0.0, 0.0, 1.0]]).expand(images.shape[0], 3)
        return attend(images, whole, self.input_hw, supersample=self.supersample)  # (N, C, h, w)

    def run(self, images: Tensor, *, sample: bool = False, detach_boxes: bool = False, frozen: bool = False,
            detach_apn_input: bool | None = None) -> Pass:
        """All ``S`` scales on ``images`` ``(N, C, H, W)``; see :class:`Pass` for what comes back.

        Args:
            sample: hard only: sample the boxes (else the mean boxes).
            detach_boxes: zoom with detached boxes (the classifier and pretraining phases).
            frozen: run the CNNs and the fusion layer on detached parameters (the APN phase): gradient
                flows through them to the boxes but never reaches their ``.grad``.
            detach_apn_input: the APNs read detached features; none: hard always, soft unless ``frozen``.
        """
        check_canvas(images, shape=self.canvas_shape)
        if sample and self.attention != "hard":
            raise ValueError("only hard attention samples boxes")
        if detach_apn_input is None:
            detach_apn_input = self.attention == "hard" or not frozen
        soft = self.attention == "soft"
        cnns = [_maybe_frozen(cnn, frozen) for cnn in self.cnns]
        x = self._first_input(images)  # (N, C, h, w)
        outer = None
        inputs, logits, descriptors, boxes, image_boxes, means, last_maps, log_probs, baselines, draws = (
            [] for _ in range(10))
        for s in range(self.scales):
            inputs.append(x)
            last_map, pooled, descriptor, scale_logits = cnns[s](x)
            logits.append(scale_logits)  # (N, D)
            descriptors.append(F.normalize(descriptor, dim=1))  # (N, feature_dim)
            if s == self.scales - 1:
                break
            last_maps.append(last_map.detach())
            features = pooled.flatten(1)  # (N, c * h'' * w'')
            hidden = self.apns[s](features.detach() if detach_apn_input else features)  # (N, apn_hidden)
            mean_unit = self.apns[s].policy.mode(hidden)  # (N, 3) tanh(a)
            means.append(boxes_from_unit(mean_unit, self.min_half_side, self.max_half_side))
            if sample:
                unit, draw, log_prob = self.apns[s].policy.sample_pre_squash(hidden)  # (N, 3), (N, 3) no grad, (N,)
                log_probs.append(log_prob)
                draws.append(draw)
                box = boxes_from_unit(unit, self.min_half_side, self.max_half_side)
            else:
                box = means[-1]
            if self.attention == "hard" and (sample or self.training):  # training only: not inference's cost
                baselines.append(self.baselines[s](hidden.detach()).squeeze(1))  # (N,)
            if detach_boxes:
                box = box.detach()
            boxes.append(box)
            outer = box if outer is None else compose_boxes(outer, box)  # (N, 3) canvas frame
            image_boxes.append(outer)
            x = attend(images, outer, self.input_hw, steepness=self.steepness if soft else None,
                       supersample=self.supersample)  # (N, C, h, w)
        fused = _maybe_frozen(self.fusion, frozen)(torch.cat(descriptors, dim=1))  # (N, D)
        return Pass(
            inputs=inputs, logits=logits, fused=fused, boxes=torch.stack(boxes, dim=1),
            image_boxes=torch.stack(image_boxes, dim=1),
            means=torch.stack(means, dim=1), last_maps=last_maps,
            log_probs=torch.stack(log_probs, dim=1) if log_probs else None,
            baselines=torch.stack(baselines, dim=1) if baselines else None,
            draws=torch.stack(draws, dim=1) if draws else None,
        )

    def forward(self, images: Tensor) -> Tensor:
        """The fused logits ``(N, D)`` with the mean boxes."""
        return self.run(images).fused

    @torch.no_grad()
    def attention_maps(self, images: Tensor) -> dict[str, Tensor]:
        """``quads``: the square each scale zooms into, ``(N, S-1, 4, 2)`` corners in the canvas."""
        tx, ty, tl = self.boxes(images).unbind(-1)  # (N, S-1) each
        return {"quads": torch.stack([torch.stack([tx + sx * tl, ty + sy * tl], dim=-1)
                                      for sx, sy in ((-1, -1), (1, -1), (1, 1), (-1, 1))], dim=-2)}

    def boxes(self, images: Tensor, frame: str = "image") -> Tensor:
        """The mean boxes ``(N, S-1, 3)`` as ``(tx, ty, tl)`` (for plots), in the canvas frame
        (``frame="image"``) or each in the frame of its own scale's input (``"local"``)."""
        if frame not in ("image", "local"):
            raise ValueError(f"frame must be 'image' or 'local'; got {frame!r}")
        result = self.run(images)
        return result.image_boxes if frame == "image" else result.boxes

    # -- losses -----------------------------------------------------------------------------------

    def apn_pretrain_loss(self, images: Tensor) -> Tensor:
        """The APNs' regression onto :func:`strongest_response_boxes` (each in its scale's frame),
        summed over APNs (mean over ``N`` and ``(tx, ty, tl)``); reaches the APNs only."""
        return self._pretrain_regression(self.run(images, detach_boxes=True))

    def _pretrain_regression(self, result: Pass) -> Tensor:
        targets = torch.stack([strongest_response_boxes(m, 0.5, self.min_half_side, self.max_half_side)
                               for m in result.last_maps], dim=1)  # (N, S-1, 3)
        return ((result.means - targets) ** 2).mean(dim=(0, 2)).sum()

    def loss_terms(self, images: Tensor, labels: Tensor, phase: str | None = None) -> dict[str, Tensor]:
        """Every loss term of one batch in ``phase`` (none: the current one), *attached*; ``loss`` is what
        the phase minimises. :meth:`train_losses` detaches all but ``loss`` for logging.

        Keys: ``loss``, ``loss_classifier`` (sum of the scales' and the fused cross-entropies),
        ``loss_pretrain``, soft: ``loss_rank``; hard: ``loss_policy``, ``loss_baseline``, ``prob_gain``
        (mean ``p_t(S) - p_t(1)``); and ``accuracy`` (fused), ``reward`` (= ``accuracy``, the env's scale),
        ``accuracy_scale{s}``, ``box_half_side`` (mean ``tl`` of the boxes used, local frames), ``phase``
        (its index in :data:`PHASES`).
        """
        phase = self.phase if phase is None else phase
        allowed = ("pretrain", "classifier", "apn") if self.attention == "soft" else ("pretrain", "joint")
        if phase not in allowed:
            raise ValueError(f"phase must be one of {allowed} for {self.attention} attention; got {phase!r}")
        check_shape(labels, "labels", "(N,)", dims=(images.shape[0],))
        result = self.run(images, sample=phase == "joint", detach_boxes=phase in ("pretrain", "classifier"),
                          frozen=phase == "apn")
        loss_classifier = sum(F.cross_entropy(y, labels) for y in result.logits) + F.cross_entropy(result.fused, labels)
        true_probs = torch.stack([y.softmax(dim=1).gather(1, labels[:, None]).squeeze(1) for y in result.logits],
                                 dim=1)  # (N, S)
        zero = loss_classifier.new_zeros(())
        loss_pretrain = self._pretrain_regression(result) if phase == "pretrain" else zero
        terms: dict[str, Tensor] = {"loss_classifier": loss_classifier, "loss_pretrain": loss_pretrain}
        if self.attention == "soft":
            terms["loss_rank"] = ranking_loss(true_probs, self.margin)
            loss = {"pretrain": loss_classifier + loss_pretrain, "classifier": loss_classifier,
                    "apn": terms["loss_rank"]}[phase]
        else:
            if phase == "joint":
                gains = (true_probs[:, 1:] - true_probs[:, :-1]).detach()  # (N, S-1) r_s
                where = reinforce_loss(result.log_probs, discounted_returns(gains, 1.0), result.baselines)
                loss_policy, loss_baseline = where.loss_policy, where.loss_baseline
            else:
                loss_policy, loss_baseline = zero, zero
            terms.update(loss_policy=loss_policy, loss_baseline=loss_baseline,
                         prob_gain=(true_probs[:, -1] - true_probs[:, 0]).mean().detach())
            loss = loss_classifier + loss_pretrain + loss_policy + loss_baseline
        accuracy = (result.fused.argmax(dim=1) == labels).float().mean().detach()
        terms.update(loss=loss, accuracy=accuracy, reward=accuracy,
                     box_half_side=result.boxes[..., 2].mean().detach(),
                     phase=torch.tensor(float(PHASES.index(phase))))
        for s, y in enumerate(result.logits, start=1):
            terms[f"accuracy_scale{s}"] = (y.argmax(dim=1) == labels).float().mean().detach()
        return terms

    def losses(self, inputs: Tensor, labels: Tensor) -> dict[str, Tensor]:
        """The current phase's losses: ``loss`` attached, the rest detached (does not advance the clock)."""
        return {k: v if k == "loss" else v.detach() for k, v in self.loss_terms(inputs, labels).items()}

    def train_losses(self, env, obs: Any = None) -> tuple[dict[str, Tensor], Any]:
        """One update: this batch's losses in the current phase, then the clock ``updates`` advances."""
        inputs, labels = self.scene_inputs(env), env.scene()[1].clone()
        env.reset()  # draw the next batch of scenes
        losses = self.losses(inputs, labels)
        self.updates.add_(1)
        return losses, obs

    # -- the actor-critic trainers' contract (agents.contract.PolicyAgent), hard attention ----------

    def collect(self, env, obs: Any = None) -> tuple[Episodes, Any]:
        """One batch of scenes zoomed with sampled boxes, without gradient, kept for :meth:`replay`: an episode
        of ``S - 1`` steps per image, step ``s`` choosing box ``s`` from scale ``s``'s features, its reward the
        gain in true-class probability ``r_s = p_t(s+1) - p_t(s)`` and its value the baseline head ``b_s``.
        One update of the schedule (the clock ``updates`` advances), which must be in its joint phase."""
        if self.attention != "hard" or self.phase != "joint":
            raise ValueError(f"the actor-critic trainers train hard RA-CNN's joint phase; this model is "
                             f"{self.attention}, in phase {self.phase!r}")
        images, labels = self.scene_inputs(env), env.scene()[1].clone()
        env.reset()  # draw the next batch of scenes
        with torch.no_grad():
            result = self.run(images, sample=True)
            true_probs = torch.stack([y.softmax(dim=1).gather(1, labels[:, None]).squeeze(1) for y in result.logits],
                                     dim=1)  # (N, S)
        self.updates.add_(1)
        rewards = true_probs[:, 1:] - true_probs[:, :-1]  # (N, S-1)
        accuracy = (result.fused.argmax(dim=1) == labels).float().mean()
        episodes = Episodes(rewards, result.baselines, result.log_probs, torch.ones_like(rewards, dtype=torch.bool),
                            {"scales": torch.stack(result.inputs, dim=1), "draws": result.draws, "labels": labels},
                            stats={"accuracy": accuracy, "reward": accuracy,
                                   "prob_gain": (true_probs[:, -1] - true_probs[:, 0]).mean()})
        return episodes, obs

    def replay(self, episodes: Episodes) -> Replayed:
        """The stored zooms through the current CNNs, fusion and APNs: the boxes' ``log pi``, the baselines,
        the APN policies' entropies and the cross-entropies (scales and fused)."""
        scales, draws, labels = (episodes.inputs[k] for k in ("scales", "draws", "labels"))
        logits, descriptors, log_probs, entropies, values = [], [], [], [], []
        for s in range(self.scales):
            _, pooled, descriptor, scale_logits = self.cnns[s](scales[:, s])
            logits.append(scale_logits)
            descriptors.append(F.normalize(descriptor, dim=1))
            if s < self.scales - 1:
                hidden = self.apns[s](pooled.flatten(1).detach())  # as in run(): REINFORCE never reaches the CNNs
                log_probs.append(self.apns[s].policy.log_prob_pre_squash(hidden, draws[:, s]))
                entropies.append(self.apns[s].policy.entropy(hidden))
                values.append(self.baselines[s](hidden.detach()).squeeze(1))
        fused = self.fusion(torch.cat(descriptors, dim=1))
        supervised = sum(F.cross_entropy(y, labels) for y in logits) + F.cross_entropy(fused, labels)
        entropy = torch.stack(entropies, dim=1)  # (n, S-1)
        return Replayed(torch.stack(log_probs, dim=1), torch.stack(values, dim=1), entropy, {"box": entropy.detach()},
                        supervised)

    def eval_logits(self, inputs: Tensor) -> dict[str, Tensor]:
        """The fused logits (``accuracy``) and each scale's (``accuracy_scale1`` .. ``accuracy_scale{S}``), mean boxes."""
        result = self.run(inputs)
        return {"accuracy": result.fused, **{f"accuracy_scale{s}": y for s, y in enumerate(result.logits, start=1)}}


def _maybe_frozen(module: nn.Module, frozen: bool) -> Callable[..., Any]:
    """``module`` itself, or (frozen) a call of it on detached copies of its parameters: gradient flows
    through to the inputs, none reaches the parameters' ``.grad``."""
    if not frozen:
        return module
    detached = {name: p.detach() for name, p in module.named_parameters()}
    return lambda *args: functional_call(module, detached, args)
