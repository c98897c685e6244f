//! The canonical definition hash of an MCP tool.
//!
//! Approvals are bound to this hash, so it must not move when a server re-orders JSON keys or
//! re-indents, and must move on any change a client or a model could see, including a single
//! invisible character. The whole tool object counts (`name`, `title`, `description`,
//! `icons`, `inputSchema`, `outputSchema`, `annotations`, `execution`, `_meta` and any field
//! not known today); only a top-level field whose value is `null` is the same as an absent one.
//! Canonical form: objects with keys sorted by their UTF-8 bytes, no insignificant whitespace,
//! strings exactly as given (no Unicode normalization, which would hide look-alike characters),
//! numbers in serde_json's shortest form.
//!
//! Until mcpsoc 0.1 only six fields counted ([`LEGACY_DEFINITION_FIELDS`]); a pin stored then
//! is recognised by [`legacy_definition_hash`] so the gateway can tell "never reviewed with
//! these fields" from "changed" (docs/PROTOCOL.md §4).

use serde_json::Value;
use sha2::{Digest, Sha256};

/// The fields the first hash scheme covered (kept to recognise pins stored under it).
pub const LEGACY_DEFINITION_FIELDS: [&str; 6] = [
    "name",
    "title",
    "description",
    "inputSchema",
    "outputSchema",
    "annotations",
];

/// Prefix of every definition hash, naming the algorithm.
pub const HASH_PREFIX: &str = "sha256:";

/// The definition of a tool object: every field, but top-level `null`s dropped.
pub fn definition_of(tool: &Value) -> Value {
    match tool {
        Value::Object(map) => Value::Object(
            map.iter()
                .filter(|(_, v)| !v.is_null())
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
        ),
        _ => Value::Object(serde_json::Map::new()),
    }
}

/// The part of a tool the first hash scheme covered.
pub fn legacy_definition_of(tool: &Value) -> Value {
    let mut out = serde_json::Map::new();
    if let Value::Object(map) = tool {
        for field in LEGACY_DEFINITION_FIELDS {
            if let Some(v) = map.get(field).filter(|v| !v.is_null()) {
                out.insert(field.to_string(), v.clone());
            }
        }
    }
    Value::Object(out)
}

/// The fields of a tool the first hash scheme did not cover (sorted), for explaining a
/// re-review after the scheme changed.
pub fn fields_beyond_legacy(tool: &Value) -> Vec<String> {
    let mut fields: Vec<String> = tool
        .as_object()
        .map(|m| {
            m.iter()
                .filter(|(k, v)| !v.is_null() && !LEGACY_DEFINITION_FIELDS.contains(&k.as_str()))
                .map(|(k, _)| k.clone())
                .collect()
        })
        .unwrap_or_default();
    fields.sort();
    fields
}

/// Canonical JSON text of any value: sorted keys, no whitespace.
pub fn canonical_json(value: &Value) -> String {
    let mut out = String::new();
    write_canonical(value, &mut out);
    out
}

fn write_canonical(value: &Value, out: &mut String) {
    match value {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort_unstable_by(|a, b| a.as_bytes().cmp(b.as_bytes()));
            out.push('{');
            for (i, key) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_string(key, out);
                out.push(':');
                if let Some(v) = map.get(key) {
                    write_canonical(v, out);
                }
            }
            out.push('}');
        }
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_canonical(item, out);
            }
            out.push(']');
        }
        Value::String(s) => write_string(s, out),
        other => out.push_str(&other.to_string()),
    }
}

fn write_string(s: &str, out: &mut String) {
    // serde_json escapes quotes, backslashes and control characters and keeps every other
    // character (including invisible ones) as itself, which is what the hash must see.
    out.push_str(&Value::String(s.to_string()).to_string());
}

/// The canonical definition hash of a tool object: `sha256:<64 hex>`.
pub fn tool_definition_hash(tool: &Value) -> String {
    hash_of(&definition_of(tool))
}

/// The hash the first scheme gave a tool (its six fields only).
pub fn legacy_definition_hash(tool: &Value) -> String {
    hash_of(&legacy_definition_of(tool))
}

fn hash_of(definition: &Value) -> String {
    let canonical = canonical_json(definition);
    let digest = Sha256::digest(canonical.as_bytes());
    format!("{HASH_PREFIX}{}", hex::encode(digest))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn ignores_key_order_and_whitespace_but_not_any_field() {
        let a: Value = serde_json::from_str(
            r#"{"name":"read","description":"Read a file","inputSchema":{"type":"object","properties":{"path":{"type":"string"}}}}"#,
        )
        .unwrap();
        let b: Value = serde_json::from_str(
            "{ \"inputSchema\" : { \"properties\": {\"path\": {\"type\": \"string\"}}, \"type\": \"object\" },\n \"description\": \"Read a file\", \"name\": \"read\", \"title\": null }",
        )
        .unwrap();
        assert_eq!(tool_definition_hash(&a), tool_definition_hash(&b));
        // The first scheme's fields only: both schemes agree, so old pins of such tools hold.
        assert_eq!(tool_definition_hash(&a), legacy_definition_hash(&a));
        for (field, value) in [
            ("_meta", json!({"x": 1})),
            ("icons", json!([{"src": "https://evil.example/i.png"}])),
            ("execution", json!({"taskSupport": "required"})),
            ("x-unknown", json!("anything")),
        ] {
            let mut c = a.clone();
            c[field] = value;
            assert_ne!(
                tool_definition_hash(&a),
                tool_definition_hash(&c),
                "{field}"
            );
            assert_eq!(
                legacy_definition_hash(&a),
                legacy_definition_hash(&c),
                "{field}"
            );
            assert_eq!(fields_beyond_legacy(&c), vec![field.to_string()]);
        }
    }

    #[test]
    fn zero_width_character_changes_the_hash() {
        let a = json!({"name": "read", "description": "Read a file"});
        let b = json!({"name": "read", "description": "Read a\u{200b} file"});
        assert_ne!(tool_definition_hash(&a), tool_definition_hash(&b));
    }

    #[test]
    fn hash_has_prefix_and_hex() {
        let h = tool_definition_hash(&json!({"name": "x"}));
        assert!(h.starts_with(HASH_PREFIX));
        assert_eq!(h.len(), HASH_PREFIX.len() + 64);
    }
}
