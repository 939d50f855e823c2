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
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Iterator, NamedTuple

from rf_core.errors import RFError
from rf_core.exec.matching import (DEFAULT_MATCHER, Matcher, get_matcher, query_key,
                                   registered_matchers)
from rf_core.exec.pool import GRACE_S, Slot, supervised_map
from rf_core.exec.sqlite import (DatabaseCopies, DatabaseFileError, Executor, Limits, Result,
                                 remove_stale_copies)
from rf_core.exec.gold_variants import DEFAULT_MAX_S as DEFAULT_GOLD_MAX_S
from rf_core.exec.gold_variants import Unbuildable, degenerate, gold_variant
from rf_core.exec.variants import DEFAULT_MAX_MB, DEFAULT_MAX_S, VariantCache

# The worker's state, set by _init_worker: its executor, the matcher that sets `correct`,
# and every matcher that gives a verdict.
_executor: Executor | None = None
_primary: Matcher | None = None
_matchers: list[Matcher] = []


@dataclass(frozen=True)
class GoldVariantSpec:
    """How a task whose gold result cannot tell queries apart gets a gold variant (rf-exec
    --for-training): the variant cache ``folder`` (None: ``why_not`` says why there is
    none), the ``seed`` and the seconds ``max_s`` building it may take."""

    folder: str | None
    seed: int
    max_s: float
    why_not: str | None = None


@dataclass(frozen=True)
class Job:
    """One task's work for a worker: the gold query and the candidates' SQL on the database
    at ``db_path``.

    ``candidates``: each candidate's SQL (None where it has none); ``variant_paths``: the
    test-suite variants to check a matching candidate on; ``open_error``: why the database
    cannot be read (nothing runs there then); ``gold_variant``: with --for-training, how to
    get a gold variant (see ``GoldVariantSpec``).
    """

    db_path: str
    gold_sql: str | None
    candidates: tuple = ()
    variant_paths: tuple = ()
    open_error: str | None = None
    gold_variant: GoldVariantSpec | None = None

    @classmethod
    def of(cls, job: "Job | tuple") -> "Job":
        """A ``Job`` as it is, or one from the positional form (db_path, gold_sql,
        candidates[, variant paths[, open error[, (folder, seed, max_s, why_not)]]])."""
        if isinstance(job, Job):
            return job
        db_path, gold_sql, candidates, *rest = job
        speak = rest[2] if len(rest) > 2 else None
        if speak is not None and not isinstance(speak, GoldVariantSpec):
            speak = GoldVariantSpec(*speak)
        return cls(db_path, gold_sql, tuple(candidates), tuple(rest[0]) if rest else (),
                   rest[1] if len(rest) > 1 else None, speak)


class Outcome(NamedTuple):
    """One candidate's outcome: ``exec`` (its ``Result.summary()``), ``correct``, every
    matcher's ``verdicts``, the ``variants`` check ({"used", "passed"} or None) and
    ``informed`` ({"distinguishing", "unverifiable"}; None without gold SQL)."""

    exec: dict
    correct: bool | None
    verdicts: dict
    variants: dict | None
    informed: dict | None


def _init_worker(limits: Limits, matcher: str, matcher_names: tuple = (),
                 max_open: int = 8) -> None:
    global _executor, _primary, _matchers
    _executor = Executor(limits, max_open=max_open)
    _primary = get_matcher(matcher)
    _matchers = [get_matcher(n) for n in (matcher_names or (matcher,))]


def killed_result(reason: str, limits: Limits) -> Result:
    """The Result of a query whose worker the pool killed: "timeout" past the deadline,
    otherwise a crash."""
    if reason == "timeout":
        return Result(ok=False, timed_out=True, ms=(limits.timeout_s + GRACE_S) * 1000,
                      error=f"timeout after {limits.timeout_s:g} s "
                            "(stopped by killing its worker process)")
    return Result(ok=False, error="the query crashed its worker process")


def _usable(res: Result | None) -> bool:
    return res is not None and res.ok and not res.truncated


def _rows(res: Result | None) -> list:
    """A result's rows (none for a missing or failed one)."""
    return res.rows if res is not None and res.rows is not None else []


def _speaks(res: Result | None) -> bool:
    """Whether a gold result can tell queries apart: usable, and not empty or degenerate
    (one row of only NULL or 0), which any query that finds nothing shares."""
    return _usable(res) and not degenerate(_rows(res))


def _extra_index(n_cands: int, db: str, key: str) -> int:
    """The query index of a rewritten text or a run on a variant: after the candidates, and a
    function of the query alone, so it is the same on a resend whatever already ran."""
    h = hashlib.blake2b(f"{db}\x1f{key}".encode("utf-8", "surrogatepass"), digest_size=6)
    return n_cands + 1 + int.from_bytes(h.digest(), "big")  # < 2**48: exact in the Slot


def check_job(job: Job | tuple, slot: Slot | None = None,
              killed: dict | None = None) -> tuple:
    """One task (a ``Job``, or its positional tuple) -> (gold summary, [``Outcome`` per
    candidate]).

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
    correct. ``Job.open_error``, when not None, says why the database cannot be read.

    ``Job.gold_variant``, for training selection (rf-exec --for-training): a task whose gold
    result is empty or degenerate gets a gold variant (rf_core.exec.gold_variants), and a
    candidate that agrees with the gold only where the gold's result cannot tell queries
    apart gets ``correct`` None. ``informed`` is {"distinguishing": on how many of the
    databases the candidate was checked on the gold's result was distinguishing,
    "unverifiable": why it is None, or None}; None when the task has no gold SQL.
    """
    if _executor is None or _primary is None:
        raise RFError("check_job runs in a worker set up by _init_worker")
    return TaskCheck(Job.of(job), _executor, _matchers, _primary, slot, killed).run()


# The query index under which a task keeps its gold result's mark (Slot.keep): a task sent
# again after a kill compares it with its new gold result.
_GOLD_MARK = -1
CHANGED = ("the database changed during the task (another process wrote to it); its "
           "candidates are not judged")


def _mark(res: Result) -> tuple:
    return (res.ok, res.digest, res.truncated)


def _silent_reason(g_res: Result) -> str:
    what = "empty" if not g_res.rows else "degenerate (one row of NULL or 0)"
    return f"gold result {what} on every database"


class TaskCheck:
    """The check of one ``Job`` in a worker, step by step: run the gold query and each
    distinct candidate once (``run_query``), a matcher's rewritten text or a run on a variant
    once per query (``run_extra``), every matcher's verdict (``verdicts``), the variants
    (``variant_check``) and the candidate's ``correct`` (``judge``). ``run`` does it all, in
    the task's read transaction."""

    def __init__(self, job: Job, executor: Executor, matchers: list[Matcher],
                 primary: Matcher, slot: Slot | None = None, killed: dict | None = None):
        self.job = job
        self.executor = executor
        self.matchers = matchers
        self.primary = primary
        self.slot = slot
        self.killed = killed or {}
        self.kept: dict = slot.kept if slot is not None else {}
        self.unreadable: Result | None = None  # why the task's database cannot be read
        self.gold: Result | None = None
        self.silent: str | None = None  # why the gold's result distinguishes nowhere
        self._runs: dict[str, Result] = {}  # by stripped SQL text
        self._extra: dict[tuple[str, str], Result] = {}  # by (database, query_key)
        self._keys: dict[str, str] = {}
        self._gold_sides: dict[str, tuple] = {}  # matcher -> (gold text, result, ordered)
        self._variants: list | None = None  # (path, gold result there), built on first need
        # Matchers sharing a comparison (official and official-keep-distinct where nothing
        # was rewritten) share its verdict: (comparison, gold result, candidate result,
        # ordered) -> verdict.
        self._seen: dict[tuple, bool] = {}
        self._checked: dict[str, tuple] = {}  # by query_key: the same query passes the same
        self._reused: dict[str | None, Any] = {}  # kept outcomes by SQL text, for identical ones

    @property
    def for_training(self) -> bool:
        """Whether the job asks for training verdicts (a gold variant where needed)."""
        return self.job.gold_variant is not None

    # -- running queries ---------------------------------------------------------------

    def execute(self, index: int, db: str, sql: Any) -> Result:
        """Run query ``index`` on ``db`` (or take its killed or unreadable result)."""
        if index in self.killed:
            return killed_result(self.killed[index], self.executor.limits)
        if self.unreadable is not None and db == self.job.db_path:
            return self.unreadable
        if self.slot is not None:
            self.slot.start(index)
        res = self.executor.run(db, sql)
        if self.slot is not None:
            self.slot.stop()
        return res

    def run_query(self, index: int, sql: Any) -> Result:
        """The gold (index 0) or a candidate on the task's database: once per SQL text."""
        key = sql.strip() if isinstance(sql, str) else None
        if key is not None and key in self._runs:
            return self._runs[key]
        res = self.execute(index, self.job.db_path, sql)
        if key is not None:
            self._runs[key] = res
        return res

    def key_of(self, sql: str) -> str:
        """``query_key(sql)``, computed once per text."""
        if sql not in self._keys:
            self._keys[sql] = query_key(sql)
        return self._keys[sql]

    def run_extra(self, db: str, sql: str) -> Result:
        """A matcher's rewritten text, or a query on a variant: once per query_key."""
        key = (db, self.key_of(sql))
        if key not in self._extra:
            index = _extra_index(len(self.job.candidates), *key)
            self._extra[key] = self.execute(index, db, sql)
        return self._extra[key]

    def text_and_result(self, m: Matcher, sql: Any, role: str,
                        as_written: Result | None) -> tuple[Any, Result | None]:
        """The text matcher ``m`` runs for ``sql`` in ``role``, and its result."""
        if not isinstance(sql, str):
            return sql, as_written
        text = m.rewrite(sql, role)
        if text == sql:
            return text, as_written
        return text, self.run_extra(self.job.db_path, text)

    def run_gold(self) -> Result:
        """Run the gold query and hand its mark to the parent (once per task)."""
        res = self.run_query(0, self.job.gold_sql)
        if self.slot is not None and _GOLD_MARK not in self.kept:
            self.slot.keep(_GOLD_MARK, _mark(res))
        return res

    def gold_side(self, m: Matcher) -> tuple:
        """(gold text, gold result, ordered) under matcher ``m``."""
        if m.name not in self._gold_sides:
            g_text, g_res = self.text_and_result(m, self.job.gold_sql, "gold", self.gold)
            self._gold_sides[m.name] = (g_text, g_res,
                                        m.ordered(g_text) if _usable(g_res) else False)
        return self._gold_sides[m.name]

    # -- variants ----------------------------------------------------------------------

    def variants_of_gold(self) -> list:
        """The variants the gold's result there can check candidates on: (path, result)."""
        if self._variants is None:
            g_text, g_res, _ = self.gold_side(self.primary)
            usable: list = []
            for path in self.job.variant_paths:
                gv = self.run_extra(path, g_text)
                # A variant where the gold fails, or comes back empty where it was not,
                # says nothing about the candidates: skip it for this task.
                if _usable(gv) and not (gv.n_rows == 0 and g_res.n_rows > 0):
                    usable.append((path, gv))
            spec = self.job.gold_variant
            if spec is not None and not _speaks(g_res) and not any(
                    _speaks(gv) for _, gv in usable):
                self.silent = self.add_gold_variant(spec, g_text, g_res, usable)
            self._variants = usable
        return self._variants

    def add_gold_variant(self, spec: GoldVariantSpec, g_text: str, g_res: Result,
                         usable: list) -> str | None:
        """Add the task's gold variant to ``usable`` when one can be had; else say why
        none."""
        base = _silent_reason(g_res)
        if spec.folder is None:
            return f"{base}; no gold variant: {spec.why_not}"
        try:
            path = gold_variant(self.job.db_path, spec.folder, g_text, spec.seed, spec.max_s)
        except Unbuildable as exc:
            return f"{base}; no gold variant: {exc}"
        gv = self.run_extra(path, g_text)
        if not _speaks(gv):
            why = gv.error if not gv.ok else ("its result was truncated" if gv.truncated
                                              else "the gold's result there is not "
                                                   "distinguishing")
            return f"{base}; the gold variant did not help: {why}"
        usable.append((path, gv))
        return None

    def variant_check(self, primary_text: str) -> tuple[dict, int]:
        """({"used", "passed"}, on how many variants the gold's result speaks) for a
        candidate that matched on the original database; once per query."""
        key = self.key_of(primary_text)
        if key not in self._checked:
            _, _, ordered = self.gold_side(self.primary)
            passed = 0
            good = self.variants_of_gold()
            for path, gv in good:
                cv = self.run_extra(path, primary_text)
                passed += _usable(cv) and (cv is gv or bool(
                    self.primary.match(_rows(gv), _rows(cv), ordered)))
            self._checked[key] = ({"used": len(good), "passed": passed},
                                  sum(_speaks(gv) for _, gv in good))
        return self._checked[key]

    # -- verdicts ----------------------------------------------------------------------

    def verdicts(self, sql: Any, res: Result) -> tuple[dict, Any]:
        """Every matcher's verdict on a candidate (None each without a gold), and the text
        the primary matcher ran."""
        verdicts: dict = {}
        primary_text = None
        for m in self.matchers:
            if self.gold is None:
                verdicts[m.name] = None
                continue
            g_text, g_res, ordered = self.gold_side(m)
            c_text, c_res = self.text_and_result(m, sql, "candidate", res)
            if m.name == self.primary.name:
                primary_text = c_text
            if not (_usable(g_res) and _usable(c_res)):
                verdicts[m.name] = False
                continue
            pair = (m.match, id(g_res), id(c_res), ordered)
            if pair not in self._seen:
                self._seen[pair] = bool(m.match(_rows(g_res), _rows(c_res), ordered))
            verdicts[m.name] = self._seen[pair]
        return verdicts, primary_text

    def judge(self, verdicts: dict, check: dict | None, informed: dict | None) -> bool | None:
        """A candidate's ``correct``: the primary verdict, on every usable variant too; with
        --for-training None (and why, in ``informed``) where no result spoke."""
        if self.gold is None:
            return None
        correct: bool | None = bool(verdicts.get(self.primary.name))
        if correct and check is not None:
            correct = check["passed"] == check["used"]
        if correct and self.for_training and informed is not None \
                and not informed["distinguishing"]:
            correct = None
            informed["unverifiable"] = self.silent or _silent_reason(
                self.gold_side(self.primary)[1])
        return correct

    def candidate(self, i: int, sql: Any) -> Outcome:
        """Run and judge candidate ``i`` (its query index is i + 1)."""
        if self.gold is None and self.job.gold_sql is not None:
            self.gold = self.run_gold()
        res = self.run_query(i + 1, sql)
        verdicts, primary_text = self.verdicts(sql, res)
        check = None
        informed: dict[str, Any] | None = None
        if self.gold is not None:
            informed = {"distinguishing": int(_speaks(self.gold_side(self.primary)[1])),
                        "unverifiable": None}
        if (self.job.variant_paths or self.for_training) and verdicts.get(self.primary.name) \
                and primary_text is not None and informed is not None:
            used, speaking = self.variant_check(primary_text)
            check = dict(used)
            informed["distinguishing"] += speaking
            if not check["used"] and not self.job.variant_paths:
                check = None  # no variant at all: nothing to say about variants
        correct = self.judge(verdicts, check, informed)
        return Outcome(res.summary(), correct, verdicts, check, informed)

    def candidates(self) -> list:
        """Every candidate's outcome, in order: kept ones (and their identical texts) as
        they are, the others run, judged and handed to ``slot.keep``."""
        out = []
        for i, sql in enumerate(self.job.candidates):
            text_key = sql.strip() if isinstance(sql, str) else None
            if i + 1 in self.kept or text_key in self._reused:
                out.append(self.kept.get(i + 1) or self._reused[text_key])
                if text_key is not None:
                    self._reused[text_key] = out[-1]
                continue
            out.append(self.candidate(i, sql))
            if self.slot is not None:
                self.slot.keep(i + 1, out[-1])
        if self.gold is None and self.job.gold_sql is not None:  # none run: all kept, or none
            self.gold = self.run_gold()
        return out

    # -- the whole task ----------------------------------------------------------------

    def run(self) -> tuple:
        """(gold summary or None, outcomes): the task checked in one read transaction."""
        if self.job.open_error is not None:
            self.unreadable = Result(ok=False,
                                     error=f"cannot open database: {self.job.open_error}")
        else:
            self.unreadable = self.executor.begin(self.job.db_path)
        try:
            out = self.candidates()
        finally:
            changed = self.unreadable is None and self.executor.end(self.job.db_path)
        return self.settle(out, changed)

    def settle(self, out: list, changed: bool) -> tuple:
        """Fail the gold and every verdict where the database changed under the task."""
        gold = self.gold
        if gold is None:
            return None, out
        earlier = self.kept.get(_GOLD_MARK)
        differs = earlier is not None and earlier != _mark(gold)
        if changed or (differs and gold.ok):
            gold = Result(ok=False, error=CHANGED, ms=gold.ms)
        if changed or differs:  # kept verdicts were made against another gold result
            out = [Outcome(summary, False, {name: False for name in verdicts}, None, informed)
                   for summary, _, verdicts, _, informed in out]
        return gold.summary(), out


class TaskRecords:
    """The parent's side of ``verify_tasks``: a ``Job`` for each task (``jobs``), and each
    result written into its task (``finish``), in input order."""

    def __init__(self, *, matcher: str, verifier: str, report: Callable[[str], None] | None,
                 variants: int, variants_seed: int, for_training: bool,
                 gold_variants_max_s: float, cache: VariantCache, copies: DatabaseCopies):
        self.matcher = matcher
        self.verifier = verifier
        self.report = report
        self.variants = variants
        self.variants_seed = variants_seed
        self.for_training = for_training
        self.gold_variants_max_s = gold_variants_max_s
        self.cache = cache
        self.copies = copies
        # the tasks sent, oldest first, with why their variants were skipped (or None)
        self.pending: deque[tuple[dict, str | None]] = deque()

    def job_of(self, task: dict) -> tuple[Job, str | None]:
        """The task's ``Job``, and why its variants were skipped (None: they were not)."""
        db_path = task["db_path"]
        try:
            readable, error = self.copies.readable(db_path), None
        except DatabaseFileError as exc:
            readable, error = db_path, str(exc)
        paths, skipped, speak = [], None, None
        if self.variants and task.get("gold_sql") is not None and error is None:
            paths = self.cache.paths(db_path)
            skipped = self.cache.skipped(db_path)
        if self.for_training and task.get("gold_sql") is not None:
            folder, why_not = self.cache.folder(db_path) if error is None else (None, error)
            speak = GoldVariantSpec(folder, self.variants_seed, self.gold_variants_max_s,
                                    why_not)
        cands = task.get("candidates") or []
        return Job(readable, task.get("gold_sql"), tuple(c.get("sql") for c in cands),
                   tuple(paths), error, speak), skipped

    def jobs(self, tasks: Iterable[dict]) -> Iterator[Job]:
        """Each task's ``Job``, remembering the task for ``finish``."""
        for task in tasks:
            job, skipped = self.job_of(task)
            self.pending.append((task, skipped))
            yield job

    def finish(self, result: tuple) -> dict:
        """The oldest pending task with ``check_job``'s result written into it."""
        gold, outs = result
        task, skipped = self.pending.popleft()
        if gold is not None:
            self.record_gold(task, gold)
        why = self.record_candidates(task.get("candidates") or [], outs)
        if why and self.report:
            self.report(f"task {task.get('id')!r}: unverifiable: {why}; its candidates that "
                        "agree with the gold get correct: null")
        task["verified_by"] = self.verified_by(skipped)
        return task

    def record_gold(self, task: dict, gold: dict) -> None:
        """Set ``gold_exec``; a failed or truncated gold result gets a line on stderr."""
        task["gold_exec"] = gold
        if not gold["ok"] and self.report:
            self.report(f"gold query of task {task.get('id')!r} failed: {gold['error']}")
        elif gold["truncated"] and self.report:
            self.report(f"gold result of task {task.get('id')!r} was truncated; "
                        "its candidates cannot be verified (raise --max-rows/--max-bytes)")

    @staticmethod
    def record_candidates(cands: list[dict], outs: list) -> str | None:
        """Write each outcome into its candidate; returns why the task is unverifiable, if
        it is."""
        why = None
        for cand, (summary, correct, verdicts, checks, informed) in zip(cands, outs):
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
        return why

    def verified_by(self, skipped: str | None) -> dict:
        """A task's ``verified_by``."""
        out: dict = {"verifier": self.verifier, "matcher": self.matcher}
        if self.for_training:
            out["for_training"] = True
        if self.variants:
            out["variants"] = self.variants
            if skipped:
                out["variants_skipped"] = skipped
        return out


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
    ``verified_by.variants_skipped``. An unknown ``matcher`` is a usage error
    (UnknownPlugin) naming the registered ones.

    ``for_training``: verdicts that pick training examples. A task whose gold result is
    empty or degenerate gets a gold variant (rf_core.exec.gold_variants), and a candidate
    whose agreement with the gold rests only on such results gets ``correct`` None and the
    reason in ``unverifiable`` (one stderr line per task)."""
    get_matcher(matcher)
    names = tuple(registered_matchers())
    remove_stale_copies()
    copies = DatabaseCopies()
    cache = VariantCache(variants, seed=variants_seed, root=variants_dir,
                         max_mb=variants_max_mb, max_s=variants_max_s, report=report,
                         copies=copies)
    records = TaskRecords(matcher=matcher, verifier=verifier, report=report, variants=variants,
                          variants_seed=variants_seed, for_training=for_training,
                          gold_variants_max_s=gold_variants_max_s, cache=cache, copies=copies)
    try:
        results = supervised_map(check_job, records.jobs(tasks), workers=jobs,
                                 hard_timeout_s=limits.timeout_s + GRACE_S,
                                 init=_init_worker,
                                 init_args=(limits, matcher, names,
                                            8 * (1 + variants + for_training)))
        for result in results:
            yield records.finish(result)
    finally:
        cache.close()
        copies.close()
