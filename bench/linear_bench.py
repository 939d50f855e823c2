"""torch's default linear kernels against oneDNN's packed ones (rf_core.model.onednn), on the
CPU, for the weight shapes of a model's layers and the row counts a run sees: a few rows in a
decoding step, hundreds in a prefill or a training micro-batch.

    python bench/linear_bench.py                       # Qwen2.5-0.5B's shapes
    python bench/linear_bench.py --hidden 1536 --intermediate 8960 --vocab 151936 --kv 256

Prints one row per shape and row count: the median milliseconds of each over --repeats calls
(after one warm-up call), their ratio, and the largest difference between the two outputs
relative to the output's largest value. Random weights: only the shapes matter.
"""

from __future__ import annotations

import argparse
import statistics
import time


def timed(fn, repeats: int) -> float:
    fn()
    times = []
    for _ in range(repeats):
        began = time.perf_counter()
        fn()
        times.append(time.perf_counter() - began)
    return statistics.median(times) * 1e3


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--hidden", type=int, default=896)
    ap.add_argument("--intermediate", type=int, default=4864)
    ap.add_argument("--kv", type=int, default=128, help="width of the k and v projections")
    ap.add_argument("--vocab", type=int, default=151936)
    ap.add_argument("--rows", default="1,4,16,64,400,1600")
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()

    import torch
    import torch.nn.functional as F

    from rf_core.model import onednn

    if not onednn.available():
        raise SystemExit("this torch has no oneDNN packed linear kernels")
    h = args.hidden
    shapes = {"q/o proj": (h, h), "k/v proj": (args.kv, h), "gate/up proj": (args.intermediate, h),
              "down proj": (h, args.intermediate), "lm head": (args.vocab, h)}
    rows = [int(r) for r in args.rows.split(",")]
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, "
          f"CPU capability {torch.backends.cpu.get_cpu_capability()}")
    print("| layer | out x in | rows | torch ms | oneDNN ms | torch / oneDNN | max rel diff |")
    print("|---|---|---:|---:|---:|---:|---:|")
    torch.manual_seed(0)
    for name, (out_f, in_f) in shapes.items():
        layer = torch.nn.Linear(in_f, out_f).requires_grad_(False)
        packed = torch.nn.Linear(in_f, out_f).requires_grad_(False)
        packed.load_state_dict(layer.state_dict())
        onednn.pack_linears(packed)
        for n in rows:
            if name == "lm head" and n > 64:
                continue  # a run computes the output layer on a few positions only
            x = torch.randn(n, in_f)
            with torch.inference_mode():
                a = timed(lambda: F.linear(x, layer.weight, layer.bias), args.repeats)
                b = timed(lambda: packed(x), args.repeats)
                want, got = layer(x), packed(x)
            diff = float((want - got).abs().max() / want.abs().max())
            print(f"| {name} | {out_f} x {in_f} | {n} | {a:.2f} | {b:.2f} | {a / b:.2f} | "
                  f"{diff:.1e} |")


if __name__ == "__main__":
    main()
