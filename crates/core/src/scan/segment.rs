//! [`Segment`]: one site-day of sessionized events, column by column.

use std::ops::RangeInclusive;
use std::sync::Arc;

use jiff::civil::Date;
use rustc_hash::FxHashMap;

use crate::batch::Dim;
use crate::event::{ENGAGEMENT, Event};
use crate::pipeline::{ATTRIBUTION_DIMS, attribution_parts, continues_span, engagement};
use crate::time::{CachedClock, Grain, SiteClock, civil_from_days, days_from_civil};

/// The dictionary number of a missing value in every column.
pub(super) const MISSING: u32 = 0;
/// The session of an engagement report that no session was open for.
pub(super) const NO_SESSION: u32 = u32::MAX;

pub(super) const PAGEVIEW: u8 = 1;
pub(super) const ENGAGEMENT_REPORT: u8 = 2;

/// Distinct strings of one column, numbered from 1 (0 is [`MISSING`]).
#[derive(Debug, Default)]
pub(super) struct Dict {
    pub values: Vec<Arc<str>>,
    index: FxHashMap<Arc<str>, u32>,
}

impl Dict {
    fn new() -> Dict {
        Dict { values: vec![Arc::from("")], index: FxHashMap::default() }
    }

    fn id(&mut self, s: Option<&str>) -> u32 {
        let Some(s) = s else { return MISSING };
        if let Some(&id) = self.index.get(s) {
            return id;
        }
        let id = self.values.len() as u32;
        let s: Arc<str> = s.into();
        self.values.push(s.clone());
        self.index.insert(s, id);
        id
    }

    /// The value of a number; `None` for [`MISSING`].
    pub fn get(&self, id: u32) -> Option<&str> {
        (id != MISSING).then(|| &*self.values[id as usize])
    }

    /// Evaluates `f` once per distinct value (and the missing one), for a scan to look up.
    pub fn decide(&self, f: impl Fn(Option<&str>) -> bool) -> Vec<bool> {
        (0..self.values.len() as u32).map(|id| f(self.get(id))).collect()
    }

    /// The number of a value, if it occurs.
    pub fn find(&self, s: &str) -> Option<u32> {
        self.index.get(s).copied()
    }
}

/// The sessions that started on one local day of a site, and all their events (including
/// those after midnight), plus the engagement reports of that day that no session was open for.
/// Events are in time order, sessions in order of start.
#[derive(Debug)]
pub struct Segment {
    pub date: Date,
    // Events.
    pub(super) ts: Vec<i64>,
    pub(super) session: Vec<u32>,
    pub(super) page: Vec<u32>,
    pub(super) name: Vec<u32>,
    pub(super) kind: Vec<u8>,
    /// Engagement reports' visible ms and scroll %; 0 for other events.
    pub(super) engaged_ms: Vec<u32>,
    pub(super) scroll: Vec<u8>,
    /// Event `i`'s properties are `prop_key[prop_at[i]..prop_at[i + 1]]` (and `prop_value`).
    pub(super) prop_at: Vec<u32>,
    pub(super) prop_key: Vec<u32>,
    pub(super) prop_value: Vec<u32>,
    // Sessions.
    pub(super) start: Vec<i64>,
    pub(super) duration: Vec<i64>,
    pub(super) pageviews: Vec<u32>,
    pub(super) events: Vec<u32>,
    /// Dense visitor numbers; [`Segment::visitor_ids`] holds their ids.
    pub(super) visitor: Vec<u32>,
    pub(super) entry: Vec<u32>,
    pub(super) exit: Vec<u32>,
    /// The other session-level dimensions, in the order of [`session_values`].
    pub(super) columns: Vec<Column>,
    // Dictionaries.
    pub(super) visitor_ids: Vec<u64>,
    pub(super) pages: Dict,
    pub(super) names: Dict,
    pub(super) keys: Dict,
    pub(super) values: Dict,
}

/// One session-level dimension's values, a number per session.
#[derive(Debug)]
pub(super) struct Column {
    dim: Dim,
    dict: Dict,
    ids: Vec<u32>,
}

/// A session's values of every session-level dimension but its entry and exit page, from its
/// first event, as the pipeline attributes them.
fn session_values(first: &Event) -> impl Iterator<Item = (Dim, Option<&str>)> {
    let traits = first.traits.dims().map(|(dim, v)| (dim, v.map(|v| &**v)));
    ATTRIBUTION_DIMS.into_iter().zip(attribution_parts(first)).chain(traits)
}

impl Segment {
    fn new(date: Date) -> Segment {
        Segment {
            date,
            ts: Vec::new(),
            session: Vec::new(),
            page: Vec::new(),
            name: Vec::new(),
            kind: Vec::new(),
            engaged_ms: Vec::new(),
            scroll: Vec::new(),
            prop_at: vec![0],
            prop_key: Vec::new(),
            prop_value: Vec::new(),
            start: Vec::new(),
            duration: Vec::new(),
            pageviews: Vec::new(),
            events: Vec::new(),
            visitor: Vec::new(),
            entry: Vec::new(),
            exit: Vec::new(),
            columns: session_values(&Event::default())
                .map(|(dim, _)| Column { dim, dict: Dict::new(), ids: Vec::new() })
                .collect(),
            visitor_ids: Vec::new(),
            pages: Dict::new(),
            names: Dict::new(),
            keys: Dict::new(),
            values: Dict::new(),
        }
    }

    /// How many events it holds.
    pub fn len(&self) -> usize {
        self.ts.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ts.is_empty()
    }

    /// Approximate heap bytes, for a cache to bound its size.
    pub fn heap_bytes(&self) -> usize {
        let events = self.ts.len() * (8 + 4 + 4 + 4 + 1 + 4 + 1 + 4);
        let props = self.prop_key.len() * 8;
        let sessions = self.start.len() * (8 + 8 + 4 + 4 + 4 + 4 + 4 + self.columns.len() * 4);
        let dicts = [&self.pages, &self.names, &self.keys, &self.values]
            .into_iter()
            .chain(self.columns.iter().map(|c| &c.dict))
            .map(|d| d.values.iter().map(|v| v.len() + 48).sum::<usize>())
            .sum::<usize>();
        events + props + sessions + dicts + self.visitor_ids.len() * 12
    }

    /// The dictionary and column of a session-level dimension.
    pub(super) fn session_column(&self, dim: &Dim) -> Option<(&Dict, &[u32])> {
        match dim {
            Dim::EntryPage => Some((&self.pages, &self.entry)),
            Dim::ExitPage => Some((&self.pages, &self.exit)),
            _ => self.columns.iter().find(|c| c.dim == *dim).map(|c| (&c.dict, &c.ids[..])),
        }
    }
}

/// A session as the scan's sessionizer keeps it.
struct Open {
    start: i64,
    last: i64,
    hint: Option<u64>,
    pageviews: u32,
    events: u32,
    entry: Option<usize>,
    exit: Option<usize>,
    /// The event it started with, whose attribution it keeps.
    first: usize,
    /// The visitor id it is kept under (a continued session keeps yesterday's id).
    visitor: u64,
}

/// Sessionizes a site's events (in time order, as the raw log returns them) and lays out the
/// segments of `days`: sessions are cut as the pipeline cuts them (`timeout_ms` of inactivity,
/// a change of client session id, yesterday's visitor id continuing a session across the salt
/// change), so `events` should start a day before the first of `days` for sessions that began
/// the evening before, and end a day after the last, for sessions that run past midnight.
/// Bots are left out: they have no sessions.
pub fn build(
    events: &[Event],
    clock: &SiteClock,
    timeout_ms: i64,
    days: RangeInclusive<Date>,
) -> Vec<Segment> {
    let mut order: Vec<usize> = (0..events.len()).collect();
    if !events.is_sorted_by_key(|e| e.ts) {
        order.sort_by_key(|&i| events[i].ts);
    }
    let mut sessions: Vec<Open> = Vec::new();
    let mut open: FxHashMap<u64, u32> = FxHashMap::default();
    // Each event's session, NO_SESSION for bots and orphan reports.
    let mut of: Vec<u32> = vec![NO_SESSION; events.len()];
    for &i in &order {
        let e = &events[i];
        if e.traits.is_bot() {
            continue;
        }
        let continued = |key: u64| {
            open.get(&key).copied().filter(|&s| {
                let s = &sessions[s as usize];
                continues_span(s.start, s.last, s.hint, e, timeout_ms)
            })
        };
        let found = continued(e.visitor).or_else(|| e.prev_visitor.and_then(continued));
        if e.name == ENGAGEMENT {
            // A report belongs to the page view's session but never lengthens it.
            if let Some(s) = found {
                of[i] = s;
            }
            continue;
        }
        let pageview = e.is_pageview();
        let s = match found {
            Some(s) => {
                let s_ = &mut sessions[s as usize];
                s_.last = s_.last.max(e.ts);
                s_.events += 1;
                if pageview {
                    s_.pageviews += 1;
                    s_.entry.get_or_insert(i);
                    s_.exit = Some(i);
                }
                s
            }
            None => {
                let s = sessions.len() as u32;
                sessions.push(Open {
                    start: e.ts,
                    last: e.ts,
                    hint: e.session_hint,
                    pageviews: u32::from(pageview),
                    events: 1,
                    entry: pageview.then_some(i),
                    exit: pageview.then_some(i),
                    first: i,
                    visitor: e.visitor,
                });
                open.insert(e.visitor, s);
                s
            }
        };
        of[i] = s;
    }

    let (first, last) = (days_from_civil(*days.start()), days_from_civil(*days.end()));
    let mut clock = CachedClock::new(clock.clone());
    let session_day: Vec<i64> =
        sessions.iter().map(|s| clock.bucket(s.start, Grain::Day).index).collect();
    let mut segments: Vec<Segment> =
        (first..=last).map(|d| Segment::new(civil_from_days(d))).collect();
    let mut local: Vec<u32> = vec![NO_SESSION; sessions.len()];
    let mut visitors: Vec<FxHashMap<u64, u32>> = vec![FxHashMap::default(); segments.len()];
    for &i in &order {
        let e = &events[i];
        let s = of[i];
        let day = match s {
            NO_SESSION if e.name == ENGAGEMENT && !e.traits.is_bot() => {
                clock.bucket(e.ts, Grain::Day).index
            }
            NO_SESSION => continue,
            s => session_day[s as usize],
        };
        if !(first..=last).contains(&day) {
            continue;
        }
        let k = (day - first) as usize;
        let seg = &mut segments[k];
        let session = match s {
            NO_SESSION => NO_SESSION,
            s if local[s as usize] != NO_SESSION => local[s as usize],
            s => {
                let open = &sessions[s as usize];
                let dense = visitors[k].len() as u32;
                let visitor = *visitors[k].entry(open.visitor).or_insert(dense);
                if visitor == dense {
                    seg.visitor_ids.push(open.visitor);
                }
                local[s as usize] = add_session(seg, open, visitor, events);
                local[s as usize]
            }
        };
        add_event(seg, e, session);
    }
    segments
}

fn add_session(seg: &mut Segment, s: &Open, visitor: u32, events: &[Event]) -> u32 {
    let first = &events[s.first];
    let page = |at: Option<usize>| at.map(|i| events[i].page.as_str());
    let entry = seg.pages.id(page(s.entry));
    let exit = seg.pages.id(page(s.exit));
    for (column, (_, value)) in seg.columns.iter_mut().zip(session_values(first)) {
        let id = column.dict.id(value);
        column.ids.push(id);
    }
    seg.start.push(s.start);
    seg.duration.push(s.last - s.start);
    seg.pageviews.push(s.pageviews);
    seg.events.push(s.events);
    seg.visitor.push(visitor);
    seg.entry.push(entry);
    seg.exit.push(exit);
    (seg.start.len() - 1) as u32
}

fn add_event(seg: &mut Segment, e: &Event, session: u32) {
    let report = e.name == ENGAGEMENT;
    let (ms, scroll) = if report { engagement(e) } else { (0, 0) };
    let page = seg.pages.id(Some(&e.page));
    let name = seg.names.id(Some(&e.name));
    seg.ts.push(e.ts);
    seg.session.push(session);
    seg.page.push(page);
    seg.name.push(name);
    seg.kind.push(match () {
        _ if report => ENGAGEMENT_REPORT,
        _ if e.is_pageview() => PAGEVIEW,
        _ => 0,
    });
    seg.engaged_ms.push(ms as u32);
    seg.scroll.push(scroll as u8);
    if !report {
        for (k, v) in &e.props {
            let (k, v) = (seg.keys.id(Some(k)), seg.values.id(Some(v)));
            seg.prop_key.push(k);
            seg.prop_value.push(v);
        }
    }
    seg.prop_at.push(seg.prop_key.len() as u32);
}
