//! Configuration and dashboard access in the embedded store: sites, API keys, users and share
//! links as JSON fields of their [`keys`] hashes, and logins in a keyspace of their own, which
//! migrations do not copy (people log in again on the new store).
//!
//! Writes are synced: they are rare, and losing one on power loss would hurt (a lost API key
//! or user locks its owner out, a lost logout or revocation lets a session or link work
//! again). Only the removal of an expired login is not: it would be refused all the same.

use std::sync::PoisonError;

use fjall::PersistMode;
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::{Inner, checked_key, field_key, get, read_err, write_err};
use crate::json::{from_field, from_value, to_json};
use crate::{Login, Result, Share, User, keys};

impl Inner {
    /// Every field of a hash of JSON values; `what` names a value in messages.
    pub(super) fn json_fields<T: DeserializeOwned>(
        &self,
        hash: &str,
        what: &str,
    ) -> Result<Vec<T>> {
        let mut values = Vec::new();
        self.scan_hash(hash, |field, json| {
            values.push(from_field(hash, field, json, what)?);
            Ok(())
        })?;
        Ok(values)
    }

    /// One field of a hash of JSON values.
    pub(super) fn json_field<T: DeserializeOwned>(
        &self,
        hash: &str,
        field: &str,
        what: &str,
    ) -> Result<Option<T>> {
        get(&self.hashes, &field_key(hash, field))?
            .map(|json| from_field(hash, field, &json, what))
            .transpose()
    }

    pub(super) fn put_json_field(
        &self,
        hash: &str,
        field: &str,
        value: &impl Serialize,
        what: &str,
    ) -> Result<()> {
        let key = checked_key(field_key(hash, field))?;
        self.write_synced(&self.hashes, key, to_json(value), what)
    }

    pub(super) fn add_user(&self, user: &User) -> Result<bool> {
        let _one_at_a_time = self.access_lock.lock().unwrap_or_else(PoisonError::into_inner);
        if get(&self.hashes, &field_key(keys::USERS, &user.name))?.is_some() {
            return Ok(false);
        }
        self.put_json_field(keys::USERS, &user.name, user, "saving a user")?;
        Ok(true)
    }

    pub(super) fn remove_user(&self, name: &str) -> Result<bool> {
        let _one_at_a_time = self.access_lock.lock().unwrap_or_else(PoisonError::into_inner);
        let user = field_key(keys::USERS, name);
        let existed = get(&self.hashes, &user)?.is_some();
        let mut batch = self.db.batch().durability(Some(PersistMode::SyncData));
        batch.remove(&self.hashes, user);
        for (key, login) in self.logins()? {
            if login.user == name {
                batch.remove(&self.logins, key);
            }
        }
        batch.commit().map_err(write_err("removing a user"))?;
        Ok(existed)
    }

    /// Stores a login, and drops the logins that have expired by its creation.
    pub(super) fn put_login(&self, hash: &[u8; 32], login: &Login) -> Result<()> {
        let mut batch = self.db.batch().durability(Some(PersistMode::SyncData));
        for (key, old) in self.logins()? {
            if old.expires <= login.created {
                batch.remove(&self.logins, key);
            }
        }
        batch.insert(&self.logins, keys::login(hash), to_json(login));
        batch.commit().map_err(write_err("saving a login"))
    }

    pub(super) fn login(&self, hash: &[u8; 32], now: i64) -> Result<Option<Login>> {
        let key = keys::login(hash);
        let Some(json) = get(&self.logins, key.as_bytes())? else {
            return Ok(None);
        };
        let login: Login = from_value(&key, &json)?;
        if login.expires > now {
            return Ok(Some(login));
        }
        // Not synced: an expired login that comes back after a crash is still expired.
        let mut batch = self.db.batch().durability(Some(PersistMode::Buffer));
        batch.remove(&self.logins, key);
        batch.commit().map_err(write_err("removing an expired login"))?;
        Ok(None)
    }

    pub(super) fn remove_login(&self, hash: &[u8; 32]) -> Result<()> {
        let mut batch = self.db.batch().durability(Some(PersistMode::SyncData));
        batch.remove(&self.logins, keys::login(hash));
        batch.commit().map_err(write_err("removing a login"))
    }

    /// Every stored login with its key, expired or not.
    fn logins(&self) -> Result<Vec<(fjall::Slice, Login)>> {
        self.logins
            .iter()
            .map(|entry| {
                let (key, json) = entry.into_inner().map_err(read_err("logins"))?;
                let login = from_value(&String::from_utf8_lossy(&key), &json)?;
                Ok((key, login))
            })
            .collect()
    }

    pub(super) fn remove_share(&self, site: &str, id: &str) -> Result<bool> {
        let Some(share) = self.json_field::<Share>(keys::SHARES, id, "share link")? else {
            return Ok(false);
        };
        if share.site != site {
            return Ok(false);
        }
        let mut batch = self.db.batch().durability(Some(PersistMode::SyncData));
        batch.remove(&self.hashes, field_key(keys::SHARES, id));
        batch.commit().map_err(write_err("revoking a share link"))?;
        Ok(true)
    }
}
