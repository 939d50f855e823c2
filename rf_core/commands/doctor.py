"""rf-doctor: what a run will use on this machine, and what is missing, before it starts."""

from __future__ import annotations

from typing import Any

import click
import orjson

from rf_core.model import environment
from rf_core.commands.errors import DataError, command
from rf_core.commands.output import binary_stdout
from rf_core.commands.params import FiniteFloat
from rf_core.commands.plugin_cli import plugin_command, plugin_kwargs, plugin_options
from rf_core.plugins import auto, manager as plugins
from rf_core.plugins.options import declared
from rf_core.train.defaults import TRAIN_DEFAULTS

PROG = "rf-doctor"


def trainer_plan(name: str, impl: Any, max_len: int,
                 options: dict) -> environment.TrainPlan | None:
    """The survey's memory plan from the trainer ``impl``'s optional ``memory_plan`` (see
    rf_core.api.Trainer), with rf-train's --max-len and the trainer's options; None when the
    trainer offers none."""
    method = getattr(impl, "memory_plan", None)
    if method is None:
        return None

    def plan(config: dict, free_bytes: int | None) -> dict:
        """The trainer's plan, with the --max-len and the trainer it was made for."""
        result = method(config, free_bytes=free_bytes, max_len=max_len, **options)
        return {**result, "max_len": max_len, "trainer": name}

    return plan


@plugin_command(PROG, "trainers", "--trainer")
@click.option("--model", "-m", default=None,
              help="Model to plan for: folder or rf-model name (default: "
                   f"{environment.DEFAULT_MODEL} if cached, else a cached one).")
@click.option("--spider-root", default=None,
              help=f"Spider 1.0 folder (default: $RF_SPIDER_ROOT, else "
                   f"{environment.DEFAULT_SPIDER}).")
@click.option("--no-spider", is_flag=True, help="Spider is not needed (the demo data only).")
@click.option("--gpu-memory", type=FiniteFloat(min=1), default=None, metavar="GB",
              help="Plan rf-train for a GPU with GB free instead of the GPUs present.")
@click.option("--trainer", default="peft", show_default=True,
              help="The trainer plugin whose memory plan to show (rf-train's --trainer); "
                   "its options are -o NAME VALUE, as rf-train takes them.")
@click.option("--max-len", type=click.IntRange(min=8), default=TRAIN_DEFAULTS.max_len,
              show_default=True,
              help="rf-train's --max-len (the longest example that must fit).")
@plugin_options
@command(PROG)
def cli(model, spider_root, no_spider, gpu_memory, trainer, max_len, **params):
    """Print one JSON object on stdout and a readable table on stderr: Python, torch (CUDA or
    CPU build), each GPU's free and total memory, package versions, the engine `--sampler
    auto` picks and why, the attention implementation each sampler engine gets (a warning
    where cb would run paged|sdpa), the trainer's micro-batch budget and checkpointing
    decision for the model (where the trainer offers a memory plan), and whether the model
    and Spider are there. Exits 1, naming what is missing, when something needed is not
    there."""
    impl = plugins.get("trainers", trainer)
    options = plugin_kwargs(PROG, "trainer", trainer, impl, params)
    plan = trainer_plan(trainer, impl, max_len, options)
    info = environment.survey(model, spider_root or environment.default_spider_root(),
                              gpu_memory_gb=gpu_memory, plan=plan, need_spider=not no_spider,
                              auto=auto.probe())
    if plan is None:
        info["warnings"].append(f"trainer {trainer!r} offers no memory plan")
    binary_stdout().write(orjson.dumps(info, option=orjson.OPT_APPEND_NEWLINE))
    click.echo(environment.table(info, [o.name for o in declared(impl)], auto.rule()),
               err=True)
    if info["missing"]:
        raise DataError(f"{PROG}: {len(info['missing'])} needed thing(s) missing (listed above)")


main = cli
