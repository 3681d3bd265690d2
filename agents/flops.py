"""FLOPs of classifying one image: the cost argument of RAM (Mnih et al., NIPS 2014, Section 1).

A full-image network's cost grows with the canvas's pixels; RAM's with its number of glimpses, whatever
the canvas size. :func:`flops_per_image` measures either with ``torch.utils.flop_counter.FlopCounterMode``
on a dummy batch of one.

What is counted: the operations ``FlopCounterMode`` knows, which are the matrix multiplications and
convolutions (2 FLOPs per multiply-accumulate). Bias additions, activations, softmaxes and, for RAM, the
retina's resampling (done by the env, not the model) are not counted.

What a forward pass is:

* Full-image models (:mod:`agents.baselines`): ``model(zeros(1, C, H, W))``.
* :class:`agents.ram.RAM`: what inference needs for ``T`` glimpses -- ``T`` glimpse- and core-network
  steps, ``T - 1`` location decisions (``l_T`` would only produce an unused observation), and the
  classifier once at the end (Catch: the paddle policy at every step). The baseline is training-only.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from agents.ram import RAM, episode_steps

__all__ = ["flops_per_image"]


def flops_per_image(model: nn.Module, env_or_shapes) -> int:
    """FLOPs of one image's forward pass (matmuls and convolutions; see the module docstring).

    Args:
        model: a :class:`~agents.ram.RAM`, or a full-image classifier taking ``(N, C, H, W)``.
        env_or_shapes: a :class:`envs.GlimpseVectorEnv` (its episode length for RAM, its
            ``canvas_shape`` otherwise), or for RAM the number of glimpses ``T`` (int), or for a
            full-image model the canvas shape ``(C, H, W)``.

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
        if isinstance(model, RAM):
            _ram_inference(model, _glimpses(env_or_shapes))
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


def _ram_inference(model: RAM, steps: int) -> None:
    """``steps`` glimpses of one image through ``model``, as :func:`agents.ram.rollout` runs them, minus training-only parts."""
    obs = {"glimpse": torch.zeros(1, *model.glimpse_shape), "location": torch.zeros(1, 2)}
    state = model.initial_state(1)
    for t in range(1, steps + 1):
        h, state = model.step(obs, state)  # (1, hidden)
        if t < steps:
            model.locator.mode(h)
        if model.decision == "catch":
            model.paddle.logits(h)
    if model.decision == "classify":
        model.classifier(h)
