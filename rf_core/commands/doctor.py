"""rf-doctor: what a run will use on this machine, and what is missing, before it starts."""

import click
import orjson

from rf_core.model import environment
from rf_core.commands.errors import DataError, command
from rf_core.commands.output import binary_stdout
from rf_core.commands.params import FiniteFloat

PROG = "rf-doctor"


@click.command(name=PROG)
@click.option("--model", "-m", default=None,
              help="Model to plan for: folder or rf-model name (default: "
                   f"{environment.DEFAULT_MODEL} if cached, else a cached one).")
@click.option("--spider-root", default=None,
              help=f"Spider 1.0 folder (default: $RF_SPIDER_ROOT, else "
                   f"{environment.DEFAULT_SPIDER}).")
@click.option("--no-spider", is_flag=True, help="Spider is not needed (the demo data only).")
@click.option("--gpu-memory", type=FiniteFloat(min=1), default=None, metavar="GB",
              help="Plan rf-train for a GPU with GB free instead of the GPUs present.")
@click.option("--rank", "-r", type=click.IntRange(min=1), default=16, show_default=True,
              help="LoRA rank rf-train will use.")
@click.option("--dropout", type=FiniteFloat(0, 1), default=0.15, show_default=True,
              help="LoRA dropout rf-train will use.")
@click.option("--max-len", type=click.IntRange(min=8), default=2048, show_default=True,
              help="rf-train's --max-len (the longest example that must fit).")
@command(PROG)
def cli(model, spider_root, no_spider, gpu_memory, rank, dropout, max_len):
    """Print one JSON object on stdout and a readable table on stderr: Python, torch (CUDA or
    CPU build), each GPU's free and total memory, package versions, the engine `--sampler
    auto` picks and why, the attention implementation each sampler engine gets (a warning
    where cb would run paged|sdpa), rf-train's micro-batch budget and checkpointing decision
    for the model, and whether the model and Spider are there. Exits 1, naming what is
    missing, when something needed is not there."""
    info = environment.survey(model, spider_root or environment.default_spider_root(),
                              gpu_memory_gb=gpu_memory, rank=rank, dropout=dropout,
                              max_len=max_len, need_spider=not no_spider)
    binary_stdout().write(orjson.dumps(info, option=orjson.OPT_APPEND_NEWLINE))
    click.echo(environment.table(info), err=True)
    if info["missing"]:
        raise DataError(f"{PROG}: {len(info['missing'])} needed thing(s) missing (listed above)")


main = cli
