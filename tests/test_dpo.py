"""The dpo trainer on a tiny random model: it learns the preference, its beta -> 0 limit is
the SFT trainer's loss, it resumes to the same adapter, and its bad input is refused or
counted; rf-train's pair records and the trainers that refuse them."""

from __future__ import annotations

import math

import pytest

from conftest import jsonl, run
from train_resume import through_and_resumed

QUESTIONS = [
    ("How many products are there?", "SELECT count(*) FROM product", "SELECT * FROM product"),
    ("Which customers live in Paris?", "SELECT name FROM customer WHERE city = 'Paris'",
     "SELECT name FROM customer"),
    ("What is the most expensive product?",
     "SELECT name FROM product ORDER BY price DESC LIMIT 1", "SELECT name FROM product LIMIT 1"),
    ("List every category.", "SELECT DISTINCT category FROM product",
     "SELECT category FROM product")]
FAST = ["--lr", "1e-2", "-o", "rank", "16", "-o", "dropout", "0"]


def messages(question: str) -> list[dict]:
    return [{"role": "system", "content": "You write SQL."}, {"role": "user", "content": question}]


def pairs(n: int = 4, **extra) -> list[dict]:
    return [{"schema_version": 1, "kind": "pair", "task_id": f"t/{i}", "db_id": "shop",
             "messages": messages(q), "chosen": f"```sql\n{good}\n```",
             "rejected": f"```sql\n{bad}\n```", "source": "self", "weight": 1, **extra}
            for i, (q, good, bad) in enumerate(QUESTIONS[:n])]


def chosen_examples(prs: list[dict]) -> list[dict]:
    """The pairs' chosen answers as example records (what the SFT trainer trains on)."""
    return [{"schema_version": 1, "kind": "example", "task_id": p["task_id"],
             "db_id": p["db_id"], "messages": p["messages"], "completion": p["chosen"],
             "source": "self", "weight": p["weight"]} for p in prs]


def train(model, out, records, *args):
    return run("rf-train", ["--base", model, "--out", str(out), *args], input=records)


def margins(model_dir: str, adapter, prs: list[dict]) -> list[float]:
    """log p(chosen) - log p(rejected) of each pair's completion under the model (with the
    adapter, where given), computed here independently of the trainer."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from rf_core.api import encode_example, end_of_turn_id

    tok = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
    if adapter is not None:
        from peft import PeftModel

        model = PeftModel.from_pretrained(model, str(adapter))
    model.eval()
    eot = end_of_turn_id(tok)

    def logprob(msgs, completion):
        prompt, answer = encode_example(tok, msgs, completion, eot)
        ids = torch.tensor([prompt + answer])
        with torch.no_grad():
            logp = model(input_ids=ids).logits[0, :-1].float().log_softmax(-1)
        token_lp = logp.gather(1, ids[0, 1:, None])[:, 0]
        return float(token_lp[len(prompt) - 1:].sum())

    return [logprob(p["messages"], p["chosen"]) - logprob(p["messages"], p["rejected"])
            for p in prs]


def test_dpo_raises_the_margin_on_its_pairs_and_lowers_the_loss(tiny_model, tmp_path,
                                                                 validate):
    prs = pairs(4)
    r = train(tiny_model, tmp_path / "a", prs, "--trainer", "dpo", *FAST, "--batch-size", "2",
              "--epochs", "4")
    assert r.code == 0, r.stderr
    rep = r.records[0]
    validate(rep)
    assert rep["trainer"] == "dpo" and rep["objective"] == "dpo" and rep["steps"] == 8
    assert (rep["pairs"], rep["pairs_skipped_too_long"], rep["sft_examples"]) == (4, 0, 0)
    # the first step starts at the reference (LoRA's B is 0): margin 0, loss log 2
    assert rep["loss_curve"][0] == pytest.approx(math.log(2), abs=1e-4)
    assert rep["reward_margin_curve"][0] == pytest.approx(0, abs=1e-4)
    assert rep["loss_curve"][-1] < rep["loss_curve"][0] / 2
    assert rep["reward_margin"] > 0 and rep["reward_accuracy"] == 1.0
    assert rep["chosen_reward"] - rep["rejected_reward"] == pytest.approx(rep["reward_margin"],
                                                                         abs=1e-4)
    before = margins(tiny_model, None, prs)
    after = margins(tiny_model, tmp_path / "a", prs)
    assert all(a > b + 1 for a, b in zip(after, before)), (before, after)


def test_beta_to_zero_with_sft_weight_1_is_the_sft_trainers_loss_on_the_chosen(tiny_model,
                                                                               tmp_path):
    prs = pairs(4)
    common = [*FAST, "--batch-size", "2", "--epochs", "2"]
    sft = train(tiny_model, tmp_path / "sft", chosen_examples(prs), *common)
    assert sft.code == 0, sft.stderr
    expected = sft.records[0]["loss_curve"]
    # beta 0 is the limit itself (documented): log 2 plus the SFT loss, the same steps
    limit = train(tiny_model, tmp_path / "b0", prs, "--trainer", "dpo", *common,
                  "-o", "beta", "0", "-o", "sft_weight", "1")
    assert limit.code == 0, limit.stderr
    got = [x - math.log(2) for x in limit.records[0]["loss_curve"]]
    assert got == pytest.approx(expected, rel=1e-3, abs=1e-4)
    near = train(tiny_model, tmp_path / "b1", prs, "--trainer", "dpo", *common,
                 "-o", "beta", "1e-8", "-o", "sft_weight", "1")
    assert near.code == 0, near.stderr
    assert near.records[0]["loss_curve"][0] - math.log(2) == pytest.approx(expected[0],
                                                                          rel=1e-4)


def test_examples_alone_train_as_the_peft_trainer_does(tiny_model, tmp_path):
    exs = chosen_examples(pairs(4))
    common = [*FAST, "--batch-size", "2", "--epochs", "2"]
    peft = train(tiny_model, tmp_path / "p", exs, *common)
    dpo = train(tiny_model, tmp_path / "d", exs, "--trainer", "dpo", *common)
    assert peft.code == 0 and dpo.code == 0, dpo.stderr
    assert dpo.records[0]["loss_curve"] == pytest.approx(peft.records[0]["loss_curve"],
                                                         rel=1e-4, abs=1e-5)
    assert dpo.records[0]["pairs"] == 0 and dpo.records[0]["reward_margin"] is None


def test_mixed_examples_and_pairs_in_input_order(tiny_model, tmp_path, validate):
    prs = pairs(3)
    mixed = [prs[0], chosen_examples(pairs(4))[3], prs[1], prs[2]]
    r = train(tiny_model, tmp_path / "a", mixed, "--trainer", "dpo", *FAST, "--batch-size",
              "4", "--epochs", "2", "-o", "sft_weight", "0.5")
    assert r.code == 0, r.stderr
    rep = r.records[0]
    validate(rep)
    assert (rep["examples"], rep["pairs"], rep["sft_examples"]) == (4, 3, 1)
    assert rep["sft_weight"] == 0.5 and len(rep["reward_margin_curve"]) == 2


def _adapter_weights(folder):
    from safetensors.torch import load_file

    return load_file(str(folder / "adapter_model.safetensors"))


def test_resume_after_sigkill_gives_the_same_adapter(tiny_model, tmp_path):
    data = tmp_path / "pairs.jsonl"
    data.write_bytes(jsonl(pairs(4)))
    common = ["--base", tiny_model, "--trainer", "dpo", *FAST, "--batch-size", "2",
              "--epochs", "30", "-o", "save_every", "5", "-o", "sft_weight", "0.5", str(data)]
    expected, got = through_and_resumed(common, tmp_path)
    assert got["loss_curve"] == pytest.approx(expected["loss_curve"], rel=1e-4, abs=1e-5)
    assert got["reward_margin_curve"] == pytest.approx(expected["reward_margin_curve"],
                                                       rel=1e-4, abs=1e-5)
    a, b = _adapter_weights(tmp_path / "ref"), _adapter_weights(tmp_path / "run")
    assert a.keys() == b.keys()
    for name in a:
        assert (a[name] - b[name]).abs().max() <= 1e-5 * max(1.0, a[name].abs().max()), name


def test_the_peft_trainer_refuses_pairs_before_loading_anything(tmp_path):
    # --base names no model: the refusal comes before any model would load
    r = train("no-such-model", tmp_path / "a", chosen_examples(pairs(1)) + pairs(2))
    assert r.code == 1 and r.stdout == b""
    lines = r.stderr.strip().splitlines()
    assert lines == ["Error: rf-train: trainer 'peft' takes example records only, and the "
                     "input has 2 pair record(s): use --trainer dpo"], r.stderr
    assert not (tmp_path / "a").exists()


def test_bad_pairs_and_other_kinds_are_one_line(tmp_path):
    r = train("no-such-model", tmp_path / "a", [pairs(1)[0] | {"chosen": "  "}],
              "--trainer", "dpo")
    assert r.code == 1 and "Error: rf-train: line 1: 'chosen' is blank" in r.stderr
    r = train("no-such-model", tmp_path / "a", [pairs(1)[0] | {"weight": 0}],
              "--trainer", "dpo")
    assert r.code == 1 and "line 1: field weight" in r.stderr
    task = {"schema_version": 1, "kind": "task", "id": "t/0"}
    r = train("no-such-model", tmp_path / "a", [task], "--trainer", "dpo")
    assert r.code == 1
    assert "line 1: expected a 'example' or 'pair' record, got kind 'task'" in r.stderr
    r = train("no-such-model", tmp_path / "a", [], "--trainer", "dpo")
    assert r.code == 1 and "no example or pair records in the input" in r.stderr


@pytest.mark.parametrize("value", ["nan", "inf", "-inf", "-1"])
def test_a_beta_that_is_not_finite_or_is_negative_is_a_usage_error(value, tmp_path):
    r = train("no-such-model", tmp_path / "a", pairs(1), "--trainer", "dpo", "-o", "beta",
              value)
    assert r.code == 2 and r.stdout == b""
    errors = [ln for ln in r.stderr.splitlines() if ln.startswith("Error:")]
    assert len(errors) == 1 and "option 'beta'" in errors[0], r.stderr


def test_the_trainer_itself_refuses_a_non_finite_beta(tmp_path):
    from rf_core.api import UsageError
    from rf_plugins.dpo import DpoTrainer

    with pytest.raises(UsageError, match="option 'beta' of trainer 'dpo': expected a finite"):
        DpoTrainer().train(pairs(1), base="no-such-model", out=str(tmp_path / "a"),
                           beta=float("nan"))


def test_too_long_pairs_are_counted_by_database_and_can_stop_the_run(tiny_model, tmp_path,
                                                                     validate):
    long_sql = "```sql\nSELECT " + ", ".join(["price"] * 200) + "\n```"
    long = pairs(1)[0] | {"rejected": long_sql, "db_id": "store_1"}
    records = [long, long | {"db_id": "sakila_1"}] + pairs(3)
    r = train(tiny_model, tmp_path / "a", records, "--trainer", "dpo", *FAST, "--epochs", "1",
              "--max-len", "120")
    assert r.code == 0, r.stderr
    rep = r.records[0]
    validate(rep)
    assert rep["skipped_too_long"] == 2 and rep["pairs_skipped_too_long"] == 2
    assert rep["skipped_too_long_by_db"] == {"store_1": 1, "sakila_1": 1}
    assert rep["pairs"] == 3
    assert "pair 1 (task 't/0') has" in r.stderr
    assert "2 of 5 records (40.0%) are longer than --max-len 120" in r.stderr
    r = train(tiny_model, tmp_path / "b", records, "--trainer", "dpo", "--max-len", "120",
              "--max-too-long", "10")
    assert r.code == 1 and "more than the 10% allowed" in r.stderr
    assert not (tmp_path / "b").exists()


def test_a_model_whose_adapter_cannot_be_disabled_is_one_line():
    from rf_core.api import RFError
    from rf_plugins.dpo.objective import adapter_disabled

    class NoAdapter:
        pass

    class Refuses:
        def disable_adapter(self):
            raise ValueError("no adapter to disable")

    for model in (NoAdapter(), Refuses()):
        with pytest.raises(RFError, match="trainer 'dpo': the model's adapter cannot be "
                                          "disabled") as err:
            with adapter_disabled(model):
                pass
        assert "\n" not in str(err.value)


def test_the_memory_plan_holds_a_pair():
    from rf_plugins.dpo import DpoTrainer
    from rf_plugins.peft.trainer import PeftTrainer

    config = {"num_hidden_layers": 24, "hidden_size": 896, "intermediate_size": 4864,
              "num_attention_heads": 14, "num_key_value_heads": 2, "vocab_size": 151936,
              "tie_word_embeddings": True}
    free = 20 * 2**30
    dpo = DpoTrainer().memory_plan(config, free_bytes=free, max_len=2048)
    peft = PeftTrainer().memory_plan(config, free_bytes=free, max_len=4096)
    assert dpo == {**peft, "rows_per_pair": 2}
    assert DpoTrainer().memory_plan(config, free_bytes=None, max_len=2048)["device"] == "cpu"
