#!/usr/bin/env bash
# ONNX Runtime baseline beside wenda's own encoder (a benchmark a person runs: prints figures; never
# run it in CI). Builds multilingual-e5-small as ONNX by hand (scripts/ort_baseline.py), checks it
# against shared/fixtures/e5_reference.json, times ORT f32 and dynamic-int8 variants (plain and
# after ORT's transformer fusion) on the workload of
# `wenda-bench embed --no-baseline --passages 200 --queries 300`, then runs that wenda command in
# the same invocation and prints one Markdown table of both.
#
#   scripts/bench-ort.sh [ort_baseline.py bench options, e.g. --variants int8,fused-int8 --spin off]
#
# Needs python3 (3.10+) and PyPI access on the first run: the pinned packages of
# scripts/ort-requirements.txt go into target/ort-venv (reused afterwards); the .onnx files
# (~1.3 GB) into target/ort-venv/models. Build wenda and its benchmarks first: cargo build --release
# --workspace. Takes ~12 min on 2 cores: 6 variants x 2 spinning settings, each 300 questions and
# 200 passages.
set -euo pipefail
cd "$(dirname "$0")/.."

queries=300
passages=200
# CMRC 2018 dev, both sides' workload.
dataset=../shared/data/cmrc2018_dev.json
venv=target/ort-venv
requirements=scripts/ort-requirements.txt
wenda=${CARGO_TARGET_DIR:-target}/release/wenda
bench=${CARGO_TARGET_DIR:-target}/release/wenda-bench
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# (Re)installs the pinned packages when the venv is new or the requirements changed.
if [[ ! -x $venv/bin/python ]]; then
    python3 -m venv "$venv"
fi
if ! cmp -s "$requirements" "$venv/requirements.installed"; then
    "$venv/bin/pip" install --quiet --disable-pip-version-check -r "$requirements"
    cp "$requirements" "$venv/requirements.installed"
fi

loadavg() { echo "load average ($1): $(cut -d' ' -f1-3 /proc/loadavg)"; }

# Every figure is wall-clock time on all cores: a busy machine makes both sides noisy.
cores=$(nproc)
if awk -v cores="$cores" '{ exit !($1 >= cores / 2) }' /proc/loadavg; then
    echo "warning: load average $(cut -d' ' -f1 /proc/loadavg) on $cores cores before starting;" \
        "figures will be noisy (rerun on an idle machine for ones to publish)"
fi

started=$SECONDS
echo "== ORT: $queries questions, $passages passages"
loadavg "before ORT"
"$venv/bin/python" scripts/ort_baseline.py bench --queries "$queries" --passages "$passages" \
    --dataset "$dataset" --json "$work/ort.json" "$@"
loadavg "after ORT"

echo
kernels=unknown
report=(--ort-json "$work/ort.json")
if [[ -x $wenda && -x $bench ]]; then
    echo "== wenda-bench embed --no-baseline --passages $passages --queries $queries"
    kernels=$("$wenda" model info | "$venv/bin/python" -c 'import json, sys; print(json.load(sys.stdin)["kernels"])')
    "$bench" embed --no-baseline --passages "$passages" --queries "$queries" --dataset "$dataset" \
        | tee "$work/wenda.txt"
    loadavg "after wenda"
    report+=(--wenda-output "$work/wenda.txt" --wenda-binary "$wenda")
else
    echo "== wenda: $wenda or $bench not found; build them (cargo build --release --workspace) to" \
        "get its figures beside ORT's"
fi

echo
"$venv/bin/python" scripts/ort_baseline.py table "${report[@]}" --kernels "$kernels"
echo "(whole run: $((SECONDS - started)) s)"
