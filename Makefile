# The two commands the README opens with: `make demo` and `make test`.
.PHONY: setup demo test bench

setup:
	@scripts/setup.sh

demo: setup
	.venv/bin/python demo/digits.py $(ARGS)

test: setup
	@scripts/setup.sh --browser
	.venv/bin/python -m pytest -q tests $(ARGS)

bench: setup
	.venv/bin/python bench/clustering.py $(ARGS)
	.venv/bin/python bench/labeling.py
