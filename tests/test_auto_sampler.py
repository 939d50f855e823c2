"""--sampler auto, rf-sample's default: the three-way choice, its line on stderr, the real
engine's name on the candidates, -o options passed to the engine it picks and checked
against that engine's, and the engine recorded in bin/iterate.sh's history and report."""

from __future__ import annotations

import orjson
import pytest

from conftest import make_task, run
from rf_core.model.environment import auto_choice, choose_sampler


def tasks(db: str, n: int = 2) -> list[dict]:
    return [make_task(db, "SELECT 1", None, id=f"a/{i}", question=q)
            for i, q in enumerate(["How many products are there?", "List every city."][:n])]


@pytest.mark.parametrize("cuda,vllm,cb,engine,why", [
    (True, True, True, "vllm", "CUDA GPU, vLLM installed"),
    (True, True, False, "vllm", "CUDA GPU, vLLM installed"),
    (True, False, True, "cb", "CUDA GPU, vLLM not installed"),
    (True, False, False, "hf", "CUDA GPU, but neither vLLM nor transformers' continuous "
                               "batching"),
    (False, True, True, "hf", "no CUDA GPU"),
    (False, False, True, "hf", "no CUDA GPU"),
])
def test_the_choice(cuda, vllm, cb, engine, why):
    assert auto_choice(cuda, vllm, cb) == (engine, why)
    assert choose_sampler(cuda=cuda, vllm_installed=vllm, cb_available=cb) == engine


def test_the_probe_reads_this_machine(monkeypatch):
    """probe_auto_choice asks torch for CUDA and looks for vLLM; both faked here."""
    import importlib.util

    torch = pytest.importorskip("torch")
    from rf_core.model import environment

    real_find_spec = importlib.util.find_spec

    def machine(cuda: bool, vllm: bool):
        monkeypatch.setattr(torch.cuda, "is_available", lambda: cuda)
        monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: (
            (object() if vllm else None) if name == "vllm" else real_find_spec(name, *a)))
        return environment.probe_auto_choice()

    assert machine(cuda=True, vllm=True) == ("vllm", "CUDA GPU, vLLM installed")
    cb = "cb" if environment.continuous_batching_available() else "hf"
    assert machine(cuda=True, vllm=False)[0] == cb
    assert machine(cuda=False, vllm=True) == ("hf", "no CUDA GPU")


def test_auto_is_the_default_and_picks_hf_without_a_gpu(tiny_model, shop_db, validate):
    import torch

    if torch.cuda.is_available():
        pytest.skip("a CUDA GPU is present")
    r = run("rf-sample", ["--model", tiny_model, "--max-new-tokens", "6"], input=tasks(shop_db))
    assert r.code == 0, r.stderr
    validate(r.records)
    lines = r.stderr.splitlines()
    assert lines[0] == "rf-sample: sampler auto -> hf (no CUDA GPU)"
    assert sum("sampler auto" in line for line in lines) == 1
    assert {c["sampler"] for t in r.records for c in t["candidates"]} == {"hf"}


@pytest.fixture
def picks(monkeypatch):
    """Make auto pick a given engine, as probe_auto_choice would on another machine."""
    from rf_plugins.auto import AutoSampler

    def pick(engine: str, why: str):
        monkeypatch.setattr(AutoSampler, "choose", staticmethod(lambda: (engine, why)))

    return pick


def test_auto_hands_the_run_and_its_options_to_the_engine_it_picks(tiny_model, shop_db,
                                                                    picks):
    pytest.importorskip("transformers")
    from rf_plugins.hf.continuous import available

    if available() is not None:
        pytest.skip(available())
    picks("cb", "CUDA GPU, vLLM not installed")
    args = ["--model", tiny_model, "--max-new-tokens", "6", "-o", "num_blocks", "64",
            "--option", "window=1", "-o", "device", "cpu"]
    r = run("rf-sample", args, input=tasks(shop_db))
    assert r.code == 0, r.stderr
    assert r.stderr.splitlines()[0] == \
        "rf-sample: sampler auto -> cb (CUDA GPU, vLLM not installed)"
    assert {c["sampler"] for t in r.records for c in t["candidates"]} == {"cb"}
    direct = run("rf-sample", ["--sampler", "cb", *args], input=tasks(shop_db))
    assert [t["candidates"] for t in direct.records] == [t["candidates"] for t in r.records]


@pytest.mark.parametrize("engine,option,message", [
    ("hf", ("num_blocks", "64"), "sampler 'hf' (picked by auto: no CUDA GPU) has no option "
                                 "'num_blocks'; its options: device, dtype"),
    ("cb", ("batch_tokens", "4096"), "sampler 'cb' (picked by auto: because) has no option "
                                     "'batch_tokens'; its options: device, dtype, "
                                     "max_batch_tokens, num_blocks"),
    ("vllm", ("device", "cpu"), "sampler 'vllm' (picked by auto: because) has no option "
                                "'device'; its options: tensor_parallel_size"),
])
def test_an_option_the_picked_engine_lacks_is_a_usage_error(shop_db, picks, engine, option,
                                                            message):
    picks(engine, "no CUDA GPU" if engine == "hf" else "because")
    r = run("rf-sample", ["--model", "x", "-o", *option], input=tasks(shop_db, 1))
    assert r.code == 2 and message in r.stderr
    assert r.stdout == b""


def test_an_option_no_engine_has_is_refused_before_choosing(shop_db):
    r = run("rf-sample", ["--model", "x", "-o", "nope", "1"], input=tasks(shop_db, 1))
    assert r.code == 2
    assert "sampler 'auto' has no option 'nope'; its options: " in r.stderr
    assert "num_blocks" in r.stderr and "batch_tokens" in r.stderr
    assert "sampler auto ->" not in r.stderr


def test_rf_plugins_lists_auto_with_every_engines_options():
    listed = orjson.loads(run("rf-plugins").stdout)
    assert {"auto", "hf", "cb", "vllm"} <= set(listed["samplers"])
    options = {o["name"]: o for o in listed["options"]["samplers"]["auto"]}
    assert options["num_blocks"]["help"].startswith("[cb] ")
    assert options["batch_tokens"]["help"].startswith("[hf] ")
    assert options["window"]["help"].startswith("[vllm, cb, hf] ")
    assert all(o["default"] is None for o in options.values())


def test_the_run_history_names_the_engine_auto_used(tmp_path):
    from rf_core.report.history import build_history, report_markdown

    run_dir = tmp_path / "run"
    (run_dir / "iter0").mkdir(parents=True)
    (run_dir / "config.env").write_text("PRESET=cpu-demo\nSAMPLER=auto\nVERIFIER=sqlite\n"
                                        "TRAINER=peft\n")
    (run_dir / "timings.tsv").write_text("iteration\tstage\tms\n0\tdev-greedy-sample\t2000\n")
    task = {"schema_version": 1, "kind": "task", "id": "t/0", "question": "q?",
            "candidates": [{"sql": "SELECT 1", "text": "SELECT 1", "sampler": "cb",
                            "n_tokens": 4}]}
    (run_dir / "iter0" / "dev.greedy.sampled.jsonl").write_bytes(orjson.dumps(task) + b"\n")
    history = build_history(run_dir)
    assert history["config"]["sampler"] == "auto"
    assert history["sampler_engines"] == ["cb"]
    assert history["iterations"][0]["sampler_engines"] == ["cb"]
    assert history["iterations"][0]["sampling_tokens_per_s"] == {"dev-greedy-sample": 2.0}
    assert "sampler auto -> cb, verifier sqlite, trainer peft" in report_markdown(history, [])
