"""Helpers shared by :mod:`glimpse.reinforce` and :mod:`glimpse.policy_gradient` (private to ``glimpse``).

Both modules take per-step tensors ``(B, T)`` (time last) with an optional bool ``mask`` ``(B, T)``,
``True`` = valid step. These helpers check that mask and the scalar hyperparameters, and reduce over
the valid entries, so the two modules treat masks and report bad values in the same words.
"""

from __future__ import annotations

import torch
from torch import Tensor

from glimpse.checks import check_shape

__all__ = ["check_mask", "check_unit_interval", "check_number", "masked_mean", "masked_standardize"]


def check_mask(mask: Tensor | None, like: Tensor, like_name: str) -> None:
    """Raise ``ValueError`` unless ``mask`` is ``None`` or a bool tensor shaped like ``like`` ``(B, T)``."""
    if mask is None:
        return
    check_shape(mask, "mask", "(B, T)", dims=tuple(like.shape))
    if mask.dtype != torch.bool:
        raise ValueError(f"mask must be a bool tensor (True = valid step) shaped like {like_name}; got dtype {mask.dtype}")


def check_unit_interval(value: object, name: str) -> float:
    """Return ``value`` as a ``float``, or raise ``ValueError`` unless it is a number in ``[0, 1]`` (not a bool)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= value <= 1.0:
        raise ValueError(f"{name} must be a number in [0, 1]; got {value!r}")
    return float(value)


def check_number(value: object, name: str, *, strictly_positive: bool) -> float:
    """Return ``value`` as a ``float``, or raise ``ValueError`` unless it is a finite number ``> 0``
    (``strictly_positive``) or ``>= 0`` (not a bool)."""
    bound = "> 0" if strictly_positive else ">= 0"
    ok = not isinstance(value, bool) and isinstance(value, (int, float)) and value < float("inf")
    if not ok or (value <= 0 if strictly_positive else value < 0):
        raise ValueError(f"{name} must be a number {bound}; got {value!r}")
    return float(value)


def masked_mean(x: Tensor, mask: Tensor | None) -> Tensor:
    """Mean of ``x`` over the entries where ``mask`` is ``True`` (all entries when ``mask`` is ``None``).

    ``where``, not a product, so a NaN or infinity on an invalid entry never reaches the result or its
    gradient. No valid entry gives 0 (the sum 0 over a count clamped to 1), not NaN.
    """
    if mask is None:
        return x.mean()
    return torch.where(mask, x, 0.0).sum() / mask.sum().clamp(min=1)


def masked_standardize(x: Tensor, mask: Tensor | None, eps: float = 1e-8) -> Tensor:
    """``(x - mean) / (std + eps)`` with the mean and the population std (divide by ``n``) of the valid
    entries. Invalid entries are standardised alike (so may be anything, NaN included); callers zero them."""
    mean = masked_mean(x, mask)
    var = masked_mean((x - mean) ** 2, mask)
    return (x - mean) / (var.sqrt() + eps)
