//! Read paths: every query is a bounded range read over an index, never a full scan (except the
//! explicit whole-store iterator used by export and consistency checks).
//!
//! The event indexes are packed (see [`keys`]): a time-ordered read walks one group's packs in
//! key order and merges their entries through a heap, emitting an entry once no pack further on
//! can hold a larger (newest first) or smaller (oldest first) one.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

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

    /// Reads the events of one index group (`prefix`), newest first, after the paging cursor
    /// `before` (returned by an earlier page). Returns the events and the cursor of this page
    /// (`None` when the page is empty).
    fn newest_under(
        &self,
        prefix: &[u8],
        before: Option<&[u8]>,
        limit: usize,
    ) -> Result<(Vec<StoredEvent>, Option<Vec<u8>>), StoreError> {
        let Some(high) = page_high(before)? else {
            return Ok((Vec::new(), None));
        };
        let mut merge = PackMerge::new(self, prefix, Ref::MIN, high, Direction::NewestFirst, None);
        self.page(&mut merge, limit)
    }

    /// Loads up to `limit` events named by `refs`, skipping pruned ones.
    fn page(
        &self,
        refs: &mut impl Refs,
        limit: usize,
    ) -> Result<(Vec<StoredEvent>, Option<Vec<u8>>), StoreError> {
        let mut out = Vec::with_capacity(limit.min(1024));
        let mut last = None;
        while out.len() < limit {
            let Some(r) = refs.next_ref()? else {
                break;
            };
            if let Some(ev) = self.load(r.source, r.seq)? {
                out.push(ev);
            }
            last = Some(r);
        }
        if out.is_empty() {
            return Ok((out, None));
        }
        Ok((out, last.map(|r| r.cursor())))
    }

    /// Newest events of one type, newest first; pass the returned cursor as `before` for the
    /// next page.
    pub fn newest_of_type(
        &self,
        kind: &str,
        before: Option<&[u8]>,
        limit: usize,
    ) -> Result<(Vec<StoredEvent>, Option<Vec<u8>>), StoreError> {
        let Some(type_id) = self.type_id(kind) else {
            return Ok((Vec::new(), None));
        };
        self.newest_under(&keys::type_prefix(type_id), before, limit)
    }

    /// Events of one type within a time range (ms since the epoch, inclusive), oldest first
    /// (by time, then source id, then sequence).
    pub fn of_type_between(
        &self,
        kind: &str,
        since_ms: i64,
        until_ms: i64,
    ) -> impl Iterator<Item = Result<StoredEvent, StoreError>> + '_ {
        let merge = match self.type_id(kind) {
            Some(t) if since_ms <= until_ms => PackMerge::new(
                self,
                &keys::type_prefix(t),
                Ref {
                    time: since_ms,
                    source: 0,
                    seq: 0,
                },
                Ref {
                    time: until_ms,
                    source: u32::MAX,
                    seq: u64::MAX,
                },
                Direction::OldestFirst,
                None,
            ),
            _ => PackMerge::empty(self),
        };
        OldestFirst { merge }
    }

    /// A user's tool calls, newest first; pages like [`Store::newest_of_type`].
    pub fn tool_calls_by_user(
        &self,
        user: &str,
        before: Option<&[u8]>,
        limit: usize,
    ) -> Result<(Vec<StoredEvent>, Option<Vec<u8>>), StoreError> {
        self.newest_under(&keys::call_prefix(keys::CALLS_BY_USER, user), before, limit)
    }

    /// A session's tool calls, newest first; pages like [`Store::newest_of_type`]. Reads only
    /// the spans of the session's bucket in which the directory says it has calls.
    pub fn tool_calls_by_session(
        &self,
        session: &str,
        before: Option<&[u8]>,
        limit: usize,
    ) -> Result<(Vec<StoredEvent>, Option<Vec<u8>>), StoreError> {
        let Some(high) = page_high(before)? else {
            return Ok((Vec::new(), None));
        };
        let mut refs = SessionRefs::new(self, session, high);
        self.page(&mut refs, limit)
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

/// One index entry: an event's time and where it is. Ordered by time, then source, then
/// sequence: the order of every time-ordered read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct Ref {
    time: i64,
    source: u32,
    seq: u64,
}

/// First byte of a paging cursor.
const CURSOR: u8 = b'@';

impl Ref {
    const MIN: Ref = Ref {
        time: i64::MIN,
        source: 0,
        seq: 0,
    };
    const MAX: Ref = Ref {
        time: i64::MAX,
        source: u32::MAX,
        seq: u64::MAX,
    };

    /// The paging cursor after this entry: `@ time source seq`.
    fn cursor(&self) -> Vec<u8> {
        let mut c = Vec::with_capacity(21);
        c.push(CURSOR);
        c.extend_from_slice(&keys::time_bytes(self.time));
        c.extend_from_slice(&self.source.to_be_bytes());
        c.extend_from_slice(&self.seq.to_be_bytes());
        c
    }

    fn from_cursor(cursor: &[u8]) -> Result<Ref, StoreError> {
        let bad = || StoreError::Corrupt("paging cursor not returned by this store".into());
        if cursor.len() != 21 || cursor[0] != CURSOR {
            return Err(bad());
        }
        Ok(Ref {
            time: keys::time_from_bytes(cursor[1..9].try_into().map_err(|_| bad())?),
            source: u32::from_be_bytes(cursor[9..13].try_into().map_err(|_| bad())?),
            seq: u64::from_be_bytes(cursor[13..21].try_into().map_err(|_| bad())?),
        })
    }

    /// The greatest entry below this one.
    fn pred(&self) -> Option<Ref> {
        if self.seq > 0 {
            Some(Ref {
                seq: self.seq - 1,
                ..*self
            })
        } else if self.source > 0 {
            Some(Ref {
                source: self.source - 1,
                seq: u64::MAX,
                ..*self
            })
        } else {
            Some(Ref {
                time: self.time.checked_sub(1)?,
                source: u32::MAX,
                seq: u64::MAX,
            })
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Direction {
    NewestFirst,
    OldestFirst,
}

/// Entries read from packs but not yet emitted.
enum Pending {
    Newest(BinaryHeap<Ref>),
    Oldest(BinaryHeap<Reverse<Ref>>),
}

impl Pending {
    fn push(&mut self, r: Ref) {
        match self {
            Pending::Newest(h) => h.push(r),
            Pending::Oldest(h) => h.push(Reverse(r)),
        }
    }

    fn peek(&self) -> Option<Ref> {
        match self {
            Pending::Newest(h) => h.peek().copied(),
            Pending::Oldest(h) => h.peek().map(|r| r.0),
        }
    }

    fn pop(&mut self) -> Option<Ref> {
        match self {
            Pending::Newest(h) => h.pop(),
            Pending::Oldest(h) => h.pop().map(|r| r.0),
        }
    }

    fn clear(&mut self) {
        match self {
            Pending::Newest(h) => h.clear(),
            Pending::Oldest(h) => h.clear(),
        }
    }
}

/// The entries of one index group within `[low, high]`, in exact time order, read pack by
/// pack.
struct PackMerge<'s> {
    store: &'s Store,
    /// Packs not read yet; `None` once exhausted.
    packs: Option<sled::Iter>,
    prefix_len: usize,
    direction: Direction,
    low: Ref,
    high: Ref,
    pending: Pending,
    /// The time of the last pack read: it bounds every entry still unread.
    frontier: Option<i64>,
    /// Only entries of this session (session packs).
    session: Option<String>,
    /// The entry returned last. A read racing with retention can meet a pack both before and
    /// after retention rewrote it under a new key; the copies come out next to each other.
    last: Option<Ref>,
}

impl<'s> PackMerge<'s> {
    fn new(
        store: &'s Store,
        prefix: &[u8],
        low: Ref,
        high: Ref,
        direction: Direction,
        session: Option<&str>,
    ) -> Self {
        // A pack holds entries in (time - PACK_SPAN_MS, time]: packs whose time is below `low`
        // or at least PACK_SPAN_MS past `high` hold nothing in range.
        let start = keys::pack_start(prefix, low.time);
        let end = keys::pack_end(
            prefix,
            i128::from(high.time) + i128::from(keys::PACK_SPAN_MS),
        );
        let packs = (start < end).then(|| store.inner.tree.range(start..end));
        Self {
            store,
            packs,
            prefix_len: prefix.len(),
            direction,
            low,
            high,
            pending: match direction {
                Direction::NewestFirst => Pending::Newest(BinaryHeap::new()),
                Direction::OldestFirst => Pending::Oldest(BinaryHeap::new()),
            },
            frontier: None,
            session: session.map(str::to_string),
            last: None,
        }
    }

    fn empty(store: &'s Store) -> Self {
        Self {
            store,
            packs: None,
            prefix_len: 0,
            direction: Direction::OldestFirst,
            low: Ref::MIN,
            high: Ref::MAX,
            pending: Pending::Oldest(BinaryHeap::new()),
            frontier: None,
            session: None,
            last: None,
        }
    }

    /// Whether `r` comes before everything not read yet.
    fn ready(&self, r: Ref) -> bool {
        if self.packs.is_none() {
            return true;
        }
        let Some(frontier) = self.frontier else {
            return false;
        };
        match self.direction {
            // Packs further on have times <= frontier, so entries <= frontier.
            Direction::NewestFirst => r.time > frontier,
            // Packs further on have times >= frontier, so entries > frontier - span.
            Direction::OldestFirst => {
                i128::from(r.time) <= i128::from(frontier) - i128::from(keys::PACK_SPAN_MS)
            }
        }
    }
}

/// A stream of index entries in order.
trait Refs {
    /// The next entry.
    fn next_ref(&mut self) -> Result<Option<Ref>, StoreError>;
}

impl Refs for PackMerge<'_> {
    fn next_ref(&mut self) -> Result<Option<Ref>, StoreError> {
        loop {
            if let Some(top) = self.pending.peek()
                && self.ready(top)
            {
                self.pending.pop();
                if self.last == Some(top) {
                    continue;
                }
                self.last = Some(top);
                return Ok(Some(top));
            }
            let Some(packs) = self.packs.as_mut() else {
                return Ok(None);
            };
            let item = match self.direction {
                Direction::NewestFirst => packs.next_back(),
                Direction::OldestFirst => packs.next(),
            };
            let Some(item) = item else {
                self.packs = None;
                continue;
            };
            let (k, v) = item?;
            let corrupt = || StoreError::Corrupt("index pack".into());
            if k.len() != self.prefix_len + keys::PACK_TAIL {
                return Err(corrupt());
            }
            let (time, source, first_seq) = keys::pack_tail(&k).ok_or_else(corrupt)?;
            let pack = keys::decode_pack(time, first_seq, &v).ok_or_else(corrupt)?;
            // A session absent from the table matches no entry (`Some(None)`).
            let wanted = self.session.as_ref().map(|name| pack.session_index(name));
            for e in &pack.entries {
                if wanted.is_some_and(|w| w.is_none() || e.session != w) {
                    continue;
                }
                let r = Ref {
                    time: e.time_ms,
                    source,
                    seq: e.seq,
                };
                if self.low <= r && r <= self.high {
                    self.pending.push(r);
                }
            }
            self.frontier = Some(time);
        }
    }
}

/// [`Store::of_type_between`]: events of a [`PackMerge`], oldest first.
struct OldestFirst<'s> {
    merge: PackMerge<'s>,
}

impl Iterator for OldestFirst<'_> {
    type Item = Result<StoredEvent, StoreError>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            let r = match self.merge.next_ref() {
                Ok(Some(r)) => r,
                Ok(None) => return None,
                Err(e) => {
                    // Stop after reporting the error.
                    self.merge.packs = None;
                    self.merge.pending.clear();
                    return Some(Err(e));
                }
            };
            match self.merge.store.load(r.source, r.seq) {
                Ok(Some(ev)) => return Some(Ok(ev)),
                Ok(None) => continue, // pruned between the index read and now
                Err(e) => return Some(Err(e)),
            }
        }
    }
}

/// The upper bound (inclusive) of a newest-first page after `before`; `None` when nothing can
/// come after it.
fn page_high(before: Option<&[u8]>) -> Result<Option<Ref>, StoreError> {
    match before {
        Some(cursor) => Ok(Ref::from_cursor(cursor)?.pred()),
        None => Ok(Some(Ref::MAX)),
    }
}

/// A session's calls, newest first: for each directory bucket of the session, newest first,
/// the entries of that session in its owners' packs (its users' `U` packs, or its own `S`
/// packs) within the directory bucket. The buckets do not overlap, so reading them one after
/// the other keeps the order; the owners of one bucket (usually one) are merged.
struct SessionRefs<'s> {
    store: &'s Store,
    session: String,
    high: Ref,
    /// Directory keys not read yet (read from the end); `None` once exhausted.
    dirs: Option<sled::Iter>,
    /// A directory key read ahead: the first of the next bucket.
    ahead: Option<(i64, Option<String>)>,
    dir_prefix_len: usize,
    current: Option<Merged<'s>>,
}

impl<'s> SessionRefs<'s> {
    fn new(store: &'s Store, session: &str, high: Ref) -> Self {
        let dir_prefix = keys::call_prefix(keys::SESSION_DIR, session);
        // Every directory bucket that starts at or before `high`.
        let end = keys::pack_end(&dir_prefix, i128::from(keys::dir_bucket(high.time)) + 1);
        Self {
            store,
            session: session.to_string(),
            high,
            dirs: Some(store.inner.tree.range(dir_prefix.clone()..end)),
            ahead: None,
            dir_prefix_len: dir_prefix.len(),
            current: None,
        }
    }

    /// The next directory key, newest bucket first.
    fn next_dir(&mut self) -> Result<Option<(i64, Option<String>)>, StoreError> {
        if let Some(ahead) = self.ahead.take() {
            return Ok(Some(ahead));
        }
        let Some(dirs) = self.dirs.as_mut() else {
            return Ok(None);
        };
        let Some(item) = dirs.next_back() else {
            self.dirs = None;
            return Ok(None);
        };
        let (k, _) = item?;
        let (start, user) = keys::parse_session_dir(&k, self.dir_prefix_len)
            .ok_or_else(|| StoreError::Corrupt("session directory key".into()))?;
        Ok(Some((start, user.map(str::to_string))))
    }
}

impl Refs for SessionRefs<'_> {
    fn next_ref(&mut self) -> Result<Option<Ref>, StoreError> {
        loop {
            if let Some(current) = self.current.as_mut() {
                if let Some(r) = current.next_ref()? {
                    return Ok(Some(r));
                }
                self.current = None;
            }
            let Some((start, user)) = self.next_dir()? else {
                return Ok(None);
            };
            let mut owners = vec![user];
            while let Some((next, user)) = self.next_dir()? {
                if next != start {
                    self.ahead = Some((next, user));
                    break;
                }
                owners.push(user);
            }
            let low = Ref {
                time: start,
                source: 0,
                seq: 0,
            };
            let high = self.high.min(Ref {
                time: start.saturating_add(keys::SESSION_DIR_MS - 1),
                source: u32::MAX,
                seq: u64::MAX,
            });
            if low > high {
                continue;
            }
            let streams = owners
                .iter()
                .map(|user| {
                    let prefix = keys::owner_prefix(&self.session, user.as_deref());
                    // `U` entries name their session; `S` packs are the session's own.
                    let filter = user.as_ref().map(|_| self.session.as_str());
                    PackMerge::new(
                        self.store,
                        &prefix,
                        low,
                        high,
                        Direction::NewestFirst,
                        filter,
                    )
                })
                .collect();
            self.current = Some(Merged::new(streams));
        }
    }
}

/// Several newest-first streams merged into one.
struct Merged<'s> {
    streams: Vec<PackMerge<'s>>,
    /// The next entry of each stream that has one, with the stream's index.
    heads: BinaryHeap<(Ref, usize)>,
    started: bool,
}

impl<'s> Merged<'s> {
    fn new(streams: Vec<PackMerge<'s>>) -> Self {
        Self {
            streams,
            heads: BinaryHeap::new(),
            started: false,
        }
    }
}

impl Refs for Merged<'_> {
    fn next_ref(&mut self) -> Result<Option<Ref>, StoreError> {
        if !self.started {
            self.started = true;
            for (i, stream) in self.streams.iter_mut().enumerate() {
                if let Some(r) = stream.next_ref()? {
                    self.heads.push((r, i));
                }
            }
        }
        let Some((r, i)) = self.heads.pop() else {
            return Ok(None);
        };
        if let Some(next) = self.streams[i].next_ref()? {
            self.heads.push((next, i));
        }
        Ok(Some(r))
    }
}
