//! footfall's pure core: the event model, decoding and validation of incoming events, visitor
//! identity, classification (devices, bots, sources, channels, countries), sessions, rollups
//! into a [`batch::WriteBatch`], Redis-compatible HyperLogLog and time buckets.
//!
//! Nothing here does I/O or knows about async runtimes, HTTP or a store: every stage is a plain
//! function or struct over events and state, so it is tested without I/O and shared unchanged by
//! every storage backend.

pub mod batch;
pub mod classify;
pub mod demo;
pub mod event;
pub mod filter;
pub mod hll;
pub mod identity;
pub mod ingest;
pub mod pipeline;
pub mod query;
pub mod scan;
pub mod site;
pub mod time;

#[cfg(test)]
mod testing;
