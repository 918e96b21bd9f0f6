//! Private messages reach only their target, across shards.

use crate::common::TestServer;

#[test]
fn private_message_reaches_only_its_target_on_any_shard() {
    let server = TestServer::start_with(|c| c.workers = 4);
    let mut clients: Vec<_> = (0..6)
        .map(|i| server.client_named(&format!("p{i}")))
        .collect();
    // Every pair, so same-shard and cross-shard paths both run.
    for (from, client) in clients.iter_mut().enumerate() {
        for to in (0..6).filter(|&to| to != from) {
            client.send(&format!("/msg P{to} from {from} to {to}"));
        }
    }
    for (i, c) in clients.iter_mut().enumerate() {
        let lines = c.sync();
        let mut got: Vec<_> = lines
            .into_iter()
            .filter(|l| l.starts_with("PRIV "))
            .collect();
        got.sort();
        let mut want: Vec<_> = (0..6)
            .filter(|&f| f != i)
            .map(|f| format!("PRIV p{f} from {f} to {i}"))
            .collect();
        want.sort();
        // A sync only orders this client's own lines; wait for the rest.
        while got.len() < want.len() {
            got.push(c.expect("PRIV "));
            got.sort();
        }
        assert_eq!(got, want, "client {i}");
    }
}

#[test]
fn unknown_nick_and_usage_errors() {
    let server = TestServer::start();
    let mut a = server.client_named("alice");
    a.send("/msg nobody hi");
    assert_eq!(a.expect("ERR "), "ERR no-such-nick no one is called nobody");
    a.send("/msg alice");
    assert_eq!(a.expect("ERR "), "ERR usage usage: /msg NICK TEXT");
    a.send("/msg alice note to self");
    assert_eq!(a.expect("PRIV "), "PRIV alice note to self");
}
