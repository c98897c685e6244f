//! Suppressions: a responder marks one finding a known false positive (this rule on this tool at
//! this definition hash, or this rule on this user) and it stops alerting, while the rule stays on
//! for everything else. A changed definition has another hash and alerts again. The monitor keeps
//! the active suppressions in its store (written atomically with the events that announce them)
//! and publishes each change as a `mcpsoc.suppression.v1` event.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::protocol::events::AlertRefs;
use crate::protocol::{CommandError, CommandErrorCode, EventData};

/// Type name of suppression events.
pub const SUPPRESSION: &str = "mcpsoc.suppression.v1";

/// Store key of the active suppressions.
pub const STORE_KEY: &str = "monitor.suppressions";

/// Whether a suppression is in force.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SuppressionState {
    /// The finding does not alert.
    Active,
    /// Lifted: the finding alerts again.
    Lifted,
}

/// One suppression, as stored and as published (`data` of a `mcpsoc.suppression.v1` event).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Suppression {
    /// `sup-` and 16 hex digits, derived from the rule and subject (suppressing twice is one).
    pub suppression_id: String,
    /// Active or lifted.
    pub state: SuppressionState,
    /// The rule it silences.
    pub rule: String,
    /// Upstream of the tool.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upstream: Option<String>,
    /// The tool.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool: Option<String>,
    /// The tool's definition hash: another hash alerts again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_hash: Option<String>,
    /// The user, for findings about a user rather than a tool.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// Who suppressed (or lifted) it.
    pub by: String,
    /// Why.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Alerts resolved when it was set.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub resolved: Vec<String>,
}

/// What a suppress command asks for, before the monitor checks it.
#[derive(Debug, Clone, Default)]
pub struct Request {
    /// Rule id.
    pub rule: String,
    /// Upstream of the tool.
    pub upstream: Option<String>,
    /// The tool.
    pub tool: Option<String>,
    /// The hash sent, if any.
    pub tool_hash: Option<String>,
    /// The user.
    pub user: Option<String>,
    /// Why.
    pub reason: Option<String>,
}

fn malformed(message: impl Into<String>) -> CommandError {
    CommandError::new(CommandErrorCode::Malformed, message)
}

fn non_empty(v: Option<String>) -> Option<String> {
    v.map(|s| s.trim().to_string()).filter(|s| !s.is_empty())
}

impl Suppression {
    /// Checks a request and builds the suppression. `known_hash` is the definition hash the
    /// monitor knows for the tool, used when the request names none.
    pub fn build(
        request: Request,
        by: &str,
        known_hash: Option<&str>,
    ) -> Result<Suppression, CommandError> {
        let rule = request.rule.trim().to_string();
        if rule.is_empty() || rule.len() > 256 {
            return Err(malformed("a suppression names one rule (1..=256 bytes)"));
        }
        let upstream = non_empty(request.upstream);
        let tool = non_empty(request.tool);
        let user = non_empty(request.user);
        let mut tool_hash = non_empty(request.tool_hash);
        match (&upstream, &tool) {
            (Some(_), Some(_)) => {
                if tool_hash.is_none() {
                    tool_hash = known_hash.map(str::to_string);
                }
                if tool_hash.is_none() {
                    return Err(CommandError::new(
                        CommandErrorCode::NotFound,
                        "the monitor knows no definition hash for this tool: send the tool_hash the suppression is for",
                    ));
                }
            }
            (None, None) if user.is_some() => {
                if tool_hash.is_some() {
                    return Err(malformed("tool_hash needs upstream and tool"));
                }
            }
            _ => {
                return Err(malformed(
                    "a suppression is for one subject: upstream and tool (at a hash), or a user; to silence a rule for everyone, turn it off in [monitor.rules]",
                ));
            }
        }
        let part = |v: &Option<String>| v.clone().unwrap_or_default();
        let digest = Sha256::digest(
            format!(
                "{rule}|{}|{}|{}|{}",
                part(&upstream),
                part(&tool),
                part(&tool_hash),
                part(&user)
            )
            .as_bytes(),
        );
        Ok(Suppression {
            suppression_id: format!("sup-{}", &hex::encode(digest)[..16]),
            state: SuppressionState::Active,
            rule,
            upstream,
            tool,
            tool_hash,
            user,
            by: by.to_string(),
            reason: non_empty(request.reason),
            resolved: Vec::new(),
        })
    }

    /// Whether a finding of `rule` about `refs` is this suppression's. `known_hash` is the
    /// hash the monitor knows for the finding's tool when the finding itself carries none.
    pub fn matches(&self, rule: &str, refs: &AlertRefs, known_hash: Option<&str>) -> bool {
        if self.rule != rule {
            return false;
        }
        let same = |want: &Option<String>, have: &Option<String>| {
            want.is_none() || want.as_deref() == have.as_deref()
        };
        if !same(&self.upstream, &refs.upstream)
            || !same(&self.tool, &refs.tool)
            || !same(&self.user, &refs.user)
        {
            return false;
        }
        match &self.tool_hash {
            None => true,
            Some(hash) => refs.tool_hash.as_deref().or(known_hash) == Some(hash.as_str()),
        }
    }

    /// A one-line description: `rule on upstream/tool at hash` or `rule for user`.
    pub fn subject(&self) -> String {
        match (&self.upstream, &self.tool, &self.user) {
            (Some(u), Some(t), _) => format!(
                "{} on {u}/{t} at {}",
                self.rule,
                self.tool_hash.as_deref().unwrap_or("any definition")
            ),
            (_, _, Some(user)) => format!("{} for {user}", self.rule),
            _ => self.rule.clone(),
        }
    }

    /// The event announcing it.
    pub fn event(&self) -> EventData {
        EventData::Unknown {
            kind: SUPPRESSION.to_string(),
            data: serde_json::to_value(self).unwrap_or_default(),
        }
    }
}

/// The active suppressions, by id.
#[derive(Debug, Default, Clone, Serialize, Deserialize)]
pub struct Suppressions {
    active: BTreeMap<String, Suppression>,
}

impl Suppressions {
    /// Reads the stored set; an unreadable value is an empty set (with a warning).
    pub fn from_bytes(bytes: &[u8]) -> Self {
        serde_json::from_slice(bytes).unwrap_or_else(|e| {
            tracing::warn!(error = %e, "stored suppressions unreadable; starting with none");
            Self::default()
        })
    }

    /// The bytes to store.
    pub fn to_bytes(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }

    /// The active suppression with this id.
    pub fn get(&self, id: &str) -> Option<&Suppression> {
        self.active.get(id)
    }

    /// Adds (or replaces) an active suppression.
    pub fn insert(&mut self, suppression: Suppression) {
        self.active
            .insert(suppression.suppression_id.clone(), suppression);
    }

    /// Removes one; returns it.
    pub fn remove(&mut self, id: &str) -> Option<Suppression> {
        self.active.remove(id)
    }

    /// The suppression silencing this finding, if any.
    pub fn matching(
        &self,
        rule: &str,
        refs: &AlertRefs,
        known_hash: Option<&str>,
    ) -> Option<&Suppression> {
        self.active
            .values()
            .find(|s| s.matches(rule, refs, known_hash))
    }

    /// How many are active.
    pub fn len(&self) -> usize {
        self.active.len()
    }

    /// Whether none is active.
    pub fn is_empty(&self) -> bool {
        self.active.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tool_request(hash: Option<&str>) -> Request {
        Request {
            rule: "poisoning.hidden_instructions".into(),
            upstream: Some("fs".into()),
            tool: Some("read".into()),
            tool_hash: hash.map(str::to_string),
            ..Request::default()
        }
    }

    fn refs(hash: Option<&str>) -> AlertRefs {
        AlertRefs {
            upstream: Some("fs".into()),
            tool: Some("read".into()),
            tool_hash: hash.map(str::to_string),
            ..AlertRefs::default()
        }
    }

    #[test]
    fn a_tool_suppression_holds_for_its_hash_only() {
        let s = Suppression::build(tool_request(Some("sha256:a")), "rita", None).unwrap();
        assert!(s.suppression_id.starts_with("sup-"));
        assert!(s.matches(
            "poisoning.hidden_instructions",
            &refs(Some("sha256:a")),
            None
        ));
        assert!(!s.matches(
            "poisoning.hidden_instructions",
            &refs(Some("sha256:b")),
            None
        ));
        assert!(!s.matches("poisoning.exfiltration", &refs(Some("sha256:a")), None));
        // A finding on a call carries no hash: the monitor's known hash decides.
        assert!(s.matches(
            "poisoning.hidden_instructions",
            &refs(None),
            Some("sha256:a")
        ));
        assert!(!s.matches(
            "poisoning.hidden_instructions",
            &refs(None),
            Some("sha256:b")
        ));
        assert!(!s.matches("poisoning.hidden_instructions", &refs(None), None));
    }

    #[test]
    fn the_known_hash_fills_in_and_a_subject_is_required() {
        let s = Suppression::build(tool_request(None), "rita", Some("sha256:k")).unwrap();
        assert_eq!(s.tool_hash.as_deref(), Some("sha256:k"));
        let e = Suppression::build(tool_request(None), "rita", None).unwrap_err();
        assert_eq!(e.code, CommandErrorCode::NotFound);
        let everyone = Request {
            rule: "behaviour.rate_spike".into(),
            ..Request::default()
        };
        let e = Suppression::build(everyone, "rita", None).unwrap_err();
        assert_eq!(e.code, CommandErrorCode::Malformed);
        let user = Request {
            rule: "behaviour.rate_spike".into(),
            user: Some("dave".into()),
            ..Request::default()
        };
        let s = Suppression::build(user, "rita", None).unwrap();
        let dave = AlertRefs {
            user: Some("dave".into()),
            ..AlertRefs::default()
        };
        assert!(s.matches("behaviour.rate_spike", &dave, None));
        let erin = AlertRefs {
            user: Some("erin".into()),
            ..AlertRefs::default()
        };
        assert!(!s.matches("behaviour.rate_spike", &erin, None));
    }

    #[test]
    fn the_set_round_trips_through_bytes() {
        let mut set = Suppressions::default();
        set.insert(Suppression::build(tool_request(Some("sha256:a")), "rita", None).unwrap());
        let back = Suppressions::from_bytes(&set.to_bytes());
        assert_eq!(back.len(), 1);
        assert!(
            back.matching(
                "poisoning.hidden_instructions",
                &refs(Some("sha256:a")),
                None
            )
            .is_some()
        );
        assert!(Suppressions::from_bytes(b"not json").is_empty());
    }
}
