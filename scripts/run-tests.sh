#!/usr/bin/env bash
# Runs every test: lint, the Python suite (server, engines, plugins in real GIMP and Krita),
# and the Photoshop plugin's Node tests. `make test` calls this after setting everything up.
set -euo pipefail
cd "$(dirname "$0")/.."

export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 QT_QPA_PLATFORM=offscreen PYTHONUNBUFFERED=1
BIN=.venv/bin

echo "== lint"
$BIN/ruff check server tests plugins bench

echo "== GIMP 3 chroot (built once, cached under ~/.cache/aiedit)"
scripts/gimp-chroot.sh ensure >/dev/null

echo "== python tests (one worker per core; a test file stays on one worker)"
workers="${AIEDIT_TEST_WORKERS:-$(nproc)}"
$BIN/python -m pytest -q -p no:cacheprovider -n "$workers" --dist loadfile "$@"

echo "== API, billing and proof tests again on PostgreSQL (a cluster the session starts on loopback)"
$BIN/python -m pytest -q -p no:cacheprovider -n "$workers" --dist loadfile --db postgresql \
  tests/api tests/proof tests/billing \
  tests/studio/test_db_and_queue.py

echo "== photoshop plugin (node)"
(cd plugins/photoshop-uxp-bridge && npm ci --no-audit --no-fund && \
  AIEDIT_BIN="$PWD/../../.venv/bin/aiedit" npm test && npm run lint)
