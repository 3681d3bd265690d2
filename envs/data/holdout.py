"""A validation split carved from a training split: :func:`hold_out`.

Model selection (recipes, options, budgets) must not look at the test split; it looks at ``count`` items held
out of the training split instead. Which items are held out depends on the training split and ``count`` alone
(a fixed permutation, :data:`HOLDOUT_SEED`), never on a run's seed or agent, so every run that holds out
``count`` items trains on the same rest and is validated on the same items.
"""

from __future__ import annotations

import dataclasses
from typing import TypeVar

import torch

from envs.data.folder import ImageFolderDataset
from glimpse.checks import ArgumentError
from envs.data.records import substitute

__all__ = ["HOLDOUT_SEED", "VALIDATION_SPLITS", "held_out_indices", "hold_out"]

#: Seed of the permutation that picks the held-out items (fixed: the same items for every run).
HOLDOUT_SEED = 0x5A11D
#: What :func:`hold_out` returns: the items trained on, or the items held out.
VALIDATION_SPLITS = ("train", "val")

D = TypeVar("D")


def held_out_indices(size: int, count: int) -> torch.Tensor:
    """``(count,)`` sorted indices of the items held out of a training split of ``size`` items: the first
    ``count`` of a fixed permutation of ``range(size)``. ``count`` of ``size`` must leave items to train on."""
    if isinstance(count, bool) or not isinstance(count, int) or count < 1:
        raise ArgumentError("val_size", f"{{name}} must be a positive int (items held out of the training split); "
                                        f"got {count!r}")
    if count >= size:
        raise ArgumentError("val_size", f"{{name}}{{=}}{count} leaves nothing to train on: the training split holds "
                                        f"{size} items; hold out fewer")
    order = torch.randperm(size, generator=torch.Generator().manual_seed(HOLDOUT_SEED))
    return order[:count].sort().values


def hold_out(dataset: D, count: int, split: str) -> D:
    """The part of training split ``dataset`` (a :class:`~envs.data.DigitDataset` or
    :class:`~envs.data.ImageFolderDataset`) that ``split`` names when ``count`` items are held out for
    validation: ``"train"``, the others, in their order; ``"val"``, the held-out ones (:func:`held_out_indices`),
    in their order. The part replaces ``dataset`` in the datasets being recorded (:func:`envs.data.recording`),
    so a run's provenance describes the items it used.

    Raises:
        ValueError: ``dataset`` is not a training split, ``split`` is neither ``"train"`` nor ``"val"``, or
            ``count`` is not in ``[1, len(dataset))``.
    """
    if dataset.split != "train":
        raise ValueError(f"a validation split is held out of the training split; got the {dataset.split!r} split")
    if split not in VALIDATION_SPLITS:
        raise ValueError(f"split must be one of {VALIDATION_SPLITS}; got {split!r}")
    size = len(dataset)
    held = held_out_indices(size, count)
    keep = torch.ones(size, dtype=torch.bool)
    keep[held] = False
    rows = held if split == "val" else keep.nonzero().squeeze(1)
    what = (f"{count} items held out of its {size} for validation" if split == "val"
            else f"{size - count} of its {size} items, {count} held out for validation")
    changes = dict(images=dataset.images[rows], labels=dataset.labels[rows], split=split,
                   source=f"{dataset.source}; {what}")
    if isinstance(dataset, ImageFolderDataset):  # its files name each image (a digit set's, the IDX pair)
        changes["files"] = tuple(dataset.files[i] for i in rows.tolist())
    part = dataclasses.replace(dataset, **changes)
    return substitute(dataset, part)
