//! The segments that filtered queries scan ([`footfall_core::scan`]), built from the raw log on
//! first use and kept in memory up to a budget, least recently used first out.
//!
//! A day's segment holds the sessions that started on it, so it is built from the log of the
//! day before (sessions that began the evening before are not its own) to the day after
//! (its sessions run past midnight). It goes stale when events land in that span: this
//! process's pipeline says which site-days it applied events to ([`Segments::note`]). Events
//! that other processes apply (several servers on one Redis) are not seen that way, so a segment
//! whose span reaches into the last [`RECENT_MS`] is also rebuilt once it is older than a
//! moment: [`FRESH_FOR`], or five times what it took to build, whichever is longer, so that a
//! busy site's live filtered view costs at most a sixth of a core.

use std::collections::HashMap;
use std::ops::RangeInclusive;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use footfall_core::scan::{self, Segment};
use footfall_core::site::Site;
use footfall_core::time::{Bucket, SiteClock, civil_from_days, days_from_civil};
use footfall_store::{Store, StoreError};
use jiff::civil::Date;

const DAY_MS: i64 = 86_400_000;
/// How far back from now a segment's span counts as still changing.
const RECENT_MS: i64 = 2 * 3_600_000;
/// How long a recent segment is used before it is rebuilt, at least.
const FRESH_FOR: Duration = Duration::from_secs(2);
/// Default memory budget of the cache.
pub const DEFAULT_BUDGET_BYTES: usize = 512 << 20;

struct Entry {
    segment: Arc<Segment>,
    /// [`Segments::seq`] when its events were read.
    built_seq: u64,
    built_at: Instant,
    build_time: Duration,
    /// The last query that used it, for eviction.
    used: u64,
    bytes: usize,
}

#[derive(Default)]
struct Inner {
    entries: HashMap<(String, i64), Entry>,
    /// Per site and UTC day: the sequence number of the last applied batch with events on it.
    changed: HashMap<String, HashMap<i64, u64>>,
    bytes: usize,
    uses: u64,
}

pub struct Segments {
    inner: Mutex<Inner>,
    seq: AtomicU64,
    timeout_ms: i64,
    budget_bytes: usize,
}

impl Segments {
    /// A cache for sessions cut after `timeout_ms` of inactivity, holding about `budget_bytes`.
    pub fn new(timeout_ms: i64, budget_bytes: usize) -> Segments {
        Segments {
            inner: Mutex::new(Inner::default()),
            seq: AtomicU64::new(0),
            timeout_ms,
            budget_bytes,
        }
    }

    /// Records that a batch with events of these sites at these instants was applied.
    pub fn note<'a>(&self, events: impl IntoIterator<Item = (&'a str, i64)>) {
        let seq = self.seq.fetch_add(1, Ordering::AcqRel) + 1;
        let mut inner = self.inner.lock().expect("segments lock");
        let mut last: Option<(&str, i64)> = None;
        for (site, ts) in events {
            let day = ts.div_euclid(DAY_MS);
            if last == Some((site, day)) {
                continue;
            }
            last = Some((site, day));
            match inner.changed.get_mut(site) {
                Some(days) => {
                    days.insert(day, seq);
                }
                None => {
                    inner.changed.insert(site.to_owned(), HashMap::from([(day, seq)]));
                }
            }
        }
    }

    /// The segments of `days` (local dates of `site`), built from `store` where missing or
    /// stale.
    pub async fn get(
        &self,
        store: &dyn Store,
        site: &Site,
        clock: &SiteClock,
        days: RangeInclusive<Date>,
        now_ms: i64,
    ) -> Result<Vec<Arc<Segment>>, StoreError> {
        let (first, last) = (days_from_civil(*days.start()), days_from_civil(*days.end()));
        let span = |d: i64| {
            let start = clock.start_ms(Bucket::day(civil_from_days(d)));
            let end = clock.start_ms(Bucket::day(civil_from_days(d + 1)));
            (start - DAY_MS, end + DAY_MS)
        };
        let missing: Vec<i64> = {
            let mut inner = self.inner.lock().expect("segments lock");
            inner.uses += 1;
            let uses = inner.uses;
            let Inner { entries, changed, .. } = &mut *inner;
            (first..=last)
                .filter(|&d| {
                    let Some(entry) = entries.get_mut(&(site.domain.clone(), d)) else {
                        return true;
                    };
                    let (from, to) = span(d);
                    let touched = changed.get(&site.domain).is_some_and(|days| {
                        (from.div_euclid(DAY_MS)..=to.div_euclid(DAY_MS))
                            .any(|u| days.get(&u).is_some_and(|&s| s > entry.built_seq))
                    });
                    let ripe = (FRESH_FOR).max(entry.build_time * 5);
                    let stale = to > now_ms - RECENT_MS && entry.built_at.elapsed() > ripe;
                    entry.used = uses;
                    touched || stale
                })
                .collect()
        };
        // Contiguous runs of missing days are read from the log at once.
        let mut runs: Vec<(i64, i64)> = Vec::new();
        for d in missing {
            match runs.last_mut() {
                Some((_, end)) if *end + 1 == d => *end = d,
                _ => runs.push((d, d)),
            }
        }
        for (a, b) in runs {
            let seq = self.seq.load(Ordering::Acquire);
            let started = Instant::now();
            let events = store.scan_log(&site.domain, span(a).0, span(b).1).await?;
            let (clock, timeout) = (clock.clone(), self.timeout_ms);
            let days = civil_from_days(a)..=civil_from_days(b);
            let built =
                tokio::task::spawn_blocking(move || scan::build(&events, &clock, timeout, days))
                    .await
                    .map_err(|e| StoreError::Io(format!("building segments failed: {e}")))?;
            let build_time = started.elapsed();
            metrics::histogram!("footfall_segment_build_seconds").record(build_time.as_secs_f64());
            let mut inner = self.inner.lock().expect("segments lock");
            let used = inner.uses;
            for segment in built {
                let key = (site.domain.clone(), days_from_civil(segment.date));
                let bytes = segment.heap_bytes();
                let entry = Entry {
                    segment: Arc::new(segment),
                    built_seq: seq,
                    built_at: started,
                    build_time,
                    used,
                    bytes,
                };
                inner.bytes += bytes;
                if let Some(old) = inner.entries.insert(key, entry) {
                    inner.bytes -= old.bytes;
                }
            }
        }
        let mut inner = self.inner.lock().expect("segments lock");
        let found: Vec<Arc<Segment>> = (first..=last)
            .filter_map(|d| inner.entries.get(&(site.domain.clone(), d)))
            .map(|e| e.segment.clone())
            .collect();
        inner.evict(self.budget_bytes);
        Ok(found)
    }
}

impl Inner {
    /// Drops the least recently used segments until the budget holds; the ones just used are
    /// held by the caller, so a query larger than the budget still gets its answer.
    fn evict(&mut self, budget: usize) {
        if self.bytes <= budget {
            return;
        }
        let mut by_use: Vec<((String, i64), u64)> =
            self.entries.iter().map(|(k, e)| (k.clone(), e.used)).collect();
        by_use.sort_by_key(|(_, used)| *used);
        for (key, _) in by_use {
            if self.bytes <= budget {
                break;
            }
            if let Some(e) = self.entries.remove(&key) {
                self.bytes -= e.bytes;
            }
        }
    }
}
