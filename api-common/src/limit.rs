//! Per-caller rate limits: each (tenant, user) gets a token bucket (GCRA, `governor`) of
//! `per_second` requests sustained and `burst` at once. A caller over it gets 429
//! `rate_limited` with `Retry-After`; other callers are not affected.

use std::collections::{HashMap, VecDeque};
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use governor::clock::Clock as _;
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use meetline_domain::types::Principal;
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

/// One limit for the whole server (not per caller): for work any unauthenticated request can
/// trigger, such as a webhook challenge that is checked against every line's secret.
#[derive(Debug)]
pub struct ServerLimit(governor::DefaultDirectRateLimiter);

impl ServerLimit {
    pub fn new(per_second: NonZeroU32, burst: NonZeroU32) -> Self {
        Self(RateLimiter::direct(
            Quota::per_second(per_second).allow_burst(burst),
        ))
    }

    /// # Errors
    /// `RateLimited` (retry after a second) when the server's budget is spent.
    pub fn check(&self) -> Result<(), ApiError> {
        self.0
            .check()
            .map_err(|_| ApiError::RateLimited { retry_after: 1 })
    }
}

/// Attempts that can be used to probe, limited by how many of them **fail** per caller within a
/// sliding window (e.g. joining by an unknown conference number: 10 a minute). An attempt is
/// counted as a failure when it begins and forgiven when it succeeds, so a burst of concurrent
/// guesses is counted before any of them is answered.
#[derive(Debug)]
pub struct FailedAttempts {
    window: std::time::Duration,
    max: usize,
    seen: std::sync::Mutex<HashMap<(TenantId, UserId), VecDeque<Instant>>>,
}

/// Callers kept before idle ones are forgotten.
const KEEP_CALLERS: usize = 10_000;

impl FailedAttempts {
    pub fn new(max: usize, window: std::time::Duration) -> Self {
        Self {
            window,
            max: max.max(1),
            seen: std::sync::Mutex::new(HashMap::new()),
        }
    }

    /// Begins an attempt, counted as a failure until [`Self::succeeded`] says otherwise.
    ///
    /// # Errors
    /// `RateLimited` when the caller already has `max` failures within the window, with the
    /// seconds until the oldest of them leaves it.
    pub fn begin(&self, principal: &Principal) -> Result<(), ApiError> {
        let now = Instant::now();
        let mut seen = self.seen.lock().expect("attempts lock");
        if seen.len() > KEEP_CALLERS {
            seen.retain(|_, times| {
                times
                    .back()
                    .is_some_and(|last| now.duration_since(*last) < self.window)
            });
        }
        let times = seen
            .entry((principal.tenant.clone(), principal.actor.user.clone()))
            .or_default();
        while times
            .front()
            .is_some_and(|first| now.duration_since(*first) >= self.window)
        {
            times.pop_front();
        }
        if times.len() >= self.max {
            let oldest = *times.front().expect("max is at least one");
            let wait = self.window.saturating_sub(now.duration_since(oldest));
            return Err(ApiError::RateLimited {
                retry_after: wait.as_secs() + u64::from(wait.subsec_nanos() > 0),
            });
        }
        times.push_back(now);
        Ok(())
    }

    /// The attempt begun last by this caller succeeded: it does not count.
    pub fn succeeded(&self, principal: &Principal) {
        let mut seen = self.seen.lock().expect("attempts lock");
        if let Some(times) = seen.get_mut(&(principal.tenant.clone(), principal.actor.user.clone()))
        {
            times.pop_back();
        }
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
    fn failed_attempts_are_limited_per_caller_and_successes_do_not_count() {
        let attempts = FailedAttempts::new(3, std::time::Duration::from_secs(60));
        let (mallory, alice) = (principal("acme", "mallory"), principal("acme", "alice"));
        for _ in 0..5 {
            attempts.begin(&alice).unwrap();
            attempts.succeeded(&alice);
        }
        for _ in 0..3 {
            attempts.begin(&mallory).unwrap();
        }
        match attempts.begin(&mallory) {
            Err(ApiError::RateLimited { retry_after }) => assert_eq!(retry_after, 60),
            other => panic!("expected RateLimited, got {other:?}"),
        }
        attempts.begin(&alice).unwrap();
        attempts.begin(&principal("globex", "mallory")).unwrap();
    }

    #[test]
    fn failed_attempts_leave_the_window() {
        let attempts = FailedAttempts::new(1, std::time::Duration::from_millis(30));
        let mallory = principal("acme", "mallory");
        attempts.begin(&mallory).unwrap();
        assert!(attempts.begin(&mallory).is_err());
        std::thread::sleep(std::time::Duration::from_millis(40));
        attempts.begin(&mallory).unwrap();
    }

    #[test]
    fn zero_per_second_means_no_limit() {
        assert!(RateLimits::new(0, 10).is_none());
    }
}
