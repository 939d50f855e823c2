"""rf-eval: execution accuracy, pass@k, accuracy by hardness, error counts."""

from pathlib import Path

import click

from rf_core.cli import Pipe, command, input_options
from rf_core.errors import RFError
from rf_core.evaluate import Evaluation, markdown
from rf_core.tasks import check_executed

PROG = "rf-eval"


@click.command(name=PROG)
@input_options
@click.option("--markdown", "markdown_file", type=click.Path(dir_okay=False), default=None,
              help="Also write the report as a Markdown table to FILE.")
@click.option("--title", default="ReasonForge evaluation", help="Title of the Markdown report.")
@command(PROG)
def cli(input_file, skip_bad, max_bad, markdown_file, title):
    """Score executed tasks: the vote where a task has one, else its first candidate.
    Writes one JSON report line to stdout."""
    pipe = Pipe(PROG, input_file, check=check_executed, skip_bad=skip_bad, max_bad=max_bad)
    ev = Evaluation()
    for task in pipe.records():
        ev.add(task)
    pipe.finish()
    if ev.n_tasks == 0:
        raise RFError("no task records in the input")
    report = ev.report()
    pipe.write(report)
    if markdown_file:
        Path(markdown_file).write_text(markdown(report, title), encoding="utf-8")


main = cli
