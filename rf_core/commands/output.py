"""A command's stdout: guarded writes that fail with one line, and stdout as bytes.

A write that fails (other than a closed pipe, which ends the command quietly) ends it with
``Error: rf-x: cannot write output: REASON``, exit 1.
"""

from __future__ import annotations

import contextlib
import os
import stat
import sys
from typing import BinaryIO, Iterator

from rf_core.errors import RFError


def quiet_stdout() -> None:
    """After EPIPE, point stdout at /dev/null so the interpreter's final flush stays quiet."""
    try:
        fd = sys.stdout.fileno()
    except (AttributeError, OSError, ValueError):
        return
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, fd)


def binary_stdout() -> BinaryIO:
    """stdout as bytes, also under click's CliRunner."""
    return getattr(sys.stdout, "buffer", sys.stdout)


class OutputError(RFError):
    """stdout could not be written: a full disk, a file-size limit, an I/O error."""


class Output:
    """Guards writes to stdout: one that fails (other than a closed pipe, which ends the
    command quietly) ends it with one line, ``Error: rf-x: cannot write output: REASON``,
    exit 1. Where stdout is a regular file it is first cut back to where the failed write
    began, so it ends at a complete line (a record, or a line of rf-plugins' document)."""

    def __init__(self) -> None:
        self.stream = binary_stdout()
        self._fd = None
        try:
            fd = self.stream.fileno()
            if stat.S_ISREG(os.fstat(fd).st_mode):
                self._fd = fd
        except (AttributeError, OSError, ValueError):  # CliRunner's stdout has no descriptor
            pass

    def _start(self) -> int | None:
        if self._fd is None:
            return None
        import fcntl

        self.stream.flush()
        if fcntl.fcntl(self._fd, fcntl.F_GETFL) & os.O_APPEND:
            return os.fstat(self._fd).st_size  # the offset of a fresh >> file says 0
        return os.lseek(self._fd, 0, os.SEEK_CUR)

    def _cut_back(self, start: int | None) -> None:
        if start is None:
            return
        try:
            if os.fstat(self._fd).st_size > start:
                os.ftruncate(self._fd, start)
            os.lseek(self._fd, start, os.SEEK_SET)  # for a next command writing the same file
        except OSError:
            pass

    @contextlib.contextmanager
    def guarded(self) -> Iterator[None]:
        """Writes inside it that fail become OutputError (a closed pipe stays BrokenPipeError,
        which ``guard`` turns into a quiet exit 0)."""
        start = None
        try:
            start = self._start()
            yield
        except BrokenPipeError:
            raise
        except OSError as exc:
            self._cut_back(start)
            quiet_stdout()  # what stays buffered must not fail again at exit
            raise OutputError(f"cannot write output: {exc.strerror or exc}") from None

    def write(self, data: bytes) -> None:
        """Write and flush ``data`` (one or more whole lines)."""
        with self.guarded():
            view = memoryview(data)
            while view:  # unbuffered (PYTHONUNBUFFERED), a write may take part of it
                n = self.stream.write(view)
                view = view[len(view) if n is None else n:]
            self.stream.flush()


def write_output(data: bytes | str) -> None:
    """Write whole lines to stdout, once (rf-plugins, rf-model): see ``Output``."""
    Output().write(os.fsencode(data) if isinstance(data, str) else data)
