"""rf-doctor: the environment survey, its table, and what it says when something is missing."""

from __future__ import annotations

import orjson

from conftest import run
from rf_core.model.environment import choose_sampler


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


def test_sampler_auto_today():
    assert choose_sampler(cuda=True, vllm_installed=True) == "vllm"
    assert choose_sampler(cuda=True, vllm_installed=False) == "cb"
    assert choose_sampler(cuda=True, vllm_installed=False, cb_available=False) == "hf"
    assert choose_sampler(cuda=False, vllm_installed=True) == "hf"


def test_a_missing_package_is_named(tiny_model, tmp_path, monkeypatch):
    import rf_core.model.environment as environment

    real = environment.package_version
    monkeypatch.setattr(environment, "package_version",
                        lambda name: None if name == "peft" else real(name))
    r = run("rf-doctor", ["--model", tiny_model, "--spider-root", str(fake_spider(tmp_path))])
    assert r.code == 1
    assert "missing: the peft package: pip install 'reasonforge[models]'" in r.stderr
    assert orjson.loads(r.stdout)["packages"]["peft"] is None
