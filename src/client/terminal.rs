//! How `miochat connect` shows server lines to a person.
//!
//! On a terminal, each kind of line gets its own look (and colour unless `NO_COLOR` is
//! set): `[rust] alice: hi`, `* alice waves`, `*bob* psst`, `-- [rust] bob joined`,
//! `error: ...`. Nicks get a colour chosen from a hash of the nick, so a nick keeps its
//! colour. When stdout is not a terminal, lines are printed exactly as the server sent
//! them, which is what a script wants to parse.

/// How to show lines.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Style {
    /// Rewrite lines for people (stdout is a terminal).
    pub pretty: bool,
    /// Use ANSI colours (terminal and no `NO_COLOR`).
    pub color: bool,
}

const RESET: &str = "\x1b[0m";
const DIM: &str = "\x1b[2m";
const BOLD: &str = "\x1b[1m";
const RED: &str = "\x1b[31m";
const CYAN: &str = "\x1b[36m";
const MAGENTA: &str = "\x1b[35m";
const NICK_COLORS: [&str; 6] = [
    "\x1b[31m", "\x1b[32m", "\x1b[33m", "\x1b[34m", "\x1b[35m", "\x1b[36m",
];

impl Style {
    fn paint(&self, code: &str, text: &str) -> String {
        if self.color {
            format!("{code}{text}{RESET}")
        } else {
            text.to_string()
        }
    }

    fn nick(&self, nick: &str) -> String {
        let hash = nick
            .bytes()
            .fold(0u32, |h, b| h.wrapping_mul(31).wrapping_add(u32::from(b)));
        let color = NICK_COLORS[hash as usize % NICK_COLORS.len()];
        self.paint(&format!("{BOLD}{color}"), nick)
    }

    /// The text to print for one server line (without a newline).
    pub fn format(&self, line: &str) -> String {
        if !self.pretty {
            return line.to_string();
        }
        let mut words = line.splitn(4, ' ');
        let kind = words.next().unwrap_or("");
        let (a, b, c) = (words.next(), words.next(), words.next());
        match (kind, a, b, c) {
            ("MSG", Some(room), Some(nick), text) => format!(
                "{} {}: {}",
                self.paint(DIM, &format!("[{room}]")),
                self.nick(nick),
                text.unwrap_or("")
            ),
            ("ME", Some(room), Some(nick), text) => format!(
                "{} * {} {}",
                self.paint(DIM, &format!("[{room}]")),
                self.nick(nick),
                text.unwrap_or("")
            ),
            ("PRIV", Some(nick), _, _) => format!(
                "{} {}",
                self.paint(MAGENTA, &format!("*{nick}*")),
                after_words(line, 2)
            ),
            ("EVENT", Some(room), Some(what), args) => self.event(room, what, args.unwrap_or("")),
            ("ERR", Some(code), _, _) => {
                self.paint(RED, &format!("error: {} ({code})", after_words(line, 2)))
            }
            ("OK", Some(_), _, _) => self.paint(CYAN, &line[3..]),
            _ => line.to_string(),
        }
    }

    fn event(&self, room: &str, what: &str, args: &str) -> String {
        let mut parts = args.splitn(2, ' ');
        let (first, rest) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
        let text = match what {
            "join" => format!("{} joined", self.nick(first)),
            "leave" => format!("{} left", self.nick(first)),
            "nick" => format!("{} is now {}", self.nick(first), self.nick(rest)),
            "quit" => format!("{} quit ({rest})", self.nick(first)),
            "topic" => format!("{} set the topic: {rest}", self.nick(first)),
            "shutdown" => "the server is shutting down".to_string(),
            "motd" => args.to_string(),
            "wall" => format!("notice from {}: {rest}", self.nick(first)),
            "wallops" => format!("wallops from {}: {rest}", self.nick(first)),
            _ => format!("{what} {args}"),
        };
        let place = if room == "*" {
            String::new()
        } else {
            format!("[{room}] ")
        };
        self.paint(DIM, &format!("-- {place}")) + &text
    }
}

/// The text after the first `n` space-separated words of `line` (spacing kept).
fn after_words(line: &str, n: usize) -> &str {
    line.splitn(n + 1, ' ').nth(n).unwrap_or("")
}

#[cfg(test)]
mod tests {
    use super::*;

    const PLAIN: Style = Style {
        pretty: true,
        color: false,
    };

    #[test]
    fn pretty_lines_without_colour() {
        let cases = [
            ("MSG rust alice hello there", "[rust] alice: hello there"),
            ("ME rust alice waves", "[rust] * alice waves"),
            ("PRIV bob psst, lunch?", "*bob* psst, lunch?"),
            ("EVENT rust join bob", "-- [rust] bob joined"),
            ("EVENT rust nick bob robert", "-- [rust] bob is now robert"),
            (
                "EVENT rust quit bob gone fishing",
                "-- [rust] bob quit (gone fishing)",
            ),
            (
                "EVENT * shutdown server shutting down",
                "-- the server is shutting down",
            ),
            (
                "ERR nick-taken bob is already taken",
                "error: bob is already taken (nick-taken)",
            ),
            ("OK joined rust 2", "joined rust 2"),
            ("PONG", "PONG"),
        ];
        for (line, want) in cases {
            assert_eq!(PLAIN.format(line), want);
        }
    }

    #[test]
    fn raw_when_not_pretty_and_colour_when_asked() {
        let raw = Style {
            pretty: false,
            color: false,
        };
        assert_eq!(raw.format("MSG rust alice hi"), "MSG rust alice hi");
        let colour = Style {
            pretty: true,
            color: true,
        };
        let shown = colour.format("ERR bad-room x");
        assert!(
            shown.starts_with(RED) && shown.ends_with(RESET),
            "{shown:?}"
        );
        // A nick always gets the same colour.
        assert_eq!(colour.nick("alice"), colour.nick("alice"));
    }
}
