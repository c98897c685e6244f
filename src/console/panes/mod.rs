//! One file per pane: its table and its detail view. Every cell from an event is sanitized.

pub mod alerts;
pub mod approvals;
pub mod calls;
pub mod other;
pub mod sessions;

use ratatui::Frame;
use ratatui::layout::{Constraint, Rect};
use ratatui::style::Style;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Cell, Paragraph, Row, Table, TableState};

use super::app::App;
use super::sanitize;

/// A sanitized cell cut to `width` columns.
pub fn cell(text: &str, width: u16, style: Style) -> Cell<'static> {
    Cell::from(Span::styled(
        sanitize::truncate_to_width(&sanitize::line(text), width as usize),
        style,
    ))
}

/// Which rows a table in `area` shows so that `selected` is on screen: (first, count). Only
/// these rows are built, so a frame costs the screen, not the whole loaded window.
pub fn visible_window(selected: usize, total: usize, area: Rect) -> (usize, usize) {
    let rows = (area.height as usize).saturating_sub(3).max(1); // borders and header
    let start = if selected < rows {
        0
    } else {
        selected + 1 - rows
    };
    (start, rows.min(total.saturating_sub(start)))
}

/// The rows of a state pane that are on screen: its first visible index and those rows (the
/// pane's filter picks `state.visible` out of `items`).
pub fn shown<'a, T>(
    state: &'a super::app::PaneState,
    items: &'a [T],
    area: Rect,
) -> (usize, impl Iterator<Item = &'a T>) {
    let (start, count) = visible_window(state.selected, state.visible.len(), area);
    let rows = state
        .visible
        .iter()
        .skip(start)
        .take(count)
        .filter_map(|&i| items.get(i));
    (start, rows)
}

/// What a pane's table shows.
pub struct TableSpec<'a> {
    /// Title line with counts.
    pub title: Line<'static>,
    /// Column names.
    pub header: &'a [&'a str],
    /// Column widths.
    pub widths: &'a [Constraint],
    /// The rows, already sanitized.
    pub rows: Vec<Row<'static>>,
    /// Selected row.
    pub selected: usize,
    /// What to say when there are no rows and no filter.
    pub empty: &'a str,
}

/// Draws a pane's table with a title, header and the selection; an empty pane says why.
pub fn table(frame: &mut Frame<'_>, app: &App, area: Rect, spec: TableSpec<'_>) {
    let block = Block::default()
        .borders(Borders::ALL)
        .border_style(app.theme.border)
        .title(spec.title);
    if spec.rows.is_empty() {
        let text = if app.current().filter_text.is_empty() {
            spec.empty.to_string()
        } else {
            format!(
                "nothing matches the filter `{}` (esc clears it)",
                sanitize::line(&app.current().filter_text)
            )
        };
        frame.render_widget(
            Paragraph::new(Span::styled(text, app.theme.muted)).block(block),
            area,
        );
        return;
    }
    let header = Row::new(
        spec.header
            .iter()
            .map(|h| Cell::from(Span::styled(h.to_string(), app.theme.header))),
    );
    let table = Table::new(spec.rows, spec.widths.to_vec())
        .header(header)
        .block(block)
        .row_highlight_style(app.theme.selected)
        .highlight_symbol("▶")
        .column_spacing(1);
    let mut state = TableState::default().with_selected(Some(spec.selected));
    frame.render_stateful_widget(table, area, &mut state);
}

/// The title of a pane: its name, counts and filter.
pub fn title(app: &App, name: &str, counts: String) -> Line<'static> {
    let mut spans = vec![
        Span::styled(format!(" {name} "), app.theme.title),
        Span::styled(format!("{counts} "), app.theme.muted),
    ];
    let filter = &app.current().filter_text;
    if !filter.is_empty() {
        spans.push(Span::styled(
            format!(
                "/{} ",
                sanitize::truncate_to_width(&sanitize::line(filter), 40)
            ),
            app.theme.filter_prompt,
        ));
    }
    Line::from(spans)
}
