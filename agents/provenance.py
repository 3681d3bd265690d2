"""Which data a run trained and is tested on: :func:`announcing_data` collects the datasets its envs load
(and prints the loaders' notes once each), :func:`record_data` makes the record saved in ``config.json``,
the checkpoint and ``results.json``, :func:`describe_data` the lines printed at the start, and
:func:`check_data` / :func:`check_same_data` refuse other data on ``--resume`` or on another rank."""

from __future__ import annotations

import contextlib
import sys
import warnings
from collections.abc import Sequence
from typing import Any

from envs import data as envs_data
from agents import distributed
from agents.scripting import ConfigError

__all__ = ["announcing_data", "record_data", "describe_data", "check_data", "check_same_data"]


@contextlib.contextmanager
def announcing_data(show: bool = True):
    """``with announcing_data() as loaded:`` build envs; ``loaded`` collects the datasets they load
    (:func:`envs.data.recording`), and what the data loaders warn about (the offline subset, an
    ``--eval-images`` capped to the test split) is printed once each as a ``data: ...`` line on stderr
    instead of as a Python warning (``show=False``: not printed, as on the ranks other than 0)."""
    with warnings.catch_warnings(record=True) as notes, envs_data.recording() as loaded:
        warnings.simplefilter("always")
        yield loaded
    for note in dict.fromkeys(str(w.message) for w in notes) if show else ():
        print(f"data: {note}", file=sys.stderr)


def record_data(loaded: Sequence[Any]) -> dict[str, dict]:
    """The run's data provenance from the datasets loaded while its envs were built
    (``with envs.data.recording() as loaded``): ``{split: envs.data.provenance(dataset)}``; empty for a
    task that makes its own scenes (Catch, a user's videos)."""
    return {d.split: envs_data.provenance(d) for d in loaded}


def describe_data(data: dict[str, dict]) -> list[str]:
    """One line per split of :func:`record_data`'s record, for the start of a run."""
    if not data:
        return ["data: none (the task makes its own scenes)"]
    return [f"data {split}: {d['kind']}, {d['size']} examples, sha256 {d['sha256'][:16]}, {d['source']}"
            for split, d in data.items()]


def check_data(recorded: dict[str, dict] | None, current: dict[str, dict], what: str, override: str) -> None:
    """Refuse (:class:`ConfigError`) data that differ from those a run ``recorded`` (per split present in
    both: kind, dataset, size, content digest; not the path). ``None``: a run from before provenance."""
    if recorded is None:
        return
    differences = [f"{split}: {diff}" for split in sorted(set(recorded) | set(current))
                   for diff in (envs_data.provenance_differences(recorded[split], current[split])
                                if split in recorded and split in current else [])]
    if differences:
        raise ConfigError(f"{what}: the data differ from those the run was trained on ({'; '.join(differences)}); "
                          f"point --data-dir / $GLIMPSE_DATA_DIR at the run's data, or pass {override}")


def check_same_data(data: dict[str, dict]) -> None:
    """Under torchrun: every rank's :func:`record_data` record shows the data rank 0 loaded (same kind,
    size and content; the paths may differ between machines), else a :class:`ConfigError` naming the
    first rank that differs. Nothing with one process."""
    for rank, theirs in enumerate(distributed.all_gather_object(data)):
        differences = [f"{split}: {diff}" for split in sorted(set(data) | set(theirs))
                       for diff in (envs_data.provenance_differences(data[split], theirs[split])
                                    if split in data and split in theirs else ["loaded on one rank only"])]
        if differences:
            raise ConfigError(f"rank {rank} loaded other data than rank 0 ({'; '.join(differences)}); give every "
                              f"machine the same data (--data-dir, $GLIMPSE_DATA_DIR)")
