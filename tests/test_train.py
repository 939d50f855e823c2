"""rf-train on a tiny random model: learning, stopping, resuming, numerics, two processes."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import jsonl, run
from train_resume import through_and_resumed

PAIRS = [("How many products are there?", "SELECT count(*) FROM product"),
         ("Which customers live in Paris?", "SELECT name FROM customer WHERE city = 'Paris'"),
         ("What is the most expensive product?",
          "SELECT name FROM product ORDER BY price DESC LIMIT 1"),
         ("List every category.", "SELECT DISTINCT category FROM product")]
FAST = ["--lr", "1e-2", "-o", "rank", "16", "-o", "dropout", "0", "--batch-size", "2"]


def examples(n=2, **extra):
    out = []
    for i, (q, sql) in enumerate(PAIRS[:n]):
        msgs = [{"role": "system", "content": "You write SQL."}, {"role": "user", "content": q}]
        out.append({"schema_version": 1, "kind": "example", "task_id": f"t/{i}",
                    "messages": msgs, "completion": sql, "source": "gold", "weight": 1,
                    **extra})
    return out


def tasks_for(exs):
    return [{"schema_version": 1, "kind": "task", "id": e["task_id"],
             "question": e["messages"][1]["content"], "messages": e["messages"]} for e in exs]


def train(model, out, exs, *args):
    r = run("rf-train", ["--base", model, "--out", str(out), *args], input=exs)
    return r


def test_trained_adapter_reproduces_completions_and_stops(tiny_model, tmp_path, validate):
    exs = examples(2)
    r = train(tiny_model, tmp_path / "a", exs, *FAST, "--epochs", "40")
    assert r.code == 0, r.stderr
    rep = r.records[0]
    validate(rep)
    assert rep["kind"] == "train_report" and rep["examples"] == 2 and rep["steps"] == 40
    assert rep["loss_curve"][-1] < rep["loss_curve"][0] / 20
    assert (tmp_path / "a" / "adapter_config.json").is_file()
    assert (tmp_path / "a" / "tokenizer_config.json").is_file()
    assert not (tmp_path / "a.partial").exists()
    s = run("rf-sample", ["--model", tiny_model, "--adapter", str(tmp_path / "a"),
                          "--max-new-tokens", "40"], input=tasks_for(exs))
    assert s.code == 0, s.stderr
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_model)
    for task, ex in zip(s.records, exs):
        cand = task["candidates"][0]
        assert cand["text"] == ex["completion"]
        # it stopped at the end-of-turn token right after the trained completion
        assert cand["finished"] is True
        assert cand["n_tokens"] == len(tok(ex["completion"], add_special_tokens=False).input_ids)


def test_adapter_loads_with_plain_peft(tiny_model, tmp_path):
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    assert train(tiny_model, tmp_path / "a", examples(2), *FAST, "--epochs", "2").code == 0
    base = AutoModelForCausalLM.from_pretrained(tiny_model, dtype=torch.float32)
    model = PeftModel.from_pretrained(base, str(tmp_path / "a"))
    assert any("lora_A" in n for n, _ in model.named_parameters())


def test_merge_writes_a_merged_model(tiny_model, tmp_path):
    r = train(tiny_model, tmp_path / "a", examples(2), *FAST, "--epochs", "1",
              "-o", "merge", "true")
    assert r.code == 0, r.stderr
    assert (tmp_path / "a" / "merged" / "config.json").is_file()


def test_empty_and_bad_input_write_nothing(tiny_model, tmp_path):
    r = run("rf-train", ["--base", tiny_model, "--out", str(tmp_path / "a")], input=b"")
    assert r.code == 1 and "Error: rf-train: no example records in the input" in r.stderr
    bad = jsonl(examples(1)) + b"{not json\n"
    r = run("rf-train", ["--base", tiny_model, "--out", str(tmp_path / "a")], input=bad)
    assert r.code == 1 and "Error: rf-train: line 2: invalid JSON" in r.stderr
    r = train(tiny_model, tmp_path / "a", [examples(1)[0] | {"weight": -1}])
    assert r.code == 1
    assert "line 1: field weight: expected a number more than 0, got -1" in r.stderr
    assert not (tmp_path / "a").exists() and not (tmp_path / "a.partial").exists()


def test_long_examples_are_reported_not_truncated(tiny_model, tmp_path):
    long = examples(1)[0] | {"completion": "SELECT " + ", ".join(["price"] * 200)}
    r = train(tiny_model, tmp_path / "a", [long] + examples(2), *FAST, "--epochs", "1",
              "--max-len", "120")
    assert r.code == 0, r.stderr
    assert "tokens > --max-len 120: skipped" in r.stderr
    assert r.records[0]["skipped_too_long"] == 1 and r.records[0]["examples"] == 2
    r = train(tiny_model, tmp_path / "b", [long], "--max-len", "120")
    assert r.code == 1 and "no example fits --max-len" in r.stderr


def test_too_long_examples_are_counted_by_database_and_can_stop_the_run(tiny_model, tmp_path,
                                                                         validate):
    long = examples(1)[0] | {"completion": "SELECT " + ", ".join(["price"] * 200),
                             "db_id": "store_1"}
    exs = [long, long | {"db_id": "sakila_1"}, long] + examples(3, db_id="shop")
    r = train(tiny_model, tmp_path / "a", exs, *FAST, "--epochs", "1", "--max-len", "120")
    assert r.code == 0, r.stderr
    rep = r.records[0]
    validate(rep)
    assert rep["skipped_too_long"] == 3
    assert rep["skipped_too_long_by_db"] == {"store_1": 2, "sakila_1": 1}
    assert "3 of 6 examples (50.0%) are longer than --max-len 120 (by database: store_1 2, " \
        "sakila_1 1): skipped" in r.stderr
    r = train(tiny_model, tmp_path / "b", exs, *FAST, "--max-len", "120", "--max-too-long", "1")
    assert r.code == 1 and "more than the 1% allowed" in r.stderr, r.stderr
    assert "by database: store_1 2, sakila_1 1" in r.stderr
    assert not (tmp_path / "b").exists()
    r = train(tiny_model, tmp_path / "c", exs, *FAST, "--epochs", "1", "--max-len", "120",
              "--max-too-long", "50")
    assert r.code == 0, r.stderr


def test_non_finite_steps_are_skipped_then_stop_without_an_adapter(tiny_model, tmp_path):
    r = train(tiny_model, tmp_path / "a", examples(2), "--lr", "1e20", "--batch-size", "1",
              "--epochs", "10", "-o", "max_bad_steps", "3")
    assert r.code == 1
    assert "non-finite loss or gradient norm; step skipped" in r.stderr
    assert "lower --lr. No adapter was written" in r.stderr
    assert not (tmp_path / "a").exists()


def test_existing_output_needs_force(tiny_model, tmp_path):
    (tmp_path / "a").mkdir()
    r = train(tiny_model, tmp_path / "a", examples(1), *FAST)
    assert r.code == 1 and "exists; pass --force" in r.stderr


def _rf_train(*args, env=None):
    code = "from rf_core.commands.train import main; main()"
    return [sys.executable, "-c", code, *args]


def test_resume_after_sigkill_gives_the_same_run(tiny_model, tmp_path):
    data = tmp_path / "ex.jsonl"
    data.write_bytes(jsonl(examples(4)))
    common = ["--base", tiny_model, *FAST, "--epochs", "30", "-o", "save_every", "5", str(data)]
    expected, got = through_and_resumed(common, tmp_path)
    assert got["loss_curve"] == pytest.approx(expected["loss_curve"], rel=1e-4, abs=1e-5)


@pytest.mark.skipif(not shutil.which("torchrun") and
                    not (Path(sys.executable).parent / "torchrun").exists(),
                    reason="torchrun is not installed")
def test_two_processes_match_one(tiny_model, tmp_path):
    data = tmp_path / "ex.jsonl"
    data.write_bytes(jsonl(examples(4)))
    common = ["--base", tiny_model, "--lr", "5e-3", "-o", "dropout", "0", "--batch-size", "4",
              "--epochs", "3", "-o", "device", "cpu", str(data)]
    one = subprocess.run(_rf_train("--out", str(tmp_path / "one"), *common),
                         capture_output=True, timeout=600)
    assert one.returncode == 0, one.stderr.decode()[-2000:]
    script = tmp_path / "train_main.py"
    script.write_text("from rf_core.commands.train import main\nmain()\n")
    torchrun = shutil.which("torchrun") or str(Path(sys.executable).parent / "torchrun")
    two = subprocess.run([torchrun, "--nproc_per_node", "2", "--master_port", "29517",
                          str(script), "--out", str(tmp_path / "two"), *common],
                         capture_output=True, timeout=600,
                         env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert two.returncode == 0, two.stderr.decode()[-3000:]
    a, b = json.loads(one.stdout), json.loads(two.stdout)
    assert b["processes"] == 2 and a["steps"] == b["steps"]
    assert b["loss_curve"] == pytest.approx(a["loss_curve"], rel=1e-4, abs=1e-5)
    # each process ran half of every step; the report has the largest of either
    assert (a["largest_micro_batch_rows"], b["largest_micro_batch_rows"]) == (4, 2)
    assert 0 < b["largest_micro_batch_tokens"] <= a["largest_micro_batch_tokens"]
    assert a["peak_gpu_reserved_bytes"] is None and b["peak_gpu_reserved_bytes"] is None
