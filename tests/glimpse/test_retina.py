"""extract_glimpses and GlimpseSensor against a slow, obviously correct per-sample reference."""

import math
import os
import subprocess
import sys

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from glimpse import (GlimpseSensor, RetinaError, RetinaSpec, centers_from_corners_px, extract_glimpses, scale_gains,
                     window_corners_px)
from glimpse.baselines import has_roi_align, loop_glimpses, roi_align_glimpses


def reference_glimpse(image: np.ndarray, corner_xy: tuple[int, int], side: int, block: int) -> np.ndarray:
    """Zero-pad, crop the side x side window at the integer corner, average block x block blocks."""
    c, h, w = image.shape
    x0, y0 = corner_xy
    pad = side + abs(x0) + abs(y0) + 1  # enough zeros for any window, however far off the image
    padded = np.zeros((c, h + 2 * pad, w + 2 * pad), dtype=np.float64)
    padded[:, pad : pad + h, pad : pad + w] = image
    window = padded[:, y0 + pad : y0 + pad + side, x0 + pad : x0 + pad + side]
    n = side // block
    return window.reshape(c, n, block, n, block).mean(axis=(2, 4))


def reference_corner(center: float, extent: int, side: int) -> int:
    """The documented rounding: nearest integer to the exact corner, halves (within 1e-3 px) up."""
    return math.floor((center + 1.0) / 2.0 * extent - side / 2.0 + 0.5 + 1e-3)


def reference_extract(images: torch.Tensor, centers: torch.Tensor, size: int, scales: int, factor: int):
    imgs = images.double().numpy()
    if images.dtype == torch.uint8:
        imgs = imgs / 255.0
    b, c, h, w = imgs.shape
    out = np.zeros((b, scales, c, size, size))
    for i in range(b):
        x, y = centers[i].double().tolist()
        for k in range(scales):
            side = size * factor**k
            corner = (reference_corner(x, w, side), reference_corner(y, h, side))
            out[i, k] = reference_glimpse(imgs[i], corner, side, factor**k)
    return torch.from_numpy(out)


def random_images(b, c, h, w, dtype, seed=0):
    g = torch.Generator().manual_seed(seed)
    if dtype == torch.uint8:
        return torch.randint(0, 256, (b, c, h, w), generator=g, dtype=torch.uint8)
    return torch.rand(b, c, h, w, generator=g, dtype=dtype)


EDGE_CENTERS = torch.tensor(
    [[-1, -1], [1, -1], [-1, 1], [1, 1], [-1, 0], [1, 0], [0, -1], [0, 1], [0, 0], [-1.4, 0.2], [0.3, 1.6], [2.5, 2.5],
     [-9.0, 7.0], [0.2, -30.0]],
    dtype=torch.float32,
)


def sensor_glimpses(images, centers, *, size, scales=1, factor=2):
    """The same glimpses through a prepared GlimpseSensor on planes of block means (its own algorithm)."""
    return GlimpseSensor(images, size=size, scales=scales, factor=factor, method="planes")(centers)


def window_sensor_glimpses(images, centers, *, size, scales=1, factor=2):
    """The same glimpses through a GlimpseSensor that keeps the images and glimpses them by windows."""
    return GlimpseSensor(images, size=size, scales=scales, factor=factor, method="windows")(centers)


# Every retina: the one-shot call (a window and its block-mean pyramid) and the prepared sensor's two methods.
ALL_RETINAS = [extract_glimpses, sensor_glimpses, window_sensor_glimpses]
RETINAS = pytest.mark.parametrize("retina", ALL_RETINAS, ids=["call", "planes", "windows"])


@pytest.mark.parametrize("dtype", [torch.uint8, torch.float32])
@pytest.mark.parametrize("channels", [1, 3])
@pytest.mark.parametrize("size,scales,factor", [(4, 1, 2), (5, 2, 2), (6, 3, 2), (3, 4, 2), (5, 3, 3), (4, 2, 3)])
@pytest.mark.parametrize("hw", [(20, 20), (17, 31), (80, 64)])
@RETINAS
def test_matches_reference_on_every_edge_and_corner(dtype, channels, size, scales, factor, hw, retina):
    h, w = hw
    centers = EDGE_CENTERS
    images = random_images(len(centers), channels, h, w, dtype)
    out = retina(images, centers, size=size, scales=scales, factor=factor)
    assert out.shape == (len(centers), scales, channels, size, size)
    assert out.dtype == torch.float32
    expected = reference_extract(images, centers, size, scales, factor)
    torch.testing.assert_close(out.double(), expected, atol=1e-5, rtol=0)


@pytest.mark.parametrize("dtype", [torch.uint8, torch.float32])
@pytest.mark.parametrize("size,factor", [(4, 2), (5, 2), (3, 3)])
def test_integer_corners_equal_naive_pad_crop_average(dtype, size, factor):
    """Corners given as integers (off every edge too) reproduce the naive crop exactly."""
    h, w, scales = 23, 29, 3
    g = torch.Generator().manual_seed(1)
    for k in range(scales):
        side = size * factor**k
        corners = torch.stack(
            [torch.randint(-side, w + 1, (64,), generator=g), torch.randint(-side, h + 1, (64,), generator=g)], 1
        )
        # Centre of the scale-k window, computed here independently of the library.
        centers = torch.stack([(corners[:, 0] + side / 2) / w * 2 - 1, (corners[:, 1] + side / 2) / h * 2 - 1], 1)
        images = random_images(64, 2, h, w, dtype, seed=k)
        out = extract_glimpses(images, centers.float(), size=size, scales=scales, factor=factor)[:, k]
        imgs = images.double().numpy() / (255.0 if dtype == torch.uint8 else 1.0)
        for i in range(64):
            naive = reference_glimpse(imgs[i], tuple(corners[i].tolist()), side, factor**k)
            np.testing.assert_allclose(out[i].double().numpy(), naive, atol=1e-5, rtol=0)


def test_half_pixel_corners_round_up():
    # 6 px wide, size 2: centre x_px = 2.5 puts the exact corner at 1.5, which rounds up to 2.
    images = torch.arange(6.0).view(1, 1, 1, 6).expand(1, 1, 2, 6).contiguous()
    x = 2.5 / 6 * 2 - 1
    out = extract_glimpses(images, torch.tensor([[x, 0.0]]), size=2)
    assert out[0, 0, 0, 0].tolist() == [2.0, 3.0]
    assert window_corners_px(torch.tensor([[x, 0.0]]), 2, 6, size=2).tolist() == [[[2, 0]]]


@RETINAS
def test_factor_one_repeats_the_same_window(retina):
    images = random_images(3, 1, 10, 10, torch.float32)
    out = retina(images, torch.zeros(3, 2), size=4, scales=3, factor=1)
    torch.testing.assert_close(out[:, 0], out[:, 2])


@RETINAS
def test_float64_and_half_precision_keep_their_dtype(retina):
    for dtype in (torch.float64, torch.bfloat16):
        images = random_images(2, 1, 12, 12, torch.float32).to(dtype)
        out = retina(images, torch.zeros(2, 2), size=4, scales=2)
        assert out.dtype == dtype
        expected = reference_extract(images.float(), torch.zeros(2, 2), 4, 2, 2)
        torch.testing.assert_close(out.double(), expected, atol=1e-2 if dtype == torch.bfloat16 else 1e-12, rtol=0)


@RETINAS
def test_window_fully_outside_is_zero(retina):
    images = torch.ones(3, 1, 8, 8)
    out = retina(images, torch.tensor([[5.0, -5.0], [1e4, 0.0], [0.0, -1e4]]), size=3, scales=2)
    assert out.abs().max() == 0


@RETINAS
def test_gradients_flow_to_images(retina):
    images = random_images(2, 2, 9, 7, torch.float64).requires_grad_()
    centers = torch.tensor([[0.1, -0.3], [-0.9, 0.8]], dtype=torch.float64)
    assert torch.autograd.gradcheck(lambda im: retina(im, centers, size=3, scales=2), (images,))
    # Gradient of the sum of a pixel's glimpse values: each block pixel gets 1/block_area per block covering it.
    img = torch.zeros(1, 1, 8, 8, requires_grad=True)
    retina(img, torch.zeros(1, 2), size=2, scales=2).sum().backward()
    assert img.grad[0, 0, 3, 3] == pytest.approx(1 + 0.25)
    assert img.grad[0, 0, 0, 0] == 0


@pytest.mark.parametrize("method", ["planes", "windows"])
def test_sensor_matches_stateless_and_replace_and_index(method):
    images = random_images(5, 3, 30, 40, torch.uint8)
    centers = torch.rand(5, 2, generator=torch.Generator().manual_seed(3)) * 2.4 - 1.2
    sensor = GlimpseSensor(images, size=5, scales=3, factor=2, method=method)
    assert sensor.uses_planes == (method == "planes")
    torch.testing.assert_close(sensor(centers), extract_glimpses(images, centers, size=5, scales=3), atol=1e-6, rtol=0)
    # index: glimpse image 4 twice and image 0 once.
    index = torch.tensor([4, 0, 4])
    out = sensor(centers[:3], index=index)
    expected = extract_glimpses(images[index], centers[:3], size=5, scales=3)
    torch.testing.assert_close(out, expected, atol=1e-6, rtol=0)
    # replace: rows 1 and 3 get new images.
    new = random_images(2, 3, 30, 40, torch.uint8, seed=9)
    sensor.replace(torch.tensor([1, 3]), new)
    images2 = images.clone()
    images2[torch.tensor([1, 3])] = new
    torch.testing.assert_close(sensor(centers), extract_glimpses(images2, centers, size=5, scales=3), atol=1e-6, rtol=0)
    with pytest.raises(ValueError, match="replacement images"):
        sensor.replace(torch.tensor([0]), new[:1].float())
    # prepare: all rows at once, in place (the same buffer), same result as a new sensor.
    prepared = sensor.planes if method == "planes" else sensor.images
    fresh = random_images(5, 3, 30, 40, torch.uint8, seed=11)
    sensor.prepare(fresh)
    assert (sensor.planes if method == "planes" else sensor.images) is prepared
    torch.testing.assert_close(sensor(centers), extract_glimpses(fresh, centers, size=5, scales=3), atol=1e-6, rtol=0)
    with pytest.raises(ValueError, match="prepare"):
        sensor.prepare(fresh[:2])
    # replace with every row in order is prepare: in place, same result.
    sensor.replace(torch.arange(5), images)
    assert (sensor.planes if method == "planes" else sensor.images) is prepared
    torch.testing.assert_close(sensor(centers), extract_glimpses(images, centers, size=5, scales=3), atol=1e-6, rtol=0)


@pytest.mark.parametrize("method", ["planes", "windows"])
def test_sensor_outputs_are_fresh_and_reprepare_after_autograd(method):
    images = random_images(4, 2, 16, 12, torch.float32)
    centers = torch.rand(2, 4, 2, generator=torch.Generator().manual_seed(5)) * 3 - 1.5
    leaf = images.clone().requires_grad_()
    sensor = GlimpseSensor(leaf, size=4, scales=3, factor=2, method=method)
    torch.testing.assert_close(sensor(centers[0]).double(), reference_extract(images, centers[0], 4, 3, 2), atol=1e-5, rtol=0)
    # Back to the reused buffer for images without grad: its margins must still be zero.
    fresh = random_images(4, 2, 16, 12, torch.float32, seed=3)
    sensor.prepare(fresh)
    first = sensor(centers[0])
    kept = first.clone()
    second = sensor(centers[1])  # must not write into the first call's output
    torch.testing.assert_close(first, kept, atol=0, rtol=0)
    torch.testing.assert_close(second.double(), reference_extract(fresh, centers[1], 4, 3, 2), atol=1e-5, rtol=0)
    # A partial replace never writes into the caller's tensor.
    sensor.prepare(leaf)
    sensor.replace(torch.tensor([1]), fresh[:1])
    torch.testing.assert_close(leaf.detach(), images, atol=0, rtol=0)


def test_sensor_index_and_method_are_checked():
    with pytest.raises(ValueError, match="method must be 'auto', 'planes', 'windows' or 'fused'; got 'table'"):
        GlimpseSensor(random_images(3, 1, 8, 8, torch.uint8), size=2, method="table")
    if os.environ.get("TRITON_INTERPRET") != "1":  # the fused kernel runs on CUDA only
        with pytest.raises(ValueError, match="method='fused' needs Triton, images on a CUDA device"):
            GlimpseSensor(random_images(3, 1, 8, 8, torch.uint8), size=2, method="fused")
    sensor = GlimpseSensor(random_images(3, 1, 8, 8, torch.uint8), size=2)
    with pytest.raises(IndexError, match=r"index must be in \[0, 3\); got values from -1 to 2"):
        sensor(torch.zeros(2, 2), index=torch.tensor([-1, 2]))
    with pytest.raises(IndexError, match="index must be in"):
        sensor(torch.zeros(1, 2), index=torch.tensor([3]))
    with pytest.raises(TypeError, match="integer image rows"):
        sensor(torch.zeros(1, 2), index=torch.tensor([0.0]))


@pytest.mark.parametrize("method", ["planes", "windows"])
@pytest.mark.parametrize("dtype, channels, size, scales, factor", [
    (torch.uint8, 1, 5, 3, 2), (torch.float32, 3, 4, 2, 3), (torch.float64, 2, 3, 3, 2),
])
def test_sensor_memory_bytes_counts_what_a_sensor_keeps(method, dtype, channels, size, scales, factor):
    """The estimate, without a sensor, equals the buffers a real one keeps; one glimpse adds at least its output."""
    images = random_images(6, channels, 20, 24, dtype)
    sensor = GlimpseSensor(images, size=size, scales=scales, factor=factor, method=method)
    kept = sum(t.numel() * t.element_size() for t in (sensor.planes, getattr(sensor, "_scratch", None), sensor.images)
               if t is not None)
    retina = dict(size=size, scales=scales, factor=factor, method=method)
    assert GlimpseSensor.memory_bytes(tuple(images.shape), dtype, **retina, batch=0) == kept
    out = sensor(torch.zeros(6, 2))
    call = GlimpseSensor.memory_bytes(tuple(images.shape), dtype, **retina) - kept
    assert call >= out.numel() * out.element_size()
    # "auto" is estimated for the method the sensor would choose.
    chosen = GlimpseSensor(images, size=size, scales=scales, factor=factor).method
    assert GlimpseSensor.memory_bytes(tuple(images.shape), dtype, size=size, scales=scales, factor=factor) == (
        GlimpseSensor.memory_bytes(tuple(images.shape), dtype, size=size, scales=scales, factor=factor, method=chosen))


@pytest.mark.parametrize("method", ["planes", "windows"])
def test_sensor_replace_checks_rows_and_images_as_a_call_does(method):
    """One image per row, no broadcasting; rows in range and each once (as a call checks its index)."""
    images = random_images(3, 1, 8, 8, torch.uint8)
    sensor = GlimpseSensor(images, size=2, scales=2, method=method)
    one = random_images(1, 1, 8, 8, torch.uint8, seed=4)
    centers = torch.zeros(3, 2)
    before = sensor(centers).clone()
    bad = [
        (torch.tensor([0, 1]), one, ValueError, r"replace\(\) takes one image per row of index: got 2 rows and 1 "),
        (torch.arange(3), one, ValueError, "got 3 rows and 1 images"),  # not "use replace"
        (torch.tensor([1]), random_images(2, 1, 8, 8, torch.uint8), ValueError, "got 1 rows and 2 images"),
        (torch.tensor([-1]), one, IndexError, r"index must be in \[0, 3\); got values from -1 to -1"),
        (torch.tensor([3]), one, IndexError, r"index must be in \[0, 3\)"),
        (torch.tensor([1.0]), one, TypeError, "integer image rows"),
        (torch.tensor([[1]]), one, ValueError, r"index must be \(K,\)"),
        ([1], one, TypeError, "index must be a torch.Tensor"),
        (torch.tensor([1, 1]), torch.cat([one, one]), ValueError, r"index must name each row once; got \[1, 1\]"),
    ]
    for index, new, error, match in bad:
        with pytest.raises(error, match=match):
            sensor.replace(index, new)
        torch.testing.assert_close(sensor(centers), before, rtol=0, atol=0)  # nothing was written


def _check_fused_sensor(device: str, dtype: torch.dtype, shape: tuple, retina: tuple) -> None:
    """The fused sensor on ``device`` against the windows sensor on the CPU: glimpses, rows by index,
    replaced rows, and (float32) gradients through its autograd fallback."""
    size, scales, factor = retina
    kw = dict(size=size, scales=scales, factor=factor)
    atol = 1e-6 if dtype != torch.float16 else 2e-3
    images = random_images(*shape, dtype)
    centers = torch.rand(shape[0], 2, generator=torch.Generator().manual_seed(1)) * 3 - 1.5  # some off the image
    reference = GlimpseSensor(images, **kw, method="windows")
    fused = GlimpseSensor(images.to(device), **kw, method="fused")
    assert fused.method == "fused"
    torch.testing.assert_close(fused(centers.to(device)).cpu(), reference(centers), atol=atol, rtol=0)
    index = torch.tensor([2, 0, 2])
    torch.testing.assert_close(fused(centers[:3].to(device), index=index.to(device)).cpu(),
                               reference(centers[:3], index=index), atol=atol, rtol=0)
    new = random_images(2, *shape[1:], dtype, seed=5)
    fused.replace(torch.tensor([1, 3], device=device), new.to(device))
    reference.replace(torch.tensor([1, 3]), new)
    torch.testing.assert_close(fused(centers.to(device)).cpu(), reference(centers), atol=atol, rtol=0)
    if dtype == torch.float32:  # no backward in the kernel: autograd glimpses by windows, same gradients
        leaf = images.clone().to(device).requires_grad_()
        GlimpseSensor(leaf, **kw, method="fused")(centers.to(device)).square().sum().backward()
        cpu_leaf = images.clone().requires_grad_()
        GlimpseSensor(cpu_leaf, **kw, method="windows")(centers).square().sum().backward()
        torch.testing.assert_close(leaf.grad.cpu(), cpu_leaf.grad, atol=1e-5, rtol=0)


FUSED_CASES = [((6, 1, 60, 60), (12, 3, 2)), ((5, 3, 30, 41), (5, 3, 2)), ((4, 2, 20, 19), (3, 2, 3))]


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize(
    "dtype,shape,retina",
    [(dtype, *case) for dtype in (torch.uint8, torch.float32) for case in FUSED_CASES] + [(torch.float16, *FUSED_CASES[0])],
)
def test_cuda_fused_sensor_matches_the_windows_sensor(dtype, shape, retina):
    images = random_images(*shape, dtype).cuda()
    try:
        GlimpseSensor(images, size=retina[0], scales=retina[1], factor=retina[2], method="fused")
    except ValueError as error:  # the public way to ask whether the fused kernel runs here
        if "Triton" not in str(error):
            raise
        pytest.skip("Triton does not import beside this torch")
    assert GlimpseSensor(images, size=retina[0], scales=retina[1], factor=retina[2]).method == "fused"  # auto
    # Blocks past the kernel's unrolling limit (64 px a side here) glimpse by the torch paths instead.
    assert GlimpseSensor(images, size=2, scales=4, factor=4).method != "fused"
    _check_fused_sensor("cuda", dtype, shape, retina)


@pytest.mark.e2e  # a subprocess
def test_fused_kernel_in_triton_interpreter_matches_the_windows_sensor():
    """The same check on the CPU through Triton's interpreter, wherever Triton is installed."""
    pytest.importorskip("triton")
    code = (
        "import importlib.util, sys, torch\n"
        "spec = importlib.util.spec_from_file_location('test_retina', sys.argv[1])\n"
        "t = importlib.util.module_from_spec(spec); spec.loader.exec_module(t)\n"
        "for dtype in (torch.uint8, torch.float32):\n"
        "    for shape, retina in t.FUSED_CASES:\n"
        "        t._check_fused_sensor('cpu', dtype, shape, retina)\n"
    )
    env = {**os.environ, "TRITON_INTERPRET": "1"}
    done = subprocess.run([sys.executable, "-c", code, __file__], env=env, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]


def test_centers_from_corners_round_trip():
    corners = torch.tensor([[-7, 3], [0, 0], [12, -2], [40, 33]])
    centers = centers_from_corners_px(corners, 30, 40, size=7)
    assert window_corners_px(centers, 30, 40, size=7)[:, 0].tolist() == corners.tolist()


def test_large_image_region_path_matches_reference():
    images = random_images(4, 3, 120, 150, torch.float32)
    centers = torch.tensor([[0.0, 0.0], [-0.97, 0.95], [0.5, -1.0], [1.1, 0.2]])
    out = extract_glimpses(images, centers, size=6, scales=3)
    torch.testing.assert_close(out.double(), reference_extract(images, centers, 6, 3, 2), atol=1e-5, rtol=0)


def test_reused_buffers_never_leak_into_outputs():
    """The call's intermediates live in per-thread buffers reused between calls: a later call (other
    batch size, dtype, retina) must not change an earlier output, and every call stays exact."""
    calls = [(random_images(6, 1, 30, 30, torch.float32, seed=1), dict(size=4, scales=3)),
             (random_images(9, 3, 30, 30, torch.uint8, seed=2), dict(size=6, scales=2, factor=3)),
             (random_images(2, 1, 30, 30, torch.float32, seed=3), dict(size=5, scales=3))]
    centers = [torch.rand(len(images), 2, generator=torch.Generator().manual_seed(i)) * 3 - 1.5
               for i, (images, _) in enumerate(calls)]
    outs = [extract_glimpses(images, c, **kw) for (images, kw), c in zip(calls, centers)]
    for out, (images, kw), c in zip(outs, calls, centers):
        expected = reference_extract(images, c, kw["size"], kw.get("scales", 1), kw.get("factor", 2))
        torch.testing.assert_close(out.double(), expected, atol=1e-5, rtol=0)


def test_concurrent_threads_get_their_own_buffers():
    import threading

    images = [random_images(64, 1, 40, 40, torch.float32, seed=s) for s in range(4)]
    centers = [torch.rand(64, 2, generator=torch.Generator().manual_seed(s)) * 2 - 1 for s in range(4)]
    expected = [reference_extract(i, c, 6, 3, 2) for i, c in zip(images, centers)]
    errors = []

    def work(i):
        for _ in range(20):
            out = extract_glimpses(images[i], centers[i], size=6, scales=3)
            errors.append(float((out.double() - expected[i]).abs().max()))

    threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(errors) == 80 and max(errors) <= 1e-5


def test_calls_beyond_the_buffer_cap_allocate_and_stay_exact(monkeypatch):
    import glimpse.retina as retina

    monkeypatch.setattr(retina, "_SCRATCH_MAX_BYTES", 1024)
    monkeypatch.setattr(retina, "_CPU_SCRATCH", retina._Scratch())
    images = random_images(8, 1, 30, 30, torch.uint8)
    centers = torch.rand(8, 2, generator=torch.Generator().manual_seed(0)) * 2 - 1
    out = extract_glimpses(images, centers, size=6, scales=3)
    torch.testing.assert_close(out.double(), reference_extract(images, centers, 6, 3, 2), atol=1e-5, rtol=0)
    assert retina._CPU_SCRATCH.nbytes <= 1024


@RETINAS
def test_inference_mode_and_normal_calls_mix(retina):
    """Buffers and constants kept across calls are normal tensors even when first made under
    torch.inference_mode, so a later call outside it can still update them in place."""
    images = random_images(5, 2, 26, 26, torch.uint8, seed=7)
    centers = torch.tensor([[0.0, 0.0], [-1.2, 0.4], [0.9, 0.9], [0.3, -1.0], [2.0, 2.0]])
    expected = reference_extract(images, centers, 6, 3, 2)
    with torch.inference_mode():
        inside = retina(images, centers, size=6, scales=3)
    outside = retina(images, centers, size=6, scales=3)
    for out in (inside, outside):
        torch.testing.assert_close(out.double(), expected, atol=1e-5, rtol=0)


@pytest.mark.parametrize("method", ["planes", "windows"])
def test_sensor_made_under_inference_mode_works_outside_it(method):
    images = random_images(4, 1, 30, 30, torch.float32, seed=8)
    centers = torch.tensor([[0.0, 0.0], [-0.9, 0.2], [1.3, -0.4], [0.5, 0.5]])
    with torch.inference_mode():
        sensor = GlimpseSensor(images, size=6, scales=3, method=method)
        sensor(centers)
    sensor.prepare(images.flip(-1))
    sensor.replace(torch.tensor([1]), images[1:2])
    expected = reference_extract(torch.cat([images.flip(-1)[:1], images[1:2], images.flip(-1)[2:]]), centers, 6, 3, 2)
    torch.testing.assert_close(sensor(centers).double(), expected, atol=1e-5, rtol=0)


@settings(max_examples=120, deadline=None)
@given(
    b=st.integers(1, 3),
    c=st.integers(1, 3),
    h=st.integers(1, 40),
    w=st.integers(1, 40),
    size=st.integers(1, 7),
    scales=st.integers(1, 3),
    factor=st.integers(1, 3),
    uint8=st.booleans(),
    data=st.data(),
)
def test_property_matches_reference(b, c, h, w, size, scales, factor, uint8, data):
    coords = st.floats(-1.5, 1.5, allow_nan=False, width=32)
    centers = torch.tensor([[data.draw(coords), data.draw(coords)] for _ in range(b)], dtype=torch.float32)
    images = random_images(b, c, h, w, torch.uint8 if uint8 else torch.float32, seed=h * 41 + w)
    retina = data.draw(st.sampled_from(ALL_RETINAS))
    out = retina(images, centers, size=size, scales=scales, factor=factor)
    expected = reference_extract(images, centers, size, scales, factor)
    torch.testing.assert_close(out.double(), expected, atol=1e-5, rtol=0)
    # Property: every output is a mean of values in [0, 1] (zeros outside count), so it stays in [0, 1].
    assert out.min() >= 0 and out.max() <= 1 + 1e-6


@pytest.mark.parametrize(
    "kwargs,error,match",
    [
        (dict(images=torch.zeros(2, 8, 8)), ValueError, r"images must be \(B, C, H, W\); got \(2, 8, 8\)"),
        (dict(images=torch.zeros(2, 1, 8, 8, dtype=torch.int32)), TypeError, "uint8 or floating"),
        (dict(centers=torch.zeros(3, 2)), ValueError, r"centers must be \(B, 2\); got \(3, 2\)"),
        (dict(centers=torch.zeros(2, 3)), ValueError, r"centers must be \(B, 2\)"),
        (dict(centers=torch.tensor([[0.0, float("nan")], [0, 0]])), ValueError, "finite"),
        (dict(centers=torch.tensor([[0.0, float("inf")], [0, 0]])), ValueError, "finite"),
        (dict(centers=torch.zeros(2, 2, dtype=torch.long)), TypeError, "floating point"),
        (dict(size=0), ValueError, "size must be an integer >= 1; got 0"),
        (dict(scales=0), ValueError, "scales must be an integer >= 1; got 0"),
        (dict(factor=0), ValueError, "factor must be an integer >= 1; got 0"),
        (dict(size=2.5), ValueError, "size must be an integer"),
    ],
)
def test_bad_input_is_named(kwargs, error, match):
    args = dict(images=torch.zeros(2, 1, 8, 8), centers=torch.zeros(2, 2), size=3, scales=1, factor=2)
    args.update(kwargs)
    with pytest.raises(error, match=match):
        extract_glimpses(args.pop("images"), args.pop("centers"), **args)


@pytest.mark.e2e  # a subprocess
def test_bench_glimpse_script_runs_and_checks_both_sensor_methods():
    """The benchmark's own correctness column: both retinas agree with the loop on every row."""
    import json
    import subprocess
    import sys
    from pathlib import Path

    script = Path(__file__).resolve().parents[2] / "scripts" / "bench_glimpse.py"
    args = ["--batch", "3", "--image", "1x40x40", "2x200x200", "--budget", "0.01", "--glimpses", "2", "--json"]
    done = subprocess.run([sys.executable, str(script), *args], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    rows = json.loads(done.stdout)["rows"]
    # 48 px windows: planes on 40x40, windows on 200x200 (40,000 > 8 * 48**2).
    assert [r["setting"] for r in rows] == ["call", "episode x2 (planes)", "call", "episode x2 (windows)"]
    assert max(r["max_abs_err"] for r in rows) < 1e-5
    assert all(r["ratio"] > 0 for r in rows)


def test_scale_gains_make_every_scale_a_block_sum():
    """A 1-px dot through a factor-2 retina reads 1, 1/4, 1/16 (area means); times scale_gains(3, 4): 1 at each."""
    image = torch.zeros(1, 1, 24, 24)
    image[0, 0, 12, 12] = 1.0
    glimpses = extract_glimpses(image, torch.zeros(1, 2), size=6, scales=3)  # (1, 3, 1, 6, 6)
    torch.testing.assert_close(glimpses.amax(dim=(2, 3, 4)), torch.tensor([[1.0, 1 / 4, 1 / 16]]))
    gains = scale_gains(3, 4.0)
    assert gains.shape == (3, 1, 1, 1) and gains.dtype == torch.float32
    torch.testing.assert_close((glimpses * gains).amax(dim=(2, 3, 4)), torch.ones(1, 3))
    # the sums: each scale's total is the window's pixel sum, the dot once
    torch.testing.assert_close((glimpses * gains).sum(dim=(2, 3, 4)), torch.ones(1, 3))
    assert torch.equal(scale_gains(4, 1.0).flatten(), torch.ones(4))
    assert torch.equal(scale_gains(3, 9.0).flatten(), torch.tensor([1.0, 9.0, 81.0]))  # factor 3: 3x3 blocks
    assert torch.equal(scale_gains(3, np.float32(4.0)), gains)  # any real number, as GlimpseExtractor took
    for bad in (0, -4.0, float("inf"), float("nan"), True, "4"):
        with pytest.raises(ValueError, match="scale_gain"):
            scale_gains(3, bad)
    with pytest.raises(ValueError, match="scales"):
        scale_gains(0, 4.0)


@pytest.mark.parametrize("baseline", [loop_glimpses, roi_align_glimpses], ids=["loop", "roi_align"])
@pytest.mark.parametrize("dtype", [torch.uint8, torch.float32])
def test_benchmark_baselines_give_the_reference_glimpses(baseline, dtype):
    """What bench_glimpse.py times the core against are the same glimpses, edges and far-off windows included."""
    if baseline is roi_align_glimpses and not has_roi_align():
        pytest.skip("torchvision.ops.roi_align does not import here")
    on_image = EDGE_CENTERS[(EDGE_CENTERS.abs() <= 1).all(dim=1)]  # the corners, edges' middles and centre
    centers = torch.cat([on_image, torch.rand(7, 2, generator=torch.Generator().manual_seed(0)) * 2 - 1])
    images = random_images(len(centers), 2, 17, 31, dtype)
    for size, scales, factor in [(4, 1, 2), (6, 3, 2), (5, 3, 3)]:
        expected = reference_extract(images, centers, size, scales, factor)
        got = baseline(images, centers, size=size, scales=scales, factor=factor)
        assert got.shape == expected.shape
        torch.testing.assert_close(got.double(), expected, atol=1e-5, rtol=0)
    with pytest.raises(ValueError, match="centres on the image"):
        baseline(images[:1], torch.tensor([[1.5, 0.0]]), size=4, scales=2, factor=2)


# ------------------------------------------------------------------------------------------------------------
# The retina as one value
# ------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("field", ["size", "scales", "factor"])
@pytest.mark.parametrize("bad", [0, -2, 2.5, True, "8", None])
def test_retina_spec_refuses_each_bad_field_in_one_line_naming_it(field, bad):
    good = dict(size=8, scales=3, factor=2)
    with pytest.raises(RetinaError) as caught:
        RetinaSpec(**{**good, field: bad})
    assert caught.value.field == field
    assert str(caught.value) == f"{field} must be an integer >= 1; got {bad!r}"
    assert isinstance(caught.value, ValueError)


def test_retina_spec_keeps_numpy_integers_as_ints_and_is_frozen():
    spec = RetinaSpec(np.int64(12), np.int32(3), np.uint8(2))
    assert spec == RetinaSpec(12, 3, 2) and all(type(v) is int for v in (spec.size, spec.scales, spec.factor))
    assert spec.sides == (12, 24, 48)
    with pytest.raises(AttributeError):
        spec.size = 4


@pytest.mark.parametrize("size, scales, factor, side", [(8, 4, 2, 28), (8, 3, 4, 28), (3, 3, 3, 10), (5, 1, 1, 5)])
def test_retina_spec_fits_a_canvas_up_to_the_first_scale_covering_it(size, scales, factor, side):
    """Independently of the rule's wording: the coarsest allowed window, centred on a corner, still reaches
    the far corner only at the last scale, and one more scale is refused naming ``scales``."""
    spec = RetinaSpec(size, scales, factor)
    spec.check_canvas(side, side)  # fits
    if factor > 1:
        with pytest.raises(RetinaError) as caught:
            RetinaSpec(size, scales + 1, factor).check_canvas(side, side)
        assert caught.value.field == "scales" and f"use scales <= {scales}" in str(caught.value)
        corners = window_corners_px(torch.tensor([[-1.0, -1.0]]), side, side, retina=spec)[0, -1]
        assert int(corners[0]) + spec.sides[-1] >= side  # the coarsest window from a corner covers the canvas
    with pytest.raises(RetinaError, match=rf"^size {side + 1} is larger than the {side}x{side} canvas$") as caught:
        RetinaSpec(side + 1).check_canvas(side, side)
    assert caught.value.field == "size"


def test_retina_errors_reword_for_another_caller_and_pickle():
    import pickle

    with pytest.raises(RetinaError) as caught:
        RetinaSpec(8, 10).check_canvas(28, 28)
    error = caught.value.renamed({"size": "glimpse_size"})
    assert str(error).startswith("scales=10 is too many for the 28x28 canvas")
    assert str(error).endswith("use scales <= 4 (or a smaller glimpse_size or factor)")
    assert error.worded("--scales", " ").startswith("--scales 10 is too many")
    again = pickle.loads(pickle.dumps(error))
    assert (type(again), again.field, str(again)) == (RetinaError, "scales", str(error))


def test_sensor_and_functions_take_the_spec_with_the_same_glimpses():
    images = torch.rand(3, 1, 20, 20)
    centers = torch.rand(3, 2) * 2 - 1
    spec = RetinaSpec(4, 3, 2)
    sensor = GlimpseSensor(images, retina=spec)
    assert sensor.retina is spec
    expected = extract_glimpses(images, centers, size=4, scales=3, factor=2)
    torch.testing.assert_close(extract_glimpses(images, centers, retina=spec), expected, rtol=0, atol=0)
    torch.testing.assert_close(sensor(centers), expected)
    assert GlimpseSensor.memory_bytes(images.shape, images.dtype, retina=spec) == GlimpseSensor.memory_bytes(
        images.shape, images.dtype, size=4, scales=3, factor=2)
    with pytest.raises(ValueError, match=r"^pass the retina as retina= or as size/scales/factor, not both; got "
                                         r"retina=RetinaSpec\(size=4, scales=3, factor=2\) and scales=3$"):
        extract_glimpses(images, centers, retina=spec, scales=3)
    with pytest.raises(TypeError, match="retina must be a glimpse.RetinaSpec; got dict"):
        GlimpseSensor(images, retina=dict(size=4))
