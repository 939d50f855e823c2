"""A third party's sampler engine (examples/reasonforge-command): tested with rf_core.testing
in-process, and installed by its entry point and run end to end with rf-sample."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import orjson
import pytest

from conftest import install_plugin, make_task
from rf_core.api import sample_seed
from rf_core.testing import registered, run_command, validate_records

SRC = Path(__file__).resolve().parents[1] / "examples" / "reasonforge-command"
ANSWER = """import json, sys
query = json.load(sys.stdin)
question = query["messages"][-1]["content"].count("?")
print(f"```sql\\nSELECT {query['seed'] % 1000} AS seed, {question} AS q\\n```")
"""


@pytest.fixture
def command(tmp_path) -> str:
    script = tmp_path / "answer.py"
    script.write_text(ANSWER)
    return f"{sys.executable} {script}"


@pytest.fixture
def engine(monkeypatch):
    monkeypatch.syspath_prepend(str(SRC))
    from reasonforge_command import CommandSampler

    return CommandSampler()


def tasks(db: str) -> list[dict]:
    return [make_task(db, "SELECT 1", None, id=f"c/{i}", question=f"Question {i}?")
            for i in range(3)]


def test_candidates_come_from_the_command_with_their_own_seeds(engine, command, shop_db):
    with registered(engine):
        r = run_command("rf-sample", ["--sampler", "command", "-m", "mine", "-k", "2",
                                      "-t", "0.7", "--seed", "3", "-o", "command", command],
                        input=tasks(shop_db))
    assert r.exit_code == 0, r.stderr
    out = validate_records(r.stdout, "task", require=("messages", "candidates"))
    for i, task in enumerate(out):
        seeds = [sample_seed(3, i, j) for j in range(2)]
        assert [c["seed"] for c in task["candidates"]] == seeds
        assert [c["sql"] for c in task["candidates"]] == [
            f"SELECT {s % 1000} AS seed, 1 AS q" for s in seeds]
        assert {c["sampler"] for c in task["candidates"]} == {"command"}
        assert {c["model"] for c in task["candidates"]} == {"mine"}
    assert "3 task(s), 6 candidate(s)" in r.stderr  # the core's rate line


def test_a_missing_or_failing_command_is_one_line(engine, shop_db):
    with registered(engine):
        r = run_command("rf-sample", ["--sampler", "command", "-m", "x"], input=tasks(shop_db))
        assert r.exit_code == 1 and "needs -o command CMD" in r.stderr
        r = run_command("rf-sample", ["--sampler", "command", "-m", "x", "-o", "command",
                                      f"{sys.executable} -c 'import sys; sys.exit(3)'"],
                        input=tasks(shop_db))
        assert r.exit_code == 1 and "exited 3" in r.stderr


def test_installed_by_its_entry_point(tmp_path, command, shop_db):
    env = install_plugin(tmp_path / "site", SRC, "reasonforge_command", "command")
    listed = json.loads(subprocess.run(["rf-plugins"], env=env, capture_output=True,
                                       text=True, timeout=60, check=True).stdout)
    assert "command" in listed["samplers"]
    assert {o["name"] for o in listed["options"]["samplers"]["command"]} == {"command",
                                                                              "timeout"}
    lines = b"".join(orjson.dumps(t) + b"\n" for t in tasks(shop_db))
    proc = subprocess.run(["rf-sample", "--sampler", "command", "-m", "mine", "-o", "command",
                           command], input=lines, env=env, capture_output=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    out = [orjson.loads(line) for line in proc.stdout.splitlines()]
    assert [t["candidates"][0]["sql"] for t in out] == [
        f"SELECT {sample_seed(0, i, 0) % 1000} AS seed, 1 AS q" for i in range(3)]
