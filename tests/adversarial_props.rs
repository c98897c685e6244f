//! Generated attacks on the two places the gateway reads what others wrote (issue 12): the
//! listing parser (every shape a hostile upstream can answer `tools/list` with) and the
//! request path (headers and bodies from a hostile client). Each property runs against the
//! real gateway over real sockets, with a hostile upstream that records what reaches it.
//!
//! - Listings: whatever the media-type spelling, encoding, JSON or SSE framing, chunking,
//!   distractor events (responses to other ids, batches, repeated keys, junk), the client
//!   never receives the poisoned definition, and when the answer to the client's own request
//!   offered it, no call reaches the upstream.
//! - Requests: whatever the duplicated, re-cased or undeclared metadata headers and however
//!   ambiguous the body, every request is answered, the upstream never receives a call to a
//!   tool that is not approved, never a duplicated metadata header and never an undeclared
//!   `Mcp-Param-*`, and the gateway keeps serving.

mod adversarial_support;
mod gateway_support;

use adversarial_support::*;
use proptest::prelude::*;
use proptest::strategy::ValueTree;
use proptest::test_runner::{Config, TestRunner};
use serde_json::{Value, json};

fn generate<S: Strategy>(strategy: S, n: usize) -> Vec<S::Value> {
    let mut runner = TestRunner::new(Config::default());
    (0..n)
        .map(|_| {
            strategy
                .new_tree(&mut runner)
                .expect("generate a case")
                .current()
        })
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Listings.

#[derive(Debug, Clone)]
enum Distractor {
    /// A notification.
    Notification,
    /// A poisoned listing answering another id.
    ForeignResponse,
    /// A poisoned listing inside an array.
    Batch,
    /// The answer again with a repeated `result` key (benign first, poisoned last).
    RepeatedKey,
    /// Not JSON at all.
    Junk,
}

#[derive(Debug, Clone)]
struct ListingCase {
    sse: bool,
    /// The `Content-Type` spelling.
    content_type: String,
    /// A `Content-Encoding`, if any.
    encoding: Option<&'static str>,
    /// What the answer to the client's own request offers.
    poisoned_answer: bool,
    /// Whether the answer's own message is itself a batch (JSON) .
    answer_as_batch: bool,
    distractors: Vec<Distractor>,
    /// Byte counts to write the response in.
    chunks: Vec<usize>,
}

fn media_type(sse: bool) -> impl Strategy<Value = String> {
    let base = if sse {
        "text/event-stream"
    } else {
        "application/json"
    };
    (any::<u64>(), 0usize..4).prop_map(move |(bits, params)| {
        let cased: String = base
            .chars()
            .enumerate()
            .map(|(i, c)| {
                if bits >> (i % 64) & 1 == 1 {
                    c.to_ascii_uppercase()
                } else {
                    c
                }
            })
            .collect();
        match params {
            0 => cased,
            1 => format!("{cased}; charset=utf-8"),
            2 => format!("{cased} ; Charset=\"UTF-8\""),
            _ => format!("  {cased}"),
        }
    })
}

fn listing_case() -> impl Strategy<Value = ListingCase> {
    any::<bool>().prop_flat_map(|sse| {
        (
            media_type(sse),
            prop_oneof![
                6 => Just(None),
                1 => Just(Some("identity")),
                1 => Just(Some("gzip")),
                1 => Just(Some("br")),
            ],
            any::<bool>(),
            prop::bool::weighted(0.2),
            prop::collection::vec(
                prop_oneof![
                    Just(Distractor::Notification),
                    Just(Distractor::ForeignResponse),
                    Just(Distractor::Batch),
                    Just(Distractor::RepeatedKey),
                    Just(Distractor::Junk),
                ],
                0..4,
            ),
            prop::collection::vec(1usize..64, 0..6),
        )
            .prop_map(
                move |(
                    content_type,
                    encoding,
                    poisoned_answer,
                    answer_as_batch,
                    distractors,
                    chunks,
                )| ListingCase {
                    sse,
                    content_type,
                    encoding,
                    poisoned_answer,
                    answer_as_batch,
                    distractors,
                    chunks,
                },
            )
    })
}

fn listing_message(id: &Value, description: &str) -> String {
    json!({"jsonrpc": "2.0", "id": id, "result": {"tools": [read_tool(description)]}}).to_string()
}

fn distractor_text(d: &Distractor, id: &Value) -> String {
    match d {
        Distractor::Notification => {
            r#"{"jsonrpc":"2.0","method":"notifications/message","params":{"level":"info","data":"x"}}"#.into()
        }
        Distractor::ForeignResponse => listing_message(&json!("someone-else"), POISONED),
        Distractor::Batch => format!("[{}]", listing_message(id, POISONED)),
        Distractor::RepeatedKey => format!(
            "{{\"jsonrpc\":\"2.0\",\"id\":{id},\"result\":{{\"tools\":[{}]}},\"result\":{{\"tools\":[{}]}}}}",
            read_tool(BENIGN),
            read_tool(POISONED)
        ),
        Distractor::Junk => format!("{{\"jsonrpc\":\"2.0\",\"id\":{id},\"result\":{POISONED:?}"),
    }
}

/// The whole raw HTTP response for a case (answering request `id`).
fn listing_response(case: &ListingCase, id: &Value) -> String {
    let description = if case.poisoned_answer {
        POISONED
    } else {
        BENIGN
    };
    let answer = listing_message(id, description);
    let answer = if case.answer_as_batch {
        format!("[{answer}]")
    } else {
        answer
    };
    let body = if case.sse {
        let mut out = String::new();
        for d in &case.distractors {
            out.push_str(&format!(
                "event: message\ndata: {}\n\n",
                distractor_text(d, id)
            ));
        }
        out.push_str(&format!("event: message\ndata: {answer}\n\n"));
        out
    } else {
        // JSON has one message: a distractor, when there is one, replaces the answer.
        match case.distractors.first() {
            Some(d) => distractor_text(d, id),
            None => answer,
        }
    };
    let encoding = case
        .encoding
        .map(|e| format!("content-encoding: {e}\r\n"))
        .unwrap_or_default();
    format!(
        "HTTP/1.1 200 OK\r\ncontent-type: {}\r\n{encoding}content-length: {}\r\nconnection: close\r\n\r\n{body}",
        case.content_type,
        body.len()
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_listing_shape_lets_a_poisoned_definition_through() {
    let b = bench(true).await;
    let gw = &b.gw;
    let token = gw.token("alice", json!({}));
    let first = session(gw, &token).await;
    assert_eq!(listed(&list(gw, &token, &first).await), ["read"]);
    let cases = generate(listing_case(), 48);
    for (n, case) in cases.iter().enumerate() {
        let sid = session(gw, &token).await;
        let up = format!("up-{}", n + 2);
        let script_case = case.clone();
        b.upstream.answer_chunked(
            move |seen| {
                (seen.method() == "tools/list" && seen.session() == Some(up.as_str()))
                    .then(|| listing_response(&script_case, &seen.json["id"]))
            },
            case.chunks.clone(),
        );
        let calls_before = b.upstream.calls().len();
        let reply = list(gw, &token, &sid).await;
        assert!(
            !reply.body.contains("evil.example"),
            "case {n} {case:?}: the client received the poisoned definition: {}",
            reply.body
        );
        let answer = call(gw, &token, &sid, "read").await;
        let reached = b.upstream.calls().len() > calls_before;
        // In JSON a distractor takes the answer's place: then nothing offered it.
        if case.poisoned_answer && (case.sse || case.distractors.is_empty()) {
            assert!(
                !reached && refused(&answer),
                "case {n} {case:?}: a call reached the upstream that offered this caller a poisoned definition: {}",
                answer.body
            );
        }
    }
    // Still serving, and honest traffic still works.
    let sid = session(gw, &token).await;
    b.upstream.answer(|_| None);
    assert_eq!(listed(&list(gw, &token, &sid).await), ["read"]);
}

// ---------------------------------------------------------------------------------------------
// Requests.

#[derive(Debug, Clone)]
struct RequestCase {
    tool: &'static str,
    stateless: bool,
    /// Extra header lines (name, value), in order; names may repeat or change case.
    headers: Vec<(String, String)>,
    /// How the body is written.
    body: BodyShape,
}

#[derive(Debug, Clone)]
enum BodyShape {
    Plain,
    /// `"name"` twice: the approved one and `wipe`, in either order.
    RepeatedName(bool),
    /// A batch of one.
    Batch,
    /// The JSON cut short.
    Truncated,
}

fn header_line() -> impl Strategy<Value = (String, String)> {
    let name = prop_oneof![
        Just("mcp-name"),
        Just("Mcp-Name"),
        Just("MCP-NAME"),
        Just("mcp-method"),
        Just("MCP-Protocol-Version"),
        Just("mcp-param-tenant"),
        Just("Mcp-Param-Path"),
        Just("mcp-session-id"),
        Just("authorization"),
    ];
    let value = prop_oneof![
        Just("read".to_string()),
        Just("wipe".to_string()),
        Just("tools/call".to_string()),
        Just("tools/list".to_string()),
        Just("2026-07-28".to_string()),
        Just("2025-11-25".to_string()),
        Just("=?base64?d2lwZQ==?=".to_string()),
        "[ -~]{0,12}",
    ];
    (name, value).prop_map(|(n, v)| (n.to_string(), v))
}

fn request_case() -> impl Strategy<Value = RequestCase> {
    (
        prop_oneof![Just("read"), Just("wipe"), Just("r\u{0435}ad")],
        any::<bool>(),
        prop::collection::vec(header_line(), 0..4),
        prop_oneof![
            4 => Just(BodyShape::Plain),
            1 => any::<bool>().prop_map(BodyShape::RepeatedName),
            1 => Just(BodyShape::Batch),
            1 => Just(BodyShape::Truncated),
        ],
    )
        .prop_map(|(tool, stateless, headers, body)| RequestCase {
            tool,
            stateless,
            headers,
            body,
        })
}

fn request_body(case: &RequestCase) -> String {
    let meta = if case.stateless {
        format!(
            ",\"_meta\":{}",
            json!({"io.modelcontextprotocol/protocolVersion": "2026-07-28",
                   "io.modelcontextprotocol/clientInfo": {"name": "prop", "version": "1"},
                   "io.modelcontextprotocol/clientCapabilities": {}})
        )
    } else {
        String::new()
    };
    let name = match case.body {
        BodyShape::RepeatedName(true) => format!("\"name\":\"{}\",\"name\":\"wipe\"", case.tool),
        BodyShape::RepeatedName(false) => format!("\"name\":\"wipe\",\"name\":\"{}\"", case.tool),
        _ => format!("\"name\":{}", json!(case.tool)),
    };
    let message = format!(
        "{{\"jsonrpc\":\"2.0\",\"id\":11,\"method\":\"tools/call\",\"params\":{{{name},\"arguments\":{{\"path\":\"/etc/hosts\"}}{meta}}}}}"
    );
    match case.body {
        BodyShape::Batch => format!("[{message}]"),
        BodyShape::Truncated => message[..message.len() / 2].to_string(),
        _ => message,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_request_reaches_an_unapproved_tool_or_carries_unchecked_headers() {
    let b = bench(false).await;
    let gw = &b.gw;
    let token = gw.token("alice", json!({}));
    let sid = session(gw, &token).await;
    // `read` approved by an approver; `wipe` and a look-alike of `read` listed but pending.
    b.upstream.answer(|seen| {
        (seen.method() == "tools/list").then(|| {
            let mut twin = read_tool(POISONED);
            twin["name"] = json!("r\u{0435}ad");
            let wipe = json!({"name": "wipe", "description": "Delete everything.",
                              "inputSchema": {"type": "object"}});
            http_response(
                "application/json",
                "",
                &result(
                    &seen.json["id"],
                    json!({"tools": [read_tool(BENIGN), wipe, twin]}),
                ),
            )
        })
    });
    assert!(listed(&list(gw, &token, &sid).await).is_empty());
    let pending = gw
        .wait_event("mcpsoc.tool_change.v1", "read pending", |d| {
            d["tool"] == "read" && d["status"] == "pending"
        })
        .await;
    let approver = approver(&b).await;
    let reply = gateway_support::command(
        &approver,
        mcpsoc::protocol::Command::ApproveToolChange {
            upstream: "files".into(),
            tool: "read".into(),
            proposed_hash: pending["data"]["proposed_hash"]
                .as_str()
                .expect("hash")
                .into(),
            reason: None,
        },
    )
    .await;
    assert!(reply.ok, "{reply:?}");
    assert_eq!(listed(&list(gw, &token, &sid).await), ["read"]);
    assert_eq!(
        listed(&stateless(gw, &token, "prop", "tools/list", None).await),
        ["read"]
    );
    let cases = generate(request_case(), 160);
    for (n, case) in cases.iter().enumerate() {
        let mut head = format!("authorization: Bearer {token}\r\n");
        if case.stateless {
            head.push_str(&format!(
                "mcp-protocol-version: 2026-07-28\r\nmcp-method: tools/call\r\nmcp-name: {}\r\n",
                case.tool
            ));
        } else {
            head.push_str(&format!("mcp-session-id: {sid}\r\n"));
        }
        for (name, value) in &case.headers {
            head.push_str(&format!("{name}: {value}\r\n"));
        }
        let answer = raw_exchange(gw, raw_post(gw, &head, &request_body(case)).as_bytes()).await;
        assert!(
            answer.starts_with("HTTP/1.1 "),
            "case {n} {case:?}: no HTTP answer: {answer:?}"
        );
    }
    for seen in b.upstream.calls() {
        assert_eq!(
            seen.json["params"]["name"], "read",
            "a call to an unapproved tool reached the upstream: {}",
            seen.body
        );
        for name in ["mcp-name", "mcp-method", "mcp-protocol-version"] {
            assert!(
                seen.header(name).len() <= 1,
                "{name} crossed twice: {:?}",
                seen.headers
            );
        }
        assert!(
            seen.headers
                .iter()
                .all(|(n, _)| !n.starts_with("mcp-param-")),
            "an undeclared Mcp-Param header crossed: {:?}",
            seen.headers
        );
        assert!(
            !seen.body.contains("\"name\":\"wipe\""),
            "an ambiguous body naming the pending tool crossed: {}",
            seen.body
        );
    }
    assert!(
        !b.upstream.calls().is_empty(),
        "no generated request was honest enough to pass: the property tested nothing"
    );
    assert_eq!(
        listed(&list(gw, &token, &sid).await),
        ["read"],
        "still serving"
    );
}
