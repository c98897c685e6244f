//! `mcpsoc eval` as a user runs it: the real binary over the labelled corpus.

use std::process::Command;

use serde_json::Value;

fn eval(corpus: &str, json: bool) -> std::process::Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_mcpsoc"));
    cmd.args(["eval", "--corpus", corpus]);
    if json {
        cmd.arg("--json");
    }
    cmd.env_remove("MCPSOC_CONFIG")
        .env("RUST_LOG", "off")
        .output()
        .expect("run mcpsoc")
}

fn corpus(name: &str) -> String {
    format!("{}/tests/corpus/{name}", env!("CARGO_MANIFEST_DIR"))
}

fn run_json(name: &str) -> Value {
    let out = eval(&corpus(name), true);
    assert!(
        out.status.success(),
        "eval failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("JSON on stdout")
}

#[test]
fn corpus_precision_and_recall() {
    let report = run_json("tools.jsonl");
    let overall = &report["overall"];
    let precision = overall["precision"].as_f64().unwrap();
    let recall = overall["recall"].as_f64().unwrap();
    assert!(
        precision >= 0.95,
        "precision {precision}; false positives: {}",
        report["false_positives"]
    );
    assert!(
        recall >= 0.95,
        "recall {recall}; false negatives: {}",
        report["false_negatives"]
    );
    for key in ["tp", "fp", "fn", "tn"] {
        assert!(overall[key].is_u64(), "{key}");
    }
    let families = report["families"].as_object().unwrap();
    for family in [
        "poisoning",
        "exfiltration",
        "hidden",
        "shadowing",
        "covert_channel",
        "injection",
        "secret",
    ] {
        let f = &families[family];
        assert!(
            f["tp"].as_u64().unwrap() >= 15,
            "{family}: at least 15 cases"
        );
        assert!(f["recall"].is_f64(), "{family}");
    }
    assert!(report["false_positives"].is_array());
    assert!(report["false_negatives"].is_array());
    // Benign real tool definitions are the bulk of the corpus.
    assert!(overall["tn"].as_u64().unwrap() + overall["fp"].as_u64().unwrap() >= 250);
}

#[test]
fn holdout_runs_and_reports() {
    let report = run_json("holdout.jsonl");
    let overall = &report["overall"];
    let cases = ["tp", "fp", "fn", "tn"]
        .iter()
        .map(|k| overall[*k].as_u64().unwrap())
        .sum::<u64>();
    assert!(cases >= 40, "holdout has {cases} cases");
}

#[test]
fn holdout2_runs_and_reports() {
    let report = run_json("holdout2.jsonl");
    let overall = &report["overall"];
    let cases = ["tp", "fp", "fn", "tn"]
        .iter()
        .map(|k| overall[*k].as_u64().unwrap_or(0))
        .sum::<u64>();
    assert!(cases >= 120, "holdout2 has {cases} cases");
    // Every family is represented.
    assert_eq!(report["families"].as_object().map(|f| f.len()), Some(7));
}

#[test]
fn table_output_is_readable() {
    let out = eval(&corpus("tools.jsonl"), false);
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("precision"));
    assert!(text.contains("recall"));
    assert!(text.contains("covert_channel"));
}

#[test]
fn malformed_corpus_fails_with_line_numbers() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.jsonl");
    let good = r#"{"id":"a","kind":"tool_result","label":"benign","family":null,"server":"x","tool":{"name":"t"},"text":"hello","arguments":null,"note":""}"#;
    let no_family = r#"{"id":"b","kind":"tool_result","label":"malicious","family":null,"server":"x","tool":{"name":"t"},"text":"hi","arguments":null,"note":""}"#;
    std::fs::write(
        &path,
        format!("{good}\n{{not json\n\n{no_family}\n{good}\n"),
    )
    .unwrap();
    let out = eval(path.to_str().unwrap(), true);
    assert!(!out.status.success(), "must fail");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("bad.jsonl:2:"), "{stderr}");
    assert!(stderr.contains("bad.jsonl:4:"), "{stderr}");
    assert!(
        stderr.contains("bad.jsonl:5:") && stderr.contains("duplicate"),
        "{stderr}"
    );
    assert!(out.stdout.is_empty(), "no numbers from a broken corpus");
}

#[test]
fn missing_corpus_fails() {
    let out = eval("/nonexistent/corpus.jsonl", false);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot read corpus"));
}
