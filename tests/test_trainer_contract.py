"""What every installed trainer does through rf-train on the tiny model: it trains on the
record kinds it declares (``accepts``), writes an adapter folder and a train_report that
validates; a kind it does not take stops rf-train with one line before anything loads."""

from __future__ import annotations

import pytest

from conftest import run
from rf_core.commands.train import TRAINING_KINDS, accepted_kinds
from rf_core.plugins import manager as plugins

MESSAGES = [{"role": "system", "content": "You write SQL."},
            {"role": "user", "content": "How many products are there?"}]
RECORDS = {
    "example": {"schema_version": 1, "kind": "example", "task_id": "t/0", "db_id": "shop",
                "messages": MESSAGES, "completion": "```sql\nSELECT count(*) FROM product\n```",
                "source": "gold", "weight": 1},
    "pair": {"schema_version": 1, "kind": "pair", "task_id": "t/0", "db_id": "shop",
             "messages": MESSAGES, "chosen": "```sql\nSELECT count(*) FROM product\n```",
             "rejected": "```sql\nSELECT * FROM product\n```", "source": "self", "weight": 1},
}


def trainers() -> list[str]:
    plugins.load_plugins()
    return sorted(plugins.registry("trainers"))


def test_the_built_in_trainers_are_here():
    assert {"peft", "dpo"} <= set(trainers())
    assert accepted_kinds(plugins.get("trainers", "peft")) == ("example",)
    assert set(accepted_kinds(plugins.get("trainers", "dpo"))) == {"example", "pair"}


@pytest.mark.parametrize("name", trainers())
def test_every_trainer_trains_what_it_accepts_and_reports(name, tiny_model, tmp_path,
                                                         validate):
    impl = plugins.get("trainers", name)
    kinds = accepted_kinds(impl)
    assert set(kinds) <= set(TRAINING_KINDS), f"{name} accepts unknown kinds {kinds}"
    records = [RECORDS[k] for k in kinds for _ in range(2)]
    r = run("rf-train", ["--trainer", name, "--base", tiny_model, "--out",
                         str(tmp_path / "a"), "--epochs", "1", "--batch-size", "2"],
            input=records)
    assert r.code == 0, r.stderr
    assert len(r.records) == 1
    report = r.records[0]
    validate(report)
    assert report["trainer"] == name and report["examples"] == len(records)
    assert (tmp_path / "a" / "adapter_config.json").is_file()
    refused = [k for k in TRAINING_KINDS if k not in kinds]
    if refused:
        r = run("rf-train", ["--trainer", name, "--base", "no-such-model", "--out",
                             str(tmp_path / "b")], input=[RECORDS[k] for k in refused])
        assert r.code == 1 and len(r.stderr.strip().splitlines()) == 1, r.stderr
        assert f"trainer {name!r} takes" in r.stderr and "--trainer" in r.stderr
