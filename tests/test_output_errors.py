"""Output that cannot be written ends a command with one line, never a traceback: stdout on a
full disk or past a file-size limit (the file then ends at a complete line), rf-eval's
--markdown, rf-report on files it cannot read, a non-UTF-8 output path."""

from __future__ import annotations

import json
import os
import resource
import signal
import subprocess
import sys
from pathlib import Path

import click
import orjson
import pytest
from click.testing import CliRunner

from rf_core.commands import report as report_cmd
from conftest import jsonl, make_task, run

BIN = Path(sys.executable).parent
FULL = "No space left on device"
TOO_LARGE = "File too large"
EXEC = {"ok": True, "error": None, "n_rows": 1, "digest": "d", "ms": 0.1, "truncated": False}


def executed(db: str, i: int, correct: bool) -> dict:
    task = make_task(db, "SELECT 1", ["SELECT 1", "SELECT 2"], id=f"t/{i}",
                     question="q " + "x" * 300)
    for c in task["candidates"]:
        c.update(exec=EXEC, correct=correct)
    task["gold_exec"] = EXEC
    return task


def commands(db: str, tmp: Path) -> dict[str, tuple[list[str], bytes | None]]:
    """Each command with arguments and input that write several lines to stdout."""
    right = jsonl([executed(db, i, True) for i in range(8)])
    wrong = jsonl([executed(db, i, False) for i in range(8)])
    # rf-exec's output must pass 4 KiB: its workers' shared memory is a file of that size
    raw = jsonl([make_task(db, "SELECT 1", ["SELECT 1"], id=f"t/{i}", question="q " + "x" * 300)
                 for i in range(30)])
    return {
        "rf-exec": (["--jobs", "1"], raw),
        "rf-vote": ([], right),
        "rf-filter": ([], right),
        "rf-inject": ([], wrong),
        "rf-eval": ([], right),
        "rf-data": (["demo", "--root", str(tmp / "demo"), "--limit", "8"], None),
        "rf-plugins": ([], None),
        "rf-model": (["list"], None),
    }


NAMES = ["rf-exec", "rf-vote", "rf-filter", "rf-inject", "rf-eval", "rf-data", "rf-plugins",
         "rf-model"]


def launch(name: str, args: list[str], data: bytes | None, stdout, tmp: Path,
           fsize: int | None = None, unbuffered: bool = False) -> subprocess.CompletedProcess:
    def limit():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # the write fails with EFBIG instead
        resource.setrlimit(resource.RLIMIT_FSIZE, (fsize, fsize))

    env = {**os.environ, "RF_CACHE_DIR": str(tmp / "cache"), "RF_LOAD_PLUGINS": ""}
    env.pop("RF_DEBUG", None)
    env.pop("PYTHONUNBUFFERED", None)
    if unbuffered:  # stdout is then a raw file: a write may take part of what it is given
        env["PYTHONUNBUFFERED"] = "1"
    return subprocess.run([str(BIN / name), *args], input=data or b"", stdout=stdout,
                          stderr=subprocess.PIPE, env=env, timeout=300,
                          preexec_fn=limit if fsize is not None else None)


def one_error_line(name: str, err: bytes, reason: str) -> None:
    text = err.decode()
    assert "Traceback" not in text and "Exception ignored" not in text, text
    errors = [line for line in text.splitlines() if line.startswith("Error")]
    assert errors == [f"Error: {name}: cannot write output: {reason}"], text


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("unbuffered", [False, True], ids=["buffered", "unbuffered"])
def test_stdout_on_a_full_disk_is_one_line(name, unbuffered, shop_db, tmp_path):
    args, data = commands(shop_db, tmp_path)[name]
    with open("/dev/full", "wb") as full:
        proc = launch(name, args, data, full, tmp_path, unbuffered=unbuffered)
    assert proc.returncode == 1, proc.stderr.decode()
    one_error_line(name, proc.stderr, FULL)


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("part", [0.5, 0.99])
@pytest.mark.parametrize("unbuffered", [False, True], ids=["buffered", "unbuffered"])
def test_stdout_past_a_file_size_limit_ends_at_a_complete_line(name, part, unbuffered,
                                                               shop_db, tmp_path):
    args, data = commands(shop_db, tmp_path)[name]
    # the whole output's size, unlimited (for rf-data this also builds the demo databases,
    # which the limit would apply to)
    whole = launch(name, args, data, subprocess.PIPE, tmp_path)
    assert whole.returncode == 0, whole.stderr.decode()
    fsize = int(len(whole.stdout) * part)
    out = tmp_path / "out.jsonl"
    with open(out, "wb") as fh:
        proc = launch(name, args, data, fh, tmp_path, fsize=fsize, unbuffered=unbuffered)
    assert proc.returncode == 1, proc.stderr.decode()
    one_error_line(name, proc.stderr, TOO_LARGE)
    written = out.read_bytes()
    assert written == b"" or written.endswith(b"\n"), written[-80:]
    if name != "rf-plugins":  # one indented JSON document: cut back to its last whole line
        for line in written.splitlines():
            orjson.loads(line)


def test_a_cut_back_file_keeps_what_came_before(shop_db, tmp_path):
    """Appending (>>) to a file: what was there stays, and the new output ends whole."""
    args, data = commands(shop_db, tmp_path)["rf-vote"]
    out = tmp_path / "out.jsonl"
    out.write_bytes(b'{"before": 1}\n')
    with open(out, "ab") as fh:
        proc = launch("rf-vote", args, data, fh, tmp_path, fsize=1500)
    assert proc.returncode == 1
    written = out.read_bytes()
    assert written.startswith(b'{"before": 1}\n') and written.endswith(b"\n")


# rf-eval --markdown


def test_markdown_into_a_missing_folder_is_written(shop_db, tmp_path):
    target = tmp_path / "new" / "deeper" / "r.md"
    r = run("rf-eval", ["--markdown", str(target)], input=[executed(shop_db, 0, True)])
    assert r.code == 0, r.stderr
    assert target.read_text().startswith("#")
    assert [p.name for p in target.parent.iterdir()] == ["r.md"]


def test_markdown_that_cannot_be_written_is_one_line(shop_db, tmp_path):
    (tmp_path / "file").write_text("x")
    target = tmp_path / "file" / "r.md"  # its folder would be a file
    r = run("rf-eval", ["--markdown", str(target)], input=[executed(shop_db, 0, True)])
    assert r.code == 1
    assert r.stderr.startswith("Error: rf-eval: cannot write --markdown ")
    assert len(r.stderr.strip().splitlines()) == 1


def test_markdown_on_a_full_disk_leaves_the_old_file_whole(shop_db, tmp_path):
    target = tmp_path / "r.md"
    target.write_text("old report\n")
    data = jsonl([executed(shop_db, i, True) for i in range(3)])
    proc = launch("rf-eval", ["--markdown", str(target)], data, subprocess.PIPE, tmp_path,
                  fsize=100)
    assert proc.returncode == 1
    err = proc.stderr.decode()
    assert "Traceback" not in err
    assert [x for x in err.splitlines() if x.startswith("Error")] == [
        f"Error: rf-eval: cannot write --markdown {target}: {TOO_LARGE}"]
    assert target.read_text() == "old report\n"
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []


# rf-report on files it cannot read


def _run_dir(tmp_path: Path) -> Path:
    run_dir = tmp_path / "run"
    for i, ex in ((0, 40.0), (1, 55.0)):
        folder = run_dir / f"iter{i}"
        folder.mkdir(parents=True)
        for name in ("dev.greedy.report.json", "val.greedy.report.json"):
            (folder / name).write_text(json.dumps({"ex": ex, "ex_ci95": [ex - 5, ex + 5]}))
    (run_dir / "iter1" / "train.report.json").write_text(json.dumps({"loss_curve": [2.0, 1.0]}))
    (run_dir / "config.env").write_text("MODEL=m\n")
    (run_dir / "timings.tsv").write_text("iteration\tstage\tms\n1\ttrain\t1000\n")
    return run_dir


def report(run_dir: Path):
    return CliRunner().invoke(report_cmd.cli, [str(run_dir), "--no-plots"])


def test_report_on_a_good_run_folder(tmp_path):
    run_dir = _run_dir(tmp_path)
    r = report(run_dir)
    assert r.exit_code == 0, r.output
    assert os.readlink(run_dir / "best") == "iter1"


BROKEN = {
    "config.env": lambda d: (d / "config.env").write_bytes(b"MODEL=m\xff\xfe\n"),
    "timings.tsv": lambda d: (d / "timings.tsv").write_bytes(b"iteration\tstage\tms\n1\t\xff\t1\n"),
    "ex string": lambda d: (d / "iter1" / "dev.greedy.report.json").write_text('{"ex": "55"}'),
    "val ex list": lambda d: (d / "iter0" / "val.greedy.report.json").write_text('{"ex": [1]}'),
    "ex_ci95 string": lambda d: (d / "iter1" / "dev.greedy.report.json").write_text(
        '{"ex": 55.0, "ex_ci95": "wide"}'),
    "loss_curve number": lambda d: (d / "iter1" / "train.report.json").write_text(
        '{"loss_curve": 3}'),
    "loss_curve strings": lambda d: (d / "iter1" / "train.report.json").write_text(
        '{"loss_curve": ["a", "b"]}'),
    "report not UTF-8": lambda d: (d / "iter1" / "dev.greedy.report.json").write_bytes(
        b'{"ex": 5, "x": "\xff"}'),
}


@pytest.mark.parametrize("case", sorted(BROKEN))
def test_report_on_a_broken_file_is_one_line(tmp_path, case):
    run_dir = _run_dir(tmp_path)
    BROKEN[case](run_dir)
    r = report(run_dir)
    assert r.exit_code == 1, r.output
    assert r.exception is None or isinstance(r.exception, SystemExit), repr(r.exception)
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: rf-report: "), r.stderr


def test_report_refuses_a_best_that_is_a_folder(tmp_path):
    run_dir = _run_dir(tmp_path)
    (run_dir / "best").mkdir()
    (run_dir / "best" / "mine.txt").write_text("keep me")
    r = report(run_dir)
    assert r.exit_code == 1, r.output
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: rf-report: ") and "best" in lines[0]
    assert (run_dir / "best" / "mine.txt").read_text() == "keep me"


# a path that records cannot carry


def test_a_non_utf8_path_is_refused_before_any_work():
    from rf_core.commands.params import check_utf8_path

    check_utf8_path("out/ok-é", "--out")
    bad = os.fsdecode(b"out/\xff")
    with pytest.raises(click.BadParameter, match=r"--out.*not valid UTF-8"):
        check_utf8_path(bad, "--out")


def test_rf_train_refuses_a_non_utf8_out_before_loading(tmp_path):
    out = bytes(tmp_path) + b"/adapter-\xff"
    proc = subprocess.run([str(BIN / "rf-train"), "--base", "no-such-model", "--out", out],
                          input=b"", capture_output=True, cwd=tmp_path)
    assert proc.returncode == 2, proc.stderr
    assert b"--out" in proc.stderr and b"not valid UTF-8" in proc.stderr
    assert b"Traceback" not in proc.stderr
    assert list(tmp_path.iterdir()) == []
