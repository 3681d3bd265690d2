"""Running many runs (``scripts/compare.py``, ``scripts/ram_table.py``): :func:`run_parallel` starts each
run's command as a subprocess, a few at a time, completing killed runs and checking finished ones with
``--resume``, and
:func:`threads_per_job` shares the cores out among them."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

from envs.files import open_no_follow
from agents.run_folder import check_run_files
from agents.scripting import ConfigError

__all__ = ["run_parallel", "threads_per_job"]


def threads_per_job(jobs: int) -> int:
    """Torch threads for each of ``jobs`` concurrent runs: the cores shared out, at least 1."""
    return max(1, (os.cpu_count() or 1) // jobs)


def run_parallel(runs: list[tuple[Path, list[str]]], jobs: int) -> None:
    """Run each ``(run_dir, command)``, ``jobs`` at a time; output goes to ``run_dir/train.log``.

    A new run starts from scratch. A run started before (``config.json`` or a checkpoint) but without results
    (killed at any point) is completed with ``--resume``. A finished one (``results.json``) is run with
    ``--resume`` too, which trains nothing: ``train.py`` checks that the run's recorded flags and data are the
    command's, so a finished run is only ever reused for the command that made it, and one made by another
    (other flags, another recipe) is a :class:`ConfigError` naming the difference. The first failure stops the
    others and exits with its log's last line.
    """
    todo = list(runs)
    running: list[tuple[Path, subprocess.Popen, object, bool]] = []
    while todo or running:
        while todo and len(running) < jobs:
            run_dir, command = todo.pop(0)
            finished = (run_dir / "results.json").exists()
            resume = finished or (run_dir / "checkpoint.pt").exists() or (run_dir / "config.json").exists()
            run_dir.mkdir(parents=True, exist_ok=True)
            check_run_files(run_dir)
            log = os.fdopen(open_no_follow(run_dir / "train.log", os.O_WRONLY | os.O_CREAT | os.O_APPEND), "a")
            if not finished:
                print(f"start {run_dir.name}{' (resuming)' if resume else ''}", flush=True)
            proc = subprocess.Popen(command + (["--resume"] if resume else []), stdout=log, stderr=subprocess.STDOUT)
            running.append((run_dir, proc, log, finished))
        time.sleep(0.5)
        for entry in list(running):
            run_dir, proc, log, finished = entry
            if proc.poll() is None:
                continue
            log.close()
            running.remove(entry)
            if proc.returncode != 0:
                for _, other, _, _ in running:
                    other.terminate()
                last = last_line(run_dir / "train.log")
                if finished:
                    raise ConfigError(f"{run_dir} holds a finished run that this command did not make ({last}); "
                                      f"choose another output folder")
                raise SystemExit(f"{run_dir.name} failed (exit {proc.returncode}): {last}; see {run_dir / 'train.log'}")
            if not finished:
                print(f"done  {run_dir.name}", flush=True)


#: The frame tyro draws around a command-line error: not words of the message.
BOX_DRAWING = "│╭╮╰╯─┃━┏┓┗┛ \t"


def last_line(path: Path) -> str:
    """The last line of text file ``path`` (a run's log) with words in it, out of the frame a command-line
    error is drawn in; at most its last 4 KiB read."""
    with os.fdopen(open_no_follow(path, os.O_RDONLY), "rb") as file:
        file.seek(max(0, file.seek(0, os.SEEK_END) - 4096))
        lines = file.read().decode("utf-8", "replace").splitlines()
    return next((line.strip(BOX_DRAWING) for line in reversed(lines) if line.strip(BOX_DRAWING)), "(empty log)")
