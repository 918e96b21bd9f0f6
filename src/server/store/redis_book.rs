//! Accounts in Redis, for a cluster: one account book for every node.
//!
//! Each node's SQLite file keeps what is its own (history, registered rooms), but an
//! account must be the same on every node: registered on one, logged in to on any.
//! So with `--backplane` the auth thread keeps accounts in Redis instead: a hash per
//! account (`miochat:account:KEY`: name, argon2id hash, SCRAM credentials), the set
//! `miochat:accounts` of their names, and every creation or removal published on the
//! cluster channel in the same script, so each node's registry (the in-memory index
//! a shard asks "is this nick an account?") follows at once.
//!
//! The auth thread is the one thread allowed to wait here: it already spends tens of
//! milliseconds per argon2id hash, no shard waits for it, and its queue is bounded.
//! So this is a plain blocking connection (with timeouts), redialled after a failure;
//! RESP framing comes from `redis-protocol`, as on the backplane. On a Redis Cluster
//! every key here carries the `{miochat}` hash tag (`backplane/keys.rs`), so one
//! primary holds them all:
//! the book dials the seeds in turn and follows a `MOVED` to that primary.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use redis_protocol::resp2::decode::decode;
use redis_protocol::resp2::encode::encode;
use redis_protocol::resp2::types::{OwnedFrame, Resp2Frame};

use crate::protocol::{Nick, RoomName};
use crate::server::backplane::keys::Keys;
use crate::server::backplane::wire::{Wire, encode_registered};
use crate::server::registry::RegisteredRoom;

use super::scram::Credentials;

/// How long one request may take before the account request fails.
const TIMEOUT: Duration = Duration::from_secs(3);

/// Creates KEYS[1] from ARGV[3..] unless it exists, adds ARGV[1] to the name set
/// and publishes ARGV[2] on the cluster channel. 1: created, 0: it existed.
const CREATE: &str = "\
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
redis.call('HSET', KEYS[1], unpack(ARGV, 3))
redis.call('SADD', KEYS[2], ARGV[1])
redis.call('PUBLISH', 'miochat:cluster', ARGV[2])
return 1";

/// Deletes KEYS[1], takes ARGV[1] out of the name set, publishes ARGV[2].
const DELETE: &str = "\
redis.call('DEL', KEYS[1])
redis.call('SREM', KEYS[2], ARGV[1])
redis.call('PUBLISH', 'miochat:cluster', ARGV[2])
return 1";

/// Sets the fields ARGV of KEYS[1] if it exists. 1: changed, 0: no such account.
const UPDATE: &str = "\
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
redis.call('HSET', KEYS[1], unpack(ARGV))
return 1";

/// Sets field ARGV[1] of KEYS[1] to ARGV[3] and publishes ARGV[2].
const SAVE_ROOM: &str = "\
redis.call('HSET', KEYS[1], ARGV[1], ARGV[3])
redis.call('PUBLISH', 'miochat:cluster', ARGV[2])
return 1";

/// Deletes field ARGV[1] of KEYS[1] and publishes ARGV[2].
const DROP_ROOM: &str = "\
redis.call('HDEL', KEYS[1], ARGV[1])
redis.call('PUBLISH', 'miochat:cluster', ARGV[2])
return 1";

/// One account as kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccountRecord {
    /// The name as registered.
    pub name: String,
    /// The argon2id PHC string.
    pub hash: String,
    /// SCRAM-SHA-256 credentials.
    pub scram: Option<Credentials>,
}

/// The auth thread's connection to Redis.
#[derive(Debug)]
pub struct RedisBook {
    /// Where to dial: the one Redis, or a cluster's seeds.
    seeds: Vec<SocketAddr>,
    /// The seed (or the primary a `MOVED` named) dialled next.
    addr: SocketAddr,
    conn: Option<TcpStream>,
    keys: Keys,
}

impl RedisBook {
    /// A book at the first of `seeds` (a Redis Cluster's if `cluster`), dialled at
    /// its first request.
    pub fn new(seeds: Vec<SocketAddr>, cluster: bool) -> Self {
        let addr = seeds
            .first()
            .copied()
            .unwrap_or(SocketAddr::from(([127, 0, 0, 1], 6379)));
        RedisBook {
            seeds,
            addr,
            conn: None,
            keys: Keys::new(cluster),
        }
    }

    /// `account`'s record, if it exists.
    pub fn get(&mut self, account: &Nick) -> io::Result<Option<AccountRecord>> {
        let key = self.keys.account(account);
        let OwnedFrame::Array(fields) = self.request(&[b"HGETALL", key.as_bytes()])? else {
            return Err(io::Error::other("HGETALL: not an array"));
        };
        Ok(record(fields))
    }

    /// Creates the account unless it exists (false), announcing it with `announce`.
    pub fn create(&mut self, record: &AccountRecord, announce: &[u8]) -> io::Result<bool> {
        let nick = Nick::parse(&record.name).map_err(|_| io::Error::other("bad name"))?;
        let key = self.keys.account(&nick);
        let fields = fields(record);
        let mut args: Vec<&[u8]> = vec![b"EVAL", CREATE.as_bytes(), b"2", key.as_bytes()];
        let names = self.keys.accounts();
        args.extend([names.as_bytes(), record.name.as_bytes(), announce]);
        args.extend(fields.iter().map(Vec::as_slice));
        Ok(matches!(self.request(&args)?, OwnedFrame::Integer(1)))
    }

    /// A new password hash and credentials for `account`; false if it is gone.
    pub fn set_password(
        &mut self,
        account: &Nick,
        hash: &str,
        scram: &Credentials,
    ) -> io::Result<bool> {
        let key = self.keys.account(account);
        let record = AccountRecord {
            name: account.to_string(),
            hash: hash.to_string(),
            scram: Some(scram.clone()),
        };
        let fields = fields(&record);
        let mut args: Vec<&[u8]> = vec![b"EVAL", UPDATE.as_bytes(), b"1", key.as_bytes()];
        args.extend(fields.iter().skip(2).map(Vec::as_slice)); // not the name
        Ok(matches!(self.request(&args)?, OwnedFrame::Integer(1)))
    }

    /// Deletes `account` (named as registered), announcing it with `announce`.
    pub fn delete(&mut self, account: &Nick, name: &str, announce: &[u8]) -> io::Result<()> {
        let (key, names) = (self.keys.account(account), self.keys.accounts());
        let args: [&[u8]; 7] = [
            b"EVAL",
            DELETE.as_bytes(),
            b"2",
            key.as_bytes(),
            names.as_bytes(),
            name.as_bytes(),
            announce,
        ];
        self.request(&args).map(drop)
    }

    /// Registers `room` with `record` unless it is registered (false).
    pub fn register_room(&mut self, room: &str, record: &str) -> io::Result<bool> {
        let rooms = self.keys.registered();
        let args: [&[u8]; 4] = [
            b"HSETNX",
            rooms.as_bytes(),
            room.as_bytes(),
            record.as_bytes(),
        ];
        Ok(matches!(self.request(&args)?, OwnedFrame::Integer(1)))
    }

    /// Keeps `room`'s record (or, `None`, drops it) and publishes `announce`.
    pub fn save_room(
        &mut self,
        room: &str,
        record: Option<&str>,
        announce: &[u8],
    ) -> io::Result<()> {
        let (script, record) = match record {
            Some(record) => (SAVE_ROOM, record),
            None => (DROP_ROOM, ""),
        };
        let rooms = self.keys.registered();
        let args: [&[u8]; 7] = [
            b"EVAL",
            script.as_bytes(),
            b"1",
            rooms.as_bytes(),
            room.as_bytes(),
            announce,
            record.as_bytes(),
        ];
        self.request(&args).map(drop)
    }

    /// Every account's name.
    pub fn names(&mut self) -> io::Result<Vec<Nick>> {
        let key = self.keys.accounts();
        let OwnedFrame::Array(names) = self.request(&[b"SMEMBERS", key.as_bytes()])? else {
            return Err(io::Error::other("SMEMBERS: not an array"));
        };
        let name = |frame: OwnedFrame| match frame {
            OwnedFrame::BulkString(name) => Nick::parse(&String::from_utf8(name).ok()?).ok(),
            _ => None,
        };
        Ok(names.into_iter().filter_map(name).collect())
    }

    /// One request and its reply; a failure drops the connection (the next request
    /// dials again) and is the caller's error.
    fn request(&mut self, args: &[&[u8]]) -> io::Result<OwnedFrame> {
        for _ in 0..3 {
            let result = self.try_request(args);
            let moved = match &result {
                Ok(OwnedFrame::Error(e)) => match e.strip_prefix("MOVED ") {
                    Some(moved) => moved.split(' ').nth(1).and_then(|a| a.parse().ok()),
                    None => return Err(io::Error::other(format!("Redis said: {e}"))),
                },
                Err(_) => {
                    self.conn = None;
                    let next = self
                        .seeds
                        .iter()
                        .position(|&s| s == self.addr)
                        .map_or(0, |i| (i + 1) % self.seeds.len());
                    self.addr = self.seeds.get(next).copied().unwrap_or(self.addr);
                    return result;
                }
                Ok(_) => return result,
            };
            // A cluster's primary for this slot is elsewhere: go there.
            self.conn = None;
            self.addr = moved.ok_or_else(|| io::Error::other("Redis said MOVED to nowhere"))?;
        }
        Err(io::Error::other(
            "Redis redirected this request too many times",
        ))
    }

    fn try_request(&mut self, args: &[&[u8]]) -> io::Result<OwnedFrame> {
        let frame = OwnedFrame::Array(
            args.iter()
                .map(|a| OwnedFrame::BulkString(a.to_vec()))
                .collect(),
        );
        let mut bytes = vec![0; frame.encode_len(false)];
        encode(&mut bytes, &frame, false).map_err(io::Error::other)?;
        if self.conn.as_ref().is_some_and(closed_by_redis) {
            self.conn = None; // Redis restarted since the last request: dial again
        }
        let conn = match &mut self.conn {
            Some(conn) => conn,
            None => {
                let conn = TcpStream::connect_timeout(&self.addr, TIMEOUT)?;
                conn.set_read_timeout(Some(TIMEOUT))?;
                conn.set_write_timeout(Some(TIMEOUT))?;
                self.conn.insert(conn)
            }
        };
        conn.write_all(&bytes)?;
        let mut got = Vec::new();
        let mut chunk = [0; 4096];
        loop {
            if let Some((frame, _)) = decode(&got).map_err(io::Error::other)? {
                return Ok(frame);
            }
            let n = conn.read(&mut chunk)?;
            if n == 0 {
                return Err(io::ErrorKind::UnexpectedEof.into());
            }
            got.extend_from_slice(&chunk[..n]);
        }
    }
}

/// True if Redis closed this idle connection (it restarted, or dropped idle
/// clients): found before a request is written, so a request is never sent twice.
fn closed_by_redis(conn: &TcpStream) -> bool {
    if conn.set_nonblocking(true).is_err() {
        return true;
    }
    // Closed, or bytes nobody asked for (the next reply would be misread): start
    // clean either way.
    let closed = match conn.peek(&mut [0; 1]) {
        Ok(_) => true,
        Err(e) => e.kind() != io::ErrorKind::WouldBlock,
    };
    closed || conn.set_nonblocking(false).is_err()
}

/// The hash's fields, as `HSET` pairs.
fn fields(record: &AccountRecord) -> Vec<Vec<u8>> {
    let mut out = vec![b"name".to_vec(), record.name.clone().into_bytes()];
    out.extend([b"hash".to_vec(), record.hash.clone().into_bytes()]);
    if let Some(scram) = &record.scram {
        out.extend([b"scram_salt".to_vec(), scram.salt.clone()]);
        out.extend([
            b"scram_iterations".to_vec(),
            scram.iterations.to_string().into_bytes(),
        ]);
        out.extend([b"scram_stored_key".to_vec(), scram.stored_key.clone()]);
        out.extend([b"scram_server_key".to_vec(), scram.server_key.clone()]);
    }
    out
}

/// A record from `HGETALL`'s field/value pairs (`None`: no such account).
fn record(fields: Vec<OwnedFrame>) -> Option<AccountRecord> {
    let mut values = std::collections::HashMap::new();
    let mut pairs = fields.into_iter();
    while let (Some(OwnedFrame::BulkString(name)), Some(OwnedFrame::BulkString(value))) =
        (pairs.next(), pairs.next())
    {
        values.insert(name, value);
    }
    let text = |field: &[u8]| String::from_utf8(values.get(field)?.clone()).ok();
    let bytes = |field: &[u8]| values.get(field).cloned();
    let scram = (|| {
        Some(Credentials {
            salt: bytes(b"scram_salt")?,
            iterations: text(b"scram_iterations")?.parse().ok()?,
            stored_key: bytes(b"scram_stored_key")?,
            server_key: bytes(b"scram_server_key")?,
        })
    })();
    Some(AccountRecord {
        name: text(b"name")?,
        hash: text(b"hash")?,
        scram,
    })
}

/// The store thread's side of registered rooms in a cluster: Redis holds every
/// registered room's record (`miochat:registered`), so a room registered on one node
/// has its founder, access list, modes, bans and topic on all of them; each change is
/// published so that every node's registry follows at once.
#[derive(Debug)]
pub struct SharedRooms {
    book: RedisBook,
    node: String,
}

impl SharedRooms {
    /// The store thread's connection, for node `node`.
    pub fn new(seeds: Vec<SocketAddr>, cluster: bool, node: String) -> Self {
        SharedRooms {
            book: RedisBook::new(seeds, cluster),
            node,
        }
    }

    /// Takes `room`'s registration for `record` in Redis (before the local commit);
    /// false if another node registered it first.
    pub fn register(&mut self, room: &RoomName, record: &RegisteredRoom) -> io::Result<bool> {
        let text = encode_registered(room, record);
        self.book.register_room(room.as_str(), &text)
    }

    /// `room` as it is now after a committed change (`None`: dropped), kept in Redis
    /// and told to every node.
    pub fn publish(&mut self, room: &RoomName, record: Option<RegisteredRoom>) -> io::Result<()> {
        let text = record.as_ref().map(|r| encode_registered(room, r));
        let announce = Wire::Registered {
            origin: self.node.clone(),
            room: room.clone(),
            record: record.map(Box::new),
        }
        .encode();
        self.book
            .save_room(room.as_str(), text.as_deref(), &announce)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn a_record_round_trips_through_its_fields() {
        let alice = AccountRecord {
            name: "Alice".into(),
            hash: "$argon2id$v=19$...".into(),
            scram: Some(Credentials {
                salt: vec![0, 255, 7],
                iterations: 4096,
                stored_key: vec![1; 32],
                server_key: vec![2; 32],
            }),
        };
        let frames = fields(&alice)
            .into_iter()
            .map(OwnedFrame::BulkString)
            .collect();
        assert_eq!(record(frames), Some(alice.clone()));
        assert_eq!(record(Vec::new()), None);
    }
}
