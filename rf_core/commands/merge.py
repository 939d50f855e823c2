"""rf-merge: the shard files of one `rf-sample --shard I/N` run, back in input order."""

import click

from rf_core.commands.errors import command
from rf_core.commands.pipe import Pipe
from rf_core.records.files import write_atomic
from rf_core.records.io import RecordWriter
from rf_core.records.shards import merge_files

PROG = "rf-merge"


@click.command(name=PROG)
@click.argument("shards", nargs=-1, required=True, metavar="SHARD...",
                type=click.Path(dir_okay=False))
@click.option("--order", type=click.Path(dir_okay=False), default=None, metavar="FILE",
              help="The input the shards were sampled from: its ids must be exactly the "
              "shards' tasks, position by position (catches a shard that lost its last tasks).")
@click.option("--output", "-o", type=click.Path(dir_okay=False), default=None, metavar="FILE",
              help="Write here (a temporary file renamed when complete) instead of stdout.")
@command(PROG)
def cli(shards, order, output):
    """Merge SHARD files (rf-sample --shard I/N outputs, given in any order) into one
    stream in input order, without their `shard` tags: what the unsharded run writes. Shards
    of another run, a task or shard missing or given twice: one line, exit 1, nothing
    written."""
    tasks = merge_files(shards, order, prog=PROG)
    if output is None:
        pipe = Pipe(PROG, None, kind=None)
        for task in tasks:
            pipe.write(task)
        pipe.finish()
        return
    with write_atomic(output) as tmp:
        with open(tmp, "wb") as stream:
            writer = RecordWriter(stream)
            for task in tasks:
                writer.write(task)
    click.echo(f"{PROG}: {len(tasks)} task(s) from {len(shards)} shard file(s) -> {output}",
               err=True)


main = cli
