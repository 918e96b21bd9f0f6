//! miochat: a chat server on mio with no async runtime, written to be studied.
//!
//! # Layout
//!
//! Read in this order (docs/DESIGN.md tells the same story with diagrams):
//!
//! 1. [`framing`]: bytes → lines (sans-IO), and [`send_queue`]: lines → `writev`;
//! 2. [`nonblocking`]: what each `io::Error` of a non-blocking socket means;
//! 3. [`protocol`]: lines → `Command`, `Event` → bytes; no sockets;
//! 4. [`server`]: the acceptor, the shards (one `mio::Poll` each), connections,
//!    the relay (chat semantics), the directory and the room tables;
//!
//! 5. [`dialer`]: the client side of a connection, used by [`mod@bench`] (the load
//!    generator) and [`client`] (`miochat connect`).
//!
//! [`cli`] and [`logging`] hold the command line and log setup for `main`;
//! [`settings`] the configuration file, which stacks under the flags and is read
//! again on SIGHUP.

pub mod bench;
pub mod certs;
pub mod cli;
pub mod client;
pub mod dialer;
pub mod framing;
pub mod logging;
pub mod nonblocking;
pub mod protocol;
pub mod send_queue;
pub mod server;
pub mod settings;
pub mod tls_client;
