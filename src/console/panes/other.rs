//! Pane 5: events of types this build does not know, kept and shown raw (never dropped).

use ratatui::Frame;
use ratatui::layout::{Constraint, Rect};
use ratatui::text::Line;
use ratatui::widgets::Row;

use super::{TableSpec, cell, shown, table, title};
use crate::console::app::{App, Pane};
use crate::console::view::{clock, field, full_time, json_lines};

/// Draws the raw events table.
pub fn draw(frame: &mut Frame<'_>, app: &App, area: Rect) {
    let s = &app.snapshot;
    let state = &app.panes[Pane::Other.index()];
    let (start, shown_rows) = shown(state, &s.other, area);
    let rows: Vec<Row> = shown_rows
        .map(|r| {
            Row::new(vec![
                cell(&clock(r.time_ms), 8, app.theme.base),
                cell(&r.source, 20, app.theme.muted),
                cell(&r.kind, 28, app.theme.warn),
                cell(&r.json, 400, app.theme.base),
            ])
        })
        .collect();
    table(
        frame,
        app,
        area,
        TableSpec {
            title: title(
                app,
                "Other events (unknown types, raw)",
                format!("{}", state.visible.len()),
            ),
            header: &["time", "source", "type", "event"],
            widths: &[
                Constraint::Length(8),
                Constraint::Length(20),
                Constraint::Length(28),
                Constraint::Min(10),
            ],
            rows,
            selected: state.selected - start,
            empty: "no events of unknown types",
        },
    );
}

/// The selected raw event, pretty-printed.
pub fn detail(app: &App) -> (String, Vec<Line<'static>>) {
    let state = &app.panes[Pane::Other.index()];
    let Some(r) = state
        .visible
        .get(state.selected)
        .and_then(|&i| app.snapshot.other.get(i))
    else {
        return ("event".into(), Vec::new());
    };
    let mut lines = vec![
        field(app, "type", &r.kind),
        field(app, "source", &format!("{} #{}", r.source, r.sequence)),
        field(app, "time", &full_time(r.time_ms)),
    ];
    let value: serde_json::Value =
        serde_json::from_str(&r.json).unwrap_or(serde_json::Value::String(r.json.clone()));
    lines.extend(json_lines(&value, app.theme.base));
    ("raw event".into(), lines)
}
