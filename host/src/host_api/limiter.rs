//! The per-store resource limiter: caps linear memory and records the peak.

use wasmtime::ResourceLimiter;

/// Raised (as a trap) when a plugin asks for more memory than its limit.
#[derive(Debug, thiserror::Error)]
#[error("memory limit exceeded: the plugin asked for {desired} bytes, its limit is {limit} bytes")]
pub struct MemoryLimitExceeded {
    /// Bytes the plugin asked for.
    pub desired: usize,
    /// The configured limit.
    pub limit: usize,
}

/// Most table elements a plugin may have (function tables of ordinary Rust guests
/// hold a few hundred).
const MAX_TABLE_ELEMENTS: usize = 100_000;

/// Caps memory growth at `limit` bytes and remembers the largest size granted.
#[derive(Debug, Clone)]
pub struct MemoryLimiter {
    limit: usize,
    peak: usize,
}

impl MemoryLimiter {
    /// A limiter with a cap of `limit` bytes.
    pub fn new(limit: usize) -> Self {
        MemoryLimiter { limit, peak: 0 }
    }

    /// The largest memory size granted so far, in bytes.
    pub fn peak(&self) -> usize {
        self.peak
    }
}

impl ResourceLimiter for MemoryLimiter {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > self.limit {
            return Err(MemoryLimitExceeded {
                desired,
                limit: self.limit,
            }
            .into());
        }
        self.peak = self.peak.max(desired);
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(desired <= MAX_TABLE_ELEMENTS)
    }
}
