"""LoRA dropout side by side: the same examples, seed and settings, dropout 0 against 0.15.

Each adapter is trained with rf-train on gold examples of demo train tasks (`rf-data demo
--split train --limit N --seed 0 | rf-inject`), then measured on demo dev tasks: the mean
loss per completion token of their gold answers (held out), and greedy execution accuracy
(`rf-sample | rf-exec | rf-eval`). The base model is measured the same way.

    python bench/dropout_bench.py --model qwen2.5-coder-0.5b --train 32 --dev 24   # CPU
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def say(message: str) -> None:
    print(f"dropout_bench: {message}", file=sys.stderr, flush=True)


def tool(name: str) -> str:
    here = Path(sys.executable).parent / name
    return str(here) if here.exists() else name


def pipe(*commands: list[str], stdin: bytes = b"") -> bytes:
    data = stdin
    for cmd in commands:
        proc = subprocess.run(cmd, input=data, capture_output=True)
        if proc.returncode != 0:
            raise SystemExit(f"{' '.join(cmd)} failed:\n{proc.stderr.decode()[-2000:]}")
        data = proc.stdout
    return data


def held_out_loss(model: str, adapter: str | None, examples: list[dict]) -> float:
    """Mean negative log-likelihood per completion token (end-of-turn token included)."""
    import torch

    from rf_core.model.loading import end_of_turn_id, load
    from rf_plugins.peft.batching import encode_examples

    tok, mdl = load(model, dtype=torch.float32, device="cpu", adapter=adapter)
    encoded, _ = encode_examples(examples, tok, end_of_turn_id(tok), 1 << 20, lambda m: None)
    total = count = 0.0
    with torch.inference_mode():
        for e in encoded:
            ids = torch.tensor([e.input_ids])
            logits = mdl(input_ids=ids).logits[0, e.n_prompt - 1:-1].float()
            target = ids[0, e.n_prompt:]
            total += float(torch.nn.functional.cross_entropy(logits, target, reduction="sum"))
            count += len(target)
    return total / count


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="qwen2.5-coder-0.5b")
    ap.add_argument("--train", type=int, default=32, help="demo train tasks")
    ap.add_argument("--dev", type=int, default=24, help="demo dev tasks")
    ap.add_argument("--epochs", type=int, default=1)
    ap.add_argument("--lr", type=float, default=2e-4)
    ap.add_argument("--batch-size", type=int, default=4)
    ap.add_argument("--dropouts", default="0,0.15")
    ap.add_argument("--dtype", choices=["auto", "bf16", "fp32"], default="auto",
                    help="rf-train's --dtype (bf16 halves its memory on a CPU)")
    ap.add_argument("--max-new-tokens", type=int, default=96)
    args = ap.parse_args()

    train = pipe([tool("rf-data"), "demo", "--split", "train", "--values", "0", "--limit",
                  str(args.train), "--seed", "0"], [tool("rf-inject")])
    dev_tasks = pipe([tool("rf-data"), "demo", "--split", "dev", "--values", "0", "--limit",
                      str(args.dev), "--seed", "0"])
    dev_examples = [json.loads(line) for line in pipe([tool("rf-inject")],
                                                      stdin=dev_tasks).splitlines()]
    rows = []
    with tempfile.TemporaryDirectory(prefix="dropout_bench-") as tmp:
        runs: list[tuple[str, str | None, dict]] = [("base model", None, {})]
        for d in args.dropouts.split(","):
            out = str(Path(tmp) / f"adapter-{d}")
            say(f"training with dropout {d}")
            rep = json.loads(pipe([tool("rf-train"), "--base", args.model, "--out", out,
                                   "-o", "dropout", d, "--epochs", str(args.epochs), "--lr",
                                   str(args.lr), "--batch-size", str(args.batch_size),
                                   "-o", "dtype", args.dtype, "--seed", "0"], stdin=train))
            runs.append((f"dropout {d}", out, rep))
        for name, adapter, rep in runs:
            say(f"evaluating {name}")
            loss = held_out_loss(args.model, adapter, dev_examples)
            extra = ["--adapter", adapter] if adapter else []
            report = json.loads(pipe(
                [tool("rf-sample"), "-m", args.model, *extra, "--max-new-tokens",
                 str(args.max_new_tokens)], [tool("rf-exec")], [tool("rf-eval")],
                stdin=dev_tasks))
            rows.append((name, rep, loss, report))
    print(f"# dropout_bench: {args.model}; {args.train} demo train tasks (gold), "
          f"{args.dev} demo dev tasks; {args.epochs} epoch(s), lr {args.lr:g}, batch size "
          f"{args.batch_size}, training dtype {args.dtype}, r=16, alpha 32, all-linear; "
          f"{time.strftime('%Y-%m-%d %H:%M')}")
    print()
    print("| adapter | train loss first / last | train wall s | held-out loss per "
          "completion token | dev EX greedy |")
    print("|---|---|---|---|---|")
    for name, rep, loss, report in rows:
        curve = rep.get("loss_curve") or []
        first_last = f"{curve[0]:.3f} / {curve[-1]:.3f}" if curve else ""
        print(f"| {name} | {first_last} | {rep.get('wall_s', '')} | {loss:.4f} | "
              f"{report['ex']:.1f}% ({report['correct']}/{report['scored']}) |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
