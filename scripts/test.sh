#!/usr/bin/env bash
# The test command: installs what a fresh machine needs (project venv, llama-server, vLLM, scripted models;
# all cached after the first run), then runs every tier: unit, TGI contract, and integration on real engines.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
start=$(date +%s)
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q -e ".[dev]" -e integrations/langchain -e integrations/llamaindex \
    -e integrations/llamaindex/embeddings -e integrations/llamaindex/postprocessor
echo "== project installed ($(( $(date +%s) - start )) s)"
.venv/bin/python scripts/unasync.py --check  # engine_clients/_sync is generated from engine_clients/_async
.venv/bin/python scripts/check_wheels.py
echo "== wheels built and checked in a clean venv ($(( $(date +%s) - start )) s)"
.venv/bin/python -m engine_clients.testing provision
echo "== engines provisioned ($(( $(date +%s) - start )) s)"
.venv/bin/python -m pytest "$@"
echo "== done in $(( $(date +%s) - start )) s"
