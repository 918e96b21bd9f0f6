//! The backplane: how several miochat nodes share rooms through Redis pub/sub.
//!
//! One thread with its own `mio::Poll` (no async runtime) holds two Redis
//! connections: one subscribed (a Redis connection in subscribe mode can do nothing
//! else) and one for commands (`PUBLISH`, the lease). Shards talk to it exactly as
//! they talk to each other: a channel plus a `Waker` ([`BackplaneHandle`]), batched
//! per turn; it answers them through their inboxes.
//!
//! - **Rooms span nodes.** A room event caused by a local user is published once per
//!   node, by the room's home shard after it has put it in the room's local order, on
//!   the room's channel `miochat:room:{NAME}`. A node subscribes to a room's channel only
//!   while it has local members there. A received event goes to this node's home shard
//!   of the room, which delivers it like a local one (rendered once per protocol).
//! - **Nothing missed, or told exactly.** Each room event is appended to the room's
//!   log in Redis as it is published (`room_log.rs`); a node that was cut off reads
//!   back what it missed. Each event carries the origin's epoch and a sequence number
//!   per room, so what could not be read back is counted exactly and told in-band
//!   (`EVENT ROOM gap NODE N`, an IRC NOTICE).
//! - **One holder per nick.** A chosen nick is claimed in Redis before the user is
//!   answered (`claims.rs`); the answer comes back through the shard's inbox.
//! - **Who is where.** Every change of a local user (nick, rooms, roles) is
//!   published on `miochat:cluster`; a node that (re)connects says hello and every
//!   other answers with its roster ([`super::cluster`] keeps the copy).
//! - **One room everywhere.** A room's state (modes, key, limit, bans, topic) goes to
//!   every node when a node founds the room and after each change made there, so a
//!   room's first member on any node is admitted against it; invitations go to the
//!   invited user's node.
//! - **Death.** Each node keeps a lease key `{miochat}:lease:NODE` (`--lease`, 10 s). A
//!   node not heard of for a lease whose key has expired is dead: its users' quits are
//!   announced to local members of shared rooms, and its nicks are free.
//! - **Outage.** While Redis is away, local chat goes on, members of shared rooms are
//!   told, and this node holds its room events to publish them when Redis is back.
//!   Links reconnect with capped, jittered back-off, resubscribe, read the rooms' logs
//!   back, say hello and re-send the roster and the last sequence numbers.

pub mod claims;
pub mod handle;
pub mod keys;
pub mod link;
pub mod links;
pub mod operators;
pub mod room_log;
pub mod scripts;
pub mod wire;

use std::collections::hash_map::Entry;
use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::mpsc::{Receiver, channel};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use mio::{Events, Poll, Token, Waker};
use redis_protocol::resp2::types::OwnedFrame;

use crate::protocol::modes::{ModeChange, ModeKind};
use crate::protocol::outgoing::Outgoing;
use crate::protocol::{Event, HistoryLine, Nick, RoomName};
use crate::server::conn_map::ConnMap;
use crate::server::room_home::said_line;
use crate::server::room_list::RoomList;

use super::config::BackplaneConfig;
use super::inbox::{Origin, RoomEvent, ShardMsg};
use super::rooms::home_shard;
use super::shared::Shared;
use super::token::ConnId;
pub use handle::{BackplaneHandle, BackplaneMsg, ClaimAnswer, ClaimFor, PrivateAnswer};
use links::{Links, Read};
use room_log::{Deferred, RemoteEvent, RoomLogs};
use scripts::Script;
use wire::Wire;

/// The token of the backplane's inbox `Waker` (the links' tokens follow it).
pub const TOKEN_INBOX: Token = Token(2);
use keys::{CLUSTER_CHANNEL, Keys};
/// Every script the backplane calls, loaded on each command link as it comes up.
const SCRIPTS: [&Script; 6] = [
    &claims::CLAIM,
    &claims::TAKE,
    &claims::RELEASE,
    &claims::RENEW,
    &room_log::LOG_AND_PUBLISH,
    &operators::SAVE_KLINE,
];

/// Room events of one room sent to Redis in one script call, at most: a run is
/// what the inbox holds in a row, so this only bounds one command's size.
const RUN_MAX: usize = 64;

/// How often a node probes the round trip through Redis and checks its peers.
const CHECK_EVERY: Duration = Duration::from_secs(1);

/// Why a private message to another node was not delivered (after `ERR
/// not-delivered NICK`).
const LINK_DOWN: &str = "the link to the other nodes is down";
const LINK_DROPPED: &str = "the link to the other nodes dropped before it was confirmed";
const NODE_GONE: &str = "the recipient's node is gone";
const REDIS_REFUSED: &str = "Redis refused it";

/// On a Redis Cluster, how long a node's last sequence numbers wait before they are
/// compared with what arrived (its room events come through other primaries).
const SEQS_GRACE: Duration = Duration::from_millis(500);

/// How long a nick claim waits for Redis before it is refused (`nick-unavailable`).
const CLAIM_WAIT: Duration = Duration::from_secs(3);

/// A reply the command link is waiting for, in order.
#[derive(Debug)]
enum Pending {
    /// Nothing to do with the reply (PUBLISH, SET).
    Ignore,
    /// `EXISTS` of a peer's lease.
    Lease(String),
    /// A nick claim a shard waits for.
    Claim {
        /// The connection.
        id: ConnId,
        /// The nick.
        nick: Nick,
        /// What the shard does with the answer.
        then: ClaimFor,
    },
    /// A local user's nick claimed again after Redis came back: 0 means another
    /// node took it meanwhile, and the local user gives way.
    Reclaim(ConnId),
    /// A private message whose sender waits to hear that it reached the node.
    Private(PrivateAnswer),
    /// `GET` of the claim of a nick that a local user holds and another node says
    /// one of its users holds too: the local user gives way unless it is the owner.
    Check(ConnId, String),
    /// `XRANGE` of a room's log after the last entry this node had.
    Recover(RoomName, u64),
    /// `SMEMBERS` of every account's name (accounts live in Redis in a cluster).
    Accounts,
    /// `HGETALL` of every registered room's record.
    Registered,
    /// Room events of one room, in the room's log and on its channel, kept until
    /// Redis answered.
    Logged(Vec<(RoomName, Wire)>),
    /// `HGETALL` of the cluster's k-lines.
    Klines,
}

/// A node's last sequence numbers, judged at the instant given: (when, node,
/// epoch, each room's number).
type LateSeqs = (Instant, String, u64, Vec<(RoomName, u64)>);

/// A local user as this node last published it: what the next change is compared
/// with (its nick, its rooms). Not the whole roster entry: with tens of thousands of
/// users a copy of each (realname, away message, roles) cost more than a connection
/// itself; a roster is rare, and its entries are read from the directory then.
#[derive(Debug)]
struct LocalUser {
    nick: Nick,
    claimed_ms: u64,
    /// One room held inline (`room_list.rs`): most users are in one.
    rooms: RoomList,
}

/// The backplane thread's state.
#[derive(Debug)]
pub struct Backplane {
    poll: Poll,
    inbox: Receiver<BackplaneMsg>,
    shared: Arc<Shared>,
    config: BackplaneConfig,
    /// The links to Redis (one pair per primary of a Redis Cluster).
    links: Links<Pending>,
    /// The names of keys and channels (hash-tagged on a cluster).
    keys: Keys,
    /// Channels each subscriber link confirmed (by primary, sharded or not).
    subscription_counts: HashMap<(usize, bool), u64>,
    /// This node's start time: a restarted node starts new sequences.
    epoch: u64,
    /// The next sequence number of this node's events, per room.
    seqs: HashMap<RoomName, u64>,
    /// The last (epoch, seq) heard from each origin in each room.
    heard: HashMap<(String, RoomName), (u64, u64)>,
    /// Local users as last published (who holds a nick here now is the
    /// directory's to say: a second table of it would cost each user ~40 bytes).
    local: ConnMap<LocalUser>,
    /// Local members per room: a room's channel is subscribed while this is > 0.
    local_rooms: HashMap<RoomName, usize>,
    subscribed: HashSet<RoomName>,
    /// Rooms whose channel Redis has confirmed subscribing to, until it confirms the
    /// unsubscription (or the link drops). Sequence numbers are counted only while
    /// listening: a message of an old subscription still in flight when
    /// `UNSUBSCRIBE` was sent must not leave a number behind that a later
    /// subscription would read as a gap.
    listening: HashSet<RoomName>,
    /// Unsubscriptions sent and not yet confirmed, per room: a confirmation beyond
    /// them is the server's own doing (a cluster moved the room's slot).
    unsubscribing: HashMap<RoomName, usize>,
    /// Claims whose answer was lost with the link: Redis may hold them for a
    /// connection that never got the nick, so they are released when it is back.
    to_release: Vec<(ConnId, Nick)>,
    /// The nicks Redis granted each local connection and that it has not given
    /// back: released when it closes, whether or not its roster entry says so (a
    /// connection can close before its entry was ever sent).
    claims: ConnMap<claims::Granted>,
    /// Other nodes' last sequence numbers waiting out [`SEQS_GRACE`] (a cluster only).
    late_seqs: VecDeque<LateSeqs>,
    /// Claims asked while Redis was away, until they are sent or time out.
    waiting: VecDeque<(Instant, ConnId, Nick, ClaimFor)>,
    /// Each room's shared log: last entries, reads back, held events.
    logs: RoomLogs,
    /// Redis confirmed the subscription to the cluster channel.
    cluster_heard: bool,
    /// Local users told that the link is down: they are told when it is back.
    told_down: Vec<ConnId>,
    /// When each peer was last heard of.
    last_heard: HashMap<String, Instant>,
    /// Since when both links have been up (peers are judged only after a lease).
    up_since: Option<Instant>,
    next_lease: Instant,
    next_check: Instant,
    /// Messages for shards, sent at the end of the turn.
    to_shards: Vec<Vec<ShardMsg>>,
    scratch: Vec<u8>,
    stopping: bool,
}

/// Milliseconds since the Unix epoch (claim times, probes, epochs).
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

impl Backplane {
    /// Creates the backplane's `Poll` and the handle shards will hold.
    pub fn prepare() -> std::io::Result<(Poll, Receiver<BackplaneMsg>, BackplaneHandle)> {
        let poll = Poll::new()?;
        let waker = Arc::new(Waker::new(poll.registry(), TOKEN_INBOX)?);
        let (tx, rx) = channel();
        Ok((poll, rx, BackplaneHandle::new(tx, waker)))
    }

    /// The backplane of this node.
    pub fn new(
        poll: Poll,
        inbox: Receiver<BackplaneMsg>,
        shared: Arc<Shared>,
        config: BackplaneConfig,
    ) -> Self {
        let epoch = now_ms();
        let shards = shared.shards.len();
        let now = Instant::now();
        Backplane {
            poll,
            inbox,
            links: Links::new(
                config.seeds.clone(),
                config.cluster,
                epoch,
                scripts::loads(&SCRIPTS),
            ),
            keys: Keys::new(config.cluster),
            subscription_counts: HashMap::new(),
            shared,
            config,
            epoch,
            seqs: HashMap::new(),
            heard: HashMap::new(),
            local: ConnMap::new(),
            local_rooms: HashMap::new(),
            subscribed: HashSet::new(),
            listening: HashSet::new(),
            unsubscribing: HashMap::new(),
            to_release: Vec::new(),
            logs: RoomLogs::default(),
            claims: ConnMap::new(),
            waiting: VecDeque::new(),
            late_seqs: VecDeque::new(),
            cluster_heard: false,
            told_down: Vec::new(),
            last_heard: HashMap::new(),
            up_since: None,
            next_lease: now,
            next_check: now + CHECK_EVERY,
            to_shards: (0..shards).map(|_| Vec::new()).collect(),
            scratch: vec![0; 64 * 1024],
            stopping: false,
        }
    }

    /// Runs until told to stop.
    pub fn run(mut self) {
        let mut events = Events::with_capacity(64);
        log::info!(
            "backplane: node {} using {}",
            self.config.node,
            self.links.describe()
        );
        while !self.stopping {
            let timeout = self.timeout();
            if let Err(e) = self.poll.poll(&mut events, Some(timeout))
                && e.kind() != std::io::ErrorKind::Interrupted
            {
                log::error!("backplane: poll failed: {e}");
                break;
            }
            for event in events.iter() {
                if event.token() != TOKEN_INBOX {
                    self.on_link_ready(event.token(), event.is_writable());
                }
            }
            self.drain_inbox();
            self.on_timers(Instant::now());
            self.end_turn();
        }
        self.say_goodbye();
    }

    fn timeout(&self) -> Duration {
        let next = [
            Some(self.next_lease),
            Some(self.next_check),
            self.waiting.front().map(|w| w.0),
            self.late_seqs.front().map(|w| w.0),
            self.links.due(),
        ]
        .into_iter()
        .flatten()
        .min()
        .unwrap_or_else(|| Instant::now() + CHECK_EVERY);
        next.saturating_duration_since(Instant::now())
    }

    fn end_turn(&mut self) {
        // Subscriptions first: a user's roster change (on the command link) should not
        // reach other nodes before this node listens to the user's new room.
        let was = (self.links.commands_up(), self.links.subscribers_up());
        self.links.flush(self.poll.registry());
        // A link can fail while writing too, where no event follows.
        self.after_links_changed(was);
        for (shard, batch) in self.to_shards.iter_mut().enumerate() {
            self.shared.shards[shard].send_batch(batch);
        }
    }

    /// A link is ready: what it read is handled a budget at a time, and read again
    /// until the socket is drained, so a burst (a join storm's thousands of claims
    /// and roster lines) is never held whole.
    fn on_link_ready(&mut self, token: Token, writable: bool) {
        let mut writable = writable;
        while self.on_link_read(token, writable) {
            writable = false;
        }
    }

    /// One budget's worth of a ready link: replies, then what changed, then what was
    /// pushed (a subscriber that just came up subscribes before it reads). True if
    /// there may be more to read.
    fn on_link_read(&mut self, token: Token, writable: bool) -> bool {
        let was = (self.links.commands_up(), self.links.subscribers_up());
        let mut read = Read::default();
        let registry = self.poll.registry();
        let more = (self.links).on_event(registry, token, writable, &mut self.scratch, &mut read);
        for (pending, frame) in read.replies {
            self.on_reply(pending, frame);
        }
        self.after_links_changed(was);
        let generation = self.links.generation();
        for (primary, frame) in read.pushed {
            if self.links.generation() != generation {
                break; // the links were remade: the rest belongs to the old ones
            }
            self.on_pushed(primary, frame);
        }
        more
    }

    /// The links went down or came up since `was` (commands, subscribers).
    fn after_links_changed(&mut self, was: (bool, bool)) {
        let (commands, subscribers) = (self.links.commands_up(), self.links.subscribers_up());
        if !commands {
            self.forget_pending();
        }
        if !subscribers {
            self.forget_subscriptions();
        }
        if !(commands && subscribers) {
            self.went_down();
        }
        if commands && !was.0 {
            self.commands_came_up();
        }
        if subscribers && !was.1 {
            self.subscribers_came_up();
        }
    }

    fn commands_came_up(&mut self) {
        self.claim_again();
        for (_, id, nick, then) in std::mem::take(&mut self.waiting) {
            self.claim(id, nick, then);
        }
        for room in self.logs.recovering() {
            self.ask_recovery(&room);
        }
        self.renew_lease();
        self.announce_if_ready();
    }

    fn subscribers_came_up(&mut self) {
        let me = self.keys.node_channel(&self.config.node);
        let verb = self.sharded(b"SUBSCRIBE");
        self.links.subscription(
            CLUSTER_CHANNEL.as_bytes(),
            &[b"SUBSCRIBE", CLUSTER_CHANNEL.as_bytes()],
        );
        self.links
            .subscription(me.as_bytes(), &[&verb, me.as_bytes()]);
        let rooms: Vec<RoomName> = self.local_rooms.keys().cloned().collect();
        for room in rooms {
            self.logs.start(&room);
            self.subscribe(&room);
        }
        self.announce_if_ready();
    }

    /// A pub/sub verb for rooms' and nodes' channels: sharded (`SPUBLISH`,
    /// `SSUBSCRIBE`) on a Redis Cluster, so a channel lives on its slot's primary
    /// alone; classic on a single Redis.
    fn sharded(&self, verb: &[u8]) -> Vec<u8> {
        match self.links.is_cluster() {
            true => [b"S", verb].concat(),
            false => verb.to_vec(),
        }
    }

    /// Once both links are up: hello (peers answer with their rosters) and our roster.
    /// Only once Redis confirmed the cluster channel's subscription: a hello sent
    /// before could be answered before this node listens, and two nodes coming back
    /// together would each miss the other's roster.
    fn announce_if_ready(&mut self) {
        let links = self.links.commands_up() && self.links.subscribers_up();
        let ready = links && self.cluster_heard;
        if !ready || self.up_since.is_some() {
            return;
        }
        self.up_since = Some(Instant::now());
        self.shared.stats.cluster.up.store(true, Relaxed);
        log::info!(
            "backplane: connected to {} ({} primaries)",
            self.links.describe(),
            self.links.primaries()
        );
        self.publish_held();
        let (accounts, rooms) = (self.keys.accounts(), self.keys.registered());
        let (accounts, rooms) = (accounts.as_bytes(), rooms.as_bytes());
        let _ = (self.links).command(accounts, &[b"SMEMBERS", accounts], Pending::Accounts);
        let _ = (self.links).command(rooms, &[b"HGETALL", rooms], Pending::Registered);
        self.ask_klines();
        let origin = self.config.node.clone();
        self.publish(CLUSTER_CHANNEL, &Wire::Hello { origin });
        self.publish_roster();
        if !self.told_down.is_empty() {
            self.tell_local_users(true);
        }
    }

    /// The subscriber link is gone, and every subscription with it (the sequence
    /// numbers heard stay: the next subscription tells what was missed meanwhile).
    fn forget_subscriptions(&mut self) {
        self.cluster_heard = false;
        self.subscription_counts.clear();
        self.subscribed.clear();
        self.listening.clear();
        self.unsubscribing.clear();
    }

    fn went_down(&mut self) {
        if self.up_since.take().is_some() {
            self.tell_local_users(false);
        }
        self.shared.stats.cluster.up.store(false, Relaxed);
    }

    /// Tells each local member of a room shared with other nodes, once, that the
    /// link to them dropped (`up` false) or is back (then those told it dropped too).
    fn tell_local_users(&mut self, up: bool) {
        let cluster = &self.shared.cluster;
        let rooms: Vec<RoomName> = (self.local_rooms.keys())
            .filter(|room| cluster.member_count(room) > 0)
            .cloned()
            .collect();
        let mut ids = self.shared.directory.member_ids(&rooms);
        if up {
            ids.append(&mut self.told_down);
            ids.sort_unstable();
            ids.dedup();
        } else {
            self.told_down.clone_from(&ids);
        }
        let outgoing = Outgoing::new(Event::Link(up));
        for id in ids {
            let outgoing = Arc::clone(&outgoing);
            self.to_shards[id.shard()].push(ShardMsg::Direct { to: id, outgoing });
        }
    }

    /// The command link dropped, and every reply it owed with it: shards waiting for
    /// a claim or for a private message's fate are told. A claim Redis may have
    /// granted without our hearing it is released once the link is back.
    fn forget_pending(&mut self) {
        let mut unlogged = Vec::new();
        for pending in self.links.take_pending() {
            match pending {
                Pending::Logged(events) => unlogged.extend(events),
                Pending::Claim { id, nick, then } => {
                    self.to_release.push((id, nick.clone()));
                    self.answer_claim(id, nick, then, ClaimAnswer::Unavailable);
                }
                Pending::Private(answer) => self.answer_private(answer, Err(LINK_DROPPED)),
                Pending::Recover(room, read) => {
                    self.logs.ask_again(&room, read);
                }
                Pending::Ignore
                | Pending::Lease(_)
                | Pending::Reclaim(_)
                | Pending::Check(..)
                | Pending::Accounts
                | Pending::Klines
                | Pending::Registered => {}
            }
        }
        // Older than anything held meanwhile: first in line again, in order.
        for (room, wire) in unlogged.into_iter().rev() {
            self.logs.unpop(room, wire);
        }
    }

    fn answer_claim(&mut self, id: ConnId, nick: Nick, then: ClaimFor, answer: ClaimAnswer) {
        let msg = ShardMsg::Claimed {
            id,
            nick,
            then,
            answer,
        };
        self.to_shards[id.shard()].push(msg);
    }

    fn answer_private(&mut self, answer: PrivateAnswer, delivered: Result<(), &'static str>) {
        let PrivateAnswer { sender, to, away } = answer;
        let msg = ShardMsg::PrivateSent {
            id: sender,
            to,
            away,
            delivered,
        };
        self.to_shards[sender.shard()].push(msg);
    }

    /// A nick claim for local connection `id` (see `claims.rs`); answered at once if
    /// Redis is away: nobody can tell then whether the nick is free.
    fn claim(&mut self, id: ConnId, nick: Nick, then: ClaimFor) {
        if !self.links.commands_up() {
            // Redis may be back in a moment (this node is starting, or a link
            // blinked): the claim waits a little before it is refused.
            let until = Instant::now() + CLAIM_WAIT;
            return self.waiting.push_back((until, id, nick, then));
        }
        if then == ClaimFor::Takeover {
            let _ = self.eval_claim(&claims::TAKE, id, &nick, Pending::Ignore);
            return;
        }
        let claim = Pending::Claim {
            id,
            nick: nick.clone(),
            then,
        };
        if self.eval_claim(&claims::CLAIM, id, &nick, claim).is_err() {
            self.answer_claim(id, nick, then, ClaimAnswer::Unavailable);
        }
    }

    /// Gives back `id`'s claim of `nick` (never a guest nick: those are not claimed).
    fn release(&mut self, id: ConnId, nick: Nick) {
        if let Some(held) = self.claims.get_mut(&id)
            && held.remove(&nick)
        {
            self.claims.remove(&id);
        }
        if claims::is_guest_of(&nick, &self.config.node) {
            return;
        }
        if (self.eval_claim(&claims::RELEASE, id, &nick, Pending::Ignore)).is_err() {
            self.to_release.push((id, nick)); // renewal must not keep it alive
        }
    }

    /// `EVALSHA script 2 NICKKEY CLAIMSET OWNER LEASE_MS` on the command link.
    fn eval_claim(
        &mut self,
        script: &Script,
        id: ConnId,
        nick: &Nick,
        pending: Pending,
    ) -> Result<(), Pending> {
        let (key, set) = (self.keys.nick(nick), self.keys.claim_set(&self.config.node));
        let owner = claims::owner(&self.config.node, self.epoch, id);
        let ttl = self.config.lease.as_millis().to_string();
        let args: [&[u8]; 7] = [
            b"EVALSHA",
            script.sha().as_bytes(),
            b"2",
            key.as_bytes(),
            set.as_bytes(),
            owner.as_bytes(),
            ttl.as_bytes(),
        ];
        self.links.command(key.as_bytes(), &args, pending)
    }

    /// The command link is back: claims whose fate was lost are released, and every
    /// local user's nick is claimed again (a restarted Redis may have lost them, and
    /// another node may have claimed one meanwhile: then ours gives way).
    fn claim_again(&mut self) {
        for (id, nick) in std::mem::take(&mut self.to_release) {
            let held = self
                .local
                .get(&id)
                .is_some_and(|e| e.nick.key() == nick.key());
            if !held {
                let _ = self.eval_claim(&claims::RELEASE, id, &nick, Pending::Ignore);
            }
        }
        let held: Vec<(ConnId, Nick)> = (self.local.iter())
            .filter(|(_, e)| !claims::is_guest_of(&e.nick, &self.config.node))
            .map(|(id, e)| (id, e.nick.clone()))
            .collect();
        for (id, nick) in held {
            let _ = self.eval_claim(&claims::CLAIM, id, &nick, Pending::Reclaim(id));
        }
    }

    /// Every local user and the state of every room with local members (the answer
    /// to a hello, and what this node says when it (re)connects).
    fn publish_roster(&mut self) {
        let directory = &self.shared.directory;
        let users = (self.local.iter())
            .filter_map(|(id, user)| {
                directory.roster_entry(id, user.claimed_ms, user.rooms.to_vec())
            })
            .collect();
        let origin = self.config.node.clone();
        self.publish(CLUSTER_CHANNEL, &Wire::Roster { origin, users });
        let rooms: Vec<RoomName> = self.local_rooms.keys().cloned().collect();
        let seqs = (rooms.iter())
            .filter_map(|room| Some((room.clone(), *self.seqs.get(room)?)))
            .collect();
        let (origin, epoch) = (self.config.node.clone(), self.epoch);
        self.publish(
            CLUSTER_CHANNEL,
            &Wire::Seqs {
                origin,
                epoch,
                seqs,
            },
        );
        self.publish_rooms(&rooms);
    }

    /// The state of `rooms` (those that still have members here), in one message.
    /// This node keeps it too: when its last member of a room leaves, the room's
    /// state as it was then (or as another node described it since) is what its
    /// next member here is admitted against.
    fn publish_rooms(&mut self, rooms: &[RoomName]) {
        let directory = &self.shared.directory;
        let rooms: Vec<_> = rooms
            .iter()
            .filter_map(|room| Some((room.clone(), directory.room_snapshot(room)?)))
            .collect();
        if !rooms.is_empty() {
            self.shared.cluster.describe_rooms(rooms.clone());
            let origin = self.config.node.clone();
            self.publish(CLUSTER_CHANNEL, &Wire::Rooms { origin, rooms });
        }
    }

    /// Room events of one room, in order, into the room's log and out on its
    /// channel, in one script call (`room_log.rs`); given back if Redis is away.
    /// They stay with their pending reply: if the link drops before Redis answered,
    /// they are held again (a receiver drops a copy it had already).
    fn log_and_publish(
        &mut self,
        events: Vec<(RoomName, Wire)>,
    ) -> Result<(), Vec<(RoomName, Wire)>> {
        let Some((room, _)) = events.first() else {
            return Ok(());
        };
        let (key, channel) = (self.keys.room_log(room), self.keys.room_channel(room));
        let seqs = self.keys.room_seqs(room);
        let max = self.config.log_max.to_string();
        let publish = self.sharded(b"PUBLISH");
        // Only this node's own events are logged here: the origin is this node.
        let (origin, epoch) = (self.config.node.clone(), self.epoch.to_string());
        let payloads: Vec<Vec<u8>> = (events.iter())
            .map(|(_, wire)| room_log::one_line(wire.encode()))
            .collect();
        let (numbers, ends) = room_log::positions(events.iter().map(|(_, wire)| wire));
        let sha = room_log::LOG_AND_PUBLISH.sha();
        let mut args: Vec<&[u8]> = vec![b"EVALSHA", sha.as_bytes(), b"2", key.as_bytes()];
        args.extend([seqs.as_bytes(), channel.as_bytes(), max.as_bytes()]);
        args.extend([publish.as_slice(), origin.as_bytes(), epoch.as_bytes()]);
        let mut start = 0;
        for (payload, &end) in payloads.iter().zip(&ends) {
            args.extend([payload.as_slice(), &numbers.as_bytes()[start..end]]);
            start = end;
        }
        let count = events.len() as u64;
        match (self.links).command(key.as_bytes(), &args, Pending::Logged(events)) {
            Ok(()) => {
                (self.shared.stats.cluster.published).fetch_add(count, Relaxed);
                Ok(())
            }
            Err(Pending::Logged(events)) => Err(events),
            Err(_) => unreachable!("the pending given back is the one given"),
        }
    }

    /// The events held while Redis was away, in order, now that it is back.
    fn publish_held(&mut self) {
        // In runs, as live events go: a long outage's backlog is what most needs it.
        while let Some(first) = self.logs.next_held() {
            let mut run = vec![first];
            while run.len() < RUN_MAX {
                match self.logs.next_held() {
                    Some(next) if next.0 == run[0].0 => run.push(next),
                    Some((room, wire)) => {
                        self.logs.unpop(room, wire);
                        break;
                    }
                    None => break,
                }
            }
            if let Err(events) = self.log_and_publish(run) {
                for (room, wire) in events.into_iter().rev() {
                    self.logs.unpop(room, wire);
                }
                return;
            }
        }
    }

    /// `PUBLISH channel payload` on the command link; false if Redis is away.
    fn publish(&mut self, channel: &str, wire: &Wire) -> bool {
        let args: [&[u8]; 3] = [b"PUBLISH", channel.as_bytes(), &wire.encode()];
        let sent = (self
            .links
            .command(channel.as_bytes(), &args, Pending::Ignore))
        .is_ok();
        if sent {
            bump(&self.shared.stats.cluster.published);
        }
        sent
    }

    /// Subscribes to `room`'s channel; true if it was not subscribed yet.
    fn subscribe(&mut self, room: &RoomName) -> bool {
        if !self.subscribed.insert(room.clone()) {
            return false;
        }
        let (channel, verb) = (self.keys.room_channel(room), self.sharded(b"SUBSCRIBE"));
        (self.links).subscription(channel.as_bytes(), &[&verb, channel.as_bytes()]);
        true
    }

    fn unsubscribe(&mut self, room: &RoomName) {
        if self.subscribed.remove(room) {
            let (channel, verb) = (self.keys.room_channel(room), self.sharded(b"UNSUBSCRIBE"));
            (self.links).subscription(channel.as_bytes(), &[&verb, channel.as_bytes()]);
            // Counted even if the links are down: then they forget it all anyway.
            *self.unsubscribing.entry(room.clone()).or_default() += 1;
        }
    }

    fn renew_lease(&mut self) {
        let key = self.keys.lease(&self.config.node);
        let ttl = self.config.lease.as_millis().to_string();
        let epoch = self.epoch.to_string();
        let args: [&[u8]; 5] = [
            b"SET",
            key.as_bytes(),
            epoch.as_bytes(),
            b"PX",
            ttl.as_bytes(),
        ];
        let _ = self.links.command(key.as_bytes(), &args, Pending::Ignore);
        let set = self.keys.claim_set(&self.config.node);
        let prefix = claims::owner_prefix(&self.config.node, self.epoch);
        let args: [&[u8]; 6] = [
            b"EVALSHA",
            claims::RENEW.sha().as_bytes(),
            b"1",
            set.as_bytes(),
            prefix.as_bytes(),
            ttl.as_bytes(),
        ];
        let _ = self.links.command(set.as_bytes(), &args, Pending::Ignore);
        self.next_lease = Instant::now() + self.config.lease / 3;
    }

    fn on_timers(&mut self, now: Instant) {
        self.links.keep_alive(self.poll.registry(), now);
        self.links.maybe_connect(self.poll.registry(), now);
        if now >= self.next_lease {
            self.renew_lease();
        }
        while self.late_seqs.front().is_some_and(|w| w.0 <= now) {
            if let Some((_, origin, epoch, seqs)) = self.late_seqs.pop_front() {
                self.on_seqs(&origin, epoch, seqs);
            }
        }
        while self.waiting.front().is_some_and(|w| w.0 <= now) {
            let Some((_, id, nick, then)) = self.waiting.pop_front() else {
                break;
            };
            if then != ClaimFor::Takeover {
                self.answer_claim(id, nick, then, ClaimAnswer::Unavailable);
            }
        }
        if now >= self.next_check {
            self.next_check = now + CHECK_EVERY;
            let origin = self.config.node.clone();
            self.publish(
                CLUSTER_CHANNEL,
                &Wire::Probe {
                    origin,
                    sent_ms: now_ms(),
                },
            );
            self.check_peers(now);
        }
    }

    /// Asks Redis about the lease of every peer not heard of for a whole lease.
    fn check_peers(&mut self, now: Instant) {
        let Some(up_since) = self.up_since else {
            return;
        };
        if now.duration_since(up_since) < self.config.lease {
            return; // we were away: give everyone a lease to be heard again
        }
        let silent: Vec<String> = self
            .last_heard
            .iter()
            .filter(|(_, heard)| now.duration_since(**heard) >= self.config.lease)
            .map(|(node, _)| node.clone())
            .collect();
        for node in silent {
            let key = self.keys.lease(&node);
            let args: [&[u8]; 2] = [b"EXISTS", key.as_bytes()];
            let _ = (self.links).command(key.as_bytes(), &args, Pending::Lease(node));
        }
    }

    fn on_reply(&mut self, pending: Pending, frame: OwnedFrame) {
        let number = match &frame {
            OwnedFrame::Integer(n) => Some(*n),
            OwnedFrame::Error(e) => {
                log::warn!("backplane: Redis said: {e}");
                None
            }
            _ => None,
        };
        match Some(pending) {
            Some(Pending::Lease(node)) if number == Some(0) => self.node_died(&node),
            Some(Pending::Claim { id, nick, then }) => {
                let answer = match number {
                    Some(1) => ClaimAnswer::Won,
                    Some(_) => ClaimAnswer::Taken,
                    None => ClaimAnswer::Unavailable,
                };
                if answer == ClaimAnswer::Won {
                    match self.claims.get_mut(&id) {
                        Some(held) => held.add(nick.clone()),
                        None => {
                            self.claims.insert(id, claims::Granted::One(nick.clone()));
                        }
                    }
                }
                self.answer_claim(id, nick, then, answer);
            }
            Some(Pending::Reclaim(id)) if number == Some(0) => {
                log::warn!("backplane: another node claimed a nick of ours while Redis was away");
                self.to_shards[id.shard()].push(ShardMsg::Rename { id });
            }
            Some(Pending::Recover(room, read)) if self.logs.is_current(&room, read) => {
                self.on_recovered(room, read, frame);
            }
            Some(Pending::Registered) => self.on_registered(frame),
            Some(Pending::Klines) => self.on_klines(frame),
            Some(Pending::Accounts) => {
                if let OwnedFrame::Array(names) = frame {
                    let names: Vec<Nick> = (names.into_iter())
                        .filter_map(|name| match name {
                            OwnedFrame::BulkString(name) => std::str::from_utf8(&name)
                                .ok()
                                .and_then(|n| Nick::parse(n).ok()),
                            _ => None,
                        })
                        .collect();
                    self.shared.registry.replace_accounts(&names);
                }
            }
            Some(Pending::Check(id, owner)) if !matches!(&frame, OwnedFrame::BulkString(held) if *held == owner.as_bytes()) =>
            {
                log::info!("backplane: a nick held here is claimed by another node");
                self.to_shards[id.shard()].push(ShardMsg::Rename { id });
            }
            Some(Pending::Private(answer)) => {
                let delivered = match number {
                    Some(n) if n > 0 => Ok(()),
                    Some(_) => Err(NODE_GONE),
                    None => Err(REDIS_REFUSED),
                };
                self.answer_private(answer, delivered);
            }
            // Refused (not a dropped link, whose events are held again): neither
            // logged nor published. Counted and logged; the other nodes see the gap.
            Some(Pending::Logged(events)) if matches!(frame, OwnedFrame::Error(_)) => {
                let lost = events.len() as u64;
                log::warn!("backplane: Redis refused {lost} room event(s): not published");
                (self.shared.stats.cluster.unpublished).fetch_add(lost, Relaxed);
            }
            _ => {}
        }
    }

    /// A peer's lease expired: its users quit every room this node shares with them.
    fn node_died(&mut self, node: &str) {
        if self.last_heard.remove(node).is_none() {
            return;
        }
        let users = self.shared.cluster.remove_node(node);
        // Its claims lapse with its lease anyway; dropping them now frees its users'
        // nicks for their next login elsewhere at once.
        let set = self.keys.claim_set(node);
        let prefix = format!("{node} ");
        let args: [&[u8]; 6] = [
            b"EVALSHA",
            claims::RENEW.sha().as_bytes(),
            b"1",
            set.as_bytes(),
            prefix.as_bytes(),
            b"0",
        ];
        let _ = self.links.command(set.as_bytes(), &args, Pending::Ignore);
        log::warn!(
            "backplane: node {node} is gone (lease expired); {} users quit",
            users.len()
        );
        let reason: Box<str> = format!("node {node} lost").into();
        for user in users {
            let once = once_of(node, &user.entry.nick, &reason);
            for room in user.entry.room_names() {
                let event = Event::Quit {
                    room: room.clone(),
                    nick: user.entry.nick.clone(),
                    reason: reason.clone(),
                };
                self.deliver_here(room.clone(), event, Some(once), None);
            }
        }
    }

    /// Hands an event from elsewhere to this node's home shard of its room. Joins,
    /// leaves, nick changes and quits are notices there as local ones are (skipped
    /// over `--announce-max`, joins and quits summed up); `once` numbers the copies
    /// of one user's quit or nick change (one per shared room) so an IRC reader gets
    /// one.
    fn deliver_here(
        &mut self,
        room: RoomName,
        event: Event,
        once: Option<u64>,
        stamp: Option<(u64, u64)>,
    ) {
        if !self.local_rooms.contains_key(&room) {
            return;
        }
        let home = home_shard(&room, self.to_shards.len());
        let notice = matches!(
            event,
            Event::Joined { .. }
                | Event::Left { .. }
                | Event::NickChanged { .. }
                | Event::Quit { .. }
                | Event::AwayChanged { .. }
        );
        // A line keeps the id and time its origin gave it.
        let outgoing = match (once, stamp) {
            (once, Some((msgid, at_ms))) if msgid != 0 => {
                Outgoing::from_node(event, once, msgid, at_ms)
            }
            (Some(once), _) => Outgoing::once(event, once),
            (None, _) => Outgoing::new(event),
        };
        let (except, origin) = (None, Origin::Remote);
        let event = RoomEvent {
            room,
            except,
            outgoing,
            notice,
            origin,
        };
        self.to_shards[home].push(ShardMsg::Sequence(event));
    }

    /// A pushed frame on primary `primary`'s subscriber link: `message CHANNEL
    /// PAYLOAD` (`smessage` for a sharded channel) or a confirmation.
    fn on_pushed(&mut self, primary: usize, frame: OwnedFrame) {
        let OwnedFrame::Array(parts) = frame else {
            return;
        };
        if let [
            OwnedFrame::BulkString(kind),
            OwnedFrame::BulkString(channel),
            OwnedFrame::Integer(count),
        ] = parts.as_slice()
        {
            return self.on_confirmed(primary, kind, channel, *count);
        }
        let [
            OwnedFrame::BulkString(kind),
            OwnedFrame::BulkString(channel),
            OwnedFrame::BulkString(payload),
        ] = parts.as_slice()
        else {
            return;
        };
        if kind != b"message" && kind != b"smessage" {
            return;
        }
        let decoded = match self.keys.channel_room(channel) {
            Some(room) => return self.on_room_payloads(room, payload),
            None => Wire::decode(payload, None),
        };
        match decoded {
            Ok(wire) => self.on_wire(wire),
            Err(bad) => log::warn!("backplane: ignoring a message: {}", bad.0),
        }
    }

    /// `subscribe CHANNEL COUNT` (or `ssubscribe`, `unsubscribe`, `sunsubscribe`):
    /// Redis confirms; COUNT is every channel of that kind the link now listens to
    /// (summed in `/stats`, so a test can wait for a subscription).
    fn on_confirmed(&mut self, primary: usize, kind: &[u8], channel: &[u8], count: i64) {
        let (sharded, kind) = match kind.strip_prefix(b"s") {
            Some(rest) if rest.ends_with(b"subscribe") => (true, rest),
            _ => (false, kind),
        };
        let subscribed = match kind {
            b"subscribe" => true,
            b"unsubscribe" => false,
            _ => return,
        };
        let count = u64::try_from(count).unwrap_or(0);
        self.subscription_counts.insert((primary, sharded), count);
        let total = self.subscription_counts.values().sum();
        self.shared
            .stats
            .cluster
            .subscriptions
            .store(total, Relaxed);
        let room = self.keys.channel_room(channel);
        let asked = match (&room, subscribed) {
            (Some(room), false) => self.unsubscribe_confirmed(room),
            (None, false) => false,
            (_, true) => true,
        };
        match room {
            Some(room) if asked => self.confirmed(room, subscribed),
            None if channel == CLUSTER_CHANNEL.as_bytes() && subscribed => {
                self.cluster_heard = true;
                self.announce_if_ready();
            }
            // A cluster moved the slot of a channel we still listen to (a room's,
            // or this node's own) and the server dropped it: every link starts over,
            // as after a failover.
            _ if !asked && self.links.is_cluster() => {
                let channel = String::from_utf8_lossy(channel);
                log::warn!("backplane: the cluster moved {channel}'s slot; finding it again");
                self.links.start_over(self.poll.registry());
                self.after_links_changed((true, true));
            }
            _ => {}
        }
    }

    /// An unsubscription from `room`'s channel was confirmed: true if this node had
    /// asked for it.
    fn unsubscribe_confirmed(&mut self, room: &RoomName) -> bool {
        match self.unsubscribing.get_mut(room) {
            Some(count) if *count > 1 => {
                *count -= 1;
                true
            }
            Some(_) => self.unsubscribing.remove(room).is_some(),
            None => false,
        }
    }

    /// Redis confirmed (un)subscribing to `room`'s channel. Nothing of the room's
    /// channel comes between an unsubscription's confirmation and the next
    /// subscription's, so a later subscription starts a new baseline, not a gap.
    fn confirmed(&mut self, room: RoomName, subscribed: bool) {
        if subscribed {
            self.listening.insert(room.clone());
            // Only a room alive elsewhere (or registered) has history to seed: the
            // log of a room that died everywhere belongs to its old incarnation.
            if self.shared.cluster.member_count(&room) > 0
                || self.shared.registry.is_registered(&room)
            {
                self.logs.start_seed(&room);
            }
            self.ask_recovery(&room);
        } else {
            self.listening.remove(&room);
            self.logs.forget(&room);
            self.heard.retain(|(_, heard_room), _| *heard_room != room);
        }
    }

    fn on_wire(&mut self, wire: Wire) {
        if let Some(origin) = origin_of(&wire).filter(|o| *o != self.config.node) {
            self.last_heard.insert(origin.to_string(), Instant::now());
            self.shared.cluster.saw(origin);
        }
        match wire {
            Wire::Probe { origin, sent_ms } if origin == self.config.node => {
                let lag = now_ms().saturating_sub(sent_ms);
                self.shared.stats.cluster.lag_ms.store(lag, Relaxed);
            }
            Wire::Room { origin, .. }
            | Wire::Hello { origin }
            | Wire::Seqs { origin, .. }
            | Wire::Account { origin, .. }
            | Wire::Registered { origin, .. }
            | Wire::Roster { origin, .. }
            | Wire::User { origin, .. }
            | Wire::Gone { origin, .. }
            | Wire::Probe { origin, .. }
            | Wire::Rooms { origin, .. }
            | Wire::Invite { origin, .. }
            | Wire::Wallops { origin, .. }
            | Wire::Wall { origin, .. }
            | Wire::Kill { origin, .. }
            | Wire::Kline { origin, .. }
                if origin == self.config.node => {}
            Wire::Room { .. } => log::warn!("backplane: a room event outside its room's channel"),
            Wire::Hello { .. } => self.publish_roster(),
            Wire::Seqs {
                origin,
                epoch,
                seqs,
            } if self.links.is_cluster() => {
                // A node's last numbers travel on the cluster channel, and its room
                // events on each room's, through other primaries: the numbers can
                // overtake the events they count. They are judged a moment later.
                let due = Instant::now() + SEQS_GRACE;
                self.late_seqs.push_back((due, origin, epoch, seqs));
            }
            Wire::Seqs {
                origin,
                epoch,
                seqs,
            } => self.on_seqs(&origin, epoch, seqs),
            Wire::Account { name, present, .. } => self.on_account(&name, present),
            Wire::Registered { room, record, .. } => match record {
                Some(record) => self.shared.registry.put_room(room, *record),
                None => self.shared.registry.drop_room(&room),
            },
            // Nicks are unique by their claims in Redis (`claims.rs`), not by what
            // the rosters say: a roster is taken as it is.
            Wire::Roster { origin, users } => {
                users.iter().for_each(|entry| self.check_claim(&entry.nick));
                self.shared.cluster.replace_node(&origin, &users);
            }
            Wire::User { origin, entry, was } => {
                self.check_claim(&entry.nick);
                self.shared.cluster.upsert(&origin, &entry, was.as_ref());
            }
            Wire::Gone { nick, .. } => self.shared.cluster.remove_user(&nick),
            Wire::Private {
                from,
                to,
                notice,
                text,
                ..
            } => self.on_private(from, &to, notice, text),
            Wire::Probe { .. } => {}
            Wire::Rooms { rooms, .. } => self.shared.cluster.describe_rooms(rooms),
            Wire::Invite { by, to, room, .. } => self.on_invite(by, &to, room),
            operator @ (Wire::Wallops { .. }
            | Wire::Wall { .. }
            | Wire::Kill { .. }
            | Wire::Kline { .. }) => self.on_operator(operator),
        }
    }

    /// An invitation from another node: recorded here (so `+i` lets the user in once)
    /// and told to the invited user.
    fn on_invite(&mut self, by: Nick, to: &Nick, room: RoomName) {
        let directory = &self.shared.directory;
        let Some((id, nick)) = directory.invite_from_elsewhere(&room, to) else {
            log::debug!("backplane: an invitation for {to}, who has gone");
            return;
        };
        let outgoing = Outgoing::new(Event::Invited { room, by, nick });
        self.to_shards[id.shard()].push(ShardMsg::Direct { to: id, outgoing });
    }

    /// Local users whose roles `changes` (a room's mode changes) may have changed:
    /// their entries go out again with their roles as they are now.
    fn roles_changed(&mut self, changes: &[ModeChange]) {
        for change in changes {
            let (ModeKind::Op(nick) | ModeKind::Voice(nick)) = &change.kind else {
                continue;
            };
            let Ok(nick) = Nick::parse(nick) else {
                continue;
            };
            if let Some(id) = self.shared.directory.lookup(nick.as_str())
                && let Some(entry) = self.local.get(&id)
            {
                let (claimed_ms, rooms) = (entry.claimed_ms, entry.rooms.to_vec());
                self.on_local_user(id, claimed_ms, rooms, None);
            }
        }
    }

    /// A message on `room`'s channel: one run of events, one `STREAMID WIRE` per line
    /// (see `room_log.rs`), each handled in order. A run is one node's, so when the
    /// first line is this node's own run come back, only its last line matters: it
    /// says how far this node has read the room's log.
    fn on_room_payloads(&mut self, room: RoomName, payloads: &[u8]) {
        if !self.listening.contains(&room) {
            return; // the tail of an old subscription (see `listening`)
        }
        let first = payloads.split(|&b| b == b'\n').next().unwrap_or_default();
        let first = room_log::split_published(first);
        match first.as_ref().and_then(|(_, bytes)| Wire::origin_of(bytes)) {
            Some(origin) if origin == self.config.node => {
                let last = payloads.rsplit(|&b| b == b'\n').next().unwrap_or_default();
                return self.on_room_payload(room, last);
            }
            Some(origin) => self.heard_from(origin),
            None => {}
        }
        for payload in payloads.split(|&b| b == b'\n') {
            self.on_room_payload(room.clone(), payload);
        }
    }

    /// One event on `room`'s channel, which this node listens to: `STREAMID WIRE`
    /// (see `room_log.rs`).
    fn on_room_payload(&mut self, room: RoomName, payload: &[u8]) {
        let Some((id, bytes)) = room_log::split_published(payload) else {
            return log::warn!("backplane: a room event without its log id");
        };
        let id = id.to_string();
        // Our own, back (Redis sends a channel's messages to every subscriber): only
        // where the log is, told before anything is decoded.
        if Wire::origin_of(bytes) == Some(self.config.node.as_str()) {
            self.logs.saw(&room, id);
            return;
        }
        let event = match RemoteEvent::decode(bytes, &room) {
            Ok(event) => event,
            Err(bad) => return log::warn!("backplane: ignoring a message on {room}: {}", bad.0),
        };
        let deferred = Deferred::Event(Box::new(event), id);
        if let Err(Deferred::Event(event, id)) = self.logs.defer(&room, deferred) {
            self.logs.read_up_to(&room, id);
            self.on_room_event(room, *event);
        }
    }

    /// Every registered room as Redis has it (read when this node (re)connects).
    fn on_registered(&mut self, frame: OwnedFrame) {
        let OwnedFrame::Array(fields) = frame else {
            return;
        };
        let mut rooms = Vec::new();
        let mut pairs = fields.into_iter();
        while let (Some(OwnedFrame::BulkString(room)), Some(OwnedFrame::BulkString(text))) =
            (pairs.next(), pairs.next())
        {
            let room = std::str::from_utf8(&room)
                .ok()
                .and_then(|r| RoomName::parse(r).ok());
            let text = String::from_utf8_lossy(&text);
            match (room, wire::decode_registered(&text)) {
                (Some(room), Ok(record)) => rooms.push((room, record)),
                _ => log::warn!("backplane: a registered room Redis holds cannot be read"),
            }
        }
        self.shared.registry.replace_rooms(rooms);
    }

    /// An account was created or dropped on another node: the registry follows.
    fn on_account(&mut self, name: &Nick, present: bool) {
        if present {
            self.shared.registry.add_account(name);
        } else {
            self.shared.registry.remove_account(name);
            self.shared.directory.forget_account(name);
        }
    }

    /// A peer was heard of (it is alive).
    fn heard_from(&mut self, origin: &str) {
        match self.last_heard.get_mut(origin) {
            Some(heard) => *heard = Instant::now(),
            None => drop(self.last_heard.insert(origin.to_string(), Instant::now())),
        }
        self.shared.cluster.saw(origin);
    }

    /// A live room event of another node, in its turn.
    fn on_room_event(&mut self, room: RoomName, event: RemoteEvent) {
        bump(&self.shared.stats.cluster.received);
        if self.take_in(&room, &event) {
            self.deliver_remote(room, event);
        }
    }

    /// Checks `event`'s sequence number against the last heard from its origin in
    /// `room`: false for one already had; a jump is a gap, reported.
    fn take_in(&mut self, room: &RoomName, event: &RemoteEvent) -> bool {
        let key = (event.origin.clone(), room.clone());
        let heard = match self.heard.entry(key) {
            Entry::Occupied(heard) => heard.into_mut(),
            Entry::Vacant(first) => {
                first.insert((event.epoch, event.seq));
                return true;
            }
        };
        let missed = match *heard {
            (epoch, last) if epoch == event.epoch && event.seq <= last => return false,
            (epoch, last) if epoch == event.epoch => event.seq - last - 1,
            _ => 0,
        };
        *heard = (event.epoch, event.seq);
        if missed > 0 {
            self.report_gap(&event.origin, room, missed);
        }
        true
    }

    /// A room event of another node: the room's state follows it, and its local
    /// members get it.
    fn deliver_remote(&mut self, room: RoomName, event: RemoteEvent) {
        let RemoteEvent {
            origin,
            msgid,
            at_ms,
            event,
            ..
        } = event;
        let directory = &self.shared.directory;
        match &event {
            Event::TopicChanged { topic, .. } => directory.set_topic(&room, topic),
            Event::Kicked { nick, .. } => directory.kick_from_elsewhere(&room, nick),
            Event::ModeChanged { by, changes, .. } => {
                directory.modes_from_elsewhere(&room, by.as_str(), changes);
                self.roles_changed(changes);
            }
            _ => {}
        }
        let once = match &event {
            Event::Quit { nick, reason, .. } => Some(once_of(&origin, nick, reason)),
            Event::NickChanged { old, new, .. } => Some(once_of(&origin, old, new.as_str())),
            Event::AwayChanged { nick, text, .. } => {
                Some(once_of(&origin, nick, text.as_deref().unwrap_or("back")))
            }
            _ => None,
        };
        self.deliver_here(room, event, once, Some((msgid, at_ms)));
    }

    /// Reads `room`'s log after the last entry this node has, if that is due (the
    /// subscription is confirmed, so what is published from now on arrives live).
    fn ask_recovery(&mut self, room: &RoomName) {
        if !self.listening.contains(room) {
            return;
        }
        let key = self.keys.room_log(room);
        let (after, count);
        let args: [&[u8]; 6] = match self.logs.due(room) {
            Some(room_log::Read::After(id)) => {
                (after, count) = (format!("({id}"), room_log::RECOVER_MAX.to_string());
                let range = [after.as_bytes(), b"+"];
                [
                    b"XRANGE",
                    key.as_bytes(),
                    range[0],
                    range[1],
                    b"COUNT",
                    count.as_bytes(),
                ]
            }
            Some(room_log::Read::Tail) => {
                count = room_log::SEED_MAX.to_string();
                [
                    b"XREVRANGE",
                    key.as_bytes(),
                    b"+",
                    b"-",
                    b"COUNT",
                    count.as_bytes(),
                ]
            }
            None => return,
        };
        if !self.links.commands_up() {
            return;
        }
        let read = self.logs.asked(room);
        let recover = Pending::Recover(room.clone(), read);
        if self.links.command(key.as_bytes(), &args, recover).is_err() {
            self.logs.ask_again(room, read);
        }
    }

    /// The entries of `room`'s log this node missed: lines go to its members as
    /// history, then how many; other events as they come. What arrived live
    /// meanwhile follows.
    fn on_recovered(&mut self, room: RoomName, read: u64, frame: OwnedFrame) {
        if self.logs.seeding(&room) {
            return self.on_seed(room, frame);
        }
        let entries = room_log::entries(frame);
        let more = entries.len() >= room_log::RECOVER_MAX;
        let mut lines = Vec::new();
        for (id, bytes) in entries {
            self.logs.read_up_to(&room, id);
            let Ok(event) = RemoteEvent::decode(&bytes, &room) else {
                continue;
            };
            if event.origin == self.config.node || !self.take_in(&room, &event) {
                continue;
            }
            let (msgid, at_ms) = (event.msgid, event.at_ms);
            match said_line(&event.event, at_ms, || msgid) {
                Some(line) => lines.push(line),
                None => self.deliver_remote(room.clone(), event),
            }
        }
        self.hand_recovered(&room, lines);
        if more {
            self.logs.ask_again(&room, read);
            return self.ask_recovery(&room);
        }
        self.after_read(room);
    }

    /// The tail of `room`'s log, newest first, on a node that had none of it: the
    /// numbers heard start there, and its lines seed the room's history here.
    fn on_seed(&mut self, room: RoomName, frame: OwnedFrame) {
        let mut entries = room_log::entries(frame);
        entries.reverse();
        let mut lines = Vec::new();
        for (id, bytes) in entries {
            self.logs.read_up_to(&room, id);
            let Ok(event) = RemoteEvent::decode(&bytes, &room) else {
                continue;
            };
            let (msgid, at_ms) = (event.msgid, event.at_ms);
            lines.extend(said_line(&event.event, at_ms, || msgid));
            if event.origin != self.config.node {
                let baseline = (event.epoch, event.seq);
                self.heard.insert((event.origin, room.clone()), baseline);
            }
        }
        if !lines.is_empty() {
            let home = home_shard(&room, self.to_shards.len());
            let room = room.clone();
            self.to_shards[home].push(ShardMsg::Seeded { room, lines });
        }
        self.after_read(room);
    }

    /// What arrived for `room` while its log was read, in arrival order.
    fn after_read(&mut self, room: RoomName) {
        for deferred in self.logs.finish(&room) {
            match deferred {
                Deferred::Event(event, id) => {
                    self.logs.read_up_to(&room, id);
                    self.on_room_event(room.clone(), *event);
                }
                Deferred::Seq { origin, epoch, seq } => {
                    self.on_seqs(&origin, epoch, vec![(room.clone(), seq)]);
                }
            }
        }
    }

    /// Recovered lines: to the room's home shard, which keeps them as history and
    /// hands them to every local member of `room`, followed by their count.
    fn hand_recovered(&mut self, room: &RoomName, lines: Vec<HistoryLine>) {
        if lines.is_empty() {
            return;
        }
        let count = lines.len() as u64;
        log::info!("backplane: {count} line(s) of {room} recovered from its log");
        self.shared
            .stats
            .cluster
            .recovered
            .fetch_add(count, Relaxed);
        let home = home_shard(room, self.to_shards.len());
        let room = room.clone();
        self.to_shards[home].push(ShardMsg::Recovered { room, lines });
    }

    /// `missed` lines of `origin` in `room` never arrived: counted, logged, told.
    fn report_gap(&mut self, origin: &str, room: &RoomName, missed: u64) {
        log::warn!("backplane: {missed} message(s) from {origin} in {room} were lost");
        self.shared.stats.cluster.gaps.fetch_add(missed, Relaxed);
        let gap = Event::Gap {
            room: room.clone(),
            node: origin.into(),
            missed,
        };
        self.deliver_here(room.clone(), gap, None, None);
    }

    /// Another node says one of its users holds `nick`: if a local user holds it too
    /// (an account's owner took it back there, or Redis lost the claims), Redis's
    /// claim decides who keeps it.
    fn check_claim(&mut self, nick: &Nick) {
        let Some(id) = self.shared.directory.lookup(nick.as_str()) else {
            return;
        };
        let key = self.keys.nick(nick);
        let owner = claims::owner(&self.config.node, self.epoch, id);
        let args: [&[u8]; 2] = [b"GET", key.as_bytes()];
        let _ = (self.links).command(key.as_bytes(), &args, Pending::Check(id, owner));
    }

    /// A node's last sequence numbers (after its roster, when it or we came back):
    /// lines of it this node had not heard are reported now, not when its users
    /// next speak.
    fn on_seqs(&mut self, origin: &str, epoch: u64, seqs: Vec<(RoomName, u64)>) {
        for (room, seq) in seqs {
            let origin = origin.to_string();
            let deferred = Deferred::Seq { origin, epoch, seq };
            let Err(Deferred::Seq { origin, .. }) = self.logs.defer(&room, deferred) else {
                continue; // handled after the room's log is read back
            };
            let key = (origin.clone(), room);
            let Some(&(heard_epoch, last)) = self.heard.get(&key) else {
                continue; // never heard of it here: no baseline to count from
            };
            if heard_epoch != epoch || seq <= last || !self.local_rooms.contains_key(&key.1) {
                continue;
            }
            let room = key.1.clone();
            self.heard.insert(key, (epoch, seq));
            self.report_gap(&origin, &room, seq - last);
        }
    }

    fn on_private(&mut self, from: Nick, to: &Nick, notice: bool, text: Box<str>) {
        match self.shared.directory.lookup(to.as_str()) {
            Some(id) => {
                let outgoing = Outgoing::new(Event::Private { from, text, notice });
                self.to_shards[id.shard()].push(ShardMsg::Direct { to: id, outgoing });
            }
            None => log::debug!("backplane: a private message for {to}, who has gone"),
        }
    }

    fn drain_inbox(&mut self) {
        let mut next = self.inbox.try_recv().ok();
        while let Some(msg) = next {
            next = self.on_message(msg);
        }
    }

    /// One inbox message; returns the next one. A room event starts a run, which
    /// reads ahead (`publish_run`): the message that ended it comes back here.
    fn on_message(&mut self, msg: BackplaneMsg) -> Option<BackplaneMsg> {
        match msg {
            BackplaneMsg::Room { room, outgoing } => return self.publish_run(room, outgoing),
            BackplaneMsg::User {
                id,
                claimed_ms,
                rooms,
                was,
            } => self.on_local_user(id, claimed_ms, rooms, was),
            BackplaneMsg::Gone { id } => self.on_local_gone(id),
            BackplaneMsg::Private { node, wire, answer } => {
                self.send_private(&node, &wire, answer);
            }
            BackplaneMsg::Claim { id, nick, then } => self.claim(id, nick, then),
            BackplaneMsg::Release { id, nick } => self.release(id, nick),
            BackplaneMsg::Broadcast(wire) => self.broadcast(&wire),
            BackplaneMsg::Kline { mask, kline } => self.save_kline(&mask, kline),
            BackplaneMsg::Shutdown => self.stopping = true,
        }
        self.inbox.try_recv().ok()
    }

    /// A private message or invitation on the recipient node's channel. The sender
    /// of a private message hears whether Redis handed it to that node (PUBLISH
    /// counts the receivers), so `OK sent` never covers a message that was lost.
    fn send_private(&mut self, node: &str, wire: &Wire, answer: Option<PrivateAnswer>) {
        let (channel, publish) = (self.keys.node_channel(node), self.sharded(b"PUBLISH"));
        let args: [&[u8]; 3] = [&publish, channel.as_bytes(), &wire.encode()];
        let pending = answer.map_or(Pending::Ignore, Pending::Private);
        match self.links.command(channel.as_bytes(), &args, pending) {
            Ok(()) => bump(&self.shared.stats.cluster.published),
            Err(Pending::Private(answer)) => self.answer_private(answer, Err(LINK_DOWN)),
            Err(_) => {}
        }
    }

    /// Room events caused here, in a row in one room (see [`Self::publish_run`]), on
    /// the room's channel. A change of the room's modes or topic (only ever the last
    /// of a run) also goes to every node as the room's new state, and a change of a
    /// local member's roles as that member's entry.
    fn publish_room(&mut self, room: RoomName, run: &[Arc<Outgoing>]) {
        let (origin, epoch) = (&self.config.node, self.epoch);
        let seq = self.seqs.entry(room.clone()).or_insert(0);
        let events: Vec<(RoomName, Wire)> = (run.iter())
            .map(|outgoing| {
                *seq += 1;
                let wire = Wire::Room {
                    origin: origin.clone(),
                    epoch,
                    seq: *seq,
                    msgid: outgoing.msgid().unwrap_or(0),
                    at_ms: outgoing.at_ms,
                    event: outgoing.event.clone(),
                };
                (room.clone(), wire)
            })
            .collect();
        // Behind events already held, in the room's order.
        let unsent = match self.logs.holding() {
            true => Err(events),
            false => self.log_and_publish(events),
        };
        for (room, wire) in unsent.err().unwrap_or_default() {
            if !self.logs.hold(room, wire) {
                bump(&self.shared.stats.cluster.unpublished);
            }
        }
        let Some(last) = run.last() else {
            return;
        };
        match &last.event {
            Event::ModeChanged { changes, .. } => {
                let is_role =
                    |c: &ModeChange| matches!(c.kind, ModeKind::Op(_) | ModeKind::Voice(_));
                if !changes.iter().all(is_role) {
                    self.publish_rooms(&[room]);
                }
                self.roles_changed(changes);
            }
            Event::TopicChanged { .. } => self.publish_rooms(&[room]),
            _ => {}
        }
    }

    /// The room event `first` and those right behind it in the inbox for the same
    /// room, up to [`RUN_MAX`], published in one script call: under load, Redis
    /// runs one script per run rather than per line. A run ends after a mode or
    /// topic change (what follows it goes out after the room's new state) and at
    /// any other message, which is returned to be handled next, in order.
    fn publish_run(&mut self, room: RoomName, first: Arc<Outgoing>) -> Option<BackplaneMsg> {
        let ends_run = |o: &Outgoing| {
            matches!(
                o.event,
                Event::ModeChanged { .. } | Event::TopicChanged { .. }
            )
        };
        let mut run = vec![first];
        let next = loop {
            if run.len() >= RUN_MAX || run.last().is_some_and(|o| ends_run(o)) {
                break self.inbox.try_recv().ok();
            }
            match self.inbox.try_recv() {
                Ok(BackplaneMsg::Room {
                    room: same,
                    outgoing,
                }) if same == room => {
                    run.push(outgoing);
                }
                other => break other.ok(),
            }
        };
        self.publish_room(room, &run);
        next
    }

    /// A local user as it is now (its roles read from the directory), told to every
    /// node.
    fn on_local_user(
        &mut self,
        id: ConnId,
        claimed_ms: u64,
        rooms: Vec<RoomName>,
        was: Option<Nick>,
    ) {
        let directory = &self.shared.directory;
        let Some(entry) = directory.roster_entry(id, claimed_ms, rooms) else {
            return; // closed meanwhile: its `Gone` follows
        };
        let old_rooms = self
            .local
            .get(&id)
            .map(|e| e.rooms.to_vec())
            .unwrap_or_default();
        if let Some(old) = self.local.get(&id)
            && old.nick.key() != entry.nick.key()
        {
            let old = old.nick.clone();
            self.release(id, old);
        }
        let rooms = RoomList::from(entry.room_names().cloned().collect::<Vec<_>>());
        let joined: Vec<RoomName> = (rooms.iter())
            .filter(|r| !old_rooms.contains(r))
            .cloned()
            .collect();
        let left = old_rooms.into_iter().filter(|r| !rooms.contains(r));
        let left: Vec<RoomName> = left.collect();
        let user = LocalUser {
            nick: entry.nick.clone(),
            claimed_ms: entry.claimed_ms,
            rooms,
        };
        self.local.insert(id, user);
        let origin = self.config.node.clone();
        self.publish(CLUSTER_CHANNEL, &Wire::User { origin, entry, was });
        // After the entry: a room's state (published for a room founded here) reaches
        // the other nodes after its member.
        for room in &joined {
            self.count_room(room, 1);
        }
        for room in &left {
            self.count_room(room, -1);
        }
    }

    fn on_local_gone(&mut self, id: ConnId) {
        let granted = self.claims.remove(&id).map(claims::Granted::into_vec);
        for nick in granted.unwrap_or_default() {
            self.release(id, nick);
        }
        let Some(entry) = self.local.remove(&id) else {
            return;
        };
        self.release(id, entry.nick.clone());
        for room in &entry.rooms {
            self.count_room(room, -1);
        }
        let origin = self.config.node.clone();
        self.publish(
            CLUSTER_CHANNEL,
            &Wire::Gone {
                origin,
                nick: entry.nick,
            },
        );
    }

    fn count_room(&mut self, room: &RoomName, delta: isize) {
        let count = self.local_rooms.entry(room.clone()).or_insert(0);
        *count = count.saturating_add_signed(delta);
        if *count == 0 {
            self.local_rooms.remove(room);
            self.unsubscribe(room);
            self.shared.cluster.set_local(room, false);
            return;
        }
        let first = delta > 0 && *count == 1;
        if first {
            self.shared.cluster.set_local(room, true);
        }
        if delta > 0 && self.links.subscribers_up() {
            self.subscribe(room);
        }
        // A room founded here: every node learns its state, so that its first member
        // on any node is admitted against it.
        if first && self.shared.cluster.member_count(room) == 0 {
            self.publish_rooms(std::slice::from_ref(room));
        }
    }

    /// A clean stop: our users leave the other nodes' views, and the lease goes.
    fn say_goodbye(&mut self) {
        let ids: Vec<ConnId> = self.local.keys().collect();
        for id in ids {
            self.on_local_gone(id);
        }
        let key = self.keys.lease(&self.config.node);
        let registry = self.poll.registry();
        (self.links).command_unanswered(key.as_bytes(), &[b"DEL", key.as_bytes()], registry);
        self.links.flush(registry);
    }
}

fn origin_of(wire: &Wire) -> Option<&str> {
    match wire {
        Wire::Room { origin, .. }
        | Wire::Hello { origin }
        | Wire::Seqs { origin, .. }
        | Wire::Account { origin, .. }
        | Wire::Registered { origin, .. }
        | Wire::Roster { origin, .. }
        | Wire::User { origin, .. }
        | Wire::Gone { origin, .. }
        | Wire::Private { origin, .. }
        | Wire::Probe { origin, .. }
        | Wire::Rooms { origin, .. }
        | Wire::Invite { origin, .. }
        | Wire::Wallops { origin, .. }
        | Wire::Wall { origin, .. }
        | Wire::Kill { origin, .. }
        | Wire::Kline { origin, .. } => Some(origin),
    }
}

fn bump(counter: &std::sync::atomic::AtomicU64) {
    counter.fetch_add(1, Relaxed);
}

/// The number shared by the copies (one per room) of one remote user's quit or nick
/// change: the same node, nick and reason or new nick make the same number. Its top
/// bit is set, so it never meets a local one. Two such changes within the seconds an
/// IRC reader remembers would count as one; a user who quits, comes back and quits
/// again with the same words that fast is the price of needing no new wire field.
fn once_of(node: &str, nick: &Nick, what: &str) -> u64 {
    use std::hash::{DefaultHasher, Hash, Hasher};
    let mut hasher = DefaultHasher::new();
    (node, nick.as_str(), what).hash(&mut hasher);
    hasher.finish() | (1 << 63)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use std::net::SocketAddr;

    use super::*;
    use crate::server::config::ServerConfig;
    use crate::server::inbox::ShardHandle;
    use crate::server::token::INBOX_WAKER;

    /// A backplane of node `b` with one shard, never connected: frames are fed to it
    /// as if its subscriber link had read them.
    fn backplane() -> Backplane {
        let shard_poll = Poll::new().unwrap();
        let waker = Waker::new(shard_poll.registry(), INBOX_WAKER).unwrap();
        let (handle, _inbox) = ShardHandle::new(Arc::new(waker));
        let config = ServerConfig::new(SocketAddr::from(([127, 0, 0, 1], 0)));
        let shared = Arc::new(Shared::new(config, vec![handle], None));
        let (poll, inbox, _handle) = Backplane::prepare().unwrap();
        let config = BackplaneConfig {
            redis: SocketAddr::from(([127, 0, 0, 1], 1)),
            seeds: vec![SocketAddr::from(([127, 0, 0, 1], 1))],
            cluster: false,
            node: "b".into(),
            lease: Duration::from_secs(10),
            log_max: 100,
        };
        Backplane::new(poll, inbox, shared, config)
    }

    fn bulk(bytes: &[u8]) -> OwnedFrame {
        OwnedFrame::BulkString(bytes.to_vec())
    }

    /// Redis's confirmation of (un)subscribing to `room`'s channel.
    fn confirm(backplane: &mut Backplane, kind: &[u8], room: &RoomName) {
        let channel = Keys::new(false).room_channel(room);
        let frame = [bulk(kind), bulk(channel.as_bytes()), OwnedFrame::Integer(1)];
        backplane.on_pushed(0, OwnedFrame::Array(frame.to_vec()));
        // The seed read of the room's log (no Redis here): an empty log.
        if backplane.logs.seeding(room) {
            let read = backplane.logs.asked(room);
            backplane.on_recovered(room.clone(), read, OwnedFrame::Array(Vec::new()));
        }
    }

    /// Line number `seq` of node `a` in `room`, as Redis pushes it.
    fn line(backplane: &mut Backplane, room: &RoomName, seq: u64) {
        let event = Event::Message {
            room: room.clone(),
            from: Nick::parse("al").unwrap(),
            text: "hi".into(),
        };
        let origin = "a".to_string();
        let wire = Wire::Room {
            origin,
            epoch: 1,
            seq,
            msgid: seq << 12,
            at_ms: seq,
            event,
        };
        let channel = Keys::new(false).room_channel(room);
        let mut payload = format!("{seq}-0 ").into_bytes();
        payload.extend_from_slice(&wire.encode());
        let frame = [bulk(b"message"), bulk(channel.as_bytes()), bulk(&payload)];
        backplane.on_pushed(0, OwnedFrame::Array(frame.to_vec()));
    }

    fn gaps(backplane: &Backplane) -> u64 {
        backplane.shared.stats.cluster.gaps.load(Relaxed)
    }

    #[test]
    fn a_missing_number_is_a_gap() {
        let (mut backplane, room) = (backplane(), RoomName::parse("rust").unwrap());
        backplane.local_rooms.insert(room.clone(), 1);
        confirm(&mut backplane, b"subscribe", &room);
        line(&mut backplane, &room, 1);
        line(&mut backplane, &room, 2);
        line(&mut backplane, &room, 5);
        assert_eq!(gaps(&backplane), 2);
    }

    #[test]
    fn a_line_of_an_old_subscription_does_not_make_the_next_one_a_gap() {
        let (mut backplane, room) = (backplane(), RoomName::parse("rust").unwrap());
        backplane.local_rooms.insert(room.clone(), 1);
        backplane.subscribed.insert(room.clone());
        confirm(&mut backplane, b"subscribe", &room);
        line(&mut backplane, &room, 1);
        // The room's last member here leaves: UNSUBSCRIBE goes out, but line 2 was
        // already on its way, and lines 3 and 4 go to nobody here.
        backplane.count_room(&room, -1);
        line(&mut backplane, &room, 2);
        confirm(&mut backplane, b"unsubscribe", &room);
        // A new member: subscribed again, from line 5 on.
        backplane.local_rooms.insert(room.clone(), 1);
        confirm(&mut backplane, b"subscribe", &room);
        line(&mut backplane, &room, 5);
        line(&mut backplane, &room, 6);
        assert_eq!(gaps(&backplane), 0);
    }
}
