"""A third-party dataset plugin (tests/dataset_plugin/, the README's "Datasets" example),
installed by entry point: its splits are checked and listed by rf-data, a pseudo-split names
each task's own split, its options reach it through bin/iterate.sh --dataset-option and are
recorded, and both help texts list it among the installed datasets."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from pathlib import Path

import orjson

from rf_core.report.history import _config, _plugins_line
from conftest import install_plugin

ROOT = Path(__file__).resolve().parents[1]
PLUGIN_SRC = Path(__file__).resolve().parent / "dataset_plugin"
BIN = Path(sys.executable).parent


def install(site: Path) -> dict:
    return install_plugin(site, PLUGIN_SRC, "reasonforge_mydb", "mydb")


def data_root(folder: Path) -> Path:
    folder.mkdir()
    conn = sqlite3.connect(folder / "my.sqlite")
    conn.executescript("CREATE TABLE pet (name TEXT, age INTEGER);"
                       "INSERT INTO pet VALUES ('Rex', 3), ('Tom', 5);")
    conn.commit()
    conn.close()
    rows = [{"question": "How many pets?", "sql": "SELECT count(*) FROM pet", "split": "train"},
            {"question": "Oldest pet?", "sql": "SELECT name FROM pet ORDER BY age DESC LIMIT 1",
             "split": "dev"},
            {"question": "Pet names?", "sql": "SELECT name FROM pet", "split": "train"}]
    (folder / "q.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return folder


def rf(env, *args, input=None):
    return subprocess.run(list(args), env=env, input=input, capture_output=True, timeout=120)


def test_splits_checked_listed_and_named(tmp_path):
    env = install(tmp_path / "site")
    root = data_root(tmp_path / "data")
    common = ["rf-data", "mydb", "--root", str(root), "-o", "questions", "q.jsonl"]
    every = rf(env, *common, "--split", "all")
    assert every.returncode == 0, every.stderr
    tasks = [orjson.loads(line) for line in every.stdout.splitlines()]
    assert [(t["id"], t["split"]) for t in tasks] == [("mydb/0", "train"), ("mydb/1", "dev"),
                                                      ("mydb/2", "train")]
    assert tasks[1]["hardness"] == "medium" and "CREATE TABLE pet" in tasks[1]["schema"]
    dev = rf(env, *common, "--split", "dev")
    assert [orjson.loads(line) for line in dev.stdout.splitlines()] == [tasks[1]]
    bad = rf(env, *common, "--split", "test")
    assert bad.returncode == 2 and bad.stdout == b""
    assert b"dataset 'mydb' has no split 'test'; its splits: train, dev, all" in bad.stderr
    help_text = rf(env, "rf-data", "--help").stdout.decode()
    assert "Installed datasets" in help_text
    assert "mydb" in help_text and "splits: train, dev, all" in help_text
    listing = json.loads(rf(env, "rf-plugins").stdout)
    assert listing["splits"]["mydb"] == ["train", "dev", "all"]
    assert rf(env, "rf-plugins", "--names", "datasets").stdout == b"demo\nmydb\nspider\n"


def test_demo_all_names_each_tasks_own_split():
    from conftest import run

    every = run("rf-data", ["demo", "--split", "all", "--values", "0"]).records
    dev = run("rf-data", ["demo", "--split", "dev", "--values", "0"]).records
    assert {t["split"] for t in every} == {"train", "dev"}
    assert [t for t in every if t["split"] == "dev"] == dev


def test_dataset_options_through_the_loop(tmp_path):
    env = install(tmp_path / "site")
    root = data_root(tmp_path / "data")
    loop = ["bash", str(ROOT / "bin" / "iterate.sh")]
    help_text = rf(env, *loop, "--help").stdout.decode()
    assert "dataset plugin (installed: demo, mydb, spider)" in help_text
    assert "--dataset-option NAME=VALUE" in help_text
    args = [*loop, "--model", "m", "--dataset", "mydb", "--root", str(root),
            "--dataset-option", "questions=q.jsonl", "--out", str(tmp_path / "run")]
    dry = rf(env, *args, "--dry-run")
    assert dry.returncode == 0, dry.stderr
    data = [line for line in dry.stdout.decode().splitlines() if line.startswith("rf-data ")]
    assert len(data) == 3 and all("--option questions=q.jsonl" in line for line in data)
    bad = rf(env, *args, "--dataset-option", "questions", "--dry-run")
    assert bad.returncode == 2 and b"--dataset-option takes NAME=VALUE" in bad.stderr
    # recorded: config.env, and from it history.json's config and the report's plugins line
    run_dir = tmp_path / "recorded"
    run_dir.mkdir()
    (run_dir / "config.env").write_text("DATASET=mydb\nDATASET_OPTIONS=questions=q.jsonl\n"
                                        "SAMPLER=hf\n")
    cfg = _config(run_dir)
    assert cfg["dataset_options"] == {"questions": "q.jsonl"}
    assert _plugins_line(cfg) == "dataset mydb (questions=q.jsonl), sampler hf"
