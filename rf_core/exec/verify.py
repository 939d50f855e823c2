"""Execution-based verification of tasks: run gold and candidates, record results, match.

Per task the gold query runs once, and each distinct candidate SQL text runs once (sampled
candidates repeat a lot). Tasks are spread over supervised worker processes (rf_core.exec.pool);
each worker keeps a few read-only connections open, so a database's schema is parsed once,
not once per query.

Every registered matcher judges every candidate in the same pass (``verdicts``); a matcher
that rewrites queries (``official`` removes DISTINCT) runs a rewritten text only where the
rewrite changed it. With test-suite variants (rf_core.exec.variants), a candidate that matches
on the original database under the chosen matcher is also run on each variant, once per
distinct query.
"""

from __future__ import annotations

import hashlib
from collections import deque
from typing import Callable, Iterable, Iterator

from rf_core.exec.matching import DEFAULT_MATCHER, MATCHERS, Matcher, get_matcher, query_key
from rf_core.exec.pool import GRACE_S, Slot, supervised_map
from rf_core.exec.sqlite import (DatabaseCopies, DatabaseFileError, Executor, Limits, Result,
                                 remove_stale_copies)
from rf_core.exec.gold_variants import DEFAULT_MAX_S as DEFAULT_GOLD_MAX_S
from rf_core.exec.gold_variants import Unbuildable, degenerate, gold_variant
from rf_core.exec.variants import DEFAULT_MAX_MB, DEFAULT_MAX_S, VariantCache

_executor: Executor | None = None
_matcher_name = DEFAULT_MATCHER
_matchers: list[Matcher] = []


def _init_worker(limits: Limits, matcher: str, matcher_names: tuple = (),
                 max_open: int = 8) -> None:
    global _executor, _matcher_name, _matchers
    _executor = Executor(limits, max_open=max_open)
    _matcher_name = matcher
    _matchers = [get_matcher(n) for n in (matcher_names or (matcher,))]


def _killed_result(reason: str) -> Result:
    if reason == "timeout":
        return Result(ok=False, timed_out=True, ms=(_executor.limits.timeout_s + GRACE_S) * 1000,
                      error=f"timeout after {_executor.limits.timeout_s:g} s "
                            "(stopped by killing its worker process)")
    return Result(ok=False, error="the query crashed its worker process")


def _usable(res: Result | None) -> bool:
    return res is not None and res.ok and not res.truncated


def _speaks(res: Result | None) -> bool:
    """Whether a gold result can tell queries apart: usable, and not empty or degenerate
    (one row of only NULL or 0), which any query that finds nothing shares."""
    return _usable(res) and not degenerate(res.rows)


def _extra_index(n_cands: int, db: str, key: str) -> int:
    """The query index of a rewritten text or a run on a variant: after the candidates, and a
    function of the query alone, so it is the same on a resend whatever already ran."""
    h = hashlib.blake2b(f"{db}\x1f{key}".encode("utf-8", "surrogatepass"), digest_size=6)
    return n_cands + 1 + int.from_bytes(h.digest(), "big")  # < 2**48: exact in the Slot


def check_job(job: tuple, slot: Slot | None = None, killed: dict | None = None) -> tuple:
    """One task: (db_path, gold_sql, candidate SQLs[, variant paths[, open error[, gold
    variant]]]) -> (gold summary, [(summary, correct, verdicts, variants, informed)]).

    Query index 0 is the gold query, i + 1 the i-th candidate; identical SQL text shares the
    index of its first occurrence, its execution and its verdict. Queries that only some
    matchers or the variants need (a rewritten text, a run on a variant) take indexes after
    the candidates derived from the query itself (``_extra_index``). Each candidate's outcome
    is complete when it is handed to ``slot.keep``; a task re-sent after its worker was
    killed takes the kept ones as they are, and runs the gold query (whose rows the rest
    needs) and what had not finished.

    The task's queries on its database run in one read transaction (``Executor.begin``), so
    a writer cannot change what the gold and the candidates are compared on. Where the
    database changed anyway (the transaction was lost, or the task was re-sent and its gold
    result differs from the kept one), the gold fails with ``CHANGED`` and no candidate is
    correct. ``job[4]``, when present and not None, says why the database cannot be read.

    ``job[5]``, for training selection (rf-exec --for-training): (variant cache folder,
    seed, max_s, why there is no folder), so that a task whose gold result is empty or
    degenerate gets a gold variant (rf_core.exec.gold_variants), and a candidate that agrees
    with the gold only where the gold's result cannot tell queries apart gets ``correct``
    None. ``informed`` is {"distinguishing": on how many of the databases the candidate was
    checked on the gold's result was distinguishing, "unverifiable": why it is None, or
    None}; None when the task has no gold SQL.
    """
    db_path, gold_sql, cand_sqls = job[:3]
    variant_paths = job[3] if len(job) > 3 else ()
    open_error = job[4] if len(job) > 4 else None
    speak = job[5] if len(job) > 5 else None
    killed = killed or {}
    kept = slot.kept if slot is not None else {}
    if open_error is not None:
        unreadable = Result(ok=False, error=f"cannot open database: {open_error}")
    else:
        unreadable = _executor.begin(db_path)
    try:
        gold, out = _check(db_path, gold_sql, cand_sqls, variant_paths, killed, kept, slot,
                           unreadable, speak)
    finally:
        changed = unreadable is None and _executor.end(db_path)
    if gold is not None:
        earlier = kept.get(_GOLD_MARK)
        differs = earlier is not None and earlier != _mark(gold)
        if changed or (differs and gold.ok):
            gold = Result(ok=False, error=CHANGED, ms=gold.ms)
        if changed or differs:  # kept verdicts were made against another gold result
            out = [(summary, False, {name: False for name in verdicts}, None, informed)
                   for summary, _, verdicts, _, informed in out]
    return (gold.summary() if gold is not None else None, out)


# The query index under which a task keeps its gold result's mark (Slot.keep): a task sent
# again after a kill compares it with its new gold result.
_GOLD_MARK = -1
CHANGED = ("the database changed during the task (another process wrote to it); its "
           "candidates are not judged")


def _mark(res: Result) -> tuple:
    return (res.ok, res.digest, res.truncated)


def _check(db_path, gold_sql, cand_sqls, variant_paths, killed, kept, slot, unreadable,
           speak=None):
    cache: dict[str, Result] = {}
    extra_cache: dict[tuple[str, str], Result] = {}

    def execute(index: int, db: str, sql) -> Result:
        if index in killed:
            return _killed_result(killed[index])
        if unreadable is not None and db == db_path:
            return unreadable
        if slot is not None:
            slot.start(index)
        res = _executor.run(db, sql)
        if slot is not None:
            slot.stop()
        return res

    def run(index: int, sql) -> Result:
        key = sql.strip() if isinstance(sql, str) else None
        if key is not None and key in cache:
            return cache[key]
        res = execute(index, db_path, sql)
        if key is not None:
            cache[key] = res
        return res

    keys: dict[str, str] = {}

    def key_of(sql: str) -> str:
        if sql not in keys:
            keys[sql] = query_key(sql)
        return keys[sql]

    def run_extra(db: str, sql: str) -> Result:
        """A matcher's rewritten text, or a query on a variant: once per query_key."""
        key = (db, key_of(sql))
        if key not in extra_cache:
            extra_cache[key] = execute(_extra_index(len(cand_sqls), *key), db, sql)
        return extra_cache[key]

    def text_and_result(m: Matcher, sql, role: str, as_written: Result):
        if not isinstance(sql, str):
            return sql, as_written
        text = m.rewrite(sql, role)
        if text == sql:
            return text, as_written
        return text, run_extra(db_path, text)

    def run_gold() -> Result:
        res = run(0, gold_sql)
        if slot is not None and _GOLD_MARK not in kept:
            slot.keep(_GOLD_MARK, _mark(res))
        return res

    gold: Result | None = None
    gold_sides: dict[str, tuple] = {}  # matcher -> (gold text, gold result, ordered)

    def gold_side(m: Matcher) -> tuple:
        if m.name not in gold_sides:
            g_text, g_res = text_and_result(m, gold_sql, "gold", gold)
            gold_sides[m.name] = (g_text, g_res, m.ordered(g_text) if _usable(g_res) else False)
        return gold_sides[m.name]

    primary = get_matcher(_matcher_name)
    usable_variants: list | None = None  # (path, gold result there), built on first need
    silent: str | None = None  # why the gold's result distinguishes nowhere, once known

    def variants_of_gold() -> list:
        nonlocal usable_variants, silent
        if usable_variants is None:
            g_text, g_res, _ = gold_side(primary)
            usable_variants = []
            for path in variant_paths:
                gv = run_extra(path, g_text)
                # A variant where the gold fails, or comes back empty where it was not,
                # says nothing about the candidates: skip it for this task.
                if _usable(gv) and not (gv.n_rows == 0 and g_res.n_rows > 0):
                    usable_variants.append((path, gv))
            if speak is not None and not _speaks(g_res) and not any(
                    _speaks(gv) for _, gv in usable_variants):
                silent = _gold_variant(db_path, g_text, g_res, usable_variants, speak, run_extra)
        return usable_variants

    # Matchers sharing a comparison (official and official-keep-distinct where nothing was
    # rewritten) share its verdict: (comparison, gold result, candidate result, ordered).
    seen: dict[tuple, bool] = {}
    checked: dict[str, dict] = {}  # by query_key: the same query passes the same variants
    reused: dict[str, tuple] = {}  # kept outcomes by SQL text, for identical candidates
    out = []
    for_training = speak is not None
    for i, sql in enumerate(cand_sqls):
        text_key = sql.strip() if isinstance(sql, str) else None
        if i + 1 in kept or text_key in reused:
            out.append(kept.get(i + 1) or reused[text_key])
            if text_key is not None:
                reused[text_key] = out[-1]
            continue
        if gold is None and gold_sql is not None:
            gold = run_gold()
        res = run(i + 1, sql)
        verdicts: dict = {}
        primary_text = None
        for m in _matchers:
            if gold is None:
                verdicts[m.name] = None
                continue
            g_text, g_res, ordered = gold_side(m)
            c_text, c_res = text_and_result(m, sql, "candidate", res)
            if m.name == primary.name:
                primary_text = c_text
            if not (_usable(g_res) and _usable(c_res)):
                verdicts[m.name] = False
                continue
            pair = (m.match, id(g_res), id(c_res), ordered)
            if pair not in seen:
                seen[pair] = bool(m.match(g_res.rows, c_res.rows, ordered))
            verdicts[m.name] = seen[pair]
        check = None
        informed = None
        if gold is not None:
            informed = {"distinguishing": int(_speaks(gold_side(primary)[1])),
                        "unverifiable": None}
        if (variant_paths or for_training) and verdicts.get(primary.name) \
                and primary_text is not None:
            key = key_of(primary_text)
            if key not in checked:
                _, _, ordered = gold_side(primary)
                passed = 0
                good = variants_of_gold()
                for path, gv in good:
                    cv = run_extra(path, primary_text)
                    passed += _usable(cv) and (cv is gv or bool(
                        primary.match(gv.rows, cv.rows, ordered)))
                checked[key] = ({"used": len(good), "passed": passed},
                                sum(_speaks(gv) for _, gv in good))
            check = dict(checked[key][0])
            informed["distinguishing"] += checked[key][1]
            if not check["used"] and not variant_paths:
                check = None  # no variant at all: nothing to say about variants
        if gold is None:
            correct = None
        else:
            correct = bool(verdicts.get(primary.name))
            if correct and check is not None:
                correct = check["passed"] == check["used"]
            if correct and for_training and not informed["distinguishing"]:
                correct = None
                informed["unverifiable"] = silent or _silent_reason(gold_side(primary)[1])
        out.append((res.summary(), correct, verdicts, check, informed))
        if slot is not None:
            slot.keep(i + 1, out[-1])
    if gold is None and gold_sql is not None:  # no candidates, or all of them kept
        gold = run_gold()
    return gold, out


def _silent_reason(g_res: Result) -> str:
    what = "empty" if not g_res.rows else "degenerate (one row of NULL or 0)"
    return f"gold result {what} on every database"


def _gold_variant(db_path: str, g_text: str, g_res: Result, usable: list, speak: tuple,
                  run_extra: Callable) -> str | None:
    """Add the task's gold variant to ``usable`` when one can be had; else say why none."""
    folder, seed, max_s, why_not = speak
    base = _silent_reason(g_res)
    if folder is None:
        return f"{base}; no gold variant: {why_not}"
    try:
        path = gold_variant(db_path, folder, g_text, seed, max_s)
    except Unbuildable as exc:
        return f"{base}; no gold variant: {exc}"
    gv = run_extra(path, g_text)
    if not _speaks(gv):
        why = gv.error if not gv.ok else ("its result was truncated" if gv.truncated
                                          else "the gold's result there is not distinguishing")
        return f"{base}; the gold variant did not help: {why}"
    usable.append((path, gv))
    return None


def verify_tasks(tasks: Iterable[dict], *, matcher: str = DEFAULT_MATCHER, jobs: int = 1,
                 limits: Limits = Limits(), verifier: str = "sqlite",
                 report: Callable[[str], None] | None = None, variants: int = 0,
                 variants_seed: int = 0, variants_max_mb: float = DEFAULT_MAX_MB,
                 variants_dir: str | None = None,
                 variants_max_s: float = DEFAULT_MAX_S, for_training: bool = False,
                 gold_variants_max_s: float = DEFAULT_GOLD_MAX_S) -> Iterator[dict]:
    """Add ``exec``, ``verdicts`` (every registered matcher's), ``correct`` (``matcher``'s,
    and with ``variants`` > 0 also on every usable variant), ``variants`` and
    ``distinguishing`` to each candidate and ``gold_exec`` to each task, in input order. A
    task whose variants were asked for but not used says why in
    ``verified_by.variants_skipped``.

    ``for_training``: verdicts that pick training examples. A task whose gold result is
    empty or degenerate gets a gold variant (rf_core.exec.gold_variants), and a candidate
    whose agreement with the gold rests only on such results gets ``correct`` None and the
    reason in ``unverifiable`` (one stderr line per task)."""
    if matcher not in MATCHERS:
        raise ValueError(f"unknown matcher {matcher!r}")
    names = tuple(MATCHERS)
    remove_stale_copies()
    copies = DatabaseCopies()
    cache = VariantCache(variants, seed=variants_seed, root=variants_dir,
                         max_mb=variants_max_mb, max_s=variants_max_s, report=report,
                         copies=copies)
    pending: deque[tuple[dict, str | None]] = deque()

    def jobs_of(stream):
        for task in stream:
            cands = task.get("candidates") or []
            db_path = task["db_path"]
            try:
                readable, error = copies.readable(db_path), None
            except DatabaseFileError as exc:
                readable, error = db_path, str(exc)
            paths, skipped, speak = [], None, None
            if variants and task.get("gold_sql") is not None and error is None:
                paths = cache.paths(db_path)
                skipped = cache.skipped(db_path)
            if for_training and task.get("gold_sql") is not None:
                folder, why_not = cache.folder(db_path) if error is None else (None, error)
                speak = (folder, variants_seed, gold_variants_max_s, why_not)
            pending.append((task, skipped))
            yield (readable, task.get("gold_sql"), [c.get("sql") for c in cands], paths, error,
                   speak)

    try:
        results = supervised_map(check_job, jobs_of(tasks), workers=jobs,
                                 hard_timeout_s=limits.timeout_s + GRACE_S,
                                 init=_init_worker,
                                 init_args=(limits, matcher, names,
                                            8 * (1 + variants + for_training)))
        for gold, outs in results:
            task, skipped = pending.popleft()
            if gold is not None:
                task["gold_exec"] = gold
                if not gold["ok"] and report:
                    report(f"gold query of task {task.get('id')!r} failed: {gold['error']}")
                elif gold["truncated"] and report:
                    report(f"gold result of task {task.get('id')!r} was truncated; "
                           "its candidates cannot be verified (raise --max-rows/--max-bytes)")
            why = None
            for cand, (summary, correct, verdicts, checks, informed) in zip(
                    task.get("candidates") or [], outs):
                cand["exec"] = summary
                cand["verdicts"] = verdicts
                cand["correct"] = correct
                if checks is not None:
                    cand["variants"] = checks
                else:
                    cand.pop("variants", None)
                cand.pop("unverifiable", None)
                if informed is None:
                    cand.pop("distinguishing", None)
                    continue
                cand["distinguishing"] = informed["distinguishing"]
                if informed["unverifiable"]:
                    cand["unverifiable"] = why = informed["unverifiable"]
            if why and report:
                report(f"task {task.get('id')!r}: unverifiable: {why}; its candidates that "
                       "agree with the gold get correct: null")
            task["verified_by"] = {"verifier": verifier, "matcher": matcher}
            if for_training:
                task["verified_by"]["for_training"] = True
            if variants:
                task["verified_by"]["variants"] = variants
                if skipped:
                    task["verified_by"]["variants_skipped"] = skipped
            yield task
    finally:
        cache.close()
        copies.close()
