//! What an upstream answers is read before a client sees it: one reviewer for every shape the
//! spec allows, so a tools listing goes through pinning however it arrives (a JSON body, one
//! event of a POST's SSE answer among others, a long-lived GET or `subscriptions/listen`
//! stream, any spelling of the media type), and what the gateway cannot read with certainty is
//! refused or dropped, with an event saying why:
//!
//! - a body with a `Content-Encoding` (gzip, …) or two `Content-Type`s is refused (502);
//! - JSON is read with [`strict_json`](crate::protocol::strict_json): a repeated key, an array
//!   (a batch: not part of MCP) or trailing text is refused or dropped;
//! - on a POST's answer, a response to any request but the one sent is dropped (a client
//!   routes responses by id, so it would take it as the answer to another request, a tools
//!   listing for instance);
//! - whatever goes on is what was reviewed: a rewritten listing is re-serialized, a message
//!   the strict parse read one way goes on as that text, in canonical SSE framing.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::StreamExt;
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::header::{self, HeaderValue};
use hyper::{Response, StatusCode};
use serde_json::Value;

use super::Gateway;
use super::body::{self, GatewayBody};
use super::media::{self, BodyKind};
use super::sse;
use super::upstream;
use crate::protocol::EventData;
use crate::protocol::events::{Refusal, ToolChange};

/// What a reviewer expects of the messages it reads.
#[derive(Debug, Clone)]
pub struct Expect {
    /// Upstream name.
    pub upstream: String,
    /// Whose listing this is (the session or binding key; see [`super::pins`]).
    pub audience: String,
    /// The id of the request this answers (a POST); `None` on a GET or listen stream, where
    /// resumed responses to earlier requests may come.
    pub id: Option<Value>,
    /// The request was `tools/list`: its response is a listing to pin.
    pub listing: bool,
    /// The method, for events.
    pub method: Option<String>,
}

/// Why a message is not sent on.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Withheld {
    /// A response to another request.
    ForeignResponse(String),
    /// A listing whose `result.tools` is not an array.
    BadListing,
}

impl Withheld {
    fn describe(&self) -> String {
        match self {
            Self::ForeignResponse(id) => format!("a response to another request (id {id})"),
            Self::BadListing => "a tools/list result whose tools are not an array".into(),
        }
    }
}

/// A response message's id, when the message is a response (`result` or `error`, no method).
fn response_id(message: &Value) -> Option<&Value> {
    let is_response = message.get("method").is_none()
        && (message.get("result").is_some() || message.get("error").is_some());
    if is_response {
        Some(message.get("id").unwrap_or(&Value::Null))
    } else {
        None
    }
}

/// Reviews one message: pins a listing, drops what may not go on. `Ok(false)`: it goes on as
/// it is; `Ok(true)`: it was rewritten (a listing showing only what may be shown).
fn review_message(
    gw: &Gateway,
    expect: &Expect,
    message: &mut Value,
    changes: &mut Vec<ToolChange>,
) -> Result<bool, Withheld> {
    if let (Some(method), Some(id)) = (
        message.get("method").and_then(Value::as_str),
        message.get("id").filter(|id| !id.is_null()),
    ) {
        // A request from the server: the client's answer will be checked against it.
        gw.server_requests.sent(&expect.audience, id, method);
    }
    let id = response_id(message).cloned();
    let is_listing = match (&expect.id, &id) {
        (Some(expected), Some(got)) if expected != got => {
            let shown: String = got.to_string().chars().take(80).collect();
            return Err(Withheld::ForeignResponse(shown));
        }
        (Some(_), Some(_)) => expect.listing,
        // A resumed stream may replay any earlier response: whatever carries tools is pinned.
        (None, Some(_)) => message.pointer("/result/tools").is_some(),
        (_, None) => false,
    };
    if !is_listing {
        return Ok(false);
    }
    let Some(slot) = message.pointer_mut("/result/tools") else {
        return Ok(false);
    };
    let Value::Array(tools) = slot else {
        return Err(Withheld::BadListing);
    };
    let listing = gw.pins.review(&expect.upstream, &expect.audience, tools);
    changes.extend(listing.events);
    *slot = Value::Array(listing.visible);
    Ok(true)
}

/// Records what the gateway would not pass on; when it was (part of) a listing, that caller's
/// calls are refused until a listing is read ([`super::pins::Pins::listing_unreadable`]).
pub async fn record_unreadable(gw: &Gateway, expect: &Expect, status: u16, detail: String) {
    if expect.listing {
        gw.pins
            .listing_unreadable(&expect.upstream, &expect.audience);
    }
    gw.metrics.refusal("upstream_malformed");
    gw.events
        .emit(EventData::Refusal(Refusal {
            status,
            reason: "upstream_malformed".into(),
            detail: super::redact::redact_text(&format!("upstream {}: {detail}", expect.upstream))
                .0,
            upstream: Some(expect.upstream.clone()),
            method: expect.method.clone(),
            user: None,
            remote: None,
        }))
        .await;
}

/// A whole answer refused: the status to answer the client with, the refusal reason and its
/// detail (already recorded as an event).
pub type AnswerRefused = (StatusCode, &'static str, String);

/// Reviews a whole (non-call) answer to a POST: a JSON body is read whole and reviewed, an
/// event stream is reviewed event by event as it streams; any other 2xx body is refused unless
/// empty. Answers that are not 2xx pass as they are (clients do not read messages from them).
pub async fn answer(
    gw: &Arc<Gateway>,
    expect: Expect,
    response: Response<Incoming>,
    timeout: Duration,
) -> Result<Response<GatewayBody>, AnswerRefused> {
    if !response.status().is_success() {
        return Ok(passthrough(response));
    }
    let kind = match media::body_kind(response.headers()) {
        Ok(kind) => kind,
        Err(e) => {
            let detail = format!("{} answer refused: {e}", method_name(&expect));
            record_unreadable(gw, &expect, response.status().as_u16(), detail.clone()).await;
            return Err((StatusCode::BAD_GATEWAY, "upstream_malformed", detail));
        }
    };
    match kind {
        BodyKind::EventStream => Ok(stream(gw, expect, response)),
        BodyKind::Json => whole_json(gw, expect, response, timeout).await,
        BodyKind::Other => {
            let (parts, incoming) = response.into_parts();
            let bytes = read(gw, &expect, incoming, timeout).await?;
            if !bytes.is_empty() {
                let detail = format!(
                    "{} answered HTTP {} with a body that is neither JSON nor an event stream",
                    method_name(&expect),
                    parts.status.as_u16()
                );
                record_unreadable(gw, &expect, parts.status.as_u16(), detail.clone()).await;
                return Err((StatusCode::BAD_GATEWAY, "upstream_malformed", detail));
            }
            let mut out = Response::new(body::empty());
            *out.status_mut() = parts.status;
            *out.headers_mut() = upstream::response_headers(&parts.headers);
            Ok(out)
        }
    }
}

fn method_name(expect: &Expect) -> &str {
    expect.method.as_deref().unwrap_or("the stream")
}

async fn read(
    gw: &Gateway,
    expect: &Expect,
    incoming: Incoming,
    timeout: Duration,
) -> Result<Bytes, AnswerRefused> {
    let result = tokio::time::timeout(timeout, body::read_limited(incoming, gw.max_list)).await;
    let detail = match result {
        Ok(Ok(bytes)) => return Ok(bytes),
        Ok(Err(e @ body::ReadError::TooLarge(_))) => {
            let detail = format!("{} answer: {e}", method_name(expect));
            record_unreadable(gw, expect, 502, detail.clone()).await;
            return Err((StatusCode::BAD_GATEWAY, "upstream_list_too_large", detail));
        }
        Ok(Err(e)) => format!("{} answer: {e}", method_name(expect)),
        Err(_) => format!(
            "{} answer did not arrive whole within {} s",
            method_name(expect),
            timeout.as_secs()
        ),
    };
    record_unreadable(gw, expect, 502, detail.clone()).await;
    Err((StatusCode::BAD_GATEWAY, "upstream_malformed", detail))
}

async fn whole_json(
    gw: &Arc<Gateway>,
    expect: Expect,
    response: Response<Incoming>,
    timeout: Duration,
) -> Result<Response<GatewayBody>, AnswerRefused> {
    let (parts, incoming) = response.into_parts();
    let bytes = read(gw, &expect, incoming, timeout).await?;
    if bytes.is_empty() {
        // An acknowledgement (202 to a notification) may name a type and carry nothing.
        let mut out = Response::new(body::empty());
        *out.status_mut() = parts.status;
        *out.headers_mut() = upstream::response_headers(&parts.headers);
        return Ok(out);
    }
    let status = parts.status.as_u16();
    let refuse = |detail: String| {
        let expect = &expect;
        async move {
            record_unreadable(gw, expect, status, detail.clone()).await;
            Err((StatusCode::BAD_GATEWAY, "upstream_malformed", detail))
        }
    };
    let mut message = match crate::protocol::strict_json::parse(&bytes) {
        Ok(message @ Value::Object(_)) => message,
        Ok(Value::Array(_)) => {
            return refuse(format!(
                "{} answered with a JSON array (a batch; MCP has none): refused",
                method_name(&expect)
            ))
            .await;
        }
        Ok(_) => {
            return refuse(format!(
                "{} answered with JSON that is not a message",
                method_name(&expect)
            ))
            .await;
        }
        Err(e) => {
            return refuse(format!(
                "{} answer is not JSON read one way: {e}",
                method_name(&expect)
            ))
            .await;
        }
    };
    if expect.id.is_some() && response_id(&message) != expect.id.as_ref() {
        // A JSON answer to a request is that request's response and nothing else.
        return refuse(format!(
            "{} answered with a JSON message that is not its response",
            method_name(&expect)
        ))
        .await;
    }
    let mut changes = Vec::new();
    // Unchanged, the bytes go on as they came: the strict parse proved they read one way.
    let reviewed = match review_message(gw, &expect, &mut message, &mut changes) {
        Ok(false) => bytes,
        Ok(true) => Bytes::from(message.to_string()),
        Err(drop) => {
            return refuse(format!(
                "{} answered with {}",
                method_name(&expect),
                drop.describe()
            ))
            .await;
        }
    };
    for change in changes {
        gw.events.emit(EventData::ToolChange(change)).await;
    }
    let mut out = Response::new(body::full(reviewed));
    *out.status_mut() = parts.status;
    *out.headers_mut() = upstream::response_headers(&parts.headers);
    out.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    Ok(out)
}

/// Checks a whole JSON answer to a call: one object read one way, and the response to the
/// request sent (a response with another id would be taken by the client as the answer to
/// another of its requests). Returns it parsed, or why not.
pub fn call_answer(expect: &Expect, bytes: &[u8]) -> Result<Value, String> {
    match crate::protocol::strict_json::parse(bytes) {
        Ok(message @ Value::Object(_)) if response_id(&message) == expect.id.as_ref() => {
            Ok(message)
        }
        Ok(Value::Object(_)) => Err(format!(
            "{} answered with a JSON message that is not its response",
            method_name(expect)
        )),
        Ok(_) => Err(format!(
            "{} answered with JSON that is not one message (a batch?)",
            method_name(expect)
        )),
        Err(e) => Err(format!(
            "{} answer is not JSON read one way: {e}",
            method_name(expect)
        )),
    }
}

/// Streams an upstream response back untouched (status, allowed headers, body).
pub fn passthrough(response: Response<Incoming>) -> Response<GatewayBody> {
    let (parts, incoming) = response.into_parts();
    let mut out = Response::new(incoming.boxed());
    *out.status_mut() = parts.status;
    *out.headers_mut() = upstream::response_headers(&parts.headers);
    out
}

/// Sends an SSE answer on, event by event: each message is read and reviewed (see the module
/// comment), an unreadable event is dropped and recorded, and, on long-lived streams,
/// `notifications/tools/list_changed` is added whenever an approval or block changes what this
/// upstream's clients may see. The caller has checked that the body is an event stream.
pub fn stream(
    gw: &Arc<Gateway>,
    expect: Expect,
    response: Response<Incoming>,
) -> Response<GatewayBody> {
    stream_with(gw, expect, response, None)
}

/// The response to the request a stream answers, kept by [`stream_keeping_answer`] as it
/// passes (whole: the audit reads it without parsing the stream a second time).
pub type Answer = Arc<std::sync::Mutex<Option<Value>>>;

/// [`stream`], keeping the response to `expect.id` as it goes by.
pub fn stream_keeping_answer(
    gw: &Arc<Gateway>,
    expect: Expect,
    response: Response<Incoming>,
) -> (Response<GatewayBody>, Answer) {
    let answer = Answer::default();
    let out = stream_with(gw, expect, response, Some(answer.clone()));
    (out, answer)
}

fn stream_with(
    gw: &Arc<Gateway>,
    expect: Expect,
    response: Response<Incoming>,
    answer: Option<Answer>,
) -> Response<GatewayBody> {
    let (parts, incoming) = response.into_parts();
    let long_lived =
        expect.id.is_none() || expect.method.as_deref() == Some("subscriptions/listen");
    let state = StreamState {
        frames: http_body_util::BodyStream::new(incoming),
        notices: long_lived.then(|| gw.list_changed.subscribe()),
        splitter: sse::EventSplitter::new(gw.max_list),
        gw: gw.clone(),
        expect,
        answer,
        done: false,
    };
    let merged = futures_util::stream::unfold(state, |mut st| async move {
        loop {
            if st.done {
                return None;
            }
            let notice = async {
                match st.notices.as_mut() {
                    Some(rx) => rx.recv().await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                frame = st.frames.next() => match frame {
                    None => {
                        st.done = true;
                        if st.splitter.pending() > 0 {
                            st.record("the stream ended inside an event: dropped".into()).await;
                        }
                        return None;
                    }
                    Some(Err(e)) => {
                        st.done = true;
                        return Some((Err(e), st));
                    }
                    Some(Ok(frame)) => {
                        let Ok(data) = frame.into_data() else { continue };
                        let out = st.review(&data).await;
                        if !out.is_empty() {
                            return Some((Ok(hyper::body::Frame::data(Bytes::from(out))), st));
                        }
                    }
                },
                notice = notice => match notice {
                    Ok(changed) if changed == st.expect.upstream => {
                        let text = "event: message\ndata: {\"jsonrpc\":\"2.0\",\"method\":\"notifications/tools/list_changed\"}\n\n";
                        return Some((Ok(hyper::body::Frame::data(Bytes::from_static(text.as_bytes()))), st));
                    }
                    Ok(_) | Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => continue,
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => {
                        st.notices = Some(st.gw.list_changed.subscribe());
                    }
                }
            }
        }
    });
    let mut out = Response::new(BodyExt::boxed(http_body_util::StreamBody::new(merged)));
    *out.status_mut() = parts.status;
    *out.headers_mut() = upstream::response_headers(&parts.headers);
    out.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream"),
    );
    out
}

/// A stream being reviewed (see [`stream`]).
struct StreamState {
    frames: http_body_util::BodyStream<Incoming>,
    notices: Option<tokio::sync::broadcast::Receiver<String>>,
    splitter: sse::EventSplitter,
    gw: Arc<Gateway>,
    expect: Expect,
    answer: Option<Answer>,
    done: bool,
}

impl StreamState {
    /// Reviews the events a chunk completed; returns what to send on.
    async fn review(&mut self, data: &[u8]) -> String {
        let events = match self.splitter.push(data) {
            Ok(events) => events,
            Err(e) => {
                self.done = true;
                self.record(e.to_string()).await;
                return String::new();
            }
        };
        let mut out = String::new();
        let mut changes = Vec::new();
        let mut unreadable = 0;
        let mut dropped = Vec::new();
        for event in events {
            let gw = &self.gw;
            let expect = &self.expect;
            let mut why = None;
            let answer = self.answer.as_ref();
            let verdict = sse::judge(&event, |mut m| {
                match review_message(gw, expect, &mut m, &mut changes) {
                    Ok(false) => {
                        if let Some(slot) = answer
                            && expect.id.is_some()
                            && response_id(&m) == expect.id.as_ref()
                        {
                            *slot.lock().unwrap_or_else(|p| p.into_inner()) = Some(m);
                        }
                        sse::Review::Keep
                    }
                    Ok(true) => sse::Review::Replace(m),
                    Err(drop) => {
                        why = Some(drop);
                        sse::Review::Withhold
                    }
                }
            });
            match (verdict, why) {
                (sse::Verdict::Send(text), _) => out.push_str(&text),
                (sse::Verdict::Unreadable, Some(drop)) => dropped.push(drop.describe()),
                (sse::Verdict::Unreadable, None) => unreadable += 1,
            }
        }
        for change in changes {
            self.gw.events.emit(EventData::ToolChange(change)).await;
        }
        if unreadable > 0 {
            self.record(format!(
                "dropped {unreadable} stream event(s) whose data is not one JSON-RPC message read one way (not JSON, an array, or a repeated key)"
            ))
            .await;
        }
        for why in dropped {
            self.record(format!("dropped a stream event: {why}")).await;
        }
        out
    }

    async fn record(&self, detail: String) {
        record_unreadable(&self.gw, &self.expect, 200, detail).await;
    }
}
