//! Secrets never leave the gateway in events: arguments and result text are redacted before they
//! are published. A redacted secret keeps its kind and first four characters (fewer for a short
//! secret: never more than a quarter of it), so responders (and the monitor) still see that a
//! secret of that kind passed, not its value.
//!
//! Secrets are looked for in the text as it is and in its decoded forms, because tool arguments
//! and results routinely carry them encoded: base64 (standard or URL-safe, padded or not, line
//! wrapped or not, UTF-16 text inside) and hex runs are decoded and a run whose decoded form
//! holds a secret is redacted whole; percent-encoding and backslash escapes (JSON's `\"`, `\\`, `\uXXXX`, and
//! `\xNN`) are decoded in place, so only the secret's own encoded characters are replaced.
//! Decoding nests up to [`MAX_DEPTH`] levels (a base64 run inside a JSON-escaped string, a
//! percent-encoded base64 run, …). An encoded secret's kind names the outermost encoding:
//! `«redacted:base64_bearer_token:QmVh…»`, `percent_…`, `hex_…`, `escaped_…`.
//!
//! Everything is linear in the input: the patterns are `regex` automata, and the bytes decoded
//! in one call are bounded by a budget proportional to the input (16 times its length plus
//! 64 KiB), which ordinary and even heavily nested text never reaches.

use std::collections::HashMap;
use std::sync::OnceLock;

use regex::bytes::Regex;
use serde_json::Value;

/// Marker that starts every redaction; the monitor looks for it.
pub const MARKER: &str = "«redacted:";

/// How many encodings deep a secret is still found (a base64 run in a JSON-escaped string is 2).
pub const MAX_DEPTH: usize = 2;

/// The secrets looked for: kind and pattern. A pattern with a `secret` group redacts only that
/// group (the key name or URL around it stays).
const TABLE: [(&str, &str); 13] = [
    (
        "private_key",
        // A key cut short (a result summary ends mid-key) is redacted to the end of its body.
        r"-----BEGIN [A-Z ]*PRIVATE KEY-----(?:[\s\S]{0,8192}?-----END [A-Z ]*PRIVATE KEY-----|(?:[A-Za-z0-9+/=\s:,\-]|\\[nr])*)",
    ),
    (
        "aws_access_key",
        r"(?-u:\b)(?:AKIA|ASIA)[0-9A-Z]{16}(?-u:\b)",
    ),
    (
        "github_token",
        r"(?-u:\b)(?:gh[pousr]_[A-Za-z0-9]{36,255}|github_pat_[A-Za-z0-9_]{22,255})(?-u:\b)",
    ),
    ("gitlab_token", r"(?-u:\b)glpat-[A-Za-z0-9_\-]{20,}"),
    ("slack_token", r"(?-u:\b)xox[baprs]-[A-Za-z0-9\-]{10,}"),
    ("stripe_key", r"(?-u:\b)[sr]k_live_[A-Za-z0-9]{16,}"),
    ("google_api_key", r"(?-u:\b)AIza[0-9A-Za-z_\-]{35}"),
    (
        "jwt",
        r"(?-u:\b)eyJ[A-Za-z0-9_\-]{8,}\.eyJ[A-Za-z0-9_\-]{8,}\.[A-Za-z0-9_\-]{8,}",
    ),
    (
        "bearer_token",
        r"(?i)(?-u:\b)(?P<keep>bearer\s+)(?P<secret>[A-Za-z0-9\-._~+/]{20,}=*)",
    ),
    (
        "basic_auth",
        r#"(?i)(?P<keep>authorization(?:\\*["'])?\s*[:=]\s*(?:\\*["'])?\s*basic\s+)(?P<secret>[A-Za-z0-9+/]{6,}={0,2})"#,
    ),
    (
        "assigned_secret",
        // Quotes may be backslash-escaped (a JSON document inside a JSON string).
        r#"(?i)(?P<keep>[A-Za-z0-9_\-]*(?:password|passwd|passphrase|secret|api[_-]?key|private[_-]?key|token|credentials?)(?:\\*["'])?\s*[:=]\s*(?:\\*["'])?)(?P<secret>(?:[^\s"',;\\]|\\[^\s"',;\\]){6,})"#,
    ),
    (
        "aws_secret_key",
        r#"(?i)(?P<keep>aws_secret_access_key(?:\\*["'])?\s*[:=]\s*(?:\\*["'])?)(?P<secret>[A-Za-z0-9/+=]{40})"#,
    ),
    (
        "url_password",
        // `scheme://user:password@host`: the password is everything up to the last `@`.
        r#"(?i)(?-u:\b)[a-z][a-z0-9+.\-]*://(?P<keep>[^\s/?#@:"'<>\\]*:)(?P<secret>[^\s/?#"'<>\\]+)@"#,
    ),
];

/// The layer a secret was found in: as it is, or under one encoding (the outermost).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Layer {
    Plain = 0,
    Base64 = 1,
    Hex = 2,
    Percent = 3,
    Escaped = 4,
}

const LAYERS: [&str; 5] = ["", "base64_", "hex_", "percent_", "escaped_"];

struct Rules {
    rules: Vec<Regex>,
    /// Kind names, `layer * TABLE.len() + rule`.
    kinds: Vec<&'static str>,
    base64_run: Regex,
    hex_run: Regex,
}

fn rules() -> Option<&'static Rules> {
    static RULES: OnceLock<Option<Rules>> = OnceLock::new();
    RULES
        .get_or_init(|| {
            let patterns: Vec<&str> = TABLE.iter().map(|(_, p)| *p).collect();
            let rules = patterns
                .iter()
                .map(|p| Regex::new(p).ok())
                .collect::<Option<Vec<_>>>()?;
            // A bounded set of names built once: leaking them gives `&'static str` kinds.
            let kinds = LAYERS
                .iter()
                .flat_map(|layer| TABLE.iter().map(move |(kind, _)| (layer, kind)))
                .map(|(layer, kind)| match *layer {
                    "" => *kind,
                    _ => &*Box::leak(format!("{layer}{kind}").into_boxed_str()),
                })
                .collect();
            Some(Rules {
                rules,
                kinds,
                // Base64 of either alphabet, possibly wrapped on lines (PEM, MIME).
                base64_run: Regex::new(
                    r"[A-Za-z0-9+/_\-]{16,}={0,2}(?:\r?\n[A-Za-z0-9+/_\-]{4,}={0,2})*",
                )
                .ok()?,
                hex_run: Regex::new(r"[0-9A-Fa-f]{32,}").ok()?,
            })
        })
        .as_ref()
}

/// One secret found: its span in the scanned bytes, the rule, the outermost layer and the
/// characters its marker keeps.
struct Hit {
    start: usize,
    end: usize,
    rule: usize,
    layer: Layer,
    prefix: String,
}

impl Hit {
    fn order(&self) -> (usize, usize) {
        (self.start, self.layer as usize * TABLE.len() + self.rule)
    }
}

/// The first `max` characters of a secret, never more than a quarter of it; marker delimiters
/// and control characters are replaced.
fn prefix(secret: &[u8], max: usize) -> String {
    let text = String::from_utf8_lossy(secret);
    let keep = max.min(text.chars().count() / 4);
    text.chars()
        .take(keep)
        .map(|c| {
            if c.is_control() || c == '«' || c == '»' {
                '?'
            } else {
                c
            }
        })
        .collect()
}

/// One call's scan: the bytes still allowed to be decoded, and what each encoded run already
/// decoded to (a view repeats most runs of its source; a text may repeat a run).
struct Scan<'r> {
    rules: &'r Rules,
    budget: usize,
    /// Run (tagged with its encoding) to the shallowest depth it was checked at and the rule
    /// of the first secret in its decoded form.
    seen: HashMap<(Layer, Vec<u8>), (usize, Option<usize>)>,
}

impl Scan<'_> {
    fn take(&mut self, n: usize) -> bool {
        match self.budget.checked_sub(n) {
            Some(left) => {
                self.budget = left;
                true
            }
            None => false,
        }
    }

    /// Finds the secrets in `bytes`, decoding encoded forms while `depth < MAX_DEPTH`.
    fn find(&mut self, bytes: &[u8], depth: usize, hits: &mut Vec<Hit>) {
        let rules = self.rules;
        // One search per rule: a `RegexSet` of them all is far slower (its automaton is too big
        // for the lazy DFA's cache).
        for (rule, re) in rules.rules.iter().enumerate() {
            // Most text holds no secret: a plain match test (no capture slots to allocate)
            // settles it before the capturing search runs.
            if !re.is_match(bytes) {
                continue;
            }
            for caps in re.captures_iter(bytes) {
                let Some(m) = caps.name("secret").or_else(|| caps.get(0)) else {
                    continue;
                };
                if m.end() > m.start() {
                    hits.push(Hit {
                        start: m.start(),
                        end: m.end(),
                        rule,
                        layer: Layer::Plain,
                        prefix: prefix(m.as_bytes(), 4),
                    });
                }
            }
        }
        if depth >= MAX_DEPTH {
            return;
        }
        for run in rules.base64_run.find_iter(bytes) {
            let text = run.as_bytes();
            if let Some(rule) = self.decoded_rule(Layer::Base64, text, depth) {
                hits.push(Hit {
                    start: run.start(),
                    end: run.end(),
                    rule,
                    layer: Layer::Base64,
                    prefix: prefix(text, 4),
                });
                continue;
            }
            for hex in rules.hex_run.find_iter(text) {
                if let Some(rule) = self.decoded_rule(Layer::Hex, hex.as_bytes(), depth) {
                    hits.push(Hit {
                        start: run.start() + hex.start(),
                        end: run.start() + hex.end(),
                        rule,
                        layer: Layer::Hex,
                        prefix: prefix(hex.as_bytes(), 4),
                    });
                }
            }
        }
        for (layer, decode) in [
            (Layer::Percent, percent_view as fn(&[u8]) -> Option<View>),
            (Layer::Escaped, escape_view),
        ] {
            let Some(view) = decode(bytes) else {
                continue;
            };
            if !self.take(view.bytes.len()) {
                continue;
            }
            let mut inner = Vec::new();
            self.find(&view.bytes, depth + 1, &mut inner);
            for hit in inner {
                let (Some(first), Some(last)) =
                    (view.map.get(hit.start), view.map.get(hit.end - 1))
                else {
                    continue;
                };
                hits.push(Hit {
                    start: first.0,
                    end: last.1,
                    layer,
                    ..hit
                });
            }
        }
    }

    /// The rule of the first secret in a base64 or hex run's decoded form, trying each
    /// alignment (a run glued to a path does not start on a quantum).
    fn decoded_rule(&mut self, layer: Layer, run: &[u8], depth: usize) -> Option<usize> {
        let key = (layer, run.to_vec());
        if let Some(&(checked, rule)) = self.seen.get(&key)
            && checked <= depth
        {
            return rule;
        }
        let alignments = if layer == Layer::Hex { 2 } else { 4 };
        let mut found = None;
        for skip in 0..alignments {
            let mut decoded = match layer {
                Layer::Hex => decode_hex(&run[skip.min(run.len())..]),
                _ => decode_base64(run, skip),
            };
            // UTF-16 text (PowerShell's `-EncodedCommand`) is read as its ASCII characters.
            if let Some(narrow) = narrow_utf16(&decoded) {
                decoded = narrow;
            }
            if !self.take(decoded.len()) {
                break;
            }
            let mut hits = Vec::new();
            self.find(&decoded, depth + 1, &mut hits);
            found = hits.iter().min_by_key(|h| h.order()).map(|h| h.rule);
            if found.is_some() {
                break;
            }
        }
        self.seen.insert(key, (depth, found));
        found
    }
}

/// The ASCII characters of UTF-16 text (either byte order), when at least three quarters of
/// its high bytes are zero.
fn narrow_utf16(bytes: &[u8]) -> Option<Vec<u8>> {
    if bytes.len() < 8 {
        return None;
    }
    let zeros = |high: usize| {
        bytes
            .iter()
            .skip(high)
            .step_by(2)
            .filter(|&&b| b == 0)
            .count()
    };
    let half = bytes.len() / 2;
    let low = if zeros(1) * 4 >= half * 3 {
        0
    } else if zeros(0) * 4 >= half * 3 {
        1
    } else {
        return None;
    };
    Some(bytes.iter().skip(low).step_by(2).copied().collect())
}

fn base64_value(c: u8) -> Option<u32> {
    Some(match c {
        b'A'..=b'Z' => c - b'A',
        b'a'..=b'z' => c - b'a' + 26,
        b'0'..=b'9' => c - b'0' + 52,
        b'+' | b'-' => 62,
        b'/' | b'_' => 63,
        _ => return None,
    } as u32)
}

/// Decodes base64 of either alphabet leniently (padding, line breaks and trailing bits
/// ignored), after skipping `skip` characters.
fn decode_base64(text: &[u8], skip: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(text.len() * 3 / 4);
    let (mut acc, mut bits) = (0u32, 0u32);
    for value in text.iter().filter_map(|&c| base64_value(c)).skip(skip) {
        acc = (acc << 6) | value;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    out
}

fn hex_value(c: u8) -> Option<u8> {
    (c as char).to_digit(16).map(|d| d as u8)
}

/// Decodes hex digits pairwise (a last odd digit is ignored).
fn decode_hex(text: &[u8]) -> Vec<u8> {
    text.chunks_exact(2)
        .filter_map(|pair| Some(hex_value(pair[0])? << 4 | hex_value(pair[1])?))
        .collect()
}

/// A decoded text and, for each of its bytes, the span of the source it came from.
struct View {
    bytes: Vec<u8>,
    map: Vec<(usize, usize)>,
}

impl View {
    fn with_capacity(n: usize) -> Self {
        Self {
            bytes: Vec::with_capacity(n),
            map: Vec::with_capacity(n),
        }
    }

    fn push(&mut self, bytes: &[u8], span: (usize, usize)) {
        self.bytes.extend_from_slice(bytes);
        self.map.extend(std::iter::repeat_n(span, bytes.len()));
    }
}

fn hex_pair(bytes: &[u8], at: usize) -> Option<u8> {
    let hi = hex_value(*bytes.get(at)?)?;
    let lo = hex_value(*bytes.get(at + 1)?)?;
    Some(hi << 4 | lo)
}

/// The percent-decoded view of `bytes`, when it has any `%XX`.
fn percent_view(bytes: &[u8]) -> Option<View> {
    let escaped = |i: usize| bytes[i] == b'%' && hex_pair(bytes, i + 1).is_some();
    if !(0..bytes.len()).any(escaped) {
        return None;
    }
    let mut view = View::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match (bytes[i], hex_pair(bytes, i + 1)) {
            (b'%', Some(byte)) => {
                view.push(&[byte], (i, i + 3));
                i += 3;
            }
            (byte, _) => {
                view.push(&[byte], (i, i + 1));
                i += 1;
            }
        }
    }
    Some(view)
}

fn hex4(bytes: &[u8], at: usize) -> Option<u32> {
    let digits = bytes.get(at..at + 4)?;
    let text = std::str::from_utf8(digits).ok()?;
    u32::from_str_radix(text, 16).ok()
}

/// Decodes one backslash escape at `i`: the bytes it stands for and its length.
fn unescape_at(bytes: &[u8], i: usize) -> Option<(Vec<u8>, usize)> {
    let simple = |b: u8| Some((vec![b], 2));
    match *bytes.get(i + 1)? {
        c @ (b'"' | b'\\' | b'/' | b'\'') => simple(c),
        b'b' => simple(0x08),
        b'f' => simple(0x0c),
        b'n' => simple(b'\n'),
        b'r' => simple(b'\r'),
        b't' => simple(b'\t'),
        b'x' => Some((vec![hex_pair(bytes, i + 2)?], 4)),
        b'u' => {
            let unit = hex4(bytes, i + 2)?;
            let (code, len) = if (0xD800..0xDC00).contains(&unit)
                && bytes.get(i + 6..i + 8) == Some(b"\\u")
                && let Some(low @ 0xDC00..0xE000) = hex4(bytes, i + 8)
            {
                (0x10000 + ((unit - 0xD800) << 10) + (low - 0xDC00), 12)
            } else {
                (unit, 6)
            };
            let c = char::from_u32(code).unwrap_or(char::REPLACEMENT_CHARACTER);
            Some((c.to_string().into_bytes(), len))
        }
        _ => None,
    }
}

/// The backslash-unescaped view of `bytes` (JSON string escapes and `\xNN`), when it has any.
fn escape_view(bytes: &[u8]) -> Option<View> {
    let first = (0..bytes.len()).find(|&i| bytes[i] == b'\\' && unescape_at(bytes, i).is_some())?;
    let mut view = View::with_capacity(bytes.len());
    for (i, &b) in bytes[..first].iter().enumerate() {
        view.push(&[b], (i, i + 1));
    }
    let mut i = first;
    while i < bytes.len() {
        match (bytes[i], unescape_at(bytes, i)) {
            (b'\\', Some((decoded, len))) => {
                view.push(&decoded, (i, i + len));
                i += len;
            }
            (byte, _) => {
                view.push(&[byte], (i, i + 1));
                i += 1;
            }
        }
    }
    Some(view)
}

fn floor_boundary(text: &str, mut at: usize) -> usize {
    while at > 0 && !text.is_char_boundary(at) {
        at -= 1;
    }
    at
}

fn ceil_boundary(text: &str, mut at: usize) -> usize {
    while at < text.len() && !text.is_char_boundary(at) {
        at += 1;
    }
    at.min(text.len())
}

/// Redacts secrets in a text, plain or encoded; returns the text and the kinds found (plain
/// kinds first, each kind once).
pub fn redact_text(text: &str) -> (String, Vec<&'static str>) {
    let Some(rules) = rules() else {
        // The patterns are constants tested to compile: this cannot happen; fail closed.
        return (format!("{MARKER}unavailable»"), vec!["unavailable"]);
    };
    let bytes = text.as_bytes();
    let mut scan = Scan {
        rules,
        budget: bytes.len().saturating_mul(16).saturating_add(64 * 1024),
        seen: HashMap::new(),
    };
    let mut hits = Vec::new();
    scan.find(bytes, 0, &mut hits);
    if hits.is_empty() {
        return (text.to_string(), Vec::new());
    }
    hits.sort_by_key(Hit::order);
    let mut out = String::with_capacity(text.len());
    let mut kinds: Vec<usize> = Vec::new();
    let mut cursor = 0;
    let mut i = 0;
    while i < hits.len() {
        // Overlapping hits become one redaction named after the first.
        let first = &hits[i];
        let mut end = first.end;
        i += 1;
        while i < hits.len() && hits[i].start < end {
            end = end.max(hits[i].end);
            i += 1;
        }
        let start = floor_boundary(text, first.start).max(cursor);
        let end = ceil_boundary(text, end);
        if end <= start {
            continue;
        }
        let kind = first.order().1;
        out.push_str(&text[cursor..start]);
        out.push_str(&format!("{MARKER}{}:{}…»", rules.kinds[kind], first.prefix));
        cursor = end;
        kinds.push(kind);
    }
    out.push_str(&text[cursor..]);
    kinds.sort_unstable();
    kinds.dedup();
    (out, kinds.into_iter().map(|k| rules.kinds[k]).collect())
}

/// Redacts every string in a JSON value, and object keys that hold a secret; a string or number
/// under a key named like a secret is redacted whatever it looks like. Returns the kinds found.
pub fn redact_value(value: &mut Value) -> Vec<&'static str> {
    let mut kinds = Vec::new();
    walk(value, &mut kinds, 0);
    kinds
}

/// Whether an object key names a secret (`password`, `db_password`, `x-api-key`, `id_token`, …).
fn names_a_secret(key: &str) -> bool {
    let key = key.to_ascii_lowercase();
    matches!(
        key.as_str(),
        "token" | "authorization" | "cookie" | "credential" | "credentials" | "pwd" | "pass"
    ) || key.ends_with("_token")
        || key.ends_with("-token")
        || [
            "password",
            "passwd",
            "passphrase",
            "secret",
            "api_key",
            "apikey",
            "api-key",
            "access_key",
            "accesstoken",
            "private_key",
            "privatekey",
        ]
        .iter()
        .any(|name| key.contains(name))
}

fn walk(value: &mut Value, kinds: &mut Vec<&'static str>, depth: usize) {
    if depth > 64 {
        *value = Value::String(format!("{MARKER}too_deep»"));
        return;
    }
    match value {
        Value::String(s) => {
            let (clean, found) = redact_text(s);
            if !found.is_empty() {
                *s = clean;
                kinds.extend(found);
            }
        }
        Value::Array(items) => items.iter_mut().for_each(|v| walk(v, kinds, depth + 1)),
        Value::Object(map) => {
            // A key can be a secret too (a map keyed by access key id).
            let secret_keys: Vec<String> = map
                .keys()
                .filter(|k| !redact_text(k).1.is_empty())
                .cloned()
                .collect();
            for key in secret_keys {
                let (clean, found) = redact_text(&key);
                kinds.extend(found);
                if let Some(v) = map.remove(&key) {
                    let mut name = clean.clone();
                    let mut n = 1;
                    while map.contains_key(&name) {
                        n += 1;
                        name = format!("{clean}#{n}");
                    }
                    map.insert(name, v);
                }
            }
            for (key, v) in map.iter_mut() {
                let sensitive = names_a_secret(key);
                let secret = match v {
                    Value::String(s) if sensitive && !s.is_empty() => Some(s.clone()),
                    Value::Number(n) if sensitive => Some(n.to_string()),
                    _ => None,
                };
                match secret {
                    Some(secret) => {
                        let name: String = key
                            .chars()
                            .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-'))
                            .take(40)
                            .collect();
                        let keep = prefix(secret.as_bytes(), 2);
                        *v = Value::String(format!("{MARKER}{name}:{keep}…»"));
                        kinds.push("named_secret");
                    }
                    None => walk(v, kinds, depth + 1),
                }
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redacts_known_secrets_and_keeps_the_rest() {
        let text = "key AKIAIOSFODNN7EXAMPLE and token ghp_0123456789abcdefghijABCDEFGHIJ012345 ok";
        let (clean, kinds) = redact_text(text);
        assert!(!clean.contains("AKIAIOSFODNN7EXAMPLE"));
        assert!(!clean.contains("ghp_0123456789"));
        assert!(clean.contains("«redacted:aws_access_key:AKIA…»"));
        assert!(clean.ends_with(" ok"));
        assert_eq!(kinds, vec!["aws_access_key", "github_token"]);
    }

    #[test]
    fn redacts_pem_blocks_and_assignments() {
        let pem = "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAA\n-----END OPENSSH PRIVATE KEY-----";
        let (clean, _) = redact_text(&format!("here: {pem} end"));
        assert!(!clean.contains("b3BlbnNzaC1rZXktdjEAAAAA"));
        let (clean, kinds) = redact_text("DB_PASSWORD=hunter2hunter2 host=db");
        assert!(!clean.contains("hunter2hunter2"), "{clean}");
        assert_eq!(kinds, vec!["assigned_secret"]);
    }

    #[test]
    fn redacts_inside_json_values() {
        let mut v = serde_json::json!({"query": "select", "password": "p4ss", "nested": ["AKIAIOSFODNN7EXAMPLE"]});
        let kinds = redact_value(&mut v);
        assert_eq!(v["query"], "select");
        assert!(!v.to_string().contains("p4ss"));
        assert!(!v.to_string().contains("IOSFODNN7"));
        assert_eq!(kinds.len(), 2);
    }

    use base64::Engine;
    use base64::engine::general_purpose::{STANDARD, URL_SAFE, URL_SAFE_NO_PAD};

    const BEARER: &str = "Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhbGljZSJ9.c2lnbmF0dXJlLXZhbHVl";

    /// Redacts `text` and checks none of `secrets` survives and that a marker was left.
    fn assert_gone(text: &str, secrets: &[&str]) -> (String, Vec<&'static str>) {
        let (clean, kinds) = redact_text(text);
        for secret in secrets {
            assert!(!clean.contains(secret), "{secret:?} survives in {clean:?}");
        }
        assert!(clean.contains(MARKER), "no marker in {clean:?}");
        assert!(!kinds.is_empty(), "no kind for {text:?}");
        (clean, kinds)
    }

    #[test]
    fn redacts_the_password_of_a_url() {
        let (clean, kinds) = assert_gone(
            "connect to https://user:hunter2pass@db.example.com/x now",
            &["hunter2pass"],
        );
        assert!(clean.contains("https://user:"), "{clean}");
        assert!(clean.contains("@db.example.com/x now"), "{clean}");
        assert_eq!(kinds, vec!["url_password"]);
        let (clean, _) = assert_gone("postgres://u:p@h/db", &["u:p@"]);
        assert!(clean.ends_with("@h/db"), "{clean}");
        // A user without a password, or a port, is not a secret.
        let plain = "see https://user@example.com:8443/a and http://[::1]:80/";
        assert_eq!(redact_text(plain), (plain.to_string(), vec![]));
    }

    #[test]
    fn redacts_an_aws_secret_in_an_escaped_json_string() {
        let text =
            r#"result: "{\"aws_secret_access_key\":\"wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY\"}""#;
        assert_gone(text, &["wJalrXUtnFEMI/K7MDENG"]);
        let twice = r#"{\\\"password\\\":\\\"hunter2hunter2\\\"}"#;
        assert_gone(twice, &["hunter2hunter2"]);
    }

    #[test]
    fn redacts_base64_encoded_secrets() {
        let std = STANDARD.encode(BEARER);
        assert!(std.starts_with("QmVhcmVyIGV5SmhiR2Np"));
        let (clean, kinds) = assert_gone(&format!("auth header was {std} ok"), &[&std[4..]]);
        assert!(clean.ends_with(" ok"), "{clean}");
        assert!(kinds[0].starts_with("base64_"), "{kinds:?}");
        let token = "token ghp_0123456789abcdefghijABCDEFGHIJ012345";
        for encoded in [
            URL_SAFE.encode(token),
            URL_SAFE_NO_PAD.encode(token),
            STANDARD.encode(token).trim_end_matches('=').to_string(),
            STANDARD.encode("AKIAIOSFODNN7EXAMPLE"),
            STANDARD.encode("aws_secret_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"),
        ] {
            assert_gone(&format!("data:{encoded}\n"), &[&encoded[4..]]);
        }
        // Not aligned on a base64 quantum: glued to a path.
        let glued = format!("/files/a/{}", STANDARD.encode("AKIAIOSFODNN7EXAMPLE"));
        assert_gone(&glued, &["QUtJQUlPU0ZPRE5ON0VYQU1QTEU"]);
    }

    #[test]
    fn redacts_percent_encoded_secrets() {
        assert_gone("q=1&password%3Dhunter2hunter2&x=2", &["hunter2hunter2"]);
        let akia: String = "AKIAIOSFODNN7EXAMPLE"
            .bytes()
            .map(|b| format!("%{b:02X}"))
            .collect();
        assert_gone(&format!("GET /?k={akia} HTTP/1.1"), &[&akia[12..]]);
        assert_gone(
            "Authorization%3A%20Bearer%20abcdefghijklmnopqrstuvwxyz012345",
            &["abcdefghijklmnopqrstuvwxyz012345"],
        );
    }

    #[test]
    fn redacts_json_unicode_and_hex_escapes() {
        let text = r#"{"k": "\u0041\u004b\u0049\u0041IOSFODNN7EXAMPLE"}"#;
        assert_gone(text, &["IOSFODNN7EXAMPLE"]);
        let hex = hex::encode("AKIAIOSFODNN7EXAMPLE");
        assert_gone(&format!("blob {hex} end"), &[&hex[8..]]);
        let escaped: String = "sk_live_0123456789abcdefABCD"
            .bytes()
            .map(|b| format!("\\x{b:02x}"))
            .collect();
        assert_gone(&escaped, &[&escaped[16..]]);
    }

    #[test]
    fn redacts_nested_encodings() {
        let inner = serde_json::json!({"note": BEARER}).to_string();
        let b64 = STANDARD.encode(&inner);
        assert_gone(&format!("x {b64} y"), &[&b64[4..]]);
        let pct: String = STANDARD
            .encode("AKIAIOSFODNN7EXAMPLE")
            .bytes()
            .map(|b| format!("%{b:02X}"))
            .collect();
        assert_gone(&pct, &[&pct[12..]]);
        let outer = serde_json::json!({"text": serde_json::json!({"aws_secret_access_key": "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"}).to_string()}).to_string();
        assert_gone(&outer, &["wJalrXUtnFEMI/K7MDENG"]);
    }

    #[test]
    fn redacts_a_private_key_cut_short() {
        let cut = "key: -----BEGIN RSA PRIVATE KEY-----\nMIIEpAIBAAKCAQEA1234567890abcdefghij\nMIIEpAIBAAKCAQEA0987654321 …[result continues]";
        assert_gone(cut, &["MIIEpAIBAAKCAQEA1234567890"]);
    }

    #[test]
    fn redacts_values_under_keys_named_like_secrets() {
        let mut v = serde_json::json!({"db_password": "hunter2hunter2", "AKIAIOSFODNN7EXAMPLE": 1,
                                       "max_tokens": 5, "tokenizer": "cl100k"});
        redact_value(&mut v);
        let text = v.to_string();
        assert!(!text.contains("hunter2hunter2"), "{text}");
        assert!(!text.contains("IOSFODNN7EXAMPLE"), "{text}");
        assert_eq!(v["max_tokens"], 5);
        assert_eq!(v["tokenizer"], "cl100k");
    }

    #[test]
    fn leaves_ordinary_text_and_blobs_alone() {
        let png = STANDARD.encode(
            (0u32..3000)
                .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
                .collect::<Vec<u8>>(),
        );
        let texts = [
            format!("data:image/png;base64,{png}"),
            "id 123e4567-e89b-12d3-a456-426614174000 done".to_string(),
            "sha256 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08".to_string(),
            "internationalization counterrevolutionary electroencephalographically".to_string(),
            "path /usr/local/share/applications/org.example.Viewer.desktop".to_string(),
            "query ?q=caf%C3%A9%20au%20lait&page=2 and \\u00e9t\\u00e9 \"quoted\\\" text\""
                .to_string(),
            "the password policy requires twelve characters".to_string(),
            "https://example.com/a/b?c=d#e mailto:someone@example.com".to_string(),
        ];
        for text in &texts {
            let (clean, kinds) = redact_text(text);
            assert_eq!(&clean, text);
            assert!(kinds.is_empty(), "{kinds:?} in {text}");
        }
    }

    #[test]
    fn every_pattern_compiles_and_markers_name_the_encoding() {
        let rules = rules().expect("the patterns compile");
        assert_eq!(rules.rules.len(), TABLE.len());
        assert_eq!(rules.kinds.len(), TABLE.len() * LAYERS.len());
        let b64 = STANDARD.encode(BEARER);
        let (clean, kinds) = redact_text(&format!("a {b64} b"));
        assert_eq!(clean, "a «redacted:base64_jwt:QmVh…» b");
        assert_eq!(kinds, vec!["base64_jwt"]);
        let (clean, kinds) = redact_text("x=password%3Dhunter2hunter2");
        assert_eq!(
            clean,
            "x=password%3D«redacted:percent_assigned_secret:hun…»"
        );
        assert_eq!(kinds, vec!["percent_assigned_secret"]);
        // A short secret keeps at most a quarter of itself.
        let (clean, _) = redact_text("redis://default:s3cr3t!@cache:6379");
        assert_eq!(
            clean,
            "redis://default:«redacted:url_password:s…»@cache:6379"
        );
        let (clean, kinds) = redact_text(&format!("{BEARER} and AKIAIOSFODNN7EXAMPLE"));
        assert_eq!(
            clean,
            "Bearer «redacted:jwt:eyJh…» and «redacted:aws_access_key:AKIA…»"
        );
        assert_eq!(kinds, vec!["aws_access_key", "jwt"]);
    }

    #[test]
    fn large_hostile_input_stays_bounded() {
        // 256 KiB of distinct candidate runs, escapes and percent-encoding, no secret in them.
        let mut text = String::new();
        let mut seed = 7u64;
        while text.len() < 256 * 1024 {
            let bytes: Vec<u8> = (0..48)
                .map(|_| {
                    seed = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
                    (seed >> 56) as u8
                })
                .collect();
            text.push_str(&format!(
                "{} %41%42%43 \\u0041\\\"x\\\" {} ",
                STANDARD.encode(&bytes),
                hex::encode(&bytes[..24])
            ));
        }
        let started = std::time::Instant::now();
        let (clean, kinds) = redact_text(&text);
        eprintln!("256 KiB hostile text: {:?}", started.elapsed());
        assert!(kinds.is_empty() && clean == text);
        assert!(started.elapsed() < std::time::Duration::from_secs(30));
    }

    #[test]
    fn redacts_utf16_base64_and_token_assignments() {
        let utf16: Vec<u8> = "$k = 'AKIAIOSFODNN7EXAMPLE'"
            .encode_utf16()
            .flat_map(u16::to_le_bytes)
            .collect();
        let command = STANDARD.encode(&utf16);
        assert_gone(
            &format!("powershell -EncodedCommand {command}"),
            &[&command[4..]],
        );
        assert_gone(
            r#"{"token":"s3cr3t-session-value"}"#,
            &["s3cr3t-session-value"],
        );
        let plain = "max_tokens: 4096 and tokens used 12";
        assert_eq!(redact_text(plain).0, plain);
    }
}
