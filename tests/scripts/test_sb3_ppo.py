"""scripts/sb3_ppo.py end to end (a few steps in this process, and once in a subprocess), and the dataclass -> CLI
helper (tyro) agents.training.cli."""

from __future__ import annotations

import dataclasses
import os
import re
import importlib.util
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import pytest
import torch
import tyro
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from agents.training import ConfigError, cli
from script_runs import in_process, in_subprocess

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "sb3_ppo.py"


def parse_config(cls, argv):
    return cli(cls, argv)


def help_text(cls) -> str:
    """``--help`` of ``cls``'s command line, without tyro's box-drawing frame."""
    with pytest.raises(SystemExit), _captured() as out:
        cli(cls, ["--help"], "Toy script.")
    return _unboxed(out.getvalue())


def _unboxed(text: str) -> str:
    return re.sub(r"[│╭╮╰╯─]", " ", text)


def _captured():
    import contextlib
    import io

    buffer = io.StringIO()
    stack = contextlib.ExitStack()
    stack.enter_context(contextlib.redirect_stdout(buffer))
    stack.getvalue = buffer.getvalue
    return stack


def field_help(cls) -> dict[str, str]:
    """``{field: docstring}``, as tyro reads them."""
    from tyro._docstrings import get_field_docstring

    return {f.name: get_field_docstring(cls, f.name, ()) for f in dataclasses.fields(cls)}


def run_script(*args: str, status: int = 0, e2e: bool = False) -> subprocess.CompletedProcess:
    """``python scripts/sb3_ppo.py args`` in this process, or in a subprocess (``e2e``); it must exit with ``status``."""
    env = {**os.environ, "COLUMNS": "100", "PYTHONWARNINGS": "ignore"}
    result = (in_subprocess if e2e else in_process)("sb3_ppo.py", *args, env=env)
    assert result.returncode == status, f"exit {result.returncode}\nstdout:\n{result.stdout}\nstderr:\n{result.stderr}"
    return result


@pytest.mark.e2e
def test_script_trains_logs_and_saves(tmp_path):
    out = run_script("--total-timesteps", "64", "--num-envs", "4", "--n-steps", "8", "--batch-size", "16",
                     "--n-epochs", "1", "--features-dim", "16", "--eval-every", "32", "--eval-episodes", "8",
                     "--run-dir", str(tmp_path), e2e=True)
    (run,) = tmp_path.iterdir()
    assert re.fullmatch(r"mnist__ppo__1__\d+", run.name), run.name
    assert str(run) in out.stdout  # tells where the logs are
    assert (run / "model.zip").is_file()
    assert list(run.glob("events.out.tfevents.*"))

    events = EventAccumulator(str(run))
    events.Reload()
    scalars = set(events.Tags()["scalars"])
    assert {"eval/accuracy", "charts/SPS"} <= scalars, scalars
    assert any(t.startswith("train/") for t in scalars) and any(t.startswith("rollout/") for t in scalars), scalars
    accuracies = [e.value for e in events.Scalars("eval/accuracy")]
    assert len(accuracies) >= 2 and all(0.0 <= a <= 1.0 for a in accuracies)  # periodic + final
    assert any(t.startswith("hyperparameters") for t in events.Tags()["tensors"])  # the text table


def import_script():
    spec = importlib.util.spec_from_file_location("sb3_ppo", SCRIPT)  # a script, imported by its path
    sb3_ppo = importlib.util.module_from_spec(spec)
    sys.modules["sb3_ppo"] = sb3_ppo  # where inspect finds the source of its Config's docstrings
    spec.loader.exec_module(sb3_ppo)
    return sb3_ppo


def test_catch_trains_with_whole_episode_rollouts_and_shows_progress(tmp_path):
    pytest.importorskip("sb3_contrib")  # --algo recurrent-ppo; the README's install has only .[dev]
    out = run_script("--env", "catch", "--algo", "recurrent-ppo", "--total-timesteps", "184", "--num-envs", "4",
                     "--batch-size", "46", "--n-epochs", "1", "--features-dim", "8", "--eval-every", "92",
                     "--eval-episodes", "4", "--run-dir", str(tmp_path))
    assert "4 envs x 23 steps per rollout (23-step episodes), 6 px x 3 retina" in out.stdout  # ENV_DEFAULTS
    evals = re.findall(r"step +([\d,]+) \| eval/success (\d\.\d{3}) \| train", out.stdout)
    assert [int(step.replace(",", "")) for step, _ in evals] == [92, 184]  # one line per evaluation
    assert "184/184" not in out.stderr and "eval/success=" not in out.stderr  # no bar in a pipe (agents.progress)
    assert "note: --n-steps" not in out.stdout


def test_gaussian_std_and_lstm_width_reach_the_policy(tmp_path):
    sb3_contrib = pytest.importorskip("sb3_contrib")
    run_script("--env", "catch", "--algo", "recurrent-ppo", "--action-mode", "continuous", "--log-std-init", "-1.77",
               "--lstm-hidden", "16", "--total-timesteps", "92", "--num-envs", "4", "--batch-size", "46",
               "--n-epochs", "1", "--features-dim", "8", "--eval-episodes", "4", "--run-dir", str(tmp_path))
    (run,) = tmp_path.iterdir()
    policy = sb3_contrib.RecurrentPPO.load(run / "model", device="cpu").policy
    assert policy.lstm_actor.hidden_size == 16 and policy.lstm_critic.hidden_size == 16
    # RAM's location std 0.17 (log -1.77) for the 2 location and 3 paddle scores; two Adam steps of 3e-4 move it little
    assert policy.log_std.shape == (5,) and torch.allclose(policy.log_std, torch.full((5,), -1.77), atol=0.01)


def test_env_defaults_sit_under_the_flags():
    sb3_ppo = import_script()
    plain = sb3_ppo.parse_config([])
    assert plain == sb3_ppo.Config()  # MNIST: the dataclass's own defaults
    catch = sb3_ppo.parse_config(["--env", "catch"])
    assert (catch.glimpse_size, catch.scales, catch.scale_gain, catch.num_envs) == (6, 3, 4.0, 256)
    # PPO's updates as our own Catch recipe makes them: minibatches of 64 whole games, 4 epochs, Adam 3e-4
    assert (catch.batch_size, catch.n_epochs, catch.learning_rate, catch.lstm_hidden) == (64 * 23, 4, 3e-4, 128)
    assert catch.n_steps is None and catch.ent_coef == plain.ent_coef  # not in the table: the class's
    mine = sb3_ppo.parse_config(["--num-envs", "8", "--env=catch", "--scale-gain", "1", "--n-steps", "46"])
    assert (mine.env, mine.glimpse_size, mine.num_envs, mine.scale_gain, mine.n_steps) == ("catch", 6, 8, 1.0, 46)
    with pytest.raises(SystemExit):
        sb3_ppo.parse_config(["--env", "catch", "--grid", "0"])


def test_reward_mode_reaches_the_training_env_only():
    """--reward-mode sets the training env's reward; the test env keeps the final 0/1 that success_rate() reads as
    accuracy; Catch (no label) refuses the per-step modes with the env's one line (exit 2)."""
    sb3_ppo = import_script()
    cfg = sb3_ppo.parse_config(["--reward-mode", "log_prob_gain", "--num-glimpses", "3"])
    for split, mode in (("train", "log_prob_gain"), ("test", "final")):
        venv = sb3_ppo.make_env(cfg, 2, split, torch.device("cpu"))
        assert venv.get_attr("reward_mode") == [mode, mode]
    result = run_script("--env", "catch", "--reward-mode", "log_prob", status=2)
    assert result.stderr.strip().splitlines()[-1].startswith("error: --env catch: reward_mode='log_prob' scores")


def test_training_accuracy_is_reported_under_per_step_rewards(tmp_path):
    """The returns of --reward-mode log_prob are not 0/1: the training score is the env's is_success (SB3's
    rollout/success_rate), a number in every reward mode, not nan."""
    out = run_script("--reward-mode", "log_prob", "--num-glimpses", "3", "--total-timesteps", "96", "--num-envs", "8",
                     "--n-steps", "6", "--batch-size", "24", "--n-epochs", "1", "--features-dim", "8", "--eval-every",
                     "48", "--eval-episodes", "8", "--run-dir", str(tmp_path))
    scores = [float(s) for s in re.findall(r"\| train (\S+) \|", out.stdout)]
    assert len(scores) == 2 and all(0.0 <= s <= 1.0 for s in scores), out.stdout
    (run,) = tmp_path.iterdir()
    events = EventAccumulator(str(run))
    events.Reload()
    rates = [e.value for e in events.Scalars("rollout/success_rate")]
    assert rates and all(0.0 <= r <= 1.0 for r in rates)


def test_runs_started_in_the_same_second_get_their_own_folders(tmp_path):
    new_run_folder = import_script().new_run_folder
    name = "catch__recurrent-ppo__1__1796102222"
    first, second, third = (new_run_folder(tmp_path / "runs", name) for _ in range(3))
    assert [p.name for p in (first, second, third)] == [name, f"{name}-2", f"{name}-3"]
    assert all(p.is_dir() and not any(p.iterdir()) for p in (first, second, third))


def test_a_refused_run_leaves_no_folder_and_a_run_dir_it_cannot_make_is_one_line(tmp_path):
    refused = run_script("--env", "folder", "--run-dir", str(tmp_path / "runs"), status=2)  # no --data-dir
    assert "--data-dir" in refused.stderr.strip().splitlines()[-1]
    assert not (tmp_path / "runs").exists()
    a_file = tmp_path / "a-file"
    a_file.write_text("")
    with pytest.raises(ConfigError, match=f"--run-dir {a_file}: cannot make the run's folder there"):
        import_script().new_run_folder(a_file, "mnist__ppo__1__0")


def test_rollouts_default_to_whole_episodes():
    rollout_steps = import_script().rollout_steps
    assert [rollout_steps(None, n) for n in (23, 2, 6, 1, 16, 20, 40)] == [23, 16, 18, 16, 16, 20, 40]
    assert rollout_steps(40, 23) == 40  # a given --n-steps is kept


def test_help_explains_every_flag():
    sb3_ppo = import_script()
    helps = field_help(sb3_ppo.Config)
    text = re.sub(r"\s+", "", _unboxed(run_script("--help").stdout))  # tyro wraps lines anywhere
    for f in dataclasses.fields(sb3_ppo.Config):
        flag = "--" + f.name.replace("_", "-")
        if not f.init:  # computed at run time: documented, but no flag
            assert flag not in text and helps[f.name]
            continue
        assert helps.get(f.name), f"field {f.name} has no docstring"
        assert flag in text and re.sub(r"\s+", "", helps[f.name]) in text, f.name


@dataclass
class Toy:
    count: int = 3
    """how many"""
    rate: float = 0.5  # a comment works too
    name: str = "x"
    """a name"""
    fast: bool = True
    """go fast"""
    limit: int | None = None
    """an upper bound, or none"""
    mode: Literal["a", "b-c"] = "a"
    """which mode"""
    derived: tyro.conf.Suppress[int] = field(init=False, default=0)
    """computed at run time"""


def test_cli_parses_types_and_bools():
    assert parse_config(Toy, []) == Toy()
    cfg = parse_config(Toy, ["--count", "7", "--rate", "1e-3", "--name", "y", "--no-fast", "--limit", "4",
                             "--mode", "b-c"])
    assert (cfg.count, cfg.rate, cfg.name, cfg.fast, cfg.limit, cfg.mode) == (7, 1e-3, "y", False, 4, "b-c")
    assert parse_config(Toy, ["--fast"]).fast is True
    assert parse_config(Toy, ["--limit", "none"]).limit is None
    for bad in (["--count", "2.5"], ["--mode", "z"], ["--derived", "1"], ["--limit", "many"]):
        with pytest.raises(SystemExit):
            parse_config(Toy, bad)


def test_cli_help_text():
    helps = field_help(Toy)
    assert helps == {"count": "how many", "rate": "a comment works too", "name": "a name", "fast": "go fast",
                     "limit": "an upper bound, or none", "mode": "which mode", "derived": "computed at run time"}
    text = help_text(Toy)
    assert "--fast, --no-fast" in text and "--limit INT|none" in text and "{a,b-c}" in text
    assert "how many (default: 3)" in text and "go fast (default: True)" in text
    assert "--derived" not in text
