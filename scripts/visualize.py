"""Draw a trained hard agent's (RAM, item-hard) glimpse trajectories over test images: a GIF (one frame per glimpse) and a PNG.

    python scripts/visualize.py --run-dir runs/ram-mnist --out runs/ram-mnist/viz

Uses the mean (deterministic) locations, as the evaluation does. Each GIF frame shows, for each test
image, the glimpse taken at that step with all its scales; the PNG shows each whole path.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from agents.contract import RolloutAgent
from agents.training import ConfigError, announcing_data, cli, load_run, paths_picture, picture_at, replay_test_paths, run_script
from envs.render import render_glimpse


@dataclass
class Config:
    run_dir: str = "runs/train"
    """the run folder written by train.py"""
    out: str | None = None
    """output folder; none: RUN_DIR/viz"""
    count: int = 8
    """how many test images"""
    frame_ms: int = 600
    """GIF frame duration in milliseconds"""
    plugins: tuple[str, ...] = ()
    """modules to import first, as the run's train.py --plugins: a run folder never imports code by itself,
    so a run trained with plugins needs them named here"""


def main() -> None:
    cfg = cli(Config, description=__doc__)
    with announcing_data():
        train_cfg, model, test_env = load_run(Path(cfg.run_dir), plugins=cfg.plugins, eval_images=cfg.count)
    if not isinstance(model, RolloutAgent):
        raise ConfigError(f"{cfg.run_dir} trained --agent {train_cfg.agent}, which takes no glimpses (hard agents do)")
    out = Path(cfg.out) if cfg.out else Path(cfg.run_dir) / "viz"
    out.mkdir(parents=True, exist_ok=True)
    retina = dict(size=train_cfg.glimpse_size, scales=train_cfg.scales, factor=2)

    pictures, labels, trajectory = replay_test_paths(model, test_env)
    count = min(cfg.count, test_env.num_envs)
    steps = trajectory.locations.shape[1]

    frames = []
    for t in range(steps):
        tiles = [render_glimpse(picture_at(pictures, i, t), trajectory.locations[i, t], **retina, height_px=160)
                 for i in range(count)]
        frames.append(Image.fromarray(np.concatenate(tiles, axis=1)))
    frames[0].save(out / "glimpses.gif", save_all=True, append_images=frames[1:], duration=cfg.frame_ms, loop=0)
    Image.fromarray(paths_picture(train_cfg, pictures, trajectory, count)).save(out / "paths.png")
    decided = trajectory.logits[:count].argmax(1).tolist() if trajectory.logits is not None else None
    print(f"wrote {out / 'glimpses.gif'} ({steps} frames) and {out / 'paths.png'}; "
          f"labels {labels[:count].tolist() if labels is not None else None}, decisions {decided}")


if __name__ == "__main__":
    run_script(main)
