"""rf-train run once through, and once killed (SIGKILL, in its own session) at its first
checkpoint and resumed: what the resume tests of every trainer compare."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path


def rf_train(*args: str) -> list[str]:
    """The command line of rf-train in a process of its own."""
    return [sys.executable, "-c", "from rf_core.commands.train import main; main()", *args]


def through_and_resumed(common: list[str], tmp: Path) -> tuple[dict, dict]:
    """The reports of rf-train ``common`` into tmp/ref, run through, and into tmp/run, killed
    once OUT.partial holds a checkpoint and run again with --resume."""
    ref = subprocess.run(rf_train("--out", str(tmp / "ref"), *common),
                         capture_output=True, timeout=600)
    assert ref.returncode == 0, ref.stderr.decode()[-2000:]
    out = tmp / "run"
    proc = subprocess.Popen(rf_train("--out", str(out), *common), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, start_new_session=True)
    state = out.with_name("run.partial") / "checkpoint" / "state.json"
    deadline = time.time() + 300
    while not state.is_file() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    assert proc.poll() is None, "the run finished before it could be interrupted"
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not out.exists()
    resumed = subprocess.run(rf_train("--out", str(out), "--resume", *common),
                             capture_output=True, timeout=600)
    assert resumed.returncode == 0, resumed.stderr.decode()[-2000:]
    assert b"resuming at step" in resumed.stderr
    return json.loads(ref.stdout), json.loads(resumed.stdout)
