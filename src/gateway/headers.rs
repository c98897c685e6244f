//! Request metadata headers of MCP 2026-07-28 (`MCP-Protocol-Version`, `Mcp-Method`,
//! `Mcp-Name`, `Mcp-Param-*`) checked against the body, so that a policy keyed on headers can
//! never be bypassed by a body that says something else.

use base64::Engine;
use hyper::HeaderMap;
use serde_json::Value;

use super::jsonrpc::{Kind, Message};

/// The stateless protocol revision.
pub const STATELESS_VERSION: &str = "2026-07-28";
/// The session-based revision this gateway speaks.
pub const SESSION_VERSION: &str = "2025-11-25";

/// Which revision a request follows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Revision {
    /// 2025-11-25 and earlier: `initialize`, `Mcp-Session-Id`.
    Sessions(String),
    /// 2026-07-28: per-request `_meta`, no sessions.
    Stateless(String),
}

impl Revision {
    /// The version string.
    pub fn version(&self) -> &str {
        match self {
            Self::Sessions(v) | Self::Stateless(v) => v,
        }
    }
}

/// A header that disagrees with the body (answered with 400 and -32020).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("Header mismatch: {0}")]
pub struct Mismatch(pub String);

/// One header as text; a header sent twice is refused (a first-copy and a last-copy reader
/// would disagree, and the gateway would check one while the upstream used the other).
fn header<'a>(headers: &'a HeaderMap, name: &str) -> Result<Option<&'a str>, Mismatch> {
    let mut all = headers.get_all(name).iter();
    let Some(v) = all.next() else {
        return Ok(None);
    };
    if all.next().is_some() {
        return Err(Mismatch(format!("{name} header appears more than once")));
    }
    v.to_str()
        .map(Some)
        .map_err(|_| Mismatch(format!("{name} header has invalid characters")))
}

/// Refuses any MCP metadata header (`MCP-Protocol-Version`, `Mcp-Method`, `Mcp-Name`,
/// `Mcp-Param-*`) sent more than once.
pub fn check_unique(headers: &HeaderMap) -> Result<(), Mismatch> {
    for name in headers.keys() {
        let n = name.as_str();
        if (n.starts_with("mcp-") || n == "mcp-protocol-version")
            && headers.get_all(name).iter().nth(1).is_some()
        {
            return Err(Mismatch(format!("{n} header appears more than once")));
        }
    }
    Ok(())
}

/// Decodes the `=?base64?...?=` sentinel form of `Mcp-Name` / `Mcp-Param-*`.
pub fn decode_value(raw: &str) -> Result<String, Mismatch> {
    match raw
        .strip_prefix("=?base64?")
        .and_then(|r| r.strip_suffix("?="))
    {
        Some(b64) => base64::engine::general_purpose::STANDARD
            .decode(b64)
            .ok()
            .and_then(|b| String::from_utf8(b).ok())
            .ok_or_else(|| Mismatch("invalid base64 header value".into())),
        None => Ok(raw.to_string()),
    }
}

/// Which revision a request follows: the `_meta` version or `MCP-Protocol-Version` of 2026-07-28
/// (or later) means stateless.
pub fn revision(headers: &HeaderMap, message: &Message) -> Revision {
    let header = headers
        .get("mcp-protocol-version")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let meta = message.meta_version().map(str::to_string);
    let version = meta
        .clone()
        .or(header)
        .unwrap_or_else(|| SESSION_VERSION.to_string());
    if meta.is_some() || version.as_str() >= STATELESS_VERSION {
        Revision::Stateless(version)
    } else {
        Revision::Sessions(version)
    }
}

/// The body value `Mcp-Name` mirrors for a method, if the method has one.
fn name_source(message: &Message) -> Option<&str> {
    match message.method.as_deref() {
        Some("tools/call") | Some("prompts/get") => message.name(),
        Some("resources/read") => message.uri(),
        _ => None,
    }
}

/// Checks the metadata headers against the body. Stateless requests must carry them; any
/// request that carries them (whatever its revision) must agree with its body.
pub fn check(headers: &HeaderMap, message: &Message, revision: &Revision) -> Result<(), Mismatch> {
    check_unique(headers)?;
    let stateless = matches!(revision, Revision::Stateless(_));
    if message.kind == Kind::Response {
        return Ok(());
    }
    let version = header(headers, "mcp-protocol-version")?;
    if stateless {
        let meta = message.meta_version();
        match (version, meta) {
            (None, _) => return Err(Mismatch("MCP-Protocol-Version header is required".into())),
            (Some(h), Some(m)) if h != m => {
                return Err(Mismatch(format!(
                    "MCP-Protocol-Version header '{h}' does not match _meta protocolVersion '{m}'"
                )));
            }
            (Some(_), None) if message.kind == Kind::Request => {
                return Err(Mismatch(format!(
                    "_meta \"{}\" is required",
                    super::jsonrpc::META_VERSION
                )));
            }
            _ => {}
        }
    }
    let method = header(headers, "mcp-method")?;
    match (method, message.method.as_deref()) {
        (None, _) if stateless && message.kind == Kind::Request => {
            return Err(Mismatch("Mcp-Method header is required".into()));
        }
        (Some(h), Some(b)) if h != b => {
            return Err(Mismatch(format!(
                "Mcp-Method header value '{h}' does not match body value '{b}'"
            )));
        }
        (Some(h), None) => {
            return Err(Mismatch(format!(
                "Mcp-Method header '{h}' on a message without a method"
            )));
        }
        _ => {}
    }
    let name = header(headers, "mcp-name")?.map(decode_value).transpose()?;
    match (name, name_source(message)) {
        (None, Some(_)) if stateless => {
            return Err(Mismatch(
                "Mcp-Name header is required for this method".into(),
            ));
        }
        (Some(h), Some(b)) if h != b => {
            return Err(Mismatch(format!(
                "Mcp-Name header value '{h}' does not match body value '{b}'"
            )));
        }
        (Some(h), None) => {
            return Err(Mismatch(format!(
                "Mcp-Name header '{h}' but the body names nothing"
            )));
        }
        _ => {}
    }
    Ok(())
}

/// `Mcp-Param-{Name}` headers against the arguments, for the approved tool's `x-mcp-header`
/// properties. Returns the names (lower case) of the headers it checked: the only
/// `Mcp-Param-*` headers forwarded to the upstream for this call.
pub fn check_params(
    headers: &HeaderMap,
    message: &Message,
    tool: &Value,
) -> Result<Vec<String>, Mismatch> {
    let arguments = message.arguments();
    let mut annotated = Vec::new();
    collect_annotated(tool.get("inputSchema"), &mut Vec::new(), &mut annotated, 0);
    let mut checked = Vec::with_capacity(annotated.len());
    for (path, name) in annotated {
        let header_name = format!("mcp-param-{}", name.to_ascii_lowercase());
        let mut value = Some(&arguments);
        for key in &path {
            value = value.and_then(|v| v.get(key));
        }
        let body = match value {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) => Some(s.clone()),
            Some(Value::Bool(b)) => Some(b.to_string()),
            Some(Value::Number(n)) => Some(n.to_string()),
            Some(_) => {
                return Err(Mismatch(format!(
                    "parameter for Mcp-Param-{name} is not a primitive"
                )));
            }
        };
        let sent = header(headers, &header_name)?
            .map(decode_value)
            .transpose()?;
        match (sent, body) {
            (None, None) => {}
            (Some(h), Some(b)) if h == b || numbers_equal(&h, &b) => {}
            (None, Some(_)) => {
                return Err(Mismatch(format!(
                    "Mcp-Param-{name} header is required: the body has a value"
                )));
            }
            (Some(h), None) => {
                return Err(Mismatch(format!(
                    "Mcp-Param-{name} header '{h}' but the body has no value"
                )));
            }
            (Some(h), Some(b)) => {
                return Err(Mismatch(format!(
                    "Mcp-Param-{name} header value '{h}' does not match body value '{b}'"
                )));
            }
        }
        checked.push(header_name);
    }
    Ok(checked)
}

fn numbers_equal(a: &str, b: &str) -> bool {
    matches!((a.parse::<f64>(), b.parse::<f64>()), (Ok(x), Ok(y)) if x == y)
}

fn collect_annotated(
    schema: Option<&Value>,
    path: &mut Vec<String>,
    out: &mut Vec<(Vec<String>, String)>,
    depth: usize,
) {
    let Some(props) = schema
        .and_then(|s| s.get("properties"))
        .and_then(Value::as_object)
    else {
        return;
    };
    if depth > 16 {
        return;
    }
    for (key, prop) in props {
        path.push(key.clone());
        if let Some(name) = prop.get("x-mcp-header").and_then(Value::as_str) {
            out.push((path.clone(), name.to_string()));
        }
        collect_annotated(Some(prop), path, out, depth + 1);
        path.pop();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hyper::header::HeaderValue;

    fn msg(body: &str) -> Message {
        Message::parse(body.as_bytes()).unwrap()
    }

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    const CALL: &str = r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"get_weather","arguments":{"region":"us-west1"},"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28"}}}"#;

    #[test]
    fn stateless_call_with_matching_headers_passes() {
        let m = msg(CALL);
        let h = headers(&[
            ("mcp-protocol-version", "2026-07-28"),
            ("mcp-method", "tools/call"),
            ("mcp-name", "get_weather"),
        ]);
        let rev = revision(&h, &m);
        assert!(matches!(rev, Revision::Stateless(_)));
        assert_eq!(check(&h, &m, &rev), Ok(()));
    }

    #[test]
    fn mismatched_or_missing_headers_are_refused() {
        let m = msg(CALL);
        let rev = Revision::Stateless("2026-07-28".into());
        let wrong_name = headers(&[
            ("mcp-protocol-version", "2026-07-28"),
            ("mcp-method", "tools/call"),
            ("mcp-name", "read_file"),
        ]);
        assert!(
            check(&wrong_name, &m, &rev)
                .unwrap_err()
                .0
                .contains("does not match")
        );
        let wrong_method = headers(&[
            ("mcp-protocol-version", "2026-07-28"),
            ("mcp-method", "tools/list"),
            ("mcp-name", "get_weather"),
        ]);
        assert!(check(&wrong_method, &m, &rev).is_err());
        let missing = headers(&[
            ("mcp-protocol-version", "2026-07-28"),
            ("mcp-method", "tools/call"),
        ]);
        assert!(
            check(&missing, &m, &rev)
                .unwrap_err()
                .0
                .contains("required")
        );
        let version = headers(&[
            ("mcp-protocol-version", "2025-11-25"),
            ("mcp-method", "tools/call"),
            ("mcp-name", "get_weather"),
        ]);
        assert!(check(&version, &m, &rev).is_err());
    }

    #[test]
    fn a_metadata_header_sent_twice_is_refused() {
        let m = msg(CALL);
        let rev = Revision::Stateless("2026-07-28".into());
        for twice in [
            "mcp-name",
            "mcp-method",
            "mcp-protocol-version",
            "mcp-param-region",
        ] {
            let mut h = headers(&[
                ("mcp-protocol-version", "2026-07-28"),
                ("mcp-method", "tools/call"),
                ("mcp-name", "get_weather"),
            ]);
            h.append(twice, HeaderValue::from_static("delete_all"));
            h.append(twice, HeaderValue::from_static("delete_all"));
            let e = check(&h, &m, &rev).unwrap_err();
            assert!(e.0.contains("more than once"), "{twice}: {e}");
        }
    }

    #[test]
    fn base64_names_are_decoded() {
        let m = msg(CALL);
        let rev = Revision::Stateless("2026-07-28".into());
        let h = headers(&[
            ("mcp-protocol-version", "2026-07-28"),
            ("mcp-method", "tools/call"),
            ("mcp-name", "=?base64?Z2V0X3dlYXRoZXI=?="),
        ]);
        assert_eq!(check(&h, &m, &rev), Ok(()));
    }

    #[test]
    fn session_requests_with_lying_headers_are_refused_too() {
        let m =
            msg(r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"delete_all"}}"#);
        let h = headers(&[("mcp-method", "tools/call"), ("mcp-name", "echo")]);
        let rev = revision(&h, &m);
        assert!(matches!(rev, Revision::Sessions(_)));
        assert!(check(&h, &m, &rev).is_err());
        assert_eq!(check(&HeaderMap::new(), &m, &rev), Ok(()));
    }

    #[test]
    fn param_headers_follow_x_mcp_header() {
        let tool: Value = serde_json::json!({"name":"get_weather","inputSchema":{"type":"object","properties":{"region":{"type":"string","x-mcp-header":"Region"}}}});
        let m = msg(CALL);
        let base = [
            ("mcp-protocol-version", "2026-07-28"),
            ("mcp-method", "tools/call"),
            ("mcp-name", "get_weather"),
        ];
        assert!(
            check_params(&headers(&base), &m, &tool)
                .unwrap_err()
                .0
                .contains("Mcp-Param-Region")
        );
        let mut ok = base.to_vec();
        ok.push(("mcp-param-region", "us-west1"));
        assert_eq!(
            check_params(&headers(&ok), &m, &tool),
            Ok(vec!["mcp-param-region".to_string()])
        );
        let mut bad = base.to_vec();
        bad.push(("mcp-param-region", "eu-north1"));
        assert!(check_params(&headers(&bad), &m, &tool).is_err());
    }
}
