"""Benchmark RAM training throughput: images per second of whole updates (rollout, loss, backward, step).

    python scripts/bench_train.py                 # 28x28 (6 glimpses of 8 px) and cluttered-60 (8 x 3 scales of 12 px)
    python scripts/bench_train.py --algos reinforce ppo --ppo-epochs 4 --minibatches 4
    python scripts/bench_train.py --json

Each setting builds the batched env, RAM and the ``--algo`` trainer exactly as ``scripts/train.py`` does,
warms up, then times ``--updates`` updates of ``--batch-size`` images and reports the median of
``--repeats`` timings; the algorithms' timings alternate, so their ratio is measured under the same load:
each row's ``ratio`` is its images/s over the first ``--algos``' in the same setting.
"""

from __future__ import annotations

import json
import statistics
import time
import warnings
from dataclasses import dataclass
from typing import Annotated

import torch

from agents.training import Config as TrainConfig
from agents.training import ConfigError, cli, make_agent, make_env, make_trainer, run_script
from agents.trainers import Algo, AlgorithmOptions
from agents.ranges import Range

SETTINGS = {
    "mnist-28 (6 glimpses of 8 px)": dict(env="mnist", glimpses=6, glimpse_size=8, scales=1),
    "cluttered-60 (8 glimpses, 3 scales of 12 px)": dict(env="cluttered-60", glimpses=8, glimpse_size=12, scales=3),
}


@dataclass
class Config:
    batch_size: Annotated[int, Range(1)] = 128
    """images per update"""
    updates: Annotated[int, Range(1)] = 20
    """updates per timing"""
    repeats: Annotated[int, Range(1)] = 5
    """timings per setting (the median is reported)"""
    device: str = "cpu"
    """torch device"""
    algos: tuple[Algo, ...] = ("reinforce",)
    """trainers to time (scripts/train.py --algo)"""
    ppo_epochs: Annotated[int, Range(1)] = 4
    """ppo: passes over each batch"""
    minibatches: Annotated[int, Range(1)] = 4
    """ppo: minibatches per pass"""
    json: bool = False
    """print JSON instead of the table"""


def main() -> None:
    cfg = cli(Config, description=__doc__.split("\n\n")[0])
    if not cfg.algos or len(set(cfg.algos)) < len(cfg.algos):  # none: nothing to time; one twice: its rows twice
        raise ConfigError(f"--algos must be one or more different trainers; got {' '.join(cfg.algos)!r}")
    rows = []
    for name, setting in SETTINGS.items():
        runs = {}
        for algo in cfg.algos:
            train_cfg = TrainConfig(agent="ram", batch_size=cfg.batch_size, device=cfg.device, **setting,
                                    algorithm=AlgorithmOptions(algo=algo, ppo_epochs=cfg.ppo_epochs,
                                                               minibatches=cfg.minibatches))
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                env = make_env(train_cfg, "train", cfg.batch_size)
            model = make_agent(train_cfg, env)
            trainer = make_trainer(train_cfg, model, torch.optim.Adam(model.parameters(), lr=1e-3))
            runs[algo] = [trainer, env, env.reset(seed=0)[0]]

        def update(algo: str) -> None:
            run = runs[algo]
            _, run[2] = run[0].update(run[1], run[2], 1)  # what scripts/train.py runs per update

        for algo in cfg.algos:
            for _ in range(3):
                update(algo)
        timings = {algo: [] for algo in cfg.algos}
        for _ in range(cfg.repeats):
            for algo in cfg.algos:  # interleaved: every algorithm sees the same machine load
                if cfg.device.startswith("cuda"):
                    torch.cuda.synchronize()
                start = time.perf_counter()
                for _ in range(cfg.updates):
                    update(algo)
                if cfg.device.startswith("cuda"):
                    torch.cuda.synchronize()
                timings[algo].append(time.perf_counter() - start)
        first = statistics.median(timings[cfg.algos[0]])
        for algo in cfg.algos:
            seconds = statistics.median(timings[algo])
            epochs = f"{cfg.ppo_epochs}x{cfg.minibatches}" if algo == "ppo" else "1x1"
            rows.append({"setting": name, "algo": algo, "epochs_x_minibatches": epochs, "batch": cfg.batch_size,
                         "images_per_s": cfg.updates * cfg.batch_size / seconds, "ratio": first / seconds})
    if cfg.json:
        print(json.dumps({"device": cfg.device, "threads": torch.get_num_threads(), "rows": rows}, indent=1))
        return
    print(f"device={cfg.device} threads={torch.get_num_threads()} torch={torch.__version__}")
    for row in rows:
        print(f"{row['setting']:<46} {row['algo']:<9} {row['epochs_x_minibatches']:>5} B={row['batch']:<5} "
              f"{row['images_per_s']:>9.0f} images/s {row['ratio']:>5.2f}x {cfg.algos[0]}")


if __name__ == "__main__":
    run_script(main)
