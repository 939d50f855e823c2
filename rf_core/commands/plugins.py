"""rf-plugins: what is installed, as JSON."""

import click
import orjson

from rf_core.plugins import manager as plugins
from rf_core.commands.errors import command
from rf_core.commands.output import write_output

PROG = "rf-plugins"


@click.command(name=PROG)
@click.option("--names", "kind", type=click.Choice(plugins.KINDS), default=None,
              help="Print only the names of the installed implementations of KIND, one a "
              "line (for scripts).")
@command(PROG)
def cli(kind):
    """Print the installed plugins and the samplers, verifiers, trainers, datasets and
    matchers they register (with each one's options, and each dataset's splits), as one JSON
    document."""
    if kind is not None:
        write_output("".join(f"{name}\n" for name in sorted(plugins.registry(kind))))
        return
    data = orjson.dumps(plugins.describe(), option=orjson.OPT_INDENT_2 | orjson.OPT_APPEND_NEWLINE)
    write_output(data)


main = cli
