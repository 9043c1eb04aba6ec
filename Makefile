# Every target creates and reuses .venv itself: `make run` and `make test` are the whole set-up.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-$(shell cat pyproject.toml | cksum | cut -d' ' -f1)

.PHONY: run test test-fast bench lint format clean browser

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	@rm -f $(VENV)/.installed-*
	@touch $@

## run: migrate your transcripts (or the bundled sample) into the embedded ClickHouse, validate, summarise
run: $(STAMP)
	$(VENV)/bin/context-cleaner run

# Test workers for `make test`: most tests wait on subprocesses, servers and a browser, so two
# workers keep a 2-core machine busy; a file's tests stay on one worker (their fixtures are shared).
# Files are handed out longest first (tests/conftest.py), not those with most tests first.
TEST_WORKERS ?= 2

# Where the tests' scratch goes (databases, corpora, a Prefect home): a new folder on the RAM
# disk /dev/shm when it has 8 GB free, removed after a run that passes. On a disk mounted with
# `discard`, creating files slows ~30x once a few thousand were created and deleted nearby,
# as every run of the suite does (docs/benchmarks.md, "The test suite"). Readable by all: some
# tests walk it as the user nobody. TEST_TMPDIR= keeps the system's temporary folder.
TEST_TMPDIR ?= $(shell [ -d /dev/shm ] && [ "$$(df -Pk /dev/shm | awk 'NR==2 {print $$4}')" -gt 8000000 ] 2>/dev/null && echo /dev/shm)
PYTEST := $(PY) -m pytest -n $(TEST_WORKERS) --dist loadfile --no-loadscope-reorder --durations=15

## test: install what the tests need and run them all (TEST_WORKERS=0 runs them in this process)
test: $(STAMP) browser
ifeq ($(strip $(TEST_TMPDIR)),)
	$(PYTEST)
else
	@scratch=$$(mktemp -d $(TEST_TMPDIR)/context-cleaner-tests.XXXXXX) && chmod 755 "$$scratch" && \
	echo "test scratch: $$scratch" && TMPDIR=$$scratch $(PYTEST); \
	status=$$?; if [ $$status -eq 0 ]; then rm -rf "$$scratch"; else echo "test scratch kept: $$scratch"; fi; \
	exit $$status
endif

## test-fast: the quick tier, every test not marked slow (under a minute; reaches every module)
test-fast: $(STAMP)
	$(PY) -m pytest -m "not slow"

## browser: Debian's chromium for the dashboard's browser tests (installed when missing, as root)
browser:
	@if [ ! -x /usr/bin/chromium ]; then \
	  if [ "$$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then \
	    apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium; \
	  else \
	    echo "note: /usr/bin/chromium is missing and this is not root: the browser tests" \
	      "will be skipped (install it with: sudo apt-get install chromium)"; \
	  fi; \
	fi

## bench: measure speed and memory (see docs/benchmarks.md)
bench: $(STAMP)
	$(PY) benchmarks/run.py

## lint: ruff check and format check
lint: $(STAMP)
	$(VENV)/bin/ruff check src tests benchmarks
	$(VENV)/bin/ruff format --check src tests benchmarks

format: $(STAMP)
	$(VENV)/bin/ruff check --fix src tests benchmarks
	$(VENV)/bin/ruff format src tests benchmarks

clean:
	rm -rf $(VENV) build dist .pytest_cache .ruff_cache
