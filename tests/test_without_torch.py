"""Without torch: `import rf_core` and every model-free command work (DESIGN: nothing in
rf_core imports torch at module top). Each command runs in a fresh interpreter in which
importing torch, transformers, peft, accelerate or vllm fails."""

from __future__ import annotations

import subprocess
import sys

import orjson
import pytest

BLOCKER = """
import importlib.abc, sys
class _Blocked(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in {"torch", "transformers", "peft", "accelerate", "vllm"}:
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
sys.meta_path.insert(0, _Blocked())
"""


def without_torch(code: str, *args: str, stdin: bytes = b"", env=None):
    return subprocess.run([sys.executable, "-c", BLOCKER + code, *args], input=stdin,
                          capture_output=True, timeout=120, env=env)


def command(name: str, *args: str, stdin: bytes = b"", env=None):
    code = (f"sys.argv[0] = 'rf-{name}'\n"
            f"from rf_core.commands.{name} import main\nmain()\n")
    proc = without_torch(code, *args, stdin=stdin, env=env)
    assert proc.returncode == 0, proc.stderr.decode()[-2000:]
    return proc.stdout


def test_the_blocker_blocks():
    proc = without_torch("import torch")
    assert proc.returncode == 1 and b"No module named 'torch'" in proc.stderr


def test_import_rf_core_and_its_api():
    names = ["hookimpl", "Option", "RFError", "attach", "task_messages", "Executor", "Limits",
             "Matcher", "official_match", "verify_tasks", "make_task", "pick", "DatasetItem",
             "SampleRequest", "canonical_sql", "write_atomic", "cache_dir", "resolve_model",
             "TRAIN_DEFAULTS"]
    code = "import rf_core, rf_core.api as api\n" + "".join(
        f"api.{n}\n" for n in names) + "print(len(api.__all__))\n"
    proc = without_torch(code)
    assert proc.returncode == 0, proc.stderr.decode()
    assert int(proc.stdout) >= len(names)


def test_every_model_free_command_runs(tmp_path, monkeypatch):
    import os

    env = {**os.environ, "RF_CACHE_DIR": str(tmp_path / "cache")}
    tasks = command("data", "demo", "--split", "dev", "--limit", "3", env=env)
    sampled = []
    for line in tasks.splitlines():
        task = orjson.loads(line)
        task["candidates"] = [{"sql": task["gold_sql"], "text": task["gold_sql"]},
                              {"sql": "SELECT 1", "text": "SELECT 1"}]
        sampled.append(orjson.dumps(task))
    executed = command("exec", "--jobs", "1", stdin=b"\n".join(sampled) + b"\n", env=env)
    assert all(orjson.loads(t)["candidates"][0]["correct"] for t in executed.splitlines())
    voted = command("vote", stdin=executed, env=env)
    report = orjson.loads(command("eval", stdin=voted, env=env))
    assert report["ex"] == 100.0
    assert command("filter", stdin=executed, env=env).count(b"\n") == 3
    assert command("inject", stdin=executed, env=env) == b""
    listed = orjson.loads(command("plugins", env=env))
    assert {"hf", "vllm"} <= set(listed["samplers"]) and "peft" in listed["trainers"]
    assert command("model", "list", env=env)


@pytest.mark.parametrize("name", ["sample", "train"])
def test_model_commands_say_what_is_missing(name, tmp_path):
    args = {"sample": ["-m", "x"], "train": ["--base", "x", "--out", str(tmp_path / "a")]}
    stdin = {"sample": b'{"schema_version": 1, "kind": "task", "id": "a", "question": "q"}\n',
             "train": b'{"schema_version": 1, "kind": "example", "task_id": "a", '
                      b'"messages": [{"role": "user", "content": "q"}], '
                      b'"completion": "SELECT 1", "source": "gold", "weight": 1}\n'}
    proc = without_torch(f"sys.argv[0] = 'rf-{name}'\nfrom rf_core.commands.{name} import main"
                         "\nmain()\n", *args[name], stdin=stdin[name])
    assert proc.returncode == 1, proc.stderr.decode()
    last = proc.stderr.decode().strip().splitlines()[-1]
    assert last == (f"Error: rf-{name}: torch is not installed; the model commands need it: "
                    "pip install 'reasonforge[models]'"), last
