#!/usr/bin/env bash
# Prints how long `wenda serve` takes from its start to `/ready` answering 200, and its resident
# memory then, over an existing data directory (so the corpus is unchanged and nothing is
# embedded). With --no-fingerprint-cache, the model's cached fingerprint is removed first, as
# every start was before it was cached.
#   scripts/measure-startup.sh [--no-fingerprint-cache] [DATA_DIR] [RUNS]
set -euo pipefail
cd "$(dirname "$0")/.."
uncached=false
if [[ "${1:-}" == --no-fingerprint-cache ]]; then uncached=true; shift; fi
data_dir=${1:-.wenda-data}
runs=${2:-3}
wenda=${CARGO_TARGET_DIR:-target}/release/wenda
log=$(mktemp)
trap 'rm -f "$log"' EXIT
for run in $(seq "$runs"); do
  if $uncached; then find models -name wenda-fingerprint.json -delete 2>/dev/null || true; fi
  started=$(date +%s%N)
  "$wenda" serve --addr 127.0.0.1:0 --data-dir "$data_dir" 2>"$log" &
  pid=$!
  until addr=$(grep -o 'addr=[0-9.:]*' "$log" | head -1 | cut -d= -f2) && [[ -n "$addr" ]]; do sleep 0.01; done
  until curl -sf "http://$addr/ready" >/dev/null; do sleep 0.01; done
  ready=$(date +%s%N)
  rss=$(awk '/^VmRSS/ {print $2}' "/proc/$pid/status")
  kill "$pid"; wait "$pid" 2>/dev/null || true
  model=$(grep -o 'model loaded.*took_ms=[0-9]*' "$log" | grep -o 'took_ms=[0-9]*' | cut -d= -f2)
  fingerprinted=$(grep -o 'model fingerprinted.*took_ms=[0-9]*' "$log" | grep -o 'took_ms=[0-9]*' | cut -d= -f2)
  embedded=$(grep -o 'embedded=[0-9]*' "$log" | head -1 | cut -d= -f2)
  printf 'run %d: ready after %.2f s (model loaded in %s ms, fingerprinted in %s ms), RSS %d MiB, passages embedded %s\n' \
    "$run" "$(echo "($ready - $started) / 1000000000" | bc -l)" "$model" "$fingerprinted" \
    $((rss / 1024)) "$embedded"
done
