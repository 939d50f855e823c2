"""rf_core.testing, the helpers shipped for plugin authors: FakeSampler through rf-sample,
registered(), validate_records, the tiny_model fixture; and the schemas shipped as package
data (so rf_core.api.validate works from a wheel, not only from a checkout)."""

from __future__ import annotations

import json
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from rf_core.api import Option, hookimpl, task_messages
from rf_core.records.validation import schema_dir
from rf_core.errors import UnknownPlugin
from rf_core.plugins import manager as plugins
from rf_core.testing import FakeSampler, registered, run_command, validate_records
from conftest import ROOT, make_task


def test_fake_sampler_replays_queued_outputs_through_rf_sample(fake_sampler, shop_db):
    tasks = [make_task(shop_db, f"SELECT {i}", None, id=f"t/{i}") for i in range(3)]
    fake_sampler.queue("```sql\nSELECT 'a'\n```", "SELECT 'b'", {"text": "no sql here",
                                                                  "logprob": -1.5})
    fake_sampler.queue("```sql\nSELECT 'own'\n```", task="t/2")
    r = run_command("rf-sample", ["--sampler", "fake", "-m", "m0", "-k", "2", "-t", "0.5",
                                  "--seed", "7"], input=tasks)
    assert r.exit_code == 0, r.stderr
    out = validate_records(r.stdout, "task", require=("messages", "candidates"))
    assert [[c["sql"] for c in t["candidates"]] for t in out] == [
        ["SELECT 'a'", "SELECT 'b'"],
        [None, "SELECT 1"],           # the queue's last output, then the default: gold SQL
        ["SELECT 'own'", "SELECT 2"],  # the task's own queue first
    ]
    assert out[1]["candidates"][0]["logprob"] == -1.5
    assert out[1]["candidates"][0]["text"] == "no sql here"
    first = out[0]["candidates"][0]
    assert (first["sampler"], first["model"], first["temperature"], first["seed"]) == \
        ("fake", "m0", 0.5, None)  # replayed, not sampled: no seed reproduces it
    assert out[0]["messages"] == task_messages(tasks[0])
    assert fake_sampler.pending == 0
    (call,) = fake_sampler.calls
    assert call.task_ids == ["t/0", "t/1", "t/2"]
    assert call.kwargs["k"] == 2 and call.kwargs["model"] == "m0"
    assert "fake: answered 3 task(s)" in r.stderr


def test_fake_sampler_default_and_options(shop_db):
    sampler = FakeSampler("echo", default=lambda task: f"```sql\nSELECT '{task['id']}'\n```",
                          options=(Option("style", str, "plain"),))
    with registered(sampler):
        r = run_command("rf-sample", ["--sampler", "echo", "-m", "m", "-o", "style", "x"],
                        input=[make_task(shop_db, None, None, id="q/1")])
    assert r.exit_code == 0, r.stderr
    assert r.records[0]["candidates"][0]["sql"] == "SELECT 'q/1'"
    assert sampler.calls[0].kwargs["style"] == "x"


def test_registered_is_undone_afterwards_also_on_failure(shop_db):
    sampler = FakeSampler("gone")
    with pytest.raises(RuntimeError):
        with registered(sampler):
            assert plugins.get("samplers", "gone") is sampler
            raise RuntimeError("the test failed")
    with pytest.raises(UnknownPlugin):
        plugins.get("samplers", "gone")
    r = run_command("rf-sample", ["--sampler", "gone", "-m", "m"],
                    input=[make_task(shop_db, "SELECT 1", None)])
    assert r.exit_code == 2 and "unknown sampler 'gone'" in r.stderr


def test_registered_takes_a_plugin_with_hooks(shop_db):
    class Always:
        name = "always-right"

        def verify(self, tasks, **options):
            for task in tasks:
                for cand in task.get("candidates") or []:
                    cand["correct"] = True
                task["verified_by"] = {"verifier": self.name, "matcher": "always"}
                yield task

    class Plugin:
        @hookimpl
        def register_verifiers(self, register):
            register(Always())

    with registered(Plugin(), name="always-plugin"):
        r = run_command("rf-exec", ["--verifier", "always-right"],
                        input=[make_task(shop_db, "SELECT 1", ["nonsense"])])
        listing = json.loads(run_command("rf-plugins").stdout)
    assert r.exit_code == 0, r.stderr
    assert r.records[0]["candidates"][0]["correct"] is True
    entry = next(p for p in listing["plugins"] if p["name"] == "always-plugin")
    assert entry["registers"] == {"verifiers": ["always-right"]}
    with pytest.raises(TypeError, match="neither a plugin nor an implementation"):
        with registered(object()):
            pass


def test_validate_records_names_the_record_and_the_error(shop_db):
    good = make_task(shop_db, "SELECT 1", ["SELECT 1"])
    assert validate_records([good], "task") == [good]
    bad = make_task(shop_db, "SELECT 1", [3], id="t/bad")
    with pytest.raises(AssertionError,
                       match=r"records\[1\] \(id 't/bad'\): task record invalid: field "
                             r"candidates\[0\]\.sql: expected string or null, got integer"):
        validate_records([good, bad])
    with pytest.raises(AssertionError, match=r"records\[0\] .*expected kind 'example'"):
        validate_records([good], "example")
    with pytest.raises(AssertionError, match=r"records\[0\] .*missing field\(s\) messages"):
        validate_records([good], "task", require=("messages",))
    with pytest.raises(AssertionError, match=r"line 2: invalid JSON"):
        validate_records('{"kind": "task"}\n{oops\n')
    with pytest.raises(AssertionError, match=r"records\[0\]: unknown record kind 'nope'"):
        validate_records(b'{"kind": "nope"}\n\n')
    with pytest.raises(ValueError, match="unknown record kind 'tasks'"):
        validate_records([good], "tasks")


def test_tiny_model_fixture(tiny_model):
    from transformers import AutoTokenizer

    folder = Path(tiny_model)
    assert (folder / "config.json").is_file()
    tok = AutoTokenizer.from_pretrained(folder)
    prompt = tok.apply_chat_template([{"role": "user", "content": "Hi"}], tokenize=False,
                                     add_generation_prompt=True)
    assert prompt == "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n"


def test_importing_the_helpers_imports_no_model_library():
    code = ("import sys, rf_core.testing\n"
            "print(sorted(m for m in ('torch', 'transformers', 'tokenizers') "
            "if m in sys.modules))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]"


def test_schemas_ship_as_package_data():
    import rf_core.records

    package = Path(rf_core.records.__file__).parent
    assert schema_dir().resolve() == (package / "schemas").resolve()
    kinds = sorted(p.name for p in schema_dir().glob("*.schema.json"))
    assert kinds == ["example.schema.json", "pair.schema.json", "report.schema.json",
                     "task.schema.json",
                     "train_report.schema.json"]
    setuptools = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    assert "rf_core.records" in setuptools["packages"]
    assert setuptools["package-data"]["rf_core.records"] == ["schemas/*.schema.json"]
    # the project's top-level schemas/ is the same folder, not a copy that could drift
    assert (ROOT / "schemas").resolve() == schema_dir().resolve()
