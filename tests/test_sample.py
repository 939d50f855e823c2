"""rf-sample and the generation engine on a tiny random model; SQL extraction; model sources."""

from __future__ import annotations

import pytest

from rf_core.model.extract import extract_sql
from rf_core.model.prompts import render_messages
from conftest import make_task, random_adapter, run

EXTRACT = [
    ("```sql\nSELECT a FROM t;\n```", "SELECT a FROM t"),
    ("Here is the query:\n```sql\nSELECT a\nFROM t\nWHERE b = 1\n```\nIt selects a.",
     "SELECT a\nFROM t\nWHERE b = 1"),
    ("```\nSELECT 1\n```", "SELECT 1"),
    ("```SQL\nselect x from y\n```", "select x from y"),
    ("```sql\nSELECT a FROM t WHERE name = 'x;y'; SELECT 2\n```",
     "SELECT a FROM t WHERE name = 'x;y'"),
    ("The answer is SELECT count(*) FROM t; that counts rows.", "SELECT count(*) FROM t"),
    ("SELECT a FROM t\n\nThis query returns a.", "SELECT a FROM t"),
    ("```sql\nSELECT a FROM t WHERE b >", "SELECT a FROM t WHERE b >"),  # truncated output
    ("```sql\nCREATE TABLE t (a);\n```\n```sql\nSELECT a FROM t\n```", "SELECT a FROM t"),
    ("WITH x AS (SELECT 1 AS a) SELECT a FROM x", "WITH x AS (SELECT 1 AS a) SELECT a FROM x"),
    ("The author with the most books is Ben.", None),
    ("I cannot answer that.", None),
    ("", None),
    (None, None),
]


@pytest.mark.parametrize("text,sql", EXTRACT)
def test_extract_sql(text, sql):
    assert extract_sql(text) == sql


def tasks(db: str, n: int = 3) -> list[dict]:
    questions = ["How many products are there?", "Which customers live in Paris?",
                 "What is the most expensive product?", "List every category."]
    return [make_task(db, "SELECT 1", None, id=f"s/{i}", question=questions[i % 4])
            for i in range(n)]


def sample(model, inputs, *args):
    # the hf engine's tests: pinned, since the default (auto) picks another engine on a GPU
    r = run("rf-sample", ["--sampler", "hf", "--model", model, "--max-new-tokens", "12", *args],
            input=inputs)
    assert r.code == 0, r.stderr
    return r.records


def test_engines_answers_are_built_from_their_tokens():
    from rf_core.api import Generation, decode_answers

    stopped = Generation.from_ids([5, 6, 2], -1.23456, stops=[2, 3], seed=9)
    assert (stopped.tokens, stopped.finished) == ([5, 6], True)
    capped = Generation.from_ids((5, 6), None, stops=[2, 3])
    assert (capped.tokens, capped.finished, capped.seed) == ([5, 6], False, None)
    assert Generation.from_ids([], 0.0, stops=[2]).finished is False

    class Bytes:  # a byte-level tokenizer: token i is byte i
        def decode(self, ids, skip_special_tokens):
            assert skip_special_tokens
            return bytes(ids).decode("utf-8", errors="replace")

    # a cut-off multi-byte character shows as U+FFFD, whatever the engine's detokenizer did
    last = Generation.from_ids([0x61, 0xC3], -2.0, stops=[0])
    assert decode_answers(Bytes(), [stopped, last]) == [
        {"text": "\x05\x06", "logprob": -1.2346, "n_tokens": 2, "finished": True, "seed": 9},
        {"text": "a\ufffd", "logprob": -2.0, "n_tokens": 2, "finished": False}]


def test_candidates_messages_and_fields(tiny_model, shop_db, validate):
    out = sample(tiny_model, tasks(shop_db), "-k", "3", "--temperature", "1.0")
    validate(out)
    for t in out:
        assert len(t["candidates"]) == 3
        assert t["messages"] == render_messages(t)
        for c in t["candidates"]:
            assert c["sampler"] == "hf" and c["model"] == tiny_model and c["adapter"] is None
            assert c["n_tokens"] <= 12 and isinstance(c["logprob"], float)
            assert c["sql"] == extract_sql(c["text"])


def test_same_seed_same_candidates(tiny_model, shop_db):
    a = sample(tiny_model, tasks(shop_db), "-k", "4", "-t", "1.0", "--seed", "3")
    b = sample(tiny_model, tasks(shop_db), "-k", "4", "-t", "1.0", "--seed", "3")
    c = sample(tiny_model, tasks(shop_db), "-k", "4", "-t", "1.0", "--seed", "4")
    texts = lambda out: [[x["text"] for x in t["candidates"]] for t in out]  # noqa: E731
    assert texts(a) == texts(b)
    assert texts(a) != texts(c)


def test_greedy_engine_matches_plain_generate(tiny_model, shop_db):
    """Left padding, one prefill per prompt and dropped rows must not change greedy output."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from rf_core.model.chat import encode_prompt

    out = sample(tiny_model, tasks(shop_db, 4), "-k", "1", "--max-new-tokens", "12")
    tok = AutoTokenizer.from_pretrained(tiny_model)
    model = AutoModelForCausalLM.from_pretrained(tiny_model, dtype=torch.float32)
    for t in out:
        ids = torch.tensor([encode_prompt(tok, t["messages"])])
        with torch.inference_mode():
            ref = model.generate(ids, attention_mask=torch.ones_like(ids), do_sample=False,
                                 max_new_tokens=12, eos_token_id=tok.eos_token_id,
                                 pad_token_id=tok.pad_token_id)
        text = tok.decode(ref[0, ids.shape[1]:], skip_special_tokens=True)
        assert t["candidates"][0]["text"] == text


def test_k_samples_share_one_prefill_but_differ(tiny_model, shop_db):
    out = sample(tiny_model, tasks(shop_db, 1), "-k", "8", "-t", "1.5")
    assert len({c["text"] for c in out[0]["candidates"]}) > 1


def test_adapter_changes_outputs(tiny_model, shop_db, tmp_path):
    adapter = random_adapter(tiny_model, tmp_path / "adapter")
    plain = sample(tiny_model, tasks(shop_db), "-k", "1")
    adapted = sample(tiny_model, tasks(shop_db), "-k", "1", "--adapter", str(adapter))
    assert adapted[0]["candidates"][0]["adapter"] == str(adapter)
    assert [t["candidates"][0]["text"] for t in plain] != \
        [t["candidates"][0]["text"] for t in adapted]


def test_shards_partition_the_input(tiny_model, shop_db):
    inputs = tasks(shop_db, 5)
    ids = []
    for i in range(2):
        ids += [t["id"] for t in sample(tiny_model, inputs, "--shard", f"{i}/2")]
    assert sorted(ids) == sorted(t["id"] for t in inputs)
    bad = run("rf-sample", ["--model", tiny_model, "--shard", "2/2"], input=inputs)
    assert bad.code == 2


@pytest.mark.parametrize("make_bad,message", [
    (lambda p: str(p / "absent"), "does not exist"),
    (lambda p: (p / "broken.gguf").write_bytes(b"GGUF\x03\x00garbage") and str(p / "broken.gguf"),
     "cannot read GGUF"),
    (lambda p: (p / "empty").mkdir() or str(p / "empty"), "has no config.json"),
])
def test_bad_model_is_a_one_line_error(tmp_path, shop_db, make_bad, message, monkeypatch):
    pytest.importorskip("torch")
    monkeypatch.setenv("RF_CACHE_DIR", str(tmp_path / "cache"))
    r = run("rf-sample", ["--model", make_bad(tmp_path)], input=tasks(shop_db, 1))
    assert r.code == 1
    lines = r.stderr.strip().splitlines()
    assert lines[-1].startswith("Error: rf-sample: ") and message in lines[-1]
    assert "Traceback" not in r.stderr


def test_unfetched_catalogue_model_says_how_to_fetch(tmp_path, shop_db, monkeypatch):
    monkeypatch.setenv("RF_CACHE_DIR", str(tmp_path))
    r = run("rf-sample", ["--model", "qwen2.5-coder-0.5b"], input=tasks(shop_db, 1))
    assert r.code == 1 and "rf-model fetch qwen2.5-coder-0.5b" in r.stderr


def test_hub_id_offline_is_a_one_line_error(shop_db, monkeypatch, tmp_path):
    pytest.importorskip("torch")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path))
    r = run("rf-sample", ["--model", "no-such-org/no-such-model"], input=tasks(shop_db, 1))
    assert r.code == 1
    assert "hub could not provide it" in r.stderr.strip().splitlines()[-1]


def test_bad_adapter_is_a_one_line_error(tiny_model, shop_db, tmp_path):
    r = run("rf-sample", ["--model", tiny_model, "--adapter", str(tmp_path)],
            input=tasks(shop_db, 1))
    assert r.code == 1
    assert "is not a PEFT adapter folder" in r.stderr


def test_unknown_sampler_lists_installed(shop_db):
    r = run("rf-sample", ["--model", "x", "--sampler", "nope"], input=tasks(shop_db, 1))
    assert r.code == 2 and "unknown sampler 'nope'; installed:" in r.stderr and "hf" in r.stderr


def test_vllm_sampler_without_vllm_says_how_to_install(shop_db, tmp_path):
    import importlib.util

    if importlib.util.find_spec("vllm") is not None:
        pytest.skip("vLLM is installed here; tests/vllm/ exercises it")
    r = run("rf-sample", ["--sampler", "vllm", "--model", str(tmp_path)],
            input=tasks(shop_db, 1))
    assert r.code == 1
    assert "the vllm sampler needs vLLM, which is not installed" in r.stderr


def _engine_run(model_dir, prompts, share: bool, k: int = 1, temperature: float = 0.0):
    import torch
    from transformers import AutoModelForCausalLM

    from rf_plugins.hf.engine import SamplingConfig, Stats, sample_batch

    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
    cfg = SamplingConfig(k=k, temperature=temperature, max_new_tokens=10, stop_ids=(3,),
                         pad_id=0, share_at=0.5 if share else 2.0)
    stats = Stats()
    out = sample_batch(model, prompts, cfg, torch.Generator().manual_seed(5), stats)
    return out, stats


def _prompts():
    import random

    rnd = random.Random(1)
    schema_a = [rnd.randrange(4, 200) for _ in range(60)]
    schema_b = [rnd.randrange(4, 200) for _ in range(45)]
    question = lambda n: [rnd.randrange(4, 200) for _ in range(n)]  # noqa: E731
    return [schema_a + question(5), schema_b + question(9), schema_a + question(12),
            [7, 8, 9] + question(20),  # shares nothing: its own prefill row
            schema_b + question(3), schema_a + question(5)]


def test_shared_prefix_prefill_gives_the_same_samples(tiny_model):
    """Prefilling a shared prefix once must not change what each prompt generates."""
    prompts = _prompts()
    plain, plain_stats = _engine_run(tiny_model, prompts, share=False)
    shared, shared_stats = _engine_run(tiny_model, prompts, share=True)
    for a, b in zip(plain, shared):
        assert a[0].tokens == b[0].tokens
        assert abs(a[0].logprob - b[0].logprob) < 1e-3
    assert plain_stats.prefill_tokens == sum(map(len, prompts))
    # schema_a (60 tokens) and schema_b (45) run once each instead of 3 and 2 times
    assert shared_stats.prefill_tokens == sum(map(len, prompts)) - 2 * 60 - 45


def test_shared_prefix_prefill_with_k_samples(tiny_model):
    prompts = _prompts()
    plain, _ = _engine_run(tiny_model, prompts, share=False, k=4, temperature=1.0)
    shared, _ = _engine_run(tiny_model, prompts, share=True, k=4, temperature=1.0)
    assert [[s.tokens for s in p] for p in plain] == [[s.tokens for s in p] for p in shared]


def test_plan_batches_keeps_prefix_groups_together():
    from rf_plugins.hf.engine import plan_batches, prefix_groups

    prompts = _prompts()
    groups = prefix_groups(prompts, 0.5)
    assert sorted(map(sorted, groups)) == [[0, 2, 5], [1, 4], [3]]
    for budget in (10**6, 600, 200):
        batches = plan_batches(prompts, 2, 10, budget, 256)
        assert sorted(i for b in batches for i in b) == list(range(len(prompts)))
        # the prompt that shares nothing never rides with a group's batch
        assert [3] in batches
        for b in batches:  # within budget unless a single prompt alone exceeds it
            width = max(len(prompts[i]) for i in b) + 10
            assert len(b) == 1 or len(b) * 2 * width <= budget
    assert len(plan_batches(prompts, 2, 10, 10**6, 256)) == 2


def test_engine_runs_on_the_older_cache_api(tiny_model):
    """transformers 5.17 (the GPU image's) takes and returns ``past_key_values``; 5.24 names
    both ``cache``. A model with only the old interface must give the same samples."""
    import torch
    from transformers import AutoModelForCausalLM

    from rf_plugins.hf.engine import SamplingConfig, _cache_kwarg, sample_batch

    inner = AutoModelForCausalLM.from_pretrained(tiny_model, dtype=torch.float32)
    new_name = _cache_kwarg(type(inner).forward)

    class Output(dict):
        def __getattr__(self, name):
            try:
                return self[name]
            except KeyError:
                raise AttributeError(name) from None

    class OldInterface(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.inner = inner

        def forward(self, input_ids=None, attention_mask=None, position_ids=None,
                    past_key_values=None, use_cache=None, **kwargs):
            extra = {} if past_key_values is None else {new_name: past_key_values}
            out = self.inner(input_ids=input_ids, attention_mask=attention_mask,
                             position_ids=position_ids, use_cache=use_cache, **extra,
                             **kwargs)
            cache = out.cache if "cache" in out.keys() else out.past_key_values
            return Output(logits=out.logits, past_key_values=cache)

    old = OldInterface()
    assert _cache_kwarg(type(old).forward) == "past_key_values"
    cfg = SamplingConfig(k=3, temperature=1.0, max_new_tokens=8, stop_ids=(3,), pad_id=0)
    prompts = _prompts()[:3]
    a = sample_batch(inner, prompts, cfg, torch.Generator().manual_seed(2))
    b = sample_batch(old, prompts, cfg, torch.Generator().manual_seed(2))
    assert [[s.tokens for s in p] for p in a] == [[s.tokens for s in p] for p in b]
