#!/usr/bin/env bash
# A local cluster for a demo: one redis-server and N miochat nodes on loopback.
#   scripts/cluster.sh [N]        (default 3; Ctrl-C stops everything)
# Node i listens on 127.0.0.1:(7880+i) for the line protocol and 127.0.0.1:(6670+i)
# for IRC; Redis on 127.0.0.1:6399. Try: nc 127.0.0.1 7881 and nc 127.0.0.1 7882.
set -euo pipefail
cd "$(dirname "$0")/.."
nodes="${1:-3}"
if ! command -v redis-server >/dev/null 2>&1; then
  echo "cluster.sh: redis-server is not installed (apt-get install redis-server)" >&2
  exit 2
fi
cargo build --release --quiet
pids=()
cleanup() { kill "${pids[@]}" 2>/dev/null || true; wait 2>/dev/null || true; }
trap cleanup EXIT INT TERM
# The cluster's truth lives in Redis (nick claims, each room's log): appendonly
# makes it survive a Redis restart. Its files go to a temporary dir.
redis_dir="$(mktemp -d)"
trap 'cleanup; rm -rf "$redis_dir"' EXIT INT TERM
redis-server --port 6399 --bind 127.0.0.1 --save '' --appendonly yes \
  --appendfsync everysec --dir "$redis_dir" >/dev/null &
pids+=($!)
sleep 0.3
for i in $(seq 1 "$nodes"); do
  name="n$i"
  target/release/miochat serve --listen "127.0.0.1:$((7880 + i))" \
    --irc-listen "127.0.0.1:$((6670 + i))" --backplane redis://127.0.0.1:6399 \
    --node-name "$name" --data-dir "miochat-data-$name" &
  pids+=($!)
done
echo "cluster.sh: Redis on 6399 and $nodes nodes (line ports 7881..$((7880 + nodes)), IRC 6671..$((6670 + nodes))); Ctrl-C stops"
wait
