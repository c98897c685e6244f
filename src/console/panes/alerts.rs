//! Pane 2: alerts by status, then severity, then time; acknowledge, resolve, contain.

use ratatui::Frame;
use ratatui::layout::{Constraint, Rect};
use ratatui::style::Style;
use ratatui::text::{Line, Span};
use ratatui::widgets::Row;

use super::{TableSpec, cell, shown, table, title};
use crate::console::app::{App, Pane, Target};
use crate::console::sanitize;
use crate::console::view::{clock, field, full_time};
use crate::protocol::events::{AlertStatus, Evidence, Severity};

const WIDTHS: [Constraint; 6] = [
    Constraint::Length(4),
    Constraint::Length(9),
    Constraint::Length(8),
    Constraint::Length(22),
    Constraint::Length(5),
    Constraint::Min(20),
];

/// The theme style of a severity.
pub fn severity_style(app: &App, severity: Severity) -> Style {
    match severity {
        Severity::Critical => app.theme.severity_critical,
        Severity::High => app.theme.severity_high,
        Severity::Medium => app.theme.severity_medium,
        Severity::Low => app.theme.severity_low,
        Severity::Info => app.theme.severity_info,
    }
}

/// Short severity label.
pub fn severity_label(severity: Severity) -> &'static str {
    match severity {
        Severity::Critical => "CRIT",
        Severity::High => "HIGH",
        Severity::Medium => "MED",
        Severity::Low => "LOW",
        Severity::Info => "INFO",
    }
}

fn status_label(status: AlertStatus) -> &'static str {
    match status {
        AlertStatus::New => "NEW",
        AlertStatus::Acknowledged => "ack",
        AlertStatus::Resolved => "resolved",
    }
}

/// Draws the alerts table.
pub fn draw(frame: &mut Frame<'_>, app: &App, area: Rect) {
    let s = &app.snapshot;
    let state = &app.panes[Pane::Alerts.index()];
    let (start, shown_rows) = shown(state, &s.alerts, area);
    let rows: Vec<Row> = shown_rows
        .map(|r| {
            let a = &r.alert;
            let sev = severity_style(app, a.severity);
            let status_style = match a.status {
                AlertStatus::New => app.theme.status_new,
                AlertStatus::Acknowledged => app.theme.status_acknowledged,
                AlertStatus::Resolved => app.theme.status_resolved,
            };
            let target = Target::Alert(r.source.clone(), a.alert_id.clone());
            let status = match app.in_flight.get(&target) {
                Some(f) => (f.pending.label.clone(), app.theme.pending),
                None => (status_label(a.status).to_string(), status_style),
            };
            let owasp = serde_json::to_value(a.owasp)
                .ok()
                .and_then(|v| v.as_str().map(str::to_string))
                .unwrap_or_default();
            let summary = if a.count > 1 {
                format!("{} (×{})", a.summary, a.count)
            } else {
                a.summary.clone()
            };
            let base = if a.status == AlertStatus::New {
                app.theme.base
            } else {
                app.theme.muted
            };
            Row::new(vec![
                cell(severity_label(a.severity), 4, sev),
                cell(&status.0, 9, status.1),
                cell(&clock(r.time_ms), 8, base),
                cell(&a.rule, 22, base),
                cell(&owasp, 5, base),
                cell(&summary, 200, base),
            ])
        })
        .collect();
    let open = s
        .alerts
        .iter()
        .filter(|a| a.alert.status != AlertStatus::Resolved)
        .count();
    let counts = format!("{} shown, {open} open", state.visible.len());
    table(
        frame,
        app,
        area,
        TableSpec {
            title: title(app, "Alerts", counts),
            header: &["sev", "status", "time", "rule", "owasp", "summary"],
            widths: &WIDTHS,
            rows,
            selected: state.selected - start,
            empty: "no alerts — the monitor has found nothing (or is not connected)",
        },
    );
}

/// The evidence excerpt with the offending span highlighted, each part sanitized.
pub fn evidence_line(app: &App, e: &Evidence) -> Line<'static> {
    let text = &e.excerpt;
    let mut start = e.start.min(text.len());
    while !text.is_char_boundary(start) {
        start -= 1;
    }
    let mut end = e.end.clamp(start, text.len());
    while !text.is_char_boundary(end) {
        end += 1;
    }
    Line::from(vec![
        Span::raw("  "),
        Span::raw(sanitize::line(&text[..start])),
        Span::styled(
            sanitize::line(&text[start..end]),
            app.theme.severity_critical,
        ),
        Span::raw(sanitize::line(&text[end..])),
    ])
}

/// The selected alert in full.
pub fn detail(app: &App) -> (String, Vec<Line<'static>>) {
    let Some(r) = app.selected_alert() else {
        return ("alert".into(), Vec::new());
    };
    let a = &r.alert;
    let mut lines = vec![
        Line::from(vec![
            Span::styled(
                format!(" {} ", severity_label(a.severity)),
                severity_style(app, a.severity),
            ),
            Span::raw(" "),
            Span::styled(sanitize::line(&a.summary), app.theme.title),
        ]),
        field(app, "alert", &a.alert_id),
        field(app, "rule", &a.rule),
        field(app, "OWASP MCP", a.owasp.title()),
        field(app, "status", status_label(a.status)),
        field(
            app,
            "by",
            &format!(
                "{} {}",
                a.by.as_deref().unwrap_or("-"),
                a.note.as_deref().unwrap_or("")
            ),
        ),
        field(app, "count", &a.count.to_string()),
        field(app, "last change", &full_time(r.time_ms)),
        field(app, "source", &r.source),
    ];
    if let Some(e) = &a.evidence {
        lines.push(Line::from(Span::styled(
            format!("evidence in {}:", sanitize::line(&e.field)),
            app.theme.header,
        )));
        lines.push(evidence_line(app, e));
    }
    lines.push(Line::from(Span::styled("involves:", app.theme.header)));
    let refs = &a.refs;
    for (label, value) in [
        ("user", &refs.user),
        ("session", &refs.session),
        ("server", &refs.upstream),
        ("tool", &refs.tool),
        ("tool hash", &refs.tool_hash),
    ] {
        if let Some(v) = value {
            lines.push(field(app, label, v));
        }
    }
    for e in &refs.events {
        lines.push(field(
            app,
            "event",
            &format!("{} #{}", e.source, e.sequence),
        ));
    }
    lines.push(Line::from(""));
    lines.push(Line::from(Span::styled(
        format!(
            "{} session · {} tool change · {} contain · {} ack · {} resolve · {} suppress",
            app.keys.label(crate::console::keys::KeyAction::JumpSession),
            app.keys.label(crate::console::keys::KeyAction::JumpTool),
            app.keys.label(crate::console::keys::KeyAction::Contain),
            app.keys.label(crate::console::keys::KeyAction::Acknowledge),
            app.keys.label(crate::console::keys::KeyAction::Resolve),
            app.keys.label(crate::console::keys::KeyAction::Suppress),
        ),
        app.theme.muted,
    )));
    (format!("alert {}", sanitize::line(&a.rule)), lines)
}
