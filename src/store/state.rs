//! Building one atomic write: events, their index entries, current-state records and counters.

use std::collections::{HashMap, HashSet};
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::atomic::Ordering;

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

/// Most session directory keys the writer remembers as present (then it forgets them all and
/// checks the tree again).
const DIR_CACHE_MAX: usize = 100_000;

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

/// The packed index groups an event belongs to, each with the session its entry names: its
/// type; for a tool call its user (the entry names the call's session), or, for a call with a
/// session but no user, its session.
pub fn event_index_groups<'v>(
    type_id: u16,
    view: &'v EventView<'_>,
) -> Vec<(Vec<u8>, Option<&'v str>)> {
    let mut out = vec![(keys::type_prefix(type_id).to_vec(), None)];
    if view.is_tool_call() {
        let session = view.data.session.as_deref();
        match view.data.user.as_deref() {
            Some(user) => out.push((keys::call_prefix(keys::CALLS_BY_USER, user), session)),
            None => {
                if let Some(session) = session {
                    out.push((keys::call_prefix(keys::CALLS_BY_SESSION, session), None));
                }
            }
        }
    }
    out
}

/// FNV-1a, for the small per-batch maps keyed by short byte strings (much cheaper than the
/// default SipHash there; a batch bounds their size, so a poor spread only costs that batch).
#[derive(Clone, Copy)]
pub struct Fnv(u64);

impl Default for Fnv {
    fn default() -> Self {
        Self(0xcbf2_9ce4_8422_2325)
    }
}

impl Hasher for Fnv {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 ^= u64::from(b);
            self.0 = self.0.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
}

type FnvBuild = BuildHasherDefault<Fnv>;

/// The entries of one index group and source: what becomes its packs.
#[derive(Default)]
pub struct Group {
    /// Session names the entries refer to.
    sessions: Vec<String>,
    slots: HashMap<String, u32, FnvBuild>,
    entries: Vec<keys::PackEntry>,
}

impl Group {
    fn push(&mut self, time_ms: i64, seq: u64, session: Option<&str>) {
        let session = session.map(|name| match self.slots.get(name) {
            Some(&i) => i,
            None => {
                let i = self.sessions.len() as u32;
                self.sessions.push(name.to_string());
                self.slots.insert(name.to_string(), i);
                i
            }
        });
        self.entries.push(keys::PackEntry {
            time_ms,
            seq,
            session,
        });
    }
}

/// Cuts the entries of one group and source into packs, newest first, each within
/// [`keys::PACK_SPAN_MS`], [`keys::PACK_MAX_ENTRIES`] and about [`keys::PACK_MAX_TABLE_BYTES`]
/// of session names, and calls `emit(key, value)` for each.
pub fn build_packs(
    prefix: &[u8],
    source: u32,
    sessions: &[String],
    entries: &mut [keys::PackEntry],
    mut emit: impl FnMut(Vec<u8>, Vec<u8>),
) {
    entries.sort_unstable_by_key(|e| std::cmp::Reverse((e.time_ms, e.seq)));
    let mut in_pack = vec![false; sessions.len()];
    let mut start = 0;
    while start < entries.len() {
        let head = entries[start].time_ms;
        in_pack.iter_mut().for_each(|b| *b = false);
        let mut table_bytes = 0;
        let mut end = start;
        while end < entries.len()
            && end - start < keys::PACK_MAX_ENTRIES
            && table_bytes <= keys::PACK_MAX_TABLE_BYTES
            && i128::from(head) - i128::from(entries[end].time_ms) < i128::from(keys::PACK_SPAN_MS)
        {
            if let Some(i) = entries[end].session
                && !in_pack[i as usize]
            {
                in_pack[i as usize] = true;
                table_bytes += sessions[i as usize].len() + 2;
            }
            end += 1;
        }
        let chunk = &entries[start..end];
        let first_seq = chunk.iter().map(|e| e.seq).min().unwrap_or(0);
        emit(
            keys::pack(prefix, head, source, first_seq),
            keys::encode_pack(head, first_seq, sessions, chunk),
        );
        start = end;
    }
}

/// Index entries of the events of one batch, by source (4 bytes) and group prefix.
type Groups = HashMap<Vec<u8>, Group, FnvBuild>;

/// Accumulates one atomic sled batch plus the in-memory changes it implies.
pub struct BatchBuilder<'s> {
    store: &'s Store,
    batch: sled::Batch,
    states: HashMap<Vec<u8>, StateRecord>,
    new_sources: Vec<(String, u32)>,
    new_types: Vec<(String, u16)>,
    lasts: HashMap<u32, u64>,
    /// Index entries of the events added, written as packs at commit.
    packs: Groups,
    /// Session directory keys the added events need (not known to exist yet).
    new_dirs: HashSet<Vec<u8>, FnvBuild>,
    /// Reused to build keys.
    scratch: Vec<u8>,
    /// Groups of the events removed: (oldest, newest) time, cleaned at commit.
    pruned: HashMap<(u32, Vec<u8>), (i64, i64)>,
    /// Per source, the highest sequence removed (every lower one is gone too).
    pruned_upto: HashMap<u32, u64>,
    /// Sessions of removed calls by (owner's group prefix, directory bucket): directory keys
    /// that may have lost their last call.
    pruned_dirs: HashMap<(Vec<u8>, i64), HashSet<String>>,
    /// Directory keys deleted by this batch.
    dropped_dirs: Vec<Vec<u8>>,
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
            packs: HashMap::default(),
            new_dirs: HashSet::default(),
            scratch: Vec::with_capacity(128),
            pruned: HashMap::new(),
            pruned_upto: HashMap::new(),
            pruned_dirs: HashMap::new(),
            dropped_dirs: Vec::new(),
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
        self.index_event(w, source, type_id, view);
        if let Some((kind, entity)) = view.state_key() {
            self.update_state(kind, source, &entity, view, text)?;
        }
        self.set_last(source, view.sequence);
        self.count_delta += 1;
        self.bytes_delta += text.len() as i64;
        Ok(())
    }

    /// Adds the index entries of one event (packs and session directory) to the batch. The
    /// hot path of ingest: keys are built in a reused buffer and allocated only when new.
    pub fn index_event(&mut self, w: &Writer, source: u32, type_id: u16, view: &EventView<'_>) {
        let (time, seq) = (view.time_ms, view.sequence);
        let mut key = std::mem::take(&mut self.scratch);
        key.clear();
        key.extend_from_slice(&source.to_be_bytes());
        key.extend_from_slice(&keys::type_prefix(type_id));
        self.group(&key).push(time, seq, None);
        if view.is_tool_call() {
            let user = view.data.user.as_deref();
            let session = view.data.session.as_deref();
            key.truncate(4);
            match (user, session) {
                (Some(user), _) => {
                    key.push(keys::CALLS_BY_USER);
                    keys::push_str(&mut key, user);
                    self.group(&key).push(time, seq, session);
                }
                (None, Some(session)) => {
                    key.push(keys::CALLS_BY_SESSION);
                    keys::push_str(&mut key, session);
                    self.group(&key).push(time, seq, None);
                }
                (None, None) => {}
            }
            if let Some(session) = session {
                key.clear();
                keys::push_session_dir(&mut key, session, keys::dir_bucket(time), user);
                if !w.dirs.contains(&key[..]) && !self.new_dirs.contains(&key[..]) {
                    self.new_dirs.insert(key.clone());
                }
            }
        }
        self.scratch = key;
        self.dirty = true;
    }

    /// The entries of a group (`source ++ prefix`) in this batch.
    fn group(&mut self, key: &[u8]) -> &mut Group {
        if !self.packs.contains_key(key) {
            self.packs.insert(key.to_vec(), Group::default());
        }
        self.packs.get_mut(key).expect("inserted above")
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

    /// Removes one stored event (retention). Events of a source must be removed oldest
    /// sequence first; their pack entries and emptied directory keys are removed at commit.
    pub fn remove_event(&mut self, type_id: u16, source: u32, view: &EventView<'_>, len: usize) {
        self.batch
            .remove(keys::event(source, view.sequence).to_vec());
        for (prefix, _) in event_index_groups(type_id, view) {
            let span = self
                .pruned
                .entry((source, prefix))
                .or_insert((view.time_ms, view.time_ms));
            span.0 = span.0.min(view.time_ms);
            span.1 = span.1.max(view.time_ms);
        }
        if view.is_tool_call()
            && let Some(session) = view.data.session.as_deref()
        {
            let owner = keys::owner_prefix(session, view.data.user.as_deref());
            self.pruned_dirs
                .entry((owner, keys::dir_bucket(view.time_ms)))
                .or_default()
                .insert(session.to_string());
        }
        let upto = self.pruned_upto.entry(source).or_insert(0);
        *upto = (*upto).max(view.sequence);
        self.count_delta -= 1;
        self.bytes_delta -= len as i64;
        self.dirty = true;
    }

    /// Whether this batch removes the event `source`/`seq`.
    fn removes(&self, source: u32, seq: u64) -> bool {
        self.pruned_upto.get(&source).is_some_and(|&u| seq <= u)
    }

    /// Deletes or rewrites every pack that holds an entry of a removed event. A removed
    /// event's pack has a time between the event's and [`keys::PACK_SPAN_MS`] later, so one
    /// bounded range per group finds them all.
    fn clean_packs(&mut self) -> Result<(), StoreError> {
        let tree = &self.store.inner.tree;
        for ((source, prefix), (oldest, newest)) in std::mem::take(&mut self.pruned) {
            let upto = self.pruned_upto.get(&source).copied().unwrap_or(0);
            let start = keys::pack_start(&prefix, oldest);
            let end = keys::pack_end(&prefix, i128::from(newest) + i128::from(keys::PACK_SPAN_MS));
            for item in tree.range(start..end) {
                let (k, v) = item?;
                let corrupt = || StoreError::Corrupt("index pack".into());
                let (time, pack_source, first_seq) = keys::pack_tail(&k).ok_or_else(corrupt)?;
                if pack_source != source || first_seq > upto {
                    continue;
                }
                let mut pack = keys::decode_pack(time, first_seq, &v).ok_or_else(corrupt)?;
                pack.entries.retain(|e| e.seq > upto);
                self.batch.remove(k);
                build_packs(
                    &prefix,
                    source,
                    &pack.sessions,
                    &mut pack.entries,
                    |key, value| self.batch.insert(key, value),
                );
            }
        }
        Ok(())
    }

    /// Deletes the directory keys whose bucket has no call of their session left. The calls
    /// of a directory key are in its owner's packs between the directory bucket's start and
    /// [`keys::PACK_SPAN_MS`] past its end; the newest are read first, as they are the last to
    /// be pruned.
    fn clean_dirs(&mut self) -> Result<(), StoreError> {
        let tree = &self.store.inner.tree;
        for ((owner, dir), mut unseen) in std::mem::take(&mut self.pruned_dirs) {
            let dir_end = i128::from(dir) + i128::from(keys::SESSION_DIR_MS);
            let start = keys::pack_start(&owner, dir);
            let end = keys::pack_end(&owner, dir_end + i128::from(keys::PACK_SPAN_MS));
            // `S` packs are one session's: any entry left keeps it. `U` entries name theirs.
            let own_session = match owner.first() {
                Some(&keys::CALLS_BY_SESSION) => keys::read_str(&owner, 1).map(|(s, _)| s),
                _ => None,
            };
            for item in tree.range(start..end).rev() {
                if unseen.is_empty() {
                    break;
                }
                let (k, v) = item?;
                let corrupt = || StoreError::Corrupt("index pack".into());
                let (time, source, first_seq) = keys::pack_tail(&k).ok_or_else(corrupt)?;
                let pack = keys::decode_pack(time, first_seq, &v).ok_or_else(corrupt)?;
                for e in &pack.entries {
                    if e.time_ms >= dir
                        && i128::from(e.time_ms) < dir_end
                        && !self.removes(source, e.seq)
                        && let Some(session) = own_session.or_else(|| pack.session_of(e))
                    {
                        unseen.remove(session);
                    }
                }
            }
            let user = match owner.first() {
                Some(&keys::CALLS_BY_USER) => keys::read_str(&owner, 1).map(|(u, _)| u),
                _ => None,
            };
            for session in unseen {
                let key = keys::session_dir(&session, dir, user);
                self.batch.remove(key.clone());
                self.dropped_dirs.push(key);
            }
        }
        Ok(())
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
        for (key, mut group) in std::mem::take(&mut self.packs) {
            let (source, prefix) = key.split_at(4);
            let source = u32::from_be_bytes(source.try_into().expect("4 bytes"));
            build_packs(
                prefix,
                source,
                &group.sessions,
                &mut group.entries,
                |key, value| self.batch.insert(key, value),
            );
        }
        let tree = &self.store.inner.tree;
        let mut new_dirs = Vec::with_capacity(self.new_dirs.len());
        for dir in std::mem::take(&mut self.new_dirs) {
            if !tree.contains_key(&dir)? {
                self.batch.insert(dir.clone(), &[][..]);
            }
            new_dirs.push(dir);
        }
        self.clean_packs()?;
        self.clean_dirs()?;
        for (&source, &seq) in &self.lasts {
            self.batch
                .insert(keys::last(source).to_vec(), seq.to_be_bytes().to_vec());
        }
        let published = &self.store.inner.published;
        let count =
            (published.count.load(Ordering::Acquire) as i64 + self.count_delta).max(0) as u64;
        let bytes =
            (published.bytes.load(Ordering::Acquire) as i64 + self.bytes_delta).max(0) as u64;
        if self.count_delta != 0 || self.bytes_delta != 0 {
            self.batch
                .insert(keys::counter(COUNT), count.to_be_bytes().to_vec());
            self.batch
                .insert(keys::counter(BYTES), bytes.to_be_bytes().to_vec());
        }
        self.store.inner.tree.apply_batch(self.batch)?;
        // Only now (applied) may the writer skip these directory keys in later batches.
        if w.dirs.len() + new_dirs.len() > DIR_CACHE_MAX {
            w.dirs.clear();
        }
        w.dirs.extend(new_dirs);
        for dir in &self.dropped_dirs {
            w.dirs.remove(dir);
        }
        // Publish after the batch is applied: a reader that sees a position or a count can
        // read what it covers. Readers never wait for the writer lock.
        published.count.store(count, Ordering::Release);
        published.bytes.store(bytes, Ordering::Release);
        if !self.lasts.is_empty() {
            let mut lasts = published.last.write().map_err(|_| StoreError::Poisoned)?;
            for (source, seq) in self.lasts {
                w.last.insert(source, seq);
                lasts.insert(source, seq);
            }
        }
        self.store.publish_dicts(&self.new_sources, &self.new_types)
    }
}
