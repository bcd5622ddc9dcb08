# Two commands set up everything on a machine with only python3 and make:
#   make demo   creates .venv, installs paysplit, runs it on the bundled example
#   make test   the same environment, then lint, type check and the whole test suite
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
EXAMPLE := examples/ledgers/smith_family.json

.PHONY: demo test bytecode lint typecheck unit bench soak fuzz clean

# The example vendor plugin is installed too, exactly as a practice would
# install a third-party plugin: its tests and scenarios run in `make test`.
VENDOR := examples/vendor-plugin

# setuptools warns at length about every editable install; the warning says
# nothing about this project, so the install steps run with warnings off.
$(STAMP): export PYTHONWARNINGS = ignore
$(STAMP): pyproject.toml $(VENDOR)/pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test,dask]'
	$(BIN)/python -m pip install --quiet -e $(VENDOR)
	touch $(STAMP)

# Python caches a module's compiled bytecode in __pycache__ on first import, unless
# PYTHONDONTWRITEBYTECODE is set (CI images and containers often set it): then every
# `paysplit` process compiles the package's sources again (0.06-0.2 s a start).
# Installing a wheel compiles them once; an editable install leaves it to this step.
# compileall skips what is up to date, and an edited source is never run stale:
# Python checks each cached file against its source.
bytecode: $(STAMP)
	@$(BIN)/python -m compileall -q engine plugins benchmarks $(VENDOR)/src

demo: bytecode
	@bash examples/demo.sh

test: $(STAMP) lint typecheck unit

lint: $(STAMP)
	$(BIN)/ruff check engine plugins tests examples benchmarks
	$(BIN)/ruff format --check engine plugins

# mypy cannot follow an editable install's import hook, so it checks a tree of
# links that lays engine/ and plugins/ out as the installed package is.
typecheck: $(STAMP)
	@rm -rf build/typecheck && mkdir -p build/typecheck/paysplit
	@for f in engine/*; do ln -s ../../../$$f build/typecheck/paysplit/; done
	@ln -s ../../../plugins build/typecheck/paysplit/plugins
	cd build/typecheck && ../../$(BIN)/mypy --config-file ../../pyproject.toml -p paysplit

unit: bytecode
	$(BIN)/pytest -q -p no:cacheprovider

bench: bytecode
	$(BIN)/python -m benchmarks.rule_files
	$(BIN)/python -m benchmarks.run --repeat 2

# Long runs that hunt for failures (docs/reliability.md). Each test prints the
# number of cases it generated; the counts are also kept in build/reliability/.
RELIABILITY := build/reliability
SOAK_ENV := PAYSPLIT_PROPERTY_PROFILE=soak PAYSPLIT_RACE_ROUNDS=200 PAYSPLIT_KILL_ROUNDS=30
FUZZ_SCALE ?= 20

soak: $(STAMP)
	@rm -rf $(RELIABILITY)/soak && mkdir -p $(RELIABILITY)/soak
	$(SOAK_ENV) PAYSPLIT_RELIABILITY_OUT=$(RELIABILITY)/soak \
	  $(BIN)/pytest -q -p no:cacheprovider -s tests/test_properties.py tests/test_concurrency.py
	@echo "== counts (also in $(RELIABILITY)/soak/) ==" && cat $(RELIABILITY)/soak/*.txt

fuzz: $(STAMP)
	@rm -rf $(RELIABILITY)/fuzz && mkdir -p $(RELIABILITY)/fuzz
	PAYSPLIT_FUZZ_SCALE=$(FUZZ_SCALE) PAYSPLIT_RELIABILITY_OUT=$(RELIABILITY)/fuzz \
	  $(BIN)/pytest -q -p no:cacheprovider -s tests/test_fuzz_ledgers.py \
	  tests/test_fuzz_rule_files.py tests/test_rules_fuzz.py
	@echo "== counts (also in $(RELIABILITY)/fuzz/) ==" && cat $(RELIABILITY)/fuzz/*.txt

clean:
	rm -rf $(VENV) build .pytest_cache .mypy_cache .ruff_cache
