//! Throughput of the event store and the stream, against the raw sled ceiling.
//!
//! `cargo bench --bench throughput` generates realistic pre-encoded events once (tool calls with
//! ~2% alerts, session and tool-change events mixed in), writes them to a fixture file, then runs
//! each phase in its own child process (this binary re-executed with `MCPSOC_BENCH_PHASE`) so that
//! each phase's peak resident memory is its own:
//!
//! 1. `ceiling`: raw sled `apply_batch` of the same bytes into one tree, keys big-endian u64.
//! 2. `store`: `Store::ingest` in batches of 1,000 (every index and state record is built).
//! 3. `stream`: a `Publisher` over the store of phase 2, served on loopback WebSocket, and a
//!    `Subscriber` into a fresh store, timed until the subscriber has stored the last event.
//!
//! Each child prints one JSON line with its numbers; the parent prints the table.
//!
//! Environment:
//! - `MCPSOC_BENCH_EVENTS`: number of events (default 1,000,000).
//! - `MCPSOC_BENCH_DIR`: where to put the fixture and the databases (default: a temporary
//!   directory, removed at the end; a given directory is left in place).

use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use chrono::{TimeZone, Utc};
use mcpsoc::auth::{Role, StreamGrant, TokenTable, hash_token};
use mcpsoc::protocol::events::EventData;
use mcpsoc::store::{Store, StoreOptions};
use mcpsoc::stream::{LinkState, Publisher, PublisherOptions, SourceSpec, Subscriber};
use serde_json::{Value, json};

#[path = "fixture/mod.rs"]
mod fixture;
use fixture::process::{dir_bytes, memory_kb, work_dir};
use fixture::{Fixture, RULES};

/// The source every fixture event carries (and the publisher serves).
const SOURCE: &str = "bench/gw";
/// Events per write batch in the ceiling and store phases.
const BATCH: usize = 1_000;
/// sled page cache, the same as `StoreOptions::default()`.
const CACHE_BYTES: u64 = 64 << 20;
/// Fixture file name inside the bench directory.
const FIXTURE: &str = "events.jsonl";
/// The subscriber's token (the publisher only knows its hash).
const TOKEN: &str = "bench-token-0123456789abcdef";

const PHASES: [Phase; 3] = [
    Phase {
        name: "ceiling",
        label: "CEILING raw sled batch",
        goal: None,
    },
    Phase {
        name: "store",
        label: "STORE ingest (all indexes)",
        goal: Some(0.5),
    },
    Phase {
        name: "stream",
        label: "STREAM ws loopback -> store",
        goal: Some(0.4),
    },
];

struct Phase {
    name: &'static str,
    label: &'static str,
    /// Minimum ratio to the ceiling.
    goal: Option<f64>,
}

type BenchResult<T> = Result<T, Box<dyn std::error::Error>>;

fn main() {
    // `cargo bench` passes `--bench` (and maybe filters): every argument is ignored.
    let result = match std::env::var("MCPSOC_BENCH_PHASE") {
        Ok(phase) => run_child(&phase),
        Err(_) => run_parent(),
    };
    if let Err(e) = result {
        eprintln!("throughput bench failed: {e}");
        std::process::exit(1);
    }
}

fn event_count() -> BenchResult<u64> {
    match std::env::var("MCPSOC_BENCH_EVENTS") {
        Ok(v) => {
            let n: u64 = v.trim().replace(['_', ','], "").parse().map_err(|e| {
                format!("MCPSOC_BENCH_EVENTS must be a positive integer, got {v:?}: {e}")
            })?;
            if n == 0 {
                return Err("MCPSOC_BENCH_EVENTS must be at least 1".into());
            }
            Ok(n)
        }
        Err(_) => Ok(1_000_000),
    }
}

// ---------------------------------------------------------------------------------------------
// Parent: fixture, children, table.
// ---------------------------------------------------------------------------------------------

fn run_parent() -> BenchResult<()> {
    let n = event_count()?;
    let (_temp, dir) = work_dir("mcpsoc-throughput-")?;
    for sub in ["ceiling", "store", "subscriber"] {
        let p = dir.join(sub);
        if p.exists() {
            std::fs::remove_dir_all(&p)?;
        }
    }

    let started = Instant::now();
    let fixture = dir.join(FIXTURE);
    let (bytes, mix) = write_fixture(&fixture, n)?;
    eprintln!(
        "fixture: {n} events, {:.1} MB, {:.0} bytes/event on average ({} tool calls, {} sessions, {} alerts, {} tool changes), written in {:.1} s to {}",
        mb(bytes),
        bytes as f64 / n as f64,
        mix[0],
        mix[1],
        mix[2],
        mix[3],
        started.elapsed().as_secs_f64(),
        fixture.display()
    );

    let exe = std::env::current_exe()?;
    let mut results: Vec<(&Phase, Value)> = Vec::new();
    for phase in &PHASES {
        eprintln!("--- phase {} ---", phase.name);
        let output = Command::new(&exe)
            .env("MCPSOC_BENCH_PHASE", phase.name)
            .env("MCPSOC_BENCH_DIR", &dir)
            .env("MCPSOC_BENCH_EVENTS", n.to_string())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .output()?;
        let stdout = String::from_utf8_lossy(&output.stdout);
        if !output.status.success() {
            return Err(format!(
                "phase {} failed ({}); its stdout: {stdout}",
                phase.name, output.status
            )
            .into());
        }
        let line = stdout
            .lines()
            .rev()
            .find(|l| l.trim_start().starts_with('{'))
            .ok_or_else(|| format!("phase {} printed no JSON line: {stdout}", phase.name))?;
        let value: Value = serde_json::from_str(line)?;
        eprintln!("{}", line.trim());
        if phase.name == "ceiling" {
            // Not needed by later phases; give the disk space back.
            let _ = std::fs::remove_dir_all(dir.join("ceiling"));
        }
        results.push((phase, value));
    }

    print_table(n, bytes, &results);
    println!(
        "total bench time {:.1} s (fixture dir {})",
        started.elapsed().as_secs_f64(),
        dir.display()
    );
    Ok(())
}

fn print_table(n: u64, fixture_bytes: u64, results: &[(&Phase, Value)]) {
    let ceiling = results
        .iter()
        .find(|(p, _)| p.name == "ceiling")
        .and_then(|(_, v)| v["events_per_sec"].as_f64())
        .unwrap_or(0.0);
    println!();
    println!(
        "mcpsoc throughput: {n} events, {:.1} MB of event JSON ({:.0} B/event), {} cores",
        mb(fixture_bytes),
        fixture_bytes as f64 / n as f64,
        std::thread::available_parallelism()
            .map(|p| p.get())
            .unwrap_or(1)
    );
    let header = format!(
        "{:<30} {:>12} {:>8} {:>9} {:>11} {:>8} {:>11} {:>8} {:>5}",
        "phase",
        "events/s",
        "seconds",
        "ratio",
        "MB on disk",
        "peak RSS",
        "RSS at t0",
        "goal",
        "met"
    );
    println!("{header}");
    println!("{}", "-".repeat(header.len()));
    for (phase, v) in results {
        let eps = v["events_per_sec"].as_f64().unwrap_or(0.0);
        let ratio = if ceiling > 0.0 { eps / ceiling } else { 0.0 };
        let (goal, met) = match phase.goal {
            Some(g) => (
                format!(">= {g:.1}"),
                if ratio >= g { "yes" } else { "NO" }.to_string(),
            ),
            None => ("-".to_string(), "-".to_string()),
        };
        println!(
            "{:<30} {:>12.0} {:>8.2} {:>9} {:>11.1} {:>8.0} {:>11.0} {:>8} {:>5}",
            phase.label,
            eps,
            v["secs"].as_f64().unwrap_or(0.0),
            format!("{ratio:.2}"),
            mb(v["disk_bytes"].as_u64().unwrap_or(0)),
            kb_to_mb(v["peak_rss_kb"].as_u64().unwrap_or(0)),
            kb_to_mb(v["rss_before_kb"].as_u64().unwrap_or(0)),
            goal,
            met
        );
    }
    println!(
        "(ratio = events/s / CEILING events/s; MB = 10^6 bytes; RSS in MB from VmHWM / VmRSS of the phase's own process; \
         \"RSS at t0\" is resident memory when timing started, including the fixture held in memory by CEILING and STORE)"
    );
    if let Some((_, v)) = results.iter().find(|(p, _)| p.name == "stream") {
        println!(
            "stream: publisher store {:.1} MB on disk; subscriber store {:.1} MB on disk (the MB column); first event after {:.0} ms",
            mb(v["publisher_disk_bytes"].as_u64().unwrap_or(0)),
            mb(v["disk_bytes"].as_u64().unwrap_or(0)),
            v["first_event_ms"].as_f64().unwrap_or(0.0)
        );
    }
}

fn mb(bytes: u64) -> f64 {
    bytes as f64 / 1e6
}

fn kb_to_mb(kb: u64) -> f64 {
    kb as f64 * 1024.0 / 1e6
}

// ---------------------------------------------------------------------------------------------
// Fixture.
// ---------------------------------------------------------------------------------------------

/// The fixture's seed.
const SEED: u64 = 0x6d63_7073_6f63_2131;

/// The payload of event number `i` (0-based) and its mix bucket: ~0.8% session changes, ~0.8%
/// alerts (one rule, over 300 alert ids whose status moves new -> ack -> resolved), ~0.4% tool
/// changes, the rest tool calls; users `u00@acme.io`..`u49@acme.io`.
fn payload(f: &mut Fixture, i: u64) -> (EventData, usize) {
    let roll = f.rng.below(1000);
    let who = f.who("@acme.io");
    match roll {
        0..=7 => (f.session(i, who), 1),
        8..=15 => {
            let id = f.rng.below(300);
            (f.alert(i, id, RULES[0], who), 2)
        }
        16..=19 => (f.tool_change(), 3),
        _ => (f.tool_call(i, who), 0),
    }
}

/// Writes `n` events, one JSON per line; returns their total bytes and the mix counts.
fn write_fixture(path: &Path, n: u64) -> BenchResult<(u64, [u64; 4])> {
    let mut out = BufWriter::with_capacity(1 << 20, std::fs::File::create(path)?);
    let start = Utc
        .with_ymd_and_hms(2026, 3, 1, 8, 0, 0)
        .single()
        .unwrap_or_else(Utc::now);
    let mut fixture = Fixture::new(SOURCE, SEED, start, payload);
    let mut bytes = 0u64;
    let mut mix = [0u64; 4];
    for seq in 1..=n {
        let (json, bucket) = fixture.event(seq);
        debug_assert!(!json.contains('\n'));
        bytes += json.len() as u64;
        mix[bucket] += 1;
        out.write_all(json.as_bytes())?;
        out.write_all(b"\n")?;
    }
    out.flush()?;
    Ok((bytes, mix))
}

/// Reads the fixture: one string holding every event, and each event's line within it.
fn read_fixture(dir: &Path, n: u64) -> BenchResult<String> {
    let text = std::fs::read_to_string(dir.join(FIXTURE))?;
    let lines = text.lines().count() as u64;
    if lines != n {
        return Err(format!("fixture has {lines} events, expected {n}").into());
    }
    Ok(text)
}

// ---------------------------------------------------------------------------------------------
// Children: one phase each.
// ---------------------------------------------------------------------------------------------

fn run_child(phase: &str) -> BenchResult<()> {
    let n = event_count()?;
    let dir = PathBuf::from(
        std::env::var_os("MCPSOC_BENCH_DIR").ok_or("MCPSOC_BENCH_DIR is not set for the child")?,
    );
    let report = match phase {
        "ceiling" => phase_ceiling(&dir, n)?,
        "store" => phase_store(&dir, n)?,
        "stream" => phase_stream(&dir, n)?,
        other => return Err(format!("unknown phase {other:?}").into()),
    };
    println!("{report}");
    Ok(())
}

fn report(phase: &str, n: u64, elapsed: Duration, disk_bytes: u64, rss_before_kb: u64) -> Value {
    let secs = elapsed.as_secs_f64();
    let (peak_rss_kb, rss_kb) = memory_kb();
    json!({
        "phase": phase,
        "events": n,
        "secs": secs,
        "events_per_sec": n as f64 / secs,
        "disk_bytes": disk_bytes,
        "peak_rss_kb": peak_rss_kb,
        "rss_end_kb": rss_kb,
        "rss_before_kb": rss_before_kb,
    })
}

/// Raw sled: the same bytes, keys big-endian u64, `apply_batch` of 1,000, flush at the end.
fn phase_ceiling(dir: &Path, n: u64) -> BenchResult<Value> {
    let text = read_fixture(dir, n)?;
    let events: Vec<&str> = text.lines().collect();
    let path = dir.join("ceiling");
    let db = sled::Config::new()
        .path(&path)
        .cache_capacity(CACHE_BYTES)
        .open()?;
    let tree = db.open_tree("events")?;
    let (_, rss_before_kb) = memory_kb();

    let started = Instant::now();
    let mut seq = 0u64;
    for chunk in events.chunks(BATCH) {
        let mut batch = sled::Batch::default();
        for event in chunk {
            seq += 1;
            batch.insert(&seq.to_be_bytes(), event.as_bytes());
        }
        tree.apply_batch(batch)?;
    }
    db.flush()?;
    let elapsed = started.elapsed();

    if tree.len() as u64 != n {
        return Err(format!("ceiling tree holds {} events, expected {n}", tree.len()).into());
    }
    drop(tree);
    drop(db);
    Ok(report(
        "ceiling",
        n,
        elapsed,
        dir_bytes(&path),
        rss_before_kb,
    ))
}

/// `Store::ingest` in batches of 1,000, every index built, flush at the end.
fn phase_store(dir: &Path, n: u64) -> BenchResult<Value> {
    let text = read_fixture(dir, n)?;
    let events: Vec<&str> = text.lines().collect();
    let path = dir.join("store");
    let store = Store::open(&path, &StoreOptions::default())?;
    let (_, rss_before_kb) = memory_kb();

    let started = Instant::now();
    let mut last_report = Instant::now();
    for (i, chunk) in events.chunks(BATCH).enumerate() {
        let report = store.ingest(chunk)?;
        if report.stored != chunk.len() {
            return Err(
                format!("ingest stored {} of {} events", report.stored, chunk.len()).into(),
            );
        }
        if last_report.elapsed() >= Duration::from_secs(5) {
            last_report = Instant::now();
            let done = ((i + 1) * BATCH) as f64;
            eprintln!(
                "  store: {done:.0} events, {:.0} events/s so far",
                done / started.elapsed().as_secs_f64()
            );
        }
    }
    store.flush()?;
    let elapsed = started.elapsed();

    if store.last_sequence(SOURCE) != n || store.count() != n {
        return Err(format!(
            "store holds {} events up to sequence {}, expected {n}",
            store.count(),
            store.last_sequence(SOURCE)
        )
        .into());
    }
    drop(store);
    Ok(report("store", n, elapsed, dir_bytes(&path), rss_before_kb))
}

/// A publisher over the store of the `store` phase, a subscriber into a fresh store, over
/// loopback WebSocket; timed from spawn until the subscriber has stored the last event.
///
/// Publisher and subscriber run on a multi-thread tokio runtime; the progress poll runs on this
/// (main) thread, outside the runtime, so that it never takes a worker from them
/// (`Store::last_sequence` reads the position of the last applied batch without waiting for
/// the writer).
fn phase_stream(dir: &Path, n: u64) -> BenchResult<Value> {
    let publisher_path = dir.join("store");
    let subscriber_path = dir.join("subscriber");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;

    let opened = Instant::now();
    let publisher_store = Store::open(&publisher_path, &StoreOptions::default())?;
    if publisher_store.last_sequence(SOURCE) != n {
        return Err(format!(
            "the publisher store at {} holds up to sequence {}, expected {n} (run the store phase first)",
            publisher_path.display(),
            publisher_store.last_sequence(SOURCE)
        )
        .into());
    }
    eprintln!(
        "  stream: publisher store re-opened in {:.1} s",
        opened.elapsed().as_secs_f64()
    );
    let subscriber_store = Store::open(&subscriber_path, &StoreOptions::default())?;

    let mut sha = [0u8; 32];
    sha.copy_from_slice(&hex::decode(hash_token(TOKEN))?);
    let tokens = TokenTable::new(vec![StreamGrant {
        name: "bench".into(),
        role: Role::Viewer,
        token_sha256: sha,
    }]);
    let mut options = PublisherOptions::new(SOURCE, tokens);
    options.heartbeat = None;
    let (publisher, _) = Publisher::new(publisher_store.clone(), options, false);
    let (addr, accept) = runtime.block_on(publisher.serve("127.0.0.1:0"))?;
    let spec = SourceSpec {
        name: "bench".into(),
        url: format!("ws://{addr}/stream"),
        token: TOKEN.into(),
        ca_file: None,
        pin_sha256: None,
    };
    let (_, rss_before_kb) = memory_kb();

    let started = Instant::now();
    let subscriber = {
        let _context = runtime.enter();
        Subscriber::spawn(spec, subscriber_store.clone(), Default::default())
    };
    let status = subscriber.status();
    let mut first_event: Option<Duration> = None;
    let mut last_report = Instant::now();
    loop {
        let stored = subscriber_store.last_sequence(SOURCE);
        if stored > 0 && first_event.is_none() {
            first_event = Some(started.elapsed());
        }
        if stored >= n {
            break;
        }
        let state = status.borrow().state.clone();
        if let LinkState::Refused { reason, .. } = state {
            return Err(format!("the publisher refused the subscriber: {reason}").into());
        }
        if started.elapsed() > Duration::from_secs(1800) {
            return Err(format!("timed out with {stored} of {n} events stored").into());
        }
        if last_report.elapsed() >= Duration::from_secs(5) {
            last_report = Instant::now();
            eprintln!(
                "  stream: {stored} events, {:.0} events/s so far ({})",
                stored as f64 / started.elapsed().as_secs_f64(),
                status.borrow().state.label()
            );
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let elapsed = started.elapsed();
    std::thread::sleep(Duration::from_millis(200));
    {
        let s = status.borrow();
        eprintln!(
            "  stream: subscriber status 200 ms after the store had every event: stored {}, ingested {}, head {}, {}",
            s.stored,
            s.ingested,
            s.head,
            s.state.label()
        );
    }

    {
        let _context = runtime.enter();
        subscriber.stop();
        accept.abort();
    }
    runtime.shutdown_timeout(Duration::from_secs(5));
    subscriber_store.flush()?;
    if subscriber_store.count() != n {
        return Err(format!(
            "the subscriber store holds {} events, expected {n}",
            subscriber_store.count()
        )
        .into());
    }
    let mut value = report(
        "stream",
        n,
        elapsed,
        dir_bytes(&subscriber_path),
        rss_before_kb,
    );
    value["publisher_disk_bytes"] = json!(dir_bytes(&publisher_path));
    value["first_event_ms"] = json!(first_event.unwrap_or(elapsed).as_secs_f64() * 1000.0);
    Ok(value)
}
