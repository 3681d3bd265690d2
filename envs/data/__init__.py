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

Fashion-MNIST with none of 1-4 raises ``FileNotFoundError`` saying how to get it (a :class:`DataNotFoundError`,
whose ``field`` is ``"data_dir"``, as for a ``data_dir`` without the files).

Which source was used is announced once per process for each ``(name, split, source)``: a
``logging`` INFO line on the ``envs.data`` logger for the full datasets, the warning for the subset.
Loaded arrays are cached in-process (keyed on the resolved files), so building many environments
reads the files once; the returned tensors are shared between calls, so clone before writing to them.

Image folders. ``load_image_folder(root, split, size=...)`` reads any ImageFolder-style directory of JPEG
and PNG files (CUB-200, a subset of ImageNet, your own photos) into an :class:`ImageFolderDataset` of
``uint8`` pictures ``(M, C, size, size)``; see that function for the layouts, the split rule and the
resizing. It is the data of the env's ``task="folder"``.

Modules, one per source or job (this ``__init__`` only re-exports their public names):

- :mod:`envs.data.digits`: :class:`DigitDataset` and :func:`load_digits`, the search order above.
- :mod:`envs.data.sources`: names, splits, official file names, :data:`MIRRORS` and :data:`CHECKSUMS`.
- :mod:`envs.data.idx`: finding a split's IDX files on disk (sources 1 and 2) and reading them (:func:`read_idx`).
- :mod:`envs.data.download`: the cache and downloads (sources 3 and 4), file digests.
- :mod:`envs.data.offline`: the bundled subset (source 5) and :func:`rebuild_offline`.
- :mod:`envs.data.folder`: image folders, :func:`load_image_folder`.
- :mod:`envs.data.holdout`: a validation split held out of a training split (:func:`hold_out`).
- :mod:`envs.data.announce`: announcing each source once per process.
- :mod:`envs.data.records`: provenance, what a run records of its data: ``with recording() as loaded:
  ...`` collects every dataset loaded inside the block, :func:`provenance` says where one came from.
- :mod:`envs.data.testing`: ``reset_for_tests``.
- ``envs/data/__main__.py``: the command line, ``python -m envs.data [--download NAME | --rebuild-offline]``.

Version History:
    * v0: MNIST / Fashion-MNIST from IDX files, Debian, cache, download, and the bundled 5k subset.
    * v0 (added): ImageFolder-style directories of JPEG/PNG images (:func:`load_image_folder`).
    * v0 (added): :func:`recording` and :func:`provenance`, what a run records of its data; a
      ``$GLIMPSE_DATA_DIR`` without the files is an error instead of falling through.
    * v0 (changed): downloads and cached files verified by SHA-256 (``checksums`` takes SHA-256 only), on
      every use; HTTPS mirrors only; ``download=True`` fetches both splits, and a cache holding part of
      a dataset is refused. Image folders need two classes and announce each class's train/test counts.
"""

from __future__ import annotations

from envs.data.announce import logger  # noqa: F401  (envs.data.logger, the "envs.data" logger, as before)
from envs.data.digits import DigitDataset, load_digits
from envs.data.download import DOWNLOAD_TIMEOUT_S, DownloadError, default_cache_dir
from envs.data.folder import COUNTS_LISTED, IMAGE_EXTENSIONS, TEST_EVERY, ImageFolderDataset, load_image_folder
from envs.data.idx import IMAGES_MAGIC, LABELS_MAGIC, SYSTEM_DIRS, TORCHVISION_FOLDERS, DataNotFoundError, read_idx
from envs.data.offline import (
    OFFLINE_NPZ,
    OFFLINE_SHA256,
    OFFLINE_SIZE,
    OFFLINE_TRAIN_PER_CLASS,
    OfflineSubsetWarning,
    rebuild_offline,
)
from envs.data.holdout import HOLDOUT_SEED, hold_out, held_out_indices
from envs.data.records import provenance, provenance_differences, recording
from envs.data.sources import CHECKSUMS, DATA_DIR_ENV, FILES, IMAGE_SIZE, MIRRORS, NAMES, NUM_CLASSES, SPLITS

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
    "DataNotFoundError",
    "OfflineSubsetWarning",
    "NAMES",
    "SPLITS",
    "hold_out",
    "held_out_indices",
    "HOLDOUT_SEED",
    "recording",
    "provenance",
    "provenance_differences",
    "MIRRORS",
    "CHECKSUMS",
    # the sources' constants, public names of envs.data since before it was split into modules
    "NUM_CLASSES",
    "IMAGE_SIZE",
    "DATA_DIR_ENV",
    "FILES",
    "TORCHVISION_FOLDERS",
    "SYSTEM_DIRS",
    "DOWNLOAD_TIMEOUT_S",
    "OFFLINE_NPZ",
    "OFFLINE_SHA256",
    "OFFLINE_SIZE",
    "OFFLINE_TRAIN_PER_CLASS",
    "IMAGES_MAGIC",
    "LABELS_MAGIC",
    "TEST_EVERY",
    "COUNTS_LISTED",
]


def __getattr__(name: str):
    # envs.data.main, the command line's entry point, imported on first use: importing envs.data.__main__
    # here would make `python -m envs.data` find it already imported (runpy warns, and it would run twice).
    if name == "main":
        from envs.data.__main__ import main

        return main
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
