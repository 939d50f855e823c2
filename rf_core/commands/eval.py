"""rf-eval: execution accuracy, pass@k, accuracy by hardness, error counts."""

from pathlib import Path

import click

from rf_core.commands.errors import command
from rf_core.commands.params import input_options
from rf_core.commands.pipe import Pipe
from rf_core.errors import BadRecord, RFError
from rf_core.report.evaluate import Evaluation, markdown
from rf_core.records.files import write_atomic
from rf_core.records.io import read_records
from rf_core.report.stats import compare
from rf_core.exec.checks import check_scored

PROG = "rf-eval"


@click.command(name=PROG)
@input_options
@click.option("--markdown", "markdown_file", type=click.Path(dir_okay=False), default=None,
              help="Also write the report as a Markdown table to FILE.")
@click.option("--title", default="ReasonForge evaluation", help="Title of the Markdown report.")
@click.option("--baseline", type=click.Path(exists=True, dir_okay=False), default=None,
              help="Compare with another evaluation of the same tasks: an rf-eval report "
              "line or a file of executed tasks. Adds the EX difference with a 95% paired "
              "bootstrap interval, an exact McNemar p-value and the tasks won and lost.")
@command(PROG)
def cli(input_file, skip_bad, max_bad, markdown_file, title, baseline):
    """Score executed tasks: the vote where a task has one, else its first candidate.
    Writes one JSON report line to stdout: EX with its 95% interval, pass@k, EX by
    hardness, and EX and pass@k under every matcher whose verdicts the candidates carry."""
    base_outcomes = _baseline_outcomes(baseline) if baseline else None
    pipe = Pipe(PROG, input_file, check=check_scored, skip_bad=skip_bad, max_bad=max_bad)
    ev = Evaluation()
    for task in pipe.records():
        ev.add(task)
    pipe.finish()
    if ev.n_tasks == 0:
        raise RFError("no task records in the input")
    if ev.unexecuted:
        pipe.note(f"{ev.unexecuted} of {ev.candidates} candidate(s) carry no 'exec' "
                  f"(verifier {', '.join(sorted(ev.unexecuted_by)) or 'unknown'}): EX and "
                  "pass@k come from their verdicts; exec_errors, timeouts and truncated "
                  "count only executed candidates")
    report = ev.report()
    if base_outcomes is not None:
        comparison = compare(report["outcomes"], base_outcomes)
        if not comparison["tasks"]:
            raise RFError(f"no task id in common with the baseline {baseline}")
        report["baseline"] = {"file": str(baseline), **comparison}
    pipe.write(report)
    if markdown_file:
        _write_markdown(Path(markdown_file), markdown(report, title))


def _write_markdown(path: Path, text: str) -> None:
    """Through a temporary name beside it (its folder made if missing), so a full disk never
    leaves half a report in place of the old one; a device or a pipe (/dev/stdout) is
    written directly, since a rename would replace it."""
    data = text.encode("utf-8")
    try:
        if path.exists() and not path.is_file():
            with open(path, "wb") as fh:
                fh.write(data)
            return
        with write_atomic(path) as tmp:
            tmp.write_bytes(data)
    except OSError as exc:
        raise RFError(f"cannot write --markdown {path}: {exc.strerror or exc}") from None


def _baseline_outcomes(path: str) -> dict[str, bool]:
    """Per-task outcomes of the baseline: a report's ``outcomes``, or scored tasks."""
    try:
        with open(path, "rb") as fh:
            return _outcomes_of(read_records(fh, prog=PROG, kind=None))
    except (BadRecord, ValueError) as exc:
        raise RFError(f"--baseline {path}: {exc}") from None


def _outcomes_of(records) -> dict[str, bool]:
    first = next(records, None)
    if first is None:
        raise ValueError("no records")
    if first.get("kind") == "report":
        if not isinstance(first.get("outcomes"), dict):
            raise ValueError("the report has no per-task outcomes (written by an older "
                             "rf-eval); pass its task file instead")
        return {str(k): bool(v) for k, v in first["outcomes"].items()}
    ev = Evaluation()
    for task in (first, *records):
        if task.get("kind") != "task":
            raise ValueError(f"expected task records or one report, found kind "
                             f"{task.get('kind')!r}")
        check_scored(task)
        ev.add(task)
    return ev.outcomes


main = cli
