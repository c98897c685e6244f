//! Secrets never leave the gateway in events: arguments and result text are redacted before they
//! are published. A redacted secret keeps its kind and first four characters, so responders (and
//! the monitor) still see that a secret of that kind passed, not its value.

use std::sync::OnceLock;

use regex::Regex;
use serde_json::Value;

/// Marker that starts every redaction; the monitor looks for it.
pub const MARKER: &str = "«redacted:";

fn patterns() -> &'static [(&'static str, Regex)] {
    static PATTERNS: OnceLock<Vec<(&'static str, Regex)>> = OnceLock::new();
    PATTERNS.get_or_init(|| {
        let table: [(&str, &str); 11] = [
            ("private_key", r"-----BEGIN [A-Z ]*PRIVATE KEY-----[\s\S]{0,8192}?-----END [A-Z ]*PRIVATE KEY-----"),
            ("aws_access_key", r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b"),
            ("github_token", r"\b(?:gh[pousr]_[A-Za-z0-9]{36,255}|github_pat_[A-Za-z0-9_]{22,255})\b"),
            ("gitlab_token", r"\bglpat-[A-Za-z0-9_\-]{20,}\b"),
            ("slack_token", r"\bxox[baprs]-[A-Za-z0-9\-]{10,}\b"),
            ("stripe_key", r"\b[sr]k_live_[A-Za-z0-9]{16,}\b"),
            ("google_api_key", r"\bAIza[0-9A-Za-z_\-]{35}\b"),
            ("jwt", r"\beyJ[A-Za-z0-9_\-]{8,}\.eyJ[A-Za-z0-9_\-]{8,}\.[A-Za-z0-9_\-]{8,}\b"),
            ("bearer_token", r"(?i)\bbearer\s+[A-Za-z0-9\-._~+/]{20,}=*"),
            (
                "assigned_secret",
                r#"(?i)(?P<keep>[A-Za-z0-9_\-]*(?:password|passwd|secret|api[_-]?key|access[_-]?token|auth[_-]?token)["']?\s*[:=]\s*["']?)(?P<secret>[^\s"',;]{8,})"#,
            ),
            ("aws_secret_key", r#"(?i)(?P<keep>aws_secret_access_key["']?\s*[:=]\s*["']?)(?P<secret>[A-Za-z0-9/+=]{40})"#),
        ];
        table.iter().filter_map(|(kind, re)| Regex::new(re).ok().map(|r| (*kind, r))).collect()
    })
}

/// Redacts secrets in a text; returns the text and the kinds found.
pub fn redact_text(text: &str) -> (String, Vec<&'static str>) {
    let mut out = text.to_string();
    let mut kinds = Vec::new();
    for (kind, re) in patterns() {
        if !re.is_match(&out) {
            continue;
        }
        kinds.push(*kind);
        out = re
            .replace_all(&out, |caps: &regex::Captures<'_>| {
                // Patterns with a `secret` group keep the text before it (the key name).
                let keep = caps.name("keep").map(|m| m.as_str()).unwrap_or("");
                let hit = caps.name("secret").map(|m| m.as_str()).unwrap_or(&caps[0]);
                let prefix: String = hit.chars().take(4).collect();
                format!("{keep}{MARKER}{kind}:{prefix}…»")
            })
            .into_owned();
    }
    (out, kinds)
}

/// Redacts every string in a JSON value (object keys are kept); returns the kinds found.
pub fn redact_value(value: &mut Value) -> Vec<&'static str> {
    let mut kinds = Vec::new();
    walk(value, &mut kinds, 0);
    kinds
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
            for (key, v) in map.iter_mut() {
                // A value under a key that names a secret is redacted whatever it looks like.
                let sensitive = matches!(
                    key.to_ascii_lowercase().as_str(),
                    "password"
                        | "secret"
                        | "token"
                        | "api_key"
                        | "apikey"
                        | "authorization"
                        | "client_secret"
                );
                match v {
                    Value::String(s) if sensitive && !s.is_empty() => {
                        let prefix: String = s.chars().take(2).collect();
                        *s = format!("{MARKER}{key}:{prefix}…»");
                        kinds.push("named_secret");
                    }
                    _ => walk(v, kinds, depth + 1),
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
}
