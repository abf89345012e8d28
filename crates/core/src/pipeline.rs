//! The pipeline: folds events, in log order, into sessions and rollup deltas.
//!
//! A session's visit metrics (visit, bounce, duration, entry and exit page) belong to the
//! bucket where it started and are corrected as it grows, so rollups are right at every moment,
//! not only after the session ends. Each event compares what the session contributed before
//! and after it and writes the difference: a second pageview takes the bounce back, the exit
//! page moves from one breakdown row to the next, the duration lengthens.

use std::sync::Arc;

use rustc_hash::{FxHashMap, FxHashSet};

use crate::batch::{
    Counter, CounterId, Dim, SessionKey, SessionRecord, Slice, UniqueId, WriteBatch,
};
use crate::event::Event;
use crate::site::Site;
use crate::time::{Bucket, Grain, SiteClock};

/// How long a visitor may be idle before the next event starts a new session.
pub const DEFAULT_SESSION_TIMEOUT_MS: i64 = 30 * 60_000;

/// The source and referrer of sessions that came with neither, named as Plausible names them.
pub const DIRECT: &str = "Direct / None";

/// How long past its timeout a session is kept in memory, for events that arrive late
/// (browser clocks, retries, slow networks).
const EVICTION_GRACE_MS: i64 = 5 * 60_000;

/// Where a session came from; fixed for the session's life.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
struct Attribution {
    source: Option<Arc<str>>,
    referrer: Option<Arc<str>>,
    utm_source: Option<Arc<str>>,
    utm_medium: Option<Arc<str>>,
    utm_campaign: Option<Arc<str>>,
}

impl Attribution {
    fn dims(&self) -> [(Dim, Option<&Arc<str>>); 5] {
        [
            (Dim::Source, self.source.as_ref()),
            (Dim::Referrer, self.referrer.as_ref()),
            (Dim::UtmSource, self.utm_source.as_ref()),
            (Dim::UtmMedium, self.utm_medium.as_ref()),
            (Dim::UtmCampaign, self.utm_campaign.as_ref()),
        ]
    }
}

/// A live session. Strings are shared with the interner, so a session costs about a hundred
/// bytes however long its pages' names are.
#[derive(Clone, Debug)]
struct Session {
    start: i64,
    last: i64,
    pageviews: u32,
    events: u32,
    entry: Option<Arc<str>>,
    exit: Option<Arc<str>>,
    attribution: Arc<Attribution>,
    hint: Option<u64>,
    /// Whether an event arrived since the last eviction pass: a session being fed, even with
    /// old timestamps (a backfill), is never evicted from under its next event.
    touched: bool,
}

/// What a session adds to the counters of its start bucket.
#[derive(Clone, Copy, Default)]
struct Contribution {
    visits: i64,
    bounces: i64,
    duration: i64,
    pageviews: i64,
    events: i64,
}

impl Contribution {
    fn of(s: &Session) -> Contribution {
        Contribution {
            visits: 1,
            bounces: i64::from(s.pageviews == 1),
            duration: s.last - s.start,
            pageviews: i64::from(s.pageviews),
            events: i64::from(s.events),
        }
    }

    fn counters(self) -> [(Counter, i64); 5] {
        [
            (Counter::Visits, self.visits),
            (Counter::Bounces, self.bounces),
            (Counter::Duration, self.duration),
            (Counter::Pageviews, self.pageviews),
            (Counter::Events, self.events),
        ]
    }

    fn minus(self, o: Contribution) -> Contribution {
        Contribution {
            visits: self.visits - o.visits,
            bounces: self.bounces - o.bounces,
            duration: self.duration - o.duration,
            pageviews: self.pageviews - o.pageviews,
            events: self.events - o.events,
        }
    }

    fn negated(self) -> Contribution {
        Contribution::default().minus(self)
    }
}

/// A session as it was before an event changed it.
struct Before {
    contribution: Contribution,
    entry: Option<Arc<str>>,
    exit: Option<Arc<str>>,
}

/// Shares strings between sessions and batch keys; pruned of strings nothing else holds.
#[derive(Default)]
struct Interner {
    strings: FxHashSet<Arc<str>>,
    attributions: FxHashSet<Arc<Attribution>>,
}

impl Interner {
    fn str(&mut self, s: &str) -> Arc<str> {
        if let Some(a) = self.strings.get(s) {
            return a.clone();
        }
        let a: Arc<str> = Arc::from(s);
        self.strings.insert(a.clone());
        a
    }

    fn opt(&mut self, s: Option<&str>) -> Option<Arc<str>> {
        s.filter(|s| !s.is_empty()).map(|s| self.str(s))
    }

    fn attribution(&mut self, a: Attribution) -> Arc<Attribution> {
        if let Some(a) = self.attributions.get(&a) {
            return a.clone();
        }
        let a = Arc::new(a);
        self.attributions.insert(a.clone());
        a
    }

    fn prune(&mut self) {
        self.attributions.retain(|a| Arc::strong_count(a) > 1);
        self.strings.retain(|s| Arc::strong_count(s) > 1);
    }
}

/// Folds events into a [`WriteBatch`], keeping live sessions in memory.
pub struct Pipeline {
    timeout_ms: i64,
    clocks: FxHashMap<Arc<str>, SiteClock>,
    sessions: FxHashMap<SessionKey, Session>,
    /// Sessions changed since the last [`Pipeline::finish`].
    dirty: FxHashSet<SessionKey>,
    interner: Interner,
}

impl Pipeline {
    /// A pipeline for `sites` that continues the persisted `sessions`.
    pub fn new(
        timeout_ms: i64,
        sites: &[Site],
        sessions: impl IntoIterator<Item = (SessionKey, SessionRecord)>,
    ) -> Pipeline {
        let mut p = Pipeline {
            timeout_ms,
            clocks: FxHashMap::default(),
            sessions: FxHashMap::default(),
            dirty: FxHashSet::default(),
            interner: Interner::default(),
        };
        for site in sites {
            p.set_site(site);
        }
        for (key, record) in sessions {
            let key = SessionKey { site: p.interner.str(&key.site), visitor: key.visitor };
            let session = p.session_from_record(record);
            p.sessions.insert(key, session);
        }
        p
    }

    /// Registers a site, or updates its timezone.
    pub fn set_site(&mut self, site: &Site) {
        let clock = site.clock().unwrap_or_else(|_| SiteClock::utc());
        let name = self.interner.str(&site.domain);
        self.clocks.insert(name, clock);
    }

    pub fn active_sessions(&self) -> usize {
        self.sessions.len()
    }

    /// Folds one event, read from the raw log at `offset`, into `batch`.
    pub fn fold(&mut self, offset: u64, event: &Event, batch: &mut WriteBatch) {
        batch.offset = Some(offset);
        batch.events += 1;
        let site = self.interner.str(&event.site);
        let clock = match self.clocks.get(&site) {
            Some(c) => c.clone(),
            // Events are validated against registered sites; a site removed since is
            // still counted, on UTC days.
            None => self.clocks.entry(site.clone()).or_insert_with(SiteClock::utc).clone(),
        };
        let key = self.session_key(&site, event);
        let visitor = key.visitor;
        let pageview = event.is_pageview();
        let page = self.interner.str(&event.page);

        let (start, before) = match self.sessions.get_mut(&key) {
            Some(s) if continues(s, event, self.timeout_ms) => {
                let before = Before {
                    contribution: Contribution::of(s),
                    entry: s.entry.clone(),
                    exit: s.exit.clone(),
                };
                // An event a little older than the session's start (clock skew) joins it
                // without moving the start, so the session stays in its bucket.
                s.last = s.last.max(event.ts);
                s.events += 1;
                s.touched = true;
                if pageview {
                    s.pageviews += 1;
                    s.entry.get_or_insert_with(|| page.clone());
                    s.exit = Some(page.clone());
                }
                (s.start, Some(before))
            }
            _ => {
                let session = self.new_session(event, pageview, &page);
                let start = session.start;
                self.sessions.insert(key.clone(), session);
                (start, None)
            }
        };
        let session = &self.sessions[&key];
        emit_session(batch, &site, &clock, start, visitor, before, session);
        self.dirty.insert(key);

        emit_event(batch, &site, &clock, event, visitor, &page, &mut self.interner);
    }

    /// Moves the sessions changed since the last call into `batch`, to be persisted with it.
    pub fn finish(&mut self, batch: &mut WriteBatch) {
        for key in self.dirty.drain() {
            let record = self.sessions.get(&key).map(record_of);
            batch.sessions.insert(key, record);
        }
    }

    /// Forgets sessions idle for longer than the timeout (plus a grace for late events) at
    /// `now_ms` that received nothing since the previous pass, deleting them from the store
    /// with `batch`. Returns how many ended.
    pub fn evict_idle(&mut self, now_ms: i64, batch: &mut WriteBatch) -> usize {
        let horizon = now_ms - self.timeout_ms - EVICTION_GRACE_MS;
        let before = self.sessions.len();
        self.sessions.retain(|key, s| {
            let keep = std::mem::take(&mut s.touched) || s.last >= horizon;
            if !keep {
                batch.sessions.insert(key.clone(), None);
            }
            keep
        });
        let evicted = before - self.sessions.len();
        if evicted > 0 {
            self.dirty.retain(|k| batch.sessions.get(k).is_none_or(Option::is_some));
            self.interner.prune();
        }
        evicted
    }

    /// The session an event belongs to. An anonymous visitor's id changes when the salt
    /// rotates at midnight; a session still open under yesterday's id is continued under it.
    fn session_key(&mut self, site: &Arc<str>, event: &Event) -> SessionKey {
        let current = SessionKey { site: site.clone(), visitor: event.visitor };
        if let Some(prev) = event.prev_visitor {
            let live = |k: &SessionKey| {
                self.sessions.get(k).is_some_and(|s| continues(s, event, self.timeout_ms))
            };
            let previous = SessionKey { site: site.clone(), visitor: prev };
            if !live(&current) && live(&previous) {
                return previous;
            }
        }
        current
    }

    fn new_session(&mut self, event: &Event, pageview: bool, page: &Arc<str>) -> Session {
        let i = &mut self.interner;
        let attribution = Attribution {
            source: Some(i.str(event.source.as_deref().unwrap_or(DIRECT))),
            referrer: Some(i.str(event.referrer.as_deref().unwrap_or(DIRECT))),
            utm_source: i.opt(event.utm_source.as_deref()),
            utm_medium: i.opt(event.utm_medium.as_deref()),
            utm_campaign: i.opt(event.utm_campaign.as_deref()),
        };
        Session {
            start: event.ts,
            last: event.ts,
            pageviews: u32::from(pageview),
            events: 1,
            entry: pageview.then(|| page.clone()),
            exit: pageview.then(|| page.clone()),
            attribution: i.attribution(attribution),
            hint: event.session_hint,
            touched: true,
        }
    }

    fn session_from_record(&mut self, r: SessionRecord) -> Session {
        let i = &mut self.interner;
        let attribution = Attribution {
            source: i.opt(r.source.as_deref()),
            referrer: i.opt(r.referrer.as_deref()),
            utm_source: i.opt(r.utm_source.as_deref()),
            utm_medium: i.opt(r.utm_medium.as_deref()),
            utm_campaign: i.opt(r.utm_campaign.as_deref()),
        };
        Session {
            start: r.start,
            last: r.last,
            pageviews: r.pageviews,
            events: r.events,
            entry: i.opt(r.entry.as_deref()),
            exit: i.opt(r.exit.as_deref()),
            attribution: i.attribution(attribution),
            hint: r.hint,
            touched: false,
        }
    }
}

/// Whether `event` continues session `s`: within the inactivity timeout of its last event (or
/// just before its start) and not under a different client-supplied session id.
fn continues(s: &Session, event: &Event, timeout_ms: i64) -> bool {
    let in_time = event.ts <= s.last + timeout_ms && event.ts >= s.start - timeout_ms;
    let same_hint = match (s.hint, event.session_hint) {
        (Some(a), Some(b)) => a == b,
        _ => true,
    };
    in_time && same_hint
}

fn record_of(s: &Session) -> SessionRecord {
    let a = &s.attribution;
    let owned = |v: &Option<Arc<str>>| v.as_deref().map(str::to_owned);
    SessionRecord {
        start: s.start,
        last: s.last,
        pageviews: s.pageviews,
        events: s.events,
        entry: owned(&s.entry),
        exit: owned(&s.exit),
        source: owned(&a.source),
        referrer: owned(&a.referrer),
        utm_source: owned(&a.utm_source),
        utm_medium: owned(&a.utm_medium),
        utm_campaign: owned(&a.utm_campaign),
        hint: s.hint,
    }
}

const GRAINS: [Grain; 3] = [Grain::Minute, Grain::Hour, Grain::Day];

fn buckets(clock: &SiteClock, ts: i64) -> [Bucket; 3] {
    GRAINS.map(|g| clock.bucket(ts, g))
}

/// Counters of the event itself, in the buckets of the event's own time.
fn emit_event(
    batch: &mut WriteBatch,
    site: &Arc<str>,
    clock: &SiteClock,
    event: &Event,
    visitor: u64,
    page: &Arc<str>,
    interner: &mut Interner,
) {
    let pageviews = i64::from(event.is_pageview());
    let [minute, hour, day] = buckets(clock, event.ts);
    let count = |batch: &mut WriteBatch, bucket: Bucket, slice: Slice| {
        let counter = |counter| CounterId { site: site.clone(), bucket, slice: slice.clone(), counter };
        batch.incr(counter(Counter::Events), 1);
        batch.incr(counter(Counter::Pageviews), pageviews);
        batch.add_unique(UniqueId { site: site.clone(), bucket, slice }, visitor);
    };
    for bucket in [minute, hour, day] {
        count(batch, bucket, Slice::Total);
    }
    // Breakdowns are kept per day: finer ones come from scanning the raw log.
    count(batch, day, Slice::By(Dim::Page, page.clone()));
    count(batch, day, Slice::By(Dim::EventName, interner.str(&event.name)));
    for (name, value) in &event.props {
        count(batch, day, Slice::By(Dim::Prop(interner.str(name)), interner.str(value)));
    }
}

/// The change an event made to its session's contribution, in the session's start buckets.
fn emit_session(
    batch: &mut WriteBatch,
    site: &Arc<str>,
    clock: &SiteClock,
    start: i64,
    visitor: u64,
    before: Option<Before>,
    after: &Session,
) {
    let now = Contribution::of(after);
    let was = before.as_ref().map_or(Contribution::default(), |b| b.contribution);
    let delta = now.minus(was);
    let [minute, hour, day] = buckets(clock, start);

    for bucket in [minute, hour, day] {
        for (counter, d) in delta.counters() {
            // Pageviews and events of the totals are counted per event, in its own bucket.
            if matches!(counter, Counter::Visits | Counter::Bounces | Counter::Duration) {
                batch.incr(CounterId { site: site.clone(), bucket, slice: Slice::Total, counter }, d);
            }
        }
    }

    let (entry_was, exit_was) = match &before {
        Some(b) => (b.entry.as_ref(), b.exit.as_ref()),
        None => (None, None),
    };
    let attribution = after.attribution.dims().map(|(dim, v)| {
        let was = if before.is_some() { v } else { None };
        (dim, was, v)
    });
    let paged = [
        (Dim::EntryPage, entry_was, after.entry.as_ref()),
        (Dim::ExitPage, exit_was, after.exit.as_ref()),
    ];
    for (dim, old, new) in paged.into_iter().chain(attribution) {
        let mut row = |value: &Arc<str>, c: Contribution| {
            for (counter, d) in c.counters() {
                let slice = Slice::By(dim.clone(), value.clone());
                batch.incr(CounterId { site: site.clone(), bucket: day, slice, counter }, d);
            }
        };
        match (old, new) {
            (Some(o), Some(n)) if o == n => row(n, delta),
            _ => {
                if let Some(o) = old {
                    row(o, was.negated());
                }
                if let Some(n) = new {
                    row(n, now);
                    let slice = Slice::By(dim.clone(), n.clone());
                    batch.add_unique(UniqueId { site: site.clone(), bucket: day, slice }, visitor);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, BTreeSet};

    use super::*;
    use crate::event::PAGEVIEW;

    const T0: i64 = 1_795_356_000_000; // 2026-11-22T14:00:00Z
    const MIN: i64 = 60_000;

    fn ev(visitor: u64, ts: i64, name: &str, page: &str) -> Event {
        Event {
            site: "a.com".into(),
            ts,
            name: name.into(),
            visitor,
            prev_visitor: None,
            user_id: None,
            session_hint: None,
            page: page.into(),
            referrer: None,
            source: None,
            utm_source: None,
            utm_medium: None,
            utm_campaign: None,
            props: vec![],
            screen_width: None,
        }
    }

    fn pv(visitor: u64, ts: i64, page: &str) -> Event {
        ev(visitor, ts, PAGEVIEW, page)
    }

    /// Sums batches as a store would: counters by (bucket label, slice, counter), unique
    /// visitors as exact sets.
    #[derive(Default)]
    struct Ledger {
        counters: BTreeMap<(String, String, &'static str), i64>,
        uniques: BTreeMap<(String, String), BTreeSet<u64>>,
        sessions: BTreeMap<u64, SessionRecord>,
    }

    fn slice_name(s: &Slice) -> String {
        match s {
            Slice::Total => "total".into(),
            Slice::By(d, v) => format!("{d}={v}"),
        }
    }

    impl Ledger {
        fn apply(&mut self, b: WriteBatch) {
            for (id, d) in b.counters {
                let k = (id.bucket.label(), slice_name(&id.slice), id.counter.name());
                *self.counters.entry(k).or_default() += d;
            }
            for (id, vs) in b.uniques {
                let k = (id.bucket.label(), slice_name(&id.slice));
                self.uniques.entry(k).or_default().extend(vs);
            }
            for (k, r) in b.sessions {
                match r {
                    Some(r) => self.sessions.insert(k.visitor, r),
                    None => self.sessions.remove(&k.visitor),
                };
            }
        }

        fn get(&self, bucket: &str, slice: &str, counter: &str) -> i64 {
            self.counters
                .iter()
                .find(|((b, s, c), _)| b == bucket && s == slice && *c == counter)
                .map_or(0, |(_, v)| *v)
        }

        fn visitors(&self, bucket: &str, slice: &str) -> usize {
            self.uniques.get(&(bucket.into(), slice.into())).map_or(0, BTreeSet::len)
        }
    }

    fn site(tz: &str) -> Site {
        Site::new("a.com", tz, false).unwrap()
    }

    /// Folds each event in its own batch, as the store would see many small flushes.
    fn run(p: &mut Pipeline, events: &[Event], ledger: &mut Ledger) {
        for (i, e) in events.iter().enumerate() {
            let mut b = WriteBatch::default();
            p.fold(i as u64, e, &mut b);
            p.finish(&mut b);
            ledger.apply(b);
        }
    }

    const DAY: &str = "2026-11-22";

    #[test]
    fn a_single_pageview_is_a_bounced_visit() {
        let mut p = Pipeline::new(DEFAULT_SESSION_TIMEOUT_MS, &[site("UTC")], []);
        let mut l = Ledger::default();
        run(&mut p, &[pv(1, T0, "/")], &mut l);
        for bucket in [DAY, "2026-11-22T14", "2026-11-22T14:00"] {
            assert_eq!(l.get(bucket, "total", "pageviews"), 1);
            assert_eq!(l.get(bucket, "total", "events"), 1);
            assert_eq!(l.get(bucket, "total", "visits"), 1);
            assert_eq!(l.get(bucket, "total", "bounces"), 1);
            assert_eq!(l.get(bucket, "total", "duration"), 0);
            assert_eq!(l.visitors(bucket, "total"), 1);
        }
        assert_eq!(l.get(DAY, "entry_page=/", "visits"), 1);
        assert_eq!(l.get(DAY, "exit_page=/", "bounces"), 1);
        assert_eq!(l.get(DAY, "source=Direct / None", "visits"), 1);
        assert_eq!(l.get(DAY, "referrer=Direct / None", "visits"), 1);
        assert_eq!(l.get(DAY, "page=/", "pageviews"), 1);
        assert_eq!(l.get(DAY, "name=pageview", "events"), 1);
    }

    #[test]
    fn a_growing_session_corrects_its_start_bucket() {
        let mut p = Pipeline::new(DEFAULT_SESSION_TIMEOUT_MS, &[site("UTC")], []);
        let mut l = Ledger::default();
        // 13:58 /, 14:05 /pricing, 14:20 signup (custom) on /pricing. One session from 13:58.
        let events = [
            pv(1, T0 - 2 * MIN, "/"),
            pv(1, T0 + 5 * MIN, "/pricing"),
            ev(1, T0 + 20 * MIN, "signup", "/pricing"),
        ];
        run(&mut p, &events, &mut l);
        let h13 = "2026-11-22T13";
        assert_eq!(l.get(h13, "total", "visits"), 1);
        assert_eq!(l.get(h13, "total", "bounces"), 0, "the second pageview took the bounce back");
        assert_eq!(l.get(h13, "total", "duration"), 22 * MIN, "custom events lengthen it");
        assert_eq!(l.get(h13, "total", "pageviews"), 1, "pageviews count in their own hour");
        assert_eq!(l.get("2026-11-22T14", "total", "pageviews"), 1);
        assert_eq!(l.get("2026-11-22T14", "total", "events"), 2);
        assert_eq!(l.get("2026-11-22T14", "total", "visits"), 0);
        assert_eq!(l.get(DAY, "total", "events"), 3);
        // The exit page moved from / to /pricing: / keeps nothing.
        for c in ["visits", "bounces", "duration", "pageviews", "events"] {
            assert_eq!(l.get(DAY, "exit_page=/", c), 0, "{c}");
        }
        assert_eq!(l.get(DAY, "exit_page=/pricing", "visits"), 1);
        assert_eq!(l.get(DAY, "exit_page=/pricing", "pageviews"), 2);
        assert_eq!(l.get(DAY, "exit_page=/pricing", "events"), 3);
        assert_eq!(l.get(DAY, "entry_page=/", "duration"), 22 * MIN);
        assert_eq!(l.get(DAY, "entry_page=/pricing", "visits"), 0);
        assert_eq!(l.get(DAY, "page=/pricing", "pageviews"), 1);
        assert_eq!(l.get(DAY, "page=/pricing", "events"), 2);
        assert_eq!(l.get(DAY, "name=signup", "events"), 1);
        assert_eq!(l.get(DAY, "name=signup", "pageviews"), 0);
        let s = &l.sessions[&1];
        assert_eq!((s.pageviews, s.events, s.exit.as_deref()), (2, 3, Some("/pricing")));
    }

    #[test]
    fn thirty_minutes_of_inactivity_ends_a_session() {
        let mut p = Pipeline::new(DEFAULT_SESSION_TIMEOUT_MS, &[site("UTC")], []);
        let mut l = Ledger::default();
        let events = [pv(1, T0, "/"), pv(1, T0 + 30 * MIN, "/a"), pv(1, T0 + 61 * MIN, "/b")];
        run(&mut p, &events, &mut l);
        // Exactly 30 minutes still continues; 31 minutes later does not.
        assert_eq!(l.get(DAY, "total", "visits"), 2);
        assert_eq!(l.get(DAY, "total", "bounces"), 1);
        assert_eq!(l.get(DAY, "total", "duration"), 30 * MIN);
        assert_eq!(l.get(DAY, "entry_page=/b", "bounces"), 1);
        assert_eq!(l.visitors(DAY, "total"), 1);
    }

    #[test]
    fn a_session_crosses_midnight_in_its_start_day() {
        let mut p = Pipeline::new(DEFAULT_SESSION_TIMEOUT_MS, &[site("UTC")], []);
        let mut l = Ledger::default();
        let midnight = T0 + 10 * 60 * MIN; // 2026-11-23T00:00Z
        let mut after = pv(2, midnight + 5 * MIN, "/b");
        after.prev_visitor = Some(1); // the salt rotated; yesterday's id was 1
        run(&mut p, &[pv(1, midnight - 10 * MIN, "/a"), after], &mut l);
        assert_eq!(l.get(DAY, "total", "visits"), 1);
        assert_eq!(l.get(DAY, "total", "bounces"), 0);
        assert_eq!(l.get(DAY, "total", "duration"), 15 * MIN);
        assert_eq!(l.get("2026-11-23", "total", "visits"), 0);
        assert_eq!(l.get("2026-11-23", "total", "pageviews"), 1);
        assert_eq!(l.uniques[&("2026-11-23".into(), "total".into())], BTreeSet::from([1]));
        assert_eq!(l.sessions.keys().collect::<Vec<_>>(), [&1]);
    }

    #[test]
    fn a_new_id_after_midnight_without_an_open_session_starts_fresh() {
        let mut p = Pipeline::new(DEFAULT_SESSION_TIMEOUT_MS, &[site("UTC")], []);
        let mut l = Ledger::default();
        let mut e = pv(2, T0, "/");
        e.prev_visitor = Some(1);
        run(&mut p, &[e], &mut l);
        assert_eq!(l.sessions.keys().collect::<Vec<_>>(), [&2]);
    }

    #[test]
    fn sessions_use_the_site_timezone_for_their_day() {
        let mut p = Pipeline::new(DEFAULT_SESSION_TIMEOUT_MS, &[site("Asia/Tokyo")], []);
        let mut l = Ledger::default();
        // 14:00Z is 23:00 in Tokyo; 15:10Z is 00:10 the next day there.
        run(&mut p, &[pv(1, T0, "/"), pv(1, T0 + 70 * MIN, "/x")], &mut l);
        // 70 minutes apart: two sessions, each in the local day it started.
        assert_eq!(l.get("2026-11-22", "total", "visits"), 1);
        assert_eq!(l.get("2026-11-23", "total", "visits"), 1);
        assert_eq!(l.get("2026-11-23", "total", "pageviews"), 1);
        assert_eq!(l.get("2026-11-22T23", "total", "pageviews"), 1);
    }

    #[test]
    fn attribution_is_fixed_per_session_and_carries_its_totals() {
        let mut p = Pipeline::new(DEFAULT_SESSION_TIMEOUT_MS, &[site("UTC")], []);
        let mut l = Ledger::default();
        let mut first = pv(1, T0, "/");
        first.source = Some("Google".into());
        first.utm_campaign = Some("fall".into());
        let mut second = pv(1, T0 + MIN, "/b");
        second.source = Some("Bing".into()); // ignored: the session came from Google
        run(&mut p, &[first, second], &mut l);
        assert_eq!(l.get(DAY, "source=Google", "visits"), 1);
        assert_eq!(l.get(DAY, "source=Google", "pageviews"), 2);
        assert_eq!(l.get(DAY, "source=Google", "bounces"), 0);
        assert_eq!(l.get(DAY, "source=Google", "duration"), MIN);
        assert_eq!(l.get(DAY, "utm_campaign=fall", "visits"), 1);
        assert_eq!(l.get(DAY, "source=Bing", "visits"), 0);
        assert_eq!(l.get(DAY, "source=Direct / None", "visits"), 0);
        assert_eq!(l.visitors(DAY, "source=Google"), 1);
    }

    #[test]
    fn props_and_custom_only_sessions() {
        let mut p = Pipeline::new(DEFAULT_SESSION_TIMEOUT_MS, &[site("UTC")], []);
        let mut l = Ledger::default();
        let mut e = ev(1, T0, "signup", "/join");
        e.props = vec![("plan".into(), "pro".into())];
        run(&mut p, &[e], &mut l);
        assert_eq!(l.get(DAY, "total", "visits"), 1);
        assert_eq!(l.get(DAY, "total", "bounces"), 0, "no pageview: not a bounce");
        assert_eq!(l.get(DAY, "prop:plan=pro", "events"), 1);
        assert_eq!(l.visitors(DAY, "prop:plan=pro"), 1);
        assert!(l.counters.keys().all(|(_, s, _)| !s.starts_with("entry_page")));
    }

    #[test]
    fn a_new_client_session_id_starts_a_new_session() {
        let mut p = Pipeline::new(DEFAULT_SESSION_TIMEOUT_MS, &[site("UTC")], []);
        let mut l = Ledger::default();
        let mut a = pv(1, T0, "/");
        a.session_hint = Some(10);
        let mut b = pv(1, T0 + MIN, "/");
        b.session_hint = Some(11);
        run(&mut p, &[a, b], &mut l);
        assert_eq!(l.get(DAY, "total", "visits"), 2);
    }

    #[test]
    fn a_restarted_pipeline_continues_persisted_sessions() {
        let mut l = Ledger::default();
        let mut p = Pipeline::new(DEFAULT_SESSION_TIMEOUT_MS, &[site("UTC")], []);
        run(&mut p, &[pv(1, T0, "/")], &mut l);
        let records = l.sessions.iter().map(|(v, r)| {
            (SessionKey { site: "a.com".into(), visitor: *v }, r.clone())
        });
        let mut p = Pipeline::new(DEFAULT_SESSION_TIMEOUT_MS, &[site("UTC")], records);
        run(&mut p, &[pv(1, T0 + MIN, "/b")], &mut l);
        assert_eq!(l.get(DAY, "total", "visits"), 1);
        assert_eq!(l.get(DAY, "total", "bounces"), 0);
        assert_eq!(l.get(DAY, "exit_page=/b", "visits"), 1);
        assert_eq!(l.get(DAY, "exit_page=/", "visits"), 0);
    }

    #[test]
    fn idle_sessions_are_evicted_and_deleted() {
        let mut l = Ledger::default();
        let mut p = Pipeline::new(DEFAULT_SESSION_TIMEOUT_MS, &[site("UTC")], []);
        run(&mut p, &[pv(1, T0, "/"), pv(2, T0 + 20 * MIN, "/")], &mut l);
        let now = T0 + 30 * MIN + EVICTION_GRACE_MS + 1;
        let mut b = WriteBatch::default();
        assert_eq!(p.evict_idle(now, &mut b), 0, "both were fed since the last pass");
        assert_eq!(p.evict_idle(now, &mut b), 1, "only the idle one ends");
        p.finish(&mut b);
        l.apply(b);
        assert_eq!(p.active_sessions(), 1);
        assert_eq!(l.sessions.keys().collect::<Vec<_>>(), [&2]);
    }

    #[test]
    fn batches_sum_per_key() {
        let mut p = Pipeline::new(DEFAULT_SESSION_TIMEOUT_MS, &[site("UTC")], []);
        let mut b = WriteBatch::default();
        for v in 0..37 {
            p.fold(v, &pv(v, T0, "/"), &mut b);
        }
        let id = CounterId {
            site: "a.com".into(),
            bucket: SiteClock::utc().bucket(T0, Grain::Day),
            slice: Slice::Total,
            counter: Counter::Pageviews,
        };
        assert_eq!(b.counters[&id], 37);
        assert_eq!(b.offset, Some(36));
        assert_eq!(b.events, 37);
    }
}
