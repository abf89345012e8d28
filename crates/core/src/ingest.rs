//! Decoding and validation of incoming events: request bodies in, one result per event out, so
//! that a batch with some bad events keeps the good ones.
//!
//! Two steps, because the server owns the list of registered sites:
//! 1. [`decode`] checks the body as a whole (UTF-8, JSON, shape, batch size) and then each event's
//!    fields, giving an [`Incoming`] or a [`FieldError`] per event;
//! 2. the server looks up [`Incoming::site`] and calls [`Incoming::into_event`] with the request's
//!    [`Client`], which derives the visitor id, and what it classified of the request (device,
//!    browser, country); the event adds the site-relative parts (internal referrers, traffic
//!    source and channel).
//!
//! Three payloads share the rules:
//! - [`Payload::Browser`] (`/api/track`): an object or an array of at most [`MAX_EVENTS`], with
//!   `site`, `name`, `url`, `referrer`, `ts`, `props`, `screen_width`, `session_id`.
//! - [`Payload::Plausible`] (`/api/event`): one object with Plausible's keys `d` (site), `n`
//!   (name), `u` (url), `r` (referrer), `p` (props, an object or a JSON-encoded object as
//!   Plausible's script sends it) and `w` (screen width). Errors name these keys.
//! - [`Payload::Server`] (`/api/v1/events`, behind an API key): the browser shape plus
//!   `user_id`, and `ts` is trusted for any past time (backfill). Only this payload reads
//!   `user_id`: a browser could otherwise claim anyone's identity.
//!
//! Unknown fields are ignored and `null` counts as absent. Lengths count characters, not bytes.

use std::borrow::Cow;
use std::fmt;
use std::sync::Arc;

use percent_encoding::percent_decode_str;
use serde::de::{DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};
use url::{Url, form_urlencoded};

use crate::classify::referrer::{self, Utm};
use crate::classify::shared;
use crate::event::{Event, Traits};
use crate::identity::{Client, session_hint};
use crate::site::{Site, SiteError, normalize_domain};

/// Most events in one request.
pub const MAX_EVENTS: usize = 100;
pub const MAX_NAME_CHARS: usize = 120;
/// Longest `url` and `referrer`.
pub const MAX_URL_CHARS: usize = 2000;
pub const MAX_PROPS: usize = 30;
pub const MAX_PROP_KEY_CHARS: usize = 64;
pub const MAX_PROP_VALUE_CHARS: usize = 256;
pub const MAX_SESSION_ID_CHARS: usize = 128;
pub const MAX_USER_ID_CHARS: usize = 256;

/// Which endpoint a body came to, and so which keys and rules apply.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Payload {
    Browser,
    Plausible,
    Server,
}

/// Server time and how far a client's `ts` may differ from it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Clock {
    /// Unix milliseconds.
    pub now_ms: i64,
    pub max_skew_ms: i64,
}

/// A problem with the request as a whole: nothing in it is accepted.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RequestError {
    #[error("the body is not valid UTF-8 (invalid byte at offset {0})")]
    NotUtf8(usize),
    #[error("the body is not valid JSON: {0}")]
    NotJson(String),
    #[error("the body must be {expected}, not {found}")]
    WrongShape { expected: &'static str, found: &'static str },
    #[error("the body is an empty array: send at least one event")]
    EmptyBatch,
    #[error("too many events: {0} in one request, at most {MAX_EVENTS}")]
    TooManyEvents(usize),
}

/// The field of an event that a [`FieldError`] is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Field {
    /// The array element itself (not an object).
    Event,
    Site,
    Name,
    Url,
    Referrer,
    Ts,
    Props,
    ScreenWidth,
    SessionId,
    UserId,
}

impl Field {
    /// The canonical name: the browser payload's key, and a low-cardinality metrics label.
    pub fn name(self) -> &'static str {
        match self {
            Field::Event => "event",
            Field::Site => "site",
            Field::Name => "name",
            Field::Url => "url",
            Field::Referrer => "referrer",
            Field::Ts => "ts",
            Field::Props => "props",
            Field::ScreenWidth => "screen_width",
            Field::SessionId => "session_id",
            Field::UserId => "user_id",
        }
    }

    /// The key this field has in a payload.
    pub fn key(self, payload: Payload) -> &'static str {
        match (payload, self) {
            (Payload::Plausible, Field::Site) => "d",
            (Payload::Plausible, Field::Name) => "n",
            (Payload::Plausible, Field::Url) => "u",
            (Payload::Plausible, Field::Referrer) => "r",
            (Payload::Plausible, Field::Props) => "p",
            (Payload::Plausible, Field::ScreenWidth) => "w",
            _ => self.name(),
        }
    }
}

/// Why one event was rejected; displays as `key: rule` (`url: must be an absolute http(s) URL`).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{}: {rule}", field.key(*payload))]
pub struct FieldError {
    pub field: Field,
    pub payload: Payload,
    pub rule: String,
}

impl FieldError {
    pub fn new(field: Field, payload: Payload, rule: impl Into<String>) -> FieldError {
        FieldError { field, payload, rule: rule.into() }
    }

    /// The event names a site that is not registered (checked by the server, which owns the list).
    pub fn unknown_site(payload: Payload, domain: &str) -> FieldError {
        FieldError::new(
            Field::Site,
            payload,
            format!("{domain} is not registered; add it with `footfall site add {domain}`"),
        )
    }
}

/// One decoded, validated event that still needs its site and the requester's identity.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Incoming {
    /// Normalised domain (lower-case, no `www.`), to look up among the registered sites.
    pub site: Arc<str>,
    pub name: String,
    /// Resolved event time, Unix ms.
    pub ts: i64,
    /// Percent-decoded URL path; `/` when empty.
    pub page: String,
    pub utm_source: Option<String>,
    pub utm_medium: Option<String>,
    pub utm_campaign: Option<String>,
    pub utm_term: Option<String>,
    pub utm_content: Option<String>,
    /// Referrer as host and path, `www.` stripped.
    pub referrer: Option<String>,
    /// The referrer's host, `www.` stripped: the source unless it is the site itself.
    pub referrer_host: Option<String>,
    pub props: Vec<(String, String)>,
    pub screen_width: Option<u32>,
    pub session_id: Option<String>,
    pub user_id: Option<String>,
}

impl Incoming {
    /// The event as the raw log keeps it. Anonymous visitors are identified by the client's IP
    /// and user agent under the current (and previous) salt; an event with a `user_id` by that
    /// id alone, which does not rotate, so it has no previous id. The IP goes into the hash only.
    /// `request` holds what the request says of its client (device, browser, country), shared
    /// by the request's events; the event adds its own source, channel and UTM tags.
    pub fn into_event(self, site: &Site, client: &mut Client, request: &Traits) -> Event {
        let (visitor, prev_visitor) = match &self.user_id {
            Some(user) => (client.user(&site.domain, user), None),
            None => client.visitor(&self.site),
        };
        // A referrer on the site itself is internal navigation, not a source.
        let external = self.referrer_host.as_deref().is_some_and(|h| !same_site(h, &site.domain));
        let (referrer, referrer_host) =
            if external { (self.referrer, self.referrer_host) } else { (None, None) };
        let utm = Utm {
            source: self.utm_source.as_deref(),
            medium: self.utm_medium.as_deref(),
            campaign: self.utm_campaign.as_deref(),
        };
        let origin = referrer::classify(referrer_host.as_deref(), &utm);
        let traits = Traits {
            channel: Some(shared(origin.channel.name())),
            utm_term: self.utm_term.map(Arc::from),
            utm_content: self.utm_content.map(Arc::from),
            ..request.clone()
        };
        debug_assert_eq!(*self.site, *site.domain, "the site looked up by `Incoming::site`");
        Event {
            site: self.site,
            ts: self.ts,
            name: self.name,
            visitor,
            prev_visitor,
            user_id: self.user_id,
            session_hint: self.session_id.as_deref().map(session_hint),
            page: self.page,
            referrer,
            source: origin.source,
            utm_source: self.utm_source,
            utm_medium: self.utm_medium,
            utm_campaign: self.utm_campaign,
            props: self.props,
            screen_width: self.screen_width,
            traits,
        }
    }
}

/// Whether `host` is the site's domain or a subdomain of it (`www.` included). A port on the
/// site's domain is ignored: pages and referrers are compared by host.
pub fn same_site(host: &str, site_domain: &str) -> bool {
    let domain = site_domain.split(':').next().unwrap_or(site_domain).as_bytes();
    // `host` lower-cased is `domain`, or ends in `.` and `domain`; compared byte by byte rather
    // than by lower-casing a copy, as this runs for every event with a referrer.
    let lower_is_domain = |h: &[u8]| {
        h.len() == domain.len() && h.iter().zip(domain).all(|(a, b)| a.to_ascii_lowercase() == *b)
    };
    let host = host.as_bytes();
    lower_is_domain(host)
        || host.len() > domain.len()
            && host[host.len() - domain.len() - 1] == b'.'
            && lower_is_domain(&host[host.len() - domain.len()..])
}

/// The host of an `Origin` header value (`https://shop.example.com:8443` → `shop.example.com`).
pub fn origin_host(origin: &str) -> Option<String> {
    let url = Url::parse(origin).ok()?;
    matches!(url.scheme(), "http" | "https").then_some(())?;
    url.host_str().map(str::to_owned)
}

/// Decodes a request body into one result per event, in order.
///
/// The body is parsed once, straight into what validation reads: strings stay borrowed from the
/// body where they have no escapes, and of unknown fields nothing is kept. It is parsed as
/// strictly as into a [`Value`] (every value in full, with the same nesting limit), so the same
/// bodies are rejected, with the same messages.
pub fn decode(
    payload: Payload,
    body: &[u8],
    clock: Clock,
) -> Result<Vec<Result<Incoming, FieldError>>, RequestError> {
    let text = std::str::from_utf8(body).map_err(|e| RequestError::NotUtf8(e.valid_up_to()))?;
    // Room for as many events as the body likely holds (an event is some hundreds of bytes),
    // rather than growing, and copying, the events read so far again and again.
    let mut events = Vec::with_capacity((text.len() / 128 + 1).min(MAX_EVENTS + 1));
    let mut de = serde_json::Deserializer::from_str(text);
    let parsed = BodySeed { payload, events: &mut events }
        .deserialize(&mut de)
        .and_then(|body| de.end().map(|()| body));
    let items = match (payload, parsed.map_err(|e| RequestError::NotJson(e.to_string()))?) {
        (_, Body::Object) => vec![Item::Event(0)],
        (Payload::Browser | Payload::Server, Body::Array(items)) => items,
        (_, other) => {
            let expected = match payload {
                Payload::Plausible => "one JSON object (one event per request)",
                Payload::Browser | Payload::Server => "a JSON object or an array of objects",
            };
            let found = match other {
                Body::Array(_) => "an array",
                Body::Object => "an object",
                Body::Other(kind) => kind,
            };
            return Err(RequestError::WrongShape { expected, found });
        }
    };
    if items.is_empty() {
        return Err(RequestError::EmptyBatch);
    }
    if items.len() > MAX_EVENTS {
        return Err(RequestError::TooManyEvents(items.len()));
    }
    let mut sites = SiteCache::default();
    Ok(items
        .iter()
        .map(|item| match item {
            Item::Event(i) => decode_event(payload, &events[*i], clock, &mut sites),
            Item::NotAnObject => {
                Err(FieldError::new(Field::Event, payload, "must be a JSON object"))
            }
        })
        .collect())
}

/// A request body as [`decode`] reads it; its event objects are kept aside, in order.
enum Body {
    Object,
    Array(Vec<Item>),
    /// Neither; the kind of value it is.
    Other(&'static str),
}

/// An element of a batch.
enum Item {
    /// The index of its event object.
    Event(usize),
    NotAnObject,
}

/// The fields of an event object that its payload reads, by [`Field`]; the last one wins when a
/// key repeats, as in a JSON object parsed into a map.
#[derive(Default)]
struct RawEvent<'a> {
    fields: [Option<Loose<'a>>; 10],
}

/// The field a payload reads under `key`, if any. Only the server payload reads `user_id`.
fn field_of(payload: Payload, key: &str) -> Option<Field> {
    let field = match key {
        "site" | "d" => Field::Site,
        "name" | "n" => Field::Name,
        "url" | "u" => Field::Url,
        "referrer" | "r" => Field::Referrer,
        "ts" => Field::Ts,
        "props" | "p" => Field::Props,
        "screen_width" | "w" => Field::ScreenWidth,
        "session_id" => Field::SessionId,
        "user_id" => Field::UserId,
        _ => return None,
    };
    let read = field != Field::UserId || payload == Payload::Server;
    (read && field.key(payload) == key).then_some(field)
}

/// A JSON value, as much of it as validation needs: numbers and strings (borrowed from the body
/// when unescaped), and only the kind of arrays and of objects other than `props`.
#[derive(Debug)]
enum Loose<'a> {
    Null,
    Bool(bool),
    Number(serde_json::Number),
    Str(Cow<'a, str>),
    Array,
    /// An object's entries, in the order they came (kept only where asked for).
    Object(Vec<(Cow<'a, str>, Loose<'a>)>),
}

impl<'a> Loose<'a> {
    fn from_value(v: &'a Value) -> Loose<'a> {
        match v {
            Value::Null => Loose::Null,
            Value::Bool(b) => Loose::Bool(*b),
            Value::Number(n) => Loose::Number(n.clone()),
            Value::String(s) => Loose::Str(Cow::Borrowed(s)),
            Value::Array(_) => Loose::Array,
            Value::Object(_) => Loose::Object(Vec::new()),
        }
    }

    fn as_i64(&self) -> Option<i64> {
        match self {
            Loose::Number(n) => n.as_i64(),
            _ => None,
        }
    }

    fn as_u64(&self) -> Option<u64> {
        match self {
            Loose::Number(n) => n.as_u64(),
            _ => None,
        }
    }
}

// Deserialisation of a body. Every visitor accepts every kind of value and reads arrays and
// objects through to the end with `deserialize_any`, as `Value` does, so a body is valid JSON
// here exactly when it is one for `serde_json::from_str::<Value>`.

/// Reads a body, keeping its event objects in `events`.
struct BodySeed<'e, 'de> {
    payload: Payload,
    events: &'e mut Vec<RawEvent<'de>>,
}

impl<'de> DeserializeSeed<'de> for BodySeed<'_, 'de> {
    type Value = Body;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Body, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for BodySeed<'_, 'de> {
    type Value = Body;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Body, A::Error> {
        read_event(self.payload, map, self.events).map(|_| Body::Object)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Body, A::Error> {
        let mut items = Vec::with_capacity(self.events.capacity());
        let payload = self.payload;
        while let Some(item) = seq.next_element_seed(ItemSeed { payload, events: self.events })? {
            items.push(item);
        }
        Ok(Body::Array(items))
    }

    fn visit_unit<E>(self) -> Result<Body, E> {
        Ok(Body::Other("null"))
    }

    fn visit_bool<E>(self, _: bool) -> Result<Body, E> {
        Ok(Body::Other("a boolean"))
    }

    fn visit_i64<E>(self, _: i64) -> Result<Body, E> {
        Ok(Body::Other("a number"))
    }

    fn visit_u64<E>(self, _: u64) -> Result<Body, E> {
        Ok(Body::Other("a number"))
    }

    fn visit_f64<E>(self, f: f64) -> Result<Body, E> {
        // `Value` has no infinite numbers; it would hold `null`.
        Ok(Body::Other(if f.is_finite() { "a number" } else { "null" }))
    }

    fn visit_str<E>(self, _: &str) -> Result<Body, E> {
        Ok(Body::Other("a string"))
    }
}

/// Reads an element of a batch.
struct ItemSeed<'e, 'de> {
    payload: Payload,
    events: &'e mut Vec<RawEvent<'de>>,
}

impl<'de> DeserializeSeed<'de> for ItemSeed<'_, 'de> {
    type Value = Item;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Item, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for ItemSeed<'_, 'de> {
    type Value = Item;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Item, A::Error> {
        read_event(self.payload, map, self.events).map(Item::Event)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Item, A::Error> {
        INNER.visit_seq(seq).map(|_| Item::NotAnObject)
    }

    fn visit_unit<E>(self) -> Result<Item, E> {
        Ok(Item::NotAnObject)
    }

    fn visit_bool<E>(self, _: bool) -> Result<Item, E> {
        Ok(Item::NotAnObject)
    }

    fn visit_i64<E>(self, _: i64) -> Result<Item, E> {
        Ok(Item::NotAnObject)
    }

    fn visit_u64<E>(self, _: u64) -> Result<Item, E> {
        Ok(Item::NotAnObject)
    }

    fn visit_f64<E>(self, _: f64) -> Result<Item, E> {
        Ok(Item::NotAnObject)
    }

    fn visit_str<E>(self, _: &str) -> Result<Item, E> {
        Ok(Item::NotAnObject)
    }
}

/// Reads an event object into a new entry of `events`, filled in place (an event is a few
/// hundred bytes, better not moved about), and returns its index.
fn read_event<'de, A: MapAccess<'de>>(
    payload: Payload,
    mut map: A,
    events: &mut Vec<RawEvent<'de>>,
) -> Result<usize, A::Error> {
    events.push(RawEvent::default());
    let index = events.len() - 1;
    let event = &mut events[index];
    while let Some(key) = map.next_key_seed(KeySeed)? {
        match field_of(payload, &key) {
            Some(field) => {
                let seed = LooseSeed { entries: field == Field::Props };
                event.fields[field as usize] = Some(map.next_value_seed(seed)?);
            }
            None => {
                map.next_value_seed(INNER)?;
            }
        }
    }
    Ok(index)
}

/// An object key, borrowed from the body unless it has escapes.
struct KeySeed;

impl<'de> DeserializeSeed<'de> for KeySeed {
    type Value = Cow<'de, str>;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Cow<'de, str>, D::Error> {
        d.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for KeySeed {
    type Value = Cow<'de, str>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a string")
    }

    fn visit_borrowed_str<E>(self, s: &'de str) -> Result<Cow<'de, str>, E> {
        Ok(Cow::Borrowed(s))
    }

    fn visit_str<E>(self, s: &str) -> Result<Cow<'de, str>, E> {
        Ok(Cow::Owned(s.to_owned()))
    }

    fn visit_string<E>(self, s: String) -> Result<Cow<'de, str>, E> {
        Ok(Cow::Owned(s))
    }
}

/// Reads any value: an object with its entries when `entries` is set (`props`), or else only
/// as its kind.
#[derive(Clone, Copy)]
struct LooseSeed {
    entries: bool,
}

/// The seed for values whose content does not matter, only their validity.
const INNER: LooseSeed = LooseSeed { entries: false };

impl<'de> DeserializeSeed<'de> for LooseSeed {
    type Value = Loose<'de>;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Loose<'de>, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for LooseSeed {
    type Value = Loose<'de>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_unit<E>(self) -> Result<Loose<'de>, E> {
        Ok(Loose::Null)
    }

    fn visit_bool<E>(self, b: bool) -> Result<Loose<'de>, E> {
        Ok(Loose::Bool(b))
    }

    fn visit_i64<E>(self, i: i64) -> Result<Loose<'de>, E> {
        Ok(Loose::Number(i.into()))
    }

    fn visit_u64<E>(self, u: u64) -> Result<Loose<'de>, E> {
        Ok(Loose::Number(u.into()))
    }

    fn visit_f64<E>(self, f: f64) -> Result<Loose<'de>, E> {
        // As `Value` holds it: there are no infinite JSON numbers.
        Ok(serde_json::Number::from_f64(f).map_or(Loose::Null, Loose::Number))
    }

    fn visit_borrowed_str<E>(self, s: &'de str) -> Result<Loose<'de>, E> {
        Ok(Loose::Str(Cow::Borrowed(s)))
    }

    fn visit_str<E>(self, s: &str) -> Result<Loose<'de>, E> {
        Ok(Loose::Str(Cow::Owned(s.to_owned())))
    }

    fn visit_string<E>(self, s: String) -> Result<Loose<'de>, E> {
        Ok(Loose::Str(Cow::Owned(s)))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Loose<'de>, A::Error> {
        while seq.next_element_seed(INNER)?.is_some() {}
        Ok(Loose::Array)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Loose<'de>, A::Error> {
        let mut entries = Vec::new();
        while let Some(key) = map.next_key_seed(KeySeed)? {
            let value = map.next_value_seed(INNER)?;
            if self.entries {
                entries.push((key, value));
            }
        }
        Ok(Loose::Object(entries))
    }
}

/// The sites a request's events named so far, as sent and normalised: a batch's events are
/// nearly always for one site, or a few.
#[derive(Default)]
struct SiteCache {
    /// At most [`SiteCache::SIZE`]; past that, the last entry is replaced.
    entries: Vec<(String, Arc<str>)>,
}

impl SiteCache {
    const SIZE: usize = 4;

    fn normalize(&mut self, raw: &str) -> Result<Arc<str>, SiteError> {
        if let Some((_, normalized)) = self.entries.iter().find(|(r, _)| r == raw) {
            return Ok(normalized.clone());
        }
        let normalized: Arc<str> = normalize_domain(raw)?.into();
        if self.entries.len() == SiteCache::SIZE {
            self.entries.pop();
        }
        self.entries.push((raw.to_owned(), normalized.clone()));
        Ok(normalized)
    }
}

/// The field reader for one event object.
struct Reader<'r, 'a> {
    event: &'r RawEvent<'a>,
    payload: Payload,
}

impl<'r> Reader<'r, '_> {
    fn err(&self, field: Field, rule: impl Into<String>) -> FieldError {
        FieldError::new(field, self.payload, rule)
    }

    /// The field's value; `null` counts as absent.
    fn get(&self, field: Field) -> Option<&'r Loose<'r>> {
        self.event.fields[field as usize].as_ref().filter(|v| !matches!(v, Loose::Null))
    }

    fn string(&self, field: Field, max_chars: usize) -> Result<Option<&'r str>, FieldError> {
        match self.get(field) {
            None => Ok(None),
            Some(Loose::Str(s)) if longer_than(s, max_chars) => {
                Err(self.err(field, format!("at most {max_chars} characters")))
            }
            Some(Loose::Str(s)) => Ok(Some(s)),
            Some(_) => Err(self.err(field, "must be a string")),
        }
    }

    fn required(&self, field: Field, max_chars: usize) -> Result<&'r str, FieldError> {
        match self.string(field, max_chars)? {
            None => Err(self.err(field, "required")),
            Some("") => Err(self.err(field, "must not be empty")),
            Some(s) => Ok(s),
        }
    }
}

/// Whether `s` has more than `max` characters; counted only when its bytes could be.
fn longer_than(s: &str, max: usize) -> bool {
    s.len() > max && s.chars().count() > max
}

fn decode_event(
    payload: Payload,
    event: &RawEvent,
    clock: Clock,
    sites: &mut SiteCache,
) -> Result<Incoming, FieldError> {
    let r = Reader { event, payload };

    let site = r.required(Field::Site, usize::MAX)?;
    let site = sites.normalize(site).map_err(|e| r.err(Field::Site, e.to_string()))?;
    let name = r.required(Field::Name, MAX_NAME_CHARS)?.to_owned();

    let url = r.required(Field::Url, MAX_URL_CHARS)?;
    let url = parse_url(url)
        .ok()
        .filter(|u| u.is_http() && u.host().is_some())
        .ok_or_else(|| r.err(Field::Url, "must be an absolute http(s) URL"))?;
    let page = match decode_path(url.path()) {
        p if p.is_empty() => "/".to_owned(),
        p => p,
    };
    let [utm_source, utm_medium, utm_campaign, utm_term, utm_content] = utm_tags(url.query());

    let (referrer, referrer_host) = match r.string(Field::Referrer, MAX_URL_CHARS)? {
        None | Some("") => (None, None),
        Some(s) => {
            let url =
                parse_url(s).map_err(|_| r.err(Field::Referrer, "must be an absolute URL"))?;
            // A referrer without a host (`about:blank`) names no source.
            match url.host() {
                None => (None, None),
                Some(host) => {
                    let host = host.strip_prefix("www.").unwrap_or(host).to_owned();
                    let path = decode_path(url.path());
                    // The root page adds nothing: `google.com`, not `google.com/`.
                    let path = if path == "/" { "" } else { &path };
                    (Some([host.as_str(), path].concat()), Some(host))
                }
            }
        }
    };

    let ts = match r.get(Field::Ts) {
        None => clock.now_ms,
        Some(v) => {
            let ts = v
                .as_i64()
                .filter(|&t| t >= 0)
                .ok_or_else(|| r.err(Field::Ts, "must be a non-negative integer (Unix ms)"))?;
            resolve_ts(payload, ts, clock).map_err(|rule| r.err(Field::Ts, rule))?
        }
    };

    let props = match r.get(Field::Props) {
        None => Vec::new(),
        Some(v) => decode_props(&r, v)?,
    };

    let screen_width = match r.get(Field::ScreenWidth) {
        None => None,
        Some(v) => Some(
            v.as_u64()
                .and_then(|w| u32::try_from(w).ok())
                .ok_or_else(|| r.err(Field::ScreenWidth, "must be a non-negative integer"))?,
        ),
    };

    // An empty session id is what a tracker sends when it has none.
    let session_id = r
        .string(Field::SessionId, MAX_SESSION_ID_CHARS)?
        .filter(|s| !s.is_empty())
        .map(str::to_owned);

    let user_id = match payload {
        Payload::Server => match r.string(Field::UserId, MAX_USER_ID_CHARS)? {
            Some("") => return Err(r.err(Field::UserId, "must not be empty")),
            other => other.map(str::to_owned),
        },
        Payload::Browser | Payload::Plausible => None,
    };

    Ok(Incoming {
        site,
        name,
        ts,
        page,
        utm_source,
        utm_medium,
        utm_campaign,
        utm_term,
        utm_content,
        referrer,
        referrer_host,
        props,
        screen_width,
        session_id,
        user_id,
    })
}

/// The UTM tags of a URL's query (source, medium, campaign, term, content): the first of each
/// key, if not empty.
fn utm_tags(query: Option<&str>) -> [Option<String>; 5] {
    const KEYS: [&str; 5] = ["utm_source", "utm_medium", "utm_campaign", "utm_term", "utm_content"];
    let mut found: [Option<Option<String>>; 5] = Default::default();
    for (k, v) in form_urlencoded::parse(query.unwrap_or("").as_bytes()) {
        if let Some(i) = KEYS.iter().position(|key| *key == k) {
            found[i].get_or_insert_with(|| Some(v.into_owned()).filter(|v| !v.is_empty()));
        }
    }
    found.map(Option::flatten)
}

/// A URL as events use it.
enum ParsedUrl<'a> {
    /// An `http(s)` URL already in the form [`Url::parse`] would give it (see [`simple_url`]).
    Simple {
        host: &'a str,
        path: &'a str,
        query: Option<&'a str>,
    },
    Parsed(Url),
}

impl ParsedUrl<'_> {
    fn is_http(&self) -> bool {
        match self {
            ParsedUrl::Simple { .. } => true,
            ParsedUrl::Parsed(url) => matches!(url.scheme(), "http" | "https"),
        }
    }

    fn host(&self) -> Option<&str> {
        match self {
            ParsedUrl::Simple { host, .. } => Some(host),
            ParsedUrl::Parsed(url) => url.host_str(),
        }
    }

    fn path(&self) -> &str {
        match self {
            ParsedUrl::Simple { path, .. } => path,
            ParsedUrl::Parsed(url) => url.path(),
        }
    }

    fn query(&self) -> Option<&str> {
        match self {
            ParsedUrl::Simple { query, .. } => *query,
            ParsedUrl::Parsed(url) => url.query(),
        }
    }
}

/// Parses an absolute URL. Nearly every URL a tracker sends (`https://example.com/a/b?c=d`) is
/// already in the form `Url::parse` would give it; those are taken apart where they are, and
/// the rest, along with anything unusual, go through `Url::parse`.
fn parse_url(s: &str) -> Result<ParsedUrl<'_>, url::ParseError> {
    match simple_url(s) {
        Some(simple) => Ok(simple),
        None => Url::parse(s).map(ParsedUrl::Parsed),
    }
}

/// The parts of `s` if it is an `http(s)` URL that `Url::parse` would leave as it is, up to its
/// fragment: a lower-case scheme, `//`, a lower-case ASCII domain name (no user, port, IP
/// address or IDNA label), and a path and query of characters that are never percent-encoded
/// or otherwise rewritten, with no `.` or `..` segments. Anything else gives `None`; the
/// `simple_urls_are_as_url_parses_them` test holds this to `Url::parse` over many inputs.
fn simple_url(s: &str) -> Option<ParsedUrl<'_>> {
    let rest = s.strip_prefix("https://").or_else(|| s.strip_prefix("http://"))?;
    let bytes = rest.as_bytes();
    let host_end = bytes.iter().position(|b| matches!(b, b'/' | b'?' | b'#')).unwrap_or(rest.len());
    let host = &rest[..host_end];
    if !simple_host(host) {
        return None;
    }
    // One pass over the path and one over the query: this runs for every URL and referrer.
    let after_host = &bytes[host_end..];
    let mut path_end = after_host.len();
    // The path begins with `/` (the host ends where it does).
    let mut segment_start = true;
    for (i, &b) in after_host.iter().enumerate() {
        match PATH_CLASS[usize::from(b)] {
            PLAIN => segment_start = false,
            SLASH => segment_start = true,
            // A segment that begins with `.` (or `%`, which may spell one) may be `.` or `..`.
            DOT if !segment_start => {}
            END => {
                path_end = i;
                break;
            }
            _ => return None,
        }
    }
    let path = match &rest[host_end..host_end + path_end] {
        "" => "/",
        path => path,
    };
    let query = match after_host.get(path_end) {
        Some(b'?') => {
            let query = &rest[host_end + path_end + 1..];
            let bytes = query.as_bytes();
            match bytes.iter().position(|&b| !QUERY_CHARS[usize::from(b)]) {
                None => Some(query),
                Some(end) if bytes[end] == b'#' => Some(&query[..end]),
                Some(_) => return None,
            }
        }
        _ => None,
    };
    Some(ParsedUrl::Simple { host, path, query })
}

/// Whether a host is a domain name that `Url::parse` leaves as it is: labels of lower-case ASCII
/// letters, digits and inner `-`, none empty or beginning with `xn--` (IDNA), and the last not
/// beginning with a digit (which could make the host an IPv4 address).
fn simple_host(host: &str) -> bool {
    let mut label_start = 0;
    for (i, &c) in host.as_bytes().iter().enumerate() {
        let label_ends = c == b'.';
        if label_ends && !simple_label(&host[label_start..i]) {
            return false;
        }
        if label_ends {
            label_start = i + 1;
        } else if !(c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'-') {
            return false;
        }
    }
    let last = &host[label_start..];
    simple_label(last) && !last.as_bytes()[0].is_ascii_digit()
}

/// Whether a label of a [`simple_host`] is one: not empty, not beginning or ending with `-`, and
/// not an IDNA label.
fn simple_label(label: &str) -> bool {
    !label.is_empty()
        && !label.starts_with('-')
        && !label.ends_with('-')
        && !label.starts_with("xn--")
}

/// Bytes that `Url::parse` keeps as they are in a path; in a query. (It percent-encodes
/// others, reads `\` as `/`, and so on.)
static PATH_CHARS: [bool; 256] = ascii_set(b"-._~!$&'()*+,;=:@/%");
static QUERY_CHARS: [bool; 256] = ascii_set(b"-._~!$&()*+,;=:@/?%[]");

// What a byte is to [`simple_url`]'s reading of a path, by [`PATH_CLASS`]: one table lookup
// per byte rather than several comparisons.
/// Kept as it is.
const PLAIN: u8 = 0;
/// `/`: a segment begins after it.
const SLASH: u8 = 1;
/// `.` or `%`: kept, but not at the start of a segment.
const DOT: u8 = 2;
/// `?` or `#`: the path ends.
const END: u8 = 3;
/// Anything `Url::parse` would rewrite.
const REWRITTEN: u8 = 4;

static PATH_CLASS: [u8; 256] = {
    let mut class = [REWRITTEN; 256];
    let mut b = 0;
    while b < 256 {
        if PATH_CHARS[b] {
            class[b] = PLAIN;
        }
        b += 1;
    }
    class[b'/' as usize] = SLASH;
    class[b'.' as usize] = DOT;
    class[b'%' as usize] = DOT;
    class[b'?' as usize] = END;
    class[b'#' as usize] = END;
    class
};

/// ASCII letters, digits and `extra`.
const fn ascii_set(extra: &[u8]) -> [bool; 256] {
    let mut set = [false; 256];
    let mut c = 0;
    while c < 128 {
        set[c] = (c as u8).is_ascii_alphanumeric();
        c += 1;
    }
    let mut i = 0;
    while i < extra.len() {
        set[extra[i] as usize] = true;
        i += 1;
    }
    set
}

/// The time an event is recorded at, given the `ts` the client sent.
///
/// Browsers' clocks are often wrong (minutes to years off, or never set), and a page can be
/// left open and send late, so a browser's `ts` is used only when it is within the skew of
/// server time; otherwise the server's own time is the better guess. An application server
/// backfilling history is trusted for any past time, but not beyond the skew into the future,
/// which would only be a bug (microseconds instead of milliseconds, a broken clock).
fn resolve_ts(payload: Payload, ts: i64, clock: Clock) -> Result<i64, String> {
    match payload {
        Payload::Server if ts > clock.now_ms.saturating_add(clock.max_skew_ms) => {
            Err(format!("must not be more than {} ms ahead of server time", clock.max_skew_ms))
        }
        Payload::Server => Ok(ts),
        Payload::Browser | Payload::Plausible => {
            Ok(if ts.abs_diff(clock.now_ms) <= clock.max_skew_ms.unsigned_abs() {
                ts
            } else {
                clock.now_ms
            })
        }
    }
}

/// Percent-decodes a URL path; one that does not decode to UTF-8 is kept as sent.
fn decode_path(path: &str) -> String {
    if !path.as_bytes().contains(&b'%') {
        return path.to_owned();
    }
    percent_decode_str(path).decode_utf8().map_or_else(|_| path.to_owned(), |p| p.into_owned())
}

/// Custom properties: string values as they are; numbers and booleans are accepted and kept as
/// their JSON text (`42`, `1.5`, `true`), since trackers send them and breakdowns only compare
/// text. Anything else (`null`, arrays, objects) is rejected rather than guessed at.
fn decode_props(r: &Reader, value: &Loose) -> Result<Vec<(String, String)>, FieldError> {
    match value {
        Loose::Object(entries) => {
            // As a JSON object parsed into a map: by key, a repeated key keeping its last value.
            let mut sorted: Vec<(&str, &Loose)> = entries.iter().map(|(k, v)| (&**k, v)).collect();
            sorted.sort_by(|a, b| a.0.cmp(b.0));
            let mut props: Vec<(&str, &Loose)> = Vec::with_capacity(sorted.len());
            for (k, v) in sorted {
                match props.last_mut() {
                    Some(last) if last.0 == k => *last = (k, v),
                    _ => props.push((k, v)),
                }
            }
            check_props(r, &props)
        }
        // Plausible's script sends props as a JSON-encoded string.
        Loose::Str(s) if r.payload == Payload::Plausible => {
            match serde_json::from_str::<Value>(s).ok() {
                Some(Value::Object(obj)) => check_map_props(r, &obj),
                _ => Err(r.err(Field::Props, "must be an object or a JSON-encoded object")),
            }
        }
        _ => Err(r.err(Field::Props, "must be an object")),
    }
}

/// [`check_props`] for an object parsed into a map (already by key, each key once).
fn check_map_props(
    r: &Reader,
    obj: &Map<String, Value>,
) -> Result<Vec<(String, String)>, FieldError> {
    let values: Vec<Loose> = obj.values().map(Loose::from_value).collect();
    let props: Vec<(&str, &Loose)> = obj.keys().map(|k| &**k).zip(&values).collect();
    check_props(r, &props)
}

/// Checks properties, in key order, and keeps them as text.
fn check_props(r: &Reader, props: &[(&str, &Loose)]) -> Result<Vec<(String, String)>, FieldError> {
    if props.len() > MAX_PROPS {
        return Err(r.err(Field::Props, format!("at most {MAX_PROPS} properties")));
    }
    props
        .iter()
        .map(|&(k, v)| {
            if k.is_empty() {
                return Err(r.err(Field::Props, "keys must not be empty"));
            }
            // Storage keys end in `prop:NAME:VALUE`; a `:` in NAME would make two properties
            // share one unique count.
            if k.contains(':') {
                return Err(r.err(Field::Props, format!("key `{k}` must not contain `:`")));
            }
            if longer_than(k, MAX_PROP_KEY_CHARS) {
                return Err(r.err(
                    Field::Props,
                    format!("keys must be at most {MAX_PROP_KEY_CHARS} characters"),
                ));
            }
            let v = match v {
                Loose::Str(s) => s.to_string(),
                Loose::Number(n) => n.to_string(),
                Loose::Bool(b) => b.to_string(),
                _ => {
                    return Err(r.err(
                        Field::Props,
                        format!("value of `{k}` must be a string, number or boolean"),
                    ));
                }
            };
            if longer_than(&v, MAX_PROP_VALUE_CHARS) {
                return Err(r.err(
                    Field::Props,
                    format!("value of `{k}` must be at most {MAX_PROP_VALUE_CHARS} characters"),
                ));
            }
            Ok((k.to_owned(), v))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::identity::Salts;

    const NOW: i64 = 1_795_356_330_000; // 2026-11-22T14:05:30Z
    const CLOCK: Clock = Clock { now_ms: NOW, max_skew_ms: 300_000 };

    fn one(payload: Payload, v: Value) -> Result<Incoming, FieldError> {
        let mut out = decode(payload, v.to_string().as_bytes(), CLOCK).expect("request is valid");
        assert_eq!(out.len(), 1);
        out.remove(0)
    }

    fn browser(extra: Value) -> Result<Incoming, FieldError> {
        let mut v =
            json!({"site": "example.com", "name": "pageview", "url": "https://example.com/"});
        v.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
        one(Payload::Browser, v)
    }

    fn err(payload: Payload, v: Value) -> String {
        one(payload, v).unwrap_err().to_string()
    }

    fn browser_err(extra: Value) -> String {
        browser(extra).unwrap_err().to_string()
    }

    fn site() -> Site {
        Site::new("example.com", "UTC", false).unwrap()
    }

    /// The event of `incoming` for `site()`, from one client.
    fn identified(incoming: Incoming) -> Event {
        incoming.into_event(&site(), &mut Client::new(&salts(), "ip", "ua"), &Traits::default())
    }

    fn salts() -> Salts {
        Salts::new(NOW, [7; 64])
    }

    #[test]
    fn whole_request_errors() {
        let d = |body: &[u8]| decode(Payload::Browser, body, CLOCK).unwrap_err().to_string();
        assert_eq!(
            d(b"{\"site\": \"a\xff\"}"),
            "the body is not valid UTF-8 (invalid byte at offset 11)"
        );
        assert_eq!(d(b"site=a"), "the body is not valid JSON: expected value at line 1 column 1");
        assert_eq!(
            d(b""),
            "the body is not valid JSON: EOF while parsing a value at line 1 column 0"
        );
        assert_eq!(
            d(b"\"x\""),
            "the body must be a JSON object or an array of objects, not a string"
        );
        assert_eq!(d(b"null"), "the body must be a JSON object or an array of objects, not null");
        assert_eq!(d(b"[]"), "the body is an empty array: send at least one event");
        let many = Value::Array(vec![json!({}); 101]).to_string();
        assert_eq!(d(many.as_bytes()), "too many events: 101 in one request, at most 100");
        let plausible = decode(Payload::Plausible, b"[{}]", CLOCK).unwrap_err().to_string();
        assert_eq!(
            plausible,
            "the body must be one JSON object (one event per request), not an array"
        );
    }

    #[test]
    fn batch_keeps_good_events_and_reports_each_bad_one() {
        let body = json!([
            {"site": "example.com", "name": "pageview", "url": "https://example.com/a"},
            {"site": "example.com", "name": "pageview", "url": "/relative"},
            "not an object",
            {"site": "example.com", "name": "signup", "url": "https://example.com/b"},
        ]);
        let out = decode(Payload::Browser, body.to_string().as_bytes(), CLOCK).unwrap();
        assert_eq!(out.len(), 4);
        assert_eq!(out[0].as_ref().unwrap().page, "/a");
        assert_eq!(
            out[1].as_ref().unwrap_err().to_string(),
            "url: must be an absolute http(s) URL"
        );
        assert_eq!(out[2].as_ref().unwrap_err().to_string(), "event: must be a JSON object");
        assert_eq!(out[2].as_ref().unwrap_err().field.name(), "event");
        assert_eq!(out[3].as_ref().unwrap().name, "signup");
        // Exactly 100 is allowed.
        let full = Value::Array(vec![json!({}); 100]).to_string();
        assert_eq!(decode(Payload::Browser, full.as_bytes(), CLOCK).unwrap().len(), 100);
    }

    #[test]
    fn a_full_browser_event_decodes() {
        let e = browser(json!({
            "site": "WWW.Example.com",
            "name": "signup",
            "url": "https://example.com/pricing/caf%C3%A9\
                    ?utm_source=newsletter&utm_medium=email&utm_campaign=nov+sale\
                    &utm_term=shoes&utm_content=hero&ref=x#top",
            "referrer": "https://www.google.com/search?q=x#frag",
            "ts": NOW - 1000,
            "props": {"plan": "pro", "seats": 3, "trial": false},
            "screen_width": 1280,
            "session_id": "s-1",
            "user_id": "ignored-from-browsers",
            "unknown": [1, 2, 3],
        }))
        .unwrap();
        assert_eq!(
            e,
            Incoming {
                site: "example.com".into(),
                name: "signup".into(),
                ts: NOW - 1000,
                page: "/pricing/café".into(),
                utm_source: Some("newsletter".into()),
                utm_medium: Some("email".into()),
                utm_campaign: Some("nov sale".into()),
                utm_term: Some("shoes".into()),
                utm_content: Some("hero".into()),
                referrer: Some("google.com/search".into()),
                referrer_host: Some("google.com".into()),
                props: vec![
                    ("plan".into(), "pro".into()),
                    ("seats".into(), "3".into()),
                    ("trial".into(), "false".into()),
                ],
                screen_width: Some(1280),
                session_id: Some("s-1".into()),
                user_id: None,
            }
        );
    }

    #[test]
    fn site_rules() {
        let v = json!({"name": "pageview", "url": "https://example.com/"});
        assert_eq!(err(Payload::Browser, v), "site: required");
        assert_eq!(browser_err(json!({"site": null})), "site: required");
        assert_eq!(browser_err(json!({"site": 5})), "site: must be a string");
        assert_eq!(browser_err(json!({"site": ""})), "site: must not be empty");
        assert_eq!(
            browser_err(json!({"site": "exa mple.com"})),
            "site: `exa mple.com` is not a domain: use a host name such as `example.com` \
             (letters, digits, `-` and `.`)"
        );
        assert_eq!(&*browser(json!({"site": "https://Example.com/"})).unwrap().site, "example.com");
        assert_eq!(
            FieldError::unknown_site(Payload::Browser, "example.org").to_string(),
            "site: example.org is not registered; add it with `footfall site add example.org`"
        );
    }

    #[test]
    fn name_rules() {
        let v = json!({"site": "example.com", "url": "https://example.com/"});
        assert_eq!(err(Payload::Browser, v), "name: required");
        assert_eq!(browser_err(json!({"name": ""})), "name: must not be empty");
        assert_eq!(browser_err(json!({"name": ["x"]})), "name: must be a string");
        assert_eq!(browser(json!({"name": "é".repeat(120)})).unwrap().name.chars().count(), 120);
        assert_eq!(browser_err(json!({"name": "é".repeat(121)})), "name: at most 120 characters");
    }

    #[test]
    fn url_rules() {
        let v = json!({"site": "example.com", "name": "pageview"});
        assert_eq!(err(Payload::Browser, v), "url: required");
        for bad in
            ["/pricing", "example.com/pricing", "ftp://example.com/", "mailto:a@b.c", "http://"]
        {
            assert_eq!(
                browser_err(json!({ "url": bad })),
                "url: must be an absolute http(s) URL",
                "{bad}"
            );
        }
        let long = format!("https://example.com/{}", "a".repeat(2000 - 20));
        assert_eq!(long.len(), 2000);
        assert!(browser(json!({ "url": long })).is_ok());
        assert_eq!(
            browser_err(json!({ "url": format!("{long}a") })),
            "url: at most 2000 characters"
        );
    }

    #[test]
    fn page_is_the_decoded_path_without_query_or_fragment() {
        let page = |url: &str| browser(json!({ "url": url })).unwrap().page;
        assert_eq!(page("https://example.com"), "/");
        assert_eq!(page("https://example.com/?q=1#x"), "/");
        assert_eq!(page("http://example.com/a/b/?q=1#x"), "/a/b/");
        assert_eq!(page("https://example.com/a%20b/%E2%9C%93"), "/a b/✓");
        // Bytes that are not UTF-8 once decoded stay encoded rather than being mangled.
        assert_eq!(page("https://example.com/%FF"), "/%FF");
    }

    #[test]
    fn utm_parameters_come_from_the_query() {
        let e =
            browser(json!({"url": "https://example.com/?utm_source=&utm_medium=cpc&utm_medium=x"}))
                .unwrap();
        assert_eq!((e.utm_source, e.utm_medium, e.utm_campaign), (None, Some("cpc".into()), None));
        let e =
            browser(json!({"url": "https://example.com/?utm_campaign=black%20friday"})).unwrap();
        assert_eq!(e.utm_campaign.as_deref(), Some("black friday"));
    }

    #[test]
    fn referrer_is_host_and_path() {
        let r = |referrer: Value| {
            let e = browser(json!({ "referrer": referrer })).unwrap();
            (e.referrer, e.referrer_host)
        };
        let some = |a: &str, b: &str| (Some(a.to_owned()), Some(b.to_owned()));
        assert_eq!(
            r(json!("https://news.ycombinator.com/item?id=1#c")),
            some("news.ycombinator.com/item", "news.ycombinator.com")
        );
        assert_eq!(r(json!("http://www.Google.com/")), some("google.com", "google.com"));
        assert_eq!(r(json!("https://t.co")), some("t.co", "t.co"));
        assert_eq!(
            r(json!("https://blog.example/a%20b/")),
            some("blog.example/a b/", "blog.example")
        );
        assert_eq!(
            r(json!("android-app://com.google.android.gm/")),
            some("com.google.android.gm", "com.google.android.gm")
        );
        assert_eq!(r(json!("")), (None, None));
        assert_eq!(r(json!(null)), (None, None));
        assert_eq!(r(json!("about:blank")), (None, None));
        assert_eq!(browser_err(json!({"referrer": "google"})), "referrer: must be an absolute URL");
        assert_eq!(browser_err(json!({"referrer": 1})), "referrer: must be a string");
        let long = format!("https://e.com/{}", "a".repeat(2000));
        assert_eq!(browser_err(json!({ "referrer": long })), "referrer: at most 2000 characters");
    }

    #[test]
    fn browser_ts_is_used_only_within_the_skew() {
        let ts = |t: Value| browser(json!({ "ts": t })).unwrap().ts;
        assert_eq!(ts(json!(null)), NOW);
        assert_eq!(ts(json!(NOW - 300_000)), NOW - 300_000);
        assert_eq!(ts(json!(NOW + 300_000)), NOW + 300_000);
        assert_eq!(ts(json!(NOW - 300_001)), NOW, "too old: server time");
        assert_eq!(ts(json!(NOW + 300_001)), NOW, "too far ahead: server time");
        assert_eq!(ts(json!(0)), NOW);
        let bad = "ts: must be a non-negative integer (Unix ms)";
        assert_eq!(browser_err(json!({"ts": -1})), bad);
        assert_eq!(browser_err(json!({"ts": 1.5})), bad);
        assert_eq!(browser_err(json!({"ts": "1795356330000"})), bad);
    }

    fn server(extra: Value) -> Result<Incoming, FieldError> {
        let mut v =
            json!({"site": "example.com", "name": "purchase", "url": "https://example.com/"});
        v.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
        one(Payload::Server, v)
    }

    #[test]
    fn server_ts_backfills_any_past_time_but_not_the_future() {
        assert_eq!(server(json!({})).unwrap().ts, NOW);
        assert_eq!(server(json!({"ts": 0})).unwrap().ts, 0);
        assert_eq!(
            server(json!({"ts": NOW - 400 * 86_400_000})).unwrap().ts,
            NOW - 400 * 86_400_000
        );
        assert_eq!(server(json!({"ts": NOW + 300_000})).unwrap().ts, NOW + 300_000);
        assert_eq!(
            server(json!({"ts": NOW + 300_001})).unwrap_err().to_string(),
            "ts: must not be more than 300000 ms ahead of server time"
        );
    }

    #[test]
    fn user_id_only_from_servers() {
        assert_eq!(server(json!({"user_id": "u-1"})).unwrap().user_id.as_deref(), Some("u-1"));
        assert_eq!(server(json!({"user_id": null})).unwrap().user_id, None);
        assert_eq!(
            server(json!({"user_id": "x".repeat(256)})).unwrap().user_id.unwrap().len(),
            256
        );
        let e = |v: Value| server(json!({ "user_id": v })).unwrap_err().to_string();
        assert_eq!(e(json!("x".repeat(257))), "user_id: at most 256 characters");
        assert_eq!(e(json!("")), "user_id: must not be empty");
        assert_eq!(e(json!(42)), "user_id: must be a string");
        assert_eq!(browser(json!({"user_id": "u-1"})).unwrap().user_id, None);
    }

    #[test]
    fn props_rules() {
        let props = |v: Value| browser(json!({ "props": v })).map(|e| e.props);
        assert_eq!(props(json!({})).unwrap(), vec![]);
        assert_eq!(
            props(json!({"b": 1.5, "a": true})).unwrap(),
            vec![("a".into(), "true".into()), ("b".into(), "1.5".into())]
        );
        let thirty: Map<String, Value> = (0..30).map(|i| (format!("k{i}"), json!("v"))).collect();
        assert_eq!(props(Value::Object(thirty.clone())).unwrap().len(), 30);
        let mut too_many = thirty;
        too_many.insert("k30".into(), json!("v"));
        let e = |v: Value| props(v).unwrap_err().to_string();
        assert_eq!(e(Value::Object(too_many)), "props: at most 30 properties");
        assert_eq!(e(json!(["a"])), "props: must be an object");
        assert_eq!(e(json!("{\"a\": \"b\"}")), "props: must be an object");
        assert_eq!(e(json!({"": "v"})), "props: keys must not be empty");
        assert_eq!(e(json!({"a:b": "v"})), "props: key `a:b` must not contain `:`");
        assert!(props(json!({ "k".repeat(64): "v" })).is_ok());
        assert_eq!(e(json!({ "k".repeat(65): "v" })), "props: keys must be at most 64 characters");
        assert!(props(json!({ "k": "v".repeat(256) })).is_ok());
        assert_eq!(
            e(json!({ "k": "v".repeat(257) })),
            "props: value of `k` must be at most 256 characters"
        );
        assert_eq!(
            e(json!({"k": null})),
            "props: value of `k` must be a string, number or boolean"
        );
        assert_eq!(e(json!({"k": {}})), "props: value of `k` must be a string, number or boolean");
    }

    #[test]
    fn screen_width_and_session_id_rules() {
        assert_eq!(browser(json!({"screen_width": 0})).unwrap().screen_width, Some(0));
        let bad = "screen_width: must be a non-negative integer";
        assert_eq!(browser_err(json!({"screen_width": -1})), bad);
        assert_eq!(browser_err(json!({"screen_width": 1280.5})), bad);
        assert_eq!(browser_err(json!({"screen_width": "1280"})), bad);
        assert_eq!(browser_err(json!({"screen_width": 4_294_967_296u64})), bad);
        assert_eq!(browser(json!({"session_id": ""})).unwrap().session_id, None);
        assert!(browser(json!({"session_id": "s".repeat(128)})).is_ok());
        assert_eq!(
            browser_err(json!({"session_id": "s".repeat(129)})),
            "session_id: at most 128 characters"
        );
    }

    #[test]
    fn plausible_payload() {
        let e = one(
            Payload::Plausible,
            json!({
                "n": "pageview",
                "u": "https://example.com/docs?utm_source=gh",
                "d": "example.com",
                "r": null,
                "p": "{\"author\":\"ana\",\"n\":2}",
                "w": 390,
                "h": 0,
            }),
        )
        .unwrap();
        assert_eq!(
            (&*e.site, e.name.as_str(), e.page.as_str()),
            ("example.com", "pageview", "/docs")
        );
        assert_eq!((e.referrer, e.utm_source.as_deref()), (None, Some("gh")));
        assert_eq!(e.props, vec![("author".into(), "ana".into()), ("n".into(), "2".into())]);
        assert_eq!((e.screen_width, e.ts), (Some(390), NOW));

        let base = json!({"n": "pageview", "u": "https://example.com/", "d": "example.com"});
        let with = |k: &str, v: Value| {
            let mut b = base.clone();
            b.as_object_mut().unwrap().insert(k.into(), v);
            b
        };
        assert_eq!(one(Payload::Plausible, with("p", json!({"a": "b"}))).unwrap().props.len(), 1);
        assert_eq!(
            err(Payload::Plausible, with("u", json!("/x"))),
            "u: must be an absolute http(s) URL"
        );
        assert_eq!(err(Payload::Plausible, with("d", json!(null))), "d: required");
        assert_eq!(err(Payload::Plausible, with("n", json!(""))), "n: must not be empty");
        assert_eq!(err(Payload::Plausible, with("r", json!("nope"))), "r: must be an absolute URL");
        assert_eq!(
            err(Payload::Plausible, with("p", json!("[1]"))),
            "p: must be an object or a JSON-encoded object"
        );
        assert_eq!(
            err(Payload::Plausible, with("w", json!(-3))),
            "w: must be a non-negative integer"
        );
        let unknown = FieldError::unknown_site(Payload::Plausible, "example.org");
        assert_eq!(
            unknown.to_string(),
            "d: example.org is not registered; add it with `footfall site add example.org`"
        );
        assert_eq!(unknown.field.name(), "site");
    }

    #[test]
    fn anonymous_identity_and_no_ip_in_the_event() {
        let s = salts();
        let mut client = Client::new(&s, "203.0.113.9", "UA/1");
        let e = browser(json!({"session_id": "s-1"})).unwrap().into_event(
            &site(),
            &mut client,
            &Traits::default(),
        );
        let (visitor, prev) = s.visitor("example.com", "203.0.113.9", "UA/1");
        assert_eq!((e.visitor, e.prev_visitor, e.user_id.as_deref()), (visitor, prev, None));
        assert_eq!(e.session_hint, Some(session_hint("s-1")));
        assert!(!format!("{e:?}").contains("203.0.113.9"));

        let mut rotated = s.clone();
        rotated.rotate(NOW + 86_400_000, [1; 32]);
        let mut client = Client::new(&rotated, "203.0.113.9", "UA/1");
        let e = browser(json!({})).unwrap().into_event(&site(), &mut client, &Traits::default());
        assert_eq!(e.prev_visitor, Some(visitor), "yesterday's id is carried");
    }

    #[test]
    fn identified_users_are_hashed_by_user_id() {
        let mut s = salts();
        s.rotate(NOW + 86_400_000, [1; 32]);
        let e = server(json!({"user_id": "u-1"})).unwrap().into_event(
            &site(),
            &mut Client::new(&s, "ip", "ua"),
            &Traits::default(),
        );
        assert_eq!(e.visitor, s.user("example.com", "u-1"));
        assert_eq!(e.prev_visitor, None);
        assert_eq!(e.user_id.as_deref(), Some("u-1"));
    }

    #[test]
    fn source_is_utm_then_external_referrer() {
        let event = |extra: Value| identified(browser(extra).unwrap());
        let e = event(json!({"referrer": "https://www.reddit.com/r/rust/"}));
        assert_eq!(
            (e.referrer.as_deref(), e.source.as_deref()),
            (Some("reddit.com/r/rust/"), Some("Reddit")),
            "a well-known site is named"
        );
        assert_eq!(e.traits.channel.as_deref(), Some("Organic Social"));
        let e = event(json!({
            "url": "https://example.com/?utm_source=google&utm_medium=cpc&utm_term=shoes",
            "referrer": "https://www.google.com/",
        }));
        assert_eq!(e.source.as_deref(), Some("Google"));
        assert_eq!(e.traits.channel.as_deref(), Some("Paid Search"));
        assert_eq!(e.traits.utm_term.as_deref(), Some("shoes"));
        let e = event(json!({
            "url": "https://example.com/?utm_source=newsletter",
            "referrer": "https://mail.google.com/",
        }));
        assert_eq!(e.source.as_deref(), Some("newsletter"));
        assert_eq!(e.referrer.as_deref(), Some("mail.google.com"));
        let e = event(json!({}));
        assert_eq!(e.traits.channel.as_deref(), Some("Direct"));
        assert_eq!((e.referrer, e.source), (None, None), "direct");
        assert_eq!(&*e.site, "example.com");
        assert_eq!(e.page, "/");
        assert_eq!(e.name, "pageview");
    }

    #[test]
    fn internal_referrers_are_dropped() {
        let event = |r: &str| identified(browser(json!({ "referrer": r })).unwrap());
        for internal in
            ["https://example.com/a", "https://www.example.com/", "https://blog.Example.com/x"]
        {
            let e = event(internal);
            assert_eq!((e.referrer, e.source), (None, None), "{internal}");
        }
        // A look-alike domain is someone else.
        assert_eq!(event("https://notexample.com/").source.as_deref(), Some("notexample.com"));
        // A UTM source still counts when the referrer is internal.
        let e = browser(json!({
            "url": "https://example.com/?utm_source=ad",
            "referrer": "https://example.com/",
        }));
        let e = identified(e.unwrap());
        assert_eq!((e.referrer, e.source.as_deref()), (None, Some("ad")));
    }

    #[test]
    fn same_site_and_origin_host() {
        assert!(same_site("example.com", "example.com"));
        assert!(same_site("a.b.Example.com", "example.com"));
        assert!(same_site("localhost", "localhost:8080"));
        assert!(!same_site("notexample.com", "example.com"));
        assert!(!same_site("example.com.evil.net", "example.com"));
        assert!(!same_site("com", "example.com"));
        assert_eq!(
            origin_host("https://Shop.Example.com:8443").as_deref(),
            Some("shop.example.com")
        );
        assert_eq!(origin_host("null"), None);
        assert_eq!(origin_host("file:///x"), None);
    }

    #[test]
    fn simple_urls_are_as_url_parses_them() {
        let schemes =
            ["https://", "http://", "HTTP://", "https:/", "https:\\\\", "ftp://", " https://"];
        let hosts = [
            "example.com",
            "www.example.com",
            "Example.com",
            "a-b.c",
            "-a.com",
            "a-.com",
            "a.com.",
            "a..com",
            ".a.com",
            "",
            "xn--bcher-kva.example",
            "a.xn--p1ai",
            "b\u{fc}cher.de",
            "1.2.3.4",
            "1.2.3",
            "0x7f.1",
            "a.1",
            "a.1a",
            "a.0x1",
            "123abc",
            "123.abc",
            "[::1]",
            "localhost",
            "a_b.com",
            "%61.com",
            "a.com:8080",
            "a.com:443",
            "a.com:99999",
            "u@a.com",
            "ex ample.com",
            "a\tb.com",
            "ab--cd.com",
            "a%2eb.com",
        ];
        let paths = [
            "",
            "/",
            "/a/b/",
            "/a/./b",
            "/a/../b",
            "/.",
            "/..",
            "/%2e/x",
            "/%2E%2e/",
            "/.well-known",
            "/a b",
            "/a%20b",
            "/caf%C3%A9",
            "/%FF",
            "/a\\b",
            "/\u{fc}",
            "/a\"b",
            "/a<b>",
            "/a`b",
            "/a{b}",
            "/a|b",
            "/a^b",
            "/a'b",
            "//x",
            "/a;b=c",
            "/~u",
            "/a%zz",
            "/a/b.html",
            "/a..b",
            "/a/.b",
            "/%",
            "/a@b:c",
            "/[x]",
            "/a\tb",
            "/a\nb",
        ];
        let queries = [
            "",
            "?",
            "?utm_source=x",
            "?a='b'",
            "?a=\"b\"",
            "?a b",
            "?utm%5Fsource=z",
            "?x=\u{e9}",
            "?a=<b>",
            "?q=[1]",
            "?a=`b`",
            "?a={b}",
            "?a|b",
            "?a^b",
            "?a\\b",
            "?x?y",
            "?a\tb",
        ];
        let fragments = ["", "#", "#top", "#a b", "#\u{e9}", "#x?y"];
        let mut simple = 0;
        for scheme in schemes {
            for host in hosts {
                for path in paths {
                    for query in queries {
                        for fragment in fragments {
                            let s = format!("{scheme}{host}{path}{query}{fragment}");
                            let Some(ParsedUrl::Simple { host, path, query }) = simple_url(&s)
                            else {
                                continue;
                            };
                            simple += 1;
                            let url = Url::parse(&s).unwrap_or_else(|e| panic!("{s}: {e}"));
                            assert!(matches!(url.scheme(), "http" | "https"), "{s}");
                            assert_eq!(
                                (url.host_str(), url.path(), url.query()),
                                (Some(host), path, query),
                                "{s}"
                            );
                        }
                    }
                }
            }
        }
        assert!(simple > 5_000, "{simple}");
        assert!(simple_url("https://shop.example/products/a-b-1?utm_source=x&y=1#top").is_some());
        assert!(simple_url("https://www.google.com/").is_some());
    }

    #[test]
    fn payloads_read_their_own_keys() {
        for payload in [Payload::Browser, Payload::Plausible, Payload::Server] {
            for field in [
                Field::Site,
                Field::Name,
                Field::Url,
                Field::Referrer,
                Field::Ts,
                Field::Props,
                Field::ScreenWidth,
                Field::SessionId,
                Field::UserId,
            ] {
                let read = field != Field::UserId || payload == Payload::Server;
                assert_eq!(field_of(payload, field.key(payload)), read.then_some(field));
            }
        }
        assert_eq!(field_of(Payload::Browser, "d"), None);
        assert_eq!(field_of(Payload::Plausible, "site"), None);
        assert_eq!(field_of(Payload::Browser, "unknown"), None);
    }
}
