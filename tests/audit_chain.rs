//! The tamper-evident audit chain: a producer's store seals every event it appends; the real
//! `mcpsoc audit verify` accepts the untouched store (also after retention pruned its oldest
//! events) and its export, and names the first broken link after an event is edited, deleted
//! from the middle, deleted from the end or stripped of its link, directly in sled.

mod common;

use std::path::Path;
use std::process::Command;

use chrono::Utc;
use common::events::{auth_rejected, tool_call};
use mcpsoc::store::{NewEvent, Retention, Store, StoreOptions, keys};
use tempfile::TempDir;

const SOURCE: &str = "mcpsoc/gateway/audit-test";

fn options() -> StoreOptions {
    StoreOptions {
        cache_bytes: 8 * 1024 * 1024,
        flush_every_ms: 100,
    }
}

/// A gateway-like log of `n` events, appended in batches of three as the gateway does.
fn write_log(dir: &Path, n: u64) {
    let store = common::open_store(dir, &options());
    let mut i = 0;
    while i < n {
        let batch: Vec<NewEvent> = (i..(i + 3).min(n))
            .map(|k| {
                if k % 4 == 0 {
                    auth_rejected(&format!("user{k}")).into()
                } else {
                    tool_call("alice", "alice:s1", &format!("tool{k}")).into()
                }
            })
            .collect();
        i += batch.len() as u64;
        store.append(SOURCE, batch, &[], |_| {}).expect("append");
    }
    store.flush().expect("flush");
}

struct Verify {
    ok: bool,
    stdout: String,
    stderr: String,
}

fn verify(args: &[&str]) -> Verify {
    let out = common::retry_locked(|| {
        let out = Command::new(env!("CARGO_BIN_EXE_mcpsoc"))
            .args(["audit", "verify"])
            .args(args)
            .output()
            .map_err(|e| e.to_string())?;
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        if stderr.contains("could not acquire lock") || stderr.contains("is another mcpsoc") {
            return Err(format!("could not acquire lock: {stderr}"));
        }
        Ok(out)
    });
    Verify {
        ok: out.status.success(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

fn verify_store(dir: &Path) -> Verify {
    verify(&["--data", &dir.display().to_string()])
}

/// Edits the sled tree directly, as someone with access to the disk would.
fn tamper(dir: &Path, edit: impl FnOnce(&sled::Tree, u32)) {
    let source_id = {
        let store = common::open_store(dir, &options());
        store.source_id(SOURCE).expect("source known")
    };
    let db = common::retry_locked(|| sled::open(dir));
    let tree = db.open_tree("events").expect("tree");
    edit(&tree, source_id);
    db.flush().expect("flush");
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for entry in std::fs::read_dir(from).expect("read dir") {
        let entry = entry.expect("entry");
        let target = to.join(entry.file_name());
        if entry.file_type().expect("type").is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).expect("copy");
        }
    }
}

/// A fresh copy of a 40-event log for one tampering case.
fn log_copy(pristine: &Path, tmp: &TempDir, name: &str) -> std::path::PathBuf {
    let dir = tmp.path().join(name);
    copy_dir(pristine, &dir);
    dir
}

#[test]
fn audit_verify_accepts_the_untouched_log_and_names_the_first_broken_link() {
    let tmp = tempfile::tempdir().expect("tmp");
    let pristine = tmp.path().join("pristine");
    write_log(&pristine, 40);

    let v = verify_store(&pristine);
    assert!(v.ok, "untouched log refused:\n{}\n{}", v.stdout, v.stderr);
    assert!(
        v.stdout.contains(&format!(
            "OK      {SOURCE}: sequences 1..=40, 40 events, 40 chained"
        )),
        "{}",
        v.stdout
    );

    // Edited: one character of event 7's payload.
    let dir = log_copy(&pristine, &tmp, "edited");
    tamper(&dir, |tree, id| {
        let key = keys::event(id, 7);
        let text = String::from_utf8(tree.get(key).expect("get").expect("event 7").to_vec())
            .expect("utf-8");
        assert!(text.contains("alice"), "{text}");
        tree.insert(key, text.replacen("alice", "alicf", 1).as_bytes())
            .expect("insert");
    });
    let v = verify_store(&dir);
    assert!(!v.ok, "edited log accepted:\n{}", v.stdout);
    assert!(
        v.stdout.contains(&format!(
            "BROKEN  {SOURCE}: sequence 7: the event does not match its chain hash (edited)"
        )),
        "{}",
        v.stdout
    );
    assert!(
        v.stderr.contains("1 of 1 chains are broken"),
        "{}",
        v.stderr
    );

    // Edited and re-sealed with a matching hash: the next link breaks instead.
    let dir = log_copy(&pristine, &tmp, "resealed");
    tamper(&dir, |tree, id| {
        let prev = String::from_utf8(
            tree.get(keys::event(id, 6))
                .expect("get")
                .expect("6")
                .to_vec(),
        )
        .expect("utf-8");
        let text = String::from_utf8(
            tree.get(keys::event(id, 7))
                .expect("get")
                .expect("7")
                .to_vec(),
        )
        .expect("utf-8");
        let (_, prev_link) = mcpsoc::store::chain::unseal(&prev).expect("sealed");
        let (unsealed, _) = mcpsoc::store::chain::unseal(&text).expect("sealed");
        let forged = unsealed.replacen("alice", "mallory", 1);
        let (resealed, _) = mcpsoc::store::chain::seal(prev_link, forged);
        tree.insert(keys::event(id, 7), resealed.as_bytes())
            .expect("insert");
    });
    let v = verify_store(&dir);
    assert!(!v.ok);
    assert!(
        v.stdout.contains("sequence 8: the event does not match"),
        "{}",
        v.stdout
    );

    // Deleted from the middle.
    let dir = log_copy(&pristine, &tmp, "deleted");
    tamper(&dir, |tree, id| {
        tree.remove(keys::event(id, 12)).expect("remove");
    });
    let v = verify_store(&dir);
    assert!(!v.ok);
    assert!(
        v.stdout
            .contains("sequence 12: the event is missing (deleted)"),
        "{}",
        v.stdout
    );

    // Deleted from the end, with the resume position moved back to hide it.
    let dir = log_copy(&pristine, &tmp, "truncated");
    tamper(&dir, |tree, id| {
        for seq in 38..=40 {
            tree.remove(keys::event(id, seq)).expect("remove");
        }
        tree.insert(keys::last(id), 37u64.to_be_bytes().to_vec())
            .expect("insert");
    });
    let v = verify_store(&dir);
    assert!(!v.ok);
    assert!(
        v.stdout
            .contains("after sequence 37: the chain head does not match"),
        "{}",
        v.stdout
    );

    // Stripped of its link.
    let dir = log_copy(&pristine, &tmp, "stripped");
    tamper(&dir, |tree, id| {
        let text = String::from_utf8(
            tree.get(keys::event(id, 20))
                .expect("get")
                .expect("20")
                .to_vec(),
        )
        .expect("utf-8");
        let (unsealed, _) = mcpsoc::store::chain::unseal(&text).expect("sealed");
        tree.insert(keys::event(id, 20), unsealed.as_bytes())
            .expect("insert");
    });
    let v = verify_store(&dir);
    assert!(!v.ok);
    assert!(
        v.stdout
            .contains("sequence 20: the event carries no chain hash"),
        "{}",
        v.stdout
    );

    // The oldest deleted without retention.
    let dir = log_copy(&pristine, &tmp, "headless");
    tamper(&dir, |tree, id| {
        tree.remove(keys::event(id, 1)).expect("remove");
    });
    let v = verify_store(&dir);
    assert!(!v.ok);
    assert!(
        v.stdout
            .contains("before sequence 2: the oldest events are missing"),
        "{}",
        v.stdout
    );
}

#[test]
fn retention_keeps_the_chain_verifiable_and_the_chain_continues_after_reopen() {
    let tmp = tempfile::tempdir().expect("tmp");
    let dir = tmp.path().join("log");
    write_log(&dir, 30);
    {
        let store = common::open_store(&dir, &options());
        let removed = store
            .prune(
                &Retention {
                    max_age: None,
                    max_bytes: Some(store.stored_bytes() / 2),
                },
                Utc::now(),
                4,
            )
            .expect("prune");
        assert!(removed.removed > 5, "{removed:?}");
        // The chain goes on from the stored head after a reopen.
        store
            .append(
                SOURCE,
                vec![tool_call("bob", "bob:s1", "late").into()],
                &[],
                |_| {},
            )
            .expect("append");
        store.flush().expect("flush");
    }
    let v = verify_store(&dir);
    assert!(v.ok, "{}\n{}", v.stdout, v.stderr);
    assert!(
        v.stdout.contains("were pruned by retention"),
        "{}",
        v.stdout
    );
    assert!(v.stdout.contains("..=31,"), "{}", v.stdout);
}

#[test]
fn an_export_verifies_on_its_own_and_an_edited_line_is_named() {
    let tmp = tempfile::tempdir().expect("tmp");
    let dir = tmp.path().join("log");
    write_log(&dir, 25);
    let export = tmp.path().join("export.jsonl");
    let out = common::retry_locked(|| {
        let out = Command::new(env!("CARGO_BIN_EXE_mcpsoc"))
            .args(["export", "--data", &dir.display().to_string(), "-o"])
            .arg(&export)
            .output()
            .map_err(|e| e.to_string())?;
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        if stderr.contains("is another mcpsoc") {
            return Err(format!("could not acquire lock: {stderr}"));
        }
        Ok(out)
    });
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let file = export.display().to_string();
    let v = verify(&["--file", &file, "--json"]);
    assert!(v.ok, "{}\n{}", v.stdout, v.stderr);
    let report: serde_json::Value = serde_json::from_str(v.stdout.trim()).expect("json");
    assert_eq!(report["intact"], true);
    assert_eq!(report["sources"][0]["events"], 25);
    assert_eq!(report["sources"][0]["sealed"], 25);

    let text = std::fs::read_to_string(&export).expect("read");
    let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
    lines[14] = lines[14].replacen("\"alice\"", "\"eve\"", 1);
    std::fs::write(&export, lines.join("\n")).expect("write");
    let v = verify(&["--file", &file]);
    assert!(!v.ok, "{}", v.stdout);
    assert!(
        v.stdout.contains("sequence 15: the event does not match"),
        "{}",
        v.stdout
    );
}

#[test]
fn a_missing_store_is_an_error_not_an_empty_success() {
    let tmp = tempfile::tempdir().expect("tmp");
    let v = verify_store(&tmp.path().join("nothing-here"));
    assert!(!v.ok);
    assert!(v.stderr.contains("no store at"), "{}", v.stderr);
}

#[test]
fn events_from_a_store_are_sealed_on_the_wire_and_a_copy_keeps_them_verifiable() {
    let tmp = tempfile::tempdir().expect("tmp");
    let producer = Store::open(&tmp.path().join("p"), &options()).expect("open");
    let appended = producer
        .append(
            SOURCE,
            (0..5)
                .map(|k| tool_call("carol", "carol:s1", &format!("t{k}")).into())
                .collect(),
            &[],
            |_| {},
        )
        .expect("append");
    let copy = Store::open(&tmp.path().join("c"), &options()).expect("open");
    let texts: Vec<&str> = appended.iter().skip(2).map(|a| &*a.json).collect();
    copy.ingest(&texts).expect("ingest");
    let reports = copy.verify_chains(None).expect("verify");
    assert_eq!(reports.len(), 1);
    assert!(reports[0].intact(), "{:?}", reports[0]);
    assert_eq!(reports[0].sealed, 3);
    assert!(reports[0].notes[0].contains("begins at sequence 3"));
}
