"""Writing files that a crash, a full disk or a planted symbolic link cannot damage.

One helper serves every file the project writes in place of an older one (checkpoints, run configs,
results, downloads, pictures): :func:`atomic_file` (and :func:`atomic_write`) writes a fresh temporary file beside the target, flushes it to
disk, then renames it over the target. A reader sees the old file or the new one, never half of one; a
failed or interrupted write leaves the old file and no temporary file behind. The temporary file is
created exclusively (``O_EXCL``, by :func:`tempfile.mkstemp`), so a symbolic link planted at a
predictable temporary name cannot redirect the write, and ``rename`` replaces a link at the target itself
instead of writing through it. :func:`open_no_follow` opens a file that must not be a link (a run's lock).
"""

from __future__ import annotations

import contextlib
import os
import signal
import tempfile
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import BinaryIO

__all__ = ["atomic_file", "atomic_write", "write_text_atomic", "open_no_follow"]


@contextlib.contextmanager
def atomic_file(path: str | os.PathLike) -> Iterator[BinaryIO]:
    """``with atomic_file(path) as f:`` write ``f``, a new temporary file in ``path``'s folder; when the block
    ends it is flushed to disk (``fsync``) and renamed over ``path`` (the folder is synced too, so the
    rename survives a power cut). The file is readable by all (``0o644``), as a plainly made one would be.

    Any exception in the block, ``KeyboardInterrupt`` included, removes the temporary file and propagates;
    ``path`` keeps its old content. A Ctrl-C stays a ``KeyboardInterrupt`` even where a writer's own clean-up
    fails because of it (``torch.save`` interrupted mid-record raises a ``RuntimeError`` from its zip writer on
    the way out). ``path`` itself may be a symbolic link: the link is replaced, never followed.
    """
    path = Path(path)
    tmp = file = None
    try:
        with _ctrl_c_deferred():  # a Ctrl-C between creating the file and naming it here would leave it behind
            handle, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
            file = os.fdopen(handle, "wb")
        with file:
            os.fchmod(file.fileno(), 0o644)  # mkstemp makes 0600
            yield file
            file.flush()
            os.fsync(file.fileno())
        os.replace(tmp, path)
    except BaseException as error:
        if file is not None:
            file.close()
        if tmp is not None:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
        interrupt = _interrupt_behind(error)
        if interrupt is not None and interrupt is not error:
            raise interrupt from None
        raise
    _sync_folder(path.parent)


@contextlib.contextmanager
def _ctrl_c_deferred() -> Iterator[None]:
    """Hold a Ctrl-C (SIGINT with Python's default handler, in the main thread) until the block ends, then raise its
    ``KeyboardInterrupt``: the block runs whole or not at all. Elsewhere the block runs as it is."""
    if (threading.current_thread() is not threading.main_thread()
            or signal.getsignal(signal.SIGINT) is not signal.default_int_handler):
        yield
        return
    held: list[int] = []
    signal.signal(signal.SIGINT, lambda signum, frame: held.append(signum))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, signal.default_int_handler)
    if held:
        raise KeyboardInterrupt


def _interrupt_behind(error: BaseException) -> KeyboardInterrupt | None:
    """The ``KeyboardInterrupt`` that ``error`` is, or was raised while handling (its ``__context__`` chain)."""
    seen: set[int] = set()
    while error is not None and id(error) not in seen:
        if isinstance(error, KeyboardInterrupt):
            return error
        seen.add(id(error))
        error = error.__context__
    return None


def atomic_write(path: str | os.PathLike, write: Callable[[BinaryIO], None]) -> None:
    """:func:`atomic_file` filled by ``write(f)``.

    >>> import tempfile, pathlib
    >>> target = pathlib.Path(tempfile.mkdtemp()) / "numbers.txt"
    >>> atomic_write(target, lambda f: f.write(b"1 2 3\\n"))
    >>> target.read_text()
    '1 2 3\\n'
    """
    with atomic_file(path) as file:
        write(file)


def write_text_atomic(path: str | os.PathLike, text: str) -> None:
    """:func:`atomic_write` of ``text`` as UTF-8."""
    atomic_write(path, lambda file: file.write(text.encode("utf-8")))


def open_no_follow(path: str | os.PathLike, mode: int = os.O_RDWR | os.O_CREAT) -> int:
    """``os.open(path, mode)`` that refuses a symbolic link at ``path`` (``OSError`` with ``errno.ELOOP``)
    instead of opening the file it points to; the descriptor is not inherited by child processes."""
    return os.open(path, mode | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644)


def _sync_folder(folder: Path) -> None:
    """``fsync`` a folder so that a rename in it is on disk (not possible on every platform: then skipped)."""
    try:
        handle = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(handle)
    except OSError:
        pass
    finally:
        os.close(handle)
