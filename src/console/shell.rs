//! The console's impure shell: terminal, subscribers, data worker, and the loop that feeds
//! actions to `update` and carries out its effects.

use std::io::Write;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use crossterm::event::{Event, EventStream, KeyEventKind};
use futures_util::StreamExt;
use tokio::sync::{mpsc, watch};

use super::app::{Action, App, Effect, Pane, update};
use super::data::{self, DataRequest, Snapshot};
use super::{theme, view};
use crate::store::{Retention, Store};
use crate::stream::{SourceSpec, SourceStatus, Subscriber, SubscriberOptions};

/// Least time between two frames (about 30 per second).
const FRAME: Duration = Duration::from_millis(33);

/// Runs the UI until the user quits; the terminal is restored on every exit path (and by
/// ratatui's panic hook on a panic).
pub async fn run(
    mut app: App,
    store: Store,
    specs: Vec<SourceSpec>,
    retention: Retention,
) -> anyhow::Result<()> {
    let subscribers: Vec<Subscriber> = specs
        .into_iter()
        .map(|spec| Subscriber::spawn(spec, store.clone(), SubscriberOptions::default()))
        .collect();
    let _retention = crate::runtime::spawn_retention(store.clone(), retention);
    let (snapshot_tx, mut snapshots) = watch::channel(Arc::new(Snapshot::default()));
    let data = data::spawn_worker(store.clone(), snapshot_tx);
    let mut terminal = ratatui::try_init().context("cannot set up the terminal")?;
    let result = event_loop(
        &mut app,
        &mut terminal,
        &subscribers,
        &data,
        &mut snapshots,
        &store,
    )
    .await;
    ratatui::restore();
    for s in subscribers {
        s.stop();
    }
    result
}

async fn event_loop(
    app: &mut App,
    terminal: &mut ratatui::DefaultTerminal,
    subscribers: &[Subscriber],
    data: &std::sync::mpsc::Sender<DataRequest>,
    snapshots: &mut watch::Receiver<Arc<Snapshot>>,
    store: &Store,
) -> anyhow::Result<()> {
    let mut events = EventStream::new();
    let (actions_tx, mut actions) = mpsc::unbounded_channel::<Action>();
    let size = terminal.size().context("terminal size")?;
    update(app, Action::Resize(size.width, size.height));
    let mut statuses: Vec<watch::Receiver<SourceStatus>> =
        subscribers.iter().map(Subscriber::status).collect();
    let mut last_stored: Vec<u64> = vec![0; statuses.len()];
    let mut frame = tokio::time::interval(FRAME);
    frame.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut status_tick = tokio::time::interval(Duration::from_millis(250));
    let mut last_status_push = Instant::now() - Duration::from_secs(10);
    let mut dirty = true;
    loop {
        let mut effects = Vec::new();
        tokio::select! {
            event = events.next() => match event {
                Some(Ok(Event::Key(key))) if key.kind != KeyEventKind::Release => {
                    effects = update(app, Action::Key(key));
                    dirty = true;
                }
                Some(Ok(Event::Resize(w, h))) => {
                    update(app, Action::Resize(w, h));
                    terminal.autoresize().ok();
                    dirty = true;
                }
                Some(Ok(_)) => {}
                Some(Err(e)) => return Err(anyhow::anyhow!("reading the terminal: {e}")),
                None => return Ok(()),
            },
            changed = snapshots.changed() => {
                if changed.is_ok() {
                    let snapshot = snapshots.borrow_and_update().clone();
                    effects = update(app, Action::Snapshot(snapshot));
                    dirty = true;
                }
            }
            Some(action) = actions.recv() => {
                effects = update(app, action);
                dirty = true;
            }
            _ = status_tick.tick() => {
                let mut changed = false;
                let mut current = Vec::with_capacity(statuses.len());
                for (i, rx) in statuses.iter_mut().enumerate() {
                    changed |= rx.has_changed().unwrap_or(false);
                    let status = rx.borrow_and_update().clone();
                    if status.stored != last_stored[i] {
                        last_stored[i] = status.stored;
                        let _ = data.send(DataRequest::Changed);
                    }
                    current.push(status);
                }
                // Push states when they change, and once a second for rates and countdowns.
                if changed || last_status_push.elapsed() >= Duration::from_secs(1) {
                    last_status_push = Instant::now();
                    update(app, Action::Sources(current, Instant::now()));
                    dirty = true;
                }
            }
            _ = frame.tick() => {
                if dirty {
                    terminal.draw(|f| view::draw(f, app)).context("drawing")?;
                    dirty = false;
                }
            }
        }
        for effect in effects {
            carry_out(effect, app, subscribers, data, &actions_tx, store);
        }
        if app.quit {
            return Ok(());
        }
    }
}

fn carry_out(
    effect: Effect,
    app: &App,
    subscribers: &[Subscriber],
    data: &std::sync::mpsc::Sender<DataRequest>,
    actions: &mpsc::UnboundedSender<Action>,
    store: &Store,
) {
    match effect {
        Effect::Send(pending) => {
            let target = pending.target.clone();
            let Some(subscriber) = subscribers
                .iter()
                .find(|s| s.status().borrow().source.as_deref() == Some(pending.source.as_str()))
            else {
                let _ = actions.send(Action::CommandDone(
                    target,
                    Err(format!("no connection to source {}", pending.source)),
                ));
                return;
            };
            let future = subscriber.command(pending.command);
            let actions = actions.clone();
            tokio::spawn(async move {
                let result = future.await.map_err(|e| e.to_string());
                let _ = actions.send(Action::CommandDone(target, result));
            });
        }
        Effect::CallsFilter(query) => {
            let _ = data.send(DataRequest::CallsFilter(query));
        }
        Effect::LoadOlder => {
            let _ = data.send(DataRequest::LoadOlder);
        }
        Effect::Bell => {
            let mut out = std::io::stdout();
            let _ = out.write_all(b"\x07");
            let _ = out.flush();
        }
        Effect::LoadTheme(name) => {
            let actions = actions.clone();
            tokio::task::spawn_blocking(move || {
                let loaded = theme::Theme::load(&name)
                    .map_err(|e| e.to_string())
                    .map(|t| {
                        let t = if theme::no_color_requested() {
                            t.no_color()
                        } else {
                            t
                        };
                        (name, Box::new(t))
                    });
                let _ = actions.send(Action::ThemeLoaded(loaded));
            });
        }
        Effect::Export(path) => {
            let (snapshot, pane, visible) = (
                app.snapshot.clone(),
                app.pane,
                app.current().visible.clone(),
            );
            let (store, actions) = (store.clone(), actions.clone());
            tokio::task::spawn_blocking(move || {
                let lines = export_lines(&snapshot, pane, &visible, &store);
                let result = std::fs::write(&path, lines.join("\n") + "\n")
                    .map(|_| format!("exported {} rows to {path}", lines.len()))
                    .map_err(|e| format!("cannot write {path}: {e}"));
                let _ = actions.send(Action::Exported(result));
            });
        }
    }
}

/// The current pane's rows as JSON lines: tool calls and raw events as stored, state rows as
/// their latest payload.
fn export_lines(s: &Snapshot, pane: Pane, visible: &[usize], store: &Store) -> Vec<String> {
    let wrap = |source: &str, time_ms: i64, kind: &str, data: serde_json::Value| {
        serde_json::json!({"source": source, "time": view::full_time(time_ms), "type": kind, "data": data}).to_string()
    };
    match pane {
        Pane::Calls => s
            .calls
            .iter()
            .filter_map(|r| {
                store
                    .event(&r.source, r.sequence)
                    .ok()
                    .flatten()
                    .map(|e| e.json)
            })
            .collect(),
        Pane::Alerts => visible
            .iter()
            .filter_map(|&i| s.alerts.get(i))
            .map(|r| {
                wrap(
                    &r.source,
                    r.time_ms,
                    crate::protocol::events::ALERT,
                    serde_json::to_value(&r.alert).unwrap_or_default(),
                )
            })
            .collect(),
        Pane::Sessions => visible
            .iter()
            .filter_map(|&i| s.sessions.get(i))
            .map(|r| {
                wrap(
                    &r.source,
                    r.time_ms,
                    crate::protocol::events::SESSION,
                    serde_json::to_value(&r.session).unwrap_or_default(),
                )
            })
            .collect(),
        Pane::Approvals => visible
            .iter()
            .filter_map(|&i| s.changes.get(i))
            .map(|r| {
                wrap(
                    &r.source,
                    r.time_ms,
                    crate::protocol::events::TOOL_CHANGE,
                    serde_json::to_value(&r.change).unwrap_or_default(),
                )
            })
            .collect(),
        Pane::Other => visible
            .iter()
            .filter_map(|&i| s.other.get(i))
            .map(|r| r.json.clone())
            .collect(),
    }
}
