//! Several senders on several shards: every message reaches every other member exactly
//! once and in the order sent.

use std::collections::HashMap;
use std::thread;

use crate::common::TestServer;

const SENDERS: usize = 6;
const RECEIVERS: usize = 4;
const PER_SENDER: usize = 300;

#[test]
fn exactly_once_in_order_across_shards() {
    let server = TestServer::start_with(|c| c.workers = 4);
    let mut senders: Vec<_> = (0..SENDERS)
        .map(|i| server.client_named(&format!("s{i}")))
        .collect();
    let mut receivers: Vec<_> = (0..RECEIVERS)
        .map(|i| server.client_named(&format!("r{i}")))
        .collect();
    for c in senders.iter_mut().chain(receivers.iter_mut()) {
        c.join("order");
    }
    let threads: Vec<_> = senders
        .into_iter()
        .enumerate()
        .map(|(i, mut s)| {
            thread::spawn(move || {
                // Pipelined: all lines in one burst per 50, no waiting for replies.
                for chunk in (0..PER_SENDER).collect::<Vec<_>>().chunks(50) {
                    let text: String = chunk.iter().map(|n| format!("m {i} {n}\n")).collect();
                    s.send_raw(text.as_bytes());
                }
                s.sync();
                s
            })
        })
        .collect();
    let senders: Vec<_> = threads.into_iter().map(|t| t.join().unwrap()).collect();
    for r in &mut receivers {
        let mut next: HashMap<usize, usize> = HashMap::new();
        for _ in 0..SENDERS * PER_SENDER {
            let line = r.expect("MSG order ");
            let mut words = line.split(' ').skip(3);
            assert_eq!(words.next(), Some("m"), "{line}");
            let sender: usize = words.next().unwrap().parse().unwrap();
            let seq: usize = words.next().unwrap().parse().unwrap();
            let expected = next.entry(sender).or_insert(0);
            assert_eq!(seq, *expected, "{}: from s{sender}: {line}", r.nick);
            *expected += 1;
        }
        r.expect_quiet();
    }
    drop(senders);
}
