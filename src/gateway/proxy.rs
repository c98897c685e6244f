//! The request path: route, origin, token, scopes, revision rules, session binding, tool pins,
//! forward, and the events of each step. Every refusal is a well-formed HTTP or JSON-RPC error
//! with a reason, and an event.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::header::{self, HeaderMap, HeaderName, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use serde_json::{Value, json};

use super::Gateway;
use super::body::{self, Captured, GatewayBody, TeeBody};
use super::headers::{self, Revision};
use super::jsonrpc::{Kind, Message, codes, error_body};
use super::redact;
use super::review;
use super::sessions::{self, SessionRefusal, Sessions};
use super::upstream::{self, Upstream};
use crate::auth::jwt::Validated;
use crate::protocol::EventData;
use crate::protocol::events::{
    AuthEvent, AuthFailure, AuthOutcome, CallPhase, ClientInfo, Decision, Refusal, ToolCall,
};

/// Bytes of a tool result kept for the audit event (the monitor scans them).
const RESULT_CAPTURE: usize = 16 * 1024;
/// Characters of result text in the event.
const SUMMARY_CHARS: usize = 8 * 1024;
/// A JSON answer to a call up to this long is read whole and checked before the client gets
/// it; a longer (or chunked) one streams through unread.
const JSON_ANSWER_WHOLE: usize = 1024 * 1024;

/// The `Content-Length` of a message, when it has exactly one that is a number.
fn content_length(headers: &HeaderMap) -> Option<usize> {
    let mut values = headers.get_all(header::CONTENT_LENGTH).iter();
    let first = values.next()?;
    if values.next().is_some() {
        return None;
    }
    first.to_str().ok()?.trim().parse().ok()
}

/// Everything known about the caller once the token is accepted.
struct Caller {
    token: Validated,
    remote: String,
}

/// A refusal to answer with, and to record.
struct Refused {
    status: StatusCode,
    reason: &'static str,
    detail: String,
    id: Option<Value>,
    code: i64,
    method: Option<String>,
}

impl Refused {
    fn new(status: StatusCode, reason: &'static str, detail: impl Into<String>) -> Self {
        Self {
            status,
            reason,
            detail: detail.into(),
            id: None,
            code: codes::POLICY,
            method: None,
        }
    }

    fn rpc(mut self, message: Option<&Message>, code: i64) -> Self {
        self.id = message.and_then(|m| m.id.clone());
        self.method = message.and_then(|m| m.method.clone());
        self.code = code;
        self
    }
}

/// Handles one request.
pub async fn handle(
    gw: Arc<Gateway>,
    req: Request<Incoming>,
    peer: SocketAddr,
) -> Response<GatewayBody> {
    gw.metrics.request();
    let path = req.uri().path().to_string();
    if path == "/.well-known/oauth-protected-resource"
        || path.starts_with("/.well-known/oauth-protected-resource/")
    {
        return protected_resource_metadata(&gw);
    }
    let Some(upstream) = path
        .strip_prefix("/mcp/")
        .and_then(|name| gw.upstreams.get(name))
        .cloned()
    else {
        // Probing for servers that are not configured is worth knowing about too.
        gw.metrics.refusal("not_found");
        let shown: String = path.chars().take(200).collect();
        gw.events
            .emit(EventData::Refusal(Refusal {
                status: StatusCode::NOT_FOUND.as_u16(),
                reason: "not_found".into(),
                detail: format!("no MCP server is served at {shown:?}"),
                upstream: None,
                method: None,
                user: None,
                remote: Some(peer.to_string()),
            }))
            .await;
        return plain(
            StatusCode::NOT_FOUND,
            "not found: MCP servers are served at /mcp/<name>",
        );
    };
    let remote = peer.to_string();
    // A POST takes its permit only once its body is in (`post`): a slow body holds none.
    let _permit = if req.method() == Method::POST {
        None
    } else if let Ok(permit) = gw.limiter.clone().try_acquire_owned() {
        Some(permit)
    } else {
        let refused = Refused::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "overloaded",
            "too many requests in flight; retry shortly",
        );
        return refuse(&gw, refused, &upstream, None, &remote).await;
    };
    if let Some(origin) = req.headers().get(header::ORIGIN) {
        let allowed = origin
            .to_str()
            .is_ok_and(|o| gw.allowed_origins.iter().any(|a| a == o));
        if !allowed {
            let detail = format!(
                "Origin {:?} is not allowed (DNS rebinding protection)",
                origin
            );
            return refuse(
                &gw,
                Refused::new(StatusCode::FORBIDDEN, "bad_origin", detail),
                &upstream,
                None,
                &remote,
            )
            .await;
        }
    }
    let token = match authenticate(&gw, req.headers(), &upstream, &remote).await {
        Ok(token) => token,
        Err(response) => return response,
    };
    let Some(_in_flight) = gw.admission.subjects.try_hold(token.subject.clone()) else {
        let detail = format!(
            "{} requests of this subject are in flight; retry when one finishes",
            gw.admission.subjects.cap()
        );
        let refused = Refused::new(StatusCode::TOO_MANY_REQUESTS, "subject_busy", detail);
        return refuse(&gw, refused, &upstream, Some(&token.subject), &remote).await;
    };
    if let Some(missing) = upstream.scopes.iter().find(|s| !token.scopes.contains(s)) {
        return insufficient_scope(&gw, &upstream, &token, missing, &remote).await;
    }
    let caller = Caller { token, remote };
    let result = match *req.method() {
        Method::POST => post(&gw, &upstream, &caller, req).await,
        Method::GET => get(&gw, &upstream, &caller, req).await,
        Method::DELETE => delete(&gw, &upstream, &caller, req).await,
        _ => Err(Refused::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
            "use POST, GET or DELETE",
        )),
    };
    match result {
        Ok(response) => response,
        Err(refused) => {
            refuse(
                &gw,
                refused,
                &upstream,
                Some(&caller.token.subject),
                &caller.remote,
            )
            .await
        }
    }
}

fn plain(status: StatusCode, text: &str) -> Response<GatewayBody> {
    let mut response = Response::new(body::full(format!("{text}\n")));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

fn json_response(status: StatusCode, bytes: Bytes) -> Response<GatewayBody> {
    let mut response = Response::new(body::full(bytes));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

/// RFC 9728 protected resource metadata.
fn protected_resource_metadata(gw: &Gateway) -> Response<GatewayBody> {
    let doc = json!({
        "resource": gw.resource,
        "authorization_servers": gw.authorization_servers,
        "bearer_methods_supported": ["header"],
        "resource_name": "mcpsoc gateway",
    });
    json_response(StatusCode::OK, Bytes::from(doc.to_string()))
}

/// The RFC 9728 §3.1 metadata URL of the resource: the well-known suffix goes between the host
/// and the resource's path (`https://h/mcp/x` has `https://h/.well-known/oauth-protected-resource/mcp/x`),
/// which is where `handle` serves it.
fn metadata_url(gw: &Gateway) -> String {
    let resource = gw.resource.trim_end_matches('/');
    let path_start = resource
        .find("://")
        .and_then(|i| resource[i + 3..].find('/').map(|j| i + 3 + j))
        .unwrap_or(resource.len());
    let (origin, path) = resource.split_at(path_start);
    format!("{origin}/.well-known/oauth-protected-resource{path}")
}

async fn refuse(
    gw: &Gateway,
    r: Refused,
    upstream: &Upstream,
    user: Option<&str>,
    remote: &str,
) -> Response<GatewayBody> {
    gw.metrics.refusal(r.reason);
    gw.events
        .emit(EventData::Refusal(Refusal {
            status: r.status.as_u16(),
            reason: r.reason.to_string(),
            // Details can echo what the client sent (header values): never a secret.
            detail: redact::redact_text(&r.detail).0,
            upstream: Some(upstream.name.clone()),
            method: r.method.clone(),
            user: user.map(str::to_string),
            remote: Some(remote.to_string()),
        }))
        .await;
    json_response(r.status, error_body(r.id.as_ref(), r.code, &r.detail))
}

/// Validates the bearer token; every attempt becomes an auth event.
async fn authenticate(
    gw: &Gateway,
    headers: &HeaderMap,
    upstream: &Upstream,
    remote: &str,
) -> Result<Validated, Response<GatewayBody>> {
    let bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(crate::auth::bearer);
    let now = chrono::Utc::now().timestamp();
    let outcome = match bearer {
        None => Err((
            AuthFailure::MissingToken,
            "no bearer token".to_string(),
            None,
        )),
        Some(token) => gw
            .tokens
            .validate(token, &gw.policy, now, &gw.client)
            .await
            .map_err(|r| (r.reason, r.detail, r.claims_hint))
            .and_then(|token| match revoked(gw, &token) {
                None => Ok(token),
                Some(detail) => Err((
                    AuthFailure::Revoked,
                    detail,
                    Some(Box::new(crate::auth::jwt::ClaimsHint {
                        subject: Some(token.subject.clone()),
                        client_id: token.client_id.clone(),
                        audience: Some(gw.resource.clone()),
                        issuer: Some(token.issuer.clone()),
                    })),
                )),
            }),
    };
    match outcome {
        Ok(token) => {
            gw.events
                .emit(EventData::Auth(AuthEvent {
                    outcome: AuthOutcome::Accepted,
                    reason: None,
                    user: Some(token.subject.clone()),
                    client_id: token.client_id.clone(),
                    audience: Some(gw.resource.clone()),
                    issuer: Some(token.issuer.clone()),
                    upstream: Some(upstream.name.clone()),
                    remote: Some(remote.to_string()),
                    detail: None,
                }))
                .await;
            Ok(token)
        }
        Err((reason, detail, hint)) => {
            gw.metrics.refusal(auth_reason_name(reason));
            let hint = hint.unwrap_or_default();
            gw.events
                .emit(EventData::Auth(AuthEvent {
                    outcome: AuthOutcome::Rejected,
                    reason: Some(reason),
                    user: hint.subject,
                    client_id: hint.client_id,
                    audience: hint.audience,
                    issuer: hint.issuer,
                    upstream: Some(upstream.name.clone()),
                    remote: Some(remote.to_string()),
                    detail: Some(detail.clone()),
                }))
                .await;
            Err(unauthorized(gw, reason, &detail))
        }
    }
}

/// Whether a revocation cuts this token off (what it proves: issuer, subject, client), and
/// what to tell the client.
fn revoked(gw: &Gateway, token: &Validated) -> Option<String> {
    let revocation = gw.sessions.revocation_for(
        &token.issuer,
        &token.subject,
        token.client_id.as_deref(),
        token.issued_at,
    )?;
    Some(format!(
        "token revoked: {} (at {}); present a token issued after the revocation",
        revocation.describe(),
        chrono::DateTime::from_timestamp(revocation.before, 0)
            .map(crate::protocol::format_time)
            .unwrap_or_else(|| revocation.before.to_string()),
    ))
}

fn auth_reason_name(reason: AuthFailure) -> &'static str {
    match reason {
        AuthFailure::MissingToken => "missing_token",
        AuthFailure::Malformed => "malformed_token",
        AuthFailure::BadSignature => "bad_signature",
        AuthFailure::Expired => "expired",
        AuthFailure::NotYetValid => "not_yet_valid",
        AuthFailure::WrongAudience => "wrong_audience",
        AuthFailure::WrongIssuer => "wrong_issuer",
        AuthFailure::InsufficientScope => "insufficient_scope",
        AuthFailure::Revoked => "revoked",
    }
}

/// 401 with the RFC 9728 pointer to the protected resource metadata.
fn unauthorized(gw: &Gateway, reason: AuthFailure, detail: &str) -> Response<GatewayBody> {
    let mut challenge = format!("Bearer resource_metadata=\"{}\"", metadata_url(gw));
    if reason != AuthFailure::MissingToken {
        let safe: String = detail
            .chars()
            .filter(|c| *c != '"' && *c != '\\' && !c.is_control())
            .take(200)
            .collect();
        challenge.push_str(&format!(
            ", error=\"invalid_token\", error_description=\"{safe}\""
        ));
    }
    let mut response = json_response(
        StatusCode::UNAUTHORIZED,
        error_body(None, codes::POLICY, &format!("unauthorized: {detail}")),
    );
    if let Ok(v) = HeaderValue::from_str(&challenge) {
        response.headers_mut().insert(header::WWW_AUTHENTICATE, v);
    }
    response
}

async fn insufficient_scope(
    gw: &Gateway,
    upstream: &Upstream,
    token: &Validated,
    scope: &str,
    remote: &str,
) -> Response<GatewayBody> {
    gw.metrics.refusal("insufficient_scope");
    let detail = format!("scope {scope} is required for {}", upstream.name);
    gw.events
        .emit(EventData::Auth(AuthEvent {
            outcome: AuthOutcome::Rejected,
            reason: Some(AuthFailure::InsufficientScope),
            user: Some(token.subject.clone()),
            client_id: token.client_id.clone(),
            audience: Some(gw.resource.clone()),
            issuer: Some(token.issuer.clone()),
            upstream: Some(upstream.name.clone()),
            remote: Some(remote.to_string()),
            detail: Some(detail.clone()),
        }))
        .await;
    let mut response = json_response(
        StatusCode::FORBIDDEN,
        error_body(None, codes::POLICY, &detail),
    );
    let challenge = format!(
        "Bearer error=\"insufficient_scope\", scope=\"{scope}\", resource_metadata=\"{}\"",
        metadata_url(gw)
    );
    if let Ok(v) = HeaderValue::from_str(&challenge) {
        response.headers_mut().insert(header::WWW_AUTHENTICATE, v);
    }
    response
}

/// The client as the request names it, plus the token's client id.
fn client_of(message: &Message, token: &Validated) -> ClientInfo {
    let (name, version) = message
        .client_info()
        .unwrap_or_else(|| ("unknown".into(), None));
    ClientInfo {
        name,
        version,
        client_id: token.client_id.clone(),
    }
}

fn session_header(headers: &HeaderMap) -> Option<String> {
    headers
        .get("mcp-session-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
}

/// What a request is bound to.
struct Bound {
    binding: String,
    upstream_session: Option<String>,
    client: ClientInfo,
    version: String,
}

async fn bind_session(
    gw: &Gateway,
    upstream: &Upstream,
    caller: &Caller,
    headers: &HeaderMap,
    call: bool,
    message: Option<&Message>,
) -> Result<Bound, Refused> {
    let user = &caller.token.subject;
    let Some(id) = session_header(headers) else {
        return Err(Refused::new(
            StatusCode::BAD_REQUEST,
            "missing_session",
            "Mcp-Session-Id header is required after initialize",
        )
        .rpc(message, codes::INVALID_REQUEST));
    };
    match gw.sessions.use_session(&id, user, &upstream.name, call) {
        Ok(session) => Ok(Bound {
            binding: sessions::session_key(&session.user, &session.id),
            upstream_session: session.upstream_session.clone(),
            client: session.client.clone(),
            version: session.protocol_version.clone(),
        }),
        Err((refusal, event)) => {
            if let Some(event) = event {
                gw.events.emit(EventData::Session(*event)).await;
            }
            let (status, reason, detail) = match refusal {
                SessionRefusal::NotFound => (
                    StatusCode::NOT_FOUND,
                    "unknown_session",
                    "session not found; initialize again".to_string(),
                ),
                SessionRefusal::Expired => (
                    StatusCode::NOT_FOUND,
                    "session_expired",
                    "session expired; initialize again".to_string(),
                ),
                SessionRefusal::Revoked => (
                    StatusCode::NOT_FOUND,
                    "session_revoked",
                    "session revoked".to_string(),
                ),
                SessionRefusal::WrongUpstream => (
                    StatusCode::NOT_FOUND,
                    "unknown_session",
                    "session not found on this server".to_string(),
                ),
                SessionRefusal::OtherIdentity { .. } => (
                    StatusCode::FORBIDDEN,
                    "session_hijack",
                    "this session belongs to another identity".to_string(),
                ),
            };
            Err(Refused::new(status, reason, detail).rpc(message, codes::INVALID_REQUEST))
        }
    }
}

async fn post(
    gw: &Arc<Gateway>,
    upstream: &Upstream,
    caller: &Caller,
    req: Request<Incoming>,
) -> Result<Response<GatewayBody>, Refused> {
    let (parts, incoming) = req.into_parts();
    let within = gw.admission.body_timeout;
    let bytes = tokio::time::timeout(within, body::read_limited(incoming, gw.max_body))
        .await
        .map_err(|_| {
            let detail = format!(
                "the request body did not arrive within {} s",
                within.as_secs()
            );
            Refused::new(StatusCode::REQUEST_TIMEOUT, "body_timeout", detail)
        })?
        .map_err(|e| match e {
            body::ReadError::TooLarge(_) => Refused::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "body_too_large",
                e.to_string(),
            ),
            body::ReadError::Broken(_) => {
                Refused::new(StatusCode::BAD_REQUEST, "body_unreadable", e.to_string())
            }
        })?;
    // The concurrency permit, taken now that the body is whole (held until the answer).
    let Ok(_permit) = gw.limiter.clone().try_acquire_owned() else {
        return Err(Refused::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "overloaded",
            "too many requests in flight; retry shortly",
        ));
    };
    let message = Message::parse(&bytes).map_err(|e| {
        Refused::new(StatusCode::BAD_REQUEST, "malformed_jsonrpc", e.to_string())
            .rpc(None, e.code())
    })?;
    let revision = headers::revision(&parts.headers, &message);
    let tool_name = (message.method.as_deref() == Some("tools/call"))
        .then(|| message.name().unwrap_or("").to_string());
    if matches!(revision, Revision::Stateless(_))
        && message.kind == Kind::Request
        && message.meta_version().is_none()
    {
        // As a 2026-07-28 server answers it: the request's params lack what the revision
        // requires in every request.
        return Err(Refused::new(
            StatusCode::BAD_REQUEST,
            "invalid_params",
            format!(
                "_meta \"{}\" is required in every 2026-07-28 request",
                super::jsonrpc::META_VERSION
            ),
        )
        .rpc(Some(&message), codes::INVALID_PARAMS));
    }
    headers::check(&parts.headers, &message, &revision).map_err(|e| {
        Refused::new(StatusCode::BAD_REQUEST, "header_mismatch", e.to_string())
            .rpc(Some(&message), codes::HEADER_MISMATCH)
    })?;
    let is_initialize = message.method.as_deref() == Some("initialize");
    let bound = match &revision {
        Revision::Sessions(version) if is_initialize => Bound {
            binding: String::new(),
            upstream_session: None,
            client: client_of(&message, &caller.token),
            version: version.clone(),
        },
        Revision::Sessions(_) => {
            bind_session(
                gw,
                upstream,
                caller,
                &parts.headers,
                tool_name.is_some(),
                Some(&message),
            )
            .await?
        }
        Revision::Stateless(version) => {
            // The binding names the client the token proves, else the name the request
            // declares (for the responder's eyes only: a revocation keys on the token).
            let client = client_of(&message, &caller.token);
            let client_key = caller
                .token
                .client_id
                .clone()
                .unwrap_or_else(|| client.name.clone());
            let (binding, event) = gw.sessions.touch_binding(
                (&caller.token.issuer, &caller.token.subject),
                &client_key,
                &client,
                &upstream.name,
            );
            if let Some(event) = event {
                gw.events.emit(EventData::Session(event)).await;
            }
            Bound {
                binding,
                upstream_session: None,
                client,
                version: version.clone(),
            }
        }
    };
    if message.kind == Kind::Response {
        answer_to_server(gw, &bound, &message, &bytes).await?;
    }
    if let Some(tool) = tool_name {
        return tool_call(
            gw,
            upstream,
            caller,
            &parts.headers,
            message,
            bytes,
            bound,
            tool,
        )
        .await;
    }
    let upstream_request = upstream::request(
        upstream,
        Method::POST,
        &parts.headers,
        bound.upstream_session.as_deref(),
        &[],
        body::full(bytes),
    )
    .map_err(|e| Refused::new(StatusCode::BAD_GATEWAY, "upstream_request", e))?;
    let response = send(gw, upstream_request).await?;
    if is_initialize {
        return initialized(gw, upstream, caller, bound, response, &message).await;
    }
    let expect = review::Expect {
        upstream: upstream.name.clone(),
        audience: bound.binding.clone(),
        id: message.id.clone(),
        listing: message.method.as_deref() == Some("tools/list") && message.kind == Kind::Request,
        method: message.method.clone(),
    };
    // `subscriptions/listen` lives on: the reviewer adds list_changed notices to it as
    // approvals change what it may see.
    reviewed(gw, expect, response).await
}

/// A client's answer to a request of the server: it must answer a request the server sent this
/// caller, once, in the shape of its method ([`super::server_requests`]).
async fn answer_to_server(
    gw: &Gateway,
    bound: &Bound,
    message: &Message,
    bytes: &[u8],
) -> Result<(), Refused> {
    let whole = crate::protocol::strict_json::parse(bytes).map_err(|e| {
        Refused::new(StatusCode::BAD_REQUEST, "malformed_jsonrpc", e.to_string())
            .rpc(Some(message), codes::INVALID_REQUEST)
    })?;
    let id = message.id.clone().unwrap_or(Value::Null);
    gw.server_requests
        .answer(&bound.binding, &id, &whole)
        .map_err(|e| {
            let reason = match e {
                super::server_requests::BadAnswer::Unsolicited(_) => "unsolicited_response",
                super::server_requests::BadAnswer::Malformed { .. } => "malformed_response",
            };
            Refused::new(StatusCode::BAD_REQUEST, reason, e.to_string())
                .rpc(Some(message), codes::INVALID_REQUEST)
        })
}

/// The upstream's answer to a POST, reviewed ([`review::answer`]).
async fn reviewed(
    gw: &Arc<Gateway>,
    expect: review::Expect,
    response: Response<Incoming>,
) -> Result<Response<GatewayBody>, Refused> {
    review::answer(gw, expect, response, gw.response_timeout)
        .await
        .map_err(|(status, reason, detail)| Refused::new(status, reason, detail))
}

/// Sends to the upstream with the response timeout.
async fn send(gw: &Gateway, request: Request<GatewayBody>) -> Result<Response<Incoming>, Refused> {
    let started = Instant::now();
    let result = tokio::time::timeout(gw.response_timeout, gw.client.request(request)).await;
    gw.metrics.upstream_latency(started.elapsed());
    match result {
        Err(_) => Err(Refused::new(
            StatusCode::GATEWAY_TIMEOUT,
            "upstream_timeout",
            format!(
                "upstream did not answer within {} s",
                gw.response_timeout.as_secs()
            ),
        )),
        Ok(Err(e)) => Err(Refused::new(
            StatusCode::BAD_GATEWAY,
            "upstream_unreachable",
            format!("upstream unreachable: {e}"),
        )),
        Ok(Ok(response))
            if response.status() == StatusCode::UNAUTHORIZED
                || response.status() == StatusCode::FORBIDDEN =>
        {
            Err(Refused::new(
                StatusCode::BAD_GATEWAY,
                "upstream_refused_gateway",
                format!(
                    "upstream refused the gateway's own credentials ({})",
                    response.status()
                ),
            ))
        }
        Ok(Ok(response)) => Ok(response),
    }
}

async fn initialized(
    gw: &Arc<Gateway>,
    upstream: &Upstream,
    caller: &Caller,
    bound: Bound,
    response: Response<Incoming>,
    message: &Message,
) -> Result<Response<GatewayBody>, Refused> {
    let expect = review::Expect {
        upstream: upstream.name.clone(),
        audience: String::new(),
        id: message.id.clone(),
        listing: false,
        method: message.method.clone(),
    };
    if !response.status().is_success() {
        return reviewed(gw, expect, response).await;
    }
    let upstream_session = response
        .headers()
        .get("mcp-session-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let id = sessions::new_session_id().ok_or_else(|| {
        Refused::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "no_randomness",
            "the OS random source failed",
        )
    })?;
    let mut out = reviewed(gw, expect, response).await?;
    let session = Sessions::new_session(
        id.clone(),
        upstream_session,
        &upstream.name,
        (&caller.token.issuer, &caller.token.subject),
        bound.client,
        &bound.version,
    );
    let event = gw.sessions.create(session);
    gw.events.emit(EventData::Session(event)).await;
    if let Ok(value) = HeaderValue::from_str(&id) {
        out.headers_mut()
            .insert(HeaderName::from_static("mcp-session-id"), value);
    }
    Ok(out)
}

#[allow(clippy::too_many_arguments)]
async fn tool_call(
    gw: &Arc<Gateway>,
    upstream: &Upstream,
    caller: &Caller,
    headers: &HeaderMap,
    message: Message,
    bytes: Bytes,
    bound: Bound,
    tool: String,
) -> Result<Response<GatewayBody>, Refused> {
    // What this caller was offered must be the approved definition (see `pins`).
    let approved = gw.pins.check_call(&upstream.name, &tool, &bound.binding);
    // The `Mcp-Param-*` headers checked against the body are the only ones that cross.
    let params = match &approved {
        Ok(definition) => headers::check_params(headers, &message, definition).map_err(|e| {
            Refused::new(StatusCode::BAD_REQUEST, "header_mismatch", e.to_string())
                .rpc(Some(&message), codes::HEADER_MISMATCH)
        })?,
        Err(_) => Vec::new(),
    };
    let mut arguments = message.arguments();
    redact::redact_value(&mut arguments);
    let call_id = format!("{}-{}", &caller.remote, uuid::Uuid::new_v4().simple());
    let mut call = ToolCall {
        call_id,
        phase: CallPhase::Started,
        user: caller.token.subject.clone(),
        session: (!bound.binding.is_empty()).then(|| bound.binding.clone()),
        client: bound.client.clone(),
        protocol_version: Some(bound.version.clone()),
        upstream: upstream.name.clone(),
        tool: tool.clone(),
        arguments,
        result_summary: None,
        result_bytes: None,
        is_error: false,
        latency_ms: None,
        decision: Decision::Allow,
        reason: None,
    };
    let missing_scope = upstream.tool_scopes.get(&tool).and_then(|need| {
        need.iter()
            .find(|s| !caller.token.scopes.contains(s))
            .cloned()
    });
    let refusal = match (&approved, missing_scope) {
        (_, Some(scope)) => Some(format!("scope {scope} is required for tool {tool}")),
        (Err(refusal), None) => Some(refusal.reason(&tool)),
        (Ok(_), None) => None,
    };
    if let Some(reason) = refusal {
        gw.metrics.tool_call(false);
        call.phase = CallPhase::Finished;
        call.decision = Decision::Deny;
        call.is_error = true;
        call.reason = Some(reason.clone());
        call.latency_ms = Some(0.0);
        gw.events.emit(EventData::ToolCall(call)).await;
        if reason.starts_with("scope") {
            return Ok(json_response(
                StatusCode::FORBIDDEN,
                error_body(message.id.as_ref(), codes::POLICY, &reason),
            ));
        }
        // A refused tool answers like a tool that failed (an `isError` result, as servers do for
        // a tool they lack), so the model sees why and can tell the user.
        let body = refused_tool_result(
            message.id.as_ref(),
            &bound.version,
            &format!("refused by the mcpsoc gateway: {reason}"),
        );
        return Ok(json_response(StatusCode::OK, body));
    }
    gw.metrics.tool_call(true);
    gw.events.emit(EventData::ToolCall(call.clone())).await;
    let started = Instant::now();
    let upstream_request = upstream::request(
        upstream,
        Method::POST,
        headers,
        bound.upstream_session.as_deref(),
        &params,
        body::full(bytes),
    )
    .map_err(|e| Refused::new(StatusCode::BAD_GATEWAY, "upstream_request", e))?;
    let response = match send(gw, upstream_request).await {
        Ok(response) => response,
        Err(refused) => {
            call.phase = CallPhase::Finished;
            call.is_error = true;
            call.reason = Some(refused.detail.clone());
            call.latency_ms = Some(started.elapsed().as_secs_f64() * 1000.0);
            gw.events.emit(EventData::ToolCall(call)).await;
            return Err(refused.rpc(Some(&message), codes::POLICY));
        }
    };
    // An event stream is reviewed event by event (responses to other requests dropped, the
    // server's own requests noted for their answers); a JSON answer streams through as it is.
    let expect = review::Expect {
        upstream: upstream.name.clone(),
        audience: bound.binding.clone(),
        id: message.id.clone(),
        listing: false,
        method: message.method.clone(),
    };
    let mut answer = None;
    let (parts, streamed): (_, GatewayBody) = match super::media::body_kind(response.headers()) {
        Err(e) if response.status().is_success() => {
            let detail = format!("tools/call answer refused: {e}");
            call.phase = CallPhase::Finished;
            call.is_error = true;
            call.reason = Some(detail.clone());
            call.latency_ms = Some(started.elapsed().as_secs_f64() * 1000.0);
            gw.events.emit(EventData::ToolCall(call)).await;
            return Err(
                Refused::new(StatusCode::BAD_GATEWAY, "upstream_malformed", detail)
                    .rpc(Some(&message), codes::POLICY),
            );
        }
        Ok(super::media::BodyKind::EventStream) if response.status().is_success() => {
            let (reviewed, kept) = review::stream_keeping_answer(gw, expect, response);
            answer = Some(kept);
            reviewed.into_parts()
        }
        // A JSON answer of a known, bounded length is read whole and checked (it must be this
        // call's response); a longer or chunked one streams through as it comes.
        Ok(super::media::BodyKind::Json)
            if response.status().is_success()
                && content_length(response.headers()).is_some_and(|n| n <= JSON_ANSWER_WHOLE) =>
        {
            let (parts, incoming) = response.into_parts();
            let read = tokio::time::timeout(
                gw.response_timeout,
                body::read_limited(incoming, JSON_ANSWER_WHOLE),
            )
            .await;
            let checked = match read {
                Ok(Ok(bytes)) => review::call_answer(&expect, &bytes).map(|m| (bytes, m)),
                Ok(Err(e)) => Err(format!("tools/call answer: {e}")),
                Err(_) => Err(format!(
                    "tools/call answer did not arrive whole within {} s",
                    gw.response_timeout.as_secs()
                )),
            };
            match checked {
                Ok((bytes, parsed)) => {
                    answer = Some(review::Answer::new(std::sync::Mutex::new(Some(parsed))));
                    (parts, body::full(bytes))
                }
                Err(detail) => {
                    review::record_unreadable(gw, &expect, parts.status.as_u16(), detail.clone())
                        .await;
                    call.phase = CallPhase::Finished;
                    call.is_error = true;
                    call.reason = Some(detail.clone());
                    call.latency_ms = Some(started.elapsed().as_secs_f64() * 1000.0);
                    gw.events.emit(EventData::ToolCall(call)).await;
                    return Err(Refused::new(
                        StatusCode::BAD_GATEWAY,
                        "upstream_malformed",
                        detail,
                    )
                    .rpc(Some(&message), codes::POLICY));
                }
            }
        }
        _ => {
            let (parts, incoming) = response.into_parts();
            (parts, incoming.boxed())
        }
    };
    let content_type = parts
        .headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let events = gw.events.clone();
    let id = message.id.clone();
    let status = parts.status;
    let tee = TeeBody::new(streamed, RESULT_CAPTURE, move |captured: Captured| {
        let reviewed = answer.and_then(|a| a.lock().unwrap_or_else(|p| p.into_inner()).take());
        finish_call(
            &mut call,
            status,
            (&captured, reviewed),
            &content_type,
            id.as_ref(),
            started,
        );
        // The body is dropped on the runtime; hand the event to the sink without blocking it.
        tokio::spawn(async move { events.emit(EventData::ToolCall(call)).await });
    });
    let mut out = Response::new(tee.boxed());
    *out.status_mut() = parts.status;
    *out.headers_mut() = upstream::response_headers(&parts.headers);
    Ok(out)
}

/// The tool result the gateway answers a refused call with: an `isError` result that
/// validates against the revision's schema (2026-07-28 results carry
/// `"resultType": "complete"`).
fn refused_tool_result(id: Option<&Value>, version: &str, text: &str) -> Bytes {
    let mut result = json!({
        "content": [{ "type": "text", "text": text }],
        "isError": true,
    });
    if version >= headers::STATELESS_VERSION {
        result["resultType"] = json!("complete");
    }
    let body = json!({
        "jsonrpc": "2.0",
        "id": id.cloned().unwrap_or(Value::Null),
        "result": result,
    });
    Bytes::from(body.to_string())
}

/// Fills the finished tool call from what streamed back: the response the stream reviewer
/// kept when there is one (read whole), else the response found in the captured head.
fn finish_call(
    call: &mut ToolCall,
    status: StatusCode,
    (captured, reviewed): (&Captured, Option<Value>),
    content_type: &str,
    id: Option<&Value>,
    started: Instant,
) {
    call.phase = CallPhase::Finished;
    call.latency_ms = Some(started.elapsed().as_secs_f64() * 1000.0);
    call.result_bytes = Some(captured.total);
    let whole = reviewed.is_some();
    let response = reviewed.or_else(|| {
        body::messages(content_type, &captured.head)
            .into_iter()
            .find(|m| m.get("id") == id && (m.get("result").is_some() || m.get("error").is_some()))
    });
    let (text, is_error) = match &response {
        Some(m) if m.get("error").is_some() => (
            m["error"]["message"]
                .as_str()
                .unwrap_or("error")
                .to_string(),
            true,
        ),
        Some(m) => {
            let result = &m["result"];
            let text: Vec<String> = result
                .get("content")
                .and_then(Value::as_array)
                .map(|items| {
                    items
                        .iter()
                        .filter_map(|c| c.get("text").and_then(Value::as_str).map(str::to_string))
                        .collect()
                })
                .unwrap_or_default();
            let text = if text.is_empty() {
                result
                    .get("structuredContent")
                    .map(|s| s.to_string())
                    .unwrap_or_default()
            } else {
                text.join("\n")
            };
            (
                text,
                result
                    .get("isError")
                    .and_then(Value::as_bool)
                    .unwrap_or(false),
            )
        }
        None if !captured.complete => ("response stream ended early".to_string(), true),
        // Past the captured head a large answer cannot be read here: not known to be wrong.
        None if captured.total as usize > captured.head.len() => (
            String::from_utf8_lossy(&captured.head)
                .chars()
                .take(512)
                .collect(),
            !status.is_success(),
        ),
        None => {
            let head: String = String::from_utf8_lossy(&captured.head)
                .chars()
                .take(512)
                .collect();
            call.reason = Some(format!(
                "upstream answered HTTP {} without a JSON-RPC response to the call",
                status.as_u16()
            ));
            (head, true)
        }
    };
    let mut summary: String = text.chars().take(SUMMARY_CHARS).collect();
    let cut = if whole {
        summary.len() < text.len()
    } else {
        captured.total as usize > captured.head.len()
    };
    if cut {
        summary.push_str(" …[result continues]");
    }
    call.result_summary = Some(redact::redact_text(&summary).0);
    call.is_error = is_error || !captured.complete;
}

/// A GET opens the 2025-11-25 server-to-client stream (refused for stateless traffic).
async fn get(
    gw: &Arc<Gateway>,
    upstream: &Upstream,
    caller: &Caller,
    req: Request<Incoming>,
) -> Result<Response<GatewayBody>, Refused> {
    if req
        .headers()
        .get("mcp-protocol-version")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v >= headers::STATELESS_VERSION)
    {
        return Err(Refused::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
            "GET is not part of MCP 2026-07-28: use subscriptions/listen",
        ));
    }
    let (bound, response) =
        forward_bodiless(gw, upstream, caller, req.headers(), Method::GET).await?;
    let expect = review::Expect {
        upstream: upstream.name.clone(),
        audience: bound.binding,
        id: None,
        listing: false,
        method: None,
    };
    reviewed(gw, expect, response).await
}

/// Forwards a GET or DELETE on the caller's session (no body).
async fn forward_bodiless(
    gw: &Arc<Gateway>,
    upstream: &Upstream,
    caller: &Caller,
    headers: &HeaderMap,
    method: Method,
) -> Result<(Bound, Response<Incoming>), Refused> {
    let bound = bind_session(gw, upstream, caller, headers, false, None).await?;
    let upstream_request = upstream::request(
        upstream,
        method,
        headers,
        bound.upstream_session.as_deref(),
        &[],
        body::empty(),
    )
    .map_err(|e| Refused::new(StatusCode::BAD_GATEWAY, "upstream_request", e))?;
    Ok((bound, send(gw, upstream_request).await?))
}

/// DELETE ends a 2025-11-25 session.
async fn delete(
    gw: &Arc<Gateway>,
    upstream: &Upstream,
    caller: &Caller,
    req: Request<Incoming>,
) -> Result<Response<GatewayBody>, Refused> {
    let (bound, response) =
        forward_bodiless(gw, upstream, caller, req.headers(), Method::DELETE).await?;
    if let Some(id) = session_header(req.headers())
        && let Some(event) = gw.sessions.end(&id)
    {
        gw.events.emit(EventData::Session(event)).await;
    }
    gw.forget_audience(&bound.binding);
    Ok(review::passthrough(response))
}
