"""Running a job in the vllm worker: a subprocess per job (``run_once``), or a long-lived engine
in a folder (``ServedEngine``); and the one-line root cause of a failure (``root_cause``)."""

from __future__ import annotations

import fcntl
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable

import orjson

from rf_core.api import RFError, engine_alive, stop_engine

from rf_plugins.vllm.worker import recv_all

WORKER = [sys.executable, "-m", "rf_plugins.vllm.worker"]
DEBUG_LINES = 60  # of the worker's log, shown with RF_DEBUG=1

# a log line's prefix: "(EngineCore pid=12) ERROR 12-03 08:04:29 [core.py:1512] "
_PREFIX = re.compile(r"^(?:\([\w.-]+ pid=\d+\) )?(?:[A-Z]+ \d\d-\d\d [\d:.]+ \[[^\]]*\] )?")
# the last line of a traceback: "RuntimeError: ...", "torch.OutOfMemoryError: ..."
_EXCEPTION = re.compile(r"^(?:[A-Za-z_][\w.]*\.)?([A-Za-z_]\w*(?:Error|Exception))(?:: (.*))?$")
# vLLM's wrappers around the real error, which name no cause of their own
_WRAPPERS = ("EngineDeadError", "EngineCore encountered", "Engine core initialization failed",
             "Worker failed with error", "See root cause above", "see stack trace above")


def root_cause(log: str, returncode: int | None = None) -> str:
    """The first error in a worker's log that is not one of vLLM's wrappers (which say 'see
    the root cause above'), on one line; else a vLLM process that died without one (the OOM
    killer's SIGKILL); else the log's last line. A signal that killed the worker is named."""
    lines = [_PREFIX.sub("", line).strip() for line in log.splitlines()]
    errors = [f"{m.group(1)}: {m.group(2).strip()}" for m in map(_EXCEPTION.match, lines)
              if m and m.group(2)]
    real = [e for e in errors if not any(w in e for w in _WRAPPERS)]
    died = [line for line in lines if "died unexpectedly" in line or "died with exit code" in line]
    if real:
        cause = real[0]
    elif died:
        cause = died[0] + (" (SIGKILL: out of memory?)" if "-9" in died[0] else "")
    else:
        cause = (errors or [line for line in lines if line] or ["no output"])[-1]
    if returncode is not None and returncode < 0:
        name = signal.Signals(-returncode).name
        cause = f"killed by {name}" + (" (out of memory?)" if name == "SIGKILL" else "") + \
            ("" if cause == "no output" else f"; {cause}")
    return cause


def failure(what: str, log_path: Path, returncode: int | None = None) -> RFError:
    """The error for a failed worker: its root cause on one line and where its log is; with
    RF_DEBUG=1 the log's last lines go to stderr first."""
    try:
        log = log_path.read_text(errors="replace")
    except OSError:
        log = ""
    if os.environ.get("RF_DEBUG") == "1":
        tail = log.splitlines()[-DEBUG_LINES:]
        print(f"--- the last {len(tail)} lines of {log_path} ---", *tail, "---",
              sep="\n", file=sys.stderr, flush=True)
    status = f" (exit {returncode})" if returncode is not None and returncode > 0 else ""
    return RFError(f"{what}{status}: {root_cause(log, returncode)} [log: {log_path}; "
                   "RF_DEBUG=1 prints its end]")


def run_once(job: dict, *, report: Callable[[str], None]) -> dict:
    """Start a worker for this one job: an engine start, one generate, the process ends (so
    the GPU memory is surely free afterwards). The log is kept only when it fails."""
    fd, log_name = tempfile.mkstemp(prefix="rf-vllm-", suffix=".log")
    log_path = Path(log_name)
    with tempfile.TemporaryDirectory(prefix="rf-vllm-") as tmp:
        job_file, out_file = Path(tmp) / "job.json", Path(tmp) / "out.json"
        job_file.write_bytes(orjson.dumps(job))
        with os.fdopen(fd, "wb") as log:
            proc = subprocess.run([*WORKER, "run", str(job_file), str(out_file)],
                                  stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                  env=dict(os.environ))
        if proc.returncode != 0 or not out_file.is_file():
            raise failure("the vllm worker failed", log_path, proc.returncode)
        reply = orjson.loads(out_file.read_bytes())
    log_path.unlink(missing_ok=True)
    return reply


class ServedEngine:
    """An engine that outlives one rf-sample call, in a folder: ``engine.pid``, ``engine.json``
    (its settings and start time, once it is ready), ``engine.sock`` and ``engine.log``.

    The first job starts it; later jobs with the same settings use it. A job whose settings
    differ (another model, memory share, length, or an adapter of a higher LoRA rank than the
    engine was started for) stops it and starts another, saying so.
    """

    def __init__(self, folder: str, *, idle: int, report: Callable[[str], None]):
        self.folder = Path(folder).resolve()
        self.idle = idle
        self.report = report
        self.log = self.folder / "engine.log"

    def _info(self) -> dict | None:
        try:
            info = orjson.loads((self.folder / "engine.json").read_bytes())
        except (OSError, orjson.JSONDecodeError):
            return None
        return info if engine_alive(info.get("pid", -1), self.folder) else None

    @staticmethod
    def fits(running: dict, wanted: dict) -> bool:
        """Whether an engine started with ``running`` settings can run a ``wanted`` job."""
        same = {k: v for k, v in running.items() if k != "lora_rank"}
        return (same == {k: v for k, v in wanted.items() if k != "lora_rank"}
                and (running.get("lora_rank") or 0) >= (wanted.get("lora_rank") or 0))

    def _start(self, settings: dict) -> dict:
        self.report(f"vllm: starting an engine in {self.folder} (log: {self.log})")
        with open(self.log, "wb") as log:
            proc = subprocess.Popen(
                [*WORKER, "serve", str(self.folder), orjson.dumps(settings).decode(),
                 "--idle", str(self.idle)],
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                env=dict(os.environ), start_new_session=True)
        while (info := self._info()) is None:
            if proc.poll() is not None:
                raise failure("the vllm engine did not start", self.log, proc.returncode)
            time.sleep(0.2)
        self.report(f"vllm: engine started in {info['start_s']:.1f} s (pid {info['pid']})")
        return info

    def _ensure(self, settings: dict) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        with open(self.folder / "engine.lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)  # one caller starts it, the others wait
            info = self._info()
            if info is not None and not self.fits(info["settings"], settings):
                self.report("vllm: the engine in this folder was started for other settings; "
                            "restarting it")
                settings = {**settings, "lora_rank": max(settings.get("lora_rank") or 0,
                                                         info["settings"].get("lora_rank") or 0)}
                stop_engine(self.folder)
                info = None
            if info is None:
                stop_engine(self.folder)  # one still starting, or stuck
                self._start(settings)
            else:
                self.report(f"vllm: using the engine in {self.folder} (pid {info['pid']}, "
                            f"started in {info['start_s']:.1f} s)")

    def _connect(self, settings: dict) -> socket.socket:
        for attempt in (1, 2):
            self._ensure(settings)
            conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            fd = os.open(self.folder, os.O_RDONLY)
            try:
                conn.connect(f"/proc/self/fd/{fd}/engine.sock")
                return conn
            except (ConnectionRefusedError, FileNotFoundError):
                conn.close()  # it stopped (idle) between the check and now: start another
                if attempt == 2:
                    raise
            finally:
                os.close(fd)
        raise AssertionError("unreachable: the second attempt returns or raises")

    def run(self, job: dict) -> dict:
        try:
            with self._connect(job["settings"]) as conn:
                conn.sendall(orjson.dumps(job))
                conn.shutdown(socket.SHUT_WR)
                data = recv_all(conn)
        except OSError as exc:
            raise failure(f"the vllm engine in {self.folder} failed ({exc})", self.log) from None
        reply = orjson.loads(data) if data else {"error": "no answer"}
        if "error" in reply:
            raise failure(f"the vllm engine in {self.folder} failed", self.log)
        reply["start_s"] = None  # started earlier, and said so
        return reply
