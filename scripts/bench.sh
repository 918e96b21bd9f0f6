#!/usr/bin/env bash
# The standard miochat scenarios (fanout by room size, worker scaling, fixed-rate
# latency, rooms, idle memory, churn), medians of 3 fresh-server runs each, printed as
# Markdown for docs/BENCHMARKS.md.  Usage: scripts/bench.sh [--runs N] [--duration S]
set -euo pipefail
cd "$(dirname "$0")/.."
exec python3 scripts/benchkit.py bench "$@"
