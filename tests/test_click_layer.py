"""click belongs to the command layer: rf_core/commands/ (and rf_core.testing's CliRunner).
Library code raises rf_core.errors.UsageError, which the commands turn into click's."""

import ast
from pathlib import Path

import pytest

from rf_core.errors import UsageError
from rf_core.plugins.options import Option, resolve

ROOT = Path(__file__).resolve().parents[1]
ALLOWED = {ROOT / "rf_core" / "testing.py"}


def _imports_click(path: Path) -> bool:
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            names = [node.module or ""]
        else:
            continue
        if any(name == "click" or name.startswith("click.") for name in names):
            return True
    return False


def test_only_the_command_layer_imports_click():
    commands = ROOT / "rf_core" / "commands"
    found = [str(p.relative_to(ROOT)) for p in sorted((ROOT / "rf_core").rglob("*.py"))
             if commands not in p.parents and p not in ALLOWED and _imports_click(p)]
    assert found == []


class _Plugin:
    options = (Option("n", int, 1, "A count.", minimum=1),)


@pytest.mark.parametrize("given, message", [
    ([("m", "2")], "sampler 'p' has no option 'm'; its options: n"),
    ([("n", "0")], "option 'n' of sampler 'p': 0 is below the minimum 1"),
])
def test_a_bad_plugin_option_is_a_usage_error_of_rf_core(given, message):
    with pytest.raises(UsageError, match="^" + message + "$"):
        resolve(_Plugin(), given, kind="sampler", name="p")
    assert resolve(_Plugin(), [("n", "3")], kind="sampler", name="p") == {"n": 3}
