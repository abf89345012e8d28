//! IP address → country (and region and city where the database has them), from a database in
//! MaxMind's format: GeoLite2/GeoIP2 Country or City, or the free databases laid out the same
//! way, such as `geo-whois-asn-country`, whose records hold a bare `country_code`.

use std::net::IpAddr;
use std::sync::Arc;

use serde::Deserialize;

/// Where an address is, as far as the database knows.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Place {
    /// ISO 3166-1 alpha-2, upper case (`DE`).
    pub country: Option<Arc<str>>,
    /// ISO 3166-2: the country, a dash and the subdivision's code (`DE-BE`).
    pub region: Option<Arc<str>>,
    /// The city's English name.
    pub city: Option<Arc<str>>,
}

/// A loaded database.
pub struct GeoDb {
    reader: maxminddb::Reader<Vec<u8>>,
}

impl std::fmt::Debug for GeoDb {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GeoDb").field("kind", &self.kind()).finish()
    }
}

/// The fields read from a record, in either layout; everything else is skipped.
#[derive(Deserialize)]
struct Record<'a> {
    #[serde(borrow)]
    country_code: Option<&'a str>,
    #[serde(borrow)]
    country: Option<Code<'a>>,
    #[serde(borrow)]
    subdivisions: Option<Vec<Code<'a>>>,
    #[serde(borrow)]
    city: Option<City<'a>>,
}

#[derive(Deserialize)]
struct Code<'a> {
    iso_code: Option<&'a str>,
}

#[derive(Deserialize)]
struct City<'a> {
    #[serde(borrow)]
    names: Option<Names<'a>>,
}

#[derive(Deserialize)]
struct Names<'a> {
    en: Option<&'a str>,
}

impl GeoDb {
    /// Reads a database from its bytes; the error says what is wrong with them.
    pub fn from_bytes(bytes: Vec<u8>) -> Result<GeoDb, String> {
        let reader = maxminddb::Reader::from_source(bytes).map_err(|e| e.to_string())?;
        Ok(GeoDb { reader })
    }

    /// The database's type, as its metadata names it (`GeoLite2-City`, `country`, …).
    pub fn kind(&self) -> &str {
        &self.reader.metadata().database_type
    }

    /// Where `ip` is; an empty [`Place`] for addresses the database does not cover (private
    /// ranges, loopback) or records it cannot read.
    pub fn locate(&self, ip: IpAddr) -> Place {
        let ip = ip.to_canonical();
        // Some databases place private ranges somewhere; a visitor behind one is nowhere known.
        if !is_public(ip) {
            return Place::default();
        }
        let record = self.reader.lookup(ip).ok().and_then(|r| r.decode::<Record>().ok().flatten());
        let Some(r) = record else { return Place::default() };
        let country = r.country_code.or(r.country.and_then(|c| c.iso_code)).and_then(country_code);
        let region = match (&country, r.subdivisions.as_deref()) {
            (Some(c), Some([first, ..])) => first.iso_code.map(|s| format!("{c}-{s}").into()),
            _ => None,
        };
        let city = r.city.and_then(|c| c.names?.en).map(Arc::from);
        Place { country, region, city }
    }
}

/// Whether `ip` is routed on the internet: not private, loopback, link-local, shared (CGNAT),
/// documentation or unspecified.
fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, ..] = v4.octets();
            let shared = a == 100 && (64..128).contains(&b);
            !(v4.is_private()
                || v4.is_loopback()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_broadcast()
                || v4.is_documentation()
                || shared)
        }
        IpAddr::V6(v6) => {
            let first = v6.segments()[0];
            let unique_local = first & 0xfe00 == 0xfc00;
            let link_local = first & 0xffc0 == 0xfe80;
            let documentation = first == 0x2001 && v6.segments()[1] == 0x0db8;
            !(v6.is_loopback()
                || v6.is_unspecified()
                || unique_local
                || link_local
                || documentation)
        }
    }
}

/// A country code as breakdowns show it: two ASCII letters, upper case. Anything else (the
/// `ZZ` of unknown, a malformed value) is no country.
pub fn country_code(code: &str) -> Option<Arc<str>> {
    let code = code.trim();
    let valid = code.len() == 2 && code.bytes().all(|b| b.is_ascii_alphabetic());
    (valid && !code.eq_ignore_ascii_case("ZZ") && !code.eq_ignore_ascii_case("XX"))
        .then(|| code.to_ascii_uppercase().into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn country_codes_are_two_letters_upper_case() {
        assert_eq!(country_code("de").as_deref(), Some("DE"));
        assert_eq!(country_code(" US ").as_deref(), Some("US"));
        for bad in ["", "D", "DEU", "1A", "XX", "zz", "T1"] {
            assert_eq!(country_code(bad), None, "{bad}");
        }
    }

    #[test]
    fn only_public_addresses_are_located() {
        for ip in ["8.8.8.8", "193.99.144.80", "2001:4860:4860::8888", "::ffff:8.8.8.8"] {
            assert!(is_public(ip.parse::<IpAddr>().unwrap().to_canonical()), "{ip}");
        }
        for ip in [
            "10.0.0.1",
            "172.16.5.4",
            "192.168.0.1",
            "127.0.0.1",
            "169.254.1.1",
            "100.64.0.1",
            "0.0.0.0",
            "192.0.2.1",
            "::1",
            "fd00::1",
            "fe80::1",
            "2001:db8::1",
        ] {
            assert!(!is_public(ip.parse().unwrap()), "{ip}");
        }
    }

    #[test]
    fn garbage_is_not_a_database() {
        let err = GeoDb::from_bytes(b"not a database".to_vec()).err().unwrap();
        assert!(!err.is_empty());
    }
}
