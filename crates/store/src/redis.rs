//! The Redis backend: footfall's state in Redis, under the [`keys`] schema, for people who run
//! Redis already or run more than one footfall machine.
//!
//! Beyond the rollup keys every backend shares, the log lives in:
//!
//! - `ff:log:{P}` (P = 0 … partitions − 1): streams of the events no applied batch covers yet,
//!   partitioned by visitor. Each entry is one run of one group commit's events of that
//!   partition, field `e`: for each event its offset (u64 BE), record length (u32 LE) and
//!   record. The entry's ID is `END-0`, END one past the run's last offset, so that the entries
//!   an apply has covered are those below `APPLIED+2-0`, which the writer trims. The next
//!   offset to assign is one past the highest END or past `ff:applied`, whichever is higher;
//! - `ff:log:partitions`: how many partitions;
//! - `ff:{SITE}:log`: a sorted set of one site's events for scans and rebuilds, scored by
//!   timestamp, each member the offset (u64 BE) then the record, so that equal timestamps sort
//!   by offset; `ff:logs`: the set of sites that have one;
//! - `ff:lock`: the serving process's lease.
//!
//! One serving process appends and applies ([`RedisStore::connect_writer`] takes the lease);
//! commands connect with [`RedisStore::connect`] and read or write configuration beside it.
//!
//! Every transaction keeps to one Redis Cluster slot, so the same code serves a single Redis
//! and a cluster. A group commit writes each partition's runs (one `XADD` each) and only then
//! the sites' sorted sets, whose members are idempotent: a writer that starts again adds the
//! streams' events to them once more. A write batch is one `MULTI`/`EXEC` per site (summed
//! `HINCRBY`s, one `PFADD` per unique-count key with all its visitors, sessions, and the
//! site's [`keys::site_applied`]), then `ff:applied`; events a site has counted beyond
//! `ff:applied` (a crash between the sites) are not read back for folding again. A site whose
//! `EXEC` answer is lost (the connection dropped) is not sent again blindly: the retry first
//! reads the site's batch id to see whether it landed.

use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use async_trait::async_trait;
use footfall_core::batch::{
    Counter, Dim, RowDelta, RowId, SessionKey, SessionRecord, Slice, WriteBatch, decode_session,
    encode_session, unique_element,
};
use footfall_core::event::{Event, decode_record, encode_record};
use footfall_core::identity::Salts;
use footfall_core::site::Site;
use footfall_core::time::{Bucket, Grain};
use redis::{AsyncCommands, Cmd, Pipeline, RedisError};
use rustc_hash::{FxHashMap, FxHashSet};
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;

use crate::embedded::MINUTES_KEPT;
use crate::framing;
use crate::spill::Spill;
use crate::tail::{self, Tail};
use crate::{ApiKey, Counts, Login, Result, Share, Store, StoreError, User, keys};

mod access;
mod connection;
mod transfer;

use connection::{Con, Node};

/// How the serving process writes: see [`RedisStore::connect_writer`].
#[derive(Clone, Debug)]
pub struct WriterOptions {
    /// How long to wait for the lease of another process to be given back or to lapse (a
    /// server that was killed holds it [`LEASE`] longer).
    pub lease_wait: Duration,
    /// The file that keeps acknowledged events while Redis cannot take them.
    pub spill_path: PathBuf,
    /// Most bytes the spill holds; beyond, appends fail (the collector answers 503).
    pub spill_max_bytes: u64,
}

/// Partitions of the unapplied log for a new Redis database; an existing one keeps its own.
pub const DEFAULT_PARTITIONS: u32 = 4;

const PARTITIONS: &str = "ff:log:partitions";
const LOGGED_SITES: &str = "ff:logs";
const LOCK: &str = "ff:lock";

/// The serving process's lease on the log: renewed every [`LEASE_RENEW`], it lapses
/// [`LEASE`] after that process dies, so a restart after a crash waits at most that long.
pub const LEASE: Duration = Duration::from_secs(10);
const LEASE_RENEW: Duration = Duration::from_secs(3);

/// Most events in one stream entry; a larger group commit writes several per partition.
const RUN_EVENTS: usize = 4096;

/// A group of fewer events than this waits for more for up to [`LINGER_YIELDS`] turns of the
/// runtime.
const LINGER_BELOW: usize = 128;
/// Eight turns took batches of one event per request from 0.43 Redis commands per event to
/// 0.18, for 9 % fewer events/s (`footfall bench --redis … --batch 1`; 0.12 once the group
/// commit lost its `MULTI`/`EXEC`); larger groups skip it.
const LINGER_YIELDS: usize = 8;

/// How often the writer tries to drain the spill while no appends come.
const DRAIN_RETRY: Duration = Duration::from_secs(1);

/// Most spilled events written to Redis in one transaction.
const DRAIN_EVENTS: usize = 10_000;

/// Stream entries read per partition when the pipeline reads back from Redis.
const READ_ENTRIES: usize = 64;

/// Events read back per round when a starting writer adds them to the sites' sorted sets.
const RELOG_PAGE: usize = 10_000;

/// Minute buckets live this long after their first write, as the embedded store keeps them
/// about [`MINUTES_KEPT`] minutes.
const MINUTE_TTL_SECONDS: i64 = (MINUTES_KEPT + 1) * 60;

fn partition_key(p: u32) -> String {
    format!("ff:log:{{{p}}}")
}

fn site_log_key(site: &str) -> String {
    format!("ff:{{{site}}}:log")
}

/// The Redis backend. See the [module documentation](self).
pub struct RedisStore {
    inner: Arc<Inner>,
    /// Present when this process holds the lease.
    lease: Option<Lease>,
}

struct Lease {
    /// The log writer's queue, when connected as the writer.
    queue: Option<mpsc::UnboundedSender<AppendRequest>>,
    tasks: Vec<JoinHandle<()>>,
}

impl Drop for Lease {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

struct Inner {
    con: Con,
    /// The URL without its password, for messages.
    shown: String,
    partitions: u32,
    /// This connection's random id: the lease's value and the prefix of its batch ids.
    token: String,
    appended: watch::Sender<Option<u64>>,
    tail: Mutex<Tail>,
    applying: tokio::sync::Mutex<Applying>,
    /// Minute-bucket keys this process has given their TTL, with their minute, so that each
    /// gets one `EXPIRE` rather than one per batch.
    expiring: Mutex<FxHashMap<String, i64>>,
}

#[derive(Default)]
struct Applying {
    batches: u64,
    /// A batch not yet wholly applied; the pipeline retries the same batch until it is.
    pending: Option<Pending>,
    /// Each site's applied offset, as far as this process has read or written it: no other
    /// process applies while it holds the lease.
    offsets: FxHashMap<Arc<str>, Option<u64>>,
}

impl Applying {
    /// The applied offset a site's share of a batch covering `batch_offset` records: never
    /// lowered, as a batch folded after a crash may end below what the site counted.
    fn offset_after(&self, site: &Arc<str>, batch_offset: Option<u64>) -> Option<u64> {
        self.offsets.get(site).copied().flatten().max(batch_offset)
    }

    /// Notes that a site's share of the pending batch has landed.
    fn landed(&mut self, pending: &mut Pending, site: Arc<str>, batch_offset: Option<u64>) {
        let offset = self.offset_after(&site, batch_offset);
        self.offsets.insert(Arc::clone(&site), offset);
        pending.done.insert(site);
    }
}

struct Pending {
    id: String,
    /// Sites whose transaction has landed.
    done: FxHashSet<Arc<str>>,
    /// Sites whose transaction may or may not have run (its answer was lost).
    unsure: Vec<Arc<str>>,
}

struct AppendRequest {
    events: Vec<Event>,
    reply: oneshot::Sender<Result<Range<u64>>>,
}

impl RedisStore {
    /// Connects for commands: configuration, queries, migration. [`Store::append`] is refused:
    /// only the serving process, connected with [`connect_writer`](Self::connect_writer),
    /// appends.
    pub async fn connect(url: &str) -> Result<RedisStore> {
        let inner = Inner::connect(url).await?;
        Ok(RedisStore { inner: Arc::new(inner), lease: None })
    }

    /// Connects as the one process that appends and applies: takes the lease (see
    /// [`WriterOptions`]), writes to Redis what an earlier process left in the spill, and starts
    /// the log writer.
    ///
    /// While Redis cannot take appended events, the writer keeps them in the spill, synced,
    /// and acknowledges them; it writes them to Redis in order once it is back, before newer
    /// ones. The pipeline counts them meanwhile, and its applies wait for Redis.
    pub async fn connect_writer(url: &str, options: &WriterOptions) -> Result<RedisStore> {
        let spill = Spill::open(&options.spill_path, options.spill_max_bytes)?;
        RedisStore::connect_leased(url, options.lease_wait, Some(spill), true).await
    }

    /// Connects as the one process that may write, without appending: for a migration, which
    /// needs the store at rest. Takes the lease as a writer does and, when given the spill of
    /// the server that wrote here, writes in what it holds first.
    pub async fn connect_exclusive(
        url: &str,
        lease_wait: Duration,
        spill_path: Option<&Path>,
    ) -> Result<RedisStore> {
        let spill = spill_path.map(|path| Spill::open(path, u64::MAX)).transpose()?;
        RedisStore::connect_leased(url, lease_wait, spill, false).await
    }

    async fn connect_leased(
        url: &str,
        lease_wait: Duration,
        spill: Option<Spill>,
        appends: bool,
    ) -> Result<RedisStore> {
        let mut inner = Inner::connect(url).await?;
        inner.take_lease(lease_wait).await?;
        if appends {
            inner.partitions = inner.record_partitions().await?;
        }
        let applied = inner.applied_offset().await?;
        let logged = inner.log_ends(applied).await?.into_iter().max().unwrap_or(0);
        let spilled_end = spill.as_ref().and_then(Spill::last_offset).map_or(0, |last| last + 1);
        let next = logged.max(spilled_end);
        *inner.tail.get_mut().unwrap_or_else(PoisonError::into_inner) = Tail::new(next, applied);
        inner.appended.send_replace(next.checked_sub(1));
        tracing::debug!(redis = %inner.shown, next_offset = next, "connected to Redis with the lease");

        let inner = Arc::new(inner);
        // Renewed from here on: what follows may take longer than the lease.
        let renew = tokio::spawn(renew_lease(Arc::clone(&inner)));
        let mut lease = Lease { queue: None, tasks: vec![renew] };
        // A writer that died between a group's streams and its sorted sets left them short.
        inner.relog(applied).await?;
        if let Some(spill) = spill {
            let mut log = LogWriter {
                inner: Arc::clone(&inner),
                next,
                trimmed: applied,
                spill: Arc::new(Mutex::new(spill)),
                logged_sites: FxHashSet::default(),
            };
            // What an earlier process spilled goes to Redis before anything new.
            log.drain().await?;
            if appends {
                let (queue, requests) = mpsc::unbounded_channel();
                lease.queue = Some(queue);
                lease.tasks.push(tokio::spawn(log.run(requests)));
            }
        }
        Ok(RedisStore { inner, lease: Some(lease) })
    }

    /// The Redis URL without its password.
    pub fn shown_url(&self) -> &str {
        &self.inner.shown
    }
}

async fn read_partitions(con: &mut Con) -> redis::RedisResult<u32> {
    let stored: Option<u32> = con.get(PARTITIONS).await?;
    Ok(stored.unwrap_or(DEFAULT_PARTITIONS).max(1))
}

/// `redis://user:secret@host:port/db` → `redis://host:port/db`.
pub fn without_password(url: &str) -> String {
    match url.split_once("://") {
        Some((scheme, rest)) => {
            let host = rest.rsplit_once('@').map_or(rest, |(_, host)| host);
            format!("{scheme}://{host}")
        }
        None => url.to_owned(),
    }
}

impl Inner {
    async fn connect(url: &str) -> Result<Inner> {
        let shown = without_password(url);
        let mut con = Con::open(url, &shown).await?;
        let partitions = read_partitions(&mut con)
            .await
            .map_err(|e| StoreError::Unavailable(format!("Redis at {shown}: {e}")))?;
        let token = format!("{:016x}{:016x}", rand::random::<u64>(), rand::random::<u64>());
        Ok(Inner {
            con,
            shown,
            partitions,
            token,
            appended: watch::Sender::new(None),
            tail: Mutex::new(Tail::new(0, None)),
            applying: tokio::sync::Mutex::new(Applying::default()),
            expiring: Mutex::new(FxHashMap::default()),
        })
    }

    /// The keys matching `pattern`, page by page: see [`Scan::next`].
    fn scan<'p>(&self, pattern: &'p str) -> Scan<'p> {
        Scan { pattern, nodes: None, cursor: 0 }
    }

    /// [`Con::spread`], its failure said as doing `what`.
    async fn spread<T: redis::FromRedisValue>(&self, cmds: Vec<Cmd>, what: &str) -> Result<Vec<T>> {
        self.con.spread(cmds).await.map_err(|e| self.failed(what, e))
    }

    /// Per partition, the offset its stream holds every event below: one past its last run,
    /// or past `applied` when that is higher (runs an apply covered are trimmed).
    async fn log_ends(&self, applied: Option<u64>) -> Result<Vec<u64>> {
        let lasts = (0..self.partitions)
            .map(|p| {
                redis::cmd("XREVRANGE")
                    .arg(partition_key(p))
                    .arg("+")
                    .arg("-")
                    .arg("COUNT")
                    .arg(1)
                    .to_owned()
            })
            .collect();
        let lasts: Vec<Vec<StreamEntry>> = self.spread(lasts, "reading the log's end").await?;
        let floor = applied.map_or(0, |a| a + 1);
        Ok(lasts
            .iter()
            .map(|last| last.first().map_or(0, |(id, _)| parse_run_end(id)).max(floor))
            .collect())
    }

    /// Adds the unapplied events to their sites' sorted sets, where a writer that died after
    /// writing the streams may have left them out. Adding a member twice changes nothing.
    async fn relog(&self, applied: Option<u64>) -> Result<()> {
        let mut from = applied.map_or(0, |a| a + 1);
        loop {
            let page = self
                .read_unapplied_as(from, RELOG_PAGE, |record, event| {
                    (event.site, event.ts, record.to_vec())
                })
                .await?;
            let Some(&(last, _)) = page.last() else { return Ok(()) };
            let mut logs = SiteLogs::default();
            for (offset, (site, ts, record)) in page {
                logs.push(site, ts, offset, &record);
            }
            self.write_site_logs(&logs, true).await?;
            from = last + 1;
        }
    }

    /// Writes events to their sites' sorted sets and, when `add_sites`, the sites to
    /// [`LOGGED_SITES`].
    async fn write_site_logs<K: AsRef<str> + std::hash::Hash + Eq>(
        &self,
        logs: &SiteLogs<K>,
        add_sites: bool,
    ) -> Result<()> {
        let mut cmds = logs.cmds();
        if add_sites && !cmds.is_empty() {
            let sites: Vec<&str> = logs.members.keys().map(AsRef::as_ref).collect();
            cmds.push(redis::cmd("SADD").arg(LOGGED_SITES).arg(sites).to_owned());
        }
        self.spread::<redis::Value>(cmds, "adding to the sites' logs").await.map(drop)
    }

    /// The applied offset of each site ([`keys::site_applied`]), `None` where none is stored.
    async fn site_offsets(&self, sites: &[Arc<str>]) -> Result<Vec<Option<u64>>> {
        let cmds = sites
            .iter()
            .map(|site| redis::cmd("HGET").arg(keys::site_applied(site)).arg("offset").to_owned())
            .collect();
        self.spread(cmds, "reading the sites' applied offsets").await
    }

    /// Stores the partition count, unless one is stored, and returns the one stored.
    async fn record_partitions(&self) -> Result<u32> {
        let mut con = self.con.clone();
        redis::cmd("SET")
            .arg(PARTITIONS)
            .arg(DEFAULT_PARTITIONS)
            .arg("NX")
            .query_async::<()>(&mut con)
            .await
            .map_err(|e| self.failed("storing the partition count", e))?;
        read_partitions(&mut con).await.map_err(|e| self.failed("reading", e))
    }

    /// A failed Redis call as a [`StoreError`]: the connection's trouble is `Unavailable`, a
    /// refused command (wrong type, out of memory) is `Io`.
    fn failed(&self, what: &str, e: RedisError) -> StoreError {
        if e.is_io_error() || e.is_timeout() || e.is_connection_dropped() {
            StoreError::Unavailable(format!("{what} in Redis at {} failed: {e}", self.shown))
        } else {
            StoreError::Io(format!("{what} in Redis at {} failed: {e}", self.shown))
        }
    }

    async fn take_lease(&self, wait: Duration) -> Result<()> {
        let mut con = self.con.clone();
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let taken: Option<String> = redis::cmd("SET")
                .arg(LOCK)
                .arg(&self.token)
                .arg("NX")
                .arg("PX")
                .arg(LEASE.as_millis() as u64)
                .query_async(&mut con)
                .await
                .map_err(|e| self.failed("taking the writer lease", e))?;
            if taken.is_some() {
                return Ok(());
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(StoreError::Leased(format!(
                    "another footfall server, or a migration, holds Redis at {} (key {LOCK}); \
                     stop it first. Commands such as `site add` work beside a server",
                    self.shown
                )));
            }
            tracing::info!(redis = %self.shown, "waiting for the lease of a footfall server that may have died");
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }

    async fn applied_offset(&self) -> Result<Option<u64>> {
        let mut con = self.con.clone();
        con.get(keys::APPLIED).await.map_err(|e| self.failed("reading the applied offset", e))
    }

    /// The unapplied events from offset `from`, at most `limit`, read back from the streams:
    /// up to [`READ_ENTRIES`] runs of each partition, cut where the first partition that may
    /// hold more stops, so that no offset is skipped.
    async fn read_unapplied(&self, from: u64, limit: usize) -> Result<Vec<(u64, Event)>> {
        self.read_unapplied_as(from, limit, |_, event| event).await
    }

    /// [`read_unapplied`](Self::read_unapplied), each record and its event made a `T` by `f`.
    async fn read_unapplied_as<T>(
        &self,
        mut from: u64,
        limit: usize,
        f: impl Fn(&[u8], Event) -> T,
    ) -> Result<Vec<(u64, T)>> {
        loop {
            let reads = (0..self.partitions)
                .map(|p| {
                    redis::cmd("XRANGE")
                        .arg(partition_key(p))
                        .arg(format!("{}-0", from + 1))
                        .arg("+")
                        .arg("COUNT")
                        .arg(READ_ENTRIES)
                        .to_owned()
                })
                .collect();
            let partitions: Vec<Vec<StreamEntry>> = self.spread(reads, "reading the log").await?;
            let mut events = Vec::new();
            let mut cut = u64::MAX;
            for entries in &partitions {
                if entries.len() == READ_ENTRIES {
                    let last = entries.last().map_or(0, |(id, _)| parse_run_end(id));
                    cut = cut.min(last.saturating_sub(1));
                }
                for (id, fields) in entries {
                    let run = fields.get("e").ok_or_else(|| {
                        StoreError::Corrupt(format!("log entry {id} has no field `e`"))
                    })?;
                    for (offset, record) in run_records(run)? {
                        if offset >= from && offset <= cut {
                            events.push((offset, record, decode_event(record, offset)?));
                        }
                    }
                }
            }
            events.sort_unstable_by_key(|(offset, ..)| *offset);
            let Some(&(last, ..)) = events.last() else { return Ok(Vec::new()) };
            // A site some of whose events a crashed batch applied has them counted already.
            let mut sites: Vec<Arc<str>> =
                events.iter().map(|(.., e)| Arc::clone(&e.site)).collect();
            sites.sort_unstable();
            sites.dedup();
            let offsets = self.site_offsets(&sites).await?;
            let counted: FxHashMap<Arc<str>, u64> = sites
                .into_iter()
                .zip(offsets)
                .filter_map(|(site, offset)| Some((site, offset?)))
                .collect();
            let unapplied: Vec<(u64, T)> = events
                .into_iter()
                .filter(|(offset, _, e)| counted.get(&e.site).is_none_or(|c| offset > c))
                .take(limit)
                .map(|(offset, record, event)| (offset, f(record, event)))
                .collect();
            if !unapplied.is_empty() {
                return Ok(unapplied);
            }
            from = last + 1;
        }
    }

    /// Queues `EXPIRE`s for the minute-bucket keys of `minute_keys` not yet given one, and
    /// forgets minutes long gone.
    fn expire_minutes(&self, pipe: &mut Pipeline, minute_keys: Vec<(String, i64)>) {
        let mut expiring = self.expiring.lock().unwrap_or_else(PoisonError::into_inner);
        let mut newest = i64::MIN;
        for (key, minute) in minute_keys {
            newest = newest.max(minute);
            if let std::collections::hash_map::Entry::Vacant(entry) = expiring.entry(key) {
                pipe.cmd("EXPIRE").arg(entry.key()).arg(MINUTE_TTL_SECONDS).ignore();
                entry.insert(minute);
            }
        }
        if expiring.len() > 100_000 {
            expiring.retain(|_, minute| *minute >= newest - 2);
        }
    }
}

/// A `SCAN` over every node: see [`Inner::scan`].
struct Scan<'p> {
    pattern: &'p str,
    /// The nodes left to scan, the one being scanned last; `None` before the first page.
    nodes: Option<Vec<Node>>,
    cursor: u64,
}

impl Scan<'_> {
    /// The next page of keys (perhaps empty), or `None` once every node is done. As with
    /// `SCAN`, a key written or deleted meanwhile may or may not be in it.
    async fn next(&mut self, inner: &Inner, what: &str) -> Result<Option<Vec<String>>> {
        let nodes = match &mut self.nodes {
            Some(nodes) => nodes,
            None => {
                let mut nodes = inner.con.nodes().await.map_err(|e| inner.failed(what, e))?;
                nodes.reverse();
                self.nodes.insert(nodes)
            }
        };
        let Some(node) = nodes.last() else { return Ok(None) };
        let (next, keys) = inner
            .con
            .scan(node, self.cursor, self.pattern)
            .await
            .map_err(|e| inner.failed(what, e))?;
        self.cursor = next;
        if next == 0 {
            nodes.pop();
        }
        Ok(Some(keys))
    }
}

/// An `XRANGE` entry: its ID and fields.
type StreamEntry = (String, FxHashMap<String, Vec<u8>>);

fn parse_run_end(id: &str) -> u64 {
    id.split_once('-').and_then(|(ms, _)| ms.parse().ok()).unwrap_or(0)
}

/// The (offset, record) pairs of a stream entry's run.
fn run_records(run: &[u8]) -> Result<Vec<(u64, &[u8])>> {
    match framing::read(run) {
        (records, used) if used == run.len() => Ok(records),
        _ => Err(StoreError::Corrupt("a log run is truncated".into())),
    }
}

fn decode_event(record: &[u8], offset: u64) -> Result<Event> {
    decode_record(record)
        .map_err(|e| StoreError::Corrupt(format!("log record at offset {offset}: {e}")))
}

/// A score for `ZRANGEBYSCORE`: exact for every millisecond timestamp, infinite beyond.
fn score(ts: i64, exclusive: bool) -> String {
    const EXACT: i64 = 1 << 53;
    let open = if exclusive { "(" } else { "" };
    if ts <= -EXACT {
        "-inf".into()
    } else if ts >= EXACT {
        "+inf".into()
    } else {
        format!("{open}{ts}")
    }
}

/// The log writer task: group commit. It takes every request queued while the previous group
/// was being written and writes them as one transaction.
struct LogWriter {
    inner: Arc<Inner>,
    /// The next offset. Always known here: a group Redis may or may not have taken goes to
    /// the spill with its offsets, and draining skips what Redis turns out to have.
    next: u64,
    /// The applied offset up to which the streams have been trimmed.
    trimmed: Option<u64>,
    spill: Arc<Mutex<Spill>>,
    /// Sites known to be in [`LOGGED_SITES`].
    logged_sites: FxHashSet<Arc<str>>,
}

impl LogWriter {
    async fn run(mut self, mut requests: mpsc::UnboundedReceiver<AppendRequest>) {
        loop {
            let spilled = !self.spill().is_empty();
            let first = if spilled {
                tokio::select! {
                    request = requests.recv() => request,
                    () = tokio::time::sleep(DRAIN_RETRY) => {
                        // Quiet: the next failure is logged when a group is spilled.
                        let _ = self.drain().await;
                        continue;
                    }
                }
            } else {
                requests.recv().await
            };
            let Some(first) = first else { return };
            let mut group = vec![first];
            while let Ok(more) = requests.try_recv() {
                group.push(more);
            }
            // A group costs about as many commands however small it is: give requests being
            // handled right now a moment to join a small one.
            for _ in 0..LINGER_YIELDS {
                if group.iter().map(|r| r.events.len()).sum::<usize>() >= LINGER_BELOW {
                    break;
                }
                tokio::task::yield_now().await;
                while let Ok(more) = requests.try_recv() {
                    group.push(more);
                }
            }
            let start = self.next;
            let events: Vec<&Event> = group.iter().flat_map(|r| &r.events).collect();
            let n = events.len() as u64;
            let drained = if spilled { self.drain().await } else { Ok(()) };
            let written = match drained {
                Ok(()) => self.write(start, &events, None).await,
                Err(e) => Err(e),
            };
            let result = match written {
                Ok(()) => Ok(()),
                Err(e) => self.spill_group(start, &group, e).await,
            };
            // Offsets of a refused group are not reused: Redis may have taken it after all.
            self.next = start + n;
            let mut ranges = Vec::with_capacity(group.len());
            let mut from = start;
            for request in &group {
                ranges.push(from..from + request.events.len() as u64);
                from += request.events.len() as u64;
            }
            match result {
                Ok(()) => {
                    let mut evicted = Vec::new();
                    {
                        let mut tail =
                            self.inner.tail.lock().unwrap_or_else(PoisonError::into_inner);
                        for (request, range) in group.iter_mut().zip(&ranges) {
                            let events = std::mem::take(&mut request.events);
                            tail.push(range.start, events, &mut evicted);
                        }
                    }
                    if n > 0 {
                        self.inner.appended.send_modify(|a| *a = (*a).max(Some(self.next - 1)));
                    }
                    for (request, range) in group.into_iter().zip(ranges) {
                        // A caller that went away gets no answer.
                        let _ = request.reply.send(Ok(range));
                    }
                }
                Err(e) => {
                    for request in group {
                        let _ = request.reply.send(Err(e.clone()));
                    }
                }
            }
        }
    }

    fn spill(&self) -> std::sync::MutexGuard<'_, Spill> {
        self.spill.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Keeps a group Redis did not take in the spill, so it can be acknowledged; or says why not.
    async fn spill_group(&self, start: u64, group: &[AppendRequest], e: StoreError) -> Result<()> {
        let events: Vec<Event> = group.iter().flat_map(|r| r.events.iter().cloned()).collect();
        let spill = Arc::clone(&self.spill);
        let pushed = tokio::task::spawn_blocking(move || {
            spill.lock().unwrap_or_else(PoisonError::into_inner).push(start, &events)
        })
        .await
        .map_err(|_| StoreError::Unavailable("the spill writer failed".into()))?;
        match pushed {
            Ok(true) => {
                tracing::warn!(error = %e, spilled = self.spill().len(), "Redis did not take \
                               appended events; they are kept in the spill until it is back");
                Ok(())
            }
            Ok(false) => Err(StoreError::Unavailable(format!(
                "{e}; the spill for events Redis cannot take now is full, so no more are \
                 accepted until Redis is back"
            ))),
            Err(spill_error) => Err(StoreError::Unavailable(format!("{e}; {spill_error}"))),
        }
    }

    /// Writes the spilled events to Redis, in order, skipping those its streams have (a group
    /// whose partitions were not all written, or events an apply covered since).
    async fn drain(&mut self) -> Result<()> {
        if self.spill().is_empty() {
            return Ok(());
        }
        let applied = self.inner.applied_offset().await?;
        let mut ends = self.inner.log_ends(applied).await?;
        let mut drained = 0;
        loop {
            let front = self.spill().front(DRAIN_EVENTS).map(|(start, events)| {
                (start, events.into_iter().cloned().collect::<Vec<Event>>())
            });
            let Some((start, events)) = front else { break };
            self.write(start, &events.iter().collect::<Vec<_>>(), Some(&mut ends)).await?;
            drained += events.len();
            let spill = Arc::clone(&self.spill);
            let n = events.len();
            tokio::task::spawn_blocking(move || {
                spill.lock().unwrap_or_else(PoisonError::into_inner).pop(n)
            })
            .await
            .map_err(|_| StoreError::Unavailable("the spill writer failed".into()))??;
        }
        if drained > 0 {
            tracing::info!(drained, "Redis is back: the spilled events are in its log");
        }
        Ok(())
    }

    /// Writes events at offsets `start..`: each partition's runs, then the sites' sorted sets.
    /// With `ends` (see [`Inner::log_ends`]), events a partition's stream holds are not
    /// written to it again, and `ends` moves past what is written.
    async fn write(
        &mut self,
        start: u64,
        events: &[&Event],
        mut ends: Option<&mut [u64]>,
    ) -> Result<()> {
        if events.is_empty() {
            return Ok(());
        }
        let inner = &self.inner;
        let mut runs = Runs::new(inner.partitions);
        let mut logs = SiteLogs::default();
        for (offset, event) in (start..).zip(events) {
            let record = encode_record(event);
            let p = runs.partition(event.visitor);
            let held = ends.as_deref_mut().is_some_and(|ends| {
                let held = offset < ends[p];
                ends[p] = ends[p].max(offset + 1);
                held
            });
            if !held {
                runs.push(p, offset, &record);
            }
            logs.push(&*event.site, event.ts, offset, &record);
        }
        // Runs every apply since the last group has covered are dead: entries whose end is at
        // most APPLIED+1.
        let applied = inner.tail.lock().unwrap_or_else(PoisonError::into_inner).applied;
        let trim = applied.filter(|_| applied > self.trimmed);
        let mut pipes = Vec::new();
        for (p, xadds) in runs.finish().into_iter().enumerate() {
            if xadds.is_empty() && trim.is_none() {
                continue;
            }
            let mut pipe = redis::pipe();
            // A partition's runs land together, so its stream never holds part of a group.
            if xadds.len() > 1 {
                pipe.atomic();
            }
            for xadd in xadds {
                pipe.add_command(xadd).ignore();
            }
            if let Some(a) = trim {
                pipe.cmd("XTRIM")
                    .arg(partition_key(p as u32))
                    .arg("MINID")
                    .arg(format!("{}-0", a + 2))
                    .ignore();
            }
            pipes.push(pipe);
        }
        for written in inner.con.each(&pipes).await {
            written.map_err(|e| inner.failed("appending to the log", e))?;
        }
        self.trimmed = self.trimmed.max(trim);
        let new_sites = logs.members.keys().any(|site| !self.logged_sites.contains(*site));
        inner.write_site_logs(&logs, new_sites).await?;
        if new_sites {
            self.logged_sites.extend(logs.members.into_keys().map(Arc::from));
        }
        Ok(())
    }
}

/// A group's stream entries being built: runs of each partition's events.
struct Runs {
    runs: Vec<Run>,
}

#[derive(Default)]
struct Run {
    len: usize,
    last: u64,
    bytes: Vec<u8>,
    /// The `XADD`s of the runs already full.
    xadds: Vec<Cmd>,
}

impl Runs {
    fn new(partitions: u32) -> Runs {
        Runs { runs: (0..partitions).map(|_| Run::default()).collect() }
    }

    /// The partition of a visitor's events.
    fn partition(&self, visitor: u64) -> usize {
        (visitor % self.runs.len() as u64) as usize
    }

    /// Adds an event to partition `p`, closing the run once it is full.
    fn push(&mut self, p: usize, offset: u64, record: &[u8]) {
        let run = &mut self.runs[p];
        framing::push(&mut run.bytes, offset, record);
        run.len += 1;
        run.last = offset;
        if run.len == RUN_EVENTS {
            run.close(p);
        }
    }

    /// Each partition's `XADD`s, in order.
    fn finish(self) -> Vec<Vec<Cmd>> {
        let mut runs = self.runs;
        for (p, run) in runs.iter_mut().enumerate() {
            if run.len > 0 {
                run.close(p);
            }
        }
        runs.into_iter().map(|run| run.xadds).collect()
    }
}

impl Run {
    /// The `XADD` of the run, with the ID one past its last offset.
    fn close(&mut self, partition: usize) {
        let mut xadd = redis::cmd("XADD");
        xadd.arg(partition_key(partition as u32))
            .arg(format!("{}-0", self.last + 1))
            .arg("e")
            .arg(std::mem::take(&mut self.bytes));
        self.xadds.push(xadd);
        self.len = 0;
    }
}

/// Events for the sites' sorted-set logs (`ff:{SITE}:log`), gathered for one `ZADD` per site.
struct SiteLogs<K> {
    members: FxHashMap<K, Vec<(i64, Vec<u8>)>>,
}

impl<K> Default for SiteLogs<K> {
    fn default() -> Self {
        SiteLogs { members: FxHashMap::default() }
    }
}

impl<K: AsRef<str> + std::hash::Hash + Eq> SiteLogs<K> {
    fn push(&mut self, site: K, ts: i64, offset: u64, record: &[u8]) {
        let mut member = Vec::with_capacity(8 + record.len());
        member.extend_from_slice(&offset.to_be_bytes());
        member.extend_from_slice(record);
        self.members.entry(site).or_default().push((ts, member));
    }

    /// One `ZADD` per site.
    fn cmds(&self) -> Vec<Cmd> {
        let zadd = |(site, members): (&K, &Vec<(i64, Vec<u8>)>)| {
            let mut zadd = redis::cmd("ZADD");
            zadd.arg(site_log_key(site.as_ref()));
            for (ts, member) in members {
                zadd.arg(ts).arg(member);
            }
            zadd
        };
        self.members.iter().map(zadd).collect()
    }
}

/// Renews the lease while the store lives; says so loudly if another process took it.
async fn renew_lease(inner: Arc<Inner>) {
    const RENEW: &str = "if redis.call('GET', KEYS[1]) == ARGV[1] then \
                         return redis.call('PEXPIRE', KEYS[1], ARGV[2]) else return -1 end";
    let script = redis::Script::new(RENEW);
    let mut con = inner.con.clone();
    loop {
        tokio::time::sleep(LEASE_RENEW).await;
        let renewed: redis::RedisResult<i64> = script
            .key(LOCK)
            .arg(&inner.token)
            .arg(LEASE.as_millis() as u64)
            .invoke_async(&mut con)
            .await;
        match renewed {
            Ok(-1) => tracing::error!(
                redis = %inner.shown,
                "another footfall server has taken the lease on this Redis ({LOCK}); two \
                 servers writing one log would corrupt it: stop one"
            ),
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "renewing the lease on Redis failed"),
        }
    }
}

#[async_trait]
impl Store for RedisStore {
    async fn append(&self, events: Vec<Event>) -> Result<Range<u64>> {
        let Some(queue) = self.lease.as_ref().and_then(|lease| lease.queue.as_ref()) else {
            return Err(StoreError::Io(
                "this connection to Redis is for commands; only `footfall serve` appends events"
                    .into(),
            ));
        };
        let gone = || StoreError::Unavailable("the event log writer has stopped".into());
        let (reply, answer) = oneshot::channel();
        queue.send(AppendRequest { events, reply }).map_err(|_| gone())?;
        answer.await.map_err(|_| gone())?
    }

    async fn wait_for_append(&self, after: Option<u64>, timeout: Duration) {
        tail::wait_for_append(&self.inner.appended, after, timeout).await;
    }

    async fn unapplied(&self, after: Option<u64>, limit: usize) -> Result<Vec<(u64, Event)>> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        let from = if self.lease.as_ref().is_some_and(|lease| lease.queue.is_some()) {
            match self.inner.tail.lock().unwrap_or_else(PoisonError::into_inner).read(after, limit)
            {
                (_, Some(events)) => return Ok(events),
                (from, None) => from,
            }
        } else {
            // Only a writer's tail holds anything; Redis knows what is applied.
            let applied = self.inner.applied_offset().await?;
            after.max(applied).map_or(0, |a| a + 1)
        };
        self.inner.read_unapplied(from, limit).await
    }

    async fn scan_log(&self, site: &str, from_ms: i64, to_ms: i64) -> Result<Vec<Event>> {
        if from_ms >= to_ms {
            return Ok(Vec::new());
        }
        let mut con = self.inner.con.clone();
        let members: Vec<Vec<u8>> = redis::cmd("ZRANGEBYSCORE")
            .arg(site_log_key(site))
            .arg(score(from_ms, false))
            .arg(score(to_ms, true))
            .query_async(&mut con)
            .await
            .map_err(|e| self.inner.failed("scanning the log", e))?;
        members
            .iter()
            .map(|m| {
                let (offset, record) = m.split_first_chunk::<8>().ok_or_else(|| {
                    StoreError::Corrupt(format!("a member of {} is truncated", site_log_key(site)))
                })?;
                decode_event(record, u64::from_be_bytes(*offset))
            })
            .collect()
    }

    async fn trim_log(&self, before_ms: i64) -> Result<u64> {
        let mut con = self.inner.con.clone();
        let sites: Vec<String> = con
            .smembers(LOGGED_SITES)
            .await
            .map_err(|e| self.inner.failed("listing the logged sites", e))?;
        if sites.is_empty() {
            return Ok(0);
        }
        let trims = sites
            .iter()
            .map(|site| {
                redis::cmd("ZREMRANGEBYSCORE")
                    .arg(site_log_key(site))
                    .arg("-inf")
                    .arg(score(before_ms, true))
                    .to_owned()
            })
            .collect();
        let deleted: Vec<u64> = self.inner.spread(trims, "trimming the log").await?;
        Ok(deleted.iter().sum())
    }

    async fn apply(&self, batch: &WriteBatch) -> Result<()> {
        let mut applying = self.inner.applying.lock().await;
        let mut pending = match applying.pending.take() {
            Some(pending) => pending,
            None => {
                applying.batches += 1;
                let id = format!("{}:{}", self.inner.token, applying.batches);
                Pending { id, done: FxHashSet::default(), unsure: Vec::new() }
            }
        };
        let applied = self.apply_rest(&mut applying, &mut pending, batch).await;
        if applied.is_err() {
            applying.pending = Some(pending);
        }
        applied
    }

    async fn applied_offset(&self) -> Result<Option<u64>> {
        self.inner.applied_offset().await
    }

    async fn sessions(&self) -> Result<Vec<(SessionKey, SessionRecord)>> {
        let mut names = Vec::new();
        for pattern in ["ff:{*}:s:*", "ff:{*}:sb:*"] {
            let mut scan = self.inner.scan(pattern);
            while let Some(page) = scan.next(&self.inner, "listing sessions").await? {
                names.extend(page.into_iter().filter_map(|k| Some((keys::parse_session(&k)?, k))));
            }
        }
        names.sort_unstable_by(|a, b| a.1.cmp(&b.1));
        names.dedup_by(|a, b| a.1 == b.1);
        // One MGET per site and chunk: a site's sessions share its slot.
        let chunks: Vec<&[(SessionKey, String)]> = names
            .chunk_by(|a, b| a.0.site == b.0.site)
            .flat_map(|site| site.chunks(1000))
            .collect();
        let reads = chunks
            .iter()
            .map(|chunk| {
                redis::cmd("MGET")
                    .arg(chunk.iter().map(|(_, k)| k.as_str()).collect::<Vec<_>>())
                    .to_owned()
            })
            .collect();
        let values: Vec<Vec<Option<Vec<u8>>>> =
            self.inner.spread(reads, "reading sessions").await?;
        let mut sessions = Vec::with_capacity(names.len());
        for (chunk, values) in chunks.into_iter().zip(values) {
            for ((key, name), value) in chunk.iter().zip(values) {
                // Deleted since the scan: the session ended.
                let Some(value) = value else { continue };
                let record = decode_session(&value)
                    .map_err(|e| StoreError::Corrupt(format!("session {name}: {e}")))?;
                sessions.push((key.clone(), record));
            }
        }
        Ok(sessions)
    }

    async fn totals(&self, site: &str, buckets: &[Bucket]) -> Result<Vec<Counts>> {
        if buckets.is_empty() {
            return Ok(Vec::new());
        }
        let mut pipe = redis::pipe();
        for &bucket in buckets {
            pipe.cmd("HGETALL").arg(keys::totals(site, bucket));
        }
        let hashes: Vec<Vec<(String, String)>> = self.query(&pipe, "reading totals").await?;
        hashes
            .into_iter()
            .zip(buckets)
            .map(|(fields, &bucket)| {
                let mut counts = Counts::default();
                for (field, value) in fields {
                    // A field this version does not know belongs to a newer one; skip it.
                    if let Some(counter) = Counter::from_name(&field) {
                        counts.add(counter, parse_counter(&keys::totals(site, bucket), &value)?);
                    }
                }
                Ok(counts)
            })
            .collect()
    }

    async fn breakdown(
        &self,
        site: &str,
        buckets: &[Bucket],
        dim: &Dim,
    ) -> Result<Vec<(String, Counts)>> {
        if buckets.is_empty() {
            return Ok(Vec::new());
        }
        let mut pipe = redis::pipe();
        let mut asked = Vec::new();
        for &bucket in buckets {
            for &counter in dim.counters() {
                let hash = keys::breakdown(site, bucket, dim, counter);
                pipe.cmd("HGETALL").arg(&hash);
                asked.push((hash, counter));
            }
        }
        let hashes: Vec<Vec<(String, String)>> = self.query(&pipe, "reading a breakdown").await?;
        let mut rows: FxHashMap<String, Counts> = FxHashMap::default();
        for ((hash, counter), fields) in asked.iter().zip(hashes) {
            for (value, count) in fields {
                let count = parse_counter(hash, &count)?;
                rows.entry(value).or_default().add(*counter, count);
            }
        }
        Ok(rows.into_iter().filter(|(_, counts)| !counts.is_zero()).collect())
    }

    async fn unique_count(&self, site: &str, buckets: &[Bucket], slice: &Slice) -> Result<u64> {
        Ok(self.pfcounts(site, buckets, [slice.clone()]).await?[0])
    }

    async fn unique_counts(
        &self,
        site: &str,
        buckets: &[Bucket],
        dim: &Dim,
        values: &[String],
    ) -> Result<Vec<u64>> {
        let slices = values.iter().map(|v| Slice::By(dim.clone(), v.as_str().into()));
        self.pfcounts(site, buckets, slices).await
    }

    async fn sites(&self) -> Result<Vec<Site>> {
        self.inner.json_fields(keys::SITES, "site").await
    }

    async fn put_site(&self, site: &Site) -> Result<()> {
        self.inner.put_json_field(keys::SITES, &site.domain, site, "saving a site").await
    }

    async fn put_api_key(&self, hash: [u8; 32], key: &ApiKey) -> Result<()> {
        let field = keys::api_key_field(&hash);
        self.inner.put_json_field(keys::API_KEYS, &field, key, "saving an API key").await
    }

    async fn api_key(&self, hash: [u8; 32]) -> Result<Option<ApiKey>> {
        self.inner.json_field(keys::API_KEYS, &keys::api_key_field(&hash), "API key").await
    }

    async fn salts(&self) -> Result<Option<Salts>> {
        let mut con = self.inner.con.clone();
        let json: Option<Vec<u8>> =
            con.get(keys::SALTS).await.map_err(|e| self.inner.failed("reading the salts", e))?;
        json.map(|json| {
            serde_json::from_slice(&json)
                .map_err(|e| StoreError::Corrupt(format!("{}: {e}", keys::SALTS)))
        })
        .transpose()
    }

    async fn put_salts(&self, salts: &Salts) -> Result<()> {
        let json = serde_json::to_vec(salts).expect("salts serialise");
        let mut con = self.inner.con.clone();
        con.set(keys::SALTS, json).await.map_err(|e| self.inner.failed("saving the salts", e))
    }

    async fn users(&self) -> Result<Vec<User>> {
        self.inner.json_fields(keys::USERS, "user").await
    }

    async fn user(&self, name: &str) -> Result<Option<User>> {
        self.inner.json_field(keys::USERS, name, "user").await
    }

    async fn add_user(&self, user: &User) -> Result<bool> {
        self.inner.add_user(user).await
    }

    async fn remove_user(&self, name: &str) -> Result<bool> {
        self.inner.remove_user(name).await
    }

    async fn put_login(&self, hash: [u8; 32], login: &Login) -> Result<()> {
        self.inner.put_login(&hash, login).await
    }

    async fn login(&self, hash: [u8; 32], now: i64) -> Result<Option<Login>> {
        self.inner.login(&hash, now).await
    }

    async fn remove_login(&self, hash: [u8; 32]) -> Result<()> {
        self.inner.remove_login(&hash).await
    }

    async fn put_share(&self, share: &Share) -> Result<()> {
        self.inner.put_json_field(keys::SHARES, &share.id, share, "saving a share link").await
    }

    async fn share(&self, id: &str) -> Result<Option<Share>> {
        self.inner.json_field(keys::SHARES, id, "share link").await
    }

    async fn shares(&self, site: &str) -> Result<Vec<Share>> {
        let all: Vec<Share> = self.inner.json_fields(keys::SHARES, "share link").await?;
        Ok(all.into_iter().filter(|share| share.site == site).collect())
    }

    async fn remove_share(&self, site: &str, id: &str) -> Result<bool> {
        self.inner.remove_share(site, id).await
    }

    async fn close(&self) -> Result<()> {
        if let Some(lease) = &self.lease {
            for task in &lease.tasks {
                task.abort();
            }
            let mut con = self.inner.con.clone();
            redis::Script::new(
                "if redis.call('GET', KEYS[1]) == ARGV[1] then \
                 return redis.call('DEL', KEYS[1]) else return 0 end",
            )
            .key(LOCK)
            .arg(&self.inner.token)
            .invoke_async::<i64>(&mut con)
            .await
            .map_err(|e| self.inner.failed("giving back the writer lease", e))?;
        }
        Ok(())
    }
}

impl RedisStore {
    async fn query<T: redis::FromRedisValue>(&self, pipe: &Pipeline, what: &str) -> Result<T> {
        let mut con = self.inner.con.clone();
        pipe.query_async(&mut con).await.map_err(|e| self.inner.failed(what, e))
    }

    /// One `PFCOUNT` per slice over the buckets' HyperLogLogs (missing ones count as empty).
    async fn pfcounts(
        &self,
        site: &str,
        buckets: &[Bucket],
        slices: impl IntoIterator<Item = Slice>,
    ) -> Result<Vec<u64>> {
        let slices: Vec<Slice> = slices.into_iter().collect();
        if buckets.is_empty() || slices.is_empty() {
            return Ok(vec![0; slices.len()]);
        }
        let mut pipe = redis::pipe();
        for slice in &slices {
            pipe.cmd("PFCOUNT")
                .arg(buckets.iter().map(|&b| keys::unique(site, b, slice)).collect::<Vec<_>>());
        }
        self.query(&pipe, "counting unique visitors").await
    }

    /// Applies what of `batch` has not landed yet: first asks whether the sites whose answer
    /// was lost have it, then sends each remaining site's transaction, then `ff:applied`.
    /// `pending` keeps what has landed for a retry.
    async fn apply_rest(
        &self,
        applying: &mut Applying,
        pending: &mut Pending,
        batch: &WriteBatch,
    ) -> Result<()> {
        let inner = &self.inner;
        if !pending.unsure.is_empty() {
            let ask = pending
                .unsure
                .iter()
                .map(|site| {
                    redis::cmd("HGET").arg(keys::site_applied(site)).arg("batch").to_owned()
                })
                .collect();
            let ids: Vec<Option<String>> = inner.spread(ask, "checking the last batch").await?;
            for (site, id) in std::mem::take(&mut pending.unsure).into_iter().zip(ids) {
                if id.as_deref() == Some(pending.id.as_str()) {
                    tracing::info!(%site, "the write batch whose answer was lost had been applied");
                    applying.landed(pending, site, batch.offset);
                }
            }
        }

        let sites = batch_sites(batch, &pending.done);
        let unknown: Vec<Arc<str>> =
            sites.keys().filter(|&site| !applying.offsets.contains_key(site)).cloned().collect();
        if !unknown.is_empty() {
            let offsets = inner.site_offsets(&unknown).await?;
            applying.offsets.extend(unknown.into_iter().zip(offsets));
        }
        let mut order = Vec::with_capacity(sites.len());
        let mut pipes = Vec::with_capacity(sites.len());
        for (site, writes) in sites {
            let offset = applying.offset_after(&site, batch.offset);
            pipes.push(inner.site_transaction(&site, writes, offset, &pending.id));
            order.push(site);
        }
        let mut failed = None;
        for (site, result) in order.into_iter().zip(inner.con.each(&pipes).await) {
            match result {
                Ok(()) => applying.landed(pending, site, batch.offset),
                Err(e) => {
                    // The transaction may have run with its answer lost: check before redoing it.
                    failed.get_or_insert(e);
                    pending.unsure.push(site);
                }
            }
        }
        if let Some(e) = failed {
            return Err(inner.failed("applying a write batch", e));
        }
        if let Some(offset) = batch.offset {
            let mut con = inner.con.clone();
            con.set::<_, _, ()>(keys::APPLIED, offset)
                .await
                .map_err(|e| inner.failed("recording the applied offset", e))?;
        }
        self.applied(batch.offset);
        Ok(())
    }

    /// Tells the tail what an apply covered, so the writer trims the runs.
    fn applied(&self, offset: Option<u64>) {
        if let Some(offset) = offset {
            self.inner.tail.lock().unwrap_or_else(PoisonError::into_inner).applied(offset);
        }
    }
}

/// What a write batch changes in one site.
#[derive(Default)]
struct SiteWrites<'b> {
    rows: Vec<(&'b RowId, &'b RowDelta)>,
    sessions: Vec<(&'b SessionKey, &'b Option<SessionRecord>)>,
}

/// A batch's writes by site, leaving out the sites in `done`.
fn batch_sites<'b>(
    batch: &'b WriteBatch,
    done: &FxHashSet<Arc<str>>,
) -> FxHashMap<Arc<str>, SiteWrites<'b>> {
    let mut sites: FxHashMap<Arc<str>, SiteWrites> = FxHashMap::default();
    for (row, delta) in batch.rows() {
        if !done.contains(&row.site) {
            sites.entry(Arc::clone(&row.site)).or_default().rows.push((row, delta));
        }
    }
    for (key, session) in &batch.sessions {
        if !done.contains(&key.site) {
            sites.entry(Arc::clone(&key.site)).or_default().sessions.push((key, session));
        }
    }
    sites
}

impl Inner {
    /// One site's share of a write batch as one transaction, with the site's applied offset
    /// and the batch's id.
    fn site_transaction(
        &self,
        site: &str,
        writes: SiteWrites,
        offset: Option<u64>,
        id: &str,
    ) -> Pipeline {
        let mut pipe = redis::pipe();
        pipe.atomic();
        let mut minutes = Vec::new();
        for (row, delta) in writes.rows {
            for (counter, d) in delta.counters() {
                let (hash, field) = keys::counter(row, counter);
                if row.bucket.grain == Grain::Minute {
                    minutes.push((hash.clone(), row.bucket.index));
                }
                pipe.cmd("HINCRBY").arg(hash).arg(field).arg(d).ignore();
            }
            if !delta.visitors.is_empty() {
                let key = keys::unique_of(row);
                let mut pfadd = redis::cmd("PFADD");
                pfadd.arg(&key);
                for &v in &delta.visitors {
                    pfadd.arg(&unique_element(v)[..]);
                }
                pipe.add_command(pfadd).ignore();
                if row.bucket.grain == Grain::Minute {
                    minutes.push((key, row.bucket.index));
                }
            }
        }
        self.expire_minutes(&mut pipe, minutes);
        // One MSET and one DEL rather than a command per session: a batch touches about one
        // session per visitor.
        let (mut set, mut del) = (redis::cmd("MSET"), redis::cmd("DEL"));
        for (key, session) in writes.sessions {
            match session {
                // A struct of integers and strings always serialises.
                Some(record) => set.arg(keys::session(key)).arg(encode_session(record)),
                None => del.arg(keys::session(key)),
            };
        }
        for cmd in [set, del] {
            if cmd.args_iter().count() > 1 {
                pipe.add_command(cmd).ignore();
            }
        }
        let mut mark = redis::cmd("HSET");
        mark.arg(keys::site_applied(site)).arg("batch").arg(id);
        if let Some(offset) = offset {
            mark.arg("offset").arg(offset);
        }
        pipe.add_command(mark).ignore();
        pipe
    }
}

fn parse_counter(key: &str, value: &str) -> Result<i64> {
    value
        .parse()
        .map_err(|_| StoreError::Corrupt(format!("counter {key} holds `{value}`, not an integer")))
}
