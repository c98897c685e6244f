//! The typed payloads of every event kind in the contract (`data` of the envelope).
//!
//! Each kind has a versioned type name (`mcpsoc.<kind>.v1`). A newer producer may send kinds or
//! versions this build does not know: they decode to [`EventData::Unknown`] and are kept whole.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Type name of [`ToolCall`] events.
pub const TOOL_CALL: &str = "mcpsoc.tool_call.v1";
/// Type name of [`AuthEvent`] events.
pub const AUTH: &str = "mcpsoc.auth.v1";
/// Type name of [`SessionEvent`] events.
pub const SESSION: &str = "mcpsoc.session.v1";
/// Type name of [`ToolChange`] events.
pub const TOOL_CHANGE: &str = "mcpsoc.tool_change.v1";
/// Type name of [`Alert`] events.
pub const ALERT: &str = "mcpsoc.alert.v1";
/// Type name of [`Heartbeat`] events.
pub const HEARTBEAT: &str = "mcpsoc.heartbeat.v1";
/// Type name of [`CommandAudit`] events.
pub const COMMAND: &str = "mcpsoc.command.v1";
/// Type name of [`Refusal`] events.
pub const REFUSAL: &str = "mcpsoc.refusal.v1";

/// Every type name this build knows, for docs and for `--type` validation.
pub const KNOWN_TYPES: [&str; 7] = [
    TOOL_CALL,
    AUTH,
    SESSION,
    TOOL_CHANGE,
    ALERT,
    HEARTBEAT,
    COMMAND,
];

/// Where in its life a tool call is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CallPhase {
    /// The request arrived and was decided.
    Started,
    /// The response (or refusal) went back.
    Finished,
}

/// The gateway's decision on a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Decision {
    /// Forwarded upstream.
    Allow,
    /// Refused at the gateway.
    Deny,
}

/// The client software as it names itself (`clientInfo` or `_meta`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClientInfo {
    /// Client name, e.g. `claude-desktop`.
    pub name: String,
    /// Client version, if given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// The OAuth client id from the token, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
}

/// One `tools/call` seen by a gateway, as it started and as it finished.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ToolCall {
    /// Correlates the started and finished events of one call.
    pub call_id: String,
    /// Started or finished.
    pub phase: CallPhase,
    /// Token subject.
    pub user: String,
    /// Binding key: `user:session` (2025-11-25) or `user:client` (2026-07-28).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session: Option<String>,
    /// The calling client.
    #[serde(default)]
    pub client: ClientInfo,
    /// MCP protocol revision of the request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub protocol_version: Option<String>,
    /// The configured upstream server name.
    pub upstream: String,
    /// Tool name.
    pub tool: String,
    /// Call arguments, secrets already redacted by the producer.
    #[serde(default)]
    pub arguments: Value,
    /// Short text of the result (finished only), redacted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result_summary: Option<String>,
    /// Size of the full result in bytes (finished only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result_bytes: Option<u64>,
    /// Whether the result was an error (finished only).
    #[serde(default)]
    pub is_error: bool,
    /// Milliseconds from request to response (finished only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latency_ms: Option<f64>,
    /// Allow or deny.
    pub decision: Decision,
    /// Why, especially for a deny.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// Accepted or rejected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AuthOutcome {
    /// The token was valid for this resource.
    Accepted,
    /// The token was refused; see the reason.
    Rejected,
}

/// Why a token was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AuthFailure {
    /// No bearer token at all.
    MissingToken,
    /// Not a well-formed JWT.
    Malformed,
    /// The signature did not verify against any trusted key.
    BadSignature,
    /// `exp` is in the past.
    Expired,
    /// `nbf` is in the future.
    NotYetValid,
    /// `aud` is not this resource (token passthrough / confused deputy).
    WrongAudience,
    /// `iss` is not a trusted issuer.
    WrongIssuer,
    /// A required scope is missing.
    InsufficientScope,
    /// The subject and client were revoked and the token predates it.
    Revoked,
}

/// One authentication attempt.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuthEvent {
    /// Accepted or rejected.
    pub outcome: AuthOutcome,
    /// Why it was rejected.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<AuthFailure>,
    /// Token subject, when the token could be read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// OAuth client id, when present.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    /// The audience the token carried.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audience: Option<String>,
    /// The issuer the token carried.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub issuer: Option<String>,
    /// The upstream the request was for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upstream: Option<String>,
    /// The peer address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remote: Option<String>,
    /// Human detail, never the token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

/// What happened to a session binding.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SessionChange {
    /// A new binding of user and session (or client).
    Bound,
    /// Activity on an existing binding (periodic, carries counts).
    Seen,
    /// Idle timeout or absolute lifetime reached.
    Expired,
    /// Revoked by a command.
    Revoked,
    /// Another identity presented this session id and was refused; binding untouched.
    ReuseRefused,
    /// The client ended the session (DELETE).
    Ended,
}

/// A change of a session binding.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SessionEvent {
    /// `user:session` or `user:client`.
    pub binding: String,
    /// What happened.
    pub change: SessionChange,
    /// Token subject that owns the binding.
    pub user: String,
    /// The gateway's session id (2025-11-25); absent for stateless bindings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_id: Option<String>,
    /// The client.
    #[serde(default)]
    pub client: ClientInfo,
    /// Upstream server name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upstream: Option<String>,
    /// Protocol revision.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub protocol_version: Option<String>,
    /// When the binding was created (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created: Option<String>,
    /// When it expires (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires: Option<String>,
    /// Calls made on this binding so far.
    #[serde(default)]
    pub call_count: u64,
    /// Refused reuse attempts so far.
    #[serde(default)]
    pub reuse_attempts: u64,
    /// For `reuse_refused`: the other identity that tried.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub other_user: Option<String>,
    /// Who or what caused the change, and why.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// For `revoked` (on the binding a command named): the identity the revocation cuts off.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revokes: Option<Revocation>,
}

/// An identity cut off at a gateway: every token of `subject` (from `issuer`, for
/// `client_id`, when given) issued at or before `before` is refused, on both revisions and
/// whatever client name a request declares. Without `client_id` it is the subject's whole
/// access through that gateway (the token proved no client).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Revocation {
    /// The token's issuer (absent: any trusted issuer).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub issuer: Option<String>,
    /// The token's subject.
    pub subject: String,
    /// The client the token proves (`client_id`/`azp`); absent: every client.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    /// Unix seconds: tokens issued (`iat`) at or before it are refused; tokens without `iat`
    /// always are.
    pub before: i64,
}

impl Revocation {
    /// What it cuts off, in words for a responder.
    pub fn describe(&self) -> String {
        match &self.client_id {
            Some(client) => format!(
                "tokens of {} for client {client} issued before the revocation",
                self.subject
            ),
            None => format!(
                "all of {}'s tokens issued before the revocation (the token proved no client)",
                self.subject
            ),
        }
    }
}

/// Where a tool definition change stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ChangeStatus {
    /// Awaiting an approver.
    Pending,
    /// Approved: the proposed definition is the new pin.
    Approved,
    /// Rejected: the tool stays hidden and uncallable.
    Rejected,
    /// Taken out of service by containment until approved again.
    Blocked,
}

/// A tool definition that differs from its pin (or is new), and its decision.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ToolChange {
    /// Upstream server name.
    pub upstream: String,
    /// Tool name.
    pub tool: String,
    /// Pending, approved, rejected or blocked.
    pub status: ChangeStatus,
    /// The approved definition, absent for a brand-new tool.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous: Option<Value>,
    /// The definition the server now offers.
    pub proposed: Value,
    /// Canonical hash of `previous`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous_hash: Option<String>,
    /// Canonical hash of `proposed`: approvals name it.
    pub proposed_hash: String,
    /// Who decided (subscriber name), for approved / rejected / blocked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decided_by: Option<String>,
    /// Why.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// Alert severity, lowest first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    /// Worth knowing.
    Info,
    /// Low.
    Low,
    /// Medium.
    Medium,
    /// High.
    High,
    /// Act now.
    Critical,
}

/// Alert triage status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AlertStatus {
    /// Nobody has looked yet.
    New,
    /// A responder is on it.
    Acknowledged,
    /// Done.
    Resolved,
}

/// The OWASP MCP Top 10 (2025) categories an alert maps to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum OwaspMcp {
    /// Token mismanagement and secret exposure.
    #[serde(rename = "MCP01")]
    Mcp01TokenMismanagement,
    /// Privilege escalation via scope creep.
    #[serde(rename = "MCP02")]
    Mcp02ScopeCreep,
    /// Tool poisoning.
    #[serde(rename = "MCP03")]
    Mcp03ToolPoisoning,
    /// Software supply chain attacks and dependency tampering.
    #[serde(rename = "MCP04")]
    Mcp04SupplyChain,
    /// Command injection and execution.
    #[serde(rename = "MCP05")]
    Mcp05CommandInjection,
    /// Intent flow subversion (prompt injection through context).
    #[serde(rename = "MCP06")]
    Mcp06IntentFlowSubversion,
    /// Insufficient authentication and authorization.
    #[serde(rename = "MCP07")]
    Mcp07InsufficientAuth,
    /// Lack of audit and telemetry.
    #[serde(rename = "MCP08")]
    Mcp08LackOfAudit,
    /// Shadow MCP servers.
    #[serde(rename = "MCP09")]
    Mcp09ShadowServers,
    /// Context injection and over-sharing.
    #[serde(rename = "MCP10")]
    Mcp10ContextOverSharing,
}

impl OwaspMcp {
    /// The category's title, for display.
    pub fn title(self) -> &'static str {
        match self {
            Self::Mcp01TokenMismanagement => "MCP01 Token Mismanagement & Secret Exposure",
            Self::Mcp02ScopeCreep => "MCP02 Privilege Escalation via Scope Creep",
            Self::Mcp03ToolPoisoning => "MCP03 Tool Poisoning",
            Self::Mcp04SupplyChain => "MCP04 Software Supply Chain Attacks",
            Self::Mcp05CommandInjection => "MCP05 Command Injection & Execution",
            Self::Mcp06IntentFlowSubversion => "MCP06 Intent Flow Subversion",
            Self::Mcp07InsufficientAuth => "MCP07 Insufficient Authentication & Authorization",
            Self::Mcp08LackOfAudit => "MCP08 Lack of Audit and Telemetry",
            Self::Mcp09ShadowServers => "MCP09 Shadow MCP Servers",
            Self::Mcp10ContextOverSharing => "MCP10 Context Injection & Over-Sharing",
        }
    }
}

/// The offending text of an alert, with the exact span that triggered it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Evidence {
    /// Where it was found, e.g. `tool.description` or `result.content[0].text`.
    pub field: String,
    /// An excerpt around the finding (secrets redacted).
    pub excerpt: String,
    /// Byte offset of the offending span within `excerpt`.
    pub start: usize,
    /// Byte offset just past the offending span within `excerpt`.
    pub end: usize,
}

/// A pointer to a stored event: (source, sequence).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct EventRef {
    /// Source id.
    pub source: String,
    /// Sequence within the source.
    pub sequence: u64,
}

/// What an alert is about.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct AlertRefs {
    /// Binding key of the session involved.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session: Option<String>,
    /// User involved.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// Upstream server involved.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upstream: Option<String>,
    /// Tool involved.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool: Option<String>,
    /// Canonical hash of the tool definition involved.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_hash: Option<String>,
    /// The triggering events.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub events: Vec<EventRef>,
}

/// A detector finding, as first raised and as its status changes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Alert {
    /// Stable id: every status change of one alert carries the same id.
    pub alert_id: String,
    /// Detector rule id, e.g. `poisoning.hidden_instructions`.
    pub rule: String,
    /// Severity.
    pub severity: Severity,
    /// New, acknowledged or resolved.
    pub status: AlertStatus,
    /// OWASP MCP Top 10 category.
    pub owasp: OwaspMcp,
    /// One human sentence.
    pub summary: String,
    /// The offending span.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub evidence: Option<Evidence>,
    /// What it is about.
    #[serde(default)]
    pub refs: AlertRefs,
    /// Findings folded into this alert.
    #[serde(default = "one")]
    pub count: u64,
    /// Who changed the status, and their note.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub by: Option<String>,
    /// Note on the status change.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

fn one() -> u64 {
    1
}

/// Liveness of a producer, appended periodically.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Heartbeat {
    /// Seconds since the producer started.
    pub uptime_secs: u64,
    /// Connected subscribers.
    pub subscribers: u64,
}

/// Outcome of a command as recorded in the producer's log.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CommandOutcome {
    /// Carried out.
    Accepted,
    /// Refused; see the reason.
    Refused,
}

/// Every command a producer received, accepted or refused (the audit of the command channel).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CommandAudit {
    /// The subscriber's command id.
    pub command_id: String,
    /// The action, e.g. `approve_tool_change`.
    pub action: String,
    /// Subscriber name from the token table.
    pub by: String,
    /// Role granted to that subscriber.
    pub role: String,
    /// Accepted or refused.
    pub outcome: CommandOutcome,
    /// Error code when refused (`forbidden`, `stale_hash`, ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
    /// Human reason or result.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    /// The command's target as given (tool, session, alert).
    #[serde(default)]
    pub target: Value,
}

/// A request the gateway refused before it reached an upstream for a reason other than the
/// token (bad origin, header mismatch, oversized body, malformed JSON-RPC, overload...).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Refusal {
    /// HTTP status sent.
    pub status: u16,
    /// Machine-readable reason, e.g. `header_mismatch`, `bad_origin`, `body_too_large`.
    pub reason: String,
    /// Human detail.
    pub detail: String,
    /// The upstream the request was for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upstream: Option<String>,
    /// The JSON-RPC method, when readable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub method: Option<String>,
    /// Token subject, when authenticated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// The peer address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remote: Option<String>,
}

/// A decoded event payload.
#[derive(Debug, Clone, PartialEq)]
pub enum EventData {
    /// `mcpsoc.tool_call.v1`
    ToolCall(ToolCall),
    /// `mcpsoc.auth.v1`
    Auth(AuthEvent),
    /// `mcpsoc.session.v1`
    Session(SessionEvent),
    /// `mcpsoc.tool_change.v1`
    ToolChange(ToolChange),
    /// `mcpsoc.alert.v1`
    Alert(Alert),
    /// `mcpsoc.heartbeat.v1`
    Heartbeat(Heartbeat),
    /// `mcpsoc.command.v1`
    Command(CommandAudit),
    /// `mcpsoc.refusal.v1`
    Refusal(Refusal),
    /// A type this build does not know, or a payload that does not fit its type: kept raw.
    Unknown {
        /// The type name as sent.
        kind: String,
        /// The payload as sent.
        data: Value,
    },
}

impl EventData {
    /// The versioned type name.
    pub fn type_name(&self) -> &str {
        match self {
            Self::ToolCall(_) => TOOL_CALL,
            Self::Auth(_) => AUTH,
            Self::Session(_) => SESSION,
            Self::ToolChange(_) => TOOL_CHANGE,
            Self::Alert(_) => ALERT,
            Self::Heartbeat(_) => HEARTBEAT,
            Self::Command(_) => COMMAND,
            Self::Refusal(_) => REFUSAL,
            Self::Unknown { kind, .. } => kind,
        }
    }

    /// The payload as JSON.
    pub fn to_value(&self) -> Value {
        let encoded = match self {
            Self::ToolCall(d) => serde_json::to_value(d),
            Self::Auth(d) => serde_json::to_value(d),
            Self::Session(d) => serde_json::to_value(d),
            Self::ToolChange(d) => serde_json::to_value(d),
            Self::Alert(d) => serde_json::to_value(d),
            Self::Heartbeat(d) => serde_json::to_value(d),
            Self::Command(d) => serde_json::to_value(d),
            Self::Refusal(d) => serde_json::to_value(d),
            Self::Unknown { data, .. } => return data.clone(),
        };
        encoded.unwrap_or(Value::Null)
    }

    /// Decodes a payload by type name; anything that does not fit becomes `Unknown`.
    pub fn from_parts(kind: &str, data: &Value) -> Self {
        fn typed<T: serde::de::DeserializeOwned>(data: &Value) -> Option<T> {
            T::deserialize(data).ok()
        }
        let decoded = match kind {
            TOOL_CALL => typed(data).map(Self::ToolCall),
            AUTH => typed(data).map(Self::Auth),
            SESSION => typed(data).map(Self::Session),
            TOOL_CHANGE => typed(data).map(Self::ToolChange),
            ALERT => typed(data).map(Self::Alert),
            HEARTBEAT => typed(data).map(Self::Heartbeat),
            COMMAND => typed(data).map(Self::Command),
            REFUSAL => typed(data).map(Self::Refusal),
            _ => None,
        };
        decoded.unwrap_or_else(|| Self::Unknown {
            kind: kind.to_string(),
            data: data.clone(),
        })
    }
}
