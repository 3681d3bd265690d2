"""Benchmark data-parallel training: images/s of whole updates with 1, 2, ... processes at the same global batch.

    python scripts/bench_ddp.py                       # CPU: 1 and 2 processes (gloo), one torch thread each
    python scripts/bench_ddp.py --device cuda         # 1 .. N GPUs (nccl), N = the GPUs of this machine
    python scripts/bench_ddp.py --batch-size 1024 --ranks 1 2 4 --json

Each (global batch, world size) is a group of processes, started once and wired as ``torchrun`` wires them
(the variables :func:`agents.distributed.init_from_env` reads), that builds the env and the agent as
``scripts/train.py`` does, on its rows of the global batch, and runs its update: the agent's losses,
``backward()``, :func:`agents.distributed.average_gradients`, :func:`agents.training.check_update` (the
losses averaged over the ranks), Adam's step. After a warm-up, the groups are timed in turn, ``--repeats``
rounds of ``--updates`` updates each, interleaved so that a machine whose speed drifts slows every group
alike (a group that is not being timed waits on a pipe and uses no CPU). A round's images/s is
``updates * batch`` over its slowest rank's time; the median round is reported, with its ratio to the
first world size's at the same batch.

Every process repeats the per-update work that does not shrink with its rows (the Python of each glimpse
step, the optimizer's step over all parameters): the larger the global batch, the closer the ratio gets to
the number of processes, hence the two default batches.
"""

from __future__ import annotations

import dataclasses
import json
import multiprocessing
import os
import signal
import socket
import statistics
import time
import warnings
from dataclasses import dataclass, field
from typing import Annotated

import torch
import tyro

from agents import distributed
from agents.training import Config as TrainConfig
from agents.training import ConfigError, check_update, cli, make_agent, make_env, run_script
from agents.config import TaskOptions
from agents.ranges import Range


@dataclass
class Config:
    agent: str = "ram"
    """the agent trained (scripts/train.py's --agent)"""
    task: Annotated[TaskOptions, tyro.conf.OmitArgPrefixes] = field(default_factory=TaskOptions)
    """the task, its data, retina and glimpses (scripts/train.py's flags)"""
    batch_size: tuple[int, ...] = (128, 1024)
    """the global batches to time (images per update, shared out over the processes)"""
    ranks: tuple[int, ...] | None = None
    """the world sizes to time (default: 1 2 on the CPU, 1 .. the GPUs here with --device cuda)"""
    updates: Annotated[int, Range(1)] = 20
    """updates per timing"""
    repeats: Annotated[int, Range(1)] = 5
    """timings per world size, interleaved (the median is reported)"""
    device: str = "cpu"
    """cpu (gloo) or cuda (nccl, one GPU per process)"""
    threads: Annotated[int, Range(1)] = 1
    """torch threads per process"""
    json: bool = False
    """print JSON instead of the table"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _worker(rank: int, world: int, batch: int, port: int, cfg: Config, conn) -> None:
    """One process of a group: build, warm up, then time ``updates`` updates whenever asked.

    Ctrl-C reaches every process of the terminal's group: here it is ignored (the parent, which got it too,
    prints the one ``interrupted`` line and ends its workers), so that no worker prints a traceback."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(world),
                      LOCAL_RANK=str(rank), LOCAL_WORLD_SIZE=str(world))
    torch.set_num_threads(cfg.threads)
    warnings.simplefilter("ignore")  # the offline-data notice, once per process
    try:
        ctx = distributed.init_from_env(cfg.device)
        train_cfg = TrainConfig(agent=cfg.agent, **dataclasses.asdict(cfg.task), batch_size=batch,
                                device=str(ctx.device))
        first, rows = ctx.share(batch, "--batch-size")
        torch.manual_seed(train_cfg.seed)
        env = make_env(train_cfg, "train", rows)
        model = make_agent(train_cfg, env)
        distributed.broadcast_parameters(model)
        distributed.seed_sampling(train_cfg.seed)
        optimizer = torch.optim.Adam(model.parameters(), lr=train_cfg.learning_rate)
        obs, _ = env.reset(seed=train_cfg.seed + first)
        count = 0

        def update() -> None:  # what scripts/train.py runs per update
            nonlocal obs, count
            count += 1
            losses, obs = model.train_losses(env, obs)
            optimizer.zero_grad(set_to_none=True)
            losses["loss"].backward()
            distributed.average_gradients(model)
            check_update(losses, model, count)
            optimizer.step()

        for _ in range(3):
            update()
        conn.send(("ready", None))
        while (command := conn.recv()) != "stop":
            distributed.all_reduce_sum(torch.zeros(1, device=ctx.device))  # start together
            if ctx.device.type == "cuda":
                torch.cuda.synchronize()
            start = time.perf_counter()
            for _ in range(command):
                update()
            if ctx.device.type == "cuda":
                torch.cuda.synchronize()
            conn.send(("seconds", time.perf_counter() - start))
    except Exception as error:  # reported by the parent as one line
        conn.send(("error", f"rank {rank} of {world}: {type(error).__name__}: {error}"))
    finally:
        distributed.shutdown()


def main() -> None:
    cfg = cli(Config, description=__doc__.split("\n\n")[0])
    if cfg.device not in ("cpu", "cuda"):
        raise ConfigError(f"--device must be cpu or cuda; got {cfg.device!r}")
    gpus = torch.cuda.device_count() if cfg.device == "cuda" else 0
    if cfg.ranks == ():  # given, but with nothing to time
        raise ConfigError("--ranks must be one or more world sizes; got none")
    ranks = cfg.ranks or ((1, 2) if cfg.device == "cpu" else tuple(range(1, gpus + 1)))
    if not cfg.batch_size or min(cfg.batch_size) < 1 or len(set(cfg.batch_size)) < len(cfg.batch_size):
        raise ConfigError(f"--batch-size must be one or more different sizes >= 1; got {list(cfg.batch_size)}")
    if len(set(ranks)) < len(ranks):  # one group per (batch, world size): a size twice would pool their rounds
        raise ConfigError(f"--ranks must be different world sizes; got {list(ranks)}")
    for world in ranks:
        for batch in cfg.batch_size:
            if world < 1 or batch % world:
                raise ConfigError(f"--ranks {world}: --batch-size {batch} must split evenly over it (and it be >= 1)")
        if cfg.device == "cuda" and world > gpus:
            raise ConfigError(f"--ranks {world}: this machine has {gpus} CUDA device(s)")
    # CPU: forked from this process, which has imported what they run (Adam's first construction imports
    # torch._dynamo); CUDA must be started fresh in each process.
    context = multiprocessing.get_context("fork" if cfg.device == "cpu" else "spawn")
    if cfg.device == "cpu":
        torch.optim.Adam([torch.nn.Parameter(torch.zeros(1))])
    groups = []
    # Started with Ctrl-C ignored, which a worker inherits (through exec too), so that one spawned for CUDA
    # ignores it while it imports this script, before _worker says so; this process then takes it again.
    sigint = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        for batch in cfg.batch_size:
            for world in ranks:
                port, pipes = _free_port(), []
                for rank in range(world):
                    parent, child = context.Pipe()
                    context.Process(target=_worker, args=(rank, world, batch, port, cfg, child), daemon=True).start()
                    pipes.append(parent)
                groups.append(((batch, world), pipes))
    finally:
        signal.signal(signal.SIGINT, sigint)

    def answers(pipes) -> list:
        replies = [pipe.recv() for pipe in pipes]
        for status, value in replies:
            if status == "error":
                raise ConfigError(value)
        return [value for _, value in replies]

    try:
        for _, pipes in groups:
            answers(pipes)  # built and warmed up
        rounds: dict[tuple[int, int], list[float]] = {key: [] for key, _ in groups}
        for _ in range(cfg.repeats):
            for (batch, world), pipes in groups:
                for pipe in pipes:
                    pipe.send(cfg.updates)
                rounds[batch, world].append(cfg.updates * batch / max(answers(pipes)))
    finally:
        for _, pipes in groups:
            for pipe in pipes:
                try:
                    pipe.send("stop")
                except (BrokenPipeError, OSError):
                    pass
    median = {key: statistics.median(values) for key, values in rounds.items()}
    rows = [{"batch": batch, "processes": world, "images_per_s": median[batch, world],
             "ratio": median[batch, world] / median[batch, ranks[0]], "rounds": rounds[batch, world]}
            for (batch, world), _ in groups]
    header = {"device": cfg.device, "threads_per_process": cfg.threads, "torch": torch.__version__, "agent": cfg.agent,
              "env": cfg.task.env, "glimpses": cfg.task.glimpses, "glimpse_size": cfg.task.glimpse_size,
              "scales": cfg.task.scales,
              "updates": cfg.updates, "repeats": cfg.repeats}
    if cfg.json:
        print(json.dumps({**header, "rows": rows}, indent=1))
        return
    print(" ".join(f"{k}={v}" for k, v in header.items()))
    print(f"{'batch':>6} {'processes':>9} {'images/s':>10} {'vs ' + str(ranks[0]):>7}   rounds (images/s)")
    for row in rows:
        print(f"{row['batch']:>6} {row['processes']:>9} {row['images_per_s']:>10.0f} {row['ratio']:>6.2f}x   "
              + " ".join(f"{r:.0f}" for r in row["rounds"]))


if __name__ == "__main__":
    run_script(main)
