"""A third-party sampler plugin as the README's plugin section teaches it: no model, it
answers every task with the task's gold SQL or with every row of one table, and declares two
options of its own."""

from rf_core.api import Option, attach, hookimpl, task_messages


class FixedSampler:
    name = "fixed"
    options = (
        Option("answer", str, "gold", "What to answer: the task's gold SQL, or every row of "
               "`table`.", choices=("gold", "table")),
        Option("table", str, "sqlite_master", "The table answered when answer=table."),
    )

    def sample(self, tasks, *, model, adapter, k, temperature, seed, report, answer, table,
               **options):
        n = 0
        for task in tasks:
            sql = task.get("gold_sql") if answer == "gold" else f"SELECT * FROM {table}"
            text = f"```sql\n{sql}\n```"
            answers = [{"text": text, "logprob": None, "n_tokens": None, "finished": True}] * k
            yield attach(task, task_messages(task), answers, sampler=self.name, model=model,
                         adapter=adapter, temperature=temperature, seed=None)
            n += 1
        report(f"fixed: answered {n} task(s) with {answer}")


@hookimpl
def register_samplers(register):
    register(FixedSampler())
