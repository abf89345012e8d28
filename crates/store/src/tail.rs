//! The newest appended events, kept in memory by a backend's log writer for the pipeline, which
//! reads right behind it: it then gets them without reading back and decoding what was just
//! written. Reads it cannot serve fall back to the backend's own copy of the unapplied log.

use std::collections::VecDeque;

use std::time::Duration;

use footfall_core::event::Event;
use tokio::sync::watch;

/// Most unapplied events kept in memory. The pipeline takes them right after they are appended,
/// so in normal running few are held; when it falls further behind, the oldest are read back
/// from the `unapplied` keyspace instead.
pub const TAIL_EVENTS: usize = 1 << 17;

/// The newest appended events, in offset order: the end of the unapplied log, held in
/// memory. Appends are dense (each starts where the previous one ends) and end at the next
/// offset to be appended. Events leave once applied, once the pipeline has taken them, or when
/// more than [`TAIL_EVENTS`] are held; readers then find them in the keyspace.
pub(crate) struct Tail {
    /// One entry per append call.
    appends: VecDeque<Appended>,
    /// Events in `appends`.
    len: usize,
    /// The next offset to be appended.
    end: u64,
    /// The highest applied offset: nothing at or below it is unapplied.
    pub(crate) applied: Option<u64>,
    /// The last offset a read took. The pipeline reads on from where it left off and never
    /// asks for the same events again, so a read that continues from here moves the events
    /// out rather than cloning them.
    taken: Option<u64>,
}

/// The events of one append call, the first at `start`.
pub(crate) struct Appended {
    start: u64,
    events: Vec<Event>,
}

impl Appended {
    fn end(&self) -> u64 {
        self.start + self.events.len() as u64
    }
}

impl Tail {
    pub(crate) fn new(end: u64, applied: Option<u64>) -> Tail {
        Tail { appends: VecDeque::new(), len: 0, end, applied, taken: applied }
    }

    /// Adds the events just made durable at `start`, moving the oldest beyond [`TAIL_EVENTS`]
    /// to `evicted`, for the caller to free outside the lock.
    pub(crate) fn push(&mut self, start: u64, events: Vec<Event>, evicted: &mut Vec<Appended>) {
        if events.is_empty() {
            return;
        }
        if start != self.end {
            // Offsets were skipped (a group a shared store may or may not have taken): readers
            // find what is before them in the store.
            evicted.extend(self.appends.drain(..));
            self.len = 0;
        }
        self.end = start + events.len() as u64;
        self.len += events.len();
        self.appends.push_back(Appended { start, events });
        while self.len > TAIL_EVENTS {
            evicted.extend(self.pop_front());
        }
    }

    fn pop_front(&mut self) -> Option<Appended> {
        let append = self.appends.pop_front()?;
        self.len -= append.events.len();
        Some(append)
    }

    /// Forgets the appends that an apply up to `offset` covers.
    pub(crate) fn applied(&mut self, offset: u64) {
        self.applied = self.applied.max(Some(offset));
        while self.appends.front().is_some_and(|append| append.end() <= offset + 1) {
            self.pop_front();
        }
    }

    /// The first unapplied offset above `after`, and the `limit` events from there, or `None`
    /// when some of those are no longer (or not yet) held here.
    pub(crate) fn read(
        &mut self,
        after: Option<u64>,
        limit: usize,
    ) -> (u64, Option<Vec<(u64, Event)>>) {
        let from = match after.max(self.applied) {
            None => 0,
            Some(last) => last.saturating_add(1),
        };
        if limit == 0 || from >= self.end {
            return (from, Some(Vec::new()));
        }
        if self.appends.front().is_none_or(|append| from < append.start) {
            return (from, None);
        }
        let held = (self.end - from) as usize;
        let mut events = Vec::with_capacity(held.min(limit));
        if after == self.taken {
            // Everything before `from` has been taken or applied: it goes too.
            while let Some(front) = self.appends.front_mut() {
                let skip = from.saturating_sub(front.start) as usize;
                let wanted = limit - events.len();
                if front.events.len() > skip + wanted {
                    let offsets = front.start + skip as u64..;
                    events.extend(offsets.zip(front.events.drain(..skip + wanted).skip(skip)));
                    front.start += (skip + wanted) as u64;
                    self.len -= skip + wanted;
                    break;
                }
                let append = self.pop_front().expect("a front append");
                events.extend((append.start..).zip(append.events).skip(skip));
                if events.len() == limit {
                    break;
                }
            }
            self.taken = events.last().map(|(offset, _)| *offset).or(self.taken);
        } else {
            let first = self.appends.partition_point(|append| append.start <= from) - 1;
            for append in self.appends.range(first..) {
                let skip = from.saturating_sub(append.start) as usize;
                let wanted = limit - events.len();
                let offsets = append.start + skip as u64..;
                let cloned = offsets.zip(&append.events[skip..]).take(wanted);
                events.extend(cloned.map(|(offset, event)| (offset, event.clone())));
                if events.len() == limit {
                    break;
                }
            }
        }
        (from, Some(events))
    }
}

/// [`Store::wait_for_append`](crate::Store::wait_for_append) on a log writer's watch of its
/// highest appended offset.
pub(crate) async fn wait_for_append(
    appended: &watch::Sender<Option<u64>>,
    after: Option<u64>,
    timeout: Duration,
) {
    let mut appended = appended.subscribe();
    // Timing out is an answer too: the caller looks again either way.
    let _ = tokio::time::timeout(timeout, appended.wait_for(|last| *last > after)).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(ts: i64) -> Event {
        Event {
            site: "a.com".into(),
            ts,
            name: "pageview".into(),
            visitor: 1,
            page: format!("/{ts}"),
            ..Event::default()
        }
    }

    fn offsets(read: (u64, Option<Vec<(u64, Event)>>)) -> Option<Vec<u64>> {
        read.1.map(|events| events.into_iter().map(|(offset, _)| offset).collect())
    }

    #[test]
    fn the_tail_moves_events_to_the_reader_that_continues_and_clones_them_for_others() {
        let mut tail = Tail::new(0, None);
        let mut evicted = Vec::new();
        tail.push(0, (0..3).map(event).collect(), &mut evicted);
        tail.push(3, (3..5).map(event).collect(), &mut evicted);
        assert_eq!(offsets(tail.read(Some(1), 2)), Some(vec![2, 3]));
        assert_eq!(tail.len, 5, "a reader from elsewhere gets copies");

        assert_eq!(tail.read(None, 4).1.unwrap()[3], (3, event(3)));
        assert_eq!(tail.len, 1, "the reader that continues takes them");
        assert_eq!(offsets(tail.read(Some(1), 1)), None, "taken events are read from disk");
        assert_eq!(offsets(tail.read(Some(3), 10)), Some(vec![4]));
        assert_eq!(offsets(tail.read(Some(4), 10)), Some(vec![]));

        tail.push(5, (5..8).map(event).collect(), &mut evicted);
        tail.applied(5);
        assert_eq!(offsets(tail.read(None, 10)), Some(vec![6, 7]), "applied events are left out");
        tail.applied(7);
        assert_eq!((tail.len, offsets(tail.read(None, 10))), (0, Some(vec![])));

        tail.push(8, (8..8 + TAIL_EVENTS as i64).map(event).collect(), &mut evicted);
        assert!(evicted.is_empty());
        tail.push(8 + TAIL_EVENTS as u64, vec![event(0)], &mut evicted);
        assert_eq!((evicted.len(), tail.len), (1, 1), "the oldest go beyond TAIL_EVENTS");
        assert_eq!(offsets(tail.read(Some(8), 1)), None);
    }
}
