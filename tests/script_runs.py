"""Run a script of ``scripts/`` as ``python scripts/<name> args`` does: in this process (:func:`in_process`, the
fast tier: no 4-5 s of ``import torch`` per run) or in a subprocess (:func:`in_subprocess`, the end-to-end
tier, for what only a process shows: its exit as the shell sees it, signals, a clean stderr, torchrun).

Both return a :class:`subprocess.CompletedProcess`: the exit status (in process: ``SystemExit``'s code, 1 and
the traceback for an uncaught exception, as the interpreter does), stdout and stderr, so a test asserts the
same things whichever tier runs it.
"""

from __future__ import annotations

import contextlib
import io
import os
import runpy
import signal
import subprocess
import sys
import traceback
import warnings
from pathlib import Path

import torch

from agents import run_folder, training
from envs.data.testing import reset_for_tests

SCRIPTS = Path(__file__).resolve().parents[1] / "scripts"


def in_subprocess(name: str, *args: str, env: dict | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
    """``python scripts/<name> args`` in a subprocess with ``env`` (default: this process's)."""
    return subprocess.run([sys.executable, str(SCRIPTS / name), *args], env=env, capture_output=True, text=True,
                          timeout=timeout)


def in_process(name: str, *args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    """``python scripts/<name> args`` run in this process with ``env`` as its environment (default: this
    process's; its ``PYTHONPATH`` entries are importable during the run, ``PYTHONWARNINGS=ignore`` is
    honoured, other warnings are printed to its stderr as the interpreter prints them).

    What a run changes in this process is put back afterwards: the environment, ``sys.argv``, ``sys.path``,
    the modules imported from ``PYTHONPATH``, torch's thread count and random stream, the run folder's lock
    (held "for the life of the process"); the data package's caches and announcements are emptied first,
    so that the run loads and announces its data as a fresh process does."""
    path = SCRIPTS / name
    saved_env, saved_argv, saved_path = dict(os.environ), list(sys.argv), list(sys.path)
    saved_modules, threads, rng = set(sys.modules), torch.get_num_threads(), torch.get_rng_state()
    out, err = io.StringIO(), io.StringIO()

    def show(message, category, filename, lineno, file=None, line=None):
        err.write(warnings.formatwarning(message, category, filename, lineno, line))

    status, extra = 0, []
    try:
        if env is not None:
            os.environ.clear()
            os.environ.update(env)
        extra = [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p and p not in sys.path]
        sys.path[:0] = [str(SCRIPTS), *extra]  # a script's own folder comes first, as for `python scripts/x.py`
        sys.argv = [str(path), *args]
        reset_for_tests()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err), warnings.catch_warnings():
            warnings.resetwarnings()
            warnings.simplefilter("ignore" if os.environ.get("PYTHONWARNINGS") == "ignore" else "default")
            warnings.showwarning = show
            try:
                runpy.run_path(str(path), run_name="__main__")
            except SystemExit as exit_:
                status = _exit_status(exit_.code, err)
            except Killed:
                status = -signal.SIGKILL  # what subprocess reports for a killed process
            except Exception:  # noqa: BLE001  (the interpreter's way: the traceback, status 1)
                err.write(traceback.format_exc())
                status = 1
    finally:
        if "--run-dir" in args:
            training.release_run_dir(Path(args[args.index("--run-dir") + 1]))
        os.environ.clear()
        os.environ.update(saved_env)
        sys.argv, sys.path[:] = saved_argv, saved_path
        for module in set(sys.modules) - saved_modules:
            if any(str(getattr(sys.modules[module], "__file__", "") or "").startswith(p) for p in extra):
                del sys.modules[module]
        torch.set_num_threads(threads)
        torch.set_rng_state(rng)
    return subprocess.CompletedProcess([sys.executable, str(path), *args], status, out.getvalue(), err.getvalue())


class InProcessPopen:
    """``subprocess.Popen`` for the ``[python, scripts/<name>, args...]`` commands of
    :func:`agents.sweep.run_parallel` (put in place of ``agents.sweep.subprocess``): the script runs in this
    process (:func:`in_process`) at once, its output written to ``stdout``; ``poll`` gives its exit status."""

    STDOUT = subprocess.STDOUT

    @classmethod
    def Popen(cls, command: list[str], stdout, stderr=None) -> InProcessPopen:  # noqa: N802  (subprocess's name)
        return cls(command, stdout)

    def __init__(self, command: list[str], stdout) -> None:
        assert command[0] == sys.executable and Path(command[1]).parent == SCRIPTS, command
        done = in_process(Path(command[1]).name, *command[2:])
        stdout.write(done.stdout + done.stderr)
        self.returncode = done.returncode

    def poll(self) -> int:
        return self.returncode

    def terminate(self) -> None:
        """Nothing runs on: the run ended inside the constructor."""


class Killed(BaseException):
    """The process dies here: a SIGKILL simulated in this process (nothing after it runs; the run folder's
    lock goes, as the kernel drops a dead process's ``flock``)."""


@contextlib.contextmanager
def killed_after_checkpoint(count: int = 1):
    """Within it, an :func:`in_process` ``train.py`` is killed right after writing its ``count``-th checkpoint
    (``run_folder.save_checkpoint``, where the script imports it from): exit status ``-SIGKILL``."""
    save, saved = run_folder.save_checkpoint, []

    def save_then_die(path, payload):
        save(path, payload)
        saved.append(path)
        if len(saved) == count:
            raise Killed

    run_folder.save_checkpoint = save_then_die
    try:
        yield
    finally:
        run_folder.save_checkpoint = save


def _exit_status(code: object, err: io.StringIO) -> int:
    """The status the interpreter exits with for ``SystemExit(code)`` (a message: printed, status 1)."""
    if code is None:
        return 0
    if isinstance(code, int):
        return code
    err.write(f"{code}\n")
    return 1
