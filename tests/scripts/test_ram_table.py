"""scripts/ram_table.py end to end: parallel runs, the table with each run's real command, reuse on rerun."""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
ENV = {**os.environ, "PYTHONWARNINGS": "ignore", "OMP_NUM_THREADS": "1"}


@pytest.mark.e2e  # the script and its runs in subprocesses
def test_quick_table_runs_in_parallel_and_reuses_finished_runs(tmp_path):
    out = tmp_path / "table"
    cmd = [sys.executable, "scripts/ram_table.py", "--quick", "--envs", "mnist,cluttered-60", "--train-images", "128",
           "--jobs", "2", "--eval-every", "128", "--out", str(out)]
    first = subprocess.run(cmd, cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=600, check=True)
    rows = [line for line in (out / "results.md").read_text().splitlines() if line.startswith("| ram4-")]
    assert [r.split(" | ")[0] for r in rows] == ["| ram4-mnist", "| ram4-cluttered-60"]  # just the --envs asked for
    for row in rows:
        command = shlex.split(row.rsplit("`", 2)[1])
        assert command[:2] == ["python", "scripts/train.py"] and "--resume" not in command
        assert command[command.index("--torch-threads") + 1] == str(max(1, (os.cpu_count() or 1) // 2))
        assert command[command.index("--eval-every") + 1] == "128"
        # The accuracies are the run's checkpoint evaluated on the whole test split, mean locations and K=10
        # rollouts: what train.py's final evaluation of the same checkpoint recorded.
        results = json.loads((out / row.split(" | ")[0].removeprefix("| ") / "results.json").read_text())
        assert row.split(" | ")[4:6] == [f"{results['test_accuracy']:.3f}", f"{results['test_accuracy_mc']:.3f}"]
    assert first.stdout.count("start ") == 2
    table = (out / "results.md").read_text()
    elsewhere = [sys.executable, str(ROOT / "scripts" / "ram_table.py"), *cmd[2:]]  # from another folder: the same
    again = subprocess.run(elsewhere, cwd=tmp_path, env=ENV, capture_output=True, text=True, timeout=600, check=True)
    assert "start " not in again.stdout  # every run reused, none retrained
    assert (out / "results.md").read_text() == table  # the same checkpoints, evaluated the same way
