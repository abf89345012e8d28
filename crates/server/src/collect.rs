//! The collector endpoints:
//! - `POST /api/track`: footfall's tracker, one event or a batch (JSON or `text/plain`, which
//!   is what `navigator.sendBeacon` sends);
//! - `POST /api/event`: Plausible's tracker payload, one event per request;
//! - `POST /api/v1/events`: application servers, behind an API key, with `user_id` and
//!   backfilled `ts`.
//!
//! Each answers `202 {"accepted": n, "rejected": [{"index": i, "error": "..."}]}` once the
//! accepted events are durable in the raw log. When nothing in a request can be accepted the
//! answer is `400` with the same `rejected` list and an `error`: a request for an unknown site
//! or with a missing field has failed as a whole, which is what Plausible's API answers too,
//! and a client that retries on 2xx-but-zero would be told nothing. Problems with the body as
//! a whole answer `400`, `413` or `415` before any event is looked at.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{ConnectInfo, Request, State};
use axum::http::header::{
    ACCESS_CONTROL_ALLOW_HEADERS, ACCESS_CONTROL_ALLOW_METHODS, ACCESS_CONTROL_ALLOW_ORIGIN,
    ACCESS_CONTROL_MAX_AGE, CONTENT_LENGTH, CONTENT_TYPE, ORIGIN, USER_AGENT, VARY,
};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use footfall_core::classify::geo::country_code;
use footfall_core::event::{Event, Traits};
use footfall_core::identity::Client;
use footfall_core::ingest::{self, Clock, FieldError, Incoming, Payload};
use http_body_util::{BodyExt, LengthLimitError, Limited};
use serde::Serialize;

use crate::auth;
use crate::engine::now_ms;
use crate::error::ApiError;
use crate::state::AppState;

/// Largest request body; 100 events of typical size fit comfortably.
pub const BODY_LIMIT: usize = 64 * 1024;

pub fn routes() -> Router<Arc<AppState>> {
    Router::new()
        .route("/api/track", post(track).options(preflight))
        .route("/api/event", post(plausible_event).options(preflight))
        // Server-to-server only: no CORS, so a browser page cannot use an API key here.
        .route("/api/v1/events", post(server_events))
}

/// Registers the collector's metrics with their help texts; call once at start.
pub fn describe_metrics() {
    metrics::describe_counter!(
        "footfall_events_accepted_total",
        "Events accepted and durably appended to the raw log."
    );
    metrics::describe_counter!(
        "footfall_events_rejected_total",
        "Events rejected one by one, by reason (the invalid field, or unknown_site)."
    );
    metrics::describe_histogram!(
        "footfall_batch_size",
        metrics::Unit::Count,
        "Events per collector request."
    );
    metrics::describe_gauge!(
        "footfall_log_appended_offset",
        "Highest raw-log offset acknowledged; minus footfall_pipeline_applied_offset, the \
         pipeline's lag in events."
    );
}

async fn track(State(state): State<Arc<AppState>>, request: Request) -> Response {
    let cors = cors_headers(&state, request.headers());
    with_headers(collect(&state, Payload::Browser, request).await, cors)
}

async fn plausible_event(State(state): State<Arc<AppState>>, request: Request) -> Response {
    let cors = cors_headers(&state, request.headers());
    with_headers(collect(&state, Payload::Plausible, request).await, cors)
}

async fn server_events(State(state): State<Arc<AppState>>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    if let Err(e) = auth::require_key(&state, &parts.headers).await {
        return e.into_response();
    }
    collect(&state, Payload::Server, Request::from_parts(parts, body)).await
}

/// Answers a CORS preflight; an origin that is not a registered site gets no CORS headers, so
/// the browser refuses to send.
async fn preflight(State(state): State<Arc<AppState>>, headers: HeaderMap) -> Response {
    let mut cors = cors_headers(&state, &headers);
    if cors.contains_key(ACCESS_CONTROL_ALLOW_ORIGIN) {
        // Browsers may then skip the preflight for a day.
        cors.insert(ACCESS_CONTROL_MAX_AGE, HeaderValue::from_static("86400"));
    }
    with_headers(StatusCode::NO_CONTENT.into_response(), cors)
}

/// CORS headers for a request from `Origin`: allowed only for a registered site's domain or a
/// subdomain of it, with the origin echoed. The answer depends on `Origin`, so caches are told.
fn cors_headers(state: &AppState, headers: &HeaderMap) -> HeaderMap {
    let mut out = HeaderMap::new();
    out.insert(VARY, HeaderValue::from_static("origin"));
    let allowed = headers.get(ORIGIN).filter(|origin| {
        let host = origin.to_str().ok().and_then(ingest::origin_host);
        host.is_some_and(|host| {
            let sites = state.sites.read().expect("sites lock");
            sites.keys().any(|domain| ingest::same_site(&host, domain))
        })
    });
    if let Some(origin) = allowed {
        out.insert(ACCESS_CONTROL_ALLOW_ORIGIN, origin.clone());
        out.insert(ACCESS_CONTROL_ALLOW_METHODS, HeaderValue::from_static("POST"));
        out.insert(ACCESS_CONTROL_ALLOW_HEADERS, HeaderValue::from_static("Content-Type"));
    }
    out
}

fn with_headers(mut response: Response, headers: HeaderMap) -> Response {
    response.headers_mut().extend(headers);
    response
}

/// One event's rejection as reported to the client.
#[derive(Serialize)]
struct Rejection {
    index: usize,
    error: String,
}

#[derive(Serialize)]
struct Accepted {
    accepted: usize,
    rejected: Vec<Rejection>,
}

#[derive(Serialize)]
struct NoneAccepted {
    error: String,
    accepted: usize,
    rejected: Vec<Rejection>,
}

async fn collect(state: &AppState, payload: Payload, request: Request) -> Response {
    match try_collect(state, payload, request).await {
        Ok(response) => response,
        Err(e) => {
            tracing::debug!(status = %e.status, error = %e.message, "collector request refused");
            e.into_response()
        }
    }
}

async fn try_collect(
    state: &AppState,
    payload: Payload,
    request: Request,
) -> Result<Response, ApiError> {
    let (parts, body) = request.into_parts();
    check_content_type(&parts.headers)?;
    let body = read_body(&parts.headers, body).await?;
    let clock = Clock { now_ms: now_ms(), max_skew_ms: state.config.max_clock_skew_ms };
    let decoded =
        ingest::decode(payload, &body, clock).map_err(|e| ApiError::bad_request(e.to_string()))?;
    metrics::histogram!("footfall_batch_size").record(decoded.len() as f64);

    let ip = client_ip(&parts, state.config.trust_proxy).ok_or_else(|| {
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "the client's address is unknown: the server was started without connection info",
        )
    })?;
    let user_agent = parts.headers.get(USER_AGENT).map(|v| String::from_utf8_lossy(v.as_bytes()));
    let user_agent = user_agent.as_deref().unwrap_or("");
    let traits = request_traits(state, payload, &parts.headers, ip, user_agent);
    let (events, rejected) =
        to_events(state, payload, decoded, &ip.to_string(), user_agent, &traits);

    if events.is_empty() {
        let error = match rejected.as_slice() {
            [only] => only.error.clone(),
            all => format!("all {} events were rejected; see `rejected`", all.len()),
        };
        let body = NoneAccepted { error, accepted: 0, rejected };
        return Ok((StatusCode::BAD_REQUEST, axum::Json(body)).into_response());
    }
    let accepted = events.len();
    // Durable before acknowledged: if this fails, the client is told and nothing is counted.
    state.append(events).await?;
    metrics::counter!("footfall_events_accepted_total").increment(accepted as u64);
    Ok((StatusCode::ACCEPTED, axum::Json(Accepted { accepted, rejected })).into_response())
}

/// Turns decoded events into log events for registered sites, and counts the rejections.
fn to_events(
    state: &AppState,
    payload: Payload,
    decoded: Vec<Result<Incoming, FieldError>>,
    ip: &str,
    user_agent: &str,
    traits: &Traits,
) -> (Vec<Event>, Vec<Rejection>) {
    // A copy, so that only one lock is held at a time.
    let salts = state.salts.read().expect("salts lock").clone();
    let sites = state.sites.read().expect("sites lock");
    let mut client = Client::new(&salts, ip, user_agent);
    let mut events = Vec::with_capacity(decoded.len());
    let mut rejected = Vec::new();
    for (index, result) in decoded.into_iter().enumerate() {
        let (reason, error) = match result {
            Ok(incoming) => match sites.get(&*incoming.site) {
                Some(site) => {
                    events.push(incoming.into_event(site, &mut client, traits));
                    continue;
                }
                None => ("unknown_site", FieldError::unknown_site(payload, &incoming.site)),
            },
            Err(e) => (e.field.name(), e),
        };
        metrics::counter!("footfall_events_rejected_total", "reason" => reason).increment(1);
        rejected.push(Rejection { index, error: error.to_string() });
    }
    (events, rejected)
}

const ACCEPTED_TYPES: &str = "send `Content-Type: application/json` or `text/plain`";

/// JSON, or `text/plain` because `navigator.sendBeacon` cannot send JSON without a preflight.
fn check_content_type(headers: &HeaderMap) -> Result<(), ApiError> {
    let unsupported = |message: String| ApiError::new(StatusCode::UNSUPPORTED_MEDIA_TYPE, message);
    let Some(value) = headers.get(CONTENT_TYPE) else {
        return Err(unsupported(format!("missing Content-Type: {ACCEPTED_TYPES}")));
    };
    let media_type = value.to_str().ok().and_then(|v| v.split(';').next());
    match media_type.map(|t| t.trim().to_ascii_lowercase()).as_deref() {
        Some("application/json" | "text/plain") => Ok(()),
        _ => Err(unsupported(format!(
            "unsupported Content-Type `{}`: {ACCEPTED_TYPES}",
            String::from_utf8_lossy(value.as_bytes())
        ))),
    }
}

fn too_large() -> ApiError {
    ApiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        format!("the body is larger than {} KiB: send fewer events per request", BODY_LIMIT / 1024),
    )
}

async fn read_body(headers: &HeaderMap, body: Body) -> Result<Bytes, ApiError> {
    // A declared length over the limit is refused without reading a byte.
    let declared = headers.get(CONTENT_LENGTH).and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
    if declared.is_some_and(|n| n > BODY_LIMIT as u64) {
        return Err(too_large());
    }
    match Limited::new(body, BODY_LIMIT).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(e) if e.is::<LengthLimitError>() => Err(too_large()),
        Err(e) => Err(ApiError::bad_request(format!("could not read the request body: {e}"))),
    }
}

/// The client's address: the first `X-Forwarded-For` entry when the proxy in front is trusted
/// (it is then the address the proxy saw; without a proxy anyone could set it), else the
/// socket's peer. Canonical form, so an IPv4 client seen as `::ffff:a.b.c.d` on a dual-stack
/// socket is the same visitor as when it arrives over IPv4.
pub(crate) fn client_ip(parts: &Parts, trust_proxy: bool) -> Option<IpAddr> {
    let forwarded = parts
        .headers
        .get("x-forwarded-for")
        .filter(|_| trust_proxy)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(',').next())
        .and_then(|first| parse_ip(first.trim()));
    let peer = || parts.extensions.get::<ConnectInfo<SocketAddr>>().map(|c| c.0.ip());
    forwarded.or_else(peer).map(|ip| ip.to_canonical())
}

/// What the request says of its client, for all its events: device, browser and OS from the
/// user agent, and the country from the trusted proxy's header or else the address. Events
/// that an application server sends on its users' behalf come with the server's own user
/// agent, which says nothing of the user: they are never taken for a bot's.
fn request_traits(
    state: &AppState,
    payload: Payload,
    headers: &HeaderMap,
    ip: IpAddr,
    user_agent: &str,
) -> Traits {
    let agent = state.agents.classify(user_agent);
    let mut traits = match payload == Payload::Server && agent.is_bot() {
        true => Traits::default(),
        false => Traits::of_agent(&agent),
    };
    let config = &state.config;
    let header = config.country_header.as_deref().and_then(|name| headers.get(name));
    match header.and_then(|v| v.to_str().ok()).and_then(country_code) {
        Some(country) => traits.country = Some(country),
        None => {
            if let Some(place) = config.geo.as_ref().map(|db| db.locate(ip)) {
                (traits.country, traits.region, traits.city) =
                    (place.country, place.region, place.city);
            }
        }
    }
    traits
}

/// An address as proxies write it: bare, or with a port (`203.0.113.9:4711`, `[2001:db8::1]:80`).
fn parse_ip(s: &str) -> Option<IpAddr> {
    s.parse().ok().or_else(|| s.parse::<SocketAddr>().ok().map(|a| a.ip()))
}
