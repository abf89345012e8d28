//! Queries of the Plausible Stats API v1: parameters parsed and validated into a [`StatsQuery`],
//! and its period resolved, with a site's clock, into the rollup buckets that answer it.
//!
//! Every error names the parameter and says what it accepts, because API users see it verbatim.

use std::collections::HashMap;

use jiff::Timestamp;
use jiff::civil::Date;

use crate::batch::Dim;
use crate::filter::{self, Filter};
use crate::time::{Bucket, Grain, SiteClock, civil_from_days, days_from_civil};

/// Minutes that `period=realtime` covers, ending with the current minute.
pub const REALTIME_MINUTES: i64 = 30;
/// Minutes that `/realtime/visitors` counts, ending with the current minute.
pub const CURRENT_VISITORS_MINUTES: i64 = 5;
/// Longest period an hourly timeseries may cover (744 points).
pub const MAX_HOUR_DAYS: i64 = 31;
/// Longest custom range: it bounds how many buckets one request can make the server read.
pub const MAX_CUSTOM_DAYS: i64 = 3660;
pub const DEFAULT_LIMIT: usize = 100;
pub const MAX_LIMIT: usize = 1000;

const PERIODS: &str = "realtime, day, 7d, 30d, month, 6mo, 12mo, custom";
const INTERVALS: &str = "minute, hour, date (or day), month";
const PROPERTIES: &str = "event:page, event:name, event:props:NAME, visit:entry_page, \
                          visit:exit_page, visit:source, visit:referrer, visit:channel, \
                          visit:utm_source, visit:utm_medium, visit:utm_campaign, \
                          visit:utm_term, visit:utm_content, visit:device, visit:browser, \
                          visit:browser_version, visit:os, visit:os_version, visit:country, \
                          visit:region, visit:city";

/// Which endpoint a query is for; it decides which parameters are read and how they are checked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StatsKind {
    Aggregate,
    Timeseries,
    Breakdown,
    /// `/realtime/visitors`: unique visitors of the last [`CURRENT_VISITORS_MINUTES`] minutes.
    RealtimeVisitors,
    /// footfall's `/props`: the custom property names of the events that pass the filters, for
    /// a dashboard to offer their breakdowns.
    PropNames,
}

/// The time range of a query, in the site's local dates (realtime excepted).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Period {
    /// The last [`REALTIME_MINUTES`] minutes.
    Realtime,
    /// The date.
    Day,
    /// The 7 days ending with the date.
    Days7,
    /// The 30 days ending with the date.
    Days30,
    /// The calendar month containing the date.
    Month,
    /// The 6 calendar months ending with the date's month.
    Months6,
    /// The 12 calendar months ending with the date's month.
    Months12,
    /// `from..=to`.
    Custom { from: Date, to: Date },
}

impl Period {
    pub fn name(self) -> &'static str {
        match self {
            Period::Realtime => "realtime",
            Period::Day => "day",
            Period::Days7 => "7d",
            Period::Days30 => "30d",
            Period::Month => "month",
            Period::Months6 => "6mo",
            Period::Months12 => "12mo",
            Period::Custom { .. } => "custom",
        }
    }

    /// The first and last local date of the period around `date` (ignored by custom ranges);
    /// `None` for realtime, which is counted in minutes.
    pub fn range(self, date: Date) -> Option<(Date, Date)> {
        let days_back = |n: i64| civil_from_days(days_from_civil(date) - n);
        Some(match self {
            Period::Realtime => return None,
            Period::Day => (date, date),
            Period::Days7 => (days_back(6), date),
            Period::Days30 => (days_back(29), date),
            Period::Month => (date.first_of_month(), date.last_of_month()),
            Period::Months6 => (months_back(date, 5), date.last_of_month()),
            Period::Months12 => (months_back(date, 11), date.last_of_month()),
            Period::Custom { from, to } => (from, to),
        })
    }

    /// The most days the period can span, to check intervals before a date is known.
    fn max_days(self) -> i64 {
        match self {
            Period::Realtime => 0,
            Period::Day => 1,
            Period::Days7 => 7,
            Period::Days30 => 30,
            Period::Month => 31,
            Period::Months6 => 184,
            Period::Months12 => 366,
            Period::Custom { from, to } => days_from_civil(to) - days_from_civil(from) + 1,
        }
    }
}

/// The first day of the month `n` months before `date`'s.
fn months_back(date: Date, n: i32) -> Date {
    let m = i32::from(date.year()) * 12 + i32::from(date.month()) - 1 - n;
    // Parsed years are 0000..=9999 and n < 12, so the year stays within jiff's -9999..=9999.
    Date::new(m.div_euclid(12) as i16, (m.rem_euclid(12) + 1) as i8, 1).expect("month in range")
}

/// The width of a timeseries point.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Interval {
    Minute,
    Hour,
    Date,
    Month,
}

impl Interval {
    pub fn name(self) -> &'static str {
        match self {
            Interval::Minute => "minute",
            Interval::Hour => "hour",
            Interval::Date => "date",
            Interval::Month => "month",
        }
    }

    fn default_for(period: Period) -> Interval {
        match period {
            Period::Realtime => Interval::Minute,
            Period::Day => Interval::Hour,
            Period::Months6 | Period::Months12 => Interval::Month,
            _ => Interval::Date,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Metric {
    Visitors,
    Visits,
    Pageviews,
    ViewsPerVisit,
    BounceRate,
    VisitDuration,
    Events,
    /// Average time a page was visible per pageview, seconds (from the tracker's engagement
    /// reports).
    TimeOnPage,
    /// Average deepest scroll per pageview, percent.
    ScrollDepth,
    /// Events from bots, which no other metric counts.
    BotEvents,
}

impl Metric {
    pub const ALL: [Metric; 10] = [
        Metric::Visitors,
        Metric::Visits,
        Metric::Pageviews,
        Metric::ViewsPerVisit,
        Metric::BounceRate,
        Metric::VisitDuration,
        Metric::Events,
        Metric::TimeOnPage,
        Metric::ScrollDepth,
        Metric::BotEvents,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Metric::Visitors => "visitors",
            Metric::Visits => "visits",
            Metric::Pageviews => "pageviews",
            Metric::ViewsPerVisit => "views_per_visit",
            Metric::BounceRate => "bounce_rate",
            Metric::VisitDuration => "visit_duration",
            Metric::Events => "events",
            Metric::TimeOnPage => "time_on_page",
            Metric::ScrollDepth => "scroll_depth",
            Metric::BotEvents => "bot_events",
        }
    }

    pub fn from_name(name: &str) -> Option<Metric> {
        Metric::ALL.into_iter().find(|m| m.name() == name)
    }

    /// Metrics from engagement reports, kept for the totals and by page.
    pub fn is_engagement(self) -> bool {
        matches!(self, Metric::TimeOnPage | Metric::ScrollDepth)
    }

    /// Metrics kept for the totals only.
    pub fn is_totals_only(self) -> bool {
        self == Metric::BotEvents
    }

    /// Metrics that need session counters (visits, bounces, duration).
    pub fn needs_visits(self) -> bool {
        matches!(
            self,
            Metric::Visits | Metric::ViewsPerVisit | Metric::BounceRate | Metric::VisitDuration
        )
    }
}

/// The `property` parameter for a dimension (`event:page`, `visit:source`, `event:props:plan`).
pub fn property_name(dim: &Dim) -> String {
    match dim {
        Dim::Page => "event:page".into(),
        Dim::EventName => "event:name".into(),
        Dim::Prop(name) => format!("event:props:{name}"),
        other => format!("visit:{}", other.key_name()),
    }
}

fn parse_property(value: &str) -> Result<Dim, QueryError> {
    dim_of(value).map_err(|e| QueryError::new("property", e))
}

/// The dimension a property name (`event:page`, `event:props:plan`) stands for.
fn dim_of(value: &str) -> Result<Dim, String> {
    if let Some(name) = value.strip_prefix("event:props:") {
        return if name.is_empty() {
            Err("`event:props:` needs a property name, e.g. `event:props:plan`".into())
        } else {
            Ok(Dim::Prop(name.into()))
        };
    }
    Dim::NAMED
        .into_iter()
        .find(|d| property_name(d) == value)
        .ok_or_else(|| format!("`{value}` is not supported; use one of {PROPERTIES}"))
}

/// A bad parameter: which one, and what is wrong with it.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{param}: {message}")]
pub struct QueryError {
    pub param: &'static str,
    pub message: String,
}

impl QueryError {
    fn new(param: &'static str, message: impl Into<String>) -> QueryError {
        QueryError { param, message: message.into() }
    }
}

/// A validated stats query.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StatsQuery {
    pub kind: StatsKind,
    /// The site's domain, as given; the caller looks the site up by it.
    pub site_id: String,
    pub period: Period,
    /// The `date` that relative periods end at or contain; `None` is today in the site's
    /// timezone. Unused by realtime and custom periods.
    pub date: Option<Date>,
    /// The point width; `Some` only for timeseries.
    pub interval: Option<Interval>,
    /// In the order asked for, without repeats.
    pub metrics: Vec<Metric>,
    /// The breakdown dimension; `Some` only for breakdowns.
    pub property: Option<Dim>,
    /// All must hold; empty for none. Filtered queries are answered from the raw log.
    pub filters: Vec<Filter>,
    pub limit: usize,
    /// 1-based.
    pub page: usize,
}

/// The non-empty, trimmed value of a parameter; an empty value counts as absent, since clients
/// often send `filters=` with nothing in it.
pub fn param<'a>(params: &'a HashMap<String, String>, name: &str) -> Option<&'a str> {
    params.get(name).map(|v| v.trim()).filter(|v| !v.is_empty())
}

/// The required `site_id`, on its own so that a server can find the site (and check access to
/// it) before looking at the other parameters.
pub fn site_id(params: &HashMap<String, String>) -> Result<&str, QueryError> {
    param(params, "site_id").ok_or_else(|| {
        QueryError::new("site_id", "required: the site's domain, e.g. `site_id=example.com`")
    })
}

impl StatsQuery {
    /// Parses and validates the parameters an endpoint reads; parameters it does not use are
    /// ignored, as Plausible does.
    pub fn parse(
        kind: StatsKind,
        params: &HashMap<String, String>,
    ) -> Result<StatsQuery, QueryError> {
        let site_id = site_id(params)?.to_owned();
        if kind == StatsKind::RealtimeVisitors {
            return Ok(StatsQuery {
                kind,
                site_id,
                period: Period::Realtime,
                date: None,
                interval: None,
                metrics: vec![Metric::Visitors],
                property: None,
                filters: Vec::new(),
                limit: DEFAULT_LIMIT,
                page: 1,
            });
        }
        if kind == StatsKind::Aggregate && param(params, "compare").is_some() {
            return Err(QueryError::new(
                "compare",
                "comparisons are not available in this version; leave the parameter out",
            ));
        }

        let (period, date) = parse_period(params)?;
        let metrics = match kind {
            StatsKind::PropNames => vec![Metric::Events],
            _ => parse_metrics(param(params, "metrics"))?,
        };
        let filters = match param(params, "filters") {
            Some(f) => filter::parse(f, dim_of).map_err(|e| QueryError::new("filters", e.0))?,
            None => Vec::new(),
        };
        if !filters.is_empty()
            && let Some(m) = metrics.iter().find(|m| m.is_totals_only())
        {
            return Err(QueryError::new(
                "metrics",
                format!(
                    "`{}` cannot be filtered: bots have no sessions, pages or sources to filter \
                     by; ask for it without `filters`",
                    m.name()
                ),
            ));
        }
        let mut query = StatsQuery {
            kind,
            site_id,
            period,
            date,
            interval: None,
            metrics,
            property: None,
            filters,
            limit: DEFAULT_LIMIT,
            page: 1,
        };
        match kind {
            StatsKind::Timeseries => query.interval = Some(parse_interval(params, period)?),
            StatsKind::Breakdown => query.parse_breakdown(params)?,
            StatsKind::Aggregate | StatsKind::RealtimeVisitors | StatsKind::PropNames => {}
        }
        Ok(query)
    }

    fn parse_breakdown(&mut self, params: &HashMap<String, String>) -> Result<(), QueryError> {
        if self.period == Period::Realtime {
            return Err(QueryError::new(
                "period",
                "`realtime` is not available for breakdowns, because rollups keep breakdowns per \
                 day; use day, 7d, 30d, month, 6mo, 12mo or custom",
            ));
        }
        let dim = match param(params, "property") {
            Some(p) => parse_property(p)?,
            None => {
                return Err(QueryError::new(
                    "property",
                    format!("required for breakdowns; use one of {PROPERTIES}"),
                ));
            }
        };
        for &m in &self.metrics {
            let supported = match dim {
                // Page visit metrics are those of the sessions that entered on the page, so a
                // ratio of the page's pageviews to them means nothing.
                Dim::Page => !matches!(m, Metric::ViewsPerVisit | Metric::BotEvents),
                Dim::EventName | Dim::Prop(_) => !m.needs_visits() && !m.is_totals_only(),
                _ => !m.is_engagement() && !m.is_totals_only(),
            };
            if !supported {
                let allowed = match dim {
                    Dim::Page => {
                        "visitors, visits, pageviews, bounce_rate, visit_duration, events, \
                         time_on_page, scroll_depth"
                    }
                    Dim::EventName | Dim::Prop(_) => "visitors, pageviews, events",
                    _ => {
                        "visitors, visits, pageviews, views_per_visit, bounce_rate, \
                          visit_duration, events"
                    }
                };
                return Err(QueryError::new(
                    "metrics",
                    format!(
                        "`{}` cannot be used with property `{}`; it supports {allowed}",
                        m.name(),
                        property_name(&dim)
                    ),
                ));
            }
        }
        self.property = Some(dim);
        if let Some(v) = param(params, "limit") {
            self.limit =
                v.parse().ok().filter(|n| (1..=MAX_LIMIT).contains(n)).ok_or_else(|| {
                    QueryError::new(
                        "limit",
                        format!("`{v}` is not valid; use a whole number from 1 to {MAX_LIMIT}"),
                    )
                })?;
        }
        if let Some(v) = param(params, "page") {
            self.page = v.parse().ok().filter(|&n| n >= 1).ok_or_else(|| {
                QueryError::new("page", format!("`{v}` is not valid; use a whole number from 1"))
            })?;
        }
        Ok(())
    }

    /// The local date the period is anchored at: `date`, or today in the site's timezone.
    pub fn anchor_date(&self, clock: &SiteClock, now_ms: i64) -> Date {
        self.date.unwrap_or_else(|| clock.date(now_ms))
    }

    /// The first and last local date the query covers; `None` for realtime queries.
    pub fn date_range(&self, clock: &SiteClock, now_ms: i64) -> Option<(Date, Date)> {
        match self.kind {
            StatsKind::RealtimeVisitors => None,
            _ => self.period.range(self.anchor_date(clock, now_ms)),
        }
    }

    /// The buckets that answer the query at `now_ms`.
    pub fn resolve(&self, clock: &SiteClock, now_ms: i64) -> Resolved {
        let now = clock.bucket(now_ms, Grain::Minute);
        let minutes =
            |n: i64| Bucket { grain: Grain::Minute, index: now.index - (n - 1) }.through(now);
        if self.kind == StatsKind::RealtimeVisitors {
            return Resolved {
                buckets: minutes(CURRENT_VISITORS_MINUTES).collect(),
                points: vec![],
            };
        }
        let Some((from, to)) = self.date_range(clock, now_ms) else {
            let buckets: Vec<Bucket> = minutes(REALTIME_MINUTES).collect();
            let points = match self.interval {
                Some(_) => buckets
                    .iter()
                    .map(|&b| Point { label: minute_label(clock, b), buckets: vec![b] })
                    .collect(),
                None => vec![],
            };
            return Resolved { buckets, points };
        };
        let days: Vec<Bucket> = Bucket::day(from).through(Bucket::day(to)).collect();
        let points = match self.interval {
            None | Some(Interval::Minute) => vec![],
            Some(Interval::Date) => days
                .iter()
                .map(|&d| Point { label: d.date().to_string(), buckets: vec![d] })
                .collect(),
            Some(Interval::Hour) => days
                .iter()
                .flat_map(|d| {
                    let date = d.date();
                    (0..24).map(move |h| Point {
                        label: format!("{date} {h:02}:00:00"),
                        buckets: vec![Bucket { grain: Grain::Hour, index: d.index * 24 + h }],
                    })
                })
                .collect(),
            Some(Interval::Month) => {
                let mut points: Vec<Point> = Vec::new();
                for &d in &days {
                    let label = d.date().first_of_month().to_string();
                    match points.last_mut() {
                        Some(p) if p.label == label => p.buckets.push(d),
                        _ => points.push(Point { label, buckets: vec![d] }),
                    }
                }
                points
            }
        };
        Resolved { buckets: days, points }
    }
}

/// What a query reads.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Resolved {
    /// The whole period: its local day buckets, or its UTC minute buckets for realtime.
    pub buckets: Vec<Bucket>,
    /// Timeseries points in time order, every one present; empty for other kinds.
    pub points: Vec<Point>,
}

/// One timeseries point.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Point {
    /// As Plausible labels it: `2026-11-22`, `2026-11-22 14:00:00`, `2026-11-01` (a month),
    /// `2026-11-22 14:05:00` (a minute, in the site's timezone).
    pub label: String,
    /// The buckets it sums: one minute, one hour, one day, or the period's days of one month.
    pub buckets: Vec<Bucket>,
}

/// A UTC minute bucket labelled with the site's local wall-clock time.
fn minute_label(clock: &SiteClock, minute: Bucket) -> String {
    let ms = clock.start_ms(minute);
    match Timestamp::from_millisecond(ms) {
        Ok(ts) => {
            let local = clock.timezone().to_datetime(ts);
            format!("{} {:02}:{:02}:00", local.date(), local.hour(), local.minute())
        }
        // Beyond jiff's years ±9999 there is no timezone data; UTC is the honest fallback.
        Err(_) => {
            let m = minute.index.rem_euclid(24 * 60);
            format!("{} {:02}:{:02}:00", minute.date(), m / 60, m % 60)
        }
    }
}

fn parse_date(param: &'static str, value: &str) -> Result<Date, QueryError> {
    let bad = || {
        QueryError::new(param, format!("`{value}` is not a date; use YYYY-MM-DD, e.g. 2026-11-22"))
    };
    let b = value.as_bytes();
    let shape = b.len() == 10
        && b[4] == b'-'
        && b[7] == b'-'
        && b.iter().enumerate().all(|(i, c)| i == 4 || i == 7 || c.is_ascii_digit());
    if !shape {
        return Err(bad());
    }
    let num = |r: std::ops::Range<usize>| value[r].parse::<i16>().map_err(|_| bad());
    Date::new(num(0..4)?, num(5..7)? as i8, num(8..10)? as i8).map_err(|_| bad())
}

fn parse_period(params: &HashMap<String, String>) -> Result<(Period, Option<Date>), QueryError> {
    let name = param(params, "period").unwrap_or("30d");
    let date = param(params, "date");
    let period = match name {
        "realtime" => return Ok((Period::Realtime, None)),
        "day" => Period::Day,
        "7d" => Period::Days7,
        "30d" => Period::Days30,
        "month" => Period::Month,
        "6mo" => Period::Months6,
        "12mo" => Period::Months12,
        "custom" => {
            let needs = "period=custom needs a range `date=YYYY-MM-DD,YYYY-MM-DD` (first and last \
                         day, both included)";
            let Some((from, to)) = date.and_then(|d| d.split_once(',')) else {
                return Err(match date {
                    None => QueryError::new("date", format!("required: {needs}")),
                    Some(d) => QueryError::new("date", format!("`{d}` is not a range: {needs}")),
                });
            };
            let (from, to) = (parse_date("date", from.trim())?, parse_date("date", to.trim())?);
            if from > to {
                return Err(QueryError::new(
                    "date",
                    format!(
                        "the range starts ({from}) after it ends ({to}); give the earlier day first"
                    ),
                ));
            }
            let period = Period::Custom { from, to };
            if period.max_days() > MAX_CUSTOM_DAYS {
                return Err(QueryError::new(
                    "date",
                    format!(
                        "a custom range covers at most {MAX_CUSTOM_DAYS} days and {from}..{to} \
                         covers {}; split the query",
                        period.max_days()
                    ),
                ));
            }
            return Ok((period, None));
        }
        other => {
            return Err(QueryError::new(
                "period",
                format!("unknown value `{other}`; use one of {PERIODS}"),
            ));
        }
    };
    Ok((period, date.map(|d| parse_date("date", d)).transpose()?))
}

fn parse_metrics(value: Option<&str>) -> Result<Vec<Metric>, QueryError> {
    let Some(value) = value else {
        return Ok(vec![Metric::Visitors]);
    };
    let mut metrics = Vec::new();
    for name in value.split(',').map(str::trim) {
        let metric = Metric::from_name(name).ok_or_else(|| {
            let all: Vec<&str> = Metric::ALL.iter().map(|m| m.name()).collect();
            QueryError::new(
                "metrics",
                format!(
                    "unknown metric `{name}`; use a comma-separated list of {}",
                    all.join(", ")
                ),
            )
        })?;
        if !metrics.contains(&metric) {
            metrics.push(metric);
        }
    }
    Ok(metrics)
}

fn parse_interval(
    params: &HashMap<String, String>,
    period: Period,
) -> Result<Interval, QueryError> {
    let interval = match param(params, "interval") {
        None => return Ok(Interval::default_for(period)),
        Some("minute") => Interval::Minute,
        Some("hour") => Interval::Hour,
        // Newer Plausible versions call the daily interval `day`.
        Some("date" | "day") => Interval::Date,
        Some("month") => Interval::Month,
        Some(other) => {
            return Err(QueryError::new(
                "interval",
                format!("unknown value `{other}`; use one of {INTERVALS}"),
            ));
        }
    };
    let err = |message: String| Err(QueryError::new("interval", message));
    match (interval, period) {
        (Interval::Minute, Period::Realtime) => Ok(interval),
        (Interval::Minute, _) => err(format!(
            "`minute` needs period=realtime (minute rollups are kept about two hours); use hour, \
             date or month with period={}",
            period.name()
        )),
        (_, Period::Realtime) => err(format!(
            "period=realtime has minute points only; use interval=minute or leave `interval` out, \
             not `{}`",
            interval.name()
        )),
        (Interval::Hour, _) if period.max_days() > MAX_HOUR_DAYS => err(format!(
            "`hour` needs a period of at most {MAX_HOUR_DAYS} days (day, 7d, 30d, month or a \
             short custom range), not period={}; use date or month",
            period.name()
        )),
        _ => Ok(interval),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use jiff::civil::date;

    /// 2026-11-22T14:05:30Z.
    const NOW: i64 = 1_795_356_330_000;

    fn params(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        let mut p: HashMap<String, String> =
            pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        p.entry("site_id".into()).or_insert_with(|| "example.com".into());
        p
    }

    fn parse(kind: StatsKind, pairs: &[(&str, &str)]) -> Result<StatsQuery, QueryError> {
        StatsQuery::parse(kind, &params(pairs))
    }

    fn err(kind: StatsKind, pairs: &[(&str, &str)]) -> String {
        parse(kind, pairs).unwrap_err().to_string()
    }

    fn range(period: &str, day: &str) -> (Date, Date) {
        let q = parse(StatsKind::Aggregate, &[("period", period), ("date", day)]).unwrap();
        q.date_range(&SiteClock::utc(), NOW).unwrap()
    }

    fn day(d: Date) -> Bucket {
        Bucket::day(d)
    }

    #[test]
    fn defaults_follow_plausible() {
        let q = parse(StatsKind::Aggregate, &[]).unwrap();
        assert_eq!(q.site_id, "example.com");
        assert_eq!((q.period, q.date, q.interval), (Period::Days30, None, None));
        assert_eq!(q.metrics, vec![Metric::Visitors]);
        assert_eq!((q.limit, q.page), (100, 1));
        let interval = |period: &str| {
            parse(StatsKind::Timeseries, &[("period", period)]).unwrap().interval.unwrap()
        };
        assert_eq!(interval("realtime"), Interval::Minute);
        assert_eq!(interval("day"), Interval::Hour);
        assert_eq!(interval("7d"), Interval::Date);
        assert_eq!(interval("month"), Interval::Date);
        assert_eq!(interval("6mo"), Interval::Month);
        assert_eq!(interval("12mo"), Interval::Month);
        // Empty values count as absent.
        let q = parse(StatsKind::Aggregate, &[("filters", ""), ("period", " ")]).unwrap();
        assert_eq!(q.period, Period::Days30);
    }

    #[test]
    fn periods_resolve_to_local_dates() {
        assert_eq!(range("day", "2026-11-22"), (date(2026, 11, 22), date(2026, 11, 22)));
        assert_eq!(range("7d", "2026-11-22"), (date(2026, 11, 16), date(2026, 11, 22)));
        // Across a year boundary.
        assert_eq!(range("7d", "2026-01-03"), (date(2025, 12, 28), date(2026, 1, 3)));
        // 29 days before 1 March: all of February in a leap year, one January day otherwise.
        assert_eq!(range("30d", "2024-03-01"), (date(2024, 2, 1), date(2024, 3, 1)));
        assert_eq!(range("30d", "2025-03-01"), (date(2025, 1, 31), date(2025, 3, 1)));
        assert_eq!(range("month", "2024-02-10"), (date(2024, 2, 1), date(2024, 2, 29)));
        assert_eq!(range("month", "2023-02-10"), (date(2023, 2, 1), date(2023, 2, 28)));
        assert_eq!(range("month", "2026-12-31"), (date(2026, 12, 1), date(2026, 12, 31)));
        assert_eq!(range("6mo", "2026-03-15"), (date(2025, 10, 1), date(2026, 3, 31)));
        assert_eq!(range("12mo", "2026-01-31"), (date(2025, 2, 1), date(2026, 1, 31)));
        assert_eq!(range("12mo", "2026-12-01"), (date(2026, 1, 1), date(2026, 12, 31)));
        assert_eq!(
            range("custom", "2026-10-30,2026-11-02"),
            (date(2026, 10, 30), date(2026, 11, 2))
        );
        let q = parse(StatsKind::Aggregate, &[("period", "7d"), ("date", "2026-11-22")]).unwrap();
        let r = q.resolve(&SiteClock::utc(), NOW);
        assert_eq!(r.buckets.len(), 7);
        assert_eq!(r.buckets[0], day(date(2026, 11, 16)));
        assert_eq!(r.buckets[6], day(date(2026, 11, 22)));
        assert!(r.points.is_empty());
    }

    #[test]
    fn default_date_is_today_in_the_site_timezone() {
        // 2026-11-22T03:00Z is 2026-11-21 19:00 in Los Angeles (PST, UTC-8).
        let now = 1_795_316_400_000;
        let la = SiteClock::new("America/Los_Angeles").unwrap();
        let q = parse(StatsKind::Aggregate, &[("period", "day")]).unwrap();
        assert_eq!(q.date_range(&la, now), Some((date(2026, 11, 21), date(2026, 11, 21))));
        assert_eq!(q.resolve(&la, now).buckets, vec![day(date(2026, 11, 21))]);
        assert_eq!(q.date_range(&SiteClock::utc(), now).unwrap().0, date(2026, 11, 22));
        // `month` around that local date is still November; `month` on 1 December in UTC
        // would already be December when LA is on 30 November.
        let dec1 = 1_796_083_200_000 + 3_600_000; // 2026-12-01T01:00Z
        let q = parse(StatsKind::Aggregate, &[("period", "month")]).unwrap();
        assert_eq!(q.date_range(&la, dec1), Some((date(2026, 11, 1), date(2026, 11, 30))));
        assert_eq!(
            q.date_range(&SiteClock::utc(), dec1),
            Some((date(2026, 12, 1), date(2026, 12, 31)))
        );
    }

    #[test]
    fn hour_points_cover_the_local_day() {
        let q = parse(StatsKind::Timeseries, &[("period", "day"), ("date", "2026-11-22")]).unwrap();
        let r = q.resolve(&SiteClock::new("Europe/Berlin").unwrap(), NOW);
        assert_eq!(r.buckets, vec![day(date(2026, 11, 22))]);
        assert_eq!(r.points.len(), 24);
        assert_eq!(r.points[0].label, "2026-11-22 00:00:00");
        assert_eq!(r.points[14].label, "2026-11-22 14:00:00");
        assert_eq!(r.points[23].label, "2026-11-22 23:00:00");
        let d = days_from_civil(date(2026, 11, 22));
        assert_eq!(r.points[14].buckets, vec![Bucket { grain: Grain::Hour, index: d * 24 + 14 }]);
        // The hourly rollup labels the same bucket `2026-11-22T14`.
        assert_eq!(r.points[14].buckets[0].label(), "2026-11-22T14");
    }

    #[test]
    fn date_and_month_points() {
        let q = parse(StatsKind::Timeseries, &[("period", "7d"), ("date", "2026-11-02")]).unwrap();
        let r = q.resolve(&SiteClock::utc(), NOW);
        let labels: Vec<&str> = r.points.iter().map(|p| p.label.as_str()).collect();
        assert_eq!(
            labels,
            [
                "2026-10-27",
                "2026-10-28",
                "2026-10-29",
                "2026-10-30",
                "2026-10-31",
                "2026-11-01",
                "2026-11-02"
            ]
        );
        assert_eq!(r.points[5].buckets, vec![day(date(2026, 11, 1))]);

        // 30 days ending 10 March: 9..28 February (20 days), then 1..10 March.
        let q = parse(
            StatsKind::Timeseries,
            &[("period", "30d"), ("date", "2026-03-10"), ("interval", "month")],
        )
        .unwrap();
        let r = q.resolve(&SiteClock::utc(), NOW);
        assert_eq!(r.points.len(), 2);
        assert_eq!(r.points[0].label, "2026-02-01");
        assert_eq!(r.points[0].buckets.len(), 20);
        assert_eq!(r.points[0].buckets[0], day(date(2026, 2, 9)));
        assert_eq!(r.points[1].label, "2026-03-01");
        assert_eq!(r.points[1].buckets.len(), 10);

        // 6mo in a leap year: February has 29 day buckets.
        let q = parse(StatsKind::Timeseries, &[("period", "6mo"), ("date", "2024-03-15")]).unwrap();
        let r = q.resolve(&SiteClock::utc(), NOW);
        let labels: Vec<&str> = r.points.iter().map(|p| p.label.as_str()).collect();
        assert_eq!(
            labels,
            ["2023-10-01", "2023-11-01", "2023-12-01", "2024-01-01", "2024-02-01", "2024-03-01"]
        );
        let sizes: Vec<usize> = r.points.iter().map(|p| p.buckets.len()).collect();
        assert_eq!(sizes, [31, 30, 31, 31, 29, 31]);
        assert_eq!(r.buckets.len(), 183);
    }

    #[test]
    fn realtime_points_are_minutes_labelled_in_local_time() {
        let q = parse(StatsKind::Timeseries, &[("period", "realtime")]).unwrap();
        let r = q.resolve(&SiteClock::utc(), NOW);
        let now_minute = NOW / 60_000;
        assert_eq!(r.buckets.len(), 30);
        assert_eq!(r.buckets[0], Bucket { grain: Grain::Minute, index: now_minute - 29 });
        assert_eq!(r.buckets[29], Bucket { grain: Grain::Minute, index: now_minute });
        assert_eq!(r.points[0].label, "2026-11-22 13:36:00");
        assert_eq!(r.points[29].label, "2026-11-22 14:05:00");
        // India is UTC+5:30, so the minute shifts too.
        let kolkata = SiteClock::new("Asia/Kolkata").unwrap();
        let r = q.resolve(&kolkata, NOW);
        assert_eq!(r.points[0].label, "2026-11-22 19:06:00");
        assert_eq!(r.points[29].label, "2026-11-22 19:35:00");
        assert_eq!(r.points[29].buckets, vec![Bucket { grain: Grain::Minute, index: now_minute }]);

        // Aggregates over realtime read the same minutes, without points.
        let q = parse(StatsKind::Aggregate, &[("period", "realtime")]).unwrap();
        let r = q.resolve(&kolkata, NOW);
        assert_eq!((r.buckets.len(), r.points.len()), (30, 0));
        assert_eq!(q.date_range(&kolkata, NOW), None);

        let q = parse(StatsKind::RealtimeVisitors, &[("period", "7d")]).unwrap();
        let r = q.resolve(&SiteClock::utc(), NOW);
        let first = Bucket { grain: Grain::Minute, index: now_minute - 4 };
        assert_eq!(r.buckets, first.through(r.buckets[4]).collect::<Vec<_>>());
        assert_eq!(r.buckets[4].index, now_minute);
    }

    #[test]
    fn metrics_keep_their_order_without_repeats() {
        let q = parse(
            StatsKind::Aggregate,
            &[("metrics", "pageviews, visitors,bounce_rate,pageviews,views_per_visit")],
        )
        .unwrap();
        assert_eq!(
            q.metrics,
            [Metric::Pageviews, Metric::Visitors, Metric::BounceRate, Metric::ViewsPerVisit]
        );
    }

    #[test]
    fn properties_map_to_dimensions_and_result_keys() {
        let cases = [
            ("event:page", Dim::Page, "page"),
            ("event:name", Dim::EventName, "name"),
            ("event:props:plan", Dim::Prop("plan".into()), "plan"),
            ("visit:entry_page", Dim::EntryPage, "entry_page"),
            ("visit:exit_page", Dim::ExitPage, "exit_page"),
            ("visit:source", Dim::Source, "source"),
            ("visit:referrer", Dim::Referrer, "referrer"),
            ("visit:utm_source", Dim::UtmSource, "utm_source"),
            ("visit:utm_medium", Dim::UtmMedium, "utm_medium"),
            ("visit:utm_campaign", Dim::UtmCampaign, "utm_campaign"),
            ("visit:utm_term", Dim::UtmTerm, "utm_term"),
            ("visit:utm_content", Dim::UtmContent, "utm_content"),
            ("visit:channel", Dim::Channel, "channel"),
            ("visit:device", Dim::Device, "device"),
            ("visit:browser", Dim::Browser, "browser"),
            ("visit:browser_version", Dim::BrowserVersion, "browser_version"),
            ("visit:os", Dim::Os, "os"),
            ("visit:os_version", Dim::OsVersion, "os_version"),
            ("visit:country", Dim::Country, "country"),
            ("visit:region", Dim::Region, "region"),
            ("visit:city", Dim::City, "city"),
        ];
        for (property, dim, key) in cases {
            let q = parse(StatsKind::Breakdown, &[("property", property)]).unwrap();
            assert_eq!(q.property.as_ref(), Some(&dim));
            assert_eq!(dim.name(), key);
            assert_eq!(property_name(&dim), property);
        }
        let q = parse(
            StatsKind::Breakdown,
            &[("property", "event:page"), ("limit", "1000"), ("page", "3")],
        )
        .unwrap();
        assert_eq!((q.limit, q.page), (1000, 3));
    }

    #[test]
    fn bad_parameters_name_themselves_and_what_they_accept() {
        use StatsKind::*;
        // (endpoint, parameters, message)
        type Case = (StatsKind, &'static [(&'static str, &'static str)], &'static str);
        let cases: &[Case] = &[
            (
                Aggregate,
                &[("period", "8d")],
                "period: unknown value `8d`; use one of realtime, day, 7d, 30d, month, 6mo, \
                 12mo, custom",
            ),
            (
                Aggregate,
                &[("date", "2026-02-30")],
                "date: `2026-02-30` is not a date; use YYYY-MM-DD, e.g. 2026-11-22",
            ),
            (
                Aggregate,
                &[("date", "22/11/2026")],
                "date: `22/11/2026` is not a date; use YYYY-MM-DD, e.g. 2026-11-22",
            ),
            (
                Aggregate,
                &[("period", "custom")],
                "date: required: period=custom needs a range `date=YYYY-MM-DD,YYYY-MM-DD` \
                 (first and last day, both included)",
            ),
            (
                Aggregate,
                &[("period", "custom"), ("date", "2026-11-22")],
                "date: `2026-11-22` is not a range: period=custom needs a range \
                 `date=YYYY-MM-DD,YYYY-MM-DD` (first and last day, both included)",
            ),
            (
                Aggregate,
                &[("period", "custom"), ("date", "2026-11-22,2026-11-01")],
                "date: the range starts (2026-11-22) after it ends (2026-11-01); give the \
                 earlier day first",
            ),
            (
                Aggregate,
                &[("period", "custom"), ("date", "2000-01-01,2026-11-01")],
                "date: a custom range covers at most 3660 days and 2000-01-01..2026-11-01 \
                 covers 9802; split the query",
            ),
            (
                Aggregate,
                &[("metrics", "visitors,uniques")],
                "metrics: unknown metric `uniques`; use a comma-separated list of visitors, \
                 visits, pageviews, views_per_visit, bounce_rate, visit_duration, events, \
                 time_on_page, scroll_depth, bot_events",
            ),
            (
                Aggregate,
                &[("filters", "event:page")],
                "filters: `event:page` has no operator; write PROPERTY==VALUE (or !=, ~, !~), \
                 e.g. `event:page==/pricing`",
            ),
            (
                Aggregate,
                &[("filters", "visit:planet==Mars")],
                "filters: in `visit:planet==Mars`: `visit:planet` is not supported; use one of \
                 event:page, event:name, event:props:NAME, visit:entry_page, visit:exit_page, \
                 visit:source, visit:referrer, visit:channel, visit:utm_source, \
                 visit:utm_medium, visit:utm_campaign, visit:utm_term, visit:utm_content, \
                 visit:device, visit:browser, visit:browser_version, visit:os, \
                 visit:os_version, visit:country, visit:region, visit:city",
            ),
            (
                Aggregate,
                &[("filters", "event:page==/"), ("metrics", "visitors,bot_events")],
                "metrics: `bot_events` cannot be filtered: bots have no sessions, pages or \
                 sources to filter by; ask for it without `filters`",
            ),
            (
                Aggregate,
                &[("compare", "previous_period")],
                "compare: comparisons are not available in this version; leave the parameter \
                 out",
            ),
            (
                Timeseries,
                &[("interval", "week")],
                "interval: unknown value `week`; use one of minute, hour, date (or day), month",
            ),
            (
                Timeseries,
                &[("interval", "minute")],
                "interval: `minute` needs period=realtime (minute rollups are kept about two \
                 hours); use hour, date or month with period=30d",
            ),
            (
                Timeseries,
                &[("period", "realtime"), ("interval", "hour")],
                "interval: period=realtime has minute points only; use interval=minute or \
                 leave `interval` out, not `hour`",
            ),
            (
                Timeseries,
                &[("period", "6mo"), ("interval", "hour")],
                "interval: `hour` needs a period of at most 31 days (day, 7d, 30d, month or a \
                 short custom range), not period=6mo; use date or month",
            ),
            (
                Breakdown,
                &[],
                "property: required for breakdowns; use one of event:page, event:name, \
                 event:props:NAME, visit:entry_page, visit:exit_page, visit:source, \
                 visit:referrer, visit:channel, visit:utm_source, visit:utm_medium, \
                 visit:utm_campaign, visit:utm_term, visit:utm_content, visit:device, \
                 visit:browser, visit:browser_version, visit:os, visit:os_version, \
                 visit:country, visit:region, visit:city",
            ),
            (
                Breakdown,
                &[("property", "visit:planet")],
                "property: `visit:planet` is not supported; use one of event:page, event:name, \
                 event:props:NAME, visit:entry_page, visit:exit_page, visit:source, \
                 visit:referrer, visit:channel, visit:utm_source, visit:utm_medium, \
                 visit:utm_campaign, visit:utm_term, visit:utm_content, visit:device, \
                 visit:browser, visit:browser_version, visit:os, visit:os_version, \
                 visit:country, visit:region, visit:city",
            ),
            (
                Breakdown,
                &[("property", "event:props:")],
                "property: `event:props:` needs a property name, e.g. `event:props:plan`",
            ),
            (
                Breakdown,
                &[("property", "event:name"), ("metrics", "visitors,bounce_rate")],
                "metrics: `bounce_rate` cannot be used with property `event:name`; it \
                 supports visitors, pageviews, events",
            ),
            (
                Breakdown,
                &[("property", "event:props:plan"), ("metrics", "visits")],
                "metrics: `visits` cannot be used with property `event:props:plan`; it \
                 supports visitors, pageviews, events",
            ),
            (
                Breakdown,
                &[("property", "event:page"), ("metrics", "views_per_visit")],
                "metrics: `views_per_visit` cannot be used with property `event:page`; it \
                 supports visitors, visits, pageviews, bounce_rate, visit_duration, events, \
                 time_on_page, scroll_depth",
            ),
            (
                Breakdown,
                &[("property", "visit:browser"), ("metrics", "time_on_page")],
                "metrics: `time_on_page` cannot be used with property `visit:browser`; it \
                 supports visitors, visits, pageviews, views_per_visit, bounce_rate, \
                 visit_duration, events",
            ),
            (
                Breakdown,
                &[("property", "event:page"), ("metrics", "bot_events")],
                "metrics: `bot_events` cannot be used with property `event:page`; it \
                 supports visitors, visits, pageviews, bounce_rate, visit_duration, events, \
                 time_on_page, scroll_depth",
            ),
            (
                Breakdown,
                &[("property", "event:page"), ("period", "realtime")],
                "period: `realtime` is not available for breakdowns, because rollups keep \
                 breakdowns per day; use day, 7d, 30d, month, 6mo, 12mo or custom",
            ),
            (
                Breakdown,
                &[("property", "event:page"), ("limit", "0")],
                "limit: `0` is not valid; use a whole number from 1 to 1000",
            ),
            (
                Breakdown,
                &[("property", "event:page"), ("limit", "1001")],
                "limit: `1001` is not valid; use a whole number from 1 to 1000",
            ),
            (
                Breakdown,
                &[("property", "event:page"), ("page", "0")],
                "page: `0` is not valid; use a whole number from 1",
            ),
        ];
        for (kind, pairs, message) in cases {
            assert_eq!(err(*kind, pairs), *message, "{kind:?} {pairs:?}");
        }
        let missing = StatsQuery::parse(Aggregate, &HashMap::new()).unwrap_err();
        assert_eq!(
            missing.to_string(),
            "site_id: required: the site's domain, e.g. `site_id=example.com`"
        );
        assert_eq!(missing.param, "site_id");
    }

    #[test]
    fn unused_parameters_are_ignored() {
        // Plausible ignores what an endpoint does not read; so do we.
        let q = parse(StatsKind::Aggregate, &[("interval", "week"), ("property", "x")]).unwrap();
        assert_eq!((q.interval, q.property), (None, None));
        let q = parse(StatsKind::RealtimeVisitors, &[("period", "8d"), ("metrics", "x")]).unwrap();
        assert_eq!(q.period, Period::Realtime);
        // A date with realtime is meaningless but harmless.
        assert!(parse(StatsKind::Aggregate, &[("period", "realtime"), ("date", "x")]).is_ok());
    }
}
