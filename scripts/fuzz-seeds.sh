#!/usr/bin/env bash
# Runs every fuzz target once over its committed seeds (fuzz/seeds/TARGET), on the
# stable toolchain: a plain build, no sanitizer, no search. It keeps the fuzz
# workspace (which `cargo test` never builds) compiling against today's types, and
# its rules holding for the handwritten inputs; the search itself is scripts/fuzz.sh.
# .ci/run calls it. Fails if a target does not build or any seed breaks a rule.
#
# Usage: scripts/fuzz-seeds.sh
set -euo pipefail
cd "$(dirname "$0")/../fuzz"
export CARGO_TARGET_DIR=target  # where the binaries are looked for below
cargo build --locked --bins --quiet
failed=0
for seeds in seeds/*/; do
  target=$(basename "$seeds")
  if ./target/debug/"$target" "$seeds"* >"target/seeds-$target.log" 2>&1; then
    echo "fuzz seeds: $target: $(find "$seeds" -type f | wc -l) seed(s) pass"
  else
    echo "fuzz seeds: $target FAILED (fuzz/target/seeds-$target.log):"
    grep -E "^(Running:|thread|assertion|  left|  right)" "target/seeds-$target.log" | head -20 || true
    failed=1
  fi
done
exit "$failed"
