//! One subscriber connection on the publisher side: authenticate the upgrade, send the hello,
//! replay then stream live without gap or duplicate, and take commands.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use futures_util::stream::SplitSink;
use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::{broadcast, mpsc};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::handshake::server::{ErrorResponse, Request, Response};
use tokio_tungstenite::tungstenite::http::{StatusCode, header};
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, WebSocketConfig};
use tokio_tungstenite::tungstenite::{Error as WsError, Message, Utf8Bytes};

use super::commands;
use super::publisher::{LiveEvent, Shared};
use crate::auth::StreamGrant;
use crate::protocol::frames::{ClientFrame, Hello, Reply, STREAM_PROTOCOL, ServerControl};
use crate::protocol::limits;

/// The path of the stream endpoint.
pub const STREAM_PATH: &str = "/stream";

type Sink<S> = SplitSink<WebSocketStream<S>, Message>;

/// Why a connection ended early; becomes the close frame.
struct Close {
    code: CloseCode,
    reason: String,
}

impl Close {
    fn new(code: CloseCode, reason: impl Into<String>) -> Self {
        Self {
            code,
            reason: reason.into(),
        }
    }
}

/// Where the connection is in its life.
struct Position {
    /// Highest sequence sent.
    sent: u64,
    /// Whether at least one event has been delivered straight from the live channel since the
    /// last catch-up from the store (after that, lag means the subscriber is too slow).
    live: bool,
}

/// Serves one accepted connection until it ends.
pub(super) async fn serve<S>(
    shared: Arc<Shared>,
    mut stream: S,
    peer: SocketAddr,
) -> Result<(), String>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    // Look at the request head first: plain GETs (e.g. /metrics) are answered here.
    let head = tokio::time::timeout(
        std::time::Duration::from_secs(10),
        super::rewind::read_head(&mut stream),
    )
    .await
    .map_err(|_| "no request head within 10 s".to_string())?
    .map_err(|e| format!("reading request: {e}"))?;
    let (path, upgrade) = super::rewind::inspect(&head);
    if !upgrade {
        let routed = path.as_deref().and_then(|p| {
            shared
                .options
                .http_routes
                .as_ref()
                .and_then(|routes| routes(p))
        });
        let (status, content_type, body) = match routed {
            Some((content_type, body)) => ("200 OK", content_type, body),
            None => (
                "404 Not Found",
                "text/plain".to_string(),
                "not found: the stream is a WebSocket at /stream\n".to_string(),
            ),
        };
        let response = format!(
            "HTTP/1.1 {status}\r\ncontent-type: {content_type}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
            body.len()
        );
        let _ = tokio::io::AsyncWriteExt::write_all(&mut stream, response.as_bytes()).await;
        let _ = tokio::io::AsyncWriteExt::shutdown(&mut stream).await;
        return Ok(());
    }
    let stream = super::rewind::Rewind::new(head, stream);
    let mut grant: Option<StreamGrant> = None;
    let tokens = shared.options.tokens.clone();
    #[allow(clippy::result_large_err)] // the signature is tungstenite's
    let callback = |request: &Request, response: Response| -> Result<Response, ErrorResponse> {
        if request.uri().path() != STREAM_PATH {
            return Err(refusal(
                StatusCode::NOT_FOUND,
                "not found: the stream is at /stream",
            ));
        }
        let token = request
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(crate::auth::bearer);
        match token.and_then(|t| tokens.authenticate(t.trim())) {
            Some(g) => {
                grant = Some(g.clone());
                Ok(response)
            }
            None if token.is_none() => {
                Err(refusal(StatusCode::UNAUTHORIZED, "missing bearer token"))
            }
            None => Err(refusal(StatusCode::UNAUTHORIZED, "invalid stream token")),
        }
    };
    let config = WebSocketConfig::default()
        .max_message_size(Some(limits::MAX_COMMAND_FRAME_BYTES))
        .max_frame_size(Some(limits::MAX_COMMAND_FRAME_BYTES));
    let ws = match tokio_tungstenite::accept_hdr_async_with_config(stream, callback, Some(config))
        .await
    {
        Ok(ws) => ws,
        Err(e) => {
            shared.stats.refused.fetch_add(1, Ordering::Relaxed);
            return Err(format!("upgrade refused: {e}"));
        }
    };
    let Some(grant) = grant else {
        return Err("upgrade without grant".into());
    };
    tracing::info!(%peer, subscriber = %grant.name, role = %grant.role, "subscriber connected");
    shared.stats.connected.fetch_add(1, Ordering::Relaxed);
    let result = run(shared.clone(), ws, grant).await;
    shared.stats.connected.fetch_sub(1, Ordering::Relaxed);
    result
}

fn refusal(status: StatusCode, reason: &str) -> ErrorResponse {
    let mut response = ErrorResponse::new(Some(format!("{reason}\n")));
    *response.status_mut() = status;
    if status == StatusCode::UNAUTHORIZED {
        response.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            header::HeaderValue::from_static("Bearer realm=\"mcpsoc-stream\""),
        );
    }
    response
}

async fn run<S>(
    shared: Arc<Shared>,
    ws: WebSocketStream<S>,
    grant: StreamGrant,
) -> Result<(), String>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (mut sink, mut incoming) = ws.split();
    let hello = ServerControl::Hello(Hello {
        protocol: STREAM_PROTOCOL.into(),
        source: shared.options.source.clone(),
        head: shared.durable.load(Ordering::SeqCst),
        first: shared
            .store
            .first_sequence(&shared.options.source)
            .ok()
            .flatten()
            .unwrap_or(1),
        role: grant.role,
        subscriber: grant.name.clone(),
        max_frame_bytes: limits::MAX_FRAME_BYTES,
    });
    send(&shared, &mut sink, Message::text(hello.to_json()))
        .await
        .map_err(|c| c.reason)?;
    let (reply_tx, mut replies) = mpsc::channel::<String>(64);
    let mut live: Option<broadcast::Receiver<LiveEvent>> = None;
    let mut position = Position {
        sent: 0,
        live: false,
    };
    let outcome: Result<(), Close> = loop {
        tokio::select! {
            biased;
            Some(text) = replies.recv() => {
                if let Err(close) = send(&shared, &mut sink, Message::text(text)).await {
                    break Err(close);
                }
            }
            frame = incoming.next() => {
                match on_frame(&shared, &grant, frame, &mut sink, &reply_tx).await {
                    Ok(FrameAction::Continue) => {}
                    Ok(FrameAction::Subscribe(after)) => {
                        if live.is_some() {
                            let _ = send_error(&shared, &mut sink, "already subscribed").await;
                            continue;
                        }
                        // Subscribe to the live channel first, then replay: nothing falls between.
                        let rx = shared.live.subscribe();
                        position.sent = after;
                        if let Err(close) = catch_up(&shared, &mut sink, &mut position).await {
                            break Err(close);
                        }
                        live = Some(rx);
                    }
                    Ok(FrameAction::Closed) => break Ok(()),
                    Err(close) => break Err(close),
                }
            }
            event = next_live(&mut live) => {
                if let Err(close) = on_live(&shared, &mut sink, &mut position, live.as_mut(), event).await {
                    break Err(close);
                }
            }
        }
    };
    match outcome {
        Ok(()) => Ok(()),
        Err(close) => {
            let reason = close.reason.clone();
            let frame = CloseFrame {
                code: close.code,
                reason: Utf8Bytes::from(close.reason),
            };
            let _ = tokio::time::timeout(
                shared.options.send_timeout,
                sink.send(Message::Close(Some(frame))),
            )
            .await;
            Err(reason)
        }
    }
}

async fn next_live(
    live: &mut Option<broadcast::Receiver<LiveEvent>>,
) -> Result<LiveEvent, broadcast::error::RecvError> {
    match live {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
    }
}

async fn on_live<S>(
    shared: &Shared,
    sink: &mut Sink<S>,
    position: &mut Position,
    rx: Option<&mut broadcast::Receiver<LiveEvent>>,
    event: Result<LiveEvent, broadcast::error::RecvError>,
) -> Result<(), Close>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let Some(rx) = rx else { return Ok(()) };
    let mut next = event;
    let mut fed = 0usize;
    loop {
        match next {
            Ok(event) if event.sequence <= position.sent => {}
            Ok(event) if event.sequence == position.sent + 1 => {
                feed(shared, sink, Message::Text(event.frame)).await?;
                position.sent = event.sequence;
                position.live = true;
                fed += 1;
            }
            Ok(_) => {
                // A hole between what was sent and the channel: read it back from the store.
                flush(shared, sink).await?;
                catch_up(shared, sink, position).await?;
                fed = 0;
            }
            Err(broadcast::error::RecvError::Lagged(missed)) => {
                if position.live {
                    shared
                        .stats
                        .slow_disconnects
                        .fetch_add(1, Ordering::Relaxed);
                    return Err(Close::new(
                        CloseCode::Again,
                        format!(
                            "subscriber too slow: fell {missed} events behind the live buffer; reconnect to resume by replay"
                        ),
                    ));
                }
                flush(shared, sink).await?;
                catch_up(shared, sink, position).await?;
                fed = 0;
            }
            Err(broadcast::error::RecvError::Closed) => {
                return Err(Close::new(CloseCode::Away, "publisher shutting down"));
            }
        }
        if fed >= 256 {
            flush(shared, sink).await?;
            fed = 0;
        }
        next = match rx.try_recv() {
            Ok(event) => Ok(event),
            Err(broadcast::error::TryRecvError::Lagged(n)) => {
                Err(broadcast::error::RecvError::Lagged(n))
            }
            Err(broadcast::error::TryRecvError::Empty) => break,
            Err(broadcast::error::TryRecvError::Closed) => Err(broadcast::error::RecvError::Closed),
        };
    }
    flush(shared, sink).await
}

/// Sends everything stored after `position.sent`, page by page, until the store's head.
async fn catch_up<S>(
    shared: &Shared,
    sink: &mut Sink<S>,
    position: &mut Position,
) -> Result<(), Close>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    position.live = false;
    loop {
        let store = shared.store.clone();
        let source = shared.options.source.clone();
        let after = position.sent;
        let page = shared.options.replay_page;
        // Only what is on disk; later events come on the live channel once they are.
        let durable = shared.durable.load(Ordering::SeqCst);
        let mut events =
            tokio::task::spawn_blocking(move || store.events_after(&source, after, page))
                .await
                .map_err(|e| Close::new(CloseCode::Error, format!("replay failed: {e}")))?
                .map_err(|e| Close::new(CloseCode::Error, format!("replay failed: {e}")))?;
        events.retain(|e| e.sequence <= durable);
        if events.is_empty() {
            return Ok(());
        }
        for event in events {
            if event.sequence != position.sent + 1 && position.sent != after {
                return Err(Close::new(
                    CloseCode::Error,
                    format!("store hole at sequence {}", position.sent + 1),
                ));
            }
            feed(shared, sink, Message::text(event.json)).await?;
            position.sent = event.sequence;
        }
        flush(shared, sink).await?;
    }
}

async fn feed<S>(shared: &Shared, sink: &mut Sink<S>, message: Message) -> Result<(), Close>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    timed(shared, sink.feed(message)).await
}

async fn flush<S>(shared: &Shared, sink: &mut Sink<S>) -> Result<(), Close>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    timed(shared, sink.flush()).await
}

async fn send<S>(shared: &Shared, sink: &mut Sink<S>, message: Message) -> Result<(), Close>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    timed(shared, sink.send(message)).await
}

async fn timed(
    shared: &Shared,
    op: impl std::future::Future<Output = Result<(), WsError>>,
) -> Result<(), Close> {
    match tokio::time::timeout(shared.options.send_timeout, op).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(Close::new(CloseCode::Error, format!("send failed: {e}"))),
        Err(_) => {
            shared
                .stats
                .slow_disconnects
                .fetch_add(1, Ordering::Relaxed);
            Err(Close::new(
                CloseCode::Again,
                format!(
                    "subscriber too slow: a send blocked for {} s; reconnect to resume by replay",
                    shared.options.send_timeout.as_secs()
                ),
            ))
        }
    }
}

async fn send_error<S>(shared: &Shared, sink: &mut Sink<S>, message: &str) -> Result<(), Close>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let frame = ServerControl::Error {
        message: message.to_string(),
    };
    send(shared, sink, Message::text(frame.to_json())).await
}

enum FrameAction {
    Continue,
    Subscribe(u64),
    Closed,
}

async fn on_frame<S>(
    shared: &Arc<Shared>,
    grant: &StreamGrant,
    frame: Option<Result<Message, WsError>>,
    sink: &mut Sink<S>,
    replies: &mpsc::Sender<String>,
) -> Result<FrameAction, Close>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let text = match frame {
        None | Some(Ok(Message::Close(_))) => return Ok(FrameAction::Closed),
        Some(Ok(Message::Text(text))) => text,
        Some(Ok(Message::Ping(_) | Message::Pong(_) | Message::Frame(_))) => {
            return Ok(FrameAction::Continue);
        }
        Some(Ok(Message::Binary(_))) => {
            shared
                .stats
                .malformed_frames
                .fetch_add(1, Ordering::Relaxed);
            send_error(
                shared,
                sink,
                "binary frames are not part of the protocol; send JSON text",
            )
            .await?;
            return Ok(FrameAction::Continue);
        }
        Some(Err(WsError::Capacity(e))) => {
            shared
                .stats
                .malformed_frames
                .fetch_add(1, Ordering::Relaxed);
            return Err(Close::new(
                CloseCode::Size,
                format!(
                    "frame too large ({e}); the limit for subscriber frames is {} bytes",
                    limits::MAX_COMMAND_FRAME_BYTES
                ),
            ));
        }
        Some(Err(e)) => {
            return Err(Close::new(
                CloseCode::Protocol,
                format!("protocol error: {e}"),
            ));
        }
    };
    let frame: ClientFrame = match serde_json::from_str(&text) {
        Ok(frame) => frame,
        Err(e) => {
            shared
                .stats
                .malformed_frames
                .fetch_add(1, Ordering::Relaxed);
            // A malformed command still gets a reply by id when the id can be read.
            if let Some(id) = serde_json::from_str::<serde_json::Value>(&text)
                .ok()
                .and_then(|v| v.get("id").and_then(|i| i.as_str()).map(str::to_string))
            {
                let reply = Reply {
                    id,
                    ok: false,
                    result: None,
                    error: Some(crate::protocol::CommandError::new(
                        crate::protocol::CommandErrorCode::Malformed,
                        format!("malformed command: {e}"),
                    )),
                };
                send(
                    shared,
                    sink,
                    Message::text(ServerControl::Reply(reply).to_json()),
                )
                .await?;
            } else {
                send_error(shared, sink, &format!("malformed frame: {e}")).await?;
            }
            return Ok(FrameAction::Continue);
        }
    };
    match frame {
        ClientFrame::Subscribe { after } => Ok(FrameAction::Subscribe(after)),
        ClientFrame::Command { id, command } => {
            let shared = shared.clone();
            let grant = grant.clone();
            let replies = replies.clone();
            tokio::spawn(async move {
                let result = commands::execute(shared, grant, id.clone(), command).await;
                let reply = match result {
                    Ok(result) => Reply {
                        id,
                        ok: true,
                        result: Some(result),
                        error: None,
                    },
                    Err(error) => Reply {
                        id,
                        ok: false,
                        result: None,
                        error: Some(error),
                    },
                };
                let _ = replies.send(ServerControl::Reply(reply).to_json()).await;
            });
            Ok(FrameAction::Continue)
        }
    }
}
