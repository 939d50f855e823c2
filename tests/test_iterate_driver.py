"""bin/iterate.sh as a process: its lock, signals, failed stages and changed settings.

The rf-* commands are replaced by small fakes on PATH, so these tests are about the driver
alone and take seconds.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
ARGS = ["--model", "fake", "--dataset", "demo", "--iterations", "1", "-k", "4",
        "--train-size", "8", "--dev-size", "2", "--vote", "0"]

FAKE = r"""#!/usr/bin/env bash
# A stand-in for an rf-* command. FAKE_SLOW names one that streams a line every 0.1 s for a
# minute; FAKE_FAIL one that dies at once with status 3 and no output.
name=$(basename "$0")
[[ ${FAKE_FAIL:-} == "$name" ]] && exit 3
if [[ ${FAKE_SLOW:-} == "$name" ]]; then
  for i in $(seq 1 600); do echo "{\"line\": $i, \"pid\": $$}"; sleep 0.1; done
  exit 0
fi
case $name in
  rf-data) echo "{\"writer\": $$}" ;;
  rf-report) echo "# report" > "$1/report.md" ;;
  rf-eval|rf-train) echo '{}' ;;
  rf-filter|rf-inject) cat > /dev/null ;;
  *) cat ;;
esac
"""


@pytest.fixture
def fakes(tmp_path) -> dict:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name in ("rf-data", "rf-sample", "rf-exec", "rf-vote", "rf-eval", "rf-filter",
                 "rf-inject", "rf-train", "rf-report"):
        (bin_dir / name).write_text(FAKE)
        (bin_dir / name).chmod(0o755)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RF_", "FAKE_"))}
    env["PATH"] = f"{bin_dir}{os.pathsep}{env['PATH']}"
    return env


def default_signals() -> None:
    """A shell cannot trap a signal that was ignored when it started (bash's rule), and a test
    run started under nohup or with `&` in a script ignores SIGHUP or SIGINT: the driver gets
    them back at their defaults, as from a terminal."""
    for sig in (signal.SIGINT, signal.SIGHUP, signal.SIGTERM):
        signal.signal(sig, signal.SIG_DFL)


def start(env, out, *extra, **fake) -> subprocess.Popen:
    return subprocess.Popen(["bash", str(ROOT / "bin" / "iterate.sh"), *ARGS, "--out", str(out),
                             *extra], env={**env, **fake}, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True,
                            preexec_fn=default_signals)


def finish(env, out, *extra, **fake) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", str(ROOT / "bin" / "iterate.sh"), *ARGS, "--out", str(out),
                           *extra], env={**env, **fake}, capture_output=True, text=True,
                          timeout=60)


def wait_for(predicate, within=20.0):
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return False


def stage_running(out: Path):
    return lambda: list((out / "data").glob("train.jsonl.tmp.*"))


def writers(out: Path) -> set[int]:
    """The pids of the slow fake still running for this folder's run."""
    pids = set()
    for tmp in (out / "data").glob("train.jsonl.tmp.*"):
        for line in tmp.read_text().splitlines():
            if '"pid"' in line:
                pids.add(int(line.rsplit(":", 1)[1].strip(" }")))
    return {p for p in pids if Path(f"/proc/{p}").exists()
            and Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"}


def test_a_second_run_on_the_same_folder_exits_2_naming_the_first(fakes, tmp_path):
    out = tmp_path / "run"
    first = start(fakes, out, FAKE_SLOW="rf-data")
    try:
        assert wait_for(stage_running(out)), first.stderr.read() if first.poll() else ""
        second = finish(fakes, out)
        assert second.returncode == 2
        assert f"is in use by another run (pid {first.pid})" in second.stderr
        assert not (out / "data" / "train.jsonl").exists()
    finally:
        first.send_signal(signal.SIGTERM)
        first.communicate(timeout=20)


@pytest.mark.parametrize("sig, code", [(signal.SIGTERM, 143), (signal.SIGINT, 130),
                                       (signal.SIGHUP, 129)])
def test_stopping_the_driver_stops_its_stage(fakes, tmp_path, sig, code):
    out = tmp_path / "run"
    proc = start(fakes, out, FAKE_SLOW="rf-data")
    assert wait_for(stage_running(out))
    assert wait_for(lambda: writers(out))
    running = writers(out)
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=20)
    assert proc.returncode == code, err
    assert wait_for(lambda: not {p for p in running if p in writers(out) or
                                 Path(f"/proc/{p}").exists() and "Z" != Path(
                                     f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()[0]},
                    within=5), "the stage outlived the driver"
    assert not (out / "data" / "train.jsonl").exists()


@pytest.mark.parametrize("whole_group", [False, True])
def test_sigkill_of_the_driver_kills_its_stage_and_a_rerun_has_one_writer(fakes, tmp_path,
                                                                          whole_group):
    out = tmp_path / "run"
    proc = start(fakes, out, FAKE_SLOW="rf-data")
    assert wait_for(stage_running(out)) and wait_for(lambda: writers(out))
    running = writers(out)
    if whole_group:
        os.killpg(proc.pid, signal.SIGKILL)
    else:
        proc.kill()
    proc.communicate(timeout=20)
    # an immediate rerun may find the dying stage still holding the lock: it waits for it
    rerun = finish(fakes, out)
    assert rerun.returncode == 0, rerun.stderr
    assert not (running & writers(out)), "the stage outlived it"
    lines = (out / "data" / "train.jsonl").read_text().splitlines()
    assert len(lines) == 1 and '"writer"' in lines[0], lines  # one writer: the rerun's fake
    assert not list(out.rglob("*.tmp*"))


def test_a_failed_stage_says_which_with_its_command_and_status(fakes, tmp_path):
    r = finish(fakes, tmp_path / "run", FAKE_FAIL="rf-exec")
    assert r.returncode == 3
    assert "iteration 0: stage dev-greedy-exec failed with exit status 3:" in r.stderr
    assert "rf-exec <" in r.stderr
    assert not (tmp_path / "run" / "iter0" / "dev.greedy.jsonl").exists()


def test_a_rerun_with_other_settings_refuses_unless_forced(fakes, tmp_path):
    out = tmp_path / "run"
    assert finish(fakes, out).returncode == 0
    again = finish(fakes, out)
    assert again.returncode == 0 and "done already" in again.stderr
    longer = finish(fakes, out, "--iterations", "2")  # extending the loop is a resume
    assert longer.returncode == 0, longer.stderr
    changed = finish(fakes, out, "-k", "2", "--train-size", "4")
    assert changed.returncode == 2
    assert "holds a run with other settings" in changed.stderr
    assert "K: 4 -> 2" in changed.stderr and "TRAIN_SIZE: 8 -> 4" in changed.stderr
    assert "K=4" in (out / "config.env").read_text().splitlines()
    forced = finish(fakes, out, "-k", "2", "--train-size", "4", "--force")
    assert forced.returncode == 0, forced.stderr
    assert "done already" not in forced.stderr
    config = (out / "config.env").read_text().splitlines()
    assert "K=2" in config and "TRAIN_SIZE=4" in config and "MAX_LEN=1024" in config


def test_the_validation_sample_is_disjoint_from_train_and_dev(fakes, tmp_path):
    import sys

    import orjson

    real = Path(sys.executable).parent / "rf-data"
    fake = Path(fakes["PATH"].split(os.pathsep)[0]) / "rf-data"
    fake.unlink()
    fake.symlink_to(real)
    out = tmp_path / "run"
    r = subprocess.run(["bash", str(ROOT / "bin" / "iterate.sh"), *ARGS, "--out", str(out),
                        "--train-size", "30", "--dev-size", "20", "--val-size", "25"],
                       env={**fakes, "RF_CACHE_DIR": str(tmp_path / "cache")},
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    sets = {}
    for name in ("train", "val", "dev"):
        lines = (out / "data" / f"{name}.jsonl").read_bytes().splitlines()
        recs = [orjson.loads(x) for x in lines]
        sets[name] = {(t["db_id"], t["question"]) for t in recs}
        assert len(recs) == {"train": 30, "val": 25, "dev": 20}[name]
    assert not sets["val"] & sets["train"]
    assert not sets["val"] & sets["dev"] and not sets["train"] & sets["dev"]
    again = subprocess.run(["bash", str(ROOT / "bin" / "iterate.sh"), *ARGS, "--dry-run",
                            "--out", str(out), "--val-size", "25"], env=fakes,
                           capture_output=True, text=True, timeout=60)
    assert "--split train --limit 25 --seed 0 --exclude" in again.stdout


LAUNCHER = r"""#!/usr/bin/env bash
# A stand-in for torchrun: one line of its arguments, then its own options (--name value)
# dropped, it runs the rest
printf '%s\n' "$*" >> "$LAUNCHER_LOG"
while [[ $1 == --* ]]; do shift 2; done
exec "$@"
"""


def test_every_training_stage_runs_through_the_train_launcher(fakes, tmp_path):
    launcher = tmp_path / "launch"
    launcher.write_text(LAUNCHER)
    launcher.chmod(0o755)
    log, out = tmp_path / "launcher.log", tmp_path / "run"
    r = finish({**fakes, "LAUNCHER_LOG": str(log)}, out, "--retrain-on-errors",
               "--train-launcher", f"{launcher} --nproc-per-node 2")
    assert r.returncode == 0, r.stderr
    calls = log.read_text().splitlines()
    rf_train = Path(fakes["PATH"].split(os.pathsep)[0]) / "rf-train"
    # the SFT baseline, the iteration and the extra round on errors: each one launched
    folders = [out / "sft", out / "iter1", out / "iter2"]
    assert len(calls) == len(folders)
    for call, folder in zip(calls, folders):
        assert call.startswith(f"--nproc-per-node 2 {rf_train} --trainer peft ")
        assert f" --out {folder / 'adapter'} " in call
        assert call.endswith(f" {folder / 'examples.jsonl'}")  # FILE: stdin is shared
        assert (folder / "train.report.json").read_text() == "{}\n"
    assert "TRAIN_LAUNCHER=" in (out / "config.env").read_text()


def test_without_a_launcher_rf_train_reads_its_examples_on_stdin(fakes, tmp_path):
    r = subprocess.run(["bash", str(ROOT / "bin" / "iterate.sh"), *ARGS, "--out",
                        str(tmp_path / "run"), "--dry-run"], env=fakes, capture_output=True,
                       text=True, timeout=60)
    trains = [line for line in r.stdout.splitlines() if "rf-train" in line]
    assert trains and all(line.startswith("rf-train --trainer ") and
                          " < " in line for line in trains)
