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
//! line users share one namespace); `USER` supplies the user name and real name
//! (bytes that are not UTF-8 in it, as in any line, are kept, never refused: see
//! `protocol/raw.rs`). When both have arrived,
//! `CAP` negotiation (if started) has ended and the password (if `--password` is set)
//! matched, the client gets 001–005 and the MOTD. Before that, anything else gets 451.

use std::sync::Arc;

use crate::protocol::irc::{self, IrcReply, MAX_AWAY_LEN, Message};
use crate::protocol::mask::host_of;
use crate::protocol::raw;
use crate::protocol::{
    AccessLevel, Command, Event, MAX_TOPIC_LEN, ModeRequest, Nick, NoticeKind, ProtocolError,
    SayKind, modes,
};

use crate::server::backplane::{ClaimAnswer, ClaimFor};
use crate::server::close_reason::CloseReason;
use crate::server::commands::Effects;
use crate::server::oper;
use crate::server::relay::{NickClaim, Relay};
use crate::server::services::Services;
use crate::server::session::{IrcState, LoginKind, SaslStep, ScramExchange};
use crate::server::shared::Shared;
use crate::server::store::AuthJob;
use crate::server::store::scram;
use base64ct::{Base64, Encoding};

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
    /// Lines may carry up to [`irc::MAX_CLIENT_TAGS`] bytes of tags before the 510
    /// bytes RFC 2812 allows; more in either part is answered with 417.
    pub fn on_line(mut self, line: &[u8]) {
        let (tags, body) = match line.strip_prefix(b"@") {
            Some(tagged) => match tagged.iter().position(|&b| b == b' ') {
                Some(at) => (at + 2, tagged.len() - at - 1),
                None => (line.len(), 0),
            },
            None => (0, line.len()),
        };
        if tags > irc::MAX_CLIENT_TAGS || body > irc::MAX_IRC_LINE {
            let max = irc::MAX_IRC_LINE;
            return self.relay.delivery.reject(
                self.fx,
                self.key,
                ProtocolError::LineTooLong { max },
            );
        }
        let text = irc::decode(line);
        if irc::has_forbidden_chars(&text) {
            let error = ProtocolError::ControlChars;
            return self.relay.delivery.reject(self.fx, self.key, error);
        }
        let Some(msg) = irc::parse(&text) else {
            return;
        };
        let Some(state) = self.state() else {
            return;
        };
        let registered = state.registered;
        match msg.command.as_str() {
            "CAP" => self.cap(&msg),
            "AUTHENTICATE" if registered => self.answer(IrcReply::AlreadyRegistered),
            "AUTHENTICATE" => self.authenticate(&msg),
            "REGISTER" if !registered => self.answer(IrcReply::Fail {
                command: "REGISTER",
                code: "COMPLETE_CONNECTION_REQUIRED",
                context: "*",
                text: "register after connecting (your nick becomes the account)",
            }),
            "PASS" | "USER" if registered => self.answer(IrcReply::AlreadyRegistered),
            "PASS" => self.pass(&msg),
            "NICK" => self.nick(&msg, registered),
            "USER" => self.user(&msg),
            "PING" => match msg.param(0) {
                Some(token) => self.send(irc::pong(&self.shared.config.server_name, token)),
                None => self.answer(IrcReply::NoOrigin),
            },
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
            "TAGMSG" if self.has_cap("message-tags") => self.tag_message(msg),
            "JOIN" if msg.param(0) == Some("0") => self.leave_all(),
            "JOIN" => self.join(msg),
            "PART" => {
                let reason = msg.param(1);
                self.each_room(msg, |room| Command::Part { room, reason });
            }
            "NAMES" => self.names(msg),
            "TOPIC" => self.topic(msg),
            "LIST" => self.list(msg),
            "WHO" => match msg.param(0) {
                Some(name) if name.starts_with('#') => match irc::channel(name) {
                    Some(room) => self.apply(Command::Who(Some(room))),
                    None => self.answer(IrcReply::EndOfWho(name)),
                },
                mask => self.apply(Command::WhoMask(mask.unwrap_or("*"))),
            },
            "WHOIS" => self.whois(msg),
            "WHOWAS" => self.whowas(msg),
            "LUSERS" => self.apply(Command::Lusers),
            "KICK" => self.kick(msg),
            "INVITE" => self.invite(msg),
            "AWAY" => {
                let text = msg.param(0).map(|t| cut(t, MAX_AWAY_LEN));
                self.apply(Command::Away(text));
            }
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
            "CHATHISTORY" => self.chathistory(msg),
            "REGISTER" => self.register(msg),
            "QUIT" => self.apply(Command::Quit(msg.param(0))),
            "OPER" | "KILL" | "KLINE" | "UNKLINE" | "KLINES" | "STATS" | "WALLOPS" | "WALL"
            | "REHASH" | "MOTD" => self.operator(msg),
            _ => self.answer(IrcReply::UnknownCommand(cmd)),
        }
    }

    /// The server operators' commands (and `MOTD`), as the line protocol's.
    fn operator(&mut self, msg: &Message<'_>) {
        let cmd = msg.command.as_str();
        let (first, second) = (msg.param(0), msg.param(1));
        let command = match (cmd, first, second) {
            ("OPER", Some(name), Some(password)) => Command::Oper { name, password },
            ("KILL", Some(nick), Some(reason)) if !reason.is_empty() => {
                Command::Kill { nick, reason }
            }
            ("KLINE", Some(mask), _) => match kline(mask, second, msg.param(2)) {
                Some(command) => command,
                None => {
                    return self.relay.delivery.reject(
                        self.fx,
                        self.key,
                        ProtocolError::Usage("KLINE mask [duration] [:reason]"),
                    );
                }
            },
            ("UNKLINE", Some(mask), _) => Command::Unkline(mask),
            ("KLINES", ..) => Command::Klines,
            ("STATS", Some(letter), _) if letter.eq_ignore_ascii_case("k") => Command::Klines,
            ("STATS", ..) => Command::Stats,
            ("WALLOPS" | "WALL", Some(text), _) if !text.is_empty() => match cmd {
                "WALLOPS" => Command::Wallops(text),
                _ => Command::Wall(text),
            },
            ("REHASH", ..) => Command::Rehash,
            ("MOTD", ..) => Command::Motd,
            _ => return self.answer(IrcReply::NeedMoreParams(cmd)),
        };
        self.apply(command);
    }

    /// `MODE me modes`: `-o` stops being an operator, `+s`/`-s` takes server notices
    /// or not (operators only); the change is echoed as asked.
    fn own_modes(&mut self, modes: &str) {
        let mut set = true;
        for letter in modes.chars() {
            match letter {
                '+' | '-' => set = letter == '+',
                'o' if !set => self.stop_being_operator(),
                's' => {
                    let session = self.fx.session(self.key);
                    if let Some(oper) = session.and_then(|s| s.oper.as_mut()) {
                        oper.snotices = set;
                    }
                }
                _ => {}
            }
        }
        self.answer(IrcReply::UserModeChanged(modes));
    }

    /// `MODE me -o`.
    fn stop_being_operator(&mut self) {
        let Some(session) = self.fx.session(self.key) else {
            return;
        };
        if let Some(oper) = session.oper.take() {
            log::info!(
                "{} {} is no longer operator {}",
                session.peer(),
                session.nick,
                oper.name
            );
            let (delivery, opers) = (&self.relay.delivery, &mut self.relay.opers);
            oper::drop_oper(delivery, self.shared, opers, self.key);
        }
    }

    /// True if the client enabled the IRCv3 capability `name`.
    fn has_cap(&mut self, name: &str) -> bool {
        self.state().is_some_and(|s| s.caps.has(name))
    }

    /// The client tags of `msg` if the client enabled `message-tags` (else none).
    fn client_tags<'m>(&mut self, msg: &'m Message<'_>) -> Option<&'m str> {
        let wanted = self.has_cap("message-tags") && !msg.client_tags.is_empty();
        wanted.then_some(msg.client_tags.as_str())
    }

    /// `TAGMSG target[,target]`: client tags alone (IRCv3 message-tags).
    fn tag_message(&mut self, msg: &Message<'_>) {
        let Some(targets) = msg.param(0) else {
            return self.answer(IrcReply::NeedMoreParams("TAGMSG"));
        };
        let tags = self.client_tags(msg);
        for target in targets.split(',').filter(|t| !t.is_empty()) {
            self.relay
                .apply_tagged(self.fx, self.key, Command::TagMsg(target), tags);
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
        self.fx.queue_plain(self.key, Arc::from(raw::to_wire(text)));
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
        irc::session_reply(reply, server, me, Some(&session.userhost))
    }

    /// A last reply, then close once it is flushed.
    fn close_with(&mut self, reply: IrcReply<'_>) {
        let text = self.render(&reply);
        self.fx
            .close_with(self.key, Arc::from(raw::to_wire(text)), CloseReason::Quit);
    }

    /// `CAP LS/LIST/REQ/END` (IRCv3 capability negotiation): `LS` lists
    /// [`irc::CAPABILITIES`] and holds registration until `END`; `REQ` enables or
    /// disables a whole list at once (`ACK`) or nothing (`NAK`). The set offered never
    /// changes while the server runs, so `cap-notify` never has a `NEW` or `DEL` to
    /// send.
    fn cap(&mut self, msg: &Message<'_>) {
        match msg.param(0).map(str::to_ascii_uppercase).as_deref() {
            Some("LS") => {
                if let Some(state) = self.state().filter(|s| !s.registered) {
                    state.cap_negotiating = true;
                }
                let list = irc::CAPABILITIES.join(" ");
                self.answer(IrcReply::Cap {
                    sub: "LS",
                    list: &list,
                });
            }
            Some("LIST") => {
                let list = self.state().map(|s| s.caps.list()).unwrap_or_default();
                self.answer(IrcReply::Cap {
                    sub: "LIST",
                    list: &list,
                });
            }
            Some("REQ") => self.cap_request(msg.param(1).unwrap_or("")),
            Some("END") => {
                if let Some(state) = self.state() {
                    state.cap_negotiating = false;
                }
                self.try_register();
            }
            _ => self.answer(IrcReply::InvalidCap(msg.param(0).unwrap_or("*"))),
        }
    }

    /// `CAP REQ :a -b`: all or nothing.
    fn cap_request(&mut self, list: &str) {
        let Some(session) = self.fx.session(self.key) else {
            return;
        };
        let Some(irc) = session.irc.as_mut() else {
            return;
        };
        let sub = match irc.caps.request(list) {
            Some(caps) => {
                irc.caps = caps;
                if !irc.registered {
                    irc.cap_negotiating = true;
                }
                session.echo = caps.has("echo-message");
                "ACK"
            }
            None => "NAK",
        };
        self.answer(IrcReply::Cap {
            sub,
            list: list.trim(),
        });
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
        // A registered account's nick may be taken before registration: the client
        // then has --nick-grace to identify (SASL may still come before CAP END).
        let then = ClaimFor::IrcRegistration;
        match (self.relay).claim_nick_with(self.fx, self.key, &nick, false, then) {
            Ok(NickClaim::Done(_)) => self.nick_taken(nick),
            Ok(NickClaim::Asked) => {} // registration waits for Redis's answer
            Err(error) => self.nick_refused(&nick, error),
        }
    }

    /// Redis answered the claim of a `NICK` sent before registration ended.
    pub fn nick_claimed(mut self, nick: Nick, answer: ClaimAnswer) {
        if self.state().is_some_and(|s| s.registered) {
            // A second NICK, answered after registration ended: an ordinary rename.
            return self.relay.claimed_rename(self.fx, self.key, nick, answer);
        }
        match self.relay.take_claimed(self.fx, self.key, &nick, answer) {
            Ok(_) => self.nick_taken(nick),
            Err(error) => self.nick_refused(&nick, error),
        }
    }

    /// 433 for a nick in use, 437 while a cluster cannot tell.
    fn nick_refused(&mut self, nick: &Nick, error: ProtocolError) {
        match error {
            ProtocolError::NickUnavailable(_) => {
                self.relay.delivery.reject(self.fx, self.key, error)
            }
            _ => self.answer(IrcReply::NicknameInUse(nick.as_str())),
        }
    }

    /// The connection holds `nick` before registration: registration may go on.
    fn nick_taken(&mut self, nick: Nick) {
        let protected = self.shared.registry.is_account(&nick);
        let grace = self.shared.config.nick_grace;
        let Some(session) = self.fx.session(self.key) else {
            return;
        };
        let owner = self.shared.directory.owns(session.id, &nick);
        if let Some(state) = session.irc.as_mut() {
            state.nick_given = true;
            state.identify_by = (protected && !owner).then(|| std::time::Instant::now() + grace);
        }
        self.relay.tell_cluster(self.fx, self.key, None);
        self.try_register();
    }

    /// `USER name mode unused :real name`: all four, and a real name that is not
    /// empty, or 461.
    fn user(&mut self, msg: &Message<'_>) {
        let Some(realname) = msg.params.get(3).filter(|r| !r.trim().is_empty()) else {
            return self.answer(IrcReply::NeedMoreParams("USER"));
        };
        let user = msg.params.first().copied().unwrap_or("");
        if let Some(session) = self.fx.session(self.key) {
            session.userhost = session.userhost.with_user(user);
        }
        if let Some(state) = self.state() {
            state.user_given = true;
            state.realname = Some(cut(realname, MAX_REALNAME_LEN).into());
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
        let realname = state.realname.take().unwrap_or_default();
        // Its identity is known now: a k-line keeps it out before any welcome.
        if self.relay.klined(self.fx, self.key, false) {
            return;
        }
        let Some(session) = self.fx.session(self.key) else {
            return;
        };
        let (peer, nick) = (session.peer(), session.nick.clone());
        log::info!("{peer} registered on IRC as {nick}");
        let userhost = session.userhost.clone();
        (self.shared.directory).register(session.id, &realname, userhost);
        self.answer(IrcReply::Welcome { version: VERSION });
        let lines = self.shared.operators.get().motd.clone();
        let motd = Event::Motd {
            lines,
            asked: false,
        };
        self.relay.delivery.reply(self.fx, self.key, &motd);
        let grace = self.shared.config.nick_grace.as_secs();
        if self.state().is_some_and(|s| s.identify_by.is_some()) {
            self.answer(IrcReply::IdentifyWithin(grace));
        }
        let text = || format!("{nick} ({}) registered (irc)", host_of(peer.ip()));
        self.relay.notice(self.fx, NoticeKind::Connect, text);
    }

    /// SASL, before registration ends: PLAIN (`AUTHENTICATE PLAIN`, then the base64
    /// of `authzid NUL account NUL password`) or SCRAM-SHA-256 (RFC 7677: the client's
    /// first message, the server's with salt and rounds, the client's proof, the
    /// server's signature, `+`). Passwords are checked and credentials looked up on
    /// the auth thread; the answers (900/903 or 904) come back through the inbox.
    fn authenticate(&mut self, msg: &Message<'_>) {
        let Some(param) = msg.param(0) else {
            return self.answer(IrcReply::NeedMoreParams("AUTHENTICATE"));
        };
        let Some(state) = self.state() else {
            return;
        };
        let step = std::mem::take(&mut state.sasl);
        if param == "*" {
            state.login_pending = None;
            return self.answer(IrcReply::SaslAborted);
        }
        match step {
            SaslStep::Idle if param.eq_ignore_ascii_case("PLAIN") => {
                state.sasl = SaslStep::Plain;
                self.answer(IrcReply::AuthenticateGo)
            }
            SaslStep::Idle if param.eq_ignore_ascii_case("SCRAM-SHA-256") => {
                state.sasl = SaslStep::ScramFirst;
                self.answer(IrcReply::AuthenticateGo)
            }
            SaslStep::Idle => self.answer(IrcReply::SaslMechanisms),
            SaslStep::Plain => self.sasl_plain_login(param),
            SaslStep::ScramFirst => self.scram_first(param),
            SaslStep::ScramFinal(exchange) => self.scram_final(param, *exchange),
            SaslStep::ScramDone(account) if param == "+" => {
                let services = Services {
                    delivery: &self.relay.delivery,
                    shared: self.shared,
                    fx: self.fx,
                    key: self.key,
                };
                services.sasl_logged_in(account);
            }
            SaslStep::ScramLookup(_) | SaslStep::ScramDone(_) => self.sasl_failed(),
        }
    }

    fn sasl_failed(&mut self) {
        if let Some(state) = self.state() {
            state.login_pending = None;
            state.sasl = SaslStep::Idle;
        }
        self.answer(IrcReply::SaslFailed);
    }

    /// PLAIN's payload: a login like `/login`, on the auth thread.
    fn sasl_plain_login(&mut self, payload: &str) {
        let Some((account, password)) = sasl_plain(payload) else {
            return self.answer(IrcReply::SaslFailed);
        };
        if let Some(state) = self.state() {
            state.login_pending = Some(LoginKind::Sasl);
        }
        let login = Command::Login {
            account: Some(&account),
            password: &password,
        };
        let mut services = Services {
            delivery: &self.relay.delivery,
            shared: self.shared,
            fx: self.fx,
            key: self.key,
        };
        // Refused at once (no data dir, a full queue, not a nick): 904 now.
        if services.apply_ref(login).is_err() {
            self.sasl_failed();
        }
    }

    /// SCRAM's first client message: ask the auth thread for the credentials.
    fn scram_first(&mut self, payload: &str) {
        let first = Base64::decode_vec(payload)
            .ok()
            .and_then(|b| String::from_utf8(b).ok());
        let parsed = first.as_deref().and_then(scram::client_first);
        let Some((name, nonce, client_first_bare)) = parsed else {
            return self.sasl_failed();
        };
        let (Ok(account), Some(store)) = (Nick::parse(&name), self.shared.store.as_ref()) else {
            return self.sasl_failed();
        };
        let Some(session) = self.fx.session(self.key) else {
            return;
        };
        let (to, from) = (session.id, session.peer().ip());
        let lookup = AuthJob::ScramLookup {
            to,
            account: account.clone(),
            from,
        };
        if store.submit_auth(lookup).is_err() {
            return self.sasl_failed();
        }
        let exchange = ScramExchange {
            account,
            client_first_bare,
            nonce,
            server_first: String::new(),
            credentials: None,
        };
        if let Some(state) = self.state() {
            state.sasl = SaslStep::ScramLookup(Box::new(exchange));
            state.login_pending = Some(LoginKind::Sasl);
        }
    }

    /// SCRAM's final client message: check the proof here (three HMACs), answer
    /// with the server's signature, or 904 (a failed login for the throttle).
    fn scram_final(&mut self, payload: &str, exchange: ScramExchange) {
        let last = Base64::decode_vec(payload)
            .ok()
            .and_then(|b| String::from_utf8(b).ok());
        let verified = match (&last, &exchange.credentials) {
            (Some(last), Some(creds)) => scram::client_final(
                last,
                &exchange.client_first_bare,
                &exchange.server_first,
                &exchange.nonce,
                creds,
            ),
            _ => None,
        };
        let Some(server_final) = verified else {
            let from = self.fx.session(self.key).map(|s| s.peer().ip());
            if let (Some(store), Some(from)) = (&self.shared.store, from) {
                let account = exchange.account;
                let _ = store.submit_auth(AuthJob::ScramFailed { account, from });
            }
            return self.sasl_failed();
        };
        if let Some(state) = self.state() {
            state.sasl = SaslStep::ScramDone(exchange.account);
        }
        let data = Base64::encode_string(server_final.as_bytes());
        self.answer(IrcReply::AuthenticateData(&data));
    }

    /// `PRIVMSG NickServ :...` and `PRIVMSG ChanServ :...`: the account and room
    /// registration commands for clients that speak neither SASL nor the line
    /// protocol, as a services package offers them. Answers come as notices.
    fn service(&mut self, service: &str, text: &str) {
        let words: Vec<&str> = text.split_whitespace().collect();
        let verb = words
            .first()
            .map(|w| w.to_ascii_uppercase())
            .unwrap_or_default();
        let args = words.get(1..).unwrap_or(&[]);
        let nickserv = service.eq_ignore_ascii_case("NickServ");
        let (command, kind) = match (nickserv, verb.as_str(), args) {
            (true, "REGISTER", [password, ..]) => (Command::Register(password), None),
            (true, "IDENTIFY", [password]) => (
                Command::Login {
                    account: None,
                    password,
                },
                Some(LoginKind::Identify),
            ),
            (true, "IDENTIFY", [account, password]) => (
                Command::Login {
                    account: Some(account),
                    password,
                },
                Some(LoginKind::Identify),
            ),
            (true, "GHOST" | "REGAIN" | "RECOVER", [account, password]) => (
                Command::Login {
                    account: Some(account),
                    password,
                },
                Some(LoginKind::Regain),
            ),
            (true, "DROP", [password]) => (Command::Unregister(password), None),
            (true, "SET", [what, new]) if what.eq_ignore_ascii_case("PASSWORD") => {
                (Command::SetPassword(new), None)
            }
            (true, "LOGOUT", []) => (Command::Logout, None),
            (false, "REGISTER", [room]) => match irc::channel(room) {
                Some(room) => (Command::RegisterRoom(room), None),
                None => return self.answer(IrcReply::NoSuchChannel(room)),
            },
            (false, "DROP", [room]) => match irc::channel(room) {
                Some(room) => (Command::UnregisterRoom(room), None),
                None => return self.answer(IrcReply::NoSuchChannel(room)),
            },
            (false, "ACCESS", [room, rest @ ..]) => {
                let Some(room) = irc::channel(room) else {
                    return self.answer(IrcReply::NoSuchChannel(room));
                };
                let upper: Vec<String> = rest.iter().map(|w| w.to_ascii_uppercase()).collect();
                let upper: Vec<&str> = upper.iter().map(String::as_str).collect();
                let change = match (upper.as_slice(), rest) {
                    ([] | ["LIST"], _) => None,
                    (["ADD", _, level], [_, nick, _]) => match AccessLevel::parse(level) {
                        Some(level) => Some((*nick, Some(level))),
                        None => return self.service_help(nickserv),
                    },
                    (["DEL", _], [_, nick]) => Some((*nick, None)),
                    _ => return self.service_help(nickserv),
                };
                (Command::Access { room, change }, None)
            }
            _ => return self.service_help(nickserv),
        };
        if let Some(state) = self.state().filter(|_| kind.is_some()) {
            state.login_pending = kind;
        }
        self.relay.apply(self.fx, self.key, command);
    }

    /// IRCv3 `CHATHISTORY` (`draft/chathistory`): LATEST, BEFORE, AFTER, AROUND and
    /// BETWEEN of a channel the client is in, read from the store and sent as a
    /// `chathistory` batch; a refusal is a `FAIL CHATHISTORY` standard reply.
    fn chathistory(&mut self, msg: &Message<'_>) {
        let (room, query) = match irc::chathistory(&msg.params) {
            Ok(irc::ChatHistory::Room(room, query)) => (room, query),
            Ok(irc::ChatHistory::Targets(low, high, limit)) => {
                let mut services = Services {
                    delivery: &self.relay.delivery,
                    shared: self.shared,
                    fx: self.fx,
                    key: self.key,
                };
                if let Err(error) = services.targets((low, high), limit) {
                    let text = error.to_string();
                    self.answer(IrcReply::Fail {
                        command: "CHATHISTORY",
                        code: "MESSAGE_ERROR",
                        context: "TARGETS",
                        text: &text,
                    });
                }
                return;
            }
            Err(code) => {
                let context = msg
                    .params
                    .iter()
                    .take(2)
                    .copied()
                    .collect::<Vec<_>>()
                    .join(" ");
                let text = "Messages could not be retrieved";
                return self.answer(IrcReply::Fail {
                    command: "CHATHISTORY",
                    code,
                    context: &context,
                    text,
                });
            }
        };
        let sub = msg.param(0).unwrap_or("").to_ascii_uppercase();
        let target = format!("{sub} #{room}");
        let services = Services {
            delivery: &self.relay.delivery,
            shared: self.shared,
            fx: self.fx,
            key: self.key,
        };
        if let Err(error) = services.apply(Command::HistoryOf { room, query }) {
            let code = match error {
                ProtocolError::NotInRoom(_) => "INVALID_TARGET",
                _ => "MESSAGE_ERROR",
            };
            let text = error.to_string();
            self.answer(IrcReply::Fail {
                command: "CHATHISTORY",
                code,
                context: &target,
                text: &text,
            });
        }
    }

    /// `REGISTER ACCOUNT EMAIL PASSWORD` (`draft/account-registration`): the account
    /// is the current nick (or `*` for it); the e-mail address is not kept. The
    /// answer, `REGISTER SUCCESS` or `FAIL REGISTER`, comes from the auth thread.
    fn register(&mut self, msg: &Message<'_>) {
        let (Some(account), Some(password)) = (msg.param(0), msg.param(2)) else {
            return self.answer(IrcReply::NeedMoreParams("REGISTER"));
        };
        let nick = self.fx.session(self.key).map(|s| s.nick.to_string());
        let nick = nick.unwrap_or_default();
        if account != "*" && !account.eq_ignore_ascii_case(&nick) {
            return self.answer(IrcReply::Fail {
                command: "REGISTER",
                code: "BAD_ACCOUNT_NAME",
                context: account,
                text: "the account is your current nick: NICK to it first",
            });
        }
        if let Some(state) = self.state() {
            state.login_pending = Some(LoginKind::Register);
        }
        let mut services = Services {
            delivery: &self.relay.delivery,
            shared: self.shared,
            fx: self.fx,
            key: self.key,
        };
        if let Err(error) = services.apply_ref(Command::Register(password)) {
            if let Some(state) = services
                .fx
                .session(services.key)
                .and_then(|s| s.irc.as_mut())
            {
                state.login_pending = None;
            }
            services.register_failed(&error);
        }
    }

    fn service_help(&mut self, nickserv: bool) {
        let help = match nickserv {
            true => {
                "NickServ: REGISTER password | IDENTIFY [account] password | REGAIN account password | SET PASSWORD new | DROP password | LOGOUT"
            }
            false => {
                "ChanServ: REGISTER #room | ACCESS #room [LIST | ADD nick op|voice | DEL nick] | DROP #room"
            }
        };
        let event = crate::protocol::Event::Done(help.into());
        self.relay.delivery.reply(self.fx, self.key, &event);
    }

    /// `PRIVMSG`/`NOTICE` to rooms (`#room`) and nicks, comma lists allowed. A
    /// `NOTICE` is never answered, whatever goes wrong.
    fn message(&mut self, msg: &Message<'_>) {
        let notice = msg.command == "NOTICE";
        let Some(targets) = msg.param(0) else {
            if !notice {
                self.answer(IrcReply::NoRecipient(&msg.command));
            }
            return;
        };
        let tags = self.client_tags(msg);
        let (text, action) = irc::clean_text(msg.param(1).unwrap_or(""));
        if text.trim().is_empty() {
            if !notice {
                self.answer(IrcReply::NoTextToSend);
            }
            return;
        }
        let kind = match (notice, action) {
            (true, _) => SayKind::Notice,
            (false, true) => SayKind::Action,
            (false, false) => SayKind::Message,
        };
        for target in targets.split(',').filter(|t| !t.is_empty()) {
            if ["NickServ", "ChanServ"]
                .iter()
                .any(|s| s.eq_ignore_ascii_case(target))
            {
                if !notice {
                    self.service(target, &text);
                }
                continue;
            }
            let command = match irc::channel(target) {
                Some(room) => Command::SayTo {
                    room,
                    text: &text,
                    kind,
                },
                None if target.starts_with('#') => {
                    if !notice {
                        self.answer(IrcReply::NoSuchChannel(target));
                    }
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
            self.relay.apply_tagged(self.fx, self.key, command, tags);
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
    fn each_room<'m, F>(&mut self, msg: &Message<'m>, make: F)
    where
        F: Fn(crate::protocol::RoomName) -> Command<'m>,
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
        if text.is_some_and(|t| raw::wire_len(t) > MAX_TOPIC_LEN) {
            return self
                .relay
                .delivery
                .reject(self.fx, self.key, ProtocolError::TopicTooLong);
        }
        self.apply(Command::TopicOf { room, text });
    }

    /// `LIST` lists every room; `LIST #a,#b` only those (names that are not rooms
    /// are left out, as absent rooms are).
    fn list(&mut self, msg: &Message<'_>) {
        match msg.param(0).filter(|p| !p.is_empty()) {
            Some(names) => {
                let wanted = names.split(',').filter_map(irc::channel).collect();
                self.apply(Command::ListOf(wanted));
            }
            None => self.apply(Command::Rooms),
        }
    }

    fn whois(&mut self, msg: &Message<'_>) {
        let Some(nick) = msg.params.last().filter(|p| !p.is_empty()) else {
            return self.answer(IrcReply::NoNicknameGiven);
        };
        let here = self.shared.directory.lookup(nick).is_some();
        if here || self.shared.cluster.holds(nick) {
            return self.apply(Command::Whois(nick));
        }
        self.answer(IrcReply::NoSuchNick(nick));
        self.answer(IrcReply::EndOfWhois(nick));
    }

    /// `MODE #room [modes [params...]]` goes to the core (both protocols share room
    /// modes); `MODE nick` is the user's own modes: `+i` for everyone, nothing to change.
    fn mode(&mut self, msg: &Message<'_>) {
        let Some(target) = msg.param(0) else {
            return self.answer(IrcReply::NeedMoreParams("MODE"));
        };
        if target.starts_with('#') {
            let Some(room) = irc::channel(target) else {
                return self.answer(IrcReply::NoSuchChannel(target));
            };
            let request = match msg.params.get(1) {
                Some(modestring) => modes::parse(modestring, &msg.params[2..]),
                None => ModeRequest::default(),
            };
            let room = Some(room);
            return self.apply(Command::Mode { room, request });
        }
        let me = self.fx.session(self.key).map(|s| s.nick.key());
        let oper = self.fx.session(self.key).is_some_and(|s| s.oper.is_some());
        let reply = if Nick::parse(target).is_ok_and(|n| Some(n.key()) == me) {
            match msg.param(1) {
                None if oper => IrcReply::UserModes("+ios"),
                None => IrcReply::UserModes("+i"),
                Some(modes) => return self.own_modes(modes),
            }
        } else if self.shared.directory.lookup(target).is_some() {
            IrcReply::CannotChangeOthersModes
        } else {
            IrcReply::NoSuchNick(target)
        };
        self.answer(reply);
    }

    /// `JOIN #a,#b [key1,key2]`: keys are matched to channels in order.
    fn join(&mut self, msg: &Message<'_>) {
        let Some(list) = msg.param(0) else {
            return self.answer(IrcReply::NeedMoreParams("JOIN"));
        };
        let mut keys = msg.param(1).unwrap_or("").split(',');
        for name in list.split(',').filter(|n| !n.is_empty()) {
            let key = keys.next().filter(|k| !k.is_empty());
            match (irc::channel(name), key) {
                (Some(room), None) => self.apply(Command::Join(room)),
                (Some(room), Some(key)) => self.apply(Command::JoinWithKey { room, key }),
                (None, _) => self.answer(IrcReply::NoSuchChannel(name)),
            }
        }
    }

    /// `NAMES #a,#b`: a name that is no channel gets only its 366, like a channel
    /// that does not exist; `NAMES` alone lists every channel the client is in (one
    /// `366 *` when it is in none).
    fn names(&mut self, msg: &Message<'_>) {
        let Some(list) = msg.param(0) else {
            let rooms = (self.fx.session(self.key)).map_or_else(Vec::new, |s| s.rooms.to_vec());
            if rooms.is_empty() {
                return self.answer(IrcReply::EndOfNamesAll);
            }
            return rooms
                .into_iter()
                .for_each(|room| self.apply(Command::Names(room)));
        };
        for name in list.split(',').filter(|n| !n.is_empty()) {
            match irc::channel(name) {
                Some(room) => self.apply(Command::Names(room)),
                None => self.answer(IrcReply::EndOfNames(name)),
            }
        }
    }

    /// `KICK #room nick[,nick...] [:reason]`.
    fn kick(&mut self, msg: &Message<'_>) {
        let (Some(name), Some(nicks)) = (msg.param(0), msg.param(1)) else {
            return self.answer(IrcReply::NeedMoreParams("KICK"));
        };
        let Some(room) = irc::channel(name) else {
            return self.answer(IrcReply::NoSuchChannel(name));
        };
        let reason = msg.param(2);
        for nick in nicks.split(',').filter(|n| !n.is_empty()) {
            let room = Some(room.clone());
            self.apply(Command::Kick { room, nick, reason });
        }
    }

    /// `INVITE nick #room`, or `INVITE` alone to list one's invitations.
    fn invite(&mut self, msg: &Message<'_>) {
        match (msg.param(0), msg.param(1)) {
            (None, _) => self.apply(Command::Invites),
            (Some(_), None) => self.answer(IrcReply::NeedMoreParams("INVITE")),
            (Some(nick), Some(name)) => match irc::channel(name) {
                Some(room) => self.apply(Command::Invite {
                    nick,
                    room: Some(room),
                }),
                None => self.answer(IrcReply::NoSuchChannel(name)),
            },
        }
    }

    /// `WHOWAS nick [count]`: 431 without a nick; a count that is not a positive
    /// number means all that are remembered.
    fn whowas(&mut self, msg: &Message<'_>) {
        let Some(nick) = msg.param(0) else {
            return self.answer(IrcReply::NoNicknameGiven);
        };
        let count = msg.param(1).and_then(|c| c.parse().ok()).unwrap_or(0);
        self.apply(Command::Whowas { nick, count });
    }
}

/// `KLINE mask [duration] [:reason]`: a second parameter that is no duration is
/// the reason of a k-line until lifted. `None` if a third comes after a bad duration.
fn kline<'m>(
    mask: &'m str,
    second: Option<&'m str>,
    third: Option<&'m str>,
) -> Option<Command<'m>> {
    let parsed = second.map(crate::protocol::parse::parse_duration);
    let (duration, reason) = match (parsed, third) {
        (None, _) => (None, ""),
        (Some(Some(duration)), reason) => (duration, reason.unwrap_or("")),
        (Some(None), None) => (None, second.unwrap_or("")),
        (Some(None), Some(_)) => return None,
    };
    Some(Command::Kline {
        mask,
        duration,
        reason,
    })
}

/// Longest real name kept, in bytes.
const MAX_REALNAME_LEN: usize = 64;

/// The account and password of a SASL PLAIN payload (base64 of `authzid NUL
/// account NUL password`); the authorization identity, if any, must be the account.
fn sasl_plain(payload: &str) -> Option<(String, String)> {
    use base64ct::{Base64, Encoding};
    let bytes = Base64::decode_vec(payload).ok()?;
    let text = String::from_utf8(bytes).ok()?;
    let mut parts = text.split('\0');
    let (authzid, account, password) = (parts.next()?, parts.next()?, parts.next()?);
    let fine = parts.next().is_none() && (authzid.is_empty() || authzid == account);
    fine.then(|| (account.to_string(), password.to_string()))
}

/// `text` cut to at most `max` bytes at a character boundary.
fn cut(text: &str, max: usize) -> &str {
    let mut end = text.len().min(max);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}
