#!/usr/bin/env bash
# Runs every fuzz target briefly (SECONDS_PER_TARGET, default 10 s), as CI does.
# cargo-fuzz needs nightly features; on the stable toolchain RUSTC_BOOTSTRAP=1 enables them.
set -euo pipefail
cd "$(dirname "$0")/.."
per_target="${SECONDS_PER_TARGET:-10}"
if ! cargo fuzz --version >/dev/null 2>&1; then
  echo "== installing cargo-fuzz"
  cargo install --locked cargo-fuzz
fi
cd fuzz
for target in $(cargo fuzz list); do
  echo "== fuzz $target for ${per_target}s"
  RUSTC_BOOTSTRAP=1 cargo fuzz run "$target" -- -max_total_time="$per_target" 2>&1 | tail -n 1
  test "${PIPESTATUS[0]}" -eq 0
done
