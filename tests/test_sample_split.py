"""The hf engine's KV budget holds for any k: a prompt whose k samples do not fit in one
batch has them split over several (``-k 100000`` on the tiny model grew past 13 GB)."""

from __future__ import annotations

import pytest

from conftest import make_task, run

MAX_NEW = 12


def tasks(db: str, n: int) -> list[dict]:
    questions = ["How many products are there?", "Which customers live in Paris?"]
    return [make_task(db, "SELECT 1", None, id=f"s/{i}", question=questions[i % 2])
            for i in range(n)]


@pytest.fixture
def batches(monkeypatch):
    """Each batch the engine runs: (rows, KV width = longest prompt + max_new_tokens)."""
    from rf_plugins.hf import engine

    seen = []
    real = engine._sample_batch

    def spy(model, prompts, cfg, *args, **kwargs):
        seen.append((len(prompts) * cfg.k, max(map(len, prompts)) + cfg.max_new_tokens))
        return real(model, prompts, cfg, *args, **kwargs)

    monkeypatch.setattr(engine, "_sample_batch", spy)
    return seen


def sample(model, inputs, k: int, budget: int, *args) -> list[dict]:
    r = run("rf-sample", ["--sampler", "hf", "--model", model, "--max-new-tokens", str(MAX_NEW),
                          "-k", str(k), "-o", "batch_tokens", str(budget), *args], input=inputs)
    assert r.code == 0, r.stderr
    return r.records


def answers(records: list[dict]) -> list[list[tuple]]:
    return [[(c["text"], c["n_tokens"], c["finished"]) for c in t["candidates"]]
            for t in records]


@pytest.mark.parametrize("k, n_tasks", [(7, 1), (20, 2)])
@pytest.mark.parametrize("budget_rows", [1, 3])
def test_k_beyond_the_budget_is_split_and_stays_within_it(tiny_model, shop_db, batches, k,
                                                          n_tasks, budget_rows):
    big = sample(tiny_model, tasks(shop_db, n_tasks), k, 1 << 20)
    width = max(w for _, w in batches)
    batches.clear()
    budget = max(64, budget_rows * width)  # room for budget_rows samples of the longest prompt
    small = sample(tiny_model, tasks(shop_db, n_tasks), k, budget)
    assert len(batches) > 1
    for rows, w in batches:
        assert rows * w <= budget or rows == 1, (rows, w, budget)
    assert sum(rows for rows, _ in batches) == k * n_tasks
    # greedy: the same candidates whatever the split
    assert answers(small) == answers(big)
    for a, b in zip(small, big):
        for x, y in zip(a["candidates"], b["candidates"]):
            assert abs(x["logprob"] - y["logprob"]) < 1e-3


def test_a_split_prompt_is_sampled_deterministically(tiny_model, shop_db, batches):
    """At temperature > 0 the hf engine draws from one random stream per run, in batch
    order: the same budget gives the same candidates, and every sample is there."""
    args = ("--temperature", "1.0", "--seed", "3")
    first = sample(tiny_model, tasks(shop_db, 1), 9, 64, *args)
    assert len(batches) > 1 and all(rows * w <= 64 or rows == 1 for rows, w in batches)
    again = sample(tiny_model, tasks(shop_db, 1), 9, 64, *args)
    assert answers(first) == answers(again)
    assert len(first[0]["candidates"]) == 9


def test_sample_chunks():
    from rf_plugins.hf.engine import sample_chunks

    assert sample_chunks(prompt_len=10, k=5, max_new_tokens=6, token_budget=1000) == [5]
    assert sample_chunks(prompt_len=10, k=5, max_new_tokens=6, token_budget=32) == [2, 2, 1]
    assert sample_chunks(prompt_len=10, k=5, max_new_tokens=6, token_budget=8) == [1] * 5
    assert sum(sample_chunks(100, 100_000, 256, 16_384)) == 100_000


def test_the_window_holds_a_bounded_number_of_samples():
    from rf_plugins.hf.engine import MAX_HELD_SAMPLES, window_for

    assert window_for(1024, 4) == 1024
    assert window_for(1024, 100_000) == max(1, MAX_HELD_SAMPLES // 100_000)
    assert window_for(1024, 10**9) == 1
