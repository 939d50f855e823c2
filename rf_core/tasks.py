"""Shape checks for task records, raised as ValueError so readers can name the line."""

from __future__ import annotations


def check_candidates(task: dict) -> None:
    cands = task.get("candidates")
    if cands is None:
        return
    if not isinstance(cands, list):
        raise ValueError("'candidates' must be a list")
    for i, c in enumerate(cands):
        if not isinstance(c, dict):
            raise ValueError(f"candidate {i} is not an object")
        sql = c.get("sql")
        if sql is not None and not isinstance(sql, str):
            raise ValueError(f"candidate {i} has a non-string 'sql'")


def check_executed(task: dict) -> None:
    """Candidates must carry a verifier's verdict (rf-exec's, or another verifier's)."""
    check_candidates(task)
    for i, c in enumerate(task.get("candidates") or []):
        if "correct" not in c:
            raise ValueError(f"candidate {i} has no 'correct': run rf-exec first")
        if c.get("exec") is not None and not isinstance(c["exec"], dict):
            raise ValueError(f"candidate {i} has a non-object 'exec'")


def check_exec_input(task: dict) -> None:
    check_candidates(task)
    if not isinstance(task.get("db_path"), str):
        raise ValueError("task has no 'db_path' string")
    gold = task.get("gold_sql")
    if gold is not None and not isinstance(gold, str):
        raise ValueError("'gold_sql' must be a string")


def variants_rejected(cand: dict) -> bool:
    """Whether the test-suite variants turned this candidate from correct to wrong."""
    check = cand.get("variants")
    return bool(isinstance(check, dict) and check.get("used")
                and check.get("passed") != check.get("used"))
