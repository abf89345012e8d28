//! The embedded backend: one [fjall](https://docs.rs/fjall) database inside the data directory,
//! so footfall runs with no other server.
//!
//! Layout of the data directory:
//!
//! - `LOCK`: an OS lock held while a process has the store open, so two processes never share
//!   the data (fjall's own lock would only say "locked", not which directory or what to do).
//! - `fjall/`: the database, with these keyspaces:
//!   - `log`: the raw event log, keyed `site, 0x00, ts, offset` (ts as big-endian i64 with the
//!     sign bit flipped, so negative times sort first), so one site's time range is one scan;
//!   - `unapplied`: the events no applied batch covers yet, one entry per group commit (a run):
//!     its first offset (big-endian) → `0xFF`, the number of events (u32 LE), then each one's
//!     record, prefixed by its length (u32 LE). A run whose events are all applied is dead, and
//!     the log writer deletes it soon after;
//!   - `hashes`: every hash of the [`keys`] schema, one entry per field, keyed
//!     `hash key, 0xFF, field` (UTF-8 never contains 0xFF, so the first one ends the hash key);
//!   - `hlls`: unique counts under their [`keys`] names, as Redis HyperLogLog bytes;
//!   - `sessions`: sessions under their [`keys`] names, as postcard;
//!   - `meta`: [`keys::SALTS`], [`keys::APPLIED`] and [`UNAPPLIED_FROM`];
//!   - `logins`: login sessions under their [`keys::login`] names, as JSON; see [`access`];
//!   - `minutes`: an index of the minute buckets written (minute, site), for their expiry.
//!
//! Values are the bytes Redis would hold under the same name: counters are decimal text (as
//! `HINCRBY` keeps them), unique counts are Redis's HyperLogLog encoding, sessions postcard,
//! configuration JSON.
//!
//! Appended events are also kept in memory until the pipeline takes them (see [`crate::tail`]);
//! `unapplied` falls back to the keyspace for the others, as after a restart.
//!
//! Minute buckets are kept about two hours: after an apply that wrote minute buckets, every
//! minute bucket (totals, breakdowns, unique counts) more than [`MINUTES_KEPT`] minutes older
//! than the newest minute bucket applied is deleted. The newest is capped at the current
//! minute, so an event with a timestamp in the future cannot expire the live minutes.

use std::collections::VecDeque;
use std::fs::{File, OpenOptions, TryLockError};
use std::ops::Range;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, mpsc};
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use fjall::{Database, Keyspace, KeyspaceCreateOptions, OwnedWriteBatch, PersistMode};
use footfall_core::batch::{
    Counter, Dim, SessionKey, SessionRecord, Slice, WriteBatch, decode_session, encode_session,
    unique_element,
};
use footfall_core::event::{Event, decode_record, encode_record};
use footfall_core::hll::{Hll, count_union};
use footfall_core::identity::Salts;
use footfall_core::site::Site;
use footfall_core::time::{Bucket, Grain};
use rustc_hash::{FxHashMap, FxHashSet};
use tokio::sync::{oneshot, watch};

use crate::tail::{self, Tail};
use crate::{ApiKey, Counts, Login, Result, Share, Store, StoreError, User, keys};

mod access;
mod transfer;

/// How many minutes of minute buckets are kept before the newest one.
pub const MINUTES_KEPT: i64 = 120;

/// Log entries deleted per fjall batch by `trim_log`, to bound its memory.
const TRIM_CHUNK: usize = 10_000;

/// First byte of an `unapplied` run, so that a value of another format is recognised.
const RUN: u8 = 0xFF;

/// Most events in one `unapplied` run; a larger group commit writes several.
const RUN_EVENTS: usize = 4096;

/// In `meta`: the first offset of the oldest `unapplied` entry not yet deleted, as decimal text,
/// so that opening the store finds the entries left without stepping over deleted ones. Written
/// with the first run.
pub const UNAPPLIED_FROM: &str = "unapplied_from";

/// Most dead runs the log writer deletes in one group commit.
const PURGE_RUNS: usize = 1024;

/// fjall refuses (panics on) longer keys.
const MAX_KEY_LEN: usize = u16::MAX as usize;

/// Ends the hash key in a `hashes` entry's key.
const FIELD_SEP: u8 = 0xFF;

/// The embedded store. Dropping it waits for the log writer to finish its current group.
pub struct EmbeddedStore {
    inner: Arc<Inner>,
    /// Requests for the log writer thread; replaced by a dead sender on drop to stop it.
    queue: mpsc::Sender<AppendRequest>,
    writer: Option<JoinHandle<()>>,
}

struct Inner {
    db: Database,
    log: Keyspace,
    unapplied: Keyspace,
    hashes: Keyspace,
    hlls: Keyspace,
    sessions: Keyspace,
    meta: Keyspace,
    minutes: Keyspace,
    logins: Keyspace,
    /// The highest offset appended so far, for `wait_for_append`.
    appended: watch::Sender<Option<u64>>,
    /// Group commits (each one fsync) of the log so far.
    syncs: AtomicU64,
    /// `apply` reads counters and HyperLogLogs and writes them back; this keeps two applies
    /// from interleaving (the pipeline is the only writer, but the trait cannot promise that).
    apply_lock: Mutex<()>,
    /// Keeps a user from being added while another with the name is added or removed.
    access_lock: Mutex<()>,
    /// The newest unapplied events, as appended.
    tail: Mutex<Tail>,
    /// Declared last so that it is released after the database has closed.
    _lock: File,
}

struct AppendRequest {
    events: Vec<Event>,
    reply: oneshot::Sender<Result<Range<u64>>>,
}

impl EmbeddedStore {
    /// Opens (creating if needed) the store in `dir`. Fails with [`StoreError::Locked`] if
    /// another process has it open.
    pub fn open(dir: &Path) -> Result<EmbeddedStore> {
        std::fs::create_dir_all(dir).map_err(|e| {
            StoreError::Io(format!("cannot create the data directory {}: {e}", dir.display()))
        })?;
        let lock_path = dir.join("LOCK");
        let lock = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(|e| StoreError::Io(format!("cannot open {}: {e}", lock_path.display())))?;
        match lock.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => return Err(StoreError::Locked(dir.to_path_buf())),
            Err(TryLockError::Error(e)) => {
                return Err(StoreError::Io(format!("cannot lock {}: {e}", lock_path.display())));
            }
        }

        let db_path = dir.join("fjall");
        let db = Database::builder(&db_path).open().map_err(|e| {
            StoreError::Io(format!("cannot open the database in {}: {e}", db_path.display()))
        })?;
        let keyspace = |name: &str| {
            db.keyspace(name, KeyspaceCreateOptions::default)
                .map_err(|e| StoreError::Io(format!("cannot open keyspace `{name}`: {e}")))
        };
        let mut inner = Inner {
            log: keyspace("log")?,
            unapplied: keyspace("unapplied")?,
            hashes: keyspace("hashes")?,
            hlls: keyspace("hlls")?,
            sessions: keyspace("sessions")?,
            meta: keyspace("meta")?,
            minutes: keyspace("minutes")?,
            logins: keyspace("logins")?,
            db,
            appended: watch::Sender::new(None),
            syncs: AtomicU64::new(0),
            apply_lock: Mutex::new(()),
            access_lock: Mutex::new(()),
            tail: Mutex::new(Tail::new(0, None)),
            _lock: lock,
        };
        let applied = inner.applied_offset()?;
        let (runs, marked) = inner.runs_left(applied)?;
        // Every appended offset is in a run left or covered by the applied offset.
        let next = runs.back().map(|run| run.end).max(applied.map(|a| a + 1)).unwrap_or(0);
        *inner.tail.get_mut().unwrap_or_else(PoisonError::into_inner) = Tail::new(next, applied);
        inner.appended.send_replace(next.checked_sub(1));
        tracing::debug!(dir = %dir.display(), next_offset = next, "opened the embedded store");

        let inner = Arc::new(inner);
        let (queue, requests) = mpsc::channel();
        let writer = std::thread::Builder::new()
            .name("footfall-log-writer".into())
            .spawn({
                let inner = Arc::clone(&inner);
                move || inner.write_log(next, runs, marked, requests)
            })
            .map_err(|e| StoreError::Io(format!("cannot start the log writer thread: {e}")))?;
        Ok(EmbeddedStore { inner, queue, writer: Some(writer) })
    }

    /// How many group commits (each one fsync) the log writer has made since open; with the
    /// number of appends, how well group commit batches. For benchmarks and metrics.
    pub fn log_syncs(&self) -> u64 {
        self.inner.syncs.load(Ordering::Relaxed)
    }

    /// Runs blocking fjall work off the async runtime.
    async fn blocking<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Inner) -> Result<T> + Send + 'static,
    {
        let inner = Arc::clone(&self.inner);
        match tokio::task::spawn_blocking(move || f(&inner)).await {
            Ok(result) => result,
            Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
            Err(_) => Err(StoreError::Unavailable("the runtime is shutting down".into())),
        }
    }
}

impl Drop for EmbeddedStore {
    fn drop(&mut self) {
        // Dropping the only sender ends the writer's loop once it has answered its last group.
        self.queue = mpsc::channel().0;
        if let Some(writer) = self.writer.take() {
            // A panic there has already been reported by the panic hook.
            let _ = writer.join();
        }
    }
}

fn writer_gone() -> StoreError {
    StoreError::Unavailable("the event log writer has stopped".into())
}

#[async_trait]
impl Store for EmbeddedStore {
    async fn append(&self, events: Vec<Event>) -> Result<Range<u64>> {
        let (reply, answer) = oneshot::channel();
        self.queue.send(AppendRequest { events, reply }).map_err(|_| writer_gone())?;
        answer.await.map_err(|_| writer_gone())?
    }

    async fn wait_for_append(&self, after: Option<u64>, timeout: Duration) {
        tail::wait_for_append(&self.inner.appended, after, timeout).await;
    }

    async fn unapplied(&self, after: Option<u64>, limit: usize) -> Result<Vec<(u64, Event)>> {
        let (from, held) =
            self.inner.tail.lock().unwrap_or_else(PoisonError::into_inner).read(after, limit);
        match held {
            Some(events) => Ok(events),
            None => self.blocking(move |db| db.unapplied(from, limit)).await,
        }
    }

    async fn scan_log(&self, site: &str, from_ms: i64, to_ms: i64) -> Result<Vec<Event>> {
        let site = site.to_owned();
        self.blocking(move |db| db.scan_log(&site, from_ms, to_ms)).await
    }

    async fn trim_log(&self, before_ms: i64) -> Result<u64> {
        self.blocking(move |db| db.trim_log(before_ms)).await
    }

    async fn apply(&self, batch: &WriteBatch) -> Result<()> {
        let plan = ApplyPlan::new(batch)?;
        self.blocking(move |db| db.apply(plan)).await
    }

    async fn applied_offset(&self) -> Result<Option<u64>> {
        self.blocking(|db| db.applied_offset()).await
    }

    async fn sessions(&self) -> Result<Vec<(SessionKey, SessionRecord)>> {
        self.blocking(|db| db.all_sessions()).await
    }

    async fn totals(&self, site: &str, buckets: &[Bucket]) -> Result<Vec<Counts>> {
        let (site, buckets) = (site.to_owned(), buckets.to_vec());
        self.blocking(move |db| db.totals(&site, &buckets)).await
    }

    async fn breakdown(
        &self,
        site: &str,
        buckets: &[Bucket],
        dim: &Dim,
    ) -> Result<Vec<(String, Counts)>> {
        let (site, buckets, dim) = (site.to_owned(), buckets.to_vec(), dim.clone());
        self.blocking(move |db| db.breakdown(&site, &buckets, &dim)).await
    }

    async fn unique_count(&self, site: &str, buckets: &[Bucket], slice: &Slice) -> Result<u64> {
        let (site, buckets, slice) = (site.to_owned(), buckets.to_vec(), slice.clone());
        self.blocking(move |db| db.unique_count(&site, &buckets, &slice)).await
    }

    async fn unique_counts(
        &self,
        site: &str,
        buckets: &[Bucket],
        dim: &Dim,
        values: &[String],
    ) -> Result<Vec<u64>> {
        let (site, buckets) = (site.to_owned(), buckets.to_vec());
        let slices: Vec<Slice> =
            values.iter().map(|v| Slice::By(dim.clone(), v.as_str().into())).collect();
        // One trip to the blocking pool for all values rather than one per value.
        self.blocking(move |db| {
            slices.iter().map(|slice| db.unique_count(&site, &buckets, slice)).collect()
        })
        .await
    }

    async fn sites(&self) -> Result<Vec<Site>> {
        self.blocking(|db| db.json_fields(keys::SITES, "site")).await
    }

    async fn put_site(&self, site: &Site) -> Result<()> {
        let site = site.clone();
        self.blocking(move |db| {
            db.put_json_field(keys::SITES, &site.domain, &site, "saving a site")
        })
        .await
    }

    async fn put_api_key(&self, hash: [u8; 32], key: &ApiKey) -> Result<()> {
        let key = key.clone();
        self.blocking(move |db| {
            let field = keys::api_key_field(&hash);
            db.put_json_field(keys::API_KEYS, &field, &key, "saving an API key")
        })
        .await
    }

    async fn api_key(&self, hash: [u8; 32]) -> Result<Option<ApiKey>> {
        self.blocking(move |db| {
            db.json_field(keys::API_KEYS, &keys::api_key_field(&hash), "API key")
        })
        .await
    }

    async fn salts(&self) -> Result<Option<Salts>> {
        self.blocking(|db| {
            let Some(json) = get(&db.meta, keys::SALTS.as_bytes())? else {
                return Ok(None);
            };
            serde_json::from_slice(&json)
                .map(Some)
                .map_err(|e| StoreError::Corrupt(format!("{}: {e}", keys::SALTS)))
        })
        .await
    }

    async fn put_salts(&self, salts: &Salts) -> Result<()> {
        let json = serde_json::to_vec(salts).expect("salts serialise");
        let key = keys::SALTS.as_bytes().to_vec();
        self.blocking(move |db| db.write_synced(&db.meta, key, json, "saving the salts")).await
    }

    async fn users(&self) -> Result<Vec<User>> {
        self.blocking(|db| db.json_fields(keys::USERS, "user")).await
    }

    async fn user(&self, name: &str) -> Result<Option<User>> {
        let name = name.to_owned();
        self.blocking(move |db| db.json_field(keys::USERS, &name, "user")).await
    }

    async fn add_user(&self, user: &User) -> Result<bool> {
        let user = user.clone();
        self.blocking(move |db| db.add_user(&user)).await
    }

    async fn remove_user(&self, name: &str) -> Result<bool> {
        let name = name.to_owned();
        self.blocking(move |db| db.remove_user(&name)).await
    }

    async fn put_login(&self, hash: [u8; 32], login: &Login) -> Result<()> {
        let login = login.clone();
        self.blocking(move |db| db.put_login(&hash, &login)).await
    }

    async fn login(&self, hash: [u8; 32], now: i64) -> Result<Option<Login>> {
        self.blocking(move |db| db.login(&hash, now)).await
    }

    async fn remove_login(&self, hash: [u8; 32]) -> Result<()> {
        self.blocking(move |db| db.remove_login(&hash)).await
    }

    async fn put_share(&self, share: &Share) -> Result<()> {
        let share = share.clone();
        self.blocking(move |db| {
            db.put_json_field(keys::SHARES, &share.id, &share, "saving a share link")
        })
        .await
    }

    async fn share(&self, id: &str) -> Result<Option<Share>> {
        let id = id.to_owned();
        self.blocking(move |db| db.json_field(keys::SHARES, &id, "share link")).await
    }

    async fn shares(&self, site: &str) -> Result<Vec<Share>> {
        let site = site.to_owned();
        self.blocking(move |db| {
            let all: Vec<Share> = db.json_fields(keys::SHARES, "share link")?;
            Ok(all.into_iter().filter(|share| share.site == site).collect())
        })
        .await
    }

    async fn remove_share(&self, site: &str, id: &str) -> Result<bool> {
        let (site, id) = (site.to_owned(), id.to_owned());
        self.blocking(move |db| db.remove_share(&site, &id)).await
    }
}

impl Inner {
    /// The offsets of the `unapplied` entries not yet deleted, in order, and whether
    /// [`UNAPPLIED_FROM`] is there.
    fn runs_left(&self, applied: Option<u64>) -> Result<(VecDeque<Range<u64>>, bool)> {
        let marker = get(&self.meta, UNAPPLIED_FROM.as_bytes())?;
        let from = match &marker {
            Some(value) => parse_offset(UNAPPLIED_FROM.as_bytes(), value)?,
            None => applied.map_or(0, |a| a + 1),
        };
        let runs = self
            .unapplied
            .range(from.to_be_bytes()..)
            .map(|entry| {
                let (key, value) = entry.into_inner().map_err(read_err("unapplied"))?;
                let start = decode_offset(&key)?;
                Ok(start..start + run_len(&value, start)?)
            })
            .collect::<Result<_>>()?;
        Ok((runs, marker.is_some()))
    }

    /// The log writer thread: group commit. It takes every request queued while the previous
    /// group was syncing, writes them as one batch with one fsync, then answers each caller.
    ///
    /// A dedicated OS thread rather than a task: it spends its life blocked in fsync, so it
    /// would hold a blocking-pool thread anyway; it owns the next offset without a lock; and it
    /// needs no runtime handle, so `open` works from plain sync code.
    ///
    /// The group's events go into `unapplied` as runs: one entry per run rather than per event
    /// (which was a fifth of the server's time at 50 events per request, with the deletions).
    /// `runs` are those not yet deleted, in order; each group also deletes the ones that
    /// applies have covered since (an apply deleting its events' entries itself held fjall's
    /// journal, and so every append, for milliseconds). An apply's batch is written to the
    /// journal before the deletions that follow it, so they are never durable without it.
    /// `marked` says whether [`UNAPPLIED_FROM`] is stored.
    fn write_log(
        &self,
        mut next: u64,
        mut runs: VecDeque<Range<u64>>,
        mut marked: bool,
        requests: mpsc::Receiver<AppendRequest>,
    ) {
        // Kept across groups, so that building a run or a key does not allocate.
        let (mut run, mut key) = (RunBuilder::default(), Vec::new());
        while let Ok(first) = requests.recv() {
            let group: Vec<AppendRequest> =
                std::iter::once(first).chain(requests.try_iter()).collect();
            let start = next;
            let events = group.iter().map(|r| r.events.len()).sum::<usize>();
            let applied = self.tail.lock().unwrap_or_else(PoisonError::into_inner).applied;
            let dead = |offsets: &&Range<u64>| applied.is_some_and(|a| offsets.end - 1 <= a);
            let purged =
                if events > 0 { runs.iter().take(PURGE_RUNS).take_while(dead).count() } else { 0 };
            // Sized up front: growing it was a tenth of this thread's time with large groups.
            let entries = events + events.div_ceil(RUN_EVENTS) + purged + 1;
            let mut batch = OwnedWriteBatch::with_capacity(self.db.clone(), entries)
                .durability(Some(PersistMode::SyncData));
            for run in runs.range(..purged) {
                batch.remove(&self.unapplied, run.start.to_be_bytes());
            }
            if purged > 0 || !marked {
                let oldest = runs.get(purged).map_or(start, |run| run.start);
                batch.insert(&self.meta, UNAPPLIED_FROM, oldest.to_string());
            }
            let mut ranges = Vec::with_capacity(group.len());
            run.reset(start);
            for request in &group {
                let from = next;
                for event in &request.events {
                    let record = encode_record(event);
                    run.push(&record);
                    write_log_key(&mut key, &event.site, event.ts, next);
                    batch.insert(&self.log, key.as_slice(), record);
                    next += 1;
                    if run.len == RUN_EVENTS {
                        run.write(&mut batch, &self.unapplied);
                        run.reset(next);
                    }
                }
                ranges.push(from..next);
            }
            if run.len > 0 {
                run.write(&mut batch, &self.unapplied);
            }
            let committed = if next > start { batch.commit() } else { Ok(()) };
            // A caller that went away gets no answer; `send` failing then is expected.
            match committed {
                Ok(()) => {
                    marked |= next > start;
                    runs.drain(..purged);
                    let mut first = start;
                    while first < next {
                        let end = next.min(first + RUN_EVENTS as u64);
                        runs.push_back(first..end);
                        first = end;
                    }
                    let mut replies = Vec::with_capacity(group.len());
                    let mut evicted = Vec::new();
                    {
                        let mut tail = self.tail.lock().unwrap_or_else(PoisonError::into_inner);
                        for (AppendRequest { events, reply }, range) in
                            group.into_iter().zip(ranges)
                        {
                            tail.push(range.start, events, &mut evicted);
                            replies.push((reply, range));
                        }
                    }
                    if next > start {
                        self.syncs.fetch_add(1, Ordering::Relaxed);
                        self.appended.send_replace(Some(next - 1));
                    }
                    for (reply, range) in replies {
                        let _ = reply.send(Ok(range));
                    }
                }
                Err(e) => {
                    next = start;
                    let msg = format!("appending to the event log failed: {e}");
                    tracing::error!("{msg}");
                    for request in group {
                        let _ = request.reply.send(Err(StoreError::Io(msg.clone())));
                    }
                }
            }
        }
    }

    /// The events in `unapplied` from offset `from`, at most `limit`. The caller knows that an
    /// event at `from` is unapplied, so the entry holding it is the last one at or before it.
    fn unapplied(&self, from: u64, limit: usize) -> Result<Vec<(u64, Event)>> {
        let mut events = Vec::new();
        self.each_unapplied(from, |offset, record| {
            if events.len() == limit {
                return Ok(false);
            }
            events.push((offset, decode_event(record, offset)?));
            Ok(true)
        })?;
        Ok(events)
    }

    /// Calls `f(offset, record)` for each event in `unapplied` from offset `from`, in order,
    /// while it returns `true`.
    fn each_unapplied(
        &self,
        from: u64,
        mut f: impl FnMut(u64, &[u8]) -> Result<bool>,
    ) -> Result<()> {
        let first = match self.unapplied.range(..=from.to_be_bytes()).next_back() {
            Some(entry) => decode_offset(&entry.key().map_err(read_err("unapplied"))?)?,
            None => from,
        };
        for entry in self.unapplied.range(first.to_be_bytes()..) {
            let (key, value) = entry.into_inner().map_err(read_err("unapplied"))?;
            let start = decode_offset(&key)?;
            for (offset, record) in (start..).zip(run_records(&value, start)?) {
                if offset >= from && !f(offset, record)? {
                    return Ok(());
                }
            }
        }
        Ok(())
    }

    fn scan_log(&self, site: &str, from_ms: i64, to_ms: i64) -> Result<Vec<Event>> {
        let (from, to) = (log_key(site, from_ms, 0), log_key(site, to_ms, 0));
        if from_ms >= to_ms || !fits(&to) {
            return Ok(Vec::new());
        }
        self.log
            .range(from..to)
            .map(|entry| {
                let (key, record) = entry.into_inner().map_err(read_err("log"))?;
                let offset = decode_offset(&key[key.len().saturating_sub(8)..])?;
                decode_event(&record, offset)
            })
            .collect()
    }

    /// Visits each site in the log (skipping from one to the next) and deletes its entries
    /// before `before_ms`. `unapplied` keeps its own copy, so an old event not yet counted is
    /// still counted.
    fn trim_log(&self, before_ms: i64) -> Result<u64> {
        let mut deleted = 0;
        let mut next_site: Vec<u8> = Vec::new();
        while let Some(entry) = self.log.range(next_site.as_slice()..).next() {
            let key = entry.key().map_err(read_err("log"))?;
            let Some(end) = key.iter().position(|&b| b == 0) else {
                return Err(StoreError::Corrupt("a log key has no site separator".into()));
            };
            let site = &key[..end];
            let mut lo = site.to_vec();
            lo.push(0);
            let mut hi = lo.clone();
            hi.extend_from_slice(&sortable_ts(before_ms));

            let mut batch = self.db.batch();
            for old in self.log.range(lo..hi) {
                batch.remove(&self.log, old.key().map_err(read_err("log"))?);
                if batch.len() == TRIM_CHUNK {
                    deleted += TRIM_CHUNK as u64;
                    std::mem::replace(&mut batch, self.db.batch())
                        .commit()
                        .map_err(write_err("trimming the log"))?;
                }
            }
            deleted += batch.len() as u64;
            batch.commit().map_err(write_err("trimming the log"))?;

            next_site = site.to_vec();
            next_site.push(1);
        }
        Ok(deleted)
    }

    fn apply(&self, plan: ApplyPlan) -> Result<()> {
        let _serial = self.apply_lock.lock().unwrap_or_else(PoisonError::into_inner);
        // Not synced: atomicity is enough for exactly-once. An apply lost to a power cut loses
        // its counters and its `ff:applied` together, and its events, still in `unapplied`
        // (synced by `append`), are folded again. It is flushed to the OS (`Buffer`) so that a
        // crash of the process alone (`kill -9`, OOM) loses nothing: counts that queries have
        // already shown do not go back, and a restart does not redo the work.
        let mut batch = self.db.batch().durability(Some(PersistMode::Buffer));
        for (key, delta) in plan.counters {
            let stored = match get(&self.hashes, &key)? {
                Some(value) => parse_counter(&key, &value)?,
                None => 0,
            };
            let sum = stored.checked_add(delta).ok_or_else(|| {
                StoreError::Corrupt(format!("counter {} would overflow", show_key(&key)))
            })?;
            batch.insert(&self.hashes, key, sum.to_string());
        }
        for (key, visitors) in plan.uniques {
            let stored = get(&self.hlls, &key)?;
            let mut hll = match &stored {
                Some(bytes) => parse_hll(&key, bytes)?,
                None => Hll::new(),
            };
            // As PFADD, a missing key is created even if no register changes.
            let elements: Vec<[u8; 8]> = visitors.into_iter().map(unique_element).collect();
            let changed = hll.add_all(&elements) || stored.is_none();
            if changed {
                batch.insert(&self.hlls, key, hll.to_bytes());
            }
        }
        for (key, session) in plan.sessions {
            match session {
                Some(record) => batch.insert(&self.sessions, key, record),
                None => batch.remove(&self.sessions, key),
            }
        }
        for key in &plan.minutes {
            batch.insert(&self.minutes, key.as_slice(), Vec::new());
        }
        // The `unapplied` entries this covers are dead from now on; the log writer deletes them.
        if let Some(offset) = plan.offset {
            let applied = self.applied_offset()?.map_or(offset, |a| a.max(offset));
            batch.insert(&self.meta, keys::APPLIED, applied.to_string());
        }
        batch.commit().map_err(write_err("applying a batch"))?;
        if let Some(offset) = plan.offset {
            self.tail.lock().unwrap_or_else(PoisonError::into_inner).applied(offset);
        }

        if !plan.minutes.is_empty() {
            self.expire_minutes()?;
        }
        Ok(())
    }

    /// Deletes the minute buckets more than [`MINUTES_KEPT`] minutes older than the newest one
    /// applied (capped at the current minute), using the `minutes` index to find them. A
    /// separate batch after the apply's: a write and a delete of one key must not share a
    /// batch, and a partial expiry is simply finished by the next one.
    fn expire_minutes(&self) -> Result<()> {
        let Some(newest) = self.minutes.last_key_value() else {
            return Ok(());
        };
        let (newest, _) = decode_minute_key(&newest.key().map_err(read_err("minutes"))?)?;
        let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
        let now = i64::try_from(now.as_secs() / 60).unwrap_or(i64::MAX);
        let cutoff = minute_key(newest.min(now).saturating_sub(MINUTES_KEPT), "");

        let mut batch = self.db.batch().durability(Some(PersistMode::Buffer));
        for entry in self.minutes.range(..cutoff) {
            let key = entry.key().map_err(read_err("minutes"))?;
            let (index, site) = decode_minute_key(&key)?;
            let bucket = Bucket { grain: Grain::Minute, index };
            let hash_prefixes = [
                field_key(&keys::totals(site, bucket), ""),
                keys::breakdowns_of_bucket(site, bucket).into_bytes(),
            ];
            for prefix in hash_prefixes {
                for entry in self.hashes.prefix(prefix) {
                    batch.remove(&self.hashes, entry.key().map_err(read_err("hashes"))?);
                }
            }
            batch.remove(&self.hlls, keys::unique(site, bucket, &Slice::Total));
            for entry in self.hlls.prefix(keys::uniques_of_bucket(site, bucket)) {
                batch.remove(&self.hlls, entry.key().map_err(read_err("hlls"))?);
            }
            batch.remove(&self.minutes, key);
        }
        batch.commit().map_err(write_err("expiring minute buckets"))
    }

    fn applied_offset(&self) -> Result<Option<u64>> {
        match get(&self.meta, keys::APPLIED.as_bytes())? {
            Some(value) => parse_offset(keys::APPLIED.as_bytes(), &value).map(Some),
            None => Ok(None),
        }
    }

    fn all_sessions(&self) -> Result<Vec<(SessionKey, SessionRecord)>> {
        self.sessions
            .iter()
            .map(|entry| {
                let (key, value) = entry.into_inner().map_err(read_err("sessions"))?;
                let session = std::str::from_utf8(&key).ok().and_then(keys::parse_session);
                let Some(session) = session else {
                    return Err(StoreError::Corrupt(format!(
                        "{} is not a session key",
                        show_key(&key)
                    )));
                };
                let record = decode_session(&value)
                    .map_err(|e| StoreError::Corrupt(format!("session {}: {e}", show_key(&key))))?;
                Ok((session, record))
            })
            .collect()
    }

    fn totals(&self, site: &str, buckets: &[Bucket]) -> Result<Vec<Counts>> {
        buckets
            .iter()
            .map(|&bucket| {
                let hash = keys::totals(site, bucket);
                let mut counts = Counts::default();
                self.scan_hash(&hash, |field, value| {
                    // A field this version does not know belongs to a newer one; skip it.
                    if let Some(counter) = Counter::from_name(field) {
                        counts.add(counter, parse_counter(hash.as_bytes(), value)?);
                    }
                    Ok(())
                })?;
                Ok(counts)
            })
            .collect()
    }

    fn breakdown(
        &self,
        site: &str,
        buckets: &[Bucket],
        dim: &Dim,
    ) -> Result<Vec<(String, Counts)>> {
        let mut rows: FxHashMap<String, Counts> = FxHashMap::default();
        for &bucket in buckets {
            for &counter in dim.counters() {
                let hash = keys::breakdown(site, bucket, dim, counter);
                self.scan_hash(&hash, |value, count| {
                    let count = parse_counter(hash.as_bytes(), count)?;
                    rows.entry(value.to_owned()).or_default().add(counter, count);
                    Ok(())
                })?;
            }
        }
        Ok(rows.into_iter().filter(|(_, counts)| !counts.is_zero()).collect())
    }

    /// PFCOUNT over the buckets' HyperLogLogs; missing ones count as empty.
    fn unique_count(&self, site: &str, buckets: &[Bucket], slice: &Slice) -> Result<u64> {
        let mut hlls = Vec::new();
        for &bucket in buckets {
            let key = keys::unique(site, bucket, slice);
            if let Some(bytes) = get(&self.hlls, key.as_bytes())? {
                hlls.push(parse_hll(key.as_bytes(), &bytes)?);
            }
        }
        Ok(if hlls.is_empty() { 0 } else { count_union(&hlls) })
    }

    /// Calls `f(field, value)` for each field of a hash.
    fn scan_hash(&self, hash: &str, mut f: impl FnMut(&str, &[u8]) -> Result<()>) -> Result<()> {
        let prefix = field_key(hash, "");
        if !fits(&prefix) {
            return Ok(());
        }
        for entry in self.hashes.prefix(&prefix) {
            let (key, value) = entry.into_inner().map_err(read_err("hashes"))?;
            let field = std::str::from_utf8(&key[prefix.len()..])
                .map_err(|_| StoreError::Corrupt(format!("a field of {hash} is not UTF-8")))?;
            f(field, &value)?;
        }
        Ok(())
    }

    /// Writes one configuration value and syncs it: these are rare, and losing one on power
    /// loss would hurt (lost salts re-key every visitor, a lost API key locks its owner out).
    fn write_synced(&self, ks: &Keyspace, key: Vec<u8>, value: Vec<u8>, what: &str) -> Result<()> {
        let mut batch = self.db.batch().durability(Some(PersistMode::SyncData));
        batch.insert(ks, key, value);
        batch.commit().map_err(write_err(what))
    }
}

/// A [`WriteBatch`] resolved into this backend's keys, owned so that it can move to a blocking
/// thread. Entries are merged per key, so that a batch never writes one key twice.
struct ApplyPlan {
    counters: FxHashMap<Vec<u8>, i64>,
    uniques: FxHashMap<Vec<u8>, Vec<u64>>,
    sessions: Vec<(Vec<u8>, Option<Vec<u8>>)>,
    /// `minutes` index entries for the minute buckets the batch writes.
    minutes: FxHashSet<Vec<u8>>,
    offset: Option<u64>,
}

impl ApplyPlan {
    fn new(batch: &WriteBatch) -> Result<ApplyPlan> {
        let mut minutes = FxHashSet::default();
        let mut note = |site: &str, bucket: Bucket| {
            if bucket.grain == Grain::Minute {
                minutes.insert(minute_key(bucket.index, site));
            }
        };
        let mut counters = FxHashMap::default();
        let mut uniques: FxHashMap<Vec<u8>, Vec<u64>> = FxHashMap::default();
        for (row, delta) in batch.rows() {
            for (counter, delta) in delta.counters() {
                let (hash, field) = keys::counter(row, counter);
                *counters.entry(checked_key(field_key(&hash, &field))?).or_insert(0i64) += delta;
            }
            if !delta.visitors.is_empty() {
                let key = checked_key(keys::unique_of(row).into_bytes())?;
                uniques.entry(key).or_default().extend_from_slice(&delta.visitors);
            }
            note(&row.site, row.bucket);
        }
        let sessions = batch
            .sessions
            .iter()
            .map(|(key, record)| {
                // A struct of integers and strings always serialises.
                let record = record.as_ref().map(encode_session);
                Ok((checked_key(keys::session(key).into_bytes())?, record))
            })
            .collect::<Result<_>>()?;
        Ok(ApplyPlan { counters, uniques, sessions, minutes, offset: batch.offset })
    }
}

fn read_err(keyspace: &'static str) -> impl FnOnce(fjall::Error) -> StoreError {
    move |e| StoreError::Io(format!("reading keyspace `{keyspace}` failed: {e}"))
}

fn write_err(what: &str) -> impl FnOnce(fjall::Error) -> StoreError + '_ {
    move |e| StoreError::Io(format!("{what} failed: {e}"))
}

/// A key fjall can hold; longer ones cannot exist, so reads treat them as missing.
fn fits(key: &[u8]) -> bool {
    key.len() <= MAX_KEY_LEN
}

fn checked_key(key: Vec<u8>) -> Result<Vec<u8>> {
    if fits(&key) {
        Ok(key)
    } else {
        Err(StoreError::Io(format!(
            "cannot store {}: keys are limited to {MAX_KEY_LEN} bytes",
            show_key(&key)
        )))
    }
}

fn get(ks: &Keyspace, key: &[u8]) -> Result<Option<fjall::Slice>> {
    if !fits(key) {
        return Ok(None);
    }
    ks.get(key).map_err(|e| StoreError::Io(format!("reading {} failed: {e}", show_key(key))))
}

/// A key for messages: text, the hash/field separator shown as `|`, cut after 200 bytes.
fn show_key(key: &[u8]) -> String {
    let shown = String::from_utf8_lossy(&key[..key.len().min(200)]).replace('\u{FFFD}', "|");
    if key.len() > 200 { shown + "…" } else { shown }
}

/// The `hashes` key of one field of a hash; with an empty field, the prefix of all its fields.
fn field_key(hash: &str, field: &str) -> Vec<u8> {
    let mut key = Vec::with_capacity(hash.len() + 1 + field.len());
    key.extend_from_slice(hash.as_bytes());
    key.push(FIELD_SEP);
    key.extend_from_slice(field.as_bytes());
    key
}

/// An i64 as big-endian bytes that sort in numeric order (the sign bit flipped).
fn sortable_ts(ts: i64) -> [u8; 8] {
    ((ts as u64) ^ (1 << 63)).to_be_bytes()
}

/// The inverse of [`sortable_ts`].
fn from_sortable_ts(bytes: [u8; 8]) -> i64 {
    (u64::from_be_bytes(bytes) ^ (1 << 63)) as i64
}

fn log_key(site: &str, ts: i64, offset: u64) -> Vec<u8> {
    let mut key = Vec::with_capacity(site.len() + 17);
    write_log_key(&mut key, site, ts, offset);
    key
}

fn write_log_key(key: &mut Vec<u8>, site: &str, ts: i64, offset: u64) {
    key.clear();
    key.extend_from_slice(site.as_bytes());
    key.push(0);
    key.extend_from_slice(&sortable_ts(ts));
    key.extend_from_slice(&offset.to_be_bytes());
}

fn decode_offset(bytes: &[u8]) -> Result<u64> {
    let bytes: [u8; 8] = bytes.try_into().map_err(|_| {
        StoreError::Corrupt(format!("a log offset has {} bytes, not 8", bytes.len()))
    })?;
    Ok(u64::from_be_bytes(bytes))
}

/// An `unapplied` run being written.
#[derive(Default)]
struct RunBuilder {
    start: u64,
    len: usize,
    bytes: Vec<u8>,
}

impl RunBuilder {
    fn reset(&mut self, start: u64) {
        self.bytes.clear();
        self.bytes.push(RUN);
        self.bytes.extend_from_slice(&[0; 4]);
        (self.start, self.len) = (start, 0);
    }

    fn push(&mut self, record: &[u8]) {
        // Records are small (events have size limits), far from 4 GiB.
        self.bytes.extend_from_slice(&(record.len() as u32).to_le_bytes());
        self.bytes.extend_from_slice(record);
        self.len += 1;
    }

    fn write(&mut self, batch: &mut OwnedWriteBatch, unapplied: &Keyspace) {
        self.bytes[1..5].copy_from_slice(&(self.len as u32).to_le_bytes());
        batch.insert(unapplied, self.start.to_be_bytes(), self.bytes.as_slice());
    }
}

/// How many events an `unapplied` value at `start` holds, and the records after that count.
fn run_header(value: &[u8], start: u64) -> Result<(u32, &[u8])> {
    let Some((&RUN, rest)) = value.split_first() else {
        return Err(bad_run(start));
    };
    let (count, records) = rest.split_first_chunk::<4>().ok_or_else(|| bad_run(start))?;
    Ok((u32::from_le_bytes(*count), records))
}

/// How many events an `unapplied` value at `start` holds.
fn run_len(value: &[u8], start: u64) -> Result<u64> {
    run_header(value, start).map(|(count, _)| u64::from(count))
}

/// The records of an `unapplied` value at `start`, in offset order.
fn run_records(value: &[u8], start: u64) -> Result<Vec<&[u8]>> {
    let (count, mut rest) = run_header(value, start)?;
    let mut records = Vec::with_capacity(count as usize);
    for _ in 0..count {
        let (len, after) = rest.split_first_chunk::<4>().ok_or_else(|| bad_run(start))?;
        let len = u32::from_le_bytes(*len) as usize;
        let record = after.get(..len).ok_or_else(|| bad_run(start))?;
        records.push(record);
        rest = &after[len..];
    }
    if rest.is_empty() { Ok(records) } else { Err(bad_run(start)) }
}

fn bad_run(start: u64) -> StoreError {
    StoreError::Corrupt(format!("the unapplied run at offset {start} is truncated or not a run"))
}

fn decode_event(record: &[u8], offset: u64) -> Result<Event> {
    decode_record(record)
        .map_err(|e| StoreError::Corrupt(format!("log record at offset {offset}: {e}")))
}

/// The `minutes` index key: the minute (sortable), then the site.
fn minute_key(index: i64, site: &str) -> Vec<u8> {
    let mut key = sortable_ts(index).to_vec();
    key.extend_from_slice(site.as_bytes());
    key
}

fn decode_minute_key(key: &[u8]) -> Result<(i64, &str)> {
    let corrupt = || StoreError::Corrupt(format!("bad minute index key {}", show_key(key)));
    let (index, site) = key.split_first_chunk::<8>().ok_or_else(corrupt)?;
    let index = from_sortable_ts(*index);
    Ok((index, std::str::from_utf8(site).map_err(|_| corrupt())?))
}

fn parse_offset(key: &[u8], value: &[u8]) -> Result<u64> {
    std::str::from_utf8(value)
        .ok()
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| StoreError::Corrupt(format!("{} is not an offset", show_key(key))))
}

fn parse_counter(key: &[u8], value: &[u8]) -> Result<i64> {
    std::str::from_utf8(value)
        .ok()
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| StoreError::Corrupt(format!("counter {} is not an integer", show_key(key))))
}

fn parse_hll(key: &[u8], bytes: &[u8]) -> Result<Hll> {
    Hll::from_bytes(bytes).map_err(|e| StoreError::Corrupt(format!("{}: {e}", show_key(key))))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_sort_numerically() {
        let ts = [i64::MIN, -86_400_000, -1, 0, 1, 1_795_356_330_000, i64::MAX];
        for pair in ts.windows(2) {
            assert!(sortable_ts(pair[0]) < sortable_ts(pair[1]), "{pair:?}");
            assert!(log_key("a.com", pair[0], 9) < log_key("a.com", pair[1], 0));
        }
        assert!(log_key("a.com", 5, 1) < log_key("a.com", 5, 2));
        for index in ts {
            assert_eq!(decode_minute_key(&minute_key(index, "a.com")).unwrap(), (index, "a.com"));
        }
    }

    #[test]
    fn a_site_log_range_excludes_sites_it_prefixes() {
        // `a.com`'s keys end at the 0x00 separator, before any `a.com.x` key.
        let lo = log_key("a.com", i64::MIN, 0);
        let hi = log_key("a.com", i64::MAX, u64::MAX);
        let other = log_key("a.com.x", 0, 0);
        assert!(!(lo..=hi).contains(&other));
    }

    #[test]
    fn a_hash_prefix_covers_only_its_fields() {
        let prefix = field_key("ff:{a.com}:b:d:2026-11-22:prop:a:pageviews", "");
        let own = field_key("ff:{a.com}:b:d:2026-11-22:prop:a:pageviews", "x:y");
        let longer = field_key("ff:{a.com}:b:d:2026-11-22:prop:a:pageviews:z", "v");
        assert!(own.starts_with(&prefix));
        assert!(!longer.starts_with(&prefix));
    }

    #[test]
    fn overlong_keys_are_refused_with_a_readable_message() {
        let key = field_key("ff:{a.com}:b:d:2026-11-22:page:pageviews", &"x".repeat(70_000));
        let err = checked_key(key).unwrap_err().to_string();
        assert!(err.contains("ff:{a.com}:b:d:2026-11-22:page:pageviews|xxx"), "{err}");
        assert!(err.contains("65535"), "{err}");
        assert!(err.len() < 400);
    }
}
