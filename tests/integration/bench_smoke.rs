//! Short runs of every bench scenario against the real server: the correctness
//! verdicts must pass, so a regression in ordering or loss fails CI. (Speed is not
//! asserted here; that is what `scripts/bench.sh` is for.)

use std::time::Duration;

use miochat::bench::report::{Report, Value};
use miochat::bench::traffic::TrafficOpts;
use miochat::bench::{Common, Scenario, dialect::Dialect, run};

use crate::common::TestServer;

fn common(server: &TestServer) -> Common {
    Common {
        addrs: vec![server.addr],
        dialect: Dialect::Line,
        timeout: Duration::from_secs(30),
        sources: 1,
        source_offset: 0,
        connect_window: 32,
        server_pids: Some(vec![std::process::id()]),
        room: "bench".into(),
        tls: None,
    }
}

fn traffic(clients: usize, senders: usize, rooms: usize) -> TrafficOpts {
    TrafficOpts {
        common: Common {
            addrs: vec![([127, 0, 0, 1], 0).into()],
            dialect: Dialect::Line,
            timeout: Duration::from_secs(30),
            sources: 1,
            source_offset: 0,
            connect_window: 32,
            server_pids: None,
            room: "bench".into(),
            tls: None,
        },
        clients,
        senders,
        rooms,
        messages: 300,
        duration: None,
        size: 64,
        window: 16,
        rate: None,
    }
}

fn int(report: &Report, key: &str) -> u64 {
    match report.get(key) {
        Some(Value::Int(value)) => *value,
        other => panic!("{key}: {other:?}"),
    }
}

fn text(report: &Report, key: &str) -> String {
    match report.get(key) {
        Some(Value::Text(value)) => value.clone(),
        other => panic!("{key}: {other:?}"),
    }
}

#[track_caller]
fn assert_pass(report: &Report) {
    assert!(report.ok, "{}", report.human());
}

#[test]
fn fanout_delivers_everything_in_order() {
    let server = TestServer::start_with(|c| c.workers = 3);
    let report = run(common(&server), Scenario::Traffic(traffic(20, 5, 1))).unwrap();
    assert_pass(&report);
    assert_eq!(int(&report, "deliveries_received"), 5 * 300 * 19);
    assert_eq!(int(&report, "lost"), 0);
}

#[test]
fn fanout_over_websocket_delivers_everything_in_order() {
    let server = TestServer::start_with(|c| {
        c.workers = 2;
        c.http_listen = Some(([127, 0, 0, 1], 0).into());
    });
    let mut common = common(&server);
    common.addrs = vec![server.handle.http_addr().unwrap()];
    common.dialect = Dialect::Ws;
    let report = run(common, Scenario::Traffic(traffic(12, 4, 1))).unwrap();
    assert_pass(&report);
    assert_eq!(int(&report, "deliveries_received"), 4 * 300 * 11);
    assert_eq!(int(&report, "lost"), 0);
}

#[test]
fn fanout_at_a_fixed_rate() {
    let server = TestServer::start();
    let mut opts = traffic(10, 2, 1);
    opts.rate = Some(500.0);
    opts.messages = 100;
    let report = run(common(&server), Scenario::Traffic(opts)).unwrap();
    assert_pass(&report);
    assert_eq!(int(&report, "deliveries_received"), 2 * 100 * 9);
}

#[test]
fn rooms_do_not_leak() {
    let server = TestServer::start_with(|c| c.workers = 2);
    let report = run(common(&server), Scenario::Traffic(traffic(24, 8, 4))).unwrap();
    assert_pass(&report);
    assert_eq!(int(&report, "leaked"), 0);
    // 8 senders over 4 rooms of 6 members: each message reaches 5 others.
    assert_eq!(int(&report, "deliveries_received"), 8 * 300 * 5);
}

#[test]
fn idle_connections_are_held_and_alive() {
    let server = TestServer::start();
    let scenario = Scenario::Idle {
        clients: 300,
        hold: Duration::from_millis(300),
        await_mark: false,
    };
    let report = run(common(&server), scenario).unwrap();
    assert_pass(&report);
    assert_eq!(int(&report, "alive_after_hold"), 300);
}

#[test]
fn idle_waits_for_the_mark_and_reports_its_fan_out() {
    let server = TestServer::start();
    let common = common(&server);
    let idle = std::thread::spawn(move || {
        let scenario = Scenario::Idle {
            clients: 50,
            hold: Duration::from_secs(20),
            await_mark: true,
        };
        run(common, scenario).unwrap()
    });
    let mut marker = server.client_named("marker");
    marker.send("/join bench");
    marker.expect("OK joined bench");
    // Marks until the run is over: connections that join later get a later one.
    while !idle.is_finished() {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos();
        marker.send(&format!("MARK.{now}"));
        std::thread::sleep(Duration::from_millis(100));
    }
    let report = idle.join().unwrap();
    assert_pass(&report);
    assert_eq!(int(&report, "connected"), 50);
    assert_eq!(int(&report, "marked"), 50);
    assert!(report.get("mark_latency_max_ms").is_some());
}

#[test]
fn churn_completes_every_session() {
    let server = TestServer::start();
    let scenario = Scenario::Churn {
        rate: 200.0,
        duration: Duration::from_secs(1),
    };
    let report = run(common(&server), scenario).unwrap();
    assert_pass(&report);
    assert_eq!(int(&report, "completed"), int(&report, "launched"));
}

#[test]
fn the_verdict_fails_when_a_server_drops_messages() {
    // A slow-consumer cut mid-run breaks a connection: the bench must say FAIL.
    let server = TestServer::start_with(|c| c.sendq = 4300);
    let mut opts = traffic(30, 10, 1);
    opts.window = 10_000;
    opts.messages = 3000;
    opts.common.timeout = Duration::from_secs(20);
    match run(common(&server), Scenario::Traffic(opts)) {
        Ok(report) => assert!(!report.ok, "a cut was not reported:\n{}", report.human()),
        Err(e) => panic!("expected a failed report, got {e}"),
    }
}

#[test]
fn the_cli_exits_non_zero_when_the_server_is_unreachable() {
    let out = crate::common::spawn_binary(&[
        "bench",
        "fanout",
        "--addr",
        "127.0.0.1:1",
        "--clients",
        "2",
        "--timeout",
        "2",
    ])
    .output()
    .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.starts_with("miochat: bench against 127.0.0.1:1:"),
        "{err}"
    );
}

#[test]
fn clients_spread_over_several_servers_and_the_verdict_covers_them_all() {
    // Two independent (unlinked) servers stand in for two nodes. Clients alternate
    // between them, so each sender reaches only the members on its own server: the
    // verdict, computed over all clients, must count exactly the other half as lost.
    let first = TestServer::start();
    let second = TestServer::start();
    let mut base = common(&first);
    base.addrs = vec![first.addr, second.addr];
    let mut opts = traffic(8, 2, 1);
    opts.messages = 20;
    opts.window = 1000;
    opts.common.timeout = Duration::from_secs(20);
    let report = run(base, Scenario::Traffic(opts)).unwrap();
    assert!(!report.ok, "{}", report.human());
    // Sender 0 is on the first server, sender 1 on the second; each reaches the 3
    // other members on its own server and none of the 4 on the other.
    assert_eq!(int(&report, "deliveries_received"), 2 * 20 * 3);
    assert_eq!(int(&report, "lost"), 2 * 20 * 4);
    assert_eq!(int(&report, "duplicated"), 0);
    assert!(text(&report, "servers").contains(&second.addr.to_string()));
}

#[test]
fn the_server_pid_is_found_with_stats_on_loopback() {
    let server = TestServer::start();
    let mut common = common(&server);
    common.server_pids = None;
    let report = run(common, Scenario::Traffic(traffic(4, 1, 1))).unwrap();
    assert_pass(&report);
    // The server runs inside this test process, so /stats reports our own pid.
    let me = std::process::id();
    assert_eq!(
        text(&report, "server_processes"),
        format!("pid {me} (from /stats)")
    );
    assert!(report.get("server_ns_per_delivery").is_some());
}

#[test]
fn floor_copies_the_server_run_and_reports_the_ratio() {
    let server = TestServer::start();
    let mut common = common(&server);
    common.server_pids = None;
    let report = run(common, Scenario::Floor(traffic(8, 4, 1))).unwrap();
    assert_pass(&report);
    // The floor writes lines as long as those the clients received, in batches as
    // large as the server's writes carried on average, and every one arrives.
    let line = int(&report, "floor_line_bytes") as f64;
    let received = match report.get("bytes_per_delivery") {
        Some(Value::Float(bytes)) => *bytes,
        other => panic!("bytes_per_delivery: {other:?}"),
    };
    assert_eq!(line, received.round());
    let per_write = match report.get("server_deliveries_per_write") {
        Some(Value::Float(lines)) => *lines,
        other => panic!("server_deliveries_per_write: {other:?}"),
    };
    assert_eq!(
        int(&report, "floor_batch_lines"),
        per_write.round().max(1.0) as u64
    );
    assert!(int(&report, "floor_deliveries") >= int(&report, "deliveries_received"));
    assert!(
        report.get("server_to_floor_ratio").is_some(),
        "{}",
        report.human()
    );
}

#[test]
fn the_bench_stays_out_of_the_lobby() {
    let server = TestServer::start();
    let mut watcher = server.client_named("watcher");
    run(common(&server), Scenario::Traffic(traffic(4, 2, 1))).unwrap();
    let churn = Scenario::Churn {
        rate: 50.0,
        duration: Duration::from_millis(200),
    };
    assert_pass(&run(common(&server), churn).unwrap());
    // Everything the lobby saw came before this round trip: no bench message.
    watcher.send("/ping lobby-check");
    loop {
        let line = watcher.line();
        assert!(
            !line.starts_with("MSG "),
            "bench talked in the lobby: {line}"
        );
        if line == "PONG lobby-check" {
            break;
        }
    }
}

#[test]
fn the_cli_prints_csv_with_the_verdict_column() {
    let server = TestServer::start();
    let addr = server.addr.to_string();
    let out = crate::common::spawn_binary(&[
        "bench",
        "fanout",
        "--addr",
        &addr,
        "--clients",
        "3",
        "--messages",
        "10",
        "--csv",
    ])
    .output()
    .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let csv = String::from_utf8_lossy(&out.stdout);
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(lines.len(), 2, "{csv}");
    assert!(lines[0].ends_with(",verdict,problems"), "{csv}");
    assert!(lines[1].ends_with(",PASS,"), "{csv}");
}
