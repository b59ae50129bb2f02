#!/usr/bin/env bash
# Resident memory of `ward agent` delivering 100 Secrets (one projected volume per Secret, each
# followed by its own watch), against a local `ward serve`. Loopback only; stops what it starts.
# Usage: bench/agent-memory.sh [--help]     env: WARD_BIN (default target/release/ward), N (100)
set -euo pipefail
if [ "${1:-}" = "--help" ] || [ "${1:-}" = "-h" ]; then
  sed -n '2,4p' "$0" | sed 's/^# \{0,1\}//'
  echo "Example: N=100 bench/agent-memory.sh"
  exit 0
fi
REPO="$(cd "$(dirname "$0")/.." && pwd)"
WARD_BIN="${WARD_BIN:-$REPO/target/release/ward}"
N="${N:-100}"
[ -x "$WARD_BIN" ] || (cd "$REPO" && cargo build --release -p ward)
TMP="$(mktemp -d /tmp/ward-agent-mem.XXXXXX)"
OUT="$(mktemp -d /dev/shm/ward-agent-mem.XXXXXX)"
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done; rm -rf "$TMP" "$OUT"; }
trap cleanup EXIT
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
WARD_LOG=warn "$WARD_BIN" serve --data-dir "$TMP/data" --secure-port "$PORT" >"$TMP/serve.log" 2>&1 &
PIDS+=($!)
for _ in $(seq 100); do [ -s "$TMP/data/admin.kubeconfig" ] && curl -s --cacert "$TMP/data/pki/ca.crt" "https://127.0.0.1:$PORT/readyz" >/dev/null 2>&1 && break; sleep 0.2; done
TOKEN=$(tr -d '[:space:]' <"$TMP/data/admin.token")
{
  echo "volumes:"
  for i in $(seq 1 "$N"); do
    curl -s -o /dev/null --cacert "$TMP/data/pki/ca.crt" -H "Authorization: Bearer $TOKEN" \
      -H 'Content-Type: application/json' \
      -d "{\"metadata\":{\"name\":\"s$i\"},\"stringData\":{\"password\":\"value-$i\",\"user\":\"u$i\"}}" \
      "https://127.0.0.1:$PORT/api/v1/namespaces/default/secrets"
    echo "  - name: s$i"
    echo "    target: $OUT/s$i"
    echo "    secret: {secretName: s$i}"
  done
} >"$TMP/agent.yaml"
WARD_LOG=warn "$WARD_BIN" agent --config "$TMP/agent.yaml" --kubeconfig "$TMP/data/admin.kubeconfig" >"$TMP/agent.log" 2>&1 &
AGENT=$!
PIDS+=("$AGENT")
for _ in $(seq 300); do [ -e "$OUT/s$N/password" ] && break; sleep 0.1; done
[ -e "$OUT/s$N/password" ] || { tail -20 "$TMP/agent.log" >&2; echo "error: the agent did not deliver the files" >&2; exit 1; }
sleep 3
RSS_KB=$(awk '/^VmRSS:/ {print $2}' "/proc/$AGENT/status")
HWM_KB=$(awk '/^VmHWM:/ {print $2}' "/proc/$AGENT/status")
THREADS=$(awk '/^Threads:/ {print $2}' "/proc/$AGENT/status")
echo "| secrets delivered | agent RSS | agent peak RSS | threads |"
echo "|---:|---:|---:|---:|"
printf '| %s | %.1f MiB | %.1f MiB | %s |\n' "$N" "$(echo "$RSS_KB/1024" | bc -l)" "$(echo "$HWM_KB/1024" | bc -l)" "$THREADS"
