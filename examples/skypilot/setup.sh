#!/usr/bin/env bash
# SkyPilot's setup, on every node: the project's venv; vLLM on the serving nodes.
set -euo pipefail
make install EXTRAS=models,test
if ((${SKYPILOT_NODE_RANK:-0} > 0)); then
  .venv/bin/python -m pip install vllm
fi
