//! Folding: repeated findings on the same subject within a window become one alert with a
//! count, not a flood. The fold key is the rule plus what the alert is about.

use std::collections::HashMap;

use sha2::{Digest, Sha256};

use super::analyzer::Draft;
use crate::protocol::events::{Alert, AlertRefs, AlertStatus};

/// Most event refs kept on one alert.
const MAX_REFS: usize = 20;

/// The fold key of a finding.
pub fn fold_key(rule: &str, refs: &AlertRefs) -> String {
    let part = |v: &Option<String>| v.clone().unwrap_or_default();
    format!(
        "{rule}|{}|{}|{}|{}|{}",
        part(&refs.upstream),
        part(&refs.tool),
        part(&refs.tool_hash),
        part(&refs.session),
        part(&refs.user)
    )
}

/// Open alerts by fold key.
pub struct Folder {
    window_ms: i64,
    open: HashMap<String, (Alert, i64)>,
}

/// What folding a draft produced.
pub struct Folded {
    /// The alert as it now stands (new, or with a higher count).
    pub alert: Alert,
    /// Whether it is a new alert (containment only acts on new ones).
    pub is_new: bool,
}

impl Folder {
    /// An empty folder.
    pub fn new(window_ms: i64) -> Self {
        Self {
            window_ms,
            open: HashMap::new(),
        }
    }

    /// Remembers an open alert found in the store at start (so a restart keeps folding).
    pub fn restore(&mut self, alert: Alert, time_ms: i64) {
        if alert.status != AlertStatus::Resolved {
            self.open
                .insert(fold_key(&alert.rule, &alert.refs), (alert, time_ms));
        }
    }

    /// Forgets alerts whose last finding is more than the window before `now_ms`: a new
    /// finding on them would start a new alert anyway.
    pub fn prune(&mut self, now_ms: i64) {
        let window = self.window_ms;
        self.open.retain(|_, (_, last)| now_ms - *last <= window);
    }

    /// The ids of the alerts still folding, with the time of their last finding (to store).
    pub fn open_ids(&self) -> Vec<(String, i64)> {
        let mut open: Vec<(String, i64)> = self
            .open
            .values()
            .map(|(a, last)| (a.alert_id.clone(), *last))
            .collect();
        open.sort();
        open
    }

    /// The alerts still folding, with the time of their last finding.
    pub fn open(&self) -> Vec<(Alert, i64)> {
        let mut open: Vec<(Alert, i64)> = self.open.values().cloned().collect();
        open.sort_by(|a, b| a.0.alert_id.cmp(&b.0.alert_id));
        open
    }

    /// Folds a draft. `current` gives the alert's latest state from the store (a responder may
    /// have acknowledged or resolved it since).
    pub fn fold(&mut self, draft: Draft, current: impl Fn(&str) -> Option<Alert>) -> Folded {
        let key = fold_key(&draft.finding.rule, &draft.refs);
        if let Some((alert, last)) = self.open.get_mut(&key) {
            let latest = current(&alert.alert_id);
            if let Some(latest) = &latest {
                alert.status = latest.status;
                alert.by = latest.by.clone();
                alert.note = latest.note.clone();
            }
            if alert.status != AlertStatus::Resolved && draft.time_ms - *last <= self.window_ms {
                alert.count += 1;
                *last = draft.time_ms;
                for e in draft.refs.events {
                    if alert.refs.events.len() < MAX_REFS {
                        alert.refs.events.push(e);
                    }
                }
                return Folded {
                    alert: alert.clone(),
                    is_new: false,
                };
            }
        }
        let digest =
            Sha256::digest(format!("{key}|{}|{:?}", draft.time_ms, draft.refs.events).as_bytes());
        let alert_id = format!("al-{}", &hex::encode(digest)[..16]);
        let time_ms = draft.time_ms;
        let alert = draft.finding.into_alert(alert_id, draft.refs);
        self.open.insert(key, (alert.clone(), time_ms));
        Folded {
            alert,
            is_new: true,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::monitor::detect::{Family, Finding};
    use crate::protocol::events::{EventRef, Evidence, OwaspMcp, Severity};

    fn draft(t: i64, seq: u64) -> Draft {
        Draft {
            finding: Finding {
                rule: "auth.wrong_audience".into(),
                family: Family::Poisoning,
                severity: Severity::High,
                owasp: OwaspMcp::Mcp07InsufficientAuth,
                summary: "s".into(),
                evidence: Evidence {
                    field: "f".into(),
                    excerpt: "e".into(),
                    start: 0,
                    end: 1,
                },
            },
            refs: AlertRefs {
                user: Some("bob".into()),
                events: vec![EventRef {
                    source: "gw".into(),
                    sequence: seq,
                }],
                ..Default::default()
            },
            time_ms: t,
        }
    }

    #[test]
    fn repeats_fold_within_the_window_and_start_anew_after() {
        let mut f = Folder::new(60_000);
        let a = f.fold(draft(0, 1), |_| None);
        assert!(a.is_new);
        let b = f.fold(draft(1_000, 2), |_| None);
        assert!(!b.is_new);
        assert_eq!(b.alert.alert_id, a.alert.alert_id);
        assert_eq!(b.alert.count, 2);
        assert_eq!(b.alert.refs.events.len(), 2);
        let c = f.fold(draft(120_000, 3), |_| None);
        assert!(c.is_new);
        assert_ne!(c.alert.alert_id, a.alert.alert_id);
    }

    #[test]
    fn a_resolved_alert_is_not_reopened_and_ack_is_kept() {
        let mut f = Folder::new(60_000);
        let a = f.fold(draft(0, 1), |_| None).alert;
        let mut acked = a.clone();
        acked.status = AlertStatus::Acknowledged;
        let b = f.fold(draft(1, 2), |_| Some(acked.clone()));
        assert_eq!(b.alert.status, AlertStatus::Acknowledged);
        let mut resolved = a;
        resolved.status = AlertStatus::Resolved;
        let c = f.fold(draft(2, 3), |_| Some(resolved.clone()));
        assert!(c.is_new);
    }
}
