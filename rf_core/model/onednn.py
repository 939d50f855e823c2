"""Frozen linear layers on oneDNN's prepacked fp32 kernels, on a CPU.

torch runs ``nn.Linear`` on a CPU through a BLAS ``sgemm``, which repacks the weight on every
call. That is most of what a decoding step costs: with a few rows the weight is read and
copied whole for a handful of rows, and on AMD CPUs the BLAS also leaves AVX-512 unused. oneDNN
(part of every x86 torch build) can reorder a weight once into its own blocked layout and then
run fp32 matmuls on it directly; torch's own CPU compiler does the same for frozen weights.
``bench/linear_bench.py`` measures both on the model's shapes.

``pack_linears`` swaps every frozen fp32 ``nn.Linear`` of a model on the CPU for a
``PackedLinear``: the same module with the reordered weight beside its own. It computes the
same fp32 arithmetic in another order, so results differ from torch's default kernels in the
last bits (about 1e-6 relative), never in precision. Gradients still flow to the layer's input
(LoRA training freezes the base weights and trains small layers beside them): the backward
pass runs on a second packed copy, of the transposed weight, made on first use. A trainable
weight, another dtype or another device is left as it was. The packed copy is taken once:
pack after the weights are final (a sampler merges its adapter first); a weight changed in
place later (peft's ``merge_and_unload`` when the trainer writes a merged model) is saved as
changed but no longer computed with.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any


def available() -> bool:
    """Whether this torch has oneDNN's packed linear kernels (x86 builds do)."""
    return _ops() is not None


@lru_cache(maxsize=None)
def _ops() -> Any:
    import torch

    if not torch.backends.mkldnn.is_available():
        return None
    try:
        ops = torch.ops.mkldnn
        probe = torch.ones(2, 2)
        packed = ops._reorder_linear_weight(probe, None)
        ops._linear_pointwise(probe, packed, None, "none", [], "")
    except (AttributeError, RuntimeError):
        return None
    return ops


def _pack(weight: Any) -> Any:
    return _ops()._reorder_linear_weight(weight.detach(), None)


def _run(x: Any, packed: Any, bias: Any) -> Any:
    return _ops()._linear_pointwise(x.contiguous(), packed, bias, "none", [], "")


@lru_cache(maxsize=None)
def _linear_fn() -> type:
    import torch

    class LinearFn(torch.autograd.Function):
        """y = x W^T + b on the packed weight; the gradient of x only (W and b are frozen)."""

        @staticmethod
        def forward(ctx, x, module):
            ctx.module = module
            return _run(x, module.packed, module.bias)

        @staticmethod
        def backward(ctx, grad):
            module = ctx.module
            if module.packed_t is None:  # dx = grad W: a linear layer of W^T
                module.packed_t = _pack(module.weight.t().contiguous())
            return _run(grad, module.packed_t, None), None

    return LinearFn


@lru_cache(maxsize=None)
def packed_linear_class() -> type:
    """``nn.Linear`` whose forward runs on the packed weight (see the module's docstring)."""
    import torch
    from torch import nn

    class PackedLinear(nn.Linear):
        packed: Any    # the weight in oneDNN's layout (set by pack_linears)
        packed_t: Any  # its transpose, for the input's gradient (made on first use)

        def forward(self, x):
            if (self.weight.requires_grad or x.dtype != torch.float32
                    or x.device.type != "cpu"):  # trained after all, or moved: torch's own
                return super().forward(x)
            if torch.is_grad_enabled() and x.requires_grad:
                return _linear_fn().apply(x, self)
            return _run(x, self.packed, self.bias)

    return PackedLinear


def pack_linears(model: Any) -> int:
    """Swap every frozen (``requires_grad`` False) fp32 ``nn.Linear`` of ``model`` on the CPU
    for a ``PackedLinear``, in place; return how many. Nothing changes where oneDNN is
    missing. A sampler freezes its whole model first (``model.requires_grad_(False)``)."""
    import torch
    from torch import nn

    if not available():
        return 0
    cls = packed_linear_class()
    n = 0
    for module in model.modules():
        if type(module) is not nn.Linear:
            continue
        weight = module.weight
        if weight.requires_grad or weight.dtype != torch.float32 or weight.device.type != "cpu":
            continue
        module.packed = _pack(weight)
        module.packed_t = None
        module.__class__ = cls
        n += 1
    return n
