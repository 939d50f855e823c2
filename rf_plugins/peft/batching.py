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

    # A training unit is one or more rows that go into the same micro-batch (an example is
    # one row; a preference pair, two): steps and micro-batches are planned over units.
    @property
    def width(self) -> int:
        """The unit's longest row, in tokens."""
        return len(self.input_ids)

    @property
    def n_rows(self) -> int:
        """Rows the unit takes in a micro-batch."""
        return 1

    @property
    def n_tokens(self) -> int:
        """The unit's tokens, all rows, no padding."""
        return len(self.input_ids)

    @property
    def rows(self) -> list[Encoded]:
        """The unit's rows, each a tokenised sequence."""
        return [self]


def encode_example_record(tokenizer: Any, index: int, messages: list[dict], completion: str,
                          end_of_turn: int, weight: float = 1.0) -> Encoded:
    """One prompt and completion tokenised as rf_core.api's ``encode_example`` renders them."""
    prompt, answer = encode_example(tokenizer, messages, completion, end_of_turn)
    return Encoded(index, prompt + answer, len(prompt), float(weight))


def encode_examples(examples: list[dict], tokenizer: Any, end_of_turn: int, max_len: int,
                    report: Callable[[str], None],
                    max_too_long: float | None = None) -> tuple[list[Encoded], Counter]:
    """Tokenise examples; those longer than ``max_len`` are reported and skipped, never cut.

    Returns the encoded examples and the skipped ones counted by database (``db_id``, or
    "?" where an example has none). With ``max_too_long`` (a percentage), more skipped than
    that is an RFError naming the databases, before any training: a limit that drops the
    largest schemas' questions silently would train on none of them.
    """
    def encode(i: int, ex: dict) -> Encoded:
        return encode_example_record(tokenizer, i, ex["messages"], ex["completion"],
                                     end_of_turn, ex.get("weight", 1))

    return encode_records(examples, encode, max_len, report, max_too_long)


def encode_records(records: list[dict], encode: Callable[[int, dict], Any], max_len: int,
                   report: Callable[[str], None], max_too_long: float | None = None,
                   noun: str = "examples") -> tuple[list[Any], Counter]:
    """``encode(index, record)`` of every record into a unit (``Encoded`` or one with its
    ``width``); a unit wider than ``max_len`` is reported, skipped and counted by database,
    and more skipped than ``max_too_long`` percent is an RFError (``encode_examples``)."""
    out: list[Any] = []
    too_long: Counter[str] = Counter()
    for i, rec in enumerate(records):
        unit = encode(i, rec)
        if unit.width > max_len:
            too_long[rec.get("db_id") or "?"] += 1
            report(f"{rec.get('kind') or 'example'} {i + 1} (task {rec.get('task_id')!r}) has "
                   f"{unit.width} tokens > --max-len {max_len}: skipped")
            continue
        out.append(unit)
    n, dropped = len(records), sum(too_long.values())
    if dropped:
        worst = ", ".join(f"{db} {c}" for db, c in too_long.most_common(8))
        message = (f"{dropped} of {n} {noun} ({100 * dropped / n:.1f}%) are longer than "
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
            chunk = sorted(order[start:start + window], key=lambda e: e.width)
            epoch_steps += [chunk[i:i + batch_size] for i in range(0, len(chunk), batch_size)]
        rng.shuffle(epoch_steps)
        steps += epoch_steps
    return steps


def micro_batches(step: list[Encoded], token_budget: int,
                  completion_budget: int | None = None) -> list[list[Encoded]]:
    """Split a step into micro-batches whose padded size (rows x longest) fits
    ``token_budget`` and whose completion tokens (the output layer's rows) fit
    ``completion_budget``. A unit (an example, or a pair's two rows) larger than a budget
    gets a micro-batch of its own."""
    ordered = sorted(step, key=lambda e: e.width)
    out: list[list[Encoded]] = []
    current: list[Encoded] = []
    completion = rows = 0
    for ex in ordered:
        if current and ((rows + ex.n_rows) * ex.width > token_budget
                        or (completion_budget is not None
                            and completion + ex.n_completion > completion_budget)):
            out.append(current)
            current, completion, rows = [], 0, 0
        current.append(ex)
        completion += ex.n_completion
        rows += ex.n_rows
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
