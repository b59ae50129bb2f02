#!/usr/bin/env bash
# Benchmark: watch fan-out. N watchers of one Secret, one update, time until each has it:
# ward serve (on etcd, and on its embedded store) next to etcd's own watch, in the same run.
set -euo pipefail

usage() {
    cat <<'EOF'
Usage: bench/watch-fanout.sh [--watchers N] [--connections C] [--help]

Starts a single-member etcd and two `ward serve` (one with --etcd-servers on that etcd, one on
the embedded store), all on 127.0.0.1. For each target, opens N watches of one Secret
(ward: HTTP/2 watch requests with a fieldSelector on the name, spread over C connections;
etcd: N etcd-client watches of its key over C gRPC connections), then writes one update and
records when each watcher receives it. Prints one JSON line per target (p50, p99, max in ms,
watchers that missed the event) and the ward/etcd ratios of p99 and max.

Options:
  --watchers N      watchers per target (default 10000)
  --connections C   connections they share (default 100)
  -h, --help        print this help

Environment:
  WARD_BIN          ward binary (default target/release/ward, built when missing)

Examples:
  bench/watch-fanout.sh
  bench/watch-fanout.sh --watchers 1000 --connections 10
EOF
}

WATCHERS=10000
CONNECTIONS=100
while [ $# -gt 0 ]; do
    case "$1" in
        -h|--help) usage; exit 0 ;;
        --watchers) WATCHERS="$2"; shift ;;
        --connections) CONNECTIONS="$2"; shift ;;
        *) echo "error: unknown argument: $1 (see --help)" >&2; exit 2 ;;
    esac
    shift
done
[[ "$WATCHERS" =~ ^[1-9][0-9]*$ ]] || { echo "error: --watchers must be a positive integer" >&2; exit 2; }
[[ "$CONNECTIONS" =~ ^[1-9][0-9]*$ ]] || { echo "error: --connections must be a positive integer" >&2; exit 2; }

HOST=127.0.0.1
die() { echo "error: $*" >&2; exit 1; }
log() { echo "==> $*" >&2; }

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO"

PIDS=()
TMP="$(mktemp -d "${TMPDIR:-/tmp}/ward-fanout.XXXXXX")"
cleanup() {
    local rc=$? pid
    trap - EXIT INT TERM
    for pid in "${PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
    for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
    rm -rf -- "$TMP"
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

ETCD="$(command -v etcd || echo /usr/bin/etcd)"
[ -x "$ETCD" ] || die "etcd is missing: apt-get install -y etcd-server"
WARD_BIN="${WARD_BIN:-target/release/ward}"
log "building the ward release binary and the fan-out client"
timeout 3600 cargo build --release --locked -p ward --bin ward --example watch_fanout >&2 \
    || die "cargo build --release failed"
CLIENT="$REPO/target/release/examples/watch_fanout"
ulimit -n 65536 2>/dev/null || true

port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

wait_for() {  # NAME PID URL CURL-ARGS...
    local name="$1" pid="$2" url="$3"; shift 3
    for _ in $(seq 300); do
        kill -0 "$pid" 2>/dev/null || die "$name exited; see $TMP"
        [ "$(curl -s -o /dev/null -w '%{http_code}' --max-time 2 "$@" "$url" || true)" = 200 ] && return 0
        sleep 0.2
    done
    die "$name did not become ready"
}

cport=$(port); pport=$(port)
ETCD_URL="http://$HOST:$cport"
log "etcd on $ETCD_URL"
env $(env | awk -F= '/^ETCD_/ {printf "-u %s ", $1}') \
"$ETCD" --name fanout --data-dir "$TMP/etcd" \
    --listen-client-urls "$ETCD_URL" --advertise-client-urls "$ETCD_URL" \
    --listen-peer-urls "http://$HOST:$pport" --initial-advertise-peer-urls "http://$HOST:$pport" \
    --initial-cluster "fanout=http://$HOST:$pport" --log-level warn \
    </dev/null >"$TMP/etcd.log" 2>&1 &
PIDS+=($!)
wait_for etcd $! "$ETCD_URL/health"

start_ward() {  # NAME EXTRA-FLAGS...
    local name="$1"; shift
    local p dir="$TMP/$name"
    p=$(port)
    WARD_LOG=warn "$WARD_BIN" serve --data-dir "$dir" --bind-address "$HOST" --secure-port "$p" "$@" \
        </dev/null >"$TMP/$name.log" 2>&1 &
    PIDS+=($!)
    local pid=$!
    for _ in $(seq 300); do [ -s "$dir/pki/ca.crt" ] && break; sleep 0.2; done
    wait_for "$name" "$pid" "https://$HOST:$p/readyz" --cacert "$dir/pki/ca.crt"
    for _ in $(seq 50); do [ -s "$dir/admin.kubeconfig" ] && break; sleep 0.1; done
}

start_ward ward-etcd --etcd-servers "$ETCD_URL"
start_ward ward-redb

declare -A OUT
run() {  # NAME ARGS...
    local name="$1"; shift
    log "$name: $WATCHERS watchers over $CONNECTIONS connections"
    OUT[$name]=$("$CLIENT" "$@" --watchers "$WATCHERS" --connections "$CONNECTIONS")
    echo "${OUT[$name]}"
}
run etcd etcd --endpoint "$ETCD_URL"
run ward-etcd ward --kubeconfig "$TMP/ward-etcd/admin.kubeconfig"
run ward-redb ward --kubeconfig "$TMP/ward-redb/admin.kubeconfig"

field() { python3 -c 'import json,sys; print(json.loads(sys.argv[1])[sys.argv[2]])' "$1" "$2"; }
echo
echo "| target | watchers | received | p50 | p99 | max (all have it) |"
echo "|---|---:|---:|---:|---:|---:|"
for n in etcd ward-etcd ward-redb; do
    o="${OUT[$n]}"
    printf '| %s | %s | %s | %.1f ms | %.1f ms | %.1f ms |\n' "$n" "$(field "$o" watchers)" \
        "$(field "$o" received)" "$(field "$o" p50_ms)" "$(field "$o" p99_ms)" "$(field "$o" max_ms)"
done
echo
for n in ward-etcd ward-redb; do
    python3 - "${OUT[$n]}" "${OUT[etcd]}" "$n" <<'EOF'
import json, sys
w, e, n = json.loads(sys.argv[1]), json.loads(sys.argv[2]), sys.argv[3]
print(f"- {n}/etcd: p99 {w['p99_ms'] / e['p99_ms']:.2f}x, max {w['max_ms'] / e['max_ms']:.2f}x")
EOF
done
echo
echo "Machine: $(nproc) CPUs ($(awk -F': *' '/^model name/ {print $2; exit}' /proc/cpuinfo)); $(date -u '+%Y-%m-%d %H:%M UTC');" \
     "ward $(git rev-parse --short HEAD), etcd $("$ETCD" --version | awk '/^etcd Version/ {print $3}')."
