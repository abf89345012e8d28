//! The tracker in a real browser: headless Chromium, driven through chromedriver, visits a test
//! site on localhost that includes `/js/footfall.js` from a running `footfall serve`, moves
//! between pages (a link and a single-page-app route change), clicks a tracked element, fires
//! a custom event queued before the script loaded, and closes the tab. The query API must then
//! count exactly those pageviews and events, in one session, with the browser's real browser
//! and OS; and the same visit with the headless browser's own user agent counts as a bot's.

mod support;

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::thread::sleep;
use std::time::Duration;

use fantoccini::Locator;
use footfall_testkit::ChromeDriver;
use serde_json::{Value, json};
use support::{Server, Workspace, browser, noon_timezone, wait_until};

const SITE: &str = "shop.test";

/// The test site's one page, served for every path (as a single-page app's server does). On
/// `/` it queues a custom event before the tracker loads, as the README's snippet does.
fn page(footfall: &str) -> String {
    format!(
        r#"<!doctype html>
<html><head><title>Shop</title>
<script>
window.footfall = window.footfall || function () {{ (window.footfall.q = window.footfall.q || []).push(arguments) }};
if (location.pathname === "/") footfall("signup", {{props: {{plan: "pro"}}}});
</script>
<script defer data-site="{SITE}" data-include-localhost src="http://{footfall}/js/footfall.js"></script>
</head><body>
<a id="products" href="/products">Products</a>
<button id="open" onclick="history.pushState({{}}, '', '/products/42')">Open a product</button>
<button id="buy" data-footfall-click="Add to cart"><span id="label">Add to cart</span></button>
</body></html>"#
    )
}

/// Serves [`page`] on a free port from a thread of its own; returns `host:port`.
fn serve_site(footfall: &str) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let body = page(footfall);
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            // The request line and headers; the page is the same whatever they say.
            let mut line = String::new();
            while reader.read_line(&mut line).is_ok_and(|n| n > 2) {
                line.clear();
            }
            let response = format!(
                "HTTP/1.1 200 OK\r\nContent-Type: text/html; charset=utf-8\r\n\
                 Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = stream.write_all(response.as_bytes());
        }
    });
    addr
}

fn breakdown(server: &Server, property: &str, metrics: &str) -> Vec<Value> {
    let path = format!(
        "/api/v1/stats/breakdown?site_id={SITE}&period=day&property={property}&metrics={metrics}"
    );
    server.wait_for(&path, None, |_| true)["results"].as_array().unwrap().clone()
}

/// Rows of a breakdown as (value, metric) pairs, sorted by value.
fn rows(results: &[Value], key: &str, metric: &str) -> Vec<(String, i64)> {
    let mut rows: Vec<(String, i64)> = results
        .iter()
        .map(|r| (r[key].as_str().unwrap().to_owned(), r[metric].as_i64().unwrap()))
        .collect();
    rows.sort();
    rows
}

#[test]
fn a_visit_in_a_real_browser_is_counted_exactly() {
    let ws = Workspace::new();
    ws.ok(&["site", "add", SITE, "--public", "--timezone", &noon_timezone()]);
    let server = Server::start(&ws);
    let site = serve_site(&server.addr);
    let driver = ChromeDriver::start();
    let runtime = tokio::runtime::Runtime::new().unwrap();

    let user_agent = runtime.block_on(async {
        // Headless Chromium says so in its user agent, and footfall rightly takes it for a bot.
        // A person's Chromium on the same machine says `Chrome` instead: the visit is made with
        // that, so that the browser and OS are what this machine's browser really reports.
        let probe = browser(&driver, None).await;
        let ua = probe.execute("return navigator.userAgent", vec![]).await.unwrap();
        probe.close().await.unwrap();
        let ua = ua.as_str().unwrap().to_owned();
        assert!(ua.contains("HeadlessChrome/"), "{ua}");
        ua.replace("HeadlessChrome/", "Chrome/")
    });

    runtime.block_on(async {
        let c = browser(&driver, Some(&user_agent)).await;
        c.goto(&format!("http://{site}/")).await.unwrap();
        wait_until(&c, "window.footfall && !window.footfall.q").await;
        // A link to another page, a route change without a page load, a tracked click whose
        // target is inside the marked element.
        c.find(Locator::Id("products")).await.unwrap().click().await.unwrap();
        wait_until(&c, "location.pathname === '/products' && !window.footfall.q").await;
        c.find(Locator::Id("open")).await.unwrap().click().await.unwrap();
        c.find(Locator::Id("label")).await.unwrap().click().await.unwrap();
        // Closing the tab sends what is buffered; another tab keeps the browser open to do it.
        let tracked = c.window().await.unwrap();
        let other = c.new_window(true).await.unwrap();
        c.switch_to_window(tracked).await.unwrap();
        c.close_window().await.unwrap();
        c.switch_to_window(other.handle).await.unwrap();
        sleep(Duration::from_millis(500));
        c.close().await.unwrap();
    });

    let aggregate = format!(
        "/api/v1/stats/aggregate?site_id={SITE}&period=day\
         &metrics=visitors,visits,pageviews,events,bounce_rate,bot_events,time_on_page,scroll_depth"
    );
    // Three pageviews and two custom events; engagement is counted apart.
    let totals = server.wait_for(&aggregate, None, |a| a["results"]["events"]["value"] == json!(5));
    let value = |m: &str| totals["results"][m]["value"].clone();
    assert_eq!(value("pageviews"), json!(3), "{totals}");
    assert_eq!(value("visitors"), json!(1), "{totals}");
    assert_eq!(value("visits"), json!(1), "{totals}");
    assert_eq!(value("bounce_rate"), json!(0), "{totals}");
    assert_eq!(value("bot_events"), json!(0), "{totals}");
    assert!(value("scroll_depth").as_i64().unwrap() > 0, "a page always shows its top: {totals}");

    let names = breakdown(&server, "event:name", "events");
    assert_eq!(
        rows(&names, "name", "events"),
        [("Add to cart".into(), 1), ("pageview".into(), 3), ("signup".into(), 1)]
    );
    // The signup was queued on /, the click made on /products/42.
    let pages = breakdown(&server, "event:page", "events");
    assert_eq!(
        rows(&pages, "page", "events"),
        [("/".into(), 2), ("/products".into(), 1), ("/products/42".into(), 2)],
    );
    let plans = breakdown(&server, "event:props:plan", "events");
    assert_eq!(rows(&plans, "plan", "events"), [("pro".into(), 1)]);
    let entry = breakdown(&server, "visit:entry_page", "visits");
    assert_eq!(rows(&entry, "entry_page", "visits"), [("/".into(), 1)]);
    let exit = breakdown(&server, "visit:exit_page", "visits");
    assert_eq!(rows(&exit, "exit_page", "visits"), [("/products/42".into(), 1)]);
    let browsers = breakdown(&server, "visit:browser", "visitors");
    assert_eq!(rows(&browsers, "browser", "visitors"), [("Chrome".into(), 1)]);
    let systems = breakdown(&server, "visit:os", "visitors");
    assert_eq!(rows(&systems, "os", "visitors"), [("Linux".into(), 1)]);
    let devices = breakdown(&server, "visit:device", "visitors");
    assert_eq!(rows(&devices, "device", "visitors"), [("Desktop".into(), 1)]);
    let channels = breakdown(&server, "visit:channel", "visits");
    assert_eq!(rows(&channels, "channel", "visits"), [("Direct".into(), 1)]);

    // The same page in the headless browser as it introduces itself: a bot's visit.
    runtime.block_on(async {
        let c = browser(&driver, None).await;
        c.goto(&format!("http://{site}/")).await.unwrap();
        wait_until(&c, "window.footfall && !window.footfall.q").await;
        c.close().await.unwrap();
    });
    let bots =
        server.wait_for(&aggregate, None, |a| a["results"]["bot_events"]["value"] != json!(0));
    assert_eq!(bots["results"]["pageviews"]["value"], json!(3), "{bots}");
    assert_eq!(bots["results"]["visitors"]["value"], json!(1), "{bots}");
}
