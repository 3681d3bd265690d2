"""Benchmark RAM training throughput: images per second of whole updates (rollout, loss, backward, step).

    python scripts/bench_train.py                 # 28x28 (6 glimpses of 8 px) and cluttered-60 (8 x 3 scales of 12 px)
    python scripts/bench_train.py --json

Each setting builds the batched env and RAM exactly as ``scripts/train.py`` does, warms up, then times
``--updates`` updates of ``--batch-size`` images and reports the median of ``--repeats`` timings.
"""

from __future__ import annotations

import json
import statistics
import time
import warnings
from dataclasses import dataclass

import torch

from agents.training import Config as TrainConfig
from agents.training import cli, make_agent, make_env, run_script

SETTINGS = {
    "mnist-28 (6 glimpses of 8 px)": dict(env="mnist", glimpses=6, glimpse_size=8, scales=1),
    "cluttered-60 (8 glimpses, 3 scales of 12 px)": dict(env="cluttered-60", glimpses=8, glimpse_size=12, scales=3),
}


@dataclass
class Config:
    batch_size: int = 128
    """images per update"""
    updates: int = 20
    """updates per timing"""
    repeats: int = 5
    """timings per setting (the median is reported)"""
    device: str = "cpu"
    """torch device"""
    json: bool = False
    """print JSON instead of the table"""


def main() -> None:
    cfg = cli(Config, description=__doc__)
    rows = []
    for name, setting in SETTINGS.items():
        train_cfg = TrainConfig(agent="ram", batch_size=cfg.batch_size, device=cfg.device, **setting)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            env = make_env(train_cfg, "train", cfg.batch_size)
        model = make_agent(train_cfg, env)
        optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
        obs, _ = env.reset(seed=0)

        def update():
            nonlocal obs
            losses, obs = model.train_losses(env, obs)  # what scripts/train.py runs per update
            optimizer.zero_grad()
            losses["loss"].backward()
            optimizer.step()

        for _ in range(3):
            update()
        timings = []
        for _ in range(cfg.repeats):
            if env.device.type == "cuda":
                torch.cuda.synchronize()
            start = time.perf_counter()
            for _ in range(cfg.updates):
                update()
            if env.device.type == "cuda":
                torch.cuda.synchronize()
            timings.append(time.perf_counter() - start)
        seconds = statistics.median(timings)
        rows.append({"setting": name, "batch": cfg.batch_size, "images_per_s": cfg.updates * cfg.batch_size / seconds})
    if cfg.json:
        print(json.dumps({"device": cfg.device, "threads": torch.get_num_threads(), "rows": rows}, indent=1))
        return
    print(f"device={cfg.device} threads={torch.get_num_threads()} torch={torch.__version__}")
    for row in rows:
        print(f"{row['setting']:<46} B={row['batch']:<5} {row['images_per_s']:>9.0f} images/s")


if __name__ == "__main__":
    run_script(main)
