#!/usr/bin/env bash
# Import throughput through one replica against two over one PostgreSQL database (a benchmark:
# prints figures). Each replica is pinned to a core of its own (taskset), as if each ran on a
# machine of its own; the import is sent to the first, and the second helps by claiming lines.
# The texts are CMRC 2018 dev contexts, marked per run so no run reuses another's vectors.
#
#   scripts/bench-replicas.sh postgres://wenda@127.0.0.1:5432/postgres [contexts, default 848: all]
set -euo pipefail
cd "$(dirname "$0")/.."
url=${1:?usage: $0 postgres://… [contexts]}
contexts=${2:-848}
wenda=${CARGO_TARGET_DIR:-target}/release/wenda
work=$(mktemp -d)
pids=()
cleanup() {
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

# $1: the run's mark, put before every text.
documents() {
    python3 - "$contexts" "$1" <<'EOF'
import json, sys
data = json.load(open("../shared/data/cmrc2018_dev.json"))
contexts = list(dict.fromkeys(p["context"] for a in data["data"] for p in a["paragraphs"]))
for i, context in enumerate(contexts[: int(sys.argv[1])]):
    print(json.dumps({"id": f"c{i}", "text": sys.argv[2] + context}, ensure_ascii=False))
EOF
}

# Starts a replica on core $1, port $2; waits until it is ready.
replica() {
    RAYON_NUM_THREADS=1 taskset -c "$1" "$wenda" serve --store "$url" --no-corpus \
        --addr "127.0.0.1:$2" >"$work/replica-$1.log" 2>&1 &
    pids+=($!)
    for _ in $(seq 600); do
        curl -sf "127.0.0.1:$2/ready" >/dev/null && return
        sleep 0.2
    done
    echo "replica on core $1 did not start" >&2
    cat "$work/replica-$1.log" >&2
    exit 1
}

# Imports this run's documents into collection $1 through port $2; prints the finished job.
import() {
    curl -sf -X PUT "127.0.0.1:$2/v1/collections/$1" >/dev/null
    documents "（$1 $$）" >"$work/$1.ndjson"
    job=$(curl -sf "127.0.0.1:$2/v1/collections/$1/documents:import" \
        -H 'content-type: application/x-ndjson' --data-binary @"$work/$1.ndjson" |
        python3 -c 'import json, sys; print(json.load(sys.stdin)["id"])')
    # Polled cheaply and seldom: this script shares the replicas' cores.
    while :; do
        sleep 1
        report=$(curl -sf "127.0.0.1:$2/v1/jobs/$job")
        case $report in
        *'"status":"completed"'*) echo "$report"; return ;;
        *'"status":"failed"'*) echo "the import failed: $report" >&2; exit 1 ;;
        esac
    done
}

# Tokens per second of wall time, from a finished job.
rate() {
    python3 -c 'import json, sys
job = json.loads(sys.argv[1])
seconds = (job["finished_at"] - job["started_at"]) / 1000
print("%d documents, %d passages embedded, %d tokens in %.1f s: %.0f tokens/s" % (
    job["documents"]["done"], job["embedded"], job["tokens"], seconds, job["tokens"] / seconds))' "$1"
}

# CPU seconds used so far by the processes named $1 (user + system, from /proc).
cpu() {
    python3 - "$1" <<'EOF'
import os, sys
ticks = os.sysconf("SC_CLK_TCK")
total = 0
for pid in filter(str.isdigit, os.listdir("/proc")):
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        with open(f"/proc/{pid}/comm") as f:
            name = f.read().strip()
    except OSError:
        continue
    if name == sys.argv[1]:
        total += int(fields[11]) + int(fields[12])
print(f"{total / ticks:.1f}")
EOF
}

echo "wenda bench-replicas: $contexts CMRC 2018 dev contexts imported over PostgreSQL, one core per replica"
replica 0 18701
before=$(cpu postgres)
one=$(import bench_one 18701)
echo "one replica:  $(rate "$one"); PostgreSQL used $(python3 -c "print(round($(cpu postgres) - $before, 1))") s of CPU"
replica 1 18702
before=$(cpu postgres)
two=$(import bench_two 18701)
echo "two replicas: $(rate "$two"); PostgreSQL used $(python3 -c "print(round($(cpu postgres) - $before, 1))") s of CPU"
python3 -c 'import json, sys
rate = lambda j: j["tokens"] * 1000 / (j["finished_at"] - j["started_at"])
print(f"two replicas import {rate(json.loads(sys.argv[2])) / rate(json.loads(sys.argv[1])):.2f}x as fast as one")' "$one" "$two"
