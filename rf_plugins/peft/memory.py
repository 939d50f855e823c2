"""How much of a training step fits on the device: the micro-batch token budget and whether
gradient checkpointing is needed, from free accelerator memory and the model's shapes.

Pure arithmetic, no torch: the trainer feeds it ``torch.cuda.mem_get_info`` and the model's
config; rf-doctor (through ``memory_plan``) feeds it the same for a model it has not loaded;
the tests feed it the memory of an 80 GB H100, a 141 GB H200 and a 24 GB card.

Activation figures are bytes kept for the backward pass per token and decoder layer, measured
on a CPU with ``torch.autograd.graph.saved_tensors_hooks`` (bf16, LoRA r=16 on all linear
layers, parameters excluded) for five Qwen2 shapes (hidden 576-2048) and fitted as
a * hidden + b * intermediate + c * kv_dim (residual under 0.5 KB per token and layer):

- dropout 0:    36.2 * hidden + 10.1 * intermediate + 4.65 * kv_dim
- dropout > 0:  48.2 * hidden + 14.1 * intermediate + 4.65 * kv_dim (peft keeps a dropped-out
  copy of every adapted layer's input: about 37% more for Qwen2.5-1.5B's shapes)
- with gradient checkpointing: 4 * hidden per layer, plus one layer's full activations while
  that layer is recomputed.

For Qwen2.5-Coder-1.5B (28 layers, hidden 1536, intermediate 8960) that is 5.6 MB per token
without checkpointing (dropout 0.15) and 0.4 MB with it. A GPU's attention kernels keep a
little less than the CPU's (no attention matrix is kept by either); these are not GPU
measurements. The output layer runs on completion positions only; each costs about
16 * vocab bytes (the float32 logits, their log-softmax, and the gradients of both).

These figures and the plan's margins are the named constants below, each with the GPU
measurement that replaces it: the first GPU numbers go there and nowhere else.
"""

from __future__ import annotations

from dataclasses import dataclass
from types import SimpleNamespace

from rf_core.api import TRAIN_DEFAULTS
from rf_plugins.peft.options import CPU_TOKENS, DEFAULTS

GIB = 1 << 30

# -- The plan's fitted and estimated values, all here ------------------------------------------
# None was measured on a GPU. Each says where it comes from and which GPU measurement replaces
# it; rf-train's report gives those: peak_gpu_allocated_bytes, peak_gpu_reserved_bytes and the
# largest micro-batch that ran (largest_micro_batch_tokens, _rows), with micro_batch_tokens and
# grad_checkpointing beside them. The peaks include the weights and the adapter's state:
# subtract params * 2 + LoRA params * LORA_STATE_BYTES to get the activations.

# Activation bytes per padded token and decoder layer, 16-bit weights, as coefficients of
# (hidden, intermediate, kv_dim). CPU fit (see the module docstring). GPU: the activations at
# checkpointing off, over largest_micro_batch_tokens * layers, for a few micro-batch sizes and
# two shapes (0.5B, 1.5B), once with dropout 0 and once above 0.
ACT_NO_DROPOUT = (36.2, 10.1, 4.65)
ACT_DROPOUT = (48.2, 14.1, 4.65)
# With checkpointing, bytes kept per hidden unit per layer (each layer's input). CPU fit. GPU:
# the same measurement with checkpointing on (one layer's full activations added on top).
CKPT_PER_HIDDEN = 4.0
# Output layer per completion position and vocabulary entry: float32 logits, their
# log-softmax and the gradients of both (4 x 4 bytes). Estimate from the dtypes. GPU: peak
# allocated over completion tokens at a fixed padded size.
LOGIT_BYTES_PER_VOCAB = 16
# AdamW on fp32 adapter weights: the weight, its gradient and two moments. Exact by count.
LORA_STATE_BYTES = 16
# Share of free memory (after what the run still allocates) the plan spends. Estimate. GPU:
# peak_gpu_reserved_bytes against the free memory at start, for a run with no OOM retries.
USABLE_SHARE = 0.85
# Held back from that for allocator fragmentation and kernels' workspaces (cuBLAS, attention).
# Estimate. GPU: peak_gpu_reserved_bytes minus peak_gpu_allocated_bytes.
RESERVE_BYTES = GIB
# Share of the spendable memory given to output-layer positions (the completion budget), the
# rest to the decoder's activations. Estimate. GPU: the completion tokens of the largest
# micro-batch against the budget, with the logits' share of the peak.
LOGIT_SHARE = 0.2
# Fewer padded tokens per micro-batch than this run the GPU below its speed, which costs more
# than checkpointing's extra forward pass, so "auto" checkpoints instead. Estimate. GPU:
# training tok/s against micro-batch tokens (bench/train_bench.py), where the curve flattens.
EFFICIENT_TOKENS = 4096
# Largest token budget planned, and the budget's rounding. Choices, not measurements.
MAX_TOKENS = 131072
GRANULE = 256


@dataclass(frozen=True)
class ModelShape:
    """The sizes of a decoder that the plan reads: layers, widths, vocabulary, tied head."""

    layers: int
    hidden: int
    intermediate: int
    vocab: int
    kv_dim: int
    tied: bool = True

    @classmethod
    def from_config(cls, cfg) -> "ModelShape":
        """From a transformers config, or its config.json as a dict."""
        if isinstance(cfg, dict):
            cfg = SimpleNamespace(**(cfg.get("text_config") or cfg))
        cfg = getattr(cfg, "text_config", None) or cfg
        hidden = cfg.hidden_size
        heads = cfg.num_attention_heads
        kv_heads = getattr(cfg, "num_key_value_heads", None) or heads
        head_dim = getattr(cfg, "head_dim", None) or hidden // heads
        return cls(layers=cfg.num_hidden_layers, hidden=hidden,
                   intermediate=getattr(cfg, "intermediate_size", None) or 4 * hidden,
                   vocab=cfg.vocab_size, kv_dim=kv_heads * head_dim,
                   tied=bool(getattr(cfg, "tie_word_embeddings", True)))

    @property
    def params(self) -> int:
        """Parameters of a Llama/Qwen2-style decoder (biases ignored)."""
        h, i, kv = self.hidden, self.intermediate, self.kv_dim
        layer = h * h * 2 + h * kv * 2 + 3 * h * i + 2 * h
        return self.layers * layer + self.vocab * h * (1 if self.tied else 2) + h

    def lora_params(self, rank: int) -> int:
        """Adapter parameters for LoRA of ``rank`` on every linear layer of every block."""
        h, i, kv = self.hidden, self.intermediate, self.kv_dim
        per_layer = rank * ((h + h) * 2 + (h + kv) * 2 + (h + i) * 3)
        return self.layers * per_layer

    def activation_bytes(self, dropout: float, checkpointing: bool,
                         dtype_bytes: int = 2) -> float:
        """Bytes per padded token kept for the backward pass, all layers, at the peak."""
        a, b, c = ACT_DROPOUT if dropout > 0 else ACT_NO_DROPOUT
        layer = a * self.hidden + b * self.intermediate + c * self.kv_dim
        if checkpointing:
            # each layer's input, plus one layer recomputed in full during its backward
            per_token = self.layers * CKPT_PER_HIDDEN * self.hidden + layer
        else:
            # every layer's activations, plus one layer's worth of gradients in flight
            per_token = (self.layers + 1) * layer
        return per_token * dtype_bytes / 2  # fitted at 16 bits; fp32 counted as double

    @property
    def logit_bytes(self) -> int:
        """Bytes per completion position for the output layer and its loss."""
        return LOGIT_BYTES_PER_VOCAB * self.vocab


@dataclass(frozen=True)
class MemoryPlan:
    """The budgets and the checkpointing decision for one device, and why."""

    token_budget: int            # padded tokens (rows x longest row) per micro-batch
    completion_budget: int       # completion tokens (output-layer rows) per micro-batch
    checkpointing: bool
    budget_without_checkpointing: int
    available_bytes: int         # memory for activations and logits
    reason: str

    def as_dict(self) -> dict:
        """The plan as rf-doctor prints it."""
        return {"micro_batch_tokens": self.token_budget,
                "completion_tokens": self.completion_budget,
                "grad_checkpointing": self.checkpointing,
                "budget_without_checkpointing": self.budget_without_checkpointing,
                "available_gb": round(self.available_bytes / 1e9, 2), "reason": self.reason}


def plan_memory(free_bytes: int, shape: ModelShape, *, pending_bytes: int = 0,
                dropout: float = DEFAULTS["dropout"], mode: str = "auto",
                longest: int = TRAIN_DEFAULTS.max_len,
                dtype_bytes: int = 2, efficient_tokens: int = EFFICIENT_TOKENS,
                usable: float = USABLE_SHARE, reserve_bytes: int = RESERVE_BYTES,
                logit_share: float = LOGIT_SHARE, max_tokens: int = MAX_TOKENS,
                granule: int = GRANULE) -> MemoryPlan:
    """The micro-batch budgets and the checkpointing decision for one device.

    ``free_bytes``: free device memory now; ``pending_bytes``: what the run will still
    allocate besides activations (the weights when not loaded yet, the adapter's gradients
    and optimizer state). Of what is left, ``usable`` minus ``reserve_bytes`` (allocator
    fragmentation, kernels' workspaces) is spent: ``logit_share`` on output-layer positions,
    the rest on the decoder's activations.

    mode "auto" turns checkpointing on when the budget without it is below
    max(``longest``, ``efficient_tokens``): one longest example must fit, and micro-batches
    smaller than ``efficient_tokens`` would run the GPU below its speed, which costs more than
    checkpointing's extra forward pass (about a third more compute).
    """
    if mode not in ("auto", "on", "off"):
        raise ValueError(f"mode must be auto, on or off, not {mode!r}")
    available = int(max(0, free_bytes - pending_bytes) * usable - reserve_bytes)
    available = max(available, 0)
    act = available * (1 - logit_share)
    completion = _round_down(int(available * logit_share / shape.logit_bytes), 16)

    def budget(ckpt: bool) -> int:
        """Padded tokens that fit the activations' share, with or without checkpointing."""
        tokens = int(act / shape.activation_bytes(dropout, ckpt, dtype_bytes))
        return min(max_tokens, _round_down(tokens, granule))

    plain = budget(False)
    need = max(longest, efficient_tokens)
    if mode == "on":
        ckpt, why = True, "--grad-checkpointing on"
    elif mode == "off":
        ckpt, why = False, "--grad-checkpointing off"
    elif plain >= need:
        ckpt, why = False, (f"{plain:,} tokens fit without checkpointing "
                            f"(at least {need:,} wanted)")
    else:
        ckpt, why = True, (f"only {plain:,} tokens fit without checkpointing "
                           f"(at least {need:,} wanted)")
    tokens = budget(True) if ckpt else plain
    if tokens < longest:
        why += f"; warning: the longest example ({longest:,} tokens) may not fit"
    return MemoryPlan(token_budget=tokens, completion_budget=completion, checkpointing=ckpt,
                      budget_without_checkpointing=plain, available_bytes=available,
                      reason=why)


def _round_down(n: int, granule: int) -> int:
    return max(0, n // granule * granule)


def plan_before_loading(free_bytes: int, shape: ModelShape, *, rank: int = DEFAULTS["rank"],
                        dtype_bytes: int = 2, **options) -> MemoryPlan:
    """``plan_memory`` for a model not loaded yet: its weights and the adapter's weights,
    gradients and AdamW moments still to be allocated."""
    pending = shape.params * dtype_bytes + shape.lora_params(rank) * LORA_STATE_BYTES
    return plan_memory(free_bytes, shape, pending_bytes=pending, dtype_bytes=dtype_bytes,
                       **options)


def memory_plan(config: dict, *, free_bytes: int | None, max_len: int, rank: int,
                dropout: float) -> dict:
    """The trainer's micro-batch budget and checkpointing decision for a model not loaded yet,
    from its config.json: from ``free_bytes`` of GPU memory, or the fixed CPU budget when
    there is no GPU (None)."""
    if free_bytes is None:
        return {"device": "cpu", "micro_batch_tokens": CPU_TOKENS, "completion_tokens": None,
                "grad_checkpointing": False,
                "reason": "on a CPU the budget is fixed and auto means off"}
    plan = plan_before_loading(free_bytes, ModelShape.from_config(config), rank=rank,
                               dropout=dropout, longest=max_len)
    return {"device": "cuda", "free_gb": round(free_bytes / 1e9, 1), **plan.as_dict()}
