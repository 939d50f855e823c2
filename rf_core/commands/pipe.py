"""A record-streaming command's run: its input records, output writer, progress and summary."""

from __future__ import annotations

import os
import stat
import sys
from typing import BinaryIO, Callable, Iterator

import click

from rf_core.commands.output import Output
from rf_core.records.io import ReadStats, RecordWriter, read_records


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
        """The plugin counts its own work from now on: ``total`` of ``unit`` (None: unknown)."""
        self.owned_by_plugin = True
        if self.enabled:
            self._open(total, unit)

    def update(self, n: int = 1) -> None:
        """Advance by ``n``."""
        if self._bar is not None:
            self._bar.update(n)

    def advance_record(self) -> None:
        """One record written: advance by one unless a plugin counts its own work."""
        if not self.owned_by_plugin:
            self.update(1)

    def write(self, message: str) -> None:
        """A log line that does not tear the bar."""
        if self._bar is not None:
            self._bar.write(message, file=sys.stderr)
        else:
            click.echo(message, err=True)

    def close(self) -> None:
        """Close the bar, if one is shown."""
        if self._bar is not None:
            self._bar.close()
            self._bar = None


def count_lines(stream: BinaryIO) -> int | None:
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

    def __init__(self, prog: str, input_file: BinaryIO | None, *,
                 kind: str | tuple[str, ...] | None = "task",
                 require: tuple[str, ...] = (), check: Callable[[dict], None] | None = None,
                 skip_bad: bool = False, max_bad: int | None = None):
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
        total = count_lines(input_file) if enabled and input_file is not None else None
        self.progress = Progress(prog, total=total, enabled=enabled)

    def records(self) -> Iterator[dict]:
        """The input's records, checked (bad lines stop it or are skipped, as asked)."""
        return read_records(self._input, prog=self.prog, kind=self._kind,
                            require=self._require, check=self._check, skip_bad=self._skip_bad,
                            max_bad=self._max_bad, stats=self.stats,
                            warn=sys.stderr)

    def write(self, rec: dict) -> None:
        """Write one record to stdout and advance the progress."""
        with self.output.guarded():
            self.out.write(rec)
        self.progress.advance_record()

    def note(self, message: str) -> None:
        """A stderr line naming the command."""
        self.progress.write(f"{self.prog}: {message}")

    def finish(self) -> None:
        """Close the progress and say how many bad lines were skipped, if any."""
        self.progress.close()
        if self.stats.bad:
            self.note(f"skipped {self.stats.bad} bad line(s): "
                      + ", ".join(map(str, self.stats.bad_lines[:20]))
                      + (" ..." if self.stats.bad > 20 else ""))
