//! The key schema every backend keeps its data under, so that the same data has the same name
//! whether it lives in Redis (where people read it with redis-cli) or in the embedded store.
//!
//! Per-site keys start with `ff:{SITE}:`; the braces make the site a Redis Cluster hash tag, so
//! one site's keys share a slot and can be read or written together. Sites are normalised
//! domains (letters, digits, `-`, `.`, `:`), so they never contain a brace.
//!
//! | key                                    | type          | holds                                |
//! |----------------------------------------|---------------|--------------------------------------|
//! | `ff:{SITE}:t:GRAIN:LABEL`              | hash          | counter name → total                 |
//! | `ff:{SITE}:b:GRAIN:LABEL:DIM:COUNTER`  | hash          | dimension value → counter            |
//! | `ff:{SITE}:u:GRAIN:LABEL`              | HyperLogLog   | the bucket's unique visitors         |
//! | `ff:{SITE}:u:GRAIN:LABEL:DIM:VALUE`    | HyperLogLog   | unique visitors of one value         |
//! | `ff:{SITE}:s:VISITOR`                  | string        | `encode_session` (version, postcard) |
//! | `ff:sites`                             | hash          | domain → JSON `Site`                 |
//! | `ff:keys`                              | hash          | hex(blake3(secret)) → JSON `ApiKey`  |
//! | `ff:salts`                             | string        | JSON `Salts`                         |
//! | `ff:users`                             | hash          | user name → JSON `User`              |
//! | `ff:login:HASH`                        | string        | JSON `Login`, gone when it expires   |
//! | `ff:user-logins:NAME`                  | sorted set    | Redis only: [`user_logins`]          |
//! | `ff:shares`                            | hash          | share link id → JSON `Share`         |
//! | `ff:applied`                           | string        | the last applied log offset          |
//! | `ff:{SITE}:applied`                    | hash          | Redis only: [`site_applied`]         |
//!
//! GRAIN is [`Grain::letter`](footfall_core::time::Grain::letter), LABEL is [`Bucket::label`],
//! DIM is [`Dim::key_name`], COUNTER is [`Counter::name`], VISITOR is 16 lower-case hex
//! digits and HASH 64 (a login token's hash). Dimension values may contain `:`; they only ever
//! come last, so a key is still read unambiguously from the left.

use std::fmt::Write;

use footfall_core::batch::{Counter, Dim, RowId, SessionKey, Slice};
use footfall_core::time::{Bucket, Grain};

/// Hash: domain → JSON [`Site`](footfall_core::site::Site).
pub const SITES: &str = "ff:sites";
/// Hash: hex of a secret's hash → JSON [`ApiKey`](crate::ApiKey).
pub const API_KEYS: &str = "ff:keys";
/// JSON [`Salts`](footfall_core::identity::Salts).
pub const SALTS: &str = "ff:salts";
/// The highest log offset covered by an applied batch, in decimal.
pub const APPLIED: &str = "ff:applied";
/// Hash: user name → JSON [`User`](crate::User).
pub const USERS: &str = "ff:users";
/// Hash: share link id → JSON [`Share`](crate::Share).
pub const SHARES: &str = "ff:shares";

/// A login session: JSON [`Login`](crate::Login) under the hash of its token. Redis expires it;
/// the embedded store (which keeps logins apart, in a keyspace that migrations do not copy)
/// drops it when read after it expired.
pub fn login(hash: &[u8; 32]) -> String {
    format!("ff:login:{}", hex(hash))
}

/// Redis only. A sorted set of the [`login`] keys of one user's logins, scored by when each
/// expires, so that removing the user finds their logins.
pub fn user_logins(name: &str) -> String {
    format!("ff:user-logins:{name}")
}

/// Redis only. Hash of what the write batches have applied to one site: `offset`, the highest
/// log offset counted for it, and `batch`, the id of the last batch. A batch is applied one
/// site at a time (one Cluster slot each), then [`APPLIED`] follows; a site ahead of it after a
/// crash is not counted twice.
pub fn site_applied(site: &str) -> String {
    format!("ff:{{{site}}}:applied")
}

/// `ff:{SITE}:KIND:GRAIN:LABEL`, the start of every per-bucket key.
fn bucket_key(site: &str, kind: char, bucket: Bucket) -> String {
    format!("ff:{{{site}}}:{kind}:{}:{}", bucket.grain.letter(), bucket.label())
}

/// The totals hash of a bucket; its fields are [`Counter::name`]s.
pub fn totals(site: &str, bucket: Bucket) -> String {
    bucket_key(site, 't', bucket)
}

/// The breakdown hash of one counter of one dimension in a bucket; its fields are the values.
pub fn breakdown(site: &str, bucket: Bucket, dim: &Dim, counter: Counter) -> String {
    format!("{}:{dim}:{}", bucket_key(site, 'b', bucket), counter.name())
}

/// The common prefix of every breakdown hash of a bucket.
pub fn breakdowns_of_bucket(site: &str, bucket: Bucket) -> String {
    bucket_key(site, 'b', bucket) + ":"
}

/// Where a row's counter lives: (hash key, field).
pub fn counter(row: &RowId, counter: Counter) -> (String, String) {
    match &row.slice {
        Slice::Total => (totals(&row.site, row.bucket), counter.name().to_owned()),
        Slice::By(dim, value) => {
            (breakdown(&row.site, row.bucket, dim, counter), value.to_string())
        }
    }
}

/// The HyperLogLog of a slice in a bucket.
pub fn unique(site: &str, bucket: Bucket, slice: &Slice) -> String {
    let key = bucket_key(site, 'u', bucket);
    match slice {
        Slice::Total => key,
        Slice::By(dim, value) => format!("{key}:{dim}:{value}"),
    }
}

/// The HyperLogLog of a row.
pub fn unique_of(row: &RowId) -> String {
    unique(&row.site, row.bucket, &row.slice)
}

/// The common prefix of the per-value HyperLogLogs of a bucket (not its total, which is
/// [`unique`] with [`Slice::Total`]).
pub fn uniques_of_bucket(site: &str, bucket: Bucket) -> String {
    bucket_key(site, 'u', bucket) + ":"
}

/// The key a session is persisted under: `s` for a visitor's open session, `sb` for the
/// session of a backfill from before it.
pub fn session(key: &SessionKey) -> String {
    let kind = if key.backfill { "sb" } else { "s" };
    format!("ff:{{{}}}:{kind}:{:016x}", key.site, key.visitor)
}

/// Parses [`session`] back; `None` for any other key.
pub fn parse_session(key: &str) -> Option<SessionKey> {
    let (site, rest) = key.strip_prefix("ff:{")?.split_once("}:")?;
    let (backfill, visitor) = match rest.split_once(':')? {
        ("s", visitor) => (false, visitor),
        ("sb", visitor) => (true, visitor),
        _ => return None,
    };
    let hex_digits = visitor.len() == 16 && visitor.bytes().all(|b| b.is_ascii_hexdigit());
    if site.is_empty() || site.contains(['{', '}']) || !hex_digits {
        return None;
    }
    let visitor = u64::from_str_radix(visitor, 16).ok()?;
    Some(SessionKey { site: site.into(), visitor, backfill })
}

/// What a per-site key (`ff:{SITE}:…`) holds, read from its name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Family {
    /// A totals or breakdown hash of counters.
    Counters,
    /// A HyperLogLog.
    Unique,
    /// A persisted session.
    Session,
    /// A backend's own copy of the site's raw log.
    Log,
}

/// The site and family of a per-site key; `None` for any other key.
pub fn family(key: &str) -> Option<(&str, Family)> {
    let (site, rest) = key.strip_prefix("ff:{")?.split_once("}:")?;
    let kind = rest.split(':').next()?;
    let family = match kind {
        "t" | "b" => Family::Counters,
        "u" => Family::Unique,
        "s" | "sb" => Family::Session,
        "log" => Family::Log,
        _ => return None,
    };
    Some((site, family))
}

/// The minute of a minute-bucket key (totals, breakdown or unique count), as
/// [`Bucket::index`]; `None` for any other key.
pub fn minute_of(key: &str) -> Option<i64> {
    let (_, rest) = key.strip_prefix("ff:{")?.split_once("}:")?;
    let (kind, rest) = rest.split_once(':')?;
    let label = rest.strip_prefix("m:")?.get(..16)?;
    let minute = ["t", "b", "u"].contains(&kind).then(|| Bucket::parse_label(Grain::Minute, label));
    Some(minute??.index)
}

/// The field of [`API_KEYS`] an API key is stored under: its hash in lower-case hex.
pub fn api_key_field(hash: &[u8; 32]) -> String {
    hex(hash)
}

fn hex(hash: &[u8; 32]) -> String {
    hash.iter().fold(String::with_capacity(64), |mut s, b| {
        // Writing to a String cannot fail.
        let _ = write!(s, "{b:02x}");
        s
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use footfall_core::time::Grain;

    /// 2026-11-22 is day 20779 since the epoch.
    const DAY: i64 = 20_779;

    fn day() -> Bucket {
        Bucket { grain: Grain::Day, index: DAY }
    }

    fn hour() -> Bucket {
        Bucket { grain: Grain::Hour, index: DAY * 24 + 14 }
    }

    fn minute() -> Bucket {
        Bucket { grain: Grain::Minute, index: (DAY * 24 + 14) * 60 + 5 }
    }

    fn cid(slice: Slice, bucket: Bucket, c: Counter) -> (String, String) {
        counter(&RowId { site: "example.com".into(), bucket, slice }, c)
    }

    #[test]
    fn totals_are_hashes_with_counter_fields() {
        let id = cid(Slice::Total, day(), Counter::Pageviews);
        let k = ("ff:{example.com}:t:d:2026-11-22".to_owned(), "pageviews".to_owned());
        assert_eq!(id, k);
        let id = cid(Slice::Total, minute(), Counter::Duration);
        let k = ("ff:{example.com}:t:m:2026-11-22T14:05".to_owned(), "duration".to_owned());
        assert_eq!(id, k);
    }

    #[test]
    fn breakdowns_are_hashes_per_dimension_and_counter_with_value_fields() {
        let id = cid(Slice::By(Dim::Page, "/a:b".into()), hour(), Counter::Visits);
        let k = ("ff:{example.com}:b:h:2026-11-22T14:page:visits".to_owned(), "/a:b".to_owned());
        assert_eq!(id, k);
        let id = cid(Slice::By(Dim::Prop("plan".into()), "pro".into()), day(), Counter::Events);
        let k = ("ff:{example.com}:b:d:2026-11-22:prop:plan:events".to_owned(), "pro".to_owned());
        assert_eq!(id, k);
        assert!(id.0.starts_with(&breakdowns_of_bucket("example.com", day())));
    }

    #[test]
    fn uniques_are_per_bucket_and_per_value() {
        let total = RowId { site: "example.com".into(), bucket: day(), slice: Slice::Total };
        assert_eq!(unique_of(&total), "ff:{example.com}:u:d:2026-11-22");
        let by = RowId {
            site: "example.com".into(),
            bucket: day(),
            slice: Slice::By(Dim::Source, "news.ycombinator.com".into()),
        };
        assert_eq!(unique_of(&by), "ff:{example.com}:u:d:2026-11-22:source:news.ycombinator.com");
        assert!(unique_of(&by).starts_with(&uniques_of_bucket("example.com", day())));
        assert!(!unique_of(&total).starts_with(&uniques_of_bucket("example.com", day())));
    }

    #[test]
    fn sessions_round_trip() {
        let key = SessionKey { site: "shop.example:8080".into(), visitor: 0xab, backfill: false };
        let s = session(&key);
        assert_eq!(s, "ff:{shop.example:8080}:s:00000000000000ab");
        assert_eq!(parse_session(&s), Some(key));
        let max = SessionKey { site: "a.com".into(), visitor: u64::MAX, backfill: true };
        assert_eq!(session(&max), "ff:{a.com}:sb:ffffffffffffffff");
        assert_eq!(parse_session(&session(&max)), Some(max));
        for bad in [
            "ff:{a.com}:s:ab",
            "ff:{a.com}:u:00000000000000ab",
            "ff:sites",
            "ff:{}:s:0",
            "ff:{a}:sx:0",
        ] {
            assert_eq!(parse_session(bad), None, "{bad}");
        }
        assert_eq!(parse_session("ff:{a.com}:s:00000000000000zz"), None);
    }

    #[test]
    fn families_and_minutes_are_read_from_key_names() {
        let row = |bucket, slice| RowId { site: "a.com:8080".into(), bucket, slice };
        let by = || Slice::By(Dim::Page, "/x:y".into());
        let session = SessionKey { site: "a.com:8080".into(), visitor: 7, backfill: true };
        for (key, expected) in [
            (counter(&row(day(), Slice::Total), Counter::Visits).0, Family::Counters),
            (counter(&row(minute(), by()), Counter::Visits).0, Family::Counters),
            (unique_of(&row(hour(), by())), Family::Unique),
            (self::session(&session), Family::Session),
            ("ff:{a.com:8080}:log".to_owned(), Family::Log),
        ] {
            assert_eq!(family(&key), Some(("a.com:8080", expected)), "{key}");
        }
        let login = login(&[0xab; 32]);
        let others = [SITES, API_KEYS, SALTS, APPLIED, USERS, SHARES, &login, "ff:log:{0}"];
        for other in others.into_iter().chain(["ff:{a.com}:x:1", "x"]) {
            assert_eq!(family(other), None, "{other}");
        }

        let minute_index = minute().index;
        assert_eq!(minute_of(&totals("a.com", minute())), Some(minute_index));
        assert_eq!(
            minute_of(&counter(&row(minute(), by()), Counter::Events).0),
            Some(minute_index)
        );
        assert_eq!(minute_of(&unique_of(&row(minute(), by()))), Some(minute_index));
        assert_eq!(minute_of(&unique_of(&row(minute(), Slice::Total))), Some(minute_index));
        assert_eq!(minute_of(&totals("a.com", hour())), None);
        assert_eq!(minute_of(&unique_of(&row(day(), by()))), None);
        assert_eq!(minute_of("ff:{a.com}:s:m:2026-11-22T14:05"), None);
    }

    #[test]
    fn api_key_fields_are_lower_hex() {
        let mut hash = [0u8; 32];
        hash[0] = 0xab;
        hash[31] = 0x01;
        let f = api_key_field(&hash);
        assert_eq!(f.len(), 64);
        assert!(f.starts_with("ab00"));
        assert!(f.ends_with("0001"));
        assert_eq!(login(&hash), format!("ff:login:{f}"));
    }
}
