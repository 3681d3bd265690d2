"""FLOPs of classifying one image: the cost argument of RAM (Mnih et al., NIPS 2014, Section 1).

A full-image network's cost grows with the canvas's pixels; RAM's with its number of glimpses, whatever
the canvas size. :func:`flops_per_image` measures either with ``torch.utils.flop_counter.FlopCounterMode``
on a dummy batch of one.

What is counted: the operations ``FlopCounterMode`` knows, which are the matrix multiplications and
convolutions (2 FLOPs per multiply-accumulate). Bias additions, activations, softmaxes and, for RAM, the
retina's resampling (done by the env, not the model) are not counted.

What a forward pass is:

* Full-image models (:mod:`agents.baselines`): ``model(zeros(1, C, H, W))``.
* Every agent of :mod:`agents.common`'s contract: its ``inference(env)``, which runs what inference
  needs and nothing training-only (e.g. :meth:`agents.recurrent.HardRecurrentAgent.inference`: ``T`` glimpse and core steps,
  ``T - 1`` location decisions and the classifier once; no baseline). Pixels the env or a sampler
  resamples are not counted.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from agents.contract import Agent
from agents.recurrent import HardRecurrentAgent, episode_steps

__all__ = ["flops_per_image"]


def flops_per_image(model: nn.Module, env_or_shapes) -> int:
    """FLOPs of one image's forward pass (matmuls and convolutions; see the module docstring).

    Args:
        model: an agent with ``inference`` (the contract of :mod:`agents.common`), or any classifier of
            ``(N, C, H, W)`` images.
        env_or_shapes: the (reset) env it runs on; or for RAM the number of glimpses ``T`` (int); or for
            a full-image model the canvas shape ``(C, H, W)``.

    Returns:
        The total FLOP count, an int.

    Example:
        >>> from agents.baselines import FCClassifier
        >>> flops_per_image(FCClassifier((1, 4, 4), 3, hidden=5), (1, 4, 4))  # 2 * (16*5 + 5*5 + 5*3)
        240
    """
    was_training = model.training
    model.eval()
    counter = FlopCounterMode(display=False)
    with torch.no_grad(), counter:
        if isinstance(model, HardRecurrentAgent):
            model.inference(_glimpses(env_or_shapes))
        elif hasattr(env_or_shapes, "single_observation_space") and isinstance(model, Agent):
            model.inference(env_or_shapes)
        else:
            model(torch.zeros(1, *_canvas_shape(env_or_shapes)))
    model.train(was_training)
    return int(counter.get_total_flops())


def _glimpses(env_or_shapes) -> int:
    if isinstance(env_or_shapes, int) and not isinstance(env_or_shapes, bool):
        if env_or_shapes < 1:
            raise ValueError(f"the number of glimpses must be >= 1; got {env_or_shapes}")
        return env_or_shapes
    if hasattr(env_or_shapes, "single_observation_space"):
        return episode_steps(env_or_shapes)
    raise TypeError(f"for RAM pass an env or the number of glimpses (int); got {type(env_or_shapes).__name__}")


def _canvas_shape(env_or_shapes) -> tuple[int, ...]:
    if hasattr(env_or_shapes, "canvas_shape"):
        return tuple(env_or_shapes.canvas_shape)
    if isinstance(env_or_shapes, Sequence) and len(env_or_shapes) == 3:
        return tuple(int(s) for s in env_or_shapes)
    raise TypeError(f"for a full-image model pass an env or its canvas shape (C, H, W); got {env_or_shapes!r}")
