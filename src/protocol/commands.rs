//! Commands a subscriber sends to a producer, and the answers it gets.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::auth::Role;

/// One command; `action` names the variant on the wire.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "action", rename_all = "snake_case", deny_unknown_fields)]
pub enum Command {
    /// Approve a pending tool definition change; refused unless `proposed_hash` is the hash
    /// pending now.
    ApproveToolChange {
        /// Upstream server name.
        upstream: String,
        /// Tool name.
        tool: String,
        /// The proposed definition hash the approver saw.
        proposed_hash: String,
        /// Optional note.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reason: Option<String>,
    },
    /// Reject a pending tool definition change; bound to the hash like an approval.
    RejectToolChange {
        /// Upstream server name.
        upstream: String,
        /// Tool name.
        tool: String,
        /// The proposed definition hash the approver saw.
        proposed_hash: String,
        /// Optional reason.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reason: Option<String>,
    },
    /// Take a tool out of service at once (containment) until it is approved again.
    BlockTool {
        /// Upstream server name.
        upstream: String,
        /// Tool name.
        tool: String,
        /// Why.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reason: Option<String>,
    },
    /// Revoke a session binding (`user:session` or `user:client`).
    RevokeSession {
        /// The binding key.
        binding: String,
        /// Why.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reason: Option<String>,
    },
    /// Mark an alert acknowledged.
    AcknowledgeAlert {
        /// The alert id.
        alert_id: String,
        /// Optional note.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        note: Option<String>,
    },
    /// Mark an alert resolved.
    ResolveAlert {
        /// The alert id.
        alert_id: String,
        /// Optional note.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        note: Option<String>,
    },
    /// Stop one finding alerting (a known false positive): this rule on this subject only, a
    /// tool at one definition hash (a changed definition alerts again) or a user; the rule
    /// stays on for everything else. Carried out by the monitor, which resolves the matching
    /// open alerts and publishes the suppression as a `mcpsoc.suppression.v1` event.
    SuppressFinding(Box<Suppress>),
    /// Lift a suppression: the finding alerts again.
    Unsuppress {
        /// The suppression id (`sup-…`, in the suppression event and the suppressed alert's note).
        suppression_id: String,
        /// Why.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reason: Option<String>,
    },
}

/// The finding a `suppress_finding` command silences.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Suppress {
    /// The rule id, e.g. `poisoning.hidden_instructions`.
    pub rule: String,
    /// Upstream server of the tool the finding is about.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upstream: Option<String>,
    /// The tool the finding is about.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool: Option<String>,
    /// The tool's definition hash; absent, the monitor uses the definition it knows now.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_hash: Option<String>,
    /// The user the finding is about (findings with no tool, such as a user's rate spike).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// The alert that prompted it (resolved with the suppression).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alert_id: Option<String>,
    /// Why it is a false positive.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

impl Command {
    /// The wire name of the action.
    pub fn action(&self) -> &'static str {
        match self {
            Self::ApproveToolChange { .. } => "approve_tool_change",
            Self::RejectToolChange { .. } => "reject_tool_change",
            Self::BlockTool { .. } => "block_tool",
            Self::RevokeSession { .. } => "revoke_session",
            Self::AcknowledgeAlert { .. } => "acknowledge_alert",
            Self::ResolveAlert { .. } => "resolve_alert",
            Self::SuppressFinding(_) => "suppress_finding",
            Self::Unsuppress { .. } => "unsuppress",
        }
    }

    /// The least role allowed to send it.
    pub fn required_role(&self) -> Role {
        match self {
            Self::ApproveToolChange { .. } | Self::RejectToolChange { .. } => Role::Approver,
            Self::BlockTool { .. }
            | Self::RevokeSession { .. }
            | Self::AcknowledgeAlert { .. }
            | Self::ResolveAlert { .. }
            | Self::SuppressFinding(_)
            | Self::Unsuppress { .. } => Role::Responder,
        }
    }

    /// The command's target, for the audit event.
    pub fn target(&self) -> Value {
        match self {
            Self::ApproveToolChange {
                upstream,
                tool,
                proposed_hash,
                ..
            }
            | Self::RejectToolChange {
                upstream,
                tool,
                proposed_hash,
                ..
            } => {
                serde_json::json!({"upstream": upstream, "tool": tool, "proposed_hash": proposed_hash})
            }
            Self::BlockTool { upstream, tool, .. } => {
                serde_json::json!({"upstream": upstream, "tool": tool})
            }
            Self::RevokeSession { binding, .. } => serde_json::json!({"binding": binding}),
            Self::AcknowledgeAlert { alert_id, .. } | Self::ResolveAlert { alert_id, .. } => {
                serde_json::json!({"alert_id": alert_id})
            }
            Self::SuppressFinding(s) => serde_json::json!({"rule": s.rule,
                "upstream": s.upstream, "tool": s.tool, "tool_hash": s.tool_hash,
                "user": s.user, "alert_id": s.alert_id}),
            Self::Unsuppress { suppression_id, .. } => {
                serde_json::json!({"suppression_id": suppression_id})
            }
        }
    }
}

/// Machine-readable reason a command was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CommandErrorCode {
    /// The caller's role is below the command's.
    Forbidden,
    /// The proposed hash is not the one pending now.
    StaleHash,
    /// The target does not exist (or is not in a state the command applies to).
    NotFound,
    /// The command frame could not be read.
    Malformed,
    /// This producer does not carry out commands of this kind.
    Unsupported,
    /// The owner did not answer in time or failed.
    Unavailable,
    /// The subscriber connected read-only.
    ReadOnly,
}

impl CommandErrorCode {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Forbidden => "forbidden",
            Self::StaleHash => "stale_hash",
            Self::NotFound => "not_found",
            Self::Malformed => "malformed",
            Self::Unsupported => "unsupported",
            Self::Unavailable => "unavailable",
            Self::ReadOnly => "read_only",
        }
    }
}

/// A refused command: code plus a sentence an operator can act on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[error("{}: {message}", code.as_str())]
pub struct CommandError {
    /// Machine-readable code.
    pub code: CommandErrorCode,
    /// What went wrong and what to do.
    pub message: String,
}

impl CommandError {
    /// Builds an error.
    pub fn new(code: CommandErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suppress_reads_flat_and_refuses_unknown_fields() {
        let text = r#"{"action":"suppress_finding","rule":"poisoning.x","upstream":"fs","tool":"read","tool_hash":"sha256:ab","alert_id":"al-1"}"#;
        let command: Command = serde_json::from_str(text).unwrap();
        let Command::SuppressFinding(s) = &command else {
            panic!("{command:?}");
        };
        assert_eq!(s.rule, "poisoning.x");
        assert_eq!(s.tool_hash.as_deref(), Some("sha256:ab"));
        assert_eq!(command.required_role(), Role::Responder);
        let back: Command =
            serde_json::from_str(&serde_json::to_string(&command).unwrap()).unwrap();
        assert_eq!(back, command);
        assert!(
            serde_json::from_str::<Command>(
                r#"{"action":"suppress_finding","rule":"r","user":"u","everyone":true}"#
            )
            .is_err()
        );
        let lift: Command =
            serde_json::from_str(r#"{"action":"unsuppress","suppression_id":"sup-1"}"#).unwrap();
        assert_eq!(lift.action(), "unsuppress");
    }
}
