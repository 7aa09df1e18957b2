# tally — `make run` serves the demo, `make test` runs the whole suite (`make test-fast` all but
# the slow tests). No root, no Docker.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
PYTEST_ARGS ?=

BENCH_ARGS ?=
SOAK_ARGS ?=

.PHONY: install run test test-fast lint clean bench soak

$(STAMP): setup.cfg pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	@touch $(STAMP)

install: $(STAMP) ## create .venv and install tally with its test tools

run: $(STAMP) ## embedded Redis + SQLite under var/ + migrations + demo + web, worker, scheduler
	$(BIN)/python -m tally.dev.launcher

test: $(STAMP) ## the whole suite against real redis-server (and PostgreSQL when available)
	$(BIN)/python -m pytest $(PYTEST_ARGS)

test-fast: $(STAMP) ## the suite without the tests marked slow (real processes, chaos): minutes
	$(BIN)/python -m pytest -m "not slow" $(PYTEST_ARGS)

bench: $(STAMP) ## the benchmark table of docs/benchmarks.md (BENCH_ARGS="--quick" to try it)
	@command -v wrk >/dev/null || { echo "installing wrk (apt-get, needs root)"; \
		apt-get install -y -qq wrk >/dev/null 2>&1 || \
		{ apt-get update -qq && apt-get install -y -qq wrk; }; }
	$(BIN)/python -m bench.run $(BENCH_ARGS)

soak: $(STAMP) ## simulated days through the real worker, state per day (docs/operations.md; not in test)
	$(BIN)/python -m bench.soak $(SOAK_ARGS)

lint: $(STAMP)
	$(BIN)/python -m flake8 src workers tests config bench wsgi.py

clean:
	rm -rf $(VENV) var .pytest_cache build *.egg-info
