"""MNIST and Fashion-MNIST: :func:`load_digits` returns one split as a :class:`DigitDataset` of ``uint8``
images ``(N, 28, 28)`` and ``int64`` labels ``(N,)``, from the first source that has it, in the search
order that :mod:`envs.data` documents (IDX files, Debian's package, the cache, a download, the offline
subset).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

from envs.data.announce import announce
from envs.data.download import default_cache_dir, from_cache, sha256_table
from envs.data.idx import DataNotFoundError, cache_key, describe_searched, find_local, load_idx_pair
from envs.data.offline import OFFLINE_NPZ, OFFLINE_SIZE, OFFLINE_TRAIN_PER_CLASS, load_offline_split
from envs.data.records import record
from envs.data.sources import CHECKSUMS, DATA_DIR_ENV, IMAGE_SIZE, MIRRORS, NAMES, NUM_CLASSES, SPLITS

__all__ = ["DigitDataset", "load_digits"]


@dataclass(frozen=True, eq=False)
class DigitDataset:
    """One split of a 10-class, 28x28 grayscale dataset, in memory.

    Attributes:
        images: ``(N, 28, 28)`` ``torch.uint8``, pixel values 0 (background) to 255 (ink).
        labels: ``(N,)`` ``torch.int64`` class indices in ``[0, num_classes)``.
        name: ``"mnist"`` or ``"fashion-mnist"``.
        split: ``"train"`` or ``"test"``.
        source: where the data came from, in words (files and folder, or the offline subset).
        num_classes: 10.
        files: the IDX files ``(images, labels)`` it was read from; empty for the offline subset.

    The tensors may be shared with other callers of :func:`load_digits`; clone before writing.
    """

    images: torch.Tensor
    labels: torch.Tensor
    name: str
    split: str
    source: str
    num_classes: int = NUM_CLASSES
    files: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.images.dtype != torch.uint8 or tuple(self.images.shape[1:]) != (IMAGE_SIZE, IMAGE_SIZE):
            raise ValueError(
                f"images must be uint8 (N, {IMAGE_SIZE}, {IMAGE_SIZE}); "
                f"got {self.images.dtype} {tuple(self.images.shape)}"
            )
        if self.labels.dtype != torch.int64 or self.labels.shape != (self.images.shape[0],):
            raise ValueError(
                f"labels must be int64 ({self.images.shape[0]},); got {self.labels.dtype} {tuple(self.labels.shape)}"
            )

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    def __repr__(self) -> str:
        return f"DigitDataset(name={self.name!r}, split={self.split!r}, n={len(self)}, source={self.source!r})"


def load_digits(
    name: str = "mnist",
    split: str = "train",
    *,
    data_dir: str | os.PathLike | None = None,
    download: bool = False,
    cache_dir: str | os.PathLike | None = None,
    mirrors: Sequence[str] | None = None,
    checksums: Mapping[str, str] | None = None,
) -> DigitDataset:
    """Load one split of MNIST or Fashion-MNIST from the first source that has it (see :mod:`envs.data`).

    Args:
        name: ``"mnist"`` or ``"fashion-mnist"``.
        split: ``"train"`` (60,000 images; 4,000 for the offline subset) or ``"test"`` (10,000; 1,000).
        data_dir: a folder of IDX files to use; overrides ``$GLIMPSE_DATA_DIR``. Raises
            ``FileNotFoundError`` if the split's two files are not in it.
        download: fetch the official files into the cache when no other source has them: all four
            (both splits), since a dataset's splits must come from one source.
        cache_dir: where downloads are kept and looked for; default :func:`default_cache_dir`.
        mirrors: base URLs to download from, in order; default ``MIRRORS[name]``.
        checksums: official file name (``"train-images-idx3-ubyte.gz"``) to its SHA-256 (64 hex digits);
            default ``CHECKSUMS[name]``. Downloads and cached files are checked against it; a file without
            a digest is never downloaded nor read from the cache.

    Returns:
        A :class:`DigitDataset` with ``images`` ``(N, 28, 28)`` uint8 and ``labels`` ``(N,)`` int64.

    Raises:
        ValueError: an unknown name or split, a ``checksums`` entry that is not a SHA-256, an IDX file
            that is malformed, or a cached file whose digest is not the expected one (the message names
            the file and says to delete it).
        FileNotFoundError: ``data_dir`` lacks the files, the cache holds only some of the dataset's four
            files (and ``download`` is off), or Fashion-MNIST was found nowhere.
        DownloadError: ``download=True`` and no mirror delivered a verified file.
    """
    if name not in NAMES:
        raise ValueError(f"name must be one of {NAMES}; got {name!r}")
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}; got {split!r}")

    table = sha256_table(CHECKSUMS[name] if checksums is None else checksums)
    pair = find_local(name, split, data_dir)
    cache_root = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    if pair is None:
        fetch_from = tuple(MIRRORS[name] if mirrors is None else mirrors) if download else None
        pair = from_cache(name, split, cache_root / name, table, fetch_from)
    if pair is not None:
        images, labels = load_idx_pair(*cache_key(pair))
        source = f"IDX files {pair[0].name} + {pair[1].name} in {pair[0].parent}"
        announce(name, split, source, len(labels), subset=False)
        return record(DigitDataset(images, labels, name, split, source, files=tuple(str(p) for p in pair)))

    if name == "mnist":
        images, labels = load_offline_split(split)
        source = (
            f"offline MNIST subset {OFFLINE_NPZ.name} ({len(labels)} of {OFFLINE_SIZE} digits, "
            f"{split} part of a fixed per-class {OFFLINE_TRAIN_PER_CLASS}/"
            f"{OFFLINE_SIZE // NUM_CLASSES - OFFLINE_TRAIN_PER_CLASS} split)"
        )
        announce(name, split, source, len(labels), subset=True)
        return record(DigitDataset(images, labels, name, split, source))

    raise DataNotFoundError(
        "data_dir",
        f"Fashion-MNIST ({split}) was not found. Searched: {describe_searched(name, data_dir, cache_root)}. "
        f"To get it, any one of: `apt-get install dataset-fashion-mnist` (Debian/Ubuntu); "
        f"`python -m envs.data --download fashion-mnist` (or load_digits(..., download=True)); or put the four "
        f"IDX files (.gz or not) in a folder and set {DATA_DIR_ENV}=<that folder> or pass {{name}}{{=}}."
    )
