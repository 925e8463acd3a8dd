# paperlab monorepo tasks. `make setup` once, then `make test-all`.
UV ?= uv
PYTHON ?= python3
RUN := $(UV) run --frozen
JOBS ?= 2
PKGS := $(notdir $(patsubst %/,%,$(dir $(wildcard packages/*/pyproject.toml))))
PKG_TESTS := $(wildcard packages/*/tests)
XDIST := -n $(JOBS) --dist load

.PHONY: setup test test-all test-slow lint format demo wheels gpu-smoke help $(addprefix test-,$(PKGS)) $(addprefix reproduce-,$(PKGS))

help:
	@echo "setup | test | test-all | test-slow | test-<pkg> | lint | format | demo | wheels | reproduce-<pkg> | gpu-smoke"
	@echo "packages: $(PKGS)"

setup:
	$(UV) sync --locked

# fast: paperlab + every package's unit tests (no subprocess contract checks, no DDP, no slow tests)
test:
	$(RUN) pytest $(XDIST) -m "not slow and not contract and not ddp" shared/tests $(PKG_TESTS)

# everything that CI runs: paperlab tests, every package's tests, the cross-package contract suite, the DDP check
test-all:
	$(RUN) pytest $(XDIST) -m "not slow" shared/tests tests $(PKG_TESTS)

test-slow:
	$(RUN) pytest -m slow shared/tests tests $(PKG_TESTS)

$(addprefix test-,$(PKGS)): test-%:
	$(RUN) pytest $(XDIST) -m "not slow" packages/$*/tests tests/test_contract.py -k "$* or workspace"

lint:
	$(RUN) ruff check .
	$(RUN) ruff format --check .

format:
	$(RUN) ruff check --fix .
	$(RUN) ruff format .

# every package's `train` on its embedded default, one epoch
demo:
	@set -e; for p in $(PKGS); do \
		echo "== $$p"; $(RUN) $$(echo $$p | tr _ -) train --trainer.max_epochs=1 --run_name=demo; \
	done

# every package's wheel and paperlab-core's, offline (hatchling from the dev group); the contract suite installs
# them into fresh venvs outside the repo (tests/test_contract.py::test_wheel_installs_and_runs_outside_the_repo)
wheels:
	$(UV) build --all-packages --wheel --no-build-isolation --offline -o dist

$(addprefix reproduce-,$(PKGS)): reproduce-%:
	$(RUN) $(subst _,-,$*) reproduce $(ARGS)

# For a lent CUDA machine that has torch/lightning/timm but not our packages: put sources on PYTHONPATH.
gpu-smoke:
	PYTHONPATH=$(subst $(eval) ,:,$(wildcard packages/*/src) shared/src) $(PYTHON) scripts/gpu_smoke.py
