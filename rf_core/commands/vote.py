"""rf-vote: self-consistency over executed candidates."""

import click

from rf_core.commands.errors import command
from rf_core.commands.params import input_options
from rf_core.commands.pipe import Pipe
from rf_core.report.vote import vote
from rf_core.exec.checks import check_votable

PROG = "rf-vote"


@click.command(name=PROG)
@input_options
@command(PROG)
def cli(input_file, skip_bad, max_bad):
    """Add `vote` to each task: the SQL whose execution result most candidates share
    (ties go to the earliest candidate); `vote.correct` is that candidate's verdict."""
    pipe = Pipe(PROG, input_file, check=check_votable, skip_bad=skip_bad, max_bad=max_bad)
    for task in pipe.records():
        task["vote"] = vote(task)
        pipe.write(task)
    pipe.finish()


main = cli
