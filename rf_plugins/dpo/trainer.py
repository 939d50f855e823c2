"""The dpo trainer: preference pairs (and examples) through the peft trainer's run, with the
DPO objective (``objective``)."""

from __future__ import annotations

import math
from typing import Any

from rf_core.api import Progress, Report, UsageError, to_stderr
from rf_plugins.dpo.options import OPTIONS
from rf_plugins.peft.options import DEFAULTS as PEFT_DEFAULTS
from rf_plugins.peft.trainer import PeftTrainer


class DpoTrainer:
    """rf-train's preference trainer (``--trainer dpo``): takes ``pair`` and ``example``
    records."""

    name = "dpo"
    description = ("DPO (sigmoid) on preference pairs with LoRA; reference: the base model "
                   "(adapter disabled); SFT on examples")
    options = OPTIONS
    accepts = ("example", "pair")

    def train(self, examples: list[dict], *, base: str, out: str, report: Report = to_stderr,
              progress: Progress | None = None, **options: Any) -> dict:
        """Train an adapter from ``base`` on the ``pair`` and ``example`` records into
        ``out``; return the report.

        ``options``: rf-train's arguments and this trainer's declared options (the peft
        trainer's and ``beta``, ``sft_weight``); any not given take their defaults, any
        unknown is ignored. A beta that is not a finite number >= 0 is a UsageError.
        """
        from rf_plugins.dpo.objective import DpoObjective, DpoSettings
        from rf_plugins.peft import run  # the model code: loaded when a run starts

        settings = DpoSettings.of(base=base, out=out, **options)
        for name in ("beta", "sft_weight"):
            value = getattr(settings, name)
            if not (isinstance(value, (int, float)) and math.isfinite(value) and value >= 0):
                raise UsageError(f"option {name!r} of trainer 'dpo': expected a finite "
                                 f"number >= 0, got {value!r}")
        return run.train(examples, settings, report, progress, self.name,
                         DpoObjective(settings))

    def memory_plan(self, config: dict, *, free_bytes: int | None, max_len: int,
                    rank: int = PEFT_DEFAULTS["rank"], dropout: float = PEFT_DEFAULTS["dropout"],
                    **_options: Any) -> dict:
        """The peft trainer's plan for a micro-batch that must hold one pair: two sequences
        of up to ``max_len`` tokens (chosen and rejected, forward and backward together)."""
        plan = PeftTrainer().memory_plan(config, free_bytes=free_bytes, max_len=2 * max_len,
                                         rank=rank, dropout=dropout)
        return {**plan, "rows_per_pair": 2}
