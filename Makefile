# Two commands on a fresh machine:  make demo  (the tiny study)  and  make test  (what CI runs).
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
OUT ?= outputs

.PHONY: install demo test test-fast clean

$(BIN)/.installed: pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q "torch==2.13.0"          # the CPU build; GPU users install their own torch first
	$(BIN)/pip install -q -e ".[test]"
	touch $@

install: $(BIN)/.installed

demo: $(BIN)/.installed
	$(BIN)/sweeps-train -m hydra/launcher=local experiment=tiny_sft seed=0,1,2 paths.output_dir=$(OUT)
	$(BIN)/sweeps-analyze experiment=tiny_sft paths.output_dir=$(OUT)
	$(BIN)/python -m sweeps.summary $(OUT)/tiny_sft

test: $(BIN)/.installed
	$(BIN)/python -m pytest -q tests

test-fast: $(BIN)/.installed
	$(BIN)/python -m pytest -q -m "not slow" tests

clean:
	rm -rf $(OUT)
