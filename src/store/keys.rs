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
//! | `T`    | type(u16) time(u64) source(u32) first_seq(u64)       | pack (events of the type) |
//! | `U`    | str(user) time source first_seq                      | pack (tool calls)         |
//! | `S`    | str(session) time source first_seq                   | pack (tool calls)         |
//! | `Z`    | kind(u8) source(u32) str(entity key)                 | state record              |
//! | `A`    | status(u8) !severity(u8) !time(u64) source str(id)   | empty (alerts)            |
//! | `P`    | time(u64) source str(entity `<len>:upstream/tool`)   | empty (pending changes)   |
//! | `C`    | counter name                                         | u64                       |
//! | `X`    | extra meta name                                      | bytes                     |
//!
//! Integers are big-endian; times are milliseconds since the epoch with the sign bit flipped so
//! that byte order is time order; `str(..)` is a u16 length then the bytes; `!x` is bitwise
//! complement, for descending order.
//!
//! # Packed event indexes (`T`, `U`, `S`)
//!
//! sled's cost grows with the number of keys written, so the event indexes do not hold one key
//! per event. Each write batch groups its events by index *group* (a type; a user; a session)
//! and by source, and writes one **pack** per group: key `prefix(group) time source first_seq`,
//! value the (time, sequence) of every event of the group in the batch. `time` in the key is
//! the newest event time in the pack and `first_seq` the lowest sequence (so keys are unique:
//! a sequence is in one pack per group). Every entry of a pack is less than
//! [`PACK_SPAN_MS`] older than the key's time and a pack holds at most [`PACK_MAX_ENTRIES`]:
//! a group whose events spread wider is cut into several packs. That bound is what makes
//! time-ordered reads exact: a reader walking packs in key order knows that no pack further on
//! holds an entry outside `(key time - PACK_SPAN_MS, key time]`, so it merges packs through a
//! small heap and emits events in exact (time, source, sequence) order.
//!
//! Pack value: empty for a pack of one entry (that entry is the key's time and `first_seq`;
//! this is also exactly the per-event key of the earlier layout, which therefore still reads),
//! otherwise [`PACK_FORMAT`] followed by, for each entry newest first, the varints
//! `key time - time` and `seq - first_seq`.
//!
//! Retention removes a source's events oldest sequence first; in the same atomic step it finds
//! the packs holding them (range of each group between the pruned times and
//! `PACK_SPAN_MS` later) and deletes each pack or rewrites it with its remaining entries, so a
//! pack never names a missing event.

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
/// Tool calls by session binding.
pub const CALLS_BY_SESSION: u8 = b'S';
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

/// Every entry of a pack is less than this many milliseconds older than the pack key's time.
pub const PACK_SPAN_MS: i64 = 60_000;

/// Most entries in one pack (keeps values, and sled pages of 16 of them, small).
pub const PACK_MAX_ENTRIES: usize = 512;

/// First byte of a pack value of more than one entry.
pub const PACK_FORMAT: u8 = 1;

/// Bytes after a group prefix in a pack key: time(8) source(4) first_seq(8).
pub const PACK_TAIL: usize = 20;

/// Group prefix of the per-type index.
pub fn type_prefix(type_id: u16) -> [u8; 3] {
    let [a, b] = type_id.to_be_bytes();
    [BY_TYPE_TIME, a, b]
}

/// Key of a pack: `prefix` (a group prefix: [`type_prefix`] or [`call_prefix`]), the newest
/// time in the pack, the source and the lowest sequence in the pack.
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

/// The first key at or after time `ms` in a group.
pub fn pack_start(prefix: &[u8], ms: i64) -> Vec<u8> {
    let mut k = Vec::with_capacity(prefix.len() + 8);
    k.extend_from_slice(prefix);
    k.extend_from_slice(&time_bytes(ms));
    k
}

/// The exclusive upper bound of the packs of a group whose time is below `ms` (any pack of
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

/// Encodes the entries `(time, seq)` of a pack whose key has `time_ms` and `first_seq`. The
/// entries are written in the order given (newest first by convention); each must be within
/// [`PACK_SPAN_MS`] of `time_ms` and at or after `first_seq`.
pub fn encode_pack(time_ms: i64, first_seq: u64, entries: &[(i64, u64)]) -> Vec<u8> {
    if let [(t, s)] = entries
        && *t == time_ms
        && *s == first_seq
    {
        return Vec::new();
    }
    let mut v = Vec::with_capacity(1 + entries.len() * 5);
    v.push(PACK_FORMAT);
    for &(t, s) in entries {
        push_varint(&mut v, (i128::from(time_ms) - i128::from(t)) as u64);
        push_varint(&mut v, s - first_seq);
    }
    v
}

/// Decodes a pack value into `(time, seq)` entries; `None` when malformed (including an entry
/// outside the pack's time span).
pub fn decode_pack(time_ms: i64, first_seq: u64, value: &[u8]) -> Option<Vec<(i64, u64)>> {
    let Some((&format, body)) = value.split_first() else {
        return Some(vec![(time_ms, first_seq)]);
    };
    if format != PACK_FORMAT {
        return None;
    }
    let mut out = Vec::with_capacity(body.len() / 3);
    let mut pos = 0;
    while pos < body.len() {
        let age = read_varint(body, &mut pos)?;
        if age >= PACK_SPAN_MS as u64 {
            return None;
        }
        let time = time_ms.checked_sub(age as i64)?;
        let seq = first_seq.checked_add(read_varint(body, &mut pos)?)?;
        out.push((time, seq));
    }
    (!out.is_empty()).then_some(out)
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
    }

    #[test]
    fn packs_round_trip_and_refuse_entries_outside_their_span() {
        let entries = vec![(1_000, 12), (1_000, 10), (990, 11), (1_000 - 59_999, 300)];
        let v = encode_pack(1_000, 10, &entries);
        assert_eq!(v[0], PACK_FORMAT);
        assert_eq!(decode_pack(1_000, 10, &v), Some(entries));
        // One entry equal to the key: an empty value (the earlier per-event layout).
        assert!(encode_pack(5, 9, &[(5, 9)]).is_empty());
        assert_eq!(decode_pack(5, 9, &[]), Some(vec![(5, 9)]));
        let far = encode_pack(1_000, 10, &[(1_000, 10), (1_000 - 60_000, 11)]);
        assert_eq!(decode_pack(1_000, 10, &far), None);
        assert_eq!(decode_pack(1_000, 10, &[PACK_FORMAT]), None);
        assert_eq!(decode_pack(1_000, 10, &[PACK_FORMAT, 0x80]), None);
        assert_eq!(decode_pack(1_000, 10, &[9, 0, 0]), None);
        assert_eq!(decode_pack(i64::MIN, 10, &[PACK_FORMAT, 1, 0]), None);
    }

    #[test]
    fn pack_bounds_cover_exactly_their_group() {
        let prefix = call_prefix(CALLS_BY_SESSION, "s");
        let inside = pack(&prefix, i64::MAX, u32::MAX, u64::MAX);
        assert!(inside < prefix_end(&prefix));
        assert!(pack(&prefix, i64::MIN, 0, 0) >= pack_start(&prefix, i64::MIN));
        assert!(pack(&prefix, 10, 0, 0) < pack_end(&prefix, 11));
        assert!(pack(&prefix, 11, 0, 0) >= pack_end(&prefix, 11));
        assert_eq!(pack_end(&prefix, i128::from(i64::MAX) + 1), prefix_end(&prefix));
        assert_eq!(prefix_end(&[1, 0xff, 0xff]), vec![2]);
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
