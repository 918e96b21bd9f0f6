#!/usr/bin/env bash
# Soak test: one server under churn (100 sessions/s) and fanout (50 clients,
# 2000 msg/s) for MINUTES, sampling its RSS and open descriptors every 5 s. Fails on
# any loss, duplicate or reorder, or if RSS or descriptors keep growing after warm-up.
# Usage: scripts/soak.sh MINUTES
set -euo pipefail
cd "$(dirname "$0")/.."
[ $# -ge 1 ] || { echo "usage: scripts/soak.sh MINUTES" >&2; exit 2; }
exec python3 scripts/benchkit.py soak "$@"
