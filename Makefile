.PHONY: install demo lint test test-fast

PYTHON := .venv/bin/python

# Installs the pinned stack into .venv when anything is missing (seconds once installed).
install:
	bash tools/install_env.sh

demo: install
	$(PYTHON) tools/demo.py

# flake8 and isort with the settings of setup.cfg (what .pre-commit-config.yaml runs)
lint: install
	$(PYTHON) -m flake8
	$(PYTHON) -m isort --check-only --diff .

# Two pytest workers (pytest-xdist), one per core, each taking the next test; the tests
# that share a trained checkpoint are one xdist_group, run by one worker, so that it is
# trained once. PYTEST_ARGS adds options.
PYTEST := $(PYTHON) -m pytest -q -n 2 --dist loadgroup

# everything: what CI runs (.ci/run)
test: install
	$(PYTEST) $(PYTEST_ARGS)

# the edit loop, before each commit: every test not marked slow
test-fast: install
	$(PYTEST) -m "not slow" $(PYTEST_ARGS)
