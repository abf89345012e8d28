//! User agent classification, per user agent:
//! - `parse`: [`Agents::parse`], uncached: uap-core's regexes and the bot rules;
//! - `classify_warm`: [`Agents::classify`] on a cache that holds every user agent already,
//!   which is what nearly every request costs.
//!
//! The user agents are uap-core's 1,600 test cases (`shared/data/user-agents`, next to the
//! repository), taken in turn: browsers, apps and bots of every age. Run with
//! `cargo bench -p footfall-core --bench agents`; times are the benchmark thread's CPU time.

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use footfall_core::classify::agent::Agents;
use serde::Deserialize;

// The footfall binary's allocator, as in the pipeline benchmark.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[path = "support/cpu_time.rs"]
mod cpu_time;

use cpu_time::CpuTime;

const TEST_UA: &str =
    concat!(env!("CARGO_MANIFEST_DIR"), "/../../../shared/data/user-agents/uap-core/test_ua.yaml");

#[derive(Deserialize)]
struct Cases {
    test_cases: Vec<Case>,
}

#[derive(Deserialize)]
struct Case {
    user_agent_string: String,
}

fn agents(c: &mut Criterion<CpuTime>) {
    let yaml = std::fs::read_to_string(TEST_UA).unwrap_or_else(|e| panic!("{TEST_UA}: {e}"));
    let cases: Cases = serde_norway::from_str(&yaml).unwrap();
    let uas: Vec<String> = cases.test_cases.into_iter().map(|c| c.user_agent_string).collect();

    let started = Instant::now();
    let agents = Agents::with_capacity(2 * uas.len());
    eprintln!(
        "{} user agents; uap-core's regexes and the bot rules compiled in {:?}",
        uas.len(),
        started.elapsed()
    );

    let mut g = c.benchmark_group("agents");
    g.measurement_time(Duration::from_secs(5));
    g.throughput(Throughput::Elements(1));

    let mut next = 0;
    g.bench_function("parse", |b| {
        b.iter(|| {
            next = (next + 1) % uas.len();
            black_box(agents.parse(black_box(&uas[next])))
        })
    });

    for ua in &uas {
        agents.classify(ua);
    }
    g.bench_function("classify_warm", |b| {
        b.iter(|| {
            next = (next + 1) % uas.len();
            black_box(agents.classify(black_box(&uas[next])))
        })
    });
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().with_measurement(CpuTime);
    targets = agents
}
criterion_main!(benches);
