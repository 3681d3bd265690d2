"""Profile the batched env and RAM's training update on CUDA: host synchronisations, and where GPU time goes.

A synchronisation (a ``.item()``, a ``bool(tensor)``, a copy to the host) stalls the host until the GPU
has finished everything queued, so one per step caps the step rate however large the batch. PyTorch flags
each one under ``torch.cuda.set_sync_debug_mode("warn")``; this script counts those warnings by the
project line that caused them, per env step and per training update. With ``--profile N`` it also
prints ``torch.profiler``'s table of the GPU kernels (and the host-side ops) of 32 env steps at N envs
(4 episodes of 8 glimpses, so the resets are in it).

    python scripts/profile_cuda.py                       # cluttered 60x60, N = 4096
    python scripts/profile_cuda.py --num-envs 256 --steps 16 --json
    python scripts/profile_cuda.py --profile 65536
"""

from __future__ import annotations

import collections
import json
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

import gymnasium as gym
from gymnasium.vector import AutoresetMode
import torch

import envs
from agents.training import Config as TrainConfig
from agents.training import ConfigError, cli, make_agent, make_env, run_script
from agents.ranges import Range

ROOT = Path(__file__).resolve().parents[1]


@dataclass
class Config:
    num_envs: Annotated[int, Range(1)] = 4096
    """episodes stepped at once (N) while counting"""
    steps: Annotated[int, Range(1)] = 32
    """env steps counted (4 episodes of 8 glimpses)"""
    updates: Annotated[int, Range(1)] = 4
    """RAM training updates counted"""
    profile: int | None = None
    """also profile 32 env steps at this many envs; 'none' skips it"""
    json: bool = False
    """print JSON instead of the table"""


def count_syncs(fn: Callable[[], object], repeats: int) -> dict[str, float]:
    """Synchronisations per call of ``fn``, by ``file:line`` (relative to the repository) of the op."""
    counts: collections.Counter[str] = collections.Counter()
    torch.cuda.synchronize()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        torch.cuda.set_sync_debug_mode("warn")
        try:
            for _ in range(repeats):
                fn()
        finally:
            torch.cuda.set_sync_debug_mode("default")
    for w in caught:
        if "synchronizing" not in str(w.message):
            continue
        path = Path(w.filename)
        where = str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else path.name
        counts[f"{where}:{w.lineno}"] += 1
    return {where: n / repeats for where, n in counts.most_common()}


def main() -> None:
    args = cli(Config, description=__doc__.split("\n\n")[0])
    if not torch.cuda.is_available():
        raise ConfigError("profile_cuda.py needs a CUDA device")
    device = torch.device("cuda")

    env, actions = make_cluttered(args.num_envs, args.steps, device)
    it = iter(actions * 2)
    env.step(next(it))  # warm-up
    report = {
        "reset": count_syncs(lambda: env.reset(seed=0), 2),
        "step": count_syncs(lambda: env.step(next(it)), args.steps),
    }

    cfg = TrainConfig(agent="ram", env="cluttered-60", glimpses=8, glimpse_size=12, scales=3, batch_size=args.num_envs,
                      device="cuda")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        train_env = make_env(cfg, "train", cfg.batch_size)
    model = make_agent(cfg, train_env)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    obs, _ = train_env.reset(seed=0)

    def update() -> None:
        nonlocal obs
        losses, obs = model.train_losses(train_env, obs)  # what scripts/train.py runs per update
        optimizer.zero_grad()
        losses["loss"].backward()
        optimizer.step()

    update()  # warm-up
    report["ram update (8 glimpses)"] = count_syncs(update, args.updates)

    if args.json:
        print(json.dumps({"num_envs": args.num_envs, "torch": torch.__version__, "syncs": report}, indent=1))
        return
    print(f"device={torch.cuda.get_device_name(device)} torch={torch.__version__} N={args.num_envs}")
    for phase, where in report.items():
        print(f"{phase}: {sum(where.values()):.2f} synchronisations per call")
        for line, n in where.items():
            print(f"    {n:6.2f}  {line}")
    if args.profile:
        profile_env(args.profile, device)


def make_cluttered(num_envs: int, steps: int, device: torch.device):
    """Cluttered 60x60 with RAM's retina (8 glimpses, 3 scales of 12 px), reset, and ``steps`` random actions."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        env = gym.make_vec(envs.task_of("cluttered-60").env_id, num_envs=num_envs, glimpse_size=12, scales=3,
                           num_glimpses=8, device=device, autoreset_mode=AutoresetMode.SAME_STEP)
    gen = torch.Generator(device=device).manual_seed(0)
    actions = [torch.rand(env.action_space.shape, generator=gen, device=device) * 2 - 1 for _ in range(steps)]
    env.reset(seed=0)
    return env, actions


def profile_env(num_envs: int, device: torch.device) -> None:
    """torch.profiler's tables (GPU kernels by time, then host ops) of 32 steps at ``num_envs``."""
    from torch.profiler import ProfilerActivity, profile

    env, actions = make_cluttered(num_envs, 32, device)
    for action in actions:  # warm-up: every kernel and every allocation once
        env.step(action)
    torch.cuda.synchronize()
    with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
        for action in actions:
            env.step(action)
        torch.cuda.synchronize()
    table = prof.key_averages()
    print(f"\n32 env steps at N={num_envs}, by GPU time:")
    print(table.table(sort_by="self_device_time_total", row_limit=25, max_name_column_width=60))
    print(f"\n32 env steps at N={num_envs}, by host time:")
    print(table.table(sort_by="self_cpu_time_total", row_limit=15, max_name_column_width=60))


if __name__ == "__main__":
    run_script(main)
