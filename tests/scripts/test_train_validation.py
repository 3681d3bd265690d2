"""``scripts/train.py --val-images``: the validation split evaluated at every evaluation (``val/accuracy``),
recorded in config.json and results.json and checked on ``--resume``; what cannot be held out is one line."""

from __future__ import annotations

import json

import pytest
import torch

from agents import training
from script_runs import in_process

pytestmark = pytest.mark.filterwarnings("ignore::envs.data.OfflineSubsetWarning")


def train(*args: str) -> tuple[int, str]:
    """``scripts/train.py ARGS`` in this process: its exit status and stderr."""
    done = in_process("train.py", *args)
    return done.returncode, done.stderr


SMALL = ["--agent", "ram", "--env", "mnist", "--glimpses", "2", "--batch-size", "16", "--train-images", "32",
         "--eval-every", "16", "--eval-images", "20", "--mc-samples", "2", "--torch-threads", "1"]


def test_train_evaluates_the_held_out_items_and_records_the_split(tmp_path):
    run = tmp_path / "run"
    status, err = train(*SMALL, "--val-images", "30", "--run-dir", str(run))
    assert status == 0, err
    results = json.loads((run / "results.json").read_text())
    assert results["val_images"] == 30 and results["val_examples"] == 30 and results["test_examples"] == 20
    assert "val_accuracy_mc" in results
    # By hand: the saved model on the 30 held-out items, each once, mean locations.
    cfg, model, _ = training.load_run(run)
    val_env, hits = training.make_val_env(cfg), 0
    model.eval()
    with torch.no_grad():
        for episode in range(30 // val_env.num_envs):
            obs, _ = val_env.reset(seed=episode * val_env.num_envs)  # rows show items seed + row: all 30, once
            labels = val_env.scene()[1].clone()
            hits += int((model.rollout(val_env, obs, deterministic=True)[0].logits.argmax(1) == labels).sum())
    assert results["val_accuracy"] == hits / 30
    assert {k: (v["split"], v["size"]) for k, v in results["data"].items()} == {
        "train": ("train", 3970), "test": ("test", 1000), "val": ("val", 30)}
    config = json.loads((run / "config.json").read_text())
    assert config["val_images"] == 30 and config["data"]["val"]["size"] == 30
    assert "val_accuracy" in err and "data val: offline, 30 examples" in err
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(run)).Reload()
    assert [e.step for e in events.Scalars("val/accuracy")] == [16, 32]
    # --resume checks the split like the data: another --val-images is refused, naming the flag.
    status, err = train(*SMALL, "--val-images", "40", "--run-dir", str(run), "--resume")
    assert status == 2 and "--val-images" in err.splitlines()[-1]


def test_train_without_val_images_writes_no_val_metrics(tmp_path):
    run = tmp_path / "run"
    assert train(*SMALL, "--run-dir", str(run))[0] == 0
    results = json.loads((run / "results.json").read_text())
    assert not [k for k in results if k.startswith("val")] and set(results["data"]) == {"train", "test"}


@pytest.mark.parametrize("args, message", [
    (["--val-images", "4000"], "error: --env mnist: --val-images 4000 leaves nothing to train on: the training split "
                               "holds 4000 items; hold out fewer"),
    (["--val-images", "-3"], "error: --val-images"),
    (["--env", "catch", "--val-images", "10"], "error: --env catch: --val-images 10: task 'catch' loads no training split"),
])
def test_train_refuses_a_val_split_it_cannot_hold_out_in_one_line(tmp_path, args, message):
    status, err = train(*SMALL, *args, "--run-dir", str(tmp_path / "run"))
    lines = [line for line in err.splitlines() if line.startswith("error:")]
    assert status == 2 and len(lines) == 1 and lines[0].startswith(message), err


def test_evaluate_scores_the_validation_split_and_fresh_canvases_of_the_training_items(tmp_path):
    run = tmp_path / "run"
    assert train(*SMALL, "--val-images", "30", "--run-dir", str(run))[0] == 0
    results = json.loads((run / "results.json").read_text())
    # --split val: the numbers train.py's last evaluation wrote (the same items, seed and MC rollouts).
    done = in_process("evaluate.py", "--run-dir", str(run), "--split", "val", "--mc-samples", "2")
    assert done.returncode == 0, done.stderr
    val = json.loads(done.stdout)
    assert (val["val_accuracy"], val["val_accuracy_mc"], val["val_examples"]) == (
        results["val_accuracy"], results["val_accuracy_mc"], 30)
    assert not [k for k in val if k.startswith("test_")]
    # --split train: 20 fresh canvases of the training items (not the held-out ones), by hand: episodes of 10
    # (the largest divisor of 20 up to the batch of 16), reset with seeds 0 and 10, mean locations.
    done = in_process("evaluate.py", "--run-dir", str(run), "--split", "train", "--eval-images", "20",
                      "--mc-samples", "1")
    assert done.returncode == 0, done.stderr
    fit = json.loads(done.stdout)
    cfg, model, _ = training.load_run(run)
    env, hits = training.make_env(cfg, "train", 10), 0
    model.eval()
    with torch.no_grad():
        for episode in range(2):
            obs, _ = env.reset(seed=episode * 10)
            labels = env.scene()[1].clone()
            hits += int((model.rollout(env, obs, deterministic=True)[0].logits.argmax(1) == labels).sum())
    assert fit["train_examples"] == 20 and fit["train_accuracy"] == hits / 20
    assert "data train: offline, 3970 examples" in done.stderr


def test_evaluate_refuses_a_validation_split_the_run_does_not_have(tmp_path):
    run = tmp_path / "run"
    assert train(*SMALL, "--run-dir", str(run))[0] == 0
    done = in_process("evaluate.py", "--run-dir", str(run), "--split", "val")
    lines = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert done.returncode == 2 and lines == [
        "error: --split val: this run holds out no validation split (it was trained without --val-images)"], done.stderr
