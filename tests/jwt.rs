//! Access-token validation with real signed tokens: RS256 and ES256 with keys committed under
//! tests/fixtures/jwt (made with openssl), EdDSA with keys generated at run time. Every
//! rejection reason is produced by a token with exactly that flaw.

use std::sync::OnceLock;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use mcpsoc::auth::jwks::{JwksError, JwksSource, KeySet, RefreshGate, SigAlg};
use mcpsoc::auth::jwt::{
    ClaimsHint, JwtPolicy, MAX_TOKEN_BYTES, MintError, Rejection, SigningKey, Validated, mint,
    validate,
};
use mcpsoc::protocol::events::{AuthFailure, AuthOutcome};
use proptest::prelude::*;
use serde_json::{Value, json};

const ISS: &str = "https://idp.example.com";
const AUD: &str = "https://gw.example.com/mcp";
const NOW: i64 = 1_750_000_000;

fn fixture(name: &str) -> Vec<u8> {
    let path = format!("{}/tests/fixtures/jwt/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read(&path).unwrap_or_else(|e| panic!("fixture {path}: {e}"))
}

struct Keys {
    rsa: SigningKey,
    rsa_other: SigningKey,
    ec: SigningKey,
    ec_other: SigningKey,
    ed_pem: SigningKey,
    ed: SigningKey,
    ed_other: SigningKey,
    /// jwks.json (rsa-1, ec-1, ed-1, and an encryption key to ignore) plus the run-time `ed-gen`.
    set: KeySet,
}

fn keys() -> &'static Keys {
    static KEYS: OnceLock<Keys> = OnceLock::new();
    KEYS.get_or_init(|| {
        let rsa = SigningKey::from_rsa_pem("rsa-1", &fixture("rsa-private.pem")).expect("rsa");
        let rsa_other =
            SigningKey::from_rsa_pem("rsa-1", &fixture("rsa-other-private.pem")).expect("rsa2");
        let ec = SigningKey::from_ec_pem("ec-1", &fixture("ec-private.pem")).expect("ec");
        let ec_other =
            SigningKey::from_ec_pem("ec-1", &fixture("ec-other-private.pem")).expect("ec2");
        let ed_pem = SigningKey::from_ed_pem("ed-1", &fixture("ed25519-private.pem")).expect("ed");
        let ed = SigningKey::generate_ed25519("ed-gen");
        let ed_other = SigningKey::generate_ed25519("ed-gen");
        let text = String::from_utf8(fixture("jwks.json")).expect("utf-8");
        let mut set = KeySet::from_jwks_json(&text).expect("jwks.json");
        set.extend(KeySet::from_jwks_value(&ed.public_jwks()).expect("generated jwks"));
        Keys {
            rsa,
            rsa_other,
            ec,
            ec_other,
            ed_pem,
            ed,
            ed_other,
            set,
        }
    })
}

fn policy() -> JwtPolicy {
    JwtPolicy::new(vec![ISS.to_string()], AUD)
}

fn claims() -> Value {
    json!({
        "iss": ISS,
        "aud": AUD,
        "sub": "alice",
        "client_id": "client-1",
        "scope": "mcp:tools mcp:read",
        "iat": NOW - 60,
        "nbf": NOW - 60,
        "exp": NOW + 600,
        "jti": "tok-1",
    })
}

fn with(changes: Value) -> Value {
    let mut c = claims();
    if let (Value::Object(base), Value::Object(changes)) = (&mut c, changes) {
        for (k, v) in changes {
            match v {
                Value::Null => {
                    base.remove(&k);
                }
                v => {
                    base.insert(k, v);
                }
            }
        }
    }
    c
}

fn tok(claims: &Value, key: &SigningKey) -> String {
    mint(claims, key).expect("mint")
}

fn b64(v: &Value) -> String {
    URL_SAFE_NO_PAD.encode(v.to_string())
}

/// A token from raw parts (for headers `mint` would not write).
fn raw(header: &Value, claims: &Value, signature: &str) -> String {
    format!("{}.{}.{signature}", b64(header), b64(claims))
}

fn check(token: &str) -> Result<Validated, Rejection> {
    validate(token, &keys().set, &policy(), NOW)
}

#[track_caller]
fn rejected(token: &str, set: &KeySet, policy: &JwtPolicy, reason: AuthFailure) -> Rejection {
    match validate(token, set, policy, NOW) {
        Ok(v) => panic!("expected {reason:?}, accepted: {v:?}"),
        Err(r) => {
            assert_eq!(r.reason, reason, "detail: {}", r.detail);
            assert_detail_clean(&r, token);
            r
        }
    }
}

#[track_caller]
fn rejects(token: &str, reason: AuthFailure) -> Rejection {
    rejected(token, &keys().set, &policy(), reason)
}

/// The detail never quotes the token or any sizable part of it.
#[track_caller]
fn assert_detail_clean(r: &Rejection, token: &str) {
    if !token.is_empty() {
        assert!(!r.detail.contains(token), "detail holds the token");
    }
    for part in token.split('.') {
        if part.len() >= 12 {
            assert!(!r.detail.contains(part), "detail holds a token part");
        }
    }
    assert!(r.detail.len() < 1024, "detail is short");
}

// ---------------------------------------------------------------------------------------------
// Keys and JWKS

#[test]
fn exported_public_keys_match_the_openssl_jwks() {
    let text = String::from_utf8(fixture("jwks.json")).expect("utf-8");
    let doc: Value = serde_json::from_str(&text).expect("json");
    let by_kid = |kid: &str| {
        doc["keys"]
            .as_array()
            .and_then(|keys| keys.iter().find(|k| k["kid"] == kid))
            .cloned()
            .expect("kid in fixture")
    };
    let k = keys();
    assert_eq!(k.rsa.public_jwk(), Some(by_kid("rsa-1")));
    assert_eq!(k.ec.public_jwk(), Some(by_kid("ec-1")));
    assert_eq!(k.ed_pem.public_jwk(), Some(by_kid("ed-1")));
    // 3 signature keys from the file (the "use": "enc" one is ignored) + the generated one.
    assert_eq!(k.set.len(), 4);
    assert!(!k.set.contains_kid("rsa-enc"));
}

#[test]
fn generated_jwks_shape() {
    let key = SigningKey::generate_ed25519("demo-key");
    let jwks = key.public_jwks();
    let jwk = &jwks["keys"][0];
    assert_eq!(jwk["kty"], "OKP");
    assert_eq!(jwk["crv"], "Ed25519");
    assert_eq!(jwk["kid"], "demo-key");
    assert_eq!(jwk["use"], "sig");
    assert_eq!(jwk["alg"], "EdDSA");
    assert!(jwk.get("d").is_none(), "no private part");
    assert_eq!(
        URL_SAFE_NO_PAD
            .decode(jwk["x"].as_str().expect("x"))
            .map(|x| x.len())
            .ok(),
        Some(32)
    );
    // Two generated keys differ.
    let other = SigningKey::generate_ed25519("demo-key").public_jwks();
    assert_ne!(jwks, other);
    // An HS256 secret is never published.
    assert_eq!(
        SigningKey::hs256(b"0123456789abcdef0123456789abcdef").public_jwks(),
        json!({"keys": []})
    );
}

#[test]
fn jwks_from_file_and_source() {
    let path = format!(
        "{}/tests/fixtures/jwt/jwks.json",
        env!("CARGO_MANIFEST_DIR")
    );
    let source = JwksSource::parse(&path).expect("path");
    assert!(!source.is_remote());
    let set = source.load_file().expect("file source").expect("loads");
    assert_eq!(set.len(), 3);
    assert!(set.contains_kid("rsa-1") && set.contains_kid("ec-1") && set.contains_kid("ed-1"));
    let url = JwksSource::parse("https://idp.example.com/.well-known/jwks.json").expect("url");
    assert!(url.is_remote() && url.load_file().is_none());
    assert!(matches!(
        KeySet::from_file(std::path::Path::new("/nonexistent/jwks.json")),
        Err(JwksError::Io { .. })
    ));
}

#[test]
fn rsa_jwks_key_too_small_is_refused() {
    // 512-bit modulus.
    let n = URL_SAFE_NO_PAD.encode([0xC3u8; 64]);
    let doc = json!({"keys": [{"kty": "RSA", "kid": "small", "n": n, "e": "AQAB"}]});
    let err = KeySet::from_jwks_value(&doc).expect_err("too small");
    assert!(err.to_string().contains("small"), "{err}");
}

// ---------------------------------------------------------------------------------------------
// Accepted

#[test]
fn accepts_rs256_es256_eddsa() {
    let k = keys();
    for key in [&k.rsa, &k.ec, &k.ed_pem, &k.ed] {
        let token = tok(&claims(), key);
        let v = check(&token).unwrap_or_else(|r| panic!("{:?}: {r}", key.alg()));
        assert_eq!(
            v,
            Validated {
                subject: "alice".into(),
                issuer: ISS.into(),
                audience: vec![AUD.into()],
                client_id: Some("client-1".into()),
                scopes: vec!["mcp:tools".into(), "mcp:read".into()],
                issued_at: Some(NOW - 60),
                expires_at: NOW + 600,
                token_id: Some("tok-1".into()),
            }
        );
    }
}

#[test]
fn minted_header() {
    let token = tok(&claims(), &keys().ec);
    let header = token.split('.').next().expect("header");
    let header: Value =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(header).expect("b64")).expect("json");
    assert_eq!(
        header,
        json!({"alg": "ES256", "typ": "at+jwt", "kid": "ec-1"})
    );
    assert!(matches!(
        mint(&json!("not an object"), &keys().ec),
        Err(MintError::ClaimsNotObject)
    ));
    assert!(matches!(
        SigningKey::from_rsa_pem("x", b"-----BEGIN NOTHING-----"),
        Err(MintError::BadKey { .. })
    ));
    assert!(SigningKey::from_ec_pem("x", &fixture("rsa-private.pem")).is_err());
}

#[test]
fn accepts_audience_array_azp_scp_and_no_optional_claims() {
    let c = json!({
        "iss": ISS,
        "aud": ["https://other.example.com", AUD],
        "sub": "bob",
        "azp": "client-2",
        "scp": ["mcp:tools", "admin"],
        "exp": NOW + 5,
    });
    let v = check(&tok(&c, &keys().ed)).expect("accepted");
    assert_eq!(v.audience, vec!["https://other.example.com", AUD]);
    assert_eq!(v.client_id.as_deref(), Some("client-2"));
    assert_eq!(v.scopes, vec!["mcp:tools", "admin"]);
    assert_eq!(v.issued_at, None);
    assert_eq!(v.token_id, None);
}

#[test]
fn accepts_token_without_kid_by_trying_keys_of_its_type() {
    let k = keys();
    for key in [&k.ed, &k.rsa, &k.ec] {
        let token = tok(&claims(), &key.clone().without_kid());
        assert!(check(&token).is_ok(), "{:?} without kid", key.alg());
    }
    // Signed by no trusted key, no kid: still refused.
    let token = tok(&claims(), &k.ed_other.clone().without_kid());
    rejects(&token, AuthFailure::BadSignature);
}

#[test]
fn one_of_several_trusted_issuers() {
    let mut p = policy();
    p.issuers = vec!["https://a.example.com".into(), ISS.into()];
    let token = tok(&claims(), &keys().ed);
    assert!(validate(&token, &keys().set, &p, NOW).is_ok());
}

#[test]
fn required_scopes_present() {
    let mut p = policy();
    p.required_scopes = vec!["mcp:read".into(), "mcp:tools".into()];
    assert!(validate(&tok(&claims(), &keys().ed), &keys().set, &p, NOW).is_ok());
}

// ---------------------------------------------------------------------------------------------
// Audience

#[test]
fn wrong_audience() {
    let k = keys();
    for aud in [
        "https://gw.example.com/mcp/extra",
        "https://gw.example.com/mcpx",
        "https://gw.example.com/mcp/",
        "https://gw.example.com/mc",
        "https://gw.example.com",
        "HTTPS://GW.EXAMPLE.COM/mcp",
        " https://gw.example.com/mcp",
        "https://gw.example.com/mcp?x=1",
        "https://idp.example.com",
        "",
    ] {
        let token = tok(&with(json!({"aud": aud})), &k.ed);
        let r = rejects(&token, AuthFailure::WrongAudience);
        assert_eq!(r.claims_hint.and_then(|h| h.audience).as_deref(), Some(aud));
    }
    let arrays = [
        json!([
            "https://other.example.com",
            "https://gw.example.com/mcp/extra"
        ]),
        json!([]),
        json!([42, {"aud": AUD}]),
    ];
    for aud in arrays {
        rejects(
            &tok(&with(json!({"aud": aud})), &k.rsa),
            AuthFailure::WrongAudience,
        );
    }
    rejects(
        &tok(&with(json!({"aud": null})), &k.ec),
        AuthFailure::WrongAudience,
    );
    rejects(
        &tok(&with(json!({"aud": 7})), &k.ec),
        AuthFailure::WrongAudience,
    );
    // A policy without an audience accepts nothing.
    let mut p = policy();
    p.audience = String::new();
    rejected(
        &tok(&claims(), &k.ed),
        &k.set,
        &p,
        AuthFailure::WrongAudience,
    );
}

// ---------------------------------------------------------------------------------------------
// Issuer

#[test]
fn wrong_issuer() {
    let k = keys();
    for iss in [
        "https://evil.example.com",
        "https://idp.example.com/",
        "https://idp.example.com.evil.com",
        "",
    ] {
        rejects(
            &tok(&with(json!({"iss": iss})), &k.ed),
            AuthFailure::WrongIssuer,
        );
    }
    rejects(
        &tok(&with(json!({"iss": null})), &k.ed),
        AuthFailure::WrongIssuer,
    );
    rejects(
        &tok(&with(json!({"iss": [ISS]})), &k.ed),
        AuthFailure::WrongIssuer,
    );
    let mut p = policy();
    p.issuers.clear();
    rejected(&tok(&claims(), &k.ed), &k.set, &p, AuthFailure::WrongIssuer);
}

#[test]
fn key_bound_to_its_issuer() {
    let k = keys();
    let other_iss = "https://other-idp.example.com";
    let set = KeySet::from_jwks_value(&k.ed.public_jwks())
        .expect("jwks")
        .bind_issuer(ISS);
    let mut p = policy();
    p.issuers.push(other_iss.into());
    // Trusted issuer, but not the one the signing key belongs to.
    let token = tok(&with(json!({"iss": other_iss})), &k.ed);
    let r = rejected(&token, &set, &p, AuthFailure::WrongIssuer);
    assert!(r.detail.contains("key of issuer"), "{}", r.detail);
    assert!(validate(&tok(&claims(), &k.ed), &set, &p, NOW).is_ok());
}

// ---------------------------------------------------------------------------------------------
// Time

#[test]
fn expired() {
    let k = keys();
    rejects(
        &tok(&with(json!({"exp": NOW - 31})), &k.ed),
        AuthFailure::Expired,
    );
    rejects(
        &tok(&with(json!({"exp": NOW - 30})), &k.ed),
        AuthFailure::Expired,
    );
    rejects(
        &tok(&with(json!({"exp": NOW - 86_400})), &k.rsa),
        AuthFailure::Expired,
    );
    // No leeway: expiring this very second is expired.
    let mut p = policy();
    p.leeway = Duration::ZERO;
    rejected(
        &tok(&with(json!({"exp": NOW})), &k.ed),
        &k.set,
        &p,
        AuthFailure::Expired,
    );
    assert!(validate(&tok(&with(json!({"exp": NOW + 1})), &k.ed), &k.set, &p, NOW).is_ok());
}

#[test]
fn expired_within_leeway_is_accepted() {
    let k = keys();
    let v = check(&tok(&with(json!({"exp": NOW - 10})), &k.ed)).expect("within 30 s leeway");
    assert_eq!(v.expires_at, NOW - 10);
    assert!(check(&tok(&with(json!({"exp": NOW - 29})), &k.ed)).is_ok());
    // A larger configured leeway.
    let mut p = policy();
    p.leeway = Duration::from_secs(300);
    assert!(
        validate(
            &tok(&with(json!({"exp": NOW - 200})), &k.ed),
            &k.set,
            &p,
            NOW
        )
        .is_ok()
    );
}

#[test]
fn not_yet_valid() {
    let k = keys();
    rejects(
        &tok(&with(json!({"nbf": NOW + 31})), &k.ed),
        AuthFailure::NotYetValid,
    );
    rejects(
        &tok(&with(json!({"nbf": NOW + 3600})), &k.ec),
        AuthFailure::NotYetValid,
    );
    assert!(check(&tok(&with(json!({"nbf": NOW + 30})), &k.ed)).is_ok());
    assert!(check(&tok(&with(json!({"nbf": null})), &k.ed)).is_ok());
}

#[test]
fn bad_time_claims_are_malformed() {
    let k = keys();
    rejects(
        &tok(&with(json!({"exp": null})), &k.ed),
        AuthFailure::Malformed,
    );
    rejects(
        &tok(&with(json!({"exp": "soon"})), &k.ed),
        AuthFailure::Malformed,
    );
    rejects(
        &tok(&with(json!({"nbf": "now"})), &k.ed),
        AuthFailure::Malformed,
    );
    rejects(
        &tok(&with(json!({"iat": true})), &k.ed),
        AuthFailure::Malformed,
    );
    // Fractional seconds are fine.
    let v = check(&tok(&with(json!({"exp": (NOW + 5) as f64 + 0.5})), &k.ed)).expect("ok");
    assert_eq!(v.expires_at, NOW + 5);
}

// ---------------------------------------------------------------------------------------------
// Signature

#[test]
fn bad_signature_from_another_key_with_the_same_kid() {
    let k = keys();
    for key in [&k.rsa_other, &k.ec_other, &k.ed_other] {
        let token = tok(&claims(), key);
        let r = rejects(&token, AuthFailure::BadSignature);
        // The unverified claims are still there for the audit event.
        assert_eq!(
            r.claims_hint.map(|h| *h),
            Some(ClaimsHint {
                subject: Some("alice".into()),
                issuer: Some(ISS.into()),
                audience: Some(AUD.into()),
                client_id: Some("client-1".into()),
            })
        );
    }
}

#[test]
fn tampered_payload_or_signature() {
    let k = keys();
    for key in [&k.rsa, &k.ec, &k.ed] {
        let good = tok(&claims(), key);
        let evil = tok(&with(json!({"sub": "root"})), key);
        let g: Vec<&str> = good.split('.').collect();
        let e: Vec<&str> = evil.split('.').collect();
        // The elevated payload under the original signature.
        rejects(
            &format!("{}.{}.{}", g[0], e[1], g[2]),
            AuthFailure::BadSignature,
        );
        // A signature with a flipped character.
        let mut sig = g[2].as_bytes().to_vec();
        sig[5] = if sig[5] == b'A' { b'B' } else { b'A' };
        let sig = String::from_utf8(sig).expect("ascii");
        rejects(
            &format!("{}.{}.{sig}", g[0], g[1]),
            AuthFailure::BadSignature,
        );
        // A truncated signature.
        rejects(
            &format!("{}.{}.{}", g[0], g[1], &g[2][..8]),
            AuthFailure::BadSignature,
        );
        // No signature.
        rejects(&format!("{}.{}.", g[0], g[1]), AuthFailure::BadSignature);
    }
}

#[test]
fn alg_none_is_refused() {
    for alg in ["none", "None", "NONE", "nOnE"] {
        let header = json!({"alg": alg, "typ": "JWT", "kid": "ed-gen"});
        rejects(&raw(&header, &claims(), ""), AuthFailure::BadSignature);
        // Even carrying a (meaningless) signature.
        rejects(
            &raw(&header, &claims(), "c2lnbmF0dXJl"),
            AuthFailure::BadSignature,
        );
    }
    // Unsupported algorithms too.
    for alg in ["HS512", "RS512", "PS256", "ES384", "ES256K", "", "rs256"] {
        let header = json!({"alg": alg, "kid": "rsa-1"});
        rejects(
            &raw(&header, &claims(), "c2lnbmF0dXJl"),
            AuthFailure::BadSignature,
        );
    }
}

#[test]
fn hs256_signed_with_the_rsa_public_key_is_refused() {
    // The classic algorithm confusion: the public key PEM used as an HMAC secret.
    let k = keys();
    let pem = fixture("rsa-public.pem");
    let forged = tok(&claims(), &SigningKey::hs256(&pem).with_kid("rsa-1"));
    let r = rejects(&forged, AuthFailure::BadSignature);
    assert!(r.detail.contains("HS256"), "{}", r.detail);
    // Same without kid.
    rejects(
        &tok(&claims(), &SigningKey::hs256(&pem)),
        AuthFailure::BadSignature,
    );
    // Still refused when an HS256 secret is configured next to the RSA key.
    let mut set = KeySet::with_hs256_secret(b"an-unrelated-test-secret-32-bytes!").expect("secret");
    set.extend(k.set.clone());
    rejected(&forged, &set, &policy(), AuthFailure::BadSignature);
    // And an RS256-claiming token whose kid names the EC key.
    let header = json!({"alg": "RS256", "kid": "ec-1"});
    let token = raw(&header, &claims(), "c2lnbmF0dXJl");
    let r = rejects(&token, AuthFailure::BadSignature);
    assert!(r.detail.contains("confusion"), "{}", r.detail);
}

#[test]
fn hs256_only_when_configured() {
    let secret = b"test-only-shared-secret-of-32-bytes!";
    let token = tok(&claims(), &SigningKey::hs256(secret));
    let r = rejects(&token, AuthFailure::BadSignature);
    assert!(r.detail.contains("HS256"), "{}", r.detail);
    let set = KeySet::with_hs256_secret(secret).expect("secret");
    let v = validate(&token, &set, &policy(), NOW).expect("accepted with the secret configured");
    assert_eq!(v.subject, "alice");
    // A different secret.
    let other = tok(
        &claims(),
        &SigningKey::hs256(b"another-secret-that-is-32-bytes-long"),
    );
    rejected(&other, &set, &policy(), AuthFailure::BadSignature);
    // And with HS256 configured, asymmetric tokens are not accepted by the secret.
    rejected(
        &tok(&claims(), &keys().ed),
        &set,
        &policy(),
        AuthFailure::BadSignature,
    );
}

#[test]
fn unknown_kid_wants_a_refresh() {
    let k = keys();
    let rotated = SigningKey::generate_ed25519("ed-rotated");
    let token = tok(&claims(), &rotated);
    let r = rejects(&token, AuthFailure::BadSignature);
    assert!(r.detail.contains("ed-rotated"), "{}", r.detail);
    assert_eq!(k.set.refresh_wanted(&token).as_deref(), Some("ed-rotated"));
    // Known kids, garbage and HS256 never ask for a fetch.
    assert_eq!(k.set.refresh_wanted(&tok(&claims(), &k.ed)), None);
    assert_eq!(k.set.refresh_wanted("garbage"), None);
    assert_eq!(
        k.set
            .refresh_wanted(&tok(&claims(), &SigningKey::hs256(b"x").with_kid("zz"))),
        None
    );
    // The caller refetches (rate limited) and tries again.
    let mut gate = RefreshGate::default();
    assert!(gate.try_acquire(NOW));
    assert!(!gate.try_acquire(NOW + 1));
    let mut set = k.set.clone();
    set.extend(KeySet::from_jwks_value(&rotated.public_jwks()).expect("jwks"));
    assert!(validate(&token, &set, &policy(), NOW).is_ok());
}

// ---------------------------------------------------------------------------------------------
// Malformed

#[test]
fn garbage_and_empty_are_malformed() {
    let good = tok(&claims(), &keys().ed);
    let parts: Vec<&str> = good.split('.').collect();
    let cases = [
        String::new(),
        "garbage".into(),
        "a.b".into(),
        "a.b.c.d".into(),
        "....".into(),
        "!!!.###.$$$".into(),
        format!("Bearer {good}"),
        format!(" {good}"),
        format!("{good}\n"),
        format!("{}=.{}.{}", parts[0], parts[1], parts[2]),
        format!("{}.{}", parts[0], parts[1]),
        format!(".{}.{}", parts[1], parts[2]),
        format!("{}..{}", parts[0], parts[2]),
        // Header not JSON / not an object / without alg.
        format!("{}.{}.{}", URL_SAFE_NO_PAD.encode("{"), parts[1], parts[2]),
        format!("{}.{}.{}", b64(&json!(["alg"])), parts[1], parts[2]),
        format!("{}.{}.{}", b64(&json!({"typ": "JWT"})), parts[1], parts[2]),
        format!("{}.{}.{}", b64(&json!({"alg": 256})), parts[1], parts[2]),
        // Payload not an object.
        format!("{}.{}.{}", parts[0], b64(&json!("alice")), parts[2]),
        // Critical header extensions.
        format!(
            "{}.{}.{}",
            b64(&json!({"alg": "EdDSA", "crit": ["exp"], "exp": 1})),
            parts[1],
            parts[2]
        ),
    ];
    for token in &cases {
        let r = rejects(token, AuthFailure::Malformed);
        if token.is_empty() {
            assert!(r.claims_hint.is_none());
        }
    }
    assert!(rejects("x", AuthFailure::Malformed).claims_hint.is_none());
}

#[test]
fn oversized_token_is_malformed() {
    // A genuinely signed 20 KB token: refused on size before anything else.
    let c = with(json!({"pad": "x".repeat(20 * 1024)}));
    let token = tok(&c, &keys().ed);
    assert!(token.len() > MAX_TOKEN_BYTES);
    let r = rejects(&token, AuthFailure::Malformed);
    assert!(r.detail.contains("limit"), "{}", r.detail);
    assert_eq!(keys().set.refresh_wanted(&token), None);
}

#[test]
fn missing_sub_is_malformed() {
    let k = keys();
    rejects(
        &tok(&with(json!({"sub": null})), &k.ed),
        AuthFailure::Malformed,
    );
    rejects(
        &tok(&with(json!({"sub": ""})), &k.ed),
        AuthFailure::Malformed,
    );
    rejects(
        &tok(&with(json!({"sub": 12})), &k.ed),
        AuthFailure::Malformed,
    );
}

#[test]
fn missing_scope() {
    let k = keys();
    let mut p = policy();
    p.required_scopes = vec!["mcp:tools".into(), "mcp:admin".into()];
    let r = rejected(
        &tok(&claims(), &k.ed),
        &k.set,
        &p,
        AuthFailure::InsufficientScope,
    );
    assert!(
        r.detail.contains("mcp:admin") && !r.detail.contains("mcp:tools"),
        "{}",
        r.detail
    );
    rejected(
        &tok(&with(json!({"scope": null})), &k.ed),
        &k.set,
        &p,
        AuthFailure::InsufficientScope,
    );
    // Prefixes do not count.
    rejected(
        &tok(
            &with(json!({"scope": "mcp:tools mcp:admin2 mcp:adm"})),
            &k.ed,
        ),
        &k.set,
        &p,
        AuthFailure::InsufficientScope,
    );
    // scp satisfies it as well.
    let c = with(json!({"scope": null, "scp": ["mcp:admin", "mcp:tools"]}));
    assert!(validate(&tok(&c, &k.ed), &k.set, &p, NOW).is_ok());
}

// ---------------------------------------------------------------------------------------------
// Order of checks: the first flaw decides the reason.

#[test]
fn order_of_checks() {
    let k = keys();
    let mut p = policy();
    p.required_scopes = vec!["mcp:admin".into()];
    let all_bad = json!({
        "iss": "https://evil.example.com",
        "aud": "https://elsewhere.example.com",
        "exp": NOW - 3600,
        "nbf": NOW + 3600,
    });
    let steps = [
        (all_bad.clone(), &k.ed_other, AuthFailure::BadSignature),
        (all_bad.clone(), &k.ed, AuthFailure::WrongIssuer),
        (
            json!({"iss": ISS, "aud": "https://elsewhere.example.com", "exp": NOW - 3600, "nbf": NOW + 3600}),
            &k.ed,
            AuthFailure::WrongAudience,
        ),
        (
            json!({"iss": ISS, "aud": AUD, "exp": NOW - 3600, "nbf": NOW + 3600}),
            &k.ed,
            AuthFailure::Expired,
        ),
        (
            json!({"iss": ISS, "aud": AUD, "exp": NOW + 3600, "nbf": NOW + 3600}),
            &k.ed,
            AuthFailure::NotYetValid,
        ),
        (
            json!({"iss": ISS, "aud": AUD, "exp": NOW + 3600}),
            &k.ed,
            AuthFailure::Malformed,
        ),
        (
            json!({"iss": ISS, "aud": AUD, "exp": NOW + 3600, "sub": "alice"}),
            &k.ed,
            AuthFailure::InsufficientScope,
        ),
    ];
    for (c, key, reason) in steps {
        rejected(&tok(&c, key), &k.set, &p, reason);
    }
}

#[test]
fn rejection_display_has_no_token() {
    let token = tok(
        &with(json!({"aud": "https://gw.example.com/mcp/extra"})),
        &keys().rsa,
    );
    let r = rejects(&token, AuthFailure::WrongAudience);
    let shown = r.to_string();
    assert!(shown.contains("WrongAudience"), "{shown}");
    assert!(!shown.contains(&token));
    assert!(!format!("{r:?}").contains(&token));
    // Hints are cut.
    let long = "y".repeat(5000);
    let r = rejects(
        &tok(&with(json!({"iss": long, "sub": long})), &keys().ed),
        AuthFailure::WrongIssuer,
    );
    let hint = r.claims_hint.expect("hint");
    assert!(hint.subject.is_some_and(|s| s.len() < 300));
    assert!(r.detail.len() < 200, "{}", r.detail);
}

#[test]
fn audit_events() {
    let k = keys();
    let v = check(&tok(&claims(), &k.ed)).expect("accepted");
    let e = v.audit_event();
    assert_eq!(e.outcome, AuthOutcome::Accepted);
    assert_eq!(e.reason, None);
    assert_eq!(e.user.as_deref(), Some("alice"));
    assert_eq!(e.client_id.as_deref(), Some("client-1"));
    assert_eq!(e.audience.as_deref(), Some(AUD));
    assert_eq!(e.issuer.as_deref(), Some(ISS));

    let token = tok(
        &with(json!({"aud": ["https://a.example.com", "https://b.example.com"]})),
        &k.ed,
    );
    let e = rejects(&token, AuthFailure::WrongAudience).audit_event();
    assert_eq!(e.outcome, AuthOutcome::Rejected);
    assert_eq!(e.reason, Some(AuthFailure::WrongAudience));
    assert_eq!(e.user.as_deref(), Some("alice"));
    assert_eq!(
        e.audience.as_deref(),
        Some("https://a.example.com, https://b.example.com")
    );
    assert!(e.detail.is_some_and(|d| !d.contains(&token)));
    let e = rejects("nope", AuthFailure::Malformed).audit_event();
    assert_eq!((e.user, e.issuer), (None, None));
}

#[test]
fn sig_alg_names() {
    for alg in [SigAlg::RS256, SigAlg::ES256, SigAlg::EdDSA, SigAlg::HS256] {
        assert_eq!(SigAlg::from_name(alg.name()), Some(alg));
    }
    assert_eq!(SigAlg::from_name("none"), None);
}

// ---------------------------------------------------------------------------------------------
// Properties

fn assert_refused(token: &str) -> Result<(), TestCaseError> {
    match validate(token, &keys().set, &policy(), NOW) {
        Ok(v) => Err(TestCaseError::fail(format!("accepted: {v:?}"))),
        Err(r) => {
            prop_assert!(
                matches!(r.reason, AuthFailure::Malformed | AuthFailure::BadSignature),
                "{:?}: {}",
                r.reason,
                r.detail
            );
            if token.len() >= 4 {
                prop_assert!(!r.detail.contains(token));
            }
            Ok(())
        }
    }
}

fn arb_header() -> impl Strategy<Value = Value> {
    let alg = prop_oneof![
        Just(json!("none")),
        Just(json!("HS256")),
        Just(json!("RS256")),
        Just(json!("ES256")),
        Just(json!("EdDSA")),
        Just(json!(null)),
        Just(json!(1)),
        "[A-Za-z0-9]{0,8}".prop_map(Value::from),
    ];
    let kid = prop_oneof![
        Just(json!(null)),
        Just(json!("rsa-1")),
        Just(json!("ec-1")),
        Just(json!("ed-1")),
        Just(json!("ed-gen")),
        ".{0,12}".prop_map(Value::from),
        Just(json!(["rsa-1"])),
    ];
    (alg, kid).prop_map(|(alg, kid)| json!({"alg": alg, "kid": kid}))
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn random_strings_are_refused(s in ".{0,300}") {
        assert_refused(&s)?;
    }

    #[test]
    fn random_token_shaped_strings_are_refused(s in "[A-Za-z0-9_.=-]{0,400}") {
        assert_refused(&s)?;
    }

    #[test]
    fn random_headers_and_signatures_are_refused(
        header in arb_header(),
        sub in "[a-z]{0,8}",
        sig in proptest::collection::vec(any::<u8>(), 0..300),
    ) {
        // Claims that would pass every check: only the signature stands in the way.
        let c = with(json!({"sub": sub}));
        let token = raw(&header, &c, &URL_SAFE_NO_PAD.encode(sig));
        assert_refused(&token)?;
    }

    #[test]
    fn flipping_any_character_of_a_valid_token_breaks_it(pos in 0usize..4096, replacement in "[A-Za-z0-9_.-]") {
        let token = tok(&claims(), &keys().ed);
        let pos = pos % token.len();
        let mut bytes = token.clone().into_bytes();
        let r = replacement.as_bytes()[0];
        prop_assume!(bytes[pos] != r);
        bytes[pos] = r;
        let changed = String::from_utf8(bytes).expect("ascii");
        // Unused trailing bits of a part must be zero, so no change decodes to the same token.
        match validate(&changed, &keys().set, &policy(), NOW) {
            Ok(v) => prop_assert!(false, "accepted after change at {}: {:?}", pos, v),
            Err(r) => prop_assert!(!r.detail.contains(&changed)),
        }
    }
}
