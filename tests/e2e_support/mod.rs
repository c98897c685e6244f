//! Harness of the console end-to-end tests: the real `mcpsoc` binary as a `replay` child process
//! (the stream source) and as a `console` inside a detached tmux session on a private socket,
//! driven with `tmux send-keys` and read with `tmux capture-pane`.
//!
//! Everything started here is stopped by a `Drop` guard, so a failing test leaves no process or
//! tmux server behind.

#![allow(dead_code)]

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use mcpsoc::store::{Store, StoreOptions, StoredEvent};
use tempfile::TempDir;

/// The `mcpsoc` binary under test.
pub const BIN: &str = env!("CARGO_BIN_EXE_mcpsoc");
/// Source id the replay publishes as.
pub const SOURCE: &str = "e2e/replay";
/// The console's name for that source.
pub const SOURCE_NAME: &str = "r";
/// The stream token (the replay accepts it with `--role approver`).
pub const TOKEN: &str = "e2e-console-token-0123456789abcdef";
/// Default time to wait for something to appear on screen.
pub const SCREEN_TIMEOUT: Duration = Duration::from_secs(20);
/// Terminal size of every console session.
pub const COLS: u16 = 120;
/// Terminal size of every console session.
pub const ROWS: u16 = 40;
/// Printed by the pane's shell once the console has exited, followed by its status.
pub const EXIT_MARK: &str = "MCPSOC-EXIT=";

/// Users of the generated tool calls, by `call index % 4`.
pub const USERS: [&str; 4] = ["alice", "bob", "carol", "dave"];
/// Tools of the generated tool calls, by `call index % 3`.
pub const TOOLS: [&str; 3] = ["read_file", "list_dir", "search_issues"];
/// Upstream of every generated tool call.
pub const UPSTREAM: &str = "files";

/// Fails the test (never skips it) when tmux is missing.
pub fn require_tmux() {
    match Command::new("tmux").arg("-V").output() {
        Ok(out) if out.status.success() => {}
        Ok(out) => panic!(
            "`tmux -V` failed ({}): the console end-to-end tests need a working tmux; stderr: {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        ),
        Err(e) => panic!(
            "tmux is not installed or not on PATH ({e}): the console end-to-end tests drive the \
             console in tmux; install it (e.g. `apt-get install tmux`)"
        ),
    }
}

/// A port that was free a moment ago.
pub fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    listener.local_addr().expect("local addr").port()
}

/// Polls `probe` every 100 ms until it returns `Some`, panicking after `timeout` with `what` and
/// the description of the last state that `last` gives.
pub fn wait_until<T>(
    what: &str,
    timeout: Duration,
    mut probe: impl FnMut() -> Option<T>,
    last: impl Fn() -> String,
) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(value) = probe() {
            return value;
        }
        if Instant::now() >= deadline {
            panic!("timed out after {timeout:?} waiting for {what}\n{}", last());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

// ---------------------------------------------------------------------------------------------
// Input files

/// The session of generated call `i`: unique per call, so a row on screen names its call.
pub fn session_of(i: u64) -> String {
    format!("sess-{i:05}")
}

/// The short-form line of generated tool call `i` (no time: the publisher stamps it).
pub fn call_line(i: u64) -> serde_json::Value {
    serde_json::json!({
        "type": "mcpsoc.tool_call.v1",
        "data": {
            "call_id": format!("call-{i}"),
            "phase": "finished",
            "user": USERS[(i % 4) as usize],
            "session": session_of(i),
            "client": {"name": "e2e-client"},
            "upstream": UPSTREAM,
            "tool": TOOLS[(i % 3) as usize],
            "arguments": {"path": format!("/srv/{i}.txt")},
            "decision": "allow",
            "is_error": false,
            "latency_ms": 12
        }
    })
}

/// Writes JSON lines to `path`.
pub fn write_lines(path: &Path, lines: impl IntoIterator<Item = serde_json::Value>) {
    let mut out = std::io::BufWriter::new(File::create(path).expect("create events file"));
    for line in lines {
        writeln!(out, "{line}").expect("write events file");
    }
    out.flush().expect("flush events file");
}

// ---------------------------------------------------------------------------------------------
// The world of one test

/// Temporary directory, paths and port of one test.
pub struct World {
    /// Owns every file of the test.
    pub tmp: TempDir,
    /// The replay's store.
    pub replay_data: PathBuf,
    /// The console's store.
    pub console_data: PathBuf,
    /// The token file.
    pub token: PathBuf,
    /// The replay's input.
    pub events: PathBuf,
    /// The replay's port.
    pub port: u16,
}

impl World {
    /// A fresh world; the caller writes `events`.
    pub fn new() -> Self {
        require_tmux();
        let tmp = TempDir::new().expect("tempdir");
        let token = tmp.path().join("stream.token");
        std::fs::write(&token, format!("{TOKEN}\n")).expect("write token");
        Self {
            replay_data: tmp.path().join("replay-data"),
            console_data: tmp.path().join("console-data"),
            events: tmp.path().join("events.jsonl"),
            token,
            port: free_port(),
            tmp,
        }
    }

    /// A replay of `events` at `rate` events per second (0: as fast as possible), not started.
    pub fn replay(&self, rate: u64) -> Replay {
        Replay {
            data: self.replay_data.clone(),
            file: self.events.clone(),
            token: self.token.clone(),
            port: self.port,
            rate,
            logs: self.tmp.path().to_path_buf(),
            runs: 0,
            child: None,
        }
    }

    /// Starts the console on the replay's port in a fresh tmux session.
    pub fn console(&self, name: &str) -> Console {
        Console::start(name, &self.console_data, self.port, &self.token)
    }
}

impl Default for World {
    fn default() -> Self {
        Self::new()
    }
}

// ---------------------------------------------------------------------------------------------
// The replay child

/// `mcpsoc replay` as a child process, SIGKILLed when dropped.
pub struct Replay {
    data: PathBuf,
    file: PathBuf,
    token: PathBuf,
    port: u16,
    rate: u64,
    logs: PathBuf,
    runs: u32,
    child: Option<Child>,
}

impl Replay {
    fn log_path(&self, run: u32) -> PathBuf {
        self.logs.join(format!("replay-{run}.log"))
    }

    /// Starts (or restarts) the replay on the same data directory and port, and waits until it
    /// listens.
    pub fn start(&mut self) {
        assert!(self.child.is_none(), "the replay is already running");
        self.runs += 1;
        let log = File::create(self.log_path(self.runs)).expect("replay log file");
        let child = Command::new(BIN)
            .arg("--data")
            .arg(&self.data)
            .arg("replay")
            .arg(&self.file)
            .arg("--listen")
            .arg(format!("127.0.0.1:{}", self.port))
            .args(["--source", SOURCE])
            .arg("--token-file")
            .arg(&self.token)
            .args(["--role", "approver", "--rate"])
            .arg(self.rate.to_string())
            .env_remove("MCPSOC_CONFIG")
            .env_remove("RUST_LOG")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::from(log))
            .spawn()
            .expect("start mcpsoc replay");
        self.child = Some(child);
        let log_path = self.log_path(self.runs);
        wait_until(
            "mcpsoc replay to listen",
            Duration::from_secs(20),
            || {
                self.assert_running();
                self.log().contains("replay: publishing as").then_some(())
            },
            || format!("replay log:\n{}", read(&log_path)),
        );
    }

    /// The current run's stderr.
    pub fn log(&self) -> String {
        read(&self.log_path(self.runs))
    }

    /// Every run's stderr.
    pub fn logs(&self) -> String {
        all_logs(&self.logs, self.runs)
    }

    /// Panics with the log if the child exited.
    pub fn assert_running(&mut self) {
        if let Some(child) = self.child.as_mut()
            && let Ok(Some(status)) = child.try_wait()
        {
            panic!(
                "mcpsoc replay exited early with {status}; its log:\n{}",
                self.log()
            );
        }
    }

    /// SIGKILLs the child and reaps it.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Stops the child like Ctrl-C (SIGINT: it shuts down and closes its store), SIGKILL after
    /// 10 s.
    pub fn stop(&mut self) {
        if let Some(child) = self.child.take() {
            interrupt(child, Duration::from_secs(10));
        }
    }

    /// Waits until the current run has published the whole file; returns the head it reported.
    pub fn wait_published(&mut self, timeout: Duration) -> u64 {
        let (logs, runs) = (self.logs.clone(), self.runs);
        let line = wait_until(
            "mcpsoc replay to publish its whole file",
            timeout,
            || {
                self.assert_running();
                self.log()
                    .lines()
                    .find(|l| l.starts_with("replay: published"))
                    .map(str::to_string)
            },
            || all_logs(&logs, runs),
        );
        line.rsplit("head is ")
            .next()
            .and_then(|h| h.trim().parse().ok())
            .unwrap_or_else(|| panic!("cannot read the head from {line:?}"))
    }
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

fn all_logs(dir: &Path, runs: u32) -> String {
    (1..=runs)
        .map(|run| {
            format!(
                "--- replay run {run} ---\n{}",
                read(&dir.join(format!("replay-{run}.log")))
            )
        })
        .collect()
}

impl Drop for Replay {
    fn drop(&mut self) {
        self.kill();
    }
}

// ---------------------------------------------------------------------------------------------
// The console in tmux

static SESSIONS: AtomicU32 = AtomicU32::new(0);

/// `mcpsoc console` in a detached tmux session on a private server, killed when dropped.
pub struct Console {
    socket: String,
    session: String,
    /// The server's socket file, removed when dropped (tmux leaves it behind).
    socket_path: Option<PathBuf>,
}

impl Console {
    /// Starts the console in a `COLS`x`ROWS` tmux session. The pane runs it under `sh`, which
    /// prints `MCPSOC-EXIT=<status>` and the terminal modes (`stty -a`) once it exits and then
    /// keeps the pane open.
    pub fn start(name: &str, data: &Path, port: u16, token: &Path) -> Self {
        Self::start_args(
            name,
            &[
                "--data".into(),
                data.display().to_string(),
                "console".into(),
                "--source".into(),
                format!("{SOURCE_NAME}=ws://127.0.0.1:{port}/stream"),
                "--token-file".into(),
                format!("{SOURCE_NAME}={}", token.display()),
            ],
        )
    }

    /// Starts `mcpsoc ARGS…` (a console) in a `COLS`x`ROWS` tmux session, as [`Console::start`]
    /// does.
    pub fn start_args(name: &str, args: &[String]) -> Self {
        require_tmux();
        let n = SESSIONS.fetch_add(1, Ordering::SeqCst);
        let mut console = Self {
            socket: format!("mcpsoc-e2e-{}-{n}", std::process::id()),
            session: format!("{name}-{n}"),
            socket_path: None,
        };
        let script = format!("\"$0\" \"$@\"; echo {EXIT_MARK}$?; stty -a; exec sleep 600");
        let (cols, rows) = (COLS.to_string(), ROWS.to_string());
        let mut command: Vec<&str> = vec![
            "new-session",
            "-d",
            "-s",
            &console.session,
            "-x",
            &cols,
            "-y",
            &rows,
            "--",
            "/bin/sh",
            "-c",
            &script,
            BIN,
        ];
        command.extend(args.iter().map(String::as_str));
        let out = console.tmux_output(&command);
        assert!(
            out.status.success(),
            "tmux new-session failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let path = console.pane_format("#{socket_path}");
        console.socket_path = (!path.is_empty()).then(|| PathBuf::from(path));
        console
    }

    fn tmux_output(&self, args: &[&str]) -> Output {
        Command::new("tmux")
            .args(["-u", "-f", "/dev/null", "-L", &self.socket])
            .args(args)
            .env("LANG", "C.UTF-8")
            .env("LC_ALL", "C.UTF-8")
            .env_remove("TMUX")
            .env_remove("MCPSOC_CONFIG")
            .env_remove("RUST_LOG")
            .env_remove("NO_COLOR")
            .stdin(Stdio::null())
            .output()
            .expect("run tmux")
    }

    fn tmux(&self, args: &[&str]) -> String {
        let out = self.tmux_output(args);
        assert!(
            out.status.success(),
            "tmux {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// The visible screen, one string per row.
    pub fn screen(&self) -> String {
        self.tmux(&["capture-pane", "-p", "-t", &self.session])
    }

    /// Resizes the terminal (the console redraws for the new size).
    pub fn resize(&self, cols: u16, rows: u16) {
        self.tmux(&[
            "resize-window",
            "-t",
            &self.session,
            "-x",
            &cols.to_string(),
            "-y",
            &rows.to_string(),
        ]);
        std::thread::sleep(Duration::from_millis(300));
    }

    /// A tmux format of the pane, e.g. `#{alternate_on}`.
    pub fn pane_format(&self, format: &str) -> String {
        self.tmux(&["display-message", "-p", "-t", &self.session, format])
            .trim()
            .to_string()
    }

    /// Sends one key (a tmux key name such as `Enter`, `Escape`, `Tab`, or one character) and
    /// pauses, so that the console reads each key on its own (an `Escape` followed at once by a
    /// character would be read as Alt+character).
    pub fn key(&self, key: &str) {
        let literal = key.chars().count() == 1;
        let mut args = vec!["send-keys", "-t", &self.session];
        if literal {
            args.push("-l");
        }
        args.push(key);
        self.tmux(&args);
        std::thread::sleep(Duration::from_millis(150));
    }

    /// Types text one character at a time.
    pub fn type_text(&self, text: &str) {
        for c in text.chars() {
            self.tmux(&["send-keys", "-t", &self.session, "-l", &c.to_string()]);
            std::thread::sleep(Duration::from_millis(40));
        }
    }

    /// Waits until the screen satisfies `probe`; panics with the last screen after `timeout`.
    pub fn wait_screen<T>(
        &self,
        what: &str,
        timeout: Duration,
        mut probe: impl FnMut(&str) -> Option<T>,
    ) -> T {
        let last = std::cell::RefCell::new(String::new());
        wait_until(
            what,
            timeout,
            || {
                let screen = self.screen();
                let found = probe(&screen);
                *last.borrow_mut() = screen;
                found
            },
            || format!("last screen:\n{}", last.borrow()),
        )
    }

    /// Waits until the screen contains `text` (20 s); returns that screen.
    pub fn wait_for_screen(&self, text: &str) -> String {
        self.wait_screen(&format!("{text:?} on screen"), SCREEN_TIMEOUT, |s| {
            s.contains(text).then(|| s.to_string())
        })
    }

    /// Presses `q` and waits until the console process has exited; returns its exit status and
    /// the screen the shell left.
    pub fn quit(&self) -> (i32, String) {
        self.key("q");
        self.wait_exit()
    }

    /// Waits until the console process has exited; returns its exit status and the screen.
    pub fn wait_exit(&self) -> (i32, String) {
        self.wait_screen("the console to exit", SCREEN_TIMEOUT, |s| {
            let rest = &s[s.find(EXIT_MARK)? + EXIT_MARK.len()..];
            let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
            Some((digits.parse().ok()?, s.to_string()))
        })
    }
}

impl Drop for Console {
    fn drop(&mut self) {
        let _ = self.tmux_output(&["kill-server"]);
        if let Some(path) = &self.socket_path {
            let _ = std::fs::remove_file(path);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Reading the screen

/// The tab line (first row).
pub fn tab_line(screen: &str) -> &str {
    screen.lines().next().unwrap_or("")
}

/// The status line (second-to-last row).
pub fn status_line(screen: &str) -> &str {
    let lines: Vec<&str> = screen.lines().collect();
    lines.len().checked_sub(2).map(|i| lines[i]).unwrap_or("")
}

/// The pane title (second row, the table's top border).
pub fn pane_title(screen: &str) -> &str {
    screen.lines().nth(1).unwrap_or("")
}

/// The number after a tab's title in the tab line, e.g. `Tool calls` -> 74.
pub fn tab_count(screen: &str, title: &str) -> Option<u64> {
    let line = tab_line(screen);
    let rest = &line[line.find(&format!(" {title} "))? + title.len() + 2..];
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    digits.parse().ok()
}

/// One row of the tool calls table as shown.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShownCall {
    /// `HH:MM:SS`.
    pub time: String,
    /// User column.
    pub user: String,
    /// Session column.
    pub session: String,
    /// Server column.
    pub server: String,
    /// Tool column.
    pub tool: String,
    /// Decision column.
    pub decision: String,
}

impl ShownCall {
    /// The generated call index, read back from the session column (`sess-00042` -> 42).
    pub fn index(&self) -> Option<u64> {
        self.session.strip_prefix("sess-")?.parse().ok()
    }
}

fn is_clock(text: &str) -> bool {
    let b = text.as_bytes();
    b.len() == 8
        && b[2] == b':'
        && b[5] == b':'
        && [0, 1, 3, 4, 6, 7].iter().all(|&i| b[i].is_ascii_digit())
}

/// The tool call rows on screen, top (newest) first.
pub fn call_rows(screen: &str) -> Vec<ShownCall> {
    screen
        .lines()
        .filter_map(|line| {
            let inner = line.strip_prefix('│')?;
            let inner = inner.strip_prefix('▶').unwrap_or(inner);
            let mut cols = inner.split_whitespace();
            let time = cols.next()?;
            if !is_clock(time) {
                return None;
            }
            Some(ShownCall {
                time: time.to_string(),
                user: cols.next()?.to_string(),
                session: cols.next()?.to_string(),
                server: cols.next()?.to_string(),
                tool: cols.next()?.to_string(),
                decision: cols.next()?.to_string(),
            })
        })
        .collect()
}

/// Checks that every row shows exactly what generated call `index` holds and that no call is
/// shown twice; returns the indexes, top first.
#[track_caller]
pub fn check_rows_match_file(rows: &[ShownCall], screen: &str) -> Vec<u64> {
    let indexes: Vec<u64> = rows
        .iter()
        .map(|r| {
            let i = r
                .index()
                .unwrap_or_else(|| panic!("row {r:?} has no generated session\n{screen}"));
            let want = (
                USERS[(i % 4) as usize],
                UPSTREAM,
                TOOLS[(i % 3) as usize],
                "allow",
            );
            assert_eq!(
                (
                    r.user.as_str(),
                    r.server.as_str(),
                    r.tool.as_str(),
                    r.decision.as_str()
                ),
                want,
                "row {r:?} does not show call {i} of the file\n{screen}"
            );
            i
        })
        .collect();
    let mut seen = std::collections::BTreeSet::new();
    let doubled: Vec<u64> = indexes
        .iter()
        .copied()
        .filter(|i| !seen.insert(*i))
        .collect();
    assert!(
        doubled.is_empty(),
        "calls shown twice: {doubled:?} (rows, top first: {indexes:?})\n{screen}"
    );
    indexes
}

// ---------------------------------------------------------------------------------------------
// Stores

/// Opens a store that no process holds any more.
pub fn open_store(dir: &Path) -> Store {
    Store::open(dir, &StoreOptions::default())
        .unwrap_or_else(|e| panic!("cannot open the store in {}: {e}", dir.display()))
}

/// Every stored event of `source`, in sequence order.
pub fn events_of(store: &Store, source: &str) -> Vec<StoredEvent> {
    let mut out: Vec<StoredEvent> = Vec::new();
    loop {
        let after = out.last().map(|e| e.sequence).unwrap_or(0);
        let page = store
            .events_after(source, after, 4096)
            .expect("read events");
        if page.is_empty() {
            return out;
        }
        out.extend(page);
    }
}

/// The parsed JSON of a stored event.
pub fn json(event: &StoredEvent) -> serde_json::Value {
    serde_json::from_str(&event.json).expect("stored event is JSON")
}

/// Stops a child like Ctrl-C (SIGINT: a role shuts down and closes its store) and reaps it;
/// SIGKILL when it is still running after `grace`. True when it stopped on its own.
pub fn interrupt(mut child: Child, grace: Duration) -> bool {
    let _ = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status();
    let deadline = Instant::now() + grace;
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    let _ = child.wait();
    false
}
