//! The subscriber: connect, authenticate, resume right after the last stored sequence of the
//! source, ingest in batches, reconnect with exponential backoff and jitter forever, and report
//! its state to whoever runs it.

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use futures_util::{FutureExt, SinkExt, StreamExt};
use rand::Rng;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};
use tracing::{info, warn};

use crate::auth::Role;
use crate::protocol::frames::{ClientFrame, Hello, Reply, STREAM_PROTOCOL, ServerControl};
use crate::protocol::{Command, limits};
use crate::store::{IngestReport, Store, StoreError, view::EventView};

/// Where a source link stands, for status bars.
#[derive(Debug, Clone, PartialEq)]
pub enum LinkState {
    /// Opening the connection.
    Connecting,
    /// Receiving stored history up to the head announced in the hello.
    Replaying {
        /// The publisher's head at connect time.
        head: u64,
    },
    /// Caught up and receiving live events.
    Live,
    /// Waiting before the next attempt.
    Reconnecting {
        /// When the next attempt starts.
        at: Instant,
        /// What went wrong.
        error: String,
    },
    /// The publisher refused us (bad token, wrong path); retried like any failure.
    Refused {
        /// The publisher's reason.
        reason: String,
        /// When the next attempt starts.
        at: Instant,
    },
}

impl LinkState {
    /// A short label: `connected`, `replaying`, `reconnecting in 4 s`, `refused: ...`.
    pub fn label(&self) -> String {
        let secs = |at: &Instant| {
            at.saturating_duration_since(Instant::now())
                .as_secs_f64()
                .ceil() as u64
        };
        match self {
            Self::Connecting => "connecting".into(),
            Self::Replaying { .. } => "replaying".into(),
            Self::Live => "connected".into(),
            Self::Reconnecting { at, error } => format!("reconnecting in {} s ({error})", secs(at)),
            Self::Refused { reason, .. } => format!("refused: {reason}"),
        }
    }
}

/// Everything a subscriber reports.
#[derive(Debug, Clone, PartialEq)]
pub struct SourceStatus {
    /// Configured display name.
    pub name: String,
    /// Link state.
    pub state: LinkState,
    /// Source id from the hello.
    pub source: Option<String>,
    /// Role the publisher granted.
    pub role: Option<Role>,
    /// Publisher head as last known.
    pub head: u64,
    /// Last sequence stored locally.
    pub stored: u64,
    /// Events stored by this subscriber since it started.
    pub ingested: u64,
    /// When the last event arrived.
    pub last_event: Option<Instant>,
}

/// Where and how to connect.
#[derive(Debug, Clone)]
pub struct SourceSpec {
    /// Display name.
    pub name: String,
    /// `ws://host:port/stream` or `wss://...`.
    pub url: String,
    /// The bearer token (kept in memory only, never logged).
    pub token: String,
    /// Extra CA for wss.
    pub ca_file: Option<PathBuf>,
    /// SHA-256 of the publisher certificate's public key (SPKI), checked on top of the chain.
    pub pin_sha256: Option<[u8; 32]>,
}

/// Tuning.
#[derive(Debug, Clone)]
pub struct SubscriberOptions {
    /// Most events per store batch.
    pub batch_max: usize,
    /// First reconnect delay.
    pub backoff_min: Duration,
    /// Longest reconnect delay.
    pub backoff_max: Duration,
    /// Connect and hello timeout.
    pub connect_timeout: Duration,
}

impl Default for SubscriberOptions {
    fn default() -> Self {
        Self {
            batch_max: 1024,
            backoff_min: Duration::from_millis(250),
            backoff_max: Duration::from_secs(30),
            connect_timeout: Duration::from_secs(10),
        }
    }
}

/// Why a command got no reply.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum CommandSendError {
    /// Not connected now.
    #[error("not connected to {0}; the command was not sent")]
    NotConnected(String),
    /// The connection dropped before the reply; the command may or may not have been carried out.
    #[error("connection to {0} lost before the reply; check the source's command events")]
    Lost(String),
    /// The subscriber stopped.
    #[error("subscriber stopped")]
    Stopped,
}

type Outgoing = (Command, oneshot::Sender<Result<Reply, CommandSendError>>);

/// A running subscriber.
pub struct Subscriber {
    status: watch::Receiver<SourceStatus>,
    commands: mpsc::Sender<Outgoing>,
    task: JoinHandle<()>,
}

impl Subscriber {
    /// Starts subscribing to one source on its own task, storing into `store`.
    pub fn spawn(spec: SourceSpec, store: Store, options: SubscriberOptions) -> Self {
        let initial = SourceStatus {
            name: spec.name.clone(),
            state: LinkState::Connecting,
            source: None,
            role: None,
            head: 0,
            stored: 0,
            ingested: 0,
            last_event: None,
        };
        let (status_tx, status) = watch::channel(initial);
        let (commands, command_rx) = mpsc::channel(64);
        let task = tokio::spawn(run(spec, store, options, status_tx, command_rx));
        Self {
            status,
            commands,
            task,
        }
    }

    /// Watches the status.
    pub fn status(&self) -> watch::Receiver<SourceStatus> {
        self.status.clone()
    }

    /// Sends a command and waits for its reply (the future does not borrow the subscriber).
    pub fn command(
        &self,
        command: Command,
    ) -> impl std::future::Future<Output = Result<Reply, CommandSendError>> + Send + 'static {
        let commands = self.commands.clone();
        async move {
            let (tx, rx) = oneshot::channel();
            commands
                .send((command, tx))
                .await
                .map_err(|_| CommandSendError::Stopped)?;
            rx.await.map_err(|_| CommandSendError::Stopped)?
        }
    }

    /// Stops the subscriber.
    pub fn stop(self) {
        self.task.abort();
    }
}

/// Why one connection ended.
#[derive(Debug)]
enum LinkError {
    Refused(String),
    Failed(String),
}

async fn run(
    spec: SourceSpec,
    store: Store,
    options: SubscriberOptions,
    status: watch::Sender<SourceStatus>,
    mut commands: mpsc::Receiver<Outgoing>,
) {
    let mut delay = options.backoff_min;
    loop {
        status.send_modify(|s| s.state = LinkState::Connecting);
        let result =
            connect_and_stream(&spec, &store, &options, &status, &mut commands, &mut delay).await;
        let jittered = delay.mul_f64(rand::rng().random_range(0.5..1.0));
        let at = Instant::now() + jittered;
        match result {
            Ok(()) => status.send_modify(|s| {
                s.state = LinkState::Reconnecting {
                    at,
                    error: "closed by publisher".into(),
                }
            }),
            Err(LinkError::Refused(reason)) => {
                warn!(source = %spec.name, %reason, "stream refused");
                status.send_modify(|s| s.state = LinkState::Refused { reason, at });
            }
            Err(LinkError::Failed(error)) => {
                info!(source = %spec.name, %error, retry_in = ?jittered, "stream link down");
                status.send_modify(|s| s.state = LinkState::Reconnecting { at, error });
            }
        }
        // Wait, answering commands that arrive meanwhile at once.
        let sleep = tokio::time::sleep(jittered);
        tokio::pin!(sleep);
        loop {
            tokio::select! {
                _ = &mut sleep => break,
                command = commands.recv() => match command {
                    Some((_, reply)) => { let _ = reply.send(Err(CommandSendError::NotConnected(spec.name.clone()))); }
                    None => return,
                },
            }
        }
        delay = (delay * 2).min(options.backoff_max);
    }
}

async fn connect_and_stream(
    spec: &SourceSpec,
    store: &Store,
    options: &SubscriberOptions,
    status: &watch::Sender<SourceStatus>,
    commands: &mut mpsc::Receiver<Outgoing>,
    delay: &mut Duration,
) -> Result<(), LinkError> {
    let failed = |e: String| LinkError::Failed(e);
    let mut request = spec
        .url
        .as_str()
        .into_client_request()
        .map_err(|e| failed(format!("bad URL {}: {e}", spec.url)))?;
    let bearer = HeaderValue::from_str(&format!("Bearer {}", spec.token))
        .map_err(|_| failed("the token contains characters not allowed in a header".into()))?;
    request.headers_mut().insert("Authorization", bearer);
    let uri = request.uri().clone();
    let host = uri
        .host()
        .ok_or_else(|| failed(format!("no host in {}", spec.url)))?
        .to_string();
    let tls = match uri.scheme_str() {
        Some("wss") => true,
        Some("ws") => false,
        other => {
            return Err(failed(format!(
                "unsupported scheme {other:?}: use ws:// or wss://"
            )));
        }
    };
    let port = uri.port_u16().unwrap_or(if tls { 443 } else { 80 });
    let tcp = tokio::time::timeout(
        options.connect_timeout,
        TcpStream::connect((host.as_str(), port)),
    )
    .await
    .map_err(|_| failed(format!("connect to {host}:{port} timed out")))?
    .map_err(|e| failed(format!("cannot reach {host}:{port}: {e}")))?;
    let _ = tcp.set_nodelay(true);
    if tls {
        let connector = super::tls::client_connector(spec.ca_file.as_deref(), spec.pin_sha256)
            .map_err(|e| failed(e.to_string()))?;
        let name = rustls_pki_types::ServerName::try_from(host.clone())
            .map_err(|e| failed(format!("bad TLS server name {host}: {e}")))?;
        let stream = tokio::time::timeout(options.connect_timeout, connector.connect(name, tcp))
            .await
            .map_err(|_| failed("TLS handshake timed out".into()))?
            .map_err(|e| failed(format!("TLS handshake with {host}: {e}")))?;
        stream_over(
            spec, store, options, status, commands, delay, request, stream,
        )
        .await
    } else {
        stream_over(spec, store, options, status, commands, delay, request, tcp).await
    }
}

#[allow(clippy::too_many_arguments)]
async fn stream_over<S>(
    spec: &SourceSpec,
    store: &Store,
    options: &SubscriberOptions,
    status: &watch::Sender<SourceStatus>,
    commands: &mut mpsc::Receiver<Outgoing>,
    delay: &mut Duration,
    request: tokio_tungstenite::tungstenite::handshake::client::Request,
    stream: S,
) -> Result<(), LinkError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let config = WebSocketConfig::default()
        .max_message_size(Some(limits::MAX_FRAME_BYTES))
        .max_frame_size(Some(limits::MAX_FRAME_BYTES));
    let (ws, _) =
        match tokio_tungstenite::client_async_with_config(request, stream, Some(config)).await {
            Ok(pair) => pair,
            Err(WsError::Http(response)) => {
                let body = response
                    .body()
                    .as_ref()
                    .map(|b| String::from_utf8_lossy(b).trim().to_string())
                    .unwrap_or_default();
                return Err(LinkError::Refused(format!(
                    "HTTP {}: {body}",
                    response.status().as_u16()
                )));
            }
            Err(e) => return Err(LinkError::Failed(format!("WebSocket handshake: {e}"))),
        };
    let (mut sink, mut incoming) = ws.split();
    let hello = read_hello(&mut incoming, options.connect_timeout).await?;
    *delay = options.backoff_min;
    let stored = store.last_sequence(&hello.source);
    if stored > hello.head {
        return Err(LinkError::Failed(format!(
            "source {} is at sequence {} but we stored up to {stored}: the publisher's store was reset; move our data aside to start over",
            hello.source, hello.head
        )));
    }
    let mut after = stored;
    if stored > 0 && hello.first > stored + 1 {
        warn!(source = %hello.source, from = stored + 1, to = hello.first - 1, "events pruned at the publisher before we got them");
        let (store2, source) = (store.clone(), hello.source.clone());
        let first = hello.first;
        tokio::task::spawn_blocking(move || store2.skip_to(&source, first - 1))
            .await
            .map_err(|e| LinkError::Failed(e.to_string()))?
            .map_err(|e| LinkError::Failed(e.to_string()))?;
        after = hello.first - 1;
    }
    sink.send(Message::text(ClientFrame::Subscribe { after }.to_json()))
        .await
        .map_err(|e| LinkError::Failed(format!("send subscribe: {e}")))?;
    status.send_modify(|s| {
        s.source = Some(hello.source.clone());
        s.role = Some(hello.role);
        s.head = hello.head;
        s.stored = after;
        s.state = if hello.head > after {
            LinkState::Replaying { head: hello.head }
        } else {
            LinkState::Live
        };
    });
    info!(source = %spec.name, id = %hello.source, after, head = hello.head, "subscribed");

    let mut expected = after + 1;
    let mut batch: Vec<String> = Vec::with_capacity(options.batch_max);
    let mut in_flight: Option<InFlight> = None;
    let mut pending: HashMap<String, oneshot::Sender<Result<Reply, CommandSendError>>> =
        HashMap::new();
    let mut next_id = 0u64;
    let result = loop {
        tokio::select! {
            frame = incoming.next() => {
                let mut next = Some(frame);
                let mut end: Option<LinkError> = None;
                // Take every frame already available, up to a batch.
                while let Some(frame) = next.take() {
                    match frame {
                        None => end = Some(LinkError::Failed("connection closed".into())),
                        Some(Err(e)) => end = Some(LinkError::Failed(e.to_string())),
                        Some(Ok(Message::Text(text))) if text.contains("\"specversion\"") => {
                            match check_event(&text, &hello.source, expected) {
                                Ok(seq) => {
                                    expected = seq + 1;
                                    batch.push(text.to_string());
                                }
                                Err(e) => end = Some(LinkError::Failed(e)),
                            }
                        }
                        Some(Ok(Message::Text(text))) => on_control(&text, &mut pending),
                        Some(Ok(Message::Close(frame))) => {
                            let why = frame
                                .map(|f| format!("closed by publisher ({}): {}", u16::from(f.code), f.reason))
                                .unwrap_or_else(|| "closed by publisher".into());
                            end = Some(LinkError::Failed(why));
                        }
                        Some(Ok(_)) => {}
                    }
                    if end.is_some() || batch.len() >= options.batch_max {
                        break;
                    }
                    next = incoming.next().now_or_never();
                }
                if !batch.is_empty() {
                    if let Err(e) = finish(&mut in_flight, status).await {
                        break Err(e);
                    }
                    let events = std::mem::replace(&mut batch, Vec::with_capacity(options.batch_max));
                    let store = store.clone();
                    let last = expected - 1;
                    in_flight = Some((tokio::task::spawn_blocking(move || store.ingest(&events)), last));
                    status.send_modify(|s| {
                        s.last_event = Some(Instant::now());
                        s.head = s.head.max(last);
                    });
                }
                if let Some(e) = end {
                    break Err(e);
                }
            }
            // Report a stored batch as soon as it is stored, not when the next frame arrives.
            (result, last) = ingest_done(&mut in_flight) => {
                in_flight = None;
                if let Err(e) = report_stored(result, last, status) {
                    break Err(e);
                }
            }
            command = commands.recv() => {
                let Some((command, reply)) = command else { break Ok(()) };
                next_id += 1;
                let id = format!("c{next_id}");
                let frame = ClientFrame::Command { id: id.clone(), command };
                if let Err(e) = sink.send(Message::text(frame.to_json())).await {
                    let _ = reply.send(Err(CommandSendError::Lost(spec.name.clone())));
                    break Err(LinkError::Failed(format!("send command: {e}")));
                }
                pending.insert(id, reply);
            }
        }
    };
    let finished = finish(&mut in_flight, status).await;
    for (_, reply) in pending.drain() {
        let _ = reply.send(Err(CommandSendError::Lost(spec.name.clone())));
    }
    finished?;
    result
}

/// A batch being stored, and the last sequence in it.
type InFlight = (JoinHandle<Result<IngestReport, StoreError>>, u64);

/// Waits for the batch being stored, reporting progress; a store error ends the link.
async fn finish(
    in_flight: &mut Option<InFlight>,
    status: &watch::Sender<SourceStatus>,
) -> Result<(), LinkError> {
    let Some((handle, last)) = in_flight.take() else {
        return Ok(());
    };
    report_stored(handle.await, last, status)
}

/// The outcome of the batch being stored (never completes when there is none). Cancel-safe:
/// the ingest task keeps running if this future is dropped.
async fn ingest_done(in_flight: &mut Option<InFlight>) -> (IngestResult, u64) {
    match in_flight {
        Some((handle, last)) => {
            let result = (&mut *handle).await;
            (result, *last)
        }
        None => std::future::pending().await,
    }
}

/// What an ingest task returns.
type IngestResult = Result<Result<IngestReport, StoreError>, tokio::task::JoinError>;

/// Reports a stored batch; a store error ends the link.
fn report_stored(
    result: IngestResult,
    last: u64,
    status: &watch::Sender<SourceStatus>,
) -> Result<(), LinkError> {
    let report = result
        .map_err(|e| LinkError::Failed(format!("ingest task: {e}")))?
        .map_err(|e| LinkError::Failed(format!("store refused events: {e}")))?;
    status.send_modify(|s| {
        s.ingested += report.stored as u64;
        s.stored = last;
        if matches!(s.state, LinkState::Replaying { head } if last >= head) {
            s.state = LinkState::Live;
        }
    });
    Ok(())
}

fn check_event(text: &str, source: &str, expected: u64) -> Result<u64, String> {
    let view = EventView::parse(text).map_err(|e| format!("bad event from publisher: {e}"))?;
    if view.source != source {
        return Err(format!(
            "event from source {:?} on the stream of {source:?}",
            view.source
        ));
    }
    if view.sequence != expected {
        return Err(format!(
            "sequence {} where {expected} was expected (gap or duplicate)",
            view.sequence
        ));
    }
    Ok(view.sequence)
}

fn on_control(
    text: &str,
    pending: &mut HashMap<String, oneshot::Sender<Result<Reply, CommandSendError>>>,
) {
    match serde_json::from_str::<ServerControl>(text) {
        Ok(ServerControl::Reply(reply)) => {
            if let Some(tx) = pending.remove(&reply.id) {
                let _ = tx.send(Ok(reply));
            }
        }
        Ok(ServerControl::Error { message }) => warn!(%message, "publisher reported an error"),
        Ok(ServerControl::Hello(_)) => warn!("unexpected second hello"),
        Err(e) => warn!(error = %e, "unreadable control frame from publisher"),
    }
}

async fn read_hello<S>(
    incoming: &mut futures_util::stream::SplitStream<tokio_tungstenite::WebSocketStream<S>>,
    timeout: Duration,
) -> Result<Hello, LinkError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let frame = tokio::time::timeout(timeout, incoming.next())
        .await
        .map_err(|_| LinkError::Failed("no hello from publisher".into()))?;
    let text = match frame {
        Some(Ok(Message::Text(text))) => text,
        Some(Ok(other)) => return Err(LinkError::Failed(format!("expected hello, got {other:?}"))),
        Some(Err(e)) => return Err(LinkError::Failed(format!("reading hello: {e}"))),
        None => return Err(LinkError::Failed("closed before hello".into())),
    };
    match serde_json::from_str::<ServerControl>(&text) {
        Ok(ServerControl::Hello(hello)) if hello.protocol == STREAM_PROTOCOL => Ok(hello),
        Ok(ServerControl::Hello(hello)) => Err(LinkError::Refused(format!(
            "publisher speaks {}, we speak {STREAM_PROTOCOL}",
            hello.protocol
        ))),
        _ => Err(LinkError::Failed("first frame was not a hello".into())),
    }
}
