//! JSON read the one way: a document with a repeated object key is refused.
//!
//! `serde_json` keeps the last of two equal keys, while other parsers keep the first, so a body
//! such as `{"name":"echo","name":"delete_all"}` can mean one thing to the gateway and another
//! to the server or the client behind it. Everything the gateway decides on (client requests,
//! listings, stream events) is read with [`parse`], which fails on the first repeated key, so
//! what was checked is exactly what is sent on.

use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};

/// Why a text is not unambiguous JSON.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct StrictError(pub String);

impl StrictError {
    /// Whether the text was JSON but repeated a key (rather than not being JSON at all).
    pub fn is_duplicate_key(&self) -> bool {
        self.0.starts_with(DUPLICATE)
    }
}

const DUPLICATE: &str = "duplicate object key";

/// Nesting deeper than this is refused (serde_json's own limit is 128).
const MAX_DEPTH: usize = 128;

/// Parses JSON text, refusing any object that repeats a key.
pub fn parse(bytes: &[u8]) -> Result<Value, StrictError> {
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let value = Strict { depth: 0 }
        .deserialize(&mut de)
        .map_err(|e| StrictError(e.to_string()))?;
    de.end().map_err(|e| StrictError(e.to_string()))?;
    Ok(value)
}

/// Parses JSON text (a `&str`), refusing repeated keys.
pub fn parse_str(text: &str) -> Result<Value, StrictError> {
    parse(text.as_bytes())
}

#[derive(Clone, Copy)]
struct Strict {
    depth: usize,
}

impl<'de> DeserializeSeed<'de> for Strict {
    type Value = Value;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Strict {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        Ok(serde_json::Number::from_f64(v).map_or(Value::Null, Value::Number))
    }

    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_string()))
    }

    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let inner = self.deeper::<A::Error>()?;
        let mut items = Vec::new();
        while let Some(item) = seq.next_element_seed(inner)? {
            items.push(item);
        }
        Ok(Value::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let inner = self.deeper::<A::Error>()?;
        let mut out = Map::new();
        while let Some(key) = map.next_key::<String>()? {
            if out.contains_key(&key) {
                let shown: String = key.chars().take(64).collect();
                return Err(de::Error::custom(format!("{DUPLICATE} {shown:?}")));
            }
            let value = map.next_value_seed(inner)?;
            out.insert(key, value);
        }
        Ok(Value::Object(out))
    }
}

impl Strict {
    fn deeper<E: de::Error>(self) -> Result<Strict, E> {
        if self.depth >= MAX_DEPTH {
            return Err(E::custom("JSON nested too deeply"));
        }
        Ok(Strict {
            depth: self.depth + 1,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_values_as_serde_json_without_repeats() {
        for text in [
            r#"{"a":1,"b":[true,null,"x",{"c":-2.5}],"d":{}}"#,
            r#"[1,2,{"a":{"b":{"c":18446744073709551615}}}]"#,
            r#""just a string""#,
        ] {
            let ours = parse(text.as_bytes()).unwrap();
            let theirs: Value = serde_json::from_str(text).unwrap();
            assert_eq!(ours, theirs, "{text}");
        }
    }

    #[test]
    fn a_repeated_key_anywhere_is_refused() {
        for text in [
            r#"{"name":"echo","name":"delete_all"}"#,
            r#"{"params":{"arguments":{"path":"a","path":"b"}}}"#,
            r#"[{"ok":1},{"x":1,"y":2,"x":3}]"#,
            // An escape spelling the same key is the same key.
            r#"{"name":"a","n\u0061me":"b"}"#,
        ] {
            let e = parse(text.as_bytes()).unwrap_err();
            assert!(e.is_duplicate_key(), "{text}: {e}");
        }
        // Equal keys in different objects are fine.
        assert!(parse(br#"{"a":{"k":1},"b":{"k":2}}"#).is_ok());
    }

    #[test]
    fn trailing_text_and_deep_nesting_are_refused() {
        assert!(parse(b"{} {}").is_err());
        assert!(!parse(b"{oops").unwrap_err().is_duplicate_key());
        let deep = "[".repeat(200) + &"]".repeat(200);
        assert!(parse(deep.as_bytes()).is_err());
    }
}
