"""rf-exec: execute gold and candidate SQL and mark each candidate correct or not."""

import time

import click

from rf_core.plugins import manager as plugins
from rf_core.commands.common import Pipe, command, default_jobs, input_options, jobs_option
from rf_core.exec.matching import DEFAULT_MATCHER, MATCHERS
from rf_core.exec.variants import DEFAULT_MAX_MB
from rf_core.exec.sqlite import Limits
from rf_core.exec.checks import check_exec_input, variants_rejected

PROG = "rf-exec"
DEFAULTS = Limits()


@click.command(name=PROG)
@input_options
@click.option("--verifier", default="sqlite", show_default=True, help="Verifier plugin.")
@click.option("--matcher", type=click.Choice(sorted(MATCHERS)), default=DEFAULT_MATCHER,
              show_default=True, help="The matcher that sets `correct` (every matcher's verdict "
              "is recorded in `verdicts`). official: Spider's official evaluator with its "
              "default options (DISTINCT removed); official-keep-distinct: the same with "
              "--keep_distinct; lenient: set of sorted lowercased rows (the reference's).")
@click.option("--variants", type=int, default=0, show_default=True,
              help="Also check each candidate that matches on the original database on N "
              "perturbed variants of it (test-suite accuracy); 0: off.")
@click.option("--variants-seed", type=int, default=0, show_default=True,
              help="Seed of the variants.")
@click.option("--variants-max-mb", type=click.FloatRange(min=0), default=DEFAULT_MAX_MB,
              show_default=True, help="Databases larger than this get no variants (a note "
              "on stderr; their tasks are checked on the original only).")
@click.option("--variants-dir", type=click.Path(file_okay=False), default=None,
              help="Variant cache folder [default: the model cache's variants/].")
@jobs_option
@click.option("--timeout", type=click.FloatRange(min=0.01), default=DEFAULTS.timeout_s,
              show_default=True, help="Seconds one query may run.")
@click.option("--max-rows", type=click.IntRange(min=1), default=DEFAULTS.max_rows,
              show_default=True, help="Rows fetched per query before it is truncated.")
@click.option("--max-bytes", type=click.IntRange(min=1), default=DEFAULTS.max_bytes,
              show_default=True, help="Result bytes per query before it is truncated.")
@click.option("--max-memory-mb", type=click.IntRange(min=16), default=DEFAULTS.heap_bytes >> 20,
              show_default=True, help="SQLite heap limit per worker process.")
@command(PROG)
def cli(input_file, skip_bad, max_bad, verifier, matcher, variants, variants_seed,
        variants_max_mb, variants_dir, jobs, timeout, max_rows, max_bytes, max_memory_mb):
    """Run each task's gold SQL once and each distinct candidate SQL once, read-only, on the
    task's database; add `exec` and `correct` to candidates and `gold_exec` to the task.

    Output order equals input order. A gold query that fails is reported on stderr and none
    of that task's candidates counts as correct.
    """
    if variants < 0:
        raise click.BadParameter(f"{variants} is below 0 (0 turns variants off)", param_hint="'--variants'")
    impl = plugins.get("verifiers", verifier)
    pipe = Pipe(PROG, input_file, check=check_exec_input, skip_bad=skip_bad, max_bad=max_bad)
    limits = Limits(timeout_s=timeout, max_rows=max_rows, max_bytes=max_bytes,
                    heap_bytes=max_memory_mb << 20)
    start = time.perf_counter()
    n_cands = n_correct = n_err = n_timeout = n_rejected = 0
    options = {}
    if variants:  # only then, so verifiers without variant support keep working
        options = {"variants": variants, "variants_seed": variants_seed,
                   "variants_max_mb": variants_max_mb, "variants_dir": variants_dir}
    for task in impl.verify(pipe.records(), matcher=matcher, jobs=jobs or default_jobs(),
                            limits=limits, report=pipe.note, **options):
        for c in task.get("candidates") or []:
            n_cands += 1
            n_correct += c.get("correct") is True
            n_rejected += variants_rejected(c)
            ex = c.get("exec") or {}
            n_err += bool(ex) and not ex.get("ok")
            n_timeout += bool(ex.get("timed_out"))
        pipe.write(task)
    pipe.finish()
    pipe.note(f"{pipe.out.count} task(s), {n_cands} candidate(s): {n_correct} correct, "
              f"{n_err} error(s), {n_timeout} timeout(s); matcher {matcher}"
              + (f"; variants {variants}: {n_rejected} candidate(s) turned from correct to "
                 "wrong" if variants else "") + "; "
              f"{time.perf_counter() - start:.1f} s")


main = cli
