"""The benchmark scripts (bench_glimpse, bench_env, bench_torchrl, bench_train, bench_ddp) and
catch_reference.py: a bad command line or a configuration the env refuses is one line on stderr and exit
status 2, never a traceback; bench_train's ratio; bench_ddp's Ctrl-C is one line."""

from __future__ import annotations

import importlib.util
import json
import os
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from script_runs import SCRIPTS, in_process

ENV = {**os.environ, "PYTHONWARNINGS": "ignore", "OMP_NUM_THREADS": "1"}
HAS_TORCHRL = importlib.util.find_spec("torchrl") is not None


def run(script: str, *args: str) -> subprocess.CompletedProcess:
    return in_process(script, *args, env=ENV)


def assert_refused(done: subprocess.CompletedProcess, starts: str) -> None:
    """Exit status 2 and a single line on stderr, ``error: ...`` starting with ``starts``."""
    assert "Traceback" not in done.stderr, done.stderr
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 2 and len(lines) == 1 and lines[0].startswith(f"error: {starts}"), done.stderr


def import_script(name: str):
    """``scripts/<name>.py`` as a module (a script, imported by its path)."""
    spec = importlib.util.spec_from_file_location(name, SCRIPTS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # where dataclasses look up the module of its Config
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("args, starts", [
    ("--image 1x60", "--image takes CxHxW"), ("--image axbxc", "--image takes CxHxW"),
    ("--image 0x8x8", "--image takes CxHxW"), ("--image 1x8x8 1x8x8", "--image must be"),
    ("--device cuda:99", "--device"), ("--device tpu", "--device must be"),
    ("--batch 0", "--batch must be"), ("--batch -1", "--batch must be"), ("--batch", "--batch must be"),
    ("--batch 2 2", "--batch must be"), ("--size 0", "--size must be >= 1"), ("--scales 0", "--scales must be >= 1"),
    ("--factor 0", "--factor must be >= 1"), ("--glimpses 0", "--glimpses must be >= 1"),
    ("--threads 0", "--threads must be >= 1"), ("--loop-max-batch 0", "--loop-max-batch must be >= 1"),
])
def test_bench_glimpse_refuses_in_one_line(args, starts):
    assert_refused(run("bench_glimpse.py", *args.split(), "--budget", "0.01"), starts)


def test_bench_glimpse_keeps_its_documented_flags():
    """The flags and defaults of the commands in docs/benchmarks.md and scripts/device_checks.sh."""
    from agents.training import cli

    config = import_script("bench_glimpse").Config
    documented = cli(config, shlex.split("--batch 256 4096 65536 --image 1x60x60 --dtype uint8 --loop-max-batch 4096 "
                                         "--budget 1 --no-roi --json"))
    assert (documented.batch, documented.image, documented.dtype, documented.loop_max_batch, documented.budget,
            documented.roi, documented.json) == ((256, 4096, 65536), ("1x60x60",), "uint8", 4096, 1.0, False, True)
    default = cli(config, [])
    assert (default.batch, default.image, default.size, default.scales, default.factor, default.glimpses,
            default.dtype, default.budget, default.threads, default.loop_max_batch, default.roi) == (
        (32, 256, 4096), ("1x60x60", "1x100x100", "3x224x224"), 12, 3, 2, 8, "float32", 2.0, None, None, True)


def test_bench_glimpse_tiny_run():
    done = run("bench_glimpse.py", "--batch", "2", "--image", "1x16x16", "--size", "4", "--scales", "2",
               "--glimpses", "1", "--budget", "0.001", "--no-roi", "--json")
    assert done.returncode == 0, done.stderr
    assert [r["setting"] for r in json.loads(done.stdout)["rows"]][0] == "call"


@pytest.mark.parametrize("args, starts", [
    ("--num-envs abc", "--num-envs takes"), ("--num-envs 2,,3", "--num-envs takes"),
    ("--num-envs 0", "--num-envs takes"), ("--num-envs 2,2", "--num-envs takes"),
    ("--canvas 10", "--env-id glimpse/ClutteredMNIST-v0 --num-envs 1: --glimpse-size 12 is larger than the 10x10"),
    ("--canvas 20 --glimpse-size 4", "--env-id glimpse/ClutteredMNIST-v0 --num-envs 1: canvas must be"),
    ("--num-envs 100000000", "--env-id glimpse/ClutteredMNIST-v0 --num-envs 100000000: this env"),
])
def test_bench_env_refuses_in_one_line(args, starts):
    assert_refused(run("bench_env.py", *args.split(), "--steps", "1", "--budget", "0.01"), starts)


def test_catch_reference_refuses_more_games_than_memory_holds():
    assert_refused(run("catch_reference.py", "--games", "1000000000"), "--games 1000000000: this env")


@pytest.mark.skipif(not HAS_TORCHRL, reason="needs TorchRL (pip install -e '.[torchrl]')")
@pytest.mark.parametrize("args, starts", [
    ("--num-envs 0", "--num-envs takes"), ("--num-envs 2,x", "--num-envs takes"),
    ("--glimpse-size 100", "--env-id glimpse/MNIST-v0 --num-envs 4: --glimpse-size 100 is larger than the 28x28"),
    ("--num-envs 100000000", "--env-id glimpse/MNIST-v0 --num-envs 100000000: this env"),
])
def test_bench_torchrl_refuses_in_one_line(args, starts):
    assert_refused(run("bench_torchrl.py", *args.split(), "--async-max-envs", "0", "--steps", "1",
                       "--budget", "0.01"), starts)


def test_bench_torchrl_refuses_a_negative_async_limit():
    assert_refused(run("bench_torchrl.py", "--async-max-envs", "-1", "--steps", "1"), "--async-max-envs must be >= 0")


@pytest.mark.skipif(not HAS_TORCHRL, reason="needs TorchRL (pip install -e '.[torchrl]')")
@pytest.mark.parametrize("env_id", ["catch", "moving-mnist"])
def test_bench_torchrl_runs_a_task_of_one_glimpse_per_frame(env_id):
    done = run("bench_torchrl.py", "--env-id", env_id, "--num-envs", "2", "--async-max-envs", "0",
               "--glimpse-size", "4", "--scales", "1", "--steps", "2", "--budget", "0.001", "--json")
    assert done.returncode == 0, done.stderr
    (row,) = json.loads(done.stdout)["rows"]
    assert set(row["steps_per_s"]) == {"native", "wrap-torch", "wrap-numpy"}


@pytest.mark.parametrize("args", ["--algos", "--algos ppo ppo", "--algos reinforce ppo reinforce"])
def test_bench_train_refuses_no_or_repeated_algos(args):
    assert_refused(run("bench_train.py", *args.split()), "--algos must be one or more different trainers")


def test_bench_train_prints_each_algos_ratio_to_the_first():
    args = ["--batch-size", "2", "--updates", "1", "--repeats", "1", "--algos", "reinforce", "a2c"]
    done = run("bench_train.py", *args, "--json")
    assert done.returncode == 0, done.stderr
    rows = json.loads(done.stdout)["rows"]
    assert [r["algo"] for r in rows] == ["reinforce", "a2c"] * 2
    for first, other in zip(rows[::2], rows[1::2]):
        assert first["ratio"] == 1.0
        assert other["ratio"] == pytest.approx(other["images_per_s"] / first["images_per_s"])
    table = run("bench_train.py", *args)
    assert table.returncode == 0, table.stderr
    lines = table.stdout.strip().splitlines()[1:]
    assert len(lines) == 4 and all(line.endswith("x reinforce") for line in lines)
    assert lines[0].endswith(" 1.00x reinforce")


@pytest.mark.parametrize("args, starts", [
    ("--ranks 1 1", "--ranks must be different world sizes; got [1, 1]"),
    ("--batch-size 8 8", "--batch-size must be one or more different sizes >= 1; got [8, 8]"),
    ("--ranks", "--ranks must be one or more world sizes; got none"),
])
def test_bench_ddp_refuses_repeated_or_no_sizes(args, starts):
    assert_refused(run("bench_ddp.py", *args.split()), starts)


def children(pid: int) -> list[int]:
    """The processes whose parent is ``pid`` (Linux's /proc)."""
    found = []
    for entry in Path("/proc").iterdir():
        try:
            stat = (entry / "stat").read_text() if entry.name.isdigit() else ""
        except OSError:  # gone meanwhile
            continue
        if stat and int(stat.rsplit(")", 1)[1].split()[1]) == pid:  # the field after the name's ")": state, ppid
            found.append(int(entry.name))
    return found


@pytest.mark.e2e  # processes, and a Ctrl-C to all of them
@pytest.mark.skipif(not Path("/proc").is_dir(), reason="finds the workers in /proc")
def test_bench_ddp_ctrl_c_is_one_line():
    """A terminal's Ctrl-C reaches the script and its workers alike: one ``interrupted`` line, no worker's
    traceback."""
    process = subprocess.Popen([sys.executable, str(SCRIPTS / "bench_ddp.py"), "--glimpses", "2", "--batch-size", "8",
                                "--updates", "100000", "--repeats", "3"], env=ENV, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        while len(children(process.pid)) < 3 and time.monotonic() < deadline:  # 1 + 2 workers
            time.sleep(0.1)
        assert len(children(process.pid)) >= 3, "the workers did not start"
        time.sleep(2)  # into their work: building, warming up or timing
        os.killpg(process.pid, signal.SIGINT)
        out, err = process.communicate(timeout=120)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
    assert process.returncode == 130 and err.splitlines() == ["interrupted"], err
    assert out == ""
