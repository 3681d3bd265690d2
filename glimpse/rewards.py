"""Per-step prediction rewards: each step's prediction of the class, scored against the label.

The one definition of the dense reward for a prediction made at every glimpse, shared by the envs'
``reward_mode`` (:class:`envs.GlimpseVectorEnv`) and by agents that predict at every step.

Conventions: ``logits`` are ``(*, D)`` unnormalised class scores (softmax gives the prediction),
``labels`` ``(*)`` integer classes in ``[0, D)``; log-probabilities are in nats, ``<= 0``. The prediction
before the first glimpse is the uniform one, ``log p_0(y) = -log D`` (:func:`uniform_log_prob`).

Modes (:data:`PREDICTION_REWARDS`), for step ``t = 1 .. T`` with ``log p_t(y)`` the log-probability that
step ``t``'s prediction gives the true class ``y``:

- ``"log_prob"``: ``r_t = log p_t(y)``, the negative cross-entropy of the prediction (Active Perception
  Gym's per-step reward, there divided by ``log D``). The return rewards being right early and all along.
- ``"log_prob_gain"``: ``r_t = log p_t(y) - log p_{t-1}(y)``, what step ``t`` added. The undiscounted
  return telescopes to ``log p_T(y) + log D``: only the last prediction counts in total, each step is
  credited with its own part of it.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

__all__ = ["PREDICTION_REWARDS", "label_log_prob", "uniform_log_prob", "prediction_reward"]

PREDICTION_REWARDS = ("log_prob", "log_prob_gain")


def label_log_prob(logits: Tensor, labels: Tensor) -> Tensor:
    r"""``log softmax(logits)[label]``: the log-probability the prediction gives the true class.

    Shapes: ``logits`` ``(*, D)`` floating point, ``labels`` ``(*)`` integers in ``[0, D)``; returns ``(*)``
    in the dtype of ``logits`` (``-cross_entropy(logits, labels, reduction="none")``).

    Example:
        >>> label_log_prob(torch.tensor([[0.0, 0.0], [math.log(3.0), 0.0]]), torch.tensor([0, 0]))
        tensor([-0.6931, -0.2877])
    """
    if not isinstance(logits, Tensor) or not isinstance(labels, Tensor):
        raise TypeError(f"logits and labels must be torch tensors; got {type(logits).__name__} and "
                        f"{type(labels).__name__}")
    if logits.dim() == 0 or logits.shape[:-1] != labels.shape:
        raise ValueError(f"logits must be (*, D) for labels (*); got {tuple(logits.shape)} and {tuple(labels.shape)}")
    if not logits.is_floating_point():
        raise TypeError(f"logits must be a floating-point tensor; got {logits.dtype}")
    if labels.dtype.is_floating_point or labels.dtype.is_complex or labels.dtype == torch.bool:
        raise TypeError(f"labels must be an integer tensor; got {labels.dtype}")
    if labels.numel() and not bool(((labels >= 0) & (labels < logits.shape[-1])).all()):  # gather would fail on it
        raise ValueError(f"labels must lie in [0, {logits.shape[-1]}) for {logits.shape[-1]} classes; got values "
                         f"from {int(labels.min())} to {int(labels.max())}")
    return logits.log_softmax(dim=-1).gather(-1, labels.long().unsqueeze(-1)).squeeze(-1)


def uniform_log_prob(num_classes: int) -> float:
    """``-log D``: the log-probability of the true class before any prediction (the uniform one).

    Example:
        >>> round(uniform_log_prob(10), 4)
        -2.3026
    """
    return -math.log(num_classes)


def prediction_reward(log_prob: Tensor, previous_log_prob: Tensor, mode: str) -> Tensor:
    r"""Step ``t``'s reward from ``log p_t(y)`` and ``log p_{t-1}(y)``; see the module docstring.

    Shapes: ``log_prob`` and ``previous_log_prob`` ``(*)``, equal shapes (at step 1, ``previous_log_prob``
    is :func:`uniform_log_prob`); returns ``(*)``. ``"log_prob"`` ignores ``previous_log_prob``.

    Example:
        >>> log_probs = torch.tensor([-1.5, -0.5, -0.1])  # steps 1..3 of one episode
        >>> previous = torch.cat([torch.tensor([uniform_log_prob(10)]), log_probs[:-1]])
        >>> prediction_reward(log_probs, previous, "log_prob")
        tensor([-1.5000, -0.5000, -0.1000])
        >>> gains = prediction_reward(log_probs, previous, "log_prob_gain")
        >>> gains, round(float(gains.sum()), 4)  # log p_3(y) + log 10
        (tensor([0.8026, 1.0000, 0.4000]), 2.2026)
    """
    if mode not in PREDICTION_REWARDS:
        raise ValueError(f"mode must be one of {PREDICTION_REWARDS}; got {mode!r}")
    if log_prob.shape != previous_log_prob.shape:
        raise ValueError(f"log_prob and previous_log_prob must have equal shapes; got {tuple(log_prob.shape)} "
                         f"and {tuple(previous_log_prob.shape)}")
    return log_prob if mode == "log_prob" else log_prob - previous_log_prob
