"""The peft trainer's examples and steps: tokenised examples, length-grouped optimizer steps,
micro-batches within a step, and the learning-rate schedule.

Examples are rendered with rf_core.api's ``encode_example``, the function the samplers' prompts
come from, so the model is trained on exactly the prompt it is sampled with, and its completion
ends with the end-of-turn token that sampling stops at.
"""

from __future__ import annotations

import math
import random
from collections import Counter
from dataclasses import dataclass
from typing import Any, Callable

from rf_core.api import RFError, encode_example


@dataclass
class Encoded:
    """One tokenised example: prompt and completion ids, the prompt's length, its weight."""

    index: int
    input_ids: list[int]
    n_prompt: int
    weight: float

    @property
    def n_completion(self) -> int:
        """Tokens of the completion, the ones the loss is on."""
        return len(self.input_ids) - self.n_prompt


def encode_examples(examples: list[dict], tokenizer: Any, end_of_turn: int, max_len: int,
                    report: Callable[[str], None],
                    max_too_long: float | None = None) -> tuple[list[Encoded], Counter]:
    """Tokenise examples; those longer than ``max_len`` are reported and skipped, never cut.

    Returns the encoded examples and the skipped ones counted by database (``db_id``, or
    "?" where an example has none). With ``max_too_long`` (a percentage), more skipped than
    that is an RFError naming the databases, before any training: a limit that drops the
    largest schemas' questions silently would train on none of them.
    """
    out: list[Encoded] = []
    too_long: Counter[str] = Counter()
    for i, ex in enumerate(examples):
        prompt, answer = encode_example(tokenizer, ex["messages"], ex["completion"], end_of_turn)
        if len(prompt) + len(answer) > max_len:
            too_long[ex.get("db_id") or "?"] += 1
            report(f"example {i + 1} (task {ex.get('task_id')!r}) has "
                   f"{len(prompt) + len(answer)} tokens > --max-len {max_len}: skipped")
            continue
        out.append(Encoded(i, prompt + answer, len(prompt), float(ex.get("weight", 1))))
    n, dropped = len(examples), sum(too_long.values())
    if dropped:
        worst = ", ".join(f"{db} {c}" for db, c in too_long.most_common(8))
        message = (f"{dropped} of {n} examples ({100 * dropped / n:.1f}%) are longer than "
                   f"--max-len {max_len} (by database: {worst})")
        if max_too_long is not None and 100 * dropped / n > max_too_long:
            raise RFError(f"{message}; more than the {max_too_long:g}% allowed: raise "
                          "--max-len, or allow it with a larger --max-too-long")
        report(f"{message}: skipped")
    return out, too_long


def plan_steps(examples: list[Encoded], batch_size: int, epochs: int, seed: int,
               group: int = 32) -> list[list[Encoded]]:
    """Optimizer steps of ``batch_size`` examples each, for all epochs.

    Each epoch shuffles (seeded), then sorts windows of ``group`` steps by length so a step's
    examples have similar lengths (little padding), then shuffles the steps. Every process
    of a distributed run computes the same plan.
    """
    rng = random.Random(seed)
    steps = []
    for _ in range(epochs):
        order = examples[:]
        rng.shuffle(order)
        window = batch_size * group
        epoch_steps = []
        for start in range(0, len(order), window):
            chunk = sorted(order[start:start + window], key=lambda e: len(e.input_ids))
            epoch_steps += [chunk[i:i + batch_size] for i in range(0, len(chunk), batch_size)]
        rng.shuffle(epoch_steps)
        steps += epoch_steps
    return steps


def micro_batches(step: list[Encoded], token_budget: int,
                  completion_budget: int | None = None) -> list[list[Encoded]]:
    """Split a step into micro-batches whose padded size (rows x longest) fits
    ``token_budget`` and whose completion tokens (the output layer's rows) fit
    ``completion_budget``. An example larger than a budget gets a micro-batch of its own."""
    ordered = sorted(step, key=lambda e: len(e.input_ids))
    out: list[list[Encoded]] = []
    current: list[Encoded] = []
    completion = 0
    for ex in ordered:
        if current and ((len(current) + 1) * len(ex.input_ids) > token_budget
                        or (completion_budget is not None
                            and completion + ex.n_completion > completion_budget)):
            out.append(current)
            current, completion = [], 0
        current.append(ex)
        completion += ex.n_completion
    if current:
        out.append(current)
    return out


def halve(batches: list[list[Encoded]]) -> list[list[Encoded]] | None:
    """Each micro-batch split into two of half the rows (after an out-of-memory error);
    None when every micro-batch already holds one row."""
    if all(len(mb) == 1 for mb in batches):
        return None
    out = []
    for mb in batches:
        cut = (len(mb) + 1) // 2
        out += [mb[:cut], mb[cut:]] if len(mb) > 1 else [mb]
    return out


def cosine_with_warmup(step: int, total: int, warmup: int) -> float:
    """Learning-rate multiplier: linear warm-up, then cosine decay to 0."""
    if warmup and step < warmup:
        return (step + 1) / warmup
    progress = (step - warmup) / max(1, total - warmup)
    return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))
