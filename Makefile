# crmkit: `make demo` runs the daily pipeline on sample_data/, `make test` runs the suite.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DEMO := demo

.PHONY: demo test lint format bench clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	touch $(STAMP)

DEMO_DATE := 2025-01-01
DEMO_ARGS := --store $(DEMO)/crm-store --registry $(DEMO)/models

demo: $(STAMP)
	rm -rf $(DEMO)
	$(BIN)/crmkit ingest sample_data/transactions.csv --store $(DEMO)/crm-store
	$(BIN)/crmkit segment --as-of $(DEMO_DATE) --by value --out $(DEMO)/value_tiers.csv --store $(DEMO)/crm-store
	$(BIN)/crmkit train --as-of $(DEMO_DATE) --horizon 90 --name churn $(DEMO_ARGS)
	$(BIN)/crmkit score --as-of $(DEMO_DATE) --model churn --out $(DEMO)/scores.csv $(DEMO_ARGS)
	@echo "Churn scores for $(DEMO_DATE): $(DEMO)/scores.csv"

test: $(STAMP)
	$(BIN)/python -m pytest -q -p no:cacheprovider

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

bench: $(STAMP)
	$(BIN)/python -m pip install --quiet -e ".[bench]"
	$(BIN)/python -m bench all

clean:
	rm -rf $(VENV) $(DEMO) build *.egg-info
