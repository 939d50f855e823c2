"""The peft trainer's torch pieces: the completion-only loss, batches as tensors, the LoRA
adapter, gradient checkpointing, and the micro-batch sizing and memory figures of a device.

torch and peft are imported inside the functions: the plugin loads without them.
"""

from __future__ import annotations

import functools
from typing import Any

from rf_core.api import BadOption, RFError
from rf_plugins.peft.batching import Encoded
from rf_plugins.peft.memory import ModelShape, plan_memory
from rf_plugins.peft.options import CPU_TOKENS


class CompletionLoss:
    """Builds the module whose forward returns sum(weight * NLL) over completion tokens.

    The output layer runs only on completion positions: prompts are most of the tokens, and
    the vocabulary projection of a 150k-token vocabulary is the costliest layer there.
    """

    @staticmethod
    def build(peft_model: Any) -> Any:
        """The loss module around ``peft_model`` (a torch ``nn.Module``)."""
        class _CompletionLoss(loss_module_base()):  # type: ignore[misc]
            def forward(self, input_ids, attention_mask, targets, weights):
                """sum(weight * NLL) over the completion tokens of a micro-batch."""
                nll, keep = completion_nll(self.decoder, self.head, input_ids,
                                           attention_mask, targets)
                w = weights[:, None].expand_as(keep)[keep]
                return (nll * w).sum()

        return _CompletionLoss(peft_model)


@functools.cache
def loss_module_base() -> type:
    """The ``nn.Module`` a loss module subclasses: built around the adapted model, it holds
    the model (so DDP sees the adapter's weights), its decoder and its output layer."""
    from torch import nn

    class _OnAdaptedModel(nn.Module):
        def __init__(self, model):
            super().__init__()
            self.model = model
            base = model.get_base_model()
            self.decoder = base.get_decoder()
            self.head = base.get_output_embeddings()

    return _OnAdaptedModel


def completion_nll(decoder: Any, head: Any, input_ids: Any, attention_mask: Any,
                   targets: Any) -> tuple[Any, Any]:
    """The NLL (float32) of every completion token of a micro-batch, in row-major order, and
    the mask of where they are (rows x positions - 1): the decoder runs on every position,
    the output layer ``head`` only on completion positions."""
    from torch import nn

    hidden = decoder(input_ids=input_ids, attention_mask=attention_mask,
                     use_cache=False).last_hidden_state
    # position t predicts token t + 1; targets holds -100 where there is no loss
    h = hidden[:, :-1]
    tgt = targets[:, 1:]
    keep = tgt != -100
    logits = head(h[keep]).float()
    return nn.functional.cross_entropy(logits, tgt[keep], reduction="none"), keep


def collate(batch: list[Encoded], pad_id: int, device: Any) -> tuple[Any, Any, Any, Any]:
    """A micro-batch as tensors on ``device``: ids padded to its longest row, the attention
    mask, the targets (-100 on the prompt and padding) and the examples' weights."""
    import torch

    width = max(len(e.input_ids) for e in batch)
    ids = torch.full((len(batch), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(batch), width), dtype=torch.long)
    targets = torch.full((len(batch), width), -100, dtype=torch.long)
    weights = torch.tensor([e.weight for e in batch], dtype=torch.float32)
    for i, e in enumerate(batch):
        n = len(e.input_ids)
        ids[i, :n] = torch.tensor(e.input_ids)
        mask[i, :n] = 1
        targets[i, e.n_prompt:n] = torch.tensor(e.input_ids[e.n_prompt:])
    return ids.to(device), mask.to(device), targets.to(device), weights.to(device)


def all_finite(model: Any) -> bool:
    """Whether every LoRA weight of ``model`` is finite."""
    import torch

    return all(bool(torch.isfinite(p).all()) for n, p in model.named_parameters()
               if "lora_" in n)


def with_adapter(model: Any, lora: Any, target: str) -> Any:
    """``model`` with the LoRA adapter; a target no module matches is a usage error naming
    the option and the model's linear layers, where peft would raise a ValueError."""
    from peft import get_peft_model
    from torch import nn

    try:
        return get_peft_model(model, lora)
    except ValueError as exc:
        if "target modules" not in str(exc).lower():
            raise
    names = sorted({n.rsplit(".", 1)[-1] for n, m in model.named_modules()
                    if isinstance(m, nn.Linear)} - {"lm_head"})
    raise BadOption(f"option 'target' of trainer 'peft': {target!r} matches no module of the "
                    f"model; its linear layers: {', '.join(names)} (or all-linear)") from None


def enable_checkpointing(peft_model: Any) -> None:
    """Turn gradient checkpointing on (non-reentrant) for the adapted model."""
    base = peft_model.get_base_model()
    kwargs = {"use_reentrant": False}
    if hasattr(base, "activation_checkpointing_enable"):  # transformers >= 5.2x
        base.activation_checkpointing_enable(activation_checkpointing_kwargs=kwargs)
    else:  # the name transformers 5.17 has
        base.gradient_checkpointing_enable(gradient_checkpointing_kwargs=kwargs)
    peft_model.enable_input_require_grads()


def size_micro_batches(peft_model: Any, dev: Any, torch_dtype: Any, dropout: float,
                       mode: str | bool, tokens: int | None,
                       longest: int) -> tuple[int, int | None, bool, str]:
    """(padded-token budget, completion-token budget, checkpointing, why) for this device.

    On a GPU both budgets come from free memory and the model's shapes (``plan_memory``);
    an explicit micro_batch_tokens option replaces the padded-token budget, and "auto" then
    checkpoints only if that budget does not fit without it. On a CPU the budget is
    ``CPU_TOKENS`` and "auto" means off: host memory is not sized.
    """
    import torch

    if isinstance(mode, bool):  # callers of the plugin API before auto existed
        mode = "on" if mode else "off"
    if dev.type != "cuda":
        return (tokens or CPU_TOKENS, None, mode == "on",
                "explicit" if mode != "auto" else "auto is off on a CPU")
    free, _ = torch.cuda.mem_get_info(dev)
    shape = ModelShape.from_config(peft_model.get_base_model().config)
    trainable = sum(p.numel() for p in peft_model.parameters() if p.requires_grad)
    elem = torch.finfo(torch_dtype).bits // 8
    plan = plan_memory(free, shape, pending_bytes=trainable * 12, dropout=dropout,
                       mode=mode, longest=longest, dtype_bytes=elem)
    if not tokens:
        return plan.token_budget, plan.completion_budget, plan.checkpointing, plan.reason
    if mode == "auto":
        ckpt = tokens > plan.budget_without_checkpointing
        why = (f"micro_batch_tokens {tokens:,} against {plan.budget_without_checkpointing:,} "
               "that fit without checkpointing")
        return tokens, plan.completion_budget, ckpt, why
    return tokens, plan.completion_budget, mode == "on", plan.reason


def padded_size(mb: list[Encoded]) -> list[int]:
    """[padded tokens, rows] of a micro-batch of units (an example is a row, a pair two):
    its rows are padded to its longest."""
    rows = sum(e.n_rows for e in mb)
    return [rows * max(e.width for e in mb), rows]


def peak_memory(dev: Any) -> tuple[int | None, int | None]:
    """This process's peak CUDA memory on ``dev`` in bytes, model loading included: what
    tensors held (allocated) and what the allocator held for them, fragmentation included
    (reserved); (None, None) off CUDA."""
    import torch

    if dev.type != "cuda":
        return None, None
    return int(torch.cuda.max_memory_allocated(dev)), int(torch.cuda.max_memory_reserved(dev))


def highest_over_processes(largest: list[int], peak: tuple[int | None, int | None],
                           dev: Any) -> tuple[list[int], tuple[int | None, int | None]]:
    """The largest micro-batch (and its rows) and the peak memory of any process."""
    import torch
    import torch.distributed as dist

    highest = torch.tensor([largest[0], *(p or 0 for p in peak)], device=dev)
    dist.all_reduce(highest, op=dist.ReduceOp.MAX)
    top = highest.tolist()
    # the rows of the process whose micro-batch was the largest
    rows = torch.tensor(largest[1] if largest[0] == top[0] else 0, device=dev)
    dist.all_reduce(rows, op=dist.ReduceOp.MAX)
    allocated, reserved = (None if p is None else v for p, v in zip(peak, top[1:]))
    return [top[0], int(rows)], (allocated, reserved)


def same_on_every_process(examples: list[dict], rank: int, dev: Any) -> None:
    """An RFError unless every process read the same examples (each reads its own FILE: on
    several machines, one copy each). Compared by a 62-bit digest, largest against smallest
    over the processes."""
    import hashlib
    import json

    import torch
    import torch.distributed as dist

    text = json.dumps(examples, sort_keys=True, ensure_ascii=False, default=str)
    digest = int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "big") >> 2
    both = torch.tensor([digest, -digest], dtype=torch.int64, device=dev)
    dist.all_reduce(both, op=dist.ReduceOp.MAX)
    if int(both[0]) != -int(both[1]):
        raise RFError(f"the processes read different examples (this one, rank {rank}: "
                      f"{len(examples)}); give every machine the same FILE")
