//! The embedded store: the shared conformance suite, plus what only it has (the directory
//! lock, reopening, group commit counts, the expiry of minute buckets).

use std::sync::Arc;

use footfall_core::batch::{Counter, CounterId, Dim, RowId, SessionKey, Slice, WriteBatch};
use footfall_core::event::{Event, encode_record};
use footfall_core::identity::Salts;
use footfall_core::site::Site;
use footfall_core::time::{Bucket, Grain};
use footfall_store::TAIL_EVENTS;
use footfall_store::embedded::MINUTES_KEPT;
use footfall_store::transfer::{Item, Transfer};
use footfall_store::{Counts, EmbeddedStore, Store, StoreError};
use tempfile::TempDir;

async fn fresh() -> (Arc<dyn Store>, TempDir) {
    let dir = TempDir::new().unwrap();
    let store = EmbeddedStore::open(dir.path()).unwrap();
    (Arc::new(store), dir)
}

footfall_store::conformance_tests!(fresh);

fn event(ts: i64, page: &str) -> Event {
    Event {
        site: "a.com".into(),
        ts,
        name: "pageview".into(),
        visitor: 1,
        page: page.into(),
        ..Event::default()
    }
}

fn total(bucket: Bucket, counter: Counter) -> CounterId {
    CounterId { site: "a.com".into(), bucket, slice: Slice::Total, counter }
}

#[tokio::test]
async fn a_second_open_of_the_directory_is_refused_until_the_first_closes() {
    let dir = TempDir::new().unwrap();
    let first = EmbeddedStore::open(dir.path()).unwrap();
    match EmbeddedStore::open(dir.path()) {
        Err(StoreError::Locked(path)) => assert_eq!(path, dir.path()),
        Err(e) => panic!("expected Locked, got {e}"),
        Ok(_) => panic!("a second open must be refused"),
    }
    drop(first);
    EmbeddedStore::open(dir.path()).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn state_and_offsets_survive_reopening() {
    let dir = TempDir::new().unwrap();
    let day = Bucket { grain: Grain::Day, index: 20_779 };
    let site = Site::new("a.com", "Europe/Berlin", false).unwrap();
    let salts = Salts::new(1_795_356_330_000, [7; 64]);
    let session = SessionKey { site: "a.com".into(), visitor: 5, backfill: false };
    {
        let store = EmbeddedStore::open(dir.path()).unwrap();
        let events: Vec<Event> = (0..4).map(|i| event(i, &format!("/{i}"))).collect();
        assert_eq!(store.append(events).await.unwrap(), 0..4);
        let mut batch = WriteBatch::at(Some(1), 0);
        batch.incr(total(day, Counter::Pageviews), 2);
        batch.sessions.insert(session.clone(), None);
        store.apply(&batch).await.unwrap();
        store.put_site(&site).await.unwrap();
        store.put_salts(&salts).await.unwrap();
    }
    {
        let store = EmbeddedStore::open(dir.path()).unwrap();
        assert_eq!(store.applied_offset().await.unwrap(), Some(1));
        let unapplied = store.unapplied(None, 100).await.unwrap();
        assert_eq!(unapplied, [(2, event(2, "/2")), (3, event(3, "/3"))]);
        assert_eq!(store.scan_log("a.com", 0, 100).await.unwrap().len(), 4);
        assert_eq!(store.totals("a.com", &[day]).await.unwrap()[0].pageviews, 2);
        assert_eq!(store.sites().await.unwrap(), [site]);
        assert_eq!(store.salts().await.unwrap(), Some(salts.clone()));
        assert_eq!(store.append(vec![event(9, "/9")]).await.unwrap(), 4..5);
        // Everything applied: the next offset must then come from `ff:applied`.
        store.apply(&WriteBatch::at(Some(4), 0)).await.unwrap();
    }
    let store = EmbeddedStore::open(dir.path()).unwrap();
    assert!(store.unapplied(None, 100).await.unwrap().is_empty());
    assert_eq!(store.append(vec![event(10, "/10")]).await.unwrap(), 5..6);
    store.wait_for_append(Some(4), std::time::Duration::from_secs(10)).await;
    assert_eq!(store.unapplied(Some(4), 10).await.unwrap(), [(5, event(10, "/10"))]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_appends_share_syncs() {
    let dir = TempDir::new().unwrap();
    let store = Arc::new(EmbeddedStore::open(dir.path()).unwrap());
    let mut tasks = tokio::task::JoinSet::new();
    for task in 0..32 {
        let store = Arc::clone(&store);
        tasks.spawn(async move {
            for call in 0..10 {
                store.append(vec![event(task * 100 + call, "/")]).await.unwrap();
            }
        });
    }
    tasks.join_all().await;
    let syncs = store.log_syncs();
    assert!(syncs < 320, "320 appends took {syncs} syncs: group commit does not group");
}

#[tokio::test]
async fn minute_buckets_expire_after_two_hours() {
    let dir = TempDir::new().unwrap();
    let store = EmbeddedStore::open(dir.path()).unwrap();
    // 2020-01-01T00:00Z: safely in the past, where the expiry's cap at "now" does not apply.
    let start = 26_297_280;
    let minute = |i: i64| Bucket { grain: Grain::Minute, index: start + i };
    let page = |i: i64| CounterId {
        site: "a.com".into(),
        bucket: minute(i),
        slice: Slice::By(Dim::Page, "/".into()),
        counter: Counter::Pageviews,
    };
    let day = Bucket { grain: Grain::Day, index: start / 1440 };
    for i in [0, 1, 2] {
        let mut batch = WriteBatch::default();
        batch.incr(total(minute(i), Counter::Pageviews), 1);
        batch.incr(page(i), 1);
        batch.add_unique(RowId { site: "a.com".into(), bucket: minute(i), slice: Slice::Total }, 1);
        batch.incr(total(day, Counter::Pageviews), 1);
        store.apply(&batch).await.unwrap();
    }
    let one = Counts { pageviews: 1, ..Counts::default() };
    let minutes = [minute(0), minute(1), minute(2)];
    assert_eq!(store.totals("a.com", &minutes).await.unwrap(), [one; 3]);

    // Minute 1 + MINUTES_KEPT keeps minutes 1 and 2 and expires minute 0.
    let mut batch = WriteBatch::default();
    batch.incr(total(minute(1 + MINUTES_KEPT), Counter::Events), 1);
    store.apply(&batch).await.unwrap();
    let zero = Counts::default();
    assert_eq!(store.totals("a.com", &minutes).await.unwrap(), [zero, one, one]);
    let rows = store.breakdown("a.com", &minutes[..1], &Dim::Page).await.unwrap();
    assert!(rows.is_empty(), "the minute's breakdowns expire too");
    let rows = store.breakdown("a.com", &minutes[1..], &Dim::Page).await.unwrap();
    assert_eq!(rows, [("/".to_owned(), Counts { pageviews: 2, ..Counts::default() })]);
    let uniques = store.unique_count("a.com", &minutes[..1], &Slice::Total).await.unwrap();
    assert_eq!(uniques, 0, "the minute's unique count expires too");
    let days = store.totals("a.com", &[day]).await.unwrap();
    assert_eq!(days[0].pageviews, 3, "day buckets do not expire");
}

/// The newest unapplied events are served from memory; older ones, beyond what memory holds,
/// and all of them after a restart, from the keyspace, with the same answers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unapplied_events_beyond_memory_are_read_from_disk() {
    let dir = TempDir::new().unwrap();
    let total = TAIL_EVENTS as u64 + 1000;
    let offsets = |entries: &[(u64, Event)]| entries.iter().map(|(o, _)| *o).collect::<Vec<_>>();
    {
        let store = EmbeddedStore::open(dir.path()).unwrap();
        for chunk in (0..total).collect::<Vec<_>>().chunks(10_000) {
            let events = chunk.iter().map(|&i| event(i as i64, &format!("/{i}"))).collect();
            assert_eq!(
                store.append(events).await.unwrap(),
                chunk[0]..chunk[0] + chunk.len() as u64
            );
        }
        let oldest = store.unapplied(None, 3).await.unwrap();
        assert_eq!(oldest, [(0, event(0, "/0")), (1, event(1, "/1")), (2, event(2, "/2"))]);
        let newest = store.unapplied(Some(total - 3), 10).await.unwrap();
        assert_eq!(offsets(&newest), [total - 2, total - 1]);
        assert_eq!(newest[1].1, event(total as i64 - 1, &format!("/{}", total - 1)));
        let across = store.unapplied(Some(total - 1002), 4).await.unwrap();
        assert_eq!(offsets(&across), (total - 1001..total - 997).collect::<Vec<_>>());

        // Applied events are no longer unapplied, whether or not their entries are deleted yet.
        store.apply(&WriteBatch::at(Some(5), 0)).await.unwrap();
        assert_eq!(offsets(&store.unapplied(None, 2).await.unwrap()), [6, 7]);
        let last = Some(total - 2);
        store.apply(&WriteBatch::at(last, 0)).await.unwrap();
        assert_eq!(offsets(&store.unapplied(None, 10).await.unwrap()), [total - 1]);
    }
    let store = EmbeddedStore::open(dir.path()).unwrap();
    assert_eq!(offsets(&store.unapplied(None, 10).await.unwrap()), [total - 1]);
    assert_eq!(store.append(vec![event(0, "/")]).await.unwrap(), total..total + 1);
    assert_eq!(offsets(&store.unapplied(None, 10).await.unwrap()), [total - 1, total]);
}

/// An import keeps the offsets it is given, gaps included (Redis skips the offsets of a group
/// it refused), and a minute bucket it brings in expires as one written here does.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_import_keeps_offsets_with_gaps_and_indexes_minute_buckets() {
    let dir = TempDir::new().unwrap();
    let store = EmbeddedStore::open(dir.path()).unwrap();
    let record = |ts| encode_record(&event(ts, &format!("/{ts}")));
    // Long ago, so that the next apply expires it.
    let old = Bucket { grain: Grain::Minute, index: 1_000 };
    let old_totals = footfall_store::keys::totals("a.com", old);
    let items = vec![
        Item::Hash { key: old_totals, fields: vec![("pageviews".into(), b"3".to_vec())] },
        Item::Logged { site: "a.com".into(), ts: 5, offset: 5, record: record(5) },
        Item::Unapplied { offset: 5, record: record(5) },
        Item::Unapplied { offset: 6, record: record(6) },
        Item::Unapplied { offset: 9, record: record(9) },
        Item::Value { key: footfall_store::keys::APPLIED.into(), value: b"4".to_vec() },
    ];
    assert_eq!(store.contents().await.unwrap(), None);
    store.import(items).await.unwrap();
    store.finish_import().await.unwrap();
    assert!(store.contents().await.unwrap().is_some());
    drop(store);

    let store = EmbeddedStore::open(dir.path()).unwrap();
    assert_eq!(store.applied_offset().await.unwrap(), Some(4));
    let pending = store.unapplied(None, 10).await.unwrap();
    let expected = [5, 6, 9].map(|o| (o, event(o as i64, &format!("/{o}"))));
    assert_eq!(pending, expected);
    assert_eq!(store.scan_log("a.com", 0, 10).await.unwrap(), [expected[0].1.clone()]);
    assert_eq!(store.append(vec![event(10, "/10")]).await.unwrap(), 10..11);
    assert_eq!(
        store.totals("a.com", &[old]).await.unwrap(),
        [Counts { pageviews: 3, ..Counts::default() }]
    );

    let mut batch = WriteBatch::at(Some(10), 4);
    let now = Bucket { grain: Grain::Minute, index: 1_000 + MINUTES_KEPT + 1 };
    batch.incr(total(now, Counter::Pageviews), 1);
    store.apply(&batch).await.unwrap();
    assert_eq!(store.totals("a.com", &[old]).await.unwrap(), [Counts::default()]);
}
