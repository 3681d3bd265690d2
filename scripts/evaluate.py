"""Evaluate a trained run's checkpoint on the fixed test split (or its validation split, or its training items).

    python scripts/evaluate.py --run-dir runs/ram-mnist --mc-samples 10
    python scripts/evaluate.py --run-dir runs/ram-mnist --split train   # how well it fits what it trained on

Prints JSON: test accuracy with RAM's mean (deterministic) locations, and averaged over ``--mc-samples``
stochastic rollouts of the same test images (RAM); full-image baselines have one number. A hard agent that
predicts at every glimpse (``--step-ce`` or ``--credit gain``, as the cluttered-60 recipes do) also gets
``test_accuracy_glimpse_t``: its accuracy after ``t`` glimpses. The model is built from the checkpoint's own
configuration; test data other than those the run recorded (another ``$GLIMPSE_DATA_DIR``, say) are refused
unless ``--allow-other-data``. ``test_examples`` is the number of test examples evaluated, each once
(``--eval-images`` above the test split is lowered to its size). ``--split val`` scores the run's validation
split instead (``val_*``, as train.py's ``--val-images`` evaluations), ``--split train`` ``--eval-images`` fresh
canvases of the training items it trained on (``train_*``): beside the test split, the gap says whether an agent
over-fits its training items or does not fit them.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Literal

from agents.training import announcing_data, cli, describe_data, evaluate_split, load_run, record_data, run_script
from agents.ranges import Range


@dataclass
class Config:
    run_dir: str = "runs/train"
    """the run folder written by train.py (config.json and checkpoint.pt)"""
    split: Literal["test", "val", "train"] = "test"
    """test: the fixed test split; val: the run's validation split (--val-images); train: fresh canvases of its
    training items"""
    eval_images: Annotated[int | None, Range(1)] = None
    """test images (or training canvases) to evaluate on; none: the run's own setting"""
    mc_samples: Annotated[int, Range(1)] = 10
    """also average RAM's classifier over this many stochastic rollouts (1: mean locations only)"""
    device: str = "cpu"
    """torch device to evaluate on"""
    data_dir: str | None = None
    """where the run's data are now, if they moved (train.py's --data-dir); none: where the run recorded them"""
    allow_other_data: bool = False
    """evaluate even if the test data differ from those the run recorded (refused by default)"""
    plugins: tuple[str, ...] = ()
    """modules to import first, as the run's train.py --plugins: a run folder never imports code by itself,
    so a run trained with plugins needs them named here"""


def main() -> None:
    cfg = cli(Config, description=__doc__.split("\n\n")[0])
    overrides = {k: v for k, v in (("eval_images", cfg.eval_images), ("data_dir", cfg.data_dir)) if v is not None}
    with announcing_data() as loaded:
        train_cfg, model, split_env = load_run(Path(cfg.run_dir), allow_other_data=cfg.allow_other_data,
                                              plugins=cfg.plugins, split=cfg.split, device=cfg.device, **overrides)
    data = record_data(loaded)
    for line in describe_data(data):
        print(line, file=sys.stderr)
    metrics = evaluate_split(train_cfg, model, split_env, mc_samples=cfg.mc_samples)
    print(json.dumps({"run_dir": cfg.run_dir, "agent": train_cfg.agent, "env": train_cfg.env,
                      "images_seen": train_cfg.images_seen, **{f"{cfg.split}_{k}": v for k, v in metrics.items()},
                      "data": data}))


if __name__ == "__main__":
    run_script(main)
