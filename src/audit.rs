//! `mcpsoc audit verify`: checks the tamper-evident hash chain (see [`crate::store::chain`]) of a
//! store or of a JSON-lines export, prints one line per source and fails when a link is broken.

use std::collections::BTreeMap;
use std::io::{BufRead, Write};
use std::path::Path;

use anyhow::Context;
use serde_json::json;

use crate::cli::AuditCommand;
use crate::config::Config;
use crate::store::chain::{ChainReport, Position, Start, Verifier};

/// Runs `mcpsoc audit ...`.
pub fn run(config: &Config, data: Option<&Path>, command: &AuditCommand) -> anyhow::Result<()> {
    match command {
        AuditCommand::Verify(args) => {
            let reports = match &args.file {
                Some(file) => verify_file(file, args.source.as_deref())?,
                None => verify_store(config, data, args.source.as_deref())?,
            };
            let mut out = std::io::stdout().lock();
            print_reports(&reports, args.json, &mut out)?;
            let broken = reports.iter().filter(|r| !r.intact()).count();
            if reports.is_empty() {
                anyhow::bail!("no events to check");
            }
            if broken > 0 {
                anyhow::bail!("{broken} of {} chains are broken", reports.len());
            }
            Ok(())
        }
    }
}

fn verify_store(
    config: &Config,
    data: Option<&Path>,
    source: Option<&str>,
) -> anyhow::Result<Vec<ChainReport>> {
    let dir = data
        .map(Path::to_path_buf)
        .unwrap_or_else(|| crate::config::default_data_dir("gateway"));
    if !dir.is_dir() {
        anyhow::bail!("no store at {} (pass --data DIR)", dir.display());
    }
    let store = crate::runtime::open_store(config, Some(&dir), "gateway")?;
    Ok(store.verify_chains(source)?)
}

/// Checks the chains of JSON lines as `mcpsoc export` writes them (each source's events in
/// sequence order). A copy begins wherever it begins: its first link is taken as given.
pub fn verify_lines(lines: impl BufRead, only: Option<&str>) -> anyhow::Result<Vec<ChainReport>> {
    let mut verifiers: BTreeMap<String, Verifier> = BTreeMap::new();
    for (n, line) in lines.lines().enumerate() {
        let line = line.with_context(|| format!("line {}: cannot read", n + 1))?;
        if line.trim().is_empty() {
            continue;
        }
        let position = Position::of(&line)
            .with_context(|| format!("line {}: not an event with source and sequence", n + 1))?;
        if only.is_some_and(|o| o != position.source) {
            continue;
        }
        verifiers
            .entry(position.source.clone())
            .or_insert_with(|| Verifier::new(&position.source, Start::Unknown))
            .feed(position.sequence, &line);
    }
    Ok(verifiers
        .into_values()
        .map(|v| v.finish(None, None))
        .collect())
}

fn verify_file(file: &Path, source: Option<&str>) -> anyhow::Result<Vec<ChainReport>> {
    if file == Path::new("-") {
        return verify_lines(std::io::stdin().lock(), source);
    }
    let f = std::fs::File::open(file).with_context(|| format!("cannot open {}", file.display()))?;
    verify_lines(std::io::BufReader::new(f), source)
}

/// Prints the reports, as text lines or one JSON document.
pub fn print_reports(
    reports: &[ChainReport],
    as_json: bool,
    out: &mut dyn Write,
) -> anyhow::Result<()> {
    if as_json {
        let sources: Vec<_> = reports
            .iter()
            .map(|r| {
                json!({
                    "source": r.source,
                    "intact": r.intact(),
                    "first": r.range.map(|(f, _)| f),
                    "last": r.range.map(|(_, l)| l),
                    "events": r.events,
                    "sealed": r.sealed,
                    "broken": r.broken.as_ref().map(|b| b.to_string()),
                    "notes": r.notes,
                })
            })
            .collect();
        writeln!(
            out,
            "{}",
            json!({"intact": reports.iter().all(ChainReport::intact), "sources": sources})
        )?;
        return Ok(());
    }
    for r in reports {
        let range = match r.range {
            Some((first, last)) => format!("sequences {first}..={last}"),
            None => "no events".to_string(),
        };
        match &r.broken {
            None => writeln!(
                out,
                "OK      {}: {range}, {} events, {} chained",
                r.source, r.events, r.sealed
            )?,
            Some(b) => writeln!(out, "BROKEN  {}: {b}", r.source)?,
        }
        for note in &r.notes {
            writeln!(out, "        note: {note}")?;
        }
    }
    Ok(())
}
