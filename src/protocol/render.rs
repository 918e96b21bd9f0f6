//! [`Event`] → the bytes of the miochat line protocol.
//!
//! Every line the server sends starts with a marker word naming its kind, so a script
//! can dispatch on the first word and a person on `nc` can read it:
//!
//! | marker  | kind                                   |
//! |---------|----------------------------------------|
//! | `MSG`   | a room message: `MSG room nick text`   |
//! | `ME`    | a room action: `ME room nick text`     |
//! | `PRIV`  | a private message: `PRIV nick text`    |
//! | `HIST`  | a line from a room's history: `HIST time msgid MSG ...` |
//! | `EVENT` | something happened in a room           |
//! | `OK`    | a reply to your command                |
//! | `PONG`  | the reply to `/ping`                   |
//! | `ERR`   | an error: `ERR code text`              |
//!
//! [`fn@line`] renders an event **once** into an `Arc<[u8]>`; the relay queues clones of
//! that `Arc` for every recipient. `docs/PROTOCOL.md` lists every line.

use std::fmt::Write as _;
use std::sync::Arc;

use super::formatting::strip_formatting;
use super::identity::{self, UserHost};
use super::modes::changes_string;
use super::{
    Event, HistoryLine, LoopReport, Member, RoomName, SayKind, StatsReport, SummaryKind, WhoisInfo,
    timestamp,
};

/// The text of `/help`, one line per command.
const HELP: &[&str] = &[
    "text            send text to your current room",
    "/nick NAME      change your nick",
    "/join ROOM      join ROOM (or switch to it) and make it current",
    "/leave [ROOM]   leave ROOM (default: the current room)",
    "/msg NICK TEXT  send a private message (/msg #ROOM TEXT: a line to one of your rooms)",
    "/me TEXT        send an action to your current room",
    "/who [ROOM]     list the members of ROOM (default: current)",
    "/rooms          list rooms and member counts",
    "/topic [TEXT]   show or set the current room's topic",
    "/ping [TOKEN]   the server answers PONG [TOKEN]",
    "/stats          server counters",
    "/quit [REASON]  disconnect",
    "/whois NICK     who is NICK: protocol, idle seconds, rooms, away message",
    "/away [TEXT]    set an away message (without TEXT: you are back)",
    "/echo on|off    see your own room lines as others see them (off by default)",
    "/history [N]    the current room's last N lines (default 20)",
    "/join ROOM KEY  join a room that has a key (+k)",
    "/mode [+-FLAGS ARGS]  show or change the room's modes: t n m i s, k KEY, l N",
    "/op /deop NICK  give or take operator status (operators only)",
    "/voice /devoice NICK  give or take voice: speak under +m",
    "/kick NICK [REASON]  put NICK out of the room",
    "/ban /unban MASK  ban or unban nick!user@host (wildcards * ?)",
    "/bans [ROOM]    list the room's bans",
    "/invite NICK [ROOM]  invite NICK (lets them into a +i room once)",
    "/history ROOM [N]  ROOM's last N lines, from disk too (default 20, at most 1000)",
    "/history ROOM since MSGID|TIME  the lines after that message id or time",
    "/register PASSWORD  make your nick an account (then only you can use it)",
    "/login NICK PASSWORD  log in (also /identify [NICK] PASSWORD); /logout",
    "/passwd OLD NEW  change your password; /unregister PASSWORD drops the account",
    "/register #ROOM  found ROOM (you: logged in, its operator); /unregister #ROOM",
    "/access #ROOM [add NICK op|voice | del NICK]  who gets status by account",
    "/motd           the message of the day",
    "/oper NAME PASSWORD  become a server operator",
    "/kill NICK REASON, /kline MASK DURATION [REASON], /unkline MASK, /klines  (operators)",
    "/wallops TEXT (to operators), /wall TEXT (to everyone), /rehash  (operators)",
    "//text          send text that starts with /",
];

/// Renders `event` as line-protocol bytes (one or more LF-terminated lines).
pub fn line(event: &Event) -> Arc<[u8]> {
    let mut out = String::with_capacity(64);
    write_event(event, &mut out);
    // Bytes an IRC client sent that are not UTF-8 show as U+FFFD (`raw.rs`).
    match super::raw::to_text(&out) {
        std::borrow::Cow::Borrowed(_) => Arc::from(out.into_bytes()),
        std::borrow::Cow::Owned(shown) => Arc::from(shown.into_bytes()),
    }
}

/// Writes `event` into `out`, each line ending in LF.
fn write_event(event: &Event, out: &mut String) {
    // `fmt::Write` for `String` cannot fail; the results are discarded for that reason.
    let _ = match event {
        Event::Welcome { nick, room } => writeln!(
            out,
            "OK welcome {nick} {room} (welcome to miochat; /help lists the commands)"
        ),
        Event::Message { room, from, text } | Event::RoomNotice { room, from, text } => {
            writeln!(out, "MSG {room} {from} {}", strip_formatting(text))
        }
        Event::Action { room, from, text } => {
            writeln!(out, "ME {room} {from} {}", strip_formatting(text))
        }
        Event::Private { from, text, .. } => {
            writeln!(out, "PRIV {from} {}", strip_formatting(text))
        }
        Event::Joined { room, nick } => writeln!(out, "EVENT {room} join {nick}"),
        Event::Left { room, nick, reason } => match reason {
            Some(reason) => writeln!(out, "EVENT {room} leave {nick} {reason}"),
            None => writeln!(out, "EVENT {room} leave {nick}"),
        },
        Event::NickChanged { room, old, new } => writeln!(out, "EVENT {room} nick {old} {new}"),
        Event::Quit { room, nick, reason } => writeln!(out, "EVENT {room} quit {nick} {reason}"),
        Event::TopicChanged { room, nick, topic } => {
            writeln!(out, "EVENT {room} topic {nick} {topic}")
        }
        Event::ShuttingDown => writeln!(out, "EVENT * shutdown server shutting down"),
        Event::Gap { room, node, missed } => writeln!(out, "EVENT {room} gap {node} {missed}"),
        Event::Link(false) => writeln!(
            out,
            "EVENT * link down the link to the other nodes is down: their users' lines wait"
        ),
        Event::Link(true) => writeln!(out, "EVENT * link up the link to the other nodes is back"),
        Event::Recovered { room, count } => writeln!(out, "EVENT {room} recovered {count}"),
        Event::YouJoined {
            room,
            members,
            topic,
            ..
        } => {
            let _ = write!(out, "OK joined {room} {members}");
            match topic {
                Some(topic) => writeln!(out, " {topic}"),
                None => writeln!(out),
            }
        }
        Event::YouLeft { room, .. } => writeln!(out, "OK left {room}"),
        Event::NickIs { nick, .. } => writeln!(out, "OK nick {nick}"),
        Event::Names { room, nicks, .. } => write_who(room, nicks, 0, out),
        Event::Whois(info, userhost) => write_whois(info, userhost.as_ref(), out),
        Event::Away(true) => writeln!(out, "OK away"),
        Event::Away(false) => writeln!(out, "OK back"),
        Event::IsAway { nick, text } => writeln!(out, "OK away {nick} {text}"),
        Event::Who { room, rows, more } => {
            write_who(room, rows.iter().map(|row| &row.member), *more, out)
        }
        Event::Topic { room, topic, .. } => match topic {
            Some(topic) => writeln!(out, "OK topic {room} {topic}"),
            None => writeln!(out, "OK topic {room}"),
        },
        Event::Stats(report) => write_stats(report, out),
        Event::Help => {
            for help in HELP {
                let _ = writeln!(out, "OK help {help}");
            }
            Ok(())
        }
        Event::Bye => writeln!(out, "OK bye"),
        Event::Pong(None) => writeln!(out, "PONG"),
        Event::Pong(Some(token)) => writeln!(out, "PONG {token}"),
        Event::Error(error) => writeln!(out, "ERR {} {error}", error.code()),
        Event::Closing(refusal) => writeln!(out, "ERR {} {}", refusal.code(), refusal.text()),
        other => write_more(other, out),
    };
}

/// The rest of [`write_event`]: listings, and moderation events and replies (one
/// `EVENT` line per mode change).
fn write_more(event: &Event, out: &mut String) -> std::fmt::Result {
    match event {
        Event::Ison(nicks) => {
            let _ = write!(out, "OK ison");
            for nick in nicks {
                let _ = write!(out, " {nick}");
            }
            writeln!(out)
        }
        Event::Userhost(nicks) => {
            let _ = write!(out, "OK userhost");
            for (nick, _, _) in nicks {
                let _ = write!(out, " {nick}");
            }
            writeln!(out)
        }
        Event::Rooms(rooms) => {
            let _ = write!(out, "OK rooms");
            for info in rooms {
                let _ = write!(out, " {}:{}", info.room, info.members);
            }
            writeln!(out)
        }

        Event::WhoMask { mask, rows } => {
            write!(out, "OK whomask {mask}")?;
            for row in rows {
                write!(out, " {}", row.member.nick)?;
            }
            writeln!(out)
        }
        Event::Whowas { nick, entries } => {
            write!(out, "OK whowas {nick}")?;
            for entry in entries {
                write!(out, " {}", entry.nick)?;
            }
            writeln!(out)
        }
        Event::Lusers(report) => writeln!(
            out,
            "OK lusers users={} unknown={} rooms={} max_users={}",
            report.users, report.unknown, report.rooms, report.max_users
        ),
        other => write_moderation(other, out),
    }
}

/// Moderation's lines: mode changes, kicks, invites, and the replies to them.
fn write_moderation(event: &Event, out: &mut String) -> std::fmt::Result {
    match event {
        Event::ModeChanged { room, by, changes } => {
            for change in changes {
                let change = changes_string(std::slice::from_ref(change));
                writeln!(out, "EVENT {room} mode {by} {change}")?;
            }
            Ok(())
        }
        Event::Kicked {
            room,
            by,
            nick,
            reason,
        } => writeln!(out, "EVENT {room} kick {by} {nick} {reason}"),
        Event::Invited { room, by, nick } => writeln!(out, "EVENT {room} invite {by} {nick}"),
        Event::Modes { room, modes, .. } => writeln!(out, "OK mode {room} {modes}"),
        Event::Bans { room, bans } => {
            write!(out, "OK bans {room}")?;
            for ban in bans {
                write!(out, " {}", ban.mask)?;
            }
            writeln!(out)
        }
        Event::Inviting { room, nick } => writeln!(out, "OK invited {nick} {room}"),
        Event::ModesChanged { room, changes } if changes.is_empty() => {
            writeln!(out, "OK changed {room}")
        }
        Event::ModesChanged { room, changes } => {
            writeln!(out, "OK changed {room} {}", changes_string(changes))
        }
        Event::KickDone { room, nick } => writeln!(out, "OK kicked {nick} {room}"),
        Event::Invites(rooms) => {
            write!(out, "OK invites")?;
            for room in rooms {
                write!(out, " {room}")?;
            }
            writeln!(out)
        }
        other => write_everyday(other, out),
    }
}

/// The rest of [`write_more`]: the replies and events of the everyday commands
/// (`/msg`'s `OK sent`, `/echo`, history, summaries, the idle warning).
fn write_everyday(event: &Event, out: &mut String) -> std::fmt::Result {
    match event {
        Event::Sent(nick) => writeln!(out, "OK sent {nick}"),
        Event::Done(text) => writeln!(out, "OK {text}"),
        Event::HistoryTargets(targets) => {
            write!(out, "OK targets")?;
            for (room, at_ms) in targets {
                write!(out, " {room}:{}", timestamp(*at_ms))?;
            }
            writeln!(out)
        }
        Event::EchoIs(on) => writeln!(out, "OK echo {}", if *on { "on" } else { "off" }),
        Event::Summary {
            room,
            kind,
            count,
            nicks,
        } => {
            let what = match kind {
                SummaryKind::Joins => "joins",
                SummaryKind::Quits => "quits",
            };
            write!(out, "EVENT {room} {what} {count}")?;
            for nick in nicks {
                write!(out, " {nick}")?;
            }
            if *count > nicks.len() {
                write!(out, " …")?;
            }
            writeln!(out)
        }
        Event::Playback { room, lines } => write_playback(room, lines, out),
        // IRC-only room events (`away-notify`, `invite-notify`): nothing for line users.
        Event::AwayChanged { .. }
        | Event::AccountChanged { .. }
        | Event::InviteNotice { .. }
        | Event::TagMsg { .. }
        | Event::PrivateTagMsg { .. } => Ok(()),
        Event::IdleWarning(secs) => writeln!(
            out,
            "EVENT * idle {secs} nothing received for a while: send any line (/ping will do) within {secs} s to stay connected"
        ),
        other => write_operator(other, out),
    }
}

/// The server operators' lines and the message of the day.
fn write_operator(event: &Event, out: &mut String) -> std::fmt::Result {
    match event {
        Event::Motd { lines, asked } => {
            for line in lines {
                let line = shown(line);
                match line.is_empty() {
                    true => writeln!(out, "EVENT * motd")?,
                    false => writeln!(out, "EVENT * motd {line}")?,
                }
            }
            match asked {
                true => writeln!(out, "OK motd {}", lines.len()),
                false => Ok(()),
            }
        }
        Event::YouAreOper(name) => writeln!(out, "OK oper {name}"),
        Event::Wallops { from, text } => {
            writeln!(out, "EVENT * wallops {from} {}", shown(text))
        }
        Event::Wall { from, text } => writeln!(out, "EVENT * wall {from} {}", shown(text)),
        Event::ServerNotice { kind, text } => {
            writeln!(out, "EVENT * snotice {} {}", kind.as_str(), shown(text))
        }
        Event::Killed { by, reason } => {
            writeln!(out, "ERR killed you were killed by {by}: {}", shown(reason))
        }
        Event::Klined(reason) => writeln!(
            out,
            "ERR klined you are banned from this server: {}",
            shown(reason)
        ),
        Event::Klines(klines) => {
            for kline in klines {
                let (mask, by, reason) = (&kline.mask, &kline.set_by, shown(&kline.reason));
                let expires = kline.expiry_text();
                writeln!(out, "KLINE {mask} {by} {expires} {reason}")?;
            }
            writeln!(out, "OK klines {}", klines.len())
        }
        Event::Rehashing => writeln!(out, "OK rehash"),
        other => unreachable!("BUG: {other:?} is rendered by write_event"),
    }
}

/// Text from the configuration or an IRC user as a line may show it: IRC
/// formatting removed and no control characters (a MOTD file may hold any).
fn shown(text: &str) -> String {
    strip_formatting(text)
        .chars()
        .filter(|c| !c.is_control())
        .collect()
}

/// `OK who ROOM [@|+]NICK... [+MORE]`: the reply to `/who` (and to IRC's NAMES, should
/// a line client ever get one). Operators are marked `@`, voiced members `+`.
fn write_who<'m>(
    room: &RoomName,
    nicks: impl IntoIterator<Item = &'m Member>,
    more: usize,
    out: &mut String,
) -> std::fmt::Result {
    write!(out, "OK who {room}")?;
    for nick in nicks {
        write!(out, " {nick}")?;
    }
    if more > 0 {
        write!(out, " +{more}")?;
    }
    writeln!(out)
}

/// `OK whois NICK PROTOCOL IDLE_SECS USER@HOST ACCOUNT ROOMS [TEXT]`: USER@HOST as
/// IRC shows it; ACCOUNT the account the user is logged in to, or `-`; ROOMS
/// comma-separated with `@`/`+` roles, or `-`; TEXT is the away message, if any.
/// IDLE_SECS is `-` for a user of another node of a cluster.
fn write_whois(
    info: &WhoisInfo,
    userhost: Option<&UserHost>,
    out: &mut String,
) -> std::fmt::Result {
    let protocol = if info.irc { "irc" } else { "line" };
    write!(out, "OK whois {} {protocol} ", info.nick)?;
    match info.node {
        Some(_) => write!(out, "-")?,
        None => write!(out, "{}", info.idle_secs)?,
    }
    let nick = info.nick.as_str();
    match userhost {
        Some(known) => write!(out, " {}@{}", known.user(nick), known.host())?,
        None => write!(out, " {nick}@{}", identity::UNKNOWN_HOST)?,
    }
    match &info.account {
        Some(account) => write!(out, " {account}")?,
        None => write!(out, " -")?,
    }
    if info.rooms.is_empty() {
        write!(out, " -")?;
    }
    for (i, (room, role)) in info.rooms.iter().enumerate() {
        let sep = if i == 0 { ' ' } else { ',' };
        let prefix = role.prefix().map(String::from).unwrap_or_default();
        write!(out, "{sep}{prefix}{room}")?;
    }
    match &info.away {
        Some(away) => writeln!(out, " {away}"),
        None => writeln!(out),
    }
}

/// `HIST TIME MSGID MSG ROOM NICK TEXT` (or `ME`) per line, oldest first, then
/// `OK history ROOM N`.
fn write_playback(room: &RoomName, lines: &[HistoryLine], out: &mut String) -> std::fmt::Result {
    for line in lines {
        let marker = match line.kind {
            SayKind::Action => "ME",
            SayKind::Message | SayKind::Notice => "MSG",
        };
        let (at, from) = (timestamp(line.at_ms), &line.from);
        let text = strip_formatting(&line.text);
        let id = super::msgid_text(line.id);
        writeln!(out, "HIST {at} {id} {marker} {room} {from} {text}")?;
    }
    writeln!(out, "OK history {room} {}", lines.len())
}

/// `OK stats key=value ...`, one line.
fn write_stats(report: &StatsReport, out: &mut String) -> std::fmt::Result {
    let total: u64 = report.per_shard.iter().sum();
    write!(out, "OK stats connections={total} shards=")?;
    for (i, n) in report.per_shard.iter().enumerate() {
        let sep = if i == 0 { "" } else { "," };
        write!(out, "{sep}{n}")?;
    }
    write!(
        out,
        " messages_in={} deliveries_out={} writes={} slow_consumers={} uptime_s={} pid={}",
        report.messages_in,
        report.deliveries_out,
        report.writes,
        report.slow_consumers,
        report.uptime.as_secs(),
        report.pid
    )?;
    for (key, value) in &report.counters {
        write!(out, " {key}={value}")?;
    }
    if let Some(cluster) = &report.cluster {
        write!(
            out,
            " node={} backplane={} peers={} subscriptions={} backplane_lag_ms={} published={} received={} gaps={} unpublished={} recovered={}",
            cluster.node,
            if cluster.up { "up" } else { "down" },
            cluster.peers,
            cluster.subscriptions,
            cluster.lag_ms,
            cluster.published,
            cluster.received,
            cluster.gaps,
            cluster.unpublished,
            cluster.recovered
        )?;
    }
    let loops = &report.loops;
    per_shard(out, "turns", loops, |l| l.turns)?;
    per_shard(out, "wakes_sent", loops, |l| l.wakes_sent)?;
    per_shard(out, "wakes_received", loops, |l| l.wakes_received)?;
    per_shard(out, "inbox", loops, |l| l.inbox_messages)?;
    per_shard(out, "cross_shard", loops, |l| l.cross_shard)?;
    per_shard(out, "poll_ms", loops, |l| l.poll.as_millis() as u64)?;
    per_shard(out, "work_ms", loops, |l| l.work.as_millis() as u64)?;
    writeln!(out)
}

/// ` KEY=a,b,c`: one figure per shard.
fn per_shard(
    out: &mut String,
    key: &str,
    loops: &[LoopReport],
    figure: fn(&LoopReport) -> u64,
) -> std::fmt::Result {
    write!(out, " {key}=")?;
    for (i, report) in loops.iter().enumerate() {
        let sep = if i == 0 { "" } else { "," };
        write!(out, "{sep}{}", figure(report))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::protocol::{Member, Nick, ProtocolError, Refusal, Role, RoomName};

    fn text(event: &Event) -> String {
        String::from_utf8(line(event).to_vec()).unwrap()
    }

    #[test]
    fn markers_and_layout() {
        let room = RoomName::parse("lobby").unwrap();
        let nick = Nick::parse("alice").unwrap();
        let cases = [
            (
                Event::Message {
                    room: room.clone(),
                    from: nick.clone(),
                    text: "hi there".into(),
                },
                "MSG lobby alice hi there\n",
            ),
            (
                Event::Private {
                    from: nick.clone(),
                    text: "psst".into(),
                    notice: false,
                },
                "PRIV alice psst\n",
            ),
            (
                Event::Joined {
                    room: room.clone(),
                    nick: nick.clone(),
                },
                "EVENT lobby join alice\n",
            ),
            (Event::Pong(Some("7".into())), "PONG 7\n"),
            (
                Event::Error(ProtocolError::BadRoom),
                "ERR bad-room a room name is 1-32 of a-z, 0-9, _ or -\n",
            ),
            (
                Event::Closing(Refusal::ServerFull),
                "ERR server-full the server is full; try again later\n",
            ),
        ];
        for (event, want) in cases {
            assert_eq!(text(&event), want);
        }
    }

    #[test]
    fn member_lists_and_moderation_lines() {
        let room = RoomName::parse("lobby").unwrap();
        let nick = Nick::parse("alice").unwrap();
        let cases = [
            (
                Event::Who {
                    room: room.clone(),
                    rows: vec![
                        Member {
                            nick: nick.clone(),
                            role: Role::Operator,
                            away: false,
                            voiced: false,
                            realname: "alice".into(),
                        },
                        Member {
                            nick: Nick::parse("bob").unwrap(),
                            role: Role::Voiced,
                            away: false,
                            voiced: true,
                            realname: "bob".into(),
                        },
                    ]
                    .into_iter()
                    .map(|member| crate::protocol::WhoRow {
                        room: None,
                        member,
                        userhost: None,
                    })
                    .collect(),
                    more: 2,
                },
                "OK who lobby @alice +bob +2\n",
            ),
            (
                Event::ModeChanged {
                    room: room.clone(),
                    by: nick.clone(),
                    changes: crate::protocol::modes::parse("+mk", &["key"]).changes,
                },
                "EVENT lobby mode alice +m\nEVENT lobby mode alice +k key\n",
            ),
            (
                Event::Kicked {
                    room: room.clone(),
                    by: nick.clone(),
                    nick: Nick::parse("bob").unwrap(),
                    reason: "spam".into(),
                },
                "EVENT lobby kick alice bob spam\n",
            ),
            (
                Event::Left {
                    room,
                    nick,
                    reason: Some("bye all".into()),
                },
                "EVENT lobby leave alice bye all\n",
            ),
        ];
        for (event, want) in cases {
            assert_eq!(text(&event), want);
        }
    }

    #[test]
    fn everyday_lines() {
        let room = RoomName::parse("rust").unwrap();
        let nick = |n: &str| Nick::parse(n).unwrap();
        let many: Vec<Nick> = (0..10).map(|i| nick(&format!("g{i}"))).collect();
        let cases = [
            (Event::Sent(nick("bob")), "OK sent bob\n".to_string()),
            (Event::EchoIs(true), "OK echo on\n".to_string()),
            (
                Event::Summary {
                    room: room.clone(),
                    kind: SummaryKind::Joins,
                    count: 37,
                    nicks: many,
                },
                "EVENT rust joins 37 g0 g1 g2 g3 g4 g5 g6 g7 g8 g9 …\n".to_string(),
            ),
            (
                Event::Summary {
                    room: room.clone(),
                    kind: SummaryKind::Quits,
                    count: 2,
                    nicks: vec![nick("a"), nick("b")],
                },
                "EVENT rust quits 2 a b\n".to_string(),
            ),
            (
                Event::Playback {
                    room: room.clone(),
                    lines: vec![HistoryLine {
                        id: 0x1a2b,
                        at_ms: 1_764_078_002_117,
                        from: nick("alice"),
                        kind: SayKind::Action,
                        text: "\x02waves\x02".into(),
                    }],
                },
                "HIST 2025-11-25T13:40:02.117Z 0000000000001a2b ME rust alice waves\nOK history rust 1\n"
                    .to_string(),
            ),
            (
                Event::Whois(Box::new(WhoisInfo {
                    nick: nick("alice"),
                    realname: "alice".into(),
                    away: Some("lunch".into()),
                    rooms: vec![(RoomName::lobby(), Role::Member), (room, Role::Operator)],
                    idle_secs: 42,
                    account: None,
                    signon: 0,
                    irc: false,
                    node: None,
                }), Some(UserHost::new("h.ip").with_user("al"))),
                "OK whois alice line 42 ~al@h.ip - lobby,@rust lunch\n".to_string(),
            ),
            (
                Event::IdleWarning(60),
                "EVENT * idle 60 nothing received for a while: send any line (/ping will do) within 60 s to stay connected\n"
                    .to_string(),
            ),
        ];
        for (event, want) in cases {
            assert_eq!(text(&event), want);
        }
    }

    #[test]
    fn help_is_one_ok_line_per_command() {
        let help = text(&Event::Help);
        assert_eq!(help.lines().count(), HELP.len());
        assert!(help.lines().all(|l| l.starts_with("OK help ")));
    }

    #[test]
    fn stats_line() {
        let report = StatsReport {
            per_shard: vec![2, 3],
            messages_in: 10,
            deliveries_out: 40,
            writes: 8,
            slow_consumers: 1,
            uptime: std::time::Duration::from_secs(5),
            pid: 42,
            cluster: None,
            counters: vec![],
            loops: vec![
                LoopReport {
                    turns: 7,
                    wakes_sent: 1,
                    poll: std::time::Duration::from_millis(20),
                    ..LoopReport::default()
                },
                LoopReport {
                    turns: 9,
                    wakes_received: 1,
                    inbox_messages: 4,
                    ..LoopReport::default()
                },
            ],
        };
        assert_eq!(
            text(&Event::Stats(report)),
            "OK stats connections=5 shards=2,3 messages_in=10 deliveries_out=40 writes=8 \
             slow_consumers=1 uptime_s=5 pid=42 turns=7,9 wakes_sent=1,0 wakes_received=0,1 \
             inbox=0,4 cross_shard=0,0 poll_ms=20,0 work_ms=0,0\n"
        );
    }

    #[test]
    fn operator_lines_and_the_motd() {
        use crate::protocol::{KlineInfo, NoticeKind};
        let nick = |n| Nick::parse(n).unwrap();
        let motd = Event::Motd {
            lines: vec!["hello \x1b[31mred".into(), String::new()],
            asked: true,
        };
        assert_eq!(
            text(&motd),
            "EVENT * motd hello [31mred\nEVENT * motd\nOK motd 2\n"
        );
        let quiet = Event::Motd {
            lines: Vec::new(),
            asked: false,
        };
        assert_eq!(text(&quiet), "");
        let kline = KlineInfo {
            mask: "*!*@10.*".into(),
            set_by: "root".into(),
            set_at: 0,
            expires: None,
            reason: "spam".into(),
        };
        let cases = [
            (Event::YouAreOper("root".into()), "OK oper root\n"),
            (
                Event::Wallops {
                    from: nick("root"),
                    text: "hi".into(),
                },
                "EVENT * wallops root hi\n",
            ),
            (
                Event::ServerNotice {
                    kind: NoticeKind::Connect,
                    text: "bob connected".into(),
                },
                "EVENT * snotice connect bob connected\n",
            ),
            (
                Event::Killed {
                    by: nick("root"),
                    reason: "bye".into(),
                },
                "ERR killed you were killed by root: bye\n",
            ),
            (
                Event::Klines(vec![kline]),
                "KLINE *!*@10.* root perm spam\nOK klines 1\n",
            ),
            (Event::Rehashing, "OK rehash\n"),
        ];
        for (event, want) in cases {
            assert_eq!(text(&event), want);
        }
    }
}
