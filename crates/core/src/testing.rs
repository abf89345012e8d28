//! Helpers shared by the unit tests.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use crate::batch::{SessionRecord, Slice, WriteBatch};

/// A deterministic pseudorandom source (xorshift64) from `seed` (not zero): each call gives a
/// number below its argument.
pub fn below(mut seed: u64) -> impl FnMut(u64) -> u64 {
    move |n| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed % n
    }
}

/// Sums batches as a store would: counters by (bucket label, slice, counter), unique
/// visitors as exact sets.
#[derive(Default)]
pub struct Ledger {
    pub counters: BTreeMap<(String, String, &'static str), i64>,
    pub uniques: BTreeMap<(String, String), BTreeSet<u64>>,
    pub sessions: BTreeMap<u64, SessionRecord>,
    pub backfill: BTreeMap<u64, SessionRecord>,
}

pub fn slice_name(s: &Slice) -> String {
    match s {
        Slice::Total => "total".into(),
        Slice::By(d, v) => format!("{d}={v}"),
    }
}

impl Ledger {
    pub fn apply(&mut self, b: WriteBatch) {
        for (id, delta) in b.rows() {
            for (counter, d) in delta.counters() {
                let k = (id.bucket.label(), slice_name(&id.slice), counter.name());
                *self.counters.entry(k).or_default() += d;
            }
            if !delta.visitors.is_empty() {
                let k = (id.bucket.label(), slice_name(&id.slice));
                self.uniques.entry(k).or_default().extend(&delta.visitors);
            }
        }
        for (k, r) in b.sessions {
            let sessions = if k.backfill { &mut self.backfill } else { &mut self.sessions };
            match r {
                Some(r) => sessions.insert(k.visitor, detached(r)),
                None => sessions.remove(&k.visitor),
            };
        }
    }

    pub fn get(&self, bucket: &str, slice: &str, counter: &str) -> i64 {
        self.counters
            .iter()
            .find(|((b, s, c), _)| b == bucket && s == slice && *c == counter)
            .map_or(0, |(_, v)| *v)
    }

    pub fn visitors(&self, bucket: &str, slice: &str) -> usize {
        self.uniques.get(&(bucket.into(), slice.into())).map_or(0, BTreeSet::len)
    }
}

/// A record with strings of its own, as a store keeps it (a store does not hold on to the
/// pipeline's strings).
fn detached(mut r: SessionRecord) -> SessionRecord {
    for s in [
        &mut r.entry,
        &mut r.exit,
        &mut r.source,
        &mut r.referrer,
        &mut r.utm_source,
        &mut r.utm_medium,
        &mut r.utm_campaign,
    ] {
        *s = s.as_deref().map(Arc::from);
    }
    r.traits = r.traits.map(|s| s.map(Arc::from));
    r
}
