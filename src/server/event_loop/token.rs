//! Token layout and connection ids.
//!
//! A mio [`Token`] is the only thing an event carries back to us. Ours encode which
//! shard owns the connection and where it lives in that shard's slab:
//!
//! ```text
//!   usize:  [ slab key ............................ | shard (7 bits) ]
//!   INBOX_WAKER = usize::MAX   (reserved: the shard's inbox was woken)
//! ```
//!
//! Seven bits for at most 64 shards: the waker's shard field is 127, which no shard
//! index can be, so no connection token can ever equal `INBOX_WAKER`, whatever its key.
//!
//! Each shard has its own `Poll`, so the shard bits are not needed to route an event;
//! they make a token self-describing in logs and let a [`ConnId`] name a connection on
//! any shard.
//!
//! Slab keys are reused as soon as a connection is removed, so a key alone cannot name
//! a connection across time: a private message addressed to key 7 must not reach the
//! *next* connection in slot 7. A [`ConnId`] adds a generation, drawn from a shard-wide
//! counter when the connection is adopted, and every cross-shard delivery checks it
//! (invariant ET-6 in `docs/DESIGN.md`).
//!
//! A `ConnId` is 8 bytes, a 32-bit token and a 32-bit generation: it is the key of
//! several tables with an entry per connection (the directory's, the backplane's), and
//! 8 bytes less per key is about 14 bytes less per connection and table. A slab key
//! stays far below the 2^25 that 32 bits leave it (a process has at most tens of
//! thousands of descriptors); a connection whose key would not fit is not adopted.
//! The generation wraps after 2^32 adoptions on one shard: a stale message would have
//! to outlive four billion connections to reach the wrong one.

use mio::Token;

/// Bits of a token that hold the shard index (one more than 64 shards need).
pub const SHARD_BITS: u32 = 7;
/// Mask of the shard field.
const SHARD_MASK: usize = (1 << SHARD_BITS) - 1;
/// Most shards a server can run (`--workers` is capped to this). Below `SHARD_MASK`,
/// so the all-ones shard field stays reserved for `INBOX_WAKER`.
pub const MAX_SHARDS: usize = 64;
/// The token of a shard's inbox `Waker`. No connection token can equal it: its shard
/// field is `SHARD_MASK`, and every shard index is below `MAX_SHARDS`.
pub const INBOX_WAKER: Token = Token(usize::MAX);

/// Builds the token for slab `key` on shard `shard`.
pub fn encode(shard: usize, key: usize) -> Token {
    debug_assert!(shard < MAX_SHARDS);
    Token((key << SHARD_BITS) | shard)
}

/// Splits a connection token into (shard, slab key).
pub fn decode(token: Token) -> (usize, usize) {
    (token.0 & SHARD_MASK, token.0 >> SHARD_BITS)
}

/// A connection's identity across threads and across time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConnId {
    /// Shard and slab key, as registered with the shard's `Poll`.
    token: u32,
    /// Distinguishes successive connections that used the same slab slot.
    generation: u32,
}

/// `SHARD.KEY.GENERATION`, as the protocol trace names a connection.
impl std::fmt::Display for ConnId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (shard, key) = decode(self.token());
        write!(f, "{shard}.{key}.{}", self.generation)
    }
}

impl ConnId {
    /// The connection registered as `token`, the shard's `generation`th; `None` if
    /// the token does not fit in 32 bits.
    pub fn new(token: Token, generation: u32) -> Option<ConnId> {
        let token = u32::try_from(token.0).ok()?;
        Some(ConnId { token, generation })
    }

    /// The token the connection is registered with.
    pub fn token(self) -> Token {
        Token(self.token as usize)
    }

    /// Which connection of its slab slot this is.
    pub fn generation(self) -> u32 {
        self.generation
    }

    /// The shard that owns this connection.
    pub fn shard(self) -> usize {
        decode(self.token()).0
    }

    /// The connection's slab key in its shard.
    pub fn key(self) -> usize {
        decode(self.token()).1
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encode_decode_round_trip() {
        for shard in [0, 1, 5, MAX_SHARDS - 1] {
            for key in [0, 1, 77, 1 << 30] {
                assert_eq!(decode(encode(shard, key)), (shard, key));
            }
        }
    }

    #[test]
    fn waker_token_is_never_a_connection_token() {
        const { assert!(MAX_SHARDS <= SHARD_MASK) };
        // The largest key with every shard, and the key that would have collided with
        // 6 shard bits (all ones below the shard field).
        for shard in 0..MAX_SHARDS {
            for key in [0, usize::MAX >> SHARD_BITS, (usize::MAX >> SHARD_BITS) - 1] {
                assert_ne!(encode(shard, key), INBOX_WAKER, "shard {shard} key {key}");
            }
        }
        assert_eq!(decode(INBOX_WAKER).0, SHARD_MASK);
    }

    #[test]
    fn conn_id_names_shard_and_key() {
        let id = ConnId::new(encode(3, 42), 9).expect("fits");
        assert_eq!((id.shard(), id.key()), (3, 42));
        let reused = ConnId::new(id.token(), 10).expect("fits");
        assert_ne!(id, reused, "a reused slot is a different connection");
        assert_eq!(std::mem::size_of::<ConnId>(), 8);
        assert!(ConnId::new(encode(0, 1 << 25), 1).is_none(), "past 32 bits");
    }
}
