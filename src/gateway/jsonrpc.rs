//! Just enough JSON-RPC 2.0 to police MCP requests: classify a message, read the fields policy
//! depends on, and build error responses.

use bytes::Bytes;
use serde_json::{Value, json};

/// `_meta` key of the protocol version (2026-07-28 stateless requests).
pub const META_VERSION: &str = "io.modelcontextprotocol/protocolVersion";
/// `_meta` key of the client info (2026-07-28 stateless requests).
pub const META_CLIENT: &str = "io.modelcontextprotocol/clientInfo";

/// JSON-RPC error codes the gateway answers with.
pub mod codes {
    /// Invalid JSON.
    pub const PARSE_ERROR: i64 = -32700;
    /// Not a valid request object.
    pub const INVALID_REQUEST: i64 = -32600;
    /// Invalid params (used for refused tool calls, as servers do for unknown tools).
    pub const INVALID_PARAMS: i64 = -32602;
    /// Headers disagree with the body (MCP 2026-07-28).
    pub const HEADER_MISMATCH: i64 = -32020;
    /// Gateway policy refused the request.
    pub const POLICY: i64 = -32001;
}

/// What kind of message a body holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Has `method` and `id`.
    Request,
    /// Has `method`, no `id`.
    Notification,
    /// Has `result` or `error` (a client answering a server request, 2025-11-25).
    Response,
}

/// A parsed JSON-RPC message.
#[derive(Debug, Clone)]
pub struct Message {
    /// Request, notification or response.
    pub kind: Kind,
    /// The id, as sent.
    pub id: Option<Value>,
    /// The method.
    pub method: Option<String>,
    /// The params (null when absent).
    pub params: Value,
}

/// Why a body is not a usable JSON-RPC message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RpcError {
    /// Not JSON.
    #[error("body is not JSON: {0}")]
    Parse(String),
    /// JSON, but not a single JSON-RPC 2.0 message.
    #[error("{0}")]
    Invalid(String),
}

impl RpcError {
    /// The JSON-RPC code.
    pub fn code(&self) -> i64 {
        match self {
            Self::Parse(_) => codes::PARSE_ERROR,
            Self::Invalid(_) => codes::INVALID_REQUEST,
        }
    }
}

impl Message {
    /// Parses one message body.
    pub fn parse(body: &[u8]) -> Result<Self, RpcError> {
        let value = crate::protocol::strict_json::parse(body).map_err(|e| {
            if e.is_duplicate_key() {
                RpcError::Invalid(format!("ambiguous message: {e}"))
            } else {
                RpcError::Parse(e.to_string())
            }
        })?;
        let Value::Object(map) = value else {
            return Err(RpcError::Invalid(
                "expected one JSON-RPC message object (batches are not part of MCP since 2025-06-18)".into(),
            ));
        };
        if map.get("jsonrpc").and_then(Value::as_str) != Some("2.0") {
            return Err(RpcError::Invalid("\"jsonrpc\" must be \"2.0\"".into()));
        }
        let id = map.get("id").cloned().filter(|v| !v.is_null());
        if let Some(id) = &id
            && !(id.is_string() || id.is_i64() || id.is_u64())
        {
            return Err(RpcError::Invalid(
                "\"id\" must be a string or an integer".into(),
            ));
        }
        let method = match map.get("method") {
            Some(Value::String(m)) if !m.is_empty() => Some(m.clone()),
            Some(_) => {
                return Err(RpcError::Invalid(
                    "\"method\" must be a non-empty string".into(),
                ));
            }
            None => None,
        };
        let params = map.get("params").cloned().unwrap_or(Value::Null);
        if !(params.is_null() || params.is_object() || params.is_array()) {
            return Err(RpcError::Invalid("\"params\" must be an object".into()));
        }
        let kind = match (&method, &id) {
            (Some(_), Some(_)) => Kind::Request,
            (Some(_), None) => Kind::Notification,
            (None, Some(_)) if map.contains_key("result") || map.contains_key("error") => {
                Kind::Response
            }
            _ => {
                return Err(RpcError::Invalid(
                    "neither a request, a notification nor a response".into(),
                ));
            }
        };
        Ok(Self {
            kind,
            id,
            method,
            params,
        })
    }

    /// `params.name` (tools/call, prompts/get).
    pub fn name(&self) -> Option<&str> {
        self.params.get("name").and_then(Value::as_str)
    }

    /// `params.uri` (resources/read).
    pub fn uri(&self) -> Option<&str> {
        self.params.get("uri").and_then(Value::as_str)
    }

    /// `params.arguments` (tools/call).
    pub fn arguments(&self) -> Value {
        self.params.get("arguments").cloned().unwrap_or(Value::Null)
    }

    /// `params._meta[key]`.
    pub fn meta(&self, key: &str) -> Option<&Value> {
        self.params.get("_meta").and_then(|m| m.get(key))
    }

    /// The protocol version in `_meta` (stateless requests).
    pub fn meta_version(&self) -> Option<&str> {
        self.meta(META_VERSION).and_then(Value::as_str)
    }

    /// The client name and version: `_meta` client info, or `initialize` params.
    pub fn client_info(&self) -> Option<(String, Option<String>)> {
        let info = self
            .meta(META_CLIENT)
            .or_else(|| self.params.get("clientInfo"))?;
        let name = info.get("name")?.as_str()?.to_string();
        let version = info
            .get("version")
            .and_then(Value::as_str)
            .map(str::to_string);
        Some((name, version))
    }
}

/// A JSON-RPC error response body.
pub fn error_body(id: Option<&Value>, code: i64, message: &str) -> Bytes {
    let body = json!({
        "jsonrpc": "2.0",
        "id": id.cloned().unwrap_or(Value::Null),
        "error": { "code": code, "message": message },
    });
    Bytes::from(body.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_messages() {
        let r = Message::parse(br#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","arguments":{"m":"hi"}}}"#).unwrap();
        assert_eq!(r.kind, Kind::Request);
        assert_eq!(r.name(), Some("echo"));
        let n =
            Message::parse(br#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#).unwrap();
        assert_eq!(n.kind, Kind::Notification);
        let resp = Message::parse(br#"{"jsonrpc":"2.0","id":"s1","result":{}}"#).unwrap();
        assert_eq!(resp.kind, Kind::Response);
    }

    #[test]
    fn refuses_bad_messages_with_reasons() {
        assert!(matches!(Message::parse(b"{oops"), Err(RpcError::Parse(_))));
        assert!(
            Message::parse(b"[]")
                .unwrap_err()
                .to_string()
                .contains("batches")
        );
        assert!(Message::parse(br#"{"jsonrpc":"1.0","id":1,"method":"x"}"#).is_err());
        assert!(Message::parse(br#"{"jsonrpc":"2.0","id":{},"method":"x"}"#).is_err());
        assert!(Message::parse(br#"{"jsonrpc":"2.0","id":1,"method":7}"#).is_err());
        assert!(Message::parse(br#"{"jsonrpc":"2.0","id":1,"method":"x","params":"s"}"#).is_err());
        assert!(Message::parse(br#"{"jsonrpc":"2.0"}"#).is_err());
    }

    #[test]
    fn reads_meta_and_client_info() {
        let r = Message::parse(
            br#"{"jsonrpc":"2.0","id":1,"method":"tools/list","params":{"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientInfo":{"name":"c","version":"1"}}}}"#,
        )
        .unwrap();
        assert_eq!(r.meta_version(), Some("2026-07-28"));
        assert_eq!(r.client_info(), Some(("c".into(), Some("1".into()))));
    }
}
