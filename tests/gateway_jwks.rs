//! The gateway fetches the issuers' keys from a JWKS URL (a real HTTP server on a real socket):
//! at start, when a token names a key id it lacks (at most once a minute), and on a timer, so a
//! rotated-in key is accepted at once and a withdrawn key stops being accepted even for a token
//! the gateway already verified (and cached). A JWKS URL it cannot use keeps it from starting.

mod gateway_support;

use std::convert::Infallible;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use gateway_support::{Gateway, GatewaySetup, ISSUER, post, scratch};
use http_body_util::Full;
use hyper::StatusCode;
use hyper_util::rt::{TokioExecutor, TokioIo};
use mcpsoc::auth::jwt::{SigningKey, mint};
use serde_json::{Value, json};

/// Serves the file at `path` as the JWKS, counting fetches.
async fn jwks_server(path: PathBuf) -> (String, Arc<AtomicUsize>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("http://{}/jwks.json", listener.local_addr().expect("addr"));
    let fetches = Arc::new(AtomicUsize::new(0));
    let count = fetches.clone();
    tokio::spawn(async move {
        loop {
            let Ok((socket, _)) = listener.accept().await else {
                return;
            };
            let path = path.clone();
            let count = count.clone();
            tokio::spawn(async move {
                let service = hyper::service::service_fn(move |_req| {
                    count.fetch_add(1, Ordering::SeqCst);
                    let text = std::fs::read_to_string(&path).unwrap_or_default();
                    async move {
                        Ok::<_, Infallible>(
                            hyper::Response::builder()
                                .header("content-type", "application/json")
                                .body(Full::new(Bytes::from(text)))
                                .expect("response"),
                        )
                    }
                });
                let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(socket), service)
                    .await;
            });
        }
    });
    (url, fetches)
}

fn jwks_of(keys: &[&SigningKey]) -> String {
    let all: Vec<Value> = keys
        .iter()
        .flat_map(|k| {
            k.public_jwks()["keys"]
                .as_array()
                .cloned()
                .unwrap_or_default()
        })
        .collect();
    json!({ "keys": all }).to_string()
}

fn token(gateway: &Gateway, key: &SigningKey, sub: &str) -> String {
    let now = gateway_support::now();
    mint(
        &json!({"iss": ISSUER, "aud": gateway.resource, "sub": sub, "iat": now,
                "exp": now + 3600, "client_id": "c", "scope": "mcp:use"}),
        key,
    )
    .expect("mint")
}

async fn call(gateway: &Gateway, token: &str) -> StatusCode {
    let ping = json!({"jsonrpc": "2.0", "id": 1, "method": "ping"});
    post(&gateway.url, token, &[], &ping).await.status
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_come_from_the_jwks_url_at_start_on_rotation_and_on_a_timer() {
    let dir = scratch();
    let jwks_path = dir.path().join("idp-jwks.json");
    let (url, fetches) = jwks_server(jwks_path.clone()).await;
    let mut setup = GatewaySetup::new("dead", "http://127.0.0.1:9/mcp");
    setup.jwks_url = Some(url);
    let gateway = Gateway::start(&setup, dir.path()).await;
    assert_eq!(fetches.load(Ordering::SeqCst), 1, "fetched once at start");

    // The key served at start works (the upstream is down: anything but 401 means accepted).
    let first = token(&gateway, &gateway.key, "alice");
    assert_ne!(call(&gateway, &first).await, StatusCode::UNAUTHORIZED);
    assert_ne!(call(&gateway, &first).await, StatusCode::UNAUTHORIZED);
    assert_eq!(
        fetches.load(Ordering::SeqCst),
        1,
        "a known key needs no fetch"
    );

    // A rotated-in key: the first token naming it makes the gateway refetch and accept it.
    let rotated = SigningKey::generate_ed25519("k2");
    std::fs::write(&jwks_path, jwks_of(&[&gateway.key, &rotated])).expect("write");
    let second = token(&gateway, &rotated, "bob");
    assert_ne!(call(&gateway, &second).await, StatusCode::UNAUTHORIZED);
    assert_eq!(
        fetches.load(Ordering::SeqCst),
        2,
        "one refetch for the new kid"
    );

    // Made-up key ids right after cannot make it fetch again (rate limit), and are refused.
    let stranger = SigningKey::generate_ed25519("k3");
    for i in 0..5 {
        let forged = token(&gateway, &stranger, &format!("mallory{i}"));
        assert_eq!(call(&gateway, &forged).await, StatusCode::UNAUTHORIZED);
    }
    assert_eq!(
        fetches.load(Ordering::SeqCst),
        2,
        "refetches are rate limited"
    );

    // The first key is withdrawn: after the timer's refetch, its token (verified and cached
    // before) is refused.
    std::fs::write(&jwks_path, jwks_of(&[&rotated])).expect("write");
    let deadline = Instant::now() + Duration::from_secs(30);
    while fetches.load(Ordering::SeqCst) < 3 {
        assert!(Instant::now() < deadline, "no timed refetch within 30 s");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(call(&gateway, &first).await, StatusCode::UNAUTHORIZED);
    assert_ne!(call(&gateway, &second).await, StatusCode::UNAUTHORIZED);

    // The withdrawn key's refusal is an event.
    gateway
        .wait_event(
            "mcpsoc.auth.v1",
            "alice refused after the withdrawal",
            |d| {
                d["outcome"] == "rejected" && d["user"] == "alice" && d["reason"] == "bad_signature"
            },
        )
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_jwks_url_that_cannot_be_used_keeps_the_gateway_from_starting() {
    for (url, expect) in [
        (
            "http://idp.example.com/jwks.json",
            "plain http is only allowed to a loopback host",
        ),
        (
            "http://127.0.0.1:9/jwks.json",
            "cannot load the issuers' keys",
        ),
        ("ftp://idp.example.com/jwks", "unknown scheme"),
    ] {
        let dir = scratch();
        let text = format!(
            r#"[gateway]
listen = "127.0.0.1:0"
resource = "http://127.0.0.1/mcp/x"
[gateway.auth]
issuers = ["{ISSUER}"]
jwks_url = {url:?}
[[gateway.upstreams]]
name = "x"
url = "http://127.0.0.1:9/mcp"
[gateway.stream]
listen = "127.0.0.1:0"
"#
        );
        let path = dir.path().join("mcpsoc.toml");
        let config = mcpsoc::config::Config::parse(&text, &path).expect("config");
        let store = mcpsoc::store::Store::open(
            &dir.path().join("data"),
            &mcpsoc::store::StoreOptions::default(),
        )
        .expect("store");
        match mcpsoc::gateway::start(&config, store).await {
            Ok(_) => panic!("started with an unusable jwks_url {url}"),
            Err(e) => {
                let message = format!("{e:#}");
                assert!(message.contains(expect), "{url}: {message}");
            }
        }
    }
}
