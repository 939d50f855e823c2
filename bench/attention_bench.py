"""One decode step's attention under a padding mask: what transformers 5.17 does, against the
hf engine's ``_gqa_sdpa``, with real models' head shapes (random tensors, no weights).

Under a mask, transformers 5.17's sdpa attention copies keys and values once per query head
(``repeat_kv``) in every layer at every step; ``_gqa_sdpa`` runs each KV head against its
group of query heads in place. The table also times the cache append of a step (``torch.cat``
of keys and values, per layer), which the engine still does.

    python bench/attention_bench.py                      # CPU, fp32, 32 rows x 512 tokens
    python bench/attention_bench.py --rows 64 --context 1024 --dtype bf16   # GPU

Bytes are what a step writes beyond the attention output, per layer and for all layers.
"""

from __future__ import annotations

import argparse
import time
from types import SimpleNamespace

# name: (query heads, KV heads, head dim, layers), from the models' config.json
SHAPES = {
    "smollm2-135m": (9, 3, 64, 30),
    "qwen2.5-coder-0.5b": (14, 2, 64, 24),
    "qwen2.5-coder-1.5b": (12, 2, 128, 28),
}


def repeat_kv(x, n: int):
    b, h, s, d = x.shape
    return x[:, :, None].expand(b, h, n, s, d).reshape(b, h * n, s, d)


def timed(fn, repeats: int, device) -> float:
    import torch

    fn()  # warm-up
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    start = time.perf_counter()
    for _ in range(repeats):
        fn()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return (time.perf_counter() - start) / repeats


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=32, help="batch rows (prompts x k)")
    ap.add_argument("--context", type=int, default=512, help="cached tokens per row")
    ap.add_argument("--pad", type=float, default=0.2, help="share of left padding, row 0")
    ap.add_argument("--dtype", choices=["fp32", "bf16"], default="fp32")
    ap.add_argument("--repeats", type=int, default=20)
    ap.add_argument("--models", default=",".join(SHAPES))
    args = ap.parse_args()

    import torch
    import transformers

    from rf_plugins.hf.engine import _gqa_sdpa

    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dtype = {"fp32": torch.float32, "bf16": torch.bfloat16}[args.dtype]
    elem = torch.finfo(dtype).bits // 8
    b, n = args.rows, args.context
    mask = torch.ones(b, 1, 1, n + 1, dtype=torch.bool, device=device)
    mask[0, ..., : int(args.pad * n)] = False  # one left-padded row: the mask cannot be dropped
    what = (torch.cuda.get_device_name(device) if device.type == "cuda"
            else f"CPU, {torch.get_num_threads()} threads")
    print(f"# attention_bench: one decode step, {b} rows x {n} cached tokens, {args.dtype}, "
          f"{what}; torch {torch.__version__}, transformers {transformers.__version__}")
    print()
    print("| model (q/kv heads, dim, layers) | 5.17 under a mask (repeat_kv) | engine "
          "(_gqa_sdpa) | speed-up | extra bytes written / step, 5.17 -> engine | cache "
          "append (cat) / step |")
    print("|---|---:|---:|---:|---:|---:|")
    for name in filter(None, args.models.split(",")):
        hq, hkv, dim, layers = SHAPES[name]
        gen = torch.Generator(device=device).manual_seed(0)
        q = torch.randn(b, hq, 1, dim, generator=gen, device=device, dtype=dtype)
        k = torch.randn(b, hkv, n + 1, dim, generator=gen, device=device, dtype=dtype)
        v = torch.randn_like(k)
        new = torch.randn(b, hkv, 1, dim, generator=gen, device=device, dtype=dtype)
        module = SimpleNamespace(num_key_value_groups=hq // hkv, is_causal=True)
        sdpa = torch.nn.functional.scaled_dot_product_attention

        def old():
            return sdpa(q, repeat_kv(k, hq // hkv), repeat_kv(v, hq // hkv), attn_mask=mask)

        def ours():
            return _gqa_sdpa(module, q, k, v, mask)[0]

        def append():
            return torch.cat([k[:, :, :n], new], dim=-2), torch.cat([v[:, :, :n], new], dim=-2)

        a = old().transpose(1, 2)
        diff = (a - ours()).abs().max().item()
        assert diff < (1e-4 if dtype == torch.float32 else 2e-2), f"{name}: outputs differ {diff}"
        t_old, t_ours, t_cat = (timed(f, args.repeats, device) for f in (old, ours, append))
        copied = 2 * b * hq * (n + 1) * dim * elem * layers  # repeat_kv's keys and values
        cat = 2 * b * hkv * (n + 1) * dim * elem * layers
        print(f"| {name} ({hq}/{hkv}, {dim}, {layers}) | {t_old * layers * 1e3:.1f} ms | "
              f"{t_ours * layers * 1e3:.1f} ms | {t_old / t_ours:.1f}x | "
              f"{copied / 2**20:,.0f} MiB -> 0 | {t_cat * layers * 1e3:.1f} ms, "
              f"{cat / 2**20:,.0f} MiB |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
