//! A visit's source and channel, from its external referrer's host and its page's UTM tags.
//!
//! The source is the `utm_source` if there is one (Plausible lets it win over the referrer),
//! else the referrer's host; either becomes a known name (`Google`, `Facebook`) when it names
//! a well-known site, and is kept as it is otherwise. Hosts match a table entry on a label
//! boundary: `m.facebook.com` is Facebook, `notfacebook.com` is not.
//!
//! The channel follows the default grouping of GA4, as Plausible applies it; the first rule
//! that holds wins ("paid medium" is GA4's `^(.*cp.*|ppc|retargeting|paid.*)$`; all
//! comparisons ignore ASCII case):
//!
//! 1. campaign contains `cross-network`: Cross-network;
//! 2. a shopping site or a shop campaign, with a paid medium: Paid Shopping;
//! 3. a search engine, social network or video site with a paid medium: Paid Search, Paid
//!    Social, Paid Video;
//! 4. medium `display`, `banner`, `expandable`, `interstitial` or `cpm`: Display;
//! 5. any other paid medium: Paid Other;
//! 6. a shopping site or a shop campaign: Organic Shopping;
//! 7. a social network, or a social medium (`social`, `sm`…): Organic Social;
//! 8. a video site, or a medium containing `video`: Organic Video;
//! 9. an AI assistant (ChatGPT, Perplexity…): AI Assistants;
//! 10. a search engine, or medium `organic`: Organic Search;
//! 11. an email service, or `email`, `e-mail`, `e_mail`, `e mail` or `newsletter` in the
//!     `utm_source` or medium: Email;
//! 12. medium `affiliate`: Affiliates; `audio`: Audio; `sms` (or `utm_source` `sms`): SMS;
//! 13. medium ending in `push` or containing `mobile` or `notification`, or `utm_source`
//!     `firebase`: Mobile Push Notifications;
//! 14. any source at all, or medium `referral`, `app` or `link`: Referral;
//! 15. nothing: Direct.

/// Marketing channel of a visit, as analytics tools group them (GA4's default channel
/// grouping, with Plausible's AI Assistants).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Channel {
    Direct,
    CrossNetwork,
    PaidShopping,
    PaidSearch,
    PaidSocial,
    PaidVideo,
    Display,
    PaidOther,
    OrganicShopping,
    OrganicSocial,
    OrganicVideo,
    AiAssistants,
    OrganicSearch,
    Email,
    Affiliates,
    Audio,
    Sms,
    MobilePush,
    Referral,
}

impl Channel {
    /// The name breakdowns show, as GA4 and Plausible spell it.
    pub fn name(self) -> &'static str {
        match self {
            Channel::Direct => "Direct",
            Channel::CrossNetwork => "Cross-network",
            Channel::PaidShopping => "Paid Shopping",
            Channel::PaidSearch => "Paid Search",
            Channel::PaidSocial => "Paid Social",
            Channel::PaidVideo => "Paid Video",
            Channel::Display => "Display",
            Channel::PaidOther => "Paid Other",
            Channel::OrganicShopping => "Organic Shopping",
            Channel::OrganicSocial => "Organic Social",
            Channel::OrganicVideo => "Organic Video",
            Channel::AiAssistants => "AI Assistants",
            Channel::OrganicSearch => "Organic Search",
            Channel::Email => "Email",
            Channel::Affiliates => "Affiliates",
            Channel::Audio => "Audio",
            Channel::Sms => "SMS",
            Channel::MobilePush => "Mobile Push Notifications",
            Channel::Referral => "Referral",
        }
    }
}

/// A visit's traffic source and channel.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Origin {
    /// `None` for a visit with neither referrer nor `utm_source` ("Direct / None").
    pub source: Option<String>,
    pub channel: Channel,
}

/// A page's UTM tags.
#[derive(Clone, Copy, Debug, Default)]
pub struct Utm<'a> {
    pub source: Option<&'a str>,
    pub medium: Option<&'a str>,
    pub campaign: Option<&'a str>,
}

/// `referrer_host` is the external referrer's host (already lower-case, `www.` stripped) or
/// `None`; `utm` the page's UTM tags.
pub fn classify(referrer_host: Option<&str>, utm: &Utm<'_>) -> Origin {
    let utm_source = utm.source.filter(|s| !s.is_empty());
    let host = referrer_host.map(|h| h.strip_suffix('.').unwrap_or(h)).filter(|h| !h.is_empty());
    let (source, known) = match (utm_source, host) {
        (Some(tag), _) => {
            let known = by_name(tag).or_else(|| by_host(tag));
            (Some(known.map_or(tag, |k| k.1)), known)
        }
        (None, Some(host)) => {
            let known = by_host(host);
            (Some(known.map_or(host, |k| k.1)), known)
        }
        (None, None) => (None, None),
    };
    let channel = channel(
        source.is_some(),
        known.map(|k| k.2),
        utm_source.unwrap_or(""),
        utm.medium.unwrap_or(""),
        utm.campaign.unwrap_or(""),
    );
    Origin { source: source.map(str::to_owned), channel }
}

/// What a known source is, for its channel.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Search,
    Social,
    Video,
    Email,
    Shopping,
    Ai,
    /// Named, but grouped as any other referrer.
    Site,
}

use Kind::*;

/// Well-known sources: (host suffix, name, kind). A suffix ending in `.*` matches under any
/// top-level domain (`google.*`: `google.de`, `google.co.uk`, `google.com.br`). The first
/// match wins, so a host comes before any generic entry it is under (`mail.google.com` before
/// `google.*`).
static KNOWN: &[(&str, &str, Kind)] = &[
    // Webmail and assistants first: some live under a search engine's domain.
    ("mail.google.com", "Gmail", Email),
    ("gemini.google.com", "Gemini", Ai),
    ("mail.yahoo.com", "Yahoo Mail", Email),
    ("mail.yandex.*", "Yandex Mail", Email),
    ("outlook.live.com", "Outlook", Email),
    ("outlook.office.com", "Outlook", Email),
    ("outlook.office365.com", "Outlook", Email),
    ("mail.proton.me", "Proton Mail", Email),
    ("mail.protonmail.com", "Proton Mail", Email),
    ("mail.aol.com", "AOL Mail", Email),
    ("app.fastmail.com", "Fastmail", Email),
    ("mail.zoho.com", "Zoho Mail", Email),
    ("chatgpt.com", "ChatGPT", Ai),
    ("chat.openai.com", "ChatGPT", Ai),
    ("perplexity.ai", "Perplexity", Ai),
    ("claude.ai", "Claude", Ai),
    ("copilot.microsoft.com", "Copilot", Ai),
    ("chat.deepseek.com", "DeepSeek", Ai),
    ("grok.com", "Grok", Ai),
    ("google.*", "Google", Search),
    ("bing.com", "Bing", Search),
    ("duckduckgo.com", "DuckDuckGo", Search),
    ("yahoo.co.jp", "Yahoo Japan", Search),
    ("search.yahoo.*", "Yahoo", Search),
    ("yandex.*", "Yandex", Search),
    ("ya.ru", "Yandex", Search),
    ("baidu.com", "Baidu", Search),
    ("ecosia.org", "Ecosia", Search),
    ("search.brave.com", "Brave Search", Search),
    ("qwant.com", "Qwant", Search),
    ("startpage.com", "Startpage", Search),
    ("naver.com", "Naver", Search),
    ("seznam.cz", "Seznam", Search),
    ("kagi.com", "Kagi", Search),
    ("sogou.com", "Sogou", Search),
    ("search.aol.com", "AOL", Search),
    ("ask.com", "Ask", Search),
    ("facebook.com", "Facebook", Social),
    ("fb.com", "Facebook", Social),
    ("fb.me", "Facebook", Social),
    ("instagram.com", "Instagram", Social),
    ("twitter.com", "Twitter", Social),
    ("x.com", "Twitter", Social),
    ("t.co", "Twitter", Social),
    ("linkedin.com", "LinkedIn", Social),
    ("lnkd.in", "LinkedIn", Social),
    ("reddit.com", "Reddit", Social),
    ("redd.it", "Reddit", Social),
    ("news.ycombinator.com", "Hacker News", Social),
    ("pinterest.*", "Pinterest", Social),
    ("pin.it", "Pinterest", Social),
    ("tiktok.com", "TikTok", Social),
    ("threads.net", "Threads", Social),
    ("threads.com", "Threads", Social),
    ("bsky.app", "Bluesky", Social),
    ("mastodon.social", "Mastodon", Social),
    ("mastodon.online", "Mastodon", Social),
    ("mastodon.world", "Mastodon", Social),
    ("mstdn.social", "Mastodon", Social),
    ("mas.to", "Mastodon", Social),
    ("fosstodon.org", "Mastodon", Social),
    ("hachyderm.io", "Mastodon", Social),
    ("infosec.exchange", "Mastodon", Social),
    ("discord.com", "Discord", Social),
    ("discordapp.com", "Discord", Social),
    ("t.me", "Telegram", Social),
    ("telegram.org", "Telegram", Social),
    ("whatsapp.com", "WhatsApp", Social),
    ("wa.me", "WhatsApp", Social),
    ("slack.com", "Slack", Social),
    ("teams.microsoft.com", "Microsoft Teams", Social),
    ("teams.live.com", "Microsoft Teams", Social),
    ("vk.com", "VK", Social),
    ("weibo.com", "Weibo", Social),
    ("quora.com", "Quora", Social),
    ("medium.com", "Medium", Social),
    ("tumblr.com", "Tumblr", Social),
    ("snapchat.com", "Snapchat", Social),
    // Plausible groups these communities as social too.
    ("github.com", "GitHub", Social),
    ("producthunt.com", "Product Hunt", Social),
    ("lobste.rs", "Lobsters", Social),
    ("youtube.com", "YouTube", Video),
    ("youtu.be", "YouTube", Video),
    ("vimeo.com", "Vimeo", Video),
    ("twitch.tv", "Twitch", Video),
    ("dailymotion.com", "Dailymotion", Video),
    ("amazon.*", "Amazon", Shopping),
    ("ebay.*", "eBay", Shopping),
    ("etsy.com", "Etsy", Shopping),
    ("aliexpress.com", "AliExpress", Shopping),
    ("walmart.com", "Walmart", Shopping),
    ("temu.com", "Temu", Shopping),
    ("stackoverflow.com", "Stack Overflow", Site),
    ("wikipedia.org", "Wikipedia", Site),
    ("dev.to", "DEV", Site),
    // Yahoo's portal and news, as opposed to its search above.
    ("yahoo.*", "Yahoo", Site),
];

/// `utm_source` spellings of known sources other than their names (which match ignoring case,
/// spaces and punctuation) or hosts.
const ALIASES: &[(&str, &str)] = &[
    ("fb", "Facebook"),
    ("ig", "Instagram"),
    ("x", "Twitter"),
    ("hn", "Hacker News"),
    ("ycombinator", "Hacker News"),
    ("yt", "YouTube"),
    ("brave", "Brave Search"),
    ("openai", "ChatGPT"),
];

/// Second-level labels under which country registries sell names (`co.uk`, `com.br`).
const SECOND_LEVELS: &[&str] = &["co", "com", "net", "org", "ne", "or", "ac", "gov", "edu"];

type Known = &'static (&'static str, &'static str, Kind);

/// The known source a `utm_source` names, by alias or by name.
fn by_name(tag: &str) -> Option<Known> {
    let name =
        ALIASES.iter().find(|(alias, _)| alias.eq_ignore_ascii_case(tag)).map_or(tag, |a| a.1);
    KNOWN.iter().find(|k| name_key(k.1).eq(name_key(name)))
}

/// A name as compared: lower-case letters and digits only (`Hacker News` = `hackernews`).
fn name_key(name: &str) -> impl Iterator<Item = u8> + '_ {
    name.bytes().filter(u8::is_ascii_alphanumeric).map(|b| b.to_ascii_lowercase())
}

/// The known source `host` belongs to.
fn by_host(host: &str) -> Option<Known> {
    let base = without_tld(host);
    KNOWN.iter().find(|k| match k.0.strip_suffix(".*") {
        Some(name) => base.is_some_and(|b| ends_on_label(b, name)),
        None => ends_on_label(host, k.0),
    })
}

/// `host` without its top-level domain: one label, or two for a name under a country's
/// second level (`google.co.uk` → `google`).
fn without_tld(host: &str) -> Option<&str> {
    let (rest, tld) = host.rsplit_once('.')?;
    match rest.rsplit_once('.') {
        Some((under, sld))
            if tld.len() == 2 && SECOND_LEVELS.iter().any(|s| sld.eq_ignore_ascii_case(s)) =>
        {
            Some(under)
        }
        _ => Some(rest),
    }
}

/// Whether `host` is `suffix` or a subdomain of it, ignoring ASCII case.
fn ends_on_label(host: &str, suffix: &str) -> bool {
    let (h, s) = (host.as_bytes(), suffix.as_bytes());
    h.len() >= s.len()
        && h[h.len() - s.len()..].eq_ignore_ascii_case(s)
        && (h.len() == s.len() || h[h.len() - s.len() - 1] == b'.')
}

const DISPLAY_MEDIUMS: &[&str] = &["display", "banner", "expandable", "interstitial", "cpm"];
const SOCIAL_MEDIUMS: &[&str] =
    &["social", "social-network", "social-media", "sm", "social network", "social media"];
const EMAIL_TAGS: &[&str] = &["email", "e-mail", "e_mail", "e mail", "newsletter"];

/// The channel by the rules in the module docs. `known` is the kind of the source if it is a
/// known one; the UTM tags are `""` when absent.
fn channel(
    has_source: bool,
    known: Option<Kind>,
    utm_source: &str,
    medium: &str,
    campaign: &str,
) -> Channel {
    let is = |kind| known == Some(kind);
    let paid = contains(medium, "cp")
        || medium.eq_ignore_ascii_case("ppc")
        || medium.eq_ignore_ascii_case("retargeting")
        || starts_with(medium, "paid");
    let shopping = is(Shopping) || shop_campaign(campaign);
    let medium_is = |tags: &[&str]| tags.iter().any(|t| medium.eq_ignore_ascii_case(t));
    let tagged_email = |tag: &str| EMAIL_TAGS.iter().any(|t| contains(tag, t));

    if contains(campaign, "cross-network") {
        Channel::CrossNetwork
    } else if paid && shopping {
        Channel::PaidShopping
    } else if paid && is(Search) {
        Channel::PaidSearch
    } else if paid && is(Social) {
        Channel::PaidSocial
    } else if paid && is(Video) {
        Channel::PaidVideo
    } else if medium_is(DISPLAY_MEDIUMS) {
        Channel::Display
    } else if paid {
        Channel::PaidOther
    } else if shopping {
        Channel::OrganicShopping
    } else if is(Social) || medium_is(SOCIAL_MEDIUMS) {
        Channel::OrganicSocial
    } else if is(Video) || contains(medium, "video") {
        Channel::OrganicVideo
    } else if is(Ai) {
        Channel::AiAssistants
    } else if is(Search) || medium.eq_ignore_ascii_case("organic") {
        Channel::OrganicSearch
    } else if is(Email) || tagged_email(utm_source) || tagged_email(medium) {
        Channel::Email
    } else if medium.eq_ignore_ascii_case("affiliate") {
        Channel::Affiliates
    } else if medium.eq_ignore_ascii_case("audio") {
        Channel::Audio
    } else if medium.eq_ignore_ascii_case("sms") || utm_source.eq_ignore_ascii_case("sms") {
        Channel::Sms
    } else if ends_with(medium, "push")
        || contains(medium, "mobile")
        || contains(medium, "notification")
        || utm_source.eq_ignore_ascii_case("firebase")
    {
        Channel::MobilePush
    } else if has_source || medium_is(&["referral", "app", "link"]) {
        Channel::Referral
    } else {
        Channel::Direct
    }
}

/// GA4's shop campaign, `^(.*(([^a-df-z]|^)shop|shopping).*)$` on the lower-cased name: `shop`
/// starting a word or after `e` (`eshop`, not `workshop`), or `shopping` anywhere.
fn shop_campaign(campaign: &str) -> bool {
    let c = campaign.as_bytes();
    contains(campaign, "shopping")
        || c.windows(4).enumerate().any(|(i, w)| {
            w.eq_ignore_ascii_case(b"shop")
                && (i == 0 || {
                    let before = c[i - 1].to_ascii_lowercase();
                    before == b'e' || !before.is_ascii_lowercase()
                })
        })
}

fn contains(haystack: &str, needle: &str) -> bool {
    haystack.as_bytes().windows(needle.len()).any(|w| w.eq_ignore_ascii_case(needle.as_bytes()))
}

fn starts_with(s: &str, prefix: &str) -> bool {
    s.as_bytes().get(..prefix.len()).is_some_and(|p| p.eq_ignore_ascii_case(prefix.as_bytes()))
}

fn ends_with(s: &str, suffix: &str) -> bool {
    s.len() >= suffix.len()
        && s.as_bytes()[s.len() - suffix.len()..].eq_ignore_ascii_case(suffix.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// (referrer host, utm_source, utm_medium, utm_campaign) → (source, channel).
    type Case = ((Option<&'static str>, Tag, Tag, Tag), (Option<&'static str>, Channel));
    type Tag = Option<&'static str>;

    #[rustfmt::skip]
    const CASES: &[Case] = &[
        // Direct: nothing at all; a campaign alone names no source.
        ((None, None, None, None), (None, Channel::Direct)),
        ((None, None, None, Some("spring")), (None, Channel::Direct)),
        // Search engines, under any TLD and subdomain.
        ((Some("google.com"), None, None, None), (Some("Google"), Channel::OrganicSearch)),
        ((Some("google.co.uk"), None, None, None), (Some("Google"), Channel::OrganicSearch)),
        ((Some("google.com.br"), None, None, None), (Some("Google"), Channel::OrganicSearch)),
        ((Some("www.google.de"), None, None, None), (Some("Google"), Channel::OrganicSearch)),
        ((Some("uk.search.yahoo.com"), None, None, None), (Some("Yahoo"), Channel::OrganicSearch)),
        ((Some("search.yahoo.co.jp"), None, None, None), (Some("Yahoo Japan"), Channel::OrganicSearch)),
        ((Some("yandex.com.tr"), None, None, None), (Some("Yandex"), Channel::OrganicSearch)),
        ((Some("duckduckgo.com"), None, None, None), (Some("DuckDuckGo"), Channel::OrganicSearch)),
        ((Some("search.brave.com"), None, None, None), (Some("Brave Search"), Channel::OrganicSearch)),
        // Label boundaries: neither a longer label nor a domain that merely contains the name.
        ((Some("notfacebook.com"), None, None, None), (Some("notfacebook.com"), Channel::Referral)),
        ((Some("google.example.com"), None, None, None), (Some("google.example.com"), Channel::Referral)),
        ((Some("googleadservices.com"), None, None, None), (Some("googleadservices.com"), Channel::Referral)),
        // Webmail under a search engine's domain is email, not search.
        ((Some("mail.google.com"), None, None, None), (Some("Gmail"), Channel::Email)),
        ((Some("outlook.live.com"), None, None, None), (Some("Outlook"), Channel::Email)),
        ((Some("mail.yandex.ru"), None, None, None), (Some("Yandex Mail"), Channel::Email)),
        // Social networks and their link shorteners.
        ((Some("l.facebook.com"), None, None, None), (Some("Facebook"), Channel::OrganicSocial)),
        ((Some("m.facebook.com"), None, None, None), (Some("Facebook"), Channel::OrganicSocial)),
        ((Some("t.co"), None, None, None), (Some("Twitter"), Channel::OrganicSocial)),
        ((Some("lnkd.in"), None, None, None), (Some("LinkedIn"), Channel::OrganicSocial)),
        ((Some("old.reddit.com"), None, None, None), (Some("Reddit"), Channel::OrganicSocial)),
        ((Some("news.ycombinator.com"), None, None, None), (Some("Hacker News"), Channel::OrganicSocial)),
        ((Some("pinterest.co.uk"), None, None, None), (Some("Pinterest"), Channel::OrganicSocial)),
        ((Some("mastodon.social"), None, None, None), (Some("Mastodon"), Channel::OrganicSocial)),
        // Video, AI assistants, shopping, other named sites.
        ((Some("m.youtube.com"), None, None, None), (Some("YouTube"), Channel::OrganicVideo)),
        ((Some("youtu.be"), None, None, None), (Some("YouTube"), Channel::OrganicVideo)),
        ((Some("chat.openai.com"), None, None, None), (Some("ChatGPT"), Channel::AiAssistants)),
        ((Some("ebay.de"), None, None, None), (Some("eBay"), Channel::OrganicShopping)),
        ((Some("en.wikipedia.org"), None, None, None), (Some("Wikipedia"), Channel::Referral)),
        ((Some("news.yahoo.com"), None, None, None), (Some("Yahoo"), Channel::Referral)),
        // Unknown hosts are their own source; a trailing dot is not part of the name.
        ((Some("blog.example.org"), None, None, None), (Some("blog.example.org"), Channel::Referral)),
        ((Some("bing.com."), None, None, None), (Some("Bing"), Channel::OrganicSearch)),
        ((Some("192.168.1.1"), None, None, None), (Some("192.168.1.1"), Channel::Referral)),
        // utm_source wins over the referrer, mapped to a known name when it is one.
        ((Some("news.ycombinator.com"), Some("newsletter"), None, None), (Some("newsletter"), Channel::Email)),
        ((Some("t.co"), Some("google"), None, None), (Some("Google"), Channel::OrganicSearch)),
        ((None, Some("FB"), None, None), (Some("Facebook"), Channel::OrganicSocial)),
        ((None, Some("x"), None, None), (Some("Twitter"), Channel::OrganicSocial)),
        ((None, Some("hackernews"), None, None), (Some("Hacker News"), Channel::OrganicSocial)),
        ((None, Some("reddit.com"), None, None), (Some("Reddit"), Channel::OrganicSocial)),
        ((None, Some("partner"), None, None), (Some("partner"), Channel::Referral)),
        ((Some("bing.com"), Some(""), None, None), (Some("Bing"), Channel::OrganicSearch)),
        // Paid mediums: by the kind of source, else display or other.
        ((Some("google.com"), Some("google"), Some("cpc"), None), (Some("Google"), Channel::PaidSearch)),
        ((Some("google.com"), None, Some("CPC"), None), (Some("Google"), Channel::PaidSearch)),
        ((None, Some("bing"), Some("ppc"), None), (Some("Bing"), Channel::PaidSearch)),
        ((None, Some("facebook"), Some("paid_social"), None), (Some("Facebook"), Channel::PaidSocial)),
        ((None, Some("youtube"), Some("retargeting"), None), (Some("YouTube"), Channel::PaidVideo)),
        ((None, Some("amazon"), Some("cpc"), None), (Some("Amazon"), Channel::PaidShopping)),
        ((None, Some("partner"), Some("cpc"), Some("eshop-sale")), (Some("partner"), Channel::PaidShopping)),
        ((None, Some("google"), Some("cpm"), None), (Some("Google"), Channel::PaidSearch)),
        ((None, Some("adnet"), Some("cpm"), None), (Some("adnet"), Channel::Display)),
        ((None, Some("adnet"), Some("banner"), None), (Some("adnet"), Channel::Display)),
        ((None, Some("newsletter"), Some("paid"), None), (Some("newsletter"), Channel::PaidOther)),
        ((None, None, Some("cpa"), None), (None, Channel::PaidOther)),
        ((None, Some("adnet"), Some("cpc"), Some("Q3 cross-network")), (Some("adnet"), Channel::CrossNetwork)),
        // Shop campaigns without a paid medium; `workshop` is not one.
        ((None, Some("partner"), None, Some("shopping-week")), (Some("partner"), Channel::OrganicShopping)),
        ((None, Some("partner"), None, Some("rust-workshop")), (Some("partner"), Channel::Referral)),
        // Channels by medium alone.
        ((None, Some("newsletter"), Some("email"), None), (Some("newsletter"), Channel::Email)),
        ((None, Some("acme"), Some("E-Mail"), None), (Some("acme"), Channel::Email)),
        ((Some("example.org"), None, Some("email"), None), (Some("example.org"), Channel::Email)),
        ((None, Some("weekly_email"), None, None), (Some("weekly_email"), Channel::Email)),
        ((None, Some("gmail"), None, None), (Some("Gmail"), Channel::Email)),
        ((None, Some("acme"), Some("social"), None), (Some("acme"), Channel::OrganicSocial)),
        ((None, Some("acme"), Some("sm"), None), (Some("acme"), Channel::OrganicSocial)),
        ((None, Some("acme"), Some("video"), None), (Some("acme"), Channel::OrganicVideo)),
        ((None, Some("acme"), Some("organic"), None), (Some("acme"), Channel::OrganicSearch)),
        ((None, Some("acme"), Some("affiliate"), None), (Some("acme"), Channel::Affiliates)),
        ((None, Some("acme"), Some("audio"), None), (Some("acme"), Channel::Audio)),
        ((None, Some("sms"), None, None), (Some("sms"), Channel::Sms)),
        ((None, Some("acme"), Some("web-push"), None), (Some("acme"), Channel::MobilePush)),
        ((None, Some("firebase"), None, None), (Some("firebase"), Channel::MobilePush)),
        ((None, None, Some("referral"), None), (None, Channel::Referral)),
        ((None, None, Some("app"), None), (None, Channel::Referral)),
    ];

    #[test]
    fn classifies_sources_and_channels() {
        for &((host, source, medium, campaign), (want_source, want_channel)) in CASES {
            let got = classify(host, &Utm { source, medium, campaign });
            let want = Origin { source: want_source.map(str::to_owned), channel: want_channel };
            assert_eq!(got, want, "referrer {host:?}, utm {source:?} {medium:?} {campaign:?}");
        }
    }

    #[test]
    fn every_entry_is_reachable_and_well_formed() {
        for entry in KNOWN {
            let (suffix, name, _) = *entry;
            assert_eq!(suffix, suffix.to_ascii_lowercase(), "{suffix}");
            assert!(!suffix.starts_with("www.") && !suffix.starts_with('.'), "{suffix}");
            // An entry shadowed by an earlier one would never match.
            let host = match suffix.strip_suffix(".*") {
                Some(base) => format!("{base}.com"),
                None => suffix.to_owned(),
            };
            assert!(std::ptr::eq(by_host(&host).unwrap(), entry), "{suffix} is shadowed");
            assert_eq!(by_name(name).map(|k| k.1), Some(name), "{name}");
        }
        for &(alias, name) in ALIASES {
            assert_eq!(by_name(alias).map(|k| k.1), Some(name), "{alias}");
        }
    }

    #[test]
    fn channel_names() {
        assert_eq!(Channel::OrganicSearch.name(), "Organic Search");
        assert_eq!(Channel::MobilePush.name(), "Mobile Push Notifications");
        assert_eq!(Channel::AiAssistants.name(), "AI Assistants");
    }
}
