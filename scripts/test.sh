#!/usr/bin/env bash
# One command: install the test dependencies and run the whole suite
# (unit tests, then end-to-end tests through the real sandbox Asterisk, SIP, PostgreSQL, Redis).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install.sh --test
# The sandbox Asterisk root is built once and cached (about a minute on first use).
.venv/bin/hotline asterisk install
exec .venv/bin/python -m pytest -p no:cacheprovider "$@"
