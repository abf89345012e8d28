//! The event as it is kept in the raw event log.

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::batch::Dim;
use crate::classify::agent::Agent;
use crate::classify::shared;

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
    /// What classification made of the request. Encoded after the fields above (see
    /// [`encode_record`]), so that records written before it existed still decode.
    #[serde(skip)]
    pub traits: Traits,
}

/// The name of the event the tracker sends when a page is hidden or left, with the time it was
/// visible and how far it was scrolled: engagement, not an event of its own.
pub const ENGAGEMENT: &str = "engagement";

/// What classification says of an event's request and landing URL: categories, never the raw
/// user agent or address. A session keeps those of its first event.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Traits {
    /// `Desktop`, `Mobile`, `Tablet` or `Bot`.
    pub device: Option<Arc<str>>,
    pub browser: Option<Arc<str>>,
    pub browser_version: Option<Arc<str>>,
    pub os: Option<Arc<str>>,
    pub os_version: Option<Arc<str>>,
    /// ISO 3166-1 alpha-2 code (`DE`).
    pub country: Option<Arc<str>>,
    /// ISO 3166-2 subdivision code (`DE-BE`), when the database has it.
    pub region: Option<Arc<str>>,
    pub city: Option<Arc<str>>,
    /// Marketing channel (`Organic Search`, `Direct`, …).
    pub channel: Option<Arc<str>>,
    pub utm_term: Option<Arc<str>>,
    pub utm_content: Option<Arc<str>>,
}

/// [`Traits::device`] of a bot.
pub const BOT: &str = "Bot";

impl Traits {
    /// The traits of a client's user agent.
    pub fn of_agent(agent: &Agent) -> Traits {
        Traits {
            device: Some(shared(agent.device.name())),
            browser: agent.browser.clone(),
            browser_version: agent.browser_version.clone(),
            os: agent.os.clone(),
            os_version: agent.os_version.clone(),
            ..Traits::default()
        }
    }

    pub fn is_bot(&self) -> bool {
        self.device.as_deref() == Some(BOT)
    }

    /// The breakdown dimension of each trait, with its value.
    pub fn dims(&self) -> [(Dim, Option<&Arc<str>>); 11] {
        [
            (Dim::Device, self.device.as_ref()),
            (Dim::Browser, self.browser.as_ref()),
            (Dim::BrowserVersion, self.browser_version.as_ref()),
            (Dim::Os, self.os.as_ref()),
            (Dim::OsVersion, self.os_version.as_ref()),
            (Dim::Country, self.country.as_ref()),
            (Dim::Region, self.region.as_ref()),
            (Dim::City, self.city.as_ref()),
            (Dim::Channel, self.channel.as_ref()),
            (Dim::UtmTerm, self.utm_term.as_ref()),
            (Dim::UtmContent, self.utm_content.as_ref()),
        ]
    }

    /// The traits with each value passed through `f` (to share strings, say).
    pub fn map(&self, mut f: impl FnMut(Option<&str>) -> Option<Arc<str>>) -> Traits {
        Traits {
            device: f(self.device.as_deref()),
            browser: f(self.browser.as_deref()),
            browser_version: f(self.browser_version.as_deref()),
            os: f(self.os.as_deref()),
            os_version: f(self.os_version.as_deref()),
            country: f(self.country.as_deref()),
            region: f(self.region.as_deref()),
            city: f(self.city.as_deref()),
            channel: f(self.channel.as_deref()),
            utm_term: f(self.utm_term.as_deref()),
            utm_content: f(self.utm_content.as_deref()),
        }
    }
}

impl Event {
    pub fn is_pageview(&self) -> bool {
        self.name == PAGEVIEW
    }
}

/// Version byte in front of every encoded log record, so the format can evolve: version 1 is
/// the event without its [`Traits`], version 2 the same followed by them.
const RECORD_V1: u8 = 1;
const RECORD_V2: u8 = 2;

/// Encodes an event for the raw log: a version byte, then postcard.
pub fn encode_record(event: &Event) -> Vec<u8> {
    let mut out = vec![RECORD_V2];
    // Serialising plain structs into a Vec cannot fail.
    out.extend(postcard::to_stdvec(event).expect("event encodes"));
    out.extend(postcard::to_stdvec(&event.traits).expect("traits encode"));
    out
}

/// Decodes a raw-log record written by [`encode_record`], or by a version before traits.
pub fn decode_record(bytes: &[u8]) -> Result<Event, RecordError> {
    match bytes.split_first() {
        Some((&RECORD_V1, rest)) => postcard::from_bytes(rest).map_err(RecordError::Corrupt),
        Some((&RECORD_V2, rest)) => {
            let (mut event, rest): (Event, _) =
                postcard::take_from_bytes(rest).map_err(RecordError::Corrupt)?;
            event.traits = postcard::from_bytes(rest).map_err(RecordError::Corrupt)?;
            Ok(event)
        }
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
            traits: Traits::default(),
        };
        let v1 = [&[RECORD_V1][..], &postcard::to_stdvec(&e).unwrap()].concat();
        assert_eq!(decode_record(&v1).unwrap(), e, "a record from before traits");
        let e = Event {
            traits: Traits {
                device: Some("Mobile".into()),
                browser: Some("Mobile Safari".into()),
                country: Some("DE".into()),
                utm_content: Some("banner".into()),
                ..Traits::default()
            },
            ..e
        };
        let bytes = encode_record(&e);
        assert_eq!(bytes[0], RECORD_V2);
        assert_eq!(decode_record(&bytes).unwrap(), e);
        assert!(matches!(decode_record(&bytes[..bytes.len() - 1]), Err(RecordError::Corrupt(_))));
        assert!(matches!(decode_record(&[9, 1]), Err(RecordError::UnknownVersion(9))));
        assert!(matches!(decode_record(&[]), Err(RecordError::Empty)));
    }
}
