"""Sampling throughput: one row per engine (plain batched `generate`, rf-sample's hf engine,
transformers' continuous batching, and sampler plugins such as vllm end to end), in one run.

Both get the same prompts (Spider dev when present, else the demo benchmark), the same model,
k, temperature and max_new_tokens. Plain `generate` uses left padding and
`num_return_sequences=k`; counted output tokens are the real ones (up to and including the
end-of-turn token), not padded slots.

    python bench/sample_bench.py --model smollm2-135m --prompts 8 -k 8       # CPU
    python bench/sample_bench.py --model qwen2.5-coder-1.5b --prompts 972 -k 8  # GPU
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import resource
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def load_tasks(n: int, seed: int, first: bool, data: str = "auto") -> tuple[list[dict], str]:
    from rf_core.data.dataset import dataset_tasks
    from rf_core.data.tasks import pick
    from rf_core.plugins.manager import get

    spider = Path(os.environ.get("RF_SPIDER_ROOT") or ROOT.parent / "shared" / "spider")
    quiet = lambda m: None  # noqa: E731
    if data == "spider" and not (spider / "dev.json").is_file():
        raise SystemExit(f"sample_bench: Spider not found at {spider} (set RF_SPIDER_ROOT)")
    if data != "demo" and (spider / "dev.json").is_file():
        tasks = list(dataset_tasks(get("datasets", "spider"), "spider", root=str(spider),
                                   split="dev", report=quiet))
        return (tasks[:n] if first else pick(tasks, n, seed)), "Spider dev-972"
    tasks = list(dataset_tasks(get("datasets", "demo"), "demo", root=None, split="dev",
                               report=quiet))
    return (tasks[:n] if first else pick(tasks, n, seed)), "demo dev"


def peak_memory_mb(device) -> float:
    import torch

    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def reset_peak(device) -> None:
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)


def run_engine(model, tok, prompts, args, stops, device, share: bool = True) -> dict:
    import torch

    from rf_plugins.hf.engine import (SamplingConfig, Stats, plan_batches, sample_batch,
                                      token_budget)

    cfg = SamplingConfig(k=args.k, temperature=args.temperature, top_p=args.top_p,
                         max_new_tokens=args.max_new_tokens, stop_ids=tuple(stops),
                         pad_id=tok.pad_token_id if tok.pad_token_id is not None else stops[0],
                         share_at=0.5 if share else 2.0)
    budget = args.batch_tokens or token_budget(model, device, args.max_new_tokens)
    gen = torch.Generator(device=device).manual_seed(0)
    stats = Stats()
    reset_peak(device)
    start = time.perf_counter()
    for batch in plan_batches(prompts, args.k, args.max_new_tokens, budget,
                              args.max_batch_prompts, cfg.share_at):
        sample_batch(model, [prompts[i] for i in batch], cfg, gen, stats)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    wall = time.perf_counter() - start
    return {"wall": wall, "tokens": stats.new_tokens, "sequences": stats.sequences,
            "live": stats.new_tokens / max(stats.row_steps, 1), "batches": stats.batches,
            "prefill": stats.prefill_tokens, "peak": peak_memory_mb(device), "start": 0.0}


def run_generate(model, tok, prompts, args, stops, device) -> dict:
    import torch

    reset_peak(device)
    start = time.perf_counter()
    tokens = sequences = slots = batches = 0
    order = sorted(range(len(prompts)), key=lambda i: len(prompts[i]))
    pad = tok.pad_token_id if tok.pad_token_id is not None else stops[0]
    stop_set = set(stops)
    for s in range(0, len(order), args.generate_batch):
        chunk = [prompts[i] for i in order[s:s + args.generate_batch]]
        width = max(len(p) for p in chunk)
        ids = torch.full((len(chunk), width), pad, dtype=torch.long)
        mask = torch.zeros_like(ids)
        for j, p in enumerate(chunk):
            ids[j, width - len(p):] = torch.tensor(p)
            mask[j, width - len(p):] = 1
        with torch.inference_mode():
            out = model.generate(input_ids=ids.to(device), attention_mask=mask.to(device),
                                 do_sample=args.temperature > 0,
                                 temperature=args.temperature or None, top_p=args.top_p,
                                 top_k=None, max_new_tokens=args.max_new_tokens,
                                 num_return_sequences=args.k, eos_token_id=list(stops),
                                 pad_token_id=pad)
        new = out[:, width:].cpu().tolist()
        for row in new:
            n = next((i + 1 for i, t in enumerate(row) if t in stop_set), len(row))
            tokens += n
        sequences += len(new)
        slots += len(new) * len(new[0]) if new else 0
        batches += 1
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    wall = time.perf_counter() - start
    # num_return_sequences repeats every prompt k times before the prefill
    return {"wall": wall, "tokens": tokens, "sequences": sequences,
            "live": tokens / max(slots, 1), "batches": batches,
            "prefill": args.k * sum(map(len, prompts)), "peak": peak_memory_mb(device),
            "start": 0.0}


def run_cb(model, prompts, args, stops, device) -> dict:
    """transformers' continuous batching (the cb sampler's engine) on the loaded model."""
    import torch

    from rf_plugins.hf.continuous import RunStats, generate

    stats = RunStats()
    reset_peak(device)
    start = time.perf_counter()
    generate(model, prompts, k=args.k, temperature=args.temperature, top_p=args.top_p,
             max_new_tokens=args.max_new_tokens, stop_ids=list(stops), seed=0, stats=stats)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    wall = time.perf_counter() - start
    return {"wall": wall, "tokens": stats.new_tokens, "sequences": stats.sequences,
            "live": None, "batches": None, "prefill": None, "peak": peak_memory_mb(device),
            "start": stats.start_seconds}


def run_plugin(name: str, tasks: list[dict], args) -> dict:
    """A sampler plugin end to end, as rf-sample runs it (vllm: in its own process, so its
    memory is not seen here)."""
    from rf_core.model.sampling import sample_tasks
    from rf_core.plugins.manager import get

    sampler = get("samplers", name)
    notes: list[str] = []

    def report(message: str) -> None:
        notes.append(message)
        print(f"sample_bench: {name}: {message}", file=sys.stderr, flush=True)

    options = {o.name: o.default for o in getattr(sampler, "options", ())}
    start = time.perf_counter()
    out = list(sample_tasks(sampler, [dict(t) for t in tasks], model=args.model, adapter=None,
                            k=args.k, temperature=args.temperature, top_p=args.top_p,
                            max_new_tokens=args.max_new_tokens, seed=0, report=report,
                            **options))
    wall = time.perf_counter() - start
    # the vllm sampler says "engine started in 41.3 s"; other plugins load their model inside
    started = [float(m.group(1)) for n in notes
               if (m := re.search(r"engine started in ([\d.]+) s", n))]
    cands = [c for t in out for c in t["candidates"]]
    # counted as the engine counts: generated tokens plus the end-of-turn token
    tokens = sum((c.get("n_tokens") or 0) + bool(c.get("finished")) for c in cands)
    return {"wall": wall, "tokens": tokens, "sequences": len(cands), "live": None,
            "batches": None, "prefill": None, "peak": None,
            "start": sum(started) if started else None}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="smollm2-135m")
    ap.add_argument("--prompts", type=int, default=8)
    ap.add_argument("-k", type=int, default=8)
    ap.add_argument("--temperature", type=float, default=0.7)
    ap.add_argument("--top-p", type=float, default=1.0)
    ap.add_argument("--max-new-tokens", type=int, default=128)
    ap.add_argument("--generate-batch", type=int, default=8, help="prompts per generate call")
    ap.add_argument("--batch-tokens", type=int, default=None)
    ap.add_argument("--max-batch-prompts", type=int, default=256)
    ap.add_argument("--dtype", choices=["auto", "bf16", "fp32"], default="auto")
    ap.add_argument("--first", action="store_true",
                    help="the first N questions (grouped by database, as rf-data writes "
                         "them) instead of a random sample")
    ap.add_argument("--only", choices=["engine", "engine-unshared", "generate", "cb"],
                    default=None)
    ap.add_argument("--data", choices=["auto", "spider", "demo"], default="auto",
                    help="prompts: Spider dev-972 (auto: when present) or the demo benchmark")
    ap.add_argument("--samplers", default="",
                    help="comma-separated sampler plugins to add as rows, run end to end "
                         "(e.g. vllm)")
    ap.add_argument("--json", default=None, metavar="FILE",
                    help="also write the rows and the run's settings to FILE as JSON")
    args = ap.parse_args()

    import torch
    import transformers

    from rf_core.model.chat import encode_prompt
    from rf_core.model.loading import end_of_turn_ids, load
    from rf_core.model.prompts import task_messages

    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dtype = {"auto": torch.bfloat16 if device.type == "cuda" else torch.float32,
             "bf16": torch.bfloat16, "fp32": torch.float32}[args.dtype]
    began = time.perf_counter()
    tok, model = load(args.model, dtype=dtype, device=device)
    # progress on stderr: a run stopped by a time limit still shows how far it got
    print(f"sample_bench: {args.model} loaded on {device} in {time.perf_counter() - began:.1f} s",
          file=sys.stderr, flush=True)
    tasks, source = load_tasks(args.prompts, 0, args.first, args.data)
    prompts = [encode_prompt(tok, task_messages(t)) for t in tasks]
    print(f"sample_bench: {len(prompts)} prompts from {source}", file=sys.stderr, flush=True)
    stops = end_of_turn_ids(tok)
    what = (torch.cuda.get_device_name(device) if device.type == "cuda"
            else f"CPU, {torch.get_num_threads()} threads")
    print(f"# sample_bench: {args.model} on {what}; {source}, {len(prompts)} prompts "
          f"(mean {sum(map(len, prompts)) / len(prompts):.0f} tokens), k={args.k}, "
          f"T={args.temperature}, max_new_tokens={args.max_new_tokens}, {dtype}")
    print(f"# python {platform.python_version()}, torch {torch.__version__}, "
          f"transformers {transformers.__version__}, {time.strftime('%Y-%m-%d')}")
    rows = []
    if args.only in (None, "generate"):
        rows.append((f"plain generate (batch {args.generate_batch} prompts x k)",
                     run_generate(model, tok, prompts, args, stops, device)))
    if args.only in (None, "engine-unshared"):
        rows.append(("rf-sample hf engine, no prefix sharing",
                     run_engine(model, tok, prompts, args, stops, device, share=False)))
    if args.only in (None, "engine"):
        rows.append(("rf-sample hf engine", run_engine(model, tok, prompts, args, stops,
                                                       device)))
    if args.only in (None, "cb"):
        from rf_plugins.hf.continuous import available

        if available() is None:  # last: it switches the model's attention and back
            rows.append(("transformers continuous batching (cb sampler)",
                         run_cb(model, prompts, args, stops, device)))
        else:
            print(f"# cb: not run ({available()})")
    for name, r in rows:
        print(f"sample_bench: {name}: {r['tokens']:,} tokens in {r['wall']:.1f} s",
              file=sys.stderr, flush=True)
    for name in filter(None, args.samplers.split(",")):
        rows.append((f"rf-sample --sampler {name} (end to end)",
                     run_plugin(name, tasks, args)))
    print()
    prompt_tokens = sum(map(len, prompts))
    # output tok/s over the sampling time: the engine's start-up (building a paged cache,
    # starting a vLLM engine) is its own column; the model load, shared by the in-process
    # rows, is in neither
    print("| method | wall s | engine start s | output tok/s | candidates/s | live share of "
          "decoded rows | prompt tokens prefilled | batches | peak memory MB | speed-up |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    base = None
    table = []
    for name, r in rows:
        sampling = r["wall"] - (r.get("start") or 0.0)
        tps = r["tokens"] / sampling
        base = base or tps
        na = "n/a"
        print(f"| {name} | {r['wall']:.1f} | "
              f"{na if r.get('start') is None else format(r['start'], '.1f')} | {tps:,.0f} | "
              f"{r['sequences'] / sampling:.2f} | "
              f"{na if r['live'] is None else format(r['live'], '.0%')} | "
              f"{na if r['prefill'] is None else format(r['prefill'] / prompt_tokens, '.0%')} | "
              f"{na if r['batches'] is None else r['batches']} | "
              f"{na if r['peak'] is None else format(r['peak'], ',.0f')} | {tps / base:.2f}x |")
        table.append({"method": name, "wall_s": round(r["wall"], 2),
                      "engine_start_s": r.get("start"), "output_tokens": r["tokens"],
                      "sequences": r["sequences"], "tokens_per_s": round(tps, 1),
                      "live_share": r["live"], "prefill_tokens": r["prefill"],
                      "batches": r["batches"], "peak_memory_mb": r["peak"]})
    if args.json:
        import json

        Path(args.json).write_text(json.dumps({
            "model": args.model, "device": what, "dtype": str(dtype), "source": source,
            "prompts": len(prompts), "prompt_tokens": prompt_tokens, "k": args.k,
            "temperature": args.temperature, "max_new_tokens": args.max_new_tokens,
            "rows": table}, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
