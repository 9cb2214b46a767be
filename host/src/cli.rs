//! The `aer` command line: one file per subcommand. [`run`] is what `main` calls; it
//! writes to the given streams and returns the exit code, so tests drive it directly.
//!
//! Exit codes: 0 success, 2 error (bad arguments, unreadable files), 3 `aer test
//! --expect` mismatch, 4 component rejected.

mod client;
mod demo;
mod new;
mod replay;
mod serve;
mod test;
mod validate;

use std::io::Write;
use std::path::PathBuf;

use clap::{Parser, Subcommand};

/// Success.
pub const EXIT_OK: u8 = 0;
/// An error: bad arguments, unreadable input, a plugin fault.
pub const EXIT_ERROR: u8 = 2;
/// `aer test --expect`: findings differ from the expected ones.
pub const EXIT_MISMATCH: u8 = 3;
/// The component was rejected by validation.
pub const EXIT_REJECTED: u8 = 4;

/// AER: sandboxed WebAssembly detectors and responders for audit events.
#[derive(Debug, Parser)]
#[command(name = "aer", version, about)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Check a plugin component and print what it is.
    Validate(validate::ValidateCommand),
    /// Run a detector over an event file and print its findings.
    Test(test::TestCommand),
    /// Scaffold a new plugin crate.
    New(new::NewCommand),
    /// Run detectors, the decision engine and responders over an event history.
    Replay(replay::ReplayCommand),
    /// The whole service on this machine over the bundled sample, with a mock Slack API.
    Demo(demo::DemoCommand),
    /// Run the daemon: HTTP API, durable ingest, tenants and plugins.
    Serve(serve::ServeCommand),
    /// Tenants of a running daemon (admin).
    Tenant(client::TenantCommand),
    /// A tenant's plugins on a running daemon.
    Plugin(client::PluginCommand),
    /// A tenant's decision policy on a running daemon.
    Policy(client::PolicyCommand),
    /// Send events to a running daemon.
    Events(client::EventsCommand),
    /// A tenant's findings (Falco-compatible alerts).
    Findings(client::QueryCommand),
    /// A tenant's decisions, with their reasons.
    Decisions(client::QueryCommand),
    /// A tenant's action log.
    Actions(client::QueryCommand),
}

/// Output streams of one CLI run.
pub struct Io<'a> {
    /// Where results go.
    pub out: &'a mut dyn Write,
    /// Where diagnostics go.
    pub err: &'a mut dyn Write,
    /// Whether `out` is a terminal (tables for people, NDJSON otherwise).
    pub out_is_terminal: bool,
}

/// Run a parsed command line; returns the process exit code.
pub fn run(cli: Cli, io: &mut Io<'_>) -> u8 {
    let result = match cli.command {
        Command::Validate(c) => c.run(io),
        Command::Test(c) => c.run(io),
        Command::New(c) => c.run(io),
        Command::Replay(c) => c.run(io),
        Command::Demo(c) => c.run(io),
        Command::Serve(c) => c.run(io),
        Command::Tenant(c) => c.run(io),
        Command::Plugin(c) => c.run(io),
        Command::Policy(c) => c.run(io),
        Command::Events(c) => c.run(io),
        Command::Findings(c) => c.run("findings", io),
        Command::Decisions(c) => c.run("decisions", io),
        Command::Actions(c) => c.run("actions", io),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            let _ = writeln!(io.err, "aer: error: {e:#}");
            EXIT_ERROR
        }
    }
}

/// Set up logging to stderr: JSON lines or text, filtered by `AER_LOG` (default `warn`,
/// `info` for the daemon). Does nothing if logging is already set up.
pub fn init_tracing(json: bool, default: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("AER_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = if json {
        builder.json().try_init()
    } else {
        builder.try_init()
    };
}

/// The whole `aer` program: the process's arguments, stdout and stderr, and its exit code.
pub fn process_main() -> std::process::ExitCode {
    use std::io::IsTerminal;
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    let mut err = std::io::stderr();
    let mut io = Io {
        out_is_terminal: std::io::stdout().is_terminal(),
        out: &mut out,
        err: &mut err,
    };
    std::process::ExitCode::from(main_with_args(std::env::args_os(), &mut io))
}

/// Run `aer` with these arguments (the first is the program name); sets up logging.
pub fn main_with_args<I, S>(args: I, io: &mut Io<'_>) -> u8
where
    I: IntoIterator<Item = S>,
    S: Into<std::ffi::OsString> + Clone,
{
    match Cli::try_parse_from(args) {
        Ok(cli) => {
            match &cli.command {
                Command::Serve(s) => {
                    let json = s.effective_config().map(|c| c.log_json).unwrap_or(false);
                    init_tracing(json, "info");
                }
                _ => init_tracing(false, "warn"),
            }
            run(cli, io)
        }
        Err(e) => {
            let _ = write!(io.err, "{}", e.render());
            if e.use_stderr() { EXIT_ERROR } else { EXIT_OK }
        }
    }
}

/// Run `aer` with these arguments (the first is the program name).
pub fn run_args<I, S>(args: I, io: &mut Io<'_>) -> u8
where
    I: IntoIterator<Item = S>,
    S: Into<std::ffi::OsString> + Clone,
{
    match Cli::try_parse_from(args) {
        Ok(cli) => run(cli, io),
        Err(e) => {
            let _ = write!(io.err, "{}", e.render());
            if e.use_stderr() { EXIT_ERROR } else { EXIT_OK }
        }
    }
}

/// Read a file, naming it in the error.
fn read(path: &PathBuf) -> anyhow::Result<Vec<u8>> {
    use anyhow::Context as _;
    std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// clap checks a command's definition when it is first parsed; this checks all of
    /// them at once, so a bad definition fails here rather than in a user's hands.
    #[test]
    fn every_command_definition_is_valid() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }
}
