//! Classification: what an event's request says about where it came from, as the categories
//! that breakdowns show. Nothing raw is kept: a user agent becomes a device type, browser and
//! OS; a referrer becomes a source and a channel; an IP address becomes a country.

pub mod agent;
pub mod geo;
pub mod referrer;

use std::cell::RefCell;
use std::sync::Arc;

use rustc_hash::FxHashMap;

/// A static name (a device type, a channel) as the `Arc<str>` that traits hold: shared, so that
/// each event clones a pointer rather than allocating the name again.
pub(crate) fn shared(name: &'static str) -> Arc<str> {
    thread_local! {
        static NAMES: RefCell<FxHashMap<&'static str, Arc<str>>> = RefCell::default();
    }
    NAMES.with_borrow_mut(|names| names.entry(name).or_insert_with(|| name.into()).clone())
}
