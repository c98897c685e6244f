//! The monitor role: subscribes to gateway streams (the shared subscriber, resuming after
//! restarts), runs every detector on every event, folds findings into alerts and publishes them
//! through the shared publisher, where responders acknowledge and resolve them. Alerts and the
//! position reached in each gateway stream are stored in one atomic write, so a restart neither
//! loses nor repeats alerts; the detectors' memory (rate baselines, bursts, open alerts) is
//! stored in that same write, so a restarted monitor raises exactly the alerts an uninterrupted
//! one would. Responders suppress single findings (known false positives); suppressions are
//! applied between analysis steps and stored atomically with the events announcing them.
//! Optional automatic containment asks the gateway to revoke a session or block a tool.

pub mod analyzer;
pub mod detect;
pub mod eval;
pub mod fold;
pub mod suppress;

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;

use crate::config::{Config, ContainmentAction, ContainmentRule, PublisherConfig};
use crate::protocol::events::{Alert, AlertStatus};
use crate::protocol::{Command, CommandError, CommandErrorCode, Envelope, EventData};
use crate::store::{AlertFilter, NewEvent, Store};
use crate::stream::{CommandRequest, Publisher, SourceSpec, Subscriber, SubscriberOptions, owner};
use analyzer::{Analyzer, AnalyzerState};
use detect::{DetectorConfig, Detectors};
use fold::Folder;
use suppress::{Suppression, SuppressionState, Suppressions};

/// Events analysed per step and source.
const STEP: usize = 2000;
/// Longest pause between steps when there is nothing new (a subscriber storing events, or a
/// command, wakes the loop at once).
const IDLE: Duration = Duration::from_millis(100);

fn cursor_key(source: &str) -> String {
    format!("monitor.cursor.{source}")
}

/// Store key of the detectors' memory, written with every position.
const MEMORY_KEY: &str = "monitor.memory";

/// The detectors' memory as stored: the engine's state and the alerts still folding (by id,
/// with the time of their last finding; the alerts themselves are in the same write).
#[derive(Serialize, Deserialize)]
struct Memory {
    analyzer: AnalyzerState,
    open: Vec<(String, i64)>,
}

/// The engine, the folder and the suppressions: everything the analysis loop owns.
struct Engine {
    analyzer: Analyzer,
    folder: Folder,
    suppressions: Suppressions,
    /// Newest event time analysed, ms (to forget alerts that can no longer fold).
    newest_ms: i64,
}

impl Engine {
    /// The memory to store with a new position.
    fn memory(&mut self) -> Vec<u8> {
        self.folder.prune(self.newest_ms);
        let memory = serde_json::json!({
            "analyzer": self.analyzer.state(),
            "open": self.folder.open_ids(),
        });
        serde_json::to_vec(&memory).unwrap_or_default()
    }
}

/// Addresses of a started monitor.
#[derive(Debug, Clone, Copy)]
pub struct Running {
    /// The alert stream.
    pub stream: std::net::SocketAddr,
}

/// Runs `mcpsoc monitor` until interrupted.
pub fn run(config: &Config, data: Option<&Path>) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Runtime::new().context("cannot start the async runtime")?;
    runtime.block_on(async {
        let store = crate::runtime::open_store(config, data, "monitor")?;
        let running = start(config, store).await?;
        eprintln!("monitor: alerts on ws://{}/stream", running.stream);
        tokio::signal::ctrl_c()
            .await
            .context("waiting for Ctrl-C")?;
        Ok(())
    })
}

/// Starts the monitor on the runtime: subscribers, analysis, publisher, command owner.
pub async fn start(config: &Config, store: Store) -> anyhow::Result<Running> {
    let mc = &config.monitor;
    if mc.sources.is_empty() {
        anyhow::bail!(
            "[monitor] no sources: add [[monitor.sources]] with the gateway's stream url and a token"
        );
    }
    let detector_config = DetectorConfig {
        rules: mc.rules.clone(),
    };
    let known: Vec<&str> = Vec::new();
    let unknown = detector_config.unknown_keys(&known);
    let stateful = ["rug_pull", "auth", "session", "behaviour", "secret"];
    let typos: Vec<&str> = unknown
        .into_iter()
        .filter(|k| {
            !stateful
                .iter()
                .any(|s| k == s || k.starts_with(&format!("{s}.")))
        })
        .collect();
    if !typos.is_empty() {
        anyhow::bail!(
            "[monitor.rules] unknown rules or families: {}",
            typos.join(", ")
        );
    }
    let stream_config = mc.stream.clone().unwrap_or_else(|| PublisherConfig {
        listen: "127.0.0.1:7402".into(),
        ..PublisherConfig::default()
    });
    let options = crate::runtime::publisher_options(&stream_config, "monitor", Default::default())?;
    let (publisher, inbox) = Publisher::new(store.clone(), options, true);
    let mut subscribers = HashMap::new();
    for source in &mc.sources {
        let token = source
            .token()
            .map_err(|e| anyhow::anyhow!("[monitor.sources] {e}"))?;
        let pin = source
            .pin_sha256
            .as_deref()
            .map(crate::stream::tls::parse_pin)
            .transpose()
            .map_err(|e| anyhow::anyhow!(e))?;
        let spec = SourceSpec {
            name: source.name.clone(),
            url: source.url.clone(),
            token,
            ca_file: source.ca_file.clone(),
            pin_sha256: pin,
        };
        subscribers.insert(
            source.name.clone(),
            Subscriber::spawn(spec, store.clone(), SubscriberOptions::default()),
        );
    }
    let mut analyzer = Analyzer::new(Detectors::new(detector_config), mc.thresholds.clone());
    let mut folder = Folder::new(mc.thresholds.fold_window_secs as i64 * 1000);
    let memory = store.extra(MEMORY_KEY)?.and_then(|bytes| {
        match serde_json::from_slice::<Memory>(&bytes) {
            Ok(memory) => Some(memory),
            Err(e) => {
                tracing::warn!(error = %e, "stored detector memory unreadable; starting afresh");
                None
            }
        }
    });
    let mut newest_ms = 0;
    match memory {
        Some(memory) => {
            analyzer.restore(memory.analyzer);
            // Every fold was stored in the same write as the memory: the stored alert is the
            // folder's copy (a responder may have changed its status since; folding reads that).
            for (id, last) in memory.open {
                newest_ms = newest_ms.max(last);
                let own = publisher.source();
                if let Some(alert) = store
                    .alert(own, &id)?
                    .and_then(|record| decode_alert(&record.json))
                {
                    folder.restore(alert, last);
                }
            }
        }
        // A store from before the memory was kept: fold on from the open alerts.
        None => {
            for record in store.alerts(AlertFilter::Open, usize::MAX)? {
                if let Some(EventData::Alert(alert)) =
                    Envelope::parse(&record.json).ok().map(|e| e.decode())
                {
                    folder.restore(alert, record.time_ms);
                }
            }
        }
    }
    let suppressions = store
        .extra(suppress::STORE_KEY)?
        .map(|bytes| Suppressions::from_bytes(&bytes))
        .unwrap_or_default();
    let engine = Engine {
        analyzer,
        folder,
        suppressions,
        newest_ms,
    };
    spawn_retention(
        store,
        crate::runtime::retention(config),
        publisher.source().to_string(),
    );
    let (to_engine, engine_inbox) = mpsc::channel(64);
    if let Some(inbox) = inbox {
        tokio::spawn(commands(publisher.clone(), inbox, to_engine));
    }
    let (addr, _) = publisher.serve(&stream_config.listen).await?;
    tokio::spawn(analyse(
        publisher,
        engine,
        engine_inbox,
        Arc::new(subscribers),
        mc.containment.clone(),
    ));
    Ok(Running { stream: addr })
}

/// The time retention may treat as "now" without dropping a gateway event the analysis has not
/// reached: no later than the next event to analyse (or the last analysed one) of every source.
/// A recorded stream replayed with old timestamps is analysed before it is pruned. The flag
/// says every source is analysed to its end (byte-based pruning waits until then).
fn retention_clock(store: &Store, own: &str, now_ms: i64) -> (i64, bool) {
    let mut clock = now_ms;
    let mut caught_up = true;
    for source in store.sources().into_iter().filter(|s| s != own) {
        let cursor = store
            .extra(&cursor_key(&source))
            .ok()
            .flatten()
            .and_then(|v| crate::store::keys::u64_value(&v))
            .unwrap_or(0);
        if store.last_sequence(&source) > cursor {
            caught_up = false;
        }
        let next = store.event(&source, cursor + 1).ok().flatten();
        let marker = next.or_else(|| store.event(&source, cursor).ok().flatten());
        if let Some(time) = marker
            .and_then(|e| e.envelope().ok())
            .and_then(|e| e.timestamp().ok())
        {
            clock = clock.min(time.timestamp_millis());
        } else if cursor == 0 && store.last_sequence(&source) > 0 {
            // Nothing analysed yet and the first event unreadable: prune nothing by age.
            clock = i64::MIN / 2;
        }
    }
    (clock, caught_up)
}

/// Applies the retention policy every minute, never to gateway events not yet analysed.
fn spawn_retention(store: Store, policy: crate::store::Retention, own: String) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(60));
        loop {
            tick.tick().await;
            let (store, own) = (store.clone(), own.clone());
            let pruned = tokio::task::spawn_blocking(move || {
                let (clock, caught_up) =
                    retention_clock(&store, &own, chrono::Utc::now().timestamp_millis());
                let policy = crate::store::Retention {
                    max_age: policy.max_age,
                    max_bytes: policy.max_bytes.filter(|_| caught_up),
                };
                let now = chrono::DateTime::from_timestamp_millis(clock)
                    .unwrap_or(chrono::DateTime::<chrono::Utc>::MIN_UTC);
                store.prune(&policy, now, 1000)
            })
            .await;
            match pruned {
                Ok(Ok(report)) if report.removed > 0 => {
                    tracing::info!(removed = report.removed, "retention pruned events")
                }
                Ok(Err(e)) => tracing::warn!(error = %e, "retention failed"),
                _ => {}
            }
        }
    });
}

/// The monitor carries out acknowledge and resolve, and hands suppressions to the analysis loop
/// (which owns the folder and applies them between steps); approvals belong to the gateway.
async fn commands(
    publisher: Publisher,
    mut inbox: mpsc::Receiver<CommandRequest>,
    engine: mpsc::Sender<CommandRequest>,
) {
    while let Some(request) = inbox.recv().await {
        let result = match request.command {
            Command::AcknowledgeAlert { .. } | Command::ResolveAlert { .. } => {
                owner::apply(&publisher, &request.by, request.command).await
            }
            Command::SuppressFinding(_) | Command::Unsuppress { .. } => {
                if let Err(mpsc::error::SendError(request)) = engine.send(request).await {
                    let _ = request.reply.send(Err(CommandError::new(
                        CommandErrorCode::Unavailable,
                        "the monitor's analysis is not running",
                    )));
                }
                continue;
            }
            other => Err(CommandError::new(
                CommandErrorCode::Unsupported,
                format!(
                    "the monitor does not carry out {}: send it to the gateway",
                    other.action()
                ),
            )),
        };
        let _ = request.reply.send(result);
    }
}

/// Decodes an alert state record.
fn decode_alert(json: &str) -> Option<Alert> {
    match Envelope::parse(json).ok()?.decode() {
        EventData::Alert(a) => Some(a),
        _ => None,
    }
}

/// Carries out a suppress or unsuppress command: the suppression set, the events announcing
/// it and the alerts it resolves are stored in one write.
async fn suppression(
    publisher: &Publisher,
    engine: &mut Engine,
    by: &str,
    command: Command,
) -> Result<String, CommandError> {
    let unavailable =
        |e: String| CommandError::new(CommandErrorCode::Unavailable, format!("not stored: {e}"));
    let store = publisher.store().clone();
    let own = publisher.source().to_string();
    let mut events = Vec::new();
    let (set, result) = match command {
        Command::SuppressFinding(ask) => {
            let crate::protocol::commands::Suppress {
                rule,
                upstream,
                tool,
                tool_hash,
                user,
                alert_id,
                reason,
            } = *ask;
            let prompted = match &alert_id {
                Some(id) => {
                    let record = store
                        .alert(&own, id)
                        .map_err(|e| unavailable(e.to_string()))?;
                    let alert = record.and_then(|r| decode_alert(&r.json)).ok_or_else(|| {
                        CommandError::new(CommandErrorCode::NotFound, format!("no alert {id}"))
                    })?;
                    if alert.rule != rule {
                        return Err(CommandError::new(
                            CommandErrorCode::Malformed,
                            format!("alert {id} is of rule {}, not {rule}", alert.rule),
                        ));
                    }
                    Some(alert)
                }
                None => None,
            };
            let known = match (&upstream, &tool) {
                (Some(u), Some(t)) => engine.analyzer.tool_hash(u, t).map(str::to_string),
                _ => None,
            };
            // The alert that prompted it knows its hash best.
            let known = prompted
                .as_ref()
                .and_then(|a| a.refs.tool_hash.clone())
                .or(known);
            let request = suppress::Request {
                rule,
                upstream,
                tool,
                tool_hash,
                user,
                reason,
            };
            let mut suppression = Suppression::build(request, by, known.as_deref())?;
            if engine
                .suppressions
                .get(&suppression.suppression_id)
                .is_some()
            {
                return Ok(format!(
                    "{} already suppressed ({})",
                    suppression.subject(),
                    suppression.suppression_id
                ));
            }
            // Resolve every open alert it covers (and the one that prompted it).
            let mut candidates: Vec<Alert> = engine
                .folder
                .open()
                .into_iter()
                .filter_map(|(a, _)| {
                    let current = store
                        .alert(&own, &a.alert_id)
                        .ok()
                        .flatten()
                        .and_then(|r| decode_alert(&r.json));
                    current.or(Some(a))
                })
                .collect();
            if let Some(alert) = prompted
                && !candidates.iter().any(|a| a.alert_id == alert.alert_id)
            {
                candidates.push(alert);
            }
            let note = format!(
                "suppressed as a false positive by {by} ({}){}",
                suppression.suppression_id,
                suppression
                    .reason
                    .as_deref()
                    .map(|r| format!(": {r}"))
                    .unwrap_or_default()
            );
            let mut resolved = Vec::new();
            for mut alert in candidates {
                let hash = match (&alert.refs.upstream, &alert.refs.tool) {
                    (Some(u), Some(t)) => engine.analyzer.tool_hash(u, t),
                    _ => None,
                };
                if alert.status == AlertStatus::Resolved
                    || !suppression.matches(&alert.rule, &alert.refs, hash)
                {
                    continue;
                }
                alert.status = AlertStatus::Resolved;
                alert.by = Some(by.to_string());
                alert.note = Some(note.clone());
                resolved.push(alert.alert_id.clone());
                events.push(EventData::Alert(alert));
            }
            suppression.resolved = resolved;
            let result = format!(
                "{} suppressed ({}); {} open alert(s) resolved",
                suppression.subject(),
                suppression.suppression_id,
                suppression.resolved.len()
            );
            events.insert(0, suppression.event());
            let mut set = engine.suppressions.clone();
            set.insert(suppression);
            (set, result)
        }
        Command::Unsuppress {
            suppression_id,
            reason,
        } => {
            let mut set = engine.suppressions.clone();
            let Some(mut lifted) = set.remove(&suppression_id) else {
                return Err(CommandError::new(
                    CommandErrorCode::NotFound,
                    format!("no active suppression {suppression_id}"),
                ));
            };
            lifted.state = SuppressionState::Lifted;
            lifted.by = by.to_string();
            lifted.reason = reason;
            lifted.resolved.clear();
            let result = format!(
                "{} alerts again ({suppression_id} lifted)",
                lifted.subject()
            );
            events.push(lifted.event());
            (set, result)
        }
        other => {
            return Err(CommandError::new(
                CommandErrorCode::Unsupported,
                format!("{} is not a suppression", other.action()),
            ));
        }
    };
    let bytes = set.to_bytes();
    let p = publisher.clone();
    let stored = tokio::task::spawn_blocking(move || {
        p.append_blocking(
            events.into_iter().map(NewEvent::from).collect(),
            &[(suppress::STORE_KEY, bytes)],
        )
    })
    .await;
    match stored {
        Ok(Ok(seqs)) => {
            engine.suppressions = set;
            tracing::info!(%by, %result, "suppression");
            Ok(format!(
                "{result} (event {})",
                seqs.first().copied().unwrap_or(0)
            ))
        }
        Ok(Err(e)) => Err(unavailable(e.to_string())),
        Err(e) => Err(unavailable(e.to_string())),
    }
}

/// The analysis loop: new gateway events in, alerts (and the new positions and the detectors'
/// memory) out, atomically. Suppress commands are carried out between steps.
async fn analyse(
    publisher: Publisher,
    mut engine: Engine,
    mut inbox: mpsc::Receiver<CommandRequest>,
    subscribers: Arc<HashMap<String, Subscriber>>,
    containment: Vec<ContainmentRule>,
) {
    let own = publisher.source().to_string();
    // Wake up as soon as a subscriber stores gateway events.
    let stored = Arc::new(tokio::sync::Notify::new());
    for subscriber in subscribers.values() {
        let mut status = subscriber.status();
        let stored = stored.clone();
        tokio::spawn(async move {
            let mut last = status.borrow().stored;
            while status.changed().await.is_ok() {
                let now = status.borrow_and_update().stored;
                if now != last {
                    last = now;
                    stored.notify_one();
                }
            }
        });
    }
    loop {
        while let Ok(request) = inbox.try_recv() {
            let result = suppression(&publisher, &mut engine, &request.by, request.command).await;
            let _ = request.reply.send(result);
        }
        let mut busy = false;
        let store = publisher.store().clone();
        for source in store.sources().into_iter().filter(|s| *s != own) {
            let key = cursor_key(&source);
            let after = store
                .extra(&key)
                .ok()
                .flatten()
                .and_then(|v| crate::store::keys::u64_value(&v))
                .unwrap_or(0);
            let (s2, src) = (store.clone(), source.clone());
            let events =
                match tokio::task::spawn_blocking(move || s2.events_after(&src, after, STEP)).await
                {
                    Ok(Ok(events)) => events,
                    _ => continue,
                };
            let Some(last) = events.last().map(|e| e.sequence) else {
                continue;
            };
            busy = true;
            let mut latest: Vec<Alert> = Vec::new();
            let mut new_ids = Vec::new();
            let current = |id: &str| {
                store
                    .alert(&own, id)
                    .ok()
                    .flatten()
                    .and_then(|r| decode_alert(&r.json))
            };
            for event in &events {
                let Ok(envelope) = Envelope::parse(&event.json) else {
                    continue;
                };
                for draft in engine.analyzer.observe(&envelope) {
                    engine.newest_ms = engine.newest_ms.max(draft.time_ms);
                    let known = match (&draft.refs.upstream, &draft.refs.tool) {
                        (Some(u), Some(t)) => engine.analyzer.tool_hash(u, t),
                        _ => None,
                    };
                    if let Some(s) =
                        engine
                            .suppressions
                            .matching(&draft.finding.rule, &draft.refs, known)
                    {
                        tracing::debug!(suppression = %s.suppression_id, rule = %draft.finding.rule, "finding suppressed");
                        continue;
                    }
                    let folded = engine.folder.fold(draft, current);
                    if folded.is_new {
                        new_ids.push(folded.alert.alert_id.clone());
                    }
                    // One event per alert per step: the latest state wins.
                    match latest
                        .iter_mut()
                        .find(|a| a.alert_id == folded.alert.alert_id)
                    {
                        Some(slot) => *slot = folded.alert,
                        None => latest.push(folded.alert),
                    }
                }
            }
            let to_contain: Vec<Alert> = latest
                .iter()
                .filter(|a| new_ids.contains(&a.alert_id))
                .cloned()
                .collect();
            let events: Vec<NewEvent> = latest
                .into_iter()
                .map(|a| NewEvent::from(EventData::Alert(a)))
                .collect();
            let memory = engine.memory();
            let p = publisher.clone();
            let stored = tokio::task::spawn_blocking(move || {
                p.append_blocking(
                    events,
                    &[(&key, last.to_be_bytes().to_vec()), (MEMORY_KEY, memory)],
                )
            })
            .await;
            if !matches!(stored, Ok(Ok(_))) {
                // The engine has moved on past events whose alerts are not stored: start again
                // from the stored memory rather than raise them twice or never.
                tracing::error!(%source, "cannot store alerts; exiting so that a restart resumes from the stored state");
                std::process::exit(70);
            }
            for alert in to_contain {
                contain(&publisher, &subscribers, &containment, &source, alert).await;
            }
        }
        if !busy {
            let request = tokio::select! {
                request = inbox.recv() => request,
                _ = stored.notified() => None,
                _ = tokio::time::sleep(IDLE) => None,
            };
            if let Some(request) = request {
                let result =
                    suppression(&publisher, &mut engine, &request.by, request.command).await;
                let _ = request.reply.send(result);
            }
        }
    }
}

/// Automatic containment of a new alert, when a rule asks for it; the alert records the outcome.
async fn contain(
    publisher: &Publisher,
    subscribers: &HashMap<String, Subscriber>,
    rules: &[ContainmentRule],
    source: &str,
    mut alert: Alert,
) {
    let family = alert.rule.split('.').next().unwrap_or("");
    let Some(rule) = rules
        .iter()
        .find(|r| (r.rule == alert.rule || r.rule == family) && alert.severity >= r.min_severity)
    else {
        return;
    };
    let reason = Some(format!(
        "automatic containment of alert {} ({})",
        alert.alert_id, alert.rule
    ));
    let command = match rule.action {
        ContainmentAction::RevokeSession => alert
            .refs
            .session
            .clone()
            .map(|binding| Command::RevokeSession { binding, reason }),
        ContainmentAction::BlockTool => match (&alert.refs.upstream, &alert.refs.tool) {
            (Some(upstream), Some(tool)) => Some(Command::BlockTool {
                upstream: upstream.clone(),
                tool: tool.clone(),
                reason,
            }),
            _ => None,
        },
    };
    let Some(command) = command else { return };
    let action = command.action();
    let subscriber = subscribers
        .values()
        .find(|s| s.status().borrow().source.as_deref() == Some(source));
    let outcome = match subscriber {
        None => format!("automatic {action} not sent: no link to {source}"),
        Some(s) => match s.command(command).await {
            Ok(reply) if reply.ok => {
                format!("automatic {action}: {}", reply.result.unwrap_or_default())
            }
            Ok(reply) => format!(
                "automatic {action} refused: {}",
                reply.error.map(|e| e.to_string()).unwrap_or_default()
            ),
            Err(e) => format!("automatic {action} not carried out: {e}"),
        },
    };
    tracing::info!(alert = %alert.alert_id, %outcome, "containment");
    alert.note = Some(outcome);
    alert.by = Some("monitor".into());
    if alert.status == AlertStatus::New {
        let _ = publisher.publish(EventData::Alert(alert)).await;
    }
}
