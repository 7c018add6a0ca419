.PHONY: run test setup bench topology

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

# Two gateways and two engines on this machine's PostgreSQL and Redis (docs/operations.md).
topology: setup
	.venv/bin/resonanz topology
