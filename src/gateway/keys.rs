//! The gateway's token checker: the issuers' keys (a JWKS file, a JWKS URL fetched at start, on
//! a timer and when a token names a key id the set lacks, and an HS256 secret for tests) and a
//! small cache of tokens already verified, so a client that sends the same token on every
//! request pays for one signature check, not one per request.
//!
//! The cache never widens what is accepted: an entry is the result of a full validation of the
//! exact token text, it is used only while the token has not expired (with the policy's
//! leeway), and it is dropped whenever the key set changes.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use http_body_util::BodyExt;
use hyper::{Method, Request, StatusCode};
use sha2::{Digest, Sha256};

use super::body;
use super::upstream::UpstreamClient;
use crate::auth::jwks::{KeySet, MAX_JWKS_BYTES, RefreshGate};
use crate::auth::jwt::{self, JwtPolicy, Rejection, Validated};

/// Verified tokens kept at most; past this the cache starts afresh.
const CACHE_ENTRIES: usize = 8_192;
/// How long one JWKS fetch may take.
const FETCH_TIMEOUT: Duration = Duration::from_secs(10);

/// Why a JWKS URL could not be used.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    /// The request failed or timed out.
    #[error("JWKS fetch from {url} failed: {reason}")]
    Request {
        /// The URL.
        url: String,
        /// What went wrong.
        reason: String,
    },
    /// The identity provider answered with something other than a usable key set.
    #[error("JWKS from {url} is unusable: {reason}")]
    Document {
        /// The URL.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
}

/// The keys in force and the verified-token cache.
pub struct TokenChecker {
    /// Keys from the file and the secret: always part of the set.
    fixed: KeySet,
    url: Option<String>,
    current: RwLock<Arc<KeySet>>,
    gate: Mutex<RefreshGate>,
    cache: Mutex<HashMap<[u8; 32], Validated>>,
}

impl TokenChecker {
    /// A checker over fixed keys, plus keys fetched from `url` when given (see
    /// [`TokenChecker::refresh`]).
    pub fn new(fixed: KeySet, url: Option<String>) -> Self {
        Self {
            current: RwLock::new(Arc::new(fixed.clone())),
            fixed,
            url,
            gate: Mutex::new(RefreshGate::default()),
            cache: Mutex::new(HashMap::new()),
        }
    }

    /// The JWKS URL, when one is configured.
    pub fn url(&self) -> Option<&str> {
        self.url.as_deref()
    }

    /// The keys in force.
    pub fn keys(&self) -> Arc<KeySet> {
        self.current
            .read()
            .map(|k| k.clone())
            .unwrap_or_else(|p| p.into_inner().clone())
    }

    /// Validates a bearer token: from the cache when this exact token was verified before and
    /// has not expired, else fully; a token naming an unknown key id triggers one JWKS refetch
    /// (at most one a minute) and a second try.
    pub async fn validate(
        &self,
        token: &str,
        policy: &JwtPolicy,
        now_unix: i64,
        client: &UpstreamClient,
    ) -> Result<Validated, Rejection> {
        let digest: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        let leeway = i64::try_from(policy.leeway.as_secs()).unwrap_or(0);
        if let Some(hit) = self.cached(&digest, now_unix, leeway) {
            return Ok(hit);
        }
        let keys = self.keys();
        let result = match jwt::validate(token, &keys, policy, now_unix) {
            Err(rejection) if self.wants_refresh(&keys, token, now_unix) => {
                if let Err(e) = self.refresh(client).await {
                    tracing::warn!(error = %e, "JWKS refetch for an unknown key id failed");
                }
                let _ = rejection;
                jwt::validate(token, &self.keys(), policy, now_unix)
            }
            other => other,
        };
        if let Ok(valid) = &result
            && let Ok(mut cache) = self.cache.lock()
        {
            if cache.len() >= CACHE_ENTRIES {
                cache.clear();
            }
            cache.insert(digest, valid.clone());
        }
        result
    }

    fn cached(&self, digest: &[u8; 32], now_unix: i64, leeway: i64) -> Option<Validated> {
        let mut cache = self.cache.lock().ok()?;
        let hit = cache.get(digest)?;
        if now_unix > hit.expires_at.saturating_add(leeway) {
            cache.remove(digest);
            return None;
        }
        Some(hit.clone())
    }

    fn wants_refresh(&self, keys: &KeySet, token: &str, now_unix: i64) -> bool {
        self.url.is_some()
            && keys.refresh_wanted(token).is_some()
            && self.gate.lock().is_ok_and(|mut g| g.try_acquire(now_unix))
    }

    /// Fetches the JWKS URL and puts its keys (with the fixed ones) in force; returns how many
    /// keys are in force. On failure the keys in force stay as they were.
    pub async fn refresh(&self, client: &UpstreamClient) -> Result<usize, FetchError> {
        let Some(url) = &self.url else {
            return Ok(self.keys().len());
        };
        let fetched = fetch(client, url).await?;
        let mut keys = self.fixed.clone();
        keys.extend(fetched);
        let n = keys.len();
        if let Ok(mut current) = self.current.write() {
            *current = Arc::new(keys);
        }
        if let Ok(mut cache) = self.cache.lock() {
            cache.clear();
        }
        Ok(n)
    }
}

/// Fetches and leniently parses a JWKS document (an unsupported key is skipped, not fatal).
async fn fetch(client: &UpstreamClient, url: &str) -> Result<KeySet, FetchError> {
    let request_error = |reason: String| FetchError::Request {
        url: url.to_string(),
        reason,
    };
    let document_error = |reason: String| FetchError::Document {
        url: url.to_string(),
        reason,
    };
    let request = Request::builder()
        .method(Method::GET)
        .uri(url)
        .header(hyper::header::ACCEPT, "application/json")
        .body(body::empty())
        .map_err(|e| request_error(e.to_string()))?;
    let response = tokio::time::timeout(FETCH_TIMEOUT, client.request(request))
        .await
        .map_err(|_| request_error(format!("no answer within {FETCH_TIMEOUT:?}")))?
        .map_err(|e| request_error(e.to_string()))?;
    if response.status() != StatusCode::OK {
        return Err(request_error(format!("HTTP status {}", response.status())));
    }
    let limited = http_body_util::Limited::new(response.into_body(), MAX_JWKS_BYTES);
    let bytes = tokio::time::timeout(FETCH_TIMEOUT, limited.collect())
        .await
        .map_err(|_| request_error(format!("body not complete within {FETCH_TIMEOUT:?}")))?
        .map_err(|e| document_error(format!("{e} (limit {MAX_JWKS_BYTES} bytes)")))?
        .to_bytes();
    let text = std::str::from_utf8(&bytes).map_err(|_| document_error("not UTF-8".into()))?;
    let (keys, skipped) =
        KeySet::from_jwks_json_lenient(text).map_err(|e| document_error(e.to_string()))?;
    for e in skipped {
        tracing::warn!(url, error = %e, "JWKS key skipped");
    }
    Ok(keys)
}
