//! What a line means: the chat half of a shard (`chat`), each command's semantics (`relay`, `moderation`, `services`, `oper`), how events reach people (`delivery`), and each connection's chat state (`session`, `irc_session`).

pub mod chat;
pub mod delivery;
pub mod irc_session;
pub mod moderation;
pub mod oper;
pub mod relay;
pub mod services;
pub mod session;

/// The loop's [`Effects`](crate::server::event_loop::effects::Effects) over this
/// chat's sessions: what every command is handed.
pub type Effects<'a> = crate::server::event_loop::effects::Effects<'a, session::Session>;
