//! The pipeline: folds events, in log order, into sessions and rollup deltas.
//!
//! A session's visit metrics (visit, bounce, duration, entry and exit page) belong to the
//! bucket where it started and are corrected as it grows, so rollups are right at every moment,
//! not only after the session ends. Each event compares what the session contributed before
//! and after it and writes the difference: a second pageview takes the bounce back, the exit
//! page moves from one breakdown row to the next, the duration lengthens.

use std::borrow::Borrow;
use std::collections::hash_map::Entry;
use std::hash::Hash;
use std::num::NonZeroU32;
use std::sync::Arc;

use rustc_hash::{FxHashMap, FxHashSet};

use crate::batch::{
    Counter, Dim, Row, RowDelta, SessionKey, SessionRecord, SiteRows, SliceRef, WriteBatch,
};
use crate::event::{ENGAGEMENT, Event, Traits};
use crate::site::Site;
use crate::time::{Bucket, CachedClock, Grain, SiteClock};
// Named by the tests.
#[cfg(test)]
use crate::batch::{CounterId, Slice};

/// How long a visitor may be idle before the next event starts a new session.
pub const DEFAULT_SESSION_TIMEOUT_MS: i64 = 30 * 60_000;

/// The source and referrer of sessions that came with neither, named as Plausible names them.
pub const DIRECT: &str = "Direct / None";

/// How long past its timeout a session is kept in memory, for events that arrive late
/// (browser clocks, retries, slow networks).
const EVICTION_GRACE_MS: i64 = 5 * 60_000;

/// Where a session came from and on what; fixed for the session's life.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
struct Attribution {
    source: Option<Arc<str>>,
    referrer: Option<Arc<str>>,
    utm_source: Option<Arc<str>>,
    utm_medium: Option<Arc<str>>,
    utm_campaign: Option<Arc<str>>,
    traits: Traits,
}

/// The dimensions of [`attribution_parts`], in its order.
pub(crate) const ATTRIBUTION_DIMS: [Dim; 5] =
    [Dim::Source, Dim::Referrer, Dim::UtmSource, Dim::UtmMedium, Dim::UtmCampaign];

/// What a session takes from its first event besides its traits: source and referrer (named
/// [`DIRECT`] when it came with neither) and UTM source, medium and campaign. The raw-log scan
/// reads sessions with it too.
pub(crate) fn attribution_parts(event: &Event) -> [Option<&str>; 5] {
    [
        Some(event.source.as_deref().unwrap_or(DIRECT)),
        Some(event.referrer.as_deref().unwrap_or(DIRECT)),
        event.utm_source.as_deref(),
        event.utm_medium.as_deref(),
        event.utm_campaign.as_deref(),
    ]
}

impl Attribution {
    /// Every session-level dimension but the entry and exit page, with its value.
    fn dims(&self) -> impl Iterator<Item = (Dim, Option<&Arc<str>>)> {
        let parts = [
            self.source.as_ref(),
            self.referrer.as_ref(),
            self.utm_source.as_ref(),
            self.utm_medium.as_ref(),
            self.utm_campaign.as_ref(),
        ];
        ATTRIBUTION_DIMS.into_iter().zip(parts).chain(self.traits.dims())
    }
}

/// A live session, one per active visitor: the pipeline's memory. Its pages and attribution are
/// numbers in the pipeline's tables and its flags share a byte, so a session is 48 bytes (56
/// with its map key) however long its pages' names are.
#[derive(Clone, Debug)]
struct Session {
    start: i64,
    last: i64,
    pageviews: u32,
    events: u32,
    entry: Option<Id>,
    exit: Option<Id>,
    attribution: Id,
    /// The client-supplied session id's hash, if `flags` has [`HINT`].
    hint: u64,
    flags: u8,
}

/// [`Session::hint`] is set.
const HINT: u8 = 1;
/// An event arrived since the last eviction pass: a session being fed, even with old timestamps
/// (a backfill), is never evicted from under its next event.
const TOUCHED: u8 = 2;
/// Changed since the last [`Pipeline::finish`], and so listed in [`Pipeline::dirty`].
const DIRTY: u8 = 4;

impl Session {
    fn hint(&self) -> Option<u64> {
        (self.flags & HINT != 0).then_some(self.hint)
    }
}

/// What a session adds to the counters of its start bucket.
#[derive(Clone, Copy, Debug, Default)]
struct Contribution {
    visits: i64,
    bounces: i64,
    duration: i64,
    pageviews: i64,
    events: i64,
}

impl Contribution {
    fn of(s: &Session) -> Contribution {
        Contribution::counting(s.last - s.start, s.pageviews, s.events)
    }

    /// A session's contribution, from what it is made of.
    fn counting(duration: i64, pageviews: u32, events: u32) -> Contribution {
        Contribution {
            visits: 1,
            bounces: i64::from(pageviews == 1),
            duration,
            pageviews: i64::from(pageviews),
            events: i64::from(events),
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

/// A session as it was before a batch changed it: what its contribution is computed from, in
/// 24 bytes (one is kept for each session a batch changes).
#[derive(Clone, Copy, Debug)]
struct Before {
    duration: i64,
    pageviews: u32,
    events: u32,
    entry: Option<Id>,
    exit: Option<Id>,
}

impl Before {
    fn of(s: &Session) -> Before {
        let (pageviews, events, entry, exit) = (s.pageviews, s.events, s.entry, s.exit);
        Before { duration: s.last - s.start, pageviews, events, entry, exit }
    }

    fn contribution(&self) -> Contribution {
        Contribution::counting(self.duration, self.pageviews, self.events)
    }
}

/// The number of a value in a [`Table`]; never zero, so that an `Option<Id>` is 4 bytes.
type Id = NonZeroU32;

/// Values that sessions share (pages, attributions), each kept once and named by an [`Id`], so
/// that a session holds 4-byte numbers rather than pointers. Values no live session names are
/// dropped by [`Table::sweep`].
struct Table<T> {
    /// By id − 1; `None` where an id is free.
    values: Vec<Option<T>>,
    ids: FxHashMap<T, Id>,
    free: Vec<Id>,
}

impl<T> Default for Table<T> {
    fn default() -> Table<T> {
        Table { values: Vec::new(), ids: FxHashMap::default(), free: Vec::new() }
    }
}

impl<T: Clone + Hash + Eq> Table<T> {
    /// The id of `value`, which `make` turns into a `T` if it is new.
    fn id<Q>(&mut self, value: &Q, make: impl FnOnce(&Q) -> T) -> Id
    where
        T: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        if let Some(&id) = self.ids.get(value) {
            return id;
        }
        let value = make(value);
        let id = match self.free.pop() {
            Some(id) => {
                self.values[index(id)] = Some(value.clone());
                id
            }
            None => {
                self.values.push(Some(value.clone()));
                Id::new(u32::try_from(self.values.len()).expect("fewer than 2³² values"))
                    .expect("not zero")
            }
        };
        self.ids.insert(value, id);
        id
    }

    fn get(&self, id: Id) -> &T {
        self.values[index(id)].as_ref().expect("the id of a value")
    }

    /// A mark for each id, for [`Table::sweep`].
    fn marks(&self) -> Vec<bool> {
        vec![false; self.values.len()]
    }

    /// Drops the values whose ids are not marked.
    fn sweep(&mut self, marks: &[bool]) {
        for (i, marked) in marks.iter().enumerate() {
            if !marked && let Some(value) = self.values[i].take() {
                self.ids.remove(&value);
                self.free.push(Id::new(i as u32 + 1).expect("not zero"));
            }
        }
    }
}

fn index(id: Id) -> usize {
    id.get() as usize - 1
}

/// Shares strings between attributions and batch keys; pruned of strings nothing else holds.
#[derive(Default)]
struct Interner {
    strings: FxHashSet<Arc<str>>,
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

    fn prune(&mut self) {
        self.strings.retain(|s| Arc::strong_count(s) > 1);
    }
}

/// What sessions name by [`Id`], and the strings of batch keys.
#[derive(Default)]
struct Shared {
    pages: Table<Arc<str>>,
    attributions: Table<Arc<Attribution>>,
    strings: Interner,
}

impl Shared {
    fn page(&mut self, page: &str) -> Id {
        self.pages.id(page, |p| Arc::from(p))
    }

    fn page_opt(&mut self, page: Option<&str>) -> Option<Id> {
        page.filter(|p| !p.is_empty()).map(|p| self.page(p))
    }

    /// The attribution of source, referrer, UTM source, medium and campaign, and traits; empty
    /// ones are absent.
    fn attribution(&mut self, parts: [Option<&str>; 5], traits: &Traits) -> Id {
        let [source, referrer, utm_source, utm_medium, utm_campaign] =
            parts.map(|s| self.strings.opt(s));
        let traits = traits.map(|s| self.strings.opt(s));
        let a = Attribution { source, referrer, utm_source, utm_medium, utm_campaign, traits };
        self.attributions.id(&a, |a| Arc::new(a.clone()))
    }
}

/// A site's clock and live sessions. Sessions are kept per site and keyed by visitor alone: a
/// map key of a `u64` is cheaper to hash and 16 bytes smaller than a [`SessionKey`].
struct SiteState {
    name: Arc<str>,
    clock: CachedClock,
    sessions: FxHashMap<u64, Session>,
    /// Sessions of events from before their visitor's open session: an application backfilling
    /// history for a visitor who is active now. Nearly always empty.
    backfill: FxHashMap<u64, Session>,
}

impl SiteState {
    /// The name, the clock and the sessions of `era`, borrowed apart.
    fn parts(&mut self, era: Era) -> (&Arc<str>, &mut CachedClock, &mut FxHashMap<u64, Session>) {
        let sessions = match era {
            Era::Live => &mut self.sessions,
            Era::Backfill => &mut self.backfill,
        };
        (&self.name, &mut self.clock, sessions)
    }
}

/// Which of a visitor's sessions an event belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Era {
    /// The visitor's open session, or a new one that ends it.
    Live,
    /// A session before it (see [`SiteState::backfill`]).
    Backfill,
}

impl Era {
    fn of(key: &SessionKey) -> Era {
        if key.backfill { Era::Backfill } else { Era::Live }
    }

    /// The key a session of this era is persisted under.
    fn key(self, site: &Arc<str>, visitor: u64) -> SessionKey {
        SessionKey { site: site.clone(), visitor, backfill: self == Era::Backfill }
    }
}

/// A session of the pipeline: site index, era, visitor.
type Slot = (u32, Era, u64);

/// Bytes of one live session's entry in the pipeline's session maps (key and session), not
/// counting the maps' spare capacity or the shared values it names. For capacity planning and
/// the `session_memory` example.
pub const SESSION_ENTRY_BYTES: usize = size_of::<(u64, Session)>();

/// Folds events into a [`WriteBatch`], keeping live sessions in memory.
pub struct Pipeline {
    timeout_ms: i64,
    sites: Vec<SiteState>,
    /// Index into `sites`, by domain.
    site_ids: FxHashMap<Arc<str>, usize>,
    /// The site of the last event.
    last_site: usize,
    /// The name of the last event, interned: nearly every event is a pageview.
    last_name: Option<Arc<str>>,
    /// Sessions changed since the last [`Pipeline::finish`] (those with the [`DIRTY`] flag), by
    /// site index and visitor, with what each contributed before (`None` if new since).
    /// A session's visit metrics are written once per batch, however many events it had in it.
    dirty: FxHashMap<Slot, Option<Before>>,
    shared: Shared,
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
            sites: Vec::new(),
            site_ids: FxHashMap::default(),
            last_site: 0,
            last_name: None,
            dirty: FxHashMap::default(),
            shared: Shared::default(),
        };
        for site in sites {
            p.set_site(site);
        }
        for (key, record) in sessions {
            let id = p.site_id(&key.site);
            let session = session_from_record(&mut p.shared, record);
            p.sites[id].parts(Era::of(&key)).2.insert(key.visitor, session);
        }
        p
    }

    /// Registers a site, or updates its timezone.
    pub fn set_site(&mut self, site: &Site) {
        let clock = site.clock().unwrap_or_else(|_| SiteClock::utc());
        let id = self.site_id(&site.domain);
        self.sites[id].clock = CachedClock::new(clock);
    }

    /// The index of a site's state; a site seen for the first time is counted on UTC days until
    /// [`Pipeline::set_site`] says otherwise. (Events are validated against registered sites,
    /// but one removed since, or a persisted session's, is still counted.)
    fn site_id(&mut self, domain: &str) -> usize {
        // Runs of events for one site are common; a comparison is cheaper than a lookup.
        if self.sites.get(self.last_site).is_some_and(|s| *s.name == *domain) {
            return self.last_site;
        }
        if let Some(&id) = self.site_ids.get(domain) {
            self.last_site = id;
            return id;
        }
        let name = self.shared.strings.str(domain);
        let clock = CachedClock::new(SiteClock::utc());
        let (sessions, backfill) = (FxHashMap::default(), FxHashMap::default());
        self.sites.push(SiteState { name: name.clone(), clock, sessions, backfill });
        self.site_ids.insert(name, self.sites.len() - 1);
        self.sites.len() - 1
    }

    pub fn active_sessions(&self) -> usize {
        self.sites.iter().map(|s| s.sessions.len() + s.backfill.len()).sum()
    }

    /// Folds one event, read from the raw log at `offset`, into `batch`.
    pub fn fold(&mut self, offset: u64, event: &Event, batch: &mut WriteBatch) {
        batch.offset = Some(offset);
        batch.events += 1;
        let id = self.site_id(&event.site);
        let bot = event.traits.is_bot();
        if bot || event.name == ENGAGEMENT {
            // Neither is part of a visit: a bot's is counted apart, engagement is of a page.
            let site = &mut self.sites[id];
            let mut rows = Rows { batch, site: SiteRows::new(&site.name), visitor: event.visitor };
            if bot {
                emit_bot(&mut rows, &mut site.clock, event.ts);
            } else {
                let page = self.shared.page(&event.page);
                emit_engagement(&mut rows, &mut site.clock, event, self.shared.pages.get(page));
            }
            return;
        }
        let page = self.shared.page(&event.page);
        let pageview = event.is_pageview();
        if self.last_name.as_deref() != Some(event.name.as_str()) {
            self.last_name = Some(self.shared.strings.str(&event.name));
        }
        let event_name = self.last_name.as_ref().expect("set above");
        let timeout = self.timeout_ms;
        let site = &mut self.sites[id];
        let (visitor, era) = slot_of(&site.sessions, &site.backfill, event, timeout);
        let slot = (id as u32, era, visitor);
        let (name, clock, sessions) = site.parts(era);

        let mut rows = Rows { batch, site: SiteRows::new(name), visitor };
        let (session, before) = match sessions.entry(visitor) {
            Entry::Occupied(o) if continues(o.get(), event, timeout) => {
                let s = o.into_mut();
                let before = Before::of(s);
                // An event a little older than the session's start (clock skew) joins it
                // without moving the start, so the session stays in its bucket.
                s.last = s.last.max(event.ts);
                s.events += 1;
                s.flags |= TOUCHED;
                if pageview {
                    s.pageviews += 1;
                    s.entry.get_or_insert(page);
                    s.exit = Some(page);
                }
                (s, Some(before))
            }
            Entry::Occupied(o) => {
                let s = o.into_mut();
                // The ended session's changes in this batch are written now; the new one takes
                // its place in `dirty`, as new.
                let dirty = s.flags & DIRTY;
                if dirty != 0 {
                    let before = self.dirty.insert(slot, None).flatten();
                    emit_session(&mut rows, clock, &self.shared, before, s);
                }
                *s = new_session(&mut self.shared, event, pageview, page);
                s.flags |= dirty;
                (s, None)
            }
            Entry::Vacant(v) => {
                (v.insert(new_session(&mut self.shared, event, pageview, page)), None)
            }
        };
        if session.flags & DIRTY == 0 {
            session.flags |= DIRTY;
            self.dirty.insert(slot, before);
        }
        let page = self.shared.pages.get(page);
        emit_event(&mut rows, clock, event, page, event_name, &mut self.shared.strings);
    }

    /// Writes the changes of the sessions changed since the last call into `batch` (their
    /// visit metrics, and the sessions themselves, to be persisted with it).
    pub fn finish(&mut self, batch: &mut WriteBatch) {
        batch.sessions.reserve(self.dirty.len());
        for ((id, era, visitor), before) in self.dirty.drain() {
            let (name, clock, sessions) = self.sites[id as usize].parts(era);
            let s = sessions.get_mut(&visitor).expect("a changed session is live until written");
            s.flags &= !DIRTY;
            let mut rows = Rows { batch, site: SiteRows::new(name), visitor };
            emit_session(&mut rows, clock, &self.shared, before, s);
            batch.sessions.insert(era.key(name, visitor), Some(record_of(s, &self.shared)));
        }
    }

    /// Forgets sessions idle for longer than the timeout (plus a grace for late events) at
    /// `now_ms` that received nothing since the previous pass, deleting them from the store
    /// with `batch`. Returns how many ended.
    pub fn evict_idle(&mut self, now_ms: i64, batch: &mut WriteBatch) -> usize {
        let horizon = now_ms - self.timeout_ms - EVICTION_GRACE_MS;
        let mut evicted = 0;
        // The pages and attributions the remaining sessions name, marked on the way.
        let mut pages = self.shared.pages.marks();
        let mut attributions = self.shared.attributions.marks();
        for (id, SiteState { name, clock, sessions, backfill }) in self.sites.iter_mut().enumerate()
        {
            for (era, sessions) in [(Era::Live, sessions), (Era::Backfill, backfill)] {
                sessions.retain(|&visitor, s| {
                    let keep = s.flags & TOUCHED != 0 || s.last >= horizon;
                    s.flags &= !TOUCHED;
                    if keep {
                        for page in [s.entry, s.exit].into_iter().flatten() {
                            pages[index(page)] = true;
                        }
                        attributions[index(s.attribution)] = true;
                        return true;
                    }
                    if s.flags & DIRTY != 0 {
                        // Changed since the last `finish` (which has not seen it): written now.
                        let before = self.dirty.remove(&(id as u32, era, visitor)).flatten();
                        let mut rows = Rows { batch, site: SiteRows::new(name), visitor };
                        emit_session(&mut rows, clock, &self.shared, before, s);
                    }
                    batch.sessions.insert(era.key(name, visitor), None);
                    evicted += 1;
                    false
                });
            }
        }
        if evicted > 0 {
            self.shared.pages.sweep(&pages);
            self.shared.attributions.sweep(&attributions);
            // After the attributions, whose strings are then no longer held.
            self.shared.strings.prune();
        }
        evicted
    }
}

/// The session an event belongs to, by visitor and era:
/// - the visitor's open session if the event continues it. An anonymous visitor's id changes
///   when the salt rotates at midnight; a session still open under yesterday's id is continued
///   under it;
/// - else the visitor's backfill session if the event continues that;
/// - else a new backfill session if the event is from before the open session (by more than
///   the timeout);
/// - else a new open session.
fn slot_of(
    sessions: &FxHashMap<u64, Session>,
    backfill: &FxHashMap<u64, Session>,
    event: &Event,
    timeout_ms: i64,
) -> (u64, Era) {
    let continued = |s: &Session| continues(s, event, timeout_ms);
    let open = sessions.get(&event.visitor);
    if open.is_some_and(continued) {
        return (event.visitor, Era::Live);
    }
    if let Some(prev) = event.prev_visitor
        && sessions.get(&prev).is_some_and(continued)
    {
        return (prev, Era::Live);
    }
    let era = match open {
        _ if backfill.get(&event.visitor).is_some_and(continued) => Era::Backfill,
        Some(s) if event.ts < s.start - timeout_ms => Era::Backfill,
        _ => Era::Live,
    };
    (event.visitor, era)
}

fn new_session(shared: &mut Shared, event: &Event, pageview: bool, page: Id) -> Session {
    let attribution = shared.attribution(attribution_parts(event), &event.traits);
    Session {
        start: event.ts,
        last: event.ts,
        pageviews: u32::from(pageview),
        events: 1,
        entry: pageview.then_some(page),
        exit: pageview.then_some(page),
        attribution,
        hint: event.session_hint.unwrap_or(0),
        flags: TOUCHED | if event.session_hint.is_some() { HINT } else { 0 },
    }
}

fn session_from_record(shared: &mut Shared, r: SessionRecord) -> Session {
    let attribution = shared.attribution(
        [
            r.source.as_deref(),
            r.referrer.as_deref(),
            r.utm_source.as_deref(),
            r.utm_medium.as_deref(),
            r.utm_campaign.as_deref(),
        ],
        &r.traits,
    );
    Session {
        start: r.start,
        last: r.last,
        pageviews: r.pageviews,
        events: r.events,
        entry: shared.page_opt(r.entry.as_deref()),
        exit: shared.page_opt(r.exit.as_deref()),
        attribution,
        hint: r.hint.unwrap_or(0),
        flags: if r.hint.is_some() { HINT } else { 0 },
    }
}

/// Whether `event` continues session `s`: within the inactivity timeout of its last event (or
/// just before its start) and not under a different client-supplied session id.
fn continues(s: &Session, event: &Event, timeout_ms: i64) -> bool {
    continues_span(s.start, s.last, s.hint(), event, timeout_ms)
}

/// [`continues`] for a session known by its span and hint; the raw-log scan sessionizes with it.
pub(crate) fn continues_span(
    start: i64,
    last: i64,
    hint: Option<u64>,
    event: &Event,
    timeout_ms: i64,
) -> bool {
    let in_time = event.ts <= last + timeout_ms && event.ts >= start - timeout_ms;
    let same_hint = match (hint, event.session_hint) {
        (Some(a), Some(b)) => a == b,
        _ => true,
    };
    in_time && same_hint
}

fn record_of(s: &Session, shared: &Shared) -> SessionRecord {
    let a = shared.attributions.get(s.attribution);
    let page = |id: Option<Id>| id.map(|id| shared.pages.get(id).clone());
    SessionRecord {
        start: s.start,
        last: s.last,
        pageviews: s.pageviews,
        events: s.events,
        entry: page(s.entry),
        exit: page(s.exit),
        source: a.source.clone(),
        referrer: a.referrer.clone(),
        utm_source: a.utm_source.clone(),
        utm_medium: a.utm_medium.clone(),
        utm_campaign: a.utm_campaign.clone(),
        hint: s.hint(),
        traits: a.traits.clone(),
    }
}

const GRAINS: [Grain; 3] = [Grain::Minute, Grain::Hour, Grain::Day];

fn buckets(clock: &mut CachedClock, ts: i64) -> [Bucket; 3] {
    GRAINS.map(|g| clock.bucket(ts, g))
}

/// The rows one event changes: one site's, with one visitor for unique counts.
struct Rows<'a> {
    batch: &'a mut WriteBatch,
    site: SiteRows<'a>,
    visitor: u64,
}

impl<'a> Rows<'a> {
    fn row<'r>(&self, bucket: Bucket, slice: SliceRef<'r>) -> Row<'r>
    where
        'a: 'r,
    {
        self.site.row(bucket, slice)
    }

    fn add_all(&mut self, row: &Row, c: Contribution) -> &mut RowDelta {
        let delta = self.batch.row(row);
        for (counter, d) in c.counters() {
            delta.add(counter, d);
        }
        delta
    }

    /// The event's own counts in a row: one event, perhaps a pageview, by this visitor.
    fn event(&mut self, bucket: Bucket, slice: SliceRef, pageviews: i64) {
        let row = self.row(bucket, slice);
        let delta = self.batch.row(&row);
        delta.add(Counter::Events, 1);
        delta.add(Counter::Pageviews, pageviews);
        delta.visitors.push(self.visitor);
    }
}

/// Counters of the event itself, in the buckets of the event's own time.
fn emit_event(
    rows: &mut Rows,
    clock: &mut CachedClock,
    event: &Event,
    page: &Arc<str>,
    name: &Arc<str>,
    interner: &mut Interner,
) {
    let pageviews = i64::from(event.is_pageview());
    let [minute, hour, day] = buckets(clock, event.ts);
    for bucket in [minute, hour, day] {
        rows.event(bucket, SliceRef::Total, pageviews);
    }
    // Breakdowns are kept per day: finer ones come from scanning the raw log.
    rows.event(day, SliceRef::By(&Dim::Page, page), pageviews);
    rows.event(day, SliceRef::By(&Dim::EventName, name), pageviews);
    for (key, value) in &event.props {
        let dim = Dim::Prop(interner.str(key));
        rows.event(day, SliceRef::By(&dim, &interner.str(value)), pageviews);
    }
}

/// A bot's event: counted in the totals' bot counter, and nowhere else.
fn emit_bot(rows: &mut Rows, clock: &mut CachedClock, ts: i64) {
    for bucket in buckets(clock, ts) {
        rows.batch.row(&rows.row(bucket, SliceRef::Total)).add(Counter::Bots, 1);
    }
}

/// The longest visible time one engagement report counts for: a tab left open for days is not
/// days of reading.
pub const MAX_ENGAGED_MS: i64 = 30 * 60_000;

/// An engagement report's visible time (ms) and scroll depth (%), from its `time` and `scroll`
/// props: what the page view adds since its last report, so that a page view's reports sum to
/// its time and its deepest scroll. Bounded to what one report can add; what is missing or not
/// a number counts as 0.
pub fn engagement(event: &Event) -> (i64, i64) {
    let prop = |name: &str| {
        let value = event.props.iter().find(|(k, _)| k == name).map(|(_, v)| v.trim());
        value.and_then(|v| v.parse::<f64>().ok()).filter(|v| v.is_finite()).unwrap_or(0.0)
    };
    let ms = prop("time").clamp(0.0, MAX_ENGAGED_MS as f64);
    let scroll = prop("scroll").clamp(0.0, 100.0);
    (ms.round() as i64, scroll.round() as i64)
}

/// An engagement report: in the totals of its own time, and by its page.
fn emit_engagement(rows: &mut Rows, clock: &mut CachedClock, event: &Event, page: &Arc<str>) {
    let (ms, scroll) = engagement(event);
    let [minute, hour, day] = buckets(clock, event.ts);
    let slices = [minute, hour, day]
        .map(|b| (b, SliceRef::Total))
        .into_iter()
        .chain([(day, SliceRef::By(&Dim::Page, page))]);
    for (bucket, slice) in slices {
        let row = rows.batch.row(&rows.row(bucket, slice));
        row.add(Counter::EngagedMs, ms);
        row.add(Counter::ScrollDepth, scroll);
    }
}

/// The change an event made to its session's contribution, in the session's start buckets.
fn emit_session(
    rows: &mut Rows,
    clock: &mut CachedClock,
    shared: &Shared,
    before: Option<Before>,
    after: &Session,
) {
    let now = Contribution::of(after);
    let was = before.as_ref().map_or(Contribution::default(), Before::contribution);
    let delta = now.minus(was);
    let [minute, hour, day] = buckets(clock, after.start);

    // Pageviews and events of the totals are counted per event, in its own bucket.
    for bucket in [minute, hour, day] {
        let row = rows.batch.row(&rows.row(bucket, SliceRef::Total));
        row.add(Counter::Visits, delta.visits);
        row.add(Counter::Bounces, delta.bounces);
        row.add(Counter::Duration, delta.duration);
    }

    let page = |id: Option<Id>| id.map(|id| shared.pages.get(id));
    let (entry_was, exit_was) = before.map_or((None, None), |b| (page(b.entry), page(b.exit)));
    let attribution = shared.attributions.get(after.attribution).dims().map(|(dim, v)| {
        let was = if before.is_some() { v } else { None };
        (dim, was, v)
    });
    let paged = [
        (Dim::EntryPage, entry_was, page(after.entry)),
        (Dim::ExitPage, exit_was, page(after.exit)),
    ];
    for (dim, old, new) in paged.into_iter().chain(attribution) {
        let dim = &dim;
        match (old, new) {
            (Some(o), Some(n)) if o == n => {
                rows.add_all(&rows.row(day, SliceRef::By(dim, n)), delta);
            }
            _ => {
                if let Some(o) = old {
                    rows.add_all(&rows.row(day, SliceRef::By(dim, o)), was.negated());
                }
                if let Some(n) = new {
                    let visitor = rows.visitor;
                    rows.add_all(&rows.row(day, SliceRef::By(dim, n)), now).visitors.push(visitor);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, BTreeSet};

    use super::*;
    use crate::event::{BOT, PAGEVIEW};
    use crate::testing::Ledger;

    const T0: i64 = 1_795_356_000_000; // 2026-11-22T14:00:00Z
    const MIN: i64 = 60_000;

    fn ev(visitor: u64, ts: i64, name: &str, page: &str) -> Event {
        Event {
            site: "a.com".into(),
            ts,
            name: name.into(),
            visitor,
            page: page.into(),
            ..Event::default()
        }
    }

    fn pv(visitor: u64, ts: i64, page: &str) -> Event {
        ev(visitor, ts, PAGEVIEW, page)
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
            (SessionKey { site: "a.com".into(), visitor: *v, backfill: false }, r.clone())
        });
        let mut p = Pipeline::new(DEFAULT_SESSION_TIMEOUT_MS, &[site("UTC")], records);
        run(&mut p, &[pv(1, T0 + MIN, "/b")], &mut l);
        assert_eq!(l.get(DAY, "total", "visits"), 1);
        assert_eq!(l.get(DAY, "total", "bounces"), 0);
        assert_eq!(l.get(DAY, "exit_page=/b", "visits"), 1);
        assert_eq!(l.get(DAY, "exit_page=/", "visits"), 0);
    }

    fn with_traits(mut e: Event, device: &str, country: &str) -> Event {
        e.traits = Traits {
            device: Some(device.into()),
            browser: Some("Firefox".into()),
            country: Some(country.into()),
            ..Traits::default()
        };
        e
    }

    #[test]
    fn a_session_keeps_the_traits_of_its_first_event() {
        let mut l = Ledger::default();
        let mut p = Pipeline::new(DEFAULT_SESSION_TIMEOUT_MS, &[site("UTC")], []);
        let events = [
            with_traits(pv(1, T0, "/"), "Mobile", "DE"),
            // The same visitor seen from elsewhere mid-session (a train, a VPN).
            with_traits(pv(1, T0 + MIN, "/b"), "Mobile", "FR"),
        ];
        run(&mut p, &events, &mut l);
        for slice in ["device=Mobile", "browser=Firefox", "country=DE"] {
            assert_eq!(l.get(DAY, slice, "visits"), 1, "{slice}");
            assert_eq!(l.get(DAY, slice, "pageviews"), 2, "{slice}");
            assert_eq!(l.get(DAY, slice, "bounces"), 0, "{slice}");
            assert_eq!(l.visitors(DAY, slice), 1, "{slice}");
        }
        assert_eq!(l.get(DAY, "country=FR", "pageviews"), 0);

        // Persisted with the session, so that a restart continues it under the same traits.
        let records = l.sessions.iter().map(|(v, r)| {
            (SessionKey { site: "a.com".into(), visitor: *v, backfill: false }, r.clone())
        });
        let mut p = Pipeline::new(DEFAULT_SESSION_TIMEOUT_MS, &[site("UTC")], records);
        run(&mut p, &[with_traits(pv(1, T0 + 2 * MIN, "/c"), "Desktop", "US")], &mut l);
        assert_eq!(l.get(DAY, "country=DE", "pageviews"), 3);
        assert_eq!(l.get(DAY, "device=Mobile", "visits"), 1);
        assert_eq!(l.get(DAY, "device=Desktop", "pageviews"), 0);
    }

    #[test]
    fn bots_are_counted_apart_and_nowhere_else() {
        let mut l = Ledger::default();
        let mut p = Pipeline::new(DEFAULT_SESSION_TIMEOUT_MS, &[site("UTC")], []);
        let bot = |ts| with_traits(pv(9, ts, "/"), BOT, "US");
        run(&mut p, &[bot(T0), bot(T0 + MIN), pv(1, T0, "/")], &mut l);
        assert_eq!(l.get(DAY, "total", "bots"), 2);
        assert_eq!(l.get("2026-11-22T14", "total", "bots"), 2);
        assert_eq!(l.get("2026-11-22T14:01", "total", "bots"), 1);
        assert_eq!(l.get(DAY, "total", "pageviews"), 1);
        assert_eq!(l.get(DAY, "total", "visits"), 1);
        assert_eq!(l.visitors(DAY, "total"), 1);
        assert_eq!(l.get(DAY, "page=/", "pageviews"), 1);
        assert_eq!(l.get(DAY, "device=Bot", "visits"), 0);
        assert!(!l.sessions.contains_key(&9), "a bot has no session");
    }

    #[test]
    fn engagement_is_counted_by_page_and_is_not_an_event() {
        let mut l = Ledger::default();
        let mut p = Pipeline::new(DEFAULT_SESSION_TIMEOUT_MS, &[site("UTC")], []);
        let engaged = |ts, time: &str, scroll: &str| Event {
            props: vec![("time".into(), time.into()), ("scroll".into(), scroll.into())],
            ..ev(1, ts, ENGAGEMENT, "/a")
        };
        let events = [
            pv(1, T0, "/a"),
            engaged(T0 + 12_000, "12000", "80"),
            // Out of range or not numbers: bounded, or nothing.
            engaged(T0 + 20 * MIN, "999999999", "250"),
            engaged(T0 + 21 * MIN, "soon", "-3"),
        ];
        run(&mut p, &events, &mut l);
        for (bucket, slice) in [(DAY, "total"), ("2026-11-22T14", "total"), (DAY, "page=/a")] {
            assert_eq!(l.get(bucket, slice, "engaged_ms"), 12_000 + MAX_ENGAGED_MS, "{slice}");
            assert_eq!(l.get(bucket, slice, "scroll_depth"), 180, "{bucket} {slice}");
        }
        assert_eq!(l.get(DAY, "total", "events"), 1, "the pageview alone");
        assert_eq!(l.get(DAY, "name=engagement", "events"), 0);
        assert_eq!(l.get(DAY, "total", "duration"), 0, "engagement does not lengthen a visit");
        assert_eq!(l.get(DAY, "total", "bounces"), 1);
    }

    #[test]
    fn backfilled_events_leave_the_open_session_alone() {
        let mut p = Pipeline::new(DEFAULT_SESSION_TIMEOUT_MS, &[site("UTC")], []);
        let mut l = Ledger::default();
        // Visitor 1 is on the site now; an application backfills what they did three hours ago.
        let events = [
            pv(1, T0, "/a"),
            pv(1, T0 - 180 * MIN, "/old1"),
            pv(1, T0 - 175 * MIN, "/old2"),
            pv(1, T0 + 5 * MIN, "/b"),
        ];
        run(&mut p, &events, &mut l);
        assert_eq!(l.get(DAY, "total", "visits"), 2);
        assert_eq!(l.get(DAY, "total", "bounces"), 0);
        assert_eq!(l.get(DAY, "total", "duration"), 10 * MIN);
        assert_eq!(l.get("2026-11-22T14", "total", "visits"), 1, "the open session");
        assert_eq!(l.get("2026-11-22T11", "total", "visits"), 1, "the backfilled one");
        assert_eq!(l.get(DAY, "entry_page=/a", "visits"), 1);
        assert_eq!(l.get(DAY, "exit_page=/b", "visits"), 1);
        assert_eq!(l.get(DAY, "entry_page=/old1", "visits"), 1);
        assert_eq!(l.get(DAY, "exit_page=/old2", "pageviews"), 2);
        let open = &l.sessions[&1];
        assert_eq!((open.start, open.exit.as_deref()), (T0, Some("/b")));
        let backfilled = &l.backfill[&1];
        assert_eq!((backfilled.start, backfilled.pageviews), (T0 - 180 * MIN, 2));

        // A restart continues both.
        let records = |m: &BTreeMap<u64, SessionRecord>, backfill: bool| {
            m.iter()
                .map(|(v, r)| {
                    (SessionKey { site: "a.com".into(), visitor: *v, backfill }, r.clone())
                })
                .collect::<Vec<_>>()
        };
        let persisted = [records(&l.sessions, false), records(&l.backfill, true)].concat();
        let mut p = Pipeline::new(DEFAULT_SESSION_TIMEOUT_MS, &[site("UTC")], persisted);
        run(&mut p, &[pv(1, T0 - 170 * MIN, "/old3"), pv(1, T0 + 6 * MIN, "/c")], &mut l);
        assert_eq!(l.get(DAY, "total", "visits"), 2);
        assert_eq!(l.get(DAY, "exit_page=/old3", "visits"), 1);
        assert_eq!(l.get(DAY, "exit_page=/c", "visits"), 1);
        assert_eq!(p.active_sessions(), 2);
    }

    #[test]
    fn a_backfill_session_outlives_the_open_one() {
        let mut p = Pipeline::new(DEFAULT_SESSION_TIMEOUT_MS, &[site("UTC")], []);
        let mut l = Ledger::default();
        run(&mut p, &[pv(1, T0, "/a"), pv(1, T0 - 180 * MIN, "/old1")], &mut l);
        let mut b = WriteBatch::default();
        let later = T0 + DEFAULT_SESSION_TIMEOUT_MS + EVICTION_GRACE_MS + MIN;
        assert_eq!(p.evict_idle(later, &mut b), 0);
        l.apply(b);
        // Only the backfill is fed: the open session ends, and the next backfilled event still
        // continues its own session rather than starting one.
        run(&mut p, &[pv(1, T0 - 179 * MIN, "/old2")], &mut l);
        let mut b = WriteBatch::default();
        assert_eq!(p.evict_idle(later, &mut b), 1);
        l.apply(b);
        assert!(l.sessions.is_empty());
        run(&mut p, &[pv(1, T0 - 178 * MIN, "/old3")], &mut l);
        assert_eq!(l.get(DAY, "total", "visits"), 2);
        assert_eq!(l.get(DAY, "entry_page=/old1", "pageviews"), 3);
        assert_eq!(l.backfill[&1].pageviews, 3);
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

    /// Events of 12 visitors over a few hours: gaps that do and do not end sessions, pages,
    /// custom events with props, sources, and client session ids that change.
    fn mixed_traffic() -> Vec<Event> {
        let mut next = crate::testing::below(0x2545_f491_4f6c_dd1d);
        let mut ts = T0;
        (0..600)
            .map(|_| {
                ts += next(4) as i64 * MIN / 2 + next(2) as i64 * (next(50) as i64) * MIN / 10;
                let visitor = next(12);
                let page = format!("/{}", next(5));
                let mut e = if next(4) == 0 {
                    let mut e = ev(visitor, ts, "signup", &page);
                    e.props = vec![("plan".into(), format!("p{}", next(3)))];
                    e
                } else {
                    pv(visitor, ts, &page)
                };
                e.source =
                    [None, Some("Google".into()), Some("Bing".into())][next(3) as usize].clone();
                e.session_hint = (visitor < 3).then(|| next(2));
                e
            })
            .collect()
    }

    impl Ledger {
        /// The ledger without rows whose sums are zero, as a query would see it.
        fn nonzero(&self) -> BTreeMap<(String, String, &'static str), i64> {
            self.counters.iter().filter(|(_, v)| **v != 0).map(|(k, v)| (k.clone(), *v)).collect()
        }
    }

    #[test]
    fn batch_boundaries_change_nothing() {
        let events = mixed_traffic();
        let fold_in_chunks = |chunk: usize| {
            let mut p = Pipeline::new(DEFAULT_SESSION_TIMEOUT_MS, &[site("Europe/Berlin")], []);
            let mut l = Ledger::default();
            for (n, chunk) in events.chunks(chunk).enumerate() {
                let mut b = WriteBatch::default();
                for (i, e) in chunk.iter().enumerate() {
                    p.fold((n * chunk.len() + i) as u64, e, &mut b);
                }
                p.finish(&mut b);
                l.apply(b);
            }
            l
        };
        let one_by_one = fold_in_chunks(1);
        let visits: i64 = one_by_one
            .counters
            .iter()
            .filter(|((b, s, c), _)| b.len() == 10 && s == "total" && *c == "visits")
            .map(|(_, v)| v)
            .sum();
        assert!(visits > 30 && visits < 300, "the traffic has many sessions ({visits})");
        for chunk in [7, 100, events.len()] {
            let l = fold_in_chunks(chunk);
            assert_eq!(l.nonzero(), one_by_one.nonzero(), "chunks of {chunk}");
            // A unique count cannot forget a visitor: the exit page a session passed through
            // keeps it. Within one batch there is no passing through, so bigger batches count
            // fewer such visitors, and no other difference.
            let (mut batched, mut single) = (l.uniques.clone(), one_by_one.uniques.clone());
            let exits = |u: &mut BTreeMap<(String, String), BTreeSet<u64>>| {
                u.extract_if(.., |(_, s), _| s.starts_with("exit_page=")).collect::<Vec<_>>()
            };
            let (fewer, more) = (exits(&mut batched), exits(&mut single));
            assert_eq!(batched, single, "chunks of {chunk}");
            assert_eq!(fewer.len(), more.len());
            for ((key, fewer), (_, more)) in fewer.iter().zip(&more) {
                assert!(fewer.is_subset(more), "chunks of {chunk}: {key:?}");
            }
            assert_eq!(l.sessions, one_by_one.sessions, "chunks of {chunk}");
        }
    }

    #[test]
    fn a_session_evicted_before_finish_keeps_its_changes() {
        let mut p = Pipeline::new(DEFAULT_SESSION_TIMEOUT_MS, &[site("UTC")], []);
        let mut l = Ledger::default();
        let mut b = WriteBatch::default();
        p.fold(0, &pv(1, T0, "/"), &mut b);
        p.fold(1, &pv(1, T0 + MIN, "/b"), &mut b);
        let later = T0 + 2 * DEFAULT_SESSION_TIMEOUT_MS;
        assert_eq!(p.evict_idle(later, &mut b), 0);
        assert_eq!(p.evict_idle(later, &mut b), 1);
        p.finish(&mut b);
        l.apply(b);
        assert_eq!(l.get(DAY, "total", "visits"), 1);
        assert_eq!(l.get(DAY, "total", "bounces"), 0);
        assert_eq!(l.get(DAY, "total", "duration"), MIN);
        assert_eq!(l.get(DAY, "exit_page=/b", "visits"), 1);
        assert_eq!(l.get(DAY, "entry_page=/", "pageviews"), 2);
        assert!(l.sessions.is_empty());
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
        assert_eq!(b.counter(&id), 37);
        assert_eq!(b.offset, Some(36));
        assert_eq!(b.events, 37);
    }

    #[test]
    fn ended_sessions_leave_nothing_behind() {
        let mut p = Pipeline::new(DEFAULT_SESSION_TIMEOUT_MS, &[site("UTC")], []);
        let mut l = Ledger::default();
        let mut google = pv(1, T0, "/a");
        google.source = Some("Google".into());
        let mut custom = ev(2, T0, "signup", "/b");
        custom.props = vec![("plan".into(), "pro".into())];
        run(&mut p, &[google, pv(1, T0 + MIN, "/c"), custom], &mut l);
        assert_eq!(p.shared.pages.ids.len(), 3);
        assert_eq!(p.shared.attributions.ids.len(), 2);
        let mut b = WriteBatch::default();
        let later = T0 + 2 * DEFAULT_SESSION_TIMEOUT_MS;
        assert_eq!(p.evict_idle(later, &mut b), 0, "both were fed since the last pass");
        assert_eq!(p.evict_idle(later, &mut b), 2);
        assert!(p.shared.pages.ids.is_empty() && p.shared.attributions.ids.is_empty());
        let mut strings: Vec<&str> = p.shared.strings.strings.iter().map(|s| &**s).collect();
        strings.sort();
        assert_eq!(strings, ["a.com", "signup"], "the site's and the last event's names");
        // Freed numbers are used again.
        run(&mut p, &[pv(3, later, "/d"), pv(3, later + MIN, "/e")], &mut l);
        assert_eq!(p.shared.pages.values.len(), 3);
        assert_eq!(l.get("2026-11-22", "exit_page=/e", "visits"), 1);
        assert_eq!(l.get("2026-11-22", "entry_page=/d", "pageviews"), 2);
    }
}
