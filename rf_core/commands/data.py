"""rf-data: emit task records from a dataset plugin."""

import click

from rf_core.plugins import manager as plugins
from rf_core.commands.errors import command
from rf_core.commands.params import Seed, check_utf8_path
from rf_core.commands.pipe import Pipe
from rf_core.commands.plugin_cli import plugin_command, plugin_kwargs, plugin_options
from rf_core.data.dataset import Exclusion, dataset_tasks
from rf_core.records.io import read_records

PROG = "rf-data"


def _utf8_root(ctx, param, value):
    """Task records carry database paths as text: a --root that is not UTF-8 is refused."""
    if value is not None:
        check_utf8_path(value, "--root")
    return value


@plugin_command(PROG, "datasets", "dataset")
@click.argument("dataset")
@click.option("--root", type=click.Path(file_okay=False), default=None, callback=_utf8_root,
              help="Dataset folder (spider: the Spider 1.0 folder; demo: where to build it).")
@click.option("--split", default="dev", show_default=True,
              help="Split: one the dataset declares (listed below), e.g. dev, train, all.")
@click.option("--limit", type=click.IntRange(min=0), default=None, help="At most N tasks.")
@click.option("--seed", type=Seed(), default=None,
              help="With --limit: a fixed random sample of N tasks (same seed, same tasks).")
@click.option("--values", type=click.IntRange(min=0), default=3, show_default=True,
              help="Distinct sample values per column in the schema context.")
@click.option("--exclude", "exclude_file", type=click.File("rb"), default=None,
              metavar="FILE", help="Leave out the tasks of FILE (task records, by id) "
              "before --limit/--seed pick: a sample disjoint from FILE's.")
@plugin_options
@command(PROG)
def cli(dataset, root, split, limit, seed, values, exclude_file, **params):
    """Write one task record per question of DATASET to stdout (the installed datasets and
    their splits are listed below).

    Tasks whose database is missing are skipped with a stderr line and counted. A
    pseudo-split such as `all` writes each task with the split it belongs to.
    """
    impl = plugins.get("datasets", dataset)
    options = plugin_kwargs(PROG, "dataset", dataset, impl, params)
    splits = plugins.splits_of(impl)
    if splits is not None and split not in splits:
        raise click.BadParameter(f"dataset {dataset!r} has no split {split!r}; its splits: "
                                 f"{', '.join(splits)}", param_hint="'--split'")
    pipe = Pipe(PROG, None)
    exclude = None
    if exclude_file is not None:
        ids = frozenset(t["id"] for t in read_records(exclude_file, prog=PROG, kind="task"))
        exclude = Exclusion(ids, exclude_file.name)
    tasks = dataset_tasks(impl, dataset, root=root, split=split, limit=limit, seed=seed,
                          values=values, report=pipe.note, options=options, exclude=exclude)
    for task in tasks:
        pipe.write(task)
    pipe.note(f"{pipe.out.count} {dataset} {split} task(s) written")


main = cli
