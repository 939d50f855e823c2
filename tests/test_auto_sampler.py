"""--sampler auto, rf-sample's default: the choice (vllm, cb only with flash attention, hf) and
the probe that feeds it, its line on stderr, the real
engine's name on the candidates, -o options passed to the engine it picks and checked
against that engine's, and the engine recorded in bin/iterate.sh's history and report."""

from __future__ import annotations

import orjson
import pytest

from conftest import make_task, run


def tasks(db: str, n: int = 2) -> list[dict]:
    return [make_task(db, "SELECT 1", None, id=f"a/{i}", question=q)
            for i, q in enumerate(["How many products are there?", "List every city."][:n])]


NO_FLASH = ("CUDA GPU, vLLM not installed, no flash attention: continuous batching would run "
            "paged|sdpa, quadratic in the batch")


@pytest.fixture
def machine(monkeypatch):
    """probe_auto_choice on a faked machine: torch's CUDA, vLLM's presence, transformers'
    continuous batching and the flash attention probe are set by the test; the engines'
    own declarations (available(), priority) make the choice."""
    import importlib.util

    torch = pytest.importorskip("torch")
    from rf_core.plugins import auto
    from rf_plugins.hf import continuous

    real_find_spec = importlib.util.find_spec
    asked = []

    def probe(cuda: bool, vllm: bool, flash: str | None = None, cb: bool = True):
        monkeypatch.setattr(torch.cuda, "is_available", lambda: cuda)
        monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: (
            (object() if vllm else None) if name == "vllm" else real_find_spec(name, *a)))
        monkeypatch.setattr(continuous, "available", lambda: (
            None if cb else "no continuous batching in this transformers"))
        monkeypatch.setattr(continuous, "flash_attention",
                            lambda: asked.append("flash") or flash)
        asked.clear()
        return auto.probe()

    probe.asked = asked
    return probe


@pytest.mark.parametrize("cuda,vllm,cb,flash,engine,why", [
    (True, True, True, "flash_attention_2", "vllm", "CUDA GPU, vLLM installed"),
    (True, True, True, None, "vllm", "CUDA GPU, vLLM installed"),
    (True, True, False, None, "vllm", "CUDA GPU, vLLM installed"),
    (True, False, True, "flash_attention_2", "cb",
     "CUDA GPU, vLLM not installed, continuous batching on paged|flash_attention_2"),
    (True, False, True, "flash_attention_3", "cb",
     "CUDA GPU, vLLM not installed, continuous batching on paged|flash_attention_3"),
    (True, False, True, None, "hf", NO_FLASH),
    (True, False, False, "flash_attention_2", "hf",
     "CUDA GPU, vLLM not installed, no continuous batching in this transformers"),
    (False, True, True, "flash_attention_2", "hf", "no CUDA GPU"),
    (False, False, True, None, "hf", "no CUDA GPU"),
])
def test_the_choice(machine, cuda, vllm, cb, flash, engine, why):
    assert machine(cuda=cuda, vllm=vllm, cb=cb, flash=flash) == (engine, why)


def test_the_rule_and_the_choice_come_from_the_engines_declarations():
    """A third party's engine with a higher priority is tried first, and named in the rule;
    one that is not available is passed over, its reason said."""
    from rf_core.plugins import auto
    from rf_core.testing import registered

    class Mine:
        name, options, priority, rule = "mine", (), 99, "a file named mine.ok"

        def __init__(self, ok):
            self.ok = ok

        def available(self):
            return self.ok, "mine.ok found" if self.ok else "no mine.ok"

        def load(self, request, **options):
            return self

    with registered(Mine(True)):
        assert auto.rule().startswith("mine (a file named mine.ok), else vllm (")
        assert auto.probe() == ("mine", "mine.ok found")
    with registered(Mine(False)):
        engine, why = auto.probe()
        assert engine != "mine" and why.startswith("no mine.ok")
    assert auto.rule() == ("vllm (vLLM installed and a CUDA GPU), else cb (a CUDA "
                           "GPU with flash attention), else hf")


def test_the_probe_picks_hf_on_a_gpu_without_flash_attention(machine):
    assert machine(cuda=True, vllm=False, flash=None) == ("hf", NO_FLASH)
    assert machine.asked == ["flash"]


def test_the_probe_picks_cb_on_a_gpu_with_flash_attention(machine):
    assert machine(cuda=True, vllm=False, flash="flash_attention_2") == (
        "cb", "CUDA GPU, vLLM not installed, continuous batching on paged|flash_attention_2")


def test_the_probe_picks_vllm_where_installed_without_looking_for_flash(machine):
    assert machine(cuda=True, vllm=True, flash="flash_attention_2") == (
        "vllm", "CUDA GPU, vLLM installed")
    assert machine.asked == []


def test_the_probe_picks_hf_without_a_gpu_whatever_is_installed(machine):
    assert machine(cuda=False, vllm=True, flash="flash_attention_2") == ("hf", "no CUDA GPU")
    assert machine(cuda=False, vllm=False, flash="flash_attention_2") == ("hf", "no CUDA GPU")
    assert machine.asked == []


def test_no_flash_attention_is_found_here_and_nothing_is_downloaded(monkeypatch):
    """This machine has no CUDA and no flash-attn package: the real probe answers None, and
    with the hub online it does not ask the kernels hub (that would download)."""
    pytest.importorskip("transformers")
    import huggingface_hub.constants as hub
    from transformers.utils import import_utils

    from rf_plugins.hf.continuous import flash_attention

    monkeypatch.setattr(hub, "HF_HUB_OFFLINE", False)
    asked = []
    for version in (2, 3):
        real = getattr(import_utils, f"is_flash_attn_{version}_available")
        monkeypatch.setattr(import_utils, f"is_flash_attn_{version}_available",
                            lambda kernels_fallback_ok=False, real=real, v=version: (
                                asked.append((v, kernels_fallback_ok)) or
                                real(kernels_fallback_ok=kernels_fallback_ok)))
    assert flash_attention() is None
    assert asked == [(3, False), (2, False)]  # FA3 first, as transformers tries them


def test_a_cached_hub_kernel_counts_only_with_the_hub_offline(monkeypatch):
    pytest.importorskip("transformers")
    import huggingface_hub.constants as hub
    from transformers.utils import import_utils

    from rf_plugins.hf.continuous import flash_attention

    # FA2 from the kernels hub's cache, no package
    monkeypatch.setattr(import_utils, "is_flash_attn_3_available",
                        lambda kernels_fallback_ok=False: False)
    monkeypatch.setattr(import_utils, "is_flash_attn_2_available",
                        lambda kernels_fallback_ok=False: kernels_fallback_ok)
    monkeypatch.setattr(hub, "HF_HUB_OFFLINE", True)
    assert flash_attention() == "flash_attention_2"
    monkeypatch.setattr(hub, "HF_HUB_OFFLINE", False)
    assert flash_attention() is None


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
    from rf_core.plugins.auto import AutoSampler

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


def test_the_help_and_the_description_say_the_rule():
    from rf_core.plugins.auto import rule as auto_rule
    from rf_core.plugins.auto import AutoSampler

    AUTO_RULE = auto_rule()
    assert "cb (a CUDA GPU with flash attention)" in AUTO_RULE
    assert AUTO_RULE in AutoSampler().description
    assert " ".join(AUTO_RULE.split()) in " ".join(run("rf-sample", ["--help"]).stdout.decode()
                                                  .split())
