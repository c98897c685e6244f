//! Pane 4: pending tool-definition changes, oldest first. The detail is what an approver needs:
//! a word diff of the description, a structural diff of the schemas, invisible characters made
//! visible, and the monitor's findings on that tool. Approve and reject name the proposed hash
//! shown here.

use ratatui::Frame;
use ratatui::layout::{Constraint, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::Row;

use super::alerts::{evidence_line, severity_label, severity_style};
use super::{TableSpec, cell, shown, table, title};
use crate::console::app::{App, Pane, Target};
use crate::console::data::{AlertRow, ChangeRow};
use crate::console::keys::KeyAction;
use crate::console::sanitize::{self, SegmentKind};
use crate::console::view::{clock, field, full_time, json_lines};
use crate::console::widgets::diff::{self, ChangeKind};
use crate::protocol::events::AlertStatus;

const WIDTHS: [Constraint; 7] = [
    Constraint::Length(8),
    Constraint::Length(10),
    Constraint::Min(14),
    Constraint::Length(7),
    Constraint::Length(13),
    Constraint::Length(7),
    Constraint::Length(9),
];

/// Alerts that name this change's tool.
pub fn findings<'a>(app: &'a App, row: &ChangeRow) -> Vec<&'a AlertRow> {
    app.snapshot
        .alerts
        .iter()
        .filter(|a| {
            a.alert.refs.tool.as_deref() == Some(row.change.tool.as_str())
                && a.alert
                    .refs
                    .upstream
                    .as_deref()
                    .is_none_or(|u| u == row.change.upstream)
        })
        .collect()
}

fn short_hash(hash: &str) -> String {
    let hex = hash.strip_prefix("sha256:").unwrap_or(hash);
    format!("{}…", hex.chars().take(12).collect::<String>())
}

/// Draws the pending changes table.
pub fn draw(frame: &mut Frame<'_>, app: &App, area: Rect) {
    let s = &app.snapshot;
    let state = &app.panes[Pane::Approvals.index()];
    let (start, shown_rows) = shown(state, &s.changes, area);
    let rows: Vec<Row> = shown_rows
        .map(|r| {
            let c = &r.change;
            let found = findings(app, r);
            let open = found
                .iter()
                .filter(|a| a.alert.status != AlertStatus::Resolved)
                .count();
            let worst = found.iter().map(|a| a.alert.severity).max();
            let kind = if c.previous.is_some() {
                "changed"
            } else {
                "new"
            };
            let hidden = description(&c.proposed).is_some_and(sanitize::has_hidden);
            let target = Target::Tool(r.source.clone(), c.upstream.clone(), c.tool.clone());
            let status = app
                .in_flight
                .get(&target)
                .map(|f| f.pending.label.clone())
                .unwrap_or_else(|| "pending".into());
            let finding_style = worst
                .map(|w| severity_style(app, w))
                .unwrap_or(app.theme.muted);
            let finding_text = match worst {
                Some(w) => format!("{open} {}", severity_label(w)),
                None => "none".into(),
            };
            Row::new(vec![
                cell(&clock(r.time_ms), 8, app.theme.base),
                cell(&c.upstream, 10, app.theme.base),
                cell(&c.tool, 40, app.theme.base),
                cell(
                    if hidden { "HIDDEN!" } else { kind },
                    7,
                    if hidden {
                        app.theme.hidden_char
                    } else {
                        app.theme.base
                    },
                ),
                cell(&short_hash(&c.proposed_hash), 13, app.theme.muted),
                cell(&finding_text, 7, finding_style),
                cell(&status, 9, app.theme.pending),
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
                "Approvals",
                format!("{} pending, oldest first", state.visible.len()),
            ),
            header: &[
                "since", "server", "tool", "kind", "proposed", "findings", "status",
            ],
            widths: &WIDTHS,
            rows,
            selected: state.selected - start,
            empty: "no pending tool changes",
        },
    );
}

fn description(tool: &serde_json::Value) -> Option<&str> {
    tool.get("description").and_then(|d| d.as_str())
}

/// Text with its invisible and control characters shown as highlighted placeholders.
fn revealed(app: &App, text: &str, base: ratatui::style::Style) -> Vec<Span<'static>> {
    sanitize::segments(text)
        .into_iter()
        .map(|seg| match seg.kind {
            SegmentKind::Plain => Span::styled(seg.text, base),
            _ => Span::styled(seg.text, app.theme.hidden_char),
        })
        .collect()
}

/// The selected change: diffs, findings, and the hash the decision binds to.
pub fn detail(app: &App) -> (String, Vec<Line<'static>>) {
    let Some(r) = app.selected_change() else {
        return ("change".into(), Vec::new());
    };
    let c = &r.change;
    let mut lines = vec![
        field(app, "tool", &format!("{}/{}", c.upstream, c.tool)),
        field(app, "pending since", &full_time(r.time_ms)),
        field(app, "source", &r.source),
        field(
            app,
            "approved hash",
            c.previous_hash.as_deref().unwrap_or("- (new tool)"),
        ),
        Line::from(vec![
            Span::styled(format!("{:>14}: ", "proposed hash"), app.theme.header),
            Span::styled(sanitize::line(&c.proposed_hash), app.theme.title),
        ]),
        Line::from(Span::styled(
            format!(
                "{} approves, {} rejects exactly this proposed hash",
                app.keys.label(KeyAction::Approve),
                app.keys.label(KeyAction::Reject)
            ),
            app.theme.muted,
        )),
        Line::from(""),
    ];
    let found = findings(app, r);
    lines.push(Line::from(Span::styled(
        format!("monitor findings on this tool: {}", found.len()),
        app.theme.header,
    )));
    for a in &found {
        lines.push(Line::from(vec![
            Span::styled(
                format!("  {} ", severity_label(a.alert.severity)),
                severity_style(app, a.alert.severity),
            ),
            Span::raw(sanitize::line(&format!(
                "{} — {}",
                a.alert.rule, a.alert.summary
            ))),
        ]));
        if let Some(e) = &a.alert.evidence {
            lines.push(evidence_line(app, e));
        }
    }
    lines.push(Line::from(""));
    let old_desc = c.previous.as_ref().and_then(description).unwrap_or("");
    let new_desc = description(&c.proposed).unwrap_or("");
    let hidden = sanitize::has_hidden(new_desc);
    lines.push(Line::from(Span::styled(
        if hidden {
            "description (word diff; ⟨…⟩ marks invisible or control characters — they hide instructions):"
        } else {
            "description (word diff):"
        },
        if hidden { app.theme.hidden_char } else { app.theme.header },
    )));
    for mut line in diff::render_word_diff(&diff::word_diff(old_desc, new_desc), &app.theme).lines {
        line.spans.insert(0, Span::raw("  "));
        lines.push(line);
    }
    lines.push(Line::from(""));
    for (label, key) in [
        ("input schema", "inputSchema"),
        ("output schema", "outputSchema"),
        ("annotations", "annotations"),
        ("title", "title"),
    ] {
        let null = serde_json::Value::Null;
        let old = c
            .previous
            .as_ref()
            .and_then(|p| p.get(key))
            .unwrap_or(&null);
        let new = c.proposed.get(key).unwrap_or(&null);
        let changes = diff::schema_diff(old, new);
        if changes.is_empty() {
            continue;
        }
        lines.push(Line::from(Span::styled(
            format!("{label} changes:"),
            app.theme.header,
        )));
        for ch in changes {
            let (mark, style) = match ch.kind {
                ChangeKind::Added => ("+", app.theme.added),
                ChangeKind::Removed => ("-", app.theme.removed),
                ChangeKind::Changed => ("~", app.theme.warn),
            };
            let show = |v: &Option<serde_json::Value>| {
                v.as_ref().map(|v| v.to_string()).unwrap_or_default()
            };
            let text = match ch.kind {
                ChangeKind::Added => format!("  {mark} {}: {}", ch.path, show(&ch.new)),
                ChangeKind::Removed => format!("  {mark} {}: {}", ch.path, show(&ch.old)),
                ChangeKind::Changed => format!(
                    "  {mark} {}: {} → {}",
                    ch.path,
                    show(&ch.old),
                    show(&ch.new)
                ),
            };
            let mut spans = vec![Span::raw("")];
            spans.extend(revealed(app, &text, style));
            lines.push(Line::from(spans));
        }
    }
    lines.push(Line::from(""));
    lines.push(Line::from(Span::styled(
        "proposed definition:",
        app.theme.header,
    )));
    lines.extend(json_lines(&c.proposed, app.theme.base));
    (
        format!(
            "change {}/{}",
            sanitize::line(&c.upstream),
            sanitize::line(&c.tool)
        ),
        lines,
    )
}
