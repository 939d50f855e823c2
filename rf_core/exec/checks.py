"""What a command needs of a task beyond its schema (types are checked on reading, in
rf_core.records.validation), raised as ValueError so readers can name the line."""

from __future__ import annotations


def check_executed(task: dict) -> None:
    """Candidates must carry a verifier's verdict (rf-exec's, or another verifier's)."""
    for i, c in enumerate(task.get("candidates") or []):
        if "correct" not in c:
            raise ValueError(f"candidate {i} has no 'correct': " + (
                f"{_verifier(task)} did not set it (a verifier sets it on every candidate)"
                if task.get("verified_by") else "run rf-exec first"))


# The verifier contract (README, "Verifiers"): every reader needs `correct`; rf-vote needs
# `exec` as well, and so does a vote that rf-eval or rf-filter --tasks scores by.

def _verifier(task: dict) -> str:
    """The verifier that wrote a task's verdicts, as error messages name it."""
    by = task.get("verified_by")
    name = by.get("verifier") if isinstance(by, dict) else None
    return f"verifier {name!r}" if name else "the verifier (the task has no verified_by)"


def _unexecuted(task: dict) -> int | None:
    """The first candidate without ``exec``, or None."""
    return next((i for i, c in enumerate(task.get("candidates") or []) if "exec" not in c),
                None)


def check_votable(task: dict) -> None:
    """rf-vote's input: verdicts, and execution results to group the candidates by."""
    check_executed(task)
    i = _unexecuted(task)
    if i is not None:
        raise ValueError(f"candidate {i} has no 'exec': {_verifier(task)} writes verdicts "
                         "only, and a vote groups candidates by their execution results; "
                         "verify with a verifier that executes them (sqlite), or score "
                         "first candidates (rf-eval without rf-vote)")


def check_scored(task: dict) -> None:
    """rf-eval's and rf-filter --tasks' input: verdicts, and a vote only where it was taken
    over executed candidates (a vote over none would score every task as wrong)."""
    check_executed(task)
    i = _unexecuted(task) if task.get("vote") is not None else None
    if i is not None:
        raise ValueError(f"the task has a vote but candidate {i} has no 'exec' "
                         f"({_verifier(task)} writes verdicts only): the vote counts no "
                         "candidate; drop rf-vote from the pipe to score first candidates")


def check_exec_input(task: dict) -> None:
    if "db_path" not in task:
        raise ValueError("task has no 'db_path' string")


def variants_rejected(cand: dict) -> bool:
    """Whether the test-suite variants turned this candidate from correct to wrong."""
    check = cand.get("variants")
    return bool(isinstance(check, dict) and check.get("used")
                and check.get("passed") != check.get("used"))
