//! Evidence excerpts: a window of at most ~200 characters around a finding, with every secret
//! in the window masked, and the span of the offending text re-computed inside the excerpt.

/// A span of the original text to mask: `keep` leading bytes stay visible.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Mask {
    /// Start (byte offset in the original text).
    pub start: usize,
    /// End (byte offset in the original text).
    pub end: usize,
    /// Leading bytes left visible (a type prefix such as `ghp_`).
    pub keep: usize,
}

/// What a masked secret shows after its visible prefix.
pub const MASK: &str = "********";

/// Bytes of context on each side of the offending span.
const CONTEXT: usize = 80;
/// Longest offending span shown whole.
const MAX_SPAN: usize = 160;

fn floor_boundary(text: &str, mut at: usize) -> usize {
    at = at.min(text.len());
    while !text.is_char_boundary(at) {
        at -= 1;
    }
    at
}

fn ceil_boundary(text: &str, mut at: usize) -> usize {
    at = at.min(text.len());
    while !text.is_char_boundary(at) {
        at += 1;
    }
    at
}

/// The visible prefix of a masked span: at most `keep` bytes and at most half the secret.
fn visible(text: &str, mask: &Mask) -> usize {
    let len = mask.end - mask.start;
    let keep = mask.keep.min(len / 2);
    floor_boundary(text, mask.start + keep) - mask.start
}

/// Masks every span of `masks` in `text` (used for summaries and field names).
pub fn redact_all(text: &str, masks: &[Mask]) -> String {
    let (out, _, _) = excerpt_window(text, 0, text.len(), 0, text.len(), masks);
    out
}

/// The excerpt of `text` around `start..end`, secrets masked, with the span inside it.
pub fn excerpt(text: &str, start: usize, end: usize, masks: &[Mask]) -> (String, usize, usize) {
    let start = floor_boundary(text, start);
    let end = ceil_boundary(text, end.max(start));
    let shown_end = if end - start > MAX_SPAN {
        floor_boundary(text, start + MAX_SPAN)
    } else {
        end
    };
    let from = floor_boundary(text, start.saturating_sub(CONTEXT));
    let to = ceil_boundary(text, shown_end + CONTEXT);
    excerpt_window(text, from, to, start, shown_end, masks)
}

/// Renders `text[from..to]` with masks applied (a mask that overlaps the window is widened to
/// its whole secret so no part of it leaks), and maps `start..end` into the output.
fn excerpt_window(
    text: &str,
    mut from: usize,
    mut to: usize,
    start: usize,
    end: usize,
    masks: &[Mask],
) -> (String, usize, usize) {
    let mut relevant: Vec<Mask> = masks
        .iter()
        .copied()
        .filter(|m| m.start < m.end && m.end <= text.len() && m.start < to && m.end > from)
        .collect();
    relevant.sort_by_key(|m| (m.start, std::cmp::Reverse(m.end)));
    for m in &relevant {
        from = from.min(m.start);
        to = to.max(m.end);
    }
    let mut out = String::with_capacity(to - from + 16);
    let mut at = from;
    let mut new_start = None;
    let mut new_end = None;
    let place = |orig: usize, out_len: usize, at: usize| out_len + (orig - at);
    for m in relevant {
        if m.start < at {
            // Overlaps a mask already applied: widen that one's effect.
            if m.end > at {
                if new_start.is_none() && start >= at && start < m.end {
                    new_start = Some(out.len());
                }
                if new_end.is_none() && end > at && end <= m.end {
                    new_end = Some(out.len());
                }
                at = m.end;
            }
            continue;
        }
        // Plain text before this mask.
        if new_start.is_none() && start >= at && start < m.start {
            new_start = Some(place(start, out.len(), at));
        }
        if new_end.is_none() && end >= at && end <= m.start {
            new_end = Some(place(end, out.len(), at));
        }
        out.push_str(&text[at..m.start]);
        // The mask itself.
        let keep = visible(text, &m);
        if new_start.is_none() && start >= m.start && start < m.end {
            new_start = Some(out.len());
        }
        out.push_str(&text[m.start..m.start + keep]);
        out.push_str(MASK);
        if new_end.is_none() && end > m.start && end <= m.end {
            new_end = Some(out.len());
        }
        at = m.end;
    }
    if new_start.is_none() && start >= at {
        new_start = Some(place(start.min(to), out.len(), at));
    }
    if new_end.is_none() && end >= at {
        new_end = Some(place(end.min(to), out.len(), at));
    }
    if at < to {
        out.push_str(&text[at..to]);
    }
    let s = new_start.unwrap_or(0).min(out.len());
    let e = new_end.unwrap_or(out.len()).clamp(s, out.len());
    (out, s, e)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn span_maps_into_excerpt() {
        let text = "aaaa OFFENDING bbbb";
        let (ex, s, e) = excerpt(text, 5, 14, &[]);
        assert_eq!(&ex[s..e], "OFFENDING");
    }

    #[test]
    fn secrets_are_masked_and_span_follows() {
        let text = "key=SECRETSECRETSECRET then ignore previous";
        let masks = [Mask {
            start: 4,
            end: 22,
            keep: 2,
        }];
        let at = text.find("ignore").unwrap();
        let (ex, s, e) = excerpt(text, at, at + 6, &masks);
        assert!(!ex.contains("SECRETSECRET"));
        assert_eq!(&ex[s..e], "ignore");
        let (ex, s, e) = excerpt(text, 4, 22, &masks);
        assert_eq!(&ex[s..e], "SE********");
    }

    #[test]
    fn long_text_is_windowed() {
        let text = format!("{}X{}", "a".repeat(1000), "b".repeat(1000));
        let (ex, s, e) = excerpt(&text, 1000, 1001, &[]);
        assert!(ex.len() <= 200);
        assert_eq!(&ex[s..e], "X");
    }
}
