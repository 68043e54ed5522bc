//! Host times and the model's timestamps (times before 1970 included).

use crate::model::Timestamp;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Converts a host time to a model timestamp (times before 1970 included).
pub fn to_timestamp(t: SystemTime) -> Timestamp {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => Timestamp {
            secs: i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
            nanos: d.subsec_nanos(),
        },
        Err(e) => {
            let d = e.duration();
            let secs = -i64::try_from(d.as_secs()).unwrap_or(i64::MAX);
            match d.subsec_nanos() {
                0 => Timestamp { secs, nanos: 0 },
                n => Timestamp {
                    secs: secs - 1,
                    nanos: 1_000_000_000 - n,
                },
            }
        }
    }
}

/// Converts a model timestamp to a host time.
pub fn to_system_time(t: Timestamp) -> SystemTime {
    let nanos = Duration::from_nanos(u64::from(t.nanos.min(999_999_999)));
    if t.secs >= 0 {
        UNIX_EPOCH + Duration::from_secs(t.secs.unsigned_abs()) + nanos
    } else {
        UNIX_EPOCH - Duration::from_secs(t.secs.unsigned_abs()) + nanos
    }
}

/// The current time as a model timestamp.
pub fn now() -> Timestamp {
    to_timestamp(SystemTime::now())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_round_trip() {
        for t in [
            Timestamp { secs: 0, nanos: 0 },
            Timestamp {
                secs: 1_700_000_000,
                nanos: 123,
            },
            Timestamp {
                secs: -5,
                nanos: 999_999_999,
            },
        ] {
            assert_eq!(to_timestamp(to_system_time(t)), t);
        }
    }
}
