//! Secrets in text (MCP01): provider tokens with a known shape, private key blocks, JWTs,
//! credentials in URLs, and high-entropy values assigned to secret-sounding names.
//!
//! Matches run on the original text (token shapes are case-sensitive) as ASCII-mode byte
//! regexes. Every hit carries the span to mask: the raw secret never reaches a
//! [`super::Finding`].

use regex::bytes::{Regex, RegexSet};

use super::evidence::Mask;

/// A secret found in a text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SecretHit {
    /// The rule.
    pub rule: &'static str,
    /// Span of the secret in the original text.
    pub start: usize,
    /// End of the span.
    pub end: usize,
    /// Leading bytes that may stay visible (its type prefix).
    pub keep: usize,
}

impl SecretHit {
    /// The mask for evidence.
    pub fn mask(&self) -> Mask {
        Mask {
            start: self.start,
            end: self.end,
            keep: self.keep,
        }
    }
}

/// One token shape: rule, regex (capture group 1 is the secret), visible prefix length.
struct Shape {
    rule: &'static str,
    keep: usize,
    reject_example: bool,
}

const SHAPES: &[(&str, &str, usize, bool)] = &[
    (
        "secret.aws_access_key",
        r"\b((?:AKIA|ASIA|ABIA|ACCA)[A-Z0-9]{16})\b",
        4,
        true,
    ),
    (
        "secret.aws_secret_key",
        r#"(?i)aws_?secret_?(?:access_?)?key["']?\s*[:=]\s*["']?([A-Za-z0-9/+=]{40})\b"#,
        0,
        true,
    ),
    (
        "secret.github_token",
        r"\b(gh[pousr]_[A-Za-z0-9]{36,255})\b",
        4,
        false,
    ),
    (
        "secret.github_token",
        r"\b(github_pat_[A-Za-z0-9_]{22,255})",
        11,
        false,
    ),
    (
        "secret.gitlab_token",
        r"\b(glpat-[A-Za-z0-9_\-]{20,255})",
        6,
        false,
    ),
    (
        "secret.slack_token",
        r"\b(xox[baprse]-[A-Za-z0-9\-]{10,255})",
        5,
        false,
    ),
    (
        "secret.slack_token",
        r"(https://hooks\.slack\.com/services/[A-Za-z0-9/_]{20,200})",
        33,
        false,
    ),
    (
        "secret.stripe_key",
        r"\b((?:sk|rk)_live_[A-Za-z0-9]{16,255})",
        8,
        false,
    ),
    (
        "secret.google_api_key",
        r"\b(AIza[0-9A-Za-z_\-]{35})",
        4,
        false,
    ),
    (
        "secret.llm_api_key",
        r"\b(sk-ant-[a-z0-9]{2,10}-[A-Za-z0-9_\-]{40,255})",
        7,
        false,
    ),
    (
        "secret.llm_api_key",
        r"\b(sk-(?:proj|svcacct|admin)-[A-Za-z0-9_\-]{20,255})",
        8,
        false,
    ),
    (
        "secret.llm_api_key",
        r"\b(sk-[A-Za-z0-9]{20}T3BlbkFJ[A-Za-z0-9]{20})",
        3,
        false,
    ),
    (
        "secret.azure_key",
        r"(?i)\bAccountKey\s*=\s*([A-Za-z0-9+/]{43,100}={0,2})",
        0,
        false,
    ),
    (
        "secret.azure_key",
        r"[?&]sig=([A-Za-z0-9%+/]{40,120})",
        0,
        false,
    ),
    (
        "secret.azure_key",
        r"\b([A-Za-z0-9_\-.]{3}[0-9]Q~[A-Za-z0-9_\-.~]{31,34})\b",
        0,
        false,
    ),
    (
        "secret.llm_api_key",
        r"\b(sk-[A-Za-z0-9]{32,64})\b",
        3,
        false,
    ),
    (
        "secret.password",
        r"(?i)\bbasic\s+([A-Za-z0-9+/]{12,256}={0,2})",
        0,
        false,
    ),
    (
        "secret.jwt",
        r"\b(eyJ[A-Za-z0-9_\-]{10,2048}\.eyJ[A-Za-z0-9_\-]{10,8192}\.[A-Za-z0-9_\-]{16,2048})",
        3,
        false,
    ),
    (
        "secret.url_credentials",
        r"\b[a-z][a-z0-9+.\-]{1,20}://[^/\s:@'\x22]{1,64}:([^/\s:@'\x22]{3,128})@[a-z0-9\-.]+",
        0,
        false,
    ),
];

/// Placeholder values that are not secrets.
const PLACEHOLDERS: &[&str] = &[
    "password",
    "passwd",
    "secret",
    "changeme",
    "example",
    "placeholder",
    "redacted",
    "xxxx",
    "****",
    "your",
    "<",
    "${",
    "{{",
    "%s",
    "null",
    "none",
    "undefined",
    "string",
    "required",
    "optional",
    "dummy",
    "test",
    "sample",
    "token",
    "pass",
    "user",
];

/// The secret scanner.
pub struct SecretScanner {
    set: RegexSet,
    shapes: Vec<(Regex, Shape)>,
    pem_begin: Regex,
    pem_end: Regex,
    assignment: Regex,
    bearer: Regex,
    strong_key: regex::Regex,
    excluded_key: regex::Regex,
    password_key: regex::Regex,
}

impl Default for SecretScanner {
    fn default() -> Self {
        Self::new()
    }
}

impl SecretScanner {
    /// Compiles the shapes.
    pub fn new() -> Self {
        let build_str =
            |s: &str| regex::Regex::new(s).unwrap_or_else(|e| panic!("secret pattern {s}: {e}"));
        let build = |s: &str| {
            Regex::new(&format!("(?-u){s}")).unwrap_or_else(|e| panic!("secret pattern {s}: {e}"))
        };
        let shapes: Vec<(Regex, Shape)> = SHAPES
            .iter()
            .map(|(rule, re, keep, reject_example)| {
                (
                    build(re),
                    Shape {
                        rule,
                        keep: *keep,
                        reject_example: *reject_example,
                    },
                )
            })
            .collect();
        let mut prefilter: Vec<String> = SHAPES.iter().map(|s| format!("(?-u){}", s.1)).collect();
        let pem = r"-----BEGIN[A-Z ]{0,30}PRIVATE KEY(?: BLOCK)?-----";
        let assignment = r#"(?i)([a-z0-9_.\-]{0,40}(?:secret|passw(?:or)?d|pwd|api[_\-]?key|apikey|access[_\-]?key|private[_\-]?key|auth[_\-]?token|access[_\-]?token|refresh[_\-]?token|client[_\-]?secret|token|credential)[a-z0-9_.\-]{0,20})["']?\s*(?:[:=]|=>|:=)\s*["']?([A-Za-z0-9+/=_.~!@#$%^&*\-]{8,256})"#;
        let bearer = r"(?i)\bbearer\s+([A-Za-z0-9._~+/\-]{20,2048}=*)";
        prefilter.push(format!("(?-u){pem}"));
        prefilter.push(format!("(?-u){assignment}"));
        prefilter.push(format!("(?-u){bearer}"));
        Self {
            set: RegexSet::new(&prefilter).unwrap_or_else(|e| panic!("secret prefilter: {e}")),
            shapes,
            pem_begin: build(pem),
            pem_end: build(r"-----END[A-Z ]{0,30}PRIVATE KEY(?: BLOCK)?-----"),
            assignment: build(assignment),
            bearer: build(bearer),
            strong_key: build_str(
                r"(?i)(secret|passw(or)?d|pwd|api_?key|apikey|access_?key|private_?key|auth_?token|access_?token|refresh_?token|id_?token|bearer|credential|client_?secret|session_?token|signing_?key|encryption_?key|master_?key|(^|[_\-.])token$|^token)",
            ),
            excluded_key: build_str(
                r"(?i)((page|next|cursor|continuation|sync|csrf|xsrf|pagination|max|num|total|input|output|prompt|completion)_?tokens?|tokens?_?(count|type|usage|limit|id|ids|length|s)$|public|_id$|^id$|keyid|key_id|_name$|_path$|_file$|_url$|_uri$|_hint$|_type$|_policy$|_length$|_expires?|expir|_ttl$|_at$|reset|forgot|_required$|_enabled$|strength)",
            ),
            password_key: build_str(r"(?i)(passw(or)?d|pwd|passphrase)"),
        }
    }

    /// Every secret in `text`. `key` is the JSON key the text was the value of, if any: a
    /// secret-sounding key makes the whole value a candidate.
    pub fn scan(&self, text: &str, key: Option<&str>) -> Vec<SecretHit> {
        let mut hits = Vec::new();
        if let Some(key) = key
            && let Some(hit) = self.keyed_value(key, text)
        {
            hits.push(hit);
        }
        if text.len() < 8 {
            return hits;
        }
        let bytes = text.as_bytes();
        let matched = self.set.matches(bytes);
        if !matched.matched_any() {
            return hits;
        }
        for (index, (regex, shape)) in self.shapes.iter().enumerate() {
            if !matched.matched(index) {
                continue;
            }
            for caps in regex.captures_iter(bytes).take(64) {
                let Some(m) = caps.get(1) else { continue };
                let (start, end) = boundaries(text, m.start(), m.end());
                let value = &text[start..end];
                if shape.reject_example && value.to_ascii_uppercase().contains("EXAMPLE") {
                    continue;
                }
                if shape_placeholder(value, shape.keep) {
                    continue;
                }
                if shape.rule == "secret.jwt" && documented_jwt(value) {
                    continue;
                }
                if shape.rule == "secret.password" && !basic_credentials(value) {
                    continue;
                }
                if shape.rule == "secret.llm_api_key" && !looks_random(value, 20, 3.5) {
                    continue;
                }
                if shape.rule == "secret.url_credentials" && is_placeholder(value) {
                    continue;
                }
                hits.push(SecretHit {
                    rule: shape.rule,
                    start,
                    end,
                    keep: shape.keep,
                });
            }
        }
        let base = self.shapes.len();
        if matched.matched(base) {
            self.pem_blocks(text, &mut hits);
        }
        if matched.matched(base + 1) {
            for caps in self.assignment.captures_iter(bytes).take(256) {
                let (Some(name), Some(value)) = (caps.get(1), caps.get(2)) else {
                    continue;
                };
                let (name_start, name_end) = boundaries(text, name.start(), name.end());
                let (value_start, value_end) = boundaries(text, value.start(), value.end());
                let value_text = &text[value_start..value_end];
                // Code, not a value: `os.getenv(...)`, `self.password`, `password_hash`.
                let called = text[value_end..].starts_with('(');
                if called || is_identifier(value_text) {
                    continue;
                }
                if let Some(hit) = self.judge(&text[name_start..name_end], value_text, value_start)
                {
                    hits.push(hit);
                }
            }
        }
        if matched.matched(base + 2) {
            for caps in self.bearer.captures_iter(bytes).take(64) {
                let Some(m) = caps.get(1) else { continue };
                let (start, end) = boundaries(text, m.start(), m.end());
                if looks_random(&text[start..end], 16, 3.0) {
                    hits.push(SecretHit {
                        rule: "secret.high_entropy",
                        start,
                        end,
                        keep: 2,
                    });
                }
            }
        }
        dedupe(&mut hits);
        hits
    }

    fn pem_blocks(&self, text: &str, hits: &mut Vec<SecretHit>) {
        for header in self.pem_begin.find_iter(text.as_bytes()).take(16) {
            let body_start = header.end();
            let limit = floor(text, body_start + 16_384);
            let end = match self.pem_end.find(&text.as_bytes()[body_start..limit]) {
                Some(footer) => body_start + footer.end(),
                None => {
                    let body = &text[body_start..limit];
                    let len = body
                        .bytes()
                        .take_while(|b| b.is_ascii_alphanumeric() || b"+/=\\ \t\r\n:,-".contains(b))
                        .count();
                    body_start + len
                }
            };
            let body = &text[body_start..end];
            let material = body.bytes().filter(u8::is_ascii_alphanumeric).count();
            if material < 40 {
                continue;
            }
            hits.push(SecretHit {
                rule: "secret.private_key",
                start: header.start(),
                end,
                keep: header.end() - header.start(),
            });
        }
    }

    /// A value under a secret-sounding JSON key.
    fn keyed_value(&self, key: &str, value: &str) -> Option<SecretHit> {
        if value.len() < 8 || value.len() > 512 || value.contains(char::is_whitespace) {
            return None;
        }
        self.judge(key, value, 0)
    }

    /// Whether `value` assigned to `name` is a secret.
    fn judge(&self, name: &str, value: &str, offset: usize) -> Option<SecretHit> {
        if !self.strong_key.is_match(name) || self.excluded_key.is_match(name) {
            return None;
        }
        let value = value.trim_end_matches(['.', ',', ';']);
        if is_placeholder(value) {
            return None;
        }
        let (rule, ok) = if self.password_key.is_match(name) {
            ("secret.password", looks_like_password(value))
        } else {
            ("secret.high_entropy", looks_random(value, 16, 3.3))
        };
        ok.then_some(SecretHit {
            rule,
            start: offset,
            end: offset + value.len(),
            keep: 2,
        })
    }
}

/// A byte span widened to character boundaries.
fn boundaries(text: &str, start: usize, end: usize) -> (usize, usize) {
    let start = floor(text, start);
    let mut end = end.min(text.len()).max(start);
    while !text.is_char_boundary(end) {
        end += 1;
    }
    (start, end)
}

fn floor(text: &str, mut at: usize) -> usize {
    at = at.min(text.len());
    while !text.is_char_boundary(at) {
        at -= 1;
    }
    at
}

/// A (dotted) identifier: `config.password`, `DB_PASSWORD`, `password_hash`.
fn is_identifier(value: &str) -> bool {
    let mut parts = value.split('.');
    parts.all(|p| {
        let mut bytes = p.bytes();
        bytes
            .next()
            .is_some_and(|b| b.is_ascii_alphabetic() || b == b'_')
            && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_')
            && !p.bytes().any(|b| b.is_ascii_digit())
    })
}

fn is_placeholder(value: &str) -> bool {
    let lower = value.to_ascii_lowercase();
    if PLACEHOLDERS.iter().any(|p| lower.contains(p)) {
        return true;
    }
    let first = lower.bytes().next();
    lower
        .bytes()
        .all(|b| Some(b) == first || b == b'*' || b == b'x' || b == b'.')
}

/// A token of the right shape that is visibly a placeholder: `ghp_xxxx…`, `sk_live_0000…`,
/// `…EXAMPLE…`, `…your…here`, or a body of at most four distinct characters.
fn shape_placeholder(value: &str, keep: usize) -> bool {
    let body = value.get(keep.min(value.len())..).unwrap_or(value);
    let lower = body.to_ascii_lowercase();
    if [
        "xxxx",
        "example",
        "placeholder",
        "your",
        "dummy",
        "redacted",
        "0000000",
        "1234567890abc",
    ]
    .iter()
    .any(|p| lower.contains(p))
    {
        return true;
    }
    let mut seen = [false; 256];
    for b in lower.bytes() {
        seen[b as usize] = true;
    }
    seen.iter().filter(|&&s| s).count() <= 4
}

/// The sample token of the JWT documentation (jwt.io: `"sub": "1234567890"`, `"name": "John
/// Doe"`), printed in countless tutorials: it grants nothing.
fn documented_jwt(value: &str) -> bool {
    let payload = value.split('.').nth(1).unwrap_or("");
    let Ok(bytes) = base64::Engine::decode(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD,
        payload.trim_end_matches('='),
    ) else {
        return false;
    };
    let text = String::from_utf8_lossy(&bytes);
    text.contains("\"1234567890\"") && text.contains("John Doe")
}

/// HTTP Basic credentials: base64 of `user:password` with a real-looking password.
fn basic_credentials(value: &str) -> bool {
    let Ok(bytes) = base64::Engine::decode(&base64::engine::general_purpose::STANDARD, value)
    else {
        return false;
    };
    let text = String::from_utf8_lossy(&bytes);
    text.split_once(':').is_some_and(|(user, pass)| {
        !user.is_empty()
            && pass.len() >= 6
            && !shape_placeholder(pass, 0)
            && !matches!(
                pass.to_ascii_lowercase().as_str(),
                "password" | "changeme" | "secret"
            )
    })
}

/// Shannon entropy in bits per byte.
pub fn entropy(value: &str) -> f64 {
    let mut counts = [0u32; 256];
    for b in value.bytes() {
        counts[b as usize] += 1;
    }
    let len = value.len() as f64;
    counts
        .iter()
        .filter(|&&c| c > 0)
        .map(|&c| {
            let p = f64::from(c) / len;
            -p * p.log2()
        })
        .sum()
}

fn looks_random(value: &str, min_len: usize, min_entropy: f64) -> bool {
    let has_digit = value.bytes().any(|b| b.is_ascii_digit());
    let has_alpha = value.bytes().any(|b| b.is_ascii_alphabetic());
    value.len() >= min_len
        && has_digit
        && has_alpha
        && entropy(value) >= min_entropy
        && !value
            .bytes()
            .all(|b| b.is_ascii_digit() || b == b'-' || b == b'.')
}

fn looks_like_password(value: &str) -> bool {
    let has_alpha = value.bytes().any(|b| b.is_ascii_alphabetic());
    let has_other = value.bytes().any(|b| !b.is_ascii_alphabetic());
    value.len() >= 8 && has_alpha && has_other && entropy(value) >= 2.5
}

/// Drops overlapping hits; on the same span a specific shape beats a generic judgement.
fn dedupe(hits: &mut Vec<SecretHit>) {
    let generic = |h: &SecretHit| matches!(h.rule, "secret.high_entropy" | "secret.password");
    hits.sort_by_key(|h| (h.start, std::cmp::Reverse(h.end), generic(h)));
    let mut kept: Vec<SecretHit> = Vec::with_capacity(hits.len());
    for hit in hits.drain(..) {
        if let Some(last) = kept.last()
            && hit.start < last.end
        {
            continue;
        }
        kept.push(hit);
    }
    *hits = kept;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shapes_are_found() {
        let s = SecretScanner::new();
        let gh = format!("token ghp_{}", "a1B2c3D4e5".repeat(4));
        assert_eq!(s.scan(&gh, None)[0].rule, "secret.github_token");
        assert!(
            s.scan("AKIAIOSFODNN7EXAMPLE is the docs key", None)
                .is_empty()
        );
        assert_eq!(
            s.scan("id AKIAZ3MXQ7RT2LKP9WQE here", None)[0].rule,
            "secret.aws_access_key"
        );
    }

    #[test]
    fn keyed_values() {
        let s = SecretScanner::new();
        assert_eq!(
            s.scan("9f8e7d6c5b4a39281706f5e4d3c2b1a0", Some("api_key"))[0].rule,
            "secret.high_entropy"
        );
        assert!(
            s.scan("9f8e7d6c5b4a39281706f5e4d3c2b1a0", Some("next_page_token"))
                .is_empty()
        );
        assert!(
            s.scan("ssh-ed25519AAAAC3Nza", Some("public_key"))
                .is_empty()
        );
        assert!(s.scan("hunter2hunter2", Some("username")).is_empty());
        assert_eq!(
            s.scan("Tr0ub4dor&3x", Some("password"))[0].rule,
            "secret.password"
        );
    }
}
