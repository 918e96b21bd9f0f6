//! The README's load-test recipe, run as written against the real binary: its
//! `serve` line, then each `bench` line, must pass. Only what a test must change is
//! changed: the built binary instead of `cargo run --release --`, port 0 for every
//! listener (the bench is pointed at the ports the server got), and a short run
//! (`--messages`). And the bench against a server *without* the recipe's flags
//! fails with an error that names them.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::process::Output;

use crate::common::{serve_exactly, spawn_binary};

/// The command lines of the README's load-test recipe, as words, `cargo run
/// --release --` taken off.
fn recipe() -> Vec<Vec<String>> {
    let readme = include_str!("../../README.md");
    let at = readme
        .find("To load-test")
        .expect("a load-test recipe in README.md");
    let block = readme[at..].split("```sh\n").nth(1).expect("its sh block");
    let block = block.split("```").next().unwrap_or_default();
    block
        .lines()
        .filter(|line| !line.trim().is_empty())
        .map(|line| {
            let command = line.split('#').next().unwrap_or_default();
            let args = command.trim().strip_prefix("cargo run --release -- ");
            let args = args.unwrap_or_else(|| panic!("not a cargo run line: {line}"));
            args.split_whitespace().map(String::from).collect()
        })
        .collect()
}

/// The value after `flag` in `args`, if any.
fn value_of<'a>(args: &'a [String], flag: &str) -> Option<&'a str> {
    let at = args.iter().position(|a| a == flag)?;
    args.get(at + 1).map(String::as_str)
}

/// `serve` with `args` on port 0 for each listener it names; the written address
/// of each listener mapped to the one it got.
fn serve(args: &[String]) -> (crate::common::Served, HashMap<String, SocketAddr>) {
    let mut args = args.to_vec();
    let mut listeners = vec![("--listen", "", "127.0.0.1:7878".to_string())];
    if let Some(web) = value_of(&args, "--http-listen") {
        listeners.push(("--http-listen", "web", web.to_string()));
    }
    for (flag, _, _) in &listeners {
        match args.iter().position(|a| a == flag) {
            Some(at) => args[at + 1] = "127.0.0.1:0".into(),
            None => args.extend([flag.to_string(), "127.0.0.1:0".into()]),
        }
    }
    let labels: Vec<&str> = listeners.iter().map(|(_, label, _)| *label).collect();
    let words: Vec<&str> = args.iter().map(String::as_str).collect();
    let (served, got) = serve_exactly(&words, &labels);
    let map = listeners
        .into_iter()
        .map(|(_, _, written)| written)
        .zip(got)
        .collect();
    (served, map)
}

/// Runs a recipe `bench` line against the server at `addrs`, briefly.
fn bench(args: &[String], addrs: &HashMap<String, SocketAddr>) -> Output {
    let mut args = args.to_vec();
    let written = value_of(&args, "--addr")
        .unwrap_or("127.0.0.1:7878")
        .to_string();
    let addr = addrs[&written].to_string();
    match args.iter().position(|a| a == "--addr") {
        Some(at) => args[at + 1] = addr,
        None => args.extend(["--addr".into(), addr]),
    }
    args.extend([
        "--messages".into(),
        "20".into(),
        "--timeout".into(),
        "30".into(),
    ]);
    spawn_binary(&args.iter().map(String::as_str).collect::<Vec<_>>())
        .output()
        .expect("run the bench")
}

#[test]
fn the_readmes_load_test_recipe_works_as_written() {
    let recipe = recipe();
    assert_eq!(recipe[0][0], "serve", "{recipe:?}");
    assert!(recipe.len() >= 2, "{recipe:?}");
    let (_served, addrs) = serve(&recipe[0]);
    for line in &recipe[1..] {
        assert_eq!(line[0], "bench", "{line:?}");
        let out = bench(line, &addrs);
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{line:?}: {stdout}{stderr}");
        assert!(stdout.contains("verdict: PASS"), "{line:?}: {stdout}");
    }
}

#[test]
fn a_bench_refused_by_the_per_address_limits_names_the_flags_that_fix_it() {
    let recipe = recipe();
    // The recipe's server without its per-address flags: the defaults a public
    // server has.
    let mut without = recipe[0].clone();
    for flag in ["--max-per-ip", "--connect-rate"] {
        let at = without.iter().position(|a| a == flag).expect("the flag");
        without.drain(at..at + 2);
    }
    let (_served, addrs) = serve(&without);
    for line in &recipe[1..] {
        let out = bench(line, &addrs);
        let said = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(!out.status.success(), "{line:?}: {said}");
        assert!(said.contains("from your address"), "{line:?}: {said}");
        assert!(
            said.contains("--max-per-ip 0 --connect-rate 0"),
            "{line:?}: {said}"
        );
    }
}
