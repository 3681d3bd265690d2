"""The retina as one Triton kernel, for :class:`glimpse.GlimpseSensor` on CUDA (``method="fused"``).

Each program computes one ``size x size`` glimpse (one sample and channel; one launch per scale) straight from the
images: output pixel ``(i, j)`` of scale ``k`` is the sum of the ``b x b`` block (``b = factor**k``) whose
top-left pixel is ``(x0 + j * b, y0 + i * b)``, pixels off the image counted as 0, times ``1 / b**2``
(and ``1 / 255`` for uint8). The same means as the torch paths, summed in another order: equal to them up
to float32 rounding (a few 1e-8 for pixels in ``[0, 1]``). Nothing is prepared or kept besides the images,
so one glimpse moves the window's pixels in (mostly from cache) and the glimpse out; the torch paths move
planes or windows several times their size through memory.

Only used where Triton imports and the images are on a CUDA device (``TRITON_INTERPRET=1`` runs the
kernel on the CPU, for tests); never under autograd (the kernel has no backward).
"""

from __future__ import annotations

import contextlib
import functools
import os

import torch
from torch import Tensor

__all__ = ["available", "fused_glimpses"]

#: Input dtypes the kernel reads (float64 keeps the torch paths' float64 arithmetic).
DTYPES = (torch.uint8, torch.float16, torch.bfloat16, torch.float32)


@functools.cache
def _triton():
    try:
        import triton
        import triton.language as tl
    except Exception:  # not installed, or broken beside this torch
        return None
    return triton, tl, _build_kernel(triton, tl)


#: The largest block side the kernel takes: its loops over a block's pixels are unrolled at compile time
#: (``side**2`` loads per output pixel), so larger blocks (say 4 scales of factor 4) glimpse by windows.
MAX_BLOCK_SIDE = 8


def available(images: Tensor, largest_block: int = 1) -> bool:
    """Whether the kernel can glimpse ``images`` with blocks up to ``largest_block`` pixels a side: Triton
    imports, the device is CUDA (or the CPU under ``TRITON_INTERPRET=1``), the dtype is one it reads and
    the blocks are at most :data:`MAX_BLOCK_SIDE`."""
    on_device = images.device.type == "cuda" or (images.device.type == "cpu" and os.environ.get("TRITON_INTERPRET") == "1")
    return on_device and images.dtype in DTYPES and largest_block <= MAX_BLOCK_SIDE and _triton() is not None


def _build_kernel(triton, tl):
    @triton.jit
    def glimpse_kernel(
        images, corners, rows, out, height, width, image_stride, pixel_scale,
        SCALE: tl.constexpr, SCALES: tl.constexpr, CHANNELS: tl.constexpr, SIZE: tl.constexpr, SIDE: tl.constexpr,
        BLOCK: tl.constexpr, HAS_ROWS: tl.constexpr,
    ):
        """One program: scale SCALE (blocks of SIDE x SIDE pixels) of sample program_id(0), channel program_id(1)."""
        b = tl.program_id(0).to(tl.int64)
        c = tl.program_id(1).to(tl.int64)
        corner = corners + (b * SCALES + SCALE) * 2
        x0 = tl.load(corner)
        y0 = tl.load(corner + 1)
        image = tl.load(rows + b).to(tl.int64) if HAS_ROWS else b
        base = images + image * image_stride + c * height * width
        offs = tl.arange(0, BLOCK)
        inside = offs < SIZE * SIZE
        i = offs // SIZE
        j = offs % SIZE
        total = tl.zeros([BLOCK], dtype=tl.float32)
        for dy in tl.static_range(SIDE):
            y = y0 + i * SIDE + dy
            row_ok = inside & (y >= 0) & (y < height)
            for dx in tl.static_range(SIDE):
                x = x0 + j * SIDE + dx
                ok = row_ok & (x >= 0) & (x < width)
                total += tl.load(base + y * width + x, mask=ok, other=0).to(tl.float32)
        mean = total * (pixel_scale / (SIDE * SIDE))
        tl.store(out + ((b * SCALES + SCALE) * CHANNELS + c) * (SIZE * SIZE) + offs, mean.to(out.dtype.element_ty),
                 mask=inside)

    return glimpse_kernel


def fused_glimpses(images: Tensor, corners: Tensor, size: int, scales: int, factor: int, index: Tensor | None,
                   out_dtype: torch.dtype, pixel_scale: float) -> Tensor:
    """Glimpses ``(B, S, C, size, size)`` of ``out_dtype`` at integer corners ``(B, S, 2)`` ``(x0, y0)`` of
    ``images`` ``(N, C, H, W)`` (of ``images[index]`` for row ``b`` when ``index`` ``(B,)`` is given), each
    pixel times ``pixel_scale`` (``1 / 255`` for uint8), as the torch paths compute them (see the module
    docstring)."""
    triton, _, kernel = _triton()
    images = images.contiguous()
    corners = corners.contiguous()
    batch, channels, height, width = corners.shape[0], *images.shape[1:]
    out = torch.empty((batch, scales, channels, size, size), dtype=out_dtype, device=images.device)
    if batch == 0:
        return out
    rows = corners if index is None else index.to(device=images.device, dtype=torch.int64).contiguous()
    # Triton launches on the current CUDA device, not the tensors': make it theirs (cuda:1, ...).
    with torch.cuda.device(images.device) if images.device.type == "cuda" else contextlib.nullcontext():
        for k in range(scales):  # one launch per scale: its block side is a compile-time constant
            kernel[(batch, channels)](
                images, corners, rows, out, height, width, channels * height * width, pixel_scale,
                SCALE=k, SCALES=scales, CHANNELS=channels, SIZE=size, SIDE=factor**k,
                BLOCK=triton.next_power_of_2(size * size), HAS_ROWS=index is not None,
            )
    return out
