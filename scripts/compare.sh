#!/usr/bin/env bash
# One fanout scenario against miochat (2 and 1 workers), the thread-per-client
# baseline, and ngIRCd, InspIRCd and Redis pub/sub when installed
# (apt-get install ngircd inspircd redis-server), in one invocation; medians of 3
# and the ratio of each to miochat, plus charts under --out PREFIX (default
# target/bench/compare): PREFIX.svg (deliveries/s and server CPU per delivery by
# server and room size) and PREFIX-latency-CN.svg (percentiles per room size).
# Usage: scripts/compare.sh [--clients C | --sizes C1 C2 ...] [--rate R] [--runs N]
#        [--duration S] [--out PREFIX]
set -euo pipefail
cd "$(dirname "$0")/.."
exec python3 scripts/benchkit.py compare "$@"
