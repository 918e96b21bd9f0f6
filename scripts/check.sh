#!/usr/bin/env bash
# Everything CI checks, plus rustdoc with warnings denied (intra-doc links must not rot).
set -euo pipefail
cd "$(dirname "$0")/.."
cargo fmt --all -- --check
cargo clippy --all-targets -- -D warnings
cargo test
RUSTDOCFLAGS="-D warnings" cargo doc --no-deps --document-private-items
