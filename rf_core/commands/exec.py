"""rf-exec: execute gold and candidate SQL and mark each candidate correct or not."""

import time
from collections import Counter

import click

from rf_core.plugins import manager as plugins
from rf_core.commands.errors import command
from rf_core.commands.params import (default_jobs, input_options, jobs_option, limits_of,
                                    limits_options)
from rf_core.commands.pipe import Pipe
from rf_core.commands.plugin_cli import plugin_command, plugin_kwargs, plugin_options
from rf_core.exec.matching import DEFAULT_MATCHER
from rf_core.exec.checks import check_exec_input, variants_rejected
from rf_core.exec.pool import unshared_input

PROG = "rf-exec"


@plugin_command(PROG, "verifiers", "--verifier")
@input_options
@click.option("--verifier", default="sqlite", show_default=True, help="Verifier plugin.")
@click.option("--matcher", default=DEFAULT_MATCHER, show_default=True, metavar="NAME",
              help="The matcher that sets `correct` (every registered matcher's verdict is "
              "recorded in `verdicts`). Built in: official: Spider's official evaluator with "
              "its default options (DISTINCT removed); official-keep-distinct: the same with "
              "--keep_distinct; lenient: set of sorted lowercased rows (the reference's). "
              "Plugins may register more (rf-plugins --names matchers lists them).")
@click.option("--for-training", is_flag=True, help="Verdicts that pick training examples "
              "(bin/iterate.sh passes it on its train stages only): a task whose gold result "
              "is empty or degenerate (one row of NULL or 0) gets a gold variant, rows that "
              "make it return a distinguishing result; a candidate that agrees with the gold "
              "only where its result is empty or degenerate gets `correct: null` and the "
              "reason in `unverifiable`. Leave it off for evaluation: Spider's official "
              "semantics count an empty result equal to an empty gold as correct.")
@jobs_option
@limits_options
@plugin_options
@command(PROG)
def cli(input_file, skip_bad, max_bad, verifier, matcher, for_training, jobs, timeout, max_rows,
        max_bytes, max_memory_mb, **params):
    """Run each task's gold SQL once and each distinct candidate SQL once, read-only, on the
    task's database; add `exec` and `correct` to candidates and `gold_exec` to the task.

    Output order equals input order; each task is written as soon as it and every task
    before it are done, also while the input is quiet. A gold query that fails is reported
    on stderr and none
    of that task's candidates counts as correct. The verifier's own settings (the sqlite
    verifier's test-suite variants, ...) are its options: `-o NAME VALUE`.
    """
    impl = plugins.get("verifiers", verifier)
    plugins.get("matchers", matcher)  # an unknown name: a usage error naming the installed ones
    options = plugin_kwargs(PROG, "verifier", verifier, impl, params)
    # read in the worker pool's input thread: a private reader, never sys.stdin's buffer
    pipe = Pipe(PROG, unshared_input(input_file), check=check_exec_input, skip_bad=skip_bad,
                max_bad=max_bad)
    limits = limits_of(timeout, max_rows, max_bytes, max_memory_mb)
    start = time.perf_counter()
    n_cands = n_correct = n_err = n_timeout = n_rejected = n_informed = n_unverifiable = 0
    spoke = Counter()  # candidates by the number of databases where the gold's result spoke
    used = set()  # the rules the verifier says it applied
    if for_training:  # only when asked: a verifier of before this option never sees it
        options["for_training"] = True
    for task in impl.verify(pipe.records(), matcher=matcher, jobs=jobs or default_jobs(),
                            limits=limits, report=pipe.note, progress=pipe.progress,
                            **options):
        for c in task.get("candidates") or []:
            n_cands += 1
            n_correct += c.get("correct") is True
            n_unverifiable += bool(c.get("unverifiable"))
            if isinstance(c.get("distinguishing"), int):
                spoke[min(c["distinguishing"], 2)] += 1
                n_informed += c.get("correct") is True and c["distinguishing"] > 0
            n_rejected += variants_rejected(c)
            ex = c.get("exec") or {}
            n_err += bool(ex) and not ex.get("ok")
            n_timeout += bool(ex.get("timed_out"))
        used.add(str((task.get("verified_by") or {}).get("matcher", "unknown")))
        pipe.write(task)
    pipe.finish()
    variants = options.get("variants") or 0
    pipe.note(f"{pipe.out.count} task(s), {n_cands} candidate(s): {n_correct} correct, "
              f"{n_err} error(s), {n_timeout} timeout(s); verifier {verifier}, matcher "
              f"{', '.join(sorted(used)) or matcher}"
              + (f"; variants {variants}: {n_rejected} candidate(s) turned from correct to "
                 "wrong" if variants else "")
              + (f"; the gold's result distinguishing on 0 / 1 / 2+ database(s): {spoke[0]} / "
                 f"{spoke[1]} / {spoke[2]} candidate(s); {n_informed} of {n_correct} correct "
                 f"verified on such a database" if spoke else "")
              + (f"; {n_unverifiable} unverifiable (correct: null)" if for_training else "")
              + "; "
              f"{time.perf_counter() - start:.1f} s")


main = cli
