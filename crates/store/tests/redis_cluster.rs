//! The Redis backend on a Redis Cluster of three nodes of each test's own: the shared
//! conformance suite, and what a cluster adds: a write batch lands one site (one slot) at a
//! time, so a crash between two sites must neither lose nor double-count either.

use std::sync::Arc;
use std::time::Duration;

use footfall_core::batch::{Counter, CounterId, SessionKey, SessionRecord, Slice, WriteBatch};
use footfall_core::event::Event;
use footfall_core::time::{Bucket, Grain};
use footfall_store::redis::WriterOptions;
use footfall_store::{Counts, RedisStore, Store, keys};
use footfall_testkit::RedisCluster;

fn options(cluster: &RedisCluster) -> WriterOptions {
    WriterOptions {
        lease_wait: Duration::ZERO,
        spill_path: cluster.nodes()[0].dir().join("footfall-spill"),
        spill_max_bytes: 1 << 20,
    }
}

async fn fresh() -> (Arc<dyn Store>, RedisCluster) {
    let cluster = RedisCluster::start();
    let store = RedisStore::connect_writer(&cluster.url(), &options(&cluster)).await.unwrap();
    (Arc::new(store), cluster)
}

footfall_store::conformance_tests!(fresh);

fn event(site: &str, ts: i64, visitor: u64) -> Event {
    Event {
        site: site.into(),
        ts,
        name: "pageview".into(),
        visitor,
        page: "/".into(),
        ..Event::default()
    }
}

fn day() -> Bucket {
    Bucket { grain: Grain::Day, index: 20_779 }
}

fn pageview_counts(n: i64) -> Counts {
    Counts { pageviews: n, ..Counts::default() }
}

fn pageviews(site: &str, n: i64, batch: &mut WriteBatch) {
    let id = CounterId {
        site: site.into(),
        bucket: day(),
        slice: Slice::Total,
        counter: Counter::Pageviews,
    };
    batch.incr(id, n);
}

/// Two sites whose keys live on different nodes.
fn two_sites(cluster: &RedisCluster) -> (&'static str, &'static str) {
    let candidates = ["a.com", "b.com", "c.com", "d.com", "e.com", "f.com"];
    let node = |site: &str| cluster.node_of(&keys::site_applied(site));
    let first = candidates[0];
    let second = candidates.into_iter().find(|&s| node(s) != node(first)).expect("two nodes");
    (first, second)
}

/// A batch of two sites whose second site's node is down when it is applied: the first site's
/// transaction lands, the second's does not, and the process dies before it retries. The next
/// writer reads back only the second site's event, so folding it again counts every event
/// once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_cut_between_two_sites_counts_each_event_once() {
    let mut cluster = RedisCluster::start_with(&["--appendonly", "yes", "--appendfsync", "always"]);
    let (a, b) = two_sites(&cluster);
    let b_node = cluster.node_of(&keys::site_applied(b));
    let store = RedisStore::connect_writer(&cluster.url(), &options(&cluster)).await.unwrap();
    let events = vec![event(a, 1, 1), event(b, 2, 2), event(a, 3, 3), event(b, 4, 4)];
    assert_eq!(store.append(events.clone()).await.unwrap(), 0..4);
    let mut batch = WriteBatch::at(Some(1), 2);
    pageviews(a, 1, &mut batch);
    pageviews(b, 1, &mut batch);
    store.apply(&batch).await.unwrap();
    let mut batch = WriteBatch::at(Some(3), 2);
    pageviews(a, 1, &mut batch);
    pageviews(b, 1, &mut batch);

    cluster.kill(b_node);
    store.apply(&batch).await.expect_err("the second site's node is down");
    // The process dies here, its retry never made.
    drop(store);
    cluster.restart(b_node);

    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let store = loop {
        // The lease of the dead process lapses first.
        let options = WriterOptions { lease_wait: Duration::from_secs(15), ..options(&cluster) };
        match RedisStore::connect_writer(&cluster.url(), &options).await {
            Ok(store) => break store,
            Err(e) if std::time::Instant::now() < deadline => {
                eprintln!("waiting for the cluster: {e}");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(e) => panic!("the cluster did not come back: {e}"),
        }
    };
    assert_eq!(store.applied_offset().await.unwrap(), Some(1), "the batch did not finish");
    assert_eq!(store.totals(a, &[day()]).await.unwrap(), [pageview_counts(2)]);
    assert_eq!(store.totals(b, &[day()]).await.unwrap(), [pageview_counts(1)]);
    let unapplied = store.unapplied(Some(1), 10).await.unwrap();
    assert_eq!(unapplied, [(3, events[3].clone())], "only b's event");

    let mut refolded = WriteBatch::at(Some(3), 1);
    pageviews(b, 1, &mut refolded);
    store.apply(&refolded).await.unwrap();
    for site in [a, b] {
        let counted = store.totals(site, &[day()]).await.unwrap();
        assert_eq!(counted, [pageview_counts(2)], "{site}");
    }
    assert_eq!(store.applied_offset().await.unwrap(), Some(3));
    assert_eq!(store.unapplied(None, 10).await.unwrap(), []);
    // Both sites' logs hold their events, for scans.
    assert_eq!(store.scan_log(a, 0, 10).await.unwrap(), [events[0].clone(), events[2].clone()]);
    assert_eq!(store.scan_log(b, 0, 10).await.unwrap(), [events[1].clone(), events[3].clone()]);
}

/// The log's partitions and the sites' keys are spread over the nodes, and the store finds
/// them all: appends continue the offsets after a restart, sessions are listed from every
/// node.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_spread_over_every_node_are_found() {
    let cluster = RedisCluster::start();
    let store = RedisStore::connect_writer(&cluster.url(), &options(&cluster)).await.unwrap();
    let sites = ["a.com", "b.com", "c.com", "d.com", "e.com", "f.com", "g.com", "h.com"];
    let events: Vec<Event> =
        sites.iter().enumerate().map(|(i, s)| event(s, i as i64, i as u64)).collect();
    assert_eq!(store.append(events.clone()).await.unwrap(), 0..8);
    let mut batch = WriteBatch::at(Some(7), 8);
    for (i, site) in sites.iter().enumerate() {
        pageviews(site, 1, &mut batch);
        let key = SessionKey { site: (*site).into(), visitor: i as u64, backfill: false };
        batch.sessions.insert(key, Some(session(i as i64)));
    }
    store.apply(&batch).await.unwrap();
    let nodes: std::collections::BTreeSet<usize> =
        sites.iter().map(|s| cluster.node_of(&keys::site_applied(s))).collect();
    assert_eq!(nodes.len(), 3, "the sites are on every node");
    let mut listed: Vec<(String, i64)> = store
        .sessions()
        .await
        .unwrap()
        .into_iter()
        .map(|(key, record)| (key.site.to_string(), record.start))
        .collect();
    listed.sort();
    let expected: Vec<(String, i64)> =
        sites.iter().enumerate().map(|(i, s)| (s.to_string(), i as i64)).collect();
    assert_eq!(listed, expected);
    assert_eq!(store.trim_log(5).await.unwrap(), 5, "every site's log is trimmed");
    store.close().await.unwrap();

    let store = RedisStore::connect_writer(&cluster.url(), &options(&cluster)).await.unwrap();
    assert_eq!(store.append(vec![event("a.com", 9, 1)]).await.unwrap(), 8..9);
    assert_eq!(store.unapplied(Some(7), 10).await.unwrap(), [(8, event("a.com", 9, 1))]);
}

fn session(start: i64) -> SessionRecord {
    SessionRecord {
        start,
        last: start,
        pageviews: 1,
        events: 1,
        entry: Some("/".into()),
        exit: Some("/".into()),
        source: None,
        referrer: None,
        utm_source: None,
        utm_medium: None,
        utm_campaign: None,
        hint: None,
        traits: Default::default(),
    }
}
