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
//! | `T`    | type(u16) time(u64) source(u32) seq(u64)             | empty                     |
//! | `U`    | str(user) time source seq                            | empty (tool calls)        |
//! | `S`    | str(session) time source seq                         | empty (tool calls)        |
//! | `Z`    | kind(u8) source(u32) str(entity key)                 | state record              |
//! | `A`    | status(u8) !severity(u8) !time(u64) source str(id)   | empty (alerts)            |
//! | `P`    | time(u64) source str(entity `<len>:upstream/tool`)   | empty (pending changes)   |
//! | `C`    | counter name                                         | u64                       |
//! | `X`    | extra meta name                                      | bytes                     |
//!
//! Integers are big-endian; times are milliseconds since the epoch with the sign bit flipped so
//! that byte order is time order; `str(..)` is a u16 length then the bytes; `!x` is bitwise
//! complement, for descending order.

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

/// Key of the per-type time index.
pub fn by_type_time(type_id: u16, time_ms: i64, source: u32, seq: u64) -> [u8; 23] {
    let mut k = [0u8; 23];
    k[0] = BY_TYPE_TIME;
    k[1..3].copy_from_slice(&type_id.to_be_bytes());
    k[3..11].copy_from_slice(&time_bytes(time_ms));
    k[11..15].copy_from_slice(&source.to_be_bytes());
    k[15..23].copy_from_slice(&seq.to_be_bytes());
    k
}

/// The (source, seq) at the end of a time-ordered index key.
pub fn tail_ref(key: &[u8]) -> Option<(u32, u64)> {
    let n = key.len();
    if n < 12 {
        return None;
    }
    Some((
        u32::from_be_bytes(key[n - 12..n - 8].try_into().ok()?),
        u64::from_be_bytes(key[n - 8..].try_into().ok()?),
    ))
}

/// Key of a tool call in the by-user or by-session index.
pub fn call_by(family: u8, who: &str, time_ms: i64, source: u32, seq: u64) -> Vec<u8> {
    let mut k = call_prefix(family, who);
    k.extend_from_slice(&time_bytes(time_ms));
    k.extend_from_slice(&source.to_be_bytes());
    k.extend_from_slice(&seq.to_be_bytes());
    k
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
        assert_eq!(tail_ref(&by_type_time(3, 99, 7, 42)), Some((7, 42)));
        assert_eq!(
            tail_ref(&call_by(CALLS_BY_USER, "alice", 5, 7, 42)),
            Some((7, 42))
        );
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
