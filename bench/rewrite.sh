#!/usr/bin/env bash
# Benchmark: key rotation with `ward rewrite`. Creates N Secrets under an aesgcm key1, restarts
# ward with key2 first (key1 second) and times `ward rewrite --resources secrets`, which
# re-encrypts every Secret through the API. All on 127.0.0.1. See usage() below.
set -euo pipefail

usage() {
    cat <<'EOF'
Usage: bench/rewrite.sh [--help]

  1. starts `ward serve` (temp data dir, free port on 127.0.0.1) with an
     EncryptionConfiguration whose only key is aesgcm key1,
  2. creates N Secrets (~100 bytes of data each) with parallel HTTPS clients
     (python3 http.client, keep-alive, the admin token),
  3. restarts ward with key2 first and key1 second,
  4. times `ward rewrite --resources secrets` (every Secret is now stale), then times a
     second run (nothing stale: the server skips every write),
  5. restarts with key2 only, checks that the first and last Secret read back, and
     prints objects/s and seconds.
Every process it starts is stopped (by PID) and every temp dir removed on exit.

Options:
  -h, --help       print this help

Environment:
  N                Secrets to create and rewrite (default 100000)
  WRITERS          parallel creating clients (default 4)
  PAGE_SIZE        `ward rewrite --page-size` (default: ward's own default)
  WARD_BIN         ward binary (default target/release/ward; built with
                   `cargo build --release -p ward` when missing)
  TIMEOUT          upper bound in seconds for the create and for the rewrite step each
                   (default 1800)

Examples:
  bench/rewrite.sh
  N=20000 bench/rewrite.sh
EOF
}

while [ $# -gt 0 ]; do
    case "$1" in
        -h|--help) usage; exit 0 ;;
        *) echo "error: unknown argument: $1 (see --help)" >&2; exit 2 ;;
    esac
done

N="${N:-100000}"
WRITERS="${WRITERS:-4}"
PAGE_SIZE="${PAGE_SIZE:-}"
TIMEOUT="${TIMEOUT:-1800}"
HOST=127.0.0.1   # loopback only

die() { echo "error: $*" >&2; exit 1; }
log() { echo "==> $*" >&2; }

[[ "$N" =~ ^[1-9][0-9]*$ ]] || die "N must be a positive integer"
[[ "$WRITERS" =~ ^[1-9][0-9]*$ ]] || die "WRITERS must be a positive integer"
[[ "$TIMEOUT" =~ ^[1-9][0-9]*$ ]] || die "TIMEOUT must be a positive integer (seconds)"
[ -z "$PAGE_SIZE" ] || [[ "$PAGE_SIZE" =~ ^[1-9][0-9]*$ ]] || die "PAGE_SIZE must be a positive integer"

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO"

# ---------------------------------------------------------------------------------------------
# Cleanup: every process we start is recorded by PID and stopped on exit.

PIDS=()
TMP=""
stop_pid() {
    local pid="$1"
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    if kill -0 "$pid" 2>/dev/null; then kill -KILL "$pid" 2>/dev/null || true; fi
    wait "$pid" 2>/dev/null || true
}
cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    local pid
    for pid in "${PIDS[@]}"; do stop_pid "$pid"; done
    if [ -n "$TMP" ] && [ -d "$TMP" ]; then rm -rf -- "$TMP"; fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

for c in curl python3 openssl base64 awk timeout; do command -v "$c" >/dev/null || die "$c is required"; done

WARD_BIN="${WARD_BIN:-target/release/ward}"
if [ ! -x "$WARD_BIN" ]; then
    [ "$WARD_BIN" = target/release/ward ] || die "WARD_BIN=$WARD_BIN is not an executable"
    log "building the ward release binary (cargo build --release -p ward)"
    timeout 3600 cargo build --release -p ward || die "cargo build --release -p ward failed"
fi
WARD_BIN="$(cd "$(dirname "$WARD_BIN")" && pwd)/$(basename "$WARD_BIN")"

TMP="$(mktemp -d "${TMPDIR:-/tmp}/ward-rewrite.XXXXXX")"
DATA="$TMP/data"

free_port() {
    local p i
    for i in $(seq 200); do
        p=$(( 20000 + RANDOM % 12000 ))
        if command -v ss >/dev/null; then
            [ -z "$(ss -Htln "sport = :$p" 2>/dev/null)" ] || continue
        elif (exec 3<>"/dev/tcp/$HOST/$p") 2>/dev/null; then
            continue
        fi
        echo "$p"
        return 0
    done
    die "no free port found"
}
PORT=$(free_port)
URL="https://$HOST:$PORT"

# ---------------------------------------------------------------------------------------------
# Encryption configs: key1 only, then key2 first and key1 second

KEY1=$(head -c 32 /dev/urandom | base64 -w0)
KEY2=$(head -c 32 /dev/urandom | base64 -w0)
enc_config() {  # FILE KEYLINES...
    local f="$1"; shift
    {
        echo "apiVersion: apiserver.config.k8s.io/v1"
        echo "kind: EncryptionConfiguration"
        echo "resources:"
        echo "  - resources: [secrets]"
        echo "    providers:"
        echo "      - aesgcm:"
        echo "          keys:"
        local k
        for k in "$@"; do
            echo "            - name: ${k%%=*}"
            echo "              secret: ${k#*=}"
        done
        echo "      - identity: {}"
    } >"$f"
    chmod 600 "$f"
}
enc_config "$TMP/enc-1.yaml" "key1=$KEY1"
enc_config "$TMP/enc-2.yaml" "key2=$KEY2" "key1=$KEY1"

WARD_PID=""
start_ward() {  # ENCRYPTION_CONFIG LOG
    log "starting ward serve on $HOST:$PORT ($(basename "$1"))"
    WARD_LOG="${WARD_LOG:-warn}" "$WARD_BIN" serve --data-dir "$DATA" --bind-address "$HOST" \
        --secure-port "$PORT" --encryption-provider-config "$1" \
        --audit-log-path "$TMP/audit.log" </dev/null >"$2" 2>&1 &
    WARD_PID=$!
    PIDS+=("$WARD_PID")
    local deadline=$(( SECONDS + 60 )) code=""
    until [ -s "$DATA/pki/ca.crt" ] && [ -s "$DATA/admin.token" ]; do
        kill -0 "$WARD_PID" 2>/dev/null || { tail -n 30 "$2" >&2; die "ward serve exited (log above)"; }
        [ "$SECONDS" -lt "$deadline" ] || die "ward serve did not create its PKI within 60s"
        sleep 0.2
    done
    while :; do
        kill -0 "$WARD_PID" 2>/dev/null || { tail -n 30 "$2" >&2; die "ward serve exited (log above)"; }
        code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 2 --cacert "$DATA/pki/ca.crt" "$URL/readyz" || true)
        [ "$code" = 200 ] && break
        [ "$SECONDS" -lt "$deadline" ] || { tail -n 30 "$2" >&2; die "ward not ready within 60s ($code)"; }
        sleep 0.2
    done
}
stop_ward() {
    stop_pid "$WARD_PID"
    local p keep=()
    for p in "${PIDS[@]}"; do [ "$p" = "$WARD_PID" ] || keep+=("$p"); done
    PIDS=("${keep[@]}")
    WARD_PID=""
}

# ---------------------------------------------------------------------------------------------
# 1. Create N secrets under key1

start_ward "$TMP/enc-1.yaml" "$TMP/ward-1.log"
TOKEN="$(tr -d '[:space:]' <"$DATA/admin.token")"

cat >"$TMP/create.py" <<'EOF'
import http.client, json, os, ssl, sys
host, port, ca, token = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
start, end = int(sys.argv[5]), int(sys.argv[6])
ctx = ssl.create_default_context(cafile=ca)
hdr = {"Authorization": "Bearer " + token, "Content-Type": "application/json"}
conn = None
for i in range(start, end):
    body = json.dumps({"metadata": {"name": "s%07d" % i},
                       "data": {"password": "aHVudGVyMg==", "blob": "eHh4" * 21 + "eA=="}})
    for attempt in range(5):
        try:
            if conn is None:
                conn = http.client.HTTPSConnection(host, port, context=ctx, timeout=30)
            conn.request("POST", "/api/v1/namespaces/default/secrets", body, hdr)
            r = conn.getresponse(); data = r.read()
            if r.status in (200, 201, 409):
                break
            raise RuntimeError("HTTP %d: %s" % (r.status, data[:200]))
        except (OSError, http.client.HTTPException) as e:
            conn = None
            if attempt == 4:
                raise
    else:
        sys.exit("secret s%07d not created" % i)
EOF

log "creating $N secrets with $WRITERS parallel clients"
CREATE_T0=$(date +%s.%N)
WPIDS=()
per=$(( (N + WRITERS - 1) / WRITERS ))
for w in $(seq 0 $(( WRITERS - 1 ))); do
    s=$(( w * per )); e=$(( s + per )); [ "$e" -le "$N" ] || e=$N
    [ "$s" -lt "$e" ] || continue
    timeout -k 5 "$TIMEOUT" python3 "$TMP/create.py" "$HOST" "$PORT" "$DATA/pki/ca.crt" "$TOKEN" "$s" "$e" \
        >"$TMP/create-$w.log" 2>&1 &
    WPIDS+=($!); PIDS+=($!)
done
for p in "${WPIDS[@]}"; do
    wait "$p" || { cat "$TMP"/create-*.log >&2; die "a creating client failed (log above)"; }
done
CREATE_T1=$(date +%s.%N)
CREATE_S=$(awk -v a="$CREATE_T0" -v b="$CREATE_T1" 'BEGIN { printf "%.1f", b - a }')
log "created $N secrets in ${CREATE_S}s"

COUNT=$(curl -s --max-time 60 --cacert "$DATA/pki/ca.crt" -H "Authorization: Bearer $TOKEN" \
    "$URL/api/v1/namespaces/default/secrets?limit=1" \
    | python3 -c 'import json,sys; m=json.load(sys.stdin)["metadata"]; print(m.get("remainingItemCount", -1) + 1)' || echo "?")
log "server reports $COUNT secrets in default"

# ---------------------------------------------------------------------------------------------
# 2. Restart with key2 first, key1 second; time the rewrite

stop_ward
start_ward "$TMP/enc-2.yaml" "$TMP/ward-2.log"
[ -s "$DATA/admin.kubeconfig" ] || die "no admin.kubeconfig in the data dir"

RW_ARGS=(rewrite --kubeconfig "$DATA/admin.kubeconfig" --resources secrets)
[ -n "$PAGE_SIZE" ] && RW_ARGS+=(--page-size "$PAGE_SIZE")
log "timing: ward ${RW_ARGS[*]}"
RW_T0=$(date +%s.%N)
timeout -k 5 "$TIMEOUT" "$WARD_BIN" "${RW_ARGS[@]}" >"$TMP/rewrite.log" 2>&1 \
    || { tail -n 30 "$TMP/rewrite.log" >&2; die "ward rewrite failed (log above)"; }
RW_T1=$(date +%s.%N)
sed 's/^/    /' "$TMP/rewrite.log" | tail -n 10 >&2
RW_S=$(awk -v a="$RW_T0" -v b="$RW_T1" 'BEGIN { printf "%.2f", b - a }')
RW_RATE=$(awk -v n="$N" -v s="$RW_S" 'BEGIN { printf "%.0f", n / s }')

# A second run has nothing stale left: every PUT is still sent, the server skips the writes.
RW2_T0=$(date +%s.%N)
timeout -k 5 "$TIMEOUT" "$WARD_BIN" "${RW_ARGS[@]}" >"$TMP/rewrite-2.log" 2>&1 \
    || { tail -n 30 "$TMP/rewrite-2.log" >&2; die "second ward rewrite failed (log above)"; }
RW2_T1=$(date +%s.%N)
RW2_S=$(awk -v a="$RW2_T0" -v b="$RW2_T1" 'BEGIN { printf "%.2f", b - a }')

# Reads back under key2 only: restart without key1 and GET the first and last secret.
enc_config "$TMP/enc-3.yaml" "key2=$KEY2"
stop_ward
start_ward "$TMP/enc-3.yaml" "$TMP/ward-3.log"
for name in s0000000 "$(printf 's%07d' $(( N - 1 )))"; do
    code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 10 --cacert "$DATA/pki/ca.crt" \
        -H "Authorization: Bearer $TOKEN" "$URL/api/v1/namespaces/default/secrets/$name" || true)
    [ "$code" = 200 ] || die "GET $name with key1 removed answered $code: not rewritten"
done
log "secrets read back with key1 removed"

# ---------------------------------------------------------------------------------------------
# Report

CPU_MODEL=$(awk -F': *' '/^model name/ {print $2; exit}' /proc/cpuinfo)
WARD_REV=$(git -C "$REPO" rev-parse --short HEAD 2>/dev/null || echo unknown)
if [ -n "$(git -C "$REPO" status --porcelain 2>/dev/null | head -n 1)" ]; then WARD_REV+=" (uncommitted changes)"; fi
echo
echo "| measure | value |"
echo "|---|---:|"
echo "| secrets | $N |"
echo "| create ($WRITERS HTTPS clients) | ${CREATE_S} s ($(awk -v n="$N" -v s="$CREATE_S" 'BEGIN { printf "%.0f", n / s }')/s) |"
echo "| \`ward rewrite --resources secrets\` (all stale) | ${RW_S} s |"
echo "| rewrite rate | ${RW_RATE} objects/s |"
echo "| second rewrite (nothing stale) | ${RW2_S} s |"
echo
echo "Machine: $(nproc) CPUs (${CPU_MODEL:-unknown}), $(uname -sr); load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)."
echo "ward $WARD_REV; $(date -u '+%Y-%m-%d %H:%M UTC')."
