//! The demo's plumbing: its data folder, the issuer key and its JWKS, stream tokens (kept in
//! files, configured by their SHA-256), and the configuration of each role.

use std::path::{Path, PathBuf};

use anyhow::Context;
use rand::RngCore;
use serde_json::json;

use crate::auth::jwt::SigningKey;
use crate::auth::{Role, hash_token};
use crate::config::{
    Config, GatewayAuthConfig, GatewayConfig, MonitorConfig, PublisherConfig, SourceConfig,
    SubscriberConfig, UpstreamConfig,
};

/// The demo identity provider's issuer.
pub const ISSUER: &str = "https://idp.demo.mcpsoc";
/// The upstream's name at the gateway (served at `/mcp/demo`).
pub const UPSTREAM: &str = "demo";
/// The gateway's source id.
pub const GATEWAY_SOURCE: &str = "mcpsoc/gateway/demo";
/// The monitor's source id.
pub const MONITOR_SOURCE: &str = "mcpsoc/monitor/demo";

/// Where everything is kept.
#[derive(Debug, Clone)]
pub struct DataDir {
    /// The folder.
    pub root: PathBuf,
    /// Removed when the demo ends (no `--data`).
    pub temporary: bool,
}

impl DataDir {
    /// `--data DIR`, or a fresh folder under the system's temporary directory.
    pub fn create(data: Option<&Path>) -> anyhow::Result<Self> {
        let (root, temporary) = match data {
            Some(dir) => (dir.to_path_buf(), false),
            None => {
                let name = format!(
                    "mcpsoc-demo-{}-{:08x}",
                    std::process::id(),
                    rand::rng().next_u32()
                );
                (std::env::temp_dir().join(name), true)
            }
        };
        std::fs::create_dir_all(root.join("tokens"))
            .with_context(|| format!("cannot create {}", root.display()))?;
        Ok(Self { root, temporary })
    }

    /// A role's store folder.
    pub fn role(&self, role: &str) -> PathBuf {
        self.root.join(role)
    }

    fn token_path(&self, name: &str) -> PathBuf {
        self.root.join("tokens").join(format!("{name}.token"))
    }
}

/// One stream token: its file and the subscriber entry with its hash.
#[derive(Debug, Clone)]
pub struct StreamToken {
    /// The file holding the token.
    pub file: PathBuf,
    /// The token itself (kept in memory for the demo's own links).
    pub token: String,
    /// The subscriber entry for the publisher's configuration.
    pub grant: SubscriberConfig,
}

/// Writes a random token to `<data>/tokens/<file>.token` (mode 0600).
fn stream_token(dir: &DataDir, file: &str, name: &str, role: Role) -> anyhow::Result<StreamToken> {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    let token = hex::encode(bytes);
    let path = dir.token_path(file);
    write_private(&path, &format!("{token}\n"))?;
    Ok(StreamToken {
        file: path,
        grant: SubscriberConfig {
            name: name.to_string(),
            role,
            token_sha256: hash_token(&token),
        },
        token,
    })
}

fn write_private(path: &Path, text: &str) -> anyhow::Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options
        .open(path)
        .with_context(|| format!("cannot write {}", path.display()))?;
    file.write_all(text.as_bytes())
        .with_context(|| format!("cannot write {}", path.display()))
}

/// The demo identity provider: signs the users' access tokens.
pub struct Issuer {
    key: SigningKey,
}

/// The `kid` of the demo issuer's key.
pub const ISSUER_KID: &str = "demo-idp-1";

impl Issuer {
    /// A fresh Ed25519 key (the all-in-one demo makes one for each run).
    pub fn generate() -> Self {
        Self {
            key: SigningKey::generate_ed25519(ISSUER_KID),
        }
    }

    /// The key in a PEM PKCS#8 Ed25519 file (`assets/demo/` ships a demo-only one).
    pub fn from_pem_file(path: &Path) -> anyhow::Result<Self> {
        let pem = std::fs::read(path)
            .with_context(|| format!("cannot read the issuer key {}", path.display()))?;
        let key = SigningKey::from_ed_pem(ISSUER_KID, &pem)
            .with_context(|| format!("{}: not a PEM PKCS#8 Ed25519 private key", path.display()))?;
        Ok(Self { key })
    }

    /// The public JWKS the gateway needs to check the tokens.
    pub fn public_jwks(&self) -> serde_json::Value {
        self.key.public_jwks()
    }

    /// An access token for `user` through `client_id`, valid for `ttl_secs`, for `audience`.
    pub fn access_token(
        &self,
        user: &str,
        client_id: &str,
        audience: &str,
        ttl_secs: i64,
    ) -> anyhow::Result<String> {
        let now = chrono::Utc::now().timestamp();
        let claims = json!({
            "iss": ISSUER,
            "sub": user,
            "aud": audience,
            "client_id": client_id,
            "scope": "mcp:tools",
            "iat": now,
            "nbf": now - 5,
            "exp": now + ttl_secs,
            "jti": uuid::Uuid::new_v4().to_string(),
        });
        crate::auth::jwt::mint(&claims, &self.key).context("cannot mint a demo token")
    }
}

/// Every secret of one demo run.
pub struct Secrets {
    /// The identity provider (a fresh Ed25519 key for each run).
    pub issuer: std::sync::Arc<Issuer>,
    /// Its public JWKS, the gateway's `jwks_file`.
    pub jwks_file: PathBuf,
    /// The console's approver token at the gateway.
    pub console_gateway: StreamToken,
    /// The console's responder token at the monitor.
    pub console_monitor: StreamToken,
    /// The monitor's responder token at the gateway.
    pub monitor_gateway: StreamToken,
    /// The demo's own approver link at the gateway (initial approvals, headless decisions).
    pub demo_gateway: StreamToken,
    /// The demo's own viewer link at the monitor (headless output).
    pub demo_monitor: StreamToken,
}

impl Secrets {
    /// Generates the key and tokens and writes their files. Blocking file writes.
    pub fn create(dir: &DataDir) -> anyhow::Result<Self> {
        let issuer = Issuer::generate();
        let jwks_file = dir.root.join("idp-jwks.json");
        std::fs::write(&jwks_file, issuer.public_jwks().to_string())
            .with_context(|| format!("cannot write {}", jwks_file.display()))?;
        Ok(Self {
            issuer: std::sync::Arc::new(issuer),
            jwks_file,
            console_gateway: stream_token(dir, "console-gateway", "console", Role::Approver)?,
            console_monitor: stream_token(dir, "console-monitor", "console", Role::Responder)?,
            monitor_gateway: stream_token(dir, "monitor-gateway", "monitor", Role::Responder)?,
            demo_gateway: stream_token(dir, "demo-gateway", "demo-approver", Role::Approver)?,
            demo_monitor: stream_token(dir, "demo-monitor", "demo", Role::Viewer)?,
        })
    }
}

fn publisher(source: &str, subscribers: Vec<SubscriberConfig>) -> PublisherConfig {
    PublisherConfig {
        listen: "127.0.0.1:0".into(),
        source: Some(source.into()),
        subscribers,
        ..PublisherConfig::default()
    }
}

fn source(name: &str, url: &str, token: &StreamToken) -> SourceConfig {
    SourceConfig {
        name: name.into(),
        url: url.into(),
        token_file: Some(token.file.clone()),
        token_env: None,
        ca_file: None,
        pin_sha256: None,
    }
}

/// The gateway in front of the sample server at `listen` (its resource is `/mcp/demo` there).
pub fn gateway_config(base: &Config, secrets: &Secrets, listen: &str, server_url: &str) -> Config {
    let mut config = base.clone();
    config.gateway = GatewayConfig {
        listen: listen.into(),
        resource: format!("http://{listen}/mcp/{UPSTREAM}"),
        // Off so that a brand-new tool waits for approval too; the demo's approver link
        // approves the initial tools once at start, so only changes need a person.
        trust_on_first_use: false,
        auth: GatewayAuthConfig {
            issuers: vec![ISSUER.into()],
            jwks_file: Some(secrets.jwks_file.clone()),
            authorization_servers: vec![ISSUER.into()],
            ..GatewayAuthConfig::default()
        },
        upstreams: vec![UpstreamConfig {
            name: UPSTREAM.into(),
            url: server_url.into(),
            scopes: Vec::new(),
            tool_scopes: Default::default(),
            credential_env: None,
            credential_file: None,
        }],
        stream: Some(publisher(
            GATEWAY_SOURCE,
            vec![
                secrets.console_gateway.grant.clone(),
                secrets.monitor_gateway.grant.clone(),
                secrets.demo_gateway.grant.clone(),
            ],
        )),
        ..GatewayConfig::default()
    };
    config
}

/// The monitor on the gateway's stream.
pub fn monitor_config(base: &Config, secrets: &Secrets, gateway_stream: &str) -> Config {
    let mut config = base.clone();
    config.monitor = MonitorConfig {
        stream: Some(publisher(
            MONITOR_SOURCE,
            vec![
                secrets.console_monitor.grant.clone(),
                secrets.demo_monitor.grant.clone(),
            ],
        )),
        sources: vec![source("gateway", gateway_stream, &secrets.monitor_gateway)],
        ..base.monitor.clone()
    };
    config
}

/// The console on both streams.
pub fn console_config(
    base: &Config,
    secrets: &Secrets,
    gateway_stream: &str,
    monitor_stream: &str,
) -> Config {
    let mut config = base.clone();
    config.console.sources = vec![
        source("gateway", gateway_stream, &secrets.console_gateway),
        source("monitor", monitor_stream, &secrets.console_monitor),
    ];
    config
}

#[cfg(test)]
mod tests {
    use super::*;

    fn asset(path: &str) -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("assets/demo")
            .join(path)
    }

    /// The shipped JWKS is the public half of the shipped demo-only issuer key.
    #[test]
    fn the_shipped_jwks_matches_the_shipped_issuer_key() {
        let issuer = Issuer::from_pem_file(&asset("DEMO-ONLY-issuer-key.pem")).unwrap();
        let text = std::fs::read_to_string(asset("issuer-jwks.json")).unwrap();
        let shipped: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(shipped, issuer.public_jwks());
    }

    /// The shipped configurations parse and grant the shipped tokens their roles.
    #[test]
    fn the_shipped_configs_grant_the_shipped_tokens() {
        let load = |name: &str| Config::load(Some(&asset(name))).unwrap();
        let token = |name: &str| {
            let source = SourceConfig {
                name: name.into(),
                url: String::new(),
                token_file: Some(asset(&format!("tokens/{name}.token"))),
                token_env: None,
                ca_file: None,
                pin_sha256: None,
            };
            source.token().unwrap()
        };
        let gateway = load("gateway.toml");
        assert!(gateway.gateway.auth.jwks_file.unwrap().exists());
        let table = gateway.gateway.stream.unwrap().token_table().unwrap();
        for (name, role) in [
            ("console-gateway", Role::Approver),
            ("monitor-gateway", Role::Responder),
            ("traffic-gateway", Role::Approver),
        ] {
            assert_eq!(
                table.authenticate(&token(name)).unwrap().role,
                role,
                "{name}"
            );
        }
        let monitor = load("monitor.toml");
        let table = monitor.monitor.stream.unwrap().token_table().unwrap();
        assert_eq!(
            table.authenticate(&token("console-monitor")).unwrap().role,
            Role::Responder
        );
        assert!(monitor.monitor.sources[0].token().is_ok());
        let console = load("console.toml");
        assert_eq!(console.console.sources.len(), 2);
        for source in &console.console.sources {
            assert!(source.token().is_ok(), "{}", source.name);
        }
    }
}
