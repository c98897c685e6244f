//! The demo's traffic: four users (alice, bob, carol, dave) working through real MCP clients
//! (`rmcp`, Streamable HTTP) with real signed tokens, and the scripted incidents woven in.
//!
//! Ordinary work: each user opens a session with a fresh short-lived token, lists the tools,
//! makes a handful of calls at a gentle pace and closes it, over and over. Incidents, in order
//! (seconds after the start at `--speed 1`): a secret in a result (5), an injection in a result
//! (8), tokens minted for another service (11), a rug pull (14), a replayed session id (17), a
//! new tool with invisible characters (20), a harmless change (23), and a call-rate spike by
//! dave a little over a minute after his first call (the monitor learns a user's rate over a
//! full minute first).
//! Users keep calling the changed tools and report when the gateway's answer changes (refused
//! while a change awaits approval, working again once it is approved).

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rand::Rng;
use rmcp::model::{
    CallToolRequestParams, ClientCapabilities, ClientConfig, Implementation, ProtocolVersion,
};
use rmcp::service::{NotificationContext, RunningService};
use rmcp::transport::StreamableHttpClientTransport;
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use rmcp::{ClientHandler, RoleClient, ServiceError, ServiceExt};
use serde_json::{Value, json};
use tokio::time::Instant;

use super::raw::Raw;
use super::report::{Kind, Report};
use super::server::{self, Workspace};
use super::setup::Issuer;

/// Lifetime of the users' access tokens, seconds (sessions are renewed well before).
const TOKEN_TTL_SECS: i64 = 180;
/// How the gateway's answer to a refused tool call begins (an `isError` result).
const GATEWAY_REFUSAL: &str = "refused by the mcpsoc gateway: ";
/// The audience of the token meant for another service.
const OTHER_AUDIENCE: &str = "https://api.mail-relay.example";

/// One demo user and the client they use.
#[derive(Debug, Clone, Copy)]
struct User {
    name: &'static str,
    client: &'static str,
    version: &'static str,
    client_id: &'static str,
    /// Seconds between calls at speed 1.
    pace: f64,
}

const ALICE: User = User {
    name: "alice",
    client: "claude-desktop",
    version: "0.14.2",
    client_id: "alice-desktop",
    pace: 3.0,
};
const BOB: User = User {
    name: "bob",
    client: "cursor",
    version: "2.1.0",
    client_id: "bob-cursor",
    pace: 3.5,
};
const CAROL: User = User {
    name: "carol",
    client: "vscode-copilot",
    version: "1.104.0",
    client_id: "carol-vscode",
    pace: 4.0,
};
const DAVE: User = User {
    name: "dave",
    client: "claude-code",
    version: "2.0.31",
    client_id: "dave-cli",
    pace: 12.0,
};

/// The rmcp client side of one session: remembers `notifications/tools/list_changed`.
#[derive(Clone)]
struct Agent {
    info: ClientConfig,
    changed: Arc<AtomicBool>,
}

impl ClientHandler for Agent {
    fn get_info(&self) -> ClientConfig {
        self.info.clone()
    }

    async fn on_tool_list_changed(&self, _context: NotificationContext<RoleClient>) {
        self.changed.store(true, Ordering::Relaxed);
    }
}

/// One open MCP session of a user, through the gateway.
struct Session {
    user: User,
    service: RunningService<RoleClient, Agent>,
    changed: Arc<AtomicBool>,
}

/// How the gateway and server answered one call.
#[derive(Debug, Clone, PartialEq)]
enum Outcome {
    Works,
    Refused(String),
    Failed(String),
    /// The session itself failed (revoked, expired, the gateway restarted, no answer).
    Broken(String),
}

impl Outcome {
    fn class(&self) -> &'static str {
        match self {
            Self::Works => "works",
            Self::Refused(_) => "refused",
            Self::Failed(_) | Self::Broken(_) => "failed",
        }
    }
}

/// Call counters for the summaries.
#[derive(Debug, Default)]
struct Stats {
    calls: AtomicU64,
    refused: AtomicU64,
    sessions: AtomicU64,
}

/// What the scripted changes have done so far, as the users know it.
#[derive(Debug, Default)]
struct Known {
    hidden_tool: AtomicBool,
    weather_units: AtomicBool,
}

/// Where the scripted changes are made.
#[derive(Clone)]
pub enum ScriptTarget {
    /// The sample server's workspace in this process (the all-in-one demo).
    Local(Arc<Workspace>),
    /// A sample server in another process, through its `POST /demo/<change>` endpoints
    /// (`mcpsoc demo server`); the client is made for `http://host:port/demo`.
    Remote(Box<Raw>),
}

impl ScriptTarget {
    /// The control endpoints of the sample server whose MCP endpoint is `server_url`.
    pub fn remote(server_url: &str) -> anyhow::Result<Self> {
        let uri: hyper::Uri = server_url
            .parse()
            .map_err(|e| anyhow::anyhow!("--server {server_url:?}: not a URL ({e})"))?;
        let authority = uri
            .authority()
            .ok_or_else(|| anyhow::anyhow!("--server {server_url:?}: no host:port"))?;
        let scheme = uri.scheme_str().unwrap_or("http");
        let control = format!("{scheme}://{authority}/demo");
        Ok(Self::Remote(Box::new(Raw::new(&control))))
    }

    /// Carries out one scripted change (see [`Workspace::apply`]).
    pub async fn apply(&self, change: &str) -> anyhow::Result<()> {
        match self {
            Self::Local(workspace) => {
                if workspace.apply(change).await {
                    Ok(())
                } else {
                    anyhow::bail!("unknown scripted change {change}")
                }
            }
            Self::Remote(raw) => {
                let response = raw.post_empty(change).await?;
                if response.status == 200 {
                    Ok(())
                } else {
                    anyhow::bail!(
                        "the sample server answered {change} with HTTP {}: {}",
                        response.status,
                        response.body.trim()
                    )
                }
            }
        }
    }
}

/// The traffic generator.
pub struct Traffic {
    url: String,
    resource: String,
    issuer: Arc<Issuer>,
    target: ScriptTarget,
    report: Report,
    speed: f64,
    stats: Stats,
    known: Known,
    outcomes: Mutex<HashMap<(String, String), String>>,
    /// When dave made his calls (Unix ms), for the time and size of his spike.
    dave_calls: Mutex<Vec<i64>>,
}

/// The monitor's call-rate window: a baseline exists once a user has a full window of history.
const RATE_WINDOW_MS: i64 = 60_000;

impl Traffic {
    /// Traffic through the gateway's MCP endpoint `url` (whose resource URI is `resource`),
    /// with tokens from `issuer`; the scripted changes go to `target`.
    pub fn new(
        url: String,
        resource: String,
        issuer: Arc<Issuer>,
        target: ScriptTarget,
        report: Report,
        speed: f64,
    ) -> Arc<Self> {
        Arc::new(Self {
            url,
            resource,
            issuer,
            target,
            report,
            speed,
            stats: Stats::default(),
            known: Known::default(),
            outcomes: Mutex::new(HashMap::new()),
            dave_calls: Mutex::new(Vec::new()),
        })
    }

    fn scaled(&self, secs: f64) -> Duration {
        Duration::from_secs_f64((secs / self.speed).max(0.0))
    }

    async fn connect(&self, user: User) -> anyhow::Result<Session> {
        let token =
            self.issuer
                .access_token(user.name, user.client_id, &self.resource, TOKEN_TTL_SECS)?;
        let config =
            StreamableHttpClientTransportConfig::with_uri(self.url.as_str()).auth_header(token);
        let transport = StreamableHttpClientTransport::from_config(config);
        let changed = Arc::new(AtomicBool::new(false));
        let agent = Agent {
            info: ClientConfig::new(
                ClientCapabilities::default(),
                Implementation::new(user.client, user.version),
            )
            .with_protocol_version(ProtocolVersion::V_2025_11_25),
            changed: changed.clone(),
        };
        let service = tokio::time::timeout(Duration::from_secs(10), agent.serve(transport))
            .await
            .map_err(|_| anyhow::anyhow!("{}: no session within 10 s", user.name))?
            .map_err(|e| anyhow::anyhow!("{}: cannot open a session: {e}", user.name))?;
        self.stats.sessions.fetch_add(1, Ordering::Relaxed);
        Ok(Session {
            user,
            service,
            changed,
        })
    }

    /// Lists the tools (what the gateway shows: approved definitions only).
    async fn list(&self, session: &Session) -> anyhow::Result<Vec<String>> {
        session.changed.store(false, Ordering::Relaxed);
        let tools = tokio::time::timeout(Duration::from_secs(10), session.service.list_all_tools())
            .await
            .map_err(|_| anyhow::anyhow!("tools/list: no answer within 10 s"))??;
        Ok(tools.into_iter().map(|t| t.name.to_string()).collect())
    }

    /// Calls a tool and records how it went.
    async fn call(&self, session: &Session, tool: &str, args: Value) -> Outcome {
        if session.changed.load(Ordering::Relaxed) {
            // The server said its tools changed: list again, as a client would.
            let _ = self.list(session).await;
        }
        let mut params = CallToolRequestParams::new(tool.to_string());
        if let Value::Object(map) = args {
            params = params.with_arguments(map);
        }
        let answer =
            tokio::time::timeout(Duration::from_secs(15), session.service.call_tool(params)).await;
        let outcome = match answer {
            Err(_) => Outcome::Broken("no answer within 15 s".into()),
            Ok(Ok(result)) if result.is_error == Some(true) => {
                let text = first_text(&serde_json::to_value(&result).unwrap_or_default());
                // The gateway answers a refused call like a failed tool, saying why.
                match text.strip_prefix(GATEWAY_REFUSAL) {
                    Some(why) => Outcome::Refused(why.to_string()),
                    None => Outcome::Failed(text),
                }
            }
            Ok(Ok(_)) => Outcome::Works,
            Ok(Err(ServiceError::McpError(e))) => Outcome::Refused(e.message.to_string()),
            Ok(Err(e)) => Outcome::Broken(e.to_string()),
        };
        self.stats.calls.fetch_add(1, Ordering::Relaxed);
        if matches!(outcome, Outcome::Refused(_)) {
            self.stats.refused.fetch_add(1, Ordering::Relaxed);
        }
        if session.user.name == DAVE.name {
            self.dave_calls
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .push(chrono::Utc::now().timestamp_millis());
        }
        self.note(session.user.name, tool, &outcome);
        outcome
    }

    /// Reports a user's outcome for a tool when it changes (or first is not a success).
    fn note(&self, user: &str, tool: &str, outcome: &Outcome) {
        let key = (user.to_string(), tool.to_string());
        let class = outcome.class().to_string();
        let previous = self
            .outcomes
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(key, class.clone());
        let changed = match &previous {
            None => !matches!(outcome, Outcome::Works),
            Some(before) => *before != class,
        };
        if !changed {
            return;
        }
        let text = match outcome {
            Outcome::Works if previous.is_some() => format!("{user} → {tool}: works again"),
            Outcome::Works => format!("{user} → {tool}: works"),
            Outcome::Refused(why) => format!("{user} → {tool}: refused by the gateway: {why}"),
            Outcome::Failed(why) | Outcome::Broken(why) => {
                format!("{user} → {tool}: failed: {}", short(why, 160))
            }
        };
        self.report.line(Kind::Traffic, text);
    }

    async fn close(&self, session: Session) {
        let _ = tokio::time::timeout(Duration::from_secs(5), session.service.cancel()).await;
    }

    /// Opens a session and lists once, so that the gateway reviews the current definitions.
    pub async fn prime(&self) -> anyhow::Result<Vec<String>> {
        let session = self.connect(ALICE).await?;
        let tools = self.list(&session).await;
        self.close(session).await;
        tools
    }

    /// Starts the users, the incident script, the spike and the summaries.
    pub fn start(self: &Arc<Self>, duration: Option<Duration>) {
        for user in [ALICE, BOB, CAROL, DAVE] {
            tokio::spawn(self.clone().work(user));
        }
        tokio::spawn(self.clone().script());
        tokio::spawn(self.clone().spike(duration));
        tokio::spawn(self.clone().summaries());
    }

    /// One user's ordinary work, session after session.
    async fn work(self: Arc<Self>, user: User) {
        // Spread the first sessions a little.
        let mut offset = 0.3 * user.name.len() as f64;
        loop {
            tokio::time::sleep(self.scaled(offset)).await;
            offset = 1.0;
            let session = match self.connect(user).await {
                Ok(session) => session,
                Err(e) => {
                    tracing::warn!(user = user.name, error = %e, "demo traffic: no session");
                    tokio::time::sleep(Duration::from_secs(2)).await;
                    continue;
                }
            };
            if let Err(e) = self.list(&session).await {
                tracing::warn!(user = user.name, error = %e, "demo traffic: tools/list failed");
            }
            let rounds = rand::rng().random_range(5..9);
            for round in 0..rounds {
                let (tool, args) = self.next_action(user, round);
                if let Outcome::Broken(why) = self.call(&session, tool, args).await {
                    // Revoked, expired or gone with a restarted gateway: start a new one.
                    self.report.line(
                        Kind::Traffic,
                        format!(
                            "{}'s session ended under them ({}): opening a new one",
                            user.name,
                            short(&why, 120)
                        ),
                    );
                    break;
                }
                let jitter = rand::rng().random_range(0.7..1.3);
                tokio::time::sleep(self.scaled(user.pace * jitter)).await;
            }
            self.close(session).await;
        }
    }

    /// What a user does next: ordinary work, plus the changed tools they keep trying.
    fn next_action(&self, user: User, round: u32) -> (&'static str, Value) {
        let mut rng = rand::rng();
        let pick = |options: &[&'static str], rng: &mut rand::rngs::ThreadRng| {
            options[rng.random_range(0..options.len())]
        };
        match user.name {
            "alice" => match round % 3 {
                // alice reads a file in every other call, rug pull or not.
                0 | 2 => (
                    "read_file",
                    json!({"path": pick(&["README.md", "notes/standup.md", "notes/roadmap.md"], &mut rng)}),
                ),
                _ => {
                    if rng.random_bool(0.5) {
                        (
                            "list_directory",
                            json!({"path": pick(&["", "notes", "src"], &mut rng)}),
                        )
                    } else {
                        ("get_weather", json!({"city": "Berlin"}))
                    }
                }
            },
            "bob" => match round % 3 {
                0 => (
                    "search_issues",
                    json!({"query": pick(&["retry queue", "invoice export", "outage"], &mut rng)}),
                ),
                1 => ("read_file", json!({"path": "notes/standup.md"})),
                _ => (
                    "send_email",
                    json!({"to": "team@payments.example", "subject": "stand-up notes", "body": "Notes from today's stand-up are in notes/standup.md."}),
                ),
            },
            "carol" => {
                if round % 3 == 2 && self.known.hidden_tool.load(Ordering::Relaxed) {
                    // carol's agent heard of the new tool and keeps trying it.
                    return (server::HIDDEN_TOOL, json!({"path": "notes/roadmap.md"}));
                }
                if round.is_multiple_of(2) {
                    let mut args = json!({"city": pick(&["Lisbon", "Oslo", "Madrid"], &mut rng)});
                    if self.known.weather_units.load(Ordering::Relaxed)
                        && let Some(map) = args.as_object_mut()
                    {
                        map.insert("units".into(), json!("imperial"));
                    }
                    ("get_weather", args)
                } else {
                    (
                        "search_issues",
                        json!({"query": pick(&["report rounding", "invoice export"], &mut rng)}),
                    )
                }
            }
            _ => (
                "search_issues",
                json!({"query": pick(&["quarterly report", "report totals"], &mut rng)}),
            ),
        }
    }

    /// The scripted incidents, in order.
    async fn script(self: Arc<Self>) {
        let start = Instant::now();
        let at = |secs: f64| start + self.scaled(secs);

        tokio::time::sleep_until(at(5.0)).await;
        self.report.line(
            Kind::Incident,
            format!(
                "secret-leak: bob reads {}; the file holds an AWS access key, which reaches his client (the gateway redacts it in its events, the monitor alerts)",
                server::SECRET_FILE
            ),
        );
        self.once(BOB, "read_file", json!({"path": server::SECRET_FILE}))
            .await;

        tokio::time::sleep_until(at(8.0)).await;
        self.report.line(
            Kind::Incident,
            format!(
                "injection: carol searches issues for {:?}; a comment in the result tells the model to mail ~/.aws/credentials out",
                server::INJECTION_QUERY
            ),
        );
        self.once(
            CAROL,
            "search_issues",
            json!({"query": server::INJECTION_QUERY}),
        )
        .await;

        tokio::time::sleep_until(at(11.0)).await;
        self.wrong_audience().await;

        tokio::time::sleep_until(at(14.0)).await;
        self.report.line(
            Kind::Incident,
            format!(
                "rug-pull: the server swaps {}'s description for a poisoned one (hidden <IMPORTANT> instructions to read ~/.ssh/id_rsa into a new 'context' parameter) and sends tools/list_changed; the gateway holds the new definition until an approver decides (console: 4 Approvals)",
                server::RUG_PULL_TOOL
            ),
        );
        self.change(server::CONTROL_RUG_PULL).await;
        self.relist(ALICE).await;

        tokio::time::sleep_until(at(17.0)).await;
        self.session_replay().await;

        tokio::time::sleep_until(at(20.0)).await;
        self.report.line(
            Kind::Incident,
            format!(
                "hidden-tool: a new tool {} appears whose description hides zero-width and Unicode tag characters (an invisible instruction); it waits for approval",
                server::HIDDEN_TOOL
            ),
        );
        self.change(server::CONTROL_HIDDEN_TOOL).await;
        self.known.hidden_tool.store(true, Ordering::Relaxed);
        self.relist(CAROL).await;

        tokio::time::sleep_until(at(23.0)).await;
        self.report.line(
            Kind::Incident,
            format!(
                "benign-change: {} gains an optional 'units' parameter (harmless); calls to it are refused until an approver approves the new definition",
                server::BENIGN_CHANGE_TOOL
            ),
        );
        self.change(server::CONTROL_BENIGN_CHANGE).await;
        self.known.weather_units.store(true, Ordering::Relaxed);
        self.relist(CAROL).await;
        tokio::spawn(self.clone().keep_trying(
            CAROL,
            server::BENIGN_CHANGE_TOOL,
            json!({"city": "Lisbon", "units": "imperial"}),
        ));
    }

    /// Calls a changed tool until it works (an approver approved it), every 1.5 s at speed 1;
    /// the transitions (refused, works again) are reported.
    async fn keep_trying(self: Arc<Self>, user: User, tool: &'static str, args: Value) {
        let mut session: Option<Session> = None;
        for attempt in 0u32.. {
            // Renew the session (and its short-lived token) now and then.
            if attempt.is_multiple_of(20)
                && let Some(old) = session.take()
            {
                self.close(old).await;
            }
            if session.is_none() {
                match self.connect(user).await {
                    Ok(fresh) => {
                        let _ = self.list(&fresh).await;
                        session = Some(fresh);
                    }
                    Err(e) => {
                        tracing::warn!(user = user.name, error = %e, "demo traffic: no session")
                    }
                }
            }
            if let Some(open) = &session {
                match self.call(open, tool, args.clone()).await {
                    Outcome::Works => break,
                    Outcome::Broken(_) => {
                        if let Some(old) = session.take() {
                            self.close(old).await;
                        }
                    }
                    _ => {}
                }
            }
            tokio::time::sleep(self.scaled(1.5)).await;
        }
        if let Some(open) = session {
            self.close(open).await;
        }
    }

    /// One call in a session of its own.
    async fn once(&self, user: User, tool: &str, args: Value) {
        match self.connect(user).await {
            Ok(session) => {
                let _ = self.list(&session).await;
                self.call(&session, tool, args).await;
                self.close(session).await;
            }
            Err(e) => self
                .report
                .line(Kind::Demo, format!("{} could not connect: {e}", user.name)),
        }
    }

    /// Makes a scripted change at the sample server; a failure is reported.
    async fn change(&self, change: &str) {
        if let Err(e) = self.target.apply(change).await {
            self.report.line(
                Kind::Demo,
                format!("scripted change {change} failed: {e:#}"),
            );
        }
    }

    /// Brings the sample server back to its initial tools (a fresh run against a server that
    /// an earlier run changed).
    pub async fn reset_server(&self) -> anyhow::Result<()> {
        self.target.apply(server::CONTROL_RESET).await
    }

    /// A listing, so that the gateway reviews the changed definitions at once.
    async fn relist(&self, user: User) {
        if let Ok(session) = self.connect(user).await {
            let _ = self.list(&session).await;
            self.close(session).await;
        }
    }

    /// A reporting bot presents a token minted for another service (token passthrough).
    async fn wrong_audience(&self) {
        let tries = 6;
        self.report.line(
            Kind::Incident,
            format!(
                "wrong-audience: reports-bot (svc-reports) presents a token minted for {OTHER_AUDIENCE}, {tries} times (token passthrough / confused deputy)"
            ),
        );
        let raw = Raw::new(&self.url);
        let mut statuses = Vec::new();
        for _ in 0..tries {
            let status = match self.issuer.access_token(
                "svc-reports",
                "reports-bot",
                OTHER_AUDIENCE,
                TOKEN_TTL_SECS,
            ) {
                Ok(token) => match raw
                    .post(&token, None, &Raw::initialize("reports-bot"))
                    .await
                {
                    Ok(response) => response.status.to_string(),
                    Err(e) => format!("error ({e})"),
                },
                Err(e) => format!("error ({e})"),
            };
            statuses.push(status);
            tokio::time::sleep(self.scaled(0.4)).await;
        }
        self.report.line(
            Kind::Traffic,
            format!(
                "reports-bot's wrong-audience tokens got HTTP {}",
                statuses.join(", ")
            ),
        );
    }

    /// mallory presents alice's session id with mallory's own valid token.
    async fn session_replay(&self) {
        let raw = Raw::new(&self.url);
        let tokens = (
            self.issuer
                .access_token(ALICE.name, ALICE.client_id, &self.resource, TOKEN_TTL_SECS),
            self.issuer
                .access_token("mallory", "mallory-laptop", &self.resource, TOKEN_TTL_SECS),
        );
        let (Ok(alice), Ok(mallory)) = tokens else {
            self.report
                .line(Kind::Demo, "session-replay skipped: cannot mint tokens");
            return;
        };
        let session = match raw.post(&alice, None, &Raw::initialize(ALICE.client)).await {
            Ok(response) if response.status == 200 => response.session,
            Ok(response) => {
                self.report.line(
                    Kind::Demo,
                    format!(
                        "session-replay skipped: alice's initialize got HTTP {}",
                        response.status
                    ),
                );
                return;
            }
            Err(e) => {
                self.report
                    .line(Kind::Demo, format!("session-replay skipped: {e}"));
                return;
            }
        };
        let Some(session) = session else {
            self.report
                .line(Kind::Demo, "session-replay skipped: no session id issued");
            return;
        };
        let initialized = json!({"jsonrpc": "2.0", "method": "notifications/initialized"});
        let _ = raw.post(&alice, Some(&session), &initialized).await;
        let short_id: String = session.chars().take(12).collect();
        self.report.line(
            Kind::Incident,
            format!(
                "session-replay: mallory (mallory-laptop) sends alice's session id {short_id}… with mallory's own valid token"
            ),
        );
        let list = json!({"jsonrpc": "2.0", "id": 2, "method": "tools/list"});
        let outcome = match raw.post(&mallory, Some(&session), &list).await {
            Ok(response) => format!("HTTP {}", response.status),
            Err(e) => format!("error ({e})"),
        };
        self.report.line(
            Kind::Traffic,
            format!("mallory's replay of alice's session got {outcome}"),
        );
        let _ = raw.delete(&alice, &session).await;
    }

    /// dave's call-rate spike, a little over a minute after his first call: the monitor
    /// compares the calls of a sliding minute with a baseline learned from the minutes before,
    /// so dave needs a full minute of ordinary work first (real time, whatever `--speed`).
    async fn spike(self: Arc<Self>, duration: Option<Duration>) {
        let started = Instant::now();
        let first_ms = loop {
            let first = self
                .dave_calls
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .first()
                .copied();
            if let Some(ms) = first {
                break ms;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        };
        let now_ms = chrono::Utc::now().timestamp_millis();
        let at_ms = first_ms + RATE_WINDOW_MS + 2_000;
        let wait = Duration::from_millis((at_ms - now_ms).max(0) as u64);
        let when = chrono::DateTime::from_timestamp_millis(at_ms)
            .map(|t| t.format("%H:%M:%S").to_string())
            .unwrap_or_default();
        let note = match duration {
            Some(d) if started.elapsed() + wait > d => {
                " (after --duration ends: run longer to see it)"
            }
            _ => "",
        };
        self.report.line(
            Kind::Demo,
            format!(
                "dave's call-rate spike comes at {when} UTC, a minute after his first call (the monitor learns his rate over a full minute first){note}"
            ),
        );
        tokio::time::sleep(wait).await;
        let previous = {
            let since = chrono::Utc::now().timestamp_millis() - RATE_WINDOW_MS;
            let calls = self.dave_calls.lock().unwrap_or_else(|p| p.into_inner());
            calls.iter().filter(|&&t| t > since).count() as u64
        };
        let burst = 40.max(5 * previous + 10);
        self.report.line(
            Kind::Incident,
            format!(
                "rate-spike: dave's client suddenly makes {burst} calls in a few seconds (he made {previous} in the last minute)"
            ),
        );
        let session = match self.connect(DAVE).await {
            Ok(session) => session,
            Err(e) => {
                self.report
                    .line(Kind::Demo, format!("rate-spike skipped: {e}"));
                return;
            }
        };
        let _ = self.list(&session).await;
        let mut answered = 0;
        for i in 0..burst {
            let query = ["quarterly report", "report totals", "invoice export"][i as usize % 3];
            if self
                .call(&session, "search_issues", json!({"query": query}))
                .await
                == Outcome::Works
            {
                answered += 1;
            }
            tokio::time::sleep(Duration::from_millis(40)).await;
        }
        self.close(session).await;
        self.report.line(
            Kind::Traffic,
            format!("dave's burst: {answered} of {burst} calls answered"),
        );
    }

    /// A line about the traffic every 15 s.
    async fn summaries(self: Arc<Self>) {
        let mut tick = tokio::time::interval(Duration::from_secs(15));
        tick.tick().await;
        loop {
            tick.tick().await;
            let calls = self.stats.calls.load(Ordering::Relaxed);
            let refused = self.stats.refused.load(Ordering::Relaxed);
            let sessions = self.stats.sessions.load(Ordering::Relaxed);
            self.report.line(
                Kind::Traffic,
                format!(
                    "so far: {calls} tool calls in {sessions} sessions by alice, bob, carol and dave; {refused} refused by the gateway"
                ),
            );
        }
    }
}

/// The first text content of a tool result.
fn first_text(result: &Value) -> String {
    result
        .pointer("/content/0/text")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string()
}

/// At most `n` characters.
fn short(text: &str, n: usize) -> String {
    match text.char_indices().nth(n) {
        Some((end, _)) => format!("{}…", &text[..end]),
        None => text.to_string(),
    }
}
