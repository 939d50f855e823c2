# Two entry points: `make demo` (the main job) and `make test`. Both install into .venv first.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
OUT    ?= out/demo

.PHONY: install demo test bench clean

$(VENV)/.installed: pyproject.toml examples/reasonforge-canonical/pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet -e '.[models,test]' ./examples/reasonforge-canonical
	touch $@

install: $(VENV)/.installed

demo: install
	PATH="$(CURDIR)/$(BIN):$$PATH" OUT="$(OUT)" bin/demo.sh

test: install
	$(BIN)/python -m pytest -q

bench: install
	$(BIN)/python bench/exec_bench.py

clean:
	rm -rf $(VENV) out
