#!/usr/bin/env bash
# The project's test command: fetch the default model if it is missing, then run every test in the
# release profile (Candle's kernels are far too slow unoptimised for the model tests).
set -euo pipefail
cd "$(dirname "$0")/.."
cargo run --release --quiet -- model fetch
cargo test --release "$@"
