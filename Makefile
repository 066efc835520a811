# jaxsparse: `make test` on a fresh machine creates .venv, installs the pinned dependencies
# and runs lint + the test suite. GPU: `make install JAX_EXTRA=cuda13` (or cuda12).

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
JAX_EXTRA ?=
EXTRAS := test$(if $(JAX_EXTRA),$(comma)$(JAX_EXTRA))
comma := ,
PYTEST_WORKERS ?= 2
STAMP := $(VENV)/.installed-$(if $(JAX_EXTRA),$(JAX_EXTRA),cpu)

ARCH ?= mtppo
SEEDS ?= 30
ARGS ?=
MINIGRID_RUNS := $(foreach b,mt3 mt5 mt7,$(foreach m,dense gmp set,$(b)-$(m)))

.PHONY: install test test-fast test-slow lint format train sparsity-demo lock clean $(MINIGRID_RUNS)

install: $(STAMP)

$(STAMP): pyproject.toml requirements-lock.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -c requirements-lock.txt -e ".[$(EXTRAS)]"
	rm -f $(VENV)/.installed-*
	touch $@

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

# The whole suite, the long learning checks included (they are marked `slow`).
test: lint
	$(PY) -m pytest -q -n $(PYTEST_WORKERS) --durations=15

test-fast: install
	$(PY) -m pytest -q -n $(PYTEST_WORKERS) -m "not slow"

test-slow: install
	$(PY) -m pytest -q -m slow

format: install
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

# The newcomer's first command: train MTPPO + GMP on MiniGrid MT3 (same as `make mt3-gmp`).
train: mt3-gmp

# MiniGrid PPO runs of the sparsity paper: `make mt3-gmp ARCH=moore SEEDS=30` (ARGS: more
# key=value overrides). Runs land in runs/<experiment>/<arch>-<seeds>seeds; an interrupted run
# resumes from its last checkpoint, a complete one is skipped.
$(MINIGRID_RUNS): install
	$(VENV)/bin/jaxsparse train $@ --resume --seeds $(SEEDS) net.arch=$(ARCH) $(ARGS)

sparsity-demo: install
	$(VENV)/bin/jaxsparse sparsity-demo

# Re-pin the whole dependency tree after changing pyproject.toml.
lock:
	rm -rf .venv-lock && $(PYTHON) -m venv .venv-lock
	.venv-lock/bin/pip install -q --upgrade pip
	.venv-lock/bin/pip install -q ".[test]"
	.venv-lock/bin/pip freeze --exclude jaxsparse > requirements-lock.txt
	rm -rf .venv-lock

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .hypothesis
