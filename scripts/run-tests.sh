#!/usr/bin/env bash
# Runs every test: lint, the Python suite (server, engines, plugins in real GIMP and Krita),
# and the Photoshop plugin's Node tests. `make test` calls this after setting everything up.
set -euo pipefail
cd "$(dirname "$0")/.."

export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 QT_QPA_PLATFORM=offscreen PYTHONUNBUFFERED=1
BIN=.venv/bin

echo "== lint"
$BIN/ruff check server tests

echo "== python tests"
$BIN/python -m pytest -q -p no:cacheprovider "$@"
