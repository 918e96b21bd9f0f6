#!/usr/bin/env bash
# Where a second shard's cost goes: fanout against miochat with 1, 2 and 4 shards, at
# full load and at a fixed 1000 msg/s, with the loop counters of /stats (turns, wakes
# sent, inbox messages per wake, cross-shard messages per message, lines per writev,
# time in poll). Medians of 3, one invocation, loopback only.
#   scripts/shards.sh [--runs N] [--duration S] [--clients C] [--rate R] [--workers 1 2 4]
set -euo pipefail
cd "$(dirname "$0")/.."
exec python3 scripts/benchkit.py shards "$@"
