//! `footfall bench --redis`: what a run costs Redis, and the naive design it is compared with.
//!
//! The cost is read from `INFO commandstats` before and after a run: the sum of `calls=` over
//! every command but `INFO` itself. Commands run inside `MULTI`/`EXEC` and by scripts count one
//! each, as do `MULTI` and `EXEC`. Nothing is reset; commands other clients send to the same
//! Redis meanwhile count too, so the baseline is taken once Redis has been quiet for a moment.
//!
//! The naive design is the classic tutorial write path, one awaited round trip per command and
//! five per event: `XADD` to a global stream, `XADD` to the site's stream, `HSET` into the
//! visitor's hash, `SADD` into the day's visitor set and `EXPIRE` on that set. It runs on the
//! same Redis with the same connections (one per worker, as a tutorial app with a pool would),
//! on the same requests: each worker decodes a request's JSON body and writes its events. It
//! has no HTTP in front of it, so it is measured at its best.

use std::collections::BTreeMap;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, bail};
use redis::aio::MultiplexedConnection;
use serde::Serialize;
use serde_json::Value;

use super::{Shot, percentiles};
use crate::cli::BenchArgs;

/// Calls per command, by lower-case name (`set`, `client|setinfo`).
pub(super) type Calls = BTreeMap<String, u64>;

/// How long to wait for Redis to be quiet before a baseline.
const QUIET_WAIT: Duration = Duration::from_secs(5);

/// What a run cost Redis.
#[derive(Serialize)]
pub(super) struct Cost {
    /// Commands Redis ran during the run, `INFO` excluded.
    pub commands: u64,
    pub commands_per_event: f64,
    /// The commands, most called first.
    pub commandstats: Vec<CommandCalls>,
}

#[derive(Serialize)]
pub(super) struct CommandCalls {
    pub command: String,
    pub calls: u64,
    pub per_event: f64,
}

impl Cost {
    pub fn new(before: &Calls, after: &Calls, events: u64) -> Result<Cost> {
        let mut commandstats = Vec::new();
        for (command, &calls) in after {
            let was = before.get(command).copied().unwrap_or(0);
            if calls < was {
                bail!("Redis's command statistics were reset during the run (CONFIG RESETSTAT)");
            }
            if calls > was {
                commandstats.push(CommandCalls {
                    command: command.clone(),
                    calls: calls - was,
                    per_event: (calls - was) as f64 / events.max(1) as f64,
                });
            }
        }
        if before.keys().any(|c| !after.contains_key(c)) {
            bail!("Redis's command statistics were reset during the run (CONFIG RESETSTAT)");
        }
        commandstats.sort_by(|a, b| b.calls.cmp(&a.calls).then_with(|| a.command.cmp(&b.command)));
        let commands = commandstats.iter().map(|c| c.calls).sum();
        Ok(Cost {
            commands,
            commands_per_event: commands as f64 / events.max(1) as f64,
            commandstats,
        })
    }
}

/// Parses `INFO commandstats`: `cmdstat_NAME:calls=N,usec=…` lines, `INFO` left out.
fn parse_commandstats(info: &str) -> Result<Calls> {
    let mut calls = Calls::new();
    for line in info.lines() {
        let Some((name, fields)) =
            line.strip_prefix("cmdstat_").and_then(|rest| rest.split_once(':'))
        else {
            continue;
        };
        let n = fields
            .split(',')
            .find_map(|field| field.strip_prefix("calls="))
            .and_then(|n| n.parse::<u64>().ok())
            .with_context(|| format!("cannot read INFO commandstats line `{line}`"))?;
        if name != "info" {
            calls.insert(name.to_ascii_lowercase(), n);
        }
    }
    Ok(calls)
}

fn total(calls: &Calls) -> u64 {
    calls.values().sum()
}

/// A connection for `INFO commandstats` and the clean-up.
pub(super) struct Stats {
    client: redis::Client,
    con: MultiplexedConnection,
    shown: String,
}

impl Stats {
    pub async fn connect(url: &str, shown: &str) -> Result<Stats> {
        let client = redis::Client::open(url)
            .with_context(|| format!("`{shown}` is not a Redis URL (redis://HOST:PORT/DB)"))?;
        let mut con = client
            .get_multiplexed_async_connection()
            .await
            .with_context(|| format!("cannot reach Redis at {shown}"))?;
        let info: String = redis::cmd("INFO")
            .arg("cluster")
            .query_async(&mut con)
            .await
            .with_context(|| format!("INFO cluster on Redis at {shown}"))?;
        if info.lines().any(|line| line.trim() == "cluster_enabled:1") {
            bail!(
                "Redis at {shown} is a Redis Cluster node: the benchmark counts the commands of \
                 one Redis and runs the naive design against one, so give it a standalone \
                 redis-server (footfall itself serves from a cluster)"
            );
        }
        let mut stats = Stats { client, con, shown: shown.to_owned() };
        stats.snapshot().await?;
        Ok(stats)
    }

    /// The calls of every command so far.
    pub async fn snapshot(&mut self) -> Result<Calls> {
        let info: String = redis::cmd("INFO")
            .arg("commandstats")
            .query_async(&mut self.con)
            .await
            .with_context(|| format!("INFO commandstats on Redis at {}", self.shown))?;
        parse_commandstats(&info)
    }

    /// A snapshot taken when Redis has run nothing but `INFO` for 50 ms, so that what a server
    /// starting up or another client was still doing is not counted; after [`QUIET_WAIT`],
    /// the latest one, with a warning.
    pub async fn quiet_snapshot(&mut self) -> Result<Calls> {
        let started = Instant::now();
        let mut last = self.snapshot().await?;
        loop {
            tokio::time::sleep(Duration::from_millis(50)).await;
            let now = self.snapshot().await?;
            if total(&now) == total(&last) {
                return Ok(now);
            }
            if started.elapsed() > QUIET_WAIT {
                eprintln!(
                    "footfall bench: Redis at {} is busy with other clients; their commands \
                     count in the commands per event",
                    self.shown
                );
                return Ok(now);
            }
            last = now;
        }
    }

    /// Deletes the keys a run wrote: the bench site's (`ff:{SITE}:*` and its entries in
    /// `ff:sites` and `ff:logs`) and the naive design's (`PREFIX*`). Returns how many.
    pub async fn clean_up(&mut self, site: &str, naive_prefix: &str) -> Result<u64> {
        let mut deleted = 0;
        for pattern in [format!("ff:{{{site}}}:*"), format!("{naive_prefix}*")] {
            let mut cursor = 0u64;
            loop {
                let (next, keys): (u64, Vec<String>) = redis::cmd("SCAN")
                    .cursor_arg(cursor)
                    .arg("MATCH")
                    .arg(&pattern)
                    .arg("COUNT")
                    .arg(1000)
                    .query_async(&mut self.con)
                    .await?;
                if !keys.is_empty() {
                    let n: u64 = redis::cmd("UNLINK").arg(&keys).query_async(&mut self.con).await?;
                    deleted += n;
                }
                if next == 0 {
                    break;
                }
                cursor = next;
            }
        }
        let (hdel, srem): (u64, u64) = redis::pipe()
            .cmd("HDEL")
            .arg("ff:sites")
            .arg(site)
            .cmd("SREM")
            .arg("ff:logs")
            .arg(site)
            .query_async(&mut self.con)
            .await?;
        Ok(deleted + hdel + srem)
    }
}

/// One run of the naive design.
#[derive(Serialize)]
pub(super) struct NaiveReport {
    pub seconds: f64,
    pub requests: u64,
    pub events: u64,
    pub errors: u64,
    pub events_per_second: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
    pub redis: Cost,
}

/// Runs the naive design over `shots` for as long and as many requests as a footfall run, with
/// as many workers as connections, and measures its Redis commands the same way.
pub(super) async fn naive(
    stats: &mut Stats,
    shots: Arc<Vec<Shot>>,
    args: &BenchArgs,
    prefix: &str,
) -> Result<NaiveReport> {
    let mut connections = Vec::with_capacity(args.concurrency);
    for _ in 0..args.concurrency {
        let con = stats
            .client
            .get_multiplexed_async_connection()
            .await
            .with_context(|| format!("cannot reach Redis at {}", stats.shown))?;
        connections.push(con);
    }
    // Connecting sends commands of its own (CLIENT SETINFO): the baseline comes after.
    let before = stats.quiet_snapshot().await?;

    let next = Arc::new(AtomicU64::new(0));
    let prefix: Arc<str> = prefix.into();
    let max_requests = args.max_requests;
    let started = Instant::now();
    let deadline = started + Duration::from_secs(args.seconds);
    let workers: Vec<_> = connections
        .into_iter()
        .map(|mut con| {
            let (shots, next, prefix) = (shots.clone(), next.clone(), prefix.clone());
            tokio::spawn(async move {
                let mut latencies = Vec::new();
                let (mut events, mut errors) = (0u64, 0u64);
                while Instant::now() < deadline {
                    let i = next.fetch_add(1, Ordering::Relaxed) as usize;
                    if i >= max_requests {
                        break;
                    }
                    let sent = Instant::now();
                    match naive_request(&mut con, &prefix, &shots[i % shots.len()]).await {
                        Ok(n) => {
                            events += n;
                            latencies.push(sent.elapsed().as_micros() as u32);
                        }
                        Err(_) => errors += 1,
                    }
                }
                (latencies, events, errors)
            })
        })
        .collect();
    let mut latencies = Vec::new();
    let (mut events, mut errors) = (0, 0);
    for w in workers {
        let (l, e, x) = w.await?;
        latencies.extend(l);
        events += e;
        errors += x;
    }
    let seconds = started.elapsed().as_secs_f64();
    let after = stats.snapshot().await?;
    let (p50_ms, p99_ms, max_ms) = percentiles(&mut latencies);
    Ok(NaiveReport {
        seconds,
        requests: latencies.len() as u64,
        events,
        errors,
        events_per_second: events as f64 / seconds,
        p50_ms,
        p99_ms,
        max_ms,
        redis: Cost::new(&before, &after, events)?,
    })
}

/// One request the naive way: decode the body, then five awaited commands per event. Returns
/// how many events it wrote.
async fn naive_request(con: &mut MultiplexedConnection, prefix: &str, shot: &Shot) -> Result<u64> {
    let body: Value = serde_json::from_slice(&shot.body)?;
    let events = match body {
        Value::Array(events) => events,
        event => vec![event],
    };
    // The tutorial's visitor: a hash of address and browser.
    let mut hasher = DefaultHasher::new();
    (&shot.ip, shot.user_agent).hash(&mut hasher);
    let visitor = format!("{:016x}", hasher.finish());
    for event in &events {
        let field = |name: &str| event.get(name).and_then(Value::as_str).unwrap_or("");
        let (site, name, url, referrer) =
            (field("site"), field("name"), field("url"), field("referrer"));
        let ts =
            SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default().as_millis() as u64;
        let fields =
            [("name", name), ("url", url), ("referrer", referrer), ("visitor", visitor.as_str())];
        let _: String = redis::cmd("XADD")
            .arg(format!("{prefix}events"))
            .arg("*")
            .arg("site")
            .arg(site)
            .arg(&fields[..])
            .arg("ts")
            .arg(ts)
            .query_async(con)
            .await?;
        let _: String = redis::cmd("XADD")
            .arg(format!("{prefix}site:{site}:events"))
            .arg("*")
            .arg(&fields[..])
            .arg("ts")
            .arg(ts)
            .query_async(con)
            .await?;
        let _: i64 = redis::cmd("HSET")
            .arg(format!("{prefix}visitor:{visitor}"))
            .arg("site")
            .arg(site)
            .arg("last_event")
            .arg(name)
            .arg("last_url")
            .arg(url)
            .arg("referrer")
            .arg(referrer)
            .arg("last_seen")
            .arg(ts)
            .query_async(con)
            .await?;
        let day_set = format!("{prefix}visitors:{site}:{}", ts / 86_400_000);
        let _: i64 = redis::cmd("SADD").arg(&day_set).arg(&visitor).query_async(con).await?;
        let _: i64 = redis::cmd("EXPIRE").arg(&day_set).arg(2 * 86_400).query_async(con).await?;
    }
    Ok(events.len() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commandstats_sum_every_command_but_info() {
        let info = "# Commandstats\r\n\
            cmdstat_set:calls=7,usec=7,usec_per_call=1.00,rejected_calls=0,failed_calls=0\r\n\
            cmdstat_info:calls=3,usec=9,usec_per_call=3.00,rejected_calls=0,failed_calls=0\r\n\
            cmdstat_client|setinfo:calls=2,usec=1,usec_per_call=0.50,rejected_calls=0,failed_calls=0\r\n";
        let calls = parse_commandstats(info).unwrap();
        assert_eq!(calls.get("set"), Some(&7));
        assert_eq!(calls.get("client|setinfo"), Some(&2));
        assert_eq!(calls.get("info"), None);
        assert_eq!(total(&calls), 9);
    }

    #[test]
    fn a_cost_is_the_difference_per_event() {
        let before = Calls::from([("set".into(), 5), ("xadd".into(), 1)]);
        let after = Calls::from([("set".into(), 15), ("xadd".into(), 1), ("multi".into(), 2)]);
        let cost = Cost::new(&before, &after, 4).unwrap();
        assert_eq!(cost.commands, 12);
        assert_eq!(cost.commands_per_event, 3.0);
        assert_eq!(cost.commandstats[0].command, "set");
        assert_eq!(cost.commandstats.len(), 2);
        let reset = Calls::from([("set".into(), 1)]);
        assert!(Cost::new(&before, &reset, 4).is_err());
    }
}
