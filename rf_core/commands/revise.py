"""rf-revise: show the model what its query did on the database and take a revised query."""

import click

from rf_core.errors import UsageError
from rf_core.model import environment
from rf_core.model.request import SampleRequest
from rf_core.model.sampling import is_engine
from rf_core.plugins import auto, manager as plugins
from rf_core.revise.feedback import PREVIEW_ROWS
from rf_core.revise.loop import ReviseSettings, revise_tasks
from rf_core.commands.errors import command
from rf_core.commands.params import (FiniteFloat, Seed, default_jobs, input_options,
                                    jobs_option, limits_of, limits_options)
from rf_core.commands.pipe import Pipe
from rf_core.commands.plugin_cli import plugin_command, plugin_kwargs, plugin_options

PROG = "rf-revise"


def engine_of(sampler: str, impl, options: dict, report) -> tuple:
    """(engine, its options): auto resolved to the engine it picks; a sampler that only
    samples whole tasks (no ``load``) cannot continue a conversation: a usage error."""
    if isinstance(impl, auto.AutoSampler):
        return impl.engine_for(options, report)
    if not is_engine(impl):
        raise UsageError(f"sampler {sampler!r} samples whole tasks (it has no `load`), so it "
                         "cannot continue a candidate's conversation; rf-revise needs a "
                         "sampler engine (rf-plugins lists them)")
    return impl, options


@plugin_command(PROG, "samplers", "--sampler")
@input_options
@click.option("--sampler", default="auto", show_default=True,
              help="Sampler engine that writes the revisions (auto: as rf-sample picks).")
@click.option("--model", "-m", required=True,
              help="The model that wrote the candidates (folder, hub id, .gguf, rf-model name).")
@click.option("--adapter", default=None, help="A PEFT LoRA adapter folder to apply.")
@click.option("--rounds", type=click.IntRange(min=0), default=1, show_default=True,
              help="Revision rounds at most (0 passes the records through).")
@click.option("--revise", "which", type=click.Choice(["failed", "all"]), default="failed",
              show_default=True, help="Which candidates enter the first round: failed (the "
              "query failed, returned no row, or the reply had no SQL) or all.")
@click.option("--until", type=click.Choice(["rows", "never"]), default="rows",
              show_default=True, help="rows: a candidate leaves once its query runs and "
              "returns rows; never: every entered candidate is revised every round.")
@click.option("--temperature", "-t", type=FiniteFloat(min=0), default=0.0, show_default=True)
@click.option("--top-p", type=FiniteFloat(min=0, max=1, min_open=True), default=1.0,
              show_default=True)
@click.option("--max-new-tokens", type=click.IntRange(min=1), default=256, show_default=True)
@click.option("--seed", type=Seed(), default=0, show_default=True)
@click.option("--preview-rows", type=click.IntRange(min=0), default=PREVIEW_ROWS,
              show_default=True, help="Result rows shown to the model.")
@jobs_option
@limits_options
@plugin_options
@command(PROG)
def cli(input_file, skip_bad, max_bad, sampler, model, adapter, rounds, which, until,
        temperature, top_p, max_new_tokens, seed, preview_rows, jobs, timeout, max_rows,
        max_bytes, max_memory_mb, **params):
    """Revise candidates from what their queries did: each one to revise is run read-only on
    its task's database; the model sees its own reply and then the error, that the result
    was empty, or the result's first rows (never anything about the gold), and writes a
    revised query, which replaces the candidate. The earlier ones are kept in the
    candidate's `revision.turns`. Run rf-exec after it to judge the revised candidates.
    """
    environment.default_cuda_allocator()  # before any plugin can initialise CUDA
    environment.default_host_allocator()  # before torch is imported
    impl = plugins.get("samplers", sampler)
    options = plugin_kwargs(PROG, "sampler", sampler, impl, params)
    pipe = Pipe(PROG, input_file, require=("question",), skip_bad=skip_bad, max_bad=max_bad)
    if rounds > 0:
        impl, options = engine_of(sampler, impl, options, pipe.note)
    request = SampleRequest(model=model, adapter=adapter, k=1, temperature=temperature,
                            top_p=top_p, max_new_tokens=max_new_tokens, seed=seed)
    settings = ReviseSettings(rounds=rounds, revise=which, until=until,
                              preview_rows=preview_rows)
    limits = limits_of(timeout, max_rows, max_bytes, max_memory_mb)
    for task in revise_tasks(impl, pipe.records(), request, settings, options=options,
                             limits=limits, jobs=jobs or default_jobs(), report=pipe.note):
        pipe.write(task)
    pipe.finish()


main = cli
