"""rf-plugins: what is installed, as JSON."""

import click
import orjson

from rf_core.plugins import manager as plugins
from rf_core.commands.common import command, write_output

PROG = "rf-plugins"


@click.command(name=PROG)
@command(PROG)
def cli():
    """Print the installed plugins and the samplers, verifiers, trainers and datasets they
    register, as one JSON document."""
    data = orjson.dumps(plugins.describe(), option=orjson.OPT_INDENT_2 | orjson.OPT_APPEND_NEWLINE)
    write_output(data)


main = cli
