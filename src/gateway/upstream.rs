//! The gateway's side of the upstream conversation: which headers cross, whose credentials are
//! used (the gateway's own, never the client's), and timeouts.

use std::collections::HashMap;
use std::time::Duration;

use hyper::header::{self, HeaderMap, HeaderName, HeaderValue};
use hyper::{Method, Request, Uri};
use hyper_rustls::ConfigBuilderExt;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

use super::body::GatewayBody;
use crate::config::UpstreamConfig;

/// One MCP server behind the gateway.
#[derive(Debug, Clone)]
pub struct Upstream {
    /// Name (path `/mcp/<name>`).
    pub name: String,
    /// Its endpoint.
    pub url: Uri,
    /// The gateway's own credential for it.
    pub credential: Option<String>,
    /// Scopes a token needs.
    pub scopes: Vec<String>,
    /// Extra scopes per tool.
    pub tool_scopes: HashMap<String, Vec<String>>,
}

impl Upstream {
    /// From configuration, reading the credential from its file or variable.
    pub fn from_config(c: &UpstreamConfig) -> anyhow::Result<Self> {
        let url: Uri = c
            .url
            .parse()
            .map_err(|e| anyhow::anyhow!("upstream {}: bad url {}: {e}", c.name, c.url))?;
        if !matches!(url.scheme_str(), Some("http") | Some("https")) {
            anyhow::bail!("upstream {}: url must be http:// or https://", c.name);
        }
        if c.name.is_empty() || c.name.contains('/') {
            anyhow::bail!(
                "upstream name {:?} must be non-empty and contain no '/'",
                c.name
            );
        }
        let credential = match (&c.credential_file, &c.credential_env) {
            (Some(path), _) => Some(
                std::fs::read_to_string(path)
                    .map_err(|e| {
                        anyhow::anyhow!("upstream {}: cannot read {}: {e}", c.name, path.display())
                    })?
                    .lines()
                    .next()
                    .unwrap_or("")
                    .trim()
                    .to_string(),
            ),
            (None, Some(var)) => Some(
                std::env::var(var)
                    .map_err(|_| anyhow::anyhow!("upstream {}: {var} is not set", c.name))?,
            ),
            (None, None) => None,
        };
        Ok(Self {
            name: c.name.clone(),
            url,
            credential,
            scopes: c.scopes.clone(),
            tool_scopes: c.tool_scopes.clone(),
        })
    }
}

/// The HTTP client for upstreams (http and https with the system roots).
pub type UpstreamClient = Client<hyper_rustls::HttpsConnector<HttpConnector>, GatewayBody>;

/// Builds the upstream client.
pub fn client(connect_timeout: Duration) -> anyhow::Result<UpstreamClient> {
    let mut http = HttpConnector::new();
    http.enforce_http(false);
    http.set_connect_timeout(Some(connect_timeout));
    http.set_nodelay(true);
    let tls = rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()?
    .with_native_roots()?
    .with_no_client_auth();
    let https = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(tls)
        .https_or_http()
        .enable_http1()
        .wrap_connector(http);
    Ok(Client::builder(TokioExecutor::new())
        .pool_idle_timeout(Duration::from_secs(30))
        .build(https))
}

/// Request headers that cross to the upstream (everything else stays: notably the client's
/// `Authorization`, cookies and `Origin`).
const FORWARDED: [&str; 5] = [
    "accept",
    "content-type",
    "mcp-protocol-version",
    "mcp-method",
    "mcp-name",
];

/// Builds the upstream request for a client request. `Mcp-Param-*` headers cross only when
/// named in `params` (the `x-mcp-header` properties of the approved tool being called, which
/// the gateway checked against the body); the upstream is asked for an unencoded answer, the
/// only kind the gateway reviews.
pub fn request(
    upstream: &Upstream,
    method: Method,
    client_headers: &HeaderMap,
    upstream_session: Option<&str>,
    params: &[String],
    body: GatewayBody,
) -> Result<Request<GatewayBody>, String> {
    let mut builder = Request::builder()
        .method(method.clone())
        .uri(upstream.url.clone());
    let headers = builder.headers_mut().ok_or("request builder failed")?;
    for (name, value) in client_headers {
        let n = name.as_str();
        if FORWARDED.contains(&n)
            || (n.starts_with("mcp-param-") && params.iter().any(|p| p == n))
            || (method == Method::GET && n == "last-event-id")
        {
            headers.append(name.clone(), value.clone());
        }
    }
    if !headers.contains_key(header::ACCEPT) {
        headers.insert(
            header::ACCEPT,
            HeaderValue::from_static("application/json, text/event-stream"),
        );
    }
    headers.insert(
        header::ACCEPT_ENCODING,
        HeaderValue::from_static("identity"),
    );
    if let Some(session) = upstream_session {
        let value = HeaderValue::from_str(session).map_err(|_| "bad upstream session id")?;
        headers.insert(HeaderName::from_static("mcp-session-id"), value);
    }
    if let Some(credential) = &upstream.credential {
        let value = HeaderValue::from_str(&format!("Bearer {credential}"))
            .map_err(|_| "bad upstream credential")?;
        headers.insert(header::AUTHORIZATION, value);
    }
    builder.body(body).map_err(|e| e.to_string())
}

/// Response headers that cross back to the client.
pub fn response_headers(upstream: &HeaderMap) -> HeaderMap {
    let mut out = HeaderMap::new();
    for name in [
        "content-type",
        "cache-control",
        "x-accel-buffering",
        "mcp-protocol-version",
    ] {
        if let Some(v) = upstream.get(name) {
            out.insert(HeaderName::from_static(name), v.clone());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_clients_token_never_crosses() {
        let up = Upstream {
            name: "fs".into(),
            url: "http://127.0.0.1:1/mcp".parse().unwrap(),
            credential: Some("gateway-own".into()),
            scopes: vec![],
            tool_scopes: HashMap::new(),
        };
        let mut h = HeaderMap::new();
        h.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("Bearer client-token"),
        );
        h.insert(header::COOKIE, HeaderValue::from_static("a=b"));
        h.insert(header::ORIGIN, HeaderValue::from_static("http://evil"));
        h.insert("mcp-method", HeaderValue::from_static("tools/call"));
        h.insert("mcp-param-region", HeaderValue::from_static("eu"));
        h.insert("mcp-param-unchecked", HeaderValue::from_static("x"));
        h.insert(header::ACCEPT_ENCODING, HeaderValue::from_static("gzip"));
        let req = request(
            &up,
            Method::POST,
            &h,
            Some("up-sess"),
            &["mcp-param-region".to_string()],
            super::super::body::empty(),
        )
        .unwrap();
        let sent = req.headers();
        assert_eq!(
            sent.get(header::AUTHORIZATION).unwrap(),
            "Bearer gateway-own"
        );
        assert!(sent.get(header::COOKIE).is_none());
        assert!(sent.get(header::ORIGIN).is_none());
        assert_eq!(sent.get("mcp-session-id").unwrap(), "up-sess");
        assert_eq!(sent.get("mcp-method").unwrap(), "tools/call");
        assert_eq!(sent.get("mcp-param-region").unwrap(), "eu");
        assert!(sent.get("mcp-param-unchecked").is_none());
        assert_eq!(sent.get(header::ACCEPT_ENCODING).unwrap(), "identity");
        assert!(sent.get(header::ACCEPT).is_some());
    }
}
