"""Execution-based verification of tasks: run gold and candidates, record results, match.

Per task the gold query runs once, and each distinct candidate SQL text runs once (sampled
candidates repeat a lot). Tasks are spread over worker processes; each worker keeps a few
read-only connections open, so a database's schema is parsed once, not once per query.
"""

from __future__ import annotations

from collections import deque
from typing import Callable, Iterable, Iterator

from .matching import MATCHERS, gold_is_ordered
from .parallel import ordered_map
from .sqlexec import Executor, Limits, Result

_executor: Executor | None = None
_matcher_name = "official"


def _init_worker(limits: Limits, matcher: str) -> None:
    global _executor, _matcher_name
    _executor = Executor(limits)
    _matcher_name = matcher


def _run_job(job: tuple) -> tuple:
    """One task: (db_path, gold_sql, candidate SQLs) -> (gold summary, [(summary, correct)])."""
    db_path, gold_sql, cand_sqls = job
    match = MATCHERS[_matcher_name]
    cache: dict[str, Result] = {}

    def run(sql):
        key = sql.strip() if isinstance(sql, str) else None
        if key is None:
            return _executor.run(db_path, sql)
        if key not in cache:
            cache[key] = _executor.run(db_path, sql)
        return cache[key]

    gold = run(gold_sql) if gold_sql is not None else None
    gold_usable = gold is not None and gold.ok and not gold.truncated
    ordered = gold_is_ordered(gold_sql) if gold_usable else False
    verdicts: dict[int, bool] = {}  # by id of the shared Result: identical SQL, same verdict
    out = []
    for sql in cand_sqls:
        res = run(sql)
        if gold is None:
            correct = None
        elif not (gold_usable and res.ok) or res.truncated:
            correct = False
        else:
            if id(res) not in verdicts:
                verdicts[id(res)] = match(gold.rows, res.rows, ordered)
            correct = verdicts[id(res)]
        out.append((res.summary(), correct))
    return (gold.summary() if gold is not None else None, out)


def _run_chunk(jobs: list[tuple]) -> list[tuple]:
    return [_run_job(j) for j in jobs]


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
            yield (task["db_path"], task.get("gold_sql"),
                   [c.get("sql") if isinstance(c, dict) else None for c in cands])

    results = ordered_map(_run_chunk, jobs_of(tasks), jobs=jobs, chunk_size=4,
                          initializer=_init_worker, initargs=(limits, matcher))
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
            if isinstance(cand, dict):
                cand["exec"] = summary
                cand["correct"] = correct
        task["verified_by"] = {"verifier": verifier, "matcher": matcher}
        yield task
