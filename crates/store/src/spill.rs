//! A bounded on-disk queue of appended events that a shared store (Redis) could not take when
//! they arrived: they are acknowledged once written and synced here, and written to the store,
//! in offset order, when it is back.
//!
//! The file is a sequence of [`framing`] records, each an event's log record.
//! A record cut short by a crash was never acknowledged (the sync had not returned), so opening
//! drops it.

use std::collections::VecDeque;
use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use footfall_core::event::{Event, decode_record, encode_record};

use crate::{Result, StoreError, framing};

pub(crate) struct Spill {
    path: PathBuf,
    file: File,
    bytes: u64,
    max_bytes: u64,
    /// The spilled events in offset order, as in the file.
    events: VecDeque<(u64, Event)>,
}

impl Spill {
    /// Opens (creating if needed) the spill at `path`, with what an earlier process left in it.
    pub(crate) fn open(path: &Path, max_bytes: u64) -> Result<Spill> {
        let io = |what: &str, e: std::io::Error| {
            StoreError::Io(format!("{what} the spill file {}: {e}", path.display()))
        };
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| io("cannot create the directory of", e))?;
        }
        let mut file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .read(true)
            .write(true)
            .open(path)
            .map_err(|e| io("cannot open", e))?;
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes).map_err(|e| io("cannot read", e))?;
        let (records, used) = framing::read(&bytes);
        let mut events = VecDeque::with_capacity(records.len());
        for (offset, record) in records {
            let event = decode_record(record).map_err(|e| {
                StoreError::Corrupt(format!("{} at offset {offset}: {e}", path.display()))
            })?;
            events.push_back((offset, event));
        }
        let kept = used as u64;
        if used < bytes.len() {
            tracing::warn!(
                path = %path.display(),
                "dropping a record cut short by a crash at the end of the spill file; it was \
                 never acknowledged"
            );
            file.set_len(kept).map_err(|e| io("cannot truncate", e))?;
        }
        file.seek(SeekFrom::Start(kept)).map_err(|e| io("cannot seek in", e))?;
        Ok(Spill { path: path.to_owned(), file, bytes: kept, max_bytes, events })
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.events.is_empty()
    }

    pub(crate) fn len(&self) -> usize {
        self.events.len()
    }

    pub(crate) fn last_offset(&self) -> Option<u64> {
        self.events.back().map(|(offset, _)| *offset)
    }

    /// Writes and syncs events appended at `start`; `Ok(false)`, writing nothing, when they
    /// would not fit under the size limit.
    pub(crate) fn push(&mut self, start: u64, events: &[Event]) -> Result<bool> {
        let mut buf = Vec::new();
        for (offset, event) in (start..).zip(events) {
            framing::push(&mut buf, offset, &encode_record(event));
        }
        if self.bytes + buf.len() as u64 > self.max_bytes {
            return Ok(false);
        }
        let written = self.file.write_all(&buf).and_then(|()| self.file.sync_data());
        if let Err(e) = written {
            // Whatever part was written is cut off again, so the file holds whole groups.
            let _ = self.file.set_len(self.bytes);
            let _ = self.file.seek(SeekFrom::Start(self.bytes));
            return Err(StoreError::Io(format!(
                "cannot write the spill file {}: {e}",
                self.path.display()
            )));
        }
        self.bytes += buf.len() as u64;
        self.events.extend((start..).zip(events.iter().cloned()));
        Ok(true)
    }

    /// The oldest run of consecutive offsets, at most `limit` events.
    pub(crate) fn front(&self, limit: usize) -> Option<(u64, Vec<&Event>)> {
        let &(start, _) = self.events.front()?;
        let run = (start..).zip(&self.events).take(limit);
        let events = run.take_while(|(want, (offset, _))| want == offset).map(|(_, (_, e))| e);
        Some((start, events.collect()))
    }

    /// Forgets the `n` oldest events, which the store now has; empties the file when none are
    /// left.
    pub(crate) fn pop(&mut self, n: usize) -> Result<()> {
        self.events.drain(..n.min(self.events.len()));
        if self.events.is_empty() {
            let emptied = self
                .file
                .set_len(0)
                .and_then(|()| self.file.seek(SeekFrom::Start(0)).map(drop))
                .and_then(|()| self.file.sync_data());
            emptied.map_err(|e| {
                StoreError::Io(format!("cannot empty the spill file {}: {e}", self.path.display()))
            })?;
            self.bytes = 0;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(ts: i64) -> Event {
        Event { site: "a.com".into(), ts, name: "pageview".into(), ..Event::default() }
    }

    fn offsets(spill: &Spill) -> Option<(u64, Vec<i64>)> {
        spill.front(100).map(|(start, events)| (start, events.iter().map(|e| e.ts).collect()))
    }

    #[test]
    fn spilled_events_survive_a_reopen_in_order_and_leave_once_stored() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("spill");
        let mut spill = Spill::open(&path, 1 << 20).unwrap();
        assert!(spill.is_empty());
        assert!(spill.push(10, &[event(1), event(2)]).unwrap());
        assert!(spill.push(12, &[event(3)]).unwrap());
        // A later group after a gap (offsets taken by events the store did get).
        assert!(spill.push(20, &[event(4)]).unwrap());
        drop(spill);

        let mut spill = Spill::open(&path, 1 << 20).unwrap();
        assert_eq!(spill.len(), 4);
        assert_eq!(offsets(&spill), Some((10, vec![1, 2, 3])), "a run stops at a gap");
        spill.pop(3).unwrap();
        assert_eq!(offsets(&spill), Some((20, vec![4])));
        spill.pop(1).unwrap();
        assert!(spill.is_empty());
        assert_eq!(std::fs::metadata(&path).unwrap().len(), 0, "an empty spill is an empty file");
        assert!(spill.push(21, &[event(5)]).unwrap());
        drop(spill);
        let spill = Spill::open(&path, 1 << 20).unwrap();
        assert_eq!(offsets(&spill), Some((21, vec![5])));
    }

    #[test]
    fn a_full_spill_refuses_and_a_torn_record_is_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("spill");
        let mut spill = Spill::open(&path, 100).unwrap();
        assert!(spill.push(0, &[event(1)]).unwrap());
        let size = std::fs::metadata(&path).unwrap().len();
        let fits = (100 / size) as usize;
        assert!(!spill.push(1, &vec![event(2); fits]).unwrap(), "over the limit");
        assert_eq!(std::fs::metadata(&path).unwrap().len(), size, "nothing written");
        drop(spill);

        let mut torn = std::fs::read(&path).unwrap();
        torn.extend_from_slice(&7u64.to_be_bytes());
        torn.extend_from_slice(&[50, 0]);
        std::fs::write(&path, &torn).unwrap();
        let spill = Spill::open(&path, 100).unwrap();
        assert_eq!(offsets(&spill), Some((0, vec![1])));
        assert_eq!(std::fs::metadata(&path).unwrap().len(), size, "the torn record is cut off");
    }
}
