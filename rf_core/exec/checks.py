"""What a command needs of a task beyond its schema (types are checked on reading, in
rf_core.records.validation), raised as ValueError so readers can name the line."""

from __future__ import annotations


def check_executed(task: dict) -> None:
    """Candidates must carry a verifier's verdict (rf-exec's, or another verifier's)."""
    for i, c in enumerate(task.get("candidates") or []):
        if "correct" not in c:
            raise ValueError(f"candidate {i} has no 'correct': run rf-exec first")


def check_exec_input(task: dict) -> None:
    if "db_path" not in task:
        raise ValueError("task has no 'db_path' string")


def variants_rejected(cand: dict) -> bool:
    """Whether the test-suite variants turned this candidate from correct to wrong."""
    check = cand.get("variants")
    return bool(isinstance(check, dict) and check.get("used")
                and check.get("passed") != check.get("used"))
