//! Per-caller rate limits: each (tenant, user) gets a token bucket (GCRA, `governor`) of
//! `per_second` requests sustained and `burst` at once. A caller over it gets 429
//! `rate_limited` with `Retry-After`; other callers are not affected.

use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU64, Ordering};

use governor::clock::Clock as _;
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use meetline_adapters::auth::Principal;
use meetline_domain::types::{TenantId, UserId};

use crate::error::ApiError;

/// Forget callers idle long enough to have a full bucket again, every this many checks.
const PRUNE_EVERY: u64 = 4096;

/// The limits every authenticated request is checked against.
#[derive(Debug)]
pub struct RateLimits {
    limiter: DefaultKeyedRateLimiter<(TenantId, UserId)>,
    checks: AtomicU64,
}

impl RateLimits {
    /// `per_second` requests per caller sustained, up to `burst` at once; `None` when
    /// `per_second` is 0 (no limit).
    pub fn new(per_second: u32, burst: u32) -> Option<Self> {
        let rate = NonZeroU32::new(per_second)?;
        let burst = NonZeroU32::new(burst.max(1)).expect("at least one");
        Some(Self {
            limiter: RateLimiter::keyed(Quota::per_second(rate).allow_burst(burst)),
            checks: AtomicU64::new(0),
        })
    }

    /// Takes one request from the caller's bucket.
    ///
    /// # Errors
    /// `RateLimited` with the whole seconds until the next request would be allowed.
    pub fn check(&self, principal: &Principal) -> Result<(), ApiError> {
        if self.checks.fetch_add(1, Ordering::Relaxed) % PRUNE_EVERY == PRUNE_EVERY - 1 {
            self.limiter.retain_recent();
        }
        let key = (principal.tenant.clone(), principal.actor.user.clone());
        self.limiter.check_key(&key).map_err(|not_until| {
            let wait = not_until.wait_time_from(self.limiter.clock().now());
            ApiError::RateLimited {
                retry_after: wait.as_secs() + u64::from(wait.subsec_nanos() > 0),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use meetline_domain::types::Actor;

    use super::*;

    fn principal(tenant: &str, user: &str) -> Principal {
        Principal {
            tenant: TenantId::parse(tenant).unwrap(),
            actor: Actor {
                user: UserId::parse(user).unwrap(),
                admin: false,
            },
        }
    }

    #[test]
    fn a_caller_gets_its_burst_then_429_with_a_retry_after() {
        let limits = RateLimits::new(1, 3).unwrap();
        let alice = principal("acme", "alice");
        for _ in 0..3 {
            limits.check(&alice).unwrap();
        }
        match limits.check(&alice) {
            Err(ApiError::RateLimited { retry_after }) => assert_eq!(retry_after, 1),
            other => panic!("expected RateLimited, got {other:?}"),
        }
    }

    #[test]
    fn callers_have_separate_buckets_per_tenant_and_user() {
        let limits = RateLimits::new(1, 1).unwrap();
        limits.check(&principal("acme", "alice")).unwrap();
        assert!(limits.check(&principal("acme", "alice")).is_err());
        limits.check(&principal("acme", "bob")).unwrap();
        limits.check(&principal("globex", "alice")).unwrap();
    }

    #[test]
    fn zero_per_second_means_no_limit() {
        assert!(RateLimits::new(0, 10).is_none());
    }
}
