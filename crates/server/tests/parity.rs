//! Backend parity: the same event stream, folded into the same write batches, applied to the
//! embedded store, to Redis and to a Redis Cluster, gives byte-identical answers to every query of the stats API,
//! unique counts included. The events are real traffic: the 10,000 lines of
//! `shared/data/access-logs/apache_logs` (Apache-2.0), four days of a public web site.

use std::collections::HashMap;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use footfall_core::batch::WriteBatch;
use footfall_core::event::Event;
use footfall_core::identity::Salts;
use footfall_core::pipeline::{DEFAULT_SESSION_TIMEOUT_MS, Pipeline};
use footfall_core::query::{StatsKind, StatsQuery};
use footfall_core::site::Site;
use footfall_server::segments::Segments;
use footfall_server::stats;
use footfall_store::redis::WriterOptions;
use footfall_store::transfer::{Item, Progress, Transfer, migrate};
use footfall_store::{ApiKey, EmbeddedStore, RedisStore, Store};
use footfall_testkit::{RedisCluster, RedisServer};
use serde_json::Value;

const SITE: &str = "semicomplete.com";
const LOG: &str =
    concat!(env!("CARGO_MANIFEST_DIR"), "/../../../shared/data/access-logs/apache_logs");

/// `IP - - [17/May/2015:10:05:03 +0000] "GET /path HTTP/1.1" 200 203023 "referrer" "agent"`
/// as an event: pages are pageviews, files (`.png`, `.js`, …) custom `file` events with their
/// type as a prop; the visitor is a hash of IP and agent, as footfall's own is.
fn event(line: &str) -> Option<Event> {
    let (ip, rest) = line.split_once(' ')?;
    let (_, rest) = rest.split_once('[')?;
    let (time, rest) = rest.split_once("] \"")?;
    let (request, rest) = rest.split_once('"')?;
    let mut quoted = rest.split('"').skip(1).step_by(2);
    let (referrer, agent) = (quoted.next()?, quoted.next()?);
    let target = request.split(' ').nth(1)?;
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    let ts = jiff::Timestamp::strptime("%d/%b/%Y:%H:%M:%S %z", time).ok()?.as_millisecond();

    let mut hasher = DefaultHasher::new();
    (ip, agent).hash(&mut hasher);
    let file = path.rsplit('/').next()?.rsplit_once('.').map(|(_, ext)| ext.to_ascii_lowercase());
    let (name, props) = match file.filter(|ext| ext != "html") {
        Some(ext) => ("file".to_owned(), vec![("type".to_owned(), ext)]),
        None => ("pageview".to_owned(), vec![]),
    };
    let utm = |key: &str| {
        query
            .split('&')
            .find_map(|pair| pair.strip_prefix(key)?.strip_prefix('='))
            .map(String::from)
    };
    let referrer = referrer
        .split_once("://")
        .map(|(_, r)| r.split(['?', '#']).next().unwrap_or(r).trim_end_matches('/').to_owned())
        .filter(|r| !r.is_empty());
    let host = referrer.as_deref().map(|r| r.split('/').next().unwrap_or(r).to_owned());
    let own = |h: &String| h == SITE || h.ends_with(".semicomplete.com");
    let utm_source = utm("utm_source");
    Some(Event {
        site: SITE.into(),
        ts,
        name,
        visitor: hasher.finish(),
        page: path.to_owned(),
        source: utm_source.clone().or(host.filter(|h| !own(h))),
        referrer,
        utm_source,
        utm_medium: utm("utm_medium"),
        utm_campaign: utm("utm_campaign"),
        props,
        ..Event::default()
    })
}

fn param_sets() -> Vec<(StatsKind, String)> {
    let periods = [
        "period=day&date=2015-05-17",
        "period=7d&date=2015-05-21",
        "period=month&date=2015-05-21",
        "period=12mo&date=2015-05-21",
        "period=custom&date=2015-05-17,2015-05-20",
    ];
    let all = "visitors,visits,pageviews,views_per_visit,bounce_rate,visit_duration,events";
    let properties = [
        "event:page",
        "event:name",
        "visit:entry_page",
        "visit:exit_page",
        "visit:source",
        "visit:referrer",
        "visit:utm_source",
        "visit:utm_medium",
        "visit:utm_campaign",
        "event:props:type",
    ];
    let mut sets = Vec::new();
    for period in periods {
        sets.push((StatsKind::Aggregate, format!("{period}&metrics={all}")));
        let long = period.contains("mo&");
        for interval in ["hour", "date", "month"].into_iter().filter(|&i| !(long && i == "hour")) {
            sets.push((
                StatsKind::Timeseries,
                format!("{period}&interval={interval}&metrics={all}"),
            ));
        }
        // Breakdowns over a year read every day's unique counts of every value: slow in a
        // debug build, and no different from a week's.
        if period.contains("mo") || period.contains("month") {
            continue;
        }
        for property in properties {
            // Visit metrics are for visit properties only.
            let metrics =
                ["visitors,pageviews,events", "visitors,visits,bounce_rate,visit_duration"];
            let metrics = if property.starts_with("visit:") { &metrics[..] } else { &metrics[..1] };
            for metrics in metrics {
                let p = format!("{period}&property={property}&metrics={metrics}");
                sets.push((StatsKind::Breakdown, format!("{p}&limit=1000")));
                sets.push((StatsKind::Breakdown, format!("{p}&limit=7&page=2")));
            }
        }
    }
    // Filtered queries, answered from the raw log.
    let filters = [
        "event:page==/",
        "visit:source==www.google.com|Google;event:page!=/",
        "event:props:type==png",
        "visit:entry_page~blog;event:name==pageview",
    ];
    for f in filters {
        let period = "period=custom&date=2015-05-17,2015-05-20";
        sets.push((StatsKind::Aggregate, format!("{period}&metrics={all}&filters={f}")));
        sets.push((
            StatsKind::Timeseries,
            format!("{period}&metrics=visitors,pageviews&filters={f}"),
        ));
        sets.push((StatsKind::Breakdown, format!("{period}&property=visit:source&filters={f}")));
        sets.push((StatsKind::PropNames, format!("{period}&filters={f}")));
    }
    sets.push((StatsKind::Aggregate, format!("period=realtime&metrics={all}")));
    sets.push((StatsKind::Timeseries, "period=realtime&metrics=visitors,pageviews".into()));
    sets.push((StatsKind::RealtimeVisitors, String::new()));
    sets
}

fn parse(params: &str) -> HashMap<String, String> {
    let mut map: HashMap<String, String> = params
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.into(), v.into()))
        .collect();
    map.insert("site_id".into(), SITE.into());
    map
}

/// The shared access log as events, in time order.
fn traffic() -> Vec<Event> {
    let text = std::fs::read_to_string(LOG).expect("the shared access log");
    let mut events: Vec<Event> = text.lines().filter_map(event).collect();
    assert!(events.len() > 9_900, "{} of 10,000 lines read", events.len());
    events.sort_by_key(|e| e.ts);
    events
}

fn site() -> Site {
    Site::new(SITE, "Europe/Berlin", true).unwrap()
}

async fn embedded(dir: &Path) -> Arc<dyn Store> {
    Arc::new(EmbeddedStore::open(dir).unwrap())
}

async fn on_redis(redis: &RedisServer) -> Arc<dyn Store> {
    on_redis_at(&redis.url(), redis.dir()).await
}

async fn on_redis_at(url: &str, dir: &Path) -> Arc<dyn Store> {
    let options = WriterOptions {
        lease_wait: Duration::ZERO,
        spill_path: dir.join("spill"),
        spill_max_bytes: 1 << 20,
    };
    Arc::new(RedisStore::connect_writer(url, &options).await.unwrap())
}

/// Appends `events` to every store and applies the same batches to each, in chunks of odd
/// sizes so that sessions straddle them.
async fn load(stores: &[Arc<dyn Store>], pipeline: &mut Pipeline, events: &[Event], first: u64) {
    let mut batch = WriteBatch::default();
    let mut offset = first;
    for chunk in events.chunks(777) {
        batch.clear();
        for e in chunk {
            pipeline.fold(offset, e, &mut batch);
            offset += 1;
        }
        pipeline.finish(&mut batch);
        for store in stores {
            store.append(chunk.to_vec()).await.unwrap();
            store.apply(&batch).await.unwrap();
        }
    }
}

/// Asks every store every query and asserts that they answer alike; returns the first's
/// answers.
async fn same_answers(stores: &[Arc<dyn Store>], now: i64) -> Vec<Value> {
    let site = site();
    let mut first = Vec::new();
    for (kind, params) in param_sets() {
        let query =
            StatsQuery::parse(kind, &parse(&params)).unwrap_or_else(|e| panic!("{params}: {e}"));
        let mut answers = Vec::new();
        for store in stores {
            let segments = Segments::new(DEFAULT_SESSION_TIMEOUT_MS, 1 << 30);
            let answer = stats::run(store.as_ref(), &segments, &site, &query, now).await;
            answers.push(answer.map_err(|e| e.message).unwrap_or_else(|e| panic!("{params}: {e}")));
        }
        for (i, answer) in answers.iter().enumerate().skip(1) {
            assert_eq!(&answers[0], answer, "store {i}: {kind:?} {params}");
        }
        if params.contains("metrics=visitors") && kind == StatsKind::Aggregate {
            let visitors = &answers[0]["results"]["visitors"]["value"];
            assert!(visitors.as_u64().is_some(), "{params}: {}", answers[0]);
        }
        first.push(answers.swap_remove(0));
    }
    assert!(first.len() >= 100, "{} queries", first.len());
    first
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_backend_answers_every_query_identically() {
    let events = traffic();
    let last = events.last().unwrap().ts;
    let dir = tempfile::tempdir().unwrap();
    let redis = RedisServer::start();
    let cluster = RedisCluster::start();
    let stores = [
        embedded(dir.path()).await,
        on_redis(&redis).await,
        on_redis_at(&cluster.url(), dir.path()).await,
    ];
    let site = site();
    let mut pipeline = Pipeline::new(DEFAULT_SESSION_TIMEOUT_MS, std::slice::from_ref(&site), []);
    load(&stores, &mut pipeline, &events, 0).await;
    // Ten minutes after the last event: live windows have something in them.
    let now = last + 10 * 60_000;
    same_answers(&stores, now).await;

    // The raw log reads back the same from both, in time order.
    let (from, to) = (events[0].ts, last + 1);
    let scanned: Vec<Vec<Event>> = {
        let mut out = Vec::new();
        for store in &stores {
            out.push(store.scan_log(SITE, from, to).await.unwrap());
        }
        out
    };
    assert_eq!(scanned[0].len(), events.len());
    assert_eq!(scanned[0], scanned[1]);
    assert_eq!(scanned[0], scanned[2]);

    // Sanity: the answers are about the traffic, not empty.
    let all = StatsQuery::parse(
        StatsKind::Aggregate,
        &parse("period=custom&date=2015-05-17,2015-05-20&metrics=pageviews,events"),
    )
    .unwrap();
    let segments = Segments::new(DEFAULT_SESSION_TIMEOUT_MS, 1 << 30);
    let answer: Value = stats::run(stores[1].as_ref(), &segments, &site, &all, now).await.unwrap();
    let pageviews = events.iter().filter(|e| e.is_pageview()).count() as u64;
    assert_eq!(answer["results"]["events"]["value"].as_u64(), Some(events.len() as u64));
    assert_eq!(answer["results"]["pageviews"]["value"].as_u64(), Some(pageviews));
}

/// Everything a store exports, as (key, field, bytes) in order: a hash's fields one by one, log
/// events under their offsets.
async fn state(store: &dyn Transfer) -> Vec<(String, String, Vec<u8>)> {
    let mut all = Vec::new();
    let mut chunks = store.export();
    while let Some(chunk) = chunks.recv().await {
        for item in chunk.unwrap() {
            match item {
                Item::Hash { key, fields } => {
                    all.extend(fields.into_iter().map(|(f, v)| (key.clone(), f, v)));
                }
                Item::Unique { key, hll: value }
                | Item::Session { key, record: value }
                | Item::Value { key, value } => all.push((key, String::new(), value)),
                Item::Logged { site, ts, offset, record } => {
                    all.push((format!("log {site}"), format!("{ts} {offset}"), record));
                }
                Item::Unapplied { offset, record } => {
                    all.push(("unapplied".into(), offset.to_string(), record));
                }
            }
        }
    }
    all.sort();
    all
}

/// `footfall migrate` in both directions: the copies answer every query as the originals do,
/// hold the same log, sessions and configuration, and count the events the originals had not
/// counted yet, once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_migrated_store_answers_as_its_source_did() {
    let mut events = traffic();
    let last = events.last().unwrap().ts;
    let now = last + 10 * 60_000;
    // The last events are appended but not applied, as when a server stops with a backlog.
    let pending = events.split_off(events.len() - 500);
    let dir = tempfile::tempdir().unwrap();
    let (redis, redis_copy) = (RedisServer::start(), RedisServer::start());
    let embedded_source = Arc::new(EmbeddedStore::open(&dir.path().join("source")).unwrap());
    let options = WriterOptions {
        lease_wait: Duration::ZERO,
        spill_path: redis.dir().join("spill"),
        spill_max_bytes: 1 << 20,
    };
    let redis_source = Arc::new(RedisStore::connect_writer(&redis.url(), &options).await.unwrap());
    let sources: [Arc<dyn Store>; 2] = [embedded_source.clone(), redis_source.clone()];
    let site = site();
    let mut pipeline = Pipeline::new(DEFAULT_SESSION_TIMEOUT_MS, std::slice::from_ref(&site), []);
    load(&sources, &mut pipeline, &events, 0).await;
    let salts = Salts::new(now, [7; 64]);
    let key = ApiKey { name: "ci".into(), created: now };
    for store in &sources {
        store.append(pending.clone()).await.unwrap();
        store.put_site(&site).await.unwrap();
        store.put_api_key([9; 32], &key).await.unwrap();
        store.put_salts(&salts).await.unwrap();
    }

    // The embedded store into the second Redis, the first Redis into a new directory.
    let copy_dir = dir.path().join("copy");
    {
        let into_redis =
            RedisStore::connect_exclusive(&redis_copy.url(), Duration::ZERO, None).await.unwrap();
        let mut reported = 0;
        let copied = migrate(embedded_source.as_ref(), &into_redis, &mut |p| {
            if let Progress::Copied(n) = p {
                reported += n;
            }
        })
        .await
        .unwrap();
        assert_eq!(copied.unapplied, pending.len() as u64);
        assert_eq!(copied.logged, events.len() as u64 + pending.len() as u64);
        assert!(reported > copied.keys + copied.logged, "{reported} {copied:?}");
        into_redis.close().await.unwrap();

        let into_dir = EmbeddedStore::open(&copy_dir).unwrap();
        let copied_back = migrate(redis_source.as_ref(), &into_dir, &mut |_| {}).await.unwrap();
        // Redis keeps minute buckets by TTL, longer than the embedded store does.
        assert!(copied_back.keys > copied.keys, "{copied_back:?} {copied:?}");
        assert_eq!((copied_back.logged, copied_back.unapplied), (copied.logged, copied.unapplied));

        // A target that holds data is refused, and left as it was.
        let again = migrate(redis_source.as_ref(), &into_dir, &mut |_| {}).await.unwrap_err();
        assert!(again.to_string().contains("already holds footfall data"), "{again}");
    }
    let copy_options = WriterOptions { spill_path: redis_copy.dir().join("spill"), ..options };
    let redis_copy =
        Arc::new(RedisStore::connect_writer(&redis_copy.url(), &copy_options).await.unwrap());
    let embedded_copy = Arc::new(EmbeddedStore::open(&copy_dir).unwrap());
    // Byte for byte.
    assert_eq!(state(redis_copy.as_ref()).await, state(embedded_source.as_ref()).await);
    assert_eq!(state(embedded_copy.as_ref()).await, state(redis_source.as_ref()).await);
    let stores: [Arc<dyn Store>; 4] = [embedded_source, redis_source, redis_copy, embedded_copy];

    // Offsets and all: the copies hold what the originals hold.
    let mut unapplied = Vec::new();
    let mut sessions = Vec::new();
    let mut scanned = Vec::new();
    for store in &stores {
        unapplied.push(store.unapplied(None, 10_000).await.unwrap());
        let mut s = store.sessions().await.unwrap();
        s.sort_by_key(|(key, _)| (key.visitor, key.backfill));
        sessions.push(s);
        scanned.push(store.scan_log(SITE, i64::MIN, i64::MAX).await.unwrap());
        assert_eq!(store.sites().await.unwrap(), std::slice::from_ref(&site));
        assert_eq!(store.api_key([9; 32]).await.unwrap(), Some(key.clone()));
        assert_eq!(store.salts().await.unwrap(), Some(salts.clone()));
    }
    let expected: Vec<(u64, Event)> =
        (events.len() as u64..).zip(pending.iter().cloned()).collect();
    assert_eq!(unapplied[0], expected);
    assert!(!sessions[0].is_empty());
    assert_eq!(scanned[0].len(), events.len() + pending.len());
    for i in 1..stores.len() {
        assert_eq!(unapplied[i], unapplied[0], "store {i}");
        assert_eq!(sessions[i], sessions[0], "store {i}");
        assert_eq!(scanned[i], scanned[0], "store {i}");
    }
    same_answers(&stores, now).await;

    // The backlog is counted on each, once.
    let mut batch = WriteBatch::default();
    for (offset, e) in &expected {
        pipeline.fold(*offset, e, &mut batch);
    }
    pipeline.finish(&mut batch);
    for store in &stores {
        store.apply(&batch).await.unwrap();
        assert_eq!(store.unapplied(None, 10).await.unwrap(), []);
    }
    let answers = same_answers(&stores, now).await;
    let total = answers
        .iter()
        .find(|a| a["results"]["events"]["value"].as_u64() > Some(9_000))
        .expect("an aggregate over the whole log");
    assert_eq!(
        total["results"]["events"]["value"].as_u64(),
        Some(expected.len() as u64 + events.len() as u64)
    );
}

/// A value inside a `filters` parameter, with the characters the syntax gives a meaning escaped.
fn escaped(value: &str) -> String {
    let mut out = String::new();
    for c in value.chars() {
        if matches!(c, ';' | '|' | '\\' | '*') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// What a dashboard shows when a breakdown row is clicked: the aggregate filtered to the row,
/// answered from the raw log, equals the row the rollups gave, metric by metric.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_breakdown_row_equals_its_filtered_aggregate() {
    let events = traffic();
    let dir = tempfile::tempdir().unwrap();
    let store = embedded(dir.path()).await;
    let site = site();
    let mut pipeline = Pipeline::new(DEFAULT_SESSION_TIMEOUT_MS, std::slice::from_ref(&site), []);
    load(std::slice::from_ref(&store), &mut pipeline, &events, 0).await;
    let segments = Segments::new(DEFAULT_SESSION_TIMEOUT_MS, 1 << 30);
    let now = events.last().unwrap().ts;
    let ask = async |kind: StatsKind, params: &str| -> Value {
        let query = StatsQuery::parse(kind, &parse(params)).unwrap();
        stats::run(store.as_ref(), &segments, &site, &query, now).await.unwrap()
    };
    let visits = "visitors,visits,pageviews,bounce_rate,visit_duration,events";
    let properties = [
        ("event:page", visits),
        ("event:name", "visitors,pageviews,events"),
        ("event:props:type", "visitors,pageviews,events"),
        ("visit:entry_page", visits),
        ("visit:exit_page", visits),
        ("visit:source", visits),
        ("visit:referrer", visits),
        ("visit:utm_source", visits),
        ("visit:utm_medium", visits),
    ];
    let mut compared = 0;
    for period in ["period=day&date=2015-05-18", "period=custom&date=2015-05-17,2015-05-20"] {
        for (property, metrics) in properties {
            let rows = ask(
                StatsKind::Breakdown,
                &format!("{period}&property={property}&metrics={metrics}&limit=40"),
            )
            .await;
            let key = property.rsplit(':').next().unwrap();
            for row in rows["results"].as_array().unwrap() {
                let value = row[key].as_str().unwrap();
                let filters = format!("{property}=={}", escaped(value));
                let params = format!("{period}&metrics={metrics}&filters={filters}");
                let total = ask(StatsKind::Aggregate, &params).await;
                for metric in metrics.split(',') {
                    let (by_row, filtered) = (&row[metric], &total["results"][metric]["value"]);
                    assert_eq!(by_row, filtered, "{period} {filters}: {metric}");
                }
                compared += 1;
            }
        }
    }
    assert!(compared > 300, "only {compared} rows compared");
}
