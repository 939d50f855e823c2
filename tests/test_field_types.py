"""Every field of the record schemas, given a value of the wrong type, fed to every command
that reads that kind of record: a one-line error naming the line and the field (exit 1),
never a traceback; --skip-bad skips that line and goes on.

The cases are generated from schemas/ (independently of rf_core.records.validation, with jsonschema
deciding which values are wrong), so a field added to a schema is covered here at once.
"""

from __future__ import annotations

import copy
import json

import jsonschema
import pytest

from conftest import SCHEMAS, make_task, run

# Values of every JSON type; each field is tried with those its schema rejects (a scalar and
# a container at most, to keep the run short).
POOL = ["x", 5, 2.5, True, ["x"], {"x": 1}]


def _resolve(node: dict, root: dict) -> dict:
    while "$ref" in node:
        node = root["$defs"][node["$ref"].rsplit("/", 1)[1]]
    return node


def field_paths(schema: dict) -> list[tuple[tuple, dict]]:
    """(path, sub-schema) for every property, recursing into objects and array items (an
    array's items are addressed as index 0)."""
    out = []

    def walk(node, path):
        node = _resolve(node, schema)
        for name, sub in node.get("properties", {}).items():
            sub_r = _resolve(sub, schema)
            out.append(((*path, name), sub_r))
            walk(sub_r, (*path, name))
        if "items" in node:
            walk(node["items"], (*path, 0))
        extra = node.get("additionalProperties")
        if isinstance(extra, dict) and path:
            out.append(((*path, "official"), _resolve(extra, schema)))  # a key of the map

    walk(schema, ())
    return out


def wrong_values(sub: dict, root: dict) -> list:
    if "const" in sub:  # schema_version and kind: the bad-input suite covers them
        return []
    v = jsonschema.Draft202012Validator({**sub, "$defs": root.get("$defs", {})})
    bad = [x for x in POOL if not v.is_valid(x)]
    scalars = [x for x in bad if not isinstance(x, (list, dict))]
    containers = [x for x in bad if isinstance(x, (list, dict))]
    return scalars[:1] + containers[:1]


def dotted(path: tuple) -> str:
    text = ""
    for p in path:
        text += f"[{p}]" if isinstance(p, int) else (f".{p}" if text else p)
    return text


def put(rec: dict, path: tuple, value) -> dict:
    rec = copy.deepcopy(rec)
    node = rec
    for p in path[:-1]:
        node = node[p]
    node[path[-1]] = value
    return rec


EXEC = {"ok": True, "error": None, "n_rows": 1, "digest": "d", "ms": 0.1, "truncated": False,
        "timed_out": False}


def full_task(db: str) -> dict:
    """A valid task carrying every field the task schema names."""
    task = make_task(db, "SELECT 1", ["SELECT 1"])
    task["candidates"][0].update(
        text="```sql\nSELECT 1\n```", sampler="hf", model="m", adapter=None, temperature=0.7,
        seed=1, logprob=-1.0, n_tokens=4, finished=True, exec=dict(EXEC), correct=True,
        verdicts={"official": True, "official-keep-distinct": True, "lenient": True},
        variants={"used": 2, "passed": 2}, ext={},
        revision={"turns": [{"round": 1, "sql": "SELECT 2", "text": "t", "feedback": "f",
                             "correct": False,
                             "shown": {"ok": True, "error": None, "n_rows": 0}}],
                  "skipped": "too long"})
    task.update(messages=[{"role": "system", "content": "s"}, {"role": "user", "content": "u"}],
                gold_exec=dict(EXEC),
                verified_by={"verifier": "sqlite", "matcher": "official", "variants": 2},
                vote={"sql": "SELECT 1", "index": 0, "support": 1, "n_valid": 1,
                      "correct": True},
                shard={"index": 0, "of": 1, "run": "r"}, ext={})
    return task


def full_example() -> dict:
    return {"schema_version": 1, "kind": "example", "task_id": "t/0",
            "messages": [{"role": "system", "content": "s"}, {"role": "user", "content": "u"}],
            "completion": "```sql\nSELECT 1\n```", "source": "gold", "weight": 1, "ext": {}}


def cases(kind: str) -> list:
    schema = json.loads((SCHEMAS / f"{kind}.schema.json").read_text())
    out = []
    for path, sub in field_paths(schema):
        for value in wrong_values(sub, schema):
            out.append(pytest.param(path, value, id=f"{dotted(path)}={json.dumps(value)}"))
    return out


TASK_CASES = cases("task")
EXAMPLE_CASES = cases("example")
MODEL_FREE = ["rf-exec", "rf-vote", "rf-filter", "rf-inject", "rf-eval"]


def test_every_field_is_covered():
    paths = {c.values[0] for c in TASK_CASES}
    for p in [("gold_exec",), ("verified_by",), ("vote",), ("hardness",), ("gold_sql",),
              ("messages",), ("candidates", 0, "exec", "digest"), ("question",)]:
        assert p in paths, p
    assert len(TASK_CASES) >= 60


def check_rejected(cmd: str, args: list, good: dict, bad: dict, path: tuple):
    r = run(cmd, args, input=[bad])
    assert r.code == 1, (r.code, r.stderr)
    assert "Traceback" not in r.stderr
    last = r.stderr.strip().splitlines()[-1]
    # the field itself, or the part of it that is wrong (messages[0] in ["x"])
    assert last.startswith(f"Error: {cmd}: line 1: field {dotted(path)}"), r.stderr
    assert ": expected " in last or ": missing" in last, r.stderr
    skipped = run(cmd, [*args, "--skip-bad"], input=[bad, good])
    assert skipped.code == 0, skipped.stderr
    assert f"Warning: {cmd}: line 1: skipped: field {dotted(path)}" in skipped.stderr


@pytest.mark.parametrize("cmd", MODEL_FREE)
@pytest.mark.parametrize("path, value", TASK_CASES)
def test_wrong_type_in_a_task(cmd, path, value, shop_db):
    good = full_task(shop_db)
    check_rejected(cmd, [], good, put(good, path, value), path)


SAMPLE_READS = {("id",), ("question",), ("schema",), ("messages",), ("messages", 0, "role"),
                ("messages", 0, "content"), ("candidates",), ("db_id",)}


@pytest.mark.parametrize("path, value", [c for c in TASK_CASES if c.values[0] in SAMPLE_READS])
def test_wrong_type_in_a_task_for_rf_sample(path, value, shop_db, tiny_model):
    good = make_task(shop_db, "SELECT 1", None)
    bad = put(full_task(shop_db), path, value)
    check_rejected("rf-sample", ["--model", tiny_model, "--max-new-tokens", "2"], good, bad,
                   path)


@pytest.mark.parametrize("path, value", EXAMPLE_CASES)
def test_wrong_type_in_an_example_for_rf_train(path, value, tiny_model, tmp_path):
    args = ["--base", tiny_model, "--out", str(tmp_path / "a"), "--epochs", "1"]
    r = run("rf-train", args, input=[put(full_example(), path, value)])
    assert r.code == 1 and "Traceback" not in r.stderr, r.stderr
    assert r.stderr.strip().splitlines()[-1].startswith(
        f"Error: rf-train: line 1: field {dotted(path)}"), r.stderr
    assert not (tmp_path / "a").exists()


# The cases the hostile-record trial found, exactly as it fed them.
REPORTED = [
    ("rf-eval", '{"schema_version":1,"kind":"task","id":"t","gold_exec":"boom",'
                '"candidates":[{"sql":"SELECT 1","correct":false}]}', "gold_exec"),
    ("rf-eval", '{"schema_version":1,"kind":"task","id":"t","verified_by":"x",'
                '"candidates":[{"sql":"SELECT 1","correct":false}]}', "verified_by"),
    ("rf-eval", '{"schema_version":1,"kind":"task","id":"t","vote":"x",'
                '"candidates":[{"sql":"SELECT 1","correct":false}]}', "vote"),
    ("rf-eval", '{"schema_version":1,"kind":"task","id":"t","question":"q","hardness":["x"],'
                '"candidates":[{"sql":"SELECT 1","correct":false}]}', "hardness"),
    ("rf-inject", '{"schema_version":1,"kind":"task","id":"t","question":"q","gold_sql":5,'
                  '"candidates":[]}', "gold_sql"),
    ("rf-inject", '{"schema_version":1,"kind":"task","id":"t","gold_sql":"SELECT 1",'
                  '"candidates":[]}', "question"),
    ("rf-inject", '{"schema_version":1,"kind":"task","id":"t","question":"q","gold_sql":'
                  '"SELECT 1","gold_exec":[1],"candidates":[]}', "gold_exec"),
    ("rf-vote", '{"schema_version":1,"kind":"task","id":"t","question":"q","candidates":'
                '[{"sql":"SELECT 1","correct":true,"exec":{"ok":true,"digest":["x"]}}]}',
     "candidates[0].exec"),
    ("rf-filter", '{"schema_version":1,"kind":"task","id":"t","question":"q","messages":"hi",'
                  '"candidates":[{"sql":"SELECT 1","correct":true}]}', "messages"),
]


@pytest.mark.parametrize("cmd, line, field", REPORTED)
def test_reported_records_are_one_line_errors(cmd, line, field):
    r = run(cmd, input=line.encode() + b"\n")
    assert r.code == 1 and r.stdout == b"", r.stderr
    assert "Traceback" not in r.stderr
    assert r.stderr.startswith(f"Error: {cmd}: line 1: field {field}"), r.stderr
    skipped = run(cmd, ["--skip-bad"], input=line.encode() + b"\n")
    assert "line 1: skipped" in skipped.stderr and "Traceback" not in skipped.stderr


@pytest.mark.parametrize("name, content, message", [
    ("iter1/train.jsonl", b'{"schema_version":1,"kind":"task","id":"t","question":"q"}\n{oops\n',
     "iter1/train.jsonl: line 2: invalid JSON"),
    ("iter1/examples.jsonl", b'{"schema_version":1,"kind":"example","task_id":"t",'
     b'"messages":"hi","completion":"x","source":"self","weight":1}\n',
     "iter1/examples.jsonl: line 1: field messages: expected array, got string"),
    ("iter0/dev.greedy.report.json", b"{not json", "iter0/dev.greedy.report.json: invalid JSON"),
    ("timings.tsv", b"iteration\tstage\tms\n0\tdata\tlots\n", "timings.tsv: line 2: expected"),
])
def test_rf_report_names_the_bad_file_and_line(tmp_path, name, content, message):
    from click.testing import CliRunner

    from rf_core.commands.report import cli

    (tmp_path / "iter0").mkdir()
    (tmp_path / "iter1").mkdir()
    (tmp_path / name).write_bytes(content)
    r = CliRunner().invoke(cli, [str(tmp_path), "--no-plots"])
    assert r.exit_code == 1 and "Traceback" not in r.stderr, r.stderr
    assert r.stderr.startswith("Error: rf-report: ") and message in r.stderr, r.stderr
    assert len(r.stderr.strip().splitlines()) == 1
