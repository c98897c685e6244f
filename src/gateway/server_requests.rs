//! Requests an upstream sends to a client (`sampling/createMessage`, `elicitation/create`,
//! `roots/list`, `ping`) and the client's answers to them. A client may only answer a request
//! the server actually sent on that caller's streams, once, and in the shape the request's
//! method defines; anything else is refused before the upstream sees it. Otherwise a hostile
//! client could feed an upstream "answers" it never asked for (a forged model completion, a
//! user's consent to an elicitation nobody saw).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde_json::Value;

/// Outstanding server requests per audience older than this are forgotten.
const TTL: Duration = Duration::from_secs(15 * 60);
/// At most this many outstanding requests per audience (the oldest go first).
const MAX_PER_AUDIENCE: usize = 256;

/// Why a client's response was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BadAnswer {
    /// No such request is outstanding for this caller.
    #[error("the server sent this caller no request with id {0} (or it was answered already)")]
    Unsolicited(String),
    /// The result does not have the shape the request's method defines.
    #[error("the answer to {method} is malformed: {why}")]
    Malformed {
        /// The request's method.
        method: String,
        /// What is wrong.
        why: String,
    },
}

/// One caller's outstanding requests: the id's JSON text to (method, when sent).
type Outstanding = HashMap<String, (String, Instant)>;

/// The outstanding server-to-client requests of every caller.
#[derive(Debug, Default)]
pub struct ServerRequests {
    inner: Mutex<HashMap<String, Outstanding>>,
}

impl ServerRequests {
    /// Notes a request the upstream sent to `audience` (called for every message a reviewer
    /// passes on that has a method and an id).
    pub fn sent(&self, audience: &str, id: &Value, method: &str) {
        if audience.is_empty() {
            return;
        }
        let mut inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        let pending = inner.entry(audience.to_string()).or_default();
        pending.retain(|_, (_, at)| now.duration_since(*at) < TTL);
        if pending.len() >= MAX_PER_AUDIENCE
            && let Some(oldest) = pending
                .iter()
                .min_by_key(|(_, (_, at))| *at)
                .map(|(k, _)| k.clone())
        {
            pending.remove(&oldest);
        }
        pending.insert(id.to_string(), (method.to_string(), now));
    }

    /// Checks a client's response (`message` is the whole JSON-RPC response) and, when it
    /// answers an outstanding request, marks that request answered.
    pub fn answer(&self, audience: &str, id: &Value, message: &Value) -> Result<(), BadAnswer> {
        let mut inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let key = id.to_string();
        let method = inner
            .get_mut(audience)
            .and_then(|pending| pending.remove(&key))
            .filter(|(_, at)| at.elapsed() < TTL)
            .map(|(method, _)| method)
            .ok_or_else(|| BadAnswer::Unsolicited(key.chars().take(80).collect()))?;
        drop(inner);
        if message.get("error").is_some() {
            return match message["error"].get("code").and_then(Value::as_i64) {
                Some(_) => Ok(()),
                None => Err(malformed(&method, "an error without an integer code")),
            };
        }
        let result = message.get("result").unwrap_or(&Value::Null);
        check_shape(&method, result).map_err(|why| malformed(&method, why))
    }

    /// Forgets a caller (its session ended).
    pub fn forget(&self, audience: &str) {
        self.inner
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(audience);
    }
}

fn malformed(method: &str, why: &str) -> BadAnswer {
    BadAnswer::Malformed {
        method: method.to_string(),
        why: why.to_string(),
    }
}

/// The shape each method's result must have (MCP 2025-11-25 schema, the fields a server
/// relies on).
fn check_shape(method: &str, result: &Value) -> Result<(), &'static str> {
    if !result.is_object() {
        return Err("the result is not an object");
    }
    match method {
        "sampling/createMessage" => {
            if !matches!(result["role"].as_str(), Some("assistant" | "user")) {
                return Err("role must be \"assistant\" or \"user\"");
            }
            if result["model"].as_str().is_none() {
                return Err("model must be a string");
            }
            match &result["content"] {
                Value::Object(c) if c.get("type").and_then(Value::as_str).is_some() => Ok(()),
                Value::Array(items)
                    if !items.is_empty()
                        && items
                            .iter()
                            .all(|c| c.get("type").and_then(Value::as_str).is_some()) =>
                {
                    Ok(())
                }
                _ => Err("content must be a content block (or a list of them) with a type"),
            }
        }
        "elicitation/create" => {
            match result["action"].as_str() {
                Some("accept") => {}
                Some("decline" | "cancel") => return Ok(()),
                _ => return Err("action must be accept, decline or cancel"),
            }
            match result.get("content") {
                None | Some(Value::Object(_)) => Ok(()),
                Some(_) => Err("content must be an object"),
            }
        }
        "roots/list" => match result["roots"].as_array() {
            Some(roots) if roots.iter().all(|r| r["uri"].as_str().is_some()) => Ok(()),
            _ => Err("roots must be a list of objects with a uri"),
        },
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn only_an_outstanding_request_may_be_answered_once_in_its_shape() {
        let r = ServerRequests::default();
        let id = json!("s-1");
        r.sent("alice:sid", &id, "sampling/createMessage");
        let good = json!({"jsonrpc":"2.0","id":"s-1","result":{"role":"assistant","model":"m","content":{"type":"text","text":"hi"}}});
        // Another caller cannot answer alice's request.
        assert!(matches!(
            r.answer("mallory:sid", &id, &good),
            Err(BadAnswer::Unsolicited(_))
        ));
        assert_eq!(r.answer("alice:sid", &id, &good), Ok(()));
        // Once only.
        assert!(r.answer("alice:sid", &id, &good).is_err());
        r.sent("alice:sid", &json!(7), "elicitation/create");
        let forged = json!({"jsonrpc":"2.0","id":7,"result":{"action":"yes please"}});
        assert!(matches!(
            r.answer("alice:sid", &json!(7), &forged),
            Err(BadAnswer::Malformed { .. })
        ));
        r.sent("alice:sid", &json!(8), "roots/list");
        let roots = json!({"jsonrpc":"2.0","id":8,"result":{"roots":[{"uri":"file:///home"}]}});
        assert_eq!(r.answer("alice:sid", &json!(8), &roots), Ok(()));
        r.sent("alice:sid", &json!(9), "roots/list");
        let err = json!({"jsonrpc":"2.0","id":9,"error":{"code":-1,"message":"no"}});
        assert_eq!(r.answer("alice:sid", &json!(9), &err), Ok(()));
        // The id's type matters: "8" is not 8.
        r.sent("alice:sid", &json!(10), "ping");
        assert!(
            r.answer("alice:sid", &json!("10"), &json!({"result":{}}))
                .is_err()
        );
    }
}
