//! The documentation, checked against the code it describes, so that it stays true
//! when the code moves:
//!
//! - every code name the docs cite in backticks still exists: a `Type::method` has a
//!   `fn method` in a file that implements `Type`, a `Type::Variant` is in the enum, a
//!   `function()` is a `fn`, a `CamelCase` name is a type, a `SCREAMING_CASE` name a
//!   `const`, a `module::item` path names real modules, and a `*.rs` or `src/...`
//!   path is a file;
//! - the constants table in `docs/README.md` gives each constant the value its `const`
//!   line has in the file it names;
//! - every relative link leads to a file (and heading) that exists;
//! - README.md and docs/*.md stay within their word budget.
//!
//! What counts as a code name is decided by its shape alone (see [`classify`]), so
//! protocol words (`/nick`, `OK`, `ERR flood`, `message-tags`) are never taken for one.
//! Code inside fenced blocks is left alone: it shows the ladder's examples and the
//! wire, not names of the server.

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};

/// The one document the other helpers add later; links to it are allowed to dangle.
const NOT_YET_WRITTEN: &[&str] = &["docs/OPERATING.md"];

/// All of README.md and docs/*.md together (the project's budget is 24 000 words).
const WORD_BUDGET: usize = 24_000;
/// DESIGN.md alone: the edge-triggered core, read in one sitting.
const DESIGN_BUDGET: usize = 5_000;

/// Names from std, mio, rustls and the operating system that the docs may cite in
/// backticks without miochat defining them.
const EXTERNAL: &[&str] = &[
    "Arc",
    "Box",
    "Vec",
    "String",
    "Option",
    "Result",
    "Mutex",
    "RwLock",
    "OnceLock",
    "AtomicBool",
    "AtomicU64",
    "AtomicUsize",
    "HashMap",
    "HashTable",
    "VecDeque",
    "Duration",
    "Instant",
    "IoSlice",
    "WouldBlock",
    "ErrorKind",
    "Interrupted",
    "TcpStream",
    "TcpListener",
    "Poll",
    "Waker",
    "Token",
    "Events",
    "Interest",
    "Registry",
    "Slab",
    "Sender",
    "Receiver",
    "SyncSender",
    "ServerConnection",
    "HashSet",
    "TCP_NODELAY",
    "SO_REUSEPORT",
    "SO_RCVBUF",
    "SO_LINGER",
    "MSG_PEEK",
    "UIO_MAXIOV",
    "EMFILE",
    "ENFILE",
    "EPOLLET",
    "EPOLLIN",
    "EPOLLOUT",
    "WITHOUT_ROWID",
    "PRAGMA",
    "NO_COLOR",
    "X_FORWARDED_FOR",
];
/// First segments of paths that are not miochat's.
const EXTERNAL_ROOTS: &[&str] = &[
    "std",
    "core",
    "io",
    "mio",
    "mpsc",
    "rustls",
    "slab",
    "net",
    "sync",
    "fmt",
    "time",
    "tokio",
    "libc",
    "argh",
    "socket2",
    "tungstenite",
    "httparse",
    "rusqlite",
    "usize",
    "u64",
    "u32",
    "u16",
    "u8",
    "i64",
    "i32",
];
/// Words of the protocols, of Linux and of other servers' configuration files that look
/// like code names by their shape.
const OTHER_WORDS: &[&str] = &[
    "NickServ",
    "ChanServ",
    "VmRSS",
    "MaxConnections",
    "MaxConnectionsIP",
    "MaxJoins",
    "MaxPenaltyTime",
];
/// Top-level folders whose paths the docs may cite (`src/server/`, `scripts/x.sh`).
const REPO_DIRS: &[&str] = &[
    "src/",
    "tests/",
    "examples/",
    "scripts/",
    "fuzz/",
    "web/",
    "docs/",
    ".ci/",
];

/// A code name found in the docs, by shape.
#[derive(Debug, PartialEq, Eq)]
enum Name {
    /// `a::b::C::d`: modules, then possibly a type and a member.
    Path(Vec<String>),
    /// `name()`: a function.
    Function(String),
    /// `CamelCase`, possibly inside `Arc<...>`: types.
    Types(Vec<String>),
    /// `SCREAMING_CASE`: a constant.
    Const(String),
    /// `shard.rs`, `src/server/`, `scripts/cluster.sh`: a file or folder.
    File(String),
}

/// The Rust sources a name may live in, with their text.
struct Sources {
    files: Vec<(PathBuf, String)>,
}

impl Sources {
    fn load(root: &Path) -> Sources {
        let mut files = Vec::new();
        for dir in ["src", "tests", "examples", "fuzz/src", "fuzz/fuzz_targets"] {
            walk(&root.join(dir), &mut |path| {
                // Not this file: its own test strings would count as code.
                if path.extension().is_some_and(|e| e == "rs") && !path.ends_with("tests/docs.rs") {
                    let text = fs::read_to_string(path).expect("read source");
                    files.push((path.to_path_buf(), text));
                }
            });
        }
        Sources { files }
    }

    fn any(&self, test: impl Fn(&str) -> bool) -> bool {
        self.files.iter().any(|(_, text)| test(text))
    }

    fn has_fn(&self, name: &str) -> bool {
        self.any(|text| defines(text, "fn", name))
    }

    fn has_type(&self, name: &str) -> bool {
        ["struct", "enum", "trait", "type"]
            .iter()
            .any(|kw| self.any(|text| defines(text, kw, name)))
    }

    fn has_const(&self, name: &str) -> bool {
        self.any(|text| defines(text, "const", name) || defines(text, "static", name))
    }

    /// A line that starts with `name` as an enum variant does: `Name,`, `Name {`,
    /// `Name(`.
    fn has_variant(&self, name: &str) -> bool {
        self.any(|text| text.lines().any(|line| starts_variant(line.trim(), name)))
    }

    /// `name` as a whole word anywhere (a protocol code spelled in a string literal).
    fn has_word(&self, name: &str) -> bool {
        self.any(|text| {
            text.match_indices(name).any(|(at, _)| {
                let before = text[..at].chars().next_back();
                let after = text[at + name.len()..].chars().next();
                !before.is_some_and(is_ident_char) && !after.is_some_and(is_ident_char)
            })
        })
    }

    /// A module: a file `name.rs`, a folder `name/`, or an inline `mod name`.
    fn has_module(&self, name: &str) -> bool {
        matches!(name, "crate" | "self" | "super" | "tests")
            || self.files.iter().any(|(path, text)| {
                path.file_stem().is_some_and(|s| s == name)
                    || path.components().any(|c| c.as_os_str() == name)
                    || defines(text, "mod", name)
            })
    }

    /// Files with an `impl` block for `ty` (inherent or of a trait).
    fn impl_files(&self, ty: &str) -> Vec<&str> {
        self.files
            .iter()
            .filter(|(_, text)| text.lines().any(|line| impl_line_for(line, ty)))
            .map(|(_, text)| text.as_str())
            .collect()
    }

    /// The text of the file that defines enum `ty`, if any.
    fn enum_file(&self, ty: &str) -> Option<&str> {
        (self.files.iter())
            .find(|(_, text)| defines(text, "enum", ty))
            .map(|(_, text)| text.as_str())
    }
}

/// Calls `each` for every file under `dir`.
fn walk(dir: &Path, each: &mut impl FnMut(&Path)) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            walk(&path, each);
        } else {
            each(&path);
        }
    }
}

/// True if `text` has `KEYWORD NAME` followed by something that ends the name.
fn defines(text: &str, keyword: &str, name: &str) -> bool {
    let needle = format!("{keyword} {name}");
    text.match_indices(&needle).any(|(at, _)| {
        let before = text[..at].chars().next_back();
        let after = text[at + needle.len()..].chars().next();
        !before.is_some_and(is_ident_char) && !after.is_some_and(is_ident_char)
    })
}

/// A field `name:` (public or not) of `struct ty` (or `struct ty<...>`) in `text`.
fn has_field(text: &str, ty: &str, name: &str) -> bool {
    let plain = text.find(&format!("struct {ty} "));
    let Some(start) = plain.or_else(|| text.find(&format!("struct {ty}<"))) else {
        return false;
    };
    let body = text[start..]
        .lines()
        .skip(1)
        .take_while(|line| *line != "}");
    body.map(str::trim_start).any(|line| {
        let line = line
            .strip_prefix("pub(crate) ")
            .or(line.strip_prefix("pub "))
            .unwrap_or(line);
        line.strip_prefix(name)
            .is_some_and(|rest| rest.starts_with(':') && !rest.starts_with("::"))
    })
}

/// `Name`, `Name,`, `Name {`, `Name(` (an enum variant's line).
fn starts_variant(line: &str, name: &str) -> bool {
    line.strip_prefix(name)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with([' ', '(', ',', '{']))
}

fn is_ident_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

/// `impl Ty`, `impl<'a> Ty<'a>`, `impl Trait for Ty`.
fn impl_line_for(line: &str, ty: &str) -> bool {
    let line = line.trim_start();
    if !line.starts_with("impl") {
        return false;
    }
    let head = line.split('{').next().unwrap_or(line);
    let target = head.rsplit(" for ").next().unwrap_or(head);
    let target = target.trim_start_matches("impl").trim_start();
    let target = if target.starts_with('<') {
        target.split_once('>').map_or(target, |(_, rest)| rest)
    } else {
        target
    };
    let word: String = target
        .trim()
        .chars()
        .take_while(|&c| is_ident_char(c))
        .collect();
    word == ty
}

fn is_camel(word: &str) -> bool {
    let mut chars = word.chars();
    chars.next().is_some_and(|c| c.is_ascii_uppercase())
        && word.chars().all(|c| c.is_ascii_alphanumeric())
        && word.chars().any(|c| c.is_ascii_lowercase())
}

fn is_screaming(word: &str) -> bool {
    word.contains('_')
        && word.starts_with(|c: char| c.is_ascii_uppercase())
        && word
            .chars()
            .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
}

fn is_ident(word: &str) -> bool {
    !word.is_empty()
        && !word.starts_with(|c: char| c.is_ascii_digit())
        && word.chars().all(is_ident_char)
}

/// What a backticked span names, judged by its shape alone; `None` for anything that
/// is not clearly a code name (protocol lines, flags, commands, values).
fn classify(span: &str) -> Option<Name> {
    let span = span.trim();
    if span.is_empty() || span.contains(char::is_whitespace) {
        return None;
    }
    if span.ends_with(".rs") || REPO_DIRS.iter().any(|dir| span.starts_with(dir)) {
        return Some(Name::File(span.to_string()));
    }
    // `name(args)` and `Type::name(args)`: the arguments are not names.
    let (head, called) = match span.find('(') {
        Some(open) if span.ends_with(')') => (&span[..open], true),
        Some(_) => return None,
        None => (span, false),
    };
    if head.contains("::") {
        let parts: Vec<String> = head.split("::").map(str::to_string).collect();
        return parts
            .iter()
            .all(|p| is_ident(p))
            .then_some(Name::Path(parts));
    }
    if called {
        if !span.ends_with("()") {
            return None; // `poll(2)`, `max(id)`: a man page, SQL, not a Rust call
        }
        let lower = head.starts_with(|c: char| c.is_ascii_lowercase() || c == '_');
        return (is_ident(head) && lower).then(|| Name::Function(head.to_string()));
    }
    if is_screaming(span) {
        return Some(Name::Const(span.to_string()));
    }
    if span.contains('<') && span.ends_with('>') {
        let words = span
            .split(|c: char| !is_ident_char(c))
            .filter(|w| is_camel(w));
        return Some(Name::Types(words.map(str::to_string).collect()));
    }
    is_camel(span).then(|| Name::Types(vec![span.to_string()]))
}

/// Why `name` does not match the code, or `None` if it does.
fn check(name: &Name, sources: &Sources, root: &Path) -> Option<String> {
    match name {
        Name::File(path) => check_file(path, root),
        Name::Function(f) => (!sources.has_fn(f)).then(|| format!("no `fn {f}`")),
        Name::Const(c) if EXTERNAL.contains(&c.as_str()) => None,
        Name::Const(c) => (!sources.has_const(c) && !sources.has_word(c))
            .then(|| format!("no `const {c}`, nor the word anywhere in the code")),
        Name::Types(types) => types
            .iter()
            .filter(|t| !EXTERNAL.contains(&t.as_str()) && !OTHER_WORDS.contains(&t.as_str()))
            .find(|t| !sources.has_type(t) && !sources.has_variant(t))
            .map(|t| format!("no type or enum variant `{t}`")),
        Name::Path(parts) => check_path(parts, sources),
    }
}

/// A file or folder of the repository: a path from its root, or a bare `name.rs`
/// (or `folder/name.rs`) found anywhere under src/, tests/, examples/ or fuzz/.
fn check_file(path: &str, root: &Path) -> Option<String> {
    if REPO_DIRS.iter().any(|dir| path.starts_with(dir)) {
        if generated(path, root) {
            return None;
        }
        let known = known_part(path);
        return (!root.join(&known).exists()).then(|| format!("no file {known}"));
    }
    let mut found = false;
    for dir in ["src", "tests", "examples", "fuzz"] {
        walk(&root.join(dir), &mut |file| {
            found |= file.to_string_lossy().ends_with(&format!("/{path}"));
        });
    }
    (!found).then(|| format!("no file named {path}"))
}

/// The part of a path before a placeholder segment (`fuzz/seeds/TARGET` →
/// `fuzz/seeds`).
fn known_part(path: &str) -> String {
    let placeholder = |seg: &str| {
        let stem = seg.split('.').next().unwrap_or(seg);
        stem.len() > 1 && stem.chars().all(|c| c.is_ascii_uppercase() || c == '_')
    };
    let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    let known = segments.iter().take_while(|s| !placeholder(s));
    known.copied().collect::<Vec<_>>().join("/")
}

/// True for what a tool writes and git ignores (`fuzz/corpus/`, `fuzz/logs/...`).
fn generated(path: &str, root: &Path) -> bool {
    let mut patterns = Vec::new();
    for (dir, file) in [("", ".gitignore"), ("fuzz/", "fuzz/.gitignore")] {
        let text = fs::read_to_string(root.join(file)).unwrap_or_default();
        let lines = text
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'));
        patterns.extend(lines.map(|l| format!("{dir}{}", l.trim_matches('/'))));
    }
    patterns
        .iter()
        .any(|p| path == p || path.starts_with(&format!("{p}/")))
}

/// `module::...::Type::member` or `module::...::function`.
fn check_path(parts: &[String], sources: &Sources) -> Option<String> {
    let first = parts[0].as_str();
    if EXTERNAL_ROOTS.contains(&first) || EXTERNAL.contains(&first) {
        return None;
    }
    let ty_at = parts.iter().position(|p| is_camel(p));
    let modules = &parts[..ty_at.unwrap_or(parts.len() - 1)];
    if let Some(m) = modules.iter().find(|m| !sources.has_module(m)) {
        return Some(format!("no module `{m}`"));
    }
    let Some(at) = ty_at else {
        let last = parts[parts.len() - 1].as_str();
        let known = sources.has_fn(last) || sources.has_module(last) || sources.has_const(last);
        return (!known).then(|| format!("no `fn {last}` or module `{last}`"));
    };
    let ty = parts[at].as_str();
    if !sources.has_type(ty) {
        return Some(format!("no type `{ty}`"));
    }
    // A bare `module::Type` is fine once the type exists.
    let member = parts.get(at + 1)?;
    check_member(ty, member, sources)
}

/// `Type::method` (a `fn` in a file implementing `Type`), `Type::Variant` (in the
/// enum's file) or `Type::CONST`.
fn check_member(ty: &str, member: &str, sources: &Sources) -> Option<String> {
    if is_camel(member) {
        let file = sources.enum_file(ty)?;
        let listed = file.lines().any(|line| starts_variant(line.trim(), member));
        return (!listed).then(|| format!("enum `{ty}` has no variant `{member}`"));
    }
    let files = sources.impl_files(ty);
    let found = files.iter().any(|text| {
        defines(text, "fn", member) || defines(text, "const", member) || has_field(text, ty, member)
    });
    (!found).then(|| format!("`{ty}` has no `fn {member}` or field in the files that implement it"))
}

/// README.md and every docs/*.md, with their paths from the repository root.
fn documents(root: &Path) -> Vec<(String, String)> {
    let mut docs = vec![("README.md".to_string(), read(&root.join("README.md")))];
    let mut names: Vec<String> = fs::read_dir(root.join("docs"))
        .expect("docs/")
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".md"))
        .collect();
    names.sort();
    for name in names {
        let path = format!("docs/{name}");
        docs.push((path.clone(), read(&root.join(&path))));
    }
    docs
}

fn read(path: &Path) -> String {
    fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The lines of `text` outside fenced code blocks, numbered from 1.
fn prose_lines(text: &str) -> Vec<(usize, &str)> {
    let mut fenced = false;
    let mut lines = Vec::new();
    for (n, line) in text.lines().enumerate() {
        if line.trim_start().starts_with("```") {
            fenced = !fenced;
        } else if !fenced {
            lines.push((n + 1, line));
        }
    }
    lines
}

/// The backticked spans of one line (single or double backticks).
fn code_spans(line: &str) -> Vec<&str> {
    let mut spans = Vec::new();
    let mut rest = line;
    while let Some(open) = rest.find('`') {
        let ticks = rest[open..].chars().take_while(|&c| c == '`').count();
        let after = &rest[open + ticks..];
        let fence = "`".repeat(ticks);
        let Some(close) = after.find(&fence) else {
            break;
        };
        spans.push(&after[..close]);
        rest = &after[close + ticks..];
    }
    spans
}

/// Every stale name in `text`, as `file:line: `name`: why`.
fn stale_names(file: &str, text: &str, sources: &Sources, root: &Path) -> Vec<String> {
    let mut stale = Vec::new();
    for (n, line) in prose_lines(text) {
        for span in code_spans(line) {
            if let Some(why) = classify(span).and_then(|name| check(&name, sources, root)) {
                stale.push(format!("{file}:{n}: `{span}`: {why}"));
            }
        }
    }
    stale
}

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

#[test]
fn every_code_name_the_docs_cite_exists() {
    let root = root();
    let sources = Sources::load(&root);
    let mut checked = 0;
    let mut stale = Vec::new();
    for (file, text) in documents(&root) {
        for (_, line) in prose_lines(&text) {
            checked += code_spans(line)
                .iter()
                .filter(|s| classify(s).is_some())
                .count();
        }
        stale.extend(stale_names(&file, &text, &sources, &root));
    }
    assert!(
        checked > 300,
        "only {checked} code names found: is the parser broken?"
    );
    assert!(
        stale.is_empty(),
        "stale names in the docs:\n{}",
        stale.join("\n")
    );
}

#[test]
fn the_name_check_tells_a_stale_name_from_a_live_one() {
    let root = root();
    let sources = Sources::load(&root);
    let text = "`ConnTable::flush`, `Shard::run`, `ShardMsg::Room`, `home_shard()`, \
        `rooms::home_shard`, `READS_PER_TURN`, `Arc<Outgoing>`, `shard.rs`, `src/server/`, \
        `/nick`, `OK nick NICK`, `ERR flood`, `message-tags`\n\
        `ShardState::next_generation`\n`ShardMsg::Nothing`\n`no_such_function()`\n\
        `NoSuchType`\n`NO_SUCH_CONSTANT`\n`nowhere.rs`\n`nomodule::home_shard`\n\
        ```\n`ShardState::inside_a_fence`\n```\n";
    let stale = stale_names("test.md", text, &sources, &root);
    let lines: Vec<&str> = stale
        .iter()
        .map(|s| s.split(": ").next().unwrap_or(""))
        .collect();
    let expected: Vec<String> = (2..=8).map(|n| format!("test.md:{n}")).collect();
    assert_eq!(lines, expected, "{stale:#?}");
}

/// One row of the constants table: name, value, file.
#[derive(Debug)]
struct ConstRow {
    name: String,
    value: String,
    file: String,
}

/// The rows of the table in `text` whose header's first cell is `constant`.
fn constants_table(text: &str) -> Vec<ConstRow> {
    let mut rows = Vec::new();
    let mut inside = false;
    for line in text.lines().map(str::trim) {
        if !line.starts_with('|') {
            inside = false;
            continue;
        }
        let cells: Vec<&str> = line.trim_matches('|').split('|').map(str::trim).collect();
        if cells.first() == Some(&"constant") {
            inside = true;
            continue;
        }
        let spans: Vec<Vec<&str>> = cells.iter().map(|c| code_spans(c)).collect();
        if inside && spans.len() >= 3 && spans[..3].iter().all(|s| s.len() == 1) {
            rows.push(ConstRow {
                name: spans[0][0].to_string(),
                value: spans[1][0].to_string(),
                file: spans[2][0].to_string(),
            });
        }
    }
    rows
}

/// The value of `const NAME: T = VALUE;` in `source`, as written.
fn const_value(source: &str, name: &str) -> Option<String> {
    let line = source.lines().find(|l| {
        let l = l
            .trim_start()
            .trim_start_matches("pub ")
            .trim_start_matches("pub(crate) ");
        l.starts_with(&format!("const {name}:"))
    })?;
    let value = line.split_once('=')?.1.trim().trim_end_matches(';').trim();
    Some(value.to_string())
}

/// A value as compared: without spaces and digit separators; a product of integers
/// is multiplied out, so `64 * 1024` and `65536` are the same value.
fn normalized(value: &str) -> String {
    let text: String = value
        .chars()
        .filter(|c| !c.is_whitespace() && *c != '_')
        .collect();
    let product = text
        .split('*')
        .map(str::parse::<u128>)
        .try_fold(1u128, |acc, n| n.map(|n| acc * n));
    product.map_or(text, |n| n.to_string())
}

/// Where a table row's value differs from the code, or `None`.
fn const_mismatch(row: &ConstRow, root: &Path) -> Option<String> {
    let Ok(source) = fs::read_to_string(root.join(&row.file)) else {
        return Some(format!("{}: no file {}", row.name, row.file));
    };
    match const_value(&source, &row.name) {
        None => Some(format!(
            "{}: no `const {}:` in {}",
            row.name, row.name, row.file
        )),
        Some(code) if normalized(&code) != normalized(&row.value) => Some(format!(
            "{}: the table says `{}`, {} says `{code}`",
            row.name, row.value, row.file
        )),
        Some(_) => None,
    }
}

#[test]
fn the_constants_table_matches_the_code() {
    let root = root();
    let rows = constants_table(&read(&root.join("docs/README.md")));
    let named: BTreeSet<&str> = rows.iter().map(|r| r.name.as_str()).collect();
    for needed in [
        "READS_PER_TURN",
        "READ_CHUNK",
        "INBOX_DRAIN_CAP",
        "MAX_IOVECS",
        "TICK",
        "EVENTS_CAPACITY",
        "SHARD_BITS",
        "MAX_SHARDS",
        "HARD_SENDQ_FACTOR",
        "MAIL_PER_TURN",
        "MAX_SLICES",
        "DEFAULT_SENDQ",
        "ACCEPTS_PER_TURN",
    ] {
        assert!(named.contains(needed), "the constants table lacks {needed}");
    }
    let wrong: Vec<String> = rows
        .iter()
        .filter_map(|r| const_mismatch(r, &root))
        .collect();
    assert!(
        wrong.is_empty(),
        "constants table out of date:\n{}",
        wrong.join("\n")
    );
}

#[test]
fn the_constants_check_catches_a_wrong_value() {
    let root = root();
    let table = "| constant | value | file | why |\n| --- | --- | --- | --- |\n\
        | `READ_CHUNK` | `16384` | `src/server/config.rs` | ok |\n\
        | `TICK` | `Duration::from_millis(100)` | `src/server/config.rs` | stale |\n\
        | `READS_PER_TURN` | `4` | `src/server/nowhere.rs` | moved |\n";
    let rows = constants_table(table);
    assert_eq!(rows.len(), 3);
    let wrong: Vec<String> = rows
        .iter()
        .filter_map(|r| const_mismatch(r, &root))
        .collect();
    assert_eq!(wrong.len(), 2, "{wrong:#?}");
    assert!(wrong[0].starts_with("TICK") && wrong[1].starts_with("READS_PER_TURN"));
}

/// GitHub's anchor for a heading: lower case, punctuation dropped, spaces as `-`.
fn slug(heading: &str) -> String {
    let mut slug = String::new();
    for c in heading.trim().chars() {
        if c.is_alphanumeric() || c == '-' || c == '_' {
            slug.extend(c.to_lowercase());
        } else if c == ' ' {
            slug.push('-');
        }
    }
    slug
}

fn anchors(text: &str) -> BTreeSet<String> {
    prose_lines(text)
        .into_iter()
        .filter_map(|(_, line)| line.strip_prefix('#'))
        .map(|h| slug(h.trim_start_matches('#')))
        .collect()
}

/// The targets of `[text](target)` links on one line.
fn link_targets(line: &str) -> Vec<&str> {
    line.match_indices("](")
        .filter_map(|(at, _)| {
            let rest = &line[at + 2..];
            rest.find(')').map(|end| &rest[..end])
        })
        .collect()
}

/// Why a link from `file` to `target` is broken, or `None`.
fn broken_link(root: &Path, file: &str, target: &str) -> Option<String> {
    if target.starts_with("http://") || target.starts_with("https://") {
        return None;
    }
    let (path, anchor) = target.split_once('#').unwrap_or((target, ""));
    let base = Path::new(file).parent().unwrap_or(Path::new(""));
    let joined = if path.is_empty() {
        PathBuf::from(file)
    } else {
        base.join(path)
    };
    let resolved = normalize(&joined);
    if NOT_YET_WRITTEN.contains(&resolved.as_str()) {
        return None;
    }
    let full = root.join(&resolved);
    if !full.exists() {
        return Some(format!("{file}: link to {target}: no file {resolved}"));
    }
    let is_md = resolved.ends_with(".md");
    if !anchor.is_empty() && is_md && !anchors(&read(&full)).contains(anchor) {
        return Some(format!("{file}: link to {target}: no heading #{anchor}"));
    }
    None
}

/// `docs/../src/x.rs` → `src/x.rs`.
fn normalize(path: &Path) -> String {
    let mut parts: Vec<String> = Vec::new();
    for part in path.components() {
        match part.as_os_str().to_string_lossy().as_ref() {
            "." => {}
            ".." => {
                parts.pop();
            }
            other => parts.push(other.to_string()),
        }
    }
    parts.join("/")
}

#[test]
fn every_link_in_the_docs_leads_somewhere() {
    let root = root();
    let mut links = 0;
    let mut broken = Vec::new();
    for (file, text) in documents(&root) {
        for (_, line) in prose_lines(&text) {
            for target in link_targets(line) {
                links += 1;
                broken.extend(broken_link(&root, &file, target));
            }
        }
    }
    assert!(
        links > 50,
        "only {links} links found: is the parser broken?"
    );
    assert!(broken.is_empty(), "broken links:\n{}", broken.join("\n"));
}

/// Words as `wc -w` counts them: runs of bytes between ASCII white space.
fn words(text: &str) -> usize {
    text.split(|c: char| c.is_ascii_whitespace())
        .filter(|w| !w.is_empty())
        .count()
}

#[test]
fn the_docs_stay_within_their_word_budget() {
    let docs = documents(&root());
    let total: usize = docs.iter().map(|(_, text)| words(text)).sum();
    let per_file: Vec<String> = (docs.iter())
        .map(|(file, text)| format!("{file} {}", words(text)))
        .collect();
    assert!(total <= WORD_BUDGET, "{total} words: {per_file:?}");
    let design = docs.iter().find(|(file, _)| file == "docs/DESIGN.md");
    let design = design.map_or(0, |(_, text)| words(text));
    assert!(
        design > 1000 && design <= DESIGN_BUDGET,
        "DESIGN.md: {design} words"
    );
}
