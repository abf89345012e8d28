//! User agents as breakdown categories: device type, browser and OS with their versions, from
//! uap-core's regexes (`data/uap-regexes.json`, see the README there); and whether the client
//! is a bot, from uap's spider rules, the crawler-user-agents list (`data/crawler-patterns.json`)
//! and our own rules (`BOT_WORDS`, `unlike_browser`), since bots are counted apart from
//! visitors. A missing, empty or oversized user agent is a bot too.
//!
//! Parsing a user agent runs hundreds of regexes, while a site sees few distinct user agents:
//! [`Agents`] parses each one once.

use std::hash::BuildHasher;
use std::sync::{Arc, LazyLock, Mutex, PoisonError};

use hashbrown::HashTable;
use hashbrown::hash_table::Entry;
use regex::Regex;
use rustc_hash::FxBuildHasher;

/// Device type of a user agent.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Device {
    /// Also what is neither phone nor tablet: TVs, consoles, desktop apps.
    Desktop,
    Mobile,
    Tablet,
    /// Crawlers, HTTP libraries, headless browsers, monitors, link previews: not visitors.
    Bot,
}

impl Device {
    /// The name shown in breakdowns.
    pub fn name(self) -> &'static str {
        match self {
            Device::Desktop => "Desktop",
            Device::Mobile => "Mobile",
            Device::Tablet => "Tablet",
            Device::Bot => "Bot",
        }
    }
}

/// What a user agent says, as breakdown categories. `None` where it says nothing we recognise.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Agent {
    pub device: Device,
    /// uap-core's browser family: "Chrome", "Firefox", "Mobile Safari"… (for a bot, its name
    /// when uap knows it: "Googlebot").
    pub browser: Option<Arc<str>>,
    /// The browser and its "major.minor" version ("Chrome 120.0"), or "major" when the user
    /// agent gives no minor version: a version alone breaks down nothing.
    pub browser_version: Option<Arc<str>>,
    /// uap-core's OS family: "Windows", "Mac OS X", "iOS", "Android", "Linux"…
    pub os: Option<Arc<str>>,
    /// The OS and its version, as for the browser ("Windows 10", "iOS 17.1").
    pub os_version: Option<Arc<str>>,
}

impl Agent {
    /// Bots are counted apart from visitors.
    pub fn is_bot(&self) -> bool {
        self.device == Device::Bot
    }

    /// Every browser sends a user agent, and none sends one over [`MAX_LEN`]: a request with
    /// none (curl -A '', scripts) or an oversized one comes from a program, so it is a bot.
    fn unknown_bot() -> Agent {
        Agent {
            device: Device::Bot,
            browser: None,
            browser_version: None,
            os: None,
            os_version: None,
        }
    }
}

/// Longer user agents are bots ([`Agent::unknown_bot`]): browsers' stay under ~500 bytes. This
/// also bounds the memory of a cache entry and the time of a parse.
const MAX_LEN: usize = 1024;

/// Default capacity of [`Agents`]: more distinct user agents than most sites see in a day, for
/// ~4 MB (~400 bytes an entry with a typical user agent; ~14 MB if all were `MAX_LEN` long).
const DEFAULT_CAPACITY: usize = 10_000;

const SHARDS: usize = 16;

/// Classifies user agents, each distinct one parsed once: a bounded, thread-safe cache in front
/// of the uap-core parser. Shared by all request handlers (`&self`, Send + Sync).
pub struct Agents {
    /// Chosen by hash, so that handlers on other threads rarely wait for the same lock.
    shards: Box<[Mutex<HashTable<Cached>>]>,
    /// A shard that reaches this many entries is cleared: crude, but the cost is only a
    /// re-parse of the user agents still in use, and 1/16 of the cache goes at a time.
    shard_capacity: usize,
}

/// A cached user agent: its hash (kept so that the table never rehashes a string), the user
/// agent, and what it says.
type Cached = (u64, Box<str>, Arc<Agent>);

impl Agents {
    /// A cache of 10,000 user agents.
    pub fn new() -> Agents {
        Agents::with_capacity(DEFAULT_CAPACITY)
    }

    /// A cache of at most `entries` user agents (at least one).
    pub fn with_capacity(entries: usize) -> Agents {
        // Compile the parsers now rather than on the first request (they take a while).
        LazyLock::force(&UAP);
        LazyLock::force(&BOT_WORDS);
        LazyLock::force(&CRAWLERS);
        let shards = entries.clamp(1, SHARDS);
        Agents {
            shards: (0..shards).map(|_| Mutex::new(HashTable::new())).collect(),
            shard_capacity: entries.max(1) / shards,
        }
    }

    /// What `user_agent` says, parsed on its first sight only.
    pub fn classify(&self, user_agent: &str) -> Arc<Agent> {
        if user_agent.trim().is_empty() || user_agent.len() > MAX_LEN {
            return UNKNOWN_BOT.clone();
        }
        let hash = FxBuildHasher.hash_one(user_agent);
        let eq = |e: &Cached| e.0 == hash && *e.1 == *user_agent;
        // Bits that the table uses neither for buckets (the low ones) nor for tags (the top 7).
        let shard = &self.shards[(hash >> 32) as usize % self.shards.len()];
        if let Some(e) = lock(shard).find(hash, eq) {
            return e.2.clone();
        }
        // Parsed without the lock, which the shard's other user agents need meanwhile.
        let agent = Arc::new(self.parse(user_agent));
        let mut table = lock(shard);
        if table.len() >= self.shard_capacity {
            table.clear();
        }
        // Another thread may have parsed it meanwhile: its `Arc` wins, so that one user agent
        // is one `Arc` while cached.
        match table.entry(hash, eq, |e| e.0) {
            Entry::Occupied(e) => e.get().2.clone(),
            Entry::Vacant(e) => {
                e.insert((hash, user_agent.into(), agent.clone()));
                agent
            }
        }
    }

    /// What `user_agent` says, parsed every time.
    pub fn parse(&self, user_agent: &str) -> Agent {
        if user_agent.trim().is_empty() || user_agent.len() > MAX_LEN {
            return Agent::unknown_bot();
        }
        let (browser, os, device) = UAP.extract(user_agent);
        let browser = browser.filter(|b| b.family != "Other");
        let os = os.filter(|o| o.os != "Other");
        let device = device.filter(|d| d.device != "Other");
        // uap's "Generic" devices come from loose patterns ("Blackboard Safeassign" is a
        // "Generic Feature Phone"): they do not make a user agent a person's.
        let named_device = device.as_ref().is_some_and(|d| !d.device.starts_with("Generic"));
        let os_family = os.as_ref().map_or("", |o| &*o.os);
        let bot = device.as_ref().is_some_and(|d| d.device == "Spider")
            || BOT_WORDS.is_match(user_agent)
            || CRAWLERS.is_match(user_agent.as_bytes())
            || unlike_browser(user_agent, browser.is_some(), named_device, os_family);
        Agent {
            device: if bot {
                Device::Bot
            } else {
                form_factor(user_agent, os_family, device.is_some())
            },
            browser_version: browser.as_ref().and_then(|b| version(&b.family, b.major, b.minor)),
            browser: browser.map(|b| b.family.into()),
            os_version: os
                .as_ref()
                .and_then(|o| version(&o.os, o.major.as_deref(), o.minor.as_deref())),
            os: os.map(|o| o.os.into()),
        }
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.shards.iter().map(|s| lock(s).len()).sum()
    }
}

impl Default for Agents {
    fn default() -> Agents {
        Agents::new()
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A panic elsewhere cannot leave a cache shard inconsistent, only incomplete.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

static UNKNOWN_BOT: LazyLock<Arc<Agent>> = LazyLock::new(|| Arc::new(Agent::unknown_bot()));

/// uap-core's parsers, compiled once per process and shared by every [`Agents`].
static UAP: LazyLock<ua_parser::Extractor<'static>> = LazyLock::new(|| {
    let regexes: ua_parser::Regexes =
        serde_json::from_str(include_str!("../../data/uap-regexes.json"))
            .expect("data/uap-regexes.json holds uap-core's regexes");
    ua_parser::Extractor::try_from(regexes).expect("uap-core's regexes compile")
});

/// Bots that uap-core's spider rules miss: words and tokens that no browser's user agent has,
/// matched case-insensitively anywhere (or at the start, `^`, or as a word, `\b`); each line
/// holds alternatives. One regex, whose literals the regex crate finds in one pass.
static BOT_WORDS: LazyLock<Regex> = LazyLock::new(|| {
    const RULES: &[&str] = &[
        // What crawlers call themselves ("Cubot" phones and "Botswana" are not bots), and what
        // those that pose as browsers add to WebKit's "(KHTML, like Gecko)".
        r"(?:^|[^u])bots?(?:\b|_)|crawl|spider|slurp|scrap|fetch|archiv|index|preview",
        r"inspect|sitemap|\bseo|research|agent|like gecko;",
        // The URL, site or address that crawlers give for contact; browsers give none.
        r"\bhttp|www\.|[a-z0-9]\.(?:com|net|org|io|ai|co|info|app|dev)\b|@[a-z0-9-]+\.[a-z]{2,}",
        r"\(at\)|\[at\]|mailto",
        // HTTP libraries, command-line clients, site copiers.
        r"curl|wget|python|^java|\(java\)|jakarta|okhttp|axios|undici|^node|node-|^deno|^bun/",
        r"^go-|resty|reqwest|^hyper|^php|guzzle|^ruby|ruby/|faraday|rest-client|^perl|libwww",
        r"lwp-|mechanize|^dart|^dio/|postman|insomnia|powershell|urllib|aria2|colly|httrack",
        r"copier|download",
        // Headless and automated browsers; performance, SEO and security audits.
        r"headless|phantomjs|slimerjs|selenium|webdriver|puppeteer|playwright|cypress|splash",
        r"render|wkhtmlto|lighthouse|pagespeed|ptst/|gtmetrix|screaming frog|sitebulb|jsdom",
        r"screenshot|capture|thumb|pdf|optimi[sz]er|generator|analy[sz]|audit",
        // Uptime monitors, health checks, validators.
        r"monitor|uptime|\bping|statuscake|site24x7|datadog|newrelic|nagios|zabbix|icinga",
        r"blackbox|catchpoint|gomez|dynatrace|thousandeyes|checkly|health|check|validator",
        r"verif|w3c",
        // Link previews, proxies, feed readers, webhooks.
        r"facebookexternalhit|facebookcatalog|meta-external|whatsapp|embedly|iframely|vkshare",
        r"skypeuri|unfurl|proxy|camo\b|resolver|metadata|parser|matcher|classifier|feed|rss",
        r"subscriber|hook|cloudflare|cloudfront",
        // Scanners, TLS probes, AI agents, Google's fetchers that are not called bots.
        r"scan|zgrab|nmap|nikto|nuclei|sqlmap|censys|shodan|netcraft|acunetix|openvas|probe",
        r"\btls|certificate|chatgpt|openai|\bgpt|claude|anthropic|perplexity|cohere|\bai\b",
        r"google-|googleother|mediapartners",
    ];
    // ASCII word boundaries: Unicode ones would keep the regex off its fast DFA.
    let rules = RULES.join("|").replace(r"\b", r"(?-u:\b)");
    Regex::new(&format!("(?i){rules}")).expect("valid bot rules")
});

/// The crawler-user-agents list's patterns (vendored in data/): named crawlers, monitors and
/// tools that pose as browsers, which no general rule can tell from one.
static CRAWLERS: LazyLock<regex::bytes::Regex> = LazyLock::new(|| {
    let patterns: Vec<String> =
        serde_json::from_str(include_str!("../../data/crawler-patterns.json"))
            .expect("data/crawler-patterns.json holds the crawler patterns");
    let any = patterns.iter().map(|p| format!("(?:{p})")).collect::<Vec<_>>().join("|");
    // ASCII classes, as for `BOT_WORDS`, on bytes (a class such as `[^-]` may then match half
    // a character, which is harmless here); larger limits than the defaults, for ~1,500
    // alternatives, keep it on the lazy DFA.
    regex::bytes::RegexBuilder::new(&any)
        .unicode(false)
        .size_limit(64 << 20)
        .dfa_size_limit(64 << 20)
        .build()
        .expect("the crawler patterns compile")
});

/// Whether a user agent that no rule calls a bot still cannot be a visitor's browser: browsers,
/// and the apps that embed them, start theirs with `Mozilla/` (old Opera with `Opera/`), and
/// claim compatibility only as Internet Explorer or Konqueror did. A user agent that breaks
/// that shape and names neither a browser nor a device that uap knows is a program, unless it
/// names a phone OS: an app on a phone may well be a person.
fn unlike_browser(ua: &str, browser: bool, device: bool, os: &str) -> bool {
    let mozilla = ua.starts_with("Mozilla/") || ua.starts_with("Opera/");
    let pretends = ua.contains("compatible")
        && !["MSIE", "Trident", "Konqueror"].iter().any(|b| ua.contains(b));
    !browser && !device && (!mozilla && !mobile_os(os) || pretends)
}

/// Whether `os` is one of uap's OS families of phones (and of the tablets that share them), new
/// and old.
fn mobile_os(os: &str) -> bool {
    matches!(
        os,
        "iOS"
            | "Android"
            | "Windows Phone"
            | "Windows Mobile"
            | "BlackBerry OS"
            | "KaiOS"
            | "Firefox OS"
            | "BREW"
            | "Brew MP"
            | "Bada"
            | "MeeGo"
            | "Maemo"
    ) || os.starts_with("Symbian")
        || os.starts_with("Nokia Series")
}

/// Phone, tablet or other, for a user agent that is not a bot. uap's device families name
/// models, not form factors, so this reads the tokens that browsers use to say it; `device`:
/// whether uap knows the device (feature phones name their model and no OS).
fn form_factor(ua: &str, os: &str, device: bool) -> Device {
    let has = |token: &str| ua.contains(token);
    if has("iPad") || has("Kindle") || has("Silk/") || has("PlayBook")
        || (has("Tablet") && !has("Tablet PC"))
        // Android browsers on phones say "Mobile", on tablets not (Chrome's documented rule).
        || (os == "Android" && !has("Mobi"))
    {
        Device::Tablet
    } else if has("Mobi")
        || has("iPhone")
        || has("iPod")
        || has("Opera Mini")
        || has("BlackBerry")
        || has("MIDP")
        || mobile_os(os)
        || (device && os.is_empty() && !has("TV"))
    {
        Device::Mobile
    } else {
        Device::Desktop
    }
}

/// "name major.minor", or "name major"; `None` without a major version. Made once per user
/// agent, here, rather than for each request.
fn version(name: &str, major: Option<&str>, minor: Option<&str>) -> Option<Arc<str>> {
    let major = major.filter(|m| !m.is_empty())?;
    Some(match minor.filter(|m| !m.is_empty()) {
        Some(minor) => format!("{name} {major}.{minor}").into(),
        None => format!("{name} {major}").into(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn agent(ua: &str) -> Agent {
        Agents::with_capacity(10).parse(ua)
    }

    fn check(ua: &str, device: Device, browser: &str, bv: &str, os: &str, ov: &str) {
        let some = |s: &str| (!s.is_empty()).then(|| Arc::from(s));
        let versioned = |name: &str, v: &str| (!v.is_empty()).then(|| format!("{name} {v}").into());
        let expected = Agent {
            device,
            browser: some(browser),
            browser_version: versioned(browser, bv),
            os: some(os),
            os_version: versioned(os, ov),
        };
        assert_eq!(agent(ua), expected, "{ua}");
    }

    #[test]
    fn browsers() {
        check(
            "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) \
             Chrome/120.0.6099.109 Safari/537.36",
            Device::Desktop,
            "Chrome",
            "120.0",
            "Windows",
            "10",
        );
        check(
            "Mozilla/5.0 (iPhone; CPU iPhone OS 17_1_2 like Mac OS X) AppleWebKit/605.1.15 \
             (KHTML, like Gecko) Version/17.1.2 Mobile/15E148 Safari/604.1",
            Device::Mobile,
            "Mobile Safari",
            "17.1",
            "iOS",
            "17.1",
        );
        check(
            "Mozilla/5.0 (iPad; CPU OS 16_6 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like \
             Gecko) Version/16.6 Mobile/15E148 Safari/604.1",
            Device::Tablet,
            "Mobile Safari",
            "16.6",
            "iOS",
            "16.6",
        );
        check(
            "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) \
             Chrome/120.0.6099.144 Mobile Safari/537.36",
            Device::Mobile,
            "Chrome Mobile",
            "120.0",
            "Android",
            "14",
        );
        check(
            "Mozilla/5.0 (Linux; Android 13; SM-X700) AppleWebKit/537.36 (KHTML, like Gecko) \
             Chrome/120.0.6099.144 Safari/537.36",
            Device::Tablet,
            "Chrome",
            "120.0",
            "Android",
            "13",
        );
        check(
            "Mozilla/5.0 (X11; Linux x86_64; rv:121.0) Gecko/20100101 Firefox/121.0",
            Device::Desktop,
            "Firefox",
            "121.0",
            "Linux",
            "",
        );
        check(
            "Mozilla/5.0 (X11; Ubuntu; Linux x86_64; rv:121.0) Gecko/20100101 Firefox/121.0",
            Device::Desktop,
            "Firefox",
            "121.0",
            "Ubuntu",
            "",
        );
        check(
            "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like \
             Gecko) Version/17.2 Safari/605.1.15",
            Device::Desktop,
            "Safari",
            "17.2",
            "Mac OS X",
            "10.15",
        );
    }

    #[test]
    fn bots() {
        for ua in [
            "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
            "Mozilla/5.0 (Linux; Android 6.0.1; Nexus 5X Build/MMB29P) AppleWebKit/537.36 \
             (KHTML, like Gecko) Chrome/120.0.6099.71 Mobile Safari/537.36 (compatible; \
             Googlebot/2.1; +http://www.google.com/bot.html)",
            "curl/8.4.0",
            "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) \
             HeadlessChrome/120.0.6099.109 Safari/537.36",
            "python-requests/2.31.0",
            "Go-http-client/2.0",
            "",
            " ",
        ] {
            assert_eq!(agent(ua).device, Device::Bot, "{ua:?}");
        }
        assert_eq!(agent("curl/8.4.0").browser.as_deref(), Some("curl"));
        assert_eq!(agent(&"a".repeat(MAX_LEN + 1)), Agent::unknown_bot());
        // Phones and a Facebook user in Botswana are not bots.
        for ua in [
            "Mozilla/5.0 (Linux; U; Android 4.2.1; en-gb; CUBOT ONE Build/JOP40D) \
             AppleWebKit/534.30 (KHTML, like Gecko) Version/4.0 Mobile Safari/534.30",
            "Mozilla/5.0 (iPhone; CPU iPhone OS 11_4_1 like Mac OS X) AppleWebKit/605.1.15 \
             (KHTML, like Gecko) Mobile/15G77 [FBAN/FBIOS;FBAV/194.0.0.38.99;FBCR/OrangeBotswana]",
        ] {
            assert_eq!(agent(ua).device, Device::Mobile, "{ua}");
        }
    }

    #[test]
    fn cache_shares_one_agent_per_user_agent() {
        let agents = Agents::with_capacity(100);
        let chrome = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like \
                      Gecko) Chrome/120.0.0.0 Safari/537.36";
        let first = agents.classify(chrome);
        assert!(Arc::ptr_eq(&first, &agents.classify(chrome)));
        assert_eq!(*first, agents.parse(chrome));
        assert!(!Arc::ptr_eq(&first, &agents.classify("curl/8.4.0")));
        assert!(Arc::ptr_eq(&agents.classify(""), &agents.classify(" ")));
        assert_eq!(agents.len(), 2);
    }

    #[test]
    fn cache_stays_bounded() {
        for capacity in [1, 5, 16, 100, 1000] {
            let agents = Agents::with_capacity(capacity);
            for i in 0..3 * capacity + 50 {
                agents.classify(&format!("Mozilla/5.0 (X11; Linux x86_64) Firefox/{i}.0"));
                assert!(agents.len() <= capacity, "{} > {capacity}", agents.len());
            }
            assert!(agents.len() > 0);
        }
    }

    #[test]
    fn concurrent_classification() {
        let agents = Agents::with_capacity(64);
        let uas: Vec<String> =
            (0..200).map(|i| format!("Mozilla/5.0 (Windows NT 10.0) Chrome/{i}.0")).collect();
        std::thread::scope(|s| {
            for _ in 0..4 {
                s.spawn(|| {
                    for ua in &uas {
                        assert_eq!(agents.classify(ua).browser.as_deref(), Some("Chrome"));
                    }
                });
            }
        });
        assert!(agents.len() <= 64);
    }
}
