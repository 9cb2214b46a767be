//! The `aer` binary, built inside the test package so the integration tests can start
//! (and kill) real daemon processes through `CARGO_BIN_EXE_aer-under-test`.

use std::io::IsTerminal;
use std::process::ExitCode;

fn main() -> ExitCode {
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    let mut err = std::io::stderr();
    let mut io = aer_host::cli::Io {
        out_is_terminal: std::io::stdout().is_terminal(),
        out: &mut out,
        err: &mut err,
    };
    ExitCode::from(aer_host::cli::main_with_args(std::env::args_os(), &mut io))
}
