//! What each command does. `site`, `key`, `query`, `user` and `share` work on the data
//! directory whether or not a server runs on it: see [`request`].

mod bench;
mod key;
mod migrate;
mod query;
mod serve;
mod share;
mod site;
mod user;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Result, anyhow};
use footfall_server::control::{self, ControlError, Request};
use footfall_store::{EmbeddedStore, RedisStore, Store, StoreError};
use serde_json::Value;

use crate::cli::{Command, KeyCommand, ShareCommand, SiteCommand, UserCommand};
use crate::config::Settings;

pub async fn run(command: Command, settings: &Settings) -> Result<()> {
    match command {
        Command::Serve(_) => serve::run(settings).await,
        Command::Site(SiteCommand::Add { domain, timezone, public, private }) => {
            // Neither flag: the site keeps what it has.
            let public = (public || private).then_some(public);
            site::add(settings, domain, timezone, public).await
        }
        Command::Site(SiteCommand::List { json }) => site::list(settings, json).await,
        Command::Key(KeyCommand::Create { name }) => key::create(settings, name).await,
        Command::User(UserCommand::Add { name, password_stdin }) => {
            user::add(settings, name, password_stdin).await
        }
        Command::User(UserCommand::List { json }) => user::list(settings, json).await,
        Command::User(UserCommand::Remove { name }) => user::remove(settings, name).await,
        Command::Share(ShareCommand::Create { site, name, base_url }) => {
            share::create(settings, site, name, base_url.as_deref()).await
        }
        Command::Share(ShareCommand::List { site, base_url, json }) => {
            share::list(settings, site, base_url.as_deref(), json).await
        }
        Command::Share(ShareCommand::Revoke { site, id }) => {
            share::revoke(settings, site, id).await
        }
        Command::Query(args) => query::run(settings, args).await,
        Command::Bench(args) => bench::run(args, settings.redis.as_deref()).await,
        Command::Migrate(args) => migrate::run(settings, &args).await,
    }
}

/// In the data directory: events a server on Redis acknowledged while Redis could not take them.
const SPILL_FILE: &str = "redis-spill.log";

/// Where a server on `data_dir` answers commands.
fn socket_path(data_dir: &Path) -> PathBuf {
    data_dir.join("footfall.sock")
}

/// How long to retry when the data directory is locked but nothing answers on its socket yet:
/// a server that is still starting, or another command holding the store for a moment.
const BUSY_WAIT: Duration = Duration::from_secs(10);

/// Runs a request on the configured store. Redis is shared: the request runs on it directly,
/// beside any server. A data directory is not: the request runs on its store when no process
/// holds it, else through the control socket of the server that does.
async fn request(settings: &Settings, req: Request) -> Result<Value> {
    if let Some(url) = &settings.redis {
        let store = RedisStore::connect(url).await?;
        return execute_on(&store, settings, req).await;
    }
    let dir = &settings.data_dir;
    let socket = socket_path(dir);
    let deadline = Instant::now() + BUSY_WAIT;
    loop {
        match EmbeddedStore::open(dir) {
            Ok(store) => return execute_on(&store, settings, req).await,
            Err(StoreError::Locked(_)) => match control::call(&socket, &req).await {
                Err(ControlError::Unreachable { .. }) if Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Err(ControlError::Unreachable { source, .. }) => {
                    return Err(anyhow!(
                        "the data directory {} is in use by another footfall process, and no \
                         server answers on its control socket {}: {source}",
                        dir.display(),
                        socket.display()
                    ));
                }
                result => return Ok(result?),
            },
            Err(e) => return Err(e.into()),
        }
    }
}

/// The UTC day of a Unix time in ms, for tables.
fn day_of(ms: i64) -> String {
    footfall_core::time::civil_from_days(ms.div_euclid(86_400_000)).to_string()
}

async fn execute_on(store: &dyn Store, settings: &Settings, req: Request) -> Result<Value> {
    // The file's sites exist for commands as they do for a server, which registers them when it
    // starts.
    for site in &settings.sites {
        store.put_site(site).await?;
    }
    control::execute(store, None, req).await.map_err(|e| anyhow!(e))
}
