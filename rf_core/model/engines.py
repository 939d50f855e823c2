"""Engine folders: a sampling engine that outlives one rf-sample call keeps its state in a
folder, so that any process (the next rf-sample, ``rf-model stop``, the loop's driver) can find
and end it.

The convention: ``FOLDER/engine.pid`` holds the pid of a process that leads its own process
group and has FOLDER on its command line (so a reused pid is never taken for the engine);
the engine may keep more files there (``engine.json``, ``engine.sock``), which ``stop_engine``
removes.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

from rf_core.errors import RFError

STATE_FILES = ("engine.pid", "engine.json", "engine.sock")


def engine_alive(pid: int, folder: Path) -> bool:
    """Whether ``pid`` is still the engine started in ``folder`` (and not a reused pid)."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    return str(folder).encode() in cmdline


def _wait_gone(group: int, seconds: float) -> bool:
    """Wait until no process of ``group`` is left; its leader is reaped if it is our child."""
    deadline = time.monotonic() + seconds
    while True:
        try:
            os.waitpid(group, os.WNOHANG)
        except ChildProcessError:
            pass
        try:
            os.killpg(group, 0)
        except ProcessLookupError:
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.1)


def stop_engine(folder: str | Path, grace: float = 60.0) -> int | None:
    """End the engine in ``folder`` (SIGTERM to its process group, SIGKILL after ``grace``
    seconds) and wait until all its processes are gone, so its memory is free. Returns its
    pid, or None when no engine was running there; RFError when it would not stop."""
    folder = Path(folder).resolve()
    try:
        pid = int((folder / "engine.pid").read_text())
    except (OSError, ValueError):
        return None
    if not engine_alive(pid, folder):
        (folder / "engine.pid").unlink(missing_ok=True)
        return None
    for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 10.0)):
        try:
            os.killpg(pid, sig)
        except ProcessLookupError:
            break
        if _wait_gone(pid, wait):
            break
    else:
        raise RFError(f"the engine in {folder} (pid {pid}) did not stop")
    for name in STATE_FILES:
        (folder / name).unlink(missing_ok=True)
    return pid
