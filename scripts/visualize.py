"""Draw a trained hard agent's (RAM, item-hard) glimpse trajectories over test images: a PNG of the whole paths and a GIF (one frame per glimpse).

    python scripts/visualize.py --run-dir runs/ram-mnist --out runs/ram-mnist/viz

Uses the mean (deterministic) locations, as the evaluation does. ``paths.png`` shows each test image's
path: the finest window of every glimpse, numbered in order and joined by arrows, the tile framed green
(right) or red (wrong) under its label and the agent's decision (Catch: caught or missed), and a legend;
``--all-scales`` adds every glimpse's coarser windows, faint. Each GIF frame shows one step: the glimpse
taken there with all its scales. TensorBoard's image tab shows the same paths picture at each evaluation
(``eval/glimpse_paths``). For an agent that reads the whole picture and says where it attended (soft
attention, STN, RA-CNN soft and hard: the squares each scale zooms into) it writes ``attention.png``, the
picture of TensorBoard's ``eval/attention``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

from PIL import Image

from agents.contract import RolloutAgent
from agents.training import (ConfigError, announcing_data, cli, eval_picture, load_run, output_folder,
                             paths_picture, picture_at, replay_test_paths, run_script)
from envs.files import atomic_write
from envs.render import render_glimpses
from agents.ranges import Range


@dataclass
class Config:
    run_dir: str = "runs/train"
    """the run folder written by train.py"""
    out: str | None = None
    """output folder; none: RUN_DIR/viz"""
    count: Annotated[int, Range(1, 256)] = 8
    """how many test images, side by side (at most the test split's)"""
    frame_ms: Annotated[int, Range(10, 655_350)] = 600
    """GIF frame duration in milliseconds (GIF keeps hundredths of a second, at most 655.35 s)"""
    device: str = "cpu"
    """torch device to replay the episodes on"""
    data_dir: str | None = None
    """where the run's data are now, if they moved (train.py's --data-dir); none: where the run recorded them"""
    allow_other_data: bool = False
    """draw even if the test data differ from those the run recorded (refused by default)"""
    plugins: tuple[str, ...] = ()
    """modules to import first, as the run's train.py --plugins: a run folder never imports code by itself,
    so a run trained with plugins needs them named here"""
    all_scales: bool = False
    """paths.png: outline every glimpse's coarser windows too, faint (by default only the finest)"""


def main() -> None:
    cfg = cli(Config, description=__doc__.split("\n\n")[0])
    moved = {"data_dir": cfg.data_dir} if cfg.data_dir is not None else {}
    with announcing_data():  # the test env exactly --count wide (capped to the test split): one episode each
        train_cfg, model, test_env = load_run(Path(cfg.run_dir), allow_other_data=cfg.allow_other_data,
                                              plugins=cfg.plugins, eval_images=cfg.count, batch_size=cfg.count,
                                              device=cfg.device, **moved)
    if not isinstance(model, RolloutAgent):  # no glimpse path: its attention, if it has one
        drawn = eval_picture(train_cfg, model, test_env, cfg.count)
        if drawn is None:
            raise ConfigError(f"{cfg.run_dir} trained --agent {train_cfg.agent}, which reads the whole picture "
                              f"with no attention to draw")
        out = output_folder(cfg.out or Path(cfg.run_dir) / "viz", "--out")
        save_image(Image.fromarray(drawn[1]), out / "attention.png")
        print(f"wrote {out / 'attention.png'}")
        return
    out = output_folder(cfg.out or Path(cfg.run_dir) / "viz", "--out")
    pictures, labels, trajectory = replay_test_paths(model, test_env)
    count = min(cfg.count, test_env.num_envs)
    steps = trajectory.rewards.shape[1]  # the looks read; the last location only produced the final observation
    frames = [Image.fromarray(render_glimpses([picture_at(pictures, i, t) for i in range(count)],
                                              trajectory.locations[:count, t], retina=test_env.retina, step=t,
                                              steps=steps)) for t in range(steps)]
    save_image(frames[0], out / "glimpses.gif", save_all=True, append_images=frames[1:], duration=cfg.frame_ms, loop=0)
    picture = paths_picture(test_env.retina, pictures, trajectory, count, all_scales=cfg.all_scales)
    save_image(Image.fromarray(picture), out / "paths.png")
    decided = trajectory.logits[:count].argmax(1).tolist() if trajectory.logits is not None else None
    print(f"wrote {out / 'glimpses.gif'} ({steps} frames) and {out / 'paths.png'}; "
          f"labels {labels[:count].tolist() if labels is not None else None}, decisions {decided}")


def save_image(image: Image.Image, path: Path, **options) -> None:
    """Write ``image`` atomically, in the format its name says (a link at ``path`` is replaced, never followed)."""
    atomic_write(path, lambda file: image.save(file, format=path.suffix.lstrip(".").upper(), **options))


if __name__ == "__main__":
    run_script(main)
