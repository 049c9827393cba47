//! Latency histograms, error counts and the summary table.

use std::collections::BTreeMap;
use std::time::Duration;

use hdrhistogram::Histogram;
use serde::Serialize;

/// What one kind of request (resume, update, ...) saw.
#[derive(Debug, Clone)]
pub struct Stats {
    /// Latency in microseconds, 1 µs to 60 s, 3 significant figures.
    pub latency: Histogram<u64>,
    /// Failed requests by HTTP status (0: no answer).
    pub errors: BTreeMap<u16, u64>,
}

impl Default for Stats {
    fn default() -> Self {
        Self {
            latency: Histogram::new_with_bounds(1, 60_000_000, 3).expect("valid histogram bounds"),
            errors: BTreeMap::new(),
        }
    }
}

impl Stats {
    /// Records one request: its latency and, if it failed, its status.
    pub fn record(&mut self, latency: Duration, status: u16) {
        let us = u64::try_from(latency.as_micros()).unwrap_or(u64::MAX).clamp(1, 60_000_000);
        self.latency.saturating_record(us);
        if !(200..300).contains(&status) {
            *self.errors.entry(status).or_default() += 1;
        }
    }

    /// Requests recorded.
    pub fn count(&self) -> u64 {
        self.latency.len()
    }
}

/// The numbers of a whole run, shared by every worker and viewer: one
/// histogram per request kind, however many viewers there are (a histogram
/// each would take ~140 KB per viewer and kind).
#[derive(Debug, Default)]
pub struct Recorder {
    kinds: std::sync::Mutex<BTreeMap<&'static str, Stats>>,
}

impl Recorder {
    /// Records one request of `kind`.
    pub fn record(&self, kind: &'static str, latency: Duration, status: u16) {
        let mut kinds = self.kinds.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        kinds.entry(kind).or_default().record(latency, status);
    }

    /// Everything recorded, by kind.
    pub fn take(&self) -> BTreeMap<String, Stats> {
        let mut kinds = self.kinds.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        std::mem::take(&mut *kinds).into_iter().map(|(k, s)| (k.to_owned(), s)).collect()
    }
}

/// One row of the summary.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Summary {
    /// The request kind.
    pub kind: String,
    /// Requests made.
    pub requests: u64,
    /// Requests that did not succeed.
    pub errors: u64,
    /// Failed requests by status (`0`: no answer).
    pub errors_by_status: BTreeMap<u16, u64>,
    /// Requests per second over the run.
    pub throughput: f64,
    /// Latency percentiles, milliseconds.
    pub p50_ms: f64,
    /// 90th percentile.
    pub p90_ms: f64,
    /// 95th percentile.
    pub p95_ms: f64,
    /// 99th percentile.
    pub p99_ms: f64,
    /// 99.9th percentile.
    pub p999_ms: f64,
    /// The slowest.
    pub max_ms: f64,
}

/// Summarizes each kind's numbers over `elapsed`.
pub fn summarize(stats: &BTreeMap<String, Stats>, elapsed: Duration) -> Vec<Summary> {
    let secs = elapsed.as_secs_f64().max(1e-9);
    let ms = |us: u64| us as f64 / 1000.0;
    stats
        .iter()
        .map(|(kind, s)| Summary {
            kind: kind.clone(),
            requests: s.count(),
            errors: s.errors.values().sum(),
            errors_by_status: s.errors.clone(),
            throughput: s.count() as f64 / secs,
            p50_ms: ms(s.latency.value_at_quantile(0.50)),
            p90_ms: ms(s.latency.value_at_quantile(0.90)),
            p95_ms: ms(s.latency.value_at_quantile(0.95)),
            p99_ms: ms(s.latency.value_at_quantile(0.99)),
            p999_ms: ms(s.latency.value_at_quantile(0.999)),
            max_ms: ms(s.latency.max()),
        })
        .collect()
}

/// The summary as a table a person reads.
pub fn table(rows: &[Summary]) -> String {
    let mut out = format!(
        "{:<18} {:>10} {:>8} {:>12} {:>9} {:>9} {:>9} {:>9} {:>9}\n",
        "kind", "requests", "errors", "req/s", "p50 ms", "p90 ms", "p99 ms", "p99.9 ms", "max ms"
    );
    for r in rows {
        out.push_str(&format!(
            "{:<18} {:>10} {:>8} {:>12.0} {:>9.3} {:>9.3} {:>9.3} {:>9.3} {:>9.3}\n",
            r.kind, r.requests, r.errors, r.throughput, r.p50_ms, r.p90_ms, r.p99_ms, r.p999_ms, r.max_ms
        ));
        for (status, n) in &r.errors_by_status {
            let what = if *status == 0 { "no answer".to_owned() } else { format!("HTTP {status}") };
            out.push_str(&format!("{:<18} {n:>10} x {what}\n", ""));
        }
    }
    out
}

/// When request `i` of an open-loop run at `rate` per second is due, from
/// the start. Latency is measured from this intended time, so a server that
/// falls behind shows its queueing instead of hiding it (no coordinated
/// omission).
pub fn intended_offset(i: u64, rate: f64) -> Duration {
    Duration::from_secs_f64(i as f64 / rate.max(1e-9))
}

/// How many requests of an open-loop run at `rate` are due `elapsed` after
/// the start (request 0 is due at once), counting only those due before
/// `end`.
pub fn due_by(elapsed: Duration, end: Duration, rate: f64) -> u64 {
    let rate = rate.max(1e-9);
    if elapsed >= end {
        // Requests due exactly at `end` are not part of the run.
        (end.as_secs_f64() * rate).ceil() as u64
    } else {
        (elapsed.as_secs_f64() * rate).floor() as u64 + 1
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_open_loop_schedule_releases_requests_as_they_fall_due() {
        let end = Duration::from_secs(2);
        assert_eq!(due_by(Duration::ZERO, end, 1000.0), 1, "request 0 is due at the start");
        assert_eq!(due_by(Duration::from_micros(999), end, 1000.0), 1);
        assert_eq!(due_by(Duration::from_millis(1), end, 1000.0), 2);
        assert_eq!(due_by(Duration::from_millis(1500), end, 1000.0), 1501);
        assert_eq!(due_by(Duration::from_secs(5), end, 1000.0), 2000, "2 s at 1000/s is 2000 requests");
        assert_eq!(due_by(Duration::from_secs(5), end, 3.0), 6);
        // Every released request is due: its intended time is not ahead.
        for ms in 0..2000 {
            let elapsed = Duration::from_millis(ms);
            let n = due_by(elapsed, end, 333.0);
            assert!(intended_offset(n - 1, 333.0) <= elapsed);
            assert!(intended_offset(n, 333.0) > elapsed || n == due_by(end, end, 333.0));
        }
    }

    #[test]
    fn the_recorder_keeps_every_worker_s_requests_by_kind() {
        let recorder = std::sync::Arc::new(Recorder::default());
        std::thread::scope(|scope| {
            for _ in 0..4 {
                let recorder = &recorder;
                scope.spawn(move || {
                    for ms in [1, 2, 3] {
                        recorder.record("resume", Duration::from_millis(ms), 200);
                    }
                    recorder.record("update", Duration::from_millis(50), 503);
                    recorder.record("connect", Duration::from_micros(10), 0);
                });
            }
        });
        let kinds = recorder.take();
        assert_eq!(kinds["resume"].count(), 12);
        assert!(kinds["resume"].errors.is_empty());
        assert_eq!(kinds["update"].errors, BTreeMap::from([(503, 4)]));
        assert!(kinds["update"].latency.max() >= 49_900);
        assert_eq!(kinds["connect"].errors, BTreeMap::from([(0, 4)]));
        assert!(kinds["connect"].latency.min() <= 10);
        assert!(recorder.take().is_empty(), "taken once");
    }

    #[test]
    fn the_summary_has_throughput_and_percentiles() {
        let mut s = Stats::default();
        for ms in 1..=100 {
            s.record(Duration::from_millis(ms), 200);
        }
        let rows = summarize(&BTreeMap::from([("resume".to_owned(), s)]), Duration::from_secs(2));
        let r = &rows[0];
        assert_eq!((r.requests, r.errors), (100, 0));
        assert!((r.throughput - 50.0).abs() < 1e-9);
        assert!((r.p50_ms - 50.0).abs() < 0.1, "{}", r.p50_ms);
        assert!((r.p99_ms - 99.0).abs() < 0.1, "{}", r.p99_ms);
        assert!(table(&rows).contains("resume"));
    }

    #[test]
    fn open_loop_requests_are_due_at_even_intervals() {
        assert_eq!(intended_offset(0, 1000.0), Duration::ZERO);
        assert_eq!(intended_offset(500, 1000.0), Duration::from_millis(500));
        assert_eq!(intended_offset(3, 2.0), Duration::from_millis(1500));
    }
}
