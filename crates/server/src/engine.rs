//! The background work of a running server: the pipeline task that tails the raw log and
//! applies write batches, salt rotation at UTC midnight, and raw-log retention.
//!
//! The pipeline reads events back from the log rather than receiving them from the request
//! handlers: recovery after a crash and normal running are then the same code path, and the
//! log's offsets alone decide what has been counted.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use footfall_core::batch::WriteBatch;
use footfall_core::identity::Salts;
use footfall_core::pipeline::Pipeline;
use footfall_store::{Store, StoreError};
use rand::RngExt;
use tokio::sync::watch;

use crate::state::AppState;

/// How the pipeline batches its writes.
#[derive(Clone, Copy, Debug)]
pub struct PipelineOptions {
    /// Longest time between reading an event and applying it, in the absence of load.
    pub flush_interval: Duration,
    /// Most events folded into one write batch.
    pub max_batch_events: usize,
}

impl Default for PipelineOptions {
    fn default() -> PipelineOptions {
        PipelineOptions { flush_interval: Duration::from_millis(200), max_batch_events: 20_000 }
    }
}

/// How often idle sessions are looked for.
const EVICT_EVERY: Duration = Duration::from_secs(10);

/// Most events read and folded at once. Reads of recent events are served from memory and do
/// not wait, so the task yields between chunks: folding a backlog must not hold a runtime
/// thread that request handlers need.
const FOLD_CHUNK: usize = 1024;

pub fn now_ms() -> i64 {
    jiff::Timestamp::now().as_millisecond()
}

/// Runs the pipeline until `stop` turns true, then applies every event appended so far and
/// returns.
pub async fn run_pipeline(
    state: Arc<AppState>,
    options: PipelineOptions,
    mut stop: watch::Receiver<bool>,
) -> Result<(), StoreError> {
    let store = state.store.clone();
    // A shared store may be away as the server starts: wait for it, collecting meanwhile.
    let load = || async { Ok((store.sessions().await?, store.applied_offset().await?)) };
    let (sessions, mut folded) = retrying("loading the pipeline's state", &stop, load).await?;
    let mut generation = state.sites_generation.load(Ordering::Acquire);
    let mut pipeline = Pipeline::new(state.config.session_timeout_ms, &state.all_sites(), sessions);
    let mut last_evict = Instant::now();
    tracing::info!(after = ?folded, sessions = pipeline.active_sessions(), "pipeline started");
    let mut batch = WriteBatch::default();
    // The site-days of the batch's events, for the segments they make stale.
    let mut touched: Vec<(Arc<str>, i64)> = Vec::new();

    loop {
        let g = state.sites_generation.load(Ordering::Acquire);
        if g != generation {
            generation = g;
            for site in state.all_sites() {
                pipeline.set_site(&site);
            }
        }

        batch.clear();
        touched.clear();
        let deadline = Instant::now() + options.flush_interval;
        let stopping = loop {
            let room = options.max_batch_events - batch.events as usize;
            let wanted = room.min(FOLD_CHUNK);
            // A shared store that is down: appends wait in its spill meanwhile.
            let read = || store.unapplied(folded, wanted);
            let events = retrying("reading the log", &stop, read).await?;
            for (offset, event) in &events {
                let day = event.ts.div_euclid(86_400_000);
                let seen =
                    |(s, t): &(Arc<str>, i64)| t.div_euclid(86_400_000) == day && *s == event.site;
                if !touched.last().is_some_and(seen) {
                    touched.push((event.site.clone(), event.ts));
                }
                pipeline.fold(*offset, event, &mut batch);
                folded = Some(*offset);
            }
            let now = Instant::now();
            if batch.events as usize >= options.max_batch_events || now >= deadline {
                break false;
            }
            // A clean stop drains the log first, so nothing acknowledged waits for a restart.
            if *stop.borrow() && events.is_empty() {
                break true;
            }
            if events.len() == wanted || *stop.borrow() {
                tokio::task::yield_now().await;
            } else {
                tokio::select! {
                    () = store.wait_for_append(folded, deadline - now) => {}
                    _ = stop.changed() => {}
                }
            }
        };

        if last_evict.elapsed() >= EVICT_EVERY {
            last_evict = Instant::now();
            let ended = pipeline.evict_idle(now_ms(), &mut batch);
            metrics::counter!("footfall_sessions_ended_total").increment(ended as u64);
        }
        pipeline.finish(&mut batch);
        metrics::gauge!("footfall_active_sessions").set(pipeline.active_sessions() as f64);
        if !batch.is_empty() {
            let _applying = state.rollups.write().await;
            apply_until_done(store.as_ref(), &batch, &stop).await?;
            state.segments.note(touched.iter().map(|(site, ts)| (&**site, *ts)));
        }
        if stopping {
            tracing::info!(applied = ?folded, "pipeline stopped");
            return Ok(());
        }
    }
}

/// Applies a batch, retrying while the store fails: the folded in-memory state is already ahead
/// of the store, so the batch must land before anything else is folded.
async fn apply_until_done(
    store: &dyn Store,
    batch: &WriteBatch,
    stop: &watch::Receiver<bool>,
) -> Result<(), StoreError> {
    let started = Instant::now();
    retrying("applying a write batch", stop, || store.apply(batch)).await?;
    metrics::histogram!("footfall_store_apply_seconds").record(started.elapsed().as_secs_f64());
    metrics::counter!("footfall_events_processed_total").increment(batch.events);
    if let Some(offset) = batch.offset {
        metrics::gauge!("footfall_pipeline_applied_offset").set(offset as f64);
    }
    Ok(())
}

/// Runs `op` until it succeeds, backing off while the store fails. On the way out (`stop`), it
/// gives up instead: what is not done is redone from the log at the next start.
async fn retrying<T, F>(
    what: &str,
    stop: &watch::Receiver<bool>,
    mut op: impl FnMut() -> F,
) -> Result<T, StoreError>
where
    F: Future<Output = Result<T, StoreError>>,
{
    let mut backoff = Duration::from_millis(50);
    loop {
        match op().await {
            Ok(done) => return Ok(done),
            Err(e) if *stop.borrow() => return Err(e),
            Err(e) => {
                tracing::warn!(error = %e, retry_in = ?backoff, "{what} failed");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(5));
            }
        }
    }
}

/// Re-reads the sites from the store every `every` until `stop`, so that sites added or changed
/// by another process (a command, on a shared store) are collected and sessionized at once.
pub async fn refresh_sites(state: Arc<AppState>, every: Duration, mut stop: watch::Receiver<bool>) {
    loop {
        tokio::select! {
            () = tokio::time::sleep(every) => {}
            _ = stop.changed() => return,
        }
        match state.store.sites().await {
            Ok(sites) => state.refresh_sites(sites),
            Err(e) => tracing::warn!(error = %e, "re-reading the sites failed"),
        }
    }
}

/// The persisted salts, rotated for today, or fresh ones on first start.
pub async fn load_salts(store: &dyn Store) -> Result<Salts, StoreError> {
    let now = now_ms();
    let salts = match store.salts().await? {
        Some(mut salts) => {
            if salts.rotate(now, rand::rng().random()) {
                store.put_salts(&salts).await?;
            }
            salts
        }
        None => {
            let salts = Salts::new(now, rand::rng().random());
            store.put_salts(&salts).await?;
            salts
        }
    };
    Ok(salts)
}

/// Rotates the salts at each UTC midnight until `stop`. The new salt is persisted before it is
/// used, so a restart never mints a second salt for the same day.
pub async fn rotate_salts(state: Arc<AppState>, mut stop: watch::Receiver<bool>) {
    loop {
        let wait = Duration::from_millis(Salts::until_rotation(now_ms()) as u64 + 50);
        tokio::select! {
            () = tokio::time::sleep(wait) => {}
            _ = stop.changed() => return,
        }
        let mut next = state.salts.read().expect("salts lock").clone();
        if next.rotate(now_ms(), rand::rng().random()) {
            match state.store.put_salts(&next).await {
                Ok(()) => *state.salts.write().expect("salts lock") = next,
                Err(e) => tracing::error!(error = %e, "could not persist the rotated salt"),
            }
        }
    }
}

/// Trims the raw log to `days` days, hourly, until `stop`.
pub async fn enforce_retention(state: Arc<AppState>, days: u32, mut stop: watch::Receiver<bool>) {
    loop {
        let before = now_ms() - i64::from(days) * 86_400_000;
        match state.store.trim_log(before).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(events = n, days, "trimmed the raw event log"),
            Err(e) => tracing::warn!(error = %e, "trimming the raw event log failed"),
        }
        tokio::select! {
            () = tokio::time::sleep(Duration::from_secs(3600)) => {}
            _ = stop.changed() => return,
        }
    }
}
