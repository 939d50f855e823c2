"""How a sampler puts its answers on a task: one function, so every sampler writes the same
candidate fields and clears what an earlier verification left on the task."""

from __future__ import annotations

from rf_core.model.extract import extract_sql

STALE = ("gold_exec", "vote", "verified_by")


def attach(task: dict, messages: list[dict], answers: list[dict], *, sampler: str, model: str,
           adapter: str | None, temperature: float, seed: int | None) -> dict:
    """Set ``messages`` and ``candidates`` on ``task``.

    Each answer is ``{"text", "logprob", "n_tokens", "finished"}``, and may carry its own
    ``"seed"`` (engines that seed every sample, see ``sample_seed``); the SQL is extracted here.
    """
    task["messages"] = messages
    task["candidates"] = [
        {"sql": extract_sql(a["text"]), "text": a["text"], "sampler": sampler, "model": model,
         "adapter": adapter, "temperature": temperature, "seed": a.get("seed", seed),
         "logprob": a.get("logprob"), "n_tokens": a.get("n_tokens"),
         "finished": a.get("finished")}
        for a in answers]
    for key in STALE:
        task.pop(key, None)
    return task
