//! The two stream mechanisms every role shares, written once: the [`Publisher`] (a producer's
//! event log served over an authenticated WebSocket, with a role-checked command channel) and the
//! [`Subscriber`] (resume, batch ingest, reconnect forever).

mod commands;
mod connection;
pub mod owner;
mod publisher;
mod rewind;
mod subscriber;
pub mod tls;

pub use commands::CommandRequest;
pub use connection::STREAM_PATH;
pub use publisher::{
    HttpRoutes, LiveEvent, PublishError, Publisher, PublisherOptions, PublisherStats,
};
pub use subscriber::{
    CommandSendError, LinkState, SourceSpec, SourceStatus, Subscriber, SubscriberOptions,
};
