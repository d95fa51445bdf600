# `make demo` and `make test` each bootstrap .venv first (again whenever
# pyproject.toml changes), so they work on a fresh clone with only Python 3.11+.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test test-litellm-versions lint typecheck unit bench bench-export bench-litellm clean

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit("tracekit needs Python 3.11+, found " + sys.version.split()[0]) if sys.version_info < (3, 11) else None'
	@test -x $(BIN)/python || { echo "==> creating $(VENV)"; $(PYTHON) -m venv $(VENV); }
	@echo "==> installing tracekit with every extra and the dev tools into $(VENV) (first time: a few minutes)"
	@# One line per package pip fetches (pip's full output would bury the demo); pip's status is kept.
	@bash -c '$(BIN)/python -m pip install --disable-pip-version-check --progress-bar off -e ".[dev]" \
		| grep --line-buffered -E "^(Collecting|Successfully|ERROR)"; exit $${PIPESTATUS[0]}'
	@echo "==> $(VENV) ready"
	@touch $(STAMP)

demo: $(STAMP)
	$(BIN)/python examples/quickstart.py
	$(BIN)/tracekit show last

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(STAMP)
	$(BIN)/mypy

unit: $(STAMP)
	$(BIN)/python -m pytest

test: lint typecheck unit

# The LiteLLM tests against the oldest and newest supported LiteLLM, each in a
# throwaway venv of its own (not .venv), so it needs nothing but $(PYTHON).
test-litellm-versions:
	PYTHON=$(PYTHON) bash ci/litellm_versions.sh

bench: $(STAMP)
	$(BIN)/python benchmarks/overhead.py

bench-export: $(STAMP)
	$(BIN)/python benchmarks/export.py

bench-litellm: $(STAMP)
	$(BIN)/python benchmarks/litellm_overhead.py

clean:
	rm -rf $(VENV) .tracekit .pytest_cache .mypy_cache .ruff_cache
