//! `mcpsoc demo`: the whole system in one process, with nothing installed beyond the binary.
//!
//! On one tokio runtime it starts a sample MCP server ([`server`], the official Rust SDK over
//! Streamable HTTP), the real gateway in front of it with a fresh demo token issuer
//! ([`setup`]), the real monitor on the gateway's stream, traffic from four users through real
//! MCP clients with scripted incidents ([`traffic`]), the demo's own stream links ([`watch`])
//! and, unless `--no-tui`, the console on both streams. Without the console it prints one line
//! per notable event ([`report`]).

pub mod parts;
pub mod raw;
pub mod report;
pub mod server;
pub mod setup;
pub mod traffic;
pub mod watch;

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::Args;

use crate::cli::ConsoleArgs;
use crate::config::Config;
use crate::store::Store;
use crate::stream::SourceSpec;
use report::{Kind, Report};
use setup::{DataDir, Secrets, UPSTREAM};

const HELP: &str = "\
What runs, all in this process on one runtime:
  - a sample MCP server (the official Rust SDK, rmcp, Streamable HTTP on 127.0.0.1) with
    read_file, list_directory, search_issues, send_email and get_weather over an in-memory
    team workspace;
  - the gateway in front of it, at http://127.0.0.1:PORT/mcp/demo, accepting tokens signed by
    a fresh Ed25519 demo issuer (https://idp.demo.mcpsoc); the initial tools are approved once
    at start, after that every changed or new tool waits for an approver;
  - the monitor on the gateway's stream;
  - traffic: alice, bob, carol and dave through real MCP clients with signed short-lived
    tokens, and scripted incidents: a secret in a tool result, a prompt injection in a result,
    tokens minted for another service, a rug pull (poisoned description), a session id
    replayed by another user, a new tool with invisible characters, a harmless change, and a
    call-rate spike (a minute after dave's first call: the monitor learns his rate first);
  - the console on both streams (unless --no-tui). Try 2 (alerts), 4 (approvals), Enter for
    the diff, a to approve, x to reject: approved tools start working for the traffic.

With --no-tui the same system runs headless and prints one line per notable event (INCIDENT,
ALERT, APPROVAL, GATEWAY, TRAFFIC, APPROVER); the demo then plays the approver itself: it
approves the harmless change, rejects the hidden-character tool and leaves the rug pull
pending.

Data (stores, stream tokens, the issuer's JWKS, demo.log) goes to a temporary folder that is
removed at exit, or to --data DIR, which is kept (gateway/, monitor/, console/, demo/,
tokens/). Log filter: RUST_LOG (default info,rmcp=warn).

The parts can also run as separate processes, each in its own terminal, with the real roles and
the configurations in assets/demo/ (docs/OPERATIONS.md, \"The demo as separate processes\"):
  mcpsoc demo server                      the sample MCP server on 127.0.0.1:7490
  mcpsoc --config assets/demo/gateway.toml --data D/gateway gateway
  mcpsoc --config assets/demo/monitor.toml --data D/monitor monitor
  mcpsoc --config assets/demo/console.toml --data D/console console
  mcpsoc demo traffic --issuer-key assets/demo/DEMO-ONLY-issuer-key.pem \\
      --gateway-stream ws://127.0.0.1:7401/stream \\
      --approver-token-file assets/demo/tokens/traffic-gateway.token";

/// `mcpsoc demo`.
#[derive(Debug, Clone, Args)]
#[command(after_help = HELP, args_conflicts_with_subcommands = true)]
pub struct DemoArgs {
    /// Run one part on its own instead of everything (with the real roles and the
    /// configurations in assets/demo/; see docs/OPERATIONS.md).
    #[command(subcommand)]
    pub part: Option<parts::DemoPart>,
    /// Run without the terminal UI and print one line per notable event (scripts, tests).
    #[arg(long)]
    pub no_tui: bool,
    /// Scale the traffic's pace and the incident script: 2 runs twice as fast.
    #[arg(long, default_value_t = 1.0, value_name = "FACTOR", value_parser = parse_speed)]
    pub speed: f64,
    /// With --no-tui: stop after this many seconds (default: until interrupted).
    #[arg(long, value_name = "SECS")]
    pub duration: Option<u64>,
}

fn parse_speed(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(v) if v.is_finite() && (0.1..=100.0).contains(&v) => Ok(v),
        _ => Err(format!("{text:?}: use a number from 0.1 to 100")),
    }
}

/// Runs `mcpsoc demo` until the console quits, `--duration` passes or Ctrl-C; `mcpsoc demo
/// server` and `mcpsoc demo traffic` run one part on its own.
pub fn run(config: &Config, data: Option<&Path>, args: &DemoArgs) -> anyhow::Result<()> {
    if let Some(part) = &args.part {
        return parts::run(config, data, part);
    }
    if args.duration.is_some() && !args.no_tui {
        anyhow::bail!("--duration applies to --no-tui; with the console, quit with q");
    }
    let dir = DataDir::create(data)?;
    let log_guard = init_log(&dir.root);
    eprintln!(
        "mcpsoc demo: starting the sample server, gateway, monitor and traffic (data in {})",
        dir.root.display()
    );
    let (report, printer) = if args.no_tui {
        let (report, thread) = Report::stdout();
        (report, Some(thread))
    } else {
        (Report::log_only(), None)
    };
    let runtime = tokio::runtime::Runtime::new().context("cannot start the async runtime")?;
    let result = runtime.block_on(demo(config, &dir, args, report));
    runtime.shutdown_timeout(Duration::from_secs(3));
    if let Some(thread) = printer {
        let _ = thread.join();
    }
    drop(log_guard);
    if dir.temporary {
        let _ = std::fs::remove_dir_all(&dir.root);
    }
    result
}

/// The demo's log goes to `demo.log` in its folder (the console may own the terminal).
fn init_log(dir: &Path) -> Option<tracing_appender::non_blocking::WorkerGuard> {
    let appender = tracing_appender::rolling::never(dir, "demo.log");
    let (writer, guard) = tracing_appender::non_blocking(appender);
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,rmcp=warn"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(false)
        .with_writer(writer)
        .try_init()
        .ok()?;
    Some(guard)
}

/// Opens a role's store off the async threads.
async fn open_store(config: &Config, dir: PathBuf, role: &'static str) -> anyhow::Result<Store> {
    let config = config.clone();
    tokio::task::spawn_blocking(move || crate::runtime::open_store(&config, Some(&dir), role))
        .await
        .context("opening a store")?
}

/// A free loopback port for the gateway, whose resource URI must name it before it starts.
async fn free_address() -> anyhow::Result<String> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .context("cannot find a free port")?;
    Ok(listener.local_addr()?.to_string())
}

async fn demo(base: &Config, dir: &DataDir, args: &DemoArgs, report: Report) -> anyhow::Result<()> {
    let secrets = {
        let dir = dir.clone();
        tokio::task::spawn_blocking(move || Secrets::create(&dir))
            .await
            .context("creating the demo's keys")??
    };
    let secrets = Arc::new(secrets);

    // The sample MCP server.
    let workspace = server::Workspace::new();
    let initial_hashes: HashSet<String> = workspace
        .tools()
        .iter()
        .map(crate::protocol::hash::tool_definition_hash)
        .collect();
    let server_url = server::serve(workspace.clone()).await?;

    // The gateway in front of it.
    let listen = free_address().await?;
    let gateway_config = setup::gateway_config(base, &secrets, &listen, &server_url);
    let resource = gateway_config.gateway.resource.clone();
    let store = open_store(base, dir.role("gateway"), "gateway").await?;
    let gateway = crate::gateway::start(&gateway_config, store)
        .await
        .context("starting the gateway")?;
    let mcp_url = format!("http://{}/mcp/{UPSTREAM}", gateway.mcp);
    let gateway_stream = format!("ws://{}/stream", gateway.stream);

    // The monitor on the gateway's stream.
    let monitor_config = setup::monitor_config(base, &secrets, &gateway_stream);
    let store = open_store(base, dir.role("monitor"), "monitor").await?;
    let monitor = crate::monitor::start(&monitor_config, store)
        .await
        .context("starting the monitor")?;
    let monitor_stream = format!("ws://{}/stream", monitor.stream);

    // The demo's own links: reports, start-up approvals, decisions without the console.
    let spec = |name: &str, url: &str, token: &str| SourceSpec {
        name: name.into(),
        url: url.into(),
        token: token.into(),
        ca_file: None,
        pin_sha256: None,
    };
    let store = open_store(base, dir.role("demo"), "demo").await?;
    let watcher = watch::Watcher::spawn(
        store,
        spec("gateway", &gateway_stream, &secrets.demo_gateway.token),
        Some(spec(
            "monitor",
            &monitor_stream,
            &secrets.demo_monitor.token,
        )),
        report.clone(),
        watch::WatchOptions {
            decide: args.no_tui,
            speed: args.speed,
            initial_hashes,
        },
    );

    // Approve the initial tools: a first listing makes them pending, the demo approves them.
    let traffic = traffic::Traffic::new(
        mcp_url.clone(),
        resource.clone(),
        secrets.issuer.clone(),
        traffic::ScriptTarget::Local(workspace),
        report.clone(),
        args.speed,
    );
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let listed = traffic.prime().await;
        if let Ok(tools) = &listed
            && server::INITIAL_TOOLS
                .iter()
                .all(|t| tools.iter().any(|have| have == t))
        {
            break;
        }
        if tokio::time::Instant::now() > deadline {
            anyhow::bail!(
                "the initial tools were not approved within 30 s (listing: {listed:?}, approver link connected: {})",
                watcher.gateway_connected()
            );
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    watcher.end_setup();

    let tokens = dir.root.join("tokens");
    let attach = format!(
        "mcpsoc --data /tmp/another-console console --source gateway={gateway_stream} --token-file gateway={} --source monitor={monitor_stream} --token-file monitor={}",
        tokens.join("console-gateway.token").display(),
        tokens.join("console-monitor.token").display()
    );
    let banner = [
        format!(
            "MCP endpoint      {mcp_url} (resource {resource}; sample server behind it at {server_url})"
        ),
        format!("gateway stream    {gateway_stream}"),
        format!("monitor stream    {monitor_stream}"),
        format!(
            "token issuer      {} (Ed25519, JWKS {})",
            setup::ISSUER,
            secrets.jwks_file.display()
        ),
        format!(
            "approvals         the demo approved the initial tools ({}) at start; every changed or new tool now waits for an approver",
            server::INITIAL_TOOLS.join(", ")
        ),
        format!("another console   {attach}"),
        format!(
            "data              {}{}",
            dir.root.display(),
            if dir.temporary {
                " (removed at exit; --data DIR keeps it)"
            } else {
                ""
            }
        ),
        format!("log               {}", dir.root.join("demo.log").display()),
    ];
    for line in &banner {
        report.line(Kind::Demo, line);
    }

    let duration = args.duration.map(Duration::from_secs);
    traffic.start(duration);

    if args.no_tui {
        let stop = async {
            match duration {
                Some(d) => tokio::time::sleep(d).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = stop => report.line(Kind::Demo, format!("stopping after {} s", args.duration.unwrap_or(0))),
            _ = tokio::signal::ctrl_c() => report.line(Kind::Demo, "interrupted: stopping"),
        }
        // Let the last lines reach the printer.
        tokio::time::sleep(Duration::from_millis(100)).await;
        return Ok(());
    }

    let console_config = setup::console_config(base, &secrets, &gateway_stream, &monitor_stream);
    let text = banner.join("\n");
    let prepared = tokio::task::spawn_blocking(move || {
        println!("{text}");
        crate::console::prepare(&console_config, &ConsoleArgs::default())
    })
    .await
    .context("preparing the console")??;
    let store = open_store(base, dir.role("console"), "console").await?;
    crate::console::run_prepared(prepared, store)
        .await
        .context("the console (run with --no-tui where there is no terminal)")
}
