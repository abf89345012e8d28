//! Time buckets: minute buckets in UTC (live windows), hour and day buckets in the site's
//! timezone, so that "today" starts at the site's local midnight.

use jiff::Timestamp;
use jiff::civil::Date;
use jiff::tz::TimeZone;
use serde::{Deserialize, Serialize};

/// A bucket's width.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Grain {
    /// A UTC minute; kept about two hours, for live windows.
    Minute,
    /// A local hour of the site's timezone.
    Hour,
    /// A local day of the site's timezone.
    Day,
}

impl Grain {
    /// One letter, used in storage keys.
    pub fn letter(self) -> char {
        match self {
            Grain::Minute => 'm',
            Grain::Hour => 'h',
            Grain::Day => 'd',
        }
    }
}

/// One time bucket. `index` counts from the Unix epoch: UTC minutes for [`Grain::Minute`];
/// local hours (local days × 24 + hour) for [`Grain::Hour`]; local days for [`Grain::Day`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Bucket {
    pub grain: Grain,
    pub index: i64,
}

impl Bucket {
    pub fn day(date: Date) -> Bucket {
        Bucket { grain: Grain::Day, index: days_from_civil(date) }
    }

    /// The local date a day or hour bucket falls on (for a minute bucket, the UTC date).
    pub fn date(self) -> Date {
        let days = match self.grain {
            Grain::Day => self.index,
            Grain::Hour => self.index.div_euclid(24),
            Grain::Minute => self.index.div_euclid(24 * 60),
        };
        civil_from_days(days)
    }

    /// Human-readable label used in storage keys and API output:
    /// `2026-11-22` (day), `2026-11-22T14` (local hour), `2026-11-22T14:05` (UTC minute).
    pub fn label(self) -> String {
        let date = self.date();
        match self.grain {
            Grain::Day => date.to_string(),
            Grain::Hour => format!("{date}T{:02}", self.index.rem_euclid(24)),
            Grain::Minute => {
                let m = self.index.rem_euclid(24 * 60);
                format!("{date}T{:02}:{:02}", m / 60, m % 60)
            }
        }
    }

    /// Reads back a [`label`](Self::label) of the given grain; `None` if it is not one.
    pub fn parse_label(grain: Grain, label: &str) -> Option<Bucket> {
        let (date, time) = match grain {
            Grain::Day => (label, None),
            Grain::Hour | Grain::Minute => {
                let (date, time) = label.split_once('T')?;
                (date, Some(time))
            }
        };
        if date.len() != 10 {
            return None;
        }
        let days = days_from_civil(date.parse::<Date>().ok()?);
        let two_digits = |s: &str, max: i64| {
            let n: i64 =
                s.parse().ok().filter(|_| s.len() == 2 && s.bytes().all(|b| b.is_ascii_digit()))?;
            (n < max).then_some(n)
        };
        let index = match (grain, time) {
            (Grain::Day, None) => days,
            (Grain::Hour, Some(hour)) => days * 24 + two_digits(hour, 24)?,
            (Grain::Minute, Some(time)) => {
                let (hour, minute) = time.split_once(':')?;
                (days * 24 + two_digits(hour, 24)?) * 60 + two_digits(minute, 60)?
            }
            _ => return None,
        };
        Some(Bucket { grain, index })
    }

    /// The buckets from `self` to `last`, both included.
    pub fn through(self, last: Bucket) -> impl Iterator<Item = Bucket> {
        debug_assert_eq!(self.grain, last.grain);
        let grain = self.grain;
        (self.index..=last.index).map(move |index| Bucket { grain, index })
    }
}

/// Converts instants into a site's buckets.
#[derive(Clone, Debug)]
pub struct SiteClock {
    tz: TimeZone,
}

impl SiteClock {
    /// A clock for an IANA timezone name such as `Europe/Berlin` or `UTC`.
    pub fn new(timezone: &str) -> Result<SiteClock, TimezoneError> {
        TimeZone::get(timezone)
            .map(|tz| SiteClock { tz })
            .map_err(|_| TimezoneError(timezone.to_owned()))
    }

    pub fn utc() -> SiteClock {
        SiteClock { tz: TimeZone::UTC }
    }

    pub fn timezone(&self) -> &TimeZone {
        &self.tz
    }

    /// Seconds since the epoch of the local wall clock at `ts_ms`.
    fn local_seconds(&self, ts_ms: i64) -> i64 {
        let secs = ts_ms.div_euclid(1000);
        let offset =
            Timestamp::from_second(secs).map(|t| self.tz.to_offset(t).seconds()).unwrap_or(0);
        secs + i64::from(offset)
    }

    pub fn bucket(&self, ts_ms: i64, grain: Grain) -> Bucket {
        let index = match grain {
            Grain::Minute => ts_ms.div_euclid(60_000),
            Grain::Hour => self.local_seconds(ts_ms).div_euclid(3600),
            Grain::Day => self.local_seconds(ts_ms).div_euclid(86_400),
        };
        Bucket { grain, index }
    }

    /// The site's local date at `ts_ms`.
    pub fn date(&self, ts_ms: i64) -> Date {
        self.bucket(ts_ms, Grain::Day).date()
    }

    /// The UTC instant (Unix ms) at which a bucket begins. Local times that a DST change skips
    /// resolve to the first instant after the gap.
    pub fn start_ms(&self, bucket: Bucket) -> i64 {
        match bucket.grain {
            Grain::Minute => bucket.index * 60_000,
            Grain::Hour | Grain::Day => {
                let hour = match bucket.grain {
                    Grain::Hour => bucket.index.rem_euclid(24) as i8,
                    _ => 0,
                };
                let dt = bucket.date().at(hour, 0, 0, 0);
                self.tz
                    .to_ambiguous_zoned(dt)
                    .compatible()
                    .map(|z| z.timestamp().as_millisecond())
                    .unwrap_or(bucket.index * 3_600_000)
            }
        }
    }
}

/// A [`SiteClock`] that remembers the UTC offset between the two timezone transitions around
/// the last instant it looked up. The pipeline buckets every event (and its session's start)
/// this way; events come roughly in time order, so nearly all of them fall between the same two
/// transitions, months apart, and are bucketed without a timezone lookup.
#[derive(Clone, Debug)]
pub struct CachedClock {
    clock: SiteClock,
    /// The Unix seconds `from..until` over which `offset` holds.
    from: i64,
    until: i64,
    offset: i64,
}

impl CachedClock {
    pub fn new(clock: SiteClock) -> CachedClock {
        CachedClock { clock, from: 0, until: 0, offset: 0 }
    }

    /// The same as [`SiteClock::bucket`].
    pub fn bucket(&mut self, ts_ms: i64, grain: Grain) -> Bucket {
        let index = match grain {
            Grain::Minute => ts_ms.div_euclid(60_000),
            Grain::Hour => self.local_seconds(ts_ms).div_euclid(3600),
            Grain::Day => self.local_seconds(ts_ms).div_euclid(86_400),
        };
        Bucket { grain, index }
    }

    fn local_seconds(&mut self, ts_ms: i64) -> i64 {
        let secs = ts_ms.div_euclid(1000);
        if !(self.from..self.until).contains(&secs) {
            self.look_up(secs);
        }
        secs + self.offset
    }

    #[cold]
    fn look_up(&mut self, secs: i64) {
        let Ok(t) = Timestamp::from_second(secs) else {
            // Beyond what a timestamp can be, SiteClock uses no offset.
            (self.from, self.until, self.offset) = (secs, secs + 1, 0);
            return;
        };
        let tz = &self.clock.tz;
        self.offset = i64::from(tz.to_offset(t).seconds());
        // The offset holds from the last transition at or before `t` (the first one strictly
        // before the next second) until the first one after it.
        self.from = match Timestamp::from_second(secs + 1) {
            Ok(next) => tz
                .preceding(next)
                .next()
                .map_or(Timestamp::MIN.as_second(), |tr| tr.timestamp().as_second()),
            Err(_) => secs,
        };
        self.until = tz
            .following(t)
            .next()
            .map_or(Timestamp::MAX.as_second() + 1, |tr| tr.timestamp().as_second());
    }
}

#[derive(Debug, thiserror::Error)]
#[error(
    "unknown timezone `{0}`: use an IANA name such as `UTC`, `Europe/Berlin` or `America/New_York`"
)]
pub struct TimezoneError(pub String);

/// Days since 1970-01-01 of a civil date (proleptic Gregorian).
pub fn days_from_civil(date: Date) -> i64 {
    // Howard Hinnant's algorithm: shift the year to start in March so leap days come last.
    let (y, m, d) = (i64::from(date.year()), i64::from(date.month()), i64::from(date.day()));
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The civil date `days` after 1970-01-01.
pub fn civil_from_days(days: i64) -> Date {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    Date::new(y as i16, m as i8, d as i8).expect("valid civil date")
}

#[cfg(test)]
mod tests {
    use super::*;
    use jiff::civil::date;

    #[test]
    fn civil_day_numbers_match_jiff() {
        let epoch = date(1970, 1, 1);
        for d in [date(1970, 1, 1), date(2000, 2, 29), date(2026, 11, 22), date(1969, 12, 31)] {
            let expected = (d - epoch).get_days() as i64;
            assert_eq!(days_from_civil(d), expected, "{d}");
            assert_eq!(civil_from_days(expected), d);
        }
    }

    #[test]
    fn utc_buckets_and_labels() {
        let clock = SiteClock::utc();
        // 2026-11-22T14:05:30Z
        let ts = 1_795_356_330_000;
        assert_eq!(clock.bucket(ts, Grain::Day).label(), "2026-11-22");
        assert_eq!(clock.bucket(ts, Grain::Hour).label(), "2026-11-22T14");
        assert_eq!(clock.bucket(ts, Grain::Minute).label(), "2026-11-22T14:05");
        assert_eq!(clock.start_ms(clock.bucket(ts, Grain::Minute)), 1_795_356_300_000);
    }

    #[test]
    fn labels_read_back() {
        for days in [0, -1, 20_779, -719_468] {
            for (grain, index) in [
                (Grain::Day, days),
                (Grain::Hour, days * 24 + 23),
                (Grain::Minute, days * 1440 + 61),
            ] {
                let bucket = Bucket { grain, index };
                assert_eq!(Bucket::parse_label(grain, &bucket.label()), Some(bucket), "{bucket:?}");
            }
        }
        assert_eq!(
            Bucket::parse_label(Grain::Minute, "2026-11-22T14:05"),
            Some(Bucket { grain: Grain::Minute, index: (20_779 * 24 + 14) * 60 + 5 })
        );
        for (grain, bad) in [
            (Grain::Minute, "2026-11-22T14"),
            (Grain::Minute, "2026-11-22T14:60"),
            (Grain::Minute, "2026-11-22T14:+5"),
            (Grain::Hour, "2026-11-22T24"),
            (Grain::Hour, "2026-11-22"),
            (Grain::Day, "2026-11-22T14"),
            (Grain::Day, "2026-02-30"),
            (Grain::Day, "x"),
        ] {
            assert_eq!(Bucket::parse_label(grain, bad), None, "{bad}");
        }
    }

    #[test]
    fn local_days_follow_the_site_timezone() {
        let berlin = SiteClock::new("Europe/Berlin").unwrap();
        // 2026-11-22T23:30Z is already 2026-11-23 00:30 in Berlin (UTC+1 in winter).
        let ts = 1_795_390_200_000;
        assert_eq!(SiteClock::utc().date(ts), date(2026, 11, 22));
        assert_eq!(berlin.date(ts), date(2026, 11, 23));
        assert_eq!(berlin.bucket(ts, Grain::Hour).label(), "2026-11-23T00");
        // Berlin midnight of 2026-11-23 is 23:00Z the day before.
        let day = Bucket::day(date(2026, 11, 23));
        assert_eq!(berlin.start_ms(day), 1_795_388_400_000);
    }

    #[test]
    fn dst_gap_resolves_after_the_gap() {
        // 2026-03-29 02:00 does not exist in Berlin; the hour starts at 03:00 CEST = 01:00Z.
        let berlin = SiteClock::new("Europe/Berlin").unwrap();
        let hour =
            Bucket { grain: Grain::Hour, index: days_from_civil(date(2026, 3, 29)) * 24 + 2 };
        assert_eq!(berlin.start_ms(hour), 1_774_746_000_000);
    }

    #[test]
    fn a_cached_clock_buckets_as_its_clock_does() {
        let hour = 3_600_000;
        // 2026-03-29T00:00Z, around Europe's change to summer time.
        let spring = 1_774_742_400_000;
        for tz in ["UTC", "Europe/Berlin", "America/New_York", "Australia/Lord_Howe", "Asia/Tokyo"]
        {
            let clock = SiteClock::new(tz).unwrap();
            let mut cached = CachedClock::new(clock.clone());
            // Forwards and backwards across a year of transitions, on and next to the half hour
            // (when transitions happen), and to either side of the representable range.
            let half_hours = (0..48 * 400).map(|h| spring - 30 * 24 * hour + h * hour / 2);
            let mut instants: Vec<i64> =
                half_hours.flat_map(|t| [-1, 0, 999, 1000].map(|d| t + d)).collect();
            instants.extend(instants.clone().iter().rev().step_by(7));
            let (min, max) = (Timestamp::MIN.as_millisecond(), Timestamp::MAX.as_millisecond());
            instants.extend([i64::MIN, min - 1000, min, max, max + 1000, i64::MAX, 0]);
            for ts in instants {
                for grain in [Grain::Minute, Grain::Hour, Grain::Day] {
                    assert_eq!(cached.bucket(ts, grain), clock.bucket(ts, grain), "{tz} {ts}");
                }
            }
        }
    }

    #[test]
    fn unknown_timezone_is_an_error_that_names_it() {
        let err = SiteClock::new("Nowhere/City").unwrap_err();
        assert!(err.to_string().contains("Nowhere/City"));
    }
}
