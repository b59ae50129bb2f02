#!/usr/bin/env bash
# Resident memory of `ward agent` delivering 100 Secrets (one projected volume per Secret, each
# followed by its own watch), against a local `ward serve`. Loopback only; stops what it starts.
# Measures `ward agent` (the full binary) and `ward-agent` (the agent-only binary).
# Usage: bench/agent-memory.sh [--help]     env: WARD_BIN (default target/release/ward),
#        AGENT_BIN (default next to WARD_BIN), N (100)
set -euo pipefail
if [ "${1:-}" = "--help" ] || [ "${1:-}" = "-h" ]; then
  sed -n '2,6p' "$0" | sed 's/^# \{0,1\}//'
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
AGENT_BIN="${AGENT_BIN:-$(dirname "$WARD_BIN")/ward-agent}"
[ -x "$AGENT_BIN" ] || (cd "$REPO" && cargo build --release -p ward-agent --bin ward-agent)
ROWS=()
measure() {  # LABEL COMMAND... : start the agent, wait for every file, read its memory, stop it
  local label="$1"; shift
  rm -rf "${OUT:?}"/*
  WARD_LOG=warn "$@" --config "$TMP/agent.yaml" --kubeconfig "$TMP/data/admin.kubeconfig" >"$TMP/agent.log" 2>&1 &
  local agent=$!
  PIDS+=("$agent")
  for _ in $(seq 300); do [ -e "$OUT/s$N/password" ] && break; sleep 0.1; done
  [ -e "$OUT/s$N/password" ] || { tail -20 "$TMP/agent.log" >&2; echo "error: $label did not deliver the files" >&2; exit 1; }
  sleep 3
  local rss hwm threads anon
  rss=$(awk '/^VmRSS:/ {print $2}' "/proc/$agent/status")
  hwm=$(awk '/^VmHWM:/ {print $2}' "/proc/$agent/status")
  threads=$(awk '/^Threads:/ {print $2}' "/proc/$agent/status")
  # Anonymous memory (heap, stacks); the rest of RSS is the binary's code and data, mapped from disk.
  anon=$(awk '/^Anonymous:/ {print $2}' "/proc/$agent/smaps_rollup" 2>/dev/null || echo 0)
  kill "$agent"; wait "$agent" 2>/dev/null || true
  ROWS+=("$(printf '| %s | %s | %.1f MiB | %.1f MiB | %.1f MiB | %s |' "$label" "$N" \
    "$(echo "$rss/1024" | bc -l)" "$(echo "$anon/1024" | bc -l)" "$(echo "$hwm/1024" | bc -l)" "$threads")")
}
measure "ward agent ($(du -m "$WARD_BIN" | cut -f1) MB binary)" "$WARD_BIN" agent
measure "ward-agent ($(du -m "$AGENT_BIN" | cut -f1) MB binary)" "$AGENT_BIN"
echo "| binary | secrets delivered | RSS | of which anonymous | peak RSS | threads |"
echo "|---|---:|---:|---:|---:|---:|"
printf '%s\n' "${ROWS[@]}"
