"""The peft trainer: a LoRA adapter on the base model, completion-only loss, length-grouped
steps, in one process or many (DDP); ``run`` holds its steps, ``memory`` its memory plan."""

from __future__ import annotations

from typing import Any

from rf_core.api import Progress, Report, to_stderr
from rf_plugins.peft import memory
from rf_plugins.peft.options import DEFAULTS, OPTIONS


class PeftTrainer:
    """rf-train's default trainer (``--trainer peft``)."""

    name = "peft"
    description = "LoRA with peft; completion-only loss; length-grouped steps; DDP"
    options = OPTIONS
    accepts = ("example",)  # rf-train refuses pairs for it, naming a trainer that takes them

    def train(self, examples: list[dict], *, base: str, out: str, report: Report = to_stderr,
              progress: Progress | None = None, **options: Any) -> dict:
        """Train an adapter from ``base`` on ``examples`` into ``out``; return the report.

        ``options``: rf-train's arguments (epochs, lr, batch_size, max_len, seed,
        max_too_long, resume, force) and this trainer's declared options; any not given
        take their defaults (``run.Settings``), any unknown is ignored.
        """
        from rf_plugins.peft import run  # the model code: loaded when a run starts

        settings = run.Settings.of(base=base, out=out, **options)
        return run.train(examples, settings, report, progress, self.name)

    def memory_plan(self, config: dict, *, free_bytes: int | None, max_len: int,
                    rank: int = DEFAULTS["rank"], dropout: float = DEFAULTS["dropout"],
                    **_options: Any) -> dict:
        """rf-doctor's view of this trainer's micro-batch budget and checkpointing decision
        for a model not loaded yet (``memory.memory_plan``), with the options it depends
        on."""
        plan = memory.memory_plan(config, free_bytes=free_bytes, max_len=max_len, rank=rank,
                                  dropout=dropout)
        return {**plan, "rank": rank, "dropout": dropout}
