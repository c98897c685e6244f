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
}
