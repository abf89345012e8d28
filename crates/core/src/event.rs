//! The event as it is kept in the raw event log.

use std::sync::Arc;

use serde::{Deserialize, Serialize};

/// The name of the built-in pageview event; every other name is a custom event.
pub const PAGEVIEW: &str = "pageview";

/// One event after decoding, validation, identification and classification: what the raw
/// event log keeps and every later stage reads. Nothing raw about a person: no IP address and
/// no user agent string, only the keyed-hash visitor id and parsed categories.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    /// Site domain, as registered (`example.com`); shared by a request's events.
    pub site: Arc<str>,
    /// Event time, Unix milliseconds UTC (server time unless a trusted `ts` was accepted).
    pub ts: i64,
    /// `pageview` or a custom event name.
    pub name: String,
    /// Visitor id: the keyed hash of the current salt, site, IP and user agent for an
    /// anonymous visitor, or the hash of `user_id` for an identified user.
    pub visitor: u64,
    /// For anonymous visitors, the same hash under the previous day's salt, so that a session
    /// that started before UTC midnight continues after it.
    pub prev_visitor: Option<u64>,
    /// Application user id (server-side ingestion only).
    pub user_id: Option<String>,
    /// Hash of a client-supplied session id; a change of it starts a new session.
    pub session_hint: Option<u64>,
    /// Page path, without query string or fragment (`/pricing`).
    pub page: String,
    /// Referrer as host and path, without scheme, query or fragment (`news.ycombinator.com/item`).
    pub referrer: Option<String>,
    /// Traffic source: `utm_source` when set, else the referring domain; `None` is direct.
    pub source: Option<String>,
    pub utm_source: Option<String>,
    pub utm_medium: Option<String>,
    pub utm_campaign: Option<String>,
    /// Custom properties, at most 30 pairs.
    pub props: Vec<(String, String)>,
    pub screen_width: Option<u32>,
}

impl Event {
    pub fn is_pageview(&self) -> bool {
        self.name == PAGEVIEW
    }
}

/// Version byte in front of every encoded log record, so the format can evolve.
const RECORD_V1: u8 = 1;

/// Encodes an event for the raw log: a version byte, then postcard.
pub fn encode_record(event: &Event) -> Vec<u8> {
    let mut out = vec![RECORD_V1];
    // Serialising a plain struct into a Vec cannot fail.
    out.extend(postcard::to_stdvec(event).expect("event encodes"));
    out
}

/// Decodes a raw-log record written by [`encode_record`].
pub fn decode_record(bytes: &[u8]) -> Result<Event, RecordError> {
    match bytes.split_first() {
        Some((&RECORD_V1, rest)) => postcard::from_bytes(rest).map_err(RecordError::Corrupt),
        Some((&v, _)) => Err(RecordError::UnknownVersion(v)),
        None => Err(RecordError::Empty),
    }
}

#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    #[error("empty log record")]
    Empty,
    #[error("log record has unknown format version {0}")]
    UnknownVersion(u8),
    #[error("corrupt log record: {0}")]
    Corrupt(postcard::Error),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn record_round_trips() {
        let e = Event {
            site: "example.com".into(),
            ts: 1_700_000_000_000,
            name: "signup".into(),
            visitor: 42,
            prev_visitor: Some(7),
            user_id: Some("u-1".into()),
            session_hint: None,
            page: "/pricing".into(),
            referrer: Some("news.ycombinator.com/item".into()),
            source: Some("news.ycombinator.com".into()),
            utm_source: None,
            utm_medium: Some("social".into()),
            utm_campaign: None,
            props: vec![("plan".into(), "pro".into())],
            screen_width: Some(1280),
        };
        let bytes = encode_record(&e);
        assert_eq!(bytes[0], RECORD_V1);
        assert_eq!(decode_record(&bytes).unwrap(), e);
        assert!(matches!(decode_record(&[9, 1]), Err(RecordError::UnknownVersion(9))));
        assert!(matches!(decode_record(&[]), Err(RecordError::Empty)));
    }
}
