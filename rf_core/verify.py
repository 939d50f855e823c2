"""Execution-based verification of tasks: run gold and candidates, record results, match.

Per task the gold query runs once, and each distinct candidate SQL text runs once (sampled
candidates repeat a lot). Tasks are spread over supervised worker processes (rf_core.pool);
each worker keeps a few read-only connections open, so a database's schema is parsed once,
not once per query.
"""

from __future__ import annotations

from collections import deque
from typing import Callable, Iterable, Iterator

from .matching import MATCHERS, gold_is_ordered
from .pool import GRACE_S, Slot, supervised_map
from .sqlexec import Executor, Limits, Result

_executor: Executor | None = None
_matcher_name = "official"


def _init_worker(limits: Limits, matcher: str) -> None:
    global _executor, _matcher_name
    _executor = Executor(limits)
    _matcher_name = matcher


def _killed_result(reason: str) -> Result:
    if reason == "timeout":
        return Result(ok=False, timed_out=True, ms=(_executor.limits.timeout_s + GRACE_S) * 1000,
                      error=f"timeout after {_executor.limits.timeout_s:g} s "
                            "(stopped by killing its worker process)")
    return Result(ok=False, error="the query crashed its worker process")


def check_job(job: tuple, slot: Slot | None = None, killed: dict | None = None) -> tuple:
    """One task: (db_path, gold_sql, candidate SQLs) -> (gold summary, [(summary, correct)]).

    Query index 0 is the gold query, i + 1 the i-th candidate; identical SQL text shares the
    index of its first occurrence, its execution and its verdict.
    """
    db_path, gold_sql, cand_sqls = job
    killed = killed or {}
    match = MATCHERS[_matcher_name]
    cache: dict[str, Result] = {}

    def run(index: int, sql) -> Result:
        key = sql.strip() if isinstance(sql, str) else None
        if key is not None and key in cache:
            return cache[key]
        if index in killed:
            res = _killed_result(killed[index])
        else:
            if slot is not None:
                slot.start(index)
            res = _executor.run(db_path, sql)
            if slot is not None:
                slot.stop()
        if key is not None:
            cache[key] = res
        return res

    # A task re-sent after its worker was killed brings the outcomes it had already got;
    # the gold query runs again (its rows are needed to judge what is left), nothing else.
    kept = slot.kept if slot is not None else {}
    gold = run(0, gold_sql) if gold_sql is not None else None
    gold_usable = gold is not None and gold.ok and not gold.truncated
    ordered = gold_is_ordered(gold_sql) if gold_usable else False
    verdicts: dict[int, bool] = {}  # by id of the shared Result: identical SQL, same verdict
    out = []
    reused: dict[str, tuple] = {}  # kept outcomes by SQL text, for identical candidates
    for i, sql in enumerate(cand_sqls):
        key = sql.strip() if isinstance(sql, str) else None
        if i + 1 in kept or key in reused:
            out.append(kept.get(i + 1) or reused[key])
            if key is not None:
                reused[key] = out[-1]
            continue
        res = run(i + 1, sql)
        if gold is None:
            correct = None
        elif not (gold_usable and res.ok) or res.truncated:
            correct = False
        else:
            if id(res) not in verdicts:
                verdicts[id(res)] = match(gold.rows, res.rows, ordered)
            correct = verdicts[id(res)]
        out.append((res.summary(), correct))
        if slot is not None:
            slot.keep(i + 1, out[-1])
    return (gold.summary() if gold is not None else None, out)


def verify_tasks(tasks: Iterable[dict], *, matcher: str = "official", jobs: int = 1,
                 limits: Limits = Limits(), verifier: str = "sqlite",
                 report: Callable[[str], None] | None = None) -> Iterator[dict]:
    """Add ``exec``/``correct`` to each candidate and ``gold_exec`` to each task, in order."""
    if matcher not in MATCHERS:
        raise ValueError(f"unknown matcher {matcher!r}")
    pending: deque[dict] = deque()

    def jobs_of(stream):
        for task in stream:
            pending.append(task)
            cands = task.get("candidates") or []
            yield (task["db_path"], task.get("gold_sql"), [c.get("sql") for c in cands])

    results = supervised_map(check_job, jobs_of(tasks), workers=jobs,
                             hard_timeout_s=limits.timeout_s + GRACE_S,
                             init=_init_worker, init_args=(limits, matcher))
    for gold, outs in results:
        task = pending.popleft()
        if gold is not None:
            task["gold_exec"] = gold
            if not gold["ok"] and report:
                report(f"gold query of task {task.get('id')!r} failed: {gold['error']}")
            elif gold["truncated"] and report:
                report(f"gold result of task {task.get('id')!r} was truncated; "
                       "its candidates cannot be verified (raise --max-rows/--max-bytes)")
        for cand, (summary, correct) in zip(task.get("candidates") or [], outs):
            cand["exec"] = summary
            cand["correct"] = correct
        task["verified_by"] = {"verifier": verifier, "matcher": matcher}
        yield task
