//! The monitor role: subscribes to gateway streams (the shared subscriber, resuming after
//! restarts), runs every detector on every event, folds findings into alerts and publishes them
//! through the shared publisher, where responders acknowledge and resolve them. Alerts and the
//! position reached in each gateway stream are stored in one atomic write, so a restart neither
//! loses nor repeats alerts. Optional automatic containment asks the gateway to revoke a session
//! or block a tool.

pub mod analyzer;
pub mod detect;
pub mod eval;
pub mod fold;

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio::sync::mpsc;

use crate::config::{Config, ContainmentAction, ContainmentRule, PublisherConfig};
use crate::protocol::events::{Alert, AlertStatus};
use crate::protocol::{Command, CommandError, CommandErrorCode, Envelope, EventData};
use crate::store::{AlertFilter, NewEvent, Store};
use crate::stream::{CommandRequest, Publisher, SourceSpec, Subscriber, SubscriberOptions, owner};
use analyzer::Analyzer;
use detect::{DetectorConfig, Detectors};
use fold::Folder;

/// Events analysed per step and source.
const STEP: usize = 2000;
/// Pause between steps when there is nothing new.
const IDLE: Duration = Duration::from_millis(100);

fn cursor_key(source: &str) -> String {
    format!("monitor.cursor.{source}")
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
    if let Some(inbox) = inbox {
        tokio::spawn(commands(publisher.clone(), inbox));
    }
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
    let analyzer = Analyzer::new(Detectors::new(detector_config), mc.thresholds.clone());
    let mut folder = Folder::new(mc.thresholds.fold_window_secs as i64 * 1000);
    for record in store.alerts(AlertFilter::Open, usize::MAX)? {
        if let Some(EventData::Alert(alert)) =
            Envelope::parse(&record.json).ok().map(|e| e.decode())
        {
            folder.restore(alert, record.time_ms);
        }
    }
    crate::runtime::spawn_retention(store, crate::runtime::retention(config));
    let (addr, _) = publisher.serve(&stream_config.listen).await?;
    tokio::spawn(analyse(
        publisher,
        analyzer,
        folder,
        Arc::new(subscribers),
        mc.containment.clone(),
    ));
    Ok(Running { stream: addr })
}

/// The monitor carries out acknowledge and resolve; approvals belong to the gateway.
async fn commands(publisher: Publisher, mut inbox: mpsc::Receiver<CommandRequest>) {
    while let Some(request) = inbox.recv().await {
        let result = match request.command {
            Command::AcknowledgeAlert { .. } | Command::ResolveAlert { .. } => {
                owner::apply(&publisher, &request.by, request.command).await
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

/// The analysis loop: new gateway events in, alerts (and the new positions) out, atomically.
async fn analyse(
    publisher: Publisher,
    mut analyzer: Analyzer,
    mut folder: Folder,
    subscribers: Arc<HashMap<String, Subscriber>>,
    containment: Vec<ContainmentRule>,
) {
    let own = publisher.source().to_string();
    loop {
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
            for event in &events {
                let Ok(envelope) = Envelope::parse(&event.json) else {
                    continue;
                };
                for draft in analyzer.observe(&envelope) {
                    let current = |id: &str| {
                        store.alert(&own, id).ok().flatten().and_then(|r| {
                            match Envelope::parse(&r.json).ok()?.decode() {
                                EventData::Alert(a) => Some(a),
                                _ => None,
                            }
                        })
                    };
                    let folded = folder.fold(draft, current);
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
            let p = publisher.clone();
            let stored = tokio::task::spawn_blocking(move || {
                p.append_blocking(events, &[(&key, last.to_be_bytes().to_vec())])
            })
            .await;
            if !matches!(stored, Ok(Ok(_))) {
                tracing::error!(%source, "cannot store alerts; retrying");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
            for alert in to_contain {
                contain(&publisher, &subscribers, &containment, &source, alert).await;
            }
        }
        if !busy {
            tokio::time::sleep(IDLE).await;
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
