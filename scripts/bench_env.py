"""Benchmark the batched glimpse env against gymnasium's SyncVectorEnv over the single env.

Both run the same registered id with the same configuration, seed and pre-generated random actions (action
sampling is not timed), in SAME_STEP autoreset mode, so they play the very same episodes (checked before
timing). Timed blocks of ``--steps`` steps alternate between the two and the medians are compared: the
machines are noisy, so read the ratios, which come from one run, rather than the absolute rates.

- batched: ``gym.make_vec(id, num_envs=N, autoreset_mode=SAME_STEP)``, the registry's
  ``vector_entry_point`` (one ``GlimpseVectorEnv`` stepping all N episodes as tensors);
- sync: ``gym.make_vec(id, num_envs=N, vectorization_mode="sync")``, N single ``GlimpseEnv``s stepped in a
  Python loop by gymnasium's ``SyncVectorEnv``.

With ``--device cuda`` only the batched env runs (with ``torch.cuda.synchronize`` around every timed block),
by default also at N = 4096 and 65536.

    python scripts/bench_env.py                                  # cluttered 60x60, N = 1, 16, 256
    python scripts/bench_env.py --num-envs 256 --budget 1 --json
    python scripts/bench_env.py --device cuda
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
import dataclasses
from dataclasses import asdict, dataclass, field
from typing import Annotated, Literal

import gymnasium as gym
import numpy as np
import torch
import tyro
from gymnasium.vector import AutoresetMode, VectorEnv

import envs  # importing envs registers glimpse/...
from agents.benchmarking import interleaved_medians, parse_sizes
from agents.scripting import in_flag_words
from agents.training import ConfigError, cli, run_script
from agents.config import Retina
from agents.ranges import MAX_SEED, Range


@dataclass
class Config:
    env_id: str = "glimpse/ClutteredMNIST-v0"
    """registered id (or short name) to run (see envs.TASKS)"""
    canvas: Annotated[int | None, Range(3)] = 60
    """canvas side in pixels; 'none' keeps the id's default (ignored by MNIST, which is 28x28)"""
    distractors: Annotated[int | None, Range(0)] = 4
    """clutter fragments (cluttered and moving-mnist only); 4 on 60x60 as in RAM's cluttered MNIST"""
    retina: Annotated[Retina, tyro.conf.OmitArgPrefixes] = field(
        default_factory=lambda: Retina(glimpse_size=12, scales=3))
    """the retina (12 px at 3 scales)"""
    num_glimpses: Annotated[int, Range(1)] = 8
    """glimpses per classification episode (ignored by moving-mnist and catch: one per frame)"""
    action_mode: Literal["continuous", "discrete"] = "continuous"
    """action space of both envs"""
    num_envs: str | None = None
    """comma-separated N to measure, e.g. '16,256'; 'none': 1,16,256 (cpu) or 1,16,256,4096,65536 (cuda)"""
    device: str = "cpu"
    """torch device of the batched env; on 'cuda' the sync env is skipped"""
    steps: Annotated[int, Range(1)] = 32
    """env steps per timed block (4 episodes of 8 glimpses, so autoresets are timed too)"""
    budget: Annotated[float, Range(0, open_low=True)] = 2.0
    """seconds of timing per N, shared by the two envs (at least 3 blocks each)"""
    seed: Annotated[int, Range(0, MAX_SEED)] = 0
    """seed of the episodes and of the pre-generated actions"""
    threads: Annotated[int | None, Range(1)] = None
    """torch intra-op threads; 'none' keeps torch's default"""
    json: bool = False
    """print one JSON object instead of the table"""


@dataclass
class Row:
    num_envs: int
    batched_steps_per_s: float
    sync_steps_per_s: float | None
    ratio: float | None
    blocks: int


def env_kwargs(cfg: Config) -> dict:
    """The configuration, restricted to the options the id's task takes (a task whose canvas is fixed,
    like MNIST's 28x28, keeps it)."""
    spec = envs.task_of(cfg.env_id)
    takes = {f.name for f in dataclasses.fields(spec.options)}
    wanted = dict(canvas=cfg.canvas, distractors=cfg.distractors,
                  num_glimpses=cfg.num_glimpses if spec.is_still else None)
    task = {name: value for name, value in wanted.items() if value is not None and name in takes}
    if "canvas" in task:
        try:
            spec.configure(None, **task)
        except ValueError:
            del task["canvas"]
    return dict(**asdict(cfg.retina), action_mode=cfg.action_mode, **task)


def make_envs(cfg: Config, n: int, device: torch.device) -> tuple[VectorEnv, VectorEnv | None]:
    """The batched env and (on the CPU) the sync one at N = ``n``; what the task refuses (a retina larger
    than the canvas, more envs than memory holds, ...) is a :class:`ConfigError` in the flags' words."""
    kwargs = env_kwargs(cfg)
    try:
        batched = gym.make_vec(cfg.env_id, num_envs=n, device=device, autoreset_mode=AutoresetMode.SAME_STEP,
                               **kwargs)
        if device.type != "cpu":
            return batched, None
        return batched, gym.make_vec(cfg.env_id, num_envs=n, vectorization_mode="sync",
                                     vector_kwargs={"autoreset_mode": AutoresetMode.SAME_STEP}, **kwargs)
    except ValueError as error:  # the env's own checks (glimpse.RetinaError among them): its message, flag-worded
        flags = {name: "--" + name.replace("_", "-") for name in [*kwargs, "num_envs"]}
        raise ConfigError(f"--env-id {cfg.env_id} --num-envs {n}: {in_flag_words(error, flags)}") from None


def random_actions(space: gym.Space, count: int, seed: int) -> np.ndarray:
    """``count`` batched actions ``(count, N, ...)`` drawn once, before any timing."""
    rng = np.random.default_rng(seed)
    if np.issubdtype(space.dtype, np.floating):
        return rng.uniform(space.low, space.high, (count, *space.shape)).astype(space.dtype)
    return rng.integers(space.low, space.high, (count, *space.shape), endpoint=True).astype(space.dtype)


def block_runner(env: VectorEnv, actions, device: torch.device) -> Callable[[], float]:
    """A function that steps ``env`` through every action of the block and returns the seconds it took."""
    cuda = device.type == "cuda"

    def run() -> float:
        if cuda:
            torch.cuda.synchronize(device)
        start = time.perf_counter()
        for action in actions:
            env.step(action)
        if cuda:
            torch.cuda.synchronize(device)
        return time.perf_counter() - start

    return run


def check_same_episodes(batched: VectorEnv, sync: VectorEnv, seed: int) -> None:
    """Both envs, reset with ``seed``, show the same first observations (so they do the same work)."""
    obs_b, _ = batched.reset(seed=seed)
    obs_s, _ = sync.reset(seed=seed)
    for key in obs_s:
        if not np.allclose(obs_b[key].cpu().numpy(), obs_s[key], atol=1e-6):
            raise RuntimeError(f"the batched and sync envs disagree on {key!r}: not the same configuration")


def measure(cfg: Config, n: int, device: torch.device) -> Row:
    batched, sync = make_envs(cfg, n, device)
    actions = random_actions(batched.action_space, cfg.steps, cfg.seed)
    runners = {}
    if sync is not None:
        check_same_episodes(batched, sync, cfg.seed)
        runners["batched"] = block_runner(batched, actions, device)
        runners["sync"] = block_runner(sync, actions, device)
    else:
        batched.reset(seed=cfg.seed)
        on_device = torch.as_tensor(actions, device=device)  # moved before timing, like sampling
        runners["batched"] = block_runner(batched, on_device, device)

    seconds, blocks = interleaved_medians(runners, cfg.budget)
    rate = {name: n * cfg.steps / s for name, s in seconds.items()}
    sync_rate = rate.get("sync")
    ratio = rate["batched"] / sync_rate if sync_rate else None
    return Row(n, rate["batched"], sync_rate, ratio, blocks)


def main() -> None:
    cfg = cli(Config, description=__doc__.split("\n\n")[0])
    try:
        envs.task_of(cfg.env_id)
    except ValueError as error:
        raise ConfigError(f"--env-id: {error}") from None
    device = torch.device(cfg.device)
    if cfg.threads is not None:
        torch.set_num_threads(cfg.threads)
    if cfg.num_envs is None:
        sizes = [1, 16, 256] + ([4096, 65536] if device.type == "cuda" else [])
    else:
        sizes = parse_sizes(cfg.num_envs, "--num-envs", "16,256")
    rows = [measure(cfg, n, device) for n in sizes]

    header = {"device": str(device), "threads": torch.get_num_threads(), "torch": torch.__version__,
              "gymnasium": gym.__version__}
    if cfg.json:
        print(json.dumps({**header, "config": asdict(cfg), "env_kwargs": env_kwargs(cfg),
                          "rows": [asdict(r) for r in rows]}, indent=1))
        return
    print(" ".join(f"{k}={v}" for k, v in header.items()))
    print(f"{cfg.env_id} {env_kwargs(cfg)}, {cfg.steps} steps per block")
    print(f"{'N':>6} {'batched steps/s':>16} {'sync steps/s':>13} {'ratio':>7} {'blocks':>6}")
    for r in rows:
        sync = f"{r.sync_steps_per_s:>13.4g}" if r.sync_steps_per_s else f"{'-':>13}"
        ratio = f"{r.ratio:>6.1f}x" if r.ratio else f"{'-':>7}"
        print(f"{r.num_envs:>6} {r.batched_steps_per_s:>16.4g} {sync} {ratio} {r.blocks:>6}")


if __name__ == "__main__":
    run_script(main)
