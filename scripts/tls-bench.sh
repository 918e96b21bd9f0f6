#!/usr/bin/env bash
# TLS targets: fan-out to 100 clients over TLS and over plain TCP against ONE server
# (same run, alternating, medians of 3), and TLS handshakes per second with 1000
# clients connecting (medians of 3). Prints one JSON line per run and the medians.
# Loopback only. Usage: scripts/tls-bench.sh [--messages N]
set -euo pipefail
cd "$(dirname "$0")/.."
messages=${2:-3000}
cargo build --release --quiet
work=$(mktemp -d)
cleanup() { kill "$server" 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 1 \
  -subj /CN=localhost -addext "subjectAltName=IP:127.0.0.1" \
  -keyout "$work/key.pem" -out "$work/cert.pem" 2>/dev/null
# Flood control and the per-address limits are lifted: every client is on 127.0.0.1.
./target/release/miochat serve --listen 127.0.0.1:0 --tls-listen 127.0.0.1:0 --data-dir none \
  --tls-cert "$work/cert.pem" --tls-key "$work/key.pem" --flood-rate 0 --idle-timeout 0 \
  --max-per-ip 0 --connect-rate 0 -q > "$work/addr" &
server=$!
for _ in $(seq 50); do [ "$(wc -l < "$work/addr")" -ge 2 ] && break; sleep 0.1; done
plain=$(sed -n 1p "$work/addr" | awk '{print $NF}')
tls=$(sed -n 2p "$work/addr" | awk '{print $NF}')
bench() { ./target/release/miochat bench --server-pid "$server" --json "$@"; }
for run in 1 2 3; do
  bench fanout --addr "$plain" --clients 100 --messages "$messages" | sed 's/^/plain /' | tee -a "$work/runs"
  bench fanout --addr "$tls" --tls --clients 100 --messages "$messages" | sed 's/^/tls /' | tee -a "$work/runs"
done
for run in 1 2 3; do
  bench idle --addr "$tls" --tls --clients 1000 --hold 0 | sed 's/^/handshake /' | tee -a "$work/runs"
done
python3 - "$work/runs" <<'PY'
import json, statistics, sys
rows = {}
for line in open(sys.argv[1]):
    kind, _, blob = line.partition(" ")
    rows.setdefault(kind, []).append(json.loads(blob))
med = lambda kind, key: statistics.median(r[key] for r in rows[kind])
plain, tls = med("plain", "server_ns_per_delivery"), med("tls", "server_ns_per_delivery")
print(f"median server CPU per delivery: plain {plain:.0f} ns, TLS {tls:.0f} ns, ratio {tls / plain:.2f} (target <= 3)")
print(f"median deliveries/s: plain {med('plain', 'deliveries_per_s'):.0f}, TLS {med('tls', 'deliveries_per_s'):.0f}")
print(f"median TLS handshakes/s (1000 clients connecting, 64 in flight): {med('handshake', 'connects_per_s'):.0f}")
PY
