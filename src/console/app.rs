//! The console's state and its one way to change: `update(state, action) -> effects`.
//!
//! Key presses, new snapshots, source status and command replies all arrive as [`Action`]s;
//! `update` is pure (no I/O, no clock) and returns [`Effect`]s for the shell to carry out (send
//! a command, re-filter, ring the bell). Views only read [`App`].

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Instant;

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};

use super::data::{AlertRow, ChangeRow, SessionRow, Snapshot};
use super::filter::{FilterKey, Filterable, Query};
use super::keys::{KeyAction, KeyMap};
use super::theme::Theme;
use crate::auth::Role;
use crate::protocol::Command;
use crate::protocol::commands::Suppress;
use crate::protocol::events::{AlertStatus, ChangeStatus, SessionChange, Severity};
use crate::protocol::frames::Reply;
use crate::stream::SourceStatus;

/// The panes, in tab order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Pane {
    /// Live tool calls.
    Calls,
    /// Alerts.
    Alerts,
    /// Session bindings.
    Sessions,
    /// Pending tool-definition changes.
    Approvals,
    /// Events of types this build does not know, shown raw.
    Other,
}

impl Pane {
    /// Tab order.
    pub const ALL: [Pane; 5] = [
        Pane::Calls,
        Pane::Alerts,
        Pane::Sessions,
        Pane::Approvals,
        Pane::Other,
    ];

    /// Position in [`Pane::ALL`].
    pub fn index(self) -> usize {
        Self::ALL.iter().position(|p| *p == self).unwrap_or(0)
    }

    /// Tab title.
    pub fn title(self) -> &'static str {
        match self {
            Pane::Calls => "Tool calls",
            Pane::Alerts => "Alerts",
            Pane::Sessions => "Sessions",
            Pane::Approvals => "Approvals",
            Pane::Other => "Other",
        }
    }

    /// Tab title for narrow terminals.
    pub fn short_title(self) -> &'static str {
        match self {
            Pane::Calls => "Calls",
            Pane::Alerts => "Alerts",
            Pane::Sessions => "Sess",
            Pane::Approvals => "Appr",
            Pane::Other => "Other",
        }
    }

    /// The filter keys its rows have.
    pub fn filter_keys(self) -> &'static [FilterKey] {
        use FilterKey::*;
        match self {
            Pane::Calls => &[
                User, Session, Binding, Tool, Server, Client, Decision, Error, Type,
            ],
            Pane::Alerts => &[
                Rule, Severity, Status, Owasp, User, Session, Binding, Tool, Server, Type,
            ],
            Pane::Sessions => &[User, Session, Binding, Client, Server, Status, Type],
            Pane::Approvals => &[Tool, Server, Status, Type],
            Pane::Other => &[Type],
        }
    }

    /// The pane-specific actions, checked before the global ones.
    pub fn actions(self) -> &'static [KeyAction] {
        match self {
            Pane::Calls => &[KeyAction::JumpSession],
            Pane::Alerts => &[
                KeyAction::Acknowledge,
                KeyAction::Resolve,
                KeyAction::Contain,
                KeyAction::Suppress,
                KeyAction::JumpSession,
                KeyAction::JumpTool,
            ],
            Pane::Sessions => &[KeyAction::Revoke],
            Pane::Approvals => &[KeyAction::Approve, KeyAction::Reject],
            Pane::Other => &[],
        }
    }
}

/// Global actions, after the pane's own.
const GLOBAL: &[KeyAction] = &[
    KeyAction::Quit,
    KeyAction::NextPane,
    KeyAction::PrevPane,
    KeyAction::PaneCalls,
    KeyAction::PaneAlerts,
    KeyAction::PaneSessions,
    KeyAction::PaneApprovals,
    KeyAction::PaneOther,
    KeyAction::Up,
    KeyAction::Down,
    KeyAction::PageUp,
    KeyAction::PageDown,
    KeyAction::Top,
    KeyAction::Bottom,
    KeyAction::Pause,
    KeyAction::Follow,
    KeyAction::Open,
    KeyAction::Back,
    KeyAction::Filter,
    KeyAction::Command,
    KeyAction::Help,
];

/// Selection and filter of one pane.
#[derive(Debug, Clone, Default)]
pub struct PaneState {
    /// Selected row (index into `visible`).
    pub selected: usize,
    /// Tool calls: following the newest.
    pub follow: bool,
    /// Tool calls: rows that arrived above the selection while paused.
    pub new_while_paused: usize,
    /// The filter as typed.
    pub filter_text: String,
    /// The parsed filter.
    pub filter: Query,
    /// Indices of the snapshot rows the filter keeps, in display order.
    pub visible: Vec<usize>,
    /// Identity of the selected row, to keep it selected as rows move.
    pub anchor: Option<String>,
}

/// What the keyboard is doing now.
#[derive(Debug, Clone, PartialEq)]
pub enum Mode {
    /// Keys are actions.
    Normal,
    /// Typing a filter.
    Filter {
        /// Text so far.
        input: String,
        /// Parse error of the last Enter.
        error: Option<String>,
    },
    /// Typing a `:` command.
    Command {
        /// Text so far.
        input: String,
    },
    /// Waiting for y/N before a containment command.
    Confirm {
        /// The question.
        prompt: String,
        /// What `y` sends.
        then: PendingCommand,
    },
    /// Choosing how to contain an alert.
    Contain {
        /// Revoke this session (key `s`).
        session: Option<PendingCommand>,
        /// Block this tool (key `b`).
        tool: Option<PendingCommand>,
    },
    /// Typing an optional rejection reason.
    Reason {
        /// Text so far.
        input: String,
        /// The reject command.
        then: PendingCommand,
    },
}

/// Overlays above the pane.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Overlay {
    /// None.
    None,
    /// Every key of the pane.
    Help,
    /// The selected row in full.
    Detail,
}

/// What a command is about, to show it pending on the right row.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Target {
    /// An alert by source and id.
    Alert(String, String),
    /// A tool (change) by source, upstream and tool.
    Tool(String, String, String),
    /// A session binding by source and binding.
    Session(String, String),
}

/// A command ready to send to one source.
#[derive(Debug, Clone, PartialEq)]
pub struct PendingCommand {
    /// Source id to send to.
    pub source: String,
    /// The command.
    pub command: Command,
    /// What it is about.
    pub target: Target,
    /// Short label while pending, e.g. `acknowledging`.
    pub label: String,
}

/// A command sent and not yet confirmed by the producer's events.
#[derive(Debug, Clone, PartialEq)]
pub struct InFlight {
    /// The command.
    pub pending: PendingCommand,
    /// Whether the producer replied ok (then we wait for the event that shows it).
    pub replied: bool,
}

/// Kind of status-line message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MessageKind {
    /// Neutral.
    Info,
    /// Something succeeded.
    Ok,
    /// Something was refused or failed.
    Error,
}

/// Everything that can change the state.
#[derive(Debug, Clone)]
pub enum Action {
    /// A key press.
    Key(KeyEvent),
    /// New data.
    Snapshot(Arc<Snapshot>),
    /// Source link states, and when they were read.
    Sources(Vec<SourceStatus>, Instant),
    /// A command's reply (or why there is none).
    CommandDone(Target, Result<Reply, String>),
    /// The terminal was resized.
    Resize(u16, u16),
    /// The shell loaded a theme (`:theme`).
    ThemeLoaded(Result<(String, Box<Theme>), String>),
    /// The shell finished an export.
    Exported(Result<String, String>),
}

/// What the shell must do after an update.
#[derive(Debug, Clone, PartialEq)]
pub enum Effect {
    /// Send a command to a source.
    Send(PendingCommand),
    /// Re-read the tool calls with this filter.
    CallsFilter(Query),
    /// Load older tool calls.
    LoadOlder,
    /// Ring the terminal bell.
    Bell,
    /// Load a theme by name or path.
    LoadTheme(String),
    /// Export the current pane's rows (JSON lines) to a file.
    Export(String),
}

/// Events-per-second tracking of one source.
#[derive(Debug, Clone, Copy)]
struct Rate {
    at: Instant,
    ingested: u64,
    per_sec: f64,
}

/// The whole console state.
pub struct App {
    /// Current pane.
    pub pane: Pane,
    /// Per-pane state, by [`Pane::index`].
    pub panes: [PaneState; 5],
    /// Keyboard mode.
    pub mode: Mode,
    /// Overlay.
    pub overlay: Overlay,
    /// Detail overlay scroll.
    pub detail_scroll: u16,
    /// Latest data.
    pub snapshot: Arc<Snapshot>,
    /// Source link states.
    pub sources: Vec<SourceStatus>,
    rates: HashMap<String, Rate>,
    /// Styles.
    pub theme: Theme,
    /// Theme name for the status line.
    pub theme_name: String,
    /// Key bindings.
    pub keys: KeyMap,
    /// `--readonly`: no commands.
    pub readonly: bool,
    /// `--offline`: no sources.
    pub offline: bool,
    /// Ring the bell on new critical alerts.
    pub bell: bool,
    /// Status-line message.
    pub message: Option<(String, MessageKind)>,
    /// Commands sent and not yet confirmed.
    pub in_flight: HashMap<Target, InFlight>,
    /// Set when the user quits.
    pub quit: bool,
    /// Rows per page of the current table (from the terminal size).
    pub page: usize,
    /// Terminal size.
    pub size: (u16, u16),
    seen_alerts: HashSet<(String, String)>,
    have_data: bool,
}

impl App {
    /// A fresh console state.
    pub fn new(
        theme: Theme,
        theme_name: String,
        keys: KeyMap,
        readonly: bool,
        offline: bool,
        bell: bool,
    ) -> Self {
        let mut panes: [PaneState; 5] = Default::default();
        panes[Pane::Calls.index()].follow = true;
        Self {
            pane: Pane::Calls,
            panes,
            mode: Mode::Normal,
            overlay: Overlay::None,
            detail_scroll: 0,
            snapshot: Arc::new(Snapshot::default()),
            sources: Vec::new(),
            rates: HashMap::new(),
            theme,
            theme_name,
            keys,
            readonly,
            offline,
            bell,
            message: None,
            in_flight: HashMap::new(),
            quit: false,
            page: 20,
            size: (80, 24),
            seen_alerts: HashSet::new(),
            have_data: false,
        }
    }

    /// The current pane's state.
    pub fn current(&self) -> &PaneState {
        &self.panes[self.pane.index()]
    }

    fn current_mut(&mut self) -> &mut PaneState {
        &mut self.panes[self.pane.index()]
    }

    /// Rows the current pane shows.
    pub fn row_count(&self, pane: Pane) -> usize {
        match pane {
            Pane::Calls => self.snapshot.calls.len(),
            _ => self.panes[pane.index()].visible.len(),
        }
    }

    /// Events per second of a source, smoothed.
    pub fn rate(&self, name: &str) -> f64 {
        self.rates.get(name).map(|r| r.per_sec).unwrap_or(0.0)
    }

    /// The selected alert.
    pub fn selected_alert(&self) -> Option<&AlertRow> {
        self.selected_in(Pane::Alerts)
            .and_then(|i| self.snapshot.alerts.get(i))
    }

    /// The selected session.
    pub fn selected_session(&self) -> Option<&SessionRow> {
        self.selected_in(Pane::Sessions)
            .and_then(|i| self.snapshot.sessions.get(i))
    }

    /// The selected pending change.
    pub fn selected_change(&self) -> Option<&ChangeRow> {
        self.selected_in(Pane::Approvals)
            .and_then(|i| self.snapshot.changes.get(i))
    }

    fn selected_in(&self, pane: Pane) -> Option<usize> {
        let state = &self.panes[pane.index()];
        state.visible.get(state.selected).copied()
    }

    /// The role granted by a source, if connected.
    pub fn role_at(&self, source: &str) -> Option<Role> {
        self.sources
            .iter()
            .find(|s| s.source.as_deref() == Some(source))
            .and_then(|s| s.role)
    }

    /// Why a command may not be sent to `source` now, if it may not.
    pub fn refusal(&self, command: &Command, source: &str) -> Option<String> {
        if self.readonly {
            return Some("read-only console (--readonly): commands are off".into());
        }
        let required = command.required_role();
        match self.role_at(source) {
            None => Some(format!(
                "not connected to {source}: cannot send {}",
                command.action()
            )),
            Some(role) if !role.allows(required) => Some(format!(
                "{} needs role {required}; you are {role} on {source}",
                command.action()
            )),
            Some(_) => None,
        }
    }

    /// Whether a pane action is allowed now, and if not why (for footers and help).
    pub fn action_refusal(&self, action: KeyAction) -> Option<String> {
        let required = match action {
            KeyAction::Approve | KeyAction::Reject => Role::Approver,
            KeyAction::Acknowledge
            | KeyAction::Resolve
            | KeyAction::Contain
            | KeyAction::Suppress
            | KeyAction::Revoke => Role::Responder,
            _ => return None,
        };
        if self.readonly {
            return Some("read-only".into());
        }
        let best = self.sources.iter().filter_map(|s| s.role).max();
        match best {
            Some(role) if role.allows(required) => None,
            Some(role) => Some(format!("needs {required}, you are {role}")),
            None => Some("no connected source".into()),
        }
    }
}

/// Applies one action; returns what the shell must do.
pub fn update(app: &mut App, action: Action) -> Vec<Effect> {
    match action {
        Action::Key(key) => on_key(app, key),
        Action::Snapshot(snapshot) => on_snapshot(app, snapshot),
        Action::Sources(sources, now) => {
            for s in &sources {
                let entry = app.rates.entry(s.name.clone()).or_insert(Rate {
                    at: now,
                    ingested: s.ingested,
                    per_sec: 0.0,
                });
                let dt = now.saturating_duration_since(entry.at).as_secs_f64();
                if dt >= 1.0 {
                    let instant = (s.ingested.saturating_sub(entry.ingested)) as f64 / dt;
                    entry.per_sec = 0.5 * entry.per_sec + 0.5 * instant;
                    entry.at = now;
                    entry.ingested = s.ingested;
                }
            }
            app.sources = sources;
            Vec::new()
        }
        Action::CommandDone(target, result) => {
            match result {
                Ok(reply) if reply.ok => {
                    let text = reply.result.unwrap_or_else(|| "done".into());
                    app.message = Some((format!("ok: {text}"), MessageKind::Ok));
                    match app.in_flight.get_mut(&target) {
                        Some(f) if confirmed(&app.snapshot, &f.pending) => {
                            app.in_flight.remove(&target);
                        }
                        Some(f) => f.replied = true,
                        None => {}
                    }
                }
                Ok(reply) => {
                    let why = reply
                        .error
                        .map(|e| e.to_string())
                        .unwrap_or_else(|| "refused".into());
                    app.message = Some((format!("refused: {why}"), MessageKind::Error));
                    app.in_flight.remove(&target);
                }
                Err(e) => {
                    app.message = Some((format!("not sent: {e}"), MessageKind::Error));
                    app.in_flight.remove(&target);
                }
            }
            Vec::new()
        }
        Action::Resize(w, h) => {
            app.size = (w, h);
            app.page = (h as usize).saturating_sub(8).max(1);
            Vec::new()
        }
        Action::ThemeLoaded(result) => {
            match result {
                Ok((name, theme)) => {
                    app.theme = *theme;
                    app.message = Some((format!("theme {name}"), MessageKind::Ok));
                    app.theme_name = name;
                }
                Err(e) => app.message = Some((e, MessageKind::Error)),
            }
            Vec::new()
        }
        Action::Exported(result) => {
            app.message = Some(match result {
                Ok(text) => (text, MessageKind::Ok),
                Err(e) => (e, MessageKind::Error),
            });
            Vec::new()
        }
    }
}

/// Whether the snapshot already shows the outcome a command asked for.
fn confirmed(snapshot: &Snapshot, pending: &PendingCommand) -> bool {
    match (&pending.command, &pending.target) {
        (Command::AcknowledgeAlert { .. }, Target::Alert(source, id)) => {
            alert_status(snapshot, source, id).is_some_and(|s| s >= AlertStatus::Acknowledged)
        }
        (Command::ResolveAlert { .. } | Command::SuppressFinding(_), Target::Alert(source, id)) => {
            alert_status(snapshot, source, id) == Some(AlertStatus::Resolved)
        }
        (
            Command::ApproveToolChange { proposed_hash, .. }
            | Command::RejectToolChange { proposed_hash, .. },
            Target::Tool(source, up, tool),
        ) => !snapshot.changes.iter().any(|c| {
            &c.source == source
                && &c.change.upstream == up
                && &c.change.tool == tool
                && &c.change.proposed_hash == proposed_hash
        }),
        (Command::BlockTool { .. }, Target::Tool(source, up, tool)) => {
            snapshot.decided.iter().any(|c| {
                &c.source == source
                    && &c.change.upstream == up
                    && &c.change.tool == tool
                    && c.change.status == ChangeStatus::Blocked
            })
        }
        (Command::RevokeSession { .. }, Target::Session(source, binding)) => {
            snapshot.sessions.iter().any(|s| {
                &s.source == source
                    && &s.session.binding == binding
                    && s.session.change == SessionChange::Revoked
            })
        }
        _ => false,
    }
}

fn alert_status(snapshot: &Snapshot, source: &str, id: &str) -> Option<AlertStatus> {
    snapshot
        .alerts
        .iter()
        .find(|a| a.source == source && a.alert.alert_id == id)
        .map(|a| a.alert.status)
}

fn on_snapshot(app: &mut App, snapshot: Arc<Snapshot>) -> Vec<Effect> {
    let mut effects = Vec::new();
    // Critical alerts never seen before ring the bell (not the ones present at start).
    for row in &snapshot.alerts {
        let key = (row.source.clone(), row.alert.alert_id.clone());
        if app.seen_alerts.insert(key)
            && app.have_data
            && app.bell
            && row.alert.severity == Severity::Critical
            && row.alert.status == AlertStatus::New
            && !effects.contains(&Effect::Bell)
        {
            effects.push(Effect::Bell);
        }
    }
    app.have_data = true;
    // Keep the tool-call selection on its row while paused; count what arrived above it.
    let calls = &mut app.panes[Pane::Calls.index()];
    if calls.follow {
        calls.selected = 0;
        calls.new_while_paused = 0;
    } else if let Some(anchor) = &calls.anchor
        && let Some(pos) = snapshot
            .calls
            .iter()
            .position(|r| &call_key(&r.source, r.sequence) == anchor)
    {
        if pos > calls.selected {
            calls.new_while_paused += pos - calls.selected;
        }
        calls.selected = pos;
    }
    app.snapshot = snapshot;
    app.in_flight
        .retain(|_, f| !confirmed(&app.snapshot, &f.pending));
    for pane in [Pane::Alerts, Pane::Sessions, Pane::Approvals, Pane::Other] {
        refilter(app, pane);
    }
    clamp(app, Pane::Calls);
    remember_anchor(app, Pane::Calls);
    effects
}

/// Identity of a tool-call row.
pub fn call_key(source: &str, sequence: u64) -> String {
    format!("{source}#{sequence}")
}

fn row_key(app: &App, pane: Pane, index: usize) -> Option<String> {
    let s = &app.snapshot;
    match pane {
        Pane::Calls => s.calls.get(index).map(|r| call_key(&r.source, r.sequence)),
        Pane::Alerts => s
            .alerts
            .get(index)
            .map(|r| format!("{}#{}", r.source, r.alert.alert_id)),
        Pane::Sessions => s
            .sessions
            .get(index)
            .map(|r| format!("{}#{}", r.source, r.session.binding)),
        Pane::Approvals => s
            .changes
            .get(index)
            .map(|r| format!("{}#{}/{}", r.source, r.change.upstream, r.change.tool)),
        Pane::Other => s.other.get(index).map(|r| call_key(&r.source, r.sequence)),
    }
}

fn remember_anchor(app: &mut App, pane: Pane) {
    let index = if pane == Pane::Calls {
        Some(app.panes[pane.index()].selected)
    } else {
        app.selected_in(pane)
    };
    let key = index.and_then(|i| row_key(app, pane, i));
    app.panes[pane.index()].anchor = key;
}

/// Recomputes which rows of a state pane pass its filter, keeping the selected row selected.
fn refilter(app: &mut App, pane: Pane) {
    let snapshot = app.snapshot.clone();
    let query = app.panes[pane.index()].filter.clone();
    fn keep<T: Filterable>(rows: &[T], q: &Query) -> Vec<usize> {
        rows.iter()
            .enumerate()
            .filter(|(_, r)| q.matches(*r))
            .map(|(i, _)| i)
            .collect()
    }
    let visible = match pane {
        Pane::Alerts => keep(&snapshot.alerts, &query),
        Pane::Sessions => keep(&snapshot.sessions, &query),
        Pane::Approvals => keep(&snapshot.changes, &query),
        Pane::Other => keep(&snapshot.other, &query),
        Pane::Calls => return,
    };
    let anchor = app.panes[pane.index()].anchor.clone();
    let state = &mut app.panes[pane.index()];
    state.visible = visible;
    if let Some(anchor) = anchor
        && let Some(pos) = state
            .visible
            .iter()
            .position(|&i| row_key_of(&snapshot, pane, i).as_deref() == Some(anchor.as_str()))
    {
        state.selected = pos;
    }
    clamp(app, pane);
    remember_anchor(app, pane);
}

fn row_key_of(snapshot: &Snapshot, pane: Pane, index: usize) -> Option<String> {
    match pane {
        Pane::Alerts => snapshot
            .alerts
            .get(index)
            .map(|r| format!("{}#{}", r.source, r.alert.alert_id)),
        Pane::Sessions => snapshot
            .sessions
            .get(index)
            .map(|r| format!("{}#{}", r.source, r.session.binding)),
        Pane::Approvals => snapshot
            .changes
            .get(index)
            .map(|r| format!("{}#{}/{}", r.source, r.change.upstream, r.change.tool)),
        Pane::Other => snapshot
            .other
            .get(index)
            .map(|r| call_key(&r.source, r.sequence)),
        Pane::Calls => snapshot
            .calls
            .get(index)
            .map(|r| call_key(&r.source, r.sequence)),
    }
}

fn clamp(app: &mut App, pane: Pane) {
    let n = app.row_count(pane);
    let state = &mut app.panes[pane.index()];
    if n == 0 {
        state.selected = 0;
    } else if state.selected >= n {
        state.selected = n - 1;
    }
}

fn on_key(app: &mut App, key: KeyEvent) -> Vec<Effect> {
    match app.mode.clone() {
        Mode::Normal => on_normal_key(app, key),
        Mode::Filter { mut input, .. } => match key.code {
            KeyCode::Esc => {
                app.mode = Mode::Normal;
                Vec::new()
            }
            KeyCode::Enter => match Query::parse(&input) {
                Ok(query) => {
                    let allowed = app.pane.filter_keys();
                    if let Some(bad) = query.keys().into_iter().find(|k| !allowed.contains(k)) {
                        let names: Vec<&str> = allowed.iter().map(|k| k.name()).collect();
                        let error = format!(
                            "{} rows have no `{}` (keys here: {})",
                            app.pane.title(),
                            bad.name(),
                            names.join(", ")
                        );
                        app.mode = Mode::Filter {
                            input,
                            error: Some(error),
                        };
                        return Vec::new();
                    }
                    app.mode = Mode::Normal;
                    set_filter(app, app.pane, input, query)
                }
                Err(e) => {
                    app.mode = Mode::Filter {
                        input,
                        error: Some(e.to_string()),
                    };
                    Vec::new()
                }
            },
            _ => {
                edit(&mut input, &key);
                app.mode = Mode::Filter { input, error: None };
                Vec::new()
            }
        },
        Mode::Command { mut input } => match key.code {
            KeyCode::Esc => {
                app.mode = Mode::Normal;
                Vec::new()
            }
            KeyCode::Enter => {
                app.mode = Mode::Normal;
                run_command_line(app, input.trim())
            }
            _ => {
                edit(&mut input, &key);
                app.mode = Mode::Command { input };
                Vec::new()
            }
        },
        Mode::Confirm { then, .. } => {
            app.mode = Mode::Normal;
            if matches!(key.code, KeyCode::Char('y') | KeyCode::Char('Y')) {
                send(app, then)
            } else {
                app.message = Some(("cancelled".into(), MessageKind::Info));
                Vec::new()
            }
        }
        Mode::Contain { session, tool } => {
            app.mode = Mode::Normal;
            let choice = match key.code {
                KeyCode::Char('s') => session,
                KeyCode::Char('b') => tool,
                _ => None,
            };
            match choice {
                Some(command) => {
                    app.mode = Mode::Confirm {
                        prompt: confirm_prompt(app, &command),
                        then: command,
                    };
                }
                None => app.message = Some(("containment cancelled".into(), MessageKind::Info)),
            }
            Vec::new()
        }
        Mode::Reason {
            mut input,
            mut then,
        } => match key.code {
            KeyCode::Esc => {
                app.mode = Mode::Normal;
                app.message = Some(("rejection cancelled".into(), MessageKind::Info));
                Vec::new()
            }
            KeyCode::Enter => {
                app.mode = Mode::Normal;
                let reason = input.trim();
                if let Command::RejectToolChange { reason: r, .. } = &mut then.command {
                    *r = (!reason.is_empty()).then(|| reason.to_string());
                }
                send(app, then)
            }
            _ => {
                edit(&mut input, &key);
                app.mode = Mode::Reason { input, then };
                Vec::new()
            }
        },
    }
}

/// Line editing shared by the prompts.
fn edit(input: &mut String, key: &KeyEvent) {
    match key.code {
        KeyCode::Backspace => {
            input.pop();
        }
        KeyCode::Char('u') if key.modifiers.contains(KeyModifiers::CONTROL) => input.clear(),
        KeyCode::Char(c) if !key.modifiers.contains(KeyModifiers::CONTROL) && input.len() < 512 => {
            input.push(c)
        }
        _ => {}
    }
}

/// What revoking a binding cuts off, as the gateway will do it: a revocation keys on what the
/// binding's token proved (its client id, else the whole subject), on both revisions.
pub fn revocation_scope(app: &App, source: &str, binding: &str) -> String {
    let session = app
        .snapshot
        .sessions
        .iter()
        .find(|s| s.source == source && s.session.binding == binding)
        .map(|s| &s.session);
    match session {
        Some(s) => match &s.client.client_id {
            Some(client) => format!(
                "Cuts off {}'s tokens for client {client} issued until now, on both protocol revisions.",
                s.user
            ),
            None => format!(
                "The token proved no client: cuts off ALL of {}'s access through {source} (tokens issued until now).",
                s.user
            ),
        },
        None => format!("Cuts off the identity behind it at {source} (tokens issued until now)."),
    }
}

fn confirm_prompt(app: &App, command: &PendingCommand) -> String {
    match &command.command {
        Command::RevokeSession { binding, .. } => format!(
            "Revoke session {binding} at {}?\n{}\n[y/N]",
            command.source,
            revocation_scope(app, &command.source, binding)
        ),
        Command::BlockTool { upstream, tool, .. } => {
            format!(
                "Block tool {upstream}/{tool} at {} until approved again? [y/N]",
                command.source
            )
        }
        Command::SuppressFinding(s) => match (&s.upstream, &s.tool, &s.user) {
            (Some(upstream), Some(tool), _) => format!(
                "Suppress {} on {upstream}/{tool} at {} (a changed definition alerts again)? [y/N]",
                s.rule,
                s.tool_hash.as_deref().unwrap_or("its current definition")
            ),
            (_, _, Some(user)) => {
                format!(
                    "Suppress {} for {user} at {}? [y/N]",
                    s.rule, command.source
                )
            }
            _ => format!("Suppress {} at {}? [y/N]", s.rule, command.source),
        },
        other => format!("Send {} to {}? [y/N]", other.action(), command.source),
    }
}

fn set_filter(app: &mut App, pane: Pane, text: String, query: Query) -> Vec<Effect> {
    let state = &mut app.panes[pane.index()];
    state.filter_text = text;
    state.filter = query.clone();
    state.selected = 0;
    state.anchor = None;
    if pane == Pane::Calls {
        state.follow = true;
        state.new_while_paused = 0;
        vec![Effect::CallsFilter(query)]
    } else {
        refilter(app, pane);
        Vec::new()
    }
}

fn run_command_line(app: &mut App, line: &str) -> Vec<Effect> {
    let (word, rest) = line
        .split_once(' ')
        .map(|(a, b)| (a, b.trim()))
        .unwrap_or((line, ""));
    match word {
        "q" | "quit" => {
            app.quit = true;
            Vec::new()
        }
        "theme" if !rest.is_empty() => vec![Effect::LoadTheme(rest.to_string())],
        "theme" => {
            app.message = Some((
                format!(
                    "theme is {}; :theme dark|light|high-contrast|FILE.toml",
                    app.theme_name
                ),
                MessageKind::Info,
            ));
            Vec::new()
        }
        "source" | "sources" => {
            let text = if app.sources.is_empty() {
                "no sources (offline)".to_string()
            } else {
                app.sources
                    .iter()
                    .map(|s| {
                        let role = s.role.map(|r| r.to_string()).unwrap_or_else(|| "-".into());
                        format!(
                            "{} [{}] {} role {role} at {}",
                            s.name,
                            s.source.as_deref().unwrap_or("?"),
                            s.state.label(),
                            s.stored
                        )
                    })
                    .collect::<Vec<_>>()
                    .join(" | ")
            };
            app.message = Some((text, MessageKind::Info));
            Vec::new()
        }
        "export" if !rest.is_empty() => vec![Effect::Export(rest.to_string())],
        "export" => {
            app.message = Some((
                "usage: :export FILE (the current pane's rows as JSON lines)".into(),
                MessageKind::Error,
            ));
            Vec::new()
        }
        "help" => {
            app.overlay = Overlay::Help;
            Vec::new()
        }
        "" => Vec::new(),
        other => {
            app.message = Some((
                format!("unknown command :{other} (try :theme, :source, :export, :help, :q)"),
                MessageKind::Error,
            ));
            Vec::new()
        }
    }
}

fn on_normal_key(app: &mut App, key: KeyEvent) -> Vec<Effect> {
    if app.overlay == Overlay::Help {
        app.overlay = Overlay::None;
        return Vec::new();
    }
    let mut candidates: Vec<KeyAction> = app.pane.actions().to_vec();
    candidates.extend_from_slice(GLOBAL);
    let Some(action) = app.keys.resolve(&key, &candidates) else {
        return Vec::new();
    };
    if app.overlay == Overlay::Detail {
        match action {
            KeyAction::Up => {
                app.detail_scroll = app.detail_scroll.saturating_sub(1);
                return Vec::new();
            }
            KeyAction::Down => {
                app.detail_scroll = app.detail_scroll.saturating_add(1);
                return Vec::new();
            }
            KeyAction::PageUp => {
                app.detail_scroll = app.detail_scroll.saturating_sub(app.page as u16);
                return Vec::new();
            }
            KeyAction::PageDown => {
                app.detail_scroll = app.detail_scroll.saturating_add(app.page as u16);
                return Vec::new();
            }
            KeyAction::Back | KeyAction::Open => {
                app.overlay = Overlay::None;
                return Vec::new();
            }
            // Navigation keys would change which row the open detail shows: ignore them.
            KeyAction::Top
            | KeyAction::Bottom
            | KeyAction::Pause
            | KeyAction::Follow
            | KeyAction::Filter => return Vec::new(),
            _ => {}
        }
    }
    match action {
        KeyAction::Quit => {
            app.quit = true;
            Vec::new()
        }
        KeyAction::NextPane => switch(app, Pane::ALL[(app.pane.index() + 1) % Pane::ALL.len()]),
        KeyAction::PrevPane => switch(
            app,
            Pane::ALL[(app.pane.index() + Pane::ALL.len() - 1) % Pane::ALL.len()],
        ),
        KeyAction::PaneCalls => switch(app, Pane::Calls),
        KeyAction::PaneAlerts => switch(app, Pane::Alerts),
        KeyAction::PaneSessions => switch(app, Pane::Sessions),
        KeyAction::PaneApprovals => switch(app, Pane::Approvals),
        KeyAction::PaneOther => switch(app, Pane::Other),
        KeyAction::Up => move_by(app, -1),
        KeyAction::Down => move_by(app, 1),
        KeyAction::PageUp => move_by(app, -(app.page as i64)),
        KeyAction::PageDown => move_by(app, app.page as i64),
        KeyAction::Top => {
            app.current_mut().selected = 0;
            remember_anchor(app, app.pane);
            Vec::new()
        }
        KeyAction::Bottom => move_by(app, i64::MAX / 2),
        KeyAction::Pause => {
            if app.pane == Pane::Calls {
                app.current_mut().follow = false;
                remember_anchor(app, Pane::Calls);
            }
            Vec::new()
        }
        KeyAction::Follow => {
            let state = app.current_mut();
            state.selected = 0;
            if app.pane == Pane::Calls {
                let state = app.current_mut();
                state.follow = true;
                state.new_while_paused = 0;
            }
            remember_anchor(app, app.pane);
            Vec::new()
        }
        KeyAction::Open => {
            if app.row_count(app.pane) > 0 {
                app.overlay = Overlay::Detail;
                app.detail_scroll = 0;
                // The detail shows the selected call: stop following, or the next call to
                // arrive would take its place under the reader's eyes.
                if app.pane == Pane::Calls {
                    app.current_mut().follow = false;
                    remember_anchor(app, Pane::Calls);
                }
            }
            Vec::new()
        }
        KeyAction::Back => {
            if app.overlay != Overlay::None {
                app.overlay = Overlay::None;
                Vec::new()
            } else if !app.current().filter_text.is_empty() {
                set_filter(app, app.pane, String::new(), Query::default())
            } else {
                app.message = None;
                Vec::new()
            }
        }
        KeyAction::Filter => {
            app.mode = Mode::Filter {
                input: app.current().filter_text.clone(),
                error: None,
            };
            Vec::new()
        }
        KeyAction::Command => {
            app.mode = Mode::Command {
                input: String::new(),
            };
            Vec::new()
        }
        KeyAction::Help => {
            app.overlay = Overlay::Help;
            app.detail_scroll = 0;
            Vec::new()
        }
        KeyAction::JumpSession => jump_session(app),
        KeyAction::JumpTool => jump_tool(app),
        KeyAction::Acknowledge | KeyAction::Resolve => alert_command(app, action),
        KeyAction::Contain => contain(app),
        KeyAction::Suppress => suppress(app),
        KeyAction::Approve | KeyAction::Reject => decide_change(app, action),
        KeyAction::Revoke => revoke(app),
    }
}

fn switch(app: &mut App, pane: Pane) -> Vec<Effect> {
    app.pane = pane;
    app.overlay = Overlay::None;
    Vec::new()
}

fn move_by(app: &mut App, delta: i64) -> Vec<Effect> {
    let n = app.row_count(app.pane) as i64;
    let pane = app.pane;
    let state = app.current_mut();
    let next = (state.selected as i64 + delta).clamp(0, (n - 1).max(0)) as usize;
    state.selected = next;
    let mut effects = Vec::new();
    if pane == Pane::Calls {
        // Moving away from the newest row pauses the follow; only `f` (or End) resumes it.
        if delta != 0 && next != 0 {
            state.follow = false;
        }
        if next + 1 >= n as usize && app.snapshot.calls_more {
            effects.push(Effect::LoadOlder);
        }
    }
    remember_anchor(app, pane);
    effects
}

fn jump_session(app: &mut App) -> Vec<Effect> {
    let binding = match app.pane {
        Pane::Calls => app
            .snapshot
            .calls
            .get(app.current().selected)
            .and_then(|r| r.call.session.clone()),
        Pane::Alerts => app
            .selected_alert()
            .and_then(|a| a.alert.refs.session.clone()),
        _ => None,
    };
    let Some(binding) = binding else {
        app.message = Some(("no session on this row".into(), MessageKind::Info));
        return Vec::new();
    };
    let text = format!("binding:\"{binding}\"");
    app.pane = Pane::Sessions;
    app.overlay = Overlay::None;
    match Query::parse(&text) {
        Ok(query) => set_filter(app, Pane::Sessions, text, query),
        Err(e) => {
            app.message = Some((e.to_string(), MessageKind::Error));
            Vec::new()
        }
    }
}

fn jump_tool(app: &mut App) -> Vec<Effect> {
    let Some((upstream, tool)) = app
        .selected_alert()
        .and_then(|a| Some((a.alert.refs.upstream.clone()?, a.alert.refs.tool.clone()?)))
    else {
        app.message = Some(("no tool on this alert".into(), MessageKind::Info));
        return Vec::new();
    };
    let text = format!("server:\"{upstream}\" tool:\"{tool}\"");
    app.pane = Pane::Approvals;
    app.overlay = Overlay::None;
    match Query::parse(&text) {
        Ok(query) => {
            let effects = set_filter(app, Pane::Approvals, text, query);
            if app.panes[Pane::Approvals.index()].visible.is_empty() {
                app.message = Some((
                    format!("no pending change for {upstream}/{tool}"),
                    MessageKind::Info,
                ));
            }
            effects
        }
        Err(e) => {
            app.message = Some((e.to_string(), MessageKind::Error));
            Vec::new()
        }
    }
}

/// Sends a command if the console may, marking its row pending.
fn send(app: &mut App, pending: PendingCommand) -> Vec<Effect> {
    if let Some(why) = app.refusal(&pending.command, &pending.source) {
        app.message = Some((why, MessageKind::Error));
        return Vec::new();
    }
    if app.in_flight.contains_key(&pending.target) {
        app.message = Some((
            "a command for this row is still pending".into(),
            MessageKind::Info,
        ));
        return Vec::new();
    }
    app.message = Some((format!("{}…", pending.label), MessageKind::Info));
    app.in_flight.insert(
        pending.target.clone(),
        InFlight {
            pending: pending.clone(),
            replied: false,
        },
    );
    vec![Effect::Send(pending)]
}

fn alert_command(app: &mut App, action: KeyAction) -> Vec<Effect> {
    let Some(row) = app.selected_alert().cloned() else {
        return Vec::new();
    };
    let id = row.alert.alert_id.clone();
    let (command, label) = if action == KeyAction::Acknowledge {
        (
            Command::AcknowledgeAlert {
                alert_id: id.clone(),
                note: None,
            },
            "acking",
        )
    } else {
        (
            Command::ResolveAlert {
                alert_id: id.clone(),
                note: None,
            },
            "resolving",
        )
    };
    send(
        app,
        PendingCommand {
            source: row.source.clone(),
            command,
            target: Target::Alert(row.source, id),
            label: label.into(),
        },
    )
}

/// The source that owns a session binding or a tool, found in what we have stored.
fn owner_of_session(app: &App, binding: &str) -> Option<String> {
    app.snapshot
        .sessions
        .iter()
        .find(|s| s.session.binding == binding)
        .map(|s| s.source.clone())
}

fn owner_of_tool(app: &App, upstream: &str, tool: &str) -> Option<String> {
    let s = &app.snapshot;
    s.changes
        .iter()
        .chain(s.decided.iter())
        .find(|c| c.change.upstream == upstream && c.change.tool == tool)
        .map(|c| c.source.clone())
        .or_else(|| {
            s.calls
                .iter()
                .find(|c| c.call.upstream == upstream && c.call.tool == tool)
                .map(|c| c.source.clone())
        })
}

fn contain(app: &mut App) -> Vec<Effect> {
    let Some(row) = app.selected_alert().cloned() else {
        return Vec::new();
    };
    let reason = Some(format!(
        "containment of alert {} ({})",
        row.alert.alert_id, row.alert.rule
    ));
    let session = row.alert.refs.session.clone().and_then(|binding| {
        let source = owner_of_session(app, &binding)?;
        Some(PendingCommand {
            source: source.clone(),
            command: Command::RevokeSession {
                binding: binding.clone(),
                reason: reason.clone(),
            },
            target: Target::Session(source, binding),
            label: "revoking".into(),
        })
    });
    let tool = match (&row.alert.refs.upstream, &row.alert.refs.tool) {
        (Some(upstream), Some(tool)) => {
            owner_of_tool(app, upstream, tool).map(|source| PendingCommand {
                source: source.clone(),
                command: Command::BlockTool {
                    upstream: upstream.clone(),
                    tool: tool.clone(),
                    reason: reason.clone(),
                },
                target: Target::Tool(source, upstream.clone(), tool.clone()),
                label: "blocking".into(),
            })
        }
        _ => None,
    };
    match (session, tool) {
        (None, None) => {
            app.message = Some((
                "nothing to contain: no known session or gateway tool on this alert".into(),
                MessageKind::Error,
            ));
        }
        (Some(only), None) | (None, Some(only)) => {
            app.mode = Mode::Confirm {
                prompt: confirm_prompt(app, &only),
                then: only,
            };
        }
        (session, tool) => app.mode = Mode::Contain { session, tool },
    }
    Vec::new()
}

/// Asks before suppressing the selected alert's finding at the source that raised it.
fn suppress(app: &mut App) -> Vec<Effect> {
    let Some(row) = app.selected_alert().cloned() else {
        return Vec::new();
    };
    let refs = &row.alert.refs;
    let on_tool = refs.upstream.is_some() && refs.tool.is_some();
    if !on_tool && refs.user.is_none() {
        app.message = Some((
            "nothing to suppress: this alert names no tool or user (turn the rule off instead)"
                .into(),
            MessageKind::Error,
        ));
        return Vec::new();
    }
    let id = row.alert.alert_id.clone();
    let command = Command::SuppressFinding(Box::new(Suppress {
        rule: row.alert.rule.clone(),
        upstream: refs.upstream.clone().filter(|_| on_tool),
        tool: refs.tool.clone().filter(|_| on_tool),
        tool_hash: refs.tool_hash.clone().filter(|_| on_tool),
        user: refs.user.clone().filter(|_| !on_tool),
        alert_id: Some(id.clone()),
        reason: Some(format!("false positive (alert {id})")),
    }));
    let pending = PendingCommand {
        source: row.source.clone(),
        command,
        target: Target::Alert(row.source, id),
        label: "suppressing".into(),
    };
    app.mode = Mode::Confirm {
        prompt: confirm_prompt(app, &pending),
        then: pending,
    };
    Vec::new()
}

fn decide_change(app: &mut App, action: KeyAction) -> Vec<Effect> {
    let Some(row) = app.selected_change().cloned() else {
        return Vec::new();
    };
    let change = &row.change;
    let target = Target::Tool(
        row.source.clone(),
        change.upstream.clone(),
        change.tool.clone(),
    );
    if action == KeyAction::Approve {
        let command = Command::ApproveToolChange {
            upstream: change.upstream.clone(),
            tool: change.tool.clone(),
            proposed_hash: change.proposed_hash.clone(),
            reason: None,
        };
        return send(
            app,
            PendingCommand {
                source: row.source.clone(),
                command,
                target,
                label: "approving".into(),
            },
        );
    }
    let command = Command::RejectToolChange {
        upstream: change.upstream.clone(),
        tool: change.tool.clone(),
        proposed_hash: change.proposed_hash.clone(),
        reason: None,
    };
    let pending = PendingCommand {
        source: row.source.clone(),
        command,
        target,
        label: "rejecting".into(),
    };
    if let Some(why) = app.refusal(&pending.command, &pending.source) {
        app.message = Some((why, MessageKind::Error));
        return Vec::new();
    }
    app.mode = Mode::Reason {
        input: String::new(),
        then: pending,
    };
    Vec::new()
}

fn revoke(app: &mut App) -> Vec<Effect> {
    let Some(row) = app.selected_session().cloned() else {
        return Vec::new();
    };
    let binding = row.session.binding.clone();
    let pending = PendingCommand {
        source: row.source.clone(),
        command: Command::RevokeSession {
            binding: binding.clone(),
            reason: None,
        },
        target: Target::Session(row.source.clone(), binding),
        label: "revoking".into(),
    };
    if let Some(why) = app.refusal(&pending.command, &pending.source) {
        app.message = Some((why, MessageKind::Error));
        return Vec::new();
    }
    app.mode = Mode::Confirm {
        prompt: confirm_prompt(app, &pending),
        then: pending,
    };
    Vec::new()
}
