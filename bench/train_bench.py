"""Training throughput: rf-train's peft trainer against a plain Hugging Face `Trainer`, in one run.

Both train a LoRA adapter (r=16, alpha=32, dropout 0.15, all-linear) on the same `example`
records (Spider train gold SQL through `rf-data spider | rf-inject`, else the demo benchmark),
from the same base model, with the same lr, epochs, batch size, warm-up share, weight decay,
gradient clipping and AdamW. Each example is tokenised with rf_core.model.chat.encode_example (the
chat template; the completion ends with the end-of-turn token) and only completion tokens carry
loss. They differ in how batches are built and the loss computed:

- rf-train: length-grouped optimizer steps, split into micro-batches under a padded-token
  budget; the output layer runs on completion positions only.
- HF Trainer: random batches padded to the longest in the batch (DataCollatorForSeq2Seq,
  train_sampling_strategy="random", i.e. no length grouping), logits for every position, loss
  from `labels` (-100 on the prompt and on padding).

A third row, rf-train's dpo trainer, trains the same LoRA on preference pairs built from the
same examples (chosen: an example's answer; rejected: the next example's answer, a wrong one
for that question), `--dpo-pairs` of them: two sequences per pair, plus one forward pass per
sequence without gradients for the reference log-probabilities before training (not counted
in its row's forward passes, tokens or wall time; its end-to-end time includes it). Its mean
loss is the DPO loss, not comparable with the other rows'.

    python bench/train_bench.py --model smollm2-135m --examples 16          # CPU, a quick look
    python bench/train_bench.py --model qwen2.5-coder-1.5b --examples 1024  # GPU (bf16)

MFU = 6 * N * real tokens / wall / peak FLOP/s, with N the total parameter count of the base
model (embeddings included, tied weights once), the usual 6N FLOPs/token approximation: it
ignores attention FLOPs, the LoRA matrices, the frozen weights' skipped weight-gradient and
rf-train's skipped output layer on prompt positions, so it measures useful work per second,
not what the hardware executed.
"""

from __future__ import annotations

import argparse
import gc
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

LORA = {"rank": 16, "alpha": 32.0, "dropout": 0.15, "target": "all-linear"}
WARMUP = 0.1
WEIGHT_DECAY = 0.01
MAX_GRAD_NORM = 1.0
H100_BF16_DENSE_TFLOPS = 989.0


def say(message: str) -> None:
    print(f"train_bench: {message}", file=sys.stderr, flush=True)


def _tool(name: str) -> str:
    here = Path(sys.executable).parent / name
    return str(here) if here.exists() else name


def load_examples(n: int, seed: int, spider_root: str | None,
                  which: str = "auto") -> tuple[list[dict], str]:
    """`rf-data spider --split train --limit N | rf-inject` (demo train when Spider is absent
    or ``which`` is "demo")."""
    spider = Path(spider_root or os.environ.get("RF_SPIDER_ROOT")
                  or ROOT.parent / "shared" / "spider")
    if which == "spider" and not (spider / "train_spider.json").is_file():
        raise SystemExit(f"train_bench: Spider not found at {spider}")
    if which != "demo" and (spider / "train_spider.json").is_file():
        data = [_tool("rf-data"), "spider", "--root", str(spider), "--split", "train",
                "--limit", str(n), "--seed", str(seed)]
        source = "Spider train"
    else:
        data = [_tool("rf-data"), "demo", "--split", "train"]
        source = "demo train" + (" (Spider not found)" if which != "demo" else "")
    producer = subprocess.Popen(data, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    inject = subprocess.run([_tool("rf-inject")], stdin=producer.stdout, capture_output=True)
    producer.stdout.close()
    err = producer.stderr.read().decode(errors="replace")
    if producer.wait() != 0 or inject.returncode != 0:
        raise SystemExit(f"building examples failed:\n{err}\n"
                         f"{inject.stderr.decode(errors='replace')}")
    examples = [r for r in map(json.loads, inject.stdout.decode().splitlines())
                if r.get("kind") == "example"]
    if source.startswith("demo"):
        examples = examples[:n]
    return examples, source


class Counter:
    """Real (non-pad) and padded token slots of every forward pass (none while paused)."""

    def __init__(self):
        self.real = self.slots = self.forwards = 0
        self.largest = (0, 0)  # the largest forward: (padded token slots, rows)
        self.paused = False

    def add(self, mask) -> None:
        if self.paused:
            return
        self.real += int(mask.sum())
        self.slots += mask.numel()
        self.forwards += 1
        self.largest = max(self.largest, (mask.numel(), mask.shape[0]))


def count_parameters(model: str) -> int:
    """The base model's parameter count, from its config on the meta device (no weights are
    read or initialised: a 1.5B model with random weights would take a while on a CPU)."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    from rf_core.model.loading import config_folder, resolve

    config = AutoConfig.from_pretrained(str(config_folder(resolve(model))))
    with torch.device("meta"):
        return sum(p.numel() for p in AutoModelForCausalLM.from_config(config).parameters())


def sync(device) -> None:
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize(device)


def reset_peak(device) -> None:
    import torch

    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)


def peak_mb(device) -> float | None:
    import torch

    return torch.cuda.max_memory_allocated(device) / 2**20 if device.type == "cuda" else None


def warm_up(args, device, dtype) -> None:
    """One forward/backward outside the timings: CUDA context, cuBLAS, allocator, thread pool."""
    import torch

    from rf_core.model.loading import load

    tok, model = load(args.model, dtype=dtype, device=device)
    model.train()
    ids = torch.randint(0, len(tok), (2, 64), device=device)
    model(input_ids=ids, labels=ids, use_cache=False).loss.backward()
    sync(device)
    del model
    gc.collect()


def preference_pairs(examples: list[dict], n: int) -> list[dict]:
    """Up to ``n`` pair records from the examples: each example's answer is chosen, the next
    different answer in the list is rejected."""
    pairs = []
    for i, ex in enumerate(examples):
        other = next((o["completion"] for o in examples[i + 1:] + examples[:i]
                      if o["completion"] != ex["completion"]), None)
        if other is None or len(pairs) >= n:
            continue
        pairs.append({"schema_version": 1, "kind": "pair", "task_id": ex.get("task_id"),
                      "messages": ex["messages"], "chosen": ex["completion"],
                      "rejected": other, "source": "gold", "weight": 1,
                      **({"db_id": ex["db_id"]} if ex.get("db_id") else {})})
    return pairs


def run_rf(examples, args, device, tmp: Path, trainer: str = "peft") -> dict:
    from rf_plugins.dpo import objective as dpo_objective
    from rf_plugins.dpo.trainer import DpoTrainer
    from rf_plugins.peft import model as parts
    from rf_plugins.peft.trainer import PeftTrainer

    counter = Counter()
    original, reference = parts.collate, dpo_objective.reference_logprobs

    def counting_collate(batch, pad_id, dev):
        out = original(batch, pad_id, dev)
        counter.add(out[1])
        return out

    def uncounted_reference(*a, **kw):  # the dpo trainer's reference pass: not training
        counter.paused = True
        try:
            return reference(*a, **kw)
        finally:
            counter.paused = False

    reset_peak(device)
    parts.collate = counting_collate
    dpo_objective.reference_logprobs = uncounted_reference
    impl = DpoTrainer() if trainer == "dpo" else PeftTrainer()
    try:
        start = time.perf_counter()
        result = impl.train(
            examples, base=args.model, out=str(tmp / f"{trainer}-adapter"), rank=LORA["rank"],
            alpha=LORA["alpha"], dropout=LORA["dropout"], target=LORA["target"], lr=args.lr,
            epochs=args.epochs, warmup=WARMUP, weight_decay=WEIGHT_DECAY,
            batch_size=args.batch_size, micro_batch_tokens=args.micro_batch_tokens,
            max_len=args.max_len, seed=args.seed, dtype=args.dtype,
            device=device.type, max_grad_norm=MAX_GRAD_NORM, save_every=0,
            report=lambda m: say(f"rf-train: {m}"))
        end_to_end = time.perf_counter() - start
    finally:
        parts.collate, dpo_objective.reference_logprobs = original, reference
    if result["tokens"] != counter.real:
        say(f"warning: rf-train reports {result['tokens']} tokens, the bench counted "
            f"{counter.real}")
    losses = result["loss_curve"]
    return {"wall": result["wall_s"], "end_to_end": end_to_end, "steps": result["steps"],
            "forwards": counter.forwards, "real": counter.real, "slots": counter.slots,
            "loss": sum(losses) / len(losses), "last_loss": losses[-1],
            "peak": peak_mb(device), "budget": result.get("micro_batch_tokens"),
            "largest": counter.largest,
            "ckpt": result.get("grad_checkpointing"), "oom": result.get("oom_retries"),
            "margin": result.get("reward_margin"), "accuracy": result.get("reward_accuracy")}


def run_hf(examples, args, device, dtype, tmp: Path) -> dict:
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import (DataCollatorForSeq2Seq, PrinterCallback, Trainer,
                              TrainingArguments)
    from transformers.utils import logging as hf_logging

    from rf_core.model.loading import end_of_turn_id, load
    from rf_plugins.peft.batching import encode_examples

    hf_logging.set_verbosity_error()
    reset_peak(device)
    start = time.perf_counter()
    tok, model = load(args.model, dtype=dtype, device=device)
    eot = end_of_turn_id(tok)
    if tok.pad_token_id is None:
        tok.pad_token = tok.convert_ids_to_tokens(eot)
    tok.padding_side = "right"
    encoded, _ = encode_examples(examples, tok, eot, args.max_len, lambda m: None)
    features = [{"input_ids": e.input_ids, "attention_mask": [1] * len(e.input_ids),
                 "labels": [-100] * e.n_prompt + e.input_ids[e.n_prompt:]} for e in encoded]
    torch.manual_seed(args.seed)
    peft_model = get_peft_model(model, LoraConfig(
        r=LORA["rank"], lora_alpha=LORA["alpha"], lora_dropout=LORA["dropout"],
        target_modules=LORA["target"], task_type="CAUSAL_LM"))
    pad_collator = DataCollatorForSeq2Seq(tok, padding="longest", label_pad_token_id=-100,
                                          return_tensors="pt")
    counter = Counter()

    def collate(batch):
        out = pad_collator(batch)
        counter.add(out["attention_mask"])
        return out

    steps = args.epochs * math.ceil(len(features) / args.batch_size)
    # transformers 5.2x renamed gradient_checkpointing; 5.17 has only the old name
    ckpt_name = ("activation_checkpointing" if "activation_checkpointing"
                 in TrainingArguments.__dataclass_fields__ else "gradient_checkpointing")
    targs = TrainingArguments(
        **{ckpt_name: args.hf_ckpt, f"{ckpt_name}_kwargs": {"use_reentrant": False}},
        output_dir=str(tmp / "hf-out"), per_device_train_batch_size=args.batch_size,
        gradient_accumulation_steps=1, num_train_epochs=args.epochs, learning_rate=args.lr,
        weight_decay=WEIGHT_DECAY, lr_scheduler_type="cosine",
        warmup_steps=int(round(WARMUP * steps)), max_grad_norm=MAX_GRAD_NORM,
        optim="adamw_torch", train_sampling_strategy="random", bf16=device.type == "cuda"
        and dtype == torch.bfloat16, use_cpu=device.type != "cuda", seed=args.seed,
        data_seed=args.seed, dataloader_num_workers=0, remove_unused_columns=False,
        save_strategy="no", eval_strategy="no", logging_strategy="no", report_to="none",
        disable_tqdm=True)
    trainer = Trainer(model=peft_model, args=targs, train_dataset=features,
                      data_collator=collate)
    trainer.remove_callback(PrinterCallback)  # keep stdout for the report
    sync(device)
    t0 = time.perf_counter()
    out = trainer.train()
    sync(device)
    wall = time.perf_counter() - t0
    result = {"wall": wall, "end_to_end": time.perf_counter() - start,
              "steps": out.global_step, "forwards": counter.forwards, "real": counter.real,
              "slots": counter.slots, "loss": out.training_loss, "last_loss": None,
              "peak": peak_mb(device), "largest": counter.largest}
    del trainer, peft_model, model
    gc.collect()
    return result


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default=None,
                    help="default: qwen2.5-coder-1.5b with CUDA, smollm2-135m without")
    ap.add_argument("--examples", type=int, default=None,
                    help="Spider train tasks to draw (default 1024 with CUDA, 64 without)")
    ap.add_argument("--epochs", type=int, default=1)
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--max-len", type=int, default=2048)
    ap.add_argument("--lr", type=float, default=1e-4)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--micro-batch-tokens", type=int, default=None,
                    help="rf-train's padded-token budget per forward (its default: sized "
                         "from free GPU memory; 4096 on CPU)")
    ap.add_argument("--hf-grad-checkpointing", choices=["auto", "on", "off"], default="auto",
                    help="gradient checkpointing for the HF Trainer (auto: on with CUDA, "
                         "where a batch of long examples does not fit without it)")
    ap.add_argument("--dtype", choices=["auto", "bf16", "fp32"], default="auto",
                    help="auto: bf16 on GPU, fp32 on CPU")
    ap.add_argument("--peak-tflops", type=float, default=None,
                    help="peak FLOP/s for MFU, in TFLOP/s (default 989, H100 bf16 dense, with "
                         "CUDA; none on CPU, so MFU prints n/a)")
    ap.add_argument("--spider-root", default=None)
    ap.add_argument("--data", choices=["auto", "spider", "demo"], default="auto",
                    help="examples: Spider train (auto: when present) or the demo benchmark")
    ap.add_argument("--only", default=None, metavar="LIST",
                    help="comma-separated rows to run, of rf, hf and dpo (default all)")
    ap.add_argument("--dpo-pairs", type=int, default=None,
                    help="pairs for the dpo row (default: one per example)")
    ap.add_argument("--order", choices=["rf-first", "hf-first"], default="rf-first")
    ap.add_argument("--no-warm-up", action="store_true")
    ap.add_argument("--threads", type=int, default=None,
                    help="torch CPU threads (default: torch's choice); 1 on a busy CPU")
    ap.add_argument("--json", default=None, metavar="FILE",
                    help="also write the rows and the run's settings to FILE as JSON")
    args = ap.parse_args()
    only = set((args.only or "rf,hf,dpo").split(","))
    if not only or only - {"rf", "hf", "dpo"}:
        ap.error(f"--only takes rf, hf and dpo, not {args.only!r}")

    import peft
    import torch
    import transformers

    from rf_core.model.loading import end_of_turn_id
    from rf_plugins.peft.batching import encode_examples

    if args.threads:
        torch.set_num_threads(args.threads)
    cuda = torch.cuda.is_available()
    device = torch.device("cuda" if cuda else "cpu")
    dtype = {"auto": torch.bfloat16 if cuda else torch.float32, "bf16": torch.bfloat16,
             "fp32": torch.float32}[args.dtype]
    args.dtype = {torch.bfloat16: "bf16", torch.float32: "fp32"}[dtype]
    args.model = args.model or ("qwen2.5-coder-1.5b" if cuda else "smollm2-135m")
    args.examples = args.examples or (1024 if cuda else 64)
    hf_ckpt = args.hf_grad_checkpointing == "on" or (args.hf_grad_checkpointing == "auto"
                                                     and cuda)
    args.hf_ckpt = hf_ckpt
    peak = args.peak_tflops if args.peak_tflops is not None else (
        H100_BF16_DENSE_TFLOPS if cuda else None)

    from rf_core.errors import RFError
    from rf_core.model.loading import resolve

    try:
        resolve(args.model)
    except RFError as exc:
        raise SystemExit(f"train_bench: {exc}") from None
    examples, source = load_examples(args.examples, args.seed, args.spider_root, args.data)
    from transformers import AutoTokenizer

    from rf_core.model.loading import config_folder

    tok = AutoTokenizer.from_pretrained(str(config_folder(resolve(args.model))))
    n_params = count_parameters(args.model)
    encoded, by_db = encode_examples(examples, tok, end_of_turn_id(tok), args.max_len,
                                     lambda m: None)
    too_long = sum(by_db.values())
    if not encoded:
        raise SystemExit("no example fits --max-len")
    # both trainers get only the examples that fit, so neither skips (or reports) any
    examples = [examples[e.index] for e in encoded]
    prompt = sum(e.n_prompt for e in encoded)
    completion = sum(e.n_completion for e in encoded)
    lengths = sorted(len(e.input_ids) for e in encoded)

    what = (torch.cuda.get_device_name(device) if cuda
            else f"CPU, {torch.get_num_threads()} threads")
    print(f"# train_bench: {args.model} ({n_params / 1e6:.1f}M params) on {what}, {dtype}")
    print(f"# {source}: {len(encoded)} examples ({len(encoded) + too_long} drawn, {too_long} "
          f"over --max-len {args.max_len} dropped), {prompt + completion:,} tokens per epoch "
          f"({prompt:,} prompt, "
          f"{completion:,} completion; length min/median/max {lengths[0]}/"
          f"{lengths[len(lengths) // 2]}/{lengths[-1]})")
    print(f"# LoRA r={LORA['rank']} alpha={LORA['alpha']:g} dropout={LORA['dropout']} "
          f"{LORA['target']}; lr {args.lr:g}, {args.epochs} epoch(s), batch size "
          f"{args.batch_size}, warm-up {WARMUP:g}, cosine, AdamW wd {WEIGHT_DECAY}, clip "
          f"{MAX_GRAD_NORM}; rf-train micro-batch budget "
          + (f"{args.micro_batch_tokens} tokens" if args.micro_batch_tokens else
             "sized from free GPU memory" if cuda else "4096 tokens")
          + f"; HF Trainer gradient checkpointing {'on' if hf_ckpt else 'off'}")
    print(f"# torch {torch.__version__}, transformers {transformers.__version__}, "
          f"peft {peft.__version__}, {time.strftime('%Y-%m-%d %H:%M')}")
    print(f"# MFU = 6 x {n_params / 1e6:.1f}M (total base-model params) x real tokens / wall / "
          + (f"{peak:g} TFLOP/s" if peak else "peak (n/a: no --peak-tflops on CPU)"))
    sys.stdout.flush()

    if not args.no_warm_up:
        say("warm-up forward/backward (not timed)")
        warm_up(args, device, dtype)
    runs = [("rf-train (peft trainer)", "rf"), ("HF Trainer, padded, no grouping", "hf")]
    if args.order == "hf-first":
        runs.reverse()
    runs.append(("rf-train (dpo trainer, pairs)", "dpo"))
    pairs = preference_pairs(examples, len(examples) if args.dpo_pairs is None
                             else args.dpo_pairs)
    rows = []
    with tempfile.TemporaryDirectory(prefix="train_bench-") as tmp:
        for name, key in runs:
            if key not in only or (key == "dpo" and not pairs):
                continue
            say(f"running {name}")
            torch.manual_seed(args.seed)
            r = (run_rf(examples, args, device, Path(tmp)) if key == "rf"
                 else run_rf(pairs, args, device, Path(tmp), "dpo") if key == "dpo"
                 else run_hf(examples, args, device, dtype, Path(tmp)))
            say(f"{name}: {r['wall']:.1f} s, {r['real']:,} real tokens")
            rows.append((name, key, r))
            gc.collect()

    base = next((r for _, k, r in rows if k == "hf"), rows[0][2])
    base_tps = base["real"] / base["wall"]
    print()
    print("| method | wall s | steps | forward passes | real tokens | padded slots | pad share "
          "| largest forward (slots x rows) | real tok/s | MFU | mean loss | peak GPU MB "
          "| speed-up vs HF |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    table = []
    for name, key, r in rows:
        tps = r["real"] / r["wall"]
        mfu = 6 * n_params * tps / (peak * 1e12) if peak else None
        mem = f"{r['peak']:,.0f}" if r["peak"] is not None else "-"
        print(f"| {name} | {r['wall']:.1f} | {r['steps']} | {r['forwards']} | {r['real']:,} | "
              f"{r['slots']:,} | {1 - r['real'] / r['slots']:.1%} | "
              f"{r['largest'][0]:,} x {r['largest'][1]} | {tps:,.0f} | "
              f"{'n/a' if mfu is None else format(mfu, '.2%')} | "
              f"{r['loss']:.4f} | {mem} | {tps / base_tps:.2f}x |")
        table.append({"method": name, "trainer": key, "wall_s": round(r["wall"], 2),
                      "end_to_end_s": round(r["end_to_end"], 2), "steps": r["steps"],
                      "forwards": r["forwards"], "real_tokens": r["real"],
                      "padded_slots": r["slots"], "largest_forward_slots": r["largest"][0],
                      "largest_forward_rows": r["largest"][1],
                      "tokens_per_s": round(tps, 1), "mfu": mfu, "mean_loss": r["loss"],
                      "peak_gpu_mb": r["peak"], "micro_batch_budget": r.get("budget"),
                      "grad_checkpointing": r.get("ckpt"), "oom_retries": r.get("oom"),
                      **({"pairs": len(pairs), "reward_margin": r.get("margin"),
                          "reward_accuracy": r.get("accuracy")} if key == "dpo" else {})})
    if args.json:
        Path(args.json).write_text(json.dumps({
            "model": args.model, "params": n_params, "device": what, "dtype": args.dtype,
            "examples": len(encoded), "source": source, "max_len": args.max_len,
            "batch_size": args.batch_size, "epochs": args.epochs,
            "peak_tflops": peak, "rows": table}, indent=1) + "\n")
    print()
    print("wall s: the training loop only (rf-train's own wall_s; HF: trainer.train()); "
          "end to end (load, encode, train, save): "
          + ", ".join(f"{name} {r['end_to_end']:.1f} s" for name, _, r in rows)
          + " (rf-train's includes writing the adapter; HF's saves nothing)")
    for name, key, r in rows:
        if key == "dpo":
            print(f"{name}: {len(pairs)} pairs (chosen: an example's answer, rejected: another "
                  f"example's), 2 sequences each; mean loss is the DPO loss; last epoch's "
                  f"reward margin {r['margin']}, accuracy {r['accuracy']}")
        if key in ("rf", "dpo"):
            print(f"{name}: micro-batches of at most {r['budget']:,} padded tokens, gradient "
                  f"checkpointing {'on' if r['ckpt'] else 'off'}, {r['oom']} out-of-memory "
                  "retries")
    if not cuda:
        import resource

        print(f"peak RSS of the whole bench process: "
              f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:,.0f} MB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
