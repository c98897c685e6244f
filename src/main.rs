//! The `mcpsoc` binary: parses the command line and runs one role.

use std::process::ExitCode;

use clap::Parser;
use mcpsoc::cli::{Cli, Command};

fn main() -> ExitCode {
    let cli = Cli::parse();
    let command = cli.command.unwrap_or(Command::Console(Default::default()));
    // The console owns the terminal: its log goes to a file beside its store, never to stderr.
    let _log_guard = match &command {
        Command::Console(_) => log_to_file(&cli.log, cli.data.as_deref()),
        // The demo may own the terminal too: it logs to a file in its own data folder.
        Command::Demo(_) => None,
        _ => {
            log_to_stderr(&cli.log);
            None
        }
    };
    match run(cli.config.as_deref(), cli.data.as_deref(), command) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn filter(default: &str) -> tracing_subscriber::EnvFilter {
    tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default))
}

fn log_to_stderr(level: &str) {
    tracing_subscriber::fmt()
        .with_env_filter(filter(level))
        .with_writer(std::io::stderr)
        .init();
}

fn log_to_file(
    level: &str,
    data: Option<&std::path::Path>,
) -> Option<tracing_appender::non_blocking::WorkerGuard> {
    let dir = data
        .map(std::path::Path::to_path_buf)
        .unwrap_or_else(|| mcpsoc::config::default_data_dir("console"));
    std::fs::create_dir_all(&dir).ok()?;
    let appender = tracing_appender::rolling::never(dir, "console.log");
    let (writer, guard) = tracing_appender::non_blocking(appender);
    tracing_subscriber::fmt()
        .with_env_filter(filter(level))
        .with_ansi(false)
        .with_writer(writer)
        .init();
    Some(guard)
}

fn run(
    config: Option<&std::path::Path>,
    data: Option<&std::path::Path>,
    command: Command,
) -> anyhow::Result<()> {
    let config = mcpsoc::config::Config::load(config)?;
    match command {
        Command::Console(args) => mcpsoc::console::run(&config, data, &args),
        Command::Gateway => mcpsoc::gateway::run(&config, data),
        Command::Monitor => mcpsoc::monitor::run(&config, data),
        Command::Demo(args) => mcpsoc::demo::run(&config, data, &args),
        Command::Export(args) => mcpsoc::export::run(&config, data, &args),
        Command::Replay(args) => mcpsoc::replay::run(&config, data, &args),
        Command::Eval(args) => mcpsoc::monitor::eval::run(&config, &args),
        Command::Token(command) => mcpsoc::token::run(&command),
        Command::Audit(command) => mcpsoc::audit::run(&config, data, &command),
    }
}
