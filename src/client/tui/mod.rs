//! The full-screen client: what `miochat connect` is when stdin and stdout are both
//! terminals.
//!
//! The shape is the line client's: one `mio::Poll` holds the server socket (dialed
//! through [`crate::dialer`]), a `Waker` and the signals; a helper thread blocks in
//! `crossterm::event::read` and hands each key or resize over a channel, then wakes the
//! `Poll`. Everything else happens on the main thread: the chat state ([`state`]), the
//! input line ([`input`]) and drawing ([`view`]), redrawn once per loop turn in which
//! something changed. Incoming lines go to the scrollback, never into the input line.
//!
//! The connection is a small state machine (`Link`): connecting, up, or down with a
//! retry time. A first connect that fails ends the client with exit status 1, as in
//! the line client; a connection that breaks later is retried with back-off (1 s,
//! doubling to 30 s, reset by the next welcome) and on success the nick and rooms are
//! restored, and each room is asked for what was missed (see [`history`]). The terminal is put back by a guard on every way out: returns, errors,
//! panics (ratatui's panic hook) and SIGTERM/SIGHUP (handled in the `Poll`).

pub mod history;
pub mod input;
pub mod state;
pub mod view;
pub mod wrap;

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::mpsc::{self, Receiver, TryRecvError};
use std::thread;
use std::time::{Duration, Instant};

use crossterm::event::{Event, KeyCode, KeyEvent, KeyEventKind, KeyModifiers};
use mio::{Events, Interest, Poll, Token, Waker};
use ratatui::DefaultTerminal;
use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
use signal_hook_mio::v1_0::Signals;

use super::{
    CONNECT_TIMEOUT, ClientError, ConnectOptions, KEEPALIVE, TOKEN_SERVER, TOKEN_STDIN, describe,
};
use crate::dialer::{Conn, DialError, Ready};
use input::LineEditor;
use state::{ChatState, KEEPALIVE_TOKEN};
use view::{ChatArea, Chrome, LinkView};

const TOKEN_SIGNAL: Token = Token(2);
/// The first wait before reconnecting; it doubles up to [`BACKOFF_MAX`].
const BACKOFF_FIRST: Duration = Duration::from_secs(1);
const BACKOFF_MAX: Duration = Duration::from_secs(30);
/// How long a quitting client waits for the server's goodbye.
const QUIT_GRACE: Duration = Duration::from_secs(2);

/// The connection to the server.
#[derive(Debug)]
enum Link {
    Connecting { conn: Conn, started: Instant },
    Up { conn: Conn },
    Down { reason: String, retry_at: Instant },
}

/// Whether the loop goes on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Flow {
    Continue,
    Exit,
}

/// What the keyboard thread hands over.
#[derive(Debug)]
enum KeyInput {
    Event(Event),
    End,
}

/// Raw mode and the alternate screen while alive; the terminal as it was after.
struct TerminalGuard {
    terminal: DefaultTerminal,
}

impl TerminalGuard {
    fn enter() -> io::Result<TerminalGuard> {
        // Also installs a panic hook that restores the terminal before the message.
        let terminal = ratatui::try_init()?;
        Ok(TerminalGuard { terminal })
    }
}

impl Drop for TerminalGuard {
    fn drop(&mut self) {
        let _ = self.terminal.show_cursor();
        let _ = ratatui::try_restore();
    }
}

/// Runs the full-screen client until the user quits.
pub fn run(opts: &ConnectOptions) -> Result<(), ClientError> {
    let mut poll = Poll::new().map_err(ClientError::Local)?;
    let waker = Arc::new(Waker::new(poll.registry(), TOKEN_STDIN).map_err(ClientError::Local)?);
    let mut signals = Signals::new([SIGTERM, SIGHUP, SIGINT]).map_err(ClientError::Local)?;
    poll.registry()
        .register(&mut signals, TOKEN_SIGNAL, Interest::READABLE)
        .map_err(ClientError::Local)?;
    let mut first_greeting = Vec::new();
    if let Some(nick) = &opts.nick {
        first_greeting.push(format!("/nick {nick}"));
    }
    if let Some(room) = &opts.room {
        first_greeting.push(format!("/join {room}"));
    }
    let mut app = App {
        _waker: Arc::clone(&waker),
        addr: opts.addr,
        tls: opts.tls.clone(),
        addr_text: opts.addr.to_string(),
        link: Link::Down {
            reason: String::new(),
            retry_at: Instant::now(),
        },
        ever_connected: false,
        first_greeting,
        backoff: BACKOFF_FIRST,
        last_sent: Instant::now(),
        quit_deadline: None,
        state: ChatState::new(),
        editor: LineEditor::default(),
        chat_area: ChatArea::default(),
        color: std::env::var_os("NO_COLOR").is_none(),
        scratch: vec![0; 16 * 1024],
        dirty: true,
    };
    app.start_connect(&poll)?;
    let mut guard = TerminalGuard::enter().map_err(ClientError::Local)?;
    let keys = spawn_key_reader(waker);
    app.run(&mut poll, &keys, &mut guard.terminal, &mut signals)
}

/// Reads terminal events on a helper thread; each is sent, then the loop is woken.
fn spawn_key_reader(waker: Arc<Waker>) -> Receiver<KeyInput> {
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        loop {
            let (input, end) = match crossterm::event::read() {
                Ok(event) => (KeyInput::Event(event), false),
                Err(_) => (KeyInput::End, true),
            };
            if tx.send(input).is_err() || waker.wake().is_err() || end {
                return;
            }
        }
    });
    rx
}

/// Now, in ms since the Unix epoch (0 if the clock is before it).
fn now_ms() -> u64 {
    let since = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH);
    since.map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// The local time, as scrollback lines show it.
fn stamp() -> String {
    chrono::Local::now().format("%H:%M").to_string()
}

#[derive(Debug)]
struct App {
    /// Kept alive as long as the `Poll` runs (see the line client: a waker whose
    /// last `Arc` is dropped closes its eventfd and a pending wake is lost).
    _waker: Arc<Waker>,
    addr: SocketAddr,
    /// `--tls`: every (re)connection does a verified handshake.
    tls: Option<crate::tls_client::ClientTls>,
    addr_text: String,
    link: Link,
    /// A connection has been established once (later failures are retried).
    ever_connected: bool,
    /// `--nick` and `--room`, sent on the first connection.
    first_greeting: Vec<String>,
    backoff: Duration,
    last_sent: Instant,
    /// Set when the user quits: exit when the server closes, or at this time.
    quit_deadline: Option<Instant>,
    state: ChatState,
    editor: LineEditor,
    chat_area: ChatArea,
    color: bool,
    scratch: Vec<u8>,
    dirty: bool,
}

impl App {
    fn run(
        &mut self,
        poll: &mut Poll,
        keys: &Receiver<KeyInput>,
        terminal: &mut DefaultTerminal,
        signals: &mut Signals,
    ) -> Result<(), ClientError> {
        let mut events = Events::with_capacity(16);
        loop {
            if std::mem::take(&mut self.dirty) {
                self.draw(terminal)?;
            }
            if let Err(e) = poll.poll(&mut events, Some(self.timeout())) {
                if e.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                return Err(ClientError::Local(e));
            }
            self.state.now_ms = now_ms();
            for event in events.iter() {
                let flow = match event.token() {
                    TOKEN_STDIN => self.on_keys(keys, poll, terminal)?,
                    TOKEN_SERVER => self.on_server(poll, event.is_writable())?,
                    _ => {
                        // SIGTERM, SIGHUP or SIGINT: say goodbye if we can, and go.
                        if signals.pending().next().is_some() {
                            self.send("/quit", poll);
                            return Ok(());
                        }
                        Flow::Continue
                    }
                };
                if flow == Flow::Exit {
                    return Ok(());
                }
            }
            if self.tick(poll)? == Flow::Exit {
                return Ok(());
            }
        }
    }

    fn draw(&mut self, terminal: &mut DefaultTerminal) -> Result<(), ClientError> {
        let link = match &self.link {
            Link::Connecting { .. } => LinkView::Connecting,
            Link::Up { .. } => LinkView::Connected,
            Link::Down { reason, retry_at } => LinkView::Down {
                reason: reason.clone(),
                retry_in: retry_at.saturating_duration_since(Instant::now()),
            },
        };
        let chrome = Chrome {
            addr: &self.addr_text,
            link: &link,
            editor: &self.editor,
            color: self.color,
        };
        let state = &mut self.state;
        let mut area = self.chat_area;
        terminal
            .draw(|frame| area = view::draw(frame, state, &chrome))
            .map_err(ClientError::Local)?;
        self.chat_area = area;
        Ok(())
    }

    fn timeout(&self) -> Duration {
        let mut timeout = match &self.link {
            Link::Connecting { .. } => Duration::from_millis(100),
            Link::Up { .. } => KEEPALIVE.saturating_sub(self.last_sent.elapsed()),
            // Wake every second to count down on the status line.
            Link::Down { retry_at, .. } => retry_at
                .saturating_duration_since(Instant::now())
                .min(Duration::from_secs(1)),
        };
        if let Some(deadline) = self.quit_deadline {
            timeout = timeout.min(deadline.saturating_duration_since(Instant::now()));
        }
        timeout
    }

    /// Timers: connect timeout, reconnect time, keepalive, quit deadline.
    fn tick(&mut self, poll: &Poll) -> Result<Flow, ClientError> {
        if self.quit_deadline.is_some_and(|d| Instant::now() >= d) {
            return Ok(Flow::Exit);
        }
        match &self.link {
            Link::Connecting { started, .. } if started.elapsed() > CONNECT_TIMEOUT => {
                return self.lost(io::ErrorKind::TimedOut.into());
            }
            Link::Up { .. } if self.last_sent.elapsed() >= KEEPALIVE => {
                self.send(&format!("/ping {KEEPALIVE_TOKEN}"), poll);
            }
            Link::Down { retry_at, .. } => {
                self.dirty = true;
                if Instant::now() >= *retry_at {
                    self.start_connect(poll)?;
                }
            }
            _ => {}
        }
        Ok(Flow::Continue)
    }

    /// Dials the server and queues the greeting (sent once the connect completes).
    fn start_connect(&mut self, poll: &Poll) -> Result<(), ClientError> {
        self.dirty = true;
        let tls = self.tls.as_ref();
        let mut conn = match Conn::connect_with(self.addr, None, poll.registry(), TOKEN_SERVER, tls)
        {
            Ok(conn) => conn,
            Err(e) => return self.lost(e).map(|_| ()),
        };
        let greeting = if self.ever_connected {
            self.state.rejoin_lines()
        } else {
            self.first_greeting.clone()
        };
        let mut bytes = Vec::new();
        for line in greeting {
            bytes.extend_from_slice(line.as_bytes());
            bytes.push(b'\n');
        }
        if let Err(e) = conn.send(&bytes, poll.registry()) {
            return self.lost(e).map(|_| ());
        }
        self.link = Link::Connecting {
            conn,
            started: Instant::now(),
        };
        Ok(())
    }

    /// The connection failed or broke: exit (first connect, or quitting) or schedule
    /// the next attempt.
    fn lost(&mut self, error: io::Error) -> Result<Flow, ClientError> {
        self.dirty = true;
        if self.state.quitting {
            return Ok(Flow::Exit);
        }
        if !self.ever_connected {
            return Err(ClientError::Connect(self.addr, error));
        }
        let reason = describe(&error);
        let delay = self.backoff;
        self.backoff = (self.backoff * 2).min(BACKOFF_MAX);
        // The first failure goes into the scrollback; further attempts only update
        // the status line, so a long outage does not fill the screen.
        if matches!(self.link, Link::Up { .. }) {
            let text = format!(
                "disconnected: {reason}; reconnecting in {}s",
                delay.as_secs()
            );
            self.state.notice(&stamp(), &text, true);
        }
        self.link = Link::Down {
            reason,
            retry_at: Instant::now() + delay,
        };
        Ok(Flow::Continue)
    }

    /// Sends one line if connected (lines typed while down are refused earlier).
    fn send(&mut self, line: &str, poll: &Poll) {
        if let Link::Up { conn } | Link::Connecting { conn, .. } = &mut self.link {
            self.last_sent = Instant::now();
            let mut bytes = line.as_bytes().to_vec();
            bytes.push(b'\n');
            // A failed write shows up as an error on the next read of the socket.
            let _ = conn.send(&bytes, poll.registry());
        }
    }

    /// Socket readiness: completes a connect, flushes, reads and handles lines.
    fn on_server(&mut self, poll: &Poll, writable: bool) -> Result<Flow, ClientError> {
        let step = match &mut self.link {
            Link::Down { .. } => return Ok(Flow::Continue),
            Link::Connecting { conn, .. } => match conn.on_ready(writable, poll.registry()) {
                Ok(Ready::Connecting) => return Ok(Flow::Continue),
                Ok(_) => read_all(conn, poll, &mut self.scratch),
                Err(DialError::Connect(e) | DialError::Write(e)) => Err(e),
            },
            Link::Up { conn } => read_all(conn, poll, &mut self.scratch),
        };
        if let Link::Connecting { .. } = self.link
            && step.is_ok()
        {
            self.promote();
        }
        match step {
            Ok((lines, open)) => {
                self.on_lines(&lines, poll);
                if open {
                    Ok(Flow::Continue)
                } else {
                    self.lost(io::Error::other("the server closed the connection"))
                }
            }
            Err(e) => self.lost(e),
        }
    }

    /// Connecting → up.
    fn promote(&mut self) {
        let link = std::mem::replace(
            &mut self.link,
            Link::Down {
                reason: String::new(),
                retry_at: Instant::now(),
            },
        );
        if let Link::Connecting { conn, .. } = link {
            if self.ever_connected {
                self.state.notice(&stamp(), "reconnected", false);
            }
            self.ever_connected = true;
            self.link = Link::Up { conn };
        }
    }

    fn on_lines(&mut self, lines: &[String], poll: &Poll) {
        let now = stamp();
        for line in lines {
            if line.starts_with("OK welcome ") {
                self.backoff = BACKOFF_FIRST;
            }
            for reply in self.state.on_server_line(line, &now) {
                self.send(&reply, poll);
            }
            self.dirty = true;
        }
    }

    /// Keys and resizes since the last wake (wakes coalesce, so drain them all).
    fn on_keys(
        &mut self,
        keys: &Receiver<KeyInput>,
        poll: &Poll,
        terminal: &mut DefaultTerminal,
    ) -> Result<Flow, ClientError> {
        loop {
            let event = match keys.try_recv() {
                Ok(KeyInput::Event(event)) => event,
                Ok(KeyInput::End) | Err(TryRecvError::Disconnected) => return Ok(Flow::Exit),
                Err(TryRecvError::Empty) => return Ok(Flow::Continue),
            };
            self.dirty = true;
            match event {
                Event::Key(key)
                    if key.kind != KeyEventKind::Release
                        && self.on_key(key, poll, terminal)? == Flow::Exit =>
                {
                    return Ok(Flow::Exit);
                }
                Event::Paste(text) => self.editor.insert_str(&text),
                _ => {}
            }
        }
    }

    fn on_key(
        &mut self,
        key: KeyEvent,
        poll: &Poll,
        terminal: &mut DefaultTerminal,
    ) -> Result<Flow, ClientError> {
        let ctrl = key.modifiers.contains(KeyModifiers::CONTROL);
        let alt = key.modifiers.contains(KeyModifiers::ALT);
        let page = self.chat_area.rows.saturating_sub(1).max(1);
        match key.code {
            KeyCode::Char('c') if ctrl => return Ok(self.quit(poll)),
            KeyCode::Char('d') if ctrl && self.editor.is_empty() => return Ok(self.quit(poll)),
            KeyCode::Char('d') if ctrl => self.editor.delete(),
            KeyCode::Char('n') if ctrl => self.switch(|s| s.cycle(true), poll),
            KeyCode::Char('p') if ctrl => self.switch(|s| s.cycle(false), poll),
            KeyCode::Char('a') if ctrl => self.editor.home(),
            KeyCode::Char('e') if ctrl => self.editor.end(),
            KeyCode::Char('u') if ctrl => self.editor.kill_to_start(),
            KeyCode::Char('w') if ctrl => self.editor.delete_word(),
            KeyCode::Char('l') if ctrl => terminal.clear().map_err(ClientError::Local)?,
            KeyCode::Char(digit @ '0'..='9') if alt => {
                let index = digit.to_digit(10).map_or(0, |d| (d as usize + 9) % 10);
                self.switch(|s| s.switch_to(index), poll);
            }
            KeyCode::Char(ch) if !ctrl && !alt => self.editor.insert(ch),
            KeyCode::Enter => self.submit(poll),
            KeyCode::Tab => self.complete(),
            KeyCode::Backspace => self.editor.backspace(),
            KeyCode::Delete => self.editor.delete(),
            KeyCode::Left => self.editor.left(),
            KeyCode::Right => self.editor.right(),
            KeyCode::Home => self.editor.home(),
            KeyCode::End => self.editor.end(),
            KeyCode::Up => self.editor.history_prev(),
            KeyCode::Down => self.editor.history_next(),
            KeyCode::PageUp => self.state.current_room_mut().scroll += page,
            KeyCode::PageDown => {
                let room = self.state.current_room_mut();
                room.scroll = room.scroll.saturating_sub(page);
            }
            _ => {}
        }
        Ok(Flow::Continue)
    }

    /// Ctrl+C, Ctrl+D: send `/quit` and wait (bounded) for the server to close.
    fn quit(&mut self, poll: &Poll) -> Flow {
        if !matches!(self.link, Link::Up { .. }) {
            return Flow::Exit;
        }
        self.send("/quit", poll);
        self.state.quitting = true;
        self.quit_deadline = Some(Instant::now() + QUIT_GRACE);
        Flow::Continue
    }

    /// A room switch by key: the screen changes at once, the server follows.
    fn switch(&mut self, change: impl FnOnce(&mut ChatState) -> Option<String>, poll: &Poll) {
        if let Some(join) = change(&mut self.state) {
            if matches!(self.link, Link::Up { .. }) {
                self.send(&join, poll);
            } else {
                self.state.switch_not_sent();
            }
        }
    }

    fn submit(&mut self, poll: &Poll) {
        let line = self.editor.submit();
        if line.trim().is_empty() {
            return;
        }
        if !matches!(self.link, Link::Up { .. }) {
            let text = "not connected: that line was not sent (Up brings it back)";
            self.state.notice(&stamp(), text, true);
            return;
        }
        let out = self.state.on_typed_line(&line, &stamp());
        self.state.current_room_mut().scroll = 0;
        self.send(&out, poll);
        if self.state.quitting {
            self.quit_deadline = Some(Instant::now() + QUIT_GRACE);
        }
    }

    fn complete(&mut self) {
        let room = self.state.current_room();
        let nicks: Vec<String> = room
            .members
            .iter()
            .filter(|n| !n.eq_ignore_ascii_case(&self.state.nick))
            .cloned()
            .collect();
        let mut rooms: Vec<String> = self.state.rooms.iter().map(|r| r.name.clone()).collect();
        rooms.extend(self.state.known_rooms.iter().cloned());
        self.editor.complete(&nicks, &rooms);
    }
}

/// Flushes output and reads every complete line; `open` is false at EOF.
fn read_all(conn: &mut Conn, poll: &Poll, scratch: &mut [u8]) -> io::Result<(Vec<String>, bool)> {
    conn.flush(poll.registry())?;
    let mut lines = Vec::new();
    let open = conn.read_lines(scratch, |line| {
        lines.push(String::from_utf8_lossy(line).into_owned());
    })?;
    Ok((lines, open))
}
