#!/usr/bin/env bash
# The self-training loop: sample k candidates per train task with the latest adapter, verify
# them by execution, keep the correct ones (plus gold SQL for tasks with 0/k), train the next
# adapter from the BASE model, evaluate it on dev; repeat. Resumable: every stage writes
# FILE.tmp and renames it when complete, so a rerun skips finished stages and redoes the rest.
#
#   bin/iterate.sh                              # preset cpu-demo: demo data, Qwen2.5-Coder-0.5B
#   bin/iterate.sh --preset spider-h100         # Spider, Qwen2.5-Coder-1.5B, one H100
#   bin/iterate.sh --dry-run ...                # print the commands only
#
# Every option has an environment default (RF_<NAME>, e.g. RF_ITERATIONS=3); flags win.
set -euo pipefail

usage() {
  cat <<'EOF'
usage: bin/iterate.sh [options]
  --preset NAME         cpu-demo (default) | spider-h100 | spider-full
  --model M             base model: folder, hub id, .gguf, or rf-model name   [RF_MODEL]
  --dataset D           dataset plugin (demo, spider)                          [RF_DATASET]
  --root DIR            dataset folder (spider: the Spider 1.0 folder)         [RF_ROOT]
  --iterations N        self-training iterations                               [RF_ITERATIONS]
  -k N                  candidates per train task                              [RF_K]
  --temperature T       sampling temperature for train tasks                   [RF_TEMPERATURE]
  --train-size N        train tasks, a fixed seeded sample reused every iteration [RF_TRAIN_SIZE]
  --dev-size N          dev tasks (0 = all)                                    [RF_DEV_SIZE]
  --vote K              also evaluate vote@K on dev (0 = greedy only)          [RF_VOTE]
  --values N            sample values per column in the prompt's schema        [RF_VALUES]
  --max-new-tokens N                                                           [RF_MAX_NEW_TOKENS]
  --epochs N / --lr X / --batch-size N / --max-len N    rf-train settings      [RF_EPOCHS ...]
  --resample none|difficulty  rf-filter's resampling                          [RF_RESAMPLE]
  --max-per-task N      distinct self examples per task (0 = all)              [RF_MAX_PER_TASK]
  --sampler NAME        sampler plugin (hf, vllm)                              [RF_SAMPLER]
  --trainer NAME        trainer plugin (peft)                                  [RF_TRAINER]
  --select-matcher M    matcher whose verdict picks training examples          [RF_SELECT_MATCHER]
                        (default official-keep-distinct; dev is scored with official)
  --verify-variants N   also check train candidates on N database variants     [RF_VERIFY_VARIANTS]
                        before they become training examples (0 = off)
  --retrain-on-errors   an extra round on the train tasks the last adapter still gets wrong
  --seed S                                                                     [RF_SEED]
  --out DIR             output folder                                          [RF_OUT]
  --dry-run             print the commands, run nothing
EOF
}

preset=${RF_PRESET:-cpu-demo}
args=("$@")
for ((i = 0; i < ${#args[@]}; i++)); do
  [[ ${args[i]} == --preset ]] && preset=${args[i + 1]:-}
done

case $preset in
  cpu-demo)
    # Sized for the README's main job: 2 CPU cores, about 20 minutes.
    # Training runs at ~15 tok/s there, so it trains on one answer per task, once.
    d_model=qwen2.5-coder-0.5b d_dataset=demo d_root= d_iterations=2 d_k=4 d_train=8
    d_dev=12 d_vote=0 d_values=0 d_max_new=96 d_epochs=1 d_lr=2e-4 d_batch=4 d_max_len=1024
    d_resample=none d_per_task=1 d_out=out/cpu-demo ;;
  spider-h100)
    # One H100 (80 GB), Qwen2.5-Coder-1.5B, about 25 minutes.
    d_model=qwen2.5-coder-1.5b d_dataset=spider d_root=../shared/spider d_iterations=3 d_k=8
    d_train=1500 d_dev=0 d_vote=8 d_values=3 d_max_new=160 d_epochs=2 d_lr=1e-4 d_batch=16
    d_max_len=2048 d_resample=difficulty d_per_task=0 d_out=out/spider-h100 ;;
  spider-full)
    # The full loop of the reference: all train tasks, k=8, 3 iterations, vote@16.
    d_model=qwen2.5-coder-1.5b d_dataset=spider d_root=../shared/spider d_iterations=3 d_k=8
    d_train=7000 d_dev=0 d_vote=16 d_values=3 d_max_new=160 d_epochs=2 d_lr=1e-4 d_batch=16
    d_max_len=2048 d_resample=difficulty d_per_task=0 d_out=out/spider-full ;;
  *) echo "iterate.sh: unknown preset '$preset' (cpu-demo, spider-h100, spider-full)" >&2; exit 2 ;;
esac

MODEL=${RF_MODEL:-$d_model}
DATASET=${RF_DATASET:-$d_dataset}
ROOT=${RF_ROOT:-$d_root}
ITERATIONS=${RF_ITERATIONS:-$d_iterations}
K=${RF_K:-$d_k}
TEMPERATURE=${RF_TEMPERATURE:-0.7}
TRAIN_SIZE=${RF_TRAIN_SIZE:-$d_train}
DEV_SIZE=${RF_DEV_SIZE:-$d_dev}
VOTE=${RF_VOTE:-$d_vote}
VALUES=${RF_VALUES:-$d_values}
MAX_NEW=${RF_MAX_NEW_TOKENS:-$d_max_new}
EPOCHS=${RF_EPOCHS:-$d_epochs}
LR=${RF_LR:-$d_lr}
BATCH=${RF_BATCH_SIZE:-$d_batch}
MAX_LEN=${RF_MAX_LEN:-$d_max_len}
RESAMPLE=${RF_RESAMPLE:-$d_resample}
PER_TASK=${RF_MAX_PER_TASK:-$d_per_task}
SAMPLER=${RF_SAMPLER:-hf}
TRAINER=${RF_TRAINER:-peft}
SELECT_MATCHER=${RF_SELECT_MATCHER:-official-keep-distinct}
VERIFY_VARIANTS=${RF_VERIFY_VARIANTS:-0}
SEED=${RF_SEED:-0}
OUT=${RF_OUT:-$d_out}
RETRAIN_ERRORS=${RF_RETRAIN_ON_ERRORS:-0}
DRY=0

while (($#)); do
  case $1 in
    --preset) shift ;;
    --model) MODEL=$2; shift ;;
    --dataset) DATASET=$2; shift ;;
    --root) ROOT=$2; shift ;;
    --iterations) ITERATIONS=$2; shift ;;
    -k) K=$2; shift ;;
    --temperature) TEMPERATURE=$2; shift ;;
    --train-size) TRAIN_SIZE=$2; shift ;;
    --dev-size) DEV_SIZE=$2; shift ;;
    --vote) VOTE=$2; shift ;;
    --values) VALUES=$2; shift ;;
    --max-new-tokens) MAX_NEW=$2; shift ;;
    --epochs) EPOCHS=$2; shift ;;
    --lr) LR=$2; shift ;;
    --batch-size) BATCH=$2; shift ;;
    --max-len) MAX_LEN=$2; shift ;;
    --resample) RESAMPLE=$2; shift ;;
    --max-per-task) PER_TASK=$2; shift ;;
    --sampler) SAMPLER=$2; shift ;;
    --trainer) TRAINER=$2; shift ;;
    --select-matcher) SELECT_MATCHER=$2; shift ;;
    --verify-variants) VERIFY_VARIANTS=$2; shift ;;
    --seed) SEED=$2; shift ;;
    --out) OUT=$2; shift ;;
    --retrain-on-errors) RETRAIN_ERRORS=1 ;;
    --dry-run) DRY=1 ;;
    -h|--help) usage; exit 0 ;;
    *) echo "iterate.sh: unknown option '$1'" >&2; usage >&2; exit 2 ;;
  esac
  shift
done

log() { printf '[iterate %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
q() { printf '%q' "$1"; }

# stage ITERATION NAME OUTPUT COMMAND: run COMMAND (a shell string whose stdout is the stage's
# output) unless OUTPUT exists; write OUTPUT.tmp, rename it, and record the stage's seconds.
stage() {
  local iter=$1 name=$2 out=$3 cmd=$4
  if ((DRY)); then
    printf '%s > %s\n' "$cmd" "$(q "$out")"
    return 0
  fi
  if [[ -e $out ]]; then
    log "iteration $iter: $name: done already ($out)"
    return 0
  fi
  log "iteration $iter: $name"
  local start end
  start=$(date +%s%N)
  eval "$cmd" > "$out.tmp"
  mv "$out.tmp" "$out"
  end=$(date +%s%N)
  printf '%s\t%s\t%s\n' "$iter" "$name" "$(((end - start) / 1000000))" >> "$OUT/timings.tsv"
}

sample_opts="--sampler $(q "$SAMPLER") --model $(q "$MODEL") --max-new-tokens $MAX_NEW --seed $SEED"
data_opts="--values $VALUES"
# Training examples are picked by the strict matcher (and the variants, when asked for);
# dev is scored with rf-exec's default, the official evaluator's default semantics.
select_opts="--matcher $(q "$SELECT_MATCHER")"
((VERIFY_VARIANTS > 0)) && select_opts+=" --variants $VERIFY_VARIANTS"
filter_opts="--resample $(q "$RESAMPLE")"
((PER_TASK > 0)) && filter_opts+=" --max-per-task $PER_TASK"
[[ -n $ROOT ]] && data_opts+=" --root $(q "$ROOT")"

# evaluate ITER ADAPTER: greedy (and vote@K) execution accuracy on the dev tasks
evaluate() {
  local iter=$1 adapter=$2 dir=$OUT/iter$1 a=
  [[ -n $adapter ]] && a="--adapter $(q "$adapter")"
  stage "$iter" dev-greedy-sample "$dir/dev.greedy.sampled.jsonl" \
    "rf-sample $sample_opts $a -k 1 --temperature 0 < $(q "$OUT/data/dev.jsonl")"
  stage "$iter" dev-greedy-exec "$dir/dev.greedy.jsonl" "rf-exec < $(q "$dir/dev.greedy.sampled.jsonl")"
  stage "$iter" dev-greedy-eval "$dir/dev.greedy.report.json" \
    "rf-eval --markdown $(q "$dir/dev.greedy.report.md") --title $(q "iteration $iter: dev greedy") < $(q "$dir/dev.greedy.jsonl")"
  if ((VOTE > 0)); then
    stage "$iter" dev-vote-sample "$dir/dev.vote.sampled.jsonl" \
      "rf-sample $sample_opts $a -k $VOTE --temperature $TEMPERATURE < $(q "$OUT/data/dev.jsonl")"
    stage "$iter" dev-vote-exec "$dir/dev.vote.jsonl" \
      "rf-exec < $(q "$dir/dev.vote.sampled.jsonl") | rf-vote"
    stage "$iter" dev-vote-eval "$dir/dev.vote.report.json" \
      "rf-eval --markdown $(q "$dir/dev.vote.report.md") --title $(q "iteration $iter: dev vote@$VOTE") < $(q "$dir/dev.vote.jsonl")"
  fi
}

# train_round ITER PREV_ADAPTER TASKS [EXTRA_EXAMPLES]: sample, verify, select, train, evaluate
train_round() {
  local iter=$1 prev=$2 tasks=$3 extra=${4:-} dir=$OUT/iter$1 a=
  [[ -n $prev ]] && a="--adapter $(q "$prev")"
  stage "$iter" train-sample "$dir/train.sampled.jsonl" \
    "rf-sample $sample_opts $a -k $K --temperature $TEMPERATURE < $(q "$tasks")"
  stage "$iter" train-exec "$dir/train.jsonl" "rf-exec $select_opts < $(q "$dir/train.sampled.jsonl")"
  local keep="cat /dev/null"
  [[ -n $extra ]] && keep="cat $(q "$extra")"
  stage "$iter" select "$dir/examples.jsonl" \
    "{ $keep; rf-filter $filter_opts < $(q "$dir/train.jsonl"); rf-inject < $(q "$dir/train.jsonl"); }"
  # rf-train renames its adapter into place itself; --resume picks up its own checkpoint
  stage "$iter" train "$dir/train.report.json" \
    "rf-train --trainer $(q "$TRAINER") --base $(q "$MODEL") --out $(q "$dir/adapter") --force --resume --epochs $EPOCHS --lr $LR --batch-size $BATCH --max-len $MAX_LEN --seed $SEED < $(q "$dir/examples.jsonl")"
  evaluate "$iter" "$dir/adapter"
}

if ((!DRY)); then
  mkdir -p "$OUT/data"
  for ((i = 0; i <= ITERATIONS + RETRAIN_ERRORS; i++)); do mkdir -p "$OUT/iter$i"; done
  [[ -e $OUT/timings.tsv ]] || printf 'iteration\tstage\tms\n' > "$OUT/timings.tsv"
  cat > "$OUT/config.env.tmp" <<EOF
PRESET=$preset
MODEL=$MODEL
DATASET=$DATASET
ROOT=$ROOT
ITERATIONS=$ITERATIONS
K=$K
TEMPERATURE=$TEMPERATURE
TRAIN_SIZE=$TRAIN_SIZE
DEV_SIZE=$DEV_SIZE
VOTE=$VOTE
VALUES=$VALUES
MAX_NEW_TOKENS=$MAX_NEW
EPOCHS=$EPOCHS
LR=$LR
BATCH_SIZE=$BATCH
RESAMPLE=$RESAMPLE
MAX_PER_TASK=$PER_TASK
SAMPLER=$SAMPLER
TRAINER=$TRAINER
SELECT_MATCHER=$SELECT_MATCHER
VERIFY_VARIANTS=$VERIFY_VARIANTS
SEED=$SEED
RETRAIN_ON_ERRORS=$RETRAIN_ERRORS
EOF
  mv "$OUT/config.env.tmp" "$OUT/config.env"
fi

dev_limit=
((DEV_SIZE > 0)) && dev_limit="--limit $DEV_SIZE --seed $SEED"
stage 0 data-train "$OUT/data/train.jsonl" \
  "rf-data $(q "$DATASET") $data_opts --split train --limit $TRAIN_SIZE --seed $SEED"
stage 0 data-dev "$OUT/data/dev.jsonl" "rf-data $(q "$DATASET") $data_opts --split dev $dev_limit"

evaluate 0 ""  # the base model: the starting point every iteration is measured against
prev=
for ((i = 1; i <= ITERATIONS; i++)); do
  train_round "$i" "$prev" "$OUT/data/train.jsonl"
  prev=$OUT/iter$i/adapter
done

if ((RETRAIN_ERRORS && ITERATIONS > 0)); then
  # The reference's extra round: sample again only the train tasks the latest adapter still
  # answers wrongly (greedy), and train on those plus the last iteration's examples.
  e=$((ITERATIONS + 1)) last=$OUT/iter$ITERATIONS
  stage "$e" errors-greedy "$OUT/iter$e/train.greedy.jsonl" \
    "rf-sample $sample_opts --adapter $(q "$prev") -k 1 --temperature 0 < $(q "$OUT/data/train.jsonl") | rf-exec $select_opts"
  stage "$e" errors-select "$OUT/iter$e/wrong.tasks.jsonl" \
    "rf-filter --tasks wrong < $(q "$OUT/iter$e/train.greedy.jsonl")"
  train_round "$e" "$prev" "$OUT/iter$e/wrong.tasks.jsonl" "$last/examples.jsonl"
fi

if ((DRY)); then
  echo "rf-report $(q "$OUT")"
  exit 0
fi
rf-report "$OUT"
cat "$OUT/report.md"
