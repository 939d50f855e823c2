"""rf-revise through the real sampler engines: hf and cb on the tiny model, openai against a
fake server. The tiny model's answers are random text, so its candidates fail and are all
revised; what is checked is the pipeline, the conversation each engine is given and the
records, not the quality of a revision."""

from __future__ import annotations

import pytest

from conftest import make_task, run
from test_openai_sampler import server  # noqa: F401 - the fake OpenAI server fixture

QUESTIONS = ["How many products are there?", "Which customers live in Paris?",
             "What is the most expensive product?"]


def tasks(db: str) -> list[dict]:
    return [make_task(db, "SELECT count(*) FROM product", None, id=f"r/{i}", question=q)
            for i, q in enumerate(QUESTIONS)]


def pipeline(db: str, sampler: list[str], revise: list[str], validate) -> list[dict]:
    """rf-sample | rf-exec | rf-revise | rf-exec, checking each step's records."""
    sampled = run("rf-sample", [*sampler, "--max-new-tokens", "12"], input=tasks(db))
    assert sampled.code == 0, sampled.stderr
    executed = run("rf-exec", ["-j", "1"], input=sampled.records)
    revised = run("rf-revise", [*sampler, "--max-new-tokens", "12", "-j", "1", *revise],
                  input=executed.records)
    assert revised.code == 0, revised.stderr
    validate(revised.records)
    again = run("rf-exec", ["-j", "1"], input=revised.records)
    validate(again.records)
    return again.records


@pytest.mark.parametrize("engine", ["hf", "cb"])
def test_transformers_engines_revise(engine, tiny_model, shop_db, validate):
    pytest.importorskip("transformers")
    if engine == "cb":
        from rf_plugins.hf.continuous import available

        if (why := available()) is not None:
            pytest.skip(why)
    out = pipeline(shop_db, ["--sampler", engine, "--model", tiny_model],
                   ["--rounds", "2", "--until", "never"], validate)
    assert [t["id"] for t in out] == ["r/0", "r/1", "r/2"]
    for task in out:
        (cand,) = task["candidates"]
        assert cand["sampler"] == engine and "exec" in cand
        turns = cand["revision"]["turns"]
        assert [t["round"] for t in turns] == [1, 2]
        assert "exec" in turns[0] and "exec" not in turns[1]  # rf-exec ran before round 1
    report = run("rf-eval", [], input=out)
    assert report.code == 0, report.stderr
    rev = report.records[0]["revision"]
    assert rev["candidates_revised"] == 3
    assert [r["revised"] for r in rev["rounds"]] == [3, 3]


def test_conversations_that_pass_the_context_are_skipped(tiny_model, shop_db, tmp_path,
                                                         validate):
    pytest.importorskip("transformers")
    import json
    import shutil

    small = tmp_path / "small"
    shutil.copytree(tiny_model, small)
    config = json.loads((small / "config.json").read_text())
    config["max_position_embeddings"] = 160
    (small / "config.json").write_text(json.dumps(config))
    task = make_task(shop_db, None, ["SELECT nme FROM product"], question="How many?",
                     schema="CREATE TABLE product (id INTEGER PRIMARY KEY, name TEXT)")
    r = run("rf-revise", ["--sampler", "hf", "--model", str(small), "--max-new-tokens", "80"],
            input=[task])
    assert r.code == 0, r.stderr
    validate(r.records)
    (cand,) = r.records[0]["candidates"]
    assert cand["sql"] == "SELECT nme FROM product"
    assert "passes the model's context of 160" in cand["revision"]["skipped"]
    assert "1 skipped (too long)" in r.stderr


def test_openai_engine_sends_the_whole_conversation(server, shop_db, validate):  # noqa: F811
    task = make_task(shop_db, "SELECT 1", ["SELECT nme FROM product"], question="Q?")
    r = run("rf-revise", ["--sampler", "openai", "--model", "fake", "-o", "base_url",
                          server.url], input=[task], env={"OPENAI_API_KEY": None})
    assert r.code == 0, r.stderr
    validate(r.records)
    (body,) = [req["body"] for req in server.requests]
    roles = [m["role"] for m in body["messages"]]
    assert roles == ["system", "user", "assistant", "user"]
    assert body["messages"][2]["content"] == "```sql\nSELECT nme FROM product\n```"
    assert "no such column: nme" in body["messages"][3]["content"]
    assert body["n"] == 1 and body["temperature"] == 0
    (cand,) = r.records[0]["candidates"]
    assert cand["sampler"] == "openai" and cand["sql"].startswith("SELECT ")
    assert cand["revision"]["turns"][0]["sql"] == "SELECT nme FROM product"
