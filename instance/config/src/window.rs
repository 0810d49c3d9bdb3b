//! The daily UTC window in which heavy maintenance sweeps may start
//! (`FEDI_MAINTENANCE_WINDOW=HH:MM+Nh`). Plain minute-of-day arithmetic: UTC has no
//! daylight saving, so no calendar is needed, and a window may run past midnight.

use std::fmt;
use std::str::FromStr;

const MINUTES_PER_DAY: u32 = 24 * 60;
const FORM: &str = "expected HH:MM+Nh (a UTC start time and 1 to 24 hours, e.g. 03:00+3h)";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MaintenanceWindow {
    /// Minutes after midnight UTC.
    start: u32,
    hours: u32,
}

impl MaintenanceWindow {
    /// `None` unless `hour` < 24, `minute` < 60 and `hours` in 1..=24.
    pub fn new(hour: u32, minute: u32, hours: u32) -> Option<Self> {
        (hour < 24 && minute < 60 && (1..=24).contains(&hours)).then_some(Self {
            start: hour * 60 + minute,
            hours,
        })
    }

    /// Whether the minute `minute_of_day` (after midnight UTC) falls inside: from the start
    /// included to the end excluded, counted modulo a day so that 22:00+4h holds 01:00.
    pub fn contains_minute(&self, minute_of_day: u32) -> bool {
        let since_start =
            (minute_of_day % MINUTES_PER_DAY + MINUTES_PER_DAY - self.start) % MINUTES_PER_DAY;
        since_start < self.hours * 60
    }

    /// Whether the instant `unix_ms` (milliseconds since the epoch) falls inside: the epoch
    /// is a UTC midnight and Unix time has no leap seconds, so days are whole minutes.
    pub fn contains_unix_ms(&self, unix_ms: i64) -> bool {
        let minute = unix_ms
            .div_euclid(60_000)
            .rem_euclid(i64::from(MINUTES_PER_DAY));
        self.contains_minute(minute as u32)
    }
}

impl FromStr for MaintenanceWindow {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let (time, hours) = s.split_once('+').ok_or_else(|| FORM.to_owned())?;
        let (hour, minute) = time.split_once(':').ok_or_else(|| FORM.to_owned())?;
        let hours = hours.strip_suffix('h').ok_or_else(|| FORM.to_owned())?;
        let number = |part: &str, digits: std::ops::RangeInclusive<usize>| {
            (digits.contains(&part.len()) && part.bytes().all(|b| b.is_ascii_digit()))
                .then(|| part.parse::<u32>().ok())
                .flatten()
                .ok_or_else(|| FORM.to_owned())
        };
        let (hour, minute, hours) = (
            number(hour, 2..=2)?,
            number(minute, 2..=2)?,
            number(hours, 1..=2)?,
        );
        if hour > 23 || minute > 59 {
            return Err(format!("{time} is not a time of day ({FORM})"));
        }
        Self::new(hour, minute, hours)
            .ok_or_else(|| format!("a window lasts 1 to 24 hours, not {hours} ({FORM})"))
    }
}

impl fmt::Display for MaintenanceWindow {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:02}:{:02}+{}h",
            self.start / 60,
            self.start % 60,
            self.hours
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(h: u32, m: u32) -> u32 {
        h * 60 + m
    }

    #[test]
    fn a_window_holds_its_start_and_not_its_end() {
        let w: MaintenanceWindow = "03:00+3h".parse().unwrap();
        assert!(!w.contains_minute(at(2, 59)));
        assert!(w.contains_minute(at(3, 0)));
        assert!(w.contains_minute(at(5, 59)));
        assert!(!w.contains_minute(at(6, 0)));
        assert!(!w.contains_minute(at(15, 0)));
    }

    #[test]
    fn a_window_crossing_midnight_holds_both_sides() {
        let w: MaintenanceWindow = "22:30+4h".parse().unwrap();
        for (h, m, inside) in [
            (22, 29, false),
            (22, 30, true),
            (23, 59, true),
            (0, 0, true),
            (2, 29, true),
            (2, 30, false),
            (12, 0, false),
        ] {
            assert_eq!(w.contains_minute(at(h, m)), inside, "{h:02}:{m:02}");
        }
    }

    #[test]
    fn a_whole_day_is_always_inside() {
        let w: MaintenanceWindow = "17:45+24h".parse().unwrap();
        assert!((0..MINUTES_PER_DAY).all(|m| w.contains_minute(m)));
    }

    #[test]
    fn instants_are_read_in_utc_whatever_the_day() {
        let w: MaintenanceWindow = "23:00+2h".parse().unwrap();
        // 2026-11-28T23:30:00Z and 2026-11-29T00:59:59.999Z inside, 01:00 after.
        let late = 1_795_908_600_000_i64;
        assert!(w.contains_unix_ms(late));
        assert!(w.contains_unix_ms(late + 89 * 60_000 + 59_999));
        assert!(!w.contains_unix_ms(late + 90 * 60_000));
        // Before the epoch still counts minutes from a UTC midnight.
        assert!(w.contains_unix_ms(-30 * 60_000));
        assert!(!w.contains_unix_ms(-61 * 60_000 - 1));
    }

    #[test]
    fn parsing_round_trips_and_bad_forms_say_what_is_expected() {
        for s in ["03:00+3h", "00:05+1h", "23:59+24h", "12:30+12h"] {
            let w: MaintenanceWindow = s.parse().unwrap();
            assert_eq!(w.to_string(), s);
        }
        for (bad, says) in [
            ("03:00", "HH:MM+Nh"),
            ("3:00+3h", "HH:MM+Nh"),
            ("03:00+3", "HH:MM+Nh"),
            ("03h00+3h", "HH:MM+Nh"),
            ("03:00+-3h", "HH:MM+Nh"),
            ("03:00+h", "HH:MM+Nh"),
            ("24:00+3h", "not a time of day"),
            ("03:60+3h", "not a time of day"),
            ("03:00+0h", "1 to 24 hours, not 0"),
            ("03:00+25h", "1 to 24 hours, not 25"),
        ] {
            let err = bad.parse::<MaintenanceWindow>().unwrap_err();
            assert!(err.contains(says), "{bad}: {err}");
        }
    }
}
