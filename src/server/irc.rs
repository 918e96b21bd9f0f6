//! The IRC session: what an IRC connection does that a line connection does not.
//!
//! An IRC client must register (`CAP`, `PASS`, `NICK`, `USER`) before it may chat, is
//! greeted with numerics, answers `PING`s, and asks questions (`MODE`, `ISON`) that
//! the line protocol never asks. This module is that state machine. Everything that
//! touches chat state (joining, messaging, nicks, topics) is translated into the same
//! protocol-neutral [`Command`]s the line protocol produces and applied by `relay`;
//! what other connections see comes back as [`crate::protocol::Event`]s, rendered by
//! `protocol::irc` for IRC connections and `protocol::render` for line ones. So a room
//! is the same room for both: `#rust` here is `rust` there.
//!
//! Registration: `NICK` claims the nick in the shared directory at once (so IRC and
//! line users share one namespace); `USER` supplies the rest. When both have arrived,
//! `CAP` negotiation (if started) has ended and the password (if `--password` is set)
//! matched, the client gets 001–005 and the MOTD. Before that, anything else gets 451.

use crate::protocol::irc::{self, Message};
use crate::protocol::names::MAX_NICK_LEN;
use crate::protocol::{Command, MAX_TOPIC_LEN, Nick, ProtocolError, RoomName, SayKind};

use super::connection::CloseReason;
use super::shard::ShardState;

/// Registration and session state of one IRC connection.
#[derive(Debug, Default)]
pub struct IrcState {
    /// True after the welcome burst: chat commands are allowed.
    pub registered: bool,
    /// A valid `NICK` was received (and claimed in the directory).
    nick_given: bool,
    /// `USER` was received.
    user_given: bool,
    /// `PASS` matched `--password` (or none is required).
    pass_ok: bool,
    /// Inside `CAP LS` ... `CAP END`: registration waits for the end.
    cap_negotiating: bool,
    /// When we sent a keepalive `PING` that is not answered yet.
    pub ping_sent: Option<std::time::Instant>,
}

/// The server's version string in 002/004.
const VERSION: &str = concat!("miochat-", env!("CARGO_PKG_VERSION"));

impl ShardState {
    fn irc_state(&mut self, key: usize) -> Option<&mut IrcState> {
        self.conns.get_mut(key).and_then(|c| c.irc.as_deref_mut())
    }

    /// A numeric to connection `key`: `:server CODE nick PARAMS`.
    fn numeric(&mut self, key: usize, code: &str, params: &str) {
        // Until the client has a nick of its own, numerics are addressed to `*`.
        let named = self
            .irc_state(key)
            .is_some_and(|s| s.registered || s.nick_given);
        let conn = &self.conns[key];
        let me = if named { conn.nick.as_str() } else { "*" };
        let line = format!(
            ":{} {code} {me} {params}\r\n",
            self.shared.config.server_name
        );
        self.send_raw(key, line);
    }

    /// Handles one line from an IRC connection.
    pub(super) fn on_irc_line(&mut self, key: usize, line: &[u8]) {
        let msg = match irc::parse(line) {
            Ok(Some(msg)) => msg,
            Ok(None) => return,
            Err(error) => return self.reject(key, error),
        };
        log::debug!(
            "{} -> {:?} {:?}",
            self.conns[key].peer,
            msg.command,
            msg.params
        );
        let registered = self.irc_state(key).is_some_and(|s| s.registered);
        match msg.command.as_str() {
            "CAP" => self.irc_cap(key, &msg),
            "PASS" if registered => self.numeric(key, "462", ":You may not reregister"),
            "PASS" => self.irc_pass(key, &msg),
            "NICK" => self.irc_nick(key, &msg, registered),
            "USER" if registered => self.numeric(key, "462", ":You may not reregister"),
            "USER" => self.irc_user(key, &msg),
            "PING" => {
                let token = msg.param(0).unwrap_or("");
                let server = self.shared.config.server_name.clone();
                self.send_raw(key, format!(":{server} PONG {server} :{token}\r\n"));
            }
            "PONG" => {}
            "QUIT" if !registered => {
                self.send_raw(key, "ERROR :Closing Link: * (Quit)\r\n".into());
                let grace = self.shared.config.shutdown_grace;
                self.conns[key].drain(CloseReason::Quit, grace, &mut self.turn);
            }
            _ if !registered => self.numeric(key, "451", ":You have not registered"),
            _ => self.irc_command(key, &msg),
        }
    }

    /// Commands of a registered client.
    fn irc_command(&mut self, key: usize, msg: &Message<'_>) {
        let cmd = msg.command.as_str();
        match cmd {
            "PRIVMSG" | "NOTICE" => self.irc_message(key, msg),
            "JOIN" => self.irc_join(key, msg),
            "PART" => self.irc_each_room(key, msg, |room| Command::Leave(Some(room))),
            "NAMES" => match msg.param(0) {
                Some(_) => self.irc_each_room(key, msg, Command::Names),
                None => self.numeric(key, "366", "* :End of /NAMES list."),
            },
            "TOPIC" => self.irc_topic(key, msg),
            "LIST" => self.apply(key, Command::Rooms),
            "WHO" => match msg.param(0).map(RoomName::parse) {
                Some(Ok(room)) if msg.params[0].starts_with('#') => {
                    self.apply(key, Command::Who(Some(room)))
                }
                _ => {
                    let mask = msg.param(0).unwrap_or("*").to_string();
                    self.numeric(key, "315", &format!("{mask} :End of /WHO list."));
                }
            },
            "WHOIS" => match msg.params.last().filter(|p| !p.is_empty()) {
                Some(nick) => {
                    let nick = nick.to_string();
                    if self.shared.directory.lookup(&nick).is_none() {
                        self.numeric(key, "401", &format!("{nick} :No such nick/channel"));
                        self.numeric(key, "318", &format!("{nick} :End of /WHOIS list."));
                    } else {
                        self.apply(key, Command::Whois(&nick));
                    }
                }
                None => self.numeric(key, "431", ":No nickname given"),
            },
            "AWAY" => {
                let text = msg.param(0);
                self.apply(key, Command::Away(text));
            }
            "ISON" => {
                let nicks: Vec<&str> = msg.params.iter().flat_map(|p| p.split(' ')).collect();
                if nicks.iter().all(|n| n.is_empty()) {
                    return self.need_more_params(key, cmd);
                }
                self.apply(key, Command::Ison(nicks));
            }
            "USERHOST" => {
                if msg.params.is_empty() {
                    return self.need_more_params(key, cmd);
                }
                let nicks: Vec<&str> = msg.params.iter().take(5).copied().collect();
                self.apply(key, Command::Userhost(nicks));
            }
            "MODE" => self.irc_mode(key, msg),
            "QUIT" => self.apply(key, Command::Quit(msg.param(0))),
            _ => self.numeric(key, "421", &format!("{cmd} :Unknown command")),
        }
    }

    fn need_more_params(&mut self, key: usize, cmd: &str) {
        self.numeric(key, "461", &format!("{cmd} :Not enough parameters"));
    }

    /// `CAP LS/LIST/REQ/END`: no capabilities are offered yet, but answering lets
    /// modern clients register without waiting for a timeout.
    fn irc_cap(&mut self, key: usize, msg: &Message<'_>) {
        let me = "*";
        let server = self.shared.config.server_name.clone();
        match msg.param(0).map(str::to_ascii_uppercase).as_deref() {
            Some("LS") => {
                if let Some(state) = self.irc_state(key)
                    && !state.registered
                {
                    state.cap_negotiating = true;
                }
                self.send_raw(key, format!(":{server} CAP {me} LS :\r\n"));
            }
            Some("LIST") => self.send_raw(key, format!(":{server} CAP {me} LIST :\r\n")),
            Some("REQ") => {
                let asked = msg.param(1).unwrap_or("");
                self.send_raw(key, format!(":{server} CAP {me} NAK :{asked}\r\n"));
            }
            Some("END") => {
                if let Some(state) = self.irc_state(key) {
                    state.cap_negotiating = false;
                }
                self.irc_try_register(key);
            }
            _ => self.numeric(
                key,
                "410",
                &format!("{} :Invalid CAP command", msg.param(0).unwrap_or("*")),
            ),
        }
    }

    fn irc_pass(&mut self, key: usize, msg: &Message<'_>) {
        let Some(given) = msg.param(0) else {
            return self.need_more_params(key, "PASS");
        };
        let ok = self.shared.config.irc_password.as_deref() == Some(given);
        if let Some(state) = self.irc_state(key) {
            state.pass_ok = ok;
        }
    }

    fn irc_nick(&mut self, key: usize, msg: &Message<'_>, registered: bool) {
        let Some(wanted) = msg.param(0) else {
            return self.numeric(key, "431", ":No nickname given");
        };
        let nick = match Nick::parse(wanted) {
            Ok(nick) => nick,
            Err(_) => return self.numeric(key, "432", &format!("{wanted} :Erroneous nickname")),
        };
        if registered {
            return self.apply(key, Command::Nick(nick));
        }
        let id = self.conns[key].id;
        match self.shared.directory.rename(id, &nick) {
            Ok(_) => {
                self.conns[key].nick = nick;
                if let Some(state) = self.irc_state(key) {
                    state.nick_given = true;
                }
                self.irc_try_register(key);
            }
            Err(_) => self.numeric(key, "433", &format!("{nick} :Nickname is already in use")),
        }
    }

    fn irc_user(&mut self, key: usize, msg: &Message<'_>) {
        if msg.params.len() < 4 {
            return self.need_more_params(key, "USER");
        }
        if let Some(state) = self.irc_state(key) {
            state.user_given = true;
        }
        self.irc_try_register(key);
    }

    /// Completes registration once NICK and USER are in and CAP negotiation is over.
    fn irc_try_register(&mut self, key: usize) {
        let needs_password = self.shared.config.irc_password.is_some();
        let Some(state) = self.irc_state(key) else {
            return;
        };
        if state.registered || !state.nick_given || !state.user_given || state.cap_negotiating {
            return;
        }
        if needs_password && !state.pass_ok {
            self.numeric(key, "464", ":Password incorrect");
            let me = self.conns[key].nick.clone();
            self.send_raw(key, format!("ERROR :Closing Link: {me} (Bad password)\r\n"));
            let grace = self.shared.config.shutdown_grace;
            self.conns[key].drain(CloseReason::Quit, grace, &mut self.turn);
            return;
        }
        state.registered = true;
        let me = self.conns[key].nick.clone();
        log::info!("{} registered on IRC as {me}", self.conns[key].peer);
        let server = self.shared.config.server_name.clone();
        let welcome = [
            (
                "001",
                format!(
                    ":Welcome to the miochat IRC network {me}!{me}@{}",
                    irc::HOST
                ),
            ),
            (
                "002",
                format!(":Your host is {server}, running version {VERSION}"),
            ),
            (
                "003",
                ":This server speaks IRC and the miochat line protocol".to_string(),
            ),
            ("004", format!("{server} {VERSION} i nt")),
            (
                "005",
                format!(
                    "CHANTYPES=# NICKLEN={MAX_NICK_LEN} CHANNELLEN={} TOPICLEN={MAX_TOPIC_LEN} \
                     CASEMAPPING=ascii NETWORK=miochat CHANMODES=,,,nt PREFIX=() \
                     :are supported by this server",
                    crate::protocol::names::MAX_ROOM_LEN + 1
                ),
            ),
            ("375", format!(":- {server} Message of the day -")),
            (
                "372",
                ":- Welcome to miochat. Rooms are #channels; line-protocol users share them."
                    .to_string(),
            ),
            ("376", ":End of /MOTD command.".to_string()),
        ];
        for (code, params) in welcome {
            self.numeric(key, code, &params);
        }
    }

    /// `PRIVMSG`/`NOTICE` to rooms (`#room`) and nicks, comma lists allowed.
    fn irc_message(&mut self, key: usize, msg: &Message<'_>) {
        let notice = msg.command == "NOTICE";
        let Some(targets) = msg.param(0) else {
            return self.numeric(
                key,
                "411",
                &format!(":No recipient given ({})", msg.command),
            );
        };
        let Some(raw) = msg.param(1) else {
            return self.numeric(key, "412", ":No text to send");
        };
        let (text, action) = irc::clean_text(raw);
        if text.trim().is_empty() {
            return self.numeric(key, "412", ":No text to send");
        }
        for target in targets.split(',').filter(|t| !t.is_empty()) {
            let command = if target.starts_with('#') {
                let Ok(room) = RoomName::parse(target) else {
                    self.numeric(key, "403", &format!("{target} :No such channel"));
                    continue;
                };
                let kind = match (notice, action) {
                    (true, _) => SayKind::Notice,
                    (false, true) => SayKind::Action,
                    (false, false) => SayKind::Message,
                };
                Command::SayTo {
                    room,
                    text: &text,
                    kind,
                }
            } else if notice {
                Command::Notice {
                    to: target,
                    text: &text,
                }
            } else {
                Command::Msg {
                    to: target,
                    text: &text,
                }
            };
            self.apply(key, command);
        }
    }

    /// `JOIN #a,#b` or `JOIN 0` (leave every room).
    fn irc_join(&mut self, key: usize, msg: &Message<'_>) {
        match msg.param(0) {
            None => self.need_more_params(key, "JOIN"),
            Some("0") => {
                for room in self.conns[key].rooms.clone() {
                    self.apply(key, Command::Leave(Some(room)));
                }
            }
            Some(_) => self.irc_each_room(key, msg, Command::Join),
        }
    }

    /// Applies `make(room)` for each `#room` in the comma list of the first parameter.
    fn irc_each_room<F>(&mut self, key: usize, msg: &Message<'_>, make: F)
    where
        F: Fn(RoomName) -> Command<'static>,
    {
        let Some(list) = msg.param(0) else {
            return self.need_more_params(key, &msg.command);
        };
        for name in list.split(',').filter(|n| !n.is_empty()) {
            match RoomName::parse(name) {
                Ok(room) if name.starts_with('#') => self.apply(key, make(room)),
                _ => self.numeric(key, "403", &format!("{name} :No such channel")),
            }
        }
    }

    fn irc_topic(&mut self, key: usize, msg: &Message<'_>) {
        let Some(name) = msg.param(0) else {
            return self.need_more_params(key, "TOPIC");
        };
        let room = match RoomName::parse(name) {
            Ok(room) if name.starts_with('#') => room,
            _ => return self.numeric(key, "403", &format!("{name} :No such channel")),
        };
        // "TOPIC #x :" (empty trailing) clears in IRC; miochat keeps an empty topic.
        let text = msg.params.get(1).copied();
        if text.is_some_and(|t| t.len() > MAX_TOPIC_LEN) {
            return self.reject(key, ProtocolError::TopicTooLong);
        }
        self.apply(key, Command::TopicOf { room, text });
    }

    /// Enough `MODE` for clients to be content: rooms are `+nt`, users `+i`, and
    /// nothing can be changed.
    fn irc_mode(&mut self, key: usize, msg: &Message<'_>) {
        let Some(target) = msg.param(0) else {
            return self.need_more_params(key, "MODE");
        };
        let me = self.conns[key].nick.clone();
        if target.starts_with('#') {
            match (RoomName::parse(target), msg.param(1)) {
                (Err(_), _) => self.numeric(key, "403", &format!("{target} :No such channel")),
                (Ok(_), None) => self.numeric(key, "324", &format!("{target} +nt")),
                (Ok(_), Some(b))
                    if b.trim_start_matches(['+', '-']).is_empty() || b == "b" || b == "+b" =>
                {
                    self.numeric(key, "368", &format!("{target} :End of channel ban list"))
                }
                (Ok(_), Some(_)) => self.numeric(
                    key,
                    "482",
                    &format!("{target} :You're not channel operator"),
                ),
            }
        } else if Nick::parse(target).is_ok_and(|n| n.key() == me.key()) {
            match msg.param(1) {
                None => self.numeric(key, "221", "+i"),
                Some(modes) => {
                    let line = format!(":{me}!{me}@{} MODE {me} :{modes}\r\n", irc::HOST);
                    self.send_raw(key, line);
                }
            }
        } else if self.shared.directory.lookup(target).is_some() {
            self.numeric(key, "502", ":Can't change mode for other users");
        } else {
            self.numeric(key, "401", &format!("{target} :No such nick/channel"));
        }
    }
}
