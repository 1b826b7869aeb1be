# The two commands a new user needs: `make up` and `make test` (see README.md).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: up test lint typecheck unit bench lock clean

$(STAMP): pyproject.toml requirements-test.lock
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --disable-pip-version-check -r requirements-test.lock
	$(BIN)/python -m pip install -q --disable-pip-version-check --no-deps -e .
	touch $@

up: $(STAMP)
	$(BIN)/corral up

test: $(STAMP) lint typecheck
	$(BIN)/pytest

lint: $(STAMP)
	$(BIN)/ruff check corral tests bench
	$(BIN)/ruff format --check corral tests bench

typecheck: $(STAMP)
	$(BIN)/mypy

unit: $(STAMP)
	$(BIN)/pytest tests/unit tests/api

bench: $(STAMP)
	$(BIN)/python bench/placement.py
	$(BIN)/python bench/fairshare.py
	$(BIN)/python bench/throughput.py
	$(BIN)/python bench/master_throughput.py
	$(BIN)/python bench/docker_sweep.py
	$(BIN)/python bench/cli_start.py
	$(BIN)/python bench/agent_start.py
	$(BIN)/python bench/gang.py
	$(BIN)/python bench/scale.py
	$(BIN)/python bench/loop_lag.py

# Re-resolve the pinned dependencies after editing pyproject.toml (needs network to PyPI).
lock:
	$(BIN)/python -m pip install -q uv
	$(BIN)/uv pip compile -q pyproject.toml -o requirements.lock
	$(BIN)/uv pip compile -q pyproject.toml --extra test -c requirements.lock -o requirements-test.lock

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
