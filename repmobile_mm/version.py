"""The package version, in one place: setup.py reads it from this file and
``repmobile_mm.__version__`` imports it."""
__version__ = '0.1.0'
