"""Downloads and checksums: the cache folder, fetching the official files from the mirrors (HTTPS,
each checked against its SHA-256 before it is kept, written atomically), verifying cached files on
use, and the file digests and stamps the other modules key their caches on.
"""

from __future__ import annotations

import functools
import hashlib
import http.client
import logging
import os
import re
import socket
import urllib.error
import urllib.request
from collections.abc import Mapping
from pathlib import Path

from envs.data.sources import DATA_DIR_ENV, FILES, SPLITS
from envs.files import atomic_file

__all__ = [
    "DownloadError",
    "default_cache_dir",
    "from_cache",
    "sha256_table",
    "file_digest",
    "stamp",
    "verified",
    "DOWNLOAD_TIMEOUT_S",
]

logger = logging.getLogger(__package__)  # the package's one logger, "envs.data"


DOWNLOAD_TIMEOUT_S = 30.0  # per connection attempt and per read; a stalled mirror is given up on


class DownloadError(RuntimeError):
    """Raised when no mirror delivered a file whose checksum matched."""


def default_cache_dir() -> Path:
    """Return ``$XDG_CACHE_HOME/glimpse``, or ``~/.cache/glimpse`` when that variable is unset or empty."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "glimpse"


# --------------------------------------------------------------------------------------------------
# The download cache, and downloading
# --------------------------------------------------------------------------------------------------


def sha256_table(checksums: Mapping[str, str]) -> dict[str, str]:
    """``checksums`` with its digests lower-cased, each checked to be a SHA-256 (64 hex digits)."""
    table = {}
    for file, digest in checksums.items():
        if not isinstance(digest, str) or re.fullmatch(r"[0-9a-fA-F]{64}", digest) is None:
            raise ValueError(f"checksums[{file!r}] must be a SHA-256 digest (64 hex digits); got {digest!r}")
        table[file] = digest.lower()
    return table


def from_cache(
    name: str, split: str, folder: Path, checksums: dict[str, str], mirrors: tuple[str, ...] | None
) -> tuple[Path, Path] | None:
    """The split's (images, labels) from the cache ``folder``, after checking all four of the dataset's files.

    Only the official ``.gz`` names are read from the cache. With ``mirrors`` (``download=True``) the files
    it lacks are downloaded first, the split asked for first. Without, a cache with none of the files is
    no source (``None``), and one with some but not all is refused: its splits would come from two
    sources, the cache and the offline subset. Each file is checked against ``checksums`` on use
    (:func:`_verify_cached`), so a file altered after its download is refused, never used.
    """
    other = next(s for s in SPLITS if s != split)
    names = [f"{base}.gz" for part in (split, other) for base in FILES[part]]
    missing = [n for n in names if not (folder / n).is_file()]
    if missing and mirrors is not None:
        if not mirrors:
            raise DownloadError(f"no mirrors given for {name}")
        folder.mkdir(parents=True, exist_ok=True)
        for file in missing:
            _fetch(name, folder / file, mirrors, checksums)
    elif len(missing) == len(names):
        return None
    elif missing:
        raise FileNotFoundError(
            f"the {name} cache {folder} lacks {', '.join(missing)}, and a dataset's splits must come from one "
            f"source: complete it with `python -m envs.data --download {name}` (or load_digits(..., "
            f"download=True)), or delete {folder} to use the other sources"
        )
    for file in names:
        _verify_cached(name, folder / file, checksums)
    return folder / names[0], folder / names[1]


# (resolved path, size, mtime in ns, expected digest) of cached files that matched their digest in this process.
verified: set[tuple[str, int, int, str]] = set()


def _verify_cached(name: str, path: Path, checksums: dict[str, str]) -> None:
    """Refuse (``ValueError``, one line naming ``path`` and the fix) a cached file whose SHA-256 is not its
    digest in ``checksums``. Hashed once per process while its size and modification time stay the same."""
    expected = checksums.get(path.name)
    if expected is None:
        raise ValueError(
            f"{path}: no SHA-256 is known for this file, so it cannot be verified; pass its digest in checksums="
        )
    stat = path.stat()
    key = (str(path.resolve()), stat.st_size, stat.st_mtime_ns, expected)
    if key in verified:
        return
    digest = file_digest(key[0], stat.st_mtime_ns, stat.st_size)
    if digest != expected:
        raise ValueError(
            f"{path}: cached file is damaged or was altered (SHA-256 {digest}, expected {expected}); delete it "
            f"and download it again with `python -m envs.data --download {name}`"
        )
    verified.add(key)


def _fetch(name: str, dest: Path, mirrors: tuple[str, ...], checksums: dict[str, str]) -> None:
    """Download ``dest.name`` from the first mirror that delivers it whole and with the right digest."""
    expected = checksums.get(dest.name)
    if expected is None:
        raise DownloadError(f"no checksum is known for {dest.name}; refusing to keep an unverifiable download")
    failures: list[tuple[str, BaseException]] = []
    for base in mirrors:
        url = base if base.endswith("/") else base + "/"
        url += dest.name
        try:
            _fetch_one(url, dest, expected)
        except (OSError, http.client.HTTPException, DownloadError) as exc:
            if isinstance(exc, urllib.error.HTTPError):
                exc.close()  # an HTTP error carries the open response; release its socket now
            logger.info("download of %s failed: %s", url, _reason(exc))
            failures.append((url, exc))
            continue
        logger.info("downloaded %s from %s (checksum verified)", dest, url)
        return

    tried = "; ".join(f"{url}: {_reason(exc)}" for url, exc in failures)
    if all(_is_unreachable(exc) for _, exc in failures):
        headline = f"could not download {dest.name} for {name}: no network was reachable (tried {tried})."
    else:
        headline = f"could not download a verified {dest.name} for {name} from any mirror (tried {tried})."
    hint = (
        f" Without network, put the four official IDX files (.gz or unpacked) in a folder and set "
        f"{DATA_DIR_ENV}=<that folder> (or pass data_dir=)"
    )
    if name == "mnist":
        hint += (f"; or call load_digits('mnist', download=False) for the bundled 5,000-digit offline subset "
                 f"(delete {dest.parent} first if it holds part of the dataset).")
    else:
        hint += "; or `apt-get install dataset-fashion-mnist`."
    raise DownloadError(headline + hint) from failures[-1][1]


def _fetch_one(url: str, dest: Path, expected: str) -> None:
    """Stream ``url`` to a temporary file beside ``dest``, verify it, then rename it into place.

    On any failure the temporary file is removed, so ``dest`` is either absent or complete and verified.
    """
    hasher = hashlib.sha256()
    with atomic_file(dest) as out, urllib.request.urlopen(url, timeout=DOWNLOAD_TIMEOUT_S) as response:
        declared = response.headers.get("Content-Length")
        received = 0
        while chunk := response.read(1 << 16):
            out.write(chunk)
            hasher.update(chunk)
            received += len(chunk)
        if declared is not None and received != int(declared):
            raise DownloadError(f"cut off: received {received} of {declared} bytes")
        digest = hasher.hexdigest()
        if digest != expected:
            raise DownloadError(f"checksum mismatch: expected SHA-256 {expected}, got {digest}")


def _is_unreachable(exc: BaseException) -> bool:
    """True for failures to connect at all (refused, no route, DNS, timeout), not for bad answers."""
    if isinstance(exc, urllib.error.HTTPError):
        return False
    if isinstance(exc, urllib.error.URLError):
        return True
    return isinstance(exc, (ConnectionError, socket.timeout, TimeoutError))


def _reason(exc: BaseException) -> str:
    if isinstance(exc, urllib.error.HTTPError):
        return f"HTTP {exc.code} {exc.reason}"
    if isinstance(exc, urllib.error.URLError):
        return str(exc.reason)
    return str(exc) or type(exc).__name__


# --------------------------------------------------------------------------------------------------
# File digests and stamps
# --------------------------------------------------------------------------------------------------


@functools.lru_cache(maxsize=32)
def file_digest(path: str, _mtime_ns: int, _size: int) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def stamp(path: Path) -> tuple[int, int]:
    stat = path.stat()
    return stat.st_mtime_ns, stat.st_size
