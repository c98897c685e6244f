//! Throughput of the content detectors on one thread.
//!
//! `cargo bench --bench detectors` scans a realistic mix of events: tool results of 1–4 KB
//! (JSON API responses, source code, log lines, Markdown docs, emails; about 2% carry an
//! injection or a secret), call arguments, and now and then a tool definition (the real benign
//! definitions of `tests/corpus/tools.jsonl`, plus the corpus' malicious ones). It prints
//! events per second and megabytes per second, after warming the regex engines' lazy DFA caches
//! on 4,096 other events of the same mix (as a running monitor's are; cold, the first few
//! thousand events run about a quarter slower).
//!
//! Environment: `MCPSOC_BENCH_EVENTS` (default 200,000).

use std::time::Instant;

use mcpsoc::monitor::detect::Detectors;
use serde_json::{Value, json};

#[path = "fixture/mod.rs"]
mod fixture;
use fixture::text::{XorShift as Rng, arguments, result};

fn tool_definitions() -> Vec<Value> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/corpus/tools.jsonl");
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let tools: Vec<Value> = text
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|c| c["kind"] == "tool_definition")
        .map(|c| c["tool"].clone())
        .collect();
    if tools.is_empty() {
        vec![
            json!({"name": "read_file", "description": "Read a file.", "inputSchema": {"type": "object", "properties": {"path": {"type": "string"}}}}),
        ]
    } else {
        tools
    }
}

enum Event {
    Result(String),
    Arguments(Value),
    Tool(Value),
}

/// `n` events of the realistic mix and their bytes.
fn mix(rng: &mut Rng, tools: &[Value], n: usize) -> (Vec<Event>, usize) {
    let mut pool = Vec::with_capacity(n);
    let mut bytes = 0usize;
    for i in 0..n {
        let event = match i % 100 {
            0 => Event::Tool(tools[rng.below(tools.len())].clone()),
            k if k % 3 == 0 => Event::Arguments(arguments(rng)),
            _ => {
                let size = 1_024 + rng.below(3 * 1_024);
                Event::Result(result(rng, size))
            }
        };
        bytes += match &event {
            Event::Result(t) => t.len(),
            Event::Arguments(v) | Event::Tool(v) => v.to_string().len(),
        };
        pool.push(event);
    }
    (pool, bytes)
}

fn main() {
    let count: usize = std::env::var("MCPSOC_BENCH_EVENTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200_000);
    let tools = tool_definitions();
    // A pool of distinct events, cycled: generating is not what we measure.
    let pool_size = 4_096.min(count.max(1));
    let (pool, bytes_in_pool) = mix(&mut Rng(0x9E37_79B9_7F4A_7C15), &tools, pool_size);

    let detectors = Detectors::default();
    // Warm the lazy DFA caches as a running monitor's are: on traffic of the same mix, but not
    // on the events measured (another seed), so what is timed is text the detectors never saw.
    let (warm_up, _) = mix(&mut Rng(0x2545_F491_4F6C_DD1D), &tools, 4_096);
    for event in &warm_up {
        scan(&detectors, event);
    }
    let started = Instant::now();
    let mut findings = 0usize;
    for i in 0..count {
        findings += scan(&detectors, &pool[i % pool.len()]);
    }
    let secs = started.elapsed().as_secs_f64();
    let bytes = bytes_in_pool as f64 * (count as f64 / pool.len() as f64);
    println!(
        "content detectors, one thread, {count} events (pool of {} distinct, after a warm-up on 4,096 others)",
        pool.len()
    );
    println!("  {:>12.0} events/s", count as f64 / secs);
    println!("  {:>12.1} MB/s", bytes / secs / 1e6);
    println!(
        "  {:>12} findings ({:.2}% of events)",
        findings,
        100.0 * findings as f64 / count as f64
    );
    println!("  {:>12.3} s", secs);
}

fn scan(detectors: &Detectors, event: &Event) -> usize {
    match event {
        Event::Result(text) => detectors.scan_result(text).len(),
        Event::Arguments(args) => detectors.scan_arguments(args).len(),
        Event::Tool(tool) => detectors.scan_tool(tool).len(),
    }
}
