"""rf-doctor: the environment survey, its table, and what it says when something is missing."""

from __future__ import annotations

import orjson
import pytest

from conftest import run
from rf_core.api import Option


def fake_spider(tmp_path):
    root = tmp_path / "spider"
    (root / "database").mkdir(parents=True)
    (root / "dev.json").write_text("[]")
    return root


def test_reports_the_environment_and_a_train_plan(tiny_model, tmp_path, monkeypatch):
    monkeypatch.setenv("RF_CACHE_DIR", str(tmp_path / "cache"))
    r = run("rf-doctor", ["--model", tiny_model, "--spider-root", str(fake_spider(tmp_path))])
    assert r.code == 0, r.stderr
    info = orjson.loads(r.stdout)
    assert info["ok"] is True and info["missing"] == []
    assert info["torch"]["build"] in ("cpu", "cuda", "rocm")
    assert info["packages"]["transformers"] and info["packages"]["peft"]
    assert info["model"]["path"] == tiny_model
    assert info["model"]["attention"] in ("sdpa", "eager", "flash_attention_2")
    assert info["sampler_auto"] in ("hf", "cb", "vllm")
    assert info["spider"]["present"] is True
    plan = info["train_plan"]
    assert plan["micro_batch_tokens"] > 0 and isinstance(plan["grad_checkpointing"], bool)
    for label in ("torch", "transformers", "attention (hf sampler)", "sampler auto",
                  "rf-train micro-batch", "rf-train checkpointing", "model cache", "spider"):
        assert f"\n{label} " in "\n" + r.stderr, label


def test_plans_for_a_gpu_it_does_not_have(tiny_model, tmp_path):
    spider = str(fake_spider(tmp_path))
    big = orjson.loads(run("rf-doctor", ["-m", tiny_model, "--spider-root", spider,
                                         "--gpu-memory", "80"]).stdout)["train_plan"]
    assert big["device"] == "cuda" and big["free_gb"] == 80.0
    assert big["micro_batch_tokens"] == 131072  # a tiny model: the cap
    small = orjson.loads(run("rf-doctor", ["-m", tiny_model, "--spider-root", spider,
                                           "--gpu-memory", "1.2"]).stdout)["train_plan"]
    assert small["micro_batch_tokens"] < big["micro_batch_tokens"]


def test_the_plan_takes_the_trainers_options(tiny_model, tmp_path):
    spider = str(fake_spider(tmp_path))
    args = ["-m", tiny_model, "--spider-root", spider, "--gpu-memory", "1.5"]
    default = run("rf-doctor", args)
    plan = orjson.loads(default.stdout)["train_plan"]
    assert (plan["rank"], plan["dropout"], plan["max_len"], plan["trainer"]) == \
        (16, 0.15, 2048, "peft")
    assert "(1.5 GB free, rank 16, dropout 0.15)" in table_row(default.stderr,
                                                               "rf-train micro-batch")
    r = run("rf-doctor", [*args, "-o", "rank", "8", "-o", "dropout", "0", "--max-len", "512"])
    assert r.code == 0, r.stderr
    smaller = orjson.loads(r.stdout)["train_plan"]
    assert (smaller["rank"], smaller["dropout"], smaller["max_len"]) == (8, 0.0, 512)
    # no dropout: smaller activations, more tokens per micro-batch
    assert smaller["budget_without_checkpointing"] > plan["budget_without_checkpointing"]
    bad = run("rf-doctor", [*args, "-o", "rnk", "8"])
    assert bad.code == 2 and "trainer 'peft' has no option 'rnk'" in bad.stderr
    gone = run("rf-doctor", [*args, "--rank", "8"])  # the trainer's option, not a flag
    assert gone.code == 2


class _PlanningTrainer:
    """A trainer whose memory plan records what rf-doctor asked it."""
    name = "planner"
    options = (Option("width", int, 3, "A setting the plan depends on."),)
    asked: list = []

    def train(self, examples, **kwargs):
        raise AssertionError("rf-doctor never trains")

    def memory_plan(self, config, *, free_bytes, max_len, **options):
        self.asked.append((config["num_hidden_layers"], free_bytes, max_len, options))
        return {"device": "cuda", "free_gb": 2.0, "micro_batch_tokens": 1024,
                "completion_tokens": None, "grad_checkpointing": True, "reason": "planned",
                "width": options["width"]}


class _PlanlessTrainer:
    name = "planless"

    def train(self, examples, **kwargs):
        raise AssertionError("rf-doctor never trains")


def test_the_plan_is_the_chosen_trainers_own(tiny_model, tmp_path):
    from rf_core.testing import registered

    args = ["-m", tiny_model, "--spider-root", str(fake_spider(tmp_path)), "--gpu-memory", "2"]
    _PlanningTrainer.asked = []
    with registered(_PlanningTrainer()):
        r = run("rf-doctor", [*args, "--trainer", "planner", "-o", "width", "5",
                              "--max-len", "100"])
    assert r.code == 0, r.stderr
    assert _PlanningTrainer.asked == [(2, 2_000_000_000, 100, {"width": 5})]
    plan = orjson.loads(r.stdout)["train_plan"]
    assert plan["micro_batch_tokens"] == 1024 and plan["trainer"] == "planner"
    assert table_row(r.stderr, "rf-train micro-batch") == "1,024 tokens (2.0 GB free, width 5)"
    assert table_row(r.stderr, "rf-train checkpointing") == "on: planned"
    with registered(_PlanlessTrainer()):
        r = run("rf-doctor", [*args, "--trainer", "planless"])
    assert r.code == 0, r.stderr
    info = orjson.loads(r.stdout)
    assert "train_plan" not in info and table_row(r.stderr, "rf-train micro-batch") is None
    assert "trainer 'planless' offers no memory plan" in info["warnings"]
    r = run("rf-doctor", [*args, "--trainer", "nosuch"])
    assert r.code == 2 and "nosuch" in r.stderr


def test_the_survey_imports_no_trainer_code():
    """The plan comes in through ``survey(plan=...)``: rf_core.model never imports
    rf_core.train, nor the peft plugin."""
    import ast
    from pathlib import Path

    import rf_core.model

    for path in Path(rf_core.model.__file__).parent.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import) else
                     [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            assert not any(n.startswith(("rf_core.train", "rf_plugins")) for n in names), path


def test_empty_model_cache_and_no_spider_say_what_is_missing(tmp_path, monkeypatch):
    monkeypatch.setenv("RF_CACHE_DIR", str(tmp_path / "cache"))
    r = run("rf-doctor", ["--spider-root", str(tmp_path / "nowhere")])
    assert r.code == 1
    info = orjson.loads(r.stdout)
    assert info["ok"] is False and info["model_cache"]["converted"] == []
    assert "missing: the model: model 'qwen2.5-coder-1.5b' is not fetched yet: run " \
           "`rf-model fetch qwen2.5-coder-1.5b`" in r.stderr
    assert f"missing: Spider 1.0 at {tmp_path / 'nowhere'}" in r.stderr
    assert r.stderr.rstrip().endswith(
        "Error: rf-doctor: 2 needed thing(s) missing (listed above)")
    # the demo data needs no Spider
    r = run("rf-doctor", ["--spider-root", str(tmp_path / "nowhere"), "--no-spider"])
    assert r.code == 1 and "Spider" not in r.stderr.split("missing:", 1)[1]


H100 = {"index": 0, "name": "NVIDIA H100 80GB HBM3", "free_bytes": 84_000_000_000,
        "total_bytes": 85_000_000_000, "capability": "9.0"}


def table_row(stderr: str, label: str) -> str | None:
    """The value of the table's row ``label`` (labels are padded to one width)."""
    for line in stderr.splitlines():
        if line.startswith(label + " "):
            return line[len(label):].strip()
    return None


def doctor_on_a_gpu(monkeypatch, tiny_model, tmp_path, flash):
    """rf-doctor on a faked H100 (no GPU here), with or without a flash attention."""
    from rf_core.model import environment

    monkeypatch.setattr(environment, "gpus", lambda: [dict(H100)])
    monkeypatch.setattr(environment, "flash_attention", lambda: flash)
    monkeypatch.setattr(environment, "continuous_batching_available", lambda: True)
    # --sampler auto asks the engines themselves
    torch = pytest.importorskip("torch")
    from rf_plugins.hf import continuous

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(continuous, "flash_attention", lambda: flash)
    monkeypatch.setattr(continuous, "available", lambda: None)
    r = run("rf-doctor", ["--model", tiny_model, "--spider-root", str(fake_spider(tmp_path))])
    assert r.code == 0, r.stderr
    return orjson.loads(r.stdout), r.stderr


def test_warns_when_cb_would_run_paged_sdpa_on_a_gpu(tiny_model, tmp_path, monkeypatch):
    info, stderr = doctor_on_a_gpu(monkeypatch, tiny_model, tmp_path, flash=None)
    assert info["attention"]["cb"] == "paged|sdpa"
    assert info["attention"]["hf"] == info["model"]["attention"]
    assert info["sampler_auto"] == "hf"
    assert "no flash attention: continuous batching would run paged|sdpa" in \
        info["sampler_auto_reason"]
    assert table_row(stderr, "attention (cb sampler)") == "paged|sdpa"
    warnings = [w for w in info["warnings"] if "paged|sdpa" in w]
    assert len(warnings) == 1
    assert warnings[0].startswith("cb (--sampler cb) would run paged|sdpa without CUDA graphs")
    assert "quadratic in the batch" in warnings[0]
    assert f"warning: {warnings[0]}" in stderr.splitlines()


def test_no_warning_when_cb_gets_flash_attention(tiny_model, tmp_path, monkeypatch):
    info, stderr = doctor_on_a_gpu(monkeypatch, tiny_model, tmp_path,
                                   flash="flash_attention_2")
    assert info["attention"]["cb"] == "paged|flash_attention_2"
    assert info["sampler_auto"] == "cb"
    assert table_row(stderr, "attention (cb sampler)") == "paged|flash_attention_2"
    assert "paged|sdpa" not in stderr


def test_no_cb_warning_without_a_gpu(tiny_model, tmp_path):
    r = run("rf-doctor", ["--model", tiny_model, "--spider-root", str(fake_spider(tmp_path))])
    info = orjson.loads(r.stdout)
    if info["gpus"]:
        pytest.skip("a CUDA GPU is present")
    assert info["attention"]["cb"] == "paged|sdpa"  # what it runs on a CPU, no warning
    assert not any("paged|sdpa" in w for w in info["warnings"])
    assert info["attention"]["vllm"] is None or "vLLM" in info["attention"]["vllm"]


ALLOC = ("PYTORCH_CUDA_ALLOC_CONF", "PYTORCH_ALLOC_CONF")


def test_the_allocator_default_keeps_a_users_setting():
    from rf_core.model.environment import CUDA_ALLOC_CONF, default_cuda_allocator

    env = {}
    assert default_cuda_allocator(env) is True
    assert env == {"PYTORCH_CUDA_ALLOC_CONF": "expandable_segments:True"} and \
        CUDA_ALLOC_CONF == "expandable_segments:True"
    for name in ALLOC:
        env = {name: "max_split_size_mb:128"}
        assert default_cuda_allocator(env) is False
        assert env == {name: "max_split_size_mb:128"}
    env = {"PYTORCH_CUDA_ALLOC_CONF": ""}  # set empty on purpose: the allocator's defaults
    assert default_cuda_allocator(env) is False and env == {"PYTORCH_CUDA_ALLOC_CONF": ""}


class _EnvTrainer:
    """A trainer that records the allocator setting it runs under."""
    name = "envtrainer"
    seen: list = []

    def train(self, examples, **kwargs):
        import os

        self.seen.append(os.environ.get("PYTORCH_CUDA_ALLOC_CONF"))
        return {"path": kwargs["out"], "base": kwargs["base"], "trainer": self.name,
                "examples": len(examples), "tokens": 0, "steps": 1, "skipped_steps": 0,
                "loss_curve": [], "wall_s": 0.0, "tokens_per_s": 0.0}


@pytest.mark.parametrize("users", [None, "max_split_size_mb:128"])
def test_rf_sample_and_rf_train_run_plugins_under_the_allocator_default(tmp_path, shop_db,
                                                                       users):
    """The commands set it before the plugin runs, unless the user set their own."""
    import os

    from conftest import make_task
    from rf_core.testing import FakeSampler, registered

    class EnvSampler(FakeSampler):
        def sample(self, tasks, **kwargs):
            self.seen = os.environ.get("PYTORCH_CUDA_ALLOC_CONF")
            return super().sample(tasks, **kwargs)

    env = {"PYTORCH_CUDA_ALLOC_CONF": users, "PYTORCH_ALLOC_CONF": None}
    want = users or "expandable_segments:True"
    with registered(EnvSampler()) as sampler:
        r = run("rf-sample", ["--sampler", "fake", "-m", "none"], env=env,
                input=[make_task(shop_db, "SELECT 1", None, id="e/0", question="q?")])
    assert r.code == 0, r.stderr
    assert sampler.seen == want
    example = {"schema_version": 1, "kind": "example", "task_id": "e/0",
               "messages": [{"role": "user", "content": "q?"}], "completion": "SELECT 1",
               "source": "gold", "weight": 1}
    _EnvTrainer.seen = []
    with registered(_EnvTrainer()):
        r = run("rf-train", ["--trainer", "envtrainer", "--base", "none", "--out",
                             str(tmp_path / "a")], env=env, input=[example])
    assert r.code == 0, r.stderr
    assert _EnvTrainer.seen == [want]


def test_a_missing_package_is_named(tiny_model, tmp_path, monkeypatch):
    import rf_core.model.environment as environment

    real = environment.package_version
    monkeypatch.setattr(environment, "package_version",
                        lambda name: None if name == "peft" else real(name))
    r = run("rf-doctor", ["--model", tiny_model, "--spider-root", str(fake_spider(tmp_path))])
    assert r.code == 1
    assert "missing: the peft package: pip install 'reasonforge[models]'" in r.stderr
    assert orjson.loads(r.stdout)["packages"]["peft"] is None
