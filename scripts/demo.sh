#!/usr/bin/env bash
# One command: set up, generate a realistic demo (~1M events, 50 customers, 3 months),
# run the pipeline and print the invoices. Extra arguments go to `tally demo`.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
exec .venv/bin/tally demo "$@"
