//! Made-up but realistic traffic for the demo site that `footfall serve --demo` feeds: who
//! visits and when, where they come from, on what device, from which country, and what they do
//! there, as the tracker would report it.
//!
//! Visits arrive as a Poisson process: at a constant rate for the live feed, and for the history
//! at a rate that follows the hour of the day and the day of the week and grows slowly, so that
//! charts over days and weeks have a shape. A visit sees one page ([`Params::bounce_rate`]) or
//! walks the site's links for a few, staying seconds to minutes on each, with an `engagement`
//! report as each page is left and now and then a custom event (`Signup`, `Add to cart`,
//! `Outbound Link: Click`). Some visitors come back later the same day.
//!
//! Pure and seeded: the same seed and start time give the same traffic. Each [`Hit`] is an event
//! as the collector decodes it from the tracker's request ([`Incoming`]) and the client that sent
//! it, which the server identifies and classifies as it does a request's.

use std::cmp::{Ordering, Reverse};
use std::collections::BinaryHeap;
use std::sync::Arc;

use rand::rngs::Xoshiro256PlusPlus;
use rand::{RngExt, SeedableRng};

use crate::event::{ENGAGEMENT, PAGEVIEW};
use crate::ingest::Incoming;

/// The demo site's domain.
pub const SITE: &str = "demo.footfall.example";

const HOUR_MS: i64 = 3_600_000;
const DAY_MS: i64 = 24 * HOUR_MS;

/// Most pages one visit sees.
pub const MAX_PAGES: usize = 8;

/// What the traffic is like.
#[derive(Clone, Debug)]
pub struct Params {
    /// Mean time between the starts of two live visits, ms.
    pub live_interval_ms: f64,
    /// Days of history before the start.
    pub history_days: i64,
    /// Visits on an average day at the beginning of the history.
    pub daily_visits: f64,
    /// How much busier the end of the history is than its beginning (0.4: 40 % more).
    pub growth: f64,
    /// Share of visits that see one page only.
    pub bounce_rate: f64,
    /// From the second page on, the chance of seeing one more.
    pub next_page: f64,
    /// Share of visitors who come back for a second visit later the same (UTC) day.
    pub return_rate: f64,
}

impl Default for Params {
    fn default() -> Params {
        Params {
            // About 4,300 visits a day: lively on the dashboard, though several times the
            // history's pace, which a start-up must write (and a restart reopen) in seconds.
            live_interval_ms: 20_000.0,
            history_days: 30,
            daily_visits: 400.0,
            growth: 0.4,
            bounce_rate: 0.45,
            next_page: 0.6,
            return_rate: 0.12,
        }
    }
}

/// Who sends a hit: what the server learns of a client from its request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Visitor {
    /// A made-up IPv4 address; with the user agent, it identifies the visitor as a real one
    /// would.
    pub ip: String,
    pub user_agent: &'static str,
    pub screen_width: u32,
    /// ISO 3166-1 alpha-2 code, as a trusted proxy's country header gives it.
    pub country: &'static str,
    /// ISO 3166-2 subdivision code, as a GeoIP database gives it.
    pub region: &'static str,
    pub city: &'static str,
}

/// One event of the traffic.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Hit {
    pub visitor: Arc<Visitor>,
    /// The event as the collector decodes it from the tracker's request; `ts` is when it
    /// happens.
    pub event: Incoming,
}

/// The demo site's traffic: its history, then live visits as time goes by.
pub struct Traffic {
    params: Params,
    site: Arc<str>,
    rng: Xoshiro256PlusPlus,
    /// When the live traffic begins, and the history ends (Unix ms).
    start: i64,
    /// When the next live visit starts (Unix ms, fractional so that short intervals keep
    /// their mean).
    next_visit: f64,
    /// Hits made but not yet due, earliest first.
    pending: BinaryHeap<Reverse<Pending>>,
    /// Numbers hits in the order they were made, which orders hits at the same millisecond.
    made: u64,
}

impl Traffic {
    /// Traffic whose live visits begin at `start_ms`.
    pub fn new(params: Params, seed: u64, start_ms: i64) -> Traffic {
        Traffic {
            params,
            site: SITE.into(),
            rng: Xoshiro256PlusPlus::seed_from_u64(seed),
            start: start_ms,
            // The first live visit comes at once, so that a newcomer sees someone on the site.
            next_visit: start_ms as f64,
            pending: BinaryHeap::new(),
            made: 0,
        }
    }

    /// The hits of the visits that started in the [`Params::history_days`] before the start,
    /// in time order, up to the start. Their later hits (visits going on, visitors coming back)
    /// come from [`Traffic::due`]. Call it once, before the first [`Traffic::due`].
    pub fn history(&mut self) -> Vec<Hit> {
        let from = self.start - self.params.history_days * DAY_MS;
        let peak = self.peak_rate();
        let mut made = Vec::new();
        let mut t = from as f64;
        // Thinning: candidates at the peak rate, each kept with the rate at its time.
        loop {
            t += self.exponential(1.0 / peak);
            if t >= self.start as f64 {
                break;
            }
            if self.rng.random::<f64>() * peak < self.history_rate(t as i64) {
                self.arrival(t as i64, &mut made);
            }
        }
        let (mut past, future): (Vec<Pending>, Vec<Pending>) =
            made.into_iter().partition(|p| p.hit.event.ts < self.start);
        self.pending.extend(future.into_iter().map(Reverse));
        past.sort_unstable();
        past.into_iter().map(|p| p.hit).collect()
    }

    /// When the next hit is due (Unix ms).
    pub fn next_due(&self) -> i64 {
        let visit = self.next_visit.ceil() as i64;
        self.pending.peek().map_or(visit, |Reverse(p)| visit.min(p.hit.event.ts))
    }

    /// The hits due by `now_ms` and not yet taken, in time order; starts the live visits that
    /// arrived by then.
    pub fn due(&mut self, now_ms: i64) -> Vec<Hit> {
        while self.next_visit <= now_ms as f64 {
            let mut made = Vec::new();
            self.arrival(self.next_visit as i64, &mut made);
            self.pending.extend(made.into_iter().map(Reverse));
            self.next_visit += self.exponential(self.params.live_interval_ms);
        }
        let mut hits = Vec::new();
        while self.pending.peek().is_some_and(|Reverse(p)| p.hit.event.ts <= now_ms) {
            hits.push(self.pending.pop().expect("peeked").0.hit);
        }
        hits
    }

    /// A new visitor's visit at `start`, and perhaps their return later that day.
    fn arrival(&mut self, start: i64, out: &mut Vec<Pending>) {
        let visitor = Arc::new(self.visitor());
        let source = pick(&mut self.rng, SOURCES);
        let end = self.visit(start, &visitor, source, out);
        if self.rng.random_bool(self.params.return_rate) {
            let back = end + self.rng.random_range(HOUR_MS..6 * HOUR_MS);
            // The next day, the salt has rotated: it would be someone else.
            if back.div_euclid(DAY_MS) == start.div_euclid(DAY_MS) {
                self.visit(back, &visitor, &DIRECT, out);
            }
        }
    }

    /// One visit's hits; returns when it ends.
    fn visit(
        &mut self,
        start: i64,
        visitor: &Arc<Visitor>,
        source: &Source,
        out: &mut Vec<Pending>,
    ) -> i64 {
        let path = self.path(source);
        let site = self.site.clone();
        let mut t = start;
        for (i, page) in path.iter().enumerate() {
            let view = View {
                page: page.path,
                referrer: match i {
                    0 => source.referrer,
                    _ => Some((&site, path[i - 1].path)),
                },
                utm: if i == 0 { source.utm } else { None },
            };
            self.hit(visitor, &view, t, PAGEVIEW, Vec::new(), out);
            let dwell = self.dwell(page);
            // A custom event while the page is open.
            let mut custom = |traffic: &mut Traffic, name: &str, props: Vec<(String, String)>| {
                let at = t + (dwell as f64 * traffic.rng.random_range(0.2..0.9)) as i64;
                traffic.hit(visitor, &view, at, name, props, out);
            };
            if page.path == "/signup" && self.rng.random_bool(SIGNUP_SHARE) {
                let plan = pick(&mut self.rng, PLANS);
                custom(self, "Signup", vec![("plan".into(), (*plan).into())]);
            }
            let to_cart = path.get(i + 1).is_some_and(|next| next.path == "/cart");
            if let Some(product) = page.product
                && (to_cart || self.rng.random_bool(ADD_TO_CART_SHARE))
            {
                custom(self, "Add to cart", vec![("product".into(), product.into())]);
            }
            if i + 1 == path.len() && self.rng.random_bool(OUTBOUND_SHARE) {
                let url = pick(&mut self.rng, OUTBOUND);
                custom(self, "Outbound Link: Click", vec![("url".into(), (*url).into())]);
            }
            // The tracker reports the visible time and how far down was seen as the page is
            // left; the next page loads a moment later.
            let scroll = self.rng.random_range(20..=100u32);
            let props =
                vec![("time".into(), dwell.to_string()), ("scroll".into(), scroll.to_string())];
            self.hit(visitor, &view, t + dwell, ENGAGEMENT, props, out);
            t += dwell + self.rng.random_range(150..900);
        }
        t
    }

    /// The pages a visit from `source` sees, in order.
    fn path(&mut self, source: &Source) -> Vec<&'static Page> {
        let pages = if self.rng.random_bool(self.params.bounce_rate) {
            1
        } else {
            let mut n = 2;
            while n < MAX_PAGES && self.rng.random_bool(self.params.next_page) {
                n += 1;
            }
            n
        };
        let mut path = vec![page(pick::<&str>(&mut self.rng, source.landings))];
        while path.len() < pages {
            let here = path[path.len() - 1];
            path.push(page(pick::<&str>(&mut self.rng, here.links)));
        }
        path
    }

    /// How long a page stays open, ms: a few seconds to some minutes, longer for reading.
    fn dwell(&mut self, page: &Page) -> i64 {
        let mean = if page.reading { 70_000.0 } else { 25_000.0 };
        3_000 + self.exponential(mean).min(10.0 * 60_000.0) as i64
    }

    fn hit(
        &mut self,
        visitor: &Arc<Visitor>,
        view: &View,
        ts: i64,
        name: &str,
        props: Vec<(String, String)>,
        out: &mut Vec<Pending>,
    ) {
        let (utm_source, utm_medium, utm_campaign) = match view.utm {
            Some((source, medium, campaign)) => {
                (Some(source.into()), Some(medium.into()), Some(campaign.into()))
            }
            None => (None, None, None),
        };
        let event = Incoming {
            site: self.site.clone(),
            name: name.into(),
            ts,
            page: view.page.into(),
            utm_source,
            utm_medium,
            utm_campaign,
            utm_term: None,
            utm_content: None,
            // As the collector keeps `document.referrer`: host and path, no scheme.
            referrer: view.referrer.map(|(host, path)| [host, path].concat()),
            referrer_host: view.referrer.map(|(host, _)| host.into()),
            props,
            screen_width: Some(visitor.screen_width),
            session_id: None,
            user_id: None,
        };
        self.made += 1;
        out.push(Pending { made: self.made, hit: Hit { visitor: visitor.clone(), event } });
    }

    fn visitor(&mut self) -> Visitor {
        let agent = pick(&mut self.rng, AGENTS);
        let widths = match agent.kind {
            Kind::Desktop => &[1280, 1366, 1440, 1536, 1920, 2560][..],
            Kind::Phone => &[360, 375, 390, 393, 412, 430],
            Kind::Tablet => &[768, 810, 820, 1024],
        };
        let country = pick(&mut self.rng, COUNTRIES);
        let &(region, city) = pick(&mut self.rng, country.places);
        let [a, b, c, d] = self.rng.random::<[u8; 4]>();
        Visitor {
            ip: format!("{a}.{b}.{c}.{d}"),
            user_agent: agent.user_agent,
            screen_width: widths[self.rng.random_range(0..widths.len())],
            country: country.code,
            region,
            city,
        }
    }

    /// Visits per ms of the history at `ts`.
    fn history_rate(&self, ts: i64) -> f64 {
        let from = self.start - self.params.history_days * DAY_MS;
        let progress = (ts - from) as f64 / (self.start - from) as f64;
        let trend = 1.0 + self.params.growth * progress;
        let hour = ts.div_euclid(HOUR_MS).rem_euclid(24) as usize;
        // 1970-01-01 was a Thursday.
        let weekday = (ts.div_euclid(DAY_MS) + 3).rem_euclid(7) as usize;
        self.params.daily_visits * trend * relative(&HOURLY, hour) * relative(&WEEKLY, weekday)
            / DAY_MS as f64
    }

    /// The highest [`Traffic::history_rate`].
    fn peak_rate(&self) -> f64 {
        let busiest =
            |weights: &[f64]| (0..weights.len()).map(|i| relative(weights, i)).fold(0.0, f64::max);
        self.params.daily_visits * (1.0 + self.params.growth) * busiest(&HOURLY) * busiest(&WEEKLY)
            / DAY_MS as f64
    }

    /// An exponentially distributed time with this mean: the gap between Poisson arrivals.
    fn exponential(&mut self, mean: f64) -> f64 {
        // 1 − U is in (0, 1], so the logarithm is finite.
        -mean * (1.0 - self.rng.random::<f64>()).ln()
    }
}

/// A hit made but not yet given out, ordered by time, then by when it was made.
struct Pending {
    made: u64,
    hit: Hit,
}

impl Pending {
    fn key(&self) -> (i64, u64) {
        (self.hit.event.ts, self.made)
    }
}

impl PartialEq for Pending {
    fn eq(&self, other: &Pending) -> bool {
        self.key() == other.key()
    }
}

impl Eq for Pending {}

impl PartialOrd for Pending {
    fn partial_cmp(&self, other: &Pending) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Pending {
    fn cmp(&self, other: &Pending) -> Ordering {
        self.key().cmp(&other.key())
    }
}

/// A page as one pageview saw it: what its events carry.
struct View<'a> {
    page: &'static str,
    /// `document.referrer`: host (without `www.`) and path.
    referrer: Option<(&'a str, &'static str)>,
    /// `utm_source`, `utm_medium` and `utm_campaign` of its URL.
    utm: Option<(&'static str, &'static str, &'static str)>,
}

/// A weighted choice.
fn pick<'a, T>(rng: &mut Xoshiro256PlusPlus, items: &'a [(T, u32)]) -> &'a T {
    let total: u32 = items.iter().map(|(_, w)| w).sum();
    let mut at = rng.random_range(0..total);
    for (item, weight) in items {
        if at < *weight {
            return item;
        }
        at -= weight;
    }
    unreachable!("`at` is below the total weight")
}

/// Weight `i` relative to the mean weight.
fn relative(weights: &[f64], i: usize) -> f64 {
    weights[i] * weights.len() as f64 / weights.iter().sum::<f64>()
}

/// Visits by UTC hour: visitors from Europe and the Americas, quiet at night in both.
const HOURLY: [f64; 24] = [
    0.55, 0.45, 0.38, 0.32, 0.30, 0.32, 0.42, 0.58, 0.78, 0.95, 1.05, 1.12, 1.20, 1.30, 1.42, 1.50,
    1.50, 1.42, 1.30, 1.18, 1.05, 0.92, 0.78, 0.65,
];

/// Visits by weekday, Monday first: a site for work, quieter at weekends.
const WEEKLY: [f64; 7] = [1.08, 1.12, 1.10, 1.06, 0.98, 0.72, 0.68];

/// Share of visits to `/signup` that sign up.
const SIGNUP_SHARE: f64 = 0.5;
/// Share of product page views that add the product to the cart without going to it.
const ADD_TO_CART_SHARE: f64 = 0.15;
/// Share of visits that leave through a link to another site.
const OUTBOUND_SHARE: f64 = 0.1;

const PLANS: &[(&str, u32)] = &[("free", 60), ("pro", 30), ("team", 10)];

const OUTBOUND: &[(&str, u32)] = &[
    ("https://github.com/footfall-demo/examples", 5),
    ("https://x.com/footfall_demo", 3),
    ("https://discord.gg/footfall-demo", 2),
];

/// A page of the demo site.
struct Page {
    path: &'static str,
    /// Read rather than glanced at: visitors stay longer.
    reading: bool,
    /// The product it shows, for `Add to cart`.
    product: Option<&'static str>,
    /// Where visitors go next from it.
    links: &'static [(&'static str, u32)],
}

const fn page_of(
    path: &'static str,
    reading: bool,
    product: Option<&'static str>,
    links: &'static [(&'static str, u32)],
) -> Page {
    Page { path, reading, product, links }
}

/// A small shop and SaaS: marketing pages, a blog, docs, three products and a checkout.
static PAGES: &[Page] = &[
    page_of(
        "/",
        false,
        None,
        &[
            ("/pricing", 25),
            ("/features", 15),
            ("/products", 15),
            ("/blog", 10),
            ("/docs", 10),
            ("/signup", 8),
            ("/about", 4),
        ],
    ),
    page_of(
        "/features",
        false,
        None,
        &[("/pricing", 40), ("/signup", 20), ("/docs", 15), ("/", 10)],
    ),
    page_of(
        "/pricing",
        false,
        None,
        &[("/signup", 45), ("/features", 15), ("/docs", 10), ("/", 10), ("/about", 5)],
    ),
    page_of("/about", false, None, &[("/", 20), ("/pricing", 20), ("/blog", 10)]),
    page_of("/signup", false, None, &[("/docs/getting-started", 50), ("/pricing", 20), ("/", 10)]),
    page_of(
        "/blog",
        false,
        None,
        &[
            ("/blog/privacy-first-analytics", 30),
            ("/blog/launch-week", 25),
            ("/blog/sessions-explained", 20),
            ("/", 10),
        ],
    ),
    page_of(
        "/blog/privacy-first-analytics",
        true,
        None,
        &[("/pricing", 20), ("/blog", 20), ("/features", 15), ("/", 10), ("/signup", 10)],
    ),
    page_of(
        "/blog/launch-week",
        true,
        None,
        &[("/pricing", 20), ("/blog", 20), ("/products", 10), ("/", 10)],
    ),
    page_of(
        "/blog/sessions-explained",
        true,
        None,
        &[("/docs", 20), ("/blog", 20), ("/pricing", 10)],
    ),
    page_of(
        "/docs",
        false,
        None,
        &[
            ("/docs/getting-started", 40),
            ("/docs/tracker", 25),
            ("/docs/api", 25),
            ("/pricing", 10),
        ],
    ),
    page_of(
        "/docs/getting-started",
        true,
        None,
        &[("/docs/tracker", 30), ("/docs/api", 20), ("/signup", 20), ("/pricing", 10)],
    ),
    page_of(
        "/docs/tracker",
        true,
        None,
        &[("/docs/api", 30), ("/docs/getting-started", 20), ("/pricing", 10)],
    ),
    page_of(
        "/docs/api",
        true,
        None,
        &[("/docs/tracker", 20), ("/docs", 20), ("/pricing", 15), ("/signup", 10)],
    ),
    page_of(
        "/products",
        false,
        None,
        &[("/products/hoodie", 30), ("/products/mug", 30), ("/products/stickers", 25), ("/", 5)],
    ),
    page_of(
        "/products/hoodie",
        false,
        Some("Hoodie"),
        &[("/cart", 30), ("/products", 30), ("/products/mug", 15), ("/products/stickers", 10)],
    ),
    page_of(
        "/products/mug",
        false,
        Some("Mug"),
        &[("/cart", 30), ("/products", 30), ("/products/hoodie", 15), ("/products/stickers", 10)],
    ),
    page_of(
        "/products/stickers",
        false,
        Some("Sticker pack"),
        &[("/cart", 35), ("/products", 30), ("/products/hoodie", 15), ("/products/mug", 10)],
    ),
    page_of("/cart", false, None, &[("/checkout", 55), ("/products", 30), ("/", 5)]),
    page_of("/checkout", false, None, &[("/products", 10), ("/", 5), ("/docs/getting-started", 5)]),
];

fn page(path: &str) -> &'static Page {
    PAGES.iter().find(|p| p.path == path).expect("every link names a page of PAGES")
}

/// Where a visit comes from.
struct Source {
    /// `document.referrer` of the landing page: host (without `www.`) and path.
    referrer: Option<(&'static str, &'static str)>,
    /// `utm_source`, `utm_medium` and `utm_campaign` of the landing URL.
    utm: Option<(&'static str, &'static str, &'static str)>,
    /// Where its visitors land.
    landings: &'static [(&'static str, u32)],
}

const fn source(
    referrer: Option<(&'static str, &'static str)>,
    utm: Option<(&'static str, &'static str, &'static str)>,
    landings: &'static [(&'static str, u32)],
) -> Source {
    Source { referrer, utm, landings }
}

/// Typed in, bookmarked, or from an app that sends no referrer; returning visitors too.
const DIRECT: Source = source(
    None,
    None,
    &[("/", 55), ("/pricing", 12), ("/docs", 10), ("/products", 10), ("/blog", 5), ("/signup", 3)],
);

const SEARCH: &[(&str, u32)] = &[
    ("/", 25),
    ("/blog/privacy-first-analytics", 18),
    ("/docs/getting-started", 14),
    ("/pricing", 12),
    ("/blog/sessions-explained", 10),
    ("/products/hoodie", 8),
    ("/features", 8),
    ("/docs/api", 5),
];

const SOCIAL: &[(&str, u32)] = &[("/blog/launch-week", 50), ("/", 30), ("/products", 20)];

const NEWSLETTER: &[(&str, u32)] =
    &[("/blog/launch-week", 55), ("/products", 25), ("/pricing", 20)];

static SOURCES: &[(Source, u32)] = &[
    (DIRECT, 30),
    (source(Some(("google.com", "")), None, SEARCH), 26),
    (source(Some(("bing.com", "")), None, SEARCH), 4),
    (source(Some(("duckduckgo.com", "")), None, SEARCH), 3),
    (source(Some(("t.co", "/k3RqLx9T2b")), None, SOCIAL), 5),
    (source(Some(("x.com", "")), None, SOCIAL), 2),
    (
        source(
            Some(("news.ycombinator.com", "")),
            None,
            &[("/blog/privacy-first-analytics", 60), ("/", 30), ("/blog/sessions-explained", 10)],
        ),
        5,
    ),
    (
        source(
            Some(("reddit.com", "/r/selfhosted")),
            None,
            &[("/blog/sessions-explained", 40), ("/blog/privacy-first-analytics", 30), ("/", 30)],
        ),
        4,
    ),
    (
        source(
            Some(("github.com", "/awesome-selfhosted/awesome-selfhosted")),
            None,
            &[("/docs", 40), ("/docs/getting-started", 35), ("/", 25)],
        ),
        4,
    ),
    (source(None, Some(("newsletter", "email", "spring-launch")), NEWSLETTER), 5),
    (source(None, Some(("newsletter", "email", "monthly-digest")), NEWSLETTER), 3),
];

/// What kind of screen a browser has.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Desktop,
    Phone,
    Tablet,
}

struct Agent {
    user_agent: &'static str,
    kind: Kind,
}

const fn agent(user_agent: &'static str, kind: Kind) -> Agent {
    Agent { user_agent, kind }
}

/// Browsers as they introduce themselves, weighted roughly by their share of the web.
static AGENTS: &[(Agent, u32)] = &[
    (
        agent(
            "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) \
             Chrome/131.0.0.0 Safari/537.36",
            Kind::Desktop,
        ),
        24,
    ),
    (
        agent(
            "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like \
             Gecko) Chrome/131.0.0.0 Safari/537.36",
            Kind::Desktop,
        ),
        12,
    ),
    (
        agent(
            "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like \
             Gecko) Version/17.6 Safari/605.1.15",
            Kind::Desktop,
        ),
        8,
    ),
    (
        agent(
            "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) \
             Chrome/131.0.0.0 Safari/537.36 Edg/131.0.0.0",
            Kind::Desktop,
        ),
        6,
    ),
    (
        agent(
            "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:133.0) Gecko/20100101 Firefox/133.0",
            Kind::Desktop,
        ),
        6,
    ),
    (
        agent(
            "Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0",
            Kind::Desktop,
        ),
        3,
    ),
    (
        agent(
            "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) \
             Chrome/131.0.0.0 Safari/537.36",
            Kind::Desktop,
        ),
        3,
    ),
    (
        agent(
            "Mozilla/5.0 (iPhone; CPU iPhone OS 17_6 like Mac OS X) AppleWebKit/605.1.15 (KHTML, \
             like Gecko) Version/17.6 Mobile/15E148 Safari/604.1",
            Kind::Phone,
        ),
        14,
    ),
    (
        agent(
            "Mozilla/5.0 (iPhone; CPU iPhone OS 17_6 like Mac OS X) AppleWebKit/605.1.15 (KHTML, \
             like Gecko) CriOS/131.0.6778.73 Mobile/15E148 Safari/604.1",
            Kind::Phone,
        ),
        3,
    ),
    (
        agent(
            "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) \
             Chrome/131.0.6778.104 Mobile Safari/537.36",
            Kind::Phone,
        ),
        8,
    ),
    (
        agent(
            "Mozilla/5.0 (Linux; Android 14; SAMSUNG SM-S921B) AppleWebKit/537.36 (KHTML, like \
             Gecko) SamsungBrowser/25.0 Chrome/121.0.0.0 Mobile Safari/537.36",
            Kind::Phone,
        ),
        3,
    ),
    (agent("Mozilla/5.0 (Android 14; Mobile; rv:133.0) Gecko/133.0 Firefox/133.0", Kind::Phone), 2),
    (
        agent(
            "Mozilla/5.0 (iPad; CPU OS 17_6 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like \
             Gecko) Version/17.6 Mobile/15E148 Safari/604.1",
            Kind::Tablet,
        ),
        4,
    ),
    (
        agent(
            "Mozilla/5.0 (Linux; Android 13; SM-X710) AppleWebKit/537.36 (KHTML, like Gecko) \
             Chrome/131.0.0.0 Safari/537.36",
            Kind::Tablet,
        ),
        2,
    ),
];

struct Country {
    code: &'static str,
    /// ISO 3166-2 subdivisions and cities in it, weighted.
    places: &'static [((&'static str, &'static str), u32)],
}

const fn country(
    code: &'static str,
    places: &'static [((&'static str, &'static str), u32)],
) -> Country {
    Country { code, places }
}

/// Where visitors are, weighted as for an English-language site for developers and shops.
static COUNTRIES: &[(Country, u32)] = &[
    (
        country(
            "US",
            &[
                (("US-CA", "San Francisco"), 4),
                (("US-NY", "New York"), 4),
                (("US-WA", "Seattle"), 2),
                (("US-TX", "Austin"), 2),
                (("US-IL", "Chicago"), 2),
            ],
        ),
        30,
    ),
    (
        country(
            "DE",
            &[(("DE-BE", "Berlin"), 5), (("DE-BY", "Munich"), 3), (("DE-HH", "Hamburg"), 2)],
        ),
        12,
    ),
    (
        country(
            "GB",
            &[
                (("GB-ENG", "London"), 6),
                (("GB-ENG", "Manchester"), 2),
                (("GB-SCT", "Edinburgh"), 1),
            ],
        ),
        9,
    ),
    (country("IN", &[(("IN-KA", "Bengaluru"), 3), (("IN-MH", "Mumbai"), 2)]), 8),
    (country("FR", &[(("FR-IDF", "Paris"), 4), (("FR-ARA", "Lyon"), 1)]), 6),
    (country("BR", &[(("BR-SP", "São Paulo"), 3), (("BR-RJ", "Rio de Janeiro"), 1)]), 4),
    (country("CA", &[(("CA-ON", "Toronto"), 3), (("CA-BC", "Vancouver"), 2)]), 4),
    (country("NL", &[(("NL-NH", "Amsterdam"), 3), (("NL-ZH", "Rotterdam"), 1)]), 4),
    (country("JP", &[(("JP-13", "Tokyo"), 3), (("JP-27", "Osaka"), 1)]), 3),
    (country("AU", &[(("AU-NSW", "Sydney"), 3), (("AU-VIC", "Melbourne"), 2)]), 3),
    (country("ES", &[(("ES-MD", "Madrid"), 1), (("ES-CT", "Barcelona"), 1)]), 2),
    (country("SE", &[(("SE-AB", "Stockholm"), 1)]), 2),
    (country("PL", &[(("PL-MZ", "Warsaw"), 1)]), 2),
    (country("CH", &[(("CH-ZH", "Zurich"), 1)]), 1),
];

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, BTreeSet, HashMap};

    use super::*;
    use crate::classify::agent::{Agents, Device};
    use crate::classify::referrer::{self, Utm};

    const START: i64 = 1_795_356_330_000; // 2026-11-22T14:05:30Z, a Sunday

    /// `n` visits of new visitors, each as its hits in time order, starting a minute apart.
    fn visits(traffic: &mut Traffic, n: usize) -> Vec<Vec<Hit>> {
        (0..n)
            .map(|i| {
                let mut made = Vec::new();
                let visitor = Arc::new(traffic.visitor());
                let source = pick(&mut traffic.rng, SOURCES);
                traffic.visit(START + i as i64 * 60_000, &visitor, source, &mut made);
                made.sort_unstable();
                made.into_iter().map(|p| p.hit).collect()
            })
            .collect()
    }

    fn pageviews(visit: &[Hit]) -> Vec<&Incoming> {
        visit.iter().map(|h| &h.event).filter(|e| e.name == PAGEVIEW).collect()
    }

    fn prop<'a>(event: &'a Incoming, key: &str) -> &'a str {
        let found = event.props.iter().find(|(k, _)| k == key);
        found.map(|(_, v)| v.as_str()).unwrap_or_else(|| panic!("{key} in {event:?}"))
    }

    /// Whether `share` of `n` is within four standard deviations of a probability `p`.
    fn near(share: f64, p: f64, n: usize) -> bool {
        (share - p).abs() <= 4.0 * (p * (1.0 - p) / n as f64).sqrt()
    }

    #[test]
    fn the_site_map_leads_only_to_its_own_pages() {
        let links = PAGES.iter().flat_map(|p| p.links);
        let landings = SOURCES.iter().flat_map(|(s, _)| s.landings).chain(DIRECT.landings);
        for (path, _) in links.chain(landings) {
            assert!(PAGES.iter().any(|p| p.path == *path), "{path} is not a page");
        }
        for (i, p) in PAGES.iter().enumerate() {
            assert!(!p.links.is_empty(), "{} leads nowhere", p.path);
            assert!(PAGES[..i].iter().all(|q| q.path != p.path), "{} twice", p.path);
        }
    }

    #[test]
    fn visits_walk_the_site_as_the_tracker_reports_it() {
        let params = Params::default();
        let mut traffic = Traffic::new(params.clone(), 7, START);
        let visits = visits(&mut traffic, 4000);
        let mut bounces = 0;
        for visit in &visits {
            let views = pageviews(visit);
            assert!((1..=MAX_PAGES).contains(&views.len()), "{} pages", views.len());
            bounces += usize::from(views.len() == 1);
            // Each page after the first is linked from the one before, which is its referrer.
            for pair in views.windows(2) {
                let links = page(&pair[0].page).links;
                assert!(links.iter().any(|(l, _)| *l == pair[1].page), "{views:?}");
                let internal = format!("{SITE}{}", pair[0].page);
                assert_eq!(pair[1].referrer.as_deref(), Some(internal.as_str()));
                assert_eq!(pair[1].utm_source, None, "only the landing URL has UTM tags");
            }
            let landing = views[0];
            let from_sources = SOURCES.iter().flat_map(|(s, _)| s.landings);
            assert!(from_sources.clone().any(|(l, _)| *l == landing.page), "{landing:?}");
            assert_ne!(landing.referrer_host.as_deref(), Some(SITE));
            // One visitor, in time order, one session: no gap of 30 minutes.
            assert!(visit.iter().all(|h| h.visitor == visit[0].visitor));
            for pair in visit.windows(2) {
                let gap = pair[1].event.ts - pair[0].event.ts;
                assert!((0..30 * 60_000).contains(&gap), "{gap} ms between {pair:?}");
            }
            // Each page view is left with one engagement report of its visible time, and its
            // other events come while it is open.
            let mut open: Option<&Incoming> = None;
            for hit in visit {
                let e = &hit.event;
                match e.name.as_str() {
                    PAGEVIEW => {
                        assert!(open.is_none(), "a page left without a report: {visit:?}");
                        open = Some(e);
                    }
                    ENGAGEMENT => {
                        let view = open.take().expect("a report of an open page");
                        assert_eq!(e.page, view.page);
                        assert_eq!(prop(e, "time"), (e.ts - view.ts).to_string());
                        let scroll: u32 = prop(e, "scroll").parse().unwrap();
                        assert!((20..=100).contains(&scroll));
                    }
                    name => {
                        let view = open.expect("an event on an open page");
                        assert_eq!(e.page, view.page);
                        match name {
                            "Signup" => {
                                assert_eq!(e.page, "/signup");
                                assert!(["free", "pro", "team"].contains(&prop(e, "plan")));
                            }
                            "Add to cart" => {
                                let product = page(&e.page).product;
                                assert_eq!(Some(prop(e, "product")), product);
                            }
                            "Outbound Link: Click" => {
                                assert_eq!(e.page, views[views.len() - 1].page, "leaves");
                                assert!(prop(e, "url").starts_with("https://"));
                            }
                            _ => panic!("unexpected event {e:?}"),
                        }
                    }
                }
            }
            assert!(open.is_none(), "the last page is reported too");
        }
        let share = bounces as f64 / visits.len() as f64;
        assert!(near(share, params.bounce_rate, visits.len()), "bounce share {share}");
        let names: BTreeSet<&str> =
            visits.iter().flatten().map(|h| h.event.name.as_str()).collect();
        assert_eq!(
            names,
            BTreeSet::from(["Add to cart", "Outbound Link: Click", "Signup", ENGAGEMENT, PAGEVIEW])
        );
    }

    #[test]
    fn sources_devices_and_countries_all_appear_as_classification_names_them() {
        let mut traffic = Traffic::new(Params::default(), 11, START);
        let visits = visits(&mut traffic, 3000);
        let agents = Agents::new();
        let (mut sources, mut channels, mut devices) =
            (BTreeSet::new(), BTreeSet::new(), BTreeSet::new());
        let (mut browsers, mut oses, mut countries) =
            (BTreeSet::new(), BTreeSet::new(), BTreeSet::new());
        for visit in &visits {
            let landing = &visit[0].event;
            let utm = Utm {
                source: landing.utm_source.as_deref(),
                medium: landing.utm_medium.as_deref(),
                campaign: landing.utm_campaign.as_deref(),
            };
            let origin = referrer::classify(landing.referrer_host.as_deref(), &utm);
            sources.insert(origin.source.unwrap_or_else(|| "Direct".into()));
            channels.insert(origin.channel.name());
            let visitor = &visit[0].visitor;
            let agent = agents.classify(visitor.user_agent);
            assert_ne!(agent.device, Device::Bot, "{}", visitor.user_agent);
            devices.insert(agent.device.name());
            browsers.insert(agent.browser.as_deref().unwrap().to_owned());
            oses.insert(agent.os.as_deref().unwrap().to_owned());
            countries.insert(visitor.country);
            assert!(visitor.region.starts_with(visitor.country), "{visitor:?}");
        }
        let set = |names: &[&str]| names.iter().map(|s| s.to_string()).collect::<BTreeSet<_>>();
        assert_eq!(
            sources,
            set(&[
                "Bing",
                "Direct",
                "DuckDuckGo",
                "GitHub",
                "Google",
                "Hacker News",
                "Reddit",
                "Twitter",
                "newsletter"
            ])
        );
        assert_eq!(
            channels,
            BTreeSet::from(["Direct", "Email", "Organic Search", "Organic Social"])
        );
        assert_eq!(devices, BTreeSet::from(["Desktop", "Mobile", "Tablet"]));
        for browser in [
            "Chrome",
            "Chrome Mobile",
            "Chrome Mobile iOS",
            "Edge",
            "Firefox",
            "Mobile Safari",
            "Safari",
        ] {
            assert!(browsers.contains(browser), "{browser} in {browsers:?}");
        }
        assert_eq!(oses, set(&["Android", "Linux", "Mac OS X", "Windows", "iOS"]));
        let all: BTreeSet<&str> = COUNTRIES.iter().map(|(c, _)| c.code).collect();
        assert_eq!(countries, all);
        // Each browser's screen is the kind of device the classifier sees in its user agent.
        for (agent, _) in AGENTS {
            let device = match agent.kind {
                Kind::Desktop => Device::Desktop,
                Kind::Phone => Device::Mobile,
                Kind::Tablet => Device::Tablet,
            };
            assert_eq!(agents.classify(agent.user_agent).device, device, "{}", agent.user_agent);
        }
    }

    #[test]
    fn live_visits_arrive_as_a_poisson_process_at_the_configured_rate() {
        let params = Params { live_interval_ms: 1_000.0, ..Params::default() };
        let mut traffic = Traffic::new(params, 3, START);
        let seconds = 3_000;
        let mut landings = Vec::new();
        let mut now = START;
        while now < START + seconds * 1000 {
            now += 250;
            let hits = traffic.due(now);
            assert!(hits.windows(2).all(|w| w[0].event.ts <= w[1].event.ts), "in time order");
            assert!(hits.iter().all(|h| h.event.ts <= now), "nothing from the future");
            assert!(traffic.next_due() > now);
            let new = hits.into_iter().map(|h| h.event);
            landings.extend(
                new.filter(|e| e.name == PAGEVIEW && e.referrer_host.as_deref() != Some(SITE))
                    .map(|e| e.ts),
            );
        }
        // A visit every second on average: 3,000 ± 4 standard deviations (√3000 ≈ 55).
        let n = landings.len();
        assert!((3000 - 220..=3000 + 220).contains(&n), "{n} visits");
        // Exponential gaps: 1 − 1/e of them are shorter than the mean.
        let short = landings.windows(2).filter(|w| w[1] - w[0] < 1_000).count();
        let share = short as f64 / (n - 1) as f64;
        assert!(near(share, 1.0 - (-1.0f64).exp(), n - 1), "{share} of gaps under the mean");
    }

    #[test]
    fn history_follows_the_day_the_week_and_the_trend() {
        let params = Params::default();
        let mut traffic = Traffic::new(params.clone(), 5, START);
        let history = traffic.history();
        let from = START - 30 * DAY_MS;
        assert!(history.windows(2).all(|w| w[0].event.ts <= w[1].event.ts), "in time order");
        assert!(history.iter().all(|h| (from..START).contains(&h.event.ts)));

        // A visitor's first landing is when they arrived.
        let mut arrivals: HashMap<*const Visitor, i64> = HashMap::new();
        for hit in &history {
            arrivals.entry(Arc::as_ptr(&hit.visitor)).or_insert(hit.event.ts);
        }
        // The expected number: the rate integrated minute by minute (it is constant within
        // an hour but for the trend, which is linear).
        let expected: f64 = (0..30 * 24 * 60)
            .map(|m| traffic.history_rate(from + m * 60_000 + 30_000) * 60_000.0)
            .sum();
        // 400 a day growing to 560: about 30 × 480.
        assert!((13_700.0..15_100.0).contains(&expected), "{expected}");
        let n = arrivals.len() as f64;
        assert!((n - expected).abs() < 4.0 * expected.sqrt(), "{n} visitors, {expected} expected");

        let mut by_hour = [0.0; 24];
        let mut by_weekday: BTreeMap<i64, f64> = BTreeMap::new();
        let (mut first_week, mut last_week) = (0.0, 0.0);
        for &ts in arrivals.values() {
            by_hour[ts.div_euclid(HOUR_MS).rem_euclid(24) as usize] += 1.0;
            *by_weekday.entry((ts.div_euclid(DAY_MS) + 3).rem_euclid(7)).or_default() += 1.0;
            first_week += f64::from(ts < from + 7 * DAY_MS);
            last_week += f64::from(ts >= START - 7 * DAY_MS);
        }
        // At night (02–05 UTC) a quarter of the afternoon (14–17 UTC): 1.32 / 5.84 weights.
        let night: f64 = by_hour[2..6].iter().sum();
        let afternoon: f64 = by_hour[14..18].iter().sum();
        assert!((0.18..0.28).contains(&(night / afternoon)), "{night} / {afternoon}");
        // Saturdays and Sundays (4 + 5 of the 30 days) against Tuesdays and Wednesdays (4 + 4).
        let weekend = (by_weekday[&5] + by_weekday[&6]) / 9.0;
        let midweek = (by_weekday[&1] + by_weekday[&2]) / 8.0;
        assert!((0.55..0.75).contains(&(weekend / midweek)), "{weekend} / {midweek}");
        // The last week against the first: (1 + 0.4 × 26.5/30) / (1 + 0.4 × 3.5/30) ≈ 1.29.
        assert!((1.15..1.45).contains(&(last_week / first_week)), "{last_week} / {first_week}");

        // Some come back later the same day: as a second visit, apart from the first.
        let visits = history
            .iter()
            .filter(|h| h.event.name == PAGEVIEW && h.event.referrer_host.as_deref() != Some(SITE));
        let returns = visits.count() as f64 - n;
        let share = returns / n;
        assert!((0.06..params.return_rate).contains(&share), "{share} came back");
    }

    #[test]
    fn a_seed_gives_the_same_traffic() {
        let run = |seed| {
            let mut traffic = Traffic::new(Params::default(), seed, START);
            let mut hits = traffic.history();
            hits.extend(traffic.due(START + 600_000));
            hits
        };
        let a = run(1);
        assert_eq!(a, run(1));
        assert_ne!(a, run(2));
    }
}
