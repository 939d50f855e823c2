#!/usr/bin/env bash
# The GPU acceptance check sized for one lease of a GPU machine: one command of at most
# 560 s wall (TOTAL below), no network, everything it needs in one carried folder that
# bench/gpu_pack.sh makes. Each part runs under its own `timeout` with the budget written
# below; a part that fails or runs out of time is recorded as such and the next part still
# runs. The model is the real architecture with random weights (`random:DIR`): tokens/s,
# memory and MFU are real, accuracy is not (real weights: bench/gpu_weights.sh).
#
#   bench/gpu_check.sh --lease                      # on the GPU machine (the default there)
#   bench/gpu_check.sh --lease --cpu-smoke --model random:DIR   # the same parts, tiny, on a CPU
#
# Results go to $OUT when it is set (the device tool brings back what is written there), else
# to --out DIR, else to the work folder: results.md, results.json, loop.tar.gz (the loop's
# history, timings and reports) and logs.tar.gz (every part's output and log).
set -euo pipefail

TOTAL=560    # seconds: one device command may run 600 s; the rest is start-up and copying back
RESERVE=15   # seconds kept back for writing the results after the last part
# Each part's budget in seconds, in the order they run (--budget PART=S changes one).
PART_ORDER=(setup doctor tests train sample-generate sample-hf sample-cb loop)
declare -A BUDGET=(
  [setup]=75            # venv, offline pip install from the carried wheels, unpack Spider
  [doctor]=30           # rf-doctor: versions, GPU memory, attention per engine, train plan
  [tests]=40            # the CUDA-only tests (pytest -m cuda)
  [train]=100           # rf-train on 300 Spider train examples at --max-len 4096, then the
                        # dpo trainer on 64 pairs of them (its time not yet measured on a GPU)
  [sample-generate]=45  # plain transformers generate, 64 prompts x k=8, 128 new tokens
  [sample-hf]=45        # rf-sample's hf engine, the same prompts
  [sample-cb]=45        # transformers' continuous batching, the same prompts
  [loop]=150            # bin/iterate.sh --sampler hf: 64 train tasks, 64 dev, 1 iteration
)

usage() {
  cat <<'EOF'
usage: bench/gpu_check.sh --lease [options]     (or bench/gpu_lease.sh [options])
  --cpu-smoke         the same parts at tiny sizes on the CPU, demo data (needs --model)
  --carry DIR         the folder bench/gpu_pack.sh wrote (default .carry in the checkout)
  --model M           default random:CARRY/model/qwen2.5-coder-1.5b (random weights)
  --spider-root DIR   Spider 1.0 (default: unpacked from CARRY/spider.tar.*)
  --out DIR           results folder (default $OUT when set, else the work folder)
  --work DIR          where the parts write (default out/gpu-lease-<time>)
  --budget PART=S     a part's budget in seconds (repeatable); parts: setup doctor tests
                      train sample-generate sample-hf sample-cb loop
  --total S           the whole command's budget in seconds (default 560)
  --parts LIST        comma-separated subset of the parts (default all)
EOF
}

die() { echo "gpu_lease.sh: $*" >&2; exit 2; }
root=$(cd "$(dirname "$0")/.." && pwd)
SMOKE=0 CARRY=$root/.carry MODEL= SPIDER= RESULTS=${OUT:-} WORK= PARTS=
while (($#)); do
  case $1 in
    --lease) ;;
    --cpu-smoke) SMOKE=1 ;;
    --carry|--model|--spider-root|--out|--work|--budget|--parts|--total)
      (($# >= 2)) || die "$1 needs a value"
      case $1 in
        --carry) CARRY=$2 ;;
        --model) MODEL=$2 ;;
        --spider-root) SPIDER=$2 ;;
        --out) RESULTS=$2 ;;
        --work) WORK=$2 ;;
        --parts) PARTS=$2 ;;
        --total) [[ $2 =~ ^[0-9]+$ ]] || die "--total takes seconds, got '$2'"; TOTAL=$2 ;;
        --budget)
          [[ $2 =~ ^([a-z-]+)=([0-9]+)$ && -v BUDGET[${BASH_REMATCH[1]}] ]] \
            || die "--budget takes PART=SECONDS with PART one of ${PART_ORDER[*]}, got '$2'"
          BUDGET[${BASH_REMATCH[1]}]=${BASH_REMATCH[2]} ;;
      esac
      shift ;;
    -h|--help) usage; exit 0 ;;
    *) echo "gpu_lease.sh: unknown option '$1'" >&2; usage >&2; exit 2 ;;
  esac
  shift
done
for name in ${PARTS//,/ }; do
  [[ -v BUDGET[$name] ]] || die "--parts: unknown part '$name' (parts: ${PART_ORDER[*]})"
done

started=$(date +%s)
log() { printf '[gpu_lease %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

if ((SMOKE)); then
  [[ -n $MODEL ]] || die "--cpu-smoke needs --model (a small folder, or random:DIR)"
  export CUDA_VISIBLE_DEVICES=  # the CPU, even where a GPU is present
  export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}  # two threads stall fp32 decoding on 2 cores
else
  if ! command -v nvidia-smi > /dev/null || ! nvidia-smi -L 2> /dev/null | grep -q '^GPU'; then
    die "no CUDA GPU here (nvidia-smi lists none); on a CPU run: bench/gpu_check.sh --lease --cpu-smoke --model random:DIR"
  fi
  [[ -d $CARRY ]] || die "no carry folder $CARRY: make it with bench/gpu_pack.sh and carry it (device carry [\".carry\"])"
  MODEL=${MODEL:-random:$CARRY/model/qwen2.5-coder-1.5b}
fi
# large, changing batches fragment the CUDA caching allocator; expandable segments avoid it
export PYTORCH_CUDA_ALLOC_CONF=${PYTORCH_CUDA_ALLOC_CONF:-expandable_segments:True}

WORK=${WORK:-$root/out/gpu-lease-$(date +%Y%m%d-%H%M%S)}
mkdir -p "$WORK" || die "cannot create the work folder $WORK"
WORK=$(cd "$WORK" && pwd)
: > "$WORK/parts.tsv"
SPIDER_GIVEN=$SPIDER
SPIDER=${SPIDER:-$WORK/spider}
export CARRY WORK SPIDER SPIDER_GIVEN MODEL SMOKE root

# The python that has the project: the checkout's venv, an active one, or the one on PATH
# (a `pip install --target DIR` install has no python beside its scripts).
find_python() {
  local cand
  for cand in "$root/.venv/bin/python" "${VIRTUAL_ENV:+$VIRTUAL_ENV/bin/python}" python3 python; do
    [[ -n $cand ]] && "$cand" -c 'import rf_core' 2> /dev/null && { command -v "$cand"; return 0; }
  done
  return 1
}
use_install() {
  [[ -x $root/.venv/bin/rf-sample ]] && PATH=$root/.venv/bin:$PATH
  PY=$(find_python) || PY=python3
}
use_install

setup_part() {  # run under timeout in its own bash: install, Spider, the model's files
  set -euo pipefail
  if [[ -n $(command -v rf-sample) ]] && find_python > /dev/null; then
    echo "install: the project is already installed ($(command -v rf-sample))"
  elif ((SMOKE)); then
    echo "setup: rf-* not found: make install" >&2; return 1
  else
    [[ -d $CARRY/wheels ]] || { echo "setup: $CARRY/wheels missing: bench/gpu_pack.sh writes it" >&2; return 1; }
    echo "install: make install from $CARRY/wheels (offline)"
    if ! make -C "$root" install EXTRAS=models,gguf,test \
        PIP_ARGS="--no-index --find-links $CARRY/wheels" >&2; then
      echo "setup: make install failed (a wheel missing from $CARRY/wheels? make the folder again with bench/gpu_pack.sh)" >&2
      return 1
    fi
  fi
  if ((SMOKE)); then
    echo "spider: not needed (demo data)"
  elif [[ -n $SPIDER_GIVEN ]]; then
    [[ -f $SPIDER/dev.json ]] || { echo "setup: no dev.json in --spider-root $SPIDER" >&2; return 1; }
    echo "spider: $SPIDER"
  else
    local archive sum want
    archive=$(compgen -G "$CARRY/spider.tar.*" | grep -v '\.sha256$' | head -1 || true)
    [[ -n $archive ]] || { echo "setup: no Spider archive in $CARRY (spider.tar.*): bench/gpu_pack.sh writes it" >&2; return 1; }
    [[ -f $archive.sha256 ]] || { echo "setup: no $archive.sha256 beside the archive: bench/gpu_pack.sh writes it" >&2; return 1; }
    want=$(cut -d' ' -f1 < "$archive.sha256")
    sum=$(sha256sum "$archive" | cut -d' ' -f1)
    [[ $sum == "$want" ]] || { echo "setup: $archive fails its checksum (sha256 $sum, expected $want): copy it again or remake it with bench/gpu_pack.sh" >&2; return 1; }
    mkdir -p "$SPIDER.tmp"
    tar -xf "$archive" -C "$SPIDER.tmp"
    local top
    top=$(dirname "$(find "$SPIDER.tmp" -maxdepth 3 -name dev.json -print -quit)")
    [[ -f $top/dev.json ]] || { echo "setup: $archive holds no dev.json" >&2; return 1; }
    rm -rf "$SPIDER" && mv "$top" "$SPIDER" && rm -rf "$SPIDER.tmp"
    echo "spider: $archive (sha256 checked) -> $SPIDER"
  fi
  local folder=${MODEL#random:}
  if [[ $MODEL == random:* || -d $folder ]]; then
    [[ -f $folder/config.json ]] || { echo "setup: the model folder $folder has no config.json: bench/gpu_pack.sh writes it under $CARRY/model/" >&2; return 1; }
  fi
  echo "model: $MODEL"
}
export -f setup_part find_python

# part NAME COMMAND...: run it under its budget (capped by what is left of TOTAL); stdout to
# WORK/NAME.md (or $STDOUT), stderr to WORK/NAME.log; one line in WORK/parts.tsv
part() {
  local name=$1 status rc=0 begin end left budget
  shift
  if [[ -n $PARTS && ,$PARTS, != *,$name,* ]]; then return 0; fi
  left=$((TOTAL - RESERVE - ($(date +%s) - started)))
  budget=${BUDGET[$name]}
  ((budget > left)) && budget=$left
  if [[ -n ${SKIP_REST:-} ]]; then
    printf '%s\t%s\t0\tnot run (%s)\t\n' "$name" "${BUDGET[$name]}" "$SKIP_REST" >> "$WORK/parts.tsv"
    return 0
  fi
  if ((left < 3)); then
    printf '%s\t%s\t0\tnot run (no time left of %s s)\t\n' "$name" "${BUDGET[$name]}" "$TOTAL" >> "$WORK/parts.tsv"
    log "$name: not run, no time left"
    return 0
  fi
  log "$name (budget $budget s): $*"
  begin=$(date +%s)
  timeout --kill-after=5 "$budget" "$@" > "${STDOUT:-$WORK/$name.md}" 2> "$WORK/$name.log" || rc=$?
  end=$(date +%s)
  case $rc in
    0) status=ok ;;
    124|137) status="timed out after $((end - begin)) s (budget $budget s)" ;;
    *) status="failed (exit $rc)" ;;
  esac
  printf '%s\t%s\t%s\t%s\t%s\n' "$name" "${BUDGET[$name]}" "$((end - begin))" "$status" "$rc" >> "$WORK/parts.tsv"
  log "$name: $status, $((end - begin)) s"
  [[ $rc == 0 ]]
}

if ((SMOKE)); then
  train_args=(--data demo --examples 6 --batch-size 2 --max-len 4096 --threads 1 --no-warm-up)
  sample_args=(--data demo --prompts 4 -k 2 --max-new-tokens 16 --generate-batch 4)
  loop_args=(--preset cpu-demo --dataset demo --iterations 1 --train-size 4 --dev-size 4
             --val-size 2 -k 2 --vote 2 --values 0 --max-new-tokens 16 --epochs 1
             --batch-size 2 --lr 1e-3 --max-len 4096)
  doctor_args=(--no-spider)
else
  train_args=(--data spider --spider-root "$SPIDER" --examples 300 --max-len 4096)
  sample_args=(--data spider --prompts 64 -k 8 --temperature 0.7 --max-new-tokens 128
               --generate-batch 64)
  loop_args=(--preset spider-h100 --root "$SPIDER" --iterations 1 --train-size 64
             --dev-size 64 --val-size 0 -k 4 --vote 4 --max-new-tokens 64)
  doctor_args=(--spider-root "$SPIDER" --max-len 4096)
fi
export RF_SPIDER_ROOT=$SPIDER

if ! part setup bash -c setup_part; then
  SKIP_REST="set-up failed"
  log "set-up failed: $(tail -n 1 "$WORK/setup.log" 2> /dev/null)"
fi
use_install
STDOUT=$WORK/doctor.json part doctor rf-doctor --model "$MODEL" "${doctor_args[@]}" || true
part tests "$PY" -m pytest -q -m cuda -p no:cacheprovider "$root/tests" || true
part train "$PY" "$root/bench/train_bench.py" --only rf,dpo --dpo-pairs 64 --model "$MODEL" \
  "${train_args[@]}" --json "$WORK/train.json" || true
for engine in generate hf cb; do
  only=$engine
  [[ $engine == hf ]] && only=engine
  part "sample-$engine" "$PY" "$root/bench/sample_bench.py" --model "$MODEL" "${sample_args[@]}" \
    --only "$only" --json "$WORK/sample-$engine.json" || true
done
# the loop, then its tables (timeout runs programs, not shell functions: hence bash -c)
part loop bash -c 'bash "$1" "${@:4}" > /dev/null && "$2" "$3" "$WORK/loop"' _ \
  "$root/bin/iterate.sh" "$PY" "$root/bench/loop_summary.py" \
  --model "$MODEL" --out "$WORK/loop" --sampler hf "${loop_args[@]}" || true

# results: the two files, the loop's records and every log, where the device tool finds them
RESULTS=${RESULTS:-$WORK}
mkdir -p "$RESULTS"
mode=$( ((SMOKE)) && echo "CPU smoke test (tiny sizes; its numbers say nothing about speed)" || echo "GPU lease")
"${PY:-python3}" -c 'import json, sys
model, mode, date, total, wall = sys.argv[1:]
print(json.dumps({"model": model, "mode": mode, "date": date, "total_budget_s": int(total),
                  "wall_s": int(wall), "random_weights": model.startswith("random:")}))' \
  "$MODEL" "$mode" "$(date -u '+%Y-%m-%d %H:%M UTC')" "$TOTAL" "$(($(date +%s) - started))" \
  > "$WORK/header.json"
"${PY:-python3}" "$root/bench/lease_report.py" "$WORK" "$RESULTS" \
  || log "writing results.md and results.json failed"
if [[ -d $WORK/loop ]]; then
  tar -czf "$RESULTS/loop.tar.gz" -C "$WORK" --exclude='*.safetensors' --exclude='*.pt' \
    --exclude='*.bin' loop
fi
tar -czf "$RESULTS/logs.tar.gz" -C "$WORK" --exclude=loop --exclude=spider --exclude=spider.tmp .
log "results in $RESULTS: results.md results.json$([[ -d $WORK/loop ]] && echo ' loop.tar.gz') logs.tar.gz ($(($(date +%s) - started)) s)"
echo "$RESULTS/results.md"
grep -q -v "	ok	" "$WORK/parts.tsv" && exit 1
exit 0
