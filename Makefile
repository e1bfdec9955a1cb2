# onestack: `make up` for a running cloud, `make test` for the whole suite.
SHELL := /bin/bash
# Some shells set PYTHONDONTWRITEBYTECODE: then every process of the suite (each cloud,
# each CLI call, each test worker) would compile onestack from source again.
unexport PYTHONDONTWRITEBYTECODE
VENV := .venv
ONESTACK := $(VENV)/bin/onestack
PYTEST_ARGS ?=
CAPS ?=
VALIDATION ?=
GUIDELINE ?=

.PHONY: install install-test up down cluster cluster-down test test-fast interop bench lint

install:            ## idempotent set-up: Debian packages and .venv
	@scripts/install.sh

install-test:
	@scripts/install.sh test

up: install         ## install if needed, bootstrap and start the all-in-one cloud, register the tiny image
	@$(ONESTACK) up --detach
	@$(ONESTACK) image register tiny

down:
	@$(ONESTACK) down

cluster: install    ## a multi-node cloud on this machine: controller, 2 compute+network nodes, storage node
	@$(ONESTACK) cluster up
	@$(ONESTACK) image register tiny

cluster-down:       ## stop the multi-node cloud and remove its namespaces (its state stays; --purge in the CLI)
	@$(ONESTACK) cluster down

# The quick part (unit and API tests on simulated hosts, SQLite; nothing that needs
# root, guests or namespaces; tests/conftest.py says which) runs on 4 workers: its
# tests mostly wait on their clouds, not on the CPU. Then the tests that use the host,
# one at a time, and at the same time, in a second pytest, those that only add a
# PostgreSQL server of their own (their output follows the host tests').
QUICK := --part quick -n 4 --dist loadfile
BESIDE_LOG := .pytest-beside.log
test: install-test lint  ## the whole suite (unit, API through real clients, PostgreSQL, guests, cluster, interop)
	@$(VENV)/bin/python -m pytest $(QUICK) --durations=20 $(PYTEST_ARGS); quick=$$?; \
	 $(VENV)/bin/python -m pytest --part beside --durations=10 $(PYTEST_ARGS) > $(BESIDE_LOG) 2>&1 & beside_pid=$$!; \
	 $(VENV)/bin/python -m pytest --part host --durations=30 $(PYTEST_ARGS); host=$$?; \
	 wait $$beside_pid; beside=$$?; \
	 echo "==== the tests beside the host tests (--part beside):"; cat $(BESIDE_LOG); \
	 echo "make test: quick part exit $$quick, host tests exit $$host, beside them exit $$beside"; \
	 for c in $$quick $$host $$beside; do [ $$c -eq 0 ] || [ $$c -eq 5 ] || exit 1; done  # 5: none selected

# The edit-test loop (< 5 min): the quick part alone.
test-fast: install-test  ## unit + API tests on fake hosts (SQLite), the quick loop
	@$(VENV)/bin/python -m pytest tests/unit tests/api $(QUICK) $(PYTEST_ARGS)

interop: install    ## Tempest interop guidelines against the running cloud (GUIDELINE=platform|orchestration|telemetry, CAPS=identity-v3-* ..., VALIDATION=auto|on|off)
	@$(ONESTACK) up --detach >/dev/null
	@$(ONESTACK) image register tiny >/dev/null
	@GUIDELINE="$(GUIDELINE)" CAPS="$(CAPS)" VALIDATION="$(VALIDATION)" $(VENV)/bin/python tests/interop/run.py

bench: install      ## benchmarks against a cloud they start; prints figures
	@$(VENV)/bin/python bench/startup.py
	@$(VENV)/bin/python bench/identity.py
	@$(VENV)/bin/python bench/image.py
	@$(VENV)/bin/python bench/tiny_boot.py
	@$(VENV)/bin/python bench/object.py
	@$(VENV)/bin/python bench/network.py
	@$(VENV)/bin/python bench/boot.py
	@$(VENV)/bin/python bench/volume.py
	@$(VENV)/bin/python bench/scale.py
	@$(VENV)/bin/python bench/orchestration.py

lint: install-test  ## ruff, and the layer contracts of pyproject.toml [tool.importlinter]
	@$(VENV)/bin/ruff check onestack tests bench
	@$(VENV)/bin/lint-imports --no-cache
