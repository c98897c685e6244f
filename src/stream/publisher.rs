//! The publisher: a producer's append-only event log served over an authenticated WebSocket.
//!
//! Appends go to the store (which assigns gap-free sequences) and, still under the store's writer
//! lock, to a bounded broadcast channel for live fan-out. A connection subscribes to that channel
//! *before* it replays from the store, so every event is either replayed or seen live; events seen
//! twice at the seam are dropped by sequence, and an event missing from the channel (lag) is read
//! back from the store. The producer never waits for a subscriber.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tokio::net::TcpListener;
use tokio::sync::{broadcast, mpsc};
use tokio_tungstenite::tungstenite::Utf8Bytes;
use tracing::{info, warn};

use super::commands::CommandRequest;
use super::connection;
use crate::auth::TokenTable;
use crate::protocol::EventData;
use crate::protocol::events::Heartbeat;
use crate::store::{NewEvent, Store, StoreError};

/// Publisher errors.
#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    /// The store refused the append.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The listener could not start.
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        /// The address.
        addr: String,
        /// Why.
        source: std::io::Error,
    },
    /// Plain ws asked for on a non-loopback address.
    #[error(
        "refusing plain ws on non-loopback address {0}: configure tls_cert and tls_key, or set allow_plain_non_loopback = true"
    )]
    PlainNotLoopback(SocketAddr),
    /// TLS could not be set up.
    #[error(transparent)]
    Tls(#[from] super::tls::TlsError),
    /// A blocking task failed.
    #[error("internal task failed: {0}")]
    Join(String),
}

/// How a publisher serves.
#[derive(Clone)]
pub struct PublisherOptions {
    /// This producer's source id.
    pub source: String,
    /// Who may subscribe.
    pub tokens: TokenTable,
    /// Live events buffered per subscriber before it is disconnected as too slow.
    pub live_buffer: usize,
    /// How long one send may block before the subscriber is disconnected as too slow.
    pub send_timeout: Duration,
    /// Interval of heartbeat events; `None` for none.
    pub heartbeat: Option<Duration>,
    /// PEM certificate and key for wss.
    pub tls: Option<(PathBuf, PathBuf)>,
    /// Allow plain ws on a non-loopback address.
    pub allow_plain_non_loopback: bool,
    /// Replay page size (events read from the store per step).
    pub replay_page: usize,
    /// Plain HTTP GET routes served on the same listener (e.g. `/metrics`): path to
    /// (content type, body), or `None` for 404.
    pub http_routes: Option<HttpRoutes>,
}

/// Plain GET routes beside the stream: path to (content type, body).
pub type HttpRoutes = std::sync::Arc<dyn Fn(&str) -> Option<(String, String)> + Send + Sync>;

impl PublisherOptions {
    /// Options with defaults for everything but the source and tokens.
    pub fn new(source: impl Into<String>, tokens: TokenTable) -> Self {
        Self {
            source: source.into(),
            tokens,
            live_buffer: 8192,
            send_timeout: Duration::from_secs(10),
            heartbeat: Some(Duration::from_secs(15)),
            tls: None,
            allow_plain_non_loopback: false,
            replay_page: 1024,
            http_routes: None,
        }
    }
}

/// One live event on the fan-out channel.
#[derive(Debug, Clone)]
pub struct LiveEvent {
    /// Its sequence.
    pub sequence: u64,
    /// The frame text.
    pub frame: Utf8Bytes,
}

/// Counters a publisher keeps (for tests, metrics and heartbeats).
#[derive(Debug, Default)]
pub struct PublisherStats {
    /// Connected, authenticated subscribers.
    pub connected: AtomicU64,
    /// Connections refused at the upgrade (bad token, wrong path).
    pub refused: AtomicU64,
    /// Subscribers disconnected for being too slow.
    pub slow_disconnects: AtomicU64,
    /// Frames from subscribers that could not be read.
    pub malformed_frames: AtomicU64,
}

pub(super) struct Shared {
    pub store: Store,
    pub options: PublisherOptions,
    pub live: broadcast::Sender<LiveEvent>,
    pub owner: Option<mpsc::Sender<CommandRequest>>,
    pub stats: PublisherStats,
    pub started: Instant,
    /// Highest sequence known to be on disk: nothing above it is served, so a subscriber never
    /// holds an event the producer could lose in a crash (and then re-issue differently).
    pub durable: AtomicU64,
}

/// A producer's publisher; cheap to clone.
#[derive(Clone)]
pub struct Publisher {
    pub(super) shared: Arc<Shared>,
}

impl Publisher {
    /// A publisher over `store`. If `with_owner`, commands that pass the role and state checks
    /// are handed to the returned receiver, whose owner must answer each one; without an owner,
    /// every command is refused as unsupported.
    pub fn new(
        store: Store,
        options: PublisherOptions,
        with_owner: bool,
    ) -> (Self, Option<mpsc::Receiver<CommandRequest>>) {
        let (live, _) = broadcast::channel(options.live_buffer.max(16));
        let (owner, inbox) = if with_owner {
            let (tx, rx) = mpsc::channel(256);
            (Some(tx), Some(rx))
        } else {
            (None, None)
        };
        let durable = AtomicU64::new(store.last_sequence(&options.source));
        let shared = Shared {
            durable,
            store,
            options,
            live,
            owner,
            stats: PublisherStats::default(),
            started: Instant::now(),
        };
        (
            Self {
                shared: Arc::new(shared),
            },
            inbox,
        )
    }

    /// This publisher's source id.
    pub fn source(&self) -> &str {
        &self.shared.options.source
    }

    /// The store behind it.
    pub fn store(&self) -> &Store {
        &self.shared.store
    }

    /// Counters.
    pub fn stats(&self) -> &PublisherStats {
        &self.shared.stats
    }

    /// Highest sequence appended.
    pub fn head(&self) -> u64 {
        self.shared.store.last_sequence(&self.shared.options.source)
    }

    /// Appends events (blocking; use [`Publisher::append`] on the runtime) and fans them out.
    pub fn append_blocking(
        &self,
        events: Vec<NewEvent>,
        extra: &[(&str, Vec<u8>)],
    ) -> Result<Vec<u64>, PublishError> {
        let live = &self.shared.live;
        let store = &self.shared.store;
        let mut flushed = Ok(());
        let appended =
            self.shared
                .store
                .append(&self.shared.options.source, events, extra, |stored| {
                    // On disk before anyone is sent it (see `Shared::durable`).
                    if let Err(e) = store.flush() {
                        flushed = Err(e);
                        return;
                    }
                    if let Some(last) = stored.last() {
                        self.shared
                            .durable
                            .fetch_max(last.sequence, Ordering::SeqCst);
                    }
                    for event in stored {
                        // No receiver is fine: nobody is live right now.
                        let _ = live.send(LiveEvent {
                            sequence: event.sequence,
                            frame: Utf8Bytes::from(&*event.json),
                        });
                    }
                })?;
        flushed?;
        Ok(appended.into_iter().map(|a| a.sequence).collect())
    }

    /// Appends events and fans them out; returns their sequences.
    pub async fn append(&self, events: Vec<NewEvent>) -> Result<Vec<u64>, PublishError> {
        let this = self.clone();
        tokio::task::spawn_blocking(move || this.append_blocking(events, &[]))
            .await
            .map_err(|e| PublishError::Join(e.to_string()))?
    }

    /// Appends one payload now.
    pub async fn publish(&self, data: EventData) -> Result<u64, PublishError> {
        let seqs = self.append(vec![NewEvent::from(data)]).await?;
        Ok(seqs.first().copied().unwrap_or(0))
    }

    /// Binds the listener (refusing plain ws off loopback unless allowed) and serves in the
    /// background. Returns the bound address.
    pub async fn serve(
        &self,
        addr: &str,
    ) -> Result<(SocketAddr, tokio::task::JoinHandle<()>), PublishError> {
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|source| PublishError::Listen {
                addr: addr.to_string(),
                source,
            })?;
        let local = listener
            .local_addr()
            .map_err(|source| PublishError::Listen {
                addr: addr.to_string(),
                source,
            })?;
        let tls = match &self.shared.options.tls {
            Some((cert, key)) => Some(super::tls::server_acceptor(cert, key)?),
            None if !local.ip().is_loopback() && !self.shared.options.allow_plain_non_loopback => {
                return Err(PublishError::PlainNotLoopback(local));
            }
            None => None,
        };
        info!(source = %self.source(), %local, tls = tls.is_some(), "publisher listening");
        if self.shared.options.tokens.is_empty() {
            warn!("no stream subscribers configured: every connection will be refused");
        }
        let this = self.clone();
        let accept = tokio::spawn(async move {
            loop {
                let (tcp, peer) = match listener.accept().await {
                    Ok(pair) => pair,
                    Err(e) => {
                        warn!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let _ = tcp.set_nodelay(true);
                let shared = this.shared.clone();
                let tls = tls.clone();
                tokio::spawn(async move {
                    let result = match tls {
                        Some(acceptor) => match acceptor.accept(tcp).await {
                            Ok(stream) => connection::serve(shared, stream, peer).await,
                            Err(e) => Err(format!("TLS handshake failed: {e}")),
                        },
                        None => connection::serve(shared, tcp, peer).await,
                    };
                    if let Err(reason) = result {
                        info!(%peer, %reason, "stream connection ended");
                    }
                });
            }
        });
        if let Some(every) = self.shared.options.heartbeat {
            let this = self.clone();
            tokio::spawn(async move { this.heartbeats(every).await });
        }
        Ok((local, accept))
    }

    async fn heartbeats(self, every: Duration) {
        let mut tick = tokio::time::interval(every);
        tick.tick().await;
        loop {
            tick.tick().await;
            let beat = Heartbeat {
                uptime_secs: self.shared.started.elapsed().as_secs(),
                subscribers: self.shared.stats.connected.load(Ordering::Relaxed),
            };
            if let Err(e) = self.publish(EventData::Heartbeat(beat)).await {
                warn!(error = %e, "heartbeat append failed");
            }
        }
    }
}
