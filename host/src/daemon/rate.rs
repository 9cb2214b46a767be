//! Per-tenant token buckets, refilled continuously at a rate, holding at most one
//! second's worth: ingest's events per second, and the pipeline's milliseconds per
//! second.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Instant;

/// Token buckets by tenant.
#[derive(Default)]
pub struct RateLimits {
    buckets: Mutex<HashMap<String, (f64, Instant)>>,
}

impl RateLimits {
    /// Empty buckets (each starts full).
    pub fn new() -> Self {
        RateLimits::default()
    }

    /// The bucket of `tenant` refilled to now at `per_second`.
    fn refill<'b>(
        buckets: &'b mut HashMap<String, (f64, Instant)>,
        tenant: &str,
        per_second: f64,
        now: Instant,
    ) -> &'b mut f64 {
        let (tokens, last) = buckets
            .entry(tenant.to_owned())
            .or_insert((per_second, now));
        *tokens = (*tokens + now.duration_since(*last).as_secs_f64() * per_second).min(per_second);
        *last = now;
        tokens
    }

    /// Take `n` for `tenant` from a bucket refilling at `per_second`;
    /// `Err(seconds to wait)` if not available.
    pub fn take(&self, tenant: &str, n: usize, per_second: u32) -> Result<(), f64> {
        let per_second = f64::from(per_second.max(1));
        let mut buckets = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        let tokens = Self::refill(&mut buckets, tenant, per_second, Instant::now());
        let n = n as f64;
        if n <= *tokens {
            *tokens -= n;
            return Ok(());
        }
        // A request larger than the bucket can still pass once the bucket is full.
        if n > per_second && *tokens >= per_second {
            *tokens = 0.0;
            return Ok(());
        }
        Err((n.min(per_second) - *tokens) / per_second)
    }

    /// What `tenant` has left in a bucket refilling at `per_second` (negative: in debt).
    pub fn balance(&self, tenant: &str, per_second: u32) -> f64 {
        let per_second = f64::from(per_second.max(1));
        let mut buckets = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        *Self::refill(&mut buckets, tenant, per_second, Instant::now())
    }

    /// Charge `n` to `tenant` after the fact (the bucket may go negative: the tenant
    /// then waits until it has refilled).
    pub fn charge(&self, tenant: &str, n: f64, per_second: u32) {
        let per_second = f64::from(per_second.max(1));
        let mut buckets = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        *Self::refill(&mut buckets, tenant, per_second, Instant::now()) -= n;
    }
}

/// Failed attempts by key (a client address), counted a minute at a time: past the
/// limit, the key is blocked until its minute is over.
#[derive(Default)]
pub struct FailureWindow {
    minutes: Mutex<HashMap<std::net::IpAddr, (Instant, u32)>>,
}

/// How long a failure window lasts.
const FAILURE_WINDOW: std::time::Duration = std::time::Duration::from_secs(60);
/// Addresses remembered before stale ones are dropped.
const FAILURE_KEYS: usize = 10_000;

impl FailureWindow {
    /// If `addr` failed `max` times or more within its current minute, how long until
    /// it may try again.
    pub fn blocked(&self, addr: std::net::IpAddr, max: u32) -> Option<std::time::Duration> {
        let minutes = self.minutes.lock().unwrap_or_else(|e| e.into_inner());
        let (start, n) = minutes.get(&addr)?;
        let left = FAILURE_WINDOW.checked_sub(start.elapsed())?;
        (*n >= max).then_some(left)
    }

    /// Count a failure of `addr`; returns its failures in the current minute.
    pub fn failed(&self, addr: std::net::IpAddr) -> u32 {
        let mut minutes = self.minutes.lock().unwrap_or_else(|e| e.into_inner());
        if minutes.len() >= FAILURE_KEYS {
            minutes.retain(|_, (start, _)| start.elapsed() < FAILURE_WINDOW);
        }
        let now = Instant::now();
        let entry = minutes.entry(addr).or_insert((now, 0));
        if now.duration_since(entry.0) >= FAILURE_WINDOW {
            *entry = (now, 0);
        }
        entry.1 = entry.1.saturating_add(1);
        entry.1
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bucket_limits_each_tenant_separately() {
        let r = RateLimits::new();
        assert!(r.take("a", 60, 100).is_ok());
        assert!(r.take("a", 60, 100).is_err());
        assert!(r.take("b", 100, 100).is_ok());
        let wait = r.take("a", 50, 100).unwrap_err();
        assert!(wait > 0.0 && wait <= 0.5, "{wait}");
    }

    #[test]
    fn charges_after_the_fact_hold_a_tenant_back_until_refilled() {
        let r = RateLimits::new();
        assert_eq!(r.balance("a", 100), 100.0);
        r.charge("a", 250.0, 100);
        assert!(r.balance("a", 100) < 0.0, "in debt");
        assert_eq!(r.balance("b", 100), 100.0, "others unaffected");
    }
}
