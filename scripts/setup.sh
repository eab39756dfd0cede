#!/usr/bin/env bash
# Set up the environment: uv (installed if missing) and the locked .venv at the repo root.
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v uv >/dev/null 2>&1; then
  python3 -m pip install --quiet --user uv 2>/dev/null || python3 -m pip install --quiet uv
  export PATH="$HOME/.local/bin:$PATH"
fi
uv sync --frozen --compile-bytecode --python 3.11 >&2
