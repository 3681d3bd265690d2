"""A run's numerical health: :func:`check_update` reads an update's losses and stops training
(:class:`agents.scripting.TrainingStopped`) on a non-finite loss or gradient before the step,
:func:`check_parameters` on non-finite weights before they are saved, and :func:`diverged` says in one
line why a diverged model's forward pass failed. Under ``torchrun`` every rank stops alike."""

from __future__ import annotations

import math
import re
from typing import Any

import torch

from agents import distributed
from agents.scripting import TrainingStopped

__all__ = ["check_update", "check_parameters", "diverged"]


def check_update(losses: dict[str, Any], model: torch.nn.Module, update: int) -> dict[str, float]:
    """After ``backward()``: the update's logged values as floats, read in one host synchronisation,
    or a :class:`TrainingStopped` naming the non-finite loss terms (or the parameters whose gradients are
    non-finite) and the update, before a bad step can reach the weights.

    Under torchrun (after :func:`agents.distributed.average_gradients`) the losses are first averaged
    over the ranks, so that every rank logs and checks the global batch's values and all of them stop
    together, with the same message."""
    names = [name for name, value in losses.items() if name != "loss"]
    grads = [p.grad for p in model.parameters() if p.grad is not None]
    total = losses["loss"].detach().float().reshape(())
    norm = torch.nn.utils.get_total_norm(grads).float() if grads else torch.zeros((), device=total.device)
    scalars = [total, norm, *(torch.as_tensor(losses[n]).detach().reshape(()) for n in names)]
    shared = distributed.is_active()
    if shared:  # the global batch's values: the mean over the ranks' equal shares
        values = distributed.all_reduce_mean(torch.stack([v.float().to(total.device) for v in scalars])).tolist()
    elif total.device.type == "cpu":  # nothing to synchronise: plain reads are the cheapest
        values = [float(v) for v in scalars]
    else:  # one transfer for all of them
        values = torch.stack([v.float().to(total.device) for v in scalars]).tolist()
    if math.isfinite(values[0]) and math.isfinite(values[1]):
        return dict(zip(names, values[2:]))
    error = TrainingStopped(_stop_reason(values, names, model, update))
    raise distributed.raised_everywhere(error) if shared else error


def _stop_reason(values: list[float], names: list[str], model: torch.nn.Module, update: int) -> str:
    """:func:`check_update`'s message for non-finite ``values`` (loss, gradient norm, named terms)."""
    bad = [f"{n} = {v}" for n, v in zip(["loss", *names], [values[0], *values[2:]])
           if not math.isfinite(v) and (n.startswith("loss") or n.endswith("_loss"))]
    if bad:
        return f"update {update}: non-finite {', '.join(bad)}"
    params = [n for n, p in model.named_parameters() if p.grad is not None and not torch.isfinite(p.grad).all()]
    if not params:  # every gradient is finite, their total norm is not
        return (f"update {update}: the loss is finite ({values[0]:.4g}) but the gradients' total norm overflows "
                f"float32 (the model is diverging)")
    return (f"update {update}: the loss is finite ({values[0]:.4g}) but the gradients of "
            f"{', '.join(params[:3])}{' ...' if len(params) > 3 else ''} are not")


def check_parameters(model: torch.nn.Module, when: str) -> None:
    """A :class:`TrainingStopped` naming the first non-finite parameters, before they can be saved (under
    torchrun the ranks' parameters are identical: every rank stops alike)."""
    bad = [n for n, p in model.named_parameters() if not torch.isfinite(p).all()]
    if bad:
        error = TrainingStopped(f"{when}: non-finite parameters {', '.join(bad[:3])}{' ...' if len(bad) > 3 else ''}")
        raise distributed.raised_everywhere(error) if distributed.is_active() else error


def diverged(error: ValueError) -> str:
    """One line on a forward pass that a diverged model made fail."""
    found = re.search(r"Expected parameter (\w+) .* of distribution (\w+)", str(error))
    if found:
        return f"non-finite {found.group(1)} of the {found.group(2)} policy in the forward pass (the model diverged)"
    return f"the forward pass failed ({str(error).splitlines()[0][:200]}): the model has likely diverged"
