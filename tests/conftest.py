"""Shared fixtures: invoking commands, a small database, record validation, Spider's location;
the tiny model comes from rf_core.testing, as a plugin author's tests get it."""

from __future__ import annotations

import hashlib
import importlib.util
import os
import sqlite3
import sys
from pathlib import Path

# No test reaches a model hub: set before anything imports huggingface_hub, which reads it
# once (a hub id then fails at once instead of after five retries per file), and inherited by
# every command the tests start.
os.environ["HF_HUB_OFFLINE"] = "1"
# One math thread per process (unless the caller chose): the tests' models are tiny, and
# OpenMP threads that wait for each other on a loaded 2-core machine made the torch tests
# 1.7-3x slower than one thread (tests/test_train.py, measured side by side). Not where vLLM
# is installed (the vLLM CPU suite): its engine binds threads of its own.
if importlib.util.find_spec("vllm") is None:
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    os.environ.setdefault("MKL_NUM_THREADS", "1")

import orjson  # noqa: E402
import pytest  # noqa: E402
from click.testing import CliRunner  # noqa: E402

from rf_core.commands import data, doctor, eval as eval_cmd, exec as exec_cmd  # noqa: E402
from rf_core.commands import filter as filter_cmd  # noqa: E402
from rf_core.commands import inject, plugins as plugins_cmd, sample, train, vote  # noqa: E402
from rf_core.commands import revise  # noqa: E402
from rf_core.records.validation import schema_dir  # noqa: E402

# the fixtures shipped for plugin authors: tiny_model, fake_sampler
pytest_plugins = ["rf_core.testing"]

ROOT = Path(__file__).resolve().parents[1]
SCHEMAS = schema_dir()

COMMANDS = {
    "rf-data": data.cli,
    "rf-exec": exec_cmd.cli,
    "rf-vote": vote.cli,
    "rf-filter": filter_cmd.cli,
    "rf-inject": inject.cli,
    "rf-eval": eval_cmd.cli,
    "rf-plugins": plugins_cmd.cli,
    "rf-sample": sample.cli,
    "rf-revise": revise.cli,
    "rf-train": train.cli,
    "rf-doctor": doctor.cli,
}
READERS = ["rf-exec", "rf-vote", "rf-filter", "rf-inject", "rf-eval"]


def spider_root() -> Path:
    return Path(os.environ.get("RF_SPIDER_ROOT") or ROOT.parent / "shared" / "spider")


@pytest.fixture
def spider():
    root = spider_root()
    if not (root / "dev.json").is_file():
        pytest.skip(f"Spider 1.0 not found at {root}; set RF_SPIDER_ROOT to run this test")
    return root


class Run:
    def __init__(self, result):
        self.result = result
        self.code = result.exit_code
        self.stdout = result.stdout_bytes
        self.stderr = result.stderr

    @property
    def records(self) -> list[dict]:
        return [orjson.loads(line) for line in self.stdout.splitlines() if line.strip()]


def run(cmd: str, args=(), input: bytes | str | list | None = None, env=None) -> Run:
    """Invoke a command in-process with stdout and stderr kept apart."""
    if isinstance(input, list):
        input = b"".join(orjson.dumps(r) + b"\n" for r in input)
    result = CliRunner().invoke(COMMANDS[cmd], list(args), input=input, env=env,
                                catch_exceptions=False)
    return Run(result)


def install_plugin(site: Path, src: Path, module: str, name: str) -> dict:
    """Install a plugin the way pip leaves it: ``src`` (the folder holding ``module``) on the
    path and, in ``site``, a .dist-info registering ``name``; returns the environment (no RF_
    variables, this venv's commands first on PATH) whose processes see it."""
    dist = module.replace("_", "-")
    info = site / f"{module}-0.1.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(f"[reasonforge]\n{name} = {module}\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("RF_")}
    env["PYTHONPATH"] = os.pathsep.join([str(site), str(src), env.get("PYTHONPATH", "")])
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}"
    return env


def jsonl(records: list[dict]) -> bytes:
    return b"".join(orjson.dumps(r) + b"\n" for r in records)


@pytest.fixture(scope="session")
def validators():
    import json

    import jsonschema

    out = {}
    for kind in ("task", "example", "report", "train_report"):
        schema = json.loads((SCHEMAS / f"{kind}.schema.json").read_text())
        jsonschema.Draft202012Validator.check_schema(schema)
        out[kind] = jsonschema.Draft202012Validator(schema)
    return out


@pytest.fixture
def validate(validators):
    def check(records):
        for rec in records if isinstance(records, list) else [records]:
            errors = sorted(validators[rec["kind"]].iter_errors(rec), key=str)
            assert not errors, f"{rec.get('kind')} record invalid: {errors[0].message}"
    return check


@pytest.fixture
def shop_db(tmp_path) -> str:
    """A small database: products, customers, orders."""
    path = tmp_path / "shop.sqlite"
    conn = sqlite3.connect(path)
    conn.executescript("""
        CREATE TABLE product (id INTEGER PRIMARY KEY, name TEXT, price REAL, category TEXT);
        CREATE TABLE customer (id INTEGER PRIMARY KEY, name TEXT, city TEXT);
        CREATE TABLE orders (id INTEGER PRIMARY KEY, customer_id INTEGER REFERENCES customer(id),
                             product_id INTEGER REFERENCES product(id), qty INTEGER);
        INSERT INTO product VALUES (1,'Apple',0.5,'fruit'),(2,'Pear',0.75,'fruit'),
            (3,'Bread',2.0,'bakery'),(4,'Cake',12.5,'bakery'),(5,'Milk',1.0,NULL);
        INSERT INTO customer VALUES (1,'Ada','Paris'),(2,'Bob','Lyon'),(3,'Cy','Paris');
        INSERT INTO orders VALUES (1,1,1,3),(2,1,3,1),(3,2,4,2),(4,3,1,10),(5,3,5,1);
        CREATE TABLE big (n INTEGER);
        WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r WHERE n < 2000)
            INSERT INTO big SELECT n FROM r;
    """)
    conn.commit()
    conn.close()
    return str(path)


def make_task(db_path: str, gold: str | None, cands: list[str | None] | None = None,
              id: str = "t/0", **extra) -> dict:
    task = {"schema_version": 1, "kind": "task", "id": id, "dataset": "test", "split": "dev",
            "db_id": "shop", "db_path": db_path, "question": "q?", "gold_sql": gold,
            "hardness": "easy", "schema": "CREATE TABLE product (...);"}
    if cands is not None:
        task["candidates"] = [{"sql": c} for c in cands]
    task.update(extra)
    return task


def random_adapter(model_dir: str, folder: Path) -> Path:
    """A LoRA adapter with random (not zero) weights on every linear layer of the model in
    ``model_dir``, saved in ``folder``: it changes what the model samples."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    base = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
    torch.manual_seed(0)
    peft_model = get_peft_model(base, LoraConfig(r=4, lora_alpha=64, target_modules="all-linear",
                                                 init_lora_weights=False))
    peft_model.save_pretrained(folder)
    return Path(folder)


def snapshot(folder: Path) -> dict:
    """Each file under ``folder``: its modification time and sha256 (to show nothing wrote it)."""
    return {str(p.relative_to(folder)): (p.stat().st_mtime_ns,
                                         hashlib.sha256(p.read_bytes()).hexdigest())
            for p in sorted(Path(folder).rglob("*")) if p.is_file()}
