//! Styled, sanitized text for ratatui: event text becomes spans with every revealed invisible
//! or control character in the theme's `hidden_char` style, so views never print raw input
//! and never hide what an attacker hid.

use ratatui::style::Style;
use ratatui::text::{Line, Span};

use crate::console::sanitize::{self, SegmentKind};
use crate::console::theme::Theme;

/// One display line of `s` as spans: plain text in `style`, placeholders in `style` patched
/// with `theme.hidden_char`. Newlines and tabs become placeholders too.
pub fn spans(s: &str, style: Style, theme: &Theme) -> Vec<Span<'static>> {
    let marked = style.patch(theme.hidden_char);
    sanitize::segments(s)
        .into_iter()
        .map(|seg| match seg.kind {
            SegmentKind::Plain => Span::styled(seg.text, style),
            SegmentKind::Hidden | SegmentKind::Control => Span::styled(seg.text, marked),
        })
        .collect()
}

/// [`spans`] as one [`Line`].
pub fn line(s: &str, style: Style, theme: &Theme) -> Line<'static> {
    Line::from(spans(s, style, theme))
}

/// Multi-line text as lines: split on `\n` (a `\r` before it dropped), tabs expanded to
/// [`sanitize::TAB_WIDTH`] stops, everything else as in [`spans`].
pub fn lines(s: &str, style: Style, theme: &Theme) -> Vec<Line<'static>> {
    s.split('\n')
        .map(|raw| {
            let raw = raw.strip_suffix('\r').unwrap_or(raw);
            let mut out: Vec<Span<'static>> = Vec::new();
            let mut column = 0;
            for (i, chunk) in raw.split('\t').enumerate() {
                if i > 0 {
                    let pad = sanitize::TAB_WIDTH - column % sanitize::TAB_WIDTH;
                    out.push(Span::styled(" ".repeat(pad), style));
                    column += pad;
                }
                for span in spans(chunk, style, theme) {
                    column += sanitize::display_width(&span.content);
                    out.push(span);
                }
            }
            Line::from(out)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use ratatui::style::{Color, Modifier};

    fn theme() -> Theme {
        Theme::default()
    }

    fn joined(line: &Line<'_>) -> String {
        line.spans.iter().map(|s| s.content.as_ref()).collect()
    }

    #[test]
    fn plain_text_is_one_span_in_the_given_style() {
        let style = Style::new().fg(Color::Green);
        let out = spans("hello", style, &theme());
        assert_eq!(out, vec![Span::styled("hello", style)]);
        assert!(spans("", style, &theme()).is_empty());
    }

    #[test]
    fn hidden_and_control_are_marked() {
        let t = theme();
        let style = Style::new().add_modifier(Modifier::ITALIC);
        let out = spans("a\u{202E}b\x1b[0m", style, &t);
        let marked = style.patch(t.hidden_char);
        assert_eq!(
            out,
            vec![
                Span::styled("a", style),
                Span::styled("⟨RLO⟩", marked),
                Span::styled("b", style),
                Span::styled("␛", marked),
                Span::styled("[0m", style),
            ]
        );
        assert_eq!(joined(&line("x\u{200B}", style, &t)), "x⟨ZWSP⟩");
    }

    #[test]
    fn lines_split_and_expand_tabs() {
        let t = theme();
        let out = lines("a\tb\r\n\x1b\tc\n日\td", Style::new(), &t);
        let text: Vec<String> = out.iter().map(joined).collect();
        assert_eq!(text, vec!["a   b", "␛   c", "日  d"]);
        for l in &out {
            for s in &l.spans {
                assert!(!s.content.chars().any(|c| c.is_control()));
            }
        }
    }
}
