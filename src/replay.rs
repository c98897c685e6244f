//! `mcpsoc replay`: publishes the events of a JSON-lines file (or stdin) as a stream source,
//! through the same publisher the gateway and monitor use.
//!
//! Each line is an event envelope (as `mcpsoc export` writes) or an object with `type` and
//! `data` (and optionally `time`). The number of lines consumed is stored atomically with the
//! events, so a replay restarted on the same `--data` continues where it stopped: nothing is
//! published twice and nothing is skipped. A bad line is reported with its number and skipped.

use std::io::BufRead;
use std::time::Duration;

use anyhow::Context;
use chrono::{DateTime, Utc};
use serde_json::Value;

use crate::auth::{StreamGrant, TokenTable, hash_token};
use crate::cli::ReplayArgs;
use crate::config::{Config, PublisherConfig};
use crate::protocol::EventData;
use crate::store::NewEvent;
use crate::stream::{Publisher, owner};

/// Extra-metadata key of the number of input lines already published.
const CURSOR: &str = "replay.lines";
/// Events per append when no rate is set.
const BATCH: usize = 1000;

/// Why a line could not be published.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum LineError {
    /// Not JSON.
    #[error("not JSON: {0}")]
    Json(String),
    /// JSON but not an event.
    #[error("{0}")]
    Shape(String),
}

/// Reads one input line as a payload and optional time.
pub fn parse_line(line: &str, restamp: bool) -> Result<NewEvent, LineError> {
    let value: Value = serde_json::from_str(line).map_err(|e| LineError::Json(e.to_string()))?;
    let kind = value
        .get("type")
        .and_then(Value::as_str)
        .filter(|t| !t.is_empty() && t.len() <= crate::protocol::limits::MAX_ATTRIBUTE_BYTES)
        .ok_or_else(|| {
            LineError::Shape("missing or bad \"type\" (a string of 1..=256 bytes)".into())
        })?;
    let data = value.get("data").cloned().unwrap_or(Value::Null);
    let time = match value.get("time").and_then(Value::as_str) {
        Some(t) if !restamp => Some(
            DateTime::parse_from_rfc3339(t)
                .map_err(|_| LineError::Shape(format!("bad \"time\" {t:?}: expected RFC 3339")))?
                .with_timezone(&Utc),
        ),
        _ => None,
    };
    Ok(NewEvent {
        data: EventData::from_parts(kind, &data),
        time,
    })
}

/// Runs `mcpsoc replay`.
pub fn run(
    config: &Config,
    data: Option<&std::path::Path>,
    args: &ReplayArgs,
) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Runtime::new().context("cannot start the async runtime")?;
    runtime.block_on(serve(config, data, args))
}

async fn serve(
    config: &Config,
    data: Option<&std::path::Path>,
    args: &ReplayArgs,
) -> anyhow::Result<()> {
    let store = crate::runtime::open_store(config, data, "replay")?;
    let mut stream = config
        .replay
        .stream
        .clone()
        .unwrap_or_else(|| PublisherConfig {
            listen: "127.0.0.1:7403".into(),
            ..PublisherConfig::default()
        });
    if let Some(listen) = &args.listen {
        stream.listen = listen.clone();
    }
    if let Some(source) = &args.source {
        stream.source = Some(source.clone());
    }
    let mut extra = Vec::new();
    if let Some(path) = &args.token_file {
        let token = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read {}", path.display()))?;
        let hash = hex::decode(hash_token(token.lines().next().unwrap_or("").trim()))?;
        let token_sha256 =
            <[u8; 32]>::try_from(hash).map_err(|_| anyhow::anyhow!("hash length"))?;
        extra.push(StreamGrant {
            name: format!("token-file:{}", path.display()),
            role: args.role,
            token_sha256,
        });
    }
    let options = crate::runtime::publisher_options(&stream, "replay", TokenTable::new(extra))?;
    if options.tokens.is_empty() {
        anyhow::bail!(
            "no subscriber may connect: add [[replay.stream.subscribers]] to the config (`mcpsoc token new` makes one) or pass --token-file"
        );
    }
    let (publisher, inbox) = Publisher::new(store.clone(), options, true);
    if let Some(inbox) = inbox {
        tokio::spawn(owner::record_state_changes(publisher.clone(), inbox));
    }
    crate::runtime::spawn_retention(store, crate::runtime::retention(config));
    let (addr, _server) = publisher.serve(&stream.listen).await?;
    eprintln!(
        "replay: publishing as {} on ws://{addr}/stream",
        publisher.source()
    );

    let file = args.file.clone();
    let reader: Box<dyn BufRead + Send> = if file.as_os_str() == "-" {
        Box::new(std::io::BufReader::new(std::io::stdin()))
    } else {
        Box::new(std::io::BufReader::new(
            std::fs::File::open(&file)
                .with_context(|| format!("cannot open {}", file.display()))?,
        ))
    };
    let (published, bad) = publish_lines(&publisher, reader, args.rate, args.now).await?;
    eprintln!(
        "replay: published {published} events ({bad} bad lines skipped); head is {}",
        publisher.head()
    );
    if args.exit_when_done {
        return Ok(());
    }
    eprintln!("replay: serving until interrupted (Ctrl-C)");
    tokio::signal::ctrl_c()
        .await
        .context("waiting for Ctrl-C")?;
    Ok(())
}

/// Publishes the lines not yet published; returns (published, bad lines).
async fn publish_lines(
    publisher: &Publisher,
    reader: Box<dyn BufRead + Send>,
    rate: u64,
    restamp: bool,
) -> anyhow::Result<(u64, u64)> {
    let done: u64 = publisher
        .store()
        .extra(CURSOR)?
        .and_then(|v| crate::store::keys::u64_value(&v))
        .unwrap_or(0);
    if done > 0 {
        eprintln!("replay: resuming after line {done} (already published)");
    }
    let per_batch = if rate == 0 {
        BATCH
    } else {
        (rate / 10).clamp(1, BATCH as u64) as usize
    };
    let pause = if rate == 0 {
        Duration::ZERO
    } else {
        Duration::from_secs_f64(per_batch as f64 / rate as f64)
    };
    let (tx, mut rx) = tokio::sync::mpsc::channel::<(u64, String)>(4 * BATCH);
    // Reading stdin or a file blocks: do it on a blocking thread.
    let reading = tokio::task::spawn_blocking(move || -> std::io::Result<()> {
        for (index, line) in reader.lines().enumerate() {
            let number = index as u64 + 1;
            let line = line?;
            if number <= done {
                continue;
            }
            if tx.blocking_send((number, line)).is_err() {
                break;
            }
        }
        Ok(())
    });
    let (mut published, mut bad) = (0u64, 0u64);
    let mut batch = Vec::with_capacity(per_batch);
    let mut cursor = done;
    loop {
        let next = rx.recv().await;
        let finished = next.is_none();
        if let Some((number, line)) = next {
            cursor = number;
            if line.trim().is_empty() {
                continue;
            }
            match parse_line(&line, restamp) {
                Ok(event) => batch.push(event),
                Err(e) => {
                    bad += 1;
                    eprintln!("replay: line {number}: {e}; skipped");
                }
            }
        }
        if batch.len() >= per_batch || (finished && (cursor > done)) {
            let events = std::mem::take(&mut batch);
            published += events.len() as u64;
            let p = publisher.clone();
            let mark = cursor.to_be_bytes().to_vec();
            tokio::task::spawn_blocking(move || p.append_blocking(events, &[(CURSOR, mark)]))
                .await
                .context("append task")??;
            if !pause.is_zero() {
                tokio::time::sleep(pause).await;
            }
        }
        if finished {
            break;
        }
    }
    reading
        .await
        .context("reader task")?
        .context("reading input")?;
    Ok((published, bad))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_envelopes_and_short_forms() {
        let e = parse_line(r#"{"type":"mcpsoc.heartbeat.v1","data":{"uptime_secs":1,"subscribers":0},"time":"2026-11-24T10:00:00.000Z"}"#, false).unwrap();
        assert!(matches!(e.data, EventData::Heartbeat(_)));
        assert!(e.time.is_some());
        let e = parse_line(r#"{"type":"x.future.v3","data":[1,2]}"#, false).unwrap();
        assert!(matches!(e.data, EventData::Unknown { .. }));
        let e = parse_line(r#"{"type":"t","time":"2026-11-24T10:00:00Z"}"#, true).unwrap();
        assert!(e.time.is_none());
    }

    #[test]
    fn refuses_bad_lines_with_reason() {
        assert!(matches!(
            parse_line("{oops", false),
            Err(LineError::Json(_))
        ));
        assert!(
            parse_line(r#"{"data":{}}"#, false)
                .unwrap_err()
                .to_string()
                .contains("type")
        );
        assert!(
            parse_line(r#"{"type":"t","time":"noon"}"#, false)
                .unwrap_err()
                .to_string()
                .contains("RFC 3339")
        );
    }
}
