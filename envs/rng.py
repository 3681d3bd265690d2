"""Counter-based random numbers for batched environments.

Every number an episode uses is a pure function of ``(key, episode, stream, element)`` — the env's
seed, how many episodes it has started, which kind of draw (a position, a digit, an angle), and which
element of that draw — hashed with the SplitMix64 finalizer in ``int64`` arithmetic. So:

- env ``i`` of a batch of ``N`` seeded ``s`` plays exactly the episodes of a single env seeded ``s + i``
  (gymnasium's ``SyncVectorEnv`` seeding convention), although all ``N`` are drawn in one tensor op;
- the same seed gives the same episodes on CPU and CUDA;
- nothing is stateful but a per-env episode counter.

Streams keep draws independent: a task that adds a new kind of draw takes a new stream number and
leaves every other draw unchanged.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import Tensor

from glimpse.checks import check_shape

__all__ = ["uniform", "integers", "normal", "keys_from_seed", "check_keys", "check_seed", "SEED_BOUND"]

_MASK64 = (1 << 64) - 1
#: Seeds are below this: a key is 64 bits, so a larger seed would alias a smaller one.
SEED_BOUND = 1 << 64


def _signed(value: int) -> int:
    """An unsigned 64-bit constant as the int64 with the same bits."""
    value &= _MASK64
    return value - (1 << 64) if value >= 1 << 63 else value


_GOLDEN = _signed(0x9E3779B97F4A7C15)
_MUL1 = _signed(0xBF58476D1CE4E5B9)
_MUL2 = _signed(0x94D049BB133111EB)


def _shift_right(x: Tensor, bits: int) -> Tensor:
    """Logical right shift of int64 (torch's ``>>`` on int64 is arithmetic)."""
    return (x >> bits) & ((1 << (64 - bits)) - 1)


def _mix(x: Tensor) -> Tensor:
    """SplitMix64's finalizer; int64 multiplication wraps modulo 2**64 on CPU and CUDA."""
    x = (x ^ _shift_right(x, 30)) * _MUL1
    x = (x ^ _shift_right(x, 27)) * _MUL2
    return x ^ _shift_right(x, 31)


def check_keys(keys: Tensor, episodes: Tensor) -> None:
    """Raise unless ``keys`` and ``episodes`` are both int64 ``(N,)`` on one device."""
    check_shape(keys, "keys", "(N,)", (None,))
    check_shape(episodes, "episodes", "(N,)", (keys.shape[0],))
    if keys.dtype != torch.int64 or episodes.dtype != torch.int64:
        raise TypeError(f"keys and episodes must be int64; got {keys.dtype} and {episodes.dtype}")
    if episodes.device != keys.device:
        raise ValueError(f"keys and episodes must be on one device; got {keys.device} and {episodes.device}")


def _bits(keys: Tensor, episodes: Tensor, stream: int, shape: tuple[int, ...]) -> Tensor:
    """``(N, *shape)`` int64 hashes of (key, episode, stream, element index)."""
    check_keys(keys, episodes)
    base = _mix(_mix(keys + _signed(_GOLDEN * (stream + 1))) + episodes * _GOLDEN)  # (N,)
    count = 1
    for n in shape:
        count *= n
    element = torch.arange(1, count + 1, device=keys.device, dtype=torch.int64).view(1, *shape)
    return _mix(base.view(-1, *([1] * len(shape))) + element * _GOLDEN)


def uniform(keys: Tensor, episodes: Tensor, stream: int, shape: tuple[int, ...] = ()) -> Tensor:
    """Uniform float64 numbers in ``[0, 1)``, ``(N, *shape)``, from the top 53 bits of each hash."""
    return _shift_right(_bits(keys, episodes, stream, shape), 11).to(torch.float64) * 2.0**-53


def integers(keys: Tensor, episodes: Tensor, stream: int, high: int | Tensor, shape: tuple[int, ...] = ()) -> Tensor:
    """Integers uniform in ``[0, high)``, ``(N, *shape)`` int64; ``high`` an int or a broadcastable tensor."""
    draws = uniform(keys, episodes, stream, shape)
    high_t = torch.as_tensor(high, device=draws.device)
    # Clamp guards the float product from ever reaching `high` through rounding.
    return torch.minimum(torch.floor(draws * high_t).long(), high_t.long() - 1)


def normal(keys: Tensor, episodes: Tensor, stream: int, shape: tuple[int, ...] = ()) -> Tensor:
    """Standard normal float64 numbers ``(N, *shape)`` (Box–Muller on two uniform streams)."""
    u1 = uniform(keys, episodes, stream, shape)
    u2 = uniform(keys, episodes, stream + 1_000_003, shape)
    return torch.sqrt(-2.0 * torch.log1p(-u1)) * torch.cos(2.0 * torch.pi * u2)


def check_seed(seed: Any, name: str = "seed", expected: str = "an int (or a numpy integer)") -> int:
    """``seed`` as a Python int; raise unless it is an int or a numpy integer (not a bool) in ``[0, 2**64)``.

    Gymnasium's seeding takes non-negative ints; numpy integers are ints too here. The bound is the keys'
    64 bits: a larger seed would play the episodes of a smaller one. ``expected`` is what the type error
    says the caller takes.
    """
    if isinstance(seed, (bool, np.bool_)) or not isinstance(seed, (int, np.integer)):
        shown = " ".join(repr(seed).split())  # one line, however the type prints itself
        shown = shown if len(shown) <= 60 else shown[:57] + "..."
        raise TypeError(f"{name} must be {expected}; got {type(seed).__name__} {shown}")
    value = int(seed)
    if not 0 <= value < SEED_BOUND:
        raise ValueError(f"{name} must be an int in [0, 2**64); got {value}")
    return value


def keys_from_seed(seed: int, num_envs: int, device: torch.device | str = "cpu") -> Tensor:
    """``(num_envs,)`` keys ``seed, seed + 1, ...``: env ``i`` of a batch equals a single env seeded ``seed + i``.

    ``seed`` as :func:`check_seed` takes it, with ``seed + num_envs - 1`` (the last env's seed) below ``2**64``.
    """
    seed = check_seed(seed)
    if seed + num_envs > SEED_BOUND:
        raise ValueError(f"seed + num_envs - 1 (the last env's seed) must be below 2**64; got seed {seed} "
                         f"with {num_envs} envs")
    return torch.arange(num_envs, device=device, dtype=torch.int64) + _signed(seed)
