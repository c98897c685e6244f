//! Read paths: every query is a bounded range read over an index, never a full scan (except the
//! explicit whole-store iterator used by export and consistency checks).

use super::state::StateRecord;
use super::view::{StateKind, change_key};
use super::{Store, StoreError, keys};
use crate::protocol::{Envelope, EnvelopeError};

/// One stored event as it came off the wire.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredEvent {
    /// Source id.
    pub source: String,
    /// Sequence within the source.
    pub sequence: u64,
    /// The event's JSON text.
    pub json: String,
}

impl StoredEvent {
    /// Parses the envelope.
    pub fn envelope(&self) -> Result<Envelope, EnvelopeError> {
        Envelope::parse(&self.json)
    }
}

/// Which alerts to list.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum AlertFilter {
    /// All alerts, by status (new first), then severity, then newest.
    #[default]
    All,
    /// Only new ones.
    New,
    /// New and acknowledged.
    Open,
}

impl Store {
    fn load(&self, source: u32, seq: u64) -> Result<Option<StoredEvent>, StoreError> {
        let Some(bytes) = self.inner.tree.get(keys::event(source, seq))? else {
            return Ok(None);
        };
        let name = self
            .source_name(source)
            .ok_or_else(|| StoreError::Corrupt("source id".into()))?;
        let json =
            String::from_utf8(bytes.to_vec()).map_err(|_| StoreError::Corrupt("utf-8".into()))?;
        Ok(Some(StoredEvent {
            source: name,
            sequence: seq,
            json,
        }))
    }

    /// One event by source and sequence.
    pub fn event(&self, source: &str, seq: u64) -> Result<Option<StoredEvent>, StoreError> {
        match self.source_id(source) {
            Some(id) => self.load(id, seq),
            None => Ok(None),
        }
    }

    /// Up to `limit` events of `source` after sequence `after`, in order (the replay read).
    pub fn events_after(
        &self,
        source: &str,
        after: u64,
        limit: usize,
    ) -> Result<Vec<StoredEvent>, StoreError> {
        let Some(id) = self.source_id(source) else {
            return Ok(Vec::new());
        };
        let start = keys::event(id, after.saturating_add(1));
        let end = keys::event(id, u64::MAX);
        let mut out = Vec::with_capacity(limit.min(4096));
        for item in self.inner.tree.range(start..=end).take(limit) {
            let (k, v) = item?;
            let (_, seq) =
                keys::parse_event(&k).ok_or_else(|| StoreError::Corrupt("event key".into()))?;
            let json =
                String::from_utf8(v.to_vec()).map_err(|_| StoreError::Corrupt("utf-8".into()))?;
            out.push(StoredEvent {
                source: source.to_string(),
                sequence: seq,
                json,
            });
        }
        Ok(out)
    }

    /// The lowest sequence still stored for a source (after retention), if any.
    pub fn first_sequence(&self, source: &str) -> Result<Option<u64>, StoreError> {
        let Some(id) = self.source_id(source) else {
            return Ok(None);
        };
        match self.inner.tree.scan_prefix(keys::event_prefix(id)).next() {
            Some(item) => Ok(keys::parse_event(&item?.0).map(|(_, s)| s)),
            None => Ok(None),
        }
    }

    /// Reads events named by index keys under `prefix`, newest first, skipping keys up to and
    /// including `before` (a key returned earlier, for paging). Returns events and the last key.
    fn newest_under(
        &self,
        prefix: &[u8],
        before: Option<&[u8]>,
        limit: usize,
    ) -> Result<(Vec<StoredEvent>, Option<Vec<u8>>), StoreError> {
        let iter = match before {
            Some(before) => self.inner.tree.range(prefix.to_vec()..before.to_vec()),
            None => self.inner.tree.scan_prefix(prefix),
        };
        let mut out = Vec::with_capacity(limit.min(1024));
        let mut last = None;
        for item in iter.rev() {
            if out.len() >= limit {
                break;
            }
            let (k, _) = item?;
            if !k.starts_with(prefix) {
                continue;
            }
            let (source, seq) =
                keys::tail_ref(&k).ok_or_else(|| StoreError::Corrupt("index key".into()))?;
            if let Some(ev) = self.load(source, seq)? {
                out.push(ev);
            }
            last = Some(k.to_vec());
        }
        Ok((out, last))
    }

    /// Newest events of one type, newest first; pass the returned key as `before` for the next
    /// page.
    pub fn newest_of_type(
        &self,
        kind: &str,
        before: Option<&[u8]>,
        limit: usize,
    ) -> Result<(Vec<StoredEvent>, Option<Vec<u8>>), StoreError> {
        let Some(type_id) = self.type_id(kind) else {
            return Ok((Vec::new(), None));
        };
        let mut prefix = vec![keys::BY_TYPE_TIME];
        prefix.extend_from_slice(&type_id.to_be_bytes());
        self.newest_under(&prefix, before, limit)
    }

    /// Events of one type within a time range (ms since the epoch, inclusive), oldest first.
    pub fn of_type_between(
        &self,
        kind: &str,
        since_ms: i64,
        until_ms: i64,
    ) -> impl Iterator<Item = Result<StoredEvent, StoreError>> + '_ {
        let type_id = self.type_id(kind);
        let range = type_id.map(|t| {
            keys::by_type_time(t, since_ms, 0, 0).to_vec()
                ..=keys::by_type_time(t, until_ms, u32::MAX, u64::MAX).to_vec()
        });
        range
            .into_iter()
            .flat_map(move |r| self.inner.tree.range(r))
            .filter_map(move |item| {
                let result = item.map_err(StoreError::from).and_then(|(k, _)| {
                    let (source, seq) = keys::tail_ref(&k)
                        .ok_or_else(|| StoreError::Corrupt("index key".into()))?;
                    self.load(source, seq)
                });
                result.transpose()
            })
    }

    /// A user's tool calls, newest first.
    pub fn tool_calls_by_user(
        &self,
        user: &str,
        before: Option<&[u8]>,
        limit: usize,
    ) -> Result<(Vec<StoredEvent>, Option<Vec<u8>>), StoreError> {
        self.newest_under(&keys::call_prefix(keys::CALLS_BY_USER, user), before, limit)
    }

    /// A session's tool calls, newest first.
    pub fn tool_calls_by_session(
        &self,
        session: &str,
        before: Option<&[u8]>,
        limit: usize,
    ) -> Result<(Vec<StoredEvent>, Option<Vec<u8>>), StoreError> {
        self.newest_under(
            &keys::call_prefix(keys::CALLS_BY_SESSION, session),
            before,
            limit,
        )
    }

    /// Every stored event, by source then sequence (export, verification).
    pub fn all_events(&self) -> impl Iterator<Item = Result<StoredEvent, StoreError>> + '_ {
        self.inner.tree.scan_prefix([keys::EVENT]).map(move |item| {
            let (k, v) = item?;
            let (source, seq) =
                keys::parse_event(&k).ok_or_else(|| StoreError::Corrupt("event key".into()))?;
            let name = self
                .source_name(source)
                .ok_or_else(|| StoreError::Corrupt("source id".into()))?;
            let json =
                String::from_utf8(v.to_vec()).map_err(|_| StoreError::Corrupt("utf-8".into()))?;
            Ok(StoredEvent {
                source: name,
                sequence: seq,
                json,
            })
        })
    }

    fn state_record(
        &self,
        kind: StateKind,
        source: &str,
        entity: &str,
    ) -> Result<Option<StateRecord>, StoreError> {
        let Some(id) = self.source_id(source) else {
            return Ok(None);
        };
        match self.inner.tree.get(keys::state(kind as u8, id, entity))? {
            Some(bytes) => Ok(Some(StateRecord::decode(id, &bytes)?)),
            None => Ok(None),
        }
    }

    /// The latest event of a tool change (by upstream and tool) from `source`.
    pub fn tool_change(
        &self,
        source: &str,
        upstream: &str,
        tool: &str,
    ) -> Result<Option<StateRecord>, StoreError> {
        self.state_record(StateKind::ToolChange, source, &change_key(upstream, tool))
    }

    /// The latest event of an alert from `source`.
    pub fn alert(&self, source: &str, alert_id: &str) -> Result<Option<StateRecord>, StoreError> {
        self.state_record(StateKind::Alert, source, alert_id)
    }

    /// The latest event of a session binding from `source`.
    pub fn session(&self, source: &str, binding: &str) -> Result<Option<StateRecord>, StoreError> {
        self.state_record(StateKind::Session, source, binding)
    }

    fn states_under(
        &self,
        prefix: &[u8],
        kind: StateKind,
        limit: usize,
        stop_at_status: Option<u8>,
    ) -> Result<Vec<StateRecord>, StoreError> {
        let mut out = Vec::new();
        for item in self.inner.tree.scan_prefix(prefix) {
            if out.len() >= limit {
                break;
            }
            let (k, _) = item?;
            if let Some(stop) = stop_at_status
                && k.get(1).copied().unwrap_or(0) > stop
            {
                break;
            }
            // The entity key and source are the key's tail: source(u32) str(entity).
            let (source, entity) =
                tail_entity(&k).ok_or_else(|| StoreError::Corrupt("state index key".into()))?;
            if let Some(bytes) = self
                .inner
                .tree
                .get(keys::state(kind as u8, source, entity))?
            {
                out.push(StateRecord::decode(source, &bytes)?);
            }
        }
        Ok(out)
    }

    /// Alerts by status (new, acknowledged, resolved), then severity (critical first), then newest.
    pub fn alerts(
        &self,
        filter: AlertFilter,
        limit: usize,
    ) -> Result<Vec<StateRecord>, StoreError> {
        let stop = match filter {
            AlertFilter::All => None,
            AlertFilter::New => Some(0),
            AlertFilter::Open => Some(1),
        };
        self.states_under(&[keys::ALERTS], StateKind::Alert, limit, stop)
    }

    /// Pending tool changes, oldest first.
    pub fn pending_changes(&self, limit: usize) -> Result<Vec<StateRecord>, StoreError> {
        self.states_under(&[keys::PENDING], StateKind::ToolChange, limit, None)
    }

    /// Current session bindings (latest event of each), by source then binding.
    pub fn sessions(&self, limit: usize) -> Result<Vec<StateRecord>, StoreError> {
        let prefix = keys::state_prefix(StateKind::Session as u8);
        let mut out = Vec::new();
        for item in self.inner.tree.scan_prefix(&prefix).take(limit) {
            let (k, v) = item?;
            let source = u32::from_be_bytes(
                k.get(2..6)
                    .and_then(|b| b.try_into().ok())
                    .ok_or_else(|| StoreError::Corrupt("state key".into()))?,
            );
            out.push(StateRecord::decode(source, &v)?);
        }
        Ok(out)
    }
}

/// Reads `source(u32) str(entity)` from the end of an alert or pending index key.
fn tail_entity(key: &[u8]) -> Option<(u32, &str)> {
    // Alert keys: A status !sev !time(8) source(4) str; pending keys: P time(8) source(4) str.
    let pos = match *key.first()? {
        keys::ALERTS => 11,
        keys::PENDING => 9,
        _ => return None,
    };
    let source = u32::from_be_bytes(key.get(pos..pos + 4)?.try_into().ok()?);
    let (entity, _) = keys::read_str(key, pos + 4)?;
    Some((source, entity))
}
