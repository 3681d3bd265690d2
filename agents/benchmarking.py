"""Timing for the benchmark scripts: several contenders measured in one run, interleaved.

These machines are noisy (shared cores, drifting clocks): timing A for a minute, then B, compares two
machines. :func:`interleaved_medians` times one block of each contender in turn, many rounds over, and
reports each one's median, so that the noise of any moment hits every contender alike and the ratios
printed from one run mean something. :func:`parse_sizes` reads a flag's list of sizes (``--num-envs 16,256``).
"""

from __future__ import annotations

import statistics
from collections.abc import Callable

from agents.scripting import ConfigError

__all__ = ["interleaved_medians", "parse_sizes"]


def parse_sizes(text: str, flag: str, example: str) -> list[int]:
    """``"16,256"`` -> ``[16, 256]``: comma-separated different integers >= 1, else a :class:`ConfigError`
    naming ``flag`` with ``example`` (a size twice would print its row twice)."""
    parts = text.split(",")
    if not all(p.strip().isdecimal() and int(p) >= 1 for p in parts) or len(set(map(int, parts))) < len(parts):
        raise ConfigError(f"{flag} takes comma-separated different integers >= 1 (e.g. {example}); got {text!r}")
    return [int(p) for p in parts]


def interleaved_medians(runners: dict[str, Callable[[], float]], budget: float, min_blocks: int = 3,
                        max_blocks: int = 200) -> tuple[dict[str, float], int]:
    """``({name: median seconds of one block}, blocks)``: each ``runners[name]()`` runs one block of work
    and returns the seconds it took. One round of all of them (also the warm-up) sizes the run to about
    ``budget`` seconds, ``min_blocks`` to ``max_blocks`` rounds; then the rounds run, each contender in
    turn.

    >>> medians, blocks = interleaved_medians({"a": lambda: 0.5, "b": lambda: 1.0}, budget=0.0)
    >>> medians, blocks
    ({'a': 0.5, 'b': 1.0}, 3)
    """
    probe = sum(run() for run in runners.values())
    blocks = max(min_blocks, min(max_blocks, int(budget / max(probe, 1e-6))))
    times: dict[str, list[float]] = {name: [] for name in runners}
    for _ in range(blocks):
        for name, run in runners.items():
            times[name].append(run())
    return {name: statistics.median(t) for name, t in times.items()}, blocks
