#!/usr/bin/env bash
# SkyPilot's run, on every node at once (SKYPILOT_NODE_RANK, SKYPILOT_NODE_IPS): node 0 runs
# the loop and trains; the others serve the model with vLLM. Settings: reasonforge.yaml's envs.
set -euo pipefail
rank=${SKYPILOT_NODE_RANK:?run under SkyPilot (SKYPILOT_NODE_RANK)}
mapfile -t ips <<< "${SKYPILOT_NODE_IPS:?run under SkyPilot (SKYPILOT_NODE_IPS)}"
model=${RF_MODEL:?} spider=${RF_SPIDER:?} out=${RF_OUT:?}
local_dir=${RF_LOCAL_DIR:-/tmp/reasonforge}
port=${RF_VLLM_PORT:-8000}
gpus=${SKYPILOT_NUM_GPUS_PER_NODE:-1}
project=${RF_PROJECT:-$PWD}  # SkyPilot runs this in the synced workdir

# shellcheck disable=SC1091 # the project's own venv, made by setup.sh
[[ -f $project/.venv/bin/activate ]] && source "$project/.venv/bin/activate"

# The databases on this node's local disk, at the same path on every node: tasks carry the
# path of their database, and whichever node verifies opens it there.
mkdir -p "$local_dir"
cp -r "$spider" "$local_dir/"
root=$local_dir/$(basename "$spider")

if ((rank > 0)); then  # a serving node: until the cluster is taken down
  exec env VLLM_ALLOW_RUNTIME_LORA_UPDATING=True \
    vllm serve "$model" --host 0.0.0.0 --port "$port" --enable-lora --max-lora-rank 16
fi

sampler_options=()
for ip in "${ips[@]:1}"; do
  for ((waited = 0; ; waited += 5)); do  # a server loads its model before it answers
    curl -sf "http://$ip:$port/v1/models" > /dev/null && break
    if ((waited >= 1800)); then
      echo "run.sh: the vLLM server on $ip did not answer in 30 minutes" >&2
      exit 1
    fi
    sleep 5
  done
  sampler_options+=(--sampler-option "base_url=http://$ip:$port/v1")
done
mkdir -p "$out"
# shellcheck disable=SC2086 # RF_ITERATE_ARGS: several words
"$project/bin/iterate.sh" --preset "${RF_PRESET:-spider-h100}" --root "$root" --model "$model" \
  --out "$out" --sampler openai "${sampler_options[@]}" \
  --train-launcher "torchrun --nproc-per-node=$gpus" ${RF_ITERATE_ARGS:-}
