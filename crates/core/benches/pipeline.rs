//! Throughput of the in-process pipeline on one core, stage by stage and end to end:
//! - `decode`: request bodies (JSON batches of 50 events) → [`Incoming`]s;
//! - `identify`: [`Incoming::into_event`], with the site looked up as the collector does;
//! - `fold`: [`Pipeline::fold`] of ~1,000 events, then [`Pipeline::finish`], into a
//!   [`WriteBatch`] that is cleared for the next flush (as the server reuses its own once the
//!   store has it);
//! - `end_to_end`: all three for 20 requests (1,000 events) per batch: the headline figure.
//!
//! Run with `cargo bench -p footfall-core --bench pipeline`. Throughput is in events ("elem")
//! per second of the benchmark thread's CPU time, that is per core, unaffected by whatever
//! else the machine runs. The traffic is generated deterministically (`support/traffic.rs`).

use std::hint::black_box;
use std::time::Duration;

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use footfall_core::batch::{Counter, RowDelta, RowId, Slice, WriteBatch};
use footfall_core::event::Event;
use footfall_core::ingest::{self, Incoming, Payload};
use footfall_core::pipeline::{DEFAULT_SESSION_TIMEOUT_MS, Pipeline};
use footfall_core::time::Grain;

// The footfall binary's allocator: the pipeline allocates many small, short-lived strings, and
// the allocator changes the figures by 10-15%.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[path = "support/cpu_time.rs"]
mod cpu_time;
// Shared with the session-memory example, which uses other parts of it.
#[allow(dead_code)]
#[path = "support/traffic.rs"]
mod traffic;

use cpu_time::{CpuTime, thread_cpu_time};
use traffic::{REQUEST_EVENTS, Shape, Traffic};

/// Requests folded into one `WriteBatch` before it is finished and handed over (dropped).
const REQUESTS_PER_FLUSH: usize = 20;
const FLUSH_EVENTS: usize = REQUESTS_PER_FLUSH * REQUEST_EVENTS;

fn decode_all(t: &Traffic) -> Vec<Vec<Incoming>> {
    t.requests
        .iter()
        .map(|r| {
            let decoded = ingest::decode(Payload::Browser, &r.body, r.clock).expect("valid body");
            decoded.into_iter().map(|e| e.expect("valid event")).collect()
        })
        .collect()
}

/// Identifies events as the collector does: classifies the client, looks up the site, derives
/// the event.
fn identify(
    t: &Traffic,
    peers: &[usize],
    incoming: impl IntoIterator<Item = Incoming>,
    out: &mut Vec<Event>,
) {
    for (incoming, &peer) in incoming.into_iter().zip(peers) {
        // Each event from its own client: requests here carry many visitors' events.
        out.push(t.identify(incoming, &t.peers[peer]));
    }
}

fn new_pipeline(t: &Traffic) -> Pipeline {
    Pipeline::new(DEFAULT_SESSION_TIMEOUT_MS, &t.sites, [])
}

/// A pipeline that keeps its sessions from one flush to the next, as the server's does, and
/// starts over with an empty one (untimed) after the last flush of the traffic, so that no
/// event is folded twice into the same sessions.
struct Flushes<'t> {
    traffic: &'t Traffic,
    pipeline: Pipeline,
    next: usize,
}

impl<'t> Flushes<'t> {
    fn new(traffic: &'t Traffic) -> Flushes<'t> {
        Flushes { traffic, pipeline: new_pipeline(traffic), next: 0 }
    }

    /// The next flush's index, the pipeline to fold it with, and the CPU time it takes `fold`.
    fn time(&mut self, fold: impl FnOnce(usize, &mut Pipeline)) -> Duration {
        if self.next == self.traffic.requests.len() / REQUESTS_PER_FLUSH {
            self.pipeline = new_pipeline(self.traffic);
            self.next = 0;
        }
        let started = thread_cpu_time();
        fold(self.next, &mut self.pipeline);
        let elapsed = thread_cpu_time() - started;
        self.next += 1;
        elapsed
    }
}

fn pipeline(c: &mut Criterion<CpuTime>) {
    let t = Traffic::generate(5_000, Shape::Browsing);
    let incoming = decode_all(&t);
    let mut events = Vec::with_capacity(t.events);
    for (batch, r) in incoming.iter().zip(&t.requests) {
        identify(&t, &r.peers, batch.clone(), &mut events);
    }
    let visits: i64 = {
        let mut p = new_pipeline(&t);
        let mut b = WriteBatch::default();
        for (i, e) in events.iter().enumerate() {
            p.fold(i as u64, e, &mut b);
        }
        p.finish(&mut b);
        let day_visits = |(id, d): (&RowId, &RowDelta)| {
            let total = id.slice == Slice::Total && id.bucket.grain == Grain::Day;
            total.then(|| d.get(Counter::Visits))
        };
        b.rows().filter_map(day_visits).sum()
    };
    eprintln!(
        "traffic: {} events ({} pageviews) in {} requests of {} bytes on average; {} visitors, \
         {} visits",
        t.events,
        events.iter().filter(|e| e.is_pageview()).count(),
        t.requests.len(),
        t.requests.iter().map(|r| r.body.len()).sum::<usize>() / t.requests.len(),
        t.peers.len(),
        visits,
    );

    let mut g = c.benchmark_group("pipeline");
    g.measurement_time(Duration::from_secs(8));

    g.throughput(Throughput::Elements(REQUEST_EVENTS as u64));
    let mut next = 0;
    g.bench_function("decode", |b| {
        b.iter(|| {
            let r = &t.requests[next];
            next = (next + 1) % t.requests.len();
            black_box(ingest::decode(Payload::Browser, black_box(&r.body), r.clock).unwrap())
        })
    });

    let mut next = 0;
    g.bench_function("identify", |b| {
        b.iter_batched(
            || {
                let i = next;
                next = (next + 1) % t.requests.len();
                (incoming[i].clone(), &t.requests[i].peers)
            },
            |(batch, peers)| {
                let mut out = Vec::with_capacity(REQUEST_EVENTS);
                identify(&t, peers, batch, &mut out);
                out
            },
            BatchSize::SmallInput,
        )
    });

    g.throughput(Throughput::Elements(FLUSH_EVENTS as u64));
    let mut flushes = Flushes::new(&t);
    let mut batch = WriteBatch::default();
    g.bench_function("fold", |b| {
        b.iter_custom(|iters| {
            (0..iters)
                .map(|_| {
                    flushes.time(|flush, p| {
                        let first = flush * FLUSH_EVENTS;
                        batch.clear();
                        for (i, e) in events[first..first + FLUSH_EVENTS].iter().enumerate() {
                            p.fold((first + i) as u64, e, &mut batch);
                        }
                        p.finish(&mut batch);
                        black_box(&batch);
                    })
                })
                .sum()
        })
    });

    let mut flushes = Flushes::new(&t);
    let mut events = Vec::with_capacity(REQUEST_EVENTS);
    g.bench_function("end_to_end", |b| {
        b.iter_custom(|iters| {
            (0..iters)
                .map(|_| {
                    flushes.time(|flush, p| {
                        let first = flush * REQUESTS_PER_FLUSH;
                        batch.clear();
                        let mut offset = (first * REQUEST_EVENTS) as u64;
                        for r in &t.requests[first..first + REQUESTS_PER_FLUSH] {
                            let decoded =
                                ingest::decode(Payload::Browser, black_box(&r.body), r.clock);
                            let incoming = decoded.unwrap().into_iter().map(Result::unwrap);
                            events.clear();
                            identify(&t, &r.peers, incoming, &mut events);
                            for e in &events {
                                p.fold(offset, e, &mut batch);
                                offset += 1;
                            }
                        }
                        p.finish(&mut batch);
                        black_box(&batch);
                    })
                })
                .sum()
        })
    });
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().with_measurement(CpuTime);
    targets = pipeline
}
criterion_main!(benches);
