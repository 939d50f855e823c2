"""The dpo trainer's declared options: the peft trainer's (LoRA, schedule, memory, device,
checkpoints) and its own two."""

from __future__ import annotations

from typing import Any

from rf_core.api import Option
from rf_plugins.peft.options import OPTIONS as PEFT_OPTIONS

OPTIONS = PEFT_OPTIONS + (
    Option("beta", float, 0.1, "DPO's beta: the scale of the implicit rewards, "
           "beta x (log-prob - reference log-prob). 0 is the limit beta -> 0: the DPO term "
           "is then the constant log 2, with no gradient.", minimum=0),
    Option("sft_weight", float, 0.0, "Weight of an SFT term on each pair's chosen answer "
           "(example records always get the SFT loss, weight 1).", minimum=0),
)

# option name -> its default
DEFAULTS: dict[str, Any] = {o.name: o.default for o in OPTIONS}
