"""rf-report: history.json, report.md and plots for a bin/iterate.sh run folder."""

from pathlib import Path

import click
import orjson

from rf_core.commands.errors import command
from rf_core.errors import RFError
from rf_core.records.files import write_atomic
from rf_core.report.history import build_history, plots, report_markdown

PROG = "rf-report"


@click.command(name=PROG)
@click.argument("run_dir", type=click.Path(exists=True, file_okay=False))
@click.option("--no-plots", is_flag=True, help="Skip the PNG plots.")
@command(PROG)
def cli(run_dir, no_plots):
    """Rebuild RUN_DIR/history.json, report.md, accuracy.png and pass_at_k.png from the
    files the loop's stages wrote, and point RUN_DIR/best at the iteration with the highest
    validation EX."""
    run = Path(run_dir)
    best = run / "best"
    if best.is_dir() and not best.is_symlink():  # refused before anything is written
        raise RFError(f"{best} is a folder, not the link to the best iteration that "
                      "rf-report writes there; move it away and run rf-report again")
    history = build_history(run)
    if not history["iterations"]:
        raise RFError(f"{run_dir} holds no iteration folders")
    drawn = []
    if not no_plots:
        try:
            drawn = plots(history, run)
        except ImportError:
            click.echo(f"{PROG}: matplotlib is not installed; no plots", err=True)
    _point_best(run, history.get("best"))
    with write_atomic(run / "history.json") as tmp:
        tmp.write_bytes(orjson.dumps(history, option=orjson.OPT_INDENT_2))
    with write_atomic(run / "report.md") as tmp:
        tmp.write_text(report_markdown(history, drawn), encoding="utf-8")
    click.echo(f"{PROG}: wrote {run / 'history.json'}, {run / 'report.md'}"
               + (f" and {len(drawn)} plot(s)" if drawn else ""), err=True)


def _point_best(run: Path, best: dict | None) -> None:
    """RUN_DIR/best: a link to the best iteration's folder (chosen on validation EX)."""
    link = run / "best"
    if best is None:
        if link.is_symlink():
            link.unlink()
        return
    with write_atomic(link) as tmp:
        tmp.symlink_to(f"iter{best['iteration']}", target_is_directory=True)


main = cli
