"""How a sampler puts its answers on a task: one function, so every sampler writes the same
candidate fields and clears what an earlier verification left on the task."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable

from rf_core.model.extract import extract_sql

STALE = ("gold_exec", "vote", "verified_by")


@dataclass
class Generation:
    """One sampled answer as an engine returns it, before decoding.

    ``tokens``: the generated token ids, the stop token excluded; ``logprob``: the sum of
    the sampled tokens' log-probabilities, stop token included (None where the engine gives
    none); ``finished``: a stop token ended it (False: it ran into max_new_tokens);
    ``seed``: the seed that reproduces this one answer, for engines that seed every sample
    (None otherwise).
    """
    tokens: list[int]           # generated tokens, the stop token excluded
    logprob: float | None       # sum of the sampled tokens' log-probabilities (stop incl.)
    finished: bool              # True when a stop token ended it, False at max_new_tokens
    seed: int | None = None     # the sample's own seed, for engines that seed every sample

    @classmethod
    def from_ids(cls, ids: Iterable[int], logprob: float | None, stops: Iterable[int],
                 seed: int | None = None) -> "Generation":
        """From generated ids that end with a stop token when one ended the answer."""
        ids = list(ids)
        finished = bool(ids) and ids[-1] in set(stops)
        return cls(ids[:-1] if finished else ids, logprob, finished, seed)


def decode_answers(tokenizer: Any, generations: Iterable[Generation]) -> list[dict]:
    """The answers ``attach`` takes, decoded one way for every engine: an engine's own
    detokenizer may differ (vLLM's holds back a trailing incomplete UTF-8 sequence, which
    transformers' ``decode`` shows as U+FFFD), so the text always comes from the tokens."""
    answers = []
    for g in generations:
        answer = {"text": tokenizer.decode(g.tokens, skip_special_tokens=True),
                  "logprob": None if g.logprob is None else round(float(g.logprob), 4),
                  "n_tokens": len(g.tokens), "finished": g.finished}
        if g.seed is not None:
            answer["seed"] = g.seed
        answers.append(answer)
    return answers


def candidate_of(answer: dict, *, sampler: str, model: str, adapter: str | None,
                 temperature: float, seed: int | None) -> dict:
    """One answer (``{"text", "logprob", "n_tokens", "finished"}``, maybe ``"seed"``) as a
    candidate; the SQL is extracted here, except from an answer that carries its own
    ``"sql"`` (SQL given, not a model's answer). An answer's ``"ext"`` (a dict,
    ``{"<plugin name>": {...}}``) goes on its candidate as is."""
    a = answer
    return {"sql": a["sql"] if "sql" in a else extract_sql(a["text"]), "text": a["text"],
            "sampler": sampler, "model": model, "adapter": adapter, "temperature": temperature,
            "seed": a.get("seed", seed), "logprob": a.get("logprob"),
            "n_tokens": a.get("n_tokens"), "finished": a.get("finished"),
            **({"ext": a["ext"]} if isinstance(a.get("ext"), dict) else {})}


def attach(task: dict, messages: list[dict], answers: list[dict], *, sampler: str, model: str,
           adapter: str | None, temperature: float, seed: int | None) -> dict:
    """Set ``messages`` and ``candidates`` (``candidate_of`` each answer) on ``task``, and
    clear what an earlier verification left on it.

    Each answer is ``{"text", "logprob", "n_tokens", "finished"}``, and may carry its own
    ``"seed"`` (engines that seed every sample, see ``sample_seed``).
    """
    task["messages"] = messages
    task["candidates"] = [candidate_of(a, sampler=sampler, model=model, adapter=adapter,
                                       temperature=temperature, seed=seed) for a in answers]
    for key in STALE:
        task.pop(key, None)
    return task
