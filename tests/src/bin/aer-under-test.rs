//! The `aer` program, built inside the test package so the integration tests can start
//! (and kill) real daemon processes through `CARGO_BIN_EXE_aer-under-test`.

fn main() -> std::process::ExitCode {
    aer_host::cli::process_main()
}
