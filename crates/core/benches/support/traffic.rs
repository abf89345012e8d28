//! Deterministic, realistic traffic for the pipeline benchmarks and the session-memory example:
//! visitors with real-looking user agents and addresses browse two sites (in different
//! timezones) in sessions of one to eight pageviews, some with custom events, arriving from
//! search engines, social sites, other sites or nowhere, some with UTM tags.
//!
//! Everything comes from a seeded PRNG, so every run measures the same traffic.

use footfall_core::classify::agent::Agents;
use footfall_core::event::{Event, Traits};
use footfall_core::identity::Client;
use footfall_core::identity::Salts;
use footfall_core::ingest::{Clock, Incoming};
use footfall_core::site::Site;
use serde_json::{Map, Value, json};

/// Events per request body, as a tracker's batch arrives at the collector.
pub const REQUEST_EVENTS: usize = 50;

/// 2026-11-22T06:00:00Z; sessions start over the following 18 hours, so local midnight passes
/// in Berlin but not in New York.
const SPAN_START_MS: i64 = 1_795_327_200_000;
const SPAN_MS: i64 = 18 * 3_600_000;
const MAX_SKEW_MS: i64 = 300_000;

/// SplitMix64: tiny, fast, and good enough to shape traffic.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n`.
    pub fn below(&mut self, n: usize) -> usize {
        (((self.next_u64() >> 32) * n as u64) >> 32) as usize
    }

    /// Uniform in `[0, 1)`.
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    pub fn chance(&mut self, p: f64) -> bool {
        self.unit() < p
    }

    /// Uniform in `lo..hi`.
    pub fn range(&mut self, lo: i64, hi: i64) -> i64 {
        lo + self.below((hi - lo) as usize) as i64
    }

    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }

    /// Skewed towards the front, as page popularity is: a few pages get most views.
    pub fn popular<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        let u = self.unit();
        &items[((u * u * u) * items.len() as f64) as usize]
    }
}

/// The requester of an event: what the collector sees besides the body.
#[derive(Clone)]
pub struct Peer {
    pub ip: String,
    pub ua: String,
}

impl Traffic {
    /// Derives a peer's event as the collector does: its user agent classified (cached), its
    /// identity hashed.
    pub fn identify(&self, incoming: Incoming, peer: &Peer) -> Event {
        let site = self.site(&incoming.site);
        let traits = Traits::of_agent(&self.agents.classify(&peer.ua));
        incoming.into_event(site, &mut Client::new(&self.salts, &peer.ip, &peer.ua), &traits)
    }
}

/// One request to `/api/track`: a JSON array of events from many visitors, in time order.
pub struct Request {
    pub body: Vec<u8>,
    pub clock: Clock,
    /// The requester of each event, by index into [`Traffic::peers`].
    pub peers: Vec<usize>,
}

pub struct Traffic {
    pub sites: Vec<Site>,
    pub salts: Salts,
    pub peers: Vec<Peer>,
    pub requests: Vec<Request>,
    pub events: usize,
    /// Classifies the peers' user agents, as the collector's cache does.
    pub agents: Agents,
}

/// The shape of each visitor's traffic.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    /// One to three sessions of one to eight pageviews, with custom events.
    Browsing,
    /// One landing pageview, all within a few minutes, so that every visitor has a live session.
    Landings,
}

struct SiteSpec {
    domain: &'static str,
    timezone: &'static str,
    pages: Vec<String>,
    events: CustomEvents,
}

/// Custom events by name, with each property's name and possible values.
type CustomEvents = &'static [(&'static str, &'static [(&'static str, &'static [&'static str])])];

const SHOP_EVENTS: CustomEvents = &[
    ("add_to_cart", &[("product", &["mug", "tee", "hoodie", "poster", "stickers"])]),
    ("signup", &[("plan", &["free", "pro", "team"]), ("method", &["email", "google"])]),
    ("checkout", &[("items", &["1", "2", "3", "5"])]),
];

const BLOG_EVENTS: CustomEvents = &[
    (
        "outbound_link",
        &[("url", &["https://github.com/", "https://docs.rs/", "https://crates.io/"])],
    ),
    ("newsletter", &[("position", &["footer", "inline"])]),
    ("download", &[("file", &["slides.pdf", "dataset.csv"]), ("format", &["pdf", "csv"])]),
];

const WORDS: &[&str] = &[
    "rust",
    "async",
    "memory",
    "latency",
    "tokio",
    "sqlite",
    "postgres",
    "caching",
    "privacy",
    "analytics",
    "timezones",
    "hashing",
    "benchmarks",
    "profiling",
    "compilers",
    "networking",
    "unicode",
    "testing",
    "deploy",
    "kubernetes",
    "nginx",
    "linux",
    "cooking",
    "travel",
    "café",
];

fn site_specs() -> Vec<SiteSpec> {
    let mut rng = Rng::new(7);
    let mut slug = |n: usize| -> Vec<String> {
        (0..n)
            .map(|i| {
                let words = 2 + rng.below(4);
                let mut s: Vec<&str> = (0..words).map(|_| *rng.pick(WORDS)).collect();
                s.dedup();
                format!("{}-{i}", s.join("-"))
            })
            .collect()
    };
    let mut shop: Vec<String> =
        ["/", "/products", "/cart", "/checkout", "/pricing", "/about"].map(str::to_owned).to_vec();
    shop.extend(slug(200).into_iter().map(|s| format!("/products/{s}")));
    shop.extend(slug(40).into_iter().map(|s| format!("/journal/{s}/")));
    let mut blog: Vec<String> =
        ["/", "/archive", "/about", "/tags/rust", "/tags/linux"].map(str::to_owned).to_vec();
    blog.extend(slug(300).into_iter().map(|s| format!("/posts/2026/{s}/")));
    vec![
        SiteSpec {
            domain: "shop.example",
            timezone: "Europe/Berlin",
            pages: shop,
            events: SHOP_EVENTS,
        },
        SiteSpec {
            domain: "blog.example",
            timezone: "America/New_York",
            pages: blog,
            events: BLOG_EVENTS,
        },
    ]
}

const SEARCH: &[&str] = &[
    "https://www.google.com/",
    "https://www.google.de/",
    "https://www.bing.com/",
    "https://duckduckgo.com/",
    "https://search.brave.com/",
    "https://www.ecosia.org/",
];

const SOCIAL: &[&str] = &[
    "https://t.co/x7Zq1Lp0aB",
    "https://www.facebook.com/",
    "https://l.facebook.com/l.php?u=https%3A%2F%2Fexample",
    "https://www.reddit.com/r/rust/comments/1abc23/",
    "https://old.reddit.com/r/programming/",
    "https://news.ycombinator.com/item?id=41234567",
    "https://www.linkedin.com/",
    "https://mastodon.social/@someone/1123581321",
    "android-app://com.google.android.gm/",
];

const OTHER: &[&str] = &[
    "https://lobste.rs/s/abc123/some_story",
    "https://github.com/someone/project",
    "https://dev.to/someone/a-post-4k2j",
    "https://www.producthunt.com/posts/thing",
    "https://blog.someone.net/2026/11/links/",
    "https://stackoverflow.com/questions/1234567/how",
];

const UTM: &[&str] = &[
    "utm_source=newsletter&utm_medium=email&utm_campaign=nov_sale",
    "utm_source=newsletter&utm_medium=email&utm_campaign=weekly-47",
    "utm_source=google&utm_medium=cpc&utm_campaign=brand",
    "utm_source=twitter&utm_medium=social",
    "utm_campaign=black%20friday&utm_source=partner",
    "ref=producthunt",
    "gclid=Cj0KCQiA3ZfLBhDMARIsAFnx",
];

const SCREENS: &[u32] = &[360, 390, 414, 768, 1024, 1280, 1366, 1440, 1536, 1920, 2560];

/// Used when the uap-core test corpus is not checked out next to the workspace.
const FALLBACK_UAS: &[&str] = &[
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/130.0.0.0 Safari/537.36 Edg/130.0.0.0",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:132.0) Gecko/20100101 Firefox/132.0",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Safari/605.1.15",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 14.7; rv:132.0) Gecko/20100101 Firefox/132.0",
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36",
    "Mozilla/5.0 (X11; Ubuntu; Linux x86_64; rv:132.0) Gecko/20100101 Firefox/132.0",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Mobile/15E148 Safari/604.1",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_6_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.6 Mobile/15E148 Safari/604.1",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 18_0 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) CriOS/131.0.6778.73 Mobile/15E148 Safari/604.1",
    "Mozilla/5.0 (iPad; CPU OS 17_7 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.7 Mobile/15E148 Safari/604.1",
    "Mozilla/5.0 (Linux; Android 10; K) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Mobile Safari/537.36",
    "Mozilla/5.0 (Linux; Android 14; SM-S918B) AppleWebKit/537.36 (KHTML, like Gecko) SamsungBrowser/26.0 Chrome/122.0.0.0 Mobile Safari/537.36",
    "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/130.0.6723.107 Mobile Safari/537.36",
    "Mozilla/5.0 (Android 14; Mobile; rv:132.0) Gecko/132.0 Firefox/132.0",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36 OPR/114.0.0.0",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/129.0.0.0 YaBrowser/24.10.0.0 Safari/537.36",
    "Mozilla/5.0 (Windows NT 6.1; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/109.0.0.0 Safari/537.36",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36 Edg/131.0.0.0",
    "Mozilla/5.0 (Linux; Android 13; SM-A536B) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Mobile Safari/537.36",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Mobile/15E148 [FBAN/FBIOS;FBAV/489.0.0.39.107;]",
    "Mozilla/5.0 (X11; CrOS x86_64 14541.0.0) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36",
    "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
];

/// How many distinct user agents the visitors share.
const UA_COUNT: usize = 48;

/// Real browser user agents from uap-core's test corpus, when it is checked out next to the
/// workspace (`../shared/data/user-agents`), else the built-in list.
pub fn user_agents() -> Vec<String> {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../../shared/data/user-agents/uap-core/test_ua.yaml"
    );
    let Ok(text) = std::fs::read_to_string(path) else {
        return FALLBACK_UAS.iter().map(|s| s.to_string()).collect();
    };
    let all: Vec<String> = text
        .lines()
        .filter_map(|l| l.trim().strip_prefix("- user_agent_string: '")?.strip_suffix('\''))
        .map(|s| s.replace("''", "'"))
        .filter(|s| s.starts_with("Mozilla/5.0 (") && !s.to_ascii_lowercase().contains("bot"))
        .collect();
    if all.len() < UA_COUNT {
        return FALLBACK_UAS.iter().map(|s| s.to_string()).collect();
    }
    // Evenly spaced through the corpus, which is grouped by browser family.
    (0..UA_COUNT).map(|i| all[i * all.len() / UA_COUNT].clone()).collect()
}

fn ip(rng: &mut Rng) -> String {
    if rng.chance(0.2) {
        format!(
            "2001:db8:{:x}:{:x}::{:x}",
            rng.below(0x10000),
            rng.below(0x10000),
            rng.below(0x10000)
        )
    } else {
        format!(
            "{}.{}.{}.{}",
            1 + rng.below(223),
            rng.below(256),
            rng.below(256),
            1 + rng.below(254)
        )
    }
}

/// A path as a browser's `location.href` has it: non-ASCII characters percent-encoded.
fn href(path: &str) -> String {
    let mut out = String::with_capacity(path.len());
    for b in path.bytes() {
        if b.is_ascii() {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Where a session comes from: the referrer of its landing page, and a query for its URL.
fn landing(rng: &mut Rng) -> (Option<&'static str>, Option<&'static str>) {
    let u = rng.unit();
    let referrer = if u < 0.40 {
        None
    } else if u < 0.70 {
        Some(*rng.pick(SEARCH))
    } else if u < 0.90 {
        Some(*rng.pick(SOCIAL))
    } else {
        Some(*rng.pick(OTHER))
    };
    let query = rng.chance(0.15).then(|| *rng.pick(UTM));
    (referrer, query)
}

/// One event as the browser tracker sends it.
struct Raw {
    ts: i64,
    peer: usize,
    json: Value,
}

fn event(site: &str, name: &str, url: &str, referrer: Option<&str>, ts: i64, width: u32) -> Value {
    let mut obj = Map::new();
    obj.insert("site".into(), json!(site));
    obj.insert("name".into(), json!(name));
    obj.insert("url".into(), json!(url));
    if let Some(r) = referrer {
        obj.insert("referrer".into(), json!(r));
    }
    obj.insert("ts".into(), json!(ts));
    obj.insert("screen_width".into(), json!(width));
    Value::Object(obj)
}

impl Traffic {
    pub fn generate(visitors: usize, shape: Shape) -> Traffic {
        let specs = site_specs();
        let uas = user_agents();
        let mut rng = Rng::new(0xF007_FA11);
        let mut raw = Vec::new();
        let mut peers = Vec::with_capacity(visitors);
        for _ in 0..visitors {
            let peer = peers.len();
            peers.push(Peer { ip: ip(&mut rng), ua: rng.popular(&uas).clone() });
            // Two thirds of the traffic goes to the shop.
            let spec = &specs[usize::from(rng.chance(0.34))];
            let width = *rng.pick(SCREENS);
            let sessions = match (shape, rng.unit()) {
                (Shape::Landings, _) => 1,
                (_, u) if u < 0.70 => 1,
                (_, u) if u < 0.95 => 2,
                _ => 3,
            };
            for _ in 0..sessions {
                let mut ts = match shape {
                    Shape::Browsing => SPAN_START_MS + rng.range(0, SPAN_MS),
                    Shape::Landings => SPAN_START_MS + rng.range(0, 5 * 60_000),
                };
                let pageviews = match shape {
                    Shape::Landings => 1,
                    // About 40% bounce; the rest read on, some for a while.
                    Shape::Browsing => match rng.unit() {
                        u if u < 0.40 => 1,
                        u if u < 0.60 => 2,
                        u if u < 0.72 => 3,
                        _ => 4 + rng.below(5),
                    },
                };
                let (mut referrer, query) = landing(&mut rng);
                let mut previous_url: Option<String> = None;
                for n in 0..pageviews {
                    let page = href(rng.popular(&spec.pages).as_str());
                    let url = match (n, query) {
                        (0, Some(q)) => format!("https://{}{page}?{q}", spec.domain),
                        _ if rng.chance(0.05) => format!("https://{}{page}#top", spec.domain),
                        _ => format!("https://{}{page}", spec.domain),
                    };
                    if let Some(prev) = &previous_url {
                        // Seconds to minutes of reading; the referrer is the previous page.
                        ts += (1000.0 * 3.0 * 80f64.powf(rng.unit())) as i64;
                        referrer = None;
                        raw.push(Raw {
                            ts,
                            peer,
                            json: event(spec.domain, "pageview", &url, Some(prev), ts, width),
                        });
                    } else {
                        raw.push(Raw {
                            ts,
                            peer,
                            json: event(spec.domain, "pageview", &url, referrer, ts, width),
                        });
                    }
                    if shape == Shape::Browsing && rng.chance(0.12) {
                        let (name, props) = rng.pick(spec.events);
                        let mut e = event(spec.domain, name, &url, referrer, ts, width);
                        let props: Map<String, Value> = props
                            .iter()
                            .map(|(k, values)| (k.to_string(), json!(rng.pick(values))))
                            .collect();
                        let at = ts + rng.range(1000, 20_000);
                        e["props"] = Value::Object(props);
                        e["ts"] = json!(at);
                        raw.push(Raw { ts: at, peer, json: e });
                    }
                    previous_url = Some(url);
                }
            }
        }
        raw.sort_by_key(|r| r.ts);
        // Whole requests only, so every benchmark iteration has the same number of events.
        raw.truncate(raw.len() / REQUEST_EVENTS * REQUEST_EVENTS);
        let requests: Vec<Request> = raw
            .chunks(REQUEST_EVENTS)
            .map(|chunk| {
                let body = Value::Array(chunk.iter().map(|r| r.json.clone()).collect());
                let now_ms = chunk.iter().map(|r| r.json["ts"].as_i64().unwrap()).max().unwrap();
                Request {
                    body: serde_json::to_vec(&body).unwrap(),
                    clock: Clock { now_ms, max_skew_ms: MAX_SKEW_MS },
                    peers: chunk.iter().map(|r| r.peer).collect(),
                }
            })
            .collect();
        let sites = specs
            .iter()
            .map(|s| Site::new(s.domain, s.timezone, false).expect("valid site"))
            .collect();
        // Steady state: yesterday's salt is still kept, so each visitor is hashed twice.
        let mut salts = Salts::new(SPAN_START_MS - 86_400_000, [0x5a; 64]);
        salts.rotate(SPAN_START_MS, [0xa5; 32]);
        Traffic { sites, salts, peers, events: raw.len(), requests, agents: Agents::new() }
    }

    pub fn site(&self, domain: &str) -> &Site {
        self.sites.iter().find(|s| s.domain == domain).expect("registered site")
    }
}
