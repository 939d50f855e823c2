"""The hf sampler says what it is doing before its first batch ends (a first batch may take
many minutes on a loaded CPU), never prints a rate of 0 it did not measure, and writes the
one meaning of a candidate's `seed`: the seed that reproduces that candidate, null where no
seed alone does (every candidate of a batch comes from one random stream)."""

from __future__ import annotations

import re

import pytest

from conftest import make_task


def test_loading_and_batch_progress_come_before_the_first_batch_ends(tiny_model, shop_db,
                                                                     monkeypatch):
    import rf_plugins.hf as hf
    import rf_plugins.hf.engine as engine
    from rf_core.model.sampling import sample_tasks
    from rf_core.plugins import manager

    lines: list[str] = []
    real = engine.sample_batch

    def watched(*args, **kwargs):
        out = real(*args, **kwargs)
        lines.append("<batch ended>")
        return out

    monkeypatch.setattr(engine, "sample_batch", watched)
    monkeypatch.setattr(hf, "PROGRESS_EVERY_S", 0.0)  # every host check: no waiting in tests
    tasks = [make_task(shop_db, "SELECT 1", id=f"p/{i}", question=f"Question {i}?")
             for i in range(3)]
    out = list(sample_tasks(
        manager.get("samplers", "hf"), tasks, model=tiny_model, k=2, temperature=1.0, top_p=1.0, max_new_tokens=16, seed=5,
        report=lines.append, batch_tokens=64))  # a small budget: several batches
    assert [len(t["candidates"]) for t in out] == [2, 2, 2]
    first_end = lines.index("<batch ended>")
    before = lines[:first_end]
    assert before[0].startswith(f"hf: loading {tiny_model} (device auto, dtype auto)")
    assert before[1].startswith("hf: model loaded in ")
    from rf_core.model import onednn

    if onednn.available():  # on a CPU the weights are packed for oneDNN's kernels first
        assert re.fullmatch(r"hf: \d+ linear layers on oneDNN's packed fp32 kernels "
                            r"\(\d+\.\d s to pack\)", before.pop(2))
    assert re.fullmatch(r"batch 1/\d+: sampling \d+ prompt\(s\) x 2, up to 16 new tokens each",
                        before[2])
    assert any(re.fullmatch(r"batch 1/\d+: step \d+ of at most 16, \d+ of \d+ sequence\(s\) "
                            r"finished", line) for line in before[3:])
    assert not any(re.search(r"\b0 tok/s", line) for line in lines)
    assert any("tok/s" in line or "no tokens yet" in line for line in lines)


@pytest.mark.parametrize("tokens, seconds, text", [
    (240, 1260.0, "0.19 tok/s"),  # 21 minutes for a first batch: not "0 tok/s"
    (0, 5.0, "no tokens yet"), (5, 0.0, "no tokens yet"),
    (123456, 10.0, "12346 tok/s"), (37, 2.0, "18.5 tok/s"),
])
def test_rates_are_measured_or_not_shown(tokens, seconds, text):
    from rf_core.model.sampling import rate

    assert rate(tokens, seconds) == text


def test_candidate_seed_is_null_where_no_seed_reproduces_it(tiny_model, shop_db):
    from conftest import run

    r = run("rf-sample", ["--sampler", "hf", "-m", tiny_model, "-k", "2", "-t", "1.0",
                          "--max-new-tokens", "4", "--seed", "9"],
            input=[make_task(shop_db, "SELECT 1")])
    assert r.code == 0, r.stderr
    assert [c["seed"] for c in r.records[0]["candidates"]] == [None, None]
