"""Model-free stand-ins for the loop's tests of --objective: a trainer named "dpo" that takes
`pair` and `example` records as rf-train hands them over (one list) and writes what it got
into its adapter folder, a trainer "fake-sft" for the SFT rows, and a sampler "fake-mixed"
whose every task has right and wrong answers (so rf-filter --pairs has pairs to write)."""

import json
from collections import Counter
from pathlib import Path

from rf_core.api import Option, attach, hookimpl, task_messages


def _adapter(out: str, base: str, name: str, records: list) -> dict:
    folder = Path(out)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "adapter_config.json").write_text(json.dumps({"base": base}))
    kinds = Counter(rec.get("kind") for rec in records)
    (folder / "records.json").write_text(json.dumps({"kinds": kinds, "records": records}))
    return {"path": out, "base": base, "trainer": name, "examples": len(records),
            "tokens": 0, "steps": 1, "skipped_steps": 0, "loss_curve": [0.7, 0.6],
            "wall_s": 0.0, "tokens_per_s": 0.0, "kinds": dict(kinds)}


class FakeDpo:
    name = "dpo"
    accepts = ("pair", "example")
    options = (Option("beta", float, 0.1, "The DPO temperature.", minimum=0),
               Option("sft_weight", float, 0.0, "Weight of the SFT term.", minimum=0))

    def train(self, examples, *, base, out, beta, sft_weight, **kwargs):
        return {**_adapter(out, base, self.name, examples), "beta": beta,
                "sft_weight": sft_weight}


class FakeSft:
    name = "fake-sft"
    options = ()

    def train(self, examples, *, base, out, **kwargs):
        if any(rec.get("kind") != "example" for rec in examples):
            raise ValueError("an SFT trainer got a record that is not an example")
        return _adapter(out, base, self.name, examples)


class FakeMixed:
    """Answer i of k: the gold SQL when i is even, else a query that fails (a wrong answer)
    with logprob -i, so the later wrong answers are the less likely ones."""

    name = "fake-mixed"
    options = ()

    def sample(self, tasks, *, model, adapter, k, temperature, seed, report, **options):
        for task in tasks:
            answers = []
            for i in range(k):
                sql = task.get("gold_sql") if i % 2 == 0 else f"SELECT * FROM missing_{i}"
                answers.append({"text": f"```sql\n{sql}\n```", "logprob": -float(i),
                                "n_tokens": None, "finished": True})
            yield attach(task, task_messages(task), answers, sampler=self.name, model=model,
                         adapter=adapter, temperature=temperature, seed=None)


@hookimpl
def register_trainers(register):
    register(FakeDpo())
    register(FakeSft())


@hookimpl
def register_samplers(register):
    register(FakeMixed())
