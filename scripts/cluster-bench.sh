#!/usr/bin/env bash
# The cluster targets in one invocation: fan-out over 2 nodes against 1 (server CPU
# includes Redis's), p99 at a fixed 1000 msg/s, and 2 x 19 000 idle connections held
# at once. Loopback only; needs redis-server.
#   scripts/cluster-bench.sh [--runs N] [--duration S] [--clients C] [--idle N] [--hold S]
set -euo pipefail
cd "$(dirname "$0")/.."
exec python3 scripts/benchkit.py cluster "$@"
