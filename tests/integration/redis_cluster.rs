//! Nodes on a Redis Cluster (`--backplane redis-cluster://...`): a real local cluster
//! of 3 primaries and 3 replicas (`redis-server --cluster-enabled yes` on loopback
//! ports, joined by `redis-cli --cluster create`), and `miochat serve` processes.
//!
//! Without `redis-server` and `redis-cli` these tests say "skipped" and pass, except
//! under `CI=true`, where a missing program fails the run.

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use crate::store::TempDir;

use std::ffi::OsStr;

use crate::cluster::{
    Node, skip_until, try_spawn_redis, wait_for_members, wait_until_clustered,
    wait_until_subscribed,
};
use crate::common::{TestClient, require};

/// Six `redis-server --cluster-enabled yes`, killed on drop.
struct RedisCluster {
    ports: Vec<u16>,
    children: Vec<Option<Child>>,
    _dir: TempDir,
}

/// A free port whose cluster bus port (port + 10000) is free too.
fn free_cluster_port(taken: &[u16]) -> u16 {
    loop {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let clash = |t: &u16| *t == port || *t + 10000 == port || port + 10000 == *t;
        let fits = port < 55000 && !taken.iter().any(clash);
        if fits && TcpListener::bind(("127.0.0.1", port + 10000)).is_ok() {
            return port;
        }
    }
}

impl RedisCluster {
    fn start() -> Option<RedisCluster> {
        require("redis-server")?;
        require("redis-cli")?;
        // The bus ports (port + 10000) are only found free, not held: a connection of
        // another test may take one before its node binds it, and then creating the
        // cluster fails. That is the machine, not the code under test: start afresh
        // on new ports.
        for attempt in 1..=3 {
            match RedisCluster::try_start() {
                Ok(cluster) => return Some(cluster),
                Err(why) => eprintln!("redis cluster, attempt {attempt}: {why}"),
            }
        }
        panic!("redis-cli --cluster create failed 3 times");
    }

    /// Six nodes on new ports made one cluster, or why not (the nodes are stopped).
    fn try_start() -> Result<RedisCluster, String> {
        let dir = TempDir::new("redis-cluster");
        let mut ports = Vec::new();
        for _ in 0..6 {
            ports.push(free_cluster_port(&ports));
        }
        let mut cluster = RedisCluster {
            children: ports.iter().map(|_| None).collect(),
            ports,
            _dir: dir,
        };
        for i in 0..6 {
            cluster.try_spawn(i)?;
        }
        let nodes: Vec<String> = cluster
            .ports
            .iter()
            .map(|p| format!("127.0.0.1:{p}"))
            .collect();
        let created = Command::new("redis-cli")
            .args(["--cluster", "create"])
            .args(&nodes)
            .args(["--cluster-replicas", "1", "--cluster-yes"])
            .stdin(Stdio::null())
            .output()
            .expect("redis-cli --cluster create");
        if !created.status.success() {
            let said = [created.stdout, created.stderr].concat();
            let said = String::from_utf8_lossy(&said);
            let lines: Vec<&str> = said.lines().collect();
            let tail = &lines[lines.len().saturating_sub(4)..];
            return Err(format!("redis-cli --cluster create failed: {tail:?}"));
        }
        cluster.wait_until_ok();
        cluster.wait_until_replicas_synced();
        Ok(cluster)
    }

    /// Starts node `i` on its port, or says why it did not start.
    fn try_spawn(&mut self, i: usize) -> Result<(), String> {
        let conf = self._dir.0.join(format!("nodes-{}.conf", self.ports[i]));
        let extra: Vec<&OsStr> = [
            "--cluster-enabled",
            "yes",
            "--cluster-node-timeout",
            "1000",
            // A replica takes over however old its copy, and copies at once.
            "--cluster-replica-validity-factor",
            "0",
            "--repl-diskless-sync-delay",
            "0",
            "--cluster-config-file",
        ]
        .iter()
        .map(OsStr::new)
        .chain([
            conf.as_os_str(),
            OsStr::new("--dir"),
            self._dir.0.as_os_str(),
        ])
        .collect();
        self.children[i] = Some(try_spawn_redis(self.ports[i], &extra)?);
        Ok(())
    }

    /// `redis-cli -p PORT ARGS...`'s output.
    fn cli(&self, port: u16, args: &[&str]) -> String {
        let out = Command::new("redis-cli")
            .args(["-p", &port.to_string()])
            .args(args)
            .output()
            .expect("redis-cli");
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    /// Waits until every live node says `cluster_state:ok`.
    fn wait_until_ok(&self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        for (i, &port) in self.ports.iter().enumerate() {
            if self.children[i].is_none() {
                continue;
            }
            while !self
                .cli(port, &["CLUSTER", "INFO"])
                .contains("cluster_state:ok")
            {
                assert!(Instant::now() < deadline, "the cluster is not ok on {port}");
                thread::sleep(Duration::from_millis(100));
            }
        }
    }

    /// Waits until every replica has its primary's data (else none may take over).
    fn wait_until_replicas_synced(&self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        for &port in &self.ports {
            loop {
                let info = self.cli(port, &["INFO", "replication"]);
                if info.contains("role:master") || info.contains("master_link_status:up") {
                    break;
                }
                assert!(
                    Instant::now() < deadline,
                    "replica {port} never synced: {info}"
                );
                thread::sleep(Duration::from_millis(100));
            }
        }
    }

    fn url(&self) -> String {
        let seeds: Vec<String> = self.ports[..3]
            .iter()
            .map(|p| format!("127.0.0.1:{p}"))
            .collect();
        format!("redis-cluster://{}", seeds.join(","))
    }

    /// The port of the primary serving `key`'s slot, asked of a live node.
    fn primary_of(&self, key: &str) -> u16 {
        let live = self.live_port();
        let slot: u16 = self
            .cli(live, &["CLUSTER", "KEYSLOT", key])
            .parse()
            .unwrap();
        self.primary_of_slot(slot)
    }

    fn primary_of_slot(&self, slot: u16) -> u16 {
        let nodes = self.cli(self.live_port(), &["CLUSTER", "NODES"]);
        for line in nodes.lines() {
            let fields: Vec<&str> = line.split(' ').collect();
            if !fields[2].contains("master") || fields[2].contains("fail") {
                continue;
            }
            let serves = fields[8..].iter().any(|range| match range.split_once('-') {
                Some((a, b)) => (a.parse::<u16>().unwrap()..=b.parse().unwrap()).contains(&slot),
                None => range.parse::<u16>().is_ok_and(|s| s == slot),
            });
            if serves {
                let addr = fields[1].split('@').next().unwrap();
                return addr.rsplit(':').next().unwrap().parse().unwrap();
            }
        }
        panic!("no primary serves slot {slot}: {nodes}");
    }

    fn live_port(&self) -> u16 {
        let i = self.children.iter().position(Option::is_some).unwrap();
        self.ports[i]
    }

    /// The node id of the node on `port`.
    fn id_of(&self, port: u16) -> String {
        self.cli(port, &["CLUSTER", "MYID"])
    }

    fn kill(&mut self, port: u16) {
        let i = self.ports.iter().position(|&p| p == port).unwrap();
        if let Some(mut child) = self.children[i].take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for RedisCluster {
    fn drop(&mut self) {
        for child in self.children.iter_mut().filter_map(Option::take) {
            let mut child = child;
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// The rooms a test talks in: enough of them that their slots fall on every primary.
const ROOMS: [&str; 6] = ["rust", "go", "zig", "ocaml", "nim", "elm"];

/// Nodes `a` and `b` on the cluster (each with a data dir), alice on `a` and bob
/// on `b` in every room.
fn two_nodes_in_rooms(
    cluster: &RedisCluster,
) -> (Node, Node, TestClient, TestClient, [TempDir; 2]) {
    let url = cluster.url();
    let dirs = [TempDir::new("node-a"), TempDir::new("node-b")];
    let start =
        |name, dir: &TempDir| Node::start_at(&url, name, &["--data-dir", &dir.0.to_string_lossy()]);
    let (a, b) = (start("a", &dirs[0]), start("b", &dirs[1]));
    let (mut alice, mut bob) = (a.client("alice"), b.client("bob"));
    wait_until_clustered(&mut alice, 1);
    wait_until_clustered(&mut bob, 1);
    for room in ROOMS {
        alice.join(room);
    }
    for room in ROOMS {
        wait_for_members(&mut bob, room, &["alice"]);
        bob.join(room);
    }
    wait_until_subscribed(&mut alice, ROOMS.len() + 1); // and the lobby
    wait_until_subscribed(&mut bob, ROOMS.len() + 1);
    (a, b, alice, bob, dirs)
}

#[test]
fn rooms_nicks_accounts_and_private_messages_work_on_a_redis_cluster() {
    let Some(cluster) = RedisCluster::start() else {
        return;
    };
    let primaries: std::collections::HashSet<u16> = (ROOMS.iter())
        .map(|room| cluster.primary_of(&format!("miochat:room:{{{room}}}")))
        .collect();
    assert!(
        primaries.len() >= 2,
        "the rooms should spread over primaries"
    );
    let (a, b, mut alice, mut bob, _dirs) = two_nodes_in_rooms(&cluster);
    for room in ROOMS {
        alice.send(&format!("/msg #{room} hello {room}"));
    }
    // Rooms on different primaries arrive in any order between them.
    let mut heard: Vec<String> = (0..ROOMS.len())
        .map(|_| skip_until(&mut bob, "MSG "))
        .collect();
    heard.sort();
    let mut want: Vec<String> = ROOMS
        .iter()
        .map(|r| format!("MSG {r} alice hello {r}"))
        .collect();
    want.sort();
    assert_eq!(heard, want);
    // A nick has one holder: its claim lives in the cluster.
    bob.send("/nick alice");
    assert!(skip_until(&mut bob, "nick").starts_with("ERR nick-taken alice"));
    // A private message crosses on the recipient node's (sharded) channel.
    alice.send("/msg bob psst");
    assert_eq!(skip_until(&mut alice, "OK sent"), "OK sent bob");
    assert_eq!(skip_until(&mut bob, "PRIV "), "PRIV alice psst");
    // An account made on one node logs in on the other (its keys are on one primary,
    // which the account book finds by following MOVED).
    let mut carol = b.client("carol");
    carol.send("/register wonderland");
    carol.expect("OK registered carol");
    carol.send("/quit");
    carol.discard_to_eof();
    let mut owner = TestClient::connect(a.addr);
    owner.send("/login carol wonderland");
    owner.expect("OK login carol");
    let name = cluster.cli(
        cluster.live_port(),
        &["-c", "HGET", "{miochat}:account:carol", "name"],
    );
    assert_eq!(name, "carol");
    // The last member here leaves and comes back at once: the late confirmation of
    // the unsubscription is this node's own, not a moved slot (no outage follows).
    bob.send("/leave go\n/join go");
    skip_until(&mut bob, "OK joined go ");
    wait_until_subscribed(&mut bob, ROOMS.len() + 1);
    alice.send("/msg #go back");
    // Live, or (the new subscription reads the room's log first) as history.
    loop {
        let line = bob.line();
        assert!(!line.contains("link down"), "an outage: {line}");
        if line.ends_with("MSG go alice back") {
            break;
        }
    }
    let stats = bob.stats();
    assert!(
        stats.contains(" backplane=up ") && stats.contains(" peers=1 "),
        "{stats}"
    );
}

#[test]
fn a_primary_failover_is_survived_and_nothing_is_lost_untold() {
    let Some(mut cluster) = RedisCluster::start() else {
        return;
    };
    let (_a, _b, mut alice, mut bob, _dirs) = two_nodes_in_rooms(&cluster);
    alice.send("/msg #rust before");
    assert_eq!(skip_until(&mut bob, "MSG rust"), "MSG rust alice before");
    let primary = cluster.primary_of("miochat:room:{rust}");
    cluster.kill(primary);
    for n in 0..20 {
        alice.send(&format!("/msg #rust during {n}"));
        thread::sleep(Duration::from_millis(100));
    }
    cluster.wait_until_ok();
    let promoted = cluster.primary_of("miochat:room:{rust}");
    assert_ne!(promoted, primary, "a replica should have taken over");
    alice.send("/msg #rust after");
    // Every line said meanwhile arrives in order, or is counted in a gap notice.
    let (mut next, mut lost) = (0, 0);
    loop {
        // Live (`MSG`), or read back from the room's log (`HIST`) after the outage.
        let line = bob.line();
        if line.ends_with(" alice after") {
            break;
        }
        if let Some(n) = line.strip_prefix("EVENT rust gap a ") {
            lost += n.parse::<u64>().unwrap();
        }
        let said = line.strip_prefix("MSG rust alice during ");
        let said = said.or_else(|| line.split_once(" alice during ").map(|(_, n)| n));
        if let Some(n) = said.and_then(|n| n.parse::<u64>().ok()) {
            assert!(n >= next, "out of order: {n} after {next}: {line}");
            next = n + 1;
        }
    }
    assert!(
        next + lost >= 20,
        "lines lost without a word: got up to {next}, told {lost}"
    );
}

#[test]
fn a_rooms_slot_moved_to_another_primary_is_followed() {
    let Some(cluster) = RedisCluster::start() else {
        return;
    };
    let (_a, _b, mut alice, mut bob, _dirs) = two_nodes_in_rooms(&cluster);
    alice.send("/msg #rust before");
    assert_eq!(skip_until(&mut bob, "MSG rust"), "MSG rust alice before");
    // Move #rust's slot (its log with it) to another primary, as a reshard does.
    let key = "miochat:log:{rust}";
    let slot = cluster.cli(cluster.live_port(), &["CLUSTER", "KEYSLOT", key]);
    let from = cluster.primary_of(key);
    let to = cluster.primary_of_slot(if slot.parse::<u16>().unwrap() < 8000 {
        16000
    } else {
        100
    });
    let (from_id, to_id) = (cluster.id_of(from), cluster.id_of(to));
    cluster.cli(to, &["CLUSTER", "SETSLOT", &slot, "IMPORTING", &from_id]);
    cluster.cli(from, &["CLUSTER", "SETSLOT", &slot, "MIGRATING", &to_id]);
    let moved = cluster.cli(
        from,
        &[
            "MIGRATE",
            "127.0.0.1",
            &to.to_string(),
            "",
            "0",
            "5000",
            "KEYS",
            key,
        ],
    );
    assert_eq!(moved, "OK");
    for port in cluster.ports.clone() {
        cluster.cli(port, &["CLUSTER", "SETSLOT", &slot, "NODE", &to_id]);
    }
    for n in 0..5 {
        alice.send(&format!("/msg #rust after {n}"));
    }
    for n in 0..5 {
        let line = skip_until(&mut bob, " alice after ");
        assert!(line.ends_with(&format!("after {n}")), "{line}");
    }
}
