"""Files and folders that appear whole or not at all: write beside the target, then rename."""

from __future__ import annotations

import contextlib
import os
import shutil
from pathlib import Path
from typing import Iterator


def _remove(path: Path) -> None:
    if path.is_symlink() or path.is_file():
        path.unlink()
    elif path.is_dir():
        shutil.rmtree(path)


@contextlib.contextmanager
def write_atomic(target: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``target`` (a file, folder or link goes there); when the
    block ends without an exception it replaces ``target``, otherwise it is removed.

    The temporary name carries the process id, so two writers never share one.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
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
