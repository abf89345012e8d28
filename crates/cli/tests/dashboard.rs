//! The dashboard in a real browser: headless Chromium opens a running `footfall serve` that holds
//! a small, known day of traffic on a private site, logs in as a user made with `footfall user
//! add`, and checks that the cards and panels show what the query API answers and what was
//! worked out by hand; clicks a page to filter by it; opens the props of an event whose name,
//! page, referrer and props carry script; logs out; and reads the site through a share link,
//! read-only. Screenshots of each view are left in the test's target directory.

mod support;

use std::path::PathBuf;

use fantoccini::{Client, Locator};
use footfall_testkit::ChromeDriver;
use serde_json::{Value, json};
use support::{Server, UA, Workspace, browser, noon_timezone, ok, wait_until};

const SITE: &str = "shop.test";
const PASSWORD: &str = "correct horse battery";
const CHROME_WINDOWS: &str = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 \
                              (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36";
const IPHONE: &str = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_1 like Mac OS X) AppleWebKit/605.1.15 \
                      (KHTML, like Gecko) Version/17.1 Mobile/15E148 Safari/604.1";
const CHROME_MAC: &str = "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 \
                          (KHTML, like Gecko) Chrome/121.0.0.0 Safari/537.36";

/// What an attacker puts wherever footfall shows text; if any of it ran, `window.__xss` is set.
const XSS_NAME: &str = "<img src=x onerror=\"window.__xss=1\">";
const XSS_PROP: &str = "<b onmouseover=\"window.__xss=2\">k</b>";
const XSS_VALUE: &str = "<script>window.__xss=3</script>";

fn screenshots() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("screenshots");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Sends one visitor's events (`(seconds ago, name, path, referrer, props)`) as that visitor's
/// browser would.
fn visit(server: &Server, ua: &str, events: &[(i64, &str, &str, Option<&str>, Value)]) {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap();
    let now = now.as_millis() as i64;
    let body: Vec<Value> = events
        .iter()
        .map(|(ago, name, path, referrer, props)| {
            let mut e = json!({
                "site": SITE, "name": name, "url": format!("https://{SITE}{path}"),
                "ts": now - ago * 1000, "props": props,
            });
            if let Some(r) = referrer {
                e["referrer"] = json!(r);
            }
            e
        })
        .collect();
    let head = format!(
        "POST /api/track HTTP/1.1\r\nContent-Type: application/json\r\nUser-Agent: {ua}\r\n"
    );
    let (status, answer) = server.http(&head, &Value::Array(body).to_string());
    assert_eq!(status, 202, "{answer}");
    assert!(answer.contains(r#""rejected":[]"#), "{answer}");
}

/// Four visitors today, all within the last five minutes:
/// - A (Chrome, Windows) from Google: `/` then `/pricing` a minute later, then signs up: 70 s;
/// - B (Firefox, Linux), direct: `/` only, a bounce;
/// - C (Safari, iPhone) from Hacker News: `/pricing` then `/about`: 60 s;
/// - D (Chrome, macOS) from a hostile referrer: one page and, 10 s later, an event named and
///   with props made to run script: a bounce (one pageview) of 10 s.
///
/// So: 4 visitors, 4 visits, 6 pageviews, 1.5 views per visit, 2 bounces in 4 = 50 %, and
/// (70 + 0 + 60 + 10) / 4 = 35 s per visit.
fn load(server: &Server) {
    let none = json!({});
    visit(
        server,
        CHROME_WINDOWS,
        &[
            (240, "pageview", "/", Some("https://www.google.com/"), none.clone()),
            (180, "pageview", "/pricing", None, none.clone()),
            (170, "Signup", "/pricing", None, json!({ "plan": "pro" })),
        ],
    );
    visit(server, UA, &[(200, "pageview", "/", None, none.clone())]);
    visit(
        server,
        IPHONE,
        &[
            (
                200,
                "pageview",
                "/pricing",
                Some("https://news.ycombinator.com/item?id=1"),
                none.clone(),
            ),
            (140, "pageview", "/about", None, none.clone()),
        ],
    );
    visit(
        server,
        CHROME_MAC,
        &[
            (100, "pageview", "/", Some("https://evil.example/<svg onload=window.__xss=4>"), none),
            (90, XSS_NAME, "/", None, json!({ XSS_PROP: XSS_VALUE })),
        ],
    );
}

/// Waits for the dashboard to have loaded every panel of the current view.
async fn ready(c: &Client) {
    wait_until(c, "document.body.dataset.state === 'ready'").await;
}

/// Clicks what `css` finds, once the view it changes is marked as not ready.
async fn click(c: &Client, css: &str) {
    c.execute("document.body.dataset.state = 'clicked'", vec![]).await.unwrap();
    c.find(Locator::Css(css)).await.unwrap().click().await.unwrap();
}

async fn text_of(c: &Client, testid: &str, attribute: &str) -> String {
    let e = c.find(Locator::Css(&format!("[data-testid='{testid}']"))).await.unwrap();
    e.attr(attribute).await.unwrap().unwrap_or_default()
}

/// The cards' raw values, by metric.
async fn cards(c: &Client) -> Vec<(String, f64)> {
    let mut out = Vec::new();
    for m in ["visitors", "visits", "pageviews", "views_per_visit", "bounce_rate", "visit_duration"]
    {
        let value = text_of(c, &format!("card-{m}"), "data-value").await;
        out.push((m.to_owned(), value.parse().unwrap_or(f64::NAN)));
    }
    out
}

/// `(value, visitors)` of a panel's rows, as shown.
async fn rows(c: &Client, panel: &str) -> Vec<(String, String)> {
    let script = format!(
        "return [...document.querySelectorAll(\"[data-testid='{panel}'] [data-testid='row']\")]
           .map(r => [r.dataset.value, r.querySelector(\"[data-testid='row-count']\").dataset.value])"
    );
    let found = c.execute(&script, vec![]).await.unwrap();
    serde_json::from_value(found).unwrap()
}

async fn screenshot(c: &Client, name: &str) {
    let png = c.screenshot().await.unwrap();
    std::fs::write(screenshots().join(format!("{name}.png")), png).unwrap();
}

async fn nothing_ran(c: &Client) {
    let ran = c.execute("return window.__xss ?? null", vec![]).await.unwrap();
    assert_eq!(ran, Value::Null, "attacker-controlled text ran as script");
    let injected = c
        .execute("return document.querySelectorAll('[onerror],[onload],[onmouseover],svg,img[src=x]').length", vec![])
        .await
        .unwrap();
    assert_eq!(injected, json!(0), "attacker-controlled text became HTML");
}

#[test]
fn the_dashboard_shows_what_the_api_answers() {
    let ws = Workspace::new();
    ws.ok(&["site", "add", SITE, "--timezone", &noon_timezone()]);
    let key = ws.ok(&["key", "create"]).trim().to_owned();
    ok(&[], ws.with_stdin(&["user", "add", "admin", "--password-stdin"], PASSWORD));
    let server = Server::start(&ws);
    load(&server);
    let base = format!("/api/v1/stats/aggregate?site_id={SITE}&period=day");
    let all = "visitors,visits,pageviews,views_per_visit,bounce_rate,visit_duration";
    let api = server.wait_for(&format!("{base}&metrics={all}"), Some(&key), |a| {
        a["results"]["pageviews"]["value"] == json!(6)
    });
    // Worked out by hand (see `load`).
    let by_hand = [
        ("visitors", "4"),
        ("visits", "4"),
        ("pageviews", "6"),
        ("views_per_visit", "1.5"),
        ("bounce_rate", "50"),
        ("visit_duration", "35"),
    ];
    for (metric, value) in by_hand {
        assert_eq!(api["results"][metric]["value"].to_string(), value, "{metric}: {api}");
    }
    let share = ws.ok(&["share", "create", SITE]).trim().to_owned();
    assert!(share.starts_with(&format!("/share/{SITE}?auth=")), "{share}");

    let driver = ChromeDriver::start();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let origin = format!("http://{}", server.addr);
    runtime.block_on(async {
        let c = browser(&driver, None).await;
        c.set_window_size(1280, 2200).await.unwrap();

        // A private site: the dashboard asks to log in first.
        c.goto(&format!("{origin}/{SITE}")).await.unwrap();
        let user = c.wait().for_element(Locator::Css("[data-testid='login-username']")).await;
        user.unwrap().send_keys("admin").await.unwrap();
        let password = c.find(Locator::Css("[data-testid='login-password']")).await.unwrap();
        password.send_keys("wrong password").await.unwrap();
        c.find(Locator::Css("[data-testid='login-submit']")).await.unwrap().click().await.unwrap();
        wait_until(&c, "document.body.innerText.includes('wrong username or password')").await;
        screenshot(&c, "login").await;
        password.clear().await.unwrap();
        password.send_keys(PASSWORD).await.unwrap();
        c.find(Locator::Css("[data-testid='login-submit']")).await.unwrap().click().await.unwrap();
        if !c.current_url().await.unwrap().path().ends_with(SITE) {
            c.goto(&format!("{origin}/{SITE}")).await.unwrap();
        }
        c.wait().for_element(Locator::Css("[data-testid='card-visitors']")).await.unwrap();
        ready(&c).await;
        let shown = cards(&c).await;
        let expected: Vec<(String, f64)> =
            by_hand.iter().map(|(m, v)| (m.to_string(), v.parse().unwrap())).collect();
        assert_eq!(shown, expected, "cards");
        assert_eq!(text_of(&c, "card-live", "data-value").await, "4", "live visitors");
        let pages = rows(&c, "panel-pages").await;
        let want = |pairs: &[(&str, &str)]| -> Vec<(String, String)> {
            pairs.iter().map(|(a, b)| (a.to_string(), b.to_string())).collect()
        };
        assert_eq!(pages, want(&[("/", "3"), ("/pricing", "2"), ("/about", "1")]));
        let sources = rows(&c, "panel-sources").await;
        assert_eq!(
            sources,
            want(&[("Direct / None", "1"), ("Google", "1"), ("Hacker News", "1"), ("evil.example", "1")])
        );
        nothing_ran(&c).await;
        screenshot(&c, "dashboard").await;

        // A page row filters the whole dashboard: /pricing was viewed by A and C, and only C's
        // visit entered there (no bounce, 60 s).
        let pricing = "[data-testid='panel-pages'] [data-testid='row'][data-value='/pricing'] .row-pick";
        click(&c, pricing).await;
        wait_until(&c, "location.search.includes('filters=')").await;
        ready(&c).await;
        let url = c.current_url().await.unwrap();
        let filters = url.query_pairs().find(|(k, _)| k == "filters").map(|(_, v)| v.into_owned());
        assert_eq!(filters.as_deref(), Some("event:page==/pricing"));
        let chip = text_of(&c, "filter-chip", "data-filter").await;
        assert_eq!(chip, "event:page==/pricing");
        let filtered = server.wait_for(
            &format!("{base}&metrics={all}&filters=event:page%3D%3D/pricing"),
            Some(&key),
            |_| true,
        );
        let from_api: Vec<(String, f64)> = by_hand
            .iter()
            .map(|(m, _)| (m.to_string(), filtered["results"][m]["value"].as_f64().unwrap()))
            .collect();
        assert_eq!(cards(&c).await, from_api, "filtered cards");
        let by_hand = [2.0, 1.0, 2.0, 2.0, 0.0, 60.0];
        assert_eq!(from_api.iter().map(|(_, v)| *v).collect::<Vec<f64>>(), by_hand);
        screenshot(&c, "filtered").await;

        // The hostile event: its name and props are shown as text, and nothing runs.
        c.goto(&format!("{origin}/{SITE}")).await.unwrap();
        ready(&c).await;
        let goal = format!(
            "[data-testid='panel-goals'] [data-testid='row'][data-value={}] .row-pick",
            serde_json::to_string(XSS_NAME).unwrap()
        );
        click(&c, &goal).await;
        ready(&c).await;
        wait_until(&c, &format!("document.body.innerText.includes({})", json!(XSS_VALUE))).await;
        let text = c.execute("return document.body.innerText", vec![]).await.unwrap();
        let text = text.as_str().unwrap();
        assert!(text.contains(XSS_NAME) && text.contains(XSS_PROP), "shown as text");
        nothing_ran(&c).await;
        screenshot(&c, "props").await;

        // Logging out ends the session: the dashboard asks to log in again.
        c.find(Locator::Css("[data-testid='logout']")).await.unwrap().click().await.unwrap();
        c.wait().for_element(Locator::Css("[data-testid='login-username']")).await.unwrap();
        c.goto(&format!("{origin}/{SITE}")).await.unwrap();
        c.wait().for_element(Locator::Css("[data-testid='login-username']")).await.unwrap();

        // The share link shows the same numbers without a login, and nothing to change.
        c.goto(&format!("{origin}{share}")).await.unwrap();
        c.wait().for_element(Locator::Css("[data-testid='card-visitors']")).await.unwrap();
        ready(&c).await;
        assert_eq!(cards(&c).await, expected, "cards through the share link");
        let controls = c
            .execute(
                "return document.querySelectorAll(\"[data-testid='logout'], [data-testid='login-submit']\").length",
                vec![],
            )
            .await
            .unwrap();
        assert_eq!(controls, json!(0), "a share link has no account controls");
        let denied = c
            .execute_async(
                &format!(
                    "const done = arguments[0]; fetch('/api/sites/{SITE}/shares', {{method: 'POST', \
                     headers: {{'Content-Type': 'application/json'}}, body: '{{}}'}}).then(r => done(r.status))"
                ),
                vec![],
            )
            .await
            .unwrap();
        assert!(matches!(denied.as_u64(), Some(401 | 403)), "a share link changes nothing: {denied}");
        screenshot(&c, "shared").await;
        c.close().await.unwrap();
    });
}
