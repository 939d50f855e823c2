"""A third party's dataset on the items interface (examples/reasonforge-pairs/): one's own
SQLite database and a CSV or JSONL file of question and SQL pairs. Installed by entry point
and run as `rf-data pairs ... | rf-sample --sampler replay | rf-exec`: every gold query runs
and every gold answer is correct, ids are stable across runs, splits and bad pairs, and bad
pairs are counted in one line, never a crash. Also in-process through rf_core.testing."""

from __future__ import annotations

import json
import sqlite3
import subprocess
from pathlib import Path

import orjson
import pytest

from conftest import install_plugin
from rf_core.testing import registered, run_command, validate_records

SRC = Path(__file__).resolve().parents[1] / "examples" / "reasonforge-pairs"

PAIRS = [
    {"question": "How many pets?", "sql": "SELECT count(*) FROM pet"},
    {"question": "Oldest pet?", "sql": "SELECT name FROM pet ORDER BY age DESC LIMIT 1",
     "split": "train"},
    {"question": "Names of cats?", "sql": "SELECT name FROM pet WHERE kind = 'cat'"},
    {"question": "Average age by kind?", "sql": "SELECT kind, avg(age) FROM pet GROUP BY kind"},
]


def folder(tmp_path: Path) -> Path:
    """A tiny database and the same pairs as CSV and as JSONL."""
    root = tmp_path / "mine"
    root.mkdir()
    conn = sqlite3.connect(root / "pets.sqlite")
    conn.executescript("CREATE TABLE pet (name TEXT, kind TEXT, age INTEGER);"
                       "INSERT INTO pet VALUES ('Rex', 'dog', 3), ('Tom', 'cat', 5),"
                       " ('Kit', 'cat', 1);")
    conn.commit()
    conn.close()
    (root / "pairs.jsonl").write_text("".join(json.dumps(p) + "\n" for p in PAIRS))
    lines = ["question,sql,split"] + [
        f'"{p["question"]}","{p["sql"]}",{p.get("split", "")}' for p in PAIRS]
    (root / "pairs.csv").write_text("\n".join(lines) + "\n")
    return root


def sh(env: dict, args: list[str], input: bytes | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(args, env=env, input=input, capture_output=True, timeout=120)


def data_args(root: Path, pairs: str, *more: str) -> list[str]:
    return ["rf-data", "pairs", "--root", str(root), "-o", "database", "pets.sqlite",
            "-o", "pairs", pairs, *more]


@pytest.fixture
def env(tmp_path):
    return install_plugin(tmp_path / "site", SRC, "reasonforge_pairs", "pairs")


@pytest.mark.parametrize("pairs", ["pairs.csv", "pairs.jsonl"])
def test_end_to_end_gold_runs_and_is_correct(env, tmp_path, pairs):
    root = folder(tmp_path)
    data = sh(env, data_args(root, pairs, "--split", "all"))
    assert data.returncode == 0, data.stderr
    tasks = validate_records(data.stdout, "task")
    assert [(t["id"], t["split"]) for t in tasks] == [
        ("pairs/0", "dev"), ("pairs/1", "train"), ("pairs/2", "dev"), ("pairs/3", "dev")]
    assert all(t["db_id"] == "pets" and Path(t["db_path"]).is_absolute() for t in tasks)
    assert tasks[0]["hardness"] == "easy" and "CREATE TABLE pet" in tasks[0]["schema"]
    sampled = sh(env, ["rf-sample", "--sampler", "replay", "-m", "gold", "-k", "2",
                       "-o", "field", "gold_sql"], input=data.stdout)
    assert sampled.returncode == 0, sampled.stderr
    executed = sh(env, ["rf-exec"], input=sampled.stdout)
    assert executed.returncode == 0, executed.stderr
    out = validate_records(executed.stdout, "task", require=("gold_exec", "verified_by"))
    assert [t["id"] for t in out] == [t["id"] for t in tasks]
    assert all(t["gold_exec"]["ok"] for t in out)
    assert all(c["correct"] is True for t in out for c in t["candidates"])


def test_ids_are_stable_and_bad_pairs_are_counted(env, tmp_path):
    root = folder(tmp_path)
    every = sh(env, data_args(root, "pairs.jsonl", "--split", "all"))
    dev = sh(env, data_args(root, "pairs.jsonl", "--split", "dev"))
    again = sh(env, data_args(root, "pairs.jsonl", "--split", "dev"))
    assert dev.stdout == again.stdout
    dev_tasks = [orjson.loads(line) for line in dev.stdout.splitlines()]
    assert dev_tasks == [orjson.loads(line) for line in every.stdout.splitlines()
                         if orjson.loads(line)["split"] == "dev"]
    assert b"3 pairs dev task(s) written" in dev.stderr
    # bad pairs: not JSON, not an object, no question, SQL that is not text
    bad = ['{"question": "broken', '[1, 2]', '{"sql": "SELECT 1"}',
           '{"question": "q", "sql": ["SELECT 1"]}']
    text = (root / "pairs.jsonl").read_text().splitlines()
    (root / "pairs.jsonl").write_text("\n".join(text[:1] + bad + text[1:]) + "\n")
    mixed = sh(env, data_args(root, "pairs.jsonl", "--split", "dev"))
    assert mixed.returncode == 0, mixed.stderr
    assert b"skipped 4 of 7 dev item(s) that are not questions (item 1 is not valid JSON)" \
        in mixed.stderr
    ids = [orjson.loads(line)["id"] for line in mixed.stdout.splitlines()]
    assert ids == ["pairs/0", "pairs/6", "pairs/7"]  # each pair keeps its place in the file


def test_what_cannot_be_read_is_one_line(env, tmp_path):
    root = folder(tmp_path)
    (root / "headless.csv").write_text("How many pets?,SELECT count(*) FROM pet\n")
    headless = sh(env, data_args(root, "headless.csv"))
    assert headless.returncode == 1 and headless.stdout == b""
    assert b"needs the header row question,sql" in headless.stderr
    assert b"Traceback" not in headless.stderr
    absent = sh(env, data_args(root, "absent.jsonl"))
    assert absent.returncode == 1 and b"cannot read the pairs" in absent.stderr
    no_db = sh(env, ["rf-data", "pairs", "--root", str(root), "-o", "database", "gone.sqlite",
                     "-o", "pairs", "pairs.csv"])
    assert no_db.returncode == 0 and no_db.stdout == b""
    assert b"skipped 3 dev task(s): database 'gone' is missing" in no_db.stderr
    unnamed = sh(env, ["rf-data", "pairs", "--root", str(root)])
    assert unnamed.returncode == 2
    assert b"needs -o database FILE and -o pairs FILE" in unnamed.stderr
    listing = json.loads(sh(env, ["rf-plugins"]).stdout)
    assert listing["splits"]["pairs"] == ["train", "dev", "all"]
    assert [o["name"] for o in listing["options"]["datasets"]["pairs"]] == ["database", "pairs"]


def test_in_process_with_rf_core_testing(tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(SRC))
    import reasonforge_pairs

    root = folder(tmp_path)
    with registered(reasonforge_pairs):
        result = run_command("rf-data", ["pairs", "--root", str(root), "-o", "database",
                                         "pets.sqlite", "-o", "pairs", "pairs.csv",
                                         "--limit", "2", "--seed", "1", "--values", "0"])
    assert result.exit_code == 0, result.stderr
    tasks = validate_records(result.stdout, "task")
    assert len(tasks) == 2 and {t["split"] for t in tasks} == {"dev"}
    assert all("-- e.g." not in t["schema"] for t in tasks)
