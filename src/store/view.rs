//! A cheap, borrowing read of just the envelope attributes and payload fields the indexes need.
//!
//! Ingest is the hot path: building a full `serde_json::Value` for every event would cost more
//! than the write itself, so events are read once into this view, which skips everything else.

use std::borrow::Cow;

use chrono::DateTime;
use serde::Deserialize;
use serde::de::{self, IgnoredAny, Visitor};

use crate::protocol::{envelope::SPEC_VERSION, events, limits};

/// Why an event could not be stored.
#[derive(Debug, thiserror::Error)]
pub enum ViewError {
    /// Not JSON or missing a required attribute.
    #[error("malformed event: {0}")]
    Json(#[from] serde_json::Error),
    /// An attribute has a wrong value.
    #[error("invalid event: {0}")]
    Invalid(String),
}

/// The attributes of an event that the store needs.
#[derive(Debug, Deserialize)]
pub struct EventView<'a> {
    /// CloudEvents version.
    #[serde(borrow)]
    pub specversion: Cow<'a, str>,
    /// Event id.
    #[serde(borrow)]
    pub id: Cow<'a, str>,
    /// Source id.
    #[serde(borrow)]
    pub source: Cow<'a, str>,
    /// Type name.
    #[serde(rename = "type", borrow)]
    pub kind: Cow<'a, str>,
    /// RFC 3339 time.
    #[serde(borrow)]
    pub time: Cow<'a, str>,
    /// Sequence.
    pub sequence: u64,
    /// The indexed payload fields, read in the same pass (everything else is skipped).
    #[serde(default, borrow)]
    pub data: DataView<'a>,
    /// Milliseconds since the epoch, filled by [`EventView::parse`].
    #[serde(skip)]
    pub time_ms: i64,
}

/// Payload fields used by indexes and state. A field that is absent or not a string is `None`,
/// so a payload of any shape (an unknown type's) is still stored.
#[derive(Debug, Default)]
pub struct DataView<'a> {
    /// Tool call / session user.
    pub user: Option<Cow<'a, str>>,
    /// Tool call session binding.
    pub session: Option<Cow<'a, str>>,
    /// Session binding key.
    pub binding: Option<Cow<'a, str>>,
    /// Tool change upstream.
    pub upstream: Option<Cow<'a, str>>,
    /// Tool change tool.
    pub tool: Option<Cow<'a, str>>,
    /// Tool change or alert status.
    pub status: Option<Cow<'a, str>>,
    /// Alert id.
    pub alert_id: Option<Cow<'a, str>>,
    /// Alert severity.
    pub severity: Option<Cow<'a, str>>,
}

/// A payload key: one of the indexed fields or another one.
#[derive(Deserialize)]
#[serde(rename_all = "snake_case")]
enum Field {
    User,
    Session,
    Binding,
    Upstream,
    Tool,
    Status,
    AlertId,
    Severity,
    #[serde(other)]
    Other,
}

/// A payload field that is a string, or anything else (read past, `None`).
struct MaybeStr<'a>(Option<Cow<'a, str>>);

impl<'de: 'a, 'a> Deserialize<'de> for MaybeStr<'a> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visit<'a>(std::marker::PhantomData<&'a ()>);
        impl<'de: 'a, 'a> Visitor<'de> for Visit<'a> {
            type Value = MaybeStr<'a>;

            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("any JSON value")
            }

            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(MaybeStr(Some(Cow::Borrowed(v))))
            }

            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(MaybeStr(Some(Cow::Owned(v.to_string()))))
            }

            fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
                Ok(MaybeStr(Some(Cow::Owned(v))))
            }

            fn visit_bool<E: de::Error>(self, _: bool) -> Result<Self::Value, E> {
                Ok(MaybeStr(None))
            }

            fn visit_i64<E: de::Error>(self, _: i64) -> Result<Self::Value, E> {
                Ok(MaybeStr(None))
            }

            fn visit_u64<E: de::Error>(self, _: u64) -> Result<Self::Value, E> {
                Ok(MaybeStr(None))
            }

            fn visit_f64<E: de::Error>(self, _: f64) -> Result<Self::Value, E> {
                Ok(MaybeStr(None))
            }

            fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
                Ok(MaybeStr(None))
            }

            fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                while seq.next_element::<IgnoredAny>()?.is_some() {}
                Ok(MaybeStr(None))
            }

            fn visit_map<A: de::MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
                Ok(MaybeStr(None))
            }
        }
        d.deserialize_any(Visit(std::marker::PhantomData))
    }
}

/// Reads the indexed fields of an object payload in one pass; any other payload (an unknown
/// type's array, string, number) reads as no fields.
impl<'de: 'a, 'a> Deserialize<'de> for DataView<'a> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visit<'a>(std::marker::PhantomData<&'a ()>);
        impl<'de: 'a, 'a> Visitor<'de> for Visit<'a> {
            type Value = DataView<'a>;

            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("any JSON value")
            }

            fn visit_map<A: de::MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut v = DataView::default();
                while let Some(field) = map.next_key::<Field>()? {
                    let slot = match field {
                        Field::User => &mut v.user,
                        Field::Session => &mut v.session,
                        Field::Binding => &mut v.binding,
                        Field::Upstream => &mut v.upstream,
                        Field::Tool => &mut v.tool,
                        Field::Status => &mut v.status,
                        Field::AlertId => &mut v.alert_id,
                        Field::Severity => &mut v.severity,
                        Field::Other => {
                            map.next_value::<IgnoredAny>()?;
                            continue;
                        }
                    };
                    // A repeated field: the last one counts, as in the envelope's own parse.
                    *slot = map.next_value::<MaybeStr<'a>>()?.0;
                }
                Ok(v)
            }

            fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                while seq.next_element::<IgnoredAny>()?.is_some() {}
                Ok(DataView::default())
            }

            fn visit_borrowed_str<E: de::Error>(self, _: &'de str) -> Result<Self::Value, E> {
                Ok(DataView::default())
            }

            fn visit_str<E: de::Error>(self, _: &str) -> Result<Self::Value, E> {
                Ok(DataView::default())
            }

            fn visit_bool<E: de::Error>(self, _: bool) -> Result<Self::Value, E> {
                Ok(DataView::default())
            }

            fn visit_i64<E: de::Error>(self, _: i64) -> Result<Self::Value, E> {
                Ok(DataView::default())
            }

            fn visit_u64<E: de::Error>(self, _: u64) -> Result<Self::Value, E> {
                Ok(DataView::default())
            }

            fn visit_f64<E: de::Error>(self, _: f64) -> Result<Self::Value, E> {
                Ok(DataView::default())
            }

            fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
                Ok(DataView::default())
            }
        }
        d.deserialize_any(Visit(std::marker::PhantomData))
    }
}

/// Kinds of current-state records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StateKind {
    /// Session bindings, keyed by binding.
    Session = 1,
    /// Tool definition changes, keyed by `upstream/tool`.
    ToolChange = 2,
    /// Alerts, keyed by alert id.
    Alert = 3,
}

impl<'a> EventView<'a> {
    /// Parses and validates the attributes of one event.
    pub fn parse(text: &'a str) -> Result<Self, ViewError> {
        if text.len() > limits::MAX_FRAME_BYTES {
            return Err(ViewError::Invalid(format!(
                "event of {} bytes exceeds the {} byte frame limit",
                text.len(),
                limits::MAX_FRAME_BYTES
            )));
        }
        let mut view: EventView<'a> = serde_json::from_str(text)?;
        if view.specversion != SPEC_VERSION {
            return Err(ViewError::Invalid(format!(
                "unsupported specversion {:?}",
                view.specversion
            )));
        }
        for (name, value) in [
            ("id", &view.id),
            ("source", &view.source),
            ("type", &view.kind),
        ] {
            if value.is_empty() || value.len() > limits::MAX_ATTRIBUTE_BYTES {
                return Err(ViewError::Invalid(format!(
                    "attribute {name} must be 1..={} bytes",
                    limits::MAX_ATTRIBUTE_BYTES
                )));
            }
        }
        if view.sequence == 0 {
            return Err(ViewError::Invalid("sequence starts at 1".into()));
        }
        view.time_ms = DateTime::parse_from_rfc3339(&view.time)
            .map_err(|_| ViewError::Invalid(format!("bad time {:?}", view.time)))?
            .timestamp_millis();
        Ok(view)
    }

    /// The state record this event updates, if any: kind and entity key.
    pub fn state_key(&self) -> Option<(StateKind, String)> {
        let data = &self.data;
        match self.kind.as_ref() {
            events::SESSION => Some((StateKind::Session, data.binding.as_deref()?.to_string())),
            events::TOOL_CHANGE => Some((
                StateKind::ToolChange,
                change_key(data.upstream.as_deref()?, data.tool.as_deref()?),
            )),
            events::ALERT => Some((StateKind::Alert, data.alert_id.as_deref()?.to_string())),
            _ => None,
        }
    }

    /// Whether this is a tool call event (indexed by user and session).
    pub fn is_tool_call(&self) -> bool {
        self.kind == events::TOOL_CALL
    }

    /// Status byte for state-derived indexes (alert status rank; 1 for a pending change).
    pub fn status_rank(&self) -> u8 {
        let status = self.data.status.as_deref().unwrap_or("");
        match (self.kind.as_ref(), status) {
            (events::ALERT, "new") => 0,
            (events::ALERT, "acknowledged") => 1,
            (events::ALERT, "resolved") => 2,
            (events::TOOL_CHANGE, "pending") => 1,
            _ => 0xff,
        }
    }

    /// Severity rank of an alert (critical highest).
    pub fn severity_rank(&self) -> u8 {
        match self.data.severity.as_deref().unwrap_or("") {
            "critical" => 4,
            "high" => 3,
            "medium" => 2,
            "low" => 1,
            _ => 0,
        }
    }
}

/// The entity key of a tool change: `<len(upstream)>:upstream/tool`.
pub fn change_key(upstream: &str, tool: &str) -> String {
    // Length-prefixed so that `a/b` + `c` and `a` + `b/c` never share a record.
    format!("{}:{upstream}/{tool}", upstream.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_index_fields_and_skips_the_rest() {
        let text = r#"{"specversion":"1.0","id":"1","source":"gw","type":"mcpsoc.tool_call.v1","time":"2026-11-24T10:00:00.000Z","sequence":1,"data":{"user":"alice","session":"alice:s1","arguments":{"deep":[1,2,{"x":"y"}]},"tool":"read"}}"#;
        let v = EventView::parse(text).unwrap();
        assert!(v.is_tool_call());
        let d = &v.data;
        assert_eq!(d.user.as_deref(), Some("alice"));
        assert_eq!(d.session.as_deref(), Some("alice:s1"));
        assert_eq!(v.time_ms, 1_795_514_400_000);
    }

    #[test]
    fn refuses_bad_attributes() {
        let bad_version = r#"{"specversion":"0.3","id":"1","source":"gw","type":"t","time":"2026-11-24T10:00:00Z","sequence":1}"#;
        assert!(EventView::parse(bad_version).is_err());
        let bad_time = r#"{"specversion":"1.0","id":"1","source":"gw","type":"t","time":"yesterday","sequence":1}"#;
        assert!(EventView::parse(bad_time).is_err());
        let zero_seq = r#"{"specversion":"1.0","id":"1","source":"gw","type":"t","time":"2026-11-24T10:00:00Z","sequence":0}"#;
        assert!(EventView::parse(zero_seq).is_err());
        assert!(EventView::parse("{not json").is_err());
    }

    #[test]
    fn indexed_fields_are_read_in_one_pass_whatever_else_the_payload_holds() {
        let text = r#"{"data":{"arguments":{"user":"nested","session":["x"]},"user":"al\"ice","session":{"x":[1,{"y":2}]},"tool":null,"status":7,"upstream":"a","upstream":"b","binding":"k\u00e9y"},"specversion":"1.0","id":"1","source":"gw","type":"mcpsoc.tool_call.v1","time":"2026-11-24T10:00:00Z","sequence":1}"#;
        let v = EventView::parse(text).unwrap();
        let d = &v.data;
        assert_eq!(d.user.as_deref(), Some("al\"ice"));
        assert_eq!(d.session, None);
        assert_eq!(d.tool, None);
        assert_eq!(d.status, None);
        assert_eq!(
            d.upstream.as_deref(),
            Some("b"),
            "the last of a repeated field"
        );
        assert_eq!(d.binding.as_deref(), Some("k\u{e9}y"));
        let null = r#"{"specversion":"1.0","id":"1","source":"gw","type":"t","time":"2026-11-24T10:00:00Z","sequence":1,"data":null}"#;
        assert!(EventView::parse(null).unwrap().data.user.is_none());
        let bad = r#"{"specversion":"1.0","id":"1","source":"gw","type":"t","time":"2026-11-24T10:00:00Z","sequence":1,"data":{"user":"a",}}"#;
        assert!(
            EventView::parse(bad).is_err(),
            "malformed JSON is still refused"
        );
    }

    #[test]
    fn non_object_data_is_tolerated_for_unknown_types() {
        let text = r#"{"specversion":"1.0","id":"1","source":"gw","type":"x.new.v9","time":"2026-11-24T10:00:00Z","sequence":1,"data":{"status":7,"user":["x"]}}"#;
        let v = EventView::parse(text).unwrap();
        assert!(v.state_key().is_none());
        assert!(v.data.user.is_none());
        let text = r#"{"specversion":"1.0","id":"1","source":"gw","type":"x.new.v9","time":"2026-11-24T10:00:00Z","sequence":1,"data":"just text"}"#;
        assert!(EventView::parse(text).is_ok());
    }
}
