//! The console role: a keyboard-first terminal UI over gateway and monitor streams.
//!
//! Shape: each source runs the shared [`Subscriber`] on its own task and ingests into the local
//! store; a data worker thread turns the store into [`data::Snapshot`]s incrementally; the UI
//! loop turns key presses, snapshots and replies into [`app::Action`]s, applies the pure
//! [`app::update`], carries out the returned effects, and draws (only when something changed, at
//! most ~30 frames per second) with [`view::draw`], which reads state and nothing else.

pub mod app;
pub mod data;
pub mod filter;
pub mod keys;
pub mod panes;
pub mod sanitize;
pub mod theme;
pub mod view;
pub mod widgets;

mod shell;

use std::path::{Path, PathBuf};

use anyhow::Context;

use crate::cli::ConsoleArgs;
use crate::config::{Config, SourceConfig};
use crate::stream::SourceSpec;

/// Runs the console until the user quits.
pub fn run(config: &Config, data: Option<&Path>, args: &ConsoleArgs) -> anyhow::Result<()> {
    let prepared = prepare(config, args)?;
    let store = crate::runtime::open_store(config, data, "console")?;
    let runtime = tokio::runtime::Runtime::new().context("cannot start the async runtime")?;
    runtime.block_on(run_prepared(prepared, store))
}

/// A console ready to start: its state, keys, theme and sources, read from the configuration.
pub struct Prepared {
    app: app::App,
    specs: Vec<SourceSpec>,
    retention: crate::store::Retention,
}

/// Reads what the console needs (theme, key bindings, source tokens). Blocking file reads, no
/// terminal: call it off the async threads.
pub fn prepare(config: &Config, args: &ConsoleArgs) -> anyhow::Result<Prepared> {
    let specs = if args.offline {
        Vec::new()
    } else {
        source_specs(config, args)?
    };
    if specs.is_empty() && !args.offline {
        anyhow::bail!(
            "no sources: add [[console.sources]] to the config, pass --source NAME=ws://HOST:PORT/stream with --token-file NAME=PATH, or use --offline to browse stored events"
        );
    }
    let theme_name = args
        .theme
        .clone()
        .unwrap_or_else(|| config.console.theme.clone());
    let mut theme = theme::Theme::load(&theme_name).map_err(|e| anyhow::anyhow!("{e}"))?;
    if theme::no_color_requested() {
        theme = theme.no_color();
    }
    let overrides = config
        .console
        .keys
        .iter()
        .map(|(k, v)| (k.clone(), v.to_vec()))
        .collect();
    let keymap = keys::KeyMap::with_overrides(&overrides)
        .map_err(|e| anyhow::anyhow!("[console.keys] {e}"))?;
    let app = app::App::new(
        theme,
        theme_name,
        keymap,
        args.readonly,
        args.offline,
        config.console.bell && !args.no_bell,
    );
    Ok(Prepared {
        app,
        specs,
        retention: crate::runtime::retention(config),
    })
}

/// Runs a prepared console on the caller's runtime until the user quits (`mcpsoc demo` runs
/// every role on one runtime this way).
pub async fn run_prepared(prepared: Prepared, store: crate::store::Store) -> anyhow::Result<()> {
    shell::run(prepared.app, store, prepared.specs, prepared.retention).await
}

fn pairs<'a>(values: &'a [String], flag: &str) -> anyhow::Result<Vec<(&'a str, &'a str)>> {
    values
        .iter()
        .map(|v| {
            v.split_once('=')
                .ok_or_else(|| anyhow::anyhow!("{flag} {v:?}: expected NAME=VALUE"))
        })
        .collect()
}

/// The sources to subscribe to: the config's, then the command line's.
fn source_specs(config: &Config, args: &ConsoleArgs) -> anyhow::Result<Vec<SourceSpec>> {
    let mut sources: Vec<SourceConfig> = config.console.sources.clone();
    for (name, url) in pairs(&args.sources, "--source")? {
        sources.push(SourceConfig {
            name: name.to_string(),
            url: url.to_string(),
            token_file: None,
            token_env: None,
            ca_file: None,
            pin_sha256: None,
        });
    }
    for (name, path) in pairs(&args.token_files, "--token-file")? {
        let source = sources
            .iter_mut()
            .find(|s| s.name == name)
            .ok_or_else(|| anyhow::anyhow!("--token-file {name}: no source named {name}"))?;
        source.token_file = Some(PathBuf::from(path));
    }
    for (name, var) in pairs(&args.token_envs, "--token-env")? {
        let source = sources
            .iter_mut()
            .find(|s| s.name == name)
            .ok_or_else(|| anyhow::anyhow!("--token-env {name}: no source named {name}"))?;
        source.token_env = Some(var.to_string());
    }
    for (name, pin) in pairs(&args.pins, "--pin")? {
        let source = sources
            .iter_mut()
            .find(|s| s.name == name)
            .ok_or_else(|| anyhow::anyhow!("--pin {name}: no source named {name}"))?;
        source.pin_sha256 = Some(pin.to_string());
    }
    for (name, path) in pairs(&args.ca_files, "--ca-file")? {
        let source = sources
            .iter_mut()
            .find(|s| s.name == name)
            .ok_or_else(|| anyhow::anyhow!("--ca-file {name}: no source named {name}"))?;
        source.ca_file = Some(PathBuf::from(path));
    }
    sources
        .into_iter()
        .map(|s| {
            let token = s.token().map_err(|e| anyhow::anyhow!(e))?;
            let pin_sha256 = s
                .pin_sha256
                .as_deref()
                .map(crate::stream::tls::parse_pin)
                .transpose()
                .map_err(|e| anyhow::anyhow!("source {}: {e}", s.name))?;
            Ok(SourceSpec {
                name: s.name,
                url: s.url,
                token,
                ca_file: s.ca_file,
                pin_sha256,
            })
        })
        .collect()
}
