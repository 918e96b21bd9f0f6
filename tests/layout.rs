//! The layout the design promises, checked: no file in `src/server/` imports a file
//! that imports it back (directly or through others), the event loop's folder imports
//! nothing of the chat's (the chat plugs into the loop through `event_loop/handler.rs`),
//! and no source function is over 80 lines. A reader can then follow the server
//! downward, one file at a time.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::Path;

/// The folders that group server modules by role while the modules keep their flat
/// paths (`crate::server::shard` is `src/server/event_loop/shard.rs`).
const GROUPS: [&str; 3] = ["event_loop", "commands", "state"];

/// Module name of a server file: `shard`, `backplane/wire`, `backplane` (its mod.rs).
fn module_of(path: &Path) -> String {
    let rel = path.strip_prefix("src/server").expect("under src/server");
    let name = rel.with_extension("").to_string_lossy().replace('\\', "/");
    let name = name.strip_suffix("/mod").unwrap_or(&name).to_string();
    match name.split_once('/') {
        Some((group, module)) if GROUPS.contains(&group) => module.to_string(),
        _ => name,
    }
}

/// The server modules a file's `use` lines name (test modules left out).
fn imports(path: &Path, module: &str) -> BTreeSet<String> {
    let text = fs::read_to_string(path).expect("read source");
    let code = text.split("#[cfg(test)]").next().unwrap_or("");
    let parent = module.rsplit_once('/').map(|(dir, _)| dir.to_string());
    let mut found = BTreeSet::new();
    for line in code
        .lines()
        .map(str::trim)
        .filter(|l| l.starts_with("use "))
    {
        let path = line.trim_start_matches("use ").trim_end_matches(';');
        let (base, rest) = if let Some(rest) = path.strip_prefix("crate::server::") {
            (None, rest)
        } else if let Some(rest) = path.strip_prefix("super::") {
            (
                parent.clone().filter(|_| !path.starts_with("super::super")),
                rest,
            )
        } else {
            continue;
        };
        let first = rest.split([':', '{', ';', ' ']).next().unwrap_or("");
        if first.is_empty() || first.starts_with(char::is_uppercase) || first == "self" {
            continue;
        }
        let candidate = match &base {
            Some(dir) => format!("{dir}/{first}"),
            None => first.to_string(),
        };
        let nested = rest
            .split("::")
            .nth(1)
            .filter(|s| !s.starts_with(['{', '*']));
        let candidate = match nested {
            Some(inner) if Path::new(&format!("src/server/{candidate}/{inner}.rs")).exists() => {
                format!("{candidate}/{inner}")
            }
            _ => candidate,
        };
        if candidate != module {
            found.insert(candidate);
        }
    }
    found
}

fn server_files() -> Vec<std::path::PathBuf> {
    let mut files = Vec::new();
    let groups = GROUPS.map(|g| format!("src/server/{g}"));
    let dirs = ["src/server", "src/server/backplane", "src/server/store"];
    for dir in dirs
        .iter()
        .copied()
        .chain(groups.iter().map(String::as_str))
    {
        for entry in fs::read_dir(dir).expect("read dir") {
            let path = entry.expect("entry").path();
            if path.extension().is_some_and(|e| e == "rs") {
                files.push(path);
            }
        }
    }
    files
}

/// The modules of a group folder (`commands`, `state`).
fn modules_in(group: &str) -> BTreeSet<String> {
    fs::read_dir(format!("src/server/{group}"))
        .expect("read dir")
        .map(|entry| entry.expect("entry").path())
        .filter(|path| path.extension().is_some_and(|e| e == "rs"))
        .map(|path| module_of(&path))
        .filter(|module| module != group)
        .collect()
}

#[test]
fn the_event_loop_imports_nothing_of_the_chat() {
    let chat: BTreeSet<String> = ["commands", "state"]
        .iter()
        .flat_map(|group| modules_in(group))
        .chain(["commands".to_string(), "state".to_string()])
        .collect();
    assert!(
        chat.contains("session") && chat.contains("directory"),
        "{chat:?}"
    );
    let mut wrong = Vec::new();
    for path in server_files() {
        if !path.starts_with("src/server/event_loop") {
            continue;
        }
        let module = module_of(&path);
        for import in imports(&path, &module).intersection(&chat) {
            wrong.push(format!("{} imports {import}", path.display()));
        }
    }
    assert!(wrong.is_empty(), "the loop imports the chat: {wrong:?}");
}

#[test]
fn no_server_file_imports_a_file_that_imports_it_back() {
    let graph: BTreeMap<String, BTreeSet<String>> = server_files()
        .iter()
        .map(|path| {
            let module = module_of(path);
            let deps = imports(path, &module);
            (module, deps)
        })
        .collect();
    // Depth-first search for a path back to the start, from every module but the root
    // (`mod.rs` declares every module, which is not an import).
    for start in graph.keys().filter(|m| m.as_str() != "") {
        let mut stack = vec![vec![start.clone()]];
        let mut seen = BTreeSet::new();
        while let Some(path) = stack.pop() {
            let last = path.last().expect("non-empty");
            for next in graph.get(last).into_iter().flatten() {
                assert!(
                    next != start,
                    "import cycle: {} -> {start}",
                    path.join(" -> ")
                );
                if seen.insert(next.clone()) {
                    stack.push([path.clone(), vec![next.clone()]].concat());
                }
            }
        }
    }
}

#[test]
fn no_function_is_over_80_lines() {
    let mut long = Vec::new();
    let mut stack = vec![Path::new("src").to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in fs::read_dir(&dir).expect("read dir") {
            let path = entry.expect("entry").path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                long.extend(long_functions(&path));
            }
        }
    }
    assert!(long.is_empty(), "functions over 80 lines: {long:?}");
}

/// `file:line name length` of every `fn` whose body spans more than 80 lines.
fn long_functions(path: &Path) -> Vec<String> {
    let text = fs::read_to_string(path).expect("read source");
    let lines: Vec<&str> = text.lines().collect();
    let mut found = Vec::new();
    for (start, line) in lines.iter().enumerate() {
        let trimmed = line.trim_start();
        let is_fn = [
            "fn ",
            "pub fn ",
            "pub(super) fn ",
            "pub(crate) fn ",
            "const fn ",
        ]
        .iter()
        .any(|prefix| trimmed.starts_with(prefix));
        if !is_fn || trimmed.ends_with(';') {
            continue;
        }
        let indent = line.len() - trimmed.len();
        let closing = " ".repeat(indent) + "}";
        let end = lines[start..]
            .iter()
            .position(|l| *l == closing)
            .map(|n| start + n);
        if let Some(end) = end.filter(|end| end - start + 1 > 80) {
            found.push(format!(
                "{}:{} {} lines",
                path.display(),
                start + 1,
                end - start + 1
            ));
        }
    }
    found
}
