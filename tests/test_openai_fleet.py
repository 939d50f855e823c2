"""The openai sampler over several fake OpenAI-compatible servers on 127.0.0.1 (no network):
requests spread by load, an endpoint lost mid-run and its requests resent, every endpoint
lost, endpoints unreachable at start, and adapters loaded into the servers by name.

Failures are scripted (a server drops the requests of chosen tasks, or holds two requests
and then drops both): no test waits out a timeout or depends on which request ends first.
"""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from rf_core.api import sample_seed
from conftest import make_task, run

ROOT = Path(__file__).resolve().parents[1]
CHAT = "/v1/chat/completions"
LOAD = "/v1/load_lora_adapter"
HOLD_S = 60  # a safety bound on a held request, never reached when the test works


def completion(body: dict) -> dict:
    """n choices whose SQL names the request's seed and the choice, with logprobs."""
    choices = [{"index": j, "finish_reason": "stop",
                "message": {"role": "assistant",
                            "content": f"```sql\nSELECT {body['seed']} AS s, {j} AS j\n```"},
                "logprobs": {"content": [{"token": "t", "logprob": -0.25}] * 4}}
               for j in range(body.get("n", 1))]
    return {"object": "chat.completion", "model": body["model"], "choices": choices,
            "usage": {"prompt_tokens": 20, "completion_tokens": 4 * len(choices)}}


def task_index(body: dict) -> int:
    """The N of "Question number N"; -1 for another question (the loop's demo tasks)."""
    found = re.search(r"Question number (\d+)", body["messages"][1]["content"])
    return int(found.group(1)) if found else -1


class Fake:
    """One server. ``drop(i)``: requests for task i are dropped (the connection closed, no
    answer); ``hold``: chat requests are held until that many are
    held, then the server dies (every request dropped from then on); ``load_answer``:
    (status, payload) for adapter loads (default: loaded); ``lora``: False, no such route."""

    def __init__(self):
        self.chats: list[dict] = []  # bodies of the chat requests
        self.loads: list[dict] = []  # bodies of the adapter loads
        self.models = {"fake"}
        self.drop = lambda i: False
        self.hold = 0
        self.held = 0
        self.dead = threading.Event()
        self.load_answer: tuple | None = None
        self.lora = True
        self.active = self.max_active = 0
        self.lock = threading.Lock()
        self.url = ""

    def chat(self, body: dict):
        """(status, payload), or None to drop the connection."""
        with self.lock:
            self.chats.append(body)
            self.active += 1
            self.max_active = max(self.max_active, self.active)
            if self.hold and not self.dead.is_set():
                self.held += 1
                if self.held >= self.hold:
                    self.dead.set()
        try:
            if self.hold:
                self.dead.wait(HOLD_S)
            if self.dead.is_set():
                return None
            if self.drop(task_index(body)):
                return None
            if body["model"] not in self.models:
                return 404, {"error": {"message": f"The model `{body['model']}` does not "
                                                  "exist.", "code": 404}}
            return 200, completion(body)
        finally:
            with self.lock:
                self.active -= 1

    def load(self, body: dict):
        with self.lock:
            self.loads.append(body)
        if not self.lora:
            return 404, {"detail": "Not Found"}
        if self.load_answer:
            return self.load_answer
        if body["lora_name"] in self.models:  # as vLLM says it
            return 400, {"object": "error", "message": f"The lora adapter "
                         f"'{body['lora_name']}' has already been loaded.", "code": 400}
        self.models.add(body["lora_name"])
        return 200, f"Success: LoRA adapter '{body['lora_name']}' added successfully."


class Handler(BaseHTTPRequestHandler):
    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))))
        fake = self.server.fake
        if fake.dead.is_set() and not fake.hold:
            answer = None
        elif self.path == CHAT:
            answer = fake.chat(body)
        elif self.path == LOAD:
            answer = fake.load(body)
        else:
            answer = 404, {"detail": "Not Found"}
        if answer is None:
            self.close_connection = True
            return
        self._send(*answer)

    def do_GET(self):
        if self.server.fake.dead.is_set():
            self.close_connection = True
        elif self.path == "/v1/models":
            self._send(200, {"object": "list", "data": [{"id": m} for m in
                                                        sorted(self.server.fake.models)]})
        else:
            self._send(404, {"detail": "Not Found"})

    def _send(self, status, payload):
        data = (payload if isinstance(payload, str) else json.dumps(payload)).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        try:
            self.wfile.write(data)
        except OSError:
            pass

    def log_message(self, *args):
        pass


class QuietServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address):
        pass


@pytest.fixture
def fleet():
    """Three fake servers (most tests use the first two)."""
    fakes, servers = [], []
    for _ in range(3):
        fake = Fake()
        httpd = QuietServer(("127.0.0.1", 0), Handler)
        httpd.fake = fake
        threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05},
                         daemon=True).start()
        fake.url = f"http://127.0.0.1:{httpd.server_address[1]}/v1"
        fakes.append(fake)
        servers.append(httpd)
    try:
        yield fakes
    finally:
        for fake, httpd in zip(fakes, servers):
            fake.dead.set()  # frees a held request
            httpd.shutdown()
            httpd.server_close()


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def tasks(db: str, n: int) -> list[dict]:
    return [make_task(db, "SELECT 1", None, id=f"f/{i}", question=f"Question number {i}?")
            for i in range(n)]


def sample(urls, inputs, *args):
    where = [a for url in urls for a in ("-o", "base_url", url)]
    return run("rf-sample", ["--sampler", "openai", "--model", "fake", *where, "-k", "2",
                             "-t", "0.7", "-o", "backoff", "0.01", "-o", "max_retries", "1",
                             *args], input=inputs, env={"OPENAI_API_KEY": None})


def without_ext(records: list[dict]) -> list[dict]:
    return [{**t, "candidates": [{k: v for k, v in c.items() if k != "ext"}
                                 for c in t["candidates"]]} for t in records]


def endpoints(record: dict) -> set[str]:
    return {c["ext"]["openai"]["endpoint"] for c in record["candidates"]}


def error_line(r) -> str:
    """The one error line, last; every line before it a note of the sampler's."""
    lines = r.stderr.strip().splitlines()
    assert r.code == 1 and lines[-1].startswith("Error: rf-sample: "), r.stderr
    assert all(line.startswith("rf-sample: openai: ") for line in lines[:-1]), r.stderr
    return lines[-1]


def test_requests_spread_over_two_servers_with_the_same_results(fleet, shop_db, validate):
    a, b = fleet[:2]
    inputs = tasks(shop_db, 8)
    both = sample([a.url, b.url], inputs, "-o", "concurrency", "1")
    assert both.code == 0, both.stderr
    validate(both.records)
    assert [t["id"] for t in both.records] == [t["id"] for t in inputs]
    # the first request alone, to the first endpoint; then one in flight on each
    assert task_index(a.chats[0]) == 0 and len(b.chats) >= 1
    assert len(a.chats) + len(b.chats) == 8 and a.max_active == b.max_active == 1
    served_by = {task_index(body): fake.url for fake in fleet for body in fake.chats}
    for i, t in enumerate(both.records):
        assert endpoints(t) == {served_by[i]}  # each candidate names the endpoint that wrote it
        assert all(c["ext"]["openai"]["served_model"] == "fake" for c in t["candidates"])
        assert [c["seed"] for c in t["candidates"]] == [sample_seed(0, i, 0)] * 2
    assert f"8 request(s) to 2 endpoints ({a.url}: {len(a.chats)}, {b.url}: " in both.stderr
    # the seeds do not depend on the spreading: one server gives the same records
    one = sample([a.url], inputs, "-o", "concurrency", "1")
    assert one.code == 0, one.stderr
    assert without_ext(one.records) == without_ext(both.records)
    assert all(endpoints(t) == {a.url} for t in one.records)


def test_a_server_lost_mid_run_has_its_requests_resent_once(fleet, shop_db, validate):
    a, b = fleet[:2]
    b.hold = 2  # b takes two requests at once, then dies without answering either
    inputs = tasks(shop_db, 8)
    r = sample([a.url, b.url], inputs, "-o", "concurrency", "2")
    assert r.code == 0, r.stderr
    validate(r.records)
    assert [t["id"] for t in r.records] == [t["id"] for t in inputs]
    lost = sorted({task_index(body) for body in b.chats})
    assert len(lost) == 2
    # every task answered by a, once each: b's two were resent there, nothing twice
    assert sorted(task_index(body) for body in a.chats) == list(range(8))
    for i, t in enumerate(r.records):
        assert len(t["candidates"]) == 2 and endpoints(t) == {a.url}
        assert [c["seed"] for c in t["candidates"]] == [sample_seed(0, i, 0)] * 2
    notes = [line for line in r.stderr.splitlines() if "giving up on" in line]
    assert len(notes) == 1 and f"giving up on {b.url}: " in notes[0], r.stderr
    assert "its 2 request(s) in flight go to the other 1 endpoint(s)" in notes[0]
    assert "; 2 resent after an endpoint went down;" in r.stderr
    assert f"{b.url}: 0 (down)" in r.stderr


def test_every_server_lost_stops_keeping_the_finished_records(fleet, shop_db, validate):
    a, b = fleet[:2]
    a.drop = b.drop = lambda i: i >= 3  # tasks 0-2 are answered; task 3 kills both servers
    inputs = tasks(shop_db, 6)
    r = sample([a.url, b.url], inputs, "-o", "concurrency", "1")
    line = error_line(r)
    assert "every endpoint is down: " in line and a.url in line and b.url in line
    validate(r.records)
    assert [t["id"] for t in r.records] == ["f/0", "f/1", "f/2"]  # whole, in order
    assert all(len(t["candidates"]) == 2 for t in r.records)
    assert r.stdout.endswith(b"\n")


def test_a_request_is_resent_once_only(fleet, shop_db, validate):
    """A request that fails on two servers ends the run, though a third is alive: one
    request cannot take the fleet down server by server."""
    for fake in fleet:
        fake.drop = lambda i: i == 3
    r = sample([fake.url for fake in fleet], tasks(shop_db, 6), "-o", "concurrency", "1")
    line = error_line(r)
    assert "a request failed on two endpoints" in line and "not sent a third time" in line
    assert sum(any(task_index(body) == 3 for body in fake.chats) for fake in fleet) == 2
    assert len([n for n in r.stderr.splitlines() if "giving up on" in n]) == 2
    validate(r.records)
    ids = [t["id"] for t in r.records]
    assert ids == [f"f/{i}" for i in range(len(ids))] and len(ids) <= 3
    assert all(len(t["candidates"]) == 2 for t in r.records)


def test_an_unreachable_endpoint_at_start(fleet, shop_db):
    a = fleet[0]
    gone = f"http://127.0.0.1:{closed_port()}/v1"
    r = sample([gone, a.url], tasks(shop_db, 3))
    assert r.code == 0, r.stderr
    notes = [line for line in r.stderr.splitlines() if gone in line]
    assert notes == [f"rf-sample: openai: cannot reach {gone} (connection refused); going on "
                     "with the other 1 endpoint(s)"]
    assert len(r.records) == 3 and all(endpoints(t) == {a.url} for t in r.records)
    assert f"3 request(s) to {a.url}/chat/completions" in r.stderr  # the lost one is out
    # all required: refused before any request
    a.chats.clear()
    r = sample([gone, a.url], tasks(shop_db, 3), "-o", "require_all", "true")
    line = error_line(r)
    assert f"cannot reach {gone} (connection refused)" in line and "require_all" in line
    assert a.chats == [] and r.stdout == b""
    # none answers
    other = f"http://127.0.0.1:{closed_port()}/v1"
    line = error_line(sample([gone, other], tasks(shop_db, 1)))
    assert gone in line and other in line and "none answers" in line


def test_endpoints_file_and_bad_endpoint_lists(fleet, shop_db, tmp_path):
    a, b = fleet[:2]
    listing = tmp_path / "endpoints.txt"
    listing.write_text(f"# the fleet\n{a.url}\n\n{b.url}\n")
    r = run("rf-sample", ["--sampler", "openai", "--model", "fake", "-k", "1", "-o",
                          "endpoints_file", str(listing)], input=tasks(shop_db, 4),
            env={"OPENAI_API_KEY": None})
    assert r.code == 0, r.stderr
    assert a.chats and b.chats and len(a.chats) + len(b.chats) == 4
    empty = tmp_path / "empty.txt"
    empty.write_text("# nothing yet\n")
    for args, message in [
            (["-o", "endpoints_file", str(empty)], "lists no endpoint"),
            (["-o", "endpoints_file", str(tmp_path / "none.txt")], "cannot read -o "
             "endpoints_file"),
            (["-o", "base_url", a.url, "-o", "base_url", a.url + "/"], "is given twice"),
            (["-o", "base_url", "127.0.0.1:8000/v1"], "is not an http:// or https:// URL")]:
        r = run("rf-sample", ["--sampler", "openai", "--model", "fake", *args],
                input=tasks(shop_db, 1))
        assert message in error_line(r)


def adapter_folder(path: Path) -> Path:
    path.mkdir(parents=True)
    (path / "adapter_config.json").write_text('{"r": 8, "peft_type": "LORA"}')
    (path / "adapter_model.safetensors").write_bytes(b"weights")
    return path


def test_an_adapter_is_loaded_into_every_server_by_name(fleet, shop_db, tmp_path, validate):
    a, b = fleet[:2]
    folder = adapter_folder(tmp_path / "iter1" / "adapter")
    r = sample([a.url, b.url], tasks(shop_db, 4), "--adapter", str(folder))
    assert r.code == 0, r.stderr
    validate(r.records)
    [load] = a.loads
    assert b.loads == [load] and load["lora_path"] == str(folder.resolve())
    name = load["lora_name"]
    assert re.fullmatch(r"rf-[0-9a-f]{12}", name)
    assert f"openai: adapter {folder} loaded as {name!r} on 2 endpoint(s)" in r.stderr
    assert {body["model"] for body in a.chats + b.chats} == {name}
    for t in r.records:
        for c in t["candidates"]:
            assert (c["model"], c["adapter"]) == ("fake", str(folder))
            assert c["ext"]["openai"]["served_model"] == name
    # again: the same name, already loaded, is fine
    assert sample([a.url, b.url], tasks(shop_db, 1), "--adapter", str(folder)).code == 0
    assert [x["lora_name"] for x in a.loads] == [name, name]
    # new weights in the folder (the next iteration's adapter): another name
    stat = (folder / "adapter_model.safetensors").stat()
    os.utime(folder / "adapter_model.safetensors", ns=(stat.st_atime_ns,
                                                        stat.st_mtime_ns + 10**9))
    assert sample([a.url], tasks(shop_db, 1), "--adapter", str(folder)).code == 0
    assert a.loads[-1]["lora_name"] != name
    # the servers see the shared folder elsewhere
    r = sample([b.url], tasks(shop_db, 1), "--adapter", str(folder), "-o",
               "adapter_path_map", f"{tmp_path.resolve()}=/shared/runs")
    assert r.code == 0, r.stderr
    assert b.loads[-1]["lora_path"] == "/shared/runs/iter1/adapter"


@pytest.mark.parametrize("case", ["refused", "no runtime loading", "not a folder",
                                  "outside the map"])
def test_an_adapter_that_cannot_be_loaded_is_one_line(fleet, shop_db, tmp_path, case):
    a, b = fleet[:2]
    folder = adapter_folder(tmp_path / "adapter")
    args = ["--adapter", str(folder)]
    if case == "refused":
        b.load_answer = (400, {"object": "error", "type": "BadRequestError", "code": 400,
                               "message": "LoRA rank 64 is greater than max_lora_rank 16."})
        expected = [f"{b.url} cannot load the adapter {folder.resolve()} as 'rf-",
                    "HTTP 400: LoRA rank 64 is greater than max_lora_rank 16."]
    elif case == "no runtime loading":
        b.lora = False
        expected = [f"{b.url} cannot load the adapter", "VLLM_ALLOW_RUNTIME_LORA_UPDATING=True",
                    "--enable-lora"]
    elif case == "not a folder":
        args = ["--adapter", str(tmp_path / "nothing")]
        expected = ["not an adapter folder (no adapter_config.json there)"]
    else:
        args += ["-o", "adapter_path_map", "/elsewhere=/shared"]
        expected = [f"--adapter {folder.resolve()} is not under /elsewhere"]
    r = sample([a.url, b.url], tasks(shop_db, 2), *args)
    line = error_line(r)
    for part in expected:
        assert part in line, line
    assert a.chats == b.chats == [] and r.stdout == b""


def test_repeatable_options_keep_every_value_in_order():
    from rf_core.plugins.options import Option, resolve

    class Impl:
        options = (Option("url", str, ("default",), "Where.", repeat=True),
                   Option("n", int, 1, "How many."))

    assert resolve(Impl(), [], kind="samplers", name="x") == {"url": ("default",), "n": 1}
    got = resolve(Impl(), [("url", "a"), ("n", "2"), ("url", "b"), ("n", "3")],
                  kind="samplers", name="x")
    assert got == {"url": ("a", "b"), "n": 3}  # repeated: kept; otherwise: the last
    assert Impl.options[0].describe()["repeat"] is True
    assert "repeat" not in Impl.options[1].describe()


def test_the_loop_samples_from_the_servers_with_each_new_adapter(fleet, tiny_model, tmp_path):
    """bin/iterate.sh --sampler openai: one iteration; the trained adapter is loaded into
    both servers by name before its evaluation is sampled."""
    a, b = fleet[:2]
    env = {k: v for k, v in os.environ.items() if not k.startswith("RF_")}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}"
    env["RF_CACHE_DIR"] = str(tmp_path / "cache")
    env.pop("OPENAI_API_KEY", None)
    out = tmp_path / "run"
    cmd = ["bash", str(ROOT / "bin" / "iterate.sh"), "--model", "fake", "--train-model",
           tiny_model, "--sampler", "openai", "--sampler-option", f"base_url={a.url}",
           "--sampler-option", f"base_url={b.url}", "--sampler-option", "backoff=0.01",
           "--out", str(out), "--dataset", "demo", "--iterations", "1", "-k", "2",
           "--train-size", "4", "--dev-size", "2", "--val-size", "0", "--vote", "0",
           "--values", "0", "--max-new-tokens", "6", "--epochs", "1", "--batch-size", "2",
           "--max-len", "4096", "--no-sft-baseline"]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-4000:]
    names = {load["lora_name"] for load in a.loads}
    assert len(names) == 1 and {load["lora_name"] for load in b.loads} == names
    assert a.loads[0]["lora_path"] == str((out / "iter1" / "adapter").resolve())
    models = [body["model"] for body in a.chats + b.chats]
    assert "fake" in models and names <= set(models)  # the base model, then the adapter
    for line in (out / "iter1" / "dev.greedy.sampled.jsonl").read_text().splitlines():
        for c in json.loads(line)["candidates"]:
            assert c["ext"]["openai"]["served_model"] in names
            assert c["adapter"] == str(out / "iter1" / "adapter")
