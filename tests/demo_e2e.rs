//! End to end, the demo's parts as separate processes: `mcpsoc demo server`, `mcpsoc gateway`,
//! `mcpsoc monitor`, `mcpsoc demo traffic` (the real binary, each with its own data folder) with
//! the configurations shipped in `assets/demo/` (copied with free ports), and the real console
//! (`mcpsoc console`) in tmux, driven with `tmux send-keys` and read with `tmux capture-pane`.
//!
//! It checks that every scripted incident shows in the right pane, that approving a pending
//! change with one key makes the tool work for the traffic and rejecting one keeps it refused,
//! that a session revoked from the console is refused at the gateway, and that SIGKILLing and
//! restarting the gateway and the monitor mid-run loses and doubles no event: once everything
//! has stopped, the console's store holds exactly each producer's events.
//!
//! Needs tmux: without it the test fails with a message saying so.

mod e2e_support;

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use e2e_support::*;
use mcpsoc::store::StoredEvent;
use tempfile::TempDir;

const GATEWAY_SOURCE: &str = "mcpsoc/gateway/demo";
const MONITOR_SOURCE: &str = "mcpsoc/monitor/demo";

/// One `mcpsoc` child process, restartable on the same arguments; SIGKILLed when dropped.
struct Part {
    name: &'static str,
    args: Vec<String>,
    logs: PathBuf,
    runs: u32,
    child: Option<Child>,
}

impl Part {
    fn new(name: &'static str, logs: &Path, args: &[&str]) -> Self {
        Self {
            name,
            args: args.iter().map(|a| a.to_string()).collect(),
            logs: logs.to_path_buf(),
            runs: 0,
            child: None,
        }
    }

    fn log_path(&self, run: u32) -> PathBuf {
        self.logs.join(format!("{}-{run}.log", self.name))
    }

    /// Describes every run's output, for a failure message, without borrowing `self`.
    fn describe(&self) -> impl Fn() -> String + use<> {
        let (dir, name, runs) = (self.logs.clone(), self.name, self.runs);
        move || all_logs(&dir, name, runs)
    }

    /// Starts it and waits until its output (stdout and stderr) contains `ready`.
    fn start(&mut self, ready: &str) {
        assert!(self.child.is_none(), "{} is already running", self.name);
        self.runs += 1;
        let log = File::create(self.log_path(self.runs)).expect("log file");
        let err = log.try_clone().expect("log file");
        let child = Command::new(BIN)
            .args(&self.args)
            .env_remove("MCPSOC_CONFIG")
            .env_remove("RUST_LOG")
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::from(log))
            .stderr(Stdio::from(err))
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", self.name));
        self.child = Some(child);
        let describe = self.describe();
        wait_until(
            &format!("{} to say {ready:?}", self.name),
            Duration::from_secs(30),
            || {
                self.assert_running();
                self.log().contains(ready).then_some(())
            },
            describe,
        );
    }

    /// The current run's output.
    fn log(&self) -> String {
        std::fs::read_to_string(self.log_path(self.runs)).unwrap_or_default()
    }

    /// Every run's output.
    fn logs(&self) -> String {
        all_logs(&self.logs, self.name, self.runs)
    }

    fn assert_running(&mut self) {
        if let Some(child) = self.child.as_mut()
            && let Ok(Some(status)) = child.try_wait()
        {
            panic!("{} exited early with {status}\n{}", self.name, self.logs());
        }
    }

    /// SIGKILL: no chance to flush or close anything.
    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Like Ctrl-C (SIGINT: it shuts down and closes its store); SIGKILL after 15 s.
    fn stop(&mut self) {
        if let Some(child) = self.child.take()
            && !interrupt(child, Duration::from_secs(15))
        {
            panic!("{} did not stop within 15 s of SIGINT", self.name);
        }
    }
}

fn all_logs(dir: &Path, name: &str, runs: u32) -> String {
    (1..=runs)
        .map(|run| {
            format!(
                "--- {name} run {run} ---\n{}\n",
                std::fs::read_to_string(dir.join(format!("{name}-{run}.log"))).unwrap_or_default()
            )
        })
        .collect()
}

impl Drop for Part {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Copies `assets/demo/` into `to`, with the fixed loopback ports replaced by free ones.
fn copy_assets(to: &Path, ports: &[(u16, u16)]) {
    let from = Path::new(env!("CARGO_MANIFEST_DIR")).join("assets/demo");
    copy_dir(&from, to, ports);
}

fn copy_dir(from: &Path, to: &Path, ports: &[(u16, u16)]) {
    std::fs::create_dir_all(to).expect("create config dir");
    for entry in std::fs::read_dir(from).expect("read assets/demo") {
        let entry = entry.expect("dir entry");
        let target = to.join(entry.file_name());
        if entry.file_type().expect("file type").is_dir() {
            copy_dir(&entry.path(), &target, ports);
            continue;
        }
        let mut text = std::fs::read_to_string(entry.path()).expect("read asset");
        if entry.path().extension().is_some_and(|e| e == "toml") {
            for (fixed, free) in ports {
                text = text.replace(&format!("127.0.0.1:{fixed}"), &format!("127.0.0.1:{free}"));
            }
        }
        std::fs::write(&target, text).expect("write asset copy");
    }
}

/// The traffic's output lines with `label` (TRAFFIC, GATEWAY, APPROVAL…) containing `needle`.
fn lines_with(out: &str, label: &str, needle: &str) -> Vec<String> {
    out.lines()
        .filter(|l| l.contains(&format!(" {label} ")) && l.contains(needle))
        .map(str::to_string)
        .collect()
}

/// The selected row (`│▶…`) of the screen.
fn selected_row(screen: &str) -> Option<&str> {
    screen.lines().find(|l| l.starts_with("│▶"))
}

/// Applies a filter on the current pane (`/` TEXT Enter) and waits until the title shows it.
fn filter(console: &Console, text: &str) {
    console.key("/");
    console.type_text(text);
    console.key("Enter");
    console.wait_screen(&format!("the filter {text:?}"), SCREEN_TIMEOUT, |s| {
        pane_title(s).contains(&format!("/{text}")).then_some(())
    });
}

/// Clears the filter (Esc) and waits until the title no longer shows one.
fn clear_filter(console: &Console) {
    console.key("Escape");
    console.wait_screen("the filter to clear", SCREEN_TIMEOUT, |s| {
        (!pane_title(s).contains(" /")).then_some(())
    });
}

/// Goes to pane `key` and waits for its title.
fn pane(console: &Console, key: &str, title: &str) {
    console.key(key);
    console.wait_screen(&format!("the {title} pane"), SCREEN_TIMEOUT, |s| {
        pane_title(s)
            .starts_with(&format!("┌ {title}"))
            .then_some(())
    });
}

/// The rows of the pane's table (between the header and the bottom border).
fn table_rows(screen: &str) -> Vec<&str> {
    screen
        .lines()
        .skip(3)
        .take_while(|l| !l.starts_with('└'))
        .filter(|l| {
            l.trim_matches(['│', ' '])
                .chars()
                .any(|c| !c.is_whitespace())
        })
        .collect()
}

/// Positions the console has stored, from `:source` (gateway, monitor).
fn stored_positions(console: &Console) -> Option<(u64, u64)> {
    console.key(":");
    console.type_text("source");
    console.key("Enter");
    let screen = console.screen();
    let status = status_line(&screen);
    let at = |source: &str| -> Option<u64> {
        let rest = &status[status.find(&format!("[{source}]"))?..];
        rest[rest.find(" at ")? + 4..]
            .chars()
            .take_while(char::is_ascii_digit)
            .collect::<String>()
            .parse()
            .ok()
    };
    Some((at(GATEWAY_SOURCE)?, at(MONITOR_SOURCE)?))
}

fn compare_stores(source: &str, producer: &[StoredEvent], console: &[StoredEvent]) {
    let mine: Vec<(u64, &str)> = console
        .iter()
        .map(|e| (e.sequence, e.json.as_str()))
        .collect();
    let theirs: Vec<(u64, &str)> = producer
        .iter()
        .map(|e| (e.sequence, e.json.as_str()))
        .collect();
    let sequences: Vec<u64> = mine.iter().map(|(s, _)| *s).collect();
    let expected: Vec<u64> = (1..=sequences.len() as u64).collect();
    assert!(
        sequences == expected,
        "{source}: the console's sequences are not 1..={} (gap or duplicate): first mismatch at \
         index {:?}",
        sequences.len(),
        sequences.iter().zip(&expected).position(|(a, b)| a != b)
    );
    assert!(
        !theirs.is_empty(),
        "{source}: the producer's store holds no event"
    );
    for (a, b) in mine.iter().zip(&theirs) {
        assert_eq!(
            a, b,
            "{source}: event {} differs between the console and the producer",
            a.0
        );
    }
    assert_eq!(
        mine.len(),
        theirs.len(),
        "{source}: the console holds {} events, the producer {} (extra at the producer: {:?})",
        mine.len(),
        theirs.len(),
        theirs
            .get(mine.len()..)
            .map(|t| t.iter().map(|(s, _)| *s).collect::<Vec<_>>())
    );
}

#[test]
fn demo_parts_as_processes_under_the_console() {
    require_tmux();
    let started = Instant::now();
    let tmp = TempDir::new().expect("tempdir");
    let root = tmp.path();
    let (server_port, mcp_port, gateway_port, monitor_port) =
        (free_port(), free_port(), free_port(), free_port());
    let config = root.join("config");
    copy_assets(
        &config,
        &[
            (7490, server_port),
            (7480, mcp_port),
            (7401, gateway_port),
            (7402, monitor_port),
        ],
    );
    let data = |role: &str| root.join("data").join(role).display().to_string();
    let cfg = |file: &str| config.join(file).display().to_string();
    let logs = root.join("logs");
    std::fs::create_dir_all(&logs).expect("logs dir");

    let mut server = Part::new(
        "server",
        &logs,
        &[
            "demo",
            "server",
            "--listen",
            &format!("127.0.0.1:{server_port}"),
        ],
    );
    server.start("MCP endpoint");
    let mut gateway = Part::new(
        "gateway",
        &logs,
        &[
            "--config",
            &cfg("gateway.toml"),
            "--data",
            &data("gateway"),
            "gateway",
        ],
    );
    gateway.start("gateway: serving MCP");
    let mut monitor = Part::new(
        "monitor",
        &logs,
        &[
            "--config",
            &cfg("monitor.toml"),
            "--data",
            &data("monitor"),
            "monitor",
        ],
    );
    monitor.start("monitor: alerts on");
    let console = Console::start_args(
        "demo",
        &[
            "--config".into(),
            cfg("console.toml"),
            "--data".into(),
            data("console"),
            "console".into(),
        ],
    );
    let mut traffic = Part::new(
        "traffic",
        &logs,
        &[
            "--data",
            &data("traffic"),
            "demo",
            "traffic",
            "--gateway",
            &format!("http://127.0.0.1:{mcp_port}/mcp/demo"),
            "--server",
            &format!("http://127.0.0.1:{server_port}/mcp"),
            "--issuer-key",
            &cfg("DEMO-ONLY-issuer-key.pem"),
            "--gateway-stream",
            &format!("ws://127.0.0.1:{gateway_port}/stream"),
            "--approver-token-file",
            &cfg("tokens/traffic-gateway.token"),
            "--speed",
            "3",
        ],
    );
    traffic.start("the initial tools are approved");
    let wait_traffic = |traffic: &mut Part, what: &str, label: &str, needle: &str| -> String {
        let describe = traffic.describe();
        wait_until(
            what,
            Duration::from_secs(30),
            || {
                traffic.assert_running();
                lines_with(&traffic.log(), label, needle).into_iter().next()
            },
            describe,
        )
    };
    wait_traffic(
        &mut traffic,
        "the whole incident script",
        "INCIDENT",
        "benign-change:",
    );

    // Approvals pane: the three scripted changes, pending, oldest first.
    pane(&console, "4", "Approvals");
    let screen = console.wait_screen("three pending changes", SCREEN_TIMEOUT, |s| {
        let rows = table_rows(s);
        let find = |tool: &str| rows.iter().position(|r| r.contains(&format!(" {tool} ")));
        let (rug, hidden, benign) = (
            find("read_file")?,
            find("summarize_document")?,
            find("get_weather")?,
        );
        (tab_count(s, "Approvals") == Some(3) && rug < hidden && hidden < benign)
            .then(|| s.to_string())
    });
    let rows = table_rows(&screen);
    let row = |tool: &str| {
        rows.iter()
            .find(|r| r.contains(&format!(" {tool} ")))
            .copied()
            .unwrap_or_default()
    };
    assert!(
        row("read_file").contains("changed") && row("read_file").contains("CRIT"),
        "the rug pull is not a changed definition with critical findings\n{screen}"
    );
    assert!(
        row("summarize_document").contains("HIDDEN!"),
        "the new tool is not flagged for hidden characters\n{screen}"
    );
    assert!(
        rows.iter().all(|r| r.contains("pending")),
        "not all pending\n{screen}"
    );

    // Alerts pane: one alert (at least) per incident, found by rule.
    pane(&console, "2", "Alerts");
    for (incident, rule, subject) in [
        ("secret-leak", "secret.*", "secret"),
        ("injection", "injection.*", "Tool result"),
        ("wrong-audience", "auth.wrong_audience", "reports-bot"),
        ("rug-pull", "rug_pull.*", "demo/read_file"),
        (
            "session-replay",
            "session.reuse_by_other_identity",
            "mallory",
        ),
        ("hidden-tool", "hidden.*", "Invisible"),
        ("benign-change", "rug_pull.*", "demo/get_weather"),
    ] {
        filter(&console, &format!("rule:{rule}"));
        let prefix = rule.trim_end_matches('*');
        console.wait_screen(
            &format!("an alert of {rule} about {subject:?} ({incident})"),
            SCREEN_TIMEOUT,
            |s| {
                table_rows(s)
                    .iter()
                    .any(|r| {
                        let shown = prefix.chars().take(20).collect::<String>();
                        r.contains(&shown) && r.contains(subject)
                    })
                    .then_some(())
            },
        );
        clear_filter(&console);
    }

    // Sessions pane: alice's session with the reuse attempt.
    pane(&console, "3", "Sessions");
    filter(&console, "user:alice");
    console.wait_screen(
        "alice's session with a reuse attempt (session-replay)",
        SCREEN_TIMEOUT,
        |s| {
            (pane_title(s).contains("with reuse attempts")
                && table_rows(s).iter().any(|r| {
                    let cols: Vec<&str> = r.trim_matches('│').split_whitespace().collect();
                    // binding client server created last calls reuse state
                    cols.len() >= 8
                        && cols[0].trim_start_matches('▶').starts_with("alice:")
                        && cols[cols.len() - 2].parse::<u32>().is_ok_and(|n| n >= 1)
                }))
            .then_some(())
        },
    );
    clear_filter(&console);

    // Tool calls pane: calls to the changed tools refused while they wait for approval.
    pane(&console, "1", "Tool calls");
    filter(&console, "decision:deny");
    console.wait_screen(
        "refused calls of the changed tools (rug-pull, hidden-tool, benign-change)",
        SCREEN_TIMEOUT,
        |s| {
            let rows = call_rows(s);
            (["read_file", "get_weather", "summarize_document"]
                .iter()
                .all(|t| rows.iter().any(|r| r.tool == *t && r.decision == "DENY"))
                && rows.iter().all(|r| r.decision == "DENY"))
            .then_some(())
        },
    );
    clear_filter(&console);

    // Approve the harmless change with one key: the traffic's calls to it work again.
    pane(&console, "4", "Approvals");
    console.key("G");
    console.wait_screen("get_weather selected", SCREEN_TIMEOUT, |s| {
        selected_row(s)?.contains(" get_weather ").then_some(())
    });
    console.key("a");
    console.wait_screen("the approval to be confirmed", SCREEN_TIMEOUT, |s| {
        (status_line(s).contains("ok: demo/get_weather approved")
            && tab_count(s, "Approvals") == Some(2))
        .then_some(())
    });
    wait_traffic(
        &mut traffic,
        "the approved tool to work for the traffic",
        "TRAFFIC",
        "get_weather: works again",
    );

    // Reject the hidden-character tool: it stays refused.
    console.key("G");
    console.wait_screen("summarize_document selected", SCREEN_TIMEOUT, |s| {
        selected_row(s)?
            .contains(" summarize_document ")
            .then_some(())
    });
    console.key("x");
    console.wait_for_screen("reject reason");
    console.type_text("hides invisible characters");
    console.key("Enter");
    console.wait_screen("the rejection to be confirmed", SCREEN_TIMEOUT, |s| {
        (status_line(s).contains("ok: demo/summarize_document rejected")
            && tab_count(s, "Approvals") == Some(1))
        .then_some(())
    });
    wait_traffic(
        &mut traffic,
        "the gateway's record of the rejection",
        "APPROVAL",
        "rejected demo/summarize_document",
    );

    // Revoke dave's newest session from the console: the gateway refuses it.
    pane(&console, "3", "Sessions");
    filter(&console, "user:dave");
    let mut revoked = None;
    for _attempt in 0..3 {
        console.key("g");
        let binding =
            console.wait_screen("dave's newest live session selected", SCREEN_TIMEOUT, |s| {
                let row = selected_row(s)?;
                let cols: Vec<&str> = row.trim_matches('│').split_whitespace().collect();
                let binding = cols.first()?.trim_start_matches('▶');
                let state = *cols.last()?;
                (binding.starts_with("dave:") && matches!(state, "bound" | "active"))
                    .then(|| binding.to_string())
            });
        console.key("x");
        console.wait_for_screen(&format!("Revoke session {binding}"));
        console.key("y");
        console.wait_screen("the revocation to be confirmed", SCREEN_TIMEOUT, |s| {
            status_line(s)
                .contains(&format!("binding {binding} revoked"))
                .then_some(())
        });
        let short: String = binding.chars().take("dave:".len() + 12).collect();
        wait_traffic(
            &mut traffic,
            "the gateway's record of the revocation",
            "GATEWAY",
            &format!("session {short}"),
        );
        // dave's next request on it (a call, or closing it) is refused.
        let deadline = Instant::now() + Duration::from_secs(12);
        while Instant::now() < deadline {
            let out = traffic.log();
            let after = &out[out.find(&format!("session {short}")).unwrap_or(0)..];
            // The revocation cut off the identity the session's token proved: its next
            // request is refused at the token, before any session lookup.
            if !lines_with(after, "GATEWAY", "refused a token (revoked): user dave").is_empty() {
                revoked = Some(binding.clone());
                break;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        if revoked.is_some() {
            break;
        }
    }
    let revoked = revoked.unwrap_or_else(|| {
        panic!(
            "no revoked session of dave was refused at the gateway\n{}",
            traffic.logs()
        )
    });
    console.wait_screen("the session shown as revoked", SCREEN_TIMEOUT, |s| {
        table_rows(s)
            .iter()
            .any(|r| r.contains(&revoked) && r.contains("REVOKED"))
            .then_some(())
    });
    clear_filter(&console);

    // SIGKILL the gateway mid-run and restart it on the same store.
    pane(&console, "1", "Tool calls");
    let before = tab_count(&console.screen(), "Tool calls").unwrap_or(0);
    gateway.kill();
    std::thread::sleep(Duration::from_secs(2));
    gateway.start("gateway: serving MCP");
    console.wait_screen(
        "new tool calls after the gateway's restart",
        Duration::from_secs(30),
        |s| (tab_count(s, "Tool calls")? >= before + 10).then_some(()),
    );

    // The call-rate spike (a minute after dave's first call), then SIGKILL the monitor.
    pane(&console, "2", "Alerts");
    filter(&console, "rule:behaviour.rate_spike");
    console.wait_screen(
        "the call-rate spike alert (rate-spike)",
        Duration::from_secs(75),
        |s| {
            table_rows(s)
                .iter()
                .any(|r| r.contains("behaviour.rate_spike") && r.contains("dave"))
                .then_some(())
        },
    );
    clear_filter(&console);
    let before = tab_count(&console.screen(), "Tool calls").unwrap_or(0);
    monitor.kill();
    std::thread::sleep(Duration::from_secs(2));
    monitor.start("monitor: alerts on");
    console.wait_screen(
        "events flowing after the monitor's restart",
        Duration::from_secs(30),
        |s| (tab_count(s, "Tool calls")? >= before + 10).then_some(()),
    );

    // Stop the traffic, let the console catch up, stop everything and compare the stores.
    traffic.stop();
    console.resize(240, ROWS);
    let mut last = None;
    let mut same = 0;
    wait_until(
        "the console's stored positions to settle",
        Duration::from_secs(30),
        || {
            let now = stored_positions(&console);
            if now.is_some() && now == last {
                same += 1;
            } else {
                same = 0;
            }
            last = now;
            std::thread::sleep(Duration::from_millis(700));
            (same >= 3).then_some(())
        },
        || format!("last screen:\n{}", console.screen()),
    );
    gateway.stop();
    std::thread::sleep(Duration::from_secs(1));
    monitor.stop();
    server.stop();
    std::thread::sleep(Duration::from_secs(1));
    let (status, screen) = console.quit();
    assert_eq!(status, 0, "the console exited with {status}\n{screen}");

    let console_store = open_store(Path::new(&data("console")));
    let gateway_store = open_store(Path::new(&data("gateway")));
    let monitor_store = open_store(Path::new(&data("monitor")));
    let gateway_events = events_of(&gateway_store, GATEWAY_SOURCE);
    let monitor_events = events_of(&monitor_store, MONITOR_SOURCE);
    compare_stores(
        GATEWAY_SOURCE,
        &gateway_events,
        &events_of(&console_store, GATEWAY_SOURCE),
    );
    compare_stores(
        MONITOR_SOURCE,
        &monitor_events,
        &events_of(&console_store, MONITOR_SOURCE),
    );

    // The gateway's own record: the approved tool was called successfully after its approval,
    // the rejected one was only ever refused, and the revoked session was refused.
    let gateway_json: Vec<serde_json::Value> = gateway_events.iter().map(json).collect();
    let position = |pred: &dyn Fn(&serde_json::Value) -> bool| gateway_json.iter().position(pred);
    let approved = position(&|e| {
        e["type"] == "mcpsoc.tool_change.v1"
            && e["data"]["tool"] == "get_weather"
            && e["data"]["status"] == "approved"
            && e["data"]["decided_by"] == "console"
    })
    .expect("the gateway recorded the console's approval");
    assert!(
        gateway_json[approved..].iter().any(|e| {
            e["type"] == "mcpsoc.tool_call.v1"
                && e["data"]["tool"] == "get_weather"
                && e["data"]["decision"] == "allow"
        }),
        "no allowed get_weather call after its approval"
    );
    let calls_to = |tool: &str| {
        gateway_json
            .iter()
            .filter(|e| e["type"] == "mcpsoc.tool_call.v1" && e["data"]["tool"] == tool)
            .map(|e| e["data"]["decision"].as_str().unwrap_or("").to_string())
            .collect::<Vec<_>>()
    };
    let hidden = calls_to("summarize_document");
    assert!(
        !hidden.is_empty() && hidden.iter().all(|d| d == "deny"),
        "calls to the rejected tool were not all refused: {hidden:?}"
    );
    let rejected = position(&|e| {
        e["type"] == "mcpsoc.tool_change.v1"
            && e["data"]["tool"] == "summarize_document"
            && e["data"]["status"] == "rejected"
            && e["data"]["decided_by"] == "console"
    })
    .expect("the gateway recorded the console's rejection");
    assert!(
        gateway_json[rejected..].iter().any(|e| {
            e["type"] == "mcpsoc.tool_call.v1" && e["data"]["tool"] == "summarize_document"
        }),
        "the traffic never tried the rejected tool after its rejection"
    );
    let revocation = position(&|e| {
        e["type"] == "mcpsoc.session.v1"
            && e["data"]["change"] == "revoked"
            && e["data"]["binding"] == revoked.as_str()
    })
    .expect("the gateway recorded the revocation");
    assert!(
        gateway_json[revocation..].iter().any(|e| {
            e["type"] == "mcpsoc.auth.v1"
                && e["data"]["outcome"] == "rejected"
                && e["data"]["reason"] == "revoked"
                && e["data"]["user"] == "dave"
        }),
        "the gateway did not record refusing the revoked identity's token"
    );
    eprintln!(
        "demo_e2e: {} gateway and {} monitor events identical in the console's store; done in {:?}",
        gateway_events.len(),
        monitor_events.len(),
        started.elapsed()
    );
}
