"""Draw multi-scale glimpses of real digits: what a hard-attention agent sees.

Takes a few cluttered MNIST test canvases from the batched environment, glimpses each at two places
through the same retina the env and agents use, and writes one PNG: each row a canvas with the
glimpse's windows outlined (green, yellow, red: finest to coarsest), then each scale as the agent
receives it (``size x size`` pixels, enlarged).

    python scripts/demo_glimpses.py --out runs/demo
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Annotated

import numpy as np
import torch
from PIL import Image

from agents.ranges import MAX_SEED, Range
from agents.training import cli, output_folder, run_script
from envs import GlimpseVectorEnv
from envs.files import atomic_write
from envs.render import render_glimpse
from glimpse import extract_glimpses

ROW_PX = 240  # height of each row of the picture


@dataclass
class Config:
    out: str = "runs/demo"
    """folder for glimpses.png"""
    canvases: Annotated[int, Range(1, 64)] = 3
    """how many canvases (rows)"""
    glimpse_size: Annotated[int, Range(1, 60)] = 12
    """retina side in pixels"""
    scales: Annotated[int, Range(1, 6)] = 3
    """retina scales"""
    seed: Annotated[int, Range(0, MAX_SEED)] = 0
    """which test canvases and glimpse places"""


def main() -> None:
    args = cli(Config, description=__doc__.split("\n\n")[0])

    with warnings.catch_warnings(record=True) as caught:  # the data source is reported once, below
        warnings.simplefilter("always")
        env = GlimpseVectorEnv(args.canvases, task="cluttered", split="test", glimpse_size=args.glimpse_size,
                               scales=args.scales)
    retina = env.retina  # the env's own: what its glimpses are
    env.reset(seed=args.seed)
    canvases, labels = env.scene()  # (N, 1, 60, 60) uint8, (N,)
    labels = labels.tolist()
    # Two glimpses per canvas: the centre and a seeded random place.
    gen = torch.Generator().manual_seed(args.seed)
    places = torch.stack([torch.zeros(args.canvases, 2), torch.rand(args.canvases, 2, generator=gen) * 1.6 - 0.8])

    rows = []
    for i in range(args.canvases):
        for center in places[:, i]:
            canvas = render_glimpse(canvases[i], center, retina=retina, height_px=ROW_PX)
            glimpses = extract_glimpses(canvases[i : i + 1], center[None], retina=retina)[0]  # (S, 1, g, g)
            zoom = canvas.shape[0] // retina.size
            tiles = [np.repeat(np.repeat(g[0].numpy(), zoom, 0), zoom, 1) for g in glimpses]
            tiles = [(np.pad(t, ((0, canvas.shape[0] - t.shape[0]), (8, 0)), constant_values=0.4)[..., None].repeat(3, -1) * 255)
                     .astype(np.uint8) for t in tiles]
            rows.append(np.concatenate([canvas, *tiles], axis=1))
            rows.append(np.full((8, rows[-1].shape[1], 3), 255, np.uint8))
    picture = np.concatenate(rows[:-1], axis=0)

    out = output_folder(args.out, "--out")
    # Atomically, as every picture the project writes: a link at the path is replaced, never written through.
    atomic_write(out / "glimpses.png", lambda file: Image.fromarray(picture).save(file, format="PNG"))
    print("data: " + ("; ".join(str(w.message) for w in caught) or "full dataset"))
    print(f"labels of the {args.canvases} canvases: {labels}")
    print(f"wrote {out / 'glimpses.png'}: cluttered 60x60 test canvases, {retina.scales} scales of "
          f"{retina.size} px at 2 places each")


if __name__ == "__main__":
    run_script(main)
