//! The IRC session: what an IRC connection does that a line connection does not.
//!
//! An IRC client must register (`CAP`, `PASS`, `NICK`, `USER`) before it may chat, is
//! greeted with numerics, answers `PING`s, and asks questions (`MODE`, `ISON`) that
//! the line protocol never asks. This file is that state machine; its state is the
//! [`IrcState`] in each connection's session. Everything that touches chat state
//! (joining, messaging, nicks, topics) is translated into the same protocol-neutral
//! [`Command`]s the line protocol produces and applied by the [`Relay`], so a room is
//! the same room for both: `#rust` here is `rust` there. Every byte it answers with
//! is made in `protocol::irc` ([`IrcReply`]).
//!
//! Registration: `NICK` claims the nick in the shared directory at once (so IRC and
//! line users share one namespace); `USER` supplies the rest. When both have arrived,
//! `CAP` negotiation (if started) has ended and the password (if `--password` is set)
//! matched, the client gets 001–005 and the MOTD. Before that, anything else gets 451.

use std::sync::Arc;

use crate::protocol::irc::{self, IrcReply, Message};
use crate::protocol::{Command, MAX_TOPIC_LEN, Nick, ProtocolError, SayKind};

use super::connection::CloseReason;
use super::effects::Effects;
use super::relay::Relay;
use super::session::IrcState;
use super::shared::Shared;

/// The server's version string in 002/004.
const VERSION: &str = concat!("miochat-", env!("CARGO_PKG_VERSION"));

/// One IRC line being handled: the relay to apply commands through, the effects to
/// answer with, and the connection it came from.
#[derive(Debug)]
pub struct IrcSession<'r, 'f, 'a> {
    /// Where chat commands go.
    pub relay: &'r mut Relay,
    /// How answers get queued.
    pub fx: &'f mut Effects<'a>,
    /// Config and directory.
    pub shared: &'r Shared,
    /// The connection's slab key.
    pub key: usize,
}

impl IrcSession<'_, '_, '_> {
    /// Handles one line from an IRC connection.
    pub fn on_line(mut self, line: &[u8]) {
        let msg = match irc::parse(line) {
            Ok(Some(msg)) => msg,
            Ok(None) => return,
            Err(error) => return self.relay.delivery.reject(self.fx, self.key, error),
        };
        let Some(state) = self.state() else {
            return;
        };
        let registered = state.registered;
        match msg.command.as_str() {
            "CAP" => self.cap(&msg),
            "PASS" | "USER" if registered => self.answer(IrcReply::AlreadyRegistered),
            "PASS" => self.pass(&msg),
            "NICK" => self.nick(&msg, registered),
            "USER" => self.user(&msg),
            "PING" => self.send(irc::pong(
                &self.shared.config.server_name,
                msg.param(0).unwrap_or(""),
            )),
            "PONG" => {}
            "QUIT" if !registered => self.close_with(IrcReply::ClosingLink("Quit")),
            _ if !registered => self.answer(IrcReply::NotRegistered),
            _ => self.command(&msg),
        }
    }

    /// Commands of a registered client.
    fn command(&mut self, msg: &Message<'_>) {
        let cmd = msg.command.as_str();
        match cmd {
            "PRIVMSG" | "NOTICE" => self.message(msg),
            "JOIN" if msg.param(0) == Some("0") => self.leave_all(),
            "JOIN" => self.each_room(msg, Command::Join),
            "PART" => self.each_room(msg, |room| Command::Leave(Some(room))),
            "NAMES" if msg.param(0).is_none() => self.answer(IrcReply::EndOfNamesAll),
            "NAMES" => self.each_room(msg, Command::Names),
            "TOPIC" => self.topic(msg),
            "LIST" => self.apply(Command::Rooms),
            "WHO" => match msg.param(0).and_then(irc::channel) {
                Some(room) => self.apply(Command::Who(Some(room))),
                None => self.answer(IrcReply::EndOfWho(msg.param(0).unwrap_or("*"))),
            },
            "WHOIS" => self.whois(msg),
            "AWAY" => self.apply(Command::Away(msg.param(0))),
            "ISON" => {
                let nicks: Vec<&str> = msg.params.iter().flat_map(|p| p.split(' ')).collect();
                if nicks.iter().all(|n| n.is_empty()) {
                    return self.answer(IrcReply::NeedMoreParams(cmd));
                }
                self.apply(Command::Ison(nicks));
            }
            "USERHOST" if msg.params.is_empty() => self.answer(IrcReply::NeedMoreParams(cmd)),
            "USERHOST" => self.apply(Command::Userhost(
                msg.params.iter().take(5).copied().collect(),
            )),
            "MODE" => self.mode(msg),
            "QUIT" => self.apply(Command::Quit(msg.param(0))),
            _ => self.answer(IrcReply::UnknownCommand(cmd)),
        }
    }

    fn state(&mut self) -> Option<&mut IrcState> {
        self.fx.session(self.key).and_then(|s| s.irc.as_deref_mut())
    }

    fn apply(&mut self, command: Command<'_>) {
        self.relay.apply(self.fx, self.key, command);
    }

    /// Queues bytes made in `protocol::irc` for this connection.
    fn send(&mut self, text: String) {
        self.fx.queue_plain(self.key, Arc::from(text.into_bytes()));
    }

    /// An [`IrcReply`], addressed to the client's nick once it has one (else `*`).
    fn answer(&mut self, reply: IrcReply<'_>) {
        let text = self.render(&reply);
        self.send(text);
    }

    fn render(&mut self, reply: &IrcReply<'_>) -> String {
        let server = &self.shared.config.server_name;
        let Some(session) = self.fx.session(self.key) else {
            return String::new();
        };
        let named = session
            .irc
            .as_ref()
            .is_some_and(|s| s.registered || s.nick_given);
        let me = if named { session.nick.as_str() } else { "*" };
        irc::session_reply(reply, server, me)
    }

    /// A last reply, then close once it is flushed.
    fn close_with(&mut self, reply: IrcReply<'_>) {
        let text = self.render(&reply);
        self.fx
            .close_with(self.key, Arc::from(text.into_bytes()), CloseReason::Quit);
    }

    /// `CAP LS/LIST/REQ/END`: no capabilities are offered yet, but answering lets
    /// modern clients register without waiting for a timeout.
    fn cap(&mut self, msg: &Message<'_>) {
        match msg.param(0).map(str::to_ascii_uppercase).as_deref() {
            Some("LS") => {
                if let Some(state) = self.state().filter(|s| !s.registered) {
                    state.cap_negotiating = true;
                }
                self.answer(IrcReply::Cap {
                    sub: "LS",
                    list: "",
                });
            }
            Some("LIST") => self.answer(IrcReply::Cap {
                sub: "LIST",
                list: "",
            }),
            Some("REQ") => self.answer(IrcReply::Cap {
                sub: "NAK",
                list: msg.param(1).unwrap_or(""),
            }),
            Some("END") => {
                if let Some(state) = self.state() {
                    state.cap_negotiating = false;
                }
                self.try_register();
            }
            _ => self.answer(IrcReply::InvalidCap(msg.param(0).unwrap_or("*"))),
        }
    }

    fn pass(&mut self, msg: &Message<'_>) {
        let Some(given) = msg.param(0) else {
            return self.answer(IrcReply::NeedMoreParams("PASS"));
        };
        let ok = self.shared.config.irc_password.as_deref() == Some(given);
        if let Some(state) = self.state() {
            state.pass_ok = ok;
        }
    }

    fn nick(&mut self, msg: &Message<'_>, registered: bool) {
        let Some(wanted) = msg.param(0) else {
            return self.answer(IrcReply::NoNicknameGiven);
        };
        let Ok(nick) = Nick::parse(wanted) else {
            return self.answer(IrcReply::ErroneousNickname(wanted));
        };
        if registered {
            return self.apply(Command::Nick(nick));
        }
        if self.relay.claim_nick(self.fx, self.key, &nick).is_err() {
            return self.answer(IrcReply::NicknameInUse(nick.as_str()));
        }
        if let Some(state) = self.state() {
            state.nick_given = true;
        }
        self.relay.tell_cluster(self.fx, self.key, None);
        self.try_register();
    }

    fn user(&mut self, msg: &Message<'_>) {
        if msg.params.len() < 4 {
            return self.answer(IrcReply::NeedMoreParams("USER"));
        }
        if let Some(state) = self.state() {
            state.user_given = true;
        }
        self.try_register();
    }

    /// Completes registration once NICK and USER are in and CAP negotiation is over.
    fn try_register(&mut self) {
        let needs_password = self.shared.config.irc_password.is_some();
        let Some(state) = self.state().filter(|s| s.ready_to_register()) else {
            return;
        };
        if needs_password && !state.pass_ok {
            return self.close_with(IrcReply::PasswordIncorrect);
        }
        state.registered = true;
        if let Some(session) = self.fx.session(self.key) {
            log::info!("{} registered on IRC as {}", session.peer, session.nick);
        }
        self.answer(IrcReply::Welcome { version: VERSION });
    }

    /// `PRIVMSG`/`NOTICE` to rooms (`#room`) and nicks, comma lists allowed.
    fn message(&mut self, msg: &Message<'_>) {
        let notice = msg.command == "NOTICE";
        let Some(targets) = msg.param(0) else {
            return self.answer(IrcReply::NoRecipient(&msg.command));
        };
        let (text, action) = irc::clean_text(msg.param(1).unwrap_or(""));
        if text.trim().is_empty() {
            return self.answer(IrcReply::NoTextToSend);
        }
        let kind = match (notice, action) {
            (true, _) => SayKind::Notice,
            (false, true) => SayKind::Action,
            (false, false) => SayKind::Message,
        };
        for target in targets.split(',').filter(|t| !t.is_empty()) {
            let command = match irc::channel(target) {
                Some(room) => Command::SayTo {
                    room,
                    text: &text,
                    kind,
                },
                None if target.starts_with('#') => {
                    self.answer(IrcReply::NoSuchChannel(target));
                    continue;
                }
                None if notice => Command::Notice {
                    to: target,
                    text: &text,
                },
                None => Command::Msg {
                    to: target,
                    text: &text,
                },
            };
            self.apply(command);
        }
    }

    /// `JOIN 0`: leave every room.
    fn leave_all(&mut self) {
        let rooms = self
            .fx
            .session(self.key)
            .map(|s| s.rooms.clone())
            .unwrap_or_default();
        for room in rooms {
            self.apply(Command::Leave(Some(room)));
        }
    }

    /// Applies `make(room)` for each `#room` in the comma list of the first parameter.
    fn each_room<F>(&mut self, msg: &Message<'_>, make: F)
    where
        F: Fn(crate::protocol::RoomName) -> Command<'static>,
    {
        let Some(list) = msg.param(0) else {
            return self.answer(IrcReply::NeedMoreParams(&msg.command));
        };
        for name in list.split(',').filter(|n| !n.is_empty()) {
            match irc::channel(name) {
                Some(room) => self.apply(make(room)),
                None => self.answer(IrcReply::NoSuchChannel(name)),
            }
        }
    }

    fn topic(&mut self, msg: &Message<'_>) {
        let Some(name) = msg.param(0) else {
            return self.answer(IrcReply::NeedMoreParams("TOPIC"));
        };
        let Some(room) = irc::channel(name) else {
            return self.answer(IrcReply::NoSuchChannel(name));
        };
        // "TOPIC #x :" (empty trailing) clears in IRC; miochat keeps an empty topic.
        let text = msg.params.get(1).copied();
        if text.is_some_and(|t| t.len() > MAX_TOPIC_LEN) {
            return self
                .relay
                .delivery
                .reject(self.fx, self.key, ProtocolError::TopicTooLong);
        }
        self.apply(Command::TopicOf { room, text });
    }

    fn whois(&mut self, msg: &Message<'_>) {
        let Some(nick) = msg.params.last().filter(|p| !p.is_empty()) else {
            return self.answer(IrcReply::NoNicknameGiven);
        };
        if self.shared.directory.lookup(nick).is_some() {
            return self.apply(Command::Whois(nick));
        }
        self.answer(IrcReply::NoSuchNick(nick));
        self.answer(IrcReply::EndOfWhois(nick));
    }

    /// Enough `MODE` for clients to be content: rooms are `+nt`, users `+i`, and
    /// nothing can be changed.
    fn mode(&mut self, msg: &Message<'_>) {
        let Some(target) = msg.param(0) else {
            return self.answer(IrcReply::NeedMoreParams("MODE"));
        };
        let me = self.fx.session(self.key).map(|s| s.nick.key());
        let reply = if target.starts_with('#') {
            match (irc::channel(target), msg.param(1)) {
                (None, _) => IrcReply::NoSuchChannel(target),
                (Some(_), None) => IrcReply::ChannelModes(target),
                (Some(_), Some(b))
                    if b.trim_start_matches(['+', '-']).is_empty() || b == "b" || b == "+b" =>
                {
                    IrcReply::EndOfBanList(target)
                }
                (Some(_), Some(_)) => IrcReply::NotChannelOperator(target),
            }
        } else if Nick::parse(target).is_ok_and(|n| Some(n.key()) == me) {
            match msg.param(1) {
                None => IrcReply::UserModes,
                Some(modes) => IrcReply::UserModeChanged(modes),
            }
        } else if self.shared.directory.lookup(target).is_some() {
            IrcReply::CannotChangeOthersModes
        } else {
            IrcReply::NoSuchNick(target)
        };
        self.answer(reply);
    }
}
