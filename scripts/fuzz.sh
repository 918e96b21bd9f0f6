#!/usr/bin/env bash
# Runs the framing + parser fuzz target (fuzz/) for SECONDS with libFuzzer.
# cargo-fuzz needs nightly-only flags; the stable toolchain accepts them with
# RUSTC_BOOTSTRAP=1. Crashes are written to fuzz/artifacts/ and make this fail.
# Usage: scripts/fuzz.sh SECONDS
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:?usage: scripts/fuzz.sh SECONDS}
command -v cargo-fuzz >/dev/null 2>&1 || cargo install cargo-fuzz --locked
export RUSTC_BOOTSTRAP=1
cd fuzz
mkdir -p corpus/framing_parser
cargo fuzz run framing_parser corpus/framing_parser -- \
  -max_total_time="$seconds" -max_len=4096 -print_final_stats=1
