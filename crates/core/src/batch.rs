//! The `WriteBatch`: what the pipeline hands to a store after folding a run of events. Counters
//! are already summed per key and unique-count adds are grouped per key, so a backend writes one
//! `HINCRBY key field 37`, not 37 commands. The batch names its keys by meaning ([`RowId`]: a
//! site's total or breakdown row in one bucket); each backend maps them onto its own key schema.

use std::fmt;
use std::hash::{Hash, Hasher};
use std::sync::Arc;

use hashbrown::HashTable;
use rustc_hash::{FxHashMap, FxHasher};
use serde::{Deserialize, Serialize};

use crate::event::Traits;
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
    // The session's traits (see `Traits`), after `Prop` so that stored names keep their
    // numbers.
    /// `Desktop`, `Mobile`, `Tablet`.
    Device,
    Browser,
    /// The browser and its version, `Chrome 120.0`.
    BrowserVersion,
    Os,
    /// The OS and its version, `Windows 10`.
    OsVersion,
    Country,
    Region,
    City,
    Channel,
    UtmTerm,
    UtmContent,
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

    /// Every dimension but custom properties.
    pub const NAMED: [Dim; 20] = [
        Dim::Page,
        Dim::EntryPage,
        Dim::ExitPage,
        Dim::Source,
        Dim::Referrer,
        Dim::UtmSource,
        Dim::UtmMedium,
        Dim::UtmCampaign,
        Dim::EventName,
        Dim::Device,
        Dim::Browser,
        Dim::BrowserVersion,
        Dim::Os,
        Dim::OsVersion,
        Dim::Country,
        Dim::Region,
        Dim::City,
        Dim::Channel,
        Dim::UtmTerm,
        Dim::UtmContent,
    ];

    /// Parses [`Dim::key_name`] back.
    pub fn from_key_name(name: &str) -> Option<Dim> {
        match name.strip_prefix("prop:") {
            Some(prop) => Some(Dim::Prop(prop.into())),
            None => Dim::NAMED.into_iter().find(|d| d.name() == name),
        }
    }

    /// The counters a breakdown row of this dimension may have: engagement is kept by page.
    pub fn counters(&self) -> &'static [Counter] {
        match self {
            Dim::Page => &Counter::ALL[..Counter::ENGAGEMENT_END],
            _ => &Counter::ALL[..Counter::VISIT_END],
        }
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
            Dim::Device => "device",
            Dim::Browser => "browser",
            Dim::BrowserVersion => "browser_version",
            Dim::Os => "os",
            Dim::OsVersion => "os_version",
            Dim::Country => "country",
            Dim::Region => "region",
            Dim::City => "city",
            Dim::Channel => "channel",
            Dim::UtmTerm => "utm_term",
            Dim::UtmContent => "utm_content",
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
    /// Summed time pages were visible, milliseconds, from engagement reports (see
    /// `event::ENGAGEMENT`); divided by pageviews, the time on page.
    EngagedMs,
    /// Summed scroll depths, percent, from the same reports; divided by pageviews, the scroll
    /// depth.
    ScrollDepth,
    /// Events from bots, counted here and nowhere else (totals only).
    Bots,
}

impl Counter {
    pub const ALL: [Counter; 8] = [
        Counter::Pageviews,
        Counter::Events,
        Counter::Visits,
        Counter::Bounces,
        Counter::Duration,
        Counter::EngagedMs,
        Counter::ScrollDepth,
        Counter::Bots,
    ];
    /// [`Counter::ALL`] up to here: the counters of events and visits.
    pub const VISIT_END: usize = 5;
    /// … and of engagement.
    pub const ENGAGEMENT_END: usize = 7;

    /// The field name used in storage.
    pub fn name(self) -> &'static str {
        match self {
            Counter::Pageviews => "pageviews",
            Counter::Events => "events",
            Counter::Visits => "visits",
            Counter::Bounces => "bounces",
            Counter::Duration => "duration",
            Counter::EngagedMs => "engaged_ms",
            Counter::ScrollDepth => "scroll_depth",
            Counter::Bots => "bots",
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

/// One row of one site in one bucket: its total, or one breakdown value. A row has the five
/// [`Counter`]s and a unique-visitor count (a HyperLogLog).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RowId {
    pub site: Arc<str>,
    pub bucket: Bucket,
    pub slice: Slice,
}

/// One counter of one row.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct CounterId {
    pub site: Arc<str>,
    pub bucket: Bucket,
    pub slice: Slice,
    pub counter: Counter,
}

impl CounterId {
    pub fn row(&self) -> RowId {
        RowId { site: self.site.clone(), bucket: self.bucket, slice: self.slice.clone() }
    }
}

/// What a batch changes in one row.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RowDelta {
    /// Deltas by [`Counter`] (in [`Counter::ALL`]'s order). Zero where nothing changed or
    /// changes cancelled out.
    counters: [i64; Counter::ALL.len()],
    /// Visitor ids to add to the row's unique count (see [`unique_element`]); may repeat.
    pub visitors: Vec<u64>,
}

impl RowDelta {
    pub fn get(&self, counter: Counter) -> i64 {
        self.counters[counter as usize]
    }

    pub fn add(&mut self, counter: Counter, delta: i64) {
        self.counters[counter as usize] += delta;
    }

    /// The counters that change, with their deltas.
    pub fn counters(&self) -> impl Iterator<Item = (Counter, i64)> + '_ {
        Counter::ALL.into_iter().zip(self.counters).filter(|&(_, d)| d != 0)
    }
}

// The pipeline changes a batch's rows a dozen times per event, nearly always rows the batch
// already has. Building a `RowId` for each lookup would clone and drop two or three `Arc`s and
// hash all its strings again; instead the pipeline names a [`Row`], whose hash is computed once
// from borrowed parts, and the batch keeps each row's hash beside it.

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

/// A [`RowId`] by reference, with its hash.
#[derive(Clone, Copy, Debug)]
pub struct Row<'a> {
    site: &'a Arc<str>,
    bucket: Bucket,
    slice: SliceRef<'a>,
    hash: u64,
}

impl<'a> Row<'a> {
    /// The row of owned parts.
    fn of(site: &'a Arc<str>, bucket: Bucket, slice: &'a Slice) -> Row<'a> {
        SiteRows::new(site).row(bucket, slice.view())
    }

    fn is(&self, id: &RowId) -> bool {
        self.bucket == id.bucket
            && same_str(self.site, &id.site)
            && self.slice.same(id.slice.view())
    }

    fn to_id(self) -> RowId {
        RowId { site: self.site.clone(), bucket: self.bucket, slice: self.slice.to_slice() }
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
    /// A session of events from before the visitor's open session (a backfill), kept beside it
    /// so that neither ends the other.
    pub backfill: bool,
}

/// A session as it is persisted, so that a restart continues it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionRecord {
    /// Time of the first and last event, Unix ms.
    pub start: i64,
    pub last: i64,
    pub pageviews: u32,
    pub events: u32,
    // Shared with the pipeline's own copies rather than copied for each write.
    pub entry: Option<Arc<str>>,
    pub exit: Option<Arc<str>>,
    pub source: Option<Arc<str>>,
    pub referrer: Option<Arc<str>>,
    pub utm_source: Option<Arc<str>>,
    pub utm_medium: Option<Arc<str>>,
    pub utm_campaign: Option<Arc<str>>,
    pub hint: Option<u64>,
    /// Encoded after the fields above (see [`encode_session`]), so that sessions persisted
    /// before it existed still decode.
    #[serde(skip)]
    pub traits: Traits,
}

/// The version byte of an encoded [`SessionRecord`] with its traits. Sessions persisted before
/// it have none: they start with the start time's varint, whose first byte is ≥ 0x80 for any
/// time after 1970-01-01T00:00:00.064Z.
const SESSION_V2: u8 = 2;

/// Encodes a session for the store.
pub fn encode_session(record: &SessionRecord) -> Vec<u8> {
    let mut out = vec![SESSION_V2];
    // Serialising plain structs into a Vec cannot fail.
    out.extend(postcard::to_stdvec(record).expect("session encodes"));
    out.extend(postcard::to_stdvec(&record.traits).expect("traits encode"));
    out
}

/// Decodes a session written by [`encode_session`] or by a version before traits.
pub fn decode_session(bytes: &[u8]) -> Result<SessionRecord, postcard::Error> {
    match bytes.split_first() {
        Some((&SESSION_V2, rest)) => {
            let (mut record, rest): (SessionRecord, _) = postcard::take_from_bytes(rest)?;
            record.traits = postcard::from_bytes(rest)?;
            Ok(record)
        }
        _ => postcard::from_bytes(bytes),
    }
}

/// Everything one run of events changes, applied by a store atomically together with `offset`.
#[derive(Debug, Default)]
pub struct WriteBatch {
    /// Rows with the hash their [`Row`] gave, so that growing the table hashes nothing again.
    rows: HashTable<(u64, RowId, RowDelta)>,
    /// Sessions to write (`Some`) or delete (`None`).
    pub sessions: FxHashMap<SessionKey, Option<SessionRecord>>,
    /// The highest raw-log offset this batch covers: once applied, every event at or below it
    /// is counted and must not be folded again.
    pub offset: Option<u64>,
    /// How many log events were folded into this batch.
    pub events: u64,
}

impl WriteBatch {
    /// A batch that changes nothing yet and covers the log up to `offset`, `events` events.
    pub fn at(offset: Option<u64>, events: u64) -> WriteBatch {
        WriteBatch { offset, events, ..WriteBatch::default() }
    }

    /// The rows the batch changes, each once.
    pub fn rows(&self) -> impl Iterator<Item = (&RowId, &RowDelta)> {
        self.rows.iter().map(|(_, id, delta)| (id, delta))
    }

    /// How many rows the batch changes.
    pub fn row_count(&self) -> usize {
        self.rows.len()
    }

    /// Empties the batch for reuse, keeping its memory: a batch that is refilled again and again
    /// grows its table once, not every time.
    pub fn clear(&mut self) {
        self.rows.clear();
        self.sessions.clear();
        self.offset = None;
        self.events = 0;
    }

    /// The changes to `row`, a new (empty) entry if the batch had none; the row's strings are
    /// cloned only then.
    pub fn row(&mut self, row: &Row) -> &mut RowDelta {
        let entry = self.rows.entry(row.hash, |(_, id, _)| row.is(id), |(hash, ..)| *hash);
        &mut entry.or_insert_with(|| (row.hash, row.to_id(), RowDelta::default())).into_mut().2
    }

    /// Adds `delta` to a counter (creating its row even when `delta` is zero).
    pub fn incr(&mut self, id: CounterId, delta: i64) {
        self.row(&Row::of(&id.site, id.bucket, &id.slice)).add(id.counter, delta);
    }

    /// Adds a visitor to a row's unique count.
    pub fn add_unique(&mut self, row: RowId, visitor: u64) {
        self.row(&Row::of(&row.site, row.bucket, &row.slice)).visitors.push(visitor);
    }

    /// The delta of one counter; zero if the batch does not change it.
    pub fn counter(&self, id: &CounterId) -> i64 {
        let row = Row::of(&id.site, id.bucket, &id.slice);
        self.rows
            .find(row.hash, |(_, other, _)| row.is(other))
            .map_or(0, |(.., d)| d.get(id.counter))
    }

    pub fn is_empty(&self) -> bool {
        self.rows.is_empty() && self.sessions.is_empty() && self.offset.is_none()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dim_key_names_round_trip() {
        for d in Dim::NAMED.into_iter().chain([Dim::Prop("plan".into())]) {
            assert_eq!(Dim::from_key_name(&d.key_name()), Some(d));
        }
        // A property may be named like a dimension, and still be a property.
        let prop = Dim::Prop("device".into());
        assert_eq!(Dim::from_key_name(&prop.key_name()), Some(prop));
        assert_eq!(Dim::from_key_name("bogus"), None);
    }

    #[test]
    fn counters_sum_per_row() {
        let id = |counter| CounterId {
            site: "a.com".into(),
            bucket: Bucket { grain: crate::time::Grain::Day, index: 1 },
            slice: Slice::Total,
            counter,
        };
        let mut b = WriteBatch::default();
        b.incr(id(Counter::Pageviews), 3);
        b.incr(id(Counter::Pageviews), 4);
        b.incr(id(Counter::Visits), 0);
        b.incr(id(Counter::Events), 1);
        assert_eq!(b.row_count(), 1);
        assert_eq!(b.counter(&id(Counter::Pageviews)), 7);
        let (_, delta) = b.rows().next().unwrap();
        let changed: Vec<_> = delta.counters().collect();
        assert_eq!(changed, [(Counter::Pageviews, 7), (Counter::Events, 1)], "no zero deltas");
    }

    #[test]
    fn rows_by_parts_are_the_same_rows() {
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
        // Equal strings in other allocations name the same row.
        let site: Arc<str> = "a.com".into();
        let rows = SiteRows::new(&site);
        let row = rows.row(bucket, SliceRef::By(&Dim::Page, &page));
        b.row(&row).add(Counter::Events, 2);
        b.row(&row).add(Counter::Pageviews, 3);
        b.row(&rows.row(bucket, SliceRef::Total)).add(Counter::Events, 4);
        b.row(&rows.row(bucket, SliceRef::By(&Dim::EntryPage, &page))).add(Counter::Events, 5);
        assert_eq!(b.row_count(), 3);
        assert_eq!(b.counter(&by(Counter::Events)), 3);
        assert_eq!(b.counter(&by(Counter::Pageviews)), 3);
        assert_eq!(b.counter(&by(Counter::Visits)), 0);

        let total = RowId { site: "a.com".into(), bucket, slice: Slice::Total };
        b.add_unique(total.clone(), 1);
        b.row(&rows.row(bucket, SliceRef::Total)).visitors.push(2);
        b.row(&row).visitors.push(3);
        let visitors: FxHashMap<&RowId, &[u64]> =
            b.rows().map(|(id, d)| (id, d.visitors.as_slice())).collect();
        assert_eq!(visitors[&total], [1, 2]);
        assert_eq!(visitors[&by(Counter::Events).row()], [3]);
    }
}
