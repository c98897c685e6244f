//! The `mcpsoc` binary: parses the command line and runs one role.

use std::process::ExitCode;

use clap::Parser;
use mcpsoc::cli::{Cli, Command};

fn main() -> ExitCode {
    let cli = Cli::parse();
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(&cli.log));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<()> {
    let config = mcpsoc::config::Config::load(cli.config.as_deref())?;
    match cli.command.unwrap_or(Command::Console) {
        Command::Console => mcpsoc::console::run(),
        Command::Gateway => mcpsoc::gateway::run(),
        Command::Monitor => mcpsoc::monitor::run(),
        Command::Demo => anyhow::bail!("mcpsoc demo is not available yet in this build"),
        Command::Export(args) => mcpsoc::export::run(&config, cli.data.as_deref(), &args),
        Command::Replay(args) => mcpsoc::replay::run(&config, cli.data.as_deref(), &args),
        Command::Token(command) => mcpsoc::token::run(&command),
    }
}
