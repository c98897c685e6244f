//! The monitor's content detectors: stateless, pure functions over one tool definition, one
//! tool result or one set of call arguments, each returning [`Finding`]s.
//!
//! Families (one file each): [`poisoning`] (instructions aimed at the model), [`exfiltration`]
//! (requests for sensitive material), [`hidden`] (invisible or encoded content), [`shadowing`]
//! (descriptions that steer other tools), [`covert`] (parameters that carry the conversation
//! out), [`injection`] (the same in results) and [`secret`] (credentials in any text).
//!
//! How a text is scanned:
//! 1. a matching copy is built ([`normalize`]): case folded, zero-width and format characters
//!    dropped, Cyrillic/Greek/fullwidth look-alikes folded to ASCII, with a map back to the
//!    original bytes;
//! 2. each family's phrase patterns run over the copy in one `RegexSet` pass; weak cues need a
//!    second cue in the same text ([`pattern::Matcher`]); when nothing counts and the copy
//!    shows leetspeak (`1gn0r3`) or letters spelled out one by one (`i g n o r e`, `i.g.n`), the
//!    patterns run once more on a re-read view of it ([`normalize::View`]);
//! 3. hidden content is checked on the original characters, and encoded runs (tag characters,
//!    variation selectors, base64, hex; bounded) are decoded and scanned again;
//! 4. secrets are found on the original text and masked in every excerpt.
//!
//! Everything is linear-time: the `regex` crate (finite automata, no backtracking), bounded
//! decodes, JSON walked to depth [`MAX_DEPTH`] with a budget of [`MAX_STRINGS`] strings.
//!
//! Stateful detectors (rug pulls, bursts, baselines, alert folding) live beside this module and
//! produce the same [`Finding`]; [`DetectorConfig`] is keyed by rule id so it can configure
//! them too, and [`Finding::into_alert`] turns any finding into an alert event.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::protocol::events::{Alert, AlertRefs, AlertStatus, Evidence, OwaspMcp, Severity};

pub mod covert;
pub mod evidence;
pub mod exfiltration;
pub mod hidden;
pub mod injection;
pub mod normalize;
pub mod pattern;
pub mod poisoning;
pub mod secret;
pub mod shadowing;

use evidence::Mask;
use hidden::{HiddenScanner, Place};
use normalize::{Normalized, View};
use pattern::{Hit, Matcher};
use secret::SecretScanner;

/// Deepest JSON nesting walked in a tool definition or arguments.
pub const MAX_DEPTH: usize = 32;
/// Most strings scanned in one tool definition or arguments object.
pub const MAX_STRINGS: usize = 20_000;
/// Most findings returned by one scan.
pub const MAX_FINDINGS: usize = 128;
/// Decoded payloads are decoded again at most this many levels deep.
const MAX_DECODE_DEPTH: usize = 2;

/// A detector family; the corpus and `mcpsoc eval` use the same names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Family {
    /// Instructions aimed at the model rather than the user.
    Poisoning,
    /// Requests for sensitive files, secrets, or sending data out.
    Exfiltration,
    /// Invisible or encoded content.
    Hidden,
    /// Descriptions that change how other tools behave.
    Shadowing,
    /// Parameters that carry conversation content, files or secrets out.
    CovertChannel,
    /// Instructions to the model arriving in tool results.
    Injection,
    /// Credentials in text.
    Secret,
}

impl Family {
    /// Every family, in display order.
    pub const ALL: [Family; 7] = [
        Family::Poisoning,
        Family::Exfiltration,
        Family::Hidden,
        Family::Shadowing,
        Family::CovertChannel,
        Family::Injection,
        Family::Secret,
    ];

    /// The snake_case name (as in the corpus).
    pub fn as_str(self) -> &'static str {
        match self {
            Family::Poisoning => "poisoning",
            Family::Exfiltration => "exfiltration",
            Family::Hidden => "hidden",
            Family::Shadowing => "shadowing",
            Family::CovertChannel => "covert_channel",
            Family::Injection => "injection",
            Family::Secret => "secret",
        }
    }

    /// Parses a snake_case name.
    pub fn parse(name: &str) -> Option<Family> {
        Family::ALL.into_iter().find(|f| f.as_str() == name)
    }
}

/// A rule of the catalog: its id, family, default severity, OWASP category and summary.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RuleInfo {
    /// Rule id, `family.name`.
    pub id: &'static str,
    /// Family.
    pub family: Family,
    /// Severity unless configured otherwise.
    pub severity: Severity,
    /// OWASP MCP Top 10 category (hidden content found in a result maps to MCP06 instead).
    pub owasp: OwaspMcp,
    /// One human sentence.
    pub summary: &'static str,
}

const fn rule(
    id: &'static str,
    family: Family,
    severity: Severity,
    owasp: OwaspMcp,
    summary: &'static str,
) -> RuleInfo {
    RuleInfo {
        id,
        family,
        severity,
        owasp,
        summary,
    }
}

use Family as F;
use OwaspMcp as O;
use Severity as S;

/// Every rule these detectors raise.
pub const RULES: &[RuleInfo] = &[
    rule(
        "poisoning.directive_tag",
        F::Poisoning,
        S::High,
        O::Mcp03ToolPoisoning,
        "Markup impersonating a system or priority channel (<IMPORTANT>, <SYSTEM>, [INST]) aimed at the model",
    ),
    rule(
        "poisoning.instruction_override",
        F::Poisoning,
        S::High,
        O::Mcp03ToolPoisoning,
        "Text tells the model to override or ignore its other instructions",
    ),
    rule(
        "poisoning.concealment",
        F::Poisoning,
        S::High,
        O::Mcp03ToolPoisoning,
        "Text tells the model to hide actions or instructions from the user",
    ),
    rule(
        "poisoning.authority_claim",
        F::Poisoning,
        S::High,
        O::Mcp03ToolPoisoning,
        "Text claims authority, consent or a special mode to steer the model",
    ),
    rule(
        "poisoning.model_directive",
        F::Poisoning,
        S::Medium,
        O::Mcp03ToolPoisoning,
        "Text directs the model to side actions the tool does not need",
    ),
    rule(
        "poisoning.dangerous_command",
        F::Poisoning,
        S::Critical,
        O::Mcp05CommandInjection,
        "Tool text asks the model to run a remote script or destructive command",
    ),
    rule(
        "exfiltration.sensitive_file_request",
        F::Exfiltration,
        S::Critical,
        O::Mcp10ContextOverSharing,
        "Text asks the model to read or send sensitive files (keys, credentials, client configs, browser stores)",
    ),
    rule(
        "exfiltration.secret_harvest",
        F::Exfiltration,
        S::High,
        O::Mcp10ContextOverSharing,
        "Text asks the model to collect or pass on secrets from its context",
    ),
    rule(
        "exfiltration.external_transfer",
        F::Exfiltration,
        S::High,
        O::Mcp10ContextOverSharing,
        "Text asks the model to send data to an outside address",
    ),
    rule(
        "exfiltration.sensitive_path_argument",
        F::Exfiltration,
        S::High,
        O::Mcp10ContextOverSharing,
        "A tool call points at a sensitive file",
    ),
    rule(
        "hidden.zero_width",
        F::Hidden,
        S::Medium,
        O::Mcp03ToolPoisoning,
        "Invisible zero-width characters in text",
    ),
    rule(
        "hidden.bidi",
        F::Hidden,
        S::High,
        O::Mcp03ToolPoisoning,
        "Bidirectional control characters reorder how text displays",
    ),
    rule(
        "hidden.tag_chars",
        F::Hidden,
        S::Critical,
        O::Mcp03ToolPoisoning,
        "Invisible Unicode tag characters smuggle text",
    ),
    rule(
        "hidden.variation_selectors",
        F::Hidden,
        S::High,
        O::Mcp03ToolPoisoning,
        "A run of variation selectors smuggles bytes",
    ),
    rule(
        "hidden.ansi_escape",
        F::Hidden,
        S::High,
        O::Mcp03ToolPoisoning,
        "Terminal escape sequences can hide or rewrite displayed text",
    ),
    rule(
        "hidden.control_chars",
        F::Hidden,
        S::Medium,
        O::Mcp03ToolPoisoning,
        "Control characters in tool text",
    ),
    rule(
        "hidden.whitespace_run",
        F::Hidden,
        S::Medium,
        O::Mcp03ToolPoisoning,
        "Text pushed out of view by a long run of whitespace",
    ),
    rule(
        "hidden.html_comment",
        F::Hidden,
        S::Medium,
        O::Mcp03ToolPoisoning,
        "Comment markup hides text from rendered views",
    ),
    rule(
        "hidden.hidden_markup",
        F::Hidden,
        S::High,
        O::Mcp03ToolPoisoning,
        "Markup styled to be invisible",
    ),
    rule(
        "hidden.homoglyph",
        F::Hidden,
        S::Medium,
        O::Mcp03ToolPoisoning,
        "Words mix ASCII letters with look-alike letters of other scripts",
    ),
    rule(
        "hidden.encoded_blob",
        F::Hidden,
        S::High,
        O::Mcp03ToolPoisoning,
        "An encoded run decodes to readable text",
    ),
    rule(
        "shadowing.cross_tool_reference",
        F::Shadowing,
        S::High,
        O::Mcp03ToolPoisoning,
        "Tool text changes how the model uses other tools or servers",
    ),
    rule(
        "shadowing.recipient_redirect",
        F::Shadowing,
        S::Critical,
        O::Mcp03ToolPoisoning,
        "Tool text redirects recipients, payments or copies to a fixed target",
    ),
    rule(
        "covert_channel.exfil_parameter",
        F::CovertChannel,
        S::High,
        O::Mcp03ToolPoisoning,
        "A parameter is meant to carry conversation content, files or secrets",
    ),
    rule(
        "injection.result_directive",
        F::Injection,
        S::High,
        O::Mcp06IntentFlowSubversion,
        "Tool result contains instructions aimed at the model",
    ),
    rule(
        "injection.exfil_request",
        F::Injection,
        S::Critical,
        O::Mcp06IntentFlowSubversion,
        "Tool result asks the model to read or send sensitive data",
    ),
    rule(
        "injection.tool_call_request",
        F::Injection,
        S::Medium,
        O::Mcp06IntentFlowSubversion,
        "Tool result asks the model to call tools",
    ),
    rule(
        "injection.fake_turn",
        F::Injection,
        S::High,
        O::Mcp06IntentFlowSubversion,
        "Tool result fakes the end of its output or a conversation turn",
    ),
    rule(
        "secret.aws_access_key",
        F::Secret,
        S::Critical,
        O::Mcp01TokenMismanagement,
        "AWS access key id",
    ),
    rule(
        "secret.aws_secret_key",
        F::Secret,
        S::Critical,
        O::Mcp01TokenMismanagement,
        "AWS secret access key",
    ),
    rule(
        "secret.github_token",
        F::Secret,
        S::Critical,
        O::Mcp01TokenMismanagement,
        "GitHub token",
    ),
    rule(
        "secret.gitlab_token",
        F::Secret,
        S::Critical,
        O::Mcp01TokenMismanagement,
        "GitLab personal access token",
    ),
    rule(
        "secret.slack_token",
        F::Secret,
        S::High,
        O::Mcp01TokenMismanagement,
        "Slack token or webhook",
    ),
    rule(
        "secret.stripe_key",
        F::Secret,
        S::Critical,
        O::Mcp01TokenMismanagement,
        "Stripe live key",
    ),
    rule(
        "secret.google_api_key",
        F::Secret,
        S::High,
        O::Mcp01TokenMismanagement,
        "Google API key",
    ),
    rule(
        "secret.llm_api_key",
        F::Secret,
        S::High,
        O::Mcp01TokenMismanagement,
        "OpenAI or Anthropic API key",
    ),
    rule(
        "secret.private_key",
        F::Secret,
        S::Critical,
        O::Mcp01TokenMismanagement,
        "Private key block",
    ),
    rule(
        "secret.azure_key",
        F::Secret,
        S::Critical,
        O::Mcp01TokenMismanagement,
        "Azure storage account key, SAS signature or client secret",
    ),
    rule(
        "secret.jwt",
        F::Secret,
        S::High,
        O::Mcp01TokenMismanagement,
        "JSON Web Token",
    ),
    rule(
        "secret.url_credentials",
        F::Secret,
        S::High,
        O::Mcp01TokenMismanagement,
        "Password in a URL",
    ),
    rule(
        "secret.high_entropy",
        F::Secret,
        S::Medium,
        O::Mcp01TokenMismanagement,
        "High-entropy value assigned to a secret-sounding name",
    ),
    rule(
        "secret.password",
        F::Secret,
        S::High,
        O::Mcp01TokenMismanagement,
        "Password value",
    ),
];

/// The catalog entry of a rule id.
pub fn rule_info(id: &str) -> Option<&'static RuleInfo> {
    RULES.iter().find(|r| r.id == id)
}

/// Settings of one rule (or of a whole family, keyed by the family name).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RuleConfig {
    /// Whether the rule raises findings.
    pub enabled: bool,
    /// Severity instead of the rule's default.
    pub severity: Option<Severity>,
}

impl Default for RuleConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            severity: None,
        }
    }
}

/// Detector settings: per rule id (`hidden.zero_width`) or per family (`hidden`); the rule's
/// own entry wins. `Default` turns every rule on at its default severity.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DetectorConfig {
    /// Settings by rule id or family name.
    pub rules: BTreeMap<String, RuleConfig>,
}

impl DetectorConfig {
    /// The settings that apply to `rule`.
    pub fn setting(&self, rule: &str) -> RuleConfig {
        if let Some(own) = self.rules.get(rule) {
            return own.clone();
        }
        let family = rule.split('.').next().unwrap_or(rule);
        self.rules.get(family).cloned().unwrap_or_default()
    }

    /// Turns a rule (or family) off.
    pub fn disable(mut self, rule: &str) -> Self {
        self.rules.entry(rule.to_string()).or_default().enabled = false;
        self
    }

    /// Overrides the severity of a rule (or family).
    pub fn with_severity(mut self, rule: &str, severity: Severity) -> Self {
        self.rules.entry(rule.to_string()).or_default().severity = Some(severity);
        self
    }

    /// Configured keys that are neither a rule of `known` nor a family name: typos to report.
    pub fn unknown_keys<'a>(&'a self, known: &[&str]) -> Vec<&'a str> {
        self.rules
            .keys()
            .map(String::as_str)
            .filter(|k| !known.contains(k) && Family::parse(k).is_none() && rule_info(k).is_none())
            .collect()
    }
}

/// One detector finding.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Finding {
    /// Rule id, e.g. `poisoning.concealment`.
    pub rule: String,
    /// Family.
    pub family: Family,
    /// Severity (configured or default).
    pub severity: Severity,
    /// OWASP MCP Top 10 category.
    pub owasp: OwaspMcp,
    /// One human sentence (secrets redacted).
    pub summary: String,
    /// Field, excerpt (secrets redacted) and the offending span within the excerpt.
    pub evidence: Evidence,
}

impl Finding {
    /// The alert event for this finding, as first raised.
    pub fn into_alert(self, alert_id: String, refs: AlertRefs) -> Alert {
        Alert {
            alert_id,
            rule: self.rule,
            severity: self.severity,
            status: AlertStatus::New,
            owasp: self.owasp,
            summary: self.summary,
            evidence: Some(self.evidence),
            refs,
            count: 1,
            by: None,
            note: None,
        }
    }
}

/// Where a string was found, which picks the patterns that apply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Slot<'k> {
    /// A string of a tool definition; `property` names the parameter it describes, if any.
    Tool { property: Option<&'k str> },
    /// A property name of an input or output schema.
    PropertyName,
    /// Result text.
    Result,
    /// A call argument value under `key`.
    Argument { key: Option<&'k str> },
}

/// The content detectors, compiled once and shared (they are `Send + Sync`).
pub struct Detectors {
    config: DetectorConfig,
    tool: Matcher,
    property: Matcher,
    covert_named: Matcher,
    keys: Matcher,
    result: Matcher,
    arguments: Matcher,
    hidden: HiddenScanner,
    secrets: SecretScanner,
}

impl std::fmt::Debug for Detectors {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Detectors")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl Default for Detectors {
    fn default() -> Self {
        Self::new(DetectorConfig::default())
    }
}

/// A finding in the making: rule, span in the original text, extra words for the summary.
struct Raw {
    rule: &'static str,
    start: usize,
    end: usize,
    detail: Option<String>,
}

impl Detectors {
    /// Compiles every detector with `config`.
    pub fn new(config: DetectorConfig) -> Self {
        let directive_rules = poisoning::DirectiveRules {
            tag: "poisoning.directive_tag",
            override_: "poisoning.instruction_override",
            conceal: "poisoning.concealment",
            authority: "poisoning.authority_claim",
            directive: "poisoning.model_directive",
        };
        let mut tool = poisoning::patterns(&directive_rules, false);
        tool.extend(exfiltration::patterns(
            "exfiltration.sensitive_file_request",
            "exfiltration.secret_harvest",
            "exfiltration.external_transfer",
            false,
        ));
        tool.extend(shadowing::patterns());
        tool.extend(covert::patterns(false));
        let result = injection::patterns();
        let arguments = exfiltration::argument_patterns();
        Self {
            config,
            tool: Matcher::new(tool),
            property: Matcher::new(covert::patterns(true)),
            covert_named: Matcher::new(covert::named_patterns()),
            keys: Matcher::new(exfiltration::key_patterns()),
            result: Matcher::new(result),
            arguments: Matcher::new(arguments),
            hidden: HiddenScanner::new(),
            secrets: SecretScanner::new(),
        }
    }

    /// The configuration in force.
    pub fn config(&self) -> &DetectorConfig {
        &self.config
    }

    /// Scans every string of an MCP Tool object (name, title, description, input and output
    /// schemas with property names, descriptions, defaults, enums, examples, annotations).
    pub fn scan_tool(&self, tool: &Value) -> Vec<Finding> {
        let mut out = Vec::new();
        let mut path = String::from("tool");
        let mut budget = MAX_STRINGS;
        self.walk_tool(tool, &mut path, 0, None, false, &mut budget, &mut out);
        out
    }

    /// Scans tool result text for indirect prompt injection, hidden content and secrets.
    pub fn scan_result(&self, text: &str) -> Vec<Finding> {
        self.scan_result_at("result", text)
    }

    /// [`Detectors::scan_result`] naming the field, e.g. `result.content[0].text`.
    pub fn scan_result_at(&self, field: &str, text: &str) -> Vec<Finding> {
        let mut out = Vec::new();
        self.scan_string(Slot::Result, field, text, &mut out);
        out
    }

    /// Scans call arguments for secrets and sensitive paths.
    pub fn scan_arguments(&self, args: &Value) -> Vec<Finding> {
        let mut out = Vec::new();
        let mut path = String::from("arguments");
        let mut budget = MAX_STRINGS;
        self.walk_arguments(args, &mut path, 0, None, &mut budget, &mut out);
        out
    }

    #[allow(clippy::too_many_arguments)]
    fn walk_tool(
        &self,
        value: &Value,
        path: &mut String,
        depth: usize,
        property: Option<&str>,
        in_properties: bool,
        budget: &mut usize,
        out: &mut Vec<Finding>,
    ) {
        if depth > MAX_DEPTH || *budget == 0 || out.len() >= MAX_FINDINGS {
            return;
        }
        match value {
            Value::String(text) => {
                *budget -= 1;
                self.scan_string(Slot::Tool { property }, path, text, out);
            }
            Value::Array(items) => {
                for (i, item) in items.iter().enumerate() {
                    let len = path.len();
                    path.push_str(&format!("[{i}]"));
                    self.walk_tool(item, path, depth + 1, property, false, budget, out);
                    path.truncate(len);
                }
            }
            Value::Object(map) => {
                for (key, item) in map {
                    let len = path.len();
                    push_key(path, key);
                    if in_properties {
                        *budget = budget.saturating_sub(1);
                        self.scan_string(Slot::PropertyName, path, key, out);
                        self.walk_tool(item, path, depth + 1, Some(key), false, budget, out);
                    } else {
                        if !is_plain_key(key) {
                            *budget = budget.saturating_sub(1);
                            self.scan_string(Slot::Tool { property }, path, key, out);
                        }
                        let child_is_properties = matches!(
                            key.as_str(),
                            "properties" | "patternProperties" | "$defs" | "definitions"
                        );
                        self.walk_tool(
                            item,
                            path,
                            depth + 1,
                            property,
                            child_is_properties,
                            budget,
                            out,
                        );
                    }
                    path.truncate(len);
                }
            }
            _ => {}
        }
    }

    fn walk_arguments(
        &self,
        value: &Value,
        path: &mut String,
        depth: usize,
        key: Option<&str>,
        budget: &mut usize,
        out: &mut Vec<Finding>,
    ) {
        if depth > MAX_DEPTH || *budget == 0 || out.len() >= MAX_FINDINGS {
            return;
        }
        match value {
            Value::String(text) => {
                *budget -= 1;
                self.scan_string(Slot::Argument { key }, path, text, out);
            }
            Value::Array(items) => {
                for (i, item) in items.iter().enumerate() {
                    let len = path.len();
                    path.push_str(&format!("[{i}]"));
                    self.walk_arguments(item, path, depth + 1, key, budget, out);
                    path.truncate(len);
                }
            }
            Value::Object(map) => {
                // `{"name": "SIGNING_KEY", "value": "…"}`: the value is keyed by the name.
                let named = ["name", "key", "Name", "Key"]
                    .iter()
                    .find_map(|k| map.get(*k).and_then(Value::as_str));
                for (k, item) in map {
                    let len = path.len();
                    push_key(path, k);
                    let key = match (named, k.as_str()) {
                        (Some(name), "value" | "Value" | "secret" | "data") => name,
                        _ => k.as_str(),
                    };
                    self.walk_arguments(item, path, depth + 1, Some(key), budget, out);
                    path.truncate(len);
                }
            }
            Value::Number(n) => {
                // A long numeric secret under a secret-sounding key (rare, but cheap to check).
                if let Some(k) = key {
                    let text = n.to_string();
                    *budget -= 1;
                    self.scan_string(Slot::Argument { key: Some(k) }, path, &text, out);
                }
            }
            _ => {}
        }
    }

    /// Scans one string and appends its findings.
    fn scan_string(&self, slot: Slot<'_>, field: &str, text: &str, out: &mut Vec<Finding>) {
        if text.is_empty() || out.len() >= MAX_FINDINGS {
            return;
        }
        let key_hint = match slot {
            Slot::Argument { key } => key,
            Slot::Tool { property } => property,
            _ => None,
        };
        let secrets = self.secrets.scan(text, key_hint);
        let mut masks: Vec<Mask> = secrets.iter().map(secret::SecretHit::mask).collect();
        let mut raws: Vec<Raw> = Vec::new();

        // Hidden content, and what it decodes to.
        let place = match slot {
            Slot::Result => Some(Place::Result),
            Slot::Tool { .. } | Slot::PropertyName => Some(Place::Tool),
            Slot::Argument { .. } => None,
        };
        let mut decoded_all = Vec::new();
        if let Some(place) = place {
            let (hidden_hits, decoded) = self.hidden.scan(text, place);
            for h in hidden_hits {
                raws.push(Raw {
                    rule: h.rule,
                    start: h.start,
                    end: h.end,
                    detail: h.detail,
                });
            }
            decoded_all = decoded;
        }

        // Phrase patterns on the normalized copy.
        let normalized = Normalized::new(text);
        let hits = match slot {
            // Property names are split at `_`, `-` and camel case first.
            Slot::PropertyName => self.key_hits(text),
            _ => self.view_hits(slot, &normalized.text),
        };
        for hit in hits {
            let (start, end) = normalized.to_original(hit.start, hit.end);
            let start = trim_start(text, start, end);
            raws.push(Raw {
                rule: hit.rule,
                start,
                end,
                detail: None,
            });
        }

        // Decoded payloads: scanned like the text itself, reported on the encoded span.
        if let Some(place) = place {
            let mut queue: Vec<(hidden::Decoded, usize)> =
                decoded_all.into_iter().map(|d| (d, 1)).collect();
            let mut processed = 0;
            while let Some((d, level)) = queue.pop() {
                processed += 1;
                if processed > 16 {
                    break;
                }
                let inner_secrets = self.secrets.scan(&d.text, None);
                if !inner_secrets.is_empty() {
                    masks.push(Mask {
                        start: d.start,
                        end: d.end,
                        keep: 0,
                    });
                    for s in &inner_secrets {
                        raws.push(Raw {
                            rule: s.rule,
                            start: d.start,
                            end: d.end,
                            detail: Some(format!("encoded as {}", d.how)),
                        });
                    }
                }
                let inner = Normalized::new(&d.text);
                let inner_hits = scored(self.phrase_hits(slot, &inner.text));
                let encoded = matches!(d.how, "base64" | "hex");
                if encoded
                    && (!inner_hits.is_empty()
                        || (place == Place::Tool && hidden::reads_like_text(&d.text)))
                {
                    raws.push(Raw {
                        rule: "hidden.encoded_blob",
                        start: d.start,
                        end: d.end,
                        detail: Some(format!("{} decodes to \"{}\"", d.how, preview(&d.text))),
                    });
                }
                for hit in inner_hits {
                    raws.push(Raw {
                        rule: hit.rule,
                        start: d.start,
                        end: d.end,
                        detail: Some(format!("hidden in {}", d.how)),
                    });
                }
                if level < MAX_DECODE_DEPTH {
                    let (_, deeper) = self.hidden.scan(&d.text, place);
                    for mut inner_d in deeper {
                        inner_d.start = d.start;
                        inner_d.end = d.end;
                        queue.push((inner_d, level + 1));
                    }
                }
            }
        }

        for s in &secrets {
            raws.push(Raw {
                rule: s.rule,
                start: s.start,
                end: s.end,
                detail: None,
            });
        }

        // One finding per rule per string: the first span.
        let mut seen: Vec<&'static str> = Vec::new();
        raws.sort_by_key(|r| r.start);
        let field_masks: Vec<Mask> = self
            .secrets
            .scan(field, None)
            .iter()
            .map(secret::SecretHit::mask)
            .collect();
        let field = if field_masks.is_empty() {
            field.to_string()
        } else {
            evidence::redact_all(field, &field_masks)
        };
        for raw in raws {
            if seen.contains(&raw.rule) || out.len() >= MAX_FINDINGS {
                continue;
            }
            seen.push(raw.rule);
            if let Some(finding) = self.finding(slot, &field, text, &raw, &masks) {
                out.push(finding);
            }
        }
    }

    fn phrase_hits(&self, slot: Slot<'_>, text: &str) -> Vec<Hit> {
        match slot {
            Slot::Tool { property } => {
                let mut hits = self.tool.hits(text);
                if let Some(name) = property {
                    hits.extend(self.property.hits(text));
                    if covert::is_covert_name(name) {
                        hits.extend(self.covert_named.hits(text));
                    }
                }
                hits
            }
            Slot::PropertyName => self.key_hits(text),
            Slot::Result => self.result.hits(text),
            Slot::Argument { .. } => self.arguments.hits(text),
        }
    }

    /// The counting hits on the normalized copy; when there are none, on its leetspeak and
    /// spelled-out readings (built only when the copy shows those obfuscations), mapped back.
    fn view_hits(&self, slot: Slot<'_>, copy: &str) -> Vec<Hit> {
        let hits = scored(self.phrase_hits(slot, copy));
        if !hits.is_empty() {
            return hits;
        }
        let (leet_cue, spelled_cue) = normalize::view_cues(copy);
        if !leet_cue && !spelled_cue {
            return hits;
        }
        let leet = if leet_cue { View::leet(copy) } else { None };
        let spelled = if spelled_cue {
            View::spelled(leet.as_ref().map_or(copy, |v| v.text.as_str()))
        } else {
            None
        };
        for view in [leet.as_ref(), spelled.as_ref()].into_iter().flatten() {
            let mut hits = scored(self.phrase_hits(slot, &view.text));
            if hits.is_empty() {
                continue;
            }
            for h in &mut hits {
                // The spelled view may sit on the leet view; both keep offsets of `copy`
                // (leet is byte-aligned).
                let (s, e) = view.to_copy(h.start, h.end);
                h.start = s;
                h.end = e;
            }
            return hits;
        }
        Vec::new()
    }

    /// Hits on a property name, split into words; spans of the split copy do not map back, so
    /// they cover the whole key.
    fn key_hits(&self, key: &str) -> Vec<Hit> {
        let spaced = spaced_key(key);
        let mut hits = self.tool.hits(&spaced);
        hits.extend(self.keys.hits(&spaced));
        for h in &mut hits {
            h.start = 0;
            h.end = key.len();
        }
        hits
    }

    fn finding(
        &self,
        slot: Slot<'_>,
        field: &str,
        text: &str,
        raw: &Raw,
        masks: &[Mask],
    ) -> Option<Finding> {
        let info = rule_info(raw.rule)?;
        let setting = self.config.setting(info.id);
        if !setting.enabled {
            return None;
        }
        let owasp = if info.family == Family::Hidden && slot == Slot::Result {
            OwaspMcp::Mcp06IntentFlowSubversion
        } else {
            info.owasp
        };
        let summary = match &raw.detail {
            Some(detail) => {
                let detail = sanitize(detail);
                let detail_masks: Vec<Mask> = self
                    .secrets
                    .scan(&detail, None)
                    .iter()
                    .map(secret::SecretHit::mask)
                    .collect();
                format!(
                    "{} ({})",
                    info.summary,
                    evidence::redact_all(&detail, &detail_masks)
                )
            }
            None => info.summary.to_string(),
        };
        let (excerpt, start, end) = evidence::excerpt(text, raw.start, raw.end, masks);
        Some(Finding {
            rule: info.id.to_string(),
            family: info.family,
            severity: setting.severity.unwrap_or(info.severity),
            owasp,
            summary,
            evidence: Evidence {
                field: field.to_string(),
                excerpt,
                start,
                end,
            },
        })
    }
}

/// The hits that count: all of them when their weights add up to 2 or more.
fn scored(hits: Vec<Hit>) -> Vec<Hit> {
    let total: u32 = hits.iter().map(|h| u32::from(h.weight)).sum();
    if total >= 2 { hits } else { Vec::new() }
}

/// Appends `.key`, or `["key"]` for keys that are not plain identifiers (cut to 64 bytes).
fn push_key(path: &mut String, key: &str) {
    if is_plain_key(key) {
        path.push('.');
        path.push_str(key);
    } else {
        let mut cut = key.len().min(64);
        while !key.is_char_boundary(cut) {
            cut -= 1;
        }
        let shown: String = key[..cut]
            .chars()
            .map(|c| {
                if c.is_control() || normalize::is_invisible(c) {
                    '?'
                } else {
                    c
                }
            })
            .collect();
        path.push_str(&format!("[{shown:?}]"));
    }
}

fn is_plain_key(key: &str) -> bool {
    !key.is_empty()
        && key.len() <= 64
        && key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'$' | b'-' | b'@'))
}

/// A property name with `_`, `-` and camel case turned into spaces, lower-cased.
fn spaced_key(key: &str) -> String {
    let mut out = String::with_capacity(key.len() + 8);
    let mut prev_lower = false;
    for c in key.chars() {
        if c == '_' || c == '-' || c == '.' {
            out.push(' ');
            prev_lower = false;
        } else {
            if c.is_uppercase() && prev_lower {
                out.push(' ');
            }
            prev_lower = c.is_lowercase() || c.is_ascii_digit();
            out.extend(c.to_lowercase());
        }
    }
    Normalized::new(&out).text
}

/// Skips the punctuation and whitespace a pattern matched before the phrase itself
/// (". Read ~/.ssh" becomes "Read ~/.ssh").
fn trim_start(text: &str, start: usize, end: usize) -> usize {
    let skipped = text[start..end]
        .char_indices()
        .find(|&(_, c)| !(c.is_whitespace() || ".,;:!?>()[]".contains(c)))
        .map_or(0, |(i, _)| i);
    start + skipped
}

/// A short, single-line, printable preview of decoded text.
fn preview(text: &str) -> String {
    let mut out: String = text.chars().take(80).collect();
    if text.chars().count() > 80 {
        out.push('…');
    }
    out
}

/// Drops control and invisible characters from summary details.
fn sanitize(text: &str) -> String {
    text.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .filter(|c| !normalize::is_invisible(*c))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_pattern_rule_is_in_the_catalog() {
        let d = Detectors::default();
        let _ = d.scan_result("compile check");
        let directive_rules = poisoning::DirectiveRules {
            tag: "poisoning.directive_tag",
            override_: "poisoning.instruction_override",
            conceal: "poisoning.concealment",
            authority: "poisoning.authority_claim",
            directive: "poisoning.model_directive",
        };
        let mut all = poisoning::patterns(&directive_rules, false);
        all.extend(injection::patterns());
        all.extend(shadowing::patterns());
        all.extend(covert::patterns(true));
        all.extend(covert::named_patterns());
        all.extend(exfiltration::key_patterns());
        all.extend(exfiltration::argument_patterns());
        for p in all {
            assert!(rule_info(p.rule).is_some(), "{} not in RULES", p.rule);
        }
    }

    #[test]
    fn config_by_rule_and_family() {
        let c = DetectorConfig::default()
            .disable("hidden")
            .with_severity("secret.jwt", Severity::Low);
        assert!(!c.setting("hidden.bidi").enabled);
        assert_eq!(c.setting("secret.jwt").severity, Some(Severity::Low));
        assert!(c.setting("secret.github_token").enabled);
        assert!(c.unknown_keys(&[]).is_empty());
        let typo = DetectorConfig::default().disable("hiden.bidi");
        assert_eq!(typo.unknown_keys(&[]), vec!["hiden.bidi"]);
    }

    #[test]
    fn spaced_keys() {
        assert_eq!(
            spaced_key("contentFromReading_ssh-id_rsa"),
            "content from reading ssh id rsa"
        );
    }
}
