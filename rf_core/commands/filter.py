"""rf-filter: training examples from correct candidates."""

import click

from rf_core.commands.errors import command
from rf_core.commands.params import input_options
from rf_core.commands.pipe import Pipe
from rf_core.report.evaluate import scored_correct
from rf_core.train.examples import self_examples
from rf_core.exec.checks import check_executed, check_scored

PROG = "rf-filter"


@click.command(name=PROG)
@input_options
@click.option("--resample", type=click.Choice(["none", "difficulty", "weight"]),
              default="none", show_default=True,
              help="difficulty: repeat each example k - n_correct times (at least once); "
              "weight: write it once with weight k - n_correct.")
@click.option("--max-per-task", type=click.IntRange(min=1), default=None,
              help="At most N distinct examples per task.")
@click.option("--tasks", "select", type=click.Choice(["wrong", "right"]), default=None,
              help="Instead of examples, pass through the tasks whose scored answer (the "
              "vote, else the first candidate) is wrong (or right).")
@command(PROG)
def cli(input_file, skip_bad, max_bad, resample, max_per_task, select):
    """Write one `example` per distinct correct candidate of each task (distinct by
    sqlglot-canonical SQL, else by whitespace-normalised text). Only `correct: true` is
    selected: a candidate that `rf-exec --for-training` found unverifiable (`correct: null`)
    never is."""
    # --tasks scores by the vote, so a vote over no executed candidate is refused
    pipe = Pipe(PROG, input_file, check=check_scored if select else check_executed,
                skip_bad=skip_bad, max_bad=max_bad)
    if select:
        kept = 0
        for task in pipe.records():
            if scored_correct(task) == (select == "right"):
                kept += 1
                pipe.write(task)
        pipe.finish()
        pipe.note(f"{kept} {select} task(s) kept")
        return
    tasks = covered = silent = 0
    for task in pipe.records():
        tasks += 1
        silent += sum(1 for c in task.get("candidates") or [] if c.get("unverifiable"))
        examples = self_examples(task, resample=None if resample == "none" else resample,
                                 max_per_task=max_per_task)
        covered += bool(examples)
        for ex in examples:
            pipe.write(ex)
    pipe.finish()
    pipe.note(f"{pipe.out.count} example(s) from {covered} of {tasks} task(s)"
              + (f"; {silent} unverifiable candidate(s) not selected" if silent else ""))


main = cli
