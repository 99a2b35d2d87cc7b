#!/usr/bin/env bash
# Installs what is missing, then runs the whole system on this machine with simulated
# terminals and prints its URLs. Ctrl-C stops everything.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install.sh
exec .venv/bin/cuntong up "$@"
