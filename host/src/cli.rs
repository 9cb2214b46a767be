//! The `aer` command line: one file per subcommand. [`run`] is what `main` calls; it
//! writes to the given streams and returns the exit code, so tests drive it directly.
//!
//! Exit codes: 0 success, 2 error (bad arguments, unreadable files), 3 `aer test
//! --expect` mismatch, 4 component rejected.

#[cfg(feature = "bench")]
mod bench;
mod client;
mod demo;
mod events;
mod generate;
mod new;
mod replay;
mod reviews;
mod serve;
mod test;
mod test_responder;
mod validate;

use std::io::Write;

use clap::{Parser, Subcommand};

/// Success.
pub const EXIT_OK: u8 = 0;
/// An error: bad arguments, unreadable input, a plugin fault.
pub const EXIT_ERROR: u8 = 2;
/// `aer test --expect`: findings differ from the expected ones.
pub const EXIT_MISMATCH: u8 = 3;
/// The component was rejected by validation.
pub const EXIT_REJECTED: u8 = 4;

/// A table row with control characters in its cells escaped
/// ([`crate::text::escape_control`]): cells hold plugin and event text, which must not
/// clear the terminal or overwrite a line.
pub(crate) fn row<const N: usize>(cells: [String; N]) -> [String; N] {
    cells.map(|c| crate::text::escape_control(&c).into_owned())
}

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
    /// Run a detector over an event file and print its findings, or a responder over
    /// decisions and print the effects it asks for.
    Test(test::TestCommand),
    /// Scaffold a new plugin crate.
    New(new::NewCommand),
    /// Write seeded synthetic Slack audit traffic with labelled attacks.
    Gen(generate::GenCommand),
    /// Run detectors, the decision engine and responders over an event history.
    Replay(replay::ReplayCommand),
    /// Measure the host against native code and its goals; prints a table (built
    /// with the `bench` feature: `./run.sh bench`).
    #[cfg(feature = "bench")]
    Bench(bench::BenchCommand),
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
    /// A tenant's Slack Audit Logs source on a running daemon (the daemon pulls the
    /// audit log itself).
    Source(client::SourceCommand),
    /// A tenant's reviews on a running daemon: escalations and effects waiting for
    /// approval.
    Reviews(reviews::ReviewsCommand),
    /// Show, approve or dismiss one review.
    Review(reviews::ReviewCommand),
    /// A tenant's suppressions (from false-positive dismissals).
    Suppressions(reviews::SuppressionsCommand),
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
        Command::Gen(c) => c.run(io),
        Command::Replay(c) => c.run(io),
        Command::Demo(c) => c.run(io),
        #[cfg(feature = "bench")]
        Command::Bench(c) => c.run(io),
        Command::Serve(c) => c.run(io),
        Command::Tenant(c) => c.run(io),
        Command::Plugin(c) => c.run(io),
        Command::Policy(c) => c.run(io),
        Command::Source(c) => c.run(io),
        Command::Reviews(c) => c.run(io),
        Command::Review(c) => c.run(io),
        Command::Suppressions(c) => c.run(io),
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
fn read(path: &std::path::Path) -> anyhow::Result<Vec<u8>> {
    use anyhow::Context as _;
    std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))
}

/// The engine of a local run (`aer test`, `aer replay`): the daemon's limits but for
/// `--deadline-ms` and `--memory-mib`, the `--geo` databases, and the compiled-code
/// cache ([`code_cache_dir`]).
fn local_engine(
    deadline_ms: Option<u64>,
    memory_mib: Option<usize>,
    geo: &[std::path::PathBuf],
) -> anyhow::Result<std::sync::Arc<crate::engine::AerEngine>> {
    let mut limits = crate::limits::Limits::default();
    if let Some(d) = deadline_ms {
        anyhow::ensure!(
            (1..=600_000).contains(&d),
            "--deadline-ms must be from 1 to 600000"
        );
        limits.deadline_ms = d;
    }
    if let Some(m) = memory_mib {
        anyhow::ensure!(
            (1..=4096).contains(&m),
            "--memory-mib must be from 1 to 4096"
        );
        limits.memory_bytes = m << 20;
    }
    let geo = crate::geo::Geo::open(geo, crate::geo::DEFAULT_HOSTING_ASNS.iter().copied())?;
    Ok(crate::engine::AerEngine::new(
        crate::engine::EngineConfig {
            limits,
            geo: std::sync::Arc::new(geo),
            code_cache: code_cache_dir(),
            ..Default::default()
        },
    )?)
}

/// Where the local tools keep compiled code: `$AER_CODE_CACHE` (`off`: nowhere), else
/// `$XDG_CACHE_HOME/aer/code`, else `~/.cache/aer/code`.
fn code_cache_dir() -> Option<std::path::PathBuf> {
    let var = |name| std::env::var_os(name).filter(|v| !v.is_empty());
    match var("AER_CODE_CACHE") {
        Some(v) if v == "off" => None,
        Some(v) => Some(v.into()),
        None => var("XDG_CACHE_HOME")
            .map(std::path::PathBuf::from)
            .or_else(|| var("HOME").map(|h| std::path::Path::new(&h).join(".cache")))
            .map(|c| c.join("aer").join("code")),
    }
}

/// The policy in `path` (the default policy without one), or `None` when it is invalid,
/// after printing each bad field.
fn read_policy(
    path: Option<&std::path::Path>,
    io: &mut Io<'_>,
) -> anyhow::Result<Option<crate::pipeline::policy::Policy>> {
    let Some(path) = path else {
        return Ok(Some(crate::pipeline::policy::Policy::default()));
    };
    match crate::pipeline::policy::Policy::from_json(&read_text(path)?) {
        Ok(policy) => Ok(Some(policy)),
        Err(errors) => {
            for e in errors {
                writeln!(io.err, "{}: {e}", path.display())?;
            }
            Ok(None)
        }
    }
}

fn read_text(path: &std::path::Path) -> anyhow::Result<String> {
    use anyhow::Context as _;
    String::from_utf8(read(path)?).with_context(|| format!("{} is not UTF-8", path.display()))
}

/// An argument that is either the text itself or `@FILE`.
fn text_or_file(arg: &str) -> anyhow::Result<String> {
    match arg.strip_prefix('@') {
        Some(path) => read_text(std::path::Path::new(path)),
        None => Ok(arg.to_owned()),
    }
}

/// Event time as `YYYY-MM-DD HH:MM:SS` (UTC) for tables.
fn utc(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|t| t.format("%Y-%m-%d %H:%M:%S").to_string())
        .unwrap_or_else(|| ms.to_string())
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
