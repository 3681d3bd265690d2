"""scripts/bench_peer.py: its command line, its one-line errors, and (where ap-gym is installed, which this
project does not require) a tiny run and ap-gym's env on our digits."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from script_runs import in_process, in_subprocess

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "bench_peer.py"
HAS_AP_GYM = importlib.util.find_spec("ap_gym") is not None


def run(*args: str, e2e: bool = False) -> subprocess.CompletedProcess:
    """``python scripts/bench_peer.py args`` in this process, or in a subprocess (``e2e``)."""
    env = {**os.environ, "COLUMNS": "100", "PYTHONWARNINGS": "ignore"}
    return (in_subprocess if e2e else in_process)("bench_peer.py", *args, env=env)


def test_help_names_every_flag():
    done = run("--help")
    assert done.returncode == 0, done.stderr
    for flag in ("--settings", "--budget", "--seed", "--threads", "--json"):
        assert flag in done.stdout


@pytest.mark.e2e  # the script in a subprocess: its exit as the shell sees it
@pytest.mark.skipif(HAS_AP_GYM, reason="ap_gym is importable here, so its absence cannot be shown")
def test_without_ap_gym_one_line_and_exit_2():
    done = run("--settings", "2:5:2", "--budget", "0.01", e2e=True)
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ap_gym cannot be imported"), done.stderr
    assert "pip install ap-gym" in lines[0] and done.stdout == ""


def import_script():
    spec = importlib.util.spec_from_file_location("bench_peer", SCRIPT)  # a script, imported by its path
    bench_peer = importlib.util.module_from_spec(spec)
    sys.modules["bench_peer"] = bench_peer  # where dataclasses look up the module of its Config
    spec.loader.exec_module(bench_peer)
    return bench_peer


def test_a_bad_setting_is_one_line_naming_it():
    done = run("--settings", "64:5:16", "64:5")  # checked before ap_gym is imported
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert lines == ["error: --settings takes N:g:T with three positive integers (e.g. 64:5:16); got '64:5'"]


@pytest.mark.parametrize("bad", ["64:5", "64:0:16", "a:5:16", "-1:5:16", "64:5:16:1", "64:29:16"])
def test_parse_setting_refuses(bad):
    from agents.training import ConfigError

    with pytest.raises(ConfigError, match=f"--settings.*got {bad!r}"):
        import_script().parse_setting(bad)


def test_parse_setting():
    bench_peer = import_script()
    assert bench_peer.parse_setting("256:8:6") == bench_peer.Setting(num_envs=256, glimpse=8, steps=6)


@pytest.mark.skipif(not HAS_AP_GYM, reason="needs ap-gym (pip install ap-gym==0.7.1 aiohttp, a separate venv)")
def test_runs_against_ap_gym():
    done = run("--settings", "3:5:2", "--budget", "0.01", "--json")
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    (row,) = report["rows"]
    assert (row["num_envs"], row["glimpse"], row["steps"]) == (3, 5, 2) and row["blocks"] >= 5
    assert row["ratio"] == pytest.approx(row["ours_steps_per_s"] / row["ap_gym_steps_per_s"])
    assert row["ratio_numpy"] == pytest.approx(row["ours_numpy_steps_per_s"] / row["ap_gym_steps_per_s"])


@pytest.mark.skipif(not HAS_AP_GYM, reason="needs ap-gym (pip install ap-gym==0.7.1 aiohttp, a separate venv)")
def test_ap_gym_env_shows_our_digits_at_the_settings_asked():
    import ap_gym
    from envs.data import load_digits

    bench_peer = import_script()
    env = ap_gym.make_vec(bench_peer.register_ap_gym_digits(ap_gym, bench_peer.Setting(4, 6, 3)), num_envs=4)
    obs, info = env.reset(seed=1)
    assert obs["glimpse"].shape == (4, 6, 6, 1)
    digits = load_digits("mnist", "train")
    shown = env.unwrapped.image_perception_module.current_images  # (4, 28, 28, 1) in [0, 1]
    expected = digits.images.numpy()[info["index"]][..., None] / 255
    np.testing.assert_allclose(shown, expected, atol=1e-6)
    steps = 0
    while True:  # terminated after exactly T = 3 steps, as our num_glimpses=3
        steps += 1
        _, _, terminated, _, _ = env.step(env.action_space.sample())
        if terminated.any():
            break
    assert steps == 3 and terminated.all()
    env.close()
