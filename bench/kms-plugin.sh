#!/usr/bin/env bash
# Benchmark: `ward kms-plugin` Encrypt/Decrypt calls per second for each key backend over its
# real unix socket, and `ward serve` Secret creates per second with a KMS v2 provider next to
# aesgcm in the same run. All on 127.0.0.1 and local unix sockets. See usage() below.
set -euo pipefail

usage() {
    cat <<'EOF'
Usage: bench/kms-plugin.sh [--help]

  1. sets up a SoftHSM token in a temp dir (softhsm2-util --init-token, --import --aes),
  2. for each backend, starts `ward kms-plugin` on a unix socket and runs the kms_bench
     example against it (Encrypt of a 32-byte seed, then Decrypt, CONCURRENCY callers,
     DURATION seconds each):
       key-file              --key-file (AES-256-GCM in the plugin process)
       softhsm-aes-gcm       --pkcs11-mechanism aes-gcm (CKM_AES_GCM in the token)
       softhsm-key-wrap-pad  --pkcs11-mechanism aes-key-wrap-pad (C_WrapKey/C_UnwrapKey)
  3. for each of ROUNDS rounds, starts `ward serve` on a fresh data dir with secrets under
     aesgcm, then again under kms v2 (SoftHSM AES-GCM plugin), and times N Secret creates
     with WRITERS parallel HTTPS clients (python3 http.client, keep-alive, the admin token);
     prints each round's kms/aesgcm ratio and their median.
Every process it starts is stopped (by PID) and every temp dir removed on exit.

Options:
  -h, --help       print this help

Environment:
  DURATION         seconds per Encrypt/Decrypt phase (default 5)
  CONCURRENCY      concurrent gRPC callers (default 4)
  N                Secrets created per `ward serve` run (default 3000)
  WRITERS          parallel creating clients (default 4)
  ROUNDS           aesgcm/kms v2 pairs of `ward serve` runs (default 3)
  WARD_BIN         ward binary (default target/release/ward; built with
                   `cargo build --release -p ward` when missing)
  BENCH_BIN        kms_bench binary (default target/release/examples/kms_bench; built with
                   `cargo build --release -p ward-kms --example kms_bench` when missing)

Needs softhsm2 (/usr/lib/softhsm/libsofthsm2.so, softhsm2-util), python3, curl.

Examples:
  bench/kms-plugin.sh
  DURATION=10 CONCURRENCY=8 N=10000 bench/kms-plugin.sh
EOF
}

while [ $# -gt 0 ]; do
    case "$1" in
        -h|--help) usage; exit 0 ;;
        *) echo "error: unknown argument: $1 (see --help)" >&2; exit 2 ;;
    esac
done

DURATION="${DURATION:-5}"
CONCURRENCY="${CONCURRENCY:-4}"
N="${N:-3000}"
WRITERS="${WRITERS:-4}"
ROUNDS="${ROUNDS:-3}"
HOST=127.0.0.1   # loopback only
MODULE=/usr/lib/softhsm/libsofthsm2.so
PIN=4711-bench

die() { echo "error: $*" >&2; exit 1; }
log() { echo "==> $*" >&2; }

for v in DURATION CONCURRENCY N WRITERS ROUNDS; do
    [[ "${!v}" =~ ^[1-9][0-9]*$ ]] || die "$v must be a positive integer"
done

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
forget_pid() {
    local p keep=()
    for p in "${PIDS[@]}"; do [ "$p" = "$1" ] || keep+=("$p"); done
    PIDS=("${keep[@]}")
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

for c in curl python3 softhsm2-util awk timeout; do command -v "$c" >/dev/null || die "$c is required"; done
[ -e "$MODULE" ] || die "$MODULE is missing (apt-get install softhsm2)"

WARD_BIN="${WARD_BIN:-target/release/ward}"
if [ ! -x "$WARD_BIN" ]; then
    [ "$WARD_BIN" = target/release/ward ] || die "WARD_BIN=$WARD_BIN is not an executable"
    log "building the ward release binary (cargo build --release -p ward)"
    timeout 3600 cargo build --release -p ward || die "cargo build --release -p ward failed"
fi
BENCH_BIN="${BENCH_BIN:-target/release/examples/kms_bench}"
if [ ! -x "$BENCH_BIN" ]; then
    [ "$BENCH_BIN" = target/release/examples/kms_bench ] || die "BENCH_BIN=$BENCH_BIN is not an executable"
    log "building kms_bench (cargo build --release -p ward-kms --example kms_bench)"
    timeout 3600 cargo build --release -p ward-kms --example kms_bench \
        || die "cargo build of kms_bench failed"
fi
WARD_BIN="$(cd "$(dirname "$WARD_BIN")" && pwd)/$(basename "$WARD_BIN")"
BENCH_BIN="$(cd "$(dirname "$BENCH_BIN")" && pwd)/$(basename "$BENCH_BIN")"

TMP="$(mktemp -d "${TMPDIR:-/tmp}/ward-kms-bench.XXXXXX")"
chmod 700 "$TMP"

# ---------------------------------------------------------------------------------------------
# Keys: a key file, and a SoftHSM token holding an AES-256 key

# softhsm2-util --import --aes cuts a key file at its first newline or NUL byte: leave them out.
(umask 077; head -c 32 /dev/urandom >"$TMP/kek-file.key"
 head -c 4096 /dev/urandom | tr -d '\n\000' | head -c 32 >"$TMP/kek-hsm.bin"
 printf '%s\n' "$PIN" >"$TMP/pin")
[ "$(wc -c <"$TMP/kek-hsm.bin")" -eq 32 ] || die "could not draw a 32-byte key"
mkdir -p "$TMP/tokens"
export SOFTHSM2_CONF="$TMP/softhsm2.conf"
printf 'directories.tokendir = %s\nobjectstore.backend = file\nlog.level = ERROR\n' \
    "$TMP/tokens" >"$SOFTHSM2_CONF"
softhsm2-util --init-token --free --label ward-bench --so-pin 1234 --pin "$PIN" >/dev/null
softhsm2-util --import "$TMP/kek-hsm.bin" --aes --token ward-bench --label kek-1 --id 01 \
    --pin "$PIN" >/dev/null
rm -f "$TMP/kek-hsm.bin"

PLUGIN_PID=""
SOCKET="$TMP/kms.sock"
start_plugin() {  # NAME ARGS...
    local name="$1"; shift
    rm -f "$SOCKET"
    WARD_LOG=warn "$WARD_BIN" kms-plugin --listen "unix://$SOCKET" "$@" \
        </dev/null >"$TMP/plugin-$name.log" 2>&1 &
    PLUGIN_PID=$!
    PIDS+=("$PLUGIN_PID")
    local deadline=$(( SECONDS + 20 ))
    until [ -S "$SOCKET" ]; do
        kill -0 "$PLUGIN_PID" 2>/dev/null || { cat "$TMP/plugin-$name.log" >&2; die "kms-plugin ($name) exited"; }
        [ "$SECONDS" -lt "$deadline" ] || die "kms-plugin ($name) did not listen within 20s"
        sleep 0.1
    done
}
stop_plugin() {
    stop_pid "$PLUGIN_PID"
    forget_pid "$PLUGIN_PID"
    PLUGIN_PID=""
}
HSM_ARGS=(--pkcs11-module "$MODULE" --pkcs11-token-label ward-bench --pkcs11-key-label kek-1
          --pkcs11-pin-file "$TMP/pin")

# ---------------------------------------------------------------------------------------------
# 1. Encrypt/Decrypt per backend

declare -A RESULT
bench_backend() {  # NAME ARGS...
    local name="$1"; shift
    start_plugin "$name" "$@"
    log "kms_bench $name: ${DURATION}s encrypt + ${DURATION}s decrypt, $CONCURRENCY callers"
    timeout -k 5 $(( 4 * DURATION + 30 )) "$BENCH_BIN" "unix://$SOCKET" "$DURATION" "$CONCURRENCY" \
        >"$TMP/bench-$name.out" 2>&1 || { cat "$TMP/bench-$name.out" >&2; die "kms_bench $name failed"; }
    sed 's/^/    /' "$TMP/bench-$name.out" >&2
    RESULT[$name]="$(cat "$TMP/bench-$name.out")"
    stop_plugin
}
field() {  # NAME PHASE KEY
    echo "${RESULT[$1]}" | awk -v phase="$2" -v key="$3" '$1 == phase {
        for (i = 2; i <= NF; i++) { split($i, kv, "="); if (kv[1] == key) print kv[2] } }'
}
bench_backend key-file --key-file "$TMP/kek-file.key"
bench_backend softhsm-aes-gcm "${HSM_ARGS[@]}" --pkcs11-mechanism aes-gcm
bench_backend softhsm-key-wrap-pad "${HSM_ARGS[@]}" --pkcs11-mechanism aes-key-wrap-pad

# ---------------------------------------------------------------------------------------------
# 2. ward serve: N creates with aesgcm, then with kms v2 (SoftHSM AES-GCM plugin)

free_port() {
    local p
    for _ in $(seq 200); do
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

cat >"$TMP/enc-aesgcm.yaml" <<EOF
apiVersion: apiserver.config.k8s.io/v1
kind: EncryptionConfiguration
resources:
  - resources: [secrets]
    providers:
      - aesgcm:
          keys:
            - name: key1
              secret: $(head -c 32 /dev/urandom | base64 -w0)
      - identity: {}
EOF
cat >"$TMP/enc-kms.yaml" <<EOF
apiVersion: apiserver.config.k8s.io/v1
kind: EncryptionConfiguration
resources:
  - resources: [secrets]
    providers:
      - kms:
          apiVersion: v2
          name: bench-hsm
          endpoint: unix://$SOCKET
          timeout: 3s
      - identity: {}
EOF
chmod 600 "$TMP"/enc-*.yaml

cat >"$TMP/create.py" <<'EOF'
import http.client, json, ssl, sys
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
            if r.status in (200, 201):
                break
            raise RuntimeError("HTTP %d: %s" % (r.status, data[:200]))
        except (OSError, http.client.HTTPException) as e:
            conn = None
            if attempt == 4:
                raise
    else:
        sys.exit("secret s%07d not created" % i)
EOF

declare -A CREATE_RATE CREATE_SECONDS STORED_PREFIX
serve_run() {  # NAME ENCRYPTION_CONFIG
    local name="$1" config="$2" data="$TMP/data-$1" port
    port=$(free_port)
    WARD_LOG=warn "$WARD_BIN" serve --data-dir "$data" --bind-address "$HOST" --secure-port "$port" \
        --encryption-provider-config "$config" --audit-log-path "$TMP/audit-$name.log" \
        </dev/null >"$TMP/ward-$name.log" 2>&1 &
    local pid=$!
    PIDS+=("$pid")
    local url="https://$HOST:$port" deadline=$(( SECONDS + 60 )) code=""
    until [ -s "$data/pki/ca.crt" ] && [ -s "$data/admin.token" ]; do
        kill -0 "$pid" 2>/dev/null || { tail -n 30 "$TMP/ward-$name.log" >&2; die "ward serve exited"; }
        [ "$SECONDS" -lt "$deadline" ] || die "ward serve did not create its PKI within 60s"
        sleep 0.2
    done
    while :; do
        code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 2 --cacert "$data/pki/ca.crt" "$url/readyz" || true)
        [ "$code" = 200 ] && break
        [ "$SECONDS" -lt "$deadline" ] || die "ward not ready within 60s ($code)"
        sleep 0.2
    done
    local token
    token="$(tr -d '[:space:]' <"$data/admin.token")"
    log "ward serve ($name): creating $N secrets with $WRITERS parallel clients"
    local t0 t1 wpids=() per s e w
    per=$(( (N + WRITERS - 1) / WRITERS ))
    t0=$(date +%s.%N)
    for w in $(seq 0 $(( WRITERS - 1 ))); do
        s=$(( w * per )); e=$(( s + per )); [ "$e" -le "$N" ] || e=$N
        [ "$s" -lt "$e" ] || continue
        timeout -k 5 600 python3 "$TMP/create.py" "$HOST" "$port" "$data/pki/ca.crt" "$token" "$s" "$e" \
            >"$TMP/create-$name-$w.log" 2>&1 &
        wpids+=($!); PIDS+=($!)
    done
    for w in "${wpids[@]}"; do
        wait "$w" || { cat "$TMP"/create-"$name"-*.log >&2; die "a creating client failed ($name)"; }
        forget_pid "$w"
    done
    t1=$(date +%s.%N)
    CREATE_SECONDS[$name]=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.2f", b - a }')
    CREATE_RATE[$name]=$(awk -v n="$N" -v a="$t0" -v b="$t1" 'BEGIN { printf "%.0f", n / (b - a) }')
    log "ward serve ($name): ${CREATE_SECONDS[$name]}s, ${CREATE_RATE[$name]} creates/s"
    # The last secret is readable (decrypts) and was stored under the expected provider.
    code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 10 --cacert "$data/pki/ca.crt" \
        -H "Authorization: Bearer $token" \
        "$url/api/v1/namespaces/default/secrets/$(printf 's%07d' $(( N - 1 )))" || true)
    [ "$code" = 200 ] || die "GET of the last secret answered $code ($name)"
    stop_pid "$pid"
    forget_pid "$pid"
    STORED_PREFIX[$name]=$(grep -aoc "k8s:enc:$3" "$data/db/ward.redb" || true)
}

# Rounds alternate aesgcm and kms v2, each on a fresh data dir, so that neither always runs
# first (other load on the machine drifts).
start_plugin serve-hsm "${HSM_ARGS[@]}" --pkcs11-mechanism aes-gcm
RATIOS=()
for r in $(seq 1 "$ROUNDS"); do
    serve_run "aesgcm-$r" "$TMP/enc-aesgcm.yaml" "aesgcm:v1:key1:"
    serve_run "kms-v2-$r" "$TMP/enc-kms.yaml" "kms:v2:bench-hsm:"
    [ "${STORED_PREFIX[aesgcm-$r]:-0}" -gt 0 ] || die "no aesgcm value found in the aesgcm store"
    [ "${STORED_PREFIX[kms-v2-$r]:-0}" -gt 0 ] || die "no kms v2 value found in the kms store"
    RATIOS+=("$(awk -v a="${CREATE_RATE[kms-v2-$r]}" -v b="${CREATE_RATE[aesgcm-$r]}" 'BEGIN { printf "%.2f", a / b }')")
    rm -rf -- "$TMP/data-aesgcm-$r" "$TMP/data-kms-v2-$r"
done
stop_plugin

# ---------------------------------------------------------------------------------------------
# Report

CPU_MODEL=$(awk -F': *' '/^model name/ {print $2; exit}' /proc/cpuinfo)
WARD_REV=$(git -C "$REPO" rev-parse --short HEAD 2>/dev/null || echo unknown)
if [ -n "$(git -C "$REPO" status --porcelain 2>/dev/null | head -n 1)" ]; then WARD_REV+=" (uncommitted changes)"; fi
echo
echo "| plugin backend | Encrypt ops/s | p50 / p99 µs | Decrypt ops/s | p50 / p99 µs | errors |"
echo "|---|---:|---:|---:|---:|---:|"
for b in key-file softhsm-aes-gcm softhsm-key-wrap-pad; do
    echo "| $b | $(field "$b" encrypt ops_s) | $(field "$b" encrypt p50_us) / $(field "$b" encrypt p99_us) | $(field "$b" decrypt ops_s) | $(field "$b" decrypt p50_us) / $(field "$b" decrypt p99_us) | $(( $(field "$b" encrypt errors) + $(field "$b" decrypt errors) )) |"
done
echo
echo "| ward serve, $N creates, $WRITERS HTTPS clients | aesgcm creates/s | kms v2 creates/s | kms v2 / aesgcm |"
echo "|---|---:|---:|---:|"
for r in $(seq 1 "$ROUNDS"); do
    echo "| round $r | ${CREATE_RATE[aesgcm-$r]} | ${CREATE_RATE[kms-v2-$r]} | ${RATIOS[$(( r - 1 ))]} |"
done
echo
echo "kms v2 / aesgcm create rate, median of $ROUNDS rounds: $(printf '%s\n' "${RATIOS[@]}" | sort -n \
    | awk '{ v[NR] = $1 } END { if (NR % 2) print v[(NR + 1) / 2]; else printf "%.2f\n", (v[NR / 2] + v[NR / 2 + 1]) / 2 }')"
echo
echo "Machine: $(nproc) CPUs (${CPU_MODEL:-unknown}), $(uname -sr); load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)."
echo "softhsm2 $(softhsm2-util -v 2>/dev/null || echo '?'); ward $WARD_REV; $(date -u '+%Y-%m-%d %H:%M UTC')."
