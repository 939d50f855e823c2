"""What every rf-* command shares: input options, error handling, exit codes.

Exit codes: 0 ok, 1 data or runtime error, 2 usage error, 128 + N when signal N stopped it
(130 for Ctrl-C, 143 for SIGTERM). A closed downstream pipe (``rf-exec ... | head``) ends the
command quietly with 0. ``RF_DEBUG=1`` shows tracebacks.
"""

from __future__ import annotations

import contextlib
import functools
import math
import os
import stat
import sys
from typing import Callable, Iterator

import click

from rf_core.records import signals
from rf_core.errors import RFError, UsageError
from rf_core.records.io import ReadStats, RecordWriter, read_records


# what the model-using commands import; the rest of the toolkit runs without them
MODEL_PACKAGES = ("torch", "transformers", "peft", "accelerate")


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


class OutputError(RFError):
    """stdout could not be written: a full disk, a file-size limit, an I/O error."""


class Output:
    """Guards writes to stdout: one that fails (other than a closed pipe, which ends the
    command quietly) ends it with one line, ``Error: rf-x: cannot write output: REASON``,
    exit 1. Where stdout is a regular file it is first cut back to where the failed write
    began, so it ends at a complete line (a record, or a line of rf-plugins' document)."""

    def __init__(self):
        self.stream = binary_stdout()
        self._fd = None
        try:
            fd = self.stream.fileno()
            if stat.S_ISREG(os.fstat(fd).st_mode):
                self._fd = fd
        except (AttributeError, OSError, ValueError):  # CliRunner's stdout has no descriptor
            pass

    def _start(self) -> int | None:
        if self._fd is None:
            return None
        import fcntl

        self.stream.flush()
        if fcntl.fcntl(self._fd, fcntl.F_GETFL) & os.O_APPEND:
            return os.fstat(self._fd).st_size  # the offset of a fresh >> file says 0
        return os.lseek(self._fd, 0, os.SEEK_CUR)

    def _cut_back(self, start: int | None) -> None:
        if start is None:
            return
        try:
            if os.fstat(self._fd).st_size > start:
                os.ftruncate(self._fd, start)
            os.lseek(self._fd, start, os.SEEK_SET)  # for a next command writing the same file
        except OSError:
            pass

    @contextlib.contextmanager
    def guarded(self):
        start = None
        try:
            start = self._start()
            yield
        except BrokenPipeError:
            raise
        except OSError as exc:
            self._cut_back(start)
            _quiet_stdout()  # what stays buffered must not fail again at exit
            raise OutputError(f"cannot write output: {exc.strerror or exc}") from None

    def write(self, data: bytes) -> None:
        """Write and flush ``data`` (one or more whole lines)."""
        with self.guarded():
            view = memoryview(data)
            while view:  # unbuffered (PYTHONUNBUFFERED), a write may take part of it
                n = self.stream.write(view)
                view = view[len(view) if n is None else n:]
            self.stream.flush()


def write_output(data: bytes | str) -> None:
    """Write whole lines to stdout, once (rf-plugins, rf-model): see ``Output``."""
    Output().write(os.fsencode(data) if isinstance(data, str) else data)


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
    except UsageError as exc:
        if debug:
            raise
        raise click.UsageError(f"{prog}: {exc}") from None
    except ImportError as exc:
        package = (exc.name or "").split(".")[0]
        if debug or package not in MODEL_PACKAGES:
            raise
        raise DataError(f"{prog}: {package} is not installed; the model commands need it: "
                        "pip install 'reasonforge[models]'") from None
    except RFError as exc:
        if debug:
            raise
        raise DataError(f"{prog}: {exc}") from None


class FiniteFloat(click.FloatRange):
    """The type of a float option: it refuses nan, inf and -inf, which pass click's
    FloatRange (nan compares false with every bound) and would turn a limit off or reach
    torch. ``command()`` refuses them as well in float options declared otherwise."""

    name = "finite float"

    def convert(self, value, param, ctx):
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

    def __init__(self):
        super().__init__(-2**63, 2**63 - 1)

    def _describe_range(self) -> str:
        return "-2^63<=x<=2^63-1"


def _refuse_non_finite(kwargs: dict) -> None:
    """A backstop for float options declared without FiniteFloat (a plain ``type=float`` or
    FloatRange): the same usage error, before the command does anything."""
    ctx = click.get_current_context(silent=True)
    for param in ctx.command.params if ctx is not None else ():
        value = kwargs.get(param.name)
        if (isinstance(param.type, click.types.FloatParamType) and isinstance(value, float)
                and not math.isfinite(value)):
            raise click.BadParameter(f"{value} is not a finite number", ctx=ctx, param=param)


def input_options(fn: Callable) -> Callable:
    """FILE (default stdin), --skip-bad and --max-bad for commands that read records."""
    fn = click.option("--max-bad", type=click.IntRange(min=0), default=None, metavar="N",
                      help="Skip bad lines (one stderr line each) but exit 1 past N of them.")(fn)
    fn = click.option("--skip-bad", is_flag=True,
                      help="Skip bad lines with one stderr line each instead of stopping.")(fn)
    fn = click.argument("input_file", metavar="[FILE]", type=click.File("rb"), default="-")(fn)
    return fn


def jobs_option(fn: Callable) -> Callable:
    return click.option("--jobs", "-j", type=click.IntRange(min=1, max=max_jobs()),
                        default=None, help="Worker processes (default: all cores; at most "
                        f"{JOBS_PER_CORE} per core, {max_jobs()} here).")(fn)


def default_jobs() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


# Workers beyond a few per core only add memory (each holds a SQLite heap of up to
# --max-memory-mb); an unbounded --jobs forked that many processes.
JOBS_PER_CORE = 4


def max_jobs() -> int:
    return JOBS_PER_CORE * default_jobs()


class Progress:
    """A progress bar with rate and ETA (tqdm) on stderr when stderr is a terminal; nothing
    otherwise, where the commands' plain periodic lines say how far they are (pipes, CI,
    bin/iterate.sh's logs).

    The command advances it by one per record written. A plugin that counts its own work
    (rf-train's steps) calls ``start(total, unit)`` and ``update(n)``; from then on only the
    plugin advances it.
    """

    def __init__(self, prog: str, unit: str = "task", total: int | None = None,
                 enabled: bool | None = None):
        self.prog = prog
        self.enabled = self.wanted() if enabled is None else enabled
        self.owned_by_plugin = False
        self._bar = None
        if enabled:
            self._open(total, unit)

    @staticmethod
    def wanted() -> bool:
        """On a terminal, unless RF_PROGRESS=0."""
        return sys.stderr.isatty() and os.environ.get("RF_PROGRESS", "1") != "0"

    def _open(self, total: int | None, unit: str) -> None:
        from tqdm import tqdm

        if self._bar is not None:
            self._bar.close()
        self._bar = tqdm(total=total, unit=f" {unit}", desc=self.prog, file=sys.stderr,
                         dynamic_ncols=True, leave=True)

    def start(self, total: int | None, unit: str = "it") -> None:
        self.owned_by_plugin = True
        if self.enabled:
            self._open(total, unit)

    def update(self, n: int = 1) -> None:
        if self._bar is not None:
            self._bar.update(n)

    def advance_record(self) -> None:
        if not self.owned_by_plugin:
            self.update(1)

    def write(self, message: str) -> None:
        """A log line that does not tear the bar."""
        if self._bar is not None:
            self._bar.write(message, file=sys.stderr)
        else:
            click.echo(message, err=True)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None


def _count_lines(stream) -> int | None:
    """Lines of a regular, seekable input file (None for pipes): the progress bar's total."""
    try:
        if not stat.S_ISREG(os.fstat(stream.fileno()).st_mode):
            return None
        pos = stream.tell()
        n = sum(chunk.count(b"\n") for chunk in iter(lambda: stream.read(1 << 20), b""))
        stream.seek(pos)
        return n
    except (AttributeError, OSError, ValueError):
        return None


class Pipe:
    """A command's input records, its output writer, its progress and its end-of-run
    summary."""

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
        self.output = Output()
        self.out = RecordWriter(self.output.stream)
        enabled = Progress.wanted()
        total = _count_lines(input_file) if enabled and input_file is not None else None
        self.progress = Progress(prog, total=total, enabled=enabled)

    def records(self) -> Iterator[dict]:
        return read_records(self._input, prog=self.prog, kind=self._kind,
                            require=self._require, check=self._check, skip_bad=self._skip_bad,
                            max_bad=self._max_bad, stats=self.stats,
                            warn=sys.stderr)

    def write(self, rec: dict) -> None:
        with self.output.guarded():
            self.out.write(rec)
        self.progress.advance_record()

    def note(self, message: str) -> None:
        self.progress.write(f"{self.prog}: {message}")

    def finish(self) -> None:
        self.progress.close()
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
            _refuse_non_finite(kwargs)
            with guard(prog):
                return fn(*args, **kwargs)

        return wrapper

    return decorate


def _peek(args: list[str], flag: str) -> str | None:
    """The value of ``flag`` in raw command-line ``args`` (for --help before parsing)."""
    if not flag.startswith("-"):  # a positional argument: the first non-option word
        return next((a for a in args if not a.startswith("-")), None)
    for i, arg in enumerate(args):
        if arg == flag and i + 1 < len(args):
            return args[i + 1]
        if arg.startswith(flag + "="):
            return arg.split("=", 1)[1]
    return None


class PluginCommand(click.Command):
    """A command that runs a plugin chosen by ``--<kind>``: its ``--help`` ends with the
    chosen plugin's own options (``-o NAME VALUE``)."""

    def __init__(self, *args, plugin_kind: str, plugin_flag: str, **kwargs):
        super().__init__(*args, **kwargs)
        self.plugin_kind = plugin_kind
        self.plugin_flag = plugin_flag

    def parse_args(self, ctx, args):
        ctx.meta["rf_plugin"] = _peek(args, self.plugin_flag)
        return super().parse_args(ctx, args)

    def format_epilog(self, ctx, formatter):
        super().format_epilog(ctx, formatter)
        from rf_core.plugins import manager
        from rf_core.plugins.options import declared

        try:
            installed = manager.registry(self.plugin_kind)
        except RFError:
            installed = {}
        if installed:
            # what is installed here, third-party plugins included, not a fixed list
            rows = [(name, manager.describe_impl(self.plugin_kind, impl))
                    for name, (_, impl) in sorted(installed.items())]
            with formatter.section(f"Installed {self.plugin_kind} (rf-plugins describes "
                                   "them)"):
                formatter.write_dl(rows)

        name = ctx.meta.get("rf_plugin") or next(
            (p.default for p in self.params if p.name == self.plugin_flag.lstrip("-")), None)
        if name is None:
            return
        try:
            impl = manager.get(self.plugin_kind, str(name))
        except RFError:
            return
        rows = [(f"{o.name} " + ("|".join(map(str, o.choices)) if o.choices
                                 else o.type.__name__.upper()),
                 o.help + ("" if o.default is None else f"  [default: {o.default}]"))
                for o in declared(impl)]
        kind = self.plugin_kind[:-1]
        with formatter.section(f"Options of {kind} {name!r} (-o NAME VALUE)"):
            if rows:
                formatter.write_dl(rows)
            else:
                formatter.write_text("none")


def plugin_command(prog: str, kind: str, flag: str):
    """``click.command`` for a command that runs a ``kind`` plugin chosen by ``flag``."""
    return click.command(name=prog, cls=PluginCommand, plugin_kind=kind, plugin_flag=flag)


def legacy_option(flag: str, option: str, **kwargs) -> Callable:
    """A flag kept for one release: hidden, and passed to the plugin as its option
    ``option`` with a deprecation line on stderr (see ``plugin_kwargs``)."""
    return click.option(flag, f"legacy_{option}", default=None, hidden=True, **kwargs)


def plugin_kwargs(prog: str, kind: str, name: str, impl, params: dict) -> dict:
    """The chosen plugin's options from ``-o``/``--option`` and deprecated flags, checked
    against what the plugin declares (usage error, exit 2, naming the valid ones)."""
    from rf_core.plugins.options import resolve

    given = []
    for key, value in params.items():
        if key.startswith("legacy_") and value is not None:
            option = key[len("legacy_"):]
            flag = "--" + option.replace("_", "-")
            click.echo(f"{prog}: warning: {flag} is deprecated and goes in the next release; "
                       f"use -o {option} {value}", err=True)
            given.append((option, str(value)))
    given += list(params.get("plugin_option") or ())
    given += list(params.get("plugin_assign") or ())
    return resolve(impl, given, kind=kind, name=name)
