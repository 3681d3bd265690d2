"""What every script of ``scripts/`` runs inside: the two errors that end a run, with their exit statuses
(:class:`ConfigError`: 2, :class:`TrainingStopped`: 1), :func:`run_script`, which turns them (and Ctrl-C)
into one line on stderr and that status, also under ``torchrun``, :func:`in_flag_words`, an env's refusal
in the command line's words, :func:`output_folder`, a folder a script writes into, and :class:`NullWriter`, the
TensorBoard writer of the ranks that write nothing."""

from __future__ import annotations

import sys
import traceback
from collections.abc import Callable, Mapping
from pathlib import Path

from agents import distributed
from glimpse.checks import ArgumentError

__all__ = ["ConfigError", "TrainingStopped", "run_script", "in_flag_words", "output_folder", "NullWriter"]


class ConfigError(ValueError):
    """A configuration that cannot run (a value out of range, an agent that does not apply to a task, a
    missing, busy or damaged run folder, ...); the scripts print its message as one line and exit with
    status 2 (:func:`run_script`)."""


class TrainingStopped(RuntimeError):
    """Training cannot go on (a non-finite loss, gradient or parameter); the scripts print its message as
    one line and exit with status 1. The run folder keeps its last good checkpoint and gets no results."""


def output_folder(path: str | Path, flag: str) -> Path:
    """``path`` as a folder to write into, made (with its parents) if missing; a :class:`ConfigError` naming
    ``flag`` if it cannot be (a file there, a read-only place)."""
    path = Path(path)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise ConfigError(f"{flag} {path}: cannot make the folder there ({error.strerror or error})") from None
    return path


def in_flag_words(error: Exception, flags: Mapping[str, str]) -> str:
    """``error``'s message with the argument it refused named by its flag, ``flags[keyword]`` (``{"data_dir":
    "--data-dir"}``: ``data_dir='x' holds no ...`` becomes ``--data-dir 'x' holds no ...``), where it is a
    :class:`glimpse.checks.ArgumentError` about one of those keywords; otherwise the message as it is."""
    if isinstance(error, ArgumentError) and error.name in flags:
        return error.worded(flags[error.name], " ")
    return str(error)


def run_script(main: Callable[[], None], interrupted_note: str = "") -> None:
    """Run a script's ``main``: a :class:`ConfigError` is one line on stderr and exit status 2 (as for a
    bad command line), a :class:`TrainingStopped` one line and status 1; never a traceback for either.
    Ctrl-C (``KeyboardInterrupt``) is one line, ``interrupted: <interrupted_note>``, and status 130.

    Under ``torchrun`` (:mod:`agents.distributed`) every process exits with that status, and the line is
    printed once: a bad value or launch (:class:`agents.distributed.LaunchError`) found before the
    processes meet, the same on every process of a machine, by the first process of each machine; after
    they meet, by rank 0 what every rank raised alike (a run folder's problem, a diverged update: the ranks
    agree on those) or another rank's failure (:class:`agents.distributed.PeerFailure`), and by the rank
    it happened on, prefixed ``rank r:``, a failure of that rank alone. The process group is ended on the
    way out, and such a process exits by :func:`agents.distributed.exit_process`."""
    status = 0
    try:
        main()
    except (ConfigError, distributed.LaunchError) as error:
        _report("error", error)
        status = 2
    except (TrainingStopped, distributed.PeerFailure) as error:
        _report("stopped", error)
        status = 1
    except KeyboardInterrupt:
        distributed.shutdown(failed=True)
        print(f"interrupted{f': {interrupted_note}' if interrupted_note else ''}", file=sys.stderr)
        status = 130  # the shell's status for Ctrl-C
    except BaseException as error:
        distributed.shutdown(failed=True)
        if not distributed.joined() or isinstance(error, SystemExit):
            raise
        traceback.print_exc()  # a bug: its traceback, then the exit below
        status = 1
    else:
        distributed.shutdown()
    if distributed.joined():
        distributed.exit_process(status)  # without the interpreter's teardown (see there)
    if status:
        raise SystemExit(status) from None


def _report(label: str, error: BaseException) -> None:
    """Print ``label: error`` where :func:`run_script` says it belongs."""
    ctx, met = distributed.current(), distributed.is_active()
    distributed.shutdown(failed=True)  # the launcher's SIGTERM must not cut the line short
    if isinstance(error, (ConfigError, distributed.LaunchError)):
        show, prefix = ctx.is_main if met else ctx.local_rank == 0, ""
    elif distributed.is_raised_everywhere(error):
        show, prefix = ctx.is_main, ""
    else:
        show, prefix = True, f"rank {ctx.rank}: " if ctx.is_distributed else ""
    if show:
        print(f"{label}: {prefix}{error}", file=sys.stderr)


class NullWriter:
    """A ``SummaryWriter`` that writes nothing (every method does nothing): the ranks other than 0 of a
    data-parallel run, where rank 0 alone writes the run's TensorBoard events."""

    def __getattr__(self, name: str) -> Callable[..., None]:
        return lambda *args, **kwargs: None

    def __enter__(self) -> NullWriter:  # as SummaryWriter: ``with writer:`` closes it on the way out
        return self

    def __exit__(self, *exc: object) -> None:
        return None
