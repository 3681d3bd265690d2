"""Nothing a user loads runs code, nothing written follows a planted link, and every mistake is one line
(issue 22): checkpoints load tensors and plain values only, recorded plugins are imported only when the
command names them, run-folder files are never written through symbolic links, writes are atomic and
leave nothing behind when they fail, and resume completes every half-made or finished folder sensibly."""

from __future__ import annotations

import errno
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import pytest
import torch

from agents import distributed, run_folder, training
from agents.training import ConfigError
from envs.data import OfflineSubsetWarning
from envs.files import atomic_write, write_text_atomic
from test_runs import BASE, ENV, SMALL, copy_run, idx_folder, one_line_error, results_of, script, train

pytestmark = pytest.mark.filterwarnings("ignore::envs.data.OfflineSubsetWarning")


@pytest.fixture(scope="module")
def finished(tmp_path_factory) -> Path:
    run = tmp_path_factory.mktemp("safety") / "run"
    done = train(run, *SMALL)
    assert done.returncode == 0, done.stderr
    return run


class RunsCode:
    """A pickled object that, if ever unpickled, creates ``marker`` (as a shell command could do anything)."""

    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return open, (self.marker, "w")


# ------------------------------------------------------------------------------------------------
# 1. Loading a checkpoint runs no code
# ------------------------------------------------------------------------------------------------


def test_a_checkpoint_holding_code_is_refused_without_running_it(finished, tmp_path):
    run = copy_run(finished, tmp_path / "run", drop=("results.json",))
    marker = tmp_path / "pwned"
    state = torch.load(run / "checkpoint.pt", weights_only=True)
    state["elapsed"] = RunsCode(marker)
    torch.save(state, run / "checkpoint.pt")
    with pytest.raises(ConfigError, match="never loaded"):
        training.read_checkpoint(run / "checkpoint.pt")
    for done in (script("evaluate.py", "--run-dir", str(run)), train(run, *SMALL, "--resume"),
                 script("visualize.py", "--run-dir", str(run))):
        one_line_error(done, 2, "checkpoint.pt", "never loaded")
    assert not marker.exists()


@pytest.mark.parametrize("key, value, what", [
    ("images_seen", -64, "images_seen entry"), ("images_seen", "64", "images_seen entry"),
    ("elapsed", float("nan"), "elapsed entry"), ("torch_rng", torch.zeros(3), "torch_rng entry"),
    ("optimizer", {"state": 1}, "optimizer entry"), ("model", {"w": 1.0}, "model entry"),
    ("torch_threads", 0, "torch_threads entry"), ("device", 0, "device entry"),
])
def test_damaged_checkpoint_entries_are_named(finished, tmp_path, key, value, what):
    path = tmp_path / "checkpoint.pt"
    state = torch.load(finished / "checkpoint.pt", weights_only=True)
    state[key] = value
    torch.save(state, path)
    with pytest.raises(ConfigError, match=f"{path} is damaged: its {what} is not what scripts/train.py writes"):
        training.read_checkpoint(path)


def restore(run: Path, state: dict):
    """:func:`training.restore_checkpoint` of ``state`` into a fresh model, optimizer and env of ``run``'s config."""
    cfg = training.config_from_flat(state["config"])
    env = training.make_env(cfg, "train", cfg.batch_size)
    model = training.make_agent(cfg, env)
    optimizer = torch.optim.Adam(model.parameters(), lr=cfg.learning_rate)
    return training.restore_checkpoint(run / "checkpoint.pt", state, cfg, model, optimizer, env,
                                       distributed.Context())


@pytest.mark.parametrize("damage, message", [
    (lambda s: s["model"].pop(next(iter(s["model"]))), "its weights do not fit"),
    (lambda s: s["model"].update({k: torch.zeros(3) for k in list(s["model"])[:1]}), "its weights do not fit"),
    (lambda s: s["optimizer"]["param_groups"].clear(), "its optimizer state does not fit"),
    (lambda s: s["env"].pop("keys"), "its env state does not fit"),
    (lambda s: s.update(torch_rng_ranks=[torch.zeros(5, dtype=torch.uint8)]), "its random stream does not fit"),
    (lambda s: s.update(images_seen=100), "images_seen \\(100\\) is not a count of whole --batch-size 32 batches"),
    (lambda s: s.update(images_seen=6400), "images_seen \\(6400\\) is not a count"),
])
def test_a_checkpoint_that_does_not_fit_its_run_is_one_config_error(finished, damage, message):
    state = torch.load(finished / "checkpoint.pt", weights_only=True)
    damage(state)
    with pytest.raises(ConfigError, match=message):
        restore(finished, state)


def test_resume_with_weights_that_do_not_fit_is_one_line(finished, tmp_path):
    run = copy_run(finished, tmp_path / "run", drop=("results.json",))
    state = torch.load(run / "checkpoint.pt", weights_only=True)
    state["model"].pop(next(iter(state["model"])))
    torch.save(state, run / "checkpoint.pt")
    one_line_error(train(run, *SMALL, "--resume"), 2, "checkpoint.pt", "weights do not fit")


# ------------------------------------------------------------------------------------------------
# 2. A run's recorded plugins are never imported unasked
# ------------------------------------------------------------------------------------------------


def test_recorded_plugins_are_imported_only_when_the_command_names_them(finished, tmp_path):
    run = copy_run(finished, tmp_path / "run")
    marker = tmp_path / "imported"
    (run / "payload.py").write_text(f"open({str(marker)!r}, 'w').close()\n")
    state = torch.load(run / "checkpoint.pt", weights_only=True)
    state["config"]["plugins"] = ["payload"]
    torch.save(state, run / "checkpoint.pt")
    env = {**ENV, "PYTHONPATH": os.pathsep.join([str(run), ENV.get("PYTHONPATH", "")])}
    line = one_line_error(script("evaluate.py", "--run-dir", str(run), env=env), 2, "--plugins payload")
    assert "never imports" in line and not marker.exists()
    one_line_error(script("visualize.py", "--run-dir", str(run), env=env), 2, "--plugins payload")
    assert not marker.exists()
    with pytest.raises(ConfigError, match="--plugins payload"):
        training.load_run(run)
    assert not marker.exists() and "payload" not in sys.modules
    asked = script("evaluate.py", "--run-dir", str(run), "--plugins", "payload", "--mc-samples", "1", env=env)
    assert asked.returncode == 0 and marker.exists(), asked.stderr  # named by the user: imported


def test_a_misspelt_plugin_is_one_line():
    with pytest.raises(ConfigError, match="--plugins: no module named 'no_such_plugin_xyz'"):
        training.parse_train_config(["--plugins", "no_such_plugin_xyz"])
    with pytest.raises(ConfigError, match="no module named 'no_such_plugin_xyz.sub'"):
        training.import_plugins(["no_such_plugin_xyz.sub"])


# ------------------------------------------------------------------------------------------------
# 3. Writes never follow links; config and results are written atomically
# ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["run.lock", "config.json"])
def test_a_link_in_a_run_folder_is_refused_and_its_target_untouched(finished, tmp_path, name):
    victim = tmp_path / "victim.txt"
    victim.write_text("precious\n")
    run = copy_run(finished, tmp_path / "run", drop=("results.json",))
    (run / name).unlink(missing_ok=True)
    (run / name).symlink_to(victim)
    one_line_error(train(run, *SMALL, "--resume"), 2, name, "symbolic link")
    assert victim.read_text() == "precious\n"
    with pytest.raises(ConfigError, match="symbolic link"):
        training.load_run(run)
    fresh = tmp_path / "fresh"
    fresh.mkdir()
    (fresh / "run.lock").symlink_to(victim)
    with pytest.raises(ConfigError, match="run.lock is a symbolic link"):
        training.lock_run_dir(fresh)
    assert victim.read_text() == "precious\n"


def test_atomic_writes_replace_a_link_instead_of_writing_through_it(tmp_path):
    victim = tmp_path / "victim.txt"
    victim.write_text("precious\n")
    (tmp_path / "config.json").symlink_to(victim)
    write_text_atomic(tmp_path / "config.json", "{}")
    assert victim.read_text() == "precious\n"
    assert not (tmp_path / "config.json").is_symlink() and (tmp_path / "config.json").read_text() == "{}"


def test_a_ctrl_c_just_after_the_temporary_is_made_still_removes_it(tmp_path, monkeypatch):
    real_mkstemp = tempfile.mkstemp

    def mkstemp_then_ctrl_c(*args, **kwargs):  # the signal lands before atomic_file has the temporary's name
        made = real_mkstemp(*args, **kwargs)
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(0.05)  # Python runs the handler at its next check, inside this function
        return made

    monkeypatch.setattr(tempfile, "mkstemp", mkstemp_then_ctrl_c)
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)  # a script's Ctrl-C (a test worker's may differ)
    try:
        with pytest.raises(KeyboardInterrupt):
            write_text_atomic(tmp_path / "config.json", "{}")
    finally:
        signal.signal(signal.SIGINT, previous)
    assert list(tmp_path.iterdir()) == []


def test_a_failed_or_interrupted_write_keeps_the_old_file_and_leaves_no_temporary(tmp_path, monkeypatch):
    path = tmp_path / "checkpoint.pt"
    training.save_checkpoint(path, {"a": torch.ones(2)})
    synced = []
    real_fsync = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: (synced.append(fd), real_fsync(fd)))
    training.save_checkpoint(path, {"a": torch.ones(3)})
    assert synced, "the checkpoint is flushed to disk before its rename"

    def disk_full(payload, file):
        file.write(b"half a checkpoint")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(torch, "save", disk_full)
    with pytest.raises(OSError, match="No space left"):
        training.save_checkpoint(path, {"a": torch.zeros(9)})

    def interrupted(file):
        file.write(b"x")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        atomic_write(tmp_path / "config.json", interrupted)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint.pt"]

    def interrupted_inside_a_writer_whose_clean_up_fails(file):  # torch.save's zip writer, Ctrl-C mid-record
        try:
            file.write(b"x")
            raise KeyboardInterrupt
        finally:
            raise RuntimeError("[enforce fail at inline_container.cc] unexpected pos")

    with pytest.raises(KeyboardInterrupt):  # still a Ctrl-C: the script stops with its line and status 130
        atomic_write(tmp_path / "checkpoint.pt", interrupted_inside_a_writer_whose_clean_up_fails)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint.pt"]
    assert torch.load(path, weights_only=True)["a"].shape == (3,)


@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="needs /proc to tell the checkpoint's file")
def test_a_full_disk_stops_training_in_one_line_keeping_nothing_half_written(tmp_path, monkeypatch):
    real_fsync = os.fsync

    def fsync(fd):  # the disk fills up as the checkpoint's temporary file is flushed
        if ".checkpoint.pt." in os.readlink(f"/proc/self/fd/{fd}"):
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_fsync(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    run = tmp_path / "run"
    line = one_line_error(train(run, *SMALL), 1, "cannot write", "No space left on device")
    assert "no checkpoint was written" in line
    assert sorted(p.name for p in run.iterdir() if not p.name.startswith("events")) == ["config.json", "run.lock"]


def test_a_folder_that_cannot_be_written_is_one_line(tmp_path, monkeypatch):
    def read_only(*args, **kwargs):
        raise PermissionError(errno.EROFS, "Read-only file system")

    monkeypatch.setattr(run_folder, "open_no_follow", read_only)
    with pytest.raises(ConfigError, match="cannot write there \\(Read-only file system\\)"):
        training.lock_run_dir(tmp_path / "run")


# ------------------------------------------------------------------------------------------------
# Resume: half-made folders start, finished ones stand, identical data elsewhere are the same data
# ------------------------------------------------------------------------------------------------


def test_resume_of_an_empty_or_half_made_folder_starts_it(finished, tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    (run / "run.lock").write_text("")  # what a run killed before writing config.json leaves
    done = train(run, *SMALL, "--resume")
    assert done.returncode == 0 and "holds no run yet; starting it" in done.stderr, done.stderr
    assert results_of(run) == results_of(finished)


def test_a_finished_run_without_its_checkpoint_is_still_finished(finished, tmp_path):
    run = copy_run(finished, tmp_path / "run", drop=("checkpoint.pt",))
    before = (run / "results.json").read_bytes()
    done = train(run, *SMALL, "--resume")
    assert done.returncode == 0 and "nothing to do" in done.stderr, done.stderr
    assert (run / "results.json").read_bytes() == before and not (run / "checkpoint.pt").exists()


def test_resume_with_the_same_data_in_another_folder(tmp_path):
    data_a = idx_folder(tmp_path / "A", train=64, test=64)
    args = [*BASE, "--train-images", "64", "--checkpoint-every", "32", "--eval-every", "64"]
    run = tmp_path / "run"
    done = train(run, *args, "--data-dir", str(data_a))
    assert done.returncode == 0, done.stderr
    (run / "results.json").unlink()
    data_b = tmp_path / "B"
    shutil.copytree(data_a, data_b)
    done = train(run, *args, "--data-dir", str(data_b), "--resume")
    assert done.returncode == 0, done.stderr
    assert json.loads((run / "config.json").read_text())["data_dir"] == str(data_a)  # the record of the start
    other = idx_folder(tmp_path / "C", train=64, test=32)  # other contents: still refused
    (run / "results.json").unlink()
    one_line_error(train(run, *args, "--data-dir", str(other), "--resume"), 2, "the data differ")


# ------------------------------------------------------------------------------------------------
# One line, not a traceback
# ------------------------------------------------------------------------------------------------


def test_a_run_folder_name_that_is_not_utf8_is_one_line():
    with pytest.raises(ConfigError, match="--run-dir must be valid UTF-8 text"):
        training.parse_train_config(["--run-dir", "runs/\udcff"])


def test_ppo_diverging_inside_its_first_update_stops_in_one_line(tmp_path):
    line = one_line_error(train(tmp_path / "run", *BASE, "--algo", "ppo", "--learning-rate", "1e10",
                                "--train-images", "64"), 1, "update 1")
    assert "diverged" in line


@pytest.mark.e2e  # a signal to a process
def test_ctrl_c_stops_cleanly_and_the_run_resumes(tmp_path):
    run = tmp_path / "run"
    args = [*BASE, "--train-images", "100000", "--eval-every", "100000", "--checkpoint-every", "32"]
    # The run starts with SIGINT's default disposition, as a shell's foreground job does, whatever the test
    # runner's process has (an ignored SIGINT is inherited, and Python then leaves it ignored).
    proc = subprocess.Popen([sys.executable, str(Path(__file__).parents[2] / "scripts" / "train.py"),
                             "--run-dir", str(run), *args], env=ENV, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.monotonic() + 120
    while not (run / "checkpoint.pt").exists() and time.monotonic() < deadline:
        time.sleep(0.2)
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 130 and "Traceback" not in stderr, stderr
    lines = [line for line in stderr.splitlines() if line.startswith("interrupted:")]
    assert len(lines) == 1 and "--resume" in lines[0], stderr
    assert not [p for p in run.iterdir() if p.name.endswith(".tmp")]
    training.read_checkpoint(run / "checkpoint.pt")  # whole


def test_config_mistakes_of_the_other_scripts_exit_2(tmp_path):
    one_line_error(script("sb3_ppo.py", "--grid", "4", "--action-mode", "continuous", "--run-dir", str(tmp_path)), 2, "--grid 4 needs --action-mode discrete")
    one_line_error(script("compare.py", "--agents", "nope", "--out", str(tmp_path / "c")), 2, "--agents must list")


# ------------------------------------------------------------------------------------------------
# 7. Evaluation counts are capped to the test split everywhere
# ------------------------------------------------------------------------------------------------


def test_an_evaluation_count_above_the_test_split_is_capped_with_a_warning():
    cfg = training.Config(agent="ram", env="mnist", glimpse_size=8)
    built = []

    def build(count):
        built.append(count)
        return training.make_env(cfg, "test", count)

    with warnings.catch_warnings(record=True) as notes:
        warnings.simplefilter("always")
        env, count = training.capped_to_test_split(1500, "--eval-episodes", build)
    assert count == 1000 and env.num_envs == 1000 and built == [1500, 1000]
    assert any("--eval-episodes 1500 is more than the test split holds" in str(n.message) for n in notes)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        warnings.simplefilter("ignore", OfflineSubsetWarning)
        assert training.capped_to_test_split(16, "--eval-episodes", build)[1] == 16


def test_an_envs_refusal_names_the_flag_that_set_the_argument(tmp_path, monkeypatch):
    """The env's structured errors (glimpse.checks.ArgumentError) name the flag; the lines as the scripts print
    them (ConfigError), whatever the keyword is called inside."""
    monkeypatch.delenv("GLIMPSE_DATA_DIR", raising=False)

    def refusal(**kwargs) -> str:
        with pytest.raises(ConfigError) as caught:
            training.make_env(training.Config(agent="ram", **kwargs), "train", 2)
        return str(caught.value)

    assert refusal(env="mnist", scales=10) == (
        "--env mnist: --scales 10 is too many for the 28x28 canvas: the scale-3 window (64 px) already covers the "
        "whole canvas from any glimpse centre (>= 2 x 28 px), so the scales above it add only padding; use scales <= 4 "
        "(or a smaller glimpse_size or factor)")
    assert refusal(env="catch", glimpse_size=25) == "--env catch: --glimpse-size 25 is larger than the 24x24 canvas"
    assert refusal(env="folder").startswith("--env folder: task='folder' needs --data-dir <root>: a folder of class ")
    assert refusal(env="mnist", data_dir=str(tmp_path)) == (
        f"--env mnist: --data-dir {str(tmp_path)!r} holds no mnist train files: looked for "
        f"train-images-idx3-ubyte[.gz] and train-labels-idx1-ubyte[.gz] in {tmp_path}/mnist, {tmp_path}/MNIST/raw, "
        f"{tmp_path}")
