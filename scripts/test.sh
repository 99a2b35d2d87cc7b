#!/usr/bin/env bash
# Installs what is missing, then runs lint, format check and the whole test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install.sh
.venv/bin/ruff check .
.venv/bin/ruff format --check .
.venv/bin/lint-imports --no-cache  # the layer contracts in pyproject.toml: imports only point down
exec .venv/bin/pytest "$@"
