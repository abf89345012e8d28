//! Redis outages: redis-server, or one node of a Redis Cluster, is killed under load and started
//! again. The collector keeps acknowledging events into the spill meanwhile, and every
//! acknowledged event is counted exactly once once Redis is back; with the spill full, it
//! answers 503 with `Retry-After`.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{Request, StatusCode};
use footfall_core::site::Site;
use footfall_server::engine::{self, PipelineOptions};
use footfall_server::serve::{load_state, router};
use footfall_server::state::{AppState, ServerConfig};
use footfall_store::redis::WriterOptions;
use footfall_store::{RedisStore, Store};
use footfall_testkit::{RedisCluster, RedisServer};
use http_body_util::BodyExt;
use serde_json::{Value, json};
use tokio::sync::watch;
use tower::ServiceExt;

const SITE: &str = "shop.example";
/// Redis that keeps every write on disk, so that being killed loses nothing it acknowledged.
const DURABLE: [&str; 6] = ["--appendonly", "yes", "--appendfsync", "always", "--save", ""];

struct Footfall {
    app: Router,
    state: Arc<AppState>,
    stop: watch::Sender<bool>,
    pipeline: tokio::task::JoinHandle<Result<(), footfall_store::StoreError>>,
}

async fn start(redis_url: &str, spill: &std::path::Path, spill_max_bytes: u64) -> Footfall {
    let options = WriterOptions {
        lease_wait: Duration::from_secs(15),
        spill_path: spill.to_owned(),
        spill_max_bytes,
    };
    let store: Arc<dyn Store> =
        Arc::new(RedisStore::connect_writer(redis_url, &options).await.unwrap());
    let site = Site::new(SITE, "UTC", true).unwrap();
    let state = load_state(store, ServerConfig::default(), &[site]).await.unwrap();
    let (stop, rx) = watch::channel(false);
    let options =
        PipelineOptions { flush_interval: Duration::from_millis(20), ..Default::default() };
    let pipeline = tokio::spawn(engine::run_pipeline(state.clone(), options, rx));
    Footfall { app: router(state.clone()), state, stop, pipeline }
}

/// A request of `n` pageviews; its status, its `Retry-After`, and how many were accepted.
async fn track(app: &Router, n: usize) -> (StatusCode, Option<String>, u64) {
    let events: Vec<Value> = (0..n)
        .map(|i| json!({"site": SITE, "name": "pageview", "url": format!("https://{SITE}/p/{i}")}))
        .collect();
    let mut req = Request::post("/api/track")
        .header("content-type", "application/json")
        .header(
            "user-agent",
            "Mozilla/5.0 (X11; Linux x86_64; rv:140.0) Gecko/20100101 Firefox/140.0",
        )
        .body(Body::from(Value::Array(events).to_string()))
        .unwrap();
    req.extensions_mut().insert(ConnectInfo("198.51.100.7:4000".parse::<SocketAddr>().unwrap()));
    let res = app.clone().oneshot(req).await.unwrap();
    let status = res.status();
    let retry = res.headers().get("retry-after").map(|v| v.to_str().unwrap().to_owned());
    let body = res.into_body().collect().await.unwrap().to_bytes();
    let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    (status, retry, body["accepted"].as_u64().unwrap_or(0))
}

/// Events counted for the site today (by the rollups, as the stats API reads them).
async fn counted(footfall: &Footfall) -> u64 {
    let now = engine::now_ms();
    let day =
        |ms: i64| jiff::Timestamp::from_millisecond(ms).unwrap().strftime("%Y-%m-%d").to_string();
    let params = [
        ("site_id", SITE.to_owned()),
        ("period", "custom".to_owned()),
        ("date", format!("{},{}", day(now - 86_400_000), day(now + 86_400_000))),
        ("metrics", "events".to_owned()),
    ];
    let params = params.into_iter().map(|(k, v)| (k.to_owned(), v)).collect();
    let query = footfall_core::query::StatsQuery::parse(
        footfall_core::query::StatsKind::Aggregate,
        &params,
    )
    .unwrap();
    let site = footfall_core::site::Site::new(SITE, "UTC", true).unwrap();
    let _between_batches = footfall.state.rollups.read().await;
    let state = &footfall.state;
    match footfall_server::stats::run(state.store.as_ref(), &state.segments, &site, &query, now)
        .await
    {
        Ok(answer) => answer["results"]["events"]["value"].as_u64().unwrap(),
        Err(_) => u64::MAX,
    }
}

async fn counted_eventually(footfall: &Footfall, expected: u64) {
    for _ in 0..600 {
        if counted(footfall).await == expected {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{} events counted, {expected} acknowledged", counted(footfall).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_event_acknowledged_through_an_outage_is_counted_once() {
    let mut redis = RedisServer::start_with(&DURABLE);
    counts_once_through(&redis.url(), &mut redis).await;
}

/// On a cluster, the node serving the site is lost: the group commits' writes to the log's
/// partitions on the other nodes land while those to the site's raw log do not, and the
/// batches cannot be applied. Draining the spill then writes to each partition only what it
/// lacks.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_event_acknowledged_through_a_cluster_node_outage_is_counted_once() {
    let mut cluster = RedisCluster::start_with(&DURABLE);
    let node = cluster.node_of(&format!("ff:{{{SITE}}}:log"));
    let url = cluster.url();
    counts_once_through(&url, &mut NodeOutage { cluster: &mut cluster, node }).await;
}

/// How a test takes Redis away and brings it back.
trait Outage {
    fn kill(&mut self);
    fn restart(&mut self);
}

impl Outage for RedisServer {
    fn kill(&mut self) {
        RedisServer::kill(self);
    }

    fn restart(&mut self) {
        RedisServer::restart(self, &DURABLE);
    }
}

/// One node of a cluster.
struct NodeOutage<'c> {
    cluster: &'c mut RedisCluster,
    node: usize,
}

impl Outage for NodeOutage<'_> {
    fn kill(&mut self) {
        self.cluster.kill(self.node);
    }

    fn restart(&mut self) {
        self.cluster.restart(self.node);
    }
}

/// Keeps load on a footfall on `url` while `outage` takes Redis away and brings it back, and
/// checks that every acknowledged event is counted, and logged, once.
async fn counts_once_through(url: &str, outage: &mut impl Outage) {
    let dir = tempfile::tempdir().unwrap();
    let spill = dir.path().join("spill");
    let footfall = start(url, &spill, 64 << 20).await;

    // Four senders keep load on while Redis goes away and comes back.
    let acknowledged = Arc::new(AtomicU64::new(0));
    let refused = Arc::new(AtomicU64::new(0));
    let running = Arc::new(AtomicBool::new(true));
    let mut senders = Vec::new();
    for _ in 0..4 {
        let (app, acknowledged, refused, running) =
            (footfall.app.clone(), acknowledged.clone(), refused.clone(), running.clone());
        senders.push(tokio::spawn(async move {
            while running.load(Ordering::Relaxed) {
                let (status, _, accepted) = track(&app, 10).await;
                match status {
                    StatusCode::ACCEPTED => acknowledged.fetch_add(accepted, Ordering::Relaxed),
                    _ => refused.fetch_add(1, Ordering::Relaxed),
                };
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
        }));
    }
    let progress = |n: u64| {
        let acknowledged = acknowledged.clone();
        async move {
            let target = acknowledged.load(Ordering::Relaxed) + n;
            while acknowledged.load(Ordering::Relaxed) < target {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        }
    };
    progress(500).await;
    outage.kill();
    let at_kill = acknowledged.load(Ordering::Relaxed);
    // Acknowledged while Redis is down: these are in the spill.
    progress(500).await;
    assert!(std::fs::metadata(&spill).unwrap().len() > 0, "the spill holds the events");
    outage.restart();
    progress(500).await;
    running.store(false, Ordering::Relaxed);
    for sender in senders {
        sender.await.unwrap();
    }
    let acknowledged = acknowledged.load(Ordering::Relaxed);
    assert!(acknowledged >= at_kill + 1000);
    assert_eq!(refused.load(Ordering::Relaxed), 0, "nothing was refused: the spill had room");

    counted_eventually(&footfall, acknowledged).await;
    // Drained, once: the spill is empty and nothing is counted twice later.
    for _ in 0..100 {
        if std::fs::metadata(&spill).unwrap().len() == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(std::fs::metadata(&spill).unwrap().len(), 0, "the spill was drained");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(counted(&footfall).await, acknowledged);
    let log = footfall.state.store.scan_log(SITE, 0, i64::MAX).await.unwrap();
    assert_eq!(log.len() as u64, acknowledged, "the raw log holds each event once");

    footfall.stop.send(true).unwrap();
    footfall.pipeline.await.unwrap().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_spill_is_a_503_with_retry_after_and_a_restart_drains_it() {
    let mut redis = RedisServer::start_with(&DURABLE);
    let dir = tempfile::tempdir().unwrap();
    let spill = dir.path().join("spill");
    let footfall = start(&redis.url(), &spill, 4096).await;
    let (status, _, accepted) = track(&footfall.app, 5).await;
    assert_eq!((status, accepted), (StatusCode::ACCEPTED, 5));

    redis.kill();
    let mut spilled = 0;
    let (status, retry) = loop {
        let (status, retry, accepted) = track(&footfall.app, 5).await;
        if status != StatusCode::ACCEPTED {
            break (status, retry);
        }
        spilled += accepted;
    };
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(retry.as_ref().is_some_and(|r| r.parse::<u64>().is_ok_and(|s| s > 0)), "{retry:?}");
    assert!(spilled > 0, "some events fitted in the spill");

    // The server stops while Redis is away; the next one, once Redis is back, drains the spill
    // before anything else.
    assert!(!footfall.pipeline.is_finished(), "{:?}", footfall.pipeline.await);
    footfall.stop.send(true).unwrap();
    let _ = footfall.pipeline.await.unwrap();
    // Its lease cannot be given back with Redis away (it would lapse): the server is gone.
    let _ = footfall.state.store.close().await;
    redis.restart(&DURABLE);
    redis.command(&["DEL", "ff:lock"]);
    let footfall = start(&redis.url(), &spill, 4096).await;
    counted_eventually(&footfall, 5 + spilled).await;
    assert_eq!(std::fs::metadata(&spill).unwrap().len(), 0);
    footfall.stop.send(true).unwrap();
    footfall.pipeline.await.unwrap().unwrap();
}
