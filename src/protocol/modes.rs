//! Room modes on the wire: parsing `+mk-o key bob` into changes, and writing modes
//! and applied changes back as mode strings. Sans-IO; both protocols use it (the line
//! protocol's `/mode`, `/op`, `/ban` ... and IRC's `MODE`).
//!
//! The modes, as `CHANMODES=b,k,l,imnst` and `PREFIX=(ov)@+` advertise them:
//!
//! | letter | kind | parameter |
//! |---|---|---|
//! | `b` | list (A) | a mask to add or remove; none = show the list |
//! | `k` | key (B) | the key when set; when unset, one is consumed if present |
//! | `l` | limit (C) | a positive number when set; none when unset |
//! | `i m n s t` | flags (D) | none |
//! | `o v` | member roles | a nick |
//!
//! Parsing checks what can be checked without the room: the letter is known, a key is
//! 1–[`MAX_KEY_LEN`] bytes without spaces, commas, control characters or a leading
//! `:`, a limit is a positive integer, a mask normalises. A bad change is reported
//! ([`ModeError`]) and the others still apply, as IRC servers do. At most
//! [`MAX_PARAM_CHANGES`] changes with a parameter are taken from one command
//! (`MODES=`); the rest are ignored.

use std::fmt::{self, Write as _};

use super::mask;

/// Longest room key in bytes (`KEYLEN=`).
pub const MAX_KEY_LEN: usize = 23;
/// Changes with a parameter taken from one mode command (`MODES=`).
pub const MAX_PARAM_CHANGES: usize = 6;
/// The channel modes as `CHANMODES=` lists them (list, key, limit, flags).
pub const CHANMODES: &str = "b,k,l,imnst";

/// A room flag: a mode without a parameter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Flag {
    /// `i`: joining needs an invite.
    InviteOnly,
    /// `m`: only operators and voiced members speak.
    Moderated,
    /// `n`: no messages from outside the room.
    NoExternal,
    /// `s`: hidden from lists and from non-members' NAMES.
    Secret,
    /// `t`: only operators set the topic.
    TopicLock,
}

impl Flag {
    /// Every flag, in letter order.
    pub const ALL: [Flag; 5] = [
        Flag::InviteOnly,
        Flag::Moderated,
        Flag::NoExternal,
        Flag::Secret,
        Flag::TopicLock,
    ];

    /// The mode letter.
    pub fn letter(self) -> char {
        match self {
            Flag::InviteOnly => 'i',
            Flag::Moderated => 'm',
            Flag::NoExternal => 'n',
            Flag::Secret => 's',
            Flag::TopicLock => 't',
        }
    }

    fn from_letter(letter: char) -> Option<Flag> {
        Flag::ALL.into_iter().find(|f| f.letter() == letter)
    }
}

/// What one change is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ModeKind {
    /// A flag.
    Flag(Flag),
    /// `k`: the key when setting (a validated key); `None` when unsetting.
    Key(Option<Box<str>>),
    /// `l`: the limit when setting; `None` when unsetting.
    Limit(Option<u32>),
    /// `b`: a normalised mask.
    Ban(Box<str>),
    /// `o`: operator status for a nick.
    Op(Box<str>),
    /// `v`: voice for a nick.
    Voice(Box<str>),
}

/// One requested change: set (`+`) or unset (`-`) something.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModeChange {
    /// `+` (true) or `-` (false).
    pub set: bool,
    /// What.
    pub kind: ModeKind,
}

impl ModeChange {
    /// The mode letter.
    pub fn letter(&self) -> char {
        match &self.kind {
            ModeKind::Flag(flag) => flag.letter(),
            ModeKind::Key(_) => 'k',
            ModeKind::Limit(_) => 'l',
            ModeKind::Ban(_) => 'b',
            ModeKind::Op(_) => 'o',
            ModeKind::Voice(_) => 'v',
        }
    }

    /// The parameter as written on the wire, if the change carries one.
    pub fn param(&self) -> Option<String> {
        match &self.kind {
            ModeKind::Flag(_) | ModeKind::Limit(None) => None,
            // `k` always has a parameter on the wire (CHANMODES type B): `-k *`.
            ModeKind::Key(None) => Some("*".to_string()),
            ModeKind::Key(Some(key)) => Some(key.to_string()),
            ModeKind::Limit(Some(limit)) => Some(limit.to_string()),
            ModeKind::Ban(text) | ModeKind::Op(text) | ModeKind::Voice(text) => {
                Some(text.to_string())
            }
        }
    }
}

/// A change the parser refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ModeError {
    /// A letter that is not a room mode (IRC 472).
    Unknown(char),
    /// A mode that needs a parameter got none (IRC 696).
    MissingParam(char),
    /// A key that is not well-formed (IRC 525).
    BadKey,
    /// A parameter that is not acceptable (IRC 696): the letter, the parameter and
    /// why.
    BadParam(char, Box<str>, &'static str),
}

impl fmt::Display for ModeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ModeError::Unknown(letter) => write!(f, "{letter} is not a room mode"),
            ModeError::MissingParam(letter) => write!(f, "+{letter} needs a parameter"),
            ModeError::BadKey => write!(
                f,
                "a key is 1-{MAX_KEY_LEN} bytes without spaces, commas or a leading :"
            ),
            ModeError::BadParam(letter, param, why) => write!(f, "{letter} {param}: {why}"),
        }
    }
}

/// A parsed mode command: the changes to make, the refused ones, and whether the ban
/// list was asked for (`b` or `+b` without a mask).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ModeRequest {
    /// Valid changes, in the order given.
    pub changes: Vec<ModeChange>,
    /// Refused changes.
    pub errors: Vec<ModeError>,
    /// `b` without a mask: show the ban list.
    pub list_bans: bool,
}

impl ModeRequest {
    /// True for a request that changes nothing and asks for no list: a query of the
    /// current modes (`MODE #room`, `/mode`).
    pub fn is_query(&self) -> bool {
        self.changes.is_empty() && self.errors.is_empty() && !self.list_bans
    }

    /// A request of one change.
    pub fn one(set: bool, kind: ModeKind) -> ModeRequest {
        ModeRequest {
            changes: vec![ModeChange { set, kind }],
            ..ModeRequest::default()
        }
    }
}

/// Parses a mode string (`+mk-o`) and its parameters, in order.
pub fn parse(modestring: &str, params: &[&str]) -> ModeRequest {
    let mut request = ModeRequest::default();
    let mut params = params.iter().copied();
    let mut set = true;
    let mut with_param = 0;
    for letter in modestring.chars() {
        match letter {
            '+' => set = true,
            '-' => set = false,
            'b' | 'k' | 'l' | 'o' | 'v' => {
                let takes = matches!(letter, 'b' | 'o' | 'v') || letter == 'k' || set;
                if takes && with_param == MAX_PARAM_CHANGES {
                    continue;
                }
                let param = if takes { params.next() } else { None };
                with_param += usize::from(param.is_some());
                match with_param_kind(letter, set, param) {
                    Ok(Some(kind)) => request.changes.push(ModeChange { set, kind }),
                    Ok(None) => request.list_bans |= set,
                    Err(error) => request.errors.push(error),
                }
            }
            _ => match Flag::from_letter(letter) {
                Some(flag) => request.changes.push(ModeChange {
                    set,
                    kind: ModeKind::Flag(flag),
                }),
                None => request.errors.push(ModeError::Unknown(letter)),
            },
        }
    }
    request
}

/// The change a parameter mode makes; `Ok(None)` for a ban-list query (`b` without a
/// mask; nothing for `-b` without one).
fn with_param_kind(
    letter: char,
    set: bool,
    param: Option<&str>,
) -> Result<Option<ModeKind>, ModeError> {
    let param = param.filter(|p| !p.is_empty());
    let kind = match (letter, param) {
        ('b', None) => return Ok(None),
        ('b', Some(typed)) => match mask::normalize(typed) {
            Ok(mask) => ModeKind::Ban(mask.into()),
            Err(_) => return Err(ModeError::BadParam('b', typed.into(), "not a valid mask")),
        },
        ('k', _) if !set => ModeKind::Key(None),
        ('k', None) => return Err(ModeError::MissingParam('k')),
        ('k', Some(key)) if valid_key(key) => ModeKind::Key(Some(key.into())),
        ('k', _) => return Err(ModeError::BadKey),
        ('l', _) if !set => ModeKind::Limit(None),
        ('l', None) => return Err(ModeError::MissingParam('l')),
        ('l', Some(text)) => match text.parse::<u32>() {
            Ok(limit) if limit > 0 => ModeKind::Limit(Some(limit)),
            _ => {
                let why = "the limit must be a positive number";
                return Err(ModeError::BadParam('l', text.into(), why));
            }
        },
        ('o' | 'v', None) => return Err(ModeError::MissingParam(letter)),
        ('o', Some(nick)) => ModeKind::Op(nick.into()),
        (_, Some(nick)) => ModeKind::Voice(nick.into()),
        (_, None) => return Err(ModeError::MissingParam(letter)),
    };
    Ok(Some(kind))
}

/// A key is 1–[`MAX_KEY_LEN`] bytes, no spaces, commas or control characters, and
/// does not start with `:`.
pub fn valid_key(key: &str) -> bool {
    let bad = |c: char| c.is_whitespace() || c == ',' || c.is_control();
    !key.is_empty() && key.len() <= MAX_KEY_LEN && !key.starts_with(':') && !key.contains(bad)
}

/// Writes applied changes as one mode string and its parameters: `+o-v alice bob`.
pub fn changes_string(changes: &[ModeChange]) -> String {
    let mut letters = String::new();
    let mut params = String::new();
    let mut sign = None;
    for change in changes {
        if sign != Some(change.set) {
            letters.push(if change.set { '+' } else { '-' });
            sign = Some(change.set);
        }
        letters.push(change.letter());
        if let Some(param) = change.param() {
            let _ = write!(params, " {param}");
        }
    }
    letters + &params
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn change(set: bool, kind: ModeKind) -> ModeChange {
        ModeChange { set, kind }
    }

    #[test]
    fn flags_and_parameters_in_order() {
        let r = parse("+mk-o+l", &["sesame", "bob", "10"]);
        assert_eq!(
            r.changes,
            [
                change(true, ModeKind::Flag(Flag::Moderated)),
                change(true, ModeKind::Key(Some("sesame".into()))),
                change(false, ModeKind::Op("bob".into())),
                change(true, ModeKind::Limit(Some(10))),
            ]
        );
        assert!(r.errors.is_empty() && !r.list_bans);
        let unset = parse("-lk", &["ignored-key"]);
        assert_eq!(
            unset.changes,
            [
                change(false, ModeKind::Limit(None)),
                change(false, ModeKind::Key(None))
            ]
        );
        // A letter without a sign is a set, as on IRC servers.
        assert_eq!(
            parse("t", &[]).changes,
            [change(true, ModeKind::Flag(Flag::TopicLock))]
        );
    }

    #[test]
    fn bans_are_normalised_and_b_alone_lists() {
        assert!(parse("b", &[]).list_bans);
        assert!(parse("+b", &[]).list_bans);
        assert!(!parse("-b", &[]).list_bans);
        let r = parse("+b-b", &["bob", "*.example.org"]);
        assert_eq!(
            r.changes,
            [
                change(true, ModeKind::Ban("bob!*@*".into())),
                change(false, ModeKind::Ban("*!*@*.example.org".into()))
            ]
        );
    }

    #[test]
    fn refused_changes() {
        assert_eq!(parse("+x", &[]).errors, [ModeError::Unknown('x')]);
        assert_eq!(parse("+k", &[]).errors, [ModeError::MissingParam('k')]);
        for key in ["has space", "a,b", ":colon", &"k".repeat(MAX_KEY_LEN + 1)] {
            assert_eq!(parse("+k", &[key]).errors, [ModeError::BadKey], "{key:?}");
        }
        for limit in ["0", "-5", "ten", "99999999999"] {
            assert!(
                matches!(
                    parse("+l", &[limit]).errors[..],
                    [ModeError::BadParam('l', _, _)]
                ),
                "{limit}"
            );
        }
        assert_eq!(parse("+l", &[]).errors, [ModeError::MissingParam('l')]);
        assert_eq!(parse("+o", &[]).errors, [ModeError::MissingParam('o')]);
        // The valid changes around a refused one still apply.
        let r = parse("+mxn", &[]);
        assert_eq!(r.changes.len(), 2);
        assert_eq!(r.errors, [ModeError::Unknown('x')]);
    }

    #[test]
    fn at_most_six_changes_with_parameters() {
        let nicks = ["a", "b", "c", "d", "e", "f", "g", "h"];
        let r = parse("+oooooooo", &nicks);
        assert_eq!(r.changes.len(), MAX_PARAM_CHANGES);
        assert!(r.errors.is_empty());
    }

    #[test]
    fn change_strings_group_signs() {
        let changes = [
            change(true, ModeKind::Op("alice".into())),
            change(true, ModeKind::Flag(Flag::Moderated)),
            change(false, ModeKind::Voice("bob".into())),
            change(false, ModeKind::Key(None)),
        ];
        assert_eq!(changes_string(&changes), "+om-vk alice bob *");
        assert!(parse("", &[]).is_query());
    }
}
