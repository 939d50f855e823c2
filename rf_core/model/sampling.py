"""rf-sample's loop around a sampler engine: the one place where tasks are read in windows,
prompts are rendered (``task_messages``), answers become candidates (``attach``), and the rate
line is written. An engine (``rf_core.api.SamplerEngine``) only generates answers for
conversations; a record-level sampler (the escape hatch) still gets the tasks themselves.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from itertools import count, islice
from typing import Any, Callable, Iterable, Iterator

from rf_core.errors import RFError
from rf_core.model.candidates import attach
from rf_core.model.prompts import task_messages

DEFAULT_WINDOW = 1024  # conversations per generate call, unless the engine says otherwise


def is_engine(impl: Any) -> bool:
    """Whether a registered sampler is an engine (has ``load``), not a record-level one."""
    return callable(getattr(impl, "load", None))


def rate(tokens: int, seconds: float) -> str:
    """``12.3 tok/s``, with three significant digits (0.19, not 0, on a slow machine); "no
    tokens yet" rather than a rate of 0 that was never measured."""
    if tokens <= 0 or seconds <= 0:
        return "no tokens yet"
    r = tokens / seconds
    return f"{r:.0f} tok/s" if r >= 100 else f"{r:.3g} tok/s"


def phase_text(now: dict, before: dict | None = None) -> str:
    """``prefill 3,823 tok in 18.4 s (208 tok/s), decode 388 tok in 15.0 s (25.9 tok/s)``:
    an engine's ``phases()`` (since ``before``, another ``phases()``, when given)."""
    def delta(key: str) -> float:
        return (now.get(key) or 0) - ((before or {}).get(key) or 0)

    parts = []
    for phase, tokens in (("prefill", "prefill_tokens"), ("decode", "new_tokens")):
        n, s = int(delta(tokens)), delta(f"{phase}_s")
        parts.append(f"{phase} {n:,} tok in {s:.1f} s ({rate(n, s)})")
    return ", ".join(parts)


@dataclass
class Tally:
    """What the rate line counts: tasks, candidates, new tokens (a stop token counts as
    generated; answers without a token count add none), and seconds spent in ``generate``."""

    tasks: int = 0
    candidates: int = 0
    new_tokens: int = 0
    seconds: float = 0.0

    def add(self, answers: list[dict]) -> None:
        """Count one task's answers."""
        self.tasks += 1
        self.candidates += len(answers)
        self.new_tokens += sum(a["n_tokens"] + bool(a.get("finished")) for a in answers
                               if isinstance(a.get("n_tokens"), int))

    def line(self, detail: str | None = None) -> str:
        """``N task(s), M candidate(s), T new tokens in S s (R tok/s; detail)``."""
        extra = f"; {detail}" if detail else ""
        return (f"{self.tasks} task(s), {self.candidates} candidate(s), {self.new_tokens} new "
                f"tokens in {self.seconds:.1f} s ({rate(self.new_tokens, self.seconds)}{extra})")


def window_of(loaded: Any) -> int:
    """Conversations per ``generate`` call: the loaded engine's ``window``, or the default."""
    window = getattr(loaded, "window", None)
    return max(1, int(window)) if isinstance(window, int) else DEFAULT_WINDOW


def rows_of(engine: Any, loaded: Any, messages: list, chunk: list[dict],
            positions: list[int], tally: Tally) -> Iterator[list[dict]]:
    """The engine's answer lists for one window of conversations (``chunk``: the task of each,
    passed to ``generate`` as ``tasks``; ``positions``: their places in the whole input), as
    they come (a list, or an iterator that yields them as they are done); the time spent
    waiting for them goes to ``tally``."""
    began = time.perf_counter()
    n = 0
    for answers in loaded.generate(messages, first=tally.tasks, tasks=chunk,
                                   positions=positions):
        tally.seconds += time.perf_counter() - began
        n += 1
        if n > len(messages) or not isinstance(answers, list):
            raise RFError(f"sampler {engine.name!r} gave more answer lists than the "
                          f"{len(messages)} conversation(s), or one that is not a list")
        yield answers
        began = time.perf_counter()
    tally.seconds += time.perf_counter() - began
    if n != len(messages):
        raise RFError(f"sampler {engine.name!r} answered {n} of {len(messages)} "
                      "conversation(s)")


def run_engine(engine: Any, tasks: Iterable[dict], request: Any, *, options: dict,
               report: Callable[[str], None],
               positions: Iterable[int] | None = None,
               summary: dict | None = None) -> Iterator[dict]:
    """Load ``engine`` for ``request`` and yield every task, in input order, with
    ``messages`` and its candidates; one rate line on stderr after each window, and after
    the last one where the time went: loading, then prefill and decode where the engine
    tells them apart (its ``phases()``).

    ``positions`` are the tasks' places in the whole input (default 0, 1, 2 ...; under
    ``rf-sample --shard I/N``: I, I + N, ...): engines get them (``positions`` in
    ``generate``'s context) to seed each task as the unsharded run does. ``summary``, when
    given, is filled at the end with the same figures (rf-sample --stats)."""
    places = iter(positions) if positions is not None else count()
    loading = time.perf_counter()
    loaded = engine.load(request, report=report, **options)
    load_s = time.perf_counter() - loading
    window = window_of(loaded)
    model = getattr(loaded, "candidate_model", None) or request.model
    detail = getattr(loaded, "detail", None)
    tally = Tally()
    it = iter(tasks)
    while chunk := list(islice(it, window)):
        messages = [task_messages(t) for t in chunk]
        where = list(islice(places, len(chunk)))
        for i, answers in enumerate(rows_of(engine, loaded, messages, chunk, where, tally)):
            tally.add(answers)
            # seed None: an answer carries its own seed where one reproduces it
            yield attach(chunk[i], messages[i], answers, sampler=engine.name, model=model,
                         adapter=request.adapter, temperature=request.temperature, seed=None)
        report(tally.line(detail() if callable(detail) else None))
    close = getattr(loaded, "close", None)
    if callable(close):
        close()
    phases = getattr(loaded, "phases", None)
    phases = phases() if callable(phases) else None
    report(f"time: load {load_s:.1f} s, generation {tally.seconds:.1f} s"
           + (f" ({phase_text(phases)})" if phases else ""))
    if summary is not None:
        summary.update({"engine": engine.name, "tasks": tally.tasks,
                        "candidates": tally.candidates, "new_tokens": tally.new_tokens,
                        "load_s": round(load_s, 3), "generate_s": round(tally.seconds, 3),
                        **(phases or {})})


def sample_tasks(impl: Any, tasks: Iterable[dict], *, model: str, adapter: str | None = None,
                 k: int = 1, temperature: float = 0.0, top_p: float = 1.0,
                 max_new_tokens: int = 256, seed: int = 0,
                 report: Callable[[str], None] | None = None, progress: Any = None,
                 positions: Iterable[int] | None = None, summary: dict | None = None,
                 **options: Any) -> Iterator[dict]:
    """Sample ``tasks`` with a registered sampler: an engine through ``run_engine`` (which
    gets the tasks' input ``positions`` and fills ``summary``), a record-level sampler (the
    escape hatch) through its own ``sample``."""
    from rf_core.model.request import SampleRequest
    from rf_core.records.io import to_stderr

    report = report or to_stderr
    resolve = getattr(impl, "engine_for", None)
    if callable(resolve):  # --sampler auto: the engine it picks here, with its options
        impl, options = resolve(options, report)
    if not is_engine(impl):
        return impl.sample(tasks, model=model, adapter=adapter, k=k, temperature=temperature,
                           top_p=top_p, max_new_tokens=max_new_tokens, seed=seed,
                           report=report, progress=progress, **options)
    request = SampleRequest(model=model, adapter=adapter, k=k, temperature=temperature,
                            top_p=top_p, max_new_tokens=max_new_tokens, seed=seed)
    return run_engine(impl, tasks, request, options=options, report=report,
                      positions=positions, summary=summary)


def auto_order(samplers: Iterable[Any]) -> list[Any]:
    """The engines ``--sampler auto`` considers, highest ``priority`` first (registration
    order among equals); engines without a priority are left out."""
    ranked = [s for s in samplers if is_engine(s) and isinstance(getattr(s, "priority", None),
                                                                 int)]
    return sorted(ranked, key=lambda s: -s.priority)


def auto_rule(engines: list[Any]) -> str:
    """The rule in words, from the engines' declarations: ``vllm (vLLM installed and a CUDA
    GPU), else cb (a CUDA GPU with flash attention), else hf``."""
    parts = [f"{e.name} ({e.rule})" if getattr(e, "rule", "") else e.name for e in engines]
    return ", else ".join(parts) or "no sampler engine declares a priority"


def _available(engine: Any) -> tuple[bool, str]:
    check = getattr(engine, "available", None)
    if not callable(check):
        return True, ""
    try:
        ok, why = check()
    except ImportError as exc:  # a package the engine needs (torch ...) is not installed
        return False, f"{exc.name or exc} not installed"
    return bool(ok), str(why or "")


def auto_pick(engines: list[Any]) -> tuple[str, str]:
    """(engine name, why): the first available engine of ``engines`` (in ``auto_order``);
    why joins, once each, the reasons of the engines passed over and the picked one's own."""
    reasons: list[str] = []
    for engine in engines:
        ok, why = _available(engine)
        if why and why not in reasons:
            reasons.append(why)
        if ok:
            return engine.name, ", ".join(reasons)
    from rf_core.errors import UsageError

    raise UsageError("--sampler auto found no available sampler engine here ("
                     + ("; ".join(reasons) or "none declares a priority")
                     + "): choose one with --sampler")
