//! Durations in the configuration file: humantime strings (`"250ms"`,
//! `"5s"`, `"1m 30s"`, `"2h"`), each at most [`DURATION_MAX`].
//!
//! Every configured duration ends up added to a clock reading (a timer, a
//! deadline, an expiry), and such an addition panics when it overflows:
//! `"300000000000years"` parses, and would kill the task that first used
//! it. No key has a use for more than a week, so one bound for every key,
//! enforced while the file is parsed (so `check-config` refuses the file and
//! names the key), keeps every such addition in range. Fields use it as
//! `#[serde(with = "duration")]`, for `Duration` and `Option<Duration>`.

use std::time::Duration;

use serde::de::{Deserialize, Deserializer, Error};

/// The longest duration any key accepts.
pub const DURATION_MAX: Duration = Duration::from_secs(7 * 24 * 3600);

/// A duration field's value: a duration, or an optional one.
pub trait Bounded {
    fn longest(&self) -> Option<Duration>;
}

impl Bounded for Duration {
    fn longest(&self) -> Option<Duration> {
        Some(*self)
    }
}

impl Bounded for Option<Duration> {
    fn longest(&self) -> Option<Duration> {
        *self
    }
}

pub fn deserialize<'de, T, D>(deserializer: D) -> Result<T, D::Error>
where
    T: Bounded,
    D: Deserializer<'de>,
    humantime_serde::Serde<T>: Deserialize<'de>,
{
    let value: T = humantime_serde::deserialize(deserializer)?;
    match value.longest() {
        Some(d) if d > DURATION_MAX => Err(D::Error::custom(format!(
            "is {}; must be at most {}",
            humantime::format_duration(d),
            humantime::format_duration(DURATION_MAX)
        ))),
        _ => Ok(value),
    }
}
