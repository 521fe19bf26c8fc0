#!/usr/bin/env bash
# One command for a fresh machine: set up, start the local lab, run the suites against it.
set -euo pipefail
cd "$(dirname "$0")/.."
# The console script may not be on PATH yet right after install (pyenv shims, --user installs).
conformance() { python3 -m conformance.cli "$@"; }
bash scripts/setup.sh
conformance lab up
exec python3 -m pytest suites/ --target=all "$@"
