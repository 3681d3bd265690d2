"""Code that keeps tensors across calls runs outside ``torch.inference_mode``.

A tensor made under ``torch.inference_mode`` is an *inference tensor*: outside that mode it can no longer
be updated in place. Buffers, cached constants and environment state made during one call and updated by
later ones would then break the first time a caller leaves inference mode (evaluating under it, training
after). Whatever makes or updates such tensors is decorated with :func:`outside_inference_mode`.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import TypeVar

import torch

__all__ = ["outside_inference_mode"]

F = TypeVar("F", bound=Callable)


def outside_inference_mode(fn: F) -> F:
    """Run ``fn`` with inference mode off and gradient recording as the caller had it (off inside
    ``torch.inference_mode``), so the tensors it makes are normal tensors."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        grad = torch.is_grad_enabled()
        with torch.inference_mode(False), torch.set_grad_enabled(grad):
            return fn(*args, **kwargs)

    return wrapper  # type: ignore[return-value]
