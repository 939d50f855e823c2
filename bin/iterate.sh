#!/usr/bin/env bash
# The self-training loop: sample k candidates per train task with the latest adapter, verify
# them by execution, keep the correct ones (plus gold SQL for tasks with 0/k), train the next
# adapter from the BASE model, evaluate it on dev; repeat. Resumable: every stage writes
# FILE.tmp.PID and renames it when complete, so a rerun skips finished stages and redoes the
# rest. One run at a time per --out (a lock); a rerun must use the settings of the first
# (config.env), or --force to start that folder over.
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
  --val-size N          validation tasks: a seeded sample of the train split disjoint from
                        the train tasks; the best iteration is chosen on them  [RF_VAL_SIZE]
  --val-split S         the split they come from (train; spider-full: train_others) [RF_VAL_SPLIT]
  --sft-baseline / --no-sft-baseline  also train once on the train tasks' gold SQL and
                        evaluate it as an iteration is                        [RF_SFT_BASELINE]
  --vote K              also evaluate vote@K on dev (0 = greedy only)          [RF_VOTE]
  --values N            sample values per column in the prompt's schema        [RF_VALUES]
  --max-new-tokens N                                                           [RF_MAX_NEW_TOKENS]
  --epochs N / --lr X / --batch-size N / --max-len N    rf-train settings      [RF_EPOCHS ...]
  --max-too-long PCT    stop when more than PCT% of an iteration's examples exceed
                        --max-len (100: never stop, skip them)                 [RF_MAX_TOO_LONG]
  --resample none|difficulty|weight  rf-filter's resampling                   [RF_RESAMPLE]
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
  --force               --out holds a run with other settings: delete its results, start over
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
    # Sized for the README's main job: 2 CPU cores, about 11 minutes.
    # Training runs at ~15 tok/s there, so it trains on one answer per task, once.
    d_model=qwen2.5-coder-0.5b d_dataset=demo d_root= d_iterations=2 d_k=4 d_train=8
    d_dev=12 d_vote=0 d_values=0 d_max_new=96 d_epochs=1 d_lr=2e-4 d_batch=4 d_max_len=1024
    d_resample=none d_per_task=1 d_val=4 d_sft=1 d_out=out/cpu-demo ;;
  spider-h100)
    # One H100 (80 GB), Qwen2.5-Coder-1.5B (its time is not yet measured on a GPU).
    d_model=qwen2.5-coder-1.5b d_dataset=spider d_root=../shared/spider d_iterations=3 d_k=8
    d_train=1500 d_dev=0 d_vote=8 d_values=3 d_max_new=160 d_epochs=2 d_lr=1e-4 d_batch=16
    d_max_len=4096 d_resample=difficulty d_per_task=0 d_val=300 d_sft=1
    d_out=out/spider-h100 ;;
  spider-full)
    # The full loop of the reference: all train tasks, k=8, 3 iterations, vote@16.
    d_model=qwen2.5-coder-1.5b d_dataset=spider d_root=../shared/spider d_iterations=3 d_k=8
    # All of train_spider trains, so validation comes from train_others (other databases).
    d_train=7000 d_dev=0 d_vote=16 d_values=3 d_max_new=160 d_epochs=2 d_lr=1e-4 d_batch=16
    d_max_len=4096 d_resample=difficulty d_per_task=0 d_val=300 d_val_split=train_others
    d_sft=1 d_out=out/spider-full ;;
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
VAL_SIZE=${RF_VAL_SIZE:-$d_val}
VAL_SPLIT=${RF_VAL_SPLIT:-${d_val_split:-train}}
SFT_BASELINE=${RF_SFT_BASELINE:-$d_sft}
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
MAX_TOO_LONG=${RF_MAX_TOO_LONG:-1}
DRY=0
FORCE=0

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
    --val-size) VAL_SIZE=$2; shift ;;
    --val-split) VAL_SPLIT=$2; shift ;;
    --sft-baseline) SFT_BASELINE=1 ;;
    --no-sft-baseline) SFT_BASELINE=0 ;;
    --vote) VOTE=$2; shift ;;
    --values) VALUES=$2; shift ;;
    --max-new-tokens) MAX_NEW=$2; shift ;;
    --epochs) EPOCHS=$2; shift ;;
    --lr) LR=$2; shift ;;
    --batch-size) BATCH=$2; shift ;;
    --max-len) MAX_LEN=$2; shift ;;
    --max-too-long) MAX_TOO_LONG=$2; shift ;;
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
    --force) FORCE=1 ;;
    -h|--help) usage; exit 0 ;;
    *) echo "iterate.sh: unknown option '$1'" >&2; usage >&2; exit 2 ;;
  esac
  shift
done

log() { printf '[iterate %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
q() { printf '%q' "$1"; }

# The running stage's process group: the driver stops it when it is stopped (trap) and, when
# it is killed outright (SIGKILL, no trap runs), a watcher does (see stage).
stage_pid=
on_signal() {
  trap - INT TERM HUP
  log "stopped by SIG$1; stopping the running stage"
  [[ -n $stage_pid ]] && kill -TERM -- "-$stage_pid" 2>/dev/null
  exit $((128 + $(kill -l "$1")))
}
trap 'on_signal INT' INT
trap 'on_signal TERM' TERM
trap 'on_signal HUP' HUP

# stage ITERATION NAME OUTPUT COMMAND: run COMMAND (a shell string whose stdout is the stage's
# output) unless OUTPUT exists, in a process group of its own; write OUTPUT.tmp.PID (a name
# no other run writes) and rename it when the command succeeds; record the stage's seconds.
stage() {
  local iter=$1 name=$2 out=$3 cmd=$4 where="iteration $1"
  [[ $iter == sft ]] && where="SFT baseline"
  if ((DRY)); then
    printf '%s > %s\n' "$cmd" "$(q "$out")"
    return 0
  fi
  if [[ -e $out ]]; then
    log "$where: $name: done already ($out)"
    return 0
  fi
  log "$where: $name"
  rm -f -- "$out".tmp.*  # left by a run that was killed
  local start end status=0 tmp=$out.tmp.$$
  start=$(date +%s%N)
  setsid bash -c "set -euo pipefail; $cmd" > "$tmp" &
  stage_pid=$!
  # The watcher reads a pipe only this shell writes to: "done" when the stage has ended, or
  # end of file when this shell died without a word (SIGKILL); then it kills the stage. It
  # has a session of its own, so killing the driver's process group leaves it to do that.
  exec 8> >(exec setsid bash -c 'read -r word || true; [[ $word == done ]] ||
                                 kill -KILL -- "-$1"' watcher "$stage_pid" \
              >/dev/null 2>&1 9>&-)
  wait "$stage_pid" || status=$?
  echo done >&8
  exec 8>&-
  stage_pid=
  if ((status != 0)); then
    rm -f -- "$tmp"
    printf 'iterate.sh: %s: stage %s failed with exit status %s:\n  %s\n' \
      "$where" "$name" "$status" "$cmd" >&2
    exit "$status"
  fi
  mv -- "$tmp" "$out"
  end=$(date +%s%N)
  printf '%s\t%s\t%s\n' "$iter" "$name" "$(((end - start) / 1000000))" >> "$OUT/timings.tsv"
}

sample_opts="--sampler $(q "$SAMPLER") --model $(q "$MODEL") --max-new-tokens $MAX_NEW --seed $SEED"
data_opts="--values $VALUES"
# Training examples are picked by the strict matcher (and the variants, when asked for);
# dev is scored with rf-exec's default, the official evaluator's default semantics.
select_opts="--matcher $(q "$SELECT_MATCHER")"
((VERIFY_VARIANTS > 0)) && select_opts+=" -o variants $VERIFY_VARIANTS"
filter_opts="--resample $(q "$RESAMPLE")"
((PER_TASK > 0)) && filter_opts+=" --max-per-task $PER_TASK"
[[ -n $ROOT ]] && data_opts+=" --root $(q "$ROOT")"

# evaluate LABEL ADAPTER DIR: greedy (and vote@K) execution accuracy on the dev tasks, and
# greedy on the validation tasks (the only number the best iteration is chosen by)
evaluate() {
  local iter=$1 adapter=$2 dir=$3 a= name="iteration $1"
  [[ -n $adapter ]] && a="--adapter $(q "$adapter")"
  [[ $iter == sft ]] && name="SFT on gold"
  local sets=dev
  ((VAL_SIZE > 0)) && sets="dev val"
  for set in $sets; do
    stage "$iter" $set-greedy-sample "$dir/$set.greedy.sampled.jsonl" \
      "rf-sample $sample_opts $a -k 1 --temperature 0 < $(q "$OUT/data/$set.jsonl")"
    stage "$iter" $set-greedy-exec "$dir/$set.greedy.jsonl" \
      "rf-exec < $(q "$dir/$set.greedy.sampled.jsonl")"
    stage "$iter" $set-greedy-eval "$dir/$set.greedy.report.json" \
      "rf-eval --markdown $(q "$dir/$set.greedy.report.md") --title $(q "$name: $set greedy") < $(q "$dir/$set.greedy.jsonl")"
  done
  if ((VOTE > 0)); then
    stage "$iter" dev-vote-sample "$dir/dev.vote.sampled.jsonl" \
      "rf-sample $sample_opts $a -k $VOTE --temperature $TEMPERATURE < $(q "$OUT/data/dev.jsonl")"
    stage "$iter" dev-vote-exec "$dir/dev.vote.jsonl" \
      "rf-exec < $(q "$dir/dev.vote.sampled.jsonl") | rf-vote"
    stage "$iter" dev-vote-eval "$dir/dev.vote.report.json" \
      "rf-eval --markdown $(q "$dir/dev.vote.report.md") --title $(q "$name: dev vote@$VOTE") < $(q "$dir/dev.vote.jsonl")"
  fi
}

# train LABEL DIR: an adapter in DIR/adapter from DIR/examples.jsonl, always from the base model
train() {
  local iter=$1 dir=$2
  # rf-train renames its adapter into place itself; --resume picks up its own checkpoint
  stage "$iter" train "$dir/train.report.json" \
    "rf-train --trainer $(q "$TRAINER") --base $(q "$MODEL") --out $(q "$dir/adapter") --force --resume --epochs $EPOCHS --lr $LR --batch-size $BATCH --max-len $MAX_LEN --max-too-long $MAX_TOO_LONG --seed $SEED < $(q "$dir/examples.jsonl")"
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
  train "$iter" "$dir"
  evaluate "$iter" "$dir/adapter" "$dir"
}

# The settings that decide what the stages produce. ITERATIONS, SFT_BASELINE and MAX_TOO_LONG
# are not among them: a rerun may extend or shorten the loop over the same earlier
# iterations, add or leave out the SFT row, or allow more over-long examples after a stop.
config() {
  cat <<EOF
PRESET=$preset
MODEL=$MODEL
DATASET=$DATASET
ROOT=$ROOT
K=$K
TEMPERATURE=$TEMPERATURE
TRAIN_SIZE=$TRAIN_SIZE
DEV_SIZE=$DEV_SIZE
VAL_SIZE=$VAL_SIZE
VAL_SPLIT=$VAL_SPLIT
VOTE=$VOTE
VALUES=$VALUES
MAX_NEW_TOKENS=$MAX_NEW
EPOCHS=$EPOCHS
LR=$LR
BATCH_SIZE=$BATCH
MAX_LEN=$MAX_LEN
RESAMPLE=$RESAMPLE
MAX_PER_TASK=$PER_TASK
SAMPLER=$SAMPLER
TRAINER=$TRAINER
SELECT_MATCHER=$SELECT_MATCHER
VERIFY_VARIANTS=$VERIFY_VARIANTS
SEED=$SEED
RETRAIN_ON_ERRORS=$RETRAIN_ERRORS
EOF
}

if ((!DRY)); then
  mkdir -p "$OUT"
  # One run per folder: a second one would write into the first one's stages. Stages hold
  # the lock too, so a stage left running by a killed driver still counts as the run.
  exec 9<>"$OUT/.lock"
  if ! flock -n 9; then
    echo "iterate.sh: $OUT is in use by another run (pid $(head -c 20 "$OUT/.lock"))," \
      "wait for it to finish or stop it" >&2
    exit 2
  fi
  echo $$ > "$OUT/.lock"
  if [[ -e $OUT/config.env ]]; then
    changed=$(config | while IFS= read -r line; do
      key=${line%%=*}
      old=$(grep -m1 "^${key}=" "$OUT/config.env" || true)
      [[ -z $old || $old == "$line" ]] || printf '  %s: %s -> %s\n' "$key" "${old#*=}" "${line#*=}"
    done)
    if [[ -n $changed ]]; then
      if ((!FORCE)); then
        printf 'iterate.sh: %s holds a run with other settings:\n%s\n' "$OUT" "$changed" >&2
        echo "iterate.sh: rerun with those settings to resume it, use another --out, or" \
          "add --force to delete its results and start over" >&2
        exit 2
      fi
      log "--force: deleting the results of the earlier run in $OUT"
      rm -rf -- "$OUT"/data "$OUT"/iter* "$OUT"/sft "$OUT"/best "$OUT"/timings.tsv \
        "$OUT"/history.json "$OUT"/report.md "$OUT"/*.png "$OUT"/config.env
    fi
  fi
  mkdir -p "$OUT/data"
  for ((i = 0; i <= ITERATIONS + RETRAIN_ERRORS; i++)); do mkdir -p "$OUT/iter$i"; done
  [[ -e $OUT/timings.tsv ]] || printf 'iteration\tstage\tms\n' > "$OUT/timings.tsv"
  { config; echo "ITERATIONS=$ITERATIONS"; echo "SFT_BASELINE=$SFT_BASELINE"
    echo "MAX_TOO_LONG=$MAX_TOO_LONG"; } > "$OUT/config.env.tmp"
  mv "$OUT/config.env.tmp" "$OUT/config.env"
fi

dev_limit=
((DEV_SIZE > 0)) && dev_limit="--limit $DEV_SIZE --seed $SEED"
stage 0 data-train "$OUT/data/train.jsonl" \
  "rf-data $(q "$DATASET") $data_opts --split train --limit $TRAIN_SIZE --seed $SEED"
stage 0 data-dev "$OUT/data/dev.jsonl" "rf-data $(q "$DATASET") $data_opts --split dev $dev_limit"
if ((VAL_SIZE > 0)); then
  stage 0 data-val "$OUT/data/val.jsonl" \
    "rf-data $(q "$DATASET") $data_opts --split $(q "$VAL_SPLIT") --limit $VAL_SIZE --seed $SEED --exclude $(q "$OUT/data/train.jsonl")"
  if ((!DRY)) && [[ ! -s $OUT/data/val.jsonl ]]; then
    echo "iterate.sh: no validation tasks are left in split $VAL_SPLIT once the train tasks" \
      "are taken out: lower --train-size, use --val-split, or --val-size 0" >&2
    exit 2
  fi
fi

evaluate 0 "" "$OUT/iter0"  # the base model: what every other row is measured against

if ((SFT_BASELINE)); then
  # The reference's middle row: the base model fine-tuned once on the gold SQL of the same
  # train tasks (those whose gold query runs), with the same trainer settings.
  if ((!DRY)); then mkdir -p "$OUT/sft"; fi
  stage sft select "$OUT/sft/examples.jsonl" \
    "rf-exec < $(q "$OUT/data/train.jsonl") | rf-inject"
  train sft "$OUT/sft"
  evaluate sft "$OUT/sft/adapter" "$OUT/sft"
fi
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
