#!/usr/bin/env python3
"""Benchmark harness behind scripts/bench.sh and scripts/compare.sh.

Starts each server fresh on a loopback port, runs `miochat bench --json` three times
(or --runs N), and prints a Markdown table of medians. Servers other than miochat are
used only if installed (ngircd, inspircd, redis-server); their configs are written to
a temporary directory with flood protection and output limits raised, as a benchmark
needs (the exact settings are in docs/BENCHMARKS.md).

`bench` and `compare` also write their results next to each other under --out PREFIX
(default target/bench/NAME): PREFIX.md (the Markdown printed), PREFIX.tsv and
PREFIX.svg (bar charts of deliveries/s and server CPU per delivery), and latency
percentile plots, drawn by target/release/examples/plot (its doc describes the TSV).

Everything targets 127.0.0.1 and every run is bounded by the bench's --timeout.
"""

import argparse
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MIOCHAT = os.path.join(ROOT, "target", "release", "miochat")
THREADED = os.path.join(ROOT, "target", "release", "examples", "ladder1_threads")
PLOT = os.path.join(ROOT, "target", "release", "examples", "plot")
PERCENTILES = ["latency_p50_us", "latency_p90_us", "latency_p99_us", "latency_p999_us"]

NGIRCD_CONF = """[Global]
\tName = bench.local
\tInfo = miochat comparison
\tListen = 127.0.0.1
\tPorts = {port}
\tPidFile = {dir}/ngircd.pid
[Limits]
\tMaxConnections = 0
\tMaxConnectionsIP = 0
\tMaxJoins = 0
\tMaxPenaltyTime = 0
\tPingTimeout = 600
\tPongTimeout = 600
[Options]
\tDNS = no
\tIdent = no
\tPAM = no
"""

INSPIRCD_CONF = """<config format="xml">
<server name="bench.local" description="miochat comparison" network="bench">
<admin name="bench" nick="bench" email="bench@bench.local">
<bind address="127.0.0.1" port="{port}" type="clients">
<pid file="{dir}/inspircd.pid">
<connect name="bench" allow="*" maxchans="100" timeout="60" pingfreq="600"
         hardsendq="104857600" softsendq="104857600" recvq="104857600"
         threshold="100000000" commandrate="100000000" fakelag="off"
         localmax="100000" globalmax="100000" maxconnwarn="off" useident="no" limit="100000">
<performance netbuffersize="10240" somaxconn="4096" softlimit="19000" clonesonconnect="no" quietbursts="yes">
<security hidesplits="no" hideulines="no" announceinvites="dynamic">
<options prefixquit="Quit: " syntaxhints="no" defaultmodes="nt">
<log method="file" type="* -USERINPUT -USEROUTPUT" level="sparse" target="{dir}/inspircd.log">
<dns timeout="1">
"""


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def fds(pid):
    return len(os.listdir(f"/proc/{pid}/fd"))


def build():
    subprocess.run(["cargo", "build", "--release", "--quiet", "--bins", "--examples"],
                   cwd=ROOT, check=True)


class Server:
    """A server process started for one run and stopped afterwards."""

    def __init__(self, name, dialect, argv, port, workdir, pin=None):
        self.name, self.dialect, self.port = name, dialect, port
        if pin is not None and shutil.which("taskset"):
            argv = ["taskset", "-c", pin] + argv
        self.proc = subprocess.Popen(argv, cwd=workdir, stdout=subprocess.DEVNULL,
                                     stderr=open(os.path.join(workdir, name + ".log"), "ab"))
        wait_for_port(port, self.proc)

    @property
    def pid(self):
        return self.proc.pid

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def wait_for_port(port, proc, limit=10.0):
    import socket
    deadline = time.time() + limit
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError("server exited at start (see its log)")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listens on port {port}")


def default_workers():
    """miochat's default shard count here: one per core but one, at least one."""
    return max(1, (os.cpu_count() or 1) - 1)


# Every bench client comes from 127.0.0.x, so the per-address limits (on by default,
# loopback included) are lifted, as flood control is.
NO_ADDRESS_LIMITS = ["--max-per-ip", "0", "--connect-rate", "0"]


def start(kind, port, workdir, workers=2, pin=None, aof_dir=None):
    """Starts one of the known servers; returns a Server or None if not installed.
    `aof_dir`: Redis keeps an append-only file there (and reloads it on a restart)."""
    # workers=None runs miochat's own default shard count (no --workers flag).
    shards = [] if workers is None else ["--workers", str(workers)]
    if kind == "miochat":
        argv = [MIOCHAT, "serve", "--listen", f"127.0.0.1:{port}", *shards,
                "--flood-rate", "0", "--idle-timeout", "0", "--max-connections", "19900",
                *NO_ADDRESS_LIMITS, "-q"]
        return Server(f"miochat-w{workers}", "line", argv, port, workdir, pin)
    if kind == "miochat-irc":
        argv = [MIOCHAT, "serve", "--listen", f"127.0.0.1:{port + 1000}", "--irc-listen",
                f"127.0.0.1:{port}", *shards, "--flood-rate", "0",
                "--idle-timeout", "0", "--irc-ping", "600", "--max-connections", "19900",
                *NO_ADDRESS_LIMITS, "-q"]
        return Server(f"miochat-irc-w{workers}", "irc", argv, port, workdir, pin)
    if kind == "threaded":
        return Server("threaded", "line", [THREADED, f"127.0.0.1:{port}"], port, workdir, pin)
    if kind == "ngircd" and shutil.which("ngircd"):
        conf = os.path.join(workdir, "ngircd.conf")
        with open(conf, "w") as f:
            f.write(NGIRCD_CONF.format(port=port, dir=workdir))
        return Server("ngircd", "irc", ["ngircd", "-n", "-f", conf], port, workdir, pin)
    if kind == "inspircd" and shutil.which("inspircd"):
        conf = os.path.join(workdir, "inspircd.conf")
        with open(conf, "w") as f:
            f.write(INSPIRCD_CONF.format(port=port, dir=workdir))
        argv = ["inspircd", "--nofork", "--runasroot", f"--config={conf}"]
        return Server("inspircd", "irc", argv, port, workdir, pin)
    if kind == "redis" and shutil.which("redis-server"):
        persist = ["--appendonly", "no"]
        if aof_dir:
            os.makedirs(aof_dir, exist_ok=True)
            persist = ["--appendonly", "yes", "--dir", aof_dir]
        argv = ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                *persist, "--maxclients", "19000",
                "--client-output-buffer-limit", "pubsub 0 0 0"]
        return Server("redis", "resp", argv, port, workdir, pin)
    return None


def bench(server, scenario, args, pin=None):
    argv = [MIOCHAT, "bench", scenario, "--addr", f"127.0.0.1:{server.port}",
            "--dialect", server.dialect, "--server-pid", str(server.pid), "--json"] + args
    if pin is not None and shutil.which("taskset"):
        argv = ["taskset", "-c", pin] + argv
    out = subprocess.run(argv, capture_output=True, text=True, timeout=600)
    line = out.stdout.strip().splitlines()[-1] if out.stdout.strip() else ""
    if not line.startswith("{"):
        return {"verdict": "FAIL", "ok": False, "problems": [out.stderr.strip() or "no output"]}
    return json.loads(line)


def passed(result):
    """The bench's verdict (older binaries only had the boolean `ok`)."""
    if "verdict" in result:
        return result["verdict"] == "PASS"
    return bool(result.get("ok"))


def median_run(kind, scenario, args, runs, port, workdir, workers=2, server_pin=None,
               bench_pin=None):
    """Runs a scenario `runs` times, each against a fresh server; returns medians."""
    results = []
    for _ in range(runs):
        server = start(kind, port, workdir, workers, server_pin)
        if server is None:
            return None
        try:
            results.append(bench(server, scenario, args, bench_pin))
        finally:
            server.stop()
        port += 1
    ok = all(passed(r) for r in results)
    med = {"ok": ok, "verdict": "PASS" if ok else "FAIL",
           "problems": sorted({p for r in results for p in r.get("problems", [])})}
    for key, value in results[0].items():
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            values = [r[key] for r in results if isinstance(r.get(key), (int, float))]
            med[key] = statistics.median(values) if values else None
        elif key not in med:
            med[key] = value
    med["runs"] = len(results)
    return med


def fmt(v, unit=""):
    if v is None:
        return "n/a"
    if isinstance(v, float) and v >= 1e6:
        return f"{v / 1e6:.2f} M{unit}"
    if isinstance(v, float) and v >= 1e4:
        return f"{v / 1e3:.0f} k{unit}"
    if isinstance(v, float):
        return f"{v:.0f}{unit}" if v >= 100 else f"{v:.2f}{unit}"
    return f"{v}{unit}"


def table(header, rows):
    out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    out += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(out)


def verdict(m):
    return "PASS" if passed(m) else "FAIL: " + "; ".join(m["problems"])[:120]


def cell(value):
    """A TSV cell: the number, or '-' for a missing one."""
    return "-" if value is None else str(value)


def write_tsv(path, metrics, rows):
    """rows: (label, group, {metric: value}); the format examples/plot reads."""
    with open(path, "w") as f:
        f.write("\t".join(["label", "group"] + metrics) + "\n")
        for label, group, values in rows:
            f.write("\t".join([label, group] + [cell(values.get(m)) for m in metrics]) + "\n")


def plot(tsv, svg, title, bars=None):
    """Draws one SVG with examples/plot; a failure is reported, not fatal."""
    argv = [PLOT, tsv, svg, "--title", title] + (["--bars", ",".join(bars)] if bars else [])
    done = subprocess.run(argv, capture_output=True, text=True)
    if done.returncode != 0:
        print(f"plot {svg}: {done.stderr.strip()}", file=sys.stderr)
    else:
        print(f"wrote {svg}", file=sys.stderr)


def latencies(m):
    """The percentile cells of a result; none for a failed run (its latency means nothing)."""
    return {k: m.get(k) for k in PERCENTILES} if passed(m) else {}


def output_prefix(a, name):
    prefix = a.out or os.path.join(ROOT, "target", "bench", name)
    os.makedirs(os.path.dirname(os.path.abspath(prefix)), exist_ok=True)
    return prefix


def emit(prefix, markdown):
    """Prints the Markdown and keeps a copy beside the charts."""
    print(markdown)
    with open(prefix + ".md", "w") as f:
        f.write(markdown + "\n")
    print(f"wrote {prefix}.md", file=sys.stderr)


COMPARE_KINDS = [("miochat", None), ("miochat", 1), ("miochat", 2), ("miochat", 4),
                 ("miochat-irc", None), ("threaded", 1), ("ngircd", 1), ("inspircd", 1),
                 ("redis", 1)]


def server_name(kind, workers):
    """The row name in the table, and a short one for chart axes."""
    shards = f"default ({default_workers()} shards)" if workers is None else f"--workers {workers}"
    short = "" if workers is None else f" w{workers}"
    if kind == "miochat":
        return f"miochat {shards}", f"mio{short}"
    if kind == "miochat-irc":
        return f"miochat IRC listener {shards}", f"mio irc{short}"
    return kind, kind


def compare_size(a, clients, port, workdir):
    """Every installed server at one client count; returns [(name, short, medians)]."""
    args = ["--clients", str(clients), "--senders", str(a.senders), "--size", str(a.size),
            "--window", str(a.window), "--duration", str(a.duration), "--timeout", "60"]
    if a.rate:
        args += ["--rate", str(a.rate)]
    results = []
    for kind, workers in COMPARE_KINDS:
        m = median_run(kind, "fanout", args, a.runs, port, workdir, workers)
        port += a.runs + 1
        if m is None:
            print(f"(skipping {kind}: not installed)", file=sys.stderr)
            continue
        name, short = server_name(kind, workers)
        results.append((name, short, m))
        print(f"C={clients} {name}: done", file=sys.stderr)
    return results, port


def compare_table(a, clients, results):
    rows, base = [], None
    for name, _, m in results:
        rate = m.get("deliveries_per_s")
        if base is None:
            base = rate
        ratio = f"{rate / base:.2f}" if rate and base else "n/a"
        rows.append([name, m.get("dialect"), fmt(rate, "/s"), ratio,
                     fmt(m.get("server_ns_per_delivery"), " ns"),
                     fmt(m.get("latency_p50_us"), " µs"), fmt(m.get("latency_p99_us"), " µs"),
                     int(m.get("lost") or 0), verdict(m)])
    title = (f"fanout, C={clients}, S={a.senders}, B={a.size}, "
             + (f"rate {a.rate} msg/s" if a.rate else f"window {a.window}")
             + f", {a.duration} s, medians of {a.runs}")
    return f"### {title}\n\n" + table(
        ["server", "dialect", "deliveries/s", "ratio to miochat", "server CPU/delivery",
         "p50", "p99", "lost", "verdict"], rows)


def compare_charts(prefix, a, by_size):
    """One bar chart per metric and room size (servers side by side), and one latency
    percentile plot per room size."""
    metrics, rows = [], {}
    for clients, results in by_size:
        for key in ("deliveries_per_s", "server_ns_per_delivery"):
            metrics.append(f"{key}_C{clients}")
        for name, short, m in results:
            values = rows.setdefault(short, (name, {}))[1]
            values[f"deliveries_per_s_C{clients}"] = m.get("deliveries_per_s")
            values[f"server_ns_per_delivery_C{clients}"] = m.get("server_ns_per_delivery")
    tsv_rows = [(short, name.split()[0], values) for short, (name, values) in rows.items()]
    write_tsv(prefix + ".tsv", metrics, tsv_rows)
    load = f"rate {a.rate} msg/s" if a.rate else f"window {a.window}"
    plot(prefix + ".tsv", prefix + ".svg",
         f"fanout by server and room size (C = clients), {load}, medians of {a.runs}")
    for clients, results in by_size:
        path = f"{prefix}-latency-C{clients}"
        write_tsv(path + ".tsv", PERCENTILES,
                  [(short, name.split()[0], latencies(m)) for name, short, m in results])
        plot(path + ".tsv", path + ".svg", f"fanout latency, C={clients}, {load}")


def cmd_compare(a):
    build()
    prefix = output_prefix(a, "compare")
    workdir = tempfile.mkdtemp(prefix="miochat-compare-")
    sizes = a.sizes or [a.clients]
    port, by_size = a.port, []
    for clients in sizes:
        results, port = compare_size(a, clients, port, workdir)
        by_size.append((clients, results))
    emit(prefix, "\n\n".join(compare_table(a, c, r) for c, r in by_size))
    compare_charts(prefix, a, by_size)
    shutil.rmtree(workdir, ignore_errors=True)


def cmd_bench(a):
    build()
    prefix = output_prefix(a, "bench")
    workdir = tempfile.mkdtemp(prefix="miochat-bench-")
    port, runs = a.port, a.runs
    sections, chart = [], []

    def charted(label, group, m):
        values = {"deliveries_per_s": m.get("deliveries_per_s"),
                  "server_ns_per_delivery": m.get("server_ns_per_delivery")}
        values.update(latencies(m))
        chart.append((label, group, values))

    def run(scenario, args, workers=2, server_pin=None, bench_pin=None):
        nonlocal port
        m = median_run("miochat", scenario, args, runs, port, workdir, workers, server_pin,
                       bench_pin)
        port += runs + 1
        return m

    # 1. Throughput by room size.
    rows = []
    for c in a.sizes:
        m = run("fanout", ["--clients", str(c), "--senders", "10", "--size", "64", "--window",
                           "16", "--duration", str(a.duration), "--timeout", "120"])
        rows.append([c, fmt(m.get("deliveries_per_s"), "/s"), fmt(m.get("server_ns_per_delivery"), " ns"),
                     fmt(m.get("bench_cpu_s"), " s"), fmt(m.get("latency_p50_us"), " µs"),
                     fmt(m.get("latency_p99_us"), " µs"), int(m.get("lost") or 0), verdict(m)])
        charted(f"C={c}", "fanout by room size", m)
        print(f"fanout C={c}: done", file=sys.stderr)
    sections.append(("Fan-out throughput (S=10, B=64, window 16)",
                     table(["clients", "deliveries/s", "server CPU/delivery", "bench CPU",
                            "p50", "p99", "lost", "verdict"], rows)))

    # 2. Scaling by workers, load generator pinned to core 1.
    rows = []
    for workers, spin, bpin in [(1, "0", "1"), (2, None, "1"), (2, None, None)]:
        m = run("fanout", ["--clients", "100", "--duration", str(a.duration), "--timeout", "120"],
                workers, spin, bpin)
        rows.append([workers, f"core {spin}" if spin else "any", f"core {bpin}" if bpin else "any",
                     fmt(m.get("deliveries_per_s"), "/s"), fmt(m.get("server_ns_per_delivery"), " ns"),
                     fmt(m.get("latency_p99_us"), " µs"), verdict(m)])
        charted(f"w{workers}" + (" pinned" if spin else " bench pinned" if bpin else ""),
                "workers (C=100)", m)
        print(f"workers={workers}: done", file=sys.stderr)
    sections.append(("Scaling with --workers (C=100)",
                     table(["workers", "server pinned", "bench pinned", "deliveries/s",
                            "server CPU/delivery", "p99", "verdict"], rows)))

    # 3. Latency at a fixed rate.
    m = run("fanout", ["--clients", "100", "--senders", "10", "--rate", "1000", "--duration",
                       str(a.duration + 2), "--timeout", "120"])
    sections.append(("Latency at a fixed 1000 msg/s into 100 clients (≈99 k deliveries/s)",
                     table(["deliveries/s", "p50", "p90", "p99", "p99.9", "max", "server CPU/delivery", "verdict"],
                           [[fmt(m.get("deliveries_per_s"), "/s"), fmt(m.get("latency_p50_us"), " µs"),
                             fmt(m.get("latency_p90_us"), " µs"), fmt(m.get("latency_p99_us"), " µs"),
                             fmt(m.get("latency_p999_us"), " µs"), fmt(m.get("latency_max_us"), " µs"),
                             fmt(m.get("server_ns_per_delivery"), " ns"), verdict(m)]])))
    charted("1000 msg/s", "fixed rate (C=100)", m)
    print("rate: done", file=sys.stderr)

    # 4. Rooms.
    m = run("rooms", ["--clients", "200", "--rooms", "10", "--senders", "20", "--duration",
                      str(a.duration), "--timeout", "120"])
    sections.append(("Rooms (C=200 in 10 rooms, 20 senders)",
                     table(["deliveries/s", "p99", "leaked", "lost", "verdict"],
                           [[fmt(m.get("deliveries_per_s"), "/s"), fmt(m.get("latency_p99_us"), " µs"),
                             int(m.get("leaked") or 0), int(m.get("lost") or 0), verdict(m)]])))
    print("rooms: done", file=sys.stderr)

    # 5. Idle memory.
    m = run("idle", ["--clients", str(a.idle), "--hold", "5", "--timeout", "120",
                     "--connect-window", "256"])
    sections.append((f"Idle connections (C={a.idle}, held 5 s)",
                     table(["connected", "alive after hold", "connects/s", "server RSS before",
                            "server RSS after", "RSS per connection", "verdict"],
                           [[int(m.get("connected") or 0), int(m.get("alive_after_hold") or 0),
                             fmt(m.get("connects_per_s"), "/s"),
                             f"{int(m.get('server_rss_before_kib') or 0)} KiB",
                             f"{int(m.get('server_rss_after_kib') or 0)} KiB",
                             fmt(m.get("server_rss_bytes_per_conn"), " B"), verdict(m)]])))
    print("idle: done", file=sys.stderr)

    # 6. Churn.
    m = run("churn", ["--churn-rate", "1000", "--duration", str(a.duration), "--timeout", "60"])
    sections.append(("Churn (1000 sessions/s: connect, register, one message, quit)",
                     table(["sessions/s", "completed", "failed", "verdict"],
                           [[fmt(m.get("sessions_per_s"), "/s"), int(m.get("completed") or 0),
                             int(m.get("failed") or 0), verdict(m)]])))
    print("churn: done", file=sys.stderr)

    emit(prefix, "\n".join(f"### {title}\n\n{body}\n" for title, body in sections))
    write_tsv(prefix + ".tsv", ["deliveries_per_s", "server_ns_per_delivery"] + PERCENTILES,
              chart)
    plot(prefix + ".tsv", prefix + ".svg",
         f"miochat bench: fan-out by room size, by workers, fixed rate (medians of {runs})",
         ["deliveries_per_s", "server_ns_per_delivery"])
    shutil.rmtree(workdir, ignore_errors=True)


def server_stats(port):
    """`/stats` from a running miochat, as a dict (per-shard keys as lists of ints)."""
    import socket
    with socket.create_connection(("127.0.0.1", port), timeout=5) as conn:
        conn.sendall(b"/leave lobby\n/stats\n")
        data = b""
        while b"OK stats " not in data or not data.endswith(b"\n"):
            chunk = conn.recv(65536)
            if not chunk:
                break
            data += chunk
    line = next(l for l in data.decode().splitlines() if l.startswith("OK stats "))
    stats = {}
    for word in line.split()[2:]:
        key, _, value = word.partition("=")
        parts = value.split(",")
        try:
            stats[key] = [int(p) for p in parts] if len(parts) > 1 or key in (
                "turns", "wakes_sent", "wakes_received", "inbox", "cross_shard", "poll_ms",
                "work_ms", "shards") else int(value)
        except ValueError:
            stats[key] = value
    return stats


def shard_figures(bench_result, stats):
    """What one run says about the cost of sharding: per message and per wake."""
    msgs = max(stats.get("messages_in", 0), 1)
    wakes = sum(stats.get("wakes_received", [])) or 1
    poll, work = sum(stats.get("poll_ms", [])), sum(stats.get("work_ms", []))
    return {
        "deliveries_per_s": bench_result.get("deliveries_per_s"),
        "server_ns_per_delivery": bench_result.get("server_ns_per_delivery"),
        "latency_p99_us": bench_result.get("latency_p99_us"),
        "turns_per_msg": sum(stats.get("turns", [])) / msgs,
        "wakes_per_msg": sum(stats.get("wakes_sent", [])) / msgs,
        "inbox_per_wake": sum(stats.get("inbox", [])) / wakes,
        "cross_shard_per_msg": sum(stats.get("cross_shard", [])) / msgs,
        "lines_per_write": stats.get("deliveries_out", 0) / max(stats.get("writes", 1), 1),
        "poll_share": poll / max(poll + work, 1),
        "ok": passed(bench_result),
    }


def cmd_shards(a):
    """Where a second shard's cost goes: the loop counters of `/stats` for 1, 2 and 4
    shards, at full load and at a fixed rate, medians of `--runs` (one invocation)."""
    build()
    workdir = tempfile.mkdtemp(prefix="miochat-shards-")
    base = ["--clients", str(a.clients), "--senders", "10", "--size", "64",
            "--duration", str(a.duration), "--timeout", "60"]
    loads = [("full load (window 16)", base + ["--window", "16"]),
             (f"{a.rate} msg/s", base + ["--rate", str(a.rate)])]
    port, rows = a.port, []
    for load, args in loads if a.runs else []:
        for workers in a.workers:
            runs = []
            for _ in range(a.runs):
                server = start("miochat", port, workdir, workers)
                try:
                    result = bench(server, "fanout", args)
                    runs.append(shard_figures(result, server_stats(port)))
                finally:
                    server.stop()
                port += 1
            med = {k: statistics.median([r[k] for r in runs if r[k] is not None] or [0])
                   for k in runs[0] if k != "ok"}
            ok = "PASS" if all(r["ok"] for r in runs) else "FAIL"
            rows.append([load, workers, fmt(med["deliveries_per_s"], "/s"),
                         fmt(med["server_ns_per_delivery"], " ns"),
                         fmt(med["latency_p99_us"], " µs"), f"{med['turns_per_msg']:.2f}",
                         f"{med['wakes_per_msg']:.2f}", f"{med['inbox_per_wake']:.1f}",
                         f"{med['cross_shard_per_msg']:.2f}", f"{med['lines_per_write']:.1f}",
                         f"{100 * med['poll_share']:.0f}%", ok])
            print(f"{load}, {workers} shard(s): done", file=sys.stderr)
    print(f"### Shards: fanout C={a.clients}, S=10, B=64, {a.duration} s, medians of {a.runs}\n")
    print(table(["load", "shards", "deliveries/s", "server CPU/delivery", "p99",
                 "turns/msg", "wakes sent/msg", "inbox msgs/wake", "cross-shard msgs/msg",
                 "lines/writev", "time in poll", "verdict"], rows))


class Cluster:
    """A redis-server and `nodes` miochat nodes on loopback, stopped with `stop()`."""

    def __init__(self, nodes, port, workdir, aof_dir=None):
        """`nodes` = 0: one plain miochat, no backplane and no Redis (the baseline).
        `aof_dir`: Redis persists there (appendonly), as a cluster's Redis should."""
        self.redis, self.nodes = None, []
        if nodes == 0:
            self.nodes.append(start("miochat", port + 1, workdir, None))
            return
        self.redis = start("redis", port, workdir, aof_dir=aof_dir)
        if self.redis is None:
            raise RuntimeError("redis-server is not installed")
        for i in range(nodes):
            node_port = port + 1 + i
            argv = [MIOCHAT, "serve", "--listen", f"127.0.0.1:{node_port}", "--flood-rate", "0",
                    "--idle-timeout", "0", "--max-connections", "19900", *NO_ADDRESS_LIMITS,
                    "--backplane", f"redis://127.0.0.1:{port}", "--node-name", f"n{i}",
                    "--data-dir", f"node{i}-data", "-q"]
            self.nodes.append(Server(f"node{i}", "line", argv, node_port, workdir))
        time.sleep(1.5)  # hello, rosters and subscriptions settle

    def addrs(self):
        return ",".join(f"127.0.0.1:{n.port}" for n in self.nodes)

    def pids(self, with_redis):
        pids = [n.pid for n in self.nodes] + ([self.redis.pid] if with_redis and self.redis else [])
        return ",".join(str(p) for p in pids)

    def stop(self):
        for server in self.nodes + ([self.redis] if self.redis else []):
            server.stop()


def cluster_bench(cluster, args, with_redis=True):
    argv = [MIOCHAT, "bench", "fanout", "--addr", cluster.addrs(), "--server-pid",
            cluster.pids(with_redis), "--json"] + args
    out = subprocess.run(argv, capture_output=True, text=True, timeout=600)
    line = out.stdout.strip().splitlines()[-1] if out.stdout.strip() else ""
    return json.loads(line) if line.startswith("{") else {"verdict": "FAIL", "problems": [out.stderr]}


def fault_run(a, args, port, workdir):
    """One fan-out run over 2 nodes during which Redis is killed and restarted: every
    line must still reach every member once, in order (held by its node, or read back
    from the room's log). Redis runs as CLUSTER.md asks, with `appendonly yes`: one
    that forgets its logs when killed turns a line it had logged, and published to a
    node whose link the kill reset, into a reported gap."""
    aof_dir = os.path.join(workdir, f"redis-aof-{port}")
    cluster = Cluster(2, port, workdir, aof_dir=aof_dir)
    try:
        argv = [MIOCHAT, "bench", "fanout", "--addr", cluster.addrs(), "--json"] + args
        bench_proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                      text=True)
        time.sleep(a.fault / 3)
        cluster.redis.proc.kill()
        cluster.redis.proc.wait()
        time.sleep(1.0)
        cluster.redis = start("redis", port, workdir, aof_dir=aof_dir)
        out, err = bench_proc.communicate(timeout=600)
    finally:
        cluster.stop()
    line = out.strip().splitlines()[-1] if out.strip() else ""
    r = json.loads(line) if line.startswith("{") else {"verdict": "FAIL", "problems": [err]}
    if r.get("problems"):
        print(f"fault run problems: {r['problems']}", file=sys.stderr)
    return [r.get("messages_sent", ""), f"{r.get('deliveries_received', '')} of "
            f"{r.get('deliveries_expected', '')}", r.get("lost", ""), r.get("duplicated", ""),
            r.get("reordered", ""), fmt(r.get("latency_p99_us") or 0, " µs"),
            r.get("verdict", "FAIL")]


def idle_per_node(cluster, clients, hold):
    """One bench process per node (a process holds at most ~20 000 descriptors), all at
    once; returns each node's RSS per connection in bytes (what connecting added, and
    the whole process divided), and the verdicts."""
    before = [rss_kib(n.pid) for n in cluster.nodes]
    procs = [subprocess.Popen([MIOCHAT, "bench", "idle", "--addr", f"127.0.0.1:{n.port}",
                               "--clients", str(clients), "--hold", str(hold), "--json",
                               "--timeout", "120"], stdout=subprocess.PIPE, text=True)
             for n in cluster.nodes]
    time.sleep(hold / 2 + 5)
    rss = [((rss_kib(n.pid) - b) * 1024 / clients, rss_kib(n.pid) * 1024 / clients)
           for n, b in zip(cluster.nodes, before)]
    verdicts = []
    for proc in procs:
        out, _ = proc.communicate(timeout=300)
        line = out.strip().splitlines()[-1] if out.strip() else "{}"
        report = json.loads(line) if line.startswith("{") else {}
        if report.get("problems"):
            print(f"idle problems: {report['problems'][:3]}", file=sys.stderr)
        verdicts.append(report.get("verdict", "FAIL"))
    return rss, verdicts


def cmd_cluster(a):
    """The cluster targets: fan-out over 2 nodes against one, p99 at a fixed rate, and
    idle connections held by 2 nodes at once; one invocation, medians of `--runs`."""
    build()
    workdir = tempfile.mkdtemp(prefix="miochat-cluster-")
    base = ["--clients", str(a.clients), "--senders", "10", "--size", "64",
            "--duration", str(a.duration), "--timeout", "120"]
    loads = [("full load (window 16)", base + ["--window", "16"]),
             (f"{a.rate} msg/s", base + ["--rate", str(a.rate)])]
    port, rows = a.port, []
    for load, args in loads if a.runs else []:
        for nodes in (0, 2):
            runs = []
            for _ in range(a.runs):
                cluster = Cluster(nodes, port, workdir)
                try:
                    runs.append(cluster_bench(cluster, args))
                finally:
                    cluster.stop()
                port += 10
            med = lambda key: statistics.median([r.get(key) or 0 for r in runs])
            ok = "PASS" if all(passed(r) for r in runs) else "FAIL"
            shape = "1 (no backplane)" if nodes == 0 else f"{nodes} + Redis"
            rows.append([load, shape, fmt(med("deliveries_per_s"), "/s"),
                         fmt(med("server_ns_per_delivery"), " ns"), fmt(med("latency_p50_us"), " µs"),
                         fmt(med("latency_p99_us"), " µs"), ok])
            print(f"{load}, {nodes} node(s): done", file=sys.stderr)
    if a.runs:
        print(f"### Cluster: fanout C={a.clients} spread over the nodes, S=10, B=64, "
              f"{a.duration} s, medians of {a.runs}; server CPU includes Redis\n")
        print(table(["load", "nodes", "deliveries/s", "server CPU/delivery", "p50", "p99",
                     "verdict"], rows))
    if a.fault:
        args = ["--clients", str(a.clients), "--senders", "10", "--size", "64", "--timeout",
                "120", "--rate", str(a.rate), "--duration", str(a.fault)]
        rows = [fault_run(a, args, port + 20 * i, workdir) for i in range(a.runs)]
        print(f"\n### Redis killed (SIGKILL) {a.fault / 3:.1f} s into a {a.fault} s run at "
              f"{a.rate} msg/s on 2 nodes, restarted 1 s later\n")
        print(table(["lines sent", "deliveries", "lost", "duplicated", "reordered", "p99",
                     "verdict"], rows))
        port += 20 * a.runs
    if a.idle:
        cluster = Cluster(2, port, workdir)
        try:
            rss, verdicts = idle_per_node(cluster, a.idle, a.hold)
        finally:
            cluster.stop()
        print(f"\n### Idle: {a.idle} connections on each of 2 nodes at once, held {a.hold} s\n")
        print(table(["node", "connections", "RSS per connection", "whole RSS / connections",
                     "verdict"],
                    [[f"n{i}", a.idle, f"{r:.0f} B", f"{whole:.0f} B", v]
                     for i, ((r, whole), v) in enumerate(zip(rss, verdicts))]))


class RedisClusterNodes:
    """`primaries` redis-server processes made one Redis Cluster (no replicas), the
    slots split evenly with CLUSTER ADDSLOTSRANGE and the nodes joined with CLUSTER
    MEET (redis-cli --cluster create wants at least 3 primaries)."""

    def __init__(self, primaries, port, workdir):
        self.servers, self.ports = [], [port + i for i in range(primaries)]
        for p in self.ports:
            argv = ["redis-server", "--port", str(p), "--bind", "127.0.0.1", "--save", "",
                    "--appendonly", "no", "--maxclients", "19000", "--cluster-enabled", "yes",
                    "--cluster-config-file", f"nodes-{p}.conf", "--dir", workdir,
                    "--client-output-buffer-limit", "pubsub 0 0 0"]
            self.servers.append(Server(f"redis{p}", "resp", argv, p, workdir))
        step = 16384 // primaries
        for i, p in enumerate(self.ports):
            end = 16383 if i == primaries - 1 else (i + 1) * step - 1
            self.cli(p, "CLUSTER", "ADDSLOTSRANGE", str(i * step), str(end))
            if i:
                self.cli(p, "CLUSTER", "MEET", "127.0.0.1", str(self.ports[0]))
        deadline = time.time() + 30
        while not all("cluster_state:ok" in self.cli(p, "CLUSTER", "INFO") for p in self.ports):
            if time.time() > deadline:
                raise RuntimeError("the Redis Cluster never became ok")
            time.sleep(0.1)

    @staticmethod
    def cli(port, *args):
        out = subprocess.run(["redis-cli", "-p", str(port), *args], capture_output=True,
                             text=True, timeout=30)
        return out.stdout

    def url(self):
        return "redis-cluster://" + ",".join(f"127.0.0.1:{p}" for p in self.ports)

    def stop(self):
        for server in self.servers:
            server.stop()


class PlainRedis:
    """One redis-server, not a cluster (`--primaries 0`: the baseline)."""

    def __init__(self, port, workdir):
        self.servers = [start("redis", port, workdir)]
        self.port = port

    def url(self):
        return f"redis://127.0.0.1:{self.port}"

    def stop(self):
        self.servers[0].stop()


def cpu_s(pid):
    """User + system CPU seconds of process `pid` so far."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def cmd_primaries(a):
    """Cross-node throughput as a Redis Cluster gains primaries: 2 nodes, `--rooms`
    rooms (spread over the slots) with their members spread over both nodes."""
    build()
    if not shutil.which("redis-server") or not shutil.which("redis-cli"):
        sys.exit("redis-server and redis-cli are needed")
    workdir = tempfile.mkdtemp(prefix="miochat-primaries-")
    args = ["--rooms", str(a.rooms), "--clients", str(a.clients), "--senders", str(a.senders),
            "--size", "64", "--window", "16", "--duration", str(a.duration), "--timeout", "120"]
    port, rows = a.port, []
    for primaries in a.primaries:
        runs = []
        for _ in range(a.runs):
            redis = (RedisClusterNodes(primaries, port, workdir) if primaries else
                     PlainRedis(port, workdir))
            nodes = []
            try:
                for i in range(2):
                    node_port = port + 50 + i
                    argv = [MIOCHAT, "serve", "--listen", f"127.0.0.1:{node_port}",
                            "--flood-rate", "0", "--idle-timeout", "0", "--max-connections",
                            "19900", *NO_ADDRESS_LIMITS, "--backplane", redis.url(),
                            "--node-name", f"n{i}", "--data-dir", "none", "-q"]
                    nodes.append(Server(f"node{i}", "line", argv, node_port, workdir))
                time.sleep(1.5)
                pids = ",".join(str(s.pid) for s in nodes + redis.servers)
                addrs = ",".join(f"127.0.0.1:{n.port}" for n in nodes)
                argv = [MIOCHAT, "bench", "rooms", "--addr", addrs, "--server-pid", pids,
                        "--json"] + args
                before = [cpu_s(r.pid) for r in redis.servers]
                out = subprocess.run(argv, capture_output=True, text=True, timeout=600)
                busiest = max(cpu_s(r.pid) - b for r, b in zip(redis.servers, before))
                line = out.stdout.strip().splitlines()[-1] if out.stdout.strip() else ""
                run = (json.loads(line) if line.startswith("{") else
                       {"verdict": "FAIL", "problems": [out.stderr or out.stdout]})
                # The busiest Redis's share of one core over the run: one Redis
                # process is one core, the ceiling a single primary sets.
                run["redis_core"] = busiest / max(run.get("duration_s") or a.duration, 0.001)
                runs.append(run)
            finally:
                for n in nodes:
                    n.stop()
                redis.stop()
            port += 100
        for r in runs:
            if r.get("problems"):
                print(f"{primaries} primaries: {r['problems'][:3]}", file=sys.stderr)
        med = lambda key: statistics.median([r.get(key) or 0 for r in runs])
        ok = "PASS" if all(passed(r) for r in runs) else "FAIL"
        shape = f"{primaries} (Redis Cluster)" if primaries else "single Redis"
        rows.append([shape, fmt(med("deliveries_per_s"), "/s"),
                     fmt(med("server_ns_per_delivery"), " ns"), f"{100 * med('redis_core'):.0f}%",
                     fmt(med("latency_p50_us"), " µs"), fmt(med("latency_p99_us"), " µs"), ok])
        print(f"{primaries} primaries: done", file=sys.stderr)
    print(f"### Redis Cluster primaries: 2 nodes, {a.rooms} rooms, {a.clients} clients "
          f"spread over both nodes, {a.senders} senders, B=64, window 16, {a.duration} s, "
          f"medians of {a.runs}; server CPU includes every Redis\n")
    print(table(["primaries", "deliveries/s", "server CPU/delivery", "busiest Redis (of a core)",
                 "p50", "p99", "verdict"], rows))


def cmd_soak(a):
    """Churn + fanout against one server for `minutes`; sample RSS and descriptors."""
    import threading
    build()
    workdir = tempfile.mkdtemp(prefix="miochat-soak-")
    server = start("miochat", a.port, workdir, workers=2)
    end = time.time() + a.minutes * 60
    samples, failures, runs = [], [], {"fanout": 0, "churn": 0}
    stop = threading.Event()

    def sampler():
        t0 = time.time()
        while not stop.is_set():
            samples.append((time.time() - t0, rss_kib(server.pid), fds(server.pid)))
            stop.wait(a.every)

    def loader(scenario, args):
        while time.time() < end - 1:
            chunk = max(1.0, min(a.chunk, end - time.time() - 1))
            m = bench(server, scenario, args + ["--duration", f"{chunk:.1f}", "--timeout", "60"])
            runs[scenario] += 1
            if not passed(m):
                failures.append(f"{scenario}: " + "; ".join(m.get("problems", [])))

    threads = [threading.Thread(target=sampler),
               threading.Thread(target=loader, args=("fanout", ["--clients", "50", "--senders", "5",
                                                               "--rate", "2000"])),
               threading.Thread(target=loader, args=("churn", ["--churn-rate", "100"]))]
    for t in threads:
        t.start()
    for t in threads[1:]:
        t.join()
    time.sleep(2)  # let the last connections close
    stop.set()
    threads[0].join()
    final = (rss_kib(server.pid), fds(server.pid))
    server.stop()
    shutil.rmtree(workdir, ignore_errors=True)

    print(f"### Soak: {a.minutes} min of churn (100 sessions/s) + fanout (50 clients, 2000 msg/s)\n")
    print(table(["t (s)", "server RSS", "open fds"],
                [[f"{t:.0f}", f"{r} KiB", f] for t, r, f in samples]))
    print(f"\nafter the load stopped: RSS {final[0]} KiB, {final[1]} fds; "
          f"bench runs: {runs['fanout']} fanout, {runs['churn']} churn")
    # Growth check: after a warm-up third, the last third's RSS may not exceed the middle
    # third's by more than 20 % + 2 MiB, and descriptors must return to the baseline.
    n = len(samples)
    problems = list(failures)
    if n >= 6:
        middle = statistics.median(r for _, r, _ in samples[n // 3: 2 * n // 3])
        last = statistics.median(r for _, r, _ in samples[2 * n // 3:])
        if last > middle * 1.2 + 2048:
            problems.append(f"RSS grew: median {middle} KiB -> {last} KiB")
    baseline_fds = samples[0][2] if samples else 0
    if final[1] > baseline_fds + 2:
        problems.append(f"descriptors leaked: {baseline_fds} at start, {final[1]} after")
    if problems:
        print("\nFAIL:\n- " + "\n- ".join(problems))
        sys.exit(1)
    print("\nPASS: no loss, duplicate or reorder; RSS and descriptors flat after warm-up")


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    b = sub.add_parser("bench", help="the standard miochat scenarios")
    b.add_argument("--runs", type=int, default=3)
    b.add_argument("--duration", type=float, default=3.0)
    b.add_argument("--sizes", type=int, nargs="+", default=[10, 100, 1000])
    b.add_argument("--idle", type=int, default=19000)
    b.add_argument("--port", type=int, default=17000)
    b.add_argument("--out", help="write PREFIX.md/.tsv/.svg (default target/bench/bench)")
    b.set_defaults(func=cmd_bench)
    c = sub.add_parser("compare", help="one fanout scenario against every server installed")
    c.add_argument("--runs", type=int, default=3)
    c.add_argument("--clients", type=int, default=100)
    c.add_argument("--sizes", type=int, nargs="+",
                   help="several client counts in one invocation (overrides --clients)")
    c.add_argument("--out", help="write PREFIX.md/.tsv/.svg (default target/bench/compare)")
    c.add_argument("--senders", type=int, default=10)
    c.add_argument("--size", type=int, default=64)
    c.add_argument("--window", type=int, default=16)
    c.add_argument("--rate", type=float, default=0)
    c.add_argument("--duration", type=float, default=3.0)
    c.add_argument("--port", type=int, default=18000)
    c.set_defaults(func=cmd_compare)
    h = sub.add_parser("shards", help="loop counters for 1, 2 and 4 shards")
    h.add_argument("--runs", type=int, default=3)
    h.add_argument("--duration", type=float, default=3.0)
    h.add_argument("--clients", type=int, default=100)
    h.add_argument("--rate", type=int, default=1000)
    h.add_argument("--workers", type=int, nargs="+", default=[1, 2, 4])
    h.add_argument("--port", type=int, default=24000)
    h.set_defaults(func=cmd_shards)
    g = sub.add_parser("cluster", help="the cluster targets: 1 node against 2, idle on 2")
    g.add_argument("--runs", type=int, default=3)
    g.add_argument("--duration", type=float, default=3.0)
    g.add_argument("--clients", type=int, default=100)
    g.add_argument("--rate", type=int, default=1000)
    g.add_argument("--idle", type=int, default=19000)
    g.add_argument("--hold", type=int, default=10)
    g.add_argument("--fault", type=float, default=0,
                   help="also run SECONDS at --rate with Redis killed and restarted meanwhile")
    g.add_argument("--port", type=int, default=26000)
    g.set_defaults(func=cmd_cluster)
    r = sub.add_parser("primaries", help="2 nodes on a Redis Cluster of 1, 2, 3 primaries")
    r.add_argument("--runs", type=int, default=3)
    r.add_argument("--duration", type=float, default=3.0)
    r.add_argument("--rooms", type=int, default=12)
    r.add_argument("--clients", type=int, default=120)
    r.add_argument("--senders", type=int, default=24)
    r.add_argument("--primaries", type=int, nargs="+", default=[0, 1, 2, 3],
                   help="0: a single Redis (redis://), the baseline")
    r.add_argument("--port", type=int, default=28000)
    r.set_defaults(func=cmd_primaries)
    k = sub.add_parser("soak", help="churn + fanout for MINUTES, sampling RSS and fds")
    k.add_argument("minutes", type=float)
    k.add_argument("--every", type=float, default=5.0)
    k.add_argument("--chunk", type=float, default=30.0)
    k.add_argument("--port", type=int, default=19000)
    k.set_defaults(func=cmd_soak)
    a = p.parse_args()
    a.func(a)


if __name__ == "__main__":
    main()
