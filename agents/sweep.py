"""Running many runs (``scripts/compare.py``, ``scripts/ram_table.py``): :func:`run_parallel` starts each
run's command as a subprocess, a few at a time, completing killed runs with ``--resume``, and
:func:`threads_per_job` shares the cores out among them."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

from envs.files import open_no_follow
from agents.run_folder import check_run_files

__all__ = ["run_parallel", "threads_per_job"]


def threads_per_job(jobs: int) -> int:
    """Torch threads for each of ``jobs`` concurrent runs: the cores shared out, at least 1."""
    return max(1, (os.cpu_count() or 1) // jobs)


def run_parallel(runs: list[tuple[Path, list[str]]], jobs: int) -> None:
    """Run each ``(run_dir, command)`` whose ``run_dir/results.json`` does not exist yet, ``jobs`` at a time.

    A run started before (``config.json`` or a checkpoint) but without results (killed at any point) is
    completed with ``--resume``. Output goes to
    ``run_dir/train.log``. The first failure stops the others and exits with a message naming its log.
    """
    todo = [(run_dir, command) for run_dir, command in runs if not (run_dir / "results.json").exists()]
    running: list[tuple[Path, subprocess.Popen, object]] = []
    while todo or running:
        while todo and len(running) < jobs:
            run_dir, command = todo.pop(0)
            resume = (run_dir / "checkpoint.pt").exists() or (run_dir / "config.json").exists()
            run_dir.mkdir(parents=True, exist_ok=True)
            check_run_files(run_dir)
            log = os.fdopen(open_no_follow(run_dir / "train.log", os.O_WRONLY | os.O_CREAT | os.O_APPEND), "a")
            print(f"start {run_dir.name}{' (resuming)' if resume else ''}", flush=True)
            proc = subprocess.Popen(command + (["--resume"] if resume else []), stdout=log, stderr=subprocess.STDOUT)
            running.append((run_dir, proc, log))
        time.sleep(0.5)
        for entry in list(running):
            run_dir, proc, log = entry
            if proc.poll() is None:
                continue
            log.close()
            running.remove(entry)
            if proc.returncode != 0:
                for _, other, _ in running:
                    other.terminate()
                raise SystemExit(f"{run_dir.name} failed (exit {proc.returncode}); see {run_dir / 'train.log'}")
            print(f"done  {run_dir.name}", flush=True)
