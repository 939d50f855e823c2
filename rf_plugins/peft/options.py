"""The peft trainer's declared options (``-o NAME VALUE`` of rf-train and rf-doctor); their
defaults are read from here by the trainer and its memory plan."""

from __future__ import annotations

from typing import Any

from rf_core.api import DEVICE_PATTERN, Option

# on a CPU host memory is not sized: micro-batches of this many padded tokens
CPU_TOKENS = 4096

OPTIONS = (
    # a rank beyond any layer's width only costs memory: 4096 is wider than the models here
    Option("rank", int, 16, "LoRA rank.", minimum=1, maximum=4096),
    Option("alpha", float, 32.0, "LoRA alpha."),
    Option("dropout", float, 0.15, "LoRA dropout.", minimum=0, maximum=1),
    Option("target", str, "all-linear", "LoRA target modules (peft's target_modules)."),
    Option("warmup", float, 0.1, "Share of steps for linear warm-up before the cosine "
           "decay.", minimum=0, maximum=1),
    Option("weight_decay", float, 0.01, "AdamW weight decay.", minimum=0),
    Option("micro_batch_tokens", int, None, "Padded tokens per forward pass (default: "
           f"sized from free GPU memory and the model's shapes; {CPU_TOKENS} on CPU).",
           minimum=16),
    Option("grad_checkpointing", str, "auto", "Trade compute for memory. auto: on when "
           "too few tokens fit on the GPU without it; off on CPU.",
           choices=("auto", "on", "off")),
    Option("dtype", str, "auto", "auto: bf16 on GPU, fp32 on CPU.",
           choices=("auto", "bf16", "fp32")),
    Option("device", str, "auto", "auto, cpu, cuda, cuda:1 ...", pattern=DEVICE_PATTERN),
    Option("kernels", str, "auto", "The frozen base layers on a CPU. auto: oneDNN's fp32 "
           "kernels on weights packed once (about 1.3x faster steps than torch's default "
           "there; the same precision, other rounding in the last bits); torch: torch's "
           "default kernels.", choices=("auto", "torch")),
    Option("max_bad_steps", int, None, "Non-finite steps tolerated (skipped) before "
           "stopping (default: 10%).", minimum=0),
    Option("save_every", int, 50, "Checkpoint every N steps for --resume (0: never).",
           minimum=0),
    Option("merge", bool, False, "Also write the merged model to OUT/merged."),
    Option("max_grad_norm", float, 1.0, "Gradient clipping norm.", minimum=0),
)

# option name -> its default
DEFAULTS: dict[str, Any] = {o.name: o.default for o in OPTIONS}
