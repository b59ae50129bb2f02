#!/usr/bin/env bash
# Benchmark: GET one Secret from ward, compared with an etcd range read and nginx serving a
# static 1 KiB file over HTTPS. Same load generator (wrk) and parameters for all three, all on
# 127.0.0.1. See usage() below.
set -euo pipefail

usage() {
    cat <<'EOF'
Usage: bench/get-secret.sh [--write] [--targets LIST] [--help]

Measures, with wrk on 127.0.0.1 only and the same parameters for each target:
  ward   GET /api/v1/namespaces/default/secrets/bench   (HTTPS, bearer token), on the
         embedded store, and as a ServiceAccount (ward-sa)
  ward-etcd  the same GET from a ward serve with --etcd-servers on the etcd below
  etcd   POST /v3/kv/range for /registry/secrets/default/bench, ~300-byte value
         (single member, JSON gateway, plain HTTP)
  nginx  GET of a static 1 KiB file (HTTPS, keepalive, 2 workers)
Each target gets a warm-up run (not reported) and then a measured run. Prints a Markdown
table (req/s, p50, p99, errors), the ratios ward/etcd and ward/nginx, and machine facts.
Every process it starts is stopped and every temp dir removed on exit.

Options:
  --write          also write the results into docs/benchmarks.md (needs all three targets)
  --targets LIST   comma-separated subset of ward,ward-etcd,etcd,nginx (default: all)
  -h, --help       print this help

Environment:
  WARD_BIN         ward binary (default target/release/ward; built with
                   `cargo build --release -p ward` when missing)
  DURATION         wrk -d for the measured run (default 10s)
  CONNECTIONS      wrk -c (default 32)
  THREADS          wrk -t (default 2)
  WARMUP           wrk -d for the warm-up run (default 2s)

Needs wrk, etcd (etcd-server) and nginx (nginx-light); installs them with apt-get when
missing and running as root.

Examples:
  bench/get-secret.sh
  DURATION=30s CONNECTIONS=64 bench/get-secret.sh --write
  bench/get-secret.sh --targets etcd,nginx
EOF
}

# ---------------------------------------------------------------------------------------------
# Arguments and parameters

WRITE=0
TARGETS="ward,ward-etcd,etcd,nginx"
while [ $# -gt 0 ]; do
    case "$1" in
        -h|--help) usage; exit 0 ;;
        --write) WRITE=1 ;;
        --targets) [ $# -ge 2 ] || { echo "error: --targets needs a value" >&2; exit 2; }
                   TARGETS="$2"; shift ;;
        --targets=*) TARGETS="${1#--targets=}" ;;
        *) echo "error: unknown argument: $1 (see --help)" >&2; exit 2 ;;
    esac
    shift
done

DURATION="${DURATION:-10s}"
CONNECTIONS="${CONNECTIONS:-32}"
THREADS="${THREADS:-2}"
WARMUP="${WARMUP:-2s}"
HOST=127.0.0.1   # loopback only: every server listens here and every request goes here

die() { echo "error: $*" >&2; exit 1; }
log() { echo "==> $*" >&2; }

want() { case ",$TARGETS," in *",$1,"*) return 0 ;; *) return 1 ;; esac; }
for t in ${TARGETS//,/ }; do
    case "$t" in ward|ward-etcd|etcd|nginx) ;; *) die "unknown target '$t' in --targets (ward, ward-etcd, etcd, nginx)" ;; esac
done
if [ "$WRITE" = 1 ] && ! { want ward && want etcd && want nginx; }; then
    die "--write needs all three targets"
fi

# "10s", "2m", "1h" or a bare number of seconds -> seconds
to_seconds() {
    local v="$1"
    case "$v" in
        *[0-9]s) echo "${v%s}" ;;
        *[0-9]m) echo $(( ${v%m} * 60 )) ;;
        *[0-9]h) echo $(( ${v%h} * 3600 )) ;;
        *[0-9]) echo "$v" ;;
        *) return 1 ;;
    esac
}
DURATION_S=$(to_seconds "$DURATION") || die "DURATION must look like 10s, 2m or 30 (got '$DURATION')"
WARMUP_S=$(to_seconds "$WARMUP") || die "WARMUP must look like 2s (got '$WARMUP')"
[[ "$CONNECTIONS" =~ ^[1-9][0-9]*$ ]] || die "CONNECTIONS must be a positive integer"
[[ "$THREADS" =~ ^[1-9][0-9]*$ ]] || die "THREADS must be a positive integer"
[ "$CONNECTIONS" -ge "$THREADS" ] || die "CONNECTIONS must be >= THREADS (wrk needs one per thread)"

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO"

# ---------------------------------------------------------------------------------------------
# Cleanup: every process we start is recorded by PID and stopped on exit.

PIDS=()
TMP=""
cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    local pid
    for pid in "${PIDS[@]}"; do
        kill -TERM "$pid" 2>/dev/null || true
    done
    for pid in "${PIDS[@]}"; do
        for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        if kill -0 "$pid" 2>/dev/null; then kill -KILL "$pid" 2>/dev/null || true; fi
        wait "$pid" 2>/dev/null || true
    done
    if [ -n "$TMP" ] && [ -d "$TMP" ]; then rm -rf -- "$TMP"; fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# ---------------------------------------------------------------------------------------------
# Tools

need_pkgs=()
[ -x /usr/bin/wrk ] || command -v wrk >/dev/null || need_pkgs+=(wrk)
if want etcd; then [ -x /usr/bin/etcd ] || command -v etcd >/dev/null || need_pkgs+=(etcd-server); fi
if want nginx; then [ -x /usr/sbin/nginx ] || command -v nginx >/dev/null || need_pkgs+=(nginx-light); fi
if [ ${#need_pkgs[@]} -gt 0 ]; then
    [ "$(id -u)" = 0 ] || die "missing ${need_pkgs[*]}; run as root or: apt-get install -y ${need_pkgs[*]}"
    log "installing ${need_pkgs[*]}"
    export DEBIAN_FRONTEND=noninteractive
    timeout 600 apt-get install -y "${need_pkgs[@]}" \
        || { timeout 300 apt-get update && timeout 600 apt-get install -y "${need_pkgs[@]}"; } \
        || die "apt-get install ${need_pkgs[*]} failed"
fi
for c in curl openssl base64 awk timeout; do command -v "$c" >/dev/null || die "$c is required"; done
WRK="$(command -v wrk || echo /usr/bin/wrk)"
ETCD="$(command -v etcd || echo /usr/bin/etcd)"
NGINX="$(command -v nginx || echo /usr/sbin/nginx)"

if want ward-etcd && ! want etcd; then die "ward-etcd needs the etcd target"; fi
if want ward || want ward-etcd; then
    WARD_BIN="${WARD_BIN:-target/release/ward}"
    if [ ! -x "$WARD_BIN" ]; then
        [ "$WARD_BIN" = target/release/ward ] || die "WARD_BIN=$WARD_BIN is not an executable"
        log "building the ward release binary (cargo build --release -p ward)"
        timeout 3600 cargo build --release -p ward || die "cargo build --release -p ward failed"
    fi
    WARD_BIN="$(cd "$(dirname "$WARD_BIN")" && pwd)/$(basename "$WARD_BIN")"
fi

TMP="$(mktemp -d "${TMPDIR:-/tmp}/ward-bench.XXXXXX")"
chmod 711 "$TMP"   # nginx workers may run as another user; they need to traverse into $TMP/nginx

# A free TCP port on 127.0.0.1, below the ephemeral range so wrk's own sockets never collide.
USED_PORTS=" "
free_port() {
    local p i
    for i in $(seq 200); do
        p=$(( 20000 + RANDOM % 12000 ))
        case "$USED_PORTS" in *" $p "*) continue ;; esac
        if command -v ss >/dev/null; then
            [ -z "$(ss -Htln "sport = :$p" 2>/dev/null)" ] || continue
        elif (exec 3<>"/dev/tcp/$HOST/$p") 2>/dev/null; then
            continue
        fi
        USED_PORTS+="$p "
        echo "$p"
        return 0
    done
    die "no free port found"
}

# wait_http NAME PID LOG SECONDS curl-args... : until curl answers 200, the process dies, or time runs out
wait_http() {
    local name="$1" pid="$2" logf="$3" secs="$4"; shift 4
    local deadline=$(( SECONDS + secs )) code
    while :; do
        if ! kill -0 "$pid" 2>/dev/null; then
            tail -n 30 "$logf" >&2 || true
            die "$name exited before it was ready (log above)"
        fi
        code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 2 "$@" || true)
        [ "$code" = 200 ] && return 0
        if [ "$SECONDS" -ge "$deadline" ]; then
            tail -n 30 "$logf" >&2 || true
            die "$name did not answer 200 within ${secs}s (last status: $code)"
        fi
        sleep 0.2
    done
}

# ---------------------------------------------------------------------------------------------
# wrk runs and parsing

# Latency as printed by wrk ("850.00us", "1.23ms", "1.02s", "1.50m") -> milliseconds
to_ms() {
    awk -v v="$1" 'BEGIN {
        n = v + 0; u = v; sub(/^[0-9.]+/, "", u)
        if (u == "us") n /= 1000; else if (u == "s") n *= 1000; else if (u == "m") n *= 60000;
        else if (u == "h") n *= 3600000; else if (u != "ms") { print "?"; exit }
        printf "%.3f", n }'
}

declare -A RPS P50 P99 ERRS DESC
ORDER=()

# run_wrk NAME DESCRIPTION wrk-args... : a warm-up, then the measured run, parsed into the tables
run_wrk() {
    local name="$1" desc="$2"; shift 2
    local out="$TMP/wrk-$name.txt"
    log "$name: warm-up ${WARMUP}"
    timeout -k 5 $(( WARMUP_S + 60 )) "$WRK" -t"$THREADS" -c"$CONNECTIONS" -d"$WARMUP" "$@" >/dev/null \
        || die "$name: wrk warm-up failed"
    log "$name: measuring -t$THREADS -c$CONNECTIONS -d$DURATION --latency"
    timeout -k 5 $(( DURATION_S + 60 )) "$WRK" -t"$THREADS" -c"$CONNECTIONS" -d"$DURATION" --latency "$@" >"$out" \
        || { cat "$out" >&2; die "$name: wrk failed"; }
    sed 's/^/    /' "$out" >&2

    local rps p50 p99 non2xx sock
    rps=$(awk '/^Requests\/sec:/ {print $2}' "$out")
    p50=$(awk '/^ *50% / {print $2}' "$out")
    p99=$(awk '/^ *99% / {print $2}' "$out")
    [ -n "$rps" ] && [ -n "$p50" ] && [ -n "$p99" ] || { cat "$out" >&2; die "$name: cannot parse wrk output"; }
    non2xx=$(awk '/Non-2xx or 3xx responses:/ {print $NF}' "$out")
    # "Socket errors: connect 0, read 0, write 0, timeout 0"
    sock=$(awk -F'Socket errors: ' 'NF > 1 {
        n = split($2, a, /, */); s = ""
        for (i = 1; i <= n; i++) { split(a[i], kv, " "); if (kv[2] + 0 > 0) s = s (s == "" ? "" : ", ") kv[1] " " kv[2] }
        print s }' "$out")
    local errs=""
    [ -n "$non2xx" ] && [ "$non2xx" != 0 ] && errs="non-2xx $non2xx"
    [ -n "$sock" ] && errs="${errs:+$errs, }$sock"
    if [ -n "$errs" ]; then
        echo "WARNING: $name had errors: $errs" >&2
    else
        errs=0
    fi

    ORDER+=("$name")
    DESC[$name]="$desc"
    RPS[$name]="$rps"
    P50[$name]="$(to_ms "$p50")"
    P99[$name]="$(to_ms "$p99")"
    ERRS[$name]="$errs"
}

# ---------------------------------------------------------------------------------------------
# 1. ward

bench_ward() {  # [ETCD_URL]: the embedded store, or etcd
    local port dir name=ward storage=() secret=bench
    # On etcd, "bench" is taken: the etcd target wrote raw bytes under its key.
    if [ $# -gt 0 ]; then name=ward-etcd; storage=(--etcd-servers "$1"); secret=bench-ward; fi
    port=$(free_port)
    dir="$TMP/$name"
    log "$name: starting $WARD_BIN serve on $HOST:$port ${storage[*]}"
    WARD_LOG="${WARD_LOG:-warn}" "$WARD_BIN" serve --data-dir "$dir" --bind-address "$HOST" \
        --secure-port "$port" "${storage[@]}" </dev/null >"$TMP/$name.log" 2>&1 &
    PIDS+=($!)
    local pid=$!
    local url="https://$HOST:$port"
    # The CA appears on first start, before the listener; wait for it, then for /readyz.
    local deadline=$(( SECONDS + 60 ))
    until [ -s "$dir/pki/ca.crt" ] && [ -s "$dir/admin.token" ]; do
        kill -0 "$pid" 2>/dev/null || { tail -n 30 "$TMP/$name.log" >&2; die "ward serve exited (log above)"; }
        [ "$SECONDS" -lt "$deadline" ] || die "ward serve did not create its PKI within 60s"
        sleep 0.2
    done
    wait_http "$name" "$pid" "$TMP/$name.log" 60 --cacert "$dir/pki/ca.crt" "$url/readyz"

    local token code
    token="$(tr -d '[:space:]' <"$dir/admin.token")"
    code=$(curl -s -o "$TMP/ward-create.json" -w '%{http_code}' --max-time 10 --cacert "$dir/pki/ca.crt" \
        -X POST -H "Authorization: Bearer $token" -H 'Content-Type: application/json' \
        --data "{\"metadata\":{\"name\":\"$secret\"},\"data\":{\"password\":\"aHVudGVyMg==\"}}" \
        "$url/api/v1/namespaces/default/secrets" || true)
    [ "$code" = 201 ] || [ "$code" = 200 ] || { cat "$TMP/ward-create.json" >&2 || true; die "ward: creating the secret answered $code"; }

    local get="$url/api/v1/namespaces/default/secrets/$secret"
    code=$(curl -s -o "$TMP/ward-get.json" -w '%{http_code}' --max-time 10 --cacert "$dir/pki/ca.crt" \
        -H "Authorization: Bearer $token" "$get" || true)
    [ "$code" = 200 ] || die "ward: GET of the secret answered $code"
    WARD_BODY_BYTES=$(wc -c <"$TMP/ward-get.json")

    if [ "$name" = ward-etcd ]; then
        run_wrk ward-etcd "ward on etcd: GET secret (HTTPS; etcd over gRPC)" -H "Authorization: Bearer $token" "$get"
        return 0
    fi
    run_wrk ward "ward: GET secret (HTTPS)" -H "Authorization: Bearer $token" "$get"

    # The same GET as a ServiceAccount bound to a Role that may get that one secret: JWT
    # verification, a ServiceAccount lookup and RBAC on every request.
    local api="$url/api/v1/namespaces/default" rbac="$url/apis/rbac.authorization.k8s.io/v1/namespaces/default"
    ward_post() {  # PATH JSON -> body in $TMP/ward-post.json
        curl -s -o "$TMP/ward-post.json" -w '%{http_code}' --max-time 10 --cacert "$dir/pki/ca.crt" \
            -X POST -H "Authorization: Bearer $token" -H 'Content-Type: application/json' --data "$2" "$1" || true
    }
    code=$(ward_post "$api/serviceaccounts" '{"metadata":{"name":"bench-reader"}}')
    [ "$code" = 201 ] || die "ward: creating the ServiceAccount answered $code"
    code=$(ward_post "$rbac/roles" '{"metadata":{"name":"bench-get"},"rules":[{"apiGroups":[""],"resources":["secrets"],"resourceNames":["bench"],"verbs":["get"]}]}')
    [ "$code" = 201 ] || die "ward: creating the Role answered $code"
    code=$(ward_post "$rbac/rolebindings" '{"metadata":{"name":"bench-get"},"roleRef":{"apiGroup":"rbac.authorization.k8s.io","kind":"Role","name":"bench-get"},"subjects":[{"kind":"ServiceAccount","name":"bench-reader","namespace":"default"}]}')
    [ "$code" = 201 ] || die "ward: creating the RoleBinding answered $code"
    code=$(ward_post "$api/serviceaccounts/bench-reader/token" '{"spec":{"expirationSeconds":3600}}')
    [ "$code" = 201 ] || die "ward: TokenRequest answered $code"
    local sa_token
    sa_token=$(sed -n 's/.*"token":"\([^"]*\)".*/\1/p' "$TMP/ward-post.json")
    [ -n "$sa_token" ] || die "ward: no token in the TokenRequest reply"
    code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 10 --cacert "$dir/pki/ca.crt" \
        -H "Authorization: Bearer $sa_token" "$get" || true)
    [ "$code" = 200 ] || die "ward: GET with the ServiceAccount token answered $code"
    run_wrk ward-sa "ward: GET secret as a ServiceAccount (JWT + RBAC)" -H "Authorization: Bearer $sa_token" "$get"
}

# ---------------------------------------------------------------------------------------------
# 2. etcd

bench_etcd() {
    local cport pport
    cport=$(free_port); pport=$(free_port)
    log "etcd: starting on $HOST:$cport (peer $HOST:$pport)"
    mkdir -p "$TMP/etcd"
    # Unset inherited ETCD_* variables so they cannot change the listen addresses.
    env $(env | awk -F= '/^ETCD_/ {printf "-u %s ", $1}') \
    "$ETCD" --name bench --data-dir "$TMP/etcd/data" \
        --listen-client-urls "http://$HOST:$cport" --advertise-client-urls "http://$HOST:$cport" \
        --listen-peer-urls "http://$HOST:$pport" --initial-advertise-peer-urls "http://$HOST:$pport" \
        --initial-cluster "bench=http://$HOST:$pport" --initial-cluster-state new \
        --initial-cluster-token ward-bench --log-level warn \
        </dev/null >"$TMP/etcd.log" 2>&1 &
    PIDS+=($!)
    local pid=$!
    local url="http://$HOST:$cport"
    wait_http etcd "$pid" "$TMP/etcd.log" 60 "$url/health"
    ETCD_URL="$url"

    local key_b64 val_b64 code
    key_b64=$(printf '%s' /registry/secrets/default/bench | base64 -w0)
    # ~300 bytes, about the size of ward's JSON answer for the same secret
    val_b64=$(head -c 300 /dev/urandom | base64 -w0 | head -c 300 | base64 -w0)
    code=$(curl -s -o "$TMP/etcd-put.json" -w '%{http_code}' --max-time 10 -X POST \
        -H 'Content-Type: application/json' --data "{\"key\":\"$key_b64\",\"value\":\"$val_b64\"}" \
        "$url/v3/kv/put" || true)
    [ "$code" = 200 ] || { cat "$TMP/etcd-put.json" >&2 || true; die "etcd: put answered $code"; }
    code=$(curl -s -o "$TMP/etcd-range.json" -w '%{http_code}' --max-time 10 -X POST \
        -H 'Content-Type: application/json' --data "{\"key\":\"$key_b64\"}" "$url/v3/kv/range" || true)
    [ "$code" = 200 ] && grep -q "\"value\":\"$val_b64\"" "$TMP/etcd-range.json" \
        || { cat "$TMP/etcd-range.json" >&2 || true; die "etcd: range did not return the value ($code)"; }

    ETCD_KEY_B64="$key_b64" run_wrk etcd "etcd: range /registry/secrets/default/bench (HTTP, JSON gateway)" \
        -s "$REPO/bench/etcd-range.lua" "$url/v3/kv/range"
}

# ---------------------------------------------------------------------------------------------
# 3. nginx

bench_nginx() {
    local port d
    port=$(free_port)
    d="$TMP/nginx"
    mkdir -p "$d/www" "$d/tmp"
    chmod 755 "$d" "$d/www"
    head -c 1024 /dev/zero | tr '\0' 'x' >"$d/www/secret.txt"
    chmod 644 "$d/www/secret.txt"
    # ECDSA P-256, like ward's serving certificate
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 \
        -subj "/CN=$HOST" -addext "subjectAltName=IP:$HOST" \
        -keyout "$d/server.key" -out "$d/server.crt" >/dev/null 2>&1 || die "openssl could not make a certificate"
    cat >"$d/nginx.conf" <<EOF
daemon off;
master_process on;
worker_processes 2;
pid $d/nginx.pid;
error_log $d/error.log warn;
events { worker_connections 1024; }
http {
    access_log off;
    default_type text/plain;
    sendfile on;
    keepalive_timeout 65;
    keepalive_requests 1000000;
    client_body_temp_path $d/tmp/body;
    proxy_temp_path $d/tmp/proxy;
    fastcgi_temp_path $d/tmp/fastcgi;
    uwsgi_temp_path $d/tmp/uwsgi;
    scgi_temp_path $d/tmp/scgi;
    server {
        listen $HOST:$port ssl;
        ssl_certificate $d/server.crt;
        ssl_certificate_key $d/server.key;
        ssl_protocols TLSv1.2 TLSv1.3;
        root $d/www;
    }
}
EOF
    log "nginx: starting on $HOST:$port"
    "$NGINX" -p "$d" -e "$d/error.log" -c "$d/nginx.conf" </dev/null >"$TMP/nginx.log" 2>&1 &
    PIDS+=($!)
    local pid=$!
    wait_http nginx "$pid" "$d/error.log" 30 --cacert "$d/server.crt" "https://$HOST:$port/secret.txt"

    run_wrk nginx "nginx: static 1 KiB file (HTTPS)" "https://$HOST:$port/secret.txt"
}

want ward && bench_ward
want etcd && bench_etcd
want ward-etcd && bench_ward "$ETCD_URL"
want nginx && bench_nginx

# ---------------------------------------------------------------------------------------------
# Report

ratio() {
    if [ -n "${RPS[$1]:-}" ] && [ -n "${RPS[$2]:-}" ]; then
        awk -v a="${RPS[$1]}" -v b="${RPS[$2]}" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "n/a" }'
    else
        echo n/a
    fi
}

CMD="THREADS=$THREADS CONNECTIONS=$CONNECTIONS DURATION=$DURATION bench/get-secret.sh"
[ "$WRITE" = 1 ] && CMD+=" --write"
[ "$TARGETS" = "ward,ward-etcd,etcd,nginx" ] || CMD+=" --targets $TARGETS"
CPU_MODEL=$(awk -F': *' '/^model name/ {print $2; exit}' /proc/cpuinfo)
CPU_MODEL="${CPU_MODEL:-unknown}"
NPROC=$(nproc)
WRK_VERSION=$("$WRK" -v 2>&1 | head -n 1 | sed 's/ Copyright.*//' || true)
DATE=$(date -u '+%Y-%m-%d %H:%M UTC')
WARD_REV=$(git -C "$REPO" rev-parse --short HEAD 2>/dev/null || echo unknown)
if [ -n "$(git -C "$REPO" status --porcelain 2>/dev/null | head -n 1)" ]; then WARD_REV+=" (uncommitted changes)"; fi
ETCD_VERSION=""; NGINX_VERSION=""
want etcd && ETCD_VERSION=$("$ETCD" --version 2>/dev/null | awk '/^etcd Version/ {print $3}')
want nginx && NGINX_VERSION=$("$NGINX" -v 2>&1 | sed 's/.*nginx\///')

report() {
    echo "| target | req/s | p50 | p99 | errors |"
    echo "|---|---:|---:|---:|---|"
    local n
    for n in "${ORDER[@]}"; do
        printf '| %s | %.0f | %s ms | %s ms | %s |\n' "${DESC[$n]}" "${RPS[$n]}" "${P50[$n]}" "${P99[$n]}" "${ERRS[$n]}"
    done
    echo
    echo "- ward/etcd req/s ratio: $(ratio ward etcd)"
    [ -n "${RPS[ward-etcd]:-}" ] && echo "- ward on etcd / etcd req/s ratio: $(ratio ward-etcd etcd)"
    echo "- ward/nginx req/s ratio: $(ratio ward nginx)"
    [ -n "${RPS[ward-sa]:-}" ] && echo "- ward as a ServiceAccount / ward as admin: $(ratio ward-sa ward)"
    echo
    echo "Machine: $NPROC CPUs ($CPU_MODEL), $(uname -sr); $DATE."
    echo "Load generator: $WRK_VERSION, \`-t$THREADS -c$CONNECTIONS -d$DURATION --latency\` after a ${WARMUP} warm-up."
    local versions=""
    want ward && versions+=", ward $WARD_REV"
    [ -n "$ETCD_VERSION" ] && versions+=", etcd $ETCD_VERSION"
    [ -n "$NGINX_VERSION" ] && versions+=", nginx $NGINX_VERSION"
    echo "Versions: ${versions#, }."
}

echo
report

if [ "$WRITE" = 1 ]; then
    DOC="$REPO/docs/benchmarks.md"
    BEGIN_MARK="<!-- bench/get-secret.sh: begin (generated, edits are overwritten) -->"
    END_MARK="<!-- bench/get-secret.sh: end -->"
    {
        echo "$BEGIN_MARK"
        echo "## GET one Secret: ward vs etcd vs nginx"
        echo
        echo "Command: \`$CMD\`"
        echo
        report
        echo
        echo "Notes:"
        echo
        echo "- Everything runs on one machine over 127.0.0.1: wrk and the servers share the $NPROC cores,"
        echo "  so absolute numbers are lower than with a separate load generator; compare the ratios."
        echo "- ward: \`GET /api/v1/namespaces/default/secrets/bench\` over HTTPS with the admin bearer"
        echo "  token, release build, default redb store and the generated encryption config (secrets"
        echo "  stored with secretbox). Answer size: ${WARD_BODY_BYTES:-?} bytes of JSON."
        echo "- ward on etcd: the same GET from a second \`ward serve\` with \`--etcd-servers\` on the"
        echo "  etcd below: each GET is answered from ward's watch cache once a prefix summary (one"
        echo "  keys-only etcd range shared by the GETs waiting for it) proves the cache current."
        echo "- etcd: single member, \`POST /v3/kv/range\` through its JSON (grpc-gateway) endpoint over"
        echo "  plain HTTP (no TLS), ~300-byte value: the storage read behind a kube-apiserver GET"
        echo "  (which uses gRPC, not JSON), without the apiserver itself. etcd's gateway forwards each"
        echo "  request to its own gRPC server over another loopback connection, so this understates"
        echo "  what etcd serves to a native gRPC client."
        echo "- nginx: static 1 KiB file over HTTPS, 2 workers, keepalive, access log off: a ceiling for"
        echo "  \"TLS + HTTP/1.1 + a small answer\" on this machine."
        echo "- wrk keeps connections alive, so TLS handshakes are not part of the measurement; latencies"
        echo "  are wrk's (coordinated omission not corrected)."
        echo "$END_MARK"
    } >"$TMP/section.md"
    if [ -f "$DOC" ] && grep -qF "$BEGIN_MARK" "$DOC" && grep -qF "$END_MARK" "$DOC"; then
        awk -v b="$BEGIN_MARK" -v e="$END_MARK" -v f="$TMP/section.md" '
            $0 == b { while ((getline l < f) > 0) print l; skip = 1; next }
            $0 == e { skip = 0; next }
            !skip { print }' "$DOC" >"$TMP/doc.md"
    elif [ -f "$DOC" ]; then
        { cat "$DOC"; echo; cat "$TMP/section.md"; } >"$TMP/doc.md"
    else
        { echo "# Benchmarks"; echo; cat "$TMP/section.md"; } >"$TMP/doc.md"
    fi
    cp "$TMP/doc.md" "$DOC"
    log "wrote $DOC"
fi
