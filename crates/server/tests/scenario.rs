//! End to end over HTTP on the embedded store: a small scripted dataset goes in through the
//! collector, the pipeline folds it, and the query API answers with numbers worked out by hand
//! below (sessions crossing the 30-minute gap and midnight included). Bad requests in between
//! are answered with their status while everything already accepted stays counted.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{Request, StatusCode};
use footfall_core::site::Site;
use footfall_server::auth;
use footfall_server::engine::{self, PipelineOptions};
use footfall_server::serve::{load_state, router};
use footfall_server::state::{AppState, ServerConfig};
use footfall_store::{ApiKey, EmbeddedStore, Store};
use http_body_util::BodyExt;
use serde_json::{Value, json};
use tokio::sync::watch;
use tower::ServiceExt;

const SITE: &str = "shop.example";

struct Server {
    app: Router,
    state: Arc<AppState>,
    key: String,
    stop: watch::Sender<bool>,
    _dir: tempfile::TempDir,
}

async fn start() -> Server {
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn Store> = Arc::new(EmbeddedStore::open(dir.path()).unwrap());
    let key = auth::new_key();
    store
        .put_api_key(auth::hash_key(&key), &ApiKey { name: "test".into(), created: 0 })
        .await
        .unwrap();
    let site = Site::new(SITE, "UTC", false).unwrap();
    let state = load_state(store, ServerConfig::default(), &[site]).await.unwrap();
    let (stop, rx) = watch::channel(false);
    let options =
        PipelineOptions { flush_interval: Duration::from_millis(20), ..Default::default() };
    tokio::spawn(engine::run_pipeline(state.clone(), options, rx));
    Server { app: router(state.clone()), state, key, stop, _dir: dir }
}

impl Server {
    async fn send(&self, req: Request<Body>) -> (StatusCode, Value) {
        let mut req = req;
        req.extensions_mut()
            .insert(ConnectInfo("198.51.100.7:4000".parse::<SocketAddr>().unwrap()));
        let res = self.app.clone().oneshot(req).await.unwrap();
        let status = res.status();
        let body = res.into_body().collect().await.unwrap().to_bytes();
        (status, serde_json::from_slice(&body).unwrap_or(Value::Null))
    }

    async fn server_event(&self, body: Value) -> (StatusCode, Value) {
        let req = Request::post("/api/v1/events")
            .header("content-type", "application/json")
            .header("authorization", format!("Bearer {}", self.key))
            .body(Body::from(body.to_string()))
            .unwrap();
        self.send(req).await
    }

    async fn get(&self, path_and_query: &str) -> Value {
        let req = Request::get(path_and_query)
            .header("authorization", format!("Bearer {}", self.key))
            .body(Body::empty())
            .unwrap();
        let (status, body) = self.send(req).await;
        assert_eq!(status, StatusCode::OK, "{path_and_query}: {body}");
        body
    }

    /// Waits until the pipeline has applied everything appended so far.
    async fn settle(&self) {
        for _ in 0..500 {
            let pending = self.state.store.unapplied(None, 1).await.unwrap();
            if pending.is_empty() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("the pipeline did not catch up");
    }
}

/// 2026-11-20 at `h:m` UTC, in Unix ms (a day later for `day = 1`).
fn at(day: i64, h: i64, m: i64) -> i64 {
    1_795_132_800_000 + day * 86_400_000 + (h * 60 + m) * 60_000
}

fn event(user: &str, ts: i64, name: &str, url: &str) -> Value {
    json!({ "site": SITE, "name": name, "url": url, "user_id": user, "ts": ts })
}

/// The dataset, as sessions (D1 = 2026-11-20, D2 = 2026-11-21, UTC):
/// - S1 alice D1 10:00 `/` (from news.ycombinator.com), 10:05 `/pricing`, 10:07 signup on
///   `/pricing` {plan: pro}: 2 pageviews, 3 events, 7 min, entry `/`, exit `/pricing`.
/// - S2 alice D1 11:00 `/` (53 min later: a new session): a bounce, direct.
/// - S3 bob D1 23:50 `/?utm_source=newsletter&utm_medium=email&utm_campaign=nov`, D2 00:10
///   `/blog`: crosses midnight, counted on D1, 20 min, exit `/blog`.
/// - S4 carol D1 12:00 `/blog` from www.google.com: a bounce.
/// - S5 dave D2 09:00 `/pricing`, 09:30 `/` (exactly 30 min: same session): 30 min.
fn dataset() -> Vec<Value> {
    let u = |path: &str| format!("https://{SITE}{path}");
    let mut hn = event("alice", at(0, 10, 0), "pageview", &u("/"));
    hn["referrer"] = json!("https://news.ycombinator.com/item?id=1");
    let mut signup = event("alice", at(0, 10, 7), "signup", &u("/pricing"));
    signup["props"] = json!({ "plan": "pro" });
    let mut google = event("carol", at(0, 12, 0), "pageview", &u("/blog"));
    google["referrer"] = json!("https://www.google.com/search?q=shop");
    vec![
        hn,
        event("alice", at(0, 10, 5), "pageview", &u("/pricing")),
        signup,
        event("alice", at(0, 11, 0), "pageview", &u("/")),
        event(
            "bob",
            at(0, 23, 50),
            "pageview",
            &u("/?utm_source=newsletter&utm_medium=email&utm_campaign=nov"),
        ),
        google,
        event("bob", at(1, 0, 10), "pageview", &u("/blog")),
        event("dave", at(1, 9, 0), "pageview", &u("/pricing")),
        event("dave", at(1, 9, 30), "pageview", &u("/")),
    ]
}

fn q(kind: &str, params: &str) -> String {
    format!("/api/v1/stats/{kind}?site_id={SITE}&{params}")
}

#[tokio::test]
async fn a_scripted_dataset_gives_hand_computed_answers() {
    let server = start().await;
    // Sent one by one, as an application server would, with bad requests in between.
    for (i, e) in dataset().into_iter().enumerate() {
        let (status, body) = server.server_event(e).await;
        assert_eq!(status, StatusCode::ACCEPTED, "{body}");
        assert_eq!(body, json!({ "accepted": 1, "rejected": [] }));
        if i % 3 == 0 {
            let bad = Request::post("/api/track")
                .header("content-type", "application/json")
                .body(Body::from("{not json"))
                .unwrap();
            let (status, body) = server.send(bad).await;
            assert_eq!(status, StatusCode::BAD_REQUEST);
            assert!(body["error"].as_str().unwrap().contains("not valid JSON"), "{body}");
        }
    }
    server.settle().await;

    // D1: events a1 a2 a3 a4 b1 c1 = 6, pageviews 5, visitors alice bob carol = 3; sessions
    // started S1 S2 S3 S4 = 4 visits, bounces S2 S4 = 50 %, duration (420 + 0 + 1200 + 0) / 4
    // = 405 s, views per visit 5 / 4 = 1.25.
    let all = "metrics=visitors,visits,pageviews,views_per_visit,bounce_rate,visit_duration,events";
    let d1 = server.get(&q("aggregate", &format!("period=day&date=2026-11-20&{all}"))).await;
    assert_eq!(
        d1,
        json!({ "results": {
            "visitors": { "value": 3 }, "visits": { "value": 4 }, "pageviews": { "value": 5 },
            "views_per_visit": { "value": 1.25 }, "bounce_rate": { "value": 50 },
            "visit_duration": { "value": 405 }, "events": { "value": 6 },
        }})
    );
    // D1..D2: 9 events, 8 pageviews, 4 visitors, 5 visits, 2 bounces = 40 %,
    // (1620 + 1800) / 5 = 684 s, 8 / 5 = 1.6 views per visit.
    let both = server
        .get(&q("aggregate", &format!("period=custom&date=2026-11-20,2026-11-21&{all}")))
        .await;
    assert_eq!(
        both,
        json!({ "results": {
            "visitors": { "value": 4 }, "visits": { "value": 5 }, "pageviews": { "value": 8 },
            "views_per_visit": { "value": 1.6 }, "bounce_rate": { "value": 40 },
            "visit_duration": { "value": 684 }, "events": { "value": 9 },
        }})
    );

    let series = server
        .get(&q(
            "timeseries",
            "period=custom&date=2026-11-20,2026-11-21&metrics=visitors,pageviews,visits",
        ))
        .await;
    assert_eq!(
        series,
        json!({ "results": [
            { "date": "2026-11-20", "visitors": 3, "pageviews": 5, "visits": 4 },
            { "date": "2026-11-21", "visitors": 2, "pageviews": 3, "visits": 1 },
        ]})
    );
    // Hourly on D1: 10:00 a1 a2 (S1 starts), 11:00 a4 (S2), 12:00 c1 (S4), 23:00 b1 (S3).
    let hourly =
        server.get(&q("timeseries", "period=day&date=2026-11-20&metrics=pageviews,visits")).await;
    let points = hourly["results"].as_array().unwrap();
    assert_eq!(points.len(), 24);
    let nonzero: Vec<_> = points
        .iter()
        .filter(|p| p["pageviews"] != json!(0) || p["visits"] != json!(0))
        .cloned()
        .collect();
    assert_eq!(
        nonzero,
        [
            json!({ "date": "2026-11-20 10:00:00", "pageviews": 2, "visits": 1 }),
            json!({ "date": "2026-11-20 11:00:00", "pageviews": 1, "visits": 1 }),
            json!({ "date": "2026-11-20 12:00:00", "pageviews": 1, "visits": 1 }),
            json!({ "date": "2026-11-20 23:00:00", "pageviews": 1, "visits": 1 }),
        ]
    );

    let period = "period=custom&date=2026-11-20,2026-11-21";
    // Pages: `/` a1 a4 b1 d2 (alice bob dave), `/pricing` a2 d1 + the signup (alice dave),
    // `/blog` c1 b2 (carol bob). Ties in visitors go by value.
    let pages = server
        .get(&q(
            "breakdown",
            &format!("{period}&property=event:page&metrics=visitors,pageviews,events"),
        ))
        .await;
    assert_eq!(
        pages,
        json!({ "results": [
            { "page": "/", "visitors": 3, "pageviews": 4, "events": 4 },
            { "page": "/blog", "visitors": 2, "pageviews": 2, "events": 2 },
            { "page": "/pricing", "visitors": 2, "pageviews": 2, "events": 3 },
        ]})
    );
    // Entry pages: `/` S1 S2 S3 (one bounce, (420 + 0 + 1200) / 3 = 540 s), `/blog` S4,
    // `/pricing` S5.
    let entry = server
        .get(&q(
            "breakdown",
            &format!(
                "{period}&property=visit:entry_page&metrics=visits,bounce_rate,visit_duration"
            ),
        ))
        .await;
    assert_eq!(
        entry,
        json!({ "results": [
            { "entry_page": "/", "visits": 3, "bounce_rate": 33, "visit_duration": 540 },
            { "entry_page": "/blog", "visits": 1, "bounce_rate": 100, "visit_duration": 0 },
            { "entry_page": "/pricing", "visits": 1, "bounce_rate": 0, "visit_duration": 1800 },
        ]})
    );
    // Exit pages: S1 `/pricing`, S2 `/`, S3 `/blog`, S4 `/blog`, S5 `/`.
    let exit = server
        .get(&q("breakdown", &format!("{period}&property=visit:exit_page&metrics=visits")))
        .await;
    assert_eq!(
        exit,
        json!({ "results": [
            { "exit_page": "/", "visits": 2 },
            { "exit_page": "/blog", "visits": 2 },
            { "exit_page": "/pricing", "visits": 1 },
        ]})
    );
    // Sources: S2 and S5 direct (alice, dave), then one session each.
    let sources = server
        .get(&q("breakdown", &format!("{period}&property=visit:source&metrics=visitors,visits")))
        .await;
    assert_eq!(
        sources,
        json!({ "results": [
            { "source": "Direct / None", "visitors": 2, "visits": 2 },
            { "source": "Google", "visitors": 1, "visits": 1 },
            { "source": "Hacker News", "visitors": 1, "visits": 1 },
            { "source": "newsletter", "visitors": 1, "visits": 1 },
        ]})
    );
    // The same sessions by channel: Hacker News is a social site, the newsletter is email.
    let channels = server
        .get(&q("breakdown", &format!("{period}&property=visit:channel&metrics=visits")))
        .await;
    assert_eq!(
        channels,
        json!({ "results": [
            { "channel": "Direct", "visits": 2 },
            { "channel": "Email", "visits": 1 },
            { "channel": "Organic Search", "visits": 1 },
            { "channel": "Organic Social", "visits": 1 },
        ]})
    );
    let campaign = server
        .get(&q(
            "breakdown",
            &format!("{period}&property=visit:utm_campaign&metrics=visits,visit_duration"),
        ))
        .await;
    assert_eq!(
        campaign,
        json!({ "results": [{ "utm_campaign": "nov", "visits": 1, "visit_duration": 1200 }] })
    );
    let names = server
        .get(&q("breakdown", &format!("{period}&property=event:name&metrics=visitors,events")))
        .await;
    assert_eq!(
        names,
        json!({ "results": [
            { "name": "pageview", "visitors": 4, "events": 8 },
            { "name": "signup", "visitors": 1, "events": 1 },
        ]})
    );
    let plans = server
        .get(&q(
            "breakdown",
            &format!("{period}&property=event:props:plan&metrics=visitors,events"),
        ))
        .await;
    assert_eq!(plans, json!({ "results": [{ "plan": "pro", "visitors": 1, "events": 1 }] }));

    // A browser pageview now, from the socket's IP: live in the realtime window.
    let live = Request::post("/api/track")
        .header("content-type", "text/plain")
        .header("user-agent", "Mozilla/5.0 (X11; Linux x86_64) Firefox/140.0")
        .body(Body::from(
            json!({ "site": SITE, "name": "pageview", "url": format!("https://{SITE}/") })
                .to_string(),
        ))
        .unwrap();
    assert_eq!(server.send(live).await.0, StatusCode::ACCEPTED);
    server.settle().await;
    assert_eq!(server.get(&q("realtime/visitors", "")).await, json!(1));
    // The day's numbers did not move.
    assert_eq!(server.get(&q("aggregate", &format!("period=day&date=2026-11-20&{all}"))).await, d1);
    let _ = server.stop.send(true);
}
