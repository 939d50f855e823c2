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

Written as a third-party plugin would be: it imports only rf_core.api and the standard library.
"""

from __future__ import annotations

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
from typing import Callable, Iterable, Iterator

from rf_core.api import Option, RFError, SampleRequest, hookimpl, to_stderr

MAX_DELAY = 60.0  # seconds: the longest wait between two tries, Retry-After included
WINDOW_PER_REQUEST = 4  # tasks read ahead per request in flight: bounds memory when one lags


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
    # set when the run ends early (an error, a closed pipe): no more tries or waits, so the
    # process does not linger in backoff before it exits
    stopped: threading.Event = field(default_factory=threading.Event)

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
                    raise RFError(self._gave_up(exc, attempt)) from None
                self._note_retry(exc)
                if self.stopped.wait(self._delay(attempt, exc.retry_after)):
                    raise RFError(self._gave_up(exc, attempt)) from None
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
    """A task waiting for its answers: ``left`` requests are still out."""

    index: int
    messages: list
    answers: list
    left: int = 0


class _Run:
    """One rf-sample run: requests in flight, the n=1 fallback, token totals."""

    def __init__(self, client: _Client, *, k: int, temperature: float, top_p: float,
                 max_new_tokens: int, seed: int, concurrency: int, report: Callable):
        self.client = client
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
        self.pool = ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="rf-openai")

    # -- what is sent ------------------------------------------------------------------
    def requests_for(self, entry: _Pending) -> list[tuple[_Pending, int, int]]:
        """(entry, n, first sample) for each request a task needs now."""
        if self.single:
            return [(entry, 1, j) for j in range(self.k)]
        return [(entry, self.k, 0)]

    def call(self, entry: _Pending, n: int, j: int) -> dict:
        """In a worker thread: one request for ``n`` samples from sample ``j`` on."""
        from rf_core.api import sample_seed

        body = {"model": self.client.model, "messages": entry.messages, **self.params,
                "n": n, "seed": sample_seed(self.seed, entry.index, j)}
        if self.logprobs:  # per-choice token counts, and the candidates' logprob
            body["logprobs"] = True
        data = self.client.post(body)
        return {"data": data, "choices": _choices(data, self.client.url), "seed": body["seed"]}

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
            entry.answers[j + offset] = _answer(choice, result["seed"], usage_count)
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
        earlier one are done. An error or an abandoned stream stops the run's requests."""
        it = iter(conversations)
        pending: deque[_Pending] = deque()
        queue: deque[tuple[_Pending, int, int]] = deque()
        inflight: dict[Future, tuple[_Pending, int, int]] = {}
        window = self.concurrency * WINDOW_PER_REQUEST
        exhausted = False
        try:
            while True:
                # the first request goes alone: its answer says how to send the others
                while len(inflight) < (1 if self.probe is not None else self.concurrency):
                    if queue:
                        spec = self.next_request(queue)
                        inflight[self.pool.submit(self.call, *spec)] = spec
                    elif not exhausted and len(pending) < window:
                        nxt = next(it, None)
                        if nxt is None:
                            exhausted = True
                            continue
                        entry = _Pending(nxt[0], nxt[1], [None] * self.k)
                        pending.append(entry)
                        specs = self.requests_for(entry)
                        entry.left = len(specs)
                        queue.extend(specs)
                    else:
                        break
                if not inflight:
                    break
                done, _ = wait(inflight, return_when=FIRST_COMPLETED)
                for fut in done:
                    queue.extendleft(reversed(self.settle(fut, inflight.pop(fut))))
                self.flush_notes()
                while pending and pending[0].left == 0:
                    yield pending.popleft().answers
        except BaseException:
            self.stop()  # an error or a closed downstream pipe: drop what is queued
            raise

    def stop(self) -> None:
        """Drop what is queued and stop retrying."""
        self.client.stopped.set()
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

    def settle(self, fut: Future, spec: tuple[_Pending, int, int]) -> list:
        """Record a finished request; the requests still needed for its samples (after a
        refusal, or fewer choices than asked for)."""
        entry, n, j = spec
        entry.left -= 1
        try:
            result = fut.result()
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
        """Report the client's notes (retries ...), from the main thread."""
        for note in self.client.take_notes():
            self.report(f"openai: {note}")


class OpenAISampler:
    """Any OpenAI-compatible chat-completions server, behind rf-sample."""

    name = "openai"
    description = "any OpenAI-compatible chat-completions server (vLLM, SGLang, llama.cpp ...)"
    options = (
        Option("base_url", str, "http://127.0.0.1:8000/v1",
               "The server's OpenAI API root (requests go to BASE_URL/chat/completions)."),
        # not "model": rf-sample passes --model to every sampler under that keyword
        Option("served_model", str, None,
               "Model name on the server (default: the --model value)."),
        Option("api_key_env", str, "OPENAI_API_KEY",
               "Environment variable holding the API key (unset: no Authorization header)."),
        Option("concurrency", int, 8, "Requests in flight.", minimum=1),
        Option("timeout", float, 600.0, "Seconds to wait for one answer.", minimum=0.001),
        Option("max_retries", int, 5, "Retries of a request after 429, 5xx, a reset or "
               "refused connection, or a timeout.", minimum=0),
        Option("backoff", float, 1.0, "Seconds before the first retry; doubled for each "
               "next one, with jitter (a longer Retry-After is honoured).", minimum=0),
    )

    def load(self, request: SampleRequest, *, report: Callable[[str], None] = to_stderr,
             base_url: str = "http://127.0.0.1:8000/v1", served_model: str | None = None,
             api_key_env: str = "OPENAI_API_KEY", concurrency: int = 8,
             timeout: float = 600.0, max_retries: int = 5, backoff: float = 1.0,
             **_ignored) -> "_OpenAIRun":
        """A client for the server; nothing is sent until the first conversation."""
        if request.adapter:
            raise RFError("the openai sampler cannot apply --adapter: serve the adapter on "
                          "the server (vLLM: --enable-lora --lora-modules NAME=PATH) and ask "
                          "for it with --model NAME or -o served_model NAME")
        served = served_model or request.model
        client = _Client(base_url, served, api_key_env, timeout, max_retries, backoff)
        run = _Run(client, k=request.k, temperature=request.temperature, top_p=request.top_p,
                   max_new_tokens=request.max_new_tokens, seed=request.seed,
                   concurrency=concurrency, report=report)
        return _OpenAIRun(run, served, report)


class _OpenAIRun:
    """The loaded client: conversations answered with up to ``concurrency`` requests in
    flight; a window of conversations streams out in order as they are done."""

    def __init__(self, run: _Run, served: str, report: Callable[[str], None]):
        self.run = run
        self.candidate_model = served  # candidates name the model the server served
        self.window = run.concurrency * WINDOW_PER_REQUEST
        self.report = report
        self.tasks = 0
        self.start = time.perf_counter()

    def generate(self, conversations: list, *, first: int, **_context) -> Iterator[list]:
        """k answers per conversation, each with the seed its request carried."""
        for answers in self.run.stream(enumerate(conversations, first)):
            self.tasks += 1
            yield answers

    def close(self) -> None:
        """Say how many requests went to the server and its token counts."""
        run, client = self.run, self.run.client
        run.pool.shutdown(wait=False)
        elapsed = time.perf_counter() - self.start
        retried = f"; {_retries(client.retries)}" if client.retries else ""
        # no token counts from the server: no rate, rather than a rate of 0
        rate = (f"{run.completion_tokens / elapsed:.3g} tok/s" if run.completion_tokens and
                elapsed > 0 else "no completion token counts from the server")
        self.report(f"openai: {self.tasks} task(s), {run.requests} request(s) to {client.url}"
                    f"{retried}; {run.prompt_tokens:,} prompt + {run.completion_tokens:,} "
                    f"completion tokens in {elapsed:.1f} s ({rate})")


@hookimpl
def register_samplers(register):
    """openai."""
    register(OpenAISampler())
