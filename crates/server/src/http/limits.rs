//! What one client may take: a token bucket per account and, within it,
//! per device (`--account-rate`, `--account-burst`), and the node's bound
//! on requests in flight (`--max-in-flight`). See docs/design.md#overload.
//!
//! The bound on requests in flight is a counter rather than tower's
//! load-shed over a concurrency limit: those allocate a semaphore future per
//! request, which cost resumes about 4 µs (a fifth) in a side-by-side run.

use std::hash::{BuildHasher, RandomState};
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use std::sync::atomic::{AtomicUsize, Ordering};

use axum::response::{IntoResponse, Response};
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota};
use playmark_core::{AccountId, DeviceId};

use super::error::ApiError;
use crate::metrics::Metrics;

/// The per-account and per-device token buckets.
///
/// Keys are a keyed hash of the account (and device), so an entry costs the
/// same whatever the ids' length; a bucket that has refilled is dropped by
/// [`forget_idle`](Self::forget_idle), so memory follows the accounts
/// active in the last few seconds, not every account ever seen.
#[derive(Debug)]
pub struct RateLimits {
    buckets: Option<Buckets>,
    hasher: RandomState,
}

#[derive(Debug)]
struct Buckets {
    accounts: DefaultKeyedRateLimiter<u64>,
    devices: DefaultKeyedRateLimiter<u64>,
    clock: DefaultClock,
}

/// A request over its account's or device's rate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimited {
    /// Whether the device's bucket refused it (else the account's).
    pub device: bool,
    /// When a request would be admitted again.
    pub retry_after: Duration,
}

impl RateLimits {
    /// `per_second` requests per account, bursts of up to `burst`; each
    /// device gets half of both, so one device cannot spend its household's
    /// whole allowance. `0` for either turns the limits off.
    pub fn new(per_second: u32, burst: u32) -> Self {
        let buckets = NonZeroU32::new(per_second).zip(NonZeroU32::new(burst)).map(|(rate, burst)| {
            let half = |n: NonZeroU32| NonZeroU32::new(n.get() / 2).unwrap_or(NonZeroU32::MIN);
            Buckets {
                accounts: DefaultKeyedRateLimiter::keyed(Quota::per_second(rate).allow_burst(burst)),
                devices: DefaultKeyedRateLimiter::keyed(
                    Quota::per_second(half(rate)).allow_burst(half(burst)),
                ),
                clock: DefaultClock::default(),
            }
        });
        Self { buckets, hasher: RandomState::new() }
    }

    /// No limits.
    pub fn off() -> Self {
        Self::new(0, 0)
    }

    /// Takes a token from the device's bucket (when the request names a
    /// device), then from the account's.
    pub fn check(&self, account: &AccountId, device: Option<&DeviceId>) -> Result<(), RateLimited> {
        let Some(buckets) = &self.buckets else { return Ok(()) };
        let refused = |device, not_until: governor::NotUntil<_>| RateLimited {
            device,
            retry_after: not_until.wait_time_from(buckets.clock.now()),
        };
        if let Some(device) = device {
            let key = self.hasher.hash_one((account.as_str(), device.as_str()));
            buckets.devices.check_key(&key).map_err(|e| refused(true, e))?;
        }
        let key = self.hasher.hash_one(account.as_str());
        buckets.accounts.check_key(&key).map_err(|e| refused(false, e))
    }

    /// Drops the buckets that have refilled (their state is that of a new
    /// key); run every few seconds.
    pub fn forget_idle(&self) {
        if let Some(buckets) = &self.buckets {
            for limiter in [&buckets.accounts, &buckets.devices] {
                limiter.retain_recent();
                limiter.shrink_to_fit();
            }
        }
    }

    /// Accounts and devices with a bucket now (for tests and metrics).
    pub fn tracked(&self) -> usize {
        self.buckets.as_ref().map_or(0, |b| b.accounts.len() + b.devices.len())
    }
}

/// Every `period`, drops the buckets that have refilled (runs until
/// aborted).
pub async fn forget_idle_every(limits: Arc<RateLimits>, period: Duration) {
    let mut tick = tokio::time::interval(period);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        limits.forget_idle();
    }
}

/// The node's bound on playback requests in flight (`--max-in-flight`):
/// one counter, checked as each request arrives, before its body is read
/// (crates/server/src/serve/conn.rs). HTTP/2 streams are requests too.
#[derive(Debug)]
pub struct Admission {
    in_flight: AtomicUsize,
    max: usize,
    metrics: Arc<Metrics>,
}

/// One admitted request; dropping it frees its place.
#[derive(Debug)]
pub struct Admitted(Arc<Admission>);

impl Drop for Admitted {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

impl Admission {
    /// At most `max` in flight; sheds are counted in `metrics`.
    pub fn new(max: usize, metrics: Arc<Metrics>) -> Arc<Self> {
        Arc::new(Self { in_flight: AtomicUsize::new(0), max, metrics })
    }

    /// Whether `path` is held to the bound: the playback routes. Health
    /// checks, metrics, the OpenAPI document and the demo page never are.
    pub fn applies_to(path: &str) -> bool {
        path.starts_with("/playback/")
    }

    /// A place for one more request, or `None` (counted as shed) when
    /// `max` are in flight already: answer it with [`Admission::shed`].
    pub fn admit(self: &Arc<Self>) -> Option<Admitted> {
        if self.in_flight.fetch_add(1, Ordering::AcqRel) >= self.max {
            self.in_flight.fetch_sub(1, Ordering::AcqRel);
            self.metrics.shed.inc();
            return None;
        }
        Some(Admitted(Arc::clone(self)))
    }

    /// The answer to a shed request: 503 `overloaded` with `Retry-After`.
    pub fn shed() -> Response {
        ApiError::overloaded().into_response()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn account(s: &str) -> AccountId {
        AccountId::parse(s.to_owned()).expect("a valid account id")
    }

    fn device(s: &str) -> DeviceId {
        DeviceId::parse(s.to_owned()).expect("a valid device id")
    }

    #[test]
    fn an_account_gets_its_burst_then_is_refused_with_a_wait() {
        let limits = RateLimits::new(10, 20);
        let a = account("a");
        for _ in 0..20 {
            limits.check(&a, None).expect("admitted");
        }
        let refused = limits.check(&a, None).expect_err("refused");
        assert!(!refused.device);
        assert!(refused.retry_after > Duration::ZERO && refused.retry_after <= Duration::from_millis(100));
        // Another account is untouched.
        limits.check(&account("b"), None).expect("admitted");
    }

    #[test]
    fn one_device_gets_half_of_its_account() {
        let limits = RateLimits::new(10, 20);
        let (a, tv, phone) = (account("a"), device("tv"), device("phone"));
        for _ in 0..10 {
            limits.check(&a, Some(&tv)).expect("admitted");
        }
        assert!(limits.check(&a, Some(&tv)).expect_err("refused").device);
        // The household's other device still gets the rest.
        for _ in 0..10 {
            limits.check(&a, Some(&phone)).expect("admitted");
        }
        let refused = limits.check(&a, Some(&device("laptop"))).expect_err("refused");
        assert!(!refused.device, "the account's bucket is now empty");
    }

    #[test]
    fn zero_turns_the_limits_off() {
        let limits = RateLimits::new(0, 100);
        for _ in 0..10_000 {
            limits.check(&account("a"), Some(&device("tv"))).expect("admitted");
        }
        assert_eq!(limits.tracked(), 0);
    }

    #[test]
    fn refilled_buckets_are_forgotten() {
        let limits = RateLimits::new(1000, 1);
        for i in 0..100 {
            limits.check(&account(&format!("a{i}")), Some(&device("tv"))).expect("admitted");
        }
        assert_eq!(limits.tracked(), 200);
        std::thread::sleep(Duration::from_millis(20));
        limits.forget_idle();
        assert_eq!(limits.tracked(), 0);
    }
}

#[cfg(test)]
mod admission {
    use super::*;

    #[test]
    fn beyond_the_bound_requests_are_shed_and_a_freed_place_admits_again() {
        let admission = Admission::new(2, Arc::new(Metrics::default()));
        let (a, b) = (admission.admit().expect("first"), admission.admit().expect("second"));
        assert!(admission.admit().is_none(), "a third is shed");
        let shed = Admission::shed();
        assert_eq!(shed.status(), axum::http::StatusCode::SERVICE_UNAVAILABLE);
        assert!(shed.headers().contains_key("retry-after"));
        drop(a);
        let c = admission.admit().expect("a place freed");
        drop((b, c));
        assert_eq!(admission.in_flight.load(Ordering::SeqCst), 0);
    }

    #[test]
    fn only_the_playback_routes_are_bounded() {
        assert!(Admission::applies_to("/playback/update"));
        for path in ["/healthz", "/readyz", "/metrics", "/openapi.json", "/", "/sdk/playmark.js", "/playback"]
        {
            assert!(!Admission::applies_to(path), "{path}");
        }
    }
}
