//! Per-tenant event rate limits: a token bucket per tenant, refilled continuously at
//! the configured rate, holding at most one second's worth.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Instant;

/// Token buckets by tenant.
pub struct RateLimits {
    per_second: f64,
    buckets: Mutex<HashMap<String, (f64, Instant)>>,
}

impl RateLimits {
    /// Buckets refilling at `per_second` events per second.
    pub fn new(per_second: u32) -> Self {
        RateLimits {
            per_second: f64::from(per_second.max(1)),
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// Take `n` events' worth for `tenant`; `Err(seconds to wait)` if not available.
    pub fn take(&self, tenant: &str, n: usize) -> Result<(), f64> {
        let now = Instant::now();
        let mut buckets = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        let (tokens, last) = buckets
            .entry(tenant.to_owned())
            .or_insert((self.per_second, now));
        *tokens = (*tokens + now.duration_since(*last).as_secs_f64() * self.per_second)
            .min(self.per_second);
        *last = now;
        let n = n as f64;
        if n <= *tokens {
            *tokens -= n;
            return Ok(());
        }
        // A request larger than the bucket can still pass once the bucket is full.
        if n > self.per_second && *tokens >= self.per_second {
            *tokens = 0.0;
            return Ok(());
        }
        Err((n.min(self.per_second) - *tokens) / self.per_second)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bucket_limits_each_tenant_separately() {
        let r = RateLimits::new(100);
        assert!(r.take("a", 60).is_ok());
        assert!(r.take("a", 60).is_err());
        assert!(r.take("b", 100).is_ok());
        let wait = r.take("a", 50).unwrap_err();
        assert!(wait > 0.0 && wait <= 0.5, "{wait}");
    }
}
