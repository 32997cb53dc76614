.PHONY: install demo test

PYTHON := .venv/bin/python

# Installs the pinned stack into .venv when anything is missing (seconds once installed).
install:
	bash tools/install_env.sh

demo: install
	$(PYTHON) tools/demo.py

test: install
	$(PYTHON) -m pytest -q
