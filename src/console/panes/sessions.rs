//! Pane 3: session bindings (`user:session` and stateless `user:client`), revoke with a
//! confirmation.

use ratatui::Frame;
use ratatui::layout::{Constraint, Rect};
use ratatui::text::Line;
use ratatui::widgets::Row;

use super::{TableSpec, cell, shown, table, title};
use crate::console::app::{App, Pane, Target};
use crate::console::view::{clock, field, full_time};
use crate::protocol::events::SessionChange;

const WIDTHS: [Constraint; 8] = [
    Constraint::Min(16),
    Constraint::Length(10),
    Constraint::Length(8),
    Constraint::Length(8),
    Constraint::Length(8),
    Constraint::Length(5),
    Constraint::Length(5),
    Constraint::Length(8),
];

fn change_label(change: SessionChange) -> &'static str {
    match change {
        SessionChange::Bound => "bound",
        SessionChange::Seen => "active",
        SessionChange::Expired => "expired",
        SessionChange::Revoked => "REVOKED",
        SessionChange::ReuseRefused => "REUSE!",
        SessionChange::Ended => "ended",
    }
}

fn hhmmss(rfc3339: Option<&str>) -> String {
    rfc3339
        .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
        .map(|t| t.format("%H:%M:%S").to_string())
        .unwrap_or_else(|| "-".into())
}

/// Draws the sessions table.
pub fn draw(frame: &mut Frame<'_>, app: &App, area: Rect) {
    let s = &app.snapshot;
    let state = &app.panes[Pane::Sessions.index()];
    let (start, shown_rows) = shown(state, &s.sessions, area);
    let rows: Vec<Row> = shown_rows
        .map(|r| {
            let x = &r.session;
            let flagged = x.reuse_attempts > 0 || x.change == SessionChange::ReuseRefused;
            let style = if flagged {
                app.theme.deny
            } else if matches!(
                x.change,
                SessionChange::Revoked | SessionChange::Expired | SessionChange::Ended
            ) {
                app.theme.muted
            } else {
                app.theme.base
            };
            let target = Target::Session(r.source.clone(), x.binding.clone());
            let state_label = app
                .in_flight
                .get(&target)
                .map(|f| f.pending.label.clone())
                .unwrap_or_else(|| change_label(x.change).to_string());
            Row::new(vec![
                cell(&x.binding, 60, style),
                cell(&x.client.name, 10, style),
                cell(x.upstream.as_deref().unwrap_or("-"), 8, style),
                cell(&hhmmss(x.created.as_deref()), 8, style),
                cell(&clock(r.time_ms), 8, style),
                cell(&x.call_count.to_string(), 5, style),
                cell(&x.reuse_attempts.to_string(), 5, style),
                cell(&state_label, 8, style),
            ])
        })
        .collect();
    let flagged = s
        .sessions
        .iter()
        .filter(|r| r.session.reuse_attempts > 0)
        .count();
    let counts = format!(
        "{} shown, {flagged} with reuse attempts",
        state.visible.len()
    );
    table(
        frame,
        app,
        area,
        TableSpec {
            title: title(app, "Sessions", counts),
            header: &[
                "binding", "client", "server", "created", "last", "calls", "reuse", "state",
            ],
            widths: &WIDTHS,
            rows,
            selected: state.selected - start,
            empty: "no session bindings yet",
        },
    );
}

/// The selected binding in full.
pub fn detail(app: &App) -> (String, Vec<Line<'static>>) {
    let Some(r) = app.selected_session() else {
        return ("session".into(), Vec::new());
    };
    let x = &r.session;
    let lines = vec![
        field(app, "binding", &x.binding),
        field(app, "state", change_label(x.change)),
        field(app, "user", &x.user),
        field(
            app,
            "session id",
            x.session_id.as_deref().unwrap_or("- (stateless)"),
        ),
        field(
            app,
            "client",
            &format!(
                "{} {}",
                x.client.name,
                x.client.version.as_deref().unwrap_or("")
            ),
        ),
        field(
            app,
            "client id",
            x.client.client_id.as_deref().unwrap_or("-"),
        ),
        field(app, "server", x.upstream.as_deref().unwrap_or("-")),
        field(
            app,
            "protocol",
            x.protocol_version.as_deref().unwrap_or("-"),
        ),
        field(app, "created", x.created.as_deref().unwrap_or("-")),
        field(app, "expires", x.expires.as_deref().unwrap_or("-")),
        field(app, "last event", &full_time(r.time_ms)),
        field(app, "calls", &x.call_count.to_string()),
        field(app, "reuse tries", &x.reuse_attempts.to_string()),
        field(app, "tried by", x.other_user.as_deref().unwrap_or("-")),
        field(app, "reason", x.reason.as_deref().unwrap_or("-")),
        field(app, "source", &r.source),
    ];
    (
        format!("session {}", crate::console::sanitize::line(&x.binding)),
        lines,
    )
}
