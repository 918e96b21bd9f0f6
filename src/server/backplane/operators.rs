//! The backplane's part in server operators' work: `WALLOPS` and `/wall` for every
//! node, a kill of a user of this node by an operator of another, and k-lines.
//!
//! K-lines in a cluster live in Redis, in one hash (`miochat:klines`, mask → the
//! k-line as [`wire::encode_kline`] writes it). A node that sets or lifts one
//! changes the hash and publishes the change on the cluster channel in one script;
//! every other node follows the change at once, and a node that (re)connects reads
//! the whole hash: Redis's list is the cluster's, and replaces the node's own. Each
//! change is followed by a sweep of every shard, which closes the connections a new
//! k-line matches.

use super::scripts::Script;
use std::sync::Arc;

use redis_protocol::resp2::types::OwnedFrame;

use crate::protocol::{Event, KlineInfo};

use super::super::inbox::ShardMsg;
use super::super::operators::OperMsg;
use super::super::room_state::unix_now;
use super::wire::{self, Wire};
use super::{Backplane, CLUSTER_CHANNEL, Pending};

/// Sets (ARGV[3] not empty) or deletes field ARGV[1] of KEYS[1], and publishes
/// ARGV[2] on the cluster channel.
pub(super) static SAVE_KLINE: Script = Script::new(
    "\
if ARGV[3] == '' then redis.call('HDEL', KEYS[1], ARGV[1])
else redis.call('HSET', KEYS[1], ARGV[1], ARGV[3]) end
redis.call('PUBLISH', 'miochat:cluster', ARGV[2])
return 1",
);

impl Backplane {
    /// An operator's message from another node.
    pub(super) fn on_operator(&mut self, wire: Wire) {
        match wire {
            Wire::Wallops { from, text, .. } => {
                let event = Arc::new(Event::Wallops { from, text });
                for shard in self.shared.opers.shards() {
                    let (event, notice, from) = (Arc::clone(&event), false, None);
                    let msg = OperMsg::ToOpers {
                        event,
                        notice,
                        from,
                    };
                    self.to_shards[shard].push(ShardMsg::Oper(msg));
                }
            }
            Wire::Wall { from, text, .. } => {
                let event = Arc::new(Event::Wall { from, text });
                for batch in &mut self.to_shards {
                    let (event, from) = (Arc::clone(&event), None);
                    batch.push(ShardMsg::Oper(OperMsg::ToAll { event, from }));
                }
            }
            Wire::Kill { by, to, reason, .. } => match self.shared.directory.lookup(to.as_str()) {
                Some(id) => {
                    let from = None; // not known here
                    let msg = OperMsg::Kill {
                        id,
                        by,
                        reason,
                        from,
                    };
                    self.to_shards[id.shard()].push(ShardMsg::Oper(msg));
                }
                None => log::info!("backplane: a kill of {to}, who has gone"),
            },
            Wire::Kline { mask, kline, .. } => {
                match kline {
                    Some(kline) => self.shared.klines.put(*kline),
                    None => drop(self.shared.klines.remove(&mask)),
                }
                self.sweep();
            }
            _ => {}
        }
    }

    /// A k-line set or lifted here: into the cluster's hash, and told to every node.
    pub(super) fn save_kline(&mut self, mask: &str, kline: Option<Box<KlineInfo>>) {
        let record = kline.as_deref().map(wire::encode_kline).unwrap_or_default();
        let (origin, klines) = (self.config.node.clone(), self.keys.klines());
        let (mask, announce) = (
            mask.to_string(),
            Wire::Kline {
                origin,
                mask: mask.into(),
                kline,
            },
        );
        let args: [&[u8]; 7] = [
            b"EVALSHA",
            SAVE_KLINE.sha().as_bytes(),
            b"1",
            klines.as_bytes(),
            mask.as_bytes(),
            &announce.encode(),
            record.as_bytes(),
        ];
        match self
            .links
            .command(klines.as_bytes(), &args, Pending::Ignore)
        {
            Ok(()) => {}
            Err(_) => log::warn!(
                "backplane: Redis is away: the k-line change of {mask} stays on this node"
            ),
        }
    }

    /// A message for every node (`WALLOPS`, `/wall`).
    pub(super) fn broadcast(&mut self, wire: &Wire) {
        if !self.publish(CLUSTER_CHANNEL, wire) {
            log::warn!("backplane: Redis is away: a message for every node stays on this one");
        }
    }

    /// Asks Redis for the cluster's k-lines (when this node (re)connects).
    pub(super) fn ask_klines(&mut self) {
        let klines = self.keys.klines();
        let args: [&[u8]; 2] = [b"HGETALL", klines.as_bytes()];
        let _ = (self.links).command(klines.as_bytes(), &args, Pending::Klines);
    }

    /// The cluster's k-lines as Redis has them: they replace this node's.
    pub(super) fn on_klines(&mut self, frame: OwnedFrame) {
        let OwnedFrame::Array(fields) = frame else {
            return;
        };
        let now = unix_now();
        let mut klines = Vec::new();
        let mut pairs = fields.into_iter();
        while let (Some(_), Some(OwnedFrame::BulkString(text))) = (pairs.next(), pairs.next()) {
            match wire::decode_kline(&String::from_utf8_lossy(&text)) {
                Ok(kline) if kline.in_force(now) => klines.push(kline),
                Ok(_) => {}
                Err(_) => log::warn!("backplane: a k-line Redis holds cannot be read"),
            }
        }
        log::info!(
            "backplane: {} k-line(s) in force in the cluster",
            klines.len()
        );
        self.shared.klines.replace(klines);
        self.sweep();
    }

    /// Every shard checks its connections against the k-lines.
    fn sweep(&mut self) {
        for batch in &mut self.to_shards {
            batch.push(ShardMsg::Oper(OperMsg::Sweep));
        }
    }
}
