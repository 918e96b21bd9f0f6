//! The event loop and what it owns: one shard's turn (`shard`), its connections and their transports (`conn_table`, `connection`, `tls`, `web`), the door to the chat (`effects`), the inbox other threads reach it through, flood pauses, tokens and close reasons.

pub mod close_reason;
pub mod conn_table;
pub mod connection;
pub mod effects;
pub mod handler;
pub mod inbox;
pub mod pauses;
pub mod shard;
pub mod tls;
pub mod token;
pub mod web;
