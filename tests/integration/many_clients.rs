//! Thousands of connections on two shards, all receiving one broadcast.

use crate::common::TestServer;

#[test]
fn two_thousand_clients_all_receive_a_broadcast() {
    let server = TestServer::start();
    let mut clients: Vec<_> = (0..2000).map(|_| server.client()).collect();
    let (speaker, listeners) = clients.split_first_mut().unwrap();
    // Joins in a room this big are not announced (--announce-max), so the message
    // below is the first MSG each client sees.
    speaker.send("hello, everyone");
    let want = format!("MSG lobby {} hello, everyone", speaker.nick);
    for c in listeners.iter_mut() {
        assert_eq!(c.expect("MSG "), want);
    }
    speaker.send("/stats");
    assert!(speaker.expect("OK stats").contains("connections=2000 "));
}
