//! The wire envelope: one CloudEvents 1.0 JSON event per WebSocket text frame.
//!
//! The envelope keeps `data` as raw JSON so that an event of a type this build does not know is
//! stored, forwarded and shown exactly as it arrived. Typed access goes through
//! [`Envelope::decode`], which never fails on an unknown type.

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::events::EventData;
use super::limits;

/// The only CloudEvents version this contract speaks.
pub const SPEC_VERSION: &str = "1.0";

/// Why a frame could not be read as an envelope.
#[derive(Debug, thiserror::Error)]
pub enum EnvelopeError {
    /// The frame was not JSON or lacked a required attribute.
    #[error("malformed event: {0}")]
    Malformed(#[from] serde_json::Error),
    /// The frame named a CloudEvents version other than 1.0.
    #[error("unsupported specversion {0:?} (this build speaks 1.0)")]
    SpecVersion(String),
    /// `time` was not RFC 3339.
    #[error("bad time {0:?}: expected RFC 3339 such as 2026-11-24T10:00:00.000Z")]
    Time(String),
    /// An attribute broke a limit in [`limits`].
    #[error("{0}")]
    Limit(String),
}

/// A CloudEvents 1.0 JSON event with the `sequence` extension attribute.
///
/// `sequence` is per `source`, starts at 1, strictly increasing and gap-free.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Envelope {
    /// Always "1.0".
    pub specversion: String,
    /// Unique within the source.
    pub id: String,
    /// The producer's source id, e.g. `mcpsoc/gateway/edge-1`.
    pub source: String,
    /// Versioned event type, e.g. `mcpsoc.tool_call.v1`.
    #[serde(rename = "type")]
    pub kind: String,
    /// RFC 3339 UTC with milliseconds.
    pub time: String,
    /// Per-source, gap-free sequence number (CloudEvents sequence extension, as a JSON number).
    pub sequence: u64,
    /// Always `application/json` when set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub datacontenttype: Option<String>,
    /// The event payload; its shape is given by `kind`.
    #[serde(default)]
    pub data: Value,
    /// Tamper-evidence extension: this event's link in its source's hash chain (see
    /// `store::chain`); the producer's store adds it as the last member when it appends.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chainhash: Option<String>,
}

impl Envelope {
    /// Builds an envelope for a typed payload, stamping the given time.
    pub fn new(source: &str, sequence: u64, time: DateTime<Utc>, data: &EventData) -> Self {
        Self {
            specversion: SPEC_VERSION.to_string(),
            id: format!("{sequence}"),
            source: source.to_string(),
            kind: data.type_name().to_string(),
            time: format_time(time),
            sequence,
            datacontenttype: Some("application/json".into()),
            data: data.to_value(),
            chainhash: None,
        }
    }

    /// Parses and validates one frame of text.
    pub fn parse(text: &str) -> Result<Self, EnvelopeError> {
        let env: Envelope = serde_json::from_str(text)?;
        env.validate()?;
        Ok(env)
    }

    /// Checks the attributes every consumer relies on.
    pub fn validate(&self) -> Result<(), EnvelopeError> {
        if self.specversion != SPEC_VERSION {
            return Err(EnvelopeError::SpecVersion(self.specversion.clone()));
        }
        for (name, value) in [
            ("id", &self.id),
            ("source", &self.source),
            ("type", &self.kind),
        ] {
            if value.is_empty() || value.len() > limits::MAX_ATTRIBUTE_BYTES {
                return Err(EnvelopeError::Limit(format!(
                    "attribute {name} must be 1..={} bytes, got {}",
                    limits::MAX_ATTRIBUTE_BYTES,
                    value.len()
                )));
            }
        }
        if self.sequence == 0 {
            return Err(EnvelopeError::Limit("sequence starts at 1".into()));
        }
        self.timestamp()?;
        Ok(())
    }

    /// The event time, parsed.
    pub fn timestamp(&self) -> Result<DateTime<Utc>, EnvelopeError> {
        DateTime::parse_from_rfc3339(&self.time)
            .map(|t| t.with_timezone(&Utc))
            .map_err(|_| EnvelopeError::Time(self.time.clone()))
    }

    /// The typed payload; unknown types and payloads that do not fit their type come back as
    /// [`EventData::Unknown`] with the raw JSON, never as an error.
    pub fn decode(&self) -> EventData {
        EventData::from_parts(&self.kind, &self.data)
    }

    /// Serializes to the one-line JSON text sent in a frame.
    pub fn to_json(&self) -> String {
        // Serializing a struct of strings, numbers and a Value cannot fail.
        serde_json::to_string(self).unwrap_or_default()
    }
}

/// Formats a time as the contract wants it: RFC 3339, UTC, milliseconds, `Z`.
pub fn format_time(time: DateTime<Utc>) -> String {
    time.to_rfc3339_opts(SecondsFormat::Millis, true)
}
