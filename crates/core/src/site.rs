//! Sites: the domains footfall collects for, each with the timezone that defines its days.

use serde::{Deserialize, Serialize};

use crate::time::{SiteClock, TimezoneError};

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Site {
    /// The domain, lower-case, without scheme or `www.` (`example.com`).
    pub domain: String,
    /// IANA timezone name (`Europe/Berlin`); day and hour buckets follow it.
    #[serde(default = "utc")]
    pub timezone: String,
    /// Public sites answer stats queries without an API key.
    #[serde(default)]
    pub public: bool,
}

fn utc() -> String {
    "UTC".into()
}

impl Site {
    /// Validates the domain and timezone and normalises the domain.
    pub fn new(domain: &str, timezone: &str, public: bool) -> Result<Site, SiteError> {
        let domain = normalize_domain(domain)?;
        SiteClock::new(timezone)?;
        Ok(Site { domain, timezone: timezone.to_owned(), public })
    }

    pub fn clock(&self) -> Result<SiteClock, TimezoneError> {
        SiteClock::new(&self.timezone)
    }
}

/// Lower-cases a domain and strips a scheme, `www.` and a trailing slash, then checks that what
/// is left looks like a host name (letters, digits, `-`, `.`, optional `:port`).
pub fn normalize_domain(input: &str) -> Result<String, SiteError> {
    let d = input.trim().to_ascii_lowercase();
    let d = d.strip_prefix("https://").or_else(|| d.strip_prefix("http://")).unwrap_or(&d);
    let d = d.trim_end_matches('/');
    let d = d.strip_prefix("www.").unwrap_or(d);
    let valid = !d.is_empty()
        && d.len() <= 253
        && !d.starts_with(['.', '-'])
        && d.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':'));
    if valid { Ok(d.to_owned()) } else { Err(SiteError::BadDomain(input.to_owned())) }
}

#[derive(Debug, thiserror::Error)]
pub enum SiteError {
    #[error(
        "`{0}` is not a domain: use a host name such as `example.com` (letters, digits, `-` and `.`)"
    )]
    BadDomain(String),
    #[error(transparent)]
    Timezone(#[from] TimezoneError),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn domains_are_normalised_and_checked() {
        assert_eq!(normalize_domain("https://www.Example.com/").unwrap(), "example.com");
        assert_eq!(normalize_domain("shop.example:8080").unwrap(), "shop.example:8080");
        assert!(normalize_domain("").is_err());
        assert!(normalize_domain("exa mple.com").is_err());
        assert!(normalize_domain("-bad.com").is_err());
    }

    #[test]
    fn site_rejects_unknown_timezone() {
        assert!(Site::new("example.com", "Europe/Berlin", false).is_ok());
        assert!(Site::new("example.com", "Mars/Olympus", false).is_err());
    }
}
