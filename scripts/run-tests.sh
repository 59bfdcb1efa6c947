#!/usr/bin/env bash
# Runs every test: lint, the Python suite (server, engines, plugins in real GIMP and Krita),
# and the Photoshop plugin's Node tests. `make test` calls this after setting everything up.
set -euo pipefail
cd "$(dirname "$0")/.."

export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 QT_QPA_PLATFORM=offscreen PYTHONUNBUFFERED=1
BIN=.venv/bin

# Disk: the suite writes up to a few GB under the temp folder at once (servers' data folders,
# 4096-pixel results, real editors' profiles). Refuse to start on a nearly full disk rather than
# fail half-way with "No space left on device", and report the least free space seen.
tmp="${TMPDIR:-/tmp}"
need_gb="${AIEDIT_TEST_FREE_GB:-6}"
free_kb() { df -Pk "$tmp" | awk 'NR==2 {print $4}'; }
start_kb=$(free_kb)
if (( start_kb < need_gb * 1024 * 1024 )); then
  echo "error: $tmp has $((start_kb / 1024 / 1024)) GB free; the tests need ${need_gb} GB" \
       "(set TMPDIR to a roomier folder, or free some space)" >&2
  exit 1
fi
least_file=$(mktemp)
echo "$start_kb" >"$least_file"
( while sleep 2; do
    now=$(free_kb); least=$(cat "$least_file")
    (( now < least )) && echo "$now" >"$least_file"
  done ) &
watcher=$!
report_disk() {
  kill "$watcher" 2>/dev/null || true
  echo "== disk: free space in $tmp fell by at most $(( (start_kb - $(cat "$least_file")) / 1024 )) MB" \
       "during the run (from $((start_kb / 1024)) MB)"
  rm -f "$least_file"
}
trap report_disk EXIT

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
