//! Pane 1: live tool calls, newest first, following unless paused.

use ratatui::Frame;
use ratatui::layout::{Constraint, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::Row;

use super::{TableSpec, cell, table, title, visible_window};
use crate::console::app::{App, Pane};
use crate::console::view::{clock, field, full_time, json_lines};
use crate::protocol::events::{CallPhase, Decision};

const WIDTHS: [Constraint; 8] = [
    Constraint::Length(8),
    Constraint::Length(10),
    Constraint::Length(14),
    Constraint::Length(10),
    Constraint::Min(12),
    Constraint::Length(5),
    Constraint::Length(8),
    Constraint::Length(3),
];

/// Draws the tool calls table.
pub fn draw(frame: &mut Frame<'_>, app: &App, area: Rect) {
    let s = &app.snapshot;
    let state = &app.panes[Pane::Calls.index()];
    let (start, count) = visible_window(state.selected, s.calls.len(), area);
    let rows: Vec<Row> = s
        .calls
        .iter()
        .skip(start)
        .take(count)
        .map(|r| {
            let c = &r.call;
            let deny = c.decision == Decision::Deny;
            let style = if deny {
                app.theme.deny
            } else if c.is_error {
                app.theme.error
            } else {
                app.theme.base
            };
            let latency = c
                .latency_ms
                .map(|l| format!("{l:.0}ms"))
                .unwrap_or_else(|| "-".into());
            let decision = if deny { "DENY" } else { "allow" };
            let session = c
                .session
                .as_deref()
                .map(|s| s.rsplit(':').next().unwrap_or(s))
                .unwrap_or("-");
            let phase = if c.phase == CallPhase::Started {
                "…"
            } else {
                ""
            };
            Row::new(vec![
                cell(&clock(r.time_ms), 8, style),
                cell(&c.user, 10, style),
                cell(session, 14, style),
                cell(&c.upstream, 10, style),
                cell(&format!("{}{phase}", c.tool), 40, style),
                cell(decision, 5, style),
                cell(&latency, 8, style),
                cell(if c.is_error { "ERR" } else { "" }, 3, style),
            ])
        })
        .collect();
    let mut counts = format!("{} shown", s.calls.len());
    if s.calls_more {
        counts.push_str(", more below");
    }
    if s.calls_scan_capped {
        counts.push_str(", older not searched: narrow with user: or session:");
    }
    let mut heading = title(app, "Tool calls", counts);
    if state.follow {
        heading
            .spans
            .push(Span::styled(" following ", app.theme.ok));
    } else {
        heading.spans.push(Span::styled(
            format!(" paused, {} new ", state.new_while_paused),
            app.theme.paused_marker,
        ));
    }
    table(
        frame,
        app,
        area,
        TableSpec {
            title: heading,
            header: &[
                "time UTC", "user", "session", "server", "tool", "dec", "latency", "err",
            ],
            widths: &WIDTHS,
            rows,
            selected: state.selected - start,
            empty: "no tool calls yet — waiting for events from the sources",
        },
    );
}

/// The selected call in full.
pub fn detail(app: &App) -> (String, Vec<Line<'static>>) {
    let state = &app.panes[Pane::Calls.index()];
    let Some(r) = app.snapshot.calls.get(state.selected) else {
        return ("tool call".into(), Vec::new());
    };
    let c = &r.call;
    let mut lines = vec![
        field(app, "time", &full_time(r.time_ms)),
        field(app, "source", &format!("{} #{}", r.source, r.sequence)),
        field(app, "call", &c.call_id),
        field(app, "user", &c.user),
        field(app, "session", c.session.as_deref().unwrap_or("-")),
        field(
            app,
            "client",
            &format!(
                "{} {}",
                c.client.name,
                c.client.version.as_deref().unwrap_or("")
            ),
        ),
        field(
            app,
            "protocol",
            c.protocol_version.as_deref().unwrap_or("-"),
        ),
        field(app, "server", &c.upstream),
        field(app, "tool", &c.tool),
        field(
            app,
            "decision",
            if c.decision == Decision::Deny {
                "DENY"
            } else {
                "allow"
            },
        ),
        field(app, "reason", c.reason.as_deref().unwrap_or("-")),
        field(
            app,
            "latency",
            &c.latency_ms
                .map(|l| format!("{l:.1} ms"))
                .unwrap_or_else(|| "-".into()),
        ),
        field(
            app,
            "result bytes",
            &c.result_bytes
                .map(|b| b.to_string())
                .unwrap_or_else(|| "-".into()),
        ),
        field(app, "error", if c.is_error { "yes" } else { "no" }),
        Line::from(Span::styled("arguments:", app.theme.header)),
    ];
    lines.extend(json_lines(&c.arguments, app.theme.base));
    lines.push(Line::from(Span::styled(
        "result summary:",
        app.theme.header,
    )));
    for l in crate::console::sanitize::multiline(c.result_summary.as_deref().unwrap_or("-")) {
        lines.push(Line::from(format!("  {l}")));
    }
    lines.push(Line::from(Span::styled(
        "s jumps to the session",
        app.theme.muted,
    )));
    (
        format!("tool call {}", crate::console::sanitize::line(&c.tool)),
        lines,
    )
}
