"""The layering the README's Architecture section draws, checked on the import statements.

Every ``import`` and ``from ... import`` is counted, at module top or inside a function, and
``rf_core.api``'s lazily loaded names count as imports of the modules they live in.
"""

from __future__ import annotations

import ast
import itertools
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

# rf_core's library packages, each allowed to import only the ones after it (and rf_core.errors).
# rf_core.plugins sits above exec and model: matchers are looked up in its registry, and its
# auto sampler runs engines through rf_core.model.sampling.
LIBRARY = ("rf_core.report", "rf_core.revise", "rf_core.train", "rf_core.data", "rf_core.exec",
           "rf_core.plugins", "rf_core.model", "rf_core.records")


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path: Path) -> set[str]:
    """Every absolute module name ``path`` imports (``from a import b`` counts ``a`` and, for a
    package, ``a.b``)."""
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            if node.module in ("rf_core", "rf_plugins"):
                found.update(f"{node.module}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level:
            raise AssertionError(f"{path}: a relative import; the project writes absolute ones")
    if path == ROOT / "rf_core" / "api.py":
        found.update(_lazy_modules(tree))
    return found


def _lazy_modules(tree: ast.Module) -> set[str]:
    for node in tree.body:
        target = node.targets[0] if isinstance(node, ast.Assign) else getattr(node, "target", None)
        if isinstance(target, ast.Name) and target.id == "_LAZY":
            return {value.value for value in node.value.values}  # type: ignore[union-attr]
    raise AssertionError("rf_core/api.py has no _LAZY table")


def package_of(module: str) -> str:
    """``rf_core.exec.pool`` -> ``rf_core.exec``; ``rf_core.api`` stays; others: top level."""
    parts = module.split(".")
    if parts[0] == "rf_core" and len(parts) > 1:
        return f"rf_core.{parts[1]}"
    return parts[0]


def files(*folders: str) -> list[Path]:
    return sorted(itertools.chain.from_iterable((ROOT / f).rglob("*.py") for f in folders))


def plugin_files() -> list[Path]:
    """The built-in plugins and the example plugins' own code (not their tests or builds)."""
    examples = [p for p in files("examples")
                if not {"tests", "build"} & set(p.relative_to(ROOT).parts)]
    return files("rf_plugins") + examples


@pytest.mark.parametrize("path", plugin_files(), ids=lambda p: str(p.relative_to(ROOT)))
def test_plugins_import_only_the_api_of_rf_core(path):
    bad = sorted(m for m in imports_of(path)
                 if m.split(".")[0] == "rf_core" and m not in ("rf_core", "rf_core.api"))
    assert not bad, f"{path.relative_to(ROOT)} imports {bad}; plugins use rf_core.api only"


def test_click_stays_in_the_command_layer():
    allowed = {"rf_core.commands", "rf_core.testing"}
    bad = [str(p.relative_to(ROOT)) for p in files("rf_core", "rf_plugins")
           if package_of(_module_name(p)) not in allowed
           and any(m.split(".")[0] == "click" for m in imports_of(p))]
    assert not bad, f"click imported below the commands: {bad}"


def library_edges() -> dict[str, set[str]]:
    """Library package -> the rf_core packages and rf_plugins it imports."""
    edges: dict[str, set[str]] = {pkg: set() for pkg in LIBRARY}
    for path in files("rf_core"):
        source = package_of(_module_name(path))
        if source in edges:
            edges[source].update(package_of(m) for m in imports_of(path)
                                 if m.split(".")[0] in ("rf_core", "rf_plugins"))
    return edges


def test_each_library_package_uses_only_those_below_it():
    edges = library_edges()
    for i, pkg in enumerate(LIBRARY):
        below = set(LIBRARY[i:]) | {"rf_core.errors"}
        assert edges[pkg] <= below, (
            f"{pkg} imports {sorted(edges[pkg] - below)}, which are not below it "
            f"(top to bottom: {', '.join(LIBRARY)})")


def test_the_api_and_the_library_never_import_commands_or_plugins():
    for path in files("rf_core"):
        source = package_of(_module_name(path))
        if source in ("rf_core.commands", "rf_core.testing"):
            continue
        bad = {m for m in imports_of(path)
               if package_of(m) in ("rf_core.commands", "rf_plugins", "rf_core.testing")}
        assert not bad, f"{path.relative_to(ROOT)} imports {sorted(bad)}"


def test_no_function_is_longer_than_80_lines():
    """A page a newcomer can read: every function in rf_core and rf_plugins fits in 80 lines."""
    long = []
    for path in files("rf_core", "rf_plugins"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                lines = node.end_lineno - node.lineno + 1  # type: ignore[operator]
                if lines > 80:
                    long.append(f"{path.relative_to(ROOT)}: {node.name} ({lines} lines)")
    assert not long, "\n".join(long)
