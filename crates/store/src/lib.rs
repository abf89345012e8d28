//! footfall's storage layer: the [`Store`] trait that the pipeline, query API and CLI are
//! written against, and its backends. Every backend keeps the same data under the same key
//! schema ([`keys`]), so that the same events give the same answers whichever backend holds them.
//!
//! The trait speaks in footfall's terms (events, write batches, counters, unique counts), not
//! in a database's, so a backend is free to map them onto what it does best.

use std::ops::Range;
use std::time::Duration;

use async_trait::async_trait;
use footfall_core::batch::{Counter, Dim, SessionKey, SessionRecord, Slice, WriteBatch};
use footfall_core::event::Event;
use footfall_core::identity::Salts;
use footfall_core::site::Site;
use footfall_core::time::Bucket;
use serde::{Deserialize, Serialize};

pub mod conformance;
pub mod embedded;
mod framing;
mod json;
pub mod keys;
pub mod redis;
mod spill;
mod tail;
pub mod transfer;

pub use embedded::EmbeddedStore;
pub use redis::RedisStore;
pub use tail::TAIL_EVENTS;

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

#[derive(Clone, Debug, thiserror::Error)]
pub enum StoreError {
    #[error(
        "the data directory {0} is in use by another footfall process; stop it, or talk to it \
         (commands do that on their own through its control socket)"
    )]
    Locked(std::path::PathBuf),
    /// Another process holds the lease on a shared store.
    #[error("{0}")]
    Leased(String),
    #[error("storage I/O failed: {0}")]
    Io(String),
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
    #[error("the store is unavailable: {0}")]
    Unavailable(String),
    /// A migration's target already holds data; says what.
    #[error("it already holds footfall data ({0}); migrate copies into an empty store only")]
    NotEmpty(String),
}

/// Summed counters of one slice over one or more buckets.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counts {
    pub pageviews: i64,
    pub events: i64,
    pub visits: i64,
    pub bounces: i64,
    /// Total session duration, milliseconds.
    pub duration: i64,
    /// Visible time (ms) and scroll depth (%) that engagement reports sum.
    pub engaged_ms: i64,
    pub scroll_depth: i64,
    /// Events from bots.
    pub bots: i64,
}

impl Counts {
    pub fn get(&self, c: Counter) -> i64 {
        // A copy is 64 bytes: cheaper than a second match to keep in step.
        *{ *self }.field_mut(c)
    }

    pub fn add(&mut self, c: Counter, v: i64) {
        *self.field_mut(c) += v;
    }

    fn field_mut(&mut self, c: Counter) -> &mut i64 {
        match c {
            Counter::Pageviews => &mut self.pageviews,
            Counter::Events => &mut self.events,
            Counter::Visits => &mut self.visits,
            Counter::Bounces => &mut self.bounces,
            Counter::Duration => &mut self.duration,
            Counter::EngagedMs => &mut self.engaged_ms,
            Counter::ScrollDepth => &mut self.scroll_depth,
            Counter::Bots => &mut self.bots,
        }
    }

    pub fn merge(&mut self, other: &Counts) {
        for c in Counter::ALL {
            self.add(c, other.get(c));
        }
    }

    pub fn is_zero(&self) -> bool {
        Counter::ALL.iter().all(|&c| self.get(c) == 0)
    }
}

/// An API key as stored: only a hash of the secret is kept.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiKey {
    /// A label for people (`ci`, `grafana`); defaults to the key's first characters.
    pub name: String,
    /// Creation time, Unix ms.
    pub created: i64,
}

/// An admin of the dashboard.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct User {
    pub name: String,
    /// The password as an argon2id PHC string (`$argon2id$v=19$…`); never the password.
    pub password_hash: String,
    /// Creation time, Unix ms.
    pub created: i64,
}

/// A user's login session, stored under the hash of its cookie's token, so that a leaked
/// store does not leak working sessions.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Login {
    pub user: String,
    /// The token that state-changing requests of this session must carry.
    pub csrf: String,
    /// Unix ms.
    pub created: i64,
    /// Unix ms; from then on the login is gone.
    pub expires: i64,
}

/// A read-only link to one site's dashboard; its id is the secret the link carries.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Share {
    pub id: String,
    /// The site's domain: the only one the link reads.
    pub site: String,
    /// A label for people.
    pub name: String,
    /// Creation time, Unix ms.
    pub created: i64,
}

/// Where footfall keeps its state.
///
/// Durability contract: [`Store::append`] returns only once the events are durable; the pipeline
/// folds the events that [`Store::unapplied`] returns, and [`Store::apply`] writes a batch
/// together with the log offset it covers, atomically, removing those events from the
/// unapplied set. So an acknowledged event is counted exactly once, whenever the process dies.
/// A backend may make each site's share of a batch atomic on its own (sites share no state),
/// provided that [`Store::unapplied`] then leaves out the events of a site whose share landed.
#[async_trait]
pub trait Store: Send + Sync + 'static {
    // --- raw event log -----------------------------------------------------------------------

    /// Appends events to the raw log and returns the offsets they were given, in order. Returns
    /// only when the events are durable. Concurrent calls may share one sync (group commit).
    async fn append(&self, events: Vec<Event>) -> Result<Range<u64>>;

    /// Waits until an event with an offset above `after` exists, or `timeout` passes.
    async fn wait_for_append(&self, after: Option<u64>, timeout: Duration);

    /// Appended events that no applied batch covers yet, with offsets above `after`, in offset
    /// order, at most `limit`.
    async fn unapplied(&self, after: Option<u64>, limit: usize) -> Result<Vec<(u64, Event)>>;

    /// One site's events with `from_ms <= ts < to_ms`, in time order (then offset order).
    async fn scan_log(&self, site: &str, from_ms: i64, to_ms: i64) -> Result<Vec<Event>>;

    /// Deletes raw-log events older than `before_ms` (retention); returns how many went.
    async fn trim_log(&self, before_ms: i64) -> Result<u64>;

    // --- pipeline state ----------------------------------------------------------------------

    /// Applies a batch atomically together with `batch.offset` (see the durability contract).
    /// After a failure, the caller retries with the same batch until it succeeds.
    async fn apply(&self, batch: &WriteBatch) -> Result<()>;

    /// The highest offset covered by an applied batch.
    async fn applied_offset(&self) -> Result<Option<u64>>;

    /// Every persisted session.
    async fn sessions(&self) -> Result<Vec<(SessionKey, SessionRecord)>>;

    // --- rollups -----------------------------------------------------------------------------

    /// The total counters of each bucket, in the order given.
    async fn totals(&self, site: &str, buckets: &[Bucket]) -> Result<Vec<Counts>>;

    /// A breakdown's rows summed over `buckets`, one per value; rows whose counters are all zero
    /// are left out. Order is unspecified.
    async fn breakdown(
        &self,
        site: &str,
        buckets: &[Bucket],
        dim: &Dim,
    ) -> Result<Vec<(String, Counts)>>;

    /// Unique visitors of a slice over the union of `buckets` (a HyperLogLog estimate).
    async fn unique_count(&self, site: &str, buckets: &[Bucket], slice: &Slice) -> Result<u64>;

    /// Unique visitors of several values of one dimension, each over the union of `buckets`.
    async fn unique_counts(
        &self,
        site: &str,
        buckets: &[Bucket],
        dim: &Dim,
        values: &[String],
    ) -> Result<Vec<u64>> {
        let mut out = Vec::with_capacity(values.len());
        for v in values {
            let slice = Slice::By(dim.clone(), v.as_str().into());
            out.push(self.unique_count(site, buckets, &slice).await?);
        }
        Ok(out)
    }

    // --- configuration and secrets -----------------------------------------------------------

    async fn sites(&self) -> Result<Vec<Site>>;

    /// Adds a site, or replaces the one with the same domain.
    async fn put_site(&self, site: &Site) -> Result<()>;

    /// Stores an API key under the hash of its secret.
    async fn put_api_key(&self, hash: [u8; 32], key: &ApiKey) -> Result<()>;

    /// The key stored under this hash, if any.
    async fn api_key(&self, hash: [u8; 32]) -> Result<Option<ApiKey>>;

    async fn salts(&self) -> Result<Option<Salts>>;

    async fn put_salts(&self, salts: &Salts) -> Result<()>;

    // --- dashboard access --------------------------------------------------------------------

    /// Every user, in no particular order.
    async fn users(&self) -> Result<Vec<User>>;

    async fn user(&self, name: &str) -> Result<Option<User>>;

    /// Adds a user unless one has the name already; returns whether it was added.
    async fn add_user(&self, user: &User) -> Result<bool>;

    /// Removes a user and every login of theirs; returns whether the user existed.
    async fn remove_user(&self, name: &str) -> Result<bool>;

    /// Stores a login under the hash of its token, until `login.expires`.
    async fn put_login(&self, hash: [u8; 32], login: &Login) -> Result<()>;

    /// The login stored under this hash, unless it has expired by `now` (Unix ms).
    async fn login(&self, hash: [u8; 32], now: i64) -> Result<Option<Login>>;

    /// Ends a login; nothing happens when there is none.
    async fn remove_login(&self, hash: [u8; 32]) -> Result<()>;

    /// Adds a share link, or replaces the one with the same id.
    async fn put_share(&self, share: &Share) -> Result<()>;

    /// The share link with this id, whichever site it is for.
    async fn share(&self, id: &str) -> Result<Option<Share>>;

    /// One site's share links, in no particular order.
    async fn shares(&self, site: &str) -> Result<Vec<Share>>;

    /// Removes a share link of `site`; returns whether there was one (a link of another site
    /// with this id is left alone).
    async fn remove_share(&self, site: &str, id: &str) -> Result<bool>;

    // --- lifecycle ---------------------------------------------------------------------------

    /// Gives up what this process holds in a shared store (the Redis writer's lease), so that
    /// a restart need not wait for it to lapse. Called once, after the last write.
    async fn close(&self) -> Result<()> {
        Ok(())
    }
}
