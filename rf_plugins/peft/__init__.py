"""The default trainer: a LoRA adapter on the base model with peft, in one or many processes.

``trainer`` is the plugin object; ``run`` its training run in named steps; ``batching`` the
examples, steps and micro-batches; ``memory`` the micro-batch budget for a device (also
offered to rf-doctor); ``model`` the torch pieces; ``options`` its declared options.
"""

from __future__ import annotations

from typing import Any, Callable

from rf_core.api import hookimpl
from rf_plugins.peft.trainer import PeftTrainer

__all__ = ["PeftTrainer", "register_trainers"]


@hookimpl
def register_trainers(register: Callable[[Any], None]) -> None:
    """The ``peft`` trainer."""
    register(PeftTrainer())
