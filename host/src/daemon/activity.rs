//! Events accepted per tenant and minute over the last day, for the console's
//! overview. Held in memory (a restart starts afresh): at most [`MINUTES`] counts per
//! tenant, however many events arrive.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;

/// Minutes of counts kept per tenant (a day).
pub const MINUTES: usize = 24 * 60;

/// Per-tenant counts by minute.
#[derive(Default)]
pub struct Activity {
    tenants: Mutex<HashMap<String, VecDeque<(i64, u64)>>>,
}

impl Activity {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, VecDeque<(i64, u64)>>> {
        self.tenants.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Count `n` events of `tenant` accepted at `now_ms`.
    pub fn record(&self, tenant: &str, n: usize, now_ms: i64) {
        if n == 0 {
            return;
        }
        let minute = now_ms.div_euclid(60_000);
        let mut tenants = self.lock();
        let counts = tenants.entry(tenant.to_owned()).or_default();
        match counts.back_mut() {
            Some((m, c)) if *m == minute => *c = c.saturating_add(n as u64),
            // A clock set back: counted in the latest minute.
            Some((m, c)) if *m > minute => *c = c.saturating_add(n as u64),
            _ => counts.push_back((minute, n as u64)),
        }
        while counts
            .front()
            .is_some_and(|(m, _)| *m <= minute - MINUTES as i64)
        {
            counts.pop_front();
        }
    }

    /// `tenant`'s events accepted in each of `buckets` buckets of `bucket_ms` from
    /// `from_ms`.
    pub fn buckets(&self, tenant: &str, from_ms: i64, bucket_ms: i64, buckets: usize) -> Vec<u64> {
        let mut out = vec![0u64; buckets];
        if let Some(counts) = self.lock().get(tenant) {
            for &(minute, n) in counts {
                let at = minute * 60_000;
                if at < from_ms {
                    continue;
                }
                if let Some(slot) = usize::try_from((at - from_ms) / bucket_ms)
                    .ok()
                    .and_then(|b| out.get_mut(b))
                {
                    *slot = slot.saturating_add(n);
                }
            }
        }
        out
    }

    /// Forget `tenant` (its deletion).
    pub fn forget(&self, tenant: &str) {
        self.lock().remove(tenant);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_are_kept_by_minute_for_a_day_and_no_longer() {
        let a = Activity::default();
        let t0 = 1_767_571_200_000; // a minute's start
        a.record("acme", 5, t0);
        a.record("acme", 7, t0 + 59_999);
        a.record("acme", 3, t0 + 60_000);
        a.record("globex", 100, t0);
        assert_eq!(a.buckets("acme", t0, 60_000, 3), [12, 3, 0]);
        assert_eq!(a.buckets("acme", t0, 3_600_000, 1), [15]);
        // A day of minutes later, the first minutes are gone; the count stays bounded.
        for m in 0..3 * MINUTES as i64 {
            a.record("acme", 1, t0 + (m + 2) * 60_000);
        }
        assert!(a.lock()["acme"].len() <= MINUTES);
        assert_eq!(a.buckets("acme", t0, 60_000, 2), [0, 0]);
        a.forget("acme");
        assert!(a.buckets("acme", t0, 60_000, 1)[0] == 0 && a.lock().len() == 1);
    }
}
