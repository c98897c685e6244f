//! A cheap, borrowing read of just the envelope attributes and payload fields the indexes need.
//!
//! Ingest is the hot path: building a full `serde_json::Value` for every event would cost more
//! than the write itself, so events are read once into this view, which skips everything else.

use std::borrow::Cow;

use chrono::DateTime;
use serde::Deserialize;
use serde_json::value::RawValue;

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
    /// The payload, unparsed; read through [`EventView::data`].
    #[serde(default, borrow, rename = "data")]
    raw_data: Option<&'a RawValue>,
    /// Milliseconds since the epoch, filled by [`EventView::parse`].
    #[serde(skip)]
    pub time_ms: i64,
    /// The indexed payload fields, filled by [`EventView::parse`].
    #[serde(skip)]
    pub data: DataView<'a>,
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

/// The same fields as raw JSON, so that non-string values do not fail the parse.
#[derive(Deserialize)]
struct RawDataView<'a> {
    #[serde(default, borrow)]
    user: Option<&'a RawValue>,
    #[serde(default, borrow)]
    session: Option<&'a RawValue>,
    #[serde(default, borrow)]
    binding: Option<&'a RawValue>,
    #[serde(default, borrow)]
    upstream: Option<&'a RawValue>,
    #[serde(default, borrow)]
    tool: Option<&'a RawValue>,
    #[serde(default, borrow)]
    status: Option<&'a RawValue>,
    #[serde(default, borrow)]
    alert_id: Option<&'a RawValue>,
    #[serde(default, borrow)]
    severity: Option<&'a RawValue>,
}

fn string_of<'a>(raw: Option<&'a RawValue>) -> Option<Cow<'a, str>> {
    let raw = raw?;
    if !raw.get().starts_with('"') {
        return None;
    }
    serde_json::from_str::<Cow<'a, str>>(raw.get()).ok()
}

impl<'a> DataView<'a> {
    fn from_raw(raw: Option<&'a RawValue>) -> Self {
        let Some(raw) = raw.filter(|r| r.get().starts_with('{')) else {
            return Self::default();
        };
        let Ok(v) = serde_json::from_str::<RawDataView<'a>>(raw.get()) else {
            return Self::default();
        };
        Self {
            user: string_of(v.user),
            session: string_of(v.session),
            binding: string_of(v.binding),
            upstream: string_of(v.upstream),
            tool: string_of(v.tool),
            status: string_of(v.status),
            alert_id: string_of(v.alert_id),
            severity: string_of(v.severity),
        }
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
        view.data = DataView::from_raw(view.raw_data);
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
    fn non_object_data_is_tolerated_for_unknown_types() {
        let text = r#"{"specversion":"1.0","id":"1","source":"gw","type":"x.new.v9","time":"2026-11-24T10:00:00Z","sequence":1,"data":{"status":7,"user":["x"]}}"#;
        let v = EventView::parse(text).unwrap();
        assert!(v.state_key().is_none());
        assert!(v.data.user.is_none());
        let text = r#"{"specversion":"1.0","id":"1","source":"gw","type":"x.new.v9","time":"2026-11-24T10:00:00Z","sequence":1,"data":"just text"}"#;
        assert!(EventView::parse(text).is_ok());
    }
}
