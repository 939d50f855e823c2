#!/usr/bin/env bash
# The GPU acceptance check. Two sizes:
#   --lease  (the default where a GPU is present) one command of at most 560 s for a lent GPU
#            machine, everything from one carried folder: bench/gpu_lease.sh, which it runs
#   --full   the long run below (35-60 minutes on one H100), for a machine of one's own
#
# The full run, written to bench/results/<date>-<gpu>.md:
#   1. env     rf-doctor: torch, CUDA, GPU memory, versions, attention, sampler, train plan
#   2. sample  bench/sample_bench.py: plain generate against every sampler engine present
#              (Spider dev-972 prompts, k=8, T=0.7)
#   3. train   bench/train_bench.py: rf-train against the plain HF Trainer (tok/s, memory, MFU),
#              and rf-train's dpo trainer on preference pairs made from the same examples
#   4. loop    bin/iterate.sh with the spider-h100 settings and fewer train tasks, one
#              iteration: seconds per stage, dev EX greedy and vote@8 for the base and iter 1
#
#   bench/gpu_check.sh --full --model /path/to/qwen2.5-coder-1.5b-folder --spider-root /path/to/spider
#   bench/gpu_check.sh --cpu-smoke            # the full run's parts, tiny sizes, on 2 CPU cores
#
# The model is a transformers folder or an rf-model name. A part that fails is recorded as
# failed and the next one runs; the exit status is 1 if any part failed.
set -euo pipefail

# --lease, or no size named on a GPU machine: the lease-sized check
if [[ " $* " == *" --lease "* ]] || { [[ " $* " != *" --full "* && " $* " != *" --cpu-smoke "* ]] \
    && command -v nvidia-smi > /dev/null && nvidia-smi -L 2> /dev/null | grep -q '^GPU'; }; then
  exec bash "$(dirname "$0")/gpu_lease.sh" "$@"
fi

usage() {
  cat <<'EOF'
usage: bench/gpu_check.sh [--lease | --full] [options]
  --lease             the lease-sized check (bench/gpu_lease.sh --help); the default on a GPU
  --full              the long check below, on a machine of one's own
  --cpu-smoke         tiny sizes on the CPU (demo data, smollm2-135m): checks the plumbing
  --model M           transformers folder or rf-model name
                      (default qwen2.5-coder-1.5b; smollm2-135m with --cpu-smoke)
  --spider-root DIR   Spider 1.0 (default $RF_SPIDER_ROOT, else ../shared/spider)
  --train-size N      train tasks of the loop (default 500; 4 with --cpu-smoke)
  --parts LIST        comma-separated subset of env,sample,train,loop (default all)
  --out FILE          results file (default bench/results/<date>-<gpu>.md)
  --work DIR          where the loop writes its run (default out/gpu-check-<time>)
EOF
}

root=$(cd "$(dirname "$0")/.." && pwd)
SMOKE=0 MODEL= SPIDER=${RF_SPIDER_ROOT:-../shared/spider} TRAIN_SIZE= PARTS=env,sample,train,loop
OUT= WORK=
while (($#)); do
  case $1 in
    --cpu-smoke) SMOKE=1 ;;
    --full) ;;
    --model) MODEL=$2; shift ;;
    --spider-root) SPIDER=$2; shift ;;
    --train-size) TRAIN_SIZE=$2; shift ;;
    --parts) PARTS=$2; shift ;;
    --out) OUT=$2; shift ;;
    --work) WORK=$2; shift ;;
    -h|--help) usage; exit 0 ;;
    *) echo "gpu_check.sh: unknown option '$1'" >&2; usage >&2; exit 2 ;;
  esac
  shift
done

if ! command -v rf-sample > /dev/null && [[ -x $root/.venv/bin/rf-sample ]]; then
  PATH=$root/.venv/bin:$PATH
fi
command -v rf-sample > /dev/null || { echo "gpu_check.sh: rf-* not found: make install" >&2; exit 2; }
# the python that has the project (a `pip install --target DIR` install has none beside rf-*)
PY=
for cand in "$(dirname "$(command -v rf-sample)")/python" "${VIRTUAL_ENV:+$VIRTUAL_ENV/bin/python}" python3; do
  if [[ -n $cand ]] && "$cand" -c 'import rf_core' 2> /dev/null; then PY=$cand; break; fi
done
[[ -n $PY ]] || { echo "gpu_check.sh: no python here imports rf_core (PYTHONPATH for a --target install)" >&2; exit 2; }
export PYTORCH_CUDA_ALLOC_CONF=${PYTORCH_CUDA_ALLOC_CONF:-expandable_segments:True}
log() { printf '[gpu_check %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

stamp=$(date +%Y%m%d-%H%M%S)
WORK=${WORK:-out/gpu-check-$stamp}
mkdir -p "$WORK"
if ((SMOKE)); then
  MODEL=${MODEL:-smollm2-135m} TRAIN_SIZE=${TRAIN_SIZE:-4}
  export CUDA_VISIBLE_DEVICES=  # the CPU, even where a GPU is present
  # one thread: with two on a shared 2-core machine, fp32 decoding stalled
  export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
  doctor_args=(--no-spider)
  sample_args=(--data demo --prompts 4 -k 2 --max-new-tokens 16 --generate-batch 4)
  train_args=(--data demo --examples 6 --batch-size 2 --max-len 4096 --threads 1 --no-warm-up)
  loop_args=(--preset cpu-demo --dataset demo --iterations 1 --train-size "$TRAIN_SIZE"
             --dev-size 4 -k 2 --vote 2 --values 0 --max-new-tokens 16 --epochs 1
             --batch-size 2 --lr 1e-3 --max-len 4096)
else
  MODEL=${MODEL:-qwen2.5-coder-1.5b} TRAIN_SIZE=${TRAIN_SIZE:-500}
  doctor_args=(--spider-root "$SPIDER")
  sample_args=(--data spider --prompts 972 -k 8 --temperature 0.7 --max-new-tokens 128
               --generate-batch 64)
  "$PY" -c 'import vllm' 2> /dev/null && sample_args+=(--samplers vllm)
  train_args=(--data spider --spider-root "$SPIDER" --examples 1024)
  loop_args=(--preset spider-h100 --root "$SPIDER" --iterations 1 --train-size "$TRAIN_SIZE")
fi
export RF_SPIDER_ROOT=$SPIDER

# the environment first: it names the results file and stops a run that cannot work
doctor=$WORK/doctor.json
doctor_start=$(date +%s)
if ! rf-doctor --model "$MODEL" "${doctor_args[@]}" > "$doctor" 2> "$WORK/doctor.txt"; then
  cat "$WORK/doctor.txt" >&2
  log "rf-doctor says something needed is missing; nothing was run"
  exit 1
fi
doctor_wall=$(($(date +%s) - doctor_start))
gpu=$("$PY" -c 'import json, re, sys
info = json.load(open(sys.argv[1]))
name = info["gpus"][0]["name"] if info["gpus"] else "cpu"
print(re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-"))' "$doctor")
((SMOKE)) && gpu=cpu-smoke
OUT=${OUT:-$root/bench/results/$(date +%F)-$gpu.md}
mkdir -p "$(dirname "$OUT")"

results=$OUT.tmp
failed=0
{
  echo "# gpu_check: $MODEL on $gpu, $(date -u '+%Y-%m-%d %H:%M') UTC"
  echo
  echo "Command: \`bench/gpu_check.sh$( ((SMOKE)) && echo ' --cpu-smoke') --model $MODEL\`;"
  echo "mode: $( ((SMOKE)) && echo 'CPU smoke test (tiny sizes; its numbers say nothing about speed)' || echo 'GPU')."
  cpu=$(grep -m1 'model name' /proc/cpuinfo 2> /dev/null | cut -d: -f2- | sed 's/^ *//' || true)
  echo "Machine: $(uname -m), $(getconf _NPROCESSORS_ONLN) CPU core(s)${cpu:+ ($cpu)}, load average $(cut -d' ' -f1-3 /proc/loadavg 2> /dev/null || echo n/a) at the start."
} > "$results"

# part NAME TITLE COMMAND...: run it, keep its stdout (Markdown) and wall time in the results
part() {
  local name=$1 title=$2
  shift 2
  [[ ,$PARTS, == *,$name,* ]] || return 0
  log "$name: $*"
  local start end rc=0
  start=$(($(date +%s) - ${before:-0}))
  "$@" > "$WORK/$name.md" 2> "$WORK/$name.log" || rc=$?
  end=$(date +%s)
  {
    echo
    echo "## $title"
    echo
    if ((rc == 0)); then
      echo "Wall time: $((end - start)) s."
      echo
      cat "$WORK/$name.md"
    else
      echo "FAILED (exit $rc) after $((end - start)) s; the last lines of its log:"
      echo
      echo '```'
      tail -n 20 "$WORK/$name.log"
      echo '```'
    fi
  } >> "$results"
  if ((rc != 0)); then
    failed=1
    log "$name failed (exit $rc): see $WORK/$name.log"
  fi
  return 0
}

doctor_table() {
  echo '```'
  cat "$WORK/doctor.txt"
  echo '```'
}
loop() {
  local run=$WORK/loop
  bash "$root/bin/iterate.sh" --model "$MODEL" --out "$run" "${loop_args[@]}" > /dev/null
  "$PY" "$root/bench/loop_summary.py" "$run"
}

before=$doctor_wall part env "Environment (rf-doctor)" doctor_table
part sample "Sampling: plain generate against the sampler engines" \
  "$PY" "$root/bench/sample_bench.py" --model "$MODEL" "${sample_args[@]}"
part train "Training: rf-train against the HF Trainer; the dpo trainer on pairs" \
  "$PY" "$root/bench/train_bench.py" --model "$MODEL" "${train_args[@]}"
part loop "A shortened loop: bin/iterate.sh ${loop_args[*]}" loop

mv "$results" "$OUT"
log "results: $OUT"
echo "$OUT"
exit "$failed"
