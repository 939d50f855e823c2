"""The defaults of rf-train's own settings, which it passes to every trainer: written once,
here, and read by rf-train's flags, the trainers and rf-doctor."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class TrainDefaults:
    """rf-train's ``--epochs``, ``--lr``, ``--batch-size``, ``--max-len`` and ``--seed``."""

    epochs: int = 2
    lr: float = 1e-4
    batch_size: int = 16
    max_len: int = 2048  # the longest example trained on; longer ones are skipped
    seed: int = 0


TRAIN_DEFAULTS = TrainDefaults()
