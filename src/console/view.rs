//! Drawing: reads [`App`] and nothing else. Layout: tabs with live counts, the pane, a status
//! line (sources, rates, messages), and a footer of the keys that matter here (or the prompt).

use std::time::Instant;

use ratatui::Frame;
use ratatui::layout::{Alignment, Constraint, Layout, Rect};
use ratatui::style::Style;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Clear, Paragraph, Wrap};

use super::app::{App, MessageKind, Mode, Overlay, Pane};
use super::keys::KeyAction;
use super::panes;
use super::sanitize;
use crate::protocol::events::{AlertStatus, Severity};
use crate::stream::LinkState;

/// Smallest terminal the console draws in.
pub const MIN_SIZE: (u16, u16) = (80, 24);

/// Draws one frame.
pub fn draw(frame: &mut Frame<'_>, app: &App) {
    let area = frame.area();
    frame.render_widget(Block::default().style(app.theme.base), area);
    if area.width < MIN_SIZE.0 || area.height < MIN_SIZE.1 {
        let text = format!(
            "terminal too small: {}x{}, mcpsoc needs at least {}x{}",
            area.width, area.height, MIN_SIZE.0, MIN_SIZE.1
        );
        let p = Paragraph::new(text)
            .style(app.theme.warn)
            .wrap(Wrap { trim: true })
            .alignment(Alignment::Center);
        let y = area.height / 2;
        frame.render_widget(
            p,
            Rect {
                x: area.x,
                y: area.y + y.saturating_sub(1),
                width: area.width,
                height: 3.min(area.height),
            },
        );
        return;
    }
    let [tabs, body, status, footer] = Layout::vertical([
        Constraint::Length(1),
        Constraint::Min(5),
        Constraint::Length(1),
        Constraint::Length(1),
    ])
    .areas(area);
    draw_tabs(frame, app, tabs);
    match app.pane {
        Pane::Calls => panes::calls::draw(frame, app, body),
        Pane::Alerts => panes::alerts::draw(frame, app, body),
        Pane::Sessions => panes::sessions::draw(frame, app, body),
        Pane::Approvals => panes::approvals::draw(frame, app, body),
        Pane::Other => panes::other::draw(frame, app, body),
    }
    draw_status(frame, app, status);
    draw_footer(frame, app, footer);
    match app.overlay {
        Overlay::Help => draw_help(frame, app, body),
        Overlay::Detail => draw_detail(frame, app, body),
        Overlay::None => {}
    }
    if let Mode::Confirm { prompt, .. } = &app.mode {
        draw_dialog(frame, app, body, prompt);
    }
    if let Mode::Contain { session, tool } = &app.mode {
        let mut lines = vec!["Contain this alert:".to_string()];
        if let Some(s) = session {
            lines.push(format!(
                "  s  revoke session ({})",
                command_target(&s.command)
            ));
            if let crate::protocol::Command::RevokeSession { binding, .. } = &s.command {
                lines.push(format!(
                    "     {}",
                    sanitize::line(&super::app::revocation_scope(app, &s.source, binding))
                ));
            }
        }
        if let Some(t) = tool {
            lines.push(format!("  b  block tool ({})", command_target(&t.command)));
        }
        lines.push("  esc  cancel".into());
        draw_dialog(frame, app, body, &lines.join("\n"));
    }
}

fn command_target(command: &crate::protocol::Command) -> String {
    match command {
        crate::protocol::Command::RevokeSession { binding, .. } => sanitize::line(binding),
        crate::protocol::Command::BlockTool { upstream, tool, .. } => {
            sanitize::line(&format!("{upstream}/{tool}"))
        }
        other => other.action().to_string(),
    }
}

fn draw_tabs(frame: &mut Frame<'_>, app: &App, area: Rect) {
    let s = &app.snapshot;
    let open = |sev: Severity| {
        s.alerts
            .iter()
            .filter(|a| a.alert.severity == sev && a.alert.status != AlertStatus::Resolved)
            .count()
    };
    let alert_counts = {
        let parts: Vec<String> = [
            (Severity::Critical, "C"),
            (Severity::High, "H"),
            (Severity::Medium, "M"),
        ]
        .iter()
        .map(|(sev, letter)| (open(*sev), letter))
        .chain(std::iter::once((
            open(Severity::Low) + open(Severity::Info),
            &"L",
        )))
        .filter(|(n, _)| *n > 0)
        .map(|(n, letter)| format!("{n}{letter}"))
        .collect();
        if parts.is_empty() {
            "0".to_string()
        } else {
            parts.join(" ")
        }
    };
    let denied = s
        .calls
        .iter()
        .filter(|c| c.call.decision == crate::protocol::events::Decision::Deny)
        .count();
    let counts = |pane: Pane| match pane {
        Pane::Calls => {
            let more = if s.calls_more { "+" } else { "" };
            let filtered = if app.panes[Pane::Calls.index()].filter_text.is_empty() {
                ""
            } else {
                "/"
            };
            if denied > 0 {
                format!("{filtered}{}{more} ({denied} deny)", s.calls.len())
            } else {
                format!("{filtered}{}{more}", s.calls.len())
            }
        }
        Pane::Alerts => alert_counts.clone(),
        Pane::Sessions => s.sessions.len().to_string(),
        Pane::Approvals => s.changes.len().to_string(),
        Pane::Other => s.other.len().to_string(),
    };
    let build = |short: bool| {
        let mut spans = if short {
            Vec::new()
        } else {
            vec![Span::styled(" mcpsoc ", app.theme.title)]
        };
        for pane in Pane::ALL {
            let name = if short {
                pane.short_title()
            } else {
                pane.title()
            };
            let style = if pane == app.pane {
                app.theme.selected
            } else {
                app.theme.muted
            };
            spans.push(Span::raw(if short { "" } else { " " }));
            spans.push(Span::styled(
                format!(" {} {} {} ", pane.index() + 1, name, counts(pane)),
                style,
            ));
        }
        Line::from(spans)
    };
    let full = build(false);
    let line = if full.width() <= area.width as usize {
        full
    } else {
        build(true)
    };
    frame.render_widget(Paragraph::new(line), area);
}

fn draw_status(frame: &mut Frame<'_>, app: &App, area: Rect) {
    let now = Instant::now();
    let mut spans = Vec::new();
    if app.offline {
        spans.push(Span::styled(" offline ", app.theme.muted));
    }
    for s in &app.sources {
        let (dot, style) = match &s.state {
            LinkState::Live => ("●", app.theme.status_connected),
            LinkState::Replaying { .. } | LinkState::Connecting => {
                ("◐", app.theme.status_reconnecting)
            }
            LinkState::Reconnecting { .. } => ("○", app.theme.status_reconnecting),
            LinkState::Refused { .. } => ("✕", app.theme.status_refused),
        };
        let age = s
            .last_event
            .map(|t| {
                format!(
                    " last {}",
                    short_age(now.saturating_duration_since(t).as_secs())
                )
            })
            .unwrap_or_default();
        spans.push(Span::styled(
            format!(" {dot} {} ", sanitize::line(&s.name)),
            style,
        ));
        // With a message to show, sources shrink to their dot and name.
        if app.message.is_none() {
            let label = sanitize::truncate_to_width(&sanitize::line(&s.state.label()), 60);
            // Rates and ages only mean something while the link is up.
            let rate = if matches!(s.state, LinkState::Live | LinkState::Replaying { .. }) {
                format!(" {:.0}/s{age}", app.rate(&s.name))
            } else {
                String::new()
            };
            spans.push(Span::styled(format!("{label}{rate} "), app.theme.muted));
        }
    }
    if app.readonly {
        spans.push(Span::styled(" read-only ", app.theme.warn));
    }
    let mut line = Line::from(spans);
    if let Some((text, kind)) = &app.message {
        let style = match kind {
            MessageKind::Info => app.theme.muted,
            MessageKind::Ok => app.theme.ok,
            MessageKind::Error => app.theme.error,
        };
        let room = (area.width as usize).saturating_sub(line.width() + 3);
        if room > 10 {
            line.spans.push(Span::raw(" │ "));
            line.spans.push(Span::styled(
                sanitize::truncate_to_width(&sanitize::line(text), room),
                style,
            ));
        }
    }
    frame.render_widget(Paragraph::new(line), area);
}

fn short_age(secs: u64) -> String {
    match secs {
        0..60 => format!("{secs}s"),
        60..3600 => format!("{}m", secs / 60),
        _ => format!("{}h", secs / 3600),
    }
}

/// The key hints of the current pane: `key label`, disabled ones marked with the reason.
fn draw_footer(frame: &mut Frame<'_>, app: &App, area: Rect) {
    let line = match &app.mode {
        Mode::Filter { input, error } => {
            let mut spans = vec![
                Span::styled("/", app.theme.filter_prompt),
                Span::raw(sanitize::line(input)),
                Span::styled("█", app.theme.muted),
            ];
            if let Some(e) = error {
                spans.push(Span::styled(
                    format!("  {}", sanitize::line(e)),
                    app.theme.error,
                ));
            } else {
                spans.push(Span::styled(
                    "  enter apply · esc cancel · user:alice tool:read* decision:deny",
                    app.theme.muted,
                ));
            }
            Line::from(spans)
        }
        Mode::Command { input } => Line::from(vec![
            Span::styled(":", app.theme.filter_prompt),
            Span::raw(sanitize::line(input)),
            Span::styled("█", app.theme.muted),
            Span::styled("  theme NAME · source · export FILE · q", app.theme.muted),
        ]),
        Mode::Reason { input, .. } => Line::from(vec![
            Span::styled("reject reason (optional): ", app.theme.filter_prompt),
            Span::raw(sanitize::line(input)),
            Span::styled("█", app.theme.muted),
            Span::styled("  enter send · esc cancel", app.theme.muted),
        ]),
        Mode::Confirm { .. } | Mode::Contain { .. } => {
            Line::from(Span::styled("answer the question above", app.theme.muted))
        }
        Mode::Normal if app.overlay == Overlay::Detail => {
            let mut spans = vec![
                Span::styled(" ↑↓ pgup pgdn", app.theme.footer_key),
                Span::styled(" scroll ", app.theme.footer_text),
                Span::styled(" esc", app.theme.footer_key),
                Span::styled(" close ", app.theme.footer_text),
            ];
            for action in app.pane.actions() {
                if app.action_refusal(*action).is_none() {
                    spans.push(Span::styled(
                        format!(" {}", app.keys.label(*action)),
                        app.theme.footer_key,
                    ));
                    spans.push(Span::styled(
                        format!(" {} ", action.help()),
                        app.theme.footer_text,
                    ));
                }
            }
            Line::from(spans)
        }
        Mode::Normal => {
            let mut spans = Vec::new();
            let has_rows = app.row_count(app.pane) > 0;
            let mut hint = |action: KeyAction, label: &str| {
                let key = app.keys.label(action);
                // Row actions need a row.
                let needs_row = !matches!(
                    action,
                    KeyAction::Filter | KeyAction::NextPane | KeyAction::Help | KeyAction::Quit
                );
                if needs_row && !has_rows {
                    return;
                }
                match app.action_refusal(action) {
                    None => {
                        spans.push(Span::styled(format!(" {key}"), app.theme.footer_key));
                        spans.push(Span::styled(format!(" {label} "), app.theme.footer_text));
                    }
                    Some(_) => {
                        spans.push(Span::styled(format!(" {key} {label}✕ "), app.theme.muted));
                    }
                }
            };
            match app.pane {
                Pane::Calls => {
                    hint(KeyAction::Open, "detail");
                    hint(KeyAction::JumpSession, "session");
                    let calls = app.current();
                    if calls.follow {
                        hint(KeyAction::Pause, "pause");
                    } else {
                        hint(KeyAction::Follow, "follow");
                    }
                }
                Pane::Alerts => {
                    hint(KeyAction::Open, "detail");
                    hint(KeyAction::Acknowledge, "ack");
                    hint(KeyAction::Resolve, "resolve");
                    hint(KeyAction::Contain, "contain");
                }
                Pane::Sessions => {
                    hint(KeyAction::Open, "detail");
                    hint(KeyAction::Revoke, "revoke");
                }
                Pane::Approvals => {
                    hint(KeyAction::Open, "diff");
                    hint(KeyAction::Approve, "approve");
                    hint(KeyAction::Reject, "reject");
                }
                Pane::Other => hint(KeyAction::Open, "raw"),
            }
            hint(KeyAction::Filter, "filter");
            hint(KeyAction::NextPane, "pane");
            hint(KeyAction::Help, "help");
            hint(KeyAction::Quit, "quit");
            Line::from(spans)
        }
    };
    frame.render_widget(Paragraph::new(line), area);
}

fn centered(area: Rect, width: u16, height: u16) -> Rect {
    let w = width.min(area.width);
    let h = height.min(area.height);
    Rect {
        x: area.x + (area.width - w) / 2,
        y: area.y + (area.height - h) / 2,
        width: w,
        height: h,
    }
}

fn draw_dialog(frame: &mut Frame<'_>, app: &App, area: Rect, text: &str) {
    let clean: Vec<String> = text.lines().map(sanitize::line).collect();
    let widest = clean.iter().map(|l| display_width(l)).max().unwrap_or(20) as u16;
    let width = (widest + 4).max(30).min(area.width);
    // Wrapped here, not by the paragraph, so the box is as tall as what it says: a question
    // cut off at its end (the "[y/N]") would be worse than none.
    let inner = usize::from(width.saturating_sub(2)).max(1);
    let lines: Vec<Line> = clean
        .iter()
        .flat_map(|l| wrap_words(l, inner))
        .map(Line::from)
        .collect();
    let rect = centered(area, width, lines.len() as u16 + 2);
    frame.render_widget(Clear, rect);
    let block = Block::default()
        .borders(Borders::ALL)
        .border_style(app.theme.warn)
        .title(" confirm ");
    frame.render_widget(
        Paragraph::new(lines).block(block).style(app.theme.base),
        rect,
    );
}

fn display_width(text: &str) -> usize {
    use unicode_width::UnicodeWidthStr;
    text.width()
}

/// Greedy word wrap to `width` columns; a word longer than a line is cut.
fn wrap_words(text: &str, width: usize) -> Vec<String> {
    use unicode_width::UnicodeWidthChar;
    let mut out = Vec::new();
    let mut line = String::new();
    for word in text.split(' ') {
        let mut word = word.to_string();
        loop {
            let (have, need) = (display_width(&line), display_width(&word));
            let gap = usize::from(!line.is_empty());
            if have + gap + need <= width {
                if gap == 1 {
                    line.push(' ');
                }
                line.push_str(&word);
                break;
            }
            if !line.is_empty() {
                out.push(std::mem::take(&mut line));
                continue;
            }
            // A word wider than the line: cut it at the width.
            let mut cut = 0;
            let mut used = 0;
            for (i, c) in word.char_indices() {
                let w = c.width().unwrap_or(0);
                if used + w > width {
                    break;
                }
                used += w;
                cut = i + c.len_utf8();
            }
            let cut = cut.max(word.chars().next().map_or(0, char::len_utf8));
            out.push(word[..cut].to_string());
            word = word[cut..].to_string();
            if word.is_empty() {
                break;
            }
        }
    }
    if !line.is_empty() || out.is_empty() {
        out.push(line);
    }
    out
}

fn draw_help(frame: &mut Frame<'_>, app: &App, area: Rect) {
    let mut lines = vec![
        Line::from(Span::styled(
            format!("{} — keys", app.pane.title()),
            app.theme.title,
        )),
        Line::from(""),
    ];
    let mut row = |action: KeyAction| {
        let keys = app.keys.labels(action);
        let mut spans = vec![
            Span::styled(format!("{keys:>14}  "), app.theme.help_key),
            Span::styled(action.help().to_string(), app.theme.help_text),
        ];
        if let Some(why) = app.action_refusal(action) {
            spans.push(Span::styled(
                format!("  (disabled: {why})"),
                app.theme.muted,
            ));
        }
        lines.push(Line::from(spans));
    };
    for action in app.pane.actions() {
        row(*action);
    }
    for action in [
        KeyAction::Open,
        KeyAction::Back,
        KeyAction::Up,
        KeyAction::Down,
        KeyAction::PageUp,
        KeyAction::PageDown,
        KeyAction::Top,
        KeyAction::Bottom,
        KeyAction::Pause,
        KeyAction::Follow,
        KeyAction::Filter,
        KeyAction::Command,
        KeyAction::NextPane,
        KeyAction::PrevPane,
        KeyAction::PaneCalls,
        KeyAction::PaneAlerts,
        KeyAction::PaneSessions,
        KeyAction::PaneApprovals,
        KeyAction::PaneOther,
        KeyAction::Help,
        KeyAction::Quit,
    ] {
        row(action);
    }
    lines.push(Line::from(""));
    lines.push(Line::from(Span::styled(
        "filter: user:alice tool:read* decision:deny -status:resolved severity:>=high \"free text\"",
        app.theme.muted,
    )));
    lines.push(Line::from(Span::styled(
        "commands: :theme NAME  :source  :export FILE  :q",
        app.theme.muted,
    )));
    let rect = centered(area, 78, lines.len() as u16 + 2);
    frame.render_widget(Clear, rect);
    let block = Block::default()
        .borders(Borders::ALL)
        .border_style(app.theme.border)
        .title(" help · any key closes ");
    frame.render_widget(
        Paragraph::new(lines).block(block).style(app.theme.base),
        rect,
    );
}

fn draw_detail(frame: &mut Frame<'_>, app: &App, area: Rect) {
    let (title, lines) = match app.pane {
        Pane::Calls => panes::calls::detail(app),
        Pane::Alerts => panes::alerts::detail(app),
        Pane::Sessions => panes::sessions::detail(app),
        Pane::Approvals => panes::approvals::detail(app),
        Pane::Other => panes::other::detail(app),
    };
    frame.render_widget(Clear, area);
    let block = Block::default()
        .borders(Borders::ALL)
        .border_style(app.theme.border)
        .title(Span::styled(
            format!(" {title} · esc closes "),
            app.theme.title,
        ));
    let p = Paragraph::new(lines)
        .block(block)
        .style(app.theme.base)
        .wrap(Wrap { trim: false })
        .scroll((app.detail_scroll, 0));
    frame.render_widget(p, area);
}

/// A `label: value` detail line, the value sanitized.
pub fn field(app: &App, label: &str, value: &str) -> Line<'static> {
    Line::from(vec![
        Span::styled(format!("{label:>14}: "), app.theme.header),
        Span::raw(sanitize::line(value)),
    ])
}

/// Pretty JSON as sanitized lines, indented.
pub fn json_lines(value: &serde_json::Value, style: Style) -> Vec<Line<'static>> {
    let text = serde_json::to_string_pretty(value).unwrap_or_default();
    sanitize::multiline(&text)
        .into_iter()
        .map(|l| Line::from(Span::styled(format!("  {l}"), style)))
        .collect()
}

/// Formats an event time as `HH:MM:SS` UTC.
pub fn clock(time_ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(time_ms)
        .map(|t| t.format("%H:%M:%S").to_string())
        .unwrap_or_default()
}

/// Formats an event time as `YYYY-MM-DD HH:MM:SS.mmm UTC`.
pub fn full_time(time_ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(time_ms)
        .map(|t| t.format("%Y-%m-%d %H:%M:%S%.3f UTC").to_string())
        .unwrap_or_default()
}
