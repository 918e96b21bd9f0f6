//! The backplane's connections to Redis, and which one each command goes to.
//!
//! A single Redis (`redis://`) is one pair of links: one for commands, one
//! subscribed. A Redis Cluster (`redis-cluster://HOST:PORT,...`) is one pair per
//! primary: the map of who serves which of the 16384 hash slots comes from
//! `CLUSTER SLOTS`, asked of any seed that answers, and every command goes to the
//! primary serving the slot of the key (or channel) it names. The key names do the
//! spreading: a room's log and channel share the slot of their `{#room}` hash tag,
//! so each room lives on one primary and its messages cross only that one, while
//! everything else (nick claims, leases, accounts, k-lines) is tagged `{miochat}`,
//! one slot, so the scripts that touch several of those keys stay in one slot as a
//! cluster requires.
//!
//! - **Redirections.** `MOVED SLOT ADDR` (the slot has moved for good) starts over
//!   with a new map: resending only the command redirected could let a later one,
//!   sent meanwhile, overtake it. `ASK SLOT ADDR` (a slot half way through a
//!   migration) sends it there once, after `ASKING`.
//! - **Failover.** A primary that is lost (closed, refused, or the cluster says
//!   `CLUSTERDOWN` or `TRYAGAIN` while a replica takes over) takes every link of the
//!   cluster down with it. The backplane then goes through the outage path it has
//!   for a single Redis (its own room events held, rooms' logs read back, gaps
//!   counted exactly) and the links come back through a new `CLUSTER SLOTS`. One
//!   lost primary costs every room a short outage, not only its own rooms: simpler
//!   than partial outages, and nothing is lost either way.
//!
//! Replies come back in order per connection, so each command link keeps the queue
//! of what its replies are for (the backplane's `Pending`, a type parameter here).

use std::collections::VecDeque;
use std::io;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use mio::{Registry, Token};
use redis_protocol::redis_keyslot;
use redis_protocol::resp2::types::OwnedFrame;

use super::link::{Link, encode_command};

/// Hash slots of a Redis Cluster.
const SLOTS: usize = 16384;
/// The first token of the links (the backplane's own tokens come before).
const FIRST_TOKEN: usize = 3;
/// Shortest and longest wait before asking a cluster for its map again.
const MIN_REDISCOVER: Duration = Duration::from_millis(100);
const MAX_REDISCOVER: Duration = Duration::from_secs(2);
/// Replies a command link's queue keeps room for after a burst.
const KEPT_PENDING: usize = 1024;
/// Links up this long are stable: the next loss starts the back-off from its least.
const STABLE: Duration = Duration::from_secs(5);

/// What a command link's reply is for.
#[derive(Debug)]
enum Sent<P> {
    /// `ASKING` before an `ASK`-redirected command, a `SCRIPT LOAD` on a link that
    /// has just come up, or a keepalive `PING`: nothing to do with its answer.
    Ignored,
    /// A command, numbered in the order sent (what lost links owed is handed back in
    /// that order); in a cluster its bytes are kept to send again after `ASK`.
    Command(P, Option<Vec<u8>>, u64),
}

impl<P> Sent<P> {
    /// What a lost link owed for this, with its number.
    fn owed(self) -> Option<(u64, P)> {
        match self {
            Sent::Command(p, _, order) => Some((order, p)),
            Sent::Ignored => None,
        }
    }
}

/// The two links to one Redis (a cluster's primary).
#[derive(Debug)]
struct Primary<P> {
    commands: Link,
    subscriber: Link,
    pending: VecDeque<Sent<P>>,
}

/// What one readiness event read: replies with what they answer, and pushed frames.
#[derive(Debug)]
pub struct Read<P> {
    /// Each reply and what it is for, in order.
    pub replies: Vec<(P, OwnedFrame)>,
    /// Frames pushed on a subscriber link (messages, confirmations), with the index
    /// of the primary whose link it was.
    pub pushed: Vec<(usize, OwnedFrame)>,
}

impl<P> Default for Read<P> {
    fn default() -> Self {
        Read {
            replies: Vec::new(),
            pushed: Vec::new(),
        }
    }
}

/// Every link of the backplane.
#[derive(Debug)]
pub struct Links<P> {
    /// Seeds of a cluster (a single Redis: its one address).
    seeds: Vec<SocketAddr>,
    cluster: bool,
    primaries: Vec<Primary<P>>,
    /// The primary serving each slot (a cluster only).
    slots: Vec<u16>,
    /// Asks `CLUSTER SLOTS` while the map is being (re)made (a cluster only).
    discovery: Option<Link>,
    next_seed: usize,
    rediscover: Duration,
    /// Since when every link has been up.
    up_since: Option<Instant>,
    /// What the links lost owed (with its number), until the backplane takes it.
    orphaned: Vec<(u64, P)>,
    /// Commands sent so far (their numbers).
    sent: u64,
    /// Bumped each time the links are remade: frames read before are stale.
    generation: u64,
    jitter: u64,
    /// Sent first on every command link as it comes up (`SCRIPT LOAD`s, encoded).
    loads: Vec<Vec<u8>>,
}

impl<P> Links<P> {
    /// The links to a single Redis at `seeds[0]` or, with `cluster`, to a cluster
    /// found through any of `seeds`; `loads` are sent first on every command link
    /// that comes up. Nothing connects until [`Self::maybe_connect`].
    pub fn new(seeds: Vec<SocketAddr>, cluster: bool, jitter: u64, loads: Vec<Vec<u8>>) -> Self {
        let mut links = Links {
            seeds,
            cluster,
            primaries: Vec::new(),
            slots: Vec::new(),
            discovery: None,
            next_seed: 0,
            rediscover: MIN_REDISCOVER,
            up_since: None,
            orphaned: Vec::new(),
            sent: 0,
            generation: 0,
            jitter,
            loads,
        };
        match (cluster, links.seeds.first().copied()) {
            (false, Some(addr)) => links.primaries.push(links.primary(0, addr)),
            _ => links.discovery = Some(Link::new(links.seeds[0], Token(FIRST_TOKEN), jitter)),
        }
        links
    }

    fn primary(&self, index: usize, addr: SocketAddr) -> Primary<P> {
        let token = FIRST_TOKEN + 1 + 2 * index;
        Primary {
            commands: Link::new(addr, Token(token), self.jitter ^ token as u64),
            subscriber: Link::new(addr, Token(token + 1), self.jitter.rotate_left(17)),
            pending: VecDeque::new(),
        }
    }

    /// True for a Redis Cluster: rooms then use sharded pub/sub.
    pub fn is_cluster(&self) -> bool {
        self.cluster
    }

    /// Every command link is up (and, in a cluster, the map is made).
    pub fn commands_up(&self) -> bool {
        self.discovery.is_none()
            && !self.primaries.is_empty()
            && self.primaries.iter().all(|p| p.commands.is_up())
    }

    /// Every subscriber link is up.
    pub fn subscribers_up(&self) -> bool {
        self.discovery.is_none()
            && !self.primaries.is_empty()
            && self.primaries.iter().all(|p| p.subscriber.is_up())
    }

    /// Bumped each time a cluster's links are remade.
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// How many primaries the links reach (1 for a single Redis).
    pub fn primaries(&self) -> usize {
        self.primaries.len()
    }

    /// Where the links point, for logs: the Redis, or the cluster's seeds.
    pub fn describe(&self) -> String {
        let seeds: Vec<String> = self.seeds.iter().map(|a| a.to_string()).collect();
        match self.cluster {
            true => format!("the Redis Cluster of {}", seeds.join(",")),
            false => format!("Redis at {}", seeds.join(",")),
        }
    }

    /// The primary serving `key`'s slot.
    fn route(&self, key: &[u8]) -> Option<usize> {
        match self.cluster {
            false => Some(0).filter(|_| !self.primaries.is_empty()),
            true => (self.slots.get(usize::from(redis_keyslot(key))))
                .map(|&i| usize::from(i))
                .filter(|&i| i < self.primaries.len()),
        }
    }

    /// Sends a command about `key` on its primary's command link; its reply will come
    /// back with `pending`, which is given back at once if that link is not up.
    pub fn command(&mut self, key: &[u8], args: &[&[u8]], pending: P) -> Result<(), P> {
        if !self.commands_up() {
            return Err(pending);
        }
        let (Some(index), Some(bytes)) = (self.route(key), encode_command(args)) else {
            return Err(pending);
        };
        let primary = &mut self.primaries[index];
        if !primary.commands.send_encoded(&bytes) {
            return Err(pending);
        }
        let kept = self.cluster.then_some(bytes);
        self.sent += 1;
        (primary.pending).push_back(Sent::Command(pending, kept, self.sent));
        Ok(())
    }

    /// Sends a command whose reply nobody waits for (a clean stop's last words).
    pub fn command_unanswered(&mut self, key: &[u8], args: &[&[u8]], registry: &Registry) {
        if let (Some(index), Some(bytes)) = (self.route(key), encode_command(args)) {
            let primary = &mut self.primaries[index];
            primary.commands.send_encoded(&bytes);
            primary.commands.flush(registry);
        }
    }

    /// Sends a (un)subscription about `channel` on its primary's subscriber link.
    pub fn subscription(&mut self, channel: &[u8], args: &[&[u8]]) -> bool {
        if !self.subscribers_up() {
            return false;
        }
        match self.route(channel) {
            Some(index) => self.primaries[index].subscriber.command(args),
            None => false,
        }
    }

    /// What the lost links owed, oldest first per link: the backplane answers or
    /// holds each again.
    pub fn take_pending(&mut self) -> Vec<P> {
        let mut owed = std::mem::take(&mut self.orphaned);
        for primary in &mut self.primaries {
            if !primary.commands.is_up() || self.discovery.is_some() {
                owed.extend(primary.pending.drain(..).filter_map(Sent::owed));
            }
        }
        owed.sort_by_key(|(order, _)| *order);
        owed.into_iter().map(|(_, p)| p).collect()
    }

    /// When the next connect attempt of any link is due.
    pub fn due(&self) -> Option<Instant> {
        let links = self
            .primaries
            .iter()
            .flat_map(|p| [&p.commands, &p.subscriber]);
        links.chain(&self.discovery).filter_map(Link::due).min()
    }

    /// Dials every link that is down and due.
    pub fn maybe_connect(&mut self, registry: &Registry, now: Instant) {
        if let Some(discovery) = self.discovery.as_mut() {
            // A seed that failed is tried again only after the others.
            if discovery.has_failed() && discovery.due().is_some_and(|due| due <= now) {
                self.next_seed = (self.next_seed + 1) % self.seeds.len();
                discovery.set_addr(self.seeds[self.next_seed]);
            }
            return discovery.maybe_connect(registry, now);
        }
        for primary in &mut self.primaries {
            primary.commands.maybe_connect(registry, now);
            primary.subscriber.maybe_connect(registry, now);
        }
    }

    /// Pings the links that have been quiet and drops those that stayed silent too
    /// long (see [`Link::keep_alive`]); a dropped link takes the outage path, as if
    /// its socket had closed. The discovery link only asks `CLUSTER SLOTS`: it is
    /// never pinged, only dropped if no answer comes.
    pub fn keep_alive(&mut self, registry: &Registry, now: Instant) {
        for primary in &mut self.primaries {
            if primary.commands.keep_alive(registry, now, true) {
                primary.pending.push_back(Sent::Ignored);
            }
            // On a subscribed link `PING` is answered with a pushed `pong`, ignored.
            primary.subscriber.keep_alive(registry, now, true);
        }
        if let Some(discovery) = self.discovery.as_mut() {
            discovery.keep_alive(registry, now, false);
        }
        self.fail_if_one_lost(registry);
    }

    /// Writes what the turn queued, subscriptions first.
    pub fn flush(&mut self, registry: &Registry) {
        for primary in &mut self.primaries {
            primary.subscriber.flush(registry);
        }
        for primary in &mut self.primaries {
            primary.commands.flush(registry);
        }
        if let Some(discovery) = self.discovery.as_mut() {
            discovery.flush(registry);
        }
        self.fail_if_one_lost(registry);
    }

    /// A readiness event on `token`: what it read goes to `read`. True if the read
    /// stopped at its budget (`READ_BUDGET` in link.rs): the caller handles `read`,
    /// then calls again with `writable` false, until false (edge-triggered: the
    /// socket must be read until it would block).
    pub fn on_event(
        &mut self,
        registry: &Registry,
        token: Token,
        writable: bool,
        scratch: &mut [u8],
        read: &mut Read<P>,
    ) -> bool {
        let Some(index) = token.0.checked_sub(FIRST_TOKEN) else {
            return false;
        };
        if index == 0 {
            self.on_discovery(registry, writable, scratch);
            return false;
        }
        let (primary, subscriber) = ((index - 1) / 2, (index - 1) % 2 == 1);
        let Some(link) = self.primaries.get_mut(primary) else {
            return false;
        };
        let mut frames = Vec::new();
        let event = match subscriber {
            true => {
                let event = (link.subscriber).on_event(registry, writable, scratch, &mut frames);
                self.on_pushed(registry, primary, frames, read);
                event
            }
            false => {
                let event = (link.commands).on_event(registry, writable, scratch, &mut frames);
                if event.came_up {
                    self.on_commands_up(primary);
                }
                self.on_replies(registry, primary, frames, read);
                event
            }
        };
        self.fail_if_one_lost(registry);
        if self.up_since.is_none() && self.commands_up() && self.subscribers_up() {
            self.up_since = Some(Instant::now());
        }
        event.more
    }

    /// A command link has just come up: the scripts are loaded before anything else
    /// is sent on it. (What its last connection owed was taken when it went down.)
    fn on_commands_up(&mut self, index: usize) {
        let primary = &mut self.primaries[index];
        for load in &self.loads {
            if primary.commands.send_encoded(load) {
                primary.pending.push_back(Sent::Ignored);
            }
        }
    }

    /// Frames pushed on a subscriber link. An error there is a subscription refused
    /// (`MOVED`, `CLUSTERDOWN`: the map is stale) or a broken one: on a cluster every
    /// link starts over, and what came after it is dropped with the old links.
    fn on_pushed(
        &mut self,
        registry: &Registry,
        primary: usize,
        frames: Vec<OwnedFrame>,
        read: &mut Read<P>,
    ) {
        for frame in frames {
            if let OwnedFrame::Error(e) = &frame {
                log::warn!("backplane: Redis refused a subscription: {e}");
                if self.cluster {
                    return self.fail_all(registry);
                }
                continue;
            }
            read.pushed.push((primary, frame));
        }
    }

    fn on_replies(
        &mut self,
        registry: &Registry,
        index: usize,
        frames: Vec<OwnedFrame>,
        read: &mut Read<P>,
    ) {
        for frame in frames {
            let Some(sent) = self
                .primaries
                .get_mut(index)
                .and_then(|p| p.pending.pop_front())
            else {
                continue;
            };
            let Sent::Command(pending, bytes, order) = sent else {
                continue;
            };
            let error = match &frame {
                OwnedFrame::Error(e) if e.starts_with("NOSCRIPT") => {
                    return self.scripts_lost(registry, index, e.clone(), (order, pending));
                }
                OwnedFrame::Error(e) if self.cluster => e.as_str(),
                _ => {
                    read.replies.push((pending, frame));
                    continue;
                }
            };
            match Redirect::parse(error) {
                Some(redirect) if redirect.ask => {
                    self.ask(registry, redirect, (pending, bytes, order), read, frame);
                }
                // A slot moved for good (commands sent after this one may have gone
                // to the old primary too: resending one could let another overtake
                // it), or the cluster is failing over: every link starts over.
                Some(_) => self.start_over_owing(registry, error, (order, pending)),
                None if error.starts_with("CLUSTERDOWN") || error.starts_with("TRYAGAIN") => {
                    self.start_over_owing(registry, error, (order, pending));
                }
                None => read.replies.push((pending, frame)),
            }
        }
        // After a burst (a roster of thousands published at once), the queue's room
        // is given back rather than held for the process's life.
        if let Some(primary) = self.primaries.get_mut(index)
            && primary.pending.len() <= KEPT_PENDING / 2
        {
            primary.pending.shrink_to(KEPT_PENDING);
        }
    }

    /// Redis no longer knows a script (someone ran `SCRIPT FLUSH`): the command is
    /// owed back, and the links start over as after an outage, loading the scripts
    /// again as they come up. Replies after it in this read go with the link, and
    /// what they were for is owed back in order too (a room event then published
    /// twice is dropped by its receivers as a copy).
    fn scripts_lost(&mut self, registry: &Registry, index: usize, error: String, owed: (u64, P)) {
        if self.cluster {
            return self.start_over_owing(registry, &error, owed);
        }
        log::warn!("backplane: Redis said: {error}; connecting again to load the scripts");
        self.orphaned.push(owed);
        let lost = io::Error::other(error);
        self.primaries[index].commands.fail(registry, &lost);
    }

    /// The cluster answered `error` to a command: it is owed back, and every link
    /// starts over with a new map.
    fn start_over_owing(&mut self, registry: &Registry, error: &str, owed: (u64, P)) {
        log::warn!("backplane: the cluster said: {error}; finding it again");
        self.orphaned.push(owed);
        self.fail_all(registry);
    }

    /// Sends an `ASK`-redirected command once to the primary named, after `ASKING`
    /// (a slot half way through a migration).
    fn ask(
        &mut self,
        registry: &Registry,
        redirect: Redirect,
        (pending, bytes, order): (P, Option<Vec<u8>>, u64),
        read: &mut Read<P>,
        frame: OwnedFrame,
    ) {
        let target = (self.primaries.iter()).position(|p| p.commands.addr() == redirect.addr);
        let (Some(index), Some(bytes)) = (target, bytes) else {
            let error = format!("ASK to {}, not in the map", redirect.addr);
            return self.start_over_owing(registry, &error, (order, pending));
        };
        let commands = &mut self.primaries[index].commands;
        if !(commands.command(&[b"ASKING"]) && commands.send_encoded(&bytes)) {
            return read.replies.push((pending, frame));
        }
        let queue = &mut self.primaries[index].pending;
        queue.push_back(Sent::Ignored);
        queue.push_back(Sent::Command(pending, Some(bytes), order));
    }

    /// In a cluster, one lost link takes every link down, and the map is made again.
    fn fail_if_one_lost(&mut self, registry: &Registry) {
        let lost = self.cluster
            && self.discovery.is_none()
            && (self.primaries.iter())
                .any(|p| p.commands.has_failed() || p.subscriber.has_failed());
        if lost {
            log::warn!("backplane: a link to the cluster was lost; finding the cluster again");
            self.fail_all(registry);
        }
    }

    /// Drops every link of a cluster, and makes its map again (a single Redis's
    /// links are left alone).
    pub fn start_over(&mut self, registry: &Registry) {
        self.fail_all(registry);
    }

    /// Drops every link of the cluster; a new `CLUSTER SLOTS` is asked after a
    /// capped back-off.
    fn fail_all(&mut self, registry: &Registry) {
        if !self.cluster {
            return;
        }
        for mut primary in std::mem::take(&mut self.primaries) {
            primary.commands.close(registry);
            primary.subscriber.close(registry);
            (self.orphaned).extend(primary.pending.into_iter().filter_map(Sent::owed));
        }
        self.generation += 1;
        if self
            .up_since
            .take()
            .is_some_and(|since| since.elapsed() >= STABLE)
        {
            self.rediscover = MIN_REDISCOVER;
        }
        self.slots.clear();
        self.next_seed = (self.next_seed + 1) % self.seeds.len();
        let mut discovery = Link::new(self.seeds[self.next_seed], Token(FIRST_TOKEN), self.jitter);
        discovery.delay(self.rediscover);
        self.discovery = Some(discovery);
        self.rediscover = (self.rediscover * 2).min(MAX_REDISCOVER);
    }

    /// The discovery link: asks `CLUSTER SLOTS` once connected, makes the map from
    /// the answer, then closes.
    fn on_discovery(&mut self, registry: &Registry, writable: bool, scratch: &mut [u8]) {
        let Some(discovery) = self.discovery.as_mut() else {
            return;
        };
        let mut frames = Vec::new();
        let mut event = discovery.on_event(registry, writable, scratch, &mut frames);
        if event.came_up {
            discovery.command(&[b"CLUSTER", b"SLOTS"]);
            discovery.flush(registry);
        }
        // The map is one reply; a very large one may take more than one read.
        while event.more && frames.is_empty() {
            event = discovery.on_event(registry, false, scratch, &mut frames);
        }
        let Some(frame) = frames.into_iter().next() else {
            return;
        };
        let seed = discovery.addr();
        match ClusterMap::parse(&frame, seed) {
            Ok(map) => self.use_map(registry, map),
            Err(why) => {
                log::warn!("backplane: the cluster at {seed} cannot serve yet: {why}");
                let gone = io::Error::other(why);
                discovery.fail(registry, &gone);
            }
        }
    }

    /// A complete map: one pair of links per primary, due to connect at once.
    fn use_map(&mut self, registry: &Registry, map: ClusterMap) {
        if let Some(mut discovery) = self.discovery.take() {
            discovery.close(registry);
        }
        log::info!(
            "backplane: the cluster has {} primaries: {}",
            map.primaries.len(),
            (map.primaries.iter().map(|a| a.to_string()))
                .collect::<Vec<_>>()
                .join(" ")
        );
        self.primaries = (map.primaries.iter().enumerate())
            .map(|(i, addr)| self.primary(i, *addr))
            .collect();
        self.slots = map.slots;
        self.maybe_connect(registry, Instant::now());
    }
}

/// A `MOVED` or `ASK` error.
#[derive(Debug, PartialEq, Eq)]
struct Redirect {
    ask: bool,
    slot: u16,
    addr: SocketAddr,
}

impl Redirect {
    /// `MOVED 3999 127.0.0.1:6381` or `ASK 3999 127.0.0.1:6381`.
    fn parse(error: &str) -> Option<Redirect> {
        let mut words = error.split(' ');
        let ask = match words.next()? {
            "MOVED" => false,
            "ASK" => true,
            _ => return None,
        };
        let slot = words.next()?.parse().ok()?;
        let addr = words.next()?.parse().ok()?;
        Some(Redirect { ask, slot, addr })
    }
}

/// Who serves which slot, from a `CLUSTER SLOTS` reply.
#[derive(Debug, PartialEq, Eq)]
pub struct ClusterMap {
    /// The primaries, in address order.
    pub primaries: Vec<SocketAddr>,
    /// The index in `primaries` of each slot's primary.
    pub slots: Vec<u16>,
}

impl ClusterMap {
    /// Reads `CLUSTER SLOTS` (`[[START, END, [IP, PORT, ID], replicas...], ...]`); an
    /// empty IP means the node asked (`seed`). Every slot must be served: a cluster
    /// in the middle of a failover is asked again.
    pub fn parse(frame: &OwnedFrame, seed: SocketAddr) -> Result<ClusterMap, String> {
        let OwnedFrame::Array(ranges) = frame else {
            return Err(format!("CLUSTER SLOTS said {frame:?}"));
        };
        let mut owners: Vec<(u16, u16, SocketAddr)> = Vec::new();
        for range in ranges {
            owners.push(slot_range(range, seed).ok_or("a slot range it cannot read")?);
        }
        let mut primaries: Vec<SocketAddr> = owners.iter().map(|o| o.2).collect();
        primaries.sort_unstable();
        primaries.dedup();
        let mut slots = vec![u16::MAX; SLOTS];
        for (start, end, addr) in owners {
            let index = primaries.binary_search(&addr).unwrap_or(0) as u16;
            for slot in slots
                .iter_mut()
                .take(usize::from(end) + 1)
                .skip(usize::from(start))
            {
                *slot = index;
            }
        }
        match slots.iter().filter(|&&s| s == u16::MAX).count() {
            0 => Ok(ClusterMap { primaries, slots }),
            n => Err(format!("{n} of {SLOTS} slots have no primary")),
        }
    }
}

/// One range of a `CLUSTER SLOTS` reply: its first and last slot and its primary.
fn slot_range(range: &OwnedFrame, seed: SocketAddr) -> Option<(u16, u16, SocketAddr)> {
    let OwnedFrame::Array(parts) = range else {
        return None;
    };
    let [
        OwnedFrame::Integer(start),
        OwnedFrame::Integer(end),
        OwnedFrame::Array(node),
        ..,
    ] = parts.as_slice()
    else {
        return None;
    };
    let [OwnedFrame::BulkString(ip), OwnedFrame::Integer(port), ..] = node.as_slice() else {
        return None;
    };
    let ip = match std::str::from_utf8(ip).ok()? {
        "" | "?" => seed.ip(),
        ip => ip.parse().ok()?,
    };
    let (start, end) = (u16::try_from(*start).ok()?, u16::try_from(*end).ok()?);
    let port = u16::try_from(*port).ok()?;
    (start <= end && usize::from(end) < SLOTS).then_some((start, end, SocketAddr::new(ip, port)))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn bulk(s: &str) -> OwnedFrame {
        OwnedFrame::BulkString(s.as_bytes().to_vec())
    }

    fn range(start: i64, end: i64, port: i64) -> OwnedFrame {
        let node = OwnedFrame::Array(vec![
            bulk("127.0.0.1"),
            OwnedFrame::Integer(port),
            bulk("id"),
        ]);
        OwnedFrame::Array(vec![
            OwnedFrame::Integer(start),
            OwnedFrame::Integer(end),
            node,
        ])
    }

    #[test]
    fn a_map_gives_every_slot_its_primary() {
        let seed: SocketAddr = "127.0.0.1:7000".parse().unwrap();
        let frame = OwnedFrame::Array(vec![
            range(0, 5460, 7000),
            range(5461, 10922, 7001),
            range(10923, 16383, 7002),
        ]);
        let map = ClusterMap::parse(&frame, seed).unwrap();
        assert_eq!(map.primaries.len(), 3);
        assert_eq!(map.slots[0], 0);
        assert_eq!(map.slots[5461], 1);
        assert_eq!(map.slots[16383], 2);
    }

    #[test]
    fn a_map_with_a_hole_is_asked_again() {
        let seed: SocketAddr = "127.0.0.1:7000".parse().unwrap();
        let frame = OwnedFrame::Array(vec![range(0, 5460, 7000), range(10923, 16383, 7002)]);
        let why = ClusterMap::parse(&frame, seed).unwrap_err();
        assert!(why.contains("5462 of 16384 slots"), "{why}");
    }

    #[test]
    fn redirections_are_read() {
        assert_eq!(
            Redirect::parse("MOVED 3999 127.0.0.1:6381"),
            Some(Redirect {
                ask: false,
                slot: 3999,
                addr: "127.0.0.1:6381".parse().unwrap()
            })
        );
        assert!(Redirect::parse("ASK 1 127.0.0.1:1").unwrap().ask);
        assert_eq!(Redirect::parse("ERR wrong number of arguments"), None);
    }

    #[test]
    fn a_room_keeps_its_log_and_channel_in_one_slot() {
        assert_eq!(
            redis_keyslot(b"miochat:log:{#a}b}"),
            redis_keyslot(b"miochat:room:{#a}b}")
        );
        assert_eq!(
            redis_keyslot(b"{miochat}:nick:x"),
            redis_keyslot(b"{miochat}:nicks:n")
        );
    }
}
