//! Access-token validation for the gateway as an OAuth 2.1 resource server (MCP authorization,
//! 2025-11-25), and token minting for tests and the demo.
//!
//! [`validate`] accepts a token only when it was issued for this gateway: the signature verifies
//! against a trusted key with an accepted algorithm, `iss` is a trusted issuer, `aud` contains
//! the gateway's canonical resource URI exactly, `exp`/`nbf` hold (with leeway), `sub` is present
//! and every required scope was granted. Anything else is a [`Rejection`] with the first failed
//! check as its reason, in this order: malformed, bad signature, wrong issuer, wrong audience,
//! expired, not yet valid, missing `sub` (malformed), insufficient scope. The clock is an
//! argument, so validation is deterministic.
//!
//! A rejection's `detail` never contains the token; its `claims_hint` carries the unverified
//! `sub`, `iss`, `aud` and client id when they were readable, for the audit event only.

use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{EncodingKey, Header};
use serde_json::{Map, Value};

use super::jwks::{KeySet, LookupError, SigAlg};
use crate::protocol::events::{AuthEvent, AuthFailure, AuthOutcome};

/// Longest token accepted, in bytes.
pub const MAX_TOKEN_BYTES: usize = 16 * 1024;
/// Default clock-skew allowance for `exp` and `nbf`.
pub const DEFAULT_LEEWAY: Duration = Duration::from_secs(30);
/// Longest value copied into a [`ClaimsHint`] field, in characters.
pub const MAX_HINT_CHARS: usize = 256;
/// Most `aud` entries copied into a [`ClaimsHint`].
const MAX_HINT_AUDIENCES: usize = 8;
/// Longest token value quoted in a rejection's detail, in characters.
const MAX_DETAIL_QUOTE: usize = 80;

/// What a token must satisfy to be accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JwtPolicy {
    /// Trusted issuers (`iss`), compared exactly. Empty accepts no token.
    pub issuers: Vec<String>,
    /// This gateway's canonical resource URI; `aud` must contain exactly this string.
    pub audience: String,
    /// Clock-skew allowance for `exp` and `nbf`.
    pub leeway: Duration,
    /// Scopes every token must have been granted.
    pub required_scopes: Vec<String>,
}

impl JwtPolicy {
    /// A policy with the default leeway and no required scopes.
    pub fn new(issuers: Vec<String>, audience: impl Into<String>) -> Self {
        Self {
            issuers,
            audience: audience.into(),
            leeway: DEFAULT_LEEWAY,
            required_scopes: Vec::new(),
        }
    }
}

/// The facts of an accepted token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Validated {
    /// `sub`.
    pub subject: String,
    /// `iss` (one of the trusted issuers).
    pub issuer: String,
    /// `aud`, as a list (it contains the policy's audience).
    pub audience: Vec<String>,
    /// `client_id`, else `azp`.
    pub client_id: Option<String>,
    /// `scope` (space-separated) and `scp` (array or string), in order, without repeats.
    pub scopes: Vec<String>,
    /// `iat`.
    pub issued_at: Option<i64>,
    /// `exp`.
    pub expires_at: i64,
    /// `jti`.
    pub token_id: Option<String>,
}

impl Validated {
    /// The audit event for this acceptance (`upstream` and `remote` left for the caller to fill).
    pub fn audit_event(&self) -> AuthEvent {
        AuthEvent {
            outcome: AuthOutcome::Accepted,
            reason: None,
            user: Some(self.subject.clone()),
            client_id: self.client_id.clone(),
            audience: Some(self.audience.join(", ")),
            issuer: Some(self.issuer.clone()),
            upstream: None,
            remote: None,
            detail: None,
        }
    }
}

/// Unverified claims read from a refused token: for the audit event, never for a decision.
///
/// Values are cut to [`MAX_HINT_CHARS`] characters.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClaimsHint {
    /// `sub`, if a string.
    pub subject: Option<String>,
    /// `iss`, if a string.
    pub issuer: Option<String>,
    /// `aud`: the string, or the array's strings joined with `", "`.
    pub audience: Option<String>,
    /// `client_id`, else `azp`.
    pub client_id: Option<String>,
}

/// Why a token was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("token rejected ({reason:?}): {detail}")]
pub struct Rejection {
    /// The first check that failed.
    pub reason: AuthFailure,
    /// What exactly was wrong, for people; never contains the token.
    pub detail: String,
    /// Unverified claims, when the payload was readable; only for logging. Boxed so that
    /// `Result<_, Rejection>` stays small (clippy's `result_large_err`).
    pub claims_hint: Option<Box<ClaimsHint>>,
}

impl Rejection {
    /// The audit event for this refusal (`upstream` and `remote` left for the caller to fill).
    pub fn audit_event(&self) -> AuthEvent {
        let hint = self.claims_hint.as_deref();
        AuthEvent {
            outcome: AuthOutcome::Rejected,
            reason: Some(self.reason),
            user: hint.and_then(|h| h.subject.clone()),
            client_id: hint.and_then(|h| h.client_id.clone()),
            audience: hint.and_then(|h| h.audience.clone()),
            issuer: hint.and_then(|h| h.issuer.clone()),
            upstream: None,
            remote: None,
            detail: Some(self.detail.clone()),
        }
    }

    fn new(reason: AuthFailure, detail: impl Into<String>, hint: Option<&ClaimsHint>) -> Self {
        Self {
            reason,
            detail: detail.into(),
            claims_hint: hint.map(|h| Box::new(h.clone())),
        }
    }
}

/// Validates a bearer access token for this gateway at time `now_unix` (seconds since the epoch).
pub fn validate(
    token: &str,
    keys: &KeySet,
    policy: &JwtPolicy,
    now_unix: i64,
) -> Result<Validated, Rejection> {
    use AuthFailure::*;

    // 1. Shape: three base64url parts, a JSON object header and payload.
    if token.is_empty() {
        return Err(Rejection::new(Malformed, "empty token", None));
    }
    if token.len() > MAX_TOKEN_BYTES {
        return Err(Rejection::new(
            Malformed,
            format!(
                "token is {} bytes, longer than the limit of {MAX_TOKEN_BYTES}",
                token.len()
            ),
            None,
        ));
    }
    let parts: Vec<&str> = token.split('.').collect();
    let [header_b64, payload_b64, signature_b64] = parts.as_slice() else {
        return Err(Rejection::new(
            Malformed,
            format!(
                "not a JWS compact token: {} dot-separated parts instead of 3",
                parts.len()
            ),
            None,
        ));
    };
    for (name, part) in [
        ("header", header_b64),
        ("payload", payload_b64),
        ("signature", signature_b64),
    ] {
        if !part
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            return Err(Rejection::new(
                Malformed,
                format!("{name} is not unpadded base64url"),
                None,
            ));
        }
    }
    let header = decode_object(header_b64)
        .map_err(|what| Rejection::new(Malformed, format!("header {what}"), None))?;
    let claims = decode_object(payload_b64)
        .map_err(|what| Rejection::new(Malformed, format!("payload {what}"), None))?;
    let hint = ClaimsHint::read(&claims);
    let hint = Some(&hint);

    // 2. Signature: an accepted algorithm, a key of the matching type, a signature that verifies.
    let alg_name = match header.get("alg") {
        Some(Value::String(alg)) => alg.as_str(),
        _ => return Err(Rejection::new(Malformed, "header has no alg", hint)),
    };
    if header.contains_key("crit") {
        return Err(Rejection::new(
            Malformed,
            "header has critical extensions (crit), none of which are supported",
            hint,
        ));
    }
    let kid = match header.get("kid") {
        None | Some(Value::Null) => None,
        Some(Value::String(kid)) => Some(kid.as_str()),
        Some(_) => {
            return Err(Rejection::new(
                Malformed,
                "header kid is not a string",
                hint,
            ));
        }
    };
    if alg_name.eq_ignore_ascii_case("none") {
        return Err(Rejection::new(
            BadSignature,
            "unsigned token (alg none) refused",
            hint,
        ));
    }
    let Some(alg) = SigAlg::from_name(alg_name) else {
        return Err(Rejection::new(
            BadSignature,
            format!(
                "algorithm {} is not accepted (RS256, ES256, EdDSA)",
                quote(alg_name)
            ),
            hint,
        ));
    };
    if signature_b64.is_empty() {
        return Err(Rejection::new(BadSignature, "empty signature", hint));
    }
    let candidates = keys.candidates(kid, alg).map_err(|e| {
        let detail = match e {
            LookupError::HmacNotConfigured => {
                "HS256 tokens are not accepted: no shared secret is configured".to_string()
            }
            LookupError::UnknownKid => format!(
                "no trusted key has kid {} (the key set may need a refresh)",
                quote(kid.unwrap_or_default())
            ),
            LookupError::WrongAlgForKid(key_alg) => format!(
                "key {} is a {} key for {key_alg}, but the token says {alg}: algorithm confusion refused",
                quote(kid.unwrap_or_default()),
                key_alg.key_kind()
            ),
            LookupError::NoKeyForAlg => {
                format!("no trusted {} key for {alg}", alg.key_kind())
            }
        };
        Rejection::new(BadSignature, detail, hint)
    })?;
    let signed = &token[..header_b64.len() + 1 + payload_b64.len()];
    let Some(key) = candidates.into_iter().find(|key| {
        jsonwebtoken::crypto::verify(
            signature_b64,
            signed.as_bytes(),
            key.decoding_key(),
            alg.to_jwt(),
        )
        .unwrap_or(false)
    }) else {
        let which = match kid {
            Some(kid) => format!("key {}", quote(kid)),
            None => format!("any trusted {} key", alg.key_kind()),
        };
        return Err(Rejection::new(
            BadSignature,
            format!("{alg} signature does not verify against {which}"),
            hint,
        ));
    };

    // 3. Issuer: one of ours, and the one the key belongs to when the key is bound.
    let issuer = match claims.get("iss") {
        Some(Value::String(iss)) => iss,
        Some(_) => return Err(Rejection::new(WrongIssuer, "iss is not a string", hint)),
        None => return Err(Rejection::new(WrongIssuer, "no iss claim", hint)),
    };
    if !policy.issuers.iter().any(|trusted| trusted == issuer) {
        return Err(Rejection::new(
            WrongIssuer,
            format!("issuer {} is not trusted", quote(issuer)),
            hint,
        ));
    }
    if let Some(bound) = key.issuer()
        && bound != issuer
    {
        return Err(Rejection::new(
            WrongIssuer,
            format!(
                "signed with a key of issuer {} but claims issuer {}",
                quote(bound),
                quote(issuer)
            ),
            hint,
        ));
    }

    // 4. Audience: issued for this resource, exactly (no token passthrough, no confused deputy).
    let audience: Vec<String> = match claims.get("aud") {
        Some(Value::String(aud)) => vec![aud.clone()],
        Some(Value::Array(list)) => list
            .iter()
            .filter_map(|v| v.as_str().map(str::to_string))
            .collect(),
        Some(_) => {
            return Err(Rejection::new(
                WrongAudience,
                "aud is not a string or array",
                hint,
            ));
        }
        None => {
            return Err(Rejection::new(
                WrongAudience,
                "no aud claim: the token was not issued for a specific resource",
                hint,
            ));
        }
    };
    if policy.audience.is_empty() {
        return Err(Rejection::new(
            WrongAudience,
            "this gateway has no audience configured",
            hint,
        ));
    }
    if !audience.contains(&policy.audience) {
        let shown: Vec<String> = audience
            .iter()
            .take(MAX_HINT_AUDIENCES)
            .map(|a| quote(a))
            .collect();
        return Err(Rejection::new(
            WrongAudience,
            format!(
                "token is for [{}], not for this resource {}",
                shown.join(", "),
                quote(&policy.audience)
            ),
            hint,
        ));
    }

    // 5. Time: exp (required) and nbf, both with leeway.
    let leeway = i64::try_from(policy.leeway.as_secs()).unwrap_or(i64::MAX);
    let expires_at = match claims.get("exp") {
        None => return Err(Rejection::new(Malformed, "no exp claim", hint)),
        Some(v) => numeric_date(v)
            .ok_or_else(|| Rejection::new(Malformed, "exp is not a NumericDate", hint))?,
    };
    if now_unix >= expires_at.saturating_add(leeway) {
        return Err(Rejection::new(
            Expired,
            format!(
                "expired at {expires_at}, {} s ago (leeway {leeway} s)",
                now_unix.saturating_sub(expires_at)
            ),
            hint,
        ));
    }
    if let Some(nbf) = claims.get("nbf") {
        let nbf = numeric_date(nbf)
            .ok_or_else(|| Rejection::new(Malformed, "nbf is not a NumericDate", hint))?;
        if nbf > now_unix.saturating_add(leeway) {
            return Err(Rejection::new(
                NotYetValid,
                format!(
                    "not valid before {nbf}, {} s from now (leeway {leeway} s)",
                    nbf.saturating_sub(now_unix)
                ),
                hint,
            ));
        }
    }
    let issued_at = match claims.get("iat") {
        None | Some(Value::Null) => None,
        Some(v) => Some(
            numeric_date(v)
                .ok_or_else(|| Rejection::new(Malformed, "iat is not a NumericDate", hint))?,
        ),
    };

    // 6. Subject.
    let subject = match claims.get("sub") {
        Some(Value::String(sub)) if !sub.is_empty() => sub.clone(),
        Some(_) => {
            return Err(Rejection::new(
                Malformed,
                "sub is not a non-empty string",
                hint,
            ));
        }
        None => return Err(Rejection::new(Malformed, "no sub claim", hint)),
    };

    // 7. Scopes.
    let scopes = scopes_of(&claims);
    let missing: Vec<&str> = policy
        .required_scopes
        .iter()
        .filter(|want| !scopes.iter().any(|have| have == *want))
        .map(String::as_str)
        .collect();
    if !missing.is_empty() {
        let shown: Vec<String> = missing.iter().map(|s| quote(s)).collect();
        return Err(Rejection::new(
            InsufficientScope,
            format!("missing required scope(s) {}", shown.join(", ")),
            hint,
        ));
    }

    Ok(Validated {
        subject,
        issuer: issuer.clone(),
        audience,
        client_id: client_id_of(&claims).map(str::to_string),
        scopes,
        issued_at,
        expires_at,
        token_id: claims
            .get("jti")
            .and_then(Value::as_str)
            .map(str::to_string),
    })
}

impl ClaimsHint {
    fn read(claims: &Map<String, Value>) -> Self {
        let text = |name: &str| claims.get(name).and_then(Value::as_str).map(cut);
        let audience = match claims.get("aud") {
            Some(Value::String(aud)) => Some(cut(aud)),
            Some(Value::Array(list)) => {
                let items: Vec<&str> = list
                    .iter()
                    .filter_map(Value::as_str)
                    .take(MAX_HINT_AUDIENCES)
                    .collect();
                (!items.is_empty()).then(|| cut(&items.join(", ")))
            }
            _ => None,
        };
        Self {
            subject: text("sub"),
            issuer: text("iss"),
            audience,
            client_id: client_id_of(claims).map(cut),
        }
    }
}

/// Decodes one base64url part into a JSON object, or says what it is not.
fn decode_object(part: &str) -> Result<Map<String, Value>, &'static str> {
    if part.is_empty() {
        return Err("is empty");
    }
    let bytes = URL_SAFE_NO_PAD
        .decode(part)
        .map_err(|_| "is not unpadded base64url")?;
    match serde_json::from_slice::<Value>(&bytes) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(_) => Err("is not a JSON object"),
        Err(_) => Err("is not JSON"),
    }
}

/// A NumericDate (RFC 7519 §2): integer or finite fractional seconds, floored.
fn numeric_date(value: &Value) -> Option<i64> {
    if let Some(i) = value.as_i64() {
        return Some(i);
    }
    if value.as_u64().is_some() {
        return Some(i64::MAX);
    }
    let f = value.as_f64()?;
    if !f.is_finite() {
        return None;
    }
    // `as` saturates at the i64 range.
    Some(f.floor() as i64)
}

fn client_id_of(claims: &Map<String, Value>) -> Option<&str> {
    claims
        .get("client_id")
        .and_then(Value::as_str)
        .or_else(|| claims.get("azp").and_then(Value::as_str))
}

fn scopes_of(claims: &Map<String, Value>) -> Vec<String> {
    let mut scopes: Vec<String> = Vec::new();
    let mut add = |s: &str| {
        if !s.is_empty() && !scopes.iter().any(|have| have == s) {
            scopes.push(s.to_string());
        }
    };
    if let Some(Value::String(scope)) = claims.get("scope") {
        scope.split_whitespace().for_each(&mut add);
    }
    match claims.get("scp") {
        Some(Value::Array(list)) => list.iter().filter_map(Value::as_str).for_each(&mut add),
        Some(Value::String(scp)) => scp.split_whitespace().for_each(&mut add),
        _ => {}
    }
    scopes
}

/// At most [`MAX_HINT_CHARS`] characters.
fn cut(s: &str) -> String {
    match s.char_indices().nth(MAX_HINT_CHARS) {
        Some((end, _)) => format!("{}…", &s[..end]),
        None => s.to_string(),
    }
}

/// A token-supplied value for a detail message: short, quoted, escaped.
fn quote(s: &str) -> String {
    match s.char_indices().nth(MAX_DETAIL_QUOTE) {
        Some((end, _)) => format!("{:?}…", &s[..end]),
        None => format!("{s:?}"),
    }
}

/// Why a token could not be minted.
#[derive(Debug, thiserror::Error)]
pub enum MintError {
    /// The claims are not a JSON object.
    #[error("claims must be a JSON object")]
    ClaimsNotObject,
    /// The key could not be loaded.
    #[error("cannot load {alg} signing key: {detail}")]
    BadKey {
        /// The algorithm the key was loaded for.
        alg: SigAlg,
        /// What went wrong.
        detail: String,
    },
    /// Signing failed.
    #[error("signing failed: {0}")]
    Sign(String),
}

/// A private key (or secret) that mints tokens: for tests, the demo and the gateway's own tests.
#[derive(Clone)]
pub struct SigningKey {
    alg: SigAlg,
    kid: Option<String>,
    key: EncodingKey,
    /// The public JWK (without kid, use), for asymmetric keys.
    public: Option<Value>,
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKey")
            .field("alg", &self.alg)
            .field("kid", &self.kid)
            .finish_non_exhaustive()
    }
}

/// PKCS#8 v1 prefix of an Ed25519 private key (RFC 8410), followed by the 32-byte seed.
const ED25519_PKCS8_PREFIX: [u8; 16] = [
    0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04, 0x20,
];

impl SigningKey {
    /// A fresh Ed25519 key pair from the operating system's randomness.
    pub fn generate_ed25519(kid: impl Into<String>) -> Self {
        use rand::RngCore;
        let mut seed = [0u8; 32];
        rand::rng().fill_bytes(&mut seed);
        let signing = ed25519_dalek::SigningKey::from_bytes(&seed);
        let public = signing.verifying_key().to_bytes();
        let mut der = Vec::with_capacity(48);
        der.extend_from_slice(&ED25519_PKCS8_PREFIX);
        der.extend_from_slice(&seed);
        seed.fill(0);
        let key = EncodingKey::from_ed_der(&der);
        der.fill(0);
        Self {
            alg: SigAlg::EdDSA,
            kid: Some(kid.into()),
            key,
            public: Some(serde_json::json!({
                "kty": "OKP",
                "crv": "Ed25519",
                "x": URL_SAFE_NO_PAD.encode(public),
            })),
        }
    }

    /// An RS256 key from a PEM private key (PKCS#1 or PKCS#8).
    pub fn from_rsa_pem(kid: impl Into<String>, pem: &[u8]) -> Result<Self, MintError> {
        Self::from_pem(SigAlg::RS256, kid.into(), pem, EncodingKey::from_rsa_pem)
    }

    /// An ES256 key from a PEM PKCS#8 P-256 private key.
    pub fn from_ec_pem(kid: impl Into<String>, pem: &[u8]) -> Result<Self, MintError> {
        Self::from_pem(SigAlg::ES256, kid.into(), pem, EncodingKey::from_ec_pem)
    }

    /// An EdDSA key from a PEM PKCS#8 Ed25519 private key.
    pub fn from_ed_pem(kid: impl Into<String>, pem: &[u8]) -> Result<Self, MintError> {
        Self::from_pem(SigAlg::EdDSA, kid.into(), pem, EncodingKey::from_ed_pem)
    }

    /// An HS256 secret (no `kid`). Tests only: the gateway refuses HS256 unless configured.
    pub fn hs256(secret: &[u8]) -> Self {
        Self {
            alg: SigAlg::HS256,
            kid: None,
            key: EncodingKey::from_secret(secret),
            public: None,
        }
    }

    fn from_pem(
        alg: SigAlg,
        kid: String,
        pem: &[u8],
        load: fn(&[u8]) -> jsonwebtoken::errors::Result<EncodingKey>,
    ) -> Result<Self, MintError> {
        let bad = |e: jsonwebtoken::errors::Error| MintError::BadKey {
            alg,
            detail: e.to_string(),
        };
        let key = load(pem).map_err(bad)?;
        let jwk = jsonwebtoken::jwk::Jwk::from_encoding_key(&key, alg.to_jwt()).map_err(bad)?;
        let mut public = serde_json::to_value(&jwk.algorithm).map_err(|e| MintError::BadKey {
            alg,
            detail: e.to_string(),
        })?;
        // Keep only the key material; kid, use and alg are added by `public_jwk`.
        if let Value::Object(map) = &mut public {
            map.retain(|k, _| matches!(k.as_str(), "kty" | "crv" | "x" | "y" | "n" | "e"));
        }
        Ok(Self {
            alg,
            kid: Some(kid),
            key,
            public: Some(public),
        })
    }

    /// The same key under another `kid`.
    pub fn with_kid(mut self, kid: impl Into<String>) -> Self {
        self.kid = Some(kid.into());
        self
    }

    /// The same key, minting tokens without a `kid` header.
    pub fn without_kid(mut self) -> Self {
        self.kid = None;
        self
    }

    /// The `kid` put in minted tokens' headers.
    pub fn kid(&self) -> Option<&str> {
        self.kid.as_deref()
    }

    /// The signing algorithm.
    pub fn alg(&self) -> SigAlg {
        self.alg
    }

    /// The public JWK (`kty`, key parameters, `kid`, `use: sig`, `alg`); `None` for HS256.
    pub fn public_jwk(&self) -> Option<Value> {
        let mut jwk = self.public.clone()?;
        if let Value::Object(map) = &mut jwk {
            if let Some(kid) = &self.kid {
                map.insert("kid".into(), Value::String(kid.clone()));
            }
            map.insert("use".into(), Value::String("sig".into()));
            map.insert("alg".into(), Value::String(self.alg.name().into()));
        }
        Some(jwk)
    }

    /// A JWKS document with this key's public key (`{"keys": []}` for an HS256 secret, which is
    /// never published).
    pub fn public_jwks(&self) -> Value {
        let keys: Vec<Value> = self.public_jwk().into_iter().collect();
        serde_json::json!({ "keys": keys })
    }
}

/// Signs `claims` (a JSON object) into a compact JWS with `typ: at+jwt` (RFC 9068) and the key's
/// `kid`.
pub fn mint(claims: &Value, key: &SigningKey) -> Result<String, MintError> {
    if !claims.is_object() {
        return Err(MintError::ClaimsNotObject);
    }
    let mut header = Header::new(key.alg.to_jwt());
    header.typ = Some("at+jwt".into());
    header.kid = key.kid.clone();
    jsonwebtoken::encode(&header, claims, &key.key).map_err(|e| MintError::Sign(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn numeric_dates() {
        assert_eq!(numeric_date(&json!(5)), Some(5));
        assert_eq!(numeric_date(&json!(-5)), Some(-5));
        assert_eq!(numeric_date(&json!(5.9)), Some(5));
        assert_eq!(numeric_date(&json!(u64::MAX)), Some(i64::MAX));
        assert_eq!(numeric_date(&json!(1e300)), Some(i64::MAX));
        assert_eq!(numeric_date(&json!("5")), None);
        assert_eq!(numeric_date(&json!(null)), None);
    }

    #[test]
    fn scopes_merge_scope_and_scp() {
        let claims = json!({"scope": "a  b", "scp": ["b", "c", 3]});
        let Value::Object(map) = claims else {
            unreachable!()
        };
        assert_eq!(scopes_of(&map), vec!["a", "b", "c"]);
    }

    #[test]
    fn hint_is_cut() {
        let long = "x".repeat(1000);
        let claims = json!({"sub": long, "aud": ["a", "b"], "azp": "c"});
        let Value::Object(map) = claims else {
            unreachable!()
        };
        let hint = ClaimsHint::read(&map);
        assert_eq!(
            hint.subject.map(|s| s.chars().count()),
            Some(MAX_HINT_CHARS + 1)
        );
        assert_eq!(hint.audience.as_deref(), Some("a, b"));
        assert_eq!(hint.client_id.as_deref(), Some("c"));
    }

    #[test]
    fn roundtrip_ed25519() {
        let key = SigningKey::generate_ed25519("k1");
        let keys = KeySet::from_jwks_value(&key.public_jwks()).expect("jwks");
        let token = mint(
            &json!({"iss": "i", "aud": "a", "sub": "s", "exp": 100}),
            &key,
        )
        .expect("mint");
        let policy = JwtPolicy::new(vec!["i".into()], "a");
        let ok = validate(&token, &keys, &policy, 50).expect("valid");
        assert_eq!(ok.subject, "s");
        assert_eq!(keys.refresh_wanted(&token), None);
        let other = mint(&json!({}), &key.clone().with_kid("k2")).expect("mint");
        assert_eq!(keys.refresh_wanted(&other).as_deref(), Some("k2"));
    }
}
