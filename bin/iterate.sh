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

# Every setting is one row of SETTINGS below: its flag, its environment variable (RF_<NAME>),
# its line in --help and in OUT/config.env all come from that row. Presets are data: a
# preset sets some of the settings; RF_<NAME> overrides the preset, and a flag overrides both.
# SETTINGS rows: NAME FLAG KIND TYPE HELP. KIND: value (decides what the stages produce, so
# a rerun must keep it), free (may change between reruns), bool (--x / --no-x), freebool (a
# bool that may change), options (a plugin's options, NAME=VALUE, repeatable; decide what
# the stages produce). TYPE, checked before any use (see check_setting): count (an integer
# >= 0), positive (an integer >= 1), integer, number (finite, >= 0), bool (0 or 1),
# choice:A,B (one of them), name (not empty), text, folder, options.
SETTINGS=(
  "MODEL             --model             value    name      base model for sampling: folder, hub id, .gguf, or rf-model name"
  "TRAIN_MODEL       --train-model       value    text      base model for training (empty: --model); adapters trained on it are sampled with --model"
  "DATASET           --dataset           value    name      dataset plugin"
  "DATASET_OPTIONS   --dataset-option    options  options   an option of the dataset, NAME=VALUE (repeatable)"
  "ROOT              --root              value    text      dataset folder (spider: the Spider 1.0 folder)"
  "ITERATIONS        --iterations        free     count     self-training iterations"
  "K                 -k                  value    positive  candidates per train task"
  "TEMPERATURE       --temperature       value    number    sampling temperature for train tasks and votes"
  "TRAIN_SIZE        --train-size        value    count     train tasks, a fixed seeded sample reused every iteration"
  "DEV_SIZE          --dev-size          value    count     dev tasks (0 = all)"
  "VAL_SIZE          --val-size          value    count     validation tasks, drawn from --val-split apart from the train tasks; the best iteration is chosen on them"
  "VAL_SPLIT         --val-split         value    name      the split validation tasks come from"
  "SFT_BASELINE      --sft-baseline      freebool bool      also train once on the train tasks' gold SQL and evaluate it as an iteration is"
  "VOTE              --vote              value    count     also evaluate vote@K on dev (0 = greedy only)"
  "VALUES            --values            value    count     sample values per column in the prompt's schema"
  "MAX_NEW_TOKENS    --max-new-tokens    value    positive  tokens per sampled answer at most"
  "EPOCHS            --epochs            value    positive  rf-train --epochs"
  "LR                --lr                value    number    rf-train --lr"
  "BATCH_SIZE        --batch-size        value    positive  rf-train --batch-size"
  "MAX_LEN           --max-len           value    positive  rf-train --max-len"
  "MAX_TOO_LONG      --max-too-long      free     number    stop when more than PCT% of an iteration's examples exceed --max-len (100: skip them)"
  "RESAMPLE          --resample          value    choice:none,difficulty,weight  rf-filter's resampling: none, difficulty or weight"
  "MAX_PER_TASK      --max-per-task      value    count     distinct self examples per task (0 = all)"
  "SAMPLER           --sampler           value    name      sampler plugin (rf-plugins lists them); auto: vllm, cb or hf as the machine allows (history.json names the one used)"
  "SAMPLER_OPTIONS   --sampler-option    options  options   an option of the sampler, NAME=VALUE (repeatable)"
  "VERIFIER          --verifier          value    name      verifier plugin that decides which train candidates are correct"
  "VERIFIER_OPTIONS  --verifier-option   options  options   an option of the verifier, NAME=VALUE (repeatable)"
  "TRAINER           --trainer           value    name      trainer plugin"
  "TRAINER_OPTIONS   --trainer-option    options  options   an option of the trainer, NAME=VALUE (repeatable)"
  "OBJECTIVE         --objective         value    choice:sft,dpo,sft+dpo  the iterations train on sft (examples, --trainer), dpo (pairs, rf-train --trainer dpo) or sft+dpo (both, dpo)"
  "DPO_OPTIONS       --dpo-option        options  options   an option of the dpo trainer (--objective dpo, sft+dpo), NAME=VALUE (repeatable)"
  "TRAIN_LAUNCHER    --train-launcher    free     text      run each training stage as LAUNCHER \$(command -v rf-train) ... FILE, e.g. 'torchrun --nproc-per-node 2' (empty: rf-train ... < FILE)"
  "SELECT_MATCHER    --select-matcher    value    name      matcher whose verdict picks training examples"
  "VERIFY_VARIANTS   --verify-variants   value    count     also check train candidates on N database variants (sqlite verifier; 0 = off)"
  "RETRAIN_ON_ERRORS --retrain-on-errors bool     bool      an extra round on the train tasks the last adapter still gets wrong"
  "REVISE            --revise            value    count     rf-revise rounds (0 = off): revise train candidates before selection, and dev/validation answers before scoring, reported as rows of their own"
  "MULTI_TURN        --multi-turn        bool     bool      with --revise: a correct revision's whole conversation is also an example (rf-filter --multi-turn)"
  "SEED              --seed              value    integer   seed of every sample and of training"
  "OUT               --out               free     folder    output folder"
)

# The defaults, which are also the cpu-demo preset: sized for the README's main job, 2 CPU
# cores, about 4 minutes with AVX-512 (bench/demo_bench.py); training runs at ~70 tok/s there,
# so it trains on one answer per task, once.
declare -A SETTING=(
  [MODEL]=qwen2.5-coder-0.5b [TRAIN_MODEL]="" [DATASET]=demo [DATASET_OPTIONS]="" [ROOT]="" [ITERATIONS]=2 [K]=4
  [TEMPERATURE]=0.7 [TRAIN_SIZE]=8 [DEV_SIZE]=12 [VAL_SIZE]=4 [VAL_SPLIT]=train
  [SFT_BASELINE]=1 [VOTE]=0 [VALUES]=0 [MAX_NEW_TOKENS]=96 [EPOCHS]=1 [LR]=2e-4
  [BATCH_SIZE]=4 [MAX_LEN]=1024 [MAX_TOO_LONG]=1 [RESAMPLE]=none [MAX_PER_TASK]=1
  [SAMPLER]=auto [SAMPLER_OPTIONS]="" [VERIFIER]=sqlite [VERIFIER_OPTIONS]="" [TRAINER]=peft
  [TRAINER_OPTIONS]="" [OBJECTIVE]=sft [DPO_OPTIONS]="" [TRAIN_LAUNCHER]=""
  [SELECT_MATCHER]=official-keep-distinct [VERIFY_VARIANTS]=0 [RETRAIN_ON_ERRORS]=0 [REVISE]=0
  [MULTI_TURN]=0 [SEED]=0 [OUT]=out/cpu-demo
)
SPIDER="MODEL=qwen2.5-coder-1.5b DATASET=spider ROOT=../shared/spider ITERATIONS=3 K=8 DEV_SIZE=0
  VALUES=3 MAX_NEW_TOKENS=160 EPOCHS=2 LR=1e-4 BATCH_SIZE=16 MAX_LEN=4096 RESAMPLE=difficulty
  MAX_PER_TASK=0 VAL_SIZE=300"
declare -A PRESETS=(
  [cpu-demo]=""
  # One H100 (80 GB), Qwen2.5-Coder-1.5B (its time is not yet measured on a GPU).
  [spider-h100]="$SPIDER TRAIN_SIZE=1500 VOTE=8 OUT=out/spider-h100"
  # The full loop of the reference: all train tasks, k=8, 3 iterations, vote@16. All of
  # train_spider trains, so validation comes from train_others (other databases).
  [spider-full]="$SPIDER TRAIN_SIZE=7000 VOTE=16 VAL_SPLIT=train_others OUT=out/spider-full"
)

declare -A FLAG_OF KIND_OF TYPE_OF HELP_OF SETTING_OF_FLAG
ORDER=()
for row in "${SETTINGS[@]}"; do
  read -r name flag kind type help <<< "$row"
  FLAG_OF[$name]=$flag KIND_OF[$name]=$kind TYPE_OF[$name]=$type HELP_OF[$name]=$help
  SETTING_OF_FLAG[$flag]=$name
  ORDER+=("$name")
done

# installed KIND: the names of the installed plugins of KIND (datasets, samplers, ...), as
# rf-plugins lists them, third-party ones included
installed() {
  local names
  names=$(rf-plugins --names "$1" 2>/dev/null | paste -sd, -) || names=
  if [[ -n $names ]]; then printf 'installed: %s' "${names//,/, }"; else printf 'rf-plugins lists them'; fi
}

usage() {
  echo "usage: bin/iterate.sh [options]"
  printf '  %-24s %s\n' "--preset NAME" "$(echo "${!PRESETS[@]}" | tr ' ' '\n' | sort | paste -sd' ') (default cpu-demo) [RF_PRESET]"
  local name arg
  for name in "${ORDER[@]}"; do
    case ${KIND_OF[$name]} in
      bool|freebool) arg="${FLAG_OF[$name]} / --no-${FLAG_OF[$name]#--}" ;;
      options) arg="${FLAG_OF[$name]} NAME=VALUE" ;;
      *) arg="${FLAG_OF[$name]} X" ;;
    esac
    ((${#arg} > 24)) && printf '  %s\n' "$arg" && arg=
    local help=${HELP_OF[$name]}
    [[ $name == DATASET ]] && help+=" ($(installed datasets))"
    printf '  %-24s %s [RF_%s; default %s]\n' "$arg" "$help" "$name" \
      "${SETTING[$name]:-none}"
  done
  printf '  %-24s %s\n' "--force" "--out holds a run with other settings: delete its results, start over" \
    "--dry-run" "print the commands, run nothing"
}

preset=${RF_PRESET:-cpu-demo}
args=("$@")
for ((i = 0; i < ${#args[@]}; i++)); do
  [[ ${args[i]} == --preset ]] && preset=${args[i + 1]:-}
done
# ${A[$k]+x}, not [[ -v A[$k] ]]: bash before 5.2 expands the key of -v a second time, so a
# preset named $(...) would run
if [[ -z $preset || -z ${PRESETS[$preset]+x} ]]; then
  echo "iterate.sh: unknown preset '$preset' ($(echo "${!PRESETS[@]}" | tr ' ' '\n' | sort | paste -sd,))" >&2
  exit 2
fi
for kv in ${PRESETS[$preset]}; do SETTING[${kv%%=*}]=${kv#*=}; done
for name in "${ORDER[@]}"; do
  env=RF_$name
  [[ -v $env ]] && SETTING[$name]=${!env}
done

q() { printf '%q' "$1"; }

# setting_error NAME EXPECTED [SHOWN]: the usage error for a setting's value
setting_error() {
  local shown="'${SETTING[$1]}'"
  (($# > 2)) && shown=$3
  printf 'iterate.sh: %s (RF_%s): expected %s, got %s\n' "${FLAG_OF[$1]}" "$1" "$2" "$shown" >&2
  exit 2
}

option_pair() {  # NAME=VALUE, without whitespace (they are kept space-separated)
  if [[ ! $2 =~ ^[A-Za-z_][A-Za-z0-9_-]*=[^[:space:]]*$ ]]; then
    echo "iterate.sh: $1 takes NAME=VALUE without spaces, got '$2'" >&2
    exit 2
  fi
}

# check_setting NAME: exit 2 unless the value fits the setting's TYPE. Values reach bash
# arithmetic and the stages' shell commands, so nothing is used before it is checked here.
# Integers are rewritten without leading zeros (bash reads 08 as octal).
check_setting() {
  local name=$1 type=${TYPE_OF[$1]} v=${SETTING[$1]} sign='' digits int frac zeros exp choice
  # config.env holds one setting a line
  [[ $v == *[[:cntrl:]]* ]] &&
    setting_error "$name" "one line without control characters" "$(q "$v")"
  case $type in
    count|positive|integer)
      local what="a non-negative integer"
      [[ $type == positive ]] && what="a positive integer"
      [[ $type == integer ]] && what="an integer"
      [[ $type == integer && $v == -* ]] && sign=-
      digits=${v#"$sign"}
      [[ $digits =~ ^[0-9]+$ ]] || setting_error "$name" "$what"
      while [[ $digits == 0?* ]]; do digits=${digits#0}; done
      ((${#digits} <= 18)) || setting_error "$name" "$what of at most 18 digits"
      [[ $type == positive && $digits == 0 ]] && setting_error "$name" "$what"
      [[ $digits == 0 ]] && sign=
      SETTING[$name]=$sign$digits ;;
    number)
      [[ $v =~ ^\.?[0-9] && $v =~ ^([0-9]*)\.?([0-9]*)([eE]([-+]?)([0-9]+))?$ ]] ||
        setting_error "$name" "a finite non-negative number"
      # finite as the commands read it, a double: 1e999 is inf. The value is below
      # 10^(digits + exp), digits counted from its first non-zero one (-2 for 0.001).
      int=${BASH_REMATCH[1]} frac=${BASH_REMATCH[2]} exp=${BASH_REMATCH[5]:-0}
      [[ ${BASH_REMATCH[4]} == - || $int$frac != *[1-9]* ]] && return 0
      while [[ $int == 0* ]]; do int=${int#0}; done
      while [[ $exp == 0?* ]]; do exp=${exp#0}; done
      digits=${#int}
      if [[ -z $int ]]; then zeros=${frac%%[1-9]*}; digits=$((-${#zeros})); fi
      if ((${#exp} > 6 || digits + exp > 308)); then
        setting_error "$name" "a finite non-negative number below 1e308"
      fi ;;
    bool) [[ $v == [01] ]] || setting_error "$name" "0 or 1" ;;
    choice:*)
      local -a choices
      IFS=, read -ra choices <<< "${type#choice:}"
      for choice in "${choices[@]}"; do [[ $v == "$choice" ]] && return 0; done
      choice=${type#choice:}
      setting_error "$name" "one of ${choice//,/, }" ;;
    name) [[ -n $v ]] || setting_error "$name" "a name" ;;
    folder)
      [[ -n $v ]] || setting_error "$name" "a folder"
      if [[ $v == -* ]]; then  # every command would read it as an option
        echo "iterate.sh: ${FLAG_OF[$name]} (RF_$name): '$v' starts with '-' (write ./$v)" >&2
        exit 2
      fi ;;
    options)
      local -a pairs
      local kv
      read -ra pairs <<< "$v"  # read, not $v: a pair like dtype=* must not glob
      for kv in "${pairs[@]}"; do option_pair "RF_$name" "$kv"; done ;;
    text) ;;
  esac
  return 0
}

DRY=0
FORCE=0
while (($#)); do
  case $1 in
    --preset) shift ;;
    --dry-run) DRY=1 ;;
    --force) FORCE=1 ;;
    -h|--help) usage; exit 0 ;;
    --no-*)
      name=${SETTING_OF_FLAG[--${1#--no-}]:-}
      if [[ -z $name || ${KIND_OF[$name]} != *bool ]]; then
        echo "iterate.sh: unknown option '$1'" >&2; usage >&2; exit 2
      fi
      SETTING[$name]=0 ;;
    *)
      name=${SETTING_OF_FLAG[$1]:-}
      if [[ -z $name ]]; then
        echo "iterate.sh: unknown option '$1'" >&2; usage >&2; exit 2
      fi
      case ${KIND_OF[$name]} in
        bool|freebool) SETTING[$name]=1 ;;
        options)
          option_pair "$1" "${2-}"
          SETTING[$name]="${SETTING[$name]:+${SETTING[$name]} }$2"; shift ;;
        *)
          if (($# < 2)); then echo "iterate.sh: $1 needs a value" >&2; exit 2; fi
          SETTING[$name]=$2; shift ;;
      esac ;;
  esac
  shift
done
for name in "${ORDER[@]}"; do check_setting "$name"; done
for name in "${ORDER[@]}"; do printf -v "$name" '%s' "${SETTING[$name]}"; done
TRAIN_MODEL=${TRAIN_MODEL:-$MODEL}

log() { printf '[iterate %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

# not_a_link PATH: exit 2 if PATH, which the driver is about to write (or write in), is a
# symbolic link: someone else's file would be truncated or appended to
not_a_link() {
  if [[ -L $1 ]]; then
    echo "iterate.sh: $1 is a symbolic link: the driver writes only files of its own in --out" >&2
    exit 2
  fi
}

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
  # shellcheck disable=SC2016 # the watcher's own script, expanded by the watcher
  exec 8> >(exec setsid bash -c 'read -r word || true; [[ $word == done ]] ||
                                 kill -KILL -- "-$1"' watcher "$stage_pid" \
              >/dev/null 2>&1 9>&-)
  wait "$stage_pid" || status=$?
  echo 'done' >&8
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
  not_a_link "$OUT/timings.tsv"
  printf '%s\t%s\t%s\n' "$iter" "$name" "$(((end - start) / 1000000))" >> "$OUT/timings.tsv"
}

# pass_options FLAG "A=1 B=2": "FLAG A=1 FLAG B=2", quoted for the stage's shell
pass_options() {
  local kv out='' pairs
  read -ra pairs <<< "$2"  # not a bare $2: dtype=* would glob
  for kv in "${pairs[@]}"; do out+=" $1 $(q "$kv")"; done
  printf '%s' "$out"
}
# Every value pasted into a stage's command goes through q, numbers too: the stage's shell
# must read each as one literal argument.
sample_opts="--sampler $(q "$SAMPLER") --model $(q "$MODEL") --max-new-tokens $(q "$MAX_NEW_TOKENS") --seed $(q "$SEED")$(pass_options --option "$SAMPLER_OPTIONS")"
# The vllm sampler keeps one engine in OUT/engine (RF_VLLM_ENGINE, the default of its option
# engine) for the sampling stages between two trainings, which all use one adapter: one
# engine start per iteration. It is stopped before each training (which needs its memory) and
# when the driver ends. Other samplers ignore it.
export RF_VLLM_ENGINE=$OUT/engine
read -ra pairs <<< "$SAMPLER_OPTIONS"
for kv in "${pairs[@]}"; do [[ $kv == engine=* ]] && RF_VLLM_ENGINE=${kv#engine=}; done
stop_engine() {
  if ((!DRY)) && [[ -e $RF_VLLM_ENGINE/engine.pid ]]; then rf-model stop "$RF_VLLM_ENGINE"; fi
}
train_opts="--trainer $(q "$TRAINER") --base $(q "$TRAIN_MODEL")$(pass_options --option "$TRAINER_OPTIONS")"
data_opts="--values $(q "$VALUES")$(pass_options --option "$DATASET_OPTIONS")"
# Training examples are picked by --verifier with the strict matcher (and the variants, when
# asked for) and --for-training: a candidate that agrees with an empty or degenerate gold
# result, and nowhere else, is unverifiable (correct: null), so its task gets the gold SQL
# instead. Dev and validation are always scored by the sqlite verifier with the official
# evaluator's default semantics, so every row of every run is measured the same way.
select_opts="--for-training --verifier $(q "$VERIFIER") --matcher $(q "$SELECT_MATCHER")$(pass_options --option "$VERIFIER_OPTIONS")"
((VERIFY_VARIANTS > 0)) && select_opts+=" -o variants $(q "$VERIFY_VARIANTS")"
filter_opts="--resample $(q "$RESAMPLE")"
((MAX_PER_TASK > 0)) && filter_opts+=" --max-per-task $(q "$MAX_PER_TASK")"
((REVISE > 0 && MULTI_TURN)) && filter_opts+=" --multi-turn"
# rf-revise: greedy revisions by the model (and adapter) that wrote the candidates
revise_opts="$sample_opts --rounds $(q "$REVISE")"
# --objective dpo / sft+dpo: preference pairs from the same verdicts, weighed (--resample) and
# capped (--max-per-task) as the examples are; the most likely wrong answers first, and the
# gold SQL as the chosen answer where no candidate is right (as rf-inject teaches it to SFT)
pairs_opts="--pairs --resample $(q "$RESAMPLE") --rejected-by logprob --gold-chosen"
((MAX_PER_TASK > 0)) && pairs_opts+=" --max-pairs-per-task $(q "$MAX_PER_TASK")"
dpo_opts="--trainer dpo --base $(q "$TRAIN_MODEL")$(pass_options --option "$DPO_OPTIONS")"
[[ -n $ROOT ]] && data_opts+=" --root $(q "$ROOT")"

# evaluate LABEL ADAPTER DIR: greedy (and vote@K) execution accuracy on the dev tasks, and
# greedy on the validation tasks (the only number the best iteration is chosen by)
evaluate() {
  local iter=$1 adapter=$2 dir=$3 a='' name="iteration $1"
  [[ -n $adapter ]] && a="--adapter $(q "$adapter")"
  [[ $iter == sft ]] && name="SFT on gold"
  local sets=dev dev=$OUT/data/dev.jsonl val=$OUT/data/val.jsonl both=$dir/greedy.sampled.jsonl
  if ((VAL_SIZE > 0)); then
    sets="dev val"
    # The dev and validation tasks in one rf-sample call, split after by line count: the
    # model loads once per row, and a validation prompt on a database that a dev prompt also
    # asks about shares its prefill. (rf-sample writes one task per input line, in order.)
    if [[ ! -e $dir/dev.greedy.sampled.jsonl || ! -e $dir/val.greedy.sampled.jsonl ]]; then
      stage "$iter" greedy-sample "$both" \
        "cat $(q "$dev") $(q "$val") | rf-sample $sample_opts $a --stats $(q "$dir/greedy.sample.json") -k 1 --temperature 0"
      stage "$iter" dev-greedy-split "$dir/dev.greedy.sampled.jsonl" \
        "n=\$(wc -l < $(q "$dev")); m=\$(wc -l < $(q "$val")); got=\$(wc -l < $(q "$both")); [[ \$got == \$((n + m)) ]] || { echo \"$(q "$both") has \$got lines, not \$n + \$m\" >&2; exit 1; }; head -n \"\$n\" $(q "$both")"
      stage "$iter" val-greedy-split "$dir/val.greedy.sampled.jsonl" \
        "tail -n +\$((\$(wc -l < $(q "$dev")) + 1)) $(q "$both")"
    fi
  else
    stage "$iter" dev-greedy-sample "$dir/dev.greedy.sampled.jsonl" \
      "rf-sample $sample_opts $a --stats $(q "$dir/greedy.sample.json") -k 1 --temperature 0 < $(q "$dev")"
  fi
  for set in $sets; do
    stage "$iter" "$set-greedy-exec" "$dir/$set.greedy.jsonl" \
      "rf-exec < $(q "$dir/$set.greedy.sampled.jsonl")"
    stage "$iter" "$set-greedy-eval" "$dir/$set.greedy.report.json" \
      "rf-eval --markdown $(q "$dir/$set.greedy.report.md") --title $(q "$name: $set greedy") < $(q "$dir/$set.greedy.jsonl")"
    ((REVISE > 0)) && revised "$iter" "$set-greedy" "$dir/$set.greedy" "$a" "$name: $set greedy"
  done
  if ((VOTE > 0)); then
    stage "$iter" dev-vote-sample "$dir/dev.vote.sampled.jsonl" \
      "rf-sample $sample_opts $a --stats $(q "$dir/dev.vote.sample.json") -k $(q "$VOTE") --temperature $(q "$TEMPERATURE") < $(q "$OUT/data/dev.jsonl")"
    stage "$iter" dev-vote-exec "$dir/dev.vote.jsonl" \
      "rf-exec < $(q "$dir/dev.vote.sampled.jsonl") | rf-vote"
    stage "$iter" dev-vote-eval "$dir/dev.vote.report.json" \
      "rf-eval --markdown $(q "$dir/dev.vote.report.md") --title $(q "$name: dev vote@$VOTE") < $(q "$dir/dev.vote.jsonl")"
    ((REVISE > 0)) && revised "$iter" dev-vote "$dir/dev.vote" "$a" "$name: dev vote@$VOTE" rf-vote
  fi
  return 0
}

# revised LABEL NAME BASE ADAPTER_ARG TITLE [THEN]: BASE.jsonl's answers revised (rf-revise,
# then rf-exec and THEN), scored into BASE.revised.report.json: EX before and after revision
revised() {
  local iter=$1 name=$2 base=$3 a=$4 title=$5 then=${6:+ | $6}
  stage "$iter" "$name-revise" "$base.revised.jsonl" \
    "rf-revise $revise_opts $a < $(q "$base.jsonl") | rf-exec$then"
  stage "$iter" "$name-revised-eval" "$base.revised.report.json" \
    "rf-eval --markdown $(q "$base.revised.report.md") --title $(q "$title + $REVISE revision round(s)") < $(q "$base.revised.jsonl")"
}

# train LABEL DIR: an adapter in DIR/adapter from DIR/examples.jsonl (--objective sft, and the
# SFT baseline), DIR/pairs.jsonl (dpo) or both (sft+dpo), always from the base model
train() {
  local iter=$1 dir=$2 opts=$train_opts file=$2/examples.jsonl
  if [[ $iter != sft && $OBJECTIVE != sft ]]; then
    opts=$dpo_opts file=$dir/pairs.jsonl
    if [[ $OBJECTIVE == sft+dpo ]]; then
      file=$dir/train.input.jsonl
      stage "$iter" train-input "$file" "cat $(q "$dir/pairs.jsonl") $(q "$dir/examples.jsonl")"
    fi
  fi
  stop_engine
  # rf-train renames its adapter into place itself; --resume picks up its own checkpoint
  local args="$opts --out $(q "$dir/adapter") --force --resume --epochs $(q "$EPOCHS") --lr $(q "$LR") --batch-size $(q "$BATCH_SIZE") --max-len $(q "$MAX_LEN") --max-too-long $(q "$MAX_TOO_LONG") --seed $(q "$SEED")"
  if [[ -z $TRAIN_LAUNCHER ]]; then
    stage "$iter" train "$dir/train.report.json" "rf-train $args < $(q "$file")"
  else
    # a launcher's processes share one stdin: each reads the examples as FILE instead
    stage "$iter" train "$dir/train.report.json" \
      "$train_launch $(q "$rf_train") $args $(q "$file")"
  fi
}
# --train-launcher: its words, each quoted (the stage's shell runs no more than the command);
# rf-train by its path, since torchrun and accelerate take a script
train_launch='' rf_train=''
if [[ -n $TRAIN_LAUNCHER ]]; then
  read -ra words <<< "$TRAIN_LAUNCHER"  # read, not $TRAIN_LAUNCHER: a word like * must not glob
  for word in "${words[@]}"; do train_launch+="${train_launch:+ }$(q "$word")"; done
  if ! rf_train=$(command -v rf-train); then
    echo "iterate.sh: --train-launcher: rf-train is not on PATH" >&2
    exit 2
  fi
fi

# train_round ITER PREV_ADAPTER TASKS [EXTRA_EXAMPLES]: sample, verify, select, train, evaluate
# (the pairs beside EXTRA_EXAMPLES come along with them under --objective dpo and sft+dpo)
train_round() {
  local iter=$1 prev=$2 tasks=$3 extra=${4:-} dir=$OUT/iter$1 a=
  [[ -n $prev ]] && a="--adapter $(q "$prev")"
  stage "$iter" train-sample "$dir/train.sampled.jsonl" \
    "rf-sample $sample_opts $a --stats $(q "$dir/train.sample.json") -k $(q "$K") --temperature $(q "$TEMPERATURE") < $(q "$tasks")"
  stage "$iter" train-exec "$dir/train.jsonl" "rf-exec $select_opts < $(q "$dir/train.sampled.jsonl")"
  local keep="cat /dev/null" picked=$dir/train.jsonl
  [[ -n $extra ]] && keep="cat $(q "$extra")"
  if ((REVISE > 0)); then
    # a revision that turns out correct trains the original prompt; a task it rescues needs
    # no gold SQL
    picked=$dir/train.revised.jsonl
    stage "$iter" train-revise "$picked" \
      "rf-revise $revise_opts $a < $(q "$dir/train.jsonl") | rf-exec $select_opts"
  fi
  stage "$iter" select "$dir/examples.jsonl" \
    "{ $keep; rf-filter $filter_opts < $(q "$picked"); rf-inject < $(q "$picked"); }"
  if [[ $OBJECTIVE != sft ]]; then
    keep="cat /dev/null"
    [[ -n $extra ]] && keep="cat $(q "${extra%/*}/pairs.jsonl")"
    stage "$iter" pairs "$dir/pairs.jsonl" \
      "{ $keep; rf-filter $pairs_opts < $(q "$picked"); }"
  fi
  train "$iter" "$dir"
  evaluate "$iter" "$dir/adapter" "$dir"
}

# config KIND...: the settings of those kinds as NAME=VALUE lines, in SETTINGS order
config() {
  local name kind
  for name in "${ORDER[@]}"; do
    for kind in "$@"; do
      [[ ${KIND_OF[$name]} == "$kind" ]] && printf '%s=%s\n' "$name" "${!name}"
    done
  done
  return 0
}

if ((!DRY)); then
  if ! why=$(mkdir -p -- "$OUT" 2>&1); then
    echo "iterate.sh: --out (RF_OUT): cannot make the folder '$OUT': ${why##*: }" >&2
    exit 2
  fi
  # One run per folder: a second one would write into the first one's stages. Stages hold
  # the lock too, so a stage left running by a killed driver still counts as the run.
  not_a_link "$OUT/.lock"
  exec 9<>"$OUT/.lock"
  if ! flock -n 9; then
    holder=$(head -c 20 "$OUT/.lock")
    # A driver killed outright (SIGKILL) leaves its running stage holding the lock until the
    # stage's watcher kills it, a moment later: when the driver the lock names is gone, a
    # rerun waits for that (a minute at most) instead of refusing.
    if [[ $holder =~ ^[0-9]+$ && ! -e /proc/$holder ]] && ! kill -0 "$holder" 2>/dev/null; then
      log "$OUT: a stage of a run that was killed (pid $holder) still holds it; waiting for it to end"
      if ! flock -w 60 9; then
        echo "iterate.sh: $OUT is still held by a stage of a killed run (pid $holder) after" \
          "60 s; stop that stage (its process group) or wait for it" >&2
        exit 2
      fi
    else
      echo "iterate.sh: $OUT is in use by another run (pid $holder)," \
        "wait for it to finish or stop it" >&2
      exit 2
    fi
  fi
  echo $$ > "$OUT/.lock"
  trap stop_engine EXIT
  if [[ -e $OUT/config.env ]]; then
    # free settings may change between reruns: a rerun may extend or shorten the loop over
    # the same earlier iterations, or allow more over-long examples after a stop
    changed=$(config value bool options | while IFS= read -r line; do
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
  # the folders whose stage files the driver writes, and its own files
  folders=("$OUT/data")
  for ((i = 0; i <= ITERATIONS + RETRAIN_ON_ERRORS; i++)); do folders+=("$OUT/iter$i"); done
  ((SFT_BASELINE)) && folders+=("$OUT/sft")
  for f in "${folders[@]}" "$OUT/timings.tsv" "$OUT/config.env.tmp.$$"; do not_a_link "$f"; done
  mkdir -p -- "${folders[@]}"
  [[ -e $OUT/timings.tsv ]] || printf 'iteration\tstage\tms\n' > "$OUT/timings.tsv"
  { echo "PRESET=$preset"; config value bool options free freebool; } > "$OUT/config.env.tmp.$$"
  mv -- "$OUT/config.env.tmp.$$" "$OUT/config.env"
fi

dev_limit=
((DEV_SIZE > 0)) && dev_limit="--limit $(q "$DEV_SIZE") --seed $(q "$SEED")"
stage 0 data-train "$OUT/data/train.jsonl" \
  "rf-data $(q "$DATASET") $data_opts --split train --limit $(q "$TRAIN_SIZE") --seed $(q "$SEED")"
stage 0 data-dev "$OUT/data/dev.jsonl" "rf-data $(q "$DATASET") $data_opts --split dev $dev_limit"
if ((VAL_SIZE > 0)); then
  stage 0 data-val "$OUT/data/val.jsonl" \
    "rf-data $(q "$DATASET") $data_opts --split $(q "$VAL_SPLIT") --limit $(q "$VAL_SIZE") --seed $(q "$SEED") --exclude $(q "$OUT/data/train.jsonl")"
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

if ((RETRAIN_ON_ERRORS && ITERATIONS > 0)); then
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
# the closing line: this run's wall time (a resumed run counts only what it ran itself) and
# the stage time of every stage in timings.tsv, earlier runs' included
stage_ms=$(awk -F'\t' 'NR > 1 { ms += $3 } END { print ms + 0 }' "$OUT/timings.tsv")
printf '\niterate.sh: wall time %dm%02ds; stage time in %s/timings.tsv %dm%02ds\n' \
  $((SECONDS / 60)) $((SECONDS % 60)) "$OUT" $((stage_ms / 60000)) $((stage_ms / 1000 % 60))
