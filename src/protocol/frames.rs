//! Control frames of the stream: everything on the socket that is not an event.
//!
//! Server to subscriber: events (CloudEvents, recognised by `specversion`) and control frames
//! (recognised by `frame`: `hello`, `reply`, `error`). Subscriber to server: `subscribe` and
//! `command`.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::commands::{Command, CommandError};
use super::envelope::{Envelope, EnvelopeError};
use crate::auth::Role;

/// Name and version of the stream protocol, sent in the hello.
pub const STREAM_PROTOCOL: &str = "mcpsoc-stream/1";

/// The first frame a publisher sends after a successful upgrade.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Hello {
    /// Stream protocol name and version.
    pub protocol: String,
    /// The publisher's source id.
    pub source: String,
    /// Highest sequence stored at the publisher now (0 when empty).
    pub head: u64,
    /// Lowest sequence still stored at the publisher (older ones were pruned).
    pub first: u64,
    /// Role granted to this subscriber's token.
    pub role: Role,
    /// Subscriber name from the token table.
    pub subscriber: String,
    /// Largest frame the publisher accepts or sends.
    pub max_frame_bytes: usize,
}

/// The answer to one command, by its id.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Reply {
    /// The command id this answers.
    pub id: String,
    /// Whether it was carried out.
    pub ok: bool,
    /// Result detail when ok.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<String>,
    /// Why not, when not ok.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<CommandError>,
}

/// A control frame from the publisher.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "frame", rename_all = "snake_case")]
pub enum ServerControl {
    /// Sent once, first.
    Hello(Hello),
    /// Answer to a command.
    Reply(Reply),
    /// A complaint about a frame the subscriber sent; the connection stays up.
    Error {
        /// What was wrong.
        message: String,
    },
}

/// A frame from the subscriber.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "frame", rename_all = "snake_case")]
pub enum ClientFrame {
    /// Start streaming everything after `after` (0 for everything).
    Subscribe {
        /// Last sequence the subscriber already has.
        after: u64,
    },
    /// Ask the producer to do something; answered by a `reply` with the same id.
    Command {
        /// Caller-chosen id, echoed in the reply.
        id: String,
        /// What to do.
        command: Command,
    },
}

/// Anything a publisher may send.
#[derive(Debug, Clone, PartialEq)]
pub enum ServerFrame {
    /// An event.
    Event(Envelope),
    /// A control frame.
    Control(ServerControl),
}

/// Why a server frame could not be read.
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    /// Not JSON, or not an object.
    #[error("malformed frame: {0}")]
    Json(#[from] serde_json::Error),
    /// Looked like an event but was not a valid one.
    #[error(transparent)]
    Event(#[from] EnvelopeError),
    /// Neither an event nor a known control frame.
    #[error("unknown frame: neither an event (specversion) nor a control frame (frame)")]
    Unknown,
}

impl ServerFrame {
    /// Classifies and parses one text frame from a publisher.
    pub fn parse(text: &str) -> Result<Self, FrameError> {
        // Events are by far the most frequent frame: try the envelope first.
        let value: Value = serde_json::from_str(text)?;
        if value.get("specversion").is_some() {
            let env: Envelope = serde_json::from_value(value).map_err(EnvelopeError::from)?;
            env.validate()?;
            return Ok(Self::Event(env));
        }
        if value.get("frame").is_some() {
            return Ok(Self::Control(serde_json::from_value(value)?));
        }
        Err(FrameError::Unknown)
    }
}

impl ServerControl {
    /// The frame's JSON text.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }
}

impl ClientFrame {
    /// The frame's JSON text.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }
}
