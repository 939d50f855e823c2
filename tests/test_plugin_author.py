"""A third-party sampler plugin, end to end as its author would use it: installed, listed by
rf-plugins with its options, given options on the command line and through bin/iterate.sh,
and its settings recorded in the run's config.env and history.json."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import orjson

from conftest import install_plugin

ROOT = Path(__file__).resolve().parents[1]
PLUGIN_SRC = Path(__file__).resolve().parent / "sampler_plugin"
BIN = Path(sys.executable).parent


def install(site: Path) -> dict:
    return install_plugin(site, PLUGIN_SRC, "reasonforge_fixed", "fixed")


def test_listed_with_its_options(tmp_path):
    env = install(tmp_path / "site")
    proc = subprocess.run(["rf-plugins"], env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    entry = next(p for p in data["plugins"] if p["name"] == "fixed")
    assert entry["distribution"] == "reasonforge-fixed" and not entry["builtin"]
    options = {o["name"]: o for o in data["options"]["samplers"]["fixed"]}
    assert options["answer"] == {"name": "answer", "type": "str", "default": "gold",
                                 "help": options["answer"]["help"], "choices": ["gold", "table"]}
    assert options["table"]["default"] == "sqlite_master"
    help_text = subprocess.run(["rf-sample", "--sampler", "fixed", "--help"], env=env,
                               capture_output=True, text=True, timeout=60).stdout
    assert "Options of sampler 'fixed'" in help_text and "answer gold|table" in help_text


def test_options_from_the_command_line(tmp_path):
    env = install(tmp_path / "site")
    env["RF_CACHE_DIR"] = str(tmp_path / "cache")
    tasks = subprocess.run(["rf-data", "demo", "--split", "dev", "--limit", "2"], env=env,
                           capture_output=True, timeout=60, check=True).stdout
    proc = subprocess.run(["rf-sample", "--sampler", "fixed", "-m", "none", "-k", "2",
                           "-o", "answer", "table", "--option", "table=orders"],
                          input=tasks, env=env, capture_output=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    for task in map(orjson.loads, proc.stdout.splitlines()):
        assert [c["sql"] for c in task["candidates"]] == ["SELECT * FROM orders"] * 2
    bad = subprocess.run(["rf-sample", "--sampler", "fixed", "-m", "none", "-o", "answr", "x"],
                         input=tasks, env=env, capture_output=True, timeout=60)
    assert bad.returncode == 2
    assert b"sampler 'fixed' has no option 'answr'; its options: answer, table" in bad.stderr
    bad = subprocess.run(["rf-sample", "--sampler", "fixed", "-m", "none", "-o", "answer", "x"],
                         input=tasks, env=env, capture_output=True, timeout=60)
    assert bad.returncode == 2 and b"expected one of gold, table, got 'x'" in bad.stderr


def test_options_through_the_loop_are_recorded(tmp_path, tiny_model):
    env = install(tmp_path / "site")
    env["RF_CACHE_DIR"] = str(tmp_path / "cache")
    out = tmp_path / "run"
    proc = subprocess.run(
        ["bash", str(ROOT / "bin" / "iterate.sh"), "--model", tiny_model, "--out", str(out),
         "--dataset", "demo", "--iterations", "1", "-k", "2", "--train-size", "4",
         "--dev-size", "2", "--val-size", "0", "--no-sft-baseline", "--vote", "0",
         "--values", "0", "--epochs", "1", "--batch-size", "2", "--max-len", "4096",
         "--sampler", "fixed", "--sampler-option", "answer=table",
         "--sampler-option", "table=customers",
         "--trainer-option", "rank=4", "--trainer-option", "dropout=0"],
        env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    config = (out / "config.env").read_text().splitlines()
    assert "SAMPLER=fixed" in config
    assert "SAMPLER_OPTIONS=answer=table table=customers" in config
    assert "TRAINER_OPTIONS=rank=4 dropout=0" in config
    history = json.loads((out / "history.json").read_text())
    assert history["config"]["sampler"] == "fixed"
    assert history["config"]["sampler_options"] == {"answer": "table", "table": "customers"}
    assert history["config"]["trainer_options"] == {"rank": "4", "dropout": "0"}
    sampled = (out / "iter1" / "train.sampled.jsonl").read_bytes().splitlines()
    cands = [c for t in map(orjson.loads, sampled) for c in t["candidates"]]
    assert {(c["sampler"], c["sql"]) for c in cands} == {("fixed", "SELECT * FROM customers")}
    train_report = json.loads((out / "iter1" / "train.report.json").read_text())
    assert train_report["lora"]["r"] == 4 and train_report["lora"]["dropout"] == 0
    assert "sampler fixed (answer=table, table=customers)" in (out / "report.md").read_text()


REGISTER_AGAIN = r"""
import reasonforge_fixed
from rf_core.api import make_task
from rf_core.plugins import manager
from rf_core.testing import registered, run_command

manager.load_plugins()
assert manager.pm.get_plugin("fixed") is reasonforge_fixed, "not loaded by its entry point"
task = make_task(id="t/0", dataset="test", split="dev", db_id="x", db_path="x.sqlite",
                 question="q?", gold_sql="SELECT 1", schema="")
with registered(reasonforge_fixed):
    r = run_command("rf-sample", ["--sampler", "fixed", "-m", "none", "-k", "2"],
                    input=[task])
    assert r.exit_code == 0, r.stderr
    assert [c["sql"] for c in r.records[0]["candidates"]] == ["SELECT 1"] * 2
    assert manager.pm.get_plugin("fixed") is None  # the entry-point copy stood aside
assert manager.pm.get_plugin("fixed") is reasonforge_fixed  # and is back
assert manager.get("samplers", "fixed").name == "fixed"
print("ok")
"""


def test_registered_works_for_a_plugin_also_installed_by_entry_point(tmp_path):
    """The normal state while developing a plugin: installed (`pip install -e .`), then
    registered again by its own tests; no RF_LOAD_PLUGINS is needed."""
    env = install(tmp_path / "site")
    proc = subprocess.run([sys.executable, "-c", REGISTER_AGAIN], env=env,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.strip() == "ok" and "Traceback" not in proc.stderr
