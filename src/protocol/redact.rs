//! Secrets masked out of a protocol line before it is logged (the protocol trace).
//!
//! Why here: which words of a line are a password is protocol knowledge (both
//! grammars), and a trace that leaks passwords is worse than none. The rule errs on
//! the side of masking: every argument of a command that carries a secret is
//! replaced by `***`, except a leading account or operator name, which the reader
//! of a trace needs and which is no secret.
//!
//! Masked: line-protocol `/login`, `/identify`, `/register`, `/unregister`,
//! `/passwd`, `/oper`; IRC `PASS`, `OPER`, `REGISTER`, `AUTHENTICATE` payloads (a
//! mechanism name stays), and `PRIVMSG`/`NOTICE` to NickServ and `NICKSERV`/`NS`
//! (the verb stays).

use std::borrow::Cow;

const MASK: &str = "***";

/// SASL mechanism names and the empty payload: what an `AUTHENTICATE` may show.
const MECHANISMS: [&str; 7] = [
    "PLAIN",
    "EXTERNAL",
    "SCRAM-SHA-1",
    "SCRAM-SHA-256",
    "SCRAM-SHA-512",
    "*",
    "+",
];

/// `line` with its secrets masked (borrowed as it is when it has none).
pub fn redact(line: &str) -> Cow<'_, str> {
    if let Some(command) = line.strip_prefix('/') {
        return redact_line_command(line, command);
    }
    redact_irc(line)
}

/// `/verb args...`: a line-protocol command.
fn redact_line_command<'a>(line: &'a str, command: &str) -> Cow<'a, str> {
    let (verb, args) = command.split_once(' ').unwrap_or((command, ""));
    let keep_name = match verb.to_ascii_lowercase().as_str() {
        "login" | "identify" | "oper" => true,
        "register" | "unregister" | "passwd" => false,
        _ => return Cow::Borrowed(line),
    };
    Cow::Owned(format!("/{verb}{}", masked_args(args, keep_name)))
}

/// ` NAME ***` or ` ***` (nothing if there were no arguments).
fn masked_args(args: &str, keep_name: bool) -> String {
    let words: Vec<&str> = args.split_whitespace().collect();
    match (words.as_slice(), keep_name) {
        ([], _) => String::new(),
        ([name, _, ..], true) => format!(" {name} {MASK}"),
        _ => format!(" {MASK}"),
    }
}

/// An IRC line: `[@tags] [:prefix] COMMAND params`.
fn redact_irc(line: &str) -> Cow<'_, str> {
    let mut rest = line;
    while rest.starts_with('@') || rest.starts_with(':') {
        let Some((_, after)) = rest.split_once(' ') else {
            return Cow::Borrowed(line);
        };
        rest = after.trim_start_matches(' ');
    }
    let head = &line[..line.len() - rest.len()];
    let (command, params) = rest.split_once(' ').unwrap_or((rest, ""));
    let masked = match command.to_ascii_uppercase().as_str() {
        "PASS" | "REGISTER" if !params.is_empty() => format!(" {MASK}"),
        "OPER" => masked_args(params.trim_start_matches(':'), true),
        "AUTHENTICATE" => {
            let payload = params.trim_start_matches(':');
            if payload.is_empty() || MECHANISMS.contains(&payload) {
                return Cow::Borrowed(line);
            }
            format!(" {MASK}")
        }
        "PRIVMSG" | "NOTICE" => {
            let (target, text) = params.split_once(' ').unwrap_or((params, ""));
            if !target.eq_ignore_ascii_case("NickServ") {
                return Cow::Borrowed(line);
            }
            let text = text.strip_prefix(':').unwrap_or(text);
            format!(" {target} :{}", service_text(text))
        }
        "NICKSERV" | "NS" => format!(" {}", service_text(params.trim_start_matches(':'))),
        _ => return Cow::Borrowed(line),
    };
    Cow::Owned(format!("{head}{command}{masked}"))
}

/// `VERB ***`: what is said to NickServ, the verb kept.
fn service_text(text: &str) -> String {
    match text.split_once(' ') {
        Some((verb, rest)) if !rest.trim().is_empty() => format!("{verb} {MASK}"),
        _ => text.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_protocol_secrets_are_masked() {
        assert_eq!(redact("/login alice hunter2"), "/login alice ***");
        assert_eq!(redact("/identify hunter2"), "/identify ***");
        assert_eq!(redact("/register hunter2"), "/register ***");
        assert_eq!(redact("/passwd old new"), "/passwd ***");
        assert_eq!(redact("/oper root s3cret"), "/oper root ***");
        assert_eq!(redact("/unregister hunter2"), "/unregister ***");
        assert_eq!(redact("/login"), "/login");
        assert_eq!(redact("/join rust"), "/join rust");
        assert_eq!(redact("hello hunter2"), "hello hunter2");
    }

    #[test]
    fn irc_secrets_are_masked() {
        assert_eq!(redact("PASS hunter2"), "PASS ***");
        assert_eq!(redact("PASS :hunter 2"), "PASS ***");
        assert_eq!(redact("OPER root s3cret"), "OPER root ***");
        assert_eq!(redact("AUTHENTICATE PLAIN"), "AUTHENTICATE PLAIN");
        assert_eq!(redact("AUTHENTICATE +"), "AUTHENTICATE +");
        assert_eq!(
            redact("AUTHENTICATE AGFsaWNlAGh1bnRlcjI="),
            "AUTHENTICATE ***"
        );
        assert_eq!(
            redact("REGISTER alice * hunter2"),
            "REGISTER ***",
            "IRCv3 account registration"
        );
        assert_eq!(
            redact("PRIVMSG NickServ :IDENTIFY alice hunter2"),
            "PRIVMSG NickServ :IDENTIFY ***"
        );
        assert_eq!(
            redact("@label=1 :alice PRIVMSG nickserv :register hunter2"),
            "@label=1 :alice PRIVMSG nickserv :register ***"
        );
        assert_eq!(redact("NS IDENTIFY hunter2"), "NS IDENTIFY ***");
        assert_eq!(redact("PRIVMSG #rust :hunter2"), "PRIVMSG #rust :hunter2");
        assert_eq!(redact("NICK alice"), "NICK alice");
    }

    #[test]
    fn server_sasl_data_is_masked_too() {
        assert_eq!(
            redact(":miochat.local AUTHENTICATE cj1hYmM="),
            ":miochat.local AUTHENTICATE ***"
        );
    }
}
