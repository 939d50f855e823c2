"""rf-revise's loop: run each candidate's query, show the model what it did, take its revised
query; up to ``rounds`` times, a window of tasks at a time, records in input order.

A revised candidate is a new candidate whose ``revision.turns`` hold every earlier one: the
earlier candidate's fields as they were (its SQL, text, and what rf-exec said of it, if it
ran), the round, the feedback the model was shown and what that feedback was built from
(``shown``). Its conversation is ``revision_messages``: the task's own prompt, then one
assistant turn (the earlier reply) and one user turn (the feedback) per earlier turn.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Iterator

from rf_core.exec.sqlite import Limits
from rf_core.model.candidates import STALE, candidate_of
from rf_core.model.prompts import reply_of as _reply, revision_messages, task_messages
from rf_core.model.prompts import revision_turns as turns
from rf_core.model.sampling import DEFAULT_WINDOW, Tally, rows_of, window_of
from rf_core.revise.feedback import PREVIEW_ROWS, Preview, feedback, run_previews

# task fields an engine never sees during a revision (gold and everything derived from it)
GOLD_FIELDS = ("gold_sql", "gold_exec", "vote", "verified_by", "candidates")


@dataclass(frozen=True)
class ReviseSettings:
    """``rounds``: revision rounds at most; ``revise``: which candidates enter the first round
    ("failed": the query failed, returned no row or was missing; "all": every candidate);
    ``until``: "rows" (a candidate leaves once its query runs and returns rows) or "never"
    (every entered candidate is revised every round); ``preview_rows``: result rows shown."""

    rounds: int = 1
    revise: str = "failed"
    until: str = "rows"
    preview_rows: int = PREVIEW_ROWS


@dataclass
class RoundCount:
    """One round's counts: candidates revised, and skipped (the conversation too long)."""

    revised: int = 0
    skipped: int = 0


@dataclass
class ReviseTally:
    """What rf-revise's summary line counts."""

    tasks: int = 0
    candidates: int = 0
    rounds: list[RoundCount] = field(default_factory=list)
    revised: int = 0        # distinct candidates revised at least once
    with_rows: int = 0      # of those, how many return rows after their last revision
    sampling: Tally = field(default_factory=Tally)

    def round(self, r: int) -> RoundCount:
        """The counts of round ``r`` (1-based), made on first use."""
        while len(self.rounds) < r:
            self.rounds.append(RoundCount())
        return self.rounds[r - 1]

    def line(self) -> str:
        """``N task(s), M candidate(s); round 1: a revised ...; ...``."""
        rounds = "; ".join(f"round {i}: {c.revised} revised" +
                           (f", {c.skipped} skipped (too long)" if c.skipped else "")
                           for i, c in enumerate(self.rounds, 1)) or "nothing to revise"
        s = self.sampling
        return (f"{self.tasks} task(s), {self.candidates} candidate(s); {rounds}; "
                f"{self.with_rows} of {self.revised} revised candidate(s) now run and return "
                f"rows; {s.new_tokens} new tokens in {s.seconds:.1f} s")


def blind(task: dict) -> dict:
    """The task as an engine may see it during a revision: no gold, no verdicts."""
    return {k: v for k, v in task.items() if k not in GOLD_FIELDS}


class Reviser:
    """Revises windows of tasks with one loaded engine (``revise_tasks`` drives it)."""

    def __init__(self, engine: Any, request: Any, settings: ReviseSettings, *,
                 options: dict, limits: Limits, jobs: int, report: Callable[[str], None]):
        self.engine, self.request, self.options = engine, request, options
        self.settings, self.limits, self.jobs, self.report = settings, limits, jobs, report
        self._loaded: Any = None
        self.tally = ReviseTally()

    @property
    def loaded(self) -> Any:
        """The engine, loaded when the first candidate needs a revision (a run with nothing
        to revise loads no model)."""
        if self._loaded is None:
            self._loaded = self.engine.load(self.request, report=self.report, **self.options)
        return self._loaded

    @property
    def model(self) -> str:
        """The model name revised candidates record."""
        return getattr(self.loaded, "candidate_model", None) or self.request.model

    def window_size(self) -> int:
        """Candidates per window: the loaded engine's ``window``, the default before it
        loads."""
        return window_of(self._loaded) if self._loaded is not None else DEFAULT_WINDOW

    def close(self) -> None:
        """Close the engine, if it was loaded."""
        close = getattr(self._loaded, "close", None)
        if callable(close):
            close()

    def previews(self, chunk: list[dict], keys: list[tuple[int, int]]) -> dict:
        """(task index, candidate index) -> (Preview, column count) for ``keys``."""
        by_task: dict[int, list[int]] = {}
        for ti, ci in keys:
            by_task.setdefault(ti, []).append(ci)
        order = sorted(by_task)
        jobs = [(str(chunk[ti].get("db_path") or ""),
                 [chunk[ti]["candidates"][ci].get("sql") for ci in by_task[ti]]) for ti in order]
        out = {}
        for ti, outcomes in zip(order, run_previews(jobs, limits=self.limits, workers=self.jobs,
                                                    rows=self.settings.preview_rows)):
            for ci, outcome in zip(by_task[ti], outcomes):
                out[(ti, ci)] = outcome
        return out

    def entering(self, r: int, keys: list, shown: dict) -> list[tuple[int, int]]:
        """The candidates revised in round ``r`` (of this call) out of ``keys``."""
        s = self.settings
        if (r == 1 and s.revise == "all") or (r > 1 and s.until == "never"):
            return list(keys)
        return [key for key in keys if not shown[key][0].has_rows]

    def window(self, chunk: list[dict]) -> None:
        """Revise one window of tasks in place."""
        keys = [(ti, ci) for ti, t in enumerate(chunk)
                for ci, _ in enumerate(t.get("candidates") or [])]
        self.tally.tasks += len(chunk)
        self.tally.candidates += len(keys)
        touched: set[tuple[int, int]] = set()
        for r in range(1, self.settings.rounds + 1):
            shown = self.previews(chunk, keys)
            keys = self.revise(chunk, self.entering(r, keys, shown), shown, r)
            touched.update(keys)
            if not keys:
                break
        if touched:
            after = self.previews(chunk, sorted(touched))
            self.tally.revised += len(touched)
            self.tally.with_rows += sum(p.has_rows for p, _ in after.values())

    def revise(self, chunk: list[dict], keys: list, shown: dict, r: int) -> list:
        """One round for ``keys``: the revised ones (those too long are skipped)."""
        count = self.tally.round(r)
        if not keys:
            return []
        too_long = getattr(self.loaded, "too_long", None)
        convs, tasks, todo = [], [], []
        for ti, ci in keys:
            task, cand = chunk[ti], chunk[ti]["candidates"][ci]
            conv = revision_messages(task, cand) + [
                {"role": "assistant", "content": _reply(cand)},
                {"role": "user", "content": feedback(*shown[(ti, ci)])}]
            convs.append(conv)
            tasks.append(blind(task))
            todo.append((ti, ci))
        reasons = too_long(convs) if callable(too_long) else [None] * len(convs)
        kept = [i for i, why in enumerate(reasons) if why is None]
        for i, why in enumerate(reasons):
            if why is not None:
                ti, ci = todo[i]
                chunk[ti]["candidates"][ci]["revision"] = {"turns": turns(
                    chunk[ti]["candidates"][ci]), "skipped": str(why)}
                count.skipped += 1
        if not kept:
            return []
        first = self.tally.sampling.tasks  # conversations so far: each one's place
        rows = rows_of(self.engine, self.loaded, [convs[i] for i in kept],
                       [tasks[i] for i in kept], list(range(first, first + len(kept))),
                       self.tally.sampling)
        for i, answers in zip(kept, rows):
            self.tally.sampling.add(answers)
            ti, ci = todo[i]
            self.replace(chunk[ti], ci, answers[0], convs[i][-1]["content"], shown[(ti, ci)][0])
            count.revised += 1
        return [todo[i] for i in kept]

    def replace(self, task: dict, ci: int, answer: dict, text: str, preview: Preview) -> None:
        """Put the revised answer in place of candidate ``ci``, the earlier one in its turns."""
        old = task["candidates"][ci]
        earlier = turns(old)
        turn = {k: v for k, v in old.items() if k != "revision"}
        turn.update(round=len(earlier) + 1, feedback=text, shown=preview.summary())
        r = self.request
        new = candidate_of(answer, sampler=self.engine.name, model=self.model,
                           adapter=r.adapter, temperature=r.temperature, seed=None)
        new["revision"] = {"turns": earlier + [turn]}
        task["candidates"][ci] = new
        task["messages"] = task_messages(task)  # the prompt the conversation began with
        for key in STALE:
            task.pop(key, None)


def _windows(tasks: Iterable[dict], size: Callable[[], int]) -> Iterator[list[dict]]:
    """Windows of tasks holding about ``size()`` candidates (at least one task each)."""
    it = iter(tasks)
    while True:
        chunk: list[dict] = []
        n, limit = 0, size()
        for task in it:
            chunk.append(task)
            n += max(1, len(task.get("candidates") or []))
            if n >= limit:
                break
        if not chunk:
            return
        yield chunk


def revise_tasks(engine: Any, tasks: Iterable[dict], request: Any, settings: ReviseSettings, *,
                 options: dict, limits: Limits, jobs: int = 1,
                 report: Callable[[str], None]) -> Iterator[dict]:
    """Yield every task, in input order, its candidates revised as ``settings`` say; a
    summary line so far on ``report`` after each window (about as many candidates as the
    loaded engine's ``window``). ``rounds`` 0 passes the tasks through and loads nothing; the
    engine is loaded when the first candidate needs a revision."""
    if settings.rounds == 0:
        yield from tasks
        return
    reviser = Reviser(engine, request, settings, options=options, limits=limits, jobs=jobs,
                      report=report)
    for chunk in _windows(tasks, reviser.window_size):
        reviser.window(chunk)
        yield from chunk
        report(reviser.tally.line())
    reviser.close()


__all__ = ["ReviseSettings", "ReviseTally", "Reviser", "blind", "revise_tasks",
           "revision_messages", "turns"]
