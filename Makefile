# The two commands in the README: `make run` and `make test`. Both set up the venv first;
# `make test` also installs Debian's chromium and starts (never installs) Redis and PostgreSQL.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# Test processes side by side: most tests wait on sockets, browsers and servers, so two
# halve the suite's time even on a 2-core machine (more made the browser tests flaky there).
TEST_WORKERS ?= 2

.PHONY: run test lint setup browser wordlist services clean

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null || { \
	  echo "helpline needs Python 3.11 or newer: '$(PYTHON)' is $$($(PYTHON) --version 2>&1 | head -1)." >&2; \
	  echo "Install it (Debian: apt-get install python3 python3-venv), or: make run PYTHON=python3.12" >&2; \
	  exit 1; }
	@$(PYTHON) -c 'import ensurepip, venv' 2>/dev/null || { \
	  echo "Python's venv module is missing (Debian: apt-get install python3-venv)." >&2; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $(STAMP)

setup: $(STAMP)

run: $(STAMP)
	$(BIN)/python run.py

# Debian's chromium for the browser tests (never a downloaded browser).
browser:
	@command -v chromium >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && apt-get install -y -qq chromium >/dev/null; \
	  else sudo apt-get update -qq && sudo apt-get install -y -qq chromium >/dev/null; fi; }

# Debian's British English word list, which tests/test_ordinary_words.py checks
# content/directory/ordinary_words.yaml against (scripts/ordinary_words.py writes it).
wordlist:
	@test -f /usr/share/dict/british-english || { \
	  if [ "$$(id -u)" = 0 ]; then apt-get install -y -qq wbritish >/dev/null || { apt-get update -qq && apt-get install -y -qq wbritish >/dev/null; }; \
	  else sudo apt-get install -y -qq wbritish >/dev/null || { sudo apt-get update -qq && sudo apt-get install -y -qq wbritish >/dev/null; }; fi; }

# Redis and PostgreSQL installed on this machine, started if they are not answering
# (PostgreSQL as root); a clear message and a failure if they are not installed.
services:
	@bash .ci/services

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports

test: $(STAMP) browser wordlist services lint
	$(BIN)/python run.py check-content
	$(BIN)/pytest -q -p no:cacheprovider -n $(TEST_WORKERS) --dist worksteal --durations=15

clean:
	rm -rf $(VENV) *.egg-info .pytest_cache .mypy_cache .ruff_cache
