//! The `aer` binary: parses the command line and hands it to [`aer_host::cli`].

use std::io::IsTerminal;
use std::process::ExitCode;

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("AER_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    let mut err = std::io::stderr();
    let mut io = aer_host::cli::Io {
        out_is_terminal: std::io::stdout().is_terminal(),
        out: &mut out,
        err: &mut err,
    };
    ExitCode::from(aer_host::cli::run_args(std::env::args_os(), &mut io))
}
