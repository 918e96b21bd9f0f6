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
        addr: server.addr,
        dialect: Dialect::Line,
        timeout: Duration::from_secs(30),
        sources: 1,
        connect_window: 32,
        server_pid: Some(std::process::id()),
        tls: None,
    }
}

fn traffic(clients: usize, senders: usize, rooms: usize) -> TrafficOpts {
    TrafficOpts {
        common: Common {
            addr: ([127, 0, 0, 1], 0).into(),
            dialect: Dialect::Line,
            timeout: Duration::from_secs(30),
            sources: 1,
            connect_window: 32,
            server_pid: None,
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
        Some(Value::Int(v)) => *v,
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
    };
    let report = run(common(&server), scenario).unwrap();
    assert_pass(&report);
    assert_eq!(int(&report, "alive_after_hold"), 300);
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
