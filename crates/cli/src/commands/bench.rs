//! `footfall bench`: drives the real collector over HTTP with generated traffic and reports
//! events/s and latency percentiles.
//!
//! Without `--url` it starts its own server on a temporary embedded store in this process, so
//! one command measures the whole path (HTTP, validation, identity, durable group-committed
//! log append, pipeline, store). Client and server then share the machine's cores, as they
//! would on a small box; the report says so.
//!
//! With `--redis URL` that server keeps its state in Redis, and each run also reports the Redis
//! commands per event and is compared with a naive design on the same Redis: see [`on_redis`].
//! Each run is then measured once the pipeline has caught up, so that the commands applying
//! its events count.

mod on_redis;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use bytes::Bytes;
use footfall_core::site::Site;
use footfall_server::engine::PipelineOptions;
use footfall_server::serve::{ServeOptions, load_state, serve_on};
use footfall_server::state::ServerConfig;
use footfall_store::redis::{LEASE, WriterOptions};
use footfall_store::{EmbeddedStore, RedisStore, Store, StoreError};
use http_body_util::{BodyExt, Full};
use hyper::Request;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde::{Deserialize, Serialize};
use tokio::net::TcpListener;

use self::on_redis::{Cost, NaiveReport, Stats};

use crate::cli::BenchArgs;

const USER_AGENTS: [&str; 6] = [
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/142.0.0.0 Safari/537.36",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Safari/605.1.15",
    "Mozilla/5.0 (X11; Linux x86_64; rv:140.0) Gecko/20100101 Firefox/140.0",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Mobile/15E148 Safari/604.1",
    "Mozilla/5.0 (Linux; Android 15; Pixel 9) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/142.0.0.0 Mobile Safari/537.36",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/142.0.0.0 Safari/537.36 Edg/142.0.0.0",
];
const PAGES: [&str; 12] = [
    "/",
    "/pricing",
    "/blog",
    "/blog/launch",
    "/blog/privacy-first",
    "/docs",
    "/docs/install",
    "/docs/api",
    "/about",
    "/contact",
    "/shop/product/17",
    "/checkout",
];
const REFERRERS: [&str; 6] = [
    "",
    "",
    "https://www.google.com/search?q=analytics",
    "https://news.ycombinator.com/item?id=1",
    "https://duckduckgo.com/",
    "https://t.co/abc",
];

/// A small deterministic PRNG (SplitMix64): the same traffic on every run.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[(self.next() % items.len() as u64) as usize]
    }
}

/// One prepared request: a visitor (its address and browser) and a body of `batch` events.
struct Shot {
    ip: String,
    user_agent: &'static str,
    body: Bytes,
}

/// Distinct requests prepared per run; runs cycle through them.
const POOL: usize = 20_000;

/// A visitor's events: lands with a referrer and maybe UTM tags, browses, sometimes signs up.
fn workload(site: &str, visitors: u64, batch: usize, requests: usize) -> Vec<Shot> {
    let mut rng = Rng(0x5eed);
    (0..requests)
        .map(|i| {
            let v = i as u64 % visitors;
            let events: Vec<String> = (0..batch)
                .map(|j| {
                    let page = rng.pick(&PAGES);
                    let landing = j == 0 && rng.next().is_multiple_of(4);
                    let query = if landing { "?utm_source=newsletter&utm_medium=email" } else { "" };
                    if rng.next().is_multiple_of(8) {
                        format!(
                            r#"{{"site":"{site}","name":"signup","url":"https://{site}{page}","props":{{"plan":"p{}"}}}}"#,
                            rng.next() % 3
                        )
                    } else {
                        format!(
                            r#"{{"site":"{site}","name":"pageview","url":"https://{site}{page}{query}","referrer":"{}","screen_width":1280}}"#,
                            rng.pick(&REFERRERS)
                        )
                    }
                })
                .collect();
            let body = if batch == 1 { events[0].clone() } else { format!("[{}]", events.join(",")) };
            Shot {
                ip: format!("10.{}.{}.{}", (v >> 16) & 255, (v >> 8) & 255, v & 255),
                user_agent: USER_AGENTS[(v % USER_AGENTS.len() as u64) as usize],
                body: Bytes::from(body),
            }
        })
        .collect()
}

#[derive(Serialize)]
struct Report {
    batch: usize,
    concurrency: usize,
    seconds: f64,
    requests: u64,
    /// Events the collector accepted.
    events: u64,
    errors: u64,
    events_per_second: f64,
    requests_per_second: f64,
    p50_ms: f64,
    p99_ms: f64,
    max_ms: f64,
    /// With `--redis`: how long after this run the pipeline caught up.
    #[serde(skip_serializing_if = "Option::is_none")]
    pipeline_drain_seconds: Option<f64>,
    /// With `--redis`: the Redis commands this run cost, its events applied.
    #[serde(skip_serializing_if = "Option::is_none")]
    redis: Option<Cost>,
    /// With `--redis`: the naive design on the same Redis and requests.
    #[serde(skip_serializing_if = "Option::is_none")]
    naive: Option<NaiveReport>,
    /// With `--redis`: footfall's events/s over the naive design's.
    #[serde(skip_serializing_if = "Option::is_none")]
    footfall_vs_naive: Option<f64>,
}

/// The part of the collector's answer the bench reads.
#[derive(Deserialize)]
struct Accepted {
    accepted: u64,
}

/// p50, p99 and max of latencies in microseconds, in milliseconds.
fn percentiles(latencies: &mut [u32]) -> (f64, f64, f64) {
    latencies.sort_unstable();
    let pct = |p: f64| -> f64 {
        latencies
            .get(((latencies.len() as f64 - 1.0) * p) as usize)
            .map_or(0.0, |&us| f64::from(us) / 1000.0)
    };
    (pct(0.50), pct(0.99), pct(1.0))
}

async fn run_scenario(
    url: &str,
    shots: Arc<Vec<Shot>>,
    args: &BenchArgs,
    batch: usize,
) -> Result<Report> {
    let mut connector = HttpConnector::new();
    connector.set_nodelay(true);
    let client: Client<_, Full<Bytes>> = Client::builder(TokioExecutor::new())
        .pool_max_idle_per_host(args.concurrency)
        .build(connector);
    let next = Arc::new(AtomicU64::new(0));
    let errors = Arc::new(AtomicU64::new(0));
    let target = format!("{}/api/track", url.trim_end_matches('/'));
    let max_requests = args.max_requests;
    let started = Instant::now();
    let deadline = started + Duration::from_secs(args.seconds);
    let workers: Vec<_> = (0..args.concurrency)
        .map(|_| {
            let (client, shots, next, errors, target) =
                (client.clone(), shots.clone(), next.clone(), errors.clone(), target.clone());
            tokio::spawn(async move {
                let mut latencies = Vec::new();
                let mut accepted = 0;
                while Instant::now() < deadline {
                    let i = next.fetch_add(1, Ordering::Relaxed) as usize;
                    if i >= max_requests {
                        break;
                    }
                    let shot = &shots[i % shots.len()];
                    let req = Request::post(target.as_str())
                        .header("content-type", "text/plain")
                        .header("user-agent", shot.user_agent)
                        .header("x-forwarded-for", shot.ip.as_str())
                        .body(Full::new(shot.body.clone()))
                        .expect("valid request");
                    let sent = Instant::now();
                    let answer = match client.request(req).await {
                        Ok(res) if res.status().as_u16() == 202 => {
                            res.into_body().collect().await.ok().and_then(|body| {
                                serde_json::from_slice::<Accepted>(&body.to_bytes()).ok()
                            })
                        }
                        _ => None,
                    };
                    match answer {
                        Some(answer) => {
                            latencies.push(sent.elapsed().as_micros() as u32);
                            accepted += answer.accepted;
                        }
                        None => {
                            errors.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                }
                (latencies, accepted)
            })
        })
        .collect();
    let mut latencies = Vec::new();
    let mut events = 0;
    for w in workers {
        let (l, accepted) = w.await?;
        latencies.extend(l);
        events += accepted;
    }
    let seconds = started.elapsed().as_secs_f64();
    let (p50_ms, p99_ms, max_ms) = percentiles(&mut latencies);
    let requests = latencies.len() as u64;
    Ok(Report {
        batch,
        concurrency: args.concurrency,
        seconds,
        requests,
        events,
        errors: errors.load(Ordering::Relaxed),
        events_per_second: events as f64 / seconds,
        requests_per_second: requests as f64 / seconds,
        p50_ms,
        p99_ms,
        max_ms,
        pipeline_drain_seconds: None,
        redis: None,
        naive: None,
        footfall_vs_naive: None,
    })
}

/// A server of our own on a temporary store (or on Redis), trusting `X-Forwarded-For` so that
/// each generated visitor has its own address.
struct OwnServer {
    url: String,
    store: Arc<dyn Store>,
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
    _dir: tempfile::TempDir,
}

async fn own_server(site: &str, redis: Option<&str>) -> Result<OwnServer> {
    let dir = tempfile::tempdir().context("cannot create a temporary data directory")?;
    let store: Arc<dyn Store> = match redis {
        Some(url) => {
            let options = WriterOptions {
                // A bench that was just interrupted holds the lease a little longer.
                lease_wait: LEASE + Duration::from_secs(1),
                spill_path: dir.path().join("redis-spill.log"),
                spill_max_bytes: 256 << 20,
            };
            match RedisStore::connect_writer(url, &options).await {
                Err(StoreError::Leased(e)) => bail!(
                    "{e}. footfall bench --redis writes into Redis: give it a spare database, \
                     such as redis://127.0.0.1:6379/15"
                ),
                store => Arc::new(store?),
            }
        }
        None => Arc::new(EmbeddedStore::open(dir.path())?),
    };
    let config = ServerConfig { trust_proxy: true, ..ServerConfig::default() };
    let site = Site::new(site, "UTC", false)?;
    let state = load_state(store.clone(), config.clone(), &[site]).await?;
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr: SocketAddr = listener.local_addr()?;
    let options = ServeOptions {
        listen: addr,
        config,
        pipeline: PipelineOptions::default(),
        retention_days: None,
        control_socket: None,
        sites_refresh: None,
    };
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(serve_on(listener, state, options, async {
        let _ = stopped.await;
    }));
    Ok(OwnServer { url: format!("http://{addr}"), store, stop, task, _dir: dir })
}

/// What a `--redis` bench needs beside the server: its names and a connection to measure with.
struct RedisRun {
    url: String,
    /// The URL without its password.
    shown: String,
    /// The site this run sends events for: a name of its own, so that its keys can be deleted.
    site: String,
    /// The naive design's keys start with this.
    naive_prefix: String,
    stats: Stats,
}

impl RedisRun {
    async fn start(url: &str, site: &str) -> Result<RedisRun> {
        let shown = match url.split_once("://") {
            Some((scheme, rest)) => {
                format!("{scheme}://{}", rest.rsplit_once('@').map_or(rest, |(_, host)| host))
            }
            None => url.to_owned(),
        };
        // Random, without a dependency: std seeds each RandomState afresh.
        let run = std::hash::BuildHasher::hash_one(&std::hash::RandomState::new(), 0u8) as u32;
        let site = Site::new(&format!("{run:08x}.{site}"), "UTC", false)?.domain;
        let stats = Stats::connect(url, &shown).await?;
        Ok(RedisRun {
            url: url.to_owned(),
            shown,
            site,
            naive_prefix: format!("naive:{run:08x}:"),
            stats,
        })
    }
}

/// Waits until the pipeline has applied everything appended; returns how long that took.
async fn drain(store: &dyn Store) -> Result<Duration> {
    let started = Instant::now();
    while !store.unapplied(None, 1).await?.is_empty() {
        if started.elapsed() > Duration::from_secs(300) {
            bail!("the pipeline did not catch up within 5 minutes");
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    Ok(started.elapsed())
}

/// `redis_url`: with `--redis` (or FOOTFALL_REDIS_URL, or the file), the in-process server
/// keeps its state there; the lease keeps it away from a Redis a server is serving from.
pub async fn run(args: BenchArgs, redis_url: Option<&str>) -> Result<()> {
    if args.concurrency == 0 || args.seconds == 0 || args.visitors == 0 {
        bail!("--concurrency, --seconds and --visitors must be at least 1");
    }
    let batches = match args.batch {
        Some(0) => bail!("--batch must be 1 to 100"),
        Some(b) if b > 100 => {
            bail!("--batch must be 1 to 100: the collector takes at most 100 events per request")
        }
        Some(b) => vec![b],
        None => vec![50, 1],
    };
    if redis_url.is_some() && args.url.is_some() {
        bail!("--redis and --url: give one; --url loads a running server, whatever its store");
    }
    let mut redis = match &redis_url {
        Some(url) => Some(RedisRun::start(url, &args.site).await?),
        None => None,
    };
    let result = measure(&args, &batches, redis.as_mut()).await;
    if let Some(r) = &mut redis {
        match r.stats.clean_up(&r.site, &r.naive_prefix).await {
            Ok(n) => eprintln!("footfall bench: deleted the run's {n} keys from Redis"),
            Err(e) => eprintln!(
                "footfall bench: could not delete the run's keys from Redis (ff:{{{}}}:* and \
                 {}*): {e:#}",
                r.site, r.naive_prefix
            ),
        }
    }
    let (reports, drained) = result?;

    if args.json {
        let drained_s = drained.map(|d| d.as_secs_f64());
        let mut out =
            serde_json::json!({ "scenarios": reports, "pipeline_drain_seconds": drained_s });
        if let Some(r) = &redis {
            out["redis"] = serde_json::json!({
                "url": r.shown, "site": r.site, "naive_prefix": r.naive_prefix,
            });
        }
        println!("{out}");
        return Ok(());
    }
    print_table(&reports, redis.is_some());
    if let Some(d) = drained.filter(|_| redis.is_none()) {
        println!("pipeline caught up {:.2} s after the load stopped", d.as_secs_f64());
    }
    Ok(())
}

/// Runs every scenario (and with `--redis`, the naive design on each afterwards); returns the
/// reports and how long the pipeline took to catch up after the last run.
async fn measure(
    args: &BenchArgs,
    batches: &[usize],
    mut redis: Option<&mut RedisRun>,
) -> Result<(Vec<Report>, Option<Duration>)> {
    let site = redis.as_ref().map_or(args.site.as_str(), |r| r.site.as_str()).to_owned();
    let own = match &args.url {
        Some(_) => None,
        None => Some(own_server(&site, redis.as_ref().map(|r| r.url.as_str())).await?),
    };
    let url = args.url.clone().or_else(|| own.as_ref().map(|s| s.url.clone())).expect("a target");
    eprintln!(
        "footfall bench: {} for {} s per scenario, {} connections, {} visitors{}{}",
        url,
        args.seconds,
        args.concurrency,
        args.visitors,
        if own.is_some() { " (server in this process, sharing its cores)" } else { "" },
        match &redis {
            Some(r) => format!(", on Redis at {} as site {}", r.shown, r.site),
            None => String::new(),
        }
    );

    let mut reports = Vec::new();
    let mut drained = None;
    for &batch in batches {
        let shots = Arc::new(workload(&site, args.visitors, batch, POOL.min(args.max_requests)));
        let before = match redis.as_deref_mut() {
            Some(r) => Some(r.stats.quiet_snapshot().await?),
            None => None,
        };
        let mut report = run_scenario(&url, shots, args, batch).await?;
        if report.requests == 0 {
            bail!(
                "no request succeeded against {url}: is footfall running there with site {site}?"
            );
        }
        if let (Some(r), Some(before), Some(own)) = (redis.as_deref_mut(), &before, &own) {
            let d = drain(own.store.as_ref()).await?;
            let after = r.stats.snapshot().await?;
            report.redis = Some(Cost::new(before, &after, report.events)?);
            report.pipeline_drain_seconds = Some(d.as_secs_f64());
            drained = Some(d);
        }
        reports.push(report);
    }

    if let Some(own) = own {
        if redis.is_none() {
            drained = Some(drain(own.store.as_ref()).await?);
        }
        let _ = own.stop.send(());
        own.task.await??;
    }

    // With the server stopped, nothing else of ours runs on Redis: the naive design's count is
    // its own.
    if let Some(r) = redis {
        for report in &mut reports {
            eprintln!("footfall bench: the naive design, batch {}", report.batch);
            let shots = workload(&site, args.visitors, report.batch, POOL.min(args.max_requests));
            let naive =
                on_redis::naive(&mut r.stats, Arc::new(shots), args, &r.naive_prefix).await?;
            if naive.events_per_second > 0.0 {
                report.footfall_vs_naive = Some(report.events_per_second / naive.events_per_second);
            }
            report.naive = Some(naive);
        }
    }
    Ok((reports, drained))
}

fn print_table(reports: &[Report], redis: bool) {
    if !redis {
        println!(
            "{:>5} {:>9} {:>12} {:>10} {:>9} {:>9} {:>9} {:>7}",
            "batch", "requests", "events/s", "req/s", "p50 ms", "p99 ms", "max ms", "errors"
        );
        for r in reports {
            println!(
                "{:>5} {:>9} {:>12.0} {:>10.0} {:>9.2} {:>9.2} {:>9.2} {:>7}",
                r.batch,
                r.requests,
                r.events_per_second,
                r.requests_per_second,
                r.p50_ms,
                r.p99_ms,
                r.max_ms,
                r.errors
            );
        }
        return;
    }
    println!(
        "{:<8} {:>5} {:>9} {:>12} {:>10} {:>9} {:>9} {:>9} {:>7} {:>15}",
        "design",
        "batch",
        "requests",
        "events/s",
        "req/s",
        "p50 ms",
        "p99 ms",
        "max ms",
        "errors",
        "redis cmd/event"
    );
    let row = |design: &str, batch: usize, requests: u64, seconds: f64, events_per_second: f64| {
        format!(
            "{design:<8} {batch:>5} {requests:>9} {events_per_second:>12.0} {:>10.0}",
            requests as f64 / seconds
        )
    };
    for r in reports {
        let cost = r.redis.as_ref().map_or(f64::NAN, |c| c.commands_per_event);
        println!(
            "{} {:>9.2} {:>9.2} {:>9.2} {:>7} {:>15.3}",
            row("footfall", r.batch, r.requests, r.seconds, r.events_per_second),
            r.p50_ms,
            r.p99_ms,
            r.max_ms,
            r.errors,
            cost
        );
        if let Some(n) = &r.naive {
            println!(
                "{} {:>9.2} {:>9.2} {:>9.2} {:>7} {:>15.3}",
                row("naive", r.batch, n.requests, n.seconds, n.events_per_second),
                n.p50_ms,
                n.p99_ms,
                n.max_ms,
                n.errors,
                n.redis.commands_per_event
            );
        }
    }
    for r in reports {
        if let Some(ratio) = r.footfall_vs_naive {
            println!("batch {}: footfall {ratio:.1}x the naive design's events/s", r.batch);
        }
        if let Some(cost) = &r.redis {
            let top: Vec<String> = cost
                .commandstats
                .iter()
                .take(8)
                .map(|c| format!("{} {:.4}", c.command, c.per_event))
                .collect();
            println!(
                "batch {}: footfall's Redis commands per event: {:.4} = {}",
                r.batch,
                cost.commands_per_event,
                top.join(", ")
            );
        }
        if let Some(d) = r.pipeline_drain_seconds {
            println!("batch {}: pipeline caught up {d:.2} s after the load stopped", r.batch);
        }
    }
}
