#!/usr/bin/env bash
# The standard miochat scenarios (fanout by room size, worker scaling, fixed-rate
# latency, rooms, idle memory, churn), medians of 3 fresh-server runs each, printed as
# Markdown for docs/BENCHMARKS.md, plus charts: PREFIX.md, PREFIX.tsv and PREFIX.svg
# (deliveries/s, server CPU per delivery, latency percentiles) under --out PREFIX
# (default target/bench/bench).
# Usage: scripts/bench.sh [--runs N] [--duration S] [--sizes C ...] [--idle C] [--out PREFIX]
set -euo pipefail
cd "$(dirname "$0")/.."
exec python3 scripts/benchkit.py bench "$@"
