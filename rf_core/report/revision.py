"""Execution accuracy before and after revision (rf-revise), from the candidates' turns.

A revised candidate keeps its earlier states in ``revision.turns``: turn 1 is the candidate
as it was sampled, with what rf-exec said of it if rf-exec ran before rf-revise. The state
before revision of a task is its candidates' first turns (a never-revised candidate is its own
first turn); its score is the first candidate's verdict, or a vote over those states where
the task was voted on. A round's effect on a candidate is known where both the state it
revised and the state it made carry a verdict (rf-exec between single-round rf-revise calls).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

from rf_core.report.stats import compare, percent, wilson_interval
from rf_core.report.vote import vote


def _turns(cand: dict) -> list[dict]:
    rev = cand.get("revision")
    return list(rev.get("turns") or []) if isinstance(rev, dict) else []


def states(cand: dict) -> list[dict]:
    """A candidate's states in order: each earlier turn, then the candidate itself."""
    return _turns(cand) + [cand]


def before(task: dict) -> dict:
    """The task as it was before any revision: each candidate's first state, and a vote over
    those where the task was voted on."""
    earlier = {**task, "candidates": [states(c)[0] for c in task.get("candidates") or []]}
    if task.get("vote") is not None:
        earlier["vote"] = vote(earlier)
    return earlier


@dataclass
class RoundEffect:
    """One round: candidates it revised, of which judged before and after, fixed, broken."""

    revised: int = 0
    judged: int = 0
    fixed: int = 0
    broken: int = 0


@dataclass
class RevisionEvaluation:
    """Accumulates tasks; ``report()`` is None where no candidate was ever revised."""

    before: dict[str, bool] = field(default_factory=dict)   # task id -> scored before
    after: dict[str, bool] = field(default_factory=dict)    # task id -> scored after
    unjudged_before: int = 0   # scored tasks whose first states carry no verdict
    revised: int = 0           # candidates revised at least once
    skipped: int = 0           # candidates whose revision was skipped (too long)
    fixed: int = 0             # first state wrong, last right
    broken: int = 0            # first state right, last wrong
    rounds: list[RoundEffect] = field(default_factory=list)

    def add(self, task: dict, scored_after: bool, scored: Callable[[dict], bool]) -> None:
        """Count one scored task (``scored``: how a task is scored, given by rf-eval)."""
        cands = task.get("candidates") or []
        key = str(task.get("id", len(self.after)))
        earlier = before(task)
        if any(c.get("correct") is None for c in earlier["candidates"][:1]):
            self.unjudged_before += 1
        self.before[key] = scored(earlier)
        self.after[key] = scored_after
        for cand in cands:
            self.candidate(cand)

    def candidate(self, cand: dict) -> None:
        """Count one candidate's revisions."""
        seq = states(cand)
        if isinstance(cand.get("revision"), dict) and cand["revision"].get("skipped"):
            self.skipped += 1
        if len(seq) == 1:
            return
        self.revised += 1
        first, last = seq[0].get("correct"), seq[-1].get("correct")
        self.fixed += first is False and last is True
        self.broken += first is True and last is False
        for r in range(1, len(seq)):
            while len(self.rounds) < r:
                self.rounds.append(RoundEffect())
            effect = self.rounds[r - 1]
            effect.revised += 1
            was, now = seq[r - 1].get("correct"), seq[r].get("correct")
            if isinstance(was, bool) and isinstance(now, bool):
                effect.judged += 1
                effect.fixed += not was and now
                effect.broken += was and not now

    def report(self) -> dict | None:
        """The report's ``revision`` part, or None when nothing was revised."""
        if not self.revised and not self.skipped:
            return None
        n = len(self.before)
        right = sum(self.before.values())
        ci = wilson_interval(right, n)
        return {"candidates_revised": self.revised, "candidates_skipped": self.skipped,
                "fixed": self.fixed, "broken": self.broken,
                "tasks_unjudged_before": self.unjudged_before,
                "ex_before": percent(right, n), "ex_before_ci95": list(ci) if ci else None,
                "correct_before": right,
                "paired": compare(self.after, self.before),
                "rounds": [vars(e) | {"round": i} for i, e in enumerate(self.rounds, 1)]}


def markdown_lines(rev: dict, fmt: Callable[[float | None], str]) -> list[str]:
    """The revision part of rf-eval's Markdown report."""
    p = rev["paired"]
    lines = ["", "Revision (rf-revise): EX before and after, the same tasks, paired:", "",
             "| EX before | EX after | difference (95% paired bootstrap) | McNemar exact p | "
             "tasks won / lost / tied |", "|---|---|---|---|---|",
             f"| {fmt(p['ex_baseline'])} | {fmt(p['ex'])} | {p['diff']:+.1f} "
             f"[{p['diff_ci95'][0]:.1f}, {p['diff_ci95'][1]:.1f}] | {p['mcnemar_p']:.3g} | "
             f"{p['won']} / {p['lost']} / {p['tied']} |" if p["tasks"] else
             "| n/a | n/a | n/a | n/a | n/a |",
             "", f"Candidates revised: {rev['candidates_revised']} (fixed {rev['fixed']}, "
             f"broken {rev['broken']}); skipped as too long: {rev['candidates_skipped']}.",
             "", "| round | revised | judged before and after | fixed | broken |",
             "|---|---|---|---|---|"]
    lines += [f"| {r['round']} | {r['revised']} | {r['judged']} | {r['fixed']} | "
              f"{r['broken']} |" for r in rev["rounds"]]
    if rev["tasks_unjudged_before"]:
        lines.append(f"\n{rev['tasks_unjudged_before']} task(s) had no verdict before "
                     "revision (rf-exec did not run before rf-revise): EX before counts "
                     "them wrong.")
    return lines
