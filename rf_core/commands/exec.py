"""rf-exec: execute gold and candidate SQL and mark each candidate correct or not."""

import time

import click

from rf_core import plugins
from rf_core.cli import Pipe, command, default_jobs, input_options, jobs_option
from rf_core.matching import MATCHERS
from rf_core.sqlexec import Limits
from rf_core.tasks import check_exec_input

PROG = "rf-exec"
DEFAULTS = Limits()


@click.command(name=PROG)
@input_options
@click.option("--verifier", default="sqlite", show_default=True, help="Verifier plugin.")
@click.option("--matcher", type=click.Choice(sorted(MATCHERS)), default="official",
              show_default=True, help="official: Spider's execution semantics; lenient: "
              "set of sorted lowercased rows (the reference project's).")
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
def cli(input_file, skip_bad, max_bad, verifier, matcher, jobs, timeout, max_rows, max_bytes,
        max_memory_mb):
    """Run each task's gold SQL once and each distinct candidate SQL once, read-only, on the
    task's database; add `exec` and `correct` to candidates and `gold_exec` to the task.

    Output order equals input order. A gold query that fails is reported on stderr and none
    of that task's candidates counts as correct.
    """
    impl = plugins.get("verifiers", verifier)
    pipe = Pipe(PROG, input_file, check=check_exec_input, skip_bad=skip_bad, max_bad=max_bad)
    limits = Limits(timeout_s=timeout, max_rows=max_rows, max_bytes=max_bytes,
                    heap_bytes=max_memory_mb << 20)
    start = time.perf_counter()
    n_cands = n_correct = n_err = n_timeout = 0
    for task in impl.verify(pipe.records(), matcher=matcher, jobs=jobs or default_jobs(),
                            limits=limits, report=pipe.note):
        for c in task.get("candidates") or []:
            n_cands += 1
            n_correct += c.get("correct") is True
            ex = c.get("exec") or {}
            n_err += bool(ex) and not ex.get("ok")
            n_timeout += bool(ex.get("timed_out"))
        pipe.write(task)
    pipe.finish()
    pipe.note(f"{pipe.out.count} task(s), {n_cands} candidate(s): {n_correct} correct, "
              f"{n_err} error(s), {n_timeout} timeout(s); matcher {matcher}; "
              f"{time.perf_counter() - start:.1f} s")


main = cli
