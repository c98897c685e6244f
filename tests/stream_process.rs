//! Reconnect and resume across publisher process deaths: the real `mcpsoc replay` binary is
//! SIGKILLed and restarted on the same data directory and port while a Subscriber in this test
//! follows it; at the end the subscriber's store must equal the publisher's exactly.

mod support;

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use mcpsoc::store::Store;
use mcpsoc::stream::{LinkState, SourceStatus, Subscriber};
use tempfile::TempDir;
use tokio::sync::watch;

use support::*;

const LINES: u64 = 20_000;
const REPLAY_SOURCE: &str = "test/replay";
const TOKEN: &str = "process-test-token-abcdef0123456789";

/// A child process killed when dropped, so a failing test leaves nothing running.
struct ChildGuard {
    child: Child,
    log: PathBuf,
}

impl ChildGuard {
    /// SIGKILLs the child and reaps it.
    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// The child's stderr so far.
    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Panics with the log if the child has exited.
    fn assert_running(&mut self) {
        if let Ok(Some(status)) = self.child.try_wait() {
            panic!(
                "mcpsoc replay exited with {status}; its log:\n{}",
                self.log()
            );
        }
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Everything one replay run needs.
struct Setup {
    dir: TempDir,
    data: PathBuf,
    file: PathBuf,
    token: PathBuf,
    port: u16,
    runs: u32,
}

impl Setup {
    fn new() -> Self {
        let dir = TempDir::new().expect("tempdir");
        let data = dir.path().join("replay-data");
        let file = dir.path().join("events.jsonl");
        let token = dir.path().join("token");
        write_events(&file, LINES);
        std::fs::write(&token, format!("{TOKEN}\n")).expect("write token");
        Self {
            dir,
            data,
            file,
            token,
            port: free_port(),
            runs: 0,
        }
    }

    /// Starts `mcpsoc replay` on the same data directory and port.
    fn start(&mut self) -> ChildGuard {
        self.runs += 1;
        let log = self.dir.path().join(format!("replay-{}.log", self.runs));
        let stderr = File::create(&log).expect("log file");
        let child = Command::new(env!("CARGO_BIN_EXE_mcpsoc"))
            .arg("--data")
            .arg(&self.data)
            .arg("replay")
            .arg(&self.file)
            .arg("--listen")
            .arg(format!("127.0.0.1:{}", self.port))
            .arg("--source")
            .arg(REPLAY_SOURCE)
            .arg("--token-file")
            .arg(&self.token)
            .args(["--role", "viewer", "--rate", "4000"])
            .env_remove("MCPSOC_CONFIG")
            .env_remove("RUST_LOG")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::from(stderr))
            .spawn()
            .expect("start mcpsoc replay");
        ChildGuard { child, log }
    }
}

/// A port that was free a moment ago.
fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.local_addr().expect("addr").port()
}

/// Writes `n` tool-call lines (no time: the publisher stamps them).
fn write_events(path: &Path, n: u64) {
    let mut out = std::io::BufWriter::new(File::create(path).expect("events file"));
    for i in 1..=n {
        let line = serde_json::json!({
            "type": "mcpsoc.tool_call.v1",
            "data": {
                "call_id": format!("call-{i}"),
                "phase": "finished",
                "user": format!("user-{}", i % 11),
                "session": format!("session-{}", i % 17),
                "upstream": "files",
                "tool": "read_file",
                "arguments": {"path": format!("/srv/{i}.txt")},
                "result_bytes": i,
                "decision": "allow",
            }
        });
        writeln!(out, "{line}").expect("write line");
    }
    out.flush().expect("flush");
}

/// Waits until the child has published its whole file; returns the head it reported.
async fn wait_published(child: &mut ChildGuard) -> u64 {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    loop {
        let log = child.log();
        if let Some(line) = log.lines().find(|l| l.contains("replay: published")) {
            let head = line
                .rsplit("head is ")
                .next()
                .and_then(|h| h.trim().parse().ok())
                .unwrap_or_else(|| panic!("cannot read the head from {line:?}"));
            return head;
        }
        child.assert_running();
        assert!(
            tokio::time::Instant::now() < deadline,
            "mcpsoc replay did not finish publishing; its log:\n{log}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Waits until the subscriber has stored past `at_least`.
async fn wait_stored(store: &Store, at_least: u64) {
    wait_until(
        &format!("the subscriber stored past sequence {at_least}"),
        Duration::from_secs(60),
        || store.last_sequence(REPLAY_SOURCE) > at_least,
    )
    .await;
}

/// Waits until the subscriber notices the publisher is gone.
async fn wait_reconnecting(status: &mut watch::Receiver<SourceStatus>) -> String {
    let s = wait_status("the subscriber notices the kill", status, |s| {
        matches!(s.state, LinkState::Reconnecting { .. })
    })
    .await;
    match s.state {
        LinkState::Reconnecting { error, .. } => error,
        other => unreachable!("{other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscriber_resumes_across_publisher_kills() {
    let mut setup = Setup::new();
    let sub_dir = TempDir::new().expect("tempdir");
    let sub_store = open_store(sub_dir.path());
    let url = format!("ws://127.0.0.1:{}/stream", setup.port);

    let mut child = setup.start();
    let subscriber: Subscriber = subscribe("replay", &url, TOKEN, sub_store.clone());
    let mut status = subscriber.status();
    let link_errors = record_link_errors(&subscriber);

    // Two kill/restart cycles while the file is being published.
    let mut killed_at = Vec::new();
    for cycle in 0..2u64 {
        let seen = sub_store.last_sequence(REPLAY_SOURCE);
        wait_stored(&sub_store, seen + 1500 + cycle * 500).await;
        child.assert_running();
        child.kill();
        let stored = sub_store.last_sequence(REPLAY_SOURCE);
        killed_at.push(stored);
        let error = wait_reconnecting(&mut status).await;
        assert!(!error.is_empty());
        child = setup.start();
        // After the restart the subscriber is back (replaying or live) and keeps ingesting.
        wait_status("the subscriber reconnects", &mut status, |s| {
            matches!(s.state, LinkState::Live | LinkState::Replaying { .. })
        })
        .await;
    }
    assert!(
        killed_at[0] < killed_at[1],
        "the second kill happened after more events: {killed_at:?}"
    );
    assert!(
        killed_at[1] < LINES,
        "the file was fully published before the second kill ({killed_at:?}); the test did not kill mid-stream"
    );

    // Let the last run publish everything; the subscriber must reach its head. A heartbeat may
    // be appended right before we stop the publisher: restart once more to deliver it if so.
    let mut head = wait_published(&mut child).await;
    let mut attempts = 0;
    let publisher_store = loop {
        wait_caught_up("the subscriber", &sub_store, REPLAY_SOURCE, head).await;
        child.kill();
        let store = open_store(&setup.data);
        let final_head = store.last_sequence(REPLAY_SOURCE);
        assert!(
            final_head >= head,
            "the publisher's store lost events: head {final_head} after reporting {head}"
        );
        if final_head == sub_store.last_sequence(REPLAY_SOURCE) || attempts == 3 {
            break store;
        }
        drop(store);
        attempts += 1;
        head = final_head;
        child = setup.start();
    };
    subscriber.stop();
    let link_errors = link_errors.lock().expect("errors").clone();
    assert!(
        link_errors
            .iter()
            .all(|e| !e.contains("store was reset") && !e.contains("gap or duplicate")),
        "the subscriber saw the publisher lose or reorder events: {link_errors:?}"
    );

    let count = assert_same_events(&publisher_store, &sub_store, REPLAY_SOURCE);
    // SIGKILLs mid-append never leave the producer's audit chain broken, and the subscriber's
    // copy verifies on its own.
    for (who, store) in [("publisher", &publisher_store), ("subscriber", &sub_store)] {
        let reports = store.verify_chains(Some(REPLAY_SOURCE)).expect("verify");
        assert_eq!(reports.len(), 1, "{who}");
        assert!(reports[0].intact(), "{who}'s chain broke: {:?}", reports[0]);
        assert_eq!(reports[0].sealed, count, "{who}: every event is chained");
    }
    let events = all_events(&sub_store, REPLAY_SOURCE);
    assert_eq!(events.len() as u64, count);
    let calls: Vec<&serde_json::Value> = events
        .iter()
        .filter(|e| e["type"] == "mcpsoc.tool_call.v1")
        .collect();
    assert_eq!(
        calls.len() as u64,
        LINES,
        "every line published exactly once"
    );
    for (i, call) in calls.iter().enumerate() {
        assert_eq!(
            call["data"]["call_id"],
            format!("call-{}", i + 1),
            "lines published out of order or twice"
        );
    }
    let others: Vec<_> = events
        .iter()
        .filter(|e| e["type"] != "mcpsoc.tool_call.v1")
        .map(|e| e["type"].as_str().unwrap_or("?").to_string())
        .collect();
    assert!(
        others
            .iter()
            .all(|t| t == "mcpsoc.heartbeat.v1" || t == "mcpsoc.command.v1"),
        "unexpected event types: {others:?}"
    );
    let logs: String = (1..=setup.runs)
        .map(|run| {
            std::fs::read_to_string(setup.dir.path().join(format!("replay-{run}.log")))
                .unwrap_or_default()
        })
        .collect();
    assert!(
        logs.contains("resuming after line"),
        "a restarted replay did not resume: {logs}"
    );
}
