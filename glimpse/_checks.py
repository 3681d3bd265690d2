"""Input validation shared by every public function of the core.

One helper, so every error reports what arrived in the same words.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

__all__ = ["check_shape", "check_finite", "check_positive_int"]


def check_shape(tensor: object, name: str, pattern: str, dims: Sequence[int | None] | None = None) -> None:
    """Raise ``ValueError`` unless ``tensor`` is a ``Tensor`` of the given rank (and sizes).

    Args:
        tensor: the argument to check.
        name: the argument's name, used in the message.
        pattern: the expected layout for the message, e.g. ``"(B, C, H, W)"``.
        dims: one entry per dimension; an int fixes that size, ``None`` leaves it free.
            When omitted, only the rank (the number of comma-separated names in ``pattern``) is checked.
    """
    if not isinstance(tensor, Tensor):
        raise TypeError(f"{name} must be a torch.Tensor {pattern}; got {type(tensor).__name__}")
    rank = len(dims) if dims is not None else pattern.count(",") + 1
    if tensor.dim() != rank:
        raise ValueError(f"{name} must be {pattern}; got {tuple(tensor.shape)}")
    if dims is not None:
        for size, want in zip(tensor.shape, dims):
            if want is not None and size != want:
                raise ValueError(f"{name} must be {pattern}; got {tuple(tensor.shape)}")


def check_finite(tensor: Tensor, name: str) -> None:
    """Raise ``ValueError`` if ``tensor`` holds a NaN or an infinity."""
    if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
        raise ValueError(f"{name} must be finite; got NaN or inf in {tuple(tensor.shape)}")


def check_positive_int(value: object, name: str) -> int:
    """Return ``value`` as an int, or raise ``ValueError`` if it is not an integer >= 1."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be an integer >= 1; got {value!r}")
    return value
