"""Data-parallel training (issue 15): agents/distributed.py and scripts/train.py under torchrun, on the CPU
with gloo and 2 processes, one torch thread each.

- the env: a rank's rows of a global batch play exactly what those rows of one process's env play;
- the library, in 2 spawned processes: gradients averaged (a gradient missing on one rank counts as zero,
  one missing everywhere stays missing), weights broadcast, failures agreed on, a peer that is gone is
  a :class:`PeerFailure`; the agents that draw no random numbers (``item-soft``, ``spatial-soft``, ``stn``,
  ``racnn-soft``, ``fc``) trained by 2 ranks end where one process ends (within 1e-6), RAM's ranks hold
  identical parameters after every update while sampling their own actions;
- the script: ``torchrun`` with 2 processes trains ``conv`` to the parameters one process reaches
  (float reduction order: the tolerance is 1e-6, measured ~1.5e-8 after 4 Adam updates) and writes one
  run folder; RAM's ranks stay identical at every update, a rank killed mid-run stops the run with one
  line on rank 0 and the last good checkpoint kept, and ``--resume`` with 2 processes completes it to the
  uninterrupted run's parameters and results exactly (another number of processes is refused);
- bad launches: a batch that does not split over the ranks, too few GPUs: one line, exit status 2.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import torch
import torch.multiprocessing as mp

from agents import distributed, training
from agents.distributed import Context, LaunchError
from agents.trainers import AlgorithmOptions

pytestmark = pytest.mark.filterwarnings("ignore::envs.data.OfflineSubsetWarning")

ROOT = Path(__file__).resolve().parents[2]
TRAIN = str(ROOT / "scripts" / "train.py")
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "GLIMPSE_DIST_TIMEOUT": "60",
       "PYTHONPATH": os.pathsep.join(p for p in (str(Path(__file__).parent), os.environ.get("PYTHONPATH")) if p)}
for _name in ("GLIMPSE_DATA_DIR", "PYTHONWARNINGS", "RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE"):
    ENV.pop(_name, None)

RAM = ["--agent", "ram", "--env", "mnist", "--glimpse-size", "8", "--scales", "2", "--glimpses", "2",
       "--batch-size", "16", "--train-images", "80", "--eval-images", "30", "--mc-samples", "2",
       "--eval-every", "32", "--checkpoint-every", "16", "--torch-threads", "1", "--plugins", "ddp_probe"]
CONV = ["--agent", "conv", "--env", "mnist", "--batch-size", "16", "--train-images", "64", "--eval-images", "64",
        "--eval-every", "32", "--checkpoint-every", "32", "--torch-threads", "1"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def launch(run_dir: Path, *args: str, world: int = 2, extra: dict | None = None) -> list[subprocess.CompletedProcess]:
    """``scripts/train.py`` as torchrun starts it: ``world`` processes told their place by the variables
    torchrun sets (``extra`` may override them; the launcher itself is exercised by the conv test); one
    result per rank."""
    port = str(free_port())
    procs = []
    for rank in range(world):
        env = {**ENV, "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": port, "RANK": str(rank), "WORLD_SIZE": str(world),
               "LOCAL_RANK": str(rank), "LOCAL_WORLD_SIZE": str(world), **(extra or {})}
        procs.append(subprocess.Popen([sys.executable, TRAIN, "--run-dir", str(run_dir), *args], env=env,
                                      stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    done = []
    for proc in procs:
        out, err = proc.communicate(timeout=240)
        done.append(subprocess.CompletedProcess(proc.args, proc.returncode, out, err))
    return done


def one_process(run_dir: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, TRAIN, "--run-dir", str(run_dir), *args], env=ENV, capture_output=True,
                          text=True, timeout=240)


def error_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith(("error:", "stopped:"))]


def checkpoint(run_dir: Path) -> dict:
    return torch.load(run_dir / "checkpoint.pt", weights_only=True)


def results(run_dir: Path) -> dict:
    found = json.loads((run_dir / "results.json").read_text())
    found.pop("wall_seconds")
    return found


# ------------------------------------------------------------------------------------------------
# The env and the shares (in this process)
# ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("agent", ["ram", "conv"])
def test_a_ranks_rows_play_the_global_batchs_episodes(agent):
    """Rank r of 2 with B/2 rows reset with seed + r * B/2 shows, update after update, rows r*B/2 .. of the
    one-process env of B rows; its state is those rows of the whole batch's (gather_rows's layout)."""
    cfg = training.Config(agent=agent, env="mnist", glimpses=2, glimpse_size=8, batch_size=8)
    whole = training.make_env(cfg, "train", 8)
    parts = [training.make_env(cfg, "train", 4) for _ in range(2)]
    whole.reset(seed=cfg.seed)
    for rank, part in enumerate(parts):
        part.reset(seed=cfg.seed + Context(rank, 2).share(8, "--batch-size")[0])
    for _ in range(3):  # three batches of episodes
        canvases = whole.scene()[0]
        for rank, part in enumerate(parts):
            assert torch.equal(part.scene()[0], canvases[4 * rank:4 * rank + 4])
        if agent == "ram":  # play the episodes out with the same looks; same-step autoreset starts the next
            for t in range(whole.episode_steps):
                actions = torch.linspace(-0.9, 0.9, 8 * (2 + whole.num_decisions)).view(8, -1) * (t + 1) / 3
                obs = whole.step(actions)[0]
                for rank, part in enumerate(parts):
                    mine = part.step(actions[4 * rank:4 * rank + 4])[0]
                    assert torch.equal(mine["glimpse"], obs["glimpse"][4 * rank:4 * rank + 4])
        else:
            whole.reset()
            for part in parts:
                part.reset()
    state = whole.state_dict()
    for rank, part in enumerate(parts):
        assert {k: v.tolist() for k, v in Context(rank, 2).take_rows(state, 8).items()} == \
            {k: v.tolist() for k, v in part.state_dict().items()}


def test_shares_tile_the_batch_and_the_test_examples_once():
    assert [Context(r, 4).share(16, "--batch-size") for r in range(4)] == [(0, 4), (4, 4), (8, 4), (12, 4)]
    with pytest.raises(LaunchError, match=r"--batch-size 10 does not split evenly over the 4 processes"):
        Context(1, 4).share(10, "--batch-size")
    shares = [Context(r, 3).split(1000) for r in range(3)]
    assert shares == [(0, 333), (333, 333), (666, 334)]
    cfg = training.Config(agent="conv", env="mnist", batch_size=16, eval_images=60)
    widths = []
    for rank in range(2):
        test_env = training.make_test_env(cfg, Context(rank, 2))
        first, count = training.eval_share(cfg, Context(rank, 2))
        widths.append(test_env.num_envs)
        assert (first, count) == (30 * rank, 30) and count % test_env.num_envs == 0
    assert widths == [6, 6]  # the largest divisor of 30 up to the rank's 8 rows of the batch
    with pytest.raises(training.ConfigError, match=r"--eval-images 1 is fewer than the 2 processes"):
        training.eval_share(training.Config(eval_images=1), Context(0, 2))


def test_launch_variables_and_devices_are_checked():
    torchrun = {"RANK": "1", "WORLD_SIZE": "2", "LOCAL_RANK": "1", "LOCAL_WORLD_SIZE": "2"}
    assert distributed.context_from_env("cpu", {}) == Context()
    ctx = distributed.context_from_env("cpu", torchrun)
    assert (ctx.rank, ctx.world_size, ctx.backend, ctx.is_main, ctx.is_distributed) == (1, 2, "gloo", False, True)
    gpus = distributed.context_from_env("cuda", torchrun, cuda_devices=2)
    assert (gpus.device, gpus.backend) == (torch.device("cuda", 1), "nccl")
    with pytest.raises(LaunchError, match=r"--device cuda: 2 processes on this machine but 1 CUDA device\(s\)"):
        distributed.context_from_env("cuda", torchrun, cuda_devices=1)
    with pytest.raises(LaunchError, match=r"--device cuda:1 names one GPU; with 2 processes pass --device cuda"):
        distributed.context_from_env("cuda:1", torchrun, cuda_devices=2)
    with pytest.raises(LaunchError, match=r"\$RANK 2 / \$LOCAL_RANK 1 must be below"):
        distributed.context_from_env("cpu", {**torchrun, "RANK": "2"})
    with pytest.raises(LaunchError, match=r"\$WORLD_SIZE must be an integer; got 'two'"):
        distributed.context_from_env("cpu", {**torchrun, "WORLD_SIZE": "two"})
    assert distributed.timeout_from_env({"GLIMPSE_DIST_TIMEOUT": "7.5"}).total_seconds() == 7.5
    assert distributed.timeout_from_env({}).total_seconds() == distributed.DEFAULT_TIMEOUT_S
    with pytest.raises(LaunchError, match=r"\$GLIMPSE_DIST_TIMEOUT must be a positive number of seconds"):
        distributed.timeout_from_env({"GLIMPSE_DIST_TIMEOUT": "0"})
    # One process: every collective is the identity.
    t = torch.tensor([1.0, 2.0])
    assert distributed.all_reduce_sum(t) is t and t.tolist() == [1.0, 2.0]
    assert distributed.all_gather_object("x") == ["x"] and distributed.broadcast_object(3) == 3


# ------------------------------------------------------------------------------------------------
# The library in 2 processes
# ------------------------------------------------------------------------------------------------

AGENT_SETTINGS = dict(env="mnist", glimpses=2, glimpse_size=8, scales=2, batch_size=8, seed=3)
UPDATES = 3
DETERMINISTIC = ("item-soft", "spatial-soft", "stn", "racnn-soft", "fc")  # conv: through torchrun, below


def train_updates(agent: str, ctx: Context, **trainer: Any) -> tuple[dict, list[str], dict]:
    """``UPDATES`` updates as scripts/train.py makes them (its ``--algo`` trainer, ``trainer`` its flags), on
    this rank's rows: the final parameters, a digest of the parameters after every update, and what the last
    update logged."""
    cfg = training.Config(agent=agent, **AGENT_SETTINGS, algorithm=AlgorithmOptions(**trainer))
    first, rows = ctx.share(cfg.batch_size, "--batch-size")
    torch.manual_seed(cfg.seed)
    env = training.make_env(cfg, "train", rows)
    model = training.make_agent(cfg, env)
    distributed.broadcast_parameters(model)
    distributed.seed_sampling(cfg.seed)
    optimizer = torch.optim.Adam(model.parameters(), lr=cfg.learning_rate)
    steps = training.make_trainer(cfg, model, optimizer, sync_gradients=distributed.average_gradients)
    obs, _ = env.reset(seed=cfg.seed + first)
    digests = []
    for update in range(1, UPDATES + 1):
        logged, obs = steps.update(env, obs, update)
        digests.append(torch.cat([p.detach().flatten() for p in model.parameters()]).double().sum().item())
    return {k: v.clone() for k, v in model.state_dict().items()}, digests, logged


def _worker(rank: int, world: int, port: int, out: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(world),
                      LOCAL_RANK=str(rank), LOCAL_WORLD_SIZE=str(world), GLIMPSE_DIST_TIMEOUT="30")
    torch.set_num_threads(1)
    import warnings
    warnings.simplefilter("ignore")
    ctx = distributed.init_from_env("cpu")
    found: dict = {"rank": ctx.rank}
    # Gradients: a is reached on both ranks, b on rank 0 only, c on none; d is float64.
    a, b, c = (torch.nn.Parameter(torch.zeros(n)) for n in (2, 1, 3))
    d = torch.nn.Parameter(torch.zeros(2, dtype=torch.float64))
    a.grad = torch.tensor([1.0, 2.0]) * (rank + 1)
    b.grad = torch.tensor([4.0]) if rank == 0 else None
    d.grad = torch.tensor([1.0, -1.0], dtype=torch.float64) * (rank + 1)
    distributed.average_gradients([a, b, c, d])
    found["grads"] = (a.grad.tolist(), b.grad.tolist(), c.grad, d.grad.tolist())
    # Weights: every rank ends with rank 0's.
    torch.manual_seed(rank)
    net = torch.nn.Linear(3, 2)
    distributed.broadcast_parameters(net)
    found["weights"] = net.weight.tolist()
    found["sum"] = distributed.all_reduce_sum(torch.tensor([rank + 1.0])).item()
    found["rows"] = distributed.gather_rows({"keys": torch.arange(2) + 10 * rank})["keys"].tolist()
    def load() -> int:
        if rank == 1:
            raise ValueError("no data here")
        return 1

    try:
        distributed.run_everywhere(load, (ValueError,))
    except ValueError as error:
        found["agreed"] = (str(error), distributed.is_raised_everywhere(error))
    found["main"] = distributed.run_on_main(lambda: f"from rank {rank}", (ValueError,))
    # Training.
    for agent in (*DETERMINISTIC, "ram"):
        found[agent] = train_updates(agent, ctx)
    # PPO: several steps per batch, stopped early by a KL target every rank must agree on.
    found["ram-ppo"] = train_updates("ram", ctx, algo="ppo", ppo_epochs=3, minibatches=2, target_kl=1e-4)
    torch.manual_seed(0)
    distributed.seed_sampling(0)
    found["draw"] = torch.rand(3).tolist()
    torch.save(found, Path(out) / f"rank{rank}.pt")
    # A peer that is gone: rank 1 leaves, rank 0's next collective fails at once.
    if rank == 0:
        try:
            distributed.all_reduce_sum(torch.ones(1))
        except distributed.PeerFailure as error:
            found["peer"] = str(error)
    # After the processes met, an error every rank raised (a run folder's) is rank 0's to print.
    def main() -> None:
        raise training.ConfigError("--resume: the run was trained by 4 processes")

    # run_script ends a process that joined a group by os._exit (distributed.exit_process); here, to read its
    # status, by the SystemExit a process that joined none gets.
    distributed.exit_process = sys.exit
    with contextlib.redirect_stderr(io.StringIO()) as err, pytest.raises(SystemExit) as exited:
        training.run_script(main)  # ... and it ends the process group
    found["report"] = (exited.value.code, err.getvalue(), distributed.is_active())
    torch.save(found, Path(out) / f"rank{rank}.pt")


@pytest.fixture(scope="module")
def ranks(tmp_path_factory) -> list[dict]:
    """Both ranks' findings. The processes are forked from this one, which has imported what they use
    (Adam's first construction imports torch._dynamo, seconds on this machine): no import of their own."""
    out = tmp_path_factory.mktemp("ranks")
    torch.optim.Adam([torch.nn.Parameter(torch.zeros(1))])
    mp.start_processes(_worker, args=(2, free_port(), str(out)), nprocs=2, join=True, start_method="fork")
    return [torch.load(out / f"rank{r}.pt", weights_only=True) for r in range(2)]


@pytest.mark.e2e  # processes
def test_collectives_in_two_processes(ranks):
    for found in ranks:
        # a: mean of [1, 2] and [2, 4]; b: (4 + 0) / 2; c: no gradient anywhere, none; d: float64 mean.
        assert found["grads"] == ([1.5, 3.0], [2.0], None, [1.5, -1.5])
        assert found["sum"] == 3.0 and found["rows"] == [0, 1, 10, 11]
        assert found["agreed"] == ("rank 1: no data here", True)
        assert found["main"] == "from rank 0"
    torch.manual_seed(0)
    assert ranks[0]["weights"] == ranks[1]["weights"] == torch.nn.Linear(3, 2).weight.tolist()
    assert ranks[0]["draw"] != ranks[1]["draw"]  # rank 1 samples its own stream (seed + 1)
    assert "another process of the run stopped or cannot be reached" in ranks[0]["peer"]
    assert ranks[0]["report"] == (2, "error: --resume: the run was trained by 4 processes\n", False)
    assert ranks[1]["report"] == (2, "", False)


@pytest.mark.e2e  # processes
@pytest.mark.parametrize("agent", DETERMINISTIC)
def test_two_ranks_train_a_deterministic_agent_as_one_process_does(ranks, agent):
    single, *_ = train_updates(agent, Context())
    for found in ranks:
        for name, value in single.items():
            torch.testing.assert_close(found[agent][0][name], value, rtol=0, atol=1e-6)
    torch.manual_seed(AGENT_SETTINGS["seed"])
    cfg = training.Config(agent=agent, **AGENT_SETTINGS)
    initial = training.make_agent(cfg, training.make_env(cfg, "train", 1)).state_dict()
    assert max((single[n] - v).abs().max().item() for n, v in initial.items()) > 1e-4  # it did train


@pytest.mark.e2e  # processes
@pytest.mark.parametrize("run", ["ram", "ram-ppo"])
def test_ram_ranks_hold_identical_parameters_after_every_update(ranks, run):
    digests = [found[run][1] for found in ranks]
    assert digests[0] == digests[1] and len(set(digests[0])) == UPDATES  # identical, and changing
    for name, value in ranks[0][run][0].items():
        assert torch.equal(value, ranks[1][run][0][name]), name
    # What each logs is the whole batch's, the same on both ranks, though each played its own episodes.
    assert ranks[0][run][2] == ranks[1][run][2]
    assert {"accuracy", "reward"} <= set(ranks[0][run][2])


# ------------------------------------------------------------------------------------------------
# scripts/train.py
# ------------------------------------------------------------------------------------------------


@pytest.mark.e2e  # processes
def test_torchrun_trains_conv_to_the_one_process_parameters_in_one_run_folder(tmp_path):
    one, two = tmp_path / "one", tmp_path / "two"
    single = one_process(one, *CONV)
    assert single.returncode == 0, single.stderr
    done = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
                           TRAIN, "--run-dir", str(two), *CONV], env=ENV, capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stderr
    a, b = checkpoint(one), checkpoint(two)
    for name, value in a["model"].items():
        torch.testing.assert_close(b["model"][name], value, rtol=0, atol=1e-6)
        assert not torch.equal(value, torch.zeros_like(value))
    assert {k: v.tolist() for k, v in a["env"].items()} == {k: v.tolist() for k, v in b["env"].items()}
    assert (a["world_size"], b["world_size"]) == (1, 2) and len(b["torch_rng_ranks"]) == 2
    r1, r2 = results(one), results(two)
    assert (r1.pop("world_size"), r2.pop("world_size")) == (1, 2)
    assert r2["test_examples"] == 64 and abs(r1.pop("test_accuracy") - r2.pop("test_accuracy")) <= 1 / 64
    assert r1 == r2
    assert json.loads((two / "config.json").read_text())["world_size"] == 2
    assert len(list(two.glob("events.out.tfevents.*"))) == 1  # rank 0 alone writes events
    assert done.stdout.count('"world_size": 2') == 1  # ... and the results


@pytest.mark.e2e  # processes
def test_ram_stays_identical_a_killed_rank_stops_the_run_and_resume_completes_it(tmp_path):
    whole, broken = tmp_path / "whole", tmp_path / "broken"
    (whole / "probe").mkdir(parents=True)
    done = launch(whole / "run", *RAM, extra={"GLIMPSE_PROBE_DIR": str(whole / "probe")})
    assert [d.returncode for d in done] == [0, 0], done[0].stderr + done[1].stderr
    lines = [(whole / "probe" / f"rank{r}.txt").read_text().split("\n") for r in range(2)]
    params = [[line.split()[1] for line in rank if line] for rank in lines]
    canvases = [[line.split()[2] for line in rank if line] for rank in lines]
    assert params[0] == params[1] and len(set(params[0])) == 5  # every update: identical, and moving
    assert all(x != y for x, y in zip(*canvases))  # ... while playing their own episodes

    # Rank 1 dies at its 4th update: rank 0 stops with one line, the checkpoint of update 3 is kept.
    done = launch(broken, *RAM, extra={"GLIMPSE_PROBE_CRASH": "1:4"})
    assert done[1].returncode == 17 and done[0].returncode == 1
    (line,) = error_lines(done[0].stderr)
    assert "update 4: another process of the run stopped" in line and "checkpoint.pt (48 images)" in line, line
    assert "Traceback" not in done[0].stderr and error_lines(done[1].stderr) == []
    assert checkpoint(broken)["images_seen"] == 48 and not (broken / "results.json").exists()

    # Another number of processes is refused; the same completes the run exactly.
    refused = one_process(broken, *RAM, "--resume")
    assert refused.returncode == 2 and error_lines(refused.stderr) == [
        f"error: --resume: {broken} was trained by 2 processes (torchrun) and this launch has one process (no "
        "torchrun); resume it with as many (each one's episodes and random stream continue from the checkpoint)"]
    done = launch(broken, *RAM, "--resume")
    assert [d.returncode for d in done] == [0, 0], done[0].stderr + done[1].stderr
    assert results(broken) == results(whole / "run")
    a, b = checkpoint(broken), checkpoint(whole / "run")
    assert all(torch.equal(a["model"][n], b["model"][n]) for n in a["model"])
    assert all(torch.equal(x, y) for x, y in zip(a["torch_rng_ranks"], b["torch_rng_ranks"]))


@pytest.mark.e2e  # processes
def test_a_batch_that_does_not_split_over_the_ranks_is_one_line_and_status_2(tmp_path):
    """Checked before the processes meet, so rank 0 alone shows it (what the others print: below)."""
    (done,) = launch(tmp_path / "run", *CONV[:4], "--batch-size", "15", "--torch-threads", "1", world=1,
                     extra={"WORLD_SIZE": "2"})
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert error_lines(done.stderr) == [
        "error: --batch-size 15 does not split evenly over the 2 processes (WORLD_SIZE): every process plays an "
        "equal share of each batch; pass a multiple of 2"]
    assert not (tmp_path / "run").exists()


def test_a_process_that_joined_no_group_exits_by_system_exit_and_one_that_did_by_os_exit(monkeypatch):
    with pytest.raises(SystemExit) as exited:
        distributed.exit_process(3)
    assert exited.value.code == 3
    ended = []
    monkeypatch.setattr(distributed, "_joined", True)
    monkeypatch.setattr(distributed.os, "_exit", ended.append)  # os._exit(status), after the streams are flushed
    distributed.exit_process(4)
    assert ended == [4]


@pytest.mark.parametrize("error, rank, local_rank, shown", [
    # Before the processes meet, bad values and launches are the same on every process: once per machine.
    (LaunchError("--batch-size 15 ..."), 1, 1, None),
    (LaunchError("--batch-size 15 ..."), 2, 0, "error: --batch-size 15 ..."),  # the second machine's first
    (training.ConfigError("--device cuda: ..."), 3, 1, None),
    (training.ConfigError("--device cuda: ..."), 2, 0, "error: --device cuda: ..."),
    (training.TrainingStopped("update 3: the forward pass failed"), 1, 1,
     "stopped: rank 1: update 3: the forward pass failed"),  # its own: the rank it happened on says it
    (distributed.raised_everywhere(training.TrainingStopped("update 3: non-finite loss")), 1, 1, None),
    (distributed.raised_everywhere(training.TrainingStopped("update 3: non-finite loss")), 0, 0,
     "stopped: update 3: non-finite loss"),
    (distributed.PeerFailure("another process ..."), 1, 1, None),  # its cause is reported where it happened
    (distributed.PeerFailure("another process ..."), 0, 0, "stopped: another process ..."),
])
def test_each_failure_is_one_line_on_the_process_that_should_say_it(monkeypatch, capsys, error, rank, local_rank,
                                                                     shown):
    for name, value in (("RANK", rank), ("WORLD_SIZE", 4), ("LOCAL_RANK", local_rank), ("LOCAL_WORLD_SIZE", 2)):
        monkeypatch.setenv(name, str(value))

    def main() -> None:
        raise error

    with pytest.raises(SystemExit) as exited:
        training.run_script(main)
    assert exited.value.code == (2 if isinstance(error, (LaunchError, training.ConfigError)) else 1)
    assert capsys.readouterr().err.splitlines() == ([shown] if shown else [])


@pytest.mark.e2e  # processes
def test_bench_ddp_times_one_and_two_processes_side_by_side():
    done = subprocess.run([sys.executable, str(ROOT / "scripts" / "bench_ddp.py"), "--glimpses", "2", "--batch-size",
                           "8", "--updates", "1", "--repeats", "2", "--json"], env=ENV, capture_output=True, text=True,
                          timeout=240)
    assert done.returncode == 0, done.stderr
    found = json.loads(done.stdout)
    assert [(row["batch"], row["processes"]) for row in found["rows"]] == [(8, 1), (8, 2)]
    assert found["rows"][0]["ratio"] == 1.0 and all(len(row["rounds"]) == 2 for row in found["rows"])
    assert all(row["images_per_s"] > 0 for row in found["rows"])
    refused = subprocess.run([sys.executable, str(ROOT / "scripts" / "bench_ddp.py"), "--batch-size", "9"], env=ENV,
                             capture_output=True, text=True, timeout=240)
    assert refused.returncode == 2 and error_lines(refused.stderr) == [
        "error: --ranks 2: --batch-size 9 must split evenly over it (and it be >= 1)"]
