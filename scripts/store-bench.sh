#!/usr/bin/env bash
# The durable store's targets, measured in one run on this machine (loopback only;
# every run is bounded and stops by itself):
#   1. fan-out at C=100, the store on (the default) against --data-dir none,
#      interleaved, medians of RUNS: deliveries/s and server CPU per delivery;
#   2. the store's write rate: 10 senders at full speed in a room of 10, every line
#      stored, lines committed per second (and whether any were refused);
#   3. start-up time with 1,000,000 stored lines (median of 3);
#   4. idle memory per connection with the store on (median of 3).
# Usage: scripts/store-bench.sh [--runs N] [--duration S] [--idle N]
set -euo pipefail
cd "$(dirname "$0")/.."
runs=3; duration=5; idle=10000
while [ $# -gt 0 ]; do
  case "$1" in
    --runs) runs=$2; shift 2 ;;
    --duration) duration=$2; shift 2 ;;
    --idle) idle=$2; shift 2 ;;
    *) echo "usage: $0 [--runs N] [--duration S] [--idle N]" >&2; exit 2 ;;
  esac
done
cargo build --release --quiet
bin=$PWD/target/release/miochat
work=$(mktemp -d)
server=""
cleanup() { [ -n "$server" ] && kill "$server" 2>/dev/null; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT

start() { # start DATA_DIR: a server on a free port; sets $server and $addr
  "$bin" serve --listen 127.0.0.1:0 --workers 2 --flood-rate 0 --idle-timeout 0 \
    --max-per-ip 0 --connect-rate 0 --max-connections 19900 --data-dir "$1" -q > "$work/addr" &
  server=$!
  for _ in $(seq 100); do [ -s "$work/addr" ] && break; sleep 0.05; done
  addr=$(awk '{print $NF; exit}' "$work/addr")
}
stop() { kill "$server"; wait "$server" 2>/dev/null || true; server=""; }
field() { python3 -c "import json,sys; print(json.load(sys.stdin)['$1'])"; }
median() { sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

echo "== 1. fan-out C=100, ${duration}s, store on vs --data-dir none, $runs runs interleaved"
: > "$work/on"; : > "$work/off"
for run in $(seq "$runs"); do
  for mode in on off; do
    dir="$work/data-$mode-$run"; [ "$mode" = off ] && dir=none
    start "$dir"
    "$bin" bench fanout --addr "$addr" --clients 100 --duration "$duration" --json > "$work/r.json"
    stop
    echo "$(field deliveries_per_s < "$work/r.json") $(field server_ns_per_delivery < "$work/r.json")" >> "$work/$mode"
    echo "  run $run store $mode: $(cat "$work/r.json" | field deliveries_per_s) deliveries/s, $(cat "$work/r.json" | field server_ns_per_delivery) ns/delivery"
  done
done
on_rate=$(awk '{print $1}' "$work/on" | median); off_rate=$(awk '{print $1}' "$work/off" | median)
on_ns=$(awk '{print $2}' "$work/on" | median); off_ns=$(awk '{print $2}' "$work/off" | median)
python3 -c "
on, off, on_ns, off_ns = $on_rate, $off_rate, $on_ns, $off_ns
print(f'  median: store on {on:,.0f}/s {on_ns:.0f} ns, none {off:,.0f}/s {off_ns:.0f} ns;'
      f' ratio on/none: rate {on/off:.3f}, CPU per delivery {on_ns/off_ns:.3f}')"

echo "== 2. write rate: C=10, 10 senders, ${duration}s, every line stored"
start "$work/data-rate"
"$bin" bench fanout --addr "$addr" --clients 10 --senders 10 --duration "$duration" --json > "$work/r.json"
sleep 0.5 # the last batch commits within --history-sync-ms
stats=$(python3 - "$addr" <<'PY'
import socket, sys
h, p = sys.argv[1].rsplit(":", 1)
s = socket.create_connection((h, int(p)), timeout=10); f = s.makefile("rw")
f.readline(); f.write("/stats\n"); f.flush()
print(f.readline().strip())
PY
)
stop
python3 - "$stats" "$work/r.json" <<'PY'
import json, sys
stats = dict(kv.split("=", 1) for kv in sys.argv[1].split()[2:] if "=" in kv)
r = json.load(open(sys.argv[2]))
sent, elapsed = r["messages_sent"], r["elapsed_s"]
print(f"  sent {sent} lines in {elapsed:.2f} s; stored {stats['store_lines']}, refused "
      f"(queue full) {stats['store_queue_full']}, errors {stats['store_errors']}, commits "
      f"{stats['store_commits']}: {int(stats['store_lines']) / elapsed:,.0f} stored lines/s")
PY

echo "== 3. start-up with 1,000,000 stored lines"
start "$work/data-big"; stop
python3 - "$work/data-big/miochat.db" <<'PY'
import sqlite3, sys, time
db = sqlite3.connect(sys.argv[1])
base = int(time.time() * 1000) - 3_600_000
rows = (((base + i // 100) << 12 | (i % 100), f"room{i % 50}", base + i // 100, "sender", "MSG",
         f"stored line number {i} with some text in it") for i in range(1_000_000))
db.executemany("INSERT INTO history (id, room, at_ms, sender, kind, text) VALUES (?,?,?,?,?,?)", rows)
db.commit()
print("  lines stored:", db.execute("SELECT count(*) FROM history").fetchone()[0])
PY
: > "$work/starts"
for run in $(seq 3); do
  python3 - "$bin" "$work/data-big" >> "$work/starts" <<'PY'
import socket, subprocess, sys, time
t0 = time.monotonic()
p = subprocess.Popen([sys.argv[1], "serve", "--listen", "127.0.0.1:0", "--data-dir", sys.argv[2], "-q",
                      "--history-max", "0", "--history-days", "0"], stdout=subprocess.PIPE, text=True)
addr = p.stdout.readline().split()[-1]
h, port = addr.rsplit(":", 1)
s = socket.create_connection((h, int(port))); f = s.makefile("r"); f.readline()
print(f"{time.monotonic() - t0:.3f}")
p.terminate(); p.wait()
PY
done
echo "  start to first welcome, s (3 runs): $(tr '\n' ' ' < "$work/starts")median $(median < "$work/starts")"

echo "== 4. idle memory per connection, store on, $idle connections"
: > "$work/idle"
for run in $(seq 3); do
  start "$work/data-idle-$run"
  "$bin" bench idle --addr "$addr" --clients "$idle" --hold 2 --json > "$work/r.json"
  stop
  field server_rss_bytes_per_conn < "$work/r.json" >> "$work/idle"
done
echo "  bytes per idle connection (3 runs): $(tr '\n' ' ' < "$work/idle")median $(median < "$work/idle")"
