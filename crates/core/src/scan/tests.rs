//! The scan against the pipeline: every rollup row of a day equals the scan of that day filtered
//! to the row, on generated traffic that crosses midnight, changes salts and carries bots.

use std::sync::Arc;

use jiff::civil::{Date, date};

use super::*;
use crate::batch::{Dim, WriteBatch};
use crate::event::{BOT, ENGAGEMENT, Event, PAGEVIEW, Traits};
use crate::filter::{self, Filter};
use crate::pipeline::{DEFAULT_SESSION_TIMEOUT_MS, Pipeline};
use crate::site::Site;
use crate::testing::{Ledger, below};
use crate::time::{Bucket, SiteClock};

const TZ: &str = "Europe/Berlin";
const MIN: i64 = 60_000;

fn clock() -> SiteClock {
    SiteClock::new(TZ).unwrap()
}

/// Local midnight of `d`, Unix ms.
fn midnight(d: Date) -> i64 {
    clock().start_ms(Bucket::day(d))
}

/// Three days of traffic (21st to 23rd) from 80 visitors, in log order.
fn traffic() -> Vec<Event> {
    let mut rnd = below(0x5eed);
    let pages = ["/", "/pricing", "/blog/a", "/blog/b", "/docs", "/a=b;c|d"];
    let sources = [None, Some("Google"), Some("news.ycombinator.com"), Some("Twitter")];
    let countries = [None, Some("DE"), Some("US"), Some("FR")];
    let devices = ["Desktop", "Mobile", "Tablet"];
    let start = midnight(date(2026, 11, 21));
    let end = midnight(date(2026, 11, 24));
    let mut events = Vec::new();
    for v in 1..=80u64 {
        let mut ts = start + rnd(20 * 60) as i64 * MIN;
        while ts < end {
            let source = sources[rnd(4) as usize];
            let traits = Traits {
                device: Some(devices[rnd(3) as usize].into()),
                country: countries[rnd(4) as usize].map(Arc::from),
                channel: Some(if source.is_some() { "Referral" } else { "Direct" }.into()),
                ..Traits::default()
            };
            let bot = rnd(15) == 0;
            let hint = (rnd(10) == 0).then(|| rnd(3));
            for step in 0..=rnd(6) {
                let page = pages[rnd(pages.len() as u64) as usize];
                let (name, props): (&str, Vec<(String, String)>) = match rnd(10) {
                    0..=5 => (PAGEVIEW, vec![]),
                    6 => ("signup", vec![("plan".into(), ["pro", "free"][rnd(2) as usize].into())]),
                    7 => ("click", vec![("plan".into(), "pro".into()), ("x".into(), "1".into())]),
                    _ => (
                        ENGAGEMENT,
                        vec![
                            ("time".into(), (rnd(90_000)).to_string()),
                            ("scroll".into(), rnd(101).to_string()),
                        ],
                    ),
                };
                let mut traits = traits.clone();
                if bot {
                    traits.device = Some(BOT.into());
                }
                // The anonymous id changes at UTC midnight; the previous one comes along.
                let day = ts.div_euclid(86_400_000) as u64;
                let e = Event {
                    site: "a.com".into(),
                    ts,
                    name: name.into(),
                    visitor: v * 1_000 + day,
                    prev_visitor: Some(v * 1_000 + day - 1),
                    session_hint: hint,
                    page: page.into(),
                    source: if step == 0 { source.map(String::from) } else { None },
                    referrer: source.map(|s| format!("{s}/x")),
                    props,
                    traits,
                    ..Event::default()
                };
                events.push(e);
                ts += rnd(25) as i64 * MIN + rnd(60_000) as i64;
            }
            ts += (20 + rnd(600)) as i64 * MIN;
        }
    }
    events.sort_by_key(|e| e.ts);
    events
}

/// The rollups of `events`, folded in log order in batches of 50.
fn rollups(events: &[Event]) -> Ledger {
    let site = Site::new("a.com", TZ, false).unwrap();
    let mut p = Pipeline::new(DEFAULT_SESSION_TIMEOUT_MS, &[site], []);
    let mut ledger = Ledger::default();
    for (n, chunk) in events.chunks(50).enumerate() {
        let mut b = WriteBatch::default();
        for (i, e) in chunk.iter().enumerate() {
            p.fold((n * 50 + i) as u64, e, &mut b);
        }
        p.finish(&mut b);
        ledger.apply(b);
    }
    ledger
}

fn dim_of(name: &str) -> Dim {
    match name.strip_prefix("prop:") {
        Some(p) => Dim::Prop(p.into()),
        None => Dim::NAMED.into_iter().find(|d| d.to_string() == name).unwrap(),
    }
}

fn scan_day(
    segments: &[Segment],
    day: Date,
    filters: &[Filter],
    grouping: Grouping,
) -> Vec<(Arc<str>, Tally)> {
    let segs: Vec<&Segment> = segments.iter().filter(|s| s.date <= day).collect();
    let next = day.tomorrow().unwrap();
    tally(&segs, filters, midnight(day)..midnight(next), grouping)
}

#[test]
fn every_rollup_row_equals_the_scan_filtered_to_it() {
    let events = traffic();
    let ledger = rollups(&events);
    let day = date(2026, 11, 22);
    let segments =
        build(&events, &clock(), DEFAULT_SESSION_TIMEOUT_MS, day.yesterday().unwrap()..=day);
    assert_eq!(segments.len(), 2);
    let label = day.to_string();
    let mut rows = 0;
    for (bucket, slice) in ledger.uniques.keys() {
        if *bucket != label || slice == "total" {
            continue;
        }
        let (name, value) = slice.split_once('=').unwrap();
        let dim = dim_of(name);
        let got = scan_day(&segments, day, &[Filter::is(dim.clone(), value)], Grouping::Total);
        let got = got[0].1;
        let counter = |c: &str| ledger.get(&label, slice, c);
        // A page's visit metrics are those of the sessions that entered on it.
        let visits_of =
            if dim == Dim::Page { format!("entry_page={value}") } else { slice.clone() };
        let visit = |c: &str| ledger.get(&label, &visits_of, c);
        // Rollups have no visit metrics by event name or property.
        let has_visits = dim.is_session_level() || dim == Dim::Page;
        let expected = Tally {
            visitors: ledger.visitors(&label, slice) as u64,
            visits: if has_visits { visit("visits") } else { got.visits },
            bounces: if has_visits { visit("bounces") } else { got.bounces },
            duration: if has_visits { visit("duration") } else { got.duration },
            pageviews: counter("pageviews"),
            events: counter("events"),
            engaged_ms: counter("engaged_ms"),
            scroll_depth: counter("scroll_depth"),
        };
        let expected = match dim {
            // Rollups keep engagement by page only; the scan's are those of the sessions.
            Dim::Page => expected,
            _ => Tally { engaged_ms: got.engaged_ms, scroll_depth: got.scroll_depth, ..expected },
        };
        // A rollup counts a visitor on every page their session's exit passed through, since
        // a unique count cannot take one back; the scan counts where sessions did exit, which
        // is why exit-page breakdowns are scanned.
        let expected = match dim {
            Dim::ExitPage => {
                assert!(got.visitors <= expected.visitors, "{slice}");
                Tally { visitors: got.visitors, ..expected }
            }
            _ => expected,
        };
        assert_eq!(got, expected, "{slice}");
        rows += 1;
    }
    assert!(rows >= 40, "only {rows} rows were compared");

    // A breakdown with a filter gives each row what the filter for it gives.
    let google: Vec<Filter> = filter::parse("visit:source==Google", |_| Ok(Dim::Source)).unwrap();
    let pages = scan_day(&segments, day, &google, Grouping::By(&Dim::Page));
    assert!(pages.len() > 3);
    for (page, t) in pages {
        let both = [google[0].clone(), Filter::is(Dim::Page, &page)];
        assert_eq!(scan_day(&segments, day, &both, Grouping::Total)[0].1, t, "{page}");
    }
}

#[test]
fn timeseries_points_split_the_day() {
    let events = traffic();
    let ledger = rollups(&events);
    let day = date(2026, 11, 22);
    let segments =
        build(&events, &clock(), DEFAULT_SESSION_TIMEOUT_MS, day.yesterday().unwrap()..=day);
    let bounds: Vec<i64> = (0..=24).map(|h| midnight(day) + h * 60 * MIN).collect();
    let filter = [Filter::is(Dim::EventName, "signup")];
    let points = scan_day(&segments, day, &filter, Grouping::Points(&bounds));
    assert_eq!(points.len(), 24);
    let sum: i64 = points.iter().map(|(_, t)| t.events).sum();
    assert_eq!(sum, ledger.get(&day.to_string(), "name=signup", "events"));
    // Hour by hour against the events themselves.
    for (p, (label, t)) in points.iter().enumerate() {
        assert_eq!(&**label, p.to_string());
        let hour = bounds[p]..bounds[p + 1];
        let mine: Vec<&Event> = events
            .iter()
            .filter(|e| hour.contains(&e.ts) && e.name == "signup" && !e.traits.is_bot())
            .collect();
        assert_eq!(t.events, mine.len() as i64, "hour {p}");
    }
}

#[test]
fn property_names_and_prop_filters() {
    let events = traffic();
    let day = date(2026, 11, 22);
    let segments =
        build(&events, &clock(), DEFAULT_SESSION_TIMEOUT_MS, day.yesterday().unwrap()..=day);
    let (from, to) = (midnight(day), midnight(day.tomorrow().unwrap()));
    let counted = |pred: &dyn Fn(&Event) -> bool| {
        events
            .iter()
            .filter(|e| {
                (from..to).contains(&e.ts) && !e.traits.is_bot() && e.name != ENGAGEMENT && pred(e)
            })
            .count() as i64
    };
    let has = |e: &Event, k: &str| e.props.iter().any(|(key, _)| key == k);
    let names = scan_day(&segments, day, &[], Grouping::PropNames);
    let mut names: Vec<(String, i64)> =
        names.into_iter().map(|(n, t)| (n.to_string(), t.events)).collect();
    names.sort();
    assert_eq!(
        names,
        [("plan".into(), counted(&|e| has(e, "plan"))), ("x".into(), counted(&|e| has(e, "x")))]
    );

    let prop = |s: &str| {
        filter::parse(s, |p| Ok(Dim::Prop(p.strip_prefix("event:props:").unwrap().into()))).unwrap()
    };
    let plan = |e: &Event| e.props.iter().find(|(k, _)| k == "plan").map(|(_, v)| v.clone());
    let t = scan_day(&segments, day, &prop("event:props:plan!=pro"), Grouping::Total)[0].1;
    assert_eq!(t.events, counted(&|e| plan(e).as_deref() != Some("pro")));
    let t = scan_day(&segments, day, &prop("event:props:plan==(none)"), Grouping::Total)[0].1;
    assert_eq!(t.events, counted(&|e| plan(e).is_none()));
}
