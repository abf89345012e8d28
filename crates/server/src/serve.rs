//! Running a server: loading state, the router, and an orderly start and stop.

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::get;
use footfall_core::site::Site;
use footfall_store::{Store, StoreError};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::engine::{self, PipelineOptions};
use crate::state::{AppState, ServerConfig};
use crate::{account, assets, collect, control, stats};

/// Everything `serve` needs besides the store.
#[derive(Clone, Debug)]
pub struct ServeOptions {
    pub listen: SocketAddr,
    pub config: ServerConfig,
    pub pipeline: PipelineOptions,
    /// Keep raw-log events this many days; `None` keeps them forever.
    pub retention_days: Option<u32>,
    /// Where to answer the CLI ([`crate::control`]); `None` answers nowhere.
    pub control_socket: Option<PathBuf>,
    /// How often to re-read the sites from the store, for a store that other processes write
    /// too (Redis); `None` for one only this server writes.
    pub sites_refresh: Option<Duration>,
}

/// Loads sites and salts from the store, registering `declared` sites (from the configuration
/// file) first.
pub async fn load_state(
    store: Arc<dyn Store>,
    config: ServerConfig,
    declared: &[Site],
) -> Result<Arc<AppState>, StoreError> {
    for site in declared {
        store.put_site(site).await?;
    }
    let sites = store.sites().await?;
    let salts = engine::load_salts(store.as_ref()).await?;
    Ok(Arc::new(AppState::new(store, config, sites, salts)))
}

/// The whole HTTP surface.
pub fn router(state: Arc<AppState>) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/metrics", get(prometheus))
        .merge(collect::routes())
        .merge(assets::routes())
        .merge(stats::routes())
        .merge(account::routes())
        .with_state(state)
}

async fn healthz(State(state): State<Arc<AppState>>) -> impl IntoResponse {
    match state.store.applied_offset().await {
        Ok(_) => (StatusCode::OK, axum::Json(serde_json::json!({ "status": "ok" }))),
        Err(e) => (
            StatusCode::SERVICE_UNAVAILABLE,
            axum::Json(serde_json::json!({ "status": "unavailable", "error": e.to_string() })),
        ),
    }
}

async fn prometheus() -> String {
    metrics_handle().render()
}

/// The process-wide Prometheus recorder, installed on first use.
pub fn metrics_handle() -> &'static PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE.get_or_init(|| {
        let recorder = PrometheusBuilder::new().build_recorder();
        let handle = recorder.handle();
        // Only fails if another recorder was installed first, in which case ours stays empty.
        let _ = metrics::set_global_recorder(recorder);
        collect::describe_metrics();
        describe_metrics();
        handle
    })
}

fn describe_metrics() {
    use metrics::{describe_counter, describe_gauge, describe_histogram};
    describe_histogram!("footfall_store_apply_seconds", "Time to apply one write batch.");
    describe_counter!("footfall_events_processed_total", "Events folded and applied.");
    describe_gauge!(
        "footfall_pipeline_applied_offset",
        "Highest raw-log offset applied; see footfall_log_appended_offset for the lag."
    );
    describe_gauge!("footfall_active_sessions", "Sessions held in memory.");
    describe_counter!("footfall_sessions_ended_total", "Sessions ended by inactivity.");
}

/// Serves until `shutdown` resolves, then stops taking requests, lets the pipeline apply what
/// it has read, and returns.
pub async fn serve(
    state: Arc<AppState>,
    options: ServeOptions,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    metrics_handle();
    let listener = TcpListener::bind(options.listen).await?;
    tracing::info!(listen = %listener.local_addr()?, "footfall is listening");
    serve_on(listener, state, options, shutdown).await
}

/// [`serve`] on a listener that is already bound (tests bind port 0).
pub async fn serve_on(
    listener: TcpListener,
    state: Arc<AppState>,
    options: ServeOptions,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let (stop_tx, stop) = watch::channel(false);
    let pipeline =
        tokio::spawn(engine::run_pipeline(state.clone(), options.pipeline, stop.clone()));
    tokio::spawn(engine::rotate_salts(state.clone(), stop.clone()));
    if let Some(days) = options.retention_days {
        tokio::spawn(engine::enforce_retention(state.clone(), days, stop.clone()));
    }
    if let Some(every) = options.sites_refresh {
        tokio::spawn(engine::refresh_sites(state.clone(), every, stop.clone()));
    }
    let control = options.control_socket.map(|path| {
        let (state, stop) = (state.clone(), stop.clone());
        tokio::spawn(async move { control::listen(&path, state, stop).await })
    });

    let state_store = Arc::clone(&state.store);
    let app = router(state).into_make_service_with_connect_info::<SocketAddr>();
    let served = axum::serve(listener, app).with_graceful_shutdown(shutdown).await;

    let _ = stop_tx.send(true);
    match tokio::time::timeout(Duration::from_secs(30), pipeline).await {
        Ok(Ok(Ok(()))) => {}
        Ok(Ok(Err(e))) => tracing::error!(error = %e, "the pipeline stopped with an error"),
        Ok(Err(e)) => tracing::error!(error = %e, "the pipeline task failed"),
        Err(_) => tracing::error!("the pipeline did not stop within 30 s"),
    }
    // The listener removes its socket file on the way out; wait for that before returning.
    if let Some(control) = control {
        let _ = control.await;
    }
    if let Err(e) = state_store.close().await {
        tracing::warn!(error = %e, "closing the store failed");
    }
    served
}
