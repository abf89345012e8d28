//! Filtered queries, answered from the raw event log rather than the rollups.
//!
//! Rollups answer a fixed set of questions; a filter (`event:page==/pricing;visit:source==Google`)
//! asks any combination, so it is answered by scanning the site's events of the period. To make
//! that fast, events are sessionized once, the same way the pipeline does it, and laid out per
//! site and day in [`Segment`]s: columns of dictionary numbers, so that a filter is decided once
//! per distinct value and a scan is a pass over small integer arrays.
//!
//! The answers follow the rollups' definitions exactly, so that both agree wherever both apply:
//! - with session-level filters only (`visit:…`), every metric is that of the sessions that
//!   started in the period and pass the filters (as a rollup row of a session-level dimension);
//! - with an event-level filter (`event:page`, `event:name`, `event:props:…`), visitors,
//!   pageviews and events are those of the matching events in the period, of sessions that pass
//!   the session-level filters; visits, bounce rate and duration are those of the sessions that
//!   started in the period, entered on a matching page and hold a matching event, as Plausible
//!   reports a page's visit metrics by its entries.

mod segment;
mod tally;

pub use segment::{Segment, build};
pub use tally::{Grouping, Tally, tally};

#[cfg(test)]
mod tests;
