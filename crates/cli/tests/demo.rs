//! `footfall serve --demo` (here `demo = true` in footfall.toml, the same setting) on a new data
//! directory: the demo site has a month of history seconds after the start and live visitors
//! soon after, and a restart adds no second history.

mod support;

use std::thread::sleep;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use footfall_core::demo::SITE;
use footfall_core::time::civil_from_days;
use serde_json::Value;
use support::{Server, Workspace};

/// Polls `path` on the public demo site until `count` of its answer is above zero.
fn until_positive(server: &Server, path: &str, count: fn(&Value) -> Option<i64>) {
    // A release build shows the history within two seconds; a debug build folds the month's
    // events much more slowly.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (status, body) = server.get(path, None);
        assert_eq!(status, 200, "{path}: {body}");
        let n = count(&serde_json::from_str(&body).unwrap()).expect(&body);
        if n > 0 {
            return;
        }
        assert!(Instant::now() < deadline, "{path} stays at {body}:\n{}", server.log());
        sleep(Duration::from_millis(100));
    }
}

#[test]
fn the_demo_shows_a_month_at_once_then_live_visitors_and_a_restart_keeps_the_month() {
    let ws = Workspace::new();
    std::fs::write(ws.dir.path().join("footfall.toml"), "demo = true\n").unwrap();
    // The history's whole days: the live feed writes today only.
    let today = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs() as i64 / 86_400;
    let history_days = format!("{},{}", civil_from_days(today - 31), civil_from_days(today - 1));
    let history_pageviews = |server: &Server| {
        let query = format!("site_id={SITE}&period=custom&date={history_days}&metrics=pageviews");
        let (status, body) = server.get(&format!("/api/v1/stats/aggregate?{query}"), None);
        assert_eq!(status, 200, "{body}");
        let answer: Value = serde_json::from_str(&body).unwrap();
        answer["results"]["pageviews"]["value"].as_i64().unwrap()
    };

    let mut server = Server::start(&ws);
    let week = format!("/api/v1/stats/aggregate?site_id={SITE}&period=7d&metrics=visitors");
    until_positive(&server, &week, |v| v["results"]["visitors"]["value"].as_i64());
    let log = server.log();
    assert!(log.contains(&format!("open http://{}/{SITE}", server.addr)), "{log}");

    // Counted in log order: once the last minutes count, so do the days before.
    let realtime = format!("/api/v1/stats/realtime/visitors?site_id={SITE}");
    until_positive(&server, &realtime, Value::as_i64);
    let month = history_pageviews(&server);
    // 30 days of about 480 visits of 2.3 pageviews.
    assert!((20_000..47_000).contains(&month), "{month} pageviews of history");
    assert!(server.terminate(), "a clean stop:\n{}", server.log());

    let mut server = Server::start(&ws);
    assert_eq!(history_pageviews(&server), month, "the history is written once");
    assert!(server.terminate(), "a clean stop:\n{}", server.log());
}
