//! The backend-neutral test suite of [`Store`]: every backend runs these same checks, each on a
//! fresh, empty store, against expectations computed by hand (unique counts against
//! HyperLogLogs built in the check). A check panics when the backend disagrees.
//!
//! A backend's test file runs them all with [`conformance_tests!`](crate::conformance_tests).

use std::ops::Range;
use std::sync::Arc;
use std::time::Duration;

use footfall_core::batch::{
    Counter, CounterId, Dim, RowId, SessionKey, SessionRecord, Slice, WriteBatch, unique_element,
};
use footfall_core::event::{Event, Traits};
use footfall_core::hll::{Hll, count_union};
use footfall_core::identity::Salts;
use footfall_core::site::Site;
use footfall_core::time::{Bucket, Grain};

use crate::{ApiKey, Counts, Login, Share, Store, User};

/// Generates one `#[tokio::test]` per check. `$fresh` names an async fn returning
/// `(Arc<dyn Store>, G)`: a fresh, empty store, and a guard (a temporary directory, a Redis
/// database to flush) that is dropped only after the check and the store are done.
#[macro_export]
macro_rules! conformance_tests {
    ($fresh:path) => {
        $crate::conformance_tests!(@checks $fresh;
            append_assigns_dense_offsets,
            concurrent_appends_get_unique_dense_offsets,
            wait_for_append_wakes_on_append_or_times_out,
            apply_covers_events_exactly_once,
            counters_sum_deltas_per_bucket,
            breakdown_sums_over_buckets_and_drops_zero_rows,
            unique_counts_are_unions_over_buckets,
            sessions_are_written_and_deleted,
            scan_log_returns_one_site_in_time_order,
            trim_log_deletes_old_events_of_every_site,
            sites_keys_and_salts_round_trip,
            users_are_added_once_and_removed_with_their_logins,
            logins_last_until_they_expire_or_end,
            share_links_are_listed_and_revoked_per_site,
        );
    };
    (@checks $fresh:path; $($check:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn $check() {
                let (store, guard) = $fresh().await;
                $crate::conformance::$check(store).await;
                drop(guard);
            }
        )*
    };
}

/// 2026-11-22, as days since the epoch.
const DAY: i64 = 20_779;

fn day(n: i64) -> Bucket {
    Bucket { grain: Grain::Day, index: DAY + n }
}

fn event(site: &str, ts: i64, page: &str) -> Event {
    Event {
        site: site.into(),
        ts,
        name: "pageview".into(),
        visitor: ts as u64,
        page: page.into(),
        props: vec![("k".into(), "v:w".into())],
        screen_width: Some(1280),
        traits: Traits {
            browser: Some("Safari".into()),
            utm_term: Some("shoes".into()),
            ..Traits::default()
        },
        ..Event::default()
    }
}

fn total(site: &str, bucket: Bucket, counter: Counter) -> CounterId {
    CounterId { site: site.into(), bucket, slice: Slice::Total, counter }
}

fn by(site: &str, bucket: Bucket, dim: Dim, value: &str, counter: Counter) -> CounterId {
    CounterId { site: site.into(), bucket, slice: Slice::By(dim, value.into()), counter }
}

fn counts(pageviews: i64, events: i64, visits: i64, bounces: i64, duration: i64) -> Counts {
    Counts { pageviews, events, visits, bounces, duration, ..Counts::default() }
}

fn pages(events: &[Event]) -> Vec<&str> {
    events.iter().map(|e| e.page.as_str()).collect()
}

fn offsets(entries: &[(u64, Event)]) -> Vec<u64> {
    entries.iter().map(|(o, _)| *o).collect()
}

fn sorted<T: Ord + Clone, U: Clone>(rows: &[(T, U)]) -> Vec<(T, U)> {
    let mut rows = rows.to_vec();
    rows.sort_by(|a, b| a.0.cmp(&b.0));
    rows
}

/// Offsets are dense from 0, in call order and event order; `unapplied` pages through them.
pub async fn append_assigns_dense_offsets(store: Arc<dyn Store>) {
    let first =
        vec![event("a.com", 1000, "/1"), event("a.com", 2000, "/2"), event("b.com", 5, "/3")];
    assert_eq!(store.append(first.clone()).await.unwrap(), 0..3);
    assert_eq!(store.append(Vec::new()).await.unwrap(), 3..3, "nothing appended, no offsets");
    let second = vec![event("a.com", -1000, "/4"), event("c.com", 0, "/5")];
    assert_eq!(store.append(second.clone()).await.unwrap(), 3..5);

    let expected: Vec<(u64, Event)> = (0..).zip(first.into_iter().chain(second)).collect();
    assert_eq!(store.unapplied(None, 100).await.unwrap(), expected);
    assert_eq!(store.unapplied(Some(1), 2).await.unwrap(), expected[2..4]);
    assert!(store.unapplied(Some(4), 100).await.unwrap().is_empty());
    assert!(store.unapplied(None, 0).await.unwrap().is_empty());
    assert_eq!(store.applied_offset().await.unwrap(), None);
}

/// Concurrent appends (group commit) each get their own dense run of offsets, holding their
/// own events in order.
pub async fn concurrent_appends_get_unique_dense_offsets(store: Arc<dyn Store>) {
    let mut tasks = tokio::task::JoinSet::new();
    for task in 0..16u64 {
        let store = Arc::clone(&store);
        tasks.spawn(async move {
            let mut appended = Vec::new();
            for call in 0..8 {
                let n = 1 + (task + call) % 3;
                let events: Vec<Event> =
                    (0..n).map(|i| event("a.com", 1000, &format!("/{task}/{call}/{i}"))).collect();
                let range = store.append(events.clone()).await.unwrap();
                assert_eq!(range.end - range.start, n, "one offset per event");
                appended.push((range, events));
            }
            appended
        });
    }
    let mut appended: Vec<(Range<u64>, Vec<Event>)> =
        tasks.join_all().await.into_iter().flatten().collect();
    appended.sort_by_key(|(range, _)| range.start);

    let mut next = 0;
    for (range, _) in &appended {
        assert_eq!(range.start, next, "offsets are unique and leave no gap");
        next = range.end;
    }
    let log = store.unapplied(None, usize::MAX).await.unwrap();
    assert_eq!(log.len() as u64, next);
    for (range, events) in &appended {
        let stored = &log[range.start as usize..range.end as usize];
        assert_eq!(
            stored.iter().map(|(_, e)| e).collect::<Vec<_>>(),
            events.iter().collect::<Vec<_>>()
        );
    }
    assert_eq!(offsets(&log), (0..next).collect::<Vec<_>>());
}

/// `wait_for_append` returns once an offset above `after` exists, and otherwise at the timeout.
pub async fn wait_for_append_wakes_on_append_or_times_out(store: Arc<dyn Store>) {
    let short = Duration::from_millis(20);
    let guard = Duration::from_secs(10);
    store.wait_for_append(None, short).await;

    let waiter = tokio::spawn({
        let store = Arc::clone(&store);
        async move { store.wait_for_append(None, Duration::from_secs(600)).await }
    });
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(!waiter.is_finished(), "nothing was appended yet");
    assert_eq!(store.append(vec![event("a.com", 1, "/")]).await.unwrap(), 0..1);
    tokio::time::timeout(guard, waiter).await.expect("an append wakes the waiter").unwrap();

    let already = store.wait_for_append(None, Duration::from_secs(600));
    tokio::time::timeout(guard, already).await.expect("offset 0 exists: no wait");
    store.wait_for_append(Some(0), short).await;

    let waiter = tokio::spawn({
        let store = Arc::clone(&store);
        async move { store.wait_for_append(Some(0), Duration::from_secs(600)).await }
    });
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(!waiter.is_finished(), "nothing above offset 0 yet");
    store.append(vec![event("a.com", 2, "/")]).await.unwrap();
    tokio::time::timeout(guard, waiter).await.expect("an append wakes the waiter").unwrap();
}

/// Once a batch covering an offset is applied, events up to it never come back; later ones do.
pub async fn apply_covers_events_exactly_once(store: Arc<dyn Store>) {
    let events: Vec<Event> = (0..5).map(|i| event("a.com", i, &format!("/{i}"))).collect();
    assert_eq!(store.append(events).await.unwrap(), 0..5);
    assert_eq!(store.applied_offset().await.unwrap(), None);

    let mut batch = WriteBatch::at(Some(2), 3);
    batch.incr(total("a.com", day(0), Counter::Events), 3);
    store.apply(&batch).await.unwrap();
    assert_eq!(store.applied_offset().await.unwrap(), Some(2));
    assert_eq!(offsets(&store.unapplied(None, 100).await.unwrap()), [3, 4]);
    assert_eq!(offsets(&store.unapplied(Some(2), 100).await.unwrap()), [3, 4]);
    assert_eq!(store.totals("a.com", &[day(0)]).await.unwrap(), [counts(0, 3, 0, 0, 0)]);

    // A batch without an offset (say, sessions closed by a timer) leaves the offset alone.
    let mut batch = WriteBatch::default();
    batch.incr(total("a.com", day(0), Counter::Visits), 1);
    store.apply(&batch).await.unwrap();
    assert_eq!(store.applied_offset().await.unwrap(), Some(2));
    assert_eq!(offsets(&store.unapplied(None, 100).await.unwrap()), [3, 4]);

    assert_eq!(store.append(vec![event("a.com", 9, "/9")]).await.unwrap(), 5..6);
    store.apply(&WriteBatch::at(Some(4), 0)).await.unwrap();
    assert_eq!(offsets(&store.unapplied(None, 100).await.unwrap()), [5]);
    store.apply(&WriteBatch::at(Some(5), 0)).await.unwrap();
    assert_eq!(store.applied_offset().await.unwrap(), Some(5));
    assert!(store.unapplied(None, 100).await.unwrap().is_empty());
    assert_eq!(store.totals("a.com", &[day(0)]).await.unwrap(), [counts(0, 3, 1, 0, 0)]);
    assert_eq!(store.append(vec![event("a.com", 10, "/10")]).await.unwrap(), 6..7);
}

/// Totals sum deltas (negative ones too) per bucket and site, in the order asked.
pub async fn counters_sum_deltas_per_bucket(store: Arc<dyn Store>) {
    let hour = Bucket { grain: Grain::Hour, index: DAY * 24 + 14 };
    let minute = Bucket { grain: Grain::Minute, index: (DAY * 24 + 14) * 60 + 5 };
    let mut batch = WriteBatch::default();
    batch.incr(total("a.com", day(0), Counter::Pageviews), 3);
    batch.incr(total("a.com", day(0), Counter::Events), 5);
    batch.incr(total("a.com", day(0), Counter::Visits), 2);
    batch.incr(total("a.com", day(0), Counter::Bounces), 1);
    batch.incr(total("a.com", day(0), Counter::Duration), 60_000);
    batch.incr(total("a.com", day(1), Counter::Pageviews), 1);
    batch.incr(total("b.com", day(0), Counter::Pageviews), 100);
    batch.incr(total("b.com", day(0), Counter::Bots), 6);
    batch.incr(total("b.com", day(0), Counter::EngagedMs), 4200);
    batch.incr(total("b.com", day(0), Counter::ScrollDepth), 75);
    batch.incr(total("a.com", minute, Counter::Events), 4);
    store.apply(&batch).await.unwrap();

    let mut batch = WriteBatch::default();
    batch.incr(total("a.com", day(0), Counter::Pageviews), 2);
    batch.incr(total("a.com", day(0), Counter::Events), -1);
    batch.incr(total("a.com", day(0), Counter::Bounces), -1);
    // A delta that cancelled out in the pipeline.
    batch.incr(total("a.com", day(0), Counter::Duration), 0);
    batch.incr(total("a.com", hour, Counter::Pageviews), 7);
    batch.incr(total("a.com", minute, Counter::Events), 1);
    store.apply(&batch).await.unwrap();

    let got = store.totals("a.com", &[day(1), day(0), day(2), hour, minute]).await.unwrap();
    let expected = [
        counts(1, 0, 0, 0, 0),
        counts(5, 4, 2, 0, 60_000),
        Counts::default(),
        counts(7, 0, 0, 0, 0),
        counts(0, 5, 0, 0, 0),
    ];
    assert_eq!(got, expected);
    let b = Counts { bots: 6, engaged_ms: 4200, scroll_depth: 75, ..counts(100, 0, 0, 0, 0) };
    assert_eq!(store.totals("b.com", &[day(0)]).await.unwrap(), [b]);
    assert_eq!(store.totals("c.com", &[day(0)]).await.unwrap(), [Counts::default()]);
    assert!(store.totals("a.com", &[]).await.unwrap().is_empty());
}

/// A breakdown sums each value over the buckets asked, keeps dimensions and sites apart, and
/// leaves out values whose counters are all zero.
pub async fn breakdown_sums_over_buckets_and_drops_zero_rows(store: Arc<dyn Store>) {
    let plan = || Dim::Prop("plan".into());
    let mut batch = WriteBatch::default();
    batch.incr(by("a.com", day(0), Dim::Page, "/a", Counter::Pageviews), 2);
    batch.incr(by("a.com", day(0), Dim::Page, "/a", Counter::Visits), 1);
    batch.incr(by("a.com", day(0), Dim::Page, "/b", Counter::Pageviews), 1);
    batch.incr(by("a.com", day(0), Dim::Page, "/c:x", Counter::Events), 4);
    batch.incr(by("a.com", day(0), Dim::Page, "/zero", Counter::Pageviews), 0);
    batch.incr(by("a.com", day(0), plan(), "pro", Counter::Events), 3);
    batch.incr(by("a.com", day(0), Dim::EntryPage, "/a", Counter::Visits), 9);
    batch.incr(by("b.com", day(0), Dim::Page, "/a", Counter::Pageviews), 8);
    batch.incr(by("b.com", day(0), Dim::Page, "/e", Counter::EngagedMs), 61_000);
    batch.incr(by("b.com", day(0), Dim::Page, "/e", Counter::ScrollDepth), 130);
    store.apply(&batch).await.unwrap();

    let mut batch = WriteBatch::default();
    batch.incr(by("a.com", day(1), Dim::Page, "/a", Counter::Pageviews), 3);
    batch.incr(by("a.com", day(1), Dim::Page, "/a", Counter::Duration), 1500);
    batch.incr(by("a.com", day(1), Dim::Page, "/b", Counter::Pageviews), -1);
    batch.incr(by("a.com", day(2), Dim::Page, "/a", Counter::Pageviews), 50);
    store.apply(&batch).await.unwrap();

    let both = [day(0), day(1)];
    let got = store.breakdown("a.com", &both, &Dim::Page).await.unwrap();
    let expected =
        [("/a".to_owned(), counts(5, 0, 1, 0, 1500)), ("/c:x".to_owned(), counts(0, 4, 0, 0, 0))];
    assert_eq!(sorted(&got), expected, "`/b` sums to zero and `/zero` never counted");

    let got = store.breakdown("a.com", &[day(0)], &Dim::Page).await.unwrap();
    let expected = [
        ("/a".to_owned(), counts(2, 0, 1, 0, 0)),
        ("/b".to_owned(), counts(1, 0, 0, 0, 0)),
        ("/c:x".to_owned(), counts(0, 4, 0, 0, 0)),
    ];
    assert_eq!(sorted(&got), expected);

    let got = store.breakdown("a.com", &both, &plan()).await.unwrap();
    assert_eq!(got, [("pro".to_owned(), counts(0, 3, 0, 0, 0))]);
    let got = store.breakdown("a.com", &both, &Dim::EntryPage).await.unwrap();
    assert_eq!(got, [("/a".to_owned(), counts(0, 0, 9, 0, 0))]);
    let got = store.breakdown("b.com", &both, &Dim::Page).await.unwrap();
    let engaged = Counts { engaged_ms: 61_000, scroll_depth: 130, ..counts(0, 0, 0, 0, 0) };
    assert_eq!(
        sorted(&got),
        [("/a".to_owned(), counts(8, 0, 0, 0, 0)), ("/e".to_owned(), engaged)]
    );
    assert!(store.breakdown("a.com", &[day(5)], &Dim::Page).await.unwrap().is_empty());
    assert!(store.breakdown("a.com", &both, &Dim::Source).await.unwrap().is_empty());
}

fn hll_of(visitors: impl IntoIterator<Item = u64>) -> Hll {
    let mut hll = Hll::new();
    for v in visitors {
        hll.add(&unique_element(v));
    }
    hll
}

/// Unique counts are PFCOUNT over the union of the buckets' HyperLogLogs, whichever batches the
/// visitors came in; missing buckets and values count as empty.
pub async fn unique_counts_are_unions_over_buckets(store: Arc<dyn Store>) {
    let id = |bucket: Bucket, slice: Slice| RowId { site: "a.com".into(), bucket, slice };
    let page = |p: &str| Slice::By(Dim::Page, p.into());
    let mut batch = WriteBatch::default();
    for v in 1..=100 {
        batch.add_unique(id(day(0), Slice::Total), v);
    }
    for v in 51..=100 {
        batch.add_unique(id(day(1), Slice::Total), v);
    }
    for v in (1..=10).chain(1..=10) {
        batch.add_unique(id(day(0), page("/a")), v);
    }
    for v in [1, 2, 3, 2, 1] {
        batch.add_unique(id(day(0), page("/b:c")), v);
    }
    batch.add_unique(RowId { site: "b.com".into(), bucket: day(0), slice: Slice::Total }, 7);
    store.apply(&batch).await.unwrap();

    let mut batch = WriteBatch::default();
    for v in 101..=150 {
        batch.add_unique(id(day(1), Slice::Total), v);
    }
    for v in 5..=20 {
        batch.add_unique(id(day(1), page("/a")), v);
    }
    store.apply(&batch).await.unwrap();

    let days = [hll_of(1..=100), hll_of(51..=150)];
    let union = count_union(&days);
    assert!((140..=160).contains(&union), "the HyperLogLog estimates 150 as {union}");
    let count = |buckets: Vec<Bucket>, slice: Slice| {
        let store = Arc::clone(&store);
        async move { store.unique_count("a.com", &buckets, &slice).await.unwrap() }
    };
    assert_eq!(count(vec![day(0)], Slice::Total).await, count_union(&days[..1]));
    assert_eq!(count(vec![day(1)], Slice::Total).await, count_union(&days[1..]));
    assert_eq!(count(vec![day(0), day(1)], Slice::Total).await, union);
    assert_eq!(count(vec![day(2), day(1), day(0)], Slice::Total).await, union);
    assert_eq!(count(vec![day(2)], Slice::Total).await, 0);
    assert_eq!(count(vec![], Slice::Total).await, 0);

    let both = [day(0), day(1)];
    let a = count_union(&[hll_of(1..=10), hll_of(5..=20)]);
    let b = count_union(&[hll_of([1, 2, 3])]);
    assert_eq!(count(both.to_vec(), page("/a")).await, a);
    let values = ["/a".to_owned(), "/b:c".to_owned(), "/none".to_owned()];
    let got = store.unique_counts("a.com", &both, &Dim::Page, &values).await.unwrap();
    assert_eq!(got, [a, b, 0]);
    let got = store.unique_counts("a.com", &both, &Dim::Source, &values[..1]).await.unwrap();
    assert_eq!(got, [0]);
    let got = store.unique_count("b.com", &both, &Slice::Total).await.unwrap();
    assert_eq!(got, count_union(&[hll_of([7])]));
}

fn session(start: i64, pageviews: u32, exit: &str) -> SessionRecord {
    SessionRecord {
        start,
        last: start + 1000 * i64::from(pageviews),
        pageviews,
        events: pageviews + 1,
        entry: Some("/".into()),
        exit: Some(exit.into()),
        source: Some("news.ycombinator.com".into()),
        referrer: None,
        utm_source: None,
        utm_medium: Some("social".into()),
        utm_campaign: None,
        hint: Some(42),
        traits: Traits {
            device: Some("Mobile".into()),
            browser: Some("Firefox".into()),
            country: Some("DE".into()),
            channel: Some("Organic Social".into()),
            ..Traits::default()
        },
    }
}

/// Sessions are written, replaced and deleted by batches, and all of them are listed.
pub async fn sessions_are_written_and_deleted(store: Arc<dyn Store>) {
    let key = |site: &str, visitor: u64| SessionKey { site: site.into(), visitor, backfill: false };
    let backfill =
        |site: &str, visitor: u64| SessionKey { site: site.into(), visitor, backfill: true };
    assert!(store.sessions().await.unwrap().is_empty());

    let mut batch = WriteBatch::default();
    batch.sessions.insert(key("a.com", 1), Some(session(1000, 1, "/a")));
    batch.sessions.insert(key("a.com", 2), Some(session(2000, 2, "/b")));
    batch.sessions.insert(key("b.com", 1), Some(session(3000, 3, "/c")));
    // A visitor's backfill session is another session, beside the open one.
    batch.sessions.insert(backfill("a.com", 1), Some(session(500, 2, "/z")));
    store.apply(&batch).await.unwrap();
    let expected = [
        (key("a.com", 1), session(1000, 1, "/a")),
        (backfill("a.com", 1), session(500, 2, "/z")),
        (key("a.com", 2), session(2000, 2, "/b")),
        (key("b.com", 1), session(3000, 3, "/c")),
    ];
    assert_eq!(sorted(&store.sessions().await.unwrap()), expected);

    let mut batch = WriteBatch::default();
    batch.sessions.insert(key("a.com", 1), None);
    batch.sessions.insert(key("a.com", 2), Some(session(2000, 5, "/d")));
    batch.sessions.insert(key("c.com:8080", u64::MAX), Some(session(4000, 1, "/e")));
    batch.sessions.insert(key("a.com", 99), None);
    batch.sessions.insert(backfill("a.com", 1), None);
    store.apply(&batch).await.unwrap();
    let expected = [
        (key("a.com", 2), session(2000, 5, "/d")),
        (key("b.com", 1), session(3000, 3, "/c")),
        (key("c.com:8080", u64::MAX), session(4000, 1, "/e")),
    ];
    assert_eq!(sorted(&store.sessions().await.unwrap()), expected);
}

/// `scan_log` returns one site's events with `from <= ts < to`, in time order, then offset
/// order, and nothing of a site whose name merely starts the same.
pub async fn scan_log_returns_one_site_in_time_order(store: Arc<dyn Store>) {
    let first = vec![
        event("a.com", 3000, "a3000"),
        event("a.com", 1000, "a1000"),
        event("b.com", 1500, "b1500"),
        event("a.com.x", 1500, "x1500"),
        event("a.com", -5000, "a-5000"),
    ];
    let second = vec![
        event("a.com", 2000, "a2000"),
        event("a.com", 1000, "a1000-later"),
        event("b.com", 2500, "b2500"),
        event("a.com", 10_000, "a10000"),
    ];
    store.append(first).await.unwrap();
    store.append(second).await.unwrap();

    let scan = |site: &'static str, from: i64, to: i64| {
        let store = Arc::clone(&store);
        async move { store.scan_log(site, from, to).await.unwrap() }
    };
    let got = scan("a.com", 1000, 3000).await;
    assert_eq!(pages(&got), ["a1000", "a1000-later", "a2000"]);
    assert_eq!(got[0], event("a.com", 1000, "a1000"), "events come back whole");
    let got = scan("a.com", i64::MIN, i64::MAX).await;
    assert_eq!(pages(&got), ["a-5000", "a1000", "a1000-later", "a2000", "a3000", "a10000"]);
    assert_eq!(pages(&scan("b.com", 0, 2000).await), ["b1500"]);
    assert_eq!(pages(&scan("a.com.x", 0, 5000).await), ["x1500"]);
    assert!(scan("a.com", 3000, 1000).await.is_empty());
    assert!(scan("a.com", 3001, 9999).await.is_empty());
    assert!(scan("nobody.com", i64::MIN, i64::MAX).await.is_empty());
}

/// `trim_log` deletes every site's events before a time, and says how many went.
pub async fn trim_log_deletes_old_events_of_every_site(store: Arc<dyn Store>) {
    let events = vec![
        event("a.com", 1000, "a1000"),
        event("a.com", 2000, "a2000"),
        event("a.com", 3000, "a3000"),
        event("b.com", 500, "b500"),
        event("b.com", 2500, "b2500"),
        event("c.com", 4000, "c4000"),
        event("a.com.x", 1000, "x1000"),
    ];
    store.append(events).await.unwrap();
    assert_eq!(store.trim_log(2000).await.unwrap(), 3);
    let all = |site: &'static str| {
        let store = Arc::clone(&store);
        async move { store.scan_log(site, i64::MIN, i64::MAX).await.unwrap() }
    };
    assert_eq!(pages(&all("a.com").await), ["a2000", "a3000"]);
    assert_eq!(pages(&all("b.com").await), ["b2500"]);
    assert_eq!(pages(&all("c.com").await), ["c4000"]);
    assert!(all("a.com.x").await.is_empty());
    assert_eq!(store.trim_log(2000).await.unwrap(), 0);
    assert_eq!(store.trim_log(i64::MAX).await.unwrap(), 4);
    assert!(all("c.com").await.is_empty());
}

/// Sites, API keys and salts read back as written; a write under the same name replaces.
pub async fn sites_keys_and_salts_round_trip(store: Arc<dyn Store>) {
    assert!(store.sites().await.unwrap().is_empty());
    let a = Site::new("a.com", "UTC", false).unwrap();
    let b = Site::new("b.com", "Europe/Berlin", true).unwrap();
    let a2 = Site::new("a.com", "America/New_York", true).unwrap();
    store.put_site(&a).await.unwrap();
    store.put_site(&b).await.unwrap();
    store.put_site(&a2).await.unwrap();
    let mut sites = store.sites().await.unwrap();
    sites.sort_by(|x, y| x.domain.cmp(&y.domain));
    assert_eq!(sites, [a2, b]);

    let ci = ApiKey { name: "ci".into(), created: 1_795_356_330_000 };
    let grafana = ApiKey { name: "grafana".into(), created: 1_795_356_331_000 };
    assert_eq!(store.api_key([1; 32]).await.unwrap(), None);
    store.put_api_key([1; 32], &ci).await.unwrap();
    store.put_api_key([2; 32], &grafana).await.unwrap();
    assert_eq!(store.api_key([1; 32]).await.unwrap(), Some(ci));
    assert_eq!(store.api_key([2; 32]).await.unwrap(), Some(grafana.clone()));
    assert_eq!(store.api_key([3; 32]).await.unwrap(), None);
    let renamed = ApiKey { name: "renamed".into(), ..grafana };
    store.put_api_key([2; 32], &renamed).await.unwrap();
    assert_eq!(store.api_key([2; 32]).await.unwrap(), Some(renamed));

    assert_eq!(store.salts().await.unwrap(), None);
    let mut salts = Salts::new(1_795_356_330_000, [7; 64]);
    store.put_salts(&salts).await.unwrap();
    assert_eq!(store.salts().await.unwrap(), Some(salts.clone()));
    salts.rotate(1_795_356_330_000 + 86_400_000, [9; 32]);
    store.put_salts(&salts).await.unwrap();
    assert_eq!(store.salts().await.unwrap(), Some(salts));
}

/// 2026-11-22T14:05:30Z, Unix ms.
const NOW: i64 = 1_795_356_330_000;
const DAY_MS: i64 = 86_400_000;

/// The time now, Unix ms: logins are stored with it, as Redis expires them by its own clock.
fn now_ms() -> i64 {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap();
    now.as_millis() as i64
}

fn user(name: &str, hash: &str) -> User {
    User { name: name.into(), password_hash: hash.into(), created: NOW }
}

fn login(user: &str, created: i64) -> Login {
    Login {
        user: user.into(),
        csrf: format!("csrf-{created}"),
        created,
        expires: created + 30 * DAY_MS,
    }
}

/// A user name is taken once; removing a user removes every login of theirs and no one
/// else's, and the name can then be taken again.
pub async fn users_are_added_once_and_removed_with_their_logins(store: Arc<dyn Store>) {
    assert!(store.users().await.unwrap().is_empty());
    assert_eq!(store.user("admin").await.unwrap(), None);
    let admin = user("admin", "$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA");
    assert!(store.add_user(&admin).await.unwrap());
    assert!(store.add_user(&user("ann@example.com", "$argon2id$b")).await.unwrap());
    assert!(!store.add_user(&user("admin", "$argon2id$other")).await.unwrap(), "name taken");
    assert_eq!(store.user("admin").await.unwrap(), Some(admin.clone()), "the first one stays");
    let mut names: Vec<String> = store.users().await.unwrap().into_iter().map(|u| u.name).collect();
    names.sort();
    assert_eq!(names, ["admin", "ann@example.com"]);

    let now = now_ms();
    store.put_login([1; 32], &login("admin", now)).await.unwrap();
    store.put_login([2; 32], &login("admin", now + 1)).await.unwrap();
    store.put_login([3; 32], &login("ann@example.com", now)).await.unwrap();
    assert!(store.remove_user("admin").await.unwrap());
    assert!(!store.remove_user("admin").await.unwrap(), "already gone");
    assert_eq!(store.user("admin").await.unwrap(), None);
    assert_eq!(store.login([1; 32], now).await.unwrap(), None);
    assert_eq!(store.login([2; 32], now).await.unwrap(), None);
    assert_eq!(store.login([3; 32], now).await.unwrap(), Some(login("ann@example.com", now)));

    // Taken again, the name does not bring the old logins back.
    assert!(store.add_user(&admin).await.unwrap());
    assert_eq!(store.login([1; 32], now).await.unwrap(), None);
    let mut names: Vec<String> = store.users().await.unwrap().into_iter().map(|u| u.name).collect();
    names.sort();
    assert_eq!(names, ["admin", "ann@example.com"]);
}

/// A login reads back until the moment it expires, then is gone, as it is once removed.
pub async fn logins_last_until_they_expire_or_end(store: Arc<dyn Store>) {
    let now = now_ms();
    let month = login("admin", now);
    store.put_login([7; 32], &month).await.unwrap();
    assert_eq!(store.login([7; 32], now).await.unwrap(), Some(month.clone()));
    assert_eq!(store.login([7; 32], month.expires - 1).await.unwrap(), Some(month.clone()));
    assert_eq!(store.login([8; 32], now).await.unwrap(), None, "never stored");

    let other = login("admin", now + 1);
    store.put_login([10; 32], &other).await.unwrap();
    store.remove_login([10; 32]).await.unwrap();
    assert_eq!(store.login([10; 32], now).await.unwrap(), None);
    store.remove_login([10; 32]).await.unwrap();
    // Ending one login leaves the others of the user.
    assert_eq!(store.login([7; 32], now).await.unwrap(), Some(month.clone()));

    assert_eq!(store.login([7; 32], month.expires).await.unwrap(), None, "expired");
    // One that has already expired is never seen.
    let old = login("admin", now - 31 * DAY_MS);
    store.put_login([9; 32], &old).await.unwrap();
    assert_eq!(store.login([9; 32], now).await.unwrap(), None);
}

fn share(id: &str, site: &str, name: &str, created: i64) -> Share {
    Share { id: id.into(), site: site.into(), name: name.into(), created }
}

/// Share links are found by id and listed per site; revoking one needs its own site.
pub async fn share_links_are_listed_and_revoked_per_site(store: Arc<dyn Store>) {
    let sorted = |mut shares: Vec<Share>| {
        shares.sort_by(|a, b| a.id.cmp(&b.id));
        shares
    };
    assert!(store.shares("a.com").await.unwrap().is_empty());
    let (a1, a2) = (share("ffs_a1", "a.com", "team", NOW), share("ffs_a2", "a.com", "", NOW + 1));
    let b1 = share("ffs_b1", "a.com.x", "client", NOW + 2);
    for s in [&a1, &a2, &b1] {
        store.put_share(s).await.unwrap();
    }
    assert_eq!(sorted(store.shares("a.com").await.unwrap()), [a1.clone(), a2.clone()]);
    assert_eq!(store.shares("a.com.x").await.unwrap(), std::slice::from_ref(&b1));
    assert!(store.shares("c.com").await.unwrap().is_empty());
    assert_eq!(store.share("ffs_b1").await.unwrap(), Some(b1.clone()));
    assert_eq!(store.share("ffs_none").await.unwrap(), None);

    assert!(!store.remove_share("a.com", "ffs_b1").await.unwrap(), "not a.com's link");
    assert_eq!(store.share("ffs_b1").await.unwrap(), Some(b1));
    assert!(store.remove_share("a.com", "ffs_a1").await.unwrap());
    assert!(!store.remove_share("a.com", "ffs_a1").await.unwrap(), "already revoked");
    assert_eq!(store.share("ffs_a1").await.unwrap(), None);
    assert_eq!(store.shares("a.com").await.unwrap(), [a2]);
}
