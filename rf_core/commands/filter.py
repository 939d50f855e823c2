"""rf-filter: training examples from correct candidates."""

import click

from rf_core.commands.errors import command
from rf_core.commands.params import input_options
from rf_core.commands.pipe import Pipe
from rf_core.report.evaluate import scored_correct
from rf_core.train.examples import conversation_examples, rescued, self_examples
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
@click.option("--multi-turn", is_flag=True, help="Also write, for each correct candidate "
              "that rf-revise wrote, its whole conversation as one example (loss on the "
              "final answer only). Without it a revised candidate that is correct is an "
              "example for the task's original single-turn prompt, like any other.")
@click.option("--tasks", "select", type=click.Choice(["wrong", "right"]), default=None,
              help="Instead of examples, pass through the tasks whose scored answer (the "
              "vote, else the first candidate) is wrong (or right).")
@command(PROG)
def cli(input_file, skip_bad, max_bad, resample, max_per_task, multi_turn, select):
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
    tasks = covered = silent = saved = turns = 0
    for task in pipe.records():
        tasks += 1
        silent += sum(1 for c in task.get("candidates") or [] if c.get("unverifiable"))
        saved += rescued(task)
        examples = self_examples(task, resample=None if resample == "none" else resample,
                                 max_per_task=max_per_task)
        covered += bool(examples)
        if multi_turn:
            more = conversation_examples(task, max_per_task)
            turns += len(more)
            examples += more
        for ex in examples:
            pipe.write(ex)
    pipe.finish()
    pipe.note(f"{pipe.out.count} example(s) from {covered} of {tasks} task(s)"
              + (f" ({turns} multi-turn)" if multi_turn else "")
              + (f"; {saved} task(s) rescued by revision (no correct candidate before it)"
                 if saved else "")
              + (f"; {silent} unverifiable candidate(s) not selected" if silent else ""))


main = cli
