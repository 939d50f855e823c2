"""The plugin surface type-checks: mypy over rf_core.api, the built-in plugins and the example
plugins, with the project's settings (pyproject.toml's [tool.mypy]), as a plugin author's
IDE and type checker see them."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def checked_paths() -> list[str]:
    """rf_core/api.py, rf_plugins/ and each example plugin's package folder."""
    examples = sorted(str(p.parent.relative_to(ROOT))
                      for p in ROOT.glob("examples/*/*/__init__.py")
                      if "build" not in p.parts and not p.parent.name.endswith(".egg-info"))
    return ["rf_core/api.py", "rf_plugins", *examples]


def test_the_plugin_surface_type_checks(tmp_path):
    pytest.importorskip("mypy", reason="mypy is not installed (pip install 'reasonforge[test]')")
    run = subprocess.run([sys.executable, "-m", "mypy", "--cache-dir", str(tmp_path / "cache"),
                          "--no-error-summary", *checked_paths()],
                         cwd=ROOT, capture_output=True, text=True, stdin=subprocess.DEVNULL)
    assert run.returncode == 0, f"mypy found type errors:\n{run.stdout}{run.stderr}"
