//! The demo's own parts as separate processes, for running the real roles (`mcpsoc gateway`,
//! `monitor`, `console`) against them with the configurations in `assets/demo/`:
//! `mcpsoc demo server` runs only the sample MCP server and `mcpsoc demo traffic` only the
//! traffic generator.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::{Args, Subcommand};

use super::report::{Kind, Report};
use super::setup::{DataDir, Issuer};
use super::{server, traffic, watch};
use crate::config::Config;
use crate::stream::SourceSpec;

/// The sample server's address in `assets/demo/gateway.toml`.
pub const DEFAULT_SERVER_LISTEN: &str = "127.0.0.1:7490";
/// The gateway's MCP endpoint in `assets/demo/gateway.toml`.
pub const DEFAULT_GATEWAY: &str = "http://127.0.0.1:7480/mcp/demo";

/// One part of the demo on its own.
#[derive(Debug, Clone, Subcommand)]
pub enum DemoPart {
    /// Only the sample MCP server (rmcp, Streamable HTTP at /mcp; scripted changes at
    /// POST /demo/<change>, which the traffic drives).
    Server(ServerArgs),
    /// Only the traffic: four users through real MCP clients with signed tokens, and the scripted
    /// incidents; prints one line per notable event.
    Traffic(TrafficArgs),
}

/// `mcpsoc demo server`.
#[derive(Debug, Clone, Args)]
pub struct ServerArgs {
    /// Address to listen on (loopback: the control endpoints have no authentication).
    #[arg(long, default_value = DEFAULT_SERVER_LISTEN, value_name = "ADDR")]
    pub listen: String,
}

/// `mcpsoc demo traffic`.
#[derive(Debug, Clone, Args)]
pub struct TrafficArgs {
    /// The gateway's MCP endpoint for the sample server.
    #[arg(long, default_value = DEFAULT_GATEWAY, value_name = "URL")]
    pub gateway: String,
    /// The audience of the users' tokens (the gateway's `resource`; default: --gateway).
    #[arg(long, value_name = "URI")]
    pub resource: Option<String>,
    /// The demo issuer's private key (PEM PKCS#8 Ed25519), e.g.
    /// assets/demo/DEMO-ONLY-issuer-key.pem; the gateway trusts its public JWKS.
    #[arg(long, value_name = "FILE")]
    pub issuer_key: PathBuf,
    /// The sample server's MCP endpoint, whose /demo/<change> endpoints carry out the scripted
    /// tool changes (`mcpsoc demo server` prints it).
    #[arg(long, default_value = "http://127.0.0.1:7490/mcp", value_name = "URL")]
    pub server: String,
    /// The gateway's event stream, to approve the sample server's initial tools at start (with
    /// --approver-token-file) and report what the gateway does; without it, approve the five
    /// initial tools in the console (4 Approvals, a).
    #[arg(long, value_name = "URL", requires = "approver_token_file")]
    pub gateway_stream: Option<String>,
    /// File with an approver token at the gateway's stream.
    #[arg(long, value_name = "FILE", requires = "gateway_stream")]
    pub approver_token_file: Option<PathBuf>,
    /// Scale the traffic's pace and the incident script: 2 runs twice as fast.
    #[arg(long, default_value_t = 1.0, value_name = "FACTOR", value_parser = super::parse_speed)]
    pub speed: f64,
    /// Stop after this many seconds (default: until interrupted).
    #[arg(long, value_name = "SECS")]
    pub duration: Option<u64>,
}

/// Logs of a part go to stderr; the report lines (also logged under `mcpsoc::demo`) go only to
/// stdout.
fn init_stderr_log() {
    use std::io::IsTerminal;
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| {
        tracing_subscriber::EnvFilter::new(
            "info,rmcp=warn,mcpsoc::demo=warn,mcpsoc::demo::server=info",
        )
    });
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr)
        .try_init();
}

/// Runs one part until Ctrl-C (or, for the traffic, `--duration`).
pub fn run(config: &Config, data: Option<&Path>, part: &DemoPart) -> anyhow::Result<()> {
    init_stderr_log();
    let runtime = tokio::runtime::Runtime::new().context("cannot start the async runtime")?;
    let result = match part {
        DemoPart::Server(args) => runtime.block_on(run_server(args)),
        DemoPart::Traffic(args) => {
            let dir = DataDir::create(data)?;
            let (report, printer) = Report::stdout();
            let result = runtime.block_on(run_traffic(config, &dir, args, report));
            runtime.shutdown_timeout(Duration::from_secs(3));
            let _ = printer.join();
            if dir.temporary {
                let _ = std::fs::remove_dir_all(&dir.root);
            }
            return result;
        }
    };
    runtime.shutdown_timeout(Duration::from_secs(3));
    result
}

async fn run_server(args: &ServerArgs) -> anyhow::Result<()> {
    let workspace = server::Workspace::new();
    let url = server::serve_on(workspace, &args.listen).await?;
    println!("mcpsoc demo server: MCP endpoint {url}");
    println!(
        "  scripted changes: POST {}/demo/{{reset,rug-pull,hidden-tool,benign-change}} (the traffic sends them)",
        url.trim_end_matches("/mcp")
    );
    println!(
        "  tools: {}; Ctrl-C stops",
        server::INITIAL_TOOLS.join(", ")
    );
    tokio::signal::ctrl_c()
        .await
        .context("waiting for Ctrl-C")?;
    Ok(())
}

async fn run_traffic(
    config: &Config,
    dir: &DataDir,
    args: &TrafficArgs,
    report: Report,
) -> anyhow::Result<()> {
    let issuer = {
        let path = args.issuer_key.clone();
        tokio::task::spawn_blocking(move || Issuer::from_pem_file(&path))
            .await
            .context("reading the issuer key")??
    };
    let resource = args
        .resource
        .clone()
        .unwrap_or_else(|| args.gateway.clone());
    let target = traffic::ScriptTarget::remote(&args.server)?;
    let traffic = traffic::Traffic::new(
        args.gateway.clone(),
        resource.clone(),
        Arc::new(issuer),
        target,
        report.clone(),
        args.speed,
    );
    traffic.reset_server().await.with_context(|| {
        format!(
            "cannot reach the sample server's controls at {}",
            args.server
        )
    })?;

    // The approver link: approves the initial tools once, then reports what the gateway does.
    let watcher = match (&args.gateway_stream, &args.approver_token_file) {
        (Some(url), Some(file)) => {
            let token = crate::config::SourceConfig {
                name: "gateway".into(),
                url: url.clone(),
                token_file: Some(file.clone()),
                token_env: None,
                ca_file: None,
                pin_sha256: None,
            }
            .token()
            .map_err(|e| anyhow::anyhow!(e))?;
            let initial_hashes: HashSet<String> = server::Workspace::new()
                .tools()
                .iter()
                .map(crate::protocol::hash::tool_definition_hash)
                .collect();
            let store = super::open_store(config, dir.role("traffic"), "traffic").await?;
            Some(watch::Watcher::spawn(
                store,
                SourceSpec {
                    name: "gateway".into(),
                    url: url.clone(),
                    token,
                    ca_file: None,
                    pin_sha256: None,
                },
                None,
                report.clone(),
                watch::WatchOptions {
                    decide: false,
                    speed: args.speed,
                    initial_hashes,
                },
            ))
        }
        _ => None,
    };

    report.line(
        Kind::Demo,
        format!(
            "traffic through {} (audience {resource}); scripted changes at {}",
            args.gateway, args.server
        ),
    );
    let started = tokio::time::Instant::now();
    let mut hinted = false;
    loop {
        let listed = traffic.prime().await;
        if let Ok(tools) = &listed
            && server::INITIAL_TOOLS
                .iter()
                .all(|t| tools.iter().any(|have| have == t))
        {
            break;
        }
        if !hinted && started.elapsed() > Duration::from_secs(3) {
            hinted = true;
            let why = match &listed {
                Ok(tools) => format!("the gateway lists {tools:?}"),
                Err(e) => format!("{e:#}"),
            };
            let how = match &watcher {
                Some(w) if !w.gateway_connected() => {
                    "the approver link to the gateway's stream is not connected yet"
                }
                Some(_) => "the approver link is deciding",
                None => "approve them in the console (4 Approvals, a on each)",
            };
            report.line(
                Kind::Demo,
                format!(
                    "waiting until the gateway offers the initial tools ({}): {why}; {how}",
                    server::INITIAL_TOOLS.join(", ")
                ),
            );
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_millis(500)) => {}
            _ = tokio::signal::ctrl_c() => return Ok(()),
        }
    }
    if let Some(watcher) = &watcher {
        watcher.end_setup();
    }
    report.line(
        Kind::Demo,
        "the initial tools are approved: alice, bob, carol and dave start working; every changed or new tool now waits for an approver",
    );
    let duration = args.duration.map(Duration::from_secs);
    traffic.start(duration);
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
    tokio::time::sleep(Duration::from_millis(100)).await;
    Ok(())
}
