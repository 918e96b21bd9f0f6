#!/usr/bin/env bash
# What room history costs in memory: the same workload against two fresh release
# servers, one with --history 100 and one with --history 0, and the difference of
# their resident memory (VmRSS, from /proc) after it. The workload: ROOMS rooms (32
# per connection, the per-connection limit; the members stay connected so history is
# kept), LINES lines of TEXT bytes in each. Loopback only; a few seconds.
# Usage: scripts/history-memory.sh [ROOMS] [LINES] [TEXT]
set -euo pipefail
cd "$(dirname "$0")/.."
rooms=${1:-1000}
lines=${2:-100}
text=${3:-60}
cargo build --release --quiet
work=$(mktemp -d)
trap 'kill "${server:-}" 2>/dev/null || true; rm -rf "$work"' EXIT

measure() { # measure HISTORY: prints the server's VmRSS in KiB after the workload
  ./target/release/miochat serve --listen 127.0.0.1:0 --workers 2 --history "$1" --data-dir none \
    --flood-rate 0 --max-per-ip 0 --connect-rate 0 -q > "$work/addr" &
  server=$!
  for _ in $(seq 50); do [ -s "$work/addr" ] && break; sleep 0.1; done
  addr=$(awk '{print $NF}' "$work/addr")
  python3 - "$addr" "$rooms" "$lines" "$text" "$server" <<'PY'
import socket, sys, time
host, port = sys.argv[1].rsplit(":", 1)
rooms, lines, size, pid = (int(x) for x in sys.argv[2:6])
conns = []
payload = "x" * size
for first in range(0, rooms, 32):
    s = socket.create_connection((host, int(port)))
    batch = []
    for room in range(first, min(first + 32, rooms)):
        batch.append(f"/join r{room}\n")
        batch.extend(f"{payload}\n" for _ in range(lines))
    batch.append("/ping done\n")
    s.sendall("".join(batch).encode())
    conns.append(s)
for s in conns:  # wait for every connection's PONG: all lines were handled
    f = s.makefile("r")
    for line in f:
        if line.startswith("PONG done"):
            break
time.sleep(0.5)
rss = next(l for l in open(f"/proc/{pid}/status") if l.startswith("VmRSS:"))
print(rss.split()[1])
PY
  kill "$server"; wait "$server" 2>/dev/null || true
}

with=$(measure 100)
without=$(measure 0)
total=$((rooms * lines))
echo "rooms=$rooms lines_per_room=$lines text_bytes=$text"
echo "rss_kib with --history 100: $with; with --history 0: $without"
echo "history: $(( (with - without) )) KiB for $total lines = $(( (with - without) * 1024 / total )) bytes per line, $(( (with - without) / rooms )) KiB per room"
