//! Playback positions and title durations.
//!
//! On the wire both are seconds as JSON numbers (fractions allowed); inside they
//! are integer milliseconds, so equality and ordering are exact on every backend.

use std::fmt;

/// The largest position or duration accepted: 30 days, in milliseconds.
pub const MAX_MILLIS: u64 = 30 * 24 * 60 * 60 * 1000;

/// Why a number of seconds is not a valid position or duration.
#[derive(Debug, Clone, Copy, PartialEq, thiserror::Error)]
pub enum PositionError {
    /// NaN or infinite.
    #[error("must be a finite number")]
    NotFinite,
    /// Below the allowed minimum (0 for a position, above 0 for a duration).
    #[error("must be {0}")]
    TooSmall(&'static str),
    /// Above 30 days.
    #[error("must be at most 2592000 seconds (30 days)")]
    TooLarge,
}

fn secs_to_millis(secs: f64) -> Result<u64, PositionError> {
    if !secs.is_finite() {
        return Err(PositionError::NotFinite);
    }
    if secs < 0.0 {
        return Err(PositionError::TooSmall(">= 0"));
    }
    // Compared before rounding: the documented bound is on the seconds sent,
    // so 2592000.0000000005 is over it even though it rounds to the bound.
    if secs > MAX_MILLIS as f64 / 1000.0 {
        return Err(PositionError::TooLarge);
    }
    let ms = (secs * 1000.0).round();
    // In range [0, MAX_MILLIS] and integral, so the cast is exact.
    Ok(ms as u64)
}

/// A playback position: how far into the title the viewer is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Position(u64);

impl Position {
    /// The very start of a title.
    pub const START: Position = Position(0);

    /// Parses seconds (`0 ..= 2_592_000`), rounding to the millisecond.
    pub fn from_secs(secs: f64) -> Result<Self, PositionError> {
        secs_to_millis(secs).map(Self)
    }

    /// Wraps milliseconds, rejecting values above 30 days.
    pub fn from_millis(ms: u64) -> Result<Self, PositionError> {
        if ms > MAX_MILLIS {
            return Err(PositionError::TooLarge);
        }
        Ok(Self(ms))
    }

    /// Milliseconds into the title.
    pub const fn as_millis(self) -> u64 {
        self.0
    }

    /// Seconds into the title, as sent on the wire.
    pub fn as_secs(self) -> f64 {
        self.0 as f64 / 1000.0
    }
}

impl fmt::Display for Position {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}s", self.as_secs())
    }
}

/// The length of a title; always above zero.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Duration(u64);

impl Duration {
    /// Parses seconds (`> 0 ..= 2_592_000`), rounding to the millisecond; a
    /// length above 0 but under half a millisecond is 1 ms, so every length
    /// the contract allows (above 0) is one.
    pub fn from_secs(secs: f64) -> Result<Self, PositionError> {
        match secs_to_millis(secs) {
            Ok(0) if secs > 0.0 => Ok(Self(1)),
            Ok(0) | Err(PositionError::TooSmall(_)) => Err(PositionError::TooSmall("> 0")),
            other => other.map(Self),
        }
    }

    /// Wraps milliseconds, rejecting zero and values above 30 days.
    pub fn from_millis(ms: u64) -> Result<Self, PositionError> {
        match ms {
            0 => Err(PositionError::TooSmall("> 0")),
            ms if ms > MAX_MILLIS => Err(PositionError::TooLarge),
            ms => Ok(Self(ms)),
        }
    }

    /// The length in milliseconds.
    pub const fn as_millis(self) -> u64 {
        self.0
    }

    /// The length in seconds, as sent on the wire.
    pub fn as_secs(self) -> f64 {
        self.0 as f64 / 1000.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seconds_are_kept_to_the_millisecond() {
        assert_eq!(Position::from_secs(1200.5).map(Position::as_millis), Ok(1_200_500));
        assert_eq!(Position::from_secs(0.0004).map(Position::as_millis), Ok(0));
        assert_eq!(Position::from_secs(0.0005).map(Position::as_millis), Ok(1));
        assert_eq!(Position::from_secs(1200.5).map(Position::as_secs), Ok(1200.5));
    }

    #[test]
    fn position_bounds_are_zero_and_thirty_days() {
        assert!(Position::from_secs(0.0).is_ok());
        assert!(Position::from_secs(2_592_000.0).is_ok());
        assert_eq!(Position::from_secs(2_592_000.001), Err(PositionError::TooLarge));
        assert_eq!(Position::from_secs(-0.001), Err(PositionError::TooSmall(">= 0")));
        assert_eq!(Position::from_secs(f64::NAN), Err(PositionError::NotFinite));
        assert_eq!(Position::from_secs(f64::INFINITY), Err(PositionError::NotFinite));
    }

    #[test]
    fn duration_must_be_above_zero() {
        assert_eq!(Duration::from_secs(0.0), Err(PositionError::TooSmall("> 0")));
        assert_eq!(Duration::from_secs(0.0001), Ok(Duration(1)), "above 0 is a length");
        assert_eq!(Position::from_secs(2_592_000.0).map(Position::as_millis), Ok(2_592_000_000));
        assert_eq!(
            Position::from_secs(2_592_000.000_000_5),
            Err(PositionError::TooLarge),
            "over, though it rounds to it"
        );
        assert_eq!(Duration::from_secs(2_592_000.000_000_5), Err(PositionError::TooLarge));
        assert_eq!(Duration::from_secs(5e-324), Ok(Duration(1)), "the smallest double above 0");
        assert_eq!(Duration::from_secs(-0.0), Err(PositionError::TooSmall("> 0")));
        assert_eq!(Duration::from_secs(-5.0), Err(PositionError::TooSmall("> 0")));
        assert_eq!(Duration::from_secs(3600.0).map(Duration::as_millis), Ok(3_600_000));
        assert_eq!(Duration::from_millis(0), Err(PositionError::TooSmall("> 0")));
    }
}
