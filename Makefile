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

# everything: what CI runs (.ci/run)
test: install
	$(PYTHON) -m pytest -q

# the edit loop, before each commit: every test not marked slow
test-fast: install
	$(PYTHON) -m pytest -q -m "not slow"
