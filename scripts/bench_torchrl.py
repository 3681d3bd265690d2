"""Benchmark the native TorchRL env against TorchRL's own wrappers of the same glimpse env.

Env steps per second through TorchRL's ``env.rollout`` (the same scripted policy cycling through
pre-generated random actions, ``break_when_any_done=False``, so TorchRL's partial resets are timed too;
each block starts with one reset), for each N:

- ``native``: ``envs.torchrl_env.GlimpseTorchRLEnv(id, num_envs=N)``, tensors on the env's device;
- ``wrap-torch`` / ``wrap-numpy``: ``torchrl.envs.GymWrapper(gym.make_vec(id, num_envs=N,
  autoreset_mode=DISABLED, arrays="torch" | "numpy"))``, TorchRL's generic wrapper of the same batched env;
- ``async`` (N <= ``--async-max-envs`` only): ``torchrl.envs.GymEnv("envs:" + id, num_envs=N)``, which
  TorchRL builds as a gymnasium ``AsyncVectorEnv`` of N single envs in subprocesses.

Timed blocks of ``--steps`` steps alternate between the sides and the medians are compared: the
machines are noisy, so read the ratios (``native`` over each other side), which come from one run.

    python scripts/bench_torchrl.py                          # MNIST, 8 px x 3 scales, N = 4, 64, 256
    python scripts/bench_torchrl.py --num-envs 256 --budget 1 --json
"""

from __future__ import annotations

import itertools
import json
import time
import warnings
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Annotated, Literal

import gymnasium as gym
import torch
import tyro
from gymnasium.vector import AutoresetMode

import envs  # importing envs registers glimpse/...
from agents.benchmarking import interleaved_medians, parse_sizes
from agents.scripting import in_flag_words
from agents.training import ConfigError, cli, run_script
from agents.config import Retina
from agents.ranges import MAX_SEED, Range

try:
    import torchrl
    from torchrl.envs import EnvBase, GymEnv, GymWrapper

    from envs.torchrl_env import GlimpseTorchRLEnv
except ImportError:  # the optional extra
    GlimpseTorchRLEnv = None


@dataclass
class Config:
    env_id: str = "glimpse/MNIST-v0"
    """registered id (or short name) to run (see envs.TASKS)"""
    retina: Annotated[Retina, tyro.conf.OmitArgPrefixes] = field(
        default_factory=lambda: Retina(glimpse_size=8, scales=3))
    """the retina (8 px at 3 scales)"""
    num_glimpses: Annotated[int, Range(1)] = 6
    """glimpses per episode (still tasks; ignored by moving-mnist and catch: one per frame)"""
    action_mode: Literal["continuous", "discrete"] = "continuous"
    """action space of every side"""
    num_envs: str = "4,64,256"
    """comma-separated N to measure"""
    async_max_envs: Annotated[int, Range(0)] = 4
    """also time GymEnv's subprocess AsyncVectorEnv at N up to this (0: never; one process per env)"""
    steps: Annotated[int, Range(1)] = 32
    """env steps per timed block"""
    budget: Annotated[float, Range(0, open_low=True)] = 3.0
    """seconds of timing per N, shared by the sides (at least 3 blocks each)"""
    seed: Annotated[int, Range(0, MAX_SEED)] = 0
    """seed of the episodes and of the pre-generated actions"""
    threads: Annotated[int, Range(1)] = 1
    """torch intra-op threads"""
    json: bool = False
    """print one JSON object instead of the table"""


@dataclass
class Row:
    num_envs: int
    steps_per_s: dict[str, float]
    ratio: dict[str, float] = field(default_factory=dict)  # native over each other side
    blocks: int = 0


def env_kwargs(cfg: Config) -> dict:
    """The env options of every side: ``num_glimpses`` only for a still-image task (a video or a game takes
    one glimpse per frame and refuses it)."""
    still = envs.task_of(cfg.env_id).is_still
    glimpses = {"num_glimpses": cfg.num_glimpses} if still else {}
    return dict(**asdict(cfg.retina), action_mode=cfg.action_mode, **glimpses)


def make_sides(cfg: Config, n: int) -> dict[str, EnvBase]:
    """The TorchRL envs to compare at N = ``n``, all on the same id and configuration."""
    kwargs = env_kwargs(cfg)
    spec = envs.task_of(cfg.env_id)
    try:  # the first env built refuses what the task does not allow; the others are built alike
        sides = {"native": GlimpseTorchRLEnv(spec.env_id, num_envs=n, **kwargs)}
    except ValueError as error:  # the env's own checks (glimpse.RetinaError among them): its message, flag-worded
        flags = {name: "--" + name.replace("_", "-") for name in [*kwargs, "num_envs"]}
        raise ConfigError(f"--env-id {cfg.env_id} --num-envs {n}: {in_flag_words(error, flags)}") from None
    for arrays in ("torch", "numpy"):
        vec = gym.make_vec(spec.env_id, num_envs=n, autoreset_mode=AutoresetMode.DISABLED, arrays=arrays, **kwargs)
        sides[f"wrap-{arrays}"] = GymWrapper(vec)
    if n <= cfg.async_max_envs:
        # "envs:" makes each subprocess import envs, which registers the glimpse ids there too.
        sides["async"] = GymEnv(f"envs:{spec.env_id}", num_envs=n, **kwargs)
    for env in sides.values():
        env.set_seed(cfg.seed)
    return sides


def block_runner(env: EnvBase, actions: list[torch.Tensor], steps: int) -> Callable[[], float]:
    """A function that runs one ``steps``-step rollout of ``env`` and returns the seconds it took."""
    feed = itertools.cycle(actions)

    def policy(td):
        return td.set("action", next(feed))

    def run() -> float:
        start = time.perf_counter()
        env.rollout(steps, policy=policy, break_when_any_done=False)
        return time.perf_counter() - start

    return run


def measure(cfg: Config, n: int) -> Row:
    sides = make_sides(cfg, n)
    torch.manual_seed(cfg.seed)
    actions = [sides["native"].action_spec.rand() for _ in range(cfg.steps)]  # drawn once, before any timing
    runners = {name: block_runner(env, actions, cfg.steps) for name, env in sides.items()}
    seconds, blocks = interleaved_medians(runners, cfg.budget)
    for env in sides.values():
        env.close()
    rate = {name: n * cfg.steps / s for name, s in seconds.items()}
    ratio = {name: rate["native"] / r for name, r in rate.items() if name != "native"}
    return Row(n, rate, ratio, blocks)


def main() -> None:
    cfg = cli(Config, description=__doc__.split("\n\n")[0])
    if GlimpseTorchRLEnv is None:
        raise ConfigError("TorchRL is not installed: pip install -e '.[torchrl]'")
    try:
        envs.task_of(cfg.env_id)
    except ValueError as error:
        raise ConfigError(f"--env-id: {error}") from None
    sizes = parse_sizes(cfg.num_envs, "--num-envs", "4,64")
    torch.set_num_threads(cfg.threads)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the offline-data notice, TorchRL's deprecation notices
        rows = [measure(cfg, n) for n in sizes]

    header = {"threads": torch.get_num_threads(), "torch": torch.__version__, "torchrl": torchrl.__version__,
              "gymnasium": gym.__version__}
    if cfg.json:
        print(json.dumps({**header, "config": asdict(cfg), "rows": [asdict(r) for r in rows]}, indent=1))
        return
    print(" ".join(f"{k}={v}" for k, v in header.items()))
    print(f"{cfg.env_id} {env_kwargs(cfg)}, {cfg.steps} steps per block; steps/s (native / side)")
    names = ["native", "wrap-torch", "wrap-numpy", "async"]
    print(f"{'N':>5} " + " ".join(f"{name:>20}" for name in names) + f" {'blocks':>6}")
    for r in rows:
        cells = []
        for name in names:
            if name not in r.steps_per_s:
                cells.append(f"{'-':>20}")
            elif name == "native":
                cells.append(f"{r.steps_per_s[name]:>20.4g}")
            else:
                cells.append(f"{r.steps_per_s[name]:>11.4g} ({r.ratio[name]:>5.1f}x)")
        print(f"{r.num_envs:>5} " + " ".join(cells) + f" {r.blocks:>6}")


if __name__ == "__main__":
    run_script(main)
