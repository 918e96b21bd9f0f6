#!/usr/bin/env bash
# The ladder table of docs/TUTORIAL.md: runs the same two `miochat bench` scenarios
# against every step of examples/ladder*.rs and against miochat itself, each on a
# fresh server on a free loopback port, and prints one Markdown table. It also writes
# the table as TSV and draws it with examples/plot.rs into docs/ladder.svg.
#
#   fanout: CLIENTS clients in one room, 10 of them sending 64-byte lines, window 16,
#           for DURATION seconds -> deliveries/s, p99, server CPU per delivery;
#   idle:   IDLE connections held 1 s -> server RSS per idle connection.
#
# Usage: scripts/ladder.sh [--quick]   (env: DURATION=2 CLIENTS=100 IDLE=5000)
# Bounded: every bench has --timeout and runs under `timeout`; loopback only; servers
# are killed when the script exits, however it exits.
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION=${DURATION:-2}
CLIENTS=${CLIENTS:-100}
IDLE=${IDLE:-5000}
if [[ "${1:-}" == "--quick" ]]; then DURATION=1 CLIENTS=20 IDLE=200; fi
TARGET=${CARGO_TARGET_DIR:-target}/release
WORK=$(mktemp -d /tmp/miochat-ladder.XXXXXX)
SERVER_PID=""

cleanup() {
    if [[ -n "$SERVER_PID" ]]; then kill "$SERVER_PID" 2>/dev/null || true; fi
    rm -rf "$WORK"
}
trap cleanup EXIT

cargo build --release --quiet --bins --examples

# start_server NAME ARGV...: starts it on 127.0.0.1:0, sets SERVER_PID and ADDR from
# the "... listening on ADDR" line it prints (NAME must be new: a reused file could
# still hold the previous server's address).
start_server() {
    local name=${1// /_}
    shift
    "$@" >"$WORK/$name.out" 2>"$WORK/$name.err" &
    SERVER_PID=$!
    for _ in $(seq 50); do
        ADDR=$(sed -n 's/.* listening on \(127\.0\.0\.1:[0-9]*\)$/\1/p' "$WORK/$name.out" 2>/dev/null | head -n1)
        if [[ -n "$ADDR" ]]; then return 0; fi
        sleep 0.1
    done
    echo "ladder.sh: $name did not print its address" >&2
    return 1
}

stop_server() {
    kill "$SERVER_PID" 2>/dev/null || true
    wait "$SERVER_PID" 2>/dev/null || true
    SERVER_PID=""
}

# bench SCENARIO ARGS...: one bench run against $ADDR; prints its JSON line (or a
# failure object if the bench printed none).
bench() {
    local out
    out=$(timeout 90 "$TARGET/miochat" bench "$1" --addr "$ADDR" --server-pid "$SERVER_PID" \
        --timeout 20 --json "${@:2}" 2>"$WORK/bench.err" | tail -n1) || true
    if [[ "$out" == "{"* ]]; then
        echo "$out"
    else
        printf '{"ok":false,"problems":["bench: %s"]}\n' "$(head -c 200 "$WORK/bench.err" | tr '"\n' "' ")"
    fi
}

# measure LABEL ARGV...: both scenarios, each against a fresh server.
measure() {
    local label=$1
    shift
    echo "ladder.sh: $label" >&2
    start_server "$label.fanout" "$@"
    bench fanout --clients "$CLIENTS" --senders 10 --size 64 --window 16 \
        --duration "$DURATION" >"$WORK/$label.fanout.json"
    stop_server
    start_server "$label.idle" "$@"
    bench idle --clients "$IDLE" --hold 1 >"$WORK/$label.idle.json"
    stop_server
    echo "$label" >>"$WORK/labels"
}

measure "1 threads" "$TARGET/examples/ladder1_threads" 127.0.0.1:0
measure "2 naive" "$TARGET/examples/ladder2_naive_loop" 127.0.0.1:0
measure "3 edge" "$TARGET/examples/ladder3_edge_triggered" 127.0.0.1:0
measure "4 fair" "$TARGET/examples/ladder4_fair" 127.0.0.1:0
measure "5 batched" "$TARGET/examples/ladder5_batched" 127.0.0.1:0
measure "6 shards" "$TARGET/examples/ladder6_sharded" 127.0.0.1:0 2
measure "miochat" "$TARGET/miochat" serve --listen 127.0.0.1:0 --workers 2 --data-dir none \
    --flood-rate 0 --idle-timeout 0 --max-connections 19000 --max-per-ip 0 --connect-rate 0 -q

# The table (Markdown on stdout) and the TSV for the chart.
python3 - "$WORK" "$CLIENTS" "$DURATION" "$IDLE" >"$WORK/table.md" <<'EOF'
import json, sys
work, clients, duration, idle = sys.argv[1:5]
known = {
    "1": "a reader that stops reading blocks every sender (the lock is held across `write_all`)",
    "2": "a burst over 1 KiB stalls in the kernel; short writes drop lines",
    "3": "a flooder starves the others; a client that never reads grows memory without bound",
    "4": "one `write` per line per recipient (1.0 lines per write)",
    "5": "one core, whatever the machine",
    "6": "one room, no generations on tokens (see `src/server/`)",
}
def load(label, scenario):
    with open(f"{work}/{label}.{scenario}.json") as f:
        return json.load(f)
def num(v, fmt):
    return "n/a" if v is None else fmt.format(v)
rows, tsv = [], ["label\tgroup\tdeliveries_per_s\tserver_ns_per_delivery\trss_bytes_per_idle_conn"
                 "\tlatency_p50_us\tlatency_p90_us\tlatency_p99_us\tlatency_p999_us"]
for label in open(f"{work}/labels").read().splitlines():
    fan, idl = load(label, "fanout"), load(label, "idle")
    ok = fan.get("ok") and idl.get("ok")
    problems = [f"fanout: {p}" for p in fan.get("problems", [])[:2]]
    problems += [f"idle: {p}" for p in idl.get("problems", [])[:1]]
    measured = "PASS" if ok else "FAIL: " + "; ".join(problems)[:160]
    note = known.get(label.split()[0], "")
    breaks = measured + (f"; known: {note}" if note else "")
    rows.append([label, num(fan.get("deliveries_per_s"), "{:,.0f}"),
                 num(fan.get("latency_p99_us"), "{:,.0f} µs"),
                 num(fan.get("server_ns_per_delivery"), "{:,.0f} ns"),
                 num(idl.get("server_rss_bytes_per_conn"), "{:,.0f} B"), breaks])
    cells = [fan.get("deliveries_per_s"), fan.get("server_ns_per_delivery"),
             idl.get("server_rss_bytes_per_conn")]
    # A run that lost data has no meaningful latency: leave it out of the chart.
    lat = [fan.get(k) if fan.get("ok") else None for k in
           ("latency_p50_us", "latency_p90_us", "latency_p99_us", "latency_p999_us")]
    group = "miochat" if label.startswith("miochat") else "ladder"
    tsv.append("\t".join([label, group] + ["-" if v is None else str(v) for v in cells + lat]))
print(f"fanout: {clients} clients in one room, 10 senders, 64-byte lines, window 16, "
      f"{duration} s; idle: {idle} connections held 1 s. One run each, fresh server; "
      "step 6 and miochat run 2 shards.\n")
print("| step | deliveries/s | p99 | server CPU / delivery | RSS / idle connection | what breaks |")
print("|---|---|---|---|---|---|")
for r in rows:
    print("| " + " | ".join(r) + " |")
with open(f"{work}/ladder.tsv", "w") as f:
    f.write("\n".join(tsv) + "\n")
EOF
cat "$WORK/table.md"
cp "$WORK/ladder.tsv" docs/ladder.tsv
"$TARGET/examples/plot" docs/ladder.tsv docs/ladder.svg --title "The ladder: miochat bench fanout and idle" \
    --bars deliveries_per_s,server_ns_per_delivery,rss_bytes_per_idle_conn
echo "ladder.sh: wrote docs/ladder.tsv and docs/ladder.svg" >&2
