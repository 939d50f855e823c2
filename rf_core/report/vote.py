"""Self-consistency voting: the answer whose execution result most candidates share."""

from __future__ import annotations


def vote(task: dict) -> dict:
    """The vote over a task's executed candidates.

    Candidates that ran (and were not truncated) are grouped by result digest; the largest
    group wins, and a tie goes to the group whose first member came earliest. The voted SQL
    is that first member's, and so is ``correct`` (the matcher rf-exec used decides it).
    """
    groups: dict[str, list[int]] = {}
    for i, cand in enumerate(task.get("candidates") or []):
        ex = cand.get("exec") or {}
        if ex.get("ok") and not ex.get("truncated") and ex.get("digest"):
            groups.setdefault(ex["digest"], []).append(i)
    n_valid = sum(len(g) for g in groups.values())
    if not groups:
        return {"sql": None, "index": None, "support": 0, "n_valid": 0, "correct": False}
    # dicts keep insertion order, so max() over them returns the earliest group on ties
    best = max(groups.values(), key=len)
    winner = task["candidates"][best[0]]
    return {"sql": winner.get("sql"), "index": best[0], "support": len(best),
            "n_valid": n_valid, "correct": bool(winner.get("correct"))}
