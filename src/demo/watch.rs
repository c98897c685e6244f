//! The demo's own links to the gateway and monitor streams (real subscribers, with their own
//! tokens and store): they report what the streams carry, approve the initial tools once at
//! start, and, without the console, play the approver for the scripted changes.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use serde::Serialize;

use super::report::{Kind, Report};
use super::server;
use super::setup::{GATEWAY_SOURCE, MONITOR_SOURCE};
use crate::protocol::events::{
    Alert, AuthEvent, AuthOutcome, ChangeStatus, CommandAudit, CommandOutcome, Refusal,
    SessionChange, SessionEvent, ToolChange,
};
use crate::protocol::{Command, Envelope, EventData};
use crate::store::Store;
use crate::stream::{SourceSpec, Subscriber, SubscriberOptions};

/// Subscriber name of the demo's approver link (as the gateway records decisions).
const APPROVER: &str = "demo-approver";
/// Reason given for the start-up approvals.
const INITIAL_REASON: &str = "initial tool of the demo server, approved at start";

/// The running links.
pub struct Watcher {
    gateway: Arc<Subscriber>,
    setup: Arc<AtomicBool>,
}

/// How the watcher behaves.
pub struct WatchOptions {
    /// Decide the scripted changes (without the console).
    pub decide: bool,
    /// The traffic's speed (decisions come a few seconds after a change, scaled).
    pub speed: f64,
    /// Hashes of the sample server's initial tool definitions.
    pub initial_hashes: HashSet<String>,
}

impl Watcher {
    /// Subscribes to the gateway's stream (and the monitor's, when given) into `store` and
    /// starts reporting and deciding.
    pub fn spawn(
        store: Store,
        gateway: SourceSpec,
        monitor: Option<SourceSpec>,
        report: Report,
        options: WatchOptions,
    ) -> Self {
        // Only what happens from now on is reported (a kept --data folder has older events).
        let cursors: HashMap<String, u64> = [GATEWAY_SOURCE, MONITOR_SOURCE]
            .into_iter()
            .map(|s| (s.to_string(), store.last_sequence(s)))
            .collect();
        let gateway = Arc::new(Subscriber::spawn(
            gateway,
            store.clone(),
            SubscriberOptions::default(),
        ));
        let monitor = monitor
            .map(|spec| Subscriber::spawn(spec, store.clone(), SubscriberOptions::default()));
        let setup = Arc::new(AtomicBool::new(true));
        let state = State {
            store,
            report,
            gateway: gateway.clone(),
            setup: setup.clone(),
            options,
            cursors,
            alerts: HashMap::new(),
            decided: HashSet::new(),
        };
        tokio::spawn(state.run(monitor));
        Self { gateway, setup }
    }

    /// Ends the start-up phase: from now on, initial definitions are not approved by the demo.
    pub fn end_setup(&self) {
        self.setup.store(false, Ordering::Relaxed);
    }

    /// Whether the demo's approver link is connected.
    pub fn gateway_connected(&self) -> bool {
        self.gateway.status().borrow().source.is_some()
    }
}

struct State {
    store: Store,
    report: Report,
    gateway: Arc<Subscriber>,
    setup: Arc<AtomicBool>,
    options: WatchOptions,
    cursors: HashMap<String, u64>,
    /// Alert id to the last reported status.
    alerts: HashMap<String, String>,
    /// Tool changes (tool, hash) already decided or scheduled.
    decided: HashSet<(String, String)>,
}

/// The wire name of a status or severity.
fn name<T: Serialize>(value: &T) -> String {
    serde_json::to_value(value)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default()
}

fn short_hash(hash: &str) -> String {
    let hex = hash.strip_prefix("sha256:").unwrap_or(hash);
    format!("sha256:{}…", hex.chars().take(12).collect::<String>())
}

impl State {
    async fn run(mut self, _monitor: Option<Subscriber>) {
        loop {
            let mut busy = false;
            for source in [GATEWAY_SOURCE, MONITOR_SOURCE] {
                let after = self.cursors.get(source).copied().unwrap_or(0);
                let store = self.store.clone();
                let events =
                    tokio::task::spawn_blocking(move || store.events_after(source, after, 500))
                        .await;
                let Ok(Ok(events)) = events else { continue };
                if let Some(last) = events.last() {
                    self.cursors.insert(source.to_string(), last.sequence);
                    busy = true;
                }
                for event in events {
                    if let Ok(envelope) = Envelope::parse(&event.json) {
                        self.event(envelope.decode());
                    }
                }
            }
            if !busy {
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    }

    fn event(&mut self, event: EventData) {
        match event {
            EventData::ToolChange(change) => self.tool_change(change),
            EventData::Alert(alert) => self.alert(&alert),
            EventData::Auth(auth) => self.auth(&auth),
            EventData::Session(session) => self.session(&session),
            EventData::Refusal(refusal) => self.refusal(&refusal),
            EventData::Command(command) => self.command(&command),
            _ => {}
        }
    }

    fn tool_change(&mut self, change: ToolChange) {
        let initial = self.options.initial_hashes.contains(&change.proposed_hash);
        let what = format!("{}/{}", change.upstream, change.tool);
        match change.status {
            ChangeStatus::Pending if initial && self.setup.load(Ordering::Relaxed) => {
                self.decide(&change, true, INITIAL_REASON, Duration::ZERO);
            }
            ChangeStatus::Pending => {
                let kind = if change.previous.is_some() {
                    "changed after approval"
                } else {
                    "new tool"
                };
                self.report.line(
                    Kind::Approval,
                    format!(
                        "pending  {what} {} — {kind}; approve or reject it in the console (4 Approvals, Enter shows the diff)",
                        short_hash(&change.proposed_hash)
                    ),
                );
                if self.options.decide {
                    self.headless_decision(&change);
                }
            }
            ChangeStatus::Approved if initial && change.decided_by.as_deref() == Some(APPROVER) => {
                // Start-up approvals are summed up once by the demo.
            }
            status => {
                let by = change
                    .decided_by
                    .as_deref()
                    .map(|b| format!(" by {b}"))
                    .unwrap_or_default();
                let reason = change
                    .reason
                    .as_deref()
                    .map(|r| format!(" ({r})"))
                    .unwrap_or_default();
                self.report.line(
                    Kind::Approval,
                    format!(
                        "{:<8} {what} {}{by}{reason}",
                        name(&status),
                        short_hash(&change.proposed_hash)
                    ),
                );
            }
        }
    }

    /// Without the console, the demo decides the scripted changes as an approver would: the
    /// harmless one approved, the hidden-character tool rejected, the rug pull left pending.
    fn headless_decision(&mut self, change: &ToolChange) {
        let delay = Duration::from_secs_f64((4.0 / self.options.speed).max(1.0));
        if change.tool == server::BENIGN_CHANGE_TOOL {
            self.report.line(
                Kind::Approver,
                format!(
                    "(no console) approves {}/{} in {} s: the diff only adds an optional 'units' parameter",
                    change.upstream,
                    change.tool,
                    delay.as_secs()
                ),
            );
            self.decide(
                change,
                true,
                "reviewed: adds an optional units parameter",
                delay,
            );
        } else if change.tool == server::HIDDEN_TOOL {
            self.report.line(
                Kind::Approver,
                format!(
                    "(no console) rejects {}/{} in {} s: its description hides invisible characters",
                    change.upstream,
                    change.tool,
                    delay.as_secs()
                ),
            );
            self.decide(
                change,
                false,
                "description hides invisible characters",
                delay,
            );
        } else {
            self.report.line(
                Kind::Approver,
                format!(
                    "(no console) leaves {}/{} pending: a person should read that diff (run without --no-tui)",
                    change.upstream, change.tool
                ),
            );
        }
    }

    /// Sends an approval or rejection of exactly this hash through the approver link.
    fn decide(&mut self, change: &ToolChange, approve: bool, reason: &str, delay: Duration) {
        if !self
            .decided
            .insert((change.tool.clone(), change.proposed_hash.clone()))
        {
            return;
        }
        let (upstream, tool, proposed_hash) = (
            change.upstream.clone(),
            change.tool.clone(),
            change.proposed_hash.clone(),
        );
        let reason = Some(reason.to_string());
        let command = if approve {
            Command::ApproveToolChange {
                upstream,
                tool,
                proposed_hash,
                reason,
            }
        } else {
            Command::RejectToolChange {
                upstream,
                tool,
                proposed_hash,
                reason,
            }
        };
        let (gateway, report) = (self.gateway.clone(), self.report.clone());
        tokio::spawn(async move {
            tokio::time::sleep(delay).await;
            let action = command.action();
            // The link may still be connecting at start: retry for a while.
            for _ in 0..50 {
                match gateway.command(command.clone()).await {
                    Ok(reply) if reply.ok => return,
                    Ok(reply) => {
                        let why = reply.error.map(|e| e.to_string()).unwrap_or_default();
                        report.line(Kind::Approver, format!("{action} refused: {why}"));
                        return;
                    }
                    Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
                }
            }
            report.line(
                Kind::Approver,
                format!("{action} not sent: no link to the gateway"),
            );
        });
    }

    fn alert(&mut self, alert: &Alert) {
        let status = name(&alert.status);
        let previous = self.alerts.insert(alert.alert_id.clone(), status.clone());
        if previous.as_deref() == Some(status.as_str()) {
            return; // a folded repeat: same alert, higher count
        }
        let mut about = Vec::new();
        if let Some(user) = &alert.refs.user {
            about.push(format!("user {user}"));
        }
        if let Some(tool) = &alert.refs.tool {
            about.push(format!("tool {tool}"));
        }
        let about = if about.is_empty() {
            String::new()
        } else {
            format!(" [{}]", about.join(", "))
        };
        if previous.is_none() {
            self.report.line(
                Kind::Alert,
                format!(
                    "{:<8} {} ({}): {}{about}",
                    name(&alert.severity),
                    alert.rule,
                    name(&alert.owasp),
                    alert.summary
                ),
            );
        } else {
            let by = alert
                .by
                .as_deref()
                .map(|b| format!(" by {b}"))
                .unwrap_or_default();
            self.report.line(
                Kind::Alert,
                format!("{status:<8} {}{by}: {}{about}", alert.rule, alert.summary),
            );
        }
    }

    fn auth(&self, auth: &AuthEvent) {
        if auth.outcome != AuthOutcome::Rejected {
            return;
        }
        let reason = auth.reason.as_ref().map(name).unwrap_or_default();
        self.report.line(
            Kind::Gateway,
            format!(
                "refused a token ({reason}): user {} via {}, audience {}",
                auth.user.as_deref().unwrap_or("?"),
                auth.client_id.as_deref().unwrap_or("?"),
                auth.audience.as_deref().unwrap_or("?")
            ),
        );
    }

    fn session(&self, session: &SessionEvent) {
        match session.change {
            SessionChange::ReuseRefused => self.report.line(
                Kind::Gateway,
                format!(
                    "refused session reuse: {} presented {}'s session {} (HTTP 403; the binding is untouched)",
                    session.other_user.as_deref().unwrap_or("another identity"),
                    session.user,
                    short_binding(&session.binding)
                ),
            ),
            SessionChange::Revoked => self.report.line(
                Kind::Gateway,
                format!(
                    "session {} revoked{}",
                    short_binding(&session.binding),
                    session
                        .reason
                        .as_deref()
                        .map(|r| format!(" ({r})"))
                        .unwrap_or_default()
                ),
            ),
            _ => {}
        }
    }

    fn refusal(&self, refusal: &Refusal) {
        if refusal.reason == "session_hijack" {
            return; // reported with the session event
        }
        self.report.line(
            Kind::Gateway,
            format!(
                "refused a request{} ({}, HTTP {}): {}",
                refusal
                    .user
                    .as_deref()
                    .map(|u| format!(" of {u}"))
                    .unwrap_or_default(),
                refusal.reason,
                refusal.status,
                refusal.detail
            ),
        );
    }

    fn command(&self, command: &CommandAudit) {
        if command.outcome == CommandOutcome::Refused {
            self.report.line(
                Kind::Gateway,
                format!(
                    "refused command {} by {}: {}",
                    command.action,
                    command.by,
                    command.detail.as_deref().unwrap_or("")
                ),
            );
        }
    }
}

fn short_binding(binding: &str) -> String {
    match binding.split_once(':') {
        Some((user, id)) => format!("{user}:{}…", id.chars().take(12).collect::<String>()),
        None => binding.to_string(),
    }
}
