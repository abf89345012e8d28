//! Copying one store's whole state into another, for `footfall migrate`: every key of the
//! [`keys`](crate::keys) schema with its bytes as stored, the raw log, and the events no
//! applied batch covers yet, with their offsets, so the target's pipeline folds them exactly
//! as the source's would have.
//!
//! The source exports its state as a stream of [`Item`] chunks; the target imports each chunk
//! as it comes, so memory stays bounded whatever the store's size. Both must be at rest: no
//! server may write either while they are copied (the embedded store's lock and the Redis
//! writer's lease see to that when the stores are opened for migration).

use async_trait::async_trait;
use tokio::sync::mpsc;

use crate::{Result, StoreError};

/// Items in one exported chunk, about.
pub const CHUNK_ITEMS: usize = 2_000;

/// Chunks exported ahead of the import.
const CHUNKS_AHEAD: usize = 4;

/// One piece of a store's state, under its name in the key schema.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Item {
    /// Fields of a hash: counters, sites, API keys. A large hash may come as several items.
    Hash { key: String, fields: Vec<(String, Vec<u8>)> },
    /// A HyperLogLog, in Redis's encoding.
    Unique { key: String, hll: Vec<u8> },
    /// A persisted session, as postcard.
    Session { key: String, record: Vec<u8> },
    /// A single value: [`SALTS`](crate::keys::SALTS) or [`APPLIED`](crate::keys::APPLIED).
    /// The applied offset comes last, after everything it covers.
    Value { key: String, value: Vec<u8> },
    /// An event of the raw log that [`scan_log`](crate::Store::scan_log) reads.
    Logged { site: String, ts: i64, offset: u64, record: Vec<u8> },
    /// An event no applied batch covers yet. These come in offset order.
    Unapplied { offset: u64, record: Vec<u8> },
}

impl Item {
    /// How much this item counts for in progress reports: a hash's fields one by one.
    pub fn weight(&self) -> u64 {
        match self {
            Item::Hash { fields, .. } => fields.len() as u64,
            _ => 1,
        }
    }
}

/// A store that can be copied from and into.
#[async_trait]
pub trait Transfer: Send + Sync {
    /// About how much [`export`](Self::export) yields, in [`Item::weight`]s, for a progress bar.
    async fn estimate(&self) -> Result<u64>;

    /// What footfall data the store already holds, in a few words; `None` if it holds none.
    async fn contents(&self) -> Result<Option<String>>;

    /// Every piece of state, in chunks; an error ends the stream.
    fn export(&self) -> mpsc::Receiver<Result<Vec<Item>>>;

    /// Writes a chunk of items into this store, which was empty when the import began.
    async fn import(&self, items: Vec<Item>) -> Result<()>;

    /// Makes the import durable and complete. The store must be opened afresh to be used:
    /// the handle that imported does not know the log it now holds.
    async fn finish_import(&self) -> Result<()>;
}

/// What a migration copied.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Copied {
    /// Keys: hashes (counted once however many chunks they came in), HyperLogLogs,
    /// sessions, values.
    pub keys: u64,
    /// Events of the raw log.
    pub logged: u64,
    /// Events not yet counted, which the target's server will count when it starts.
    pub unapplied: u64,
}

/// How far a migration has gone, in [`Item::weight`]s.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Progress {
    /// About how much there is to copy; told once, before anything is.
    Estimated(u64),
    /// A chunk of this weight is copied.
    Copied(u64),
}

/// Copies everything in `from` into `to`, which must hold no footfall data
/// ([`StoreError::NotEmpty`] otherwise).
pub async fn migrate(
    from: &dyn Transfer,
    to: &dyn Transfer,
    progress: &mut (dyn FnMut(Progress) + Send),
) -> Result<Copied> {
    if let Some(contents) = to.contents().await? {
        return Err(StoreError::NotEmpty(contents));
    }
    progress(Progress::Estimated(from.estimate().await?));
    let mut copied = Copied::default();
    let mut last_hash: Option<String> = None;
    let mut chunks = from.export();
    while let Some(chunk) = chunks.recv().await {
        let chunk = chunk?;
        if chunk.is_empty() {
            continue;
        }
        let mut weight = 0;
        for item in &chunk {
            weight += item.weight();
            match item {
                Item::Hash { key, .. } => {
                    if last_hash.as_ref() != Some(key) {
                        copied.keys += 1;
                        last_hash = Some(key.clone());
                    }
                }
                Item::Unique { .. } | Item::Session { .. } | Item::Value { .. } => copied.keys += 1,
                Item::Logged { .. } => copied.logged += 1,
                Item::Unapplied { .. } => copied.unapplied += 1,
            }
        }
        to.import(chunk).await?;
        progress(Progress::Copied(weight));
    }
    to.finish_import().await?;
    Ok(copied)
}

/// The channel an export sends its chunks on.
pub(crate) type Chunks = mpsc::Sender<Result<Vec<Item>>>;

pub(crate) fn channel() -> (Chunks, mpsc::Receiver<Result<Vec<Item>>>) {
    mpsc::channel(CHUNKS_AHEAD)
}

/// Gathers exported items into chunks of about [`CHUNK_ITEMS`] weight.
#[derive(Default)]
pub(crate) struct Chunker {
    chunk: Vec<Item>,
    weight: usize,
}

impl Chunker {
    /// Adds an item; returns a chunk once one is full.
    pub(crate) fn push(&mut self, item: Item) -> Option<Vec<Item>> {
        self.weight += item.weight() as usize;
        self.chunk.push(item);
        (self.weight >= CHUNK_ITEMS).then(|| self.take())
    }

    /// What is gathered so far.
    pub(crate) fn take(&mut self) -> Vec<Item> {
        self.weight = 0;
        std::mem::take(&mut self.chunk)
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use footfall_testkit::RedisServer;

    use super::*;
    use crate::{EmbeddedStore, Login, RedisStore, Share, Store, User};

    /// Users and share links go with a migration, either way; logins do not (people log in
    /// again on the new store).
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn users_and_share_links_migrate_and_logins_stay() {
        let dir = tempfile::tempdir().unwrap();
        let source = EmbeddedStore::open(&dir.path().join("source")).unwrap();
        let admin = User { name: "admin".into(), password_hash: "$argon2id$x".into(), created: 1 };
        let share =
            Share { id: "ffs_1".into(), site: "a.com".into(), name: "team".into(), created: 2 };
        source.add_user(&admin).await.unwrap();
        source.put_share(&share).await.unwrap();
        let far = i64::MAX / 2;
        let login = Login { user: "admin".into(), csrf: "c".into(), created: 3, expires: far };
        source.put_login([5; 32], &login).await.unwrap();

        let redis = RedisServer::start();
        let on_redis =
            RedisStore::connect_exclusive(&redis.url(), Duration::ZERO, None).await.unwrap();
        let copied = migrate(&source, &on_redis, &mut |_| {}).await.unwrap();
        assert_eq!(copied, Copied { keys: 2, logged: 0, unapplied: 0 }, "ff:users and ff:shares");
        let back = EmbeddedStore::open(&dir.path().join("back")).unwrap();
        assert_eq!(migrate(&on_redis, &back, &mut |_| {}).await.unwrap(), copied);

        for store in [&on_redis as &dyn Store, &back] {
            assert_eq!(store.users().await.unwrap(), std::slice::from_ref(&admin));
            assert_eq!(store.shares("a.com").await.unwrap(), std::slice::from_ref(&share));
            assert_eq!(store.login([5; 32], 4).await.unwrap(), None);
        }
    }
}
