#!/usr/bin/env bash
# The project's test command: fetch the default model and install headless Chromium if they are
# missing, start a throw-away PostgreSQL (scripts/postgres.sh), run every test in the release
# profile (Candle's kernels are far too slow unoptimised for the model tests), then the Python
# client's checks against the release binary (scripts/test-python.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
# One build serves both steps: `cargo run` would build the binary again without the test-only
# dependencies' features, doubling the build on a fresh machine.
cargo test --release --workspace --no-run
"${CARGO_TARGET_DIR:-target}/release/wenda" model fetch
./scripts/install-browser.sh
# A throw-away PostgreSQL with pgvector for the store's tests against it, stopped at exit.
WENDA_TEST_DATABASE_URL=$(./scripts/postgres.sh start)
export WENDA_TEST_DATABASE_URL
trap './scripts/postgres.sh stop >/dev/null 2>&1 || true' EXIT
# And a streaming-replication standby of it, for vector searches on a read replica.
WENDA_TEST_STANDBY_URL=$(./scripts/postgres.sh standby)
export WENDA_TEST_STANDBY_URL
cargo test --release --workspace "$@"
./scripts/test-python.sh
