"""JSONL records: strict line-by-line reading with line numbers, and flushed writing.

Every record is a JSON object with ``schema_version`` and ``kind``; see schemas/ for the
fields each command reads and adds. Unknown fields pass through untouched.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass, field
from typing import IO, Callable, Iterator

import orjson

from rf_core.records import signals
from rf_core.errors import BadRecord, RFError
from rf_core.records.validation import SchemaError, validate

SCHEMA_VERSION = 1
KINDS = ("task", "example", "pair")

# orjson reads an integer outside -2^63..2^64-1 as a float, silently; such an integer has 19
# digits or more (a run inside a string costs a second parse, never a wrong value). Digits
# mapped to "0", the rest to " ", then a substring test: a fifth of orjson's parse, where a
# regular expression took ten times it.
_DIGITS = bytes(48 if 48 <= i <= 57 else 32 for i in range(256))
_LONG_RUN = b"0" * 19


def _has_long_number(line: bytes | str) -> bool:
    data = line.encode() if isinstance(line, str) else bytes(line)
    return _LONG_RUN in data.translate(_DIGITS)


@dataclass
class ReadStats:
    """What a reader saw: lines read, blank lines skipped, bad lines skipped."""

    lines: int = 0
    blank: int = 0
    records: int = 0
    bad: int = 0
    bad_lines: list[int] = field(default_factory=list)


def parse_line(line: bytes | str, lineno: int, kind: str | tuple[str, ...] | None = None,
               require: tuple[str, ...] = (), check: Callable[[dict], None] | None = None) -> dict:
    """Parse one JSONL line into a record, or raise BadRecord naming the line.

    ``kind``: the record kind expected, or a tuple of the kinds accepted (None: any).

    orjson rejects NaN and Infinity, which are not JSON; a line with an integer beyond 64
    bits is read again with the stdlib, so the integer stays exact. The record is checked
    against the schema of its kind (rf_core.records.validation), so every field a command
    reads has its type.
    """
    try:
        rec = orjson.loads(line)
    except orjson.JSONDecodeError as exc:
        raise BadRecord(lineno, f"invalid JSON: {exc}") from None
    if _has_long_number(line):
        # valid JSON (orjson said so): the stdlib keeps integers of any size exact
        rec = json.loads(line)
    if not isinstance(rec, dict):
        raise BadRecord(lineno, f"expected a JSON object, got {type(rec).__name__}")
    version = rec.get("schema_version")
    if version != SCHEMA_VERSION:
        raise BadRecord(lineno, f"unsupported schema_version {version!r} "
                                f"(expected {SCHEMA_VERSION})")
    kinds = (kind,) if isinstance(kind, str) else kind
    if kinds is not None and rec.get("kind") not in kinds:
        wanted = " or ".join(map(repr, kinds))
        raise BadRecord(lineno, f"expected a {wanted} record, got kind {rec.get('kind')!r}")
    for name in require:
        if name not in rec or rec[name] is None:
            raise BadRecord(lineno, f"{rec.get('kind', 'record')} has no {name!r}")
    try:
        validate(rec)
    except SchemaError as exc:
        raise BadRecord(lineno, str(exc)) from None
    if check is not None:
        try:
            check(rec)
        except ValueError as exc:
            raise BadRecord(lineno, str(exc)) from None
    return rec


def read_records(stream: IO[bytes], *, prog: str, kind: str | tuple[str, ...] | None = None,
                 require: tuple[str, ...] = (), check: Callable[[dict], None] | None = None,
                 skip_bad: bool = False,
                 max_bad: int | None = None, stats: ReadStats | None = None,
                 warn: IO[str] | None = None) -> Iterator[dict]:
    """Yield records from a binary JSONL stream, one line at a time.

    Blank lines are skipped but counted, so line numbers stay those of the file. A bad line
    raises BadRecord unless ``skip_bad`` (or ``max_bad``) is set; then each skipped line gets
    one warning on stderr, and passing ``max_bad`` skipped lines raises RFError.
    """
    stats = stats if stats is not None else ReadStats()
    warn = warn or sys.stderr
    tolerate = skip_bad or max_bad is not None
    for lineno, line in enumerate(stream, start=1):
        stats.lines = lineno
        if not line.strip():
            stats.blank += 1
            continue
        try:
            rec = parse_line(line, lineno, kind, require, check)
        except BadRecord as exc:
            if not tolerate:
                raise
            stats.bad += 1
            stats.bad_lines.append(lineno)
            print(f"Warning: {prog}: line {lineno}: skipped: {exc.reason}", file=warn, flush=True)
            if max_bad is not None and stats.bad > max_bad:
                raise RFError(f"more than {max_bad} bad lines (last: line {lineno})") from None
            continue
        stats.records += 1
        yield rec


class RecordWriter:
    """Writes one record per line with orjson and flushes each, so pipes stream."""

    def __init__(self, stream: IO[bytes]):
        self.stream = stream
        self.count = 0

    def write(self, rec: dict) -> None:
        """Write ``rec`` as one JSON line and flush; a record orjson cannot write (an
        integer beyond 64 bits) is written by the standard library."""
        try:
            data = orjson.dumps(rec, option=orjson.OPT_APPEND_NEWLINE)
        except TypeError as exc:
            data = _dumps_big_integers(rec, exc)
        with signals.held():  # a signal ends the command after this record, never inside it
            view = memoryview(data)
            while view:
                # an interrupted write returns what it wrote so far: write the rest
                n = self.stream.write(view)
                view = view[len(view) if n is None else n:]
            self.stream.flush()
        self.count += 1


def _dumps_big_integers(rec: dict, exc: TypeError) -> bytes:
    """A record holding an integer beyond 64 bits (an unknown field passed through), which
    orjson refuses, written by the stdlib: the integer byte-exact, NaN still refused."""
    if "64-bit" not in str(exc):
        raise RFError(f"cannot serialise record: {exc}") from None
    try:
        text = json.dumps(rec, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    except (TypeError, ValueError) as err:
        raise RFError(f"cannot serialise record: {err}") from None
    return text.encode() + b"\n"


def new_record(kind: str, **fields) -> dict:
    """A record of ``kind`` with the schema header first."""
    if kind not in KINDS:
        raise ValueError(f"unknown record kind {kind!r}")
    return {"schema_version": SCHEMA_VERSION, "kind": kind, **fields}


def to_stderr(message: str) -> None:
    """The default ``report``: one line on stderr, flushed (stdout carries data only)."""
    print(message, file=sys.stderr, flush=True)
