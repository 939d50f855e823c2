"""A third-party matcher plugin (examples/reasonforge-rounded), as its author would use it:
tested in-process with rf_core.testing, installed by its entry point, listed by rf-plugins and
chosen with ``rf-exec --matcher``; and rf-exec's checks of the matcher name."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from rf_core.exec.matching import get_matcher, registered_matchers
from rf_core.testing import registered, run_command, validate_records
from conftest import install_plugin, make_task

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "reasonforge-rounded"
BUILTINS = ["official", "official-keep-distinct", "lenient"]
# a third of a unit, computed two ways: equal to 4 places, not to the last bit
GOLD = "SELECT 1.0 / 3"
CANDIDATES = ["SELECT 0.33333333", "SELECT 0.3334", "SELECT 1.0 / 3"]


@pytest.fixture
def rounded(monkeypatch):
    """The example's module, imported from its source folder as a test would while
    developing it."""
    monkeypatch.syspath_prepend(str(EXAMPLE))
    import reasonforge_rounded

    return reasonforge_rounded


def test_the_matcher_alone(rounded):
    m = rounded.ROUNDED
    assert m.name == "rounded" and "rounded to 4" in m.description
    assert m.match([(1 / 3, "a")], [("a", 0.33333333)], False)
    assert not m.match([(1 / 3,)], [(0.3334,)], False)
    assert m.match([(1,), (2,)], [(2.0,), (1.0,)], False)
    assert not m.match([(1,), (2,)], [(2.0,), (1.0,)], True)
    assert m.rewrite("SELECT DISTINCT a", "gold") == "SELECT DISTINCT a"  # run as written


def test_registered_in_process_and_chosen_by_rf_exec(rounded, shop_db):
    task = make_task(shop_db, GOLD, CANDIDATES)
    with registered(rounded):
        assert list(registered_matchers()) == [*BUILTINS, "rounded"]
        assert get_matcher("rounded") is rounded.ROUNDED
        result = run_command("rf-exec", ["--matcher", "rounded"], input=[task])
    assert result.exit_code == 0, result.stderr
    (out,) = validate_records(result.stdout, "task", require=("verified_by",))
    assert out["verified_by"] == {"verifier": "sqlite", "matcher": "rounded"}
    assert [c["correct"] for c in out["candidates"]] == [True, False, True]
    assert [c["verdicts"] for c in out["candidates"]] == [
        {"official": False, "official-keep-distinct": False, "lenient": False, "rounded": True},
        {"official": False, "official-keep-distinct": False, "lenient": False,
         "rounded": False},
        {"official": True, "official-keep-distinct": True, "lenient": True, "rounded": True}]
    assert "matcher rounded" in result.stderr
    with registered(rounded):  # the other matchers still set `correct` when chosen
        official = run_command("rf-exec", [], input=[task])
    assert [c["correct"] for c in official.records[0]["candidates"]] == [False, False, True]


def test_an_unknown_matcher_is_a_usage_error_naming_the_installed_ones(shop_db):
    result = run_command("rf-exec", ["--matcher", "rounded"],
                         input=[make_task(shop_db, GOLD, CANDIDATES)])
    assert result.exit_code == 2 and result.stdout == b""
    assert ("unknown matcher 'rounded'; installed: lenient, official, official-keep-distinct"
            in result.stderr)


def test_help_lists_the_builtins_and_says_plugins_add_more():
    text = " ".join(run_command("rf-exec", ["--help"]).stdout.decode().split())
    for name in BUILTINS:
        assert f"{name}:" in text
    assert "Plugins may register more" in text


def test_installed_by_its_entry_point(tmp_path, shop_db):
    env = install_plugin(tmp_path / "site", EXAMPLE, "reasonforge_rounded", "rounded")
    listed = subprocess.run(["rf-plugins"], env=env, capture_output=True, text=True,
                            timeout=60)
    assert listed.returncode == 0, listed.stderr
    data = json.loads(listed.stdout)
    assert "rounded" in data["matchers"] and set(BUILTINS) <= set(data["matchers"])
    entry = next(p for p in data["plugins"] if p["name"] == "rounded")
    assert entry["distribution"] == "reasonforge-rounded" and not entry["builtin"]
    assert entry["registers"] == {"matchers": ["rounded"]}
    assert entry["hooks"] == ["register_matchers"]
    names = subprocess.run(["rf-plugins", "--names", "matchers"], env=env,
                           capture_output=True, text=True, timeout=60)
    assert names.stdout.split() == sorted([*BUILTINS, "rounded"])
    proc = subprocess.run(["rf-exec", "--matcher", "rounded"], env=env, capture_output=True,
                          input=json.dumps(make_task(shop_db, GOLD, CANDIDATES)).encode(),
                          timeout=60)
    assert proc.returncode == 0, proc.stderr
    out = validate_records(proc.stdout, "task")[0]
    assert [c["correct"] for c in out["candidates"]] == [True, False, True]
    assert out["verified_by"]["matcher"] == "rounded"
