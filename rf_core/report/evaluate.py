"""Execution accuracy, pass@k and error counts over verified tasks."""

from __future__ import annotations

from math import comb, sqrt

from rf_core.report.stats import Z95, percent, wilson_interval
from rf_core.exec.checks import variants_rejected
from rf_core.report.revision import RevisionEvaluation, markdown_lines

HARDNESS = ("easy", "medium", "hard", "extra")


def pass_at_k(n: int, c: int, k: int) -> float:
    """Unbiased pass@k (Chen et al., 2021): 1 - C(n-c, k) / C(n, k)."""
    if n - c < k:
        return 1.0
    return 1.0 - comb(n - c, k) / comb(n, k)


def _ks(max_n: int) -> list[int]:
    ks, k = [], 1
    while k <= max_n:
        ks.append(k)
        k *= 2
    if max_n and ks[-1] != max_n:
        ks.append(max_n)
    return ks


def scored_correct(task: dict) -> bool:
    """Whether a task's answer counts: its vote where it has one, else its first candidate."""
    if task.get("vote") is not None:
        return bool(task["vote"].get("correct"))
    cands = task.get("candidates") or []
    return bool(cands and cands[0].get("correct"))


def scored_verdict(task: dict, matcher: str) -> bool:
    """scored_correct under one matcher's recorded verdict (original database only)."""
    cands = task.get("candidates") or []
    vote = task.get("vote")
    if vote is not None:
        index = vote.get("index")
        if not isinstance(index, int) or not 0 <= index < len(cands):
            return False
        return bool((cands[index].get("verdicts") or {}).get(matcher))
    return bool(cands and (cands[0].get("verdicts") or {}).get(matcher))


MATCHER_ORDER = ("official", "official-keep-distinct", "lenient")


def _pass_at_k_intervals(per_task_nc: list[tuple[int, int]]) -> dict[str, list[float]]:
    """95% intervals of pass@k: the mean of per-task estimates, mean +- 1.96 standard errors
    over tasks (normal approximation; clipped to 0-100); where every task's estimate is 0 or
    1, the Wilson interval of that share."""
    max_n = max((n for n, _ in per_task_nc), default=0)
    out = {}
    for k in _ks(max_n):
        values = [pass_at_k(n, c, k) for n, c in per_task_nc if n >= k]
        if values and all(v in (0.0, 1.0) for v in values):
            # every task is simply right or wrong (n == k): the share's Wilson interval, as EX
            out[str(k)] = list(wilson_interval(int(sum(values)), len(values)))
        elif len(values) > 1:
            mean = sum(values) / len(values)
            var = sum((v - mean) ** 2 for v in values) / (len(values) - 1)
            half = Z95 * sqrt(var / len(values))
            out[str(k)] = [round(100 * max(0.0, mean - half), 2),
                           round(100 * min(1.0, mean + half), 2)]
    return out


def _pass_at_ks(per_task_nc: list[tuple[int, int]]) -> dict[str, float]:
    max_n = max((n for n, _ in per_task_nc), default=0)
    out = {}
    for k in _ks(max_n):
        eligible = [(n, c) for n, c in per_task_nc if n >= k]
        if eligible:
            out[str(k)] = round(
                100.0 * sum(pass_at_k(n, c, k) for n, c in eligible) / len(eligible), 2)
    return out


class Evaluation:
    """Accumulates tasks one at a time, so memory does not grow with the input."""

    def __init__(self):
        self.n_tasks = 0
        self.scored = 0
        self.correct = 0
        self.first_correct = 0
        self.vote_tasks = 0
        self.unverified = 0
        self.no_candidates = 0
        self.gold_errors = 0
        self.candidates = 0
        self.exec_errors = 0
        self.timeouts = 0
        self.truncated = 0
        self.executed = 0  # candidates with an exec result (a verdict-only verifier writes none)
        self.unexecuted_by: set[str] = set()
        self.matchers: set[str] = set()
        self.by_hardness: dict[str, list[int]] = {}
        self.per_task_nc: list[tuple[int, int]] = []  # (n, c): two ints a task
        self.outcomes: dict[str, bool] = {}  # task id -> scored answer correct
        # per matcher found in candidates' verdicts: [correct, first correct, [(n, c)...]]
        self.by_matcher: dict[str, list] = {}
        self.variant_counts = [0, 0]  # candidates checked on variants, turned to wrong
        self.variants_n: set[int] = set()
        self.revision = RevisionEvaluation()  # before and after rf-revise, where it ran

    def add(self, task: dict) -> None:
        self.n_tasks += 1
        cands = task.get("candidates") or []
        if task.get("verified_by"):
            self.matchers.add(task["verified_by"].get("matcher", "?"))
        gold = task.get("gold_exec")
        if gold is not None and not gold.get("ok"):
            self.gold_errors += 1
        if (task.get("verified_by") or {}).get("variants"):
            self.variants_n.add(task["verified_by"]["variants"])
        for c in cands:
            self.candidates += 1
            if isinstance(c.get("variants"), dict):
                self.variant_counts[0] += 1
                self.variant_counts[1] += variants_rejected(c)
            ex = c.get("exec") or {}
            if "exec" in c:
                self.executed += 1
            else:
                self.unexecuted_by.add(str((task.get("verified_by") or {}).get("verifier")
                                           or "unknown"))
            if ex and not ex.get("ok"):
                self.exec_errors += 1
                if ex.get("timed_out"):
                    self.timeouts += 1
            if ex.get("truncated"):
                self.truncated += 1
        if not cands:
            self.no_candidates += 1
        verdicts = [c.get("correct") for c in cands]
        if cands and all(v is None for v in verdicts):
            self.unverified += 1
            return
        if task.get("vote") is not None:
            self.vote_tasks += 1
        ok = scored_correct(task)
        first = bool(verdicts and verdicts[0])
        self.scored += 1
        self.correct += ok
        self.first_correct += first
        level = task.get("hardness") or "unknown"
        bucket = self.by_hardness.setdefault(level, [0, 0])
        bucket[0] += 1
        bucket[1] += ok
        self.per_task_nc.append((len(cands), sum(1 for v in verdicts if v is True)))
        if task.get("id") is not None:
            self.outcomes[str(task["id"])] = ok
        self.revision.add(task, ok, scored_correct)
        names = {m for c in cands for m, v in (c.get("verdicts") or {}).items()
                 if isinstance(v, bool)}
        for m in names:
            acc = self.by_matcher.setdefault(m, [0, 0, 0, []])
            acc[0] += 1
            acc[1] += scored_verdict(task, m)
            acc[2] += bool((cands[0].get("verdicts") or {}).get(m))
            acc[3].append((len(cands), sum(1 for c in cands
                                            if (c.get("verdicts") or {}).get(m) is True)))

    @property
    def unexecuted(self) -> int:
        """Candidates without an exec result."""
        return self.candidates - self.executed

    def report(self) -> dict:
        pass_k = _pass_at_ks(self.per_task_nc)
        names = [m for m in MATCHER_ORDER if m in self.by_matcher]
        names += sorted(m for m in self.by_matcher if m not in MATCHER_ORDER)
        by_matcher = {}
        for m in names:
            scored, correct, first, nc = self.by_matcher[m]
            ci = wilson_interval(correct, scored)
            by_matcher[m] = {"scored": scored, "correct": correct, "ex": percent(correct, scored),
                             "ex_ci95": list(ci) if ci else None,
                             "ex_first": percent(first, scored), "pass_at_k": _pass_at_ks(nc),
                             "pass_at_k_ci95": _pass_at_k_intervals(nc)}
        ci = wilson_interval(self.correct, self.scored)
        revision = self.revision.report()
        order = [h for h in HARDNESS if h in self.by_hardness]
        order += sorted(h for h in self.by_hardness if h not in HARDNESS)
        return {
            "schema_version": 1,
            "kind": "report",
            "matcher": ",".join(sorted(self.matchers)) or None,
            "method": "vote" if self.vote_tasks == self.scored and self.scored else
                      ("first" if not self.vote_tasks else "mixed"),
            "tasks": self.n_tasks,
            "scored": self.scored,
            "correct": self.correct,
            "ex": percent(self.correct, self.scored),
            "ex_ci95": list(ci) if ci else None,
            "ex_first": percent(self.first_correct, self.scored),
            "pass_at_k": pass_k,
            "pass_at_k_ci95": _pass_at_k_intervals(self.per_task_nc),
            "by_hardness": {h: {"n": self.by_hardness[h][0], "correct": self.by_hardness[h][1],
                                "ex": percent(self.by_hardness[h][1], self.by_hardness[h][0])}
                            for h in order},
            "candidates": self.candidates,
            "executed": self.executed,
            "exec_errors": self.exec_errors,
            "timeouts": self.timeouts,
            "truncated": self.truncated,
            "gold_errors": self.gold_errors,
            "no_candidates": self.no_candidates,
            "unverified": self.unverified,
            "by_matcher": by_matcher,
            "variants": ({"n": max(self.variants_n), "checked": self.variant_counts[0],
                          "rejected": self.variant_counts[1]} if self.variants_n else None),
            "outcomes": self.outcomes,
            **({"revision": revision} if revision else {}),
        }


def markdown(report: dict, title: str = "ReasonForge evaluation") -> str:
    """A table a person reads."""

    def fmt(v):
        return "n/a" if v is None else f"{v:.1f}%"

    def interval(ci):
        return "" if not ci else f" [{ci[0]:.1f}, {ci[1]:.1f}]"

    lines = [f"# {title}", "",
             f"Matcher: **{report['matcher'] or 'unknown'}**; scored by **{report['method']}**; "
             f"{report['scored']} of {report['tasks']} tasks scored.", "",
             "| metric | value |", "|---|---|",
             f"| execution accuracy (95% interval) | {fmt(report['ex'])}"
             f"{interval(report.get('ex_ci95'))} ({report['correct']}/{report['scored']}) |",
             f"| first candidate EX | {fmt(report['ex_first'])} |"]
    for k, v in report["pass_at_k"].items():
        ci = (report.get("pass_at_k_ci95") or {}).get(k)
        lines.append(f"| pass@{k} | {fmt(v)}{interval(ci)} |")
    variants = report.get("variants")
    if variants:
        lines.append(f"| candidates the {variants['n']} database variants turned to wrong | "
                     f"{variants['rejected']} of {variants['checked']} checked |")
    by_matcher = report.get("by_matcher") or {}
    if by_matcher:
        ks = sorted({k for b in by_matcher.values() for k in b["pass_at_k"]}, key=int)
        lines += ["", "EX under every matcher (original database only):", "",
                  "| matcher | EX [95% interval] | first candidate EX | "
                  + " | ".join(f"pass@{k}" for k in ks) + " |",
                  "|---|---|---|" + "---|" * len(ks)]
        for m, b in by_matcher.items():
            lines.append(f"| {m} | {fmt(b['ex'])}{interval(b['ex_ci95'])} | "
                         f"{fmt(b['ex_first'])} | "
                         + " | ".join(fmt(b["pass_at_k"].get(k))
                                      + interval((b.get("pass_at_k_ci95") or {}).get(k))
                                      for k in ks) + " |")
    base = report.get("baseline")
    if base:
        lines += ["", f"Against the baseline ({base['tasks']} tasks in both):", "",
                  "| EX here | EX baseline | difference (95% paired bootstrap) | "
                  "McNemar exact p | won / lost / tied |", "|---|---|---|---|---|",
                  f"| {fmt(base['ex'])} | {fmt(base['ex_baseline'])} | "
                  f"{base['diff']:+.1f}{interval(base['diff_ci95'])} | "
                  f"{base['mcnemar_p']:.3g} | {base['won']} / {base['lost']} / "
                  f"{base['tied']} |"]
    if report.get("revision"):
        lines += markdown_lines(report["revision"], fmt)
    lines += ["", "| hardness | tasks | correct | EX |", "|---|---|---|---|"]
    for h, b in report["by_hardness"].items():
        lines.append(f"| {h} | {b['n']} | {b['correct']} | {fmt(b['ex'])} |")
    lines += ["", "| counts | |", "|---|---|",
              f"| candidates | {report['candidates']} |",
              f"| executed candidates | {report.get('executed', report['candidates'])} |",
              f"| execution errors | {report['exec_errors']} |",
              f"| timeouts | {report['timeouts']} |",
              f"| truncated results | {report['truncated']} |",
              f"| gold query errors | {report['gold_errors']} |",
              f"| tasks without candidates | {report['no_candidates']} |",
              f"| unverified tasks | {report['unverified']} |", ""]
    return "\n".join(lines)
