#!/usr/bin/env bash
# Builds and runs `ward serve` on the embedded default store, installing the one build tool it
# needs on a fresh Debian machine (protoc, for the etcd client's generated code).
# Usage: ./scripts/serve.sh [ward serve flags...]     e.g. ./scripts/serve.sh --secure-port 8443
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v protoc >/dev/null; then
  echo "== installing protobuf-compiler (needed to build the etcd client)" >&2
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq protobuf-compiler >/dev/null
fi
exec cargo run --release --locked -p ward -- serve "$@"
