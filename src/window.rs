//! Maintenance windows: `"01:00-05:00"` in a timezone. A window may wrap midnight (`"22:00-02:00"`).
//! Computation is DST-correct through chrono-tz: a window start that falls into a spring-forward gap
//! opens at the first instant after the gap; an ambiguous (fall-back) start opens at the earlier one.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Duration, LocalResult, NaiveDate, NaiveTime, TimeZone, Utc};
use chrono_tz::Tz;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    pub start: NaiveTime,
    pub end: NaiveTime,
    pub tz: Tz,
}

/// `HH:MM-HH:MM` (start and end may not be equal).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WindowSpec {
    pub start: NaiveTime,
    pub end: NaiveTime,
}

impl FromStr for WindowSpec {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (a, b) = s.split_once('-').ok_or("expected HH:MM-HH:MM")?;
        let parse =
            |t: &str| NaiveTime::parse_from_str(t.trim(), "%H:%M").map_err(|_| format!("{t:?} is not HH:MM"));
        let (start, end) = (parse(a)?, parse(b)?);
        if start == end {
            return Err("start and end are equal; omit the window to run at any time".into());
        }
        Ok(WindowSpec { start, end })
    }
}

impl fmt::Display for Window {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{} {}", self.start.format("%H:%M"), self.end.format("%H:%M"), self.tz.name())
    }
}

impl Window {
    pub fn new(spec: WindowSpec, tz: Tz) -> Window {
        Window { start: spec.start, end: spec.end, tz }
    }

    /// Whether the window is open at `t`.
    pub fn contains(&self, t: DateTime<Utc>) -> bool {
        let local = t.with_timezone(&self.tz).time();
        if self.start < self.end {
            self.start <= local && local < self.end
        } else {
            local >= self.start || local < self.end
        }
    }

    /// The first instant at or after `t` when the window is open.
    pub fn next_open(&self, t: DateTime<Utc>) -> DateTime<Utc> {
        if self.contains(t) {
            return t;
        }
        let today = t.with_timezone(&self.tz).date_naive();
        (-1..=2)
            .filter_map(|offset| today.checked_add_signed(Duration::days(offset)))
            .filter_map(|date| self.opening_on(date))
            .find(|open| *open > t)
            .unwrap_or(t + Duration::days(1))
    }

    /// The instant the window opens on local `date`.
    fn opening_on(&self, date: NaiveDate) -> Option<DateTime<Utc>> {
        let mut naive = date.and_time(self.start);
        // A start inside a DST gap does not exist locally: the first minute after the gap does.
        for _ in 0..=180 {
            match self.tz.from_local_datetime(&naive) {
                LocalResult::Single(t) => return Some(t.with_timezone(&Utc)),
                LocalResult::Ambiguous(earlier, _) => return Some(earlier.with_timezone(&Utc)),
                LocalResult::None => naive += Duration::minutes(1),
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn window(spec: &str, tz: &str) -> Window {
        Window::new(spec.parse().unwrap(), tz.parse().unwrap())
    }

    fn utc(y: i32, m: u32, d: u32, h: u32, min: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(y, m, d, h, min, 0).unwrap()
    }

    #[test]
    fn parses_and_rejects() {
        assert!("01:00-05:00".parse::<WindowSpec>().is_ok());
        assert!("1-5".parse::<WindowSpec>().is_err());
        assert!("05:00-05:00".parse::<WindowSpec>().is_err());
        assert!("25:00-05:00".parse::<WindowSpec>().is_err());
    }

    #[test]
    fn plain_and_wrapping_windows() {
        let w = window("01:00-05:00", "UTC");
        assert!(w.contains(utc(2026, 6, 1, 1, 0)) && w.contains(utc(2026, 6, 1, 4, 59)));
        assert!(!w.contains(utc(2026, 6, 1, 5, 0)));
        assert_eq!(w.next_open(utc(2026, 6, 1, 12, 0)), utc(2026, 6, 2, 1, 0));
        let night = window("22:00-02:00", "UTC");
        assert!(night.contains(utc(2026, 6, 1, 23, 30)) && night.contains(utc(2026, 6, 2, 1, 30)));
        assert_eq!(night.next_open(utc(2026, 6, 1, 3, 0)), utc(2026, 6, 1, 22, 0));
    }

    #[test]
    fn berlin_windows_follow_dst() {
        // Summer: Berlin is UTC+2, so 01:00 local is 23:00 UTC the day before.
        let w = window("01:00-05:00", "Europe/Berlin");
        assert_eq!(w.next_open(utc(2026, 7, 1, 12, 0)), utc(2026, 7, 1, 23, 0));
        // Winter: UTC+1.
        assert_eq!(w.next_open(utc(2026, 12, 1, 12, 0)), utc(2026, 12, 2, 0, 0));
        // Spring forward, 2026-03-29: 02:00-03:00 local does not exist. A window starting at 02:30
        // opens at 03:00 CEST = 01:00 UTC.
        let gap = window("02:30-04:00", "Europe/Berlin");
        assert_eq!(gap.next_open(utc(2026, 3, 28, 12, 0)), utc(2026, 3, 29, 1, 0));
        // Fall back, 2026-10-25: 02:30 local happens twice; the window opens at the first, 00:30 UTC.
        let twice = window("02:30-04:00", "Europe/Berlin");
        assert_eq!(twice.next_open(utc(2026, 10, 24, 12, 0)), utc(2026, 10, 25, 0, 30));
    }
}
