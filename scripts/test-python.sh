#!/usr/bin/env bash
# The Python client's checks (clients/python): a virtual environment under target/ with the
# pinned packages (constraints.txt), then ruff, mypy (strict) and pytest. The tests start the
# release binary that `cargo test --release` built, over seeds/.
set -euo pipefail
cd "$(dirname "$0")/.."
target="${CARGO_TARGET_DIR:-target}"
mkdir -p "$target"
venv="$(cd "$target" && pwd)/python-client"
[ -x "$venv/bin/python" ] || python3 -m venv "$venv"
# The client is installed as users install it (not editable), so its packaging is tested too.
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check \
    -c clients/python/constraints.txt -r clients/python/requirements-test.txt \
    "./clients/python[langchain,llama-index]"
# Tool caches and bytecode stay under target/, out of the source tree.
export RUFF_CACHE_DIR="$venv/cache/ruff" MYPY_CACHE_DIR="$venv/cache/mypy" PYTHONDONTWRITEBYTECODE=1
cd clients/python
"$venv/bin/ruff" check .
"$venv/bin/ruff" format --check .
"$venv/bin/mypy"
"$venv/bin/python" -m pytest -p no:cacheprovider -q "$@"
