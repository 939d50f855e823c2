"""rf-sample --shard I/N and rf-merge: shards run in any order merge into exactly the
unsharded run's bytes (hf engine, batch_invariant); shards of another run, missing or
duplicated tasks and shards are refused with one line and nothing written."""

from __future__ import annotations

import orjson
import pytest

from rf_core.testing import run_command, validate_records
from conftest import make_task

QUESTIONS = ["How many products are there?", "Which customers live in Paris?",
             "What is the most expensive product of the bakery category, by price?",
             "List every category.", "Count the orders.", "Name the cheapest product.", "x?"]


def tasks(n: int = 7) -> list[dict]:
    # prompts of different lengths: batched together, they would pad each other
    return [make_task("/nowhere.sqlite", "SELECT 1", None, id=f"s/{i}",
                      question=QUESTIONS[i % len(QUESTIONS)]) for i in range(n)]


def jsonl(records: list[dict]) -> bytes:
    return b"".join(orjson.dumps(r) + b"\n" for r in records)


def sample(model: str, inputs: bytes, *args: str) -> bytes:
    r = run_command("rf-sample", ["--sampler", "hf", "--model", model, "--max-new-tokens",
                                  "10", "-k", "2", "-t", "0.8", "--seed", "7", "-o",
                                  "batch_invariant", "true", *args], input=inputs)
    assert r.exit_code == 0, r.stderr
    return r.stdout


@pytest.fixture(scope="module")
def runs(tiny_model, tmp_path_factory):
    """The unsharded run's bytes and the shard files of three shards, run 2, 0, 1."""
    folder = tmp_path_factory.mktemp("shards")
    inputs = jsonl(tasks())
    (folder / "tasks.jsonl").write_bytes(inputs)
    whole = sample(tiny_model, inputs)
    parts = {}
    for i in (2, 0, 1):
        parts[i] = folder / f"part{i}.jsonl"
        parts[i].write_bytes(sample(tiny_model, inputs, "--shard", f"{i}/3"))
    return folder, whole, parts


def merge(*args) -> object:
    return run_command("rf-merge", [str(a) for a in args])


def test_merged_shards_are_the_unsharded_run_byte_for_byte(runs):
    folder, whole, parts = runs
    shard = [orjson.loads(line) for line in parts[1].read_bytes().splitlines()]
    assert [t["shard"]["index"] for t in shard] == [1, 4]
    assert {t["shard"]["of"] for t in shard} == {3}
    validate_records(parts[1].read_bytes(), "task")
    # candidates at temperature 0.8 differ between tasks: not all alike by accident
    texts = [c["text"] for line in whole.splitlines() for c in orjson.loads(line)["candidates"]]
    assert len(set(texts)) > len(texts) // 2
    r = merge(parts[0], parts[2], parts[1])
    assert r.exit_code == 0, r.stderr
    assert r.stdout == whole
    out = folder / "merged.jsonl"
    r = merge("--order", folder / "tasks.jsonl", "-o", out, parts[2], parts[1], parts[0])
    assert r.exit_code == 0, r.stderr
    assert out.read_bytes() == whole and r.stdout == b""


def test_without_batch_invariant_a_task_depends_on_its_batch(runs, tiny_model):
    # the default engine: one random stream for the run, prompts padded to each other's
    # length, so a shard's answers differ from the unsharded run's (what batch_invariant fixes)
    folder, _, _ = runs
    inputs = (folder / "tasks.jsonl").read_bytes()
    args = ["--sampler", "hf", "--model", tiny_model, "--max-new-tokens", "10", "-k", "2",
            "-t", "0.8", "--seed", "7"]
    whole = run_command("rf-sample", args, input=inputs).records
    part = run_command("rf-sample", [*args, "--shard", "1/3"], input=inputs).records
    assert [c["text"] for c in part[0]["candidates"]] != \
        [c["text"] for c in whole[1]["candidates"]]


def shard_lines(path) -> list[dict]:
    return [orjson.loads(line) for line in path.read_bytes().splitlines()]


@pytest.mark.parametrize("case,message", [
    ("missing shard", "shard(s) 1/3 missing"),
    ("duplicated shard", "also in"),
    ("other run", "from another run"),
    ("lost last task", "1 task(s) missing, at position(s) 6 (shard 0/3)"),
    ("other input", "shards of another input"),
    ("untagged", "has no valid 'shard' tag"),
])
def test_refusals(runs, tmp_path, case, message):
    folder, whole, parts = runs
    files = [parts[0], parts[1], parts[2]]
    order = []
    if case == "missing shard":
        files = [parts[0], parts[2]]
    elif case == "duplicated shard":
        files.append(parts[1])
    elif case == "other run":
        other = shard_lines(parts[2])
        for t in other:
            t["shard"]["run"] = "0123456789abcdef"
        files[2] = tmp_path / "other.jsonl"
        files[2].write_bytes(jsonl(other))
    elif case == "lost last task":
        files[0] = tmp_path / "short.jsonl"
        files[0].write_bytes(jsonl(shard_lines(parts[0])[:-1]))  # positions 0, 3; not 6
        order = ["--order", folder / "tasks.jsonl"]
    elif case == "other input":
        other = tmp_path / "other_tasks.jsonl"
        other.write_bytes(jsonl([{**t, "id": "o" + t["id"]} for t in tasks()]))
        order = ["--order", other]
    elif case == "untagged":
        files[1] = tmp_path / "plain.jsonl"
        files[1].write_bytes(whole)
    out = tmp_path / "merged.jsonl"
    r = merge(*order, "-o", out, *files)
    assert r.exit_code == 1
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: rf-merge: ") and message in lines[0]
    assert not out.exists() and r.stdout == b""
    assert list(tmp_path.glob(".merged*")) == []


def test_a_shards_output_is_not_sharded_again(runs, tiny_model):
    _, _, parts = runs
    r = run_command("rf-sample", ["--sampler", "hf", "--model", tiny_model, "--shard", "0/2"],
                    input=parts[0].read_bytes())
    assert r.exit_code == 1 and "merge the shards with rf-merge first" in r.stderr


def test_a_bad_line_names_its_file(tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_bytes(b'{"schema_version": 1, "kind": "task"\n')
    r = merge(bad)
    assert r.exit_code == 1 and f"{bad}: line 1: " in r.stderr
    r = merge(tmp_path / "absent.jsonl")
    assert r.exit_code == 1 and "cannot read" in r.stderr
