"""The cb sampler (transformers' continuous batching) on the tiny model, on the CPU: the same
greedy answers as the hf sampler, sampled answers fixed by the seed, a merged adapter, its
options and its errors."""

from __future__ import annotations


import pytest

from conftest import make_task, random_adapter, run, snapshot

pytest.importorskip("transformers")

QUESTIONS = ["How many products are there?", "Which customers live in Paris?",
             "What is the most expensive product?", "List every category.",
             "Which orders have more than two items?"]


@pytest.fixture(autouse=True)
def needs_continuous_batching():
    from rf_plugins.hf.continuous import available

    why = available()
    if why is not None:
        pytest.skip(why)


def tasks(db: str, n: int = 4) -> list[dict]:
    return [make_task(db, "SELECT 1", None, id=f"c/{i}", question=QUESTIONS[i % 5])
            for i in range(n)]


def sample(model, inputs, *args, code: int = 0):
    r = run("rf-sample", ["--model", model, "--max-new-tokens", "12", *args], input=inputs)
    assert r.code == code, r.stderr
    return r


def texts(records) -> list[list[str]]:
    return [[c["text"] for c in t["candidates"]] for t in records]


def test_greedy_candidates_match_the_hf_sampler(tiny_model, shop_db, validate):
    inputs = tasks(shop_db)
    hf = sample(tiny_model, inputs, "--sampler", "hf").records
    r = sample(tiny_model, inputs, "--sampler", "cb")
    validate(r.records)
    assert "tok/s" in r.stderr
    for a, b in zip(hf, r.records):
        assert a["messages"] == b["messages"]
        (x,), (y,) = a["candidates"], b["candidates"]
        assert y["sampler"] == "cb" and y["model"] == tiny_model
        assert (y["text"], y["sql"], y["n_tokens"], y["finished"]) == \
            (x["text"], x["sql"], x["n_tokens"], x["finished"])
        assert y["logprob"] == pytest.approx(x["logprob"], abs=1e-3)


def test_k_greedy_candidates_are_one_answer_k_times(tiny_model, shop_db):
    """transformers refuses k greedy forks; the sampler runs one and copies it."""
    inputs = tasks(shop_db, 2)
    one = sample(tiny_model, inputs, "--sampler", "cb").records
    three = sample(tiny_model, inputs, "--sampler", "cb", "-k", "3").records
    assert texts(three) == [t * 3 for t in texts(one)]


def test_sampled_candidates_are_fixed_by_the_seed(tiny_model, shop_db):
    inputs = tasks(shop_db, 3)
    args = ("--sampler", "cb", "-k", "4", "-t", "1.0", "--top-p", "0.95")
    a = sample(tiny_model, inputs, *args, "--seed", "3").records
    b = sample(tiny_model, inputs, *args, "--seed", "3").records
    c = sample(tiny_model, inputs, *args, "--seed", "4").records
    assert [len(t["candidates"]) for t in a] == [4, 4, 4]
    assert texts(a) == texts(b)
    assert texts(a) != texts(c)
    assert any(len(set(t)) > 1 for t in texts(a))  # k forks of one prefill, not k copies
    for t in a:
        for cand in t["candidates"]:
            # no seed reproduces one candidate of a window: --seed reproduces the run
            assert cand["sampler"] == "cb" and cand["seed"] is None and cand["n_tokens"] <= 12


def test_a_small_cache_and_chunked_prefill_change_nothing_greedy(tiny_model, shop_db):
    """Prompts (128 tokens) prefilled 24 tokens at a time into a cache of 20 16-token
    blocks, which holds two requests at once."""
    inputs = tasks(shop_db, 5)
    plain = sample(tiny_model, inputs, "--sampler", "cb").records
    small = sample(tiny_model, inputs, "--sampler", "cb", "-o", "block_size", "16",
                   "-o", "num_blocks", "20", "-o", "max_batch_tokens", "24",
                   "-o", "window", "2")
    assert texts(small.records) == texts(plain)


def test_an_adapter_is_merged_in_memory_and_its_folder_untouched(tiny_model, shop_db, tmp_path):
    adapter = random_adapter(tiny_model, tmp_path / "adapter")
    before = snapshot(adapter)
    inputs = tasks(shop_db, 3)
    merged = sample(tiny_model, inputs, "--sampler", "cb", "--adapter", str(adapter)).records
    with_hf = sample(tiny_model, inputs, "--sampler", "hf", "--adapter", str(adapter)).records
    plain = sample(tiny_model, inputs, "--sampler", "cb").records
    assert snapshot(adapter) == before
    assert merged[0]["candidates"][0]["adapter"] == str(adapter)
    assert texts(merged) == texts(with_hf)
    assert texts(merged) != texts(plain)


def test_a_cache_too_small_for_one_prompt_is_a_one_line_error(tiny_model, shop_db):
    r = sample(tiny_model, tasks(shop_db, 2), "--sampler", "cb", "-o", "block_size", "16",
               "-o", "num_blocks", "1", code=1)
    assert "Traceback" not in r.stderr and "ContinuousBatchingLogger" not in r.stderr
    last = r.stderr.strip().splitlines()[-1]
    assert last.startswith("Error: rf-sample: cb: ") and "raise -o num_blocks" in last


@pytest.mark.parametrize("option,message", [
    (("num_blocks", "0"), "option 'num_blocks' of sampler 'cb': 0 is below the minimum 1"),
    (("batch_tokens", "4096"), "sampler 'cb' has no option 'batch_tokens'; its options: "
                               "device, dtype, max_batch_tokens, num_blocks"),
    (("dtype", "int8"), "expected one of auto, bf16, fp16, fp32"),
])
def test_options_are_checked(shop_db, option, message):
    r = run("rf-sample", ["--sampler", "cb", "-m", "x", "-o", *option], input=tasks(shop_db, 1))
    assert r.code == 2 and message in r.stderr


def test_the_engine_function_groups_k_forks_per_prompt(tiny_model):
    """What a benchmark row calls: ``generate`` on a loaded model and token id prompts."""
    import torch
    from transformers import AutoModelForCausalLM

    from rf_plugins.hf.continuous import RunStats, generate

    model = AutoModelForCausalLM.from_pretrained(tiny_model, dtype=torch.float32)
    prompts = [[5, 6, 7, 8, 9] * 4, [10, 11, 12], [13, 14, 15, 16] * 8]
    stats = RunStats()
    out = generate(model, prompts, k=3, temperature=1.0, top_p=1.0, max_new_tokens=7,
                   stop_ids=[2], seed=1, stats=stats)
    assert [len(row) for row in out] == [3, 3, 3]
    for row in out:
        for cand in row:
            assert len(cand.tokens) + cand.finished <= 7 and 2 not in cand.tokens
            assert cand.logprob <= 0
    assert stats.sequences == 9 and stats.prompts == 3
    assert stats.new_tokens == sum(len(c.tokens) + c.finished for row in out for c in row)
    assert stats.engine["num_blocks"] and stats.engine["max_batch_tokens"]
    # greedy through the engine is plain generate's greedy, prompt by prompt
    again = generate(model, prompts, k=1, temperature=0.0, top_p=1.0, max_new_tokens=7,
                     stop_ids=[2], seed=0)
    for prompt, (cand,) in zip(prompts, again):
        ids = torch.tensor([prompt])
        with torch.inference_mode():
            ref = model.generate(ids, attention_mask=torch.ones_like(ids), do_sample=False,
                                 max_new_tokens=7, eos_token_id=2, pad_token_id=0)
        new = ref[0, len(prompt):].tolist()
        assert cand.tokens == (new[:new.index(2)] if 2 in new else new)
    assert model.config._attn_implementation == "sdpa"  # the engine gave back the model as it was
