#!/usr/bin/env bash
# One command: set everything up on a fresh Debian machine and run the hotline.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install.sh
exec .venv/bin/hotline up "$@"
