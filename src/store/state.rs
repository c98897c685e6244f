//! Building one atomic write: events, their index entries, current-state records and counters.

use std::collections::HashMap;

use super::view::{EventView, StateKind};
use super::{BYTES, COUNT, Store, StoreError, Writer, keys};

/// The current state of one entity (session, tool change, alert): its latest event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StateRecord {
    /// Source id of the latest event.
    pub source: u32,
    /// Sequence of the latest event.
    pub sequence: u64,
    /// Its time, ms since the epoch.
    pub time_ms: i64,
    /// Status rank (see [`EventView::status_rank`]).
    pub status: u8,
    /// Severity rank (alerts).
    pub severity: u8,
    /// The latest event's JSON (kept even when retention prunes the event itself).
    pub json: String,
}

const HEADER: usize = 18;

impl StateRecord {
    /// Encodes for the tree (source is in the key).
    pub fn encode(&self) -> Vec<u8> {
        let mut v = Vec::with_capacity(HEADER + self.json.len());
        v.extend_from_slice(&self.sequence.to_be_bytes());
        v.extend_from_slice(&self.time_ms.to_be_bytes());
        v.push(self.status);
        v.push(self.severity);
        v.extend_from_slice(self.json.as_bytes());
        v
    }

    /// Decodes a record of `source`.
    pub fn decode(source: u32, bytes: &[u8]) -> Result<Self, StoreError> {
        let corrupt = || StoreError::Corrupt("state record".into());
        if bytes.len() < HEADER {
            return Err(corrupt());
        }
        Ok(Self {
            source,
            sequence: u64::from_be_bytes(bytes[0..8].try_into().map_err(|_| corrupt())?),
            time_ms: i64::from_be_bytes(bytes[8..16].try_into().map_err(|_| corrupt())?),
            status: bytes[16],
            severity: bytes[17],
            json: String::from_utf8(bytes[HEADER..].to_vec()).map_err(|_| corrupt())?,
        })
    }

    /// Index entries derived from this state (alerts by status/severity, pending changes).
    pub fn derived_keys(&self, kind: StateKind, entity: &str) -> Option<Vec<u8>> {
        match kind {
            StateKind::Alert => Some(keys::alert(
                self.status,
                self.severity,
                self.time_ms,
                self.source,
                entity,
            )),
            StateKind::ToolChange if self.status == 1 => {
                Some(keys::pending(self.time_ms, self.source, entity))
            }
            _ => None,
        }
    }
}

/// Index keys that belong to one event (deleted with it by retention).
pub fn event_index_keys(type_id: u16, source: u32, view: &EventView<'_>) -> Vec<Vec<u8>> {
    let mut out = vec![keys::by_type_time(type_id, view.time_ms, source, view.sequence).to_vec()];
    if view.is_tool_call() {
        if let Some(user) = view.data.user.as_deref() {
            out.push(keys::call_by(
                keys::CALLS_BY_USER,
                user,
                view.time_ms,
                source,
                view.sequence,
            ));
        }
        if let Some(session) = view.data.session.as_deref() {
            out.push(keys::call_by(
                keys::CALLS_BY_SESSION,
                session,
                view.time_ms,
                source,
                view.sequence,
            ));
        }
    }
    out
}

/// Accumulates one atomic sled batch plus the in-memory changes it implies.
pub struct BatchBuilder<'s> {
    store: &'s Store,
    batch: sled::Batch,
    states: HashMap<Vec<u8>, StateRecord>,
    new_sources: Vec<(String, u32)>,
    new_types: Vec<(String, u16)>,
    lasts: HashMap<u32, u64>,
    count_delta: i64,
    bytes_delta: i64,
    dirty: bool,
}

impl<'s> BatchBuilder<'s> {
    /// Starts an empty batch.
    pub fn new(store: &'s Store) -> Self {
        Self {
            store,
            batch: sled::Batch::default(),
            states: HashMap::new(),
            new_sources: Vec::new(),
            new_types: Vec::new(),
            lasts: HashMap::new(),
            count_delta: 0,
            bytes_delta: 0,
            dirty: false,
        }
    }

    /// A source added earlier in this batch.
    pub fn pending_source(&self, name: &str) -> Option<u32> {
        self.new_sources
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, id)| *id)
    }

    /// A type added earlier in this batch.
    pub fn pending_type(&self, name: &str) -> Option<u16> {
        self.new_types
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, id)| *id)
    }

    /// Registers a new source id.
    pub fn new_source(&mut self, name: &str, id: u32) {
        let mut by_name = vec![keys::SOURCE_BY_NAME];
        by_name.extend_from_slice(name.as_bytes());
        self.batch.insert(by_name, id.to_be_bytes().to_vec());
        let mut by_id = vec![keys::SOURCE_BY_ID];
        by_id.extend_from_slice(&id.to_be_bytes());
        self.batch.insert(by_id, name.as_bytes().to_vec());
        self.new_sources.push((name.to_string(), id));
        self.dirty = true;
    }

    /// Registers a new type id.
    pub fn new_type(&mut self, name: &str, id: u16) {
        let mut by_name = vec![keys::TYPE_BY_NAME];
        by_name.extend_from_slice(name.as_bytes());
        self.batch.insert(by_name, id.to_be_bytes().to_vec());
        let mut by_id = vec![keys::TYPE_BY_ID];
        by_id.extend_from_slice(&id.to_be_bytes());
        self.batch.insert(by_id, name.as_bytes().to_vec());
        self.new_types.push((name.to_string(), id));
        self.dirty = true;
    }

    /// The last sequence of a source as of this batch.
    pub fn last(&self, w: &Writer, source: u32) -> u64 {
        self.lasts
            .get(&source)
            .or_else(|| w.last.get(&source))
            .copied()
            .unwrap_or(0)
    }

    /// Sets a source's resume position.
    pub fn set_last(&mut self, source: u32, seq: u64) {
        self.batch
            .insert(keys::last(source).to_vec(), seq.to_be_bytes().to_vec());
        self.lasts.insert(source, seq);
        self.dirty = true;
    }

    /// Adds one event with all its index entries and state update.
    pub fn add_event(
        &mut self,
        w: &mut Writer,
        source: u32,
        view: &EventView<'_>,
        text: &str,
    ) -> Result<(), StoreError> {
        let store = self.store;
        let type_id = store.type_id_locked(w, self, &view.kind)?;
        self.batch
            .insert(keys::event(source, view.sequence).to_vec(), text.as_bytes());
        for key in event_index_keys(type_id, source, view) {
            self.batch.insert(key, &[][..]);
        }
        if let Some((kind, entity)) = view.state_key() {
            self.update_state(kind, source, &entity, view, text)?;
        }
        self.set_last(source, view.sequence);
        self.count_delta += 1;
        self.bytes_delta += text.len() as i64;
        Ok(())
    }

    fn update_state(
        &mut self,
        kind: StateKind,
        source: u32,
        entity: &str,
        view: &EventView<'_>,
        text: &str,
    ) -> Result<(), StoreError> {
        let key = keys::state(kind as u8, source, entity);
        let previous = match self.states.get(&key) {
            Some(r) => Some(r.clone()),
            None => match self.store.inner.tree.get(&key)? {
                Some(bytes) => Some(StateRecord::decode(source, &bytes)?),
                None => None,
            },
        };
        if let Some(prev) = &previous {
            if prev.sequence >= view.sequence && prev.source == source {
                return Ok(()); // an older event never overwrites newer state
            }
            if let Some(old) = prev.derived_keys(kind, entity) {
                self.batch.remove(old);
            }
        }
        let record = StateRecord {
            source,
            sequence: view.sequence,
            time_ms: view.time_ms,
            status: view.status_rank(),
            severity: view.severity_rank(),
            json: text.to_string(),
        };
        if let Some(new) = record.derived_keys(kind, entity) {
            self.batch.insert(new, &[][..]);
        }
        self.batch.insert(key.clone(), record.encode());
        self.states.insert(key, record);
        Ok(())
    }

    /// Removes one stored event and its index entries (retention).
    pub fn remove_event(&mut self, type_id: u16, source: u32, view: &EventView<'_>, len: usize) {
        self.batch
            .remove(keys::event(source, view.sequence).to_vec());
        for key in event_index_keys(type_id, source, view) {
            self.batch.remove(key);
        }
        self.count_delta -= 1;
        self.bytes_delta -= len as i64;
        self.dirty = true;
    }

    /// Sets a role's extra metadata.
    pub fn put_extra(&mut self, name: &str, value: &[u8]) {
        self.batch.insert(keys::extra(name), value);
        self.dirty = true;
    }

    /// Applies the batch atomically and publishes the in-memory changes.
    pub fn commit(mut self, w: &mut Writer) -> Result<(), StoreError> {
        if !self.dirty {
            return Ok(());
        }
        let count = (w.count as i64 + self.count_delta).max(0) as u64;
        let bytes = (w.bytes as i64 + self.bytes_delta).max(0) as u64;
        if self.count_delta != 0 || self.bytes_delta != 0 {
            self.batch
                .insert(keys::counter(COUNT), count.to_be_bytes().to_vec());
            self.batch
                .insert(keys::counter(BYTES), bytes.to_be_bytes().to_vec());
        }
        self.store.inner.tree.apply_batch(self.batch)?;
        w.count = count;
        w.bytes = bytes;
        for (source, seq) in self.lasts {
            w.last.insert(source, seq);
        }
        self.store.publish_dicts(&self.new_sources, &self.new_types)
    }
}
