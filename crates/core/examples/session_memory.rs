//! Heap bytes per active session held by the pipeline.
//!
//! Run with `cargo run -p footfall-core --release --example session_memory [VISITORS]`
//! (100,000 visitors by default).
//!
//! A counting global allocator tracks live heap bytes. N distinct visitors each land with one
//! pageview (realistic pages and attribution, from the benchmark's traffic generator); the
//! events are decoded and identified first, then folded, and the batches are finished and
//! dropped as the server does after handing them to the store. What the pipeline still holds
//! afterwards, divided by N, is the memory cost of a live session: its map entry, its share of
//! the maps' spare capacity, and its share of the pages, attributions and strings it names.
//! The pipeline also keeps the capacity of its table of the sessions a batch changed, which is
//! proportional to the largest batch rather than to the sessions: measured with the server's
//! largest batch (20,000 events, its `PipelineOptions::max_batch_events`) and with small ones.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};

use footfall_core::batch::WriteBatch;
use footfall_core::event::Event;
use footfall_core::ingest::{self, Payload};
use footfall_core::pipeline::{DEFAULT_SESSION_TIMEOUT_MS, Pipeline, SESSION_ENTRY_BYTES};

// Shared with the pipeline benchmark, which uses other parts of it.
#[allow(dead_code)]
#[path = "../benches/support/traffic.rs"]
mod traffic;

use traffic::{Shape, Traffic};

/// The system allocator, counting the bytes currently allocated.
struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            LIVE.fetch_add(layout.size(), Relaxed);
        }
        p
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { System.alloc_zeroed(layout) };
        if !p.is_null() {
            LIVE.fetch_add(layout.size(), Relaxed);
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) };
        LIVE.fetch_sub(layout.size(), Relaxed);
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            LIVE.fetch_add(new_size, Relaxed);
            LIVE.fetch_sub(layout.size(), Relaxed);
        }
        p
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// Folds `events` in flushes of `flush` events, finishing and dropping each batch, and returns
/// the heap bytes the pipeline holds afterwards beyond what it held empty.
fn held_after_folding(t: &Traffic, events: &[Event], flush: usize) -> (usize, usize) {
    let mut p = Pipeline::new(DEFAULT_SESSION_TIMEOUT_MS, &t.sites, []);
    let before = LIVE.load(Relaxed);
    for (n, chunk) in events.chunks(flush).enumerate() {
        let mut batch = WriteBatch::default();
        for (i, e) in chunk.iter().enumerate() {
            p.fold((n * flush + i) as u64, e, &mut batch);
        }
        p.finish(&mut batch);
        drop(batch);
    }
    let held = LIVE.load(Relaxed) - before;
    (held, p.active_sessions())
}

fn main() {
    let visitors = std::env::args().nth(1).map_or(100_000, |n| n.parse().expect("a number"));
    let t = Traffic::generate(visitors, Shape::Landings);
    let mut events = Vec::with_capacity(t.events);
    for r in &t.requests {
        let decoded = ingest::decode(Payload::Browser, &r.body, r.clock).expect("valid request");
        for (incoming, &peer) in decoded.into_iter().zip(&r.peers) {
            let incoming = incoming.expect("valid event");
            events.push(t.identify(incoming, &t.peers[peer]));
        }
    }
    let pages: std::collections::HashSet<&str> = events.iter().map(|e| e.page.as_str()).collect();
    let sources: std::collections::HashSet<_> = events.iter().map(|e| &e.source).collect();
    println!(
        "{} landing pageviews: {} distinct pages, {} distinct sources, {} with UTM tags",
        events.len(),
        pages.len(),
        sources.len(),
        events.iter().filter(|e| e.utm_source.is_some() || e.utm_campaign.is_some()).count(),
    );
    println!("session map entry (key + session): {SESSION_ENTRY_BYTES} bytes");

    for (label, flush) in [("flushes of 20,000", 20_000), ("flushes of 1,000", 1_000)] {
        let (held, sessions) = held_after_folding(&t, &events, flush);
        println!(
            "{label}: {sessions} active sessions hold {held} bytes: {:.1} bytes per session",
            held as f64 / sessions as f64
        );
    }
}
