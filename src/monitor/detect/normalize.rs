//! The matching copy of a text: case-folded, invisible characters removed, look-alike letters
//! folded to ASCII, with a map from every byte of the copy back to the original text.
//!
//! Detectors match their patterns on the copy and report spans of the original, so an
//! obfuscated `IGNОRE` (Cyrillic `О`) or `ig\u{200B}nore` is found and its evidence still points
//! at the bytes the attacker wrote. Whitespace is not collapsed in the copy: the patterns treat
//! any run of whitespace (and `_`, `*`, `~`, `-`) between words as one gap instead, which keeps
//! offsets exact and the copy the same length for plain ASCII text (no map needed then).

/// A text and its matching copy.
#[derive(Debug, Clone)]
pub struct Normalized<'a> {
    /// The text as given.
    pub original: &'a str,
    /// The matching copy.
    pub text: String,
    /// For each byte of `text`, the byte offset in `original` of the character it came from,
    /// plus one final entry (`original.len()`); `None` when the copy is byte-aligned with the
    /// original (ASCII input).
    map: Option<Vec<u32>>,
}

impl<'a> Normalized<'a> {
    /// Builds the matching copy of `original`.
    pub fn new(original: &'a str) -> Self {
        if original.is_ascii() {
            return Self {
                original,
                text: original.to_ascii_lowercase(),
                map: None,
            };
        }
        let mut text = String::with_capacity(original.len());
        let mut map = Vec::with_capacity(original.len() + 1);
        for (offset, c) in original.char_indices() {
            let offset = offset as u32;
            if is_invisible(c) || is_combining_mark(c) {
                continue;
            }
            let before = text.len();
            match fold(c) {
                Some(folded) => text.push(folded),
                None => text.extend(c.to_lowercase()),
            }
            map.resize(map.len() + (text.len() - before), offset);
        }
        map.push(original.len() as u32);
        Self {
            original,
            text,
            map: Some(map),
        }
    }

    /// The span of `original` that produced `text[start..end]`.
    pub fn to_original(&self, start: usize, end: usize) -> (usize, usize) {
        let Some(map) = &self.map else {
            return (start, end);
        };
        let last = map.len().saturating_sub(1);
        let orig_start = map[start.min(last)] as usize;
        if end <= start {
            return (orig_start, orig_start);
        }
        let at = map[(end - 1).min(last)] as usize;
        let width = self.original[at..].chars().next().map_or(0, char::len_utf8);
        (orig_start, (at + width).max(orig_start))
    }
}

/// A second reading of a normalized copy, for obfuscations that keep every letter visible but
/// break words apart or swap letters for digits: `1gn0r3 pr3v10u5` (leetspeak) and
/// `i g n o r e  p r i o r`, `i.g.n.o.r.e` (spelled out). Built only when the copy shows the
/// obfuscation, in one linear pass, with a map from every byte of the view back to the copy.
#[derive(Debug, Clone)]
pub struct View {
    /// The re-read text.
    pub text: String,
    /// For each byte of `text`, the byte offset in the normalized copy; `None` when aligned.
    map: Option<Vec<u32>>,
}

impl View {
    /// The span of the normalized copy that produced `text[start..end]`.
    pub fn to_copy(&self, start: usize, end: usize) -> (usize, usize) {
        let Some(map) = &self.map else {
            return (start, end);
        };
        if map.is_empty() {
            return (0, 0);
        }
        let last = map.len() - 1;
        let s = map[start.min(last)] as usize;
        let e = map[end.saturating_sub(1).min(last)] as usize + 1;
        (s, e.max(s))
    }

    /// Digits read as the letters they stand for in words that mix both (`pr3v10u5` →
    /// `previous`); `None` unless at least two words do. Hex runs (hashes, ids) are left alone.
    pub fn leet(copy: &str) -> Option<View> {
        let mut out = copy.as_bytes().to_vec();
        // `@` and `$` before a letter stand for `a` and `s` (`@ll`, `$ecret`).
        for i in 0..out.len().saturating_sub(1) {
            if out[i + 1].is_ascii_alphabetic() {
                match out[i] {
                    b'@' => out[i] = b'a',
                    b'$' => out[i] = b's',
                    _ => {}
                }
            }
        }
        let bytes = out.clone();
        let mut changed_words = 0;
        let mut i = 0;
        while i < bytes.len() {
            if !bytes[i].is_ascii_alphanumeric() {
                i += 1;
                continue;
            }
            let start = i;
            while i < bytes.len() && bytes[i].is_ascii_alphanumeric() {
                i += 1;
            }
            let word = &bytes[start..i];
            let hex = word.iter().all(u8::is_ascii_hexdigit);
            // A digit right before a letter, or a word of letters ending in digits (`rul35`).
            let leet_inside = word
                .windows(2)
                .any(|w| leet_letter(w[0]).is_some() && w[1].is_ascii_alphabetic());
            let letters = word.iter().filter(|b| b.is_ascii_alphabetic()).count();
            let leet_tail = letters >= 3 && word.iter().any(|b| leet_letter(*b).is_some());
            if hex || !(leet_inside || leet_tail) || letters == 0 || word.len() < 3 {
                continue;
            }
            for (k, b) in word.iter().enumerate() {
                if let Some(l) = leet_letter(*b) {
                    out[start + k] = l;
                }
            }
            changed_words += 1;
        }
        if changed_words < 2 {
            return None;
        }
        // Only ASCII bytes were swapped for ASCII bytes: still UTF-8, same offsets.
        String::from_utf8(out)
            .ok()
            .map(|text| View { text, map: None })
    }

    /// Letters spelled out one at a time (`i g n o r e   a l l`, `i.g.n.o.r.e. a.l.l`) joined
    /// into words; `None` unless a run of at least four single letters is found.
    pub fn spelled(copy: &str) -> Option<View> {
        let bytes = copy.as_bytes();
        // Tokens: (start, end) of each maximal ASCII alphanumeric run.
        let mut tokens: Vec<(usize, usize)> = Vec::new();
        let mut i = 0;
        while i < bytes.len() {
            if bytes[i].is_ascii_alphanumeric() {
                let s = i;
                while i < bytes.len() && bytes[i].is_ascii_alphanumeric() {
                    i += 1;
                }
                tokens.push((s, i));
            } else {
                i += 1;
            }
        }
        let gap_ok = |from: usize, to: usize| {
            to - from <= 4
                && bytes[from..to].iter().all(|b| {
                    matches!(
                        b,
                        b' ' | b'\t' | b'.' | b'-' | b'_' | b'*' | b'|' | b'/' | b','
                    )
                })
        };
        // Runs of single-character tokens with short separator gaps.
        let mut runs: Vec<(usize, usize)> = Vec::new(); // token index range
        let mut t = 0;
        while t < tokens.len() {
            if tokens[t].1 - tokens[t].0 != 1 {
                t += 1;
                continue;
            }
            let first = t;
            while t + 1 < tokens.len()
                && tokens[t + 1].1 - tokens[t + 1].0 == 1
                && gap_ok(tokens[t].1, tokens[t + 1].0)
            {
                t += 1;
            }
            if t - first + 1 >= 4 {
                runs.push((first, t));
            }
            t += 1;
        }
        if runs.is_empty() {
            return None;
        }
        let mut text = String::with_capacity(copy.len());
        let mut map: Vec<u32> = Vec::with_capacity(copy.len());
        let mut copied = 0;
        for (first, last) in runs {
            let run_start = tokens[first].0;
            text.push_str(&copy[copied..run_start]);
            map.extend((copied..run_start).map(|o| o as u32));
            let min_gap = (first..last)
                .map(|k| tokens[k + 1].0 - tokens[k].1)
                .min()
                .unwrap_or(1);
            for k in first..=last {
                text.push(char::from(bytes[tokens[k].0]));
                map.push(tokens[k].0 as u32);
                if k < last && tokens[k + 1].0 - tokens[k].1 > min_gap {
                    text.push(' ');
                    map.push(tokens[k].1 as u32);
                }
            }
            copied = tokens[last].1;
        }
        text.push_str(&copy[copied..]);
        map.extend((copied..copy.len()).map(|o| o as u32));
        Some(View {
            text,
            map: Some(map),
        })
    }
}

/// Which obfuscations a copy shows, in one pass: (leetspeak, spelled out). Leetspeak needs two
/// words of at least three letters where a digit stands for a letter right before a letter
/// (not a hex letter, not `0x`); spelled-out text needs four single letters in a row, at most
/// four separator bytes apart (only the separators [`View::spelled`] joins across).
pub fn view_cues(copy: &str) -> (bool, bool) {
    // Byte classes: 0 other, 1 joinable separator, 2 leet digit, 3 other digit, 4 hex letter,
    // 5 other letter.
    const fn classes() -> [u8; 256] {
        let mut t = [0u8; 256];
        let mut b = 0;
        while b < 256 {
            let c = b as u8;
            t[b] = match c {
                b' ' | b'\t' | b'.' | b'-' | b'_' | b'*' | b'|' | b'/' | b',' => 1,
                b'0' | b'1' | b'3' | b'4' | b'5' | b'7' => 2,
                b'2' | b'6' | b'8' | b'9' => 3,
                b'a'..=b'f' | b'A'..=b'F' => 4,
                b'x' | b'X' => 4,
                b'g'..=b'z' | b'G'..=b'Z' => 5,
                _ => 0,
            };
            b += 1;
        }
        t
    }
    static CLASS: [u8; 256] = classes();
    let mut leet_words = 0u32;
    let mut singles = 0u32;
    let mut token_len = 0u32;
    let mut letters = 0u32;
    let mut cue = false;
    let mut prev = 0u8;
    let mut gap = 0u32;
    for &b in copy.as_bytes() {
        let class = CLASS[b as usize];
        if class >= 2 {
            if token_len == 0 && gap > 4 {
                singles = 0;
            }
            cue |= prev == 2 && class == 5;
            letters += u32::from(class >= 4);
            token_len += 1;
            gap = 0;
        } else {
            if token_len > 0 {
                if token_len == 1 && letters == 1 {
                    singles += 1;
                    if singles >= 4 {
                        return (leet_words >= 2, true);
                    }
                } else {
                    singles = 0;
                }
                leet_words += u32::from(cue && letters >= 3);
                token_len = 0;
                letters = 0;
                cue = false;
            }
            gap += if class == 1 { 1 } else { 8 };
        }
        prev = class;
    }
    leet_words += u32::from(cue && letters >= 3);
    let spelled = token_len == 1 && letters == 1 && singles >= 3;
    (leet_words >= 2, spelled)
}

/// The letter a digit stands for in leetspeak.
fn leet_letter(b: u8) -> Option<u8> {
    Some(match b {
        b'0' => b'o',
        b'1' => b'i',
        b'3' => b'e',
        b'4' => b'a',
        b'5' => b's',
        b'7' => b't',
        _ => return None,
    })
}

/// Characters that render as nothing (or only steer rendering) and are dropped from the copy:
/// zero-width and format characters, bidi controls, fillers, variation selectors, tag characters.
pub fn is_invisible(c: char) -> bool {
    matches!(c,
        '\u{00AD}' | '\u{034F}' | '\u{061C}' | '\u{115F}' | '\u{1160}' | '\u{17B4}' | '\u{17B5}'
        | '\u{180B}'..='\u{180F}'
        | '\u{200B}'..='\u{200F}'
        | '\u{202A}'..='\u{202E}'
        | '\u{2060}'..='\u{206F}'
        | '\u{3164}' | '\u{FEFF}' | '\u{FFA0}'
        | '\u{FE00}'..='\u{FE0F}'
        | '\u{1D173}'..='\u{1D17A}'
        | '\u{E0000}'..='\u{E007F}'
        | '\u{E0100}'..='\u{E01EF}')
}

/// Combining diacritical marks (dropped: `i̷g̷n̷o̷r̷e̷` reads as `ignore`).
fn is_combining_mark(c: char) -> bool {
    matches!(c, '\u{0300}'..='\u{036F}' | '\u{1AB0}'..='\u{1AFF}' | '\u{20D0}'..='\u{20FF}')
}

/// Whether `c` is a letter of another script that looks like an ASCII letter.
pub fn is_confusable_letter(c: char) -> bool {
    !c.is_ascii() && fold_confusable(c).is_some()
}

/// Folds look-alikes and decorated forms to one ASCII character; `None` keeps the character
/// (it is then lower-cased).
fn fold(c: char) -> Option<char> {
    let cp = c as u32;
    match cp {
        // Fullwidth ASCII.
        0xFF01..=0xFF5E => char::from_u32(cp - 0xFEE0).map(|a| a.to_ascii_lowercase()),
        // Mathematical alphanumeric letters (bold, italic, script, fraktur, monospace...).
        0x1D400..=0x1D6A3 => {
            let i = ((cp - 0x1D400) % 52) as u8;
            Some(char::from(b'a' + i % 26))
        }
        0x1D7CE..=0x1D7FF => Some(char::from(b'0' + ((cp - 0x1D7CE) % 10) as u8)),
        // Circled letters.
        0x24B6..=0x24CF => Some(char::from(b'a' + (cp - 0x24B6) as u8)),
        0x24D0..=0x24E9 => Some(char::from(b'a' + (cp - 0x24D0) as u8)),
        // Unicode spaces.
        0x00A0 | 0x1680 | 0x2000..=0x200A | 0x202F | 0x205F | 0x3000 | 0x2800 => Some(' '),
        _ => fold_confusable(c).or_else(|| fold_accent(c)),
    }
}

/// Cyrillic, Greek and Latin look-alikes of ASCII letters.
fn fold_confusable(c: char) -> Option<char> {
    Some(match c {
        'а' | 'А' | 'α' | 'Α' | 'ɑ' => 'a',
        'В' | 'Β' | 'ь' => 'b',
        'с' | 'С' | 'ϲ' | 'Ϲ' => 'c',
        'ԁ' | 'Ԁ' => 'd',
        'е' | 'Е' | 'ё' | 'Ё' | 'ε' | 'Ε' | 'ҽ' => 'e',
        'ɡ' => 'g',
        'һ' | 'Һ' | 'Н' | 'Η' => 'h',
        'і' | 'І' | 'ї' | 'Ї' | 'ι' | 'Ι' | 'ı' | 'Ӏ' => 'i',
        'ј' | 'Ј' | 'ϳ' | 'ȷ' => 'j',
        'к' | 'К' | 'κ' | 'Κ' => 'k',
        'ӏ' | 'ℓ' => 'l',
        'М' | 'Μ' => 'm',
        'η' | 'Ν' | 'п' => 'n',
        'о' | 'О' | 'ο' | 'Ο' | 'σ' | 'օ' => 'o',
        'р' | 'Р' | 'ρ' | 'Ρ' => 'p',
        'ԛ' | 'Ԛ' => 'q',
        'г' => 'r',
        'ѕ' | 'Ѕ' => 's',
        'Т' | 'τ' | 'Τ' => 't',
        'υ' | 'ս' => 'u',
        'ν' | 'ѵ' => 'v',
        'ԝ' | 'Ԝ' | 'ω' => 'w',
        'х' | 'Х' | 'χ' | 'Χ' => 'x',
        'у' | 'У' | 'γ' | 'Υ' | 'ү' => 'y',
        'Ζ' => 'z',
        _ => return None,
    })
}

/// Common accented Latin letters to their base letter.
fn fold_accent(c: char) -> Option<char> {
    Some(match c {
        'à' | 'á' | 'â' | 'ã' | 'ä' | 'å' | 'À' | 'Á' | 'Â' | 'Ã' | 'Ä' | 'Å' => 'a',
        'ç' | 'Ç' => 'c',
        'è' | 'é' | 'ê' | 'ë' | 'È' | 'É' | 'Ê' | 'Ë' => 'e',
        'ì' | 'í' | 'î' | 'ï' | 'Ì' | 'Í' | 'Î' | 'Ï' => 'i',
        'ñ' | 'Ñ' => 'n',
        'ò' | 'ó' | 'ô' | 'õ' | 'ö' | 'Ò' | 'Ó' | 'Ô' | 'Õ' | 'Ö' => 'o',
        'ù' | 'ú' | 'û' | 'ü' | 'Ù' | 'Ú' | 'Û' | 'Ü' => 'u',
        'ý' | 'ÿ' | 'Ý' => 'y',
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ascii_is_lowercased_in_place() {
        let n = Normalized::new("Ignore ALL");
        assert_eq!(n.text, "ignore all");
        assert_eq!(n.to_original(7, 10), (7, 10));
    }

    #[test]
    fn homoglyphs_and_zero_width_fold_and_map_back() {
        let original = "please ІGN\u{200B}ОRE this";
        let n = Normalized::new(original);
        assert_eq!(n.text, "please ignore this");
        let start = n.text.find("ignore").unwrap_or(0);
        let (s, e) = n.to_original(start, start + 6);
        assert_eq!(&original[s..e], "ІGN\u{200B}ОRE");
    }

    #[test]
    fn fullwidth_and_math_letters_fold() {
        assert_eq!(Normalized::new("ＩＧＮＯＲＥ").text, "ignore");
        assert_eq!(Normalized::new("\u{1D422}\u{1D420}").text, "ig");
    }

    #[test]
    fn leet_view_reads_digits_as_letters() {
        let v = View::leet("1gn0r3 4ll pr3v10u5 1n5truct10n5").map(|v| v.text);
        assert_eq!(v.as_deref(), Some("ignore all previous instructions"));
        // Hashes, versions and plain numbers stay as they are (and alone build no view).
        assert!(View::leet("sha256 e3b0c44298fc1c149afbf4c8996fb924 v2 in 2026").is_none());
    }

    #[test]
    fn spelled_view_joins_letters_and_maps_back() {
        let copy = "say i g n o r e   a l l   p r i o r now";
        let v = View::spelled(copy).map(|v| v.text);
        assert_eq!(v.as_deref(), Some("say ignore all prior now"));
        let dotted = View::spelled("i.g.n.o.r.e. p.r.e.v.i.o.u.s. x");
        assert_eq!(
            dotted.as_ref().map(|v| v.text.as_str()),
            Some("ignore previous x")
        );
        let view = View::spelled(copy).unwrap_or_else(|| unreachable!());
        let at = view.text.find("ignore").unwrap_or(0);
        let (s, e) = view.to_copy(at, at + 6);
        assert_eq!(&copy[s..e], "i g n o r e");
        assert!(View::spelled("a b c and plain words").is_none());
    }
}
