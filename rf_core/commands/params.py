"""Option types and options that several commands share: finite floats, seeds, UTF-8 paths,
the input file with --skip-bad / --max-bad, and --jobs."""

from __future__ import annotations

import math
import os
from typing import Any, Callable

import click


class FiniteFloat(click.FloatRange):
    """The type of a float option: it refuses nan, inf and -inf, which pass click's
    FloatRange (nan compares false with every bound) and would turn a limit off or reach
    torch. ``command()`` refuses them as well in float options declared otherwise."""

    name = "finite float"

    def convert(self, value: Any, param: click.Parameter | None,
                ctx: click.Context | None) -> Any:
        """``value`` as a float within the range; a usage error if it is not finite."""
        number = click.FLOAT.convert(value, param, ctx)
        if not math.isfinite(number):
            self.fail(f"{value} is not a finite number", param, ctx)
        return super().convert(number, param, ctx)

    def _describe_range(self) -> str:
        return "" if self.min is None and self.max is None else super()._describe_range()


class Seed(click.IntRange):
    """A seed: a 64-bit signed integer, the range of torch's generators and of the integer
    fields of records, where candidates carry their seed."""

    name = "seed"

    def __init__(self) -> None:
        super().__init__(-2**63, 2**63 - 1)

    def _describe_range(self) -> str:
        return "-2^63<=x<=2^63-1"


def refuse_non_finite(kwargs: dict) -> None:
    """A backstop for float options declared without FiniteFloat (a plain ``type=float`` or
    FloatRange): the same usage error, before the command does anything."""
    ctx = click.get_current_context(silent=True)
    for param in ctx.command.params if ctx is not None else ():
        value = kwargs.get(param.name)
        if (isinstance(param.type, click.types.FloatParamType) and isinstance(value, float)
                and not math.isfinite(value)):
            raise click.BadParameter(f"{value} is not a finite number", ctx=ctx, param=param)


def check_utf8_path(path: str | os.PathLike, option: str) -> None:
    """A usage error (exit 2) for a path that is not valid UTF-8. Records, reports and
    stderr lines carry paths as UTF-8 text, so such a path fails only at the end of the work
    (rf-train: after training); call this on the option's value before any work."""
    text = os.fsdecode(os.fspath(path))
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise click.BadParameter(f"{option} {os.fsencode(text)!r}: the path is not valid "
                                 "UTF-8, which records and reports need; choose a UTF-8 "
                                 "name") from None


def input_options(fn: Callable) -> Callable:
    """FILE (default stdin), --skip-bad and --max-bad for commands that read records."""
    fn = click.option("--max-bad", type=click.IntRange(min=0), default=None, metavar="N",
                      help="Skip bad lines (one stderr line each) but exit 1 past N of them.")(fn)
    fn = click.option("--skip-bad", is_flag=True,
                      help="Skip bad lines with one stderr line each instead of stopping.")(fn)
    fn = click.argument("input_file", metavar="[FILE]", type=click.File("rb"), default="-")(fn)
    return fn


# Workers beyond a few per core only add memory (each holds a SQLite heap of up to
# --max-memory-mb); an unbounded --jobs forked that many processes.
JOBS_PER_CORE = 4


def default_jobs() -> int:
    """The cores this process may run on: --jobs when not given."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def max_jobs() -> int:
    """The largest --jobs: JOBS_PER_CORE per core."""
    return JOBS_PER_CORE * default_jobs()


def jobs_option(fn: Callable) -> Callable:
    """--jobs / -j: worker processes, from 1 to ``max_jobs()`` (None: ``default_jobs()``)."""
    return click.option("--jobs", "-j", type=click.IntRange(min=1, max=max_jobs()),
                        default=None, help="Worker processes (default: all cores; at most "
                        f"{JOBS_PER_CORE} per core, {max_jobs()} here).")(fn)


def limits_options(fn: Callable) -> Callable:
    """--timeout, --max-rows, --max-bytes, --max-memory-mb: the limits every query runs
    under (rf-exec's and rf-revise's), turned into ``limits`` by ``limits_of``."""
    from rf_core.exec.sqlite import Limits

    d = Limits()
    for option in reversed((
            click.option("--timeout", type=click.FloatRange(min=0.01), default=d.timeout_s,
                         show_default=True, help="Seconds one query may run."),
            click.option("--max-rows", type=click.IntRange(min=1), default=d.max_rows,
                         show_default=True,
                         help="Rows fetched per query before it is truncated."),
            click.option("--max-bytes", type=click.IntRange(min=1), default=d.max_bytes,
                         show_default=True,
                         help="Result bytes per query before it is truncated."),
            click.option("--max-memory-mb", type=click.IntRange(min=16),
                         default=d.heap_bytes >> 20, show_default=True,
                         help="SQLite heap limit per worker process."))):
        fn = option(fn)
    return fn


def limits_of(timeout: float, max_rows: int, max_bytes: int, max_memory_mb: int) -> Any:
    """The ``Limits`` of ``limits_options``' values."""
    from rf_core.exec.sqlite import Limits

    return Limits(timeout_s=timeout, max_rows=max_rows, max_bytes=max_bytes,
                  heap_bytes=max_memory_mb << 20)
