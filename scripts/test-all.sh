#!/usr/bin/env bash
# Runs every check and test of the workspace, installing what the tests need first.
# Usage: ./scripts/test-all.sh        (the README's test command; .ci/run calls it)
set -euo pipefail
cd "$(dirname "$0")/.."

need_apt=()
command -v curl >/dev/null || need_apt+=(curl)
command -v openssl >/dev/null || need_apt+=(openssl)
command -v protoc >/dev/null || need_apt+=(protobuf-compiler)  # etcd-client's build script
command -v etcd >/dev/null || need_apt+=(etcd-server)  # ward-storage-etcd tests start one
[ -e /usr/lib/softhsm/libsofthsm2.so ] || need_apt+=(softhsm2)  # ward-kms PKCS#11 tests
if [ ${#need_apt[@]} -gt 0 ]; then
  echo "== installing: ${need_apt[*]}"
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi
if ! command -v kubectl >/dev/null; then
  echo "error: the end-to-end tests drive the real kubectl (v1.32); install it first" >&2
  exit 1
fi

echo "== cargo fmt --check"
cargo fmt --all -- --check
echo "== cargo clippy"
cargo clippy --workspace --all-targets --locked -- -D warnings
echo "== cargo test"
# The agent's end-to-end tests run the `ward` binary as their API server: build it first.
cargo build -p ward --locked
cargo test --workspace --locked --all-targets
echo "== doc tests"
cargo test --workspace --locked --doc
echo "== cargo doc"
RUSTDOCFLAGS="-D warnings" cargo doc --workspace --no-deps --locked --quiet
echo "== fuzz smoke (each target briefly)"
./scripts/fuzz-smoke.sh
echo "all checks passed"
