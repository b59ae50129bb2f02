#!/usr/bin/env bash
# Benchmark: how long after a Secret update `ward agent` has the new value on disk. All on
# 127.0.0.1, files on tmpfs (/dev/shm). See usage() below.
set -euo pipefail

usage() {
    cat <<'EOF'
Usage: bench/agent-latency.sh [--help]

  1. starts `ward serve` (temp data dir, free port on 127.0.0.1) and creates Secret "bench",
  2. runs `ward agent --config` delivering it to a private dir under /dev/shm (tmpfs),
  3. ITERATIONS times: updates the Secret and polls TARGET/password until it holds the new
     value; MODE=kubectl (default) runs `kubectl apply -f` of the changed manifest, as an
     operator would; MODE=patch sends a JSON merge PATCH over a kept-alive HTTPS connection
     (no process start, so the agent's own share shows),
  4. prints p50/p99/max in ms of "update started -> new content readable", and the same for
     "update started -> update answered" for comparison.
Every process it starts is stopped (by PID) and every temp dir removed on exit.

Options:
  -h, --help       print this help

Environment:
  MODE             kubectl (default) or patch
  ITERATIONS       updates to measure (default 100)
  POLL_US          sleep between file reads, in microseconds (default 200)
  GAP_MS           pause between updates, in ms (default 100)
  WARD_BIN         ward binary (default target/release/ward; built with
                   `cargo build --release -p ward` when missing)

Examples:
  bench/agent-latency.sh
  MODE=patch ITERATIONS=200 bench/agent-latency.sh
EOF
}

while [ $# -gt 0 ]; do
    case "$1" in
        -h|--help) usage; exit 0 ;;
        *) echo "error: unknown argument: $1 (see --help)" >&2; exit 2 ;;
    esac
done

ITERATIONS="${ITERATIONS:-100}"
MODE="${MODE:-kubectl}"
case "$MODE" in kubectl|patch) ;; *) echo "error: MODE must be kubectl or patch" >&2; exit 2 ;; esac
POLL_US="${POLL_US:-200}"
GAP_MS="${GAP_MS:-100}"
HOST=127.0.0.1   # loopback only

die() { echo "error: $*" >&2; exit 1; }
log() { echo "==> $*" >&2; }

[[ "$ITERATIONS" =~ ^[1-9][0-9]*$ ]] || die "ITERATIONS must be a positive integer"
[[ "$POLL_US" =~ ^[0-9]+$ ]] || die "POLL_US must be a non-negative integer"
[[ "$GAP_MS" =~ ^[0-9]+$ ]] || die "GAP_MS must be a non-negative integer"
[ -d /dev/shm ] || die "/dev/shm (tmpfs) is required"

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO"

PIDS=()
TMP=""
SHM=""
cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    local pid
    for pid in "${PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
    for pid in "${PIDS[@]}"; do
        for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        if kill -0 "$pid" 2>/dev/null; then kill -KILL "$pid" 2>/dev/null || true; fi
        wait "$pid" 2>/dev/null || true
    done
    if [ -n "$TMP" ] && [ -d "$TMP" ]; then rm -rf -- "$TMP"; fi
    if [ -n "$SHM" ] && [ -d "$SHM" ]; then rm -rf -- "$SHM"; fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

for c in curl python3 awk timeout; do command -v "$c" >/dev/null || die "$c is required"; done

WARD_BIN="${WARD_BIN:-target/release/ward}"
if [ ! -x "$WARD_BIN" ]; then
    [ "$WARD_BIN" = target/release/ward ] || die "WARD_BIN=$WARD_BIN is not an executable"
    log "building the ward release binary (cargo build --release -p ward)"
    timeout 3600 cargo build --release -p ward || die "cargo build --release -p ward failed"
fi
WARD_BIN="$(cd "$(dirname "$WARD_BIN")" && pwd)/$(basename "$WARD_BIN")"

TMP="$(mktemp -d "${TMPDIR:-/tmp}/ward-agent-bench.XXXXXX")"
SHM="$(mktemp -d /dev/shm/ward-agent-bench.XXXXXX)"   # 0700, tmpfs
DATA="$TMP/data"
TARGET="$SHM/bench"

free_port() {
    local p
    for _ in $(seq 200); do
        p=$(( 20000 + RANDOM % 12000 ))
        if command -v ss >/dev/null; then
            [ -z "$(ss -Htln "sport = :$p" 2>/dev/null)" ] || continue
        elif (exec 3<>"/dev/tcp/$HOST/$p") 2>/dev/null; then
            continue
        fi
        echo "$p"; return 0
    done
    die "no free port found"
}
PORT=$(free_port)
URL="https://$HOST:$PORT"

# ---------------------------------------------------------------------------------------------
# ward serve and the Secret

log "starting ward serve on $HOST:$PORT"
WARD_LOG="${WARD_LOG:-warn}" "$WARD_BIN" serve --data-dir "$DATA" --bind-address "$HOST" \
    --secure-port "$PORT" --audit-log-path "$TMP/audit.log" </dev/null >"$TMP/ward.log" 2>&1 &
WARD_PID=$!
PIDS+=("$WARD_PID")
deadline=$(( SECONDS + 60 ))
until [ -s "$DATA/pki/ca.crt" ] && [ -s "$DATA/admin.token" ] && [ -s "$DATA/admin.kubeconfig" ]; do
    kill -0 "$WARD_PID" 2>/dev/null || { tail -n 30 "$TMP/ward.log" >&2; die "ward serve exited (log above)"; }
    [ "$SECONDS" -lt "$deadline" ] || die "ward serve did not create its PKI within 60s"
    sleep 0.2
done
until [ "$(curl -s -o /dev/null -w '%{http_code}' --max-time 2 --cacert "$DATA/pki/ca.crt" "$URL/readyz" || true)" = 200 ]; do
    kill -0 "$WARD_PID" 2>/dev/null || { tail -n 30 "$TMP/ward.log" >&2; die "ward serve exited (log above)"; }
    [ "$SECONDS" -lt "$deadline" ] || die "ward serve not ready within 60s"
    sleep 0.2
done
TOKEN="$(tr -d '[:space:]' <"$DATA/admin.token")"

code=$(curl -s -o "$TMP/create.json" -w '%{http_code}' --max-time 10 --cacert "$DATA/pki/ca.crt" \
    -X POST -H "Authorization: Bearer $TOKEN" -H 'Content-Type: application/json' \
    --data '{"metadata":{"name":"bench"},"data":{"password":"djA="}}' \
    "$URL/api/v1/namespaces/default/secrets" || true)
[ "$code" = 201 ] || { cat "$TMP/create.json" >&2 || true; die "creating the secret answered $code"; }
# The same update as the measured ones, with curl, to check that merge PATCH works.
code=$(curl -s -o "$TMP/patch.json" -w '%{http_code}' --max-time 10 --cacert "$DATA/pki/ca.crt" \
    -X PATCH -H "Authorization: Bearer $TOKEN" -H 'Content-Type: application/merge-patch+json' \
    --data '{"data":{"password":"djE="}}' \
    "$URL/api/v1/namespaces/default/secrets/bench" || true)
[ "$code" = 200 ] || { cat "$TMP/patch.json" >&2 || true; die "merge PATCH answered $code"; }

# ---------------------------------------------------------------------------------------------
# ward agent

cat >"$TMP/agent.yaml" <<EOF
volumes:
  - name: bench
    target: $TARGET
    secret: {secretName: bench, defaultMode: 0400}
EOF
log "starting ward agent -> $TARGET"
"$WARD_BIN" agent --config "$TMP/agent.yaml" --kubeconfig "$DATA/admin.kubeconfig" -n default \
    </dev/null >"$TMP/agent.log" 2>&1 &
AGENT_PID=$!
PIDS+=("$AGENT_PID")
deadline=$(( SECONDS + 30 ))
until [ "$(cat "$TARGET/password" 2>/dev/null || true)" = v1 ]; do
    kill -0 "$AGENT_PID" 2>/dev/null || { tail -n 30 "$TMP/agent.log" >&2; die "ward agent exited (log above)"; }
    [ "$SECONDS" -lt "$deadline" ] || { tail -n 30 "$TMP/agent.log" >&2; die "agent did not write $TARGET/password within 30s"; }
    sleep 0.1
done

# ---------------------------------------------------------------------------------------------
# Measurement

cat >"$TMP/measure.py" <<'EOF'
import base64, http.client, json, os, ssl, subprocess, sys, time
host, port, ca, token, path, iters, poll_us, gap_ms, mode, kubeconfig, workdir = sys.argv[1:12]
iters, poll, gap = int(iters), int(poll_us) / 1e6, int(gap_ms) / 1e3
ctx = ssl.create_default_context(cafile=ca)
conn = http.client.HTTPSConnection(host, int(port), context=ctx, timeout=10)
hdr = {"Authorization": "Bearer " + token, "Content-Type": "application/merge-patch+json"}
url = "/api/v1/namespaces/default/secrets/bench"

def read():
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError:
        return None

def pct(xs, p):
    xs = sorted(xs)
    k = max(0, min(len(xs) - 1, int(round(p / 100 * len(xs) + 0.5)) - 1))
    return xs[k]

file_ms, api_ms = [], []
for i in range(iters + 1):          # iteration 0 warms the connection and is not counted
    want = ("bench-%d-%d" % (i, time.time_ns())).encode()
    body = json.dumps({"data": {"password": base64.b64encode(want).decode()}})
    if mode == "kubectl":
        manifest = os.path.join(workdir, "secret.json")
        with open(manifest, "w") as f:
            json.dump({"apiVersion": "v1", "kind": "Secret",
                       "metadata": {"name": "bench", "namespace": "default"},
                       "data": {"password": base64.b64encode(want).decode()}}, f)
        t0 = time.perf_counter()
        proc = subprocess.Popen(["kubectl", "--kubeconfig", kubeconfig, "apply", "-f", manifest],
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                env=dict(os.environ, HOME=workdir))
        # The file is polled while kubectl runs: it may change before kubectl has exited.
        t_file = None
        while proc.poll() is None:
            if t_file is None and read() == want:
                t_file = time.perf_counter()
            elif poll:
                time.sleep(poll)
        t_api = time.perf_counter()
        if proc.returncode != 0:
            sys.exit("kubectl apply failed: %s" % proc.stderr.read().decode(errors="replace"))
    else:
        t0 = time.perf_counter()
        conn.request("PATCH", url, body, hdr)
        r = conn.getresponse(); r.read()
        t_api = time.perf_counter()
        if r.status != 200:
            sys.exit("PATCH answered %d" % r.status)
        t_file = None
    deadline = t0 + 10
    while t_file is None and read() != want:
        if time.perf_counter() > deadline:
            sys.exit("iteration %d: new value not on disk after 10 s" % i)
        if poll:
            time.sleep(poll)
    if t_file is None:
        t_file = time.perf_counter()
    if i > 0:
        api_ms.append((t_api - t0) * 1e3)
        file_ms.append((t_file - t0) * 1e3)
    time.sleep(gap)

for name, xs in (("file", file_ms), ("api", api_ms)):
    print("%s %.2f %.2f %.2f %.2f" % (name, pct(xs, 50), pct(xs, 99), max(xs), min(xs)))
EOF

log "measuring $ITERATIONS updates (poll every ${POLL_US} us, ${GAP_MS} ms between updates)"
command -v kubectl >/dev/null || [ "$MODE" = patch ] || die "kubectl is required (or MODE=patch)"
timeout -k 5 $(( ITERATIONS * 11 + 30 )) python3 "$TMP/measure.py" "$HOST" "$PORT" "$DATA/pki/ca.crt" \
    "$TOKEN" "$TARGET/password" "$ITERATIONS" "$POLL_US" "$GAP_MS" "$MODE" "$DATA/admin.kubeconfig" \
    "$TMP" >"$TMP/result.txt" \
    || { tail -n 30 "$TMP/agent.log" >&2; die "measurement failed"; }

read -r _ F50 F99 FMAX FMIN < <(grep '^file ' "$TMP/result.txt")
read -r _ A50 A99 AMAX AMIN < <(grep '^api ' "$TMP/result.txt")
kill -0 "$AGENT_PID" 2>/dev/null || die "ward agent exited during the run"

CPU_MODEL=$(awk -F': *' '/^model name/ {print $2; exit}' /proc/cpuinfo)
WARD_REV=$(git -C "$REPO" rev-parse --short HEAD 2>/dev/null || echo unknown)
if [ -n "$(git -C "$REPO" status --porcelain 2>/dev/null | head -n 1)" ]; then WARD_REV+=" (uncommitted changes)"; fi
echo
echo "| measure ($ITERATIONS updates) | p50 | p99 | max | min |"
echo "|---|---:|---:|---:|---:|"
if [ "$MODE" = kubectl ]; then WHAT="\`kubectl apply\` started"; DONE="kubectl exited"; else WHAT="PATCH sent"; DONE="PATCH answered"; fi
echo "| $WHAT -> new value readable in the agent's file | $F50 ms | $F99 ms | $FMAX ms | $FMIN ms |"
echo "| $WHAT -> $DONE (for comparison) | $A50 ms | $A99 ms | $AMAX ms | $AMIN ms |"
echo
echo "Machine: $(nproc) CPUs (${CPU_MODEL:-unknown}), $(uname -sr); load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)."
echo "ward $WARD_REV; $(date -u '+%Y-%m-%d %H:%M UTC')."
