//! The web listener's protocols, kept apart from the chat's wire formats: HTTP request
//! heads (`http`), WebSocket framing (`websocket`) and the Prometheus text of
//! `/metrics` (`exposition`). Each is sans-IO, like the rest of `protocol/`; the
//! modules keep their flat paths (`crate::protocol::http`) through re-exports.

pub mod exposition;
pub mod http;
pub mod websocket;
