"""Run train.py commands a few at a time: the one runner behind compare.py and ram_table.py."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path


def threads_per_job(jobs: int) -> int:
    """Torch threads for each of ``jobs`` concurrent runs: the cores shared out, at least 1."""
    return max(1, (os.cpu_count() or 1) // jobs)


def run_parallel(runs: list[tuple[Path, list[str]]], jobs: int) -> None:
    """Run each ``(run_dir, command)`` whose ``run_dir/results.json`` does not exist yet, ``jobs`` at a time.

    A run with a checkpoint but no results (killed) is resumed with ``--resume``. Output goes to
    ``run_dir/train.log``. The first failure stops the others and exits with a message naming its log.
    """
    todo = [(run_dir, command) for run_dir, command in runs if not (run_dir / "results.json").exists()]
    running: list[tuple[Path, subprocess.Popen, object]] = []
    while todo or running:
        while todo and len(running) < jobs:
            run_dir, command = todo.pop(0)
            resume = (run_dir / "checkpoint.pt").exists()
            run_dir.mkdir(parents=True, exist_ok=True)
            log = open(run_dir / "train.log", "a")
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
