//! Filtered queries over the raw log's segments ([`footfall_core::scan`]), on one core:
//! - `build`: sessionizing a site's events and laying them out as day segments (done once per
//!   day and cached by the server; rebuilt only for days that change);
//! - `aggregate/…`: a filtered aggregate (every metric) over the day, the dashboard's cards;
//! - `timeseries/hourly`: the same filter by hour, the dashboard's chart;
//! - `breakdown/pages`: pages of the filtered sessions, a dashboard panel.
//!
//! The traffic is the pipeline benchmark's (`support/traffic.rs`): one site's day of about a
//! million events. Throughput is in events of the scanned segments per second of the benchmark
//! thread's CPU time; criterion's time per iteration is the latency of one query. Run with
//! `cargo bench -p footfall-core --bench scan`.

use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use footfall_core::batch::Dim;
use footfall_core::event::Event;
use footfall_core::ingest::{self, Payload};
use footfall_core::pipeline::DEFAULT_SESSION_TIMEOUT_MS;
use footfall_core::scan::{self, Grouping, Segment};
use footfall_core::time::Bucket;
use jiff::civil::date;

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[path = "support/cpu_time.rs"]
mod cpu_time;
#[allow(dead_code)]
#[path = "support/traffic.rs"]
mod traffic;

use cpu_time::CpuTime;
use traffic::{Shape, Traffic};

/// The site of the traffic whose day (UTC) is scanned.
const SITE: &str = "shop.example";

fn events(t: &Traffic) -> Vec<Event> {
    let mut out = Vec::with_capacity(t.events);
    for r in &t.requests {
        let decoded = ingest::decode(Payload::Browser, &r.body, r.clock).expect("valid body");
        for (incoming, &peer) in decoded.into_iter().zip(&r.peers) {
            let e = t.identify(incoming.expect("valid event"), &t.peers[peer]);
            if &*e.site == SITE {
                out.push(e);
            }
        }
    }
    out
}

fn parse(filters: &str) -> Vec<footfall_core::filter::Filter> {
    footfall_core::filter::parse(filters, |p| {
        Ok(match p {
            "event:page" => Dim::Page,
            "event:name" => Dim::EventName,
            "visit:source" => Dim::Source,
            "visit:device" => Dim::Device,
            "visit:country" => Dim::Country,
            other => return Err(format!("{other} is not in this benchmark")),
        })
    })
    .unwrap()
}

fn scans(c: &mut Criterion<CpuTime>) {
    let t = Traffic::generate(440_000, Shape::Browsing);
    let events = events(&t);
    let site = t.site(SITE);
    let clock = site.clock().unwrap();
    let day = date(2026, 11, 22);
    let days = day.yesterday().unwrap()..=day;
    let segments = scan::build(&events, &clock, DEFAULT_SESSION_TIMEOUT_MS, days.clone());
    let held: Vec<&Segment> = segments.iter().collect();
    let scanned: usize = segments.iter().map(Segment::len).sum();
    let bytes: usize = segments.iter().map(Segment::heap_bytes).sum();
    let range =
        clock.start_ms(Bucket::day(day))..clock.start_ms(Bucket::day(day.tomorrow().unwrap()));
    eprintln!(
        "{} events of {SITE} ({} in the segments of {} and the day before), {} MB of segments",
        events.len(),
        scanned,
        day,
        bytes >> 20
    );

    let mut g = c.benchmark_group("scan");
    g.measurement_time(Duration::from_secs(8));
    g.sample_size(20);
    g.throughput(Throughput::Elements(events.len() as u64));
    g.bench_function("build", |b| {
        b.iter(|| black_box(scan::build(&events, &clock, DEFAULT_SESSION_TIMEOUT_MS, days.clone())))
    });

    g.throughput(Throughput::Elements(scanned as u64));
    for (name, filters) in [
        ("aggregate/page", "event:page==/"),
        ("aggregate/source", "visit:source==Google"),
        (
            "aggregate/source_device_not_page",
            "visit:source==Google|Bing;visit:device==Mobile;event:page!=/",
        ),
        ("aggregate/page_contains", "event:page~product"),
    ] {
        let filters = parse(filters);
        let visitors = scan::tally(&held, &filters, range.clone(), Grouping::Total)[0].1.visitors;
        assert!(visitors > 0, "{name} matches nothing");
        g.bench_function(name, |b| {
            b.iter(|| black_box(scan::tally(&held, &filters, range.clone(), Grouping::Total)))
        });
    }
    let filters = parse("visit:source==Google");
    let hours: Vec<i64> = (0..=24).map(|h| range.start + h * 3_600_000).collect();
    g.bench_function("timeseries/hourly", |b| {
        b.iter(|| black_box(scan::tally(&held, &filters, range.clone(), Grouping::Points(&hours))))
    });
    g.bench_function("breakdown/pages", |b| {
        b.iter(|| black_box(scan::tally(&held, &filters, range.clone(), Grouping::By(&Dim::Page))))
    });
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().with_measurement(CpuTime);
    targets = scans
}
criterion_main!(benches);
