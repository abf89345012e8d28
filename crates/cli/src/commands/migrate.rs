//! `footfall migrate`: copies a store into another, between a data directory and Redis.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Result, anyhow, bail};
use footfall_store::redis::{LEASE, without_password};
use footfall_store::transfer::{Copied, Progress, Transfer, migrate};
use footfall_store::{EmbeddedStore, RedisStore, StoreError};
use indicatif::{HumanCount, ProgressBar, ProgressState, ProgressStyle};

use super::SPILL_FILE;
use crate::cli::MigrateArgs;
use crate::config::Settings;

/// A store opened for migration, held so that no server writes it meanwhile.
enum Opened {
    Dir(EmbeddedStore),
    Redis(RedisStore),
}

impl Opened {
    fn transfer(&self) -> &dyn Transfer {
        match self {
            Opened::Dir(store) => store,
            Opened::Redis(store) => store,
        }
    }

    /// Gives back the Redis lease; a directory's lock goes when the store is dropped.
    async fn close(self) -> Result<()> {
        if let Opened::Redis(store) = self {
            footfall_store::Store::close(&store).await?;
        }
        Ok(())
    }
}

fn is_redis(location: &str) -> bool {
    ["redis://", "rediss://", "redis+unix://", "unix://"].iter().any(|s| location.starts_with(s))
}

/// How a location is shown: a Redis URL without its password.
fn shown(location: &str) -> String {
    if is_redis(location) { without_password(location) } else { location.to_owned() }
}

async fn open(location: &str, source: bool, settings: &Settings) -> Result<Opened> {
    // A server that was killed holds the lease a little longer; wait it out.
    let lease_wait = LEASE + Duration::from_secs(1);
    if is_redis(location) {
        // The spill of the server that served from this Redis holds events it acknowledged
        // and Redis has not got yet: they are part of the state.
        let spill = settings.data_dir.join(SPILL_FILE);
        let spill = (source && spill.exists()).then_some(spill.as_path());
        return Ok(Opened::Redis(
            RedisStore::connect_exclusive(location, lease_wait, spill).await?,
        ));
    }
    let dir = Path::new(location);
    if source && !dir.join("fjall").is_dir() {
        bail!("{location} is not a footfall data directory: it has no `fjall` database in it");
    }
    match EmbeddedStore::open(dir) {
        Ok(store) => Ok(Opened::Dir(store)),
        Err(StoreError::Locked(_)) => Err(anyhow!(
            "the data directory {location} is in use by a running footfall; stop it first: \
             migrate copies a store at rest"
        )),
        Err(e) => Err(e.into()),
    }
}

pub async fn run(settings: &Settings, args: &MigrateArgs) -> Result<()> {
    let (from_shown, to_shown) = (shown(&args.from), shown(&args.to));
    if args.from == args.to {
        bail!("--from and --to are both {from_shown}: name two different stores");
    }
    let from = open(&args.from, true, settings).await?;
    let to = match open(&args.to, false, settings).await {
        Ok(to) => to,
        Err(e) => {
            from.close().await?;
            return Err(e);
        }
    };
    let started = Instant::now();
    let result = copy(from.transfer(), to.transfer(), &to_shown).await;
    from.close().await?;
    to.close().await?;
    let copied = result?;
    eprintln!(
        "copied {} keys, {} logged events and {} events not yet counted from {from_shown} to \
         {to_shown} in {:.1} s; {from_shown} is left as it was",
        HumanCount(copied.keys),
        HumanCount(copied.logged),
        HumanCount(copied.unapplied),
        started.elapsed().as_secs_f64()
    );
    let serve = if is_redis(&args.to) {
        format!("footfall serve --redis {to_shown}")
    } else {
        format!("footfall serve --data-dir {to_shown}")
    };
    eprintln!("start `{serve}` to serve from the copy");
    Ok(())
}

async fn copy(from: &dyn Transfer, to: &dyn Transfer, to_shown: &str) -> Result<Copied> {
    // The bar draws only on a terminal, once the size is estimated.
    let bar = ProgressBar::no_length();
    bar.set_style(
        ProgressStyle::with_template(
            "{spinner} copying [{bar:40}] {human_pos}/{human_len} keys and events ({rate}/s, \
             {eta} left)",
        )
        .expect("a valid template")
        .with_key("rate", |state: &ProgressState, w: &mut dyn std::fmt::Write| {
            let _ = write!(w, "{}", HumanCount(state.per_sec() as u64));
        })
        .progress_chars("=> "),
    );
    let copied = migrate(from, to, &mut |progress| match progress {
        Progress::Estimated(n) => bar.set_length(n),
        Progress::Copied(n) => {
            bar.inc(n);
            // The estimate may fall short.
            if bar.position() > bar.length().unwrap_or(0) {
                bar.set_length(bar.position());
            }
        }
    })
    .await;
    bar.finish_and_clear();
    copied.map_err(|e| match e {
        StoreError::NotEmpty(_) => anyhow!(
            "{to_shown}: {e}: pick an empty data directory or Redis database, or empty this one"
        ),
        e => anyhow!(
            "migrating failed: {e}. {to_shown} may hold part of the copy: empty it before trying \
             again"
        ),
    })
}
