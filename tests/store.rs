//! Integration tests of the event store on a real sled database.

mod common;

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::Utc;
use common::consistency::{check_raw, check_store};
use common::events::{
    BASE_MS, FUTURE_TYPE, Stream, alert, auth_rejected, command_audit, envelope, heartbeat,
    mixed_events, raw_event, session, time, tool_call, tool_call_data, tool_change,
};
use mcpsoc::protocol::events::{
    self as ev, AlertStatus, ChangeStatus, SessionChange, Severity, ToolCall,
};
use mcpsoc::protocol::{Envelope, EventData, limits};
use mcpsoc::store::{
    AlertFilter, Appended, IngestReport, NewEvent, Retention, StateRecord, Store, StoreError,
    StoreOptions, StoredEvent,
};
use serde_json::{Value, json};
use tempfile::TempDir;

fn options() -> StoreOptions {
    StoreOptions {
        cache_bytes: 8 * 1024 * 1024,
        flush_every_ms: 500,
    }
}

fn open(dir: &Path) -> Store {
    common::open_store(dir, &options())
}

fn temp() -> TempDir {
    tempfile::tempdir().expect("temp dir")
}

fn report(stored: usize, duplicates: usize) -> IngestReport {
    IngestReport { stored, duplicates }
}

fn seqs(events: &[StoredEvent]) -> Vec<u64> {
    events.iter().map(|e| e.sequence).collect()
}

fn seqs_of_records(records: &[StateRecord]) -> Vec<u64> {
    records.iter().map(|r| r.sequence).collect()
}

fn data_of(json: &str) -> Value {
    Envelope::parse(json).expect("envelope parses").data
}

fn stored_seqs(store: &Store, source: &str) -> Vec<u64> {
    seqs(
        &store
            .events_after(source, 0, usize::MAX)
            .expect("events_after"),
    )
}

// ---------------------------------------------------------------------------------------------
// Envelope round trip

fn known_samples() -> Vec<EventData> {
    vec![
        tool_call("alice", "alice:s1", "read"),
        auth_rejected("mallory"),
        session("alice:s1", SessionChange::Bound),
        tool_change("files", "read", ChangeStatus::Pending),
        alert("al-1", Severity::Critical, AlertStatus::New),
        heartbeat(3600),
        command_audit("cmd-1"),
    ]
}

#[test]
fn envelope_round_trips_and_decodes_every_known_type() {
    let samples = known_samples();
    let mut kinds_seen = BTreeSet::new();
    for (i, data) in samples.iter().enumerate() {
        let seq = i as u64 + 1;
        let env = Envelope::new("mcpsoc/gateway/edge-1", seq, time(BASE_MS + 123), data);
        let text = env.to_json();
        assert!(!text.contains('\n'), "one line per frame");
        let back = Envelope::parse(&text).expect("own output parses");
        assert_eq!(back, env, "JSON round trip of {}", data.type_name());
        assert_eq!(back.time, "2026-11-24T10:00:00.123Z");
        assert_eq!(back.kind, data.type_name());
        assert_eq!(back.sequence, seq);
        assert_eq!(back.specversion, "1.0");
        assert_eq!(back.datacontenttype.as_deref(), Some("application/json"));
        let decoded = back.decode();
        assert_eq!(&decoded, data, "decode of {}", data.type_name());
        // The typed variant of the sample's own type, never Unknown.
        let typed = match &decoded {
            EventData::ToolCall(_) => ev::TOOL_CALL,
            EventData::Auth(_) => ev::AUTH,
            EventData::Session(_) => ev::SESSION,
            EventData::ToolChange(_) => ev::TOOL_CHANGE,
            EventData::Alert(_) => ev::ALERT,
            EventData::Heartbeat(_) => ev::HEARTBEAT,
            EventData::Command(_) => ev::COMMAND,
            EventData::Unknown { kind, .. } => panic!("known type {kind} decoded as Unknown"),
            #[allow(unreachable_patterns)] // kinds added to the contract later
            other => other.type_name(),
        };
        assert_eq!(typed, back.kind);
        kinds_seen.insert(typed.to_string());
    }
    // Every kind this test knows is a known type of the contract and has a sample.
    let all_known: BTreeSet<String> = ev::KNOWN_TYPES.iter().map(|k| k.to_string()).collect();
    assert!(kinds_seen.is_subset(&all_known), "{kinds_seen:?}");
    assert_eq!(kinds_seen.len(), samples.len(), "one sample per kind");
    for kind in [
        ev::TOOL_CALL,
        ev::AUTH,
        ev::SESSION,
        ev::TOOL_CHANGE,
        ev::ALERT,
        ev::HEARTBEAT,
        ev::COMMAND,
    ] {
        assert!(kinds_seen.contains(kind), "no sample of {kind}");
    }
}

#[test]
fn time_is_rfc3339_utc_with_milliseconds_and_z() {
    for (ms, want) in [
        (BASE_MS, "2026-11-24T10:00:00.000Z"),
        (BASE_MS + 7, "2026-11-24T10:00:00.007Z"),
        (BASE_MS + 59_999, "2026-11-24T10:00:59.999Z"),
        (0, "1970-01-01T00:00:00.000Z"),
    ] {
        let env = Envelope::new("gw", 1, time(ms), &heartbeat(1));
        assert_eq!(env.time, want);
        let t = &env.time;
        assert_eq!(t.len(), 24, "{t}");
        assert!(t.ends_with('Z') && !t.contains('+'), "{t} is UTC with Z");
        assert_eq!(&t[19..20], ".", "{t} has a fraction");
        assert!(
            t[20..23].bytes().all(|b| b.is_ascii_digit()),
            "{t}: 3 digits"
        );
        assert_eq!(
            env.timestamp().expect("parses").timestamp_millis(),
            ms,
            "{t} keeps the milliseconds"
        );
    }
    // Sub-millisecond precision is dropped, never rounded into a longer fraction.
    let precise = time(BASE_MS) + chrono::Duration::nanoseconds(123_456_789);
    assert_eq!(
        mcpsoc::protocol::format_time(precise),
        "2026-11-24T10:00:00.123Z"
    );
}

#[test]
fn unknown_and_misfit_payloads_decode_to_unknown_and_are_stored_byte_identical() {
    let dir = temp();
    let store = open(dir.path());
    let odd: Vec<(&str, Value)> = vec![
        (FUTURE_TYPE, json!("just a string")),
        (FUTURE_TYPE, json!([1, "two", {"three": [3]}, null])),
        (
            FUTURE_TYPE,
            json!({"user": ["not", "a", "string"], "status": 7}),
        ),
        (ev::TOOL_CALL, json!({"user": 7, "tool": false})),
        (ev::ALERT, json!("an alert as text")),
        (ev::TOOL_CHANGE, json!({"upstream": "files"})),
        (ev::SESSION, Value::Null),
    ];
    let mut texts = Vec::new();
    for (i, (kind, data)) in odd.iter().enumerate() {
        let text = raw_event("gw", i as u64 + 1, BASE_MS + i as i64, kind, data.clone());
        let env = Envelope::parse(&text).expect("envelope of odd data parses");
        match env.decode() {
            EventData::Unknown { kind: k, data: d } => {
                assert_eq!(&k, kind);
                assert_eq!(&d, data);
            }
            other => panic!("{kind} with {data} decoded as {other:?}"),
        }
        texts.push(text);
    }
    // Hand-written text with its own key order, spacing and escapes: kept exactly as it came.
    let n = texts.len() as u64 + 1;
    let hand = format!(
        "{{ \"data\" : {{\"z\":1, \"a\":\"caf\\u00e9 \\u200b\"}},\n  \"sequence\": {n}, \"type\": \"{FUTURE_TYPE}\", \"time\": \"2026-11-24T10:00:00.500+00:00\", \"source\": \"gw\", \"id\": \"hand\", \"specversion\": \"1.0\", \"extension_attr\": [1,2] }}"
    );
    texts.push(hand);

    let r = store.ingest(&texts).expect("odd events are stored");
    assert_eq!(r, report(texts.len(), 0));
    for (i, text) in texts.iter().enumerate() {
        let got = store
            .event("gw", i as u64 + 1)
            .expect("read")
            .expect("stored");
        assert_eq!(
            got.json.as_bytes(),
            text.as_bytes(),
            "event {} bytes",
            i + 1
        );
    }
    let dumped: Vec<String> = store.all_events().map(|e| e.expect("read").json).collect();
    assert_eq!(dumped, texts);
    // Misfits do not create state: a tool change without a tool is no change.
    assert!(store.pending_changes(10).expect("pending").is_empty());
    assert!(
        store
            .alerts(AlertFilter::All, 10)
            .expect("alerts")
            .is_empty()
    );
    assert!(store.sessions(10).expect("sessions").is_empty());
    check_store(&store);
    drop(store);
    check_raw(dir.path());
}

// ---------------------------------------------------------------------------------------------
// Ingest

#[test]
fn ingest_is_idempotent_with_overlapping_batches() {
    let dir = temp();
    let store = open(dir.path());
    let events = mixed_events("gw", 1..=50);
    let total_bytes: u64 = events.iter().map(|e| e.len() as u64).sum();

    assert_eq!(store.ingest(&events).expect("first"), report(50, 0));
    assert_eq!(store.count(), 50);
    assert_eq!(store.stored_bytes(), total_bytes);
    assert_eq!(store.ingest(&events).expect("again"), report(0, 50));
    assert_eq!(store.count(), 50, "a replayed stream is stored once");
    assert_eq!(store.stored_bytes(), total_bytes);

    let more = mixed_events("gw", 51..=80);
    assert_eq!(store.ingest(&more[..10]).expect("51..=60"), report(10, 0));
    // 55..=80 overlaps 55..=60.
    assert_eq!(store.ingest(&more[4..]).expect("55..=80"), report(20, 6));
    // The same event twice in one batch.
    let twice = mixed_events("gw", 81..=81);
    let batch = vec![
        twice[0].clone(),
        twice[0].clone(),
        mixed_events("gw", 82..=82)[0].clone(),
    ];
    assert_eq!(store.ingest(&batch).expect("dup in batch"), report(2, 1));
    // An empty batch does nothing.
    let empty: [&str; 0] = [];
    assert_eq!(store.ingest(&empty).expect("empty"), report(0, 0));

    let all = mixed_events("gw", 1..=82);
    let all_bytes: u64 = all.iter().map(|e| e.len() as u64).sum();
    assert_eq!(store.count(), 82);
    assert_eq!(store.stored_bytes(), all_bytes);
    assert_eq!(stored_seqs(&store, "gw"), (1..=82).collect::<Vec<_>>());
    assert_eq!(store.last_sequence("gw"), 82);
    // Everything once more, in two overlapping halves.
    assert_eq!(store.ingest(&all[..60]).expect("replay"), report(0, 60));
    assert_eq!(store.ingest(&all[30..]).expect("replay"), report(0, 52));
    assert_eq!(store.count(), 82);
    let summary = check_store(&store);
    assert_eq!(summary.events, 82);
    drop(store);
    check_raw(dir.path());
}

#[test]
fn ingest_refuses_a_gap_and_keeps_what_came_before() {
    let dir = temp();
    let store = open(dir.path());
    let events = mixed_events("gw", 1..=9);
    assert_eq!(store.ingest(&events[..5]).expect("1..=5"), report(5, 0));
    let bytes = store.stored_bytes();

    match store.ingest(&events[6..7]) {
        Err(StoreError::Gap {
            source_name,
            expected,
            got,
        }) => {
            assert_eq!(source_name, "gw");
            assert_eq!((expected, got), (6, 7));
        }
        other => panic!("seq 7 after 5 must be a gap, got {other:?}"),
    }
    assert_eq!(store.last_sequence("gw"), 5);
    assert_eq!(stored_seqs(&store, "gw"), vec![1, 2, 3, 4, 5]);
    assert_eq!(store.count(), 5);
    assert_eq!(store.stored_bytes(), bytes);
    assert!(store.event("gw", 7).expect("read").is_none());

    // A batch that starts right and then skips: the events before the hole are stored.
    let batch = vec![events[5].clone(), events[7].clone(), events[8].clone()];
    match store.ingest(&batch) {
        Err(StoreError::Gap { expected, got, .. }) => assert_eq!((expected, got), (7, 8)),
        other => panic!("seq 8 after 6 must be a gap, got {other:?}"),
    }
    assert_eq!(store.last_sequence("gw"), 6);
    assert_eq!(stored_seqs(&store, "gw"), vec![1, 2, 3, 4, 5, 6]);

    // A malformed event stops the batch the same way.
    let batch = vec![
        events[6].clone(),
        "{not json".to_string(),
        events[7].clone(),
    ];
    assert!(matches!(store.ingest(&batch), Err(StoreError::View(_))));
    assert_eq!(store.last_sequence("gw"), 7);

    // A never-seen source may start anywhere; then it must be contiguous.
    let late = mixed_events("late", 500..=502);
    assert_eq!(
        store.ingest(&late[..1]).expect("starts at 500"),
        report(1, 0)
    );
    assert_eq!(store.last_sequence("late"), 500);
    assert!(matches!(
        store.ingest(&late[2..]),
        Err(StoreError::Gap {
            expected: 501,
            got: 502,
            ..
        })
    ));
    assert_eq!(store.ingest(&late[1..]).expect("501, 502"), report(2, 0));
    // Below its start counts as already had (the producer pruned it), never stored.
    let early = mixed_events("late", 499..=499);
    assert_eq!(store.ingest(&early).expect("499"), report(0, 1));
    assert!(store.event("late", 499).expect("read").is_none());
    assert_eq!(stored_seqs(&store, "late"), vec![500, 501, 502]);
    assert_eq!(store.last_sequence("gw"), 7, "other sources unaffected");
    check_store(&store);
    drop(store);
    check_raw(dir.path());
}

#[test]
fn resume_positions_survive_close_and_reopen() {
    let dir = temp();
    let expected: Vec<(&str, u64)> = vec![("gw-a", 7), ("gw-b", 104), ("gw-c", 50), ("gw-d", 3)];
    let (count, bytes, types) = {
        let store = open(dir.path());
        let clone = store.clone();
        store.ingest(&mixed_events("gw-a", 1..=7)).expect("a");
        clone.ingest(&mixed_events("gw-b", 100..=104)).expect("b");
        store.skip_to("gw-c", 50).expect("skip c");
        store.skip_to("gw-c", 20).expect("never backwards");
        store.ingest(&mixed_events("gw-d", 1..=3)).expect("d");
        for (source, last) in &expected {
            assert_eq!(store.last_sequence(source), *last, "{source} before reopen");
        }
        assert_eq!(store.last_sequence("never"), 0);
        store.flush().expect("flush");
        let state = (store.count(), store.stored_bytes(), store.types());
        drop(clone);
        state
    };
    assert_eq!(count, 15);
    for round in 0..2 {
        let store = open(dir.path());
        for (source, last) in &expected {
            assert_eq!(
                store.last_sequence(source),
                *last,
                "{source} after reopen {round}"
            );
        }
        assert_eq!(store.count(), count);
        assert_eq!(store.stored_bytes(), bytes);
        assert_eq!(store.types(), types);
        assert_eq!(store.sources(), vec!["gw-a", "gw-b", "gw-c", "gw-d"]);
        assert_eq!(stored_seqs(&store, "gw-b"), vec![100, 101, 102, 103, 104]);
        assert!(stored_seqs(&store, "gw-c").is_empty());
        check_store(&store);
    }
    // Ingest continues exactly where it stopped, and a gap is still a gap after reopen.
    let store = open(dir.path());
    assert!(matches!(
        store.ingest(&mixed_events("gw-a", 9..=9)),
        Err(StoreError::Gap { expected: 8, .. })
    ));
    assert!(matches!(
        store.ingest(&mixed_events("gw-c", 52..=52)),
        Err(StoreError::Gap { expected: 51, .. })
    ));
    assert_eq!(
        store
            .ingest(&mixed_events("gw-a", 5..=8))
            .expect("a resumes"),
        report(1, 3)
    );
    assert_eq!(
        store
            .ingest(&mixed_events("gw-c", 51..=52))
            .expect("c resumes"),
        report(2, 0)
    );
    // A brand-new source after reopen gets its own id (ids are not reused).
    store.ingest(&mixed_events("gw-e", 1..=2)).expect("e");
    assert_eq!(store.count(), count + 5);
    let ids: BTreeSet<u32> = store
        .sources()
        .iter()
        .map(|s| store.source_id(s).expect("id"))
        .collect();
    assert_eq!(ids.len(), 5, "distinct source ids");
    check_store(&store);
    drop(store);
    check_raw(dir.path());
}

// ---------------------------------------------------------------------------------------------
// Append (producer)

#[test]
fn append_assigns_gap_free_sequences_and_stores_extra_atomically() {
    let dir = temp();
    let store = open(dir.path());
    let seen: Arc<Mutex<Vec<(u64, String)>>> = Arc::default();
    let before = Utc::now();
    let batch = vec![
        NewEvent {
            data: tool_call("alice", "alice:s1", "read"),
            time: Some(time(BASE_MS)),
        },
        NewEvent::from(heartbeat(10)),
        NewEvent::from(alert("al-9", Severity::High, AlertStatus::New)),
    ];
    let reader = store.clone();
    let sink = seen.clone();
    let appended = store
        .append("gw", batch, &[("cursor", b"42".to_vec())], |stored| {
            // Called after the batch is durable in the tree: events and extra are readable.
            for a in stored {
                let got = reader
                    .event("gw", a.sequence)
                    .expect("read")
                    .expect("stored");
                assert_eq!(got.json, *a.json);
            }
            assert_eq!(reader.extra("cursor").expect("extra"), Some(b"42".to_vec()));
            let mut sink = sink.lock().expect("lock");
            sink.extend(stored.iter().map(|a| (a.sequence, a.json.to_string())));
        })
        .expect("append");
    let after = Utc::now();
    assert_eq!(
        appended.iter().map(|a| a.sequence).collect::<Vec<_>>(),
        vec![1, 2, 3]
    );
    let callback: Vec<(u64, String)> = seen.lock().expect("lock").clone();
    let returned: Vec<(u64, String)> = appended
        .iter()
        .map(|a: &Appended| (a.sequence, a.json.to_string()))
        .collect();
    assert_eq!(callback, returned, "on_stored sees the events, in order");
    for a in &appended {
        let env = Envelope::parse(&a.json).expect("appended event parses");
        assert_eq!(env.source, "gw");
        assert_eq!(env.sequence, a.sequence);
        assert_eq!(env.id, a.sequence.to_string());
    }
    let first = Envelope::parse(&appended[0].json).expect("parse");
    assert_eq!(first.time, "2026-11-24T10:00:00.000Z", "given time kept");
    let stamped = Envelope::parse(&appended[1].json)
        .expect("parse")
        .timestamp()
        .expect("time");
    assert!(
        stamped.timestamp_millis() >= before.timestamp_millis() && stamped <= after,
        "a missing time is stamped with now"
    );
    assert!(matches!(
        Envelope::parse(&appended[2].json).expect("parse").decode(),
        EventData::Alert(_)
    ));
    assert_eq!(store.alerts(AlertFilter::New, 10).expect("alerts").len(), 1);

    // The next append continues the sequence and replaces the extra value.
    let next = store
        .append(
            "gw",
            vec![NewEvent::from(heartbeat(11)), NewEvent::from(heartbeat(12))],
            &[("cursor", b"43".to_vec()), ("other", vec![0, 255])],
            |_| {},
        )
        .expect("append");
    assert_eq!(
        next.iter().map(|a| a.sequence).collect::<Vec<_>>(),
        vec![4, 5]
    );
    assert_eq!(store.last_sequence("gw"), 5);
    assert_eq!(stored_seqs(&store, "gw"), vec![1, 2, 3, 4, 5]);
    assert_eq!(store.extra("cursor").expect("extra"), Some(b"43".to_vec()));
    assert_eq!(store.extra("other").expect("extra"), Some(vec![0, 255]));
    assert_eq!(store.extra("absent").expect("extra"), None);

    // An append that cannot be stored stores nothing, extra included, and calls nobody.
    let too_long = "s".repeat(limits::MAX_ATTRIBUTE_BYTES + 1);
    let mut called = false;
    let result = store.append(
        &too_long,
        vec![NewEvent::from(heartbeat(1))],
        &[("cursor", b"99".to_vec())],
        |_| called = true,
    );
    assert!(
        result.is_err(),
        "a source over the attribute limit is refused"
    );
    assert!(!called, "on_stored not called for a refused append");
    assert_eq!(store.extra("cursor").expect("extra"), Some(b"43".to_vec()));
    assert_eq!(store.count(), 5);
    assert!(!store.sources().contains(&too_long));

    // And the next good append still continues from 5, with no hole.
    let next = store
        .append("gw", vec![NewEvent::from(heartbeat(13))], &[], |_| {})
        .expect("append");
    assert_eq!(next[0].sequence, 6);
    store.flush().expect("flush");
    check_store(&store);
    drop(reader);
    drop(store);
    check_raw(dir.path());

    let store = open(dir.path());
    assert_eq!(store.extra("cursor").expect("extra"), Some(b"43".to_vec()));
    assert_eq!(store.last_sequence("gw"), 6);
    let again = store
        .append("gw", vec![NewEvent::from(heartbeat(14))], &[], |_| {})
        .expect("append after reopen");
    assert_eq!(again[0].sequence, 7, "producer sequence survives reopen");
}

#[test]
fn append_truncates_oversized_payloads_below_the_frame_limit() {
    let dir = temp();
    let store = open(dir.path());
    let mut big: ToolCall = tool_call_data("alice", Some("alice:s1"), "read");
    big.arguments = json!({
        "blob": "x".repeat(3 * 1024 * 1024),
        "list": vec![1; limits::MAX_ARRAY_ITEMS + 4000],
        "small": "kept",
    });
    big.result_summary = Some("é".repeat(limits::MAX_STRING_BYTES)); // 2 bytes each
    let mut many: ToolCall = tool_call_data("bob", Some("bob:s1"), "write");
    // Every string under the per-string limit, but together far over the frame limit.
    many.arguments = Value::Array(
        (0..40)
            .map(|i| Value::String(format!("{i}:{}", "y".repeat(60 * 1024))))
            .collect(),
    );
    let appended = store
        .append(
            "gw",
            vec![
                NewEvent::from(EventData::ToolCall(big)),
                NewEvent::from(EventData::ToolCall(many)),
            ],
            &[],
            |_| {},
        )
        .expect("oversized payloads are stored truncated");
    assert_eq!(appended.len(), 2);
    for a in &appended {
        assert!(
            a.json.len() < limits::MAX_FRAME_BYTES,
            "event {} is {} bytes",
            a.sequence,
            a.json.len()
        );
        let stored = store
            .event("gw", a.sequence)
            .expect("read")
            .expect("stored");
        assert_eq!(stored.json, *a.json);
        assert!(stored.json.contains(limits::TRUNCATION_MARKER));
    }

    let env = Envelope::parse(&appended[0].json).expect("parse");
    let EventData::ToolCall(call) = env.decode() else {
        panic!("still a tool call after truncation");
    };
    assert_eq!(call.user, "alice", "identifying fields survive");
    let blob = call.arguments["blob"].as_str().expect("blob is a string");
    assert!(blob.starts_with("xxxx"));
    assert!(blob.contains(limits::TRUNCATION_MARKER) && blob.ends_with(" bytes]"));
    assert!(blob.len() <= limits::MAX_STRING_BYTES + 64);
    let list = call.arguments["list"].as_array().expect("list");
    assert_eq!(
        list.len(),
        limits::MAX_ARRAY_ITEMS + 1,
        "array cut with a marker"
    );
    assert!(
        list[limits::MAX_ARRAY_ITEMS]
            .as_str()
            .expect("marker")
            .starts_with(limits::TRUNCATION_MARKER)
    );
    assert_eq!(call.arguments["small"], "kept");
    let summary = call.result_summary.expect("summary");
    assert!(summary.starts_with('é') && summary.contains(limits::TRUNCATION_MARKER));

    let env = Envelope::parse(&appended[1].json).expect("parse");
    let parts = env.data["arguments"].as_array().expect("arguments");
    assert_eq!(parts.len(), 40, "no element dropped, each shortened");
    assert!(parts.iter().all(|p| {
        p.as_str()
            .is_some_and(|s| s.contains(limits::TRUNCATION_MARKER))
    }));
    // The truncated events are indexed like any other.
    let (calls, _) = store
        .tool_calls_by_user("alice", None, 10)
        .expect("by user");
    assert_eq!(seqs(&calls), vec![1]);
    check_store(&store);
}

// ---------------------------------------------------------------------------------------------
// Index queries

#[test]
fn newest_of_type_is_newest_first_and_pages_by_key() {
    let dir = temp();
    let store = open(dir.path());
    let mut gw = Stream::new("gw");
    let mut other = Stream::new("other").at_ms(BASE_MS + 500);
    for i in 0..25 {
        gw.push(heartbeat(i));
        gw.push(tool_call("alice", "alice:s1", "read"));
        if i % 5 == 0 {
            other.push(heartbeat(1000 + i));
        }
    }
    store.ingest(&gw.all()).expect("gw");
    store.ingest(&other.all()).expect("other");

    let mut pages = Vec::new();
    let mut before: Option<Vec<u8>> = None;
    loop {
        let (page, last) = store
            .newest_of_type(ev::HEARTBEAT, before.as_deref(), 10)
            .expect("page");
        if page.is_empty() {
            assert!(last.is_none(), "an empty page has no key");
            break;
        }
        pages.push(page);
        before = last;
        assert!(pages.len() <= 10, "paging terminates");
    }
    assert_eq!(
        pages.iter().map(Vec::len).collect::<Vec<_>>(),
        vec![10, 10, 10]
    );
    let flat: Vec<StoredEvent> = pages.into_iter().flatten().collect();
    let times: Vec<i64> = flat
        .iter()
        .map(|e| {
            Envelope::parse(&e.json)
                .expect("parse")
                .timestamp()
                .expect("time")
                .timestamp_millis()
        })
        .collect();
    assert!(
        times.windows(2).all(|w| w[0] > w[1]),
        "strictly newest first"
    );
    assert!(
        flat.iter()
            .all(|e| Envelope::parse(&e.json).expect("p").kind == ev::HEARTBEAT),
        "only heartbeats"
    );
    assert_eq!(flat.iter().filter(|e| e.source == "other").count(), 5);
    // The newest heartbeat is gw's last one (seq 49); the oldest is gw's first.
    assert_eq!((flat[0].source.as_str(), flat[0].sequence), ("gw", 49));
    let last = flat.last().expect("some");
    assert_eq!((last.source.as_str(), last.sequence), ("gw", 1));

    let (none, key) = store.newest_of_type("x.never.v1", None, 10).expect("q");
    assert!(none.is_empty() && key.is_none(), "unknown type: nothing");
    let (one, _) = store.newest_of_type(ev::TOOL_CALL, None, 1).expect("q");
    assert_eq!(seqs(&one), vec![50]);
}

#[test]
fn of_type_between_is_inclusive_and_oldest_first() {
    let dir = temp();
    let store = open(dir.path());
    let mut gw = Stream::new("gw"); // one event per second from BASE_MS
    for i in 0..10 {
        gw.push(tool_call("alice", "alice:s1", "read"));
        gw.push(heartbeat(i));
    }
    let mut other = Stream::new("edge-2").at_ms(BASE_MS + 4000).step_ms(0);
    other.push(tool_call("bob", "bob:s1", "read"));
    store.ingest(&gw.all()).expect("gw");
    store.ingest(&other.all()).expect("other");

    let between = |kind: &str, since: i64, until: i64| -> Vec<(String, u64)> {
        store
            .of_type_between(kind, since, until)
            .map(|e| e.expect("read"))
            .map(|e| (e.source, e.sequence))
            .collect()
    };
    let gwref = |s: u64| ("gw".to_string(), s);
    // Tool calls at BASE+0s, 2s, 4s, ... (odd sequences); bounds are inclusive.
    assert_eq!(
        between(ev::TOOL_CALL, BASE_MS + 2000, BASE_MS + 6000),
        vec![gwref(3), gwref(5), ("edge-2".to_string(), 1), gwref(7)]
    );
    assert_eq!(
        between(ev::TOOL_CALL, BASE_MS + 2001, BASE_MS + 5999),
        vec![gwref(5), ("edge-2".to_string(), 1)]
    );
    assert_eq!(
        between(ev::HEARTBEAT, BASE_MS + 1000, BASE_MS + 1000),
        vec![gwref(2)]
    );
    assert_eq!(between(ev::TOOL_CALL, i64::MIN, i64::MAX).len(), 11);
    assert!(between(ev::TOOL_CALL, BASE_MS + 6000, BASE_MS + 2000).is_empty());
    assert!(between(ev::TOOL_CALL, BASE_MS + 100_000, i64::MAX).is_empty());
    assert!(between(ev::ALERT, i64::MIN, i64::MAX).is_empty());
}

#[test]
fn tool_calls_by_user_and_session_match_exactly() {
    let dir = temp();
    let store = open(dir.path());
    let mut gw = Stream::new("gw");
    gw.push(tool_call("alice", "alice:s1", "read")); // 1
    gw.push(tool_call("alice2", "alice2:s1", "read")); // 2
    gw.push(tool_call("alice", "alice:s10", "write")); // 3
    gw.push(session("alice:s1", SessionChange::Bound)); // 4: not a call
    gw.push(tool_call("alice", "alice:s1", "search")); // 5
    gw.push(tool_call("alice2", "alice2:s1", "write")); // 6
    gw.push(auth_rejected("alice")); // 7: carries a user, not a call
    gw.push(tool_call("bob", "bob:s1", "read")); // 8
    let mut no_session = tool_call_data("carol", None, "read");
    no_session.call_id = "c-9".into();
    gw.push(EventData::ToolCall(no_session)); // 9
    store.ingest(&gw.all()).expect("ingest");
    let mut edge = Stream::new("edge-2").at_ms(BASE_MS + 2500);
    edge.push(tool_call("alice", "alice:s1", "read"));
    store.ingest(&edge.all()).expect("edge");

    let by_user = |user: &str| -> Vec<(String, u64)> {
        let (events, _) = store.tool_calls_by_user(user, None, 100).expect("q");
        events.into_iter().map(|e| (e.source, e.sequence)).collect()
    };
    let by_session = |session: &str| -> Vec<u64> {
        let (events, _) = store.tool_calls_by_session(session, None, 100).expect("q");
        seqs(&events)
    };
    let g = |s: u64| ("gw".to_string(), s);
    assert_eq!(
        by_user("alice"),
        vec![g(5), ("edge-2".to_string(), 1), g(3), g(1)],
        "alice's calls, newest first, across sources, not alice2's"
    );
    assert_eq!(by_user("alice2"), vec![g(6), g(2)]);
    assert_eq!(by_user("bob"), vec![g(8)]);
    assert_eq!(by_user("carol"), vec![g(9)]);
    assert!(by_user("ali").is_empty(), "no prefix match");
    assert!(by_user("mallory").is_empty());
    assert!(by_user("").is_empty());
    assert_eq!(by_session("alice:s1"), vec![5, 1, 1]);
    assert_eq!(by_session("alice:s10"), vec![3]);
    assert!(by_session("alice:s").is_empty());
    assert_eq!(by_session("alice2:s1"), vec![6, 2]);

    // Paging: 2 at a time.
    let (p1, k1) = store.tool_calls_by_user("alice", None, 2).expect("p1");
    assert_eq!(
        p1.iter()
            .map(|e| (e.source.as_str(), e.sequence))
            .collect::<Vec<_>>(),
        vec![("gw", 5), ("edge-2", 1)]
    );
    let (p2, k2) = store
        .tool_calls_by_user("alice", k1.as_deref(), 2)
        .expect("p2");
    assert_eq!(
        p2.iter()
            .map(|e| (e.source.as_str(), e.sequence))
            .collect::<Vec<_>>(),
        vec![("gw", 3), ("gw", 1)]
    );
    let (p3, k3) = store
        .tool_calls_by_user("alice", k2.as_deref(), 2)
        .expect("p3");
    assert!(p3.is_empty() && k3.is_none());
    check_store(&store);
}

#[test]
fn alerts_order_by_status_severity_and_newest_and_latest_event_wins() {
    let dir = temp();
    let store = open(dir.path());
    let mut gw = Stream::new("gw");
    gw.push(alert("al-1", Severity::Critical, AlertStatus::New)); // 1
    gw.push(alert("al-2", Severity::Low, AlertStatus::New)); // 2
    gw.push(alert("al-3", Severity::High, AlertStatus::New)); // 3
    gw.push(alert("al-5", Severity::High, AlertStatus::New)); // 4: same severity, newer
    store.ingest(&gw.seqs(1..=4)).expect("new alerts");
    let ids = |records: Vec<StateRecord>| -> Vec<String> {
        records
            .iter()
            .map(|r| {
                data_of(&r.json)["alert_id"]
                    .as_str()
                    .expect("id")
                    .to_string()
            })
            .collect()
    };
    let all = |store: &Store| ids(store.alerts(AlertFilter::All, 100).expect("alerts"));
    assert_eq!(all(&store), vec!["al-1", "al-5", "al-3", "al-2"]);

    // Later batches: al-1 acknowledged, al-4 raised and resolved within one batch.
    gw.push(alert("al-1", Severity::Critical, AlertStatus::Acknowledged)); // 5
    gw.push(alert("al-4", Severity::Medium, AlertStatus::New)); // 6
    gw.push(alert("al-4", Severity::Medium, AlertStatus::Resolved)); // 7
    store.ingest(&gw.seqs(5..=7)).expect("updates");
    assert_eq!(all(&store), vec!["al-5", "al-3", "al-2", "al-1", "al-4"]);
    assert_eq!(
        ids(store.alerts(AlertFilter::New, 100).expect("new")),
        vec!["al-5", "al-3", "al-2"]
    );
    assert_eq!(
        ids(store.alerts(AlertFilter::Open, 100).expect("open")),
        vec!["al-5", "al-3", "al-2", "al-1"]
    );
    assert_eq!(
        ids(store.alerts(AlertFilter::All, 2).expect("limit")),
        vec!["al-5", "al-3"]
    );
    let al1 = store.alert("gw", "al-1").expect("lookup").expect("exists");
    assert_eq!(al1.sequence, 5);
    assert_eq!(al1.json, gw.get(5));
    assert_eq!(data_of(&al1.json)["status"], "acknowledged");

    // Severity escalates: the alert moves within its status group.
    gw.push(alert("al-2", Severity::Critical, AlertStatus::New)); // 8
    // The same alert id from another source is another alert.
    let mut edge = Stream::new("edge-2").at_ms(BASE_MS - 60_000);
    edge.push(alert("al-1", Severity::Low, AlertStatus::New));
    store.ingest(&gw.seqs(8..=8)).expect("escalate");
    store.ingest(&edge.all()).expect("edge");
    assert_eq!(
        all(&store),
        vec!["al-2", "al-5", "al-3", "al-1", "al-1", "al-4"]
    );
    let recs = store.alerts(AlertFilter::New, 100).expect("new");
    assert_eq!(recs.len(), 4);
    assert_eq!(store.source_name(recs[3].source).as_deref(), Some("edge-2"));
    assert_eq!(
        store
            .alert("edge-2", "al-1")
            .expect("lookup")
            .map(|r| r.sequence),
        Some(1)
    );
    assert_eq!(
        store
            .alert("gw", "al-1")
            .expect("lookup")
            .map(|r| r.sequence),
        Some(5),
        "the other source's alert does not touch this one"
    );
    assert!(store.alert("gw", "al-404").expect("lookup").is_none());
    assert!(store.alert("nowhere", "al-1").expect("lookup").is_none());

    // Replaying an older event (a duplicate) never moves the state back.
    assert_eq!(store.ingest(&gw.seqs(1..=1)).expect("replay"), report(0, 1));
    assert_eq!(
        store
            .alert("gw", "al-1")
            .expect("lookup")
            .map(|r| r.sequence),
        Some(5)
    );
    let summary = check_store(&store);
    assert_eq!(summary.alerts, 6);
    drop(store);
    check_raw(dir.path());
}

#[test]
fn pending_changes_oldest_first_and_decided_changes_leave() {
    let dir = temp();
    let store = open(dir.path());
    let mut edge = Stream::new("edge-2").at_ms(BASE_MS - 10_000);
    edge.push(tool_change("shell", "exec", ChangeStatus::Pending)); // oldest
    let mut gw = Stream::new("gw");
    gw.push(tool_change("files", "read", ChangeStatus::Pending)); // 1
    gw.push(tool_change("files", "write", ChangeStatus::Pending)); // 2
    gw.push(tool_change("files", "list", ChangeStatus::Approved)); // 3: never pending
    store.ingest(&gw.seqs(1..=3)).expect("gw");
    store.ingest(&edge.all()).expect("edge");

    let names = |store: &Store| -> Vec<String> {
        store
            .pending_changes(100)
            .expect("pending")
            .iter()
            .map(|r| {
                let d = data_of(&r.json);
                format!(
                    "{}/{}",
                    d["upstream"].as_str().expect("u"),
                    d["tool"].as_str().expect("t")
                )
            })
            .collect()
    };
    assert_eq!(
        names(&store),
        vec!["shell/exec", "files/read", "files/write"]
    );

    gw.push(tool_change("files", "read", ChangeStatus::Approved)); // 4
    store.ingest(&gw.seqs(4..=4)).expect("approve");
    assert_eq!(names(&store), vec!["shell/exec", "files/write"]);
    let read = store
        .tool_change("gw", "files", "read")
        .expect("lookup")
        .expect("exists");
    assert_eq!(read.sequence, 4);
    assert_eq!(data_of(&read.json)["status"], "approved");
    assert_ne!(read.status, 1);

    // Pending again (a new definition), rejected and blocked in one batch, pending once more.
    gw.push(tool_change("files", "read", ChangeStatus::Pending)); // 5
    gw.push(tool_change("files", "write", ChangeStatus::Rejected)); // 6
    gw.push(tool_change("files", "write", ChangeStatus::Blocked)); // 7
    gw.push(tool_change("files", "list", ChangeStatus::Pending)); // 8
    store.ingest(&gw.seqs(5..=8)).expect("more");
    assert_eq!(
        names(&store),
        vec!["shell/exec", "files/read", "files/list"]
    );
    let pending = store.pending_changes(100).expect("pending");
    assert_eq!(seqs_of_records(&pending), vec![1, 5, 8]);
    assert_eq!(store.pending_changes(1).expect("limit").len(), 1);
    assert_eq!(
        store
            .tool_change("gw", "files", "write")
            .expect("lookup")
            .map(|r| r.sequence),
        Some(7)
    );
    assert!(
        store
            .tool_change("gw", "files", "nope")
            .expect("lookup")
            .is_none()
    );
    assert!(
        store
            .tool_change("gw", "shell", "exec")
            .expect("lookup")
            .is_none()
    );
    assert!(
        store
            .tool_change("edge-2", "shell", "exec")
            .expect("lookup")
            .is_some()
    );
    let summary = check_store(&store);
    assert_eq!(summary.pending, 3);
    drop(store);
    check_raw(dir.path());
}

#[test]
fn sessions_show_the_latest_state_per_binding() {
    let dir = temp();
    let store = open(dir.path());
    let mut gw = Stream::new("gw");
    gw.push(session("alice:s1", SessionChange::Bound)); // 1
    gw.push(session("bob:s1", SessionChange::Bound)); // 2
    gw.push(session("alice:s1", SessionChange::Seen)); // 3
    store.ingest(&gw.seqs(1..=3)).expect("ingest");
    gw.push(session("alice:s1", SessionChange::ReuseRefused)); // 4
    gw.push(session("alice:s1", SessionChange::Expired)); // 5
    gw.push(session("alice:s10", SessionChange::Bound)); // 6
    store.ingest(&gw.seqs(4..=6)).expect("ingest");

    let sessions = store.sessions(100).expect("sessions");
    let listed: Vec<(String, String, u64)> = sessions
        .iter()
        .map(|r| {
            let d = data_of(&r.json);
            (
                d["binding"].as_str().expect("b").to_string(),
                d["change"].as_str().expect("c").to_string(),
                r.sequence,
            )
        })
        .collect();
    let mut sorted = listed.clone();
    sorted.sort();
    assert_eq!(
        sorted,
        vec![
            ("alice:s1".to_string(), "expired".to_string(), 5),
            ("alice:s10".to_string(), "bound".to_string(), 6),
            ("bob:s1".to_string(), "bound".to_string(), 2),
        ]
    );
    assert_eq!(store.sessions(2).expect("limit").len(), 2);
    let alice = store
        .session("gw", "alice:s1")
        .expect("lookup")
        .expect("exists");
    assert_eq!(alice.sequence, 5);
    assert_eq!(alice.json, gw.get(5));
    assert_eq!(alice.time_ms, gw.time_of(5));
    assert!(store.session("gw", "alice:s2").expect("lookup").is_none());
    assert!(
        store
            .session("other", "alice:s1")
            .expect("lookup")
            .is_none()
    );
    let summary = check_store(&store);
    assert_eq!(summary.sessions, 3);
}

// ---------------------------------------------------------------------------------------------
// Retention

#[test]
fn prune_by_age_drops_old_events_and_their_index_entries_but_keeps_state() {
    let dir = temp();
    let store = open(dir.path());
    let now = time(BASE_MS + 30 * 86_400_000);
    let old_ms = now.timestamp_millis() - 10 * 86_400_000;
    let new_ms = now.timestamp_millis() - 3_600_000;
    let mut gw = Stream::new("gw").at_ms(old_ms);
    gw.push(tool_call("alice", "alice:s1", "read")); // 1
    gw.push(tool_change("files", "read", ChangeStatus::Pending)); // 2
    gw.push(alert("al-1", Severity::High, AlertStatus::New)); // 3
    gw.push(session("alice:s1", SessionChange::Bound)); // 4
    for i in 0..16 {
        gw.push(if i % 2 == 0 {
            tool_call("alice", "alice:s1", "write")
        } else {
            heartbeat(i)
        }); // 5..=20
    }
    gw.set_time(new_ms);
    for i in 0..10 {
        gw.push(if i % 2 == 0 {
            tool_call("alice", "alice:s2", "read")
        } else {
            heartbeat(100 + i)
        }); // 21..=30
    }
    let mut edge = Stream::new("edge-2").at_ms(old_ms + 500);
    edge.push(heartbeat(1));
    edge.push(heartbeat(2));
    store.ingest(&gw.all()).expect("gw");
    store.ingest(&edge.all()).expect("edge");
    assert_eq!(store.count(), 32);
    let new_bytes: u64 = gw.seqs(21..=30).iter().map(|e| e.len() as u64).sum();

    let policy = Retention {
        max_age: Some(Duration::from_secs(7 * 86_400)),
        max_bytes: None,
    };
    let pruned = store.prune(&policy, now, 3).expect("prune");
    assert_eq!(pruned.removed, 22);
    assert_eq!(store.count(), 10);
    assert_eq!(store.stored_bytes(), new_bytes);
    assert_eq!(pruned.bytes + new_bytes, {
        let all: u64 = gw
            .all()
            .iter()
            .chain(edge.all().iter())
            .map(|e| e.len() as u64)
            .sum();
        all
    });
    assert_eq!(stored_seqs(&store, "gw"), (21..=30).collect::<Vec<_>>());
    assert!(stored_seqs(&store, "edge-2").is_empty());
    assert_eq!(store.first_sequence("gw").expect("first"), Some(21));
    assert_eq!(store.first_sequence("edge-2").expect("first"), None);
    // Indexes no longer name pruned events.
    let (calls, _) = store.tool_calls_by_user("alice", None, 100).expect("q");
    assert_eq!(seqs(&calls), vec![29, 27, 25, 23, 21]);
    let (calls, _) = store
        .tool_calls_by_session("alice:s1", None, 100)
        .expect("q");
    assert!(calls.is_empty());
    let (beats, _) = store.newest_of_type(ev::HEARTBEAT, None, 100).expect("q");
    assert_eq!(seqs(&beats), vec![30, 28, 26, 24, 22]);
    assert_eq!(
        store
            .of_type_between(ev::TOOL_CHANGE, i64::MIN, i64::MAX)
            .count(),
        0
    );
    // State survives: the pending change is still awaiting approval, the alert still open.
    let pending = store.pending_changes(10).expect("pending");
    assert_eq!(seqs_of_records(&pending), vec![2]);
    assert_eq!(pending[0].json, gw.get(2));
    assert!(
        store
            .tool_change("gw", "files", "read")
            .expect("q")
            .is_some()
    );
    assert_eq!(
        store.alerts(AlertFilter::Open, 10).expect("alerts").len(),
        1
    );
    assert_eq!(
        store
            .session("gw", "alice:s1")
            .expect("q")
            .map(|r| r.sequence),
        Some(4)
    );
    // Resume positions survive: pruned events are not fetched again, ingest continues.
    assert_eq!(store.last_sequence("gw"), 30);
    assert_eq!(store.last_sequence("edge-2"), 2);
    assert_eq!(
        store.ingest(&gw.seqs(1..=30)).expect("replay"),
        report(0, 30)
    );
    assert_eq!(store.count(), 10);
    // A second prune with the same policy finds nothing.
    assert_eq!(store.prune(&policy, now, 3).expect("prune").removed, 0);
    let summary = check_store(&store);
    assert_eq!(summary.events, 10);
    assert_eq!(summary.pending, 1);
    store.flush().expect("flush");
    drop(store);
    check_raw(dir.path());
    let store = open(dir.path());
    assert_eq!(store.count(), 10);
    assert_eq!(store.stored_bytes(), new_bytes);
    assert_eq!(store.last_sequence("gw"), 30);
    check_store(&store);
}

fn two_interleaved_sources(store: &Store) -> Vec<(i64, String, u64, u64)> {
    // Source a at even seconds, b at odd seconds: the oldest events alternate between them.
    let mut a = Stream::new("a").step_ms(2000);
    let mut b = Stream::new("b").at_ms(BASE_MS + 1000).step_ms(2000);
    for i in 0..30 {
        a.push(tool_call(["alice", "bob"][i % 2], "s", "read"));
        b.push(if i % 3 == 0 {
            alert(&format!("al-{i}"), Severity::Medium, AlertStatus::New)
        } else {
            heartbeat(i as u64)
        });
    }
    store.ingest(&a.all()).expect("a");
    store.ingest(&b.all()).expect("b");
    let mut all = Vec::new();
    for (name, s) in [("a", &a), ("b", &b)] {
        for seq in 1..=30 {
            all.push((
                s.time_of(seq),
                name.to_string(),
                seq,
                s.get(seq).len() as u64,
            ));
        }
    }
    all.sort();
    all
}

fn check_prune_by_size(chunk: usize) {
    let dir = temp();
    let store = open(dir.path());
    let all = two_interleaved_sources(&store);
    let total: u64 = all.iter().map(|e| e.3).sum();
    assert_eq!(store.stored_bytes(), total);
    let limit = total / 2;
    let policy = Retention {
        max_age: None,
        max_bytes: Some(limit),
    };
    let pruned = store.prune(&policy, Utc::now(), chunk).expect("prune");
    assert!(
        store.stored_bytes() <= limit,
        "chunk {chunk}: {} bytes left over a limit of {limit}",
        store.stored_bytes()
    );
    assert_eq!(store.stored_bytes() + pruned.bytes, total);
    // Exactly the oldest events are gone, and no more than needed.
    let removed = pruned.removed as usize;
    let expected_left: BTreeSet<(String, u64)> = all[removed..]
        .iter()
        .map(|(_, s, q, _)| (s.clone(), *q))
        .collect();
    let left: BTreeSet<(String, u64)> = store
        .all_events()
        .map(|e| e.expect("read"))
        .map(|e| (e.source, e.sequence))
        .collect();
    assert_eq!(left, expected_left, "chunk {chunk}: oldest removed first");
    let without_last: u64 = all[..removed - 1].iter().map(|e| e.3).sum();
    assert!(
        total - without_last > limit,
        "chunk {chunk}: removed more than needed"
    );
    assert_eq!(store.count(), (all.len() - removed) as u64);
    assert_eq!(store.last_sequence("a"), 30);
    assert_eq!(store.last_sequence("b"), 30);
    // Every alert is still listed even if its event is gone.
    assert_eq!(
        store.alerts(AlertFilter::All, 100).expect("alerts").len(),
        10
    );
    check_store(&store);
    drop(store);
    check_raw(dir.path());
}

#[test]
fn prune_by_size_removes_oldest_first_one_at_a_time() {
    check_prune_by_size(1);
}

#[test]
fn prune_by_size_removes_oldest_first_in_large_chunks() {
    check_prune_by_size(1000);
}

// ---------------------------------------------------------------------------------------------
// The checker itself

#[test]
fn mixed_stream_store_is_consistent_and_the_checker_sees_damage() {
    let dir = temp();
    let store = open(dir.path());
    let events = mixed_events("gw", 1..=400);
    for chunk in events.chunks(37) {
        store.ingest(chunk).expect("ingest");
    }
    store
        .ingest(&mixed_events("edge-2", 10..=120))
        .expect("edge");
    let summary = check_store(&store);
    assert_eq!(summary.events, 511);
    assert!(summary.alerts > 0 && summary.pending > 0 && summary.sessions > 0);
    assert!(summary.by_type.contains_key(FUTURE_TYPE));
    drop(store);
    check_raw(dir.path());

    // Remove one index entry behind the store's back: the raw walk must notice.
    {
        let db = common::retry_locked(|| sled::open(dir.path()));
        let tree = db.open_tree("events").expect("tree");
        let victim = tree
            .scan_prefix([mcpsoc::store::keys::CALLS_BY_USER])
            .next()
            .expect("a user index entry")
            .expect("read")
            .0;
        tree.remove(victim).expect("remove");
        db.flush().expect("flush");
    }
    let damaged = std::panic::catch_unwind(|| check_raw(dir.path()));
    assert!(damaged.is_err(), "a missing index entry is detected");
    // And through the public API: a call is missing from its user's list.
    let store = open(dir.path());
    let damaged = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| check_store(&store)));
    assert!(damaged.is_err(), "the public-API checker sees it too");
}

#[test]
fn envelope_helper_matches_producer_output() {
    // The fixtures build events the way a producer does: append and envelope() agree, but for
    // the chain link the producer adds.
    let dir = temp();
    let store = open(dir.path());
    let data = tool_call("alice", "alice:s1", "read");
    let appended = store
        .append(
            "gw",
            vec![NewEvent {
                data: data.clone(),
                time: Some(time(BASE_MS)),
            }],
            &[],
            |_| {},
        )
        .expect("append");
    // The producer seals it as the first link of the source's audit chain.
    let expected = envelope("gw", 1, BASE_MS, &data);
    let (unsealed, link) = mcpsoc::store::chain::unseal(&appended[0].json).expect("sealed");
    assert_eq!(unsealed, expected);
    assert_eq!(link, mcpsoc::store::chain::link("", &expected));
}

// ---------------------------------------------------------------------------------------------
// Concurrency

#[test]
fn concurrent_readers_never_see_a_new_source_as_corrupt() {
    // A new source's first batch is visible in the tree a moment before its name is published
    // to the in-memory dictionary; a reader in that moment must still read the event.
    let dir = temp();
    let store = open(dir.path());
    store
        .ingest(&[envelope("seed", 1, BASE_MS, &heartbeat(0))])
        .expect("seed");
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let readers: Vec<_> = (0..2)
        .map(|r| {
            let store = store.clone();
            let stop = stop.clone();
            std::thread::spawn(move || {
                let mut errors = Vec::new();
                let mut reads = 0u64;
                loop {
                    let done = stop.load(std::sync::atomic::Ordering::Acquire);
                    reads += 1;
                    let result = if r == 0 {
                        store.newest_of_type(ev::HEARTBEAT, None, 2).map(|_| ())
                    } else {
                        store.tool_calls_by_user("alice", None, 2).map(|_| ())
                    };
                    if let Err(e) = result {
                        errors.push(e.to_string());
                    }
                    if done {
                        break;
                    }
                }
                (reads, errors)
            })
        })
        .collect();
    for i in 0..1500u64 {
        let source = format!("edge-{i}");
        let t = BASE_MS + 1000 + i as i64;
        store
            .ingest(&[
                envelope(&source, 1, t, &heartbeat(i)),
                envelope(&source, 2, t, &tool_call("alice", "alice:s1", "read")),
            ])
            .expect("ingest a new source");
    }
    stop.store(true, std::sync::atomic::Ordering::Release);
    for reader in readers {
        let (reads, errors) = reader.join().expect("reader thread");
        assert!(reads > 0);
        assert!(
            errors.is_empty(),
            "{} of {reads} reads failed, first: {}",
            errors.len(),
            errors[0]
        );
    }
    let summary = check_store(&store);
    assert_eq!(summary.events, 3001);
}

// ---------------------------------------------------------------------------------------------
// Packed indexes

/// xorshift64*: reproducible random streams.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// One generated event and what the indexes should file it under.
#[derive(Debug, Clone)]
struct Gen {
    source: String,
    seq: u64,
    time_ms: i64,
    kind: &'static str,
    user: Option<String>,
    session: Option<String>,
    json: String,
}

/// A stream of `n` events of `source` whose times wander: equal times, small steps, steps back
/// (out of order), and jumps past the pack span and across session directory buckets. Tool
/// calls with and without a session, calls without a user (a non-string `user`), sessions
/// shared between users, and heartbeats.
fn wandering_stream(rng: &mut Rng, source: &str, n: u64, start_ms: i64) -> Vec<Gen> {
    const SESSIONS: [&str; 5] = ["s-a", "s-b", "s-c", "u2:s-d", "s-e"];
    let mut out = Vec::new();
    let mut t = start_ms;
    for seq in 1..=n {
        t += match rng.below(100) {
            0..=14 => 0,
            15..=16 => -(59_000 + rng.below(1_000) as i64),
            17..=74 => 1 + rng.below(2_000) as i64,
            75..=89 => -(rng.below(59_000) as i64),
            90..=96 => 61_000 + rng.below(120_000) as i64,
            _ => 600_000 + rng.below(900_000) as i64,
        };
        let user = format!("u{}", rng.below(3));
        let session = SESSIONS[rng.below(SESSIONS.len() as u64) as usize].to_string();
        let (kind, user, session, json) = match rng.below(10) {
            0..=4 => (
                ev::TOOL_CALL,
                Some(user.clone()),
                Some(session.clone()),
                envelope(source, seq, t, &tool_call(&user, &session, "read")),
            ),
            5 => (
                ev::TOOL_CALL,
                Some(user.clone()),
                None,
                envelope(
                    source,
                    seq,
                    t,
                    &EventData::ToolCall(tool_call_data(&user, None, "read")),
                ),
            ),
            6 => (
                ev::TOOL_CALL,
                None,
                Some(session.clone()),
                raw_event(
                    source,
                    seq,
                    t,
                    ev::TOOL_CALL,
                    json!({"user": 7, "session": session, "tool": "read"}),
                ),
            ),
            _ => (
                ev::HEARTBEAT,
                None,
                None,
                envelope(source, seq, t, &heartbeat(seq)),
            ),
        };
        out.push(Gen {
            source: source.to_string(),
            seq,
            time_ms: t,
            kind,
            user,
            session,
            json,
        });
    }
    out
}

/// The exact order of every time-ordered read, newest first: time, source id, sequence.
fn newest_first(store: &Store, mut events: Vec<&Gen>) -> Vec<(String, u64)> {
    let id = |g: &Gen| store.source_id(&g.source).expect("source id");
    events.sort_by_key(|g| std::cmp::Reverse((g.time_ms, id(g), g.seq)));
    events.iter().map(|g| (g.source.clone(), g.seq)).collect()
}

fn refs(events: &[StoredEvent]) -> Vec<(String, u64)> {
    events
        .iter()
        .map(|e| (e.source.clone(), e.sequence))
        .collect()
}

type Page = Result<(Vec<StoredEvent>, Option<Vec<u8>>), StoreError>;

/// Every page of a newest-first read at page size `size`, concatenated.
fn paged(size: usize, mut read: impl FnMut(Option<&[u8]>, usize) -> Page) -> Vec<(String, u64)> {
    let mut out = Vec::new();
    let mut before: Option<Vec<u8>> = None;
    loop {
        let (page, next) = read(before.as_deref(), size).expect("page");
        assert!(page.len() <= size);
        if page.is_empty() {
            assert!(next.is_none(), "an empty page has no cursor");
            return out;
        }
        out.extend(refs(&page));
        before = next;
    }
}

/// Checks every index read of `store` against the events in `live`, exactly, in order.
fn check_orders(store: &Store, live: &[Gen], rng: &mut Rng) {
    let by = |f: &dyn Fn(&Gen) -> bool| -> Vec<&Gen> { live.iter().filter(|g| f(g)).collect() };
    for kind in [ev::TOOL_CALL, ev::HEARTBEAT] {
        let want = newest_first(store, by(&|g| g.kind == kind));
        for size in [1, 7, 100, usize::MAX] {
            let got = paged(size, |b, l| store.newest_of_type(kind, b, l));
            assert_eq!(got, want, "newest_of_type({kind}) pages of {size}");
        }
        for _ in 0..20 {
            let times: Vec<i64> = live.iter().map(|g| g.time_ms).collect();
            let (lo, hi) = (
                *times.iter().min().unwrap_or(&0),
                *times.iter().max().unwrap_or(&0),
            );
            let a = lo - 1000 + rng.below((hi - lo + 2000) as u64 + 1) as i64;
            let b = a + rng.below(400_000) as i64;
            let mut want: Vec<(String, u64)> = newest_first(
                store,
                by(&|g| g.kind == kind && (a..=b).contains(&g.time_ms)),
            );
            want.reverse();
            let got: Vec<(String, u64)> = store
                .of_type_between(kind, a, b)
                .map(|e| e.expect("read"))
                .map(|e| (e.source, e.sequence))
                .collect();
            assert_eq!(got, want, "of_type_between({kind}, {a}, {b})");
        }
    }
    for user in ["u0", "u1", "u2", "7"] {
        let want = newest_first(store, by(&|g| g.user.as_deref() == Some(user)));
        for size in [3, usize::MAX] {
            let got = paged(size, |b, l| store.tool_calls_by_user(user, b, l));
            assert_eq!(got, want, "tool_calls_by_user({user}) pages of {size}");
        }
    }
    for session in ["s-a", "s-b", "s-c", "u2:s-d", "s-e", "s-"] {
        let want = newest_first(store, by(&|g| g.session.as_deref() == Some(session)));
        for size in [1, 5, usize::MAX] {
            let got = paged(size, |b, l| store.tool_calls_by_session(session, b, l));
            assert_eq!(
                got, want,
                "tool_calls_by_session({session}) pages of {size}"
            );
        }
    }
}

fn raw_families(dir: &Path) -> std::collections::BTreeMap<char, usize> {
    let db = common::retry_locked(|| sled::open(dir));
    let tree = db.open_tree("events").expect("tree");
    let mut counts = std::collections::BTreeMap::new();
    for item in tree.iter() {
        let (k, _) = item.expect("read");
        *counts.entry(k[0] as char).or_insert(0) += 1;
    }
    counts
}

#[test]
fn packed_reads_are_exact_across_sources_pages_spans_and_retention() {
    let dir = temp();
    let store = open(dir.path());
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let streams: Vec<Vec<Gen>> = ["gw", "edge-2", "edge-3"]
        .iter()
        .enumerate()
        .map(|(i, s)| wandering_stream(&mut rng, s, 900, BASE_MS + i as i64 * 700))
        .collect();
    // Interleaved batches of 1 to 300 events, so packs of different sources overlap in time.
    let mut next = [0usize; 3];
    while next.iter().zip(&streams).any(|(n, s)| *n < s.len()) {
        let i = rng.below(3) as usize;
        let size = 1 + rng.below(300) as usize;
        let end = (next[i] + size).min(streams[i].len());
        let batch: Vec<&str> = streams[i][next[i]..end]
            .iter()
            .map(|g| g.json.as_str())
            .collect();
        store.ingest(&batch).expect("ingest");
        next[i] = end;
    }
    // One batch of 600 heartbeats within a second: more than a pack holds.
    let mut burst = Vec::new();
    for k in 0..600u64 {
        let t = BASE_MS + 5_000 + (k % 7) as i64 * 100;
        burst.push(Gen {
            source: "burst".into(),
            seq: k + 1,
            time_ms: t,
            kind: ev::HEARTBEAT,
            user: None,
            session: None,
            json: envelope("burst", k + 1, t, &heartbeat(k)),
        });
    }
    let texts: Vec<&str> = burst.iter().map(|g| g.json.as_str()).collect();
    store.ingest(&texts).expect("burst");
    let mut all: Vec<Gen> = streams.into_iter().flatten().collect();
    all.extend(burst);
    check_orders(&store, &all, &mut rng);
    check_store(&store);

    // Retention by age (chunks that end inside ingest batches), then by size.
    let times: Vec<i64> = all.iter().map(|g| g.time_ms).collect();
    let middle = (times.iter().min().unwrap_or(&0) + times.iter().max().unwrap_or(&0)) / 2;
    let policy = Retention {
        max_age: Some(Duration::from_secs(3600)),
        max_bytes: None,
    };
    let now = time(middle + 3_600_000);
    assert!(store.prune(&policy, now, 97).expect("prune").removed > 0);
    let live = |store: &Store, all: &[Gen]| -> Vec<Gen> {
        let left: BTreeSet<(String, u64)> = store
            .all_events()
            .map(|e| e.expect("read"))
            .map(|e| (e.source, e.sequence))
            .collect();
        all.iter()
            .filter(|g| left.contains(&(g.source.clone(), g.seq)))
            .cloned()
            .collect()
    };
    let left = live(&store, &all);
    assert!(!left.is_empty() && left.len() < all.len());
    check_orders(&store, &left, &mut rng);
    let policy = Retention {
        max_age: None,
        max_bytes: Some(store.stored_bytes() / 3),
    };
    assert!(store.prune(&policy, now, 1).expect("prune").removed > 0);
    let left = live(&store, &all);
    check_orders(&store, &left, &mut rng);
    check_store(&store);
    store.flush().expect("flush");
    drop(store);
    check_raw(dir.path());
}

#[test]
fn a_batch_writes_about_one_key_per_event() {
    let dir = temp();
    let store = open(dir.path());
    let mut gw = Stream::new("gw").step_ms(10);
    for i in 0..1000u64 {
        let user = format!("u{}", i % 20);
        let session = format!("{user}:s{}", i % 7);
        gw.push(tool_call(&user, &session, "read"));
    }
    store.ingest(&gw.all()).expect("ingest");
    drop(store);
    let counts = raw_families(dir.path());
    assert_eq!(counts.get(&'E'), Some(&1000));
    assert_eq!(
        counts.get(&'T'),
        Some(&2),
        "a type pack holds at most 512 entries"
    );
    assert_eq!(counts.get(&'U'), Some(&20), "one pack per user");
    assert_eq!(
        counts.get(&'S'),
        None,
        "every call has a user: sessions ride in U packs"
    );
    assert_eq!(
        counts.get(&'s'),
        Some(&140),
        "one directory key per session and bucket"
    );
    let total: usize = counts.values().sum();
    assert!(total < 1200, "{total} keys for 1000 events: {counts:?}");
    check_raw(dir.path());
}

#[test]
fn a_store_of_the_earlier_layout_is_reindexed_when_opened() {
    let dir = temp();
    let store = open(dir.path());
    for chunk in mixed_events("gw", 1..=300).chunks(40) {
        store.ingest(chunk).expect("ingest");
    }
    store.ingest(&mixed_events("edge-2", 5..=80)).expect("edge");
    let before = check_store(&store);
    drop(store);
    // Rewrite the indexes the way the earlier layout kept them: one empty-valued key per
    // event and index (`T type time source seq`, `U user ..`, `S session ..`), no version.
    {
        let db = common::retry_locked(|| sled::open(dir.path()));
        let tree = db.open_tree("events").expect("tree");
        let mut batch = sled::Batch::default();
        for f in [b'T', b'U', b'S', b's', b'V'] {
            for item in tree.scan_prefix([f]) {
                batch.remove(item.expect("read").0);
            }
        }
        for item in tree.scan_prefix([b'E']) {
            let (k, v) = item.expect("read");
            let (source, seq) = mcpsoc::store::keys::parse_event(&k).expect("event key");
            let text = std::str::from_utf8(&v).expect("utf-8").to_string();
            let view = mcpsoc::store::view::EventView::parse(&text).expect("view");
            let mut tkey = vec![b'Y'];
            tkey.extend_from_slice(view.kind.as_bytes());
            let type_id = tree.get(tkey).expect("read").expect("type");
            let tail = |k: &mut Vec<u8>| {
                k.extend_from_slice(&mcpsoc::store::keys::time_bytes(view.time_ms));
                k.extend_from_slice(&source.to_be_bytes());
                k.extend_from_slice(&seq.to_be_bytes());
            };
            let mut t = vec![b'T'];
            t.extend_from_slice(&type_id);
            tail(&mut t);
            batch.insert(t, &[][..]);
            if view.is_tool_call() {
                for (f, who) in [(b'U', &view.data.user), (b'S', &view.data.session)] {
                    if let Some(who) = who.as_deref() {
                        let mut k = vec![f];
                        mcpsoc::store::keys::push_str(&mut k, who);
                        tail(&mut k);
                        batch.insert(k, &[][..]);
                    }
                }
            }
        }
        tree.apply_batch(batch).expect("rewrite");
        db.flush().expect("flush");
    }
    let store = open(dir.path());
    let after = check_store(&store);
    assert_eq!(after, before);
    drop(store);
    check_raw(dir.path());
}

#[test]
fn the_raw_checker_sees_dangling_entries_bad_pack_keys_and_directory_damage() {
    let dir = temp();
    let store = open(dir.path());
    store.ingest(&mixed_events("gw", 1..=120)).expect("ingest");
    drop(store);
    check_raw(dir.path());
    let damage = |what: &str, f: &dyn Fn(&sled::Tree)| {
        let copy = temp();
        for entry in std::fs::read_dir(dir.path()).expect("dir") {
            let entry = entry.expect("entry");
            copy_all(&entry.path(), &copy.path().join(entry.file_name()));
        }
        {
            let db = common::retry_locked(|| sled::open(copy.path()));
            let tree = db.open_tree("events").expect("tree");
            f(&tree);
            db.flush().expect("flush");
        }
        let caught = std::panic::catch_unwind(|| check_raw(copy.path()));
        assert!(caught.is_err(), "check_raw misses: {what}");
    };
    use mcpsoc::store::keys;
    damage("an entry naming a missing event", &|tree| {
        let prefix = keys::type_prefix(1);
        let k = keys::pack(&prefix, BASE_MS, 0, 9_999);
        tree.insert(k, &[][..]).expect("insert");
    });
    damage("a pack whose key time is not its newest entry's", &|tree| {
        let (k, v) = tree
            .scan_prefix([keys::CALLS_BY_USER])
            .next()
            .expect("a pack")
            .expect("read");
        let (t, source, first) = keys::pack_tail(&k).expect("tail");
        let prefix = keys::pack_prefix(&k).expect("prefix").to_vec();
        tree.remove(&k).expect("remove");
        tree.insert(keys::pack(&prefix, t + 1, source, first), v)
            .expect("insert");
    });
    damage("a missing session directory key", &|tree| {
        let (k, _) = tree
            .scan_prefix([keys::SESSION_DIR])
            .next()
            .expect("a directory key")
            .expect("read");
        tree.remove(k).expect("remove");
    });
    damage("a directory key for no call", &|tree| {
        tree.insert(keys::session_dir("nobody:s9", 0, Some("nobody")), &[][..])
            .expect("insert");
    });
}

fn copy_all(from: &Path, to: &Path) {
    if from.is_dir() {
        std::fs::create_dir_all(to).expect("mkdir");
        for entry in std::fs::read_dir(from).expect("dir") {
            let entry = entry.expect("entry");
            copy_all(&entry.path(), &to.join(entry.file_name()));
        }
    } else {
        std::fs::copy(from, to).expect("copy");
    }
}

#[test]
fn entries_almost_a_pack_span_old_are_merged_in_order() {
    // Each source writes one pack spanning almost PACK_SPAN_MS; the later pack (by key) holds
    // the oldest entry. A reader that emitted an entry before reading every pack that may hold
    // an older one would put b/1 after a/1.
    let dir = temp();
    let store = open(dir.path());
    let k = BASE_MS + 3_600_000;
    let a = [
        envelope("a", 1, k - 59_000, &heartbeat(1)),
        envelope("a", 2, k, &heartbeat(2)),
    ];
    let b = [
        envelope("b", 1, k - 59_400, &heartbeat(1)),
        envelope("b", 2, k + 500, &heartbeat(2)),
    ];
    store.ingest(&a).expect("a");
    store.ingest(&b).expect("b");
    let oldest: Vec<(String, u64)> = store
        .of_type_between(ev::HEARTBEAT, i64::MIN, i64::MAX)
        .map(|e| e.expect("read"))
        .map(|e| (e.source, e.sequence))
        .collect();
    let r = |s: &str, q: u64| (s.to_string(), q);
    assert_eq!(oldest, vec![r("b", 1), r("a", 1), r("a", 2), r("b", 2)]);
    let newest = paged(1, |before, l| {
        store.newest_of_type(ev::HEARTBEAT, before, l)
    });
    assert_eq!(newest, vec![r("b", 2), r("a", 2), r("a", 1), r("b", 1)]);
    drop(store);
    check_raw(dir.path());
}
