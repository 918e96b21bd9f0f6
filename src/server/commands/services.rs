//! Accounts, registered rooms and stored history: the commands that need the store,
//! and what a shard does with the store's answers.
//!
//! Every command here is split in two halves around the store's queue, because a
//! shard never waits for a disk or a password hash:
//!
//! 1. **asking** ([`Services::apply`]): check what can be checked in memory (is the
//!    asker logged in, an operator, the founder?), then `try_send` one job to the
//!    store or auth thread. A full queue is answered at once with `ERR store-busy`;
//!    nothing was changed.
//! 2. **answering** ([`Services::on_stored`]): the store thread committed (or
//!    failed) and sent a [`StoreReply`] through the shard's inbox. The connection may
//!    have gone meanwhile (its generation is checked, as for every message); if not,
//!    it is told `OK` or `ERR`, and what the answer changes in memory (the session's
//!    account, a nick reclaimed from an impostor, roles granted by the access list)
//!    is done now.
//!
//! The in-memory index the first half reads (`registry.rs`) is only changed by the
//! store threads after their commit, so an `OK` is never sent for what is not on disk.

use crate::protocol::modes::{ModeChange, ModeKind};
use crate::protocol::{Command, Event, HistoryQuery, Nick, ProtocolError, Role, RoomName};

use std::sync::Arc;

use crate::protocol::irc::{self, IrcReply};

use crate::server::backplane::handle::{BackplaneMsg, ClaimFor};
use crate::server::commands::Effects;
use crate::server::delivery::Delivery;
use crate::server::inbox::ShardMsg;
use crate::server::registry::Level;
use crate::server::session::{LoginKind, SaslStep};
use crate::server::shared::Shared;
use crate::server::store::scram::{self, Credentials};
use crate::server::store::{
    AccountAnswer, Answer, AuthJob, Job, RoomWrite, StoreHandle, StoreReply, Then,
};
use crate::server::token::ConnId;
use base64ct::{Base64, Encoding};

/// What a command returns: done, or a mistake to answer.
type Outcome = Result<(), ProtocolError>;

/// The nick access grants are announced by (as a services package's `ChanServ`).
pub const CHANSERV: &str = "ChanServ";

/// One store-backed command (or one store answer) being handled for connection `key`.
#[derive(Debug)]
pub struct Services<'r, 'f, 'a> {
    /// How events reach people.
    pub delivery: &'r Delivery,
    /// Config, directory, registry and the store's queues.
    pub shared: &'r Shared,
    /// The turn's effects.
    pub fx: &'f mut Effects<'a>,
    /// The connection.
    pub key: usize,
}

impl Services<'_, '_, '_> {
    fn store(&self) -> Result<&StoreHandle, ProtocolError> {
        self.shared.store.as_ref().ok_or(ProtocolError::NoStore)
    }

    /// The asker's id, nick and account.
    fn asker(&mut self) -> Result<(ConnId, Nick, Option<Nick>), ProtocolError> {
        let session = self.fx.session(self.key).ok_or(ProtocolError::NoRoom)?;
        let account = self.shared.directory.account_of(session.id);
        Ok((session.id, session.nick.clone(), account))
    }

    /// The asker's address.
    fn peer_ip(&mut self) -> Result<std::net::IpAddr, ProtocolError> {
        let session = self.fx.session(self.key).ok_or(ProtocolError::NoRoom)?;
        Ok(session.peer().ip())
    }

    /// The asker's account, or `ERR not-logged-in`.
    fn account(&mut self) -> Result<Nick, ProtocolError> {
        self.asker()?.2.ok_or(ProtocolError::NotLoggedIn)
    }

    fn reply(&mut self, text: String) {
        let event = Event::Done(text.into());
        self.delivery.reply(self.fx, self.key, &event);
    }

    /// Carries out one account, registration or history command.
    pub fn apply(mut self, command: Command<'_>) -> Outcome {
        self.apply_ref(command)
    }

    /// [`Self::apply`], keeping the services for what follows.
    pub fn apply_ref(&mut self, command: Command<'_>) -> Outcome {
        match command {
            Command::Register(password) => self.register(password),
            Command::Login { account, password } => self.login(account, password),
            Command::Logout => self.logout(),
            Command::Passwd { old, new } => {
                let (to, account) = (self.asker()?.0, self.account()?);
                let (old, new, from) = (old.into(), new.into(), self.peer_ip()?);
                self.auth(AuthJob::Passwd {
                    to,
                    account,
                    old,
                    new,
                    from,
                })
            }
            Command::SetPassword(new) => {
                let (to, account) = (self.asker()?.0, self.account()?);
                let new = new.into();
                self.auth(AuthJob::SetPassword { to, account, new })
            }
            Command::Unregister(password) => {
                let (to, account) = (self.asker()?.0, self.account()?);
                if let Some(room) = self.shared.registry.founded_by(&account) {
                    return Err(ProtocolError::FounderOf(room));
                }
                // `/unregister club` meant the room: say so rather than check a
                // password.
                if let Ok(room) = RoomName::parse(password)
                    && self.shared.registry.is_registered(&room)
                {
                    return Err(ProtocolError::Usage(
                        "/unregister #ROOM drops a room (mind the #); /unregister PASSWORD your account",
                    ));
                }
                let (password, from) = (password.into(), self.peer_ip()?);
                self.auth(AuthJob::Unregister {
                    to,
                    account,
                    password,
                    from,
                })
            }
            Command::RegisterRoom(room) => self.register_room(room),
            Command::UnregisterRoom(room) => self.unregister_room(room),
            Command::Access { room, change } => self.access(room, change),
            Command::HistoryOf { room, query } => self.history(room, query),
            other => unreachable!("BUG: {other:?} is not a store command"),
        }
    }

    fn auth(&mut self, job: AuthJob) -> Outcome {
        self.store()?
            .submit_auth(job)
            .map_err(|_| ProtocolError::StoreBusy)
    }

    fn submit(&mut self, job: Job) -> Outcome {
        self.store()?
            .submit(job)
            .map_err(|_| ProtocolError::StoreBusy)
    }

    /// `/register PASSWORD`: the current nick, if it is not a guest nick.
    fn register(&mut self, password: &str) -> Outcome {
        self.store()?;
        let (to, nick, _) = self.asker()?;
        if is_guest(&nick) {
            return Err(ProtocolError::Usage(
                "/nick NAME first: guest nicks cannot be registered",
            ));
        }
        if self.shared.registry.is_account(&nick) {
            return Err(ProtocolError::AccountExists(nick));
        }
        let password = password.into();
        self.auth(AuthJob::Register {
            to,
            account: nick,
            password,
        })
    }

    fn login(&mut self, account: Option<&str>, password: &str) -> Outcome {
        self.store()?;
        let session = self.fx.session(self.key).ok_or(ProtocolError::NoRoom)?;
        let (to, from) = (session.id, session.peer().ip());
        let account = match account {
            Some(name) => Nick::parse(name)?,
            None => session.nick.clone(),
        };
        let password = password.into();
        self.auth(AuthJob::Login {
            to,
            account,
            password,
            from,
        })
    }

    fn logout(&mut self) -> Outcome {
        self.store()?;
        let account = self.account()?;
        let id = self.fx.session(self.key).ok_or(ProtocolError::NoRoom)?.id;
        self.shared.directory.set_account(id, None);
        self.tell_rooms(None);
        log::info!("{account} logged out");
        self.reply(format!("logout {account}"));
        Ok(())
    }

    /// `/register #ROOM`: by a logged-in operator of the room, never the lobby.
    fn register_room(&mut self, room: RoomName) -> Outcome {
        self.store()?;
        let founder = self.account()?;
        let (to, ..) = self.asker()?;
        if room.is_lobby() {
            return Err(ProtocolError::NotOperator(room));
        }
        let directory = &self.shared.directory;
        if directory.role_of(&room, to) != Some(Role::Operator) {
            return Err(match directory.has_room(&room) {
                true => ProtocolError::NotOperator(room),
                false => ProtocolError::NotInRoom(room),
            });
        }
        if self.shared.registry.is_registered(&room) {
            return Err(ProtocolError::AlreadyRegistered(room));
        }
        let snapshot = directory
            .room_snapshot(&room)
            .ok_or_else(|| ProtocolError::NotInRoom(room.clone()))?;
        let then = Then {
            to,
            reply: Some(Event::Done(
                format!("room-registered {room} {founder}").into(),
            )),
            broadcast: None,
        };
        let write = RoomWrite::Register {
            room,
            founder,
            snapshot,
        };
        self.submit(Job::Room(Box::new(write), Some(Box::new(then))))
    }

    /// `/unregister #ROOM`: its founder only.
    fn unregister_room(&mut self, room: RoomName) -> Outcome {
        self.store()?;
        let account = self.account()?;
        let (to, ..) = self.asker()?;
        let registered = (self.shared.registry.room(&room))
            .ok_or_else(|| ProtocolError::RoomNotRegistered(room.clone()))?;
        if registered.founder.key() != account.key() {
            return Err(ProtocolError::NotFounder(room));
        }
        let then = Then {
            to,
            reply: Some(Event::Done(format!("room-unregistered {room}").into())),
            broadcast: None,
        };
        self.submit(Job::Room(
            Box::new(RoomWrite::Drop { room }),
            Some(Box::new(then)),
        ))
    }

    /// `/access #ROOM`: the list, to anyone; `add`/`del`: the founder, or an
    /// operator by access for voice grants.
    fn access(&mut self, room: RoomName, change: Option<(&str, Option<Level>)>) -> Outcome {
        self.store()?;
        let registered = (self.shared.registry.room(&room))
            .ok_or_else(|| ProtocolError::RoomNotRegistered(room.clone()))?;
        let Some((nick, level)) = change else {
            let mut text = format!("access {room} {}=founder", registered.founder);
            for (account, level) in &registered.access {
                text.push_str(&format!(" {account}={}", level.as_str()));
            }
            self.reply(text);
            return Ok(());
        };
        let asker = self.account()?;
        let account = Nick::parse(nick)?;
        // The founder grants and removes anything; an operator by access only voice
        // (it may not add operators, nor take another operator's grant away).
        let founder = registered.founder.key() == asker.key();
        let touches_op =
            level == Some(Level::Op) || registered.level_of(&account) == Some(Level::Op);
        let may = founder || (registered.level_of(&asker) == Some(Level::Op) && !touches_op);
        if !may {
            return Err(ProtocolError::NotFounder(room));
        }
        if !self.shared.registry.is_account(&account) {
            return Err(ProtocolError::NoAccount(account));
        }
        let (to, ..) = self.asker()?;
        let text = match level {
            Some(level) => format!("access {room} add {account} {}", level.as_str()),
            None => format!("access {room} del {account}"),
        };
        let then = Then {
            to,
            reply: Some(Event::Done(text.into())),
            broadcast: None,
        };
        let write = RoomWrite::Access {
            room,
            account,
            level,
        };
        self.submit(Job::Room(Box::new(write), Some(Box::new(then))))
    }

    /// `/history ROOM N` and `/history ROOM since ...`: a member of the room reads
    /// the store (with `--data-dir none`, the newest lines come from memory).
    fn history(&mut self, room: RoomName, query: HistoryQuery) -> Outcome {
        let session = self.fx.session(self.key).ok_or(ProtocolError::NoRoom)?;
        if !session.rooms.contains(&room) {
            return Err(ProtocolError::NotInRoom(room));
        }
        let to = session.id;
        if self.shared.store.is_none() {
            let HistoryQuery::Latest(count) = query else {
                return Err(ProtocolError::NoStore);
            };
            let count = count.min(self.delivery.limits.history);
            self.delivery
                .ask_history(self.fx, &room, self.key, count, false);
            return Ok(());
        }
        let read = Job::Read {
            to,
            room,
            query,
            quiet_if_empty: false,
        };
        self.submit(read)
    }

    /// `CHATHISTORY TARGETS`: which of the asker's rooms had lines in `span`.
    pub fn targets(&mut self, span: (u64, u64), limit: usize) -> Outcome {
        let session = self.fx.session(self.key).ok_or(ProtocolError::NoRoom)?;
        let (to, rooms) = (session.id, session.rooms.to_vec());
        self.submit(Job::Targets {
            to,
            rooms,
            span,
            limit,
        })
    }

    /// An answer from the store for this connection.
    pub fn on_stored(mut self, reply: StoreReply) {
        match reply.answer {
            Answer::Failed(error) => match self.take_login_kind() {
                Some(LoginKind::Sasl) => {
                    self.forget_sasl();
                    self.irc_reply(IrcReply::SaslFailed)
                }
                Some(LoginKind::Register) => self.register_failed(&error),
                _ => self.delivery.reject(self.fx, self.key, error),
            },
            Answer::History { room, lines } => {
                let event = Event::Playback { room, lines };
                self.delivery.reply(self.fx, self.key, &event);
            }
            Answer::Done(then) => {
                if let Some(reply) = &then.reply {
                    self.delivery.reply(self.fx, self.key, reply);
                }
                if let Some((room, event)) = then.broadcast {
                    self.delivery.broadcast(self.fx, &room, None, event);
                }
            }
            Answer::Account(answer) => self.on_account(answer),
            Answer::Scram(found) => self.scram_challenge(found.0, found.1),
            Answer::Targets(targets) => {
                let event = Event::HistoryTargets(targets);
                self.delivery.reply(self.fx, self.key, &event);
            }
        }
    }

    /// `FAIL REGISTER CODE ACCOUNT :TEXT` for an IRC `REGISTER` that failed.
    pub fn register_failed(&mut self, error: &ProtocolError) {
        let code = match error {
            ProtocolError::AccountExists(_) => "ACCOUNT_EXISTS",
            ProtocolError::WeakPassword { .. } => "WEAK_PASSWORD",
            ProtocolError::Usage(_) | ProtocolError::BadNick => "BAD_ACCOUNT_NAME",
            _ => "TEMPORARILY_UNAVAILABLE",
        };
        let account = self.fx.session(self.key).map(|s| s.nick.to_string());
        let (account, text) = (account.unwrap_or_default(), error.to_string());
        self.irc_reply(IrcReply::Fail {
            command: "REGISTER",
            code,
            context: &account,
            text: &text,
        });
    }

    /// SCRAM: the credentials are in; send the server's first message (salt, rounds
    /// and the combined nonce), unless the client gave up meanwhile.
    fn scram_challenge(&mut self, account: Nick, creds: Credentials) {
        let Some(irc) = self.fx.session(self.key).and_then(|s| s.irc.as_mut()) else {
            return;
        };
        let SaslStep::ScramLookup(mut exchange) = std::mem::take(&mut irc.sasl) else {
            return;
        };
        let server_nonce = Base64::encode_string(&argon2::password_hash::generate_salt());
        exchange.nonce = format!("{}{}", exchange.nonce, server_nonce.trim_end_matches('='));
        exchange.server_first = scram::server_first(&exchange.nonce, &creds);
        exchange.account = account;
        let data = Base64::encode_string(exchange.server_first.as_bytes());
        exchange.credentials = Some(creds);
        irc.sasl = SaslStep::ScramFinal(exchange);
        self.irc_reply(IrcReply::AuthenticateData(&data));
    }

    /// SCRAM succeeded (the client acknowledged the server's signature): the
    /// connection is logged in to `account`, as after a PLAIN login.
    pub fn sasl_logged_in(mut self, account: Nick) {
        let Some(irc) = self.fx.session(self.key).and_then(|s| s.irc.as_mut()) else {
            return;
        };
        irc.login_pending = Some(LoginKind::Sasl);
        log::info!("logged in as {account} by SCRAM-SHA-256");
        self.on_account(AccountAnswer::LoggedIn(account));
    }

    /// A failed SASL exchange is over: the next `AUTHENTICATE` starts a new one.
    fn forget_sasl(&mut self) {
        if let Some(irc) = self.fx.session(self.key).and_then(|s| s.irc.as_mut()) {
            irc.sasl = SaslStep::Idle;
        }
    }

    /// How an IRC client asked to log in, if it did (cleared: one answer each).
    fn take_login_kind(&mut self) -> Option<LoginKind> {
        let session = self.fx.session(self.key)?;
        session.irc.as_mut()?.login_pending.take()
    }

    /// An IRC reply made for this connection alone.
    fn irc_reply(&mut self, reply: IrcReply<'_>) {
        let server = self.shared.config.server_name.clone();
        let Some(session) = self.fx.session(self.key) else {
            return;
        };
        let named = (session.irc.as_ref()).is_some_and(|s| s.registered || s.nick_given);
        let me = if named { session.nick.as_str() } else { "*" };
        let text = irc::session_reply(&reply, &server, me, Some(&session.userhost));
        self.fx
            .queue_plain(self.key, Arc::from(crate::protocol::raw::to_wire(text)));
    }

    fn on_account(&mut self, answer: AccountAnswer) {
        let kind = self.take_login_kind();
        let (text, account) = match &answer {
            AccountAnswer::Registered(nick) => (format!("registered {nick}"), Some(nick)),
            AccountAnswer::LoggedIn(nick) => (format!("login {nick}"), Some(nick)),
            AccountAnswer::PasswordChanged(_) => ("passwd".to_string(), None),
            AccountAnswer::Unregistered(nick) => (format!("unregistered {nick}"), None),
        };
        let Some(session) = self.fx.session(self.key) else {
            return;
        };
        let changes = !matches!(answer, AccountAnswer::PasswordChanged(_));
        if changes {
            let (id, account) = (session.id, account.cloned());
            self.shared.directory.set_account(id, account);
        }
        let irc = session.irc.is_some();
        match (&answer, kind) {
            (AccountAnswer::LoggedIn(nick), Some(LoginKind::Sasl)) => {
                self.irc_reply(IrcReply::SaslSuccess(nick.as_str()))
            }
            (AccountAnswer::Registered(nick), Some(LoginKind::Register)) => {
                self.irc_reply(IrcReply::RegisterSuccess(nick.as_str()))
            }
            _ => self.reply(text),
        }
        if changes {
            let now = match &answer {
                AccountAnswer::Registered(nick) | AccountAnswer::LoggedIn(nick) => Some(nick),
                _ => None,
            };
            self.tell_rooms(now.cloned());
        }
        let (AccountAnswer::LoggedIn(nick) | AccountAnswer::Registered(nick)) = answer else {
            return;
        };
        // The line protocol takes the account's nick at login; an IRC client keeps
        // the nick it chose, unless it asked for the account's back (REGAIN).
        if !irc || kind == Some(LoginKind::Regain) {
            self.take_nick(&nick);
        }
        if let Some(session) = self.fx.session(self.key)
            && session.nick.key() == nick.key()
            && let Some(irc) = session.irc.as_mut()
        {
            irc.identify_by = None;
        }
        self.grant_all(&nick);
    }

    /// `account-notify`: the connection's rooms hear that it logged in to `account`
    /// (or out: `None`), once per IRC reader with the capability.
    fn tell_rooms(&mut self, account: Option<Nick>) {
        let Some(session) = self.fx.session(self.key) else {
            return;
        };
        let (nick, rooms) = (session.nick.clone(), session.rooms.clone());
        let once = self.delivery.next_once();
        for room in rooms {
            let event = Event::AccountChanged {
                room: room.clone(),
                nick: nick.clone(),
                account: account.clone(),
            };
            self.delivery
                .announce_once(self.fx, &room, Some(self.key), event, once);
        }
    }

    /// The account's owner logged in: it gets its nick, and whoever held it is
    /// renamed (on its own shard) and told why.
    fn take_nick(&mut self, account: &Nick) {
        let Some(session) = self.fx.session(self.key) else {
            return;
        };
        if session.nick == *account {
            return;
        }
        let id = session.id;
        let Some((old, renamed)) = self.shared.directory.reclaim(id, account) else {
            return;
        };
        if let Some(session) = self.fx.session(self.key) {
            session.nick = account.clone();
            session.claimed_ms = crate::server::backplane::now_ms();
        }
        if self.shared.backplane.is_some() {
            let (nick, then) = (account.clone(), ClaimFor::Takeover);
            self.fx.publish(BackplaneMsg::Claim { id, nick, then });
        }
        if let Some((holder, guest)) = renamed {
            log::info!("{account} logged in: its holder is now {guest}");
            let lost = ShardMsg::NickReclaimed {
                id: holder,
                old: account.clone(),
                new: guest,
            };
            match holder.shard() == self.delivery.index() {
                true => reclaimed(self.delivery, self.fx, lost),
                false => self.fx.send(holder.shard(), lost),
            }
        }
        let rooms = self.rooms();
        self.delivery
            .renamed(self.fx, self.key, old, account.clone(), rooms);
    }

    /// The rooms the connection is in.
    fn rooms(&mut self) -> Vec<RoomName> {
        (self.fx.session(self.key))
            .map(|s| s.rooms.to_vec())
            .unwrap_or_default()
    }

    /// The access list's grants in every registered room the connection is in.
    fn grant_all(&mut self, account: &Nick) {
        let rooms = self.rooms();
        for room in rooms {
            grant(
                self.delivery,
                self.shared,
                self.fx,
                self.key,
                &room,
                account,
            );
        }
    }
}

/// Gives connection `key` (logged in to `account`) what the access list of the
/// registered `room` grants it, and tells the room as `ChanServ`.
pub fn grant(
    delivery: &Delivery,
    shared: &Shared,
    fx: &mut Effects<'_>,
    key: usize,
    room: &RoomName,
    account: &Nick,
) {
    let Some(level) = shared.registry.level(room, account) else {
        return;
    };
    let Some(session) = fx.session(key) else {
        return;
    };
    let (id, nick) = (session.id, session.nick.clone());
    let op = level == Level::Op;
    if !shared.directory.grant(room, id, op) {
        return;
    }
    let kind = match op {
        true => ModeKind::Op(nick.as_str().into()),
        false => ModeKind::Voice(nick.as_str().into()),
    };
    let by = Nick::parse(CHANSERV).expect("BUG: ChanServ is a valid nick");
    let event = Event::ModeChanged {
        room: room.clone(),
        by,
        changes: vec![ModeChange { set: true, kind }],
    };
    delivery.broadcast(fx, room, None, event);
    delivery.tell_cluster(fx, key, None);
}

/// This connection lost its nick to the account's owner (the directory already
/// renamed it): tell it why, and its rooms.
pub fn reclaimed(delivery: &Delivery, fx: &mut Effects<'_>, lost: ShardMsg) {
    let ShardMsg::NickReclaimed { id, old, new } = lost else {
        return;
    };
    let Some(session) = fx.session(id.key()).filter(|s| s.id == id) else {
        return;
    };
    session.nick = new.clone();
    session.claimed_ms = crate::server::backplane::now_ms();
    if let Some(irc) = session.irc.as_mut() {
        irc.identify_by = None;
    }
    let rooms = session.rooms.to_vec();
    let key = id.key();
    delivery.reject(fx, key, ProtocolError::NickRegistered(old.clone()));
    delivery.renamed(fx, key, old, new, rooms);
}

/// True for the nicks the server hands out (`guestN`, `guestN-node`).
pub fn is_guest(nick: &Nick) -> bool {
    let lower = nick.as_str().to_ascii_lowercase();
    let rest = lower.strip_prefix("guest").unwrap_or("");
    rest.starts_with(|c: char| c.is_ascii_digit())
}
