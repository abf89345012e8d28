//! Migration into and out of Redis: see [`crate::transfer`].

use std::sync::Arc;

use async_trait::async_trait;
use footfall_core::event::decode_record;
use footfall_core::hll::Hll;
use redis::AsyncCommands;
use tokio::sync::mpsc;

use super::{
    Inner, LOCK, LOGGED_SITES, MINUTE_TTL_SECONDS, PARTITIONS, RedisStore, Runs, SiteLogs,
    site_log_key,
};
use crate::keys::{self, Family};
use crate::transfer::{self, CHUNK_ITEMS, Chunker, Chunks, Item, Transfer};
use crate::{Result, StoreError};

/// Keys that say nothing about the data: the lease, and what any connection may write first.
const NOT_DATA: [&str; 2] = [LOCK, PARTITIONS];

#[async_trait]
impl Transfer for RedisStore {
    async fn estimate(&self) -> Result<u64> {
        let inner = &self.inner;
        let mut total = 3;
        let mut scan = inner.scan("ff:{*");
        while let Some(page) = scan.next(inner, "estimating the migration").await? {
            let sizes = page
                .iter()
                .map(|key| {
                    let size = match keys::family(key) {
                        Some((_, Family::Counters)) => "HLEN",
                        Some((_, Family::Log)) => "ZCARD",
                        _ => "EXISTS",
                    };
                    redis::cmd(size).arg(key).to_owned()
                })
                .collect();
            let sizes: Vec<u64> = inner.spread(sizes, "estimating the migration").await?;
            total += sizes.iter().sum::<u64>();
        }
        Ok(total)
    }

    async fn contents(&self) -> Result<Option<String>> {
        let mut scan = self.inner.scan("ff:*");
        while let Some(page) = scan.next(&self.inner, "looking for footfall data").await? {
            if let Some(key) = page.iter().find(|k| !NOT_DATA.contains(&k.as_str())) {
                return Ok(Some(format!("keys such as `{key}`")));
            }
        }
        Ok(None)
    }

    fn export(&self) -> mpsc::Receiver<Result<Vec<Item>>> {
        let (tx, rx) = transfer::channel();
        let inner = Arc::clone(&self.inner);
        tokio::spawn(async move {
            let mut out = Out { tx, chunker: Chunker::default() };
            let result = inner.export(&mut out).await;
            // A receiver that went away wants nothing more.
            let rest = out.chunker.take();
            if out.tx.send(Ok(rest)).await.is_ok()
                && let Err(e) = result
            {
                let _ = out.tx.send(Err(e)).await;
            }
        });
        rx
    }

    async fn import(&self, items: Vec<Item>) -> Result<()> {
        if items.is_empty() {
            return Ok(());
        }
        let inner = &self.inner;
        let mut cmds = Vec::new();
        let mut runs = Runs::new(inner.partitions);
        let mut logs = SiteLogs::default();
        let mut write = |cmd: &mut redis::Cmd, key: &str| {
            cmds.push(cmd.to_owned());
            if keys::minute_of(key).is_some() {
                cmds.push(redis::cmd("EXPIRE").arg(key).arg(MINUTE_TTL_SECONDS).to_owned());
            }
        };
        for item in items {
            match item {
                Item::Hash { key, fields } => write(redis::cmd("HSET").arg(&key).arg(fields), &key),
                Item::Unique { key, hll } => {
                    Hll::from_bytes(&hll)
                        .map_err(|e| StoreError::Corrupt(format!("{key}: {e}")))?;
                    write(redis::cmd("SET").arg(&key).arg(hll), &key);
                }
                Item::Session { key, record: value } | Item::Value { key, value } => {
                    write(redis::cmd("SET").arg(&key).arg(value), &key);
                }
                Item::Logged { site, ts, offset, record } => logs.push(site, ts, offset, &record),
                Item::Unapplied { offset, record } => {
                    let event = decode_record(&record).map_err(|e| {
                        StoreError::Corrupt(format!("log record at offset {offset}: {e}"))
                    })?;
                    runs.push(runs.partition(event.visitor), offset, &record);
                }
            }
        }
        cmds.extend(runs.finish().into_iter().flatten());
        inner.spread::<redis::Value>(cmds, "importing").await?;
        inner.write_site_logs(&logs, true).await
    }

    async fn finish_import(&self) -> Result<()> {
        // The next offset a writer gives follows the imported log's runs and applied offset.
        self.inner.record_partitions().await.map(drop)
    }
}

/// Where an export sends its items.
struct Out {
    tx: Chunks,
    chunker: Chunker,
}

impl Out {
    /// Queues an item; `false` once the receiver has gone.
    async fn push(&mut self, item: Item) -> bool {
        match self.chunker.push(item) {
            Some(chunk) => self.tx.send(Ok(chunk)).await.is_ok(),
            None => true,
        }
    }
}

/// Log events read per round trip.
const LOG_PAGE: usize = 5_000;

impl Inner {
    /// Sends every piece of state to `out`, the applied offset last.
    async fn export(&self, out: &mut Out) -> Result<()> {
        let mut con = self.con.clone();
        let failed = |e| self.failed("exporting", e);

        let mut scan = self.scan("ff:{*");
        while let Some(page) = scan.next(self, "exporting").await? {
            let mut reads = Vec::new();
            let mut asked = Vec::new();
            for key in page {
                // Each site's log is read whole below.
                let read = match keys::family(&key).map(|(_, family)| family) {
                    Some(Family::Counters) => "HGETALL",
                    Some(Family::Unique | Family::Session) => "GET",
                    Some(Family::Log) | None => continue,
                };
                reads.push(redis::cmd(read).arg(&key).to_owned());
                asked.push(key);
            }
            let values: Vec<redis::Value> = self.spread(reads, "exporting").await?;
            for (key, value) in asked.into_iter().zip(values) {
                let Some(item) = item(key, value)? else { continue };
                if !out.push(item).await {
                    return Ok(());
                }
            }
        }

        // Not the logins: people log in again on the new store.
        for hash in [keys::SITES, keys::API_KEYS, keys::USERS, keys::SHARES] {
            let fields: Vec<(String, Vec<u8>)> = con.hgetall(hash).await.map_err(failed)?;
            for fields in fields.chunks(CHUNK_ITEMS) {
                let item = Item::Hash { key: hash.into(), fields: fields.to_vec() };
                if !out.push(item).await {
                    return Ok(());
                }
            }
        }
        let salts: Option<Vec<u8>> = con.get(keys::SALTS).await.map_err(failed)?;
        if let Some(value) = salts
            && !out.push(Item::Value { key: keys::SALTS.into(), value }).await
        {
            return Ok(());
        }

        let sites: Vec<String> = con.smembers(LOGGED_SITES).await.map_err(failed)?;
        for site in sites {
            let key = site_log_key(&site);
            for start in (0..).step_by(LOG_PAGE) {
                let page: Vec<(Vec<u8>, f64)> = redis::cmd("ZRANGE")
                    .arg(&key)
                    .arg(start)
                    .arg(start + LOG_PAGE - 1)
                    .arg("WITHSCORES")
                    .query_async(&mut con)
                    .await
                    .map_err(failed)?;
                let done = page.len() < LOG_PAGE;
                for (member, ts) in page {
                    let Some((offset, record)) = member.split_first_chunk::<8>() else {
                        return Err(StoreError::Corrupt(format!("a member of {key} is truncated")));
                    };
                    let item = Item::Logged {
                        site: site.clone(),
                        ts: ts as i64,
                        offset: u64::from_be_bytes(*offset),
                        record: record.to_vec(),
                    };
                    if !out.push(item).await {
                        return Ok(());
                    }
                }
                if done {
                    break;
                }
            }
        }

        let applied = self.applied_offset().await?;
        let mut from = applied.map_or(0, |a| a + 1);
        loop {
            let page = self.read_unapplied_as(from, LOG_PAGE, |record, _| record.to_vec()).await?;
            let Some(&(last, _)) = page.last() else { break };
            for (offset, record) in page {
                if !out.push(Item::Unapplied { offset, record }).await {
                    return Ok(());
                }
            }
            from = last + 1;
        }
        if let Some(applied) = applied {
            let value = applied.to_string().into_bytes();
            out.push(Item::Value { key: keys::APPLIED.into(), value }).await;
        }
        Ok(())
    }
}

/// The item of a per-site key from its `HGETALL` or `GET`; `None` if it has gone since the scan.
fn item(key: String, value: redis::Value) -> Result<Option<Item>> {
    if matches!(value, redis::Value::Nil) {
        return Ok(None);
    }
    Ok(Some(match keys::family(&key).map(|(_, family)| family) {
        Some(Family::Counters) => {
            let fields: Vec<(String, Vec<u8>)> = parse(&key, value)?;
            if fields.is_empty() {
                return Ok(None);
            }
            Item::Hash { key, fields }
        }
        Some(Family::Unique) => {
            let hll: Vec<u8> = parse(&key, value)?;
            Item::Unique { key, hll }
        }
        _ => {
            let record: Vec<u8> = parse(&key, value)?;
            Item::Session { key, record }
        }
    }))
}

fn parse<T: redis::FromRedisValue>(key: &str, value: redis::Value) -> Result<T> {
    redis::from_redis_value(value).map_err(|e| StoreError::Corrupt(format!("{key}: {e}")))
}
