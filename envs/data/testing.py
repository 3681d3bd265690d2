"""Test support: :func:`reset_for_tests` makes the package forget what this process loaded and announced."""

from __future__ import annotations

from envs.data.announce import announced
from envs.data.download import file_digest, verified
from envs.data.folder import decode_images
from envs.data.idx import load_idx_pair
from envs.data.offline import load_offline, load_offline_split

__all__ = ["reset_for_tests"]


def reset_for_tests() -> None:
    """Forget loaded arrays and announcements (tests only)."""
    load_idx_pair.cache_clear()
    load_offline.cache_clear()
    load_offline_split.cache_clear()
    decode_images.cache_clear()
    file_digest.cache_clear()
    verified.clear()
    announced.clear()
