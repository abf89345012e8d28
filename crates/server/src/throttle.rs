//! Failed logins, counted per username and per client address, so that passwords cannot be
//! guessed as fast as the server checks them (a few dozen a second).
//!
//! After [`MAX_FAILURES`] failed logins for one username, or from one address, within
//! [`WINDOW_MS`], further logins for it are refused until that window has passed, without
//! checking the password. A successful login clears both counts. The counts live in the
//! server's memory: a restart forgets them, and each server of a shared store counts its own.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;

/// Failed logins allowed per username, and per address, in one window.
pub const MAX_FAILURES: u32 = 10;
/// How long a window of failures lasts, from the first.
pub const WINDOW_MS: i64 = 15 * 60_000;
/// Usernames and addresses tracked at most; past that, the oldest window is forgotten.
const MAX_TRACKED: usize = 10_000;
/// Longest username kept as a key: no user has a longer one, and a key costs memory.
const MAX_KEY_CHARS: usize = 128;

#[derive(Clone, Debug, Hash, PartialEq, Eq)]
enum Key {
    User(String),
    Address(IpAddr),
}

#[derive(Clone, Copy, Debug)]
struct Window {
    /// When its first failure was, Unix ms.
    first: i64,
    failures: u32,
}

/// The failed logins of the last [`WINDOW_MS`], by username and address.
#[derive(Debug, Default)]
pub struct LoginThrottle {
    windows: Mutex<HashMap<Key, Window>>,
}

impl LoginThrottle {
    /// How many ms until a login for `user` from `address` may be tried, if it may not be now.
    pub fn wait_ms(&self, user: &str, address: Option<IpAddr>, now: i64) -> Option<i64> {
        let windows = self.windows.lock().expect("not poisoned");
        keys(user, address)
            .filter_map(|key| windows.get(&key))
            .filter(|w| w.failures >= MAX_FAILURES && now - w.first < WINDOW_MS)
            .map(|w| w.first + WINDOW_MS - now)
            .max()
    }

    /// Counts a failed login for `user` from `address`.
    pub fn failed(&self, user: &str, address: Option<IpAddr>, now: i64) {
        let mut windows = self.windows.lock().expect("not poisoned");
        for key in keys(user, address) {
            if !windows.contains_key(&key) && windows.len() >= MAX_TRACKED {
                make_room(&mut windows, now);
            }
            let window = windows.entry(key).or_insert(Window { first: now, failures: 0 });
            if now - window.first >= WINDOW_MS {
                *window = Window { first: now, failures: 0 };
            }
            window.failures += 1;
        }
    }

    /// Forgets the failures of `user` and of `address`: the person who knows the password is
    /// back.
    pub fn succeeded(&self, user: &str, address: Option<IpAddr>) {
        let mut windows = self.windows.lock().expect("not poisoned");
        for key in keys(user, address) {
            windows.remove(&key);
        }
    }
}

fn keys(user: &str, address: Option<IpAddr>) -> impl Iterator<Item = Key> {
    let user: String = user.chars().take(MAX_KEY_CHARS).collect();
    std::iter::once(Key::User(user)).chain(address.map(Key::Address))
}

/// Drops the windows that have passed, or if none has, the oldest.
fn make_room(windows: &mut HashMap<Key, Window>, now: i64) {
    windows.retain(|_, w| now - w.first < WINDOW_MS);
    if windows.len() >= MAX_TRACKED
        && let Some(oldest) = windows.iter().min_by_key(|(_, w)| w.first).map(|(k, _)| k.clone())
    {
        windows.remove(&oldest);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: i64 = 1_795_356_000_000;

    fn ip(last: u8) -> Option<IpAddr> {
        Some(IpAddr::from([192, 0, 2, last]))
    }

    #[test]
    fn a_username_is_refused_after_its_failures_until_the_window_passes() {
        let t = LoginThrottle::default();
        for i in 0..MAX_FAILURES {
            assert_eq!(t.wait_ms("admin", ip(i as u8), T0 + i64::from(i)), None, "failure {i}");
            // Each from another address: the username's own count refuses.
            t.failed("admin", ip(i as u8), T0 + i64::from(i));
        }
        let later = T0 + 60_000;
        assert_eq!(t.wait_ms("admin", ip(200), later), Some(WINDOW_MS - 60_000));
        assert_eq!(t.wait_ms("other", ip(200), later), None, "other users are not held up");
        assert_eq!(t.wait_ms("admin", ip(200), T0 + WINDOW_MS), None, "the window has passed");
        // A failure after the window starts a new one.
        t.failed("admin", ip(200), T0 + WINDOW_MS);
        assert_eq!(t.wait_ms("admin", ip(201), T0 + WINDOW_MS + 1), None);
    }

    #[test]
    fn an_address_is_refused_for_every_username_it_tries() {
        let t = LoginThrottle::default();
        for i in 0..MAX_FAILURES {
            t.failed(&format!("user{i}"), ip(7), T0);
        }
        assert_eq!(t.wait_ms("admin", ip(7), T0 + 1_000), Some(WINDOW_MS - 1_000));
        assert_eq!(t.wait_ms("admin", ip(8), T0 + 1_000), None);
        assert_eq!(t.wait_ms("admin", None, T0 + 1_000), None, "no address: the user's count");
    }

    #[test]
    fn a_success_clears_the_user_and_the_address() {
        let t = LoginThrottle::default();
        for _ in 0..MAX_FAILURES - 1 {
            t.failed("admin", ip(1), T0);
        }
        t.succeeded("admin", ip(1));
        t.failed("admin", ip(1), T0);
        assert_eq!(t.wait_ms("admin", ip(1), T0), None, "one failure since the success");
    }

    #[test]
    fn memory_is_bounded_and_the_oldest_window_goes_first() {
        let t = LoginThrottle::default();
        for _ in 0..MAX_FAILURES {
            t.failed("admin", None, T0);
        }
        for i in 0..MAX_TRACKED {
            t.failed(&format!("sprayed{i}"), None, T0 + 1 + i as i64);
        }
        let windows = t.windows.lock().unwrap().len();
        assert_eq!(windows, MAX_TRACKED);
        assert_eq!(t.wait_ms("admin", None, T0 + 20_000), None, "the oldest was dropped");
        let long = "x".repeat(10_000);
        t.failed(&long, None, T0 + 30_000);
        let windows = t.windows.lock().unwrap();
        assert!(windows.keys().all(|k| match k {
            Key::User(u) => u.len() <= MAX_KEY_CHARS,
            Key::Address(_) => true,
        }));
    }
}
