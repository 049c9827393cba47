//! Time: milliseconds since the Unix epoch, and the clock-skew clamp.

use std::fmt;

/// A point in time, in integer milliseconds since the Unix epoch (UTC).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Timestamp(u64);

impl Timestamp {
    /// The epoch itself.
    pub const ZERO: Timestamp = Timestamp(0);

    /// Wraps a number of milliseconds since the epoch.
    pub const fn from_millis(ms: u64) -> Self {
        Self(ms)
    }

    /// Milliseconds since the epoch.
    pub const fn as_millis(self) -> u64 {
        self.0
    }

    /// This time plus `ms` milliseconds, saturating at the end of time.
    pub const fn saturating_add_millis(self, ms: u64) -> Self {
        Self(self.0.saturating_add(ms))
    }

    /// This time minus `ms` milliseconds, saturating at the epoch.
    pub const fn saturating_sub_millis(self, ms: u64) -> Self {
        Self(self.0.saturating_sub(ms))
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}ms", self.0)
    }
}

/// The time a checkpoint is recorded under, after the skew clamp.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EventTime {
    /// The time the record will carry.
    pub at: Timestamp,
    /// True when the client's time was too far ahead and the server's was used.
    pub clamped: bool,
}

impl EventTime {
    /// Decides the time a checkpoint is recorded under.
    ///
    /// A client may send its own event time (an offline upload carries the time
    /// the viewer actually watched). It is trusted up to `max_skew_ms` ahead of
    /// the server's clock; beyond that the server's clock is used, so a device
    /// whose clock runs far ahead cannot win every future conflict. Times in the
    /// past are always legal: they simply lose to newer records.
    pub fn resolve(client: Option<Timestamp>, server_now: Timestamp, max_skew_ms: u64) -> Self {
        match client {
            None => Self { at: server_now, clamped: false },
            Some(t) if t > server_now.saturating_add_millis(max_skew_ms) => {
                Self { at: server_now, clamped: true }
            }
            Some(t) => Self { at: t, clamped: false },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: Timestamp = Timestamp::from_millis(1_764_270_000_000);

    #[test]
    fn absent_client_time_uses_the_server_clock() {
        assert_eq!(EventTime::resolve(None, NOW, 5_000), EventTime { at: NOW, clamped: false });
    }

    #[test]
    fn client_time_within_the_skew_is_kept() {
        let ahead = NOW.saturating_add_millis(5_000);
        assert_eq!(EventTime::resolve(Some(ahead), NOW, 5_000).at, ahead);
    }

    #[test]
    fn client_time_beyond_the_skew_is_replaced_by_the_server_clock() {
        let ahead = NOW.saturating_add_millis(5_001);
        assert_eq!(EventTime::resolve(Some(ahead), NOW, 5_000), EventTime { at: NOW, clamped: true });
    }

    #[test]
    fn old_client_times_are_kept_for_offline_uploads() {
        let old = Timestamp::from_millis(1);
        assert_eq!(EventTime::resolve(Some(old), NOW, 5_000).at, old);
    }
}
