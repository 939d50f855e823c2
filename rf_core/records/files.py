"""Files and folders that appear whole or not at all: write beside the target, then rename."""

from __future__ import annotations

import contextlib
import os
import re
import shutil
from pathlib import Path
from typing import Iterator

# write_atomic's temporary names: ".NAME.PID.tmp"
_TEMP = re.compile(r"^\.(?P<name>.+)\.(?P<pid>[0-9]+)\.tmp$")


def _remove(path: Path) -> None:
    if path.is_symlink() or path.is_file():
        path.unlink()
    elif path.is_dir():
        shutil.rmtree(path)


def _running(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # another user's process: it exists
        return True
    except OverflowError:  # not a process id: not ours to remove
        return True
    return True


def remove_stale_temps(folder: str | os.PathLike, name: str | None = None) -> list[Path]:
    """Remove the temporary files and folders that ``write_atomic`` (of ``name``, or of any
    target) left in ``folder`` when its process was killed: those whose process id is no
    longer running. A killed conversion's ``.hf.PID.tmp`` holds a whole model. Returns what
    was removed. (A reused id keeps its leftover until that process ends; a folder shared
    by several machines would need the host in the name.)"""
    removed = []
    try:
        entries = list(Path(folder).iterdir())
    except OSError:
        return removed
    for path in entries:
        m = _TEMP.match(path.name)
        if m and (name is None or m["name"] == name) and not _running(int(m["pid"])):
            with contextlib.suppress(OSError):
                _remove(path)
                removed.append(path)
    return removed


@contextlib.contextmanager
def write_atomic(target: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``target`` (a file, folder or link goes there); when the
    block ends without an exception it replaces ``target``, otherwise it is removed.

    The temporary name carries the process id, so two writers never share one; those that
    killed writers of ``target`` left are removed first.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temps(target.parent, target.name)
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    _remove(tmp)
    try:
        yield tmp
        if tmp.is_dir() and not tmp.is_symlink() and target.is_dir() and not target.is_symlink():
            shutil.rmtree(target)  # os.replace cannot replace a non-empty folder
        os.replace(tmp, target)
    finally:
        if tmp.exists() or tmp.is_symlink():
            _remove(tmp)


def replace_dir(source: str | os.PathLike, target: str | os.PathLike) -> None:
    """Move the finished folder ``source`` to ``target``, replacing what is there."""
    source, target = Path(source), Path(target)
    if target.is_dir() and not target.is_symlink():
        shutil.rmtree(target)
    os.replace(source, target)
