"""Benchmark the retina: ``glimpse.extract_glimpses`` and ``GlimpseSensor`` against a per-sample loop.

The loop is the retina of popular RAM implementations: for each sample, zero-pad the image, slice each
scale's window, then ``avg_pool2d`` each scale's stack (``glimpse.baselines.loop_glimpses``). Both run on
identical inputs in one process and the ratios come from the same run (these machines are noisy; compare
ratios, not absolute times).

Two settings:
- ``call``: one stateless ``extract_glimpses`` call vs one loop call;
- ``episode``: one batch of images glimpsed ``--glimpses`` times, as the env and RAM do: the sensor's
  per-episode preparation (rebuilding its planes in place, ``GlimpseSensor.prepare``, as the env
  does at each reset) is included in its time; the loop simply runs that many times.

    python scripts/bench_glimpse.py                       # the full table on the CPU
    python scripts/bench_glimpse.py --batch 256 --image 1x60x60 --json
    python scripts/bench_glimpse.py --device cuda --batch 256 4096 65536 --image 1x60x60 --loop-max-batch 4096

Two more columns where they apply:
- ``roi`` (only where ``torchvision`` imports): the same glimpses from ``torchvision.ops.roi_align``
  (``glimpse.baselines.roi_align_glimpses``), one call per scale on the zero-padded images with
  ``aligned=True`` and ``factor**k`` samples per bin, which puts every bilinear sample on a pixel centre,
  so it is the same block mean (checked, ``roi_err``);
- ``GB/s``: the fewest bytes the fast retina must move (each image pixel that a window covers read once —
  for the episode, every pixel once — and every output written once) over its time, beside the device's
  own copy bandwidth measured in the same run (``copy GB/s``, bytes read plus written).

``--loop-max-batch K`` times the loop on the first K samples only and scales its time by ``B / K`` (the
loop is a per-sample Python loop, linear in B); such rows say so (``loop_batch``).
"""

from __future__ import annotations

import json
import statistics
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Annotated, Literal

import torch

from agents.ranges import Range
from agents.training import ConfigError, cli, run_script
from glimpse import GlimpseSensor, extract_glimpses
from glimpse.baselines import has_roi_align, loop_glimpses, roi_align_glimpses


@dataclass
class Config:
    batch: tuple[int, ...] = (32, 256, 4096)
    """batch sizes B"""
    image: tuple[str, ...] = ("1x60x60", "1x100x100", "3x224x224")
    """image shapes, each CxHxW"""
    size: Annotated[int, Range(1)] = 12
    """glimpse side in pixels"""
    scales: Annotated[int, Range(1)] = 3
    """retina scales"""
    factor: Annotated[int, Range(1)] = 2
    """window growth per scale"""
    glimpses: Annotated[int, Range(1)] = 8
    """glimpses per episode in the episode setting"""
    device: str = "cpu"
    """cpu or cuda"""
    dtype: Literal["float32", "uint8"] = "float32"
    """image dtype"""
    budget: Annotated[float, Range(0, open_low=True)] = 2.0
    """seconds of loop time per measurement"""
    threads: Annotated[int | None, Range(1)] = None
    """torch CPU threads ('none': torch's choice)"""
    loop_max_batch: Annotated[int | None, Range(1)] = None
    """time the loop on at most this many samples and scale its time to B ('none': all)"""
    roi: bool = True
    """torchvision's roi_align column (it runs only where torchvision imports; --no-roi skips it)"""
    json: bool = False
    """print JSON rows instead of the table"""


def positive_sizes(values: tuple[int, ...], flag: str) -> tuple[int, ...]:
    """``values``, a list flag's integers, each >= 1 and none twice (it would print its rows twice); else a
    :class:`ConfigError` naming ``flag``."""
    if not values or min(values) < 1 or len(set(values)) < len(values):
        raise ConfigError(f"{flag} must be one or more different integers >= 1; got {' '.join(map(str, values))!r}")
    return values


def parse_image(text: str) -> tuple[int, int, int]:
    """``"CxHxW"`` -> ``(C, H, W)``; a :class:`ConfigError` naming ``--image`` and the text otherwise."""
    parts = text.split("x")
    if len(parts) != 3 or not all(p.isdecimal() and int(p) >= 1 for p in parts):
        raise ConfigError(f"--image takes CxHxW with three integers >= 1 (e.g. 1x60x60); got {text!r}")
    c, h, w = map(int, parts)
    return c, h, w


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
    loop_batch: int
    roi_ms: float | None = None
    roi_ratio: float | None = None
    roi_err: float | None = None
    min_bytes: int = 0
    gb_per_s: float = 0.0


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


def compare(fns: dict[str, Callable[[], object]], device: torch.device, budget_s: float) -> dict[str, float]:
    """Median seconds of each of ``fns`` (the first, the loop, is the slow one), interleaved so that
    machine noise hits them alike."""
    for fn in fns.values():  # warm-up
        fn()
    probe = timed(next(iter(fns.values())), device, 1)[0]
    repeats = max(3, min(25, int(budget_s / max(probe, 1e-4))))
    times: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(repeats):
        for i, (name, fn) in enumerate(fns.items()):
            times[name] += timed(fn, device, 1 if i == 0 else 3)
    return {name: statistics.median(t) for name, t in times.items()}


def copy_bandwidth_gb_s(device: torch.device, nbytes: int = 2**30) -> float:
    """The device's copy bandwidth, bytes read plus written per second, of one ``nbytes`` tensor copy."""
    src = torch.rand(nbytes // 4, device=device)
    dst = torch.empty_like(src)
    seconds = statistics.median(timed(lambda: dst.copy_(src), device, 10))
    return 2 * nbytes / seconds / 1e9


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
    # The loop on the first loop_batch samples, its time scaled to the whole batch (it is linear in B).
    loop_batch = min(batch, args.loop_max_batch or batch)
    loop_images, loop_centers = images[:loop_batch], centers[:, :loop_batch]
    loop_scale = batch / loop_batch
    roi = args.roi and has_roi_align()
    fast = extract_glimpses(images, centers[0], **retina)
    err = (fast[:loop_batch] - loop_glimpses(loop_images, loop_centers[0], **retina)).abs().max()
    roi_err = float((roi_align_glimpses(images, centers[0], **retina) - fast).abs().max()) if roi else None
    # The fewest bytes: each covered image pixel read once, each output written once.
    largest = args.size * args.factor ** (args.scales - 1)
    out_bytes = batch * args.scales * c * args.size**2 * 4
    call_bytes = batch * c * min(largest, h) * min(largest, w) * images.element_size() + out_bytes
    episode_bytes = images.numel() * images.element_size() + args.glimpses * out_bytes
    rows = []

    fns = {"loop": lambda: loop_glimpses(loop_images, loop_centers[0], **retina),
           "fast": lambda: extract_glimpses(images, centers[0], **retina)}
    if roi:
        fns["roi"] = lambda: roi_align_glimpses(images, centers[0], **retina)
    t = compare(fns, device, args.budget)
    rows.append(make_row("call", batch, name, t, loop_scale, 1, float(err), loop_batch, roi_err, call_bytes))

    def episode_loop():
        for step in range(args.glimpses):
            loop_glimpses(loop_images, loop_centers[step], **retina)

    # The env keeps one sensor and re-prepares it in place at every reset (GlimpseSensor.prepare): the
    # preparation is inside the timing, only the buffers' allocation is once per env. On CUDA the fused
    # sensor (auto's choice there) is timed beside the planes sensor, the best torch-only path at 60x60;
    # the loop and roi_align are timed once, interleaved with both.
    auto = GlimpseSensor(images, **retina)
    sensors = {auto.method: auto}
    if auto.method == "fused":
        sensors["planes"] = GlimpseSensor(images, **retina, method="planes")

    def episode_of(sensor: GlimpseSensor):
        def episode():
            sensor.prepare(images)
            for step in range(args.glimpses):
                sensor(centers[step])
        return episode

    def episode_roi():
        for step in range(args.glimpses):
            roi_align_glimpses(images, centers[step], **retina)

    fns = {"loop": episode_loop, **{method: episode_of(sensor) for method, sensor in sensors.items()}}
    if roi:
        fns["roi"] = episode_roi
    t = compare(fns, device, args.budget)
    for method, sensor in sensors.items():
        sensor_err = max(float((sensor(cs)[:loop_batch] - loop_glimpses(loop_images, cs[:loop_batch], **retina))
                               .abs().max()) for cs in centers)
        seconds = {"loop": t["loop"], "fast": t[method], **({"roi": t["roi"]} if roi else {})}
        rows.append(make_row(f"episode x{args.glimpses} ({method})", batch, name, seconds, loop_scale, args.glimpses,
                             sensor_err, loop_batch, roi_err, episode_bytes))
    return rows


def make_row(setting: str, batch: int, image: str, seconds: dict[str, float], loop_scale: float, glimpses: int,
             err: float, loop_batch: int, roi_err: float | None, min_bytes: int) -> Row:
    loop_s, fast_s, roi_s = seconds["loop"] * loop_scale, seconds["fast"], seconds.get("roi")
    return Row(setting, batch, image, loop_s * 1e3, fast_s * 1e3, loop_s / fast_s, batch * glimpses / fast_s, err,
               loop_batch, None if roi_s is None else roi_s * 1e3, None if roi_s is None else roi_s / fast_s,
               roi_err, min_bytes, min_bytes / fast_s / 1e9)


def device_name(device: torch.device) -> str:
    return f"cuda ({torch.cuda.get_device_name(device)})" if device.type == "cuda" else str(device)


def main() -> None:
    args = cli(Config, description=__doc__.split("\n\n")[0])  # the device is checked there
    positive_sizes(args.batch, "--batch")
    shapes = [parse_image(image) for image in args.image]
    if not shapes or len(set(shapes)) < len(shapes):  # a shape twice would print its rows twice
        raise ConfigError(f"--image must be one or more different shapes; got {' '.join(args.image)!r}")
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)

    copy_gb_s = copy_bandwidth_gb_s(device) if device.type == "cuda" else None
    rows: list[Row] = []
    for shape in shapes:
        for batch in args.batch:
            rows += run_case(batch, shape, args, device)

    if args.json:
        print(json.dumps({"device": device_name(device), "dtype": args.dtype, "threads": torch.get_num_threads(),
                          "torch": torch.__version__, "copy_gb_s": copy_gb_s, "rows": [asdict(r) for r in rows]},
                         indent=1))
        return
    print(f"device={device_name(device)} dtype={args.dtype} threads={torch.get_num_threads()} "
          f"torch={torch.__version__} retina={args.scales} scales of {args.size}px, factor {args.factor}"
          + (f" copy={copy_gb_s:.0f} GB/s" if copy_gb_s else ""))
    print(f"{'setting':<22} {'B':>6} {'image':>10} {'loop ms':>9} {'glimpse ms':>10} {'ratio':>7} {'glimpses/s':>11} "
          f"{'max err':>8} {'GB/s':>7} {'roi ms':>8} {'vs roi':>7} {'roi err':>8}")
    for r in rows:
        loop = f"{r.loop_ms:>9.2f}" + ("*" if r.loop_batch < r.batch else " ")
        roi = (f"{r.roi_ms:>8.3f} {r.roi_ratio:>6.1f}x {r.roi_err:>8.1e}" if r.roi_ms is not None
               else f"{'-':>8} {'-':>7} {'-':>8}")
        print(f"{r.setting:<22} {r.batch:>6} {r.image:>10} {loop}{r.glimpse_ms:>10.3f} {r.ratio:>6.1f}x "
              f"{r.glimpses_per_s:>11.3g} {r.max_abs_err:>8.1e} {r.gb_per_s:>7.1f} {roi}")
    if any(r.loop_batch < r.batch for r in rows):
        print("* loop timed on the first --loop-max-batch samples and scaled to B")


if __name__ == "__main__":
    run_script(main)
