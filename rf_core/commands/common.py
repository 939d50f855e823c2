"""What every rf-* command shares: input options, error handling, exit codes.

Exit codes: 0 ok, 1 data or runtime error, 2 usage error, 128 + N when signal N stopped it
(130 for Ctrl-C, 143 for SIGTERM). A closed downstream pipe (``rf-exec ... | head``) ends the
command quietly with 0. ``RF_DEBUG=1`` shows tracebacks.
"""

from __future__ import annotations

import contextlib
import functools
import os
import sys
from typing import Callable, Iterator

import click

from rf_core.records import signals
from rf_core.errors import RFError, UnknownPlugin
from rf_core.records.io import ReadStats, RecordWriter, read_records


class DataError(click.ClickException):
    """A data or runtime error as click shows it: ``Error: rf-x: ...``, exit 1."""

    exit_code = 1


def _quiet_stdout() -> None:
    """After EPIPE, point stdout at /dev/null so the interpreter's final flush stays quiet."""
    try:
        fd = sys.stdout.fileno()
    except (AttributeError, OSError, ValueError):
        return
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, fd)


@contextlib.contextmanager
def guard(prog: str):
    """Turn rf_core exceptions into one-line click errors with the right exit code."""
    debug = os.environ.get("RF_DEBUG") == "1"
    try:
        with signals.handled():
            yield
    except (signals.Interrupted, KeyboardInterrupt) as exc:
        stop = exc if isinstance(exc, signals.Interrupted) else signals.Interrupted(2)
        click.echo(f"{prog}: stopped by {stop.name}", err=True)
        raise SystemExit(stop.exit_code)
    except BrokenPipeError:
        _quiet_stdout()
        raise SystemExit(0)
    except UnknownPlugin as exc:
        if debug:
            raise
        raise click.UsageError(f"{prog}: {exc}") from None
    except RFError as exc:
        if debug:
            raise
        raise DataError(f"{prog}: {exc}") from None


def input_options(fn: Callable) -> Callable:
    """FILE (default stdin), --skip-bad and --max-bad for commands that read records."""
    fn = click.option("--max-bad", type=click.IntRange(min=0), default=None, metavar="N",
                      help="Skip bad lines (one stderr line each) but exit 1 past N of them.")(fn)
    fn = click.option("--skip-bad", is_flag=True,
                      help="Skip bad lines with one stderr line each instead of stopping.")(fn)
    fn = click.argument("input_file", metavar="[FILE]", type=click.File("rb"), default="-")(fn)
    return fn


def jobs_option(fn: Callable) -> Callable:
    return click.option("--jobs", "-j", type=click.IntRange(min=1), default=None,
                        help="Worker processes (default: all cores).")(fn)


def default_jobs() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


class Pipe:
    """A command's input records, its output writer and its end-of-run summary."""

    def __init__(self, prog: str, input_file, *, kind: str | None = "task",
                 require: tuple[str, ...] = (), check=None, skip_bad: bool = False,
                 max_bad: int | None = None):
        self.prog = prog
        self.stats = ReadStats()
        self._input = input_file
        self._kind = kind
        self._require = require
        self._check = check
        self._skip_bad = skip_bad
        self._max_bad = max_bad
        self.out = RecordWriter(binary_stdout())

    def records(self) -> Iterator[dict]:
        return read_records(self._input, prog=self.prog, kind=self._kind,
                            require=self._require, check=self._check, skip_bad=self._skip_bad,
                            max_bad=self._max_bad, stats=self.stats,
                            warn=sys.stderr)

    def write(self, rec: dict) -> None:
        self.out.write(rec)

    def note(self, message: str) -> None:
        click.echo(f"{self.prog}: {message}", err=True)

    def finish(self) -> None:
        if self.stats.bad:
            self.note(f"skipped {self.stats.bad} bad line(s): "
                      + ", ".join(map(str, self.stats.bad_lines[:20]))
                      + (" ..." if self.stats.bad > 20 else ""))


def binary_stdout():
    """stdout as bytes, also under click's CliRunner."""
    return getattr(sys.stdout, "buffer", sys.stdout)


def command(prog: str):
    """Wrap a click callback so rf_core errors become one-line errors naming ``prog``."""

    def decorate(fn: Callable) -> Callable:
        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            with guard(prog):
                return fn(*args, **kwargs)

        return wrapper

    return decorate
