"""How a command ends on SIGINT, SIGTERM and SIGHUP: cleanly, with the usual exit status.

The handlers raise ``Interrupted`` (a BaseException, so no ``except Exception`` in a plugin
swallows it) in the main thread; ``finally`` blocks then run, which is how worker processes
are stopped and temporary files removed. While a record is being written the signal is held
back until the record's last byte is out, so a reader never gets half a line. The exit status
is 128 + the signal's number (130 for Ctrl-C), as shells report a process a signal ended.
"""

from __future__ import annotations

import contextlib
import signal
import threading

HANDLED = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


class Interrupted(BaseException):
    """A signal asked the command to stop."""

    def __init__(self, signum: int):
        super().__init__(signum)
        self.signum = signum

    @property
    def name(self) -> str:
        return signal.Signals(self.signum).name

    @property
    def exit_code(self) -> int:
        return 128 + self.signum


_held = 0
_pending: int | None = None


def _handler(signum, frame):
    global _pending
    if _held:
        _pending = _pending or signum
        return
    raise Interrupted(signum)


@contextlib.contextmanager
def handled():
    """Install the handlers for the duration of a command (main thread only; elsewhere,
    as under some test runners, leave signals as they are)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {s: signal.getsignal(s) for s in HANDLED}
    for s in HANDLED:
        signal.signal(s, _handler)
    try:
        yield
    finally:
        for s, h in previous.items():
            signal.signal(s, h)


@contextlib.contextmanager
def held():
    """Hold signals back while the body runs (a record being written); act on them after."""
    global _held, _pending
    _held += 1
    try:
        yield
    finally:
        _held -= 1
        if not _held and _pending is not None:
            signum, _pending = _pending, None
            raise Interrupted(signum)


def reset_in_child() -> None:
    """In a worker process: default actions for termination, and Ctrl-C left to the parent
    (the terminal sends it to the whole process group; the parent stops the workers)."""
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.signal(signal.SIGHUP, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
