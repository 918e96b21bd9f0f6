//! Chat semantics: what each [`Command`] does, whichever protocol it came from.
//!
//! The relay decides *who* is told *what*; it never touches a socket. Every outcome is
//! an [`Event`] handed to [`Delivery`]: a reply to the sender, a room event (rendered
//! once, put in the room's one order by its home shard), or a private message to one
//! connection on any shard. Those only queue; the loop flushes at the end of its turn.
//!
//! Directory locks per command, as they really are: a room message takes one here
//! (may the sender speak: `+n`, `+m`, bans) and its home shard one more (to learn
//! which shards have members); `/join` takes one to check and join, one more on the
//! home shard for the join notice, and one more for IRC's member list; `/quit` one for
//! all its rooms. `ISON` and `USERHOST` look every nick up under one lock. None is
//! taken per recipient, which is what would make fan-out contend. Moderation commands
//! (`/mode`, `/kick`, `/invite`) are carried out by `moderation.rs`.

use std::collections::HashMap;
use std::sync::Arc;

use crate::protocol::mask::glob_matches;
use crate::protocol::outgoing::Outgoing;
use crate::protocol::{
    Command, Event, Member, Nick, NoticeKind, ProtocolError, Role, RoomInfo, RoomName, SayKind,
    WhoRow,
};

use crate::server::backplane::claims;
use crate::server::backplane::handle::{BackplaneMsg, ClaimAnswer, ClaimFor, PrivateAnswer};
use crate::server::backplane::wire::Wire;
use crate::server::close_reason::CloseReason;
use crate::server::commands::Effects;
use crate::server::config::{JOIN_HISTORY, MAX_ROOMS_PER_CONNECTION, WHO_PAGE};
use crate::server::delivery::Delivery;
use crate::server::moderation::{Moderator, identity, save_room};
use crate::server::oper::{self, Operator, Opers};
use crate::server::services::{Services, grant};
use crate::server::session::Session;
use crate::server::shared::Shared;
use crate::server::stats::bump;
use crate::server::store::{Job, StoredPrivate};

/// Where a nick claim stands when the command that asked for it returns.
#[derive(Debug)]
pub enum NickClaim {
    /// The nick is the connection's (the old one is returned).
    Done(Nick),
    /// Redis was asked (in a cluster); the answer comes as `ShardMsg::Claimed`.
    Asked,
}

/// The chat semantics of one shard.
#[derive(Debug)]
pub struct Relay {
    /// How events reach people.
    pub delivery: Delivery,
    /// Config, directory and stats.
    pub(super) shared: Arc<Shared>,
    /// This shard's index (for its stats).
    index: usize,
    /// The client-only tags (IRCv3 message-tags) of the command being applied, from
    /// an IRC client that enabled `message-tags`; passed on with the message.
    tags: Option<Box<str>>,
    /// This shard's server operators.
    pub opers: Opers,
}

impl Relay {
    /// The relay of shard `index`.
    pub fn new(index: usize, shared: Arc<Shared>) -> Self {
        Relay {
            delivery: Delivery::new(index, Arc::clone(&shared)),
            shared,
            index,
            tags: None,
            opers: Opers::default(),
        }
    }

    /// Carries out one command from connection `key`; a mistake is answered with an
    /// error line and changes nothing.
    /// Notices are never answered, not even with an error.
    pub fn apply(&mut self, fx: &mut Effects<'_>, key: usize, command: Command<'_>) {
        self.apply_tagged(fx, key, command, None);
    }

    /// Like [`Self::apply`], for a message (or `TAGMSG`) that carries the client-only
    /// tags `tags`, relayed to readers with `message-tags`.
    pub fn apply_tagged(
        &mut self,
        fx: &mut Effects<'_>,
        key: usize,
        command: Command<'_>,
        tags: Option<&str>,
    ) {
        self.tags = tags.filter(|t| !t.is_empty()).map(Into::into);
        let silent = command.is_notice();
        if let Err(error) = self.try_apply(fx, key, command)
            && !silent
        {
            self.delivery.reject(fx, key, error);
        }
        self.tags = None;
    }

    fn try_apply(&mut self, fx: &mut Effects<'_>, key: usize, command: Command<'_>) -> Outcome {
        match command {
            Command::Say(text) => self.say(fx, key, None, text, SayKind::Message),
            Command::Me(text) => self.say(fx, key, None, text, SayKind::Action),
            Command::SayTo { room, text, kind } => self.say(fx, key, Some(room), text, kind),
            Command::Msg { to, text } => self.private(fx, key, to, text, false),
            Command::Notice { to, text } => self.private(fx, key, to, text, true),
            Command::TagMsg(target) => self.tag_message(fx, key, target),
            Command::Nick(nick) => self.rename(fx, key, nick),
            Command::Join(room) => self.join(fx, key, room, None),
            Command::JoinWithKey { room, key: k } => self.join(fx, key, room, Some(k)),
            Command::Leave(room) => self.leave(fx, key, room, None),
            Command::Part { room, reason } => self.leave(fx, key, Some(room), reason),
            Command::Mode { room, request } => self.moderator(fx, key).mode(room, request),
            Command::Kick { room, nick, reason } => {
                let room = self.moderator(fx, key).kick(room, nick, reason)?;
                if self.delivery.is_home(&room) {
                    // Sequenced here: this shard's members already have the KICK.
                    self.carry_out_kicks(fx, &room);
                }
                Ok(())
            }
            Command::Invite { nick, room } => self.moderator(fx, key).invite(nick, room),
            Command::Invites => self.moderator(fx, key).invites(),
            Command::Who(room) => self.who(fx, key, room),
            Command::Topic(text) => self.topic(fx, key, None, text),
            Command::TopicOf { room, text } => self.topic(fx, key, Some(room), text),
            Command::Quit(reason) => self.quit(fx, key, reason),
            Command::Whois(nick) => self.whois(fx, key, nick),
            Command::Away(text) => self.away(fx, key, text),
            Command::Echo(on) => {
                if let Some(session) = fx.session(key) {
                    session.echo = on;
                }
                self.delivery.reply(fx, key, &Event::EchoIs(on));
                Ok(())
            }
            Command::History(count) => {
                let room = current_room(fx, key)?;
                let count = count.unwrap_or(JOIN_HISTORY);
                if self.shared.store.is_some() {
                    // With a store, `/history N` reads past memory like `/history ROOM N`.
                    let count = count.min(crate::protocol::HISTORY_READ_MAX);
                    let query = crate::protocol::HistoryQuery::Latest(count);
                    let services = Services {
                        delivery: &self.delivery,
                        shared: &self.shared,
                        fx,
                        key,
                    };
                    return services.apply(Command::HistoryOf { room, query });
                }
                let count = count.min(self.delivery.limits.history);
                self.delivery.ask_history(fx, &room, key, count, false);
                Ok(())
            }
            command if command.is_oper_command() => self.operator(fx, key).apply(command),
            command if command.is_account_command() => Services {
                delivery: &self.delivery,
                shared: &self.shared,
                fx,
                key,
            }
            .apply(command),
            query => self.answer(fx, key, query),
        }
    }

    /// Takes this shard's kicked members of `room` out of it, once the `Kicked` event
    /// has been delivered to them (only a connection's own shard changes its rooms).
    pub fn carry_out_kicks(&mut self, fx: &mut Effects<'_>, room: &RoomName) {
        let locals: Vec<_> = self
            .delivery
            .local_members(room)
            .iter()
            .filter_map(|&key| fx.session(key).map(|s| s.id))
            .collect();
        for id in self.shared.directory.take_kicked(room, &locals) {
            let key = id.key();
            if let Some(session) = fx.session(key) {
                session.rooms.retain(|r| r != room);
                if session.current.as_ref() == Some(room) {
                    session.current = session.rooms.last().cloned();
                }
            }
            self.delivery.exit(room, key);
            self.shared.directory.leave(room, id);
            self.tell_cluster(fx, key, None);
        }
    }

    /// The server operators' door (`oper.rs`).
    pub fn operator<'s, 'f, 'a>(
        &'s mut self,
        fx: &'f mut Effects<'a>,
        key: usize,
    ) -> Operator<'s, 'f, 'a> {
        Operator {
            delivery: &mut self.delivery,
            shared: &self.shared,
            opers: &mut self.opers,
            fx,
            key,
        }
    }

    /// Checks connection `key` against the k-lines (its identity changed, or is
    /// known at last); true if one matched and it is closing.
    pub fn klined(&mut self, fx: &mut Effects<'_>, key: usize, announce: bool) -> bool {
        let (delivery, opers) = (&mut self.delivery, &mut self.opers);
        oper::klined(delivery, &self.shared, opers, fx, (key, announce))
    }

    /// Operators' business from another shard, thread or node (`ShardMsg::Oper`).
    pub fn on_oper(&mut self, fx: &mut Effects<'_>, msg: crate::server::operators::OperMsg) {
        let (delivery, opers) = (&mut self.delivery, &mut self.opers);
        oper::on_message(delivery, &self.shared, opers, fx, msg);
    }

    /// A server notice to this node's operators (nothing while there are none).
    pub fn notice(
        &mut self,
        fx: &mut Effects<'_>,
        kind: NoticeKind,
        text: impl FnOnce() -> String,
    ) {
        if self.shared.opers.total() == 0 {
            return;
        }
        let (delivery, opers) = (&mut self.delivery, &mut self.opers);
        oper::notice(delivery, &self.shared, opers, fx, kind, text());
    }

    /// The moderation commands' door (`moderation.rs`).
    fn moderator<'s, 'f, 'a>(
        &'s self,
        fx: &'f mut Effects<'a>,
        key: usize,
    ) -> Moderator<'s, 'f, 'a> {
        Moderator {
            delivery: &self.delivery,
            shared: &self.shared,
            fx,
            key,
        }
    }

    /// Commands that only read: each is answered with one reply.
    fn answer(&mut self, fx: &mut Effects<'_>, key: usize, query: Command<'_>) -> Outcome {
        let session = fx.session(key).ok_or(ProtocolError::NoRoom)?;
        let asker = session.id;
        let directory = &self.shared.directory;
        let reply = match query {
            Command::Rooms => Event::Rooms(self.rooms(asker)),
            Command::ListOf(wanted) => {
                let mut rooms = self.rooms(asker);
                rooms.retain(|info| wanted.contains(&info.room));
                Event::Rooms(rooms)
            }
            Command::Ping(token) => Event::Pong(token.map(Into::into)),
            Command::Stats => Event::Stats(self.shared.report()),
            Command::Help => Event::Help,
            Command::Names(room) => {
                let (nicks, secret) = self.members(&room, asker);
                Event::Names {
                    nicks,
                    room,
                    secret,
                }
            }
            Command::WhoMask(mask) => Event::WhoMask {
                rows: self.who_mask(mask, asker, &session.rooms),
                mask: mask.into(),
            },
            Command::Whowas { nick, count } => Event::Whowas {
                entries: directory.whowas(nick, count),
                nick: nick.into(),
            },
            Command::Lusers => {
                let mut report = directory.lusers();
                report.operators = self.shared.opers.total();
                Event::Lusers(report)
            }
            Command::Ison(nicks) => {
                Event::Ison(self.online(&nicks).into_iter().map(|(n, _)| n).collect())
            }
            Command::Userhost(nicks) => {
                let online = self.online(&nicks);
                let hosts = directory.userhosts(online.iter().map(|(nick, _)| nick));
                let with_host = online.into_iter().zip(hosts);
                Event::Userhost(with_host.map(|((n, away), at)| (n, away, at)).collect())
            }
            other => unreachable!("BUG: {other:?} is not a query"),
        };
        self.delivery.reply(fx, key, &reply);
        Ok(())
    }

    /// Who of `nicks` is online, here or on another node of the cluster, in the
    /// order asked, and whether each is away.
    fn online(&self, nicks: &[&str]) -> Vec<(Nick, bool)> {
        let here = self.shared.directory.lookup_each(nicks);
        let find_here = |asked: &str| {
            (here.iter())
                .find(|(_, nick, _)| nick.as_str().eq_ignore_ascii_case(asked))
                .map(|(_, nick, away)| (nick.clone(), away.is_some()))
        };
        let cluster = &self.shared.cluster;
        let find_there = |asked: &str| {
            cluster.with_owner(asked, |user| {
                (user.entry.nick.clone(), user.entry.away.is_some())
            })
        };
        (nicks.iter())
            .filter_map(|asked| find_here(asked).or_else(|| find_there(asked)))
            .collect()
    }

    /// `WHO nick-or-mask`: an exact nick finds that user, here or on another node; a
    /// mask finds the users who share a room with the asker (on any node) and the
    /// asker, whose nick or real name matches. At most a page of rows.
    fn who_mask(
        &self,
        mask: &str,
        asker: crate::server::token::ConnId,
        asker_rooms: &[RoomName],
    ) -> Vec<WhoRow> {
        let mut rows = self.shared.directory.who_mask(mask, asker, WHO_PAGE);
        let cluster = &self.shared.cluster;
        if let Some(user) = cluster.owner(mask) {
            let member = Member {
                realname: user.entry.realname,
                nick: user.entry.nick,
                role: Role::Member,
                away: user.entry.away.is_some(),
                voiced: false,
            };
            let userhost = None; // not known here
            return vec![WhoRow {
                room: None,
                member,
                userhost,
            }];
        }
        let exact = rows.len() == 1 && rows[0].member.nick.as_str().eq_ignore_ascii_case(mask);
        let remote = asker_rooms.iter().flat_map(|room| cluster.members(room));
        for member in remote.filter(|_| !exact) {
            let seen = rows.iter().any(|row| row.member.nick == member.nick);
            if rows.len() < WHO_PAGE && !seen && glob_matches(mask, member.nick.as_str()) {
                let (role, voiced) = (Role::Member, false);
                let member = Member {
                    role,
                    voiced,
                    ..member
                };
                let userhost = None; // not known here
                rows.push(WhoRow {
                    room: None,
                    member,
                    userhost,
                });
            }
        }
        rows
    }

    /// A line, action or notice to a room: the current room (`room` = `None`) or a
    /// named one the sender is in.
    fn say(
        &mut self,
        fx: &mut Effects<'_>,
        key: usize,
        room: Option<RoomName>,
        text: &str,
        kind: SayKind,
    ) -> Outcome {
        let session = fx.session(key).ok_or(ProtocolError::NoRoom)?;
        let room = match room {
            None => session.current.clone().ok_or(ProtocolError::NoRoom)?,
            Some(room) => room,
        };
        // Also stamps when it last spoke (its WHOIS idle time).
        let account = self.may_speak(session, &room)?;
        let (from, text) = (session.nick.clone(), text.into());
        bump(&self.shared.stats.shards[self.index].messages_in);
        let event = match kind {
            SayKind::Message => Event::Message {
                room: room.clone(),
                from,
                text,
            },
            SayKind::Action => Event::Action {
                room: room.clone(),
                from,
                text,
            },
            SayKind::Notice => Event::RoomNotice {
                room: room.clone(),
                from,
                text,
            },
        };
        let tags = self.tags.as_deref();
        let outgoing = Outgoing::with_extras(event, tags, account, None);
        self.delivery.publish(fx, &room, Some(key), outgoing, false);
        Ok(())
    }

    /// IRC `TAGMSG`: client tags alone, to a room the sender may speak in or to a
    /// nick on this node; only readers with `message-tags` get it.
    fn tag_message(&mut self, fx: &mut Effects<'_>, key: usize, target: &str) -> Outcome {
        let session = fx.session(key).ok_or(ProtocolError::NoRoom)?;
        let from = session.nick.clone();
        let tags = self.tags.clone();
        if let Some(room) = crate::protocol::irc::channel(target) {
            self.may_speak(session, &room)?;
            let event = Event::TagMsg {
                room: room.clone(),
                from,
            };
            let tags = tags.as_deref();
            self.delivery
                .broadcast_tagged(fx, &room, Some(key), event, tags);
            return Ok(());
        }
        let (to, nick, _) = self
            .shared
            .directory
            .lookup_full(target)
            .ok_or_else(|| ProtocolError::NoSuchNick(target.into()))?;
        let event = Event::PrivateTagMsg { from };
        let tags = tags.as_deref();
        self.delivery
            .echo_private(fx, key, nick.as_str(), &event, tags);
        self.delivery
            .deliver_from(fx, key, to, Outgoing::tagged(event, tags));
        Ok(())
    }

    /// A private message or notice, to whichever shard has the target. The sender of
    /// a message (never of a notice) to someone away is told so, as IRC's 301 does.
    fn private(
        &mut self,
        fx: &mut Effects<'_>,
        key: usize,
        to: &str,
        text: &str,
        notice: bool,
    ) -> Outcome {
        let Some((target, nick, away)) = self.shared.directory.lookup_full(to) else {
            return self.private_remote(fx, key, to, text, notice);
        };
        let event = self.private_event(fx, key, text, notice)?;
        let tags = self.tags.clone();
        let tags = tags.as_deref();
        self.delivery
            .echo_private(fx, key, nick.as_str(), &event, tags);
        self.keep_private(&event, &nick);
        let sender = fx.session(key).map(|s| s.id);
        let account = sender.and_then(|id| self.shared.directory.account_of(id));
        let outgoing = Outgoing::with_extras(event, tags, account, None);
        self.delivery.deliver_from(fx, key, target, outgoing);
        self.tell_sender(fx, key, nick, away, notice);
        Ok(())
    }

    /// What the sender of a private message (never of a notice) is told: `OK sent
    /// NICK` if it is a line client (IRC has no such reply; its clients ask for
    /// `echo-message`), then the recipient's away message if it is away (IRC's 301).
    fn tell_sender(
        &self,
        fx: &mut Effects<'_>,
        key: usize,
        nick: Nick,
        away: Option<Box<str>>,
        notice: bool,
    ) {
        if notice {
            return;
        }
        if fx.session(key).is_some_and(|s| s.irc.is_none()) {
            self.delivery.reply(fx, key, &Event::Sent(nick.clone()));
        }
        if let Some(text) = away {
            self.delivery.reply(fx, key, &Event::IsAway { nick, text });
        }
    }

    /// A private message (not a notice) goes to the store for its two parties, if
    /// there is one; never waited for.
    fn keep_private(&self, event: &Event, to: &Nick) {
        let (
            Some(store),
            Event::Private {
                from,
                text,
                notice: false,
            },
        ) = (&self.shared.store, event)
        else {
            return;
        };
        let job = Job::Private(StoredPrivate {
            id: self.shared.next_msgid(),
            at_ms: crate::protocol::outgoing::now_ms(),
            from: from.clone(),
            to: to.clone(),
            text: text.clone(),
        });
        if store.submit(job).is_err() {
            log::debug!("store busy: a private message was not stored");
        }
    }

    /// A private message from `key`, counted, and its sender's idle time reset.
    fn private_event(
        &self,
        fx: &mut Effects<'_>,
        key: usize,
        text: &str,
        notice: bool,
    ) -> Result<Event, ProtocolError> {
        let session = fx.session(key).ok_or(ProtocolError::NoRoom)?;
        self.shared.directory.spoke(session.id);
        bump(&self.shared.stats.shards[self.index].messages_in);
        Ok(Event::Private {
            from: session.nick.clone(),
            text: text.into(),
            notice,
        })
    }

    /// A private message to a user of another node, through the backplane.
    fn private_remote(
        &mut self,
        fx: &mut Effects<'_>,
        key: usize,
        to: &str,
        text: &str,
        notice: bool,
    ) -> Outcome {
        let (to, node, away) = (self.shared.cluster)
            .with_owner(to, |user| {
                let (nick, away) = (user.entry.nick.clone(), user.entry.away.clone());
                (nick, user.node, away)
            })
            .ok_or_else(|| ProtocolError::NoSuchNick(to.into()))?;
        let node = (self.shared.cluster.node_name(node))
            .ok_or_else(|| ProtocolError::NoSuchNick(to.as_str().into()))?;
        let echo = self.private_event(fx, key, text, notice)?;
        self.keep_private(&echo, &to);
        self.delivery
            .echo_private(fx, key, to.as_str(), &echo, None);
        // The sender hears `OK sent` (or of its recipient's absence) once Redis handed
        // it to the recipient's node: `ShardMsg::PrivateSent`.
        let answer = fx
            .session(key)
            .filter(|_| !notice)
            .map(|session| PrivateAnswer {
                sender: session.id,
                to: to.clone(),
                away,
            });
        // The echo's text goes on to the other node, not a second copy of it.
        let Event::Private { from, text, .. } = echo else {
            return Ok(()); // private_event makes nothing else
        };
        let origin = self.shared.node_name().to_string();
        let wire = Wire::Private {
            origin,
            from,
            to,
            notice,
            text,
        };
        fx.publish(BackplaneMsg::Private {
            node,
            wire: Box::new(wire),
            answer,
        });
        Ok(())
    }

    /// What became of a private message connection `key` sent to another node.
    pub fn private_sent(
        &self,
        fx: &mut Effects<'_>,
        key: usize,
        to: Nick,
        away: Option<Box<str>>,
        delivered: Result<(), &'static str>,
    ) {
        match delivered {
            Ok(()) => self.tell_sender(fx, key, to, away, false),
            Err(why) => {
                log::info!("a private message to {to} was not delivered: {why}");
                let error = ProtocolError::NotDelivered { nick: to, why };
                self.delivery.reject(fx, key, error);
            }
        }
    }

    /// Tells the other nodes, if any, how connection `key` is now (`was`: its nick
    /// before a rename).
    pub fn tell_cluster(&self, fx: &mut Effects<'_>, key: usize, was: Option<Nick>) {
        self.delivery.tell_cluster(fx, key, was);
    }

    /// Claims `nick` for connection `key`, refusing a nick held here or on another
    /// node with the same error; returns the old nick.
    pub fn claim_nick(
        &self,
        fx: &mut Effects<'_>,
        key: usize,
        nick: &Nick,
    ) -> Result<NickClaim, ProtocolError> {
        self.claim_nick_with(fx, key, nick, true, ClaimFor::Rename)
    }

    /// [`Self::claim_nick`]; `protect` false lets an IRC client take a registered
    /// account's nick before registration, on the condition that it identifies in
    /// time (`--nick-grace`).
    pub fn claim_nick_with(
        &self,
        fx: &mut Effects<'_>,
        key: usize,
        nick: &Nick,
        protect: bool,
        then: ClaimFor,
    ) -> Result<NickClaim, ProtocolError> {
        let session = fx.session(key).ok_or(ProtocolError::BadNick)?;
        if ["NickServ", "ChanServ"]
            .iter()
            .any(|s| s.eq_ignore_ascii_case(nick.as_str()))
        {
            return Err(ProtocolError::NickTaken(nick.clone())); // the server's own
        }
        let owner = self.shared.directory.owns(session.id, nick);
        if protect && !owner && self.shared.registry.is_account(nick) {
            return Err(ProtocolError::NickRegistered(nick.clone()));
        }
        if self.shared.cluster.holds(nick.as_str()) {
            return Err(ProtocolError::NickTaken(nick.clone()));
        }
        // In a cluster, a new nick is this connection's only once Redis says so.
        if self.shared.backplane.is_some() && session.nick.key() != nick.key() {
            let id = session.id;
            let held_here = self.shared.directory.lookup(nick.as_str());
            if claims::guest_node(nick).is_some() || held_here.is_some_and(|h| h != id) {
                return Err(ProtocolError::NickTaken(nick.clone()));
            }
            let nick = nick.clone();
            fx.publish(BackplaneMsg::Claim { id, nick, then });
            return Ok(NickClaim::Asked);
        }
        let old = self.shared.directory.rename(session.id, nick)?;
        if old.key() != nick.key() {
            session.claimed_ms = crate::server::backplane::now_ms();
        }
        session.nick = nick.clone();
        Ok(NickClaim::Done(old))
    }

    /// Redis answered connection `key`'s claim of `nick`: if it won, the nick is
    /// its own in the directory now (returns the old one); if not, the error to
    /// tell it.
    pub fn take_claimed(
        &self,
        fx: &mut Effects<'_>,
        key: usize,
        nick: &Nick,
        answer: ClaimAnswer,
    ) -> Result<Nick, ProtocolError> {
        match answer {
            ClaimAnswer::Won => {}
            ClaimAnswer::Taken => return Err(ProtocolError::NickTaken(nick.clone())),
            ClaimAnswer::Unavailable => return Err(ProtocolError::NickUnavailable(nick.clone())),
        }
        let session = fx.session(key).ok_or(ProtocolError::BadNick)?;
        let id = session.id;
        match self.shared.directory.rename(id, nick) {
            Ok(old) => {
                session.claimed_ms = crate::server::backplane::now_ms();
                session.nick = nick.clone();
                Ok(old)
            }
            Err(error) => {
                // Taken here meanwhile (an account's owner took it back): give the
                // claim back rather than hold a nick nobody uses.
                let nick = nick.clone();
                fx.publish(BackplaneMsg::Release { id, nick });
                Err(error)
            }
        }
    }

    /// `/nick` (or IRC `NICK` after registration) once Redis answered its claim.
    pub fn claimed_rename(
        &mut self,
        fx: &mut Effects<'_>,
        key: usize,
        nick: Nick,
        answer: ClaimAnswer,
    ) {
        match self.take_claimed(fx, key, &nick, answer) {
            Ok(old) => self.announce_rename(fx, key, old, nick),
            Err(error) => self.delivery.reject(fx, key, error),
        }
    }

    /// Another node's user claimed this connection's nick first: rename it to a guest
    /// nick, tell it why, and tell its rooms.
    pub fn lose_nick(&mut self, fx: &mut Effects<'_>, key: usize) {
        self.to_guest(fx, key, ProtocolError::NickTaken);
    }

    /// Renames connection `key` to a fresh guest nick and tells it `why` (made from
    /// the nick it loses), then its rooms.
    pub fn to_guest(&mut self, fx: &mut Effects<'_>, key: usize, why: fn(Nick) -> ProtocolError) {
        let Some(session) = fx.session(key) else {
            return;
        };
        let Some((old, nick)) = self.shared.directory.rename_to_guest(session.id) else {
            return;
        };
        session.nick = nick.clone();
        session.claimed_ms = crate::server::backplane::now_ms();
        if let Some(irc) = session.irc.as_mut() {
            irc.identify_by = None;
        }
        let rooms = session.rooms.to_vec();
        self.delivery.reject(fx, key, why(old.clone()));
        self.renamed(fx, key, old, nick, rooms);
    }

    /// Tells `rooms` and the connection itself that `old` is now `nick`.
    pub(super) fn renamed(
        &mut self,
        fx: &mut Effects<'_>,
        key: usize,
        old: Nick,
        nick: Nick,
        rooms: Vec<RoomName>,
    ) {
        self.delivery.renamed(fx, key, old, nick, rooms);
    }

    /// Who is behind `nick` (IRC WHOIS), here or on another node of the cluster.
    fn whois(&mut self, fx: &mut Effects<'_>, key: usize, nick: &str) -> Outcome {
        let session = fx.session(key).ok_or(ProtocolError::NoRoom)?;
        let info = match self.shared.directory.whois(nick, session.id) {
            Some(info) => info,
            None => (self.shared.cluster.whois(nick, &session.rooms))
                .ok_or_else(|| ProtocolError::NoSuchNick(nick.into()))?,
        };
        let userhost = self
            .shared
            .directory
            .userhosts([&info.nick])
            .pop()
            .flatten();
        let reply = Event::Whois(Box::new(info), userhost);
        self.delivery.reply(fx, key, &reply);
        Ok(())
    }

    /// Sets (`Some`) or clears (`None`) the away message.
    /// IRC members of the same rooms with `away-notify` are told, once each.
    fn away(&mut self, fx: &mut Effects<'_>, key: usize, text: Option<&str>) -> Outcome {
        let session = fx.session(key).ok_or(ProtocolError::NoRoom)?;
        self.shared.directory.set_away(session.id, text);
        let (nick, rooms) = (session.nick.clone(), session.rooms.clone());
        let once = self.delivery.next_once();
        for room in rooms {
            let event = Event::AwayChanged {
                room: room.clone(),
                nick: nick.clone(),
                text: text.map(Into::into),
            };
            self.delivery
                .announce_once(fx, &room, Some(key), event, once);
        }
        self.tell_cluster(fx, key, None);
        self.delivery.reply(fx, key, &Event::Away(text.is_some()));
        Ok(())
    }

    /// Every member with its role, for protocols that list them all (IRC NAMES), and
    /// whether the room is secret; members on other nodes of a cluster follow, with
    /// the roles their nodes told. Nobody, for a room that does not exist or is
    /// secret to `asker`.
    fn members(&self, room: &RoomName, asker: crate::server::token::ConnId) -> (Vec<Member>, bool) {
        let here = self.shared.directory.members(room, asker, usize::MAX);
        let (mut members, _, secret) = self.with_remote(room, here, usize::MAX);
        members.sort_by_cached_key(|m| m.nick.as_str().to_ascii_lowercase());
        (members, secret)
    }

    /// `here` (up to `page` members of `room` on this node, how many more, secret)
    /// completed with the members on other nodes of the cluster, with the roles their
    /// nodes told. A secret room shows members only to a member, who is one here too
    /// (so `here` lists at least the asker); a room with no members here is secret
    /// if its state from elsewhere says so.
    fn with_remote(
        &self,
        room: &RoomName,
        here: Option<(Vec<Member>, usize, bool)>,
        page: usize,
    ) -> (Vec<Member>, usize, bool) {
        let (mut members, mut more, secret) = here.unwrap_or_else(|| {
            let secret = self.shared.cluster.is_secret(room);
            (Vec::new(), 0, secret)
        });
        if secret && members.is_empty() {
            return (members, more, secret);
        }
        let remote = self.shared.cluster.members(room);
        let room_for_more = page.saturating_sub(members.len());
        more += remote.len().saturating_sub(room_for_more);
        members.extend(remote.into_iter().take(room_for_more));
        (members, more, secret)
    }

    /// Every room `asker` may see, with its member count on every node, by name
    /// (a room with no members here is secret if its state from elsewhere says so).
    fn rooms(&self, asker: crate::server::token::ConnId) -> Vec<RoomInfo> {
        let (mut rooms, hidden) = self.shared.directory.visible_rooms(asker);
        let here: HashMap<RoomName, usize> = (rooms.iter().enumerate())
            .map(|(i, info)| (info.room.clone(), i))
            .collect();
        for remote in self.shared.cluster.rooms() {
            match here.get(&remote.room) {
                Some(&i) => rooms[i].members += remote.members,
                None if remote.secret || hidden.contains(&remote.room) => {}
                None => rooms.push(RoomInfo {
                    room: remote.room,
                    members: remote.members,
                    topic: remote.topic,
                }),
            }
        }
        // Registered rooms persist while empty: listed with no members.
        for (room, topic) in self.shared.registry.listed() {
            if !rooms.iter().any(|info| info.room == room) && !hidden.contains(&room) {
                let members = 0;
                rooms.push(RoomInfo {
                    room,
                    members,
                    topic,
                });
            }
        }
        rooms.sort_by(|a, b| a.room.cmp(&b.room));
        rooms
    }

    /// `/nick`: claim the new nick, then tell every room the connection is in.
    fn rename(&mut self, fx: &mut Effects<'_>, key: usize, nick: Nick) -> Outcome {
        if let NickClaim::Done(old) = self.claim_nick(fx, key, &nick)? {
            self.announce_rename(fx, key, old, nick);
        }
        Ok(())
    }

    /// Connection `key` is `nick` now, `old` before: remembered for WHOWAS, logged,
    /// told to it and its rooms.
    fn announce_rename(&mut self, fx: &mut Effects<'_>, key: usize, old: Nick, nick: Nick) {
        let Some(session) = fx.session(key) else {
            return;
        };
        if old != nick {
            self.shared.directory.remember(session.id, &old, false);
        }
        log::info!("{} {old} is now {nick}", session.peer());
        let rooms = session.rooms.to_vec();
        self.renamed(fx, key, old, nick, rooms);
        // A k-line may name nicks: the new one is checked as a new connection is.
        self.klined(fx, key, true);
    }

    /// `/join`: join if the room's modes and bans allow it (checked and joined in one
    /// directory call), make current, tell the room.
    fn join(
        &mut self,
        fx: &mut Effects<'_>,
        key: usize,
        room: RoomName,
        room_key: Option<&str>,
    ) -> Outcome {
        let session = fx.session(key).ok_or(ProtocolError::NoRoom)?;
        let already = session.rooms.contains(&room);
        if !already && session.rooms.len() >= MAX_ROOMS_PER_CONNECTION {
            return Err(ProtocolError::TooManyRooms {
                max: MAX_ROOMS_PER_CONNECTION,
            });
        }
        let remote = self.shared.room_outside(&room);
        let info = self
            .shared
            .directory
            .admit(&room, session.id, &identity(session), room_key, &remote)
            .map_err(|refusal| refusal.error(room.clone()))?;
        let room = info.room.clone(); // the directory's copy: one per room, not per member
        session.current = Some(room.clone());
        let (id, nick, wants_names) = (session.id, session.nick.clone(), session.irc.is_some());
        if !already {
            session.rooms.push(room.clone());
            self.delivery.enter(&room, key);
        }
        let members = info.members + remote.members;
        if !already {
            self.tell_cluster(fx, key, None);
            let event = Event::Joined {
                room: room.clone(),
                nick: nick.clone(),
            };
            // `extended-join` readers get the joiner's account and real name.
            let (account, realname) = self.shared.directory.account_and_realname(id);
            let outgoing = Outgoing::with_extras(event, None, account, realname);
            self.delivery.publish(fx, &room, Some(key), outgoing, true);
            if let Some(text) = info.away.clone() {
                // `away-notify`: a member who joins while away is followed by AWAY.
                let (text, once) = (Some(text), self.delivery.next_once());
                let event = Event::AwayChanged {
                    room: room.clone(),
                    nick,
                    text,
                };
                self.delivery
                    .announce_once(fx, &room, Some(key), event, once);
            }
        }
        let (nicks, secret) = if wants_names {
            self.members(&room, id)
        } else {
            (Vec::new(), false)
        };
        let joiner = wants_names.then(|| self.shared.directory.account_and_realname(id));
        let reply = Event::YouJoined {
            room: room.clone(),
            members,
            topic: info.topic,
            nicks,
            secret,
            joiner: joiner.and_then(|(account, realname)| Some((account, realname?))),
            topic_by: info.topic_by,
        };
        self.delivery.reply(fx, key, &reply);
        // A registered room's access list: status by account, told after the join.
        if let Some(account) =
            (fx.session(key).map(|s| s.id)).and_then(|id| self.shared.directory.account_of(id))
            && !already
        {
            grant(&self.delivery, &self.shared, fx, key, &room, &account);
        }
        let history = self.delivery.limits.history;
        if !already && history > 0 {
            let count = JOIN_HISTORY.min(history);
            self.delivery.ask_history(fx, &room, key, count, true);
        }
        Ok(())
    }

    /// `/leave [ROOM]`: the current room by default; IRC `PART` may give a reason.
    fn leave(
        &mut self,
        fx: &mut Effects<'_>,
        key: usize,
        room: Option<RoomName>,
        reason: Option<&str>,
    ) -> Outcome {
        let session = fx.session(key).ok_or(ProtocolError::NoRoom)?;
        let room = match room {
            Some(room) => room,
            None => session.current.clone().ok_or(ProtocolError::NoRoom)?,
        };
        let Some(pos) = session.rooms.iter().position(|r| *r == room) else {
            let error = match self.shared.directory.has_room(&room) {
                true => ProtocolError::NotInRoom(room),
                false => ProtocolError::NoSuchRoom(room),
            };
            return Err(self
                .shared
                .cluster
                .existing(error, ProtocolError::NotInRoom));
        };
        session.rooms.remove(pos);
        if session.current.as_ref() == Some(&room) {
            session.current = session.rooms.last().cloned();
        }
        let (id, nick) = (session.id, session.nick.clone());
        self.delivery.exit(&room, key);
        // Announce before leaving the directory, so the room's size still counts us.
        let event = Event::Left {
            room: room.clone(),
            nick,
            reason: reason.map(Into::into),
        };
        self.delivery.announce(fx, &room, Some(key), event);
        self.shared.directory.leave(&room, id);
        self.tell_cluster(fx, key, None);
        let reason = reason.map(Into::into);
        self.delivery
            .reply(fx, key, &Event::YouLeft { room, reason });
        Ok(())
    }

    /// `/who [ROOM]`: any room may be listed, joined or not (as IRC's WHO).
    fn who(&mut self, fx: &mut Effects<'_>, key: usize, room: Option<RoomName>) -> Outcome {
        let room = match room {
            Some(room) => room,
            None => current_room(fx, key)?,
        };
        let asker = fx.session(key).map(|s| s.id).ok_or(ProtocolError::NoRoom)?;
        let here = self.shared.directory.members(&room, asker, WHO_PAGE);
        let empty_registered = self.shared.registry.is_registered(&room);
        if here.is_none() && self.shared.cluster.member_count(&room) == 0 && !empty_registered {
            return Err(ProtocolError::NoSuchRoom(room));
        }
        let (nicks, more, _) = self.with_remote(&room, here, WHO_PAGE);
        let hosts = self
            .shared
            .directory
            .userhosts(nicks.iter().map(|m| &m.nick));
        let rows = (nicks.into_iter().zip(hosts))
            .map(|(member, userhost)| WhoRow {
                room: None,
                member,
                userhost,
            })
            .collect();
        self.delivery
            .reply(fx, key, &Event::Who { room, rows, more });
        Ok(())
    }

    /// `/topic [TEXT]` (the current room) or IRC `TOPIC #room [TEXT]`: show it (any
    /// room but a secret one the asker is not in), or set it (members; operators only
    /// under `+t`) and tell the room, the setter included.
    fn topic(
        &mut self,
        fx: &mut Effects<'_>,
        key: usize,
        room: Option<RoomName>,
        text: Option<&str>,
    ) -> Outcome {
        let session = fx.session(key).ok_or(ProtocolError::NoRoom)?;
        let room = match room {
            None => session.current.clone().ok_or(ProtocolError::NoRoom)?,
            Some(room) => room,
        };
        let (id, nick) = (session.id, session.nick.clone());
        let directory = &self.shared.directory;
        match directory.topic_access(&room, id, text.is_some()) {
            // A registered room with no members anywhere: its topic as stored.
            Err(ProtocolError::NoSuchRoom(_))
                if text.is_none()
                    && self.shared.cluster.member_count(&room) == 0
                    && self
                        .shared
                        .registry
                        .listed()
                        .iter()
                        .any(|(r, _)| *r == room) =>
            {
                let topic = (self.shared.registry.room(&room)).and_then(|r| r.snapshot.topic);
                let set_by = None; // not known here
                let reply = Event::Topic {
                    room,
                    topic,
                    set_by,
                };
                self.delivery.reply(fx, key, &reply);
                return Ok(());
            }
            // A room with members only on other nodes: its topic as they told it.
            Err(ProtocolError::NoSuchRoom(_))
                if text.is_none() && self.shared.cluster.member_count(&room) > 0 =>
            {
                let Some(topic) = self.shared.cluster.topic(&room) else {
                    return Err(ProtocolError::NotInRoom(room)); // secret
                };
                let set_by = None; // not known here
                let reply = Event::Topic {
                    room,
                    topic,
                    set_by,
                };
                self.delivery.reply(fx, key, &reply);
                return Ok(());
            }
            other => {
                other.map_err(|e| self.shared.cluster.existing(e, ProtocolError::NotInRoom))?
            }
        }
        let Some(topic) = text else {
            let (topic, set_by) = directory.topic_and_setter(&room);
            let reply = Event::Topic {
                room,
                topic,
                set_by,
            };
            self.delivery.reply(fx, key, &reply);
            return Ok(());
        };
        directory.set_topic(&room, topic);
        save_room(&self.shared, &room, None);
        let event = Event::TopicChanged {
            room: room.clone(),
            nick,
            topic: topic.into(),
        };
        self.delivery.broadcast(fx, &room, None, event);
        Ok(())
    }

    /// `/quit`: tell the rooms now (with the client's reason), say goodbye, then
    /// close once `OK bye` is flushed.
    fn quit(&mut self, fx: &mut Effects<'_>, key: usize, reason: Option<&str>) -> Outcome {
        if let Some(session) = fx.session(key) {
            let rooms = std::mem::take(&mut session.rooms);
            session.current = None;
            let (id, nick) = (session.id, session.nick.clone());
            let who = Departure {
                key,
                id,
                nick: &nick,
                rooms: &rooms,
            };
            self.depart(fx, who, Some(reason.unwrap_or("quit")));
        }
        self.delivery
            .farewell(fx, key, &Event::Bye, CloseReason::Quit);
        Ok(())
    }

    /// Takes a connection out of its rooms (this shard's tables and the directory, in
    /// one lock) and, given a `reason`, announces `quit nick reason` to each room
    /// (during shutdown there is none: everyone is leaving). Used by `/quit` and when
    /// the loop reaps a closed connection.
    pub fn depart(&mut self, fx: &mut Effects<'_>, who: Departure<'_>, reason: Option<&str>) {
        let Departure {
            key,
            id,
            nick,
            rooms,
        } = who;
        self.delivery.depart(fx, (key, id, nick), rooms, reason);
    }

    /// May `session` speak in `room` (`+n`, `+m`, bans)? A member who may not is told
    /// it cannot speak; a non-member, that it is not in the room. Returns the account
    /// the sender is logged in to, if any.
    fn may_speak(&self, session: &Session, room: &RoomName) -> Result<Option<Nick>, ProtocolError> {
        let directory = &self.shared.directory;
        if let Some(account) = directory.may_speak(room, session.id, &identity(session)) {
            return Ok(account);
        }
        Err(if session.rooms.contains(room) {
            ProtocolError::CannotSpeak(room.clone())
        } else {
            ProtocolError::CannotSendTo(room.clone())
        })
    }
}

/// What a command returns: done, or a mistake to answer.
type Outcome = Result<(), ProtocolError>;

/// A connection leaving all its rooms at once.
#[derive(Debug)]
pub struct Departure<'a> {
    /// Its slab key on this shard.
    pub key: usize,
    /// Its identity in the directory.
    pub id: crate::server::token::ConnId,
    /// Its nick, for the quit notices.
    pub nick: &'a Nick,
    /// The rooms it was in.
    pub rooms: &'a [RoomName],
}

/// The sender's current room.
fn current_room(fx: &mut Effects<'_>, key: usize) -> Result<RoomName, ProtocolError> {
    fx.session(key)
        .and_then(|s| s.current.clone())
        .ok_or(ProtocolError::NoRoom)
}
