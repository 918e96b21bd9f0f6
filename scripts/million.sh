#!/usr/bin/env bash
# Holds N concurrent connections on one machine with a cluster of miochat nodes on
# one Redis, puts them all in one room, sends one message into it, and proves that
# it reached every member.
#
#   scripts/million.sh [N]           (default 1000000)
#   PER=19000 scripts/million.sh N   (connections per node and per load process)
#
# Why many processes: one process may hold at most 20000 descriptors here, and that
# cannot be raised. So there are ceil(N / PER) nodes and as many load processes
# (`miochat bench idle --await-mark`), load process i connecting only to node i from
# its own SRC source addresses 127.0.x.y (`--sources`, `--source-offset`), so that no
# address runs out of ephemeral ports, nor fills up enough to make the kernel's
# search for a free one slow. Everything is on loopback, bounded in time, and stopped and
# removed at exit, whatever happens.
#
# The last line is the verdict:
#   held N connections on K nodes: server RSS B/conn, kernel B/conn, ramp S s,
#   room fan-out to N in T ms, lost L
# and the exit status is 0 only if every connection was held and nothing was lost.
# Kernel B/conn counts slab memory and socket buffers for both ends of a connection.
set -euo pipefail
cd "$(dirname "$0")/.."
N="${1:-1000000}"
PER="${PER:-19000}"
SRC="${SRC:-8}" # source addresses per load process: a bind to port 0 slows as one address fills up
RAMP_LIMIT="${RAMP_LIMIT:-1200}" # seconds the ramp may take before the run fails
if ! [[ "$N" =~ ^[0-9]+$ ]] || [ "$N" -lt 1 ]; then
  echo "million.sh: N must be a positive number of connections" >&2
  exit 2
fi
if [ "$PER" -gt 19500 ]; then
  echo "million.sh: PER=$PER leaves no descriptors spare under the 20000 limit" >&2
  exit 2
fi
command -v redis-server >/dev/null 2>&1 || { echo "million.sh: redis-server is not installed" >&2; exit 2; }
K=$(((N + PER - 1) / PER))
cargo build --release --quiet
bin=target/release/miochat
work="$(mktemp -d)"
pids=()
cleanup() {
  kill "${pids[@]}" 2>/dev/null || true
  wait 2>/dev/null || true
  if [ -n "${KEEP:-}" ]; then echo "million.sh: kept $work" >&2; else rm -rf "$work"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
slab_kib() { awk '/^Slab:/ {print $2}' /proc/meminfo; }
sock_pages() { awk '/^TCP:/ {for (i = 1; i < NF; i++) if ($i == "mem") print $(i + 1)}' /proc/net/sockstat; }
rss_kib() { local sum=0 pid; for pid in "$@"; do sum=$((sum + $(awk '/^VmRSS:/ {print $2}' "/proc/$pid/status"))); done; echo "$sum"; }

echo "million.sh: $N connections = $K nodes x up to $PER, one Redis, $K load processes"
echo "million.sh: limits: descriptors $(ulimit -n) per process, fs.file-max $(cat /proc/sys/fs/file-max)," \
  "ports $(tr '\t' '-' </proc/sys/net/ipv4/ip_local_port_range), tcp_mem $(tr '\t' ' ' </proc/sys/net/ipv4/tcp_mem) pages"

redis_port="$(free_port)"
redis-server --port "$redis_port" --bind 127.0.0.1 --save '' --appendonly no \
  --maxclients 10000 --dir "$work" >"$work/redis.log" 2>&1 &
pids+=($!)
node_pids=()
ports=()
for i in $(seq 1 "$K"); do
  port="$(free_port)"
  ports+=("$port")
  "$bin" serve --listen "127.0.0.1:$port" --workers 1 --backplane "redis://127.0.0.1:$redis_port" \
    --node-name "m$i" --data-dir "$work/node$i" --max-connections $((PER + 50)) \
    --max-per-ip 0 --connect-rate 0 --flood-rate 0 --idle-timeout 0 --history 0 \
    >"$work/node$i.out" 2>"$work/node$i.log" &
  pid=$!
  pids+=("$pid")
  node_pids+=("$pid")
done
for port in "${ports[@]}"; do
  for _ in $(seq 1 100); do
    (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break
    sleep 0.1
  done
done
slab_before="$(slab_kib)"
sock_before="$(sock_pages)"
rss_before="$(rss_kib "${node_pids[@]}")"

started=$(date +%s%N)
load_pids=()
left="$N"
for i in $(seq 1 "$K"); do
  share=$((left < PER ? left : PER))
  left=$((left - share))
  "$bin" bench idle --addr "127.0.0.1:${ports[$((i - 1))]}" --clients "$share" --room million \
    --await-mark --hold "$RAMP_LIMIT" --timeout "$RAMP_LIMIT" --sources "$SRC" --source-offset $(((i - 1) * SRC + 1)) \
    --connect-window 128 --json >"$work/load$i.json" 2>"$work/load$i.err" &
  pid=$!
  pids+=("$pid")
  load_pids+=("$pid")
done

# The ramp: every load process says once that it has connected all its share.
while :; do
  ready=$(cat "$work"/load*.err 2>/dev/null | grep -c '^idle: .* connected' || true)
  held=$(awk '/^TCP:/ {print $3}' /proc/net/sockstat)
  elapsed=$((($(date +%s%N) - started) / 1000000000))
  printf '\rramp: %d of %d load processes ready, %d TCP sockets in use, %d s ' "$ready" "$K" "$held" "$elapsed"
  [ "$ready" -ge "$K" ] && break
  for pid in "${load_pids[@]}"; do
    if ! kill -0 "$pid" 2>/dev/null; then
      echo
      echo "million.sh: a load process ended during the ramp:" >&2
      cat "$work"/load*.err | grep -v '^idle: ' | sort | uniq -c | head -5 >&2
      exit 1
    fi
  done
  [ "$elapsed" -ge "$RAMP_LIMIT" ] && { echo; echo "million.sh: the ramp took over $RAMP_LIMIT s" >&2; exit 1; }
  sleep 2
done
echo
ramp_ms=$((($(date +%s%N) - started) / 1000000))
connected=$(cat "$work"/load*.err | awk '/^idle: / {sum += $2} END {print sum + 0}')

# Settle: joins reach the other nodes through Redis after each client's own `OK
# joined`, so wait until every node counts all N members in the room (`/rooms`), or
# the mark would time the replication backlog, not the fan-out.
settle_started=$(date +%s%N)
python3 - "$N" "$RAMP_LIMIT" "${ports[@]}" <<'PY' || { echo "million.sh: the nodes never all counted $N members" >&2; exit 1; }
import socket, sys, time
want, limit, ports = int(sys.argv[1]), float(sys.argv[2]), [int(p) for p in sys.argv[3:]]
deadline = time.time() + limit
def members(port):
    try:
        return ask(port)
    except OSError:  # a node busy with the backlog answers late: ask again
        return -1
def ask(port):
    with socket.create_connection(("127.0.0.1", port), timeout=60) as s:
        s.sendall(b"/rooms\n/quit\n")
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    for line in data.decode(errors="replace").splitlines():
        if line.startswith("OK rooms "):
            for item in line.split()[2:]:
                room, _, count = item.rpartition(":")
                if room == "million":
                    return int(count)
    return 0
waiting = list(ports)
while waiting and time.time() < deadline:
    waiting = [p for p in waiting if members(p) < want]
    if waiting:
        time.sleep(1)
sys.exit(1 if waiting else 0)
PY
settle_ms=$((($(date +%s%N) - settle_started) / 1000000))
slab_after="$(slab_kib)"
sock_after="$(sock_pages)"
rss_after="$(rss_kib "${node_pids[@]}")"

# One message into the room, stamped with the wall clock; every member must get it.
exec 3<>"/dev/tcp/127.0.0.1/${ports[0]}"
printf '/leave lobby\n/nick marker\n/join million\n' >&3
sleep 1
printf 'MARK.%s\n' "$(date +%s%N)" >&3
status=0
for pid in "${load_pids[@]}"; do wait "$pid" || status=1; done
exec 3>&-

marked=0
fanout_ms=0
problems=""
for i in $(seq 1 "$K"); do
  line="$(tail -n 1 "$work/load$i.json")"
  m=$(sed -n 's/.*"marked":\([0-9]*\).*/\1/p' <<<"$line")
  t=$(sed -n 's/.*"mark_latency_max_ms":\([0-9.]*\).*/\1/p' <<<"$line")
  marked=$((marked + ${m:-0}))
  fanout_ms=$(awk -v a="$fanout_ms" -v b="${t:-0}" 'BEGIN {print (b > a) ? b : a}')
  if ! grep -q '"verdict":"PASS"' <<<"$line"; then
    problems="$problems load$i"
    echo "million.sh: load$i: $line $(grep -v '^idle: ' "$work/load$i.err" | head -3)" >&2
  fi
done
lost=$((N - marked))
per_conn() { awk -v d="$1" -v n="$connected" 'BEGIN {printf "%.0f", (n > 0) ? d / n : 0}'; }
server_b=$(per_conn $(((rss_after - rss_before) * 1024)))
kernel_b=$(per_conn $(((slab_after - slab_before) * 1024 + (sock_after - sock_before) * 4096)))
[ -n "$problems" ] && echo "million.sh: these load processes did not pass:$problems" >&2
echo "million.sh: every node counted $N members $(awk -v ms="$settle_ms" 'BEGIN {printf "%.1f", ms / 1000}') s after the ramp"
printf 'held %d connections on %d nodes: server RSS %s B/conn, kernel %s B/conn, ramp %.1f s, room fan-out to %d in %.0f ms, lost %d\n' \
  "$connected" "$K" "$server_b" "$kernel_b" "$(awk -v ms="$ramp_ms" 'BEGIN {print ms / 1000}')" "$marked" "$fanout_ms" "$lost"
if [ "$status" -ne 0 ] || [ "$connected" -ne "$N" ] || [ "$lost" -ne 0 ] || [ -n "$problems" ]; then
  exit 1
fi
