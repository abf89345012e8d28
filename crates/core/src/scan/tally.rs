//! Counting over segments: [`tally`] applies filters and groups what passes.

use std::ops::Range;
use std::sync::Arc;

use rustc_hash::{FxHashMap, FxHashSet};

use super::segment::{ENGAGEMENT_REPORT, MISSING, NO_SESSION, PAGEVIEW, Segment};
use crate::batch::{Dim, unique_element};
use crate::filter::Filter;
use crate::hll::Hll;

/// How results are grouped.
#[derive(Clone, Copy, Debug)]
pub enum Grouping<'a> {
    /// One total.
    Total,
    /// Timeseries points: point `p` covers `bounds[p]..bounds[p + 1]` (Unix ms).
    Points(&'a [i64]),
    /// Breakdown rows, one per value of the dimension.
    By(&'a Dim),
    /// One row per custom property name, counting the events that carry it.
    PropNames,
}

/// What one group counts: the same counters as a rollup row.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Tally {
    pub visitors: u64,
    pub visits: i64,
    pub pageviews: i64,
    pub events: i64,
    pub bounces: i64,
    /// Milliseconds.
    pub duration: i64,
    pub engaged_ms: i64,
    pub scroll_depth: i64,
}

/// One group's tally while segments are read. Visitors are counted as the rollups count them,
/// in the same HyperLogLog of the same ids, so that a row and the view filtered to it show the
/// same number (and a visitor found in two segments counts once).
#[derive(Default)]
struct Acc {
    tally: Tally,
    visitors: Option<Hll>,
}

impl Acc {
    fn add_visitors(&mut self, ids: impl Iterator<Item = u64>) {
        let elements: Vec<[u8; 8]> = ids.map(unique_element).collect();
        if !elements.is_empty() {
            self.visitors.get_or_insert_with(Hll::new).add_all(&elements);
        }
    }
}

/// Counts `segments` (the period's, and the day before's for event-level questions) over the
/// instants `range`, keeping what passes `filters`, grouped by `grouping`. Groups are returned
/// with their value: `""` for the total, the point's index for points (every point present),
/// the value for breakdown rows and property names (only values that occur).
pub fn tally(
    segments: &[&Segment],
    filters: &[Filter],
    range: Range<i64>,
    grouping: Grouping,
) -> Vec<(Arc<str>, Tally)> {
    let event_level = filters.iter().any(|f| !f.dim.is_session_level())
        || match grouping {
            Grouping::By(dim) => !dim.is_session_level(),
            Grouping::PropNames => true,
            _ => false,
        };
    let mut groups = Groups::new(grouping);
    for seg in segments {
        let plan = Plan::new(seg, filters);
        let mut local = Local::new(seg, grouping, &mut groups);
        if event_level {
            count_events(seg, &plan, &range, &mut local);
        } else {
            count_sessions(seg, &plan, &range, &mut local);
        }
        local.finish(seg, &mut groups);
    }
    groups.into_rows()
}

/// The filters decided against one segment's dictionaries.
struct Plan {
    /// Sessions that pass the session-level filters.
    session_ok: Vec<bool>,
    /// Per page number: passes the page filters.
    page_ok: Vec<bool>,
    name_ok: Vec<bool>,
    /// Property filters: the property's key number in this segment (None: no event has it),
    /// and per value number whether it passes (index [`MISSING`] for events without it).
    props: Vec<(Option<u32>, Vec<bool>)>,
    /// Whether any filter is on the session, or on the name or properties of events.
    by_session: bool,
    by_name_or_props: bool,
}

impl Plan {
    fn new(seg: &Segment, filters: &[Filter]) -> Plan {
        let all = |dict: &super::segment::Dict, dim: &Dim| {
            let mine: Vec<&Filter> = filters.iter().filter(|f| &f.dim == dim).collect();
            dict.decide(|v| mine.iter().all(|f| f.matches(v)))
        };
        let mut session_ok = vec![true; seg.start.len()];
        let mut by_session = false;
        for f in filters.iter().filter(|f| f.dim.is_session_level()) {
            by_session = true;
            let (dict, column) = seg.session_column(&f.dim).expect("every session dimension");
            let ok = dict.decide(|v| f.matches(v));
            for (pass, &id) in session_ok.iter_mut().zip(column) {
                *pass &= ok[id as usize];
            }
        }
        let props = filters
            .iter()
            .filter_map(|f| match &f.dim {
                Dim::Prop(key) => Some((seg.keys.find(key), seg.values.decide(|v| f.matches(v)))),
                _ => None,
            })
            .collect::<Vec<_>>();
        let by_name_or_props = !props.is_empty() || filters.iter().any(|f| f.dim == Dim::EventName);
        Plan {
            session_ok,
            page_ok: all(&seg.pages, &Dim::Page),
            name_ok: all(&seg.names, &Dim::EventName),
            props,
            by_session,
            by_name_or_props,
        }
    }

    fn props_ok(&self, seg: &Segment, i: usize) -> bool {
        if self.props.is_empty() {
            return true;
        }
        let (from, to) = (seg.prop_at[i] as usize, seg.prop_at[i + 1] as usize);
        self.props.iter().all(|(key, ok)| {
            let value = key.and_then(|key| {
                (from..to).find(|&j| seg.prop_key[j] == key).map(|j| seg.prop_value[j])
            });
            ok[value.unwrap_or(MISSING) as usize]
        })
    }
}

/// Visit metrics of the sessions that started in `range` and pass; with only session-level
/// filters, their pageviews, events and visitors too, as in a session-level rollup row.
fn count_sessions(seg: &Segment, plan: &Plan, range: &Range<i64>, local: &mut Local) {
    let (lo, hi) = span(&seg.start, range);
    for s in lo..hi {
        if !plan.session_ok[s] {
            continue;
        }
        let g = local.session_group(seg, s);
        if g == SKIP {
            continue;
        }
        local.add_session(seg, s, g, true);
    }
    // Engagement reports of those sessions, in the period.
    let (lo, hi) = span(&seg.ts, range);
    for i in lo..hi {
        if seg.kind[i] != ENGAGEMENT_REPORT {
            continue;
        }
        let s = seg.session[i];
        if s == NO_SESSION && plan.by_session || s != NO_SESSION && !plan.session_ok[s as usize] {
            continue;
        }
        let g = local.event_group(seg, i);
        if g != SKIP {
            local.add_engagement(seg, i, g);
        }
    }
}

/// Visitors, pageviews and events of the matching events in `range`; visit metrics of the
/// sessions that started in it, entered on a matching page and hold a matching event.
fn count_events(seg: &Segment, plan: &Plan, range: &Range<i64>, local: &mut Local) {
    // Sessions holding an event of the asked name and properties, at any time.
    let holds: Option<Vec<bool>> = plan.by_name_or_props.then(|| {
        let mut holds = vec![false; seg.start.len()];
        for i in 0..seg.ts.len() {
            let s = seg.session[i];
            if s != NO_SESSION
                && seg.kind[i] != ENGAGEMENT_REPORT
                && plan.name_ok[seg.name[i] as usize]
                && plan.props_ok(seg, i)
            {
                holds[s as usize] = true;
            }
        }
        holds
    });

    let (lo, hi) = span(&seg.ts, range);
    for i in lo..hi {
        let s = seg.session[i];
        let session_ok = match s {
            NO_SESSION => !plan.by_session,
            s => plan.session_ok[s as usize],
        };
        if !session_ok || !plan.page_ok[seg.page[i] as usize] {
            continue;
        }
        if seg.kind[i] == ENGAGEMENT_REPORT {
            let g = local.event_group(seg, i);
            if g != SKIP {
                local.add_engagement(seg, i, g);
            }
            continue;
        }
        if !plan.name_ok[seg.name[i] as usize] || !plan.props_ok(seg, i) {
            continue;
        }
        local.add_event(seg, i, s);
    }

    let (lo, hi) = span(&seg.start, range);
    for s in lo..hi {
        let entered = plan.page_ok[seg.entry[s] as usize];
        if !plan.session_ok[s] || !entered || holds.as_ref().is_some_and(|h| !h[s]) {
            continue;
        }
        let g = local.session_group(seg, s);
        if g != SKIP {
            local.add_session(seg, s, g, false);
        }
    }
}

/// The indexes of a sorted column whose values fall in `range`.
fn span(sorted: &[i64], range: &Range<i64>) -> (usize, usize) {
    let lo = sorted.partition_point(|&t| t < range.start);
    let hi = sorted.partition_point(|&t| t < range.end);
    (lo, hi.max(lo))
}

/// A group number that means: counted nowhere.
const SKIP: u32 = u32::MAX;

/// The groups of the whole answer, by value.
struct Groups {
    accs: Vec<Acc>,
    names: Vec<Arc<str>>,
    by_name: FxHashMap<Arc<str>, u32>,
}

impl Groups {
    fn new(grouping: Grouping) -> Groups {
        let mut groups =
            Groups { accs: Vec::new(), names: Vec::new(), by_name: FxHashMap::default() };
        match grouping {
            Grouping::Total => {
                groups.id("");
            }
            Grouping::Points(bounds) => {
                for p in 0..bounds.len().saturating_sub(1) {
                    groups.id(&p.to_string());
                }
            }
            Grouping::By(_) | Grouping::PropNames => {}
        }
        groups
    }

    fn id(&mut self, name: &str) -> u32 {
        if let Some(&id) = self.by_name.get(name) {
            return id;
        }
        let id = self.accs.len() as u32;
        let name: Arc<str> = name.into();
        self.accs.push(Acc::default());
        self.names.push(name.clone());
        self.by_name.insert(name, id);
        id
    }

    fn into_rows(self) -> Vec<(Arc<str>, Tally)> {
        self.names
            .into_iter()
            .zip(self.accs)
            .map(|(name, mut acc)| {
                acc.tally.visitors = acc.visitors.map_or(0, |h| h.count());
                (name, acc.tally)
            })
            .collect()
    }
}

/// How one segment's rows map onto the answer's groups, and the visitors it has counted.
struct Local<'g, 's> {
    grouping: Grouping<'g>,
    /// Per dictionary number of the grouped column: its group, or SKIP (missing values).
    groups: Vec<u32>,
    /// The grouped session-level column (entry page for pages), a number per session.
    column: &'s [u32],
    /// The groups' tallies, by group number, added to the answer's at the end.
    tallies: Vec<Tally>,
    /// Visitors counted per breakdown row, as `row << 32 | dense visitor`.
    seen: FxHashSet<u64>,
    /// The same pairs for points, each once.
    fresh: Vec<u64>,
    /// For one group (a total): which dense visitors are counted.
    seen_one: Vec<bool>,
    /// For points, which are visited in time order: the last point a visitor was counted in,
    /// plus one.
    seen_point: Vec<u32>,
    /// The current point, while events are read in time order.
    point: usize,
}

impl<'g, 's> Local<'g, 's> {
    fn new(seg: &'s Segment, grouping: Grouping<'g>, answer: &mut Groups) -> Local<'g, 's> {
        let (dict, column) = match grouping {
            Grouping::By(Dim::Page) => (Some(&seg.pages), &seg.entry[..]),
            Grouping::By(Dim::EventName) => (Some(&seg.names), &[][..]),
            Grouping::By(Dim::Prop(_)) => (Some(&seg.values), &[][..]),
            Grouping::By(dim) => {
                let (dict, column) = seg.session_column(dim).expect("a session-level dimension");
                (Some(dict), column)
            }
            Grouping::PropNames => (Some(&seg.keys), &[][..]),
            Grouping::Total | Grouping::Points(_) => (None, &[][..]),
        };
        let groups = dict
            .map(|d| {
                (0..d.values.len() as u32)
                    .map(|id| d.get(id).map_or(SKIP, |v| answer.id(v)))
                    .collect()
            })
            .unwrap_or_default();
        let visitors = seg.visitor_ids.len();
        Local {
            grouping,
            groups,
            column,
            tallies: vec![Tally::default(); answer.accs.len()],
            seen: FxHashSet::default(),
            fresh: Vec::new(),
            seen_one: match grouping {
                Grouping::Total => vec![false; visitors],
                _ => Vec::new(),
            },
            seen_point: match grouping {
                Grouping::Points(_) => vec![0; visitors],
                _ => Vec::new(),
            },
            point: 0,
        }
    }

    /// The point of an instant; instants come in time order within one pass.
    fn point_of(&mut self, bounds: &[i64], ts: i64) -> u32 {
        if bounds.get(self.point).is_some_and(|&b| ts < b) {
            self.point = 0;
        }
        while self.point + 2 < bounds.len() && ts >= bounds[self.point + 1] {
            self.point += 1;
        }
        self.point as u32
    }

    fn event_group(&mut self, seg: &Segment, i: usize) -> u32 {
        match self.grouping {
            Grouping::Total => 0,
            Grouping::Points(bounds) => self.point_of(bounds, seg.ts[i]),
            Grouping::By(Dim::Page) => self.groups[seg.page[i] as usize],
            Grouping::By(Dim::EventName) => self.groups[seg.name[i] as usize],
            // Properties are looked up per event: see `add_event`.
            Grouping::By(Dim::Prop(_)) | Grouping::PropNames => SKIP,
            Grouping::By(_) => match seg.session[i] {
                NO_SESSION => SKIP,
                s => self.groups[self.column[s as usize] as usize],
            },
        }
    }

    fn session_group(&mut self, seg: &Segment, s: usize) -> u32 {
        match self.grouping {
            Grouping::Total => 0,
            Grouping::Points(bounds) => self.point_of(bounds, seg.start[s]),
            Grouping::By(Dim::EventName | Dim::Prop(_)) | Grouping::PropNames => SKIP,
            // A page's visit metrics are those of the sessions that entered on it.
            Grouping::By(_) => self.groups[self.column[s] as usize],
        }
    }

    fn visitor(&mut self, g: u32, visitor: u32) {
        let pair = u64::from(g) << 32 | u64::from(visitor);
        match self.grouping {
            Grouping::Total => self.seen_one[visitor as usize] = true,
            Grouping::Points(_) => {
                if std::mem::replace(&mut self.seen_point[visitor as usize], g + 1) != g + 1 {
                    self.fresh.push(pair);
                }
            }
            _ => {
                self.seen.insert(pair);
            }
        }
    }

    /// A session: its visit metrics, and with `whole` its pageviews, events and visitor.
    fn add_session(&mut self, seg: &Segment, s: usize, g: u32, whole: bool) {
        let t = &mut self.tallies[g as usize];
        t.visits += 1;
        t.bounces += i64::from(seg.pageviews[s] == 1);
        t.duration += seg.duration[s];
        if whole {
            t.pageviews += i64::from(seg.pageviews[s]);
            t.events += i64::from(seg.events[s]);
            self.visitor(g, seg.visitor[s]);
        }
    }

    fn add_event(&mut self, seg: &Segment, i: usize, s: u32) {
        let pageview = i64::from(seg.kind[i] == PAGEVIEW);
        let count = |this: &mut Self, g: u32| {
            let t = &mut this.tallies[g as usize];
            t.events += 1;
            t.pageviews += pageview;
            this.visitor(g, seg.visitor[s as usize]);
        };
        let props = seg.prop_at[i] as usize..seg.prop_at[i + 1] as usize;
        match self.grouping {
            Grouping::By(Dim::Prop(key)) => {
                let Some(key) = seg.keys.find(key) else { return };
                if let Some(j) = props.clone().find(|&j| seg.prop_key[j] == key) {
                    let g = self.groups[seg.prop_value[j] as usize];
                    count(self, g);
                }
            }
            Grouping::PropNames => {
                for j in props {
                    let g = self.groups[seg.prop_key[j] as usize];
                    count(self, g);
                }
            }
            _ => {
                let g = self.event_group(seg, i);
                if g != SKIP {
                    count(self, g);
                }
            }
        }
    }

    fn add_engagement(&mut self, seg: &Segment, i: usize, g: u32) {
        let t = &mut self.tallies[g as usize];
        t.engaged_ms += i64::from(seg.engaged_ms[i]);
        t.scroll_depth += i64::from(seg.scroll[i]);
    }

    fn finish(self, seg: &Segment, answer: &mut Groups) {
        for (g, t) in self.tallies.iter().enumerate() {
            let acc = &mut answer.accs[g].tally;
            acc.visits += t.visits;
            acc.pageviews += t.pageviews;
            acc.events += t.events;
            acc.bounces += t.bounces;
            acc.duration += t.duration;
            acc.engaged_ms += t.engaged_ms;
            acc.scroll_depth += t.scroll_depth;
        }
        let ids = &seg.visitor_ids;
        if let Grouping::Total = self.grouping {
            let seen = self.seen_one.iter().zip(ids).filter(|(s, _)| **s);
            answer.accs[0].add_visitors(seen.map(|(_, &v)| v));
        }
        let mut pairs = self.fresh;
        pairs.extend(self.seen);
        pairs.sort_unstable();
        for run in pairs.chunk_by(|a, b| a >> 32 == b >> 32) {
            let g = (run[0] >> 32) as usize;
            answer.accs[g].add_visitors(run.iter().map(|&pair| ids[pair as u32 as usize]));
        }
    }
}
