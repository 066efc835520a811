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
MINIGRID_METHODS := dense gmp set redo reset wd ln pcgrad gmp-pcgrad cagrad gmp-cagrad
MINIGRID_RUNS := $(foreach b,mt3 mt5 mt7,$(foreach m,$(MINIGRID_METHODS),$(b)-$(m)))
MT10_METHODS := dense gmp gmp-ac set rigl mst
MT10_RUNS := $(foreach m,$(MT10_METHODS),mt10-$(m))
# ARCH and SEEDS given on the command line win; otherwise MT10 runs MTMHSAC with 10 seeds.
given = $(filter command line environment,$(origin $(1)))
MT10_ARCH = $(if $(call given,ARCH),$(ARCH),mtmhsac)
MT10_SEEDS = $(if $(call given,SEEDS),$(SEEDS),10)
# The study's matrix (the paper's comparison plus the PCGrad ablation); narrow it with e.g.
# `make minigrid-study STUDY_ARCHS=mtppo STUDY_BENCH=mt3 SEEDS=10`.
STUDY_ARCHS ?= mtppo moe moore
STUDY_BENCH ?= mt3 mt5 mt7
STUDY_METHODS ?= dense gmp set redo reset wd ln pcgrad gmp-pcgrad
REPORT_DIR ?= runs/report

.PHONY: install test test-fast test-slow test-extended test-metaworld lint format train sparsity-demo lock clean \
	bench bench-quick bench-install minigrid-study minigrid-report study-archive mt10-maskgen \
	$(MINIGRID_RUNS) $(MT10_RUNS)

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

# The whole suite, the long learning checks included (marked `slow`); the Meta-World SAC
# learning check (`mjx_learning`) and the checks kept out of CI for time (`extended`: MTPPO dense
# and SET on MiniGrid, the 4-fake-device run, drawer-open's and button-press-topdown's MJX
# differential tests) run apart: `make test-metaworld`, `make test-extended`.
test: lint
	$(PY) -m pytest -q -n $(PYTEST_WORKERS) --dist loadgroup --durations=15 \
		-m "not mjx_learning and not extended"

test-extended: install
	$(PY) -m pytest -q -m extended

test-fast: install
	$(PY) -m pytest -q -n $(PYTEST_WORKERS) --dist loadgroup -m "not slow and not mjx_learning and not extended"

test-slow: install
	$(PY) -m pytest -q -m slow

# Meta-World SAC learning checks (about 35 min on 2 cores, 12 of them compiling MJX).
test-metaworld: install
	$(PY) -m pytest -q -m mjx_learning

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

# Multi-task SAC on Meta-World MT10 (MJX): `make mt10-gmp SEEDS=10` (ARCH=mtmhsac|mooresac|softmod,
# default mtmhsac; the other two: MOORE-SAC, Soft Modularization); a subset of the tasks with
# ARGS='env.suite=[reach-v3,push-v3]'.
$(MT10_RUNS): install
	$(VENV)/bin/jaxsparse train $@ --resume --seeds $(MT10_SEEDS) net.arch=$(MT10_ARCH) $(ARGS)

# The neuron-level mask generator on MT10 (multi-head SAC; RATIO: fraction of each hidden layer's
# neurons masked off, 0.8 or 0.5), in runs/mt10-maskgen/ratio<RATIO>-<SEEDS>seeds.
RATIO ?= 0.8
mt10-maskgen: install
	$(VENV)/bin/jaxsparse train $@ --resume --seeds $(MT10_SEEDS) \
		--run-dir runs/mt10-maskgen/ratio$(RATIO)-$(MT10_SEEDS)seeds maskgen.ratio=$(RATIO) $(ARGS)

# Every run of the study, one after the other (each with its seeds vmapped); complete runs are
# skipped and interrupted ones resume. Then the report (table + figures) in $(REPORT_DIR).
minigrid-study: install
	@set -e; for a in $(STUDY_ARCHS); do for b in $(STUDY_BENCH); do for m in $(STUDY_METHODS); do \
		$(MAKE) --no-print-directory $$b-$$m ARCH=$$a SEEDS=$(SEEDS) ARGS='$(ARGS)'; \
	done; done; done
	$(MAKE) --no-print-directory minigrid-report

minigrid-report: install
	$(VENV)/bin/jaxsparse report runs --out $(REPORT_DIR)

# Keep the raw metrics of every complete run under runs/ in the repository (results/, without
# checkpoints and plots: a 10-seed MiniGrid run is ~1 MB), so that the study's report can be
# rebuilt from git: `make study-archive`, then `jaxsparse report results/minigrid`.
RESULTS_DIR ?= results/minigrid
RESULT_FILES := config.yaml summary.json metrics.csv train.csv diagnostics.csv
study-archive:
	@for s in runs/mt[357]-*/*/summary.json; do test -f "$$s" || continue; \
		d=$$(dirname $$s); r=$(RESULTS_DIR)/$${d#runs/}; mkdir -p $$r; \
		for f in $(RESULT_FILES); do test ! -f $$d/$$f || cp $$d/$$f $$r/; done; \
		echo "archived $$d -> $$r"; done

sparsity-demo: install
	$(VENV)/bin/jaxsparse sparsity-demo

# Speed figures (benchmarks/bench.py): one JSON per run in benchmarks/results/ and the generated
# block of benchmarks/RESULTS.md, grouped by device. `make bench` is the full set (about an hour
# on a 2-core CPU, most of it compiling MJX); `make bench-quick` the CPU quick mode (under 15 min,
# no Meta-World MJX). BENCH_ARGS: e.g. --sections train,flops. The bench extra adds the reference
# packages (Stable-Baselines3 with PyTorch) for the side-by-side baseline.
BENCH_ARGS ?=
BENCH_STAMP := $(VENV)/.bench-installed

bench-install: $(BENCH_STAMP)

$(BENCH_STAMP): $(STAMP)
	$(PY) -m pip install -q -c requirements-lock.txt -e ".[$(EXTRAS),bench]"
	touch $@

bench: bench-install
	PYTHONPATH=. $(PY) benchmarks/bench.py --mode full $(BENCH_ARGS)

bench-quick: bench-install
	PYTHONPATH=. $(PY) benchmarks/bench.py --mode quick $(BENCH_ARGS)

# Re-pin the whole dependency tree after changing pyproject.toml.
lock:
	rm -rf .venv-lock && $(PYTHON) -m venv .venv-lock
	.venv-lock/bin/pip install -q --upgrade pip
	.venv-lock/bin/pip install -q ".[test]"
	.venv-lock/bin/pip freeze --exclude jaxsparse > requirements-lock.txt
	rm -rf .venv-lock

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .hypothesis
