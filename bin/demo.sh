#!/usr/bin/env bash
# The model-free half of the loop on the built-in demo benchmark: build the data, verify every
# gold query through the sandboxed executor, vote, evaluate, and write the gold SFT set that
# rf-inject produces for tasks no candidate solved. Outputs go to $OUT (default out/demo).
set -euo pipefail
OUT=${OUT:-out/demo}
mkdir -p "$OUT"

step() { echo "== $*" >&2; }

step "rf-data: demo train and dev tasks"
rf-data demo --split train > "$OUT/train.tasks.jsonl.tmp" && mv "$OUT/train.tasks.jsonl.tmp" "$OUT/train.tasks.jsonl"
rf-data demo --split dev > "$OUT/dev.tasks.jsonl.tmp" && mv "$OUT/dev.tasks.jsonl.tmp" "$OUT/dev.tasks.jsonl"

step "rf-inject: gold SFT examples for the train tasks (none has a candidate yet)"
rf-inject < "$OUT/train.tasks.jsonl" > "$OUT/sft.examples.jsonl.tmp" && mv "$OUT/sft.examples.jsonl.tmp" "$OUT/sft.examples.jsonl"

step "rf-exec: run every dev gold query in the sandbox (tasks carry no candidates yet)"
rf-exec < "$OUT/dev.tasks.jsonl" > "$OUT/dev.exec.jsonl"
rf-eval --markdown "$OUT/report.md" --title "demo dev (no sampler yet)" < "$OUT/dev.exec.jsonl" > "$OUT/report.json"
cat "$OUT/report.md"
