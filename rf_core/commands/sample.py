"""rf-sample: k SQL candidates per task from a sampler plugin."""

import re
import time
from itertools import count

import click
import orjson

from rf_core.model import environment
from rf_core.model.sampling import sample_tasks
from rf_core.plugins import auto, manager as plugins
from rf_core.records.shards import check_untagged, run_digest, tag_task
from rf_core.commands.errors import command
from rf_core.commands.params import FiniteFloat, Seed, input_options
from rf_core.commands.pipe import Pipe
from rf_core.commands.plugin_cli import plugin_command, plugin_kwargs, plugin_options

PROG = "rf-sample"


def _shard(ctx, param, value):
    if value is None:
        return None
    m = re.fullmatch(r"(\d+)/(\d+)", value)
    if not m or int(m.group(2)) < 1 or int(m.group(1)) >= int(m.group(2)):
        raise click.BadParameter("I/N with 0 <= I < N, e.g. 0/4")
    return int(m.group(1)), int(m.group(2))


class _AutoRuleHelp(click.Option):
    """--sampler's help, which quotes auto's rule: built from the installed engines'
    declarations when the help is shown, not when the command is imported."""

    def get_help_record(self, ctx):
        """The help line, with the rule as the installed engines declare it."""
        self.help = f"Sampler plugin; auto: {auto.rule()}."
        return super().get_help_record(ctx)


@plugin_command(PROG, "samplers", "--sampler")
@input_options
@click.option("--sampler", default="auto", show_default=True, cls=_AutoRuleHelp,
              help="Sampler plugin; auto: the first available engine by priority.")
@click.option("--model", "-m", required=True,
              help="Transformers folder, hub id, .gguf file, or an `rf-model` name.")
@click.option("--adapter", default=None, help="A PEFT LoRA adapter folder to apply.")
@click.option("-k", type=click.IntRange(min=1), default=1, show_default=True,
              help="Candidates per task.")
@click.option("--temperature", "-t", type=FiniteFloat(min=0), default=0.0,
              show_default=True, help="0 with k=1 is greedy decoding.")
@click.option("--top-p", type=FiniteFloat(min=0, max=1, min_open=True), default=1.0,
              show_default=True)
@click.option("--max-new-tokens", type=click.IntRange(min=1), default=256, show_default=True)
@click.option("--seed", type=Seed(), default=0, show_default=True,
              help="Same seed and inputs give the same candidates.")
@click.option("--shard", callback=_shard, default=None, metavar="I/N",
              help="Keep every N-th task starting at I, so N processes can split a file; "
              "each task gets a `shard` tag (its input position) for rf-merge.")
@click.option("--stats", "stats_file", type=click.Path(dir_okay=False), default=None,
              help="Also write where the time went (load, prefill, decode: seconds and "
              "tokens) to this JSON file.")
@plugin_options
@command(PROG)
def cli(input_file, skip_bad, max_bad, sampler, model, adapter, k, temperature, top_p,
        max_new_tokens, seed, shard, stats_file, **params):
    """Add `messages` (the exact prompt) and k `candidates` to each task.

    The sampler's own settings (device, dtype, ...) are its options: `-o NAME VALUE`.
    """
    began = time.perf_counter()
    environment.default_cuda_allocator()  # before any plugin can initialise CUDA
    environment.default_host_allocator()  # before torch is imported
    impl = plugins.get("samplers", sampler)
    options = plugin_kwargs(PROG, "sampler", sampler, impl, params)
    if temperature == 0 and k > 1:
        click.echo(f"{PROG}: warning: k={k} at temperature 0 gives identical candidates",
                   err=True)
    pipe = Pipe(PROG, input_file, require=("question",), skip_bad=skip_bad, max_bad=max_bad)
    first, every = shard or (0, 1)
    # what makes shards one run (not the sampler's options: they place and size the work)
    run = run_digest({"sampler": sampler, "model": model, "adapter": adapter, "k": k,
                      "temperature": temperature, "top_p": top_p, "seed": seed,
                      "max_new_tokens": max_new_tokens, "shards": every})

    def selected():
        """The input's tasks, this shard's only."""
        for i, task in enumerate(pipe.records()):
            if i % every == first:
                if shard is not None:
                    check_untagged(task)  # tagged after sampling, as its last field
                yield task

    positions = count(first, every)
    summary: dict = {}
    for task in sample_tasks(impl, selected(), model=model, adapter=adapter, k=k,
                             temperature=temperature, top_p=top_p,
                             max_new_tokens=max_new_tokens, seed=seed, report=pipe.note,
                             progress=pipe.progress, positions=count(first, every),
                             summary=summary, **options):
        index = next(positions)
        pipe.write(tag_task(task, index, every, run) if shard is not None else task)
    pipe.finish()
    if stats_file:
        _write_stats(stats_file, {"program": PROG, "sampler": impl.name, "model": model,
                                  "adapter": adapter, "k": k, "temperature": temperature,
                                  "wall_s": round(time.perf_counter() - began, 3), **summary})


def _write_stats(path: str, stats: dict) -> None:
    """--stats: the run's figures as one JSON object (written whole, or not at all)."""
    from rf_core.records.files import write_atomic

    with write_atomic(path) as tmp:
        tmp.write_bytes(orjson.dumps(stats, option=orjson.OPT_INDENT_2) + b"\n")


main = cli
