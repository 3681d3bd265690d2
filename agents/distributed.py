"""Data-parallel training on ``torch.distributed``, as ``torchrun`` launches it: one process per device.

``torchrun --nproc-per-node N scripts/train.py ...`` starts ``N`` copies of the script, each told its place
by environment variables (``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, ``LOCAL_WORLD_SIZE``, ``MASTER_ADDR``,
``MASTER_PORT``). This module turns them into a :class:`Context` and keeps the ranks' models identical::

    from agents import distributed

    ctx = distributed.init_from_env("cpu")          # gloo on CPU, nccl on CUDA (cuda:LOCAL_RANK); else rank 0 of 1
    first, rows = ctx.share(batch_size, "--batch-size")   # this rank's rows of every global batch
    model = make_model().to(ctx.device)
    distributed.broadcast_parameters(model)         # every rank starts from rank 0's weights
    ...
    losses["loss"].backward()
    distributed.average_gradients(model)            # every rank now holds the global batch's mean gradient
    optimizer.step()
    ...
    distributed.shutdown()

Why an explicit all-reduce and not ``DistributedDataParallel``: an agent's loss comes from
``model.train_losses(env, obs)``, a rollout that calls the model's submodules many times (and, for hard
agents, samples from them), not from one ``model(inputs)`` whose hooks DDP could follow. One flattened
``all_reduce`` per dtype after ``backward()`` is the same arithmetic DDP does (the sum of the ranks'
gradients divided by their number) for every agent, whatever its ``forward`` looks like.

What is identical to one process: with equal shares of a global batch of ``B`` episodes and a loss that
is a mean over the batch, the mean of the ranks' gradients is the gradient a single process computes on
all ``B`` episodes (up to the order of float additions), so an agent whose training draws no random
numbers (``conv``, ``fc``, ``stn``, ``item-soft``, ``spatial-soft``) follows the single process's
trajectory. A hard agent samples its actions from torch's generator, which differs from rank to rank
(see :func:`seed_sampling`): its trajectory is its own, but after every update every rank holds the same
parameters (each applies the same averaged gradient to the same weights).

Failure: the process group has a timeout (``$GLIMPSE_DIST_TIMEOUT`` seconds, default 300), so a rank that
stopped never leaves the others waiting forever; a collective that fails (a peer closed its connection,
or timed out) raises :class:`PeerFailure`, and so does the ``SIGTERM`` with which ``torchrun`` ends the
other processes when one fails.
"""

from __future__ import annotations

import contextlib
import datetime
import math
import os
import re
import signal
import sys
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, NoReturn, TypeVar

import torch
import torch.distributed as dist
from torch import Tensor, nn

__all__ = [
    "Context", "LaunchError", "PeerFailure", "TIMEOUT_ENV", "DEFAULT_TIMEOUT_S",
    "context_from_env", "timeout_from_env", "init_from_env", "current", "is_active", "shutdown", "joined", "exit_process", "seed_sampling",
    "average_gradients", "broadcast_parameters", "all_reduce_sum", "all_reduce_mean",
    "all_gather_object", "broadcast_object", "gather_rows", "run_on_main", "run_everywhere",
    "raised_everywhere", "is_raised_everywhere",
]

T = TypeVar("T")

#: The environment variable that sets the process group's timeout, in seconds.
TIMEOUT_ENV = "GLIMPSE_DIST_TIMEOUT"
#: The default timeout: long enough for rank 0 to write a checkpoint and draw pictures while the other
#: ranks wait at the next collective, short enough that a run whose peer hangs ends the same coffee break.
DEFAULT_TIMEOUT_S = 300.0


class LaunchError(ValueError):
    """A launch that cannot run (a batch that does not split evenly over the ranks, fewer GPUs than
    processes, ...). Raised identically on every process of a machine; the scripts print it once per
    machine as one line and exit with status 2."""


class PeerFailure(RuntimeError):
    """Another process of the run stopped or cannot be reached (a collective failed or timed out, or the
    launcher ended this process because another one failed). The process where it started says why."""


@dataclass(frozen=True)
class Context:
    """Where this process sits in a data-parallel run (one process: rank 0 of 1)."""

    rank: int = 0
    """this process's index among all processes (``RANK``)"""
    world_size: int = 1
    """how many processes train together (``WORLD_SIZE``)"""
    local_rank: int = 0
    """this process's index on its machine (``LOCAL_RANK``): its GPU"""
    local_world_size: int = 1
    """how many processes run on this machine (``LOCAL_WORLD_SIZE``)"""
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    """the device this process trains on (``cuda:LOCAL_RANK`` for ``--device cuda`` under torchrun)"""
    backend: str | None = None
    """``"gloo"`` (CPU) or ``"nccl"`` (CUDA); None for one process"""

    @property
    def is_main(self) -> bool:
        """Rank 0: the process that owns the run folder (events, config, checkpoints, results)."""
        return self.rank == 0

    @property
    def is_distributed(self) -> bool:
        """More than one process: the collectives of this module communicate."""
        return self.world_size > 1

    def share(self, total: int, flag: str) -> tuple[int, int]:
        """``(first, count)``: this rank's contiguous, equal share of ``total`` rows (a global batch):
        rows ``first .. first + count - 1``; the ranks' shares tile ``0 .. total - 1`` exactly once.

        Raises :class:`LaunchError` naming ``flag`` unless ``total`` is a multiple of the world size.
        """
        if total % self.world_size:
            raise LaunchError(f"{flag} {total} does not split evenly over the {self.world_size} processes "
                              f"(WORLD_SIZE): every process plays an equal share of each batch; pass a multiple "
                              f"of {self.world_size}")
        count = total // self.world_size
        return self.rank * count, count

    def split(self, total: int) -> tuple[int, int]:
        """``(first, count)``: this rank's contiguous share of ``total`` items when they need not split
        evenly (the test examples): ``first = rank * total // world_size``; shares differ by at most one,
        and tile ``0 .. total - 1`` exactly once. ``count`` is 0 when ``total < world_size``."""
        first = self.rank * total // self.world_size
        return first, (self.rank + 1) * total // self.world_size - first

    def take_rows(self, state: Mapping[str, Tensor], total: int) -> dict[str, Tensor]:
        """This rank's rows (:meth:`share` of ``total``) of a state whose tensors have one row per global
        batch row, e.g. ``GlimpseVectorEnv.state_dict()`` of the whole batch (see :func:`gather_rows`)."""
        first, count = self.share(total, "the state's rows")
        for name, value in state.items():
            if value.shape[0] != total:
                raise ValueError(f"state[{name!r}] has {value.shape[0]} rows; expected the batch's {total}")
        return {name: value[first:first + count].clone() for name, value in state.items()}


_current: Context | None = None
_joined = False  # whether this process ever started a process group (it ends by exit_process then)
_stopping = False
_previous_sigterm: Any = None


def _int_env(environ: Mapping[str, str], name: str, default: int, low: int = 0) -> int:
    raw = environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise LaunchError(f"${name} must be an integer; got {raw!r}") from None
    if value < low:
        raise LaunchError(f"${name} must be >= {low}; got {value}")
    return value


def context_from_env(device: str | torch.device = "cpu", environ: Mapping[str, str] | None = None,
                     cuda_devices: int | None = None) -> Context:
    """The :class:`Context` ``torchrun``'s variables describe, with this process's device; nothing is started.

    Without ``WORLD_SIZE`` (or with ``WORLD_SIZE=1``) it is one process on ``device`` as given. With several
    processes, ``device`` ``"cpu"`` trains on the CPU over gloo, and ``"cuda"`` on ``cuda:LOCAL_RANK`` over
    nccl, one GPU per process.

    Args:
        device: the ``--device`` of the run.
        environ: the variables to read (default ``os.environ``).
        cuda_devices: the machine's CUDA devices (default ``torch.cuda.device_count()``).

    Raises:
        LaunchError: inconsistent variables, a device with an index (``cuda:1``) or of another type than
            cpu/cuda with several processes, or fewer GPUs on this machine than processes.
    """
    environ = os.environ if environ is None else environ
    world_size = _int_env(environ, "WORLD_SIZE", 1, low=1)
    rank = _int_env(environ, "RANK", 0)
    local_rank = _int_env(environ, "LOCAL_RANK", rank if world_size > 1 else 0)
    local_world_size = _int_env(environ, "LOCAL_WORLD_SIZE", world_size, low=1)
    if rank >= world_size or local_rank >= local_world_size:
        raise LaunchError(f"$RANK {rank} / $LOCAL_RANK {local_rank} must be below $WORLD_SIZE {world_size} / "
                          f"$LOCAL_WORLD_SIZE {local_world_size} (launch with torchrun, which sets them)")
    wanted = torch.device(device)
    if world_size == 1:
        return Context(device=wanted)
    if wanted.type == "cpu":
        return Context(rank, world_size, local_rank, local_world_size, torch.device("cpu"), "gloo")
    if wanted.type != "cuda":
        raise LaunchError(f"--device {device}: data-parallel training runs on cpu (gloo) or cuda (nccl)")
    if wanted.index is not None:
        raise LaunchError(f"--device {device} names one GPU; with {world_size} processes pass --device cuda: "
                          f"each process trains on cuda:LOCAL_RANK")
    count = torch.cuda.device_count() if cuda_devices is None else cuda_devices
    if local_world_size > count:
        raise LaunchError(f"--device cuda: {local_world_size} processes on this machine but {count} CUDA "
                          f"device(s); launch at most {count} per machine (torchrun --nproc-per-node {count})")
    return Context(rank, world_size, local_rank, local_world_size, torch.device("cuda", local_rank), "nccl")


def timeout_from_env(environ: Mapping[str, str] | None = None) -> datetime.timedelta:
    """The process group's timeout: ``$GLIMPSE_DIST_TIMEOUT`` seconds (a positive number), else the default."""
    raw = (os.environ if environ is None else environ).get(TIMEOUT_ENV, "")
    try:
        seconds = float(raw) if raw else DEFAULT_TIMEOUT_S
    except ValueError:
        seconds = math.nan
    if not math.isfinite(seconds) or seconds <= 0:
        raise LaunchError(f"${TIMEOUT_ENV} must be a positive number of seconds; got {raw!r}")
    return datetime.timedelta(seconds=seconds)


def init_from_env(device: str | torch.device = "cpu") -> Context:
    """Join the run ``torchrun`` launched (see :func:`context_from_env`) and return this process's place.

    With several processes: selects this process's GPU, starts the default process group (``env://``,
    with :func:`timeout_from_env`'s timeout) and turns ``SIGTERM`` into :class:`PeerFailure`. With one
    process nothing is started and every collective of this module does nothing. :func:`current` returns
    the context from now on; :func:`shutdown` ends it.
    """
    global _current, _previous_sigterm, _stopping, _joined
    ctx = context_from_env(device)
    if ctx.is_distributed:
        timeout = timeout_from_env()
        if ctx.device.type == "cuda":
            torch.cuda.set_device(ctx.device)
        if not dist.is_initialized():
            try:
                dist.init_process_group(ctx.backend, timeout=timeout)
            except RuntimeError as error:  # the others never came (a failed rank, a wrong address)
                raise PeerFailure(f"cannot join the other processes: {_first_line(error)}") from None
            _joined = True
        _stopping = False
        _previous_sigterm = signal.signal(signal.SIGTERM, _on_sigterm)
    _current = ctx
    return ctx


def current() -> Context:
    """This process's :class:`Context`: the one :func:`init_from_env` made, else one process (rank 0 of 1)
    as the launch's variables describe it (rank and world size only: no collective communicates)."""
    if _current is not None:
        return _current
    try:
        launched = context_from_env("cpu")
    except LaunchError:
        return Context()
    return Context(launched.rank, launched.world_size, launched.local_rank, launched.local_world_size)


def is_active() -> bool:
    """Whether the collectives of this module communicate: :func:`init_from_env` joined several processes."""
    return _current is not None and _current.is_distributed and dist.is_initialized()


def shutdown(failed: bool = False) -> None:
    """End the process group (if this module started one) and forget the context; safe to call twice.

    ``failed=True``, for a process about to exit on an error: ``SIGTERM`` is ignored from now on (the
    launcher's, while the error is being reported) and the group is left to the process's exit (ending
    it could wait on a collective a dead peer never finishes)."""
    global _current, _previous_sigterm
    if _current is not None and _current.is_distributed:
        if failed:
            signal.signal(signal.SIGTERM, signal.SIG_IGN)
        elif _previous_sigterm is not None:
            signal.signal(signal.SIGTERM, _previous_sigterm)
        _previous_sigterm = None
        if not failed and dist.is_initialized():
            dist.destroy_process_group()
    _current = None


def joined() -> bool:
    """Whether this process started a process group (:func:`init_from_env` with several processes), even
    one :func:`shutdown` has ended since: such a process ends by :func:`exit_process`."""
    return _joined


def exit_process(status: int) -> NoReturn:
    """End a process that :func:`joined` a process group with exit status ``status``, skipping the
    interpreter's teardown: stdout and stderr are flushed, then ``os._exit``. The backend's C++ objects
    destroyed during that teardown can abort a finished process (gloo on CPU: exit -6, "terminate called
    without an active exception", in 1 of 30 repeated two-process runs on the 2-core VM), and a run has
    nothing left to write by then: its files are written atomically and closed, its TensorBoard writer
    flushed at every checkpoint. Other processes exit by ``SystemExit``."""
    if not _joined:
        raise SystemExit(status)
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    os._exit(status)


def _on_sigterm(signum: int, frame: Any) -> None:
    """torchrun ends every process with SIGTERM when one fails: stop with a line, not silently (once)."""
    global _stopping
    if _stopping:
        return
    _stopping = True
    raise PeerFailure("ended by SIGTERM (torchrun ends every process when one of them fails)")


def _first_line(error: BaseException) -> str:
    """The gist of a backend's message: its first sentence, without gloo's source location."""
    text = str(error).strip()
    line = re.sub(r"^\[[^\]]*\]\s*", "", text.splitlines()[0]) if text else type(error).__name__
    return line.split(". ")[0].rstrip(".")[:300]


def _collective(what: str, call: Callable[[], T]) -> T:
    """``call()``, a collective; a failure of it (a peer gone, a timeout) is a :class:`PeerFailure`."""
    try:
        return call()
    except RuntimeError as error:
        raise PeerFailure(f"another process of the run stopped or cannot be reached ({what}: "
                          f"{_first_line(error)}); its own message says why") from None


def seed_sampling(seed: int) -> None:
    """Give each rank its own stream of torch's random numbers (a hard agent's sampled actions): rank 0
    keeps the stream it has (so one process under torchrun is a plain run), rank ``r > 0`` reseeds with
    ``seed + r``. Call after building the model, whose initial weights every rank draws from ``seed``."""
    ctx = current()
    if ctx.rank > 0:
        torch.manual_seed(seed + ctx.rank)


# ------------------------------------------------------------------------------------------------
# Keeping the ranks' models identical
# ------------------------------------------------------------------------------------------------


def _parameters(model: nn.Module | Iterable[nn.Parameter]) -> list[nn.Parameter]:
    params = list(model.parameters()) if isinstance(model, nn.Module) else list(model)
    return [p for p in params if p.requires_grad]


def average_gradients(model: nn.Module | Iterable[nn.Parameter]) -> None:
    """Replace every gradient by its mean over the ranks: what ``DistributedDataParallel`` does, after
    ``backward()``, in one flattened ``all_reduce`` per dtype (one in all for a float32 model).

    A parameter whose ``.grad`` is None on this rank (a loss that did not reach it in this rank's share)
    counts as a zero gradient here; one whose ``.grad`` is None on every rank keeps None, so the optimizer
    leaves it alone exactly as it would in one process. With one process it does nothing.

    Raises:
        ValueError: a sparse gradient.
        PeerFailure: another rank stopped or cannot be reached.
    """
    if not is_active():
        return
    params = _parameters(model)
    if not params:
        return
    for p in params:
        if p.grad is not None and p.grad.is_sparse:
            raise ValueError("average_gradients takes dense gradients; got a sparse one (nn.Embedding(sparse=True))")
    device = params[0].device
    # Which parameters have a gradient on any rank travels in the float32 buffer: one collective in all.
    has_grad = torch.tensor([p.grad is not None for p in params], dtype=torch.float32, device=device)
    groups: dict[torch.dtype, list[int]] = {}
    for i, p in enumerate(params):
        groups.setdefault(p.dtype, []).append(i)
    groups.setdefault(torch.float32, [])
    world = float(_current.world_size)
    for dtype, members in groups.items():
        parts = [params[i].grad.reshape(-1) if params[i].grad is not None
                 else torch.zeros(params[i].numel(), dtype=dtype, device=device) for i in members]
        if dtype == torch.float32:
            parts.append(has_grad)
        flat = torch.cat(parts) if parts else has_grad
        _collective("averaging gradients", lambda: dist.all_reduce(flat, op=dist.ReduceOp.SUM))
        if dtype == torch.float32:
            has_grad = flat[flat.numel() - len(params):]
        flat[:flat.numel() - (len(params) if dtype == torch.float32 else 0)].div_(world)
        offset = 0
        for i in members:
            p = params[i]
            piece = flat[offset:offset + p.numel()].view_as(p)
            offset += p.numel()
            if p.grad is not None:
                p.grad.copy_(piece)
            else:
                p.grad = piece.clone()  # set back to None below where no rank had one
    for p, anywhere in zip(params, has_grad.tolist()):
        if not anywhere:
            p.grad = None


def broadcast_parameters(model: nn.Module) -> None:
    """Copy rank 0's parameters and buffers to every rank (one flattened broadcast per dtype), so that
    the ranks start identical whatever their initialisation did. With one process it does nothing."""
    if not is_active():
        return
    tensors = [t for t in (*model.parameters(), *model.buffers())]
    groups: dict[torch.dtype, list[Tensor]] = {}
    for t in tensors:
        groups.setdefault(t.dtype, []).append(t)
    with torch.no_grad():
        for members in groups.values():
            flat = torch.cat([t.reshape(-1) for t in members])
            _collective("sharing the initial weights", lambda: dist.broadcast(flat, src=0))
            offset = 0
            for t in members:
                t.copy_(flat[offset:offset + t.numel()].view_as(t))
                offset += t.numel()


# ------------------------------------------------------------------------------------------------
# Sums, objects and agreement
# ------------------------------------------------------------------------------------------------


def all_reduce_sum(tensor: Tensor) -> Tensor:
    """``tensor`` summed over the ranks, in place (and returned); unchanged with one process."""
    if is_active():
        _collective("summing", lambda: dist.all_reduce(tensor, op=dist.ReduceOp.SUM))
    return tensor


def all_reduce_mean(tensor: Tensor) -> Tensor:
    """``tensor`` averaged over the ranks, in place (and returned); unchanged with one process."""
    if is_active():
        all_reduce_sum(tensor).div_(_current.world_size)
    return tensor


def all_gather_object(obj: Any) -> list[Any]:
    """Every rank's ``obj`` (picklable), in rank order, on every rank; ``[obj]`` with one process."""
    if not is_active():
        return [obj]
    gathered: list[Any] = [None] * _current.world_size
    _collective("gathering", lambda: dist.all_gather_object(gathered, obj))
    return gathered


def broadcast_object(obj: Any) -> Any:
    """Rank 0's ``obj`` (picklable) on every rank (the others pass anything, e.g. None)."""
    if not is_active():
        return obj
    box = [obj]
    _collective("receiving from rank 0", lambda: dist.broadcast_object_list(box, src=0))
    return box[0]


def gather_rows(state: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """Every rank's ``state`` (tensors with one row per local batch row, e.g. ``env.state_dict()``)
    concatenated in rank order, on every rank: the state of the whole global batch, in the layout one
    process would have (:meth:`Context.take_rows` takes a rank's rows back)."""
    states = all_gather_object({name: value.cpu() for name, value in state.items()})
    return {name: torch.cat([s[name] for s in states]) for name in state}


def raised_everywhere(error: BaseException) -> BaseException:
    """Mark ``error`` as raised identically on every rank (so only rank 0 reports it); returns it."""
    error.raised_everywhere = True  # type: ignore[attr-defined]
    return error


def is_raised_everywhere(error: BaseException | None) -> bool:
    """Whether ``error``, or an error it was raised from (``__cause__``), is marked by
    :func:`raised_everywhere` or is a :class:`PeerFailure` (whose cause another rank reports)."""
    while error is not None:
        if getattr(error, "raised_everywhere", False) or isinstance(error, PeerFailure):
            return True
        error = error.__cause__
    return False


def run_on_main(fn: Callable[[], T], errors: tuple[type[BaseException], ...]) -> T:
    """``fn()`` on rank 0 only (what touches the run folder), its result broadcast to every rank. An
    exception of ``errors`` there is raised on every rank (marked :func:`raised_everywhere`); any other
    ends rank 0, and the others with a :class:`PeerFailure`."""
    if not is_active():
        return fn()
    outcome: tuple[bool, Any] | None = None
    if _current.is_main:
        try:
            outcome = (True, fn())
        except errors as error:
            outcome = (False, error)
    ok, value = broadcast_object(outcome)
    if not ok:
        raise raised_everywhere(value)
    return value


def run_everywhere(fn: Callable[[], T], errors: tuple[type[BaseException], ...]) -> T:
    """``fn()`` on every rank (it must not communicate), then agree: if it raised an exception of
    ``errors`` on any rank, every rank raises the lowest such rank's (its message prefixed ``rank r:``
    when ``r > 0``, marked :func:`raised_everywhere`), so that rank 0 reports a failure that happened
    on one machine only (data missing there)."""
    if not is_active():
        return fn()
    try:
        result, failure = fn(), None
    except errors as error:
        result, failure = None, error
    failures = all_gather_object(None if failure is None else (type(failure), str(failure)))
    for rank, found in enumerate(failures):
        if found is not None:
            error_type, message = found
            raise raised_everywhere(error_type(message if rank == 0 else f"rank {rank}: {message}"))
    return result
