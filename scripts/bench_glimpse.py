"""Benchmark the retina: ``glimpse.extract_glimpses`` and ``GlimpseSensor`` against a per-sample loop.

The loop is the retina of popular RAM implementations: for each sample, zero-pad the image, slice each
scale's window, then ``avg_pool2d`` each scale's stack. Both run on identical inputs in one process and
the ratios come from the same run (these machines are noisy; compare ratios, not absolute times).

Two settings:
- ``call``: one stateless ``extract_glimpses`` call vs one loop call;
- ``episode``: one batch of images glimpsed ``--glimpses`` times, as the env and RAM do: the sensor's
  per-episode preparation (rebuilding its planes in place, ``GlimpseSensor.prepare``, as the env
  does at each reset) is included in its time; the loop simply runs that many times.

    python scripts/bench_glimpse.py                       # the full table on the CPU
    python scripts/bench_glimpse.py --batch 256 --image 1x60x60 --json
    python scripts/bench_glimpse.py --device cuda
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F

from glimpse import GlimpseSensor, extract_glimpses, window_corners_px


def loop_retina(images: torch.Tensor, centers: torch.Tensor, size: int, scales: int, factor: int) -> torch.Tensor:
    """The per-sample reference retina (same rounding as the core, so outputs can be compared)."""
    corners = window_corners_px(centers, images.shape[-2], images.shape[-1], size=size, scales=scales, factor=factor)
    corners = corners.tolist()
    pad = size * factor ** (scales - 1)
    per_scale: list[list[torch.Tensor]] = [[] for _ in range(scales)]
    if images.dtype == torch.uint8:  # the loop needs floats for avg_pool2d, as the core's output is
        images = images.float() / 255
    for i in range(images.shape[0]):
        padded = F.pad(images[i], (pad, pad, pad, pad))
        for k in range(scales):
            side = size * factor**k
            x0, y0 = corners[i][k][0] + pad, corners[i][k][1] + pad
            per_scale[k].append(padded[:, y0 : y0 + side, x0 : x0 + side])
    return torch.stack([F.avg_pool2d(torch.stack(p), factor**k) for k, p in enumerate(per_scale)], dim=1)


@dataclass
class Row:
    setting: str
    batch: int
    image: str
    loop_ms: float
    glimpse_ms: float
    ratio: float
    glimpses_per_s: float
    max_abs_err: float


def timed(fn: Callable[[], object], device: torch.device, repeats: int) -> list[float]:
    times = []
    for _ in range(repeats):
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        start = time.perf_counter()
        fn()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        times.append(time.perf_counter() - start)
    return times


def compare(loop: Callable[[], object], fast: Callable[[], object], device: torch.device, budget_s: float):
    """Median times of both, interleaved so that machine noise hits them alike."""
    loop(), fast()  # warm-up
    probe = timed(loop, device, 1)[0]
    repeats = max(3, min(25, int(budget_s / max(probe, 1e-4))))
    loop_t, fast_t = [], []
    for _ in range(repeats):
        loop_t += timed(loop, device, 1)
        fast_t += timed(fast, device, 3)
    return statistics.median(loop_t), statistics.median(fast_t)


def run_case(batch: int, image: tuple[int, int, int], args, device: torch.device) -> list[Row]:
    c, h, w = image
    gen = torch.Generator(device="cpu").manual_seed(0)
    images = torch.rand(batch, c, h, w, generator=gen)
    if args.dtype == "uint8":  # what the envs store
        images = (images * 255).round().to(torch.uint8)
    images = images.to(device)
    centers = (torch.rand(args.glimpses, batch, 2, generator=gen) * 2 - 1).to(device)
    retina = dict(size=args.size, scales=args.scales, factor=args.factor)
    name = f"{c}x{h}x{w}"
    err = (extract_glimpses(images, centers[0], **retina) - loop_retina(images, centers[0], **retina)).abs().max()
    rows = []

    loop_ms, call_ms = compare(
        lambda: loop_retina(images, centers[0], **retina), lambda: extract_glimpses(images, centers[0], **retina),
        device, args.budget,
    )
    rows.append(Row("call", batch, name, loop_ms * 1e3, call_ms * 1e3, loop_ms / call_ms, batch / call_ms, float(err)))

    def episode_loop():
        for t in range(args.glimpses):
            loop_retina(images, centers[t], **retina)

    # The env keeps one sensor and re-prepares it in place at every reset (GlimpseSensor.prepare): the
    # preparation is inside the timing, only the buffers' allocation is once per env.
    sensor = GlimpseSensor(images, **retina)

    def episode_sensor():
        sensor.prepare(images)
        for t in range(args.glimpses):
            sensor(centers[t])

    sensor_err = max(float((sensor(c) - loop_retina(images, c, **retina)).abs().max()) for c in centers)
    loop_ms, ep_ms = compare(episode_loop, episode_sensor, device, args.budget)
    method = "planes" if sensor.uses_planes else "windows"
    rows.append(
        Row(f"episode x{args.glimpses} ({method})", batch, name, loop_ms * 1e3, ep_ms * 1e3, loop_ms / ep_ms,
            batch * args.glimpses / ep_ms, sensor_err)
    )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch", type=int, nargs="+", default=[32, 256, 4096], help="batch sizes B")
    parser.add_argument("--image", nargs="+", default=["1x60x60", "1x100x100", "3x224x224"], help="CxHxW")
    parser.add_argument("--size", type=int, default=12, help="glimpse side in pixels")
    parser.add_argument("--scales", type=int, default=3, help="retina scales")
    parser.add_argument("--factor", type=int, default=2, help="window growth per scale")
    parser.add_argument("--glimpses", type=int, default=8, help="glimpses per episode in the episode setting")
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    parser.add_argument("--dtype", default="float32", choices=["float32", "uint8"], help="image dtype")
    parser.add_argument("--budget", type=float, default=2.0, help="seconds of loop time per measurement")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    parser.add_argument("--json", action="store_true", help="print JSON rows instead of the table")
    args = parser.parse_args()
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)

    rows: list[Row] = []
    for image in args.image:
        shape = tuple(int(v) for v in image.split("x"))
        for batch in args.batch:
            rows += run_case(batch, shape, args, device)

    if args.json:
        print(json.dumps({"device": str(device), "dtype": args.dtype, "threads": torch.get_num_threads(), "torch": torch.__version__,
                          "rows": [asdict(r) for r in rows]}, indent=1))
        return
    print(f"device={device} dtype={args.dtype} threads={torch.get_num_threads()} torch={torch.__version__} "
          f"retina={args.scales} scales of {args.size}px, factor {args.factor}")
    print(f"{'setting':<22} {'B':>5} {'image':>10} {'loop ms':>9} {'glimpse ms':>10} {'ratio':>7} {'glimpses/s':>11} {'max err':>8}")
    for r in rows:
        print(f"{r.setting:<22} {r.batch:>5} {r.image:>10} {r.loop_ms:>9.2f} {r.glimpse_ms:>10.3f} {r.ratio:>6.1f}x "
              f"{r.glimpses_per_s:>11.3g} {r.max_abs_err:>8.1e}")


if __name__ == "__main__":
    main()
