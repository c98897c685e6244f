//! The contract every part agrees on: the event envelope, event kinds, commands, stream control
//! frames, the canonical tool hash and the size limits. See docs/PROTOCOL.md.

pub mod commands;
pub mod envelope;
pub mod events;
pub mod frames;
pub mod hash;
pub mod limits;
pub mod strict_json;

pub use commands::{Command, CommandError, CommandErrorCode};
pub use envelope::{Envelope, EnvelopeError, format_time};
pub use events::EventData;
