"""rf-inject: gold-SQL examples for tasks no candidate got right."""

import click

from rf_core.commands.errors import command
from rf_core.commands.params import input_options
from rf_core.commands.pipe import Pipe
from rf_core.train.examples import gold_examples
from rf_core.exec.checks import check_executed

PROG = "rf-inject"


def _copies(value: str):
    if value == "difficulty":
        return value
    try:
        n = int(value)
    except ValueError:
        raise click.BadParameter("an integer >= 1 or 'difficulty'") from None
    if n < 1:
        raise click.BadParameter("an integer >= 1 or 'difficulty'")
    return n


@click.command(name=PROG)
@input_options
@click.option("--copies", default="1", show_default=True, callback=lambda c, p, v: _copies(v),
              help="Copies per task: N, or 'difficulty' for k copies (k = candidates).")
@command(PROG)
def cli(input_file, skip_bad, max_bad, copies):
    """Write `example` records with the gold SQL for tasks with 0/k correct candidates
    (tasks with no candidates too; a candidate whose `correct` is null, such as one
    `rf-exec --for-training` found unverifiable, is not correct). Tasks whose gold query
    failed are skipped, with a note."""
    pipe = Pipe(PROG, input_file, check=check_executed, skip_bad=skip_bad, max_bad=max_bad)
    injected = silent = 0
    for task in pipe.records():
        gold = task.get("gold_exec")
        if gold is not None and not gold.get("ok"):
            pipe.note(f"task {task.get('id')!r}: gold query failed; nothing injected")
            continue
        if not task.get("gold_sql"):
            pipe.note(f"task {task.get('id')!r}: no gold SQL; nothing injected")
            continue
        examples = gold_examples(task, copies)
        injected += bool(examples)
        silent += bool(examples) and any(c.get("unverifiable") for c in task.get("candidates")
                                         or [])
        for ex in examples:
            pipe.write(ex)
    pipe.finish()
    pipe.note(f"{pipe.out.count} gold example(s) for {injected} task(s)"
              + (f", {silent} of them because their agreeing candidates were unverifiable"
                 if silent else ""))


main = cli
