//! Exhaustive consistency checks of a store.
//!
//! [`check_store`] uses only the public query API on an open store: every stored event is
//! reachable through every index it belongs to, the indexes name nothing else, the state
//! lookups agree with the state lists, and the counters agree with the events.
//!
//! [`check_raw`] opens the closed store's sled tree directly and walks every key: every `E`
//! event has its index entries and state record, every index entry points to an existing event
//! (or state record), the dictionaries are bijective and the counters are exact. The event
//! indexes are packed (see `mcpsoc::store::keys`): every entry of every pack is checked, and
//! each pack's key must agree with its entries (newest time, lowest sequence, span, size). The
//! public queries skip dangling index entries silently, so only the raw walk can see those.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::path::Path;

use mcpsoc::protocol::Envelope;
use mcpsoc::protocol::events;
use mcpsoc::store::keys;
use mcpsoc::store::view::{EventView, StateKind, change_key};
use mcpsoc::store::{AlertFilter, StateRecord, Store, StoredEvent};

/// What the checker saw, for further assertions.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Summary {
    /// Events stored.
    pub events: usize,
    /// Events per type.
    pub by_type: BTreeMap<String, usize>,
    /// (source, sequence) of every event.
    pub refs: BTreeSet<(String, u64)>,
    /// Alerts listed.
    pub alerts: usize,
    /// Pending changes listed.
    pub pending: usize,
    /// Session bindings listed.
    pub sessions: usize,
}

type Ref = (String, u64);
type KeyValue = (Vec<u8>, Vec<u8>);

/// One entry of a packed event index: group prefix (family and type, user or session
/// bucket), the event, its time and the session the entry names.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct IndexEntry {
    prefix: Vec<u8>,
    source: u32,
    seq: u64,
    time_ms: i64,
    session: Option<String>,
}

fn refs_of(events: &[StoredEvent]) -> Vec<Ref> {
    events
        .iter()
        .map(|e| (e.source.clone(), e.sequence))
        .collect()
}

fn view_of(e: &StoredEvent) -> EventView<'_> {
    EventView::parse(&e.json)
        .unwrap_or_else(|err| panic!("stored event {}/{} unreadable: {err}", e.source, e.sequence))
}

fn ms_of(e: &StoredEvent) -> i64 {
    view_of(e).time_ms
}

/// Pages through a newest-first index with a small page size; checks order and no repeats.
fn page_all(
    what: &str,
    mut page: impl FnMut(
        Option<&[u8]>,
        usize,
    ) -> Result<(Vec<StoredEvent>, Option<Vec<u8>>), mcpsoc::store::StoreError>,
) -> Vec<StoredEvent> {
    let mut out: Vec<StoredEvent> = Vec::new();
    let mut before: Option<Vec<u8>> = None;
    for _ in 0..1_000_000 {
        let (events, last) = page(before.as_deref(), 7).expect("index page");
        if events.is_empty() {
            break;
        }
        assert!(events.len() <= 7, "{what}: page larger than its limit");
        out.extend(events);
        match last {
            Some(k) => before = Some(k),
            None => break,
        }
    }
    for w in out.windows(2) {
        assert!(
            ms_of(&w[0]) >= ms_of(&w[1]),
            "{what}: not newest first: {}/{} before {}/{}",
            w[0].source,
            w[0].sequence,
            w[1].source,
            w[1].sequence
        );
    }
    let unique: HashSet<Ref> = refs_of(&out).into_iter().collect();
    assert_eq!(unique.len(), out.len(), "{what}: paging repeated an event");
    let (all_at_once, _) = page(None, usize::MAX).expect("index read");
    assert_eq!(
        refs_of(&all_at_once),
        refs_of(&out),
        "{what}: paging and one read disagree"
    );
    out
}

fn sorted(mut v: Vec<Ref>) -> Vec<Ref> {
    v.sort();
    v
}

fn source_name(store: &Store, record: &StateRecord) -> String {
    store
        .source_name(record.source)
        .unwrap_or_else(|| panic!("state record names unknown source id {}", record.source))
}

/// Checks an open store through its public API. Panics with a description on any mismatch.
pub fn check_store(store: &Store) -> Summary {
    let all: Vec<StoredEvent> = store
        .all_events()
        .collect::<Result<_, _>>()
        .expect("all_events reads");
    let mut summary = Summary {
        events: all.len(),
        ..Summary::default()
    };

    // Counters.
    assert_eq!(store.count(), all.len() as u64, "count() vs events stored");
    let bytes: u64 = all.iter().map(|e| e.json.len() as u64).sum();
    assert_eq!(store.stored_bytes(), bytes, "stored_bytes() vs event JSON");

    // Every event readable, keyed by its own source and sequence, and found by event().
    let sources: BTreeSet<String> = store.sources().into_iter().collect();
    let types: BTreeSet<String> = store.types().into_iter().collect();
    let mut by_source: BTreeMap<String, Vec<&StoredEvent>> = BTreeMap::new();
    let mut by_type: BTreeMap<String, Vec<Ref>> = BTreeMap::new();
    for e in &all {
        let env = Envelope::parse(&e.json).unwrap_or_else(|err| {
            panic!(
                "stored event {}/{} is no envelope: {err}",
                e.source, e.sequence
            )
        });
        assert_eq!(env.source, e.source, "event stored under another source");
        assert_eq!(env.sequence, e.sequence, "event stored under another seq");
        assert!(
            sources.contains(&e.source),
            "source {} not listed",
            e.source
        );
        assert!(types.contains(&env.kind), "type {} not listed", env.kind);
        let again = store
            .event(&e.source, e.sequence)
            .expect("event() reads")
            .unwrap_or_else(|| panic!("event({}, {}) is None", e.source, e.sequence));
        assert_eq!(&again, e, "event() differs from all_events()");
        by_source.entry(e.source.clone()).or_default().push(e);
        by_type
            .entry(env.kind.clone())
            .or_default()
            .push((e.source.clone(), e.sequence));
        summary.refs.insert((e.source.clone(), e.sequence));
    }
    assert_eq!(summary.refs.len(), all.len(), "an event is listed twice");

    // Per source: events_after is the same list, in sequence order, within the resume position.
    for source in &sources {
        let listed = store
            .events_after(source, 0, usize::MAX)
            .expect("events_after reads");
        let expected: Vec<Ref> = by_source
            .get(source)
            .map(|v| v.iter().map(|e| (e.source.clone(), e.sequence)).collect())
            .unwrap_or_default();
        assert_eq!(refs_of(&listed), expected, "events_after({source}) differs");
        for w in listed.windows(2) {
            assert!(w[0].sequence < w[1].sequence, "{source}: not in seq order");
        }
        let last = store.last_sequence(source);
        if let Some(max) = listed.last() {
            assert!(
                max.sequence <= last,
                "{source}: event {} beyond last_sequence {last}",
                max.sequence
            );
        }
        assert_eq!(
            store.first_sequence(source).expect("first_sequence reads"),
            listed.first().map(|e| e.sequence),
            "{source}: first_sequence"
        );
    }

    // Per type: the time index names exactly the events of that type, both read paths.
    for kind in &types {
        let expected = sorted(by_type.get(kind).cloned().unwrap_or_default());
        let between: Vec<StoredEvent> = store
            .of_type_between(kind, i64::MIN, i64::MAX)
            .collect::<Result<_, _>>()
            .expect("of_type_between reads");
        for w in between.windows(2) {
            assert!(ms_of(&w[0]) <= ms_of(&w[1]), "{kind}: not oldest first");
        }
        assert_eq!(
            sorted(refs_of(&between)),
            expected,
            "of_type_between({kind}) vs events of that type"
        );
        let newest = page_all(kind, |before, limit| {
            store.newest_of_type(kind, before, limit)
        });
        assert_eq!(
            sorted(refs_of(&newest)),
            expected,
            "newest_of_type({kind}) vs events of that type"
        );
        summary.by_type.insert(kind.clone(), expected.len());
    }
    summary.by_type.retain(|_, n| *n > 0);

    // Tool calls by user and by session: every call under its user and session, nothing else.
    let mut calls_by_user: BTreeMap<String, Vec<Ref>> = BTreeMap::new();
    let mut calls_by_session: BTreeMap<String, Vec<Ref>> = BTreeMap::new();
    let mut calls_with_user = 0usize;
    let mut calls_with_session = 0usize;
    for e in &all {
        let view = view_of(e);
        if !view.is_tool_call() {
            continue;
        }
        if let Some(user) = view.data.user.as_deref() {
            calls_with_user += 1;
            calls_by_user
                .entry(user.to_string())
                .or_default()
                .push((e.source.clone(), e.sequence));
        }
        if let Some(session) = view.data.session.as_deref() {
            calls_with_session += 1;
            calls_by_session
                .entry(session.to_string())
                .or_default()
                .push((e.source.clone(), e.sequence));
        }
    }
    let mut seen = 0usize;
    for (user, expected) in &calls_by_user {
        let listed = page_all(user, |before, limit| {
            store.tool_calls_by_user(user, before, limit)
        });
        for e in &listed {
            assert!(
                view_of(e).is_tool_call(),
                "by_user({user}) lists a non-call"
            );
        }
        assert_eq!(
            sorted(refs_of(&listed)),
            sorted(expected.clone()),
            "tool_calls_by_user({user})"
        );
        seen += listed.len();
    }
    assert_eq!(
        seen, calls_with_user,
        "calls by user do not sum to the calls"
    );
    let mut seen = 0usize;
    for (session, expected) in &calls_by_session {
        let listed = page_all(session, |before, limit| {
            store.tool_calls_by_session(session, before, limit)
        });
        assert_eq!(
            sorted(refs_of(&listed)),
            sorted(expected.clone()),
            "tool_calls_by_session({session})"
        );
        seen += listed.len();
    }
    assert_eq!(
        seen, calls_with_session,
        "calls by session do not sum to the calls"
    );

    // State: every stateful event has a state record at least as new as itself.
    let mut latest: HashMap<(String, u8, String), &StoredEvent> = HashMap::new();
    for e in &all {
        let view = view_of(e);
        let Some((kind, entity)) = view.state_key() else {
            continue;
        };
        let record = match kind {
            StateKind::Session => store.session(&e.source, &entity),
            StateKind::Alert => store.alert(&e.source, &entity),
            StateKind::ToolChange => store.tool_change(
                &e.source,
                view.data.upstream.as_deref().unwrap_or(""),
                view.data.tool.as_deref().unwrap_or(""),
            ),
        }
        .expect("state lookup reads")
        .unwrap_or_else(|| panic!("no state for {}/{} ({entity})", e.source, e.sequence));
        assert!(
            record.sequence >= e.sequence,
            "state of {entity} older than stored event {}/{}",
            e.source,
            e.sequence
        );
        assert!(record.sequence <= store.last_sequence(&e.source));
        let slot = latest
            .entry((e.source.clone(), kind as u8, entity))
            .or_insert(e);
        if slot.sequence < e.sequence {
            *slot = e;
        }
    }
    for ((source, kind, entity), e) in &latest {
        let record = match state_kind(*kind) {
            StateKind::Session => store.session(source, entity),
            StateKind::Alert => store.alert(source, entity),
            StateKind::ToolChange => {
                let view = view_of(e);
                store.tool_change(
                    source,
                    view.data.upstream.as_deref().unwrap_or(""),
                    view.data.tool.as_deref().unwrap_or(""),
                )
            }
        }
        .expect("state lookup reads")
        .expect("state exists");
        if record.sequence == e.sequence {
            assert_eq!(record.json, e.json, "state of {entity} is not its event");
            assert_eq!(record.time_ms, ms_of(e), "state time of {entity}");
        }
    }

    // Alerts: one entry per alert, ordered by status, severity (highest first), newest.
    let alerts = store
        .alerts(AlertFilter::All, usize::MAX)
        .expect("alerts reads");
    let mut ids = HashSet::new();
    for a in &alerts {
        let view = EventView::parse(&a.json).expect("alert state is an event");
        assert_eq!(view.kind, events::ALERT, "alert list holds a non-alert");
        let id = view.data.alert_id.as_deref().expect("alert has an id");
        let name = source_name(store, a);
        assert!(
            ids.insert((name.clone(), id.to_string())),
            "alert {id} listed twice"
        );
        assert_eq!(a.status, view.status_rank(), "alert {id} status rank");
        assert_eq!(a.severity, view.severity_rank(), "alert {id} severity rank");
        let lookup = store
            .alert(&name, id)
            .expect("alert lookup")
            .expect("exists");
        assert_eq!(&lookup, a, "alerts() vs alert({id})");
    }
    for w in alerts.windows(2) {
        let key = |r: &StateRecord| (r.status, std::cmp::Reverse(r.severity), -r.time_ms);
        assert!(key(&w[0]) <= key(&w[1]), "alerts out of order");
    }
    for (source, kind, entity) in latest.keys() {
        if *kind == StateKind::Alert as u8 {
            assert!(
                ids.contains(&(source.clone(), entity.clone())),
                "alert {entity} missing from alerts()"
            );
        }
    }
    let new = store.alerts(AlertFilter::New, usize::MAX).expect("alerts");
    let open = store.alerts(AlertFilter::Open, usize::MAX).expect("alerts");
    let want_new: Vec<StateRecord> = alerts.iter().filter(|a| a.status == 0).cloned().collect();
    let want_open: Vec<StateRecord> = alerts.iter().filter(|a| a.status <= 1).cloned().collect();
    assert_eq!(new, want_new, "AlertFilter::New");
    assert_eq!(open, want_open, "AlertFilter::Open");
    summary.alerts = alerts.len();

    // Pending changes: only pending ones, oldest first, each once, each equal to its lookup.
    let pending = store.pending_changes(usize::MAX).expect("pending reads");
    let mut keys_seen = HashSet::new();
    for p in &pending {
        assert_eq!(p.status, 1, "pending list holds a decided change");
        let env = Envelope::parse(&p.json).expect("change state is an event");
        assert_eq!(env.kind, events::TOOL_CHANGE);
        assert_eq!(env.data["status"], "pending");
        let (up, tool) = (
            env.data["upstream"].as_str().expect("upstream"),
            env.data["tool"].as_str().expect("tool"),
        );
        let name = source_name(store, p);
        assert!(
            keys_seen.insert((name.clone(), change_key(up, tool))),
            "change {up}/{tool} pending twice"
        );
        let lookup = store.tool_change(&name, up, tool).expect("lookup");
        assert_eq!(lookup.as_ref(), Some(p), "pending_changes vs tool_change()");
    }
    for w in pending.windows(2) {
        assert!(w[0].time_ms <= w[1].time_ms, "pending not oldest first");
    }
    for ((source, kind, entity), e) in &latest {
        if *kind != StateKind::ToolChange as u8 {
            continue;
        }
        let view = view_of(e);
        let record = store
            .tool_change(
                source,
                view.data.upstream.as_deref().unwrap_or(""),
                view.data.tool.as_deref().unwrap_or(""),
            )
            .expect("lookup")
            .expect("exists");
        assert_eq!(
            record.status == 1,
            keys_seen.contains(&(source.clone(), entity.clone())),
            "change {entity}: pending status and pending list disagree"
        );
    }
    summary.pending = pending.len();

    // Sessions: latest state per binding, once each.
    let sessions = store.sessions(usize::MAX).expect("sessions reads");
    let mut bindings = HashSet::new();
    for s in &sessions {
        let env = Envelope::parse(&s.json).expect("session state is an event");
        assert_eq!(env.kind, events::SESSION);
        let binding = env.data["binding"].as_str().expect("binding");
        let name = source_name(store, s);
        assert!(
            bindings.insert((name.clone(), binding.to_string())),
            "binding {binding} listed twice"
        );
        let lookup = store.session(&name, binding).expect("lookup");
        assert_eq!(lookup.as_ref(), Some(s), "sessions() vs session()");
    }
    for (source, kind, entity) in latest.keys() {
        if *kind == StateKind::Session as u8 {
            assert!(
                bindings.contains(&(source.clone(), entity.clone())),
                "binding {entity} missing from sessions()"
            );
        }
    }
    summary.sessions = sessions.len();
    summary
}

fn state_kind(byte: u8) -> StateKind {
    match byte {
        1 => StateKind::Session,
        2 => StateKind::ToolChange,
        3 => StateKind::Alert,
        other => panic!("unknown state kind {other}"),
    }
}

fn u32_at(k: &[u8], pos: usize) -> u32 {
    u32::from_be_bytes(k[pos..pos + 4].try_into().expect("4 bytes"))
}

/// Walks every key of the closed store in `dir`. Panics with a description on any mismatch.
/// The store must be closed (sled locks its directory).
pub fn check_raw(dir: &Path) {
    let db = super::retry_locked(|| sled::open(dir));
    let tree = db.open_tree("events").expect("events tree");
    let mut by_family: BTreeMap<u8, Vec<KeyValue>> = BTreeMap::new();
    for item in tree.iter() {
        let (k, v) = item.expect("tree reads");
        assert!(!k.is_empty(), "empty key");
        by_family
            .entry(k[0])
            .or_default()
            .push((k.to_vec(), v.to_vec()));
    }
    let family = |f: u8| by_family.get(&f).cloned().unwrap_or_default();
    for f in by_family.keys() {
        assert!(
            b"ELNnYyTUSsZAPCXV".contains(f),
            "unknown key family {:?}",
            *f as char
        );
    }

    // Dictionaries: N/n and Y/y are inverse maps.
    let mut source_ids: HashMap<String, u32> = HashMap::new();
    for (k, v) in family(keys::SOURCE_BY_NAME) {
        let name = String::from_utf8(k[1..].to_vec()).expect("source name utf-8");
        let id = u32::from_be_bytes(v.as_slice().try_into().expect("source id"));
        assert!(source_ids.insert(name, id).is_none());
    }
    let ids: Vec<(u32, String)> = family(keys::SOURCE_BY_ID)
        .into_iter()
        .map(|(k, v)| (u32_at(&k, 1), String::from_utf8(v).expect("utf-8")))
        .collect();
    assert_eq!(ids.len(), source_ids.len(), "source dictionaries differ");
    for (id, name) in &ids {
        assert_eq!(
            source_ids.get(name),
            Some(id),
            "source {name} not bijective"
        );
    }
    let mut type_ids: HashMap<String, u16> = HashMap::new();
    for (k, v) in family(keys::TYPE_BY_NAME) {
        let name = String::from_utf8(k[1..].to_vec()).expect("type name utf-8");
        let id = u16::from_be_bytes(v.as_slice().try_into().expect("type id"));
        assert!(type_ids.insert(name, id).is_none());
    }
    let tids: Vec<(u16, String)> = family(keys::TYPE_BY_ID)
        .into_iter()
        .map(|(k, v)| {
            (
                u16::from_be_bytes(k[1..3].try_into().expect("type id")),
                String::from_utf8(v).expect("utf-8"),
            )
        })
        .collect();
    assert_eq!(tids.len(), type_ids.len(), "type dictionaries differ");
    for (id, name) in &tids {
        assert_eq!(type_ids.get(name), Some(id), "type {name} not bijective");
    }
    let known_ids: HashSet<u32> = source_ids.values().copied().collect();

    // Resume positions.
    let mut lasts: HashMap<u32, u64> = HashMap::new();
    for (k, v) in family(keys::LAST) {
        assert_eq!(k.len(), 5, "last key length");
        let id = u32_at(&k, 1);
        assert!(known_ids.contains(&id), "last of unknown source {id}");
        lasts.insert(id, keys::u64_value(&v).expect("last value"));
    }

    // Events: each one's expected index entries and state key.
    let events = family(keys::EVENT);
    let mut expected_index: HashSet<IndexEntry> = HashSet::new();
    let mut expected_dirs: HashSet<Vec<u8>> = HashSet::new();
    let mut state_latest: HashMap<Vec<u8>, u64> = HashMap::new();
    let mut event_json: HashMap<(u32, u64), String> = HashMap::new();
    let mut bytes = 0u64;
    for (k, v) in &events {
        let (source, seq) = keys::parse_event(k).expect("event key");
        assert!(
            known_ids.contains(&source),
            "event of unknown source {source}"
        );
        let text = std::str::from_utf8(v).expect("event utf-8");
        bytes += text.len() as u64;
        let view = EventView::parse(text).expect("event parses");
        assert_eq!(view.sequence, seq, "event stored under another sequence");
        assert_eq!(
            source_ids.get(view.source.as_ref()),
            Some(&source),
            "event stored under another source"
        );
        assert!(
            seq <= lasts.get(&source).copied().unwrap_or(0),
            "event {source}/{seq} beyond the resume position"
        );
        let type_id = *type_ids
            .get(view.kind.as_ref())
            .unwrap_or_else(|| panic!("type {} not in dictionary", view.kind));
        let entry = |prefix: Vec<u8>, session: Option<&str>| IndexEntry {
            prefix,
            source,
            seq,
            time_ms: view.time_ms,
            session: session.map(str::to_string),
        };
        expected_index.insert(entry(keys::type_prefix(type_id).to_vec(), None));
        if view.is_tool_call() {
            let user = view.data.user.as_deref();
            let session = view.data.session.as_deref();
            // A call is in its user's packs, naming its session; a call with a session but
            // no user is in its session's packs.
            match (user, session) {
                (Some(user), _) => {
                    expected_index
                        .insert(entry(keys::call_prefix(keys::CALLS_BY_USER, user), session));
                }
                (None, Some(session)) => {
                    expected_index.insert(entry(
                        keys::call_prefix(keys::CALLS_BY_SESSION, session),
                        None,
                    ));
                }
                (None, None) => {}
            }
            if let Some(session) = session {
                expected_dirs.insert(keys::session_dir(
                    session,
                    keys::dir_bucket(view.time_ms),
                    user,
                ));
            }
        }
        if let Some((kind, entity)) = view.state_key() {
            let key = keys::state(kind as u8, source, &entity);
            let slot = state_latest.entry(key).or_insert(seq);
            *slot = (*slot).max(seq);
        }
        event_json.insert((source, seq), text.to_string());
    }

    // Event indexes: every pack well formed, its entries exactly the expected ones, each
    // pointing at an existing event.
    let mut actual_index: HashSet<IndexEntry> = HashSet::new();
    for f in [
        keys::BY_TYPE_TIME,
        keys::CALLS_BY_USER,
        keys::CALLS_BY_SESSION,
    ] {
        for (k, v) in family(f) {
            let prefix = keys::pack_prefix(&k)
                .unwrap_or_else(|| panic!("malformed {} pack key {k:?}", f as char))
                .to_vec();
            let (time_ms, source, first_seq) = keys::pack_tail(&k).expect("pack key tail");
            let pack = keys::decode_pack(time_ms, first_seq, &v)
                .unwrap_or_else(|| panic!("malformed {} pack value under {k:?}", f as char));
            let entries = &pack.entries;
            assert!(
                entries.len() <= keys::PACK_MAX_ENTRIES,
                "pack of {} entries",
                entries.len()
            );
            assert_eq!(
                entries.iter().map(|e| e.time_ms).max(),
                Some(time_ms),
                "pack key time is not its newest entry's"
            );
            assert_eq!(
                entries.iter().map(|e| e.seq).min(),
                Some(first_seq),
                "pack key sequence is not its lowest entry's"
            );
            for (i, name) in pack.sessions.iter().enumerate() {
                assert!(
                    entries.iter().any(|e| e.session == Some(i as u32)),
                    "pack names session {name} for no entry"
                );
            }
            for e in entries {
                let (time_ms, seq) = (e.time_ms, e.seq);
                assert!(
                    event_json.contains_key(&(source, seq)),
                    "dangling {} index entry -> {source}/{seq}",
                    f as char
                );
                let entry = IndexEntry {
                    prefix: prefix.clone(),
                    source,
                    seq,
                    time_ms,
                    session: pack.session_of(e).map(str::to_string),
                };
                assert!(
                    actual_index.insert(entry),
                    "{} index names {source}/{seq} twice",
                    f as char
                );
            }
        }
    }
    let missing: Vec<_> = expected_index.difference(&actual_index).collect();
    assert!(
        missing.is_empty(),
        "{} index entries missing, e.g. {:?}",
        missing.len(),
        missing.first()
    );
    let extra: Vec<_> = actual_index.difference(&expected_index).collect();
    assert!(
        extra.is_empty(),
        "{} index entries for no event, e.g. {:?}",
        extra.len(),
        extra.first()
    );

    // Session directory: exactly the (session, 10-minute bucket, owner) of the stored calls.
    let mut actual_dirs: HashSet<Vec<u8>> = HashSet::new();
    for (k, v) in family(keys::SESSION_DIR) {
        assert!(v.is_empty(), "session directory value not empty");
        let (_, end) = keys::read_str(&k, 1).expect("directory session");
        let (start, _) = keys::parse_session_dir(&k, end).expect("directory key");
        assert_eq!(keys::dir_bucket(start), start, "directory bucket start");
        actual_dirs.insert(k);
    }
    let missing: Vec<_> = expected_dirs.difference(&actual_dirs).collect();
    assert!(
        missing.is_empty(),
        "{} session directory keys missing, e.g. {:?}",
        missing.len(),
        missing.first()
    );
    let extra: Vec<_> = actual_dirs.difference(&expected_dirs).collect();
    assert!(
        extra.is_empty(),
        "{} session directory keys for no stored call, e.g. {:?}",
        extra.len(),
        extra.first()
    );

    // Layout version.
    assert_eq!(
        tree.get(keys::layout())
            .expect("layout reads")
            .and_then(|v| keys::u64_value(&v)),
        Some(keys::LAYOUT_VERSION),
        "layout version"
    );

    // State records and their derived indexes.
    let mut expected_derived: HashSet<Vec<u8>> = HashSet::new();
    let mut state_keys: HashSet<Vec<u8>> = HashSet::new();
    for (k, v) in family(keys::STATE) {
        let kind = state_kind(k[1]);
        let source = u32_at(&k, 2);
        let (entity, end) = keys::read_str(&k, 6).expect("state entity");
        assert_eq!(end, k.len(), "state key has trailing bytes");
        let record = StateRecord::decode(source, &v).expect("state record decodes");
        let view = EventView::parse(&record.json).expect("state json parses");
        assert_eq!(view.sequence, record.sequence, "state seq vs its json");
        assert_eq!(view.time_ms, record.time_ms, "state time vs its json");
        assert_eq!(view.status_rank(), record.status, "state status vs json");
        assert_eq!(view.severity_rank(), record.severity, "state severity");
        assert_eq!(
            view.state_key(),
            Some((kind, entity.to_string())),
            "state record under the wrong key"
        );
        assert!(
            record.sequence <= lasts.get(&source).copied().unwrap_or(0),
            "state beyond the resume position"
        );
        if let Some(newest) = state_latest.get(&k) {
            assert!(
                record.sequence >= *newest,
                "state of {entity} older than stored event {newest}"
            );
        }
        if let Some(text) = event_json.get(&(source, record.sequence)) {
            assert_eq!(text, &record.json, "state of {entity} is not its event");
        }
        if let Some(d) = record.derived_keys(kind, entity) {
            expected_derived.insert(d);
        }
        state_keys.insert(k);
    }
    for k in state_latest.keys() {
        assert!(
            state_keys.contains(k),
            "stateful event without state record"
        );
    }
    let mut actual_derived: HashSet<Vec<u8>> = HashSet::new();
    for f in [keys::ALERTS, keys::PENDING] {
        for (k, v) in family(f) {
            assert!(v.is_empty(), "derived index value not empty");
            actual_derived.insert(k);
        }
    }
    assert_eq!(
        actual_derived, expected_derived,
        "alert/pending index vs state records"
    );

    // Counters.
    let counter = |name: &str| {
        tree.get(keys::counter(name))
            .expect("counter reads")
            .and_then(|v| keys::u64_value(&v))
            .unwrap_or(0)
    };
    assert_eq!(counter("count"), events.len() as u64, "count counter");
    assert_eq!(counter("bytes"), bytes, "bytes counter");
}
