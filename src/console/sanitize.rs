//! Terminal-safe display text: nothing from an event reaches the terminal raw.
//!
//! Tool arguments, descriptions and results are written by whoever controls an MCP server or
//! client, so they may carry terminal escape sequences (colour, clear screen, cursor moves,
//! OSC 52 clipboard writes, hyperlinks), 8-bit C1 controls, and invisible or deceptive Unicode
//! (zero-width characters, bidi overrides, tag characters that smuggle text). Every such
//! character is replaced by a visible placeholder:
//!
//! - C0 controls and DEL become Unicode Control Pictures (`ESC` → `␛`, `\n` → `␤`, `\t` → `␉`,
//!   `NUL` → `␀`, `DEL` → `␡`), C1 controls become `⟨U+009B⟩`;
//! - invisible format characters become their short name (`⟨ZWSP⟩`, `⟨RLO⟩`, `⟨VS16⟩`),
//!   tag characters show the ASCII character they hide (`⟨TAG a⟩`), the rest `⟨U+XXXX⟩`.
//!
//! Placeholders themselves are plain visible text, so sanitizing twice changes nothing.
//! Private-use and unassigned code points (outside the default-ignorable tag block) are kept.

use std::borrow::Cow;
use std::fmt::Write as _;

use unicode_width::UnicodeWidthChar;

/// Columns between tab stops when [`multiline`] expands tabs.
pub const TAB_WIDTH: usize = 4;

/// What a piece of sanitized text is, so a view can highlight placeholders.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SegmentKind {
    /// Text shown as it was sent.
    Plain,
    /// Placeholders for invisible or deceptive characters (zero-width, bidi, tags, ...).
    Hidden,
    /// Placeholders for control characters (C0, DEL, C1), the raw material of escape sequences.
    Control,
}

/// A run of sanitized text of one kind; concatenating the segments of [`segments`] gives
/// [`line`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Segment {
    /// The display text (placeholders already substituted).
    pub text: String,
    /// Whether it is plain text or placeholders.
    pub kind: SegmentKind,
}

/// Sanitizes text for one display line: every control and invisible character becomes a
/// visible placeholder (newlines and tabs included).
pub fn line(s: &str) -> String {
    line_cow(s).into_owned()
}

/// Like [`line`], but borrows the input when nothing needs replacing (the common case), so
/// hot rendering paths do not allocate.
pub fn line_cow(s: &str) -> Cow<'_, str> {
    let Some(first) = first_unsafe(s) else {
        return Cow::Borrowed(s);
    };
    let mut out = String::with_capacity(s.len() + 16);
    out.push_str(&s[..first]);
    for c in s[first..].chars() {
        if classify(c).is_some() {
            push_placeholder(c, &mut out);
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

/// Sanitizes multi-line text: splits on `\n` (a `\r` directly before it is dropped), expands
/// tabs to spaces at [`TAB_WIDTH`] stops, and sanitizes each line as [`line`] does.
///
/// The result always has one more line than the input has `\n`s.
pub fn multiline(s: &str) -> Vec<String> {
    s.split('\n')
        .map(|raw| {
            let raw = raw.strip_suffix('\r').unwrap_or(raw);
            let mut out = String::with_capacity(raw.len());
            let mut column = 0;
            for c in raw.chars() {
                if c == '\t' {
                    let spaces = TAB_WIDTH - column % TAB_WIDTH;
                    out.extend(std::iter::repeat_n(' ', spaces));
                    column += spaces;
                } else if classify(c).is_some() {
                    let start = out.len();
                    push_placeholder(c, &mut out);
                    column += display_width(&out[start..]);
                } else {
                    out.push(c);
                    column += c.width().unwrap_or(0);
                }
            }
            out
        })
        .collect()
}

/// Sanitizes one display line into runs of plain text and placeholders, so a view can style
/// revealed characters (the approvals diff marks them in a warning style).
///
/// Consecutive placeholders of the same kind share one segment; joining every segment's text
/// gives exactly [`line`]`(s)`.
pub fn segments(s: &str) -> Vec<Segment> {
    let mut out: Vec<Segment> = Vec::new();
    if first_unsafe(s).is_none() {
        if !s.is_empty() {
            out.push(Segment {
                text: s.to_string(),
                kind: SegmentKind::Plain,
            });
        }
        return out;
    }
    for c in s.chars() {
        let kind = classify(c).unwrap_or(SegmentKind::Plain);
        if out.last().is_none_or(|last| last.kind != kind) {
            out.push(Segment {
                text: String::new(),
                kind,
            });
        }
        let Some(current) = out.last_mut() else {
            continue;
        };
        if kind == SegmentKind::Plain {
            current.text.push(c);
        } else {
            push_placeholder(c, &mut current.text);
        }
    }
    out
}

/// Sanitizes `s` as [`line`] does, then cuts it to at most `width` terminal columns, ending in
/// `…` when cut. Wide (CJK) characters count as two columns; a character is never split.
pub fn truncate_to_width(s: &str, width: usize) -> String {
    let clean = line_cow(s);
    if display_width(&clean) <= width {
        return clean.into_owned();
    }
    if width == 0 {
        return String::new();
    }
    let budget = width - 1;
    let mut used = 0;
    let mut out = String::with_capacity(clean.len().min(width * 4));
    for c in clean.chars() {
        let w = c.width().unwrap_or(0);
        if used + w > budget {
            break;
        }
        used += w;
        out.push(c);
    }
    out.push('…');
    out
}

/// Terminal columns `s` takes, counting each character on its own (wide CJK as two, zero-width
/// as none); use it on sanitized text.
pub fn display_width(s: &str) -> usize {
    s.chars().map(|c| c.width().unwrap_or(0)).sum()
}

/// Whether `s` holds anything a reader would not see: an invisible or deceptive character, or a
/// control character other than tab, newline and a carriage return that ends a line (`\r\n`);
/// those are ordinary in multi-line text, while a lone `\r` can overwrite a line on a terminal.
///
/// The approvals view uses it to warn that a tool definition hides something.
pub fn has_hidden(s: &str) -> bool {
    let Some(first) = first_unsafe(s) else {
        return false;
    };
    let mut chars = s[first..].chars().peekable();
    while let Some(c) = chars.next() {
        let hidden = match classify(c) {
            Some(SegmentKind::Hidden) => true,
            Some(SegmentKind::Control) => match c {
                '\t' | '\n' => false,
                '\r' => chars.peek() != Some(&'\n'),
                _ => true,
            },
            _ => false,
        };
        if hidden {
            return true;
        }
    }
    false
}

/// Byte offset of the first character that needs a placeholder.
fn first_unsafe(s: &str) -> Option<usize> {
    // ASCII fast path: printable ASCII never needs replacing.
    let bytes = s.as_bytes();
    let ascii_ok = bytes
        .iter()
        .position(|&b| !(0x20..0x7f).contains(&b))
        .unwrap_or(bytes.len());
    if ascii_ok == bytes.len() {
        return None;
    }
    s[ascii_ok..]
        .char_indices()
        .find(|&(_, c)| classify(c).is_some())
        .map(|(i, _)| ascii_ok + i)
}

/// Whether a character needs a placeholder, and of which kind.
fn classify(c: char) -> Option<SegmentKind> {
    let cp = c as u32;
    if cp < 0x20 || (0x7f..=0x9f).contains(&cp) {
        return Some(SegmentKind::Control);
    }
    if cp < 0xad {
        return None;
    }
    is_hidden(c).then_some(SegmentKind::Hidden)
}

/// The invisible and deceptive characters: zero-width, bidi controls, format characters,
/// variation selectors, fillers that render as nothing, and the whole tag block.
fn is_hidden(c: char) -> bool {
    matches!(c,
        '\u{00AD}'                      // soft hyphen
        | '\u{034F}'                    // combining grapheme joiner
        | '\u{061C}'                    // Arabic letter mark
        | '\u{115F}' | '\u{1160}'       // Hangul choseong / jungseong fillers
        | '\u{17B4}' | '\u{17B5}'       // Khmer inherent vowels (invisible)
        | '\u{180B}'..='\u{180F}'       // Mongolian variation selectors and vowel separator
        | '\u{200B}'..='\u{200F}'       // ZWSP, ZWNJ, ZWJ, LRM, RLM
        | '\u{2028}' | '\u{2029}'       // line / paragraph separator
        | '\u{202A}'..='\u{202E}'       // bidi embeddings and overrides
        | '\u{2060}'..='\u{206F}'       // word joiner, invisible operators, bidi isolates, deprecated
        | '\u{3164}'                    // Hangul filler
        | '\u{FE00}'..='\u{FE0F}'       // variation selectors 1-16
        | '\u{FEFF}'                    // byte order mark / zero-width no-break space
        | '\u{FFA0}'                    // halfwidth Hangul filler
        | '\u{FFF9}'..='\u{FFFB}'       // interlinear annotation controls
        | '\u{1BCA0}'..='\u{1BCA3}'     // shorthand format controls
        | '\u{1D173}'..='\u{1D17A}'     // musical symbol format controls
        | '\u{E0000}'..='\u{E0FFF}'     // tags, variation selectors 17-256, reserved ignorables
    )
}

/// Appends the visible placeholder of a character that [`classify`] flagged.
fn push_placeholder(c: char, out: &mut String) {
    let cp = c as u32;
    match cp {
        0x0a => out.push('\u{2424}'), // ␤
        0x00..=0x1f => out.push(char::from_u32(0x2400 + cp).unwrap_or('\u{FFFD}')),
        0x7f => out.push('\u{2421}'), // ␡
        _ => {
            out.push('⟨');
            match hidden_name(c) {
                Some(name) => out.push_str(name),
                None => match cp {
                    0xFE00..=0xFE0F => {
                        let _ = write!(out, "VS{}", cp - 0xFE00 + 1);
                    }
                    0xE0100..=0xE01EF => {
                        let _ = write!(out, "VS{}", cp - 0xE0100 + 17);
                    }
                    0xE0021..=0xE007E => {
                        out.push_str("TAG ");
                        out.push(char::from_u32(cp - 0xE0000).unwrap_or('?'));
                    }
                    _ => {
                        let _ = write!(out, "U+{cp:04X}");
                    }
                },
            }
            out.push('⟩');
        }
    }
}

/// Short names for the well-known invisible characters.
fn hidden_name(c: char) -> Option<&'static str> {
    Some(match c {
        '\u{00AD}' => "SHY",
        '\u{034F}' => "CGJ",
        '\u{061C}' => "ALM",
        '\u{180E}' => "MVS",
        '\u{200B}' => "ZWSP",
        '\u{200C}' => "ZWNJ",
        '\u{200D}' => "ZWJ",
        '\u{200E}' => "LRM",
        '\u{200F}' => "RLM",
        '\u{2028}' => "LSEP",
        '\u{2029}' => "PSEP",
        '\u{202A}' => "LRE",
        '\u{202B}' => "RLE",
        '\u{202C}' => "PDF",
        '\u{202D}' => "LRO",
        '\u{202E}' => "RLO",
        '\u{2060}' => "WJ",
        '\u{2066}' => "LRI",
        '\u{2067}' => "RLI",
        '\u{2068}' => "FSI",
        '\u{2069}' => "PDI",
        '\u{FEFF}' => "BOM",
        '\u{E0001}' => "TAG LANG",
        '\u{E0020}' => "TAG SP",
        '\u{E007F}' => "TAG END",
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The invisible set the brief names, for assertions.
    fn is_invisible(c: char) -> bool {
        is_hidden(c)
    }

    /// Output may contain no control character, no C1, none of the invisible set.
    fn assert_clean(out: &str) {
        for c in out.chars() {
            let cp = c as u32;
            assert!(cp >= 0x20, "C0 control {cp:#x} in {out:?}");
            assert_ne!(cp, 0x7f, "DEL in {out:?}");
            assert!(
                !(0x80..=0x9f).contains(&cp),
                "C1 control {cp:#x} in {out:?}"
            );
            assert!(!is_invisible(c), "invisible {cp:#x} in {out:?}");
        }
    }

    fn kinds(s: &str) -> Vec<(String, SegmentKind)> {
        segments(s).into_iter().map(|g| (g.text, g.kind)).collect()
    }

    const HOSTILE: &[&str] = &[
        "\x1b[31mred\x1b[0m",
        "\x1b[2J\x1b[H",
        "\x1b[10;20Hmoved",
        "\x1b[1A\x1b[2K",
        "\x1b]52;c;ZXZpbA==\x07",
        "\x1b]52;c;ZXZpbA==\x1b\\",
        "\x1b]8;;https://evil.example/\x1b\\click\x1b]8;;\x1b\\",
        "\x1bP1$qm\x1b\\",
        "\u{9b}31mred\u{9b}0m",
        "\u{9d}0;title\u{9c}",
        "safe_tool\u{202E}txt.exe",
        "\u{2066}\u{2067}\u{2068}\u{2069}\u{061C}\u{200E}\u{200F}",
        "read\u{E0069}\u{E0067}\u{E006E}\u{E006F}\u{E0072}\u{E0065}",
        "ign\u{200D}ore prev\u{200B}ious",
        "a\u{FEFF}b\u{00AD}c\u{2060}d\u{2064}e",
        "x\u{FE0F}\u{E0100}\u{E01EF}",
        "nul\0bell\x07bs\x08del\x7f",
        "line\r\noverwrite\rtab\t",
    ];

    #[test]
    fn plain_text_is_borrowed_unchanged() {
        for s in [
            "",
            "hello world",
            "naïve café",
            "日本語テキスト",
            "emoji 🎉 ok",
            "\u{E000}pua",
        ] {
            assert!(matches!(line_cow(s), Cow::Borrowed(_)), "{s:?}");
            assert_eq!(line(s), s);
        }
    }

    #[test]
    fn hostile_payloads_come_out_clean_and_marked() {
        for s in HOSTILE {
            let out = line(s);
            assert_clean(&out);
            assert!(
                out.contains('⟨') || out.chars().any(|c| ('\u{2400}'..='\u{2424}').contains(&c))
            );
            assert!(has_hidden(s), "{s:?}");
            for l in multiline(s) {
                assert_clean(&l);
            }
            let joined: String = segments(s).into_iter().map(|g| g.text).collect();
            assert_eq!(joined, out);
            assert_clean(&truncate_to_width(s, 12));
        }
    }

    #[test]
    fn csi_colour_and_clear_screen_show_escape_picture() {
        assert_eq!(line("\x1b[31mred\x1b[0m"), "␛[31mred␛[0m");
        assert_eq!(line("\x1b[2J\x1b[H"), "␛[2J␛[H");
        assert_eq!(line("\x1b[10;20H"), "␛[10;20H");
    }

    #[test]
    fn osc52_clipboard_write_is_defused() {
        let out = line("\x1b]52;c;ZXZpbA==\x07");
        assert_eq!(out, "␛]52;c;ZXZpbA==␇");
    }

    #[test]
    fn osc8_hyperlink_and_dcs_are_defused() {
        let out = line("\x1b]8;;https://evil.example/\x1b\\click\x1b]8;;\x1b\\");
        assert_eq!(out, "␛]8;;https://evil.example/␛\\click␛]8;;␛\\");
        assert_eq!(line("\x1bP1$qm\x1b\\"), "␛P1$qm␛\\");
    }

    #[test]
    fn c1_controls_show_code_point() {
        assert_eq!(line("\u{9b}31m"), "⟨U+009B⟩31m");
        assert_eq!(line("\u{80}\u{85}\u{9f}"), "⟨U+0080⟩⟨U+0085⟩⟨U+009F⟩");
        assert_eq!(kinds("\u{9b}")[0].1, SegmentKind::Control);
    }

    #[test]
    fn every_c0_and_del_gets_a_control_picture() {
        assert_eq!(line("\0"), "␀");
        assert_eq!(line("\x1b"), "␛");
        assert_eq!(line("\n"), "␤");
        assert_eq!(line("\t"), "␉");
        assert_eq!(line("\r"), "␍");
        assert_eq!(line("\x7f"), "␡");
        assert_eq!(line("\x07"), "␇");
        assert_eq!(line("\x1f"), "␟");
        for cp in 0u32..0x20 {
            let s = char::from_u32(cp).map(String::from).unwrap_or_default();
            let out = line(&s);
            assert_clean(&out);
            assert_eq!(out.chars().count(), 1, "{cp:#x}");
        }
    }

    #[test]
    fn bidi_override_spoofing_is_revealed() {
        let out = line("invoice\u{202E}fdp.exe");
        assert_eq!(out, "invoice⟨RLO⟩fdp.exe");
        assert_eq!(
            line("\u{202A}\u{202B}\u{202C}\u{202D}"),
            "⟨LRE⟩⟨RLE⟩⟨PDF⟩⟨LRO⟩"
        );
        assert_eq!(
            line("\u{2066}\u{2067}\u{2068}\u{2069}\u{061C}"),
            "⟨LRI⟩⟨RLI⟩⟨FSI⟩⟨PDI⟩⟨ALM⟩"
        );
        assert_eq!(line("\u{200E}\u{200F}"), "⟨LRM⟩⟨RLM⟩");
    }

    #[test]
    fn tag_characters_show_the_letters_they_smuggle() {
        let smuggled: String = "ignore all"
            .chars()
            .map(|c| char::from_u32(0xE0000 + c as u32).unwrap_or('?'))
            .collect();
        let out = line(&format!("ok{smuggled}"));
        assert_eq!(
            out,
            "ok⟨TAG i⟩⟨TAG g⟩⟨TAG n⟩⟨TAG o⟩⟨TAG r⟩⟨TAG e⟩⟨TAG SP⟩⟨TAG a⟩⟨TAG l⟩⟨TAG l⟩"
        );
        assert_eq!(
            line("\u{E0001}\u{E007F}\u{E0000}"),
            "⟨TAG LANG⟩⟨TAG END⟩⟨U+E0000⟩"
        );
        assert_eq!(line("\u{E0041}"), "⟨TAG A⟩");
        assert_clean(&out);
    }

    #[test]
    fn zero_width_characters_are_revealed() {
        assert_eq!(line("ign\u{200D}ore"), "ign⟨ZWJ⟩ore");
        assert_eq!(
            line("\u{200B}\u{200C}\u{200D}\u{2060}\u{FEFF}\u{00AD}"),
            "⟨ZWSP⟩⟨ZWNJ⟩⟨ZWJ⟩⟨WJ⟩⟨BOM⟩⟨SHY⟩"
        );
        assert_eq!(
            line("\u{2061}\u{2062}\u{2063}\u{2064}"),
            "⟨U+2061⟩⟨U+2062⟩⟨U+2063⟩⟨U+2064⟩"
        );
        assert_eq!(line("\u{3164}\u{115F}\u{034F}"), "⟨U+3164⟩⟨U+115F⟩⟨CGJ⟩");
        assert_eq!(line("\u{2028}\u{2029}"), "⟨LSEP⟩⟨PSEP⟩");
    }

    #[test]
    fn variation_selectors_are_numbered() {
        assert_eq!(line("\u{FE00}"), "⟨VS1⟩");
        assert_eq!(line("\u{FE0F}"), "⟨VS16⟩");
        assert_eq!(line("\u{E0100}"), "⟨VS17⟩");
        assert_eq!(line("\u{E01EF}"), "⟨VS256⟩");
        assert_eq!(line("\u{180E}"), "⟨MVS⟩");
    }

    #[test]
    fn private_use_and_unassigned_are_kept() {
        for s in ["\u{E000}", "\u{F8FF}", "\u{10FFFD}", "\u{0378}", "\u{FFFF}"] {
            assert_eq!(line(s), s);
            assert!(!has_hidden(s));
        }
    }

    #[test]
    fn sanitizing_is_idempotent() {
        for s in HOSTILE {
            let once = line(s);
            assert_eq!(line(&once), once);
            assert!(!has_hidden(&once));
        }
    }

    #[test]
    fn multiline_splits_and_expands_tabs() {
        assert_eq!(multiline("a\nb"), vec!["a", "b"]);
        assert_eq!(multiline("a\r\nb\r\n"), vec!["a", "b", ""]);
        assert_eq!(multiline("a\rb"), vec!["a␍b"]);
        assert_eq!(multiline("\tx"), vec!["    x"]);
        assert_eq!(multiline("ab\tc"), vec!["ab  c"]);
        assert_eq!(multiline("abcd\te"), vec!["abcd    e"]);
        assert_eq!(multiline("日\tx"), vec!["日  x"]);
        assert_eq!(multiline(""), vec![""]);
        assert_eq!(
            multiline("\x1b[2Jline1\n\u{202E}line2"),
            vec!["␛[2Jline1", "⟨RLO⟩line2"]
        );
    }

    #[test]
    fn multiline_tab_stops_count_placeholder_width() {
        // "␛" is one column, so the tab goes to column 4.
        assert_eq!(multiline("\x1b\tx"), vec!["␛   x"]);
    }

    #[test]
    fn segments_mark_placeholder_kinds() {
        assert_eq!(
            kinds("a\x1b[1mb\u{200B}\u{200B}c"),
            vec![
                ("a".to_string(), SegmentKind::Plain),
                ("␛".to_string(), SegmentKind::Control),
                ("[1mb".to_string(), SegmentKind::Plain),
                ("⟨ZWSP⟩⟨ZWSP⟩".to_string(), SegmentKind::Hidden),
                ("c".to_string(), SegmentKind::Plain),
            ]
        );
        assert_eq!(
            kinds("plain"),
            vec![("plain".to_string(), SegmentKind::Plain)]
        );
        assert!(segments("").is_empty());
        assert_eq!(
            kinds("\u{202E}\x07"),
            vec![
                ("⟨RLO⟩".to_string(), SegmentKind::Hidden),
                ("␇".to_string(), SegmentKind::Control),
            ]
        );
    }

    #[test]
    fn truncate_by_display_width() {
        assert_eq!(truncate_to_width("hello", 10), "hello");
        assert_eq!(truncate_to_width("hello", 5), "hello");
        assert_eq!(truncate_to_width("hello world", 5), "hell…");
        assert_eq!(truncate_to_width("hello", 1), "…");
        assert_eq!(truncate_to_width("hello", 0), "");
        assert_eq!(truncate_to_width("", 0), "");
        // Wide characters count as two and are never split.
        assert_eq!(truncate_to_width("日本語", 6), "日本語");
        assert_eq!(truncate_to_width("日本語", 5), "日本…");
        assert_eq!(truncate_to_width("日本語", 4), "日…");
        assert_eq!(truncate_to_width("日本語", 2), "…");
        // Combining marks stay with their base.
        assert_eq!(
            truncate_to_width("e\u{301}e\u{301}e\u{301}", 3),
            "e\u{301}e\u{301}e\u{301}"
        );
        assert_eq!(
            truncate_to_width("e\u{301}e\u{301}e\u{301}x", 3),
            "e\u{301}e\u{301}…"
        );
    }

    #[test]
    fn truncate_sanitizes_first() {
        assert_eq!(truncate_to_width("\x1b[2Jabc", 100), "␛[2Jabc");
        let out = truncate_to_width("\x1b[31mred text here", 6);
        assert_eq!(out, "␛[31m…");
        assert_clean(&out);
        assert!(display_width(&truncate_to_width("a\u{202E}bcdefghijkl", 7)) <= 7);
    }

    #[test]
    fn truncate_never_exceeds_width() {
        let inputs = [
            "日本語テキストabc",
            "a\u{200B}b\u{E0061}c",
            "🎉🎉🎉🎉",
            "abc",
        ];
        for s in inputs {
            for w in 0..20 {
                let out = truncate_to_width(s, w);
                assert!(display_width(&out) <= w, "{s:?} {w} -> {out:?}");
            }
        }
    }

    #[test]
    fn has_hidden_ignores_ordinary_whitespace_controls() {
        assert!(!has_hidden("plain text"));
        assert!(!has_hidden("line one\nline two\r\n\tindented"));
        assert!(has_hidden("safe text\rrm -rf /"));
        assert!(has_hidden("ends with\r"));
        assert!(has_hidden("a\u{200B}b"));
        assert!(has_hidden("a\x1b[0m"));
        assert!(has_hidden("\u{9b}"));
        assert!(has_hidden("\u{E0041}"));
        assert!(!has_hidden("日本語 café"));
    }

    #[test]
    fn long_input_without_replacements_is_fast_path() {
        let s = "a".repeat(100_000);
        assert!(matches!(line_cow(&s), Cow::Borrowed(_)));
        let s = "é".repeat(50_000);
        assert!(matches!(line_cow(&s), Cow::Borrowed(_)));
    }
}
