//! API keys: `ff_` followed by 40 hex characters of randomness. Only a blake3 hash of a key is
//! stored, so a leaked store does not leak working keys.

use axum::http::HeaderMap;
use axum::http::header::AUTHORIZATION;
use rand::RngExt;

use crate::error::ApiError;
use crate::state::AppState;

const PREFIX: &str = "ff_";

/// A new random API key.
pub fn new_key() -> String {
    let bytes: [u8; 20] = rand::rng().random();
    let mut key = String::from(PREFIX);
    for b in bytes {
        key.push_str(&format!("{b:02x}"));
    }
    key
}

/// The hash under which a key is stored.
pub fn hash_key(key: &str) -> [u8; 32] {
    *blake3::hash(key.as_bytes()).as_bytes()
}

/// The token of an `Authorization: Bearer <token>` header.
pub fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

/// Checks that the request carries a valid API key.
pub async fn require_key(state: &AppState, headers: &HeaderMap) -> Result<(), ApiError> {
    let Some(token) = bearer(headers) else {
        return Err(ApiError::unauthorized(
            "missing API key: send `Authorization: Bearer <key>` (create one with `footfall key create`)",
        ));
    };
    match state.store.api_key(hash_key(token)).await? {
        Some(_) => Ok(()),
        None => Err(ApiError::unauthorized(
            "invalid API key: it is not one that `footfall key create` made for this server",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_random_prefixed_and_hash_stably() {
        let (a, b) = (new_key(), new_key());
        assert_ne!(a, b);
        assert!(a.starts_with("ff_") && a.len() == 43, "{a}");
        assert_eq!(hash_key(&a), hash_key(&a));
        assert_ne!(hash_key(&a), hash_key(&b));
    }

    #[test]
    fn bearer_tokens_are_read_case_insensitively() {
        let mut h = HeaderMap::new();
        assert_eq!(bearer(&h), None);
        h.insert(AUTHORIZATION, "bearer ff_abc".parse().unwrap());
        assert_eq!(bearer(&h), Some("ff_abc"));
        h.insert(AUTHORIZATION, "Basic xyz".parse().unwrap());
        assert_eq!(bearer(&h), None);
    }
}
