"""scripts/compare.py end to end: every run with identical tags, the TensorBoard layout, the plot and the table."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

ROOT = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "PYTHONWARNINGS": "ignore", "OMP_NUM_THREADS": "1"}


def test_short_comparison_writes_runs_layout_plot_and_table(tmp_path):
    out = tmp_path / "cmp"
    cmd = [sys.executable, str(ROOT / "scripts" / "compare.py"), "--env", "mnist", "--agents", "ram,item-soft,racnn-soft,conv",
           "--seeds", "2", "--train-images", "128", "--eval-every", "64", "--eval-images", "32", "--batch-size", "32",
           "--glimpse-size", "8", "--scales", "2", "--glimpses", "2", "--mc-samples", "2", "--jobs", "2",
           "--out", str(out)]
    subprocess.run(cmd, env=ENV, capture_output=True, text=True, timeout=300, check=True)

    runs = sorted(p.name for p in out.iterdir() if p.is_dir())
    assert runs == [f"mnist__{a}__{s}" for a in ("conv", "item-soft", "racnn-soft", "ram") for s in (1, 2)]
    for name in runs:  # identical tags, so TensorBoard overlays them
        events = EventAccumulator(str(out / name), size_guidance={"scalars": 0}).Reload()
        assert [e.step for e in events.Scalars("eval/accuracy")] == [64, 128]
        assert {"train/loss_classifier", "train/accuracy", "charts/train_seconds"} <= set(events.Tags()["scalars"])

    root = EventAccumulator(str(out), size_guidance={"scalars": 0, "tensors": 0}).Reload()
    tags = set(root.Tags()["scalars"])
    assert {"compare/hard/ram", "compare/soft/item-soft", "compare/baseline/conv", "compare/hard/ram/min"} <= tags
    assert "custom_scalars__config__" in root.Tags()["tensors"]
    mean = [e.value for e in root.Scalars("compare/hard/ram")]
    seeds = [[e.value for e in EventAccumulator(str(out / f"mnist__ram__{s}")).Reload().Scalars("eval/accuracy")]
             for s in (1, 2)]
    assert mean == [sum(v) / 2 for v in zip(*seeds)] or all(abs(m - sum(v) / 2) < 1e-6 for m, v in zip(mean, zip(*seeds)))

    assert (out / "comparison.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    table = (out / "comparison.md").read_text()
    for name in ("| RAM | hard |", "| item-wise soft | soft |", "| RA-CNN soft | soft |", "| conv | baseline |"):
        assert name in table
    assert "| agent | scale 1 acc. | scale 2 acc. | scale 3 acc. | fused acc. |" in table  # RA-CNN's scales

    # A second call reuses the finished runs instead of training them again.
    again = subprocess.run(cmd, env=ENV, capture_output=True, text=True, timeout=120, check=True)
    assert "start" not in again.stdout
