//! Size limits of the contract, and how producers keep to them.
//!
//! Consumers refuse frames over [`MAX_FRAME_BYTES`] (the WebSocket is closed with code 1009);
//! producers never emit one: before an event is stored, [`clamp_value`] shortens strings and
//! arrays, marking every cut, until the event fits.

use serde_json::Value;

/// Largest text frame, either direction, in bytes.
pub const MAX_FRAME_BYTES: usize = 1024 * 1024;
/// Largest command frame a subscriber may send, in bytes.
pub const MAX_COMMAND_FRAME_BYTES: usize = 64 * 1024;
/// Largest `id`, `source` or `type` attribute, in bytes.
pub const MAX_ATTRIBUTE_BYTES: usize = 256;
/// Largest string anywhere inside `data`, in bytes, before a producer truncates it.
pub const MAX_STRING_BYTES: usize = 64 * 1024;
/// Largest array inside `data`, in elements, before a producer truncates it.
pub const MAX_ARRAY_ITEMS: usize = 1_000;
/// Deepest nesting of arrays and objects inside `data`; deeper values are replaced by a marker
/// (serde_json refuses to parse beyond 128 levels, so consumers could not read them).
pub const MAX_DEPTH: usize = 32;
/// Marker appended to a truncated string; the count is of bytes removed.
pub const TRUNCATION_MARKER: &str = "…[truncated ";

/// Shortens every string longer than `max_string` bytes (at a character boundary, with a marker
/// naming how many bytes were cut) and every array longer than [`MAX_ARRAY_ITEMS`]. Returns
/// whether anything was cut.
pub fn clamp_value(value: &mut Value, max_string: usize) -> bool {
    clamp_at(value, max_string, 0)
}

fn clamp_at(value: &mut Value, max_string: usize, depth: usize) -> bool {
    if depth >= MAX_DEPTH && (value.is_array() || value.is_object()) {
        *value = Value::String(format!(
            "{TRUNCATION_MARKER}nesting deeper than {MAX_DEPTH} levels]"
        ));
        return true;
    }
    match value {
        Value::String(s) => clamp_string(s, max_string),
        Value::Array(items) => {
            let mut cut = false;
            if items.len() > MAX_ARRAY_ITEMS {
                let removed = items.len() - MAX_ARRAY_ITEMS;
                items.truncate(MAX_ARRAY_ITEMS);
                items.push(Value::String(format!(
                    "{TRUNCATION_MARKER}{removed} items]"
                )));
                cut = true;
            }
            for item in items.iter_mut() {
                cut |= clamp_at(item, max_string, depth + 1);
            }
            cut
        }
        Value::Object(map) => {
            let mut cut = false;
            for item in map.values_mut() {
                cut |= clamp_at(item, max_string, depth + 1);
            }
            cut
        }
        _ => false,
    }
}

/// Truncates one string to at most `max` bytes plus the marker. Returns whether it was cut.
pub fn clamp_string(s: &mut String, max: usize) -> bool {
    if s.len() <= max {
        return false;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    let removed = s.len() - end;
    s.truncate(end);
    s.push_str(TRUNCATION_MARKER);
    s.push_str(&removed.to_string());
    s.push_str(" bytes]");
    true
}

/// Makes `data` fit a frame: clamps strings at [`MAX_STRING_BYTES`], then at ever smaller sizes
/// while the encoded payload would still exceed `budget` bytes. Returns whether anything was cut.
pub fn fit_payload(data: &mut Value, budget: usize) -> bool {
    let mut cut = clamp_value(data, MAX_STRING_BYTES);
    let mut max = MAX_STRING_BYTES;
    while encoded_len(data) > budget && max > 16 {
        max /= 4;
        cut |= clamp_value(data, max);
    }
    if encoded_len(data) > budget {
        *data =
            serde_json::json!({ "truncated": true, "reason": "event exceeded the frame limit" });
        cut = true;
    }
    cut
}

fn encoded_len(value: &Value) -> usize {
    serde_json::to_vec(value)
        .map(|v| v.len())
        .unwrap_or(usize::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clamps_long_strings_at_char_boundary_with_marker() {
        let mut s = "é".repeat(10); // 20 bytes
        assert!(clamp_string(&mut s, 5));
        assert!(s.starts_with("éé"));
        assert!(s.ends_with("…[truncated 16 bytes]"));
        let mut short = "ok".to_string();
        assert!(!clamp_string(&mut short, 5));
        assert_eq!(short, "ok");
    }

    #[test]
    fn deep_nesting_is_cut_with_a_marker() {
        let mut v = serde_json::json!("leaf");
        for _ in 0..200 {
            v = serde_json::json!({ "a": v });
        }
        assert!(clamp_value(&mut v, MAX_STRING_BYTES));
        let text = serde_json::to_string(&v).unwrap();
        assert!(serde_json::from_str::<Value>(&text).is_ok());
        assert!(text.contains("nesting deeper than"));
    }

    #[test]
    fn fit_payload_brings_huge_data_under_budget() {
        let mut v =
            serde_json::json!({"a": "x".repeat(3_000_000), "b": vec!["y".repeat(100); 5000]});
        assert!(fit_payload(&mut v, MAX_FRAME_BYTES - 1024));
        assert!(encoded_len(&v) <= MAX_FRAME_BYTES - 1024);
        assert!(v["a"].as_str().unwrap_or("").contains(TRUNCATION_MARKER));
    }
}
