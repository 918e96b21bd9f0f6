//! Nick claims in Redis: the one truth of who holds a nick across the cluster.
//!
//! Gossip (each node telling the others its users) cannot make a nick unique: two
//! nodes that hand out `alice` in the same instant both say so afterwards, and one
//! user must be renamed after it was told `OK nick alice`. So a nick chosen by a user
//! is claimed in Redis before the answer: `SET miochat:nick:KEY OWNER NX PX LEASE`,
//! where OWNER names the node, its epoch (a restarted node is another owner) and the
//! connection. Redis runs commands one at a time, so exactly one of two claims wins;
//! the loser is told `ERR nick-taken` and never held the nick.
//!
//! - **Lease.** A claim expires with the node's lease unless renewed; the node renews
//!   every claim it holds in one script each lease third (the claims are listed in
//!   the set `miochat:nicks:NODE`). A node that dies stops renewing, and its claims
//!   lapse; the first node to see it dead drops them at once.
//! - **Release.** A rename or a disconnect gives the old nick back with a
//!   compare-and-delete script: only if the claim is still this connection's, so a
//!   late release never frees a nick someone else has claimed since.
//! - **Owner's own again.** The claim script also succeeds when the key already holds
//!   this exact owner: after Redis comes back, a node claims all its users' nicks
//!   again, and those that another node took while Redis had lost them are renamed.
//! - **Guest nicks** (`guest7-a`) end in the node's name, so no other node ever hands
//!   them out: they are never claimed.
//!
//! Each script touches keys it was not given (the claim set's members). A Redis
//! Cluster allows that only within one slot, so on a cluster every key here carries
//! the hash tag `{miochat}` (`keys.rs`): they all live in one slot, on one primary.

use super::scripts::Script;
use crate::protocol::Nick;
use crate::server::token::ConnId;

/// Claims KEYS[1] for ARGV[1] for ARGV[2] ms, unless another owner holds it; adds it
/// to the node's claim set KEYS[2]. 1: claimed, 0: taken.
pub static CLAIM: Script = Script::new(
    "\
local cur = redis.call('GET', KEYS[1])
if cur and cur ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
redis.call('SADD', KEYS[2], KEYS[1])
return 1",
);

/// Claims KEYS[1] for ARGV[1] whoever holds it: an account's owner who logged in
/// takes its nick back (the holder's node sees the claim is not its own any more).
pub static TAKE: Script = Script::new(
    "\
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
redis.call('SADD', KEYS[2], KEYS[1])
return 1",
);

/// Deletes KEYS[1] if ARGV[1] still holds it (compare-and-delete), and takes it out
/// of the claim set KEYS[2].
pub static RELEASE: Script = Script::new(
    "\
if redis.call('GET', KEYS[1]) == ARGV[1] then redis.call('DEL', KEYS[1]) end
redis.call('SREM', KEYS[2], KEYS[1])
return 1",
);

/// Renews (ARGV[2] ms) every claim in the set KEYS[1] still held by an owner
/// starting with ARGV[1] and forgets the rest; the set itself lives three leases.
/// With ARGV[2] = 0 it deletes them instead (a dead node's claims).
pub static RENEW: Script = Script::new(
    "\
local n = 0
for _, k in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  local v = redis.call('GET', k)
  if v and string.sub(v, 1, #ARGV[1]) == ARGV[1] then
    if ARGV[2] == '0' then redis.call('DEL', k) else redis.call('PEXPIRE', k, ARGV[2]) end
    n = n + 1
  else
    redis.call('SREM', KEYS[1], k)
  end
end
if ARGV[2] == '0' then redis.call('DEL', KEYS[1])
else redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[2]) * 3) end
return n",
);

/// What every claim of this node's incarnation starts with.
pub fn owner_prefix(node: &str, epoch: u64) -> String {
    format!("{node} {epoch} ")
}

/// The owner of a claim: node, epoch and connection.
pub fn owner(node: &str, epoch: u64, id: ConnId) -> String {
    format!(
        "{}{}.{}",
        owner_prefix(node, epoch),
        id.token().0,
        id.generation()
    )
}

/// The node whose guest nick this is (`guest7-a`: `a`), if it is one. Only that node
/// hands it out, so it is never claimed, and no user may choose one.
pub fn guest_node(nick: &Nick) -> Option<String> {
    let key = nick.key();
    let (number, node) = key.as_str().strip_prefix("guest")?.split_once('-')?;
    let numbered = !number.is_empty() && number.bytes().all(|b| b.is_ascii_digit());
    (numbered && !node.is_empty()).then(|| node.to_string())
}

/// True for a guest nick of `node`.
pub fn is_guest_of(nick: &Nick, node: &str) -> bool {
    guest_node(nick).is_some_and(|n| n == node)
}

/// The nicks Redis granted one local connection that it has not given back. Nearly
/// always one (two for the moment of a rename), so one is held inline: a vector of
/// one would cost every user an allocation of its own. More are boxed, so that the
/// enum is the size of the one nick (16 bytes, not 24, per connection).
#[derive(Debug)]
pub enum Granted {
    /// One nick.
    One(Nick),
    /// More than one.
    Several(Box<Vec<Nick>>),
}

impl Granted {
    /// Adds `nick`.
    pub fn add(&mut self, nick: Nick) {
        match self {
            Granted::One(first) => *self = Granted::Several(Box::new(vec![first.clone(), nick])),
            Granted::Several(nicks) => nicks.push(nick),
        }
    }

    /// Takes `nick` (in any case) out; true if none is left.
    pub fn remove(&mut self, nick: &Nick) -> bool {
        let same = |held: &Nick| held.as_str().eq_ignore_ascii_case(nick.as_str());
        match self {
            Granted::One(held) => same(held),
            Granted::Several(nicks) => {
                nicks.retain(|held| !same(held));
                if let [last] = nicks.as_slice() {
                    *self = Granted::One(last.clone());
                }
                matches!(self, Granted::Several(nicks) if nicks.is_empty())
            }
        }
    }

    /// Every nick held.
    pub fn into_vec(self) -> Vec<Nick> {
        match self {
            Granted::One(nick) => vec![nick],
            Granted::Several(nicks) => *nicks,
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn one_granted_nick_is_held_in_the_size_of_a_nick() {
        assert_eq!(std::mem::size_of::<Granted>(), std::mem::size_of::<Nick>());
    }

    #[test]
    fn only_the_nodes_own_guest_nicks_are_guests() {
        let nick = |s| Nick::parse(s).unwrap();
        assert!(is_guest_of(&nick("guest7-a"), "a"));
        assert!(is_guest_of(&nick("Guest12-a"), "a"));
        assert!(!is_guest_of(&nick("guest7-b"), "a"));
        assert!(!is_guest_of(&nick("guest-a"), "a"));
        assert!(!is_guest_of(&nick("guestx-a"), "a"));
        assert!(!is_guest_of(&nick("alice"), "a"));
    }

    #[test]
    fn granted_nicks_are_added_and_given_back_in_any_case() {
        let nick = |s| Nick::parse(s).unwrap();
        let mut granted = Granted::One(nick("alice"));
        assert!(!granted.remove(&nick("bob")), "alice is still held");
        granted.add(nick("bob"));
        assert!(!granted.remove(&nick("ALICE")));
        assert!(matches!(&granted, Granted::One(n) if n.as_str() == "bob"));
        granted.add(nick("carol"));
        assert_eq!(granted.into_vec().len(), 2);
        let mut last = Granted::One(nick("dave"));
        assert!(last.remove(&nick("Dave")), "nothing left");
    }

    #[test]
    fn an_owner_names_node_epoch_and_connection() {
        let id = ConnId::new(mio::Token(5), 9).unwrap();
        let owner = owner("a", 77, id);
        assert!(owner.starts_with(&owner_prefix("a", 77)));
        assert!(!owner.starts_with(&owner_prefix("a", 7)));
    }
}
