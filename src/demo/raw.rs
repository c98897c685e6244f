//! Hand-made MCP requests over plain HTTP, for the incidents an SDK client would not commit: a
//! token minted for another service, a session id presented by someone else.

use std::time::Duration;

use anyhow::Context;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{Method, Request};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde_json::{Value, json};

/// The session revision the demo's clients speak.
pub const PROTOCOL_VERSION: &str = "2025-11-25";

/// An HTTP client for one MCP endpoint.
#[derive(Clone)]
pub struct Raw {
    client: Client<HttpConnector, Full<Bytes>>,
    url: String,
}

/// What came back.
#[derive(Debug)]
pub struct RawResponse {
    /// HTTP status.
    pub status: u16,
    /// `Mcp-Session-Id`, when the server issued one.
    pub session: Option<String>,
    /// The body (or as much as arrived within a few seconds).
    pub body: String,
}

impl Raw {
    /// A client for `url`.
    pub fn new(url: &str) -> Self {
        Self {
            client: Client::builder(TokioExecutor::new()).build_http(),
            url: url.to_string(),
        }
    }

    /// An `initialize` request body from `client`.
    pub fn initialize(client: &str) -> Value {
        json!({
            "jsonrpc": "2.0", "id": 1, "method": "initialize",
            "params": {
                "protocolVersion": PROTOCOL_VERSION,
                "capabilities": {},
                "clientInfo": {"name": client, "version": "1.0.0"},
            },
        })
    }

    /// POSTs one JSON-RPC message with a bearer token and, optionally, a session id.
    pub async fn post(
        &self,
        token: &str,
        session: Option<&str>,
        message: &Value,
    ) -> anyhow::Result<RawResponse> {
        let mut builder = Request::builder()
            .method(Method::POST)
            .uri(&self.url)
            .header("content-type", "application/json")
            .header("accept", "application/json, text/event-stream")
            .header("authorization", format!("Bearer {token}"));
        if message.get("method").and_then(Value::as_str) != Some("initialize") {
            builder = builder.header("mcp-protocol-version", PROTOCOL_VERSION);
        }
        if let Some(id) = session {
            builder = builder.header("mcp-session-id", id);
        }
        let request = builder
            .body(Full::new(Bytes::from(message.to_string())))
            .context("building a request")?;
        self.send(request).await
    }

    /// POSTs an empty body to `<url>/<path>` (the sample server's `/demo/<change>` endpoints).
    pub async fn post_empty(&self, path: &str) -> anyhow::Result<RawResponse> {
        let request = Request::builder()
            .method(Method::POST)
            .uri(format!("{}/{path}", self.url.trim_end_matches('/')))
            .body(Full::new(Bytes::new()))
            .context("building a request")?;
        self.send(request).await
    }

    /// Ends a session (DELETE).
    pub async fn delete(&self, token: &str, session: &str) -> anyhow::Result<RawResponse> {
        let request = Request::builder()
            .method(Method::DELETE)
            .uri(&self.url)
            .header("authorization", format!("Bearer {token}"))
            .header("mcp-protocol-version", PROTOCOL_VERSION)
            .header("mcp-session-id", session)
            .body(Full::new(Bytes::new()))
            .context("building a request")?;
        self.send(request).await
    }

    async fn send(&self, request: Request<Full<Bytes>>) -> anyhow::Result<RawResponse> {
        let response = tokio::time::timeout(Duration::from_secs(10), self.client.request(request))
            .await
            .context("no answer within 10 s")?
            .context("request failed")?;
        let status = response.status().as_u16();
        let session = response
            .headers()
            .get("mcp-session-id")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        // An SSE answer may stay open: read until the JSON-RPC answer is in, or 3 s.
        let mut body = response.into_body();
        let mut text = Vec::new();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(3);
        while let Ok(Some(Ok(frame))) = tokio::time::timeout_at(deadline, body.frame()).await {
            if let Some(data) = frame.data_ref() {
                text.extend_from_slice(data);
            }
            let so_far = String::from_utf8_lossy(&text);
            if so_far.contains("\"result\"") || so_far.contains("\"error\"") {
                break;
            }
        }
        Ok(RawResponse {
            status,
            session,
            body: String::from_utf8_lossy(&text).into_owned(),
        })
    }
}
