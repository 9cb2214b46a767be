//! The `aer` binary: everything is in [`aer_host::cli`].

fn main() -> std::process::ExitCode {
    aer_host::cli::process_main()
}
