"""IDX files on disk: finding a split's two files (in ``data_dir``, ``$GLIMPSE_DATA_DIR`` or a system
package's folder, in the layouts the package docs list) and reading them (:func:`read_idx`), with the
loaded arrays cached in-process on the files' names, sizes and times.
"""

from __future__ import annotations

import functools
import gzip
import os
import zlib
from pathlib import Path

import numpy as np
import torch

from envs.data.sources import DATA_DIR_ENV, FILES, IMAGE_SIZE, NUM_CLASSES
from glimpse.checks import ArgumentError

__all__ = [
    "DataNotFoundError",
    "read_idx",
    "load_idx_pair",
    "cache_key",
    "find_local",
    "describe_searched",
    "IMAGES_MAGIC",
    "LABELS_MAGIC",
    "TORCHVISION_FOLDERS",
    "SYSTEM_DIRS",
]


class DataNotFoundError(ArgumentError, FileNotFoundError):
    """Data not found where an argument said to look, or where one could say so: ``field`` names it
    (``"data_dir"``), so that a script names its flag instead (``--data-dir``)."""


# Folder names that torchvision uses, as <dir>/<folder>/raw/.
TORCHVISION_FOLDERS = {"mnist": "MNIST", "fashion-mnist": "FashionMNIST"}

# Folders that system packages install to; tests replace this to hide them.
SYSTEM_DIRS: dict[str, tuple[Path, ...]] = {
    "mnist": (),
    "fashion-mnist": (Path("/usr/share/datasets/fashion-mnist"),),  # apt-get install dataset-fashion-mnist
}

# IDX magic numbers: two zero bytes, a type code (0x08 = unsigned byte), the number of dimensions.
IMAGES_MAGIC = 0x00000803
LABELS_MAGIC = 0x00000801


# --------------------------------------------------------------------------------------------------
# Finding files on disk
# --------------------------------------------------------------------------------------------------


def find_local(name: str, split: str, data_dir: str | os.PathLike | None) -> tuple[Path, Path] | None:
    """The split's (images, labels) files from data_dir, else $GLIMPSE_DATA_DIR, else system packages."""
    if data_dir is not None:
        root = Path(data_dir)
        pair = _find_in_root(root, name, split)
        if pair is None:
            images, labels = FILES[split]
            raise DataNotFoundError(
                "data_dir", f"{{name}}{{=}}{str(root)!r} holds no {name} {split} files: looked for {images}[.gz] "
                            f"and {labels}[.gz] in {', '.join(str(d) for d in _candidate_dirs(root, name))}"
            )
        return pair
    env_dir = os.environ.get(DATA_DIR_ENV)
    if env_dir:
        root = Path(env_dir)
        pair = _find_in_root(root, name, split)
        if pair is None:  # an explicit choice that fails is an error, never a silent fallback
            images, labels = FILES[split]
            raise FileNotFoundError(
                f"{DATA_DIR_ENV}={env_dir!r} holds no {name} {split} files: looked for {images}[.gz] and "
                f"{labels}[.gz] in {', '.join(str(d) for d in _candidate_dirs(root, name))}; put them there, "
                f"or unset {DATA_DIR_ENV} to use the default sources"
            )
        return pair
    for system_dir in SYSTEM_DIRS[name]:
        pair = _find_pair(system_dir, split)
        if pair is not None:
            return pair
    return None


def _candidate_dirs(root: Path, name: str) -> list[Path]:
    # Most specific first: a flat root is ambiguous between datasets.
    return [root / name, root / TORCHVISION_FOLDERS[name] / "raw", root]


def _find_in_root(root: Path, name: str, split: str) -> tuple[Path, Path] | None:
    for folder in _candidate_dirs(root, name):
        pair = _find_pair(folder, split)
        if pair is not None:
            return pair
    return None


def _find_pair(folder: Path, split: str) -> tuple[Path, Path] | None:
    """(images, labels) in ``folder``, unpacked preferred to .gz; None if neither is there.

    Exactly one of the two present is an error, since a half-copied dataset should not be passed over silently.
    """
    found = [_find_file(folder, base) for base in FILES[split]]
    if found[0] is not None and found[1] is not None:
        return found[0], found[1]
    if found[0] is not None or found[1] is not None:
        have = found[0] or found[1]
        missing = FILES[split][1] if found[0] is not None else FILES[split][0]
        raise FileNotFoundError(f"found {have} but not its partner {missing}[.gz] in {folder}")
    return None


def _find_file(folder: Path, base: str) -> Path | None:
    for candidate in (folder / base, folder / f"{base}.gz"):
        if candidate.is_file():
            return candidate
    return None


def describe_searched(name: str, data_dir: str | os.PathLike | None, cache_root: Path) -> str:
    places = []
    if data_dir is None:
        env_dir = os.environ.get(DATA_DIR_ENV)
        places.append(f"{DATA_DIR_ENV}={env_dir}" if env_dir else f"{DATA_DIR_ENV} (unset)")
    places.extend(str(d) for d in SYSTEM_DIRS[name])
    places.append(f"cache {cache_root / name}")
    return "; ".join(places)


# --------------------------------------------------------------------------------------------------
# Reading IDX files
# --------------------------------------------------------------------------------------------------


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """Read one IDX file of unsigned bytes (gzipped if its name ends in ``.gz``) into a numpy array.

    The IDX format: a 4-byte big-endian magic number (two zero bytes, the type code ``0x08`` for
    unsigned bytes, the number of dimensions ``D``), then ``D`` big-endian uint32 sizes, then the
    values in C order.

    Returns:
        A writable ``uint8`` array of shape ``(d_0, ..., d_{D-1})``.

    Raises:
        ValueError: naming the file, when it is not valid gzip, has a wrong magic number, or holds
            fewer or more bytes than its header promises.
    """
    path = Path(path)
    try:
        if path.suffix == ".gz":
            with gzip.open(path, "rb") as fh:
                data = fh.read()
        else:
            data = path.read_bytes()
    except FileNotFoundError:
        raise
    except (OSError, EOFError, zlib.error) as exc:
        raise ValueError(f"{path}: cannot be read as {'gzip' if path.suffix == '.gz' else 'a file'} ({exc})") from exc

    if len(data) < 4:
        raise ValueError(f"{path}: {len(data)} bytes is too short for an IDX header")
    magic = int.from_bytes(data[:4], "big")
    type_code, ndim = data[2], data[3]
    if data[0] != 0 or data[1] != 0 or type_code != 0x08 or ndim == 0:
        raise ValueError(
            f"{path}: bad IDX magic number 0x{magic:08x} (expected 0x000008NN for unsigned bytes "
            f"in NN dimensions, e.g. 0x{IMAGES_MAGIC:08x} for images, 0x{LABELS_MAGIC:08x} for labels)"
        )
    header = 4 + 4 * ndim
    if len(data) < header:
        raise ValueError(f"{path}: truncated IDX header ({len(data)} bytes, need {header} for {ndim} dimensions)")
    dims = tuple(int(d) for d in np.frombuffer(data, dtype=">u4", count=ndim, offset=4))
    expected = int(np.prod(dims, dtype=np.int64))
    payload = len(data) - header
    if payload < expected:
        raise ValueError(f"{path}: truncated: header promises {dims} = {expected} bytes of data, file holds {payload}")
    if payload > expected:
        raise ValueError(f"{path}: {payload - expected} unexpected trailing bytes after {dims} = {expected} bytes")
    return np.frombuffer(data, dtype=np.uint8, offset=header).reshape(dims).copy()


def cache_key(pair: tuple[Path, Path]) -> tuple[str, str, tuple[int, int, int, int]]:
    # The stat signature makes a file replaced in place (e.g. re-downloaded) load afresh.
    images, labels = (p.resolve() for p in pair)
    si, sl = images.stat(), labels.stat()
    return str(images), str(labels), (si.st_mtime_ns, si.st_size, sl.st_mtime_ns, sl.st_size)


@functools.lru_cache(maxsize=8)
def load_idx_pair(images_path: str, labels_path: str, _stat: tuple) -> tuple[torch.Tensor, torch.Tensor]:
    images = read_idx(images_path)
    labels = read_idx(labels_path)
    if images.ndim != 3 or images.shape[1:] != (IMAGE_SIZE, IMAGE_SIZE):
        raise ValueError(
            f"{images_path}: expected IDX images (magic 0x{IMAGES_MAGIC:08x}) of shape "
            f"(N, {IMAGE_SIZE}, {IMAGE_SIZE}); got shape {images.shape}"
        )
    if labels.ndim != 1:
        raise ValueError(
            f"{labels_path}: expected IDX labels (magic 0x{LABELS_MAGIC:08x}) of shape (N,); got {labels.shape}"
        )
    if len(images) != len(labels):
        raise ValueError(
            f"image/label count mismatch: {images_path} holds {len(images)} images, "
            f"{labels_path} {len(labels)} labels"
        )
    if len(labels) and int(labels.max()) >= NUM_CLASSES:
        raise ValueError(f"{labels_path}: label {int(labels.max())} is outside [0, {NUM_CLASSES})")
    return torch.from_numpy(images), torch.from_numpy(labels.astype(np.int64))
