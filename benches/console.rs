//! The console under load: frame times, start-up, filters, ingest while rendering, memory, and
//! bytes written to the terminal, against a store holding N realistic events.
//!
//! `cargo bench --bench console` builds the fixture store once (tool calls ~95% from 50 users,
//! 500 sessions and 30 tools, plus session, alert, tool-change and a few unknown-type events,
//! ingested with `Store::ingest` into sled in a temporary directory), then runs each phase in its
//! own child process (this binary re-executed with `MCPSOC_BENCH_PHASE`), so every phase opens
//! the store as the console does and its resident memory is its own:
//!
//! 1. `render`: `view::draw` into a `Terminal<TestBackend>` at 120x40, every pane, while a new
//!    snapshot is fed before every frame; then the tool calls pane with the largest window.
//! 2. `startup`: `Store::open`, `DataWorker::refresh_all`, `App` and one frame.
//! 3. `filter`: typing a filter and Enter, to the first frame of its results (`set_calls_filter_first_screen`,
//!    update, draw), for an indexed and a non-indexed filter; then the same index reads redone
//!    here with the time split into store reads, decoding and matching.
//! 4. `ceiling` and `ingest`: raw sled batch insert of a second batch of pre-built events (and
//!    `Store::ingest` of them into an empty store), then the same events streamed by a
//!    `Publisher` (loopback WebSocket) to a `Subscriber` into the console store while the UI loop
//!    renders at most ~30 fps from the real data worker; then, for comparison, the same stream
//!    (same payloads, another source) with no data worker and no frames.
//! 5. `memory`: the console's VmRSS / VmHWM after opening the store, after the first frame and
//!    after 10 s of browsing (keys through `update`, effects carried out on a `DataWorker`,
//!    `refresh_new` every 200 ms); `sled-open`: the same directory opened by sled alone. With
//!    `MCPSOC_BENCH_BIG=1` the store then grows to 5M events and both run again.
//! 6. `bytes`: the real draw loop into ratatui's `CrosstermBackend` over a counting sink (real
//!    escape sequences) for 20 s while 1,000 tool calls per second are stored.
//!
//! Environment:
//! - `MCPSOC_BENCH_EVENTS`: events in the store (default 1,000,000).
//! - `MCPSOC_BENCH_BIG=1`: also measure memory with a 5,000,000-event store (takes minutes).
//! - `MCPSOC_BENCH_DIR`: where to put the stores (default: a temporary directory, removed at the
//!   end; a given directory is left in place).

use std::io::{self, BufRead, BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use mcpsoc::auth::{Role, StreamGrant, TokenTable, hash_token};
use mcpsoc::console::app::{Action, App, Effect, Pane, update};
use mcpsoc::console::data::CallRow;
use mcpsoc::console::data::{self, DataRequest, DataWorker, Snapshot};
use mcpsoc::console::filter::{FilterKey, Query};
use mcpsoc::console::keys::KeyMap;
use mcpsoc::console::theme::Theme;
use mcpsoc::console::view;
use mcpsoc::protocol::events::EventData;
use mcpsoc::store::{Store, StoreOptions};
use mcpsoc::stream::{
    LinkState, Publisher, PublisherOptions, SourceSpec, SourceStatus, Subscriber,
};
use ratatui::Terminal;
use ratatui::backend::{Backend, ClearType, CrosstermBackend, TestBackend, WindowSize};
use ratatui::buffer::Cell;
use ratatui::layout::{Position, Size};
use serde_json::{Value, json};
use tokio::sync::watch;

#[path = "fixture/mod.rs"]
mod fixture;
use fixture::process::{dir_bytes, memory_kb, work_dir};
use fixture::{Fixture, RULES};

/// The source of the stored fixture events.
const SOURCE: &str = "bench/gw";
/// The source the ingest phase streams from.
const LIVE_SOURCE: &str = "bench/live";
/// The source the ingest phase streams from without the UI (for comparison).
const BARE_SOURCE: &str = "bench/live-bare";
/// The source of the 1,000 events/s trickle of the bytes phase.
const TRICKLE_SOURCE: &str = "bench/trickle";
/// The subscriber's token (the publisher only knows its hash).
const TOKEN: &str = "bench-token-0123456789abcdef";
/// Events per ingest batch when building stores.
const BATCH: usize = 1_000;
/// Terminal size.
const WIDTH: u16 = 120;
const HEIGHT: u16 = 40;
/// Frames per pane in the render phase.
const RENDER_FRAMES: usize = 2_000;
/// The UI loop's least time between frames (the shell's `FRAME`).
const FRAME: Duration = Duration::from_millis(33);
/// The shell's source status tick.
const STATUS_TICK: Duration = Duration::from_millis(250);
/// Memory phase: how long to browse.
const BROWSE: Duration = Duration::from_secs(10);
/// Bytes phase: how long to run and how many events per second arrive.
const BYTES_RUN: Duration = Duration::from_secs(20);
const BYTES_RATE: u64 = 1_000;
/// The big store for the second memory line.
const BIG_EVENTS: u64 = 5_000_000;
/// Frames of the tool calls pane with the largest window.
const WIDE_FRAMES: u64 = 30;
/// The filters of the filter phase: (label, text, indexed).
const FILTERS: [(&str, &str, bool); 3] = [
    ("indexed", "user:u17 decision:deny", true),
    ("non-indexed", "tool:read* error:true", false),
    ("non-indexed, common", "tool:read_file", false),
];
/// Timed runs of each filter.
const FILTER_RUNS: usize = 3;

type BenchResult<T> = Result<T, Box<dyn std::error::Error>>;

fn main() {
    // `cargo bench` passes `--bench` (and maybe filters): every argument is ignored.
    let result = match std::env::var("MCPSOC_BENCH_PHASE") {
        Ok(phase) => run_child(&phase),
        Err(_) => run_parent(),
    };
    if let Err(e) = result {
        eprintln!("console bench failed: {e}");
        std::process::exit(1);
    }
}

fn env_count(name: &str, default: u64) -> BenchResult<u64> {
    match std::env::var(name) {
        Ok(v) => {
            let n: u64 = v
                .trim()
                .replace(['_', ','], "")
                .parse()
                .map_err(|e| format!("{name} must be a positive integer, got {v:?}: {e}"))?;
            if n == 0 {
                return Err(format!("{name} must be at least 1").into());
            }
            Ok(n)
        }
        Err(_) => Ok(default),
    }
}

fn event_count() -> BenchResult<u64> {
    env_count("MCPSOC_BENCH_EVENTS", 1_000_000)
}

/// Events the ingest phase streams: a third of the store, between 20,000 and 500,000.
fn stream_count(n: u64) -> u64 {
    (n / 3).clamp(20_000, 500_000)
}

// ---------------------------------------------------------------------------------------------
// Parent: stores, children, table.
// ---------------------------------------------------------------------------------------------

fn run_parent() -> BenchResult<()> {
    let n = event_count()?;
    let m = stream_count(n);
    let big = std::env::var("MCPSOC_BENCH_BIG").is_ok_and(|v| v == "1");
    let (_temp, dir) = work_dir("mcpsoc-console-")?;
    for sub in [
        "console",
        "publisher",
        "publisher-bare",
        "ceiling",
        "ceiling-store",
    ] {
        let p = dir.join(sub);
        if p.exists() {
            std::fs::remove_dir_all(&p)?;
        }
    }
    let started = Instant::now();

    // The console's store: N events of one gateway, oldest ~16 h ago (so 5M fit before now).
    let mut fixture = Fixture::new(
        SOURCE,
        0x6d63_7073_6f63_2131,
        Utc::now() - chrono::Duration::hours(16),
        payload,
    );
    let store = Store::open(&dir.join("console"), &StoreOptions::default())?;
    let built = Instant::now();
    let (bytes, mix) = fill_store(&store, &mut fixture, 1, n)?;
    store.flush()?;
    drop(store);
    let build_secs = built.elapsed().as_secs_f64();
    eprintln!(
        "console store: {n} events ({} tool calls, {} sessions, {} alerts, {} tool changes, {} other), {:.1} MB of JSON ({:.0} B/event), built in {:.1} s ({:.0} events/s), {:.1} MB on disk",
        mix[0],
        mix[1],
        mix[2],
        mix[3],
        mix[4],
        bytes as f64 / 1e6,
        bytes as f64 / n as f64,
        build_secs,
        n as f64 / build_secs,
        dir_bytes(&dir.join("console")) as f64 / 1e6
    );

    // The events the ingest phase streams: a publisher store, and the same bytes for raw sled;
    // and the same payloads under another source, streamed without the UI for comparison.
    build_publisher(
        dir.join("publisher"),
        LIVE_SOURCE,
        m,
        Some(&dir.join("stream.jsonl")),
    )?;
    build_publisher(dir.join("publisher-bare"), BARE_SOURCE, m, None)?;
    eprintln!(
        "publisher stores: {m} events of {LIVE_SOURCE} and of {BARE_SOURCE} ({:.1} s so far)",
        started.elapsed().as_secs_f64()
    );

    let exe = std::env::current_exe()?;
    let child = |phase: &str, label: &str| -> BenchResult<Value> {
        eprintln!("--- phase {phase} {label}---");
        let output = Command::new(&exe)
            .env("MCPSOC_BENCH_PHASE", phase)
            .env(
                "MCPSOC_BENCH_UI",
                if label.contains("no UI") { "0" } else { "1" },
            )
            .env("MCPSOC_BENCH_DIR", &dir)
            .env("MCPSOC_BENCH_EVENTS", n.to_string())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .output()?;
        let stdout = String::from_utf8_lossy(&output.stdout);
        if !output.status.success() {
            return Err(format!(
                "phase {phase} failed ({}); its stdout: {stdout}",
                output.status
            )
            .into());
        }
        let line = stdout
            .lines()
            .rev()
            .find(|l| l.trim_start().starts_with('{'))
            .ok_or_else(|| format!("phase {phase} printed no JSON line: {stdout}"))?;
        eprintln!("{}", line.trim());
        Ok(serde_json::from_str(line)?)
    };

    let render = child("render", "")?;
    let startup = child("startup", "")?;
    let filter = child("filter", "")?;
    let memory = child("memory", "")?;
    let sled_open = child("sled-open", "")?;
    let ceiling = child("ceiling", "")?;
    let _ = std::fs::remove_dir_all(dir.join("ceiling"));
    let ingest = child("ingest", "")?;
    let ingest_bare = child("ingest", "(no UI) ")?;
    let bytes_out = child("bytes", "")?;
    let memory_big = if big && n < BIG_EVENTS {
        let store = Store::open(&dir.join("console"), &StoreOptions::default())?;
        let grown = Instant::now();
        eprintln!(
            "growing the console store from {} to {} events of {SOURCE} ...",
            n, BIG_EVENTS
        );
        fill_store(&store, &mut fixture, n + 1, BIG_EVENTS)?;
        store.flush()?;
        eprintln!(
            "grown in {:.1} s; the store holds {} events",
            grown.elapsed().as_secs_f64(),
            store.count()
        );
        drop(store);
        Some((
            child("memory", "(big store) ")?,
            child("sled-open", "(big store) ")?,
        ))
    } else {
        None
    };

    let results = Results {
        n,
        m,
        big,
        render,
        startup,
        filter,
        memory,
        sled_open,
        memory_big,
        ceiling,
        ingest,
        ingest_bare,
        bytes: bytes_out,
    };
    print_table(&results);
    println!(
        "command: MCPSOC_BENCH_EVENTS={n}{} cargo bench --bench console   (total {:.0} s, store build {:.0} s, {} cores, dir {})",
        if big { " MCPSOC_BENCH_BIG=1" } else { "" },
        started.elapsed().as_secs_f64(),
        build_secs,
        std::thread::available_parallelism()
            .map(|p| p.get())
            .unwrap_or(1),
        dir.display()
    );
    Ok(())
}

/// A publisher's store of `m` realistic events of `source`, stamped from now on; optionally the
/// same events as JSON lines.
fn build_publisher(
    path: PathBuf,
    source: &'static str,
    m: u64,
    lines: Option<&Path>,
) -> BenchResult<()> {
    let mut live = Fixture::new(source, 0x6c69_7665_2121_2121, Utc::now(), payload);
    let store = Store::open(&path, &StoreOptions::default())?;
    let mut out = match lines {
        Some(p) => Some(BufWriter::new(std::fs::File::create(p)?)),
        None => None,
    };
    let mut seq = 0u64;
    while seq < m {
        let count = BATCH.min((m - seq) as usize);
        let batch: Vec<String> = (0..count)
            .map(|i| live.event(seq + 1 + i as u64).0)
            .collect();
        if let Some(out) = out.as_mut() {
            for e in &batch {
                out.write_all(e.as_bytes())?;
                out.write_all(b"\n")?;
            }
        }
        store.ingest(&batch)?;
        seq += count as u64;
    }
    if let Some(mut out) = out {
        out.flush()?;
    }
    store.flush()?;
    Ok(())
}

/// Ingests events `first..=last` of `fixture` in batches; returns JSON bytes and the mix.
fn fill_store(
    store: &Store,
    fixture: &mut Fixture,
    first: u64,
    last: u64,
) -> BenchResult<(u64, [u64; 5])> {
    let mut bytes = 0u64;
    let mut mix = [0u64; 5];
    let started = Instant::now();
    let mut report = Instant::now();
    let mut seq = first;
    while seq <= last {
        let count = BATCH.min((last - seq + 1) as usize);
        let mut batch = Vec::with_capacity(count);
        for i in 0..count as u64 {
            let (json, bucket) = fixture.event(seq + i);
            bytes += json.len() as u64;
            mix[bucket] += 1;
            batch.push(json);
        }
        let r = store.ingest(&batch)?;
        if r.stored != count {
            return Err(format!("ingest stored {} of {count} events", r.stored).into());
        }
        seq += count as u64;
        if report.elapsed() >= Duration::from_secs(10) {
            report = Instant::now();
            let done = seq - first;
            eprintln!(
                "  building: {done} events, {:.0} events/s",
                done as f64 / started.elapsed().as_secs_f64()
            );
        }
    }
    Ok((bytes, mix))
}

struct Results {
    n: u64,
    m: u64,
    big: bool,
    render: Value,
    startup: Value,
    filter: Value,
    memory: Value,
    sled_open: Value,
    memory_big: Option<(Value, Value)>,
    ceiling: Value,
    ingest: Value,
    ingest_bare: Value,
    bytes: Value,
}

struct Row {
    metric: String,
    value: String,
    goal: String,
    met: &'static str,
}

fn yes(ok: bool) -> &'static str {
    if ok { "yes" } else { "NO" }
}

/// A number of a child's report (NaN when missing).
fn f(v: &Value, path: &[&str]) -> f64 {
    let mut v = v;
    for p in path {
        v = &v[*p];
    }
    v.as_f64().unwrap_or(f64::NAN)
}

fn kb_to_mb(kb: f64) -> f64 {
    kb * 1024.0 / 1e6
}

fn print_table(r: &Results) {
    let mut rows: Vec<Row> = Vec::new();
    let n = r.n;

    // 1. Frames.
    for pane in Pane::ALL {
        let name = pane.title();
        let s = &r.render["panes"][name];
        let median = f(s, &["median_ms"]);
        rows.push(Row {
            metric: format!("frame {name}: median / p99"),
            value: format!("{median:.2} / {:.2} ms", f(s, &["p99_ms"])),
            goal: "median < 2 ms".into(),
            met: yes(median < 2.0),
        });
    }
    let wide = &r.render["calls_max_window"];
    rows.push(Row {
        metric: format!(
            "frame Tool calls, {:.0}-row window: median / p99",
            f(wide, &["rows"])
        ),
        value: format!(
            "{:.2} / {:.2} ms",
            f(wide, &["median_ms"]),
            f(wide, &["p99_ms"])
        ),
        goal: "(info)".into(),
        met: "-",
    });

    // 2. Start-up.
    let total = f(&r.startup, &["total_ms"]);
    rows.push(Row {
        metric: "start to first full frame".into(),
        value: format!(
            "{total:.0} ms (open {:.0}, refresh_all {:.0}, frame {:.1})",
            f(&r.startup, &["open_ms"]),
            f(&r.startup, &["refresh_all_ms"]),
            f(&r.startup, &["frame_ms"])
        ),
        goal: "< 300 ms".into(),
        met: yes(total < 300.0),
    });

    // 3. Filters.
    for (label, text, _) in FILTERS {
        let s = &r.filter[label];
        let median = f(s, &["median_ms"]);
        let info = label.contains("common");
        rows.push(Row {
            metric: format!("filter `{text}` to first screen ({label})"),
            value: format!(
                "{median:.0} ms (first {:.0}; worker {:.0}, frame {:.1}; {} rows{})",
                f(s, &["first_ms"]),
                f(s, &["worker_ms"]),
                f(s, &["frame_ms"]),
                s["rows"].as_u64().unwrap_or(0),
                if s["scan_capped"].as_bool().unwrap_or(false) {
                    ", scan capped"
                } else {
                    ""
                }
            ),
            goal: if info { "(info)" } else { "< 50 ms" }.into(),
            met: if info { "-" } else { yes(median < 50.0) },
        });
        let a = &s["anatomy"];
        let screen = match a["screen_ms"].as_f64() {
            Some(t) => format!(
                "first {} rows matched after {t:.0} ms / {} events",
                a["screen_rows"], a["screen_events_read"]
            ),
            None => format!("never {} rows", a["screen_rows"]),
        };
        rows.push(Row {
            metric: "  where the worker's time goes".into(),
            value: format!(
                "{} events read: store {:.0} ms, decode {:.0} ms, match {:.0} ms; {screen}",
                a["events_read"],
                f(a, &["read_ms"]),
                f(a, &["decode_ms"]),
                f(a, &["match_ms"]),
            ),
            goal: "(info)".into(),
            met: "-",
        });
    }

    // 4. Ingest while rendering.
    let raw = f(&r.ceiling, &["events_per_sec"]);
    let eps = f(&r.ingest, &["events_per_sec"]);
    let ratio = eps / raw;
    rows.push(Row {
        metric: format!("raw sled batch insert ({} events)", r.m),
        value: format!("{raw:.0} events/s"),
        goal: "-".into(),
        met: "-",
    });
    let alone = f(&r.ceiling, &["store_events_per_sec"]);
    rows.push(Row {
        metric: "  Store::ingest alone, same events, empty store".into(),
        value: format!("{alone:.0} events/s = {:.3} of raw sled", alone / raw),
        goal: "(info)".into(),
        met: "-",
    });
    rows.push(Row {
        metric: "ingest via Publisher -> Subscriber while rendering".into(),
        value: format!("{eps:.0} events/s = {ratio:.3} of raw sled"),
        goal: ">= 0.4 of raw".into(),
        met: yes(ratio >= 0.4),
    });
    let bare = f(&r.ingest_bare, &["events_per_sec"]);
    rows.push(Row {
        metric: "  same stream without the UI (no data worker, no frames)".into(),
        value: format!("{bare:.0} events/s = {:.3} of raw sled", bare / raw),
        goal: "(info)".into(),
        met: "-",
    });
    let p99 = f(&r.ingest, &["frames", "p99_ms"]);
    rows.push(Row {
        metric: "UI work per frame during ingest: median / p99 / max".into(),
        value: format!(
            "{:.2} / {p99:.2} / {:.1} ms ({:.0} frames, {:.1} fps)",
            f(&r.ingest, &["frames", "median_ms"]),
            f(&r.ingest, &["frames", "max_ms"]),
            f(&r.ingest, &["frames", "count"]),
            f(&r.ingest, &["fps"])
        ),
        goal: "p99 < 33 ms".into(),
        met: yes(p99 < 33.0),
    });
    rows.push(Row {
        metric: "  of which update / draw: median / p99".into(),
        value: format!(
            "{:.2} / {:.2} ms, {:.2} / {:.2} ms; in frames the UI thread ran {:.0} ms, waited {:.0} ms for a CPU",
            f(&r.ingest, &["updates", "median_ms"]),
            f(&r.ingest, &["updates", "p99_ms"]),
            f(&r.ingest, &["draws", "median_ms"]),
            f(&r.ingest, &["draws", "p99_ms"]),
            f(&r.ingest, &["frames_cpu_ms"]),
            f(&r.ingest, &["frames_runqueue_ms"]),
        ),
        goal: "(info)".into(),
        met: "-",
    });
    let refreshes = f(&r.ingest, &["refresh", "count"]);
    rows.push(Row {
        metric: "data worker refresh during ingest: median / p99".into(),
        value: if refreshes > 0.0 {
            format!(
                "{:.0} / {:.0} ms ({refreshes:.0} snapshots)",
                f(&r.ingest, &["refresh", "median_ms"]),
                f(&r.ingest, &["refresh", "p99_ms"]),
            )
        } else {
            "no snapshot arrived while streaming".into()
        },
        goal: "(info)".into(),
        met: "-",
    });

    // 5. Memory.
    let mem_row = |label: String, v: &Value| {
        let peak = kb_to_mb(f(v, &["after_browse", "hwm_kb"]));
        Row {
            metric: format!("console memory, {label}: open / first frame / 10 s browsing"),
            value: format!(
                "RSS {:.0} / {:.0} / {:.0} MB, peak {:.0} MB (window {} rows; open {:.0} ms, first frame after {:.0} ms)",
                kb_to_mb(f(v, &["after_open", "rss_kb"])),
                kb_to_mb(f(v, &["first_frame", "rss_kb"])),
                kb_to_mb(f(v, &["after_browse", "rss_kb"])),
                peak,
                v["window_rows"].as_u64().unwrap_or(0),
                f(v, &["open_ms"]),
                f(v, &["first_frame_ms"])
            ),
            goal: "peak < 150 MB".into(),
            met: yes(peak < 150.0),
        }
    };
    let sled_row = |label: String, v: &Value| Row {
        metric: format!("  sled alone, {label}: open"),
        value: format!(
            "RSS {:.0} MB after open ({:.0} MB before), {:.0} ms",
            kb_to_mb(f(v, &["after_open", "rss_kb"])),
            kb_to_mb(f(v, &["before", "rss_kb"])),
            f(v, &["open_ms"])
        ),
        goal: "(info)".into(),
        met: "-",
    };
    rows.push(mem_row(format!("{} events", r.memory["stored"]), &r.memory));
    rows.push(sled_row(
        format!("{} events", r.memory["stored"]),
        &r.sled_open,
    ));
    match &r.memory_big {
        Some((v, sled)) => {
            rows.push(mem_row(format!("{} events", v["stored"]), v));
            rows.push(sled_row(format!("{} events", v["stored"]), sled));
            let small = f(&r.memory, &["after_browse", "hwm_kb"]);
            let large = f(v, &["after_browse", "hwm_kb"]);
            rows.push(Row {
                metric: "memory flat as the store grows (peak big / peak small)".into(),
                value: format!("{:.2}x", large / small),
                goal: "<= 1.10x".into(),
                met: yes(large <= small * 1.10),
            });
        }
        None => rows.push(Row {
            metric: format!("console memory, {BIG_EVENTS} events"),
            value: if r.big {
                format!("skipped (the store already holds {n})")
            } else {
                "skipped (set MCPSOC_BENCH_BIG=1)".into()
            },
            goal: "peak < 150 MB, flat".into(),
            met: "-",
        }),
    }

    // 6. Terminal bytes.
    let bps = f(&r.bytes, &["bytes_per_sec"]);
    rows.push(Row {
        metric: format!("terminal bytes/s at {BYTES_RATE} events/s, calls pane"),
        value: format!(
            "{:.1} KB/s ({:.0} frames/s, {:.0} B/frame; first frame {:.0} B)",
            bps / 1000.0,
            f(&r.bytes, &["frames_per_sec"]),
            f(&r.bytes, &["bytes_per_frame"]),
            f(&r.bytes, &["first_frame_bytes"])
        ),
        goal: "< 15 KB/s".into(),
        met: yes(bps < 15_000.0),
    });

    let w0 = rows.iter().map(|r| r.metric.len()).max().unwrap_or(10);
    let w1 = rows
        .iter()
        .map(|r| r.value.chars().count())
        .max()
        .unwrap_or(10);
    let w2 = rows.iter().map(|r| r.goal.len()).max().unwrap_or(4);
    println!();
    println!(
        "mcpsoc console: {n} events stored (+{} streamed by each ingest phase, +{} by the bytes phase), {WIDTH}x{HEIGHT}",
        r.m,
        r.bytes["events"].as_u64().unwrap_or(0)
    );
    let header = format!("{:<w0$}  {:<w1$}  {:<w2$}  met", "metric", "value", "goal");
    println!("{header}");
    println!("{}", "-".repeat(header.chars().count()));
    for row in &rows {
        println!(
            "{:<w0$}  {:<w1$}  {:<w2$}  {}",
            row.metric, row.value, row.goal, row.met
        );
    }
    println!(
        "(ms = wall time on this machine; frames drawn into a TestBackend except the bytes line, which counts the escape sequences CrosstermBackend writes; MB and KB = 10^6 and 10^3 bytes; memory from VmRSS / VmHWM of the phase's own process)"
    );
}

// ---------------------------------------------------------------------------------------------
// Fixture.
// ---------------------------------------------------------------------------------------------

/// The payload of event number `i` (0-based) and its mix bucket: 0 tool call, 1 session, 2 alert,
/// 3 tool change, 4 unknown type. Users `u00`..`u49`.
fn payload(f: &mut Fixture, i: u64) -> (EventData, usize) {
    match f.rng.below(1000) {
        // 2% session changes.
        0..=19 => {
            let who = f.who("");
            (f.session(i, who), 1)
        }
        // 1.5% alerts, over 300 alert ids.
        20..=34 => {
            let id = f.rng.below(300);
            let who = f.who("");
            (f.alert(i, id, RULES[(id % 4) as usize], who), 2)
        }
        // 1% tool changes.
        35..=44 => (f.tool_change(), 3),
        // 0.2% events of a type this build does not know (the Other pane).
        45..=46 => {
            let user = f.who("").user;
            let data = EventData::Unknown {
                kind: "acme.dlp_finding.v1".into(),
                data: json!({"user": user, "finding": f.words(3), "score": f.rng.below(100)}),
            };
            (data, 4)
        }
        _ => {
            let who = f.who("");
            (f.tool_call(i, who), 0)
        }
    }
}

/// A tool call stamped `time`.
fn call_at(f: &mut Fixture, sequence: u64, time: DateTime<Utc>) -> String {
    let who = f.who("");
    let data = f.tool_call(sequence - 1, who);
    f.envelope(sequence, time, &data)
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
        "render" => phase_render(&dir)?,
        "startup" => phase_startup(&dir)?,
        "filter" => phase_filter(&dir)?,
        "memory" => phase_memory(&dir)?,
        "sled-open" => phase_sled_open(&dir)?,
        "ceiling" => phase_ceiling(&dir, stream_count(n))?,
        "ingest" => {
            let ui = std::env::var("MCPSOC_BENCH_UI").map_or(true, |v| v != "0");
            phase_ingest(&dir, stream_count(n), ui)?
        }
        "bytes" => phase_bytes(&dir)?,
        other => return Err(format!("unknown phase {other:?}").into()),
    };
    println!("{report}");
    Ok(())
}

fn memory_json() -> Value {
    let (hwm, rss) = memory_kb();
    json!({"hwm_kb": hwm, "rss_kb": rss})
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// Median, p99 and max of durations, in ms.
fn stats(samples: &[Duration]) -> Value {
    if samples.is_empty() {
        return json!({"count": 0});
    }
    let mut v = samples.to_vec();
    v.sort();
    let p99 = v[((v.len() * 99).div_ceil(100)).saturating_sub(1)];
    json!({
        "count": v.len(),
        "median_ms": ms(v[v.len() / 2]),
        "p99_ms": ms(p99),
        "max_ms": ms(v[v.len() - 1]),
        "mean_ms": ms(v.iter().sum::<Duration>()) / v.len() as f64,
    })
}

fn open_console_store(dir: &Path) -> BenchResult<Store> {
    Ok(Store::open(&dir.join("console"), &StoreOptions::default())?)
}

/// A fresh console state as `console::run` makes it (dark theme, default keys).
fn new_app() -> App {
    let mut app = App::new(
        Theme::builtin("dark").unwrap_or_default(),
        "dark".into(),
        KeyMap::default(),
        false,
        false,
        true,
    );
    update(&mut app, Action::Resize(WIDTH, HEIGHT));
    app
}

/// A live source status as a subscriber reports it.
fn live_status(name: &str, source: &str, stored: u64, ingested: u64) -> SourceStatus {
    SourceStatus {
        name: name.into(),
        state: LinkState::Live,
        source: Some(source.into()),
        role: Some(Role::Responder),
        head: stored,
        stored,
        ingested,
        last_event: Some(Instant::now()),
    }
}

fn test_terminal() -> BenchResult<Terminal<TestBackend>> {
    Ok(Terminal::new(TestBackend::new(WIDTH, HEIGHT))?)
}

fn draw<B: Backend>(terminal: &mut Terminal<B>, app: &App) -> BenchResult<Duration>
where
    B::Error: 'static,
{
    let t = Instant::now();
    terminal.draw(|frame| view::draw(frame, app))?;
    Ok(t.elapsed())
}

fn key(code: KeyCode) -> Action {
    Action::Key(KeyEvent::new(code, KeyModifiers::NONE))
}

fn type_text(app: &mut App, text: &str) {
    for c in text.chars() {
        update(app, key(KeyCode::Char(c)));
    }
}

/// Carries out the data effects of an update on a worker in this thread; returns whether a
/// snapshot was applied.
fn carry_out(app: &mut App, worker: &mut DataWorker, effects: Vec<Effect>) -> bool {
    let mut applied = false;
    for effect in effects {
        let snapshot = match effect {
            Effect::CallsFilter(query) => worker.set_calls_filter(query),
            Effect::LoadOlder => worker.load_older(),
            _ => continue,
        };
        update(app, Action::Snapshot(Arc::new(snapshot)));
        applied = true;
    }
    applied
}

/// `view::draw` for every pane while a different snapshot arrives before every frame, then the
/// tool calls pane with the largest window the worker keeps.
fn phase_render(dir: &Path) -> BenchResult<Value> {
    let store = open_console_store(dir)?;
    let mut worker = DataWorker::new(store.clone());
    let base = worker.refresh_all();
    let mut app = new_app();
    update(
        &mut app,
        Action::Sources(
            vec![live_status("gateway", SOURCE, base.stored_events, 0)],
            Instant::now(),
        ),
    );
    // Snapshots that differ from each other: rows rotated, as when new rows push old ones down.
    let variants: Vec<Arc<Snapshot>> = (0..16)
        .map(|i| {
            let mut s = base.clone();
            let rotate = |len: usize| if len == 0 { 0 } else { (i * 7) % len };
            let k = rotate(s.calls.len());
            s.calls.rotate_left(k);
            let k = rotate(s.alerts.len());
            s.alerts.rotate_left(k);
            let k = rotate(s.sessions.len());
            s.sessions.rotate_left(k);
            s.generation += i as u64;
            Arc::new(s)
        })
        .collect();
    eprintln!(
        "  render: {} calls, {} alerts, {} sessions, {} pending changes, {} other rows in the snapshot",
        base.calls.len(),
        base.alerts.len(),
        base.sessions.len(),
        base.changes.len(),
        base.other.len()
    );
    let mut terminal = test_terminal()?;
    let mut panes = serde_json::Map::new();
    let mut all = Vec::new();
    let mut updates = Vec::new();
    for pane in Pane::ALL {
        app.pane = pane;
        for i in 0..20 {
            update(
                &mut app,
                Action::Snapshot(variants[i % variants.len()].clone()),
            );
            draw(&mut terminal, &app)?;
        }
        let mut times = Vec::with_capacity(RENDER_FRAMES);
        for i in 0..RENDER_FRAMES {
            let t = Instant::now();
            update(
                &mut app,
                Action::Snapshot(variants[i % variants.len()].clone()),
            );
            updates.push(t.elapsed());
            times.push(draw(&mut terminal, &app)?);
        }
        all.extend_from_slice(&times);
        panes.insert(pane.title().to_string(), stats(&times));
    }

    // The largest window: the user scrolled back until the worker holds CALL_WINDOW_MAX calls.
    let loading = Instant::now();
    let mut wide = worker.refresh_all();
    while wide.calls_more && wide.calls.len() < data::CALL_WINDOW_MAX {
        let before = wide.calls.len();
        wide = worker.load_older();
        if wide.calls.len() == before {
            break;
        }
    }
    let load_ms = ms(loading.elapsed());
    let wide = Arc::new(wide);
    app.pane = Pane::Calls;
    let mut wide_times = Vec::new();
    for i in 0..WIDE_FRAMES {
        let mut s = (*wide).clone();
        s.generation += i;
        let s = Arc::new(s);
        update(&mut app, Action::Snapshot(s));
        wide_times.push(draw(&mut terminal, &app)?);
    }
    let mut wide_stats = stats(&wide_times);
    wide_stats["rows"] = json!(wide.calls.len());
    wide_stats["load_ms"] = json!(load_ms);
    Ok(json!({
        "phase": "render",
        "stored": store.count(),
        "panes": panes,
        "all": stats(&all),
        "update": stats(&updates),
        "calls_max_window": wide_stats,
        "memory": memory_json(),
    }))
}

/// From nothing to the first full frame: open, first snapshot, state, one frame.
fn phase_startup(dir: &Path) -> BenchResult<Value> {
    let started = Instant::now();
    let store = open_console_store(dir)?;
    let opened = started.elapsed();
    let mut worker = DataWorker::new(store.clone());
    let snapshot = worker.refresh_all();
    let refreshed = started.elapsed();
    let mut app = new_app();
    update(&mut app, Action::Snapshot(Arc::new(snapshot)));
    let mut terminal = test_terminal()?;
    let before_frame = started.elapsed();
    let frame = draw(&mut terminal, &app)?;
    let total = started.elapsed();
    Ok(json!({
        "phase": "startup",
        "stored": store.count(),
        "rows": app.snapshot.calls.len(),
        "open_ms": ms(opened),
        "refresh_all_ms": ms(refreshed - opened),
        "app_ms": ms(before_frame - refreshed),
        "frame_ms": ms(frame),
        "total_ms": ms(total),
        "memory": memory_json(),
    }))
}

/// `/`, the filter text, Enter: timed from Enter to the first frame of the results.
fn phase_filter(dir: &Path) -> BenchResult<Value> {
    let store = open_console_store(dir)?;
    let mut worker = DataWorker::new(store.clone());
    let mut app = new_app();
    update(&mut app, Action::Snapshot(Arc::new(worker.refresh_all())));
    let mut terminal = test_terminal()?;
    draw(&mut terminal, &app)?;
    let mut out = serde_json::Map::new();
    for (label, text, indexed) in FILTERS {
        let parsed = Query::parse(text).map_err(|e| format!("{text}: {e}"))?;
        let mut totals = Vec::new();
        let mut workers = Vec::new();
        let mut frames = Vec::new();
        let mut rows = 0;
        let mut capped = false;
        for _ in 0..FILTER_RUNS {
            update(&mut app, key(KeyCode::Char('/')));
            type_text(&mut app, text);
            let t = Instant::now();
            let effects = update(&mut app, key(KeyCode::Enter));
            let query = effects
                .into_iter()
                .find_map(|e| match e {
                    Effect::CallsFilter(q) => Some(q),
                    _ => None,
                })
                .ok_or_else(|| format!("Enter on `{text}` asked for no calls filter"))?;
            if query != parsed {
                return Err(format!("`{text}` parsed differently by the app").into());
            }
            // The real worker answers a filter with its first screen at once (then fills the
            // window and sends again): time that first answer.
            let snapshot = worker.set_calls_filter_first_screen(query);
            let worked = t.elapsed();
            update(&mut app, Action::Snapshot(Arc::new(snapshot)));
            let frame = draw(&mut terminal, &app)?;
            totals.push(t.elapsed());
            workers.push(worked);
            frames.push(frame);
            worker.fill_window();
            rows = app.snapshot.calls.len();
            capped = app.snapshot.calls_scan_capped;
            // Esc clears the filter (back to the unfiltered window), untimed.
            let effects = update(&mut app, key(KeyCode::Esc));
            carry_out(&mut app, &mut worker, effects);
            draw(&mut terminal, &app)?;
        }
        let s = stats(&totals);
        let anatomy = filter_anatomy(&store, &parsed, app.page);
        out.insert(
            label.to_string(),
            json!({
                "text": text,
                "indexed": indexed,
                "first_ms": ms(totals[0]),
                "median_ms": s["median_ms"],
                "worker_ms": stats(&workers)["median_ms"],
                "frame_ms": stats(&frames)["median_ms"],
                "rows": rows,
                "scan_capped": capped,
                "anatomy": anatomy,
            }),
        );
        eprintln!(
            "  filter `{text}`: {:.0} ms median, {rows} rows{}",
            s["median_ms"].as_f64().unwrap_or(0.0),
            if capped { ", scan capped" } else { "" }
        );
    }
    let mut value = Value::Object(out);
    value["phase"] = json!("filter");
    value["stored"] = json!(store.count());
    Ok(value)
}

/// The worker's read of a filter (`fill_calls`: the same index, pages of 512, decode, match,
/// until a full window or the scan cap), re-done here with the time split into store reads,
/// decoding and matching, and the time at which the first screen (`screen` rows) had matched.
fn filter_anatomy(store: &Store, query: &Query, screen: usize) -> Value {
    let user = query.exact(FilterKey::User).map(str::to_string);
    let session = query.exact(FilterKey::Session).map(str::to_string);
    let started = Instant::now();
    let (mut read, mut decode, mut matching) = (Duration::ZERO, Duration::ZERO, Duration::ZERO);
    let mut before: Option<Vec<u8>> = None;
    let (mut scanned, mut rows) = (0usize, 0usize);
    let mut screen_at: Option<(Duration, usize)> = None;
    loop {
        let t = Instant::now();
        let page = 512;
        let result = match (&user, &session) {
            (Some(u), _) => store.tool_calls_by_user(u, before.as_deref(), page),
            (None, Some(s)) => store.tool_calls_by_session(s, before.as_deref(), page),
            _ => store.newest_of_type(mcpsoc::protocol::events::TOOL_CALL, before.as_deref(), page),
        };
        read += t.elapsed();
        let Ok((events, last)) = result else { break };
        scanned += events.len();
        for event in &events {
            let t = Instant::now();
            let row = CallRow::from_stored(event);
            decode += t.elapsed();
            let t = Instant::now();
            let hit = row.as_ref().is_some_and(|r| query.matches(r));
            matching += t.elapsed();
            if hit {
                rows += 1;
                if rows == screen {
                    screen_at = Some((started.elapsed(), scanned));
                }
            }
        }
        if events.len() < page
            || last.is_none()
            || rows >= data::CALL_WINDOW
            || scanned >= data::FILTER_SCAN_CAP
        {
            break;
        }
        before = last;
    }
    json!({
        "total_ms": ms(started.elapsed()),
        "read_ms": ms(read),
        "decode_ms": ms(decode),
        "match_ms": ms(matching),
        "events_read": scanned,
        "rows": rows,
        "screen_rows": screen,
        "screen_ms": screen_at.map(|(d, _)| ms(d)),
        "screen_events_read": screen_at.map(|(_, n)| n),
    })
}

/// The keys of the browsing script: move, page, scroll back (loads older calls), detail, every
/// pane, and a filter on the calls pane.
fn browse_script() -> Vec<Vec<KeyCode>> {
    use KeyCode::*;
    let mut script = vec![
        vec![Char('j')],
        vec![Char('j')],
        vec![PageDown],
        vec![PageDown],
        vec![Char('G')],
        vec![Enter],
        vec![Esc],
        vec![Char('f')],
        vec![Char('2')],
        vec![Char('j')],
        vec![PageDown],
        vec![Enter],
        vec![Esc],
        vec![Char('3')],
        vec![PageDown],
        vec![Char('G')],
        vec![Char('4')],
        vec![Char('j')],
        vec![Char('5')],
        vec![Char('1')],
    ];
    let mut filter = vec![Char('/')];
    filter.extend("user:u07".chars().map(Char));
    filter.push(Enter);
    script.push(filter);
    script.extend([
        vec![Char('G')],
        vec![Char('k')],
        vec![Esc],
        vec![Char('f')],
        vec![Tab],
        vec![Tab],
        vec![BackTab],
        vec![Char('1')],
    ]);
    script
}

/// The console's memory after its first frame and after 10 s of browsing and refreshing.
fn phase_memory(dir: &Path) -> BenchResult<Value> {
    let started = Instant::now();
    let store = open_console_store(dir)?;
    let open_ms = ms(started.elapsed());
    let after_open = memory_json();
    let stored = store.count();
    let mut worker = DataWorker::new(store.clone());
    let mut app = new_app();
    update(
        &mut app,
        Action::Sources(
            vec![live_status("gateway", SOURCE, stored, 0)],
            Instant::now(),
        ),
    );
    update(&mut app, Action::Snapshot(Arc::new(worker.refresh_all())));
    let mut terminal = test_terminal()?;
    draw(&mut terminal, &app)?;
    let first_frame_ms = ms(started.elapsed());
    let first_frame = memory_json();

    let script = browse_script();
    let started = Instant::now();
    let mut next_refresh = Instant::now();
    let mut next_key = Instant::now();
    let mut step = 0usize;
    let mut frames = 0u64;
    while started.elapsed() < BROWSE {
        let mut dirty = false;
        if Instant::now() >= next_key {
            next_key += Duration::from_millis(100);
            for code in &script[step % script.len()] {
                let effects = update(&mut app, key(*code));
                carry_out(&mut app, &mut worker, effects);
            }
            step += 1;
            dirty = true;
        }
        if Instant::now() >= next_refresh {
            next_refresh += data::REFRESH_INTERVAL;
            if let Some(s) = worker.refresh_new() {
                update(&mut app, Action::Snapshot(Arc::new(s)));
            }
        }
        if dirty {
            draw(&mut terminal, &app)?;
            frames += 1;
        }
        std::thread::sleep(FRAME);
    }
    Ok(json!({
        "phase": "memory",
        "stored": stored,
        "open_ms": open_ms,
        "first_frame_ms": first_frame_ms,
        "after_open": after_open,
        "first_frame": first_frame,
        "after_browse": memory_json(),
        "keys": step,
        "frames": frames,
        "window_rows": app.snapshot.calls.len(),
    }))
}

/// The console store's directory opened with sled alone (the configuration `Store::open` uses),
/// no `Store`: what sled itself holds in memory and takes to open.
fn phase_sled_open(dir: &Path) -> BenchResult<Value> {
    let options = StoreOptions::default();
    let before = memory_json();
    let started = Instant::now();
    let db = sled::Config::new()
        .path(dir.join("console"))
        .cache_capacity(options.cache_bytes)
        .flush_every_ms(Some(options.flush_every_ms))
        .mode(sled::Mode::HighThroughput)
        .open()?;
    let tree = db.open_tree("events")?;
    let elapsed = started.elapsed();
    let first = tree.first()?.is_some();
    Ok(json!({
        "phase": "sled-open",
        "open_ms": ms(elapsed),
        "before": before,
        "after_open": memory_json(),
        "nonempty": first,
    }))
}

/// Raw sled: the stream's bytes, keys big-endian u64, `apply_batch` of 1,000, flush at the end.
fn phase_ceiling(dir: &Path, m: u64) -> BenchResult<Value> {
    let file = BufReader::new(std::fs::File::open(dir.join("stream.jsonl"))?);
    let events: Vec<String> = file.lines().collect::<Result<_, _>>()?;
    if events.len() as u64 != m {
        return Err(format!("stream.jsonl holds {} events, expected {m}", events.len()).into());
    }
    let path = dir.join("ceiling");
    let db = sled::Config::new()
        .path(&path)
        .cache_capacity(StoreOptions::default().cache_bytes)
        .open()?;
    let tree = db.open_tree("events")?;
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
    drop(tree);
    drop(db);

    // The same events through `Store::ingest` alone (every index), into an empty store: what
    // the store costs before any stream or UI.
    let path = dir.join("ceiling-store");
    let store = Store::open(&path, &StoreOptions::default())?;
    let started = Instant::now();
    for chunk in events.chunks(BATCH) {
        store.ingest(chunk)?;
    }
    store.flush()?;
    let store_elapsed = started.elapsed();
    drop(store);
    let _ = std::fs::remove_dir_all(&path);
    Ok(json!({
        "phase": "ceiling",
        "events": m,
        "secs": elapsed.as_secs_f64(),
        "events_per_sec": m as f64 / elapsed.as_secs_f64(),
        "store_events_per_sec": m as f64 / store_elapsed.as_secs_f64(),
    }))
}

/// A publisher streams `m` stored events over loopback WebSocket to a subscriber into the
/// console store, while this thread runs the UI loop (snapshots from the real data worker,
/// at most one frame per 33 ms) until the subscriber has stored the last one. Without `ui`, the
/// same (from a second publisher store of another source) with no data worker and no frames.
fn phase_ingest(dir: &Path, m: u64, ui: bool) -> BenchResult<Value> {
    let (source, publisher_dir) = if ui {
        (LIVE_SOURCE, "publisher")
    } else {
        (BARE_SOURCE, "publisher-bare")
    };
    let store = open_console_store(dir)?;
    let publisher_store = Store::open(&dir.join(publisher_dir), &StoreOptions::default())?;
    if publisher_store.last_sequence(source) != m {
        return Err(format!(
            "the publisher store holds {source} up to {}, expected {m}",
            publisher_store.last_sequence(source)
        )
        .into());
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let mut sha = [0u8; 32];
    sha.copy_from_slice(&hex::decode(hash_token(TOKEN))?);
    let tokens = TokenTable::new(vec![StreamGrant {
        name: "bench".into(),
        role: Role::Responder,
        token_sha256: sha,
    }]);
    let mut options = PublisherOptions::new(source, tokens);
    options.heartbeat = None;
    let (publisher, _) = Publisher::new(publisher_store.clone(), options, false);
    let (addr, accept) = runtime.block_on(publisher.serve("127.0.0.1:0"))?;

    // The console as the shell runs it: the data worker on its own thread, the UI loop here.
    let (snapshot_tx, mut snapshots) = watch::channel(Arc::new(Snapshot::default()));
    let requests = ui.then(|| data::spawn_worker(store.clone(), snapshot_tx));
    let mut app = new_app();
    let mut terminal = test_terminal()?;
    if ui {
        let first = wait_snapshot(&mut snapshots, Duration::from_secs(60))?;
        update(&mut app, Action::Snapshot(first));
        draw(&mut terminal, &app)?;
    }

    let spec = SourceSpec {
        name: "live".into(),
        url: format!("ws://{addr}/stream"),
        token: TOKEN.into(),
        ca_file: None,
        pin_sha256: None,
    };
    let started = Instant::now();
    let subscriber = {
        let _context = runtime.enter();
        Subscriber::spawn(spec, store.clone(), Default::default())
    };
    let mut status = subscriber.status();
    let mut frames = Vec::new();
    let mut updates = Vec::new();
    let mut draws = Vec::new();
    // The UI thread's time on a CPU and waiting for one, during frames (from schedstat).
    let (mut cpu_ns, mut wait_ns) = (0u64, 0u64);
    let mut refreshes = Vec::new();
    let mut last_stored = 0u64;
    let mut last_push = Instant::now() - Duration::from_secs(10);
    let mut next_status = Instant::now();
    let mut next_frame = Instant::now();
    let mut dirty = true;
    let mut first_event = None;
    let elapsed = loop {
        if !ui {
            std::thread::sleep(Duration::from_millis(10));
            let current = status.borrow().clone();
            if let LinkState::Refused { reason, .. } = &current.state {
                return Err(format!("the publisher refused the subscriber: {reason}").into());
            }
            if current.stored > 0 {
                first_event.get_or_insert_with(|| started.elapsed());
            }
            last_stored = current.stored;
            if current.stored >= m {
                break started.elapsed();
            }
            if started.elapsed() > Duration::from_secs(900) {
                return Err(format!("timed out with {last_stored} of {m} events stored").into());
            }
            continue;
        }
        let now = Instant::now();
        if next_frame > now {
            std::thread::sleep(next_frame - now);
        }
        next_frame = (next_frame + FRAME).max(Instant::now());
        // The UI thread's work of this frame: applying a snapshot, the status, drawing.
        let work = Instant::now();
        let sched_before = schedstat();
        let mut updating = Duration::ZERO;
        if snapshots.has_changed().unwrap_or(false) {
            let s = snapshots.borrow_and_update().clone();
            refreshes.push(s.refresh_time);
            let t = Instant::now();
            update(&mut app, Action::Snapshot(s));
            updating += t.elapsed();
            dirty = true;
        }
        let stored = status.borrow().stored;
        if stored >= m {
            break started.elapsed();
        }
        if Instant::now() >= next_status {
            next_status += STATUS_TICK;
            let changed = status.has_changed().unwrap_or(false);
            let current = status.borrow_and_update().clone();
            if let LinkState::Refused { reason, .. } = &current.state {
                return Err(format!("the publisher refused the subscriber: {reason}").into());
            }
            if current.stored != last_stored {
                last_stored = current.stored;
                first_event.get_or_insert_with(|| started.elapsed());
                if let Some(requests) = &requests {
                    let _ = requests.send(DataRequest::Changed);
                }
            }
            if changed || last_push.elapsed() >= Duration::from_secs(1) {
                last_push = Instant::now();
                let t = Instant::now();
                update(&mut app, Action::Sources(vec![current], Instant::now()));
                updating += t.elapsed();
                dirty = true;
            }
        }
        if dirty {
            draws.push(draw(&mut terminal, &app)?);
            updates.push(updating);
            frames.push(work.elapsed());
            let sched_after = schedstat();
            cpu_ns += sched_after.0.saturating_sub(sched_before.0);
            wait_ns += sched_after.1.saturating_sub(sched_before.1);
            dirty = false;
        }
        if started.elapsed() > Duration::from_secs(900) {
            return Err(format!("timed out with {last_stored} of {m} events stored").into());
        }
    };
    {
        let _context = runtime.enter();
        subscriber.stop();
        accept.abort();
    }
    drop(requests);
    runtime.shutdown_timeout(Duration::from_secs(5));
    store.flush()?;
    let got = store.last_sequence(source);
    if got != m {
        return Err(format!("the console store holds {source} up to {got}, expected {m}").into());
    }
    Ok(json!({
        "phase": "ingest",
        "ui": ui,
        "events": m,
        "secs": elapsed.as_secs_f64(),
        "events_per_sec": m as f64 / elapsed.as_secs_f64(),
        "first_event_ms": first_event.map(ms),
        "frames": stats(&frames),
        "updates": stats(&updates),
        "draws": stats(&draws),
        "frames_wall_ms": ms(frames.iter().sum()),
        "frames_cpu_ms": cpu_ns as f64 / 1e6,
        "frames_runqueue_ms": wait_ns as f64 / 1e6,
        "fps": frames.len() as f64 / elapsed.as_secs_f64(),
        "refresh": stats(&refreshes),
        "memory": memory_json(),
    }))
}

/// This thread's `(time on a CPU, time waiting for one)` in ns, from
/// `/proc/thread-self/schedstat` (zeros where unavailable).
fn schedstat() -> (u64, u64) {
    let text = std::fs::read_to_string("/proc/thread-self/schedstat").unwrap_or_default();
    let mut fields = text.split_whitespace().map(|v| v.parse().unwrap_or(0));
    (fields.next().unwrap_or(0), fields.next().unwrap_or(0))
}

fn wait_snapshot(
    snapshots: &mut watch::Receiver<Arc<Snapshot>>,
    timeout: Duration,
) -> BenchResult<Arc<Snapshot>> {
    let started = Instant::now();
    while !snapshots.has_changed().unwrap_or(false) {
        if started.elapsed() > timeout {
            return Err("the data worker sent no first snapshot".into());
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    Ok(snapshots.borrow_and_update().clone())
}

/// A `Write` that counts and drops.
struct CountingSink(Arc<AtomicU64>);

impl Write for CountingSink {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.fetch_add(buf.len() as u64, Ordering::Relaxed);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// ratatui's `CrosstermBackend` (the escape sequences the console writes) with a fixed size
/// instead of asking a terminal.
struct FixedSizeBackend<W: Write> {
    inner: CrosstermBackend<W>,
    size: Size,
}

impl<W: Write> Backend for FixedSizeBackend<W> {
    type Error = io::Error;

    fn draw<'a, I>(&mut self, content: I) -> io::Result<()>
    where
        I: Iterator<Item = (u16, u16, &'a Cell)>,
    {
        self.inner.draw(content)
    }

    fn hide_cursor(&mut self) -> io::Result<()> {
        self.inner.hide_cursor()
    }

    fn show_cursor(&mut self) -> io::Result<()> {
        self.inner.show_cursor()
    }

    fn get_cursor_position(&mut self) -> io::Result<Position> {
        Ok(Position::ORIGIN)
    }

    fn set_cursor_position<P: Into<Position>>(&mut self, position: P) -> io::Result<()> {
        self.inner.set_cursor_position(position)
    }

    fn clear(&mut self) -> io::Result<()> {
        self.inner.clear()
    }

    fn clear_region(&mut self, clear_type: ClearType) -> io::Result<()> {
        self.inner.clear_region(clear_type)
    }

    fn size(&self) -> io::Result<Size> {
        Ok(self.size)
    }

    fn window_size(&mut self) -> io::Result<WindowSize> {
        Ok(WindowSize {
            columns_rows: self.size,
            pixels: Size::default(),
        })
    }

    fn flush(&mut self) -> io::Result<()> {
        Backend::flush(&mut self.inner)
    }
}

/// The shell's draw loop on the live tool calls pane into a byte-counting terminal for 20 s,
/// while a producer thread stores 1,000 tool calls per second.
fn phase_bytes(dir: &Path) -> BenchResult<Value> {
    let store = open_console_store(dir)?;
    let counter = Arc::new(AtomicU64::new(0));
    let backend = FixedSizeBackend {
        inner: CrosstermBackend::new(CountingSink(counter.clone())),
        size: Size::new(WIDTH, HEIGHT),
    };
    let mut terminal = Terminal::new(backend)?;
    let (snapshot_tx, mut snapshots) = watch::channel(Arc::new(Snapshot::default()));
    let requests = data::spawn_worker(store.clone(), snapshot_tx);
    let mut app = new_app();
    let first = wait_snapshot(&mut snapshots, Duration::from_secs(60))?;
    update(&mut app, Action::Snapshot(first));
    terminal.clear()?;
    draw(&mut terminal, &app)?;
    let first_frame_bytes = counter.swap(0, Ordering::Relaxed);

    // The producer: 1,000 tool calls per second, stored in batches every 20 ms.
    let stored = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let producer = {
        let (store, stored, stop) = (store.clone(), stored.clone(), stop.clone());
        std::thread::spawn(move || -> Result<(), String> {
            let mut fixture =
                Fixture::new(TRICKLE_SOURCE, 0x7472_6963_6b6c_6521, Utc::now(), payload);
            let tick = Duration::from_millis(20);
            let per_tick = BYTES_RATE * tick.as_millis() as u64 / 1000;
            let mut seq = 0u64;
            let mut next = Instant::now();
            while !stop.load(Ordering::Relaxed) {
                let now = Instant::now();
                if next > now {
                    std::thread::sleep(next - now);
                }
                next += tick;
                let batch: Vec<String> = (0..per_tick)
                    .map(|i| call_at(&mut fixture, seq + 1 + i, Utc::now()))
                    .collect();
                store.ingest(&batch).map_err(|e| e.to_string())?;
                seq += per_tick;
                stored.store(seq, Ordering::Relaxed);
            }
            Ok(())
        })
    };

    let started = Instant::now();
    let mut frames = 0u64;
    let mut last_stored = 0u64;
    let mut ingested = 0u64;
    let mut last_push = Instant::now() - Duration::from_secs(10);
    let mut next_status = Instant::now();
    let mut next_frame = Instant::now();
    let mut dirty = false;
    let mut status = live_status("gateway", TRICKLE_SOURCE, 0, 0);
    while started.elapsed() < BYTES_RUN {
        let now = Instant::now();
        if next_frame > now {
            std::thread::sleep(next_frame - now);
        }
        next_frame = (next_frame + FRAME).max(Instant::now());
        if snapshots.has_changed().unwrap_or(false) {
            let s = snapshots.borrow_and_update().clone();
            update(&mut app, Action::Snapshot(s));
            dirty = true;
        }
        if Instant::now() >= next_status {
            next_status += STATUS_TICK;
            // What a live subscriber reports: its status changes with every stored batch.
            let now_stored = stored.load(Ordering::Relaxed);
            let changed = now_stored != last_stored;
            if changed {
                ingested += now_stored - last_stored;
                last_stored = now_stored;
                status = live_status("gateway", TRICKLE_SOURCE, now_stored, ingested);
                let _ = requests.send(DataRequest::Changed);
            }
            if changed || last_push.elapsed() >= Duration::from_secs(1) {
                last_push = Instant::now();
                update(
                    &mut app,
                    Action::Sources(vec![status.clone()], Instant::now()),
                );
                dirty = true;
            }
        }
        if dirty {
            draw(&mut terminal, &app)?;
            frames += 1;
            dirty = false;
        }
    }
    let elapsed = started.elapsed();
    let bytes = counter.load(Ordering::Relaxed);
    stop.store(true, Ordering::Relaxed);
    producer
        .join()
        .map_err(|_| "the producer thread panicked")??;
    drop(requests);
    store.flush()?;
    let events = stored.load(Ordering::Relaxed);
    Ok(json!({
        "phase": "bytes",
        "events": events,
        "events_per_sec": events as f64 / elapsed.as_secs_f64(),
        "secs": elapsed.as_secs_f64(),
        "bytes": bytes,
        "bytes_per_sec": bytes as f64 / elapsed.as_secs_f64(),
        "frames": frames,
        "frames_per_sec": frames as f64 / elapsed.as_secs_f64(),
        "bytes_per_frame": if frames > 0 { bytes as f64 / frames as f64 } else { 0.0 },
        "first_frame_bytes": first_frame_bytes,
        "rows": app.snapshot.calls.len(),
    }))
}
