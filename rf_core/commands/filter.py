"""rf-filter: training examples from correct candidates, or preference pairs."""

import click

from rf_core.commands.errors import command
from rf_core.commands.params import input_options
from rf_core.commands.pipe import Pipe
from rf_core.report.evaluate import scored_correct
from rf_core.train.examples import conversation_examples, rescued, self_examples
from rf_core.train.pairs import PairCounts, task_pairs
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
@click.option("--pairs", is_flag=True,
              help="Instead of examples, write `pair` records (preference pairs): a correct "
              "candidate (chosen) against a wrong one (rejected), from each task that has "
              "both. --resample applies to pairs as to examples: difficulty repeats each "
              "pair k - n_correct times, weight writes it once with that weight.")
@click.option("--max-pairs-per-task", type=click.IntRange(min=1), default=None,
              help="With --pairs: at most N pairs per task (default: every combination of "
              "a distinct correct and a distinct wrong SQL), distinct SQL on both sides "
              "before any answer repeats.")
@click.option("--rejected-by", type=click.Choice(["order", "logprob"]), default="order",
              show_default=True,
              help="With --pairs: which wrong answers come first; logprob: the ones the "
              "model found most likely (highest candidate logprob; those without one last).")
@click.option("--gold-chosen", is_flag=True,
              help="With --pairs: a task with no correct and some wrong candidates gives "
              "pairs with its gold SQL as chosen (source gold).")
@command(PROG)
def cli(input_file, skip_bad, max_bad, resample, max_per_task, multi_turn, select, pairs,
        max_pairs_per_task, rejected_by, gold_chosen):
    """Write one `example` per distinct correct candidate of each task (distinct by
    sqlglot-canonical SQL, else by whitespace-normalised text). Only `correct: true` is
    selected: a candidate that `rf-exec --for-training` found unverifiable (`correct: null`)
    never is.

    With --pairs, write one `pair` per (correct, wrong) combination of distinct SQL instead;
    a combination whose two sides are the same canonical SQL is dropped and counted, and a
    task with only right or only wrong answers gives none (counted, not an error)."""
    _check_modes(select, pairs, max_per_task, max_pairs_per_task, rejected_by, gold_chosen)
    if pairs and multi_turn:
        raise click.UsageError("--multi-turn is for examples; it cannot be combined with "
                               "--pairs")
    if pairs:
        _write_pairs(input_file, skip_bad, max_bad, resample, max_pairs_per_task, rejected_by,
                     gold_chosen)
        return
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
    _write_examples(pipe, resample, max_per_task, multi_turn)


def _write_examples(pipe: Pipe, resample: str, max_per_task: int | None,
                    multi_turn: bool) -> None:
    """rf-filter's examples: one line of counts at the end."""
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


def _check_modes(select, pairs, max_per_task, max_pairs_per_task, rejected_by,
                 gold_chosen) -> None:
    """Usage errors for options of one mode given in another."""
    if pairs and select:
        raise click.UsageError("--pairs and --tasks cannot be combined")
    if pairs and max_per_task is not None:
        raise click.UsageError("--max-per-task is for examples; with --pairs use "
                               "--max-pairs-per-task")
    if not pairs:
        given = [name for name, on in (("--max-pairs-per-task", max_pairs_per_task is not None),
                                       ("--rejected-by", rejected_by != "order"),
                                       ("--gold-chosen", gold_chosen)) if on]
        if given:
            raise click.UsageError(f"{given[0]} needs --pairs")


def _write_pairs(input_file, skip_bad, max_bad, resample, max_pairs, rejected_by,
                 gold_chosen) -> None:
    """rf-filter --pairs: one line of counts at the end."""
    pipe = Pipe(PROG, input_file, check=check_executed, skip_bad=skip_bad, max_bad=max_bad)
    counts = PairCounts()
    silent = 0
    for task in pipe.records():
        silent += sum(1 for c in task.get("candidates") or [] if c.get("unverifiable"))
        result = task_pairs(task, max_pairs=max_pairs, rejected_by=rejected_by,
                            gold_chosen=gold_chosen,
                            resample=None if resample == "none" else resample)
        counts.add(result)
        for pair in result.pairs:
            pipe.write(pair)
    pipe.finish()
    pipe.note(counts.summary()
              + (f"; {silent} unverifiable candidate(s) not selected" if silent else ""))


main = cli
