//! Retention: drop the oldest events by age and by stored size, in small atomic chunks so that
//! ingest never waits long for the writer lock. Current-state records (sessions, pending changes,
//! alerts) and resume positions are kept: pruning history never forgets an open approval.

use std::time::Duration;

use chrono::{DateTime, Utc};

use super::state::BatchBuilder;
use super::view::EventView;
use super::{Store, StoreError, chain, keys};

/// How much history to keep.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Retention {
    /// Drop events older than this.
    pub max_age: Option<Duration>,
    /// Drop the oldest events while stored event bytes exceed this.
    pub max_bytes: Option<u64>,
}

/// What a prune removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PruneReport {
    /// Events removed.
    pub removed: u64,
    /// Bytes of event JSON removed.
    pub bytes: u64,
}

impl Store {
    /// Applies a retention policy, removing at most `chunk` events per atomic step and
    /// releasing the writer lock between steps.
    pub fn prune(
        &self,
        policy: &Retention,
        now: DateTime<Utc>,
        chunk: usize,
    ) -> Result<PruneReport, StoreError> {
        let chunk = chunk.max(1);
        let mut report = PruneReport::default();
        if let Some(age) = policy.max_age {
            let cutoff = now.timestamp_millis() - age.as_millis() as i64;
            for source in self.source_ids() {
                loop {
                    let step = self.prune_source(source, chunk, |time_ms, _| time_ms < cutoff)?;
                    report.removed += step.removed;
                    report.bytes += step.bytes;
                    if step.removed < chunk as u64 {
                        break;
                    }
                }
            }
        }
        if let Some(max_bytes) = policy.max_bytes {
            while self.stored_bytes() > max_bytes {
                let Some((source, next_oldest)) = self.source_with_oldest_event()? else {
                    break;
                };
                let mut excess = self.stored_bytes().saturating_sub(max_bytes) as i64;
                // Stop at events newer than another source's oldest: that one goes first.
                let step = self.prune_source(source, chunk, |time_ms, len| {
                    let take = excess > 0 && next_oldest.is_none_or(|t| time_ms <= t);
                    excess -= len as i64;
                    take
                })?;
                if step.removed == 0 {
                    break;
                }
                report.removed += step.removed;
                report.bytes += step.bytes;
            }
        }
        Ok(report)
    }

    pub(super) fn source_ids(&self) -> Vec<u32> {
        self.inner
            .dicts
            .read()
            .map(|d| d.source_names.keys().copied().collect())
            .unwrap_or_default()
    }

    /// The source whose first stored event is the oldest, and the time of the oldest first
    /// event of any other source.
    fn source_with_oldest_event(&self) -> Result<Option<(u32, Option<i64>)>, StoreError> {
        let mut best: Option<(i64, u32)> = None;
        let mut runner_up: Option<i64> = None;
        for source in self.source_ids() {
            if let Some(item) = self
                .inner
                .tree
                .scan_prefix(keys::event_prefix(source))
                .next()
            {
                let (_, v) = item?;
                let text =
                    std::str::from_utf8(&v).map_err(|_| StoreError::Corrupt("utf-8".into()))?;
                let time = EventView::parse(text)?.time_ms;
                match best {
                    Some((t, _)) if time >= t => {
                        runner_up = Some(runner_up.map_or(time, |r| r.min(time)));
                    }
                    _ => {
                        runner_up = best.map(|(t, _)| t);
                        best = Some((time, source));
                    }
                }
            }
        }
        Ok(best.map(|(_, s)| (s, runner_up)))
    }

    /// Removes, oldest first, up to `chunk` events of one source while `take(time_ms, len)` holds.
    fn prune_source(
        &self,
        source: u32,
        chunk: usize,
        mut take: impl FnMut(i64, usize) -> bool,
    ) -> Result<PruneReport, StoreError> {
        let mut w = self.writer()?;
        let mut batch = BatchBuilder::new(self);
        let mut report = PruneReport::default();
        let mut anchor = None;
        for item in self
            .inner
            .tree
            .scan_prefix(keys::event_prefix(source))
            .take(chunk)
        {
            let (_, v) = item?;
            let text = std::str::from_utf8(&v).map_err(|_| StoreError::Corrupt("utf-8".into()))?;
            let view = EventView::parse(text)?;
            if !take(view.time_ms, text.len()) {
                break;
            }
            let type_id = self
                .type_id(&view.kind)
                .ok_or_else(|| StoreError::Corrupt("type id".into()))?;
            if let Some((_, link)) = chain::unseal(text) {
                anchor = Some(chain::encode_anchor(view.sequence, link));
            }
            batch.remove_event(type_id, source, &view, text.len());
            report.removed += 1;
            report.bytes += text.len() as u64;
        }
        if let (Some(anchor), Some(name)) = (anchor, self.source_name(source)) {
            // The link of the newest pruned event, so the chain still starts from a known one.
            batch.put_extra(&chain::anchor_key(&name), &anchor);
        }
        batch.commit(&mut w)?;
        Ok(report)
    }
}
