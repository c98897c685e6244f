//! The gateway role: an MCP security reverse proxy. It serves each configured upstream at
//! `/mcp/<name>`, accepts only tokens issued for it, binds sessions to token subjects, pins tool
//! definitions until approved, and publishes everything on its event stream, where approvers'
//! and responders' commands arrive. See docs/GATEWAY.md.

mod admission;
mod body;
mod events;
pub mod headers;
pub mod jsonrpc;
mod keys;
mod media;
mod metrics;
pub mod pins;
mod proxy;
pub mod redact;
mod review;
mod server_requests;
pub mod sessions;
mod sse;
mod upstream;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, broadcast, mpsc};

use crate::auth::jwks::KeySet;
use crate::auth::jwt::JwtPolicy;
use crate::config::{Config, GatewayConfig, PublisherConfig};
use crate::protocol::events::{ChangeStatus, Revocation, SessionChange};
use crate::protocol::{Command, CommandError, CommandErrorCode, Envelope, EventData};
use crate::store::Store;
use crate::stream::{CommandRequest, Publisher};
use events::EventSink;
use keys::TokenChecker;
use metrics::Metrics;
use pins::Pins;
use sessions::Sessions;
use upstream::{Upstream, UpstreamClient};

/// The gateway's shared state.
pub struct Gateway {
    resource: String,
    authorization_servers: Vec<String>,
    upstreams: HashMap<String, Upstream>,
    client: UpstreamClient,
    tokens: TokenChecker,
    policy: JwtPolicy,
    sessions: Sessions,
    pins: Pins,
    events: EventSink,
    metrics: Arc<Metrics>,
    limiter: Arc<Semaphore>,
    admission: admission::Admission,
    allowed_origins: Vec<String>,
    max_body: usize,
    max_list: usize,
    response_timeout: Duration,
    list_changed: broadcast::Sender<String>,
    server_requests: server_requests::ServerRequests,
}

impl Gateway {
    /// Forgets what a caller whose binding ended was offered and asked (see [`pins`] and
    /// [`server_requests`]).
    fn forget_audience(&self, binding: &str) {
        self.pins.forget(binding);
        self.server_requests.forget(binding);
    }
}

/// Loads the issuers' keys from the configured JWKS file (and HS256 secret, for tests); keys
/// from `jwks_url` come on top, fetched by [`TokenChecker::refresh`].
fn load_keys(config: &GatewayConfig) -> anyhow::Result<KeySet> {
    let mut keys = KeySet::new();
    if let Some(path) = &config.auth.jwks_file {
        keys.extend(
            KeySet::from_file(path)
                .with_context(|| format!("cannot load JWKS {}", path.display()))?,
        );
    }
    if let Some(var) = &config.auth.hs256_secret_env {
        let secret = std::env::var(var)
            .with_context(|| format!("[gateway.auth] hs256_secret_env: {var} is not set"))?;
        keys.extend(KeySet::with_hs256_secret(secret.as_bytes())?);
    }
    if keys.is_empty() && config.auth.jwks_url.is_none() {
        anyhow::bail!(
            "[gateway.auth] no signing keys: set jwks_url or jwks_file (the issuers' JWKS)"
        );
    }
    Ok(keys)
}

/// The configured JWKS URL, checked: https, or http to a loopback host only.
fn jwks_url(config: &GatewayConfig) -> anyhow::Result<Option<String>> {
    match &config.auth.jwks_url {
        None => Ok(None),
        Some(text) => match crate::auth::jwks::JwksSource::parse(text)? {
            crate::auth::jwks::JwksSource::Url(url) => Ok(Some(url)),
            crate::auth::jwks::JwksSource::File(_) => anyhow::bail!(
                "[gateway.auth] jwks_url {text:?} is not a URL: use jwks_file for a file"
            ),
        },
    }
}

/// Runs `mcpsoc gateway` until interrupted.
pub fn run(config: &Config, data: Option<&Path>) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Runtime::new().context("cannot start the async runtime")?;
    runtime.block_on(async {
        let store = crate::runtime::open_store(config, data, "gateway")?;
        let running = start(config, store).await?;
        eprintln!(
            "gateway: serving MCP on {} (resource {}), events on ws://{}/stream",
            running.mcp, config.gateway.resource, running.stream
        );
        tokio::signal::ctrl_c()
            .await
            .context("waiting for Ctrl-C")?;
        Ok(())
    })
}

/// Addresses of a started gateway.
#[derive(Debug, Clone, Copy)]
pub struct Running {
    /// Where MCP clients connect.
    pub mcp: SocketAddr,
    /// The event stream (admin listener).
    pub stream: SocketAddr,
}

/// Starts a gateway on the runtime: its publisher, command owner, housekeeping and listener.
pub async fn start(config: &Config, store: Store) -> anyhow::Result<Running> {
    let gc = &config.gateway;
    if gc.auth.issuers.is_empty() {
        anyhow::bail!("[gateway.auth] issuers is empty: no token could ever be accepted");
    }
    if gc.upstreams.is_empty() {
        anyhow::bail!("[gateway] no upstreams: add [[gateway.upstreams]] with name and url");
    }
    let stream_config = gc.stream.clone().unwrap_or_else(|| PublisherConfig {
        listen: "127.0.0.1:7401".into(),
        ..PublisherConfig::default()
    });
    let options = crate::runtime::publisher_options(&stream_config, "gateway", Default::default())?;
    let metrics = Arc::new(Metrics::default());
    let mut options = options;
    let metrics_for_http = metrics.clone();
    options.http_routes = Some(Arc::new(move |path: &str| {
        (path == "/metrics").then(|| {
            (
                "text/plain; version=0.0.4".to_string(),
                metrics_for_http.render(),
            )
        })
    }));
    let (publisher, inbox) = Publisher::new(store.clone(), options, true);
    let upstreams = gc
        .upstreams
        .iter()
        .map(|u| Upstream::from_config(u).map(|u| (u.name.clone(), u)))
        .collect::<anyhow::Result<HashMap<_, _>>>()?;
    let mut policy = JwtPolicy::new(gc.auth.issuers.clone(), gc.resource.clone());
    policy.leeway = Duration::from_secs(gc.auth.leeway_secs);
    policy.required_scopes = gc.auth.required_scopes.clone();
    let (list_changed, _) = broadcast::channel(64);
    let gateway = Arc::new(Gateway {
        resource: gc.resource.clone(),
        authorization_servers: gc.auth.authorization_servers.clone(),
        upstreams,
        client: upstream::client(Duration::from_secs(gc.connect_timeout_secs))?,
        tokens: TokenChecker::new(load_keys(gc)?, jwks_url(gc)?),
        policy,
        sessions: Sessions::new(
            Duration::from_secs(gc.session_idle_secs),
            Duration::from_secs(gc.session_lifetime_secs),
        ),
        pins: Pins::new(gc.trust_on_first_use),
        events: EventSink::start(publisher.clone()),
        metrics,
        limiter: Arc::new(Semaphore::new(gc.max_concurrency.max(1))),
        admission: admission::Admission::new(gc),
        allowed_origins: gc.allowed_origins.clone(),
        max_body: gc.max_body_bytes,
        max_list: gc.max_list_bytes,
        response_timeout: Duration::from_secs(gc.response_timeout_secs.max(1)),
        list_changed,
        server_requests: Default::default(),
    });
    if let Some(url) = gateway.tokens.url() {
        // Fail closed and loud: without the issuers' keys no token could be accepted.
        let n = gateway
            .tokens
            .refresh(&gateway.client)
            .await
            .with_context(|| format!("[gateway.auth] cannot load the issuers' keys from {url}"))?;
        tracing::info!(url, keys = n, "JWKS loaded");
        tokio::spawn(refresh_keys(
            gateway.clone(),
            Duration::from_secs(gc.auth.jwks_refresh_secs.max(10)),
        ));
    }
    restore(&gateway, &store, publisher.source())?;
    if let Some(inbox) = inbox {
        tokio::spawn(commands(
            gateway.clone(),
            inbox,
            store.clone(),
            publisher.source().to_string(),
        ));
    }
    tokio::spawn(housekeeping(gateway.clone()));
    crate::runtime::spawn_retention(store, crate::runtime::retention(config));
    let (stream_addr, _) = publisher.serve(&stream_config.listen).await?;
    let mcp = serve(gateway, gc).await?;
    Ok(Running {
        mcp,
        stream: stream_addr,
    })
}

/// Rebuilds pins and revocations from the gateway's own log.
fn restore(gateway: &Gateway, store: &Store, source: &str) -> anyhow::Result<()> {
    let decode = |json: &str| Envelope::parse(json).ok().map(|e| e.decode());
    for record in store.pending_changes(usize::MAX)? {
        if let Some(EventData::ToolChange(change)) = decode(&record.json) {
            gateway.pins.restore(&change);
        }
    }
    let (latest, _) = store.newest_of_type(crate::protocol::events::TOOL_CHANGE, None, 100_000)?;
    let mut seen = std::collections::HashSet::new();
    for event in latest.iter().filter(|e| e.source == source) {
        if let Some(EventData::ToolChange(change)) = decode(&event.json)
            && seen.insert((change.upstream.clone(), change.tool.clone()))
            && change.status != ChangeStatus::Pending
        {
            gateway.pins.restore(&change);
        }
    }
    for record in store.sessions(usize::MAX)? {
        if let Some(EventData::Session(session)) = decode(&record.json)
            && session.change == SessionChange::Revoked
        {
            match session.revokes {
                Some(revocation) => gateway.sessions.restore_revocation(revocation),
                // Logged before revocations named what they cut off (a stateless binding
                // `user:client` whose client may have been self-declared): fail closed, the
                // whole subject.
                None if session.session_id.is_none() => {
                    gateway.sessions.restore_revocation(Revocation {
                        issuer: None,
                        subject: session.user.clone(),
                        client_id: None,
                        before: record.time_ms / 1000,
                    })
                }
                None => {}
            }
        }
    }
    Ok(())
}

/// Carries out approve / reject / block / revoke commands from the event stream.
async fn commands(
    gateway: Arc<Gateway>,
    mut inbox: mpsc::Receiver<CommandRequest>,
    store: Store,
    source: String,
) {
    while let Some(request) = inbox.recv().await {
        let result = command(&gateway, (&store, &source), &request.by, request.command).await;
        let _ = request.reply.send(result);
    }
}

/// Revokes the identity of a binding that is no longer live, from its last event in the log.
fn revoke_from_log(
    gateway: &Gateway,
    (store, source): (&Store, &str),
    binding: &str,
    reason: &str,
    now: i64,
) -> Result<Vec<crate::protocol::events::SessionEvent>, CommandError> {
    let not_found = || {
        CommandError::new(
            CommandErrorCode::NotFound,
            format!("no binding {binding} in this gateway's log"),
        )
    };
    let record = store
        .session(source, binding)
        .map_err(|e| CommandError::new(CommandErrorCode::Unavailable, e.to_string()))?
        .ok_or_else(not_found)?;
    let Some(EventData::Session(mut session)) =
        Envelope::parse(&record.json).ok().map(|e| e.decode())
    else {
        return Err(not_found());
    };
    let revocation = Revocation {
        issuer: None,
        subject: session.user.clone(),
        client_id: session.client.client_id.clone(),
        before: now,
    };
    let mut events = gateway
        .sessions
        .revoke_identity(revocation.clone(), binding, reason);
    session.change = SessionChange::Revoked;
    session.reason = Some(reason.to_string());
    session.revokes = Some(revocation);
    events.insert(0, session);
    Ok(events)
}

async fn command(
    gateway: &Gateway,
    log: (&Store, &str),
    by: &str,
    command: Command,
) -> Result<String, CommandError> {
    match command {
        Command::ApproveToolChange {
            upstream,
            tool,
            proposed_hash,
            reason,
        } => {
            let event = gateway
                .pins
                .decide(&upstream, &tool, &proposed_hash, true, by, reason)?;
            gateway.events.emit(EventData::ToolChange(event)).await;
            let _ = gateway.list_changed.send(upstream.clone());
            Ok(format!("{upstream}/{tool} approved at {proposed_hash}"))
        }
        Command::RejectToolChange {
            upstream,
            tool,
            proposed_hash,
            reason,
        } => {
            let event = gateway
                .pins
                .decide(&upstream, &tool, &proposed_hash, false, by, reason)?;
            gateway.events.emit(EventData::ToolChange(event)).await;
            Ok(format!("{upstream}/{tool} rejected at {proposed_hash}"))
        }
        Command::BlockTool {
            upstream,
            tool,
            reason,
        } => {
            for event in gateway.pins.block(&upstream, &tool, by, reason)? {
                gateway.events.emit(EventData::ToolChange(event)).await;
            }
            let _ = gateway.list_changed.send(upstream.clone());
            Ok(format!("{upstream}/{tool} blocked until approved again"))
        }
        Command::RevokeSession { binding, reason } => {
            let reason = reason.unwrap_or_else(|| format!("revoked by {by}"));
            let now = chrono::Utc::now().timestamp();
            let (events, live) = match gateway.sessions.revoke(&binding, &reason, now) {
                Some(events) => {
                    let live = events.len();
                    (events, live)
                }
                // Ended or expired: the log's record of the binding names the identity (its
                // issuer is not recorded: any trusted issuer's tokens of it are refused).
                None => {
                    let events = revoke_from_log(gateway, log, &binding, &reason, now)?;
                    let live = events.len().saturating_sub(1);
                    (events, live)
                }
            };
            let what = events
                .first()
                .and_then(|e| e.revokes.as_ref())
                .map(|r| r.describe())
                .unwrap_or_default();
            for event in events {
                gateway.forget_audience(&event.binding);
                gateway.events.emit(EventData::Session(event)).await;
            }
            Ok(format!(
                "binding {binding} revoked: {what} are refused; {live} live binding(s) ended"
            ))
        }
        Command::AcknowledgeAlert { .. }
        | Command::ResolveAlert { .. }
        | Command::SuppressFinding(_)
        | Command::Unsuppress { .. } => Err(CommandError::new(
            CommandErrorCode::Unsupported,
            "the gateway has no alerts: send this to the monitor",
        )),
    }
}

/// Expires idle sessions and publishes binding activity every 30 s.
async fn housekeeping(gateway: Arc<Gateway>) {
    let mut tick = tokio::time::interval(Duration::from_secs(30));
    tick.tick().await;
    loop {
        tick.tick().await;
        for event in gateway.sessions.expire() {
            gateway.forget_audience(&event.binding);
            gateway.events.emit(EventData::Session(event)).await;
        }
        for event in gateway.sessions.activity() {
            gateway.events.emit(EventData::Session(event)).await;
        }
    }
}

/// Refetches the JWKS URL on a timer, so rotated and withdrawn keys take effect; a failed fetch
/// keeps the keys in force and tries again sooner.
async fn refresh_keys(gateway: Arc<Gateway>, every: Duration) {
    let mut wait = every;
    loop {
        tokio::time::sleep(wait).await;
        wait = match gateway.tokens.refresh(&gateway.client).await {
            Ok(n) => {
                tracing::debug!(keys = n, "JWKS refreshed");
                every
            }
            Err(e) => {
                tracing::warn!(error = %e, "JWKS refresh failed; keeping the keys in force");
                (every / 4).max(Duration::from_secs(10))
            }
        };
    }
}

/// Binds the MCP listener (TLS when configured; plain only on loopback unless allowed). Each
/// client address may hold `max_connections_per_ip` connections; more are closed on accept (see
/// [`admission`]).
async fn serve(gateway: Arc<Gateway>, gc: &GatewayConfig) -> anyhow::Result<SocketAddr> {
    let listener = TcpListener::bind(&gc.listen)
        .await
        .with_context(|| format!("cannot listen on {}", gc.listen))?;
    let local = listener.local_addr()?;
    let tls = match (&gc.tls_cert, &gc.tls_key) {
        (Some(cert), Some(key)) => Some(crate::stream::tls::server_acceptor(cert, key)?),
        (None, None) if !local.ip().is_loopback() && !gc.allow_plain_non_loopback => {
            anyhow::bail!(
                "refusing plain http on non-loopback {local}: set tls_cert and tls_key, or allow_plain_non_loopback = true"
            );
        }
        (None, None) => None,
        _ => anyhow::bail!("[gateway] set both tls_cert and tls_key, or neither"),
    };
    tokio::spawn(admission::record_held_back(gateway.clone()));
    tokio::spawn(async move {
        loop {
            let (tcp, peer) = match listener.accept().await {
                Ok(pair) => pair,
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            };
            let address = admission::address_key(peer.ip());
            let Some(held) = gateway.admission.connections.try_hold(address) else {
                drop(tcp);
                tracing::debug!(%peer, "connection closed: too many open from this address");
                admission::refused_connection(&gateway, admission::TOO_MANY_CONNECTIONS, peer);
                continue;
            };
            let _ = tcp.set_nodelay(true);
            let gateway = gateway.clone();
            let tls = tls.clone();
            tokio::spawn(async move {
                admission::connection(gateway, tcp, peer, tls).await;
                drop(held);
            });
        }
    });
    Ok(local)
}
