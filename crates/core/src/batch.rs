//! The `WriteBatch`: what the pipeline hands to a store after folding a run of events. Counters
//! are already summed per key and unique-count adds are grouped per key, so a backend writes one
//! `HINCRBY key field 37`, not 37 commands. The batch names its keys by meaning ([`CounterId`],
//! [`UniqueId`]); each backend maps them onto its own key schema.

use std::borrow::Borrow;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::sync::Arc;

use rustc_hash::{FxHashMap, FxHasher};
use serde::{Deserialize, Serialize};

use crate::time::Bucket;

/// A breakdown dimension.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Dim {
    /// The event's page (event-level).
    Page,
    /// The session's first pageview's page (session-level).
    EntryPage,
    /// The session's last pageview's page (session-level).
    ExitPage,
    /// The session's traffic source (session-level).
    Source,
    /// The session's referrer (session-level).
    Referrer,
    UtmSource,
    UtmMedium,
    UtmCampaign,
    /// The event's name (event-level).
    EventName,
    /// A custom property of the event, by property name (event-level).
    Prop(Arc<str>),
}

impl Dim {
    /// Session-level dimensions are fixed per session (or move with it, like the exit page) and
    /// carry visit metrics; event-level ones belong to each event.
    pub fn is_session_level(&self) -> bool {
        !matches!(self, Dim::Page | Dim::EventName | Dim::Prop(_))
    }

    /// The name used in storage keys: `page`, `entry_page`, …, `prop:plan`.
    pub fn key_name(&self) -> String {
        self.to_string()
    }

    /// Parses [`Dim::key_name`] back.
    pub fn from_key_name(name: &str) -> Option<Dim> {
        Some(match name {
            "page" => Dim::Page,
            "entry_page" => Dim::EntryPage,
            "exit_page" => Dim::ExitPage,
            "source" => Dim::Source,
            "referrer" => Dim::Referrer,
            "utm_source" => Dim::UtmSource,
            "utm_medium" => Dim::UtmMedium,
            "utm_campaign" => Dim::UtmCampaign,
            "name" => Dim::EventName,
            _ => Dim::Prop(name.strip_prefix("prop:")?.into()),
        })
    }
}

impl Dim {
    /// The dimension's own name (`page`, `entry_page`, …), and a custom property's name: the
    /// key of a breakdown row's value in the stats API.
    pub fn name(&self) -> &str {
        match self {
            Dim::Page => "page",
            Dim::EntryPage => "entry_page",
            Dim::ExitPage => "exit_page",
            Dim::Source => "source",
            Dim::Referrer => "referrer",
            Dim::UtmSource => "utm_source",
            Dim::UtmMedium => "utm_medium",
            Dim::UtmCampaign => "utm_campaign",
            Dim::EventName => "name",
            Dim::Prop(p) => p,
        }
    }
}

impl fmt::Display for Dim {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Dim::Prop(p) => write!(f, "prop:{p}"),
            other => f.write_str(other.name()),
        }
    }
}

/// A summed counter.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Counter {
    /// Pageview events.
    Pageviews,
    /// All events, pageviews included.
    Events,
    /// Sessions, counted in the bucket where they started.
    Visits,
    /// Sessions with exactly one pageview, in their start bucket.
    Bounces,
    /// Summed session durations in milliseconds, in the start bucket.
    Duration,
}

impl Counter {
    pub const ALL: [Counter; 5] =
        [Counter::Pageviews, Counter::Events, Counter::Visits, Counter::Bounces, Counter::Duration];

    /// The field name used in storage.
    pub fn name(self) -> &'static str {
        match self {
            Counter::Pageviews => "pageviews",
            Counter::Events => "events",
            Counter::Visits => "visits",
            Counter::Bounces => "bounces",
            Counter::Duration => "duration",
        }
    }

    pub fn from_name(name: &str) -> Option<Counter> {
        Counter::ALL.into_iter().find(|c| c.name() == name)
    }
}

/// The whole site, or the rows of one breakdown value.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Slice {
    Total,
    By(Dim, Arc<str>),
}

impl Slice {
    /// The slice by reference.
    pub fn view(&self) -> SliceRef<'_> {
        match self {
            Slice::Total => SliceRef::Total,
            Slice::By(dim, value) => SliceRef::By(dim, value),
        }
    }
}

/// A [`Slice`] by reference: names a breakdown row without cloning its strings.
#[derive(Clone, Copy, Debug)]
pub enum SliceRef<'a> {
    Total,
    By(&'a Dim, &'a Arc<str>),
}

impl SliceRef<'_> {
    pub fn to_slice(self) -> Slice {
        match self {
            SliceRef::Total => Slice::Total,
            SliceRef::By(dim, value) => Slice::By(dim.clone(), value.clone()),
        }
    }

    fn hash_into<H: Hasher>(self, state: &mut H) {
        match self {
            SliceRef::Total => state.write_u8(0),
            SliceRef::By(dim, value) => {
                state.write_u8(1);
                dim.hash(state);
                value.hash(state);
            }
        }
    }

    fn same(self, other: SliceRef) -> bool {
        match (self, other) {
            (SliceRef::Total, SliceRef::Total) => true,
            (SliceRef::By(d, v), SliceRef::By(e, w)) => d == e && same_str(v, w),
            _ => false,
        }
    }
}

/// String equality, short-cut for the interned strings that keys share.
fn same_str(a: &str, b: &str) -> bool {
    std::ptr::eq(a, b) || a == b
}

/// One counter of one site in one bucket.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct CounterId {
    pub site: Arc<str>,
    pub bucket: Bucket,
    pub slice: Slice,
    pub counter: Counter,
}

/// One unique-visitor count (a HyperLogLog) of one site in one bucket.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct UniqueId {
    pub site: Arc<str>,
    pub bucket: Bucket,
    pub slice: Slice,
}

// The pipeline adds to a batch's counters dozens of times per event, nearly always to a key the
// batch already has, and to several counters (and the unique count) of each row it touches.
// Building a `CounterId` for each lookup would clone and drop two or three `Arc`s and hash all
// its strings again; instead the pipeline names a [`Row`], whose hash is computed once, and an
// existing key is found through a borrowed view of its parts (`dyn Key`), which `CounterId`
// and `UniqueId` borrow as. The owned and borrowed forms hash through the same `row_hash`, so
// they hash and compare alike by construction.

/// The hash of a row's parts, which its counters' and unique count's hashes are built on.
fn row_hash(site: &Arc<str>, bucket: Bucket, slice: SliceRef) -> u64 {
    SiteRows::new(site).row(bucket, slice).hash
}

/// A site's rows: names [`Row`]s, hashing the site's name once for all of them.
pub struct SiteRows<'a> {
    site: &'a Arc<str>,
    hasher: FxHasher,
}

impl<'a> SiteRows<'a> {
    pub fn new(site: &'a Arc<str>) -> SiteRows<'a> {
        let mut hasher = FxHasher::default();
        site.hash(&mut hasher);
        SiteRows { site, hasher }
    }

    /// The row `slice` of the site in `bucket`.
    pub fn row<'r>(&self, bucket: Bucket, slice: SliceRef<'r>) -> Row<'r>
    where
        'a: 'r,
    {
        let mut h = self.hasher.clone();
        bucket.hash(&mut h);
        slice.hash_into(&mut h);
        Row { site: self.site, bucket, slice, hash: h.finish() }
    }
}

/// One row (the total, or a breakdown value) of one site in one bucket: where counters and a
/// unique count are added by [`WriteBatch::incr_row`] and [`WriteBatch::add_unique_row`].
#[derive(Clone, Copy, Debug)]
pub struct Row<'a> {
    site: &'a Arc<str>,
    bucket: Bucket,
    slice: SliceRef<'a>,
    hash: u64,
}

/// The parts of a [`UniqueId`] (no counter) or a [`CounterId`], owned or borrowed.
trait Key {
    fn row_hash(&self) -> u64;
    fn counter(&self) -> Option<Counter>;
    fn parts(&self) -> (&str, Bucket, SliceRef<'_>, Option<Counter>);
}

impl Key for UniqueId {
    fn row_hash(&self) -> u64 {
        row_hash(&self.site, self.bucket, self.slice.view())
    }

    fn counter(&self) -> Option<Counter> {
        None
    }

    fn parts(&self) -> (&str, Bucket, SliceRef<'_>, Option<Counter>) {
        (&self.site, self.bucket, self.slice.view(), None)
    }
}

impl Key for CounterId {
    fn row_hash(&self) -> u64 {
        row_hash(&self.site, self.bucket, self.slice.view())
    }

    fn counter(&self) -> Option<Counter> {
        Some(self.counter)
    }

    fn parts(&self) -> (&str, Bucket, SliceRef<'_>, Option<Counter>) {
        (&self.site, self.bucket, self.slice.view(), Some(self.counter))
    }
}

impl Key for (Row<'_>, Option<Counter>) {
    fn row_hash(&self) -> u64 {
        self.0.hash
    }

    fn counter(&self) -> Option<Counter> {
        self.1
    }

    fn parts(&self) -> (&str, Bucket, SliceRef<'_>, Option<Counter>) {
        (self.0.site, self.0.bucket, self.0.slice, self.1)
    }
}

impl Hash for dyn Key + '_ {
    fn hash<H: Hasher>(&self, state: &mut H) {
        state.write_u64(self.row_hash());
        if let Some(counter) = self.counter() {
            counter.hash(state);
        }
    }
}

impl PartialEq for dyn Key + '_ {
    fn eq(&self, other: &Self) -> bool {
        let (
            (site, bucket, slice, counter),
            (other_site, other_bucket, other_slice, other_counter),
        ) = (self.parts(), other.parts());
        counter == other_counter
            && bucket == other_bucket
            && same_str(site, other_site)
            && slice.same(other_slice)
    }
}

impl Eq for dyn Key + '_ {}

impl Hash for UniqueId {
    fn hash<H: Hasher>(&self, state: &mut H) {
        (self as &dyn Key).hash(state);
    }
}

impl Hash for CounterId {
    fn hash<H: Hasher>(&self, state: &mut H) {
        (self as &dyn Key).hash(state);
    }
}

impl<'a> Borrow<dyn Key + 'a> for UniqueId {
    fn borrow(&self) -> &(dyn Key + 'a) {
        self
    }
}

impl<'a> Borrow<dyn Key + 'a> for CounterId {
    fn borrow(&self) -> &(dyn Key + 'a) {
        self
    }
}

/// The bytes added to a unique count for a visitor: the id, little-endian. Every backend adds
/// exactly these bytes, so their HyperLogLogs agree register for register.
pub fn unique_element(visitor: u64) -> [u8; 8] {
    visitor.to_le_bytes()
}

/// A visitor's session, by site.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct SessionKey {
    pub site: Arc<str>,
    pub visitor: u64,
}

/// A session as it is persisted, so that a restart continues it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionRecord {
    /// Time of the first and last event, Unix ms.
    pub start: i64,
    pub last: i64,
    pub pageviews: u32,
    pub events: u32,
    pub entry: Option<String>,
    pub exit: Option<String>,
    pub source: Option<String>,
    pub referrer: Option<String>,
    pub utm_source: Option<String>,
    pub utm_medium: Option<String>,
    pub utm_campaign: Option<String>,
    pub hint: Option<u64>,
}

/// Everything one run of events changes, applied by a store atomically together with `offset`.
#[derive(Debug, Default)]
pub struct WriteBatch {
    /// Deltas, summed per counter. A zero may remain where changes cancelled out.
    pub counters: FxHashMap<CounterId, i64>,
    /// Visitor ids to add to each unique count (see [`unique_element`]); may repeat.
    pub uniques: FxHashMap<UniqueId, Vec<u64>>,
    /// Sessions to write (`Some`) or delete (`None`).
    pub sessions: FxHashMap<SessionKey, Option<SessionRecord>>,
    /// The highest raw-log offset this batch covers: once applied, every event at or below it
    /// is counted and must not be folded again.
    pub offset: Option<u64>,
    /// How many log events were folded into this batch.
    pub events: u64,
}

impl WriteBatch {
    pub fn incr(&mut self, id: CounterId, delta: i64) {
        if delta != 0 {
            *self.counters.entry(id).or_insert(0) += delta;
        }
    }

    pub fn add_unique(&mut self, id: UniqueId, visitor: u64) {
        self.uniques.entry(id).or_default().push(visitor);
    }

    /// [`WriteBatch::incr`] by row; the row's strings are cloned only for a new counter.
    pub fn incr_row(&mut self, row: &Row, counter: Counter, delta: i64) {
        if delta == 0 {
            return;
        }
        match self.counters.get_mut(&(*row, Some(counter)) as &dyn Key) {
            Some(sum) => *sum += delta,
            None => {
                let (site, bucket, slice) = (row.site.clone(), row.bucket, row.slice.to_slice());
                self.counters.insert(CounterId { site, bucket, slice, counter }, delta);
            }
        }
    }

    /// [`WriteBatch::add_unique`] by row; the row's strings are cloned only for a new count.
    pub fn add_unique_row(&mut self, row: &Row, visitor: u64) {
        match self.uniques.get_mut(&(*row, None) as &dyn Key) {
            Some(visitors) => visitors.push(visitor),
            None => {
                let (site, bucket, slice) = (row.site.clone(), row.bucket, row.slice.to_slice());
                // The capacity `push` would give the first visitor.
                let mut visitors = Vec::with_capacity(4);
                visitors.push(visitor);
                self.uniques.insert(UniqueId { site, bucket, slice }, visitors);
            }
        }
    }

    pub fn is_empty(&self) -> bool {
        self.counters.is_empty()
            && self.uniques.is_empty()
            && self.sessions.is_empty()
            && self.offset.is_none()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dim_key_names_round_trip() {
        let dims = [
            Dim::Page,
            Dim::EntryPage,
            Dim::ExitPage,
            Dim::Source,
            Dim::Referrer,
            Dim::UtmSource,
            Dim::UtmMedium,
            Dim::UtmCampaign,
            Dim::EventName,
            Dim::Prop("plan".into()),
        ];
        for d in dims {
            assert_eq!(Dim::from_key_name(&d.key_name()), Some(d));
        }
        assert_eq!(Dim::from_key_name("bogus"), None);
    }

    #[test]
    fn counters_sum_per_key_and_drop_zero_deltas() {
        let id = CounterId {
            site: "a.com".into(),
            bucket: Bucket { grain: crate::time::Grain::Day, index: 1 },
            slice: Slice::Total,
            counter: Counter::Pageviews,
        };
        let mut b = WriteBatch::default();
        b.incr(id.clone(), 3);
        b.incr(id.clone(), 4);
        b.incr(id.clone(), 0);
        assert_eq!(b.counters.len(), 1);
        assert_eq!(b.counters[&id], 7);
    }

    #[test]
    fn keys_by_parts_are_the_same_keys() {
        let bucket = Bucket { grain: crate::time::Grain::Day, index: 1 };
        let page: Arc<str> = "/a".into();
        let by = |counter| CounterId {
            site: "a.com".into(),
            bucket,
            slice: Slice::By(Dim::Page, "/a".into()),
            counter,
        };
        let mut b = WriteBatch::default();
        b.incr(by(Counter::Events), 1);
        // Equal strings in other allocations name the same key.
        let site: Arc<str> = "a.com".into();
        let rows = SiteRows::new(&site);
        let row = rows.row(bucket, SliceRef::By(&Dim::Page, &page));
        b.incr_row(&row, Counter::Events, 2);
        b.incr_row(&row, Counter::Pageviews, 3);
        b.incr_row(&row, Counter::Visits, 0);
        b.incr_row(&rows.row(bucket, SliceRef::Total), Counter::Events, 4);
        b.incr_row(&rows.row(bucket, SliceRef::By(&Dim::EntryPage, &page)), Counter::Events, 5);
        assert_eq!(b.counters.len(), 4);
        assert_eq!(b.counters[&by(Counter::Events)], 3);
        assert_eq!(b.counters[&by(Counter::Pageviews)], 3);

        let unique = UniqueId { site: "a.com".into(), bucket, slice: Slice::Total };
        b.add_unique(unique.clone(), 1);
        b.add_unique_row(&rows.row(bucket, SliceRef::Total), 2);
        b.add_unique_row(&row, 3);
        assert_eq!(b.uniques.len(), 2);
        assert_eq!(b.uniques[&unique], [1, 2]);
    }
}
