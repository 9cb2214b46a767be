//! AER's integration tests, one binary: real components built from `plugins/`,
//! `examples/` and `tests/fixtures/` running in the real host.

mod excessive_downloads;
mod sandbox;
mod scaffold;
mod test_command;
mod validate;
