//! The Plausible Stats API v1 (`/api/v1/stats/…`), answered from rollups so that Plausible's
//! clients work unchanged. [`run`] answers a parsed [`StatsQuery`] from a store and a site
//! without HTTP; the CLI calls it directly.
//!
//! Metrics: `visitors` is the HyperLogLog union over the period's buckets; `visits`,
//! `pageviews` and `events` are sums; `views_per_visit` is pageviews / visits to 2 decimals;
//! `bounce_rate` is 100 · bounces / visits and `visit_duration` is duration / visits in seconds,
//! both rounded half up to whole numbers. Every ratio is 0 when there are no visits.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::get;
use axum::{Json, Router};
use footfall_core::batch::{Dim, Slice};
use footfall_core::query::{self, Metric, Point, QueryError, Resolved};
pub use footfall_core::query::{StatsKind, StatsQuery};
use footfall_core::scan::{self, Grouping, Segment, Tally};
use footfall_core::site::{Site, normalize_domain};
use footfall_core::time::{Bucket, SiteClock};
use footfall_store::{Counts, Store};
use jiff::civil::Date;
use serde_json::{Map, Value, json};

use crate::auth;
use crate::engine::now_ms;
use crate::error::ApiError;
use crate::segments::Segments;
use crate::state::AppState;

impl From<QueryError> for ApiError {
    fn from(e: QueryError) -> ApiError {
        ApiError::bad_request(e.to_string())
    }
}

/// Answers `query` for `site` at `now_ms` in Plausible v1's response shape: `{"results": …}`,
/// or a bare number for [`StatsKind::RealtimeVisitors`]. `query.site_id` is only how callers
/// found `site`; `site` is what is read.
pub async fn run(
    store: &dyn Store,
    segments: &Segments,
    site: &Site,
    query: &StatsQuery,
    now_ms: i64,
) -> Result<Value, ApiError> {
    let clock = site.clock().map_err(|e| {
        ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, format!("site `{}`: {e}", site.domain))
    })?;
    let resolved = query.resolve(&clock, now_ms);
    if is_scanned(query) {
        let scan = Scan { store, segments, site, clock: &clock, now_ms };
        return scan.answer(query, &resolved).await;
    }
    let domain = site.domain.as_str();
    let metrics = &query.metrics;
    match query.kind {
        StatsKind::RealtimeVisitors => {
            Ok(json!(store.unique_count(domain, &resolved.buckets, &Slice::Total).await?))
        }
        StatsKind::Aggregate => {
            let (visitors, counts) = totals(store, domain, metrics, &resolved.buckets).await?;
            let results: Map<String, Value> = metrics
                .iter()
                .map(|&m| {
                    (m.name().to_owned(), json!({ "value": metric_value(m, visitors, &counts) }))
                })
                .collect();
            Ok(json!({ "results": results }))
        }
        StatsKind::Timeseries => timeseries(store, domain, metrics, &resolved.points).await,
        StatsKind::Breakdown => {
            let Some(dim) = &query.property else {
                return Err(ApiError::bad_request("property: required for breakdowns"));
            };
            breakdown(store, domain, query, dim, &resolved.buckets).await
        }
        StatsKind::PropNames => unreachable!("property names are always scanned"),
    }
}

/// Whether a query is answered from the raw log: filtered ones, property names, and exit
/// pages, whose rollup visitors count every page a session's exit passed through (a unique
/// count cannot take a visitor back when the exit moves on).
fn is_scanned(query: &StatsQuery) -> bool {
    !query.filters.is_empty()
        || query.kind == StatsKind::PropNames
        || query.property == Some(Dim::ExitPage)
}

/// A query answered by scanning segments of the raw log ([`footfall_core::scan`]).
struct Scan<'a> {
    store: &'a dyn Store,
    segments: &'a Segments,
    site: &'a Site,
    clock: &'a SiteClock,
    now_ms: i64,
}

impl Scan<'_> {
    async fn answer(&self, query: &StatsQuery, resolved: &Resolved) -> Result<Value, ApiError> {
        let end = |b: Bucket| self.clock.start_ms(Bucket { index: b.index + 1, ..b });
        let (Some(&first), Some(&last)) = (resolved.buckets.first(), resolved.buckets.last())
        else {
            return Err(ApiError::bad_request("the period covers no time"));
        };
        let range = self.clock.start_ms(first)..end(last);
        // The day before holds sessions whose events reach into the period.
        let days = self.clock.date(range.start).yesterday().unwrap_or(Date::MIN)
            ..=self.clock.date(range.end - 1);
        let held = self.segments.get(self.store, self.site, self.clock, days, self.now_ms).await?;
        let segments: Vec<&Segment> = held.iter().map(|s| s.as_ref()).collect();
        let filters = &query.filters;
        let metrics = &query.metrics;
        let value = |t: &Tally, m: Metric| metric_value(m, t.visitors, &counts_of(t));
        match query.kind {
            StatsKind::Aggregate | StatsKind::RealtimeVisitors => {
                let rows = scan::tally(&segments, filters, range, Grouping::Total);
                let total = rows.first().map(|(_, t)| *t).unwrap_or_default();
                let results: Map<String, Value> = metrics
                    .iter()
                    .map(|&m| (m.name().to_owned(), json!({ "value": value(&total, m) })))
                    .collect();
                Ok(json!({ "results": results }))
            }
            StatsKind::Timeseries => {
                let mut bounds: Vec<i64> = resolved
                    .points
                    .iter()
                    .filter_map(|p| p.buckets.first().map(|&b| self.clock.start_ms(b)))
                    .collect();
                bounds
                    .extend(resolved.points.last().and_then(|p| p.buckets.last()).map(|&b| end(b)));
                let rows = scan::tally(&segments, filters, range, Grouping::Points(&bounds));
                let results: Vec<Value> = resolved
                    .points
                    .iter()
                    .zip(rows)
                    .map(|(point, (_, t))| {
                        let mut row = Map::new();
                        row.insert("date".into(), point.label.clone().into());
                        for &m in metrics {
                            row.insert(m.name().into(), value(&t, m));
                        }
                        Value::Object(row)
                    })
                    .collect();
                Ok(json!({ "results": results }))
            }
            StatsKind::Breakdown => {
                let Some(dim) = &query.property else {
                    return Err(ApiError::bad_request("property: required for breakdowns"));
                };
                let rows = scan::tally(&segments, filters, range, Grouping::By(dim));
                let rows = rows.into_iter().filter(|(_, t)| *t != Tally::default());
                Ok(ranked(
                    rows.map(|(v, t)| (v.to_string(), t.visitors, counts_of(&t))),
                    query,
                    dim,
                ))
            }
            StatsKind::PropNames => {
                let mut rows = scan::tally(&segments, filters, range, Grouping::PropNames);
                rows.sort_by(|(a, x), (b, y)| y.events.cmp(&x.events).then_with(|| a.cmp(b)));
                let results: Vec<Value> = rows
                    .into_iter()
                    .map(|(name, t)| json!({ "prop": &*name, "events": t.events }))
                    .collect();
                Ok(json!({ "results": results }))
            }
        }
    }
}

fn counts_of(t: &Tally) -> Counts {
    Counts {
        pageviews: t.pageviews,
        events: t.events,
        visits: t.visits,
        bounces: t.bounces,
        duration: t.duration,
        engaged_ms: t.engaged_ms,
        scroll_depth: t.scroll_depth,
        bots: 0,
    }
}

fn needs_counters(metrics: &[Metric]) -> bool {
    metrics.iter().any(|&m| m != Metric::Visitors)
}

/// The site's visitors and summed counters over `buckets`, reading only what `metrics` need.
async fn totals(
    store: &dyn Store,
    site: &str,
    metrics: &[Metric],
    buckets: &[Bucket],
) -> Result<(u64, Counts), ApiError> {
    let visitors = if metrics.contains(&Metric::Visitors) {
        store.unique_count(site, buckets, &Slice::Total).await?
    } else {
        0
    };
    let mut counts = Counts::default();
    if needs_counters(metrics) {
        for c in store.totals(site, buckets).await? {
            counts.merge(&c);
        }
    }
    Ok((visitors, counts))
}

async fn timeseries(
    store: &dyn Store,
    site: &str,
    metrics: &[Metric],
    points: &[Point],
) -> Result<Value, ApiError> {
    // One read for every point's counters; unique counts cannot be summed, so they are one
    // union per point.
    let all: Vec<Bucket> = if needs_counters(metrics) {
        points.iter().flat_map(|p| p.buckets.iter().copied()).collect()
    } else {
        Vec::new()
    };
    let counters = if all.is_empty() { Vec::new() } else { store.totals(site, &all).await? };
    if counters.len() != all.len() {
        return Err(ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("the store answered {} totals for {} buckets", counters.len(), all.len()),
        ));
    }
    let mut rest = counters.as_slice();
    let mut results = Vec::with_capacity(points.len());
    for point in points {
        let mut counts = Counts::default();
        if !all.is_empty() {
            let (these, tail) = rest.split_at(point.buckets.len());
            these.iter().for_each(|c| counts.merge(c));
            rest = tail;
        }
        let visitors = if metrics.contains(&Metric::Visitors) {
            store.unique_count(site, &point.buckets, &Slice::Total).await?
        } else {
            0
        };
        let mut row = Map::new();
        row.insert("date".into(), point.label.clone().into());
        for &m in metrics {
            row.insert(m.name().into(), metric_value(m, visitors, &counts));
        }
        results.push(Value::Object(row));
    }
    Ok(json!({ "results": results }))
}

struct Row {
    value: String,
    visitors: u64,
    counts: Counts,
    /// The first requested metric, the second sort key.
    rank: f64,
}

async fn breakdown(
    store: &dyn Store,
    site: &str,
    query: &StatsQuery,
    dim: &Dim,
    days: &[Bucket],
) -> Result<Value, ApiError> {
    let metrics = &query.metrics;
    let rows = store.breakdown(site, days, dim).await?;
    let values: Vec<String> = rows.iter().map(|(v, _)| v.clone()).collect();
    // Visitors rank the rows, so every value's count is needed before a page can be cut.
    let visitors = store.unique_counts(site, days, dim, &values).await?;
    // A page's visit metrics are those of the sessions that entered on it, as in Plausible.
    let entries: HashMap<String, Counts> =
        if *dim == Dim::Page && metrics.iter().any(|m| m.needs_visits()) {
            store.breakdown(site, days, &Dim::EntryPage).await?.into_iter().collect()
        } else {
            HashMap::new()
        };
    let rows = rows.into_iter().zip(visitors).map(|((value, mut counts), visitors)| {
        if *dim == Dim::Page {
            let entry = entries.get(&value).copied().unwrap_or_default();
            counts.visits = entry.visits;
            counts.bounces = entry.bounces;
            counts.duration = entry.duration;
        }
        (value, visitors, counts)
    });
    Ok(ranked(rows, query, dim))
}

/// Breakdown rows in Plausible's order (visitors, then the first metric, then the value), the
/// asked page of them, in the response's shape.
fn ranked(
    rows: impl Iterator<Item = (String, u64, Counts)>,
    query: &StatsQuery,
    dim: &Dim,
) -> Value {
    let metrics = &query.metrics;
    let mut rows: Vec<Row> = rows
        .map(|(value, visitors, counts)| {
            let rank = metrics
                .first()
                .and_then(|&m| metric_value(m, visitors, &counts).as_f64())
                .unwrap_or(0.0);
            Row { value, visitors, counts, rank }
        })
        .collect();
    rows.sort_by(|a, b| {
        b.visitors
            .cmp(&a.visitors)
            .then_with(|| b.rank.total_cmp(&a.rank))
            .then_with(|| a.value.cmp(&b.value))
    });
    let key = dim.name();
    let results: Vec<Value> = rows
        .into_iter()
        .skip(query.page.saturating_sub(1).saturating_mul(query.limit))
        .take(query.limit)
        .map(|row| {
            let mut out = Map::new();
            // A version is named with what it is a version of, as Plausible does.
            let split = match dim {
                Dim::BrowserVersion => Some(Dim::Browser),
                Dim::OsVersion => Some(Dim::Os),
                _ => None,
            };
            match split.as_ref().zip(row.value.rsplit_once(' ')) {
                Some((of, (name, version))) => {
                    out.insert(of.name().to_owned(), name.into());
                    out.insert(key.to_owned(), version.into());
                }
                None => {
                    out.insert(key.to_owned(), row.value.into());
                }
            }
            for &m in metrics {
                out.insert(m.name().into(), metric_value(m, row.visitors, &row.counts));
            }
            Value::Object(out)
        })
        .collect();
    json!({ "results": results })
}

/// One metric as Plausible encodes it: integers, and a float for `views_per_visit`.
fn metric_value(metric: Metric, visitors: u64, c: &Counts) -> Value {
    let visits = i128::from(c.visits);
    match metric {
        Metric::Visitors => visitors.into(),
        Metric::Visits => c.visits.into(),
        Metric::Pageviews => c.pageviews.into(),
        Metric::Events => c.events.into(),
        // Rounded in integer hundredths, so that halves round up exactly.
        Metric::ViewsPerVisit => {
            (rounded_ratio(i128::from(c.pageviews) * 100, visits) as f64 / 100.0).into()
        }
        Metric::BounceRate => rounded_ratio(i128::from(c.bounces) * 100, visits).into(),
        Metric::VisitDuration => rounded_ratio(i128::from(c.duration), visits * 1000).into(),
        Metric::TimeOnPage => {
            rounded_ratio(i128::from(c.engaged_ms), i128::from(c.pageviews) * 1000).into()
        }
        Metric::ScrollDepth => {
            rounded_ratio(i128::from(c.scroll_depth), i128::from(c.pageviews)).into()
        }
        Metric::BotEvents => c.bots.into(),
    }
}

/// `num / den` rounded half up; 0 when there is nothing to divide by.
fn rounded_ratio(num: i128, den: i128) -> i64 {
    if den <= 0 {
        return 0;
    }
    (2 * num + den).div_euclid(2 * den) as i64
}

/// `GET /api/v1/stats/{aggregate,timeseries,breakdown,realtime/visitors}`.
pub fn routes() -> Router<Arc<AppState>> {
    Router::new()
        .route("/api/v1/stats/aggregate", get(get_aggregate))
        .route("/api/v1/stats/timeseries", get(get_timeseries))
        .route("/api/v1/stats/breakdown", get(get_breakdown))
        .route("/api/v1/stats/realtime/visitors", get(get_realtime_visitors))
        .route("/api/v1/stats/props", get(get_props))
}

type Params = Result<Query<HashMap<String, String>>, QueryRejection>;

async fn get_aggregate(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    params: Params,
) -> Result<Json<Value>, ApiError> {
    handle(&state, &headers, params, StatsKind::Aggregate).await
}

async fn get_timeseries(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    params: Params,
) -> Result<Json<Value>, ApiError> {
    handle(&state, &headers, params, StatsKind::Timeseries).await
}

async fn get_breakdown(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    params: Params,
) -> Result<Json<Value>, ApiError> {
    handle(&state, &headers, params, StatsKind::Breakdown).await
}

async fn get_realtime_visitors(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    params: Params,
) -> Result<Json<Value>, ApiError> {
    handle(&state, &headers, params, StatsKind::RealtimeVisitors).await
}

async fn get_props(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    params: Params,
) -> Result<Json<Value>, ApiError> {
    handle(&state, &headers, params, StatsKind::PropNames).await
}

async fn handle(
    state: &AppState,
    headers: &HeaderMap,
    params: Params,
    kind: StatsKind,
) -> Result<Json<Value>, ApiError> {
    let Query(params) =
        params.map_err(|e| ApiError::bad_request(format!("query string: {}", e.body_text())))?;
    let site_id = query::site_id(&params)?;
    let site = normalize_domain(site_id).ok().and_then(|d| state.site(&d));
    let Some(site) = site else {
        // Only key holders and logged-in users learn which sites exist.
        auth::require_admin(state, headers, auth::Action::Read).await?;
        return Err(ApiError::not_found(format!(
            "site_id: unknown site `{site_id}`; no site with that domain is registered on this \
             server"
        )));
    };
    auth::can_read(state, headers, query::param(&params, "auth"), &site).await?;
    let query = StatsQuery::parse(kind, &params)?;
    let _between_batches = state.rollups.read().await;
    Ok(Json(run(state.store.as_ref(), &state.segments, &site, &query, now_ms()).await?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use axum::http::Request;
    use axum::http::header::AUTHORIZATION;
    use footfall_core::batch::{Counter, CounterId, RowId, WriteBatch};
    use footfall_core::identity::Salts;
    use footfall_core::time::{Grain, days_from_civil};
    use footfall_store::{ApiKey, EmbeddedStore};
    use http_body_util::BodyExt;
    use jiff::civil::{Date, date};
    use tower::ServiceExt;

    use crate::state::{AppState, ServerConfig};

    /// 2026-11-22T14:05:30Z.
    const NOW: i64 = 1_795_356_330_000;
    const SITE: &str = "example.com";

    fn day(d: Date) -> Bucket {
        Bucket::day(d)
    }

    fn hour(d: Date, h: i64) -> Bucket {
        Bucket { grain: Grain::Hour, index: days_from_civil(d) * 24 + h }
    }

    /// The minute `back` minutes before NOW's.
    fn minute(back: i64) -> Bucket {
        Bucket { grain: Grain::Minute, index: NOW / 60_000 - back }
    }

    fn page(p: &str) -> Slice {
        Slice::By(Dim::Page, p.into())
    }

    /// Adds one slice's counters `[pageviews, events, visits, bounces, duration]` and visitors.
    fn put(b: &mut WriteBatch, bucket: Bucket, slice: Slice, c: [i64; 5], visitors: &[u64]) {
        let site: Arc<str> = SITE.into();
        for (counter, delta) in Counter::ALL.into_iter().zip(c) {
            let id = CounterId { site: site.clone(), bucket, slice: slice.clone(), counter };
            b.incr(id, delta);
        }
        for &v in visitors {
            b.add_unique(RowId { site: site.clone(), bucket, slice: slice.clone() }, v);
        }
    }

    /// The rollups of a small, hand-made history of `example.com` (UTC).
    fn history() -> WriteBatch {
        let (d22, d20) = (date(2026, 11, 22), date(2026, 11, 20));
        let mut b = WriteBatch::default();
        let total = Slice::Total;
        put(&mut b, day(d22), total.clone(), [7, 9, 3, 1, 200_000], &[1, 2, 3]);
        put(&mut b, day(d20), total.clone(), [2, 2, 1, 1, 0], &[4]);
        put(&mut b, hour(d22, 9), total.clone(), [2, 2, 1, 0, 100_000], &[1]);
        put(&mut b, hour(d22, 14), total.clone(), [5, 7, 2, 1, 100_000], &[2, 3]);
        put(&mut b, hour(d20, 10), total.clone(), [2, 2, 1, 1, 0], &[4]);
        put(&mut b, minute(0), total.clone(), [2, 3, 1, 0, 0], &[1, 2]);
        put(&mut b, minute(2), total.clone(), [1, 1, 1, 1, 0], &[2, 5]);
        put(&mut b, minute(6), total.clone(), [1, 1, 1, 1, 0], &[9]);
        // Outside the 30-minute realtime window.
        put(&mut b, minute(35), total, [1, 1, 1, 1, 0], &[10]);

        put(&mut b, day(d22), page("/"), [3, 3, 0, 0, 0], &[1, 2, 3]);
        put(&mut b, day(d22), page("/pricing"), [2, 2, 0, 0, 0], &[1, 2]);
        put(&mut b, day(d22), page("/about"), [1, 1, 0, 0, 0], &[3]);
        put(&mut b, day(d20), page("/blog"), [2, 2, 0, 0, 0], &[4]);
        let entry = |p: &str| Slice::By(Dim::EntryPage, p.into());
        put(&mut b, day(d22), entry("/"), [4, 5, 2, 1, 100_000], &[1, 2]);
        put(&mut b, day(d22), entry("/pricing"), [3, 4, 1, 0, 100_000], &[3]);
        put(&mut b, day(d20), entry("/blog"), [2, 2, 1, 1, 0], &[4]);

        let source = |s: &str| Slice::By(Dim::Source, s.into());
        put(&mut b, day(d22), source("Google"), [5, 6, 2, 1, 61_000], &[1, 2]);
        put(&mut b, day(d22), source("Twitter"), [1, 1, 1, 1, 0], &[3]);
        let utm = Slice::By(Dim::UtmSource, "newsletter".into());
        put(&mut b, day(d22), utm, [1, 1, 1, 1, 0], &[3]);
        let plan = |v: &str| Slice::By(Dim::Prop("plan".into()), v.into());
        put(&mut b, day(d22), plan("pro"), [0, 2, 0, 0, 0], &[1]);
        put(&mut b, day(d22), plan("free"), [0, 1, 0, 0, 0], &[2, 3]);
        let name = Slice::By(Dim::EventName, "signup".into());
        put(&mut b, day(d22), name, [0, 3, 0, 0, 0], &[1, 2]);
        b
    }

    async fn store() -> (tempfile::TempDir, Arc<dyn Store>) {
        let dir = tempfile::tempdir().unwrap();
        let store = EmbeddedStore::open(dir.path()).unwrap();
        store.apply(&history()).await.unwrap();
        (dir, Arc::new(store))
    }

    fn site() -> Site {
        Site::new(SITE, "UTC", false).unwrap()
    }

    async fn ask(store: &dyn Store, kind: StatsKind, pairs: &[(&str, &str)]) -> Value {
        let mut params: HashMap<String, String> =
            pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        params.insert("site_id".into(), SITE.into());
        let query = StatsQuery::parse(kind, &params).unwrap();
        let segments = Segments::new(30 * 60_000, 1 << 20);
        run(store, &segments, &site(), &query, NOW).await.unwrap()
    }

    const ALL: &str = "visitors,visits,pageviews,views_per_visit,bounce_rate,visit_duration,events";

    #[tokio::test]
    async fn aggregate_sums_counters_and_unions_visitors() {
        let (_dir, store) = store().await;
        let store = store.as_ref();
        // One day: 7/3 = 2.33 views per visit, 1/3 = 33 %, 200 s / 3 = 66.7 → 67 s.
        let v =
            ask(store, StatsKind::Aggregate, &[("period", "day"), ("date", "2026-11-22")]).await;
        assert_eq!(v, json!({ "results": { "visitors": { "value": 3 } } }));
        let v = ask(
            store,
            StatsKind::Aggregate,
            &[("period", "day"), ("date", "2026-11-22"), ("metrics", ALL)],
        )
        .await;
        let expected = json!({ "results": {
            "visitors": { "value": 3 }, "visits": { "value": 3 }, "pageviews": { "value": 7 },
            "views_per_visit": { "value": 2.33 }, "bounce_rate": { "value": 33 },
            "visit_duration": { "value": 67 }, "events": { "value": 9 },
        }});
        assert_eq!(v, expected);
        // Seven days: visitors {1,2,3} ∪ {4}; 9/4 = 2.25; 2/4 = 50 %; 200 s / 4 = 50 s.
        let v = ask(store, StatsKind::Aggregate, &[("period", "7d"), ("metrics", ALL)]).await;
        let expected = json!({ "results": {
            "visitors": { "value": 4 }, "visits": { "value": 4 }, "pageviews": { "value": 9 },
            "views_per_visit": { "value": 2.25 }, "bounce_rate": { "value": 50 },
            "visit_duration": { "value": 50 }, "events": { "value": 11 },
        }});
        assert_eq!(v, expected);
        // A day without data: every ratio is 0.
        let v = ask(
            store,
            StatsKind::Aggregate,
            &[("period", "day"), ("date", "2026-11-21"), ("metrics", ALL)],
        )
        .await;
        let expected = json!({ "results": {
            "visitors": { "value": 0 }, "visits": { "value": 0 }, "pageviews": { "value": 0 },
            "views_per_visit": { "value": 0.0 }, "bounce_rate": { "value": 0 },
            "visit_duration": { "value": 0 }, "events": { "value": 0 },
        }});
        assert_eq!(v, expected);
        // Realtime reads the last 30 minutes: visitors {1,2} ∪ {2,5} ∪ {9}.
        let v = ask(
            store,
            StatsKind::Aggregate,
            &[("period", "realtime"), ("metrics", "visitors,pageviews,visits")],
        )
        .await;
        let expected = json!({ "results": {
            "visitors": { "value": 4 }, "pageviews": { "value": 4 }, "visits": { "value": 3 },
        }});
        assert_eq!(v, expected);
    }

    #[test]
    fn ratios_round_half_up() {
        assert_eq!(rounded_ratio(100, 8), 13); // 12.5
        assert_eq!(rounded_ratio(100, 3), 33);
        assert_eq!(rounded_ratio(200, 3), 67);
        assert_eq!(rounded_ratio(61_000, 2_000), 31); // 30.5 s
        assert_eq!(rounded_ratio(5, 0), 0);
        let c = Counts { pageviews: 2335, visits: 1000, ..Counts::default() };
        assert_eq!(metric_value(Metric::ViewsPerVisit, 0, &c), json!(2.34));
    }

    #[tokio::test]
    async fn realtime_visitors_is_a_bare_number_of_the_last_five_minutes() {
        let (_dir, store) = store().await;
        // Minutes 0..=4 back hold {1,2} and {2,5}; the one 6 minutes back is out.
        let v = ask(store.as_ref(), StatsKind::RealtimeVisitors, &[]).await;
        assert_eq!(v, json!(3));
    }

    fn column(v: &Value, key: &str) -> Vec<Value> {
        v["results"].as_array().unwrap().iter().map(|p| p[key].clone()).collect()
    }

    #[tokio::test]
    async fn timeseries_has_every_point_with_plausible_labels() {
        let (_dir, store) = store().await;
        let store = store.as_ref();
        let v = ask(
            store,
            StatsKind::Timeseries,
            &[("period", "7d"), ("metrics", "visitors,pageviews,bounce_rate")],
        )
        .await;
        let zero = json!({ "visitors": 0, "pageviews": 0, "bounce_rate": 0 });
        let mut expected = Vec::new();
        for d in 16..=22 {
            let mut point = match d {
                20 => json!({ "visitors": 1, "pageviews": 2, "bounce_rate": 100 }),
                22 => json!({ "visitors": 3, "pageviews": 7, "bounce_rate": 33 }),
                _ => zero.clone(),
            };
            point["date"] = format!("2026-11-{d}").into();
            expected.push(point);
        }
        assert_eq!(v, json!({ "results": expected }));

        // `day` defaults to hours.
        let v = ask(
            store,
            StatsKind::Timeseries,
            &[("period", "day"), ("date", "2026-11-22"), ("metrics", "visitors,visits")],
        )
        .await;
        let points = v["results"].as_array().unwrap();
        assert_eq!(points.len(), 24);
        assert_eq!(points[0], json!({ "date": "2026-11-22 00:00:00", "visitors": 0, "visits": 0 }));
        assert_eq!(points[9], json!({ "date": "2026-11-22 09:00:00", "visitors": 1, "visits": 1 }));
        assert_eq!(
            points[14],
            json!({ "date": "2026-11-22 14:00:00", "visitors": 2, "visits": 2 })
        );
        assert_eq!(column(&v, "visits").iter().filter(|x| **x != json!(0)).count(), 2);

        // `6mo` defaults to months; November unions both days' visitors.
        let v = ask(
            store,
            StatsKind::Timeseries,
            &[("period", "6mo"), ("metrics", "visitors,pageviews")],
        )
        .await;
        let dates: Vec<Value> = (6..=11).map(|m| json!(format!("2026-{m:02}-01"))).collect();
        assert_eq!(column(&v, "date"), dates);
        assert_eq!(column(&v, "visitors"), [0, 0, 0, 0, 0, 4].map(|n| json!(n)));
        assert_eq!(column(&v, "pageviews"), [0, 0, 0, 0, 0, 9].map(|n| json!(n)));

        // Realtime: 30 minutes, labelled in the site's time.
        let v = ask(
            store,
            StatsKind::Timeseries,
            &[("period", "realtime"), ("metrics", "visitors,pageviews")],
        )
        .await;
        let points = v["results"].as_array().unwrap();
        assert_eq!(points.len(), 30);
        assert_eq!(
            points[0],
            json!({ "date": "2026-11-22 13:36:00", "visitors": 0, "pageviews": 0 })
        );
        assert_eq!(
            points[23],
            json!({ "date": "2026-11-22 13:59:00", "visitors": 1, "pageviews": 1 })
        );
        assert_eq!(
            points[27],
            json!({ "date": "2026-11-22 14:03:00", "visitors": 2, "pageviews": 1 })
        );
        assert_eq!(
            points[29],
            json!({ "date": "2026-11-22 14:05:00", "visitors": 2, "pageviews": 2 })
        );
    }

    #[tokio::test]
    async fn page_breakdown_sorts_paginates_and_takes_visit_metrics_from_entries() {
        let (_dir, store) = store().await;
        let store = store.as_ref();
        let metrics = "visitors,pageviews,visits,bounce_rate,visit_duration";
        let v = ask(
            store,
            StatsKind::Breakdown,
            &[("period", "7d"), ("property", "event:page"), ("metrics", metrics)],
        )
        .await;
        let row = |p: &str, v: u64, pv: u64, visits: u64, br: u64, dur: u64| {
            json!({ "page": p, "visitors": v, "pageviews": pv, "visits": visits,
                    "bounce_rate": br, "visit_duration": dur })
        };
        let expected = json!({ "results": [
            // Entered twice, one bounce, 100 s in all.
            row("/", 3, 3, 2, 50, 50),
            row("/pricing", 2, 2, 1, 0, 100),
            // Never entered on: no visits. Ties on visitors go by name.
            row("/about", 1, 1, 0, 0, 0),
            row("/blog", 1, 2, 1, 100, 0),
        ]});
        assert_eq!(v, expected);

        // With pageviews first, the tie between /about and /blog goes to /blog's 2 pageviews.
        let pages = |v: &Value| column(v, "page");
        let v = ask(
            store,
            StatsKind::Breakdown,
            &[("period", "7d"), ("property", "event:page"), ("metrics", "pageviews,visitors")],
        )
        .await;
        assert_eq!(pages(&v), ["/", "/pricing", "/blog", "/about"].map(|p| json!(p)));

        let page_of = |limit: &'static str, page: &'static str| {
            [("period", "7d"), ("property", "event:page"), ("limit", limit), ("page", page)]
        };
        let v = ask(store, StatsKind::Breakdown, &page_of("2", "2")).await;
        assert_eq!(
            v,
            json!({ "results": [
                { "page": "/about", "visitors": 1 }, { "page": "/blog", "visitors": 1 },
            ]})
        );
        let v = ask(store, StatsKind::Breakdown, &page_of("1", "2")).await;
        assert_eq!(pages(&v), [json!("/pricing")]);
        let v = ask(store, StatsKind::Breakdown, &page_of("2", "3")).await;
        assert_eq!(v, json!({ "results": [] }));
    }

    #[tokio::test]
    async fn breakdown_keys_are_the_property_last_segment() {
        let (_dir, store) = store().await;
        let store = store.as_ref();
        let on_22 = |property: &'static str, metrics: &'static str| {
            [
                ("period", "day"),
                ("date", "2026-11-22"),
                ("property", property),
                ("metrics", metrics),
            ]
        };
        // Session-level: every metric from the sessions that came from the source.
        let v = ask(store, StatsKind::Breakdown, &on_22("visit:source", ALL)).await;
        assert_eq!(
            v,
            json!({ "results": [
                // 5/2 = 2.5 views, 1/2 = 50 %, 61 s / 2 = 30.5 → 31 s.
                { "source": "Google", "visitors": 2, "visits": 2, "pageviews": 5,
                  "views_per_visit": 2.5, "bounce_rate": 50, "visit_duration": 31, "events": 6 },
                { "source": "Twitter", "visitors": 1, "visits": 1, "pageviews": 1,
                  "views_per_visit": 1.0, "bounce_rate": 100, "visit_duration": 0, "events": 1 },
            ]})
        );
        let v = ask(store, StatsKind::Breakdown, &on_22("visit:utm_source", "visits")).await;
        assert_eq!(v, json!({ "results": [{ "utm_source": "newsletter", "visits": 1 }] }));
        let v = ask(store, StatsKind::Breakdown, &on_22("visit:entry_page", "visitors")).await;
        assert_eq!(column(&v, "entry_page"), [json!("/"), json!("/pricing")]);
        let v =
            ask(store, StatsKind::Breakdown, &on_22("event:props:plan", "visitors,events")).await;
        assert_eq!(
            v,
            json!({ "results": [
                { "plan": "free", "visitors": 2, "events": 1 },
                { "plan": "pro", "visitors": 1, "events": 2 },
            ]})
        );
        let v = ask(store, StatsKind::Breakdown, &on_22("event:name", "events")).await;
        assert_eq!(v, json!({ "results": [{ "name": "signup", "events": 3 }] }));
        // A period without data has no rows.
        let v = ask(
            store,
            StatsKind::Breakdown,
            &[("period", "day"), ("date", "2026-11-21"), ("property", "event:page")],
        )
        .await;
        assert_eq!(v, json!({ "results": [] }));
    }

    // --- HTTP ----------------------------------------------------------------------------------

    struct Server {
        _dir: tempfile::TempDir,
        app: Router,
        key: String,
    }

    async fn server() -> Server {
        let (dir, store) = store().await;
        let key = auth::new_key();
        let api_key = ApiKey { name: "test".into(), created: NOW };
        store.put_api_key(auth::hash_key(&key), &api_key).await.unwrap();
        let sites = vec![site(), Site::new("open.org", "Europe/Berlin", true).unwrap()];
        let state = AppState::new(store, ServerConfig::default(), sites, Salts::new(NOW, [7; 64]));
        Server { _dir: dir, app: routes().with_state(Arc::new(state)), key }
    }

    async fn get(app: &Router, uri: &str, key: Option<&str>) -> (StatusCode, Value) {
        let mut req = Request::builder().uri(uri);
        if let Some(key) = key {
            req = req.header(AUTHORIZATION, format!("Bearer {key}"));
        }
        let resp = app.clone().oneshot(req.body(Body::empty()).unwrap()).await.unwrap();
        let status = resp.status();
        let body = resp.into_body().collect().await.unwrap().to_bytes();
        (status, serde_json::from_slice(&body).unwrap())
    }

    #[tokio::test]
    async fn endpoints_answer_over_http_with_api_keys() {
        let s = server().await;
        let key = Some(s.key.as_str());
        let uri = "/api/v1/stats/aggregate?site_id=example.com&period=custom\
                   &date=2026-11-20,2026-11-22&metrics=visitors,pageviews";
        let (status, body) = get(&s.app, uri, key).await;
        assert_eq!(status, StatusCode::OK);
        let expected =
            json!({ "results": { "visitors": { "value": 4 }, "pageviews": { "value": 9 } } });
        assert_eq!(body, expected);

        let (status, body) = get(&s.app, uri, None).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        assert!(body["error"].as_str().unwrap().contains("are private"), "{body}");
        let (status, _) = get(&s.app, uri, Some("ff_0000")).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);

        let uri = "/api/v1/stats/timeseries?site_id=example.com&period=custom\
                   &date=2026-11-21,2026-11-22";
        let (status, body) = get(&s.app, uri, key).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(
            body,
            json!({ "results": [
                { "date": "2026-11-21", "visitors": 0 }, { "date": "2026-11-22", "visitors": 3 },
            ]})
        );

        let uri = "/api/v1/stats/breakdown?site_id=example.com&period=day&date=2026-11-22\
                   &property=event:name&metrics=events";
        let (status, body) = get(&s.app, uri, key).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(body, json!({ "results": [{ "name": "signup", "events": 3 }] }));

        // The live window follows the wall clock, so only the shape is certain here.
        let (status, body) =
            get(&s.app, "/api/v1/stats/realtime/visitors?site_id=example.com", key).await;
        assert_eq!(status, StatusCode::OK);
        assert!(body.is_u64(), "{body}");

        // A public site answers without a key; its domain is normalised like everywhere else.
        let (status, body) =
            get(&s.app, "/api/v1/stats/aggregate?site_id=www.Open.org&period=7d", None).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(body, json!({ "results": { "visitors": { "value": 0 } } }));
    }

    #[tokio::test]
    async fn unknown_sites_and_bad_parameters_are_explained() {
        let s = server().await;
        let key = Some(s.key.as_str());
        let (status, body) = get(&s.app, "/api/v1/stats/aggregate?site_id=nope.com", key).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        assert_eq!(
            body["error"],
            "site_id: unknown site `nope.com`; no site with that domain is registered on this \
             server"
        );
        // Without a key, nobody learns whether the site exists.
        let (status, _) = get(&s.app, "/api/v1/stats/aggregate?site_id=nope.com", None).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);

        let cases = [
            (
                "aggregate?period=8d",
                "period: unknown value `8d`; use one of realtime, day, 7d, \
              30d, month, 6mo, 12mo, custom",
            ),
            (
                "aggregate?metrics=hits",
                "metrics: unknown metric `hits`; use a comma-separated \
              list of visitors, visits, pageviews, views_per_visit, bounce_rate, \
              visit_duration, events, time_on_page, scroll_depth, bot_events",
            ),
            (
                "aggregate?filters=event:page%3D/",
                "filters: `event:page=/` has no operator; write PROPERTY==VALUE (or !=, ~, \
                 !~), e.g. `event:page==/pricing`",
            ),
            (
                "timeseries?period=30d&interval=minute",
                "interval: `minute` needs \
              period=realtime (minute rollups are kept about two hours); use hour, date or \
              month with period=30d",
            ),
            (
                "breakdown?property=event:page&period=realtime",
                "period: `realtime` is not \
              available for breakdowns, because rollups keep breakdowns per day; use day, 7d, \
              30d, month, 6mo, 12mo or custom",
            ),
            (
                "breakdown?property=event:name&metrics=visit_duration",
                "metrics: \
              `visit_duration` cannot be used with property `event:name`; it supports \
              visitors, pageviews, events",
            ),
            (
                "breakdown?property=event:page&limit=5000",
                "limit: `5000` is not valid; use a \
              whole number from 1 to 1000",
            ),
        ];
        for (query, message) in cases {
            let uri = format!("/api/v1/stats/{query}&site_id=example.com");
            let (status, body) = get(&s.app, &uri, key).await;
            assert_eq!(status, StatusCode::BAD_REQUEST, "{query}");
            assert_eq!(body, json!({ "error": message }), "{query}");
        }
        let (status, body) = get(&s.app, "/api/v1/stats/breakdown?period=day", key).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert_eq!(
            body["error"],
            "site_id: required: the site's domain, e.g. `site_id=example.com`"
        );
    }
}
