"""End-to-end tests: a package, so that its conftest.py does not take the
place of tests/conftest.py as the module ``conftest``."""
