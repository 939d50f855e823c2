"""The user's cache folder: models, demo databases and database variants live under it."""

from __future__ import annotations

import os
from pathlib import Path


def cache_dir() -> Path:
    """``$RF_CACHE_DIR``, else ``$XDG_CACHE_HOME/reasonforge``, else ``~/.cache/reasonforge``."""
    base = os.environ.get("RF_CACHE_DIR") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "reasonforge")
    return Path(base)
