"""The openai sampler against a fake OpenAI-compatible server on 127.0.0.1 (no network):
what is sent, what comes back, retries, one-line errors, the n=1 fallback and output order."""

from __future__ import annotations

import json
import re
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from rf_core.api import sample_seed
from rf_core.model.prompts import render_messages
from conftest import make_task, run

COMPLETIONS = "/v1/chat/completions"
ERROR = {"error": {"message": "go away", "type": "error"}}


def completion(body: dict) -> dict:
    """An answer like vLLM's: n choices whose SQL names the request's seed and the choice."""
    n = body.get("n", 1)
    choices = []
    for j in range(n):
        choice = {"index": j, "finish_reason": "stop",
                  "message": {"role": "assistant",
                              "content": f"```sql\nSELECT {body['seed']} AS s, {j} AS j\n```"}}
        if body.get("logprobs"):
            choice["logprobs"] = {"content": [{"token": "t", "logprob": -0.25}] * 4}
        choices.append(choice)
    return {"id": "cmpl-1", "object": "chat.completion", "model": body["model"],
            "choices": choices,
            "usage": {"prompt_tokens": 20, "completion_tokens": 4 * n, "total_tokens": 20 + 4 * n}}


class FakeServer:
    """Records every request; ``script`` answers the first requests (then the normal answer),
    ``delay(body)`` sleeps before answering, ``n_support`` is "yes", "reject" (400 at n>1)
    or "ignore" (one choice whatever n)."""

    def __init__(self):
        self.requests: list[dict] = []
        self.script: list = []
        self.delay = None
        self.n_support = "yes"
        self.logprobs_support = "yes"
        self.answered = 0
        self.lock = threading.Lock()
        self.active = 0
        self.max_active = 0
        self.url = ""

    def answer(self, path: str, headers: dict, body: dict):
        with self.lock:
            self.requests.append({"path": path, "headers": headers, "body": body,
                                  "time": time.monotonic(), "answered": self.answered})
            step = self.script.pop(0) if self.script else None
            self.active += 1
            self.max_active = max(self.max_active, self.active)
        try:
            if self.delay:
                time.sleep(self.delay(body))
            return self._answer(path, body, step)
        finally:
            with self.lock:
                self.active -= 1
                self.answered += 1

    def _answer(self, path, body, step):
        if path != COMPLETIONS:
            return 404, {}, {"detail": "Not Found"}
        if body.get("model") != "fake":
            return 404, {}, {"error": {"message": f"The model `{body.get('model')}` does "
                                                  "not exist.", "code": 404}}
        if step is not None:
            return step
        if body.get("n", 1) > 1 and self.n_support == "reject":
            return 400, {}, {"error": {"message": "n > 1 is not supported", "code": 400}}
        if body.get("logprobs") and self.logprobs_support == "reject":
            return 400, {}, {"error": {"message": "logprobs are not supported", "code": 400}}
        if self.logprobs_support == "ignore":
            body = {k: v for k, v in body.items() if k != "logprobs"}
        if self.n_support == "ignore":
            body = {**body, "n": 1}
        return 200, {}, completion(body)


class Handler(BaseHTTPRequestHandler):
    def do_POST(self):
        length = int(self.headers.get("Content-Length", 0))
        body = json.loads(self.rfile.read(length))
        status, headers, payload = self.server.fake.answer(self.path, dict(self.headers), body)
        if status == "reset":  # drop the connection without an answer
            self.close_connection = True
            return
        self._send(status, headers, payload)

    def do_GET(self):
        if self.path == "/v1/models":
            self._send(200, {}, {"object": "list", "data": [{"id": "fake", "object": "model"}]})
        else:
            self._send(404, {}, {"detail": "Not Found"})

    def _send(self, status, headers, payload):
        data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for key, value in headers.items():
            self.send_header(key, value)
        self.end_headers()
        try:
            self.wfile.write(data)
        except OSError:  # the client gave up first (a timeout test)
            pass

    def log_message(self, *args):  # keep the test output clean
        pass


class QuietServer(ThreadingHTTPServer):
    def handle_error(self, request, client_address):
        pass  # a traceback from a server thread could land in a command's captured stderr


@pytest.fixture
def server():
    fake = FakeServer()
    httpd = QuietServer(("127.0.0.1", 0), Handler)
    httpd.fake = fake
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05},
                              daemon=True)
    thread.start()
    fake.url = f"http://127.0.0.1:{httpd.server_address[1]}/v1"
    try:
        yield fake
    finally:
        httpd.shutdown()
        httpd.server_close()


def tasks(db: str, n: int = 3) -> list[dict]:
    return [make_task(db, "SELECT 1", None, id=f"o/{i}", question=f"Question number {i}?")
            for i in range(n)]


def task_index(body: dict) -> int:
    return int(re.search(r"Question number (\d+)", body["messages"][1]["content"]).group(1))


def sample(server, inputs, *args, env=None, url=None):
    # base_url is repeatable (several endpoints): a test that wants another one passes url
    return run("rf-sample", ["--sampler", "openai", "--model", "fake", "-o", "base_url",
                             url or server.url, "-k", "2", "-t", "0.7", "-o", "backoff", "0.01", *args],
               input=inputs, env={"OPENAI_API_KEY": None, **(env or {})})


def assert_one_line_error(r, *parts):
    assert r.code == 1, r.stderr
    lines = r.stderr.strip().splitlines()
    errors = [line for line in lines if line.startswith("Error:")]
    assert len(errors) == 1 and lines[-1] == errors[0], r.stderr
    assert errors[0].startswith("Error: rf-sample: ")
    # anything before the error is the sampler's own notes (a first retry)
    assert all(line.startswith("rf-sample: openai: ") for line in lines[:-1]), r.stderr
    for part in parts:
        assert part in errors[0], errors[0]
    assert r.stdout == b""


def test_messages_candidates_and_seeds(server, shop_db, validate):
    inputs = tasks(shop_db)
    r = sample(server, inputs, "--seed", "7")
    assert r.code == 0, r.stderr
    out = r.records
    validate(out)
    assert [t["id"] for t in out] == [t["id"] for t in inputs]
    assert len(server.requests) == 3  # one request with n=2 per task
    for req in server.requests:
        body, i = req["body"], task_index(req["body"])
        assert req["path"] == COMPLETIONS and "Authorization" not in req["headers"]
        assert body["messages"] == render_messages(inputs[i])
        assert {k: body[k] for k in ("model", "n", "temperature", "top_p", "max_tokens")} == \
            {"model": "fake", "n": 2, "temperature": 0.7, "top_p": 1.0, "max_tokens": 256}
        assert body["seed"] == sample_seed(7, i, 0) and body["logprobs"] is True
    for i, t in enumerate(out):
        assert t["messages"] == render_messages(inputs[i])
        seed = sample_seed(7, i, 0)
        assert [c["sql"] for c in t["candidates"]] == [f"SELECT {seed} AS s, {j} AS j"
                                                      for j in range(2)]
        for c in t["candidates"]:
            assert (c["sampler"], c["model"], c["adapter"], c["temperature"]) == \
                ("openai", "fake", None, 0.7)
            assert c["seed"] == seed and c["n_tokens"] == 4 and c["logprob"] == -1.0
            assert c["finished"] is True
    assert len({t["candidates"][0]["seed"] for t in out}) == 3  # distinct across tasks
    assert "openai: 3 task(s), 3 request(s)" in r.stderr
    assert "60 prompt + 24 completion tokens" in r.stderr and "tok/s" in r.stderr


def test_key_served_model_and_greedy(server, shop_db):
    r = sample(server, tasks(shop_db, 2), "--model", "local-name", "-o", "served_model",
               "fake", "-o", "api_key_env", "RF_TEST_KEY", "-k", "1", "-t", "0",
               env={"RF_TEST_KEY": "s3cret"})
    assert r.code == 0, r.stderr
    for req in server.requests:
        body = req["body"]
        assert req["headers"]["Authorization"] == "Bearer s3cret"
        assert body["model"] == "fake" and body["n"] == 1 and body["temperature"] == 0
        assert body["seed"] == sample_seed(0, task_index(body), 0)  # greedy still seeded
        assert body["logprobs"] is True  # one sample per request asks for them too
    for t in r.records:
        [c] = t["candidates"]
        assert c["model"] == "fake" and c["n_tokens"] == 4
        assert c["logprob"] == -1.0 and c["finished"] is True


def test_retries_after_429_500_and_a_reset(server, shop_db):
    server.script = [(429, {"Retry-After": "0.3"}, ERROR), (500, {}, ERROR),
                     ("reset", {}, None), (503, {}, b"<html>busy</html>")]
    r = sample(server, tasks(shop_db, 1))
    assert r.code == 0, r.stderr
    assert len(r.records[0]["candidates"]) == 2
    times = [req["time"] for req in server.requests]
    assert len(times) == 5
    assert times[1] - times[0] >= 0.3  # Retry-After honoured over the 0.01 s backoff
    assert r.stderr.count("retrying") == 1 and "HTTP 429 (go away)" in r.stderr
    assert "; 4 retries;" in r.stderr


def test_an_error_stops_the_other_requests_retrying(server, shop_db):
    """One request fails for good while another waits out a long Retry-After: the command
    ends at once and its worker threads do not go on retrying."""
    # the first request, sent alone, is answered; then two go out together
    server.script = [None, (429, {"Retry-After": "30"}, ERROR), (401, {}, ERROR)]
    before = set(threading.enumerate())
    start = time.monotonic()
    r = sample(server, tasks(shop_db, 3), "-k", "1", "-o", "concurrency", "2")
    assert r.code == 1 and r.stderr.strip().splitlines()[-1].startswith(
        "Error: rf-sample: HTTP 401"), r.stderr
    assert [t["id"] for t in r.records] == ["o/0"]  # done before the error, kept
    # well under the 30 s Retry-After it would otherwise wait (margins for a loaded machine)
    assert time.monotonic() - start < 25
    deadline = time.monotonic() + 20
    while any(t.name.startswith("rf-openai") for t in set(threading.enumerate()) - before):
        assert time.monotonic() < deadline, "worker threads still running"
        time.sleep(0.05)
    assert len(server.requests) == 3


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.parametrize("case", ["401", "404 model", "404 base_url", "unreachable",
                                  "malformed", "400", "400 at n>1 too", "5xx", "timeout"])
def test_errors_are_one_line(server, shop_db, case):
    args = ["-o", "max_retries", "1"]
    url = server.url + "/chat/completions"
    base_url = None
    expected = {
        "401": ["HTTP 401 from " + url, "$OPENAI_API_KEY is not set", "go away"],
        "404 model": ["HTTP 404 from " + url, "model 'nope' is not served there",
                      "it serves: fake"],
        "404 base_url": ["HTTP 404 from " + server.url + "/x/chat/completions",
                         "no OpenAI-compatible API", "-o base_url"],
        "unreachable": ["cannot reach http://127.0.0.1:", "connection refused",
                        "after 1 retry"],
        "malformed": ["malformed response from " + url, "not JSON"],
        "400": ["HTTP 400 from " + url, "go away"],
        "400 at n>1 too": ["HTTP 400 from " + url, "go away"],
        "5xx": ["HTTP 502 (go away) from " + url, "after 1 retry"],
        "timeout": ["cannot reach " + url, "no answer within 0.2 s", "after 1 retry"],
    }[case]
    # a scripted error answers every request: with two tasks in flight, an error scripted
    # for the first request only could reach either task, and the other one be written
    if case == "401":
        server.script = [(401, {}, ERROR)] * 10
    elif case == "404 model":
        args += ["--model", "nope"]
    elif case == "404 base_url":
        base_url = server.url + "/x"
    elif case == "unreachable":
        base_url = f"http://127.0.0.1:{closed_port()}/v1"
    elif case == "malformed":
        server.script = [(200, {}, b"<html>hello</html>")] * 10
    elif case == "400":
        server.script = [(400, {}, ERROR)] * 10
        args += ["-k", "1"]
    elif case == "400 at n>1 too":  # not a refused n: no fallback note, the error itself
        server.script = [(400, {}, ERROR)] * 10
    elif case == "5xx":
        server.script = [(502, {}, ERROR)] * 4  # two tasks, two tries each
    elif case == "timeout":
        server.delay = lambda body: 0.5
        args += ["-o", "timeout", "0.2"]
    r = sample(server, tasks(shop_db, 2), *args, url=base_url)
    assert_one_line_error(r, *expected)
    assert "does not do n=" not in r.stderr


@pytest.mark.parametrize("mode", ["reject", "ignore"])
def test_fallback_to_one_request_per_sample(server, shop_db, validate, mode):
    server.n_support = mode
    r = sample(server, tasks(shop_db, 2), "-k", "3", "--seed", "1", "-o", "concurrency", "1")
    assert r.code == 0, r.stderr
    validate(r.records)
    # the first request, alone, tells; a choice that came back is kept, never asked again
    assert [req["body"]["n"] for req in server.requests] == \
        ([3, 3] + [1] * 6 if mode == "reject" else [3] + [1] * 5)
    assert r.stderr.count("does not do n=3") == 1 and "refused logprobs" not in r.stderr
    # only the refused probe went without logprobs
    assert [req["body"].get("logprobs") for req in server.requests].count(None) == \
        (1 if mode == "reject" else 0)
    seeds = []
    for i, t in enumerate(r.records):
        for j, c in enumerate(t["candidates"]):
            seed = sample_seed(1, i, j)
            assert c["seed"] == seed and c["sql"] == f"SELECT {seed} AS s, 0 AS j"
            assert c["n_tokens"] == 4 and c["finished"] is True and c["logprob"] == -1.0
            seeds.append(seed)
    assert len(set(seeds)) == 6  # distinct across tasks and samples


def test_order_kept_when_answers_come_out_of_order(server, shop_db):
    server.delay = lambda body: 0.1 * (5 - task_index(body))  # the first task is the slowest
    inputs = tasks(shop_db, 6)
    r = sample(server, inputs, "-o", "concurrency", "6")
    assert r.code == 0, r.stderr
    assert [t["id"] for t in r.records] == [t["id"] for t in inputs]
    assert server.max_active >= 4  # in flight together, so answered last task first
    assert all(len(t["candidates"]) == 2 for t in r.records)


def test_streams_tasks_as_they_are_done(server, shop_db):
    """The first task comes out while a later one is still being answered, and the input is
    read lazily (a bounded window ahead), not all at once."""
    from rf_core.model.sampling import sample_tasks
    from rf_core.plugins import manager

    server.delay = lambda body: 2.0 if task_index(body) == 1 else 0.0
    read = []

    def stream():
        for t in tasks(shop_db, 100):
            read.append(t["id"])
            yield t

    impl = manager.get("samplers", "openai")
    out = sample_tasks(impl, stream(), model="fake", k=1, temperature=0.0, top_p=1.0,
                       max_new_tokens=8, seed=0, base_url=server.url, concurrency=2,
                       report=lambda message: None)
    start = time.monotonic()
    first = next(out)
    assert first["id"] == "o/0"
    assert time.monotonic() - start < 2.0  # before task 1's answer, which takes 2 s
    assert len(read) <= 8  # concurrency x 4
    out.close()


@pytest.mark.parametrize("args,code,message", [
    (["-o", "nope", "1"], 2, "sampler 'openai' has no option 'nope'"),
    (["-o", "concurrency", "0"], 2, "below the minimum"),
    (["--adapter", "some/adapter"], 1, "--adapter some/adapter: not an adapter folder"),
])
def test_bad_usage(server, shop_db, args, code, message):
    r = sample(server, tasks(shop_db, 1), *args)
    assert r.code == code and message in r.stderr, r.stderr
    assert server.requests == []


@pytest.mark.parametrize("mode", ["yes", "ignore"])
def test_one_probe_before_fanning_out_and_no_choice_resent(server, shop_db, mode):
    """At the default concurrency (8), a server that ignores n once got eight n=4 requests
    before the first answer showed it, and all their choices were thrown away and asked
    again: 56 requests for 48 candidates. Now the first request goes alone, and every
    choice that comes back is kept."""
    server.n_support = mode
    r = sample(server, tasks(shop_db, 6), "-k", "4")
    assert r.code == 0, r.stderr
    assert all(len(t["candidates"]) == 4 for t in r.records)
    first, *rest = server.requests
    assert first["body"]["n"] == 4 and first["answered"] == 0
    assert all(req["answered"] >= 1 for req in rest)  # sent after the first was answered
    if mode == "yes":
        assert len(server.requests) == 6
    else:
        assert len(server.requests) == 24  # one per candidate: none thrown away
        assert [req["body"]["n"] for req in rest] == [1] * 23
        assert r.stderr.count("does not do n=4 (it answered n=4 with 1 choice(s), kept)") == 1
        seeds = [(i, j, c["seed"], c["sql"]) for i, t in enumerate(r.records)
                 for j, c in enumerate(t["candidates"])]
        assert all(seed == sample_seed(0, i, j) and sql == f"SELECT {seed} AS s, 0 AS j"
                   for i, j, seed, sql in seeds)  # each reproduced by its own n=1 request


@pytest.mark.parametrize("k", [1, 3])
@pytest.mark.parametrize("mode", ["reject", "ignore"])
def test_logprobs_where_the_server_offers_them(server, shop_db, validate, k, mode):
    server.logprobs_support = mode
    r = sample(server, tasks(shop_db, 2), "-k", str(k), "-o", "concurrency", "1")
    assert r.code == 0, r.stderr
    validate(r.records)
    asked = [req["body"].get("logprobs") for req in server.requests]
    if mode == "reject":  # refused once, then never asked again; n is still used
        assert asked == [True] + [None] * 2 and "refused logprobs" in r.stderr
        assert [req["body"]["n"] for req in server.requests] == [k] * 3
    else:  # asked every time, none given: no logprob, tokens from usage
        assert asked == [True] * 2 and "refused" not in r.stderr
    for t in r.records:
        assert all(c["logprob"] is None for c in t["candidates"])
        assert all(c["n_tokens"] == (4 if k == 1 else None) for c in t["candidates"])


def test_a_shard_gets_the_seeds_of_the_unsharded_run(server, shop_db):
    inputs = tasks(shop_db, 5)
    whole = {t["id"]: [c["seed"] for c in t["candidates"]]
             for t in sample(server, inputs, "--seed", "3").records}
    shard = sample(server, inputs, "--seed", "3", "--shard", "1/2")
    assert shard.code == 0, shard.stderr
    assert {t["id"]: [c["seed"] for c in t["candidates"]] for t in shard.records} == \
        {k: whole[k] for k in ("o/1", "o/3")}
