"""Runs you can trust (issue 14): a diverged run stops, every run folder is resumable to its end, one process
owns a run folder, the data's provenance is recorded and checked, counts are honest, bad values and
damaged files are one-line errors, and a clean run prints no warnings."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import warnings
from pathlib import Path

import pytest
import torch
from PIL import Image

from agents import training
from agents.run_folder import how_run_differs
from agents.training import ConfigError, TrainingStopped
from envs.data import OfflineSubsetWarning
from script_runs import in_process, in_subprocess

ROOT = Path(__file__).resolve().parents[2]
SCRIPTS = ROOT / "scripts"
ENV = {**os.environ, "OMP_NUM_THREADS": "1"}  # no PYTHONWARNINGS=ignore: a clean run must print no warning
ENV.pop("GLIMPSE_DATA_DIR", None)
ENV.pop("PYTHONWARNINGS", None)

BASE = ["--agent", "ram", "--env", "mnist", "--glimpse-size", "8", "--scales", "2", "--glimpses", "2",
        "--batch-size", "32", "--eval-images", "64", "--mc-samples", "2", "--torch-threads", "1"]
SMALL = [*BASE, "--train-images", "128", "--eval-every", "64", "--checkpoint-every", "64"]


def script(name: str, *args: str, env: dict | None = None, e2e: bool = False) -> subprocess.CompletedProcess:
    """``python scripts/<name> args``: in this process, or in a subprocess (``e2e``; the test is marked so)."""
    return (in_subprocess if e2e else in_process)(name, *args, env=env or ENV)


def train(run_dir: Path, *args: str, env: dict | None = None, e2e: bool = False) -> subprocess.CompletedProcess:
    return script("train.py", "--run-dir", str(run_dir), *args, env=env, e2e=e2e)


def results_of(run_dir: Path) -> dict:
    results = json.loads((run_dir / "results.json").read_text())
    results.pop("wall_seconds")  # the only field that may differ: time
    return results


def one_line_error(done: subprocess.CompletedProcess, status: int, *words: str) -> str:
    """The process ended with ``status`` and a single ``error:``/``stopped:`` line naming ``words``."""
    assert done.returncode == status, done.stderr
    assert "Traceback" not in done.stderr, done.stderr
    lines = [line for line in done.stderr.splitlines() if line.startswith(("error:", "stopped:"))]
    assert len(lines) == 1, done.stderr
    for word in words:
        assert word in lines[0], lines[0]
    return lines[0]


@pytest.fixture(scope="module")
def finished(tmp_path_factory) -> Path:
    """One uninterrupted small RAM run: the reference every resumed run must reproduce."""
    run = tmp_path_factory.mktemp("reference") / "run"
    done = train(run, *SMALL)
    assert done.returncode == 0, done.stderr
    assert_no_warning(done.stderr)
    return run


def assert_no_warning(stderr: str) -> None:
    """7. A clean run prints no warning (torch's requires_grad-to-scalar one included); the offline subset
    is announced as data, not as a Python warning."""
    assert "Warning" not in stderr and "warn" not in stderr.lower().replace("data: ", ""), stderr


@pytest.mark.e2e
def test_a_clean_run_in_a_subprocess_prints_no_warning_and_ends_where_the_in_process_run_does(finished, tmp_path):
    """The end-to-end tier of this file: train.py as the shell runs it (exit status, stderr, files) gives the
    results the in-process runs of the other tests give; a bad value is one line and status 2 there too."""
    run = tmp_path / "run"
    done = train(run, *SMALL, e2e=True)
    assert done.returncode == 0, done.stderr
    assert_no_warning(done.stderr)
    assert results_of(run) == results_of(finished)
    one_line_error(train(tmp_path / "bad", "--batch-size", "0", e2e=True), 2, "--batch-size must be >= 1; got 0")


def copy_run(run: Path, to: Path, drop: tuple[str, ...] = ()) -> Path:
    shutil.copytree(run, to, ignore=shutil.ignore_patterns("run.lock"))
    for name in drop:
        (to / name).unlink()
    return to


# ------------------------------------------------------------------------------------------------
# 1. A non-finite loss, gradient or parameter stops training
# ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("agent", ["item-soft", "ram"])
def test_a_diverging_run_stops_keeps_its_last_good_checkpoint_and_writes_no_results(tmp_path, agent):
    """--learning-rate 1e6: item-soft's loss turns NaN, RAM's policy mean does (torch.distributions refuses it)."""
    run = tmp_path / agent
    args = [a if a != "ram" else agent for a in SMALL]
    done = train(run, *args, "--learning-rate", "1e6", "--checkpoint-every", "32", "--train-images", "320")
    line = one_line_error(done, 1, "update 2", "non-finite", "checkpoint.pt (32 images)", "no results.json")
    if agent == "item-soft":
        assert "loss_classifier = nan" in line
    assert not (run / "results.json").exists()
    state = torch.load(run / "checkpoint.pt", weights_only=True)
    assert state["images_seen"] == 32
    assert all(torch.isfinite(t).all() for t in state["model"].values())


@pytest.mark.parametrize("agent", ["stn"])
def test_a_run_diverging_at_its_last_update_is_stopped_by_the_evaluation(tmp_path, agent):
    """One update at --learning-rate 1e6: the loss was finite, the weights are huge, and the evaluation
    after the last checkpoint meets a non-finite transform: stopped, no results.json, the checkpoint
    named as holding this model. (Where the huge weights still give finite outputs, as item-soft's and
    RAM's do in this setting, the run is a finite, bad model and its accuracy says so.)"""
    run = tmp_path / agent
    done = train(run, "--agent", agent, "--env", "mnist", "--glimpse-size", "8", "--scales", "2", "--glimpses", "2",
                 "--batch-size", "128", "--train-images", "128", "--eval-images", "100", "--torch-threads", "1",
                 "--learning-rate", "1e6")  # one update
    one_line_error(done, 1, "evaluation at 128 images", "checkpoint.pt holds this model", "no results.json")
    assert not (run / "results.json").exists()


def test_check_update_names_the_term_or_the_parameters_and_the_update():
    model = torch.nn.Linear(2, 1)
    loss = model(torch.ones(1, 2)).sum()
    loss.backward()
    logged = training.check_update({"loss": loss, "loss_a": loss.detach(), "accuracy": torch.tensor(0.5)}, model, 3)
    assert logged == {"loss_a": pytest.approx(loss.item()), "accuracy": 0.5}
    with pytest.raises(TrainingStopped, match=r"update 7: non-finite loss = nan, loss_b = nan"):
        training.check_update({"loss": loss * float("nan"), "loss_a": loss, "loss_b": torch.tensor(float("nan"))},
                              model, 7)
    model.weight.grad[0, 0] = float("inf")
    with pytest.raises(TrainingStopped, match=r"update 4: the loss is finite .* gradients of weight are not"):
        training.check_update({"loss": loss}, model, 4)
    model.weight.grad.fill_(3e38)  # every gradient finite, their norm not
    with pytest.raises(TrainingStopped, match=r"update 5: .* total norm overflows float32"):
        training.check_update({"loss": loss}, model, 5)
    with torch.no_grad():
        model.bias.fill_(float("nan"))
    with pytest.raises(TrainingStopped, match="non-finite parameters bias"):
        training.check_parameters(model, "at 64 images")


# ------------------------------------------------------------------------------------------------
# 2. Every run folder is resumable to its end
# ------------------------------------------------------------------------------------------------


def test_killed_after_the_last_checkpoint_resumes_to_the_same_results(finished, tmp_path):
    run = copy_run(finished, tmp_path / "run", drop=("results.json",))
    done = train(run, *SMALL, "--resume")
    assert done.returncode == 0, done.stderr
    assert results_of(run) == results_of(finished)


@pytest.mark.e2e  # a second process
def test_compare_relaunches_a_run_killed_before_its_first_checkpoint_to_the_same_results(finished, tmp_path):
    """What compare.py and ram_table.py do with a run folder that holds config.json but no checkpoint."""
    run = copy_run(finished, tmp_path / "run", drop=("results.json", "checkpoint.pt"))
    refused = train(run, *SMALL)  # without --resume, an existing run is never silently reused
    one_line_error(refused, 2, "already holds a run", "--resume")
    command = [sys.executable, str(SCRIPTS / "train.py"), "--run-dir", str(run), *SMALL]
    old = dict(os.environ)
    os.environ.pop("GLIMPSE_DATA_DIR", None)
    try:
        training.run_parallel([(run, command)], jobs=1)  # adds --resume, as for a checkpointed run
    finally:
        os.environ.clear()
        os.environ.update(old)
    assert results_of(run) == results_of(finished)
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(run), size_guidance={"scalars": 0}).Reload()
    assert [e.step for e in events.Scalars("eval/accuracy")] == [64, 128]  # the killed run's events purged


def test_a_cuda_checkpoint_carries_each_ranks_cuda_stream_and_a_cuda_resume_restores_its_own(finished, monkeypatch):
    """On CUDA a hard agent samples from the device's generator, which torch.manual_seed resets at start: the
    checkpoint keeps every rank's, and a resume on CUDA sets its rank's (the CUDA calls recorded here)."""
    from agents import distributed  # noqa: PLC0415
    from agents.run_folder import checkpoint_payload, read_checkpoint, restore_checkpoint  # noqa: PLC0415

    state = read_checkpoint(finished / "checkpoint.pt")
    cfg, model, _ = training.load_run(finished)
    optimizer = torch.optim.Adam(model.parameters(), lr=cfg.learning_rate)
    streams = [torch.arange(16, dtype=torch.uint8) + r for r in range(2)]
    payload = checkpoint_payload(cfg, state["data"], model, optimizer, state["env"], state["torch_rng_ranks"] * 2,
                                 2, state["elapsed"], cuda_rngs=streams)
    assert "cuda_rng_ranks" not in checkpoint_payload(cfg, state["data"], model, optimizer, state["env"],
                                                      state["torch_rng_ranks"], 1, 0.0)  # a CPU run has none
    set_calls = []
    monkeypatch.setattr(torch.cuda, "set_rng_state", lambda rng, device: set_calls.append((rng, device)))
    cfg.images_seen = 0
    env = training.make_env(cfg, "train", cfg.batch_size // 2)
    rank1 = distributed.Context(1, 2, 1, 2, device=torch.device("cuda:1"))
    restore_checkpoint(finished / "checkpoint.pt", payload, cfg, model, optimizer, env, rank1)
    [(rng, device)] = set_calls
    assert torch.equal(rng, streams[1]) and device == torch.device("cuda:1")
    set_calls.clear()
    restore_checkpoint(finished / "checkpoint.pt", payload, cfg, model, optimizer, env,
                       distributed.Context(1, 2, 1, 2))  # resumed on the CPU: no CUDA stream to set
    assert set_calls == []


def test_a_budget_that_is_not_whole_batches_says_what_the_run_trains(tmp_path):
    done = train(tmp_path / "run", *BASE, "--train-images", "40", "--eval-every", "64")  # batches of 32
    assert done.returncode == 0, done.stderr
    assert ("note: --train-images 40 is not a whole number of --batch-size 32 batches: the run trains 64 images "
            "(2 x 32)") in done.stderr.splitlines()
    assert json.loads((tmp_path / "run" / "results.json").read_text())["train_images"] == 64


def test_a_finished_run_resumed_does_nothing_and_exits_0(finished, tmp_path):
    run = copy_run(finished, tmp_path / "run")
    before = {p.name: p.stat().st_mtime_ns for p in run.iterdir()}
    done = train(run, *SMALL, "--resume")
    assert done.returncode == 0 and "nothing to do" in done.stderr, done.stderr
    assert {p.name: p.stat().st_mtime_ns for p in run.iterdir() if p.name != "run.lock"} == \
        {k: v for k, v in before.items() if k != "run.lock"}


def test_zero_train_images_evaluates_the_untrained_model_and_resumes_as_a_no_op(tmp_path):
    run = tmp_path / "zero"
    args = [*BASE, "--train-images", "0"]
    done = train(run, *args)
    assert done.returncode == 0, done.stderr
    results = json.loads((run / "results.json").read_text())
    assert results["train_images"] == 0 and results["test_examples"] == 64
    assert torch.load(run / "checkpoint.pt", weights_only=True)["images_seen"] == 0
    again = train(run, *args, "--resume")
    assert again.returncode == 0 and "nothing to do" in again.stderr


def test_resume_may_change_how_to_run_threads_and_device(finished, tmp_path):
    """--torch-threads and --device say how to run, not what the run is: compare.py re-launches with its
    own thread count."""
    run = copy_run(finished, tmp_path / "run", drop=("results.json",))
    assert torch.load(run / "checkpoint.pt", weights_only=True)["torch_threads"] == 1  # how it ran is recorded
    same = train(run, *SMALL, "--resume")
    assert same.returncode == 0 and "--resume: the run was trained" not in same.stderr, same.stderr
    run = copy_run(finished, tmp_path / "again", drop=("results.json",))
    args = [a if a != "1" else "2" for a in SMALL]  # --torch-threads 2 (the run's: 1)
    done = train(run, *args, "--device", "cpu", "--resume")
    assert done.returncode == 0, done.stderr
    assert results_of(run) == results_of(finished)
    # It goes on, and says that from here its sums may round otherwise than an uninterrupted run's.
    note = "--resume: the run was trained so far with 1 torch thread(s) on cpu and goes on with 2 on cpu"
    assert note in done.stderr


def test_a_checkpoint_that_does_not_say_how_it_ran_resumes_without_a_note():
    assert how_run_differs({}, 2, "cpu") is None  # written before checkpoints recorded it
    assert how_run_differs({"torch_threads": 2, "device": "cpu"}, 2, "cpu") is None
    assert "on cuda" in how_run_differs({"torch_threads": 2, "device": "cpu"}, 2, "cuda")


def test_resume_with_other_flags_names_them(finished, tmp_path):
    run = copy_run(finished, tmp_path / "run", drop=("results.json",))
    args = [a if a != "2" else "3" for a in SMALL]  # --scales 3, --glimpses 3, --mc-samples 3
    line = one_line_error(train(run, *args, "--learning-rate", "0.002", "--resume"), 2, "--resume")
    for flag in ("--scales (run: 2, command: 3)", "--glimpses", "--mc-samples", "--learning-rate (run: 0.001"):
        assert flag in line
    assert not (run / "results.json").exists()


# ------------------------------------------------------------------------------------------------
# 3. One owner per run folder
# ------------------------------------------------------------------------------------------------


@pytest.mark.e2e  # a second process
def test_a_process_may_lock_its_own_run_folder_again(tmp_path):
    training.lock_run_dir(tmp_path / "run")
    training.lock_run_dir(tmp_path / "run")  # a second run in the same process (a notebook) is its owner
    training.release_run_dir(tmp_path / "run")
    probe = subprocess.run([sys.executable, "-c", "import sys; from agents.training import lock_run_dir; "
                            "lock_run_dir(sys.argv[1])", str(tmp_path / "run")], env=ENV, capture_output=True, text=True)
    assert probe.returncode == 0, probe.stderr  # released: another process may own it now


def test_a_run_folder_this_process_owns_still_loads(finished, tmp_path):
    """Owning a folder (a notebook that trained in it) does not change what load_run gives back."""
    run = copy_run(finished, tmp_path / "run")
    training.lock_run_dir(run)
    try:
        with warnings.catch_warnings():  # the offline subset's notice, once per process: not what is tested
            warnings.simplefilter("ignore", OfflineSubsetWarning)
            cfg, model, test_env = training.load_run(run)
        assert cfg.agent == "ram" and isinstance(model, torch.nn.Module) and test_env.num_envs > 0
    finally:
        training.release_run_dir(run)


@pytest.mark.e2e  # a second process
def test_a_second_process_is_refused_at_once_and_a_killed_owner_leaves_no_lock(tmp_path):
    run = tmp_path / "run"
    owner = subprocess.Popen([sys.executable, "-c", "import sys, time; from agents.training import lock_run_dir; "
                              "lock_run_dir(sys.argv[1]); print('locked', flush=True); time.sleep(120)", str(run)],
                             env=ENV, stdout=subprocess.PIPE, text=True)
    try:
        assert owner.stdout.readline().strip() == "locked"
        line = one_line_error(train(run, *SMALL), 2, "in use by another process", f"pid {owner.pid}", "run.lock")
        assert "--run-dir" in line
        assert sorted(p.name for p in run.iterdir()) == ["run.lock"]  # nothing of the owner's touched
    finally:
        owner.send_signal(signal.SIGKILL)
        owner.wait()
    done = train(run, *BASE, "--train-images", "32")  # the lock died with its process
    assert done.returncode == 0, done.stderr


# ------------------------------------------------------------------------------------------------
# 4. Provenance, and 5. honest counts
# ------------------------------------------------------------------------------------------------


def idx_folder(folder: Path, train: int, test: int) -> Path:
    """A $GLIMPSE_DATA_DIR of random IDX digits: ``train`` and ``test`` examples."""
    from test_data import synthetic, write_split

    write_split(folder, "train", *synthetic(train, seed=1), gz=False)
    write_split(folder, "test", *synthetic(test, seed=2), gz=True)
    return folder


def test_provenance_is_recorded_everywhere_and_printed(finished):
    recorded = [json.loads((finished / "config.json").read_text())["data"],
                torch.load(finished / "checkpoint.pt", weights_only=True)["data"],
                json.loads((finished / "results.json").read_text())["data"]]
    assert recorded[0] == recorded[1] == recorded[2]
    assert recorded[0]["train"]["kind"] == "offline" and recorded[0]["train"]["name"] == "mnist_5k.npz"
    assert (recorded[0]["train"]["size"], recorded[0]["test"]["size"]) == (4000, 1000)


def test_idx_data_are_announced_recorded_and_counts_capped_to_the_test_split(tmp_path):
    data_dir = idx_folder(tmp_path / "idx", train=64, test=10)
    env = {**ENV, "GLIMPSE_DATA_DIR": str(data_dir)}
    run = tmp_path / "run"
    done = train(run, *BASE, "--train-images", "32", env=env)
    assert done.returncode == 0, done.stderr
    assert "data train: idx, 64 examples" in done.stderr and "data test: idx, 10 examples" in done.stderr
    assert "--eval-images 64 is more than the test split holds; evaluating on its 10 examples" in done.stderr
    results = json.loads((run / "results.json").read_text())
    assert results["test_examples"] == 10 and results["data"]["test"]["kind"] == "idx"
    assert results["data"]["test"]["files"].keys() == {"t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"}

    # The same run evaluated on other data (the offline default) is refused unless asked for.
    line = one_line_error(script("evaluate.py", "--run-dir", str(run)), 2, "data differ", "--allow-other-data")
    assert "kind 'idx' -> 'offline'" in line
    other = script("evaluate.py", "--run-dir", str(run), "--allow-other-data", "--mc-samples", "1")
    assert other.returncode == 0, other.stderr
    assert json.loads(other.stdout.strip().splitlines()[-1])["test_examples"] == 10  # the run's own count
    same = script("evaluate.py", "--run-dir", str(run), "--eval-images", "500", "--mc-samples", "1", env=env)
    assert json.loads(same.stdout.strip().splitlines()[-1])["test_examples"] == 10  # never an example twice
    moved = script("evaluate.py", "--run-dir", str(run), "--data-dir", str(data_dir), "--mc-samples", "1")
    assert moved.returncode == 0, moved.stderr  # the data named where they are now, not through the environment
    # Resuming it on other data is refused too.
    (run / "results.json").unlink()
    one_line_error(train(run, *BASE, "--train-images", "32", "--resume"), 2, "--resume: the data differ")


def test_a_data_dir_without_the_data_is_an_error_not_a_fallback(tmp_path):
    done = train(tmp_path / "run", *SMALL, env={**ENV, "GLIMPSE_DATA_DIR": str(tmp_path / "nowhere")})
    one_line_error(done, 2, "GLIMPSE_DATA_DIR", "nowhere")
    one_line_error(train(tmp_path / "run2", *SMALL, "--data-dir", str(tmp_path)), 2, "--data-dir")


def test_evaluate_builds_the_model_from_the_checkpoints_own_config(finished, tmp_path):
    run = copy_run(finished, tmp_path / "run")
    config = json.loads((run / "config.json").read_text())
    (run / "config.json").write_text(json.dumps({**config, "glimpses": 5, "scales": 1}))  # a stray edit
    done = script("evaluate.py", "--run-dir", str(run), "--mc-samples", "2")
    assert done.returncode == 0, done.stderr
    evaluated = json.loads(done.stdout.strip().splitlines()[-1])
    assert evaluated["test_accuracy"] == results_of(finished)["test_accuracy"]
    (run / "config.json").unlink()
    with pytest.warns(UserWarning, match="more than the test split holds; evaluating on its 1000"), \
            warnings.catch_warnings():
        warnings.simplefilter("ignore", OfflineSubsetWarning)
        cfg, _, test_env = training.load_run(run, eval_images=5000)  # capped to the offline test split
    assert cfg.glimpses == 2 and cfg.eval_images == 1000 and cfg.images_seen == 128


# ------------------------------------------------------------------------------------------------
# 6. Bad values and damaged files: one line, exit status 2
# ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("args, message", [
    (["--train-images", "-1"], "--train-images must be >= 0; got -1"),
    (["--batch-size", "0"], "--batch-size must be >= 1; got 0"),
    (["--eval-every", "0"], "--eval-every must be >= 1"),
    (["--checkpoint-every", "-5"], "--checkpoint-every must be >= 1"),
    (["--eval-images", "0"], "--eval-images must be >= 1"),
    (["--mc-samples", "0"], "--mc-samples must be >= 1"),
    (["--glimpses", "0"], "--glimpses must be >= 1"),
    (["--learning-rate", "0"], "--learning-rate must be > 0"),
    (["--learning-rate", "nan"], "--learning-rate must be > 0; got nan"),
    (["--seed", "-1"], "--seed must be >= 0"),
    (["--torch-threads", "0"], "--torch-threads must be >= 1"),
    (["--device", "gpu"], "--device must be cpu, cuda, cuda:N or mps; got 'gpu'"),
    (["--device", "meta"], "--device must be cpu, cuda, cuda:N or mps; got 'meta'"),
    (["--seed", "99999999999999999999999"], "--seed must be >= 0 and <= 4294967295; got 99999999999999999999999"),
    (["--agent", "item-hard", "--expected-context-prob", "1.5"], "--expected-context-prob must be >= 0 and <= 1"),
    (["--agent", "ram", "--std", "-0.1"], "--std must be > 0"),
])
def test_every_numeric_flag_is_checked_at_parse_time(args, message):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(")):
        training.parse_train_config(args)


def test_bad_values_exit_2_with_one_line(tmp_path):
    one_line_error(train(tmp_path / "run", "--batch-size", "0"), 2, "--batch-size must be >= 1; got 0")
    assert not (tmp_path / "run").exists()
    one_line_error(script("evaluate.py", "--mc-samples", "0"), 2, "--mc-samples")
    one_line_error(script("visualize.py", "--count", "0"), 2, "--count")
    one_line_error(script("sb3_ppo.py", "--num-envs", "0"), 2, "--num-envs must be >= 1")


def test_damaged_run_folders_are_one_line_errors_naming_the_file(finished, tmp_path):
    a_file = tmp_path / "a-file"
    a_file.write_text("not a folder")
    one_line_error(train(a_file, *SMALL), 2, "is a file")
    one_line_error(script("evaluate.py", "--run-dir", str(a_file)), 2, "is a file")

    run = copy_run(finished, tmp_path / "run", drop=("results.json",))
    checkpoint = run / "checkpoint.pt"
    checkpoint.write_bytes(checkpoint.read_bytes()[:1000])  # truncated
    one_line_error(train(run, *SMALL, "--resume"), 2, str(checkpoint), "damaged")
    for garbage in (b"", b"garbage" * 10):
        checkpoint.write_bytes(garbage)
        with pytest.raises(ConfigError, match=f"{checkpoint} is damaged"):
            training.load_run(run)
    torch.save({"model": {}}, checkpoint)
    with pytest.raises(ConfigError, match="lacks config, optimizer"):
        training.load_run(run)
    checkpoint.unlink()
    with pytest.raises(ConfigError, match=f"{checkpoint} is missing"):
        training.load_run(run)

    config = run / "config.json"
    config.write_text(config.read_text()[:50])  # truncated, and no checkpoint to fall back on
    one_line_error(train(run, *SMALL, "--resume"), 2, str(config), "damaged")
    config.unlink()
    (run / "events.out.tfevents.0").write_text("")
    with pytest.raises(ConfigError, match="is missing"):
        training.read_json(config)


@pytest.mark.parametrize("field, value, words", [
    ("batch_size", "32", ["--batch-size is damaged", "'32' is not of type int"]),
    ("seed", True, ["--seed is damaged", "True is not of type int"]),
    ("eval_images", 64.5, ["--eval-images is damaged"]),
    ("core", "gru", ["--core is damaged", "'gru'"]),
    ("batch_size", 0, ["--batch-size must be >= 1; got 0"]),
    ("seed", -1, ["--seed must be >= 0"]),
    ("learning_rate", 1, None),  # an int is a float: loads
])
def test_a_checkpoint_with_damaged_config_values_is_one_line_not_a_traceback(finished, tmp_path, field, value, words):
    """The checkpoint's own configuration builds the model: each value is checked as the command line checks it."""
    run = copy_run(finished, tmp_path / "run")
    state = torch.load(run / "checkpoint.pt", weights_only=True)
    state["config"][field] = value
    torch.save(state, run / "checkpoint.pt")
    done = script("evaluate.py", "--run-dir", str(run), "--mc-samples", "1")
    if words is None:
        assert done.returncode == 0, done.stderr
        return
    line = one_line_error(done, 2, str(run), *words)
    assert "damaged" in line or "must be" in line


def test_visualize_draws_exactly_count_images_and_refuses_what_it_cannot_write(finished, tmp_path):
    run = copy_run(finished, tmp_path / "run")
    drawn = script("visualize.py", "--run-dir", str(run), "--count", "37")  # prime, above the run's batch of 32
    assert drawn.returncode == 0, drawn.stderr
    labels = re.search(r"labels \[([^]]*)\]", drawn.stdout).group(1).split(", ")
    assert len(labels) == 37
    with Image.open(run / "viz" / "glimpses.gif") as gif:
        assert gif.n_frames == 2  # one frame per glimpse
    a_file = tmp_path / "a-file"
    a_file.write_text("")
    for out in (a_file, a_file / "sub"):
        one_line_error(script("visualize.py", "--run-dir", str(run), "--out", str(out)), 2, f"--out {out}")
    one_line_error(script("visualize.py", "--run-dir", str(run), "--frame-ms", str(10**9)), 2, "--frame-ms")
    one_line_error(script("visualize.py", "--run-dir", str(run), "--count", "257"), 2, "--count")


def test_visualize_refuses_other_data_unless_allowed(finished, tmp_path):
    env = {**ENV, "GLIMPSE_DATA_DIR": str(idx_folder(tmp_path / "idx", train=64, test=10))}
    refused = script("visualize.py", "--run-dir", str(finished), "--out", str(tmp_path / "viz"), env=env)
    one_line_error(refused, 2, "data differ", "--allow-other-data")
    allowed = script("visualize.py", "--run-dir", str(finished), "--out", str(tmp_path / "viz"), "--count", "4",
                     "--allow-other-data", env=env)
    assert allowed.returncode == 0 and (tmp_path / "viz" / "paths.png").exists(), allowed.stderr


def test_a_checkpoint_with_non_finite_weights_or_a_damaged_data_record_is_one_line(finished, tmp_path):
    run = copy_run(finished, tmp_path / "run")
    state = torch.load(run / "checkpoint.pt", weights_only=True)
    name = next(iter(state["model"]))
    state["model"][name] = torch.full_like(state["model"][name], float("nan"))
    torch.save(state, run / "checkpoint.pt")
    for name_ in ("evaluate.py", "visualize.py"):
        one_line_error(script(name_, "--run-dir", str(run)), 2, "checkpoint.pt is damaged", f"non-finite weights {name}")
    state = torch.load(finished / "checkpoint.pt", weights_only=True)
    state["data"] = {"test": 5}
    torch.save(state, run / "checkpoint.pt")
    one_line_error(script("evaluate.py", "--run-dir", str(run)), 2, "is damaged: its data record")


# ------------------------------------------------------------------------------------------------
# 7. Tests write only inside their temporary directories
# ------------------------------------------------------------------------------------------------


def test_the_system_temp_dir_is_pytests_own(tmp_path_factory):
    """SB3's logger makes an empty ``SB3-<time>`` folder in the temp dir at every learn(): conftest points the
    temp dir (in-process and for subprocesses) inside pytest's base temp dir."""
    base = tmp_path_factory.getbasetemp().resolve()
    assert Path(tempfile.gettempdir()).resolve().is_relative_to(base)
    assert Path(os.environ["TMPDIR"]).resolve().is_relative_to(base)
    from stable_baselines3.common.logger import configure

    logger = configure(None, [])  # what SB3's learn() does when no logger is set
    assert Path(logger.dir).resolve().is_relative_to(base)
