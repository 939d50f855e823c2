"""The vllm sampler without vLLM: its jobs and seeds, the engine arguments it asks for, its
errors, the engine it keeps in a folder (served by a fake engine), rf-model stop, and
bin/iterate.sh's one engine per iteration. tests/vllm_cpu runs it on vLLM for real."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from rf_core.api import sample_seed
from rf_core.testing import registered, run_command
from rf_plugins.vllm import VLLMSampler, client, make_job, worker

from conftest import make_task

ROOT = Path(__file__).resolve().parents[1]

# what vLLM 0.32 (CPU) logged when chunked prefill split a seeded prompt (abridged)
GENERATOR_CRASH = """\
(EngineCore pid=11342) INFO 12-03 08:04:28 [core.py:100] some progress
(Worker pid=11456) ERROR 12-03 08:04:29 [multiproc_executor.py:1063]     gen.set_offset(gen.get_offset() - 4)
(Worker pid=11456) ERROR 12-03 08:04:29 [multiproc_executor.py:1063] RuntimeError: CPU Generator does not use offset
(EngineCore pid=11342) ERROR 12-03 08:04:29 [core.py:1512] RuntimeError: Worker failed with error 'CPU Generator does not use offset', please check the stack trace above for the root cause
vllm.v1.engine.exceptions.EngineDeadError: EngineCore encountered an issue. See stack trace (above) for the root cause.
"""  # noqa: E501


def tasks(db, n=3):
    return [make_task(db, "SELECT 1", None, id=f"v/{i}", question=f"How many products? {i}")
            for i in range(n)]


def fake_answers(job: dict) -> dict:
    """What the worker answers, made up from the seeds (so equal seeds give equal text)."""
    answers = [[{"text": f"SELECT {s % 1000}", "logprob": -1.0, "n_tokens": 3,
                 "finished": True, "seed": s} for s in t["seeds"]] for t in job["tasks"]]
    n = sum(len(t["seeds"]) for t in job["tasks"])
    return {"answers": answers, "start_s": 1.5,
            "stats": {"seconds": 0.5, "requests": n, "prompt_tokens": 100 * n,
                      "cached_tokens": 90 * n, "generated_tokens": 3 * n}}


class FakeVLLM(VLLMSampler):
    name = "vllm-fake"


# -- seeds ------------------------------------------------------------------------------------

def test_every_task_and_sample_gets_its_own_seed_across_neighbouring_seeds():
    messages = [[{"role": "user", "content": f"q{i}"}] for i in range(40)]
    seen = []
    for seed in (0, 1, 2):  # vLLM's n=k children (s, s+1, ...) would overlap here
        job = make_job(messages, settings={}, adapter=None, k=8, temperature=0.7, top_p=1.0,
                       max_new_tokens=16, seed=seed, first_index=0)
        for i, task in enumerate(job["tasks"]):
            assert task["seeds"] == [sample_seed(seed, i, j) for j in range(8)]
            seen += task["seeds"]
    assert len(seen) == len(set(seen)) == 3 * 40 * 8
    later = make_job(messages[:2], settings={}, adapter=None, k=2, temperature=0.7, top_p=1.0,
                     max_new_tokens=16, seed=0, first_index=40)
    assert later["tasks"][1]["seeds"] == [sample_seed(0, 41, 0), sample_seed(0, 41, 1)]


def test_worker_requests_one_seeded_request_per_candidate():
    params = worker.request_params({"temperature": 0.7, "top_p": 0.9, "max_new_tokens": 32},
                                   [11, 12, 13], [7])
    assert [p["seed"] for p in params] == [11, 12, 13]
    assert all(p["n"] == 1 and p["max_tokens"] == 32 and p["stop_token_ids"] == [7]
               for p in params)
    # only the toolkit's stop ids end an answer, as in the other engines
    assert all(p["ignore_eos"] for p in params)


def test_candidates_carry_their_seeds_and_the_same_seed_gives_the_same_candidates(shop_db):
    jobs = []

    def run_job(job):
        jobs.append(job)
        return fake_answers(job)

    with registered(FakeVLLM(run_job=run_job)):
        def sample(*extra):
            r = run_command("rf-sample", ["--sampler", "vllm-fake", "-m", "org/model", "-k",
                                          "4", "-t", "0.7", *extra], input=tasks(shop_db, 5))
            assert r.exit_code == 0, r.stderr
            return r

        a = sample("--seed", "3")
        b = sample("--seed", "3", "-o", "window", "2")  # three jobs, the same seeds
        c = sample("--seed", "4")
    seeds = [[c["seed"] for c in t["candidates"]] for t in a.records]
    assert seeds == [[sample_seed(3, i, j) for j in range(4)] for i in range(5)]
    assert len({s for row in seeds for s in row}) == 20
    assert a.records == b.records and a.records != c.records
    assert [len(j["tasks"]) for j in jobs[1:4]] == [2, 2, 1]
    assert all(c["sampler"] == "vllm-fake" and c["sql"].startswith("SELECT")
               for t in a.records for c in t["candidates"])
    assert "vllm: engine started in 1.5 s" in a.stderr
    assert "vllm: sampled 5 task(s) x 4 in 0.5 s: 60 tokens, 120.0 tok/s" in a.stderr
    assert "90% from the prefix cache" in a.stderr
    assert jobs[0]["settings"] == {"model": "org/model", "tensor_parallel_size": 1,
                                   "gpu_memory_utilization": None, "max_model_len": None,
                                   "dtype": "auto", "eager": "auto", "lora_rank": 0}


def test_options_are_declared_and_checked(shop_db):
    with registered(FakeVLLM(run_job=fake_answers)):
        bad = run_command("rf-sample", ["--sampler", "vllm-fake", "-m", "org/model", "-o",
                                        "gpu_memory_utilization", "1.5"], input=tasks(shop_db))
        ok = run_command("rf-sample", ["--sampler", "vllm-fake", "-m", "org/model",
                                       "-o", "max_model_len", "4096", "-o", "eager", "off",
                                       "-o", "gpu_memory_utilization", "0.5"],
                         input=tasks(shop_db, 1))
    assert bad.exit_code == 2 and "above the maximum" in bad.stderr
    assert ok.exit_code == 0, ok.stderr
    assert {o.name for o in VLLMSampler.options} == {
        "tensor_parallel_size", "gpu_memory_utilization", "max_model_len", "dtype", "eager",
        "window", "engine", "engine_idle"}


# -- the engine's arguments -------------------------------------------------------------------

def test_cpu_engines_never_split_a_seeded_prompt_and_get_a_fixed_kv_cache():
    kw = worker.llm_kwargs({"model": "m", "tensor_parallel_size": 1, "eager": "auto"},
                           cuda=False)
    # chunked prefill would make vLLM call set_offset on a CPU generator (the engine dies)
    assert kw["enable_chunked_prefill"] is False
    assert kw["enable_prefix_caching"] is True and kw["enforce_eager"] is True
    assert kw["kv_cache_memory_bytes"] == 2 * 2**30 and "gpu_memory_utilization" not in kw
    given = worker.llm_kwargs({"model": "m", "gpu_memory_utilization": 0.3,
                               "max_model_len": 2048}, cuda=False)
    assert given["gpu_memory_utilization"] == 0.3 and "kv_cache_memory_bytes" not in given
    assert given["max_model_len"] == 2048
    # dtype: vLLM's own choice unless one is asked for, in vLLM's spelling
    assert "dtype" not in kw and "dtype" not in given
    assert worker.llm_kwargs({"model": "m", "dtype": "fp32"}, cuda=False)["dtype"] == "float32"


def test_gpu_engines_keep_vllms_defaults_and_take_lora_ranks_it_accepts():
    kw = worker.llm_kwargs({"model": "m", "tensor_parallel_size": 2, "lora_rank": 12},
                           cuda=True)
    assert kw["gpu_memory_utilization"] == 0.85 and kw["tensor_parallel_size"] == 2
    assert "enable_chunked_prefill" not in kw and kw["enforce_eager"] is False
    assert kw["enable_lora"] and kw["max_lora_rank"] == 16 and "max_model_len" not in kw
    assert worker.llm_kwargs({"model": "m", "eager": "on"}, cuda=True)["enforce_eager"]
    with pytest.raises(ValueError, match="above vLLM's largest"):
        worker.llm_kwargs({"model": "m", "lora_rank": 1024}, cuda=True)


# -- errors -----------------------------------------------------------------------------------

def test_the_root_cause_is_the_first_error_that_is_not_a_wrapper():
    assert client.root_cause(GENERATOR_CRASH) == "RuntimeError: CPU Generator does not use offset"
    oom = ("(VllmWorker-0 pid=9) ERROR 12-03 08:21:44 [multiproc_executor.py:316] Worker proc "
           "VllmWorker-0 died unexpectedly (exit code: -9), shutting down executor.\n"
           "vllm.v1.engine.exceptions.EngineDeadError: EngineCore encountered an issue.\n")
    assert client.root_cause(oom).endswith("(exit code: -9), shutting down executor. "
                                           "(SIGKILL: out of memory?)")
    assert client.root_cause("", -9) == "killed by SIGKILL (out of memory?)"
    assert client.root_cause("torch.OutOfMemoryError: CUDA out of memory. Tried 2 GiB\n") == \
        "OutOfMemoryError: CUDA out of memory. Tried 2 GiB"
    assert client.root_cause("just a line\n\n") == "just a line"


@pytest.fixture
def fake_worker(tmp_path, monkeypatch):
    """Point the sampler at a script in place of `python -m rf_plugins.vllm.worker`."""
    def install(source: str) -> Path:
        script = tmp_path / "fake_worker.py"
        script.write_text(textwrap.dedent(source))
        monkeypatch.setattr(client, "WORKER", [sys.executable, str(script)])
        monkeypatch.setattr("rf_plugins.vllm.require_vllm", lambda: None)
        return script
    return install


def test_a_worker_crash_is_one_line_naming_the_cause_and_the_log(fake_worker, shop_db,
                                                                  monkeypatch):
    fake_worker(f"""
        import sys
        print({GENERATOR_CRASH!r})  # vLLM logs to stdout
        print("Traceback (most recent call last):", file=sys.stderr)
        sys.exit(1)
    """)
    monkeypatch.delenv("RF_VLLM_ENGINE", raising=False)
    r = run_command("rf-sample", ["--sampler", "vllm", "-m", "org/model", "-k", "2", "-t",
                                  "0.7"], input=tasks(shop_db, 1))
    assert r.exit_code == 1 and r.stdout == b""
    error = r.stderr.strip().splitlines()[-1]
    assert error.startswith("Error: rf-sample: the vllm worker failed (exit 1): RuntimeError: "
                            "CPU Generator does not use offset [log: ")
    log = Path(error.split("[log: ")[1].split(";")[0])
    assert "set_offset" in log.read_text()
    log.unlink()


def test_rf_debug_prints_the_end_of_the_workers_log(tmp_path, monkeypatch, capsys):
    log = tmp_path / "worker.log"
    log.write_text("".join(f"line {i}\n" for i in range(100)) + GENERATOR_CRASH)
    monkeypatch.setenv("RF_DEBUG", "1")
    error = client.failure("the vllm worker failed", log, 1)
    assert str(error) == ("the vllm worker failed (exit 1): RuntimeError: CPU Generator does "
                          f"not use offset [log: {log}; RF_DEBUG=1 prints its end]")
    err = capsys.readouterr().err
    assert f"--- the last 60 lines of {log} ---" in err and "gen.set_offset" in err
    assert "line 44" not in err and "line 45" in err


# -- one engine kept in a folder --------------------------------------------------------------

FAKE_SERVER = f"""
    import sys, time
    sys.path.insert(0, {str(ROOT)!r})
    from rf_plugins.vllm import worker

    class FakeEngine:
        def __init__(self, settings):
            if settings.get("max_model_len") == 31:
                raise RuntimeError("no engine for 31 tokens")
            time.sleep(0.2)
            self.start_s = 0.2

        def run(self, job):
            answers = [[{{"text": f"SELECT {{s % 1000}}", "logprob": None, "n_tokens": 2,
                         "finished": True, "seed": s}} for s in t["seeds"]]
                       for t in job["tasks"]]
            n = sum(len(t["seeds"]) for t in job["tasks"])
            return {{"answers": answers, "start_s": self.start_s,
                     "stats": {{"seconds": 0.1, "requests": n, "prompt_tokens": 10 * n,
                               "cached_tokens": 0, "generated_tokens": 2 * n}}}}

    assert sys.argv[1] == "serve"
    sys.exit(worker.serve(sys.argv[2], sys.argv[3], float(sys.argv[5]), FakeEngine))
"""


def group_alive(pid: int) -> bool:
    try:
        os.killpg(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_a_kept_engine_serves_many_calls_until_rf_model_stop(fake_worker, shop_db, tmp_path,
                                                            monkeypatch):
    fake_worker(FAKE_SERVER)
    folder = tmp_path / "a-rather-long-folder-name-for-a-unix-socket" / ("x" * 60) / "engine"
    monkeypatch.setenv("RF_VLLM_ENGINE", str(folder))  # as bin/iterate.sh sets it

    def sample(*extra):
        r = run_command("rf-sample", ["--sampler", "vllm", "-m", "org/model", "-k", "3", "-t",
                                      "0.7", "--seed", "1", *extra], input=tasks(shop_db, 4))
        assert r.exit_code == 0, r.stderr
        return r

    first = sample()
    assert "starting an engine in" in first.stderr and "engine started in 0.2 s" in first.stderr
    pid = int((folder / "engine.pid").read_text())
    second = sample("-o", "engine_idle", "900")
    assert f"using the engine in {folder} (pid {pid}" in second.stderr
    assert "starting" not in second.stderr and first.records == second.records
    assert [c["seed"] for c in first.records[3]["candidates"]] == \
        [sample_seed(1, 3, j) for j in range(3)]
    # other engine options: that engine is stopped and another started
    third = sample("-o", "max_model_len", "512")
    assert "started for other settings; restarting it" in third.stderr
    assert not group_alive(pid)
    pid = int((folder / "engine.pid").read_text())
    stop = run_command("rf-model", ["stop", str(folder)])
    assert stop.exit_code == 0 and f"stopped the engine in {folder} (pid {pid}" in stop.stderr
    for _ in range(50):  # rf-model reaps only its own children; this one is the test's
        if not group_alive(pid):
            break
        try:
            os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            pass
        time.sleep(0.1)
    assert not group_alive(pid) and not (folder / "engine.pid").exists()
    assert run_command("rf-model", ["stop", str(folder)]).stderr == ""  # nothing to stop


def test_a_kept_engine_that_fails_to_start_names_the_cause(fake_worker, shop_db, tmp_path):
    fake_worker(FAKE_SERVER)
    r = run_command("rf-sample", ["--sampler", "vllm", "-m", "org/model", "-o", "engine",
                                  str(tmp_path / "e"), "-o", "max_model_len", "31"],
                    input=tasks(shop_db, 1))
    assert r.exit_code == 1
    assert "the vllm engine did not start (exit 1): RuntimeError: no engine for 31 tokens " \
           f"[log: {tmp_path / 'e' / 'engine.log'}" in r.stderr


def test_an_idle_engine_stops_by_itself(fake_worker, shop_db, tmp_path):
    fake_worker(FAKE_SERVER)
    folder = tmp_path / "e"
    args = ["--sampler", "vllm", "-m", "org/model", "-o", "engine", str(folder), "-o",
            "engine_idle", "1"]
    assert run_command("rf-sample", args, input=tasks(shop_db, 1)).exit_code == 0
    pid = int((folder / "engine.pid").read_text())
    for _ in range(100):
        try:
            os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            pass
        if not group_alive(pid):
            break
        time.sleep(0.1)
    assert not group_alive(pid) and not (folder / "engine.pid").exists()
    again = run_command("rf-sample", args, input=tasks(shop_db, 1))
    assert again.exit_code == 0 and "starting an engine" in again.stderr
    assert run_command("rf-model", ["stop", str(folder)]).exit_code == 0


def test_rf_model_stop_leaves_a_process_that_is_not_the_folders_engine(tmp_path):
    folder = tmp_path / "e"
    folder.mkdir()
    other = subprocess.Popen(["sleep", "30"], start_new_session=True)
    try:
        (folder / "engine.pid").write_text(f"{other.pid}\n")
        r = run_command("rf-model", ["stop", str(folder)])
        assert r.exit_code == 0 and other.poll() is None
        assert not (folder / "engine.pid").exists()
        # the folder on its command line: that one is the engine
        engine = subprocess.Popen(["bash", "-c", "sleep 30; true", str(folder)],
                                  start_new_session=True)
        (folder / "engine.pid").write_text(f"{engine.pid}\n")
        cmdline = Path(f"/proc/{engine.pid}/cmdline")
        for _ in range(100):  # until it has exec'd bash
            if str(folder).encode() in cmdline.read_bytes().split(b"\0"):
                break
            time.sleep(0.05)
        r = run_command("rf-model", ["stop", str(folder), "--grace", "5"])
        assert r.exit_code == 0 and "stopped the engine" in r.stderr
        engine.wait(timeout=10)  # rf-model, in this process, may have reaped it already
        assert not group_alive(engine.pid)
    finally:
        other.kill()
        other.wait()


# -- bin/iterate.sh: one engine per iteration ---------------------------------------------------

FAKE_COMMAND = r"""#!/usr/bin/env bash
# A stand-in for an rf-* command that logs its call; rf-sample "starts an engine" as the vllm
# sampler would (a pid file in $RF_VLLM_ENGINE), rf-model stop removes it.
name=$(basename "$0")
echo "$name ${1:-} ${RF_VLLM_ENGINE:-}" >> "$CALLS"
case $name in
  rf-sample) mkdir -p "$RF_VLLM_ENGINE"; echo 1 > "$RF_VLLM_ENGINE/engine.pid"; cat ;;
  rf-model) rm -f "$2/engine.pid" ;;
  rf-data) echo '{"id": 1}' ;;
  rf-report) echo "# report" > "$1/report.md" ;;
  rf-eval|rf-train) echo '{}' ;;
  rf-filter|rf-inject) cat > /dev/null ;;
  *) cat ;;
esac
"""


def test_iterate_stops_the_engine_before_each_training_and_at_the_end(tmp_path):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name in ("rf-data", "rf-sample", "rf-exec", "rf-vote", "rf-eval", "rf-filter",
                 "rf-inject", "rf-train", "rf-report", "rf-model"):
        (bin_dir / name).write_text(FAKE_COMMAND)
        (bin_dir / name).chmod(0o755)
    env = {k: v for k, v in os.environ.items() if not k.startswith("RF_")}
    env.update(PATH=f"{bin_dir}{os.pathsep}{env['PATH']}", CALLS=str(tmp_path / "calls"))
    out = tmp_path / "run"
    proc = subprocess.run(["bash", str(ROOT / "bin" / "iterate.sh"), "--model", "fake",
                           "--sampler", "vllm", "--iterations", "2", "--vote", "2", "--out",
                           str(out)], env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    calls = [line.split() for line in (tmp_path / "calls").read_text().splitlines()]
    assert all(c[-1] == str(out / "engine") for c in calls if c[0] == "rf-sample")
    # the engine's life: from the first sampling after a training to the next training
    lives, starts = [], 0
    engine = False
    for c in calls:
        if c[0] == "rf-sample" and not engine:
            engine, starts = True, starts + 1
        elif c[0] == "rf-model":
            assert c[1] == "stop" and engine
            engine = False
        elif c[0] == "rf-train":
            assert not engine, "training while the engine holds its memory"
        lives.append(c[0])
    assert not engine and starts == 4  # the base model, SFT, iteration 1, iteration 2
    assert lives.count("rf-train") == 3 and lives[-1] == "rf-model"
