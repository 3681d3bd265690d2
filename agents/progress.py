"""Progress that fits where the output goes: a live bar on a terminal, a few whole lines in a log file.

A ``tqdm`` bar redraws itself in place; written to a file or a pipe (``train.py > log``, ``compare.py``'s
``train.log``, a batch job) every redraw becomes a line of its own, thousands per run. :class:`Progress`
draws the bar only when its stream is a terminal; otherwise it writes one line per :meth:`Progress.report`
(an evaluation), at most one every ``min_interval`` seconds, and always the last one.
"""

from __future__ import annotations

import sys
import time
from typing import TextIO

from tqdm import tqdm

__all__ = ["Progress"]


class Progress:
    """Progress of ``total`` units (images, steps), ``initial`` done already (a resumed run).

    Use as a context manager, so that a live bar ends its line however the work ends (an error, Ctrl-C)
    and what is printed next starts on a line of its own.

    Args:
        total: units of the whole job.
        initial: units done before this process started.
        unit: what is counted (``"img"``, ``"step"``).
        desc: the job's name, at the start of the bar and of each line.
        enabled: False shows nothing (the ranks other than 0 of a data-parallel run).
        stream: where to write (default ``sys.stderr``, looked up when made).
        min_interval: seconds between two lines written to a file or a pipe.
        lines: False writes no lines where there is no bar (the caller prints its own per evaluation).
    """

    def __init__(self, total: int, initial: int = 0, unit: str = "img", desc: str = "", enabled: bool = True,
                 stream: TextIO | None = None, min_interval: float = 30.0, lines: bool = True):
        self.stream = stream if stream is not None else sys.stderr
        self.total, self.done, self.unit, self.desc = total, initial, unit, desc
        self.enabled, self.min_interval, self.lines = enabled, min_interval, lines
        self.live = enabled and _is_terminal(self.stream)
        self.bar = tqdm(total=total, initial=initial, unit=unit, desc=desc, file=self.stream,
                        dynamic_ncols=True) if self.live else None
        self.start = time.monotonic()
        self.last_line: float | None = None

    def update(self, count: int) -> None:
        """``count`` more units done."""
        self.done += count
        if self.bar is not None:
            self.bar.update(count)

    def report(self, values: dict[str, str], final: bool = False) -> None:
        """An evaluation's ``values`` (name -> formatted value): the bar's postfix on a terminal; elsewhere a
        line, unless one was written less than ``min_interval`` seconds ago (``final``: always)."""
        if not self.enabled:
            return
        if self.bar is not None:
            self.bar.set_postfix(values)
            return
        if not self.lines:
            return
        now = time.monotonic()
        if not final and self.last_line is not None and now - self.last_line < self.min_interval:
            return
        self.last_line = now
        share = f" ({100 * self.done / self.total:.0f} %)" if self.total else ""
        fields = "".join(f" | {name} {value}" for name, value in values.items())
        print(f"{self.desc}: {self.done:,}/{self.total:,} {self.unit}{share}{fields} | {now - self.start:.0f} s",
              file=self.stream, flush=True)

    def write(self, line: str) -> None:
        """Print ``line`` above a live bar (plainly where there is none)."""
        if self.bar is not None:
            self.bar.write(line, file=self.stream)
        else:
            print(line, file=self.stream, flush=True)

    def close(self) -> None:
        """End the bar's line (nothing to do for lines)."""
        if self.bar is not None:
            self.bar.close()
            self.bar = None

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def _is_terminal(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):  # no isatty, or a closed stream
        return False
