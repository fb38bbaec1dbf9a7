# churnlens: `make demo` and `make test` are all a fresh machine needs (Python 3.11 + pip).
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
DEMO   := data/demo

.DEFAULT_GOAL := help
.PHONY: help setup test demo bench lint cdnow

help: ## list the targets
	@grep -E '^[a-z]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-6s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev,spark]'
	touch $(STAMP)

setup: $(STAMP) ## create .venv, install churnlens with dev tools and Spark, and chromium for the report test
	@command -v chromium >/dev/null || (apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null)

test: setup ## run the test suite
	$(BIN)/python -m pytest -q

demo: setup ## simulate a shop, train, promote, score, report: prints the top customers to contact
	$(BIN)/churnlens simulate --customers 2000 --seed 1 --out $(DEMO)
	$(BIN)/churnlens validate -c configs/demo.yaml
	$(BIN)/churnlens features -c configs/demo.yaml --out out/training_set.parquet
	$(BIN)/churnlens train -c configs/demo.yaml
	$(BIN)/churnlens promote -c configs/demo.yaml || test $$? -eq 1
	$(BIN)/churnlens export -c configs/demo.yaml
	$(BIN)/churnlens score -c configs/demo.yaml --as-of 2025-12-31 --budget 200 --out out/scores
	$(BIN)/churnlens report -c configs/demo.yaml --scores out/scores --out out/report.html \
		--list out/contact_list.csv
	@echo "MLflow store: ./mlflow.db  (view: $(BIN)/mlflow ui --backend-store-uri sqlite:///mlflow.db)"

bench: setup ## run the benchmarks (large data; minutes)
	@for script in benchmarks/bench_*.py; do $(BIN)/python $$script || exit 1; done

lint: setup ## ruff check and format check
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks

cdnow: setup ## CDNOW (real purchases) end to end: validate + train at 90 and 180 days
	$(BIN)/python -c "from churnlens.datasets import load_cdnow; from churnlens.data.io import write_parquet; from pathlib import Path; [write_parquet(t, Path('data/cdnow') / f'{n}.parquet') for n, t in load_cdnow().items()]"
	$(BIN)/churnlens validate -c configs/cdnow.yaml
	$(BIN)/churnlens validate -c configs/cdnow-raw.yaml
	$(BIN)/churnlens train -c configs/cdnow.yaml
	$(BIN)/churnlens train -c configs/cdnow-180d.yaml
