//! The names of everything the cluster keeps in Redis: keys and channels.
//!
//! On a single Redis (`redis://`) the names are plain (`miochat:nick:alice`,
//! `miochat:log:rust`). On a Redis Cluster (`redis-cluster://`) they carry hash tags,
//! the part in braces that alone decides a key's slot: a room's log and channel share
//! `{ROOM}` (the script that appends and publishes must stay in one slot), and claims,
//! leases, accounts and k-lines share `{miochat}` (the scripts that touch several of
//! them, and keys they were not given, must too). The two kinds never meet: a single
//! Redis keeps its old names, so upgrading a node loses nothing it kept there.

use crate::protocol::{Nick, RoomName};

/// The channel every node subscribes to for rosters, hellos and probes (classic
/// pub/sub on both kinds: a cluster copies it to every node).
pub const CLUSTER_CHANNEL: &str = "miochat:cluster";

/// How names are made: plain, or hash-tagged for a Redis Cluster.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Keys {
    cluster: bool,
}

impl Keys {
    /// Names for a Redis Cluster (`true`) or a single Redis.
    pub fn new(cluster: bool) -> Self {
        Keys { cluster }
    }

    /// A name among the cluster's shared records (one slot on a cluster).
    fn shared(self, rest: &str) -> String {
        match self.cluster {
            true => format!("{{miochat}}:{rest}"),
            false => format!("miochat:{rest}"),
        }
    }

    /// `prefix` and `name`, with `name` as the hash tag on a cluster.
    fn tagged(self, prefix: &str, name: &str) -> String {
        match self.cluster {
            true => format!("{prefix}{{{name}}}"),
            false => format!("{prefix}{name}"),
        }
    }

    /// The claim of `nick` (case-folded: `Alice` and `alice` are one nick).
    pub fn nick(self, nick: &Nick) -> String {
        self.shared(&format!("nick:{}", nick.key().as_str()))
    }

    /// The set of the claims `node` holds.
    pub fn claim_set(self, node: &str) -> String {
        self.shared(&format!("nicks:{node}"))
    }

    /// `node`'s lease.
    pub fn lease(self, node: &str) -> String {
        self.shared(&format!("lease:{node}"))
    }

    /// The hash of the cluster's k-lines.
    pub fn klines(self) -> String {
        self.shared("klines")
    }

    /// The set of every account's name.
    pub fn accounts(self) -> String {
        self.shared("accounts")
    }

    /// The hash of `account`'s record.
    pub fn account(self, account: &Nick) -> String {
        self.shared(&format!("account:{}", account.key().as_str()))
    }

    /// The hash of every registered room's record.
    pub fn registered(self) -> String {
        self.shared("registered")
    }

    /// `room`'s log (a stream).
    pub fn room_log(self, room: &RoomName) -> String {
        self.tagged("miochat:log:", room.as_str())
    }

    /// The last sequence number each node had logged in `room` (a hash: node name to
    /// `EPOCH SEQ`), so that an event sent twice is logged once.
    pub fn room_seqs(self, room: &RoomName) -> String {
        self.tagged("miochat:logseq:", room.as_str())
    }

    /// `room`'s channel.
    pub fn room_channel(self, room: &RoomName) -> String {
        self.tagged("miochat:room:", room.as_str())
    }

    /// `node`'s own channel (private messages and invitations for its users).
    pub fn node_channel(self, node: &str) -> String {
        self.tagged("miochat:node:", node)
    }

    /// The room whose channel this is, if it is a room's.
    pub fn channel_room(self, channel: &[u8]) -> Option<RoomName> {
        let name = channel.strip_prefix(b"miochat:room:")?;
        let name = match self.cluster {
            true => name.strip_prefix(b"{")?.strip_suffix(b"}")?,
            false => name,
        };
        RoomName::parse(std::str::from_utf8(name).ok()?).ok()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use redis_protocol::redis_keyslot;

    use super::*;

    #[test]
    fn a_single_redis_keeps_plain_names() {
        let (keys, alice) = (Keys::new(false), Nick::parse("Alice").unwrap());
        assert_eq!(keys.nick(&alice), "miochat:nick:alice");
        let room = RoomName::parse("rust").unwrap();
        assert_eq!(keys.room_log(&room), "miochat:log:rust");
        assert_eq!(keys.channel_room(b"miochat:room:rust"), Some(room));
    }

    #[test]
    fn a_cluster_keeps_a_room_and_the_shared_records_each_in_one_slot() {
        let (keys, room) = (Keys::new(true), RoomName::parse("rust").unwrap());
        let (log, channel) = (keys.room_log(&room), keys.room_channel(&room));
        assert_eq!(
            redis_keyslot(keys.room_seqs(&room).as_bytes()),
            redis_keyslot(log.as_bytes())
        );
        assert_eq!(
            redis_keyslot(log.as_bytes()),
            redis_keyslot(channel.as_bytes())
        );
        assert_eq!(keys.channel_room(channel.as_bytes()), Some(room));
        let alice = Nick::parse("alice").unwrap();
        let slot = redis_keyslot(keys.nick(&alice).as_bytes());
        for key in [
            keys.claim_set("a"),
            keys.lease("a"),
            keys.klines(),
            keys.accounts(),
        ] {
            assert_eq!(redis_keyslot(key.as_bytes()), slot, "{key}");
        }
        assert_eq!(redis_keyslot(keys.account(&alice).as_bytes()), slot);
        assert_eq!(redis_keyslot(keys.registered().as_bytes()), slot);
    }
}
