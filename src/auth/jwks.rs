//! JSON Web Key Sets (RFC 7517): the public keys an access token's signature is checked against.
//!
//! A [`KeySet`] is built from a JWKS document (read from a file, or fetched by the gateway and
//! handed over as text) or, for tests only, from an HS256 secret. Only signature keys of the
//! three supported kinds are accepted: `RSA` (RS256, at least 2048 bits), `EC` on `P-256`
//! (ES256) and `OKP` on `Ed25519` (EdDSA). Keys marked `"use": "enc"` are ignored; any other key
//! type or curve is refused with an error naming the key, never silently used.
//!
//! Fetching a JWKS URL is the caller's job: [`JwksSource`] only says where the set comes from,
//! [`KeySet::refresh_wanted`] says when a token names a key the set does not have, and
//! [`RefreshGate`] rate-limits the resulting refetches.

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, DecodingKey};
use serde_json::Value;

/// Largest JWKS document accepted, in bytes.
pub const MAX_JWKS_BYTES: usize = 1024 * 1024;
/// Most keys one set may hold (entries ignored for `use != sig` do not count).
pub const MAX_KEYS: usize = 64;
/// Most keys one token's signature is tried against (a token without `kid`, or a reused `kid`).
pub const MAX_CANDIDATES: usize = 4;
/// Smallest RSA modulus accepted, in bits.
pub const MIN_RSA_BITS: usize = 2048;
/// Smallest HS256 secret accepted, in bytes (RFC 7518 §3.2: at least the hash size).
pub const MIN_HS256_SECRET: usize = 32;
/// Longest `kid` accepted, in bytes.
pub const MAX_KID_BYTES: usize = 256;

/// The signature algorithms this gateway accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SigAlg {
    /// RSASSA-PKCS1-v1_5 with SHA-256, `kty: RSA`.
    RS256,
    /// ECDSA on P-256 with SHA-256, `kty: EC`, `crv: P-256`.
    ES256,
    /// Ed25519, `kty: OKP`, `crv: Ed25519`.
    EdDSA,
    /// HMAC with SHA-256: only with a secret configured explicitly (tests).
    HS256,
}

impl SigAlg {
    /// The JOSE `alg` name.
    pub fn name(self) -> &'static str {
        match self {
            Self::RS256 => "RS256",
            Self::ES256 => "ES256",
            Self::EdDSA => "EdDSA",
            Self::HS256 => "HS256",
        }
    }

    /// The algorithm for a JOSE `alg` name, if it is one this gateway accepts (case-sensitive).
    pub fn from_name(name: &str) -> Option<Self> {
        match name {
            "RS256" => Some(Self::RS256),
            "ES256" => Some(Self::ES256),
            "EdDSA" => Some(Self::EdDSA),
            "HS256" => Some(Self::HS256),
            _ => None,
        }
    }

    /// The key type that goes with the algorithm, for messages.
    pub fn key_kind(self) -> &'static str {
        match self {
            Self::RS256 => "RSA",
            Self::ES256 => "EC P-256",
            Self::EdDSA => "OKP Ed25519",
            Self::HS256 => "HMAC secret",
        }
    }

    pub(crate) fn to_jwt(self) -> Algorithm {
        match self {
            Self::RS256 => Algorithm::RS256,
            Self::ES256 => Algorithm::ES256,
            Self::EdDSA => Algorithm::EdDSA,
            Self::HS256 => Algorithm::HS256,
        }
    }
}

impl fmt::Display for SigAlg {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Why a key set could not be built.
#[derive(Debug, thiserror::Error)]
pub enum JwksError {
    /// The document is not JSON.
    #[error("JWKS is not valid JSON: {0}")]
    NotJson(String),
    /// The document has no `keys` array.
    #[error("JWKS has no \"keys\" array")]
    NoKeysArray,
    /// The document is larger than [`MAX_JWKS_BYTES`].
    #[error("JWKS is {size} bytes, more than the limit of {limit}")]
    TooLarge {
        /// Its size.
        size: usize,
        /// The limit.
        limit: usize,
    },
    /// More than [`MAX_KEYS`] signature keys.
    #[error("JWKS has more than {limit} signature keys")]
    TooManyKeys {
        /// The limit.
        limit: usize,
    },
    /// Reading the file failed.
    #[error("cannot read JWKS file {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// A key type other than RSA, EC and OKP (symmetric `oct` keys included: never from a JWKS).
    #[error("key {kid}: key type {kty:?} is not supported (RSA, EC P-256 and OKP Ed25519 are)")]
    UnsupportedKeyType {
        /// The key's id, or `(no kid)`.
        kid: String,
        /// The key type as given.
        kty: String,
    },
    /// A curve other than P-256 (EC) and Ed25519 (OKP).
    #[error(
        "key {kid}: curve {crv:?} is not supported for {kty} keys (EC P-256 and OKP Ed25519 are)"
    )]
    UnsupportedCurve {
        /// The key's id, or `(no kid)`.
        kid: String,
        /// The key type.
        kty: String,
        /// The curve as given.
        crv: String,
    },
    /// The key names an `alg` other than the one its type is accepted for.
    #[error("key {kid}: alg {alg:?} is not accepted for {kty} keys (only {expected} is)")]
    UnsupportedAlg {
        /// The key's id, or `(no kid)`.
        kid: String,
        /// The key type.
        kty: String,
        /// The alg as given.
        alg: String,
        /// The one accepted for this key type.
        expected: SigAlg,
    },
    /// A key whose parameters are missing, not base64url, the wrong size or not a valid key.
    #[error("key {kid}: {detail}")]
    BadKey {
        /// The key's id, or `(no kid)`.
        kid: String,
        /// What is wrong.
        detail: String,
    },
    /// Not one usable signature key.
    #[error("JWKS has no usable signature key")]
    NoUsableKeys,
    /// An HS256 secret shorter than [`MIN_HS256_SECRET`].
    #[error("HS256 secret is {len} bytes, at least {min} are required")]
    WeakSecret {
        /// Its length.
        len: usize,
        /// The minimum.
        min: usize,
    },
    /// A JWKS source that is neither a file nor an https URL (or http on loopback).
    #[error("JWKS source {0:?} is not usable: {1}")]
    BadSource(String, &'static str),
}

/// One key a signature can be checked against.
#[derive(Clone)]
pub struct VerifyKey {
    kid: Option<String>,
    alg: SigAlg,
    issuer: Option<String>,
    key: DecodingKey,
}

impl VerifyKey {
    /// The key id, when the JWK had one.
    pub fn kid(&self) -> Option<&str> {
        self.kid.as_deref()
    }

    /// The one algorithm this key verifies.
    pub fn alg(&self) -> SigAlg {
        self.alg
    }

    /// The issuer this key is bound to, if any (see [`KeySet::bind_issuer`]).
    pub fn issuer(&self) -> Option<&str> {
        self.issuer.as_deref()
    }

    pub(crate) fn decoding_key(&self) -> &DecodingKey {
        &self.key
    }
}

impl fmt::Debug for VerifyKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VerifyKey")
            .field("kid", &self.kid)
            .field("alg", &self.alg)
            .field("issuer", &self.issuer)
            .finish_non_exhaustive()
    }
}

/// Why no key could be found for a token (all of these end as a bad signature).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum LookupError {
    /// HS256 was asked for and no secret is configured.
    HmacNotConfigured,
    /// The token's `kid` is not in the set.
    UnknownKid,
    /// The `kid` exists but for another algorithm (algorithm confusion).
    WrongAlgForKid(SigAlg),
    /// No `kid` and no key for the algorithm.
    NoKeyForAlg,
}

/// A set of verification keys, indexed by `kid`.
#[derive(Debug, Clone, Default)]
pub struct KeySet {
    keys: Vec<VerifyKey>,
    by_kid: HashMap<String, Vec<usize>>,
}

impl KeySet {
    /// An empty set (accepts nothing).
    pub fn new() -> Self {
        Self::default()
    }

    /// Parses a JWKS document strictly: any signature key that cannot be used is an error.
    ///
    /// Entries with `use` other than `sig` (or `key_ops` without `verify`) are ignored.
    pub fn from_jwks_json(text: &str) -> Result<Self, JwksError> {
        let (set, mut skipped) = Self::parse(text)?;
        match skipped.is_empty() {
            true => Ok(set),
            false => Err(skipped.swap_remove(0)),
        }
    }

    /// Parses a JWKS document, skipping signature keys that cannot be used and returning why.
    ///
    /// For a fetched set an identity provider may extend at any time: one key of an unsupported
    /// kind should not take all the others down. Still an error when no key at all is usable.
    pub fn from_jwks_json_lenient(text: &str) -> Result<(Self, Vec<JwksError>), JwksError> {
        let (set, skipped) = Self::parse(text)?;
        if set.is_empty() {
            return Err(skipped
                .into_iter()
                .next()
                .unwrap_or(JwksError::NoUsableKeys));
        }
        Ok((set, skipped))
    }

    /// Parses a JWKS document already held as JSON (strict, like [`KeySet::from_jwks_json`]).
    pub fn from_jwks_value(doc: &Value) -> Result<Self, JwksError> {
        let (set, mut skipped) = Self::parse_value(doc)?;
        match skipped.is_empty() {
            true => Ok(set),
            false => Err(skipped.swap_remove(0)),
        }
    }

    /// Reads and strictly parses a JWKS file (at most [`MAX_JWKS_BYTES`]).
    pub fn from_file(path: &Path) -> Result<Self, JwksError> {
        let io = |source| JwksError::Io {
            path: path.to_path_buf(),
            source,
        };
        let size = std::fs::metadata(path).map_err(io)?.len();
        if size > MAX_JWKS_BYTES as u64 {
            return Err(JwksError::TooLarge {
                size: usize::try_from(size).unwrap_or(usize::MAX),
                limit: MAX_JWKS_BYTES,
            });
        }
        let text = std::fs::read_to_string(path).map_err(io)?;
        Self::from_jwks_json(&text)
    }

    /// A set holding only an HS256 secret. For tests: HS256 is refused unless configured so.
    pub fn with_hs256_secret(secret: impl AsRef<[u8]>) -> Result<Self, JwksError> {
        let secret = secret.as_ref();
        if secret.len() < MIN_HS256_SECRET {
            return Err(JwksError::WeakSecret {
                len: secret.len(),
                min: MIN_HS256_SECRET,
            });
        }
        let mut set = Self::new();
        set.push(VerifyKey {
            kid: None,
            alg: SigAlg::HS256,
            issuer: None,
            key: DecodingKey::from_secret(secret),
        });
        Ok(set)
    }

    /// Binds every key of this set to one issuer: a token verified by one of them must carry
    /// exactly that `iss`. Use it when trusting several issuers, so that one issuer's key cannot
    /// vouch for tokens claiming to come from another.
    pub fn bind_issuer(mut self, issuer: impl Into<String>) -> Self {
        let issuer = issuer.into();
        for key in &mut self.keys {
            key.issuer = Some(issuer.clone());
        }
        self
    }

    /// Adds the keys of another set (for example one per trusted issuer).
    pub fn extend(&mut self, other: KeySet) {
        for key in other.keys {
            self.push(key);
        }
    }

    /// Number of keys.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// No keys at all.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// The keys, in document order.
    pub fn keys(&self) -> &[VerifyKey] {
        &self.keys
    }

    /// Whether a key with this id is present.
    pub fn contains_kid(&self, kid: &str) -> bool {
        self.by_kid.contains_key(kid)
    }

    /// Whether an HS256 secret is configured.
    pub fn has_hs256(&self) -> bool {
        self.keys.iter().any(|k| k.alg == SigAlg::HS256)
    }

    /// When a token names a `kid` this set does not hold (for an asymmetric algorithm), that
    /// `kid`: the issuer may have rotated keys, so the caller should refetch the JWKS (rate
    /// limited, see [`RefreshGate`]) and validate again. `None` for anything else, including
    /// unreadable tokens and absurd key ids, so garbage never triggers a fetch.
    pub fn refresh_wanted(&self, token: &str) -> Option<String> {
        if token.len() > crate::auth::jwt::MAX_TOKEN_BYTES {
            return None;
        }
        let header_b64 = token.split('.').next()?;
        let header = URL_SAFE_NO_PAD.decode(header_b64).ok()?;
        let header: Value = serde_json::from_slice(&header).ok()?;
        let alg = SigAlg::from_name(header.get("alg")?.as_str()?)?;
        if alg == SigAlg::HS256 {
            return None;
        }
        let kid = header.get("kid")?.as_str()?;
        if kid.is_empty() || kid.len() > MAX_KID_BYTES || self.contains_kid(kid) {
            return None;
        }
        Some(kid.to_string())
    }

    /// The keys a token's signature may be checked against, at most [`MAX_CANDIDATES`].
    pub(crate) fn candidates(
        &self,
        kid: Option<&str>,
        alg: SigAlg,
    ) -> Result<Vec<&VerifyKey>, LookupError> {
        if alg == SigAlg::HS256 {
            // Secrets carry no kid; whatever the token names, only a configured secret will do.
            let found: Vec<&VerifyKey> = self
                .keys
                .iter()
                .filter(|k| k.alg == SigAlg::HS256)
                .take(MAX_CANDIDATES)
                .collect();
            return match found.is_empty() {
                true => Err(LookupError::HmacNotConfigured),
                false => Ok(found),
            };
        }
        match kid {
            Some(kid) => {
                let idx = self.by_kid.get(kid).ok_or(LookupError::UnknownKid)?;
                let found: Vec<&VerifyKey> = idx
                    .iter()
                    .filter_map(|&i| self.keys.get(i))
                    .filter(|k| k.alg == alg)
                    .take(MAX_CANDIDATES)
                    .collect();
                if found.is_empty() {
                    let other = idx
                        .first()
                        .and_then(|&i| self.keys.get(i))
                        .map_or(alg, |k| k.alg);
                    return Err(LookupError::WrongAlgForKid(other));
                }
                Ok(found)
            }
            None => {
                let found: Vec<&VerifyKey> = self
                    .keys
                    .iter()
                    .filter(|k| k.alg == alg)
                    .take(MAX_CANDIDATES)
                    .collect();
                match found.is_empty() {
                    true => Err(LookupError::NoKeyForAlg),
                    false => Ok(found),
                }
            }
        }
    }

    fn push(&mut self, key: VerifyKey) {
        if let Some(kid) = &key.kid {
            self.by_kid
                .entry(kid.clone())
                .or_default()
                .push(self.keys.len());
        }
        self.keys.push(key);
    }

    fn parse(text: &str) -> Result<(Self, Vec<JwksError>), JwksError> {
        if text.len() > MAX_JWKS_BYTES {
            return Err(JwksError::TooLarge {
                size: text.len(),
                limit: MAX_JWKS_BYTES,
            });
        }
        let doc: Value =
            serde_json::from_str(text).map_err(|e| JwksError::NotJson(e.to_string()))?;
        Self::parse_value(&doc)
    }

    fn parse_value(doc: &Value) -> Result<(Self, Vec<JwksError>), JwksError> {
        let entries = doc
            .get("keys")
            .and_then(Value::as_array)
            .ok_or(JwksError::NoKeysArray)?;
        let mut set = Self::new();
        let mut skipped = Vec::new();
        for entry in entries {
            match parse_jwk(entry) {
                Ok(Some(key)) => {
                    if set.len() >= MAX_KEYS {
                        return Err(JwksError::TooManyKeys { limit: MAX_KEYS });
                    }
                    set.push(key);
                }
                Ok(None) => {}
                Err(e) => skipped.push(e),
            }
        }
        if set.is_empty() && skipped.is_empty() {
            return Err(JwksError::NoUsableKeys);
        }
        Ok((set, skipped))
    }
}

/// One JWK: `Ok(None)` when it is not a signature key (ignored), an error when it is one that
/// cannot be used.
fn parse_jwk(entry: &Value) -> Result<Option<VerifyKey>, JwksError> {
    let obj = entry.as_object().ok_or_else(|| JwksError::BadKey {
        kid: "(no kid)".into(),
        detail: "entry is not a JSON object".into(),
    })?;
    let kid = match obj.get("kid") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) if !s.is_empty() && s.len() <= MAX_KID_BYTES => Some(s.clone()),
        Some(_) => {
            return Err(JwksError::BadKey {
                kid: "(no kid)".into(),
                detail: format!("kid must be a string of 1 to {MAX_KID_BYTES} bytes"),
            });
        }
    };
    let name = kid.clone().unwrap_or_else(|| "(no kid)".into());
    let bad = |detail: String| JwksError::BadKey {
        kid: name.clone(),
        detail,
    };

    // Only signature keys: `use` other than `sig`, or `key_ops` without `verify`, are skipped.
    match obj.get("use") {
        None | Some(Value::Null) => {}
        Some(Value::String(u)) if u == "sig" => {}
        Some(_) => return Ok(None),
    }
    if let Some(ops) = obj.get("key_ops") {
        let verifies = ops
            .as_array()
            .is_some_and(|ops| ops.iter().any(|op| op.as_str() == Some("verify")));
        if !verifies {
            return Ok(None);
        }
    }

    let kty = obj
        .get("kty")
        .and_then(Value::as_str)
        .ok_or_else(|| bad("no kty".into()))?;
    let param = |field: &str| -> Result<Vec<u8>, JwksError> {
        let text = obj
            .get(field)
            .and_then(Value::as_str)
            .ok_or_else(|| bad(format!("{kty} key has no {field:?} parameter")))?;
        URL_SAFE_NO_PAD
            .decode(text)
            .map_err(|_| bad(format!("{field:?} is not unpadded base64url")))
    };
    let crv = || -> Result<&str, JwksError> {
        obj.get("crv")
            .and_then(Value::as_str)
            .ok_or_else(|| bad(format!("{kty} key has no crv")))
    };

    let (alg, key) = match kty {
        "RSA" => {
            let n = param("n")?;
            let e = param("e")?;
            let public = rsa::RsaPublicKey::new(
                rsa::BigUint::from_bytes_be(&n),
                rsa::BigUint::from_bytes_be(&e),
            )
            .map_err(|err| bad(format!("not a usable RSA public key: {err}")))?;
            let bits = rsa::traits::PublicKeyParts::n(&public).bits();
            if bits < MIN_RSA_BITS {
                return Err(bad(format!(
                    "RSA key of {bits} bits is too small (at least {MIN_RSA_BITS})"
                )));
            }
            (SigAlg::RS256, DecodingKey::from_rsa_raw_components(&n, &e))
        }
        "EC" => {
            let curve = crv()?;
            if curve != "P-256" {
                return Err(JwksError::UnsupportedCurve {
                    kid: name,
                    kty: kty.into(),
                    crv: curve.into(),
                });
            }
            let x = param("x")?;
            let y = param("y")?;
            if x.len() != 32 || y.len() != 32 {
                return Err(bad("P-256 x and y must be 32 bytes each".into()));
            }
            let mut point = Vec::with_capacity(65);
            point.push(0x04);
            point.extend_from_slice(&x);
            point.extend_from_slice(&y);
            p256::PublicKey::from_sec1_bytes(&point)
                .map_err(|_| bad("x, y is not a point on P-256".into()))?;
            (SigAlg::ES256, DecodingKey::from_ec_der(&point))
        }
        "OKP" => {
            let curve = crv()?;
            if curve != "Ed25519" {
                return Err(JwksError::UnsupportedCurve {
                    kid: name,
                    kty: kty.into(),
                    crv: curve.into(),
                });
            }
            let x = param("x")?;
            let bytes: [u8; 32] = x
                .as_slice()
                .try_into()
                .map_err(|_| bad("Ed25519 x must be 32 bytes".into()))?;
            let public = ed25519_dalek::VerifyingKey::from_bytes(&bytes)
                .map_err(|_| bad("x is not an Ed25519 public key".into()))?;
            if public.is_weak() {
                return Err(bad("x is a weak (small-order) Ed25519 key".into()));
            }
            (SigAlg::EdDSA, DecodingKey::from_ed_der(&bytes))
        }
        other => {
            return Err(JwksError::UnsupportedKeyType {
                kid: name,
                kty: other.into(),
            });
        }
    };

    match obj.get("alg") {
        None | Some(Value::Null) => {}
        Some(Value::String(a)) if a == alg.name() => {}
        // RFC 9864's fully specified name for the same algorithm.
        Some(Value::String(a)) if alg == SigAlg::EdDSA && a == "Ed25519" => {}
        Some(other) => {
            return Err(JwksError::UnsupportedAlg {
                kid: name,
                kty: kty.into(),
                alg: other
                    .as_str()
                    .map_or_else(|| other.to_string(), str::to_string),
                expected: alg,
            });
        }
    }

    Ok(Some(VerifyKey {
        kid,
        alg,
        issuer: None,
        key,
    }))
}

/// Where a key set comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JwksSource {
    /// A local JWKS file, read with [`KeySet::from_file`].
    File(PathBuf),
    /// A `jwks_uri`; the gateway fetches it and passes the text to [`KeySet::from_jwks_json`].
    Url(String),
}

impl JwksSource {
    /// Reads a configured source: `https://…` (or `http://` to a loopback host, for tests) is a
    /// URL, `file://…` or a plain path is a file; any other scheme is refused.
    pub fn parse(text: &str) -> Result<Self, JwksError> {
        let text = text.trim();
        if text.is_empty() {
            return Err(JwksError::BadSource(text.into(), "empty"));
        }
        let lower = text.to_ascii_lowercase();
        if lower.starts_with("https://") {
            if text.len() <= "https://".len() {
                return Err(JwksError::BadSource(text.into(), "no host"));
            }
            return Ok(Self::Url(text.into()));
        }
        if let Some(rest) = lower.strip_prefix("http://") {
            let host_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
            let authority = &rest[..host_end];
            let host = match authority.strip_prefix('[') {
                Some(v6) => v6.split(']').next().unwrap_or(""),
                None => authority.split(':').next().unwrap_or(""),
            };
            let loopback = host == "localhost"
                || host == "::1"
                || host
                    .parse::<std::net::Ipv4Addr>()
                    .is_ok_and(|ip| ip.is_loopback());
            return match loopback {
                true => Ok(Self::Url(text.into())),
                false => Err(JwksError::BadSource(
                    text.into(),
                    "plain http is only allowed to a loopback host; use https",
                )),
            };
        }
        if lower.starts_with("file://") {
            let path = &text["file://".len()..];
            if path.is_empty() {
                return Err(JwksError::BadSource(text.into(), "no path"));
            }
            return Ok(Self::File(PathBuf::from(path)));
        }
        if text.contains("://") {
            return Err(JwksError::BadSource(
                text.into(),
                "unknown scheme (https:// or a file path)",
            ));
        }
        Ok(Self::File(PathBuf::from(text)))
    }

    /// Whether the set has to be fetched over the network.
    pub fn is_remote(&self) -> bool {
        matches!(self, Self::Url(_))
    }

    /// Loads a file source; `None` for a URL (the caller fetches those).
    pub fn load_file(&self) -> Option<Result<KeySet, JwksError>> {
        match self {
            Self::File(path) => Some(KeySet::from_file(path)),
            Self::Url(_) => None,
        }
    }
}

impl FromStr for JwksSource {
    type Err = JwksError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl fmt::Display for JwksSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::File(path) => write!(f, "{}", path.display()),
            Self::Url(url) => f.write_str(url),
        }
    }
}

/// Rate limit for JWKS refetches triggered by unknown key ids: at most one per interval, so a
/// stream of tokens with made-up `kid`s cannot turn the gateway into a load generator against
/// the identity provider.
#[derive(Debug, Clone)]
pub struct RefreshGate {
    min_interval: i64,
    last: Option<i64>,
}

impl RefreshGate {
    /// Default spacing between refetches.
    pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(60);

    /// A gate letting one refetch through per `min_interval`.
    pub fn new(min_interval: Duration) -> Self {
        Self {
            min_interval: i64::try_from(min_interval.as_secs()).unwrap_or(i64::MAX),
            last: None,
        }
    }

    /// Whether a refetch may start now; if so, records it.
    pub fn try_acquire(&mut self, now_unix: i64) -> bool {
        let open = match self.last {
            None => true,
            // A clock that went backwards also reopens the gate.
            Some(last) => now_unix < last || now_unix.saturating_sub(last) >= self.min_interval,
        };
        if open {
            self.last = Some(now_unix);
        }
        open
    }
}

impl Default for RefreshGate {
    fn default() -> Self {
        Self::new(Self::DEFAULT_INTERVAL)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ED_X: &str = "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo";

    fn okp(kid: &str, x: &str) -> Value {
        serde_json::json!({"kty": "OKP", "crv": "Ed25519", "kid": kid, "x": x, "use": "sig"})
    }

    #[test]
    fn parses_okp_and_ignores_enc_keys() {
        let doc = serde_json::json!({"keys": [
            okp("a", ED_X),
            {"kty": "RSA", "use": "enc", "n": "AQAB", "e": "AQAB"},
            {"kty": "oct", "key_ops": ["encrypt"], "k": "AAAA"},
        ]});
        let set = KeySet::from_jwks_value(&doc).expect("parses");
        assert_eq!(set.len(), 1);
        assert!(set.contains_kid("a"));
        assert_eq!(set.keys()[0].alg(), SigAlg::EdDSA);
    }

    #[test]
    fn refuses_unsupported_types_and_curves() {
        let oct = serde_json::json!({"keys": [{"kty": "oct", "kid": "s", "k": "AAAA"}]});
        assert!(matches!(
            KeySet::from_jwks_value(&oct),
            Err(JwksError::UnsupportedKeyType { .. })
        ));
        let p384 = serde_json::json!({"keys": [{"kty": "EC", "crv": "P-384", "kid": "p", "x": "AA", "y": "AA"}]});
        assert!(matches!(
            KeySet::from_jwks_value(&p384),
            Err(JwksError::UnsupportedCurve { .. })
        ));
        let x448 =
            serde_json::json!({"keys": [{"kty": "OKP", "crv": "Ed448", "kid": "p", "x": "AA"}]});
        let err = KeySet::from_jwks_value(&x448).expect_err("refused");
        assert!(err.to_string().contains("Ed448"), "{err}");
    }

    #[test]
    fn refuses_wrong_sizes_and_alg() {
        let short = serde_json::json!({"keys": [okp("a", "AAAA")]});
        assert!(matches!(
            KeySet::from_jwks_value(&short),
            Err(JwksError::BadKey { .. })
        ));
        let mut k = okp("a", ED_X);
        k["alg"] = "RS256".into();
        let doc = serde_json::json!({"keys": [k]});
        assert!(matches!(
            KeySet::from_jwks_value(&doc),
            Err(JwksError::UnsupportedAlg { .. })
        ));
    }

    #[test]
    fn lenient_skips_bad_keys_but_needs_one() {
        let doc = serde_json::json!({"keys": [okp("a", ED_X), {"kty": "EC", "crv": "P-521", "kid": "b", "x": "AA", "y": "AA"}]});
        let (set, skipped) =
            KeySet::from_jwks_json_lenient(&doc.to_string()).expect("one key usable");
        assert_eq!(set.len(), 1);
        assert_eq!(skipped.len(), 1);
        let none = serde_json::json!({"keys": [{"kty": "EC", "crv": "P-521", "kid": "b", "x": "AA", "y": "AA"}]});
        assert!(KeySet::from_jwks_json_lenient(&none.to_string()).is_err());
        assert!(matches!(
            KeySet::from_jwks_json("{\"keys\": []}"),
            Err(JwksError::NoUsableKeys)
        ));
        assert!(matches!(
            KeySet::from_jwks_json("[]"),
            Err(JwksError::NoKeysArray)
        ));
        assert!(matches!(
            KeySet::from_jwks_json("{"),
            Err(JwksError::NotJson(_))
        ));
    }

    #[test]
    fn candidate_lookup() {
        let doc = serde_json::json!({"keys": [okp("a", ED_X)]});
        let set = KeySet::from_jwks_value(&doc).expect("parses");
        assert_eq!(
            set.candidates(Some("a"), SigAlg::EdDSA).map(|c| c.len()),
            Ok(1)
        );
        assert_eq!(
            set.candidates(Some("a"), SigAlg::RS256).map(|c| c.len()),
            Err(LookupError::WrongAlgForKid(SigAlg::EdDSA))
        );
        assert_eq!(
            set.candidates(Some("zz"), SigAlg::EdDSA).map(|c| c.len()),
            Err(LookupError::UnknownKid)
        );
        assert_eq!(
            set.candidates(None, SigAlg::ES256).map(|c| c.len()),
            Err(LookupError::NoKeyForAlg)
        );
        assert_eq!(
            set.candidates(Some("a"), SigAlg::HS256).map(|c| c.len()),
            Err(LookupError::HmacNotConfigured)
        );
    }

    #[test]
    fn weak_secret_refused() {
        assert!(matches!(
            KeySet::with_hs256_secret(b"short"),
            Err(JwksError::WeakSecret { .. })
        ));
        let set = KeySet::with_hs256_secret([7u8; 32]).expect("long enough");
        assert!(set.has_hs256());
    }

    #[test]
    fn sources() {
        assert_eq!(
            JwksSource::parse("https://idp.example.com/jwks").ok(),
            Some(JwksSource::Url("https://idp.example.com/jwks".into()))
        );
        assert!(JwksSource::parse("http://127.0.0.1:8080/jwks").is_ok());
        assert!(JwksSource::parse("http://localhost/jwks").is_ok());
        assert!(JwksSource::parse("http://[::1]:9/jwks").is_ok());
        assert!(JwksSource::parse("http://idp.example.com/jwks").is_err());
        assert!(JwksSource::parse("http://localhost.evil.com/jwks").is_err());
        assert!(JwksSource::parse("ftp://x/y").is_err());
        assert_eq!(
            JwksSource::parse("file:///etc/jwks.json").ok(),
            Some(JwksSource::File("/etc/jwks.json".into()))
        );
        assert_eq!(
            JwksSource::parse("keys/jwks.json").ok(),
            Some(JwksSource::File("keys/jwks.json".into()))
        );
        assert!(JwksSource::parse("https://x").is_ok_and(|s| s.is_remote()));
    }

    #[test]
    fn refresh_gate() {
        let mut gate = RefreshGate::new(Duration::from_secs(60));
        assert!(gate.try_acquire(1000));
        assert!(!gate.try_acquire(1010));
        assert!(!gate.try_acquire(1059));
        assert!(gate.try_acquire(1060));
        assert!(gate.try_acquire(10), "clock went back");
    }
}
