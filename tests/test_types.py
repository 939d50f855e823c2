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


def test_the_type_checking_block_mirrors_the_lazy_names():
    """Every lazily loaded name of rf_core.api is imported, from the same module and under the
    same name, in its ``if TYPE_CHECKING:`` block, and nothing else is."""
    import ast

    from rf_core import api

    tree = ast.parse((ROOT / "rf_core" / "api.py").read_text(encoding="utf-8"))
    mirrored = {}
    for node in tree.body:
        if isinstance(node, ast.If) and getattr(node.test, "id", None) == "TYPE_CHECKING":
            for stmt in node.body:
                assert isinstance(stmt, ast.ImportFrom), ast.unparse(stmt)
                for alias in stmt.names:
                    mirrored[alias.asname or alias.name] = (stmt.module, alias.name)
    lazy = {name: (module, api._RENAMED.get(name, name)) for name, module in api._LAZY.items()}
    assert mirrored == lazy
