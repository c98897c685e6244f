//! The local event store (sled): idempotent append keyed by (source, sequence), the indexes the
//! panes read, current state per entity, resume positions and retention.
//!
//! Every role owns one store. A producer appends its own events (the store assigns gap-free
//! sequence numbers); a consumer ingests other sources' events (the store refuses gaps and skips
//! what it already has). Writes are serialised by one writer lock and each batch is one atomic
//! sled batch (see [`keys`] for the layout), so a crash leaves events and indexes in agreement.
//! All calls block: call them from `spawn_blocking` on an async runtime.

pub mod chain;
pub mod keys;
mod query;
mod retention;
mod state;
pub mod view;

use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use chrono::{DateTime, Utc};

use crate::protocol::{Envelope, EventData, limits};
pub use query::{AlertFilter, StoredEvent};
pub use retention::{PruneReport, Retention};
pub use state::StateRecord;
use view::{EventView, ViewError};

/// Counter: number of events stored.
const COUNT: &str = "count";
/// Counter: bytes of event JSON stored.
const BYTES: &str = "bytes";

/// Store errors.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// sled failed (disk full, corruption, permissions).
    #[error("store I/O: {0}")]
    Sled(#[from] sled::Error),
    /// An event could not be read.
    #[error(transparent)]
    View(#[from] ViewError),
    /// The batch would leave a hole in a source's sequence.
    #[error(
        "gap in source {source_name:?}: expected sequence {expected}, got {got} (the producer skipped events; refusing to store out of order)"
    )]
    Gap {
        /// Source id.
        source_name: String,
        /// The next sequence the store expected.
        expected: u64,
        /// What arrived.
        got: u64,
    },
    /// The store's own data is unreadable.
    #[error("corrupt store record: {0}")]
    Corrupt(String),
    /// A producer sent more distinct event types than the store can index.
    #[error(
        "more than 65,534 distinct event types: refusing new ones (a producer is sending garbage type names)"
    )]
    TooManyTypes,
    /// A lock was poisoned by a panic in another thread.
    #[error("store lock poisoned")]
    Poisoned,
}

/// What an ingest did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct IngestReport {
    /// Events newly stored.
    pub stored: usize,
    /// Events already present (same source and sequence), skipped.
    pub duplicates: usize,
}

/// Options for opening a store.
#[derive(Debug, Clone)]
pub struct StoreOptions {
    /// sled page cache in bytes. Set deliberately: sled's default is 1 GiB.
    pub cache_bytes: u64,
    /// How often sled flushes to disk in the background, in milliseconds.
    pub flush_every_ms: u64,
}

impl Default for StoreOptions {
    fn default() -> Self {
        Self {
            cache_bytes: 64 * 1024 * 1024,
            flush_every_ms: 500,
        }
    }
}

/// Writer-side caches, guarded by the writer lock.
#[derive(Default)]
struct Writer {
    last: HashMap<u32, u64>,
    next_source: u32,
    next_type: u16,
    /// Session directory keys known to be in the tree.
    dirs: std::collections::HashSet<Vec<u8>>,
    /// Chain head (newest link) per source this store produces, once read.
    chain_heads: HashMap<u32, String>,
}

/// What readers see of the writer's progress, updated right after each batch is applied, so
/// that reading a resume position or a counter never waits for a batch being written.
#[derive(Default)]
struct Published {
    last: RwLock<HashMap<u32, u64>>,
    count: AtomicU64,
    bytes: AtomicU64,
}

/// Name/id dictionaries, read without the writer lock.
#[derive(Default)]
struct Dictionaries {
    source_ids: HashMap<String, u32>,
    source_names: HashMap<u32, String>,
    type_ids: HashMap<String, u16>,
    type_names: HashMap<u16, String>,
}

/// A handle to one store; cheap to clone.
#[derive(Clone)]
pub struct Store {
    inner: Arc<Inner>,
}

struct Inner {
    db: sled::Db,
    tree: sled::Tree,
    writer: Mutex<Writer>,
    published: Published,
    dicts: RwLock<Dictionaries>,
}

/// One event to append as the producer: payload and time.
#[derive(Debug, Clone)]
pub struct NewEvent {
    /// The payload.
    pub data: EventData,
    /// Event time; `None` stamps now.
    pub time: Option<DateTime<Utc>>,
}

impl From<EventData> for NewEvent {
    fn from(data: EventData) -> Self {
        Self { data, time: None }
    }
}

/// An event this store just appended as producer.
#[derive(Debug, Clone)]
pub struct Appended {
    /// Its sequence.
    pub sequence: u64,
    /// Its JSON text as stored and as it goes on the wire.
    pub json: Arc<str>,
}

impl Store {
    /// Opens (or creates) the store in `dir`.
    pub fn open(dir: &Path, options: &StoreOptions) -> Result<Self, StoreError> {
        let db = sled::Config::new()
            .path(dir)
            .cache_capacity(options.cache_bytes)
            .flush_every_ms(Some(options.flush_every_ms))
            .mode(sled::Mode::HighThroughput)
            .open()?;
        let tree = db.open_tree("events")?;
        let store = Self {
            inner: Arc::new(Inner {
                db,
                tree,
                writer: Mutex::new(Writer::default()),
                published: Published::default(),
                dicts: RwLock::new(Dictionaries::default()),
            }),
        };
        store.load_caches()?;
        store.upgrade_layout()?;
        Ok(store)
    }

    /// Rebuilds the event indexes of a store written with an earlier layout (see
    /// [`keys::LAYOUT`]): drops every index key, indexes every event again a chunk at a time,
    /// then records the layout version. Interrupted, it starts over at the next open.
    fn upgrade_layout(&self) -> Result<(), StoreError> {
        const CHUNK: usize = 1_000;
        let tree = &self.inner.tree;
        match tree.get(keys::layout())? {
            Some(v) if keys::u64_value(&v) == Some(keys::LAYOUT_VERSION) => return Ok(()),
            Some(v) => {
                return Err(StoreError::Corrupt(format!(
                    "store layout version {:?} is unknown to this mcpsoc (written by a newer one?)",
                    keys::u64_value(&v)
                )));
            }
            None => {}
        }
        let mut w = self.writer()?;
        for family in [
            keys::BY_TYPE_TIME,
            keys::CALLS_BY_USER,
            keys::CALLS_BY_SESSION,
            keys::SESSION_DIR,
        ] {
            loop {
                let mut batch = sled::Batch::default();
                let mut n = 0;
                for item in tree.scan_prefix([family]).take(CHUNK * 10) {
                    batch.remove(item?.0);
                    n += 1;
                }
                if n == 0 {
                    break;
                }
                tree.apply_batch(batch)?;
            }
        }
        let sources: Vec<u32> = self.source_ids();
        for source in sources {
            let mut start = keys::event(source, 0).to_vec();
            let end = keys::prefix_end(&keys::event_prefix(source));
            loop {
                let mut batch = state::BatchBuilder::new(self);
                let mut last = None;
                for item in tree.range(start.clone()..end.clone()).take(CHUNK) {
                    let (k, v) = item?;
                    let (_, seq) = keys::parse_event(&k)
                        .ok_or_else(|| StoreError::Corrupt("event key".into()))?;
                    let text =
                        std::str::from_utf8(&v).map_err(|_| StoreError::Corrupt("utf-8".into()))?;
                    let view = EventView::parse(text)?;
                    let type_id = self
                        .type_id(&view.kind)
                        .ok_or_else(|| StoreError::Corrupt("type id".into()))?;
                    batch.index_event(&w, source, type_id, &view);
                    last = Some(seq);
                }
                let Some(last) = last else {
                    break;
                };
                batch.commit(&mut w)?;
                match last.checked_add(1) {
                    Some(next) => start = keys::event(source, next).to_vec(),
                    None => break,
                }
            }
        }
        tree.insert(keys::layout(), keys::LAYOUT_VERSION.to_be_bytes().to_vec())?;
        Ok(())
    }

    fn load_caches(&self) -> Result<(), StoreError> {
        let tree = &self.inner.tree;
        let mut w = self.writer()?;
        let mut d = self.inner.dicts.write().map_err(|_| StoreError::Poisoned)?;
        for item in tree.scan_prefix([keys::SOURCE_BY_NAME]) {
            let (k, v) = item?;
            let name = String::from_utf8_lossy(&k[1..]).into_owned();
            let id = u32::from_be_bytes(
                v.as_ref()
                    .try_into()
                    .map_err(|_| StoreError::Corrupt("source id".into()))?,
            );
            w.next_source = w.next_source.max(id + 1);
            d.source_ids.insert(name.clone(), id);
            d.source_names.insert(id, name);
        }
        for item in tree.scan_prefix([keys::TYPE_BY_NAME]) {
            let (k, v) = item?;
            let name = String::from_utf8_lossy(&k[1..]).into_owned();
            let id = u16::from_be_bytes(
                v.as_ref()
                    .try_into()
                    .map_err(|_| StoreError::Corrupt("type id".into()))?,
            );
            w.next_type = w.next_type.max(id + 1);
            d.type_ids.insert(name.clone(), id);
            d.type_names.insert(id, name);
        }
        for item in tree.scan_prefix([keys::LAST]) {
            let (k, v) = item?;
            let id = u32::from_be_bytes(
                k[1..]
                    .try_into()
                    .map_err(|_| StoreError::Corrupt("last key".into()))?,
            );
            let seq = keys::u64_value(&v).ok_or_else(|| StoreError::Corrupt("last".into()))?;
            w.last.insert(id, seq);
        }
        let published = &self.inner.published;
        *published.last.write().map_err(|_| StoreError::Poisoned)? = w.last.clone();
        published
            .count
            .store(self.counter(COUNT)?, Ordering::Release);
        published
            .bytes
            .store(self.counter(BYTES)?, Ordering::Release);
        Ok(())
    }

    fn counter(&self, name: &str) -> Result<u64, StoreError> {
        Ok(self
            .inner
            .tree
            .get(keys::counter(name))?
            .and_then(|v| keys::u64_value(&v))
            .unwrap_or(0))
    }

    fn writer(&self) -> Result<std::sync::MutexGuard<'_, Writer>, StoreError> {
        self.inner.writer.lock().map_err(|_| StoreError::Poisoned)
    }

    /// Stores events received from other sources. Events already stored are skipped; an event
    /// that would leave a hole in its source's sequence is refused with [`StoreError::Gap`] (the
    /// events before it in the batch are still stored, atomically).
    pub fn ingest<S: AsRef<str>>(&self, events: &[S]) -> Result<IngestReport, StoreError> {
        let mut views = Vec::with_capacity(events.len());
        let mut first_error = None;
        for text in events {
            match EventView::parse(text.as_ref()) {
                Ok(v) => views.push((v, text.as_ref())),
                Err(e) => {
                    first_error = Some(StoreError::View(e));
                    break;
                }
            }
        }
        let mut w = self.writer()?;
        let mut batch = state::BatchBuilder::new(self);
        let mut report = IngestReport::default();
        for (view, text) in &views {
            let source = self.source_id_locked(&mut w, &mut batch, &view.source)?;
            let last = batch.last(&w, source);
            if view.sequence <= last {
                report.duplicates += 1;
                continue;
            }
            // The first event of a never-seen source may start anywhere (the producer pruned
            // older events); after that, sequences must be contiguous.
            if last != 0 && view.sequence != last + 1 {
                first_error = Some(StoreError::Gap {
                    source_name: view.source.to_string(),
                    expected: last + 1,
                    got: view.sequence,
                });
                break;
            }
            batch.add_event(&mut w, source, view, text)?;
            report.stored += 1;
        }
        batch.commit(&mut w)?;
        match first_error {
            Some(e) => Err(e),
            None => Ok(report),
        }
    }

    /// Appends events as the producer of `source`: assigns the next sequences, stamps time,
    /// keeps payloads within the limits, stores them atomically together with `extra` metadata,
    /// and calls `on_stored` with the stored events while still holding the writer lock (so a
    /// publisher's live fan-out sees events in sequence order).
    pub fn append(
        &self,
        source: &str,
        events: Vec<NewEvent>,
        extra: &[(&str, Vec<u8>)],
        on_stored: impl FnOnce(&[Appended]),
    ) -> Result<Vec<Appended>, StoreError> {
        let mut w = self.writer()?;
        let mut batch = state::BatchBuilder::new(self);
        let source_id = self.source_id_locked(&mut w, &mut batch, source)?;
        let mut seq = batch.last(&w, source_id);
        let mut head = match w.chain_heads.get(&source_id) {
            Some(head) => head.clone(),
            None => self
                .extra(&chain::head_key(source))?
                .map(|v| String::from_utf8_lossy(&v).into_owned())
                .unwrap_or_default(),
        };
        let mut appended = Vec::with_capacity(events.len());
        for event in events {
            seq += 1;
            let mut envelope = Envelope::new(
                source,
                seq,
                event.time.unwrap_or_else(Utc::now),
                &event.data,
            );
            limits::fit_payload(&mut envelope.data, limits::MAX_FRAME_BYTES - 2048);
            let (sealed, link) = chain::seal(&head, envelope.to_json());
            head = link;
            let json: Arc<str> = Arc::from(sealed);
            let view = EventView::parse(&json)?;
            batch.add_event(&mut w, source_id, &view, &json)?;
            appended.push(Appended {
                sequence: seq,
                json: json.clone(),
            });
        }
        for (name, value) in extra {
            batch.put_extra(name, value);
        }
        if !appended.is_empty() {
            batch.put_extra(&chain::head_key(source), head.as_bytes());
        }
        batch.commit(&mut w)?;
        w.chain_heads.insert(source_id, head);
        on_stored(&appended);
        Ok(appended)
    }

    /// Moves a source's resume position forward without events, when its producer says the
    /// events in between were pruned there and can never be had.
    pub fn skip_to(&self, source: &str, sequence: u64) -> Result<(), StoreError> {
        let mut w = self.writer()?;
        let mut batch = state::BatchBuilder::new(self);
        let id = self.source_id_locked(&mut w, &mut batch, source)?;
        if w.last.get(&id).copied().unwrap_or(0) < sequence {
            batch.set_last(id, sequence);
            batch.commit(&mut w)?;
        }
        Ok(())
    }

    fn source_id_locked(
        &self,
        w: &mut Writer,
        batch: &mut state::BatchBuilder<'_>,
        name: &str,
    ) -> Result<u32, StoreError> {
        if let Some(id) = self.source_id(name) {
            return Ok(id);
        }
        if let Some(id) = batch.pending_source(name) {
            return Ok(id);
        }
        let id = w.next_source;
        w.next_source += 1;
        batch.new_source(name, id);
        Ok(id)
    }

    fn type_id_locked(
        &self,
        w: &mut Writer,
        batch: &mut state::BatchBuilder<'_>,
        name: &str,
    ) -> Result<u16, StoreError> {
        if let Some(id) = self.type_id(name) {
            return Ok(id);
        }
        if let Some(id) = batch.pending_type(name) {
            return Ok(id);
        }
        let id = w.next_type;
        if id == u16::MAX {
            return Err(StoreError::TooManyTypes);
        }
        w.next_type += 1;
        batch.new_type(name, id);
        Ok(id)
    }

    /// Publishes new dictionary entries after their batch is durable in sled.
    fn publish_dicts(
        &self,
        sources: &[(String, u32)],
        types: &[(String, u16)],
    ) -> Result<(), StoreError> {
        if sources.is_empty() && types.is_empty() {
            return Ok(());
        }
        let mut d = self.inner.dicts.write().map_err(|_| StoreError::Poisoned)?;
        for (name, id) in sources {
            d.source_ids.insert(name.clone(), *id);
            d.source_names.insert(*id, name.clone());
        }
        for (name, id) in types {
            d.type_ids.insert(name.clone(), *id);
            d.type_names.insert(*id, name.clone());
        }
        Ok(())
    }

    /// The id of a known source.
    pub fn source_id(&self, name: &str) -> Option<u32> {
        self.inner.dicts.read().ok()?.source_ids.get(name).copied()
    }

    /// The name of a source id.
    pub fn source_name(&self, id: u32) -> Option<String> {
        if let Some(name) = self.inner.dicts.read().ok()?.source_names.get(&id).cloned() {
            return Some(name);
        }
        // A batch that adds a source is visible in the tree a moment before its name reaches
        // the dictionary (published after the batch is applied): read the name from the tree.
        let mut key = vec![keys::SOURCE_BY_ID];
        key.extend_from_slice(&id.to_be_bytes());
        let name = self.inner.tree.get(key).ok()??;
        String::from_utf8(name.to_vec()).ok()
    }

    /// The id of a known type.
    pub fn type_id(&self, name: &str) -> Option<u16> {
        self.inner.dicts.read().ok()?.type_ids.get(name).copied()
    }

    /// Every source this store has events or a resume position for.
    pub fn sources(&self) -> Vec<String> {
        let mut names: Vec<String> = self
            .inner
            .dicts
            .read()
            .map(|d| d.source_ids.keys().cloned().collect())
            .unwrap_or_default();
        names.sort();
        names
    }

    /// Every event type seen.
    pub fn types(&self) -> Vec<String> {
        let mut names: Vec<String> = self
            .inner
            .dicts
            .read()
            .map(|d| d.type_ids.keys().cloned().collect())
            .unwrap_or_default();
        names.sort();
        names
    }

    /// The last stored sequence of a source (0 when none): resume right after it. Never waits
    /// for a batch being written (it reads the position as of the last applied batch).
    pub fn last_sequence(&self, source: &str) -> u64 {
        let Some(id) = self.source_id(source) else {
            return 0;
        };
        self.inner
            .published
            .last
            .read()
            .map(|l| l.get(&id).copied().unwrap_or(0))
            .unwrap_or(0)
    }

    /// Number of events stored (as of the last applied batch; never waits for the writer).
    pub fn count(&self) -> u64 {
        self.inner.published.count.load(Ordering::Acquire)
    }

    /// Bytes of event JSON stored (what retention by size counts; never waits for the writer).
    pub fn stored_bytes(&self) -> u64 {
        self.inner.published.bytes.load(Ordering::Acquire)
    }

    /// Reads a role's extra metadata.
    pub fn extra(&self, name: &str) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.inner.tree.get(keys::extra(name))?.map(|v| v.to_vec()))
    }

    /// Forces everything written so far to disk.
    pub fn flush(&self) -> Result<usize, StoreError> {
        Ok(self.inner.db.flush()?)
    }

    /// Bytes the store occupies on disk.
    pub fn size_on_disk(&self) -> u64 {
        self.inner.db.size_on_disk().unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_and_counters_are_read_without_waiting_for_the_writer() {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = Store::open(dir.path(), &StoreOptions::default()).expect("open");
        let event = r#"{"specversion":"1.0","id":"1","source":"gw","type":"t.v1","time":"2026-11-24T10:00:00Z","sequence":1}"#;
        store.ingest(&[event]).expect("ingest");
        // Hold the writer lock the way a long ingest batch does.
        let writing = store.inner.writer.lock().expect("writer lock");
        let (tx, rx) = std::sync::mpsc::channel();
        let reader = store.clone();
        std::thread::spawn(move || {
            let read = (
                reader.last_sequence("gw"),
                reader.count(),
                reader.stored_bytes(),
            );
            let _ = tx.send(read);
        });
        let read = rx.recv_timeout(std::time::Duration::from_secs(20));
        drop(writing);
        assert_eq!(
            read.expect("the reads did not wait for the writer"),
            (1, 1, event.len() as u64)
        );
    }
}
