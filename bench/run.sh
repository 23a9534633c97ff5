#!/usr/bin/env bash
# Create the bench's own venv (the package with its integrations, plus the peers of bench/requirements.txt,
# none of which go into the project's environment) and run the suite: bash bench/run.sh [--quick] [options]
set -euo pipefail
cd "$(dirname "$0")/.."
VENV="${BENCH_VENV:-.bench-venv}"
PY="${PYTHON:-python3}"
if [ ! -x "$VENV/bin/python" ]; then
    "$PY" -m venv "$VENV"
    "$VENV/bin/python" -m pip install -q -U pip
fi
stamp="$VENV/.bench-installed"
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ] || [ bench/requirements.txt -nt "$stamp" ]; then
    "$VENV/bin/python" -m pip install -q -e . -e integrations/langchain -e integrations/llamaindex \
        -e integrations/llamaindex/embeddings -e integrations/llamaindex/postprocessor -r bench/requirements.txt
    touch "$stamp"
fi
exec "$VENV/bin/python" -m bench "$@"
