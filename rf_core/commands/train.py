"""rf-train: a LoRA adapter from the base model, trained on `example` records."""

import os

import click

from rf_core.plugins import manager as plugins
from rf_core.commands.common import Pipe, command, input_options
from rf_core.errors import RFError

PROG = "rf-train"


def _check_example(rec: dict) -> None:
    # types and required fields are the schema's (checked on reading); this is the rest
    if not rec["completion"].strip():
        raise ValueError("'completion' is blank")


@click.command(name=PROG)
@input_options
@click.option("--trainer", default="peft", show_default=True, help="Trainer plugin.")
@click.option("--base", required=True, help="Base model (folder, hub id, .gguf, rf-model name).")
@click.option("--out", required=True, type=click.Path(file_okay=False),
              help="Adapter folder to write (PEFT format, with the tokenizer).")
@click.option("--rank", "-r", type=click.IntRange(min=1), default=16, show_default=True)
@click.option("--alpha", type=float, default=32, show_default=True)
@click.option("--dropout", type=click.FloatRange(0, 1), default=0.15, show_default=True)
@click.option("--target", default="all-linear", show_default=True,
              help="LoRA target modules (peft's target_modules).")
@click.option("--lr", type=float, default=1e-4, show_default=True)
@click.option("--epochs", type=click.IntRange(min=1), default=2, show_default=True)
@click.option("--warmup", type=click.FloatRange(0, 1), default=0.1, show_default=True,
              help="Share of steps for linear warm-up before the cosine decay.")
@click.option("--weight-decay", type=float, default=0.01, show_default=True)
@click.option("--batch-size", type=click.IntRange(min=1), default=16, show_default=True,
              help="Examples per optimizer step (over all processes).")
@click.option("--micro-batch-tokens", type=click.IntRange(min=16), default=None,
              help="Padded tokens per forward pass (default: sized from free GPU memory and "
                   "the model's shapes; 4096 on CPU).")
@click.option("--max-len", type=click.IntRange(min=8), default=2048, show_default=True,
              help="Longer examples are reported and skipped, never truncated.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--grad-checkpointing", type=click.Choice(["auto", "on", "off"]), default="auto",
              show_default=True,
              help="Trade compute for memory. auto: on when too few tokens fit on the GPU "
                   "without it; off on CPU.")
@click.option("--dtype", type=click.Choice(["auto", "bf16", "fp32"]), default="auto",
              show_default=True, help="auto: bf16 on GPU, fp32 on CPU.")
@click.option("--device", default="auto", show_default=True)
@click.option("--max-bad-steps", type=click.IntRange(min=0), default=None,
              help="Non-finite steps tolerated (skipped) before stopping (default: 10%).")
@click.option("--save-every", type=click.IntRange(min=0), default=50, show_default=True,
              help="Checkpoint every N steps for --resume (0: never).")
@click.option("--resume", is_flag=True, help="Continue from the last checkpoint of --out.")
@click.option("--merge", is_flag=True, help="Also write the merged model to OUT/merged.")
@click.option("--force", is_flag=True, help="Replace --out if it exists.")
@click.option("--max-too-long", type=click.FloatRange(min=0, max=100), default=None,
              metavar="PCT", help="Stop before training when more than PCT% of the examples "
              "are longer than --max-len (default: skip them, with a count by database).")
@command(PROG)
def cli(input_file, skip_bad, max_bad, trainer, base, out, rank, alpha, dropout, target, lr,
        epochs, warmup, weight_decay, batch_size, micro_batch_tokens, max_len, seed,
        grad_checkpointing, dtype, device, max_bad_steps, save_every, resume, merge, force,
        max_too_long):
    """Train a LoRA adapter on the examples (always from the BASE model) and print one JSON
    line describing it. The adapter is written to a temporary folder and renamed into place,
    so OUT never holds a half-written adapter."""
    impl = plugins.get("trainers", trainer)
    pipe = Pipe(PROG, input_file, kind="example", check=_check_example, skip_bad=skip_bad,
                max_bad=max_bad)
    examples = list(pipe.records())
    pipe.finish()
    if not examples:
        raise RFError("no example records in the input")
    result = impl.train(examples, base=base, out=out, rank=rank, alpha=alpha, dropout=dropout,
                        target=target, lr=lr, epochs=epochs, warmup=warmup,
                        weight_decay=weight_decay, batch_size=batch_size,
                        micro_batch_tokens=micro_batch_tokens, max_len=max_len, seed=seed,
                        grad_checkpointing=grad_checkpointing, dtype=dtype, device=device,
                        max_bad_steps=max_bad_steps, save_every=save_every, resume=resume,
                        merge=merge, force=force, max_too_long=max_too_long,
                        report=pipe.note)
    if int(os.environ.get("RANK", "0")) == 0:
        pipe.write({"schema_version": 1, "kind": "train_report", **result})


main = cli
