//! `footfall serve`.

use std::sync::Arc;

use anyhow::{Context, Result};
use footfall_server::serve::{ServeOptions, load_state, serve};
use footfall_store::EmbeddedStore;
use tokio::signal::unix::{SignalKind, signal};

use super::socket_path;
use crate::config::Settings;

pub async fn run(settings: &Settings) -> Result<()> {
    let store = EmbeddedStore::open(&settings.data_dir)?;
    let state = load_state(Arc::new(store), settings.server.clone(), &settings.sites).await?;

    // Registered before serving, so that a failure shows now rather than as an early stop.
    let mut interrupt = signal(SignalKind::interrupt()).context("cannot handle Ctrl-C")?;
    let mut terminate = signal(SignalKind::terminate()).context("cannot handle SIGTERM")?;
    let shutdown = async move {
        tokio::select! {
            _ = interrupt.recv() => {}
            _ = terminate.recv() => {}
        }
        tracing::info!("stopping: finishing requests and applying what has been read");
    };

    let options = ServeOptions {
        listen: settings.listen,
        config: settings.server.clone(),
        pipeline: settings.pipeline,
        retention_days: settings.retention_days,
        control_socket: Some(socket_path(&settings.data_dir)),
    };
    serve(state, options, shutdown)
        .await
        .with_context(|| format!("cannot serve on {}", settings.listen))?;
    tracing::info!("stopped");
    Ok(())
}
