#!/usr/bin/env bash
# The project's test command: fetch the default model and install headless Chromium if they are
# missing, start a throw-away PostgreSQL (scripts/postgres.sh) and a small OpenAI-compatible LLM
# server (scripts/llm-server.sh), run every test in the release profile (Candle's kernels are far
# too slow unoptimised for the model tests), then the Python client's checks against the release
# binary (scripts/test-python.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
# One build serves both steps: `cargo run` would build the binary again without the test-only
# dependencies' features, doubling the build on a fresh machine.
cargo test --release --workspace --no-run
"${CARGO_TARGET_DIR:-target}/release/wenda" model fetch
./scripts/install-browser.sh
# The throw-away servers below are stopped at exit, however it comes.
trap './scripts/llm-server.sh stop >/dev/null 2>&1 || true; ./scripts/postgres.sh stop >/dev/null 2>&1 || true' EXIT
# A throw-away PostgreSQL with pgvector for the store's tests against it.
WENDA_TEST_DATABASE_URL=$(./scripts/postgres.sh start)
export WENDA_TEST_DATABASE_URL
# And a streaming-replication standby of it, for vector searches on a read replica.
WENDA_TEST_STANDBY_URL=$(./scripts/postgres.sh standby)
export WENDA_TEST_STANDBY_URL
# A real OpenAI-compatible LLM server (llama.cpp, SmolLM2-135M) for the generative answers' tests;
# its first start builds llama-cpp-python once (about 6.5 min on 2 cores), under target/.
WENDA_TEST_LLM_URL=$(./scripts/llm-server.sh start)
export WENDA_TEST_LLM_URL
cargo test --release --workspace "$@"
./scripts/test-python.sh
