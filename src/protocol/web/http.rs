//! HTTP/1.1 for the web listener, sans-IO: reading one request head, deciding what it
//! asks for, and the bytes of every answer, including the WebSocket upgrade.
//!
//! The request head is parsed by `httparse`; the WebSocket handshake (the checks of
//! RFC 6455 §4.2.1 and the `Sec-WebSocket-Accept` key) is `tungstenite`'s
//! `create_response`, and responses are written by its `write_response`. What is
//! left here is routing and the status each failure deserves:
//!
//! | request | answer |
//! | --- | --- |
//! | `GET /` (or `HEAD`) | the chat page |
//! | `GET /ws` or `GET /` with `Upgrade: websocket` | `101`, or `400` for a missing or malformed `Sec-WebSocket-Key` (or other missing upgrade header), `426` with `Sec-WebSocket-Version: 13` for another version |
//! | `GET /metrics`, `GET /healthz` | `200` |
//! | another method on those paths | `405` with `Allow` |
//! | anything else | `404` |
//! | a head over [`MAX_HEAD`] bytes | `431` |
//! | not HTTP | `400` |
//! | a head not finished in time | `408` (the timer is the loop's) |
//!
//! Every answer but the upgrade says `Connection: close`: one request per connection
//! keeps the state machine small, and the page is one file.

use tungstenite::handshake::server::{Request, create_response, write_response};
use tungstenite::http::{self, HeaderValue, StatusCode};

use std::net::IpAddr;

use crate::protocol::outgoing::Protocol;

/// Largest request head accepted (request line and headers). nginx's default
/// `large_client_header_buffers` is 8 KiB per line; a chat page needs far less.
pub const MAX_HEAD: usize = 8 * 1024;

/// Headers parsed at most (more is a `431`).
const MAX_HEADERS: usize = 48;

/// The WebSocket subprotocols the server speaks. When a client offers several, the
/// first *it* lists is taken (RFC 6455 leaves the choice to the server; the client's
/// order is its preference: a client that lists `binary.ircv3.net` first wants
/// binary frames).
pub const SUBPROTOCOLS: [(&str, Protocol); 3] = [
    ("text.ircv3.net", Protocol::WebIrc),
    ("binary.ircv3.net", Protocol::WebIrcBinary),
    ("miochat", Protocol::WebLine),
];

/// What a complete request head asks for.
#[derive(Debug, PartialEq, Eq)]
pub enum Route {
    /// The chat page.
    Page,
    /// Prometheus metrics.
    Metrics,
    /// The health check.
    Health,
    /// A valid WebSocket upgrade: send `response`, then speak `protocol`.
    Upgrade {
        /// The `101 Switching Protocols` bytes.
        response: Vec<u8>,
        /// The chat protocol chosen by subprotocol negotiation.
        protocol: Protocol,
        /// The `X-Forwarded-For` headers, comma-joined (see [`client_address`]).
        forwarded: Option<String>,
    },
    /// An error answer, ready to send.
    Refuse(Vec<u8>),
}

/// A parsed request: its route, whether it was `HEAD`, and the head's length.
#[derive(Debug)]
pub struct Parsed {
    /// What to do.
    pub route: Route,
    /// `HEAD`: answer without a body.
    pub head_only: bool,
    /// Bytes of the request head (anything after it belongs to the next protocol).
    pub used: usize,
}

/// Parses `buf` as a request head: `Ok(None)` while incomplete (the caller bounds
/// it by [`MAX_HEAD`]), or the route.
pub fn parse_request(buf: &[u8]) -> Option<Parsed> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut request = httparse::Request::new(&mut headers);
    let used = match request.parse(buf) {
        Ok(httparse::Status::Partial) if buf.len() > MAX_HEAD => return Some(refusal(431)),
        Ok(httparse::Status::Partial) => return None,
        Ok(httparse::Status::Complete(used)) if used > MAX_HEAD => return Some(refusal(431)),
        Ok(httparse::Status::Complete(used)) => used,
        Err(httparse::Error::TooManyHeaders) => return Some(refusal(431)),
        Err(_) => return Some(refusal(400)),
    };
    let method = request.method.unwrap_or("");
    let path = request.path.unwrap_or("");
    let path = path.split('?').next().unwrap_or(path);
    let upgrade = request
        .headers
        .iter()
        .any(|h| h.name.eq_ignore_ascii_case("upgrade"));
    let head_only = method == "HEAD";
    let readable = method == "GET" || head_only;
    let route = match path {
        "/" | "/ws" if upgrade || path == "/ws" => {
            if method == "GET" {
                upgrade_route(&request)
            } else {
                refusal_route(405)
            }
        }
        "/" | "/metrics" | "/healthz" if !readable => refusal_route(405),
        "/" => Route::Page,
        "/metrics" => Route::Metrics,
        "/healthz" => Route::Health,
        _ => refusal_route(404),
    };
    Some(Parsed {
        route,
        head_only,
        used,
    })
}

fn refusal(status: u16) -> Parsed {
    Parsed {
        route: refusal_route(status),
        head_only: false,
        used: 0,
    }
}

fn refusal_route(status: u16) -> Route {
    Route::Refuse(error_response(status))
}

/// The handshake of RFC 6455 §4.2, by tungstenite; subprotocol negotiation here.
fn upgrade_route(parsed: &httparse::Request<'_, '_>) -> Route {
    let mut builder = Request::builder()
        .method("GET")
        .uri(parsed.path.unwrap_or("/"));
    for header in parsed.headers.iter() {
        builder = builder.header(header.name, header.value);
    }
    let Ok(request) = builder.body(()) else {
        return refusal_route(400);
    };
    let mut response = match create_response(&request) {
        Ok(response) => response,
        Err(_) => {
            let version = request.headers().get("Sec-WebSocket-Version");
            return if version.is_some_and(|v| v != "13") {
                Route::Refuse(version_required())
            } else {
                refusal_route(400)
            };
        }
    };
    let offered = request
        .headers()
        .get_all("Sec-WebSocket-Protocol")
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .map(str::trim)
        .collect::<Vec<_>>();
    let chosen = offered
        .iter()
        .find_map(|name| SUBPROTOCOLS.iter().find(|(ours, _)| ours == name));
    let protocol = match chosen {
        Some((name, protocol)) => {
            response
                .headers_mut()
                .insert("Sec-WebSocket-Protocol", HeaderValue::from_static(name));
            *protocol
        }
        // No subprotocol (or none we speak): the line protocol, and no header, so a
        // client that insisted on one of its own fails the handshake (§4.1).
        None => Protocol::WebLine,
    };
    let mut bytes = Vec::with_capacity(160);
    if write_response(&mut bytes, &response).is_err() {
        return refusal_route(500);
    }
    let forwarded: Vec<&str> = (request.headers().get_all("X-Forwarded-For").iter())
        .filter_map(|value| value.to_str().ok())
        .collect();
    Route::Upgrade {
        response: bytes,
        protocol,
        forwarded: (!forwarded.is_empty()).then(|| forwarded.join(",")),
    }
}

/// The web client's address: `peer`, unless `peer` is one of the `trusted`
/// proxies; then the `X-Forwarded-For` list is read from the right (each proxy
/// appends the address it heard from), trusted proxies skipped, and the first other
/// address is the client's. A list that names nobody else (or is not addresses)
/// leaves `peer`. From an untrusted peer the header is ignored: anyone can send one.
pub fn client_address(peer: IpAddr, forwarded: Option<&str>, trusted: &[IpAddr]) -> IpAddr {
    let canonical = |address: &IpAddr| address.to_canonical();
    let is_trusted = |address: &IpAddr| trusted.iter().any(|t| canonical(t) == canonical(address));
    if !is_trusted(&peer) {
        return peer;
    }
    let hops = forwarded.unwrap_or("").rsplit(',').map(str::trim);
    for hop in hops {
        match hop.parse::<IpAddr>() {
            Ok(address) if is_trusted(&address) => continue,
            Ok(address) => return address.to_canonical(),
            Err(_) => break,
        }
    }
    peer
}

/// `426 Upgrade Required` naming the one version we speak (RFC 6455 §4.4).
fn version_required() -> Vec<u8> {
    let mut bytes = error_response(426);
    let at = bytes.len() - 2 - body_for(426).len();
    let extra = b"Sec-WebSocket-Version: 13\r\n";
    bytes.splice(at..at, extra.iter().copied());
    bytes
}

fn body_for(status: u16) -> String {
    let reason = StatusCode::from_u16(status)
        .ok()
        .and_then(|s| s.canonical_reason())
        .unwrap_or("Error");
    format!("{status} {reason}\n")
}

/// A complete response with `Connection: close`: status, content type, body (left
/// out for `HEAD`, though `Content-Length` still says how long it would be).
pub fn response(status: u16, content_type: &str, body: &[u8], head_only: bool) -> Vec<u8> {
    let mut builder = http::Response::builder()
        .status(status)
        .header("Content-Type", content_type)
        .header("Content-Length", body.len())
        .header("Cache-Control", "no-store")
        .header("Connection", "close");
    if status == 405 {
        builder = builder.header("Allow", "GET, HEAD");
    }
    let mut bytes = Vec::with_capacity(160 + body.len());
    if let Ok(response) = builder.body(()) {
        // Writing into a Vec cannot fail; a bad header value cannot happen here.
        let _ = write_response(&mut bytes, &response);
    }
    if !head_only {
        bytes.extend_from_slice(body);
    }
    bytes
}

/// An error answer with a one-line plain-text body.
pub fn error_response(status: u16) -> Vec<u8> {
    response(
        status,
        "text/plain; charset=utf-8",
        body_for(status).as_bytes(),
        false,
    )
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn route(request: &str) -> Route {
        parse_request(request.as_bytes()).unwrap().route
    }

    fn status_of(route: Route) -> String {
        match route {
            Route::Refuse(bytes)
            | Route::Upgrade {
                response: bytes, ..
            } => String::from_utf8_lossy(&bytes[..12]).into(),
            other => format!("{other:?}"),
        }
    }

    const UPGRADE: &str = "GET /ws HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\n";

    #[test]
    fn routes_and_statuses() {
        assert_eq!(route("GET / HTTP/1.1\r\n\r\n"), Route::Page);
        assert_eq!(route("HEAD /metrics?x=1 HTTP/1.1\r\n\r\n"), Route::Metrics);
        assert_eq!(
            status_of(route("GET /nope HTTP/1.1\r\n\r\n")),
            "HTTP/1.1 404"
        );
        assert_eq!(status_of(route("POST / HTTP/1.1\r\n\r\n")), "HTTP/1.1 405");
        assert_eq!(
            status_of(route("\x16\x03\x01garbage\r\n\r\n")),
            "HTTP/1.1 400"
        );
        assert!(parse_request(b"GET / HTTP/1.1\r\nHost: x\r\n").is_none());
        let huge = format!("GET / HTTP/1.1\r\nX: {}\r\n", "a".repeat(MAX_HEAD));
        assert_eq!(
            status_of(parse_request(huge.as_bytes()).unwrap().route),
            "HTTP/1.1 431"
        );
    }

    #[test]
    fn upgrade_checks_the_key_and_version_and_picks_a_subprotocol() {
        let missing = format!("{UPGRADE}\r\n");
        assert_eq!(status_of(route(&missing)), "HTTP/1.1 400");
        let wrong = format!("{UPGRADE}Sec-WebSocket-Key: short\r\n\r\n");
        assert_eq!(status_of(route(&wrong)), "HTTP/1.1 400");
        let old = "GET /ws HTTP/1.1\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 8\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n";
        let Route::Refuse(bytes) = route(old) else {
            panic!()
        };
        let text = String::from_utf8(bytes).unwrap();
        assert!(text.starts_with("HTTP/1.1 426") && text.contains("Sec-WebSocket-Version: 13\r\n"));
        let good = format!(
            "{UPGRADE}Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Protocol: foo, text.ircv3.net\r\n\r\n"
        );
        let Route::Upgrade {
            response, protocol, ..
        } = route(&good)
        else {
            panic!()
        };
        let text = String::from_utf8(response).unwrap();
        assert_eq!(protocol, Protocol::WebIrc);
        assert!(text.starts_with("HTTP/1.1 101"));
        assert!(text.contains("s3pPLMBiTxaQ9kYGzzhZRbK+xOo="));
        assert!(
            text.to_ascii_lowercase()
                .contains("sec-websocket-protocol: text.ircv3.net")
        );
        for (offer, chosen) in [
            ("binary.ircv3.net, text.ircv3.net", Protocol::WebIrcBinary),
            ("text.ircv3.net,binary.ircv3.net", Protocol::WebIrc),
            ("x, miochat, text.ircv3.net", Protocol::WebLine),
        ] {
            let request = format!(
                "{UPGRADE}Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Protocol: {offer}\r\n\r\n"
            );
            let Route::Upgrade { protocol, .. } = route(&request) else {
                panic!("{offer}")
            };
            assert_eq!(protocol, chosen, "{offer}");
        }
    }

    #[test]
    fn forwarded_for_counts_only_from_a_trusted_proxy() {
        let ip = |text: &str| text.parse::<IpAddr>().unwrap();
        let proxy = ip("10.1.1.1");
        let trusted = [proxy, ip("10.2.2.2")];
        let list = Some("203.0.113.9, 198.51.100.4, 10.2.2.2");
        assert_eq!(client_address(proxy, list, &trusted), ip("198.51.100.4"));
        assert_eq!(
            client_address(ip("192.0.2.1"), list, &trusted),
            ip("192.0.2.1")
        );
        assert_eq!(client_address(proxy, None, &trusted), proxy);
        assert_eq!(client_address(proxy, Some("junk"), &trusted), proxy);
        let mapped = ip("::ffff:10.1.1.1");
        assert_eq!(
            client_address(mapped, Some("2001:db8::7"), &trusted),
            ip("2001:db8::7")
        );
        let good = format!(
            "{UPGRADE}Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nX-Forwarded-For: 1.2.3.4\r\nX-Forwarded-For: 5.6.7.8\r\n\r\n"
        );
        let Route::Upgrade { forwarded, .. } = route(&good) else {
            panic!()
        };
        assert_eq!(forwarded.as_deref(), Some("1.2.3.4,5.6.7.8"));
    }
}
