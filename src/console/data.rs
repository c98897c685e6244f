//! The console's data side: turns the store into the rows the panes show, incrementally and off
//! the UI thread. Panes never touch sled; they read the latest [`Snapshot`].
//!
//! The worker keeps a window of the newest tool calls (matching the pane's filter) and extends it
//! only with events that arrived since the last look (read by sequence from each source), so the
//! cost of a refresh is the cost of what is new, not of what is stored. Current-state lists
//! (alerts, sessions, pending changes) come from their own small indexes.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender};
use std::time::{Duration, Instant};

use tokio::sync::watch;

use super::filter::{FilterKey, Filterable, Query};
use crate::protocol::events::{
    self, Alert, ChangeStatus, Decision, SessionEvent, ToolCall, ToolChange,
};
use crate::protocol::{Envelope, EventData};
use crate::store::{AlertFilter, StateRecord, Store, StoredEvent};

/// How many tool calls the window holds at first and grows by.
pub const CALL_WINDOW: usize = 1000;
/// Most tool calls ever held in memory.
pub const CALL_WINDOW_MAX: usize = 50_000;
/// Most index entries a filter scans before it stops and says so.
pub const FILTER_SCAN_CAP: usize = 200_000;
/// Rows read before a filter's first answer (a screen and a bit).
pub const FIRST_SCREEN: usize = 64;
/// Least time between two refreshes for new events.
pub const REFRESH_INTERVAL: Duration = Duration::from_millis(200);
/// Most state rows (alerts, sessions, changes, other events) loaded.
pub const STATE_LIMIT: usize = 5_000;
/// When more than this many events arrived since the last look, the window is re-read from the
/// index instead of event by event.
const INCREMENTAL_MAX: u64 = 2_000;

/// A tool call row.
#[derive(Debug, Clone)]
pub struct CallRow {
    /// Source id.
    pub source: String,
    /// Sequence.
    pub sequence: u64,
    /// Event time, ms.
    pub time_ms: i64,
    /// The call.
    pub call: ToolCall,
}

/// An alert row (latest state).
#[derive(Debug, Clone)]
pub struct AlertRow {
    /// Source id.
    pub source: String,
    /// Time of the latest event, ms.
    pub time_ms: i64,
    /// The alert.
    pub alert: Alert,
}

/// A session binding row (latest state).
#[derive(Debug, Clone)]
pub struct SessionRow {
    /// Source id.
    pub source: String,
    /// Time of the latest event (last seen), ms.
    pub time_ms: i64,
    /// The binding.
    pub session: SessionEvent,
}

/// A pending tool change row.
#[derive(Debug, Clone)]
pub struct ChangeRow {
    /// Source id.
    pub source: String,
    /// When it became pending, ms.
    pub time_ms: i64,
    /// The change.
    pub change: ToolChange,
}

/// An event of a type this build does not know (or a payload that did not fit its type),
/// shown raw.
#[derive(Debug, Clone)]
pub struct RawRow {
    /// Source id.
    pub source: String,
    /// Sequence.
    pub sequence: u64,
    /// Event time, ms.
    pub time_ms: i64,
    /// The type name.
    pub kind: String,
    /// The whole event JSON.
    pub json: String,
}

/// Everything the panes show, prepared.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    /// Tool calls matching the calls filter, newest first.
    pub calls: Vec<CallRow>,
    /// Whether older calls exist beyond the window.
    pub calls_more: bool,
    /// Whether the filter scan stopped at its cap (older matches not searched).
    pub calls_scan_capped: bool,
    /// Alerts, by status, severity, newest.
    pub alerts: Vec<AlertRow>,
    /// Session bindings.
    pub sessions: Vec<SessionRow>,
    /// Pending tool changes, oldest first.
    pub changes: Vec<ChangeRow>,
    /// Latest decided tool changes, newest first (for results of approvals).
    pub decided: Vec<ChangeRow>,
    /// Unknown-type events, newest first.
    pub other: Vec<RawRow>,
    /// Events in the store.
    pub stored_events: u64,
    /// Increases with every snapshot.
    pub generation: u64,
    /// How long the last refresh took.
    pub refresh_time: Duration,
}

/// Requests to the worker.
#[derive(Debug)]
pub enum DataRequest {
    /// Something was stored: look for new events.
    Changed,
    /// The calls filter changed.
    CallsFilter(Query),
    /// The user scrolled to the end of the window: load older calls.
    LoadOlder,
}

fn decode(json: &str) -> Option<(Envelope, EventData)> {
    let env = Envelope::parse(json).ok()?;
    let data = env.decode();
    Some((env, data))
}

fn time_ms(env: &Envelope) -> i64 {
    env.timestamp().map(|t| t.timestamp_millis()).unwrap_or(0)
}

impl CallRow {
    /// A row from a stored tool-call event.
    pub fn from_stored(event: &StoredEvent) -> Option<CallRow> {
        let (env, data) = decode(&event.json)?;
        match data {
            EventData::ToolCall(call) => Some(CallRow {
                source: event.source.clone(),
                sequence: event.sequence,
                time_ms: time_ms(&env),
                call,
            }),
            _ => None,
        }
    }
}

fn alert_row(record: &StateRecord, source: &str) -> Option<AlertRow> {
    match decode(&record.json)?.1 {
        EventData::Alert(alert) => Some(AlertRow {
            source: source.to_string(),
            time_ms: record.time_ms,
            alert,
        }),
        _ => None,
    }
}

fn session_row(record: &StateRecord, source: &str) -> Option<SessionRow> {
    match decode(&record.json)?.1 {
        EventData::Session(session) => Some(SessionRow {
            source: source.to_string(),
            time_ms: record.time_ms,
            session,
        }),
        _ => None,
    }
}

fn change_row(record: &StateRecord, source: &str) -> Option<ChangeRow> {
    match decode(&record.json)?.1 {
        EventData::ToolChange(change) => Some(ChangeRow {
            source: source.to_string(),
            time_ms: record.time_ms,
            change,
        }),
        _ => None,
    }
}

/// The worker's state.
pub struct DataWorker {
    store: Store,
    calls: VecDeque<CallRow>,
    calls_filter: Query,
    window: usize,
    calls_more: bool,
    calls_scan_capped: bool,
    oldest_key: Option<Vec<u8>>,
    cursors: HashMap<String, u64>,
    state: Snapshot,
    generation: u64,
}

impl DataWorker {
    /// A worker over `store` with an empty filter; call [`DataWorker::refresh_all`] first.
    pub fn new(store: Store) -> Self {
        Self {
            store,
            calls: VecDeque::new(),
            calls_filter: Query::default(),
            window: CALL_WINDOW,
            calls_more: false,
            calls_scan_capped: false,
            oldest_key: None,
            cursors: HashMap::new(),
            state: Snapshot::default(),
            generation: 0,
        }
    }

    /// Re-reads everything from the indexes (start, filter change, big jumps).
    pub fn refresh_all(&mut self) -> Snapshot {
        for source in self.store.sources() {
            let last = self.store.last_sequence(&source);
            self.cursors.insert(source, last);
        }
        self.reload_calls(self.window);
        self.reload_states();
        self.snapshot()
    }

    /// Applies what arrived since the last look; `None` when nothing did.
    pub fn refresh_new(&mut self) -> Option<Snapshot> {
        let mut any = false;
        let mut states_dirty = false;
        let mut fresh: Vec<CallRow> = Vec::new();
        let mut reload = false;
        for source in self.store.sources() {
            let last = self.store.last_sequence(&source);
            let seen = self.cursors.get(&source).copied().unwrap_or(0);
            if last <= seen {
                continue;
            }
            any = true;
            if last - seen > INCREMENTAL_MAX {
                reload = true;
                self.cursors.insert(source, last);
                continue;
            }
            let mut after = seen;
            while after < last {
                let Ok(events) = self.store.events_after(&source, after, 4096) else {
                    break;
                };
                let Some(end) = events.last().map(|e| e.sequence) else {
                    break;
                };
                for event in &events {
                    let kind = crate::store::view::EventView::parse(&event.json)
                        .map(|v| v.kind.to_string());
                    match kind.as_deref() {
                        Ok(events::TOOL_CALL) => {
                            if let Some(row) = CallRow::from_stored(event)
                                && self.calls_filter.matches(&row)
                            {
                                fresh.push(row);
                            }
                        }
                        Ok(events::HEARTBEAT) | Ok(events::COMMAND) => {}
                        _ => states_dirty = true,
                    }
                }
                after = end;
            }
            self.cursors.insert(source, after);
        }
        if reload {
            self.reload_calls(self.window);
            states_dirty = true;
        } else if !fresh.is_empty() {
            // A reload from the index (filter change, start) may already hold some of these.
            let mut newest: HashMap<&str, u64> = HashMap::new();
            for row in &self.calls {
                let n = newest.entry(row.source.as_str()).or_insert(0);
                *n = (*n).max(row.sequence);
            }
            fresh.retain(|r| {
                newest
                    .get(r.source.as_str())
                    .is_none_or(|&n| r.sequence > n)
            });
            fresh.sort_by_key(|r| r.time_ms);
            for row in fresh {
                self.calls.push_front(row);
            }
            while self.calls.len() > self.window {
                self.calls.pop_back();
                self.calls_more = true;
            }
        }
        if states_dirty {
            self.reload_states();
        }
        any.then(|| self.snapshot())
    }

    /// Changes the calls filter and re-reads the window.
    pub fn set_calls_filter(&mut self, query: Query) -> Snapshot {
        self.apply_filter(query);
        self.fill_window();
        self.snapshot()
    }

    /// Changes the calls filter and reads just a first screen of matches, so the answer comes
    /// at once; [`DataWorker::fill_window`] reads the rest of the window afterwards.
    pub fn set_calls_filter_first_screen(&mut self, query: Query) -> Snapshot {
        self.apply_filter(query);
        self.snapshot()
    }

    fn apply_filter(&mut self, query: Query) {
        self.calls_filter = query;
        self.window = CALL_WINDOW;
        self.reload_calls(FIRST_SCREEN);
    }

    /// Reads older matches until the window is full (after a first screen).
    pub fn fill_window(&mut self) {
        if self.calls.len() < self.window && self.calls_more {
            self.fill_calls(self.window);
        }
    }

    /// Extends the window with older calls.
    pub fn load_older(&mut self) -> Snapshot {
        if self.calls_more && self.window < CALL_WINDOW_MAX {
            self.window = (self.window + CALL_WINDOW).min(CALL_WINDOW_MAX);
            self.fill_calls(self.window);
        }
        self.snapshot()
    }

    fn reload_calls(&mut self, want: usize) {
        self.calls.clear();
        self.oldest_key = None;
        self.calls_more = true;
        self.calls_scan_capped = false;
        self.fill_calls(want);
    }

    /// Reads older calls from the best index for the filter until `want` rows match.
    fn fill_calls(&mut self, want: usize) {
        let user = self.calls_filter.exact(FilterKey::User).map(str::to_string);
        let session = self
            .calls_filter
            .exact(FilterKey::Session)
            .map(str::to_string);
        let mut scanned = 0usize;
        while self.calls.len() < want && self.calls_more {
            let page = 512;
            let before = self.oldest_key.clone();
            let result = match (&user, &session) {
                (Some(user), _) => self.store.tool_calls_by_user(user, before.as_deref(), page),
                (None, Some(session)) => {
                    self.store
                        .tool_calls_by_session(session, before.as_deref(), page)
                }
                _ => self
                    .store
                    .newest_of_type(events::TOOL_CALL, before.as_deref(), page),
            };
            let Ok((events, last_key)) = result else {
                self.calls_more = false;
                break;
            };
            if events.len() < page {
                self.calls_more = false;
            }
            scanned += events.len();
            for event in &events {
                if let Some(row) = CallRow::from_stored(event)
                    && self.calls_filter.matches(&row)
                    && self.calls.len() < want
                {
                    self.calls.push_back(row);
                }
            }
            match last_key {
                Some(key) => self.oldest_key = Some(key),
                None => self.calls_more = false,
            }
            if scanned >= FILTER_SCAN_CAP && self.calls.len() < want {
                self.calls_scan_capped = self.calls_more;
                break;
            }
        }
    }

    fn reload_states(&mut self) {
        let store = &self.store;
        let name = |r: &StateRecord| store.source_name(r.source).unwrap_or_default();
        self.state.alerts = store
            .alerts(AlertFilter::All, STATE_LIMIT)
            .unwrap_or_default()
            .iter()
            .filter_map(|r| alert_row(r, &name(r)))
            .collect();
        let mut sessions: Vec<SessionRow> = store
            .sessions(STATE_LIMIT)
            .unwrap_or_default()
            .iter()
            .filter_map(|r| session_row(r, &name(r)))
            .collect();
        sessions.sort_by_key(|r| std::cmp::Reverse(r.time_ms));
        self.state.sessions = sessions;
        self.state.changes = store
            .pending_changes(STATE_LIMIT)
            .unwrap_or_default()
            .iter()
            .filter_map(|r| change_row(r, &name(r)))
            .filter(|c| c.change.status == ChangeStatus::Pending)
            .collect();
        let (decided, _) = store
            .newest_of_type(events::TOOL_CHANGE, None, 200)
            .unwrap_or_default();
        self.state.decided = decided
            .iter()
            .filter_map(|e| {
                let (env, data) = decode(&e.json)?;
                match data {
                    EventData::ToolChange(change) if change.status != ChangeStatus::Pending => {
                        Some(ChangeRow {
                            source: e.source.clone(),
                            time_ms: time_ms(&env),
                            change,
                        })
                    }
                    _ => None,
                }
            })
            .collect();
        let mut other = Vec::new();
        for kind in store.types() {
            if events::KNOWN_TYPES.contains(&kind.as_str()) {
                continue;
            }
            let (stored, _) = store.newest_of_type(&kind, None, 500).unwrap_or_default();
            for event in stored {
                let Some((env, data)) = decode(&event.json) else {
                    continue;
                };
                if let EventData::Unknown { kind, .. } = data {
                    other.push(RawRow {
                        source: event.source.clone(),
                        sequence: event.sequence,
                        time_ms: time_ms(&env),
                        kind,
                        json: event.json,
                    });
                }
            }
        }
        other.sort_by_key(|r| std::cmp::Reverse(r.time_ms));
        other.truncate(STATE_LIMIT);
        self.state.other = other;
    }

    /// A snapshot of the current state.
    pub fn snapshot_now(&mut self) -> Snapshot {
        self.snapshot()
    }

    fn snapshot(&mut self) -> Snapshot {
        self.generation += 1;
        Snapshot {
            calls: self.calls.iter().cloned().collect(),
            calls_more: self.calls_more,
            calls_scan_capped: self.calls_scan_capped,
            alerts: self.state.alerts.clone(),
            sessions: self.state.sessions.clone(),
            changes: self.state.changes.clone(),
            decided: self.state.decided.clone(),
            other: self.state.other.clone(),
            stored_events: self.store.count(),
            generation: self.generation,
            refresh_time: Duration::ZERO,
        }
    }
}

/// Runs the worker on its own thread until `requests` closes. Filter and paging requests are
/// answered at once; refreshes for new events at most once per `min_interval` (which bounds how
/// often a busy stream redraws the screen, and so the bytes sent to a remote terminal).
pub fn run_worker(
    store: Store,
    requests: Receiver<DataRequest>,
    snapshots: watch::Sender<Arc<Snapshot>>,
    min_interval: Duration,
) {
    let mut worker = DataWorker::new(store);
    let started = Instant::now();
    let mut first = worker.refresh_all();
    first.refresh_time = started.elapsed();
    let _ = snapshots.send(Arc::new(first));
    let mut next_refresh = Instant::now();
    let mut changed = false;
    loop {
        let wait = if changed {
            next_refresh.saturating_duration_since(Instant::now())
        } else {
            Duration::from_secs(1)
        };
        let request = match requests.recv_timeout(wait) {
            Ok(request) => Some(request),
            Err(RecvTimeoutError::Timeout) => {
                changed = true;
                None
            }
            Err(RecvTimeoutError::Disconnected) => return,
        };
        let began = Instant::now();
        let snapshot = match request {
            Some(DataRequest::Changed) => {
                changed = true;
                None
            }
            Some(DataRequest::CallsFilter(query)) => {
                // The first screen goes out at once; the rest of the window follows.
                let mut first = worker.set_calls_filter_first_screen(query);
                first.refresh_time = began.elapsed();
                if snapshots.send(Arc::new(first)).is_err() {
                    return;
                }
                worker.fill_window();
                Some(worker.snapshot_now())
            }
            Some(DataRequest::LoadOlder) => Some(worker.load_older()),
            None => None,
        };
        let snapshot = match snapshot {
            Some(s) => Some(s),
            None if changed && Instant::now() >= next_refresh => {
                changed = false;
                next_refresh = Instant::now() + min_interval;
                worker.refresh_new()
            }
            None => None,
        };
        if let Some(mut snapshot) = snapshot {
            snapshot.refresh_time = began.elapsed();
            if snapshots.send(Arc::new(snapshot)).is_err() {
                return;
            }
        }
    }
}

/// Starts the worker thread; returns where to send requests.
pub fn spawn_worker(store: Store, snapshots: watch::Sender<Arc<Snapshot>>) -> Sender<DataRequest> {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::Builder::new()
        .name("mcpsoc-data".into())
        .spawn(move || run_worker(store, rx, snapshots, REFRESH_INTERVAL))
        .ok();
    tx
}

impl Filterable for CallRow {
    fn field(&self, key: FilterKey) -> Option<std::borrow::Cow<'_, str>> {
        use std::borrow::Cow;
        let c = &self.call;
        match key {
            FilterKey::User => Some(Cow::Borrowed(&c.user)),
            FilterKey::Session | FilterKey::Binding => c.session.as_deref().map(Cow::Borrowed),
            FilterKey::Tool => Some(Cow::Borrowed(&c.tool)),
            FilterKey::Server => Some(Cow::Borrowed(&c.upstream)),
            FilterKey::Client => Some(Cow::Borrowed(&c.client.name)),
            FilterKey::Decision => Some(Cow::Borrowed(match c.decision {
                Decision::Allow => "allow",
                Decision::Deny => "deny",
            })),
            FilterKey::Error => Some(Cow::Borrowed(if c.is_error { "true" } else { "false" })),
            FilterKey::Type => Some(Cow::Borrowed(events::TOOL_CALL)),
            _ => None,
        }
    }

    fn text(&self) -> std::borrow::Cow<'_, str> {
        let c = &self.call;
        std::borrow::Cow::Owned(format!(
            "{} {} {} {} {} {} {} {}",
            c.user,
            c.session.as_deref().unwrap_or(""),
            c.upstream,
            c.tool,
            c.client.name,
            c.arguments,
            c.result_summary.as_deref().unwrap_or(""),
            c.reason.as_deref().unwrap_or("")
        ))
    }
}

fn severity_name(s: events::Severity) -> &'static str {
    match s {
        events::Severity::Info => "info",
        events::Severity::Low => "low",
        events::Severity::Medium => "medium",
        events::Severity::High => "high",
        events::Severity::Critical => "critical",
    }
}

fn status_name(s: events::AlertStatus) -> &'static str {
    match s {
        events::AlertStatus::New => "new",
        events::AlertStatus::Acknowledged => "acknowledged",
        events::AlertStatus::Resolved => "resolved",
    }
}

impl Filterable for AlertRow {
    fn field(&self, key: FilterKey) -> Option<std::borrow::Cow<'_, str>> {
        use std::borrow::Cow;
        let a = &self.alert;
        match key {
            FilterKey::Rule => Some(Cow::Borrowed(&a.rule)),
            FilterKey::Severity => Some(Cow::Borrowed(severity_name(a.severity))),
            FilterKey::Status => Some(Cow::Borrowed(status_name(a.status))),
            FilterKey::Owasp => serde_json::to_value(a.owasp)
                .ok()
                .and_then(|v| v.as_str().map(|s| Cow::Owned(s.to_string()))),
            FilterKey::User => a.refs.user.as_deref().map(Cow::Borrowed),
            FilterKey::Session | FilterKey::Binding => a.refs.session.as_deref().map(Cow::Borrowed),
            FilterKey::Tool => a.refs.tool.as_deref().map(Cow::Borrowed),
            FilterKey::Server => a.refs.upstream.as_deref().map(Cow::Borrowed),
            FilterKey::Type => Some(Cow::Borrowed(events::ALERT)),
            _ => None,
        }
    }

    fn text(&self) -> std::borrow::Cow<'_, str> {
        let a = &self.alert;
        let evidence = a
            .evidence
            .as_ref()
            .map(|e| e.excerpt.as_str())
            .unwrap_or("");
        std::borrow::Cow::Owned(format!(
            "{} {} {} {}",
            a.alert_id, a.rule, a.summary, evidence
        ))
    }
}

impl Filterable for SessionRow {
    fn field(&self, key: FilterKey) -> Option<std::borrow::Cow<'_, str>> {
        use std::borrow::Cow;
        let s = &self.session;
        match key {
            FilterKey::User => Some(Cow::Borrowed(&s.user)),
            FilterKey::Session | FilterKey::Binding => Some(Cow::Borrowed(&s.binding)),
            FilterKey::Client => Some(Cow::Borrowed(&s.client.name)),
            FilterKey::Server => s.upstream.as_deref().map(Cow::Borrowed),
            FilterKey::Status => serde_json::to_value(s.change)
                .ok()
                .and_then(|v| v.as_str().map(|x| Cow::Owned(x.to_string()))),
            FilterKey::Type => Some(Cow::Borrowed(events::SESSION)),
            _ => None,
        }
    }

    fn text(&self) -> std::borrow::Cow<'_, str> {
        let s = &self.session;
        std::borrow::Cow::Owned(format!(
            "{} {} {} {}",
            s.binding,
            s.client.name,
            s.upstream.as_deref().unwrap_or(""),
            s.other_user.as_deref().unwrap_or("")
        ))
    }
}

impl Filterable for ChangeRow {
    fn field(&self, key: FilterKey) -> Option<std::borrow::Cow<'_, str>> {
        use std::borrow::Cow;
        let c = &self.change;
        match key {
            FilterKey::Tool => Some(Cow::Borrowed(&c.tool)),
            FilterKey::Server => Some(Cow::Borrowed(&c.upstream)),
            FilterKey::Status => serde_json::to_value(c.status)
                .ok()
                .and_then(|v| v.as_str().map(|x| Cow::Owned(x.to_string()))),
            FilterKey::Type => Some(Cow::Borrowed(events::TOOL_CHANGE)),
            _ => None,
        }
    }

    fn text(&self) -> std::borrow::Cow<'_, str> {
        std::borrow::Cow::Owned(format!(
            "{}/{} {}",
            self.change.upstream, self.change.tool, self.change.proposed
        ))
    }
}

impl Filterable for RawRow {
    fn field(&self, key: FilterKey) -> Option<std::borrow::Cow<'_, str>> {
        match key {
            FilterKey::Type => Some(std::borrow::Cow::Borrowed(&self.kind)),
            _ => None,
        }
    }

    fn text(&self) -> std::borrow::Cow<'_, str> {
        std::borrow::Cow::Borrowed(&self.json)
    }
}
