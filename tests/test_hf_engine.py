"""The hf engine's decode loop: no host syncs per step, the same tokens for a seed as
``torch.multinomial``, greedy output equal to ``generate``, attention without per-head copies
of keys and values, and a LoRA adapter merged in memory for sampling."""

from __future__ import annotations

import random
from collections import Counter
from contextlib import contextmanager

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from rf_plugins.hf import engine  # noqa: E402
from rf_plugins.hf.engine import SamplingConfig, sample_batch  # noqa: E402
from conftest import random_adapter, snapshot  # noqa: E402

# aten ops that make the host wait for a CUDA device (a value or a size read back). On a CPU
# nothing waits, but the ops are the same: the profiler sees them, nested ones included
# (torch.multinomial's checks of its input, the nonzero under a boolean index).
SYNCING = {"aten::_local_scalar_dense", "aten::nonzero", "aten::equal", "aten::unique",
           "aten::_unique2", "aten::unique_dim", "aten::unique_consecutive",
           "aten::masked_select"}


@contextmanager
def count_syncs():
    """Counts host syncs a CUDA run would have: syncing aten ops (outermost ones only), and
    device-to-host transfers made from Python (``.cpu()``, ``.tolist()``, ``.numpy()``),
    which on a CPU are no ops at all and so are counted by wrapping the methods."""
    from torch.profiler import ProfilerActivity, profile

    counts: Counter = Counter()
    saved = {}
    for name in ("cpu", "tolist", "numpy"):
        saved[name] = method = getattr(torch.Tensor, name)

        def wrapper(self, *args, _method=method, _name=name, **kwargs):
            counts[f"Tensor.{_name}"] += 1
            return _method(self, *args, **kwargs)

        setattr(torch.Tensor, name, wrapper)
    try:
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            yield counts
    finally:
        for name, method in saved.items():
            setattr(torch.Tensor, name, method)

    def outermost(event) -> bool:
        parent = event.cpu_parent
        while parent is not None:
            if parent.name in SYNCING:
                return False
            parent = parent.cpu_parent
        return True

    counts.update(e.name for e in prof.events() if e.name in SYNCING and outermost(e))


def total(counts: Counter) -> int:
    return sum(counts.values())


def _prompts():
    rnd = random.Random(1)
    schema_a = [rnd.randrange(4, 200) for _ in range(40)]
    question = lambda n: [rnd.randrange(4, 200) for _ in range(n)]  # noqa: E731
    return [schema_a + question(5), question(9), schema_a + question(12), question(3)]


@pytest.fixture(scope="module")
def tiny(tiny_model):
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(tiny_model, dtype=torch.float32).eval()


# -- (a) sampling and syncs --------------------------------------------------------------------


def test_the_sync_counter_sees_what_the_old_loop_did():
    """The proxy is sound for the patterns the decode loop used to have."""
    probs = torch.softmax(torch.randn(4, 50), -1)
    lengths, rows = torch.zeros(4, dtype=torch.long), torch.arange(4)
    hit = torch.tensor([True, False, True, False])
    for op in (lambda: torch.multinomial(probs, 1),
               lambda: lengths.__setitem__(rows[hit], 3),
               lambda: int(hit.sum()),
               lambda: hit.any() and None,
               lambda: hit.tolist()):
        with count_syncs() as counts:
            op()
        assert total(counts) >= 1
    with count_syncs() as counts:  # what the loop does now
        race = torch.empty_like(probs).exponential_(1)
        tok = (probs / race).argmax(-1)
        lengths.index_copy_(0, rows, torch.where(hit, 3, lengths.index_select(0, rows)))
        (tok.unsqueeze(-1) == torch.tensor([3, 7])).any(-1)
    assert total(counts) == 0


@pytest.mark.parametrize("top_p", [1.0, 0.8])
def test_sampling_gives_multinomials_tokens_for_a_seed(top_p):
    """The exponential race is the draw torch.multinomial(probs, 1) makes: the same tokens,
    and the generator left in the same state."""
    cfg = SamplingConfig(temperature=0.7, top_p=top_p)
    ours, theirs = torch.Generator().manual_seed(11), torch.Generator().manual_seed(11)
    for i in range(40):
        logits = torch.randn(6, 300, generator=torch.Generator().manual_seed(i)) * 4
        tok, lp = engine._sample_next(logits, cfg, ours)
        probs = torch.softmax(logits / cfg.temperature, -1)
        if top_p < 1.0:
            sorted_p, order = probs.sort(dim=-1, descending=True)
            sorted_p = sorted_p * (sorted_p.cumsum(-1) - sorted_p < top_p)
            probs = torch.zeros_like(probs).scatter_(-1, order, sorted_p)
        assert torch.equal(tok, torch.multinomial(probs, 1, generator=theirs).squeeze(-1))
        assert torch.equal(lp, torch.log_softmax(logits, -1).gather(-1, tok[:, None])[:, 0])
    assert torch.equal(ours.get_state(), theirs.get_state())


def _unpadded():
    """Prompts of one length: no row needs a mask."""
    return [p[:9] for p in _prompts()]


@pytest.mark.parametrize("temperature,top_p,padded", [(0.0, 1.0, True), (1.0, 0.9, True),
                                                      (1.0, 1.0, False)])
def test_decode_steps_do_not_sync(tiny, monkeypatch, temperature, top_p, padded):
    """More decode steps add no syncing op; the host looks once every check_every steps."""
    looks = []
    host_look = engine._host_look
    monkeypatch.setattr(engine, "_host_look", lambda done: looks.append(1) or host_look(done))
    prompts = _prompts() if padded else _unpadded()
    seen = {}
    for steps in (5, 13):
        looks.clear()
        cfg = SamplingConfig(k=3, temperature=temperature, top_p=top_p, max_new_tokens=steps,
                             stop_ids=(), pad_id=0, check_every=4)  # no stops: all steps run
        with count_syncs() as counts:
            sample_batch(tiny, prompts, cfg, torch.Generator().manual_seed(1))
        assert len(looks) == (steps - 1) // 4
        seen[steps] = counts
    # eight more steps: two more looks (one transfer each), nothing else
    assert seen[13] - seen[5] == Counter({"Tensor.tolist": 2})
    assert seen[13]["aten::nonzero"] == 0


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="CUDA's sync debug mode needs a GPU")
def test_decode_steps_do_not_sync_on_cuda(tiny_model):
    """The same on a GPU, counted by CUDA itself: eight more steps, two more syncs (the looks)."""
    import warnings

    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(tiny_model, dtype=torch.float32).cuda().eval()
    syncs = {}
    for steps in (5, 13):
        cfg = SamplingConfig(k=3, temperature=1.0, max_new_tokens=steps, stop_ids=(), pad_id=0)
        gen = torch.Generator(device="cuda").manual_seed(1)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            torch.cuda.set_sync_debug_mode("warn")
            try:
                sample_batch(model, _prompts(), cfg, gen)
            finally:
                torch.cuda.set_sync_debug_mode("default")
        syncs[steps] = sum("synchroniz" in str(w.message) for w in caught)
    assert syncs[13] - syncs[5] == 2


def test_finished_rows_are_dropped_without_syncs(tiny, monkeypatch):
    """With stops that end rows early (compaction), the loop still syncs only at its looks."""
    prompts = _prompts()
    stops = tuple(range(4, 400, 9))  # about one token in nine stops a row
    looks = []
    host_look = engine._host_look
    monkeypatch.setattr(engine, "_host_look", lambda done: looks.append(1) or host_look(done))
    cfg = SamplingConfig(k=4, temperature=1.0, max_new_tokens=24, stop_ids=stops, pad_id=0,
                         check_every=2)
    with count_syncs() as counts:
        out = sample_batch(tiny, prompts, cfg, torch.Generator().manual_seed(3))
    lengths = [len(s.tokens) for p in out for s in p]
    assert any(s.finished for p in out for s in p) and max(lengths) > min(lengths)
    for p in out:
        for s in p:
            assert not set(s.tokens) & set(stops)
    assert counts["aten::nonzero"] == 0
    # per sample afterwards: the tokens' .tolist() and int/float/bool of three host values
    assert total(counts) - len(looks) <= 4 * len(lengths) + 40


# -- greedy output -----------------------------------------------------------------------------


def _generate(model, prompt: list[int], n: int, stops) -> list[int]:
    ids = torch.tensor([prompt])
    with torch.inference_mode():
        out = model.generate(ids, attention_mask=torch.ones_like(ids), do_sample=False,
                             max_new_tokens=n, eos_token_id=list(stops), pad_token_id=0)
    new = out[0, len(prompt):].tolist()
    for i, t in enumerate(new):
        if t in stops:
            return new[:i]
    return new


@pytest.mark.parametrize("padded", [True, False])
def test_greedy_equals_generate_on_the_tiny_model(tiny, padded):
    prompts = _prompts() if padded else _unpadded()
    stops = (3, 17, 40, 99, 150)
    for share in (0.5, 2.0):
        cfg = SamplingConfig(k=2, max_new_tokens=16, stop_ids=stops, pad_id=0, share_at=share,
                             check_every=2)
        out = sample_batch(tiny, prompts, cfg, None)
        for prompt, samples in zip(prompts, out):
            ref = _generate(tiny, prompt, 16, stops)
            assert [s.tokens for s in samples] == [ref, ref]


def test_greedy_equals_generate_on_smollm2():
    from rf_core.model.loading import model_dir

    folder = model_dir("smollm2-135m") / "hf"
    if not (folder / "config.json").is_file():
        pytest.skip("smollm2-135m is not fetched (rf-model fetch smollm2-135m)")
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from rf_core.model.chat import encode_prompt
    from rf_core.model.loading import end_of_turn_ids

    tok = AutoTokenizer.from_pretrained(folder)
    model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32).eval()
    schema = ("CREATE TABLE singer (singer_id INTEGER PRIMARY KEY, name TEXT, country TEXT, "
              "age INTEGER);\nCREATE TABLE concert (concert_id INTEGER PRIMARY KEY, "
              "concert_name TEXT, year INTEGER, stadium_id INTEGER);")
    questions = ["How many singers do we have?", "What are the names of singers from France "
                 "older than 30?", "List every concert held in 2014, newest first."]
    prompts = [encode_prompt(tok, [
        {"role": "system", "content": "Write one SQLite query. Reply with SQL only."},
        {"role": "user", "content": f"{schema}\n\nQuestion: {q}"}]) for q in questions]
    stops = tuple(end_of_turn_ids(tok))
    cfg = SamplingConfig(k=1, max_new_tokens=20, stop_ids=stops, pad_id=tok.pad_token_id or 0)
    out = sample_batch(model, prompts, cfg, None)
    for prompt, samples in zip(prompts, out):
        assert samples[0].tokens == _generate(model, prompt, 20, stops)


# -- (b) attention -------------------------------------------------------------------------------


def test_gqa_attention_equals_repeated_heads_under_a_mask():
    from types import SimpleNamespace

    gen = torch.Generator().manual_seed(0)
    b, hq, hkv, n, d = 5, 12, 2, 37, 16
    q = torch.randn(b, hq, 1, d, generator=gen)
    k, v = torch.randn(b, hkv, n, d, generator=gen), torch.randn(b, hkv, n, d, generator=gen)
    mask = torch.ones(b, 1, 1, n, dtype=torch.bool)
    mask[0, ..., :20] = False
    mask[3, ..., :5] = False
    module = SimpleNamespace(num_key_value_groups=hq // hkv, is_causal=True)
    out, _ = engine._gqa_sdpa(module, q, k, v, mask)
    rep = lambda x: x.repeat_interleave(hq // hkv, dim=1)  # noqa: E731
    ref = torch.nn.functional.scaled_dot_product_attention(q, rep(k), rep(v), attn_mask=mask)
    assert out.shape == (b, 1, hq, d)
    torch.testing.assert_close(out, ref.transpose(1, 2), rtol=1e-5, atol=1e-6)


def test_decode_steps_run_the_gqa_attention(tiny, monkeypatch):
    """Every layer of every decode step goes through _gqa_sdpa with one query token; the
    model's attention setting is restored afterwards."""
    calls = Counter()
    gqa = engine._gqa_sdpa

    def counting(module, query, *args, **kwargs):
        calls[query.shape[2] == 1] += 1
        return gqa(module, query, *args, **kwargs)

    monkeypatch.setattr(engine, "_gqa_sdpa", counting)
    before = tiny.config._attn_implementation
    cfg = SamplingConfig(k=2, max_new_tokens=6, stop_ids=(), pad_id=0, share_at=2.0)
    sample_batch(tiny, _prompts(), cfg, None)
    assert tiny.config._attn_implementation == before == "sdpa"
    layers = tiny.config.num_hidden_layers
    assert calls[True] == 5 * layers and calls[False] == layers  # 5 steps; one prefill


# -- (d) the cache -------------------------------------------------------------------------------


def test_decode_steps_write_the_cache_in_place(tiny, monkeypatch):
    """A step appends its keys and values into reserved room: of the concatenations a step
    runs, the two per layer that copied the whole cache are gone."""
    from torch.profiler import ProfilerActivity, profile

    def cats_per_8_steps() -> int:
        cats = {}
        for steps in (5, 13):
            cfg = SamplingConfig(k=3, temperature=1.0, max_new_tokens=steps, stop_ids=(),
                                 pad_id=0)
            with profile(activities=[ProfilerActivity.CPU]) as prof:
                sample_batch(tiny, _prompts(), cfg, torch.Generator().manual_seed(1))
            cats[steps] = sum(e.name == "aten::cat" for e in prof.events())
        return cats[13] - cats[5]

    reserved = cats_per_8_steps()
    monkeypatch.setattr(engine, "_reserve",
                        lambda cache, repeats, room: cache.batch_repeat_interleave(repeats))
    growing = cats_per_8_steps()
    assert growing - reserved == 8 * 2 * tiny.config.num_hidden_layers


def test_reserved_cache_rows_are_repeated_selected_and_outgrown(tiny):
    from transformers import DynamicCache

    torch.manual_seed(0)
    keys = [torch.randn(2, 2, 5, 16) for _ in range(4)]
    cache = DynamicCache()
    for i in range(2):
        cache.update(keys[2 * i], keys[2 * i + 1], i)
    engine._reserve(cache, 3, 2)
    layer = cache.layers[0]
    assert type(layer).__name__ == "ReservedLayer"
    assert torch.equal(layer.keys, keys[0].repeat_interleave(3, 0))
    new = torch.randn(6, 2, 1, 16)
    k, v = cache.update(new, new + 1, 0)
    assert k.shape == (6, 2, 6, 16) and k.data_ptr() == layer.room[0].data_ptr()
    assert torch.equal(k[:, :, -1:], new)
    assert torch.equal(v[:, :, :5], keys[1].repeat_interleave(3, 0))
    cache.batch_select_indices(torch.tensor([0, 4]))
    assert layer.keys.shape == (2, 2, 6, 16) and torch.equal(layer.keys[1, :, -1:], new[4])
    cache.update(new[:2], new[:2], 0)
    assert type(layer).__name__ == "ReservedLayer"  # room for 2: full now
    k, _ = cache.update(new[:2], new[:2], 0)  # out of room: an ordinary layer again
    assert type(layer).__name__ == "DynamicLayer" and k.shape == (2, 2, 8, 16)
    assert torch.equal(k[:, :, -2:], torch.cat([new[:2], new[:2]], dim=-2))


# -- (c) adapters --------------------------------------------------------------------------------


def test_merged_adapter_gives_the_unmerged_greedy_output(tiny_model, tmp_path):
    pytest.importorskip("peft")
    from rf_core.model.loading import load, merge_adapter

    adapter = random_adapter(tiny_model, tmp_path / "adapter")
    before = snapshot(adapter)
    _, unmerged = load(tiny_model, adapter=str(adapter))
    _, plain = load(tiny_model)
    _, merged = load(tiny_model, adapter=str(adapter))
    merged = merge_adapter(merged)
    assert not hasattr(merged, "peft_config") and hasattr(unmerged, "peft_config")
    prompts = _prompts()
    cfg = SamplingConfig(k=1, max_new_tokens=16, stop_ids=(3,), pad_id=0)
    a = [s[0].tokens for s in sample_batch(unmerged, prompts, cfg, None)]
    b = [s[0].tokens for s in sample_batch(merged, prompts, cfg, None)]
    c = [s[0].tokens for s in sample_batch(plain, prompts, cfg, None)]
    assert a == b and a != c
    assert snapshot(adapter) == before  # merging never writes the adapter folder


def test_hf_sampler_samples_with_the_adapter_merged(tiny_model, tmp_path, monkeypatch):
    pytest.importorskip("peft")
    from rf_core.model.loading import load
    from rf_core.model.sampling import sample_tasks
    from rf_plugins.hf import HFSampler

    adapter = random_adapter(tiny_model, tmp_path / "adapter")
    before = snapshot(adapter)
    models = []
    real = engine.sample_batch
    monkeypatch.setattr(engine, "sample_batch",
                        lambda model, *a, **kw: models.append(model) or real(model, *a, **kw))
    task = {"id": "t/0", "db_id": "shop", "question": "How many products are there?",
            "schema": "CREATE TABLE product (id INTEGER PRIMARY KEY, name TEXT)"}
    out = list(sample_tasks(HFSampler(), [task], model=tiny_model, adapter=str(adapter),
                            max_new_tokens=12, report=lambda m: None))
    assert models and all(not hasattr(m, "peft_config") for m in models)
    assert snapshot(adapter) == before
    # the same text as the unmerged adapter gives
    from rf_core.api import encode_prompt, end_of_turn_ids

    tok, unmerged = load(tiny_model, adapter=str(adapter))
    prompt = encode_prompt(tok, out[0]["messages"])
    cfg = SamplingConfig(k=1, max_new_tokens=12, stop_ids=tuple(end_of_turn_ids(tok)),
                         pad_id=tok.pad_token_id)
    ref = real(unmerged, [prompt], cfg, None)[0][0].tokens
    assert out[0]["candidates"][0]["text"] == tok.decode(ref, skip_special_tokens=True)
