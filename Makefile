# wsserver developer tasks. Every target creates .venv on first use.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
# Two stamps: what running needs (wsserver and h11), and the test and lint tools on top.
RUN_STAMP := $(VENV)/.run-stamp
STAMP := $(VENV)/.installed-stamp

.PHONY: run test lint soak drills autobahn bench clean

# An editable install, plus a .pth file naming the source tree: mypy cannot
# follow setuptools' editable-install import hook, a path it reads, so that
# scripts type-checked with this venv's mypy find wsserver.
$(RUN_STAMP): pyproject.toml setup.py wsserver/protocol/_speedups.c
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip "setuptools>=77"
	$(PY) -m pip install --quiet -e .
	$(PY) -c 'import site; open(site.getsitepackages()[0] + "/wsserver-source.pth", "w").write("$(CURDIR)\n")'
	touch $(RUN_STAMP)

$(STAMP): $(RUN_STAMP)
	$(PY) -m pip install --quiet -e '.[test,lint]'
	touch $(STAMP)

## run: start the chat example on 127.0.0.1:8000 (installs only what running needs)
run: $(RUN_STAMP)
	@echo "Chat page: http://127.0.0.1:8000/"
	$(PY) -m wsserver examples.chat:routes --host 127.0.0.1 --port 8000

# The test runs start hundreds of Python processes (servers, workers, the CLI, pytest's own
# workers). Where the environment sets PYTHONDONTWRITEBYTECODE, each of them compiled wsserver
# and the tests afresh (a fifth of a second a process, a sixth of the suite's time). Their
# bytecode is kept in the venv instead, never in the source tree.
TEST_ENV := PYTHONDONTWRITEBYTECODE= PYTHONPYCACHEPREFIX=$(CURDIR)/$(VENV)/pycache

## test: the unit and integration tests
# Six pytest workers on two cores: most tests wait on sockets, timers and processes more than
# they compute (the suite grew: four workers took 2 min 50 s on CI, and six take some 30% less
# beside the same load here).
# First, the test modules pytest rewrites are cached by two processes (tests/warm_collection.py:
# on a fresh clone each of the six workers rewrote them all, 10 s of CPU each; nothing to do after).
test: $(STAMP)
	@$(TEST_ENV) $(PY) -m tests.warm_collection
	$(TEST_ENV) $(PY) -m pytest -q -n 6

## drills: process and Redis outage drills (workers killed, restarts, signals, Redis down or frozen)
drills: $(STAMP)
	$(TEST_ENV) $(PY) -m pytest -q -m drill

## soak: long soak and abuse runs against a server subprocess
soak: $(STAMP)
	$(TEST_ENV) $(PY) -m pytest -q -s -m soak tests/soak

## lint: ruff and mypy --strict
lint: $(STAMP)
	$(VENV)/bin/ruff check wsserver tests examples autobahn benchmarks
	$(VENV)/bin/ruff format --check wsserver tests examples autobahn benchmarks
	$(VENV)/bin/mypy --strict wsserver

## autobahn: the Autobahn fuzzingclient suite, compression on and off
autobahn: $(STAMP)
	bash autobahn/setup.sh
	$(PY) autobahn/run.py

## bench: the benchmark suite, wsserver against its peers (benchmarks/README.md);
## BENCH_ARGS="--quick --only a,c --servers wsserver,node" narrows it
bench: $(STAMP)
	$(PY) -m benchmarks.run --python $(PYTHON) $(BENCH_ARGS)

clean:
	rm -rf $(VENV) autobahn/reports .pytest_cache .mypy_cache .hypothesis
