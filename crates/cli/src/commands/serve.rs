//! `footfall serve`.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, anyhow};
use footfall_core::classify::geo::GeoDb;
use footfall_core::demo::Params;
use footfall_server::demo;
use footfall_server::serve::{ServeOptions, load_state, serve};
use footfall_store::redis::{LEASE, WriterOptions};
use footfall_store::{EmbeddedStore, RedisStore, Store};
use tokio::signal::unix::{SignalKind, signal};

use super::{SPILL_FILE, socket_path};
use crate::config::Settings;

/// How soon a server on Redis notices a site that a command added or changed.
const SITES_REFRESH: Duration = Duration::from_secs(2);

pub async fn run(settings: &Settings) -> Result<()> {
    // Commands reach a server on Redis through Redis itself, so it needs no control socket, but
    // must look there for the sites they add.
    let (store, control_socket, sites_refresh): (Arc<dyn Store>, _, _) = match &settings.redis {
        Some(url) => {
            let options = WriterOptions {
                // A server that was killed holds the lease a little longer; a restart waits it
                // out.
                lease_wait: LEASE + Duration::from_secs(1),
                spill_path: settings.data_dir.join(SPILL_FILE),
                spill_max_bytes: settings.redis_spill_bytes,
            };
            let store = RedisStore::connect_writer(url, &options).await?;
            tracing::info!(redis = store.shown_url(), "state is in Redis");
            (Arc::new(store), None, Some(SITES_REFRESH))
        }
        None => {
            let store = EmbeddedStore::open(&settings.data_dir)?;
            (Arc::new(store), Some(socket_path(&settings.data_dir)), None)
        }
    };
    let mut config = settings.server.clone();
    if let Some(path) = &settings.geoip_database {
        config.geo = Some(Arc::new(load_geo(path)?));
    }
    let state = load_state(store, config.clone(), &settings.sites).await?;

    // Registered before serving, so that a failure shows now rather than as an early stop.
    let mut interrupt = signal(SignalKind::interrupt()).context("cannot handle Ctrl-C")?;
    let mut terminate = signal(SignalKind::terminate()).context("cannot handle SIGTERM")?;
    let demo = match settings.demo {
        true => {
            // A new seed on each start: the last one would bring back the same addresses and
            // browsers, and so, the same day, the same visitors.
            let seed = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_nanos());
            let feed = demo::start(state.clone(), settings.listen, Params::default(), seed as u64);
            Some(feed.await.context("cannot start the demo")?)
        }
        false => None,
    };
    let shutdown = async move {
        tokio::select! {
            _ = interrupt.recv() => {}
            _ = terminate.recv() => {}
        }
        tracing::info!("stopping: finishing requests and applying what has been read");
        // Before the pipeline's last batch, so that it counts the feed's last events.
        if let Some(feed) = demo {
            feed.stop().await;
        }
    };

    let options = ServeOptions {
        listen: settings.listen,
        config,
        pipeline: settings.pipeline,
        retention_days: settings.retention_days,
        control_socket,
        sites_refresh,
    };
    serve(state, options, shutdown)
        .await
        .with_context(|| format!("cannot serve on {}", settings.listen))?;
    tracing::info!("stopped");
    Ok(())
}

/// Reads the geolocation database, saying what is wrong with it if it cannot be used.
fn load_geo(path: &Path) -> Result<GeoDb> {
    let bytes = std::fs::read(path)
        .with_context(|| format!("cannot read the GeoIP database {}", path.display()))?;
    let db = GeoDb::from_bytes(bytes)
        .map_err(|e| anyhow!("{} is not a MaxMind-format (.mmdb) database: {e}", path.display()))?;
    tracing::info!(path = %path.display(), kind = db.kind(), "locating visitors with a GeoIP database");
    Ok(db)
}
