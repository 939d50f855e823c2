"""The shared bad-input suite (STYLE.md), run against every command that reads records."""

from __future__ import annotations

import subprocess
import sys

import orjson
import pytest

from conftest import READERS, jsonl, make_task
from conftest import run as run_plain

MODEL_ARGS: list[str] = []


def run(cmd, args=(), input=None):
    extra = MODEL_ARGS if cmd in ("rf-sample", "rf-revise") else []
    return run_plain(cmd, [*extra, *args], input=input)


def good_task(cmd: str, db: str) -> dict:
    if cmd == "rf-sample":
        return make_task(db, "SELECT 1", None)
    if cmd in ("rf-exec", "rf-revise"):
        return make_task(db, "SELECT 1", ["SELECT 1"])
    task = make_task(db, "SELECT 1", ["SELECT 1"])
    task["candidates"][0].update(
        exec={"ok": True, "error": None, "n_rows": 1, "digest": "d", "ms": 0.1,
              "truncated": False}, correct=True)
    task["gold_exec"] = {"ok": True, "error": None, "n_rows": 1, "digest": "d", "ms": 0.1,
                         "truncated": False}
    return task


@pytest.fixture(params=READERS + ["rf-sample", "rf-revise"])
def cmd(request):
    if request.param in ("rf-sample", "rf-revise"):
        MODEL_ARGS[:] = ["--model", request.getfixturevalue("tiny_model"),
                         "--max-new-tokens", "2"]
    return request.param


def test_invalid_json_names_program_and_line(cmd, shop_db):
    data = jsonl([good_task(cmd, shop_db)]) + b'{"schema_version": 1, "kind": "task",\n'
    r = run(cmd, input=data)
    assert r.code == 1
    assert f"Error: {cmd}: line 2: invalid JSON" in r.stderr


def test_blank_lines_are_skipped_but_counted(cmd, shop_db):
    data = b"\n   \n" + jsonl([good_task(cmd, shop_db)]) + b"\n" + b"not json\n"
    r = run(cmd, input=data)
    assert r.code == 1
    assert f"Error: {cmd}: line 5: invalid JSON" in r.stderr


def test_non_object_line(cmd):
    r = run(cmd, input=b"[1, 2, 3]\n")
    assert r.code == 1
    assert f"Error: {cmd}: line 1: expected a JSON object, got list" in r.stderr


def test_wrong_schema_version(cmd, shop_db):
    rec = good_task(cmd, shop_db) | {"schema_version": 2}
    r = run(cmd, input=[rec])
    assert r.code == 1
    assert f"Error: {cmd}: line 1: unsupported schema_version 2 (expected 1)" in r.stderr


def test_missing_schema_version(cmd, shop_db):
    rec = good_task(cmd, shop_db)
    del rec["schema_version"]
    r = run(cmd, input=[rec])
    assert r.code == 1
    assert f"{cmd}: line 1: unsupported schema_version None" in r.stderr


def test_nan_and_infinity_are_rejected(cmd):
    for token in (b"NaN", b"Infinity", b"-Infinity"):
        line = b'{"schema_version": 1, "kind": "task", "id": "x", "score": ' + token + b"}\n"
        r = run(cmd, input=line)
        assert r.code == 1, token
        assert f"Error: {cmd}: line 1: invalid JSON" in r.stderr


def test_wrong_kind(cmd):
    rec = {"schema_version": 1, "kind": "example", "task_id": "x", "messages": [],
           "completion": "SELECT 1", "source": "gold", "weight": 1}
    r = run(cmd, input=[rec])
    assert r.code == 1
    assert f"Error: {cmd}: line 1: expected a 'task' record, got kind 'example'" in r.stderr


def test_empty_input(cmd):
    r = run(cmd, input=b"")
    assert r.stdout == b""
    if cmd == "rf-eval":
        assert r.code == 1
        assert "Error: rf-eval: no task records in the input" in r.stderr
    else:
        assert r.code == 0, r.stderr


def test_skip_bad_reports_every_skipped_line(cmd, shop_db):
    good = jsonl([good_task(cmd, shop_db)])
    data = good + b"oops\n" + good + b"[]\n" + good
    r = run(cmd, ["--skip-bad"], input=data)
    assert r.code == 0, r.stderr
    assert f"Warning: {cmd}: line 2: skipped: invalid JSON" in r.stderr
    assert f"Warning: {cmd}: line 4: skipped: expected a JSON object" in r.stderr
    assert f"{cmd}: skipped 2 bad line(s): 2, 4" in r.stderr
    if cmd in ("rf-exec", "rf-vote"):
        assert len(r.records) == 3


def test_max_bad_stops_past_the_limit(cmd, shop_db):
    good = jsonl([good_task(cmd, shop_db)])
    data = good + b"oops\n" + b"oops\n" + good
    r = run(cmd, ["--max-bad", "1"], input=data)
    assert r.code == 1
    assert f"Error: {cmd}: more than 1 bad lines (last: line 3)" in r.stderr
    ok = run(cmd, ["--max-bad", "2"], input=data)
    assert ok.code == 0, ok.stderr


def test_bad_candidates_field(cmd, shop_db):
    if cmd == "rf-sample":
        pytest.skip("rf-sample replaces candidates")
    rec = good_task(cmd, shop_db)
    rec["candidates"] = "SELECT 1"
    r = run(cmd, input=[rec])
    assert r.code == 1
    assert f"Error: {cmd}: line 1: field candidates: expected array, got string" in r.stderr


def test_usage_error_exits_2(cmd):
    r = run(cmd, ["--no-such-flag"], input=b"")
    assert r.code == 2


def test_missing_input_file_is_usage_error(cmd, tmp_path):
    r = run(cmd, [str(tmp_path / "absent.jsonl")])
    assert r.code == 2


@pytest.mark.parametrize("module", ["vote", "exec"])
def test_closed_downstream_pipe_ends_quietly(module, shop_db, tmp_path):
    task = make_task(shop_db, "SELECT 1", ["SELECT 1"])
    if module == "vote":
        task = good_task("rf-vote", shop_db)
    path = tmp_path / "in.jsonl"
    path.write_bytes(jsonl([task | {"id": f"t/{i}", "pad": "x" * 2000} for i in range(3000)]))
    code = f"from rf_core.commands.{module} import main; main()"
    proc = subprocess.run(
        f"{sys.executable} -c '{code}' {path} | head -n 1", shell=True,
        capture_output=True, timeout=120, executable="/bin/bash")
    assert orjson.loads(proc.stdout.splitlines()[0])["id"] == "t/0"
    assert b"Traceback" not in proc.stderr and b"BrokenPipe" not in proc.stderr, proc.stderr
    status = subprocess.run(
        f"set -o pipefail; {sys.executable} -c '{code}' {path} | head -n 1 >/dev/null",
        shell=True, executable="/bin/bash", timeout=120)
    assert status.returncode == 0
