//! Helpers shared by the stream integration tests (tests/stream.rs, tests/stream_process.rs).
#![allow(dead_code)]

use std::future::Future;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use mcpsoc::auth::{Role, StreamGrant, TokenTable, hash_token};
use mcpsoc::protocol::EventData;
use mcpsoc::protocol::events::{CallPhase, ClientInfo, Decision, ToolCall};
use mcpsoc::protocol::frames::{Hello, ServerControl};
use mcpsoc::store::{NewEvent, Store, StoreOptions};
use mcpsoc::stream::{
    CommandRequest, LinkState, Publisher, PublisherOptions, SourceSpec, SourceStatus, Subscriber,
    SubscriberOptions,
};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, watch};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

/// How long any condition may take before a test gives up (generous: 2 cores are shared).
pub const WAIT: Duration = Duration::from_secs(30);

/// The source id every in-process test publisher uses.
pub const SOURCE: &str = "test/publisher";

/// A raw WebSocket client.
pub type Raw = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// Opens (or creates) a store in `dir` with a small cache.
pub fn open_store(dir: &Path) -> Store {
    let options = StoreOptions {
        cache_bytes: 16 * 1024 * 1024,
        flush_every_ms: 500,
    };
    Store::open(dir, &options).unwrap_or_else(|e| panic!("open store {}: {e}", dir.display()))
}

/// One token-table entry.
pub fn grant(name: &str, role: Role, token: &str) -> StreamGrant {
    let hash = hex::decode(hash_token(token)).expect("hex");
    StreamGrant {
        name: name.to_string(),
        role,
        token_sha256: hash.try_into().expect("32 bytes"),
    }
}

/// The token table of the in-process tests: one token per role.
pub fn tokens() -> TokenTable {
    TokenTable::new(vec![
        grant("vera-viewer", Role::Viewer, VIEWER),
        grant("rita-responder", Role::Responder, RESPONDER),
        grant("anna-approver", Role::Approver, APPROVER),
    ])
}

/// Token of the viewer.
pub const VIEWER: &str = "viewer-token-0123456789";
/// Token of the responder.
pub const RESPONDER: &str = "responder-token-0123456789";
/// Token of the approver.
pub const APPROVER: &str = "approver-token-0123456789";

/// Publisher options for tests: no heartbeats (they would make stores differ by timing).
pub fn options(tokens: TokenTable) -> PublisherOptions {
    let mut options = PublisherOptions::new(SOURCE, tokens);
    options.heartbeat = None;
    options
}

/// Creates a publisher over `store` and serves it on 127.0.0.1:0.
pub async fn start_publisher(
    store: Store,
    options: PublisherOptions,
    with_owner: bool,
) -> (
    Publisher,
    SocketAddr,
    Option<mpsc::Receiver<CommandRequest>>,
) {
    let (publisher, inbox) = Publisher::new(store, options, with_owner);
    let (addr, _accept) = publisher
        .serve("127.0.0.1:0")
        .await
        .expect("publisher serves on 127.0.0.1:0");
    (publisher, addr, inbox)
}

/// The stream URL of a publisher.
pub fn ws_url(addr: SocketAddr) -> String {
    format!("ws://{addr}/stream")
}

/// Subscriber options that retry quickly.
pub fn quick() -> SubscriberOptions {
    SubscriberOptions {
        batch_max: 256,
        backoff_min: Duration::from_millis(50),
        backoff_max: Duration::from_millis(500),
        connect_timeout: Duration::from_secs(10),
    }
}

/// Where a test subscriber connects (the one place that builds a `SourceSpec`).
pub fn source_spec(name: &str, url: &str, token: &str, ca_file: Option<PathBuf>) -> SourceSpec {
    SourceSpec {
        name: name.to_string(),
        url: url.to_string(),
        token: token.to_string(),
        ca_file,
        pin_sha256: None,
    }
}

/// Starts a subscriber to `url` with `token`, storing into `store`.
pub fn subscribe(name: &str, url: &str, token: &str, store: Store) -> Subscriber {
    Subscriber::spawn(source_spec(name, url, token, None), store, quick())
}

/// A tool call whose arguments carry `pad` bytes of filler.
pub fn tool_call(i: u64, pad: usize) -> NewEvent {
    NewEvent::from(EventData::ToolCall(ToolCall {
        call_id: format!("call-{i}"),
        phase: CallPhase::Finished,
        user: format!("user-{}", i % 7),
        session: Some(format!("session-{}", i % 13)),
        client: ClientInfo {
            name: "test-client".into(),
            version: Some("1.0".into()),
            client_id: None,
        },
        protocol_version: Some("2025-06-18".into()),
        upstream: "files".into(),
        tool: "read_file".into(),
        arguments: serde_json::json!({"path": format!("/tmp/{i}"), "pad": "x".repeat(pad)}),
        result_summary: Some("ok".into()),
        result_bytes: Some(i),
        is_error: false,
        latency_ms: Some(1.5),
        decision: Decision::Allow,
        reason: None,
    }))
}

/// Tool calls `from..from+n`.
pub fn tool_calls(from: u64, n: u64, pad: usize) -> Vec<NewEvent> {
    (from..from + n).map(|i| tool_call(i, pad)).collect()
}

/// Appends `total` tool calls in batches of `batch`.
pub async fn append_calls(publisher: &Publisher, total: u64, batch: u64, pad: usize) {
    let mut done = 0;
    while done < total {
        let n = batch.min(total - done);
        let seqs = publisher
            .append(tool_calls(done, n, pad))
            .await
            .expect("append");
        assert_eq!(seqs.len() as u64, n);
        done += n;
    }
}

/// Polls `condition` every 20 ms until it holds; panics naming `what` after `timeout`.
pub async fn wait_until(what: &str, timeout: Duration, mut condition: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if condition() {
            return;
        }
        if tokio::time::Instant::now() >= deadline {
            panic!("timed out after {timeout:?} waiting until {what}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Waits for a subscriber status matching `condition`; panics naming `what` with the last status.
pub async fn wait_status(
    what: &str,
    status: &mut watch::Receiver<SourceStatus>,
    condition: impl FnMut(&SourceStatus) -> bool,
) -> SourceStatus {
    let found = match tokio::time::timeout(WAIT, status.wait_for(condition)).await {
        Ok(Ok(s)) => Some(s.clone()),
        Ok(Err(_)) => panic!("subscriber stopped while waiting until {what}"),
        Err(_) => None,
    };
    found.unwrap_or_else(|| {
        panic!(
            "timed out after {WAIT:?} waiting until {what}; last status: {:?}",
            *status.borrow()
        )
    })
}

/// Runs `future` with the standard timeout, naming `what` on expiry.
pub async fn within<T>(what: &str, future: impl Future<Output = T>) -> T {
    match tokio::time::timeout(WAIT, future).await {
        Ok(v) => v,
        Err(_) => panic!("timed out after {WAIT:?}: {what}"),
    }
}

/// Waits until `store` holds `source` up to `head`.
pub async fn wait_caught_up(what: &str, store: &Store, source: &str, head: u64) {
    let store = store.clone();
    wait_until(
        &format!("{what} has stored up to sequence {head}"),
        WAIT,
        || store.last_sequence(source) >= head,
    )
    .await;
}

/// Asserts that `copy` holds exactly `original`'s events of `source`: sequences 1..=head, each
/// byte-identical, no gap, no duplicate. Returns the number of events.
pub fn assert_same_events(original: &Store, copy: &Store, source: &str) -> u64 {
    let head = original.last_sequence(source);
    assert_eq!(
        copy.last_sequence(source),
        head,
        "the copy's last sequence differs from the original's"
    );
    let (mut a_after, mut b_after) = (0u64, 0u64);
    let mut count = 0u64;
    loop {
        let a = original.events_after(source, a_after, 2048).expect("read");
        let b = copy.events_after(source, b_after, 2048).expect("read");
        assert_eq!(
            a.len(),
            b.len(),
            "page after {a_after}: different number of events"
        );
        if a.is_empty() {
            break;
        }
        for (x, y) in a.iter().zip(&b) {
            assert_eq!(x.sequence, count + 1, "gap or duplicate in the original");
            assert_eq!(y.sequence, count + 1, "gap or duplicate in the copy");
            assert_eq!(x.json, y.json, "event {} differs", x.sequence);
            count += 1;
        }
        a_after = a.last().map(|e| e.sequence).unwrap_or(a_after);
        b_after = b.last().map(|e| e.sequence).unwrap_or(b_after);
    }
    assert_eq!(count, head, "not every sequence 1..=head is stored");
    // Spot-check the point read too.
    if head > 0 {
        for seq in [1, head.div_ceil(2), head] {
            assert_eq!(
                original.event(source, seq).expect("read").map(|e| e.json),
                copy.event(source, seq).expect("read").map(|e| e.json),
                "event {seq} differs by point read"
            );
        }
    }
    count
}

/// Connects a raw client to `url` (path included) with an optional bearer token.
pub async fn raw_connect(url: &str, token: Option<&str>) -> Result<Raw, WsError> {
    let mut request = url.into_client_request().expect("request");
    if let Some(token) = token {
        request.headers_mut().insert(
            "Authorization",
            HeaderValue::from_str(&format!("Bearer {token}")).expect("header"),
        );
    }
    within("raw connect", tokio_tungstenite::connect_async(request))
        .await
        .map(|(ws, _)| ws)
}

/// Connects a raw client and reads its hello.
pub async fn raw_hello(addr: SocketAddr, token: &str) -> (Raw, Hello) {
    let mut ws = raw_connect(&ws_url(addr), Some(token))
        .await
        .expect("raw client connects");
    let text = next_text(&mut ws).await;
    match serde_json::from_str::<ServerControl>(&text) {
        Ok(ServerControl::Hello(hello)) => (ws, hello),
        other => panic!("expected a hello, got {other:?} from {text}"),
    }
}

/// Sends one text frame.
pub async fn send_text(ws: &mut Raw, text: impl Into<String>) {
    within("send", ws.send(Message::text(text.into())))
        .await
        .expect("send text frame");
}

/// The next text frame (skipping pings and pongs); panics on anything else.
pub async fn next_text(ws: &mut Raw) -> String {
    loop {
        match within("next frame", ws.next()).await {
            Some(Ok(Message::Text(text))) => return text.to_string(),
            Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
            other => panic!("expected a text frame, got {other:?}"),
        }
    }
}

/// The next control frame (skipping events); panics on anything else.
pub async fn next_control(ws: &mut Raw) -> ServerControl {
    loop {
        let text = next_text(ws).await;
        if text.contains("\"specversion\"") {
            continue;
        }
        return serde_json::from_str(&text)
            .unwrap_or_else(|e| panic!("unreadable control frame {text}: {e}"));
    }
}

/// Whether `json` is a command audit event with `action` and `outcome`.
pub fn is_audit(json: &str, action: &str, outcome: &str) -> bool {
    let v: serde_json::Value = serde_json::from_str(json).expect("event json");
    v["type"] == "mcpsoc.command.v1"
        && v["data"]["action"] == action
        && v["data"]["outcome"] == outcome
}

/// All events of `source` in `store`, as parsed JSON.
pub fn all_events(store: &Store, source: &str) -> Vec<serde_json::Value> {
    let mut out = Vec::new();
    let mut after = 0;
    loop {
        let page = store.events_after(source, after, 4096).expect("read");
        let Some(last) = page.last() else { break };
        after = last.sequence;
        out.extend(
            page.iter()
                .map(|e| serde_json::from_str(&e.json).expect("event json")),
        );
    }
    out
}

/// Records every error a subscriber's link reports (reconnects and refusals).
pub fn record_link_errors(subscriber: &Subscriber) -> Arc<Mutex<Vec<String>>> {
    let errors = Arc::new(Mutex::new(Vec::new()));
    let mut status = subscriber.status();
    let sink = errors.clone();
    tokio::spawn(async move {
        while status.changed().await.is_ok() {
            let error = match &status.borrow_and_update().state {
                LinkState::Reconnecting { error, .. } => error.clone(),
                LinkState::Refused { reason, .. } => reason.clone(),
                _ => continue,
            };
            sink.lock().expect("errors").push(error);
        }
    });
    errors
}
