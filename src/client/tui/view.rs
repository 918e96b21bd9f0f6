//! Drawing the full-screen client with `ratatui`: one function from state to screen.
//!
//! ```text
//!  miochat  tom @ 127.0.0.1:7878                           (header)
//! ┌ rooms ───────┐┌ rust: topic ─────────────┐┌ 2 here ──────┐
//! │ 1 lobby 2    ││10:02 bob: hi             ││ bob          │
//! │>2 rust       ││...                       ││ tom          │
//! └──────────────┘└──────────────────────────┘└──────────────┘
//!  connected | Alt+1..9 or Ctrl+N/P rooms, ...                (status)
//! [rust] text being typed                                      (input)
//! ```
//!
//! Side panels disappear on narrow terminals. Colours follow `NO_COLOR`: without
//! colour, only bold, reverse and dim mark things. Nick colours come from a hash of
//! the nick, so a nick keeps its colour across rooms and sessions.

use std::time::Duration;

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Position, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Paragraph};
use unicode_width::UnicodeWidthStr;

use super::input::LineEditor;
use super::state::{ChatState, Room};
use super::wrap::{Segment, Tone, wrap_entry};

/// Width of each side panel.
const PANEL: u16 = 18;
const NICK_COLORS: [Color; 11] = [
    Color::Red,
    Color::Green,
    Color::Blue,
    Color::Magenta,
    Color::Cyan,
    Color::LightRed,
    Color::LightGreen,
    Color::LightYellow,
    Color::LightBlue,
    Color::LightMagenta,
    Color::LightCyan,
];

/// The state of the connection, as the status line shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LinkView {
    /// A connect is in progress.
    Connecting,
    /// Connected.
    Connected,
    /// The connection broke; the next attempt is in `retry_in`.
    Down {
        /// Why it broke.
        reason: String,
        /// Time until the next attempt.
        retry_in: Duration,
    },
}

/// Everything the screen shows besides the chat state.
#[derive(Debug)]
pub struct Chrome<'a> {
    /// The server address, for the header.
    pub addr: &'a str,
    /// The connection.
    pub link: &'a LinkView,
    /// The input line.
    pub editor: &'a LineEditor,
    /// Use colours.
    pub color: bool,
}

/// Sizes of the last drawn scrollback, for paging.
#[derive(Debug, Clone, Copy, Default)]
pub struct ChatArea {
    /// Rows of scrollback on screen.
    pub rows: usize,
    /// Columns of scrollback on screen.
    pub width: usize,
}

/// The colour a nick gets (the same for the same nick, everywhere). Yellow is left
/// out: it marks lines that mention the user.
pub fn nick_color(nick: &str) -> Color {
    // FNV-1a: short nicks that differ in one letter still spread over the palette.
    let hash = nick
        .to_ascii_lowercase()
        .bytes()
        .fold(0x811c_9dc5_u32, |h, b| {
            (h ^ u32::from(b)).wrapping_mul(0x0100_0193)
        });
    NICK_COLORS[hash as usize % NICK_COLORS.len()]
}

struct Painter {
    color: bool,
}

impl Painter {
    fn fg(&self, color: Color) -> Style {
        if self.color {
            Style::new().fg(color)
        } else {
            Style::new()
        }
    }

    fn tone(&self, tone: Tone, text: &str) -> Style {
        match tone {
            Tone::Plain => Style::new(),
            Tone::Dim => Style::new().add_modifier(Modifier::DIM),
            Tone::Nick => self.fg(nick_color(text)).add_modifier(Modifier::BOLD),
            Tone::OwnNick => Style::new().add_modifier(Modifier::BOLD),
            Tone::Info => self.fg(Color::Cyan),
            Tone::Error => self.fg(Color::Red).add_modifier(Modifier::BOLD),
            Tone::Private => self.fg(Color::Magenta).add_modifier(Modifier::BOLD),
            Tone::Mention => self.fg(Color::Yellow).add_modifier(Modifier::BOLD),
        }
    }
}

/// Draws the whole screen; returns the size of the scrollback area.
pub fn draw(frame: &mut Frame<'_>, state: &mut ChatState, parts: &Chrome<'_>) -> ChatArea {
    let paint = Painter { color: parts.color };
    let [header, body, status, input] = Layout::vertical([
        Constraint::Length(1),
        Constraint::Min(3),
        Constraint::Length(1),
        Constraint::Length(1),
    ])
    .areas(frame.area());
    let rooms_width = if body.width >= 60 { PANEL } else { 0 };
    let members_width = if body.width >= 90 { PANEL } else { 0 };
    let [rooms, chat, members] = Layout::horizontal([
        Constraint::Length(rooms_width),
        Constraint::Min(10),
        Constraint::Length(members_width),
    ])
    .areas(body);
    draw_header(frame, header, state, parts);
    if rooms_width > 0 {
        draw_rooms(frame, rooms, state, &paint);
    }
    if members_width > 0 {
        draw_members(frame, members, state.current_room(), &state.nick, &paint);
    }
    let area = draw_chat(frame, chat, state, &paint);
    draw_status(frame, status, state.current_room(), parts, &paint);
    draw_input(frame, input, state, parts.editor);
    area
}

fn draw_header(frame: &mut Frame<'_>, area: Rect, state: &ChatState, parts: &Chrome<'_>) {
    let nick = if state.nick.is_empty() {
        "(no nick yet)"
    } else {
        &state.nick
    };
    let line = Line::from(vec![
        Span::styled(" miochat ", Style::new().add_modifier(Modifier::BOLD)),
        Span::raw(format!(" {nick} @ {}", parts.addr)),
    ]);
    let bar = Paragraph::new(line).style(Style::new().add_modifier(Modifier::REVERSED));
    frame.render_widget(bar, area);
}

fn draw_rooms(frame: &mut Frame<'_>, area: Rect, state: &ChatState, paint: &Painter) {
    let mut lines = Vec::new();
    for (i, room) in state.rooms.iter().enumerate() {
        let key = if i < 9 {
            format!("{}", i + 1)
        } else {
            " ".into()
        };
        let count = if room.unread > 0 {
            format!(" {}", room.unread)
        } else {
            String::new()
        };
        let mut style = Style::new();
        if room.unread > 0 {
            style = style.add_modifier(Modifier::BOLD);
        }
        if room.mentioned {
            style = style.patch(paint.fg(Color::Yellow));
        }
        if state.current == Some(i) {
            style = style.add_modifier(Modifier::REVERSED);
        }
        // A marker as well as reverse video, so the current room shows without colour
        // and in plain-text captures.
        let mark = if state.current == Some(i) { '>' } else { ' ' };
        lines.push(Line::styled(
            format!("{mark}{key} {}{count}", room.name),
            style,
        ));
    }
    if state.rooms.is_empty() {
        lines.push(Line::styled(
            "(none: /join)",
            Style::new().add_modifier(Modifier::DIM),
        ));
    }
    let panel = Paragraph::new(lines).block(Block::bordered().title(" rooms "));
    frame.render_widget(panel, area);
}

fn draw_members(frame: &mut Frame<'_>, area: Rect, room: &Room, me: &str, paint: &Painter) {
    let mut lines: Vec<Line<'_>> = room
        .members
        .iter()
        .map(|nick| {
            let style = if nick.eq_ignore_ascii_case(me) {
                Style::new().add_modifier(Modifier::BOLD)
            } else {
                paint.fg(nick_color(nick))
            };
            Line::styled(format!(" {nick}"), style)
        })
        .collect();
    if room.more_members > 0 {
        lines.push(Line::styled(
            format!(" +{} more", room.more_members),
            Style::new().add_modifier(Modifier::DIM),
        ));
    }
    let total = room.members.len() + room.more_members;
    let title = if room.name == "*" {
        " members ".to_string()
    } else {
        format!(" {total} here ")
    };
    let panel = Paragraph::new(lines).block(Block::bordered().title(title));
    frame.render_widget(panel, area);
}

fn draw_chat(
    frame: &mut Frame<'_>,
    area: Rect,
    state: &mut ChatState,
    paint: &Painter,
) -> ChatArea {
    let room = state.current_room();
    let title = match (&room.topic, room.name.as_str()) {
        (_, "*") => " not in a room (/join ROOM) ".to_string(),
        (Some(topic), name) => format!(" {name}: {topic} "),
        (None, name) => format!(" {name} "),
    };
    let block = Block::bordered().title(title);
    let inner = block.inner(area);
    frame.render_widget(block, area);
    let size = ChatArea {
        rows: usize::from(inner.height),
        width: usize::from(inner.width),
    };
    state.wrap_width = size.width;
    let room = state.current_room_mut();
    let (rows, scroll) = visible_rows(room, size);
    room.scroll = scroll;
    let lines: Vec<Line<'_>> = rows
        .into_iter()
        .map(|row| {
            Line::from(
                row.into_iter()
                    .map(|s| {
                        let style = paint.tone(s.tone, &s.text);
                        Span::styled(s.text, style)
                    })
                    .collect::<Vec<_>>(),
            )
        })
        .collect();
    frame.render_widget(Paragraph::new(lines), inner);
    size
}

/// The rows to show (bottom-aligned) and the scroll distance, clamped to the top of
/// the scrollback.
fn visible_rows(room: &Room, size: ChatArea) -> (Vec<Vec<Segment>>, usize) {
    let wanted = size.rows + room.scroll;
    let mut rows = Vec::new();
    for entry in room.lines.iter().rev() {
        let mut entry_rows = wrap_entry(entry, size.width);
        entry_rows.extend(rows);
        rows = entry_rows;
        if rows.len() >= wanted {
            break;
        }
    }
    let scroll = room.scroll.min(rows.len().saturating_sub(size.rows));
    let end = rows.len() - scroll;
    let start = end.saturating_sub(size.rows);
    let mut shown: Vec<_> = rows.drain(start..end).collect();
    while shown.len() < size.rows {
        shown.insert(0, Vec::new());
    }
    (shown, scroll)
}

fn draw_status(
    frame: &mut Frame<'_>,
    area: Rect,
    room: &Room,
    parts: &Chrome<'_>,
    paint: &Painter,
) {
    let (text, style) = match parts.link {
        LinkView::Connecting => ("connecting...".to_string(), paint.fg(Color::Yellow)),
        LinkView::Connected => ("connected".to_string(), paint.fg(Color::Green)),
        LinkView::Down { reason, retry_in } => (
            format!(
                "disconnected ({reason}); retrying in {}s",
                retry_in.as_secs_f64().ceil()
            ),
            paint.fg(Color::Red).add_modifier(Modifier::BOLD),
        ),
    };
    let hint = if room.scroll > 0 {
        format!(" | scrolled up {} rows: PgDn to return", room.scroll)
    } else {
        " | Alt+1..9 or Ctrl+N/P rooms, PgUp/PgDn scroll, Tab completes, Ctrl+C quits".to_string()
    };
    let line = Line::from(vec![
        Span::styled(format!(" {text}"), style),
        Span::styled(hint, Style::new().add_modifier(Modifier::DIM)),
    ]);
    frame.render_widget(Paragraph::new(line), area);
}

fn draw_input(frame: &mut Frame<'_>, area: Rect, state: &ChatState, editor: &LineEditor) {
    let prompt = format!("[{}] ", state.current_name().unwrap_or("no room"));
    let prompt_width = prompt.width();
    let avail = usize::from(area.width).saturating_sub(prompt_width).max(1);
    let chars: Vec<char> = editor.text().chars().collect();
    // Scroll sideways so the cursor stays on screen.
    let first = editor.cursor().saturating_sub(avail - 1);
    let visible: String = chars[first.min(chars.len())..].iter().collect();
    let before_cursor: String = chars[first.min(chars.len())..editor.cursor()]
        .iter()
        .collect();
    let line = Line::from(vec![
        Span::styled(prompt, Style::new().add_modifier(Modifier::BOLD)),
        Span::raw(visible),
    ]);
    frame.render_widget(Paragraph::new(line), area);
    let x = area.x + u16::try_from(prompt_width + before_cursor.width()).unwrap_or(area.width);
    frame.set_cursor_position(Position::new(x.min(area.right().saturating_sub(1)), area.y));
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use ratatui::Terminal;
    use ratatui::backend::TestBackend;

    fn screen(state: &mut ChatState, editor: &LineEditor, width: u16) -> Vec<String> {
        let mut terminal = Terminal::new(TestBackend::new(width, 12)).unwrap();
        let parts = Chrome {
            addr: "127.0.0.1:7878",
            link: &LinkView::Connected,
            editor,
            color: false,
        };
        terminal
            .draw(|f| {
                draw(f, state, &parts);
            })
            .unwrap();
        let buffer = terminal.backend().buffer().clone();
        (0..buffer.area.height)
            .map(|y| {
                (0..buffer.area.width)
                    .map(|x| buffer[(x, y)].symbol().to_string())
                    .collect::<String>()
            })
            .collect()
    }

    #[test]
    fn the_screen_shows_rooms_members_lines_and_the_prompt() {
        let mut state = ChatState::new();
        state.on_server_line("OK welcome tom lobby (welcome)", "10:00");
        state.on_server_line("OK who lobby tom bob", "10:00");
        state.on_server_line("OK joined rust 1", "10:00");
        state.on_server_line("MSG lobby bob hello", "10:01");
        let mut editor = LineEditor::default();
        editor.insert_str("typing");
        let rows = screen(&mut state, &editor, 100);
        let all = rows.join("\n");
        assert!(rows[0].contains("tom @ 127.0.0.1:7878"), "{all}");
        assert!(all.contains(" 1 lobby 1"), "{all}");
        assert!(all.contains(">2 rust"), "{all}");
        assert!(all.contains("-- you joined rust (1 member)"), "{all}");
        assert!(rows[11].starts_with("[rust] typing"), "{all}");
        // Narrow: no side panels, the prompt still names the room.
        let rows = screen(&mut state, &editor, 40);
        assert!(!rows.join("\n").contains("1 lobby"));
        assert!(rows[11].starts_with("[rust] typing"));
    }

    #[test]
    fn scrolling_is_clamped_and_keeps_its_place() {
        let mut state = ChatState::new();
        state.on_server_line("OK welcome tom lobby (welcome)", "10:00");
        for i in 0..30 {
            state.on_server_line(&format!("MSG lobby bob line {i}"), "10:00");
        }
        let editor = LineEditor::default();
        let rows = screen(&mut state, &editor, 50);
        assert!(rows.join("\n").contains("line 29"));
        state.current_room_mut().scroll = 1000;
        let rows = screen(&mut state, &editor, 50).join("\n");
        assert!(
            rows.contains("in lobby: welcome") && !rows.contains("line 29"),
            "{rows}"
        );
        let top = state.current_room().scroll;
        assert!(top > 0 && top < 1000);
        state.on_server_line("MSG lobby bob newer", "10:00");
        assert_eq!(state.current_room().scroll, top + 1);
    }
}
