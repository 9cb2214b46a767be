//! Panics turned into errors, where a library below the host panics on bad input (sled
//! on a truncated file) or a stage must not take its thread down with it.

use std::panic::{AssertUnwindSafe, catch_unwind};

/// Run `f`, turning a panic into its message.
pub fn catch<T>(f: impl FnOnce() -> T) -> Result<T, String> {
    catch_unwind(AssertUnwindSafe(f)).map_err(|panic| {
        panic
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| panic.downcast_ref::<&str>().copied())
            .unwrap_or("a panic without a message")
            .to_owned()
    })
}
