#!/usr/bin/env bash
# One fanout scenario against miochat (2 and 1 workers), the thread-per-client
# baseline, and ngIRCd, InspIRCd and Redis pub/sub when installed
# (apt-get install ngircd inspircd redis-server), in one invocation; medians of 3
# and the ratio of each to miochat.  Usage: scripts/compare.sh [--clients C] [--rate R]
set -euo pipefail
cd "$(dirname "$0")/.."
exec python3 scripts/benchkit.py compare "$@"
