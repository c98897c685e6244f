//! Plumbing every role shares: opening its store, retention in the background, and turning the
//! configuration into publisher options.

use std::path::Path;
use std::time::Duration;

use anyhow::Context;

use crate::auth::TokenTable;
use crate::config::{Config, PublisherConfig, default_data_dir};
use crate::store::{Retention, Store, StoreOptions};
use crate::stream::PublisherOptions;

/// Opens a role's store from `--data` or the per-user default.
pub fn open_store(config: &Config, data: Option<&Path>, role: &str) -> anyhow::Result<Store> {
    let dir = data
        .map(Path::to_path_buf)
        .unwrap_or_else(|| default_data_dir(role));
    std::fs::create_dir_all(&dir)
        .with_context(|| format!("cannot create data directory {}", dir.display()))?;
    let options = StoreOptions {
        cache_bytes: config.store.cache_mb * 1024 * 1024,
        flush_every_ms: config.store.flush_every_ms.max(1),
    };
    Store::open(&dir, &options).with_context(|| {
        format!(
            "cannot open the store in {} (is another mcpsoc process using it?)",
            dir.display()
        )
    })
}

/// The retention policy of the configuration.
pub fn retention(config: &Config) -> Retention {
    Retention {
        max_age: (config.store.retention_days > 0)
            .then(|| Duration::from_secs(config.store.retention_days * 86_400)),
        max_bytes: (config.store.retention_max_mb > 0)
            .then(|| config.store.retention_max_mb * 1024 * 1024),
    }
}

/// Prunes the store every minute, off the async threads.
pub fn spawn_retention(store: Store, policy: Retention) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(60));
        loop {
            tick.tick().await;
            let store = store.clone();
            let pruned =
                tokio::task::spawn_blocking(move || store.prune(&policy, chrono::Utc::now(), 1000))
                    .await;
            match pruned {
                Ok(Ok(report)) if report.removed > 0 => {
                    tracing::info!(
                        removed = report.removed,
                        bytes = report.bytes,
                        "retention pruned events"
                    )
                }
                Ok(Err(e)) => tracing::warn!(error = %e, "retention failed"),
                _ => {}
            }
        }
    })
}

/// This machine's name, for default source ids.
pub fn host_name() -> String {
    std::fs::read_to_string("/etc/hostname")
        .ok()
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".into())
}

/// Publisher options from a role's stream configuration.
pub fn publisher_options(
    stream: &PublisherConfig,
    role: &str,
    extra: TokenTable,
) -> anyhow::Result<PublisherOptions> {
    let mut tokens = stream
        .token_table()
        .map_err(|e| anyhow::anyhow!("[{role}.stream] {e}"))?;
    tokens.extend(extra);
    let source = stream
        .source
        .clone()
        .unwrap_or_else(|| format!("mcpsoc/{role}/{}", host_name()));
    let mut options = PublisherOptions::new(source, tokens);
    options.live_buffer = stream.live_buffer.max(16);
    options.send_timeout = Duration::from_secs(stream.send_timeout_secs.max(1));
    options.heartbeat =
        (stream.heartbeat_secs > 0).then(|| Duration::from_secs(stream.heartbeat_secs));
    options.allow_plain_non_loopback = stream.allow_plain_non_loopback;
    options.tls = match (&stream.tls_cert, &stream.tls_key) {
        (Some(cert), Some(key)) => Some((cert.clone(), key.clone())),
        (None, None) => None,
        _ => anyhow::bail!("[{role}.stream] set both tls_cert and tls_key, or neither"),
    };
    Ok(options)
}
