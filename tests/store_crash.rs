//! SIGKILL crash test of the store.
//!
//! The parent test re-executes this test binary as a child that runs only
//! [`crash_writer_child`] with `MCPSOC_CRASH_WRITER=<dir>` set. The child ingests a deterministic
//! stream in batches, flushing after each and printing `acked <last seq>`. The parent kills it
//! with SIGKILL after a varying number of acknowledgements, reopens the store and checks that
//! nothing acknowledged was lost, nothing is half-written, the indexes agree with the events,
//! and ingest resumes without gaps or doubles. Many cycles run on the same directory, each child
//! continuing from where the store is. Set `MCPSOC_CRASH_SEED` to replay a run's kill points.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{SystemTime, UNIX_EPOCH};

use common::consistency::{check_raw, check_store};
use common::events::mixed_events;
use mcpsoc::store::{IngestReport, Store, StoreOptions};

/// Set in the child's environment: the store directory to write.
const WRITER_ENV: &str = "MCPSOC_CRASH_WRITER";
/// Optional: the seed of the kill points.
const SEED_ENV: &str = "MCPSOC_CRASH_SEED";
/// Name of the child test function.
const CHILD: &str = "crash_writer_child";
/// Source of the stream.
const SOURCE: &str = "gw";
/// Events in the whole stream.
const TOTAL: u64 = 3000;
/// Kill cycles.
const CYCLES: usize = 20;

/// Set in the child's environment: sled's background flush interval for this cycle.
const FLUSH_ENV: &str = "MCPSOC_CRASH_FLUSH_MS";

/// Store options; `flush_every_ms` varies by cycle: long (only the explicit flush after each
/// batch makes anything durable) or 1 ms (sled's flusher runs concurrently with ingest, so
/// kills also land in the middle of background flushes).
fn options(flush_every_ms: u64) -> StoreOptions {
    StoreOptions {
        cache_bytes: 8 * 1024 * 1024,
        flush_every_ms,
    }
}

/// Deterministic batch size for a batch starting at `start`: 1 to 23 events.
fn batch_size(start: u64) -> u64 {
    1 + (start * 7 + 3) % 23
}

/// The writer. Does nothing unless started by the parent with [`WRITER_ENV`] set.
#[test]
fn crash_writer_child() {
    let Some(dir) = std::env::var_os(WRITER_ENV) else {
        return;
    };
    let flush_ms = std::env::var(FLUSH_ENV)
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(10_000);
    let store = common::open_store(Path::new(&dir), &options(flush_ms));
    let last = store.last_sequence(SOURCE);
    // Start a little before the resume position: the first batch overlaps what is stored.
    let mut next = last.saturating_sub(2).max(1);
    let mut out = std::io::stdout();
    writeln!(out, "resuming after {last}").expect("stdout");
    out.flush().expect("stdout");
    while next <= TOTAL {
        let end = (next + batch_size(next) - 1).min(TOTAL);
        let report = store
            .ingest(&mixed_events(SOURCE, next..=end))
            .expect("child ingest");
        assert_eq!(
            report.stored + report.duplicates,
            (end - next + 1) as usize,
            "every event stored or skipped"
        );
        store.flush().expect("child flush");
        writeln!(out, "acked {end}").expect("stdout");
        out.flush().expect("stdout");
        next = end + 1;
    }
    writeln!(out, "complete").expect("stdout");
    out.flush().expect("stdout");
}

/// xorshift64*: reproducible kill points from a printed seed.
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

fn seed() -> u64 {
    if let Some(seed) = std::env::var(SEED_ENV).ok().and_then(|s| s.parse().ok()) {
        return seed;
    }
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(1);
    (nanos ^ (u64::from(std::process::id()) << 32)) | 1
}

/// Runs one child and kills it after `kill_after` acknowledgements (0: as soon as it has opened
/// the store, usually in its first, overlapping batch). Returns the highest acknowledged
/// sequence and whether the child ran to completion instead.
fn run_child(dir: &Path, kill_after: u64, flush_ms: u64) -> (u64, bool) {
    let exe = std::env::current_exe().expect("own test binary");
    let mut child = Command::new(exe)
        .args(["--exact", CHILD, "--nocapture", "--test-threads", "1"])
        .env(WRITER_ENV, dir)
        .env(FLUSH_ENV, flush_ms.to_string())
        .env_remove(SEED_ENV)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn the writer child");
    let stdout = child.stdout.take().expect("child stdout");
    let mut lines = BufReader::new(stdout);
    let mut acked = 0u64;
    let mut acks = 0u64;
    let mut complete = false;
    let mut killed = false;
    let mut line = String::new();
    loop {
        line.clear();
        let n = lines.read_line(&mut line).expect("read child stdout");
        if n == 0 {
            break; // the child exited
        }
        let text = line.trim();
        if let Some(seq) = text.strip_prefix("acked ") {
            let seq: u64 = seq.parse().expect("acked <seq>");
            assert!(seq > acked || acks == 0, "acks go forward");
            acked = seq;
            acks += 1;
        } else if text == "complete" {
            complete = true;
        }
        let trigger = if kill_after == 0 {
            text.contains("resuming after")
        } else {
            acks >= kill_after
        };
        if trigger && !complete {
            child.kill().expect("SIGKILL the writer");
            killed = true;
            break;
        }
    }
    let status = child.wait().expect("reap the writer");
    if !killed || complete {
        let mut err = String::new();
        if let Some(mut stderr) = child.stderr.take() {
            let _ = stderr.read_to_string(&mut err);
        }
        // Drain what the child printed after the last line we read (the `test ... ok` lines).
        let mut rest = String::new();
        let _ = lines.read_to_string(&mut rest);
        assert!(
            status.success(),
            "writer failed ({status}); stderr:\n{err}\nstdout tail:\n{rest}"
        );
        complete |= rest.lines().any(|l| l.trim() == "complete");
        for l in rest.lines() {
            if let Some(seq) = l.trim().strip_prefix("acked ") {
                acked = acked.max(seq.parse().expect("acked <seq>"));
            }
        }
    }
    (acked, complete)
}

/// After a crash: everything acknowledged is there, nothing is half there, nothing beyond the
/// resume position, every event is exactly what was sent, and the indexes agree.
fn verify_after_crash(store: &Store, acked: u64, cycle: usize) -> u64 {
    let last = store.last_sequence(SOURCE);
    assert!(
        last >= acked,
        "cycle {cycle}: acknowledged {acked} but the store resumes after {last}"
    );
    assert!(
        last <= TOTAL,
        "cycle {cycle}: resume position {last} beyond the stream"
    );
    let stored = store
        .events_after(SOURCE, 0, usize::MAX)
        .expect("events_after");
    let seqs: Vec<u64> = stored.iter().map(|e| e.sequence).collect();
    assert_eq!(
        seqs,
        (1..=last).collect::<Vec<_>>(),
        "cycle {cycle}: events 1..={last}, no hole, nothing beyond"
    );
    assert!(store.event(SOURCE, last + 1).expect("read").is_none());
    let expected = mixed_events(SOURCE, 1..=last.max(1));
    for e in &stored {
        assert_eq!(
            e.json,
            expected[(e.sequence - 1) as usize],
            "cycle {cycle}: event {} differs from what was sent",
            e.sequence
        );
    }
    assert_eq!(store.count(), last, "cycle {cycle}: count");
    let summary = check_store(store);
    assert_eq!(summary.events as u64, last);
    last
}

#[test]
fn sigkill_during_ingest_loses_nothing_acknowledged_and_leaves_indexes_consistent() {
    if std::env::var_os(WRITER_ENV).is_some() {
        return; // running as a child of another run
    }
    let seed = seed();
    println!("crash test seed {seed} (set {SEED_ENV}={seed} to replay the kill points)");
    let mut rng = Rng(seed);
    let dir = tempfile::tempdir().expect("temp dir");
    let mut kills = 0;
    let mut completions = 0;
    let mut progress = Vec::new();
    for cycle in 0..CYCLES {
        // Mostly a few acks in, sometimes right at start-up.
        let kill_after = match rng.below(10) {
            0 => 0,
            _ => 1 + rng.below(12),
        };
        let flush_ms = if rng.below(2) == 0 { 1 } else { 10_000 };
        let (acked, complete) = run_child(dir.path(), kill_after, flush_ms);
        if complete {
            completions += 1;
        } else {
            kills += 1;
        }
        let store = common::open_store(dir.path(), &options(500));
        let last = verify_after_crash(&store, acked, cycle);
        progress.push((kill_after, flush_ms, acked, last));

        // The parent resumes too, with an overlapping batch: stored once, duplicates counted.
        if last < TOTAL {
            let start = last.saturating_sub(4).max(1);
            let end = (last + 3).min(TOTAL);
            let report = store
                .ingest(&mixed_events(SOURCE, start..=end))
                .expect("parent resumes");
            assert_eq!(
                report,
                IngestReport {
                    stored: (end - last) as usize,
                    duplicates: (last + 1 - start) as usize,
                },
                "cycle {cycle}: overlapping resume after {last}"
            );
            assert_eq!(store.count(), end, "cycle {cycle}: no doubling");
            assert_eq!(store.last_sequence(SOURCE), end);
        }
        store.flush().expect("flush");
        drop(store);
        check_raw(dir.path());
    }
    println!("kill points (kill_after, flush_ms, acked, recovered last): {progress:?}");
    assert!(
        kills >= CYCLES / 2,
        "most cycles must end in a kill: {progress:?}"
    );

    // Finish the stream, replay all of it, and check the final store.
    let store = common::open_store(dir.path(), &options(500));
    let mut next = store.last_sequence(SOURCE) + 1;
    while next <= TOTAL {
        let end = (next + 199).min(TOTAL);
        let report = store
            .ingest(&mixed_events(SOURCE, next..=end))
            .expect("finish");
        assert_eq!(report.duplicates, 0);
        next = end + 1;
    }
    let all = mixed_events(SOURCE, 1..=TOTAL);
    let report = store.ingest(&all).expect("replay everything");
    assert_eq!(
        report,
        IngestReport {
            stored: 0,
            duplicates: TOTAL as usize
        }
    );
    assert_eq!(store.count(), TOTAL);
    assert_eq!(store.last_sequence(SOURCE), TOTAL);
    let bytes: u64 = all.iter().map(|e| e.len() as u64).sum();
    assert_eq!(store.stored_bytes(), bytes);
    let summary = check_store(&store);
    assert_eq!(summary.events as u64, TOTAL, "exactly the stream, once");
    assert!(summary.alerts > 0 && summary.pending > 0 && summary.sessions > 0);
    drop(store);
    check_raw(dir.path());
    println!("{kills} kills, {completions} completions");
}
