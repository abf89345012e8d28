//! The collector endpoints against the real embedded store.

use std::net::SocketAddr;
use std::ops::Range;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{HeaderMap, Request, StatusCode};
use footfall_core::batch::{Dim, SessionKey, SessionRecord, Slice, WriteBatch};
use footfall_core::event::Event;
use footfall_core::identity::Salts;
use footfall_core::site::Site;
use footfall_core::time::Bucket;
use footfall_server::auth;
use footfall_server::collect;
use footfall_server::state::{AppState, ServerConfig};
use footfall_store::{ApiKey, Counts, EmbeddedStore, Login, Share, Store, StoreError, User};
use http_body_util::BodyExt;
use serde_json::{Value, json};
use tempfile::TempDir;
use tower::ServiceExt;

const UA: &str = "Mozilla/5.0 (X11; Linux x86_64) Firefox/140.0";

struct Harness {
    state: Arc<AppState>,
    _dir: TempDir,
}

fn harness(trust_proxy: bool) -> Harness {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(EmbeddedStore::open(dir.path()).unwrap());
    let config = ServerConfig { trust_proxy, ..ServerConfig::default() };
    let sites = vec![Site::new("example.com", "UTC", false).unwrap()];
    let salts = Salts::new(engine_now(), [7; 64]);
    Harness { state: Arc::new(AppState::new(store, config, sites, salts)), _dir: dir }
}

fn engine_now() -> i64 {
    footfall_server::engine::now_ms()
}

impl Harness {
    fn app(&self) -> Router {
        collect::routes().with_state(self.state.clone())
    }

    async fn logged(&self) -> Vec<Event> {
        let events = self.state.store.unapplied(None, 1000).await.unwrap();
        events.into_iter().map(|(_, e)| e).collect()
    }
}

/// A request from `peer` with the given headers and body.
fn request(
    path: &str,
    peer: &str,
    headers: &[(&str, &str)],
    body: impl Into<Body>,
) -> Request<Body> {
    let mut builder = Request::post(path);
    for (k, v) in headers {
        builder = builder.header(*k, *v);
    }
    let mut req = builder.body(body.into()).unwrap();
    req.extensions_mut().insert(ConnectInfo(peer.parse::<SocketAddr>().unwrap()));
    req
}

fn json_request(path: &str, body: &Value) -> Request<Body> {
    request(
        path,
        "192.0.2.1:5000",
        &[("content-type", "application/json"), ("user-agent", UA)],
        body.to_string(),
    )
}

async fn send(app: Router, req: Request<Body>) -> (StatusCode, HeaderMap, Value) {
    let response = app.oneshot(req).await.unwrap();
    let (parts, body) = response.into_parts();
    let bytes = body.collect().await.unwrap().to_bytes();
    let value =
        if bytes.is_empty() { Value::Null } else { serde_json::from_slice(&bytes).unwrap() };
    (parts.status, parts.headers, value)
}

fn pageview(url: &str) -> Value {
    json!({"site": "example.com", "name": "pageview", "url": url})
}

const UNKNOWN: &str =
    "site: example.org is not registered; add it with `footfall site add example.org`";

#[tokio::test]
async fn one_event_is_accepted_and_durable_before_the_answer() {
    let h = harness(false);
    let body = json!({
        "site": "example.com",
        "name": "pageview",
        "url": "https://example.com/pricing?utm_source=newsletter",
        "referrer": "https://www.google.com/search?q=x",
        "screen_width": 1280,
    });
    let (status, _, answer) = send(h.app(), json_request("/api/track", &body)).await;
    assert_eq!(status, StatusCode::ACCEPTED);
    assert_eq!(answer, json!({"accepted": 1, "rejected": []}));

    let logged = h.logged().await;
    assert_eq!(logged.len(), 1);
    let e = &logged[0];
    let salts = h.state.salts.read().unwrap().clone();
    let (visitor, prev) = salts.visitor("example.com", "192.0.2.1", UA);
    assert_eq!((e.visitor, e.prev_visitor), (visitor, prev));
    assert_eq!(e.page, "/pricing");
    assert_eq!(e.referrer.as_deref(), Some("google.com/search"));
    assert_eq!(e.source.as_deref(), Some("newsletter"));
    assert_eq!(e.screen_width, Some(1280));
    assert!(!format!("{e:?}").contains("192.0.2.1"), "no IP in the log");
}

#[tokio::test]
async fn a_batch_keeps_its_good_events_and_reports_the_bad_ones() {
    let h = harness(false);
    let body = json!([
        pageview("https://example.com/a"),
        pageview("/relative"),
        {"site": "example.org", "name": "pageview", "url": "https://example.org/"},
        {"site": "example.com", "name": "signup", "url": "https://example.com/b",
         "props": {"plan": "pro"}},
        {"site": "example.com", "name": "pageview"},
    ]);
    let (status, _, answer) = send(h.app(), json_request("/api/track", &body)).await;
    assert_eq!(status, StatusCode::ACCEPTED);
    assert_eq!(
        answer,
        json!({"accepted": 2, "rejected": [
            {"index": 1, "error": "url: must be an absolute http(s) URL"},
            {"index": 2, "error": UNKNOWN},
            {"index": 4, "error": "url: required"},
        ]})
    );
    let logged = h.logged().await;
    let names: Vec<_> = logged.iter().map(|e| (e.name.as_str(), e.page.as_str())).collect();
    assert_eq!(names, [("pageview", "/a"), ("signup", "/b")]);
    assert_eq!(logged[1].props, [("plan".to_owned(), "pro".to_owned())]);
}

#[tokio::test]
async fn nothing_accepted_is_a_400_with_the_reasons() {
    let h = harness(false);
    let one = json!({"site": "example.org", "name": "pageview", "url": "https://example.org/"});
    let (status, _, answer) = send(h.app(), json_request("/api/track", &one)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(
        answer,
        json!({"error": UNKNOWN, "accepted": 0, "rejected": [{"index": 0, "error": UNKNOWN}]})
    );

    let two = json!([one, pageview("nope")]);
    let (status, _, answer) = send(h.app(), json_request("/api/track", &two)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(answer["error"], "all 2 events were rejected; see `rejected`");
    assert_eq!(answer["rejected"][1]["error"], "url: must be an absolute http(s) URL");
    assert!(h.logged().await.is_empty());
}

#[tokio::test]
async fn bodies_that_are_wrong_as_a_whole_are_400() {
    let h = harness(false);
    let many = Value::Array(vec![pageview("https://example.com/"); 101]).to_string();
    let cases: [(&[u8], &str); 6] = [
        (b"{\"site\": \"\xff\"}", "the body is not valid UTF-8 (invalid byte at offset 10)"),
        (b"site=example.com", "the body is not valid JSON: expected value at line 1 column 1"),
        (b"", "the body is not valid JSON: EOF while parsing a value at line 1 column 0"),
        (b"42", "the body must be a JSON object or an array of objects, not a number"),
        (b"[]", "the body is an empty array: send at least one event"),
        (many.as_bytes(), "too many events: 101 in one request, at most 100"),
    ];
    for (body, message) in cases {
        let req =
            request("/api/track", "192.0.2.1:1", &[("content-type", "text/plain")], body.to_vec());
        let (status, _, answer) = send(h.app(), req).await;
        assert_eq!((status, answer), (StatusCode::BAD_REQUEST, json!({"error": message})));
    }
    assert!(h.logged().await.is_empty());
}

#[tokio::test]
async fn content_type_must_be_json_or_text() {
    let h = harness(false);
    let body = pageview("https://example.com/").to_string();
    for accepted in
        ["application/json", "text/plain;charset=UTF-8", "Application/JSON; charset=utf-8"]
    {
        let req = request("/api/track", "192.0.2.1:1", &[("content-type", accepted)], body.clone());
        assert_eq!(send(h.app(), req).await.0, StatusCode::ACCEPTED, "{accepted}");
    }
    let form = [("content-type", "application/x-www-form-urlencoded")];
    let (status, _, answer) =
        send(h.app(), request("/api/track", "192.0.2.1:1", &form, body.clone())).await;
    assert_eq!(status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    assert_eq!(
        answer["error"],
        "unsupported Content-Type `application/x-www-form-urlencoded`: \
         send `Content-Type: application/json` or `text/plain`"
    );
    let (status, _, answer) = send(h.app(), request("/api/track", "192.0.2.1:1", &[], body)).await;
    assert_eq!(status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    assert_eq!(
        answer["error"],
        "missing Content-Type: send `Content-Type: application/json` or `text/plain`"
    );
}

#[tokio::test]
async fn bodies_over_64_kib_are_413() {
    let h = harness(false);
    let too_large =
        json!({"error": "the body is larger than 64 KiB: send fewer events per request"});
    let big = format!("[{}]", " ".repeat(64 * 1024));
    // Refused from its declared length, and found out while reading when no length is declared.
    let declared = [("content-type", "application/json"), ("content-length", "65538")];
    let undeclared = [("content-type", "application/json")];
    for headers in [&declared[..], &undeclared[..]] {
        let req = request("/api/track", "192.0.2.1:1", headers, big.clone());
        let (status, _, answer) = send(h.app(), req).await;
        assert_eq!((status, answer), (StatusCode::PAYLOAD_TOO_LARGE, too_large.clone()));
    }
    // Exactly the limit is fine as far as size goes.
    let mut at_limit = pageview("https://example.com/").to_string();
    at_limit.push_str(&" ".repeat(64 * 1024 - at_limit.len()));
    let req = request("/api/track", "192.0.2.1:1", &undeclared, at_limit);
    assert_eq!(send(h.app(), req).await.0, StatusCode::ACCEPTED);
    assert_eq!(h.logged().await.len(), 1);
}

#[tokio::test]
async fn plausible_payload_is_accepted_as_plausible_sends_it() {
    let h = harness(false);
    let body = json!({
        "n": "pageview",
        "u": "https://example.com/docs?utm_medium=social",
        "d": "example.com",
        "r": "https://news.ycombinator.com/item?id=1",
        "p": "{\"author\":\"ana\"}",
        "w": 390,
    });
    let (status, _, answer) = send(h.app(), json_request("/api/event", &body)).await;
    assert_eq!((status, answer), (StatusCode::ACCEPTED, json!({"accepted": 1, "rejected": []})));
    let e = &h.logged().await[0];
    assert_eq!((e.page.as_str(), e.utm_medium.as_deref()), ("/docs", Some("social")));
    assert_eq!(e.source.as_deref(), Some("Hacker News"));
    assert_eq!(e.props, [("author".to_owned(), "ana".to_owned())]);
    assert_eq!(e.screen_width, Some(390));

    let unknown = json!({"n": "pageview", "u": "https://example.org/", "d": "example.org"});
    let (status, _, answer) = send(h.app(), json_request("/api/event", &unknown)).await;
    let error = "d: example.org is not registered; add it with `footfall site add example.org`";
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(answer["error"], error);
    let batch = json!([body]);
    let (status, _, answer) = send(h.app(), json_request("/api/event", &batch)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(
        answer["error"],
        "the body must be one JSON object (one event per request), not an array"
    );
}

#[tokio::test]
async fn server_events_need_a_key_and_may_backfill_with_user_ids() {
    let h = harness(false);
    let key = auth::new_key();
    let stored = ApiKey { name: "ci".into(), created: 0 };
    h.state.store.put_api_key(auth::hash_key(&key), &stored).await.unwrap();
    let body = json!({
        "site": "example.com",
        "name": "purchase",
        "url": "https://example.com/checkout",
        "user_id": "u-42",
        "ts": 1_600_000_000_000i64,
    });
    let with = |auth: Option<&str>| {
        let mut headers = vec![("content-type", "application/json"), ("user-agent", UA)];
        headers.extend(auth.map(|a| ("authorization", a)));
        request("/api/v1/events", "192.0.2.1:1", &headers, body.to_string())
    };

    let (status, _, answer) = send(h.app(), with(None)).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        answer["error"],
        "missing API key: send `Authorization: Bearer <key>` \
         (create one with `footfall key create`)"
    );
    let (status, _, _) = send(h.app(), with(Some("Bearer ff_wrong"))).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(h.logged().await.is_empty());

    let bearer = format!("Bearer {key}");
    let (status, headers, answer) = send(h.app(), with(Some(&bearer))).await;
    assert_eq!((status, answer), (StatusCode::ACCEPTED, json!({"accepted": 1, "rejected": []})));
    assert!(!headers.contains_key("access-control-allow-origin"));
    let e = &h.logged().await[0];
    let salts = h.state.salts.read().unwrap().clone();
    assert_eq!((e.visitor, e.prev_visitor), (salts.user("example.com", "u-42"), None));
    assert_eq!((e.user_id.as_deref(), e.ts), (Some("u-42"), 1_600_000_000_000));
}

/// A store whose every operation fails, as a full disk or a lost Redis would.
struct Broken;

fn broken<T>() -> footfall_store::Result<T> {
    Err(StoreError::Unavailable("disk on fire".into()))
}

#[async_trait]
impl Store for Broken {
    async fn append(&self, _: Vec<Event>) -> footfall_store::Result<Range<u64>> {
        broken()
    }
    async fn wait_for_append(&self, _: Option<u64>, timeout: Duration) {
        tokio::time::sleep(timeout).await
    }
    async fn unapplied(
        &self,
        _: Option<u64>,
        _: usize,
    ) -> footfall_store::Result<Vec<(u64, Event)>> {
        broken()
    }
    async fn scan_log(&self, _: &str, _: i64, _: i64) -> footfall_store::Result<Vec<Event>> {
        broken()
    }
    async fn trim_log(&self, _: i64) -> footfall_store::Result<u64> {
        broken()
    }
    async fn apply(&self, _: &WriteBatch) -> footfall_store::Result<()> {
        broken()
    }
    async fn applied_offset(&self) -> footfall_store::Result<Option<u64>> {
        broken()
    }
    async fn sessions(&self) -> footfall_store::Result<Vec<(SessionKey, SessionRecord)>> {
        broken()
    }
    async fn totals(&self, _: &str, _: &[Bucket]) -> footfall_store::Result<Vec<Counts>> {
        broken()
    }
    async fn breakdown(
        &self,
        _: &str,
        _: &[Bucket],
        _: &Dim,
    ) -> footfall_store::Result<Vec<(String, Counts)>> {
        broken()
    }
    async fn unique_count(&self, _: &str, _: &[Bucket], _: &Slice) -> footfall_store::Result<u64> {
        broken()
    }
    async fn sites(&self) -> footfall_store::Result<Vec<Site>> {
        broken()
    }
    async fn put_site(&self, _: &Site) -> footfall_store::Result<()> {
        broken()
    }
    async fn put_api_key(&self, _: [u8; 32], _: &ApiKey) -> footfall_store::Result<()> {
        broken()
    }
    async fn api_key(&self, _: [u8; 32]) -> footfall_store::Result<Option<ApiKey>> {
        broken()
    }
    async fn salts(&self) -> footfall_store::Result<Option<Salts>> {
        broken()
    }
    async fn put_salts(&self, _: &Salts) -> footfall_store::Result<()> {
        broken()
    }

    async fn users(&self) -> footfall_store::Result<Vec<User>> {
        broken()
    }

    async fn user(&self, _: &str) -> footfall_store::Result<Option<User>> {
        broken()
    }

    async fn add_user(&self, _: &User) -> footfall_store::Result<bool> {
        broken()
    }

    async fn remove_user(&self, _: &str) -> footfall_store::Result<bool> {
        broken()
    }

    async fn put_login(&self, _: [u8; 32], _: &Login) -> footfall_store::Result<()> {
        broken()
    }

    async fn login(&self, _: [u8; 32], _: i64) -> footfall_store::Result<Option<Login>> {
        broken()
    }

    async fn remove_login(&self, _: [u8; 32]) -> footfall_store::Result<()> {
        broken()
    }

    async fn put_share(&self, _: &Share) -> footfall_store::Result<()> {
        broken()
    }

    async fn share(&self, _: &str) -> footfall_store::Result<Option<Share>> {
        broken()
    }

    async fn shares(&self, _: &str) -> footfall_store::Result<Vec<Share>> {
        broken()
    }

    async fn remove_share(&self, _: &str, _: &str) -> footfall_store::Result<bool> {
        broken()
    }
}

#[tokio::test]
async fn a_failing_store_is_503_and_nothing_is_acknowledged() {
    let sites = vec![Site::new("example.com", "UTC", false).unwrap()];
    let salts = Salts::new(engine_now(), [7; 64]);
    let state = Arc::new(AppState::new(Arc::new(Broken), ServerConfig::default(), sites, salts));
    let app = collect::routes().with_state(state);
    let (status, _, answer) =
        send(app, json_request("/api/track", &pageview("https://example.com/"))).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(
        answer,
        json!({"error": "storage is failing: the store is unavailable: disk on fire"})
    );
}

fn preflight(path: &str, origin: &str) -> Request<Body> {
    Request::options(path)
        .header("origin", origin)
        .header("access-control-request-method", "POST")
        .header("access-control-request-headers", "content-type")
        .body(Body::empty())
        .unwrap()
}

#[tokio::test]
async fn cors_is_answered_for_registered_sites_only() {
    let h = harness(false);
    for path in ["/api/track", "/api/event"] {
        for origin in
            ["https://example.com", "https://www.example.com", "http://blog.example.com:8080"]
        {
            let (status, headers, _) = send(h.app(), preflight(path, origin)).await;
            assert_eq!(status, StatusCode::NO_CONTENT);
            assert_eq!(headers["access-control-allow-origin"], origin);
            assert_eq!(headers["access-control-allow-methods"], "POST");
            assert_eq!(headers["access-control-allow-headers"], "Content-Type");
            assert_eq!(headers["access-control-max-age"], "86400");
            assert_eq!(headers["vary"], "origin");
        }
        for origin in [
            "https://example.org",
            "https://notexample.com",
            "https://example.com.evil.net",
            "null",
        ] {
            let (status, headers, _) = send(h.app(), preflight(path, origin)).await;
            assert_eq!(status, StatusCode::NO_CONTENT);
            assert!(!headers.contains_key("access-control-allow-origin"), "{origin}");
            assert!(!headers.contains_key("access-control-allow-methods"), "{origin}");
        }
    }

    let post = |origin: &str| {
        let headers = [("content-type", "text/plain"), ("origin", origin)];
        request("/api/track", "192.0.2.1:1", &headers, pageview("https://example.com/").to_string())
    };
    let (status, headers, _) = send(h.app(), post("https://example.com")).await;
    assert_eq!(status, StatusCode::ACCEPTED);
    assert_eq!(headers["access-control-allow-origin"], "https://example.com");
    // Errors carry the headers too, so the page's script can read them.
    let bad = [("content-type", "text/plain"), ("origin", "https://example.com")];
    let (status, headers, _) = send(h.app(), request("/api/track", "192.0.2.1:1", &bad, "{")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(headers["access-control-allow-origin"], "https://example.com");
    let (_, headers, _) = send(h.app(), post("https://evil.example.net")).await;
    assert!(!headers.contains_key("access-control-allow-origin"));
    // The API-key endpoint is not for browsers.
    let (status, headers, _) =
        send(h.app(), preflight("/api/v1/events", "https://example.com")).await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
    assert!(!headers.contains_key("access-control-allow-origin"));
}

/// The visitor id that one request from `peer` with `X-Forwarded-For: xff` gets.
async fn visitor_of(h: &Harness, peer: &str, xff: &str) -> u64 {
    let before = h.logged().await.len();
    let headers =
        [("content-type", "application/json"), ("user-agent", UA), ("x-forwarded-for", xff)];
    let req = request("/api/track", peer, &headers, pageview("https://example.com/").to_string());
    assert_eq!(send(h.app(), req).await.0, StatusCode::ACCEPTED);
    h.logged().await[before].visitor
}

#[tokio::test]
async fn forwarded_for_is_ignored_without_trust_proxy() {
    let h = harness(false);
    let salts = h.state.salts.read().unwrap().clone();
    let socket = salts.visitor("example.com", "10.0.0.1", UA).0;
    assert_eq!(visitor_of(&h, "10.0.0.1:1000", "203.0.113.9").await, socket);
    assert_eq!(visitor_of(&h, "10.0.0.1:2000", "198.51.100.7").await, socket);
    // An IPv4 client on a dual-stack socket is the same visitor.
    assert_eq!(visitor_of(&h, "[::ffff:10.0.0.1]:3000", "198.51.100.7").await, socket);
    assert_ne!(visitor_of(&h, "10.0.0.2:1000", "203.0.113.9").await, socket);
}

#[tokio::test]
async fn forwarded_for_is_honoured_with_trust_proxy() {
    let h = harness(true);
    let salts = h.state.salts.read().unwrap().clone();
    let client = salts.visitor("example.com", "203.0.113.9", UA).0;
    assert_eq!(visitor_of(&h, "10.0.0.1:1000", "203.0.113.9").await, client);
    assert_eq!(visitor_of(&h, "10.0.0.2:1000", "203.0.113.9, 10.0.0.1").await, client);
    assert_eq!(visitor_of(&h, "10.0.0.3:1000", " 203.0.113.9:4711 ,10.0.0.2").await, client);
    assert_ne!(visitor_of(&h, "10.0.0.1:1000", "198.51.100.7").await, client);
    // A header that names no address falls back to the socket.
    let socket = salts.visitor("example.com", "10.0.0.1", UA).0;
    assert_eq!(visitor_of(&h, "10.0.0.1:1000", "unknown").await, socket);
}

#[test]
fn metrics_count_accepted_and_rejected_events_and_batch_sizes() {
    let recorder = metrics_exporter_prometheus::PrometheusBuilder::new().build_recorder();
    let handle = recorder.handle();
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    metrics::with_local_recorder(&recorder, || {
        collect::describe_metrics();
        runtime.block_on(async {
            let h = harness(false);
            let body = json!([
                pageview("https://example.com/"),
                pageview("/x"),
                {"site": "example.org", "name": "pageview", "url": "https://example.org/"},
            ]);
            assert_eq!(
                send(h.app(), json_request("/api/track", &body)).await.0,
                StatusCode::ACCEPTED
            );
        })
    });
    let text = handle.render();
    for line in [
        "# HELP footfall_events_accepted_total \
         Events accepted and durably appended to the raw log.",
        "footfall_events_accepted_total 1",
        "footfall_events_rejected_total{reason=\"url\"} 1",
        "footfall_events_rejected_total{reason=\"unknown_site\"} 1",
        "footfall_batch_size_sum 3",
        "footfall_batch_size_count 1",
        // The first event of the log, acknowledged.
        "footfall_log_appended_offset 0",
    ] {
        assert!(text.lines().any(|l| l == line), "{line} not in\n{text}");
    }
}

/// What the request says of its client is classified into the logged event, and nothing raw
/// of it is kept: device, browser and OS from the user agent; the country from the trusted
/// proxy's header when one is configured; a crawler is marked as a bot; an application
/// server's own user agent, which says nothing of its users, is never a bot's.
#[tokio::test]
async fn requests_are_classified_into_traits() {
    let iphone = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_1 like Mac OS X) AppleWebKit/605.1.15 \
                  (KHTML, like Gecko) Version/17.1 Mobile/15E148 Safari/604.1";
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(EmbeddedStore::open(dir.path()).unwrap());
    let config =
        ServerConfig { country_header: Some("cf-ipcountry".into()), ..ServerConfig::default() };
    let sites = vec![Site::new("example.com", "UTC", false).unwrap()];
    let state = Arc::new(AppState::new(store, config, sites, Salts::new(engine_now(), [7; 64])));
    let app = || collect::routes().with_state(state.clone());
    let headers = |ua: &'static str, country: &'static str| {
        vec![("content-type", "application/json"), ("user-agent", ua), ("cf-ipcountry", country)]
    };
    let body = pageview("https://example.com/?utm_term=shoes&utm_content=hero").to_string();
    for (ua, country) in [(iphone, "de"), ("Googlebot/2.1 (+http://www.google.com/bot.html)", "US")]
    {
        let req = request("/api/track", "192.0.2.1:5000", &headers(ua, country), body.clone());
        assert_eq!(send(app(), req).await.0, StatusCode::ACCEPTED);
    }
    // Cloudflare's "unknown" and Tor codes name no country.
    let req = request("/api/track", "192.0.2.1:5000", &headers(iphone, "XX"), body.clone());
    assert_eq!(send(app(), req).await.0, StatusCode::ACCEPTED);

    let logged = state.store.unapplied(None, 10).await.unwrap();
    let traits: Vec<_> = logged.iter().map(|(_, e)| e.traits.clone()).collect();
    let t = &traits[0];
    assert_eq!(
        (t.device.as_deref(), t.browser.as_deref(), t.browser_version.as_deref()),
        (Some("Mobile"), Some("Mobile Safari"), Some("Mobile Safari 17.1"))
    );
    assert_eq!((t.os.as_deref(), t.os_version.as_deref()), (Some("iOS"), Some("iOS 17.1")));
    assert_eq!((t.country.as_deref(), t.channel.as_deref()), (Some("DE"), Some("Direct")));
    assert_eq!((t.utm_term.as_deref(), t.utm_content.as_deref()), (Some("shoes"), Some("hero")));
    assert!(traits[1].is_bot(), "{:?}", traits[1]);
    assert_eq!(traits[2].country, None);
    assert!(!format!("{logged:?}").contains("iPhone OS 17_1"), "no raw user agent is kept");

    // From an application server: its HTTP library is not a bot, and not the user's browser.
    let key = auth::new_key();
    let stored = ApiKey { name: "app".into(), created: 0 };
    state.store.put_api_key(auth::hash_key(&key), &stored).await.unwrap();
    let auth = format!("Bearer {key}");
    let req = request(
        "/api/v1/events",
        "192.0.2.1:5000",
        &[("content-type", "application/json"), ("user-agent", "python-requests/2.32"), ("authorization", &auth)],
        json!({"site": "example.com", "name": "signup", "url": "https://example.com/", "user_id": "u1"})
            .to_string(),
    );
    assert_eq!(send(app(), req).await.0, StatusCode::ACCEPTED);
    let logged = state.store.unapplied(Some(2), 10).await.unwrap();
    assert_eq!(logged[0].1.traits.device, None, "{:?}", logged[0].1.traits);
}
