//! Configuration and dashboard access in Redis: sites, API keys, users and share links as JSON
//! fields of their [`keys`] hashes; each login a string key that Redis expires, listed in its
//! user's [`keys::user_logins`] so that removing the user finds them. A login's key and its
//! user's set lie in different Cluster slots, so they are written one after the other: a login
//! left without its expiry by a failure between the two is still refused once it has expired,
//! as [`Inner::login`] checks the time itself.

use redis::AsyncCommands;
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::Inner;
use crate::json::{from_field, from_value, to_json};
use crate::{Login, Result, Share, User, keys};

impl Inner {
    /// Every field of a hash of JSON values; `what` names a value in messages.
    pub(super) async fn json_fields<T: DeserializeOwned>(
        &self,
        hash: &str,
        what: &str,
    ) -> Result<Vec<T>> {
        let fields: Vec<(String, Vec<u8>)> = self
            .con
            .clone()
            .hgetall(hash)
            .await
            .map_err(|e| self.failed(&format!("reading {hash}"), e))?;
        fields.iter().map(|(field, json)| from_field(hash, field, json, what)).collect()
    }

    /// One field of a hash of JSON values.
    pub(super) async fn json_field<T: DeserializeOwned>(
        &self,
        hash: &str,
        field: &str,
        what: &str,
    ) -> Result<Option<T>> {
        let json: Option<Vec<u8>> = self
            .con
            .clone()
            .hget(hash, field)
            .await
            .map_err(|e| self.failed(&format!("reading a {what}"), e))?;
        json.map(|json| from_field(hash, field, &json, what)).transpose()
    }

    pub(super) async fn put_json_field(
        &self,
        hash: &str,
        field: &str,
        value: &impl Serialize,
        what: &str,
    ) -> Result<()> {
        self.con.clone().hset(hash, field, to_json(value)).await.map_err(|e| self.failed(what, e))
    }

    pub(super) async fn add_user(&self, user: &User) -> Result<bool> {
        self.con
            .clone()
            .hset_nx(keys::USERS, &user.name, to_json(user))
            .await
            .map_err(|e| self.failed("saving a user", e))
    }

    pub(super) async fn remove_user(&self, name: &str) -> Result<bool> {
        let mut con = self.con.clone();
        let failed = |e| self.failed("removing a user", e);
        // The user first, so that no login can start between reading their logins and this.
        let removed: bool = con.hdel(keys::USERS, name).await.map_err(failed)?;
        let set = keys::user_logins(name);
        let logins: Vec<String> = con.zrange(&set, 0, -1).await.map_err(failed)?;
        let deletions =
            logins.iter().chain([&set]).map(|key| redis::cmd("DEL").arg(key).to_owned());
        self.spread::<redis::Value>(deletions.collect(), "removing a user's logins").await?;
        Ok(removed)
    }

    pub(super) async fn put_login(&self, hash: &[u8; 32], login: &Login) -> Result<()> {
        let (key, set) = (keys::login(hash), keys::user_logins(&login.user));
        let mut pipe = redis::pipe();
        pipe.atomic().set(&key, to_json(login)).pexpire_at(&key, login.expires);
        self.run(&pipe, "saving a login").await?;
        let mut pipe = redis::pipe();
        // The set forgets expired logins here, and goes itself after the last one.
        pipe.atomic()
            .zrembyscore(&set, "-inf", login.created)
            .zadd(&set, &key, login.expires)
            .pexpire_at(&set, login.expires);
        self.run(&pipe, "listing a login of its user").await
    }

    pub(super) async fn login(&self, hash: &[u8; 32], now: i64) -> Result<Option<Login>> {
        let key = keys::login(hash);
        let json: Option<Vec<u8>> =
            self.con.clone().get(&key).await.map_err(|e| self.failed("reading a login", e))?;
        let Some(json) = json else { return Ok(None) };
        let login: Login = from_value(&key, &json)?;
        Ok((login.expires > now).then_some(login))
    }

    pub(super) async fn remove_login(&self, hash: &[u8; 32]) -> Result<()> {
        let key = keys::login(hash);
        let mut con = self.con.clone();
        let failed = |e| self.failed("removing a login", e);
        let json: Option<Vec<u8>> = con.get_del(&key).await.map_err(failed)?;
        // A login that cannot be read is gone all the same; its user's set forgets it on expiry.
        if let Some(login) = json.and_then(|json| serde_json::from_slice::<Login>(&json).ok()) {
            let _: i64 = con.zrem(keys::user_logins(&login.user), &key).await.map_err(failed)?;
        }
        Ok(())
    }

    pub(super) async fn remove_share(&self, site: &str, id: &str) -> Result<bool> {
        let share: Option<Share> = self.json_field(keys::SHARES, id, "share link").await?;
        if share.is_none_or(|share| share.site != site) {
            return Ok(false);
        }
        self.con
            .clone()
            .hdel(keys::SHARES, id)
            .await
            .map_err(|e| self.failed("revoking a share link", e))
    }

    async fn run(&self, pipe: &redis::Pipeline, what: &str) -> Result<()> {
        pipe.query_async(&mut self.con.clone()).await.map_err(|e| self.failed(what, e))
    }
}
