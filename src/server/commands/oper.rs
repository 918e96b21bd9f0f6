//! Server operators: what `OPER`, `KILL`, `KLINE`, `UNKLINE`, `WALLOPS`, `/wall`,
//! `REHASH` and `MOTD` do, whichever protocol they came from, and the server notices
//! operators get.
//!
//! An operator is a connection that gave an `[[oper]]` table's name and password
//! (`server::operators`). The password is checked off the shard (`oper_check.rs`:
//! argon2id costs tens of milliseconds) and the answer comes back through the inbox
//! ([`on_message`]); until then the connection is what it was. Its shard then keeps
//! it in [`Opers`], its list of local operators, so that a `WALLOPS` or a server
//! notice goes to the few operators there are without looking at anyone else, and
//! `Shared::opers` counts them per shard, so that a connection or a flood costs one
//! atomic load while no operator is on (the common case): notices are sent only
//! where someone reads them, and never per message.
//!
//! Reaching people elsewhere goes the usual ways: a kill of a connection on another
//! shard is an inbox message to that shard (only a connection's shard closes it), of
//! a user of another node a message to that node's channel; `WALLOPS` and `/wall` go
//! to every shard that has readers and, through the backplane, to every node. A
//! k-line is in force the moment it is set (`Shared::klines`): every shard sweeps its
//! connections ([`OperMsg::Sweep`]), then it is kept (the data dir, and Redis in a
//! cluster, which tells every node).

use std::sync::Arc;

use crate::protocol::identity::UserHost;
use crate::protocol::mask::host_of;
use crate::protocol::{Command, Event, KlineInfo, MAX_KICK_LEN, Nick, NoticeKind, ProtocolError};

use crate::server::backplane::handle::BackplaneMsg;
use crate::server::backplane::wire::Wire;
use crate::server::close_reason::CloseReason;
use crate::server::commands::Effects;
use crate::server::delivery::Delivery;
use crate::server::inbox::ShardMsg;
use crate::server::klines;
use crate::server::moderation::identity;
use crate::server::operators::{Asker, OperJob, OperMsg, OperOutcome};
use crate::server::room_state::unix_now;
use crate::server::session::OperStatus;
use crate::server::shared::Shared;
use crate::server::store::klines::KlineWrite;
use crate::server::store::{Job, Then};
use crate::server::token::ConnId;

/// What a command returns: done, or a mistake to answer.
type Outcome = Result<(), ProtocolError>;

/// Longest `WALLOPS` or `/wall` text kept, in bytes.
const MAX_TEXT: usize = 400;

/// The reason of a k-line set without one.
const NO_REASON: &str = "no reason given";

/// This shard's operators, by slab key.
#[derive(Debug, Default)]
pub struct Opers(Vec<usize>);

impl Opers {
    /// The keys (a stale one is skipped by whoever reads it: its session is no
    /// operator's).
    pub fn keys(&self) -> &[usize] {
        &self.0
    }

    /// Connection `key` is an operator now; false if it was already listed.
    fn add(&mut self, key: usize) -> bool {
        let new = !self.0.contains(&key);
        if new {
            self.0.push(key);
        }
        new
    }

    /// Connection `key` is an operator no more; false if it was not listed.
    fn remove(&mut self, key: usize) -> bool {
        let listed = self.0.contains(&key);
        self.0.retain(|&k| k != key);
        listed
    }
}

/// One operator's command (or `/motd`) being carried out for connection `key`.
#[derive(Debug)]
pub struct Operator<'r, 'f, 'a> {
    /// How events reach people.
    pub delivery: &'r mut Delivery,
    /// Config, directory, k-lines, counts.
    pub shared: &'r Shared,
    /// This shard's operators.
    pub opers: &'r mut Opers,
    /// The turn's effects.
    pub fx: &'f mut Effects<'a>,
    /// The connection asking.
    pub key: usize,
}

impl Operator<'_, '_, '_> {
    /// Carries out one of the commands [`Command::is_oper_command`] names.
    pub fn apply(mut self, command: Command<'_>) -> Outcome {
        match command {
            Command::Oper { name, password } => self.oper(name, password),
            Command::Motd => {
                let lines = self.shared.operators.get().motd.clone();
                let motd = Event::Motd { lines, asked: true };
                self.delivery.reply(self.fx, self.key, &motd);
                Ok(())
            }
            command => {
                let by = self.operator()?;
                self.privileged(by, command)
            }
        }
    }

    /// The commands only operators may use (`by` is one).
    fn privileged(&mut self, by: Nick, command: Command<'_>) -> Outcome {
        match command {
            Command::Kill { nick, reason } => self.kill(by, nick, reason),
            Command::Kline {
                mask,
                duration,
                reason,
            } => self.kline(by, mask, duration, reason),
            Command::Unkline(mask) => self.unkline(by, mask),
            Command::Klines => {
                let klines = Event::Klines(self.shared.klines.list(unix_now()));
                self.delivery.reply(self.fx, self.key, &klines);
                Ok(())
            }
            Command::Wallops(text) => self.wallops(by, text),
            Command::Wall(text) => self.wall(by, text),
            Command::Rehash => {
                log::info!("{by} asked for a reload (/rehash)");
                if !self.shared.request_reload() {
                    log::warn!("/rehash: this server has no acceptor to reload");
                }
                self.delivery.reply(self.fx, self.key, &Event::Rehashing);
                Ok(())
            }
            other => unreachable!("BUG: {other:?} is not an operator's command"),
        }
    }

    /// The asker's nick, if it is an operator; else `no-privileges`.
    fn operator(&mut self) -> Result<Nick, ProtocolError> {
        let session = self
            .fx
            .session(self.key)
            .ok_or(ProtocolError::NoPrivileges)?;
        match session.oper {
            Some(_) => Ok(session.nick.clone()),
            None => Err(ProtocolError::NoPrivileges),
        }
    }

    /// `OPER name password`: handed to the checking thread; the answer comes back as
    /// [`OperMsg::Checked`].
    fn oper(&mut self, name: &str, password: &str) -> Outcome {
        let session = self.fx.session(self.key).ok_or(ProtocolError::NoRoom)?;
        let asker = Asker {
            id: session.id,
            nick: session.nick.to_string(),
            user: session.userhost.user(session.nick.as_str()).to_string(),
            host: session.userhost.host().to_string(),
            address: session.peer().ip(),
        };
        let job = OperJob::Check {
            asker,
            name: name.into(),
            password: password.into(),
        };
        let queue = self
            .shared
            .oper_check
            .as_ref()
            .ok_or(ProtocolError::OperBusy)?;
        queue.try_send(job).map_err(|_| ProtocolError::OperBusy)
    }

    /// `KILL nick :reason`: the user's own shard closes it (on another node, that
    /// node's), telling it why and its rooms `Killed (by (reason))`.
    fn kill(&mut self, by: Nick, nick: &str, reason: &str) -> Outcome {
        let reason: Box<str> = cut(reason, MAX_KICK_LEN).into();
        let victim = match self.shared.directory.lookup_full(nick) {
            Some((id, victim, _)) => {
                let from = self.fx.session(self.key).map(|s| s.userhost.clone());
                let kill = OperMsg::Kill {
                    id,
                    by: by.clone(),
                    reason: reason.clone(),
                    from,
                };
                match id.shard() == self.delivery.index() {
                    true => on_message(self.delivery, self.shared, self.opers, self.fx, kill),
                    false => self.fx.send(id.shard(), ShardMsg::Oper(kill)),
                }
                victim
            }
            None => self.kill_elsewhere(&by, nick, &reason)?,
        };
        log::info!("{by} killed {victim}: {reason}");
        let done = Event::Done(format!("killed {victim}").into());
        self.delivery.reply(self.fx, self.key, &done);
        self.notice(NoticeKind::Kill, format!("{by} killed {victim} ({reason})"));
        Ok(())
    }

    /// A kill of a user of another node of the cluster, through its node.
    fn kill_elsewhere(
        &mut self,
        by: &Nick,
        nick: &str,
        reason: &str,
    ) -> Result<Nick, ProtocolError> {
        let (to, node) = (self.shared.cluster)
            .with_owner(nick, |user| (user.entry.nick.clone(), user.node))
            .ok_or_else(|| ProtocolError::NoSuchNick(nick.into()))?;
        let node = (self.shared.cluster.node_name(node))
            .ok_or_else(|| ProtocolError::NoSuchNick(nick.into()))?;
        let wire = Wire::Kill {
            origin: self.shared.node_name().to_string(),
            by: by.clone(),
            to: to.clone(),
            reason: reason.into(),
        };
        let (wire, answer) = (Box::new(wire), None);
        self.fx
            .publish(BackplaneMsg::Private { node, wire, answer });
        Ok(to)
    }

    /// `/kline MASK DURATION [REASON]`: in force at once on every shard (and node),
    /// then kept; its setter hears `OK` once it is on disk.
    fn kline(&mut self, by: Nick, mask: &str, duration: Option<u64>, reason: &str) -> Outcome {
        let mask = klines::normalize(mask).map_err(ProtocolError::BadMask)?;
        let session = self.fx.session(self.key).ok_or(ProtocolError::NoRoom)?;
        if klines::matches(&mask, &identity(session)) {
            let why = "that mask matches you: a k-line may not keep out its setter";
            return Err(ProtocolError::BadMask(why));
        }
        let to = session.id;
        let now = unix_now();
        let reason = match reason.trim() {
            "" => NO_REASON,
            reason => cut(reason, MAX_KICK_LEN),
        };
        let kline = KlineInfo {
            mask: mask.into(),
            set_by: by.as_str().into(),
            set_at: now,
            expires: duration.map(|secs| now.saturating_add(secs)),
            reason: reason.into(),
        };
        let expiry = kline.expiry_text();
        log::info!(
            "{by} set a k-line on {} until {expiry}: {reason}",
            kline.mask
        );
        let text = format!("{by} k-lined {} until {expiry} ({reason})", kline.mask);
        self.notice(NoticeKind::Kline, text);
        self.shared.klines.put(kline.clone());
        sweep_everywhere(self.delivery, self.shared, self.opers, self.fx);
        let mask = kline.mask.clone();
        let reply = Event::Done(format!("kline {mask} {expiry}").into());
        self.keep(to, KlineWrite::Set(kline.clone()), reply);
        if self.shared.backplane.is_some() {
            let kline = Some(Box::new(kline));
            self.fx.publish(BackplaneMsg::Kline { mask, kline });
        }
        Ok(())
    }

    /// `/unkline MASK`.
    fn unkline(&mut self, by: Nick, typed: &str) -> Outcome {
        let mask = klines::normalize(typed).unwrap_or_else(|_| typed.to_ascii_lowercase());
        if !self.shared.klines.remove(&mask) {
            return Err(ProtocolError::NoSuchKline(mask.into()));
        }
        let to = self.fx.session(self.key).ok_or(ProtocolError::NoRoom)?.id;
        log::info!("{by} lifted the k-line on {mask}");
        let text = format!("{by} lifted the k-line on {mask}");
        self.notice(NoticeKind::Kline, text);
        let reply = Event::Done(format!("unkline {mask}").into());
        self.keep(to, KlineWrite::Lift(mask.as_str().into()), reply);
        if self.shared.backplane.is_some() {
            let (mask, kline) = (mask.into(), None);
            self.fx.publish(BackplaneMsg::Kline { mask, kline });
        }
        Ok(())
    }

    /// A k-line change to the data dir, `reply` once it is there (at once without
    /// one; that it could not be saved, if the store is busy).
    fn keep(&mut self, to: ConnId, change: KlineWrite, reply: Event) {
        let Some(store) = &self.shared.store else {
            return self.delivery.reply(self.fx, self.key, &reply);
        };
        let then = Box::new(Then {
            to,
            reply: Some(reply),
            broadcast: None,
        });
        if store.submit(Job::Kline(change, then)).is_err() {
            log::warn!("store busy: a k-line change was not saved");
            let error = Event::Error(ProtocolError::NotSaved);
            self.delivery.reply(self.fx, self.key, &error);
        }
    }

    /// `WALLOPS :text`: to every operator of every node (the sender too).
    fn wallops(&mut self, from: Nick, text: &str) -> Outcome {
        let text: Box<str> = cut(text, MAX_TEXT).into();
        let source = self.fx.session(self.key).map(|s| s.userhost.clone());
        let event = Arc::new(Event::Wallops {
            from: from.clone(),
            text: text.clone(),
        });
        to_opers(
            self.delivery,
            self.shared,
            self.opers,
            self.fx,
            (event, false, source),
        );
        self.tell_every_node(Wire::Wallops {
            origin: self.shared.node_name().to_string(),
            from,
            text,
        });
        Ok(())
    }

    /// `/wall TEXT`: a notice to every user of every node (the sender too).
    fn wall(&mut self, from: Nick, text: &str) -> Outcome {
        let text: Box<str> = cut(text, MAX_TEXT).into();
        log::info!("{from} sent a notice to everyone: {text}");
        let source = self.fx.session(self.key).map(|s| s.userhost.clone());
        let event = Arc::new(Event::Wall {
            from: from.clone(),
            text: text.clone(),
        });
        for shard in 0..self.shared.shards.len() {
            let (event, from) = (Arc::clone(&event), source.clone());
            let msg = OperMsg::ToAll { event, from };
            match shard == self.delivery.index() {
                true => on_message(self.delivery, self.shared, self.opers, self.fx, msg),
                false => self.fx.send(shard, ShardMsg::Oper(msg)),
            }
        }
        self.tell_every_node(Wire::Wall {
            origin: self.shared.node_name().to_string(),
            from,
            text,
        });
        Ok(())
    }

    /// A server notice to this node's operators.
    fn notice(&mut self, kind: NoticeKind, text: String) {
        notice(self.delivery, self.shared, self.opers, self.fx, kind, text);
    }

    /// `wire` to every other node of the cluster, if there is one.
    fn tell_every_node(&mut self, wire: Wire) {
        if self.shared.backplane.is_some() {
            self.fx.publish(BackplaneMsg::Broadcast(Box::new(wire)));
        }
    }
}

/// A message for this shard's operators' business (`ShardMsg::Oper`).
pub fn on_message(
    delivery: &mut Delivery,
    shared: &Shared,
    opers: &mut Opers,
    fx: &mut Effects<'_>,
    msg: OperMsg,
) {
    match msg {
        OperMsg::Checked { to, name, outcome } => {
            checked(delivery, shared, opers, fx, (to, name, outcome))
        }
        OperMsg::Kill {
            id,
            by,
            reason,
            from,
        } => {
            let Some(session) = fx.session(id.key()).filter(|s| s.id == id) else {
                return log::debug!("a kill of a connection that has closed");
            };
            log::info!(
                "{} {} killed by {by}: {reason}",
                session.peer(),
                session.nick
            );
            let quit = format!("Killed ({by} ({reason}))");
            let farewell = Event::Killed { by, reason };
            let last = (&farewell, from.as_ref());
            close(delivery, fx, id.key(), Some(&quit), last);
        }
        OperMsg::Sweep => sweep(delivery, shared, opers, fx),
        OperMsg::ToOpers {
            event,
            notice,
            from,
        } => {
            for &key in opers.keys() {
                let reads = fx
                    .session(key)
                    .is_some_and(|s| s.oper.as_ref().is_some_and(|o| o.snotices || !notice));
                if reads {
                    delivery.reply_from(fx, key, &event, from.as_ref());
                }
            }
        }
        OperMsg::ToAll { event, from } => {
            for key in fx.keys() {
                if fx.is_open(key) && fx.session(key).is_some_and(|s| s.is_registered()) {
                    delivery.reply_from(fx, key, &event, from.as_ref());
                }
            }
        }
    }
}

/// The answer to connection `to`'s `OPER name`, if it is still there.
fn checked(
    delivery: &mut Delivery,
    shared: &Shared,
    opers: &mut Opers,
    fx: &mut Effects<'_>,
    (to, name, outcome): (ConnId, Box<str>, OperOutcome),
) {
    let key = to.key();
    let Some(session) = fx.session(key).filter(|s| s.id == to) else {
        return;
    };
    let who = format!("{} ({})", session.nick, host_of(session.peer().ip()));
    let error = match outcome {
        OperOutcome::Granted => {
            session.oper = Some(Box::new(OperStatus {
                name: name.clone(),
                snotices: true,
            }));
            if opers.add(key) {
                shared.opers.add(delivery.index());
            }
            delivery.reply(fx, key, &Event::YouAreOper(name.clone()));
            let text = format!("{who} is now an operator ({name})");
            return notice(delivery, shared, opers, fx, NoticeKind::Oper, text);
        }
        OperOutcome::Refused => ProtocolError::OperFailed,
        OperOutcome::WrongHost => ProtocolError::NoOperHost,
        OperOutcome::Throttled(secs) => ProtocolError::OperThrottled(secs),
    };
    let text = format!("{who} failed to become operator {name}: {}", error.code());
    delivery.reject(fx, key, error);
    notice(delivery, shared, opers, fx, NoticeKind::Oper, text);
}

/// Connection `key` stops being an operator (IRC `MODE me -o`, or it closed).
pub fn drop_oper(delivery: &Delivery, shared: &Shared, opers: &mut Opers, key: usize) {
    if opers.remove(key) {
        shared.opers.remove(delivery.index());
    }
}

/// Closes connection `key`: out of its rooms (telling them `quit`, if given), then
/// the farewell as its last word (from the operator whose `user@host` is given).
fn close(
    delivery: &mut Delivery,
    fx: &mut Effects<'_>,
    key: usize,
    quit: Option<&str>,
    (farewell, from): (&Event, Option<&UserHost>),
) {
    let Some(session) = fx.session(key) else {
        return;
    };
    let rooms = std::mem::take(&mut session.rooms);
    session.current = None;
    let (id, nick) = (session.id, session.nick.clone());
    delivery.depart(fx, (key, id, &nick), &rooms, quit);
    delivery.farewell_from(fx, key, farewell, CloseReason::Killed, from);
}

/// Checks connection `key` against the k-lines now that its identity is known (a
/// line connection adopted, an IRC registration, a new nick); closes it if one
/// matches. `announce`: its rooms are told it quit (they saw it join). True if it
/// was closed.
pub fn klined(
    delivery: &mut Delivery,
    shared: &Shared,
    opers: &mut Opers,
    fx: &mut Effects<'_>,
    (key, announce): (usize, bool),
) -> bool {
    if shared.klines.is_empty() {
        return false;
    }
    let Some(session) = fx.session(key) else {
        return false;
    };
    let Some(kline) = shared.klines.matching(&identity(session), unix_now()) else {
        return false;
    };
    let who = format!("{} ({})", session.nick, host_of(session.peer().ip()));
    log::info!("{who} matches the k-line on {}: closed", kline.mask);
    let quit = format!("K-Lined ({})", kline.reason);
    let farewell = Event::Klined(kline.reason.clone());
    let quit = announce.then_some(quit.as_str());
    close(delivery, fx, key, quit, (&farewell, None));
    let text = format!("{who} matches the k-line on {}: disconnected", kline.mask);
    notice(delivery, shared, opers, fx, NoticeKind::Kline, text);
    true
}

/// Closes every connection of this shard that a k-line now matches.
fn sweep(delivery: &mut Delivery, shared: &Shared, opers: &mut Opers, fx: &mut Effects<'_>) {
    for key in fx.keys() {
        if fx.is_open(key) {
            klined(delivery, shared, opers, fx, (key, true));
        }
    }
}

/// Every shard sweeps its connections (this one at once).
fn sweep_everywhere(
    delivery: &mut Delivery,
    shared: &Shared,
    opers: &mut Opers,
    fx: &mut Effects<'_>,
) {
    for shard in (0..shared.shards.len()).filter(|&s| s != delivery.index()) {
        fx.send(shard, ShardMsg::Oper(OperMsg::Sweep));
    }
    sweep(delivery, shared, opers, fx);
}

/// A server notice to every operator of this node who takes them (IRC `+s`). One
/// atomic load per shard when there is none.
pub fn notice(
    delivery: &mut Delivery,
    shared: &Shared,
    opers: &mut Opers,
    fx: &mut Effects<'_>,
    kind: NoticeKind,
    text: String,
) {
    if shared.opers.total() == 0 {
        return;
    }
    let text = text.into();
    let event = Arc::new(Event::ServerNotice { kind, text });
    to_opers(delivery, shared, opers, fx, (event, true, None));
}

/// `event` to every operator of this node (a server notice if `notice`).
fn to_opers(
    delivery: &mut Delivery,
    shared: &Shared,
    opers: &mut Opers,
    fx: &mut Effects<'_>,
    (event, notice, from): (Arc<Event>, bool, Option<UserHost>),
) {
    let here = delivery.index();
    for shard in shared.opers.shards() {
        let (event, from) = (Arc::clone(&event), from.clone());
        let msg = OperMsg::ToOpers {
            event,
            notice,
            from,
        };
        match shard == here {
            true => on_message(delivery, shared, opers, fx, msg),
            false => fx.send(shard, ShardMsg::Oper(msg)),
        }
    }
}

/// `text` cut to at most `max` bytes at a character boundary.
fn cut(text: &str, max: usize) -> &str {
    let mut end = text.len().min(max);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}
