"""Telling the user which source each dataset came from, once per process: a ``logging`` INFO line on the
``envs.data`` logger for full datasets, an :class:`~envs.data.offline.OfflineSubsetWarning` for the
offline subset, and other one-time warnings (an image folder's classes without test images).
"""

from __future__ import annotations

import logging
import warnings

from envs.data.offline import OfflineSubsetWarning
from envs.data.sources import DATA_DIR_ENV

__all__ = ["announce", "warn_once", "announced"]

logger = logging.getLogger(__package__)  # the package's one logger, "envs.data"

announced: set[tuple[str, str, str]] = set()


def warn_once(message: str) -> None:
    """``warnings.warn(message)`` the first time this process sees ``message`` (the scripts print it as a
    ``data: ...`` line)."""
    key = ("warning", "", message)
    if key not in announced:
        announced.add(key)
        warnings.warn(message, UserWarning, stacklevel=3)


def announce(name: str, split: str, source: str, count: int, *, subset: bool) -> None:
    key = (name, split, source)
    if key in announced:
        return
    announced.add(key)
    if subset:
        warnings.warn(
            f"{name} {split}: using the {source}: {count} images instead of the full dataset, so results "
            f"are not comparable with published MNIST numbers. For the full dataset set {DATA_DIR_ENV}, "
            f"pass data_dir=, or call load_digits(..., download=True).",
            OfflineSubsetWarning,
            stacklevel=3,
        )
    else:
        logger.info("%s %s: %d images from %s", name, split, count, source)
