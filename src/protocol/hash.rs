//! The canonical definition hash of an MCP tool.
//!
//! Approvals are bound to this hash, so it must not move when a server re-orders JSON keys or
//! re-indents, and must move on any semantic change, including a single invisible character.
//! Only the fields that define the tool count: name, title, description, inputSchema,
//! outputSchema and annotations. Canonical form: objects with keys sorted by their UTF-8 bytes,
//! no insignificant whitespace, strings exactly as given (no Unicode normalization, which would
//! hide look-alike characters), numbers in serde_json's shortest form.

use serde_json::Value;
use sha2::{Digest, Sha256};

/// The tool fields that make up its definition.
pub const DEFINITION_FIELDS: [&str; 6] = [
    "name",
    "title",
    "description",
    "inputSchema",
    "outputSchema",
    "annotations",
];

/// Prefix of every definition hash, naming the algorithm.
pub const HASH_PREFIX: &str = "sha256:";

/// Keeps only the definition fields of a tool object (absent and `null` fields are dropped).
pub fn definition_of(tool: &Value) -> Value {
    let mut out = serde_json::Map::new();
    if let Value::Object(map) = tool {
        for field in DEFINITION_FIELDS {
            if let Some(v) = map.get(field).filter(|v| !v.is_null()) {
                out.insert(field.to_string(), v.clone());
            }
        }
    }
    Value::Object(out)
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
    let canonical = canonical_json(&definition_of(tool));
    let digest = Sha256::digest(canonical.as_bytes());
    format!("{HASH_PREFIX}{}", hex::encode(digest))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn ignores_key_order_whitespace_and_non_definition_fields() {
        let a: Value = serde_json::from_str(
            r#"{"name":"read","description":"Read a file","inputSchema":{"type":"object","properties":{"path":{"type":"string"}}}}"#,
        )
        .unwrap();
        let b: Value = serde_json::from_str(
            "{ \"inputSchema\" : { \"properties\": {\"path\": {\"type\": \"string\"}}, \"type\": \"object\" },\n \"description\": \"Read a file\", \"name\": \"read\", \"_meta\": {\"x\": 1} }",
        )
        .unwrap();
        assert_eq!(tool_definition_hash(&a), tool_definition_hash(&b));
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
