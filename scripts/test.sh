#!/usr/bin/env bash
# One command: set up, install what the tests need (system packages too), run the whole suite.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
scripts/install-test-deps.sh
exec .venv/bin/pytest -n 2 --dist loadgroup "$@"
