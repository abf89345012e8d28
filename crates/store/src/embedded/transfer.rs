//! Migration into and out of the embedded store: see [`crate::transfer`].

use std::sync::Arc;

use async_trait::async_trait;
use fjall::PersistMode;
use footfall_core::hll::Hll;
use tokio::sync::mpsc;

use super::{
    EmbeddedStore, FIELD_SEP, Inner, RUN_EVENTS, RunBuilder, UNAPPLIED_FROM, checked_key,
    decode_offset, field_key, from_sortable_ts, get, log_key, minute_key, read_err, show_key,
    write_err,
};
use crate::transfer::{self, CHUNK_ITEMS, Chunker, Item, Transfer};
use crate::{Result, StoreError, keys};

#[async_trait]
impl Transfer for EmbeddedStore {
    async fn estimate(&self) -> Result<u64> {
        self.blocking(|db| {
            let applied = db.applied_offset()?;
            let (runs, _) = db.runs_left(applied)?;
            let after = applied.map_or(0, |a| a + 1);
            let unapplied: u64 =
                runs.iter().map(|run| run.end.saturating_sub(run.start.max(after))).sum();
            let keyspaces = [&db.hashes, &db.hlls, &db.sessions, &db.log];
            Ok(keyspaces.iter().map(|ks| ks.approximate_len() as u64).sum::<u64>() + unapplied + 2)
        })
        .await
    }

    async fn contents(&self) -> Result<Option<String>> {
        self.blocking(|db| {
            let kinds = [
                (&db.hashes, "sites, API keys, users, share links or counters"),
                (&db.hlls, "unique counts"),
                (&db.sessions, "sessions"),
                (&db.meta, "salts or log offsets"),
                (&db.log, "the event log"),
                (&db.unapplied, "events not yet counted"),
            ];
            let mut held = Vec::new();
            for (ks, what) in kinds {
                if !ks
                    .is_empty()
                    .map_err(|e| StoreError::Io(format!("reading the store failed: {e}")))?
                {
                    held.push(what);
                }
            }
            Ok((!held.is_empty()).then(|| held.join(", ")))
        })
        .await
    }

    fn export(&self) -> mpsc::Receiver<Result<Vec<Item>>> {
        let (tx, rx) = transfer::channel();
        let inner = Arc::clone(&self.inner);
        tokio::task::spawn_blocking(move || {
            let mut chunker = Chunker::default();
            let mut gone = false;
            let result = inner.export(&mut |item| {
                if let Some(chunk) = chunker.push(item) {
                    gone = tx.blocking_send(Ok(chunk)).is_err();
                }
                !gone
            });
            // A receiver that went away wants nothing more.
            if !gone
                && tx.blocking_send(Ok(chunker.take())).is_ok()
                && let Err(e) = result
            {
                let _ = tx.blocking_send(Err(e));
            }
        });
        rx
    }

    async fn import(&self, items: Vec<Item>) -> Result<()> {
        self.blocking(move |db| db.import(items)).await
    }

    async fn finish_import(&self) -> Result<()> {
        self.blocking(|db| {
            if let Some(first) = db.unapplied.first_key_value() {
                let first = decode_offset(&first.key().map_err(read_err("unapplied"))?)?;
                db.write_synced(
                    &db.meta,
                    UNAPPLIED_FROM.into(),
                    first.to_string().into_bytes(),
                    "finishing the import",
                )?;
            }
            db.db.persist(PersistMode::SyncAll).map_err(write_err("syncing the import"))
        })
        .await
    }
}

impl Inner {
    /// Calls `emit` with every piece of state, the applied offset last, while it returns
    /// `true`.
    fn export(&self, emit: &mut dyn FnMut(Item) -> bool) -> Result<()> {
        // Hash fields are stored one per entry: gather each hash's, a chunk at most per item.
        let mut hash: Option<Item> = None;
        for entry in self.hashes.iter() {
            let (key, value) = entry.into_inner().map_err(read_err("hashes"))?;
            let corrupt =
                || StoreError::Corrupt(format!("hash entry {} is not UTF-8", show_key(&key)));
            let sep = key.iter().position(|&b| b == FIELD_SEP).ok_or_else(corrupt)?;
            let name = std::str::from_utf8(&key[..sep]).map_err(|_| corrupt())?;
            let field = std::str::from_utf8(&key[sep + 1..]).map_err(|_| corrupt())?;
            match &mut hash {
                Some(Item::Hash { key, fields }) if key == name && fields.len() < CHUNK_ITEMS => {
                    fields.push((field.to_owned(), value.to_vec()));
                }
                _ => {
                    let next = Item::Hash {
                        key: name.to_owned(),
                        fields: vec![(field.to_owned(), value.to_vec())],
                    };
                    if let Some(done) = hash.replace(next)
                        && !emit(done)
                    {
                        return Ok(());
                    }
                }
            }
        }
        if let Some(done) = hash
            && !emit(done)
        {
            return Ok(());
        }
        for (ks, name) in [(&self.hlls, "hlls"), (&self.sessions, "sessions")] {
            for entry in ks.iter() {
                let (key, value) = entry.into_inner().map_err(read_err(name))?;
                let key = String::from_utf8(key.to_vec())
                    .map_err(|_| StoreError::Corrupt(format!("a key in `{name}` is not UTF-8")))?;
                let item = if name == "hlls" {
                    Item::Unique { key, hll: value.to_vec() }
                } else {
                    Item::Session { key, record: value.to_vec() }
                };
                if !emit(item) {
                    return Ok(());
                }
            }
        }
        if let Some(salts) = get(&self.meta, keys::SALTS.as_bytes())?
            && !emit(Item::Value { key: keys::SALTS.into(), value: salts.to_vec() })
        {
            return Ok(());
        }
        for entry in self.log.iter() {
            let (key, record) = entry.into_inner().map_err(read_err("log"))?;
            let (site, ts, offset) = parse_log_key(&key)?;
            if !emit(Item::Logged { site, ts, offset, record: record.to_vec() }) {
                return Ok(());
            }
        }
        let applied = self.applied_offset()?;
        let mut going = true;
        self.each_unapplied(applied.map_or(0, |a| a + 1), |offset, record| {
            going = emit(Item::Unapplied { offset, record: record.to_vec() });
            Ok(going)
        })?;
        if let Some(applied) = applied.filter(|_| going) {
            emit(Item::Value {
                key: keys::APPLIED.into(),
                value: applied.to_string().into_bytes(),
            });
        }
        Ok(())
    }

    fn import(&self, items: Vec<Item>) -> Result<()> {
        let mut batch = self.db.batch().durability(Some(PersistMode::Buffer));
        let mut run = RunBuilder::default();
        let minute = |batch: &mut fjall::OwnedWriteBatch, key: &str| {
            if let (Some(index), Some((site, _))) = (keys::minute_of(key), keys::family(key)) {
                batch.insert(&self.minutes, minute_key(index, site), Vec::new());
            }
        };
        for item in items {
            match item {
                Item::Hash { key, fields } => {
                    minute(&mut batch, &key);
                    for (field, value) in fields {
                        batch.insert(&self.hashes, checked_key(field_key(&key, &field))?, value);
                    }
                }
                Item::Unique { key, hll } => {
                    Hll::from_bytes(&hll)
                        .map_err(|e| StoreError::Corrupt(format!("{key}: {e}")))?;
                    minute(&mut batch, &key);
                    batch.insert(&self.hlls, checked_key(key.into_bytes())?, hll);
                }
                Item::Session { key, record } => {
                    batch.insert(&self.sessions, checked_key(key.into_bytes())?, record);
                }
                Item::Value { key, value } => batch.insert(&self.meta, key, value),
                Item::Logged { site, ts, offset, record } => {
                    batch.insert(&self.log, checked_key(log_key(&site, ts, offset))?, record);
                }
                Item::Unapplied { offset, record } => {
                    // A run holds consecutive offsets; a gap (offsets Redis skipped) starts another.
                    let follows = run.len > 0 && run.start + run.len as u64 == offset;
                    if !follows || run.len == RUN_EVENTS {
                        if run.len > 0 {
                            run.write(&mut batch, &self.unapplied);
                        }
                        run.reset(offset);
                    }
                    run.push(&record);
                }
            }
        }
        if run.len > 0 {
            run.write(&mut batch, &self.unapplied);
        }
        batch.commit().map_err(write_err("importing"))
    }
}

/// A `log` key's site, timestamp and offset.
fn parse_log_key(key: &[u8]) -> Result<(String, i64, u64)> {
    let corrupt = || StoreError::Corrupt(format!("bad log key {}", show_key(key)));
    let end = key.iter().position(|&b| b == 0).ok_or_else(corrupt)?;
    let site = std::str::from_utf8(&key[..end]).map_err(|_| corrupt())?;
    let rest = &key[end + 1..];
    let (ts, offset) = rest.split_first_chunk::<8>().ok_or_else(corrupt)?;
    Ok((site.to_owned(), from_sortable_ts(*ts), decode_offset(offset)?))
}
