//! Backend parity: the same event stream, folded into the same write batches, applied to the
//! embedded store and to Redis, gives byte-identical answers to every query of the stats API,
//! unique counts included. The events are real traffic: the 10,000 lines of
//! `shared/data/access-logs/apache_logs` (Apache-2.0), four days of a public web site.

use std::collections::HashMap;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::Arc;
use std::time::Duration;

use footfall_core::batch::WriteBatch;
use footfall_core::event::Event;
use footfall_core::pipeline::{DEFAULT_SESSION_TIMEOUT_MS, Pipeline};
use footfall_core::query::{StatsKind, StatsQuery};
use footfall_core::site::Site;
use footfall_server::stats;
use footfall_store::redis::WriterOptions;
use footfall_store::{EmbeddedStore, RedisStore, Store};
use footfall_testkit::RedisServer;
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn both_backends_answer_every_query_identically() {
    let text = std::fs::read_to_string(LOG).expect("the shared access log");
    let mut events: Vec<Event> = text.lines().filter_map(event).collect();
    assert!(events.len() > 9_900, "{} of 10,000 lines read", events.len());
    events.sort_by_key(|e| e.ts);
    let last = events.last().unwrap().ts;

    let dir = tempfile::tempdir().unwrap();
    let redis = RedisServer::start();
    let embedded: Arc<dyn Store> = Arc::new(EmbeddedStore::open(dir.path()).unwrap());
    let options = WriterOptions {
        lease_wait: Duration::ZERO,
        spill_path: dir.path().join("spill"),
        spill_max_bytes: 1 << 20,
    };
    let on_redis: Arc<dyn Store> =
        Arc::new(RedisStore::connect_writer(&redis.url(), &options).await.unwrap());
    let stores = [embedded, on_redis];

    // The same batches to both: odd sizes, so sessions straddle them.
    let site = Site::new(SITE, "Europe/Berlin", true).unwrap();
    let mut pipeline = Pipeline::new(DEFAULT_SESSION_TIMEOUT_MS, std::slice::from_ref(&site), []);
    let mut batch = WriteBatch::default();
    let mut offset = 0;
    for chunk in events.chunks(777) {
        batch.clear();
        for e in chunk {
            pipeline.fold(offset, e, &mut batch);
            offset += 1;
        }
        pipeline.finish(&mut batch);
        for store in &stores {
            store.append(chunk.to_vec()).await.unwrap();
            store.apply(&batch).await.unwrap();
        }
    }
    // Ten minutes after the last event: live windows have something in them.
    let now = last + 10 * 60_000;

    let mut answered = 0;
    for (kind, params) in param_sets() {
        let query =
            StatsQuery::parse(kind, &parse(&params)).unwrap_or_else(|e| panic!("{params}: {e}"));
        let mut answers = Vec::new();
        for store in &stores {
            let answer = stats::run(store.as_ref(), &site, &query, now).await;
            answers.push(answer.map_err(|e| e.message).unwrap_or_else(|e| panic!("{params}: {e}")));
        }
        assert_eq!(answers[0], answers[1], "{kind:?} {params}");
        answered += 1;
        if params.contains("metrics=visitors") && kind == StatsKind::Aggregate {
            let visitors = &answers[0]["results"]["visitors"]["value"];
            assert!(visitors.as_u64().is_some(), "{params}: {}", answers[0]);
        }
    }
    assert!(answered >= 100, "{answered} queries");

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

    // Sanity: the answers are about the traffic, not empty.
    let all = StatsQuery::parse(
        StatsKind::Aggregate,
        &parse("period=custom&date=2015-05-17,2015-05-20&metrics=pageviews,events"),
    )
    .unwrap();
    let answer: Value = stats::run(stores[1].as_ref(), &site, &all, now).await.unwrap();
    let pageviews = events.iter().filter(|e| e.is_pageview()).count() as u64;
    assert_eq!(answer["results"]["events"]["value"].as_u64(), Some(events.len() as u64));
    assert_eq!(answer["results"]["pageviews"]["value"].as_u64(), Some(pageviews));
}
