"""rf-data: emit task records from a dataset plugin."""

import click

from rf_core import plugins
from rf_core.cli import Pipe, command

PROG = "rf-data"


@click.command(name=PROG)
@click.argument("dataset")
@click.option("--root", type=click.Path(file_okay=False), default=None,
              help="Dataset folder (spider: the Spider 1.0 folder; demo: where to build it).")
@click.option("--split", default="dev", show_default=True, help="Split, e.g. dev, train.")
@click.option("--limit", type=click.IntRange(min=0), default=None, help="At most N tasks.")
@click.option("--seed", type=int, default=None,
              help="With --limit: a fixed random sample of N tasks (same seed, same tasks).")
@click.option("--values", type=click.IntRange(min=0), default=3, show_default=True,
              help="Distinct sample values per column in the schema context.")
@command(PROG)
def cli(dataset, root, split, limit, seed, values):
    """Write one task record per question of DATASET (e.g. spider, demo) to stdout.

    Tasks whose database is missing are skipped with a stderr line and counted.
    """
    impl = plugins.get("datasets", dataset)
    pipe = Pipe(PROG, None)
    for task in impl.tasks(root=root, split=split, limit=limit, seed=seed, values=values,
                           report=pipe.note):
        pipe.write(task)
    pipe.note(f"{pipe.out.count} {dataset} {split} task(s) written")


main = cli
