//! Key layout of the store's single sled tree.
//!
//! Everything lives in one tree so that an event, its index entries, its state update and the
//! source's resume position are written by one atomic `apply_batch`: after a crash the indexes
//! always agree with the events. The first byte names the key family:
//!
//! | prefix | key                                                  | value                     |
//! |--------|------------------------------------------------------|---------------------------|
//! | `E`    | source(u32) seq(u64)                                 | event JSON                |
//! | `L`    | source(u32)                                          | last stored seq (u64)     |
//! | `N`    | source name                                          | source id (u32)           |
//! | `n`    | source(u32)                                          | source name               |
//! | `Y`    | type name                                            | type id (u16)             |
//! | `y`    | type(u16)                                            | type name                 |
//! | `T`    | type(u16) time(u64) source(u32) first_seq(u64)       | pack: events of the type  |
//! | `U`    | str(user) time source first_seq                      | pack: tool calls by user  |
//! | `S`    | str(session) time source first_seq                   | pack: calls without user  |
//! | `s`    | str(session) time(10-minute bucket) owner            | empty (session directory) |
//! | `Z`    | kind(u8) source(u32) str(entity key)                 | state record              |
//! | `A`    | status(u8) !severity(u8) !time(u64) source str(id)   | empty (alerts)            |
//! | `P`    | time(u64) source str(entity `<len>:upstream/tool`)   | empty (pending changes)   |
//! | `C`    | counter name                                         | u64                       |
//! | `X`    | extra meta name                                      | bytes                     |
//! | `V`    | (nothing)                                            | layout version (u64)      |
//!
//! Integers are big-endian; times are milliseconds since the epoch with the sign bit flipped so
//! that byte order is time order; `str(..)` is a u16 length then the bytes; `!x` is bitwise
//! complement, for descending order.
//!
//! # Packed event indexes (`T`, `U`, `S`)
//!
//! sled's cost grows with the number of keys written, and more with the number of distinct
//! leaves a batch touches, so the event indexes do not hold one key per event. Each write batch
//! groups its events by index *group* and by source, and writes one **pack** per group: key
//! `group prefix, time, source, first_seq`, value the (time, sequence) of every event of the
//! group in the batch. The groups: each type (`T`); each user, for tool calls (`U`; an entry
//! also names the call's session); and each session, for the rare tool calls that have a
//! session but no user (`S`). `time` in the key is the newest event time in the pack and
//! `first_seq` the lowest sequence (so keys are unique: a sequence is in one pack per group).
//! Every entry of a pack is less than [`PACK_SPAN_MS`] older than the key's time, and a pack
//! holds at most [`PACK_MAX_ENTRIES`] entries and about [`PACK_MAX_TABLE_BYTES`] of session
//! names: a group whose events spread wider is cut into several packs. The span bound is what
//! makes time-ordered reads exact: a reader walking packs in key order knows that no pack
//! further on holds an entry outside `(key time - PACK_SPAN_MS, key time]`, so it merges packs
//! through a small heap and emits events in exact (time, source, sequence) order.
//!
//! Pack value, one of:
//! - empty: one entry, the key's time and `first_seq`;
//! - [`PACK_PLAIN`], then per entry (newest first) the varints `key time - time` and
//!   `seq - first_seq`;
//! - [`PACK_SESSIONS`], a varint count of session names, each a varint length and the bytes,
//!   then per entry the varints `key time - time`, `seq - first_seq` and `1 + index` of its
//!   session in that table (`0`: none).
//!
//! # Session directory (`s`)
//!
//! A session's calls are in its user's `U` packs, among the user's other calls, so the
//! directory says where to look: `s session t owner` exists while some stored call of the
//! session has a time in `[t, t + SESSION_DIR_MS)` and is in the owner's packs; the owner is
//! `1 str(user)` (the user's `U` packs) or `0` (the session's own `S` packs, calls without a
//! user). A session read walks the session's directory buckets newest first and reads only
//! those spans of the owners' packs. Ingest writes a directory key the first time it sees a
//! (session, bucket, owner): one key per active session per 10 minutes of event time, not per
//! batch.
//!
//! # Retention
//!
//! Retention removes a source's events oldest sequence first; in the same atomic step it finds
//! the packs holding them (range of each group between the pruned times and `PACK_SPAN_MS`
//! later) and deletes each pack or rewrites it with its remaining entries, and deletes the
//! directory keys of buckets left with no call of their session. A pack never names a missing
//! event and the directory never names an empty bucket.
//!
//! # Layout version (`V`)
//!
//! [`LAYOUT_VERSION`]: a store without it (written by an earlier version, with one index key
//! per event) has its event indexes rebuilt from the events when it is opened.

/// Event by (source, sequence).
pub const EVENT: u8 = b'E';
/// Last stored sequence per source.
pub const LAST: u8 = b'L';
/// Source name to id.
pub const SOURCE_BY_NAME: u8 = b'N';
/// Source id to name.
pub const SOURCE_BY_ID: u8 = b'n';
/// Type name to id.
pub const TYPE_BY_NAME: u8 = b'Y';
/// Type id to name.
pub const TYPE_BY_ID: u8 = b'y';
/// Per-type time index.
pub const BY_TYPE_TIME: u8 = b'T';
/// Tool calls by user.
pub const CALLS_BY_USER: u8 = b'U';
/// Tool calls without a user, by session binding.
pub const CALLS_BY_SESSION: u8 = b'S';
/// Session directory: the time buckets in which a session has calls.
pub const SESSION_DIR: u8 = b's';
/// Layout version.
pub const LAYOUT: u8 = b'V';
/// Current state of an entity (session, tool change, alert).
pub const STATE: u8 = b'Z';
/// Alerts by status, severity, time.
pub const ALERTS: u8 = b'A';
/// Pending tool changes, oldest first.
pub const PENDING: u8 = b'P';
/// Counters.
pub const COUNTER: u8 = b'C';
/// Extra metadata owned by a role (e.g. the replay cursor).
pub const EXTRA: u8 = b'X';

/// Encodes a millisecond time so that byte order is time order.
pub fn time_bytes(ms: i64) -> [u8; 8] {
    ((ms as u64) ^ (1u64 << 63)).to_be_bytes()
}

/// Decodes [`time_bytes`].
pub fn time_from_bytes(b: [u8; 8]) -> i64 {
    (u64::from_be_bytes(b) ^ (1u64 << 63)) as i64
}

/// Appends a length-prefixed string (at most 65,535 bytes; longer is cut at a char boundary).
pub fn push_str(key: &mut Vec<u8>, s: &str) {
    let mut end = s.len().min(u16::MAX as usize);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    key.extend_from_slice(&(end as u16).to_be_bytes());
    key.extend_from_slice(&s.as_bytes()[..end]);
}

/// Reads a length-prefixed string at `pos`, returning it and the position after it.
pub fn read_str(key: &[u8], pos: usize) -> Option<(&str, usize)> {
    let len = u16::from_be_bytes(key.get(pos..pos + 2)?.try_into().ok()?) as usize;
    let bytes = key.get(pos + 2..pos + 2 + len)?;
    Some((std::str::from_utf8(bytes).ok()?, pos + 2 + len))
}

/// Key of an event.
pub fn event(source: u32, seq: u64) -> [u8; 13] {
    let mut k = [0u8; 13];
    k[0] = EVENT;
    k[1..5].copy_from_slice(&source.to_be_bytes());
    k[5..13].copy_from_slice(&seq.to_be_bytes());
    k
}

/// Prefix of every event of a source.
pub fn event_prefix(source: u32) -> [u8; 5] {
    let mut k = [0u8; 5];
    k[0] = EVENT;
    k[1..5].copy_from_slice(&source.to_be_bytes());
    k
}

/// Splits an event key into (source, seq).
pub fn parse_event(key: &[u8]) -> Option<(u32, u64)> {
    if key.len() != 13 || key[0] != EVENT {
        return None;
    }
    Some((
        u32::from_be_bytes(key[1..5].try_into().ok()?),
        u64::from_be_bytes(key[5..13].try_into().ok()?),
    ))
}

/// Key of a source's resume position.
pub fn last(source: u32) -> [u8; 5] {
    let mut k = [0u8; 5];
    k[0] = LAST;
    k[1..5].copy_from_slice(&source.to_be_bytes());
    k
}

/// Version of this layout, stored under [`LAYOUT`].
pub const LAYOUT_VERSION: u64 = 2;

/// Every entry of a pack is less than this many milliseconds older than the pack key's time.
pub const PACK_SPAN_MS: i64 = 60_000;

/// Most entries in one pack (keeps values, and sled pages of 16 of them, small).
pub const PACK_MAX_ENTRIES: usize = 512;

/// A pack is cut once its session names exceed this many bytes.
pub const PACK_MAX_TABLE_BYTES: usize = 8 * 1024;

/// First byte of a pack value of entries without sessions.
pub const PACK_PLAIN: u8 = 1;

/// First byte of a pack value whose entries carry a session.
pub const PACK_SESSIONS: u8 = 2;

/// Bytes after a group prefix in a pack key: time(8) source(4) first_seq(8).
pub const PACK_TAIL: usize = 20;

/// Width of a session directory bucket.
pub const SESSION_DIR_MS: i64 = 600_000;

/// Key of the layout version.
pub fn layout() -> [u8; 1] {
    [LAYOUT]
}

/// Group prefix of the per-type index.
pub fn type_prefix(type_id: u16) -> [u8; 3] {
    let [a, b] = type_id.to_be_bytes();
    [BY_TYPE_TIME, a, b]
}

/// Start of the directory bucket holding `ms`.
pub fn dir_bucket(ms: i64) -> i64 {
    ms.div_euclid(SESSION_DIR_MS) * SESSION_DIR_MS
}

/// Directory key: `session` has calls in the bucket starting at `bucket_ms`, in the `U` packs
/// of `user` (or, for `None`, in the session's own `S` packs).
pub fn session_dir(session: &str, bucket_ms: i64, user: Option<&str>) -> Vec<u8> {
    let mut k = Vec::with_capacity(3 + session.len() + 8 + 3 + user.map_or(0, str::len));
    push_session_dir(&mut k, session, bucket_ms, user);
    k
}

/// Appends a [`session_dir`] key to `k`.
pub fn push_session_dir(k: &mut Vec<u8>, session: &str, bucket_ms: i64, user: Option<&str>) {
    k.push(SESSION_DIR);
    push_str(k, session);
    k.extend_from_slice(&time_bytes(bucket_ms));
    match user {
        Some(user) => {
            k.push(1);
            push_str(k, user);
        }
        None => k.push(0),
    }
}

/// The bucket start and owner of a directory key whose session prefix is `prefix_len` long.
pub fn parse_session_dir(key: &[u8], prefix_len: usize) -> Option<(i64, Option<&str>)> {
    let time = time_from_bytes(key.get(prefix_len..prefix_len + 8)?.try_into().ok()?);
    match *key.get(prefix_len + 8)? {
        0 if key.len() == prefix_len + 9 => Some((time, None)),
        1 => {
            let (user, end) = read_str(key, prefix_len + 9)?;
            (end == key.len()).then_some((time, Some(user)))
        }
        _ => None,
    }
}

/// The group prefix of the packs a directory owner names.
pub fn owner_prefix(session: &str, user: Option<&str>) -> Vec<u8> {
    match user {
        Some(user) => call_prefix(CALLS_BY_USER, user),
        None => call_prefix(CALLS_BY_SESSION, session),
    }
}

/// Key of a pack: `prefix` (a group prefix: [`type_prefix`], or [`call_prefix`] of a user or
/// a session), the newest time in the pack, the source and the lowest sequence.
pub fn pack(prefix: &[u8], time_ms: i64, source: u32, first_seq: u64) -> Vec<u8> {
    let mut k = Vec::with_capacity(prefix.len() + PACK_TAIL);
    k.extend_from_slice(prefix);
    k.extend_from_slice(&time_bytes(time_ms));
    k.extend_from_slice(&source.to_be_bytes());
    k.extend_from_slice(&first_seq.to_be_bytes());
    k
}

/// The (newest time, source, first sequence) at the end of a pack key.
pub fn pack_tail(key: &[u8]) -> Option<(i64, u32, u64)> {
    let n = key.len();
    if n < PACK_TAIL + 1 {
        return None;
    }
    let t = &key[n - PACK_TAIL..];
    Some((
        time_from_bytes(t[0..8].try_into().ok()?),
        u32::from_be_bytes(t[8..12].try_into().ok()?),
        u64::from_be_bytes(t[12..20].try_into().ok()?),
    ))
}

/// The group prefix of a pack key (family and group), if the key is well formed.
pub fn pack_prefix(key: &[u8]) -> Option<&[u8]> {
    let len = match *key.first()? {
        BY_TYPE_TIME => 3,
        CALLS_BY_USER | CALLS_BY_SESSION => read_str(key, 1)?.1,
        _ => return None,
    };
    (key.len() == len + PACK_TAIL).then(|| &key[..len])
}

/// The first key at or after time `ms` in a group (pack or directory).
pub fn pack_start(prefix: &[u8], ms: i64) -> Vec<u8> {
    let mut k = Vec::with_capacity(prefix.len() + 8);
    k.extend_from_slice(prefix);
    k.extend_from_slice(&time_bytes(ms));
    k
}

/// The exclusive upper bound of the keys of a group whose time is below `ms` (every key of
/// the group when `ms` is past the largest time).
pub fn pack_end(prefix: &[u8], ms: i128) -> Vec<u8> {
    match i64::try_from(ms) {
        Ok(ms) => pack_start(prefix, ms),
        Err(_) if ms < 0 => pack_start(prefix, i64::MIN),
        Err(_) => prefix_end(prefix),
    }
}

/// The smallest key greater than every key that starts with `prefix`.
pub fn prefix_end(prefix: &[u8]) -> Vec<u8> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < u8::MAX {
            end.push(last + 1);
            return end;
        }
    }
    vec![u8::MAX; prefix.len() + 1]
}

/// One entry of a pack.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PackEntry {
    /// Event time, ms since the epoch.
    pub time_ms: i64,
    /// Event sequence (the source is in the key).
    pub seq: u64,
    /// Index of the event's session in the pack's (or group's) session table.
    pub session: Option<u32>,
}

/// A decoded pack.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Pack {
    /// Session names the entries refer to.
    pub sessions: Vec<String>,
    /// Entries, in stored order (newest first).
    pub entries: Vec<PackEntry>,
}

impl Pack {
    /// The index of `session` in the table.
    pub fn session_index(&self, session: &str) -> Option<u32> {
        self.sessions
            .iter()
            .position(|s| s == session)
            .map(|i| i as u32)
    }

    /// The session of an entry.
    pub fn session_of(&self, entry: &PackEntry) -> Option<&str> {
        entry
            .session
            .and_then(|i| self.sessions.get(i as usize))
            .map(String::as_str)
    }
}

fn push_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn read_varint(bytes: &[u8], pos: &mut usize) -> Option<u64> {
    let mut v = 0u64;
    for shift in (0..64).step_by(7) {
        let b = *bytes.get(*pos)?;
        *pos += 1;
        v |= u64::from(b & 0x7f).checked_shl(shift)?;
        if b & 0x80 == 0 {
            return Some(v);
        }
    }
    None
}

/// Encodes the entries of a pack whose key has `time_ms` and `first_seq`, in the order given
/// (newest first by convention). Each entry must be within [`PACK_SPAN_MS`] of `time_ms` and
/// at or after `first_seq`; its session indexes `sessions` (only the names used are stored).
pub fn encode_pack(
    time_ms: i64,
    first_seq: u64,
    sessions: &[String],
    entries: &[PackEntry],
) -> Vec<u8> {
    let age = |e: &PackEntry| (i128::from(time_ms) - i128::from(e.time_ms)) as u64;
    if !entries.iter().any(|e| e.session.is_some()) {
        if let [e] = entries
            && e.time_ms == time_ms
            && e.seq == first_seq
        {
            return Vec::new();
        }
        let mut v = Vec::with_capacity(1 + entries.len() * 5);
        v.push(PACK_PLAIN);
        for e in entries {
            push_varint(&mut v, age(e));
            push_varint(&mut v, e.seq - first_seq);
        }
        return v;
    }
    // Renumber the sessions used, in order of first use.
    let mut renumber: Vec<Option<u32>> = vec![None; sessions.len()];
    let mut table: Vec<&str> = Vec::new();
    for e in entries {
        if let Some(i) = e.session
            && renumber[i as usize].is_none()
        {
            renumber[i as usize] = Some(table.len() as u32);
            table.push(&sessions[i as usize]);
        }
    }
    let names: usize = table.iter().map(|s| s.len() + 2).sum();
    let mut v = Vec::with_capacity(2 + names + entries.len() * 6);
    v.push(PACK_SESSIONS);
    push_varint(&mut v, table.len() as u64);
    for name in table {
        push_varint(&mut v, name.len() as u64);
        v.extend_from_slice(name.as_bytes());
    }
    for e in entries {
        push_varint(&mut v, age(e));
        push_varint(&mut v, e.seq - first_seq);
        let slot = e.session.and_then(|i| renumber[i as usize]);
        push_varint(&mut v, slot.map_or(0, |s| u64::from(s) + 1));
    }
    v
}

/// Decodes a pack value; `None` when malformed (including an entry outside the pack's time
/// span or a session index outside its table).
pub fn decode_pack(time_ms: i64, first_seq: u64, value: &[u8]) -> Option<Pack> {
    let Some((&format, body)) = value.split_first() else {
        return Some(Pack {
            sessions: Vec::new(),
            entries: vec![PackEntry {
                time_ms,
                seq: first_seq,
                session: None,
            }],
        });
    };
    let mut pos = 0;
    let mut sessions = Vec::new();
    match format {
        PACK_PLAIN => {}
        PACK_SESSIONS => {
            let n = read_varint(body, &mut pos)?;
            for _ in 0..n {
                let len = usize::try_from(read_varint(body, &mut pos)?).ok()?;
                let bytes = body.get(pos..pos.checked_add(len)?)?;
                sessions.push(std::str::from_utf8(bytes).ok()?.to_string());
                pos += len;
            }
        }
        _ => return None,
    }
    let mut entries = Vec::with_capacity(body.len() / 3);
    while pos < body.len() {
        let age = read_varint(body, &mut pos)?;
        if age >= PACK_SPAN_MS as u64 {
            return None;
        }
        let time = time_ms.checked_sub(age as i64)?;
        let seq = first_seq.checked_add(read_varint(body, &mut pos)?)?;
        let session = if format == PACK_SESSIONS {
            match read_varint(body, &mut pos)? {
                0 => None,
                i if i <= sessions.len() as u64 => Some((i - 1) as u32),
                _ => return None,
            }
        } else {
            None
        };
        entries.push(PackEntry {
            time_ms: time,
            seq,
            session,
        });
    }
    (!entries.is_empty()).then_some(Pack { sessions, entries })
}

/// Prefix of the tool calls of one user or session.
pub fn call_prefix(family: u8, who: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(3 + who.len() + 20);
    k.push(family);
    push_str(&mut k, who);
    k
}

/// Key of an entity's current state.
pub fn state(kind: u8, source: u32, entity: &str) -> Vec<u8> {
    let mut k = state_prefix(kind);
    k.extend_from_slice(&source.to_be_bytes());
    push_str(&mut k, entity);
    k
}

/// Prefix of every state of one kind.
pub fn state_prefix(kind: u8) -> Vec<u8> {
    vec![STATE, kind]
}

/// Key of an alert in the status/severity/time index.
pub fn alert(status: u8, severity: u8, time_ms: i64, source: u32, alert_id: &str) -> Vec<u8> {
    let mut k = vec![ALERTS, status, !severity];
    let t = time_bytes(time_ms);
    k.extend(t.iter().map(|b| !b));
    k.extend_from_slice(&source.to_be_bytes());
    push_str(&mut k, alert_id);
    k
}

/// Key of a pending change in the oldest-first index.
pub fn pending(time_ms: i64, source: u32, entity: &str) -> Vec<u8> {
    let mut k = vec![PENDING];
    k.extend_from_slice(&time_bytes(time_ms));
    k.extend_from_slice(&source.to_be_bytes());
    push_str(&mut k, entity);
    k
}

/// Key of a counter.
pub fn counter(name: &str) -> Vec<u8> {
    let mut k = vec![COUNTER];
    k.extend_from_slice(name.as_bytes());
    k
}

/// Key of a role's extra metadata.
pub fn extra(name: &str) -> Vec<u8> {
    let mut k = vec![EXTRA];
    k.extend_from_slice(name.as_bytes());
    k
}

/// Reads a big-endian u64 value.
pub fn u64_value(v: &[u8]) -> Option<u64> {
    Some(u64::from_be_bytes(v.get(..8)?.try_into().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn time_bytes_order_matches_time_order() {
        let times = [-5_000i64, -1, 0, 1, 1_700_000_000_000, i64::MAX];
        for w in times.windows(2) {
            assert!(time_bytes(w[0]) < time_bytes(w[1]));
            assert_eq!(time_from_bytes(time_bytes(w[0])), w[0]);
        }
    }

    #[test]
    fn event_key_round_trips() {
        assert_eq!(parse_event(&event(7, 42)), Some((7, 42)));
        let k = pack(&type_prefix(3), -99, 7, 42);
        assert_eq!(pack_tail(&k), Some((-99, 7, 42)));
        assert_eq!(pack_prefix(&k), Some(&type_prefix(3)[..]));
        let prefix = call_prefix(CALLS_BY_USER, "alice");
        let k = pack(&prefix, 5, 7, 42);
        assert_eq!(pack_tail(&k), Some((5, 7, 42)));
        assert_eq!(pack_prefix(&k), Some(&prefix[..]));
        assert_eq!(pack_prefix(&k[..k.len() - 1]), None);
        let prefix = call_prefix(CALLS_BY_SESSION, "alice:s1");
        let k = pack(&prefix, 5, 7, 42);
        assert_eq!(pack_prefix(&k), Some(&prefix[..]));
        let dir = session_dir("alice:s1", -600_000, Some("alice"));
        let len = call_prefix(SESSION_DIR, "alice:s1").len();
        assert_eq!(
            parse_session_dir(&dir, len),
            Some((-600_000, Some("alice")))
        );
        let dir = session_dir("alice:s1", 0, None);
        assert_eq!(parse_session_dir(&dir, len), Some((0, None)));
        assert_eq!(parse_session_dir(&dir[..dir.len() - 1], len), None);
    }

    fn entry(time_ms: i64, seq: u64, session: Option<u32>) -> PackEntry {
        PackEntry {
            time_ms,
            seq,
            session,
        }
    }

    #[test]
    fn packs_round_trip_and_refuse_entries_outside_their_span() {
        let entries = vec![
            entry(1_000, 12, None),
            entry(1_000, 10, None),
            entry(990, 11, None),
            entry(1_000 - 59_999, 300, None),
        ];
        let v = encode_pack(1_000, 10, &[], &entries);
        assert_eq!(v[0], PACK_PLAIN);
        let pack = decode_pack(1_000, 10, &v).expect("decodes");
        assert_eq!(pack.entries, entries);
        assert!(pack.sessions.is_empty());
        // One entry equal to the key: an empty value (the earlier per-event layout).
        assert!(encode_pack(5, 9, &[], &[entry(5, 9, None)]).is_empty());
        assert_eq!(
            decode_pack(5, 9, &[]).expect("decodes").entries,
            vec![entry(5, 9, None)]
        );
        let far = encode_pack(
            1_000,
            10,
            &[],
            &[entry(1_000, 10, None), entry(-59_000, 11, None)],
        );
        assert_eq!(decode_pack(1_000, 10, &far), None);
        assert_eq!(decode_pack(1_000, 10, &[PACK_PLAIN]), None);
        assert_eq!(decode_pack(1_000, 10, &[PACK_PLAIN, 0x80]), None);
        assert_eq!(decode_pack(1_000, 10, &[9, 0, 0]), None);
        assert_eq!(decode_pack(i64::MIN, 10, &[PACK_PLAIN, 1, 0]), None);
    }

    #[test]
    fn session_packs_keep_only_the_names_they_use() {
        let table: Vec<String> = ["a", "unused", "b"].map(String::from).to_vec();
        let entries = vec![
            entry(100, 3, Some(2)),
            entry(99, 1, Some(0)),
            entry(98, 2, Some(2)),
            entry(97, 4, None),
        ];
        let v = encode_pack(100, 1, &table, &entries);
        assert_eq!(v[0], PACK_SESSIONS);
        let pack = decode_pack(100, 1, &v).expect("decodes");
        assert_eq!(pack.sessions, vec!["b".to_string(), "a".to_string()]);
        let named: Vec<(u64, Option<&str>)> = pack
            .entries
            .iter()
            .map(|e| (e.seq, pack.session_of(e)))
            .collect();
        assert_eq!(
            named,
            vec![(3, Some("b")), (1, Some("a")), (2, Some("b")), (4, None)]
        );
        assert_eq!(pack.session_index("a"), Some(1));
        assert_eq!(pack.session_index("unused"), None);
        // A session index past the table is refused.
        assert_eq!(
            decode_pack(100, 1, &[PACK_SESSIONS, 1, 1, b'a', 0, 0, 2]),
            None
        );
    }

    #[test]
    fn pack_bounds_cover_exactly_their_group() {
        let prefix = call_prefix(CALLS_BY_USER, "u");
        let inside = pack(&prefix, i64::MAX, u32::MAX, u64::MAX);
        assert!(inside < prefix_end(&prefix));
        assert!(pack(&prefix, i64::MIN, 0, 0) >= pack_start(&prefix, i64::MIN));
        assert!(pack(&prefix, 10, 0, 0) < pack_end(&prefix, 11));
        assert!(pack(&prefix, 11, 0, 0) >= pack_end(&prefix, 11));
        assert_eq!(
            pack_end(&prefix, i128::from(i64::MAX) + 1),
            prefix_end(&prefix)
        );
        assert_eq!(prefix_end(&[1, 0xff, 0xff]), vec![2]);
        assert_eq!(dir_bucket(SESSION_DIR_MS + 5), SESSION_DIR_MS);
        assert_eq!(dir_bucket(-1), -SESSION_DIR_MS);
    }

    #[test]
    fn strings_are_length_prefixed() {
        let mut k = vec![];
        push_str(&mut k, "ab");
        push_str(&mut k, "c");
        let (a, p) = read_str(&k, 0).unwrap();
        let (c, _) = read_str(&k, p).unwrap();
        assert_eq!((a, c), ("ab", "c"));
    }
}
