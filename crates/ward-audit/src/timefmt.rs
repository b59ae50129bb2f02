//! The two timestamp formats the audit log writes: Kubernetes `MicroTime` in events, and
//! lumberjack's backup-file timestamp. Both are UTC. Formatting never panics: a time outside
//! the representable range (years ±9999) is written as the Unix epoch.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use time::{Date, Month, OffsetDateTime};

/// Formats `t` as a Kubernetes `MicroTime` (Go's `2006-01-02T15:04:05.000000Z07:00` in UTC),
/// truncating to microseconds as Go does.
pub(crate) fn micro_time(t: SystemTime) -> String {
    let dt = to_utc(t);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:06}Z",
        dt.year(),
        u8::from(dt.month()),
        dt.day(),
        dt.hour(),
        dt.minute(),
        dt.second(),
        dt.microsecond()
    )
}

/// Formats `t` as lumberjack's `backupTimeFormat`, `2006-01-02T15-04-05.000`, in UTC.
pub(crate) fn backup_timestamp(t: SystemTime) -> String {
    let dt = to_utc(t);
    format!(
        "{:04}-{:02}-{:02}T{:02}-{:02}-{:02}.{:03}",
        dt.year(),
        u8::from(dt.month()),
        dt.day(),
        dt.hour(),
        dt.minute(),
        dt.second(),
        dt.millisecond()
    )
}

/// Parses a [`backup_timestamp`]; `None` unless `s` has exactly that form (as Go's
/// `time.Parse(backupTimeFormat, s)` requires).
pub(crate) fn parse_backup_timestamp(s: &str) -> Option<SystemTime> {
    let b = s.as_bytes();
    if b.len() != BACKUP_TIMESTAMP_LEN {
        return None;
    }
    for (i, sep) in [
        (4, b'-'),
        (7, b'-'),
        (10, b'T'),
        (13, b'-'),
        (16, b'-'),
        (19, b'.'),
    ] {
        if b[i] != sep {
            return None;
        }
    }
    let num = |from: usize, to: usize| -> Option<u32> {
        let digits = &b[from..to];
        if !digits.iter().all(u8::is_ascii_digit) {
            return None;
        }
        digits.iter().try_fold(0u32, |acc, d| {
            acc.checked_mul(10)?.checked_add(u32::from(d - b'0'))
        })
    };
    let year = i32::try_from(num(0, 4)?).ok()?;
    let month = Month::try_from(u8::try_from(num(5, 7)?).ok()?).ok()?;
    let day = u8::try_from(num(8, 10)?).ok()?;
    let hour = u8::try_from(num(11, 13)?).ok()?;
    let minute = u8::try_from(num(14, 16)?).ok()?;
    let second = u8::try_from(num(17, 19)?).ok()?;
    let milli = u16::try_from(num(20, 23)?).ok()?;
    let dt = Date::from_calendar_date(year, month, day)
        .ok()?
        .with_hms_milli(hour, minute, second, milli)
        .ok()?
        .assume_utc();
    let nanos = dt.unix_timestamp_nanos();
    if nanos >= 0 {
        let nanos = u64::try_from(nanos).ok()?;
        UNIX_EPOCH.checked_add(Duration::from_nanos(nanos))
    } else {
        let nanos = u64::try_from(-nanos).ok()?;
        UNIX_EPOCH.checked_sub(Duration::from_nanos(nanos))
    }
}

fn to_utc(t: SystemTime) -> OffsetDateTime {
    let nanos = match t.duration_since(UNIX_EPOCH) {
        Ok(after) => i128::try_from(after.as_nanos()).ok(),
        Err(before) => i128::try_from(before.duration().as_nanos())
            .ok()
            .map(|n| -n),
    };
    nanos
        .and_then(|n| OffsetDateTime::from_unix_timestamp_nanos(n).ok())
        .unwrap_or(OffsetDateTime::UNIX_EPOCH)
}

const BACKUP_TIMESTAMP_LEN: usize = "2006-01-02T15-04-05.000".len();

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn micro_time_matches_go() {
        // 2025-01-01T00:00:00.002000Z, plus 999 ns that Go's formatting truncates.
        let t = UNIX_EPOCH + Duration::new(1_735_689_600, 2_000_999);
        assert_eq!(micro_time(t), "2025-01-01T00:00:00.002000Z");
        assert_eq!(micro_time(UNIX_EPOCH), "1970-01-01T00:00:00.000000Z");
    }

    #[test]
    fn out_of_range_times_do_not_panic() {
        let far = UNIX_EPOCH + Duration::from_secs(u64::MAX / 4);
        assert_eq!(micro_time(far), "1970-01-01T00:00:00.000000Z");
        let before = UNIX_EPOCH - Duration::from_secs(86_400);
        assert_eq!(micro_time(before), "1969-12-31T00:00:00.000000Z");
    }

    #[test]
    fn backup_timestamp_round_trips() {
        let t = UNIX_EPOCH + Duration::new(1_478_888_999, 123_456_789);
        let s = backup_timestamp(t);
        assert_eq!(s, "2016-11-11T18-29-59.123");
        assert_eq!(
            parse_backup_timestamp(&s),
            Some(UNIX_EPOCH + Duration::new(1_478_888_999, 123_000_000))
        );
        for bad in [
            "",
            "2016-11-11T18-29-59",
            "2016-11-11T18:29:59.123",
            "2016-13-11T18-29-59.123",
            "2016-11-11T18-29-59.12x",
            "+016-11-11T18-29-59.123",
            "2016-02-30T18-29-59.123",
        ] {
            assert_eq!(parse_backup_timestamp(bad), None, "{bad}");
        }
    }
}
