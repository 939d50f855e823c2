"""The dpo trainer: a LoRA adapter trained on preference pairs (chosen and rejected answers
to one prompt) with the sigmoid DPO loss, the reference being the same model with its
adapter disabled; example records in the input get the SFT loss.

Built on the peft trainer's package (model loading, LoRA, steps, micro-batches, memory
plan, non-finite guards, checkpoints, report): ``trainer`` is the plugin object,
``objective`` its loss, the part that differs, ``options`` its declared options.
"""

from __future__ import annotations

from typing import Any, Callable

from rf_core.api import hookimpl
from rf_plugins.dpo.trainer import DpoTrainer

__all__ = ["DpoTrainer", "register_trainers"]


@hookimpl
def register_trainers(register: Callable[[Any], None]) -> None:
    """The ``dpo`` trainer."""
    register(DpoTrainer())
