//! Command-line interface: one binary, one subcommand per role.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::auth::Role;

/// mcpsoc: a security operations console for Model Context Protocol deployments.
#[derive(Debug, Parser)]
#[command(name = "mcpsoc", version, about, long_about = None)]
pub struct Cli {
    /// Configuration file (mcpsoc.toml); defaults apply without one.
    #[arg(long, global = true, env = "MCPSOC_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Directory of this role's sled store (default: a per-user data directory per role).
    #[arg(long, global = true, value_name = "DIR")]
    pub data: Option<PathBuf>,
    /// Log filter for stderr, e.g. `info` or `mcpsoc=debug` (RUST_LOG wins when set).
    #[arg(long, global = true, default_value = "info", value_name = "FILTER")]
    pub log: String,
    /// What to run; `console` when omitted.
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// The roles and tools.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Terminal UI over gateway and monitor streams: live tool calls, alerts, sessions, approvals.
    Console(ConsoleArgs),
    /// MCP security reverse proxy: enforces token, session and tool-pinning rules, publishes events.
    Gateway,
    /// Detectors over gateway streams (poisoning, injection, secrets, hijack), publishes alerts.
    Monitor,
    /// Runs a sample server, gateway, monitor, traffic and the console together.
    Demo(crate::demo::DemoArgs),
    /// Writes stored events as JSON lines, for a SIEM or jq.
    Export(ExportArgs),
    /// Publishes the events of a JSON-lines file (or stdin) as a stream source.
    Replay(ReplayArgs),
    /// Runs the monitor's detectors over a labelled corpus and prints precision and recall.
    Eval(EvalArgs),
    /// Creates stream tokens and their SHA-256 for the configuration.
    #[command(subcommand)]
    Token(TokenCommand),
    /// Checks the tamper-evident hash chain of stored or exported events.
    #[command(subcommand)]
    Audit(AuditCommand),
}

/// `mcpsoc audit`.
#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Walks every source's hash chain and names the first broken link (exit status 1).
    ///
    /// Reads the store in --data (default: the gateway's; stop the role first, or point at a
    /// copy: sled opens a store for one process at a time), or a JSON-lines export with --file.
    Verify(AuditVerifyArgs),
}

/// `mcpsoc audit verify`.
#[derive(Debug, Args)]
pub struct AuditVerifyArgs {
    /// Only this source id.
    #[arg(long, value_name = "SOURCE")]
    pub source: Option<String>,
    /// Check a JSON-lines export (`mcpsoc export`) instead of a store; `-` for stdin.
    #[arg(long, value_name = "FILE")]
    pub file: Option<PathBuf>,
    /// Print the result as JSON.
    #[arg(long)]
    pub json: bool,
}

/// `mcpsoc console`.
#[derive(Debug, Args, Default)]
pub struct ConsoleArgs {
    /// A source to show, `NAME=ws://host:port/stream` (repeatable; adds to the config's).
    #[arg(long = "source", value_name = "NAME=URL")]
    pub sources: Vec<String>,
    /// Token file of a source given by --source, `NAME=PATH` (tokens never go on the command line).
    #[arg(long = "token-file", value_name = "NAME=PATH")]
    pub token_files: Vec<String>,
    /// Environment variable holding a source's token, `NAME=VAR`.
    #[arg(long = "token-env", value_name = "NAME=VAR")]
    pub token_envs: Vec<String>,
    /// Extra CA certificate (PEM) for a wss source, `NAME=PATH`.
    #[arg(long = "ca-file", value_name = "NAME=PATH")]
    pub ca_files: Vec<String>,
    /// Pin a wss source's certificate by the SHA-256 of its public key, `NAME=HEX`.
    #[arg(long = "pin", value_name = "NAME=HEX")]
    pub pins: Vec<String>,
    /// Browse the local store with no sources.
    #[arg(long)]
    pub offline: bool,
    /// Send no commands (approve, acknowledge, revoke... are disabled).
    #[arg(long)]
    pub readonly: bool,
    /// Theme: dark, light, high-contrast, or a theme file path.
    #[arg(long, value_name = "NAME")]
    pub theme: Option<String>,
    /// Do not ring the terminal bell on new critical alerts.
    #[arg(long)]
    pub no_bell: bool,
}

/// `mcpsoc eval`.
#[derive(Debug, Args)]
pub struct EvalArgs {
    /// Corpus file: JSON lines, one labelled case per line (see tests/corpus/).
    #[arg(long, value_name = "FILE")]
    pub corpus: PathBuf,
    /// Print the result as JSON.
    #[arg(long)]
    pub json: bool,
}

/// `mcpsoc export`.
#[derive(Debug, Args)]
pub struct ExportArgs {
    /// Only events of this type (repeatable), e.g. mcpsoc.alert.v1.
    #[arg(long = "type", value_name = "TYPE")]
    pub types: Vec<String>,
    /// Only events of this source id.
    #[arg(long, value_name = "SOURCE")]
    pub source: Option<String>,
    /// Only events at or after this time (RFC 3339).
    #[arg(long, value_name = "TIME")]
    pub since: Option<String>,
    /// Only events at or before this time (RFC 3339).
    #[arg(long, value_name = "TIME")]
    pub until: Option<String>,
    /// Write to this file instead of stdout.
    #[arg(long, short, value_name = "FILE")]
    pub output: Option<PathBuf>,
}

/// `mcpsoc replay`.
#[derive(Debug, Args)]
pub struct ReplayArgs {
    /// JSON-lines file of events (envelopes, or objects with `type` and `data`); `-` for stdin.
    pub file: PathBuf,
    /// Source id to publish as (default: from the config, else mcpsoc/replay/<host>).
    #[arg(long, value_name = "SOURCE")]
    pub source: Option<String>,
    /// Address to listen on (default: from the config, else 127.0.0.1:7403).
    #[arg(long, value_name = "ADDR")]
    pub listen: Option<String>,
    /// Events per second (0: as fast as possible).
    #[arg(long, default_value_t = 0)]
    pub rate: u64,
    /// Stamp events with the current time instead of the time in the file.
    #[arg(long)]
    pub now: bool,
    /// Also accept the token in this file (first line), with --role, besides the configured ones.
    #[arg(long, value_name = "FILE")]
    pub token_file: Option<PathBuf>,
    /// Role granted to --token-file.
    #[arg(long, default_value = "viewer", value_parser = parse_role)]
    pub role: Role,
    /// Exit once the file is published instead of serving until interrupted.
    #[arg(long)]
    pub exit_when_done: bool,
}

/// `mcpsoc token`.
#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Creates a random token and prints the configuration entry with its SHA-256.
    New {
        /// Subscriber name for the configuration.
        #[arg(long)]
        name: String,
        /// Role for the configuration.
        #[arg(long, default_value = "viewer", value_parser = parse_role)]
        role: Role,
        /// Write the token to this file (mode 0600) instead of printing it.
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
    },
    /// Reads a token from stdin and prints its SHA-256.
    Hash,
}

fn parse_role(text: &str) -> Result<Role, String> {
    match text {
        "viewer" => Ok(Role::Viewer),
        "responder" => Ok(Role::Responder),
        "approver" => Ok(Role::Approver),
        other => Err(format!(
            "unknown role {other:?}: use viewer, responder or approver"
        )),
    }
}
