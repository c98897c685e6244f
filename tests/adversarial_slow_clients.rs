//! Slow clients at the gateway, over real sockets (issue 12, class 5): bodies that trickle,
//! headers that never finish, one address opening connection after connection, one token
//! subject holding many requests open. In every case an honest client is still answered, the
//! attacker's connections are refused or closed within the configured timeouts, and the
//! gateway's log records it (connection-level refusals at most once per address per window,
//! with a count).

mod gateway_support;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use gateway_support::{Gateway, GatewaySetup, HttpReply, post, scratch};
use hyper::StatusCode;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinSet;

const REFUSAL: &str = "mcpsoc.refusal.v1";
const STATELESS: &str = "2026-07-28";

// ---------------------------------------------------------------------------------------------
// A tiny upstream: raw HTTP/1.1, one request per connection. A JSON-RPC id that is a string
// starting with "slow" is answered only once the test releases it.

struct Upstream {
    url: String,
    held: Arc<AtomicUsize>,
    release: watch::Sender<bool>,
}

async fn read_request(socket: &mut TcpStream) -> Option<Value> {
    Some(gateway_support::read_raw_request(socket).await?.json())
}

impl Upstream {
    async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let url = format!("http://{}/mcp", listener.local_addr().expect("addr"));
        let held = Arc::new(AtomicUsize::new(0));
        let (release, released) = watch::channel(false);
        let count = held.clone();
        tokio::spawn(async move {
            while let Ok((mut socket, _)) = listener.accept().await {
                let (count, mut released) = (count.clone(), released.clone());
                tokio::spawn(async move {
                    let Some(request) = read_request(&mut socket).await else {
                        return;
                    };
                    let id = request.get("id").cloned().unwrap_or(Value::Null);
                    if id.as_str().is_some_and(|s| s.starts_with("slow")) {
                        count.fetch_add(1, Ordering::SeqCst);
                        let _ = released.wait_for(|r| *r).await;
                    }
                    let (result, session) = match request["method"].as_str().unwrap_or("") {
                        "initialize" => (
                            json!({"protocolVersion": "2025-11-25", "capabilities": {"tools": {}},
                                   "serverInfo": {"name": "slow-test", "version": "1"}}),
                            "mcp-session-id: up-1\r\n",
                        ),
                        "tools/list" => (json!({"tools": []}), ""),
                        _ => (json!({}), ""),
                    };
                    let body = json!({"jsonrpc": "2.0", "id": id, "result": result}).to_string();
                    let text = format!(
                        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n{session}content-length: {}\r\nconnection: close\r\n\r\n{body}",
                        body.len()
                    );
                    let _ = socket.write_all(text.as_bytes()).await;
                    let _ = socket.shutdown().await;
                });
            }
        });
        Self { url, held, release }
    }
}

async fn started(extra: &str) -> (Upstream, Gateway, tempfile::TempDir) {
    let dir = scratch();
    let upstream = Upstream::start().await;
    let mut setup = GatewaySetup::new("slow", &upstream.url);
    setup.gateway_extra = extra.to_string();
    let gateway = Gateway::start(&setup, dir.path()).await;
    (upstream, gateway, dir)
}

// ---------------------------------------------------------------------------------------------
// Requests.

fn ping(id: Value) -> Value {
    json!({"jsonrpc": "2.0", "id": id, "method": "ping", "params": {"_meta": {
        "io.modelcontextprotocol/protocolVersion": STATELESS,
        "io.modelcontextprotocol/clientInfo": {"name": "slow-test", "version": "1.0"},
        "io.modelcontextprotocol/clientCapabilities": {}
    }}})
}

/// An honest stateless `ping` through the harness's HTTP client.
async fn honest(gw: &Gateway, token: &str, id: Value) -> HttpReply {
    let headers = [("mcp-protocol-version", STATELESS), ("mcp-method", "ping")];
    post(&gw.url, token, &headers, &ping(id)).await
}

/// The request line and headers of a `ping` POST declaring `length` body bytes.
fn request_head(gw: &Gateway, token: &str, length: usize, close: bool) -> String {
    format!(
        "POST /mcp/{} HTTP/1.1\r\nhost: {}\r\nauthorization: Bearer {token}\r\ncontent-type: application/json\r\naccept: application/json, text/event-stream\r\nmcp-protocol-version: {STATELESS}\r\nmcp-method: ping\r\ncontent-length: {length}\r\n{}\r\n",
        gw.upstream,
        gw.mcp,
        if close { "connection: close\r\n" } else { "" }
    )
}

/// A TCP connection to the gateway from the loopback address `local`.
async fn connect_from(local: Ipv4Addr, to: SocketAddr) -> std::io::Result<TcpStream> {
    let socket = TcpSocket::new_v4()?;
    socket.bind(SocketAddr::new(IpAddr::V4(local), 0))?;
    socket.connect(to).await
}

/// Everything the peer sends until it closes the connection, or `None` when it is still open
/// at `deadline`. A reset counts as closed.
async fn until_closed(stream: &mut TcpStream, deadline: tokio::time::Instant) -> Option<Vec<u8>> {
    let mut got = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        match tokio::time::timeout_at(deadline, stream.read(&mut chunk)).await {
            Err(_) => return None,
            Ok(Ok(0)) | Ok(Err(_)) => return Some(got),
            Ok(Ok(n)) => got.extend_from_slice(&chunk[..n]),
        }
    }
}

/// An honest `ping` on a raw connection: the status, or why there was none.
async fn raw_ping(stream: &mut TcpStream, gw: &Gateway, token: &str) -> Result<u16, String> {
    let body = ping(json!(7)).to_string();
    let request = format!("{}{body}", request_head(gw, token, body.len(), true));
    stream
        .write_all(request.as_bytes())
        .await
        .map_err(|e| format!("write: {e}"))?;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let reply = until_closed(stream, deadline)
        .await
        .ok_or("no answer within 10 s")?;
    let text = String::from_utf8_lossy(&reply);
    text.strip_prefix("HTTP/1.1 ")
        .and_then(|rest| rest.get(..3))
        .and_then(|code| code.parse().ok())
        .ok_or_else(|| format!("not an HTTP answer: {text:?}"))
}

/// `mcpsoc_gateway_requests_total` from `/metrics`.
async fn requests_total(gw: &Gateway) -> u64 {
    gw.metrics()
        .await
        .lines()
        .find_map(|l| l.strip_prefix("mcpsoc_gateway_requests_total "))
        .and_then(|n| n.trim().parse().ok())
        .expect("requests counter in /metrics")
}

fn refusals(gw: &Gateway, reason: &str) -> Vec<Value> {
    gw.events(REFUSAL)
        .into_iter()
        .map(|e| e["data"].clone())
        .filter(|d| d["reason"] == reason)
        .collect()
}

/// The count a connection-level refusal event records (its detail starts with it).
fn burst_count(event: &Value) -> u64 {
    event["detail"]
        .as_str()
        .and_then(|d| d.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no count in {event}"))
}

/// Waits, polling, until `check` holds.
async fn eventually(what: &str, within: Duration, mut check: impl AsyncFnMut() -> bool) {
    let deadline = Instant::now() + within;
    while !check().await {
        assert!(Instant::now() < deadline, "{what}: not within {within:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

// ---------------------------------------------------------------------------------------------

/// Hundreds of bodies that never finish hold no concurrency permit: an honest request is
/// answered at once, and every slow one is refused with 408 after the body timeout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_bodies_hold_no_permits_and_are_refused_after_the_body_timeout() {
    const SLOW: usize = 300;
    const BODY_TIMEOUT: Duration = Duration::from_secs(3);
    let (_upstream, gw, _dir) = started(
        "max_concurrency = 32\nbody_timeout_secs = 3\nmax_connections_per_ip = 1000\nmax_inflight_per_subject = 1000",
    )
    .await;
    let token = gw.token("mallory", json!({}));
    let honest_token = gw.token("alice", json!({}));
    let before = requests_total(&gw).await;
    let started = tokio::time::Instant::now();
    let mut slow = Vec::with_capacity(SLOW);
    for _ in 0..SLOW {
        let mut stream = TcpStream::connect(gw.mcp).await.expect("connect");
        let head = request_head(&gw, &token, 1000, false);
        stream
            .write_all(format!("{head}{{\"jsonrpc\"").as_bytes())
            .await
            .expect("write the headers and the start of the body");
        slow.push(stream);
    }
    // Every slow request has reached the gateway and is waiting for its body.
    eventually(
        "all slow requests arrived",
        Duration::from_secs(10),
        async || requests_total(&gw).await >= before + SLOW as u64,
    )
    .await;
    let mut worst = Duration::ZERO;
    for i in 0..5 {
        let sent = Instant::now();
        let reply = honest(&gw, &honest_token, json!(i)).await;
        let took = sent.elapsed();
        worst = worst.max(took);
        assert_eq!(
            reply.status,
            StatusCode::OK,
            "an honest ping behind {SLOW} slow bodies: {}",
            reply.body
        );
        assert!(
            took < Duration::from_secs(2),
            "an honest ping took {took:?} behind {SLOW} slow bodies"
        );
    }
    assert!(
        started.elapsed() < BODY_TIMEOUT,
        "the honest pings were answered while the slow bodies were still open"
    );
    let deadline = started + BODY_TIMEOUT + Duration::from_secs(10);
    let mut closing = JoinSet::new();
    for mut stream in slow {
        closing.spawn(async move { until_closed(&mut stream, deadline).await });
    }
    let mut refused = 0;
    while let Some(done) = closing.join_next().await {
        let reply = done
            .expect("reader task")
            .expect("a slow body's connection was still open 10 s after the body timeout");
        let text = String::from_utf8_lossy(&reply);
        assert!(
            text.starts_with("HTTP/1.1 408"),
            "a slow body is refused with 408: {text:?}"
        );
        refused += 1;
    }
    let closed_after = started.elapsed();
    assert_eq!(refused, SLOW);
    eventually(
        "a body_timeout refusal event per slow body",
        Duration::from_secs(10),
        async || refusals(&gw, "body_timeout").len() >= SLOW,
    )
    .await;
    let event = &refusals(&gw, "body_timeout")[0];
    assert_eq!(event["status"], 408, "{event}");
    assert_eq!(event["user"], "mallory", "{event}");
    assert!(
        event["remote"]
            .as_str()
            .is_some_and(|r| r.starts_with("127.0.0.1:")),
        "{event}"
    );
    eprintln!(
        "slow bodies: {SLOW} held open; honest ping worst {worst:?}; all {SLOW} refused with 408 by {closed_after:?} (body timeout {BODY_TIMEOUT:?})"
    );
}

/// Headers sent a byte at a time, or never started, are closed after the header timeout;
/// meanwhile an honest request is answered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_headers_are_closed_after_the_header_timeout() {
    const TRICKLING: usize = 100;
    const SILENT: usize = 20;
    let (_upstream, gw, _dir) =
        started("header_timeout_secs = 1\nmax_connections_per_ip = 1000").await;
    let token = gw.token("alice", json!({}));
    let started = tokio::time::Instant::now();
    let deadline = started + Duration::from_secs(6);
    let mut open = JoinSet::new();
    for i in 0..TRICKLING + SILENT {
        let mut stream = TcpStream::connect(gw.mcp).await.expect("connect");
        let trickle = i < TRICKLING;
        open.spawn(async move {
            let head = b"POST /mcp/slow HTTP/1.1\r\nhost: gateway\r\nx-padding: ";
            let mut sent = 0usize;
            let mut chunk = [0u8; 256];
            let mut tick = tokio::time::interval(Duration::from_millis(100));
            loop {
                tokio::select! {
                    read = stream.read(&mut chunk) => match read {
                        Ok(0) | Err(_) => return Some(started.elapsed()),
                        Ok(_) => {}
                    },
                    _ = tick.tick(), if trickle => {
                        let byte = head.get(sent).copied().unwrap_or(b'a');
                        if stream.write_all(&[byte]).await.is_err() {
                            return Some(started.elapsed());
                        }
                        sent += 1;
                    }
                    () = tokio::time::sleep_until(deadline) => return None,
                }
            }
        });
    }
    let sent = Instant::now();
    let reply = honest(&gw, &token, json!(1)).await;
    let took = sent.elapsed();
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    let mut latest = Duration::ZERO;
    while let Some(done) = open.join_next().await {
        let closed = done.expect("trickle task").unwrap_or_else(|| {
            panic!(
                "a slow-header connection was still open 6 s after connecting (header timeout 1 s)"
            )
        });
        latest = latest.max(closed);
    }
    eprintln!(
        "slow headers: {TRICKLING} trickling + {SILENT} silent connections all closed by {latest:?} (header timeout 1 s); honest ping {took:?}"
    );
    let event = gw
        .wait_event(REFUSAL, "header_timeout from 127.0.0.1", |d| {
            d["reason"] == "header_timeout" && d["remote"] == "127.0.0.1"
        })
        .await;
    assert!(burst_count(&event["data"]) >= 1, "{event}");
    assert!(
        refusals(&gw, "header_timeout").len() < TRICKLING,
        "connection-level refusals are rate-limited per address"
    );
}

/// Past the per-address cap, connections are closed on accept and recorded (rate-limited,
/// with a count); other addresses are still served, and places come back as connections end.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_over_the_per_address_cap_are_closed_and_counted() {
    const CAP: usize = 8;
    const EXTRA: usize = 20;
    let (_upstream, gw, _dir) =
        started("max_connections_per_ip = 8\nheader_timeout_secs = 8").await;
    let token = gw.token("alice", json!({}));
    let local = Ipv4Addr::LOCALHOST;
    let mut held = Vec::new();
    for _ in 0..CAP {
        held.push(connect_from(local, gw.mcp).await.expect("connect"));
    }
    let deadline = tokio::time::Instant::now() + Duration::from_secs(3);
    for i in 0..EXTRA {
        let mut extra = connect_from(local, gw.mcp).await.expect("connect");
        assert!(
            until_closed(&mut extra, deadline).await.is_some(),
            "connection {} from 127.0.0.1 (cap {CAP}) was not closed",
            CAP + i + 1
        );
    }
    // The connections within the cap are served.
    let status = raw_ping(&mut held[0], &gw, &token).await;
    assert_eq!(status, Ok(200), "a connection within the cap");
    // Another address has places of its own.
    let mut other = connect_from(Ipv4Addr::new(127, 0, 0, 2), gw.mcp)
        .await
        .expect("connect from 127.0.0.2");
    assert_eq!(
        raw_ping(&mut other, &gw, &token).await,
        Ok(200),
        "127.0.0.2"
    );
    // Recorded at once, then the rest counted together a window later: not one event each.
    let first = gw
        .wait_event(REFUSAL, "too_many_connections", |d| {
            d["reason"] == "too_many_connections" && d["remote"] == "127.0.0.1"
        })
        .await;
    assert_eq!(first["data"]["status"], 429, "{first}");
    eventually(
        "the held-back refusals are recorded with their count",
        Duration::from_secs(15),
        async || {
            refusals(&gw, "too_many_connections")
                .iter()
                .map(burst_count)
                .sum::<u64>()
                >= EXTRA as u64
        },
    )
    .await;
    let events = refusals(&gw, "too_many_connections");
    assert_eq!(
        events.iter().map(burst_count).sum::<u64>(),
        EXTRA as u64,
        "{events:#?}"
    );
    assert!(events.len() <= 3, "rate-limited: {events:#?}");
    // Places come back when connections end.
    drop(held);
    eventually(
        "127.0.0.1 is served again once its connections closed",
        Duration::from_secs(5),
        async || match connect_from(local, gw.mcp).await {
            Ok(mut stream) => raw_ping(&mut stream, &gw, &token).await == Ok(200),
            Err(_) => false,
        },
    )
    .await;
}

/// One subject holding many requests open gets 429 past its cap; another subject is still
/// served, and the busy one is again once its requests finish.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_busy_subject_cannot_starve_another() {
    const CAP: usize = 4;
    const SENT: usize = 12;
    let (upstream, gw, _dir) =
        started("max_concurrency = 8\nmax_inflight_per_subject = 4\nmax_connections_per_ip = 1000")
            .await;
    let busy = gw.token("mallory", json!({}));
    let other = gw.token("alice", json!({}));
    let gw = Arc::new(gw);
    let (tx, mut replies) = tokio::sync::mpsc::unbounded_channel();
    for i in 0..SENT {
        let (gw, busy, tx) = (gw.clone(), busy.clone(), tx.clone());
        tokio::spawn(async move {
            let reply = honest(&gw, &busy, json!(format!("slow-{i}"))).await;
            let _ = tx.send(reply);
        });
    }
    // Every request of the busy subject is either held at the upstream or answered.
    let mut answered = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    while upstream.held.load(Ordering::SeqCst) + answered.len() < SENT {
        assert!(
            Instant::now() < deadline,
            "held {} answered {:?}",
            upstream.held.load(Ordering::SeqCst),
            answered
                .iter()
                .map(|r: &HttpReply| r.status)
                .collect::<Vec<_>>()
        );
        if let Ok(Some(reply)) =
            tokio::time::timeout(Duration::from_millis(50), replies.recv()).await
        {
            answered.push(reply);
        }
    }
    let reply = honest(&gw, &other, json!(1)).await;
    assert_eq!(
        reply.status,
        StatusCode::OK,
        "another subject while one holds {CAP}: {}",
        reply.body
    );
    assert_eq!(upstream.held.load(Ordering::SeqCst), CAP);
    assert_eq!(answered.len(), SENT - CAP);
    for reply in &answered {
        assert_eq!(
            reply.status,
            StatusCode::TOO_MANY_REQUESTS,
            "{}",
            reply.body
        );
        gateway_support::assert_rpc_error(reply, "subject over its cap");
    }
    let again = honest(&gw, &busy, json!(99)).await;
    assert_eq!(
        again.status,
        StatusCode::TOO_MANY_REQUESTS,
        "{}",
        again.body
    );
    let event = gw
        .wait_event(REFUSAL, "subject_busy for mallory", |d| {
            d["reason"] == "subject_busy" && d["user"] == "mallory"
        })
        .await;
    assert_eq!(event["data"]["status"], 429, "{event}");
    upstream.release.send_replace(true);
    for _ in 0..CAP {
        let reply = tokio::time::timeout(Duration::from_secs(10), replies.recv())
            .await
            .expect("a held request answered once released")
            .expect("reply");
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    }
    let after = honest(&gw, &busy, json!(100)).await;
    assert_eq!(after.status, StatusCode::OK, "{}", after.body);
}
