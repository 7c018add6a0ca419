.PHONY: run test setup bench

# Set up everything (environments, model, database) and start engine + gateway.
run: setup
	.venv/bin/resonanz run

# Set up everything and run the whole test suite (CI runs this).
test:
	scripts/test.sh

setup:
	scripts/setup.sh

bench: setup
	.venv/bin/python bench/latency.py
