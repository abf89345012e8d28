//! The `WriteBatch`: what the pipeline hands to a store after folding a run of events. Counters
//! are already summed per key and unique-count adds are grouped per key, so a backend writes one
//! `HINCRBY key field 37`, not 37 commands. The batch names its keys by meaning ([`CounterId`],
//! [`UniqueId`]); each backend maps them onto its own key schema.

use std::fmt;
use std::sync::Arc;

use rustc_hash::FxHashMap;
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

impl fmt::Display for Dim {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = match self {
            Dim::Page => "page",
            Dim::EntryPage => "entry_page",
            Dim::ExitPage => "exit_page",
            Dim::Source => "source",
            Dim::Referrer => "referrer",
            Dim::UtmSource => "utm_source",
            Dim::UtmMedium => "utm_medium",
            Dim::UtmCampaign => "utm_campaign",
            Dim::EventName => "name",
            Dim::Prop(p) => return write!(f, "prop:{p}"),
        };
        f.write_str(name)
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

/// One counter of one site in one bucket.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CounterId {
    pub site: Arc<str>,
    pub bucket: Bucket,
    pub slice: Slice,
    pub counter: Counter,
}

/// One unique-visitor count (a HyperLogLog) of one site in one bucket.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct UniqueId {
    pub site: Arc<str>,
    pub bucket: Bucket,
    pub slice: Slice,
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
}
