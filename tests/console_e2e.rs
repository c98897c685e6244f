//! End to end: the real `mcpsoc` binary publishes a JSON-lines file (`mcpsoc replay`) and the
//! real console (`mcpsoc console`) follows it inside tmux. Keys go in with `tmux send-keys`, the
//! screen comes back with `tmux capture-pane`, and the stores of both processes are compared
//! once they have stopped.
//!
//! Needs tmux: without it every test here fails with a message saying so.

mod e2e_support;

use std::time::Duration;

use e2e_support::*;
use mcpsoc::protocol::hash::tool_definition_hash;

/// Tool calls show up on the Tool calls pane as the source publishes them, with the right user,
/// server and tool, newest first, and the count in the tab line grows.
#[test]
fn tool_calls_appear_live() {
    let world = World::new();
    write_lines(&world.events, (1..=400).map(call_line));

    // The console starts before its source exists: nothing to show, not connected.
    let console = world.console("live");
    let screen = console.wait_for_screen("no tool calls yet");
    assert_eq!(tab_count(&screen, "Tool calls"), Some(0), "{screen}");
    console.wait_screen("a not-connected status line", SCREEN_TIMEOUT, |s| {
        let status = status_line(s);
        (status.contains("connecting") && !status.contains(" connected")).then_some(())
    });

    // 20 events per second: 20 s for the whole file.
    let mut replay = world.replay(20);
    replay.start();
    let first = console.wait_screen(
        "the first tool calls, consistent with the tab count",
        SCREEN_TIMEOUT,
        |s| {
            let count = tab_count(s, "Tool calls")?;
            let rows = call_rows(s);
            (count >= 10 && rows.first()?.index() == Some(count)).then(|| (count, s.to_string()))
        },
    );
    let (first_count, screen) = first;
    assert!(
        first_count < 400,
        "all 400 calls were there at once ({first_count}): not seen live\n{screen}"
    );
    let shown = check_rows_match_file(&call_rows(&screen), &screen);
    let expected: Vec<u64> = (1..=first_count).rev().take(shown.len()).collect();
    assert_eq!(
        shown, expected,
        "rows are not the newest calls, newest first, without gaps\n{screen}"
    );
    assert!(
        shown.len() >= 10,
        "expected at least 10 rows on screen\n{screen}"
    );
    assert!(
        status_line(&screen).contains(" connected"),
        "status line does not say connected: {:?}",
        status_line(&screen)
    );

    // The count keeps growing while the source publishes, never going back.
    let mut counts = vec![first_count];
    let screen = console.wait_screen("the tool call count to grow by 40", SCREEN_TIMEOUT, |s| {
        let count = tab_count(s, "Tool calls")?;
        counts.push(count);
        let rows = call_rows(s);
        (count >= first_count + 40 && rows.first()?.index() == Some(count)).then(|| s.to_string())
    });
    assert!(
        counts.windows(2).all(|w| w[0] <= w[1]),
        "the tool call count went backwards: {counts:?}"
    );
    let distinct: std::collections::BTreeSet<u64> = counts.iter().copied().collect();
    assert!(
        distinct.len() >= 3,
        "the count did not grow step by step (live): {counts:?}"
    );
    let rows = call_rows(&screen);
    let shown = check_rows_match_file(&rows, &screen);
    assert!(
        shown.windows(2).all(|w| w[0] == w[1] + 1),
        "rows out of order or with gaps: {shown:?}\n{screen}"
    );
    for user in USERS {
        assert!(
            rows.iter().any(|r| r.user == user),
            "no row of {user}\n{screen}"
        );
    }
    for tool in TOOLS {
        assert!(
            rows.iter().any(|r| r.tool == tool),
            "no row of {tool}\n{screen}"
        );
    }
    assert!(
        pane_title(&screen).contains("following"),
        "the pane is not following: {:?}",
        pane_title(&screen)
    );
    replay.kill();
}

/// `/` `user:alice` Enter keeps only alice's calls (also the ones that arrive afterwards); Esc
/// clears the filter.
#[test]
fn filter_by_user_and_clear() {
    let world = World::new();
    write_lines(&world.events, (1..=600).map(call_line));
    let mut replay = world.replay(20);
    replay.start();
    let console = world.console("filter");
    console.wait_screen("20 tool calls", SCREEN_TIMEOUT, |s| {
        (tab_count(s, "Tool calls")? >= 20).then_some(())
    });

    console.key("/");
    console.type_text("user:alice");
    console.wait_screen("the filter prompt", SCREEN_TIMEOUT, |s| {
        s.lines()
            .last()
            .is_some_and(|l| l.starts_with("/user:alice"))
            .then_some(())
    });
    console.key("Enter");
    let screen = console.wait_screen("only alice's rows", SCREEN_TIMEOUT, |s| {
        let rows = call_rows(s);
        (pane_title(s).contains("/user:alice")
            && rows.len() >= 5
            && rows.iter().all(|r| r.user == "alice"))
        .then(|| s.to_string())
    });
    let shown = check_rows_match_file(&call_rows(&screen), &screen);
    assert!(
        shown.windows(2).all(|w| w[0] == w[1] + 4),
        "alice's calls are every 4th call: expected all of them, newest first: {shown:?}\n{screen}"
    );
    let newest = shown[0];

    // Calls keep arriving: the new ones that pass show up, the others do not.
    let screen = console.wait_screen(
        "new calls of alice to arrive under the filter",
        SCREEN_TIMEOUT,
        |s| {
            let rows = call_rows(s);
            let others: Vec<&ShownCall> = rows.iter().filter(|r| r.user != "alice").collect();
            assert!(
                others.is_empty(),
                "rows of other users under user:alice: {others:?}\n{s}"
            );
            (rows.first()?.index()? >= newest + 8).then(|| s.to_string())
        },
    );
    let shown = check_rows_match_file(&call_rows(&screen), &screen);
    assert!(
        shown.windows(2).all(|w| w[0] == w[1] + 4),
        "alice's calls missing or out of order under the filter: {shown:?}\n{screen}"
    );

    // Esc clears it: everyone is back.
    console.key("Escape");
    let screen = console.wait_screen("the filter to clear", SCREEN_TIMEOUT, |s| {
        let rows = call_rows(s);
        let users: std::collections::BTreeSet<&str> =
            rows.iter().map(|r| r.user.as_str()).collect();
        (!pane_title(s).contains("user:alice") && users.len() == USERS.len()).then(|| s.to_string())
    });
    let shown = check_rows_match_file(&call_rows(&screen), &screen);
    assert!(
        shown.windows(2).all(|w| w[0] == w[1] + 1),
        "after clearing the filter rows are not every call, newest first: {shown:?}\n{screen}"
    );
    replay.kill();
}

/// The definition the pending change proposes.
fn proposed_definition() -> serde_json::Value {
    serde_json::json!({
        "name": "read_file",
        "description": "Read a file from the workspace. Also sends its contents to the indexing service.",
        "inputSchema": {
            "type": "object",
            "properties": {"path": {"type": "string"}, "index": {"type": "boolean"}},
            "required": ["path"]
        }
    })
}

/// Pressing `a` on a pending tool change approves it at its source, bound to the proposed hash.
#[test]
fn approval_reaches_the_source_with_the_hash() {
    let world = World::new();
    let previous = serde_json::json!({
        "name": "read_file",
        "description": "Read a file from the workspace.",
        "inputSchema": {
            "type": "object",
            "properties": {"path": {"type": "string"}},
            "required": ["path"]
        }
    });
    let proposed = proposed_definition();
    let hash = tool_definition_hash(&proposed);
    let change = serde_json::json!({
        "type": "mcpsoc.tool_change.v1",
        "data": {
            "upstream": UPSTREAM,
            "tool": "read_file",
            "status": "pending",
            "previous": previous,
            "proposed": proposed,
            "previous_hash": tool_definition_hash(&previous),
            "proposed_hash": hash,
        }
    });
    let lines: Vec<serde_json::Value> = (1..=5)
        .map(call_line)
        .chain(std::iter::once(change))
        .chain((6..=10).map(call_line))
        .collect();
    write_lines(&world.events, lines);
    let mut replay = world.replay(0);
    replay.start();
    replay.wait_published(Duration::from_secs(20));

    let console = world.console("approve");
    console.wait_screen("one pending approval", SCREEN_TIMEOUT, |s| {
        (tab_count(s, "Approvals")? == 1).then_some(())
    });
    console.key("4");
    let short = &hash["sha256:".len().."sha256:".len() + 12];
    let screen = console.wait_screen(
        "the pending change with its hash, and approve enabled",
        SCREEN_TIMEOUT,
        |s| {
            let row = s
                .lines()
                .find(|l| l.contains("read_file") && l.contains(UPSTREAM))?;
            let footer = s.lines().last()?;
            (pane_title(s).contains("Approvals")
                && row.contains(short)
                && row.contains("pending")
                && footer.contains("a approve ")
                && !footer.contains("approve✕"))
            .then(|| s.to_string())
        },
    );
    assert!(
        pane_title(&screen).contains("1 pending"),
        "title: {:?}",
        pane_title(&screen)
    );

    console.key("a");
    let screen = console.wait_screen("the approval to be confirmed", SCREEN_TIMEOUT, |s| {
        (tab_count(s, "Approvals")? == 0
            && status_line(s).contains("approved")
            && s.contains("no pending tool changes"))
        .then(|| s.to_string())
    });
    assert!(
        status_line(&screen).contains(&format!("ok: {UPSTREAM}/read_file approved")),
        "status line: {:?}",
        status_line(&screen)
    );
    let (status, _) = console.quit();
    assert_eq!(status, 0, "the console exited with {status}");
    replay.stop();

    // The source's own record: the audit of the command and the decision.
    let store = open_store(&world.replay_data);
    let events: Vec<serde_json::Value> = events_of(&store, SOURCE).iter().map(json).collect();
    let commands: Vec<&serde_json::Value> = events
        .iter()
        .filter(|e| e["type"] == "mcpsoc.command.v1")
        .collect();
    assert_eq!(
        commands.len(),
        1,
        "expected one command event at the source, got {commands:#?}"
    );
    let command = &commands[0]["data"];
    assert_eq!(command["action"], "approve_tool_change", "{command:#}");
    assert_eq!(command["outcome"], "accepted", "{command:#}");
    assert_eq!(command["role"], "approver", "{command:#}");
    assert_eq!(command["target"]["proposed_hash"], hash, "{command:#}");
    assert_eq!(command["target"]["upstream"], UPSTREAM, "{command:#}");
    assert_eq!(command["target"]["tool"], "read_file", "{command:#}");

    let changes: Vec<&serde_json::Value> = events
        .iter()
        .filter(|e| e["type"] == "mcpsoc.tool_change.v1")
        .map(|e| &e["data"])
        .collect();
    assert_eq!(changes.len(), 2, "pending then approved: {changes:#?}");
    assert_eq!(changes[0]["status"], "pending");
    let decided = changes[1];
    assert_eq!(decided["status"], "approved", "{decided:#}");
    assert_eq!(decided["proposed_hash"], hash, "{decided:#}");
    assert_eq!(decided["proposed"], proposed_definition(), "{decided:#}");
    assert!(
        decided["decided_by"]
            .as_str()
            .is_some_and(|by| by.starts_with("token-file:")),
        "{decided:#}"
    );
    drop(store);

    // The console stored the decision too (it came back over the stream).
    let store = open_store(&world.console_data);
    let approved = events_of(&store, SOURCE)
        .iter()
        .map(json)
        .any(|e| e["type"] == "mcpsoc.tool_change.v1" && e["data"]["status"] == "approved");
    assert!(approved, "the console never stored the approved change");
}

/// SIGKILL the source mid-stream and restart it: the console ends up with exactly the source's
/// events, byte for byte, without a gap or a duplicate.
#[test]
fn source_kill_and_restart_loses_and_doubles_nothing() {
    const LINES: u64 = 3000;
    let world = World::new();
    write_lines(&world.events, (1..=LINES).map(call_line));
    let mut replay = world.replay(300);
    replay.start();
    let console = world.console("restart");

    let newest = |s: &str| call_rows(s).first().and_then(ShownCall::index);
    let killed_after = console.wait_screen("600 tool calls", Duration::from_secs(30), |s| {
        newest(s).filter(|&n| n >= 600)
    });
    replay.kill();
    assert!(
        killed_after < LINES,
        "the whole file was shown before the kill: not killed mid-way"
    );
    let screen = console.wait_screen("the status line to say reconnecting", SCREEN_TIMEOUT, |s| {
        status_line(s)
            .contains("reconnecting")
            .then(|| s.to_string())
    });
    let seen_before_restart = newest(&screen).unwrap_or(0);
    assert!(
        seen_before_restart < LINES,
        "the console shows the last call although the source was killed"
    );

    replay.start();
    let head = replay.wait_published(Duration::from_secs(60));
    assert!(
        replay.logs().contains("resuming after line"),
        "the restarted replay did not resume:\n{}",
        replay.logs()
    );
    console.wait_screen(
        "the last call of the file on screen",
        Duration::from_secs(40),
        |s| (newest(s)? == LINES).then_some(()),
    );

    // `:source` reports what the console stored; wait until it has the source's head.
    let stored = wait_until(
        &format!("the console to store up to the head {head}"),
        Duration::from_secs(30),
        || {
            console.key(":");
            console.type_text("source");
            console.key("Enter");
            let screen = console.screen();
            let status = status_line(&screen);
            let at = status.find(&format!("[{SOURCE}]"))?;
            let rest = &status[at..];
            let n: u64 = rest[rest.find(" at ")? + 4..]
                .chars()
                .take_while(char::is_ascii_digit)
                .collect::<String>()
                .parse()
                .ok()?;
            (n >= head).then_some(n)
        },
        || format!("last screen:\n{}", console.screen()),
    );
    let (status, screen) = console.quit();
    assert_eq!(status, 0, "the console exited with {status}\n{screen}");
    replay.stop();

    let console_store = open_store(&world.console_data);
    let replay_store = open_store(&world.replay_data);
    let mine = events_of(&console_store, SOURCE);
    let theirs = events_of(&replay_store, SOURCE);
    let last = mine.last().map(|e| e.sequence).unwrap_or(0);
    assert!(
        last >= stored && last >= head,
        "the console stored up to {last}; it reported {stored}, the source's head was {head}"
    );
    let sequences: Vec<u64> = mine.iter().map(|e| e.sequence).collect();
    let expected: Vec<u64> = (1..=last).collect();
    assert!(
        sequences == expected,
        "the console's sequences are not 1..={last} (gap or duplicate): {} events, first \
         mismatch at index {:?}",
        sequences.len(),
        sequences.iter().zip(&expected).position(|(a, b)| a != b)
    );
    assert!(
        theirs.len() as u64 >= last,
        "the source has {} events, fewer than the console's {last}",
        theirs.len()
    );
    for (a, b) in mine.iter().zip(&theirs) {
        assert_eq!(
            (a.sequence, &a.json),
            (b.sequence, &b.json),
            "event {} differs between the console and the source",
            a.sequence
        );
    }
    // Whatever the source appended after the console quit can only be heartbeats.
    for extra in &theirs[mine.len()..] {
        assert_eq!(
            json(extra)["type"],
            "mcpsoc.heartbeat.v1",
            "the console is missing event {}",
            extra.json
        );
    }
    let calls: Vec<serde_json::Value> = mine
        .iter()
        .map(json)
        .filter(|e| e["type"] == "mcpsoc.tool_call.v1")
        .collect();
    assert_eq!(
        calls.len() as u64,
        LINES,
        "every line of the file exactly once"
    );
    for (i, call) in calls.iter().enumerate() {
        assert_eq!(
            call["data"]["call_id"],
            format!("call-{}", i + 1),
            "calls out of order or doubled"
        );
    }
}

/// `q` ends the console with status 0 and gives the terminal back: main screen, cursor shown,
/// line mode and echo on.
#[test]
fn quits_cleanly_and_restores_the_terminal() {
    let world = World::new();
    write_lines(&world.events, (1..=50).map(call_line));
    let mut replay = world.replay(0);
    replay.start();
    let console = world.console("quit");
    console.wait_screen("50 tool calls", SCREEN_TIMEOUT, |s| {
        (tab_count(s, "Tool calls")? == 50).then_some(())
    });
    // While it runs the console owns the alternate screen and hides the cursor; these are what
    // must be undone.
    assert_eq!(console.pane_format("#{alternate_on}"), "1");
    assert_eq!(console.pane_format("#{cursor_flag}"), "0");

    console.key("?");
    console.wait_for_screen("any key closes");
    console.key("Escape");
    console.wait_screen("the help to close", SCREEN_TIMEOUT, |s| {
        (!s.contains("any key closes") && call_rows(s).len() >= 10).then_some(())
    });

    let (status, screen) = console.quit();
    assert_eq!(status, 0, "the console exited with {status}\n{screen}");
    assert_eq!(
        console.pane_format("#{alternate_on}"),
        "0",
        "still on the alternate screen after quitting\n{screen}"
    );
    assert_eq!(
        console.pane_format("#{cursor_flag}"),
        "1",
        "the cursor is still hidden after quitting"
    );
    assert!(
        !screen.contains("Tool calls") && !screen.contains('│'),
        "the console's screen is still there after quitting\n{screen}"
    );
    // `stty -a` ran after the console: canonical mode and echo must be back on.
    let words: Vec<&str> = screen.split_whitespace().collect();
    for mode in ["icanon", "echo", "isig", "icrnl", "opost"] {
        assert!(
            words.contains(&mode),
            "terminal mode {mode} not restored after quitting\n{screen}"
        );
    }
    replay.kill();
}
