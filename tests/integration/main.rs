//! Integration tests: the real server on `127.0.0.1:0`, driven over TCP.
//!
//! One test binary with modules (as ripgrep's `tests/tests.rs`), to link once.

#![allow(clippy::unwrap_used)]

mod common;

mod backpressure;
mod bad_input;
mod basics;
mod bench_smoke;
mod browser;
mod cluster;
mod cluster_truth;
mod config_file;
mod connect_cli;
mod everyday;
mod faults;
mod irc;
mod irc_clients;
mod irc_framework;
mod irc_identity;
mod ircv3;
mod lifecycle;
mod many_clients;
mod moderation;
mod operators;
mod ordering;
mod private;
mod readme_recipe;
mod redis_cluster;
mod room_history;
mod rooms;
mod store;
mod tls;
mod web;
mod web_irc;
