//! The gateway's event sink: requests hand events to a bounded channel; one task appends them
//! to the gateway's log in batches (one atomic store write per batch). When the log falls
//! behind, requests wait: an audit event is never dropped.

use tokio::sync::mpsc;

use crate::protocol::EventData;
use crate::store::NewEvent;
use crate::stream::Publisher;

/// Most events appended per batch.
const BATCH: usize = 1024;
/// How long the sink waits for more events before an append (bounds event delay, not requests).
const GATHER: std::time::Duration = std::time::Duration::from_millis(5);

/// Where request handlers put events.
#[derive(Clone, Debug)]
pub struct EventSink {
    tx: mpsc::Sender<EventData>,
}

impl EventSink {
    /// Starts the batching task over `publisher`.
    pub fn start(publisher: Publisher) -> Self {
        let (tx, mut rx) = mpsc::channel::<EventData>(16 * BATCH);
        tokio::spawn(async move {
            let mut batch = Vec::with_capacity(BATCH);
            while rx.recv_many(&mut batch, BATCH).await > 0 {
                // Each append is flushed to disk before it is served; gathering what arrives in
                // the next few milliseconds turns many small flushes into one.
                if batch.len() < BATCH {
                    tokio::time::sleep(GATHER).await;
                    while batch.len() < BATCH {
                        match rx.try_recv() {
                            Ok(event) => batch.push(event),
                            Err(_) => break,
                        }
                    }
                }
                let events: Vec<NewEvent> = batch.drain(..).map(NewEvent::from).collect();
                if let Err(e) = publisher.append(events).await {
                    tracing::error!(error = %e, "cannot append gateway events: the audit log is failing");
                }
            }
        });
        Self { tx }
    }

    /// Records one event (waits when the log is behind).
    pub async fn emit(&self, event: EventData) {
        if self.tx.send(event).await.is_err() {
            tracing::error!("gateway event log stopped; event lost");
        }
    }
}
