# The two commands the README opens with: `make demo` and `make test`.
.PHONY: setup demo test test-fast bench

setup:
	@scripts/setup.sh

demo: setup
	.venv/bin/python demo/digits.py $(ARGS)

# The whole suite on the newest FiftyOne, then the smoke run (compute, run
# info, labeling, delegated) on the oldest one fiftyone.yml declares.
test: setup
	@scripts/setup.sh --browser
	@scripts/setup.sh --oldest
	.venv/bin/python -m pytest -q tests $(ARGS)
	.venv-oldest/bin/python -m pytest -q -m smoke tests --ignore=tests/e2e

# The unit tier alone, while working: no browser, launcher, notebook or kills.
test-fast: setup
	.venv/bin/python -m pytest -q -m "not e2e" tests $(ARGS)

bench: setup
	.venv/bin/python bench/clustering.py $(ARGS)
	.venv/bin/python bench/labeling.py
	.venv/bin/python bench/defaults.py
