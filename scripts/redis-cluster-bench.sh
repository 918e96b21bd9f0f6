#!/usr/bin/env bash
# Cross-node throughput as a Redis Cluster gains primaries: 2 miochat nodes on a
# cluster of 1, 2 and 3 primaries (no replicas) and on one plain Redis (0), many rooms spread over both nodes;
# medians of 3 in one invocation. Needs redis-server and redis-cli.
# Usage: scripts/redis-cluster-bench.sh [--primaries 0 1 2 3] [--runs N] [--duration S]
#        [--rooms R] [--clients C] [--senders S]
set -euo pipefail
cd "$(dirname "$0")/.."
exec python3 scripts/benchkit.py primaries "$@"
