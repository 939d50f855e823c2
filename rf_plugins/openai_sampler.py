"""The openai sampler: any OpenAI-compatible chat-completions server (vLLM's and SGLang's
servers, llama.cpp's server, ``transformers serve``, hosted APIs).

The toolkit's own prompt messages go to ``POST {base_url}/chat/completions`` unchanged, so the
server's chat template renders them; up to ``concurrency`` requests are in flight, and tasks
come out in input order as soon as they and every earlier one are done. A task's k candidates
come from one request with ``n=k`` where the server allows it, else from k requests with
``n=1``. Every request carries a seed derived from --seed, the task's position and the sample
(``sample_seed``), and asks for token logprobs.

What the server does is learnt from the first request, sent alone before any other: with
``n=k`` and logprobs; refused (400), again without logprobs, then with ``n=1`` and logprobs,
then with neither (a refusal of that is the command's error; refusals cost no generation).
A server that ignores ``n`` (one choice back) keeps that choice as the task's first sample
and gets one request per remaining sample. The outcome is said once, and every later request
is sent that way, up to ``concurrency`` at a time.

Several endpoints (``-o base_url`` repeated, or ``-o endpoints_file``): each request goes to
the live endpoint with the fewest in flight (``concurrency`` each); the seeds do not depend
on which. An endpoint that fails a request for good (its retries spent) is given up on: its
requests in flight are sent to the others, each at most once, and the run goes on; when every
endpoint is down, what is in flight is waited for, the tasks done by then are written, and
the run ends with one line. With several endpoints, or --adapter, every endpoint is asked
GET /models at start; the adapter is loaded into each by name (vLLM's runtime LoRA endpoint)
and sampled by that name. Each candidate records its endpoint under ext.openai.

Written as a third-party plugin would be: it imports only rf_core.api and the standard library.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import os
import random
import socket
import threading
import time
import urllib.error
import urllib.request
from collections import deque
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Callable, Iterable, Iterator, Sequence

from rf_core.api import Option, RFError, SampleRequest, hookimpl, to_stderr

MAX_DELAY = 60.0  # seconds: the longest wait between two tries, Retry-After included
WINDOW_PER_REQUEST = 4  # tasks read ahead per request in flight: bounds memory when one lags
DEFAULT_URL = "http://127.0.0.1:8000/v1"
CHECK_TIMEOUT = 10.0  # seconds for the start check of each endpoint (GET /models)
ADAPTER_FILES = ("adapter_config.json", "adapter_model.safetensors", "adapter_model.bin")


def _one_line(text: str, limit: int = 300) -> str:
    """Server messages can be long and multi-line; errors must stay on one line."""
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[:limit - 3] + "..."


def _server_message(body: bytes) -> str:
    """The message of an error body: OpenAI's {"error": {"message"}}, FastAPI's {"detail"},
    or the text itself."""
    try:
        data = json.loads(body)
    except ValueError:
        return _one_line(body.decode("utf-8", "replace")) or "no message"
    if isinstance(data, dict):
        err = data.get("error", data)
        if isinstance(err, dict):
            err = err.get("message") or err.get("detail") or err
        return _one_line(err if isinstance(err, str) else json.dumps(err))
    return _one_line(json.dumps(data))


def _retry_after(value: str | None) -> float | None:
    """Seconds from a Retry-After header: a number or an HTTP date."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        return max(0.0, parsedate_to_datetime(value).timestamp() - time.time())
    except (TypeError, ValueError):
        return None


def _retries(n: int) -> str:
    return f"{n} retr{'y' if n == 1 else 'ies'}"


class _Transient(Exception):
    """A failure worth another try: 429, 5xx, a reset or refused connection, a timeout."""

    def __init__(self, reason: str, retry_after: float | None = None):
        super().__init__(reason)
        self.reason = reason
        self.retry_after = retry_after


class _Down(RFError):
    """A request's endpoint failed for good (its retries spent, or the endpoint was given up
    on meanwhile): with other endpoints alive, the request is sent to one of them."""


class _Rejected(Exception):
    """A 400 (or 422) answer: to the first request it may mean that the server does not do n,
    or logprobs."""


@dataclass
class _Client:
    """POSTs chat-completion requests with retries; thread-safe."""

    base_url: str
    model: str
    api_key_env: str
    timeout: float
    max_retries: int
    backoff: float
    retries: int = 0
    notes: list = field(default_factory=list)  # for report(), from the main thread only
    _lock: threading.Lock = field(default_factory=threading.Lock)
    # set when the run ends early (an error, a closed pipe) or the endpoint is given up on: no
    # more tries or waits, so the process does not linger in backoff before it exits
    stopped: threading.Event = field(default_factory=threading.Event)
    # the main thread's bookkeeping: requests in flight, answered, and why it was given up on
    inflight: int = 0
    answered: int = 0
    down: str | None = None

    def __post_init__(self):
        self.url = self.base_url.rstrip("/") + "/chat/completions"
        self.key = os.environ.get(self.api_key_env) or None
        self.headers = {"Content-Type": "application/json", "Accept": "application/json",
                        "User-Agent": "reasonforge-openai-sampler"}
        if self.key:
            self.headers["Authorization"] = f"Bearer {self.key}"

    def post(self, body: dict) -> dict:
        """The parsed answer to ``body``; transient failures are retried with backoff."""
        attempt = 0
        while True:
            try:
                return self._attempt(body)
            except _Transient as exc:
                if attempt >= self.max_retries or self.stopped.is_set():
                    raise _Down(self._gave_up(exc, attempt)) from None
                self._note_retry(exc)
                if self.stopped.wait(self._delay(attempt, exc.retry_after)):
                    raise _Down(self._gave_up(exc, attempt)) from None
                attempt += 1

    def _delay(self, attempt: int, retry_after: float | None) -> float:
        # jitter keeps the parallel requests from coming back all at once
        delay = min(MAX_DELAY, self.backoff * 2 ** attempt) * random.uniform(1.0, 1.5)
        return min(MAX_DELAY, max(delay, retry_after or 0.0))

    def _note_retry(self, exc: _Transient) -> None:
        with self._lock:
            self.retries += 1
            if self.retries == 1:  # the first says why; the summary gives the count
                self.notes.append(f"{exc.reason} from {self.url}; retrying (at most "
                                  f"{_retries(self.max_retries)} per request, with backoff)")

    def _gave_up(self, exc: _Transient, attempt: int) -> str:
        tries = f"after {_retries(attempt)}"
        if exc.reason.startswith("HTTP "):
            return f"{exc.reason} from {self.url} ({tries})"
        hint = "; is the server running there?" if exc.reason == "connection refused" else ""
        return f"cannot reach {self.url}: {exc.reason} ({tries}){hint}"

    def _attempt(self, body: dict) -> dict:
        request = urllib.request.Request(self.url, data=json.dumps(body).encode(),
                                         headers=self.headers, method="POST")
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                raw = response.read()
        except urllib.error.HTTPError as err:
            raise self._http_error(err) from None
        except urllib.error.URLError as err:
            raise self._connection_error(err.reason) from None
        except (OSError, http.client.HTTPException) as err:  # resets and timeouts mid-read
            raise self._connection_error(err) from None
        try:
            data = json.loads(raw)
        except ValueError:
            raise RFError(f"malformed response from {self.url}: not JSON: "
                          f"{_one_line(raw.decode('utf-8', 'replace'), 120)!r}") from None
        if not isinstance(data, dict):
            raise RFError(f"malformed response from {self.url}: not a JSON object")
        return data

    def send(self, path: str, body: dict | None = None, timeout: float = CHECK_TIMEOUT
             ) -> tuple[int, bytes]:
        """(status, body) of one GET (``body`` None) or JSON POST to BASE_URL + ``path``, not
        retried; an HTTP error is returned, a connection failure raised (_Transient or
        RFError)."""
        url = self.base_url.rstrip("/") + path
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(url, data=data, headers=self.headers,
                                         method="GET" if body is None else "POST")
        try:
            with urllib.request.urlopen(request, timeout=min(self.timeout, timeout)) as response:
                return response.status, response.read()
        except urllib.error.HTTPError as err:
            try:
                return err.code, err.read()
            except (OSError, http.client.HTTPException):
                return err.code, b""
        except urllib.error.URLError as err:
            raise self._connection_error(err.reason) from None
        except (OSError, http.client.HTTPException) as err:
            raise self._connection_error(err) from None

    def _connection_error(self, reason) -> Exception:
        if isinstance(reason, socket.gaierror):
            if reason.errno == socket.EAI_AGAIN:  # a resolver hiccup, not a wrong name
                return _Transient(f"name lookup failed ({reason.strerror})")
            return RFError(f"cannot reach {self.url}: unknown host ({reason.strerror}); "
                           "check -o base_url")
        if isinstance(reason, TimeoutError):
            return _Transient(f"no answer within {self.timeout:g} s (-o timeout)")
        if isinstance(reason, ConnectionRefusedError):
            return _Transient("connection refused")
        if isinstance(reason, ConnectionResetError):
            return _Transient("connection reset")
        return _Transient(f"connection failed ({_one_line(reason, 120) or type(reason).__name__})")

    def take_notes(self) -> list[str]:
        """The notes gathered by worker threads since the last call."""
        with self._lock:
            notes, self.notes = self.notes, []
        return notes

    def _http_error(self, err: urllib.error.HTTPError) -> Exception:
        try:
            message = _server_message(err.read())
        except (OSError, http.client.HTTPException):
            message = "no message"
        code = err.code
        if code == 429 or code >= 500:
            wait_s = _retry_after(err.headers.get("Retry-After"))
            return _Transient(f"HTTP {code} ({message})", wait_s)
        if code in (401, 403):
            why = (f"the server refused the key in ${self.api_key_env}" if self.key else
                   f"no key was sent, as ${self.api_key_env} is not set (-o api_key_env names "
                   "the variable)")
            return RFError(f"HTTP {code} from {self.url}: {why}: {message}")
        if code == 404:
            return RFError(f"HTTP 404 from {self.url}: {self._not_found()}: {message}")
        if code in (400, 422):
            return _Rejected(f"HTTP {code} from {self.url}: {message}")
        return RFError(f"HTTP {code} from {self.url}: {message}")

    def _not_found(self) -> str:
        """Wrong base_url or wrong model name? GET /models tells them apart."""
        served = self._served_models()
        if served is None:
            return ("no OpenAI-compatible API at that address (check -o base_url; it usually "
                    "ends in /v1)")
        if self.model not in served:
            return (f"model {self.model!r} is not served there (it serves: "
                    f"{', '.join(served[:10]) or 'nothing'}; choose one with --model or "
                    "-o served_model)")
        return f"wrong base_url or model name (model {self.model!r})"

    def _served_models(self) -> list[str] | None:
        request = urllib.request.Request(self.base_url.rstrip("/") + "/models",
                                         headers=self.headers)
        try:
            with urllib.request.urlopen(request, timeout=min(self.timeout, 10.0)) as response:
                data = json.loads(response.read())
            return [str(m["id"]) for m in data["data"]]
        except (OSError, http.client.HTTPException, ValueError, KeyError, TypeError):
            return None


def _choices(data: dict, url: str) -> list[dict]:
    """The answer's choices in index order; RFError when the answer is not a chat completion."""
    choices = data.get("choices")
    if not isinstance(choices, list) or not choices:
        raise RFError(f"malformed response from {url}: no choices "
                      f"({_one_line(json.dumps(data), 120)})")
    for c in choices:
        if not isinstance(c, dict) or not isinstance(c.get("message"), dict):
            raise RFError(f"malformed response from {url}: a choice without a message")
        content = c["message"].get("content")
        if content is not None and not isinstance(content, str):
            raise RFError(f"malformed response from {url}: message content is not text")
    return sorted(choices, key=lambda c: c["index"] if isinstance(c.get("index"), int) else 0)


def _count(value) -> int:
    return value if isinstance(value, int) and value >= 0 else 0


def _usage(data: dict) -> tuple[int, int]:
    """(prompt_tokens, completion_tokens) of an answer; 0 where the server left them out."""
    usage = data.get("usage")
    if not isinstance(usage, dict):
        usage = {}
    return _count(usage.get("prompt_tokens")), _count(usage.get("completion_tokens"))


def _answer(choice: dict, seed: int, completion_tokens: int | None) -> dict:
    """One candidate: n_tokens and logprob from the choice's logprobs where the server gave
    them, else n_tokens from usage (exact only for a one-choice request)."""
    logprobs = choice.get("logprobs")
    entries = logprobs.get("content") if isinstance(logprobs, dict) else None
    n_tokens, logprob = completion_tokens, None
    if isinstance(entries, list) and entries:
        n_tokens = len(entries)
        values = [e.get("logprob") for e in entries if isinstance(e, dict)]
        numbers = [v for v in values if isinstance(v, (int, float))]
        if len(numbers) == len(values):
            logprob = round(float(sum(numbers)), 4)
    return {"text": choice["message"].get("content") or "", "logprob": logprob,
            "n_tokens": n_tokens, "finished": choice.get("finish_reason") == "stop",
            "seed": seed}


@dataclass
class _Pending:
    """A task waiting for its answers: ``left`` requests are still out; ``resent``: the
    endpoint each resent request (by its first sample) went to first; ``failed``: a request
    of it was dropped when every endpoint was down, so it is never written."""

    index: int
    messages: list
    answers: list
    left: int = 0
    resent: dict = field(default_factory=dict)
    failed: bool = False


class _Run:
    """One rf-sample run: requests in flight, the n=1 fallback, token totals."""

    def __init__(self, clients: list[_Client], *, k: int, temperature: float, top_p: float,
                 max_new_tokens: int, seed: int, concurrency: int, report: Callable):
        self.clients = clients
        self.k = k
        self.params = {"temperature": temperature, "top_p": top_p, "max_tokens": max_new_tokens}
        self.seed = seed
        self.concurrency = concurrency
        self.report = report
        self.single = k == 1  # one request per sample: k=1, or after the server refused n
        self.refusal: str | None = None  # why n was refused, until an n=1 request works
        self.logprobs = True  # ask for them, unless the server refused them
        # (n > 1, logprobs) of each way the first request is tried, in order; None once an
        # answer came back, and requests go out concurrently from then on
        self.probe: list[tuple[bool, bool]] | None = (
            [(False, True), (False, False)] if k == 1 else
            [(True, True), (True, False), (False, True), (False, False)])
        self.prompt_tokens = 0
        self.completion_tokens = 0
        self.requests = 0
        self.resent = 0  # requests sent again after their endpoint went down
        self.failure: RFError | None = None  # every endpoint down: what is in flight ends
        self.exhausted = False  # the current stream's conversations are all read
        self.window = concurrency * len(clients) * WINDOW_PER_REQUEST
        self.pool = ThreadPoolExecutor(max_workers=concurrency * len(clients),
                                       thread_name_prefix="rf-openai")

    # -- what is sent ------------------------------------------------------------------
    def requests_for(self, entry: _Pending) -> list[tuple[_Pending, int, int]]:
        """(entry, n, first sample) for each request a task needs now."""
        if self.single:
            return [(entry, 1, j) for j in range(self.k)]
        return [(entry, self.k, 0)]

    def call(self, entry: _Pending, n: int, j: int, client: _Client) -> dict:
        """In a worker thread: one request to ``client`` for ``n`` samples from sample ``j``
        on; the seed depends on the task and the sample only, never on the endpoint."""
        from rf_core.api import sample_seed

        body = {"model": client.model, "messages": entry.messages, **self.params,
                "n": n, "seed": sample_seed(self.seed, entry.index, j)}
        if self.logprobs:  # per-choice token counts, and the candidates' logprob
            body["logprobs"] = True
        data = client.post(body)
        return {"data": data, "choices": _choices(data, client.url), "seed": body["seed"],
                "ext": {"endpoint": client.base_url, "served_model": client.model}}

    def live(self) -> list[_Client]:
        """The endpoints not given up on, in the order given."""
        return [c for c in self.clients if c.down is None]

    def limit(self) -> int:
        """Requests in flight now: the first alone, then ``concurrency`` per live endpoint."""
        return 1 if self.probe is not None else self.concurrency * len(self.live())

    # -- what comes back -----------------------------------------------------------------
    def fill(self, entry: _Pending, n: int, j: int, result: dict) -> int:
        """Put the answers on ``entry``; how many came (fewer than ``n`` from a server that
        ignores n: those are kept)."""
        prompt, completion = _usage(result["data"])
        self.prompt_tokens += prompt
        self.completion_tokens += completion
        self.requests += 1
        if self.probe is not None:
            self.probe = None
            if not self.logprobs:
                self.report("openai: the server refused logprobs; candidates get no logprob")
        got = result["choices"][:n]
        if n == 1 and self.refusal:
            self.report(f"openai: the server does not do n={self.k} ({self.refusal}); sending "
                        f"{self.k} separate n=1 requests per task from now on")
            self.refusal = None
        usage_count = completion if len(got) == 1 and "usage" in result["data"] else None
        for offset, choice in enumerate(got):
            # a choice of a request with n > 1 is reproduced by that request (same n)
            answer = _answer(choice, result["seed"], usage_count)
            answer["ext"] = {"openai": dict(result["ext"])}  # which endpoint wrote it
            entry.answers[j + offset] = answer
        return len(got)

    def fall_back(self, why: str) -> None:
        """Send n=1 requests from now on; say so once one of them works (a 400 at n>1 may
        have another cause, such as max_tokens, and then the n=1 request's error says it)."""
        if not self.single:
            self.single = True
            self.refusal = why

    # -- the loop ------------------------------------------------------------------------
    def stream(self, conversations: Iterable[tuple[int, list]]) -> Iterator[list]:
        """The answers of each (index, messages), in order, each as soon as it and every
        earlier one are done. An error or an abandoned stream stops the run's requests; when
        every endpoint is down, the requests still in flight are waited for, the tasks done
        by then come out, and then the error."""
        it = iter(conversations)
        pending: deque[_Pending] = deque()
        queue: deque[tuple[_Pending, int, int]] = deque()
        inflight: dict[Future, tuple[tuple[_Pending, int, int], _Client]] = {}
        self.exhausted = False
        try:
            while True:
                if self.failure is None:
                    self.top_up(it, pending, queue, inflight)
                if not inflight:
                    break
                done, _ = wait(inflight, return_when=FIRST_COMPLETED)
                self.flush_notes()  # the retries first, then what came of them
                for fut in done:
                    spec, client = inflight.pop(fut)
                    queue.extendleft(reversed(self.settle_one(fut, spec, client)))
                while pending and pending[0].left == 0 and not pending[0].failed:
                    yield pending.popleft().answers
            if self.failure is not None:
                raise self.failure
        except BaseException:
            self.stop()  # an error or a closed downstream pipe: drop what is queued
            raise

    def top_up(self, it: Iterator, pending: deque, queue: deque, inflight: dict) -> None:
        """Send requests until ``limit`` are in flight, reading conversations as needed (at
        most ``window`` ahead); each goes to the live endpoint with the fewest in flight."""
        # the first request goes alone: its answer says how to send the others
        while len(inflight) < self.limit():
            if queue:
                spec = self.next_request(queue)
                client = min(self.live(), key=lambda c: c.inflight)  # the first of equals
                client.inflight += 1
                inflight[self.pool.submit(self.call, *spec, client)] = (spec, client)
            elif not self.exhausted and len(pending) < self.window:
                nxt = next(it, None)
                if nxt is None:
                    self.exhausted = True
                    continue
                entry = _Pending(nxt[0], nxt[1], [None] * self.k)
                pending.append(entry)
                specs = self.requests_for(entry)
                entry.left = len(specs)
                queue.extend(specs)
            else:
                break

    def settle_one(self, fut: Future, spec: tuple[_Pending, int, int], client: _Client
                   ) -> list:
        """``settle``, with the endpoint's bookkeeping; once every endpoint is down, what
        comes back is kept where it is an answer and its task left unwritten where not."""
        client.inflight -= 1
        try:
            return self.settle(fut, spec, client)
        except RFError:
            if self.failure is None:
                raise
            spec[0].failed = True
            return []

    def failover(self, spec: tuple[_Pending, int, int], client: _Client, exc: _Down) -> list:
        """A request whose endpoint failed for good: the endpoint is given up on (said once)
        and the request goes to another, at most once; [] once every endpoint is down."""
        entry, _, j = spec
        if client.down is None:
            client.down = str(exc)
            client.stopped.set()  # its other requests stop retrying and come back here
            live = self.live()
            if live:
                self.report(f"openai: giving up on {client.base_url}: {exc}; its "
                            f"{client.inflight + 1} request(s) in flight go to the other "
                            f"{len(live)} endpoint(s), each at most once")
            elif len(self.clients) == 1:
                self.failure = RFError(str(exc))
            else:
                self.failure = RFError("every endpoint is down: " + "; ".join(
                    f"{c.base_url} ({c.down})" for c in self.clients))
        if self.failure is not None:
            entry.failed = True
            return []
        if j in entry.resent:
            raise RFError(f"a request failed on two endpoints ({entry.resent[j]}, then "
                          f"{client.base_url}: {exc}); it is not sent a third time")
        entry.resent[j] = client.base_url
        self.resent += 1
        return [spec]

    def stop(self) -> None:
        """Drop what is queued and stop retrying."""
        for client in self.clients:
            client.stopped.set()
        self.pool.shutdown(wait=False, cancel_futures=True)

    def next_request(self, queue: deque) -> tuple[_Pending, int, int]:
        """The next request to send; one queued with n=k before the server refused n is
        split into k requests with n=1 first."""
        entry, n, j = queue.popleft()
        if n > 1 and self.single:
            queue.extendleft(reversed([(entry, 1, s) for s in range(1, n)]))
            entry.left += n - 1
            return entry, 1, 0
        return entry, n, j

    def settle(self, fut: Future, spec: tuple[_Pending, int, int], client: _Client) -> list:
        """Record a finished request; the requests still needed for its samples (after a
        refusal, fewer choices than asked for, or its endpoint going down)."""
        entry, n, j = spec
        entry.left -= 1
        try:
            result = fut.result()
        except _Down as exc:
            redo = self.failover(spec, client, exc)
            entry.left += len(redo)
            return redo
        except _Rejected as exc:
            if self.probe:  # the first request: try it the next way
                self.probe.pop(0)
            if not self.probe:
                if n == 1 or self.probe is not None:
                    raise RFError(str(exc)) from None
                self.fall_back(str(exc))  # a later request refused at n>1
            else:
                many, self.logprobs = self.probe[0]
                if not many:
                    self.fall_back(str(exc))
            redo = [(entry, 1, s) for s in range(j, j + n)] if self.single else [spec]
        else:
            client.answered += 1
            got = self.fill(entry, n, j, result)
            if got == n:
                return []
            self.fall_back(f"it answered n={n} with {got} choice(s)")
            self.refusal = None  # said now: the kept choice is not an n=1 answer
            self.report(f"openai: the server does not do n={self.k} (it answered n={n} with "
                        f"{got} choice(s), kept); sending one n=1 request per sample from now "
                        "on")
            redo = [(entry, 1, s) for s in range(j + got, j + n)]
        entry.left += len(redo)
        return redo

    def flush_notes(self) -> None:
        """Report the clients' notes (retries ...), from the main thread."""
        for client in self.clients:
            for note in client.take_notes():
                self.report(f"openai: {note}")


def _endpoints(base_url: str | Sequence[str], endpoints_file: str | None) -> list[str]:
    """The endpoints' API roots: the endpoints file's lines (blank lines and # comments
    skipped) when one is given, else every -o base_url."""
    if endpoints_file:
        try:
            with open(endpoints_file, encoding="utf-8") as fh:
                lines = [line.strip() for line in fh]
        except (OSError, ValueError) as exc:
            why = exc.strerror if isinstance(exc, OSError) and exc.strerror else exc
            raise RFError(f"cannot read -o endpoints_file {endpoints_file}: {why}") from None
        urls = [line for line in lines if line and not line.startswith("#")]
        if not urls:
            raise RFError(f"-o endpoints_file {endpoints_file} lists no endpoint")
    else:
        urls = [base_url] if isinstance(base_url, str) else list(base_url) or [DEFAULT_URL]
    seen: set[str] = set()
    for url in urls:
        if not url.startswith(("http://", "https://")):
            raise RFError(f"endpoint {_one_line(url, 80)!r} is not an http:// or https:// "
                          "URL")
        if url.rstrip("/") in seen:
            raise RFError(f"endpoint {url} is given twice")
        seen.add(url.rstrip("/"))
    return urls


def _reach(client: _Client) -> str | None:
    """None where the endpoint answers GET /models (any HTTP answer counts), else why not."""
    try:
        client.send("/models")
    except _Transient as exc:
        return exc.reason
    except RFError as exc:  # an unknown host
        return str(exc)
    return None


def _answering(clients: list[_Client], require_all: bool, report: Callable[[str], None]
               ) -> list[_Client]:
    """The endpoints that answer at start; one line for each that does not. RFError when
    none does, or one does not and ``require_all``."""
    with ThreadPoolExecutor(max_workers=min(16, len(clients))) as pool:
        reasons = list(pool.map(_reach, clients))
    live = [c for c, why in zip(clients, reasons) if why is None]
    lost = [f"{c.base_url} ({why})" for c, why in zip(clients, reasons) if why is not None]
    if lost and (require_all or not live):
        rule = "-o require_all true asks for every endpoint" if live else "none answers"
        raise RFError(f"cannot reach {', '.join(lost)}: {rule}")
    for line in lost:
        report(f"openai: cannot reach {line}; going on with the other {len(live)} "
               "endpoint(s)")
    return live


def _adapter(folder: str, path_map: str | None) -> tuple[str, str]:
    """(name, path on the servers) of a PEFT adapter folder. The name changes whenever the
    folder's path or files do (a hash of the path and the files' sizes and times), so each
    iteration's adapter is its own; ``path_map`` (LOCAL=SERVER) rewrites the path's start."""
    path = Path(folder).resolve()
    if not (path / "adapter_config.json").is_file():
        raise RFError(f"--adapter {folder}: not an adapter folder (no adapter_config.json "
                      "there)")
    stamp = [str(path)]
    for name in ADAPTER_FILES:
        if (path / name).is_file():
            st = (path / name).stat()
            stamp.append(f"{name}:{st.st_size}:{st.st_mtime_ns}")
    digest = hashlib.sha256("|".join(stamp).encode()).hexdigest()[:12]
    served = str(path)
    if path_map:
        local, _, remote = path_map.partition("=")
        local = local.rstrip("/") or "/"
        rest = os.path.relpath(served, local)
        if rest == ".." or rest.startswith("../"):
            raise RFError(f"--adapter {served} is not under {local} (-o adapter_path_map)")
        served = remote if rest == "." else remote.rstrip("/") + "/" + rest
    return f"rf-{digest}", served


def _load_adapter(client: _Client, name: str, path: str) -> None:
    """Load the adapter into one vLLM server by name (its runtime LoRA endpoint); one
    already loaded under that name is fine. RFError with the server's reason if it cannot."""
    try:
        status, raw = client.send("/load_lora_adapter", {"lora_name": name, "lora_path": path},
                                  timeout=client.timeout)
    except _Transient as exc:
        raise RFError(f"cannot load the adapter into {client.base_url}: {exc.reason}") from None
    if status < 300:
        return
    message = _server_message(raw)
    if status == 400 and "already" in message.lower():  # loaded by an earlier run
        return
    if status in (404, 405) and message in ("Not Found", "Method Not Allowed"):
        why = ("it does not load adapters at run time (start vLLM with "
               "VLLM_ALLOW_RUNTIME_LORA_UPDATING=True and --enable-lora)")
    else:
        why = f"HTTP {status}: {message}"
    raise RFError(f"{client.base_url} cannot load the adapter {path} as {name!r}: {why}")


class OpenAISampler:
    """Any OpenAI-compatible chat-completions server, or several, behind rf-sample."""

    name = "openai"
    description = "any OpenAI-compatible chat-completions server (vLLM, SGLang, llama.cpp ...)"
    options = (
        Option("base_url", str, (DEFAULT_URL,),
               "A server's OpenAI API root (requests go to BASE_URL/chat/completions); "
               "several: requests go to the one with the fewest in flight.", repeat=True),
        Option("endpoints_file", str, None,
               "A file listing the API roots, one a line (instead of base_url)."),
        Option("require_all", bool, False,
               "Refuse to start unless every endpoint answers (else those that do are used)."),
        Option("adapter_path_map", str, None,
               "LOCAL=SERVER: the --adapter path as the servers see it, its start LOCAL "
               "replaced by SERVER.", pattern=r"[^=]+=.+"),
        # not "model": rf-sample passes --model to every sampler under that keyword
        Option("served_model", str, None,
               "Model name on the server (default: the --model value)."),
        Option("api_key_env", str, "OPENAI_API_KEY",
               "Environment variable holding the API key (unset: no Authorization header)."),
        Option("concurrency", int, 8, "Requests in flight per endpoint.", minimum=1),
        Option("timeout", float, 600.0, "Seconds to wait for one answer.", minimum=0.001),
        Option("max_retries", int, 5, "Retries of a request after 429, 5xx, a reset or "
               "refused connection, or a timeout (then its endpoint is given up on).",
               minimum=0),
        Option("backoff", float, 1.0, "Seconds before the first retry; doubled for each "
               "next one, with jitter (a longer Retry-After is honoured).", minimum=0),
    )

    def load(self, request: SampleRequest, *, report: Callable[[str], None] = to_stderr,
             base_url: str | Sequence[str] = (DEFAULT_URL,), endpoints_file: str | None = None,
             require_all: bool = False, adapter_path_map: str | None = None,
             served_model: str | None = None, api_key_env: str = "OPENAI_API_KEY",
             concurrency: int = 8, timeout: float = 600.0, max_retries: int = 5,
             backoff: float = 1.0, **_ignored) -> "_OpenAIRun":
        """Clients for the endpoints. With several, or an adapter, each is asked GET /models
        first (and loads the adapter); else nothing is sent until the first conversation."""
        urls = _endpoints(base_url, endpoints_file)
        adapter = _adapter(request.adapter, adapter_path_map) if request.adapter else None
        served = served_model or request.model
        clients = [_Client(url, served, api_key_env, timeout, max_retries, backoff)
                   for url in urls]
        if len(clients) > 1 or adapter:
            clients = _answering(clients, require_all, report)
        if adapter:
            name, path = adapter
            with ThreadPoolExecutor(max_workers=min(16, len(clients))) as pool:
                list(pool.map(lambda c: _load_adapter(c, name, path), clients))
            for client in clients:
                client.model = name
            report(f"openai: adapter {request.adapter} loaded as {name!r} on "
                   f"{len(clients)} endpoint(s)")
        run = _Run(clients, k=request.k, temperature=request.temperature, top_p=request.top_p,
                   max_new_tokens=request.max_new_tokens, seed=request.seed,
                   concurrency=concurrency, report=report)
        return _OpenAIRun(run, served, report)


class _OpenAIRun:
    """The loaded clients: conversations answered with up to ``concurrency`` requests in
    flight per endpoint; a window of conversations streams out in order as they are done."""

    def __init__(self, run: _Run, served: str, report: Callable[[str], None]):
        self.run = run
        self.candidate_model = served  # candidates name the (base) model the server served
        self.window = run.window
        self.report = report
        self.tasks = 0
        self.start = time.perf_counter()

    def generate(self, conversations: list, *, first: int, positions: list[int] | None = None,
                 **_context) -> Iterator[list]:
        """k answers per conversation, each with the seed its request carried: seeded by the
        conversation's place in the whole input (``positions``, so a shard gets the seeds of
        the unsharded run), else by ``first`` + its place in the window."""
        places = positions if positions is not None else range(first,
                                                                first + len(conversations))
        for answers in self.run.stream(zip(places, conversations)):
            self.tasks += 1
            yield answers

    def close(self) -> None:
        """Say how many requests went to which endpoint (and were resent), and the token
        counts."""
        run = self.run
        run.pool.shutdown(wait=False)
        elapsed = time.perf_counter() - self.start
        retries = sum(c.retries for c in run.clients)
        retried = f"; {_retries(retries)}" if retries else ""
        if len(run.clients) == 1:
            where = run.clients[0].url
        else:
            where = f"{len(run.clients)} endpoints (" + ", ".join(
                f"{c.base_url}: {c.answered}" + (" (down)" if c.down else "")
                for c in run.clients) + ")"
        resent = f"; {run.resent} resent after an endpoint went down" if run.resent else ""
        # no token counts from the server: no rate, rather than a rate of 0
        rate = (f"{run.completion_tokens / elapsed:.3g} tok/s" if run.completion_tokens and
                elapsed > 0 else "no completion token counts from the server")
        self.report(f"openai: {self.tasks} task(s), {run.requests} request(s) to {where}"
                    f"{retried}{resent}; {run.prompt_tokens:,} prompt + "
                    f"{run.completion_tokens:,} completion tokens in {elapsed:.1f} s ({rate})")


@hookimpl
def register_samplers(register):
    """openai."""
    register(OpenAISampler())
