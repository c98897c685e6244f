//! `mcpsoc export`: stored events as JSON lines, filtered by type, source and time.

use std::io::Write;
use std::path::Path;

use anyhow::Context;
use chrono::DateTime;

use crate::cli::ExportArgs;
use crate::config::Config;
use crate::store::{Store, StoredEvent, view::EventView};

/// A parsed export filter.
#[derive(Debug, Clone, Default)]
pub struct ExportFilter {
    /// Types to keep (all when empty).
    pub types: Vec<String>,
    /// Source to keep.
    pub source: Option<String>,
    /// Earliest time, ms.
    pub since_ms: i64,
    /// Latest time, ms.
    pub until_ms: i64,
}

impl ExportFilter {
    /// Builds a filter from the command line.
    pub fn from_args(args: &ExportArgs) -> anyhow::Result<Self> {
        let parse = |t: &Option<String>, default: i64| -> anyhow::Result<i64> {
            match t {
                Some(t) => Ok(DateTime::parse_from_rfc3339(t)
                    .with_context(|| {
                        format!("bad time {t:?}: expected RFC 3339 such as 2026-11-24T10:00:00Z")
                    })?
                    .timestamp_millis()),
                None => Ok(default),
            }
        };
        Ok(Self {
            types: args.types.clone(),
            source: args.source.clone(),
            since_ms: parse(&args.since, i64::MIN)?,
            until_ms: parse(&args.until, i64::MAX)?,
        })
    }

    fn keeps(&self, event: &StoredEvent) -> anyhow::Result<bool> {
        if self.source.as_ref().is_some_and(|s| s != &event.source) {
            return Ok(false);
        }
        let view = EventView::parse(&event.json)?;
        Ok(view.time_ms >= self.since_ms
            && view.time_ms <= self.until_ms
            && (self.types.is_empty() || self.types.iter().any(|t| t == view.kind.as_ref())))
    }
}

/// Writes every event the filter keeps, one JSON line each; returns how many.
pub fn export(store: &Store, filter: &ExportFilter, out: &mut dyn Write) -> anyhow::Result<u64> {
    let mut written = 0u64;
    let mut write = |event: StoredEvent| -> anyhow::Result<()> {
        if filter.keeps(&event)? {
            out.write_all(event.json.as_bytes())?;
            out.write_all(b"\n")?;
            written += 1;
        }
        Ok(())
    };
    if filter.types.is_empty() {
        for event in store.all_events() {
            write(event?)?;
        }
    } else {
        for kind in &filter.types {
            for event in store.of_type_between(kind, filter.since_ms, filter.until_ms) {
                write(event?)?;
            }
        }
    }
    out.flush()?;
    Ok(written)
}

/// Runs `mcpsoc export`.
pub fn run(config: &Config, data: Option<&Path>, args: &ExportArgs) -> anyhow::Result<()> {
    let filter = ExportFilter::from_args(args)?;
    let store = crate::runtime::open_store(config, data, "console")?;
    let written = match &args.output {
        Some(path) => {
            let file = std::fs::File::create(path)
                .with_context(|| format!("cannot create {}", path.display()))?;
            export(&store, &filter, &mut std::io::BufWriter::new(file))?
        }
        None => export(
            &store,
            &filter,
            &mut std::io::BufWriter::new(std::io::stdout().lock()),
        )?,
    };
    eprintln!("exported {written} events");
    Ok(())
}
