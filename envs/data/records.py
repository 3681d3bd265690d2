"""Provenance: what a run records of its data. ``with recording() as loaded: ...`` collects every dataset
loaded inside the block (cache hits too); :func:`provenance` turns one into a JSON-able record of where it
came from (kind, path, checksums, size), which the training scripts store with every run and check when
it is resumed or evaluated (:func:`provenance_differences`).

The module is not called ``provenance`` so that ``envs.data.provenance`` stays the function.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from envs.data.download import file_digest, stamp
from envs.data.offline import OFFLINE_NPZ, OFFLINE_SHA256

if TYPE_CHECKING:
    from envs.data.digits import DigitDataset
    from envs.data.folder import ImageFolderDataset

__all__ = ["recording", "record", "substitute", "provenance", "provenance_differences"]

_recorders: list[list] = []


@contextlib.contextmanager
def recording():
    """``with recording() as loaded:``: ``loaded`` collects every :class:`DigitDataset` and
    :class:`ImageFolderDataset` returned inside the block, in order (cached loads included)."""
    loaded: list = []
    _recorders.append(loaded)
    try:
        yield loaded
    finally:  # by identity: nested recorders may hold equal lists
        del _recorders[next(i for i, r in enumerate(_recorders) if r is loaded)]


def record(dataset):
    for loaded in _recorders:
        loaded.append(dataset)
    return dataset


def substitute(whole, part):
    """``part``, recorded in place of ``whole`` (its last recording) by every :func:`recording` block: a scene
    that uses a part of a loaded dataset (:func:`envs.data.hold_out`) records the part it uses."""
    for loaded in _recorders:
        at = next((i for i in range(len(loaded) - 1, -1, -1) if loaded[i] is whole), None)
        if at is None:
            loaded.append(part)
        else:
            loaded[at] = part
    return part


def provenance(dataset: DigitDataset | ImageFolderDataset) -> dict:
    """Where ``dataset`` came from, as a JSON-able dict.

    Keys: ``kind`` (``"idx"``, ``"offline"`` or ``"image-folder"``), ``dataset`` (``"mnist"``, ...,
    or the folder), ``split``, ``size`` (examples), ``path`` (the folder; the offline subset's file),
    ``sha256`` (of the content: for digits the images' bytes then the labels as little-endian int64,
    the same definition as :data:`OFFLINE_SHA256`, so packed and unpacked copies agree; for a folder, of
    every file's relative name and bytes), ``files`` (IDX only: each file's own SHA-256), ``source``
    (in words). The offline subset is named by ``name`` (its file) and its published digest.
    """
    from envs.data.folder import ImageFolderDataset  # here, not above: envs.data.folder imports this module

    if isinstance(dataset, ImageFolderDataset):
        root = Path(dataset.root)
        return {"kind": "image-folder", "dataset": str(root), "split": dataset.split, "size": len(dataset),
                "path": str(root.resolve()), "classes": dataset.num_classes,
                "sha256": _folder_digest(tuple(dataset.files), str(root)), "source": dataset.source}
    record = {"dataset": dataset.name, "split": dataset.split, "size": len(dataset)}
    if not dataset.files:
        return {"kind": "offline", **record, "name": OFFLINE_NPZ.name, "path": str(OFFLINE_NPZ),
                "sha256": _arrays_digest(dataset.images, dataset.labels), "offline_sha256": OFFLINE_SHA256,
                "source": dataset.source}
    files = [Path(f).resolve() for f in dataset.files]
    return {"kind": "idx", **record, "path": str(files[0].parent),
            "sha256": _arrays_digest(dataset.images, dataset.labels),
            "files": {f.name: file_digest(str(f), *stamp(f)) for f in files}, "source": dataset.source}


# What identifies the data, not where they were read from: a moved copy of the same files is the same data.
_IDENTITY = ("kind", "dataset", "split", "size", "sha256")


def provenance_differences(recorded: dict, current: dict) -> list[str]:
    """How two :func:`provenance` records differ in what identifies the data (kind, dataset, split, size,
    content digest; never the path), in words; empty when they are the same data. An image folder's
    ``dataset`` is its path, so two folders are compared by kind, split, size and digest only (the digest
    covers every file's name relative to the folder and its bytes)."""
    folders = recorded.get("kind") == current.get("kind") == "image-folder"
    return [f"{key} {recorded.get(key)!r} -> {current.get(key)!r}" for key in _IDENTITY
            if recorded.get(key) != current.get(key) and not (folders and key == "dataset")]


def _arrays_digest(images: torch.Tensor, labels: torch.Tensor) -> str:
    digest = hashlib.sha256(images.cpu().numpy().tobytes())
    digest.update(labels.cpu().numpy().astype("<i8").tobytes())
    return digest.hexdigest()


def _folder_digest(files: tuple[str, ...], root: str) -> str:
    digest = hashlib.sha256()
    for f in files:
        digest.update(os.path.relpath(f, root).encode() + b"\0")
        digest.update(file_digest(f, *stamp(Path(f))).encode())
    return digest.hexdigest()
