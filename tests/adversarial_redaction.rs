//! Secrets never reach the gateway's events, however they are encoded: a property over secrets
//! of every kind the redactor knows, in random surrounding text, passed through one or two
//! random encodings (base64 of both alphabets and of UTF-16 text, percent-encoding, JSON string
//! escaping, `\u` escapes, hex, a JSON object serialized to a string); and a run over real
//! sockets where a client's arguments and a hostile upstream's result carry encoded secrets,
//! after which no event in the gateway's log holds any of them in any form.
//!
//! "In any form" is checked by decoding the output the way an attacker would read it: raw, each
//! base64 and hex run decoded (every alignment, UTF-16 narrowed), percent-decoded and
//! JSON-unescaped, and each of those decoded once more.

mod gateway_support;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, LazyLock};

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use gateway_support::{Gateway, GatewaySetup, post, scratch};
use hyper::StatusCode;
use mcpsoc::gateway::redact::{MARKER, redact_text, redact_value};
use proptest::prelude::*;
use proptest::strategy::ValueTree;
use proptest::test_runner::{Config, TestRunner};
use regex::Regex;
use serde_json::{Value, json};
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};

// ---------------------------------------------------------------------------------------------
// Secrets and encodings.

/// A secret as it is written in text, and the part of it that must never be readable.
#[derive(Debug, Clone)]
struct Secret {
    kind: &'static str,
    text: String,
    distinctive: String,
}

fn secret(kind: &'static str, text: String, distinctive: String) -> Secret {
    Secret {
        kind,
        text,
        distinctive,
    }
}

/// Every kind of secret the redactor knows, written the ways they usually are.
fn any_secret() -> impl Strategy<Value = Secret> {
    let password = "[A-Za-z0-9!@#$^&*_+=.-]{10,20}";
    prop_oneof![
        "(AKIA|ASIA)[0-9A-Z]{16}".prop_map(|s| secret("aws_access_key", s.clone(), s[4..].into())),
        (
            prop_oneof![
                Just("aws_secret_access_key = "),
                Just("AWS_SECRET_ACCESS_KEY="),
                Just("\"aws_secret_access_key\": \""),
                Just("aws_secret_access_key: "),
            ],
            "[A-Za-z0-9/+]{40}"
        )
            .prop_map(|(key, s)| secret("aws_secret_key", format!("{key}{s}"), s)),
        "gh[pousr]_[A-Za-z0-9]{36}".prop_map(|s| secret("github_token", s.clone(), s[4..].into())),
        ("xox[bp]-", "[0-9]{10,12}-[A-Za-z0-9]{24}").prop_map(|(p, s)| secret(
            "slack_token",
            format!("{p}{s}"),
            s
        )),
        "[sr]k_live_[A-Za-z0-9]{24}".prop_map(|s| secret("stripe_key", s.clone(), s[8..].into())),
        "AIza[0-9A-Za-z_-]{35}".prop_map(|s| secret("google_api_key", s.clone(), s[4..].into())),
        (
            "eyJ[A-Za-z0-9_-]{10,30}",
            "eyJ[A-Za-z0-9_-]{10,30}",
            "[A-Za-z0-9_-]{20,43}"
        )
            .prop_map(|(h, p, s)| secret("jwt", format!("{h}.{p}.{s}"), s)),
        (
            prop_oneof![
                Just("Bearer "),
                Just("Authorization: Bearer "),
                Just("bearer  ")
            ],
            "[A-Za-z0-9._~+/-]{24,40}"
        )
            .prop_map(|(p, s)| secret("bearer_token", format!("{p}{s}"), s)),
        (
            prop_oneof![Just("RSA "), Just("EC "), Just("OPENSSH "), Just("")],
            prop::collection::vec("[A-Za-z0-9+/]{64}", 2..5)
        )
            .prop_map(|(label, lines)| secret(
                "private_key",
                format!(
                    "-----BEGIN {label}PRIVATE KEY-----\n{}\n-----END {label}PRIVATE KEY-----",
                    lines.join("\n")
                ),
                lines[0].clone()
            )),
        (
            prop_oneof![
                Just("password="),
                Just("DB_PASSWORD: "),
                Just("\"api_key\": \""),
                Just("secret = "),
                Just("client_secret="),
                Just("access_token: "),
                Just("{\"passwd\":\""),
            ],
            password
        )
            .prop_map(|(key, s)| secret("assigned_secret", format!("{key}{s}"), s)),
        (
            prop_oneof![
                Just("https"),
                Just("postgres"),
                Just("mysql"),
                Just("redis"),
                Just("amqp")
            ],
            "[a-z]{3,8}",
            "[A-Za-z0-9._~!$&*+=-]{8,16}",
            "[a-z]{3,10}"
        )
            .prop_map(|(scheme, user, pw, host)| secret(
                "url_password",
                format!("{scheme}://{user}:{pw}@{host}.example.com:5432/db"),
                pw
            )),
    ]
}

/// One way a text is encoded on its way through a tool.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Encoding {
    Plain,
    Base64,
    Base64UrlNoPad,
    Base64Wrapped,
    Base64Utf16,
    PercentComponent,
    PercentAll,
    JsonString,
    JsonUnicodeAll,
    JsonObject,
    Hex,
}

const ENCODINGS: [Encoding; 11] = [
    Encoding::Plain,
    Encoding::Base64,
    Encoding::Base64UrlNoPad,
    Encoding::Base64Wrapped,
    Encoding::Base64Utf16,
    Encoding::PercentComponent,
    Encoding::PercentAll,
    Encoding::JsonString,
    Encoding::JsonUnicodeAll,
    Encoding::JsonObject,
    Encoding::Hex,
];

fn encode(encoding: Encoding, text: &str) -> String {
    match encoding {
        Encoding::Plain => text.to_string(),
        Encoding::Base64 => STANDARD.encode(text),
        Encoding::Base64UrlNoPad => URL_SAFE_NO_PAD.encode(text),
        Encoding::Base64Wrapped => {
            let encoded = STANDARD.encode(text);
            let lines: Vec<&str> = encoded
                .as_bytes()
                .chunks(76)
                .filter_map(|c| std::str::from_utf8(c).ok())
                .collect();
            lines.join("\r\n")
        }
        Encoding::Base64Utf16 => STANDARD.encode(
            text.encode_utf16()
                .flat_map(u16::to_le_bytes)
                .collect::<Vec<u8>>(),
        ),
        Encoding::PercentComponent => text
            .bytes()
            .map(|b| match b {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                    (b as char).to_string()
                }
                _ => format!("%{b:02X}"),
            })
            .collect(),
        Encoding::PercentAll => text.bytes().map(|b| format!("%{b:02x}")).collect(),
        Encoding::JsonString => Value::String(text.into()).to_string(),
        Encoding::JsonUnicodeAll => {
            let units: String = text.encode_utf16().map(|u| format!("\\u{u:04x}")).collect();
            format!("\"{units}\"")
        }
        Encoding::JsonObject => json!({"ok": true, "output": text, "lines": 3}).to_string(),
        Encoding::Hex => hex::encode(text),
    }
}

/// `secret` in surrounding text, through `encodings` (innermost first), each layer in more text.
fn embed(secret: &Secret, encodings: &[Encoding], around: &[(String, String)]) -> String {
    let mut text = secret.text.clone();
    for (i, encoding) in encodings.iter().enumerate() {
        let (before, after) = &around[i % around.len()];
        text = encode(*encoding, &format!("{before} {text} {after}"));
    }
    text
}

// ---------------------------------------------------------------------------------------------
// Reading the output as an attacker would.

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let pair = bytes
            .get(i + 1..i + 3)
            .and_then(|p| std::str::from_utf8(p).ok())
            .and_then(|p| u8::from_str_radix(p, 16).ok());
        match (bytes[i], pair) {
            (b'%', Some(b)) => {
                out.push(b);
                i += 3;
            }
            (b, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn json_unescape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    let mut pending_high: Option<u32> = None;
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('u') => {
                let digits: String = (0..4).filter_map(|_| chars.next()).collect();
                let Ok(unit) = u32::from_str_radix(&digits, 16) else {
                    out.push_str("\\u");
                    out.push_str(&digits);
                    continue;
                };
                if (0xD800..0xDC00).contains(&unit) {
                    pending_high = Some(unit);
                    continue;
                }
                let code = match pending_high.take() {
                    Some(high) if (0xDC00..0xE000).contains(&unit) => {
                        0x10000 + ((high - 0xD800) << 10) + (unit - 0xDC00)
                    }
                    _ => unit,
                };
                out.push(char::from_u32(code).unwrap_or('\u{fffd}'));
            }
            Some('n') => out.push('\n'),
            Some('r') => out.push('\r'),
            Some('t') => out.push('\t'),
            Some(other) => out.push(other),
            None => out.push('\\'),
        }
    }
    out
}

fn decode_base64_lenient(run: &str, skip: usize) -> String {
    let mut out = Vec::new();
    let (mut acc, mut bits) = (0u32, 0u32);
    for c in run.bytes().skip(skip) {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' | b'-' => 62,
            b'/' | b'_' => 63,
            _ => continue,
        } as u32;
        acc = (acc << 6) | v;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The output and what it decodes to, two decodings deep.
fn readings(text: &str) -> Vec<String> {
    static BASE64_RUN: LazyLock<Regex> = LazyLock::new(|| {
        Regex::new(r"[A-Za-z0-9+/_\-]{8,}(?:={0,2}(?:\r?\n)?[A-Za-z0-9+/_\-]+)*").expect("regex")
    });
    static HEX_RUN: LazyLock<Regex> =
        LazyLock::new(|| Regex::new(r"(?:[0-9A-Fa-f]{2}){8,}").expect("regex"));
    let (base64_run, hex_run) = (&*BASE64_RUN, &*HEX_RUN);
    let mut all = vec![text.to_string()];
    let mut frontier = vec![text.to_string()];
    for _ in 0..2 {
        let mut next = Vec::new();
        for reading in &frontier {
            next.push(percent_decode(reading));
            next.push(json_unescape(reading));
            for run in base64_run.find_iter(reading) {
                next.extend((0..4).map(|skip| decode_base64_lenient(run.as_str(), skip)));
            }
            for run in hex_run.find_iter(reading) {
                for skip in 0..2 {
                    if let Ok(bytes) = hex::decode(&run.as_str()[skip..run.len() - skip]) {
                        next.push(String::from_utf8_lossy(&bytes).into_owned());
                    }
                }
            }
        }
        let narrowed: Vec<String> = next
            .iter()
            .filter(|r| r.contains('\0'))
            .map(|r| r.replace('\0', ""))
            .collect();
        next.extend(narrowed);
        next.retain(|r| !all.contains(r));
        next.sort();
        next.dedup();
        all.extend(next.iter().cloned());
        frontier = next;
    }
    all
}

/// Fails when `distinctive` can be read in `output` in any form.
fn assert_unreadable(output: &str, distinctive: &str, what: &str) -> Result<(), TestCaseError> {
    for reading in readings(output) {
        prop_assert!(
            !reading.contains(distinctive),
            "{what}: {distinctive:?} readable in {reading:?}\nfrom output {output:?}"
        );
    }
    Ok(())
}

fn check(secret: &Secret, input: &str) -> Result<(), TestCaseError> {
    let (clean, kinds) = redact_text(input);
    assert_unreadable(&clean, &secret.distinctive, "redact_text")?;
    prop_assert!(!kinds.is_empty(), "no kind reported for {input:?}");
    prop_assert!(
        kinds.iter().any(|k| !k.is_empty()) && clean.contains(MARKER),
        "{clean:?}"
    );
    let mut value = json!({"text": input, "list": [1, input], "nested": {"deeper": input}});
    let kinds = redact_value(&mut value);
    prop_assert!(!kinds.is_empty());
    assert_unreadable(&value.to_string(), &secret.distinctive, "redact_value")?;
    Ok(())
}

fn surrounding() -> impl Strategy<Value = (String, String)> {
    (
        "[A-Za-z0-9 .,:;!?()\n-]{0,30}",
        "[A-Za-z0-9 .,:;!?()\n-]{0,30}",
    )
}

fn runner(cases: u32) -> TestRunner {
    TestRunner::new(Config {
        cases,
        failure_persistence: None,
        ..Config::default()
    })
}

#[test]
fn encoded_secrets_never_survive_redaction() {
    let strategy = (
        any_secret(),
        prop::collection::vec(prop::sample::select(&ENCODINGS[..]), 1..=2),
        prop::collection::vec(surrounding(), 1..=2),
    );
    let started = std::time::Instant::now();
    runner(1000)
        .run(&strategy, |(secret, encodings, around)| {
            let input = embed(&secret, &encodings, &around);
            check(&secret, &input)
        })
        .unwrap_or_else(|e| panic!("{e}"));
    eprintln!("1000 generated cases in {:?}", started.elapsed());
}

#[test]
fn every_kind_survives_no_pair_of_encodings() {
    let mut det = TestRunner::deterministic();
    let secrets: Vec<Secret> = (0..64)
        .map(|_| any_secret().new_tree(&mut det).expect("generate").current())
        .collect();
    let kinds: Vec<&str> = {
        let mut k: Vec<&str> = secrets.iter().map(|s| s.kind).collect();
        k.sort();
        k.dedup();
        k
    };
    assert_eq!(kinds.len(), 11, "every kind is generated: {kinds:?}");
    let around = vec![("see".to_string(), "ok".to_string())];
    for kind in kinds {
        let Some(secret) = secrets.iter().find(|s| s.kind == kind) else {
            continue;
        };
        for outer in ENCODINGS {
            for inner in ENCODINGS {
                let input = embed(secret, &[inner, outer], &around);
                if let Err(e) = check(secret, &input) {
                    panic!("{kind} under {inner:?} then {outer:?}: {e}");
                }
            }
        }
    }
}

#[test]
fn ordinary_text_is_left_alone() {
    let strategy = prop_oneof![
        prop::collection::vec(any::<u8>(), 16..600).prop_map(|b| STANDARD.encode(b)),
        prop::collection::vec(any::<u8>(), 16..600).prop_map(|b| URL_SAFE_NO_PAD.encode(b)),
        prop::collection::vec(any::<u8>(), 32..33).prop_map(hex::encode),
        Just(()).prop_map(|_| uuid::Uuid::new_v4().to_string()),
        "[a-z]{3,20}( [a-z]{3,20}){0,12}",
        "(/[a-z0-9._-]{1,20}){1,6}",
    ];
    runner(300)
        .run(&strategy, |text| {
            let (clean, kinds) = redact_text(&text);
            prop_assert_eq!(&clean, &text);
            prop_assert!(kinds.is_empty(), "{:?}", kinds);
            Ok(())
        })
        .unwrap_or_else(|e| panic!("{e}"));
}

// ---------------------------------------------------------------------------------------------
// Over real sockets: a client and a hostile upstream both send secrets through the gateway.

/// The secrets of the end-to-end run, each with what must never be readable in an event.
fn e2e_secrets() -> Vec<(String, String)> {
    let pem_body = "MIIEowIBAAKCAQEAu1SU1LfVLPHCozMxH2Mo4lgOEePzNm0tRgeLezV6ffAt0gunVTLw";
    let aws_secret = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";
    let bearer = "tok-9f8e7d6c5b4a39281706f5e4d3c2b1a0ZZ";
    let ghp = "ghp_Zq9Xw8Vv7Uu6Tt5Ss4Rr3Qq2Pp1Oo0NnMmLl";
    vec![
        ("AKIAQ2W3E4R5T6Y7U8I9".into(), "Q2W3E4R5T6Y7U8I9".into()),
        (
            STANDARD.encode(format!("Authorization: Bearer {bearer}")),
            bearer.into(),
        ),
        (
            "login?user=ops&password%3DHunter2IsNotASecret%21".into(),
            "Hunter2IsNotASecret".into(),
        ),
        (
            format!(r#"{{\"aws_secret_access_key\":\"{aws_secret}\"}}"#),
            aws_secret.into(),
        ),
        (
            "postgres://admin:Sup3rS3cretPw@db.internal:5432/prod".into(),
            "Sup3rS3cretPw".into(),
        ),
        (hex::encode(format!("token={ghp}")), ghp[4..].into()),
        (
            "AIzaSyA1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6Q"
                .encode_utf16()
                .map(|u| format!("\\u{u:04x}"))
                .collect(),
            "SyA1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6Q".into(),
        ),
        (
            URL_SAFE_NO_PAD.encode("slack: xoxb-1234567890-AbCdEfGhIjKlMnOpQrStUvWx"),
            "AbCdEfGhIjKlMnOpQrStUvWx".into(),
        ),
        (
            format!(
                "-----BEGIN RSA PRIVATE KEY-----\n{pem_body}\n{pem_body}\n-----END RSA PRIVATE KEY-----"
            ),
            pem_body.into(),
        ),
        (
            json!({"config": json!({"client_secret": "Cl13ntS3cr3tValue!"}).to_string()})
                .to_string(),
            "Cl13ntS3cr3tValue".into(),
        ),
    ]
}

/// A hostile upstream on raw TCP: one tool whose result is full of encoded secrets.
struct Upstream {
    url: String,
    calls: Arc<AtomicUsize>,
}

async fn read_request(socket: &mut TcpStream) -> Option<(String, Value)> {
    let request = gateway_support::read_raw_request(socket).await?;
    Some((request.line_lower(), request.json()))
}

fn reply(status: &str, extra: &str, body: &str) -> String {
    format!(
        "HTTP/1.1 {status}\r\ncontent-type: application/json\r\n{extra}content-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    )
}

impl Upstream {
    async fn start(result_text: String) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let url = format!("http://{}/mcp", listener.local_addr().expect("addr"));
        let calls = Arc::new(AtomicUsize::new(0));
        let counter = calls.clone();
        tokio::spawn(async move {
            while let Ok((mut socket, _)) = listener.accept().await {
                let (text, counter) = (result_text.clone(), counter.clone());
                tokio::spawn(async move {
                    let Some((line, request)) = read_request(&mut socket).await else {
                        return;
                    };
                    let id = request.get("id").cloned().unwrap_or(Value::Null);
                    let ok = |result: Value| {
                        json!({"jsonrpc": "2.0", "id": id, "result": result}).to_string()
                    };
                    let answer = if !line.starts_with("post ") {
                        reply("405 Method Not Allowed", "", "")
                    } else {
                        match request["method"].as_str().unwrap_or("") {
                            "initialize" => reply(
                                "200 OK",
                                "mcp-session-id: upstream-session-1\r\n",
                                &ok(json!({"protocolVersion": "2025-11-25",
                                           "capabilities": {"tools": {}},
                                           "serverInfo": {"name": "vault", "version": "1"}})),
                            ),
                            "tools/list" => reply(
                                "200 OK",
                                "",
                                &ok(json!({"tools": [{"name": "read_vault",
                                    "description": "Reads an entry of the team vault.",
                                    "inputSchema": {"type": "object"}}]})),
                            ),
                            "tools/call" => {
                                counter.fetch_add(1, Ordering::SeqCst);
                                reply(
                                    "200 OK",
                                    "",
                                    &ok(json!({"content": [{"type": "text", "text": text}],
                                               "isError": false})),
                                )
                            }
                            _ if request.get("id").is_none() => {
                                "HTTP/1.1 202 Accepted\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
                                    .to_string()
                            }
                            _ => reply("200 OK", "", &ok(json!({}))),
                        }
                    };
                    let _ = socket.write_all(answer.as_bytes()).await;
                    let _ = socket.shutdown().await;
                });
            }
        });
        Self { url, calls }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_event_of_the_gateway_holds_a_secret_in_any_form() {
    let secrets = e2e_secrets();
    let (result_secrets, argument_secrets) = secrets.split_at(5);
    let result_text: String = result_secrets
        .iter()
        .chain(argument_secrets.iter())
        .map(|(text, _)| format!("entry: {text}\n"))
        .collect();
    let upstream = Upstream::start(result_text).await;
    let dir = scratch();
    let mut setup = GatewaySetup::new("vault", &upstream.url);
    setup.trust_on_first_use = true;
    let gw = Gateway::start(&setup, dir.path()).await;
    let token = gw.token("alice", json!({}));

    let init = json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-11-25", "capabilities": {},
        "clientInfo": {"name": "redaction-e2e", "version": "1"}}});
    let reply = post(&gw.url, &token, &[], &init).await;
    assert_eq!(reply.status, StatusCode::OK, "initialize: {}", reply.body);
    let session = reply
        .header("mcp-session-id")
        .expect("the gateway issues a session id")
        .to_string();
    let headers = [
        ("mcp-session-id", session.as_str()),
        ("mcp-protocol-version", "2025-11-25"),
    ];
    let initialized = json!({"jsonrpc": "2.0", "method": "notifications/initialized"});
    let reply = post(&gw.url, &token, &headers, &initialized).await;
    assert!(reply.status.is_success(), "initialized: {}", reply.body);
    let list = json!({"jsonrpc": "2.0", "id": 2, "method": "tools/list"});
    let reply = post(&gw.url, &token, &headers, &list).await;
    assert_eq!(reply.status, StatusCode::OK, "tools/list: {}", reply.body);
    assert_eq!(
        reply.rpc()["result"]["tools"][0]["name"],
        "read_vault",
        "{}",
        reply.body
    );

    let mut arguments = serde_json::Map::new();
    for (i, (text, _)) in argument_secrets.iter().enumerate() {
        arguments.insert(format!("field{i}"), json!(text));
    }
    arguments.insert(
        "all".into(),
        json!(secrets.iter().map(|(t, _)| t.as_str()).collect::<Vec<_>>()),
    );
    arguments.insert(
        "as_json".into(),
        json!(
            json!(
                result_secrets
                    .iter()
                    .map(|(t, _)| t.as_str())
                    .collect::<Vec<_>>()
            )
            .to_string()
        ),
    );
    let call = json!({"jsonrpc": "2.0", "id": 3, "method": "tools/call", "params": {
        "name": "read_vault", "arguments": Value::Object(arguments)}});
    let reply = post(&gw.url, &token, &headers, &call).await;
    assert_eq!(reply.status, StatusCode::OK, "tools/call: {}", reply.body);
    // The client gets its answer whole: redaction is for events only.
    let answer = reply.rpc();
    let text = answer["result"]["content"][0]["text"]
        .as_str()
        .unwrap_or("");
    assert!(text.contains("Sup3rS3cretPw"), "{}", reply.body);
    assert_eq!(upstream.calls.load(Ordering::SeqCst), 1);

    let finished = gw
        .wait_event("mcpsoc.tool_call.v1", "finished", |d| {
            d["phase"] == "finished" && d["tool"] == "read_vault"
        })
        .await;
    let events: Vec<String> = gw
        .store
        .all_events()
        .map(|e| e.expect("read stored event").json)
        .collect();
    let types: Vec<String> = events
        .iter()
        .filter_map(|e| serde_json::from_str::<Value>(e).ok())
        .filter_map(|e| e["type"].as_str().map(str::to_string))
        .collect();
    for kind in ["mcpsoc.tool_call.v1", "mcpsoc.session.v1"] {
        assert!(
            types.iter().any(|t| t == kind),
            "no {kind} event; types: {types:?}"
        );
    }
    for event in &events {
        for (_, distinctive) in &secrets {
            if let Err(e) = assert_unreadable(event, distinctive, "stored event") {
                panic!("{e}");
            }
        }
    }
    let data = &finished["data"];
    assert!(
        data["result_summary"]
            .as_str()
            .is_some_and(|s| s.matches(MARKER).count() >= secrets.len()),
        "every secret of the result is redacted, not dropped: {data:#}"
    );
    assert!(data["arguments"].to_string().contains(MARKER), "{data:#}");

    eprintln!(
        "{} events checked ({} distinct types) for {} secrets",
        events.len(),
        {
            let mut t = types.clone();
            t.sort();
            t.dedup();
            t.len()
        },
        secrets.len()
    );
}
