//! `mcpsoc demo --no-tui`: the real binary runs the sample server, gateway, monitor and traffic
//! headless; its output names every scripted incident, at least one monitor alert of each kind
//! and the approvals, its temporary data folder is gone afterwards, and it exits 0.

use std::io::Read;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn lines_with<'a>(out: &'a str, label: &str, needle: &str) -> Vec<&'a str> {
    out.lines()
        .filter(|l| l.contains(&format!(" {label} ")) && l.contains(needle))
        .collect()
}

#[test]
fn headless_demo_reports_every_incident_alert_and_approval() {
    // dave's call-rate spike comes a minute after his first call (the monitor learns his rate
    // over a full minute first, in real time whatever --speed), so run for 75 s.
    let mut child = Command::new(env!("CARGO_BIN_EXE_mcpsoc"))
        .args(["demo", "--no-tui", "--duration", "75", "--speed", "3"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start mcpsoc demo");
    let mut stdout = child.stdout.take().expect("stdout");
    let mut stderr = child.stderr.take().expect("stderr");
    let out_reader = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = stdout.read_to_string(&mut text);
        text
    });
    let err_reader = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = stderr.read_to_string(&mut text);
        text
    });
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for mcpsoc demo") {
            break status;
        }
        if started.elapsed() > Duration::from_secs(120) {
            let _ = child.kill();
            let _ = child.wait();
            panic!("mcpsoc demo --duration 75 still running after 120 s");
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    let out = out_reader.join().expect("stdout reader");
    let err = err_reader.join().expect("stderr reader");
    let context = format!("--- stdout ---\n{out}\n--- stderr ---\n{err}");
    assert!(status.success(), "exit status {status}\n{context}");

    for incident in [
        "secret-leak",
        "injection",
        "wrong-audience",
        "rug-pull",
        "session-replay",
        "hidden-tool",
        "benign-change",
        "rate-spike",
    ] {
        assert!(
            !lines_with(&out, "INCIDENT", &format!("{incident}:")).is_empty(),
            "no INCIDENT line for {incident}\n{context}"
        );
    }

    // At least one alert from the monitor's stream of each kind.
    for (kind, rule) in [
        ("rug pull", " rug_pull.definition_changed "),
        ("poisoned description", " poisoning."),
        ("hidden characters", " hidden."),
        ("wrong audience", " auth.wrong_audience "),
        ("session reuse", " session.reuse_by_other_identity "),
        ("secret in a result", " secret."),
        ("injection in a result", " injection."),
        ("call-rate spike", " behaviour.rate_spike "),
    ] {
        assert!(
            !lines_with(&out, "ALERT", rule).is_empty(),
            "no {kind} alert ({rule:?})\n{context}"
        );
    }
    let hidden = lines_with(&out, "ALERT", " hidden.");
    assert!(
        hidden.iter().any(|l| l.contains("summarize_document")),
        "hidden-character alerts are not about the new tool\n{context}"
    );

    // What the gateway did, as its stream tells it.
    for (what, label, needle) in [
        (
            "token refused",
            "GATEWAY",
            "refused a token (wrong_audience)",
        ),
        (
            "session reuse refused",
            "GATEWAY",
            "refused session reuse: mallory",
        ),
        ("rug pull pending", "APPROVAL", "pending  demo/read_file"),
        (
            "new tool pending",
            "APPROVAL",
            "pending  demo/summarize_document",
        ),
        (
            "harmless change approved",
            "APPROVAL",
            "approved demo/get_weather",
        ),
        (
            "hidden tool rejected",
            "APPROVAL",
            "rejected demo/summarize_document",
        ),
    ] {
        assert!(
            !lines_with(&out, label, needle).is_empty(),
            "no {what} line ({label} … {needle})\n{context}"
        );
    }

    // The traffic saw the changes: refused while pending, working again once approved.
    assert!(
        !lines_with(&out, "TRAFFIC", "read_file: refused by the gateway").is_empty(),
        "the traffic never saw the rug-pulled tool refused\n{context}"
    );
    assert!(
        !lines_with(&out, "TRAFFIC", "get_weather: works again").is_empty(),
        "the traffic never saw the approved change working\n{context}"
    );
    assert!(
        !lines_with(&out, "TRAFFIC", "got HTTP 401, 401").is_empty(),
        "wrong-audience tokens were not refused with 401\n{context}"
    );
    assert!(
        !lines_with(&out, "TRAFFIC", "replay of alice's session got HTTP 403").is_empty(),
        "the replayed session was not refused with 403\n{context}"
    );

    // The temporary data folder is removed at exit.
    let data = out
        .lines()
        .find_map(|l| l.split_once(" data ").map(|(_, rest)| rest.trim()))
        .and_then(|rest| rest.split(" (removed").next())
        .expect("the data folder is printed");
    assert!(
        !std::path::Path::new(data).exists(),
        "{data} still exists\n{context}"
    );
}
