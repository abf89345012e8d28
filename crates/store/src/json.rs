//! Configuration values (sites, API keys, users, logins, share links) are stored as JSON, on
//! every backend alike, so that people can read them with redis-cli.

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::{Result, StoreError};

pub(crate) fn to_json(value: &impl Serialize) -> Vec<u8> {
    // The stored types are structs of strings, integers and bools, which always serialise.
    serde_json::to_vec(value).expect("a stored value serialises")
}

/// A field of one of the [`keys`](crate::keys) hashes; `what` names its value in messages.
pub(crate) fn from_field<T: DeserializeOwned>(
    hash: &str,
    field: &str,
    json: &[u8],
    what: &str,
) -> Result<T> {
    serde_json::from_slice(json)
        .map_err(|e| StoreError::Corrupt(format!("{what} `{field}` in {hash}: {e}")))
}

/// A value stored under its own key.
pub(crate) fn from_value<T: DeserializeOwned>(key: &str, json: &[u8]) -> Result<T> {
    serde_json::from_slice(json).map_err(|e| StoreError::Corrupt(format!("{key}: {e}")))
}
