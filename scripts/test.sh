#!/usr/bin/env bash
# One command: install the test dependencies and run the whole suite
# (unit tests, then end-to-end tests through the real sandbox Asterisk, SIP, PostgreSQL, Redis).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install.sh --test
# The sandbox Asterisk root is built once and cached (about a minute on first use).
.venv/bin/hotline asterisk install
# Two processes, a file each at a time, each with a stack of its own (tests/conftest.py): most
# of the suite waits on real calls, not on the CPU. `scripts/test.sh -n 0` runs it in one.
exec .venv/bin/python -m pytest -p no:cacheprovider -n 2 --dist loadfile "$@"
