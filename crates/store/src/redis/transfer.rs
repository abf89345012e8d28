//! Migration into and out of Redis: see [`crate::transfer`].

use std::sync::Arc;

use async_trait::async_trait;
use footfall_core::event::decode_record;
use footfall_core::hll::Hll;
use redis::AsyncCommands;
use rustc_hash::FxHashMap;
use tokio::sync::mpsc;

use super::{
    BATCH, Inner, LOCK, LOGGED_SITES, MINUTE_TTL_SECONDS, NEXT, PARTITIONS, RedisStore, Runs,
    SiteLogs, parse_run_end, partition_key, site_log_key,
};
use crate::keys::{self, Family};
use crate::transfer::{self, CHUNK_ITEMS, Chunker, Chunks, Item, Transfer};
use crate::{Result, StoreError};

/// Keys that say nothing about the data: the lease, and what any connection may write first.
const NOT_DATA: [&str; 3] = [LOCK, PARTITIONS, BATCH];

#[async_trait]
impl Transfer for RedisStore {
    async fn estimate(&self) -> Result<u64> {
        let inner = &self.inner;
        let mut con = inner.con.clone();
        let mut total = 3;
        let mut cursor = Some(0);
        while let Some(at) = cursor {
            let page;
            (cursor, page) = inner.scan(at, "ff:{*", "estimating the migration").await?;
            if page.is_empty() {
                continue;
            }
            let mut pipe = redis::pipe();
            for key in &page {
                match keys::family(key) {
                    Some((_, Family::Counters)) => pipe.cmd("HLEN").arg(key),
                    Some((_, Family::Log)) => pipe.cmd("ZCARD").arg(key),
                    _ => pipe.cmd("EXISTS").arg(key),
                };
            }
            let sizes: Vec<u64> = pipe
                .query_async(&mut con)
                .await
                .map_err(|e| inner.failed("estimating the migration", e))?;
            total += sizes.iter().sum::<u64>();
        }
        Ok(total)
    }

    async fn contents(&self) -> Result<Option<String>> {
        let mut cursor = Some(0);
        while let Some(at) = cursor {
            let page;
            (cursor, page) = self.inner.scan(at, "ff:*", "looking for footfall data").await?;
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
        let mut pipe = redis::pipe();
        let mut runs = Runs::new(inner.partitions);
        let mut logs = SiteLogs::default();
        let expire = |pipe: &mut redis::Pipeline, key: &str| {
            if keys::minute_of(key).is_some() {
                pipe.cmd("EXPIRE").arg(key).arg(MINUTE_TTL_SECONDS).ignore();
            }
        };
        for item in items {
            match item {
                Item::Hash { key, fields } => {
                    pipe.cmd("HSET").arg(&key).arg(fields).ignore();
                    expire(&mut pipe, &key);
                }
                Item::Unique { key, hll } => {
                    Hll::from_bytes(&hll)
                        .map_err(|e| StoreError::Corrupt(format!("{key}: {e}")))?;
                    pipe.cmd("SET").arg(&key).arg(hll).ignore();
                    expire(&mut pipe, &key);
                }
                Item::Session { key, record: value } | Item::Value { key, value } => {
                    pipe.cmd("SET").arg(key).arg(value).ignore();
                }
                Item::Logged { site, ts, offset, record } => logs.push(site, ts, offset, &record),
                Item::Unapplied { offset, record } => {
                    let event = decode_record(&record).map_err(|e| {
                        StoreError::Corrupt(format!("log record at offset {offset}: {e}"))
                    })?;
                    runs.push(&mut pipe, offset, event.visitor, &record);
                }
            }
        }
        runs.finish(&mut pipe);
        if !logs.members.is_empty() {
            let sites: Vec<&String> = logs.members.keys().collect();
            pipe.cmd("SADD").arg(LOGGED_SITES).arg(sites).ignore();
        }
        logs.write(&mut pipe);
        let mut con = inner.con.clone();
        pipe.query_async::<()>(&mut con).await.map_err(|e| inner.failed("importing", e))
    }

    async fn finish_import(&self) -> Result<()> {
        let inner = &self.inner;
        let partitions = inner.record_partitions().await?;
        // The next offset follows every event imported, applied or not.
        let mut pipe = redis::pipe();
        for p in 0..partitions {
            pipe.cmd("XREVRANGE").arg(partition_key(p)).arg("+").arg("-").arg("COUNT").arg(1);
        }
        let mut con = inner.con.clone();
        let lasts: Vec<Vec<(String, FxHashMap<String, Vec<u8>>)>> = pipe
            .query_async(&mut con)
            .await
            .map_err(|e| inner.failed("finishing the import", e))?;
        let applied = inner.applied_offset().await?;
        let next = lasts
            .iter()
            .flatten()
            .map(|(id, _)| parse_run_end(id))
            .chain(applied.map(|a| a + 1))
            .max();
        match next {
            Some(next) => con
                .set::<_, _, ()>(NEXT, next)
                .await
                .map_err(|e| inner.failed("finishing the import", e)),
            // Nothing was logged; a writer starts at offset 0 without it.
            None => Ok(()),
        }
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

        let mut cursor = Some(0);
        while let Some(at) = cursor {
            let page;
            (cursor, page) = self.scan(at, "ff:{*", "exporting").await?;
            let mut pipe = redis::pipe();
            let mut asked = Vec::new();
            for key in page {
                // Each site's log is read whole below.
                match keys::family(&key).map(|(_, family)| family) {
                    Some(Family::Counters) => pipe.cmd("HGETALL").arg(&key),
                    Some(Family::Unique | Family::Session) => pipe.cmd("GET").arg(&key),
                    Some(Family::Log) | None => continue,
                };
                asked.push(key);
            }
            if asked.is_empty() {
                continue;
            }
            let values: Vec<redis::Value> = pipe.query_async(&mut con).await.map_err(failed)?;
            for (key, value) in asked.into_iter().zip(values) {
                let Some(item) = item(key, value)? else { continue };
                if !out.push(item).await {
                    return Ok(());
                }
            }
        }

        for hash in [keys::SITES, keys::API_KEYS] {
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
            let page =
                self.read_unapplied_as(from, LOG_PAGE, |record, _| Ok(record.to_vec())).await?;
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
