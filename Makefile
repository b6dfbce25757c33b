# Two commands on a fresh machine:  make demo  (the tiny study)  and  make test  (what CI runs).
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
OUT ?= outputs

.PHONY: install demo bases lint test test-fast clean

$(BIN)/.installed: pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q "torch==2.13.0"          # the CPU build; GPU users install their own torch first
	$(BIN)/pip install -q -e ".[test,bench]"   # bench: TRL, so the benchmark smoke tests run its path too
	touch $@

install: $(BIN)/.installed

# The demo study: SFT (3 seeds) -> GRPO from 4 checkpoints -> spectral -> bootstrap analysis ->
# README section and docs/tiny_demo.png regenerated from the analysis tables.
demo: $(BIN)/.installed
	$(BIN)/sweeps-study experiment=tiny_demo hydra/launcher=local paths.output_dir=$(OUT)
	$(BIN)/python -m sweeps.cli.demo_report $(OUT)/tiny_demo

# Rebuild the shipped tiny bases (assets/tiny_base/base<seed>/): ~17 min per seed on one thread.
bases: $(BIN)/.installed
	$(BIN)/sweeps-train -m hydra/launcher=local experiment=tiny_pretrain seed=0,1 paths.output_dir=$(OUT)
	$(BIN)/python -m sweeps.models.export_base $(OUT)/tiny_pretrain

# ruff: lint (pyproject's [tool.ruff]) and the formatter's check; `ruff format .` applies it.
lint: $(BIN)/.installed
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

test: lint
	$(BIN)/python -m pytest -q tests

test-fast: $(BIN)/.installed
	$(BIN)/python -m pytest -q -m "not slow" tests

clean:
	rm -rf $(OUT)
