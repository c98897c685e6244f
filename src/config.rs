//! `mcpsoc.toml`: one configuration format shared by every role, with defaults for everything.
//!
//! Unknown keys are refused (a typo must not silently turn a security setting off), and a bad
//! file is reported with its path, line, column and reason.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::auth::{Role, StreamGrant, TokenTable};

/// A configuration file that could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("{path}: cannot read: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not valid for mcpsoc.
    #[error("{path}:{line}:{column}: {reason}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// 1-based line.
        line: usize,
        /// 1-based column.
        column: usize,
        /// What is wrong.
        reason: String,
    },
}

/// The whole configuration.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Local store settings shared by every role.
    pub store: StoreConfig,
    /// The gateway: listener, token policy, upstreams, its event stream.
    pub gateway: GatewayConfig,
    /// The monitor: the gateway streams it reads, its alert stream, rules and thresholds.
    pub monitor: MonitorConfig,
    /// The console: sources, theme, keys.
    pub console: ConsoleConfig,
    /// `mcpsoc replay`'s stream.
    pub replay: RoleConfig,
}

/// Store settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StoreConfig {
    /// sled page cache, MiB.
    pub cache_mb: u64,
    /// Background flush interval, ms.
    pub flush_every_ms: u64,
    /// Drop events older than this many days (0 keeps forever).
    pub retention_days: u64,
    /// Drop the oldest events while stored event JSON exceeds this many MiB (0: no limit).
    pub retention_max_mb: u64,
}

impl Default for StoreConfig {
    fn default() -> Self {
        Self {
            cache_mb: 64,
            flush_every_ms: 500,
            retention_days: 30,
            retention_max_mb: 4096,
        }
    }
}

/// Settings of one role: the stream it publishes (if any) and the sources it reads (if any).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RoleConfig {
    /// The role's own event stream.
    pub stream: Option<PublisherConfig>,
    /// Streams this role subscribes to.
    pub sources: Vec<SourceConfig>,
}

/// The gateway's settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GatewayConfig {
    /// Address MCP clients connect to.
    pub listen: String,
    /// This gateway's canonical resource URI: tokens must carry exactly this audience.
    pub resource: String,
    /// PEM certificate chain for https.
    pub tls_cert: Option<PathBuf>,
    /// PEM private key for https.
    pub tls_key: Option<PathBuf>,
    /// Allow plain http on a non-loopback address.
    pub allow_plain_non_loopback: bool,
    /// Origins allowed when a request carries `Origin` (DNS-rebinding protection).
    pub allowed_origins: Vec<String>,
    /// Largest request body, bytes.
    pub max_body_bytes: usize,
    /// Largest `tools/list` response the gateway buffers to pin tools, bytes.
    pub max_list_bytes: usize,
    /// Upstream connect timeout, seconds.
    pub connect_timeout_secs: u64,
    /// Upstream response (headers) timeout, seconds.
    pub response_timeout_secs: u64,
    /// Requests handled at once; more are refused with 503. A POST takes its place only once
    /// its body is complete, so slow bodies cannot hold one.
    pub max_concurrency: usize,
    /// Time a client has to send a request's headers, seconds (HTTP/1.1: each request, and
    /// the idle wait between keep-alive requests; any connection: its first request, TLS
    /// handshake included). Over it the connection is closed.
    pub header_timeout_secs: u64,
    /// Time a client has to send a whole request body once its headers are in, seconds; over
    /// it, 408 and a `refusal` event (`body_timeout`).
    pub body_timeout_secs: u64,
    /// Open connections per client address (IPv6: per /64); more are closed on accept, and
    /// recorded as `too_many_connections` (one event per address per 10 s, with a count).
    pub max_connections_per_ip: usize,
    /// Requests in flight per token subject; more are refused with 429 (`subject_busy`).
    pub max_inflight_per_subject: usize,
    /// Accept brand-new tools without approval (changes always need approval).
    pub trust_on_first_use: bool,
    /// Session idle timeout, seconds.
    pub session_idle_secs: u64,
    /// Session absolute lifetime, seconds.
    pub session_lifetime_secs: u64,
    /// Token validation.
    pub auth: GatewayAuthConfig,
    /// The MCP servers behind the gateway, each served at `/mcp/<name>`.
    pub upstreams: Vec<UpstreamConfig>,
    /// The gateway's event stream (its admin listener).
    pub stream: Option<PublisherConfig>,
}

impl Default for GatewayConfig {
    fn default() -> Self {
        Self {
            listen: "127.0.0.1:7480".into(),
            resource: "http://127.0.0.1:7480".into(),
            tls_cert: None,
            tls_key: None,
            allow_plain_non_loopback: false,
            allowed_origins: Vec::new(),
            max_body_bytes: 4 * 1024 * 1024,
            max_list_bytes: 16 * 1024 * 1024,
            connect_timeout_secs: 5,
            response_timeout_secs: 60,
            max_concurrency: 512,
            header_timeout_secs: 10,
            body_timeout_secs: 30,
            max_connections_per_ip: 64,
            max_inflight_per_subject: 64,
            trust_on_first_use: false,
            session_idle_secs: 1800,
            session_lifetime_secs: 86_400,
            auth: GatewayAuthConfig::default(),
            upstreams: Vec::new(),
            stream: None,
        }
    }
}

/// How the gateway validates bearer tokens.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GatewayAuthConfig {
    /// Trusted issuers (`iss`).
    pub issuers: Vec<String>,
    /// JWKS file of the issuers' signing keys.
    pub jwks_file: Option<PathBuf>,
    /// JWKS URL of the issuers' signing keys (fetched at start, every `jwks_refresh_secs`
    /// and, at most once a minute, when a token names an unknown key id).
    pub jwks_url: Option<String>,
    /// Seconds between JWKS URL refetches (at least 10).
    pub jwks_refresh_secs: u64,
    /// Environment variable with an HS256 secret (tests only; off unless set).
    pub hs256_secret_env: Option<String>,
    /// Clock leeway for `exp` / `nbf`, seconds.
    pub leeway_secs: u64,
    /// Authorization servers advertised in the protected resource metadata.
    pub authorization_servers: Vec<String>,
    /// Scopes every request needs.
    pub required_scopes: Vec<String>,
}

impl Default for GatewayAuthConfig {
    fn default() -> Self {
        Self {
            issuers: Vec::new(),
            jwks_file: None,
            jwks_url: None,
            jwks_refresh_secs: 300,
            hs256_secret_env: None,
            leeway_secs: 30,
            authorization_servers: Vec::new(),
            required_scopes: Vec::new(),
        }
    }
}

/// One MCP server behind the gateway.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpstreamConfig {
    /// Name; served at `/mcp/<name>`.
    pub name: String,
    /// The server's Streamable HTTP endpoint, e.g. `http://127.0.0.1:3901/mcp`.
    pub url: String,
    /// Scopes a token needs for this upstream.
    #[serde(default)]
    pub scopes: Vec<String>,
    /// Extra scopes per tool.
    #[serde(default)]
    pub tool_scopes: std::collections::HashMap<String, Vec<String>>,
    /// Environment variable holding the gateway's own credential for this upstream (sent as
    /// `Authorization: Bearer`); the client's token is never forwarded.
    #[serde(default)]
    pub credential_env: Option<String>,
    /// File holding that credential (first line).
    #[serde(default)]
    pub credential_file: Option<PathBuf>,
}

/// The monitor's settings.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MonitorConfig {
    /// The monitor's alert stream.
    pub stream: Option<PublisherConfig>,
    /// Gateway streams to watch (a responder token there enables containment).
    pub sources: Vec<SourceConfig>,
    /// Per rule (`hidden.zero_width`) or family (`hidden`): `{ enabled, severity }`.
    pub rules: std::collections::BTreeMap<String, crate::monitor::detect::RuleConfig>,
    /// Thresholds of the stateful detectors.
    pub thresholds: MonitorThresholds,
    /// Automatic containment, off unless listed.
    pub containment: Vec<ContainmentRule>,
}

/// Thresholds of the stateful detectors.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MonitorThresholds {
    /// Repeated findings on one subject within this window fold into one alert.
    pub fold_window_secs: u64,
    /// Refused tokens from one client or address within the burst window that raise an alert.
    pub auth_burst_count: u32,
    /// Burst window, seconds.
    pub burst_window_secs: u64,
    /// Errors of one tool within the burst window that raise an alert.
    pub error_burst_count: u32,
    /// A result larger than this many bytes is possible exfiltration.
    pub large_result_bytes: u64,
    /// Calls per minute below which no spike is raised.
    pub rate_spike_min_calls: u32,
    /// A minute with this many times the baseline calls is a spike.
    pub rate_spike_factor: f64,
    /// Live sessions of one user above which an alert is raised.
    pub sessions_per_user: u32,
    /// Calls a user must have made before a first use of a tool is worth an alert.
    pub first_use_after_calls: u32,
}

impl Default for MonitorThresholds {
    fn default() -> Self {
        Self {
            fold_window_secs: 600,
            auth_burst_count: 5,
            burst_window_secs: 60,
            error_burst_count: 10,
            large_result_bytes: 1_000_000,
            rate_spike_min_calls: 30,
            rate_spike_factor: 5.0,
            sessions_per_user: 20,
            first_use_after_calls: 20,
        }
    }
}

/// Contain automatically on an alert of a rule (or family) at or above a severity.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ContainmentRule {
    /// Rule id or family name.
    pub rule: String,
    /// Least severity that triggers it.
    pub min_severity: crate::protocol::events::Severity,
    /// `revoke_session` or `block_tool`.
    pub action: ContainmentAction,
}

/// What automatic containment does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ContainmentAction {
    /// Revoke the alert's session binding at the gateway.
    RevokeSession,
    /// Block the alert's tool at the gateway.
    BlockTool,
}

/// The console's settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ConsoleConfig {
    /// Streams to show.
    pub sources: Vec<SourceConfig>,
    /// Theme name (dark, light, high-contrast) or path of a theme file.
    pub theme: String,
    /// Ring the terminal bell on new critical alerts.
    pub bell: bool,
    /// Key bindings: action name to one key or a list of keys.
    pub keys: std::collections::HashMap<String, KeyList>,
}

impl Default for ConsoleConfig {
    fn default() -> Self {
        Self {
            sources: Vec::new(),
            theme: "dark".into(),
            bell: true,
            keys: Default::default(),
        }
    }
}

/// One key or several, as written in `[console.keys]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum KeyList {
    /// `quit = "q"`
    One(String),
    /// `quit = ["q", "ctrl-c"]`
    Many(Vec<String>),
}

impl KeyList {
    /// The keys as a list.
    pub fn to_vec(&self) -> Vec<String> {
        match self {
            Self::One(k) => vec![k.clone()],
            Self::Many(ks) => ks.clone(),
        }
    }
}

/// A publisher's listener and its subscribers.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PublisherConfig {
    /// Address to listen on, e.g. `127.0.0.1:7401`.
    pub listen: String,
    /// Source id to publish as; defaults to `mcpsoc/<role>/<hostname>`.
    pub source: Option<String>,
    /// PEM certificate chain for wss.
    pub tls_cert: Option<PathBuf>,
    /// PEM private key for wss.
    pub tls_key: Option<PathBuf>,
    /// Allow plain ws on a non-loopback address (off: plain ws only on loopback).
    pub allow_plain_non_loopback: bool,
    /// Seconds between heartbeat events (0: none).
    pub heartbeat_secs: u64,
    /// Live events buffered per subscriber before it is disconnected as too slow.
    pub live_buffer: usize,
    /// Seconds a single send may block before the subscriber is disconnected as too slow.
    pub send_timeout_secs: u64,
    /// Who may subscribe.
    pub subscribers: Vec<SubscriberConfig>,
}

impl Default for PublisherConfig {
    fn default() -> Self {
        Self {
            listen: "127.0.0.1:7400".into(),
            source: None,
            tls_cert: None,
            tls_key: None,
            allow_plain_non_loopback: false,
            heartbeat_secs: 15,
            live_buffer: 8192,
            send_timeout_secs: 10,
            subscribers: Vec::new(),
        }
    }
}

/// One subscriber of a publisher: name, role and the SHA-256 of its token.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SubscriberConfig {
    /// Shown in audit events.
    pub name: String,
    /// viewer, responder or approver.
    pub role: Role,
    /// Hex SHA-256 of the token (`mcpsoc token new` prints it).
    pub token_sha256: String,
}

/// A stream to subscribe to.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SourceConfig {
    /// Display name.
    pub name: String,
    /// `ws://` or `wss://` URL of the publisher's `/stream`.
    pub url: String,
    /// File holding the token (first line).
    #[serde(default)]
    pub token_file: Option<PathBuf>,
    /// Environment variable holding the token.
    #[serde(default)]
    pub token_env: Option<String>,
    /// Extra CA certificate (PEM) to trust for wss.
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// Pin the publisher's certificate by the SHA-256 of its public key (64 hex digits).
    #[serde(default)]
    pub pin_sha256: Option<String>,
}

impl PublisherConfig {
    /// The token table, refusing malformed hashes.
    pub fn token_table(&self) -> Result<TokenTable, String> {
        let mut grants = Vec::new();
        for s in &self.subscribers {
            let bytes = hex::decode(s.token_sha256.trim())
                .ok()
                .and_then(|b| <[u8; 32]>::try_from(b).ok())
                .ok_or_else(|| {
                    format!(
                        "subscriber {:?}: token_sha256 must be 64 hex digits (a SHA-256)",
                        s.name
                    )
                })?;
            grants.push(StreamGrant {
                name: s.name.clone(),
                role: s.role,
                token_sha256: bytes,
            });
        }
        Ok(TokenTable::new(grants))
    }
}

impl SourceConfig {
    /// Reads the token from the file or environment variable (never from a flag).
    pub fn token(&self) -> Result<String, String> {
        if let Some(path) = &self.token_file {
            let text = std::fs::read_to_string(path).map_err(|e| {
                format!(
                    "source {:?}: cannot read token file {}: {e}",
                    self.name,
                    path.display()
                )
            })?;
            let token = text.lines().next().unwrap_or("").trim().to_string();
            if token.is_empty() {
                return Err(format!(
                    "source {:?}: token file {} is empty",
                    self.name,
                    path.display()
                ));
            }
            return Ok(token);
        }
        if let Some(var) = &self.token_env {
            return std::env::var(var)
                .map(|t| t.trim().to_string())
                .map_err(|_| {
                    format!(
                        "source {:?}: environment variable {var} is not set",
                        self.name
                    )
                });
        }
        Err(format!(
            "source {:?}: set token_file or token_env",
            self.name
        ))
    }
}

impl Config {
    /// Loads a file; `None` gives the defaults.
    pub fn load(path: Option<&Path>) -> Result<Self, ConfigError> {
        let Some(path) = path else {
            return Ok(Self::default());
        };
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        let mut config = Self::parse(&text, path)?;
        config.resolve_paths(path.parent().unwrap_or(Path::new("")));
        Ok(config)
    }

    /// Relative file paths in a configuration file (keys, certificates, JWKS, token and
    /// credential files) are relative to the file's folder, wherever mcpsoc runs from.
    fn resolve_paths(&mut self, base: &Path) {
        let fix = |path: &mut Option<PathBuf>| {
            if let Some(p) = path.as_mut()
                && p.is_relative()
            {
                *p = base.join(&*p);
            }
        };
        fix(&mut self.gateway.tls_cert);
        fix(&mut self.gateway.tls_key);
        fix(&mut self.gateway.auth.jwks_file);
        for upstream in &mut self.gateway.upstreams {
            fix(&mut upstream.credential_file);
        }
        for stream in [
            &mut self.gateway.stream,
            &mut self.monitor.stream,
            &mut self.replay.stream,
        ]
        .into_iter()
        .flatten()
        {
            fix(&mut stream.tls_cert);
            fix(&mut stream.tls_key);
        }
        for source in self
            .monitor
            .sources
            .iter_mut()
            .chain(&mut self.console.sources)
            .chain(&mut self.replay.sources)
        {
            fix(&mut source.token_file);
            fix(&mut source.ca_file);
        }
    }

    /// Parses configuration text; `path` names it in errors.
    pub fn parse(text: &str, path: &Path) -> Result<Self, ConfigError> {
        toml::from_str(text).map_err(|e| {
            let (line, column) = e.span().map(|s| line_col(text, s.start)).unwrap_or((1, 1));
            ConfigError::Invalid {
                path: path.to_path_buf(),
                line,
                column,
                reason: e.message().trim().to_string(),
            }
        })
    }
}

fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let column = before
        .rsplit('\n')
        .next()
        .map(|l| l.chars().count())
        .unwrap_or(0)
        + 1;
    (line, column)
}

/// The per-user default data directory of a role.
pub fn default_data_dir(role: &str) -> PathBuf {
    dirs::data_local_dir()
        .unwrap_or_else(|| PathBuf::from("."))
        .join("mcpsoc")
        .join(role)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_without_a_file() {
        let c = Config::load(None).unwrap();
        assert_eq!(c.store.cache_mb, 64);
        assert!(c.replay.stream.is_none());
    }

    #[test]
    fn unknown_key_names_file_line_and_reason() {
        let text = "[store]\ncache_mb = 32\n\n[replay.stream]\nlistn = \"127.0.0.1:1\"\n";
        let err = Config::parse(text, Path::new("mcpsoc.toml"))
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("mcpsoc.toml:5:"), "{err}");
        assert!(err.contains("listn"), "{err}");
    }

    #[test]
    fn bad_role_is_refused() {
        let text = "[[replay.stream.subscribers]]\nname = \"x\"\nrole = \"admin\"\ntoken_sha256 = \"00\"\n";
        let err = Config::parse(text, Path::new("c.toml"))
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("c.toml:3:"), "{err}");
    }

    #[test]
    fn the_shipped_example_parses_and_grants_its_example_token() {
        let text = include_str!("../assets/mcpsoc.toml");
        let c = Config::parse(text, Path::new("assets/mcpsoc.toml")).unwrap();
        let table = c.replay.stream.unwrap().token_table().unwrap();
        let grant = table.authenticate("example-approver-token").unwrap();
        assert_eq!(grant.role, Role::Approver);
    }

    #[test]
    fn relative_paths_resolve_against_the_files_folder() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.toml");
        let text = "[gateway.auth]\njwks_file = \"keys/jwks.json\"\n[[console.sources]]\nname = \"g\"\nurl = \"ws://127.0.0.1:1/stream\"\ntoken_file = \"/abs/t.token\"\n";
        std::fs::write(&path, text).unwrap();
        let c = Config::load(Some(&path)).unwrap();
        assert_eq!(
            c.gateway.auth.jwks_file.as_deref(),
            Some(dir.path().join("keys/jwks.json").as_path())
        );
        assert_eq!(
            c.console.sources[0].token_file.as_deref(),
            Some(Path::new("/abs/t.token"))
        );
    }

    #[test]
    fn bad_token_hash_is_refused() {
        let text = "[[replay.stream.subscribers]]\nname = \"x\"\nrole = \"viewer\"\ntoken_sha256 = \"abc\"\n";
        let c = Config::parse(text, Path::new("c.toml")).unwrap();
        let stream = c.replay.stream.unwrap();
        assert!(stream.token_table().unwrap_err().contains("64 hex digits"));
    }
}
