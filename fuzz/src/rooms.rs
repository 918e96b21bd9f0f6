//! Checks of the room-mode parser (`protocol::modes`) and ban masks
//! (`protocol::mask`), which every `MODE`, `/mode` and `/ban` goes through and which
//! need no server: their rules are stated in those modules and checked here on
//! whatever words a fuzzed line holds.

use miochat::protocol::Nick;
use miochat::protocol::irc::HOST;
use miochat::protocol::mask::{self, Identity, MAX_MASK_LEN};
use miochat::protocol::modes::{self, MAX_PARAM_CHANGES, ModeChange, ModeKind};

/// Longest pattern and text compared with the reference matcher (it is quadratic).
const MAX_GLOB: usize = 64;

/// `modes::parse(modestring, params)`: at most `MODES=` changes that take a
/// parameter, every key valid, every limit positive, every ban mask normalised; and
/// writing the changes back out parses to the same changes when their parameters are
/// words. An unset key (`-k`) is left out of the count: it is written with a `*` but
/// takes a parameter only when one is there, so `-kkkk` gives one change per `k`.
pub fn mode_request(modestring: &str, params: &[&str]) {
    let request = modes::parse(modestring, params);
    let written_with_param = request.changes.iter().filter(|c| c.param().is_some());
    let unset_key = |c: &&ModeChange| c.kind == ModeKind::Key(None);
    let taking = written_with_param.clone().filter(|c| !unset_key(c)).count();
    assert!(
        taking <= MAX_PARAM_CHANGES,
        "{taking} changes with a parameter"
    );
    for change in &request.changes {
        match &change.kind {
            ModeKind::Key(Some(key)) => assert!(modes::valid_key(key), "key {key:?}"),
            ModeKind::Limit(Some(limit)) => assert!(*limit > 0),
            ModeKind::Ban(text) => ban_mask(text),
            _ => {}
        }
    }
    let word =
        |p: &String| !p.is_empty() && !p.starts_with(':') && !p.contains(char::is_whitespace);
    let words_only = written_with_param
        .clone()
        .all(|c| c.param().is_some_and(|p| word(&p)));
    if words_only && written_with_param.count() <= MAX_PARAM_CHANGES {
        let written = modes::changes_string(&request.changes);
        let mut words = written.split(' ');
        let letters = words.next().unwrap_or("");
        let again: Vec<&str> = words.collect();
        let reparsed = modes::parse(letters, &again);
        assert_eq!(
            reparsed.changes, request.changes,
            "round trip of {written:?}"
        );
    }
}

/// A stored ban mask: at most `MAX_MASK_LEN` bytes, `nick!user@host`, normalising
/// to itself, and matching itself.
fn ban_mask(text: &str) {
    assert!(text.len() <= MAX_MASK_LEN, "{} bytes: {text:?}", text.len());
    assert!(text.contains('!') && text.contains('@'), "{text:?}");
    assert_eq!(mask::normalize(text).as_deref(), Ok(text), "not idempotent");
    assert!(
        mask::glob_matches(text, text),
        "{text:?} does not match itself"
    );
}

/// `mask::normalize(typed)`: a nick given alone bans exactly that nick as every user
/// is shown (`nick!nick@miochat`), whatever their address.
pub fn typed_mask(typed: &str) {
    let Ok(stored) = mask::normalize(typed) else {
        return;
    };
    ban_mask(&stored);
    if let Ok(nick) = Nick::parse(typed) {
        let shown = miochat::protocol::identity::UserHost::new(HOST);
        let who = Identity {
            nick: nick.as_str(),
            user: shown.user(nick.as_str()),
            shown_host: HOST,
            address: std::net::Ipv4Addr::LOCALHOST.into(),
        };
        assert!(who.matches(&stored), "{stored:?} misses {nick}");
    }
}

/// `mask::glob_matches(pattern, text)` agrees with a plain dynamic-programming
/// matcher, ignores ASCII case, and `*` matches everything.
pub fn glob(pattern: &str, text: &str) {
    let (pattern, text) = (prefix(pattern), prefix(text));
    let matched = mask::glob_matches(pattern, text);
    assert_eq!(
        matched,
        reference(pattern.as_bytes(), text.as_bytes()),
        "{pattern:?} {text:?}"
    );
    let upper = pattern.to_ascii_uppercase();
    assert_eq!(
        mask::glob_matches(&upper, &text.to_ascii_lowercase()),
        matched
    );
    assert!(mask::glob_matches("*", text));
}

/// `text` cut to at most [`MAX_GLOB`] bytes at a character boundary.
fn prefix(text: &str) -> &str {
    let mut end = text.len().min(MAX_GLOB);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

/// Glob matching by table: `table[i][j]` is whether `pattern[i..]` matches `text[j..]`.
fn reference(pattern: &[u8], text: &[u8]) -> bool {
    let mut table = vec![vec![false; text.len() + 1]; pattern.len() + 1];
    table[pattern.len()][text.len()] = true;
    for i in (0..pattern.len()).rev() {
        for j in (0..=text.len()).rev() {
            table[i][j] = match pattern[i] {
                b'*' => table[i + 1][j] || (j < text.len() && table[i][j + 1]),
                c => {
                    j < text.len()
                        && (c == b'?' || c.eq_ignore_ascii_case(&text[j]))
                        && table[i + 1][j + 1]
                }
            };
        }
    }
    table[0][0]
}
