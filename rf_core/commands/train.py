"""rf-train: a LoRA adapter from the base model, trained on `example` records (and, for a
trainer that takes them, `pair` records)."""

import os
import sys
from collections import Counter
from pathlib import Path

import click

from rf_core.model import environment
from rf_core.plugins import manager as plugins
from rf_core.commands.errors import command
from rf_core.commands.params import FiniteFloat, Seed, check_utf8_path, input_options
from rf_core.commands.pipe import Pipe
from rf_core.commands.plugin_cli import plugin_command, plugin_kwargs, plugin_options
from rf_core.errors import RFError, UsageError
from rf_core.train.defaults import TRAIN_DEFAULTS

PROG = "rf-train"


# the record kinds rf-train reads; a trainer says which it takes (``accepts``)
TRAINING_KINDS = ("example", "pair")
# the completions each kind carries
_COMPLETIONS = {"example": ("completion",), "pair": ("chosen", "rejected")}


def _check_record(rec: dict) -> None:
    # types and required fields are the schema's (checked on reading); this is the rest
    for name in _COMPLETIONS[rec["kind"]]:
        if not rec[name].strip():
            raise ValueError(f"{name!r} is blank")


def accepted_kinds(impl) -> tuple[str, ...]:
    """The record kinds a trainer takes: its ``accepts``, ("example",) where it has none."""
    return tuple(getattr(impl, "accepts", None) or ("example",))


def _refuse_kinds(trainer: str, accepts: tuple[str, ...], counts: Counter) -> None:
    """An RFError, before any model is loaded, when the input holds records the trainer does
    not take, naming the installed trainers that take them."""
    refused = sorted(k for k in counts if k not in accepts)
    if not refused:
        return
    takers = sorted(name for name, (_, impl) in plugins.registry("trainers").items()
                    if set(refused) <= set(accepted_kinds(impl)))
    have = ", ".join(f"{counts[k]} {k}" for k in refused)
    hint = (f"use --trainer {' or --trainer '.join(takers)}" if takers
            else "no installed trainer takes them")
    raise RFError(f"trainer {trainer!r} takes {' and '.join(accepts)} records only, and the "
                  f"input has {have} record(s): {hint}")


def _out_folder(ctx, param, value):
    """--out is replaced with --force: refuse the working folder, its parents and any folder
    holding something other than an adapter, and a name that is not UTF-8 (the report
    carries it), before anything is loaded."""
    check_utf8_path(value, "--out")
    here = Path.cwd().resolve()
    target = Path(value).resolve()
    if target == here or target in here.parents:
        raise click.BadParameter(f"{value!r} is the current folder or one above it; name the "
                                 "adapter's own folder", ctx=ctx, param=param)
    if (target.is_dir() and any(target.iterdir())
            and not (target / "adapter_config.json").is_file()):
        raise click.BadParameter(f"{value!r} exists and is not an adapter folder (no "
                                 "adapter_config.json); rf-train replaces only adapters",
                                 ctx=ctx, param=param)
    return value


@plugin_command(PROG, "trainers", "--trainer")
@input_options
@click.option("--trainer", default="peft", show_default=True, help="Trainer plugin.")
@click.option("--base", required=True, help="Base model (folder, hub id, .gguf, rf-model name).")
@click.option("--out", required=True, type=click.Path(file_okay=False), callback=_out_folder,
              help="Adapter folder to write (with the tokenizer).")
@click.option("--epochs", type=click.IntRange(min=1), default=TRAIN_DEFAULTS.epochs,
              show_default=True)
@click.option("--lr", type=FiniteFloat(min=0, min_open=True), default=TRAIN_DEFAULTS.lr,
              show_default=True)
@click.option("--batch-size", type=click.IntRange(min=1), default=TRAIN_DEFAULTS.batch_size,
              show_default=True,
              help="Examples per optimizer step (over all processes).")
@click.option("--max-len", type=click.IntRange(min=8), default=TRAIN_DEFAULTS.max_len,
              show_default=True,
              help="Longer examples are reported and skipped, never truncated.")
@click.option("--max-too-long", type=FiniteFloat(min=0, max=100), default=None,
              metavar="PCT", help="Stop before training when more than PCT% of the examples "
              "are longer than --max-len (default: skip them, with a count by database).")
@click.option("--seed", type=Seed(), default=TRAIN_DEFAULTS.seed, show_default=True)
@click.option("--resume", is_flag=True, help="Continue from the last checkpoint of --out.")
@click.option("--force", is_flag=True, help="Replace --out if it exists.")
@plugin_options
@command(PROG)
def cli(input_file, skip_bad, max_bad, trainer, base, out, epochs, lr, batch_size, max_len,
        max_too_long, seed, resume, force, **params):
    """Train an adapter on the examples (always from the BASE model) and print one JSON
    line describing it. A trainer that takes preference pairs (--trainer dpo) reads `pair`
    records too, mixed with the examples in any order. The adapter is written to a
    temporary folder and renamed into place, so OUT never holds a half-written adapter.

    The trainer's own settings (the peft trainer's LoRA rank, dropout, dtype, ...) are its
    options: `-o NAME VALUE`.
    """
    environment.default_cuda_allocator()  # before any plugin can initialise CUDA
    environment.default_host_allocator()  # before torch is imported
    world = os.environ.get("WORLD_SIZE", "1")
    if world not in ("", "0", "1") and input_file is sys.stdin.buffer:
        # torchrun's processes share one stdin: each would read a part of it
        raise UsageError(f"under torchrun or accelerate (WORLD_SIZE={world}) every process "
                         "reads the examples itself: pass them as FILE, not on stdin")
    impl = plugins.get("trainers", trainer)
    options = plugin_kwargs(PROG, "trainer", trainer, impl, params)
    accepts = accepted_kinds(impl)
    pipe = Pipe(PROG, input_file, kind=TRAINING_KINDS, check=_check_record,
                skip_bad=skip_bad, max_bad=max_bad)
    examples = list(pipe.records())  # example and pair records, in input order
    _refuse_kinds(trainer, accepts, Counter(r["kind"] for r in examples))
    if not examples:
        pipe.finish()
        raise RFError(f"no {' or '.join(accepts)} records in the input")
    result = impl.train(examples, base=base, out=out, epochs=epochs, lr=lr,
                        batch_size=batch_size, max_len=max_len, max_too_long=max_too_long,
                        seed=seed, resume=resume, force=force, report=pipe.note,
                        progress=pipe.progress, **options)
    pipe.finish()
    if int(os.environ.get("RANK", "0")) == 0:
        pipe.write({"schema_version": 1, "kind": "train_report", **result})


main = cli
