# The two commands of the quickstart. Each one sets up what it needs by itself.
.PHONY: run test bootstrap

run:
	scripts/bootstrap.sh
	.venv/bin/switchyard ui

test:
	scripts/bootstrap.sh --system
	.venv/bin/python -m pytest

bootstrap:
	scripts/bootstrap.sh --system
