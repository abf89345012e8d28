//! Visitor identity without storing anything raw about a person.
//!
//! An anonymous visitor is `keyed_hash(daily_salt, site, ip, user_agent)`. The salt rotates at
//! UTC midnight; the previous one is kept for 24 hours so that a session can cross midnight, and
//! older ones are destroyed, so yesterday's visitors cannot be linked to last week's. An
//! identified user (`user_id`) is a keyed hash of the user id under a per-installation key that
//! never rotates, so the user is the same visitor every day.
//!
//! The keyed hash is a pseudorandom function: SipHash-2-4 for anonymous visitors, which every
//! event is hashed under twice, and blake3 for users and client session ids.

use std::hash::Hasher;
use std::sync::Arc;

use rustc_hash::FxHasher;
use serde::{Deserialize, Serialize};
use siphasher::sip::SipHasher24;

const DAY_MS: i64 = 86_400_000;

/// An anonymous visitor's id under today's salt, and under yesterday's while it is kept.
pub type VisitorIds = (u64, Option<u64>);

/// One day's salt.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Salt {
    /// The UTC day it belongs to (days since 1970-01-01).
    pub day: i64,
    pub key: [u8; 32],
}

/// The secrets behind visitor ids; persisted by the store so that ids survive restarts.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Salts {
    pub current: Salt,
    /// Yesterday's salt, kept until the end of today.
    pub previous: Option<Salt>,
    /// Key for identified users' ids; never rotated.
    pub user_key: [u8; 32],
}

impl Salts {
    /// Fresh secrets for the UTC day of `now_ms`; `random` supplies 64 random bytes.
    pub fn new(now_ms: i64, random: [u8; 64]) -> Salts {
        let (salt, user_key) = random.split_at(32);
        Salts {
            current: Salt { day: now_ms.div_euclid(DAY_MS), key: salt.try_into().expect("32") },
            previous: None,
            user_key: user_key.try_into().expect("32"),
        }
    }

    /// Rotates for the UTC day of `now_ms` if it has moved on: today's salt becomes the
    /// previous one only if it was yesterday's; anything older is dropped. `random` is the new
    /// salt. Returns whether anything changed (and so must be persisted).
    pub fn rotate(&mut self, now_ms: i64, random: [u8; 32]) -> bool {
        let today = now_ms.div_euclid(DAY_MS);
        if self.current.day >= today {
            return false;
        }
        let old = std::mem::replace(&mut self.current, Salt { day: today, key: random });
        self.previous = (old.day == today - 1).then_some(old);
        true
    }

    /// Milliseconds from `now_ms` to the next UTC midnight, when [`Salts::rotate`] is due.
    pub fn until_rotation(now_ms: i64) -> i64 {
        DAY_MS - now_ms.rem_euclid(DAY_MS)
    }

    /// The anonymous visitor id under today's salt, and under yesterday's when it is kept.
    pub fn visitor(&self, site: &str, ip: &str, user_agent: &str) -> VisitorIds {
        let user_agent = user_agent_digest(user_agent).to_le_bytes();
        with_message(&[site.as_bytes(), ip.as_bytes(), &user_agent], |message| {
            let id = |salt: &Salt| sip_hash(&salt.key, message);
            (id(&self.current), self.previous.as_ref().map(id))
        })
    }

    /// The visitor id of an identified user.
    pub fn user(&self, site: &str, user_id: &str) -> u64 {
        keyed_hash(&self.user_key, &[site, user_id])
    }
}

/// The sender of one request. Every event a request carries comes from the same IP address and
/// user agent, so its anonymous visitor ids are derived once per site, not once per event.
pub struct Client<'a> {
    salts: &'a Salts,
    ip: &'a str,
    user_agent: &'a str,
    /// The ids on the last site asked for.
    last: Option<(Arc<str>, VisitorIds)>,
}

impl<'a> Client<'a> {
    pub fn new(salts: &'a Salts, ip: &'a str, user_agent: &'a str) -> Client<'a> {
        Client { salts, ip, user_agent, last: None }
    }

    /// [`Salts::visitor`] of this client on `site`.
    pub fn visitor(&mut self, site: &Arc<str>) -> VisitorIds {
        match &self.last {
            Some((last, ids)) if **last == **site => *ids,
            _ => {
                let ids = self.salts.visitor(site, self.ip, self.user_agent);
                self.last = Some((site.clone(), ids));
                ids
            }
        }
    }

    /// [`Salts::user`].
    pub fn user(&self, site: &str, user_id: &str) -> u64 {
        self.salts.user(site, user_id)
    }
}

/// Hashes a client-supplied session id into the small hint kept with a session.
pub fn session_hint(session_id: &str) -> u64 {
    keyed_hash(&[0; 32], &[session_id])
}

fn keyed_hash(key: &[u8; 32], parts: &[&str]) -> u64 {
    let mut h = blake3::Hasher::new_keyed(key);
    for p in parts {
        // Length-prefix each part so ("ab", "c") and ("a", "bc") differ.
        h.update(&(p.len() as u64).to_le_bytes());
        h.update(p.as_bytes());
    }
    let mut out = [0; 8];
    h.finalize_xof().fill(&mut out);
    u64::from_le_bytes(out)
}

/// The user agent, most of an anonymous visitor's bytes, digested by a fast unkeyed hash before
/// the keyed one: the keyed hash of the digest is as unpredictable without the salt, and 64 bits
/// make an accidental collision of two user agents on one site and IP negligible (a deliberate
/// one could only merge the colliding client's own visitors).
fn user_agent_digest(user_agent: &str) -> u64 {
    let mut h = FxHasher::default();
    h.write(user_agent.as_bytes());
    h.finish()
}

/// Calls `f` with the parts length-prefixed and concatenated, as [`keyed_hash`] hashes them,
/// in a buffer on the stack when they fit (a domain name is at most 253 bytes).
fn with_message<R>(parts: &[&[u8]], f: impl FnOnce(&[u8]) -> R) -> R {
    const STACK: usize = 320;
    let len: usize = parts.iter().map(|p| 8 + p.len()).sum();
    let fill = |buf: &mut [u8]| {
        let mut at = 0;
        for p in parts {
            buf[at..at + 8].copy_from_slice(&(p.len() as u64).to_le_bytes());
            buf[at + 8..at + 8 + p.len()].copy_from_slice(p);
            at += 8 + p.len();
        }
    };
    if len <= STACK {
        let mut buf = [0; STACK];
        fill(&mut buf[..len]);
        f(&buf[..len])
    } else {
        let mut buf = vec![0; len];
        fill(&mut buf);
        f(&buf)
    }
}

/// Like [`keyed_hash`], but SipHash-2-4, a keyed pseudorandom function made for short inputs,
/// under the salt's first 128 bits (a full SipHash key; the salt is random throughout). Every
/// event is identified under two salts: blake3 would spend a 100 ns compression on them, SipHash
/// a fifth of that. The message is hashed in one call: the streaming interface costs twice as
/// much for six pieces.
fn sip_hash(key: &[u8; 32], message: &[u8]) -> u64 {
    let word = |i: usize| u64::from_le_bytes(key[i..i + 8].try_into().expect("8 bytes"));
    SipHasher24::new_with_keys(word(0), word(8)).hash(message)
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOV22: i64 = 1_795_356_330_000; // 2026-11-22T14:05:30Z

    fn salts() -> Salts {
        Salts::new(NOV22, [7; 64])
    }

    #[test]
    fn same_inputs_same_visitor_and_every_input_matters() {
        let s = salts();
        let (a, prev) = s.visitor("a.com", "1.2.3.4", "UA");
        assert_eq!(prev, None);
        assert_eq!(a, s.visitor("a.com", "1.2.3.4", "UA").0);
        assert_ne!(a, s.visitor("b.com", "1.2.3.4", "UA").0);
        assert_ne!(a, s.visitor("a.com", "1.2.3.5", "UA").0);
        assert_ne!(a, s.visitor("a.com", "1.2.3.4", "UA2").0);
        assert_ne!(s.visitor("a.com", "1.2.3.4", "").0, s.visitor("a.com", "1.2.3.", "4").0);
    }

    #[test]
    fn visitor_ids_are_siphash_of_the_length_prefixed_parts() {
        // SipHash-2-4's streaming interface, part by part, under the salt's first 16 bytes.
        let s = salts();
        let long = "a".repeat(400); // a message over the stack buffer
        for (site, ip, ua) in [("a.com", "1.2.3.4", "UA"), (long.as_str(), "::1", "Mozilla/5.0")] {
            let word = |i: usize| u64::from_le_bytes(s.current.key[i..i + 8].try_into().unwrap());
            let mut h = SipHasher24::new_with_keys(word(0), word(8));
            let mut fx = FxHasher::default();
            fx.write(ua.as_bytes());
            for p in [site.as_bytes(), ip.as_bytes(), &fx.finish().to_le_bytes()] {
                h.write(&(p.len() as u64).to_le_bytes());
                h.write(p);
            }
            assert_eq!(s.visitor(site, ip, ua).0, h.finish());
        }
    }

    #[test]
    fn a_client_has_its_ids_on_each_site() {
        let s = salts();
        let mut client = Client::new(&s, "1.2.3.4", "UA");
        let (a, b): (Arc<str>, Arc<str>) = ("a.com".into(), "b.com".into());
        for site in [&a, &a, &b, &a] {
            assert_eq!(client.visitor(site), s.visitor(site, "1.2.3.4", "UA"));
        }
        assert_eq!(client.user("a.com", "u"), s.user("a.com", "u"));
    }

    #[test]
    fn rotation_keeps_yesterday_only() {
        let mut s = salts();
        let (before, _) = s.visitor("a.com", "ip", "ua");
        assert!(!s.rotate(NOV22 + 1000, [1; 32]), "same day: no rotation");
        assert!(s.rotate(NOV22 + DAY_MS, [1; 32]));
        let (after, prev) = s.visitor("a.com", "ip", "ua");
        assert_ne!(after, before, "a new day gives a new id");
        assert_eq!(prev, Some(before), "yesterday's id is still known");
        // Two days later with no rotation in between: yesterday's salt is gone for good.
        assert!(s.rotate(NOV22 + 3 * DAY_MS, [2; 32]));
        assert_eq!(s.previous, None);
    }

    #[test]
    fn users_keep_their_id_across_rotation() {
        let mut s = salts();
        let u = s.user("a.com", "user-1");
        s.rotate(NOV22 + DAY_MS, [1; 32]);
        assert_eq!(s.user("a.com", "user-1"), u);
        assert_ne!(s.user("b.com", "user-1"), u);
    }

    #[test]
    fn rotation_is_due_at_utc_midnight() {
        assert_eq!(Salts::until_rotation(0), DAY_MS);
        assert_eq!(Salts::until_rotation(NOV22), DAY_MS - (14 * 3600 + 5 * 60 + 30) * 1000);
    }
}
